//! Message bodies and the packer that fills a datagram up to the MTU.
//!
//! A body is a sequence of frames `[type u8][len u16][content]`. Decoding is zero-copy: rumor
//! payloads, certificate signature lists and embedded statements are `Bytes` slices of the
//! datagram. Every length and count is checked against what is left; nothing is allocated in
//! proportion to a claimed count.

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};

use crate::ed25519::{Signature, SIGNATURE_LEN};
use crate::header::{arr, be16, be32, be64, MemberId};
use crate::WireError;

const FRAME_HEAD: usize = 3;
/// Largest rumor payload that fits one default-MTU datagram beside header, frame and signatures.
pub const MAX_RUMOR_PAYLOAD: usize = 1200;
/// Largest number of witness signatures a certificate may carry: bounded by what fits in a
/// maximal UDP datagram ((65_507 − headers) / 68 B), so decoders never trust a larger count.
pub const MAX_CERT_WITNESSES: usize = 960;
const WITNESS_LEN: usize = 4 + SIGNATURE_LEN;
/// Domain prefix of every end-to-end statement signature: never a valid header start (`RU`), so
/// a statement signature can never be replayed as a hop signature or the reverse.
const STATEMENT_DOMAIN: &[u8] = b"rumor-statement-v1";

mod ty {
    pub const PING: u8 = 1;
    pub const ACK: u8 = 2;
    pub const PING_REQ: u8 = 3;
    pub const INDIRECT_ACK: u8 = 4;
    pub const NACK: u8 = 5;
    pub const UPDATE: u8 = 6;
    pub const RUMOR: u8 = 7;
    pub const SYNC_REQUEST: u8 = 8;
    pub const SYNC_REPLY: u8 = 9;
    pub const CERTIFICATE: u8 = 10;
    pub const EQUIVOCATION: u8 = 11;
}

const FLAG_ADDR_V4: u8 = 1;
const FLAG_ADDR_V6: u8 = 2;
const FLAG_SIGNED: u8 = 4;

/// A member's state as stated by a membership update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

impl MemberState {
    fn from_byte(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => MemberState::Alive,
            1 => MemberState::Suspect,
            2 => MemberState::Dead,
            3 => MemberState::Left,
            _ => return Err(WireError::BadField("member state")),
        })
    }
}

/// A membership statement: `origin` says `subject` at `incarnation` is in `state`. Alive and
/// Left are stated by the subject itself; Suspect and Dead by an accuser. With the authority
/// layer on, `signature` is the origin's Ed25519 signature over [`Update::signing_input`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub subject: MemberId,
    pub incarnation: u64,
    pub state: MemberState,
    pub origin: MemberId,
    pub addr: Option<SocketAddr>,
    pub signature: Option<Signature>,
}

/// An application rumor. `seq` numbers the origin's rumors; with an origin-signing suite,
/// `signature` is the origin's signature over [`Rumor::signing_input`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rumor {
    pub origin: MemberId,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub payload: Bytes,
    pub signature: Option<Signature>,
}

/// A quorum certificate: distinct witnesses' signatures over one (subject, incarnation, verdict)
/// statement. The witness list stays a zero-copy slice; iterate it with [`Certificate::witnesses`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub subject: MemberId,
    pub incarnation: u64,
    pub verdict: MemberState,
    witnesses: Bytes,
}

/// Two signed statements by one member that conflict; each is an encoded `Update` or `Rumor`
/// frame, decoded on demand with [`Message::decode_one`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EquivocationProof {
    pub first: Bytes,
    pub second: Bytes,
}

/// One frame of a datagram body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Ping {
        seq: u32,
    },
    Ack {
        seq: u32,
    },
    /// Ask the receiver to probe `target` on the sender's behalf.
    PingReq {
        seq: u32,
        target: MemberId,
    },
    /// `target` answered a probe made on the requester's behalf.
    IndirectAck {
        seq: u32,
        target: MemberId,
    },
    /// `target` did not answer in time (Lifeguard: tells the requester its own path is fine).
    Nack {
        seq: u32,
        target: MemberId,
    },
    Update(Update),
    Rumor(Rumor),
    /// Push-pull state sync: the updates that follow are the sender's view; reply with yours.
    SyncRequest,
    /// Push-pull reply: the updates that follow are the replier's view.
    SyncReply,
    Certificate(Certificate),
    Equivocation(EquivocationProof),
}

impl Certificate {
    pub fn new(
        subject: MemberId,
        incarnation: u64,
        verdict: MemberState,
        witnesses: &[(MemberId, Signature)],
    ) -> Result<Self, WireError> {
        if witnesses.len() > MAX_CERT_WITNESSES {
            return Err(WireError::TooMany {
                what: "certificate witnesses",
                max: MAX_CERT_WITNESSES,
            });
        }
        let mut w = Vec::with_capacity(witnesses.len() * WITNESS_LEN);
        for (id, sig) in witnesses {
            w.extend_from_slice(&id.to_be_bytes());
            w.extend_from_slice(&sig.to_bytes());
        }
        Ok(Certificate {
            subject,
            incarnation,
            verdict,
            witnesses: w.into(),
        })
    }

    pub fn witness_count(&self) -> usize {
        self.witnesses.len() / WITNESS_LEN
    }

    pub fn witnesses(&self) -> impl Iterator<Item = (MemberId, Signature)> + '_ {
        self.witnesses
            .chunks_exact(WITNESS_LEN)
            .map(|c| (be32(&c[..4]), Signature::from_bytes(arr(&c[4..]))))
    }

    /// What each witness signs: the statement "subject at incarnation is `verdict`", as an
    /// unsigned Update whose origin is the witness.
    pub fn statement_for(&self, witness: MemberId, cluster_tag: u32) -> Vec<u8> {
        Update {
            subject: self.subject,
            incarnation: self.incarnation,
            state: self.verdict,
            origin: witness,
            addr: None,
            signature: None,
        }
        .signing_input(cluster_tag)
    }
}

impl Update {
    fn write_content(&self, out: &mut Vec<u8>, signed: bool) {
        out.extend_from_slice(&self.subject.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.push(self.state as u8);
        out.extend_from_slice(&self.origin.to_be_bytes());
        let mut flags = if signed { FLAG_SIGNED } else { 0 };
        flags |= match self.addr {
            Some(SocketAddr::V4(_)) => FLAG_ADDR_V4,
            Some(SocketAddr::V6(_)) => FLAG_ADDR_V6,
            None => 0,
        };
        out.push(flags);
        match self.addr {
            Some(SocketAddr::V4(a)) => {
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Some(SocketAddr::V6(a)) => {
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            None => {}
        }
    }

    /// The bytes the origin signs: domain, cluster, frame type and the content without signature.
    pub fn signing_input(&self, cluster_tag: u32) -> Vec<u8> {
        let mut v = statement_prefix(cluster_tag, ty::UPDATE);
        self.write_content(&mut v, true);
        v
    }

    fn decode(c: &[u8]) -> Result<Update, WireError> {
        let mut r = Reader::new(c, "update");
        let subject = r.u32()?;
        let incarnation = r.u64()?;
        let state = MemberState::from_byte(r.u8()?)?;
        let origin = r.u32()?;
        let flags = r.u8()?;
        if flags & !(FLAG_ADDR_V4 | FLAG_ADDR_V6 | FLAG_SIGNED) != 0
            || flags & (FLAG_ADDR_V4 | FLAG_ADDR_V6) == (FLAG_ADDR_V4 | FLAG_ADDR_V6)
        {
            return Err(WireError::BadField("update flags"));
        }
        let addr = if flags & FLAG_ADDR_V4 != 0 {
            let ip: [u8; 4] = r.array()?;
            Some(SocketAddr::new(IpAddr::from(ip), r.u16()?))
        } else if flags & FLAG_ADDR_V6 != 0 {
            let ip: [u8; 16] = r.array()?;
            Some(SocketAddr::new(IpAddr::from(ip), r.u16()?))
        } else {
            None
        };
        let signature = if flags & FLAG_SIGNED != 0 {
            Some(Signature::from_bytes(r.array()?))
        } else {
            None
        };
        r.finish()?;
        Ok(Update {
            subject,
            incarnation,
            state,
            origin,
            addr,
            signature,
        })
    }
}

impl Rumor {
    fn write_content(&self, out: &mut Vec<u8>, signed: bool) {
        out.extend_from_slice(&self.origin.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.push(if signed { FLAG_SIGNED } else { 0 });
        // Length checked by `Message::check` before any write.
        out.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// The bytes the origin signs: domain, cluster, frame type and the content without signature.
    pub fn signing_input(&self, cluster_tag: u32) -> Vec<u8> {
        let mut v = statement_prefix(cluster_tag, ty::RUMOR);
        self.write_content(&mut v, true);
        v
    }

    fn decode(c: &[u8], whole: &Bytes, base: usize) -> Result<Rumor, WireError> {
        let mut r = Reader::new(c, "rumor");
        let origin = r.u32()?;
        let seq = r.u64()?;
        let timestamp_ms = r.u64()?;
        let flags = r.u8()?;
        if flags & !FLAG_SIGNED != 0 {
            return Err(WireError::BadField("rumor flags"));
        }
        let len = r.u16()? as usize;
        if len > MAX_RUMOR_PAYLOAD {
            return Err(WireError::TooMany {
                what: "rumor payload bytes",
                max: MAX_RUMOR_PAYLOAD,
            });
        }
        let start = base + r.pos;
        r.skip(len)?;
        let payload = whole.slice(start..start + len);
        let signature = if flags & FLAG_SIGNED != 0 {
            Some(Signature::from_bytes(r.array()?))
        } else {
            None
        };
        r.finish()?;
        Ok(Rumor {
            origin,
            seq,
            timestamp_ms,
            payload,
            signature,
        })
    }
}

fn statement_prefix(cluster_tag: u32, frame_type: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(STATEMENT_DOMAIN.len() + 5 + 64);
    v.extend_from_slice(STATEMENT_DOMAIN);
    v.extend_from_slice(&cluster_tag.to_be_bytes());
    v.push(frame_type);
    v
}

impl Message {
    fn type_byte(&self) -> u8 {
        match self {
            Message::Ping { .. } => ty::PING,
            Message::Ack { .. } => ty::ACK,
            Message::PingReq { .. } => ty::PING_REQ,
            Message::IndirectAck { .. } => ty::INDIRECT_ACK,
            Message::Nack { .. } => ty::NACK,
            Message::Update(_) => ty::UPDATE,
            Message::Rumor(_) => ty::RUMOR,
            Message::SyncRequest => ty::SYNC_REQUEST,
            Message::SyncReply => ty::SYNC_REPLY,
            Message::Certificate(_) => ty::CERTIFICATE,
            Message::Equivocation(_) => ty::EQUIVOCATION,
        }
    }

    /// Refuses messages that could not be decoded again (oversized payloads or lists).
    fn check(&self) -> Result<(), WireError> {
        match self {
            Message::Rumor(r) if r.payload.len() > MAX_RUMOR_PAYLOAD => Err(WireError::TooMany {
                what: "rumor payload bytes",
                max: MAX_RUMOR_PAYLOAD,
            }),
            Message::Equivocation(p) if p.first.len() + p.second.len() + 4 > u16::MAX as usize => {
                Err(WireError::TooMany {
                    what: "equivocation proof bytes",
                    max: u16::MAX as usize,
                })
            }
            _ => Ok(()),
        }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.check()?;
        let head = out.len();
        out.extend_from_slice(&[self.type_byte(), 0, 0]);
        match self {
            Message::Ping { seq } | Message::Ack { seq } => {
                out.extend_from_slice(&seq.to_be_bytes())
            }
            Message::PingReq { seq, target }
            | Message::IndirectAck { seq, target }
            | Message::Nack { seq, target } => {
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&target.to_be_bytes());
            }
            Message::Update(u) => {
                u.write_content(out, u.signature.is_some());
                if let Some(s) = &u.signature {
                    out.extend_from_slice(&s.to_bytes());
                }
            }
            Message::Rumor(r) => {
                r.write_content(out, r.signature.is_some());
                if let Some(s) = &r.signature {
                    out.extend_from_slice(&s.to_bytes());
                }
            }
            Message::SyncRequest | Message::SyncReply => {}
            Message::Certificate(c) => {
                out.extend_from_slice(&c.subject.to_be_bytes());
                out.extend_from_slice(&c.incarnation.to_be_bytes());
                out.push(c.verdict as u8);
                out.extend_from_slice(&(c.witness_count() as u16).to_be_bytes());
                out.extend_from_slice(&c.witnesses);
            }
            Message::Equivocation(p) => {
                out.extend_from_slice(&(p.first.len() as u16).to_be_bytes());
                out.extend_from_slice(&p.first);
                out.extend_from_slice(&(p.second.len() as u16).to_be_bytes());
                out.extend_from_slice(&p.second);
            }
        }
        let len = out.len() - head - FRAME_HEAD;
        if len > u16::MAX as usize {
            out.truncate(head);
            return Err(WireError::TooMany {
                what: "frame bytes",
                max: u16::MAX as usize,
            });
        }
        out[head + 1..head + 3].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(())
    }

    /// The encoded size of this frame.
    pub fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        match self.encode(&mut v) {
            Ok(()) => v.len(),
            Err(_) => usize::MAX,
        }
    }

    /// Decodes exactly one frame occupying all of `buf` (used for embedded statements).
    pub fn decode_one(buf: &Bytes) -> Result<Message, WireError> {
        let mut it = Frames::new(buf.clone());
        let m = it.next().ok_or(WireError::Truncated {
            what: "frame",
            need: FRAME_HEAD,
            have: 0,
        })??;
        if it.next().is_some() {
            return Err(WireError::TrailingBytes("embedded statement"));
        }
        Ok(m)
    }

    fn decode_frame(t: u8, whole: &Bytes, start: usize, end: usize) -> Result<Message, WireError> {
        let c = &whole[start..end];
        let fixed = |what| Reader::new(c, what);
        Ok(match t {
            ty::PING | ty::ACK => {
                let mut r = fixed("ping/ack");
                let seq = r.u32()?;
                r.finish()?;
                if t == ty::PING {
                    Message::Ping { seq }
                } else {
                    Message::Ack { seq }
                }
            }
            ty::PING_REQ | ty::INDIRECT_ACK | ty::NACK => {
                let mut r = fixed("probe relay");
                let (seq, target) = (r.u32()?, r.u32()?);
                r.finish()?;
                match t {
                    ty::PING_REQ => Message::PingReq { seq, target },
                    ty::INDIRECT_ACK => Message::IndirectAck { seq, target },
                    _ => Message::Nack { seq, target },
                }
            }
            ty::UPDATE => Message::Update(Update::decode(c)?),
            ty::RUMOR => Message::Rumor(Rumor::decode(c, whole, start)?),
            ty::SYNC_REQUEST | ty::SYNC_REPLY => {
                fixed("sync marker").finish()?;
                if t == ty::SYNC_REQUEST {
                    Message::SyncRequest
                } else {
                    Message::SyncReply
                }
            }
            ty::CERTIFICATE => {
                let mut r = fixed("certificate");
                let subject = r.u32()?;
                let incarnation = r.u64()?;
                let verdict = MemberState::from_byte(r.u8()?)?;
                let n = r.u16()? as usize;
                if n > MAX_CERT_WITNESSES {
                    return Err(WireError::TooMany {
                        what: "certificate witnesses",
                        max: MAX_CERT_WITNESSES,
                    });
                }
                let s = start + r.pos;
                r.skip(n * WITNESS_LEN)?;
                r.finish()?;
                Message::Certificate(Certificate {
                    subject,
                    incarnation,
                    verdict,
                    witnesses: whole.slice(s..s + n * WITNESS_LEN),
                })
            }
            ty::EQUIVOCATION => {
                let mut r = fixed("equivocation proof");
                let a = r.u16()? as usize;
                let sa = start + r.pos;
                r.skip(a)?;
                let b = r.u16()? as usize;
                let sb = start + r.pos;
                r.skip(b)?;
                r.finish()?;
                Message::Equivocation(EquivocationProof {
                    first: whole.slice(sa..sa + a),
                    second: whole.slice(sb..sb + b),
                })
            }
            other => return Err(WireError::UnknownMessage(other)),
        })
    }
}

/// Iterator over the frames of a body. Stops after the first error (a body is all or nothing to
/// the caller, who decides whether to keep the frames decoded before it).
pub struct Frames {
    body: Bytes,
    pos: usize,
    failed: bool,
}

impl Frames {
    pub fn new(body: Bytes) -> Frames {
        Frames {
            body,
            pos: 0,
            failed: false,
        }
    }
}

impl Iterator for Frames {
    type Item = Result<Message, WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.body.len() {
            return None;
        }
        let rest = self.body.len() - self.pos;
        let res = if rest < FRAME_HEAD {
            Err(WireError::Truncated {
                what: "frame header",
                need: FRAME_HEAD,
                have: rest,
            })
        } else {
            let t = self.body[self.pos];
            let len = be16(&self.body[self.pos + 1..self.pos + 3]) as usize;
            let start = self.pos + FRAME_HEAD;
            if len > self.body.len() - start {
                Err(WireError::Truncated {
                    what: "frame",
                    need: len,
                    have: self.body.len() - start,
                })
            } else {
                self.pos = start + len;
                Message::decode_frame(t, &self.body, start, start + len)
            }
        };
        self.failed = res.is_err();
        Some(res)
    }
}

/// Decodes a whole body into messages, failing on the first bad frame.
pub fn decode_body(body: Bytes) -> Result<Vec<Message>, WireError> {
    Frames::new(body).collect()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let have = self.buf.len() - self.pos;
        if n > have {
            return Err(WireError::Truncated {
                what: self.what,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.take(N).map(arr)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        self.take(2).map(be16)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        self.take(4).map(be32)
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        self.take(8).map(be64)
    }
    fn finish(self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes(self.what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_length_beyond_body_is_truncated_not_panic() {
        let body = Bytes::from_static(&[ty::RUMOR, 0xff, 0xff, 1, 2, 3]);
        assert!(matches!(
            decode_body(body),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn certificate_count_is_checked_against_bytes() {
        let mut v = vec![ty::CERTIFICATE, 0, 0];
        v.extend_from_slice(&[0; 12]);
        v.push(2);
        v.extend_from_slice(&(MAX_CERT_WITNESSES as u16).to_be_bytes());
        let len = (v.len() - 3) as u16;
        v[1..3].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode_body(v.into()),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_type_and_bad_state_are_errors() {
        assert!(matches!(
            decode_body(Bytes::from_static(&[99, 0, 0])),
            Err(WireError::UnknownMessage(99))
        ));
        let u = Update {
            subject: 1,
            incarnation: 2,
            state: MemberState::Alive,
            origin: 1,
            addr: None,
            signature: None,
        };
        let mut v = Vec::new();
        Message::Update(u).encode(&mut v).unwrap();
        v[3 + 12] = 9;
        assert!(matches!(
            decode_body(v.into()),
            Err(WireError::BadField("member state"))
        ));
    }

    #[test]
    fn oversized_rumor_refused_at_encode() {
        let r = Rumor {
            origin: 1,
            seq: 1,
            timestamp_ms: 0,
            payload: vec![0; MAX_RUMOR_PAYLOAD + 1].into(),
            signature: None,
        };
        assert!(Message::Rumor(r).encode(&mut Vec::new()).is_err());
    }
}

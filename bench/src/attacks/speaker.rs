//! The adversaries' voices on the wire, speaking rumor's real codec over real UDP sockets:
//! the insider (an admitted roster member played by rumor-bench, holding its own member key and,
//! on shared-key suites, the cluster key, as any admitted member does) and keyless outsiders,
//! which seal with key material of their own making.
//!
//! The insider looks like a live member: a responder thread answers pings, refutes suspicions of
//! itself and answers push-pull syncs, so honest nodes keep it in their fanout. What it reads on
//! the wire (members' boot epochs, announced incarnations, rumor sequence numbers) is what any
//! adversary on the path could read; the adversaries build their lies from it.
//!
//! Concurrency: an [`Insider`] is shared (`Arc`) by its responder thread and the adversary code;
//! the sealer (one datagram counter per boot, which receivers' replay windows check) and the
//! learned facts sit behind one mutex. Outsiders are single-threaded values.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use codec::seal::{HopKeys, Opener, Packet, Sealer, Unverified};
use codec::{
    ClusterKey, MemberId, MemberState, Message, Roster, Rumor, SecretKey, SharedKeyRing, Suite,
    Update, DEFAULT_MTU,
};
use rumor::runtime::unix_ms;

use crate::cluster::CLUSTER_KEY_ID;

/// How long the responder blocks in one receive before looking at its stop flag.
const RECV_WAIT: Duration = Duration::from_millis(20);
/// Largest datagram read: the largest UDP payload.
const RECV_BUF: usize = 65_536;

/// What a member's datagrams and statements revealed on the wire.
#[derive(Default, Debug, Clone)]
pub(crate) struct Learned {
    /// Boot epoch in each sender's headers (plaintext in every suite).
    pub(crate) epochs: HashMap<MemberId, u64>,
    /// Highest incarnation each member announced itself alive at.
    pub(crate) announced: HashMap<MemberId, u64>,
    /// Highest rumor sequence number seen per origin.
    pub(crate) rumor_seq: HashMap<MemberId, u64>,
}

struct State {
    sealer: Sealer,
    incarnation: u64,
    next_seq: u64,
    learned: Learned,
}

/// An admitted member played by the harness.
pub(crate) struct Insider {
    pub(crate) id: MemberId,
    pub(crate) suite: Suite,
    pub(crate) tag: u32,
    secret: Arc<SecretKey>,
    ring: Option<SharedKeyRing>,
    roster: Arc<Roster>,
    sock: UdpSocket,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Insider {
    /// An insider on `sock` (bound at its roster address) with its roster key and, for
    /// shared-key suites, the cluster key. Its boot epoch is `epoch`.
    pub(crate) fn new(
        id: MemberId,
        suite: Suite,
        secret: SecretKey,
        cluster_key: Option<ClusterKey>,
        roster: Roster,
        sock: UdpSocket,
        epoch: u64,
    ) -> anyhow::Result<Insider> {
        let secret = Arc::new(secret);
        let ring = cluster_key.map(|k| SharedKeyRing::new(CLUSTER_KEY_ID, k));
        let hop = HopKeys::for_suite(suite, ring.as_ref(), &secret)?;
        let tag = roster.cluster_tag();
        let sealer = Sealer::new(suite, tag, id, epoch, hop, &mut rand::rngs::OsRng)?;
        // As `Boot::from_epoch` numbers a node's incarnations and rumors.
        let state = State {
            sealer,
            incarnation: epoch << 16,
            next_seq: epoch << 32,
            learned: Learned::default(),
        };
        Ok(Insider {
            id,
            suite,
            tag,
            secret,
            ring,
            roster: Arc::new(roster),
            sock,
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    pub(crate) fn learned(&self) -> Learned {
        self.state().learned.clone()
    }

    /// Signs `u` as this member when the suite carries statement signatures (the authority
    /// layer's rule; harmless where nothing checks them).
    pub(crate) fn signed_update(&self, mut u: Update) -> Update {
        u.signature = self
            .suite
            .signs_origin()
            .then(|| self.secret.sign(&u.signing_input(self.tag)));
        u
    }

    /// A rumor of this member's own, origin-signed where the suite signs origins.
    pub(crate) fn own_rumor(&self, seq: u64, payload: &[u8]) -> Rumor {
        sign_rumor_as(&self.secret, self.suite, self.tag, self.id, seq, payload)
    }

    /// A rumor claiming another member as its origin, signed with this member's own key: the
    /// forger's statement.
    pub(crate) fn forged_rumor(&self, origin: MemberId, seq: u64, payload: &[u8]) -> Rumor {
        sign_rumor_as(&self.secret, self.suite, self.tag, origin, seq, payload)
    }

    /// The next sequence number of this member's own rumors.
    pub(crate) fn next_seq(&self) -> u64 {
        let mut s = self.state();
        s.next_seq += 1;
        s.next_seq
    }

    fn alive(&self, incarnation: u64) -> anyhow::Result<Message> {
        Ok(Message::Update(self.signed_update(Update {
            subject: self.id,
            incarnation,
            state: MemberState::Alive,
            origin: self.id,
            addr: Some(self.addr()?),
            signature: None,
        })))
    }

    /// Seals `msgs` into as many datagrams as they need, each stamped now.
    pub(crate) fn seal(&self, msgs: &[Message]) -> anyhow::Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut s = self.state();
        let mut p = Packet::new(self.suite, DEFAULT_MTU)?;
        for m in msgs {
            if !p.push(m)? {
                let full = std::mem::replace(&mut p, Packet::new(self.suite, DEFAULT_MTU)?);
                out.push(s.sealer.seal(unix_ms(), full)?);
                anyhow::ensure!(p.push(m)?, "a message larger than one datagram");
            }
        }
        if !p.is_empty() {
            out.push(s.sealer.seal(unix_ms(), p)?);
        }
        Ok(out)
    }

    /// Seals and sends `msgs` to `to`; returns the datagrams sent.
    pub(crate) fn send(&self, to: SocketAddr, msgs: &[Message]) -> anyhow::Result<u64> {
        let dgs = self.seal(msgs)?;
        for d in &dgs {
            self.sock
                .send_to(d, to)
                .with_context(|| format!("insider sending to {to}"))?;
        }
        Ok(dgs.len() as u64)
    }

    /// Sends already sealed datagrams from the insider's own address.
    pub(crate) fn send_raw(&self, to: SocketAddr, d: &[u8]) -> std::io::Result<usize> {
        self.sock.send_to(d, to)
    }

    /// Joins: says it is alive and asks `seed` for its view (push-pull), as a booting node does.
    pub(crate) fn join(&self, seed: SocketAddr) -> anyhow::Result<()> {
        let inc = self.state().incarnation;
        self.send(seed, &[Message::SyncRequest, self.alive(inc)?])?;
        Ok(())
    }

    /// Starts the responder thread; it ends when [`Insider::stop`] is called.
    pub(crate) fn spawn_responder(self: &Arc<Self>) -> anyhow::Result<JoinHandle<()>> {
        self.sock.set_read_timeout(Some(RECV_WAIT))?;
        let me = Arc::clone(self);
        Ok(std::thread::Builder::new()
            .name("insider".into())
            .spawn(move || me.respond_loop())?)
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn respond_loop(&self) {
        let Ok(mut opener) = Opener::new(self.suite, self.ring.clone()) else {
            return;
        };
        let mut buf = vec![0u8; RECV_BUF];
        while !self.stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(d) = Unverified::parse(BytesMut::from(&buf[..n]), self.suite, self.tag) else {
                continue;
            };
            let sender = d.header().sender;
            let epoch = d.header().epoch;
            let Ok(v) = opener.open(d, &*self.roster) else {
                continue;
            };
            let Ok(msgs) = v.decode_messages() else {
                continue;
            };
            self.state().learned.epochs.insert(sender, epoch);
            // Replies are upkeep, not attack traffic: a failed one only makes the insider look
            // slow, which honest nodes are built to tolerate.
            let _ = self.answer(from, msgs);
        }
    }

    fn answer(&self, from: SocketAddr, msgs: Vec<Message>) -> anyhow::Result<()> {
        let mut reply = Vec::new();
        for m in msgs {
            match m {
                Message::Ping { seq } => reply.push(Message::Ack { seq }),
                Message::SyncRequest => {
                    let inc = self.state().incarnation;
                    reply.push(Message::SyncReply);
                    reply.push(self.alive(inc)?);
                }
                Message::Update(u) => {
                    if let Some(refute) = self.learn_update(&u) {
                        reply.push(self.alive(refute)?);
                    }
                }
                Message::Rumor(r) => {
                    let mut s = self.state();
                    let seq = s.learned.rumor_seq.entry(r.origin).or_default();
                    *seq = (*seq).max(r.seq);
                }
                _ => {}
            }
        }
        if !reply.is_empty() {
            self.send(from, &reply)?;
        }
        Ok(())
    }

    /// Records an announced incarnation; returns the incarnation to refute at if the update
    /// says this member is not alive (SWIM: a suspected member answers with a higher one).
    fn learn_update(&self, u: &Update) -> Option<u64> {
        let mut s = self.state();
        if u.subject == self.id {
            let accused = u.state != MemberState::Alive && u.incarnation >= s.incarnation;
            if accused {
                s.incarnation = u.incarnation + 1;
                return Some(s.incarnation);
            }
            return None;
        }
        if u.state == MemberState::Alive && u.origin == u.subject {
            let inc = s.learned.announced.entry(u.subject).or_default();
            *inc = (*inc).max(u.incarnation);
        }
        None
    }
}

/// Who seals an outsider's datagrams and with what: nothing, or key material of its own.
pub(crate) struct Outsider {
    suite: Suite,
    tag: u32,
    /// The Ed25519 key it signs hops and statements with (not on the roster).
    pub(crate) key: Arc<SecretKey>,
    /// Its own "cluster key" (not the cluster's).
    ring: SharedKeyRing,
}

impl Outsider {
    /// An outsider with freshly generated keys of its own.
    pub(crate) fn new(suite: Suite, tag: u32) -> Outsider {
        let mut rng = rand::rngs::OsRng;
        Outsider {
            suite,
            tag,
            key: Arc::new(SecretKey::generate(&mut rng)),
            ring: SharedKeyRing::new(CLUSTER_KEY_ID, ClusterKey::generate(&mut rng)),
        }
    }

    /// A sealer that claims to be `claimed` at boot `epoch`, authenticating with the
    /// outsider's own keys (so, for any suite but `none`, with the wrong ones).
    pub(crate) fn sealer(&self, claimed: MemberId, epoch: u64) -> anyhow::Result<Sealer> {
        let hop = HopKeys::for_suite(self.suite, Some(&self.ring), &self.key)?;
        Ok(Sealer::new(
            self.suite,
            self.tag,
            claimed,
            epoch,
            hop,
            &mut rand::rngs::OsRng,
        )?)
    }

    /// A rumor that claims `origin`, signed (where the suite signs origins) with the outsider's
    /// own key.
    pub(crate) fn rumor(&self, origin: MemberId, seq: u64, payload: &[u8]) -> Rumor {
        sign_rumor_as(&self.key, self.suite, self.tag, origin, seq, payload)
    }
}

/// A rumor claiming `origin`, signed by `key` where the suite signs origins: with any key but
/// the origin's own, a forgery.
pub(crate) fn sign_rumor_as(
    key: &SecretKey,
    suite: Suite,
    tag: u32,
    origin: MemberId,
    seq: u64,
    payload: &[u8],
) -> Rumor {
    let mut r = Rumor {
        origin,
        seq,
        timestamp_ms: unix_ms(),
        payload: Bytes::copy_from_slice(payload),
        signature: None,
    };
    r.signature = suite
        .signs_origin()
        .then(|| key.sign(&r.signing_input(tag)));
    r
}

/// One datagram carrying `msgs`, sealed by `sealer` now.
pub(crate) fn seal_one(sealer: &mut Sealer, msgs: &[Message]) -> anyhow::Result<Bytes> {
    let mut p = Packet::new(sealer.suite(), DEFAULT_MTU)?;
    for m in msgs {
        anyhow::ensure!(p.push(m)?, "messages do not fit one datagram");
    }
    Ok(sealer.seal(unix_ms(), p)?)
}

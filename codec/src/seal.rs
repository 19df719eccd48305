//! Sealing and opening whole datagrams: `header | body | trailer`, the header always
//! authenticated (MAC input, AEAD associated data, or signed bytes).
//!
//! Nonce rule (AEAD suites). A (key, nonce) pair never repeats:
//! - each boot derives its own sending subkey
//!   `HKDF-SHA256(salt = header salt, ikm = cluster key, info = label | suite | key id | member | epoch)`,
//!   with a fresh random 128-bit salt per boot carried in every header;
//! - the nonce is `0u32 || counter` under that subkey, the counter strictly increasing from 1;
//!   at `u64::MAX` sealing stops ([`SealError::CounterExhausted`]) until the caller starts a new
//!   epoch ([`Sealer::start_epoch`], with [`crate::epoch::EpochStore::advance`]).
//!
//! Members sharing a cluster key differ in member id; restarts differ in epoch (persisted,
//! `epoch.rs`); snapshots, copied state and twin instances differ in salt. Nonces are built only
//! by [`nonce_for`] here: no API takes a nonce from the caller.
//! Tested by `nonce_uniqueness.rs` (1000 restarts, rolled-back state, twin instances).
//!
//! Concurrency: a `Sealer` belongs to one sending thread; an `Opener` to one receiving thread
//! (each keeps its own subkey cache); both share the key ring through [`SharedKeyRing`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand::{CryptoRng, RngCore};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::{hkdf, hmac};

use crate::ed25519::{self, PublicKey, SecretKey, Signature, SIGNATURE_LEN};
use crate::header::{arr, Header, MemberId, Salt, SALT_LEN};
use crate::keys::{ClusterKey, RingView, SharedKeyRing};
use crate::message::{Frames, Message};
use crate::suite::{AeadAlg, HopAuth, Suite};
use crate::WireError;

const SUBKEY_LABEL: &[u8] = b"rumor aead subkey v1";
/// Per-receiver bound on cached AEAD subkeys: one per (sender, key id) of a large cluster.
pub const DEFAULT_SUBKEY_CACHE: usize = 16_384;

/// Derives a boot's 256-bit AEAD subkey; see the module docs.
pub(crate) fn derive_subkey(
    alg: AeadAlg,
    key: &ClusterKey,
    key_id: u32,
    member: MemberId,
    epoch: u64,
    salt: &[u8; SALT_LEN],
) -> [u8; 32] {
    let suite_byte = [match alg {
        AeadAlg::Aes256Gcm => Suite::Aes256Gcm.id(),
        AeadAlg::ChaCha20Poly1305 => Suite::ChaCha20Poly1305.id(),
    }];
    let (k, m, e) = (
        key_id.to_be_bytes(),
        member.to_be_bytes(),
        epoch.to_be_bytes(),
    );
    let info: [&[u8]; 5] = [SUBKEY_LABEL, &suite_byte, &k, &m, &e];
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(key.bytes());
    let mut out = [0u8; 32];
    // expand/fill fail only for an output longer than 255 hash blocks; 32 bytes never is.
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-SHA256 expand of 32 bytes");
    out
}

/// The subkey a receiver derives for `h`, as raw bytes: for the nonce-uniqueness test only.
#[cfg(test)]
pub(crate) fn wire_subkey(
    suite: Suite,
    ring: &crate::keys::KeyRingState,
    h: &Header,
) -> Option<[u8; 32]> {
    let HopAuth::Aead(alg) = suite.hop() else {
        return None;
    };
    Some(derive_subkey(
        alg,
        ring.get(h.key_id)?,
        h.key_id,
        h.sender,
        h.epoch,
        &h.salt.as_ref()?.0,
    ))
}

/// The only place a nonce is made: from the authenticated header counter.
#[inline]
fn nonce_for(counter: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aead_key(alg: AeadAlg, raw: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is the right length for both algorithms, so construction cannot fail.
    LessSafeKey::new(UnboundKey::new(alg.ring(), raw).expect("256-bit AEAD key"))
}

/// The keys a sender authenticates its hops with.
#[derive(Clone)]
pub enum HopKeys {
    None,
    /// Shared-key suites: the node's key ring (the primary key seals).
    Ring(SharedKeyRing),
    /// `ed25519`: the member's own signing key.
    Signer(Arc<SecretKey>),
}

impl HopKeys {
    /// The keys `suite` seals hops with: nothing, the cluster key ring, or the member's own
    /// signing key. A suite that needs the ring is refused, naming it, when `ring` is absent.
    pub fn for_suite(
        suite: Suite,
        ring: Option<&SharedKeyRing>,
        signer: &Arc<SecretKey>,
    ) -> Result<HopKeys, SealError> {
        Ok(match suite.hop() {
            HopAuth::None => HopKeys::None,
            HopAuth::Signature => HopKeys::Signer(Arc::clone(signer)),
            HopAuth::Mac | HopAuth::Aead(_) => {
                HopKeys::Ring(ring.cloned().ok_or(SealError::WrongKeys {
                    suite,
                    need: "the cluster key ring",
                })?)
            }
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("suite {suite} needs {need}")]
    WrongKeys { suite: Suite, need: &'static str },
    #[error("the datagram counter of this epoch is exhausted; start a new epoch")]
    CounterExhausted,
    #[error("packet was built for suite {built}, sealer uses {sealer}")]
    SuiteMismatch { built: Suite, sealer: Suite },
}

/// A datagram under construction: header space reserved, frames appended while they fit the MTU.
#[derive(Debug)]
pub struct Packet {
    buf: Vec<u8>,
    suite: Suite,
    limit: usize,
}

impl Packet {
    /// A packet whose sealed size will be at most `mtu`.
    pub fn new(suite: Suite, mtu: usize) -> Result<Packet, WireError> {
        let overhead = Header::len_for(suite) + suite.trailer_len();
        let min = overhead + crate::MIN_BODY;
        if !(min..=crate::header::MAX_MTU).contains(&mtu) {
            return Err(WireError::BadMtu {
                mtu,
                min,
                max: crate::header::MAX_MTU,
            });
        }
        let mut buf = Vec::with_capacity(mtu);
        buf.resize(Header::len_for(suite), 0);
        Ok(Packet {
            buf,
            suite,
            limit: mtu - suite.trailer_len(),
        })
    }

    /// Appends `m` if it fits; returns whether it did (the packet is unchanged if not).
    pub fn push(&mut self, m: &Message) -> Result<bool, WireError> {
        let before = self.buf.len();
        m.encode(&mut self.buf)?;
        if self.buf.len() > self.limit {
            self.buf.truncate(before);
            return Ok(false);
        }
        Ok(true)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() == Header::len_for(self.suite)
    }

    /// Empties the packet for the next datagram, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.truncate(Header::len_for(self.suite));
    }

    /// Body bytes still free under the MTU.
    pub fn remaining(&self) -> usize {
        self.limit - self.buf.len()
    }
}

enum SealMode {
    None,
    Mac {
        view: RingView,
    },
    Aead {
        alg: AeadAlg,
        view: RingView,
        key_id: u32,
        // Boxed: ring's expanded AES/GHASH key is large; the other modes should not carry it.
        key: Box<LessSafeKey>,
    },
    Sign(Arc<SecretKey>),
}

/// Per-boot sending state: epoch, salt, counter and the hop key.
pub struct Sealer {
    suite: Suite,
    cluster_tag: u32,
    sender: MemberId,
    epoch: u64,
    counter: u64,
    salt: Salt,
    mode: SealMode,
}

impl Sealer {
    pub fn new<R: RngCore + CryptoRng>(
        suite: Suite,
        cluster_tag: u32,
        sender: MemberId,
        epoch: u64,
        keys: HopKeys,
        rng: &mut R,
    ) -> Result<Sealer, SealError> {
        let mode = match (suite.hop(), keys) {
            (HopAuth::None, _) => SealMode::None,
            (HopAuth::Mac, HopKeys::Ring(r)) => SealMode::Mac {
                view: RingView::new(r),
            },
            (HopAuth::Aead(alg), HopKeys::Ring(r)) => {
                // Placeholder key, replaced by `rekey` below before any use.
                SealMode::Aead {
                    alg,
                    view: RingView::new(r),
                    key_id: 0,
                    key: Box::new(aead_key(alg, &[0; 32])),
                }
            }
            (HopAuth::Signature, HopKeys::Signer(s)) => SealMode::Sign(s),
            (HopAuth::Signature, _) => {
                return Err(SealError::WrongKeys {
                    suite,
                    need: "a member signing key",
                })
            }
            (_, _) => {
                return Err(SealError::WrongKeys {
                    suite,
                    need: "the cluster key ring",
                })
            }
        };
        let mut s = Sealer {
            suite,
            cluster_tag,
            sender,
            epoch,
            counter: 0,
            salt: Salt([0; SALT_LEN]),
            mode,
        };
        s.start_epoch(epoch, rng);
        Ok(s)
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn sender(&self) -> MemberId {
        self.sender
    }

    /// Begins a new epoch: fresh salt, counter back to zero, subkey re-derived.
    pub fn start_epoch<R: RngCore + CryptoRng>(&mut self, epoch: u64, rng: &mut R) {
        self.epoch = epoch;
        self.counter = 0;
        rng.fill_bytes(&mut self.salt.0);
        self.rekey(true);
    }

    /// Re-derives the AEAD subkey when the ring's primary changed (or when forced).
    fn rekey(&mut self, force: bool) {
        if let SealMode::Aead {
            alg,
            view,
            key_id,
            key,
        } = &mut self.mode
        {
            let (state, changed) = view.current();
            if changed || force {
                let (id, ck) = state.primary();
                **key = aead_key(
                    *alg,
                    &derive_subkey(*alg, ck, id, self.sender, self.epoch, &self.salt.0),
                );
                *key_id = id;
            }
        }
    }

    /// Seals `packet` stamped with the caller's clock. The counter advances on every call.
    pub fn seal(&mut self, now_unix_ms: u64, packet: Packet) -> Result<Bytes, SealError> {
        if packet.suite != self.suite {
            return Err(SealError::SuiteMismatch {
                built: packet.suite,
                sealer: self.suite,
            });
        }
        if self.counter == u64::MAX {
            return Err(SealError::CounterExhausted);
        }
        self.counter += 1;
        self.rekey(false);
        let key_id = match &mut self.mode {
            SealMode::Aead { key_id, .. } => *key_id,
            SealMode::Mac { view } => view.current().0.primary_id(),
            _ => 0,
        };
        let header = Header {
            suite: self.suite,
            cluster_tag: self.cluster_tag,
            key_id,
            sender: self.sender,
            epoch: self.epoch,
            counter: self.counter,
            timestamp_ms: now_unix_ms,
            salt: self.suite.has_salt().then_some(self.salt),
        };
        let mut buf = packet.buf;
        let hlen = header.encoded_len();
        let mut h = Vec::with_capacity(hlen);
        header.write(&mut h);
        buf[..hlen].copy_from_slice(&h);
        match &mut self.mode {
            SealMode::None => {}
            SealMode::Mac { view } => {
                let mac = hmac::sign(
                    &hmac::Key::new(hmac::HMAC_SHA256, view.current().0.primary().1.bytes()),
                    &buf,
                );
                buf.extend_from_slice(mac.as_ref());
            }
            SealMode::Aead { key, .. } => {
                let (head, body) = buf.split_at_mut(hlen);
                // Sealing fails only for bodies beyond ring's 2^36-byte limit; ours are < 64 KiB.
                let tag = key
                    .seal_in_place_separate_tag(nonce_for(self.counter), Aad::from(&*head), body)
                    .expect("AEAD seal of an MTU-bounded body");
                buf.extend_from_slice(tag.as_ref());
            }
            SealMode::Sign(sk) => {
                let sig = sk.sign(&buf);
                buf.extend_from_slice(&sig.to_bytes());
            }
        }
        Ok(Bytes::from(buf))
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, c: u64) {
        self.counter = c;
    }
    #[cfg(test)]
    pub(crate) fn current_subkey(&mut self) -> Option<[u8; 32]> {
        let (sender, epoch, salt) = (self.sender, self.epoch, self.salt);
        match &mut self.mode {
            SealMode::Aead {
                alg, view, key_id, ..
            } => {
                let alg = *alg;
                let id = *key_id;
                let ring = view.current().0;
                Some(derive_subkey(
                    alg,
                    ring.get(id)?,
                    id,
                    sender,
                    epoch,
                    &salt.0,
                ))
            }
            _ => None,
        }
    }
}

/// A datagram whose header parsed and whose lengths add up. Nothing in it is authenticated.
#[derive(Debug)]
pub struct Unverified {
    header: Header,
    buf: BytesMut,
}

impl Unverified {
    /// Cheap, crypto-free checks: header, suite and cluster match, room for the trailer.
    #[inline(always)]
    pub fn parse(buf: BytesMut, suite: Suite, cluster_tag: u32) -> Result<Unverified, WireError> {
        let header = Header::parse(&buf)?;
        if header.suite != suite {
            return Err(WireError::WrongSuite {
                got: header.suite,
                want: suite,
            });
        }
        if header.cluster_tag != cluster_tag {
            return Err(WireError::WrongCluster(header.cluster_tag));
        }
        let need = header.encoded_len() + suite.trailer_len();
        if buf.len() < need {
            return Err(WireError::Truncated {
                what: "datagram",
                need,
                have: buf.len(),
            });
        }
        Ok(Unverified { header, buf })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The raw bytes as received (for digests: dedup of identical datagrams).
    pub fn raw(&self) -> &[u8] {
        &self.buf
    }

    /// For `ed25519` hop signatures: the signed bytes and the signature.
    pub fn signed_parts(&self) -> Option<(&[u8], Signature)> {
        if self.header.suite.hop() != HopAuth::Signature {
            return None;
        }
        let split = self.buf.len() - SIGNATURE_LEN;
        Some((
            &self.buf[..split],
            Signature::from_bytes(arr(&self.buf[split..])),
        ))
    }

    #[inline]
    fn into_verified(mut self) -> Verified {
        // Trim header and trailer by moving the buffer's bounds: no refcount traffic.
        self.buf
            .truncate(self.buf.len() - self.header.suite.trailer_len());
        bytes::Buf::advance(&mut self.buf, self.header.encoded_len());
        Verified {
            header: self.header,
            body: self.buf.freeze(),
        }
    }
}

/// A datagram that passed its suite's hop authentication. Only this module makes one.
/// Freshness (anti-replay) is checked separately, see `anti_replay.rs`.
#[derive(Debug, Clone)]
pub struct Verified {
    header: Header,
    body: Bytes,
}

impl Verified {
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The plaintext body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    pub fn messages(&self) -> Frames {
        Frames::new(self.body.clone())
    }
    /// Consumes the datagram into its frames (saves a refcount round trip over `messages`).
    pub fn into_messages(self) -> Frames {
        Frames::new(self.body)
    }
    /// Decodes every frame, failing on the first bad one.
    pub fn decode_messages(&self) -> Result<Vec<Message>, WireError> {
        self.messages().collect()
    }
}

/// Where receivers find member public keys (the roster). Only admitted keys belong in it.
pub trait MemberKeys {
    fn public_key(&self, member: MemberId) -> Option<&PublicKey>;
}

impl MemberKeys for HashMap<MemberId, PublicKey> {
    fn public_key(&self, member: MemberId) -> Option<&PublicKey> {
        self.get(&member)
    }
}

impl MemberKeys for Vec<PublicKey> {
    fn public_key(&self, member: MemberId) -> Option<&PublicKey> {
        self.get(member as usize)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum OpenError {
    #[error("key id {0} is not installed")]
    UnknownKeyId(u32),
    #[error("sender {0} is not an admitted member")]
    UnknownSender(MemberId),
    #[error("authentication failed")]
    BadAuth,
}

struct SubkeyEntry {
    epoch: u64,
    salt: Salt,
    key: LessSafeKey,
}

/// Receiving state of one thread: the key ring view and a bounded cache of derived subkeys.
pub struct Opener {
    suite: Suite,
    ring: Option<RingView>,
    subkeys: HashMap<(u32, MemberId), SubkeyEntry, foldhash::fast::RandomState>,
    subkey_cap: usize,
    hmac: Option<(u32, hmac::Key)>,
}

impl Opener {
    /// `ring` is required for shared-key suites and ignored otherwise.
    pub fn new(suite: Suite, ring: Option<SharedKeyRing>) -> Result<Opener, SealError> {
        if suite.uses_cluster_key() && ring.is_none() {
            return Err(SealError::WrongKeys {
                suite,
                need: "the cluster key ring",
            });
        }
        Ok(Opener {
            suite,
            ring: ring.map(RingView::new),
            subkeys: HashMap::default(),
            subkey_cap: DEFAULT_SUBKEY_CACHE,
            hmac: None,
        })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Authenticates a datagram with its suite's hop protection; decrypts AEAD bodies in place.
    #[inline]
    pub fn open(&mut self, d: Unverified, keys: &impl MemberKeys) -> Result<Verified, OpenError> {
        // Dispatch on the header in place: a copy of it per datagram showed in the profile.
        match d.header.suite.hop() {
            HopAuth::None => Ok(d.into_verified()),
            HopAuth::Signature => {
                let sender = d.header.sender;
                let key = keys
                    .public_key(sender)
                    .ok_or(OpenError::UnknownSender(sender))?;
                let (msg, sig) = d.signed_parts().ok_or(OpenError::BadAuth)?;
                ed25519::verify(key, msg, &sig).map_err(|_| OpenError::BadAuth)?;
                Ok(d.into_verified())
            }
            HopAuth::Mac => self.open_mac(d),
            HopAuth::Aead(alg) => self.open_aead(alg, d),
        }
    }

    #[inline]
    fn refresh_ring(&mut self) {
        if let Some(view) = &mut self.ring {
            if view.current().1 {
                // A removed key must stop working at once, including subkeys derived from it.
                self.subkeys.clear();
                self.hmac = None;
            }
        }
    }

    #[inline]
    fn open_mac(&mut self, d: Unverified) -> Result<Verified, OpenError> {
        self.refresh_ring();
        let kid = d.header.key_id;
        if self.hmac.as_ref().map(|(id, _)| *id) != Some(kid) {
            let ring = self
                .ring
                .as_mut()
                .ok_or(OpenError::UnknownKeyId(kid))?
                .current()
                .0;
            let ck = ring.get(kid).ok_or(OpenError::UnknownKeyId(kid))?;
            self.hmac = Some((kid, hmac::Key::new(hmac::HMAC_SHA256, ck.bytes())));
        }
        let Some((_, key)) = &self.hmac else {
            return Err(OpenError::UnknownKeyId(kid));
        };
        let split = d.buf.len() - crate::header::MAC_LEN;
        hmac::verify(key, &d.buf[..split], &d.buf[split..]).map_err(|_| OpenError::BadAuth)?;
        Ok(d.into_verified())
    }

    /// The hit path: the sender's subkey is cached. Borrows the header in place and hands the
    /// datagram on by value once, so the per-datagram work beside the AEAD is one table probe.
    #[inline]
    fn open_aead(&mut self, alg: AeadAlg, mut d: Unverified) -> Result<Verified, OpenError> {
        self.refresh_ring();
        let h = &d.header;
        let salt = h.salt.as_ref().ok_or(OpenError::BadAuth)?;
        match self
            .subkeys
            .get(&(h.key_id, h.sender))
            .filter(|e| e.epoch == h.epoch && e.salt == *salt)
        {
            Some(e) => {
                aead_open(&e.key, &mut d)?;
                Ok(d.into_verified())
            }
            None => self.open_aead_derive(alg, d),
        }
    }

    /// The miss path: derive the sender's subkey for this boot, open, cache the key if it
    /// authenticated. Out of line: it runs once per sender and boot.
    #[cold]
    #[inline(never)]
    fn open_aead_derive(&mut self, alg: AeadAlg, mut d: Unverified) -> Result<Verified, OpenError> {
        let h = d.header;
        let salt = h.salt.ok_or(OpenError::BadAuth)?;
        let slot = (h.key_id, h.sender);
        let ring = self
            .ring
            .as_mut()
            .ok_or(OpenError::UnknownKeyId(h.key_id))?
            .current()
            .0;
        let ck = ring
            .get(h.key_id)
            .ok_or(OpenError::UnknownKeyId(h.key_id))?;
        let key = aead_key(
            alg,
            &derive_subkey(alg, ck, h.key_id, h.sender, h.epoch, &salt.0),
        );
        aead_open(&key, &mut d)?;
        // Cache only keys that just authenticated a datagram, so forgeries cannot evict honest
        // entries; never let an older epoch displace a newer one.
        if self.subkeys.get(&slot).is_none_or(|e| h.epoch >= e.epoch) {
            if self.subkeys.len() >= self.subkey_cap && !self.subkeys.contains_key(&slot) {
                if let Some(victim) = self.subkeys.keys().next().copied() {
                    self.subkeys.remove(&victim);
                }
            }
            self.subkeys.insert(
                slot,
                SubkeyEntry {
                    epoch: h.epoch,
                    salt,
                    key,
                },
            );
        }
        Ok(d.into_verified())
    }
}

#[inline]
fn aead_open(key: &LessSafeKey, d: &mut Unverified) -> Result<(), OpenError> {
    let (head, rest) = d.buf.split_at_mut(d.header.encoded_len());
    key.open_in_place(nonce_for(d.header.counter), Aad::from(&*head), rest)
        .map(|_| ())
        .map_err(|_| OpenError::BadAuth)
}

/// Opens `ed25519` datagrams in batches ([`ed25519::verify_each`]): each result is what
/// [`Opener::open`] gives the datagram alone. Datagrams that cannot be checked (unknown sender,
/// not a signature suite) fail without joining a batch.
pub fn open_ed25519_each<R: RngCore + CryptoRng>(
    items: Vec<Unverified>,
    keys: &impl MemberKeys,
    rng: &mut R,
    tally: &mut ed25519::Tally,
) -> Vec<Result<Verified, OpenError>> {
    let mut verdicts: Vec<Result<(), OpenError>> = Vec::with_capacity(items.len());
    let mut signed = Vec::with_capacity(items.len());
    for d in &items {
        let sender = d.header.sender;
        match (keys.public_key(sender), d.signed_parts()) {
            (Some(key), Some((msg, sig))) => {
                signed.push((key, msg, sig));
                verdicts.push(Ok(()));
            }
            (None, _) => verdicts.push(Err(OpenError::UnknownSender(sender))),
            (_, None) => verdicts.push(Err(OpenError::BadAuth)),
        }
    }
    let checkable: Vec<ed25519::Item> = signed.iter().map(|(k, m, s)| (*k, *m, s)).collect();
    let mut good = ed25519::verify_each(&checkable, rng, tally).into_iter();
    for v in verdicts.iter_mut().filter(|v| v.is_ok()) {
        if good.next() != Some(true) {
            *v = Err(OpenError::BadAuth);
        }
    }
    items
        .into_iter()
        .zip(verdicts)
        .map(|(d, v)| v.map(|()| d.into_verified()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_packet_packs_as_a_new_one() {
        let rumor = |len: usize| {
            Message::Rumor(crate::Rumor {
                origin: 3,
                seq: len as u64,
                timestamp_ms: 9,
                payload: bytes::Bytes::from(vec![0x5a; len]),
                signature: None,
            })
        };
        // The middle rumor does not fit: left out, the last one still packed.
        let set = [rumor(600), rumor(1000), rumor(40)];
        let mut used = Packet::new(Suite::Ed25519, 1400).unwrap();
        assert!(used.push(&Message::Ping { seq: 1 }).unwrap());
        used.clear();
        assert!(used.is_empty());
        let mut fresh = Packet::new(Suite::Ed25519, 1400).unwrap();
        assert_eq!(used.remaining(), fresh.remaining());
        let packed: Vec<bool> = set.iter().map(|m| used.push(m).unwrap()).collect();
        assert_eq!(packed, [true, false, true]);
        for m in &set {
            fresh.push(m).unwrap();
        }
        assert_eq!(used.remaining(), fresh.remaining());
    }

    #[test]
    fn counter_exhaustion_requires_new_epoch_and_new_salt() {
        let mut rng = rand::thread_rng();
        let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rng));
        let mut s = Sealer::new(Suite::Aes256Gcm, 7, 3, 10, HopKeys::Ring(ring), &mut rng).unwrap();
        let k1 = s.current_subkey().unwrap();
        s.set_counter(u64::MAX - 1);
        assert!(s
            .seal(0, Packet::new(Suite::Aes256Gcm, 1400).unwrap())
            .is_ok());
        assert_eq!(
            s.seal(0, Packet::new(Suite::Aes256Gcm, 1400).unwrap()),
            Err(SealError::CounterExhausted)
        );
        s.start_epoch(11, &mut rng);
        assert_ne!(s.current_subkey().unwrap(), k1);
        assert!(s
            .seal(0, Packet::new(Suite::Aes256Gcm, 1400).unwrap())
            .is_ok());
    }

    #[test]
    fn wrong_keys_for_suite_are_refused() {
        let mut rng = rand::thread_rng();
        assert!(Sealer::new(Suite::Ed25519, 0, 0, 1, HopKeys::None, &mut rng).is_err());
        assert!(Sealer::new(Suite::HmacSha256, 0, 0, 1, HopKeys::None, &mut rng).is_err());
        assert!(Opener::new(Suite::ChaCha20Poly1305, None).is_err());
        let sk = Arc::new(SecretKey::generate(&mut rng));
        assert!(matches!(
            HopKeys::for_suite(Suite::Ed25519, None, &sk),
            Ok(HopKeys::Signer(_))
        ));
        assert!(matches!(
            HopKeys::for_suite(Suite::None, None, &sk),
            Ok(HopKeys::None)
        ));
        for suite in [Suite::HmacSha256, Suite::Aes256Gcm, Suite::AeadEd25519] {
            assert_eq!(
                HopKeys::for_suite(suite, None, &sk).err(),
                Some(SealError::WrongKeys {
                    suite,
                    need: "the cluster key ring"
                })
            );
        }
    }
}

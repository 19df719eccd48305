//! Ed25519 under one rule set everywhere: ZIP-215 (<https://zips.z.cash/zip-0215>), as
//! implemented by ed25519-zebra.
//!
//! Rules: S must be canonical (< ℓ); A and R may be any curve point encoding, canonical or not;
//! the check is the cofactored equation [8][S]B = [8]R + [8][k]A. Why: with the cofactorless
//! equation a signature whose R or A carries a torsion component verifies alone but fails
//! inside a random-linear-combination batch (or the reverse, depending on the batch's random
//! coefficients), so a message's fate would depend on which other messages shared its batch,
//! and a certificate accepted by one node could be refused by another. Under ZIP-215 the single
//! and batch paths agree on every input. Keys of small order (which make any signature on any
//! message verify) and keys with a torsion component are refused at admission
//! ([`PublicKey::check_admissible`]), never at verification, so admission is the only policy knob.
//!
//! Concurrency: all types are immutable after construction and `Send + Sync`.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::{batch, SigningKey, VerificationKey, VerificationKeyBytes};
use rand::{CryptoRng, RngCore};

pub const SIGNATURE_LEN: usize = 64;
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SECRET_KEY_LEN: usize = 32;

/// An Ed25519 signature as bytes. Holding one proves nothing; only [`verify`] does.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    pub fn from_bytes(b: [u8; SIGNATURE_LEN]) -> Self {
        Signature(b)
    }
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }
    fn zebra(&self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.0)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..8]))
    }
}

/// A parsed (decompressed once) Ed25519 public key. Parsing accepts any point encoding, as
/// ZIP-215 does; admission to a roster additionally requires [`PublicKey::check_admissible`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    vk: VerificationKey,
}

/// Why a public key cannot be used or admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not an encoding of a curve point")]
    NotAPoint,
    #[error("non-canonical point encoding")]
    NonCanonical,
    #[error("key of small order (would make forged signatures verify)")]
    SmallOrder,
    #[error("key has a torsion component (not in the prime-order subgroup)")]
    Torsion,
}

impl PublicKey {
    pub fn from_bytes(b: [u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, KeyError> {
        VerificationKey::try_from(b)
            .map(|vk| PublicKey { vk })
            .map_err(|_| KeyError::NotAPoint)
    }

    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.vk.into()
    }

    /// Admission policy: a canonical encoding of a point in the prime-order subgroup.
    /// Honestly generated keys always pass; small-order keys would let anyone forge.
    pub fn check_admissible(&self) -> Result<(), KeyError> {
        let bytes = self.to_bytes();
        let p = CompressedEdwardsY(bytes)
            .decompress()
            .ok_or(KeyError::NotAPoint)?;
        if p.compress().to_bytes() != bytes {
            return Err(KeyError::NonCanonical);
        }
        if p.is_small_order() {
            return Err(KeyError::SmallOrder);
        }
        if !p.is_torsion_free() {
            return Err(KeyError::Torsion);
        }
        Ok(())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_bytes()))
    }
}

/// A member's signing key. Opaque: no accessor returns its bytes except for writing a key file.
pub struct SecretKey {
    sk: SigningKey,
}

impl SecretKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> SecretKey {
        SecretKey {
            sk: SigningKey::new(rng),
        }
    }
    pub(crate) fn from_seed(seed: [u8; SECRET_KEY_LEN]) -> SecretKey {
        SecretKey {
            sk: SigningKey::from(seed),
        }
    }
    pub(crate) fn seed(&self) -> [u8; SECRET_KEY_LEN] {
        self.sk.into()
    }
    pub fn public(&self) -> PublicKey {
        PublicKey {
            vk: VerificationKey::from(&self.sk),
        }
    }
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.sk.sign(msg).to_bytes())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {:?})", self.public())
    }
}

/// The signature did not verify under ZIP-215 rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("bad signature")]
pub struct BadSignature;

/// Verifies one signature (ZIP-215). Agrees with [`Batch::verify`] on every input.
pub fn verify(key: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), BadSignature> {
    key.vk.verify(&sig.zebra(), msg).map_err(|_| BadSignature)
}

/// A batch of signatures checked with one multiscalar multiplication (ZIP-215, random 128-bit
/// coefficients). A failed batch says only "some item is bad": callers bisect.
#[derive(Default)]
pub struct Batch {
    inner: batch::Verifier,
    len: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
    /// Queues one item; the message is hashed now, so it need not outlive the call.
    pub fn queue(&mut self, key: &PublicKey, msg: &[u8], sig: &Signature) {
        let vkb: VerificationKeyBytes = key.vk.into();
        self.inner.queue((vkb, sig.zebra(), msg));
        self.len += 1;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn verify<R: RngCore + CryptoRng>(self, rng: R) -> Result<(), BadSignature> {
        if self.len == 0 {
            return Ok(());
        }
        self.inner.verify(rng).map_err(|_| BadSignature)
    }
}

/// One signature to check: the signer's key, the signed bytes, the signature.
pub type Item<'a> = (&'a PublicKey, &'a [u8], &'a Signature);

/// Batches this small are verified one by one: a failed pair is followed by two singles anyway.
const SINGLE_AT: usize = 2;

/// What [`verify_each`] paid, for the caller's stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Signature checks, counting every item of every batch attempt and every single.
    pub verifications: u64,
    /// Batch verifications run (first attempts and bisection halves).
    pub batches: u64,
    /// Of those, how many failed and were split.
    pub bisections: u64,
    /// Single verifications.
    pub singles: u64,
}

/// The verdict of [`verify`] for each of `items`, in order, paid for in batches: a failed batch
/// is split in halves, down to single checks, so one forgery does not sink the honest items
/// that shared its batch (Pastuszak, Michałek, Pieprzyk and Seberry, "Identification of bad
/// signatures in batches", PKC 2000). When a failed batch's left half verifies, its right half
/// is known bad and is split at once. ZIP-215 makes every verdict independent of the company.
pub fn verify_each<R: RngCore + CryptoRng>(
    items: &[Item],
    rng: &mut R,
    tally: &mut Tally,
) -> Vec<bool> {
    let mut out = vec![false; items.len()];
    let all: Vec<usize> = (0..items.len()).collect();
    settle(items, &all, false, rng, tally, &mut out);
    out
}

/// Writes the verdicts of `items[at]` into `out`; returns whether all verified.
fn settle<R: RngCore + CryptoRng>(
    items: &[Item],
    at: &[usize],
    known_bad: bool,
    rng: &mut R,
    tally: &mut Tally,
    out: &mut [bool],
) -> bool {
    if at.len() <= SINGLE_AT {
        let mut all = true;
        for &i in at {
            let (key, msg, sig) = items[i];
            tally.singles += 1;
            tally.verifications += 1;
            out[i] = verify(key, msg, sig).is_ok();
            all &= out[i];
        }
        return all;
    }
    if !known_bad {
        tally.batches += 1;
        tally.verifications += at.len() as u64;
        let mut batch = Batch::new();
        for &i in at {
            let (key, msg, sig) = items[i];
            batch.queue(key, msg, sig);
        }
        if batch.verify(&mut *rng).is_ok() {
            for &i in at {
                out[i] = true;
            }
            return true;
        }
        tally.bisections += 1;
    }
    let (left, right) = at.split_at(at.len() / 2);
    let left_ok = settle(items, left, false, rng, tally, out);
    settle(items, right, left_ok, rng, tally, out);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn each_verdict_is_the_single_verdict_whatever_the_company() {
        let mut rng = rand::thread_rng();
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate(&mut rng)).collect();
        let msgs: Vec<Vec<u8>> = (0..37u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
        // Every fifth item is signed by the wrong key, and item 36 carries another's signature.
        let sigs: Vec<Signature> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| keys[(i + usize::from(i % 5 == 0)) % 4].sign(m))
            .collect();
        let publics: Vec<PublicKey> = keys.iter().map(SecretKey::public).collect();
        let mut items: Vec<Item> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (&publics[i % 4], m.as_slice(), &sigs[i]))
            .collect();
        items[36].2 = &sigs[1];
        let expected: Vec<bool> = items
            .iter()
            .map(|(k, m, s)| verify(k, m, s).is_ok())
            .collect();
        assert_eq!(expected.iter().filter(|ok| !**ok).count(), 9);
        for n in [0, 1, 2, 3, 4, 16, 37] {
            let mut tally = Tally::default();
            let got = verify_each(&items[..n], &mut rng, &mut tally);
            assert_eq!(got, expected[..n], "{n} items");
            assert!(tally.verifications >= n as u64, "every item checked");
        }
        let honest: Vec<Item> = items
            .iter()
            .zip(&expected)
            .filter(|(_, ok)| **ok)
            .map(|(item, _)| *item)
            .collect();
        let mut tally = Tally::default();
        assert!(verify_each(&honest, &mut rng, &mut tally)
            .iter()
            .all(|ok| *ok));
        assert_eq!(
            tally,
            Tally {
                verifications: honest.len() as u64,
                batches: 1,
                bisections: 0,
                singles: 0
            },
            "honest items cost one batch"
        );
    }

    #[test]
    fn sign_verify_and_batch_agree() {
        let mut rng = rand::thread_rng();
        let sk = SecretKey::generate(&mut rng);
        let pk = sk.public();
        pk.check_admissible().unwrap();
        let sig = sk.sign(b"hello");
        assert!(verify(&pk, b"hello", &sig).is_ok());
        assert!(verify(&pk, b"hellp", &sig).is_err());
        let mut b = Batch::new();
        b.queue(&pk, b"hello", &sig);
        assert!(b.verify(&mut rng).is_ok());
        let mut b = Batch::new();
        b.queue(&pk, b"hello", &sig);
        b.queue(&pk, b"hellp", &sig);
        assert!(b.verify(&mut rng).is_err());
    }

    #[test]
    fn small_order_and_torsion_keys_are_refused_at_admission() {
        for t in EIGHT_TORSION.iter() {
            let pk = PublicKey::from_bytes(t.compress().to_bytes()).unwrap();
            assert_eq!(pk.check_admissible().unwrap_err(), KeyError::SmallOrder);
        }
        let sk = SecretKey::generate(&mut rand::thread_rng());
        let a = CompressedEdwardsY(sk.public().to_bytes())
            .decompress()
            .unwrap();
        let mixed = (a + EIGHT_TORSION[1]).compress().to_bytes();
        assert_eq!(
            PublicKey::from_bytes(mixed)
                .unwrap()
                .check_admissible()
                .unwrap_err(),
            KeyError::Torsion
        );
    }
}

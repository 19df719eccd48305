//! The accept/reject answer for every signature is the same alone or in any batch: the pool's
//! batch verification plus bisection against codec's single ZIP-215 verification, on hostile
//! inputs (non-canonical S, small-order and torsion-carrying R and A, non-canonical point
//! encodings, mixed with honest and plainly bad items).

use std::collections::HashMap;

use bytes::BytesMut;
use codec::ed25519::{verify, Signature};
use codec::{Header, MemberId, PublicKey, Suite, Unverified};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rumor_verify_pool::batch::{settle, Tally};

/// ℓ, the prime order of the base point, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
/// The identity point encoded with y = p + 1: a non-canonical encoding ZIP-215 accepts.
const IDENTITY_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xff; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};
const TAG: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Honest,
    /// A signature bit flipped.
    BadSig,
    /// S + ℓ: the same scalar, non-canonical.
    NonCanonicalS,
    /// R + torsion point, re-signed over the new R: valid under the cofactored equation.
    TorsionR,
    /// R + torsion point without re-signing: invalid.
    TorsionRStale,
    /// A + torsion point (such keys are refused at admission, but verification must agree).
    TorsionA,
    /// Both R and A carry torsion.
    TorsionBoth,
    /// A of small order (secret 0): [8]kA vanishes, so S = r verifies.
    SmallOrderA,
    /// R of small order: S = k·a verifies under the cofactored equation.
    SmallOrderR,
    /// A is the identity, non-canonically encoded.
    NonCanonicalA,
}

const KINDS: [Kind; 10] = [
    Kind::Honest,
    Kind::BadSig,
    Kind::NonCanonicalS,
    Kind::TorsionR,
    Kind::TorsionRStale,
    Kind::TorsionA,
    Kind::TorsionBoth,
    Kind::SmallOrderA,
    Kind::SmallOrderR,
    Kind::NonCanonicalA,
];

fn scalar<R: Rng>(rng: &mut R) -> Scalar {
    let mut w = [0u8; 64];
    rng.fill(&mut w[..]);
    Scalar::from_bytes_mod_order_wide(&w)
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(r);
    ctx.update(a);
    ctx.update(msg);
    let mut w = [0u8; 64];
    w.copy_from_slice(ctx.finish().as_ref());
    Scalar::from_bytes_mod_order_wide(&w)
}

/// 256-bit little-endian addition (S + ℓ stays below 2^256 for any reduced S).
fn add_ell(s: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// One hostile datagram from member `id`: (datagram bytes, key bytes).
fn item<R: Rng>(kind: Kind, id: MemberId, t: usize, rng: &mut R) -> (Vec<u8>, [u8; 32]) {
    let torsion = EIGHT_TORSION[t % 8];
    let a = scalar(rng);
    let r = scalar(rng);
    let (a, a_point) = match kind {
        Kind::SmallOrderA => (Scalar::ZERO, torsion),
        Kind::NonCanonicalA => (Scalar::ZERO, EdwardsPoint::mul_base(&Scalar::ZERO)),
        Kind::TorsionA | Kind::TorsionBoth => (a, EdwardsPoint::mul_base(&a) + torsion),
        _ => (a, EdwardsPoint::mul_base(&a)),
    };
    let a_bytes = if kind == Kind::NonCanonicalA {
        IDENTITY_NON_CANONICAL
    } else {
        a_point.compress().to_bytes()
    };
    let header = Header {
        suite: Suite::Ed25519,
        cluster_tag: TAG,
        key_id: 0,
        sender: id,
        epoch: 1,
        counter: u64::from(id) + 1,
        timestamp_ms: 0,
        salt: None,
    };
    let mut msg = Vec::new();
    header.write(&mut msg);
    let mut body = [0u8; 24];
    rng.fill(&mut body[..]);
    msg.extend_from_slice(&body);

    let honest_r = EdwardsPoint::mul_base(&r);
    let (r_point, r) = match kind {
        Kind::SmallOrderR => (torsion, Scalar::ZERO),
        Kind::TorsionR | Kind::TorsionBoth | Kind::TorsionRStale => (honest_r + torsion, r),
        _ => (honest_r, r),
    };
    let r_bytes = r_point.compress().to_bytes();
    let signed_r = if kind == Kind::TorsionRStale {
        honest_r.compress().to_bytes()
    } else {
        r_bytes
    };
    let s = r + challenge(&signed_r, &a_bytes, &msg) * a;
    let mut s_bytes = s.to_bytes();
    if kind == Kind::NonCanonicalS {
        s_bytes = add_ell(s_bytes);
    }
    if kind == Kind::BadSig {
        s_bytes[0] ^= 1 << rng.gen_range(0..8);
    }
    msg.extend_from_slice(&r_bytes);
    msg.extend_from_slice(&s_bytes);
    (msg, a_bytes)
}

/// Builds the datagrams; returns them with the key map and codec's single verdict of each.
fn build(
    kinds: &[(Kind, usize)],
    seed: u64,
) -> (Vec<Unverified>, HashMap<MemberId, PublicKey>, Vec<bool>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut items, mut keys, mut expect) = (Vec::new(), HashMap::new(), Vec::new());
    for (i, &(kind, t)) in kinds.iter().enumerate() {
        let id = i as MemberId;
        let (bytes, key) = item(kind, id, t, &mut rng);
        let pk = PublicKey::from_bytes(key).expect("every test key is a curve point");
        let split = bytes.len() - 64;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[split..]);
        expect.push(verify(&pk, &bytes[..split], &Signature::from_bytes(sig)).is_ok());
        keys.insert(id, pk);
        items.push(
            Unverified::parse(BytesMut::from(&bytes[..]), Suite::Ed25519, TAG)
                .expect("well-formed header"),
        );
    }
    (items, keys, expect)
}

fn pool_verdicts(
    items: Vec<Unverified>,
    keys: &HashMap<MemberId, PublicKey>,
    seed: u64,
) -> (Vec<bool>, Tally) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let v = settle(items, keys, &mut rng, &mut tally);
    (v.iter().map(Result::is_ok).collect(), tally)
}

#[test]
fn oracle_sanity_each_kind_has_its_zip215_verdict() {
    let s = Scalar::from_bytes_mod_order(ELL);
    assert_eq!(s, Scalar::ZERO, "ELL is the group order");
    assert!(CompressedEdwardsY(IDENTITY_NON_CANONICAL)
        .decompress()
        .is_some());
    for t in 0..8 {
        let kinds: Vec<_> = KINDS.iter().map(|k| (*k, t)).collect();
        let (_, _, expect) = build(&kinds, t as u64);
        for ((k, _), ok) in kinds.iter().zip(expect) {
            let valid = !matches!(k, Kind::BadSig | Kind::NonCanonicalS | Kind::TorsionRStale);
            // The stale-R case is only invalid when the torsion point is not the identity.
            let valid = valid || (*k == Kind::TorsionRStale && t == 0);
            assert_eq!(ok, valid, "{k:?} with torsion point {t}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn batch_and_bisection_agree_with_single_verification(
        kinds in prop::collection::vec((prop::sample::select(KINDS.to_vec()), 0usize..8), 1..80),
        seed in any::<u64>(),
    ) {
        let (items, keys, expect) = build(&kinds, seed);
        let (got, tally) = pool_verdicts(items, &keys, seed ^ 1);
        prop_assert_eq!(got, expect.clone());
        // Bisection stays within one check per item per level of the split tree.
        let n = expect.len() as u64;
        prop_assert!(tally.verifications <= n * (u64::from(n.next_power_of_two().trailing_zeros()) + 1));
    }
}

//! Round trips: every message type alone, and whole datagrams under every suite.

mod common;
use common::*;
use proptest::prelude::*;
use rumor_codec::message::decode_body;
use rumor_codec::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(msgs in prop::collection::vec(arb_message(), 1..8)) {
        let mut v = Vec::new();
        for m in &msgs { m.encode(&mut v).unwrap(); }
        prop_assert_eq!(decode_body(v.into()).unwrap(), msgs);
    }

    #[test]
    fn every_suite_seals_and_opens(msgs in prop::collection::vec(arb_message(), 1..12), suite_ix in 0..Suite::ALL.len()) {
        let suite = Suite::ALL[suite_ix];
        let mut s = sealer(suite);
        let (raw, n) = seal(&mut s, NOW, &msgs);
        prop_assert!(raw.len() <= DEFAULT_MTU);
        let v = open(&mut opener(suite), suite, &raw).unwrap();
        prop_assert_eq!(v.decode_messages().unwrap(), msgs[..n].to_vec());
        prop_assert_eq!(v.header().timestamp_ms, NOW);
        prop_assert_eq!(v.header().counter, 1);
    }

    /// The packer fills the MTU: what did not fit would not have fit.
    #[test]
    fn packer_packs_until_full(rumors in prop::collection::vec(arb_rumor(), 1..40), mtu in 300usize..3000) {
        let suite = Suite::AeadEd25519;
        let mut p = Packet::new(suite, mtu).unwrap();
        let mut used = 0;
        for r in &rumors {
            let m = Message::Rumor(r.clone());
            let before = p.remaining();
            if p.push(&m).unwrap() { used += 1; prop_assert_eq!(before - p.remaining(), m.encoded_len()); }
            else { prop_assert!(m.encoded_len() > before); }
        }
        let raw = sealer(suite).seal(NOW, p).unwrap();
        prop_assert!(raw.len() <= mtu);
        let _ = used;
    }
}

#[test]
fn statement_signatures_verify_and_are_domain_separated() {
    let sk = SecretKey::generate(&mut rand::thread_rng());
    let r = Rumor {
        origin: 1,
        seq: 2,
        timestamp_ms: 3,
        payload: bytes::Bytes::from_static(b"x"),
        signature: None,
    };
    let sig = sk.sign(&r.signing_input(42));
    assert!(ed25519::verify(&sk.public(), &r.signing_input(42), &sig).is_ok());
    // another cluster, another statement kind: not the same signed bytes
    assert!(ed25519::verify(&sk.public(), &r.signing_input(43), &sig).is_err());
    let u = Update {
        subject: 1,
        incarnation: 2,
        state: MemberState::Alive,
        origin: 1,
        addr: None,
        signature: None,
    };
    assert_ne!(u.signing_input(42), r.signing_input(42));
    assert!(!r.signing_input(42).starts_with(&header::MAGIC));
}

#[test]
fn mtu_bounds_are_enforced() {
    for suite in Suite::ALL {
        assert!(Packet::new(suite, 100).is_err());
        assert!(Packet::new(suite, 70_000).is_err());
        assert!(Packet::new(suite, DEFAULT_MTU).is_ok());
    }
}

//! Every rejection path of the receive pipeline, for every suite where it applies.

mod common;
use bytes::BytesMut;
use common::*;
use rumor_codec::fuzz::{fixture, TAG};
use rumor_codec::header::FIXED_LEN;
use rumor_codec::*;

fn ping() -> Vec<Message> {
    vec![
        Message::Ping { seq: 7 },
        Message::Rumor(Rumor {
            origin: 1,
            seq: 1,
            timestamp_ms: NOW,
            payload: vec![1; 40].into(),
            signature: None,
        }),
    ]
}

fn authenticated() -> impl Iterator<Item = Suite> {
    Suite::ALL.into_iter().filter(|s| *s != Suite::None)
}

#[test]
fn header_checks() {
    let mut s = sealer(Suite::Ed25519);
    let (raw, _) = seal(&mut s, NOW, &ping());
    let parse = |b: &[u8], suite, tag| Unverified::parse(BytesMut::from(b), suite, tag).map(|_| ());
    assert_eq!(parse(&raw, Suite::Ed25519, TAG), Ok(()));
    let mut bad = raw.to_vec();
    bad[0] ^= 1;
    assert_eq!(parse(&bad, Suite::Ed25519, TAG), Err(WireError::BadMagic));
    let mut bad = raw.to_vec();
    bad[2] = 9;
    assert_eq!(
        parse(&bad, Suite::Ed25519, TAG),
        Err(WireError::UnsupportedVersion(9))
    );
    let mut bad = raw.to_vec();
    bad[3] = 77;
    assert_eq!(
        parse(&bad, Suite::Ed25519, TAG),
        Err(WireError::UnknownSuite(77))
    );
    assert!(matches!(
        parse(&raw, Suite::HmacSha256, TAG),
        Err(WireError::WrongSuite { .. })
    ));
    assert!(matches!(
        parse(&raw, Suite::Ed25519, TAG ^ 1),
        Err(WireError::WrongCluster(_))
    ));
    for cut in [0, 1, FIXED_LEN - 1, FIXED_LEN, FIXED_LEN + 10] {
        assert!(
            matches!(
                parse(&raw[..cut], Suite::Ed25519, TAG),
                Err(WireError::Truncated { .. })
            ),
            "cut {cut}"
        );
    }
    // AEAD headers carry a salt: cut inside it
    let (raw, _) = seal(&mut sealer(Suite::Aes256Gcm), NOW, &ping());
    assert!(matches!(
        parse(&raw[..FIXED_LEN + 3], Suite::Aes256Gcm, TAG),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn any_flipped_bit_fails_authentication() {
    for suite in authenticated() {
        let mut s = sealer(suite);
        let (raw, _) = seal(&mut s, NOW, &ping());
        let hlen = Header::len_for(suite);
        // header fields not checked by parse (key id, sender, epoch, counter, timestamp, salt),
        // body, and trailer (tag or signature)
        let positions: Vec<usize> = (8..hlen)
            .chain([hlen, hlen + 5, raw.len() / 2])
            .chain(raw.len() - suite.trailer_len()..raw.len())
            .collect();
        for pos in positions {
            for bit in [0u8, 3, 7] {
                let mut bad = raw.to_vec();
                bad[pos] ^= 1 << bit;
                let r = open(&mut opener(suite), suite, &bad);
                assert!(
                    r.is_err(),
                    "{suite}: flipped bit {bit} of byte {pos} was accepted"
                );
            }
        }
        assert!(open(&mut opener(suite), suite, &raw).is_ok());
    }
}

#[test]
fn unauthenticated_suite_accepts_tampering_by_design() {
    let (raw, _) = seal(&mut sealer(Suite::None), NOW, &ping());
    let mut bad = raw.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(open(&mut opener(Suite::None), Suite::None, &bad).is_ok());
}

#[test]
fn wrong_or_removed_key_id_is_refused() {
    for suite in [
        Suite::HmacSha256,
        Suite::Aes256Gcm,
        Suite::ChaCha20Poly1305,
        Suite::AeadEd25519,
    ] {
        let mut rng = rand::thread_rng();
        let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rng));
        let mut s = Sealer::new(suite, TAG, 1, 5, HopKeys::Ring(ring.clone()), &mut rng).unwrap();
        let mut o = Opener::new(suite, Some(ring.clone())).unwrap();
        let (d1, _) = seal(&mut s, NOW, &ping());
        // a receiver without key 1 refuses it by id
        let other = SharedKeyRing::new(2, ClusterKey::generate(&mut rng));
        let mut o2 = Opener::new(suite, Some(other)).unwrap();
        let u = Unverified::parse(BytesMut::from(&d1[..]), suite, TAG).unwrap();
        assert_eq!(
            o2.open(u, &fixture().keys).unwrap_err(),
            OpenError::UnknownKeyId(1)
        );
        // rotation: install 2, switch, both accepted while installed; remove 1, old refused
        ring.install(2, ClusterKey::generate(&mut rng)).unwrap();
        ring.use_key(2).unwrap();
        let (d2, _) = seal(&mut s, NOW, &ping());
        assert_eq!(Header::parse(&d2).unwrap().key_id, 2);
        for d in [&d1, &d2] {
            let u = Unverified::parse(BytesMut::from(&d[..]), suite, TAG).unwrap();
            assert!(o.open(u, &fixture().keys).is_ok(), "{suite}");
        }
        ring.remove(1).unwrap();
        let u = Unverified::parse(BytesMut::from(&d1[..]), suite, TAG).unwrap();
        assert_eq!(
            o.open(u, &fixture().keys).unwrap_err(),
            OpenError::UnknownKeyId(1),
            "{suite}: removed key still accepted"
        );
    }
}

#[test]
fn unknown_sender_is_refused_for_signatures() {
    let mut rng = rand::thread_rng();
    let stranger = std::sync::Arc::new(SecretKey::generate(&mut rng));
    let mut s = Sealer::new(
        Suite::Ed25519,
        TAG,
        99,
        1,
        HopKeys::Signer(stranger.clone()),
        &mut rng,
    )
    .unwrap();
    let (raw, _) = seal(&mut s, NOW, &ping());
    assert_eq!(
        open(&mut opener(Suite::Ed25519), Suite::Ed25519, &raw).unwrap_err(),
        OpenError::UnknownSender(99).to_string()
    );
    // claiming an admitted id with the wrong key
    let mut s = Sealer::new(
        Suite::Ed25519,
        TAG,
        1,
        1,
        HopKeys::Signer(stranger),
        &mut rng,
    )
    .unwrap();
    let (raw, _) = seal(&mut s, NOW, &ping());
    assert_eq!(
        open(&mut opener(Suite::Ed25519), Suite::Ed25519, &raw).unwrap_err(),
        OpenError::BadAuth.to_string()
    );
}

fn verified(suite: Suite, s: &mut Sealer, now: u64) -> Verified {
    let (raw, _) = seal(s, now, &ping());
    open(&mut opener(suite), suite, &raw).unwrap()
}

#[test]
fn replay_stale_epoch_and_timestamps() {
    for suite in Suite::ALL {
        let cfg = ReplayConfig::default();
        let mut g = ReplayGuard::new(cfg, NOW);
        let mut s = sealer(suite);
        let a = verified(suite, &mut s, NOW);
        g.commit(NOW, &a).unwrap();
        assert_eq!(g.precheck(NOW, a.header()), Err(Replay::Duplicate));
        assert_eq!(g.commit(NOW, &a), Err(Replay::Duplicate));
        // a newer epoch replaces the window; the older epoch is then refused
        let mut s2 = sealer_at(suite, 6);
        let b = verified(suite, &mut s2, NOW);
        g.commit(NOW, &b).unwrap();
        let a2 = verified(suite, &mut s, NOW);
        assert_eq!(
            g.commit(NOW, &a2),
            Err(Replay::StaleEpoch { got: 5, current: 6 })
        );
        // an epoch no boot can have reached yet is refused: it would replace the window and
        // refuse the sender's real datagrams as stale
        let far = NOW / 1000 + rumor_codec::epoch::EPOCH_LEAD_SECS + 1;
        let mut forged = sealer_at(suite, far);
        let f = verified(suite, &mut forged, NOW);
        assert_eq!(g.commit(NOW, &f), Err(Replay::FutureEpoch(far)));
        g.commit(NOW, &verified(suite, &mut s2, NOW)).unwrap();
        // timestamps: too old, too far ahead, before our boot
        let old = verified(suite, &mut s2, NOW - cfg.max_age_ms - 1);
        assert_eq!(g.precheck(NOW, old.header()), Err(Replay::Stale));
        let future = verified(suite, &mut s2, NOW + cfg.max_skew_ms + 1);
        assert_eq!(g.precheck(NOW, future.header()), Err(Replay::Future));
        let later = ReplayGuard::new(cfg, NOW + 10_000);
        assert_eq!(
            later.precheck(NOW + 10_000, b.header()),
            Err(Replay::BeforeFloor)
        );
    }
}

#[test]
fn two_copies_in_one_batch_commit_once() {
    let mut g = ReplayGuard::new(ReplayConfig::default(), NOW);
    let mut s = sealer(Suite::Ed25519);
    let (raw, _) = seal(&mut s, NOW, &ping());
    let copies: Vec<_> = (0..2)
        .map(|_| Unverified::parse(BytesMut::from(&raw[..]), Suite::Ed25519, TAG).unwrap())
        .collect();
    // both pass the read-only precheck before the batch...
    assert!(copies.iter().all(|c| g.precheck(NOW, c.header()).is_ok()));
    let mut tally = rumor_codec::ed25519::Tally::default();
    let opened: Vec<_> =
        open_ed25519_each(copies, &fixture().keys, &mut rand::thread_rng(), &mut tally)
            .into_iter()
            .map(|v| v.expect("an honest copy opens"))
            .collect();
    // ...but only one commits
    let commits: Vec<_> = opened.iter().map(|v| g.commit(NOW, v)).collect();
    assert_eq!(commits, vec![Ok(()), Err(Replay::Duplicate)]);
}

/// A receiver that restarted (fresh guard, no windows) still refuses traffic captured before
/// its boot, across clock skew in either direction within the configured bound.
#[test]
fn replay_after_receiver_restart_with_clock_skew() {
    let cfg = ReplayConfig::default();
    for skew in [
        -(cfg.max_skew_ms as i64),
        -500,
        0,
        500,
        cfg.max_skew_ms as i64,
    ] {
        let sender_clock = |t: u64| (t as i64 + skew) as u64;
        let mut s = sealer(Suite::HmacSha256);
        let captured = verified(Suite::HmacSha256, &mut s, sender_clock(NOW));
        let boot = NOW + cfg.max_skew_ms * 3;
        let g = ReplayGuard::new(cfg, boot);
        assert_eq!(
            g.precheck(boot, captured.header()),
            Err(Replay::BeforeFloor),
            "skew {skew}"
        );
        // the sender's fresh traffic after our boot is accepted despite the skew
        let fresh = verified(Suite::HmacSha256, &mut s, sender_clock(boot + 100));
        assert_eq!(
            g.precheck(boot + 100, fresh.header()),
            Ok(()),
            "skew {skew}"
        );
    }
}

#[test]
fn evicted_windows_leave_a_floor() {
    let cfg = ReplayConfig {
        max_windows: 2,
        ..ReplayConfig::default()
    };
    let mut g = ReplayGuard::new(cfg, NOW);
    let mut rng = rand::thread_rng();
    let mut captured = None;
    for sender in 0..3u32 {
        let mut s = Sealer::new(Suite::None, TAG, sender, 1, HopKeys::None, &mut rng).unwrap();
        let v = verified(Suite::None, &mut s, NOW + u64::from(sender));
        g.commit(NOW + 10, &v).unwrap();
        if sender == 0 {
            captured = Some(v);
        }
    }
    assert_eq!(g.windows(), 2);
    // sender 0's window was evicted: its old datagram is refused by the floor, not accepted again
    assert_eq!(
        g.commit(NOW + 10, captured.as_ref().unwrap()),
        Err(Replay::BeforeFloor)
    );
}

#[test]
fn hostile_bodies_are_typed_errors() {
    // a body that authenticates but does not decode: the receiver gets an error, not a panic
    let mut s = sealer(Suite::HmacSha256);
    let mut p = Packet::new(Suite::HmacSha256, DEFAULT_MTU).unwrap();
    p.push(&Message::Ping { seq: 1 }).unwrap();
    let raw = s.seal(NOW, p).unwrap();
    let v = open(&mut opener(Suite::HmacSha256), Suite::HmacSha256, &raw).unwrap();
    assert_eq!(v.decode_messages().unwrap(), vec![Message::Ping { seq: 1 }]);
    for body in [&[1u8, 0, 9, 0][..], &[7, 0, 1], &[200, 0, 0], &[1, 0]] {
        assert!(
            message::decode_body(bytes::Bytes::copy_from_slice(body)).is_err(),
            "{body:?}"
        );
    }
}

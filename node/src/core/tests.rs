//! Cluster behaviour of the core on virtual time through `testnet`: convergence, detection within
//! the SWIM/Lifeguard bound, refutation, dissemination, restart, leave, determinism, and hostile
//! input. Every run is bounded in virtual time and seeded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codec::{MemberId, MemberState, Message, Suite};
use proptest::prelude::*;

use super::testnet::Net;
use super::*;

const EPOCH: u64 = 1;

fn boot_all(net: &mut Net, n: u32) {
    net.start(0, EPOCH, &[]);
    for id in 1..n {
        net.run_for(Duration::from_millis(50));
        net.start(id, EPOCH, &[0]);
    }
}

/// Whether every running member sees `id` in `state` (and, when given, above `incarnation`).
fn all_see(net: &Net, id: MemberId, state: MemberState, above: u64) -> bool {
    net.running().into_iter().filter(|m| *m != id).all(|m| {
        net.core(m)
            .and_then(|c| c.member(id))
            .is_some_and(|(s, inc)| s == state && inc > above)
    })
}

fn converged(net: &Net, n: u32) -> bool {
    let running = net.running();
    running.iter().all(|m| {
        running.iter().all(|o| {
            net.core(*m)
                .and_then(|c| c.member(*o))
                .is_some_and(|(s, _)| s == MemberState::Alive)
        })
    }) && running.len() == n as usize
}

/// Runs in steps until `done` holds or `limit` passes; returns the time it took.
fn run_until_done(
    net: &mut Net,
    limit: Duration,
    mut done: impl FnMut(&Net) -> bool,
) -> Option<Duration> {
    let start = net.now();
    while net.now().since(start) <= limit {
        if done(net) {
            return Some(net.now().since(start));
        }
        net.run_for(Duration::from_millis(100));
    }
    None
}

/// Drops the victim's answers to probes until some member suspects it (at most 20 s), then lets
/// them through again; returns whether a suspicion was raised. Dropping longer than a suspicion
/// timeout would not kill the victim: each suspicion is told to it directly and refuted.
fn drop_answers_until_suspected(net: &mut Net, victim: MemberId) -> bool {
    net.set_filter(Box::new(move |_, from, _, msgs| {
        from == victim
            && msgs
                .iter()
                .any(|m| matches!(m, Message::Ack { .. } | Message::IndirectAck { .. }))
    }));
    let suspected = run_until_done(net, Duration::from_secs(20), |net| {
        let suspects = |m: &MemberId| {
            net.core(*m)
                .and_then(|c| c.member(victim))
                .is_some_and(|(s, _)| s == MemberState::Suspect)
        };
        net.running().iter().any(suspects)
    });
    net.clear_filter();
    suspected.is_some()
}

/// An unsigned membership statement, as it comes off the wire.
fn update(subject: MemberId, incarnation: u64, state: MemberState, origin: MemberId) -> Message {
    Message::Update(codec::Update {
        subject,
        incarnation,
        state,
        origin,
        addr: None,
        signature: None,
    })
}

/// An unsigned rumor of `len` bytes, as it comes off the wire.
fn rumor(origin: MemberId, seq: u64, timestamp_ms: u64, len: usize) -> Message {
    Message::Rumor(codec::Rumor {
        origin,
        seq,
        timestamp_ms,
        payload: Bytes::from(vec![1; len]),
        signature: None,
    })
}

/// Drains `core`'s actions: every rumor it sent, with its destination.
fn rumors_sent(core: &mut Core) -> Vec<(MemberId, codec::Rumor)> {
    core.drain_actions()
        .filter_map(|a| match a {
            Action::Send { to, messages } => Some((to, messages)),
            _ => None,
        })
        .flat_map(|(to, messages)| {
            messages.into_iter().filter_map(move |m| match m {
                Message::Rumor(r) => Some((to, r)),
                _ => None,
            })
        })
        .collect()
}

fn cluster(n: u32, seed: u64) -> Net {
    cluster_with(n, Config::default(), seed)
}

fn cluster_with(n: u32, cfg: Config, seed: u64) -> Net {
    let mut net = Net::new(n, cfg, seed);
    boot_all(&mut net, n);
    let t = run_until_done(&mut net, Duration::from_secs(30), |net| converged(net, n));
    assert!(t.is_some(), "{n} members did not converge within 30 s");
    net
}

#[test]
fn members_joining_through_one_seed_converge() {
    let n = 40;
    let mut net = Net::new(n, Config::default(), 7);
    net.loss = 0.01;
    boot_all(&mut net, n);
    let t = run_until_done(&mut net, Duration::from_secs(20), |net| converged(net, n));
    assert!(t.is_some(), "not converged within 20 s");
    for id in net.running() {
        assert_eq!(net.core(id).map(Core::cluster_size), Some(n as usize));
        assert_eq!(net.core(id).map(|c| c.stats().deaths_declared), Some(0));
    }
}

#[test]
fn crashed_member_is_dead_everywhere_within_detect_bound() {
    let n = 20;
    let mut net = cluster(n, 11);
    let bound = net
        .core(0)
        .map(|c| c.config().detect_bound(n as usize))
        .unwrap_or_default();
    net.crash(7);
    let t = run_until_done(&mut net, bound, |net| all_see(net, 7, MemberState::Dead, 0));
    assert!(t.is_some(), "member 7 not dead everywhere within {bound:?}");
    let t = t.unwrap_or_default();
    assert!(
        t >= Config::default().suspicion_min(n as usize),
        "declared dead before any suspicion could time out: {t:?}"
    );
    for id in net.running() {
        assert_eq!(net.core(id).map(Core::cluster_size), Some(n as usize - 1));
    }
}

#[test]
fn false_suspicion_is_refuted_with_higher_incarnation() {
    let n = 20;
    let mut net = cluster(n, 13);
    let victim = 5;
    let before = net.core(victim).map(Core::incarnation).unwrap_or_default();
    assert!(
        drop_answers_until_suspected(&mut net, victim),
        "dropping acks raised no suspicion"
    );
    let t = run_until_done(&mut net, Duration::from_secs(10), |net| {
        all_see(net, victim, MemberState::Alive, before)
    });
    assert!(t.is_some(), "refutation did not reach everyone");
    assert!(net
        .core(victim)
        .is_some_and(|c| c.stats().refutations >= 1 && c.incarnation() > before));
    for id in net.running() {
        let dead = net
            .node(id)
            .changes
            .iter()
            .any(|(_, m, s, _)| *m == victim && *s == MemberState::Dead);
        assert!(!dead, "member {id} declared the refuting member dead");
    }
}

#[test]
fn rumors_reach_every_member_once() {
    let n = 40;
    let mut net = cluster(n, 17);
    net.loss = 0.02;
    let mut published = Vec::new();
    for (i, origin) in [3, 9, 27, 3, 39].into_iter().enumerate() {
        let seq = net.publish(origin, Bytes::from(vec![i as u8; 100]));
        published.push((origin, seq.expect("publish")));
        net.run_for(Duration::from_millis(300));
    }
    let everyone = |net: &Net| {
        published.iter().all(|(o, s)| {
            net.running().iter().filter(|m| *m != o).all(|m| {
                net.node(*m)
                    .delivered
                    .iter()
                    .any(|(_, ro, rs)| ro == o && rs == s)
            })
        })
    };
    assert!(
        run_until_done(&mut net, Duration::from_secs(10), everyone).is_some(),
        "a rumor missed someone"
    );
    for id in net.running() {
        let mut counts = BTreeMap::new();
        for (_, o, s) in &net.node(id).delivered {
            *counts.entry((*o, *s)).or_insert(0) += 1;
        }
        assert!(
            counts.values().all(|c| *c == 1),
            "member {id} got a rumor twice"
        );
        assert!(
            !counts.keys().any(|(o, _)| *o == id),
            "member {id} delivered its own rumor"
        );
    }
}

#[test]
fn restart_with_higher_incarnation_overrides_death() {
    let n = 12;
    let mut net = cluster(n, 19);
    let old = net.core(4).map(Core::incarnation).unwrap_or_default();
    net.crash(4);
    let bound = Config::default().detect_bound(n as usize);
    assert!(run_until_done(&mut net, bound, |net| all_see(net, 4, MemberState::Dead, 0)).is_some());
    net.start(4, EPOCH + 1, &[0]);
    let t = run_until_done(&mut net, Duration::from_secs(10), |net| {
        all_see(net, 4, MemberState::Alive, old) && converged(net, n)
    });
    assert!(t.is_some(), "restarted member not accepted everywhere");
}

#[test]
fn left_member_is_left_everywhere_and_stops() {
    let n = 10;
    let mut net = cluster(n, 23);
    net.leave(2);
    let t = run_until_done(&mut net, Duration::from_secs(5), |net| {
        all_see(net, 2, MemberState::Left, 0)
    });
    assert!(t.is_some(), "leave not seen everywhere");
    net.run_for(Duration::from_secs(5));
    assert!(net.core(2).is_some_and(Core::has_stopped));
    for id in net.running().into_iter().filter(|m| *m != 2) {
        assert_eq!(net.core(id).map(|c| c.stats().deaths_declared), Some(0));
    }
}

#[test]
fn same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut net = Net::new(10, Config::default(), seed);
        net.loss = 0.05;
        net.enable_trace();
        boot_all(&mut net, 10);
        net.run_for(Duration::from_secs(5));
        net.publish(3, Bytes::from_static(b"x"));
        net.crash(6);
        net.run_for(Duration::from_secs(10));
        net.trace().to_vec()
    };
    let a = run(5);
    assert!(a.len() > 1000);
    assert!(a == run(5), "same seed, different trace");
    assert!(a != run(6), "the seed does not matter?");
}

#[test]
fn signed_rumors_carry_a_valid_origin_signature() {
    let cfg = Config {
        suite: Suite::Ed25519,
        cluster_tag: 0xfeed,
        ..Config::default()
    };
    let key = Arc::new(codec::SecretKey::generate(&mut rand::rngs::OsRng));
    let roster = Arc::new(Roster::dense(2));
    let boot = |id, signer| Boot {
        signer,
        ..Boot::from_epoch(id, 1, u64::from(id))
    };
    assert!(matches!(
        Core::new(cfg.clone(), roster.clone(), boot(0, None), Millis(0)),
        Err(CoreError::MissingSigner(_))
    ));
    let mut a =
        Core::new(cfg.clone(), roster, boot(0, Some(key.clone())), Millis(0)).expect("core");
    a.handle_datagram(Millis(1), 1, [update(1, 1, MemberState::Alive, 1)]);
    a.publish(Millis(2), Bytes::from_static(b"hello"))
        .expect("publish");
    assert!(a.publish(Millis(2), Bytes::from(vec![0; 1300])).is_err());
    a.handle_datagram(Millis(3), 1, [Message::Ping { seq: 9 }]);
    let (_, rumor) = rumors_sent(&mut a)
        .into_iter()
        .next()
        .expect("rumor piggybacked on the ack");
    let sig = rumor.signature.expect("signed");
    assert!(codec::ed25519::verify(&key.public(), &rumor.signing_input(0xfeed), &sig).is_ok());
}

#[test]
fn an_incarnation_no_boot_can_have_is_refused_and_accusations_stay_refutable() {
    use super::machine::REFUTATIONS_PER_BOOT;
    use codec::epoch::EPOCH_LEAD_SECS;
    // The real driver's clock: unix milliseconds, and epochs in unix seconds.
    let now_s = 1_790_000_000;
    let t = Millis(now_s * 1000);
    let mut core = Core::new(
        Config::default(),
        Arc::new(Roster::dense(4)),
        Boot::from_epoch(0, now_s, 1),
        t,
    )
    .expect("core");
    let member_1 = Boot::from_epoch(1, now_s, 0);
    core.handle_datagram(
        t,
        1,
        [update(1, member_1.incarnation, MemberState::Alive, 1)],
    );
    // At u64::MAX neither member 1 nor we could ever refute: both are refused.
    core.handle_datagram(
        t,
        2,
        [
            update(1, u64::MAX, MemberState::Dead, 2),
            update(0, u64::MAX, MemberState::Dead, 2),
        ],
    );
    assert_eq!(core.stats().implausible, 2);
    assert_eq!(
        core.member(1),
        Some((MemberState::Alive, member_1.incarnation))
    );
    assert_eq!(core.stats().refutations, 0);
    // The last incarnation of the latest plausible epoch is accepted, and refuted above it.
    let edge = (now_s + EPOCH_LEAD_SECS + 1) * REFUTATIONS_PER_BOOT - 1;
    core.handle_datagram(t, 2, [update(0, edge, MemberState::Dead, 2)]);
    assert_eq!(
        (core.stats().refutations, core.incarnation()),
        (1, edge + 1)
    );
    // A rumor numbered past every plausible boot is refused, and does not mute its origin.
    let from_1 = |seq| rumor(1, seq, t.0, 1);
    core.handle_datagram(t, 1, [from_1(u64::MAX), from_1(member_1.first_rumor_seq)]);
    assert_eq!(core.stats().implausible, 3);
    assert_eq!(core.stats().rumors_delivered, 1);
}

#[test]
fn a_rumor_too_large_for_our_datagrams_is_delivered_not_queued() {
    let cfg = Config {
        mtu: 600,
        ..Config::default()
    };
    let mut core = Core::new(
        cfg,
        Arc::new(Roster::dense(3)),
        Boot::from_epoch(0, 1, 1),
        Millis(0),
    )
    .expect("core");
    // From a member whose --mtu is larger: ours could never carry it on.
    core.handle_datagram(Millis(1), 1, [rumor(1, 1, 0, 1000), rumor(1, 2, 0, 10)]);
    assert_eq!(core.stats().rumors_delivered, 2);
    assert_eq!(core.stats().broadcasts_too_large, 1);
    core.handle_datagram(Millis(2), 2, [Message::Ping { seq: 1 }]);
    let carried: Vec<u64> = rumors_sent(&mut core).iter().map(|(_, r)| r.seq).collect();
    assert_eq!(carried, [2], "only the rumor that fits is piggybacked");
}

#[test]
fn a_rumor_is_not_sent_to_members_known_to_hold_it() {
    let mut core = Core::new(
        Config::default(),
        Arc::new(Roster::dense(5)),
        Boot::from_epoch(0, 1, 1),
        Millis(0),
    )
    .expect("core");
    // Origin 1's rumor, relayed by 2 and again by 3: of the others only 4 may lack it.
    core.handle_datagram(Millis(1), 2, [rumor(1, 1, 0, 10)]);
    core.handle_datagram(Millis(2), 3, [rumor(1, 1, 0, 10)]);
    let mut carried_to = |from: MemberId| {
        core.handle_datagram(Millis(3), from, [Message::Ping { seq: 1 }]);
        rumors_sent(&mut core).iter().any(|(to, _)| *to == from)
    };
    assert_eq!(
        [1, 2, 3, 4].map(&mut carried_to),
        [false, false, false, true]
    );
}

#[test]
fn full_state_sync_is_split_across_datagrams() {
    let n = 500;
    let roster = Arc::new(Roster::dense(n));
    let cfg = Config::default();
    let mut core =
        Core::new(cfg.clone(), roster, Boot::from_epoch(0, 1, 1), Millis(0)).expect("core");
    core.handle_datagram(
        Millis(1),
        1,
        (1..n).map(|id| update(id, 3, MemberState::Alive, id)),
    );
    assert_eq!(core.cluster_size(), n as usize);
    core.drain_actions().count();
    core.handle_datagram(Millis(2), 9, [Message::SyncRequest]);
    let sends: Vec<Vec<Message>> = core
        .drain_actions()
        .filter_map(|a| match a {
            Action::Send { to: 9, messages } => Some(messages),
            _ => None,
        })
        .collect();
    assert!(sends.len() > 1);
    assert_eq!(sends[0].first(), Some(&Message::SyncReply));
    let updates = sends
        .iter()
        .flatten()
        .filter(|m| matches!(m, Message::Update(_)))
        .count();
    assert_eq!(updates, n as usize);
    for dg in &sends {
        let mut p = codec::Packet::new(cfg.suite, cfg.mtu).expect("packet");
        assert!(dg.iter().all(|m| p.push(m).unwrap_or(false)));
    }
    // A second request at once is refused: one full-state reply per member per probe interval.
    core.handle_datagram(Millis(3), 9, [Message::SyncRequest]);
    assert_eq!(core.stats().syncs_refused, 1);
}

fn arb_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left)
    ]
}

/// Ids around the roster of 8: members, this core (0), and ids not on the roster.
fn arb_id() -> impl Strategy<Value = MemberId> {
    prop_oneof![0u32..10, Just(u32::MAX)]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let inc = prop_oneof![0u64..4, Just(u64::MAX), any::<u64>()];
    prop_oneof![
        any::<u32>().prop_map(|seq| Message::Ping { seq }),
        (0u32..4).prop_map(|seq| Message::Ack { seq }),
        (0u32..4, arb_id()).prop_map(|(seq, target)| Message::PingReq { seq, target }),
        (0u32..4, arb_id()).prop_map(|(seq, target)| Message::IndirectAck { seq, target }),
        (0u32..4, arb_id()).prop_map(|(seq, target)| Message::Nack { seq, target }),
        (arb_id(), inc.clone(), arb_state(), arb_id()).prop_map(
            |(subject, incarnation, state, origin)| update(subject, incarnation, state, origin)
        ),
        (
            arb_id(),
            prop_oneof![0u64..300, Just(u64::MAX), any::<u64>()],
            0usize..1400
        )
            .prop_map(|(origin, seq, len)| rumor(origin, seq, 0, len)),
        Just(Message::SyncRequest),
        Just(Message::SyncReply),
        (arb_id(), inc, arb_state()).prop_map(|(s, i, v)| {
            Message::Certificate(codec::Certificate::new(s, i, v, &[]).expect("empty certificate"))
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic(
        steps in prop::collection::vec((arb_id(), prop::collection::vec(arb_message(), 0..6), 0u64..700), 1..120),
        seed in any::<u64>(),
    ) {
        let mut core = Core::new(Config::default(), Arc::new(Roster::dense(8)), Boot::from_epoch(0, 1, seed), Millis(0)).expect("core");
        core.join(Millis(0), &[1, 2, 9]);
        let mut now = Millis(0);
        for (i, (from, msgs, dt)) in steps.into_iter().enumerate() {
            now = Millis(now.0 + dt);
            core.handle_datagram(now, from, msgs);
            if let Some(t) = core.poll_timeout().filter(|t| *t <= now) {
                core.handle_timeout(t.max(now));
                prop_assert!(core.poll_timeout().is_none_or(|n| n > now));
            }
            if i % 7 == 0 {
                let _ = core.publish(now, Bytes::from_static(b"r"));
            }
            for a in core.drain_actions() {
                if let Action::Send { to, messages } = a {
                    prop_assert!(to != 0 && to < 8, "sent to {to}");
                    let mut p = codec::Packet::new(Suite::None, 1400).expect("packet");
                    prop_assert!(messages.iter().all(|m| p.push(m).unwrap_or(false)));
                }
            }
        }
    }
}

#[test]
fn detection_and_refutation_hold_across_seeds_with_loss() {
    let n = 20;
    let bound = Config::default().detect_bound(n as usize);
    for seed in 100..110 {
        let mut net = Net::new(n, Config::default(), seed);
        net.loss = 0.02;
        boot_all(&mut net, n);
        assert!(
            run_until_done(&mut net, Duration::from_secs(20), |net| converged(net, n)).is_some(),
            "seed {seed}: no convergence"
        );
        let (victim, before) = (5, net.core(5).map(Core::incarnation).unwrap_or_default());
        assert!(
            drop_answers_until_suspected(&mut net, victim),
            "seed {seed}: no suspicion"
        );
        let refuted = run_until_done(&mut net, Duration::from_secs(10), |net| {
            all_see(net, victim, MemberState::Alive, before)
        });
        assert!(refuted.is_some(), "seed {seed}: refutation did not spread");
        net.crash(7);
        let detected = run_until_done(&mut net, bound, |net| all_see(net, 7, MemberState::Dead, 0));
        assert!(
            detected.is_some(),
            "seed {seed}: crash not detected within {bound:?}"
        );
    }
}

#[test]
fn a_member_that_hears_no_answers_slows_down_instead_of_killing_others() {
    let n = 12;
    let mut net = cluster(n, 29);
    let deaf = 3;
    // Every answer addressed to member 3 is lost: to it, everyone looks dead.
    net.set_filter(Box::new(move |_, _, to, msgs| {
        to == deaf
            && msgs.iter().any(|m| {
                matches!(
                    m,
                    Message::Ack { .. } | Message::IndirectAck { .. } | Message::Nack { .. }
                )
            })
    }));
    net.run_for(Duration::from_secs(15));
    let stretched = net.core(deaf).map(Core::health_score).unwrap_or_default();
    assert!(stretched > 0, "Lifeguard health did not react");
    net.clear_filter();
    // Recovery is one step per successful probe, each period (score + 1) intervals long: from
    // the top score S, the period in progress (S + 1) and then Σ_{s=1..S} (s + 1) intervals.
    let s = Config::default().max_awareness;
    net.run_for(Config::default().probe_interval * ((s + 1) * (s + 2) / 2 + s + 1));
    assert_eq!(
        net.core(deaf).map(Core::health_score),
        Some(0),
        "health did not recover"
    );
    for id in net.running() {
        assert_eq!(
            net.core(id).map(|c| c.stats().deaths_declared),
            Some(0),
            "member {id} declared a death"
        );
    }
    assert!(converged(&net, n));
}

#[test]
fn synchronous_push_rounds_match_the_rumor_spreading_formula() {
    let (n, k) = (200u32, 3usize);
    let cfg = Config {
        fanout: k,
        piggyback: false,
        aligned_gossip: true,
        unlimited_rumor_retransmit: true,
        ..Config::default()
    };
    let g = cfg.gossip_interval;
    let mut net = Net::new(n, cfg, 31);
    boot_all(&mut net, n);
    assert!(run_until_done(&mut net, Duration::from_secs(60), |net| converged(net, n)).is_some());
    let formula = (n as f64).ln() / ((k + 1) as f64).ln() + (n as f64).ln() / k as f64;
    let rumors = 8;
    let mut rounds = 0.0;
    for i in 0..rumors {
        // Publish just after a round boundary, then count rounds until everyone has it.
        let round = time::ms(g);
        let start = Millis((net.now().0 / round + 1) * round + 1);
        net.run_until(start);
        let origin = (i * 37) % n;
        let seq = net
            .publish(origin, Bytes::from_static(b"sync"))
            .expect("publish");
        let informed = |net: &Net| {
            net.running().iter().filter(|m| **m != origin).all(|m| {
                net.node(*m)
                    .delivered
                    .iter()
                    .any(|(_, o, s)| *o == origin && *s == seq)
            })
        };
        let mut r = 0;
        while !informed(&net) {
            r += 1;
            assert!(r <= 40, "rumor {i} not everywhere after 40 rounds");
            // Round r's pushes have all landed just before round r + 1 begins.
            net.run_until(Millis(start.0 + (r + 1) * round - 2));
        }
        rounds += r as f64;
    }
    let ratio = rounds / rumors as f64 / formula;
    assert!(
        (0.85..=1.20).contains(&ratio),
        "mean rounds / formula = {ratio:.2} (formula {formula:.2})"
    );
}

#[test]
fn assumed_alive_view_is_full_quiet_and_probes_everyone() {
    let n = 20u32;
    let roster = Arc::new(Roster::dense(n));
    let mut core = Core::new(
        Config::default(),
        roster,
        Boot::from_epoch(3, EPOCH, 9),
        Millis(0),
    )
    .expect("core");
    let inc = Boot::from_epoch(0, EPOCH, 0).incarnation;
    core.assume_alive(Millis(0), (0..n).map(|id| (id, inc)).chain([(n + 5, inc)]));
    // An older statement does not roll a member back.
    core.assume_alive(Millis(0), [(4, inc - 1)]);
    assert_eq!(core.cluster_size(), n as usize);
    assert_eq!(core.member(4), Some((MemberState::Alive, inc)));
    assert_eq!(core.broadcast_backlog(), 1, "only our own Alive is queued");
    // Every ping is answered at once: one pass over the members takes n - 1 probe periods.
    let mut probed = std::collections::BTreeSet::new();
    let mut now = Millis(0);
    let pass = Config::default().probe_interval * n;
    while now < Millis(0) + pass {
        now = core.poll_timeout().expect("running").max(now);
        core.handle_timeout(now);
        let actions: Vec<Action> = core.drain_actions().collect();
        for a in actions {
            assert!(!matches!(a, Action::MemberChanged { .. }), "{a:?}");
            if let Action::Send { to, messages } = a {
                for m in messages {
                    if let Message::Ping { seq } = m {
                        probed.insert(to);
                        core.handle_datagram(now, to, [Message::Ack { seq }]);
                    }
                }
            }
        }
    }
    assert_eq!(probed.len(), n as usize - 1, "every other member probed");
}

#[test]
fn a_cluster_assumed_at_rest_spreads_its_push_pulls_over_the_scaled_period() {
    // 100 members: the period is three times the unscaled one (memberlist's pushPullScale).
    let n = 100u32;
    let roster = Arc::new(Roster::dense(n));
    let cfg = Config::default();
    let period = cfg.push_pull_period(n as usize);
    assert_eq!(period, cfg.push_pull_interval * 3);
    let inc = Boot::from_epoch(0, EPOCH, 0).incarnation;
    let first_sync = |id: MemberId| {
        let mut core = Core::new(
            cfg.clone(),
            roster.clone(),
            Boot::from_epoch(id, EPOCH, u64::from(id) + 1),
            Millis(0),
        )
        .expect("core");
        core.assume_alive(Millis(0), (0..n).map(|j| (j, inc)));
        let step = 100;
        (0..=period.as_millis() as u64 / step)
            .map(|k| Millis(k * step))
            .find(|&now| {
                core.handle_timeout(now);
                let mut synced = false;
                for a in core.drain_actions().collect::<Vec<_>>() {
                    if let Action::Send { to, messages } = a {
                        for m in messages {
                            match m {
                                // Every ping is answered at once: nobody is suspected.
                                Message::Ping { seq } => {
                                    core.handle_datagram(now, to, [Message::Ack { seq }])
                                }
                                Message::SyncRequest => synced = true,
                                _ => {}
                            }
                        }
                    }
                }
                synced
            })
    };
    let firsts: Vec<u64> = (0..n).filter_map(first_sync).map(|t| t.0).collect();
    assert_eq!(
        firsts.len(),
        n as usize,
        "every member syncs once within the period"
    );
    let unscaled = cfg.push_pull_interval.as_millis() as u64;
    let late = firsts.iter().filter(|&&t| t > unscaled).count();
    // Uniform over three unscaled periods: about two thirds fall after the first.
    assert!(
        (50..=85).contains(&late),
        "{late} of {n} first syncs after {unscaled} ms"
    );
}

#[test]
fn a_healed_partition_merges_the_two_sides_again() {
    // Each side declares the other dead and then samples only its own live members: without
    // reconnects to the dead, nothing would ever cross again.
    // With the authority layer, each side of 4 still holds q = 3 of the other's witnesses: its
    // deaths are certified, and refuted after the heal.
    let n = 8;
    let side = move |m: MemberId| m < n / 2;
    let authority = Config {
        suite: Suite::Ed25519,
        authority: Some(Tolerance {
            f: 1,
            ..Tolerance::default()
        }),
        ..Config::default()
    };
    for (seed, cfg) in [
        (21, Config::default()),
        (22, Config::default()),
        (23, authority.clone()),
        (24, authority),
    ] {
        let mut net = cluster_with(n, cfg, seed);
        net.set_filter(Box::new(move |_, from, to, _| side(from) != side(to)));
        let split = run_until_done(&mut net, Duration::from_secs(60), |net| {
            let sees_dead = |m: MemberId, o: MemberId| {
                net.core(m)
                    .and_then(|c| c.member(o))
                    .is_some_and(|(s, _)| s == MemberState::Dead)
            };
            sees_dead(n - 1, 0) && sees_dead(0, n - 1)
        });
        assert!(
            split.is_some(),
            "seed {seed}: the far side was never declared dead"
        );
        net.run_for(Duration::from_secs(10));
        net.clear_filter();
        let merged = run_until_done(&mut net, Duration::from_secs(120), |net| converged(net, n));
        assert!(
            merged.is_some(),
            "seed {seed}: the two sides did not merge within 120 s of the heal"
        );
        let reconnects: u64 = (0..n)
            .map(|m| net.core(m).unwrap().stats().reconnects)
            .sum();
        assert!(reconnects > 0, "seed {seed}");
    }
}

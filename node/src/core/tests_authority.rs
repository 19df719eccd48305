//! The authority layer on virtual time: a crash is committed dead by a witness certificate while
//! a liar stays silent; a liar's accusations and votes never commit an honest member dead; an
//! equivocator is excluded everywhere; unsigned or unsupported statements change nothing; a
//! liar's accusations do not slow the detection of a later real crash.
//! The adversary (member `LIAR`) is on the roster but runs no core: its datagrams are injected.
//! Signatures are present but not checked here: the driver checks them (`provenance`), and the
//! core's contract is everything else.

use std::time::Duration;

use bytes::Bytes;
use codec::{Certificate, MemberId, MemberState, Message, Rumor, Signature, Suite, Update};

use super::testnet::Net;
use super::*;

const N: u32 = 7;
const LIAR: MemberId = N - 1;
const EPOCH: u64 = 1;

fn config() -> Config {
    Config {
        suite: Suite::Ed25519,
        probe_interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(100),
        gossip_interval: Duration::from_millis(50),
        authority: Some(Tolerance {
            f: 1,
            ..Tolerance::default()
        }),
        ..Config::default()
    }
}

/// `n` members of which the last is the liar: the others booted, joined through member 0,
/// and left to settle for `settle`.
fn booted(n: u32, cfg: Config, seed: u64, settle: Duration) -> Net {
    let mut net = Net::new(n, cfg, seed);
    net.start(0, EPOCH, &[]);
    for id in 1..n - 1 {
        net.run_for(Duration::from_millis(20));
        net.start(id, EPOCH, &[0]);
    }
    net.run_for(settle);
    net
}

/// Every honest member (all but the liar) running and converged.
fn honest_cluster(seed: u64) -> Net {
    booted(N, config(), seed, Duration::from_secs(5))
}

fn sig() -> Option<Signature> {
    Some(Signature::from_bytes([7; 64]))
}

fn accusation(subject: MemberId, incarnation: u64, state: MemberState) -> Message {
    accusation_by(LIAR, subject, incarnation, state)
}

fn accusation_by(
    origin: MemberId,
    subject: MemberId,
    incarnation: u64,
    state: MemberState,
) -> Message {
    Message::Update(Update {
        subject,
        incarnation,
        state,
        origin,
        addr: None,
        signature: sig(),
    })
}

fn committed_dead(net: &Net, observer: MemberId, id: MemberId) -> bool {
    net.core(observer)
        .and_then(|c| c.member(id))
        .is_some_and(|(s, _)| s == MemberState::Dead)
}

/// Crashes `victim` and runs until every running member committed it dead; returns how long
/// that took, failing the test past `bound`.
fn crash_until_certified(net: &mut Net, victim: MemberId, bound: Duration, seed: u64) -> Duration {
    net.crash(victim);
    let start = net.now();
    while !net
        .running()
        .iter()
        .all(|m| committed_dead(net, *m, victim))
    {
        assert!(
            net.now().since(start) <= bound,
            "seed {seed}: not committed within {bound:?}"
        );
        net.run_for(Duration::from_millis(50));
    }
    net.now().since(start)
}

#[test]
fn a_crash_is_certified_in_the_smallest_cluster_that_tolerates_one_liar() {
    // 4 honest members and a silent liar (n = 3f + 2): every honest survivor must vote.
    let cfg = config();
    let bound = cfg.detect_bound(5);
    for seed in 0..10 {
        let mut net = booted(5, cfg.clone(), seed, Duration::from_secs(3));
        let took = crash_until_certified(&mut net, 3, bound, seed);
        // Witnesses confirm on their own unanswered pings, so the suspicion shrinks to its
        // minimum instead of running to Lifeguard's maximum.
        assert!(took < cfg.suspicion_max(5), "seed {seed}");
    }
}

#[test]
fn a_crash_is_certified_while_a_liar_stays_silent() {
    let mut net = honest_cluster(11);
    let n = N as usize;
    let bound = config().detect_bound(n);
    net.crash(2);
    let start = net.now();
    let mut done = None;
    while net.now().since(start) <= bound {
        net.run_for(Duration::from_millis(100));
        let alive: Vec<MemberId> = net.running();
        if alive.iter().all(|m| committed_dead(&net, *m, 2)) {
            done = Some(net.now().since(start));
            break;
        }
    }
    let took = done.unwrap_or_else(|| panic!("crash not committed within {bound:?}"));
    assert!(took <= bound);
    for m in net.running() {
        let s = net.core(m).unwrap().stats();
        assert_eq!(s.deaths_declared, 0, "no death without a certificate");
        assert!(s.deaths_committed >= 1);
    }
}

#[test]
fn a_liar_never_commits_an_honest_member_dead() {
    let mut net = honest_cluster(12);
    let victim = 3;
    let victims_inc = |net: &Net| net.core(victim).unwrap().incarnation();
    // Twenty rounds of lies to every honest member: suspicion and Dead votes at the victim's
    // own incarnation, and at one it never signed.
    for _ in 0..20 {
        let inc = victims_inc(&net);
        for to in 0..LIAR {
            net.inject(
                LIAR,
                to,
                vec![
                    accusation(victim, inc, MemberState::Suspect),
                    accusation(victim, inc, MemberState::Dead),
                    accusation(victim, inc + 100, MemberState::Dead),
                ],
            );
        }
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(Duration::from_secs(5));
    for m in net.running() {
        assert!(
            !committed_dead(&net, m, victim),
            "member {m} committed the victim dead"
        );
        let s = net.core(m).unwrap().stats();
        assert!(s.accusations_refused > 0 || m == victim);
    }
    assert!(net.core(victim).unwrap().stats().refutations > 0);
}

#[test]
fn an_equivocator_is_excluded_everywhere() {
    let mut net = honest_cluster(13);
    let story = |payload: &'static [u8]| {
        Message::Rumor(Rumor {
            origin: LIAR,
            seq: 1,
            timestamp_ms: 1,
            payload: Bytes::from_static(payload),
            signature: sig(),
        })
    };
    net.inject(LIAR, 0, vec![story(b"left")]);
    net.inject(LIAR, 4, vec![story(b"right")]);
    net.run_for(Duration::from_secs(3));
    for m in net.running() {
        let core = net.core(m).unwrap();
        assert!(
            core.is_excluded(LIAR),
            "member {m} did not exclude the equivocator"
        );
    }
    // Its later rumors are dropped.
    net.inject(
        LIAR,
        1,
        vec![Message::Rumor(Rumor {
            seq: 2,
            ..match story(b"x") {
                Message::Rumor(r) => r,
                _ => unreachable!(),
            }
        })],
    );
    net.run_for(Duration::from_secs(1));
    assert!(net
        .node(1)
        .delivered
        .iter()
        .all(|(_, o, s)| (*o, *s) != (LIAR, 2)));
    // At least that one (a copy of a first story still in flight is also dropped as excluded).
    assert!(net.core(1).unwrap().stats().rumors_excluded >= 1);
}

#[test]
fn forged_certificates_and_unsigned_statements_change_nothing() {
    let mut net = honest_cluster(14);
    let victim = 3;
    let inc = net.core(victim).unwrap().incarnation();
    let s = Signature::from_bytes([1; 64]);
    // One witness repeated, and a certificate with fewer than q signers.
    let repeated = Certificate::new(
        victim,
        inc,
        MemberState::Dead,
        &[(LIAR, s), (LIAR, s), (LIAR, s)],
    )
    .unwrap();
    let short = Certificate::new(victim, inc, MemberState::Dead, &[(LIAR, s)]).unwrap();
    let unsigned = Message::Update(Update {
        subject: victim,
        incarnation: inc,
        state: MemberState::Suspect,
        origin: 0,
        addr: None,
        signature: None,
    });
    net.inject(
        LIAR,
        1,
        vec![
            Message::Certificate(repeated),
            Message::Certificate(short),
            unsigned,
        ],
    );
    net.run_for(Duration::from_secs(1));
    let s = net.core(1).unwrap().stats();
    assert_eq!((s.certificates_refused, s.statements_refused), (2, 1));
    assert!(!committed_dead(&net, 1, victim));
}

#[test]
fn shared_key_suites_and_unsafe_quorums_are_refused() {
    let roster = std::sync::Arc::new(Roster::dense(N));
    let boot = Boot::from_epoch(0, 1, 0);
    let shared = Config {
        suite: Suite::Aes256Gcm,
        ..config()
    };
    let e = Core::new(shared, roster.clone(), boot.clone(), Millis(0))
        .err()
        .unwrap();
    assert!(e.to_string().contains("per-member provenance"), "{e}");
    let too_small = Config {
        authority: Some(Tolerance {
            f: 2,
            ..Tolerance::default()
        }),
        ..config()
    };
    let mut boot = boot;
    boot.signer = Some(std::sync::Arc::new(codec::SecretKey::generate(
        &mut rand::rngs::OsRng,
    )));
    let e = Core::new(too_small, roster, boot.clone(), Millis(0))
        .err()
        .unwrap();
    assert!(e.to_string().contains("n ≥ 3f + 2"), "{e}");
    // A certificate must fit one datagram: 19 signatures (f = 9) do not at the default MTU.
    let wide = std::sync::Arc::new(Roster::dense(40));
    let tolerating = |f, mtu| Config {
        authority: Some(Tolerance {
            f,
            ..Tolerance::default()
        }),
        mtu,
        ..config()
    };
    let mtu = Config::default().mtu;
    let e = Core::new(tolerating(9, mtu), wide.clone(), boot.clone(), Millis(0))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("quorum 19 signatures does not fit"),
        "{e}"
    );
    assert!(Core::new(tolerating(8, mtu), wide.clone(), boot.clone(), Millis(0)).is_ok());
    assert!(Core::new(tolerating(9, mtu + 100), wide, boot, Millis(0)).is_ok());
}

#[test]
fn an_origin_over_its_cap_is_cut_before_it_crowds_others_out() {
    let cfg = Config {
        origin_rumor_cap: Some(5),
        ..config()
    };
    let mut net = Net::new(N, cfg, 15);
    net.start(0, EPOCH, &[]);
    for id in 1..LIAR {
        net.run_for(Duration::from_millis(20));
        net.start(id, EPOCH, &[0]);
    }
    net.run_for(Duration::from_secs(3));
    let flood: Vec<Message> = (0..40)
        .map(|seq| {
            Message::Rumor(Rumor {
                origin: LIAR,
                seq,
                timestamp_ms: 1,
                payload: Bytes::from_static(b"flood"),
                signature: sig(),
            })
        })
        .collect();
    for chunk in flood.chunks(5) {
        net.inject(LIAR, 0, chunk.to_vec());
    }
    let honest = net.publish(1, Bytes::from_static(b"honest")).unwrap();
    net.run_for(Duration::from_secs(2));
    let s = net.core(0).unwrap().stats();
    // The flood lands within one latency spread (≤ 10 ms), so in at most two 50 ms windows.
    assert!(s.rumors_over_cap >= 30, "{}", s.rumors_over_cap);
    for m in net.running() {
        assert!(
            net.node(m)
                .delivered
                .iter()
                .any(|(_, o, q)| (*o, *q) == (1, honest))
                || m == 1,
            "member {m} missed the honest rumor"
        );
    }
}

#[test]
fn a_crash_is_certified_in_time_after_a_liar_accused_everyone() {
    // The attack matrix's liar cell on virtual time: 4 honest members and a liar that, every
    // gossip round for two suspicion timeouts, votes each honest member dead at the incarnation
    // it announced; one suspicion timeout later the liar falls silent and a member crashes.
    let cfg = Config {
        probe_interval: Duration::from_millis(300),
        probe_timeout: Duration::from_millis(150),
        fanout: 3,
        ..config()
    };
    let (n, liar, victim) = (5, 4, 3);
    let bound = cfg.detect_bound(n as usize);
    let window = cfg.suspicion_min(n as usize) * 2;
    for seed in 0..20 {
        let mut net = booted(n, cfg.clone(), seed, Duration::from_secs(3));
        let start = net.now();
        while net.now().since(start) < window {
            for to in 0..liar {
                let lies = (0..liar)
                    .filter(|&v| v != to)
                    .map(|v| {
                        let inc = net.core(v).unwrap().incarnation();
                        accusation_by(liar, v, inc, MemberState::Dead)
                    })
                    .collect();
                net.inject(liar, to, lies);
            }
            net.run_for(cfg.gossip_interval);
        }
        net.run_for(cfg.suspicion_min(n as usize));
        // One liar is not f + 1 accusers: nobody's probes were stretched by its lies.
        for m in 0..liar {
            let h = net.core(m).unwrap().health_score();
            assert_eq!(
                h, 0,
                "seed {seed}: member {m}'s health score {h} after the lies"
            );
        }
        let took = crash_until_certified(&mut net, victim, bound, seed);
        // As fast as with no lies: witnesses' own pings shrink the suspicion to its minimum.
        assert!(
            took < cfg.suspicion_max(n as usize),
            "seed {seed}: took {took:?}"
        );
    }
}

//! The pool end to end: bisection, dedup (poisoning, in-flight waiting), shedding order, bounds.
//! Inline pools (`workers = 0`) make every step deterministic; one test runs real threads.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::Unverified;
use common::{dg, forge, inline_config, inline_pool, Roster};
use rumor_verify_pool::{
    Admit, Datagram, Outcome, Output, Pool, PoolConfig, RateLimit, ShedReason,
};

/// (sender, counter) of an output, to match it with what was sent.
fn id(o: &Output) -> (u32, u64) {
    let h = match &o.outcome {
        Outcome::Verified(v) => *v.header(),
        Outcome::Duplicate(d) => *d.header(),
        Outcome::Rejected(r) => r.header,
    };
    (h.sender, h.counter)
}

fn header_id(b: &Bytes) -> (u32, u64) {
    let d = Unverified::parse(b[..].into(), codec::Suite::Ed25519, common::TAG).expect("parses");
    (d.header().sender, d.header().counter)
}

fn run(pool: &mut Pool) -> Vec<Output> {
    let mut out = Vec::new();
    pool.run_pending(&mut out);
    out
}

/// Submits `batch`, checks every item was queued, verifies, and returns accepted flags by id.
fn verify_all(roster: &Roster, batch: &[Bytes], good: &[bool]) -> rumor_verify_pool::PoolStats {
    let mut pool = inline_pool(roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    let admits = ing.submit(batch.iter().map(dg), Instant::now());
    assert!(admits.iter().all(|a| matches!(a, Admit::Queued)));
    let out = run(&mut pool);
    assert_eq!(out.len(), batch.len());
    for (b, ok) in batch.iter().zip(good) {
        let o = out
            .iter()
            .find(|o| id(o) == header_id(b))
            .expect("a verdict for every datagram");
        assert_eq!(o.accepted(), *ok, "{:?}", id(o));
        assert!(!o.dedup_hit);
    }
    pool.stats()
}

#[test]
fn one_forgery_in_a_batch_costs_only_itself() {
    let mut roster = Roster::new(16);
    let mut batch: Vec<Bytes> = (0..64).map(|i| roster.seal(i % 16)).collect();
    batch[37] = forge(&batch[37]);
    let good: Vec<bool> = (0..64).map(|i| i != 37).collect();
    let st = verify_all(&roster, &batch, &good);
    assert_eq!((st.verified, st.failed), (63, 1));
    assert!(st.bisections >= 1);
    // Each level re-checks at most both halves, and a right half whose left sibling passed is
    // split without a check of its own: below 3 checks per item, against 2 for batch-then-singles.
    assert!(st.verifications < 3 * 64, "{}", st.verifications);
}

#[test]
fn many_forgeries_in_a_batch_are_all_found() {
    let mut roster = Roster::new(8);
    let mut batch: Vec<Bytes> = (0..64).map(|i| roster.seal(i % 8)).collect();
    let bad = [0, 1, 13, 31, 32, 50, 62, 63];
    for &i in &bad {
        batch[i] = forge(&batch[i]);
    }
    let good: Vec<bool> = (0..64).map(|i| !bad.contains(&i)).collect();
    let st = verify_all(&roster, &batch, &good);
    assert_eq!((st.verified, st.failed), (56, 8));
}

#[test]
fn a_forged_copy_first_cannot_poison_the_dedup_cache() {
    let mut roster = Roster::new(2);
    let honest = roster.seal(1);
    let forged = forge(&honest);
    let mut pool = inline_pool(&roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    let now = Instant::now();

    assert!(matches!(
        ing.submit([dg(&forged)], now)[..],
        [Admit::Queued]
    ));
    let out = run(&mut pool);
    assert!(matches!(
        out[..],
        [Output {
            outcome: Outcome::Rejected(_),
            dedup_hit: false,
            ..
        }]
    ));

    assert!(
        matches!(ing.submit([dg(&honest)], now)[..], [Admit::Queued]),
        "the forgery was not cached"
    );
    let out = run(&mut pool);
    assert!(matches!(
        out[..],
        [Output {
            outcome: Outcome::Verified(_),
            dedup_hit: false,
            ..
        }]
    ));

    assert!(
        matches!(ing.submit([dg(&honest)], now)[..], [Admit::Duplicate(_)]),
        "the honest copy is"
    );
    assert!(
        matches!(ing.submit([dg(&forged)], now)[..], [Admit::Queued]),
        "a forgery never hits"
    );
    let out = run(&mut pool);
    assert!(matches!(
        out[..],
        [Output {
            outcome: Outcome::Rejected(_),
            dedup_hit: false,
            ..
        }]
    ));
    let st = pool.stats();
    assert_eq!(
        (st.verifications, st.dedup_hits, st.verified, st.failed),
        (3, 1, 1, 2)
    );
}

#[test]
fn copies_in_flight_wait_for_the_first_verdict() {
    let mut roster = Roster::new(2);
    let honest = roster.seal(0);
    let forged = forge(&roster.seal(1));
    let mut pool = inline_pool(&roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    let now = Instant::now();
    let admits = ing.submit([dg(&honest), dg(&forged), dg(&honest)], now);
    assert!(matches!(
        admits[..],
        [Admit::Queued, Admit::Queued, Admit::Waiting]
    ));
    assert!(matches!(
        ing.submit([dg(&forged), dg(&honest)], now)[..],
        [Admit::Waiting, Admit::Waiting]
    ));
    let out = run(&mut pool);
    assert_eq!(out.len(), 5);
    let dups = out
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Duplicate(_)) && o.dedup_hit)
        .count();
    let rejected_twins = out
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Rejected(_)) && o.dedup_hit)
        .count();
    assert_eq!((dups, rejected_twins), (2, 1));
    let st = pool.stats();
    assert_eq!((st.verifications, st.dedup_waits), (2, 3));
}

#[test]
fn without_dedup_every_copy_is_verified_on_its_own() {
    let mut roster = Roster::new(2);
    let honest = roster.seal(0);
    let forged = forge(&roster.seal(1));
    let cfg = rumor_verify_pool::PoolConfig {
        dedup: false,
        ..inline_config()
    };
    let mut pool = inline_pool(&roster, cfg);
    let mut ing = pool.ingress().expect("ingress");
    let admits = ing.submit(
        [dg(&honest), dg(&forged), dg(&honest), dg(&honest)],
        Instant::now(),
    );
    assert!(admits.iter().all(|a| matches!(a, Admit::Queued)));
    let out = run(&mut pool);
    let verified = out
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Verified(_)) && !o.dedup_hit)
        .count();
    let rejected = out
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Rejected(_)))
        .count();
    assert_eq!((verified, rejected), (3, 1));
    let st = pool.stats();
    assert_eq!(
        (st.verifications >= 4, st.dedup_hits, st.dedup_waits),
        (true, 0, 0)
    );
}

#[test]
fn overload_sheds_unknown_then_duplicates_then_heavy_senders() {
    let mut roster = Roster::new(12);
    let cfg = PoolConfig {
        queue_capacity: 8,
        batch_size: 4,
        // No refill: buckets drain deterministically.
        sender_limit: RateLimit {
            per_second: 0.0,
            burst: 10.0,
        },
        ..inline_config()
    };
    let mut pool = inline_pool(&roster, cfg);
    let mut ing = pool.ingress().expect("ingress");
    let now = Instant::now();
    // Sender 0 spends 8 of its 10 tokens while the queue is quiet.
    for _ in 0..2 {
        let burst: Vec<Bytes> = (0..4).map(|_| roster.seal(0)).collect();
        assert!(ing
            .submit(burst.iter().map(dg), now)
            .iter()
            .all(|a| matches!(a, Admit::Queued)));
        run(&mut pool);
    }
    // Five light senders bring the queue over half full.
    let light: Vec<Bytes> = (1..6).map(|s| roster.seal(s)).collect();
    assert!(ing
        .submit(light.iter().map(dg), now)
        .iter()
        .all(|a| matches!(a, Admit::Queued)));

    let mut unknown = roster.seal(6).to_vec();
    unknown[12..16].copy_from_slice(&999u32.to_be_bytes());
    let unknown = Bytes::from(unknown);
    let wave = [
        dg(&unknown),
        dg(&light[0]),
        dg(&roster.seal(0)),
        dg(&roster.seal(6)),
    ];
    let admits = ing.submit(wave, now);
    assert!(
        matches!(
            admits[..],
            [
                Admit::Shed(ShedReason::UnknownSender),
                Admit::Shed(ShedReason::Duplicate),
                Admit::Shed(ShedReason::HeavySender),
                Admit::Queued
            ]
        ),
        "{admits:?}"
    );
    let rest: Vec<Bytes> = (7..10).map(|s| roster.seal(s)).collect();
    let admits = ing.submit(rest.iter().map(dg), now);
    assert!(
        matches!(
            admits[..],
            [
                Admit::Queued,
                Admit::Queued,
                Admit::Shed(ShedReason::QueueFull)
            ]
        ),
        "{admits:?}"
    );
    let st = pool.stats();
    assert_eq!(st.peak_queue_len, 8);
    for (r, n) in [
        (ShedReason::UnknownSender, 1),
        (ShedReason::Duplicate, 1),
        (ShedReason::HeavySender, 1),
        (ShedReason::QueueFull, 1),
    ] {
        assert_eq!(st.shed_by(r), n, "{r:?}");
    }
    assert_eq!(run(&mut pool).len(), 8);
}

#[test]
fn memory_stays_bounded_when_nobody_drains() {
    let mut roster = Roster::new(4);
    let cfg = PoolConfig {
        queue_capacity: 64,
        batch_size: 8,
        max_waiters: 16,
        ..inline_config()
    };
    let mut pool = inline_pool(&roster, cfg);
    let mut ing = pool.ingress().expect("ingress");
    let now = Instant::now();
    let first: Vec<Bytes> = (0..64).map(|i| roster.seal(i % 4)).collect();
    ing.submit(first.iter().map(dg), now);
    // Copies of in-flight datagrams while the queue is full: shed (pressure), never stored.
    let mut shed = 0;
    for round in 0..50 {
        let copies: Vec<Datagram> = first
            .iter()
            .chain([&roster.seal(round % 4)])
            .map(dg)
            .collect();
        shed += ing
            .submit(copies, now)
            .iter()
            .filter(|a| matches!(a, Admit::Shed(_)))
            .count();
    }
    assert_eq!(shed, 50 * 65);
    let st = pool.stats();
    assert!(st.peak_queue_len <= st.queue_capacity);
    assert_eq!(st.shed_by(ShedReason::Duplicate), 50 * 64);
    assert_eq!(st.shed_by(ShedReason::QueueFull), 50);
    assert_eq!(run(&mut pool).len(), 64);
}

#[test]
fn malformed_and_foreign_datagrams_are_refused_without_panic() {
    let mut roster = Roster::new(1);
    let mut pool = inline_pool(&roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    let good = roster.seal(0);
    let inputs: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"RU"),
        good.slice(..41),
        Bytes::from(vec![0xff; 2000]),
    ];
    let admits = ing.submit(inputs.iter().map(dg), Instant::now());
    assert!(
        admits.iter().all(|a| matches!(a, Admit::Malformed(_))),
        "{admits:?}"
    );
    assert!(run(&mut pool).is_empty());
    assert_eq!(pool.stats().malformed, 4);
}

#[test]
fn threaded_pool_settles_every_datagram() {
    let mut roster = Roster::new(32);
    let cfg = PoolConfig {
        workers: 1,
        pin: false,
        ..inline_config()
    };
    let (mut pool, rx) = Pool::start(cfg, roster.source()).expect("pool");
    let mut ing = pool.ingress().expect("ingress");
    let mut sent = Vec::new();
    for i in 0..640u32 {
        let b = roster.seal(i % 32);
        sent.push(if i % 10 == 3 {
            (forge(&b), false)
        } else {
            (b, true)
        });
    }
    for chunk in sent.chunks(64) {
        let admits = ing.submit(chunk.iter().map(|(b, _)| dg(b)), Instant::now());
        assert!(admits.iter().all(|a| matches!(a, Admit::Queued)));
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < sent.len() && Instant::now() < deadline {
        if let Ok(batch) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend(batch);
        }
    }
    assert_eq!(got.len(), sent.len());
    for (b, ok) in &sent {
        let o = got.iter().find(|o| id(o) == header_id(b)).expect("verdict");
        assert_eq!(o.accepted(), *ok);
    }
    pool.shutdown();
    assert_eq!(pool.stats().verified, 576);
}

#[test]
fn a_forger_address_is_moved_to_the_single_lane() {
    let mut roster = Roster::new(8);
    let mut pool = inline_pool(&roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    let forger: std::net::IpAddr = [192, 0, 2, 1].into();
    let mut bisections = Vec::new();
    for _ in 0..4 {
        let mut wave: Vec<Datagram> = (0..63)
            .map(|i| Datagram {
                origin: Some([10, 0, 0, i as u8].into()),
                ..dg(&roster.seal(i % 8))
            })
            .collect();
        wave.insert(
            20,
            Datagram {
                origin: Some(forger),
                ..dg(&forge(&roster.seal(3)))
            },
        );
        assert!(ing
            .submit(wave, Instant::now())
            .iter()
            .all(|a| matches!(a, Admit::Queued)));
        let out = run(&mut pool);
        assert_eq!(out.iter().filter(|o| !o.accepted()).count(), 1);
        assert!(out
            .iter()
            .all(|o| o.accepted() != (o.origin == Some(forger))));
        bisections.push(pool.stats().bisections);
    }
    // Two strikes put the address in quarantine; from then on its forgeries spoil no batch.
    assert!(bisections[0] > 0 && bisections[1] > bisections[0]);
    assert_eq!(bisections[2], bisections[1]);
    assert_eq!(bisections[3], bisections[1]);
    assert_eq!(pool.stats().quarantined_items, 2);
}

#[test]
fn after_shutdown_everything_is_shed() {
    let mut roster = Roster::new(1);
    let mut pool = inline_pool(&roster, inline_config());
    let mut ing = pool.ingress().expect("ingress");
    pool.shutdown();
    let admits = ing.submit([dg(&roster.seal(0))], Instant::now());
    assert!(matches!(admits[..], [Admit::Shed(ShedReason::QueueFull)]));
}

#[test]
fn verifying_on_ingress_hands_verdicts_on_and_waits_then_sheds_when_full() {
    let mut roster = Roster::new(8);
    let cfg = PoolConfig {
        verify_on_ingress: true,
        output_batches: 2,
        ..inline_config()
    };
    let (pool, rx) = Pool::start(cfg, roster.source()).expect("pool");
    let mut ing = pool.ingress().expect("ingress");
    let chunks: Vec<Vec<Bytes>> = (0..3)
        .map(|c| {
            (0..64u32)
                .map(|i| match roster.seal(i % 8) {
                    b if c == 0 && i == 5 => forge(&b),
                    b => b,
                })
                .collect()
        })
        .collect();
    // Two batches fit the consumer's channel; the third waits for room, finds none, and is
    // dropped after verification, each datagram told so.
    for (c, chunk) in chunks.iter().enumerate() {
        let admits = ing.submit(chunk.iter().map(dg), Instant::now());
        let want_queued = c < 2;
        assert!(admits.iter().all(|a| match a {
            Admit::Queued => want_queued,
            Admit::Undelivered => !want_queued,
            _ => false,
        }));
    }
    let got: Vec<Output> = rx.try_iter().flatten().collect();
    assert_eq!(got.len(), 128);
    for b in chunks[..2].iter().flatten() {
        let o = got.iter().find(|o| id(o) == header_id(b)).expect("verdict");
        assert_eq!(o.accepted(), id(o) != header_id(&chunks[0][5]));
    }
    let st = pool.stats();
    // The shed batch was verified before the wait: for the suites this mode is for, checking
    // costs less than finding out.
    assert_eq!((st.verified, st.failed), (191, 1));
    assert_eq!((st.undelivered, st.shed_by(ShedReason::QueueFull)), (64, 0));
    assert_eq!(st.popped_batches, 0, "no worker ran");
}

//! What each adversary does in a cell, and the verdict read back from the honest nodes.
//! Every adversary sends the same number of datagrams in every suite (`msgs_sent`); what differs
//! between suites is only what the honest nodes make of them.
//!
//! Concurrency: called from the single harness thread; the flooder sends from a thread of its
//! own, joined before the verdict.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use codec::anti_replay::ReplayConfig;
use codec::{ed25519, MemberState, Message, SecretKey, Update};
use rand::Rng;
use rumor::runtime::unix_ms;
use serde_json::{json, Map, Value};

use super::relay::{self, Mode, Relay};
use super::speaker::{seal_one, Outsider};
use super::{
    honest_ids, insider_id, outsider_socket, payload_len, say, Adversary, Env, RunFacts, Verdict,
};
use crate::cluster::{self, poll_until};
use crate::util;

/// Statements sent by the spoofer, forger and each sybil identity.
const STATEMENTS: usize = 20;
/// Sybil identities, each with fresh keys.
const SYBILS: usize = 3;
/// Datagrams the tamperer alters, and honest publishes it may wait through for them.
const TAMPER_BUDGET: usize = 10;
const RELAY_PUBLISHES: usize = 60;
/// Datagrams the replayer captures (each is replayed as captured and re-stamped, before and
/// after the victim restarts).
const CAPTURES: usize = 20;
/// Rumors the equivocator tells two stories about.
const EQUIVOCATIONS: usize = 5;
/// The flood's length.
const FLOOD_WINDOW: Duration = Duration::from_millis(1500);
/// Honest rumors per flooder phase (baseline, flood): as many as `PUBLISH_GAP` apart fit in the
/// flood after its first tenth, so each is published while it runs. With 10 the p99 was the
/// slowest one, and over 18 runs of one cell the ratio that judges ranged 0.26–2.86.
const FLOOD_RUMORS: usize = (FLOOD_WINDOW.as_millis() * 9 / 10 / PUBLISH_GAP.as_millis()) as usize;
/// The flood offers this multiple of the raw verification rate.
const FLOOD_FACTOR: f64 = 2.0;
/// Honest publishes are spaced by this (a few gossip rounds apart).
const PUBLISH_GAP: Duration = Duration::from_millis(50);
/// How long the verification-rate measurement runs.
const VERIFY_MEASURE: Duration = Duration::from_millis(300);
/// Counters are copied into the node's metrics every 250 ms (runtime `GAUGE_PERIOD`): wait two
/// periods before reading counters that judge.
const COUNTER_SETTLE: Duration = Duration::from_millis(600);
/// The longest the harness waits for honest rumors after a phase.
const DELIVERY_WAIT: Duration = Duration::from_secs(5);
/// How often views are polled while a liar acts.
const VIEW_POLL: Duration = Duration::from_millis(100);
/// Counters whose increase means a datagram was refused, by any check.
const REFUSAL_COUNTERS: [&str; 7] = [
    "drop_replay",
    "drop_auth",
    "drop_malformed",
    "drop_bad_body",
    "drop_truncated",
    "drop_core_backlog",
    "shed",
];

/// Why datagrams were shed before verification (parts of `shed`): evidence of whose traffic an
/// overload cost, not counted again as refusals.
const SHED_REASONS: [&str; 5] = [
    "drop_unknown_sender",
    "drop_rate_limited",
    "drop_duplicate_shed",
    "drop_heavy_sender",
    "drop_queue_full",
];

pub(super) fn run(adv: Adversary, env: &mut Env, facts: RunFacts) -> anyhow::Result<Verdict> {
    match adv {
        Adversary::Spoofer => spoofer(env),
        Adversary::Tamperer => tamperer(env),
        Adversary::Replayer => replayer(env),
        Adversary::Forger => forger(env),
        Adversary::Liar => liar(env),
        Adversary::Equivocator => equivocator(env),
        Adversary::FlooderAdmitted => flooder(env, facts, true),
        Adversary::FlooderOutsider => flooder(env, facts, false),
        Adversary::Sybil => sybil(env),
    }
}

/// Single-core Ed25519 verifications per second (64-byte messages), measured for a bounded time.
pub(super) fn ed25519_verify_rate() -> f64 {
    let key = SecretKey::generate(&mut rand::rngs::OsRng);
    let msg = [7u8; 64];
    let sig = key.sign(&msg);
    let public = key.public();
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < VERIFY_MEASURE {
        for _ in 0..64 {
            // The result is the same every time; it is the cost that is measured.
            let _ = std::hint::black_box(ed25519::verify(&public, &msg, &sig));
        }
        n += 64;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn verdict(succeeded: bool, msgs_sent: u64, mut evidence: Map<String, Value>) -> Verdict {
    evidence.insert("msgs_sent".into(), json!(msgs_sent));
    Verdict {
        succeeded,
        evidence,
    }
}

fn random_payload(env: &mut Env) -> Vec<u8> {
    let mut p = vec![0u8; payload_len()];
    env.rng.fill(&mut p[..]);
    p
}

/// The honest member whose name the spoofer, forger and sybils take.
const VICTIM: usize = 1;

/// The next sequence number of `origin` as the wire showed it (or far ahead if it showed none).
fn next_seq_of(env: &Env, origin: usize) -> u64 {
    let learned = env.insider.learned();
    learned
        .rumor_seq
        .get(&(origin as u32))
        .map_or(1 << 62, |s| s + 1)
}

/// Sum over honest nodes of the counters that refuse datagrams, by name (only those that moved).
fn refusals(env: &Env) -> anyhow::Result<BTreeMap<String, u64>> {
    sums(env, &REFUSAL_COUNTERS)
}

/// Sums over honest nodes of the named counters.
fn sums(env: &Env, names: &[&str]) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut m = BTreeMap::new();
    for name in names {
        m.insert(name.to_string(), env.counter_sum(name)?);
    }
    Ok(m)
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Waits for gossip to carry what was sent, then reports forged deliveries since `since_ms`.
fn forged_verdict(
    env: &Env,
    since_ms: u64,
    sent: u64,
    before: &BTreeMap<String, u64>,
    mut ev: Map<String, Value>,
) -> anyhow::Result<Verdict> {
    std::thread::sleep(env.drain() + COUNTER_SETTLE);
    let forged = env.forged_deliveries(since_ms)?;
    ev.insert("forged_rumors_delivered".into(), json!(forged.len()));
    ev.insert(
        "forged_examples".into(),
        json!(forged.iter().take(3).collect::<Vec<_>>()),
    );
    ev.insert("refused".into(), json!(delta(&refusals(env)?, before)));
    Ok(verdict(!forged.is_empty(), sent, ev))
}

/// No key: datagrams that claim an honest member as sender and as rumor origin, authenticated
/// (where the suite authenticates) with key material of its own.
fn spoofer(env: &mut Env) -> anyhow::Result<Verdict> {
    let since = unix_ms();
    let before = refusals(env)?;
    let out = Outsider::new(env.sc.suite, env.insider.tag);
    let sock = outsider_socket()?;
    // A newer boot epoch than the victim's own (headers are plaintext): what a spoofer would
    // claim so that receivers take its counters as fresh.
    let epoch = env
        .insider
        .learned()
        .epochs
        .get(&(VICTIM as u32))
        .map_or(unix_ms() / 1000, |e| e + 1);
    let mut sealer = out.sealer(VICTIM as u32, epoch)?;
    let first = next_seq_of(env, VICTIM);
    let targets: Vec<usize> = honest_ids().filter(|&i| i != VICTIM).collect();
    let mut sent = 0;
    for k in 0..STATEMENTS {
        let payload = random_payload(env);
        let r = out.rumor(VICTIM as u32, first + k as u64, &payload);
        let d = seal_one(&mut sealer, &[Message::Rumor(r)])?;
        sock.send_to(&d, env.addrs[targets[k % targets.len()]])?;
        sent += 1;
    }
    let mut ev = Map::new();
    ev.insert("claimed_id".into(), json!(VICTIM));
    forged_verdict(env, since, sent, &before, ev)
}

/// Fresh keys not on the roster: each identity announces itself under a fresh id and also
/// presents its key under an admitted id (the only ids receivers listen to).
fn sybil(env: &mut Env) -> anyhow::Result<Verdict> {
    let since = unix_ms();
    let before = refusals(env)?;
    let sock = outsider_socket()?;
    let addr = sock.local_addr()?;
    let tag = env.insider.tag;
    let mut sent = 0;
    let first_fresh_id = 1000;
    for s in 0..SYBILS {
        let out = Outsider::new(env.sc.suite, tag);
        let fresh = (first_fresh_id + s) as u32;
        let claimed = (s % super::HONEST) as u32;
        let epoch = unix_ms() / 1000 + 1;
        let mut as_fresh = out.sealer(fresh, epoch)?;
        let mut as_claimed = out.sealer(claimed, epoch + 1)?;
        let claimed_first = next_seq_of(env, claimed as usize);
        for k in 0..STATEMENTS {
            let to = env.addrs[k % super::HONEST];
            let payload = random_payload(env);
            let d = if k % 2 == 0 {
                let alive = Update {
                    subject: fresh,
                    incarnation: 1,
                    state: MemberState::Alive,
                    origin: fresh,
                    addr: Some(addr),
                    signature: None,
                };
                let r = out.rumor(fresh, k as u64 + 1, &payload);
                seal_one(&mut as_fresh, &[Message::Update(alive), Message::Rumor(r)])?
            } else {
                let r = out.rumor(claimed, claimed_first + k as u64, &payload);
                seal_one(&mut as_claimed, &[Message::Rumor(r)])?
            };
            sock.send_to(&d, to)?;
            sent += 1;
        }
    }
    std::thread::sleep(env.drain());
    // A sybil counts if any honest view lists a member off the roster or delivered its rumor.
    let mut off_roster = Vec::new();
    for (node, view) in env.views()? {
        for m in view.iter().filter(|m| m.id >= first_fresh_id as u32) {
            off_roster.push(json!({"at_node": node, "member": m.id, "state": m.state}));
        }
    }
    for (node, ds) in env.deliveries(since)? {
        for d in ds.iter().filter(|d| d.origin >= first_fresh_id as u32) {
            off_roster.push(json!({"at_node": node, "rumor_origin": d.origin, "seq": d.seq}));
        }
    }
    let mut ev = Map::new();
    ev.insert("identities".into(), json!(SYBILS));
    ev.insert("off_roster_accepted".into(), json!(off_roster.len()));
    let mut v = forged_verdict(env, since, sent, &before, ev)?;
    v.succeeded |= !off_roster.is_empty();
    Ok(v)
}

/// Admitted: rumors claiming another honest member as origin, sent with the insider's valid
/// hop authentication and signed (where the suite signs origins) with the insider's own key.
fn forger(env: &mut Env) -> anyhow::Result<Verdict> {
    let since = unix_ms();
    let before = refusals(env)?;
    let first = next_seq_of(env, VICTIM);
    let targets: Vec<usize> = honest_ids().filter(|&i| i != VICTIM).collect();
    let mut sent = 0;
    for k in 0..STATEMENTS {
        let payload = random_payload(env);
        let r = env
            .insider
            .forged_rumor(VICTIM as u32, first + k as u64, &payload);
        sent += env
            .insider
            .send(env.addrs[targets[k % targets.len()]], &[Message::Rumor(r)])?;
    }
    let mut ev = Map::new();
    ev.insert("forged_origin".into(), json!(VICTIM));
    forged_verdict(env, since, sent, &before, ev)
}

/// The size of a datagram carrying one rumor of the cells' payload: below it, a datagram cannot
/// hold one.
fn min_rumor_datagram(env: &Env) -> anyhow::Result<usize> {
    let payload = vec![0u8; payload_len()];
    let r = env.insider.own_rumor(0, &payload);
    let d = env.insider.seal(&[Message::Rumor(r)])?;
    d.first().map(|d| d.len()).context("sealing a sample rumor")
}

/// Honest node whose traffic the relay sits in front of (not a seed: seeds are where the
/// others join).
fn relay_victim() -> usize {
    super::HONEST - 1
}

/// Publishes from the nodes other than `victim` until `enough` says so (bounded).
fn publish_until(env: &mut Env, victim: usize, enough: impl Fn() -> bool) -> anyhow::Result<()> {
    let others: Vec<usize> = honest_ids().filter(|&i| i != victim).collect();
    for k in 0..RELAY_PUBLISHES {
        if enough() {
            break;
        }
        env.publish(others[k % others.len()])?;
        std::thread::sleep(PUBLISH_GAP);
    }
    Ok(())
}

/// On the path to one honest node: flips one byte of rumor-carrying datagrams.
fn tamperer(env: &mut Env) -> anyhow::Result<Verdict> {
    let since = unix_ms();
    let before = refusals(env)?;
    let victim = relay_victim();
    let mode = Mode::Tamper {
        budget: TAMPER_BUDGET,
        min_rumor_len: min_rumor_datagram(env)?,
    };
    let relay = Relay::start(env.addrs[victim], env.sc.suite, mode)?;
    publish_until(env, victim, || relay.tampered() >= TAMPER_BUDGET)?;
    // Let the victim's answers to what passed settle before leaving the path.
    std::thread::sleep(env.drain());
    let tampered = relay.tampered() as u64;
    let passed = relay.passed();
    relay.close();
    let mut ev = Map::new();
    ev.insert("victim".into(), json!(victim));
    ev.insert("relayed".into(), json!(passed));
    forged_verdict(env, since, tampered, &before, ev)
}

/// Sends each captured datagram to `to` as captured and re-stamped; returns (sent, accepted):
/// accepted is what the victim's refusal counters do not account for.
fn replay_burst(
    env: &Env,
    victim: usize,
    caps: &[relay::Captured],
) -> anyhow::Result<(u64, u64, BTreeMap<String, u64>)> {
    let sock = outsider_socket()?;
    let to = env.addrs[victim];
    let read = |env: &Env| -> anyhow::Result<BTreeMap<String, u64>> {
        let c = env.counters(victim)?;
        Ok(REFUSAL_COUNTERS
            .iter()
            .map(|k| (k.to_string(), c.get(*k).copied().unwrap_or(0)))
            .collect())
    };
    std::thread::sleep(COUNTER_SETTLE);
    let before = read(env)?;
    let mut sent = 0u64;
    for c in caps {
        sock.send_to(&c.bytes, to)?;
        sock.send_to(&relay::restamp(&c.bytes, unix_ms()), to)?;
        sent += 2;
    }
    std::thread::sleep(COUNTER_SETTLE);
    let refused = delta(&read(env)?, &before);
    let accepted = sent.saturating_sub(refused.values().sum());
    Ok((sent, accepted, refused))
}

/// On the path to one honest node: captures datagrams, replays them to it while it runs and
/// again after it restarts (down longer than the receivers' clock-skew allowance, which is
/// the span of pre-restart traffic the design admits a replay of).
fn replayer(env: &mut Env) -> anyhow::Result<Verdict> {
    let victim = relay_victim();
    let relay = Relay::start(
        env.addrs[victim],
        env.sc.suite,
        Mode::Capture { budget: CAPTURES },
    )?;
    publish_until(env, victim, || relay.captured().len() >= CAPTURES)?;
    let caps = relay.captured();
    relay.close();
    let (sent_live, accepted_live, refused_live) = replay_burst(env, victim, &caps)?;

    let down = Duration::from_millis(ReplayConfig::default().max_skew_ms) + COUNTER_SETTLE;
    env.cluster.kill(victim);
    std::thread::sleep(down);
    env.cluster.spawn(victim)?;
    env.cluster.wait_ready(&[victim], super::START_TIMEOUT)?;
    let (sent_restart, accepted_restart, refused_restart) = replay_burst(env, victim, &caps)?;
    let oldest = caps
        .first()
        .map_or(0, |c| c.at.elapsed().as_millis() as u64);

    let mut ev = Map::new();
    ev.insert("victim".into(), json!(victim));
    ev.insert("captured".into(), json!(caps.len()));
    ev.insert("accepted_while_running".into(), json!(accepted_live));
    ev.insert("refused_while_running".into(), json!(refused_live));
    ev.insert("victim_down_ms".into(), json!(down.as_millis() as u64));
    ev.insert("accepted_after_restart".into(), json!(accepted_restart));
    ev.insert("refused_after_restart".into(), json!(refused_restart));
    ev.insert("oldest_capture_age_ms".into(), json!(oldest));
    Ok(verdict(
        accepted_live + accepted_restart > 0,
        sent_live + sent_restart,
        ev,
    ))
}

/// Admitted: says honest members are dead, at the incarnations they announced themselves,
/// every gossip round for two suspicion timeouts. In the authority cells it then falls silent
/// while an honest member really crashes, which must still be committed dead in time.
fn liar(env: &mut Env) -> anyhow::Result<Verdict> {
    let window = env.suspicion_timeout() * 2;
    let rounds = (window.as_millis() / env.cfg.gossip_interval.as_millis()).max(1) as usize;
    let mut sent = 0;
    let mut watch = Watch::default();
    let start = Instant::now();
    for round in 0..rounds {
        let due = start + env.cfg.gossip_interval * round as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let announced = env.insider.learned().announced;
        for to in honest_ids() {
            let lies: Vec<Message> = honest_ids()
                .filter(|&v| v != to)
                .map(|v| {
                    // An honest member whose announcement the liar missed is accused at the
                    // incarnation its boot starts at: what it announced on joining.
                    let inc = announced.get(&(v as u32)).copied().unwrap_or(0);
                    Message::Update(env.insider.signed_update(Update {
                        subject: v as u32,
                        incarnation: inc,
                        state: MemberState::Dead,
                        origin: insider_id(),
                        addr: None,
                        signature: None,
                    }))
                })
                .collect();
            sent += env.insider.send(env.addrs[to], &lies)?;
        }
        if round % (VIEW_POLL.as_millis() / env.cfg.gossip_interval.as_millis()).max(1) as usize
            == 0
        {
            watch.observe(env)?;
        }
    }
    // The last lies need a moment to land and a suspicion timeout to count.
    let tail = Instant::now();
    while tail.elapsed() < env.suspicion_timeout() {
        watch.observe(env)?;
        std::thread::sleep(VIEW_POLL);
    }
    let threshold = env.suspicion_timeout();
    let longest = watch.longest();
    let mut succeeded = !watch.committed.is_empty() || longest >= threshold;
    let mut ev = Map::new();
    ev.insert(
        "committed_dead".into(),
        json!(watch.committed.iter().take(5).collect::<Vec<_>>()),
    );
    ev.insert(
        "longest_non_alive_ms".into(),
        json!(longest.as_millis() as u64),
    );
    ev.insert(
        "suspicion_timeout_ms".into(),
        json!(threshold.as_millis() as u64),
    );
    ev.insert("longest_non_alive".into(), json!(watch.longest_pair()));
    if env.sc.authority {
        let (ok, live_ev) = liveness(env)?;
        ev.insert("liveness".into(), live_ev);
        succeeded |= !ok;
    }
    Ok(verdict(succeeded, sent, ev))
}

/// Non-alive streaks per (observer, subject) of honest members, and committed deaths.
#[derive(Default)]
struct Watch {
    since: HashMap<(usize, u32), Instant>,
    longest: HashMap<(usize, u32), Duration>,
    committed: HashSet<(usize, u32)>,
}

impl Watch {
    fn observe(&mut self, env: &Env) -> anyhow::Result<()> {
        let now = Instant::now();
        for (node, view) in env.views()? {
            for m in view.iter().filter(|m| (m.id as usize) < super::HONEST) {
                let key = (node, m.id);
                if m.committed_dead {
                    self.committed.insert(key);
                }
                if m.state == "alive" {
                    self.since.remove(&key);
                } else {
                    let from = *self.since.entry(key).or_insert(now);
                    let l = self.longest.entry(key).or_default();
                    *l = (*l).max(now - from);
                }
            }
        }
        Ok(())
    }

    fn longest(&self) -> Duration {
        self.longest.values().copied().max().unwrap_or_default()
    }

    fn longest_pair(&self) -> Option<Value> {
        self.longest
            .iter()
            .max_by_key(|(_, d)| **d)
            .map(|((node, member), _)| json!({"at_node": node, "member": member}))
    }
}

/// A real crash while the liar is silent: every other honest node must commit the crashed
/// member dead within the configured detection bound.
fn liveness(env: &mut Env) -> anyhow::Result<(bool, Value)> {
    let victim = relay_victim();
    let bound = env.detect_bound();
    let observers: Vec<usize> = honest_ids().filter(|&i| i != victim).collect();
    let t = Instant::now();
    env.cluster.kill(victim);
    let done = poll_until(bound, || {
        let all = observers.iter().all(|&i| {
            env.cluster.members(i).is_ok_and(|v| {
                v.iter()
                    .any(|m| m.id as usize == victim && m.committed_dead)
            })
        });
        Ok(all.then(|| t.elapsed()))
    })?;
    let ev = json!({
        "crashed": victim,
        "bound_ms": bound.as_millis() as u64,
        "committed_dead_after_ms": done.map(|d| d.as_millis() as u64),
    });
    Ok((done.is_some(), ev))
}

/// Admitted: the same (origin, seq) with two payloads, each validly signed, to two halves of
/// the honest nodes.
fn equivocator(env: &mut Env) -> anyhow::Result<Verdict> {
    let since = unix_ms();
    let mut sent = 0;
    let half = super::HONEST / 2;
    for _ in 0..EQUIVOCATIONS {
        let seq = env.insider.next_seq();
        let (a, b) = (random_payload(env), random_payload(env));
        let ra = env.insider.own_rumor(seq, &a);
        let rb = env.insider.own_rumor(seq, &b);
        for i in honest_ids() {
            let r = if i < half { &ra } else { &rb };
            sent += env
                .insider
                .send(env.addrs[i], &[Message::Rumor(r.clone())])?;
        }
    }
    std::thread::sleep(env.drain() + COUNTER_SETTLE);
    let mut stories: HashMap<u64, HashSet<rumor::control::PayloadDigest>> = HashMap::new();
    for (_, ds) in env.deliveries(since)? {
        for d in ds.iter().filter(|d| d.origin == insider_id()) {
            stories.entry(d.seq).or_default().insert(d.digest);
        }
    }
    let conflicting = stories.values().filter(|s| s.len() > 1).count();
    let excluded_by: Vec<usize> = env
        .views()?
        .into_iter()
        .filter(|(_, v)| v.iter().any(|m| m.id == insider_id() && m.excluded))
        .map(|(i, _)| i)
        .collect();
    let excluded_everywhere = excluded_by.len() == env.cluster.live().len();
    let mut ev = Map::new();
    ev.insert("conflicting_seqs_accepted".into(), json!(conflicting));
    ev.insert("excluded_by".into(), json!(excluded_by));
    Ok(verdict(conflicting > 0 && !excluded_everywhere, sent, ev))
}

/// Publishes `FLOOD_RUMORS` honest rumors round-robin and waits for them at every honest node;
/// returns (sorted latencies of complete rumors, rumors some honest node never delivered).
fn honest_rumors(
    env: &mut Env,
    during: impl FnOnce(&mut Env) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<u64>, usize)> {
    let since = unix_ms();
    let mut published = Vec::with_capacity(FLOOD_RUMORS);
    for k in 0..FLOOD_RUMORS {
        published.push(env.publish(k % super::HONEST)?);
        std::thread::sleep(PUBLISH_GAP);
    }
    during(env)?;
    let mut seen: Vec<(usize, Vec<rumor::control::Delivery>)> =
        honest_ids().map(|i| (i, Vec::new())).collect();
    poll_until(DELIVERY_WAIT, || {
        cluster::refresh_deliveries(&env.cluster, &published, since, &mut seen)?;
        Ok(cluster::disseminate(&published, &seen)
            .complete()
            .then_some(()))
    })?;
    let dis = cluster::disseminate(&published, &seen);
    let lost = published.len() - dis.latencies_ms.len();
    Ok((dis.latencies_ms, lost))
}

/// Datagrams offered at `FLOOD_FACTOR` × the raw verification rate for `FLOOD_WINDOW`, at one
/// honest node: admitted, validly sealed by the insider; outsider, claiming honest senders with
/// key material of its own. Judged on honest rumor latency p99 against a baseline measured just
/// before in the same cell, and on honest rumors lost.
fn flooder(env: &mut Env, facts: RunFacts, admitted: bool) -> anyhow::Result<Verdict> {
    let victim = 0;
    let rate = facts.verify_rate * FLOOD_FACTOR;
    let count = (rate * FLOOD_WINDOW.as_secs_f64()).ceil() as usize;
    let datagrams = if admitted {
        admitted_flood(env, count)?
    } else {
        outsider_flood(env, count, victim)?
    };
    let (base, base_lost) = honest_rumors(env, |_| Ok(()))?;
    let before = refusals(env)?;
    let shed_before = sums(env, &SHED_REASONS)?;
    let to = env.addrs[victim];
    let insider = std::sync::Arc::clone(&env.insider);
    let sock = outsider_socket()?;
    let flood = std::thread::Builder::new()
        .name("flood".into())
        .spawn(move || {
            let t = Instant::now();
            for (i, d) in datagrams.iter().enumerate() {
                // On schedule: never ahead of the offered rate, catching up when behind.
                let due = Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_sub(t.elapsed()) {
                    std::thread::sleep(wait);
                }
                let _ = match admitted {
                    true => insider.send_raw(to, d),
                    false => sock.send_to(d, to),
                };
            }
            (datagrams.len() as u64, t.elapsed())
        })?;
    // The honest rumors go out while the flood runs.
    std::thread::sleep(FLOOD_WINDOW / 10);
    let (flooded, lost) = honest_rumors(env, |_| Ok(()))?;
    let (sent, took) = flood
        .join()
        .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
    let refused = delta(&refusals(env)?, &before);
    let shed_by = delta(&sums(env, &SHED_REASONS)?, &shed_before);
    let p99 = |v: &[u64]| util::percentile(v, 99.0);
    let (b, f) = (p99(&base), p99(&flooded));
    let ratio = match (b, f) {
        (Some(b), Some(f)) => Some(f as f64 / b.max(1) as f64),
        _ => None,
    };
    let succeeded = lost > 0 || ratio.is_none_or(|r| r > 2.0);
    say(format_args!(
        "flood offered {:.0}/s ({} datagrams in {:.2} s)",
        sent as f64 / took.as_secs_f64(),
        sent,
        took.as_secs_f64()
    ));
    let mut ev = Map::new();
    ev.insert("verify_rate_per_s".into(), json!(facts.verify_rate.round()));
    ev.insert(
        "offered_per_s".into(),
        json!((sent as f64 / took.as_secs_f64()).round()),
    );
    ev.insert("victim".into(), json!(victim));
    ev.insert("baseline_p99_ms".into(), json!(b));
    ev.insert("flood_p99_ms".into(), json!(f));
    ev.insert("p99_ratio".into(), json!(ratio));
    ev.insert("baseline_lost".into(), json!(base_lost));
    ev.insert("honest_rumors_lost".into(), json!(lost));
    ev.insert("refused".into(), json!(refused));
    ev.insert("shed_by_reason".into(), json!(shed_by));
    Ok(verdict(succeeded, sent, ev))
}

/// `count` valid datagrams of the insider's, each a ping (the cheapest valid message).
fn admitted_flood(env: &Env, count: usize) -> anyhow::Result<Vec<bytes::Bytes>> {
    (0..count)
        .map(|i| {
            let d = env.insider.seal(&[Message::Ping { seq: i as u32 }])?;
            d.into_iter().next().context("sealing a ping")
        })
        .collect()
}

/// `count` datagrams claiming the honest members other than `victim` as senders, each a rumor
/// of theirs, sealed by an outsider (one template per claimed sender, then fresh counters: the
/// trailer is as wrong as any the outsider could compute).
fn outsider_flood(env: &mut Env, count: usize, victim: usize) -> anyhow::Result<Vec<bytes::Bytes>> {
    let out = Outsider::new(env.sc.suite, env.insider.tag);
    let claimed: Vec<usize> = honest_ids().filter(|&i| i != victim).collect();
    let epochs = env.insider.learned().epochs;
    let mut templates = Vec::new();
    for &c in &claimed {
        let epoch = epochs.get(&(c as u32)).copied().unwrap_or(unix_ms() / 1000);
        let mut s = out.sealer(c as u32, epoch)?;
        let payload = random_payload(env);
        let r = out.rumor(c as u32, next_seq_of(env, c) + (1 << 20), &payload);
        templates.push(seal_one(&mut s, &[Message::Rumor(r)])?);
    }
    let now = unix_ms();
    // Counters far ahead of any the claimed senders used, distinct per datagram, so that no
    // copy is a byte-identical duplicate of another.
    let first = 1u64 << 32;
    Ok((0..count)
        .map(|i| {
            let t = &templates[i % templates.len()];
            bytes::Bytes::from(relay::rewrite_header(t, |h| {
                h.counter = first + i as u64;
                h.timestamp_ms = now;
            }))
        })
        .collect())
}

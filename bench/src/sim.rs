//! `rumor-bench sim` (issue 7): the deterministic large-scale simulator. It drives the one
//! protocol implementation, `rumor::core::Core`, for N members on virtual time (`world`), with a
//! network model and a CPU model per member (`cost`), and measures one rumor's dissemination and
//! SWIM's first detection of a crash.
//!
//! Validation (`--unlimited-retransmit`): aligned gossip rounds, no piggybacking, rumors pushed
//! every round until the end. Push gossip with fanout k then needs ≈ log_{k+1}(n) + ln(n)/k rounds
//! to reach all n members (Pittel 1987 for k = 1; Panagiotou, Pourmiri and Sauerwald 2015 for
//! k > 1); SWIM's first detection of a crash comes after e/(e−1) probe periods on average (Das,
//! Gupta and Motivala 2002, §3.1), counting the period in which a probe of the crashed member
//! starts as in the paper's discrete model. Both are reported beside what the simulation measured.
//!
//! Determinism: every random choice derives from the seed; the same flags give the same JSON
//! except the host measurements `wall_s`, `peak_rss_bytes` and `bytes_per_member`.
//! Concurrency: seeds run on up to `--threads` threads, each owning its own world.

mod cost;
mod queue;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use codec::{MemberId, Suite};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rumor::config::parse_duration;
use rumor::core::Config;
use serde::{Deserialize, Serialize};

pub use cost::CostModel;
pub use world::{CpuModel, NetModel, Partition, World};

use crate::report::Scale;
use crate::util;

/// The real cluster's rumor payload (`rumor-bench cluster`), so simulated and real datagrams
/// are the same size.
pub const PAYLOAD_LEN: usize = 32;
/// A dissemination not complete after this many gossip intervals is cut off (and reported as
/// delivered_fraction < 1): at n = 10^6 the formula gives 34 rounds at fanout 1.
const DEADLINE_ROUNDS: u32 = 200;
/// A crash not suspected within this many probe periods ends the detection trial.
const DETECT_DEADLINE_PERIODS: u32 = 30;
/// Received datagrams a member holds for its CPU before shedding: the verify pool's queue.
pub const QUEUE_CAP: u32 = 4096;
/// Push-pull in the synchronous mode: the longest period the core accepts, i.e. never in a run.
const SYNC_PUSH_PULL: Duration = Duration::from_secs(24 * 3600);
/// SWIM's expected first-detection time, in probe periods: e/(e−1).
pub const SWIM_DETECTION_PERIODS: f64 = std::f64::consts::E / (std::f64::consts::E - 1.0);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cluster sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000",
          value_parser = clap::value_parser!(u32).range(2..=100_000))]
    nodes: Vec<u32>,
    /// Gossip fanouts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3",
          value_parser = clap::value_parser!(u64).range(1..=64))]
    fanout: Vec<u64>,
    /// Independent runs (seeds `seed`, `seed + 1`, ...) per cluster size and fanout.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    seeds: u32,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Synchronous validation mode: aligned gossip rounds, no piggybacking, rumors pushed every
    /// round until the end of the run.
    #[arg(long)]
    unlimited_retransmit: bool,
    #[arg(long, default_value = "none")]
    suite: Suite,
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    gossip_interval: Duration,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    probe_interval: Duration,
    /// One-way latency in µs, uniform in MIN,MAX (default: loopback-like).
    #[arg(long, value_delimiter = ',', default_values_t = [50u64, 500])]
    latency_us: Vec<u64>,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Cut members below FRACTION·n off from the rest from AT to AT + FOR after the publish,
    /// as AT_MS,FOR_MS,FRACTION.
    #[arg(long, value_delimiter = ',')]
    partition: Option<Vec<f64>>,
    /// Members crashed when the rumor is published (never its publisher).
    #[arg(long, default_value_t = 0)]
    crash: u32,
    /// Crashed members restart (new epoch, join through live members) this long after.
    #[arg(long, value_parser = parse_duration)]
    restart_after: Option<Duration>,
    /// Fraction of one core each member may use.
    #[arg(long, default_value_t = 1.0)]
    cpu_budget: f64,
    /// Fixed CPU cost per datagram, RECV_US,SEND_US, instead of the suite's measured model.
    #[arg(long, value_delimiter = ',')]
    cost_us: Option<Vec<f64>>,
    /// Take the suite's costs from this report folder's crypto.json and pool.json.
    #[arg(long)]
    costs_from: Option<PathBuf>,
    /// Threads running seeds side by side (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the rounds-vs-formula chart (SVG) here.
    #[arg(long)]
    chart: Option<PathBuf>,
}

impl Args {
    /// The default report's validation: synchronous mode at n = 1,000 (and 10,000 when `full`),
    /// fanouts 1 and 3, 10 seeds each (20 under `full`), priced by the report's own crypto run
    /// when `costs_from` has one.
    pub fn for_report(
        json: PathBuf,
        chart: PathBuf,
        scale: Scale,
        costs_from: Option<PathBuf>,
    ) -> Args {
        Args {
            nodes: match scale {
                Scale::Quick => vec![200],
                Scale::Default => vec![1000],
                Scale::Full => vec![1000, 10_000],
            },
            fanout: vec![1, 3],
            seeds: match scale {
                Scale::Quick => 2,
                Scale::Default => 10,
                Scale::Full => 20,
            },
            seed: 1,
            unlimited_retransmit: true,
            suite: Suite::None,
            gossip_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            latency_us: vec![50, 500],
            loss: 0.0,
            partition: None,
            crash: 0,
            restart_after: None,
            cpu_budget: 1.0,
            cost_us: None,
            costs_from,
            threads: None,
            json: Some(json),
            chart: Some(chart),
        }
    }
}

/// The `runs` of a file `rumor-bench sim --json` wrote.
pub fn read_rows(path: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    serde_json::from_value(v.get("runs").cloned().unwrap_or_default())
        .with_context(|| format!("runs of {}", path.display()))
}

/// Everything one run needs apart from n, fanout and seed.
#[derive(Clone, Debug)]
pub struct Params {
    pub cfg: Config,
    pub net: NetModel,
    pub cpu: CpuModel,
    pub crash: u32,
    pub restart_after: Option<Duration>,
    /// Partition relative to the publish: (start, length, fraction of members cut off).
    pub partition: Option<(Duration, Duration, f64)>,
}

/// The protocol configuration of a run: the core's defaults, or the synchronous validation mode.
pub fn core_config(
    suite: Suite,
    fanout: usize,
    gossip: Duration,
    probe: Duration,
    sync: bool,
) -> anyhow::Result<Config> {
    let cfg = Config {
        suite,
        fanout,
        gossip_interval: gossip,
        probe_interval: probe,
        // memberlist's ratio, as `rumor run` and the cluster harness use.
        probe_timeout: probe / 2,
        aligned_gossip: sync,
        piggyback: !sync,
        unlimited_rumor_retransmit: sync,
        ..Config::default()
    };
    // The synchronous model is push gossip alone: no anti-entropy (push-pull carries membership,
    // never rumors, so this changes no round count; at n = 10,000 it saves a quarter of the work).
    let cfg = if sync {
        Config {
            push_pull_interval: SYNC_PUSH_PULL,
            ..cfg
        }
    } else {
        cfg
    };
    cfg.validate().context("simulated configuration")?;
    Ok(cfg)
}

/// Rounds the rumor-spreading results give for push gossip: log_{k+1}(n) + ln(n)/k.
pub fn formula_rounds(n: u32, k: usize) -> f64 {
    let (n, k) = (f64::from(n), k as f64);
    n.ln() / (k + 1.0).ln() + n.ln() / k
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One run's outcome.
#[derive(Clone, Debug)]
struct Outcome {
    rounds: f64,
    dissemination_ms: f64,
    delivered_fraction: f64,
    view_size_min: usize,
    detection_ms: Option<f64>,
    detection_periods: Option<f64>,
    datagrams_per_member: f64,
    shed: u64,
    lost: u64,
    max_backlog: u32,
    cpu_utilisation_max: f64,
    bytes_per_member: u64,
}

/// One cluster with one rumor: settle, publish from a random member, wait until every member
/// that did not crash has it, then crash a random member at a random phase and time its first
/// suspicion.
fn one_rumor(p: &Params, n: u32, seed: u64) -> anyhow::Result<Outcome> {
    let cfg = &p.cfg;
    let g = us(cfg.gossip_interval);
    let period = us(cfg.probe_interval);
    let mut rng = StdRng::seed_from_u64(seed);
    let rss0 = util::rss_bytes();
    let mut net = p.net.clone();
    let mut w = World::converged(n, cfg.clone(), net.clone(), p.cpu.clone(), seed)?;
    let bytes_per_member = util::rss_bytes().saturating_sub(rss0) / u64::from(n);

    // Every member's own Alive, queued at boot, has used up its retransmissions by then.
    w.run_until(g * u64::from(cfg.retransmit_limit(n as usize) + 1));
    // Aligned: publish just after a round, so the rounds counted are the rumor's.
    let t = if cfg.aligned_gossip {
        (w.now_us() / g + 1) * g + 1000
    } else {
        w.now_us() + rng.gen_range(0..g)
    };
    w.run_until(t);
    let publisher = rng.gen_range(0..n);
    let mut others: Vec<MemberId> = (0..n).filter(|i| *i != publisher).collect();
    others.shuffle(&mut rng);
    let crashed: Vec<MemberId> = others.iter().take(p.crash as usize).copied().collect();
    for &c in &crashed {
        w.crash(c);
    }
    let publish = w.now_us();
    if let Some((at, len, frac)) = p.partition {
        net.partition = Some(Partition {
            from_us: publish + us(at),
            until_us: publish + us(at) + us(len),
            side: (frac * f64::from(n)) as MemberId,
        });
        w.set_net(net);
    }
    let Some(seq) = w.publish(publisher, Bytes::from(vec![0x5a; PAYLOAD_LEN])) else {
        bail!("member {publisher} refused to publish");
    };
    let expected: Vec<MemberId> = others[crashed.len()..].to_vec();
    let restart_at = p.restart_after.map(|d| publish + us(d));
    let mut restarted = crashed.is_empty();
    let deadline = publish + g * u64::from(DEADLINE_ROUNDS);
    let has = |w: &World, id: MemberId| w.core(id).is_some_and(|c| c.knows_rumor(publisher, seq));
    while w.now_us() < deadline && !expected.iter().all(|&id| has(&w, id)) {
        let next = (w.now_us() + g).min(deadline);
        match restart_at {
            Some(r) if !restarted && r <= next => {
                w.run_until(r);
                for &c in &crashed {
                    w.restart(c)?;
                }
                restarted = true;
            }
            _ => w.run_until(next),
        }
    }
    let got = expected.iter().filter(|&&id| has(&w, id)).count();
    let delivered_fraction = if expected.is_empty() {
        1.0
    } else {
        got as f64 / expected.len() as f64
    };
    let last = w
        .rumors()
        .get(&(publisher, seq))
        .map_or(publish, |t| t.last_us);
    let spread = (last - publish) as f64 / g as f64;
    let rounds = if cfg.aligned_gossip {
        spread.ceil()
    } else {
        spread
    };
    let view_size_min = w
        .cores()
        .map(|c| c.cluster_size().saturating_sub(1))
        .min()
        .unwrap_or(0);

    // SWIM first detection: a crash at a random phase of the probe period.
    let crash_at = w.now_us() + rng.gen_range(0..period);
    w.run_until(crash_at);
    let running: Vec<MemberId> = w.running().collect();
    let (mut detection_ms, mut detection_periods) = (None, None);
    if let Some(&victim) = running.choose(&mut rng) {
        w.crash(victim);
        w.watch(victim);
        let end = crash_at + period * u64::from(DETECT_DEADLINE_PERIODS);
        w.run_in_steps(end, g, |w| w.first_suspected_us().is_some());
        if let Some(t) = w.first_suspected_us() {
            let d = (t - crash_at) as f64;
            detection_ms = Some(d / 1000.0);
            // The suspicion ends the failed probe, one period after it started.
            detection_periods = Some((d / period as f64 - 1.0).ceil().max(1.0));
        }
    }
    let elapsed = w.now_us().max(1) as f64;
    let cpu_utilisation_max = w.busy_us().iter().fold(0.0f64, |m, b| m.max(b / elapsed));
    Ok(Outcome {
        rounds,
        dissemination_ms: (last - publish) as f64 / 1000.0,
        delivered_fraction,
        view_size_min,
        detection_ms,
        detection_periods,
        datagrams_per_member: w.counters.sent as f64 / f64::from(n),
        shed: w.counters.shed,
        lost: w.counters.lost + w.counters.partitioned,
        max_backlog: w.counters.max_backlog,
        cpu_utilisation_max,
        bytes_per_member,
    })
}

/// One (n, fanout) row of the JSON, over all seeds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub nodes: u32,
    pub fanout: usize,
    pub suite: String,
    pub mode: String,
    pub seeds: u32,
    pub gossip_interval_ms: u64,
    pub mean_rounds: f64,
    pub min_rounds: f64,
    pub max_rounds: f64,
    pub formula_rounds: f64,
    pub rounds_over_formula: f64,
    pub mean_dissemination_ms: f64,
    pub delivered_fraction: f64,
    pub view_size_min: usize,
    /// Probe periods to the first suspicion of a crash (SWIM's discrete count), mean over seeds.
    pub first_detection_periods: Option<f64>,
    pub swim_detection_periods: f64,
    pub first_detection_ms: Option<f64>,
    pub datagrams_per_member: f64,
    pub shed: u64,
    pub lost: u64,
    pub max_backlog: u32,
    pub cpu_utilisation_max: f64,
    /// Host measurements (not deterministic): resident memory the world took per member, the
    /// process's peak RSS so far, and the wall time of this row.
    pub bytes_per_member: u64,
    pub peak_rss_bytes: u64,
    pub wall_s: f64,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, c) = v.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    (c > 0).then(|| s / c as f64)
}

/// Runs `seeds` seeds from `first` on up to `threads` threads; outcomes in seed order. The first
/// seed runs alone, so its world's memory is measured without a neighbour's.
fn run_seeds(
    p: &Params,
    n: u32,
    first: u64,
    seeds: u32,
    threads: usize,
) -> anyhow::Result<Vec<Outcome>> {
    let mut out = vec![one_rumor(p, n, first)?];
    let rest: Vec<u64> = (1..u64::from(seeds)).map(|i| first + i).collect();
    let threads = threads.clamp(1, rest.len().max(1));
    let results: Vec<anyhow::Result<Vec<(u64, Outcome)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = rest.iter().copied().skip(t).step_by(threads).collect();
                s.spawn(move || {
                    mine.into_iter()
                        .map(|seed| one_rumor(p, n, seed).map(|o| (seed, o)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a simulation thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(seed, _)| *seed);
    out.extend(all.into_iter().map(|(_, o)| o));
    Ok(out)
}

pub fn row(p: &Params, n: u32, first_seed: u64, seeds: u32, threads: usize) -> anyhow::Result<Row> {
    let t0 = Instant::now();
    let outs = run_seeds(p, n, first_seed, seeds, threads)?;
    let cfg = &p.cfg;
    let rounds: Vec<f64> = outs.iter().map(|o| o.rounds).collect();
    let mean_rounds = mean(rounds.iter().copied()).unwrap_or(f64::NAN);
    let formula = formula_rounds(n, cfg.fanout);
    Ok(Row {
        nodes: n,
        fanout: cfg.fanout,
        suite: cfg.suite.name().into(),
        mode: if cfg.unlimited_rumor_retransmit {
            "sync-unlimited"
        } else {
            "default"
        }
        .into(),
        seeds,
        gossip_interval_ms: cfg.gossip_interval.as_millis() as u64,
        mean_rounds,
        min_rounds: rounds.iter().copied().fold(f64::INFINITY, f64::min),
        max_rounds: rounds.iter().copied().fold(0.0, f64::max),
        formula_rounds: formula,
        rounds_over_formula: mean_rounds / formula,
        mean_dissemination_ms: mean(outs.iter().map(|o| o.dissemination_ms)).unwrap_or(f64::NAN),
        delivered_fraction: mean(outs.iter().map(|o| o.delivered_fraction)).unwrap_or(0.0),
        view_size_min: outs.iter().map(|o| o.view_size_min).min().unwrap_or(0),
        first_detection_periods: mean(outs.iter().filter_map(|o| o.detection_periods)),
        swim_detection_periods: SWIM_DETECTION_PERIODS,
        first_detection_ms: mean(outs.iter().filter_map(|o| o.detection_ms)),
        datagrams_per_member: mean(outs.iter().map(|o| o.datagrams_per_member)).unwrap_or(0.0),
        shed: outs.iter().map(|o| o.shed).sum(),
        lost: outs.iter().map(|o| o.lost).sum(),
        max_backlog: outs.iter().map(|o| o.max_backlog).max().unwrap_or(0),
        cpu_utilisation_max: outs
            .iter()
            .map(|o| o.cpu_utilisation_max)
            .fold(0.0, f64::max),
        bytes_per_member: outs.first().map_or(0, |o| o.bytes_per_member),
        peak_rss_bytes: util::peak_rss_bytes(),
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// The CPU model of `suite`: fixed costs, another run's measurements, or this machine's.
pub fn cost_model(
    suite: Suite,
    fixed: Option<&[f64]>,
    from: Option<&std::path::Path>,
) -> anyhow::Result<CostModel> {
    match (fixed, from) {
        (Some([r, s]), _) => {
            if !(r.is_finite() && s.is_finite() && *r >= 0.0 && *s >= 0.0) {
                bail!("--cost-us needs two non-negative numbers, got {r},{s}");
            }
            Ok(CostModel::fixed(*r, *s))
        }
        (Some(v), _) => bail!("--cost-us needs RECV_US,SEND_US, got {} values", v.len()),
        (None, Some(dir)) => CostModel::from_report(suite, dir),
        (None, None) => CostModel::measured(suite),
    }
}

fn check_fraction(v: f64, what: &str) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&v) {
        bail!("{what} must be between 0 and 1, got {v}");
    }
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    check_fraction(a.loss, "--loss")?;
    if !(a.cpu_budget > 0.0 && a.cpu_budget <= 1.0) {
        bail!("--cpu-budget must be in (0, 1], got {}", a.cpu_budget);
    }
    let partition = match a.partition.as_deref() {
        Some(&[at, len, frac]) => {
            check_fraction(frac, "the partition's fraction")?;
            if !(at >= 0.0 && len >= 0.0) {
                bail!("--partition times must be non-negative");
            }
            Some((
                Duration::from_secs_f64(at / 1e3),
                Duration::from_secs_f64(len / 1e3),
                frac,
            ))
        }
        Some(_) => bail!("--partition needs AT_MS,FOR_MS,FRACTION"),
        None => None,
    };
    let (lo, hi) = match a.latency_us.as_slice() {
        &[lo, hi] if lo <= hi => (lo, hi),
        v => bail!("--latency-us needs MIN,MAX with MIN <= MAX, got {v:?}"),
    };
    let costs = cost_model(a.suite, a.cost_us.as_deref(), a.costs_from.as_deref())?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rows = Vec::new();
    for &n in &a.nodes {
        for &k in &a.fanout {
            let cfg = core_config(
                a.suite,
                k as usize,
                a.gossip_interval,
                a.probe_interval,
                a.unlimited_retransmit,
            )?;
            let p = Params {
                cfg,
                net: NetModel {
                    latency_us: (lo, hi),
                    loss: a.loss,
                    partition: None,
                },
                cpu: CpuModel::slice(costs.clone(), a.cpu_budget, QUEUE_CAP),
                crash: a.crash.min(n.saturating_sub(2)),
                restart_after: a.restart_after,
                partition,
            };
            eprintln!("rumor-bench sim: n = {n}, fanout {k}, {} seed(s)", a.seeds);
            let r = row(&p, n, a.seed, a.seeds, threads)?;
            eprintln!(
                "  rounds {:.2} (formula {:.2}, ratio {:.3}), {:.0} ms, delivered {:.4}, view min {}, \
                 first detection {} periods (SWIM {:.2}), {:.1} s",
                r.mean_rounds,
                r.formula_rounds,
                r.rounds_over_formula,
                r.mean_dissemination_ms,
                r.delivered_fraction,
                r.view_size_min,
                r.first_detection_periods
                    .map_or("-".into(), |v| format!("{v:.2}")),
                r.swim_detection_periods,
                r.wall_s
            );
            rows.push(r);
        }
    }
    let out = serde_json::json!({
        "runs": rows,
        "cost_model": costs.source,
        "latency_us": [lo, hi],
        "loss": a.loss,
        "cpu_budget": a.cpu_budget,
        "crash": a.crash,
        "restart_after_ms": a.restart_after.map(|d| d.as_millis() as u64),
        "probe_interval_ms": a.probe_interval.as_millis() as u64,
        "wall_s": t0.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&rows)?);
    if let Some(p) = &a.json {
        util::write_json(p, &out)?;
    }
    if let Some(p) = &a.chart {
        crate::charts::validation(p, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::MemberState;

    fn params(n_fanout: usize, sync: bool, costs: CostModel, queue_cap: u32) -> Params {
        Params {
            cfg: core_config(
                Suite::None,
                n_fanout,
                Duration::from_millis(200),
                Duration::from_secs(1),
                sync,
            )
            .expect("config"),
            net: NetModel {
                latency_us: (50, 500),
                loss: 0.0,
                partition: None,
            },
            cpu: CpuModel::slice(costs, 1.0, queue_cap),
            crash: 0,
            restart_after: None,
            partition: None,
        }
    }

    fn cheap() -> CostModel {
        CostModel::measured(Suite::None).expect("model")
    }

    /// Everything but the host's memory figure.
    fn deterministic(o: &Outcome) -> String {
        format!(
            "{:?}",
            Outcome {
                bytes_per_member: 0,
                ..o.clone()
            }
        )
    }

    #[test]
    fn same_seed_same_outcome_other_seed_other_outcome() {
        let p = params(2, false, cheap(), QUEUE_CAP);
        let a = one_rumor(&p, 60, 7).expect("run");
        let b = one_rumor(&p, 60, 7).expect("run");
        let c = one_rumor(&p, 60, 8).expect("run");
        assert_eq!(deterministic(&a), deterministic(&b));
        assert_ne!(deterministic(&a), deterministic(&c));
        assert_eq!(a.delivered_fraction, 1.0);
        assert_eq!(a.view_size_min, 59);
    }

    #[test]
    fn synchronous_rounds_match_the_formula_at_small_n() {
        for k in [1, 3] {
            let p = params(k, true, cheap(), QUEUE_CAP);
            let r = row(&p, 300, 1, 8, 1).expect("row");
            let q = r.mean_rounds / r.formula_rounds;
            assert!(
                (0.85..=1.25).contains(&q),
                "k = {k}: {:.2} rounds vs formula {:.2}",
                r.mean_rounds,
                r.formula_rounds
            );
            assert_eq!(r.delivered_fraction, 1.0);
        }
    }

    #[test]
    fn an_overloaded_cpu_queues_delays_and_sheds() {
        let fast = one_rumor(&params(3, false, cheap(), QUEUE_CAP), 40, 3).expect("fast");
        // 30 ms per datagram received: a member hears ~15 gossip datagrams a second plus probes.
        let slow_costs = CostModel::fixed(30_000.0, 100.0);
        let slow =
            one_rumor(&params(3, false, slow_costs.clone(), QUEUE_CAP), 40, 3).expect("slow");
        assert!(slow.max_backlog > fast.max_backlog, "{slow:?} vs {fast:?}");
        assert!(
            slow.dissemination_ms > fast.dissemination_ms,
            "{slow:?} vs {fast:?}"
        );
        assert!(
            slow.cpu_utilisation_max > 10.0 * fast.cpu_utilisation_max,
            "{slow:?} vs {fast:?}"
        );
        let shedding = one_rumor(&params(3, false, slow_costs, 2), 40, 3).expect("shedding");
        assert!(shedding.shed > 0, "{shedding:?}");
    }

    #[test]
    fn retransmission_covers_a_lossy_network() {
        let p = params(3, false, cheap(), QUEUE_CAP);
        let lossy = Params {
            net: NetModel {
                loss: 0.2,
                ..p.net.clone()
            },
            ..p
        };
        for seed in 1..=3 {
            let o = one_rumor(&lossy, 60, seed).expect("run");
            assert!(o.lost > 0, "seed {seed}: {o:?}");
            assert_eq!(o.delivered_fraction, 1.0, "seed {seed}: {o:?}");
        }
    }

    #[test]
    fn a_partition_outlasting_the_retransmissions_keeps_a_rumor_on_its_side() {
        // Push-pull carries membership, never rumors: a rumor published while half the cluster
        // is cut off for 20 s never crosses; one cut off for two rounds still gets it.
        let p = params(3, false, cheap(), QUEUE_CAP);
        let cut = |len: Duration| Params {
            partition: Some((Duration::ZERO, len, 0.5)),
            ..p.clone()
        };
        for seed in 1..=3 {
            let long = one_rumor(&cut(Duration::from_secs(20)), 60, seed).expect("long");
            assert!(long.delivered_fraction < 0.6, "seed {seed}: {long:?}");
            let short = one_rumor(&cut(Duration::from_millis(400)), 60, seed).expect("short");
            assert!(short.lost > 0, "seed {seed}: {short:?}");
            assert_eq!(short.delivered_fraction, 1.0, "seed {seed}: {short:?}");
        }
    }

    #[test]
    fn a_crashed_member_is_dead_everywhere_and_alive_again_after_its_restart() {
        let p = params(3, false, cheap(), QUEUE_CAP);
        let n = 30;
        let mut w =
            World::converged(n, p.cfg.clone(), p.net.clone(), p.cpu.clone(), 5).expect("world");
        let victim = 7;
        let before = w.core(victim).expect("running").incarnation();
        let sees = |w: &World, state: MemberState, above: u64| {
            w.running().filter(|&m| m != victim).all(|m| {
                w.core(m)
                    .and_then(|c| c.member(victim))
                    .is_some_and(|(s, inc)| s == state && inc >= above)
            })
        };
        w.run_until(us(Duration::from_secs(2)));
        w.crash(victim);
        w.run_until(w.now_us() + us(p.cfg.detect_bound(n as usize)));
        assert!(sees(&w, MemberState::Dead, before), "not dead everywhere");
        w.restart(victim).expect("restart");
        w.run_until(w.now_us() + us(Duration::from_secs(10)));
        assert!(
            sees(&w, MemberState::Alive, before + 1),
            "not alive again at a higher incarnation"
        );
    }
}

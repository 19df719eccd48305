//! The real side of the shift: n = 32 loopback clusters (`rumor-bench cluster`, one process per
//! member) over a reduced grid, all under one CPU budget the 32 share (a cgroup quota), each
//! point beside the simulator's prediction for the same setting, load and shared budget. Two
//! calibration clusters at the reference setting size the quota (Ed25519 at
//! [`REAL_TARGET_UTILISATION`]) and measure what the process costs beyond the simulator's crypto
//! and socket model.
//! Concurrency: the clusters run one at a time; the predictions run on the sweep's threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use codec::Suite;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    best, default_threads, median_runs, read_json, steady, write, Load, Point, Setting, ShiftRow,
    Spacing, PROFILES, REFERENCE,
};
use crate::cluster;
use crate::sim::{self, CostModel, CpuModel};

/// Real clusters: members, and the reduced grid they run (a real run takes ≈ 20 s).
pub const REAL_NODES: u32 = 32;
pub(super) const REAL_FANOUTS: [usize; 3] = [1, 3, 6];
pub(super) const REAL_INTERVAL_MS: u64 = 200;
pub(super) const REAL_SUITES: [Suite; 3] = [Suite::None, Suite::Aes256Gcm, Suite::Ed25519];

/// The real cluster's load: one rumor per 100 ms as in `rumor-bench cluster`'s report run, but
/// 200 of them: the nearest-rank p99 of 200 is the third-slowest rumor, while of 100 or fewer it
/// is the slowest, the noisiest figure a run has.
pub const REAL_RUMORS: u32 = 200;
const REAL_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Simulated seeds behind each prediction of a real point. A run's p99 at n = 32 is one of its
/// slowest rumors, and from one seed to the next it moved by up to 2.3× (Ed25519, fanout 1,
/// 60 rumors: 1.7–3.9 s over 8 seeds with Poisson publishes; 1.4–2.2 s over 7 on the harness's
/// schedule), so one seed's run is a poor prediction of the typical one. Odd, so the median is
/// a run.
pub const PREDICTION_SEEDS: u64 = 7;

/// What a calibration cluster (one suite at the reference setting, under the grid's quota when
/// one is enforced) measured beyond the simulator's crypto and socket model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Calibrated {
    pub suite: String,
    /// Cores the cluster used over its rumor phase.
    pub used_cores: f64,
    /// Cores per node spent with no rumors (timers, probes): the idle phase.
    pub background_cores_per_node: f64,
    /// µs per datagram beyond the model (thread wake-ups and hand-offs), fitted: with it (and
    /// the background) the simulator at the reference setting, under the same budget, uses
    /// what this cluster used ([`fit_overhead`]).
    pub overhead_us: f64,
}

/// The real clusters' common CPU budget, and the simulator's process costs measured by two
/// clusters at the reference setting under that budget (the grid's own points there): Ed25519
/// (signatures go through the verification pool) and `none` (the MAC and AEAD suites' path:
/// checked on the io thread).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RealCalibration {
    /// Cores all 32 nodes share in every real run: `sizing_cores` over
    /// [`REAL_TARGET_UTILISATION`], corrected by what Ed25519 at the reference setting then used of
    /// it (`budget_tries`), when a cgroup quota could enforce it; else this machine's cores.
    pub budget_cores: f64,
    /// Cores Ed25519 at the reference setting used with every core: the first budget try's size.
    #[serde(default)]
    pub sizing_cores: f64,
    pub enforced: bool,
    /// Why the budget is not enforced (no writable cgroup cpu controller, usually not root).
    pub not_enforced_because: Option<String>,
    /// Each budget tried, with the utilisation Ed25519 at the reference setting reached under it.
    pub budget_tries: Vec<(f64, f64)>,
    pub signed: Calibrated,
    pub plain: Calibrated,
}

/// Ed25519's use of the real clusters' budget at the reference setting. Higher than the
/// simulator's [`TARGET_UTILISATION`] because the real grid steps coarsely (fanout 1, 3, 6):
/// fanout 6 costs Ed25519 about 1.35 times fanout 3, so at 65 % the budget would not bind
/// anywhere on the grid, and nothing would shift.
pub const REAL_TARGET_UTILISATION: f64 = 0.75;

/// A real run's Ed25519 reference utilisation is accepted within this band around the target;
/// outside it the budget is scaled by the miss and the run repeated, at most
/// `BUDGET_TRIES` times (the same work varies by about a sixth from run to run here).
pub const BUDGET_BAND: (f64, f64) = (0.65, 0.85);
const BUDGET_TRIES: usize = 3;

impl RealCalibration {
    /// The simulator's CPU for real clusters of `suite`: their shared budget, and the background
    /// and overhead of the calibration on the same receive path.
    fn cpu(&self, suite: Suite, mut costs: CostModel) -> CpuModel {
        // The node's receive path: signed hops go through the pool, the rest are checked on
        // the io thread (`verify_on_ingress`).
        let c = if suite.hop() == codec::suite::HopAuth::Signature {
            &self.signed
        } else {
            &self.plain
        };
        costs.overhead_us = c.overhead_us;
        CpuModel {
            costs,
            budget: self.budget_cores / f64::from(REAL_NODES),
            shared: true,
            background: c.background_cores_per_node,
            queue_cap: sim::QUEUE_CAP,
        }
    }
}

/// Real n = 32 loopback clusters of `suites` over the reduced real grid, all under one CPU
/// budget shared by the 32 processes (a cgroup quota; [`RealCalibration`]), each point beside
/// the simulator's prediction for the same setting, load and shared budget. Returns, per suite,
/// the real row and the simulator's row over the same grid. Cluster JSON files are kept in `dir`.
pub fn real_rows(
    dir: &Path,
    suites: &[Suite],
    from: Option<&Path>,
    seed: u64,
    threads: usize,
) -> anyhow::Result<(RealCalibration, Vec<ShiftRow>)> {
    let load = Load {
        rumors: REAL_RUMORS,
        per_s: 1.0 / REAL_PUBLISH_INTERVAL.as_secs_f64(),
        spacing: Spacing::Fixed,
    };
    let real = |suite: Suite, fanout: usize, budget: Option<f64>, name: &str| {
        let file = dir.join(format!("shift-real-{name}.json"));
        cluster::run(cluster::Args::for_shift(
            suite,
            fanout,
            Duration::from_millis(REAL_INTERVAL_MS),
            REAL_RUMORS,
            REAL_PUBLISH_INTERVAL,
            budget,
            file.clone(),
        ))
        .with_context(|| format!("real cluster {suite} fanout {fanout}"))?;
        anyhow::Ok(file)
    };
    let name = |suite: Suite, k: usize| format!("{}-f{k}", suite.name());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // A budget of every core holds nothing back but reads CPU from the cgroup, to the ns, as
    // the budgeted runs will.
    let probe = crate::cpu_budget::CpuBudget::limit(&[], cores);
    let not_enforced_because = probe.as_ref().err().map(|e| format!("{e:#}"));
    drop(probe);
    if let Some(why) = &not_enforced_because {
        eprintln!("rumor-bench shift: real clusters run without a CPU budget: {why}");
    }
    let every_core = not_enforced_because.is_none().then_some(cores);
    let calibration_run = |suite: Suite, budget: Option<f64>, name: &str| {
        let file = real(suite, REFERENCE.0, budget, name)?;
        let c = measured(suite, &file)?;
        anyhow::Ok((file, c))
    };
    // Every core first: what Ed25519 at the reference setting uses sizes the first budget try.
    let (_, mut signed) = calibration_run(
        Suite::Ed25519,
        every_core,
        &format!("calibration-{}", Suite::Ed25519.name()),
    )?;
    let sizing_cores = signed.used_cores;
    // The budget is settled on Ed25519's reference point, which the grid then keeps; so is
    // none's. Both calibrate the simulator's process costs under the quota the grid runs under:
    // with every core, Ed25519's came out at 29 µs per datagram in one run and 106 µs in the
    // next, and the wake-ups they pay for are fewer when the quota makes work queue.
    let (mut budget_cores, mut budget_tries) = (cores, Vec::new());
    let mut kept: Vec<(Suite, PathBuf)> = Vec::new();
    if every_core.is_some() {
        let mut budget = sizing_cores / REAL_TARGET_UTILISATION;
        for _ in 0..BUDGET_TRIES {
            let (file, c) = calibration_run(
                Suite::Ed25519,
                Some(budget),
                &name(Suite::Ed25519, REFERENCE.0),
            )?;
            let u = real_point(&file, REFERENCE.0, budget / f64::from(REAL_NODES))?
                .utilisation
                .context("no CPU figures in the Ed25519 reference run")?;
            budget_tries.push((budget, u));
            (budget_cores, signed) = (budget, c);
            kept = vec![(Suite::Ed25519, file)];
            if (BUDGET_BAND.0..=BUDGET_BAND.1).contains(&u) {
                break;
            }
            budget *= u / REAL_TARGET_UTILISATION;
        }
    }
    let budget = every_core.map(|_| budget_cores);
    let plain_name = match budget {
        Some(_) => name(Suite::None, REFERENCE.0),
        None => format!("calibration-{}", Suite::None.name()),
    };
    let (file, mut plain) = calibration_run(Suite::None, budget, &plain_name)?;
    if budget.is_some() {
        kept.push((Suite::None, file));
    }
    let per_member = budget_cores / f64::from(REAL_NODES);
    for (suite, c) in [(Suite::Ed25519, &mut signed), (Suite::None, &mut plain)] {
        if per_member <= c.background_cores_per_node {
            bail!(
                "the real budget ({per_member:.4} cores per node) is below the idle background of {}",
                c.suite
            );
        }
        c.overhead_us = fit_overhead(suite, c, from, per_member, load, seed)?;
    }
    let cal = RealCalibration {
        sizing_cores,
        budget_cores,
        enforced: every_core.is_some(),
        not_enforced_because,
        budget_tries,
        signed,
        plain,
    };
    eprintln!(
        "rumor-bench shift: real budget {:.3} cores for {REAL_NODES} nodes (tries: {:?}); simulated overheads: \
         {:.0} µs per datagram signed, {:.0} µs plain",
        cal.budget_cores, cal.budget_tries, cal.signed.overhead_us, cal.plain.overhead_us
    );
    let mut rows = Vec::new();
    for &suite in suites {
        let Some(profile) = PROFILES.iter().find(|p| p.suite == suite && p.dedup) else {
            bail!("no shift profile for suite {suite}");
        };
        let cpu = cal.cpu(suite, profile.costs(from)?);
        let mut measured = Vec::new();
        for k in REAL_FANOUTS {
            let file = match kept.iter().find(|(s, _)| *s == suite && k == REFERENCE.0) {
                Some((_, f)) => f.clone(),
                None => real(suite, k, budget, &name(suite, k))?,
            };
            measured.push(real_point(&file, k, per_member)?);
        }
        let settings = REAL_FANOUTS.map(|k| (k, REAL_INTERVAL_MS));
        let predictions = seed..seed + PREDICTION_SEEDS;
        let simulated = median_runs(REAL_NODES, &settings, predictions, threads, |at, s| {
            steady(profile, cpu.clone(), at, load, s)
        })?;
        let reference = |g: &[Point]| {
            g.iter()
                .find(|p| p.fanout == REFERENCE.0)
                .and_then(|p| p.utilisation)
        };
        let (real_ref, sim_ref) = (reference(&measured), reference(&simulated));
        let mut r = best(
            profile.name,
            "real",
            REAL_NODES,
            measured,
            per_member,
            load,
            real_ref,
        );
        let predicted = r
            .optimal_fanout
            .and_then(|k| simulated.iter().find(|p| p.fanout == k));
        r.sim_p50_ms = predicted.and_then(|p| p.p50_ms);
        r.sim_p99_ms = predicted.and_then(|p| p.p99_ms);
        rows.push(r);
        rows.push(best(
            profile.name,
            "sim",
            REAL_NODES,
            simulated,
            per_member,
            load,
            sim_ref,
        ));
    }
    Ok((cal, rows))
}

/// What the calibration cluster of `suite` in `file` used: its CPU over the rumor phase and its
/// idle background. The overhead is fitted afterwards, once the budget is settled.
fn measured(suite: Suite, file: &Path) -> anyhow::Result<Calibrated> {
    let v = read_json(file)?;
    let figures = || Some((used_cores(&v)?, v.pointer("/idle/cpu_s_per_s")?.as_f64()?));
    let (used_cores, idle_cores) =
        figures().with_context(|| format!("no CPU or idle figures in {}", file.display()))?;
    Ok(Calibrated {
        suite: suite.name().into(),
        used_cores,
        background_cores_per_node: idle_cores / f64::from(REAL_NODES),
        overhead_us: 0.0,
    })
}

/// Bisection steps of [`fit_overhead`]: the overhead to within 2^-12 of its bracket, far below
/// what one run varies from the next.
const FIT_STEPS: u32 = 12;

/// The overhead per datagram with which the simulator, at the reference setting, the real load,
/// and `per_member` cores of a shared budget beside the measured background, uses what the
/// calibration cluster `c` used: one parameter fitted on one measured figure. (The method
/// before, the real cost per datagram less the simulator's, counted the probes and acks twice,
/// once in the measured background and again in the model, so the simulator ran 6-9 points of
/// the budget hotter than the real cluster at the very point it was fitted on.)
/// The simulator is deterministic, and its CPU moves by under 0.3 % from seed to seed here, so
/// one seed decides. Bracketed by 0 and the whole real CPU per datagram sent.
fn fit_overhead(
    suite: Suite,
    c: &Calibrated,
    from: Option<&Path>,
    per_member: f64,
    load: Load,
    seed: u64,
) -> anyhow::Result<f64> {
    let Some(profile) = PROFILES.iter().find(|p| p.suite == suite && p.dedup) else {
        bail!("no shift profile for suite {suite}");
    };
    let costs = profile.costs(from)?;
    let at = Setting {
        n: REAL_NODES,
        fanout: REFERENCE.0,
        interval_ms: REFERENCE.1,
    };
    let target = c.used_cores / f64::from(REAL_NODES) / per_member;
    // Whether the simulator with `overhead_us` uses more of the budget than the real cluster
    // (an overloaded run does, whatever it measured before stopping).
    let hotter = |overhead_us: f64| {
        let mut costs = costs.clone();
        costs.overhead_us = overhead_us;
        let cpu = CpuModel {
            costs,
            budget: per_member,
            shared: true,
            background: c.background_cores_per_node,
            queue_cap: sim::QUEUE_CAP,
        };
        let p = steady(profile, cpu, at, load, seed)?;
        anyhow::Ok(p.overloaded || p.utilisation.is_none_or(|u| u > target))
    };
    let (mut lo, mut hi) = (0.0, 0.0);
    // Above the whole CPU per datagram, as if the model charged nothing: each member sends at
    // least one datagram per gossip round.
    let ceiling = c.used_cores * 1e6 / (f64::from(REAL_NODES) * 1e3 / REFERENCE.1 as f64);
    if !hotter(0.0)? {
        hi = ceiling;
        if !hotter(hi)? {
            bail!(
                "the simulator cannot use the {:.0} % of the budget the real {suite} cluster used",
                target * 100.0
            );
        }
        for _ in 0..FIT_STEPS {
            let mid = (lo + hi) / 2.0;
            if hotter(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    let fitted = (lo + hi) / 2.0;
    eprintln!(
        "rumor-bench shift: calibration {suite}: {:.3} cores ({:.3} idle), {:.0} % of the budget; fitted \
         overhead {fitted:.1} µs per datagram",
        c.used_cores,
        c.background_cores_per_node * f64::from(REAL_NODES),
        target * 100.0
    );
    Ok(fitted)
}

/// Mean cores a real cluster used over its rumor phase: the cgroup's count under a budget,
/// else the nodes' own.
fn used_cores(v: &Value) -> Option<f64> {
    if let Some(u) = v.pointer("/cpu_budget/used_cores").and_then(Value::as_f64) {
        return Some(u);
    }
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let window = v.pointer("/phases_s/rumor_cost_window")?.as_f64()?;
    Some(num("cpu_s_per_rumor")? * num("rumors")? / window).filter(|c| c.is_finite())
}

/// A grid point from a real cluster's JSON; utilisation as a fraction of `budget` cores per
/// member.
fn real_point(file: &Path, fanout: usize, budget: f64) -> anyhow::Result<Point> {
    let v = read_json(file)?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let rumors = num("rumors");
    let window = v
        .pointer("/phases_s/rumor_cost_window")
        .and_then(Value::as_f64);
    let nodes = num("nodes");
    let per_s = |x: Option<f64>| Some(x? * rumors? / window?).filter(|v| v.is_finite());
    Ok(Point {
        fanout,
        gossip_interval_ms: REAL_INTERVAL_MS,
        p50_ms: num("rumor_latency_p50_ms"),
        p99_ms: num("rumor_latency_p99_ms"),
        delivered_fraction: num("delivered_fraction").unwrap_or(0.0),
        utilisation: used_cores(&v).and_then(|c| Some(c / nodes? / budget)),
        utilisation_max: None,
        shed: 0,
        overloaded: false,
        datagrams_per_member_per_s: per_s(num("msgs_per_rumor_per_node")),
        p99_range_ms: None,
        suspicions: v.get("rumor_phase_suspicions").and_then(Value::as_u64),
    })
}

/// The default report's real shift: n = 32 clusters of three suites, each beside the simulator.
pub fn report_real(path: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let dir = path.parent().unwrap_or(Path::new("."));
    let from = Some(dir).filter(|d| d.join("crypto.json").is_file());
    let (cal, rows) = real_rows(dir, &REAL_SUITES, from, 1, default_threads(None))?;
    write(path, &rows, None, Some(&cal), t0.elapsed())
}

/// The real clusters' calibration from a file [`write`] wrote, if it has one.
pub fn read_calibration(path: &Path) -> Option<RealCalibration> {
    let v = read_json(path).ok()?;
    serde_json::from_value(v.get("real_calibration")?.clone()).ok()
}

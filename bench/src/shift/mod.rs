//! `rumor-bench shift` (issue 7, part 3): how the cost of authentication moves the best gossip
//! setting. For each suite (and Ed25519 without dedup and batching), the simulator sweeps fanout
//! and gossip interval under a steady rumor load and a per-member CPU budget (each setting the
//! run with the median p99 of [`SWEEP_SEEDS`] seeds), and keeps the setting with the lowest p99
//! time to full dissemination among those that lost nothing.
//!
//! The budget is derived, not typed in: a calibration run of Ed25519 at the reference setting
//! (memberlist's fanout 3 every 200 ms) measures its CPU time per member, and the budget is set
//! so that it comes to [`TARGET_UTILISATION`] of it. Every suite then gets that same budget, so
//! cheaper suites have headroom to spend on more fanout or shorter intervals, and Ed25519 has
//! none: that is the shift. Real loopback clusters of n = 32 (`rumor-bench cluster`, one process
//! per member) run a reduced grid under one CPU budget all 32 share (a cgroup quota calibrated
//! on real Ed25519 clusters to [`REAL_TARGET_UTILISATION`]), beside the simulator's prediction for the same
//! setting, load and shared budget ([`real_rows`]).
//!
//! [`point`] runs one grid point; [`real`] runs the n = 32 clusters and their predictions.
//!
//! Concurrency: grid points and their seeds run on up to `--threads` threads, each owning its
//! own world; the real clusters run one at a time.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use codec::Suite;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sim::{self, CostModel, CpuModel};
use crate::util::pick;
use crate::{charts, progress, util};

mod point;
mod real;

pub use point::{steady, Load, Point, Setting, Spacing, OVERLOAD_LAG, STORM_ONE_IN};
use real::REAL_SUITES;
pub use real::{
    read_calibration, real_rows, report_real, Calibrated, RealCalibration, BUDGET_BAND,
    PREDICTION_SEEDS, REAL_NODES, REAL_RUMORS, REAL_TARGET_UTILISATION,
};

/// Ed25519's mean CPU use at the reference setting under the load, as a fraction of the budget.
pub const TARGET_UTILISATION: f64 = 0.65;
/// memberlist's LAN gossip: fanout 3 every 200 ms.
const REFERENCE: (usize, u64) = (3, 200);
/// The sweep of the issue: fanout 1..12, and gossip intervals around memberlist's 200 ms.
const FANOUTS: std::ops::RangeInclusive<usize> = 1..=12;
const INTERVALS_MS: [u64; 5] = [50, 100, 200, 400, 800];
/// `rumor-bench shift` without `--full`.
const QUICK_FANOUTS: [usize; 6] = [1, 2, 3, 4, 6, 8];
const QUICK_INTERVALS_MS: [u64; 4] = [100, 200, 400, 800];
/// The default report's grid (with the reference setting): its time allows about a minute for
/// the simulated shift.
const REPORT_FANOUTS: [usize; 4] = [1, 2, 3, 6];
const REPORT_INTERVALS_MS: [u64; 2] = [200, 400];
/// Cluster-wide rumors per second: below what gossip at the reference setting can carry
/// (≈ 10 signed rumors per datagram, 15 datagrams per second, 14–16 sends each), so the CPU, not
/// the broadcast queue, is what the settings compete for.
const LOAD_RUMORS_PER_S: f64 = 5.0;
/// Rumors published per grid point; the p99 of 100 is its second-largest.
const LOAD_RUMORS: u32 = 100;
/// Simulated seeds per point of the sweep (`--seeds`), which keeps the run with the median p99.
/// With one seed a setting that missed a single (member, rumor) pair of about 100,000 was
/// disqualified, and the cheap suites' best moved between fanout 6 and 3 from report to report.
const SWEEP_SEEDS: u64 = 3;

/// A suite as the shift sees it: the wire suite plus the verifier's two savings.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub name: &'static str,
    pub suite: Suite,
    pub dedup: bool,
    pub batch: bool,
}

pub const PROFILES: [Profile; 6] = [
    Profile::plain("none", Suite::None),
    Profile::plain("hmac-sha256", Suite::HmacSha256),
    Profile::plain("aes-256-gcm", Suite::Aes256Gcm),
    Profile::plain("chacha20-poly1305", Suite::ChaCha20Poly1305),
    Profile::plain("ed25519", Suite::Ed25519),
    Profile {
        name: "ed25519-no-dedup-no-batch",
        suite: Suite::Ed25519,
        dedup: false,
        batch: false,
    },
];

impl Profile {
    const fn plain(name: &'static str, suite: Suite) -> Profile {
        Profile {
            name,
            suite,
            dedup: true,
            batch: true,
        }
    }

    fn costs(&self, from: Option<&Path>) -> anyhow::Result<CostModel> {
        let mut c = sim::cost_model(self.suite, None, from)?;
        c.dedup = self.dedup;
        c.batch = self.batch;
        Ok(c)
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The whole grid (fanout 1..12 × 5 intervals) and n = 10,000 as well as 1,000.
    #[arg(long)]
    full: bool,
    /// Also run the real n = 32 loopback clusters beside the simulator (needs the `rumor` binary).
    #[arg(long)]
    real: bool,
    /// Only the real clusters and their simulated predictions, not the n = 1,000 sweep.
    #[arg(long, requires = "real")]
    real_only: bool,
    /// Take the suites' costs from this report folder's crypto.json and pool.json.
    #[arg(long)]
    costs_from: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seeds per grid point (`seed`, `seed + 1`, ...); each point is the run with the
    /// median p99.
    #[arg(long, default_value_t = SWEEP_SEEDS, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Threads running grid points side by side (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the results as JSON here; while the sweep runs, also each finished row, so a long
    /// sweep that stops part-way keeps what it finished.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Take the rows the `--json` file already holds from an interrupted run of the same sweep
    /// (same grid, seeds and costs) and simulate only the rest. The simulator is deterministic,
    /// so the result is the one an uninterrupted run gives.
    #[arg(long, requires = "json")]
    resume: bool,
    /// Draw `shift.svg` and `latency-vs-fanout.svg` into this folder.
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Only these simulated suites (comma separated, as the rows name them), so a long sweep
    /// can run in parts.
    #[arg(long, value_delimiter = ',')]
    suites: Option<Vec<String>>,
    /// Simulated cluster sizes (comma separated) instead of 1,000 (and 10,000 under `--full`).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(2..))]
    nodes: Option<Vec<u32>>,
}

/// One row of the shift: a suite's best setting at one n, from the simulator or a real cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShiftRow {
    pub suite: String,
    pub source: String,
    pub nodes: u32,
    pub optimal_fanout: Option<usize>,
    pub optimal_gossip_interval_ms: Option<u64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub utilisation: Option<f64>,
    /// Ed25519-relative load: utilisation at the reference setting (fanout 3, 200 ms).
    pub utilisation_at_reference: Option<f64>,
    pub cpu_budget: f64,
    pub load_rumors_per_s: f64,
    /// Real rows: the simulator's prediction for the same setting and its ratio to the real run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_p99_ms: Option<f64>,
    pub grid: Vec<Point>,
}

impl ShiftRow {
    /// The best setting as two table cells, fanout and interval in ms ("-" where none is).
    pub fn best_cells(&self) -> (String, String) {
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        (
            cell(self.optimal_fanout.map(|k| k.to_string())),
            cell(self.optimal_gossip_interval_ms.map(|g| g.to_string())),
        )
    }
}

/// The per-member budget at which Ed25519 at the reference setting uses
/// [`TARGET_UTILISATION`] of it, from one calibration run on a whole core.
pub fn calibrate_budget(n: u32, load: Load, from: Option<&Path>, seed: u64) -> anyhow::Result<f64> {
    let ed = PROFILES[4];
    let costs = ed.costs(from)?;
    let at = Setting {
        n,
        fanout: REFERENCE.0,
        interval_ms: REFERENCE.1,
    };
    let p = steady(
        &ed,
        CpuModel::slice(costs, 1.0, sim::QUEUE_CAP),
        at,
        load,
        seed,
    )?;
    match p.utilisation {
        Some(u) if u > 0.0 => Ok((u / TARGET_UTILISATION).min(1.0)),
        _ => bail!("calibration: Ed25519 used no CPU at n = {n}"),
    }
}

/// Sweeps `grid` for each profile at `n` with the same budget and load; one row per profile.
pub fn sweep(
    n: u32,
    suites: &[(Profile, CostModel)],
    grid: &[(usize, u64)],
    budget: f64,
    load: Load,
    seeds: Range<u64>,
    threads: usize,
) -> anyhow::Result<Vec<ShiftRow>> {
    let mut rows = Vec::new();
    for (profile, costs) in suites {
        let t0 = Instant::now();
        let cpu = CpuModel::slice(costs.clone(), budget, sim::QUEUE_CAP);
        let runs = grid.len() * seeds.clone().count();
        let bar = progress::bar(runs as u64, format!("n = {n} {}", profile.name));
        bar.set_message("runs");
        let points = median_runs(n, grid, seeds.clone(), threads, |at, s| {
            let p = steady(profile, cpu.clone(), at, load, s);
            bar.inc(1);
            p
        })?;
        bar.finish_and_clear();
        let reference = points
            .iter()
            .find(|p| (p.fanout, p.gossip_interval_ms) == REFERENCE)
            .and_then(|p| p.utilisation);
        let row = best(profile.name, "sim", n, points, budget, load, reference);
        eprintln!(
            "rumor-bench shift: n = {n} {:<26} best fanout {:?} every {:?} ms, p99 {:?} ms, CPU {:.0} % ({:.1} s)",
            profile.name,
            row.optimal_fanout,
            row.optimal_gossip_interval_ms,
            row.p99_ms.map(|v| v.round()),
            row.utilisation.unwrap_or(f64::NAN) * 100.0,
            t0.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The row of the lossless point with the lowest p99 (ties: lower fanout, then longer interval,
/// the cheaper setting).
fn best(
    suite: &str,
    source: &'static str,
    n: u32,
    grid: Vec<Point>,
    budget: f64,
    load: Load,
    reference: Option<f64>,
) -> ShiftRow {
    let opt = grid
        .iter()
        .filter(|p| p.lossless())
        .min_by(|a, b| {
            let key = |p: &Point| {
                (
                    p.p99_ms.unwrap_or(f64::INFINITY),
                    p.fanout,
                    u64::MAX - p.gossip_interval_ms,
                )
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
        })
        .cloned();
    ShiftRow {
        suite: suite.into(),
        source: source.into(),
        nodes: n,
        optimal_fanout: opt.as_ref().map(|p| p.fanout),
        optimal_gossip_interval_ms: opt.as_ref().map(|p| p.gossip_interval_ms),
        p50_ms: opt.as_ref().and_then(|p| p.p50_ms),
        p99_ms: opt.as_ref().and_then(|p| p.p99_ms),
        utilisation: opt.as_ref().and_then(|p| p.utilisation),
        utilisation_at_reference: reference,
        cpu_budget: budget,
        load_rumors_per_s: load.per_s,
        sim_p50_ms: None,
        sim_p99_ms: None,
        grid,
    }
}

/// Maps `f` over `items` on up to `threads` threads, results in item order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let threads = threads.clamp(1, items.len().max(1));
    let f = &f;
    let mut out: Vec<(usize, R)> = Vec::with_capacity(items.len());
    let parts: Vec<anyhow::Result<Vec<(usize, R)>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..items.len())
                        .step_by(threads)
                        .map(|i| f(&items[i]).map(|r| (i, r)))
                        .collect()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a shift thread panicked")))
            })
            .collect()
    });
    for p in parts {
        out.extend(p?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

fn grid(fanouts: &[usize], intervals: &[u64]) -> Vec<(usize, u64)> {
    fanouts
        .iter()
        .flat_map(|&k| intervals.iter().map(move |&g| (k, g)))
        .collect()
}

fn default_threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

const LOAD: Load = Load {
    rumors: LOAD_RUMORS,
    per_s: LOAD_RUMORS_PER_S,
    spacing: Spacing::Poisson,
};

/// The simulated cluster sizes: 10,000 only under `--full`.
fn sizes_of(full: bool) -> Vec<u32> {
    if full {
        vec![1000, 10_000]
    } else {
        vec![1000]
    }
}

/// The grid of `rumor-bench shift`: the whole sweep under `--full`, else the quick one.
fn grid_of(full: bool) -> Vec<(usize, u64)> {
    if full {
        grid(&FANOUTS.collect::<Vec<_>>(), &INTERVALS_MS)
    } else {
        grid(&QUICK_FANOUTS, &QUICK_INTERVALS_MS)
    }
}

/// What a simulated sweep covers: every row of one sweep shares it, and a resumed sweep must
/// match it (`--resume`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepSpec {
    pub grid: Vec<(usize, u64)>,
    pub seeds: Range<u64>,
    /// The `--costs-from` folder, if the costs came from one.
    pub costs_from: Option<PathBuf>,
}

/// The simulated shift at each n: calibrate the budget, sweep every profile over the spec's
/// grid. Rows in `done` (an interrupted run's) are kept instead of simulated again; `saved` is
/// told the rows so far after each new one.
pub fn simulate(
    sizes: &[u32],
    profiles: &[Profile],
    spec: &SweepSpec,
    threads: usize,
    done: &[ShiftRow],
    mut saved: impl FnMut(&[ShiftRow]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<ShiftRow>> {
    let from = spec.costs_from.as_deref();
    let suites = profiles
        .iter()
        .map(|p| Ok((*p, p.costs(from)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let finished = |n: u32, p: &Profile| {
        done.iter()
            .find(|r| r.source == "sim" && r.nodes == n && r.suite == p.name)
    };
    let mut rows = Vec::new();
    for &n in sizes {
        if suites.iter().all(|(p, _)| finished(n, p).is_some()) {
            rows.extend(suites.iter().filter_map(|(p, _)| finished(n, p).cloned()));
            continue;
        }
        let budget = calibrate_budget(n, LOAD, from, spec.seeds.start)?;
        eprintln!(
            "rumor-bench shift: n = {n}: budget {:.3} % of a core per member ({}% Ed25519 at fanout {} / {} ms)",
            budget * 100.0,
            TARGET_UTILISATION * 100.0,
            REFERENCE.0,
            REFERENCE.1
        );
        for suite in &suites {
            if let Some(r) = finished(n, &suite.0) {
                // The budget is calibrated the same way every time: a different one means the
                // row was made by another version or other costs.
                if r.cpu_budget != budget {
                    bail!(
                        "--resume: the kept row {} at n = {n} ran at a budget of {} cores per member, this run \
                         calibrates {budget}: it is from another version of the simulator",
                        r.suite,
                        r.cpu_budget
                    );
                }
                rows.push(r.clone());
                continue;
            }
            rows.extend(sweep(
                n,
                std::slice::from_ref(suite),
                &spec.grid,
                budget,
                LOAD,
                spec.seeds.clone(),
                threads,
            )?);
            saved(&rows)?;
        }
    }
    Ok(rows)
}

/// The rows of an interrupted sweep in `path`, if it was made with `spec`.
fn resumed(path: &Path, spec: &SweepSpec) -> anyhow::Result<Vec<ShiftRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v = read_json(path)?;
    let kept: SweepSpec = v
        .get("sweep")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .with_context(|| format!("--resume: reading the sweep of {}", path.display()))?
        .with_context(|| {
            format!(
                "--resume: {} does not say what sweep it holds",
                path.display()
            )
        })?;
    let mut differs = Vec::new();
    if kept.grid != spec.grid {
        differs.push(format!(
            "another grid ({} settings, this run {})",
            kept.grid.len(),
            spec.grid.len()
        ));
    }
    if kept.seeds != spec.seeds {
        differs.push(format!("seeds {:?}, not {:?}", kept.seeds, spec.seeds));
    }
    if kept.costs_from != spec.costs_from {
        differs.push(format!(
            "costs from {:?}, not {:?}",
            kept.costs_from, spec.costs_from
        ));
    }
    if !differs.is_empty() {
        bail!(
            "--resume: {} holds another sweep than this run asks for: {}",
            path.display(),
            differs.join("; ")
        );
    }
    rows_of(&v, path).context("--resume")
}

/// One point per (fanout, interval) of `settings` at `n`: of its runs over `seeds`, the one
/// with the median p99 ([`median_by_p99`]). Every (setting, seed) pair runs side by side.
fn median_runs(
    n: u32,
    settings: &[(usize, u64)],
    seeds: Range<u64>,
    threads: usize,
    run: impl Fn(Setting, u64) -> anyhow::Result<Point> + Sync,
) -> anyhow::Result<Vec<Point>> {
    let jobs: Vec<(Setting, u64)> = settings
        .iter()
        .flat_map(|&(fanout, interval_ms)| {
            let at = Setting {
                n,
                fanout,
                interval_ms,
            };
            seeds.clone().map(move |s| (at, s))
        })
        .collect();
    let mut runs = parallel(&jobs, threads, |&(at, s)| run(at, s))?.into_iter();
    let per_setting = seeds.count();
    settings
        .iter()
        .map(|_| median_by_p99(runs.by_ref().take(per_setting).collect()))
        .collect::<Option<Vec<Point>>>()
        .context("a setting without simulated runs")
}

/// The run with the median p99 (one that lost a rumor ranks slowest), carrying the runs' p99
/// range when there are several and every one has a p99.
fn median_by_p99(mut runs: Vec<Point>) -> Option<Point> {
    let rank = |p: &Point| p.p99_ms.unwrap_or(f64::INFINITY);
    runs.sort_by(|a, b| rank(a).total_cmp(&rank(b)));
    let range = runs
        .iter()
        .map(|p| p.p99_ms)
        .collect::<Option<Vec<f64>>>()
        .filter(|v| v.len() > 1)
        .and_then(|v| Some((*v.first()?, *v.last()?)));
    let mut median = (!runs.is_empty()).then(|| runs.swap_remove(runs.len() / 2))?;
    median.p99_range_ms = range;
    Some(median)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let threads = default_threads(a.threads);
    let sizes = a.nodes.clone().unwrap_or_else(|| sizes_of(a.full));
    let profiles = pick(&PROFILES, a.suites.as_deref(), "suite", |p| p.name.into())?;
    let from = a.costs_from.as_deref();
    let spec = SweepSpec {
        grid: grid_of(a.full),
        seeds: a.seed..a.seed + a.seeds,
        costs_from: from.map(Path::to_path_buf),
    };
    let mut rows = if a.real_only {
        Vec::new()
    } else {
        let done = match &a.json {
            Some(p) if a.resume => resumed(p, &spec)?,
            _ => Vec::new(),
        };
        if !done.is_empty() {
            eprintln!(
                "rumor-bench shift: resuming with {} finished rows",
                done.len()
            );
        }
        simulate(&sizes, &profiles, &spec, threads, &done, |rows| {
            match &a.json {
                Some(p) => write(p, rows, Some(&spec), None, t0.elapsed()),
                None => Ok(()),
            }
        })?
    };
    let mut calibration = None;
    if a.real {
        let dir = a
            .json
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let (cal, real) = real_rows(&dir, &REAL_SUITES, from, a.seed, threads)?;
        rows.extend(real);
        calibration = Some(cal);
    }
    print_rows(&rows);
    if let Some(p) = &a.json {
        let sweep = (!a.real_only).then_some(&spec);
        write(p, &rows, sweep, calibration.as_ref(), t0.elapsed())?;
    }
    if let Some(dir) = &a.charts {
        draw(dir, &rows)?;
    }
    Ok(())
}

/// Writes the shift rows as `{"shift": [...]}` with the run's constants.
pub fn write(
    path: &Path,
    rows: &[ShiftRow],
    sweep: Option<&SweepSpec>,
    real_calibration: Option<&RealCalibration>,
    wall: Duration,
) -> anyhow::Result<()> {
    util::write_json(
        path,
        &serde_json::json!({
            "shift": rows,
            "sweep": sweep,
            "real_calibration": real_calibration,
            "target_utilisation": TARGET_UTILISATION,
            "real_target_utilisation": REAL_TARGET_UTILISATION,
            "reference_setting": {"fanout": REFERENCE.0, "gossip_interval_ms": REFERENCE.1},
            "load_rumors": LOAD_RUMORS,
            "load_rumors_per_s": LOAD_RUMORS_PER_S,
            "wall_s": wall.as_secs_f64(),
        }),
    )
}

/// The two shift charts, into `dir`.
pub fn draw(dir: &Path, rows: &[ShiftRow]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    charts::latency_vs_fanout(&dir.join("latency-vs-fanout.svg"), rows)?;
    charts::shift(&dir.join("shift.svg"), rows)
}

/// The default report's simulated shift: its reduced grid at n = 1,000, or under `full` the
/// whole grid at n = 1,000 and 10,000.
pub fn report_sim(path: &Path, full: bool) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let sizes = sizes_of(full);
    let from = path.parent();
    // The report's own crypto and pool runs, when they succeeded, price the datagrams.
    let from = from.filter(|d| d.join("crypto.json").is_file());
    let g = if full {
        grid_of(true)
    } else {
        grid(&REPORT_FANOUTS, &REPORT_INTERVALS_MS)
    };
    let spec = SweepSpec {
        grid: g,
        seeds: 1..1 + SWEEP_SEEDS,
        costs_from: from.map(Path::to_path_buf),
    };
    let rows = simulate(&sizes, &PROFILES, &spec, default_threads(None), &[], |_| {
        Ok(())
    })?;
    write(path, &rows, Some(&spec), None, t0.elapsed())
}

fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
}

/// Shift rows from a file [`write`] wrote.
pub fn read(path: &Path) -> anyhow::Result<Vec<ShiftRow>> {
    rows_of(&read_json(path)?, path)
}

/// The shift rows of `v`, read from `path`.
fn rows_of(v: &Value, path: &Path) -> anyhow::Result<Vec<ShiftRow>> {
    serde_json::from_value(v.get("shift").cloned().unwrap_or_default())
        .with_context(|| format!("shift rows of {}", path.display()))
}

fn print_rows(rows: &[ShiftRow]) {
    println!("suite                      source nodes fanout interval_ms   p50_ms   p99_ms  CPU %");
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
    for r in rows {
        let (fanout, interval) = r.best_cells();
        println!(
            "{:<26} {:<6} {:>5} {:>6} {:>11} {:>8} {:>8} {:>6}",
            r.suite,
            r.source,
            r.nodes,
            fanout,
            interval,
            f(r.p50_ms),
            f(r.p99_ms),
            f(r.utilisation.map(|u| u * 100.0)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim;

    const SMALL: Load = Load {
        rumors: 20,
        per_s: 5.0,
        spacing: Spacing::Poisson,
    };

    /// A small cluster at the reference setting.
    const SMALL_AT: Setting = Setting {
        n: 20,
        fanout: REFERENCE.0,
        interval_ms: REFERENCE.1,
    };

    #[test]
    fn a_resumed_sweep_keeps_finished_rows_and_gives_the_uninterrupted_result() {
        let spec = SweepSpec {
            grid: vec![(2, 200), (4, 100)],
            seeds: 1..2,
            costs_from: None,
        };
        let profiles = [PROFILES[0], PROFILES[1]];
        let mut saves = Vec::new();
        let whole = simulate(&[40], &profiles, &spec, 2, &[], |rows| {
            saves.push(rows.len());
            Ok(())
        })
        .expect("whole sweep");
        assert_eq!(saves, [1, 2], "a save after each row");
        // Stopped after the first row: the resumed run simulates only the second.
        let mut saves = Vec::new();
        let again = simulate(&[40], &profiles, &spec, 2, &whole[..1], |rows| {
            saves.push(rows.len());
            Ok(())
        })
        .expect("resumed sweep");
        assert_eq!(again, whole);
        assert_eq!(saves, [2]);
        // A kept row from another budget is another simulator's: refused, not mixed in.
        let mut stale = whole[0].clone();
        stale.cpu_budget *= 2.0;
        let err = simulate(&[40], &profiles, &spec, 2, &[stale], |_| Ok(()))
            .expect_err("a row of another budget");
        assert!(format!("{err:#}").contains("another version"), "{err:#}");
        // The file's sweep must be this one.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("shift.json");
        write(&path, &whole, Some(&spec), None, Duration::ZERO).expect("write");
        assert_eq!(resumed(&path, &spec).expect("rows"), whole);
        let other = SweepSpec {
            seeds: 1..4,
            ..spec.clone()
        };
        let err = resumed(&path, &other).expect_err("another sweep");
        assert!(format!("{err:#}").contains("another sweep"), "{err:#}");
    }

    #[test]
    fn authentication_cost_overloads_a_setting_that_is_cheap_without_it() {
        let at = Setting {
            n: 30,
            fanout: 6,
            interval_ms: 100,
        };
        let budget = 0.002;
        let run = |p: &Profile| {
            let costs = p.costs(None).expect("costs");
            steady(
                p,
                CpuModel::slice(costs.clone(), budget, sim::QUEUE_CAP),
                at,
                SMALL,
                1,
            )
            .expect("point")
        };
        let none = run(&PROFILES[0]);
        let ed = run(&PROFILES[5]);
        assert!(none.lossless(), "{none:?}");
        assert!(!ed.lossless() && ed.overloaded, "{ed:?}");
        assert!(ed.utilisation > none.utilisation, "{ed:?} vs {none:?}");
        // The best of the two is the lossless one, whatever its p99.
        let row = best("x", "sim", 30, vec![ed, none.clone()], budget, SMALL, None);
        assert_eq!(row.optimal_fanout, Some(none.fanout));
        assert_eq!(row.p99_ms, none.p99_ms);
    }

    #[test]
    fn a_shared_pool_lends_idle_members_their_share() {
        let at = SMALL_AT;
        let p = PROFILES[4];
        let slice = CpuModel::slice(p.costs(None).expect("costs"), 0.01, sim::QUEUE_CAP);
        let shared = CpuModel {
            shared: true,
            ..slice.clone()
        };
        let own = steady(&p, slice, at, SMALL, 3).expect("slice");
        let pooled = steady(&p, shared, at, SMALL, 3).expect("shared");
        // Each hop waits for one member's 1 % of a core, or for the 20 members' 20 % together.
        assert!(pooled.p50_ms < own.p50_ms, "{pooled:?} vs {own:?}");
        // Either way the same work is done: utilisation is the same within noise.
        let (a, b) = (own.utilisation.expect("u"), pooled.utilisation.expect("u"));
        assert!((a - b).abs() < 0.2 * a, "{a} vs {b}");
    }

    #[test]
    fn same_seed_same_point() {
        let at = SMALL_AT;
        let p = PROFILES[4];
        let costs = p.costs(None).expect("costs");
        let a = steady(
            &p,
            CpuModel::slice(costs.clone(), 0.05, sim::QUEUE_CAP),
            at,
            SMALL,
            9,
        )
        .expect("a");
        let b = steady(
            &p,
            CpuModel::slice(costs, 0.05, sim::QUEUE_CAP),
            at,
            SMALL,
            9,
        )
        .expect("b");
        assert_eq!(a, b);
        assert_eq!(a.delivered_fraction, 1.0);
    }

    #[test]
    fn a_prediction_is_the_median_run_by_p99_with_the_range() {
        let run = |fanout: usize, p99: Option<f64>| Point {
            fanout,
            gossip_interval_ms: 200,
            p50_ms: Some(1.0),
            p99_ms: p99,
            delivered_fraction: if p99.is_some() { 1.0 } else { 0.9 },
            utilisation: None,
            utilisation_max: None,
            shed: 0,
            overloaded: false,
            datagrams_per_member_per_s: None,
            p99_range_ms: None,
            suspicions: None,
        };
        let m = median_by_p99(vec![
            run(1, Some(900.0)),
            run(2, Some(300.0)),
            run(3, Some(500.0)),
        ])
        .expect("median");
        assert_eq!((m.fanout, m.p99_range_ms), (3, Some((300.0, 900.0))));
        // A run that lost a rumor ranks slowest, and leaves no range to give.
        let m = median_by_p99(vec![run(1, None), run(2, Some(300.0)), run(3, Some(500.0))])
            .expect("median");
        assert_eq!((m.fanout, m.p99_range_ms), (3, None));
        // One run is its own median, with no spread to show.
        let m = median_by_p99(vec![run(4, Some(700.0))]).expect("one");
        assert_eq!((m.fanout, m.p99_range_ms), (4, None));
        assert!(median_by_p99(Vec::new()).is_none());
    }

    #[test]
    fn a_sweep_point_is_the_median_of_its_seeds() {
        let (budget, grid) = (0.05, [(2, 200), (3, 200)]);
        let ed25519 = [(PROFILES[4], PROFILES[4].costs(None).expect("costs"))];
        let rows = sweep(SMALL_AT.n, &ed25519, &grid, budget, SMALL, 5..8, 2).expect("sweep");
        let [ed] = rows.as_slice() else {
            panic!("one row per suite swept, got {}", rows.len());
        };
        assert_eq!(ed.suite, "ed25519");
        for (p, &(fanout, interval_ms)) in ed.grid.iter().zip(&grid) {
            assert_eq!((p.fanout, p.gossip_interval_ms), (fanout, interval_ms));
            let one_by_one: Vec<Point> = (5..8)
                .map(|s| {
                    let at = Setting {
                        n: SMALL_AT.n,
                        fanout,
                        interval_ms,
                    };
                    let cpu = CpuModel::slice(
                        PROFILES[4].costs(None).expect("costs"),
                        budget,
                        sim::QUEUE_CAP,
                    );
                    steady(&PROFILES[4], cpu, at, SMALL, s).expect("run")
                })
                .collect();
            assert_eq!(Some(p.clone()), median_by_p99(one_by_one));
        }
    }

    #[test]
    fn a_real_points_p99_is_not_its_slowest_rumor() {
        let ranks: Vec<u64> = (1..=u64::from(REAL_RUMORS)).collect();
        assert_eq!(
            crate::util::percentile(&ranks, 99.0),
            Some(u64::from(REAL_RUMORS) - 2),
            "two rumors above the p99"
        );
    }
}

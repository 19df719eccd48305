//! The default report (`rumor-bench` with no arguments): runs each stage that exists, keeps its
//! JSON under `reports/<UTC timestamp>/`, and writes `REPORT.md` from those files, so every
//! number in the report is traceable to the run (and the file) that produced it.
//!
//! Concurrency: stages run one after another on a quiet machine; none overlaps another.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use crate::{
    attacks, charts, cluster, crypto, ingest, pool, progress, protection, shift, sim, util,
};

/// The real 32-member clusters the report runs: the baseline, a shared-key AEAD, per-member
/// signatures, and signatures with the authority layer (f = 1): (stage, file, suite, f).
const CLUSTERS: [(&str, &str, codec::Suite, Option<u32>); 4] = [
    (
        "cluster none",
        "cluster-none.json",
        codec::Suite::None,
        None,
    ),
    (
        "cluster aes-256-gcm",
        "cluster-aes-256-gcm.json",
        codec::Suite::Aes256Gcm,
        None,
    ),
    (
        "cluster ed25519",
        "cluster-ed25519.json",
        codec::Suite::Ed25519,
        None,
    ),
    (
        "cluster ed25519 + authority",
        "cluster-ed25519-authority.json",
        codec::Suite::Ed25519,
        Some(1),
    ),
];

/// Seconds of live load per protection level's ingest run.
const INGEST_SECONDS: f64 = 3.0;

struct Stage {
    name: &'static str,
    file: &'static str,
    seconds: f64,
    ok: Result<(), String>,
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// How much the report measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// A smoke run of every kind of stage in seconds (a test runs it): small clusters and
    /// simulations, short samples; no ingest or shift stages.
    Quick,
    /// The default: fits 10 minutes on 2 cores.
    Default,
    /// Adds the 10,000-member simulations and the whole shift grid.
    Full,
}

/// `rumor-bench` with no subcommand.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// A small version of every stage (seconds, not minutes): checks the report end to end.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// The whole shift grid and the 10,000-member simulations (far longer than 10 minutes).
    #[arg(long)]
    pub full: bool,
    /// Add the adversary matrix (`rumor-bench attacks`, about 4 minutes): the protection table
    /// then says what each level stops.
    #[arg(long)]
    pub attacks: bool,
}

impl Args {
    fn scale(&self) -> Scale {
        match (self.quick, self.full) {
            (true, _) => Scale::Quick,
            (_, true) => Scale::Full,
            _ => Scale::Default,
        }
    }
}

/// Runs every stage, then renders the report; a failed stage is reported, not fatal.
pub fn run(args: &Args) -> anyhow::Result<PathBuf> {
    let scale = args.scale();
    let (quick, full) = (scale == Scale::Quick, scale == Scale::Full);
    let dir = util::report_dir()?;
    eprintln!("rumor-bench: writing {}", dir.display());
    // The stages in order: (name, file, run).
    type Run<'a> = Box<dyn Fn(PathBuf) -> anyhow::Result<()> + 'a>;
    let mut plan: Vec<(&str, &'static str, Run)> = vec![
        (
            "crypto",
            "crypto.json",
            Box::new(|p| crypto::run(crypto::Args::for_report(p, quick))),
        ),
        (
            "pool",
            "pool.json",
            Box::new(|p| pool::run(pool::Args::for_report(p, quick))),
        ),
    ];
    for l in protection::LEVELS.iter().filter(|_| !quick) {
        plan.push((
            l.name,
            l.ingest_file,
            Box::new(move |p| {
                ingest::run(ingest::Args::live_for_report(
                    l.suite(),
                    l.tolerate(),
                    INGEST_SECONDS,
                    p,
                ))
            }),
        ));
    }
    for (name, file, suite, tolerate) in CLUSTERS {
        plan.push((
            name,
            file,
            Box::new(move |p| cluster::run(cluster::Args::for_report(suite, tolerate, quick, p))),
        ));
    }
    if args.attacks {
        plan.push((
            "attacks",
            "attacks.json",
            Box::new(|p| attacks::run(attacks::Args::for_report(p))),
        ));
    }
    plan.push((
        "sim validation",
        "sim-validation.json",
        Box::new(|p| {
            // This run's crypto and pool measurements price the datagrams when it has them.
            let costs = Some(dir.clone()).filter(|d| d.join("crypto.json").is_file());
            let chart = p.with_file_name("sim-validation.svg");
            sim::run(sim::Args::for_report(p, chart, scale, costs))
        }),
    ));
    if !quick {
        plan.push((
            "shift (simulated)",
            "shift-sim.json",
            Box::new(|p| shift::report_sim(&p, full)),
        ));
        plan.push((
            "shift (real, n = 32)",
            "shift-real.json",
            Box::new(|p| shift::report_real(&p)),
        ));
    }
    let bar = progress::bar(plan.len() as u64, "rumor-bench".into());
    let mut stages = Vec::new();
    for (name, file, run) in plan {
        bar.set_message(name);
        bar.suspend(|| eprintln!("rumor-bench: stage {name}"));
        let t = Instant::now();
        let ok = run(dir.join(file)).map_err(|e| format!("{e:#}"));
        if let Err(e) = &ok {
            bar.suspend(|| eprintln!("rumor-bench: stage {name} failed: {e}"));
        }
        stages.push(Stage {
            name,
            file,
            seconds: t.elapsed().as_secs_f64(),
            ok,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let shift_rows: Vec<shift::ShiftRow> = ["shift-sim.json", "shift-real.json"]
        .iter()
        .filter_map(|f| shift::read(&dir.join(f)).ok())
        .flatten()
        .collect();
    draw_charts(&dir, &shift_rows);
    let results = json!({
        "machine": machine(),
        "stages": stages.iter().map(|s| json!({
            "stage": s.name, "file": s.file, "seconds": s.seconds, "ok": s.ok.is_ok(),
        })).collect::<Vec<_>>(),
        "protection": protection::rows(&dir),
        "shift": shift_rows,
    });
    util::write_json(&dir.join("results.json"), &results)?;
    let md = render(&dir, &stages);
    std::fs::write(dir.join("REPORT.md"), md)
        .with_context(|| format!("writing {}", dir.join("REPORT.md").display()))?;
    eprintln!("rumor-bench: done, {}", dir.join("REPORT.md").display());
    Ok(dir)
}

/// The report's charts; a chart whose data is missing is skipped with a message.
fn draw_charts(dir: &Path, shift_rows: &[shift::ShiftRow]) {
    let mut drawn: Vec<anyhow::Result<()>> = Vec::new();
    if let Some(c) = read(&dir.join("crypto.json")) {
        drawn.push(charts::cost_per_suite(&dir.join("cost-per-suite.svg"), &c));
    }
    if !shift_rows.is_empty() {
        drawn.push(shift::draw(dir, shift_rows));
    }
    for e in drawn.into_iter().filter_map(Result::err) {
        eprintln!("rumor-bench: chart skipped: {e:#}");
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // Not available_parallelism: it honours this thread's affinity, which a stage may have pinned.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |s| {
        s.lines().filter(|l| l.starts_with("processor")).count()
    });
    format!("{cores} cores, {cpu}, Linux {kernel}")
}

fn render(dir: &Path, stages: &[Stage]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# rumor benchmark report\n\nMachine: {}. Release build. Every figure below comes from the JSON file named with its table, in this folder.\n", machine());
    let _ = writeln!(
        md,
        "## Stages\n\n| stage | file | seconds | result |\n|---|---|---:|---|"
    );
    for s in stages {
        let r = match &s.ok {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let _ = writeln!(
            md,
            "| {} | `{}` | {:.1} | {} |",
            s.name, s.file, s.seconds, r
        );
    }
    if let Some(c) = read(&dir.join("crypto.json")) {
        crypto_section(&mut md, &c);
    }
    if let Some(p) = read(&dir.join("pool.json")) {
        pool_section(&mut md, &p);
    }
    let clusters: Vec<(String, Value)> = CLUSTERS
        .iter()
        .filter_map(|(_, f, s, t)| {
            let name = match t {
                Some(f) => format!("{s} + authority (f = {f})"),
                None => s.to_string(),
            };
            read(&dir.join(f)).map(|v| (name, v))
        })
        .collect();
    if !clusters.is_empty() {
        cluster_section(&mut md, &clusters);
    }
    if let Ok(rows) = sim::read_rows(&dir.join("sim-validation.json")) {
        validation_section(&mut md, &rows);
    }
    let sim_rows = shift::read(&dir.join("shift-sim.json")).unwrap_or_default();
    let real_rows = shift::read(&dir.join("shift-real.json")).unwrap_or_default();
    let calibration = shift::read_calibration(&dir.join("shift-real.json"));
    if !sim_rows.is_empty() || !real_rows.is_empty() {
        shift_section(&mut md, &sim_rows, &real_rows, calibration.as_ref());
    }
    let svgs: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            let mut v: Vec<String> = d
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| f.ends_with(".svg"))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if !svgs.is_empty() {
        let _ = writeln!(md, "\n## Charts\n");
        for f in svgs {
            let _ = writeln!(md, "![{f}]({f})\n");
        }
    }
    protection::section(&mut md, &protection::rows(dir));
    md
}

fn validation_section(md: &mut String, rows: &[sim::Row]) {
    let _ = writeln!(
        md,
        "\n## Simulator validation (`sim-validation.json`)\n\nThe protocol core on virtual time in the synchronous mode \
         (aligned rounds, no piggybacking, rumors pushed every round): rounds until every member has one rumor, against \
         log_(k+1) n + ln n / k, which drops an O(1) term; and SWIM's first detection of a crash, in probe periods, \
         against e/(e−1) = {:.2}.\n\n| n | fanout | seeds | rounds | formula | ratio | first detection (periods) | delivered |\n|---:|---:|---:|---:|---:|---:|---:|---:|",
        sim::SWIM_DETECTION_PERIODS
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {} | {:.4} |",
            r.nodes,
            r.fanout,
            r.seeds,
            r.mean_rounds,
            r.formula_rounds,
            r.rounds_over_formula,
            r.first_detection_periods
                .map_or("-".into(), |v| format!("{v:.2}")),
            r.delivered_fraction
        );
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.0}"))
}

fn shift_section(
    md: &mut String,
    sim_rows: &[shift::ShiftRow],
    real_rows: &[shift::ShiftRow],
    calibration: Option<&shift::RealCalibration>,
) {
    let budget = sim_rows.first().map_or(f64::NAN, |r| r.cpu_budget);
    let _ = writeln!(
        md,
        "\n## The shift (`shift-sim.json`, `shift-real.json`)\n\nFor each suite, the simulator sweeps fanout and gossip \
         interval under a steady load ({} rumors/s cluster-wide) with every member limited to {:.3} % of a core: the \
         budget at which Ed25519 at fanout 3 every 200 ms uses {:.0} % of it. The best setting is the one with the lowest \
         p99 time to full dissemination among those that delivered every rumor to every member with no member \
         shedding, without the members falling more than {} s behind on average, and without one in {} of them falsely \
         suspected (one seed per setting: a setting that lost one (member, rumor) pair \
         to the retransmit limit's designed miss rate is out). CPU is the mean \
         member's use of its budget at that setting.\n\n| suite | source | n | best fanout | interval ms | p50 ms | p99 ms | CPU at best | CPU at fanout 3 / 200 ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|",
        sim_rows.first().map_or(f64::NAN, |r| r.load_rumors_per_s),
        budget * 100.0,
        shift::TARGET_UTILISATION * 100.0,
        shift::OVERLOAD_LAG.as_secs_f64(),
        shift::STORM_ONE_IN
    );
    let pct = |v: Option<f64>| v.map_or("-".into(), |u| format!("{:.0} %", u * 100.0));
    for r in sim_rows.iter().chain(real_rows) {
        let (fanout, interval) = r.best_cells();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {fanout} | {interval} | {} | {} | {} | {} |",
            r.suite,
            r.source,
            r.nodes,
            opt_ms(r.p50_ms),
            opt_ms(r.p99_ms),
            pct(r.utilisation),
            pct(r.utilisation_at_reference),
        );
    }
    let mut sizes: Vec<u32> = sim_rows.iter().map(|r| r.nodes).collect();
    sizes.dedup();
    for n in sizes {
        let moves: Vec<String> = sim_rows
            .iter()
            .filter(|r| r.nodes == n)
            .map(|r| match (r.optimal_fanout, r.optimal_gossip_interval_ms) {
                (Some(k), Some(g)) => format!(
                    "{} fanout {k} every {g} ms (p99 {} ms)",
                    r.suite,
                    opt_ms(r.p99_ms)
                ),
                _ => format!(
                    "{} no setting of the grid without loss or overload",
                    r.suite
                ),
            })
            .collect();
        let _ = writeln!(
            md,
            "\nFinding at n = {n}, suites in order of growing cost under the same budget: {}.",
            moves.join("; ")
        );
    }
    real_section(md, real_rows, calibration);
}

/// The real n = 32 clusters point by point beside the simulator, and how their budget was set.
fn real_section(
    md: &mut String,
    rows: &[shift::ShiftRow],
    calibration: Option<&shift::RealCalibration>,
) {
    let row =
        |suite: &str, source: &str| rows.iter().find(|r| r.suite == suite && r.source == source);
    let real: Vec<&shift::ShiftRow> = rows.iter().filter(|r| r.source == "real").collect();
    if real.is_empty() {
        return;
    }
    let budget = match calibration {
        Some(c) if c.enforced => format!(
            "all 32 share a cgroup CPU quota of {:.3} cores ({:.2} % of a core per member): a calibration cluster of \
             Ed25519 at fanout 3 every 200 ms used {:.3} cores with every core, the first quota tried was that over \
             {:.0} %, and each try that put Ed25519's reference point outside {:.0}–{:.0} % of its quota was scaled by \
             the miss (tries, as quota → utilisation: {})",
            c.budget_cores,
            c.budget_cores / f64::from(shift::REAL_NODES) * 100.0,
            c.sizing_cores,
            shift::REAL_TARGET_UTILISATION * 100.0,
            shift::BUDGET_BAND.0 * 100.0,
            shift::BUDGET_BAND.1 * 100.0,
            c.budget_tries
                .iter()
                .map(|(q, u)| format!("{q:.3} → {:.0} %", u * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(c) => format!(
            "**no CPU budget was enforced** ({}), so the 32 share this machine's {:.0} cores and CPU is not what the \
             settings compete for",
            c.not_enforced_because.as_deref().unwrap_or("no reason given"),
            c.budget_cores
        ),
        None => "the run kept no calibration record".into(),
    };
    let model = calibration.map_or(String::new(), |c| {
        let path = |k: &shift::Calibrated| {
            format!(
                "{:.2} % of a core per member and {:.0} µs per datagram",
                k.background_cores_per_node * 100.0,
                k.overhead_us
            )
        };
        let (under, fitted) = if c.enforced {
            (
                "the real Ed25519 and none clusters at fanout 3 (rows below) measured under the quota",
                " (at fanout 3 their CPU is fitted; the latency is still predicted)",
            )
        } else {
            ("two calibration clusters at fanout 3 measured", "")
        };
        format!(
            " The simulator gives its members the same budget as one shared pool, and adds what {under} beyond its \
             crypto and socket model: a background with no rumors (timers, probes) and a cost per datagram (thread \
             wake-ups and hand-offs, which dominate at these low rates), fitted so that the simulator there uses the \
             CPU the cluster used. Ed25519, whose signatures go through the \
             verification pool: {}; none, the path of the MAC and AEAD suites (checked on the io thread): {}. Every \
             point below is a prediction from those{fitted}: the simulated run with the median p99 of {} seeds, \
             with the seeds' fastest and slowest p99 in brackets.",
            path(&c.signed),
            path(&c.plain),
            shift::PREDICTION_SEEDS
        )
    });
    let _ = writeln!(
        md,
        "\nReal n = 32 loopback clusters (one process per member, {} rumors at one per 100 ms): {budget}.{model} \
         Targets: simulated p50 within 30 % of the real one, p99 within 50 %; CPU is the mean member's use of its \
         budget over the rumor phase. Suspicions are those the members raised over it: nobody fails, so each is a \
         probe the budget delayed past its timeout.\n\n| suite | fanout | real p50 / p99 ms | simulated p50 / p99 ms | \
         p50 sim/real | p99 sim/real | real CPU | simulated CPU | suspicions real / sim |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|",
        shift::REAL_RUMORS
    );
    let ratio = |real: Option<f64>, sim: Option<f64>| match (real, sim) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "-".into(),
    };
    let pct = |v: Option<f64>| v.map_or("-".into(), |u| format!("{:.0} %", u * 100.0));
    let count = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
    // Points where the real cluster raised suspicions, with the simulator's count beside.
    let mut suspected = Vec::new();
    // Real p99s inside the simulated seeds' range, of the points that have both.
    let (mut inside, mut compared) = (0, 0);
    for r in &real {
        let Some(sim) = row(&r.suite, "sim") else {
            continue;
        };
        for p in &r.grid {
            let q = sim.grid.iter().find(|q| q.fanout == p.fanout);
            let range = q.and_then(|q| q.p99_range_ms);
            let spread = range.map_or(String::new(), |(lo, hi)| format!(" ({lo:.0}–{hi:.0})"));
            if let (Some(v), Some((lo, hi))) = (p.p99_ms, range) {
                compared += 1;
                inside += usize::from((lo..=hi).contains(&v));
            }
            let best = if r.optimal_fanout == Some(p.fanout) {
                " (best)"
            } else {
                ""
            };
            let sim_suspicions = q.and_then(|q| q.suspicions);
            if p.suspicions.is_some_and(|n| n > 0) {
                suspected.push(format!(
                    "{} fanout {}: {} real, {} simulated",
                    r.suite,
                    p.fanout,
                    count(p.suspicions),
                    count(sim_suspicions)
                ));
            }
            let _ = writeln!(
                md,
                "| {} | {}{best} | {} / {} | {} / {}{spread} | {} | {} | {} | {} | {} / {} |",
                r.suite,
                p.fanout,
                opt_ms(p.p50_ms),
                opt_ms(p.p99_ms),
                opt_ms(q.and_then(|q| q.p50_ms)),
                opt_ms(q.and_then(|q| q.p99_ms)),
                ratio(p.p50_ms, q.and_then(|q| q.p50_ms)),
                ratio(p.p99_ms, q.and_then(|q| q.p99_ms)),
                pct(p.utilisation),
                pct(q.and_then(|q| q.utilisation)),
                count(p.suspicions),
                count(sim_suspicions),
            );
        }
    }
    let moves: Vec<String> = real
        .iter()
        .map(|r| {
            let sim = row(&r.suite, "sim").and_then(|s| s.optimal_fanout);
            format!(
                "{} fanout {} (simulated: {})",
                r.suite,
                r.optimal_fanout.map_or("-".into(), |k| k.to_string()),
                sim.map_or("-".into(), |k| k.to_string())
            )
        })
        .collect();
    let suspected = if suspected.is_empty() {
        "No real cluster raised a suspicion during its rumor phase.".to_string()
    } else {
        format!(
            "Real clusters raised suspicions during the rumor phase ({}): each is broadcast and refuted, \
             and competes with the rumors for the gossip and the budget. With nobody failing, a suspicion \
             means a node stalled past its probe timeout: before transparent huge pages were turned off \
             (`rumor run --huge-pages`), whole-cluster stalls of page zeroing did this.",
            suspected.join("; ")
        )
    };
    let _ = writeln!(
        md,
        "\nFinding on the real clusters, best fanout at 200 ms: {}. The real p99 lies inside the simulated seeds' \
         range at {inside} of {compared} points. {suspected}",
        moves.join("; ")
    );
}

fn crypto_section(md: &mut String, c: &Value) {
    let _ = writeln!(
        md,
        "\n## Cost per suite (`crypto.json`)\n\nWhole datagrams through the codec (one rumor of the payload size) beside the bare \
         primitives on the same bytes; medians of alternating samples. `open/raw` is the framing overhead as a ratio.\n\n\
         | suite | payload B | datagram B | seal/s | open/s | raw open/s | open/raw |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let rows = c
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in &rows {
        let ratio = num(r, "open_ratio");
        let ratio = if ratio.is_nan() {
            "-".into()
        } else {
            format!("{ratio:.2}")
        };
        let raw = num(r, "raw_open_per_s");
        let raw = if raw.is_nan() {
            "-".into()
        } else {
            format!("{raw:.0}")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} |",
            r.get("suite").and_then(Value::as_str).unwrap_or("?"),
            num(r, "size"),
            num(r, "datagram_bytes"),
            num(r, "seal_per_s"),
            num(r, "open_per_s"),
            raw,
            ratio
        );
    }
    let rate = |suite: &str, size: f64| {
        rows.iter()
            .find(|r| {
                r.get("suite").and_then(Value::as_str) == Some(suite) && num(r, "size") == size
            })
            .map(|r| num(r, "open_per_s"))
    };
    if let (Some(none), Some(aead), Some(ed)) = (
        rate("none", 1200.0),
        rate("aes-256-gcm", 1200.0),
        rate("ed25519", 1200.0),
    ) {
        let _ = writeln!(
            md,
            "\nFinding: at 1200 bytes one core opens {:.1} M datagrams/s with no protection, {:.1} M/s with AES-256-GCM and {:.0} k/s \
             with Ed25519 ({}× fewer than AES-GCM): with signatures the CPU, not the socket, bounds ingest, so batching and dedup decide throughput.",
            none / 1e6,
            aead / 1e6,
            ed / 1e3,
            (aead / ed).round()
        );
    }
}

fn pool_section(md: &mut String, p: &Value) {
    let _ = writeln!(
        md,
        "\n## Verification pool (`pool.json`)\n\n| workers | batch | raw verify/s (1 thread) | pool verified/s | ratio to raw per worker | queue wait p50 / p99 µs | shed | peak RSS MiB |\n|---:|---|---:|---:|---:|---|---:|---:|\n| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} | {} | {:.0} |",
        num(p, "workers"),
        p.get("batch").and_then(Value::as_bool).unwrap_or(false),
        num(p, "raw_verify_per_s"),
        num(p, "pool_verified_per_s"),
        num(p, "ratio_to_raw"),
        num(p, "queue_wait_p50_us"),
        num(p, "queue_wait_p99_us"),
        num(p, "shed"),
        num(p, "peak_rss_bytes") / f64::from(1 << 20),
    );
}

fn cluster_section(md: &mut String, rows: &[(String, Value)]) {
    let _ = writeln!(
        md,
        "\n## Real loopback cluster (`cluster-<suite>.json`)\n\n32 `rumor` processes on 127.0.0.1, one io and one verify thread each, unpinned, fanout 3, \
         gossip 200 ms, probe 1 s; rumor latency is publish to the last member's delivery; detection is SIGKILL to every live member \
         marking the victim dead, against the bound computed from the configuration.\n\n\
         | suite | converge s | rumor p50 / p99 ms | delivered | msgs / rumor / node | bytes / rumor / node | origin verifs / rumor / node | CPU ms / rumor | detect s (bound) | rejoin s |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---|---:|"
    );
    for (suite, c) in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.0} / {:.0} | {:.4} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} ({:.1}) | {:.2} |",
            suite,
            num(c, "converge_s"),
            num(c, "rumor_latency_p50_ms"),
            num(c, "rumor_latency_p99_ms"),
            num(c, "delivered_fraction"),
            num(c, "msgs_per_rumor_per_node"),
            num(c, "bytes_per_rumor_per_node"),
            num(c, "verifications_per_unique_rumor"),
            num(c, "cpu_s_per_rumor") * 1e3,
            num(c, "detect_s"),
            num(c, "detect_bound_s"),
            num(c, "rejoin_s"),
        );
    }
}

//! End to end: `rumor-bench --quick` writes a complete report folder (REPORT.md with its timing
//! table, results.json with the protection levels, SVG charts) from real runs of every kind of
//! stage, in a scratch directory.
//!
//! Needs the `rumor` binary next to `rumor-bench` (`cargo build -p rumor`, same profile) and
//! skips, saying so, when it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Small clusters and simulations in a debug build on 2 shared cores.
const RUN_MAX: Duration = Duration::from_secs(300);

#[test]
fn quick_report_is_complete() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_rumor-bench"));
    if !bench.with_file_name("rumor").is_file() {
        eprintln!("skipped: the rumor binary is missing (cargo build -p rumor builds it)");
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let cwd = scratch.path();
    let started = Instant::now();
    let out = Command::new(&bench)
        .arg("--quick")
        .current_dir(cwd)
        .output()
        .expect("running rumor-bench --quick");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let reports: Vec<PathBuf> = std::fs::read_dir(cwd.join("reports"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let dir = reports.first().cloned();
    let read = |f: &str| {
        dir.as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(f)).ok())
    };
    let (md, results) = (read("REPORT.md"), read("results.json"));
    let svgs = dir.as_ref().map_or(0, |d| {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
                    .count()
            })
            .unwrap_or(0)
    });
    assert!(
        out.status.success(),
        "rumor-bench --quick failed:\n{stderr}"
    );
    assert!(took < RUN_MAX, "took {took:?}");
    assert_eq!(reports.len(), 1, "one report folder");
    let md = md.expect("REPORT.md");
    assert!(md.contains("## Stages"), "{md}");
    assert!(!md.contains("failed:"), "a stage failed:\n{md}");
    assert!(md.contains("## Choosing a protection level"), "{md}");
    let results: serde_json::Value =
        serde_json::from_str(&results.expect("results.json")).expect("valid JSON");
    let levels: Vec<&str> = results["protection"]
        .as_array()
        .expect("protection rows")
        .iter()
        .filter_map(|r| r["level"].as_str())
        .collect();
    assert_eq!(levels, ["trusted", "semi-trusted", "byzantine"]);
    assert!(
        results["protection"][0]["p99_ms"].as_f64().is_some(),
        "the trusted level's cluster ran: {results}"
    );
    assert!(svgs >= 2, "{svgs} charts");
}

//! End to end: `rumor-bench attacks` on a reduced matrix (three suites, four adversaries) with
//! real `rumor` processes, asserting what each suite promises to stop and what it cannot.
//!
//! As in `cluster_small.rs`, the test needs the `rumor` binary next to `rumor-bench` (run
//! `cargo build -p rumor` first, same profile) and skips, saying so, when it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Twelve cells of a few seconds each, debug builds on 2 shared cores.
const RUN_MAX: Duration = Duration::from_secs(240);

#[test]
fn reduced_matrix_matches_what_each_suite_promises() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_rumor-bench"));
    let rumor = bench.with_file_name("rumor");
    if !rumor.is_file() {
        eprintln!(
            "skipped: {} is missing (cargo build -p rumor builds it)",
            rumor.display()
        );
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let json = scratch.path().join("attacks.json");
    let started = Instant::now();
    let out = Command::new(&bench)
        .args(["attacks", "--suites", "none,hmac-sha256,ed25519"])
        .args(["--adversaries", "spoofer,tamperer,forger,equivocator"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running rumor-bench");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "rumor-bench attacks failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < RUN_MAX, "the run took {took:?}");
    let text = std::fs::read_to_string(&json).expect("reading the JSON matrix");
    let m: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let cells = m["cells"].as_array().expect("a cells array");
    assert_eq!(cells.len(), 12, "{text}");
    let outcome = |suite: &str, adv: &str| -> (String, u64) {
        let c = cells
            .iter()
            .find(|c| c["suite"] == suite && c["adversary"] == adv)
            .unwrap_or_else(|| panic!("no cell {suite} / {adv} in {text}"));
        let sent = c["evidence"]["msgs_sent"].as_u64().unwrap_or(0);
        (c["outcome"].as_str().unwrap_or("").to_string(), sent)
    };
    let expect = [
        ("none", "spoofer", "succeeded"),
        ("none", "tamperer", "succeeded"),
        ("none", "forger", "succeeded"),
        ("none", "equivocator", "succeeded"),
        ("hmac-sha256", "spoofer", "stopped"),
        ("hmac-sha256", "tamperer", "stopped"),
        ("hmac-sha256", "forger", "succeeded"),
        ("hmac-sha256", "equivocator", "succeeded"),
        ("ed25519", "spoofer", "stopped"),
        ("ed25519", "tamperer", "stopped"),
        ("ed25519", "forger", "stopped"),
        ("ed25519", "equivocator", "succeeded"),
    ];
    for (suite, adv, want) in expect {
        let (got, sent) = outcome(suite, adv);
        assert_eq!(got, want, "{suite} / {adv}: {text}");
        assert!(sent > 0, "{suite} / {adv} sent nothing");
        // The same volume in every suite: what differs is only what the honest nodes did.
        assert_eq!(sent, outcome("none", adv).1, "{suite} / {adv} volume");
    }
}

/// The authority layer against the insiders a signature cannot stop: on `ed25519` the liar and
/// the equivocator succeed; with `--tolerate 1` both are stopped, and the liar cell also checks
/// liveness (a crashed member is committed dead within the bound while the liar stays silent).
#[test]
fn the_authority_layer_stops_what_signatures_cannot() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_rumor-bench"));
    let rumor = bench.with_file_name("rumor");
    if !rumor.is_file() {
        eprintln!(
            "skipped: {} is missing (cargo build -p rumor builds it)",
            rumor.display()
        );
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let json = scratch.path().join("attacks.json");
    let out = Command::new(&bench)
        .args(["attacks", "--suites", "ed25519,ed25519+authority"])
        .args(["--adversaries", "liar,equivocator"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running rumor-bench");
    assert!(
        out.status.success(),
        "rumor-bench attacks failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("reading the JSON matrix");
    let m: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let cells = m["cells"].as_array().expect("a cells array");
    let cell = |suite: &str, adv: &str| {
        cells
            .iter()
            .find(|c| c["suite"] == suite && c["adversary"] == adv)
            .unwrap_or_else(|| panic!("no cell {suite} / {adv} in {text}"))
            .clone()
    };
    for (suite, adv, want) in [
        ("ed25519", "liar", "succeeded"),
        ("ed25519", "equivocator", "succeeded"),
        ("ed25519+authority", "liar", "stopped"),
        ("ed25519+authority", "equivocator", "stopped"),
    ] {
        assert_eq!(cell(suite, adv)["outcome"], want, "{suite} / {adv}: {text}");
    }
    let liar = cell("ed25519+authority", "liar");
    let live = &liar["evidence"]["liveness"];
    assert!(
        live["committed_dead_after_ms"].as_f64() <= live["bound_ms"].as_f64(),
        "crash not committed within the bound: {live}"
    );
    let excluded_by = cell("ed25519+authority", "equivocator")["evidence"]["excluded_by"].clone();
    assert_eq!(
        excluded_by.as_array().map(Vec::len),
        Some(4),
        "{excluded_by}"
    );
}

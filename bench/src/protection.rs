//! The report's decision table (DESIGN.md, "Protection levels"): for each level of
//! `rumor run --protection`, the suite and authority setting it picks, what it stops (from the
//! attack matrix, when the report ran it) and what it cost in this run: ingest per core of node
//! CPU, p99 time to full dissemination on the 32-member cluster, and bytes per rumor.
//! Every figure is read back from a JSON file of the same report folder, named in the table.
//! Concurrency: plain functions, run after the stages.

use std::fmt::Write as _;
use std::path::Path;

use codec::Suite;
use rumor::config::Protection;
use serde_json::{json, Value};

/// One protection level and the report files that price it.
pub struct Level {
    pub protection: Protection,
    pub name: &'static str,
    /// The attack matrix's name for this configuration.
    pub cell: &'static str,
    pub ingest_file: &'static str,
    pub cluster_file: &'static str,
}

pub const LEVELS: [Level; 3] = [
    Level {
        protection: Protection::Trusted,
        name: "trusted",
        cell: "aes-256-gcm",
        ingest_file: "ingest-trusted.json",
        cluster_file: "cluster-aes-256-gcm.json",
    },
    Level {
        protection: Protection::SemiTrusted,
        name: "semi-trusted",
        cell: "ed25519",
        ingest_file: "ingest-semi-trusted.json",
        cluster_file: "cluster-ed25519.json",
    },
    Level {
        protection: Protection::Byzantine,
        name: "byzantine",
        cell: "ed25519+authority",
        ingest_file: "ingest-byzantine.json",
        cluster_file: "cluster-ed25519-authority.json",
    },
];

impl Level {
    pub fn suite(&self) -> Suite {
        self.protection.suite()
    }

    pub fn tolerate(&self) -> Option<u32> {
        self.protection.default_tolerate()
    }
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

/// Datagrams accepted per second of the node's own CPU (all its threads): what one core buys.
fn ingest_per_core(live: &Value) -> Option<f64> {
    let accepted = num(live, "accepted")?;
    let cpu: f64 = live
        .get("threads")?
        .as_object()?
        .values()
        .filter_map(|t| num(t, "cpu_s"))
        .sum();
    (cpu > 0.0).then(|| accepted / cpu)
}

/// The adversaries the matrix shows `cell` stopping and letting through.
fn outcomes(attacks: Option<&Value>, cell: &str) -> Option<(Vec<String>, Vec<String>)> {
    let cells = attacks?.get("cells")?.as_array()?;
    let (mut stopped, mut succeeded) = (Vec::new(), Vec::new());
    for c in cells
        .iter()
        .filter(|c| c.get("suite").and_then(Value::as_str) == Some(cell))
    {
        let adversary = c.get("adversary").and_then(Value::as_str).unwrap_or("?");
        match c.get("outcome").and_then(Value::as_str) {
            Some("stopped") => stopped.push(adversary.to_string()),
            Some("succeeded") => succeeded.push(adversary.to_string()),
            _ => {}
        }
    }
    (!stopped.is_empty() || !succeeded.is_empty()).then_some((stopped, succeeded))
}

/// The `protection` rows of results.json, from the files in `dir`.
pub fn rows(dir: &Path) -> Vec<Value> {
    let attacks = read(&dir.join("attacks.json"));
    LEVELS
        .iter()
        .map(|l| {
            let ingest = read(&dir.join(l.ingest_file));
            let cluster = read(&dir.join(l.cluster_file));
            let stops = outcomes(attacks.as_ref(), l.cell);
            json!({
                "level": l.name,
                "suite": l.suite().name(),
                "authority": l.tolerate().is_some(),
                "tolerate": l.tolerate(),
                "ingest_per_core": ingest.as_ref().and_then(ingest_per_core),
                "ingest_accepted_per_s": ingest.as_ref().and_then(|v| num(v, "accepted_per_s")),
                "p99_ms": cluster.as_ref().and_then(|v| num(v, "rumor_latency_p99_ms")),
                "p50_ms": cluster.as_ref().and_then(|v| num(v, "rumor_latency_p50_ms")),
                "bytes_per_rumor": cluster.as_ref().and_then(|v| num(v, "bytes_per_rumor_per_node")),
                "stops": stops.as_ref().map(|s| &s.0),
                "does_not_stop": stops.as_ref().map(|s| &s.1),
                "files": [l.ingest_file, l.cluster_file],
            })
        })
        .collect()
}

/// The decision table, in REPORT.md.
pub fn section(md: &mut String, rows: &[Value]) {
    let _ = writeln!(
        md,
        "\n## Choosing a protection level (`--protection`)\n\nWhat each level of `rumor run --protection` turns on, what it stops (from the attack \
         matrix, `rumor-bench --attacks`), and what it cost in this run: ingest is datagrams accepted per second of the node's own CPU \
         (all its threads; live load, `ingest-<level>.json`, the byzantine run with the per-origin rumor cap lifted so it measures \
         capacity); latency and bytes are the 32-member loopback cluster's (`cluster-<suite>.json`).\n\n\
         | level | suite | authority | ingest / core-s | rumor p50 / p99 ms | bytes / rumor / node | stops | does not stop |\n\
         |---|---|---|---:|---|---:|---|---|"
    );
    let f = |v: &Value, k: &str, scale: f64, digits: usize| {
        v.get(k)
            .and_then(Value::as_f64)
            .map_or("-".to_string(), |x| format!("{:.*}", digits, x * scale))
    };
    let list = |v: &Value, k: &str| {
        v.get(k).and_then(Value::as_array).map_or(
            "not measured (run `rumor-bench --attacks`)".to_string(),
            |a| {
                let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                if names.is_empty() {
                    "nothing".into()
                } else {
                    names.join(", ")
                }
            },
        )
    };
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            r.get("level").and_then(Value::as_str).unwrap_or("?"),
            r.get("suite").and_then(Value::as_str).unwrap_or("?"),
            match r.get("tolerate").and_then(Value::as_u64) {
                Some(f) => format!("f = {f}"),
                None => "off".into(),
            },
            f(r, "ingest_per_core", 1.0, 0),
            f(r, "p50_ms", 1.0, 0),
            f(r, "p99_ms", 1.0, 0),
            f(r, "bytes_per_rumor", 1.0, 0),
            list(r, "stops"),
            list(r, "does_not_stop"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_the_stage_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, v: Value| std::fs::write(dir.path().join(f), v.to_string()).unwrap();
        write(
            "ingest-trusted.json",
            json!({"accepted": 1000.0, "accepted_per_s": 500.0,
                   "threads": {"io": {"cpu_s": 1.5}, "verify": {"cpu_s": 0.5}}}),
        );
        write(
            "cluster-aes-256-gcm.json",
            json!({"rumor_latency_p99_ms": 300.0, "rumor_latency_p50_ms": 100.0,
                   "bytes_per_rumor_per_node": 1200.0}),
        );
        write(
            "attacks.json",
            json!({"cells": [
                {"suite": "aes-256-gcm", "adversary": "spoofer", "outcome": "stopped"},
                {"suite": "aes-256-gcm", "adversary": "liar", "outcome": "succeeded"},
                {"suite": "ed25519", "adversary": "liar", "outcome": "succeeded"}]}),
        );
        let r = rows(dir.path());
        assert_eq!(r.len(), 3);
        assert_eq!(r[0]["ingest_per_core"], json!(500.0));
        assert_eq!(r[0]["p99_ms"], json!(300.0));
        assert_eq!(r[0]["stops"], json!(["spoofer"]));
        assert_eq!(r[0]["does_not_stop"], json!(["liar"]));
        assert_eq!(r[2]["authority"], json!(true));
        assert_eq!(r[2]["p99_ms"], Value::Null, "no cluster file, no figure");
        let mut md = String::new();
        section(&mut md, &r);
        assert!(
            md.contains(
                "| trusted | aes-256-gcm | off | 500 | 100 / 300 | 1200 | spoofer | liar |"
            ),
            "{md}"
        );
        assert!(md.contains("not measured"));
    }
}

//! `rumor-bench attacks` (issue 6, items 5 and 6): every adversary against every suite cell, on a
//! fresh loopback cluster of real `rumor` processes per cell, judged only from what the honest
//! nodes did (their control sockets: deliveries with payload digests, member views, counters).
//!
//! Cells: the six suites' authority-off cells that the matrix names (`none`, the three shared-key
//! suites, `ed25519`) and two authority cells (`ed25519+authority`, `aead+ed25519+authority`:
//! the suite plus `--tolerate 1`). Each cell runs 4 honest nodes (n ≥ 3f + 1 for f = 1) and one
//! roster member played by the harness (the insider, see `speaker.rs`); outsiders hold no roster
//! key. A cell whose nodes refuse to start is reported as `error` with the nodes' reason, never
//! as stopped.
//!
//! Concurrency: single-threaded harness; the insider's responder, the relay and the flooder run
//! on their own threads for the length of one cell, all joined before the next cell starts.

mod adversary;
mod relay;
mod speaker;

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use codec::{MemberId, RosterMember, SecretKey, Suite};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumor::control::{payload_digest, Delivery, MemberView};
use rumor::core::{Config, Tolerance};
use rumor::runtime::unix_ms;
use serde::Serialize;

use crate::cluster::{self, Cluster, NodeFlags, Published, WorkDir};
use crate::util::pick;
use speaker::Insider;

/// Honest nodes per cell: the smallest n with n ≥ 3f + 1 honest members for f = 1.
const HONEST: usize = 4;
/// The f of the authority cells.
const TOLERATE: u32 = 1;
/// Where the insider and the outsiders live: their own loopback hosts, so that per-address rate
/// limits see them as the distinct hosts they would be on a network.
const INSIDER_IP: [u8; 4] = [127, 0, 0, 2];
const OUTSIDER_IP: [u8; 4] = [127, 0, 0, 3];
/// Rumor payload bytes, as the cluster benchmark's.
const PAYLOAD_LEN: usize = 32;
/// Protocol timing of every cell: short, so that a cell takes seconds (memberlist's ratios:
/// probe timeout half the probe interval, gossip several times per probe).
const GOSSIP_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_INTERVAL: Duration = Duration::from_millis(300);
const START_TIMEOUT: Duration = Duration::from_secs(20);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the matrix as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only these cells' suites (comma separated, as the JSON names them).
    #[arg(long, value_delimiter = ',')]
    suites: Option<Vec<String>>,
    /// Only these adversaries (comma separated).
    #[arg(long, value_delimiter = ',')]
    adversaries: Option<Vec<String>>,
    /// The `rumor` binary (default: next to this executable).
    #[arg(long)]
    rumor_bin: Option<PathBuf>,
}

/// One column of the matrix: a suite, with or without the authority layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SuiteCell {
    pub(crate) suite: Suite,
    pub(crate) authority: bool,
}

impl SuiteCell {
    pub(crate) const ALL: [SuiteCell; 7] = [
        SuiteCell::plain(Suite::None),
        SuiteCell::plain(Suite::HmacSha256),
        SuiteCell::plain(Suite::Aes256Gcm),
        SuiteCell::plain(Suite::ChaCha20Poly1305),
        SuiteCell::plain(Suite::Ed25519),
        SuiteCell {
            suite: Suite::Ed25519,
            authority: true,
        },
        SuiteCell {
            suite: Suite::AeadEd25519,
            authority: true,
        },
    ];

    const fn plain(suite: Suite) -> SuiteCell {
        SuiteCell {
            suite,
            authority: false,
        }
    }

    pub(crate) fn name(self) -> String {
        match self.authority {
            true => format!("{}+authority", self.suite.name()),
            false => self.suite.name().to_string(),
        }
    }
}

/// The adversaries, in matrix order. `Flooder` is the summary of its two variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adversary {
    Spoofer,
    Tamperer,
    Replayer,
    Forger,
    Liar,
    Equivocator,
    FlooderAdmitted,
    FlooderOutsider,
    Sybil,
}

impl Adversary {
    pub(crate) const ALL: [Adversary; 9] = [
        Adversary::Spoofer,
        Adversary::Tamperer,
        Adversary::Replayer,
        Adversary::Forger,
        Adversary::Liar,
        Adversary::Equivocator,
        Adversary::FlooderAdmitted,
        Adversary::FlooderOutsider,
        Adversary::Sybil,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Adversary::Spoofer => "spoofer",
            Adversary::Tamperer => "tamperer",
            Adversary::Replayer => "replayer",
            Adversary::Forger => "forger",
            Adversary::Liar => "liar",
            Adversary::Equivocator => "equivocator",
            Adversary::FlooderAdmitted => "flooder-admitted",
            Adversary::FlooderOutsider => "flooder-outsider",
            Adversary::Sybil => "sybil",
        }
    }
}

/// The summary row of both flooder variants: what the matrix calls `flooder`.
const FLOODER: &str = "flooder";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Stopped,
    Succeeded,
    /// The cell could not run (its nodes refused to start, or the harness failed): no verdict.
    Error,
}

impl Outcome {
    fn of(succeeded: bool) -> Outcome {
        match succeeded {
            true => Outcome::Succeeded,
            false => Outcome::Stopped,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cell {
    pub(crate) suite: String,
    pub(crate) adversary: String,
    pub(crate) outcome: Outcome,
    pub(crate) evidence: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Matrix {
    cells: Vec<Cell>,
}

/// What a cell's adversary did and what the honest nodes showed.
pub(crate) struct Verdict {
    pub(crate) succeeded: bool,
    pub(crate) evidence: serde_json::Map<String, serde_json::Value>,
}

/// Measured once per run, shared by every flooder cell so that each offers the same volume.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunFacts {
    /// Single-core Ed25519 verifications per second of this machine, this run.
    pub(crate) verify_rate: f64,
}

impl Args {
    /// The default report's `--attacks` stage: the whole matrix.
    pub fn for_report(json: PathBuf) -> Args {
        Args {
            json: Some(json),
            suites: None,
            adversaries: None,
            rumor_bin: None,
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let bin = cluster::rumor_binary(a.rumor_bin.as_deref())?;
    let cells = select(&a)?;
    let facts = RunFacts {
        verify_rate: adversary::ed25519_verify_rate(),
    };
    say(format_args!(
        "raw Ed25519 verification: {:.0}/s on one core; flooders offer 2x that",
        facts.verify_rate
    ));
    let t0 = Instant::now();
    let results = run_matrix(&bin, &cells, facts);
    say(format_args!(
        "matrix done in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    print_matrix(&results);
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&Matrix {
            cells: results.clone(),
        })? + "\n";
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    let errors: Vec<&Cell> = results
        .iter()
        .filter(|c| c.outcome == Outcome::Error)
        .collect();
    if let Some(first) = errors.first() {
        anyhow::bail!(
            "{} cells could not run; first: {} / {}: {}",
            errors.len(),
            first.suite,
            first.adversary,
            first.evidence["error"]
        );
    }
    Ok(())
}

fn select(a: &Args) -> anyhow::Result<Vec<(SuiteCell, Vec<Adversary>)>> {
    let suites = pick(&SuiteCell::ALL, a.suites.as_deref(), "suite cell", |s| {
        s.name()
    })?;
    let advs = pick(
        &Adversary::ALL,
        a.adversaries.as_deref(),
        "adversary",
        |x| x.name().to_string(),
    )?;
    Ok(suites.into_iter().map(|s| (s, advs.clone())).collect())
}

/// Runs the cells; a suite whose nodes refuse to start reports every remaining cell as an error
/// with that reason instead of trying again.
pub(crate) fn run_matrix(
    bin: &Path,
    cells: &[(SuiteCell, Vec<Adversary>)],
    facts: RunFacts,
) -> Vec<Cell> {
    let mut out = Vec::new();
    for (sc, advs) in cells {
        let mut refused: Option<String> = None;
        let mut flooders = Vec::new();
        for &adv in advs {
            let t = Instant::now();
            let result = match &refused {
                Some(why) => Err(anyhow::anyhow!("{why}")),
                None => run_cell(bin, *sc, adv, facts).map_err(|e| {
                    if e.downcast_ref::<StartRefused>().is_some() {
                        refused = Some(format!("{e:#}"));
                    }
                    e
                }),
            };
            let cell = match result {
                Ok(v) => Cell {
                    suite: sc.name(),
                    adversary: adv.name().into(),
                    outcome: Outcome::of(v.succeeded),
                    evidence: serde_json::Value::Object(v.evidence),
                },
                Err(e) => Cell {
                    suite: sc.name(),
                    adversary: adv.name().into(),
                    outcome: Outcome::Error,
                    evidence: serde_json::json!({ "msgs_sent": 0, "error": format!("{e:#}") }),
                },
            };
            say(format_args!(
                "{} / {}: {:?} ({:.1} s)",
                cell.suite,
                cell.adversary,
                cell.outcome,
                t.elapsed().as_secs_f64()
            ));
            if matches!(adv, Adversary::FlooderAdmitted | Adversary::FlooderOutsider) {
                flooders.push(cell.clone());
            }
            out.push(cell);
        }
        if flooders.len() == 2 {
            out.push(flooder_summary(sc, &flooders));
        }
    }
    out
}

/// `flooder`: succeeded if either variant did; an error if either could not run.
fn flooder_summary(sc: &SuiteCell, variants: &[Cell]) -> Cell {
    let outcome = if variants.iter().any(|c| c.outcome == Outcome::Error) {
        Outcome::Error
    } else {
        Outcome::of(variants.iter().any(|c| c.outcome == Outcome::Succeeded))
    };
    let sent: u64 = variants
        .iter()
        .map(|c| c.evidence["msgs_sent"].as_u64().unwrap_or(0))
        .sum();
    let by: BTreeMap<&str, Outcome> = variants
        .iter()
        .map(|c| (c.adversary.as_str(), c.outcome))
        .collect();
    let mut evidence = serde_json::json!({ "msgs_sent": sent, "variants": by });
    if outcome == Outcome::Error {
        evidence["error"] = "a flooder variant could not run (see its cell)".into();
    }
    Cell {
        suite: sc.name(),
        adversary: FLOODER.into(),
        outcome,
        evidence,
    }
}

fn run_cell(bin: &Path, sc: SuiteCell, adv: Adversary, facts: RunFacts) -> anyhow::Result<Verdict> {
    let mut env = Env::start(bin, sc)?;
    let mut v = adversary::run(adv, &mut env, facts)?;
    v.evidence
        .insert("honest_nodes".into(), serde_json::json!(HONEST));
    Ok(v)
}

/// The nodes of a cell refused to start (for example, a flag this build does not have).
#[derive(Debug)]
pub(crate) struct StartRefused(String);

impl std::fmt::Display for StartRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the nodes refused to start: {}", self.0)
    }
}

impl std::error::Error for StartRefused {}

/// The protocol configuration of every cell's nodes (the authority layer's bounds included).
pub(crate) fn cell_config(sc: SuiteCell) -> anyhow::Result<Config> {
    let cfg = Config {
        suite: sc.suite,
        authority: sc.authority.then_some(Tolerance {
            f: TOLERATE,
            ..Tolerance::default()
        }),
        fanout: 3,
        gossip_interval: GOSSIP_INTERVAL,
        probe_interval: PROBE_INTERVAL,
        probe_timeout: PROBE_INTERVAL / 2,
        ..Config::default()
    };
    cfg.validate().context("cell configuration")?;
    Ok(cfg)
}

/// A running cell: honest nodes `0..HONEST` (member id = node index) and the insider.
pub(crate) struct Env {
    pub(crate) cluster: Cluster,
    pub(crate) insider: Arc<Insider>,
    pub(crate) cfg: Config,
    pub(crate) sc: SuiteCell,
    pub(crate) addrs: Vec<SocketAddr>,
    /// Every (origin, seq, digest) an honest node published in this cell.
    pub(crate) published: HashSet<(MemberId, u64, rumor::control::PayloadDigest)>,
    pub(crate) rng: StdRng,
    responder: Option<JoinHandle<()>>,
    // Dropped last: the nodes' files outlive the processes.
    _work: WorkDir,
}

impl Env {
    fn start(bin: &Path, sc: SuiteCell) -> anyhow::Result<Env> {
        let cfg = cell_config(sc)?;
        let work = WorkDir::new(None)?;
        let ports = cluster::free_ports(HONEST)?;
        let sock = UdpSocket::bind(SocketAddr::from((INSIDER_IP, 0)))
            .context("binding the insider on 127.0.0.2 (loopback must route 127/8)")?;
        let insider_addr = sock.local_addr()?;
        let secret = SecretKey::generate(&mut rand::rngs::OsRng);
        let member = RosterMember {
            id: insider_id(),
            key: secret.public(),
            addr: Some(insider_addr),
        };
        let ids = cluster::write_identities_with(work.path(), sc.suite, &ports, vec![member])?;
        let addrs = ports
            .iter()
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let flags = NodeFlags::new(&cfg);
        let mut cluster = Cluster::new(bin.to_path_buf(), ids.files, ports, flags);
        // Nodes that do not come up say why in their log; the error quotes it.
        cluster
            .start_all()
            .map_err(|e| StartRefused(format!("{e:#}")))?;
        let epoch = unix_ms() / 1000;
        let insider = Arc::new(Insider::new(
            insider_id(),
            sc.suite,
            secret,
            ids.cluster_key,
            ids.roster,
            sock,
            epoch,
        )?);
        let responder = insider.spawn_responder()?;
        let mut env = Env {
            cluster,
            insider,
            cfg,
            sc,
            addrs,
            published: HashSet::new(),
            rng: StdRng::from_entropy(),
            responder: Some(responder),
            _work: work,
        };
        env.insider.join(env.addrs[0])?;
        env.converge()?;
        // Every honest node publishes once: the insider hears their sequence numbers, as any
        // member does.
        for i in 0..HONEST {
            env.publish(i)?;
        }
        std::thread::sleep(env.drain());
        Ok(env)
    }

    /// Members the cell counts: the honest nodes and the insider.
    fn n(&self) -> usize {
        HONEST + 1
    }

    /// Time for a broadcast to use up its retransmissions.
    pub(crate) fn drain(&self) -> Duration {
        self.cfg.gossip_interval * self.cfg.rumor_retransmit_limit(self.n())
    }

    /// Lifeguard's shortest suspicion of this cell: the least time a false suspicion must
    /// last to count against an honest member.
    pub(crate) fn suspicion_timeout(&self) -> Duration {
        self.cfg.suspicion_min(self.n())
    }

    pub(crate) fn detect_bound(&self) -> Duration {
        self.cfg.detect_bound(self.n())
    }

    /// Until every honest node sees every honest member and the insider alive.
    fn converge(&mut self) -> anyhow::Result<()> {
        let about: Vec<usize> = (0..=HONEST).collect();
        let mut lagging = Vec::new();
        let done = cluster::wait_views(
            &mut self.cluster,
            &about,
            cluster::is_alive,
            Instant::now(),
            CONVERGE_TIMEOUT,
            &mut lagging,
        )?;
        done.map(|_| ()).with_context(|| {
            format!("no convergence within {CONVERGE_TIMEOUT:?}: nodes {lagging:?} lag")
        })
    }

    /// Publishes a random rumor at honest node `i` and remembers its digest.
    pub(crate) fn publish(&mut self, i: usize) -> anyhow::Result<Published> {
        let mut payload = [0u8; PAYLOAD_LEN];
        self.rng.fill(&mut payload[..]);
        let p = self.cluster.publish(i, &payload)?;
        self.published
            .insert((p.origin, p.seq, payload_digest(&payload)));
        Ok(p)
    }

    /// Each honest node's deliveries since `since_ms`.
    pub(crate) fn deliveries(&self, since_ms: u64) -> anyhow::Result<Vec<(usize, Vec<Delivery>)>> {
        self.cluster
            .live()
            .into_iter()
            .map(|i| Ok((i, self.cluster.stats(i, since_ms)?.deliveries)))
            .collect()
    }

    /// Deliveries at honest nodes of statements an honest origin never made: an (origin, seq,
    /// digest) whose origin is honest and which no honest publish produced.
    pub(crate) fn forged_deliveries(&self, since_ms: u64) -> anyhow::Result<Vec<ForgedDelivery>> {
        let mut out = Vec::new();
        for (node, ds) in self.deliveries(since_ms)? {
            for d in ds {
                let honest_origin = (d.origin as usize) < HONEST;
                if honest_origin && !self.published.contains(&(d.origin, d.seq, d.digest)) {
                    out.push(ForgedDelivery {
                        at_node: node,
                        origin: d.origin,
                        seq: d.seq,
                        digest: d.digest,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Each live honest node's member view.
    pub(crate) fn views(&self) -> anyhow::Result<Vec<(usize, Vec<MemberView>)>> {
        self.cluster
            .live()
            .into_iter()
            .map(|i| Ok((i, self.cluster.members(i)?)))
            .collect()
    }

    /// Node `i`'s counters now.
    pub(crate) fn counters(&self, i: usize) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self.cluster.stats(i, unix_ms())?.counters)
    }

    /// The sum of counter `name` over the live honest nodes.
    pub(crate) fn counter_sum(&self, name: &str) -> anyhow::Result<u64> {
        let mut t = 0;
        for i in self.cluster.live() {
            t += self.counters(i)?.get(name).copied().unwrap_or(0);
        }
        Ok(t)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.insider.stop();
        if let Some(t) = self.responder.take() {
            let _ = t.join();
        }
    }
}

/// A delivery of a statement its honest origin never made.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ForgedDelivery {
    pub(crate) at_node: usize,
    pub(crate) origin: MemberId,
    pub(crate) seq: u64,
    pub(crate) digest: rumor::control::PayloadDigest,
}

/// The insider's roster id: the one after the honest nodes'.
pub(crate) fn insider_id() -> MemberId {
    HONEST as MemberId
}

pub(crate) fn outsider_socket() -> anyhow::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::from((OUTSIDER_IP, 0))).context("binding an outsider on 127.0.0.3")
}

pub(crate) fn honest_ids() -> std::ops::Range<usize> {
    0..HONEST
}

pub(crate) fn payload_len() -> usize {
    PAYLOAD_LEN
}

fn print_matrix(cells: &[Cell]) {
    let mut suites: Vec<&str> = Vec::new();
    let mut advs: Vec<&str> = Vec::new();
    for c in cells {
        if !suites.contains(&c.suite.as_str()) {
            suites.push(&c.suite);
        }
        if !advs.contains(&c.adversary.as_str()) {
            advs.push(&c.adversary);
        }
    }
    let w = advs.iter().map(|a| a.len()).max().unwrap_or(8).max(9);
    print!("{:<w$}", "adversary");
    for s in &suites {
        print!(" {:>22}", s);
    }
    println!();
    for a in &advs {
        print!("{a:<w$}");
        for s in &suites {
            let o = cells
                .iter()
                .find(|c| c.suite == *s && c.adversary == *a)
                .map_or("-", |c| match c.outcome {
                    Outcome::Stopped => "stopped",
                    Outcome::Succeeded => "SUCCEEDED",
                    Outcome::Error => "error",
                });
            print!(" {o:>22}");
        }
        println!();
    }
    println!("(SUCCEEDED: the attack worked against the honest nodes; stopped: they resisted it; error: the cell could not run)");
}

pub(crate) fn say(msg: impl std::fmt::Display) {
    eprintln!("rumor-bench attacks: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_the_named_cells_and_name_the_known_ones_on_a_typo() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = pick(&Adversary::ALL, None, "adversary", |x| x.name().into()).expect("all");
        assert_eq!(all.len(), Adversary::ALL.len());
        let two = names(&["sybil", "spoofer"]);
        let got = pick(&Adversary::ALL, Some(&two), "adversary", |x| {
            x.name().into()
        })
        .expect("known names");
        assert_eq!(
            got.iter().map(|x| x.name()).collect::<Vec<_>>(),
            ["sybil", "spoofer"]
        );
        let typo = names(&["flooder"]);
        let e = pick(&Adversary::ALL, Some(&typo), "adversary", |x| {
            x.name().into()
        })
        .expect_err("no adversary is called flooder");
        let msg = format!("{e:#}");
        assert!(msg.contains("unknown adversary \"flooder\""), "{msg}");
        assert!(msg.contains("flooder-admitted, flooder-outsider"), "{msg}");
    }
}

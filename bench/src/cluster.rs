//! `rumor-bench cluster` (issue 5): starts N real `rumor` processes on 127.0.0.1 and measures
//! convergence, rumor dissemination, crash detection and rejoin, through each node's control
//! socket and /proc.
//!
//! Phases: start (seeds one by one, then the rest at once) → converge (every view has all N alive)
//! → settle (join broadcasts drain) → idle window (background traffic and CPU) → rumors (R
//! publishes from random members, until every live node delivered them all) → SIGKILL one
//! non-seed member → detect (every live view has it dead or left) → restart it → rejoin (every
//! view has it alive again) → leave.
//!
//! Concurrency: single-threaded. The harness talks to one node at a time over its control
//! socket; every wait has a deadline. Children are killed by [`Cluster`]'s `Drop` on error paths
//! and, since release builds abort on panic (no unwinding, no `Drop`), also by the kernel:
//! each child asks for SIGKILL when the harness dies (`PR_SET_PDEATHSIG`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumor::config::parse_duration;
use rumor::runtime::unix_ms;

use anyhow::{bail, Context};
use codec::keyfile::{ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{ClusterKey, Roster, RosterMember, SecretKey, Suite};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumor::control::{self, Delivery, MemberView, Request, Response};
use rumor::core::{Config, Tolerance};
use serde::Serialize;

use crate::cpu_budget::CpuBudget;
use crate::util::percentile;

/// Members the others join through; never chosen as the crash victim, so a restarted member
/// always finds a live seed.
const SEEDS: usize = 3;
/// Key id of the shared cluster key (datagram headers carry it).
pub(crate) const CLUSTER_KEY_ID: u32 = 1;
const CLUSTER_NAME: &str = "rumor-bench-cluster";
/// A rumor's payload: small, so the figures are dominated by the protocol, not the payload.
const PAYLOAD_LEN: usize = 32;
/// One control request; a node that cannot answer within this is reported, not waited for.
/// Generous: under a tight CPU budget a stalled cluster held replies for seconds (2 s was seen
/// to expire), and a slow reply is a measurement, not a failure.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often views and deliveries are polled. Poll results are not timestamps of delivery (those
/// come from the nodes), only of convergence, detection and rejoin, which this bounds the error of.
const POLL: Duration = Duration::from_millis(100);
/// Until every control socket answers; 32 processes on 2 cores start in well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for convergence and for rejoin (the acceptance bound for both is 10 s).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the last publish, how long undelivered rumors are waited for. Their retransmissions
/// are spent within a drain time (1.6 s at 32 nodes by default); a rumor still missing after
/// this is reported missing.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// The detection wait is this multiple of the configured bound: long enough to measure by how
/// much a slow detection misses the bound, short enough to end the run.
const DETECT_WAIT_FACTOR: f64 = 1.5;
/// Idle window for the background rate, in probe periods (whole SWIM cycles).
const IDLE_PROBE_PERIODS: u32 = 2;
/// Graceful leave, then SIGKILL.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// `sockaddr_un.sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Base ports are drawn from here. It overlaps the Linux ephemeral range (32768–60999), so each
/// candidate is probed before use.
const PORT_RANGE: std::ops::Range<u16> = 20000..60000;
const PORT_ATTEMPTS: usize = 50;
/// Undelivered (node, rumor) pairs named in the report; the fraction counts them all.
const UNDELIVERED_LISTED: usize = 20;
/// Log lines quoted in an error about a node.
const LOG_TAIL_LINES: usize = 5;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Nodes to start.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=1000))]
    nodes: u32,
    /// Crypto suite of the cluster.
    #[arg(long, default_value = "ed25519")]
    suite: Suite,
    /// Members each gossip round pushes to.
    #[arg(long, default_value_t = 3)]
    fanout: usize,
    /// Rumors to publish.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rumors: u32,
    /// Time between two publishes.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    publish_interval: Duration,
    /// Gossip interval of every node.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    gossip_interval: Duration,
    /// Probe interval of every node.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    probe_interval: Duration,
    /// Each update is sent this × ceil(log10(n + 1)) times (default: the node's).
    #[arg(long)]
    retransmit_mult: Option<u32>,
    /// Lifeguard suspicion multiplier of every node (default: the node's).
    #[arg(long)]
    suspicion_mult: Option<u32>,
    /// Probe timeout of every node (default: half the probe interval).
    #[arg(long, value_parser = parse_duration)]
    probe_timeout: Option<Duration>,
    /// Run the nodes with the quorum authority layer, tolerating f Byzantine members
    /// (`rumor run --tolerate`; needs ed25519 or aead+ed25519).
    #[arg(long)]
    tolerate: Option<u32>,
    /// Seed of the choices (publishers, payloads, crash victim).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Work in this directory (created, must be empty) and keep it: keys, roster, node logs, and
    /// `deliveries.json` (each rumor's publish and every delivery of it, unix ms). Without it a
    /// temporary directory is used and removed at the end.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// The `rumor` binary (default: next to this executable).
    #[arg(long)]
    rumor_bin: Option<PathBuf>,
    /// Skip the crash, detection and rejoin phases (the shift's real runs measure rumors only).
    #[arg(long)]
    no_crash: bool,
    /// Hold all nodes together to this many cores during the idle and rumor phases: a cgroup
    /// CPU quota (needs a writable cgroup cpu controller, usually root). CPU is then read from
    /// the cgroup, to the nanosecond.
    #[arg(long, requires = "no_crash", value_parser = parse_cores)]
    cpu_budget: Option<f64>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    /// The default report's run: a 32-member loopback cluster of `suite`, 30 rumors, with the
    /// authority layer when `tolerate` is given; `quick`: 6 members, 10 rumors.
    pub fn for_report(suite: Suite, tolerate: Option<u32>, quick: bool, json: PathBuf) -> Args {
        Args {
            nodes: if quick { 6 } else { 32 },
            suite,
            fanout: 3,
            rumors: if quick { 10 } else { 30 },
            publish_interval: Duration::from_millis(100),
            gossip_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            retransmit_mult: None,
            suspicion_mult: None,
            probe_timeout: None,
            tolerate,
            seed: 1,
            keep_dir: None,
            rumor_bin: None,
            no_crash: false,
            cpu_budget: None,
            json: Some(json),
        }
    }

    /// A shift point: a 32-member cluster of `suite` at one setting and load, rumors only.
    pub fn for_shift(
        suite: Suite,
        fanout: usize,
        gossip_interval: Duration,
        rumors: u32,
        publish_interval: Duration,
        cpu_budget: Option<f64>,
        json: PathBuf,
    ) -> Args {
        Args {
            fanout,
            gossip_interval,
            rumors,
            publish_interval,
            no_crash: true,
            cpu_budget,
            ..Args::for_report(suite, None, false, json)
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = core_config(&a)?;
    let bin = rumor_binary(a.rumor_bin.as_deref())?;
    let mut work = WorkDir::new(a.keep_dir.clone())?;
    let n = a.nodes as usize;
    let ports = free_ports(n)?;
    let files = write_identities(work.path(), a.suite, &ports)?;
    let mut cluster = Cluster::new(bin, files, ports, NodeFlags::new(&cfg));
    let measured = measure(&a, &cfg, &mut cluster);
    drop(cluster);
    let report = match measured {
        Ok(r) => r,
        Err(e) => {
            // The error names node logs: they must outlive the run.
            work.keep();
            say(format_args!("node logs kept in {}", work.path().display()));
            return Err(e);
        }
    };
    // The messages about misses name node logs: keep them.
    let crash_missed = report
        .crash
        .as_ref()
        .is_some_and(|c| !c.detected || !c.rejoined);
    if !report.undelivered.is_empty() || crash_missed {
        work.keep();
    }
    print_table(&report);
    if let Some(p) = &a.json {
        // Serialised from the struct, not a `Value`, so the fields keep the report's order.
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    if work.is_kept() {
        say(format_args!(
            "files and node logs kept in {}",
            work.path().display()
        ));
    }
    Ok(())
}

/// The protocol configuration every node runs with, so that bounds derived from it (the
/// detection bound) are the nodes' own.
fn core_config(a: &Args) -> anyhow::Result<Config> {
    let base = Config::default();
    let cfg = Config {
        suite: a.suite,
        fanout: a.fanout,
        gossip_interval: a.gossip_interval,
        probe_interval: a.probe_interval,
        // memberlist's ratio, as `rumor run` defaults to; passed to the nodes explicitly.
        probe_timeout: a.probe_timeout.unwrap_or(a.probe_interval / 2),
        retransmit_mult: a.retransmit_mult.unwrap_or(base.retransmit_mult),
        suspicion_mult: a.suspicion_mult.unwrap_or(base.suspicion_mult),
        authority: a.tolerate.map(|f| Tolerance {
            f,
            ..Tolerance::default()
        }),
        ..base
    };
    cfg.validate().context("node configuration")?;
    Ok(cfg)
}

pub(crate) fn rumor_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating rumor-bench")?
            .with_file_name("rumor"),
    };
    if !bin.is_file() {
        bail!(
            "the rumor binary {} is missing: build it (cargo build --release -p rumor) or pass --rumor-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// The run's directory (keys, roster, node state): the user's `--keep-dir`, which must be new or
/// empty and is kept, or else a private temporary directory (mode 0700, unpredictable name)
/// removed on drop.
pub(crate) enum WorkDir {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl WorkDir {
    pub(crate) fn new(keep_dir: Option<PathBuf>) -> anyhow::Result<WorkDir> {
        let Some(path) = keep_dir else {
            return Ok(WorkDir::Temporary(private_temp_dir("rumor-cluster-")?));
        };
        let occupied = std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_some());
        if occupied {
            bail!("{} is not empty; give a new directory", path.display());
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir::Kept(path))
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            WorkDir::Kept(p) => p,
            WorkDir::Temporary(d) => d.path(),
        }
    }

    /// Keeps a temporary directory past the run: its node logs explain what went wrong.
    pub(crate) fn keep(&mut self) {
        *self = match std::mem::replace(self, WorkDir::Kept(PathBuf::new())) {
            WorkDir::Temporary(d) => WorkDir::Kept(d.keep()),
            kept => kept,
        };
    }

    pub(crate) fn is_kept(&self) -> bool {
        matches!(self, WorkDir::Kept(_))
    }
}

/// A temporary directory for key files: an unpredictable name, and mode 0700 (tempfile's default
/// follows the umask, usually 0755).
pub(crate) fn private_temp_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating a temporary directory")
}

/// `n` consecutive UDP ports on 127.0.0.1 that were free a moment ago. Consecutive so that the
/// logs read naturally; probed because a busy port would fail a node's start late and obscurely.
pub(crate) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let span = u16::try_from(n).context("too many nodes for the port range")?;
    let mut rng = rand::thread_rng();
    for _ in 0..PORT_ATTEMPTS {
        let base = rng.gen_range(PORT_RANGE.start..PORT_RANGE.end - span);
        let ports: Vec<u16> = (base..base + span).collect();
        if ports.iter().all(|&p| port_is_free(p)) {
            return Ok(ports);
        }
    }
    bail!("found no {n} consecutive free UDP ports in {PORT_RANGE:?} after {PORT_ATTEMPTS} tries")
}

fn port_is_free(port: u16) -> bool {
    UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
}

/// What one node is started from.
#[derive(Debug, Clone)]
struct NodeFiles {
    dir: PathBuf,
    key: PathBuf,
    control: PathBuf,
    log: PathBuf,
}

/// Keys, roster and per-node directories of a run.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    suite: Suite,
    roster: PathBuf,
    authority_hex: String,
    cluster_key: Option<PathBuf>,
    nodes: Vec<NodeFiles>,
}

/// Generates member keys, the authority key and (for shared-key suites) the cluster key in
/// process, and writes a signed roster with every member's address.
fn write_identities(dir: &Path, suite: Suite, ports: &[u16]) -> anyhow::Result<Files> {
    write_identities_with(dir, suite, ports, Vec::new()).map(|w| w.files)
}

/// What [`write_identities_with`] wrote, with what a harness-side member needs to speak for
/// itself: the roster as signed and the shared cluster key.
pub(crate) struct Identities {
    pub(crate) files: Files,
    pub(crate) roster: Roster,
    pub(crate) cluster_key: Option<ClusterKey>,
}

/// As [`write_identities`], for nodes `0..ports.len()` plus `extra` members that no `rumor`
/// process runs (a harness plays them; their secret keys stay with the caller).
pub(crate) fn write_identities_with(
    dir: &Path,
    suite: Suite,
    ports: &[u16],
    extra: Vec<RosterMember>,
) -> anyhow::Result<Identities> {
    let mut rng = rand::rngs::OsRng;
    let authority = SecretKey::generate(&mut rng);
    let mut members = Vec::with_capacity(ports.len());
    let mut nodes = Vec::with_capacity(ports.len());
    for (i, &port) in ports.iter().enumerate() {
        let node_dir = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("creating {}", node_dir.display()))?;
        let key = node_dir.join("member.key");
        let secret = SecretKey::generate(&mut rng);
        SigningKeyFile::write(&key, SigningRole::Member, &secret)?;
        members.push(RosterMember {
            id: u32::try_from(i)?,
            key: secret.public(),
            addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        });
        let control = node_dir.join("control.sock");
        check_socket_path(&control)?;
        nodes.push(NodeFiles {
            log: node_dir.join("node.log"),
            key,
            control,
            dir: node_dir,
        });
    }
    members.extend(extra);
    let roster_path = dir.join("roster.toml");
    let roster = Roster::new(CLUSTER_NAME, 1, authority.public(), members)?;
    roster.write(&roster_path, &authority)?;
    let (key_path, key) = if suite.uses_cluster_key() {
        let p = dir.join("cluster.key");
        let key = ClusterKey::generate(&mut rng);
        ClusterKeyFile::write(&p, CLUSTER_KEY_ID, &key)?;
        (Some(p), Some(key))
    } else {
        (None, None)
    };
    let files = Files {
        suite,
        roster: roster_path,
        authority_hex: hex::encode(authority.public().to_bytes()),
        cluster_key: key_path,
        nodes,
    };
    Ok(Identities {
        files,
        roster,
        cluster_key: key,
    })
}

fn check_socket_path(p: &Path) -> anyhow::Result<()> {
    let len = p.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        bail!(
            "control socket path {} is {len} bytes, longer than a unix socket allows ({MAX_SOCKET_PATH}); use a shorter --keep-dir",
            p.display()
        );
    }
    Ok(())
}

/// Protocol flags passed to every node, taken from the one [`Config`] the bounds come from.
#[derive(Debug, Clone)]
pub(crate) struct NodeFlags {
    fanout: usize,
    gossip_interval: Duration,
    probe_interval: Duration,
    probe_timeout: Duration,
    retransmit_mult: u32,
    suspicion_mult: u32,
    /// `--tolerate f`: the quorum authority layer, off when `None`.
    pub(crate) tolerate: Option<u32>,
}

impl NodeFlags {
    pub(crate) fn new(c: &Config) -> NodeFlags {
        NodeFlags {
            fanout: c.fanout,
            gossip_interval: c.gossip_interval,
            probe_interval: c.probe_interval,
            probe_timeout: c.probe_timeout,
            retransmit_mult: c.retransmit_mult,
            suspicion_mult: c.suspicion_mult,
            tolerate: c.authority.map(|t| t.f),
        }
    }
}

/// Exact (to the nanosecond) and in the form the node's flag parser reads.
fn duration_flag(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The seeds of node `i`: the seed members started before it.
fn seeds_of(i: usize, ports: &[u16]) -> Vec<u16> {
    ports[..i.min(SEEDS)].to_vec()
}

/// `rumor run` arguments of node `i`: one io and one verify thread, as the issue prescribes for
/// this harness (32 processes share 2 cores).
fn node_args(files: &Files, flags: &NodeFlags, ports: &[u16], i: usize) -> Vec<OsString> {
    let f = &files.nodes[i];
    let mut v: Vec<OsString> = vec!["run".into()];
    let mut push = |k: &str, val: OsString| {
        v.push(k.into());
        v.push(val);
    };
    push("--bind", format!("127.0.0.1:{}", ports[i]).into());
    push("--suite", files.suite.name().into());
    push("--key", f.key.clone().into());
    push("--roster", files.roster.clone().into());
    push("--authority", files.authority_hex.clone().into());
    push("--state-dir", f.dir.clone().into());
    push("--control", f.control.clone().into());
    if let Some(k) = &files.cluster_key {
        push("--cluster-key", k.clone().into());
    }
    let seeds = seeds_of(i, ports);
    if !seeds.is_empty() {
        let list: Vec<String> = seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        push("--seeds", list.join(",").into());
    }
    push("--fanout", flags.fanout.to_string().into());
    push(
        "--gossip-interval",
        duration_flag(flags.gossip_interval).into(),
    );
    push(
        "--probe-interval",
        duration_flag(flags.probe_interval).into(),
    );
    push("--probe-timeout", duration_flag(flags.probe_timeout).into());
    push(
        "--retransmit-mult",
        flags.retransmit_mult.to_string().into(),
    );
    push("--suspicion-mult", flags.suspicion_mult.to_string().into());
    if let Some(f) = flags.tolerate {
        push("--tolerate", f.to_string().into());
    }
    push("--io-threads", "1".into());
    push("--verify-threads", "1".into());
    // Dozens of nodes share the cores: pinning would stack them on the same ones.
    push("--pin", "false".into());
    v
}

/// The running processes. Dropping it SIGKILLs every child still running.
pub(crate) struct Cluster {
    bin: PathBuf,
    files: Files,
    ports: Vec<u16>,
    flags: NodeFlags,
    children: Vec<Option<Child>>,
    /// The cgroup holding the nodes to a CPU budget, once set.
    budget: Option<CpuBudget>,
}

impl Cluster {
    pub(crate) fn new(bin: PathBuf, files: Files, ports: Vec<u16>, flags: NodeFlags) -> Cluster {
        let children = (0..ports.len()).map(|_| None).collect();
        Cluster {
            bin,
            files,
            ports,
            flags,
            children,
            budget: None,
        }
    }

    /// Holds the live nodes together to `cores` cores from now on; their CPU time is then read
    /// from the budget's cgroup.
    fn limit_cpu(&mut self, cores: f64) -> anyhow::Result<()> {
        let pids: Vec<u32> = self
            .live()
            .into_iter()
            .filter_map(|i| self.pid(i))
            .collect();
        self.budget = Some(CpuBudget::limit(&pids, cores)?);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    pub(crate) fn live(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.children[i].is_some())
            .collect()
    }

    fn log(&self, i: usize) -> &Path {
        &self.files.nodes[i].log
    }

    fn control(&self, i: usize) -> &Path {
        &self.files.nodes[i].control
    }

    pub(crate) fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log_path = self.log(i).to_path_buf();
        // Appending keeps the first life's log when a node is restarted.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("node {i}: opening its log {}", log_path.display()))?;
        let control = self.control(i);
        // A stale socket file from the previous life would answer "connection refused" and look
        // like a node that is up but broken.
        if control.exists() {
            std::fs::remove_file(control)
                .with_context(|| format!("node {i}: removing {}", control.display()))?;
        }
        let mut cmd = Command::new(&self.bin);
        cmd.args(node_args(&self.files, &self.flags, &self.ports, i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Plain log files (tracing-subscriber honours NO_COLOR).
            .env("NO_COLOR", "1");
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("node {i}: starting {}", self.bin.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILL and reap node `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// Fails, naming the node and quoting its log, if a node that should run has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            let Some(c) = self.children[i].as_mut() else {
                continue;
            };
            if let Some(status) = c.try_wait().context("waiting for a node")? {
                self.children[i] = None;
                return Err(node_error(self, i, format_args!("exited ({status})")));
            }
        }
        Ok(())
    }

    fn request(&self, i: usize, req: &Request) -> anyhow::Result<Response> {
        let resp = control::request(self.control(i), req, CONTROL_TIMEOUT)
            .with_context(|| format!("node {i} (log {})", self.log(i).display()))?;
        if let Response::Error { message } = resp {
            bail!("node {i} refused {req:?}: {message}");
        }
        Ok(resp)
    }

    pub(crate) fn members(&self, i: usize) -> anyhow::Result<Vec<MemberView>> {
        match self.request(i, &Request::Members)? {
            Response::Members { members, .. } => Ok(members),
            other => bail!("node {i}: expected a member list, got {other:?}"),
        }
    }

    pub(crate) fn stats(&self, i: usize, since_ms: u64) -> anyhow::Result<NodeStats> {
        match self.request(i, &Request::Stats { since_ms })? {
            Response::Stats {
                counters,
                deliveries,
            } => Ok(NodeStats {
                counters,
                deliveries,
            }),
            other => bail!("node {i}: expected stats, got {other:?}"),
        }
    }

    pub(crate) fn publish(&self, i: usize, payload: &[u8]) -> anyhow::Result<Published> {
        let req = Request::Publish {
            payload_hex: hex::encode(payload),
        };
        match self.request(i, &req)? {
            Response::Published { origin, seq, at_ms } => Ok(Published { origin, seq, at_ms }),
            other => bail!("node {i}: expected a publish receipt, got {other:?}"),
        }
    }

    /// Waits until node `i`'s control socket answers (its runtime is up).
    pub(crate) fn wait_ready(&mut self, nodes: &[usize], timeout: Duration) -> anyhow::Result<()> {
        let mut pending: Vec<usize> = nodes.to_vec();
        let done = poll_until(timeout, || {
            self.check_running()?;
            pending.retain(|&i| self.members(i).is_err());
            Ok(pending.is_empty().then_some(()))
        })?;
        if done.is_none() {
            let i = pending[0];
            let why = format_args!(
                "did not answer on {} within {timeout:?} ({} nodes pending)",
                self.control(i).display(),
                pending.len()
            );
            return Err(node_error(self, i, why));
        }
        Ok(())
    }

    /// Seeds one by one (each later seed joins through the earlier), then everyone else at once.
    /// Returns when the last process was started.
    pub(crate) fn start_all(&mut self) -> anyhow::Result<Instant> {
        let seeds = SEEDS.min(self.len());
        for i in 0..seeds {
            self.spawn(i)?;
            self.wait_ready(&[i], START_TIMEOUT)?;
        }
        for i in seeds..self.len() {
            self.spawn(i)?;
        }
        let last_start = Instant::now();
        let rest: Vec<usize> = (seeds..self.len()).collect();
        self.wait_ready(&rest, START_TIMEOUT)?;
        Ok(last_start)
    }

    /// Asks every live node to leave, waits for the processes to exit, then SIGKILLs stragglers.
    /// Returns (nodes that exited by themselves, nodes killed).
    fn leave_all(&mut self) -> (usize, usize) {
        for i in self.live() {
            // A node that cannot be asked is killed below like any straggler.
            let _ = self.request(i, &Request::Leave);
        }
        let deadline = Instant::now() + LEAVE_TIMEOUT;
        let mut clean = 0;
        while Instant::now() < deadline && !self.live().is_empty() {
            for i in self.live() {
                let exited = self.children[i]
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
                if exited {
                    self.children[i] = None;
                    clean += 1;
                }
            }
            std::thread::sleep(POLL / 4);
        }
        let stragglers = self.live();
        for &i in &stragglers {
            eprintln!(
                "rumor-bench cluster: node {i} did not exit within {LEAVE_TIMEOUT:?} of leaving; killed (log {})",
                self.log(i).display()
            );
            self.kill(i);
        }
        (clean, stragglers.len())
    }
}

/// Makes the child receive SIGKILL when the harness dies, however it dies: release builds abort
/// on panic, skipping `Drop`, and `timeout` or a user may kill the harness.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}

/// An error about node `i` in one line (its last log line included); the log's tail goes to
/// stderr first, so the line a caller sees last is the reason.
pub(crate) fn node_error(c: &Cluster, i: usize, what: std::fmt::Arguments) -> anyhow::Error {
    let log = c.log(i);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
        say(format_args!("node {i} log: {l}"));
    }
    let last = lines.last().map_or("(log empty)", |l| l.trim());
    anyhow::anyhow!("node {i} {what}: {last} (log {})", log.display())
}

/// Calls `check` every [`POLL`] until it yields a value or `timeout` passes (then `None`).
pub(crate) fn poll_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

pub(crate) struct NodeStats {
    pub(crate) counters: BTreeMap<String, u64>,
    pub(crate) deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) origin: u32,
    pub(crate) seq: u64,
    pub(crate) at_ms: u64,
}

/// Whether `view` (node `me`'s) has every member of `ids` other than `me` in a state
/// satisfying `ok`. A member missing from the view counts as state "absent".
pub(crate) fn view_has(
    view: &[MemberView],
    me: usize,
    ids: &[usize],
    ok: impl Fn(&str) -> bool,
) -> bool {
    let states: HashMap<u32, &str> = view.iter().map(|m| (m.id, m.state.as_str())).collect();
    ids.iter()
        .filter(|&&id| id != me)
        .all(|&id| ok(states.get(&(id as u32)).copied().unwrap_or("absent")))
}

pub(crate) fn is_alive(s: &str) -> bool {
    s == "alive"
}

fn is_gone(s: &str) -> bool {
    matches!(s, "dead" | "left" | "absent")
}

/// Polls until every live node's view satisfies `ok` for every member of `about`; returns the
/// time from `since` at which they all had, or `None` after `timeout`. The nodes still failing
/// are left in `lagging` for the error message.
///
/// Only lagging nodes are asked again (answering costs the nodes CPU on shared cores); the time
/// is confirmed by one full round, and if a view regressed meanwhile the wait goes on.
pub(crate) fn wait_views(
    c: &mut Cluster,
    about: &[usize],
    ok: impl Fn(&str) -> bool,
    since: Instant,
    timeout: Duration,
    lagging: &mut Vec<usize>,
) -> anyhow::Result<Option<Duration>> {
    *lagging = c.live();
    poll_until(timeout, || {
        c.check_running()?;
        // A node too busy to answer has not shown the state yet.
        let shows = |c: &Cluster, i: usize| c.members(i).is_ok_and(|v| view_has(&v, i, about, &ok));
        lagging.retain(|&i| !shows(c, i));
        if !lagging.is_empty() {
            return Ok(None);
        }
        let at = since.elapsed();
        *lagging = c.live().into_iter().filter(|&i| !shows(c, i)).collect();
        Ok(lagging.is_empty().then_some(at))
    })
}

/// Sums of the counters and CPU that the cost figures are differences of.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    datagrams_out: u64,
    bytes_out: u64,
    origin_verifications: u64,
    /// Suspicions the nodes raised after their own failed probes.
    suspicions: u64,
    cpu_s: f64,
    /// Time the nodes' CPU budget held them back (0 without one).
    throttled_s: f64,
    /// Counters of datagrams lost on the way (drops by reason, shed, send errors): why a rumor
    /// may not have reached everyone.
    losses: BTreeMap<String, u64>,
}

/// Whether a node counter counts datagrams lost inside the node or refused by the kernel.
fn is_loss_counter(name: &str) -> bool {
    name.starts_with("drop_") || name == "shed" || name == "send_errors"
}

impl Totals {
    fn minus(self, before: &Totals) -> Totals {
        let losses = self
            .losses
            .iter()
            .map(|(k, v)| {
                let was = before.losses.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(was))
            })
            .collect();
        Totals {
            losses,
            datagrams_out: self.datagrams_out.saturating_sub(before.datagrams_out),
            bytes_out: self.bytes_out.saturating_sub(before.bytes_out),
            origin_verifications: self
                .origin_verifications
                .saturating_sub(before.origin_verifications),
            suspicions: self.suspicions.saturating_sub(before.suspicions),
            throttled_s: self.throttled_s - before.throttled_s,
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
        }
    }
}

fn counter(node: usize, c: &BTreeMap<String, u64>, name: &str) -> anyhow::Result<u64> {
    c.get(name)
        .copied()
        .with_context(|| format!("node {node}: stats lack the counter `{name}`"))
}

/// Counters and CPU summed over the live nodes. Origin verifications only exist for suites that
/// sign rumors; for the others they are 0 by definition.
fn totals(c: &Cluster, suite: Suite) -> anyhow::Result<Totals> {
    let mut t = Totals::default();
    let now = unix_ms();
    for i in c.live() {
        let s = c.stats(i, now)?;
        t.datagrams_out += counter(i, &s.counters, "datagrams_out")?;
        t.bytes_out += counter(i, &s.counters, "bytes_out")?;
        t.suspicions += counter(i, &s.counters, "suspicions_raised")?;
        if suite.signs_origin() {
            t.origin_verifications += counter(i, &s.counters, "origin_verifications")?;
        }
        for (k, v) in s.counters.iter().filter(|(k, _)| is_loss_counter(k)) {
            *t.losses.entry(k.clone()).or_default() += v;
        }
        if let (None, Some(pid)) = (&c.budget, c.pid(i)) {
            t.cpu_s += cpu_seconds(pid).with_context(|| format!("node {i}: CPU time"))?;
        }
    }
    if let Some(b) = &c.budget {
        let u = b.usage()?;
        (t.cpu_s, t.throttled_s) = (u.cpu_s, u.throttled_s);
    }
    Ok(t)
}

/// A positive number of cores (`--cpu-budget`).
fn parse_cores(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(c),
        _ => Err(format!("{s:?} is not a positive number of cores")),
    }
}

/// User plus system CPU of a process and all its threads, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&text).context("unexpected /proc/<pid>/stat format")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(ticks as f64 / hz as f64)
}

/// utime + stime (fields 14 and 15). The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after its last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is f[0], so field k is f[k - 3].
    let utime: u64 = f.get(14 - 3)?.parse().ok()?;
    let stime: u64 = f.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Per-rumor dissemination outcome.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dissemination {
    /// Publish → delivery at the last live node, for rumors every live node delivered; sorted.
    pub(crate) latencies_ms: Vec<u64>,
    /// (node, rumor) pairs delivered.
    pub(crate) delivered_pairs: usize,
    pub(crate) expected_pairs: usize,
    /// The (node, rumor) pairs not delivered, at most [`UNDELIVERED_LISTED`].
    undelivered: Vec<Undelivered>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Undelivered {
    node: usize,
    origin: u32,
    seq: u64,
}

impl Dissemination {
    fn fraction(&self) -> f64 {
        if self.expected_pairs == 0 {
            return 0.0;
        }
        self.delivered_pairs as f64 / self.expected_pairs as f64
    }

    pub(crate) fn complete(&self) -> bool {
        self.delivered_pairs == self.expected_pairs
    }
}

/// A node's first delivery time of each rumor, by (origin, seq).
type FirstDelivery = HashMap<(u32, u64), u64>;

/// Matches each live node's deliveries, `(node, deliveries)`, to the published rumors.
/// Deliveries of rumors not published in this phase are ignored; a rumor delivered twice at a
/// node counts once, at its first delivery.
pub(crate) fn disseminate(
    published: &[Published],
    deliveries: &[(usize, Vec<Delivery>)],
) -> Dissemination {
    let firsts: Vec<(usize, FirstDelivery)> = deliveries
        .iter()
        .map(|(node, list)| {
            let mut first = FirstDelivery::new();
            for d in list {
                let at = first.entry((d.origin, d.seq)).or_insert(d.at_ms);
                *at = (*at).min(d.at_ms);
            }
            (*node, first)
        })
        .collect();
    let mut out = Dissemination {
        latencies_ms: Vec::new(),
        delivered_pairs: 0,
        expected_pairs: published.len() * deliveries.len(),
        undelivered: Vec::new(),
    };
    for p in published {
        let key = (p.origin, p.seq);
        let mut last = Some(p.at_ms);
        for (node, first) in &firsts {
            match first.get(&key) {
                Some(&at) => {
                    out.delivered_pairs += 1;
                    last = last.map(|l| l.max(at));
                }
                None => {
                    last = None;
                    if out.undelivered.len() < UNDELIVERED_LISTED {
                        out.undelivered.push(Undelivered {
                            node: *node,
                            origin: p.origin,
                            seq: p.seq,
                        });
                    }
                }
            }
        }
        if let Some(l) = last {
            out.latencies_ms.push(l.saturating_sub(p.at_ms));
        }
    }
    out.latencies_ms.sort_unstable();
    out
}

/// Re-reads the deliveries (since `since_ms`) of the nodes that still miss a published rumor;
/// the others are not asked again, since answering costs the CPU being measured.
pub(crate) fn refresh_deliveries(
    c: &Cluster,
    published: &[Published],
    since_ms: u64,
    seen: &mut [(usize, Vec<Delivery>)],
) -> anyhow::Result<()> {
    for entry in seen.iter_mut() {
        if !disseminate(published, std::slice::from_ref(entry)).complete() {
            entry.1 = c.stats(entry.0, since_ms)?.deliveries;
        }
    }
    Ok(())
}

/// The results, as written to JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct Report {
    nodes: usize,
    suite: String,
    fanout: usize,
    rumors: u32,
    converge_s: f64,
    rumor_latency_p50_ms: Option<u64>,
    rumor_latency_p99_ms: Option<u64>,
    rumor_latency_max_ms: Option<u64>,
    delivered_fraction: f64,
    undelivered: Vec<Undelivered>,
    /// Datagrams lost inside the nodes or refused by the kernel during the rumor phase, by
    /// counter (only those that moved).
    rumor_phase_losses: BTreeMap<String, u64>,
    /// Suspicions the nodes raised during the rumor phase: probes that went unanswered in
    /// time, as under an overloaded CPU (none in a healthy run with no crash).
    rumor_phase_suspicions: u64,
    msgs_per_rumor_per_node: f64,
    bytes_per_rumor_per_node: f64,
    verifications_per_unique_rumor: f64,
    cpu_s_per_rumor: f64,
    /// The same three costs with the idle window's background rate (probes, acks) subtracted.
    net_msgs_per_rumor_per_node: f64,
    net_bytes_per_rumor_per_node: f64,
    net_cpu_s_per_rumor: f64,
    idle: Idle,
    /// Absent without `--cpu-budget`.
    cpu_budget: Option<BudgetReport>,
    /// Absent when the run skipped the crash phase (`--no-crash`).
    #[serde(flatten)]
    crash: Option<CrashReport>,
    left_cleanly: usize,
    killed_at_leave: usize,
    config: RunSettings,
    phases_s: Phases,
}

/// How the nodes' CPU budget bound during the rumor phase's cost window.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct BudgetReport {
    cores: f64,
    /// Mean cores the nodes used, and that as a fraction of the budget.
    used_cores: f64,
    utilisation: f64,
    /// Time the budget held the nodes back.
    throttled_s: f64,
}

/// The crash phase's results, as written to JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct CrashReport {
    detect_s: f64,
    detect_bound_s: f64,
    /// Whether every live view showed the victim dead within the wait (else `detect_s` is the
    /// wait, a lower bound).
    detected: bool,
    rejoin_s: f64,
    /// Whether every live view showed the victim alive again within the wait.
    rejoined: bool,
    victim: usize,
    victim_incarnation_before: Option<u64>,
    victim_incarnation_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct RunSettings {
    seed: u64,
    gossip_interval_ms: u64,
    probe_interval_ms: u64,
    probe_timeout_ms: u64,
    publish_interval_ms: u64,
    retransmit_mult: u32,
    suspicion_mult: u32,
    retransmit_limit: u32,
    suspicion_max_s: f64,
    seeds: usize,
    io_threads: usize,
    verify_threads: usize,
    payload_bytes: usize,
}

/// Background cost of the cluster at rest (probes, acks, syncs).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
struct Idle {
    window_s: f64,
    msgs_per_s_per_node: f64,
    bytes_per_s_per_node: f64,
    /// All nodes' CPU seconds per second.
    cpu_s_per_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
struct Phases {
    start: f64,
    converge: f64,
    settle: f64,
    idle: f64,
    rumors: f64,
    /// The part of `rumors` the cost figures are measured over (see [`rumor_phase`]).
    rumor_cost_window: f64,
    detect: f64,
    rejoin: f64,
    total: f64,
}

fn settings(a: &Args, cfg: &Config) -> RunSettings {
    let n = a.nodes as usize;
    RunSettings {
        seed: a.seed,
        gossip_interval_ms: cfg.gossip_interval.as_millis() as u64,
        probe_interval_ms: cfg.probe_interval.as_millis() as u64,
        probe_timeout_ms: cfg.probe_timeout.as_millis() as u64,
        publish_interval_ms: a.publish_interval.as_millis() as u64,
        retransmit_mult: cfg.retransmit_mult,
        suspicion_mult: cfg.suspicion_mult,
        retransmit_limit: cfg.retransmit_limit(n),
        suspicion_max_s: cfg.suspicion_max(n).as_secs_f64(),
        seeds: SEEDS.min(n),
        io_threads: 1,
        verify_threads: 1,
        payload_bytes: PAYLOAD_LEN,
    }
}

/// Time for a broadcast to use up its retransmissions: after it, what a phase queued has drained.
fn drain_time(cfg: &Config, n: usize) -> Duration {
    cfg.gossip_interval * cfg.retransmit_limit(n)
}

/// The cost figures of the rumor phase, raw and net of the idle background.
struct Costs {
    msgs: f64,
    bytes: f64,
    verifications: f64,
    cpu: f64,
    net_msgs: f64,
    net_bytes: f64,
    net_cpu: f64,
}

fn costs(d: &Totals, phase: Duration, idle: &Idle, n: usize, rumors: u32) -> Costs {
    let (n, r) = (n as f64, f64::from(rumors));
    let per = |x: f64| x / r / n;
    let bg_msgs = idle.msgs_per_s_per_node * n * phase.as_secs_f64();
    let bg_bytes = idle.bytes_per_s_per_node * n * phase.as_secs_f64();
    let bg_cpu = idle.cpu_s_per_s * phase.as_secs_f64();
    Costs {
        msgs: per(d.datagrams_out as f64),
        bytes: per(d.bytes_out as f64),
        verifications: per(d.origin_verifications as f64),
        cpu: d.cpu_s / r,
        net_msgs: per((d.datagrams_out as f64 - bg_msgs).max(0.0)),
        net_bytes: per((d.bytes_out as f64 - bg_bytes).max(0.0)),
        net_cpu: (d.cpu_s - bg_cpu).max(0.0) / r,
    }
}

fn idle_rates(d: &Totals, window: Duration, n: usize) -> Idle {
    let s = window.as_secs_f64();
    Idle {
        window_s: s,
        msgs_per_s_per_node: d.datagrams_out as f64 / s / n as f64,
        bytes_per_s_per_node: d.bytes_out as f64 / s / n as f64,
        cpu_s_per_s: d.cpu_s / s,
    }
}

fn incarnation_of(c: &Cluster, observer: usize, id: usize) -> Option<u64> {
    let view = c.members(observer).ok()?;
    view.iter()
        .find(|m| m.id as usize == id)
        .map(|m| m.incarnation)
}

fn say(msg: impl std::fmt::Display) {
    eprintln!("rumor-bench cluster: {msg}");
}

/// Runs every phase and assembles the report.
fn measure(a: &Args, cfg: &Config, c: &mut Cluster) -> anyhow::Result<Report> {
    let n = c.len();
    let mut rng = StdRng::seed_from_u64(a.seed);
    let mut phases = Phases::default();
    let t0 = Instant::now();

    say(format_args!("starting {n} nodes ({})", a.suite));
    let last_start = c.start_all()?;
    phases.start = t0.elapsed().as_secs_f64();
    phases.converge = converge(c, last_start)?.as_secs_f64();
    say(format_args!("converged in {:.2} s", phases.converge));

    // Join broadcasts are still being retransmitted; they are not the rumors' cost.
    let t = Instant::now();
    std::thread::sleep(drain_time(cfg, n));
    phases.settle = t.elapsed().as_secs_f64();

    if let Some(cores) = a.cpu_budget {
        c.limit_cpu(cores)
            .context("setting the nodes' CPU budget")?;
        say(format_args!("nodes held to {cores} cores in all"));
    }
    let t = Instant::now();
    let idle = idle_phase(c, cfg, a.suite)?;
    phases.idle = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let RumorPhase { dis, delta, window } = rumor_phase(a, cfg, c, &mut rng)?;
    phases.rumors = t.elapsed().as_secs_f64();
    phases.rumor_cost_window = window.as_secs_f64();
    let cost = costs(&delta, window, &idle, n, a.rumors);
    tell_dissemination(c, &dis, a.rumors);

    let crash = if a.no_crash {
        None
    } else {
        let crash = crash_and_rejoin(c, cfg, &mut rng)?;
        phases.detect = crash.detect_phase.as_secs_f64();
        phases.rejoin = crash.rejoin_phase.as_secs_f64();
        Some(CrashReport {
            detect_s: crash.detect.as_secs_f64(),
            detect_bound_s: cfg.detect_bound(n).as_secs_f64(),
            detected: crash.detected,
            rejoin_s: crash.rejoin.as_secs_f64(),
            rejoined: crash.rejoined,
            victim: crash.victim,
            victim_incarnation_before: crash.incarnation_before,
            victim_incarnation_after: crash.incarnation_after,
        })
    };

    let (left_cleanly, killed_at_leave) = c.leave_all();
    phases.total = t0.elapsed().as_secs_f64();
    Ok(Report {
        nodes: n,
        suite: a.suite.name().into(),
        fanout: a.fanout,
        rumors: a.rumors,
        converge_s: phases.converge,
        rumor_latency_p50_ms: percentile(&dis.latencies_ms, 50.0),
        rumor_latency_p99_ms: percentile(&dis.latencies_ms, 99.0),
        rumor_latency_max_ms: dis.latencies_ms.last().copied(),
        delivered_fraction: dis.fraction(),
        undelivered: dis.undelivered,
        rumor_phase_losses: delta.losses.into_iter().filter(|&(_, v)| v > 0).collect(),
        rumor_phase_suspicions: delta.suspicions,
        msgs_per_rumor_per_node: cost.msgs,
        bytes_per_rumor_per_node: cost.bytes,
        verifications_per_unique_rumor: cost.verifications,
        cpu_s_per_rumor: cost.cpu,
        net_msgs_per_rumor_per_node: cost.net_msgs,
        net_bytes_per_rumor_per_node: cost.net_bytes,
        net_cpu_s_per_rumor: cost.net_cpu,
        idle,
        cpu_budget: c.budget.as_ref().map(|b| {
            let used = delta.cpu_s / window.as_secs_f64();
            BudgetReport {
                cores: b.cores(),
                used_cores: used,
                utilisation: used / b.cores(),
                throttled_s: delta.throttled_s,
            }
        }),
        crash,
        left_cleanly,
        killed_at_leave,
        config: settings(a, cfg),
        phases_s: phases,
    })
}

/// Time from the last start until every view has all members alive; an error naming the
/// lagging nodes if that does not happen within [`CONVERGE_TIMEOUT`].
fn converge(c: &mut Cluster, last_start: Instant) -> anyhow::Result<Duration> {
    let all: Vec<usize> = (0..c.len()).collect();
    let mut lagging = Vec::new();
    let converged = wait_views(
        c,
        &all,
        is_alive,
        last_start,
        CONVERGE_TIMEOUT,
        &mut lagging,
    )?;
    converged.with_context(|| {
        format!(
            "no convergence within {CONVERGE_TIMEOUT:?}: nodes {lagging:?} do not see all {} alive (logs in {})",
            c.len(),
            c.files.nodes[lagging.first().copied().unwrap_or(0)].dir.display()
        )
    })
}

/// The cluster's background traffic and CPU over whole probe periods, nothing published.
fn idle_phase(c: &Cluster, cfg: &Config, suite: Suite) -> anyhow::Result<Idle> {
    let t = Instant::now();
    let before = totals(c, suite)?;
    std::thread::sleep(cfg.probe_interval * IDLE_PROBE_PERIODS);
    let delta = totals(c, suite)?.minus(&before);
    Ok(idle_rates(&delta, t.elapsed(), c.len()))
}

fn tell_dissemination(c: &Cluster, dis: &Dissemination, rumors: u32) {
    say(format_args!(
        "rumors: delivered fraction {:.4}, {} of {rumors} reached every live node",
        dis.fraction(),
        dis.latencies_ms.len(),
    ));
    for u in &dis.undelivered {
        say(format_args!(
            "node {} never delivered rumor {}/{} (log {})",
            u.node,
            u.origin,
            u.seq,
            c.log(u.node).display()
        ));
    }
}

/// What happened to the member that was killed and restarted.
struct Crash {
    victim: usize,
    /// Kill → every live view has it gone (or the wait, if not `detected`).
    detect: Duration,
    detected: bool,
    /// Restart → every live view has it alive (or the wait, if not `rejoined`).
    rejoin: Duration,
    rejoined: bool,
    incarnation_before: Option<u64>,
    incarnation_after: Option<u64>,
    detect_phase: Duration,
    rejoin_phase: Duration,
}

/// SIGKILLs a random non-seed member, waits for every live view to have it dead, restarts it
/// with the same key and state directory, and waits for every view to have it alive again.
fn crash_and_rejoin(c: &mut Cluster, cfg: &Config, rng: &mut StdRng) -> anyhow::Result<Crash> {
    let n = c.len();
    let victim = rng.gen_range(SEEDS.min(n - 1)..n);
    // A seed, never the victim.
    let observer = 0;
    let incarnation_before = incarnation_of(c, observer, victim);
    let bound = cfg.detect_bound(n);
    let detect_wait = bound.mul_f64(DETECT_WAIT_FACTOR);
    let mut lagging = Vec::new();

    let kill_at = Instant::now();
    c.kill(victim);
    say(format_args!(
        "killed node {victim}; detection bound {:.1} s",
        bound.as_secs_f64()
    ));
    let detected = wait_views(c, &[victim], is_gone, kill_at, detect_wait, &mut lagging)?;
    if detected.is_none() {
        say(format_args!(
            "node {victim} not detected within {detect_wait:?} by nodes {lagging:?}"
        ));
    }
    let detect_phase = kill_at.elapsed();

    let restart_at = Instant::now();
    c.spawn(victim)?;
    c.wait_ready(&[victim], START_TIMEOUT)?;
    let rejoined = wait_views(
        c,
        &[victim],
        is_alive,
        restart_at,
        REJOIN_TIMEOUT,
        &mut lagging,
    )?;
    if rejoined.is_none() {
        say(format_args!(
            "node {victim} not seen alive again within {REJOIN_TIMEOUT:?} by nodes {lagging:?}"
        ));
    }
    Ok(Crash {
        victim,
        detect: detected.unwrap_or(detect_wait),
        detected: detected.is_some(),
        rejoin: rejoined.unwrap_or(REJOIN_TIMEOUT),
        rejoined: rejoined.is_some(),
        incarnation_before,
        incarnation_after: incarnation_of(c, observer, victim),
        detect_phase,
        rejoin_phase: restart_at.elapsed(),
    })
}

/// The rumor phase's outcome and its cost: counter and CPU differences over `window`.
struct RumorPhase {
    dis: Dissemination,
    delta: Totals,
    window: Duration,
}

/// Publishes the rumors from random live members, then measures their cost and delivery.
///
/// The cost window ends one drain time after the rumors settled (every live node has them all,
/// or one drain time passed since the last publish, after which gossip delivers no more): the
/// last receivers' retransmissions are the rumors' cost, a wait for missing rumors is not.
/// Deliveries are then waited for up to [`DELIVERY_TIMEOUT`] after the last publish.
fn rumor_phase(
    a: &Args,
    cfg: &Config,
    c: &mut Cluster,
    rng: &mut StdRng,
) -> anyhow::Result<RumorPhase> {
    let live = c.live();
    let since_ms = unix_ms();
    let start = Instant::now();
    let before = totals(c, a.suite)?;
    let published = publish_all(a, c, &live, rng)?;
    let last_publish = Instant::now();
    let drain = drain_time(cfg, c.len());
    let mut seen: Vec<(usize, Vec<Delivery>)> = live.iter().map(|&i| (i, Vec::new())).collect();
    let mut poll_deliveries = |c: &mut Cluster, timeout: Duration| {
        poll_until(timeout, || {
            c.check_running()?;
            refresh_deliveries(c, &published, since_ms, &mut seen)?;
            Ok(disseminate(&published, &seen).complete().then_some(()))
        })
    };
    poll_deliveries(c, drain)?;
    std::thread::sleep(drain);
    let delta = totals(c, a.suite)?.minus(&before);
    let window = start.elapsed();
    let rest = DELIVERY_TIMEOUT.saturating_sub(last_publish.elapsed());
    poll_deliveries(c, rest)?;
    if let Some(dir) = &a.keep_dir {
        write_deliveries(&dir.join(DELIVERIES_FILE), &published, &seen)?;
    }
    Ok(RumorPhase {
        dis: disseminate(&published, &seen),
        delta,
        window,
    })
}

/// What `--keep-dir` adds to the node logs: every publish and every delivery of the rumor phase,
/// so a slow rumor's path can be read hop by hop.
const DELIVERIES_FILE: &str = "deliveries.json";

fn write_deliveries(
    path: &Path,
    published: &[Published],
    seen: &[(usize, Vec<Delivery>)],
) -> anyhow::Result<()> {
    let published: Vec<serde_json::Value> = published
        .iter()
        .map(|p| serde_json::json!({"origin": p.origin, "seq": p.seq, "at_ms": p.at_ms}))
        .collect();
    let deliveries: Vec<serde_json::Value> = seen
        .iter()
        .flat_map(|(node, ds)| {
            ds.iter()
                .map(move |d| serde_json::json!({"node": node, "origin": d.origin, "seq": d.seq, "at_ms": d.at_ms}))
        })
        .collect();
    let text = serde_json::to_string(
        &serde_json::json!({"published": published, "deliveries": deliveries}),
    )?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Publishes `a.rumors` rumors from random members of `live`, on a fixed schedule.
fn publish_all(
    a: &Args,
    c: &Cluster,
    live: &[usize],
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Published>> {
    let mut published = Vec::with_capacity(a.rumors as usize);
    let mut payload = [0u8; PAYLOAD_LEN];
    let first = Instant::now();
    for k in 0..a.rumors {
        // On a schedule, so slow control requests do not stretch the spacing.
        let due = first + a.publish_interval * k;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let from = live[rng.gen_range(0..live.len())];
        rng.fill(&mut payload[..]);
        published.push(c.publish(from, &payload)?);
    }
    let unique: HashSet<(u32, u64)> = published.iter().map(|p| (p.origin, p.seq)).collect();
    if unique.len() != published.len() {
        bail!("nodes returned duplicate (origin, seq) receipts for distinct publishes");
    }
    Ok(published)
}

fn print_table(r: &Report) {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
    println!(
        "cluster: {} nodes, suite {}, fanout {}, {} rumors",
        r.nodes, r.suite, r.fanout, r.rumors
    );
    println!("  converge_s                      {:>10.2}", r.converge_s);
    println!(
        "  rumor latency p50 / p99 ms      {:>10} / {}",
        opt(r.rumor_latency_p50_ms),
        opt(r.rumor_latency_p99_ms)
    );
    println!(
        "  delivered_fraction              {:>10.4}",
        r.delivered_fraction
    );
    println!(
        "  suspicions in the rumor phase   {:>10}",
        r.rumor_phase_suspicions
    );
    println!(
        "  msgs per rumor per node         {:>10.2} (net of idle {:.2})",
        r.msgs_per_rumor_per_node, r.net_msgs_per_rumor_per_node
    );
    println!(
        "  bytes per rumor per node        {:>10.0} (net of idle {:.0})",
        r.bytes_per_rumor_per_node, r.net_bytes_per_rumor_per_node
    );
    println!(
        "  verifications per unique rumor  {:>10.3}",
        r.verifications_per_unique_rumor
    );
    println!(
        "  CPU ms per rumor                {:>10.2} (net of idle {:.2})",
        r.cpu_s_per_rumor * 1e3,
        r.net_cpu_s_per_rumor * 1e3
    );
    if let Some(c) = &r.crash {
        println!(
            "  detect_s / bound                {:>10.2} / {:.2}{}",
            c.detect_s,
            c.detect_bound_s,
            if c.detected { "" } else { " (not detected)" }
        );
        println!(
            "  rejoin_s                        {:>10.2}{}",
            c.rejoin_s,
            if c.rejoined { "" } else { " (not rejoined)" }
        );
    }
    println!(
        "  total s                         {:>10.1}",
        r.phases_s.total
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(origin: u32, seq: u64, at_ms: u64) -> Delivery {
        Delivery {
            origin,
            seq,
            at_ms,
            digest: Default::default(),
        }
    }

    fn p(origin: u32, seq: u64, at_ms: u64) -> Published {
        Published { origin, seq, at_ms }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_is_publish_to_last_delivery_and_only_for_complete_rumors() {
        let published = [p(0, 1, 1000), p(1, 1, 2000)];
        let deliveries = vec![
            (0, vec![d(0, 1, 1000), d(1, 1, 2030)]),
            // A duplicate delivery counts once, at its first time.
            (1, vec![d(0, 1, 1040), d(0, 1, 1500), d(1, 1, 2000)]),
            // Node 5 never got rumor (1, 1); a foreign rumor is ignored.
            (5, vec![d(0, 1, 1090), d(9, 9, 1)]),
        ];
        let r = disseminate(&published, &deliveries);
        assert_eq!(r.latencies_ms, vec![90]);
        assert_eq!((r.delivered_pairs, r.expected_pairs), (5, 6));
        assert!((r.fraction() - 5.0 / 6.0).abs() < 1e-12);
        assert!(!r.complete());
        let missing = Undelivered {
            node: 5,
            origin: 1,
            seq: 1,
        };
        assert_eq!(r.undelivered, vec![missing]);
    }

    #[test]
    fn full_delivery_is_fraction_one() {
        let published = [p(0, 1, 10), p(0, 2, 20)];
        let node = vec![d(0, 2, 25), d(0, 1, 12)];
        let r = disseminate(&published, &[(0, node.clone()), (1, node)]);
        assert_eq!(r.fraction(), 1.0);
        assert!(r.complete());
        assert_eq!(r.latencies_ms, vec![2, 5]);
        assert_eq!(disseminate(&[], &[(0, vec![])]).fraction(), 0.0);
    }

    #[test]
    fn cpu_ticks_survive_odd_process_names() {
        let stat = "4242 (ru) m (or) ) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let me = cpu_seconds(std::process::id()).unwrap();
        assert!(me >= 0.0);
    }

    #[test]
    fn views() {
        let m = |id, state: &str| MemberView {
            id,
            state: state.into(),
            incarnation: 1,
            addr: None,
            committed_dead: false,
            excluded: false,
        };
        let view = vec![m(0, "alive"), m(1, "alive"), m(2, "suspect")];
        assert!(view_has(&view, 0, &[0, 1], is_alive));
        assert!(!view_has(&view, 0, &[0, 1, 2], is_alive));
        // The node itself need not be listed; a missing member is not alive but is gone.
        assert!(view_has(&view[1..], 0, &[0, 1], is_alive));
        assert!(!view_has(&view, 0, &[3], is_alive));
        assert!(view_has(&view, 0, &[3], is_gone));
        assert!(!view_has(&view, 0, &[2], is_gone));
    }

    #[test]
    fn costs_divide_by_rumors_and_nodes_and_subtract_background() {
        let delta = Totals {
            datagrams_out: 1000,
            bytes_out: 100_000,
            origin_verifications: 40,
            suspicions: 0,
            cpu_s: 2.0,
            throttled_s: 0.0,
            losses: BTreeMap::new(),
        };
        let idle = Idle {
            window_s: 2.0,
            msgs_per_s_per_node: 1.0,
            bytes_per_s_per_node: 100.0,
            cpu_s_per_s: 0.1,
        };
        let c = costs(&delta, Duration::from_secs(10), &idle, 4, 10);
        assert_eq!(c.msgs, 25.0);
        assert_eq!(c.bytes, 2500.0);
        assert_eq!(c.verifications, 1.0);
        assert_eq!(c.cpu, 0.2);
        assert_eq!(c.net_msgs, (1000.0 - 40.0) / 40.0);
        assert_eq!(c.net_bytes, (100_000.0 - 4000.0) / 40.0);
        assert!((c.net_cpu - 0.1).abs() < 1e-12);
    }

    #[test]
    fn a_cpu_budget_is_positive_and_only_for_rumor_runs() {
        let parse = |extra: &[&str]| {
            #[derive(clap::Parser)]
            struct P {
                #[command(flatten)]
                a: Args,
            }
            <P as clap::Parser>::try_parse_from([&["cluster"], extra].concat()).map(|p| p.a)
        };
        let a = parse(&["--no-crash", "--cpu-budget", "0.25"]).expect("valid");
        assert_eq!(a.cpu_budget, Some(0.25));
        // Restarted nodes of the crash phase would escape the budget's cgroup.
        assert!(parse(&["--cpu-budget", "0.25"]).is_err());
        for bad in ["0", "-1", "NaN", "inf", "lots"] {
            let flag = format!("--cpu-budget={bad}");
            let e = parse(&["--no-crash", &flag]).expect_err(bad);
            assert!(e.to_string().contains("cores"), "{e}");
        }
    }

    fn test_args(extra: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: Args,
        }
        let mut v = vec!["cluster"];
        v.extend_from_slice(extra);
        <P as clap::Parser>::try_parse_from(v).unwrap().a
    }

    #[test]
    fn config_follows_flags_and_bound_is_the_cores() {
        let a = test_args(&["--probe-interval", "600ms", "--suite", "none"]);
        let cfg = core_config(&a).unwrap();
        assert_eq!(cfg.probe_interval, Duration::from_millis(600));
        let by_hand = cfg.probe_interval * 5
            + cfg.probe_timeout
            + cfg.suspicion_max(32)
            + cfg.gossip_interval * cfg.retransmit_limit(32);
        assert_eq!(cfg.detect_bound(32), by_hand);
        assert_eq!(cfg.probe_timeout, Duration::from_millis(300));
        assert_eq!(cfg.retransmit_mult, Config::default().retransmit_mult);
        let more = core_config(&test_args(&["--retransmit-mult", "6"])).unwrap();
        assert_eq!(more.retransmit_limit(32), 12);
        let slow = test_args(&["--probe-interval", "500ms", "--probe-timeout", "500ms"]);
        assert!(core_config(&slow).is_err());
        assert!(core_config(&test_args(&["--fanout", "0"])).is_err());
    }

    #[test]
    fn a_work_dir_is_private_and_removed_unless_kept() {
        use std::os::unix::fs::PermissionsExt;
        let temporary = WorkDir::new(None).unwrap();
        let path = temporary.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        drop(temporary);
        assert!(!path.exists());
        // Kept after a failure: it outlives the run, and then it is the user's.
        let mut failed = WorkDir::new(None).unwrap();
        failed.keep();
        let path = failed.path().to_path_buf();
        drop(failed);
        assert!(path.is_dir());
        // A --keep-dir with something in it is refused, not mixed into.
        std::fs::write(path.join("old"), "x").unwrap();
        let err = WorkDir::new(Some(path.clone())).err().unwrap();
        assert!(err.to_string().contains("is not empty"), "{err}");
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn node_arguments_carry_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let ports = [40000, 40001, 40002, 40003, 40004];
        let files = write_identities(dir.path(), Suite::AeadEd25519, &ports).unwrap();
        let roster = Roster::load(&files.roster, None).unwrap();
        assert_eq!(roster.len(), 5);
        assert_eq!(
            roster.get(4).unwrap().addr,
            Some("127.0.0.1:40004".parse().unwrap())
        );
        let cfg = core_config(&test_args(&[])).unwrap();
        let args: Vec<String> = node_args(&files, &NodeFlags::new(&cfg), &ports, 4)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let value = |k: &str| args[args.iter().position(|a| a == k).unwrap() + 1].clone();
        assert_eq!(
            value("--seeds"),
            "127.0.0.1:40000,127.0.0.1:40001,127.0.0.1:40002"
        );
        assert_eq!(value("--suite"), "aead+ed25519");
        assert_eq!(value("--gossip-interval"), "200ms");
        assert_eq!(value("--io-threads"), "1");
        assert_eq!(value("--probe-timeout"), "500ms");
        assert!(value("--cluster-key").ends_with("cluster.key"));
        let first = node_args(&files, &NodeFlags::new(&cfg), &ports, 0);
        assert!(!first.iter().any(|a| a == "--seeds"));
    }

    #[test]
    fn json_has_the_fields_the_acceptance_script_reads() {
        let a = test_args(&["--nodes", "4"]);
        let cfg = core_config(&a).unwrap();
        let r = Report {
            nodes: 4,
            suite: "ed25519".into(),
            fanout: 3,
            rumors: 50,
            converge_s: 1.5,
            rumor_latency_p50_ms: Some(10),
            rumor_latency_p99_ms: None,
            rumor_latency_max_ms: None,
            delivered_fraction: 1.0,
            undelivered: Vec::new(),
            rumor_phase_losses: BTreeMap::new(),
            rumor_phase_suspicions: 0,
            msgs_per_rumor_per_node: 1.0,
            bytes_per_rumor_per_node: 1.0,
            verifications_per_unique_rumor: 1.0,
            cpu_s_per_rumor: 1.0,
            net_msgs_per_rumor_per_node: 1.0,
            net_bytes_per_rumor_per_node: 1.0,
            net_cpu_s_per_rumor: 1.0,
            idle: Idle::default(),
            cpu_budget: None,
            crash: Some(CrashReport {
                detect_s: 3.0,
                detect_bound_s: 40.0,
                detected: true,
                rejoin_s: 1.0,
                rejoined: true,
                victim: 3,
                victim_incarnation_before: Some(1),
                victim_incarnation_after: Some(2),
            }),
            left_cleanly: 4,
            killed_at_leave: 0,
            config: settings(&a, &cfg),
            phases_s: Phases::default(),
        };
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "nodes",
            "suite",
            "fanout",
            "rumors",
            "converge_s",
            "rumor_latency_p50_ms",
            "rumor_latency_p99_ms",
            "delivered_fraction",
            "msgs_per_rumor_per_node",
            "bytes_per_rumor_per_node",
            "verifications_per_unique_rumor",
            "cpu_s_per_rumor",
            "rumor_phase_suspicions",
            "detect_s",
            "detect_bound_s",
            "rejoin_s",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert!(v["delivered_fraction"].is_f64());
        assert!(v["rumor_latency_p99_ms"].is_null());
        assert_eq!(v["config"]["gossip_interval_ms"], 200);
        assert_eq!(v["config"]["retransmit_limit"], 4);
        assert!(v["phases_s"]["total"].is_number());
        // Without the crash phase its fields are absent, not zero.
        let v = serde_json::to_value(&Report { crash: None, ..r }).unwrap();
        assert!(v.get("detect_s").is_none() && v.get("nodes").is_some());
    }
}

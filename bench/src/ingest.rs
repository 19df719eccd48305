//! `rumor-bench ingest` (issue 5): the node's receive path on real loopback sockets (io thread,
//! cheap checks, verification pool, protocol core) with io_uring and with recvmmsg, set against
//! raw limits measured in the same run on the same datagrams.
//!
//! Two modes, because on 2 cores one loopback sender cannot saturate a receiver (DESIGN.md,
//! "Limits measured"): loopback delivery runs inside the sender's system call, so a live sender
//! spends a core to feed the other and what is measured is the pair, not the node.
//! - `burst`: `--datagrams` valid datagrams are queued in the node's socket buffer (enlarged
//!   with SO_RCVBUFFORCE, hence root) before the node starts; the time until its core has
//!   accepted them all is the node's own capacity. The same datagrams, queued again on a socket
//!   set up the same way, time two bare loops: the driver's own `recv_batch` dropping each batch
//!   (`raw_udp_recv_per_s`) and a blocking `recv_from` into one buffer (`raw_recv_from_per_s`),
//!   so the driver's baseline is itself checked against the plainest loop there is. The bare
//!   loops run on the core the node pins its io thread to, so both see the same contention;
//!   `--runs` repetitions alternate between drivers and rates are medians, because these cores
//!   are shared and a single 100 ms measurement is at the mercy of whatever else runs.
//! - `live`: a generator thread pinned to the first core sends a pre-built corpus at full speed
//!   for `--seconds`, cycling it; for signed suites, signature checks per second (the pool's hop
//!   signatures and the core's origin signatures) are set against bare single-thread
//!   `ed25519::verify` of the same signatures on the verification worker's core, measured
//!   before and after the run (the higher counts).
//!
//! Every datagram is new to the node that reads it and changes its core's state: `--senders`
//! roster members each seal with their own counters, and each datagram relays one fresh rumor
//! (unique origin and seq) from a further set of origins, each with fewer rumors than half the
//! core's per-origin rumor window, so a rumor first seen late (its earlier copy shed or dropped)
//! is still new to the core. Datagrams are stamped within the anti-replay freshness rules
//! (after the node's boot minus the skew). A live corpus sent again is replayed, and the node
//! drops the copies of what it accepted (counted); the corpus is sized to outlast what the node
//! can verify, and capped at what the pool's dedup table remembers, so such a replay never
//! costs a verification.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumor::runtime::unix_ms;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use codec::keyfile::{ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::suite::HopAuth;
use codec::{
    ClusterKey, HopKeys, Message, Packet, PublicKey, ReplayConfig, Roster, RosterMember, Rumor,
    Sealer, SecretKey, SharedKeyRing, Signature, Suite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumor::config::{IoMode, RunConfig, RunOptions};
use rumor::identity::Identity;
use rumor::io::{mmsg::MmsgRx, socket, uring::UringRx, Receiver};
use rumor::metrics::Metrics;
use rumor::runtime::{BoundGroup, Node};
use serde::Serialize;
use serde_json::json;

use crate::util::write_json;

const CLUSTER: &str = "rumor-bench-ingest";
/// Fixed seed: the same flags give the same keys and corpus layout.
const SEED: u64 = 0x0000_696e_6765_7374;
/// Datagrams per `sendmmsg`: the kernel's limit (UIO_MAXIOV).
const SEND_BATCH: usize = 1024;
/// How often the bench reads the node's counters: fine beside a burst of ~100 ms, and a
/// sleeping poller takes nothing from the node's cores.
const POLL: Duration = Duration::from_millis(1);
/// No progress for this long means the node is done. Longer than the node's gauge period
/// (250 ms), so pool counters copied into the metrics are current when read.
const SETTLE: Duration = Duration::from_millis(400);
/// Upper bound on any one drain, fill or wait.
const LIMIT: Duration = Duration::from_secs(15);
/// A raw loop ends when its socket stays empty this long.
const IDLE: Duration = Duration::from_millis(50);
/// Time given to bare verification.
const RAW_VERIFY_TIME: Duration = Duration::from_secs(1);
/// Time given to the probe that sizes the live corpus.
const PROBE_TIME: Duration = Duration::from_millis(200);
/// Leading datagrams whose signatures the bare verification loop cycles through.
const RAW_VERIFY_SAMPLE: usize = 4096;
/// A sender rate that never binds: this measures capacity, not the per-sender limiter.
const UNLIMITED_RATE: f64 = 1e12;
/// Live corpus over what one core verifies singly in `--seconds`: each datagram carries two
/// signatures (the hop's, checked by the pool, and the rumor origin's, by the core thread),
/// each checked in batches, which gain under 2× (the pool benchmark's batch ratio, 1.8×), so
/// the node accepts fewer datagrams than this and fresh ones are still plentiful at the end.
const CORPUS_MARGIN: f64 = 2.0;
const MAX_SECONDS: f64 = 30.0;
/// Datagrams in a burst by default (issue 5).
const DEFAULT_BURST: usize = 100_000;
const MAX_DATAGRAMS: usize = 1 << 20;
const MAX_SENDERS: u32 = 1 << 14;
const MAX_RUNS: usize = 9;
/// Rumors per origin: half the core's rumor window, which opens half behind the first rumor
/// it sees from an origin, so every rumor of an origin counts as new in any order.
const RUMORS_PER_ORIGIN: usize = (rumor::core::RUMOR_WINDOW / 2) as usize;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    Uring,
    Mmsg,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Queue the datagrams, then start the node: its own capacity.
    Burst,
    /// A sender on the other core at full speed for --seconds.
    Live,
}

#[derive(clap::Args)]
pub struct Args {
    /// Receive driver(s) of the node.
    #[arg(long, value_enum, default_value = "both")]
    io: Io,
    /// Crypto suite of the cluster.
    #[arg(long, default_value = "none")]
    suite: Suite,
    #[arg(long, value_enum, default_value = "burst")]
    mode: Mode,
    /// Burst: datagrams queued (default 100000). Live: corpus size (default: what the node
    /// could verify in --seconds, with margin, up to the pool's dedup capacity).
    #[arg(long)]
    datagrams: Option<usize>,
    /// Burst: measurements per driver, interleaved between drivers so that other load on the
    /// machine falls on both alike; rates are medians (of 5 by default: on this shared VM one
    /// run's ratio to the bare loop ranged from 0.4 to 1.0 within a minute).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Live: how long the generator sends.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Admitted roster members the datagrams come from (round-robin).
    #[arg(long, default_value_t = 256)]
    senders: u32,
    /// The node's verification threads.
    #[arg(long, default_value_t = verify_pool::default_workers())]
    verify_threads: usize,
    /// Rumor payload bytes per datagram.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Run the node with the quorum authority layer (`rumor run --tolerate f`). Its per-origin
    /// rumor cap is lifted: the generator's origins each publish far above it, and this
    /// measures capacity, not that policy.
    #[arg(long)]
    tolerate: Option<u32>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    /// The default report's run: live, through the node's default driver, for `seconds`.
    pub fn live_for_report(
        suite: Suite,
        tolerate: Option<u32>,
        seconds: f64,
        json: PathBuf,
    ) -> Args {
        Args {
            io: default_driver(),
            suite,
            mode: Mode::Live,
            datagrams: None,
            runs: 1,
            seconds,
            senders: 256,
            verify_threads: verify_pool::default_workers(),
            payload: 64,
            tolerate,
            json: Some(json),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(self.seconds > 0.0 && self.seconds <= MAX_SECONDS) {
            bail!("--seconds {} is outside (0, {MAX_SECONDS}]", self.seconds);
        }
        if !(1..=MAX_SENDERS).contains(&self.senders) {
            bail!("--senders {} is outside 1..={MAX_SENDERS}", self.senders);
        }
        if let Some(n) = self.datagrams {
            if !(1..=MAX_DATAGRAMS).contains(&n) {
                bail!("--datagrams {n} is outside 1..={MAX_DATAGRAMS}");
            }
        }
        if !(1..=MAX_RUNS).contains(&self.runs) {
            bail!("--runs {} is outside 1..={MAX_RUNS}", self.runs);
        }
        if self.verify_threads == 0 {
            bail!("--verify-threads must be at least 1");
        }
        Ok(())
    }

    fn drivers(&self) -> Vec<IoMode> {
        match self.io {
            Io::Uring => vec![IoMode::Uring],
            Io::Mmsg => vec![IoMode::Mmsg],
            Io::Both => vec![IoMode::Uring, IoMode::Mmsg],
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    a.validate()?;
    let n = match a.mode {
        Mode::Burst => a.datagrams.unwrap_or(DEFAULT_BURST),
        Mode::Live => live_corpus_size(&a)?,
    };
    let cluster = Cluster::create(a.suite, a.senders, n)?;
    let drivers = a.drivers();
    let mut results = Vec::new();
    if a.mode == Mode::Burst {
        let mut runs: Vec<Vec<Burst>> = drivers.iter().map(|_| Vec::new()).collect();
        for r in 0..a.runs {
            for (io, out) in drivers.iter().zip(&mut runs) {
                eprintln!(
                    "ingest: {} run {}/{}, suite {}",
                    driver_name(*io),
                    r + 1,
                    a.runs,
                    a.suite
                );
                out.push(burst(&a, &cluster, *io, n)?);
            }
        }
        for (io, r) in drivers.iter().zip(runs) {
            results.push((driver_name(*io), serde_json::to_value(summarize(r)?)?));
        }
    } else {
        for io in drivers {
            eprintln!("ingest: {}, suite {}", driver_name(io), a.suite);
            results.push((
                driver_name(io),
                serde_json::to_value(live(&a, &cluster, io, n)?)?,
            ));
        }
    }
    print_table(a.mode, &results);
    let out = match results.as_slice() {
        [(_, one)] => one.clone(),
        many => {
            let mut o = serde_json::Map::new();
            for (name, r) in many {
                o.insert((*name).into(), r.clone());
            }
            if let [(_, u), (_, m)] = many {
                o.insert(
                    "uring_vs_mmsg_accepted".into(),
                    json!(ratio(
                        field(u, "accepted_per_s"),
                        field(m, "accepted_per_s")
                    )),
                );
            }
            serde_json::Value::Object(o)
        }
    };
    if let Some(p) = &a.json {
        write_json(p, &out)?;
    }
    Ok(())
}

/// The driver `rumor run` uses by default (`--io auto`): io_uring where it can be set up.
fn default_driver() -> Io {
    let ring = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .ok()
        .and_then(|s| UringRx::new(s, rumor::io::buffer_size(codec::DEFAULT_MTU)).ok());
    match ring {
        Some(_) => Io::Uring,
        None => Io::Mmsg,
    }
}

fn driver_name(io: IoMode) -> &'static str {
    match io {
        IoMode::Mmsg => "mmsg",
        _ => "uring",
    }
}

fn field(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0)
}

/// `count` per second over `secs`; 0 for an empty interval.
fn per_s(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// `a / b`; 0 when `b` is 0 (nothing measured).
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

// ---- the cluster: keys and roster on disk, as `rumor run` reads them ----

/// Key files and the signed roster in a temporary directory: the node is member 0, the
/// senders are members 1..=K, the rumor origins K+1..=K+O.
struct Cluster {
    dir: tempfile::TempDir,
    suite: Suite,
    tag: u32,
    authority: PublicKey,
    senders: Vec<Arc<SecretKey>>,
    origins: Vec<SecretKey>,
    ring: Option<SharedKeyRing>,
}

impl Cluster {
    /// A cluster for corpora of up to `datagrams`.
    fn create(suite: Suite, senders: u32, datagrams: usize) -> anyhow::Result<Cluster> {
        let tmp = crate::cluster::private_temp_dir("rumor-bench-ingest-")?;
        let dir = tmp.path();
        let mut rng = StdRng::seed_from_u64(SEED);
        let authority = SecretKey::generate(&mut rng);
        let node = SecretKey::generate(&mut rng);
        let senders: Vec<Arc<SecretKey>> = (0..senders)
            .map(|_| Arc::new(SecretKey::generate(&mut rng)))
            .collect();
        let origins: Vec<SecretKey> = (0..datagrams.div_ceil(RUMORS_PER_ORIGIN))
            .map(|_| SecretKey::generate(&mut rng))
            .collect();
        let members = std::iter::once(&node)
            .chain(senders.iter().map(|s| &**s))
            .chain(&origins)
            .zip(0..)
            .map(|(k, id)| RosterMember {
                id,
                key: k.public(),
                addr: None,
            })
            .collect();
        let roster = Roster::new(CLUSTER, 1, authority.public(), members)?;
        roster.write(&dir.join("roster.toml"), &authority)?;
        SigningKeyFile::write(&dir.join("node.key"), SigningRole::Member, &node)?;
        let ring = if suite.uses_cluster_key() {
            let key = ClusterKey::generate(&mut rng);
            ClusterKeyFile::write(&dir.join("cluster.key"), 1, &key)?;
            Some(SharedKeyRing::new(1, key))
        } else {
            None
        };
        Ok(Cluster {
            tag: roster.cluster_tag(),
            dir: tmp,
            suite,
            authority: authority.public(),
            senders,
            origins,
            ring,
        })
    }

    /// The node's configuration as `rumor run` flags would give it: one io thread, pinned.
    fn node_config(&self, a: &Args, io: IoMode, bind: SocketAddr) -> anyhow::Result<RunConfig> {
        let name = driver_name(io);
        let state = self.dir.path().join(format!("state-{name}-{}", unix_ms()));
        Ok(RunOptions {
            bind: Some(bind),
            suite: Some(self.suite),
            key: Some(self.dir.path().join("node.key")),
            roster: Some(self.dir.path().join("roster.toml")),
            authority: Some(hex_key(&self.authority)),
            cluster_key: self
                .ring
                .as_ref()
                .map(|_| self.dir.path().join("cluster.key")),
            control: Some(state.join("control.sock")),
            state_dir: Some(state),
            io: Some(io),
            io_threads: Some(1),
            verify_threads: Some(a.verify_threads),
            sender_rate: Some(UNLIMITED_RATE),
            pin: Some(true),
            tolerate: a.tolerate,
            origin_rumor_cap: a.tolerate.map(|_| u32::MAX),
            ..Default::default()
        }
        .resolve(RunOptions::default())?)
    }

    /// Member id and key of the origin of corpus datagram `i`: origins take turns, so each
    /// has at most `RUMORS_PER_ORIGIN` rumors (seq `i / O + 1`).
    fn origin(&self, i: usize) -> (u32, u64, &SecretKey) {
        let o = i % self.origins.len();
        let id = (1 + self.senders.len() + o) as u32;
        (id, (i / self.origins.len()) as u64 + 1, &self.origins[o])
    }

    fn hop_keys(&self, sender: usize) -> Result<HopKeys, codec::SealError> {
        HopKeys::for_suite(self.suite, self.ring.as_ref(), &self.senders[sender])
    }
}

fn hex_key(k: &PublicKey) -> String {
    k.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

// ---- the corpus ----

/// One signature as the node checks it, for the bare verification loop.
struct SigCheck {
    key: PublicKey,
    msg: Vec<u8>,
    sig: Signature,
}

struct Corpus {
    datagrams: Vec<Bytes>,
    /// Every signature (hop and origin) of the first `RAW_VERIFY_SAMPLE` datagrams.
    sample: Vec<SigCheck>,
    stamp_ms: u64,
    build_s: f64,
}

/// Seals `n` datagrams, sender `k` (member k+1) taking indices k, k+K, k+2K, ... so senders
/// interleave as many peers' traffic would. Each relays one fresh rumor (origin-signed where
/// the suite says so), stamped now. Signs on every core.
fn build_corpus(c: &Cluster, n: usize, payload: usize) -> anyhow::Result<Corpus> {
    ensure!(
        n.div_ceil(RUMORS_PER_ORIGIN) <= c.origins.len(),
        "a corpus of {n} needs more rumor origins than the roster has"
    );
    let start = Instant::now();
    let stamp_ms = unix_ms();
    let k = c.senders.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(k));
    let payload = Bytes::from(vec![0x5a; payload]);
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let payload = &payload;
                scope.spawn(move || seal_senders(c, n, t, threads, stamp_ms, payload))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("sealing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut datagrams = vec![Bytes::new(); n];
    let mut sample = Vec::new();
    for (i, d, sigs) in parts.into_iter().flatten() {
        datagrams[i] = d;
        sample.extend(sigs);
    }
    Ok(Corpus {
        datagrams,
        sample,
        stamp_ms,
        build_s: start.elapsed().as_secs_f64(),
    })
}

type Sealed = (usize, Bytes, Vec<SigCheck>);

/// The datagrams of senders `t, t + threads, ...`.
fn seal_senders(
    c: &Cluster,
    n: usize,
    t: usize,
    threads: usize,
    stamp_ms: u64,
    payload: &Bytes,
) -> anyhow::Result<Vec<Sealed>> {
    let k = c.senders.len();
    let mut rng = StdRng::seed_from_u64(SEED + t as u64 + 1);
    let mut out = Vec::with_capacity(n / threads + 1);
    for s in (t..k).step_by(threads) {
        let (secret, id) = (&c.senders[s], s as u32 + 1);
        let mut sealer = Sealer::new(
            c.suite,
            c.tag,
            id,
            stamp_ms / 1000,
            c.hop_keys(s)?,
            &mut rng,
        )?;
        for i in (s..n).step_by(k) {
            let (origin, seq, origin_key) = c.origin(i);
            let mut rumor = Rumor {
                origin,
                seq,
                timestamp_ms: stamp_ms,
                payload: payload.clone(),
                signature: None,
            };
            let mut sigs = Vec::new();
            if c.suite.signs_origin() {
                let msg = rumor.signing_input(c.tag);
                let sig = origin_key.sign(&msg);
                rumor.signature = Some(sig);
                if i < RAW_VERIFY_SAMPLE {
                    sigs.push(SigCheck {
                        key: origin_key.public(),
                        msg,
                        sig,
                    });
                }
            }
            let mut p = Packet::new(c.suite, codec::DEFAULT_MTU)?;
            if !p
                .push(&Message::Rumor(rumor))
                .with_context(|| format!("--payload {}", payload.len()))?
            {
                bail!("--payload {} does not fit one datagram", payload.len());
            }
            // A tight copy: the sealed buffer keeps a whole MTU of capacity.
            let d = Bytes::copy_from_slice(&sealer.seal(stamp_ms, p)?);
            if c.suite.hop() == HopAuth::Signature && i < RAW_VERIFY_SAMPLE {
                sigs.push(hop_check(secret.public(), &d)?);
            }
            out.push((i, d, sigs));
        }
    }
    Ok(out)
}

/// The hop signature of an `ed25519` datagram: the trailer, over everything before it.
fn hop_check(key: PublicKey, d: &[u8]) -> anyhow::Result<SigCheck> {
    let split = d
        .len()
        .checked_sub(codec::ed25519::SIGNATURE_LEN)
        .context("datagram shorter than a signature")?;
    let sig: [u8; codec::ed25519::SIGNATURE_LEN] = d[split..].try_into()?;
    Ok(SigCheck {
        key,
        msg: d[..split].to_vec(),
        sig: Signature::from_bytes(sig),
    })
}

/// Bare single-thread verification of `checks`, cycled for `time`, pinned to `core`.
/// Returns verifications per second.
fn verify_rate(
    checks: &[SigCheck],
    time: Duration,
    core: Option<core_affinity::CoreId>,
) -> anyhow::Result<f64> {
    ensure!(!checks.is_empty(), "no signatures to verify");
    on_core(core, || {
        let start = Instant::now();
        let mut done = 0u64;
        // The clock is read once per chunk, so it costs nothing beside verification.
        for chunk in checks.chunks(256).cycle() {
            if start.elapsed() >= time {
                break;
            }
            for c in chunk {
                let _ = std::hint::black_box(codec::ed25519::verify(&c.key, &c.msg, &c.sig));
            }
            done += chunk.len() as u64;
        }
        Ok(per_s(done, start.elapsed().as_secs_f64()))
    })
}

/// The core the node pins its io thread to.
fn io_core() -> Option<core_affinity::CoreId> {
    core_affinity::get_core_ids().and_then(|c| c.first().copied())
}

/// Runs `f` on a thread pinned to `core`: a baseline measured on the core where the node's
/// thread for the same work is pinned sees the same contention.
fn on_core<T: Send>(
    core: Option<core_affinity::CoreId>,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("measuring thread panicked"))?
    })
}

/// Single-thread verification rate of freshly signed messages of a datagram's size: sizes the
/// live corpus before it exists.
fn probe_verify_rate(core: Option<core_affinity::CoreId>) -> anyhow::Result<f64> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let key = SecretKey::generate(&mut rng);
    let checks: Vec<SigCheck> = (0u32..256)
        .map(|i| {
            let msg = [i.to_be_bytes().as_slice(), &[0x5a; 252]].concat();
            SigCheck {
                key: key.public(),
                sig: key.sign(&msg),
                msg,
            }
        })
        .collect();
    verify_rate(&checks, PROBE_TIME, core)
}

// ---- sockets: sending, the kernel's accounting ----

/// Sends `datagrams` on the connected `tx` with one `sendmmsg`; returns how many went out.
fn send_batch(tx: &UdpSocket, datagrams: &[Bytes]) -> std::io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: all-zero is a valid mmsghdr; a connected socket needs no name.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header points at one live iovec over a live buffer; the kernel only reads
    // them during the call.
    let n = unsafe { libc::sendmmsg(tx.as_raw_fd(), hdrs.as_mut_ptr(), hdrs.len() as u32, 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(n as usize)
}

/// Sends every datagram once; returns the seconds it took.
fn send_all(tx: &UdpSocket, datagrams: &[Bytes]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut i = 0;
    while i < datagrams.len() {
        ensure!(
            start.elapsed() < LIMIT,
            "sending the burst took over {LIMIT:?}"
        );
        i += send_batch(tx, &datagrams[i..datagrams.len().min(i + SEND_BATCH)])?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// A socket's row of /proc/net/udp.
#[derive(Debug, PartialEq, Eq)]
struct UdpRow {
    /// Bytes charged to the receive queue (each datagram's skb truesize).
    rx_queue: u64,
    /// Datagrams the kernel dropped on this socket (buffer full).
    drops: u64,
}

/// Finds the socket with `inode` in the text of /proc/net/udp: `sl local rem st tx:rx tr:when
/// retrnsmt uid timeout inode ref pointer drops`, queues in hex.
fn parse_udp_row(table: &str, inode: u64) -> Option<UdpRow> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        let (_, rx) = f.get(4)?.split_once(':')?;
        Some(UdpRow {
            rx_queue: u64::from_str_radix(rx, 16).ok()?,
            drops: f.get(12)?.parse().ok()?,
        })
    })
}

fn udp_row(sock: &UdpSocket) -> anyhow::Result<UdpRow> {
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))?.ino();
    let table = std::fs::read_to_string("/proc/net/udp").context("reading /proc/net/udp")?;
    parse_udp_row(&table, inode).context("socket not found in /proc/net/udp")
}

/// Receive-buffer bytes the kernel charges for one datagram of `len` bytes on loopback, measured:
/// the skb's truesize, which the buffer limit counts, not the payload.
fn skb_truesize(len: usize) -> anyhow::Result<u64> {
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    tx.send_to(&vec![0; len], rx.local_addr()?)?;
    let row = udp_row(&rx)?;
    ensure!(row.rx_queue > 0, "the probe datagram was not queued");
    Ok(row.rx_queue)
}

/// A socket bound as the node binds its own, with the burst queued in its buffer.
struct Queued {
    group: BoundGroup,
    sent: u64,
    queued: u64,
    kernel_drops: u64,
    rcvbuf_granted: usize,
    offered_per_s: f64,
}

/// Binds a node socket group, enlarges its buffer to hold every datagram, and queues them.
///
/// They are sent from the core the node pins its io thread to (and the bare loops run on), as a
/// NIC's receive-side scaling steers packets to the core of the thread that reads them: the
/// kernel then allocates and frees each socket buffer on that one core. Queued from another
/// core, every free is deferred back to it, where it bills the node's other threads and helps
/// the bare loops with a second core for nothing.
fn queue_burst(datagrams: &[Bytes]) -> anyhow::Result<Queued> {
    let len = datagrams.iter().map(Bytes::len).max().unwrap_or(0);
    let need = datagrams.len() as u64 * skb_truesize(len)?;
    let (socks, addr, lock) = socket::bind_group((Ipv4Addr::LOCALHOST, 0).into(), 1)?;
    let sock = socks.first().context("no socket bound")?;
    let granted = socket::set_recv_buffer(&socket2::SockRef::from(sock), need as usize);
    if (granted as u64) < need {
        bail!(
            "receive buffer: the kernel granted {granted} bytes of the {need} needed to queue {} datagrams; \
             SO_RCVBUFFORCE needs root (CAP_NET_ADMIN), or raise net.core.rmem_max",
            datagrams.len()
        );
    }
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    tx.connect(addr)?;
    let secs = on_core(io_core(), || send_all(&tx, datagrams))?;
    let row = udp_row(sock)?;
    let sent = datagrams.len() as u64;
    Ok(Queued {
        sent,
        queued: sent.saturating_sub(row.drops),
        kernel_drops: row.drops,
        rcvbuf_granted: granted,
        offered_per_s: per_s(sent, secs),
        group: (socks, addr, lock),
    })
}

// ---- raw receive loops ----

/// Drains `rx` with the driver's own `recv_batch`, dropping every batch. Returns datagrams per
/// second from the first call to the last datagram.
fn raw_driver_rate(rx: &mut dyn Receiver, expect: u64) -> anyhow::Result<f64> {
    let mut out = Vec::new();
    let (start, mut got, mut last) = (Instant::now(), 0u64, 0.0);
    while got < expect && start.elapsed() < LIMIT {
        out.clear();
        if rx.recv_batch(&mut out, IDLE)? == 0 {
            break;
        }
        got += out.len() as u64;
        last = start.elapsed().as_secs_f64();
    }
    ensure!(
        got == expect,
        "{}: received {got} of {expect} queued",
        rx.name()
    );
    Ok(per_s(got, last))
}

/// Drains `sock` with blocking `recv_from` into one buffer, as the same rate.
fn raw_recv_from_rate(sock: &UdpSocket, expect: u64, buf_size: usize) -> anyhow::Result<f64> {
    sock.set_read_timeout(Some(IDLE))?;
    let mut buf = vec![0u8; buf_size];
    let (start, mut got, mut last) = (Instant::now(), 0u64, 0.0);
    while got < expect && start.elapsed() < LIMIT {
        match sock.recv_from(&mut buf) {
            Ok(_) => {
                got += 1;
                last = start.elapsed().as_secs_f64();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.into()),
        }
    }
    ensure!(
        got == expect,
        "recv_from: received {got} of {expect} queued"
    );
    Ok(per_s(got, last))
}

/// Queues the burst again and times the bare loop of `io`'s receiver on it.
fn raw_driver(io: IoMode, datagrams: &[Bytes], buf_size: usize) -> anyhow::Result<f64> {
    let q = queue_burst(datagrams)?;
    let (mut socks, _, _lock) = q.group;
    let sock = socks.pop().context("no socket bound")?;
    let mut rx: Box<dyn Receiver> = match io {
        IoMode::Mmsg => Box::new(MmsgRx::new(sock, buf_size)),
        _ => Box::new(UringRx::new(sock, buf_size).context("io_uring cannot be set up here")?),
    };
    raw_driver_rate(&mut *rx, q.queued)
}

fn raw_recv_from(datagrams: &[Bytes], buf_size: usize) -> anyhow::Result<f64> {
    let q = queue_burst(datagrams)?;
    let sock = q.group.0.first().context("no socket bound")?;
    raw_recv_from_rate(sock, q.queued, buf_size)
}

// ---- watching the node ----

/// What the node did, and when its counters last moved (seconds from the start).
#[derive(Default)]
struct Progress {
    received: u64,
    accepted: u64,
    received_s: f64,
    accepted_s: f64,
}

/// Polls `m` until the core has accepted `target`, or nothing moved for `SETTLE` while `busy`
/// is false, or `limit` passed.
fn watch(m: &Metrics, start: Instant, target: u64, busy: &AtomicBool, limit: Duration) -> Progress {
    let mut p = Progress::default();
    let mut moved = Instant::now();
    while start.elapsed() < limit {
        std::thread::sleep(POLL);
        let (r, a) = (
            m.datagrams_in.load(Ordering::Relaxed),
            m.accepted.load(Ordering::Relaxed),
        );
        let now = start.elapsed().as_secs_f64();
        if r != p.received {
            (p.received, p.received_s, moved) = (r, now, Instant::now());
        }
        if a != p.accepted {
            (p.accepted, p.accepted_s, moved) = (a, now, Instant::now());
        }
        if a >= target || (!busy.load(Ordering::Relaxed) && moved.elapsed() >= SETTLE) {
            break;
        }
    }
    p
}

/// Time one node thread spent on a CPU and runnable but waiting for one.
#[derive(Serialize, Default, Debug, PartialEq)]
struct ThreadTime {
    cpu_s: f64,
    runq_wait_s: f64,
}

/// The node's threads (io, verify, core) by name, from /proc/self/task/*/schedstat: a thread
/// whose CPU time nears the run's length is the limit; one that waited long on a run queue was
/// short of CPU (another thread on its core, or another process on the machine).
fn node_thread_times() -> BTreeMap<String, ThreadTime> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
        let name = read("comm").trim().to_string();
        let ours = name == "core" || name.starts_with("io-") || name.starts_with("verify-");
        if let (true, Some(t)) = (ours, parse_schedstat(&read("schedstat"))) {
            let e: &mut ThreadTime = out.entry(name).or_default();
            e.cpu_s += t.cpu_s;
            e.runq_wait_s += t.runq_wait_s;
        }
    }
    out
}

/// `schedstat`: nanoseconds on a CPU, nanoseconds waiting on a run queue, timeslices.
fn parse_schedstat(text: &str) -> Option<ThreadTime> {
    let mut f = text.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some(ThreadTime {
        cpu_s: f.next()?? as f64 / 1e9,
        runq_wait_s: f.next()?? as f64 / 1e9,
    })
}

/// The machine's 1-minute load average: other work on the same cores shows in every rate here.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Starts a node of the cluster on `group`.
fn start_node(
    c: &Cluster,
    a: &Args,
    io: IoMode,
    group: BoundGroup,
) -> anyhow::Result<(Node, Instant)> {
    let cfg = c.node_config(a, io, group.1)?;
    let id = Identity::load(&cfg, unix_ms() / 1000)?;
    let start = Instant::now();
    Ok((Node::start(cfg, id, Some(group))?, start))
}

// ---- burst ----

#[derive(Serialize)]
struct Burst {
    io: &'static str,
    suite: String,
    datagram_bytes: usize,
    senders: u32,
    datagrams_sent: u64,
    datagrams_queued: u64,
    rcvbuf_granted: usize,
    kernel_drops: u64,
    offered_per_s: f64,
    received: u64,
    accepted: u64,
    all_received: bool,
    received_per_s: f64,
    accepted_per_s: f64,
    shed: u64,
    /// Every other drop after receipt (malformed, auth, replay, bad body).
    dropped: u64,
    /// From the node's first io thread starting to its last accepted datagram.
    window_s: f64,
    /// `Node::start`'s setup before that (pool, rings, core): not in the window, as the bare
    /// loops' setup is not in theirs.
    node_start_s: f64,
    /// Each node thread over the run: the one whose CPU time nears `window_s` is the limit.
    threads: BTreeMap<String, ThreadTime>,
    loadavg_1m: f64,
    raw_udp_recv_per_s: f64,
    raw_recv_from_per_s: f64,
    accepted_vs_raw_udp_recv: f64,
    raw_udp_recv_vs_recv_from: f64,
    /// Every run's rates (the figures above are their medians; counters and thread times are
    /// the median run's).
    runs: Vec<RunRates>,
}

#[derive(Serialize)]
struct RunRates {
    accepted_per_s: f64,
    received_per_s: f64,
    raw_udp_recv_per_s: f64,
    raw_recv_from_per_s: f64,
    loadavg_1m: f64,
}

/// Median of `v` (the mean of the middle two for an even count); 0 if empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One driver's runs as one result: median rates, the median run's counters.
fn summarize(mut runs: Vec<Burst>) -> anyhow::Result<Burst> {
    let med = |runs: &[Burst], f: fn(&Burst) -> f64| median(runs.iter().map(f).collect());
    let accepted = med(&runs, |b| b.accepted_per_s);
    let received = med(&runs, |b| b.received_per_s);
    let offered = med(&runs, |b| b.offered_per_s);
    let raw = med(&runs, |b| b.raw_udp_recv_per_s);
    let recv_from = med(&runs, |b| b.raw_recv_from_per_s);
    let all_received = runs.iter().all(|b| b.all_received);
    let rates = runs
        .iter()
        .map(|b| RunRates {
            accepted_per_s: b.accepted_per_s,
            received_per_s: b.received_per_s,
            raw_udp_recv_per_s: b.raw_udp_recv_per_s,
            raw_recv_from_per_s: b.raw_recv_from_per_s,
            loadavg_1m: b.loadavg_1m,
        })
        .collect();
    runs.sort_by(|x, y| x.accepted_per_s.total_cmp(&y.accepted_per_s));
    let mid = runs.len().checked_sub(1).context("no runs")? / 2;
    let mut b = runs.swap_remove(mid);
    b.accepted_per_s = accepted;
    b.received_per_s = received;
    b.offered_per_s = offered;
    b.raw_udp_recv_per_s = raw;
    b.raw_recv_from_per_s = recv_from;
    b.accepted_vs_raw_udp_recv = ratio(accepted, raw);
    b.raw_udp_recv_vs_recv_from = ratio(raw, recv_from);
    b.all_received = all_received;
    b.runs = rates;
    Ok(b)
}

fn burst(a: &Args, c: &Cluster, io: IoMode, n: usize) -> anyhow::Result<Burst> {
    let corpus = build_corpus(c, n, a.payload)?;
    let buf_size = rumor::io::buffer_size(codec::DEFAULT_MTU);
    eprintln!(
        "ingest: {n} datagrams sealed in {:.2} s; queueing",
        corpus.build_s
    );
    let q = queue_burst(&corpus.datagrams)?;
    // The node's replay floor is its boot minus the skew: the burst must be younger than that.
    let skew = ReplayConfig::default().max_skew_ms;
    let age = unix_ms().saturating_sub(corpus.stamp_ms);
    ensure!(
        age < skew,
        "sealing and queueing took {age} ms, beyond the {skew} ms anti-replay skew the node \
         allows before its boot; use fewer --datagrams"
    );
    let queued = q.queued;
    let (node, start) = start_node(c, a, io, q.group)?;
    // Like the bare loops' clocks, the node's starts when it starts receiving: setup (pool,
    // rings, core, threads) is reported apart, as `node_start_s`.
    let node_start_s = node.receiving_since.duration_since(start).as_secs_f64();
    let start = node.receiving_since;
    let idle = AtomicBool::new(false);
    let p = watch(&node.metrics, start, queued, &idle, LIMIT);
    let threads = node_thread_times();
    std::thread::sleep(SETTLE);
    let m = Arc::clone(&node.metrics);
    node.stop();
    node.wait()?;
    eprintln!("ingest: node done; bare loops");
    let (raw, raw_recv_from) = on_core(io_core(), || {
        Ok((
            raw_driver(io, &corpus.datagrams, buf_size)?,
            raw_recv_from(&corpus.datagrams, buf_size)?,
        ))
    })?;
    let accepted_per_s = per_s(p.accepted, p.accepted_s);
    Ok(Burst {
        io: driver_name(io),
        suite: c.suite.to_string(),
        datagram_bytes: corpus.datagrams.first().map_or(0, Bytes::len),
        senders: a.senders,
        datagrams_sent: q.sent,
        datagrams_queued: queued,
        rcvbuf_granted: q.rcvbuf_granted,
        kernel_drops: q.kernel_drops,
        offered_per_s: q.offered_per_s,
        received: p.received,
        accepted: p.accepted,
        all_received: p.received == queued,
        received_per_s: per_s(p.received, p.received_s),
        accepted_per_s,
        shed: counter(&m.shed),
        dropped: dropped_after_receipt(&m),
        window_s: p.accepted_s,
        node_start_s,
        threads,
        loadavg_1m: load_average(),
        raw_udp_recv_per_s: raw,
        raw_recv_from_per_s: raw_recv_from,
        accepted_vs_raw_udp_recv: ratio(accepted_per_s, raw),
        raw_udp_recv_vs_recv_from: ratio(raw, raw_recv_from),
        runs: Vec::new(),
    })
}

fn dropped_after_receipt(m: &Metrics) -> u64 {
    [
        &m.drop_malformed,
        &m.drop_truncated,
        &m.drop_auth,
        &m.drop_replay,
        &m.drop_bad_body,
        &m.drop_core_backlog,
    ]
    .into_iter()
    .map(counter)
    .sum()
}

// ---- live ----

#[derive(Serialize)]
struct Live {
    io: &'static str,
    suite: String,
    datagram_bytes: usize,
    senders: u32,
    seconds: f64,
    corpus: usize,
    corpus_cycles: f64,
    sent: u64,
    offered_per_s: f64,
    received: u64,
    received_per_s: f64,
    accepted: u64,
    accepted_per_s: f64,
    rumors_delivered: u64,
    kernel_drops: u64,
    shed: u64,
    /// Copies of datagrams already accepted (the cycled corpus) and other replays.
    replay_drops: u64,
    /// From the first datagram sent to the node's last accepted one.
    window_s: f64,
    /// Each node thread over the run.
    threads: BTreeMap<String, ThreadTime>,
    loadavg_1m: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_verifications: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_verifications: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verifications_per_s: Option<f64>,
    /// The higher of two bare measurements, before and after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_verify_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_verify_before_after: Option<(f64, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verifications_vs_raw: Option<f64>,
}

/// Corpus size for a live run: what the node could verify in `seconds` with margin, or for
/// unsigned suites as much as the pool's dedup table remembers.
fn live_corpus_size(a: &Args) -> anyhow::Result<usize> {
    let cap = verify_pool::PoolConfig::default().dedup_capacity;
    if let Some(n) = a.datagrams {
        return Ok(n);
    }
    if !a.suite.signs_origin() {
        return Ok(cap);
    }
    let verify_core = core_affinity::get_core_ids().and_then(|c| c.last().copied());
    let rate = probe_verify_rate(verify_core)?;
    Ok(((rate * a.seconds * CORPUS_MARGIN) as usize).clamp(1, cap))
}

fn live(a: &Args, c: &Cluster, io: IoMode, n: usize) -> anyhow::Result<Live> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (gen_core, verify_core) = (cores.first().copied(), cores.last().copied());
    let group = socket::bind_group((Ipv4Addr::LOCALHOST, 0).into(), 1)?;
    let node_sock = group.0.first().context("no socket bound")?.try_clone()?;
    // The node boots first: the corpus, stamped after, is fresh to it.
    let (node, _) = start_node(c, a, io, group)?;
    let result = drive_live(a, c, io, &node, &node_sock, n, (gen_core, verify_core));
    node.stop();
    node.wait()?;
    result
}

type Cores = (Option<core_affinity::CoreId>, Option<core_affinity::CoreId>);

fn drive_live(
    a: &Args,
    c: &Cluster,
    io: IoMode,
    node: &Node,
    node_sock: &UdpSocket,
    n: usize,
    (gen_core, verify_core): Cores,
) -> anyhow::Result<Live> {
    eprintln!("ingest: sealing a corpus of {n}");
    let corpus = build_corpus(c, n, a.payload)?;
    let max_age = ReplayConfig::default().max_age_ms as f64 / 1e3;
    ensure!(
        corpus.build_s + a.seconds < max_age,
        "sealing took {:.1} s: with --seconds {} the last datagrams would be older than the \
         node's {max_age} s freshness window; use fewer --datagrams",
        corpus.build_s,
        a.seconds
    );
    let signed = c.suite.signs_origin();
    let bare = || -> anyhow::Result<Option<f64>> {
        if !signed {
            return Ok(None);
        }
        eprintln!("ingest: bare verification");
        verify_rate(&corpus.sample, RAW_VERIFY_TIME, verify_core).map(Some)
    };
    let raw_before = bare()?;
    eprintln!("ingest: sending for {} s", a.seconds);
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    tx.connect(node.bound)?;
    let busy = AtomicBool::new(true);
    let seconds = Duration::from_secs_f64(a.seconds);
    let start = Instant::now();
    let (sent, p) = std::thread::scope(|scope| {
        let g = scope.spawn(|| {
            let r = generate(&tx, &corpus.datagrams, seconds, gen_core);
            busy.store(false, Ordering::Relaxed);
            r
        });
        let p = watch(&node.metrics, start, u64::MAX, &busy, seconds + LIMIT);
        let sent = g
            .join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))
            .and_then(|r| r);
        (sent, p)
    });
    let (sent, send_s) = sent?;
    let threads = node_thread_times();
    // Bare verification again after the run; the higher of the two is the baseline, so other
    // load on the machine during one of them never flatters the node.
    let raw_after = bare()?;
    let raw_verify = raw_before.zip(raw_after).map(|(b, a)| b.max(a));
    let m = &node.metrics;
    let row = udp_row(node_sock)?;
    let (pool_v, origin_v) = (counter(&m.verifications), counter(&m.origin_verifications));
    let verifications_per_s = signed.then(|| per_s(pool_v + origin_v, p.accepted_s));
    Ok(Live {
        io: driver_name(io),
        suite: c.suite.to_string(),
        datagram_bytes: corpus.datagrams.first().map_or(0, Bytes::len),
        senders: a.senders,
        seconds: a.seconds,
        corpus: n,
        corpus_cycles: sent as f64 / n as f64,
        sent,
        offered_per_s: per_s(sent, send_s),
        received: p.received,
        received_per_s: per_s(p.received, p.received_s),
        accepted: p.accepted,
        accepted_per_s: per_s(p.accepted, p.accepted_s),
        rumors_delivered: counter(&m.rumors_delivered),
        kernel_drops: row.drops,
        shed: counter(&m.shed),
        replay_drops: counter(&m.drop_replay),
        window_s: p.accepted_s,
        threads,
        loadavg_1m: load_average(),
        pool_verifications: signed.then_some(pool_v),
        origin_verifications: signed.then_some(origin_v),
        verifications_per_s,
        raw_verify_per_s: raw_verify,
        raw_verify_before_after: raw_before.zip(raw_after),
        verifications_vs_raw: verifications_per_s
            .zip(raw_verify)
            .map(|(v, r)| ratio(v, r)),
    })
}

/// The generator: sends `corpus` round and round at full speed for `time`, pinned to `core`.
/// Returns (datagrams sent, seconds).
fn generate(
    tx: &UdpSocket,
    corpus: &[Bytes],
    time: Duration,
    core: Option<core_affinity::CoreId>,
) -> anyhow::Result<(u64, f64)> {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
    let start = Instant::now();
    let (mut sent, mut i) = (0u64, 0usize);
    while start.elapsed() < time {
        let n = send_batch(tx, &corpus[i..corpus.len().min(i + SEND_BATCH)])?;
        sent += n as u64;
        i = (i + n) % corpus.len();
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

// ---- the human table ----

fn print_table(mode: Mode, results: &[(&str, serde_json::Value)]) {
    // Thousands per second; "-" for a figure this suite does not have.
    let k = |v: &serde_json::Value, f: &str| match v.get(f).and_then(|x| x.as_f64()) {
        Some(x) => format!("{:.0}k", x / 1e3),
        None => "-".into(),
    };
    match mode {
        Mode::Burst => {
            println!(
                "{:<6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>7} {:>6}",
                "io",
                "queued",
                "recv/s",
                "accept/s",
                "raw/s",
                "recvfrom/s",
                "acc/raw",
                "raw/rf",
                "drops",
                "shed"
            );
            for (name, v) in results {
                println!(
                    "{:<6} {:>8} {:>9} {:>9} {:>9} {:>10} {:>7.2} {:>7.2} {:>7} {:>6}",
                    name,
                    field(v, "datagrams_queued"),
                    k(v, "received_per_s"),
                    k(v, "accepted_per_s"),
                    k(v, "raw_udp_recv_per_s"),
                    k(v, "raw_recv_from_per_s"),
                    field(v, "accepted_vs_raw_udp_recv"),
                    field(v, "raw_udp_recv_vs_recv_from"),
                    field(v, "kernel_drops"),
                    field(v, "shed"),
                );
            }
        }
        Mode::Live => {
            println!(
                "{:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8}",
                "io",
                "offer/s",
                "recv/s",
                "accept/s",
                "verif/s",
                "raw ver/s",
                "ver/raw",
                "drops",
                "shed"
            );
            for (name, v) in results {
                println!(
                    "{:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8}",
                    name,
                    k(v, "offered_per_s"),
                    k(v, "received_per_s"),
                    k(v, "accepted_per_s"),
                    k(v, "verifications_per_s"),
                    k(v, "raw_verify_per_s"),
                    v.get("verifications_vs_raw")
                        .and_then(|x| x.as_f64())
                        .map_or("-".into(), |x| format!("{x:.2}")),
                    field(v, "kernel_drops"),
                    field(v, "shed"),
                );
            }
        }
    }
    if let [(_, u), (_, m)] = results {
        println!(
            "uring/mmsg accepted: {:.2}",
            ratio(field(u, "accepted_per_s"), field(m, "accepted_per_s"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  412: 0100007F:A7C1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 81234 2 0000000000000000 0
  930: 0100007F:E2D4 00000000:0000 07 00000000:0003C000 00:00000000 00000000     0        0 81299 2 0000000000000000 17
";

    #[test]
    fn udp_row_is_found_by_inode() {
        assert_eq!(
            parse_udp_row(TABLE, 81299),
            Some(UdpRow {
                rx_queue: 0x3c000,
                drops: 17
            })
        );
        assert_eq!(
            parse_udp_row(TABLE, 81234),
            Some(UdpRow {
                rx_queue: 0,
                drops: 0
            })
        );
        assert_eq!(parse_udp_row(TABLE, 1), None);
        assert_eq!(parse_udp_row("header only\n", 81299), None);
        assert_eq!(
            parse_udp_row("h\n 1: x y 07 zz 0 0 0 0 81299\n", 81299),
            None
        );
    }

    #[test]
    fn schedstat_in_seconds() {
        assert_eq!(
            parse_schedstat("384819756 278626043 99\n"),
            Some(ThreadTime {
                cpu_s: 0.384819756,
                runq_wait_s: 0.278626043
            })
        );
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat("x y z"), None);
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert_eq!(per_s(1_000, 0.5), 2_000.0);
        assert_eq!(per_s(5, 0.0), 0.0);
        assert_eq!(ratio(3.0, 4.0), 0.75);
        assert_eq!(ratio(3.0, 0.0), 0.0);
    }

    #[test]
    fn this_kernel_reports_our_socket() {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        assert_eq!(udp_row(&s).unwrap().drops, 0);
        assert!(skb_truesize(100).unwrap() >= 100);
    }
}

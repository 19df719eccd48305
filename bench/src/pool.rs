//! `rumor-bench pool` (issue 4): the verification pool under a pre-signed corpus, against the
//! bare single-thread verification rate of the same corpus measured in the same run.
//!
//! The corpus: `--corpus` unique datagrams (one `Rumor` each, sealed with codec's `Sealer`)
//! round-robin over `--senders` members; a fraction `--invalid-ratio` has one signature bit
//! flipped and comes from one of `--forgers` attacker addresses (claiming honest senders), the
//! rest from each sender's own address. The stream: every unique datagram once, in order, plus
//! `--dup-ratio` copies of earlier ones, half of them of the last batch (likely still in flight),
//! half of any earlier one (likely cached). Each datagram is copied into a fresh buffer as a
//! socket receive would, then moved into the pool.
//!
//! `raw_verify_per_s` and the pool's rate are measured in alternating slices (pool, then raw on
//! the first worker's core, eight times), so that on a machine shared with other work both rates
//! see the same conditions; the JSON keeps each slice's pair.
//!
//! The generator (this thread, pinned to the first core) keeps `--depth` batches queued (closed
//! loop), or with `--overload X` offers X times the pool's estimated capacity, paced, whatever
//! the queue holds.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use codec::{
    ClusterKey, Header, HopKeys, Message, Opener, Packet, PublicKey, Rumor, Sealer, SecretKey,
    SharedKeyRing, Suite, Unverified,
};
use crossbeam::channel::Receiver;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use verify_pool::{
    Admit, Datagram, Ingress, Outcome, Output, Pool, PoolConfig, PoolStats, RateLimit, ShedReason,
};

use crate::util::{peak_rss_bytes, write_json};

/// Fixed seed: the same flags give the same corpus layout, stream and forgeries.
const SEED: u64 = 0x0072_756d_6f72;
/// Generous estimate of batch verification's gain over single (DESIGN.md: zebra batch 58–72 k/s
/// per signature against 38 k/s single), so `--overload` never offers less than it says.
const BATCH_GAIN_CEILING: f64 = 2.0;
const CLUSTER: &str = "rumor-bench-pool";

#[derive(clap::Args)]
pub struct Args {
    /// Hop protection of the corpus.
    #[arg(long, default_value = "ed25519")]
    suite: Suite,
    /// Verification workers (pinned from the last core down; the generator keeps core 0).
    #[arg(long, default_value_t = verify_pool::default_workers())]
    workers: usize,
    /// Batch verification (ed25519), with bisection and the quarantine lane.
    #[arg(long)]
    batch: bool,
    /// Datagrams per queue push and per verification batch.
    #[arg(long, default_value_t = verify_pool::DEFAULT_BATCH)]
    batch_size: usize,
    /// Queue capacity in datagrams (default: the pool's).
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Fraction of the stream that repeats an earlier datagram.
    #[arg(long, default_value_t = 0.0)]
    dup_ratio: f64,
    /// Fraction of unique datagrams with a forged signature.
    #[arg(long, default_value_t = 0.0)]
    invalid_ratio: f64,
    /// Source addresses the forgeries come from.
    #[arg(long, default_value_t = 1)]
    forgers: u8,
    /// Offer this many times the estimated capacity, paced (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    overload: f64,
    /// Closed loop: keep this many batches queued (enough to never starve a worker between the
    /// generator's wake-ups, few enough to keep queue wait meaningful).
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Unique datagrams in the corpus.
    #[arg(long, default_value_t = 100_000)]
    corpus: usize,
    /// Members signing the corpus.
    #[arg(long, default_value_t = 256)]
    senders: u32,
    /// Rumor payload bytes per datagram.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// Upper bound on each timed phase (raw verification, pool run), in seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    /// The default report's run: batch verification, a corpus small enough for ~15 s in all.
    /// The default report's run; `quick`: a small corpus for a second (a smoke run).
    pub fn for_report(json: PathBuf, quick: bool) -> Args {
        Args {
            suite: Suite::Ed25519,
            workers: verify_pool::default_workers(),
            batch: true,
            batch_size: verify_pool::DEFAULT_BATCH,
            queue_capacity: None,
            dup_ratio: 0.0,
            invalid_ratio: 0.0,
            forgers: 1,
            overload: 0.0,
            depth: 8,
            corpus: if quick { 2_000 } else { 40_000 },
            senders: 256,
            payload: 128,
            seconds: if quick { 1.0 } else { 10.0 },
            json: Some(json),
        }
    }
}

struct Corpus {
    datagrams: Vec<Bytes>,
    valid: Vec<bool>,
    origins: Vec<IpAddr>,
    keys: Vec<[u8; 32]>,
    ring: Option<SharedKeyRing>,
    senders: u32,
}

impl Corpus {
    /// Corpus index of a datagram: sender `s`'s n-th datagram (counter n, from 1) is `s + (n-1)·S`.
    fn index(&self, h: &Header) -> Option<usize> {
        let i = u64::from(h.sender) + h.counter.checked_sub(1)? * u64::from(self.senders);
        usize::try_from(i)
            .ok()
            .filter(|i| *i < self.datagrams.len())
    }
}

fn sender_addr(s: u32) -> IpAddr {
    let [_, a, b, c] = s.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(10, a, b, c))
}

/// Signs the corpus on every core: each thread seals for the senders `s ≡ t (mod threads)`.
fn build_corpus(a: &Args, tag: u32) -> anyhow::Result<Corpus> {
    if a.senders == 0 || a.corpus == 0 {
        bail!("--senders and --corpus must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let secrets: Vec<Arc<SecretKey>> = (0..a.senders)
        .map(|_| Arc::new(SecretKey::generate(&mut rng)))
        .collect();
    let ring = a
        .suite
        .uses_cluster_key()
        .then(|| SharedKeyRing::new(1, ClusterKey::generate(&mut rng)));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(a.senders as usize);
    let payload = Bytes::from(vec![0x5a; a.payload]);
    let mut datagrams = vec![Bytes::new(); a.corpus];
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (secrets, ring, payload) = (&secrets, &ring, &payload);
                scope.spawn(move || -> anyhow::Result<Vec<(usize, Bytes)>> {
                    let mut rng = StdRng::seed_from_u64(SEED + t as u64 + 1);
                    let mut out = Vec::new();
                    for s in (t as u32..a.senders).step_by(threads) {
                        let keys = match ring {
                            Some(r) => HopKeys::Ring(r.clone()),
                            None => HopKeys::Signer(Arc::clone(&secrets[s as usize])),
                        };
                        let mut sealer = Sealer::new(a.suite, tag, s, 1, keys, &mut rng)?;
                        for (seq, i) in (s as usize..a.corpus)
                            .step_by(a.senders as usize)
                            .enumerate()
                        {
                            let rumor = Rumor {
                                origin: s,
                                seq: seq as u64,
                                timestamp_ms: 0,
                                payload: payload.clone(),
                                signature: None,
                            };
                            let mut p = Packet::new(a.suite, codec::DEFAULT_MTU)?;
                            if !p.push(&Message::Rumor(rumor))? {
                                bail!("--payload {} does not fit one datagram", a.payload);
                            }
                            // A tight copy: the sealed buffer keeps a whole MTU of capacity.
                            out.push((i, Bytes::copy_from_slice(&sealer.seal(0, p)?)));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("signing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    for (i, d) in parts.into_iter().flatten() {
        datagrams[i] = d;
    }
    let forgers: Vec<IpAddr> = (0..a.forgers.max(1))
        .map(|f| IpAddr::V4(Ipv4Addr::new(192, 0, 2, f.saturating_add(1))))
        .collect();
    let (mut valid, mut origins) = (Vec::with_capacity(a.corpus), Vec::with_capacity(a.corpus));
    for (i, d) in datagrams.iter_mut().enumerate() {
        let forge = rng.gen_bool(a.invalid_ratio.clamp(0.0, 1.0));
        if forge {
            let mut v = d.to_vec();
            let last = v.len() - 1;
            v[last] ^= 1;
            *d = Bytes::from(v);
            origins.push(forgers[rng.gen_range(0..forgers.len())]);
        } else {
            origins.push(sender_addr(i as u32 % a.senders));
        }
        valid.push(!forge);
    }
    let keys = secrets.iter().map(|s| s.public().to_bytes()).collect();
    Ok(Corpus {
        datagrams,
        valid,
        origins,
        keys,
        ring,
        senders: a.senders,
    })
}

/// Single-thread opens of `datagrams`, one at a time, keys parsed once beforehand: for ed25519
/// codec's `ed25519::verify` (the pool's own rules), otherwise the suite's `Opener`. Runs pinned
/// to `core` (the first worker's), so both rates see the same core. Returns (opens, seconds).
fn raw_opens(
    c: &Corpus,
    datagrams: &[Bytes],
    suite: Suite,
    tag: u32,
    limit: Duration,
    core: Option<core_affinity::CoreId>,
) -> anyhow::Result<(u64, f64, Sched)> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let keys: Vec<PublicKey> = c
                    .keys
                    .iter()
                    .map(|k| PublicKey::from_bytes(*k))
                    .collect::<Result<_, _>>()?;
                let mut opener = Opener::new(suite, c.ring.clone())?;
                let me = std::path::Path::new("/proc/thread-self/schedstat");
                let sched_before = schedstat(me).unwrap_or_default();
                let start = Instant::now();
                let mut done = 0u64;
                // The clock is read once per chunk, so it costs nothing beside a verification.
                for chunk in datagrams.chunks(256) {
                    if start.elapsed() >= limit {
                        break;
                    }
                    for d in chunk {
                        if suite == Suite::Ed25519 {
                            let h = Header::parse(d)?;
                            let split = d.len() - codec::ed25519::SIGNATURE_LEN;
                            let mut sig = [0u8; codec::ed25519::SIGNATURE_LEN];
                            sig.copy_from_slice(&d[split..]);
                            let key = keys
                                .get(h.sender as usize)
                                .context("corpus sender outside the roster")?;
                            let _ = std::hint::black_box(codec::ed25519::verify(
                                key,
                                &d[..split],
                                &codec::Signature::from_bytes(sig),
                            ));
                        } else {
                            let u = Unverified::parse(BytesMut::from(&d[..]), suite, tag)?;
                            let _ = std::hint::black_box(opener.open(u, &keys));
                        }
                    }
                    done += chunk.len() as u64;
                }
                let elapsed = start.elapsed().as_secs_f64();
                let sched = schedstat(me).unwrap_or_default().since(sched_before);
                Ok((done, elapsed, sched))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("raw verification thread panicked"))?
    })
}

/// CPU time and run-queue wait (runnable while another task held the core) of one thread, from
/// its `schedstat` file (Linux with schedstats; `None` elsewhere).
fn schedstat(path: &std::path::Path) -> Option<Sched> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some(Sched {
        cpu: Duration::from_nanos(f.next()??),
        wait: Duration::from_nanos(f.next()??),
    })
}

/// [`schedstat`] summed over this process's threads named `prefix…` (the pool's workers).
fn threads_sched(prefix: &str) -> Option<Sched> {
    let mut sum = Sched::default();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            sum = sum + schedstat(&task.path().join("schedstat"))?;
        }
    }
    Some(sum)
}

/// Where a thread's wall time went: on a core, or waiting for one. A rate that dropped with
/// the wait grown is the machine's other work, not the code measured.
#[derive(Clone, Copy, Default, Debug)]
struct Sched {
    cpu: Duration,
    wait: Duration,
}

impl std::ops::Add for Sched {
    type Output = Sched;
    fn add(self, o: Sched) -> Sched {
        Sched {
            cpu: self.cpu + o.cpu,
            wait: self.wait + o.wait,
        }
    }
}

impl Sched {
    fn since(self, before: Sched) -> Sched {
        Sched {
            cpu: self.cpu.saturating_sub(before.cpu),
            wait: self.wait.saturating_sub(before.wait),
        }
    }
}

/// Corpus indices in stream order (see the module docs).
fn stream(a: &Args, corpus: usize) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(SEED ^ 0xd0b1e);
    let d = a.dup_ratio.clamp(0.0, 0.99);
    let per_unique = d / (1.0 - d);
    let recent = a.batch_size.max(1);
    let mut out = Vec::with_capacity((corpus as f64 * (1.0 + per_unique)) as usize + 1);
    let mut credit = 0.0;
    for i in 0..corpus {
        out.push(i as u32);
        credit += per_unique;
        while credit >= 1.0 {
            credit -= 1.0;
            let j = if rng.gen_bool(0.5) {
                rng.gen_range(i.saturating_sub(recent)..=i)
            } else {
                rng.gen_range(0..=i)
            };
            out.push(j as u32);
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    misjudged: u64,
    expected_accepted: u64,
    expected_rejected: u64,
    pending: u64,
    /// Verdicts paid with crypto (not taken from an identical copy).
    crypto_settled: u64,
    /// Corpus indices with a verdict.
    settled: Vec<bool>,
    unique_settled: usize,
    last_output: Option<Instant>,
}

impl Tally {
    fn judge(&mut self, c: &Corpus, accepted: bool, h: &Header) {
        if accepted {
            self.accepted += 1;
        } else {
            self.rejected += 1;
        }
        match c.index(h) {
            Some(i) => {
                self.misjudged += u64::from(c.valid[i] != accepted);
                self.unique_settled += usize::from(!std::mem::replace(&mut self.settled[i], true));
            }
            None => self.misjudged += 1,
        }
    }

    fn outputs(&mut self, c: &Corpus, batch: Vec<Output>) {
        self.last_output = Some(Instant::now());
        for o in batch {
            self.pending = self.pending.saturating_sub(1);
            self.crypto_settled += u64::from(!o.dedup_hit);
            let h = match &o.outcome {
                Outcome::Verified(v) => *v.header(),
                Outcome::Duplicate(d) => *d.header(),
                Outcome::Rejected(r) => r.header,
            };
            self.judge(c, o.accepted(), &h);
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.dup_ratio)
        || !(0.0..=1.0).contains(&a.invalid_ratio)
        || a.overload < 0.0
    {
        bail!("--dup-ratio in [0, 1), --invalid-ratio in [0, 1], --overload ≥ 0");
    }
    let tag = codec::cluster_tag(CLUSTER);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    eprintln!(
        "pool: signing {} datagrams from {} senders ({})",
        a.corpus, a.senders, a.suite
    );
    let corpus = build_corpus(&a, tag)?;
    let limit = Duration::from_secs_f64(a.seconds.max(0.1));
    // The raw rate runs on the first worker's core, in slices alternating with the pool's.
    let raw_core = cores.last().copied();
    let raw_chunk = corpus.datagrams.len().div_ceil(SLICES);
    let mut raw_chunks = corpus.datagrams.chunks(raw_chunk).cycle();
    let (first_ops, first_secs, mut raw_sched) = raw_opens(
        &corpus,
        raw_chunks.next().unwrap_or_default(),
        a.suite,
        tag,
        limit / SLICES as u32,
        raw_core,
    )?;
    let mut raw_sum = (first_ops, first_secs);

    let defaults = PoolConfig::default();
    let workers = a.workers.max(1);
    let capacity_est = raw_sum.0 as f64 / raw_sum.1
        * workers as f64
        * if a.batch { BATCH_GAIN_CEILING } else { 1.0 };
    let overloaded = a.overload > 0.0;
    // Closed loop: no rate limits, nothing may be shed. Overload: each sender may send twice its
    // fair share of capacity, so senders' buckets, pressure and the full queue all get to shed.
    let sender_limit = if overloaded {
        let per = 2.0 * capacity_est / f64::from(a.senders);
        RateLimit {
            per_second: per,
            burst: per,
        }
    } else {
        RateLimit::UNLIMITED
    };
    let cfg = PoolConfig {
        suite: a.suite,
        cluster_tag: tag,
        ring: corpus.ring.clone(),
        workers,
        pin: true,
        batch: a.batch,
        batch_size: a.batch_size.max(1),
        queue_capacity: a.queue_capacity.unwrap_or(defaults.queue_capacity),
        sender_limit,
        origin_limit: RateLimit::UNLIMITED,
        ..defaults
    };
    let (batch_size, queue_capacity) = (cfg.batch_size, cfg.queue_capacity);
    let (mut pool, rx) = Pool::start(cfg, Arc::new(corpus.keys.clone()))?;
    // The generator takes the first core only now: the pool picks its workers' cores among
    // those its caller may run on, so a generator pinned before the start put the worker on
    // the generator's own core (and duplicate-heavy runs, whose generator works ten times as
    // much per unique datagram, lost the difference from the worker's share of that core).
    if let Some(c) = cores.first() {
        core_affinity::set_for_current(*c);
    }
    let order = stream(&a, corpus.datagrams.len());
    let mut g = Generator {
        corpus: &corpus,
        ingress: pool.ingress()?,
        rx,
        next: 0,
        submitted: 0,
        submitted_unique: vec![false; corpus.datagrams.len()],
        unique_messages: 0,
        t: Tally {
            settled: vec![false; corpus.datagrams.len()],
            ..Tally::default()
        },
        batch_size,
        queue_capacity,
        depth: (a.depth.max(1) * batch_size).min(queue_capacity),
        offered_rate: a.overload * capacity_est,
    };
    let (mut pool_time, mut slice_rates) = (Duration::ZERO, Vec::new());
    let mut worker_sched = Sched::default();
    let per_slice = order.len().div_ceil(SLICES).max(1);
    for end in (per_slice..order.len() + per_slice).step_by(per_slice) {
        if pool_time >= limit {
            break;
        }
        let before = threads_sched(verify_pool::WORKER_THREAD_PREFIX).unwrap_or_default();
        let (d, settled) = g.slice(&order[..end.min(order.len())], limit)?;
        pool_time += d;
        worker_sched = worker_sched
            + threads_sched(verify_pool::WORKER_THREAD_PREFIX)
                .unwrap_or_default()
                .since(before);
        let raw_slice = raw_opens(
            &corpus,
            raw_chunks.next().unwrap_or_default(),
            a.suite,
            tag,
            d.max(MIN_RAW_SLICE),
            raw_core,
        )?;
        slice_rates.push((
            settled as f64 / d.as_secs_f64().max(1e-9),
            raw_slice.0 as f64 / raw_slice.1,
        ));
        raw_sum = (raw_sum.0 + raw_slice.0, raw_sum.1 + raw_slice.1);
        raw_sched = raw_sched + raw_slice.2;
    }
    pool.shutdown();
    let st = pool.stats();
    eprintln!("pool: slices (pool/s, raw/s): {slice_rates:.0?}");
    eprintln!(
        "pool: on a core / waiting for one: workers {:.2?} / {:.2?}, raw {:.2?} / {:.2?}",
        worker_sched.cpu, worker_sched.wait, raw_sched.cpu, raw_sched.wait
    );
    let m = Measured {
        raw: raw_sum.0 as f64 / raw_sum.1,
        workers,
        elapsed: pool_time.as_secs_f64().max(1e-9),
        slice_rates,
        worker_sched,
        raw_sched,
    };
    report(&a, &corpus, &m, &g, &st)
}

/// Alternations of pool and raw phases: enough to average out the drift of a machine shared
/// with other work, few enough that refilling the pipeline each time (one batch) stays noise.
const SLICES: usize = 8;
/// Shortest raw phase, so that one slice's rate is not a handful of verifications.
const MIN_RAW_SLICE: Duration = Duration::from_millis(200);

/// The load generator's state across slices.
struct Generator<'a> {
    corpus: &'a Corpus,
    ingress: Ingress,
    rx: Receiver<Vec<Output>>,
    next: usize,
    submitted: u64,
    submitted_unique: Vec<bool>,
    unique_messages: usize,
    t: Tally,
    batch_size: usize,
    queue_capacity: usize,
    /// Closed loop: datagrams to keep queued.
    depth: usize,
    /// Paced offered load (datagrams/s); 0 for the closed loop.
    offered_rate: f64,
}

impl Generator<'_> {
    /// Feeds `order[self.next..]` and waits for every verdict (bounded by `limit` past the
    /// slice's start). Returns the slice's duration (to its last verdict) and how many
    /// datagrams the pool settled by crypto in it.
    fn slice(&mut self, order: &[u32], limit: Duration) -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let settled_before = self.t.crypto_settled;
        let submitted_before = self.submitted;
        self.t.last_output = None;
        while (self.next < order.len() || self.t.pending > 0) && start.elapsed() < limit {
            while let Ok(b) = self.rx.try_recv() {
                self.t.outputs(self.corpus, b);
            }
            let now = Instant::now();
            let may_send = self.next < order.len()
                && if self.offered_rate > 0.0 {
                    ((self.submitted - submitted_before) as f64)
                        < self.offered_rate * now.duration_since(start).as_secs_f64()
                } else {
                    let queued = self.queue_capacity - self.ingress.room();
                    queued + self.batch_size.min(self.queue_capacity) <= self.depth
                };
            if !may_send {
                let wait = Duration::from_micros(if self.offered_rate > 0.0 { 200 } else { 1000 });
                if let Ok(b) = self.rx.recv_timeout(wait) {
                    self.t.outputs(self.corpus, b);
                }
                continue;
            }
            let chunk = &order[self.next..(self.next + self.batch_size).min(order.len())];
            self.next += chunk.len();
            self.submitted += chunk.len() as u64;
            self.submit(chunk, now)?;
        }
        let end = self.t.last_output.unwrap_or_else(Instant::now);
        Ok((
            end.saturating_duration_since(start),
            self.t.crypto_settled - settled_before,
        ))
    }

    fn submit(&mut self, chunk: &[u32], now: Instant) -> anyhow::Result<()> {
        let c = self.corpus;
        let datagrams = chunk.iter().map(|&i| Datagram {
            buf: BytesMut::from(&c.datagrams[i as usize][..]),
            origin: Some(c.origins[i as usize]),
        });
        for (admit, &i) in self.ingress.submit(datagrams, now).into_iter().zip(chunk) {
            let i = i as usize;
            if !matches!(admit, Admit::Shed(_) | Admit::Undelivered) {
                self.unique_messages +=
                    usize::from(!std::mem::replace(&mut self.submitted_unique[i], true));
                if c.valid[i] {
                    self.t.expected_accepted += 1;
                } else {
                    self.t.expected_rejected += 1;
                }
            }
            match admit {
                Admit::Queued | Admit::Waiting => self.t.pending += 1,
                Admit::Duplicate(d) => self.t.judge(c, true, d.header()),
                Admit::Shed(_) | Admit::Undelivered => {}
                Admit::Malformed(e) => bail!("corpus datagram {i} does not parse: {e}"),
            }
        }
        Ok(())
    }
}

/// Rates measured by the run.
struct Measured {
    /// Single-thread verifications per second over all raw slices.
    raw: f64,
    workers: usize,
    /// Seconds the pool ran (sum of its slices).
    elapsed: f64,
    /// Per slice: (pool settled/s, raw/s).
    slice_rates: Vec<(f64, f64)>,
    /// The workers' threads over the pool slices, and the raw thread over the raw slices.
    worker_sched: Sched,
    raw_sched: Sched,
}

fn report(a: &Args, c: &Corpus, m: &Measured, g: &Generator, st: &PoolStats) -> anyhow::Result<()> {
    let (t, submitted, unique_messages) = (&g.t, g.submitted, g.unique_messages);
    let (raw, workers, elapsed) = (m.raw, m.workers, m.elapsed);
    let settled_by_crypto = st.verified + st.failed;
    let pool_rate = settled_by_crypto as f64 / elapsed;
    let ratio = pool_rate / workers as f64 / raw;
    let unique_rate = t.unique_settled as f64 / elapsed;
    let mean_batch = if st.popped_batches > 0 {
        st.popped_items as f64 / st.popped_batches as f64
    } else {
        0.0
    };
    let fields = [
        ("suite", json!(a.suite.name())),
        ("workers", json!(workers)),
        ("batch", json!(a.batch)),
        ("batch_size", json!(a.batch_size)),
        ("dup_ratio", json!(a.dup_ratio)),
        ("invalid_ratio", json!(a.invalid_ratio)),
        ("overload", json!(a.overload)),
        ("corpus", json!(c.datagrams.len())),
        ("senders", json!(a.senders)),
        ("payload_bytes", json!(a.payload)),
        (
            "datagram_bytes",
            json!(c.datagrams.first().map_or(0, Bytes::len)),
        ),
        ("elapsed_s", json!(elapsed)),
        ("submitted", json!(submitted)),
        ("raw_verify_per_s", json!(raw)),
        ("pool_verified_per_s", json!(pool_rate)),
        ("ratio_to_raw", json!(ratio)),
        ("verifications", json!(st.verifications)),
        ("unique_messages", json!(unique_messages)),
        ("unique_verified_per_s", json!(unique_rate)),
        ("verified", json!(st.verified)),
        ("failed", json!(st.failed)),
        ("dedup_hits", json!(st.dedup_hits + st.dedup_waits)),
        ("dedup_cache_hits", json!(st.dedup_hits)),
        ("dedup_inflight_waits", json!(st.dedup_waits)),
        ("dedup_misses", json!(st.dedup_misses)),
        ("key_cache_hits", json!(st.key_cache_hits)),
        ("key_cache_misses", json!(st.key_cache_misses)),
        ("accepted", json!(t.accepted)),
        ("rejected", json!(t.rejected)),
        ("expected_accepted", json!(t.expected_accepted)),
        ("expected_rejected", json!(t.expected_rejected)),
        ("misjudged", json!(t.misjudged)),
        ("unsettled", json!(t.pending)),
        ("shed", json!(st.shed_total())),
        ("queue_capacity", json!(st.queue_capacity)),
        ("peak_queue_len", json!(st.peak_queue_len)),
        ("queue_wait_p50_us", json!(st.queue_wait_us.p50)),
        ("queue_wait_p99_us", json!(st.queue_wait_us.p99)),
        ("queue_wait_max_us", json!(st.queue_wait_us.max)),
        ("verify_batch_p50_us", json!(st.verify_batch_us.p50)),
        ("verify_batch_p99_us", json!(st.verify_batch_us.p99)),
        ("batches", json!(st.batches)),
        ("bisections", json!(st.bisections)),
        ("singles", json!(st.singles)),
        ("quarantined_items", json!(st.quarantined_items)),
        ("popped_batches", json!(st.popped_batches)),
        ("mean_popped_batch", json!(mean_batch)),
        ("undelivered", json!(st.undelivered)),
        ("peak_rss_bytes", json!(peak_rss_bytes())),
        ("slices_pool_raw_per_s", json!(m.slice_rates)),
        ("worker_cpu_s", json!(m.worker_sched.cpu.as_secs_f64())),
        (
            "worker_runqueue_wait_s",
            json!(m.worker_sched.wait.as_secs_f64()),
        ),
        ("raw_cpu_s", json!(m.raw_sched.cpu.as_secs_f64())),
        ("raw_runqueue_wait_s", json!(m.raw_sched.wait.as_secs_f64())),
    ];
    let mut v: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .map(|(k, x)| (k.to_string(), x))
        .collect();
    for r in ShedReason::ALL {
        v.insert(format!("shed_{}", r.name()), json!(st.shed_by(r)));
    }
    println!(
        "pool {} workers={} batch={}: raw {:.0}/s, pool {:.0}/s, ratio {:.2}, unique {:.0}/s, verifications/unique {:.3}, dedup {}, accepted {}/{} rejected {}/{}, shed {}, queue peak {}/{}, wait p50 {} us p99 {} us, rss {} MiB",
        a.suite,
        workers,
        a.batch,
        raw,
        pool_rate,
        ratio,
        unique_rate,
        st.verifications as f64 / unique_messages.max(1) as f64,
        st.dedup_hits + st.dedup_waits,
        t.accepted,
        t.expected_accepted,
        t.rejected,
        t.expected_rejected,
        st.shed_total(),
        st.peak_queue_len,
        st.queue_capacity,
        st.queue_wait_us.p50,
        st.queue_wait_us.p99,
        peak_rss_bytes() >> 20
    );
    if let Some(p) = &a.json {
        write_json(p, &serde_json::Value::Object(v))?;
    }
    Ok(())
}

//! rumor's verification pool: a bounded lock-free ingress queue between the io threads and a
//! set of pinned verification workers, with batch verification, dedup before verify, and load
//! shedding before any crypto. It knows bytes and suites, not the protocol (DESIGN.md, "Layout").
//!
//! Path of a datagram: [`Ingress::submit`] (parse, admitted sender, rate limits, dedup lookup;
//! one [`Admit`] per datagram, sheds counted by [`ShedReason`]) → [`queue`] (batches, capacity in
//! datagrams) → a worker (batch verification with bisection, the quarantine lane, single
//! verification for other suites) → [`Output`]s on the channel returned by [`Pool::start`].
//!
//! # Verification rules
//! Ed25519 is checked under ZIP-215 (<https://zips.z.cash/zip-0215>), through codec, which runs
//! ed25519-zebra for single and batch paths alike:
//! - S must be canonical (S < ℓ), otherwise a signature would be malleable;
//! - A and R may be any point encoding, canonical or not, and may carry a torsion component;
//! - the equation is the cofactored one, [8][S]B = [8]R + [8][k]A.
//!
//! Why: batch verification checks a random linear combination of the items' equations. With the
//! cofactorless equation, an item whose R or A carries torsion can pass alone and fail in a
//! batch (or the reverse, depending on the random coefficients), so a message's fate would depend
//! on its batch neighbours, and bisection would blame the wrong items. With the cofactored
//! equation, single and batch verification agree on every input, which the property test in
//! `tests/consistency.rs` checks with hostile inputs. Keys of small order (which make any
//! signature verify) or carrying torsion are refused at admission ([`keys`]), never at
//! verification.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use codec::{Opener, SealError, SharedKeyRing, Suite};
use crossbeam::channel::{bounded, Receiver, Sender};

pub mod batch;
pub mod dedup;
mod ingress;
pub mod keys;
pub mod quarantine;
pub mod queue;
pub mod shed;
mod stats;
mod worker;

pub use batch::{Rejected, Verdict};
pub use ingress::{Admit, Datagram, Ingress};
pub use keys::KeySource;
pub use quarantine::QuarantineConfig;
pub use shed::{RateLimit, ShedReason};
pub use stats::{Percentiles, PoolStats};
pub use worker::{Outcome, Output};

/// Hashing of every table the pool keeps: randomly seeded per process, so keys an attacker
/// chooses (digests, member ids, addresses) cannot be aimed at one bucket.
pub(crate) type TableHasher = foldhash::quality::RandomState;

/// A per-sender LRU table: bounded at `cap`, grown as it fills ([`codec::anti_replay::growing_lru`]).
pub(crate) fn lru_table<K: std::hash::Hash + Eq, V>(
    cap: std::num::NonZeroUsize,
) -> lru::LruCache<K, V, TableHasher> {
    codec::anti_replay::growing_lru(cap, TableHasher::default())
}

use dedup::DedupTable;
use ingress::OnIngress;
use keys::KeyCache;
use queue::IngressQueue;
use shed::Limiter;
use stats::{Counters, Histograms};
use worker::{Job, Waiter, Worker};

/// Worker threads are named this plus their index, so tools (and the benchmark's scheduler
/// accounting) can find them among a process's threads.
pub const WORKER_THREAD_PREFIX: &str = "verify-";

/// Datagrams per verification batch by default: ed25519-zebra's per-signature batch cost
/// flattens between 32 and 128 items (DESIGN.md, limits table); 64 sits in that range while
/// keeping a failed batch's bisection short (6 levels).
pub const DEFAULT_BATCH: usize = 64;
/// Queue depth in verification batches: about 70 ms of work for one worker at ~60 k
/// signatures/s, enough to ride out scheduling hiccups without hiding overload.
pub const QUEUE_BATCHES: usize = 64;

/// How the pool runs. [`PoolConfig::default`] derives every size from the batch size and cores.
#[derive(Clone)]
pub struct PoolConfig {
    pub suite: Suite,
    pub cluster_tag: u32,
    /// The cluster key ring, for shared-key suites.
    pub ring: Option<SharedKeyRing>,
    /// Worker threads; 0 runs none, and the caller verifies with [`Pool::run_pending`] (the
    /// deterministic simulator, single-core hosts).
    pub workers: usize,
    /// Pin workers to cores, from the last core down, leaving the first for the io thread.
    /// The cores are those the thread calling [`Pool::start`] may run on: start the pool
    /// before pinning that thread, or every worker lands on its core.
    pub pin: bool,
    /// Verify on the io thread, inside [`Ingress::submit`], and send verdicts straight to the
    /// consumer; no worker threads run (`workers` is ignored). For suites whose check costs less
    /// than handing a batch to another thread (none, MAC, AEAD: well under a microsecond per
    /// datagram), where a worker only adds a wake-up and a thread competing for the cores.
    pub verify_on_ingress: bool,
    /// Batch verification for `ed25519`; otherwise every datagram is verified alone.
    pub batch: bool,
    /// Datagrams per queue push and per verification batch.
    pub batch_size: usize,
    /// Queue capacity, in datagrams.
    pub queue_capacity: usize,
    /// Deduplicate identical datagrams before verifying them. It pays only where verifying
    /// costs more than the SHA-256 digest of the datagram: Ed25519 hop signatures (~26 µs
    /// against ~0.6 µs); for MAC and AEAD suites the digest costs about what the check does.
    pub dedup: bool,
    /// Verified digests remembered for dedup.
    pub dedup_capacity: usize,
    /// Copies allowed to wait for an in-flight twin, in total.
    pub max_waiters: usize,
    /// Parsed keys cached per thread.
    pub key_cache_capacity: usize,
    pub sender_limit: RateLimit,
    pub origin_limit: RateLimit,
    /// Buckets remembered per table (senders, origins), per io thread.
    pub limiter_capacity: usize,
    pub quarantine: QuarantineConfig,
    /// Verdict batches the output channel holds before workers wait for the consumer.
    pub output_batches: usize,
}

/// Workers by default: every core but one, which the io thread keeps; at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Default for PoolConfig {
    fn default() -> Self {
        let queue_capacity = DEFAULT_BATCH * QUEUE_BATCHES;
        // A member gossips tens of datagrams per second (memberlist: 3 peers every 200 ms plus
        // probes); 2 k/s leaves room for push-pull bursts. An address may front a few members.
        let sender_limit = RateLimit {
            per_second: 2_000.0,
            burst: 2_000.0,
        };
        PoolConfig {
            suite: Suite::Ed25519,
            cluster_tag: 0,
            ring: None,
            workers: default_workers(),
            verify_on_ingress: false,
            pin: true,
            batch: true,
            batch_size: DEFAULT_BATCH,
            queue_capacity,
            dedup: true,
            // Several seconds of unique traffic at the verification rate.
            dedup_capacity: 1 << 18,
            max_waiters: queue_capacity,
            key_cache_capacity: 1 << 14,
            sender_limit,
            origin_limit: RateLimit {
                per_second: sender_limit.per_second * 4.0,
                burst: sender_limit.burst * 4.0,
            },
            limiter_capacity: 1 << 16,
            quarantine: QuarantineConfig {
                strikes: 2,
                // A clean run as long as one batch it could have spoiled.
                release_after: DEFAULT_BATCH as u32,
                forget_after: Duration::from_secs(30),
                capacity: NonZeroUsize::MIN.saturating_add((1 << 12) - 1),
            },
            output_batches: QUEUE_BATCHES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot open this suite: {0}")]
    Opener(#[from] SealError),
    #[error("cannot start a worker thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// What io threads and workers share.
pub(crate) struct Shared {
    pub cfg: PoolConfig,
    pub keys: Arc<dyn KeySource>,
    pub queue: IngressQueue<Job>,
    pub dedup: Mutex<DedupTable<Waiter>>,
    pub counters: Counters,
    pub hist: Histograms,
}

/// A running pool. Dropping it closes the queue and joins the workers.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    inline: Option<Worker>,
    /// With `verify_on_ingress`: the verdict channel each ingress sends on.
    verdicts: Option<Sender<Vec<Output>>>,
}

fn nonzero(n: usize, what: &'static str) -> Result<NonZeroUsize, PoolError> {
    NonZeroUsize::new(n).ok_or(PoolError::Zero(what))
}

impl Pool {
    /// Starts `cfg.workers` workers; verdicts arrive on the returned channel in batches.
    pub fn start(
        cfg: PoolConfig,
        keys: Arc<dyn KeySource>,
    ) -> Result<(Pool, Receiver<Vec<Output>>), PoolError> {
        nonzero(cfg.batch_size, "batch_size")?;
        nonzero(cfg.queue_capacity, "queue_capacity")?;
        nonzero(cfg.output_batches, "output_batches")?;
        let dedup = DedupTable::new(
            nonzero(cfg.dedup_capacity, "dedup_capacity")?,
            // Every in-flight datagram is queued or in a worker's hands, and a worker merges
            // partly filled batches up to one batch: fewer than two batches.
            cfg.queue_capacity + cfg.workers.max(1) * 2 * cfg.batch_size,
            cfg.max_waiters,
        );
        nonzero(cfg.key_cache_capacity, "key_cache_capacity")?;
        nonzero(cfg.limiter_capacity, "limiter_capacity")?;
        let queue = IngressQueue::new(cfg.queue_capacity);
        let (tx, rx) = bounded(cfg.output_batches);
        let shared = Arc::new(Shared {
            cfg,
            keys,
            queue,
            dedup: Mutex::new(dedup),
            counters: Counters::default(),
            hist: Histograms::new(),
        });
        let mut pool = Pool {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            inline: None,
            verdicts: None,
        };
        if shared.cfg.verify_on_ingress {
            pool.verdicts = Some(tx);
            return Ok((pool, rx));
        }
        if shared.cfg.workers == 0 {
            pool.inline = Some(pool.new_worker()?);
            return Ok((pool, rx));
        }
        let cores = if shared.cfg.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        for i in 0..shared.cfg.workers {
            let w = pool.new_worker()?;
            let core = cores
                .len()
                .checked_sub(1 + i % cores.len().max(1))
                .and_then(|c| cores.get(c).copied());
            let tx = tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("{WORKER_THREAD_PREFIX}{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    w.run(tx);
                })?;
            pool.threads.push(t);
        }
        Ok((pool, rx))
    }

    fn new_worker(&self) -> Result<Worker, PoolError> {
        let cfg = &self.shared.cfg;
        let opener = Opener::new(cfg.suite, cfg.ring.clone())?;
        Ok(Worker::new(
            Arc::clone(&self.shared),
            opener,
            self.key_cache()?,
        ))
    }

    fn key_cache(&self) -> Result<KeyCache, PoolError> {
        Ok(KeyCache::new(
            Arc::clone(&self.shared.keys),
            nonzero(self.shared.cfg.key_cache_capacity, "key_cache_capacity")?,
        ))
    }

    /// A handle for one io thread.
    pub fn ingress(&self) -> Result<Ingress, PoolError> {
        let cfg = &self.shared.cfg;
        let limiter = Limiter::new(
            cfg.sender_limit,
            cfg.origin_limit,
            nonzero(cfg.limiter_capacity, "limiter_capacity")?,
        );
        let on_ingress = match &self.verdicts {
            Some(tx) => Some(OnIngress {
                worker: self.new_worker()?,
                tx: tx.clone(),
            }),
            None => None,
        };
        Ok(Ingress::new(
            Arc::clone(&self.shared),
            self.key_cache()?,
            limiter,
            on_ingress,
        ))
    }

    /// With `workers = 0`: verifies everything queued on the calling thread and appends the
    /// verdicts to `out`; returns how many were appended. Does nothing with worker threads.
    pub fn run_pending(&mut self, out: &mut Vec<Output>) -> usize {
        let before = out.len();
        if let Some(w) = &mut self.inline {
            while w.step(out) {}
        }
        out.len() - before
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        let mut st = PoolStats::from_counters(&s.counters);
        st.queue_capacity = s.queue.capacity() as u64;
        st.queue_len = s.queue.len() as u64;
        st.peak_queue_len = s.queue.peak() as u64;
        st.queue_wait_us = Percentiles::of(&s.hist.queue_wait_us);
        st.verify_batch_us = Percentiles::of(&s.hist.verify_batch_us);
        st
    }

    /// Closes the queue, lets workers drain it, and joins them.
    pub fn shutdown(&mut self) {
        self.shared.queue.close();
        for t in self.threads.drain(..) {
            // A worker that panicked has already reported it; nothing more to recover here.
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

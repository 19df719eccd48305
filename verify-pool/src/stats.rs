//! Observability: counters and HdrHistograms (Gil Tene's HdrHistogram, via the `hdrhistogram`
//! crate) of queue wait and verification time, snapshotted into a plain [`PoolStats`] the node
//! exports.
//!
//! Concurrency: counters are relaxed atomics added once per batch by their owning thread;
//! histograms sit behind mutexes taken once per batch; a snapshot may mix neighbouring batches.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::batch::Tally;
use crate::shed::ShedReason;

/// Longest duration the histograms resolve: anything slower is recorded as this.
const HISTOGRAM_MAX: Duration = Duration::from_secs(60);
/// Three significant figures: 0.1 % resolution, HdrHistogram's usual choice.
const HISTOGRAM_SIGFIG: u8 = 3;

#[derive(Default)]
pub(crate) struct Counters {
    pub verified: AtomicU64,
    pub failed: AtomicU64,
    pub unknown_at_worker: AtomicU64,
    pub verifications: AtomicU64,
    pub batches: AtomicU64,
    pub bisections: AtomicU64,
    pub singles: AtomicU64,
    pub quarantined_items: AtomicU64,
    pub popped_batches: AtomicU64,
    pub popped_items: AtomicU64,
    pub dedup_hits: AtomicU64,
    pub dedup_waits: AtomicU64,
    pub dedup_misses: AtomicU64,
    pub key_hits: AtomicU64,
    pub key_misses: AtomicU64,
    pub malformed: AtomicU64,
    pub undelivered: AtomicU64,
    pub shed: [AtomicU64; ShedReason::COUNT],
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Relaxed);
        }
    }

    pub fn add_tally(&self, t: &Tally) {
        Self::add(&self.verifications, t.verifications);
        Self::add(&self.batches, t.batches);
        Self::add(&self.bisections, t.bisections);
        Self::add(&self.singles, t.singles);
    }
}

pub(crate) struct Histograms {
    pub queue_wait_us: Mutex<Histogram<u64>>,
    pub verify_batch_us: Mutex<Histogram<u64>>,
}

impl Histograms {
    pub fn new() -> Histograms {
        let make = || {
            let max = u64::try_from(HISTOGRAM_MAX.as_micros()).unwrap_or(u64::MAX);
            // Bounds 1..max with 3 significant figures are valid by construction.
            Mutex::new(
                Histogram::new_with_bounds(1, max, HISTOGRAM_SIGFIG)
                    .expect("valid histogram bounds"),
            )
        };
        Histograms {
            queue_wait_us: make(),
            verify_batch_us: make(),
        }
    }

    /// Records `d` for `count` datagrams.
    pub fn record(h: &Mutex<Histogram<u64>>, d: Duration, count: u64) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record_n(us, count);
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    pub(crate) fn of(h: &Mutex<Histogram<u64>>) -> Percentiles {
        let h = h.lock().unwrap_or_else(|e| e.into_inner());
        // A quantile of an empty histogram scans every bucket (about 30,000 here): the node
        // asks four times a second, and the suites checked on the io thread never fill these.
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// A snapshot of the pool's counters, for export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Datagrams that verified (crypto paid here).
    pub verified: u64,
    /// Datagrams that failed verification.
    pub failed: u64,
    /// Datagrams whose sender left the roster between admission and verification.
    pub unknown_at_worker: u64,
    /// Signature checks paid, counting every item of every batch attempt.
    pub verifications: u64,
    pub batches: u64,
    pub bisections: u64,
    pub singles: u64,
    /// Datagrams routed to single verification because their origin or sender is quarantined.
    pub quarantined_items: u64,
    /// Batches popped by workers and the datagrams they held (mean batch = items / batches).
    pub popped_batches: u64,
    pub popped_items: u64,
    /// Copies of an already verified datagram (no crypto).
    pub dedup_hits: u64,
    /// Copies that waited for an identical datagram in flight (no crypto).
    pub dedup_waits: u64,
    pub dedup_misses: u64,
    pub key_cache_hits: u64,
    pub key_cache_misses: u64,
    /// Datagrams whose header did not parse.
    pub malformed: u64,
    /// Verdicts dropped because the output channel closed or the pool shut down.
    pub undelivered: u64,
    /// Shed before verification, indexed by [`ShedReason::index`].
    pub shed: [u64; ShedReason::COUNT],
    pub queue_capacity: u64,
    pub queue_len: u64,
    pub peak_queue_len: u64,
    /// Time from push to pop, per datagram.
    pub queue_wait_us: Percentiles,
    /// Time to settle one popped batch (verification, bisection, singles).
    pub verify_batch_us: Percentiles,
}

impl PoolStats {
    pub fn shed_total(&self) -> u64 {
        self.shed.iter().sum()
    }
    pub fn shed_by(&self, r: ShedReason) -> u64 {
        self.shed[r.index()]
    }

    pub(crate) fn from_counters(c: &Counters) -> PoolStats {
        let g = |a: &AtomicU64| a.load(Relaxed);
        PoolStats {
            verified: g(&c.verified),
            failed: g(&c.failed),
            unknown_at_worker: g(&c.unknown_at_worker),
            verifications: g(&c.verifications),
            batches: g(&c.batches),
            bisections: g(&c.bisections),
            singles: g(&c.singles),
            quarantined_items: g(&c.quarantined_items),
            popped_batches: g(&c.popped_batches),
            popped_items: g(&c.popped_items),
            dedup_hits: g(&c.dedup_hits),
            dedup_waits: g(&c.dedup_waits),
            dedup_misses: g(&c.dedup_misses),
            key_cache_hits: g(&c.key_hits),
            key_cache_misses: g(&c.key_misses),
            malformed: g(&c.malformed),
            undelivered: g(&c.undelivered),
            shed: std::array::from_fn(|i| g(&c.shed[i])),
            ..PoolStats::default()
        }
    }
}

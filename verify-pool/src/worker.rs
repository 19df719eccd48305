//! A verification worker, the "verify pool" stage of DESIGN.md's data path: pops batches from
//! the ingress queue, verifies them with the suite (batch plus bisection for `ed25519`; the
//! quarantine lane and other suites one by one), settles the dedup table and hands verdicts on.
//! Idle workers back off briefly, then sleep on the queue's condvar: a node at rest burns no core.
//!
//! Concurrency: each worker owns its opener, key cache, quarantine and RNG; it shares only the
//! queue (lock-free), the dedup table (one lock per batch) and the stats.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codec::{OpenError, Opener, Suite, Unverified, Verified};
use crossbeam::channel::{SendTimeoutError, Sender};
use crossbeam::utils::Backoff;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::batch::{self, Rejected, Tally, Verdict};
use crate::dedup::Digest;
use crate::keys::KeyCache;
use crate::quarantine::{Quarantine, Suspect};
use crate::stats::{Counters, Histograms};
use crate::Shared;

/// Longest sleep of an idle worker between checks for shutdown; pushes wake it at once.
pub(crate) const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// A queued datagram with what the io thread learned about it.
#[derive(Debug)]
pub(crate) struct Job {
    pub d: Unverified,
    /// Its dedup digest, when the pool deduplicates (`PoolConfig::dedup`).
    pub digest: Option<Digest>,
    pub origin: Option<IpAddr>,
}

/// An identical copy waiting for its in-flight twin's verdict.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub d: Unverified,
    pub origin: Option<IpAddr>,
}

/// What became of one datagram.
#[derive(Debug)]
pub enum Outcome {
    /// Authenticated by this pool.
    Verified(Verified),
    /// Byte-identical to a datagram that verified, so authentic, and not verified again. At the
    /// protocol level it is a replay: anti-replay decides what to do with it.
    Duplicate(Unverified),
    Rejected(Rejected),
}

/// One verdict, delivered by a worker.
#[derive(Debug)]
pub struct Output {
    /// The source address the io thread gave with the datagram.
    pub origin: Option<IpAddr>,
    pub outcome: Outcome,
    /// The verdict was taken from an identical copy instead of verifying this one.
    pub dedup_hit: bool,
}

impl Output {
    pub fn accepted(&self) -> bool {
        !matches!(self.outcome, Outcome::Rejected(_))
    }
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    opener: Opener,
    keys: KeyCache,
    quarantine: Quarantine,
    rng: StdRng,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, opener: Opener, keys: KeyCache) -> Worker {
        let quarantine = Quarantine::new(shared.cfg.quarantine);
        Worker {
            shared,
            opener,
            keys,
            quarantine,
            rng: StdRng::from_entropy(),
        }
    }

    /// Runs until the queue closes and is drained, sending each batch's verdicts on `tx`.
    pub fn run(mut self, tx: Sender<Vec<Output>>) {
        let backoff = Backoff::new();
        let mut out = Vec::new();
        loop {
            if self.step(&mut out) {
                self.send(&tx, std::mem::take(&mut out));
                backoff.reset();
            } else if self.shared.queue.is_closed() {
                return;
            } else if backoff.is_completed() {
                self.shared.queue.park(PARK_TIMEOUT);
                backoff.reset();
            } else {
                backoff.snooze();
            }
        }
    }

    fn send(&self, tx: &Sender<Vec<Output>>, mut out: Vec<Output>) {
        loop {
            match tx.send_timeout(out, PARK_TIMEOUT) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(back)) if !self.shared.queue.is_closed() => {
                    out = back
                }
                Err(SendTimeoutError::Timeout(back) | SendTimeoutError::Disconnected(back)) => {
                    Counters::add(&self.shared.counters.undelivered, back.len() as u64);
                    return;
                }
            }
        }
    }

    /// Pops up to one verification batch, settles it and appends its verdicts (and those of
    /// waiting twins) to `out`. False when the queue was empty.
    pub fn step(&mut self, out: &mut Vec<Output>) -> bool {
        let shared = Arc::clone(&self.shared);
        let (cfg, counters) = (&shared.cfg, &shared.counters);
        let Some(first) = shared.queue.pop() else {
            return false;
        };
        let popped = Instant::now();
        let (mut jobs, mut batches) = (first.items, 1);
        Histograms::record(
            &shared.hist.queue_wait_us,
            popped.saturating_duration_since(first.enqueued),
            jobs.len() as u64,
        );
        // Partly filled batches (a quiet io thread) are merged up to one verification batch.
        while jobs.len() < cfg.batch_size {
            let Some(b) = shared.queue.pop() else { break };
            Histograms::record(
                &shared.hist.queue_wait_us,
                popped.saturating_duration_since(b.enqueued),
                b.items.len() as u64,
            );
            jobs.extend(b.items);
            batches += 1;
        }
        Counters::add(&counters.popped_batches, batches);
        Counters::add(&counters.popped_items, jobs.len() as u64);
        self.verify(jobs, popped, out);
        true
    }

    /// Verifies `jobs`, taken up at `now`, settles the dedup table and appends their verdicts
    /// (and those of waiting twins) to `out`.
    pub fn verify(&mut self, jobs: Vec<Job>, now: Instant, out: &mut Vec<Output>) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        self.keys.refresh();
        let (hits, misses) = (self.keys.hits, self.keys.misses);
        let mut tally = Tally::default();
        let settled = self.settle(jobs, now, &mut tally);
        Counters::add(&counters.key_hits, self.keys.hits - hits);
        Counters::add(&counters.key_misses, self.keys.misses - misses);
        counters.add_tally(&tally);
        Histograms::record(&shared.hist.verify_batch_us, now.elapsed(), 1);

        let (mut verified, mut failed, mut unknown) = (0, 0, 0);
        let mut dedup = shared
            .cfg
            .dedup
            .then(|| shared.dedup.lock().unwrap_or_else(|e| e.into_inner()));
        // One allocation for this batch's verdicts and its waiting twins'.
        let twins: usize = match dedup.as_ref() {
            Some(table) => settled
                .iter()
                .filter_map(|(d, _, _)| d.as_ref())
                .map(|d| table.waiting(d))
                .sum(),
            None => 0,
        };
        out.reserve(settled.len() + twins);
        for (digest, origin, verdict) in settled {
            let ok = verdict.is_ok();
            match &verdict {
                Ok(_) => verified += 1,
                Err(r) if r.error == OpenError::BadAuth => failed += 1,
                Err(_) => unknown += 1,
            }
            if let (Some(d), Some(table)) = (digest, dedup.as_mut()) {
                table.finish(&d, ok, |w| {
                    let outcome = match &verdict {
                        Ok(_) => Outcome::Duplicate(w.d),
                        Err(r) => Outcome::Rejected(*r),
                    };
                    out.push(Output {
                        origin: w.origin,
                        outcome,
                        dedup_hit: true,
                    });
                });
            }
            let outcome = match verdict {
                Ok(v) => Outcome::Verified(v),
                Err(r) => Outcome::Rejected(r),
            };
            out.push(Output {
                origin,
                outcome,
                dedup_hit: false,
            });
        }
        drop(dedup);
        Counters::add(&counters.verified, verified);
        Counters::add(&counters.failed, failed);
        Counters::add(&counters.unknown_at_worker, unknown);
    }

    /// Verdicts for `jobs`: unknown senders refused, quarantined suspects and non-batchable
    /// suites verified alone, the rest in verification batches.
    fn settle(
        &mut self,
        jobs: Vec<Job>,
        now: Instant,
        tally: &mut Tally,
    ) -> Vec<(Option<Digest>, Option<IpAddr>, Verdict)> {
        let cfg = &self.shared.cfg;
        let batchable = cfg.batch && cfg.suite == Suite::Ed25519;
        let mut settled = Vec::with_capacity(jobs.len());
        let (mut lane, mut lane_meta) = (
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
        );
        let mut quarantined = 0;
        for Job { d, digest, origin } in jobs {
            let sender = d.header().sender;
            if !self.keys.resolve(sender) {
                let header = *d.header();
                settled.push((
                    digest,
                    origin,
                    Err(Rejected {
                        header,
                        error: OpenError::UnknownSender(sender),
                    }),
                ));
            } else if batchable && !self.quarantine.holds(Suspect::of(sender, origin), now) {
                lane.push(d);
                lane_meta.push((digest, origin));
            } else {
                quarantined += u64::from(batchable);
                settled.push((
                    digest,
                    origin,
                    batch::single(d, &self.keys, &mut self.opener, tally),
                ));
            }
        }
        Counters::add(&self.shared.counters.quarantined_items, quarantined);
        let mut lane_meta = lane_meta.into_iter();
        while !lane.is_empty() {
            let rest = lane.split_off(lane.len().min(cfg.batch_size));
            let verdicts = batch::settle(
                std::mem::replace(&mut lane, rest),
                &self.keys,
                &mut self.rng,
                tally,
            );
            settled.extend(
                lane_meta
                    .by_ref()
                    .zip(verdicts)
                    .map(|((digest, origin), v)| (digest, origin, v)),
            );
        }
        for (_, origin, v) in &settled {
            if let Err(Rejected {
                header,
                error: OpenError::BadAuth,
            }) = v
            {
                self.quarantine
                    .record(Suspect::of(header.sender, *origin), false, now);
            } else if let Ok(v) = v {
                self.quarantine
                    .record(Suspect::of(v.header().sender, *origin), true, now);
            }
        }
        settled
    }
}

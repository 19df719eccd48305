//! The io thread's side of the pool: the cheap checks that run before any crypto, in DESIGN.md's
//! order (parse, admitted sender, per-origin and per-sender rate, dedup lookup), then the batch
//! push. Every datagram gets an immediate [`Admit`], so the caller always learns what was shed
//! and why.
//!
//! With [`PoolConfig::verify_on_ingress`](crate::PoolConfig::verify_on_ingress) the io thread
//! also verifies what it admitted and hands the verdicts straight to the consumer: no queue and
//! no worker thread sit between them.
//!
//! Concurrency: one `Ingress` per io thread (`&mut self`, its own key cache, buckets and, when
//! verifying on ingress, its own worker); the dedup table is locked once per
//! [`Ingress::submit`] call, the queue is lock-free.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use codec::{Unverified, WireError};
use crossbeam::channel::Sender;

use crate::dedup::{digest, Digest, Seen};
use crate::keys::KeyCache;
use crate::shed::{heavy, Limiter, ShedReason, PRESSURE};
use crate::stats::Counters;
use crate::worker::{Job, Output, Waiter, Worker};
use crate::Shared;

/// A received datagram: its buffer (moved, never copied) and the address it came from.
#[derive(Debug)]
pub struct Datagram {
    pub buf: BytesMut,
    pub origin: Option<IpAddr>,
}

/// What the pool did with a submitted datagram.
#[derive(Debug)]
pub enum Admit {
    /// Queued for verification (verifying on ingress: verified and handed on); its verdict
    /// comes on the verdict channel.
    Queued,
    /// An identical datagram is in flight; this copy's verdict comes with it (`dedup_hit`).
    Waiting,
    /// Byte-identical to a datagram that already verified: authentic, not verified again, and
    /// a replay at the protocol level (anti-replay decides).
    Duplicate(Unverified),
    /// Dropped before verification.
    Shed(ShedReason),
    /// Verified on ingress, but the consumer's channel had no room within the wait: dropped
    /// (counted as `undelivered`, as the workers count the same loss).
    Undelivered,
    /// The header does not parse (or is another suite's or cluster's).
    Malformed(WireError),
}

struct Candidate {
    at: usize,
    d: Unverified,
    digest: Option<Digest>,
    origin: Option<IpAddr>,
    sender_fill: f64,
}

/// How long an io thread verifying on ingress waits for room in a full verdict channel before
/// it sheds the batch. Long enough to ride out the consumer being descheduled: 32 nodes share 2
/// cores in the cluster benchmark, and with a 10 ms bound one run in three rejoined a restarted
/// node in 22 s instead of 0.4 s, as a shed push-pull reply waiting for the next sync would.
/// Short enough that a consumer shutting down (it joins the io threads before it drops the
/// channel) is not held up for long.
pub(crate) const ROOM_WAIT: Duration = Duration::from_millis(250);

/// Verification on the io thread: its own worker, and the consumer's verdict channel, whose
/// room stands in for the queue's.
///
/// A full channel means the consumer, not verification, is the bottleneck. Then the io thread
/// waits for room instead of shedding at once: shedding would spend the cores on receiving and
/// discarding (receive livelock) while the consumer starves for them, whereas a waiting io
/// thread leaves the excess in the socket buffer, where the kernel drops it for free (counted
/// as kernel drops) if the overload lasts. What admission and the per-sender and per-address
/// buckets refuse is still shed first, and they keep the senders fair; the queue-pressure
/// shedding (duplicates, heavy senders) does not apply, since no queue of verification work
/// builds up here.
pub(crate) struct OnIngress {
    pub worker: Worker,
    pub tx: Sender<Vec<Output>>,
}

impl OnIngress {
    /// Verifies `jobs` and hands the verdicts on; returns how many were verified but found no
    /// room downstream (the core's inbox full past [`ROOM_WAIT`]) and were dropped.
    fn verify(&mut self, jobs: Vec<Job>, now: Instant) -> u64 {
        let mut out = Vec::with_capacity(jobs.len());
        self.worker.verify(jobs, now, &mut out);
        if out.is_empty() {
            return 0;
        }
        match self.tx.send_timeout(out, ROOM_WAIT) {
            Ok(()) => 0,
            Err(e) => e.into_inner().len() as u64,
        }
    }
}

pub struct Ingress {
    shared: Arc<Shared>,
    keys: KeyCache,
    limiter: Limiter,
    on_ingress: Option<OnIngress>,
}

impl Ingress {
    pub(crate) fn new(
        shared: Arc<Shared>,
        keys: KeyCache,
        limiter: Limiter,
        on_ingress: Option<OnIngress>,
    ) -> Ingress {
        Ingress {
            shared,
            keys,
            limiter,
            on_ingress,
        }
    }

    /// Datagrams the queue can still take.
    pub fn room(&self) -> usize {
        self.shared.queue.capacity() - self.shared.queue.len().min(self.shared.queue.capacity())
    }

    /// Admits a batch of received datagrams at time `now`; one [`Admit`] per datagram, in order.
    pub fn submit(
        &mut self,
        datagrams: impl IntoIterator<Item = Datagram>,
        now: Instant,
    ) -> Vec<Admit> {
        let shared = Arc::clone(&self.shared);
        let (cfg, counters, queue) = (&shared.cfg, &shared.counters, &shared.queue);
        let mut shed = [0u64; ShedReason::COUNT];
        let mut malformed = 0;
        if self.keys.refresh() {
            shared
                .dedup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear_verified();
        }
        let (hits, misses) = (self.keys.hits, self.keys.misses);

        let datagrams = datagrams.into_iter();
        let mut admits = Vec::with_capacity(datagrams.size_hint().0);
        let mut candidates = Vec::with_capacity(datagrams.size_hint().0);
        for Datagram { buf, origin } in datagrams {
            let at = admits.len();
            let d = match Unverified::parse(buf, cfg.suite, cfg.cluster_tag) {
                Ok(d) => d,
                Err(e) => {
                    malformed += 1;
                    admits.push(Admit::Malformed(e));
                    continue;
                }
            };
            let sender = d.header().sender;
            let admitted = if self.keys.resolve(sender) {
                self.limiter.admit(sender, origin, now)
            } else {
                Err(ShedReason::UnknownSender)
            };
            match admitted {
                Ok(sender_fill) => {
                    admits.push(Admit::Queued);
                    candidates.push(Candidate {
                        at,
                        digest: cfg.dedup.then(|| digest(d.raw())),
                        d,
                        origin,
                        sender_fill,
                    });
                }
                Err(r) => {
                    shed[r.index()] += 1;
                    admits.push(Admit::Shed(r));
                }
            }
        }
        Counters::add(&counters.key_hits, self.keys.hits - hits);
        Counters::add(&counters.key_misses, self.keys.misses - misses);

        let (fill, granted) = match &self.on_ingress {
            Some(_) => (0.0, candidates.len()),
            None => (
                queue.len() as f64 / queue.capacity() as f64,
                queue.reserve(candidates.len()),
            ),
        };
        let pressured = fill > PRESSURE;
        let mut jobs = Vec::with_capacity(granted);
        let mut jobs_at = Vec::with_capacity(granted);
        let (mut hits, mut waits, mut misses) = (0, 0, 0);
        let mut dedup = cfg
            .dedup
            .then(|| shared.dedup.lock().unwrap_or_else(|e| e.into_inner()));
        for c in candidates {
            let seen = match (&c.digest, dedup.as_mut()) {
                (Some(d), Some(table)) => table.check(d),
                _ => Seen::New,
            };
            let shed_as = match seen {
                Seen::Verified | Seen::InFlight if pressured => Some(ShedReason::Duplicate),
                Seen::Verified => {
                    hits += 1;
                    admits[c.at] = Admit::Duplicate(c.d);
                    None
                }
                Seen::InFlight => {
                    let waited = match (dedup.as_mut(), c.digest) {
                        (Some(table), Some(d)) => table
                            .wait(
                                &d,
                                Waiter {
                                    d: c.d,
                                    origin: c.origin,
                                },
                            )
                            .is_ok(),
                        _ => false,
                    };
                    if waited {
                        waits += 1;
                        admits[c.at] = Admit::Waiting;
                        None
                    } else {
                        Some(ShedReason::Duplicate)
                    }
                }
                Seen::New if heavy(fill, c.sender_fill) => Some(ShedReason::HeavySender),
                Seen::New
                    if jobs.len() == granted
                        || match (c.digest, dedup.as_mut()) {
                            (Some(d), Some(table)) => !table.begin(d),
                            _ => false,
                        } =>
                {
                    Some(ShedReason::QueueFull)
                }
                Seen::New => {
                    misses += 1;
                    jobs_at.push(c.at);
                    jobs.push(Job {
                        d: c.d,
                        digest: c.digest,
                        origin: c.origin,
                    });
                    None
                }
            };
            if let Some(r) = shed_as {
                shed[r.index()] += 1;
                admits[c.at] = Admit::Shed(r);
            }
        }
        drop(dedup);
        if let Some(v) = &mut self.on_ingress {
            let dropped = v.verify(jobs, now);
            if dropped > 0 {
                Counters::add(&self.shared.counters.undelivered, dropped);
                for at in jobs_at {
                    admits[at] = Admit::Undelivered;
                }
            }
        } else {
            queue.unreserve(granted - jobs.len());
            while !jobs.is_empty() {
                let rest = jobs.split_off(jobs.len().min(cfg.batch_size));
                queue.push_reserved(std::mem::replace(&mut jobs, rest), now);
            }
        }

        Counters::add(&counters.dedup_hits, hits);
        Counters::add(&counters.dedup_waits, waits);
        Counters::add(&counters.dedup_misses, misses);
        Counters::add(&counters.malformed, malformed);
        for (c, n) in counters.shed.iter().zip(shed) {
            Counters::add(c, n);
        }
        admits
    }
}

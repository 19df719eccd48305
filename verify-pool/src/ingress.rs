//! The io thread's side of the pool: the cheap checks that run before any crypto, in DESIGN.md's
//! order (parse, admitted sender, per-origin and per-sender rate, dedup lookup), then the batch
//! push. Every datagram gets an immediate [`Admit`], so the caller always learns what was shed
//! and why.
//!
//! Concurrency: one `Ingress` per io thread (`&mut self`, its own key cache and buckets); the
//! dedup table is locked once per [`Ingress::submit`] call, the queue is lock-free.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use codec::{Unverified, WireError};

use crate::dedup::{digest, Digest, Seen};
use crate::keys::KeyCache;
use crate::shed::{heavy, Limiter, ShedReason, PRESSURE};
use crate::stats::Counters;
use crate::worker::{Job, Waiter};
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
    /// Queued for verification; its verdict comes from a worker.
    Queued,
    /// An identical datagram is in flight; this copy's verdict comes with it (`dedup_hit`).
    Waiting,
    /// Byte-identical to a datagram that already verified: authentic, not verified again, and
    /// a replay at the protocol level (anti-replay decides).
    Duplicate(Unverified),
    /// Dropped before verification.
    Shed(ShedReason),
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

pub struct Ingress {
    shared: Arc<Shared>,
    keys: KeyCache,
    limiter: Limiter,
}

impl Ingress {
    pub(crate) fn new(shared: Arc<Shared>, keys: KeyCache, limiter: Limiter) -> Ingress {
        Ingress {
            shared,
            keys,
            limiter,
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

        let fill = queue.len() as f64 / queue.capacity() as f64;
        let pressured = fill > PRESSURE;
        let granted = queue.reserve(candidates.len());
        let mut jobs = Vec::with_capacity(granted);
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
        queue.unreserve(granted - jobs.len());
        while !jobs.is_empty() {
            let rest = jobs.split_off(jobs.len().min(cfg.batch_size));
            queue.push_reserved(std::mem::replace(&mut jobs, rest), now);
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

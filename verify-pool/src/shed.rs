//! Admission before any crypto: per-sender and per-origin token buckets (the classic
//! rate/burst bucket, as in RFC 2697's committed bucket), and the overload policy that sheds the
//! least valuable work first: unknown senders always, then duplicates once the queue is under
//! pressure, then the heaviest senders (those that drained most of their bucket), graded with
//! the queue's fill, and finally anything that finds the queue full.
//!
//! "Sender" is the member id the header claims (unauthenticated until verified); "origin" is the
//! source address the io thread received from. A sender's bucket is kept per (claimed id,
//! source address): a forger elsewhere claiming an honest member's id spends its own bucket
//! (and its address's), never the honest member's, so a flood of forgeries cannot starve the
//! member it impersonates. Time is an argument: deterministic in tests.
//!
//! Concurrency: a [`Limiter`] belongs to one io thread (`&mut self`); nothing here is shared.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Instant;

use codec::MemberId;
use lru::LruCache;

use crate::TableHasher;

/// Why a datagram was dropped before verification. Ordered from least valuable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The claimed sender has no admissible key on the roster: nothing could verify it.
    UnknownSender,
    /// The source address exceeded its token bucket.
    OriginRate,
    /// The claimed sender exceeded its token bucket.
    SenderRate,
    /// A copy of a datagram already verified or in flight, dropped under pressure (or past the
    /// waiter bound).
    Duplicate,
    /// The queue is under pressure and this sender has used more of its bucket than others.
    HeavySender,
    /// No room left in the queue.
    QueueFull,
}

impl ShedReason {
    pub const ALL: [ShedReason; 6] = [
        ShedReason::UnknownSender,
        ShedReason::OriginRate,
        ShedReason::SenderRate,
        ShedReason::Duplicate,
        ShedReason::HeavySender,
        ShedReason::QueueFull,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub const fn name(self) -> &'static str {
        match self {
            ShedReason::UnknownSender => "unknown_sender",
            ShedReason::OriginRate => "origin_rate",
            ShedReason::SenderRate => "sender_rate",
            ShedReason::Duplicate => "duplicate",
            ShedReason::HeavySender => "heavy_sender",
            ShedReason::QueueFull => "queue_full",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Queue fill above which duplicates are shed and heavy senders start to be.
pub const PRESSURE: f64 = 0.5;

/// Whether a new (non-duplicate) datagram is shed as [`ShedReason::HeavySender`]: above
/// [`PRESSURE`], a sender must keep a share of its bucket that grows linearly with the queue's
/// fill, from nothing at `PRESSURE` to a full bucket at a full queue, so the senders that spent
/// most go first and a light sender still gets through until the very end.
pub fn heavy(queue_fill: f64, sender_bucket_fill: f64) -> bool {
    queue_fill > PRESSURE && sender_bucket_fill < (queue_fill - PRESSURE) / (1.0 - PRESSURE)
}

/// Tokens per second and bucket depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    /// No limit: every bucket always full.
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: f64::INFINITY,
        burst: f64::INFINITY,
    };

    /// Unlimited buckets are never stored: nothing to remember about them.
    pub fn is_unlimited(&self) -> bool {
        self.burst.is_infinite()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: limit.burst,
            last: now,
        }
    }

    /// Refills, then takes one token if there is one; returns the fill left (0..=1) or None.
    fn take(&mut self, limit: RateLimit, now: Instant) -> Option<f64> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * limit.per_second).min(limit.burst);
        if self.tokens < 1.0 {
            return None;
        }
        self.tokens -= 1.0;
        Some(if limit.burst > 0.0 {
            self.tokens / limit.burst
        } else {
            0.0
        })
    }
}

/// Per-sender and per-origin buckets, each table LRU-bounded. An evicted bucket comes back
/// full; the bound is sized above the roster so only origins (addresses) ever churn.
pub struct Limiter {
    sender_limit: RateLimit,
    origin_limit: RateLimit,
    senders: LruCache<(MemberId, Option<IpAddr>), Bucket, TableHasher>,
    origins: LruCache<IpAddr, Bucket, TableHasher>,
}

impl Limiter {
    pub fn new(sender_limit: RateLimit, origin_limit: RateLimit, capacity: NonZeroUsize) -> Self {
        Limiter {
            sender_limit,
            origin_limit,
            senders: crate::lru_table(capacity),
            origins: crate::lru_table(capacity),
        }
    }

    /// Charges one datagram to its origin and sender; returns the sender's bucket fill left.
    pub fn admit(
        &mut self,
        sender: MemberId,
        origin: Option<IpAddr>,
        now: Instant,
    ) -> Result<f64, ShedReason> {
        if let Some(ip) = origin.filter(|_| !self.origin_limit.is_unlimited()) {
            let limit = self.origin_limit;
            let b = self
                .origins
                .get_or_insert_mut(ip, || Bucket::full(limit, now));
            b.take(limit, now).ok_or(ShedReason::OriginRate)?;
        }
        if self.sender_limit.is_unlimited() {
            return Ok(1.0);
        }
        let limit = self.sender_limit;
        let b = self
            .senders
            .get_or_insert_mut((sender, origin), || Bucket::full(limit, now));
        b.take(limit, now).ok_or(ShedReason::SenderRate)
    }

    pub fn tables_len(&self) -> usize {
        self.senders.len() + self.origins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_with_time() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 10.0,
            burst: 2.0,
        };
        let mut l = Limiter::new(
            limit,
            RateLimit::UNLIMITED,
            NonZeroUsize::MIN.saturating_add(7),
        );
        assert_eq!(l.admit(1, None, t0), Ok(0.5));
        assert_eq!(l.admit(1, None, t0), Ok(0.0));
        assert_eq!(l.admit(1, None, t0), Err(ShedReason::SenderRate));
        assert_eq!(l.admit(2, None, t0), Ok(0.5), "buckets are per sender");
        assert!(l.admit(1, None, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_forger_elsewhere_spends_its_own_bucket() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut l = Limiter::new(limit, RateLimit::UNLIMITED, NonZeroUsize::new(8).unwrap());
        let (honest, forger) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 9])),
        );
        for _ in 0..2 {
            assert!(l.admit(7, forger, t0).is_ok());
        }
        assert_eq!(l.admit(7, forger, t0), Err(ShedReason::SenderRate));
        assert!(
            l.admit(7, honest, t0).is_ok(),
            "member 7's own bucket is untouched"
        );
    }

    #[test]
    fn origin_bucket_stops_a_forger_rotating_claimed_senders() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit::UNLIMITED,
            RateLimit {
                per_second: 1.0,
                burst: 3.0,
            },
            NonZeroUsize::MIN.saturating_add(7),
        );
        let ip: IpAddr = [10, 0, 0, 9].into();
        let shed = (0..10)
            .filter(|s| l.admit(*s, Some(ip), t0).is_err())
            .count();
        assert_eq!(shed, 7);
    }

    #[test]
    fn tables_stay_bounded() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 1.0,
                burst: 1.0,
            },
            RateLimit {
                per_second: 1.0,
                burst: 1.0,
            },
            NonZeroUsize::MIN.saturating_add(15),
        );
        for i in 0..10_000u32 {
            let _ = l.admit(i, Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(l.tables_len() <= 32);
    }

    #[test]
    fn heavier_senders_go_first_as_the_queue_fills() {
        assert!(!heavy(0.4, 0.0), "no pressure, no shedding");
        assert!(heavy(0.6, 0.1) && !heavy(0.6, 0.3));
        assert!(heavy(0.9, 0.7) && !heavy(0.9, 0.9));
    }
}

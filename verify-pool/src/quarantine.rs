//! The quarantine lane: suspects whose datagrams keep failing verification are checked one at a
//! time, so a trickle of forgeries cannot make every batch fail (each failed batch costs a
//! bisection, roughly doubling its price; see Pastuszak et al., PKC 2000, on the cost of finding
//! bad signatures in batches). A suspect is blamed by source address when the io
//! thread knows it, since that is what a forger controls, and by claimed member id otherwise;
//! blaming the claimed id when an address is known would let anyone push any honest member into
//! the slow lane. Quarantine only changes the path, never the verdict.
//!
//! A suspect enters after `strikes` failures (strikes older than `forget_after` are forgiven) and
//! leaves after `release_after` consecutive successes, or once `forget_after` passes without a
//! failure.
//!
//! Concurrency: one per worker (`&mut self`); workers learn independently.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use codec::MemberId;
use lru::LruCache;

use crate::TableHasher;

/// Who is blamed for a failed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suspect {
    Origin(IpAddr),
    Sender(MemberId),
}

impl Suspect {
    pub fn of(sender: MemberId, origin: Option<IpAddr>) -> Suspect {
        origin.map_or(Suspect::Sender(sender), Suspect::Origin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuarantineConfig {
    /// Failures that put a suspect in quarantine: one bad datagram can be a corrupted packet,
    /// a second is a pattern.
    pub strikes: u32,
    /// Consecutive successes that release it.
    pub release_after: u32,
    /// Failures older than this are forgiven; a quarantined suspect this quiet is released.
    pub forget_after: Duration,
    /// Suspects remembered (LRU).
    pub capacity: NonZeroUsize,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    strikes: u32,
    clean: u32,
    last_failure: Instant,
}

pub struct Quarantine {
    cfg: QuarantineConfig,
    records: LruCache<Suspect, Record, TableHasher>,
}

impl Quarantine {
    pub fn new(cfg: QuarantineConfig) -> Self {
        Quarantine {
            cfg,
            records: crate::lru_table(cfg.capacity),
        }
    }

    /// Whether the suspect's datagrams must take the single-verification lane.
    pub fn holds(&mut self, s: Suspect, now: Instant) -> bool {
        match self.records.peek(&s) {
            None => false,
            Some(r) if now.saturating_duration_since(r.last_failure) >= self.cfg.forget_after => {
                self.records.pop(&s);
                false
            }
            Some(r) => r.strikes >= self.cfg.strikes,
        }
    }

    /// Records a verdict. Suspects with no failure on record are not stored.
    pub fn record(&mut self, s: Suspect, ok: bool, now: Instant) {
        if ok {
            if let Some(r) = self.records.peek_mut(&s) {
                r.clean += 1;
                if r.clean >= self.cfg.release_after {
                    self.records.pop(&s);
                }
            }
            return;
        }
        let forget = self.cfg.forget_after;
        let r = self.records.get_or_insert_mut(s, || Record {
            strikes: 0,
            clean: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(r.last_failure) >= forget {
            r.strikes = 0;
        }
        r.strikes += 1;
        r.clean = 0;
        r.last_failure = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QuarantineConfig {
        QuarantineConfig {
            strikes: 2,
            release_after: 3,
            forget_after: Duration::from_secs(10),
            capacity: NonZeroUsize::MIN.saturating_add(3),
        }
    }

    #[test]
    fn enters_after_strikes_and_leaves_after_a_clean_run() {
        let t = Instant::now();
        let mut q = Quarantine::new(cfg());
        let s = Suspect::of(4, Some([10, 0, 0, 1].into()));
        q.record(s, false, t);
        assert!(!q.holds(s, t));
        q.record(s, false, t);
        assert!(q.holds(s, t));
        assert!(
            !q.holds(Suspect::Sender(4), t),
            "blamed by address, not by claimed id"
        );
        q.record(s, true, t);
        q.record(s, true, t);
        q.record(s, false, t);
        q.record(s, true, t);
        q.record(s, true, t);
        assert!(q.holds(s, t), "a failure restarts the clean run");
        q.record(s, true, t);
        assert!(!q.holds(s, t));
    }

    #[test]
    fn time_releases_and_forgives() {
        let t = Instant::now();
        let mut q = Quarantine::new(cfg());
        let s = Suspect::Sender(9);
        q.record(s, false, t);
        q.record(s, false, t);
        assert!(q.holds(s, t + Duration::from_secs(9)));
        assert!(!q.holds(s, t + Duration::from_secs(10)));
        q.record(s, false, t + Duration::from_secs(20));
        q.record(s, false, t + Duration::from_secs(40));
        assert!(
            !q.holds(s, t + Duration::from_secs(40)),
            "old strike forgiven"
        );
    }

    #[test]
    fn bounded() {
        let t = Instant::now();
        let mut q = Quarantine::new(cfg());
        for i in 0..100 {
            q.record(Suspect::Sender(i), false, t);
        }
        assert!(q.records.len() <= 4);
    }
}

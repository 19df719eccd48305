//! Lifeguard's local health multiplier (LHM): a member that misses acks or nacks it expected is
//! more likely slow itself than surrounded by failures, so it stretches its own probe interval and
//! timeout instead of suspecting others early (Lifeguard, Dadgar et al. 2018, §IV.A; memberlist
//! `awareness.go`).
//! Concurrency: owned by one `Core`; not shared.

use std::time::Duration;

pub(crate) struct Awareness {
    score: u32,
    max: u32,
}

impl Awareness {
    pub fn new(max: u32) -> Awareness {
        Awareness { score: 0, max }
    }

    /// Applies a change in health: positive when an expected answer was missing or we had to
    /// refute a suspicion of ourselves, negative when a probe succeeded.
    pub fn apply(&mut self, delta: i64) {
        self.score = (self.score as i64 + delta).clamp(0, self.max as i64) as u32;
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// `d` stretched by the current health: `(score + 1) · d`.
    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

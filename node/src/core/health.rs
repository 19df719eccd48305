//! Lifeguard's local health multiplier (LHM): a member that misses acks or nacks it expected is
//! more likely slow itself than surrounded by failures, so it stretches its own probe interval and
//! timeout instead of suspecting others early (Lifeguard, Dadgar et al. 2018, §IV.A; memberlist
//! `awareness.go`).
//! Being accused is Lifeguard's third signal, and the one an admitted liar can forge: with f
//! Byzantine members tolerated, an accusation counts only once f + 1 distinct members made one
//! recently, so at least one of them is honest (Bracha and Toueg 1985's f + 1). Otherwise one
//! liar accusing everyone stretches every member's probes to the maximum and slows the
//! detection of real crashes cluster-wide.
//! Concurrency: owned by one `Core`; not shared.

use std::collections::BTreeMap;
use std::time::Duration;

use codec::MemberId;

use super::time::Millis;

pub(crate) struct Awareness {
    score: u32,
    max: u32,
    /// Distinct recent accusers needed before an accusation counts: f + 1.
    credible: usize,
    /// How long an accusation stays recent: the longest an honest suspicion lasts.
    memory: Duration,
    accusers: BTreeMap<MemberId, Millis>,
}

impl Awareness {
    pub fn new(max: u32, tolerate: u32, memory: Duration) -> Awareness {
        Awareness {
            score: 0,
            max,
            credible: tolerate as usize + 1,
            memory,
            accusers: BTreeMap::new(),
        }
    }

    /// Applies a change in health: positive when an expected answer was missing, negative when
    /// a probe succeeded.
    pub fn apply(&mut self, delta: i64) {
        self.score = (self.score as i64 + delta).clamp(0, self.max as i64) as u32;
    }

    /// We refute an accusation by `by` (one member's statement, or a certificate's witnesses):
    /// it hints that we are the slow one once enough distinct members have accused us lately.
    /// The caller passes only admitted members, so the map is bounded by the roster.
    pub fn accused(&mut self, now: Millis, by: &[MemberId]) {
        let memory = self.memory;
        self.accusers.retain(|_, at| now.since(*at) < memory);
        for &who in by {
            self.accusers.insert(who, now);
        }
        if self.accusers.len() >= self.credible {
            self.apply(1);
        }
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// `d` stretched by the current health: `(score + 1) · d`.
    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY: Duration = Duration::from_secs(2);

    #[test]
    fn without_tolerance_every_accusation_counts() {
        let mut a = Awareness::new(8, 0, MEMORY);
        for t in 0..3 {
            a.accused(Millis(t), &[7]);
        }
        assert_eq!(a.score(), 3);
    }

    #[test]
    fn f_accusers_alone_cannot_raise_it() {
        let mut a = Awareness::new(8, 1, MEMORY);
        for t in 0..100 {
            a.accused(Millis(t * 50), &[7]);
        }
        assert_eq!(a.score(), 0, "one liar at f = 1");
        a.accused(Millis(5_000), &[3]);
        assert_eq!(a.score(), 1, "a second, distinct accuser is credible");
        // Both forgotten after the memory: the liar alone again.
        a.accused(Millis(5_000) + MEMORY, &[7]);
        assert_eq!(a.score(), 1);
    }

    #[test]
    fn a_certificate_carries_its_witnesses() {
        let mut a = Awareness::new(8, 1, MEMORY);
        a.accused(Millis(0), &[1, 2, 3]);
        assert_eq!(a.score(), 1);
    }
}

//! Suspicions in progress: when each suspected member is declared dead. The timeout starts at
//! Lifeguard's maximum and shrinks towards its minimum as distinct members independently confirm
//! the suspicion (Lifeguard, Dadgar et al. 2018, §IV.B; memberlist `suspicion.go`).
//! Kept beside the membership, not in it: only suspects pay for timers and confirmations.
//! Concurrency: owned by one `Core`; not shared.

use std::collections::BTreeMap;
use std::time::Duration;

use codec::MemberId;

use super::config::Config;
use super::time::Millis;

pub(crate) struct Suspicion {
    pub incarnation: u64,
    start: Millis,
    /// Cluster size when the suspicion began; fixes its min and max timeouts.
    n: usize,
    /// Distinct members other than us that also suspect it (at most K are kept: more do not
    /// shorten the timeout further).
    confirmers: Vec<MemberId>,
    pub deadline: Millis,
}

#[derive(Default)]
pub(crate) struct Suspicions {
    by_member: BTreeMap<u32, Suspicion>,
}

impl Suspicions {
    /// Starts (or restarts, at a newer incarnation) the suspicion of member `idx`. `accuser` is
    /// the origin of the Suspect statement when it is not us: it already counts as a confirmation.
    pub fn start(
        &mut self,
        cfg: &Config,
        now: Millis,
        idx: u32,
        incarnation: u64,
        n: usize,
        accuser: Option<MemberId>,
    ) {
        let mut s = Suspicion {
            incarnation,
            start: now,
            n,
            confirmers: Vec::new(),
            deadline: now,
        };
        s.confirmers.extend(accuser);
        s.deadline = now + timeout(cfg, &s);
        self.by_member.insert(idx, s);
    }

    /// Counts `origin` as an independent confirmation; returns whether it was new (then the
    /// deadline moved closer and the confirmation is worth re-gossiping).
    pub fn confirm(&mut self, cfg: &Config, idx: u32, incarnation: u64, origin: MemberId) -> bool {
        let Some(s) = self.by_member.get_mut(&idx) else {
            return false;
        };
        let k = cfg.expected_confirmations(s.n) as usize;
        if s.incarnation != incarnation || s.confirmers.len() >= k || s.confirmers.contains(&origin)
        {
            return false;
        }
        s.confirmers.push(origin);
        s.deadline = s.start + timeout(cfg, s);
        true
    }

    pub fn remove(&mut self, idx: u32) {
        self.by_member.remove(&idx);
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.by_member.values().map(|s| s.deadline).min()
    }

    /// Removes and returns the suspicions whose deadline has passed, in member order.
    pub fn expire(&mut self, now: Millis) -> Vec<(u32, u64)> {
        let due: Vec<(u32, u64)> = self
            .by_member
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(i, s)| (*i, s.incarnation))
            .collect();
        for (i, _) in &due {
            self.by_member.remove(i);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_member.len()
    }
}

fn timeout(cfg: &Config, s: &Suspicion) -> Duration {
    cfg.suspicion_timeout(s.n, s.confirmers.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_shrink_the_timeout_to_its_minimum() {
        let cfg = Config::default();
        let (n, t0) = (100, Millis(1_000));
        let mut s = Suspicions::default();
        s.start(&cfg, t0, 7, 3, n, None);
        assert_eq!(s.next_deadline(), Some(t0 + cfg.suspicion_max(n)));
        assert!(s.confirm(&cfg, 7, 3, 1));
        assert!(!s.confirm(&cfg, 7, 3, 1), "one member confirms once");
        assert!(
            !s.confirm(&cfg, 7, 4, 2),
            "another incarnation is another suspicion"
        );
        let one = s.next_deadline();
        assert!(s.confirm(&cfg, 7, 3, 2) && s.confirm(&cfg, 7, 3, 3));
        assert!(
            !s.confirm(&cfg, 7, 3, 4),
            "beyond K confirmations change nothing"
        );
        assert!(s.next_deadline() < one);
        assert_eq!(s.next_deadline(), Some(t0 + cfg.suspicion_min(n)));
        assert!(s.expire(t0).is_empty());
        assert_eq!(s.expire(t0 + cfg.suspicion_min(n)), vec![(7, 3)]);
        assert_eq!(s.len(), 0);
    }
}

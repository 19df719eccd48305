//! Each core's view of every roster member: incarnation and state, plus the set of live members
//! that probing and gossip sample from.
//! Reference: SWIM (Das, Gupta, Motivala 2002) §4.2 for incarnation precedence; memberlist
//! `state.go` (`aliveNode`, `suspectNode`, `deadNode`) for which update overrides which.
//! Concurrency: owned by one `Core`; not shared.

use codec::MemberState;
use rand::Rng;

/// One member as this core sees it. Kept at 16 bytes: the simulator holds n × n of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub incarnation: u64,
    /// Position in `Membership::live`, `NOT_LIVE` when absent.
    live_pos: u32,
    /// `None` until anything is heard about the member.
    pub state: Option<MemberState>,
}

const NOT_LIVE: u32 = u32::MAX;

const UNKNOWN: Entry = Entry {
    incarnation: 0,
    live_pos: NOT_LIVE,
    state: None,
};

/// Whether a member in `state` is probed, gossiped to and counted in n.
pub(crate) fn is_live(state: Option<MemberState>) -> bool {
    matches!(state, Some(MemberState::Alive | MemberState::Suspect))
}

/// Precedence at equal incarnation: a member's own Left is final, Dead beats Suspect, Suspect
/// beats Alive; a higher incarnation beats everything (that is how a member refutes or restarts).
fn rank(s: MemberState) -> u8 {
    match s {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

/// Whether `(incarnation, state)` overrides what `cur` holds.
pub(crate) fn supersedes(cur: &Entry, incarnation: u64, state: MemberState) -> bool {
    match cur.state {
        None => true,
        Some(s) => (incarnation, rank(state)) > (cur.incarnation, rank(s)),
    }
}

pub(crate) struct Membership {
    entries: Vec<Entry>,
    /// Dense indices of live members other than this core, for O(1) uniform sampling.
    live: Vec<u32>,
}

impl Membership {
    pub fn new(n: usize) -> Membership {
        Membership {
            entries: vec![UNKNOWN; n],
            live: Vec::new(),
        }
    }

    pub fn get(&self, idx: u32) -> &Entry {
        &self.entries[idx as usize]
    }

    pub fn entries(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries.iter().enumerate().map(|(i, e)| (i as u32, e))
    }

    /// Records a new state; returns whether the member became live (it must join the probe list).
    /// `me` never enters the live set: a core does not probe or gossip to itself.
    pub fn set(&mut self, idx: u32, me: u32, incarnation: u64, state: MemberState) -> bool {
        let e = &mut self.entries[idx as usize];
        e.incarnation = incarnation;
        e.state = Some(state);
        let (was, now) = (e.live_pos != NOT_LIVE, is_live(Some(state)) && idx != me);
        match (was, now) {
            (false, true) => {
                e.live_pos = self.live.len() as u32;
                self.live.push(idx);
            }
            (true, false) => {
                let pos = e.live_pos as usize;
                e.live_pos = NOT_LIVE;
                self.live.swap_remove(pos);
                if let Some(&moved) = self.live.get(pos) {
                    self.entries[moved as usize].live_pos = pos as u32;
                }
            }
            _ => {}
        }
        !was && now
    }

    pub fn live(&self) -> &[u32] {
        &self.live
    }

    /// A uniformly random Dead member and how many there are (reservoir sampling; a Left member
    /// chose to go and is not counted).
    pub fn random_dead<R: Rng>(&self, rng: &mut R) -> Option<(u32, usize)> {
        let mut seen = 0;
        let mut pick = None;
        for (i, e) in self.entries() {
            if e.state == Some(MemberState::Dead) {
                seen += 1;
                if rng.gen_range(0..seen) == 0 {
                    pick = Some(i);
                }
            }
        }
        pick.map(|i| (i, seen))
    }

    /// Up to `k` distinct live members not in `exclude`, uniformly at random, without scanning
    /// the live set when it is large.
    pub fn sample<R: Rng>(&self, rng: &mut R, k: usize, exclude: &[u32]) -> Vec<u32> {
        let n = self.live.len();
        let mut out = Vec::with_capacity(k);
        if k == 0 || n == 0 {
            return out;
        }
        if n <= 4 * (k + exclude.len()) {
            let mut c: Vec<u32> = self
                .live
                .iter()
                .copied()
                .filter(|i| !exclude.contains(i))
                .collect();
            let take = k.min(c.len());
            for i in 0..take {
                let j = rng.gen_range(i..c.len());
                c.swap(i, j);
            }
            c.truncate(take);
            return c;
        }
        // Large set: rejection sampling. Fewer than a quarter of the members are ever rejected, so
        // the attempt bound is reached only with negligible probability.
        for _ in 0..8 * k + 16 {
            if out.len() == k {
                break;
            }
            let i = self.live[rng.gen_range(0..n)];
            if !exclude.contains(&i) && !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn entry_is_compact() {
        assert!(std::mem::size_of::<Entry>() <= 16);
    }

    #[test]
    fn precedence() {
        let e = Entry {
            incarnation: 5,
            live_pos: NOT_LIVE,
            state: Some(MemberState::Dead),
        };
        assert!(!supersedes(&e, 5, MemberState::Alive));
        assert!(supersedes(&e, 6, MemberState::Alive));
        assert!(supersedes(&e, 5, MemberState::Left));
        assert!(!supersedes(&e, 4, MemberState::Left));
        assert!(supersedes(&UNKNOWN, 0, MemberState::Suspect));
    }

    #[test]
    fn live_set_tracks_states_and_samples_distinct() {
        let mut m = Membership::new(100);
        for i in 0..100 {
            m.set(i, 0, 1, MemberState::Alive);
        }
        assert_eq!(m.live().len(), 99);
        m.set(50, 0, 1, MemberState::Dead);
        m.set(7, 0, 2, MemberState::Suspect);
        assert_eq!(m.live().len(), 98);
        assert!(!m.live().contains(&50) && !m.live().contains(&0));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let mut s = m.sample(&mut rng, 3, &[1, 2]);
            assert_eq!(s.len(), 3);
            assert!(s.iter().all(|i| *i != 1 && *i != 2 && *i != 50 && *i != 0));
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
    }
}

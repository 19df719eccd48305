//! SWIM failure detection state: the round-robin probe order, the probe in progress (direct ping,
//! then k ping-reqs) and the probes this member relays for others.
//! References: SWIM (Das, Gupta, Motivala 2002) §4.3 (round-robin over a shuffled list, new
//! members inserted at random positions); Lifeguard §IV.A (nacks from relays at 80 % of the probe
//! timeout tell the requester its own path is fine); memberlist `probeNode`.
//! Concurrency: owned by one `Core`; not shared.

use codec::MemberId;
use rand::seq::SliceRandom;
use rand::Rng;

use super::membership::{is_live, Membership};
use super::time::Millis;

/// Lifeguard: a relay that heard no ack after this fraction of the probe timeout sends a nack, so
/// it arrives before the requester's probe period ends.
pub(crate) const NACK_FRACTION: f64 = 0.8;

/// The probe this member is running.
pub(crate) struct Probe {
    pub target: u32,
    pub seq: u32,
    /// Direct ping unanswered by then: ask k others.
    pub indirect_at: Millis,
    pub indirect_sent: bool,
    /// Still unanswered by then: the target is suspected.
    pub end: Millis,
    pub acked: bool,
    pub expected_nacks: u32,
    pub nacks: u32,
}

/// A ping sent on another member's behalf (ping-req).
pub(crate) struct Relay {
    /// Sequence number of our own ping to `target`.
    pub seq: u32,
    pub requester: MemberId,
    pub requester_seq: u32,
    pub target: MemberId,
    pub nack_at: Millis,
}

#[derive(Default)]
pub(crate) struct Prober {
    order: Vec<u32>,
    cursor: usize,
    /// Bit `idx` is set while `idx` waits in `order[cursor..]`, so a member is queued at most
    /// once per pass. Without it every dead-to-alive flip queued it again, and a member flipping
    /// another in a flood of statements crowded everyone else out of the probe order.
    pending: Vec<u64>,
    pub current: Option<Probe>,
    pub relays: Vec<Relay>,
    next_seq: u32,
}

impl Prober {
    pub fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// The next member to probe: round-robin over a shuffled list of the live members, reshuffled
    /// after each full pass, skipping members no longer live. Amortised O(1) per probe.
    pub fn next_target<R: Rng>(&mut self, members: &Membership, rng: &mut R) -> Option<u32> {
        // Two passes at most: the rest of the current list, then a freshly shuffled one.
        for _ in 0..2 {
            while let Some(&idx) = self.order.get(self.cursor) {
                self.cursor += 1;
                set_bit(&mut self.pending, idx, false);
                if is_live(members.get(idx).state) {
                    return Some(idx);
                }
            }
            self.order.clear();
            self.order.extend_from_slice(members.live());
            self.order.shuffle(rng);
            self.cursor = 0;
            for &idx in &self.order {
                set_bit(&mut self.pending, idx, true);
            }
        }
        None
    }

    /// A member became live mid-pass: insert it at a random position among those not yet probed
    /// in this pass, so it is probed within one pass (unless it already waits there).
    pub fn insert<R: Rng>(&mut self, idx: u32, rng: &mut R) {
        if bit(&self.pending, idx) {
            return;
        }
        set_bit(&mut self.pending, idx, true);
        self.order.push(idx);
        let last = self.order.len() - 1;
        let pos = rng.gen_range(self.cursor..=last);
        self.order.swap(pos, last);
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        let probe = self.current.as_ref().filter(|p| !p.acked).map(|p| {
            if p.indirect_sent {
                p.end
            } else {
                p.indirect_at
            }
        });
        let relay = self.relays.iter().map(|r| r.nack_at).min();
        probe.into_iter().chain(relay).min()
    }
}

fn bit(bits: &[u64], idx: u32) -> bool {
    bits.get(idx as usize / 64)
        .is_some_and(|w| w >> (idx % 64) & 1 == 1)
}

fn set_bit(bits: &mut Vec<u64>, idx: u32, on: bool) {
    let word = idx as usize / 64;
    if word >= bits.len() {
        bits.resize(word + 1, 0);
    }
    let mask = 1 << (idx % 64);
    if on {
        bits[word] |= mask;
    } else {
        bits[word] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::MemberState;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn each_live_member_is_probed_once_per_pass() {
        let mut m = Membership::new(50);
        for i in 0..50 {
            m.set(i, 0, 1, MemberState::Alive);
        }
        m.set(9, 0, 1, MemberState::Dead);
        let (mut p, mut rng) = (Prober::default(), StdRng::seed_from_u64(3));
        let mut pass: Vec<u32> = (0..48)
            .filter_map(|_| p.next_target(&m, &mut rng))
            .collect();
        // A member that became live mid-pass is still probed in this pass.
        m.set(9, 0, 2, MemberState::Alive);
        p.insert(9, &mut rng);
        pass.extend(p.next_target(&m, &mut rng));
        pass.sort();
        assert_eq!(pass, (1..50).collect::<Vec<u32>>());
    }

    #[test]
    fn a_flapping_member_waits_in_the_order_once() {
        let mut m = Membership::new(10);
        for i in 1..10 {
            m.set(i, 0, 1, MemberState::Alive);
        }
        let (mut p, mut rng) = (Prober::default(), StdRng::seed_from_u64(5));
        let first = p.next_target(&m, &mut rng).expect("a target");
        // Member 4 is declared dead and alive again a thousand times before the next probe.
        for inc in 2..1002 {
            m.set(4, 0, inc, MemberState::Dead);
            m.set(4, 0, inc, MemberState::Alive);
            p.insert(4, &mut rng);
        }
        let rest: Vec<u32> = (0..8).filter_map(|_| p.next_target(&m, &mut rng)).collect();
        let mut pass = [vec![first], rest].concat();
        pass.sort();
        assert_eq!(pass, (1..10).collect::<Vec<u32>>(), "each member once");
        // Probed in this pass, member 4 flipping again is queued again, once.
        p.insert(4, &mut rng);
        p.insert(4, &mut rng);
        assert_eq!(p.order[p.cursor..], [4]);
    }
}

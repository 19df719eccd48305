//! The simulator's event list: a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster
//! algorithms for the shortest path problem", J. ACM 37(2), 1990) keyed by virtual time.
//! Why not `BinaryHeap`: at n = 10,000 the list holds tens of thousands of events, and every
//! pop sifted a large event through a dozen scattered levels; here an event is appended to a
//! bucket and moved a few times, in order, before it comes out.
//! Order: earliest time first, and events at the same time in the order they were pushed (the
//! old heap's insertion-sequence tie-break), so a seed's history is unchanged. Pushes append and
//! a bucket is redistributed front to back, so events with equal times never overtake each
//! other: they always share a bucket, in push order.
//! Times must never go below the last one popped (the clock never runs backwards).
//! Concurrency: single-threaded; owned by one world.

use std::collections::VecDeque;

/// One bucket per possible highest differing bit of a u64 time, plus bucket 0 for "equal".
const BUCKETS: usize = 65;

pub struct EventQueue<T> {
    /// The time of the last event popped (or redistributed towards): every queued time is at
    /// or above it. Bucket `i > 0` holds times whose highest bit differing from `last` is
    /// `i - 1`; bucket 0 holds those equal to it, in push order.
    last: u64,
    now: VecDeque<T>,
    buckets: Vec<Vec<(u64, T)>>,
}

impl<T> EventQueue<T> {
    pub fn new() -> EventQueue<T> {
        EventQueue {
            last: 0,
            now: VecDeque::new(),
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
        }
    }

    fn bucket(last: u64, at: u64) -> usize {
        (u64::BITS - (at ^ last).leading_zeros()) as usize
    }

    /// Queues `item` at time `at`, which must not be before the last time popped.
    pub fn push(&mut self, at: u64, item: T) {
        debug_assert!(at >= self.last, "event at {at} before {}", self.last);
        let at = at.max(self.last);
        match EventQueue::<T>::bucket(self.last, at) {
            0 => self.now.push_back(item),
            b => self.buckets[b].push((at, item)),
        }
    }

    /// The earliest event, and its time, if it is due at or before `until`. The list is
    /// reorganised only when an event is taken, so events may still be pushed at any time from
    /// the last one popped on, even after a look past `until` found nothing.
    pub fn pop_until(&mut self, until: u64) -> Option<(u64, T)> {
        if self.now.is_empty() {
            let b = self.buckets.iter().position(|b| !b.is_empty())?;
            let min = self.buckets[b].iter().map(|(at, _)| *at).min()?;
            if min > until {
                return None;
            }
            // Every time in the buckets below `b` is empty, so `min` is the earliest queued;
            // redistributing towards it moves each event of bucket `b` to a lower one.
            self.last = min;
            let mut moving = std::mem::take(&mut self.buckets[b]);
            for (at, item) in moving.drain(..) {
                match EventQueue::<T>::bucket(min, at) {
                    0 => self.now.push_back(item),
                    nb => self.buckets[nb].push((at, item)),
                }
            }
            // Keep the emptied bucket's allocation for the next events that land in it.
            self.buckets[b] = moving;
        }
        if self.last > until {
            return None;
        }
        let item = self.now.pop_front()?;
        Some((self.last, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// Against the heap the world used before: same pops, in the same order, for random
    /// pushes interleaved with pops bounded by random horizons.
    #[test]
    fn pops_as_a_heap_ordered_by_time_then_push_order() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut q = EventQueue::new();
        let mut heap = BinaryHeap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for _ in 0..20_000 {
            for _ in 0..rng.gen_range(0..4) {
                // Many ties: a coarse clock and delays that are often zero.
                let at = now + [0, 1, 7, 300, 70_000][rng.gen_range(0..5)] * rng.gen_range(0..3);
                seq += 1;
                q.push(at, seq);
                heap.push(Reverse((at, seq)));
            }
            let until = now + rng.gen_range(0..500);
            loop {
                let want = match heap.peek() {
                    Some(Reverse((at, s))) if *at <= until => Some((*at, *s)),
                    _ => None,
                };
                let got = q.pop_until(until);
                assert_eq!(got, want);
                let Some((at, _)) = got else { break };
                heap.pop();
                now = at;
            }
            now = now.max(until);
        }
    }
}

//! Receive buffers carved from large regions: one allocation per `SLOTS_PER_REGION` datagrams,
//! each slot an independent `BytesMut` whose spare capacity the kernel writes into. A filled
//! slot leaves whole (no copy) and a fresh slot takes its place, so a slow consumer holds
//! memory, never a buffer the receiver needs back.
//!
//! Spent regions (every slot carved) wait in a bounded FIFO until their last slot is dropped,
//! then are reused whole. Without that, a pipeline that holds thousands of datagrams in flight
//! never finds its current region free, every region is fresh memory, and the kernel's receive
//! copy pays a page fault (zeroing) per few datagrams: measured as a sixth of the io thread in a
//! burst. Slots are dropped roughly in the order they were received, so checking the oldest
//! spent region alone finds the free ones in O(1).
//!
//! Concurrency: one carver per receiving thread; carved slots may move to other threads.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Slots carved from one region allocation.
pub const SLOTS_PER_REGION: usize = 64;
/// Spent regions kept for reuse. The FIFO only grows while its oldest region is still held,
/// so it settles at the receive pipeline's depth as long as the bound is above it: a node's
/// verdict channel (4,096 datagrams) plus an io_uring ring's 1,024 buffers is about 80
/// regions. At 64, below that, the oldest region was never free yet, every region was fresh
/// memory, and page faults and zeroing were a twelfth of the io thread in the ingest burst.
/// Past the bound the oldest is released to the allocator; a stalled consumer cannot pin
/// memory here.
pub const SPENT_REGIONS: usize = 128;

/// Regions allocated and touched when a receiver is set up: a node started into a flood
/// (a benchmark's burst, a rejoin answered by every peer) otherwise spent a sixth of its io
/// thread in page faults while the pipeline first filled. Half the bound: what a node's
/// verdict channel holds (4,096 datagrams); the FIFO grows past it only as deeper pipelines
/// need.
const WARM_REGIONS: usize = SPENT_REGIONS / 2;
/// The smallest page size: one write per page faults a region in.
const PAGE: usize = 4096;

pub struct Carver {
    slot: usize,
    region: BytesMut,
    spent: VecDeque<BytesMut>,
}

impl Carver {
    /// Starts with [`WARM_REGIONS`] regions allocated and their pages faulted in.
    pub fn new(slot: usize) -> Carver {
        let size = slot * SLOTS_PER_REGION;
        let spent = (0..WARM_REGIONS)
            .map(|_| {
                let mut r = BytesMut::with_capacity(size);
                for page in r.spare_capacity_mut().iter_mut().step_by(PAGE) {
                    page.write(0);
                }
                r
            })
            .collect();
        Carver {
            slot,
            region: BytesMut::with_capacity(size),
            spent,
        }
    }

    pub fn slot_size(&self) -> usize {
        self.slot
    }

    /// An empty buffer with exactly `slot` bytes of spare capacity.
    pub fn carve(&mut self) -> BytesMut {
        if self.region.capacity() < self.slot {
            self.next_region();
        }
        let rest = self.region.split_off(self.slot);
        std::mem::replace(&mut self.region, rest)
    }

    /// Replaces the spent current region with the oldest spent one whose slots have all been
    /// dropped (its memory still warm), or else with a fresh allocation.
    fn next_region(&mut self) {
        let size = self.slot * SLOTS_PER_REGION;
        self.spent.push_back(std::mem::take(&mut self.region));
        let free = self.spent.front_mut().is_some_and(|r| r.try_reclaim(size));
        self.region = free
            .then(|| self.spent.pop_front())
            .flatten()
            .unwrap_or_else(|| BytesMut::with_capacity(size));
        if self.spent.len() > SPENT_REGIONS {
            self.spent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_independent_and_sized() {
        let mut c = Carver::new(128);
        let mut a = c.carve();
        let mut b = c.carve();
        assert_eq!((a.capacity(), b.capacity()), (128, 128));
        a.extend_from_slice(&[1; 128]);
        b.extend_from_slice(&[2; 128]);
        assert!(a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2));
        for _ in 0..(SLOTS_PER_REGION * 3) {
            assert_eq!(c.carve().capacity(), 128);
        }
        // A spent region whose slots were all dropped comes back once the warm regions
        // queued before it have been used: the same memory.
        let mut c = Carver::new(128);
        let first = c.carve();
        let addr = first.as_ptr() as usize;
        drop(first);
        let spend = |c: &mut Carver, regions: usize| {
            for _ in 0..regions * SLOTS_PER_REGION - 1 {
                assert_ne!(c.carve().as_ptr() as usize, addr);
            }
        };
        spend(&mut c, WARM_REGIONS + 1);
        let again = c.carve();
        assert_eq!((again.as_ptr() as usize, again.capacity()), (addr, 128));
        // A slot still held elsewhere keeps its region out of reuse...
        let held = again;
        spend(&mut c, WARM_REGIONS + 2);
        // ...and once it is dropped, the region comes back after the ones spent before it.
        drop(held);
        let reused =
            (0..SLOTS_PER_REGION * (WARM_REGIONS + 4)).any(|_| c.carve().as_ptr() as usize == addr);
        assert!(reused);
    }
}

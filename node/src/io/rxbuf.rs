//! Receive buffers carved from large regions: one allocation per `SLOTS_PER_REGION` datagrams,
//! each slot an independent `BytesMut` whose spare capacity the kernel writes into. A filled
//! slot leaves whole (no copy) and a fresh slot takes its place, so a slow consumer holds
//! memory, never a buffer the receiver needs back.
//!
//! Concurrency: one carver per receiving thread; carved slots may move to other threads.

use bytes::BytesMut;

/// Slots carved from one region allocation.
pub const SLOTS_PER_REGION: usize = 64;

pub struct Carver {
    slot: usize,
    region: BytesMut,
}

impl Carver {
    pub fn new(slot: usize) -> Carver {
        Carver {
            slot,
            region: BytesMut::new(),
        }
    }

    pub fn slot_size(&self) -> usize {
        self.slot
    }

    /// An empty buffer with exactly `slot` bytes of spare capacity.
    pub fn carve(&mut self) -> BytesMut {
        // A spent region whose slots have all been dropped is reused whole: its memory is
        // still warm, where a fresh allocation would take page faults in the receive copy.
        if self.region.capacity() < self.slot
            && !self.region.try_reclaim(self.slot * SLOTS_PER_REGION)
        {
            self.region = BytesMut::with_capacity(self.slot * SLOTS_PER_REGION);
        }
        let rest = self.region.split_off(self.slot);
        std::mem::replace(&mut self.region, rest)
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
        // dropped slots let the next region be the same memory
        let first = c.carve();
        let addr = first.as_ptr() as usize;
        drop(first);
        for _ in 1..SLOTS_PER_REGION {
            drop(c.carve());
        }
        let again = c.carve();
        assert_eq!((again.as_ptr() as usize, again.capacity()), (addr, 128));
        // a slot still held elsewhere keeps its region: the next one is fresh memory
        let held = again;
        for _ in 1..SLOTS_PER_REGION {
            drop(c.carve());
        }
        assert_ne!(c.carve().as_ptr() as usize, addr);
        drop(held);
    }
}

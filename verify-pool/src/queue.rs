//! The bounded ingress queue between io threads and verification workers: crossbeam's
//! `ArrayQueue` (Vyukov's bounded MPMC ring) of batches, so one atomic push or pop moves a
//! whole batch of datagrams. Capacity is counted in datagrams, not batches: producers reserve
//! room for datagrams first, so the queue never holds more than its capacity even when batches
//! are partly filled, and a full queue is a refusal the caller turns into a shed, never a block.
//!
//! Concurrency: any number of producers and consumers; `reserve`/`push_reserved`/`pop` are
//! lock-free; only a consumer that found the queue empty takes a mutex, to sleep on a condvar.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

/// Datagrams pushed together, stamped with their enqueue time (queue-wait histogram).
#[derive(Debug)]
pub struct Batch<T> {
    pub items: Vec<T>,
    pub enqueued: Instant,
}

/// Bounded multi-producer multi-consumer queue of batches.
pub struct IngressQueue<T> {
    /// One slot per datagram of capacity: every batch holds at least one datagram, so a push
    /// covered by a reservation always finds a free slot.
    slots: ArrayQueue<Batch<T>>,
    /// Datagrams queued plus datagrams reserved by producers and not yet pushed.
    len: AtomicUsize,
    peak: AtomicUsize,
    capacity: usize,
    sleepers: AtomicUsize,
    closed: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl<T> IngressQueue<T> {
    /// A queue of `capacity` datagrams (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        IngressQueue {
            slots: ArrayQueue::new(capacity),
            len: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            capacity,
            sleepers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Datagrams queued or reserved.
    pub fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Highest `len` ever observed after a push; never above `capacity`.
    pub fn peak(&self) -> usize {
        self.peak.load(SeqCst)
    }

    /// Reserves room for up to `want` datagrams; returns how many were granted (0 if full, or
    /// closed: no worker would ever pop them).
    pub fn reserve(&self, want: usize) -> usize {
        if self.is_closed() {
            return 0;
        }
        let mut granted = 0;
        // fetch_update retries only under contention; the closure is pure.
        let _ = self.len.fetch_update(SeqCst, SeqCst, |len| {
            granted = want.min(self.capacity.saturating_sub(len));
            (granted > 0).then_some(len + granted)
        });
        granted
    }

    /// Gives back reserved room that was not used.
    pub fn unreserve(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, SeqCst);
        }
    }

    /// Pushes a batch whose datagrams the caller reserved with [`IngressQueue::reserve`], and
    /// wakes a sleeping consumer.
    pub fn push_reserved(&self, items: Vec<T>, enqueued: Instant) {
        if items.is_empty() {
            return;
        }
        if self.slots.push(Batch { items, enqueued }).is_err() {
            // Reserved datagrams never exceed `capacity` and each batch holds at least one, so
            // the slots (one per datagram of capacity) cannot all be taken.
            unreachable!("ingress queue slot missing for a reserved batch");
        }
        self.peak.fetch_max(self.len.load(SeqCst), SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_one();
        }
    }

    /// Pops one batch and releases its datagrams' room.
    pub fn pop(&self) -> Option<Batch<T>> {
        let b = self.slots.pop()?;
        self.len.fetch_sub(b.items.len(), SeqCst);
        Some(b)
    }

    /// Sleeps until a producer pushes, the queue closes, or `timeout` passes. The sleeper count
    /// and the queue length are both SeqCst, so a push either sees the sleeper and notifies under
    /// the lock, or the sleeper sees the push before waiting: no lost wake-up.
    pub fn park(&self, timeout: Duration) {
        let g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, SeqCst);
        if self.len.load(SeqCst) == 0 && !self.closed.load(SeqCst) {
            let _ = self.wake.wait_timeout(g, timeout);
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// Wakes every sleeper for good; consumers see [`IngressQueue::is_closed`].
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_capacity() {
        let q = IngressQueue::<u32>::new(10);
        assert_eq!(q.reserve(4), 4);
        assert_eq!(q.reserve(8), 6);
        assert_eq!(q.reserve(1), 0);
        q.unreserve(6);
        q.push_reserved(vec![1, 2, 3, 4], Instant::now());
        assert_eq!(q.len(), 4);
        assert_eq!(q.peak(), 4);
        assert_eq!(q.pop().map(|b| b.items), Some(vec![1, 2, 3, 4]));
        assert!(q.is_empty());
        assert!(q.pop().is_none());
    }

    #[test]
    fn one_datagram_batches_fill_every_slot() {
        let q = IngressQueue::<u32>::new(3);
        for i in 0..3 {
            assert_eq!(q.reserve(1), 1);
            q.push_reserved(vec![i], Instant::now());
        }
        assert_eq!(q.reserve(1), 0);
        assert_eq!(q.peak(), 3);
    }

    #[test]
    fn park_returns_at_once_when_not_empty_or_closed() {
        let q = IngressQueue::<u32>::new(2);
        q.reserve(1);
        q.push_reserved(vec![7], Instant::now());
        q.park(Duration::from_secs(3600));
        q.pop();
        q.close();
        q.park(Duration::from_secs(3600));
        assert!(q.is_closed());
    }
}

//! Dedup before verify, after Solana gossip's verified-value cache: SHA-256 digests of the exact
//! datagram bytes that already verified, and an in-flight table of datagrams queued but not yet
//! settled, whose later identical copies wait for the first copy's verdict.
//!
//! A digest enters the verified cache only after its datagram verified: the digest covers the
//! signature too, so a forged copy hashes differently and can neither poison nor pre-empt the
//! honest one. SHA-256 stays collision resistant with no secret to keep, so nothing an attacker
//! learns about the tables helps a forgery inherit an honest verdict. Identical bytes always
//! get the same verdict (ZIP-215 is deterministic, batch or not), which is what lets a waiter
//! take its twin's verdict. A hit is still a replay at the protocol level: the pool only avoids
//! paying the crypto twice; anti-replay decides.
//!
//! Waiting copies live in one slab allocated once, chained per digest, so parking a copy or
//! resolving one allocates nothing (a `Vec` per in-flight digest was allocated by the io thread
//! and freed by the worker, once per duplicated datagram).
//!
//! Concurrency: not synchronised itself; the pool keeps it behind one mutex, taken once per
//! submitted batch by an io thread and once per verified batch by a worker.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::TableHasher;
use ring::digest::{digest as sha, SHA256, SHA256_OUTPUT_LEN};

/// SHA-256 of a whole datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest([u8; SHA256_OUTPUT_LEN]);

/// Bytes of the digest fed to the tables' (seeded) hasher: equality still compares all 32. An
/// attacker would need 2^64 work per pair of datagrams to aim two of them at one bucket.
const TABLE_HASH_BYTES: usize = 16;

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; TABLE_HASH_BYTES];
        prefix.copy_from_slice(&self.0[..TABLE_HASH_BYTES]);
        state.write_u128(u128::from_ne_bytes(prefix));
    }
}

pub fn digest(raw: &[u8]) -> Digest {
    let mut d = [0u8; SHA256_OUTPUT_LEN];
    d.copy_from_slice(sha(&SHA256, raw).as_ref());
    Digest(d)
}

/// What the table knows about a digest.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Seen {
    /// An identical datagram verified.
    Verified,
    /// An identical datagram is queued or being verified.
    InFlight,
    New,
}

/// End of a chain of waiting copies.
const END: u32 = u32::MAX;

/// The copies waiting for one in-flight digest: a chain of slab slots, oldest first.
#[derive(Clone, Copy)]
struct Chain {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY: Chain = Chain {
    head: END,
    tail: END,
    len: 0,
};

struct Slot<W> {
    waiter: Option<W>,
    next: u32,
}

/// Verified digests (LRU-bounded) and in-flight digests with their waiting twins (bounded).
pub struct DedupTable<W> {
    verified: LruCache<Digest, (), TableHasher>,
    in_flight: HashMap<Digest, Chain, TableHasher>,
    /// Waiting copies; grows to at most `max_waiters` slots, then only reuses them.
    slab: Vec<Slot<W>>,
    free: Vec<u32>,
    waiters: usize,
    max_waiters: usize,
    max_in_flight: usize,
}

impl<W> DedupTable<W> {
    pub fn new(verified: NonZeroUsize, max_in_flight: usize, max_waiters: usize) -> Self {
        DedupTable {
            // Sized for its bound at once, unlike the per-sender tables: every verified
            // datagram adds a digest, so under load it fills anyway, and growing it by
            // doublings on the io thread cut the 90 %-duplicate pool run's unique rate to 0.77
            // of the plain run's (1.02 sized up front, one run each).
            verified: LruCache::with_hasher(verified, TableHasher::default()),
            in_flight: HashMap::with_capacity_and_hasher(max_in_flight, TableHasher::default()),
            slab: Vec::new(),
            free: Vec::new(),
            waiters: 0,
            // Slots are numbered in u32 with END reserved.
            max_waiters: max_waiters.min(END as usize),
            max_in_flight,
        }
    }

    pub fn check(&mut self, d: &Digest) -> Seen {
        if self.verified.get(d).is_some() {
            Seen::Verified
        } else if self.in_flight.contains_key(d) {
            Seen::InFlight
        } else {
            Seen::New
        }
    }

    /// Registers a datagram about to be queued; false when the in-flight table is full.
    pub fn begin(&mut self, d: Digest) -> bool {
        if self.in_flight.len() >= self.max_in_flight {
            return false;
        }
        self.in_flight.entry(d).or_insert(EMPTY);
        true
    }

    /// Parks `w` until the in-flight twin settles; gives it back when the waiter bound is hit or
    /// nothing identical is in flight.
    pub fn wait(&mut self, d: &Digest, w: W) -> Result<(), W> {
        if self.waiters >= self.max_waiters {
            return Err(w);
        }
        let Some(chain) = self.in_flight.get_mut(d) else {
            return Err(w);
        };
        let slot = Slot {
            waiter: Some(w),
            next: END,
        };
        // Fewer than max_waiters (≤ END) are parked, so a free slot or room for one exists.
        let at = match self.free.pop() {
            Some(at) => {
                self.slab[at as usize] = slot;
                at
            }
            None => {
                self.slab.push(slot);
                (self.slab.len() - 1) as u32
            }
        };
        match chain.tail {
            END => chain.head = at,
            tail => self.slab[tail as usize].next = at,
        }
        chain.tail = at;
        chain.len += 1;
        self.waiters += 1;
        Ok(())
    }

    /// Copies waiting for `d` (to size the verdicts a worker is about to deliver).
    pub fn waiting(&self, d: &Digest) -> usize {
        self.in_flight.get(d).map_or(0, |c| c.len as usize)
    }

    /// Settles an in-flight digest; caches it only if it verified. Hands each waiting copy to
    /// `resolve`, oldest first.
    pub fn finish(&mut self, d: &Digest, verified: bool, mut resolve: impl FnMut(W)) {
        if verified {
            self.verified.put(*d, ());
        }
        let mut at = self.in_flight.remove(d).unwrap_or(EMPTY).head;
        while at != END {
            let slot = &mut self.slab[at as usize];
            let (waiter, next) = (slot.waiter.take(), slot.next);
            self.free.push(at);
            at = next;
            if let Some(w) = waiter {
                self.waiters -= 1;
                resolve(w);
            }
        }
    }

    /// Forgets every verified digest (the roster changed: a removed member's bytes must not
    /// keep passing). In-flight entries stay: their verdicts are still to come.
    pub fn clear_verified(&mut self) {
        self.verified.clear();
    }

    pub fn verified_len(&self) -> usize {
        self.verified.len()
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn waiters(&self) -> usize {
        self.waiters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(verified: usize, in_flight: usize, waiters: usize) -> DedupTable<u32> {
        DedupTable::new(
            NonZeroUsize::new(verified).unwrap_or(NonZeroUsize::MIN),
            in_flight,
            waiters,
        )
    }

    fn finish(t: &mut DedupTable<u32>, d: &Digest, verified: bool) -> Vec<u32> {
        let mut out = Vec::new();
        t.finish(d, verified, |w| out.push(w));
        out
    }

    #[test]
    fn only_verified_digests_are_cached() {
        let mut t = table(4, 4, 4);
        let (good, bad) = (digest(b"good"), digest(b"bad"));
        assert!(t.begin(good) && t.begin(bad));
        assert_eq!(t.check(&bad), Seen::InFlight);
        assert!(finish(&mut t, &bad, false).is_empty());
        assert!(finish(&mut t, &good, true).is_empty());
        assert_eq!(t.check(&bad), Seen::New);
        assert_eq!(t.check(&good), Seen::Verified);
    }

    #[test]
    fn waiters_get_resolved_and_are_bounded() {
        let mut t = table(4, 4, 2);
        let d = digest(b"x");
        assert_eq!(t.wait(&d, 1), Err(1), "nothing in flight to wait for");
        t.begin(d);
        assert_eq!(t.wait(&d, 1), Ok(()));
        assert_eq!(t.wait(&d, 2), Ok(()));
        assert_eq!(t.wait(&d, 3), Err(3));
        assert_eq!(t.waiting(&d), 2);
        assert_eq!(finish(&mut t, &d, true), vec![1, 2]);
        assert_eq!(t.waiters(), 0);
        assert_eq!(t.in_flight_len(), 0);
    }

    #[test]
    fn interleaved_chains_keep_their_own_waiters_and_reuse_slots() {
        let mut t = table(8, 4, 4);
        let (a, b) = (digest(b"a"), digest(b"b"));
        assert!(t.begin(a) && t.begin(b));
        for (d, w) in [(a, 1), (b, 10), (a, 2), (b, 20)] {
            assert_eq!(t.wait(&d, w), Ok(()));
        }
        assert_eq!(finish(&mut t, &b, false), vec![10, 20]);
        // b's two slots are free again: a gains two more waiters without the slab growing.
        assert_eq!(t.wait(&a, 3), Ok(()));
        assert_eq!(t.wait(&a, 4), Ok(()));
        assert_eq!(t.wait(&a, 5), Err(5));
        assert_eq!(t.slab.len(), 4);
        assert_eq!(finish(&mut t, &a, true), vec![1, 2, 3, 4]);
        assert_eq!(t.waiters(), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = table(8, 8, 8);
        for i in 0u32..1000 {
            let d = digest(&i.to_be_bytes());
            if t.begin(d) {
                let _ = t.wait(&d, i);
            }
            if i % 2 == 0 {
                finish(&mut t, &d, true);
            }
        }
        assert!(t.verified_len() <= 8 && t.in_flight_len() <= 8 && t.waiters() <= 8);
        assert!(t.slab.len() <= 8);
    }
}

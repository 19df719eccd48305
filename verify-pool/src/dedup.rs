//! Dedup before verify, after Solana gossip's verified-value cache: SHA-256 digests of the exact
//! datagram bytes that already verified, and an in-flight table of datagrams queued but not yet
//! settled, whose later identical copies wait for the first copy's verdict.
//!
//! A digest enters the verified cache only after its datagram verified: the digest covers the
//! signature too, so a forged copy hashes differently and can neither poison nor pre-empt the
//! honest one. Identical bytes always get the same verdict (ZIP-215 is deterministic, batch or
//! not), which is what lets a waiter take its twin's verdict. A hit is still a replay at the
//! protocol level: the pool only avoids paying the crypto twice; anti-replay decides.
//!
//! Concurrency: not synchronised itself; the pool keeps it behind one mutex, taken once per
//! submitted batch by an io thread and once per verified batch by a worker.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::TableHasher;
use ring::digest::{digest as sha, SHA256, SHA256_OUTPUT_LEN};

/// SHA-256 of a whole datagram.
pub type Digest = [u8; SHA256_OUTPUT_LEN];

pub fn digest(raw: &[u8]) -> Digest {
    let mut d = [0u8; SHA256_OUTPUT_LEN];
    d.copy_from_slice(sha(&SHA256, raw).as_ref());
    d
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

/// Verified digests (LRU-bounded) and in-flight digests with their waiting twins (bounded).
pub struct DedupTable<W> {
    verified: LruCache<Digest, (), TableHasher>,
    in_flight: HashMap<Digest, Vec<W>, TableHasher>,
    waiters: usize,
    max_waiters: usize,
    max_in_flight: usize,
}

impl<W> DedupTable<W> {
    pub fn new(verified: NonZeroUsize, max_in_flight: usize, max_waiters: usize) -> Self {
        DedupTable {
            verified: LruCache::with_hasher(verified, TableHasher::default()),
            in_flight: HashMap::default(),
            waiters: 0,
            max_waiters,
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
        self.in_flight.entry(d).or_default();
        true
    }

    /// Parks `w` until the in-flight twin settles; gives it back when the waiter bound is hit or
    /// nothing identical is in flight.
    pub fn wait(&mut self, d: &Digest, w: W) -> Result<(), W> {
        if self.waiters >= self.max_waiters {
            return Err(w);
        }
        match self.in_flight.get_mut(d) {
            Some(list) => {
                list.push(w);
                self.waiters += 1;
                Ok(())
            }
            None => Err(w),
        }
    }

    /// Settles an in-flight digest; caches it only if it verified. Returns its waiters.
    pub fn finish(&mut self, d: &Digest, verified: bool) -> Vec<W> {
        if verified {
            self.verified.put(*d, ());
        }
        let waiters = self.in_flight.remove(d).unwrap_or_default();
        self.waiters -= waiters.len();
        waiters
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

    #[test]
    fn only_verified_digests_are_cached() {
        let mut t = table(4, 4, 4);
        let (good, bad) = (digest(b"good"), digest(b"bad"));
        assert!(t.begin(good) && t.begin(bad));
        assert_eq!(t.check(&bad), Seen::InFlight);
        assert!(t.finish(&bad, false).is_empty());
        assert!(t.finish(&good, true).is_empty());
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
        assert_eq!(t.finish(&d, true), vec![1, 2]);
        assert_eq!(t.waiters(), 0);
        assert_eq!(t.in_flight_len(), 0);
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
                t.finish(&d, true);
            }
        }
        assert!(t.verified_len() <= 8 && t.in_flight_len() <= 8 && t.waiters() <= 8);
    }
}

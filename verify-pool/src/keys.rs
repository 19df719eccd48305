//! A bounded cache of parsed member public keys, after Solana gossip's cache of decompressed
//! keys: parsing a key (point decompression) plus the admission check (a full scalar
//! multiplication for the torsion test) costs more than a verification, so each is paid once
//! per member, not per datagram.
//!
//! Only admissible keys are cached (ZIP-215 verification accepts small-order and
//! torsion-carrying keys, so admission is where they are refused, see `codec::ed25519`), and
//! unknown senders are never cached, so a flood of made-up member ids cannot evict real keys.
//!
//! Concurrency: one cache per thread (each io thread and each worker owns its own); the
//! [`KeySource`] behind them is shared.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use codec::ed25519::PUBLIC_KEY_LEN;
use codec::{MemberId, MemberKeys, PublicKey};
use lru::LruCache;

use crate::TableHasher;

/// The roster's raw member keys. Only admitted members belong in it.
pub trait KeySource: Send + Sync {
    fn key_bytes(&self, member: MemberId) -> Option<[u8; PUBLIC_KEY_LEN]>;
    /// The member's key, parsed and found admissible. A source that already holds parsed,
    /// admission-checked keys (a signed roster) hands them out, and a node's first datagram
    /// from each member skips both costs (tens of µs each: a fresh node's io thread paid them
    /// for every member at once).
    fn admitted_key(&self, member: MemberId) -> Option<PublicKey> {
        self.key_bytes(member)
            .and_then(|b| PublicKey::from_bytes(b).ok())
            .filter(|k| k.check_admissible().is_ok())
    }
    /// Changes whenever a key is added or removed, so caches drop what they hold.
    fn generation(&self) -> u64 {
        0
    }
}

impl KeySource for Vec<[u8; PUBLIC_KEY_LEN]> {
    fn key_bytes(&self, member: MemberId) -> Option<[u8; PUBLIC_KEY_LEN]> {
        self.get(usize::try_from(member).ok()?).copied()
    }
}

impl KeySource for HashMap<MemberId, [u8; PUBLIC_KEY_LEN]> {
    fn key_bytes(&self, member: MemberId) -> Option<[u8; PUBLIC_KEY_LEN]> {
        self.get(&member).copied()
    }
}

/// Parsed, admissible keys of recently seen members.
pub struct KeyCache {
    source: Arc<dyn KeySource>,
    cache: LruCache<MemberId, PublicKey, TableHasher>,
    generation: u64,
    pub hits: u64,
    pub misses: u64,
}

impl KeyCache {
    pub fn new(source: Arc<dyn KeySource>, capacity: NonZeroUsize) -> Self {
        let generation = source.generation();
        KeyCache {
            source,
            cache: crate::lru_table(capacity),
            generation,
            hits: 0,
            misses: 0,
        }
    }

    /// Drops every cached key if the roster changed; returns whether it did.
    pub fn refresh(&mut self) -> bool {
        let g = self.source.generation();
        if g == self.generation {
            return false;
        }
        self.generation = g;
        self.cache.clear();
        true
    }

    /// Makes `member`'s key available to [`MemberKeys::public_key`]; false if the member is not
    /// on the roster or its key is not admissible.
    pub fn resolve(&mut self, member: MemberId) -> bool {
        if self.cache.get(&member).is_some() {
            self.hits += 1;
            return true;
        }
        self.misses += 1;
        match self.source.admitted_key(member) {
            Some(k) => {
                self.cache.put(member, k);
                true
            }
            None => false,
        }
    }
}

impl MemberKeys for KeyCache {
    fn public_key(&self, member: MemberId) -> Option<&PublicKey> {
        self.cache.peek(&member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::SecretKey;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Roster {
        keys: Vec<[u8; PUBLIC_KEY_LEN]>,
        generation: AtomicU64,
    }
    impl KeySource for Roster {
        fn key_bytes(&self, m: MemberId) -> Option<[u8; PUBLIC_KEY_LEN]> {
            self.keys.key_bytes(m)
        }
        fn generation(&self) -> u64 {
            self.generation.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn parses_once_refuses_small_order_and_follows_roster_changes() {
        let honest = SecretKey::generate(&mut rand::thread_rng())
            .public()
            .to_bytes();
        let roster = Arc::new(Roster {
            keys: vec![honest, EIGHT_TORSION[2].compress().to_bytes()],
            generation: AtomicU64::new(0),
        });
        let mut c = KeyCache::new(roster.clone(), NonZeroUsize::MIN.saturating_add(1));
        assert!(c.resolve(0) && c.resolve(0));
        assert_eq!((c.hits, c.misses), (1, 1));
        assert!(!c.resolve(1), "small-order key refused");
        assert!(!c.resolve(99), "unknown member");
        assert!(c.public_key(0).is_some() && c.public_key(1).is_none());
        roster.generation.store(1, Ordering::SeqCst);
        assert!(c.refresh());
        assert!(c.public_key(0).is_none());
    }
}

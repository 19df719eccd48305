//! Shared cluster keys and the key ring that rotates them without downtime, as memberlist's
//! keyring does: install a new key everywhere, switch the primary, remove the old one.
//!
//! Concurrency: [`SharedKeyRing`] is cloned into every io and verify thread; readers take an
//! `Arc` snapshot only when the ring's version number moved, so the hot path costs one atomic load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::{CryptoRng, RngCore};

pub const CLUSTER_KEY_LEN: usize = 32;

/// A 256-bit shared secret. Opaque: it can be generated, loaded from a key file and used by
/// this crate's suites, never printed or compared.
#[derive(Clone)]
pub struct ClusterKey([u8; CLUSTER_KEY_LEN]);

impl ClusterKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> ClusterKey {
        let mut k = [0u8; CLUSTER_KEY_LEN];
        rng.fill_bytes(&mut k);
        ClusterKey(k)
    }
    pub(crate) fn from_bytes(b: [u8; CLUSTER_KEY_LEN]) -> ClusterKey {
        ClusterKey(b)
    }
    pub(crate) fn bytes(&self) -> &[u8; CLUSTER_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a key ring operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("key id {0} is already installed")]
    AlreadyInstalled(u32),
    #[error("key id {0} is not installed")]
    NotInstalled(u32),
    #[error(
        "key id {0} is the primary (sending) key; make another key primary before removing it"
    )]
    RemovePrimary(u32),
}

/// An immutable snapshot of the ring.
#[derive(Clone, Debug)]
pub struct KeyRingState {
    keys: BTreeMap<u32, ClusterKey>,
    primary: u32,
}

impl KeyRingState {
    pub fn primary(&self) -> (u32, &ClusterKey) {
        (self.primary, &self.keys[&self.primary])
    }
    pub fn get(&self, key_id: u32) -> Option<&ClusterKey> {
        self.keys.get(&key_id)
    }
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }
    pub fn primary_id(&self) -> u32 {
        self.primary
    }
}

/// The key ring shared by every thread of a node: several keys installed, one primary for
/// sending, any installed key accepted on receive.
#[derive(Clone, Debug)]
pub struct SharedKeyRing {
    inner: Arc<RingInner>,
}

#[derive(Debug)]
struct RingInner {
    version: AtomicU64,
    state: Mutex<Arc<KeyRingState>>,
}

impl SharedKeyRing {
    pub fn new(primary_id: u32, primary: ClusterKey) -> SharedKeyRing {
        let state = KeyRingState {
            keys: BTreeMap::from([(primary_id, primary)]),
            primary: primary_id,
        };
        SharedKeyRing {
            inner: Arc::new(RingInner {
                version: AtomicU64::new(1),
                state: Mutex::new(Arc::new(state)),
            }),
        }
    }

    /// The current version; changes on every successful install/use/remove.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<KeyRingState> {
        // The state is replaced whole under the lock, so a poisoned lock still holds a
        // consistent snapshot.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn modify(
        &self,
        f: impl FnOnce(&mut KeyRingState) -> Result<(), KeyRingError>,
    ) -> Result<(), KeyRingError> {
        let mut guard = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = (**guard).clone();
        f(&mut next)?;
        *guard = Arc::new(next);
        self.inner.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub fn install(&self, key_id: u32, key: ClusterKey) -> Result<(), KeyRingError> {
        self.modify(|s| {
            if s.keys.contains_key(&key_id) {
                return Err(KeyRingError::AlreadyInstalled(key_id));
            }
            s.keys.insert(key_id, key);
            Ok(())
        })
    }

    pub fn use_key(&self, key_id: u32) -> Result<(), KeyRingError> {
        self.modify(|s| {
            if !s.keys.contains_key(&key_id) {
                return Err(KeyRingError::NotInstalled(key_id));
            }
            s.primary = key_id;
            Ok(())
        })
    }

    pub fn remove(&self, key_id: u32) -> Result<(), KeyRingError> {
        self.modify(|s| {
            if s.primary == key_id {
                return Err(KeyRingError::RemovePrimary(key_id));
            }
            s.keys
                .remove(&key_id)
                .map(|_| ())
                .ok_or(KeyRingError::NotInstalled(key_id))
        })
    }
}

/// A thread-local view of a [`SharedKeyRing`] that refreshes its snapshot only when the version moved.
#[derive(Debug)]
pub(crate) struct RingView {
    ring: SharedKeyRing,
    seen: u64,
    snap: Arc<KeyRingState>,
}

impl RingView {
    pub(crate) fn new(ring: SharedKeyRing) -> RingView {
        let seen = ring.version();
        let snap = ring.snapshot();
        RingView { ring, seen, snap }
    }
    /// Returns the current snapshot and whether it changed since the last call.
    pub(crate) fn current(&mut self) -> (&KeyRingState, bool) {
        let v = self.ring.version();
        let changed = v != self.seen;
        if changed {
            self.snap = self.ring.snapshot();
            self.seen = v;
        }
        (&self.snap, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_rules() {
        let mut rng = rand::thread_rng();
        let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rng));
        assert_eq!(
            ring.install(1, ClusterKey::generate(&mut rng)),
            Err(KeyRingError::AlreadyInstalled(1))
        );
        ring.install(2, ClusterKey::generate(&mut rng)).unwrap();
        assert_eq!(ring.remove(1), Err(KeyRingError::RemovePrimary(1)));
        assert_eq!(ring.use_key(3), Err(KeyRingError::NotInstalled(3)));
        let v = ring.version();
        ring.use_key(2).unwrap();
        assert!(ring.version() > v);
        ring.remove(1).unwrap();
        assert_eq!(ring.snapshot().ids().collect::<Vec<_>>(), vec![2]);
        assert_eq!(ring.remove(1), Err(KeyRingError::NotInstalled(1)));
    }
}

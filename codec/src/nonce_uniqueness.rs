//! No (AEAD key, nonce) pair ever repeats: across 1000 restarts of one member with a persisted
//! epoch, a rolled-back state file, two instances of one identity with copied state, and
//! members sharing the cluster key. Every datagram's (subkey, nonce) is recomputed from what
//! went on the wire (key id, sender, epoch, salt, counter), the way a receiver does.

use std::collections::HashSet;
use std::path::Path;

use crate::epoch::EpochStore;
use crate::*;

type KeyNonce = ([u8; 32], u64);

/// A fresh state directory, removed when the guard drops.
fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// One boot: open the state directory, seal `n` datagrams, record every (subkey, nonce).
fn boot(
    state: &Path,
    ring: &SharedKeyRing,
    member: MemberId,
    clock_secs: u64,
    n: usize,
    seen: &mut HashSet<KeyNonce>,
    suite: Suite,
) {
    let store = EpochStore::open(state, clock_secs).unwrap();
    let mut s = Sealer::new(
        suite,
        1,
        member,
        store.current(),
        HopKeys::Ring(ring.clone()),
        &mut rand::thread_rng(),
    )
    .unwrap();
    for _ in 0..n {
        let raw = s
            .seal(clock_secs * 1000, Packet::new(suite, DEFAULT_MTU).unwrap())
            .unwrap();
        let h = Header::parse(&raw).unwrap();
        let key = crate::seal::wire_subkey(suite, &ring.snapshot(), &h).unwrap();
        assert!(
            seen.insert((key, h.counter)),
            "(key, nonce) repeated: member {member} epoch {} counter {}",
            h.epoch,
            h.counter
        );
    }
}

#[test]
fn thousand_restarts_never_repeat_a_key_nonce_pair() {
    let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rand::thread_rng()));
    let dir = state_dir();
    let state = dir.path();
    let mut seen = HashSet::new();
    let mut epochs = HashSet::new();
    // the clock stands still: restarts within one second must still move the epoch
    for _ in 0..1000 {
        boot(
            state,
            &ring,
            3,
            1_790_000_000,
            3,
            &mut seen,
            Suite::Aes256Gcm,
        );
        epochs.insert(std::fs::read_to_string(state.join("epoch")).unwrap());
    }
    assert_eq!(epochs.len(), 1000, "every restart persisted a new epoch");
    assert_eq!(seen.len(), 3000);
}

#[test]
fn rolled_back_state_and_twin_instances_do_not_repeat() {
    for suite in [
        Suite::Aes256Gcm,
        Suite::ChaCha20Poly1305,
        Suite::AeadEd25519,
    ] {
        let ring = SharedKeyRing::new(1, ClusterKey::generate(&mut rand::thread_rng()));
        let dir = state_dir();
        let state = dir.path();
        let mut seen = HashSet::new();
        boot(state, &ring, 3, 100, 50, &mut seen, suite);
        let snapshot = std::fs::read(state.join("epoch")).unwrap();
        for _ in 0..5 {
            boot(state, &ring, 3, 100, 50, &mut seen, suite);
        }
        // restore the old state file (a VM snapshot, a backup): the epoch goes backwards
        std::fs::write(state.join("epoch"), &snapshot).unwrap();
        for _ in 0..5 {
            boot(state, &ring, 3, 100, 50, &mut seen, suite);
        }
        // two instances of one identity, each from a copy of the same state directory, same clock
        let (dir_a, dir_b) = (state_dir(), state_dir());
        let (twin_a, twin_b) = (dir_a.path(), dir_b.path());
        std::fs::write(twin_a.join("epoch"), &snapshot).unwrap();
        std::fs::write(twin_b.join("epoch"), &snapshot).unwrap();
        boot(twin_a, &ring, 3, 100, 50, &mut seen, suite);
        boot(twin_b, &ring, 3, 100, 50, &mut seen, suite);
        // other members on the same key, same epoch numbers
        for member in [4, 5] {
            boot(state_dir().path(), &ring, member, 100, 50, &mut seen, suite);
        }
        assert_eq!(seen.len(), 50 * 15, "{suite}");
    }
}

#[test]
fn a_second_instance_on_one_state_directory_is_refused() {
    let state = state_dir();
    let _first = EpochStore::open(state.path(), 1).unwrap();
    assert!(EpochStore::open(state.path(), 1).is_err());
}

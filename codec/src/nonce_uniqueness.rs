//! No (AEAD key, nonce) pair ever repeats: across 1000 restarts of one member with a persisted
//! epoch, a rolled-back state file, two instances of one identity with copied state, and
//! members sharing the cluster key. Every datagram's (subkey, nonce) is recomputed from what
//! went on the wire (key id, sender, epoch, salt, counter), the way a receiver does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::epoch::EpochStore;
use crate::*;

type KeyNonce = ([u8; 32], u64);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rumor-nonce-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
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
    let state = dir("restarts");
    let mut seen = HashSet::new();
    let mut epochs = HashSet::new();
    // the clock stands still: restarts within one second must still move the epoch
    for _ in 0..1000 {
        boot(
            &state,
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
        let state = dir("rollback");
        let mut seen = HashSet::new();
        boot(&state, &ring, 3, 100, 50, &mut seen, suite);
        let snapshot = std::fs::read(state.join("epoch")).unwrap();
        for _ in 0..5 {
            boot(&state, &ring, 3, 100, 50, &mut seen, suite);
        }
        // restore the old state file (a VM snapshot, a backup): the epoch goes backwards
        std::fs::write(state.join("epoch"), &snapshot).unwrap();
        for _ in 0..5 {
            boot(&state, &ring, 3, 100, 50, &mut seen, suite);
        }
        // two instances of one identity, each from a copy of the same state directory, same clock
        let twin_a = dir("twin-a");
        let twin_b = dir("twin-b");
        std::fs::write(twin_a.join("epoch"), &snapshot).unwrap();
        std::fs::write(twin_b.join("epoch"), &snapshot).unwrap();
        boot(&twin_a, &ring, 3, 100, 50, &mut seen, suite);
        boot(&twin_b, &ring, 3, 100, 50, &mut seen, suite);
        // other members on the same key, same epoch numbers
        for member in [4, 5] {
            boot(&dir("other"), &ring, member, 100, 50, &mut seen, suite);
        }
        assert_eq!(seen.len(), 50 * 15, "{suite}");
    }
}

#[test]
fn a_second_instance_on_one_state_directory_is_refused() {
    let state = dir("locked");
    let _first = EpochStore::open(&state, 1).unwrap();
    assert!(EpochStore::open(&state, 1).is_err());
}

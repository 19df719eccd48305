//! The persisted boot epoch: one number per boot of a member identity, strictly increasing
//! across restarts, written and fsynced before the first datagram is sent.
//!
//! Why (nonce safety, see `seal.rs`): the AEAD subkey of a boot is derived from
//! (cluster key, key id, member id, epoch, 128-bit random salt), and nonces are a counter under
//! it. The epoch alone makes subkeys differ across ordinary restarts; the salt covers what a
//! file cannot see: a restored VM snapshot, a copied or rolled-back state directory, two
//! instances of one identity on different hosts. The epoch is max(stored + 1, unix seconds), so
//! even a lost state file moves forward with the clock; receivers also use it to reject a
//! sender's older boots. The directory is locked (flock) so two processes cannot share one.
//! Failing to lock, read or durably write the state is fatal: we fail closed, never send.
//!
//! Concurrency: one `EpochStore` per state directory per process, enforced by the lock.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// How far a boot epoch may run ahead of a receiver's clock: one per restart within the same
/// second (the stored epoch + 1 wins over the clock), plus the members' clock skew. A day is far
/// beyond both; a larger epoch, or an incarnation or rumor number derived from one, is one no
/// boot can have reached yet.
pub const EPOCH_LEAD_SECS: u64 = 86_400;

/// Whether some boot can have reached `epoch` by `now_ms` (the receiver's clock): the one
/// bound for header epochs and for the incarnations and rumor numbers derived from them.
pub fn reachable(epoch: u64, now_ms: u64) -> bool {
    epoch <= now_ms / 1000 + EPOCH_LEAD_SECS
}

const EPOCH_FILE: &str = "epoch";
const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
#[error("state directory {}: {problem}", dir.display())]
pub struct EpochError {
    pub dir: PathBuf,
    pub problem: String,
}

/// A locked state directory and the epoch of the current boot.
#[derive(Debug)]
pub struct EpochStore {
    dir: PathBuf,
    _lock: File,
    current: u64,
}

impl EpochStore {
    /// Locks `dir` (creating it), reads the stored epoch, and persists the next one.
    /// `unix_secs` is the caller's clock (sans-IO: time is an argument).
    pub fn open(dir: &Path, unix_secs: u64) -> Result<EpochStore, EpochError> {
        let e = |problem: String| EpochError {
            dir: dir.to_path_buf(),
            problem,
        };
        fs::create_dir_all(dir).map_err(|x| e(format!("cannot create: {x}")))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|x| e(format!("cannot open lock file: {x}")))?;
        // flock(2): released by the kernel when the process dies, so a crash never leaves it stale.
        lock.try_lock().map_err(|x| match x {
            std::fs::TryLockError::WouldBlock => {
                e("locked by another running instance of this identity".into())
            }
            std::fs::TryLockError::Error(x) => e(format!("cannot lock: {x}")),
        })?;
        let stored = match fs::read_to_string(dir.join(EPOCH_FILE)) {
            Ok(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| e(format!("epoch file is corrupt: {:?}", s.trim())))?,
            ),
            Err(x) if x.kind() == std::io::ErrorKind::NotFound => None,
            Err(x) => return Err(e(format!("cannot read epoch file: {x}"))),
        };
        let mut store = EpochStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            current: 0,
        };
        let next = match stored {
            Some(s) => s
                .checked_add(1)
                .ok_or_else(|| e("epoch exhausted".into()))?
                .max(unix_secs),
            None => unix_secs.max(1),
        };
        store.persist(next)?;
        Ok(store)
    }

    pub fn current(&self) -> u64 {
        self.current
    }

    /// Starts a new epoch within this process (used when a counter is about to wrap).
    pub fn advance(&mut self, unix_secs: u64) -> Result<u64, EpochError> {
        let next = self
            .current
            .checked_add(1)
            .ok_or_else(|| EpochError {
                dir: self.dir.clone(),
                problem: "epoch exhausted".into(),
            })?
            .max(unix_secs);
        self.persist(next)?;
        Ok(next)
    }

    fn persist(&mut self, epoch: u64) -> Result<(), EpochError> {
        crate::files::write_durably(&self.dir, EPOCH_FILE, &format!("{epoch}\n")).map_err(|x| {
            EpochError {
                dir: self.dir.clone(),
                problem: format!("cannot write epoch: {x}"),
            }
        })?;
        self.current = epoch;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_locked() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("state");
        let a = EpochStore::open(&d, 100).unwrap().current();
        let b = EpochStore::open(&d, 100).unwrap().current();
        assert_eq!((a, b), (100, 101));
        // the clock moving forward wins over the stored value
        assert_eq!(EpochStore::open(&d, 5000).unwrap().current(), 5000);
        let held = EpochStore::open(&d, 0).unwrap();
        let second = EpochStore::open(&d, 0).unwrap_err();
        assert!(second.problem.contains("locked"), "{second}");
        drop(held);
        fs::write(d.join(EPOCH_FILE), "garbage").unwrap();
        assert!(EpochStore::open(&d, 0)
            .unwrap_err()
            .problem
            .contains("corrupt"));
    }

    #[test]
    fn unwritable_directory_fails_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("state");
        fs::write(&f, b"a file, not a directory").unwrap();
        assert!(EpochStore::open(&f, 1).is_err());
    }
}

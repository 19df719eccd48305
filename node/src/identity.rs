//! Who this node is: its member key and roster id, the roster it trusts, its shared-key ring,
//! and its persisted boot epoch. Loaded once at startup; every failure names the file.
//!
//! Authority pinning: `--authority HEX` pins the roster signer. Without it, the first roster's
//! authority is written to `<state-dir>/authority` and required from then on (trust on first
//! use, like SSH host keys), so a swapped roster file signed by another key is refused.
//!
//! Roster serials: the newest serial this member has run with is kept in
//! `<state-dir>/roster-serial`, and a roster with a lower one is refused. A roster is replaced
//! to revoke a member; a rolled-back file, still validly signed, would admit it again.
//!
//! Concurrency: built on the main thread before any other starts.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use codec::epoch::EpochStore;
use codec::files::write_durably;
use codec::keyfile::{public_key_from_hex, ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{MemberId, PublicKey, Roster, SecretKey, SharedKeyRing, Suite};

use crate::config::RunConfig;

const AUTHORITY_PIN: &str = "authority";
const ROSTER_SERIAL: &str = "roster-serial";

pub struct Identity {
    pub suite: Suite,
    pub member: MemberId,
    pub secret: Arc<SecretKey>,
    pub roster: Arc<Roster>,
    pub ring: Option<SharedKeyRing>,
    pub epoch: EpochStore,
}

impl Identity {
    /// Loads keys first (so a bad key file is reported before anything else), then the roster,
    /// then locks the state directory and persists the new boot epoch.
    pub fn load(cfg: &RunConfig, unix_secs: u64) -> anyhow::Result<Identity> {
        let key = cfg
            .key
            .as_ref()
            .context("--key is required: a member is identified by its key on the roster")?;
        let secret = Arc::new(SigningKeyFile::load(key, SigningRole::Member)?.secret);
        let ring = match &cfg.cluster_key {
            Some(p) => {
                let f = ClusterKeyFile::load(p)?;
                Some(SharedKeyRing::new(f.key_id, f.key))
            }
            None => None,
        };
        let roster_path = cfg
            .roster
            .as_ref()
            .context("--roster is required: only roster members are admitted")?;
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("state directory {}", cfg.state_dir.display()))?;
        let pinned = pinned_authority(cfg)?;
        let roster = Roster::load(roster_path, pinned.as_ref())?;
        if pinned.is_none() {
            let pin = cfg.state_dir.join(AUTHORITY_PIN);
            std::fs::write(&pin, hex::encode(roster.authority.to_bytes()))
                .with_context(|| format!("pinning authority in {}", pin.display()))?;
        }
        let member = roster.id_of(&secret.public()).with_context(|| {
            format!(
                "key file {}: this member's key is not on roster {}",
                key.display(),
                roster_path.display()
            )
        })?;
        let epoch = EpochStore::open(&cfg.state_dir, unix_secs)?;
        // After the lock: two processes cannot race on the record.
        admit_serial(&cfg.state_dir, &roster, roster_path)?;
        Ok(Identity {
            suite: cfg.suite,
            member,
            secret,
            roster: Arc::new(roster),
            ring,
            epoch,
        })
    }
}

/// Refuses a roster older than the newest this member has run with; records a newer one.
fn admit_serial(state_dir: &Path, roster: &Roster, roster_path: &Path) -> anyhow::Result<()> {
    let record = state_dir.join(ROSTER_SERIAL);
    let newest = match std::fs::read_to_string(&record) {
        Ok(text) => Some(text.trim().parse::<u64>().with_context(|| {
            format!(
                "roster serial record {} is corrupt (want one number; remove it only if you know which roster is current)",
                record.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("roster serial record {}", record.display())),
    };
    match newest {
        Some(n) if roster.serial < n => bail!(
            "roster {}: serial {} is older than serial {n}, which this member has run with ({}): an old roster could admit revoked members again",
            roster_path.display(),
            roster.serial,
            record.display()
        ),
        Some(n) if roster.serial == n => Ok(()),
        _ => write_durably(state_dir, ROSTER_SERIAL, &format!("{}\n", roster.serial))
            .with_context(|| format!("recording the roster serial in {}", record.display())),
    }
}

fn pinned_authority(cfg: &RunConfig) -> anyhow::Result<Option<PublicKey>> {
    if let Some(h) = &cfg.authority {
        return public_key_from_hex(h)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--authority: {e}"));
    }
    let pin = cfg.state_dir.join(AUTHORITY_PIN);
    match std::fs::read_to_string(&pin) {
        Ok(h) => public_key_from_hex(&h)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("authority pin {}: {e}", pin.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("authority pin {}", pin.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunOptions;
    use codec::RosterMember;

    /// A member key, and rosters of serial 1, 2 and 3 from one authority, in a fresh directory.
    fn files(dir: &Path) -> RunConfig {
        let mut rng = rand::thread_rng();
        let (auth, member) = (SecretKey::generate(&mut rng), SecretKey::generate(&mut rng));
        SigningKeyFile::write(&dir.join("m.key"), SigningRole::Member, &member).unwrap();
        for serial in 1..=3 {
            let m = RosterMember {
                id: 0,
                key: member.public(),
                addr: None,
            };
            Roster::new("c", serial, auth.public(), vec![m])
                .unwrap()
                .write(&dir.join(format!("r{serial}.toml")), &auth)
                .unwrap();
        }
        RunOptions {
            bind: Some("127.0.0.1:7946".parse().unwrap()),
            key: Some(dir.join("m.key")),
            state_dir: Some(dir.join("state")),
            ..RunOptions::default()
        }
        .resolve(RunOptions::default())
        .unwrap()
    }

    #[test]
    fn a_roster_older_than_one_run_with_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = files(dir.path());
        let mut start = |serial| {
            cfg.roster = Some(dir.path().join(format!("r{serial}.toml")));
            Identity::load(&cfg, 1_790_000_000).map(|id| id.roster.serial)
        };
        assert_eq!(start(2).unwrap(), 2);
        assert_eq!(start(3).unwrap(), 3);
        assert_eq!(start(3).unwrap(), 3, "the same roster again");
        let e = start(2).err().unwrap().to_string();
        assert!(e.contains("serial 2 is older than serial 3"), "{e}");
        // A corrupt record is named, not taken for "no record".
        std::fs::write(dir.path().join("state").join(ROSTER_SERIAL), "three").unwrap();
        let e = format!("{:#}", start(3).err().unwrap());
        assert!(e.contains("is corrupt"), "{e}");
    }
}

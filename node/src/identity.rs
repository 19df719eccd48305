//! Who this node is: its member key and roster id, the roster it trusts, its shared-key ring,
//! and its persisted boot epoch. Loaded once at startup; every failure names the file.
//!
//! Authority pinning: `--authority HEX` pins the roster signer. Without it, the first roster's
//! authority is written to `<state-dir>/authority` and required from then on (trust on first
//! use, like SSH host keys), so a swapped roster file signed by another key is refused.
//!
//! Concurrency: built on the main thread before any other starts.

use std::sync::Arc;

use anyhow::Context;
use codec::epoch::EpochStore;
use codec::keyfile::{public_key_from_hex, ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{MemberId, PublicKey, Roster, SecretKey, SharedKeyRing, Suite};

use crate::config::RunConfig;

const AUTHORITY_PIN: &str = "authority";

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

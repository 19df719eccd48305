//! `rumor`: the gossip node and its tools. Errors are one line naming what is wrong.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codec::keyfile::{ClusterKeyFile, MemberKeyFile};
use codec::{ClusterKey, SecretKey};
use rumor::config::{RunConfig, RunOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rumor", version, about = "A security-hardened gossip node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a key file.
    #[command(subcommand)]
    Keygen(Keygen),
    /// Run a node.
    Run {
        /// TOML file with any of the flags below (flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        opts: Box<RunOptions>,
    },
}

#[derive(Subcommand)]
enum Keygen {
    /// A member's Ed25519 key pair; prints the public key for the roster.
    Member {
        #[arg(long)]
        out: PathBuf,
    },
    /// A 256-bit shared cluster key for the MAC and AEAD suites.
    Cluster {
        #[arg(long)]
        out: PathBuf,
        /// Its id in the key ring (datagram headers carry it).
        #[arg(long, default_value_t = 1)]
        key_id: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rumor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Keygen(Keygen::Member { out }) => {
            let sk = SecretKey::generate(&mut rand::rngs::OsRng);
            MemberKeyFile::write(&out, &sk)?;
            println!("{}", hex_public(&sk));
            Ok(())
        }
        Cmd::Keygen(Keygen::Cluster { out, key_id }) => {
            ClusterKeyFile::write(&out, key_id, &ClusterKey::generate(&mut rand::rngs::OsRng))?;
            Ok(())
        }
        Cmd::Run { config, opts } => {
            let file = match &config {
                Some(p) => RunOptions::from_file(p)?,
                None => RunOptions::default(),
            };
            let cfg = (*opts).resolve(file)?;
            run(cfg)
        }
    }
}

fn hex_public(sk: &SecretKey) -> String {
    sk.public()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loaded credentials of a node.
struct Credentials {
    member: Option<Arc<SecretKey>>,
    cluster: Option<ClusterKeyFile>,
}

fn load_credentials(cfg: &RunConfig) -> anyhow::Result<Credentials> {
    let member = match &cfg.key {
        Some(p) => Some(Arc::new(MemberKeyFile::load(p)?.secret)),
        None => None,
    };
    let cluster = match &cfg.cluster_key {
        Some(p) => Some(ClusterKeyFile::load(p)?),
        None => None,
    };
    Ok(Credentials { member, cluster })
}

fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let creds = load_credentials(&cfg)?;
    let roster = cfg
        .roster
        .as_ref()
        .map(|p| std::fs::metadata(p).with_context(|| format!("roster {}", p.display())))
        .transpose()?;
    let _ = (creds.member, creds.cluster, roster);
    anyhow::bail!("the node runtime is not built yet: keys and configuration loaded and valid, nothing to run")
}

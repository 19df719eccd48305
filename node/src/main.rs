//! `rumor`: the gossip node and its tools. Errors are one line naming what is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codec::keyfile::{public_key_from_hex, ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{ClusterKey, PublicKey, Roster, RosterMember, SecretKey};
use rumor::config::{RunConfig, RunOptions};
use rumor::identity::Identity;

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
    /// Create, sign or inspect a roster of admitted members.
    #[command(subcommand)]
    Roster(RosterCmd),
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
    /// The cluster authority's Ed25519 key pair, which signs rosters.
    Authority {
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

#[derive(Subcommand)]
enum RosterCmd {
    /// Sign a roster from a member list: one `ID PUBLIC_KEY_HEX [ADDR]` per line, `#` comments.
    Sign {
        /// The authority key file (`rumor keygen authority`).
        #[arg(long)]
        authority_key: PathBuf,
        /// Cluster name (datagrams carry its hash).
        #[arg(long)]
        cluster: String,
        /// Member list file.
        #[arg(long)]
        members: PathBuf,
        /// Roster serial; nodes never accept a lower one.
        #[arg(long, default_value_t = 1)]
        serial: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a roster and print its members.
    Show {
        roster: PathBuf,
        /// Require this authority public key (hex).
        #[arg(long)]
        authority: Option<String>,
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
            SigningKeyFile::write(&out, SigningRole::Member, &sk)?;
            println!("{}", hex_public(&sk));
            Ok(())
        }
        Cmd::Keygen(Keygen::Authority { out }) => {
            let sk = SecretKey::generate(&mut rand::rngs::OsRng);
            SigningKeyFile::write(&out, SigningRole::Authority, &sk)?;
            println!("{}", hex_public(&sk));
            Ok(())
        }
        Cmd::Roster(RosterCmd::Sign {
            authority_key,
            cluster,
            members,
            serial,
            out,
        }) => {
            let auth = SigningKeyFile::load(&authority_key, SigningRole::Authority)?.secret;
            let list = parse_member_list(&members)?;
            let roster = Roster::new(&cluster, serial, auth.public(), list)
                .with_context(|| format!("member list {}", members.display()))?;
            roster.write(&out, &auth)?;
            println!(
                "signed roster {} with {} members",
                out.display(),
                roster.len()
            );
            Ok(())
        }
        Cmd::Roster(RosterCmd::Show { roster, authority }) => {
            let pinned = authority
                .map(|h| public_key_from_hex(&h).map_err(|e| anyhow::anyhow!("--authority: {e}")))
                .transpose()?;
            let r = Roster::load(&roster, pinned.as_ref())?;
            println!(
                "cluster {} serial {} authority {}",
                r.cluster,
                r.serial,
                hex_key(&r.authority)
            );
            for m in r.members() {
                println!(
                    "{:>6} {} {}",
                    m.id,
                    hex_key(&m.key),
                    m.addr.map(|a| a.to_string()).unwrap_or_default()
                );
            }
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
    hex_key(&sk.public())
}

fn hex_key(k: &PublicKey) -> String {
    hex::encode(k.to_bytes())
}

/// Reads `ID PUBLIC_KEY_HEX [ADDR]` lines; errors name the file and line.
fn parse_member_list(path: &std::path::Path) -> anyhow::Result<Vec<RosterMember>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("member list {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("member list {} line {}", path.display(), n + 1);
        let mut f = line.split_whitespace();
        let id = f
            .next()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{}: bad member id", at()))?;
        let key = public_key_from_hex(f.next().unwrap_or(""))
            .map_err(|e| anyhow::anyhow!("{}: public key: {e}", at()))?;
        let addr = f
            .next()
            .map(str::parse)
            .transpose()
            .with_context(|| format!("{}: bad address", at()))?;
        anyhow::ensure!(
            f.next().is_none(),
            "{}: expected `ID PUBLIC_KEY_HEX [ADDR]`",
            at()
        );
        out.push(RosterMember { id, key, addr });
    }
    Ok(out)
}

fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let id = Identity::load(&cfg, now)?;
    anyhow::bail!(
        "the node runtime is not built yet: member {} of {} loaded (epoch {}), nothing to run",
        id.member,
        id.roster.len(),
        id.epoch.current()
    )
}

//! `rumor`: the gossip node and its tools. Errors are one line naming what is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codec::keyfile::{public_key_from_hex, ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{ClusterKey, PublicKey, Roster, RosterMember, SecretKey};
use rumor::config::{RunConfig, RunOptions};
use rumor::control::{request, Request, Response};
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
    /// Show a running node's view of the membership.
    Members {
        #[command(flatten)]
        at: ControlArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a running node's counters and the rumors it delivered (JSON).
    Stats {
        #[command(flatten)]
        at: ControlArg,
        /// Only deliveries at or after this unix time in ms.
        #[arg(long, default_value_t = 0)]
        since_ms: u64,
    },
    /// Publish a rumor through a running node.
    Publish {
        #[command(flatten)]
        at: ControlArg,
        /// The rumor's text.
        #[arg(conflicts_with = "file", required_unless_present = "file")]
        text: Option<String>,
        /// Read the rumor from this file instead.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Manage a running node's shared-key ring (rotation without restart).
    #[command(subcommand)]
    Keys(KeysCmd),
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

#[derive(clap::Args)]
struct ControlArg {
    /// The node's control socket (its `--control`, by default `<state-dir>/control.sock`).
    #[arg(long)]
    control: PathBuf,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// List installed key ids and the primary.
    List {
        #[command(flatten)]
        at: ControlArg,
    },
    /// Install a cluster key file into the ring (receivers accept it at once).
    Install {
        #[command(flatten)]
        at: ControlArg,
        file: PathBuf,
    },
    /// Make an installed key the primary (sending) key.
    Use {
        #[command(flatten)]
        at: ControlArg,
        key_id: u32,
    },
    /// Remove a key that is not the primary.
    Remove {
        #[command(flatten)]
        at: ControlArg,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        Cmd::Members { at, json } => {
            let Response::Members { me, members } = ask(&at, Request::Members)? else {
                anyhow::bail!("unexpected reply")
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "me": me, "members": members })
                    )?
                );
            } else {
                println!("{:>6}  {:<8} {:>20}  addr", "id", "state", "incarnation");
                for m in members {
                    let mark = if m.id == me { "*" } else { "" };
                    println!(
                        "{:>6}{mark:1} {:<8} {:>20}  {}",
                        m.id,
                        m.state,
                        m.incarnation,
                        m.addr.unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Cmd::Stats { at, since_ms } => {
            let Response::Stats {
                counters,
                deliveries,
            } = ask(&at, Request::Stats { since_ms })?
            else {
                anyhow::bail!("unexpected reply")
            };
            println!(
                "{}",
                serde_json::to_string(
                    &serde_json::json!({ "counters": counters, "deliveries": deliveries })
                )?
            );
            Ok(())
        }
        Cmd::Publish { at, text, file } => {
            let payload = match (text, file) {
                (Some(t), _) => t.into_bytes(),
                (None, Some(f)) => {
                    std::fs::read(&f).with_context(|| format!("rumor file {}", f.display()))?
                }
                (None, None) => anyhow::bail!("give the rumor's text or --file"),
            };
            let Response::Published { origin, seq, .. } = ask(
                &at,
                Request::Publish {
                    payload_hex: hex::encode(payload),
                },
            )?
            else {
                anyhow::bail!("unexpected reply")
            };
            println!("published rumor {origin}/{seq}");
            Ok(())
        }
        Cmd::Keys(k) => {
            let (at, req) = match k {
                KeysCmd::List { at } => (at, Request::KeysList),
                KeysCmd::Install { at, file } => {
                    let abs = std::fs::canonicalize(&file)
                        .with_context(|| format!("key file {}", file.display()))?;
                    (
                        at,
                        Request::KeysInstall {
                            path: abs.display().to_string(),
                        },
                    )
                }
                KeysCmd::Use { at, key_id } => (at, Request::KeysUse { key_id }),
                KeysCmd::Remove { at, key_id } => (at, Request::KeysRemove { key_id }),
            };
            match ask(&at, req)? {
                Response::Keys { primary, installed } => {
                    println!("primary {primary}; installed {installed:?}")
                }
                _ => println!("ok"),
            }
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
    // Either way explicitly: the setting is inherited, and a parent may have chosen otherwise.
    if let Err(e) = rumor::huge_pages::set(cfg.huge_pages) {
        tracing::warn!(
            "could not turn transparent huge pages {} (prctl: {e})",
            if cfg.huge_pages { "on" } else { "off" }
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let id = Identity::load(&cfg, now)?;
    rumor::runtime::run(cfg, id)
}

/// One control request; a node-side error becomes this command's error.
fn ask(at: &ControlArg, req: Request) -> anyhow::Result<Response> {
    match request(&at.control, &req, std::time::Duration::from_secs(5))? {
        Response::Error { message } => anyhow::bail!("{message}"),
        r => Ok(r),
    }
}

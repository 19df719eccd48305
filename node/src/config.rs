//! `rumor run` configuration: every flag can also be set in a TOML file (`--config`); a flag
//! given on the command line overrides the file, and the file overrides the defaults.
//! Defaults follow memberlist's LAN profile, which operators already know.
//!
//! Concurrency: plain data, built once at startup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use codec::Suite;
use serde::Deserialize;

use crate::core::Tolerance;

/// How the node does its socket I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring if it can be set up here, else mmsg (said in one line).
    Auto,
    /// io_uring multishot receive into a provided buffer ring; fails if unavailable.
    Uring,
    /// recvmmsg/sendmmsg (and UDP GSO): the baseline.
    Mmsg,
}

/// How much protection to pay for (DESIGN.md, "Protection levels"). A level sets defaults;
/// explicit flags override them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// A trusted internal fleet: shared-key AEAD (aes-256-gcm), anti-replay, roster admission.
    Trusted,
    /// Cross-boundary or multi-tenant: per-member signatures (ed25519), the signed roster,
    /// rate limits and validation before anything is applied.
    SemiTrusted,
    /// High-value decisions under malicious insiders: all of that plus the quorum authority layer.
    Byzantine,
}

impl Protection {
    pub fn suite(self) -> Suite {
        match self {
            Protection::Trusted => Suite::Aes256Gcm,
            Protection::SemiTrusted | Protection::Byzantine => Suite::Ed25519,
        }
    }

    /// The f the level tolerates: the authority layer is on only at `byzantine`.
    pub fn default_tolerate(self) -> Option<u32> {
        (self == Protection::Byzantine).then_some(1)
    }
}

/// The default I/O method is the one the ingest benchmark measured faster on this class of
/// machine (`rumor-bench ingest --mode burst --io both`): on the 2-core VM io_uring accepted
/// 1.06–1.35 × what recvmmsg did in every burst run since verification of unsigned hops moved
/// onto the io thread (before, 0.77–1.34 ×, and less in four runs of five, when recvmmsg was
/// the default). `auto` falls back to recvmmsg, saying so in one line, where io_uring cannot be
/// set up. Re-measure on your hardware.
pub const DEFAULT_IO: IoMode = IoMode::Auto;

/// The authority layer's default cap on rumors per origin per gossip interval: 250 rumors/s at
/// the default 200 ms interval, an order of magnitude above what one member publishes in the
/// benchmarks, far below what a flooder offers.
const BYZANTINE_ORIGIN_RUMOR_CAP: u32 = 50;

/// Flags of `rumor run`. All optional here so that the config file can supply them.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunOptions {
    /// UDP address to bind (e.g. 127.0.0.1:7946).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Seed members to join through, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<SocketAddr>>,
    /// Protection level: sets the suite, admission, limits and authority defaults.
    #[arg(long, value_enum)]
    pub protection: Option<Protection>,
    /// Tolerate up to f Byzantine members: turns on the quorum authority layer.
    #[arg(long)]
    pub tolerate: Option<u32>,
    /// Witness signatures that commit a death (default 2f + 1; at least f + 1).
    #[arg(long)]
    pub quorum: Option<u32>,
    /// Witnesses per member (default min(n − 1, max(16, 3f + 1))).
    #[arg(long)]
    pub witnesses: Option<u32>,
    /// Rumors accepted per origin per gossip interval; the rest are dropped before their
    /// signatures are checked (default: 50 with the authority layer, else no cap).
    #[arg(long)]
    pub origin_rumor_cap: Option<u32>,
    /// Crypto suite: none, hmac-sha256, aes-256-gcm, chacha20-poly1305, ed25519, aead+ed25519.
    #[arg(long)]
    #[serde(default, deserialize_with = "de_from_str")]
    pub suite: Option<Suite>,
    /// This member's key file (`rumor keygen member`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The signed roster of admitted members.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// The cluster authority's public key (hex) that must have signed the roster. Without it the
    /// first roster's authority is pinned in the state directory (trust on first use).
    #[arg(long)]
    pub authority: Option<String>,
    /// The shared cluster key file (`rumor keygen cluster`), for the shared-key suites.
    #[arg(long)]
    pub cluster_key: Option<PathBuf>,
    /// State directory (boot epoch, lock).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Members each gossip round pushes to.
    #[arg(long)]
    pub fanout: Option<usize>,
    /// Time between gossip rounds (e.g. 200ms).
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub gossip_interval: Option<Duration>,
    /// Time between failure-detection probes (e.g. 1s).
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub probe_interval: Option<Duration>,
    /// How long a probe waits for its ack (default: half the probe interval, memberlist's ratio).
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub probe_timeout: Option<Duration>,
    /// Retransmissions of each update: this × ceil(log10(n + 1)).
    #[arg(long)]
    pub retransmit_mult: Option<u32>,
    /// Lifeguard suspicion multiplier.
    #[arg(long)]
    pub suspicion_mult: Option<u32>,
    /// Socket I/O method.
    #[arg(long, value_enum)]
    pub io: Option<IoMode>,
    /// I/O threads (one per core by default).
    #[arg(long)]
    pub io_threads: Option<usize>,
    /// Signature-verification threads (suites with hop signatures; the others verify on the
    /// io threads).
    #[arg(long)]
    pub verify_threads: Option<usize>,
    /// Largest datagram sent, in bytes.
    #[arg(long)]
    pub mtu: Option<usize>,
    /// Serve Prometheus text metrics on this address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Control socket path (for `rumor members`, `publish`, `keys`).
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// Pin io and verify threads to cores (turn off when many nodes share a machine).
    #[arg(long)]
    pub pin: Option<bool>,
    /// Datagrams per second each sender may make us verify (token bucket, burst the same).
    #[arg(long)]
    pub sender_rate: Option<f64>,
    /// Batch Ed25519 verification (ZIP-215 batches with bisection).
    #[arg(long)]
    pub batch_verify: Option<bool>,
    /// Let the kernel back the heap with transparent huge pages (off by default: each 2 MiB page
    /// is zeroed in one fault as the heap grows, a burst of CPU that stalled a CPU-limited node
    /// for up to 2 s; README, "Running a cluster").
    #[arg(long)]
    pub huge_pages: Option<bool>,
}

/// A positive human duration ("200ms", "1s"): the parser of every duration flag, here and in
/// `rumor-bench`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 200ms, 1s)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn de_from_str<'de, D: serde::Deserializer<'de>, T: std::str::FromStr>(
    d: D,
) -> Result<Option<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Why the configuration cannot be used. Names the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("--{flag}: {why}")]
    Invalid { flag: &'static str, why: String },
    #[error("suite {suite} needs --{flag}")]
    Missing { suite: Suite, flag: &'static str },
    #[error("--tolerate needs per-member provenance, and suite {0} has none: every holder of the shared cluster key can sign as any member, so one liar could pose as a whole quorum of witnesses; use --suite ed25519 or aead+ed25519")]
    AuthorityWithoutProvenance(Suite),
}

/// The resolved configuration of `rumor run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub bind: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    pub suite: Suite,
    /// The quorum authority layer's parameters, when it is on.
    pub tolerance: Option<Tolerance>,
    pub origin_rumor_cap: Option<u32>,
    pub key: Option<PathBuf>,
    pub roster: Option<PathBuf>,
    pub authority: Option<String>,
    pub cluster_key: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub fanout: usize,
    pub gossip_interval: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub retransmit_mult: u32,
    pub suspicion_mult: u32,
    pub io: IoMode,
    pub io_threads: usize,
    pub verify_threads: usize,
    pub mtu: usize,
    pub metrics_addr: Option<SocketAddr>,
    pub control: PathBuf,
    pub pin: bool,
    pub sender_rate: f64,
    pub batch_verify: bool,
    pub huge_pages: bool,
}

/// Cores this process may run on (its affinity and cgroup quota): the default thread counts,
/// and the most io threads a node takes.
fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl RunOptions {
    pub fn from_file(path: &Path) -> Result<RunOptions, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.into(),
            why: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            why: e.message().to_string(),
        })
    }

    /// Flags (`self`) over the file over the defaults, then validated.
    pub fn resolve(self, file: RunOptions) -> Result<RunConfig, ConfigError> {
        let cores = usable_cores();
        let bind = self.bind.or(file.bind).ok_or(ConfigError::Invalid {
            flag: "bind",
            why: "required (e.g. --bind 127.0.0.1:7946)".into(),
        })?;
        let protection = self
            .protection
            .or(file.protection)
            .unwrap_or(Protection::SemiTrusted);
        let suite = self.suite.or(file.suite).unwrap_or(protection.suite());
        let quorum = self.quorum.or(file.quorum);
        let witnesses = self.witnesses.or(file.witnesses);
        let tolerance = match self
            .tolerate
            .or(file.tolerate)
            .or(protection.default_tolerate())
        {
            Some(f) => Some(Tolerance {
                f,
                quorum,
                witnesses,
            }),
            None if quorum.is_some() || witnesses.is_some() => {
                return Err(ConfigError::Invalid {
                    flag: "quorum",
                    why:
                        "--quorum and --witnesses set the authority layer, which needs --tolerate f"
                            .into(),
                })
            }
            None => None,
        };
        let state_dir = self
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(format!("rumor-state-{}", bind.port())));
        let probe_interval = self
            .probe_interval
            .or(file.probe_interval)
            .unwrap_or(Duration::from_secs(1));
        let cfg = RunConfig {
            bind,
            seeds: self.seeds.or(file.seeds).unwrap_or_default(),
            suite,
            origin_rumor_cap: self
                .origin_rumor_cap
                .or(file.origin_rumor_cap)
                .or(tolerance.map(|_| BYZANTINE_ORIGIN_RUMOR_CAP)),
            tolerance,
            key: self.key.or(file.key),
            roster: self.roster.or(file.roster),
            authority: self.authority.or(file.authority),
            cluster_key: self.cluster_key.or(file.cluster_key),
            control: self
                .control
                .or(file.control)
                .unwrap_or_else(|| state_dir.join("control.sock")),
            state_dir,
            fanout: self.fanout.or(file.fanout).unwrap_or(3),
            gossip_interval: self
                .gossip_interval
                .or(file.gossip_interval)
                .unwrap_or(Duration::from_millis(200)),
            probe_interval,
            probe_timeout: self
                .probe_timeout
                .or(file.probe_timeout)
                .unwrap_or(probe_interval / 2),
            retransmit_mult: self.retransmit_mult.or(file.retransmit_mult).unwrap_or(4),
            suspicion_mult: self.suspicion_mult.or(file.suspicion_mult).unwrap_or(4),
            io: self.io.or(file.io).unwrap_or(DEFAULT_IO),
            io_threads: self.io_threads.or(file.io_threads).unwrap_or(cores),
            verify_threads: self.verify_threads.or(file.verify_threads).unwrap_or(cores),
            mtu: self.mtu.or(file.mtu).unwrap_or(codec::DEFAULT_MTU),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            pin: self.pin.or(file.pin).unwrap_or(true),
            // memberlist-scale traffic is tens of datagrams per member per second; 2 k/s leaves
            // room for push-pull bursts while capping what one sender can cost us.
            sender_rate: self.sender_rate.or(file.sender_rate).unwrap_or(2_000.0),
            batch_verify: self.batch_verify.or(file.batch_verify).unwrap_or(true),
            huge_pages: self.huge_pages.or(file.huge_pages).unwrap_or(false),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl RunConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |flag, why: String| Err(ConfigError::Invalid { flag, why });
        if self.fanout == 0 || self.fanout > 64 {
            return bad("fanout", format!("{} is outside 1..=64", self.fanout));
        }
        if self.probe_timeout >= self.probe_interval {
            return bad(
                "probe-timeout",
                format!(
                    "{:?} must be shorter than the probe interval {:?}",
                    self.probe_timeout, self.probe_interval
                ),
            );
        }
        if self.retransmit_mult == 0 {
            return bad("retransmit-mult", "must be at least 1".into());
        }
        if self.suspicion_mult == 0 {
            return bad("suspicion-mult", "must be at least 1".into());
        }
        if self.io_threads == 0 {
            return bad("io-threads", "must be at least 1".into());
        }
        // Thread per core: more io threads than cores only contend, and each one warms its
        // own receive buffers (about 6 MiB at the default MTU).
        let cores = usable_cores();
        if self.io_threads > cores {
            return bad(
                "io-threads",
                format!(
                    "{} is more than the {cores} cores this process may use",
                    self.io_threads
                ),
            );
        }
        // The bucket holds one second's worth: below 1 it never holds a whole datagram.
        if !(self.sender_rate.is_finite() && self.sender_rate >= 1.0) {
            return bad(
                "sender-rate",
                format!(
                    "{} is not a rate of at least 1 datagram per second",
                    self.sender_rate
                ),
            );
        }
        if self.verify_threads == 0 {
            return bad("verify-threads", "must be at least 1".into());
        }
        if let Err(e) = codec::Packet::new(self.suite, self.mtu) {
            return bad("mtu", e.to_string());
        }
        // Files named on the command line are checked before what is missing from it, so the
        // error names the file the operator actually gave.
        for (flag, path) in [
            ("key", &self.key),
            ("roster", &self.roster),
            ("cluster-key", &self.cluster_key),
        ] {
            if let Some(p) = path.as_ref().filter(|p| !p.exists()) {
                return bad(flag, format!("{} does not exist", p.display()));
            }
        }
        if self.origin_rumor_cap == Some(0) {
            return bad("origin-rumor-cap", "must be at least 1".into());
        }
        if self.tolerance.is_some() && !self.suite.per_member_provenance() {
            return Err(ConfigError::AuthorityWithoutProvenance(self.suite));
        }
        if self.suite.uses_member_key() && self.key.is_none() {
            return Err(ConfigError::Missing {
                suite: self.suite,
                flag: "key",
            });
        }
        if self.suite.uses_cluster_key() && self.cluster_key.is_none() {
            return Err(ConfigError::Missing {
                suite: self.suite,
                flag: "cluster-key",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> RunOptions {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            o: RunOptions,
        }
        let mut v = vec!["rumor"];
        v.extend_from_slice(args);
        <P as clap::Parser>::try_parse_from(v).unwrap().o
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let file: RunOptions = toml::from_str(
            "bind = \"127.0.0.1:9000\"\nfanout = 5\ngossip-interval = \"50ms\"\nsuite = \"none\"\n",
        )
        .unwrap();
        let c = opts(&["--fanout", "2"]).resolve(file).unwrap();
        assert_eq!(
            (c.bind.port(), c.fanout, c.gossip_interval, c.suite),
            (9000, 2, Duration::from_millis(50), Suite::None)
        );
        assert_eq!(c.probe_interval, Duration::from_secs(1));
        assert!(!c.huge_pages, "transparent huge pages are opt-in");
        let file: RunOptions = toml::from_str("huge-pages = true\n").unwrap();
        let c = opts(&["--bind", "127.0.0.1:1", "--suite", "none"])
            .resolve(file)
            .unwrap();
        assert!(c.huge_pages);
    }

    #[test]
    fn bad_values_name_the_flag() {
        // `--bind` and then `args`: the error, as the operator reads it.
        let refused = |args: &[&str]| {
            opts(&[&["--bind", "127.0.0.1:1"], args].concat())
                .resolve(RunOptions::default())
                .unwrap_err()
                .to_string()
        };
        for (flag, value) in [
            ("--fanout", "0"),
            ("--mtu", "50"),
            ("--sender-rate", "0.5"),
            ("--io-threads", "100000"),
        ] {
            let e = refused(&["--suite", "none", flag, value]);
            assert!(e.starts_with(flag), "{e}");
        }
        assert_eq!(
            refused(&["--suite", "ed25519"]),
            "suite ed25519 needs --key"
        );
        let e = refused(&["--suite", "hmac-sha256", "--tolerate", "1"]);
        assert!(e.contains("per-member provenance"), "{e}");
        let c = opts(&[
            "--bind",
            "127.0.0.1:1",
            "--protection",
            "trusted",
            "--cluster-key",
            // Existence is all `resolve` checks; the key itself is read at startup.
            "Cargo.toml",
        ])
        .resolve(RunOptions::default())
        .unwrap();
        assert_eq!(c.suite, Suite::Aes256Gcm);
        assert!(toml::from_str::<RunOptions>("fanuot = 3").is_err());
        assert!(toml::from_str::<RunOptions>("suite = \"rot13\"").is_err());
    }
}

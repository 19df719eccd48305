//! `rumor-bench`: rumor's measurements. With no arguments it runs the default report.

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod crypto;
mod ingest;
mod pool;
mod util;

#[derive(Parser)]
#[command(
    name = "rumor-bench",
    version,
    about = "rumor benchmarks: crypto suites, verification pool, ingest, cluster, simulator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seal/open cost per suite and payload size, beside the bare primitives.
    Crypto(crypto::Args),
    /// The verification pool under a pre-signed corpus: throughput against raw verification.
    Pool(pool::Args),
    /// The node's receive path on loopback, io_uring vs recvmmsg, against raw limits.
    Ingest(ingest::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Crypto(a)) => crypto::run(a),
        Some(Cmd::Pool(a)) => pool::run(a),
        Some(Cmd::Ingest(a)) => ingest::run(a),
        None => report_default(),
    }
}

/// The default report: for now the stages that exist (crypto, pool), each written as JSON
/// under `reports/<UTC timestamp>/`.
fn report_default() -> anyhow::Result<()> {
    let dir = util::report_dir()?;
    eprintln!("rumor-bench: writing {}", dir.display());
    crypto::run(crypto::Args::for_report(dir.join("crypto.json")))?;
    pool::run(pool::Args::for_report(dir.join("pool.json")))?;
    eprintln!("rumor-bench: done, results in {}", dir.display());
    Ok(())
}

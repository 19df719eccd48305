//! `rumor-bench`: rumor's measurements. With no arguments it runs the default report.

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod attacks;
mod charts;
mod cluster;
mod cpu_budget;
mod crypto;
mod ingest;
mod pool;
mod progress;
mod protection;
mod report;
mod shift;
mod sim;
mod util;

#[derive(Parser)]
#[command(
    name = "rumor-bench",
    version,
    about = "rumor benchmarks: crypto suites, verification pool, ingest, cluster, simulator"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// With no subcommand: the default report (crypto, pool, ingest, clusters, simulator, shift)
    /// under reports/<UTC timestamp>/.
    #[command(flatten)]
    report: report::Args,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seal/open cost per suite and payload size, beside the bare primitives.
    Crypto(crypto::Args),
    /// The verification pool under a pre-signed corpus: throughput against raw verification.
    Pool(pool::Args),
    /// N real `rumor` processes on loopback: convergence, dissemination, crash detection, rejoin.
    Cluster(cluster::Args),
    /// The node's receive path on loopback, io_uring vs recvmmsg, against raw limits.
    Ingest(ingest::Args),
    /// Deterministic simulator of N members driving the protocol core on virtual time.
    Sim(sim::Args),
    /// The shift: the best fanout and gossip interval per suite under a CPU budget.
    Shift(shift::Args),
    /// Every adversary against every suite on small loopback clusters: what each suite stops.
    Attacks(attacks::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The simulator's heaps are gigabytes: with huge pages off, `sim --nodes 10000` ran in 6.3 s
    // at 2.6 GB peak against 8.6 s and 3.1 GB. The nodes it starts turn them off anyway.
    if let Err(e) = rumor::huge_pages::set(false) {
        eprintln!("rumor-bench: could not turn transparent huge pages off (prctl: {e})");
    }
    match cli.cmd {
        Some(Cmd::Crypto(a)) => crypto::run(a),
        Some(Cmd::Pool(a)) => pool::run(a),
        Some(Cmd::Cluster(a)) => cluster::run(a),
        Some(Cmd::Ingest(a)) => ingest::run(a),
        Some(Cmd::Sim(a)) => sim::run(a),
        Some(Cmd::Shift(a)) => shift::run(a),
        Some(Cmd::Attacks(a)) => attacks::run(a),
        None => report::run(&cli.report).map(|_| ()),
    }
}

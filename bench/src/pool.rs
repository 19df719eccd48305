//! `rumor-bench pool` (issue 4): placeholder until the verification pool lands.
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    pub fn for_report(json: PathBuf) -> Args {
        Args { json: Some(json) }
    }
}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("rumor-bench pool is not built yet")
}

//! `onramp-load`: see the crate's documentation and `onramp-load --help`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// onramp's load generator: signs users in, creates deposits, posts signed webhooks as the bank
/// would, sends transfers and withdrawals, and checks the books afterwards.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    load: onramp_load::LoadArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    onramp_load::run(Cli::parse().load)
}

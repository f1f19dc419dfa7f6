//! `onramp-load`: see the crate's documentation and `onramp-load --help`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// onramp's load generator: signs users in, creates deposits, posts signed webhooks as the bank
/// would, sends transfers and withdrawals, and checks the books afterwards.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: onramp_load::LoadArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Fill an empty database with grown books (users, deposits, transfers, sessions) in the
    /// product's own schema, for benchmarks on a database that has served a while.
    Preload(onramp_load::preload::PreloadArgs),
    /// Follow the cursors of a preloaded user's deep history and set the deepest pages'
    /// latency beside the first page's.
    History(onramp_load::grown::HistoryArgs),
    /// Use many preloaded sessions once each (the last ones read their balance), so the app
    /// holds that many sessions and wallets.
    Sessions(onramp_load::grown::SessionsArgs),
    /// Send transfers between preloaded people picked at random (activity spread over every
    /// sign-up date), each with its own preloaded session, and check every balance they moved.
    PreloadedTransfers(onramp_load::preloaded_transfers::PreloadedTransfersArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Preload(args)) => onramp_load::preload::run(args),
        Some(Command::History(args)) => onramp_load::grown::history(args),
        Some(Command::Sessions(args)) => onramp_load::grown::sessions(args),
        Some(Command::PreloadedTransfers(args)) => onramp_load::preloaded_transfers::run(args),
        None => onramp_load::run(cli.load),
    }
}

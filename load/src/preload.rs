//! `onramp-load preload`: grown books in an empty database, for benchmarks on a database that
//! has served a while (see `onramp_store::preload` for their shape). The scenarios then run
//! against the app on that database, with fresh users signed in on top.

use anyhow::Context;
use clap::Args;
use onramp_store::preload::{preload, PreloadError, Sizes};

/// The `onramp-load preload` options.
#[derive(Debug, Clone, Args)]
pub struct PreloadArgs {
    /// The database to fill: sqlite://… or postgres://…; it must have no users yet (it is
    /// migrated first).
    #[arg(long)]
    pub database: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// Deposits, one in fifty after each user's first failed [default: ten per user].
    #[arg(long)]
    pub deposits: Option<u64>,
    /// Transfers between the users, ₹1 to ₹10 each [default: one per user].
    #[arg(long)]
    pub transfers: Option<u64>,
    /// Live sessions; session i belongs to user i mod --users and its token is `pl` and i in
    /// 41 digits [default: one per user].
    #[arg(long)]
    pub sessions: Option<u64>,
    /// Deposits of user 0 before the others get theirs: a history this deep.
    #[arg(long, default_value_t = 5_000)]
    pub deep: u64,
    /// What the sessions' tokens are made from (16 characters or more); `history` and
    /// `sessions` need it [default: random, printed].
    #[arg(long)]
    pub token_seed: Option<String>,
}

impl PreloadArgs {
    pub fn sizes(&self) -> Sizes {
        Sizes {
            users: self.users,
            deposits: self.deposits.unwrap_or(self.users * 10),
            transfers: self.transfers.unwrap_or(self.users),
            sessions: self.sessions.unwrap_or(self.users),
            deep: self.deep,
        }
    }
}

pub fn run(args: PreloadArgs) -> anyhow::Result<()> {
    let sizes = args.sizes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let seed = args
        .token_seed
        .clone()
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let done = runtime.block_on(preload(&args.database, sizes, &seed));
    let done = match done {
        Err(PreloadError::Refused(why)) => anyhow::bail!("nothing was written: {why}"),
        Err(e @ PreloadError::AfterCommit(_)) => anyhow::bail!("{e}"),
        other => other.with_context(|| {
            format!(
                "the preload of {} failed, and wrote nothing",
                onramp_store::redact_url(&args.database)
            )
        })?,
    };
    println!(
        "preloaded {} users, {} deposits ({} successful), {} transfers and {} sessions \
         (user 0 has {} deposits) in {:.1} s",
        sizes.users,
        sizes.deposits,
        done.successful_deposits,
        sizes.transfers,
        sizes.sessions,
        sizes.deep,
        done.took.as_secs_f64()
    );
    if args.token_seed.is_none() {
        println!("the sessions' token seed (for history and sessions): --token-seed {seed}");
    }
    Ok(())
}

//! `onramp-load`: a load generator and checker that uses only the public interfaces.
//!
//! It signs users in through the identity provider the app redirects to, creates deposits with
//! `POST /api/deposit`, and settles them by posting signed webhooks straight to
//! `POST /api/webhooks/bank`, as the bank would (it plays the bank: it is given the webhook
//! secret). Duplicate, shuffled, failed, late and contradicting deliveries are available. Each
//! scenario also measures `GET /healthz` at the same concurrency as the server's HTTP ceiling.
//! At the end every user's balance must equal their successful deposits, every deposit must be
//! listed with the status sent, and no deposit may have been applied twice; otherwise the
//! command fails. Latencies go into HDR histograms; the DB writer's batch size and commit
//! latency come from the app's `/metrics` (scraped around each phase; "n/a" without it).

mod http;
mod metrics;
mod phase;
mod report;
mod scenario;

pub use metrics::WriterFigures;
pub use report::{CheckReport, Counts, PhaseReport, Report, RunConfig};
pub use scenario::{run_scenario, LoadConfig, Scenario, DEV_WEBHOOK_SECRET};

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// The environment variable that may hold the webhook secret.
pub const SECRET_ENV: &str = "ONRAMP_LOAD_WEBHOOK_SECRET";

/// The `onramp-load` options.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub options: Box<LoadOptions>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadOptions {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Scenario::Smoke)]
    pub scenario: Scenario,
    /// The app's base URL.
    #[arg(long, default_value = "http://localhost:8080")]
    pub app: String,
    /// The bank's webhook secret [default: $ONRAMP_LOAD_WEBHOOK_SECRET, else the development
    /// secret of config/default.toml].
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// Connections (concurrent requests) [default: 64; smoke 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Connections posting webhooks [default: --concurrency; balance-reads 8].
    #[arg(long)]
    pub webhook_concurrency: Option<usize>,
    /// Deposits to create and settle [default: 20000; smoke 300].
    #[arg(long)]
    pub deposits: Option<usize>,
    /// Users, each signed in once; deposits go round-robin [default: hot-wallet 1, spread
    /// 10000, deposit-create and balance-reads 100, smoke 5].
    #[arg(long)]
    pub users: Option<usize>,
    /// Extra deliveries of the same event, per deposit (0.3: three in ten get a second one)
    /// [default: 0; smoke 0.3].
    #[arg(long)]
    pub duplicates: Option<f64>,
    /// Shuffle the deliveries; afterwards re-send some final events and send a contradicting
    /// status for one deposit in twenty [default: false; smoke true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub out_of_order: Option<bool>,
    /// Share of deposits settled as FAILURE [default: 0; smoke 0.1].
    #[arg(long)]
    pub failures: Option<f64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// How long to measure GET /healthz [default: 5; smoke 1].
    #[arg(long)]
    pub healthz_secs: Option<f64>,
    /// Seed for amounts, outcomes and shuffling [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads of the load generator [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadArgs {
    pub fn config(&self) -> LoadConfig {
        self.options.config()
    }
}

impl LoadOptions {
    /// The configuration: the scenario's defaults overridden by the options given.
    pub fn config(&self) -> LoadConfig {
        let mut c = LoadConfig::new(self.scenario, self.app.clone());
        c.webhook_secret = self
            .webhook_secret
            .clone()
            .or_else(|| std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| DEV_WEBHOOK_SECRET.to_owned());
        let r = &mut c.run;
        if let Some(n) = self.concurrency {
            r.concurrency = n;
            if self.scenario != Scenario::BalanceReads {
                r.webhook_concurrency = n;
            }
        }
        if let Some(n) = self.webhook_concurrency {
            r.webhook_concurrency = n;
        }
        r.deposits = self.deposits.unwrap_or(r.deposits);
        r.users = self.users.unwrap_or(r.users);
        r.duplicates = self.duplicates.unwrap_or(r.duplicates);
        r.out_of_order = self.out_of_order.unwrap_or(r.out_of_order);
        r.failures = self.failures.unwrap_or(r.failures);
        r.healthz_secs = self.healthz_secs.unwrap_or(r.healthz_secs);
        r.seed = self.seed.unwrap_or(r.seed);
        c.progress = !self.quiet;
        c
    }
}

/// `onramp-load`: runs the scenario on a multi-threaded runtime of its own, prints the table and
/// the JSON report, and fails when the final check did.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let config = args.config();
    let threads = args
        .options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the load generator's runtime")?
        .block_on(run_scenario(config))?;

    print!("{}", report.table());
    let json = serde_json::to_string(&report)?;
    println!("{json}");
    if let Some(path) = &args.options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !report.check.passed {
        anyhow::bail!(
            "the final check FAILED with {} problems, the first: {}",
            report.check.problems_total,
            report
                .check
                .problems
                .first()
                .map(String::as_str)
                .unwrap_or("?")
        );
    }
    Ok(())
}

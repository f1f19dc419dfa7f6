//! `onramp-load`: a load generator and checker that uses only the public interfaces.
//!
//! It signs users in through the identity provider the app redirects to, creates deposits with
//! `POST /api/deposit`, and settles them by posting signed webhooks straight to
//! `POST /api/webhooks/bank`, as the bank would (it plays the bank: it is given the webhook
//! secret). Duplicate, shuffled, failed, late and contradicting deliveries are available. Each
//! scenario also measures `GET /healthz` at the same concurrency as the server's HTTP ceiling.
//! At the end every user's balance must equal their successful deposits, every deposit must be
//! listed with the status sent, and no deposit may have been applied twice; otherwise the
//! command fails. The transfers-* scenarios fund users that way, then send transfers between
//! them (random pairs, one hot sender, or crossing pairs; optionally with a webhook storm on the
//! same wallets) while sampling balances, and check that money was conserved, that no balance
//! read was below zero, that every transfer answered `201` is listed exactly once on each side
//! and counted in both balances, and that no refused transfer moved money.
//!
//! The withdrawals scenario funds users the same way, then makes many concurrent
//! `POST /api/withdrawals` (the app calls the bank's create-payout before it answers `201`):
//! some with an amount ending in 13, whose payouts the bank fails, some over the balance, which
//! must be refused. It reports the rate of the `201`s beside the same run's deposit creations
//! (`POST /api/deposit`, which calls the bank's create-order). The mixed scenario runs deposit
//! webhooks (duplicated and shuffled), transfers and withdrawals at once on the same wallets,
//! and reports their rate together and each kind's latencies. Both wait until no withdrawal is
//! `processing` (failing once a minute passes without any payout settling, or after ten), then
//! check that every balance equals deposits in + transfers in − transfers out − withdrawals not
//! failed, that every withdrawal answered `201` is listed exactly once, `failure` exactly when
//! its amount ends in 13, that no refused request moved money, that no answer was a `5xx`, and
//! that no balance read was below zero.
//!
//! Latencies go into HDR histograms; the DB writer's batch size and commit latency come from
//! the app's `/metrics` (scraped around each phase; "n/a" without it).

mod apps;
pub mod grown;
mod http;
mod metrics;
mod phase;
pub mod preload;
pub mod preloaded_transfers;
mod report;
mod scenario;

pub use metrics::WriterFigures;
pub use report::{
    CheckReport, Counts, KindFigures, MixedReport, PhaseReport, Report, RunConfig, TransferConfig,
    TransferReport, WithdrawalConfig, WithdrawalReport,
};
pub use scenario::{run_scenario, LoadConfig, Scenario, DEV_WEBHOOK_SECRET};

use anyhow::Context;
use clap::Args;
use scenario::{TRANSFER_SCENARIOS, WITHDRAWAL_SCENARIOS};
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
    /// The app's base URL. Several, separated by commas (one per process of one service), take
    /// the requests in turn, and the writer's figures sum their `/metrics`.
    #[arg(long, default_value = "http://localhost:8080")]
    pub app: String,
    /// The bank's webhook secret [default: $ONRAMP_LOAD_WEBHOOK_SECRET, else the development
    /// secret of config/default.toml].
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// Connections (concurrent requests) [default: 64; smoke 16]; transfers-crossing sends half
    /// as many pairs at once, two requests each; mixed shares them evenly between its transfers,
    /// withdrawals and deposit webhooks.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Connections posting webhooks [default: --concurrency; balance-reads 8].
    #[arg(long)]
    pub webhook_concurrency: Option<usize>,
    /// Deposits to create and settle [default: 20000; smoke 300; transfers-random,
    /// transfers-crossing and mixed one per user; transfers-hot-sender 10, all the sender's;
    /// withdrawals 10 per user, each user's adding up to what its withdrawals take and more].
    #[arg(long)]
    pub deposits: Option<usize>,
    /// Users, each signed in once; deposits go round-robin [default: hot-wallet 1, spread
    /// 10000, deposit-create and balance-reads 100, smoke 5, transfers-random 10000,
    /// transfers-hot-sender 1000 (the sender and 999 recipients), transfers-crossing 2000 (1000
    /// pairs), withdrawals 1000, mixed 1000].
    #[arg(long)]
    pub users: Option<usize>,
    /// Transfers to send in a transfers-* or the mixed scenario (with the Idempotency-Key of
    /// each, retried after a 5xx, 429 or transport error) [default: 20000; mixed 10000].
    #[arg(long)]
    pub transfers: Option<usize>,
    /// Withdrawals to make in the withdrawals or mixed scenario (with the Idempotency-Key of
    /// each, retried after a 5xx, 429 or transport error) [default: 20000; mixed 10000].
    #[arg(long)]
    pub withdrawals: Option<usize>,
    /// Share of the withdrawals whose amount ends in 13: the bank fails their payouts, and the
    /// amount must come back [default: 0.2].
    #[arg(long)]
    pub failing_payouts: Option<f64>,
    /// Share of the transfers and withdrawals deliberately over anything the sender could hold;
    /// each must be refused with 409 [default: 0.1; transfers-hot-sender 0 (its sender runs out
    /// of money instead: it is funded with nine tenths of what it sends)].
    #[arg(long)]
    pub over_balance: Option<f64>,
    /// While the transfers run, settle this many more deposits by webhook on the same wallets
    /// (created beforehand) [default: none, mixed half the transfers; the option alone: half
    /// the transfers].
    #[arg(long, num_args = 0..=1)]
    pub with_deposits: Option<Option<usize>>,
    /// Connections reading the involved users' balances while the transfers or withdrawals run;
    /// a read below zero fails the run; 0 reads none [default: 4].
    #[arg(long)]
    pub read_concurrency: Option<usize>,
    /// Extra deliveries of the same event, per deposit (0.3: three in ten get a second one)
    /// [default: 0; smoke and mixed 0.3].
    #[arg(long)]
    pub duplicates: Option<f64>,
    /// Shuffle the deliveries; afterwards re-send some final events and send a contradicting
    /// status for one deposit in twenty [default: false; smoke and mixed true].
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
        if let Some(t) = &mut r.transfer {
            t.transfers = self.transfers.unwrap_or(t.transfers);
            t.over_balance = self.over_balance.unwrap_or(t.over_balance);
            t.storm_deposits = match self.with_deposits {
                None if self.scenario == Scenario::Mixed => (t.transfers / 2).max(1),
                None => t.storm_deposits,
                Some(None) => (t.transfers / 2).max(1),
                Some(Some(n)) => n,
            };
            t.read_concurrency = self.read_concurrency.unwrap_or(t.read_concurrency);
        }
        if let Some(w) = &mut r.withdrawal {
            w.withdrawals = self.withdrawals.unwrap_or(w.withdrawals);
            w.over_balance = self.over_balance.unwrap_or(w.over_balance);
            w.failing_payouts = self.failing_payouts.unwrap_or(w.failing_payouts);
            w.read_concurrency = self.read_concurrency.unwrap_or(w.read_concurrency);
        }
        // The funding deposits follow --users unless --deposits says otherwise.
        if let (None, Some(d)) = (self.deposits, self.scenario.funding_deposits(r.users)) {
            r.deposits = d;
        }
        c.progress = !self.quiet;
        c
    }

    /// An option given to a scenario it does not shape: the option, and the scenarios it is for.
    fn misplaced(&self) -> Option<(&'static str, &'static str)> {
        let s = self.scenario;
        let (transfers, withdrawals) = (s.has_transfers(), s.has_withdrawals());
        let for_both = "the transfers-*, withdrawals and mixed scenarios";
        [
            (
                self.transfers.is_some() && !transfers,
                "--transfers",
                TRANSFER_SCENARIOS,
            ),
            (
                self.with_deposits.is_some() && !transfers,
                "--with-deposits",
                TRANSFER_SCENARIOS,
            ),
            (
                self.withdrawals.is_some() && !withdrawals,
                "--withdrawals",
                WITHDRAWAL_SCENARIOS,
            ),
            (
                self.failing_payouts.is_some() && !withdrawals,
                "--failing-payouts",
                WITHDRAWAL_SCENARIOS,
            ),
            (
                self.over_balance.is_some() && !transfers && !withdrawals,
                "--over-balance",
                for_both,
            ),
            (
                self.read_concurrency.is_some() && !transfers && !withdrawals,
                "--read-concurrency",
                for_both,
            ),
        ]
        .into_iter()
        .find_map(|(wrong, name, scenarios)| wrong.then_some((name, scenarios)))
    }
}

/// `onramp-load`: runs the scenario on a multi-threaded runtime of its own, prints the table and
/// the JSON report, and fails when the final check did.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    if let Some((option, scenarios)) = args.options.misplaced() {
        anyhow::bail!(
            "{option} is for {scenarios}, not {}",
            args.options.scenario.name()
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn options(args: &[&str]) -> LoadOptions {
        let args = std::iter::once("onramp-load").chain(args.iter().copied());
        *Cli::parse_from(args).load.options
    }

    #[test]
    fn the_transfer_scenarios_take_their_options() {
        let o = options(&["--scenario", "transfers-random", "--users", "50"]);
        let c = o.config();
        assert_eq!(c.scenario, Scenario::TransfersRandom);
        assert_eq!(
            (c.run.users, c.run.deposits),
            (50, 50),
            "one deposit per user"
        );
        let t = c.run.transfer.clone().unwrap();
        assert_eq!(
            (t.transfers, t.storm_deposits, t.read_concurrency),
            (20_000, 0, 4)
        );
        assert_eq!(t.over_balance, 0.1);
        assert_eq!(o.misplaced(), None);
        assert!(c.run.withdrawal.is_none());

        let args = [
            "--scenario",
            "transfers-crossing",
            "--transfers",
            "300",
            "--with-deposits",
            "--over-balance",
            "0.25",
        ];
        let t = options(&args).config().run.transfer.unwrap();
        assert_eq!(
            (t.transfers, t.storm_deposits),
            (300, 150),
            "half the transfers"
        );
        assert_eq!(t.over_balance, 0.25);
        let args = ["--scenario", "transfers-hot-sender", "--with-deposits", "7"];
        let c = options(&args).config();
        assert_eq!(c.run.transfer.unwrap().storm_deposits, 7);
        assert_eq!((c.run.users, c.run.deposits), (1_000, 10));
        assert_eq!(c.scenario.headline(), "transfers");
    }

    #[test]
    fn transfer_options_are_refused_elsewhere() {
        let o = options(&["--scenario", "spread", "--transfers", "5"]);
        assert_eq!(o.misplaced().unwrap().0, "--transfers");
        let o = options(&["--scenario", "smoke", "--with-deposits"]);
        assert_eq!(o.misplaced().unwrap().0, "--with-deposits");
        let o = options(&["--scenario", "withdrawals", "--transfers", "5"]);
        assert_eq!(
            o.misplaced(),
            Some(("--transfers", "the transfers-* and mixed scenarios"))
        );
        let c = options(&["--scenario", "spread"]).config();
        assert!(c.run.transfer.is_none());
        assert_eq!(c.run.deposits, 20_000);
    }

    #[test]
    fn the_withdrawal_scenarios_take_their_options() {
        let o = options(&["--scenario", "withdrawals", "--users", "50"]);
        assert_eq!(o.misplaced(), None);
        let c = o.config();
        assert_eq!(
            (c.run.users, c.run.deposits),
            (50, 500),
            "ten funding deposits per user"
        );
        assert!(c.run.transfer.is_none());
        let w = c.run.withdrawal.unwrap();
        assert_eq!((w.withdrawals, w.read_concurrency), (20_000, 4));
        assert_eq!((w.over_balance, w.failing_payouts), (0.1, 0.2));
        assert_eq!(c.scenario.headline(), "withdrawals");

        let args = [
            "--scenario",
            "mixed",
            "--users",
            "40",
            "--transfers",
            "300",
            "--withdrawals",
            "200",
            "--failing-payouts",
            "0.5",
            "--over-balance",
            "0.2",
        ];
        let o = options(&args);
        assert_eq!(o.misplaced(), None);
        let c = o.config();
        assert_eq!(
            (c.run.users, c.run.deposits),
            (40, 40),
            "one deposit per user"
        );
        assert_eq!((c.run.duplicates, c.run.out_of_order), (0.3, true));
        let (t, w) = (c.run.transfer.unwrap(), c.run.withdrawal.unwrap());
        assert_eq!(
            (t.transfers, t.storm_deposits, t.over_balance),
            (300, 150, 0.2),
            "deposits settled alongside: half the transfers"
        );
        assert_eq!(
            (w.withdrawals, w.failing_payouts, w.over_balance),
            (200, 0.5, 0.2)
        );
        assert_eq!(c.scenario.headline(), "mixed");
        let args = [
            "--scenario",
            "mixed",
            "--with-deposits",
            "0",
            "--deposits",
            "7",
        ];
        let c = options(&args).config();
        assert_eq!(c.run.transfer.unwrap().storm_deposits, 0);
        assert_eq!(c.run.deposits, 7);
    }

    #[test]
    fn withdrawal_options_are_refused_elsewhere() {
        let o = options(&["--scenario", "transfers-random", "--withdrawals", "5"]);
        assert_eq!(
            o.misplaced(),
            Some(("--withdrawals", "the withdrawals and mixed scenarios"))
        );
        let o = options(&["--scenario", "spread", "--failing-payouts", "0.5"]);
        assert_eq!(o.misplaced().unwrap().0, "--failing-payouts");
        let o = options(&["--scenario", "hot-wallet", "--over-balance", "0.5"]);
        assert_eq!(o.misplaced().unwrap().0, "--over-balance");
        let o = options(&["--scenario", "withdrawals", "--read-concurrency", "2"]);
        assert_eq!(o.misplaced(), None);
        let c = options(&["--scenario", "spread"]).config();
        assert!(c.run.withdrawal.is_none());
    }
}

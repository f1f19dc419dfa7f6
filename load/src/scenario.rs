//! The scenarios: sign users in, create their deposits, settle them with signed webhooks as the
//! bank would (duplicates, shuffling, failures and late re-deliveries as asked), measure
//! `/healthz` at the same concurrency, and check the books through the API at the end (`check`).
//! The transfers-*, withdrawals and mixed scenarios fund their users that way first; `together`
//! runs their phases side by side.

use super::http::{self, Answer, Created};
use super::metrics;
use super::phase::{lock, run_phase, Bound, PhaseResult, Progress, Rec};
use super::report::{CheckReport, Counts, PhaseReport, Report, RunConfig, TransferReport};
use anyhow::{bail, ensure, Context};
use check::Ledgers;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

mod check;
mod keyed;
mod mixed;
mod options;
mod readers;
mod together;
mod transfers;
mod withdrawals;

/// The webhook secret of `config/default.toml`.
pub const DEV_WEBHOOK_SECRET: &str = "onramp-dev-webhook-secret";

pub(crate) use options::{TRANSFER_SCENARIOS, WITHDRAWAL_SCENARIOS};

/// Problems kept word for word; the rest are only counted.
const PROBLEMS_KEPT: usize = 50;
/// Attempts at one webhook delivery (retried on 5xx and transport errors, as the bank would).
const DELIVERY_ATTEMPTS: u32 = 6;
/// Sign-in and deposit creation are tried this often, a pause between tries: a refusal under
/// load is not yet a failed run.
const SETUP_ATTEMPTS: u32 = 3;
const SETUP_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A few hundred deposits over a few users, with duplicates, shuffling and failures.
    Smoke,
    /// Many deposits of one user settled by concurrent webhooks.
    HotWallet,
    /// Deposits spread over many users.
    Spread,
    /// `POST /api/deposit` (with the bank's create-order) as the measured phase.
    DepositCreate,
    /// `GET /api/balance` while webhooks land.
    BalanceReads,
    /// Many funded users sending each other random transfers, some over the balance.
    TransfersRandom,
    /// One funded sender paying many recipients at once, until its money runs out.
    TransfersHotSender,
    /// Pairs sending each other transfers at the same moment (A→B and B→A), many pairs.
    TransfersCrossing,
    /// Funded users withdrawing to the bank at once, some payouts failing, some over the
    /// balance; beside the same run's deposit creations.
    Withdrawals,
    /// Deposits settling, transfers and withdrawals at once on the same wallets.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Smoke => "smoke",
            Scenario::HotWallet => "hot-wallet",
            Scenario::Spread => "spread",
            Scenario::DepositCreate => "deposit-create",
            Scenario::BalanceReads => "balance-reads",
            Scenario::TransfersRandom => "transfers-random",
            Scenario::TransfersHotSender => "transfers-hot-sender",
            Scenario::TransfersCrossing => "transfers-crossing",
            Scenario::Withdrawals => "withdrawals",
            Scenario::Mixed => "mixed",
        }
    }

    /// One of the transfers-* scenarios.
    pub fn is_transfers(self) -> bool {
        matches!(
            self,
            Scenario::TransfersRandom | Scenario::TransfersHotSender | Scenario::TransfersCrossing
        )
    }

    /// A scenario that sends transfers: the transfers-* and mixed.
    pub fn has_transfers(self) -> bool {
        self.is_transfers() || self == Scenario::Mixed
    }

    /// A scenario that makes withdrawals: withdrawals and mixed.
    pub fn has_withdrawals(self) -> bool {
        matches!(self, Scenario::Withdrawals | Scenario::Mixed)
    }

    /// The funding deposits of `users` users when `--deposits` does not say: one each in the
    /// transfers-* (but the hot sender's, which has its own) and mixed scenarios, several each
    /// in withdrawals; `None` where the scenario's own default stands.
    pub fn funding_deposits(self, users: usize) -> Option<usize> {
        match self {
            Scenario::Withdrawals => Some(users * withdrawals::DEPOSITS_PER_USER),
            Scenario::TransfersHotSender => None,
            s if s.has_transfers() => Some(users),
            _ => None,
        }
    }

    /// The phase whose rate the scenario is about.
    pub fn headline(self) -> &'static str {
        match self {
            Scenario::DepositCreate => "deposits",
            Scenario::BalanceReads => "balance-reads",
            Scenario::Withdrawals => "withdrawals",
            // The transfers, withdrawals and deposit webhooks as one (`together`).
            Scenario::Mixed => "mixed",
            s if s.is_transfers() => "transfers",
            _ => "webhooks",
        }
    }
}

/// Everything a run needs; [`LoadConfig::new`] fills in the scenario's defaults.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub scenario: Scenario,
    /// The app's base URL, or several separated by commas (see [`crate::apps::Apps`]).
    pub app: String,
    pub webhook_secret: String,
    /// The load's shape, echoed in the report.
    pub run: RunConfig,
    /// A progress line on stderr every second.
    pub progress: bool,
}

impl LoadConfig {
    pub fn new(scenario: Scenario, app: impl Into<String>) -> LoadConfig {
        LoadConfig {
            scenario,
            app: app.into(),
            webhook_secret: DEV_WEBHOOK_SECRET.into(),
            run: RunConfig::defaults(scenario),
            progress: true,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let r = &self.run;
        ensure!(r.users >= 1, "--users must be at least 1");
        ensure!(r.deposits >= 1, "--deposits must be at least 1");
        ensure!(
            r.concurrency >= 1 && r.webhook_concurrency >= 1,
            "--concurrency must be at least 1"
        );
        ensure!(
            r.duplicates.is_finite() && (0.0..=10.0).contains(&r.duplicates),
            "--duplicates must be from 0 to 10"
        );
        options::share("--failures", r.failures)?;
        ensure!(
            r.healthz_secs.is_finite() && r.healthz_secs >= 0.0,
            "--healthz-secs must be 0 or more"
        );
        crate::apps::Apps::parse(&self.app)?;
        let s = self.scenario;
        let kind = ("transfer", TRANSFER_SCENARIOS);
        if let Some(t) = options::where_made(s, r.transfer.as_ref(), s.has_transfers(), kind)? {
            transfers::validate(self, t)?;
        }
        let kind = ("withdrawal", WITHDRAWAL_SCENARIOS);
        if let Some(w) = options::where_made(s, r.withdrawal.as_ref(), s.has_withdrawals(), kind)? {
            withdrawals::validate(self, w)?;
        }
        Ok(())
    }
}

impl RunConfig {
    fn defaults(scenario: Scenario) -> RunConfig {
        let base = RunConfig {
            concurrency: 64,
            webhook_concurrency: 64,
            users: 1,
            deposits: 20_000,
            duplicates: 0.0,
            out_of_order: false,
            failures: 0.0,
            healthz_secs: 5.0,
            seed: rand::random(),
            transfer: None,
            withdrawal: None,
        };
        match scenario {
            Scenario::Smoke => RunConfig {
                concurrency: 16,
                webhook_concurrency: 16,
                users: 5,
                deposits: 300,
                duplicates: 0.3,
                out_of_order: true,
                failures: 0.1,
                healthz_secs: 1.0,
                ..base
            },
            Scenario::HotWallet => base,
            Scenario::Spread => RunConfig {
                users: 10_000,
                ..base
            },
            Scenario::DepositCreate => RunConfig { users: 100, ..base },
            Scenario::BalanceReads => RunConfig {
                users: 100,
                webhook_concurrency: 8,
                ..base
            },
            Scenario::Withdrawals => withdrawals::defaults(base),
            Scenario::Mixed => mixed::defaults(base),
            s => transfers::defaults(s, base),
        }
    }
}

/// What every phase shares: the client, the app's URLs, and the problems found so far.
struct Ctx {
    client: reqwest::Client,
    apps: crate::apps::Apps,
    secret: Vec<u8>,
    problems: Mutex<Vec<String>>,
    problems_total: AtomicUsize,
}

impl Ctx {
    /// The app's URL for the next request (with several, each in turn).
    fn app(&self) -> &str {
        self.apps.next()
    }

    fn problem(&self, message: String) {
        self.problems_total.fetch_add(1, Relaxed);
        let mut p = lock(&self.problems);
        if p.len() < PROBLEMS_KEPT {
            p.push(message);
        }
    }

    fn problems(&self) -> Vec<String> {
        lock(&self.problems).clone()
    }
}

/// The signed-in users, by index.
struct Users {
    /// Each user's `session_id=…` cookie pair.
    cookies: Vec<String>,
    /// The email and name each signed in with (transfers address users by email).
    emails: Vec<String>,
    names: Vec<String>,
    /// A few random characters that make this run's emails and keys its own.
    run_id: String,
    /// Refused creations per user: the app may have stored each as a failed deposit.
    refused: Vec<AtomicUsize>,
}

/// A deposit as created and as the load tool will settle it.
struct Dep {
    user: usize,
    amount: i64,
    success: bool,
    id: String,
    event_id: String,
    body: Vec<u8>,
    /// An event with the opposite status, sent after the final one (expects `409`).
    contradiction: Option<(String, Vec<u8>)>,
}

impl Dep {
    /// The event a delivery sends, and the statuses that answer it correctly.
    fn event(&self, contradiction: bool) -> (&str, &[u8], &'static [u16]) {
        match (&self.contradiction, contradiction) {
            (Some((e, b)), true) => (e, b, &[409]),
            _ => (&self.event_id, &self.body, &[200]),
        }
    }
}

#[derive(Clone, Copy)]
struct Delivery {
    dep: usize,
    contradiction: bool,
}

/// What the run will send, decided from the seed before the first webhook.
struct Plan {
    /// Deposits asked for (some may not have been created).
    requested: usize,
    deps: Vec<Dep>,
    wave: Vec<Delivery>,
    /// Sent once every deposit is final.
    late: Vec<Delivery>,
}

/// The settle and check phases' shared state.
struct Settle {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    deps: Vec<Dep>,
    /// Per user: what the successful deposits add up to, and the indices of the deposits.
    expected: Vec<i64>,
    by_user: Vec<Vec<usize>>,
    /// `{"status": "applied"}` answers per deposit.
    applied: Vec<AtomicU32>,
    /// A delivery of this deposit failed in transport (it may have been applied unseen).
    lost: Vec<AtomicBool>,
}

/// The sign-in phase's shared state.
struct SigningIn {
    ctx: Arc<Ctx>,
    cookies: Vec<OnceLock<String>>,
    /// New to the app (they carry the run's id), so every user starts at a zero balance.
    emails: Vec<String>,
    names: Vec<String>,
}

/// The deposit phase's shared state.
struct Creating {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    /// Each deposit's user and amount.
    owners: Vec<usize>,
    amounts: Vec<i64>,
    created: Vec<OnceLock<Created>>,
}

/// A webhook phase's shared state.
struct Wave {
    settle: Arc<Settle>,
    deliveries: Vec<Delivery>,
}

/// An event as the bank sends it, under an event id of its own.
fn event(c: &Created, amount: i64, success: bool) -> (String, Vec<u8>) {
    let event_id = format!("evt_load_{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": event_id,
        "token": c.token,
        "ref": c.id,
        "amount": amount,
        "currency": "INR",
        "status": if success { "SUCCESS" } else { "FAILURE" },
    }))
    .expect("JSON");
    (event_id, body)
}

/// How many copies beyond the first: the whole part of `share`, plus one more by chance.
fn extra_copies(rng: &mut StdRng, share: f64) -> usize {
    let whole = share.trunc();
    whole as usize + usize::from(rng.gen_bool((share - whole).clamp(0.0, 1.0)))
}

async fn retrying<T, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(_) if tries < SETUP_ATTEMPTS => {
                tries += 1;
                tokio::time::sleep(SETUP_PAUSE).await;
            }
            result => return result,
        }
    }
}

/// One run's shared state: the configuration, what every phase uses, the seeded generator and
/// the phases reported so far.
struct Run {
    cfg: LoadConfig,
    ctx: Arc<Ctx>,
    rng: StdRng,
    progress: Progress,
    phases: Vec<PhaseReport>,
}

/// Runs one scenario against a running app and checks the books afterwards. An `Err` means the
/// run could not be carried out (the app is unreachable, sign-in failed); a run that went
/// through answers its [`Report`], whose `check.passed` says whether the books were right.
pub async fn run_scenario(cfg: LoadConfig) -> anyhow::Result<Report> {
    match cfg.scenario {
        s if s.is_transfers() => return transfers::run(cfg).await,
        Scenario::Withdrawals => return withdrawals::run(cfg).await,
        Scenario::Mixed => return mixed::run(cfg).await,
        _ => {}
    }
    let mut run = Run::start(cfg).await?;
    run.healthz().await;
    let users = run.sign_in().await?;
    let created = run.create_deposits(users).await;
    let plan = run.plan(&created);
    let mut counts = run.counts(&plan);
    let settle = Arc::new(Settle::new(
        run.ctx.clone(),
        created.users.clone(),
        plan.deps,
    ));
    let credited_per_sec = run.settle(&settle, plan.wave).await?;
    run.late(&settle, plan.late).await;
    let check = run.check(&settle, Ledgers::default(), &mut counts).await;
    Ok(run.report(counts, check, credited_per_sec, None))
}

impl Run {
    async fn start(cfg: LoadConfig) -> anyhow::Result<Run> {
        cfg.validate()?;
        let apps = crate::apps::Apps::parse(&cfg.app)?;
        let client = http::client(cfg.run.concurrency.max(cfg.run.webhook_concurrency))?;
        for app in apps.all() {
            let up = client
                .get(format!("{app}/healthz"))
                .send()
                .await
                .with_context(|| format!("cannot reach the app at {app}"))?;
            ensure!(
                up.status().is_success(),
                "{app}/healthz answered {}",
                up.status()
            );
        }
        let ctx = Arc::new(Ctx {
            client,
            apps,
            secret: cfg.webhook_secret.as_bytes().to_vec(),
            problems: Mutex::new(Vec::new()),
            problems_total: AtomicUsize::new(0),
        });
        let progress = Progress {
            show: cfg.progress,
            metrics: Some((ctx.client.clone(), ctx.apps.all().to_vec())),
        };
        Ok(Run {
            rng: StdRng::seed_from_u64(cfg.run.seed),
            cfg,
            ctx,
            progress,
            phases: Vec::new(),
        })
    }

    /// `work(state, item, rec)` for each of the phase's items, every task sharing one `state`.
    fn phase<S, F, Fut>(
        &self,
        name: &'static str,
        bound: Bound,
        concurrency: usize,
        state: Arc<S>,
        work: F,
    ) -> impl Future<Output = PhaseResult> + Send + 'static
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, usize, Arc<Rec>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let work = move |i, rec| work(state.clone(), i, rec);
        run_phase(name, bound, concurrency, self.progress.clone(), work)
    }

    /// Runs `phase` between two scrapes of `/metrics`, so that its report shows what the DB
    /// writer did meanwhile.
    async fn measured(&mut self, phase: impl Future<Output = PhaseResult>) {
        let before = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        let r = phase.await;
        let after = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        let writer = metrics::figures(before.as_ref(), after.as_ref());
        self.phases.push(PhaseReport::new(&r, writer));
    }

    /// A measured phase at the connections of every phase but the webhooks.
    async fn measured_phase<S, F, Fut>(
        &mut self,
        name: &'static str,
        bound: Bound,
        state: Arc<S>,
        work: F,
    ) where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, usize, Arc<Rec>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let phase = self.phase(name, bound, self.cfg.run.concurrency, state, work);
        self.measured(phase).await;
    }

    /// The server's HTTP ceiling, at the same concurrency as the other phases.
    async fn healthz(&mut self) {
        let bound = Bound::For(Duration::from_secs_f64(self.cfg.run.healthz_secs));
        self.measured_phase("healthz", bound, self.ctx.clone(), ping)
            .await;
    }

    /// Signs the users in through the provider the app sends browsers to. Without all of them
    /// the books cannot be checked, so a user who cannot sign in ends the run.
    async fn sign_in(&mut self) -> anyhow::Result<Arc<Users>> {
        let users = self.cfg.run.users;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let state = Arc::new(SigningIn {
            ctx: self.ctx.clone(),
            emails: (0..users)
                .map(|i| format!("load-{run_id}-{i}@load.test"))
                .collect(),
            names: (0..users).map(|i| format!("Load user {i}")).collect(),
            cookies: (0..users).map(|_| OnceLock::new()).collect(),
        });
        self.measured_phase("sign-in", Bound::Items(users), state.clone(), sign_in_user)
            .await;
        let missing = state.cookies.iter().filter(|c| c.get().is_none()).count();
        if missing > 0 {
            let first = self.ctx.problems().first().cloned().unwrap_or_default();
            bail!(
                "{missing} of {users} users could not sign in through {}/api/auth/google ({first})",
                self.ctx.apps.list()
            );
        }
        Ok(Arc::new(Users {
            cookies: state
                .cookies
                .iter()
                .flat_map(OnceLock::get)
                .cloned()
                .collect(),
            emails: state.emails.clone(),
            names: state.names.clone(),
            run_id,
            refused: (0..users).map(|_| AtomicUsize::new(0)).collect(),
        }))
    }

    /// Creates the deposits, round-robin over the users.
    async fn create_deposits(&mut self, users: Arc<Users>) -> Arc<Creating> {
        let deposits = self.cfg.run.deposits;
        let amounts = (0..deposits)
            .map(|_| self.rng.gen_range(100..=100_000))
            .collect();
        let owners = (0..deposits).map(|i| i % self.cfg.run.users).collect();
        self.create("deposits", users, owners, amounts).await
    }

    /// Creates deposit `i` of `amounts[i]` paise for user `owners[i]`, as phase `name`.
    async fn create(
        &mut self,
        name: &'static str,
        users: Arc<Users>,
        owners: Vec<usize>,
        amounts: Vec<i64>,
    ) -> Arc<Creating> {
        let deposits = amounts.len();
        let state = Arc::new(Creating {
            ctx: self.ctx.clone(),
            users,
            owners,
            amounts,
            created: (0..deposits).map(|_| OnceLock::new()).collect(),
        });
        self.measured_phase(name, Bound::Items(deposits), state.clone(), create_deposit)
            .await;
        state
    }

    /// Each created deposit's outcome and its deliveries. The generator is drawn from in a fixed
    /// order, so that a seed stands for the same plan.
    fn plan(&mut self, created: &Creating) -> Plan {
        let cfg = &self.cfg.run;
        let deps = outcomes(&mut self.rng, cfg, created);
        let mut wave = first_wave(&mut self.rng, cfg.duplicates, &deps);
        let mut late = Vec::new();
        if cfg.out_of_order {
            wave.shuffle(&mut self.rng);
            late = late_deliveries(&mut self.rng, cfg.duplicates, &deps);
        }
        Plan {
            requested: created.amounts.len(),
            deps,
            wave,
            late,
        }
    }

    fn counts(&self, plan: &Plan) -> Counts {
        let successes = plan.deps.iter().filter(|d| d.success);
        Counts {
            users: self.cfg.run.users,
            deposits_requested: plan.requested,
            deposits_created: plan.deps.len(),
            successes: successes.clone().count(),
            failures: plan.deps.iter().filter(|d| !d.success).count(),
            credited_paise: successes.map(|d| d.amount).sum(),
            deliveries: plan.wave.len(),
            duplicate_deliveries: plan.wave.len() - plan.deps.len(),
            late_deliveries: plan.late.len(),
            contradicting_deliveries: plan.late.iter().filter(|d| d.contradiction).count(),
            ..Counts::default()
        }
    }

    /// The first wave of webhooks; in balance-reads, balances are read while it lands. Answers
    /// the successful deposits credited per second.
    async fn settle(&mut self, settle: &Arc<Settle>, wave: Vec<Delivery>) -> anyhow::Result<f64> {
        let before = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        let reads = (self.cfg.scenario == Scenario::BalanceReads).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let bound = Bound::Until(stop.clone());
            let concurrency = self.cfg.run.concurrency;
            let phase = self.phase("balance-reads", bound, concurrency, settle.clone(), read);
            (stop, tokio::spawn(phase))
        });
        let webhooks = self.deliveries("webhooks", settle, wave).await;
        let reads = match reads {
            Some((stop, handle)) => {
                stop.store(true, Relaxed);
                Some(handle.await.context("the balance readers failed")?)
            }
            None => None,
        };
        let after = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        // The reads ran alongside the webhooks: one pair of scrapes covers both.
        let writer = metrics::figures(before.as_ref(), after.as_ref());
        self.phases
            .push(PhaseReport::new(&webhooks, writer.clone()));
        if let Some(r) = &reads {
            self.phases.push(PhaseReport::new(r, writer));
        }
        Ok(settle.credited() as f64 / webhooks.elapsed.as_secs_f64().max(1e-9))
    }

    /// The same events again, and contradicting ones, once every deposit is final.
    async fn late(&mut self, settle: &Arc<Settle>, late: Vec<Delivery>) {
        if !late.is_empty() {
            let phase = self.deliveries("late", settle, late);
            self.measured(phase).await;
        }
    }

    fn deliveries(
        &self,
        name: &'static str,
        settle: &Arc<Settle>,
        deliveries: Vec<Delivery>,
    ) -> impl Future<Output = PhaseResult> + Send + 'static {
        let concurrency = self.cfg.run.webhook_concurrency;
        self.deliveries_at(name, settle, deliveries, concurrency)
    }

    /// The `deliveries` as phase `name` on `concurrency` connections.
    fn deliveries_at(
        &self,
        name: &'static str,
        settle: &Arc<Settle>,
        deliveries: Vec<Delivery>,
        concurrency: usize,
    ) -> impl Future<Output = PhaseResult> + Send + 'static {
        let bound = Bound::Items(deliveries.len());
        let wave = Arc::new(Wave {
            settle: settle.clone(),
            deliveries,
        });
        self.phase(name, bound, concurrency, wave, deliver_one)
    }

    fn report(
        self,
        counts: Counts,
        check: CheckReport,
        credited_per_sec: f64,
        transfers: Option<TransferReport>,
    ) -> Report {
        let headline = self.cfg.scenario.headline();
        let rate_of = |name: &str| {
            self.phases
                .iter()
                .find(|p| p.name == name)
                .map_or(0.0, |p| p.rate)
        };
        let (headline_rate, healthz_rate) = (rate_of(headline), rate_of("healthz"));
        Report {
            scenario: self.cfg.scenario.name().to_owned(),
            app: self.ctx.apps.list(),
            config: self.cfg.run,
            headline_phase: headline.to_owned(),
            headline_rate,
            healthz_rate,
            ratio_to_healthz: if healthz_rate > 0.0 {
                headline_rate / healthz_rate
            } else {
                0.0
            },
            credited_per_sec,
            phases: self.phases,
            counts,
            check,
            transfers,
            withdrawals: None,
            mixed: None,
        }
    }
}

fn outcomes(rng: &mut StdRng, cfg: &RunConfig, created: &Creating) -> Vec<Dep> {
    let mut deps = Vec::with_capacity(cfg.deposits);
    for (i, slot) in created.created.iter().enumerate() {
        let Some(c) = slot.get() else { continue };
        let amount = created.amounts[i];
        let success = !rng.gen_bool(cfg.failures);
        let (event_id, body) = event(c, amount, success);
        // Out of order, one deposit in twenty also gets the opposite status after its final one.
        let contradiction =
            (cfg.out_of_order && rng.gen_bool(0.05)).then(|| event(c, amount, !success));
        deps.push(Dep {
            user: created.owners[i],
            amount,
            success,
            id: c.id.clone(),
            event_id,
            body,
            contradiction,
        });
    }
    deps
}

fn first_wave(rng: &mut StdRng, duplicates: f64, deps: &[Dep]) -> Vec<Delivery> {
    let mut wave = Vec::new();
    for dep in 0..deps.len() {
        let copies = 1 + extra_copies(rng, duplicates);
        wave.extend((0..copies).map(|_| Delivery {
            dep,
            contradiction: false,
        }));
    }
    wave
}

/// Re-sent final events (at least one deposit in ten) and the contradicting ones, shuffled.
fn late_deliveries(rng: &mut StdRng, duplicates: f64, deps: &[Dep]) -> Vec<Delivery> {
    let resend = duplicates.clamp(0.1, 1.0);
    let mut late = Vec::new();
    for (dep, d) in deps.iter().enumerate() {
        if rng.gen_bool(resend) {
            late.push(Delivery {
                dep,
                contradiction: false,
            });
        }
        if d.contradiction.is_some() {
            late.push(Delivery {
                dep,
                contradiction: true,
            });
        }
    }
    late.shuffle(rng);
    late
}

impl Settle {
    fn new(ctx: Arc<Ctx>, users: Arc<Users>, deps: Vec<Dep>) -> Settle {
        let mut expected = vec![0i64; users.cookies.len()];
        let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); users.cookies.len()];
        for (i, d) in deps.iter().enumerate() {
            if d.success {
                expected[d.user] += d.amount;
            }
            by_user[d.user].push(i);
        }
        Settle {
            ctx,
            users,
            expected,
            by_user,
            applied: deps.iter().map(|_| AtomicU32::new(0)).collect(),
            lost: deps.iter().map(|_| AtomicBool::new(false)).collect(),
            deps,
        }
    }

    fn credited(&self) -> usize {
        self.deps
            .iter()
            .zip(&self.applied)
            .filter(|(d, a)| d.success && a.load(Relaxed) > 0)
            .count()
    }

    /// Reports the deposits applied twice, and those never applied unless a delivery was lost
    /// in transport (the app may have applied it unseen). Answers the "applied" answers in all.
    fn applied_once(&self) -> u64 {
        let mut total = 0;
        for (i, d) in self.deps.iter().enumerate() {
            let applied = self.applied[i].load(Relaxed);
            total += u64::from(applied);
            if applied > 1 {
                self.ctx.problem(format!(
                    "deposit {} was answered \"applied\" {applied} times",
                    d.id
                ));
            } else if applied == 0 && !self.lost[i].load(Relaxed) {
                self.ctx.problem(format!(
                    "deposit {}: no delivery was answered \"applied\"",
                    d.id
                ));
            }
        }
        total
    }

    /// Records what one answer says about its deposit; `Continue` with the reason when the bank
    /// would try again.
    fn judge(&self, d: Delivery, answer: Result<Answer, String>) -> ControlFlow<(), String> {
        let dep = &self.deps[d.dep];
        match answer {
            Ok(a) if a.status.as_u16() == 200 && !d.contradiction => {
                self.accepted(d.dep, &a);
                ControlFlow::Break(())
            }
            Ok(a) if a.status.as_u16() == 409 && d.contradiction => ControlFlow::Break(()),
            Ok(a) if a.status.is_server_error() => {
                ControlFlow::Continue(format!("{} {}", a.status, a.snippet()))
            }
            Ok(a) => {
                let what = if d.contradiction {
                    "a contradicting event"
                } else {
                    "its event"
                };
                self.ctx.problem(format!(
                    "deposit {}: {what} was answered {} {}",
                    dep.id,
                    a.status,
                    a.snippet()
                ));
                ControlFlow::Break(())
            }
            Err(e) => {
                self.lost[d.dep].store(true, Relaxed);
                ControlFlow::Continue(e)
            }
        }
    }

    fn accepted(&self, dep: usize, a: &Answer) {
        let status = a
            .json()
            .and_then(|v| v["status"].as_str().map(str::to_owned));
        match status.as_deref() {
            Some("applied") => {
                self.applied[dep].fetch_add(1, Relaxed);
            }
            Some("duplicate") => {}
            _ => self.ctx.problem(format!(
                "deposit {}: webhook answered 200 with {}",
                self.deps[dep].id,
                a.snippet()
            )),
        }
    }
}

// The phases' work, one item at a time.

async fn ping(ctx: Arc<Ctx>, _: usize, rec: Arc<Rec>) {
    // The ceiling is the rate and the latencies; `rec` has counted any error already.
    let _ = http::healthz(&ctx.client, &rec, ctx.app()).await;
}

async fn sign_in_user(s: Arc<SigningIn>, i: usize, rec: Arc<Rec>) {
    let (email, name) = (&s.emails[i], &s.names[i]);
    let (client, app) = (&s.ctx.client, s.ctx.app());
    match retrying(|| http::sign_in(client, &rec, app, email, name)).await {
        Ok(cookie) => {
            let _ = s.cookies[i].set(cookie);
        }
        Err(e) => s.ctx.problem(format!("user {i} could not sign in: {e}")),
    }
}

async fn create_deposit(s: Arc<Creating>, i: usize, rec: Arc<Rec>) {
    let user = s.owners[i];
    let (client, app) = (&s.ctx.client, s.ctx.app());
    let (cookie, refused) = (&s.users.cookies[user], &s.users.refused[user]);
    let created = retrying(|| async {
        let created = http::create_deposit(client, &rec, app, cookie, s.amounts[i]).await;
        if created.is_err() {
            refused.fetch_add(1, Relaxed);
        }
        created
    })
    .await;
    match created {
        Ok(d) => {
            let _ = s.created[i].set(d);
        }
        Err(e) => s.ctx.problem(format!(
            "deposit {i} of user {user} could not be created: {e}"
        )),
    }
}

/// A balance read while webhooks land may lag the credits, but never pass what they add up to.
async fn read(s: Arc<Settle>, i: usize, rec: Arc<Rec>) {
    let user = i.wrapping_mul(2_654_435_761) % s.users.cookies.len();
    let cookie = &s.users.cookies[user];
    if let Ok(b) = http::balance(&s.ctx.client, &rec, s.ctx.app(), cookie).await {
        if b < 0 || b > s.expected[user] {
            s.ctx.problem(format!(
                "user {user}: balance read {b} paise, more than the {} it can reach",
                s.expected[user]
            ));
        }
    }
}

async fn deliver_one(w: Arc<Wave>, i: usize, rec: Arc<Rec>) {
    deliver(&w.settle, &rec, w.deliveries[i]).await
}

async fn deliver(s: &Settle, rec: &Rec, d: Delivery) {
    let dep = &s.deps[d.dep];
    let (event_id, body, expected) = dep.event(d.contradiction);
    let ctx = &s.ctx;
    let mut last = String::new();
    for attempt in 0..DELIVERY_ATTEMPTS {
        let answer = http::post_webhook(
            &ctx.client,
            rec,
            ctx.app(),
            &ctx.secret,
            event_id,
            body,
            expected,
        )
        .await;
        match s.judge(d, answer) {
            ControlFlow::Continue(why) => last = why,
            ControlFlow::Break(()) => return,
        }
        tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
    }
    ctx.problem(format!(
        "deposit {}: no acceptable answer after {DELIVERY_ATTEMPTS} attempts (last: {last})",
        dep.id
    ));
}

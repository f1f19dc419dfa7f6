//! The scenarios: sign users in, create their deposits, settle them with signed webhooks as the
//! bank would (duplicates, shuffling, failures and late re-deliveries as asked), measure
//! `/healthz` at the same concurrency, and check the books through the API at the end.

use super::http::{self, Created};
use super::metrics;
use super::phase::{run_phase, Bound, PhaseResult, Progress, Rec};
use super::report::{CheckReport, Counts, PhaseReport, Report, RunConfig};
use anyhow::{bail, ensure, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The webhook secret of `config/default.toml`.
pub const DEV_WEBHOOK_SECRET: &str = "onramp-dev-webhook-secret";

/// Problems kept word for word; the rest are only counted.
const PROBLEMS_KEPT: usize = 50;
/// Attempts at one webhook delivery (retried on 5xx and transport errors, as the bank would).
const DELIVERY_ATTEMPTS: u32 = 6;

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
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Smoke => "smoke",
            Scenario::HotWallet => "hot-wallet",
            Scenario::Spread => "spread",
            Scenario::DepositCreate => "deposit-create",
            Scenario::BalanceReads => "balance-reads",
        }
    }

    /// The phase whose rate the scenario is about.
    pub fn headline(self) -> &'static str {
        match self {
            Scenario::DepositCreate => "deposits",
            Scenario::BalanceReads => "balance-reads",
            _ => "webhooks",
        }
    }
}

/// Everything a run needs; [`LoadConfig::new`] fills in the scenario's defaults.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub scenario: Scenario,
    /// The app's base URL.
    pub app: String,
    pub webhook_secret: String,
    /// Connections for every phase but the webhooks.
    pub concurrency: usize,
    /// Connections posting webhooks.
    pub webhook_concurrency: usize,
    pub users: usize,
    pub deposits: usize,
    /// Extra deliveries of the same event per deposit (0.3: three deposits in ten get one).
    pub duplicates: f64,
    /// Shuffle the deliveries, and re-deliver some events (and contradicting ones) at the end.
    pub out_of_order: bool,
    /// Share of deposits the bank reports as FAILURE.
    pub failures: f64,
    pub healthz_secs: f64,
    pub seed: u64,
    /// A progress line on stderr every second.
    pub progress: bool,
}

impl LoadConfig {
    pub fn new(scenario: Scenario, app: impl Into<String>) -> LoadConfig {
        let base = LoadConfig {
            scenario,
            app: app.into(),
            webhook_secret: DEV_WEBHOOK_SECRET.into(),
            concurrency: 64,
            webhook_concurrency: 64,
            users: 1,
            deposits: 20_000,
            duplicates: 0.0,
            out_of_order: false,
            failures: 0.0,
            healthz_secs: 5.0,
            seed: rand::random(),
            progress: true,
        };
        match scenario {
            Scenario::Smoke => LoadConfig {
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
            Scenario::Spread => LoadConfig {
                users: 10_000,
                ..base
            },
            Scenario::DepositCreate => LoadConfig { users: 100, ..base },
            Scenario::BalanceReads => LoadConfig {
                users: 100,
                webhook_concurrency: 8,
                ..base
            },
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.users >= 1, "--users must be at least 1");
        ensure!(self.deposits >= 1, "--deposits must be at least 1");
        ensure!(
            self.concurrency >= 1 && self.webhook_concurrency >= 1,
            "--concurrency must be at least 1"
        );
        ensure!(
            self.duplicates.is_finite() && (0.0..=10.0).contains(&self.duplicates),
            "--duplicates must be from 0 to 10"
        );
        ensure!(
            (0.0..=1.0).contains(&self.failures),
            "--failures must be from 0 to 1"
        );
        ensure!(
            self.healthz_secs.is_finite() && self.healthz_secs >= 0.0,
            "--healthz-secs must be 0 or more"
        );
        url::Url::parse(&self.app).with_context(|| format!("--app {:?} is not a URL", self.app))?;
        Ok(())
    }

    fn echo(&self) -> RunConfig {
        RunConfig {
            concurrency: self.concurrency,
            webhook_concurrency: self.webhook_concurrency,
            users: self.users,
            deposits: self.deposits,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            failures: self.failures,
            healthz_secs: self.healthz_secs,
            seed: self.seed,
        }
    }
}

/// What every phase shares: the client, the app, and the problems found so far.
struct Ctx {
    client: reqwest::Client,
    app: String,
    secret: Vec<u8>,
    problems: Mutex<Vec<String>>,
    problems_total: AtomicUsize,
}

impl Ctx {
    fn problem(&self, message: String) {
        self.problems_total.fetch_add(1, Relaxed);
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < PROBLEMS_KEPT {
            p.push(message);
        }
    }
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

#[derive(Clone, Copy)]
struct Delivery {
    dep: usize,
    contradiction: bool,
}

/// The settle phases' shared state.
struct Settle {
    ctx: Arc<Ctx>,
    deps: Vec<Dep>,
    /// `{"status": "applied"}` answers per deposit.
    applied: Vec<AtomicU32>,
    /// A delivery of this deposit failed in transport (it may have been applied unseen).
    lost: Vec<AtomicBool>,
}

fn event(event_id: &str, c: &Created, amount: i64, success: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_id": event_id,
        "token": c.token,
        "ref": c.id,
        "amount": amount,
        "currency": "INR",
        "status": if success { "SUCCESS" } else { "FAILURE" },
    }))
    .expect("JSON")
}

fn event_id() -> String {
    format!("evt_load_{}", uuid::Uuid::new_v4().simple())
}

/// How many copies beyond the first: the whole part of `share`, plus one more by chance.
fn extra_copies(rng: &mut StdRng, share: f64) -> usize {
    let whole = share.trunc();
    whole as usize + usize::from(rng.gen_bool((share - whole).clamp(0.0, 1.0)))
}

async fn measured<F>(ctx: &Ctx, phase: F) -> PhaseReport
where
    F: Future<Output = PhaseResult>,
{
    let before = metrics::scrape(&ctx.client, &ctx.app).await;
    let r = phase.await;
    let after = metrics::scrape(&ctx.client, &ctx.app).await;
    PhaseReport::new(&r, metrics::figures(before.as_ref(), after.as_ref()))
}

async fn deliver(s: &Settle, rec: &Rec, d: Delivery) {
    let dep = &s.deps[d.dep];
    let (event_id, body, expected): (&str, &[u8], &[u16]) =
        match (&dep.contradiction, d.contradiction) {
            (Some((e, b)), true) => (e, b, &[409]),
            _ => (&dep.event_id, &dep.body, &[200]),
        };
    let ctx = &s.ctx;
    let mut last = String::new();
    for attempt in 0..DELIVERY_ATTEMPTS {
        match http::post_webhook(
            &ctx.client,
            rec,
            &ctx.app,
            &ctx.secret,
            event_id,
            body,
            expected,
        )
        .await
        {
            Ok(a) if a.status.as_u16() == 200 && !d.contradiction => {
                let status = a
                    .json()
                    .and_then(|v| v["status"].as_str().map(str::to_owned));
                match status.as_deref() {
                    Some("applied") => {
                        s.applied[d.dep].fetch_add(1, Relaxed);
                    }
                    Some("duplicate") => {}
                    _ => ctx.problem(format!(
                        "deposit {}: webhook answered 200 with {}",
                        dep.id,
                        a.snippet()
                    )),
                }
                return;
            }
            Ok(a) if a.status.as_u16() == 409 && d.contradiction => return,
            Ok(a) if a.status.is_server_error() => {
                last = format!("{} {}", a.status, a.snippet());
            }
            Ok(a) => {
                let what = if d.contradiction {
                    "a contradicting event"
                } else {
                    "its event"
                };
                ctx.problem(format!(
                    "deposit {}: {what} was answered {} {}",
                    dep.id,
                    a.status,
                    a.snippet()
                ));
                return;
            }
            Err(e) => {
                s.lost[d.dep].store(true, Relaxed);
                last = e;
            }
        }
        tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
    }
    ctx.problem(format!(
        "deposit {}: no acceptable answer after {DELIVERY_ATTEMPTS} attempts (last: {last})",
        dep.id
    ));
}

/// Runs one scenario against a running app and checks the books afterwards. An `Err` means the
/// run could not be carried out (the app is unreachable, sign-in failed); a run that went
/// through answers its [`Report`], whose `check.passed` says whether the books were right.
pub async fn run_scenario(cfg: LoadConfig) -> anyhow::Result<Report> {
    cfg.validate()?;
    let app = cfg.app.trim_end_matches('/').to_owned();
    let client = http::client(cfg.concurrency.max(cfg.webhook_concurrency))?;
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
    let ctx = Arc::new(Ctx {
        client,
        app,
        secret: cfg.webhook_secret.as_bytes().to_vec(),
        problems: Mutex::new(Vec::new()),
        problems_total: AtomicUsize::new(0),
    });
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let progress = Progress {
        show: cfg.progress,
        metrics: Some((ctx.client.clone(), ctx.app.clone())),
    };
    let mut phases = Vec::new();

    // The server's HTTP ceiling, at the same concurrency.
    let c = ctx.clone();
    phases.push(
        measured(
            &ctx,
            run_phase(
                "healthz",
                Bound::For(Duration::from_secs_f64(cfg.healthz_secs)),
                cfg.concurrency,
                progress.clone(),
                move |_, rec| {
                    let c = c.clone();
                    async move {
                        let _ = http::healthz(&c.client, &rec, &c.app).await;
                    }
                },
            ),
        )
        .await,
    );

    // Sign-in, through the provider the app sends browsers to.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let cookies: Arc<Vec<OnceLock<String>>> =
        Arc::new((0..cfg.users).map(|_| OnceLock::new()).collect());
    let (c, jar) = (ctx.clone(), cookies.clone());
    phases.push(
        measured(
            &ctx,
            run_phase(
                "sign-in",
                Bound::Items(cfg.users),
                cfg.concurrency,
                progress.clone(),
                move |i, rec| {
                    let (c, jar, run_id) = (c.clone(), jar.clone(), run_id.clone());
                    async move {
                        let email = format!("load-{run_id}-{i}@load.test");
                        let name = format!("Load user {i}");
                        for attempt in 0..3u32 {
                            match http::sign_in(&c.client, &rec, &c.app, &email, &name).await {
                                Ok(cookie) => {
                                    let _ = jar[i].set(cookie);
                                    return;
                                }
                                Err(e) if attempt == 2 => {
                                    c.problem(format!("user {i} could not sign in: {e}"))
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                            }
                        }
                    }
                },
            ),
        )
        .await,
    );
    let missing = cookies.iter().filter(|c| c.get().is_none()).count();
    if missing > 0 {
        let first = ctx
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .cloned()
            .unwrap_or_default();
        bail!(
            "{missing} of {} users could not sign in through {}/api/auth/google ({first})",
            cfg.users,
            ctx.app
        );
    }
    let cookies: Arc<Vec<String>> = Arc::new(
        cookies
            .iter()
            .map(|c| c.get().cloned().unwrap_or_default())
            .collect(),
    );

    // Deposits, round-robin over the users.
    let amounts: Arc<Vec<i64>> = Arc::new(
        (0..cfg.deposits)
            .map(|_| rng.gen_range(100..=100_000))
            .collect(),
    );
    let created: Arc<Vec<OnceLock<Created>>> =
        Arc::new((0..cfg.deposits).map(|_| OnceLock::new()).collect());
    // Refused creations per user: the app may have stored each as a failed deposit.
    let refused: Arc<Vec<AtomicUsize>> =
        Arc::new((0..cfg.users).map(|_| AtomicUsize::new(0)).collect());
    let (c, jar, am, cr, rf) = (
        ctx.clone(),
        cookies.clone(),
        amounts.clone(),
        created.clone(),
        refused.clone(),
    );
    let users = cfg.users;
    phases.push(
        measured(
            &ctx,
            run_phase(
                "deposits",
                Bound::Items(cfg.deposits),
                cfg.concurrency,
                progress.clone(),
                move |i, rec| {
                    let (c, jar, am, cr, rf) =
                        (c.clone(), jar.clone(), am.clone(), cr.clone(), rf.clone());
                    async move {
                        let user = i % users;
                        for attempt in 0..3u32 {
                            match http::create_deposit(&c.client, &rec, &c.app, &jar[user], am[i])
                                .await
                            {
                                Ok(d) => {
                                    let _ = cr[i].set(d);
                                    return;
                                }
                                Err(e) => {
                                    rf[user].fetch_add(1, Relaxed);
                                    if attempt == 2 {
                                        c.problem(format!(
                                            "deposit {i} of user {user} could not be created: {e}"
                                        ));
                                    } else {
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                    }
                                }
                            }
                        }
                    }
                },
            ),
        )
        .await,
    );

    // The plan: each deposit's outcome and its deliveries.
    let mut deps = Vec::with_capacity(cfg.deposits);
    for (i, slot) in created.iter().enumerate() {
        let Some(c) = slot.get() else { continue };
        let success = !rng.gen_bool(cfg.failures);
        let id = event_id();
        let body = event(&id, c, amounts[i], success);
        // Out of order, one deposit in twenty also gets the opposite status after its final one.
        let contradiction = (cfg.out_of_order && rng.gen_bool(0.05)).then(|| {
            let id = event_id();
            let body = event(&id, c, amounts[i], !success);
            (id, body)
        });
        deps.push(Dep {
            user: i % cfg.users,
            amount: amounts[i],
            success,
            id: c.id.clone(),
            event_id: id,
            body,
            contradiction,
        });
    }
    let mut counts = Counts {
        users: cfg.users,
        deposits_requested: cfg.deposits,
        deposits_created: deps.len(),
        successes: deps.iter().filter(|d| d.success).count(),
        failures: deps.iter().filter(|d| !d.success).count(),
        credited_paise: deps.iter().filter(|d| d.success).map(|d| d.amount).sum(),
        ..Counts::default()
    };
    let mut wave = Vec::new();
    for dep in 0..deps.len() {
        let copies = 1 + extra_copies(&mut rng, cfg.duplicates);
        counts.duplicate_deliveries += copies - 1;
        wave.extend((0..copies).map(|_| Delivery {
            dep,
            contradiction: false,
        }));
    }
    let mut late = Vec::new();
    if cfg.out_of_order {
        wave.shuffle(&mut rng);
        let resend = cfg.duplicates.clamp(0.1, 1.0);
        for (i, dep) in deps.iter().enumerate() {
            if rng.gen_bool(resend) {
                late.push(Delivery {
                    dep: i,
                    contradiction: false,
                });
            }
            if dep.contradiction.is_some() {
                counts.contradicting_deliveries += 1;
                late.push(Delivery {
                    dep: i,
                    contradiction: true,
                });
            }
        }
        late.shuffle(&mut rng);
    }
    counts.deliveries = wave.len();
    counts.late_deliveries = late.len();
    let mut expected = vec![0i64; cfg.users];
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); cfg.users];
    for (i, d) in deps.iter().enumerate() {
        if d.success {
            expected[d.user] += d.amount;
        }
        by_user[d.user].push(i);
    }
    let expected = Arc::new(expected);
    let settle = Arc::new(Settle {
        ctx: ctx.clone(),
        applied: deps.iter().map(|_| AtomicU32::new(0)).collect(),
        lost: deps.iter().map(|_| AtomicBool::new(false)).collect(),
        deps,
    });

    // The webhooks (and, in balance-reads, the reads while they land).
    let before = metrics::scrape(&ctx.client, &ctx.app).await;
    let reads = (cfg.scenario == Scenario::BalanceReads).then(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (c, jar, exp) = (ctx.clone(), cookies.clone(), expected.clone());
        let users = cfg.users;
        let handle = tokio::spawn(run_phase(
            "balance-reads",
            Bound::Until(stop.clone()),
            cfg.concurrency,
            progress.clone(),
            move |i, rec| {
                let (c, jar, exp) = (c.clone(), jar.clone(), exp.clone());
                async move {
                    let user = i.wrapping_mul(2_654_435_761) % users;
                    if let Ok(b) = http::balance(&c.client, &rec, &c.app, &jar[user]).await {
                        if b < 0 || b > exp[user] {
                            c.problem(format!(
                                "user {user}: balance read {b} paise, more than the {} it can reach",
                                exp[user]
                            ));
                        }
                    }
                }
            },
        ));
        (stop, handle)
    });
    let wave = Arc::new(wave);
    let (s, w) = (settle.clone(), wave.clone());
    let webhooks = run_phase(
        "webhooks",
        Bound::Items(wave.len()),
        cfg.webhook_concurrency,
        progress.clone(),
        move |i, rec| {
            let (s, w) = (s.clone(), w.clone());
            async move { deliver(&s, &rec, w[i]).await }
        },
    )
    .await;
    let reads = match reads {
        Some((stop, handle)) => {
            stop.store(true, Relaxed);
            Some(handle.await.context("the balance readers failed")?)
        }
        None => None,
    };
    let after = metrics::scrape(&ctx.client, &ctx.app).await;
    let writer = metrics::figures(before.as_ref(), after.as_ref());
    phases.push(PhaseReport::new(&webhooks, writer.clone()));
    if let Some(r) = &reads {
        phases.push(PhaseReport::new(r, writer));
    }
    let credited = settle
        .deps
        .iter()
        .zip(&settle.applied)
        .filter(|(d, a)| d.success && a.load(Relaxed) > 0)
        .count();
    let credited_per_sec = credited as f64 / webhooks.elapsed.as_secs_f64().max(1e-9);

    // Late deliveries: the same events again, and contradicting ones, once all are final.
    if !late.is_empty() {
        let late = Arc::new(late);
        let (s, l) = (settle.clone(), late.clone());
        phases.push(
            measured(
                &ctx,
                run_phase(
                    "late",
                    Bound::Items(late.len()),
                    cfg.webhook_concurrency,
                    progress.clone(),
                    move |i, rec| {
                        let (s, l) = (s.clone(), l.clone());
                        async move { deliver(&s, &rec, l[i]).await }
                    },
                ),
            )
            .await,
        );
    }

    // The check: every balance, every deposit's status, each applied once.
    let by_user = Arc::new(by_user);
    let observed = Arc::new(AtomicI64::new(0));
    let matched = Arc::new(AtomicUsize::new(0));
    let (s, jar, exp, bu, rf, obs, mat) = (
        settle.clone(),
        cookies.clone(),
        expected.clone(),
        by_user.clone(),
        refused.clone(),
        observed.clone(),
        matched.clone(),
    );
    phases.push(
        measured(
            &ctx,
            run_phase(
                "check",
                Bound::Items(cfg.users),
                cfg.concurrency,
                progress.clone(),
                move |u, rec| {
                    let (s, jar, exp, bu, rf, obs, mat) = (
                        s.clone(),
                        jar.clone(),
                        exp.clone(),
                        bu.clone(),
                        rf.clone(),
                        obs.clone(),
                        mat.clone(),
                    );
                    async move {
                        let ok =
                            check_user(&s, &rec, u, &jar[u], exp[u], &bu[u], rf[u].load(Relaxed))
                                .await;
                        obs.fetch_add(ok.0, Relaxed);
                        mat.fetch_add(ok.1, Relaxed);
                    }
                },
            ),
        )
        .await,
    );
    for (i, d) in settle.deps.iter().enumerate() {
        let applied = settle.applied[i].load(Relaxed);
        counts.applied += u64::from(applied);
        if applied > 1 {
            ctx.problem(format!(
                "deposit {} was answered \"applied\" {applied} times",
                d.id
            ));
        } else if applied == 0 && !settle.lost[i].load(Relaxed) {
            ctx.problem(format!(
                "deposit {}: no delivery was answered \"applied\"",
                d.id
            ));
        }
    }

    let problems_total = ctx.problems_total.load(Relaxed);
    let check = CheckReport {
        passed: problems_total == 0,
        users_checked: cfg.users,
        deposits_matched: matched.load(Relaxed),
        expected_balance_paise: expected.iter().sum(),
        observed_balance_paise: observed.load(Relaxed),
        problems_total,
        problems: ctx
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    let headline = cfg.scenario.headline();
    let rate_of = |name: &str| {
        phases
            .iter()
            .find(|p| p.name == name)
            .map_or(0.0, |p| p.rate)
    };
    let (headline_rate, healthz_rate) = (rate_of(headline), rate_of("healthz"));
    Ok(Report {
        scenario: cfg.scenario.name().to_owned(),
        app: ctx.app.clone(),
        config: cfg.echo(),
        headline_phase: headline.to_owned(),
        headline_rate,
        healthz_rate,
        ratio_to_healthz: if healthz_rate > 0.0 {
            headline_rate / healthz_rate
        } else {
            0.0
        },
        credited_per_sec,
        phases,
        counts,
        check,
    })
}

/// Checks one user: the balance equals the successful deposits, and every deposit is listed
/// once with the status and amount sent. Answers (balance seen, deposits matched).
async fn check_user(
    s: &Settle,
    rec: &Rec,
    user: usize,
    cookie: &str,
    expected: i64,
    deps: &[usize],
    refused: usize,
) -> (i64, usize) {
    let ctx = &s.ctx;
    let balance = match http::balance(&ctx.client, rec, &ctx.app, cookie).await {
        Ok(b) => b,
        Err(e) => {
            ctx.problem(format!("user {user}: {e}"));
            0
        }
    };
    if balance != expected {
        ctx.problem(format!(
            "user {user}: balance {balance} paise, but the successful deposits add up to {expected}"
        ));
    }
    let mine: HashMap<&str, usize> = deps.iter().map(|&i| (s.deps[i].id.as_str(), i)).collect();
    let mut seen = HashSet::new();
    let mut extra_allowed = refused;
    let mut matched = 0;
    let mut cursor: Option<String> = None;
    let most_pages = (deps.len() + refused) / 100 + 3;
    for _ in 0..most_pages {
        let page =
            http::transactions_page(&ctx.client, rec, &ctx.app, cookie, cursor.as_deref()).await;
        let (items, next) = match page {
            Ok(p) => p,
            Err(e) => {
                ctx.problem(format!("user {user}: {e}"));
                return (balance, matched);
            }
        };
        for item in &items {
            let id = item["id"].as_str().unwrap_or_default();
            let status = item["status"].as_str().unwrap_or_default();
            match mine.get(id) {
                Some(&i) => {
                    let d = &s.deps[i];
                    let want = if d.success { "success" } else { "failure" };
                    if !seen.insert(id.to_owned()) {
                        ctx.problem(format!("deposit {id} is listed twice"));
                    } else if status != want {
                        ctx.problem(format!("deposit {id} is {status:?}, the bank said {want}"));
                    } else if item["amount"].as_i64() != Some(d.amount) {
                        ctx.problem(format!(
                            "deposit {id} lists amount {}, created with {}",
                            item["amount"], d.amount
                        ));
                    } else {
                        matched += 1;
                    }
                }
                // A refused creation may have left a failed (or never-sent) deposit.
                None if status != "success" && extra_allowed > 0 => extra_allowed -= 1,
                None => ctx.problem(format!(
                    "user {user}: transaction {id} ({status}) was never created by this run"
                )),
            }
        }
        match next {
            Some(n) if !items.is_empty() => cursor = Some(n),
            _ => {
                for &i in deps {
                    if !seen.contains(s.deps[i].id.as_str()) {
                        ctx.problem(format!(
                            "deposit {} is missing from user {user}'s transactions",
                            s.deps[i].id
                        ));
                    }
                }
                return (balance, matched);
            }
        }
    }
    ctx.problem(format!(
        "user {user}: the transactions did not end after {most_pages} pages"
    ));
    (balance, matched)
}

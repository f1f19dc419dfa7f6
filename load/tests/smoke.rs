//! The load tool's smoke scenario against the real app, started in-process on port 0 with a
//! fresh SQLite database, the bank simulator and the development identity provider: a few
//! hundred deposits over a few users, settled by duplicate, shuffled, failed, late and
//! contradicting webhooks, then checked through the API; small transfers-* runs (crossing
//! pairs, random pairs with a webhook storm alongside, a hot sender); and small withdrawals and
//! mixed runs with the simulator's payout webhooks duplicated and reordered; each ending with
//! its books check passed.

use actix_web::dev::ServerHandle;
use onramp::configuration::default_settings;
use onramp::startup::Application;
use onramp_load::{run_scenario, LoadConfig, Report, Scenario, TransferReport, WithdrawalReport};
use secrecy::ExposeSecret;
use std::path::Path;

/// The app with its development bank and identity provider, on ports of their own and with
/// databases in `dir`; answers its address, its webhook secret and the handle that stops it.
async fn start_app(dir: &Path) -> (String, String, ServerHandle) {
    start_app_with(dir, false).await
}

/// [`start_app`]; with `stormy_payouts`, the simulator sends every payout webhook twice and
/// out of order, as `bench/run.sh` has it for the withdrawals and mixed scenarios.
async fn start_app_with(dir: &Path, stormy_payouts: bool) -> (String, String, ServerHandle) {
    let mut s = default_settings();
    if stormy_payouts {
        s.dev.webhook_duplicates = 1;
        s.dev.webhook_reorder = true;
    }
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.dev.bank_listen = "127.0.0.1:0".into();
    s.dev.idp_listen = "127.0.0.1:0".into();
    s.dev.bank_database_url = format!("sqlite://{}/bank.db", dir.display());
    s.database.url = format!("sqlite://{}/app.db", dir.display());
    s.database.max_connections = 5;
    let secret = s.bank.webhook_secret.expose_secret().to_owned();
    let app = Application::build(s).await.expect("the app builds");
    let address = format!("http://localhost:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    (address, secret, handle)
}

#[actix_web::test]
async fn smoke_scenario_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app(dir.path()).await;

    let mut config = LoadConfig::new(Scenario::Smoke, &address);
    config.webhook_secret = secret;
    config.run.seed = 7;
    config.progress = false;
    let report = run_scenario(config).await.expect("the scenario runs");
    println!("{}", report.table());

    assert!(
        report.check.passed,
        "the check failed: {:?}",
        report.check.problems
    );
    let n = &report.counts;
    assert_eq!(n.users, 5);
    assert_eq!(n.deposits_created, 300);
    assert_eq!(n.successes + n.failures, 300);
    assert!(n.failures > 0, "some deposits fail");
    assert!(n.duplicate_deliveries > 0, "some events are sent twice");
    assert!(
        n.late_deliveries > 0,
        "some events come after the final one"
    );
    assert!(n.contradicting_deliveries > 0, "some events contradict");
    assert_eq!(n.deliveries, 300 + n.duplicate_deliveries);
    assert_eq!(n.applied, 300, "each deposit is applied exactly once");
    assert_eq!(report.check.users_checked, 5);
    assert_eq!(report.check.deposits_matched, 300);
    assert_eq!(report.check.observed_balance_paise, n.credited_paise);
    assert_eq!(report.check.expected_balance_paise, n.credited_paise);

    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["healthz", "sign-in", "deposits", "webhooks", "late", "check"]
    );
    for p in &report.phases {
        assert!(p.requests > 0, "phase {} sent requests", p.name);
        assert!(p.p50_ms <= p.p99_ms && p.p99_ms <= p.max_ms);
    }
    let phase = |name: &str| report.phase(name).unwrap();
    assert_eq!(phase("sign-in").requests, 15, "three requests per sign-in");
    assert_eq!(phase("sign-in").errors, 0);
    assert_eq!(phase("deposits").requests, 300);
    assert_eq!(phase("deposits").errors, 0);
    assert!(phase("webhooks").requests >= n.deliveries as u64);
    assert!(report.healthz_rate > 0.0 && report.ratio_to_healthz > 0.0);
    // Where the app serves /metrics, the writer's group commits are visible per phase.
    let metrics = reqwest::get(format!("{address}/metrics")).await.unwrap();
    if metrics.status() == 200 {
        let writer = phase("webhooks").writer.clone().expect("writer figures");
        assert!(writer.commits > 0 && writer.mean_batch >= 1.0);
        assert!(writer.changes >= 300, "a settlement per deposit at least");
    }

    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["check"]["passed"], true);
    assert_eq!(json["phases"].as_array().unwrap().len(), 6);
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_wrong_webhook_secret_fails_the_check_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (address, _, handle) = start_app(dir.path()).await;

    let mut config = LoadConfig::new(Scenario::Smoke, &address);
    config.webhook_secret = "not-the-secret".into();
    config.run.deposits = 20;
    config.run.users = 2;
    config.run.healthz_secs = 0.2;
    config.progress = false;
    let report = run_scenario(config).await.expect("the scenario runs");
    assert!(!report.check.passed);
    assert!(report.check.problems_total >= 20);
    assert!(
        report.check.problems.iter().any(|p| p.contains("401")),
        "{:?}",
        report.check.problems
    );
    assert!(report.table().contains("check: FAILED"));
    handle.stop(true).await;
}

/// A small run of a transfers-* scenario: `users` users, `deposits` funding deposits, `transfers`
/// transfers and `storm` deposits settled alongside them.
fn transfer_config(
    scenario: Scenario,
    address: &str,
    secret: String,
    (users, deposits, transfers, storm): (usize, usize, usize, usize),
) -> LoadConfig {
    let mut config = LoadConfig::new(scenario, address);
    config.webhook_secret = secret;
    config.progress = false;
    let r = &mut config.run;
    r.seed = 11;
    r.concurrency = 16;
    r.webhook_concurrency = 8;
    r.healthz_secs = 0.2;
    r.users = users;
    r.deposits = deposits;
    let t = r
        .transfer
        .as_mut()
        .expect("a transfers scenario has transfer options");
    t.transfers = transfers;
    t.storm_deposits = storm;
    t.read_concurrency = 2;
    config
}

/// What every passing transfer run shows: each transfer ended as 201 or 409, each 201 was found
/// once on each side, the balances add up to the deposits, balances were read meanwhile.
fn assert_transfers_passed(report: &Report) -> &TransferReport {
    println!("{}", report.table());
    assert!(
        report.check.passed,
        "the check failed: {:?}",
        report.check.problems
    );
    let t = report.transfers.as_ref().expect("a transfer report");
    assert!(t.succeeded > 0, "some transfers go through");
    assert_eq!(t.succeeded + t.insufficient_funds, t.planned, "{t:?}");
    assert_eq!((t.other_answers, t.unresolved), (0, 0));
    assert_eq!(t.matched, t.succeeded, "each 201 listed once on each side");
    assert!(t.moved_paise > 0 && t.succeeded_per_sec > 0.0);
    assert!(
        t.balance_reads > 0,
        "balances are read while the transfers run"
    );
    assert!(t.lowest_balance_read.unwrap() >= 0);
    assert_eq!(
        report.check.observed_balance_paise,
        report.counts.credited_paise
    );
    assert_eq!(
        report.check.expected_balance_paise,
        report.counts.credited_paise
    );
    assert_eq!(report.headline_phase, "transfers");
    let transfers = report.phase("transfers").unwrap();
    assert!(transfers.requests >= t.planned as u64);
    assert_eq!(
        transfers.errors, 0,
        "every answer was 201 or 409: {:?}",
        transfers.error_samples
    );
    assert!(report.healthz_rate > 0.0 && t.succeeded_ratio_to_healthz > 0.0);
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["transfers"]["succeeded"], t.succeeded);
    t
}

fn phase_names(report: &Report) -> Vec<&str> {
    report.phases.iter().map(|p| p.name.as_str()).collect()
}

#[actix_web::test]
async fn transfers_crossing_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app(dir.path()).await;
    let config = transfer_config(
        Scenario::TransfersCrossing,
        &address,
        secret,
        (20, 20, 400, 0),
    );
    let report = run_scenario(config).await.expect("the scenario runs");
    let t = assert_transfers_passed(&report);
    assert_eq!(t.planned, 400, "200 rounds of a pair sending both ways");
    assert!(
        t.over_balance > 0,
        "some transfers ask for more than the sender holds"
    );
    assert!(t.insufficient_funds >= t.over_balance);
    assert_eq!(t.storm_deposits, 0);
    assert_eq!(report.counts.deposits_created, 20);
    assert_eq!(
        phase_names(&report),
        [
            "healthz",
            "sign-in",
            "deposits",
            "webhooks",
            "transfers",
            "balance-reads",
            "check"
        ]
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn transfers_random_with_a_webhook_storm_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app(dir.path()).await;
    let mut config = transfer_config(
        Scenario::TransfersRandom,
        &address,
        secret,
        (30, 30, 600, 200),
    );
    config.run.duplicates = 0.3;
    config.run.failures = 0.1;
    config.run.out_of_order = true;
    let report = run_scenario(config).await.expect("the scenario runs");
    let t = assert_transfers_passed(&report);
    assert_eq!(t.planned, 600);
    assert!(t.over_balance > 0 && t.insufficient_funds >= t.over_balance);
    assert_eq!(t.storm_deposits, 200);
    let n = &report.counts;
    assert_eq!(n.deposits_created, 230);
    assert!(n.failures > 0 && n.duplicate_deliveries > 0 && n.late_deliveries > 0);
    assert_eq!(n.applied, 230, "each deposit is applied exactly once");
    assert_eq!(
        phase_names(&report),
        [
            "healthz",
            "sign-in",
            "deposits",
            "storm-deposits",
            "webhooks",
            "transfers",
            "storm-webhooks",
            "balance-reads",
            "late",
            "check"
        ]
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn transfers_hot_sender_runs_out_of_money_and_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app(dir.path()).await;
    let config = transfer_config(
        Scenario::TransfersHotSender,
        &address,
        secret,
        (10, 3, 300, 40),
    );
    let report = run_scenario(config).await.expect("the scenario runs");
    let t = assert_transfers_passed(&report);
    assert_eq!((t.planned, t.over_balance), (300, 0));
    assert!(
        t.insufficient_funds > 0,
        "funded with nine tenths of what it sends, the sender runs out"
    );
    assert_eq!(report.counts.deposits_created, 43);
    handle.stop(true).await;
}

/// A small run of the withdrawals or mixed scenario: `users` users, `withdrawals` withdrawals
/// and, in mixed, `transfers` transfers and half as many deposits settled alongside.
fn withdrawal_config(
    scenario: Scenario,
    address: &str,
    secret: String,
    (users, withdrawals, transfers): (usize, usize, usize),
) -> LoadConfig {
    let mut config = LoadConfig::new(scenario, address);
    config.webhook_secret = secret;
    config.progress = false;
    let r = &mut config.run;
    r.seed = 13;
    r.concurrency = 16;
    r.webhook_concurrency = 8;
    r.healthz_secs = 0.2;
    r.users = users;
    r.deposits = scenario.funding_deposits(users).unwrap();
    let w = r.withdrawal.as_mut().expect("withdrawal options");
    w.withdrawals = withdrawals;
    w.read_concurrency = 2;
    if let Some(t) = r.transfer.as_mut() {
        t.transfers = transfers;
        t.storm_deposits = transfers / 2;
        t.read_concurrency = 2;
    }
    config
}

/// What every passing run with withdrawals shows: each ended as 201 or 409, the over-balance
/// ones refused, some payouts failed and came back, each 201 listed once, all settled, rates
/// measured.
fn assert_withdrawals_passed(report: &Report) -> &WithdrawalReport {
    println!("{}", report.table());
    assert!(
        report.check.passed,
        "the check failed: {:?}",
        report.check.problems
    );
    let w = report.withdrawals.as_ref().expect("a withdrawal report");
    assert!(w.succeeded > 0, "some withdrawals go through");
    assert_eq!(w.succeeded + w.insufficient_funds, w.planned, "{w:?}");
    assert_eq!((w.other_answers, w.unresolved), (0, 0));
    assert!(w.over_balance > 0 && w.insufficient_funds >= w.over_balance);
    assert!(w.failing > 0 && w.returned_paise > 0, "some payouts fail");
    assert_eq!(w.matched, w.succeeded, "each 201 listed once");
    assert!(w.settled_after_secs.is_some(), "every payout settled");
    assert!(w.succeeded_per_sec > 0.0 && w.deposits_created_per_sec > 0.0);
    assert!(w.p50_ms > 0.0 && w.p50_ms <= w.p99_ms);
    assert!(w.balance_reads > 0 && w.lowest_balance_read.unwrap() >= 0);
    assert_eq!(report.check.server_errors, 0);
    let credited = report.counts.credited_paise;
    let kept = w.withdrawn_paise - w.returned_paise;
    assert_eq!(report.check.expected_balance_paise, credited - kept);
    assert_eq!(report.check.observed_balance_paise, credited - kept);
    let phase = report.phase("withdrawals").unwrap();
    assert_eq!(phase.errors, 0, "{:?}", phase.error_samples);
    assert!(report.phase("payouts-settle").is_some());
    w
}

#[actix_web::test]
async fn withdrawals_pass_their_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app_with(dir.path(), true).await;
    let config = withdrawal_config(Scenario::Withdrawals, &address, secret, (12, 300, 0));
    let report = run_scenario(config).await.expect("the scenario runs");
    let w = assert_withdrawals_passed(&report);
    assert_eq!(w.planned, 300);
    assert_eq!(
        report.counts.deposits_created, 120,
        "ten funding deposits per user"
    );
    assert_eq!(report.headline_phase, "withdrawals");
    assert!(report.transfers.is_none() && report.mixed.is_none());
    assert_eq!(
        phase_names(&report),
        [
            "healthz",
            "sign-in",
            "deposits",
            "webhooks",
            "withdrawals",
            "balance-reads",
            "payouts-settle",
            "check"
        ]
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn mixed_deposits_transfers_and_withdrawals_pass_their_check() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app_with(dir.path(), true).await;
    let config = withdrawal_config(Scenario::Mixed, &address, secret, (20, 300, 300));
    let report = run_scenario(config).await.expect("the scenario runs");
    assert_withdrawals_passed(&report);
    let t = assert_transfers_passed_with_withdrawals(&report);
    assert_eq!((t.planned, t.storm_deposits), (300, 150));
    let n = &report.counts;
    assert_eq!(n.deposits_created, 170);
    assert!(n.duplicate_deliveries > 0 && n.late_deliveries > 0);
    assert_eq!(n.applied, 170, "each deposit is applied exactly once");
    let m = report.mixed.as_ref().expect("a mixed report");
    let kinds: Vec<&str> = m.kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(kinds, ["deposits", "transfers", "withdrawals"]);
    assert!(m.rate > 0.0 && m.p99_ms > 0.0);
    let all: u64 = m.kinds.iter().map(|k| k.requests).sum();
    assert_eq!(m.requests, all, "the mixed row is the three kinds together");
    assert_eq!(report.headline_phase, "mixed");
    assert!(report.headline_rate > 0.0);
    assert_eq!(
        phase_names(&report),
        [
            "healthz",
            "sign-in",
            "deposits",
            "storm-deposits",
            "webhooks",
            "transfers",
            "withdrawals",
            "storm-webhooks",
            "mixed",
            "balance-reads",
            "payouts-settle",
            "late",
            "check"
        ]
    );
    handle.stop(true).await;
}

/// The transfers of a mixed run: each ended as 201 or 409 and was listed once on each side.
fn assert_transfers_passed_with_withdrawals(report: &Report) -> &TransferReport {
    let t = report.transfers.as_ref().expect("a transfer report");
    assert!(t.succeeded > 0, "some transfers go through");
    assert_eq!(t.succeeded + t.insufficient_funds, t.planned, "{t:?}");
    assert_eq!(t.matched, t.succeeded, "each 201 listed once on each side");
    assert!(t.over_balance > 0 && t.insufficient_funds >= t.over_balance);
    t
}

/// `--app` with two URLs of one app, the second through Debian's nginx (the sample
/// `deploy/nginx.conf`): the scenario passes its check, and nginx passed on about half of the
/// deposit creations, as each request goes to the next URL in turn.
#[actix_web::test]
async fn several_app_urls_share_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (address, secret, handle) = start_app(dir.path()).await;
    let port = address.rsplit(':').next().unwrap();
    let nginx = onramp_test_support::nginx::Nginx::start(
        &format!("127.0.0.1:{port}"),
        onramp_test_support::free_port(),
    );

    let mut config = LoadConfig::new(Scenario::Smoke, format!("{address},{}", nginx.url));
    config.webhook_secret = secret;
    config.run.seed = 11;
    config.progress = false;
    let report = run_scenario(config).await.expect("the scenario runs");
    assert!(
        report.check.passed,
        "the check failed: {:?}",
        report.check.problems
    );
    assert_eq!(report.app, format!("{address},{}", nginx.url));
    let through_nginx = nginx.access_log().matches("POST /api/deposit ").count();
    assert!(
        (120..=180).contains(&through_nginx),
        "{through_nginx} of 300 deposit creations went through nginx"
    );
    handle.stop(true).await;
}

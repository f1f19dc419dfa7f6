//! Reconciliation: a bank that drops its webhooks still gets every deposit settled, once; a
//! deposit fails only once the bank can no longer take its payment.

use onramp::reconcile::{Reconciler, CHECKS_PER_SCAN};
use onramp_store::domain::{now_ms, BankToken, Currency, DepositId, UserId};
use onramp_store::{AttachOrder, NewDeposit};
use onramp_test_support::{on_both_databases, spawn_app_with, Backend, TestApp};
use serde_json::Value;
use std::time::{Duration, Instant};

on_both_databases!(
    an_approved_payment_whose_webhook_was_dropped_is_credited,
    a_declined_payment_whose_webhook_was_dropped_fails,
    a_deposit_the_bank_never_settles_fails_at_its_maximum_age,
    a_payment_after_the_maximum_age_is_refused_by_the_bank_and_charges_nothing,
    a_bank_down_across_the_maximum_age_keeps_the_deposit_until_it_answers,
    a_backlog_the_bank_cannot_answer_for_does_not_delay_a_new_deposit,
    a_deposit_whose_bank_answer_was_lost_ends_as_the_bank_says,
    a_deposit_checked_while_its_bank_order_is_on_its_way_is_checked_again_soon,
    a_webhook_that_arrives_after_reconciliation_is_a_duplicate,
    a_misrouted_html_404_never_fails_a_paid_deposit,
    a_create_order_answered_after_the_timeout_is_credited_when_paid,
);

/// An app whose bank drops every webhook, with a fast reconciliation schedule.
async fn app_with_a_bank_that_drops_webhooks(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.max_age_secs = 3;
        s.reconcile.scan_ms = 100;
    })
    .await
}

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn an_approved_payment_whose_webhook_was_dropped_is_credited(backend: Backend) {
    let app = app_with_a_bank_that_drops_webhooks(backend).await;
    let person = app.signed_in("dropped@example.com", "Dropped").await;
    let deposit = person.deposit(7_500).await;
    let id = deposit["id"].as_str().unwrap();
    assert_eq!(
        app.pay(deposit["url"].as_str().unwrap(), true)
            .await
            .status(),
        303
    );
    assert_eq!(person.wait_final(id).await, "success");
    assert_eq!(person.balance().await, 7_500);
    let list = app.bank().deliveries().await;
    assert!(
        list.iter().all(|d| !d.delivered),
        "the webhook really was dropped"
    );
    assert!(metric(&app, "onramp_reconciliation_total{outcome=\"success\"}").await >= 1.0);
    app.assert_books_balance().await;
}

async fn a_declined_payment_whose_webhook_was_dropped_fails(backend: Backend) {
    let app = app_with_a_bank_that_drops_webhooks(backend).await;
    let person = app.signed_in("declined@example.com", "Declined").await;
    let deposit = person.deposit(300).await;
    app.pay(deposit["url"].as_str().unwrap(), false).await;
    assert_eq!(
        person.wait_final(deposit["id"].as_str().unwrap()).await,
        "failure"
    );
    assert_eq!(person.balance().await, 0);
}

async fn a_deposit_the_bank_never_settles_fails_at_its_maximum_age(backend: Backend) {
    let app = app_with_a_bank_that_drops_webhooks(backend).await;
    let person = app.signed_in("abandoned@example.com", "Abandoned").await;
    let deposit = person.deposit(900).await;
    let id = deposit["id"].as_str().unwrap();
    let started = Instant::now();
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        person.transactions().await[0]["status"],
        "processing",
        "young and PENDING: left alone"
    );
    assert_eq!(person.wait_final(id).await, "failure");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not failed before its maximum age"
    );
    assert_eq!(
        app.bank_order(&app.token_of(id).await).await["status"],
        "CANCELLED",
        "failed only once the bank had ended the order"
    );
    assert_eq!(person.balance().await, 0);
    assert!(metric(&app, "onramp_reconciliation_total{outcome=\"cancelled\"}").await >= 1.0);
}

/// The tab left open: the user pays after the app stopped waiting. The bank must refuse, so
/// that nobody is charged for a deposit the wallet will never credit.
async fn a_payment_after_the_maximum_age_is_refused_by_the_bank_and_charges_nothing(
    backend: Backend,
) {
    let app = app_with_a_bank_that_drops_webhooks(backend).await;
    let person = app.signed_in("open-tab@example.com", "Open Tab").await;
    let deposit = person.deposit(2_500).await;
    let id = deposit["id"].as_str().unwrap();
    let pay_url = deposit["url"].as_str().unwrap();
    assert_eq!(person.wait_final(id).await, "failure");

    let page = reqwest::get(pay_url).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("bank-order-ended"),
        "the pay page refuses: {page}"
    );
    assert!(!page.contains("bank-approve"), "no Approve button");
    let token = app.token_of(id).await;
    let approve = reqwest::Client::new()
        .post(format!("{}/pay/approve", app.bank_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        approve.status(),
        409,
        "approving an ended order changes nothing"
    );
    let status = app.bank_order(&token).await["status"].clone();
    assert!(status == "CANCELLED" || status == "EXPIRED", "{status}");
    assert_eq!(person.balance().await, 0);
    app.assert_books_balance().await;
}

/// The bank is down when the deposit reaches its maximum age: the app cannot know whether the
/// user paid, so it keeps the deposit and asks again until the bank answers.
async fn a_bank_down_across_the_maximum_age_keeps_the_deposit_until_it_answers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let bank_db = format!("sqlite://{}/bank.db", dir.path().display());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bank_addr = listener.local_addr().unwrap();
    let config = |settings: &onramp::configuration::Settings| {
        let mut c = onramp::dev::bank_sim_config(settings, "http://127.0.0.1:9/dropped");
        c.database_url = bank_db.clone();
        c.faults.drop_deliveries = true;
        c
    };
    let app = spawn_app_with(backend, |s| {
        s.dev.bank_enabled = Some(false);
        s.bank.api_url = Some(format!("http://{bank_addr}"));
        s.reconcile.first_after_secs = 2;
        s.reconcile.every_secs = 1;
        s.reconcile.max_age_secs = 3;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let bank = onramp_bank_sim::BankSim::start(listener, config(&app.settings))
        .await
        .unwrap();
    let person = app.signed_in("outage@example.com", "Outage").await;
    let deposit = person.deposit(4_200).await;
    let id = deposit["id"].as_str().unwrap();
    let token = app.token_of(id).await;
    onramp_test_support::Bank::new(&bank.url(), &app.bank_api_key())
        .settle(&token, true)
        .await;
    bank.stop().await;

    actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    let item = person.transactions().await[0].clone();
    assert_eq!(
        item["status"], "processing",
        "past its maximum age, the bank down: kept"
    );
    assert_eq!(person.balance().await, 0);
    assert!(metric(&app, "onramp_reconciliation_total{outcome=\"error\"}").await >= 1.0);

    let listener = std::net::TcpListener::bind(bank_addr).unwrap();
    let bank = onramp_bank_sim::BankSim::start(listener, config(&app.settings))
        .await
        .unwrap();
    assert_eq!(
        person.wait_final(id).await,
        "success",
        "the payment the bank took"
    );
    assert_eq!(person.balance().await, 4_200);
    app.assert_books_balance().await;
    bank.stop().await;
}

/// A backlog of older deposits all due at once (here: 1,500 the bank has never heard of) is
/// more than one scan checks; a deposit just paid is checked in the very first scan all the
/// same, not after the backlog ahead of it.
async fn a_backlog_the_bank_cannot_answer_for_does_not_delay_a_new_deposit(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        // The test runs each scan itself, to count them.
        s.reconcile.enabled = false;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 60;
    })
    .await;
    let person = app.signed_in("backlog@example.com", "Backlog").await;
    let me: Value = person.me().await.json().await.unwrap();
    let user = UserId::parse(me["id"].as_str().unwrap()).unwrap();
    stuck_deposits(&app, user, 1_500).await;

    let deposit = person.deposit(6_400).await;
    let id = deposit["id"].as_str().unwrap();
    app.pay(deposit["url"].as_str().unwrap(), true).await;
    let reconciler = Reconciler::new(
        app.settings.reconcile.clone(),
        &app.state,
        Duration::from_millis(app.settings.bank.timeout_ms),
    );
    let checked = reconciler.scan().await.unwrap();
    assert_eq!(
        checked, CHECKS_PER_SCAN,
        "one scan checks part of the backlog"
    );

    let items = person.transactions().await;
    let item = items.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(item["status"], "success", "settled by the first scan");
    assert_eq!(person.balance().await, 6_400);
}

/// `n` processing deposits, older than any the test makes next, whose bank tokens the bank has
/// never issued, all due for a check now.
async fn stuck_deposits(app: &TestApp, user: UserId, n: usize) {
    let writer = &app.state.writer;
    let created = now_ms() - 60_000;
    for i in 0..n {
        let id = DepositId::new();
        let deposit = NewDeposit {
            id: id.clone(),
            user_id: user,
            amount: onramp_store::domain::Amount::parse(100, i64::MAX).unwrap(),
            currency: Currency::Inr,
            idempotency_key: None,
            key_cutoff: 0,
            now: created,
            first_check_at: 0,
        };
        writer.commit(deposit).await.unwrap();
        let attach = AttachOrder {
            deposit_id: id,
            token: BankToken::parse(&format!("bank_session_never_issued_{i}")).unwrap(),
            pay_url: "http://bank.invalid/pay".into(),
            now: created,
        };
        writer.commit(attach).await.unwrap();
    }
}

async fn a_webhook_that_arrives_after_reconciliation_is_a_duplicate(backend: Backend) {
    let app = app_with_a_bank_that_drops_webhooks(backend).await;
    let person = app.signed_in("late@example.com", "Late").await;
    let deposit = person.deposit(1_100).await;
    let id = deposit["id"].as_str().unwrap();
    app.pay(deposit["url"].as_str().unwrap(), true).await;
    assert_eq!(person.wait_final(id).await, "success");
    let late = app
        .post_webhook(&app.event_for(id, "SUCCESS").await, None)
        .await;
    assert_eq!(late.status(), 200);
    assert_eq!(late.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(person.balance().await, 1_100);
    app.assert_books_balance().await;
}

/// The app recorded a deposit and asked the bank, but never stored the answer (it stopped, or
/// its database stalled): the bank holds an order the app has no token for, and the user paid
/// it. Reconciliation asks for the order again by its ref and credits it, instead of failing a
/// deposit the bank has taken.
async fn a_deposit_whose_bank_answer_was_lost_ends_as_the_bank_says(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        s.bank.timeout_ms = 200;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let person = app
        .signed_in("lost-answer@example.com", "Lost Answer")
        .await;
    let me: Value = person.me().await.json().await.unwrap();
    let user = UserId::parse(me["id"].as_str().unwrap()).unwrap();
    let paid = DepositId::new();
    let unpaid = DepositId::new();
    for (id, amount) in [(&paid, 3_300), (&unpaid, 1_100)] {
        let deposit = NewDeposit {
            id: id.clone(),
            user_id: user,
            amount: onramp_store::domain::Amount::parse(amount, i64::MAX).unwrap(),
            currency: Currency::Inr,
            idempotency_key: None,
            key_cutoff: 0,
            now: now_ms() - 60_000,
            first_check_at: now_ms() + 3_600_000,
        };
        app.state.writer.commit(deposit).await.unwrap();
    }
    // The bank made the paid one's order, and the user paid it; the other it never saw.
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/bank/create-order", app.bank_url))
        .bearer_auth(app.bank_api_key())
        .json(&serde_json::json!({
            "ref": paid.as_str(), "amount": 3_300, "currency": "INR",
            "return_url": format!("{}/dashboard", app.address),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    app.bank().settle(token, true).await;
    app.db
        .execute("UPDATE pending_deposits SET next_check_at = 0")
        .await
        .unwrap();

    assert_eq!(person.wait_final(paid.as_str()).await, "success");
    assert_eq!(person.wait_final(unpaid.as_str()).await, "failure");
    assert_eq!(person.balance().await, 3_300);
    let orders = app.bank();
    assert_eq!(orders.order_status(token).await, "SUCCESS");
    app.assert_books_balance().await;
}

/// Reconciliation may look at a deposit between its recording and the bank's answer (here the
/// bank takes 1.5 s to answer create-order): it must look again at its regular pace, not only
/// once the create-order grace (3 × the bank timeout) is over.
async fn a_deposit_checked_while_its_bank_order_is_on_its_way_is_checked_again_soon(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        s.dev.create_order_delay_ms = 1_500;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let person = app.signed_in("slow-bank@example.com", "Slow Bank").await;
    let deposit = person.deposit(5_100).await;
    let id = deposit["id"].as_str().unwrap();
    app.pay(deposit["url"].as_str().unwrap(), true).await;
    let started = Instant::now();
    assert_eq!(person.wait_final(id).await, "success");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(person.balance().await, 5_100);
}

/// The bank's status and cancel calls reach a gateway that answers `404` with an HTML page (a
/// route broken by a deploy). That is not the bank saying it does not know the order: the app
/// holds the order's token, the user paid, and the deposit stays processing past its maximum
/// age while the fault is counted. The bank's webhook, when it finally comes, credits it (it
/// got `409` before: the deposit had been failed as "unknown at the bank").
async fn a_misrouted_html_404_never_fails_a_paid_deposit(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        s.dev.bank_misroute_orders = true;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.max_age_secs = 2;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let person = app.signed_in("misrouted@example.com", "Misrouted").await;
    let deposit = person.deposit(2_000).await;
    let id = deposit["id"].as_str().unwrap();
    assert_eq!(
        app.pay(deposit["url"].as_str().unwrap(), true)
            .await
            .status(),
        303
    );
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        person.transactions().await[0]["status"],
        "processing",
        "past its maximum age, and kept: the bank never said it does not know the order"
    );
    let counted = metric(
        &app,
        "onramp_bank_faults_total{call=\"cancel\",kind=\"fault\"}",
    )
    .await;
    assert!(counted >= 1.0, "the faults are counted: {counted}");

    let webhook = app
        .post_webhook(&app.event_for(id, "SUCCESS").await, None)
        .await;
    assert_eq!(webhook.status(), 200, "the bank's own word credits it");
    assert_eq!(person.wait_final(id).await, "success");
    assert_eq!(person.balance().await, 2_000);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

/// The bank makes the order but answers create-order after the app's timeout, twice. The user
/// gets `502` at once, and the deposit stays processing without a token (it was failed before,
/// with nothing to cancel the order). The order is paid: the bank's webhook, which names the
/// deposit by its ref, credits it (before, no deposit had the token and the money was lost).
async fn a_create_order_answered_after_the_timeout_is_credited_when_paid(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.bank.timeout_ms = 300;
        s.dev.create_order_delay_ms = 1_000;
    })
    .await;
    let person = app.signed_in("slow-order@example.com", "Slow Order").await;
    let started = Instant::now();
    let r = person
        .post_json("/api/deposit", &serde_json::json!({"amount": 4_400}))
        .await;
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at once: {:?}",
        started.elapsed()
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bank_unavailable");
    let items = person.transactions().await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["status"], "processing",
        "the bank may hold the order"
    );
    let id = items[0]["id"].as_str().unwrap().to_owned();

    // The bank did make the order (asked again with the same ref, it answers the same), and the
    // user pays it.
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/bank/create-order", app.bank_url))
        .bearer_auth(app.bank_api_key())
        .json(&serde_json::json!({
            "ref": id, "amount": 4_400, "currency": "INR",
            "return_url": format!("{}/dashboard", app.address),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.bank()
        .settle(created["token"].as_str().unwrap(), true)
        .await;
    assert_eq!(person.wait_final(&id).await, "success");
    assert_eq!(person.balance().await, 4_400);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

//! Reconciliation: a bank that drops its webhooks still gets every deposit settled, once.

use onramp_test_support::{on_both_databases, spawn_app_with, Backend, TestApp};
use serde_json::Value;
use std::time::{Duration, Instant};

on_both_databases!(
    an_approved_payment_whose_webhook_was_dropped_is_credited,
    a_declined_payment_whose_webhook_was_dropped_fails,
    a_deposit_the_bank_never_settles_fails_at_its_maximum_age,
    a_webhook_that_arrives_after_reconciliation_is_a_duplicate,
);

/// An app whose bank drops every webhook, with a fast reconciliation schedule.
async fn app_with_a_bank_that_drops_webhooks(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.dev.webhook_drop = true;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.max_tries = 5;
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
        "PENDING"
    );
    assert_eq!(person.balance().await, 0);
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

//! Adding money: the deposit API, the bank's pay page, and the balance and transactions the
//! person sees afterwards.

use onramp_test_support::{location, on_both_databases, spawn_app, spawn_app_with, Backend};
use serde_json::{json, Value};

on_both_databases!(
    a_person_adds_100_rupees_and_sees_it,
    a_declined_payment_fails_and_changes_nothing,
    every_bad_deposit_body_is_refused_and_stores_nothing,
    a_deposit_needs_a_session,
    a_bank_that_is_down_fails_the_deposit_with_502,
    a_bank_that_refuses_fails_the_deposit_with_502,
    the_same_idempotency_key_returns_the_first_response,
    a_replay_of_a_finished_deposit_answers_its_status_now,
    transactions_come_newest_first_in_pages,
    an_idle_wallet_is_stopped_and_reloaded_with_its_balance,
);

async fn a_person_adds_100_rupees_and_sees_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.signed_in("asha@example.com", "Asha").await;
    assert_eq!(asha.balance().await, 0);

    let deposit = asha.deposit(10_000).await;
    assert_eq!(deposit["status"], "processing");
    assert_eq!(deposit["amount"], 10_000);
    assert_eq!(deposit["currency"], "INR");
    let id = deposit["id"].as_str().unwrap();
    let pay_url = deposit["url"].as_str().unwrap();
    assert!(pay_url.starts_with(&app.bank_url), "{pay_url}");
    assert_eq!(asha.transactions().await[0]["status"], "processing");

    let approved = app.pay(pay_url, true).await;
    assert_eq!(approved.status(), 303);
    assert_eq!(location(&approved), format!("{}/dashboard", app.address));

    assert_eq!(asha.wait_final(id).await, "success");
    assert_eq!(asha.balance().await, 10_000);
    let items = asha.transactions().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["amount"], 10_000);
    assert!(items[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let token = app.token_of(id).await;
    assert_eq!(app.bank_order(&token).await["status"], "SUCCESS");
    app.assert_books_balance().await;
}

async fn a_declined_payment_fails_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ravi = app.signed_in("ravi@example.com", "Ravi").await;
    let deposit = ravi.deposit(5_000).await;
    let declined = app.pay(deposit["url"].as_str().unwrap(), false).await;
    assert_eq!(declined.status(), 303);
    assert_eq!(
        ravi.wait_final(deposit["id"].as_str().unwrap()).await,
        "failure"
    );
    assert_eq!(ravi.balance().await, 0);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        0
    );
    app.assert_books_balance().await;
}

async fn every_bad_deposit_body_is_refused_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let max = app.settings.deposit.max_amount;
    let user = app.signed_in("bad@example.com", "Bad Input").await;
    let cases: Vec<(&str, String)> = vec![
        ("a string", r#"{"amount": "100"}"#.into()),
        ("a float", r#"{"amount": 100.5}"#.into()),
        ("a whole float", r#"{"amount": 100.0}"#.into()),
        ("an exponent", r#"{"amount": 1e3}"#.into()),
        ("zero", r#"{"amount": 0}"#.into()),
        ("a negative number", r#"{"amount": -5}"#.into()),
        ("past the maximum", format!(r#"{{"amount": {}}}"#, max + 1)),
        ("past i64", r#"{"amount": 9223372036854775808}"#.into()),
        ("null", r#"{"amount": null}"#.into()),
        ("a missing field", "{}".into()),
        (
            "an unknown field",
            r#"{"amount": 100, "currency": "USD"}"#.into(),
        ),
        ("an array", "[100]".into()),
        ("not JSON", "amount=100".into()),
        ("truncated JSON", r#"{"amount": 1"#.into()),
        ("empty", "".into()),
    ];
    for (what, body) in cases {
        let r = user
            .client
            .post(format!("{}/api/deposit", app.address))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{what}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{what}: {v}"
        );
    }
    let r = user
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("Content-Type", "text/plain")
        .body(r#"{"amount": 100}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 0);
    // The largest allowed amount is fine.
    assert_eq!(user.deposit(max).await["amount"], max);
}

async fn a_deposit_needs_a_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .browser()
        .post_json("/api/deposit", &json!({"amount": 100}))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.browser().get("/api/balance").await.status(), 401);
    assert_eq!(app.browser().get("/api/transactions").await.status(), 401);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 0);
}

async fn a_bank_that_is_down_fails_the_deposit_with_502(backend: Backend) {
    // Bound and not listening for the whole test: a port let go at once was once taken by
    // another test's listener, which answered the create-order `201`.
    let dead = onramp_test_support::RefusedAddress::new();
    let url = dead.url.clone();
    let app = spawn_app_with(backend, |s| {
        s.bank.api_url = Some(url);
        s.bank.timeout_ms = 1000;
    })
    .await;
    let user = app.signed_in("down@example.com", "Down").await;
    let r = user
        .post_json("/api/deposit", &json!({"amount": 100}))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bank_unavailable");
    let items = user.transactions().await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["status"], "failure",
        "nothing stays processing that the bank does not know"
    );
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM deposits WHERE status = 'processing'")
            .await,
        0
    );
    assert_eq!(user.balance().await, 0);
}

async fn a_bank_that_refuses_fails_the_deposit_with_502(backend: Backend) {
    // A real simulator that does not know the app's API key: it answers create-order with 401.
    let dir = tempfile::tempdir().unwrap();
    let mut config = onramp_bank_sim::BankSimConfig::new(
        "a-key-the-app-does-not-have",
        vec!["whsec".into()],
        "http://127.0.0.1:9/unused",
        format!("sqlite://{}/strict-bank.db", dir.path().display()),
    );
    config.max_attempts = 1;
    let bank = onramp_bank_sim::BankSim::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        config,
    )
    .await
    .unwrap();
    let bank_url = bank.url();
    let app = spawn_app_with(backend, move |s| {
        s.dev.bank_enabled = Some(false);
        s.bank.api_url = Some(bank_url);
    })
    .await;
    let user = app.signed_in("refused@example.com", "Refused").await;
    let r = user
        .post_json("/api/deposit", &json!({"amount": 100}))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bank_unavailable");
    assert!(!v.to_string().contains("a-key"), "no secret in the error");
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM deposits WHERE status = 'failure'")
            .await,
        1
    );
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM deposits WHERE status = 'processing'")
            .await,
        0
    );
    bank.stop().await;
}

async fn the_same_idempotency_key_returns_the_first_response(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signed_in("idem@example.com", "Idem").await;
    let send = |amount: i64, key: &'static str| {
        user.client
            .post(format!("{}/api/deposit", app.address))
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": amount }))
            .send()
    };
    let first = send(700, "key-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(700, "key-1").await.unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the first response, again");
    let other_body = send(800, "key-1").await.unwrap();
    assert_eq!(other_body.status(), 422);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 1);
    let other_key = send(700, "key-2").await.unwrap();
    assert_eq!(other_key.status(), 201);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 2);
    // Another user's identical key is theirs alone.
    let someone = app.signed_in("other@example.com", "Other").await;
    let r = someone
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("Idempotency-Key", "key-1")
        .json(&json!({"amount": 900}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A bad key is refused.
    let r = user
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("Idempotency-Key", "")
        .json(&json!({"amount": 900}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 3);
}

/// The user retries a deposit (same key) after paying it: the answer is the same deposit, and
/// it says it succeeded rather than that it still waits.
async fn a_replay_of_a_finished_deposit_answers_its_status_now(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signed_in("replay@example.com", "Replay").await;
    let send = || {
        user.client
            .post(format!("{}/api/deposit", app.address))
            .header("Idempotency-Key", "pay-once")
            .json(&json!({ "amount": 1_200 }))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "processing");
    app.pay(first["url"].as_str().unwrap(), true).await;
    let id = first["id"].as_str().unwrap();
    assert_eq!(user.wait_final(id).await, "success");
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the same deposit");
    assert_eq!(again["status"], "success");
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 1);
    assert_eq!(user.balance().await, 1_200);
}

async fn transactions_come_newest_first_in_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signed_in("pages@example.com", "Pages").await;
    let mut ids = Vec::new();
    for amount in 1..=5 {
        ids.push(
            user.deposit(amount * 100).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/transactions?limit=2".to_owned(),
            Some(c) => format!("/api/transactions?limit=2&cursor={c}"),
        };
        let page: Value = user.get(&path).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=bm9wZQ",
        "cursor=%00",
    ] {
        let r = user.get(&format!("/api/transactions?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Nobody sees another person's deposits.
    let other = app.signed_in("nosy@example.com", "Nosy").await;
    assert!(other.transactions().await.is_empty());
}

async fn an_idle_wallet_is_stopped_and_reloaded_with_its_balance(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.wallet.idle_secs = 0).await;
    let user = app.signed_in("idle@example.com", "Idle").await;
    let d = user.deposit(1_234).await;
    app.pay(d["url"].as_str().unwrap(), true).await;
    assert_eq!(user.wait_final(d["id"].as_str().unwrap()).await, "success");
    let started = std::time::Instant::now();
    while app.state.wallets.alive() > 0 {
        assert!(started.elapsed().as_secs() < 5, "idle wallet actors stop");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        user.balance().await,
        1_234,
        "a reloaded wallet has the committed balance"
    );
}

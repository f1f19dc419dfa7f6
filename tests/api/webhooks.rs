//! The bank's webhooks: signatures, exactly-once credits under duplicates and concurrency,
//! refusals, an app that is down while the bank delivers, and a commit that fails.

use futures_util::future::join_all;
use onramp_bank_protocol::signature::sign_header;
use onramp_test_support::{
    app::start, free_port, on_both_databases, spawn_app, spawn_app_with, test_settings, Backend,
    Bank, Browser, TestApp,
};
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    the_same_webhook_twice_credits_once,
    fifty_concurrent_copies_of_one_webhook_credit_once,
    two_hundred_deposits_of_one_user_settle_concurrently,
    webhooks_for_many_users_at_once,
    a_forged_signature_is_refused,
    a_stale_timestamp_is_refused,
    a_rotated_secret_with_two_signatures_is_accepted,
    the_previous_secret_is_accepted_during_a_rotation,
    a_body_that_disagrees_with_the_deposit_is_refused,
    an_unknown_token_is_refused,
    a_malformed_event_is_refused,
    success_after_failure_and_failure_after_success_conflict,
    the_app_down_while_the_bank_delivers_is_credited_once_when_back,
    a_failed_commit_acknowledges_nothing_and_keeps_the_committed_balance,
    a_settlement_from_a_stale_read_is_answered_from_the_database,
    after_a_restart_a_webhook_finds_its_deposit_by_its_ref_and_refuses_as_before,
);

/// A signed-in person with `n` processing deposits of `amount` each.
async fn person_with_deposits(
    app: &TestApp,
    email: &str,
    n: usize,
    amount: i64,
) -> (Browser, Vec<String>) {
    let person = app.signed_in(email, "Payer").await;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(
            person.deposit(amount).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    (person, ids)
}

async fn status_of(r: reqwest::Response) -> u16 {
    r.status().as_u16()
}

async fn the_same_webhook_twice_credits_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "twice@example.com", 1, 2_500).await;
    let event = app.event_for(&ids[0], "SUCCESS").await;
    let first = app.post_webhook(&event, None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["status"], "applied");
    let second = app.post_webhook(&event, None).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(person.balance().await, 2_500);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        1
    );
    app.assert_books_balance().await;
}

async fn fifty_concurrent_copies_of_one_webhook_credit_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "fifty@example.com", 1, 1_000).await;
    let event = app.event_for(&ids[0], "SUCCESS").await;
    let answers =
        join_all((0..50).map(|_| async { status_of(app.post_webhook(&event, None).await).await }))
            .await;
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    assert_eq!(person.balance().await, 1_000);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        1
    );
    app.assert_books_balance().await;
}

async fn two_hundred_deposits_of_one_user_settle_concurrently(backend: Backend) {
    let app = spawn_app(backend).await;
    let person = app.signed_in("hot@example.com", "Hot Wallet").await;
    let ids: Vec<String> = join_all((1..=200).map(|i| {
        let person = &person;
        async move {
            person.deposit(i * 10).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }))
    .await;
    let mut events = Vec::new();
    for id in &ids {
        events.push(app.event_for(id, "SUCCESS").await);
    }
    let answers = join_all(
        events
            .iter()
            .map(|e| async { status_of(app.post_webhook(e, None).await).await }),
    )
    .await;
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    let expected: i64 = (1..=200).map(|i| i * 10).sum();
    assert_eq!(person.balance().await, expected);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        200
    );
    app.assert_books_balance().await;
    // Bank clearing paid for every credit.
    let clearing = app
        .db
        .scalar("SELECT balance FROM ledger_accounts WHERE system = 'bank_clearing'")
        .await;
    assert_eq!(clearing, -expected);
}

async fn webhooks_for_many_users_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut people = Vec::new();
    let mut events = Vec::new();
    for u in 0..20 {
        let (person, ids) =
            person_with_deposits(&app, &format!("user{u}@example.com"), 5, 100 + u).await;
        for id in &ids {
            events.push(app.event_for(id, "SUCCESS").await);
        }
        people.push((person, 5 * (100 + u)));
    }
    // Every event twice, all at once.
    let answers = join_all(
        events
            .iter()
            .chain(events.iter())
            .map(|e| async { status_of(app.post_webhook(e, None).await).await }),
    )
    .await;
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    for (person, expected) in &people {
        assert_eq!(person.balance().await, *expected);
    }
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        100
    );
    app.assert_books_balance().await;
}

async fn assert_nothing_credited(app: &TestApp, person: &Browser) {
    assert_eq!(person.balance().await, 0);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM ledger_entries").await,
        0
    );
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM deposits WHERE status <> 'processing'")
            .await,
        0
    );
}

async fn a_forged_signature_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "forged@example.com", 1, 100).await;
    let event = app.event_for(&ids[0], "SUCCESS").await;
    let r = app.post_webhook(&event, Some(b"not-the-secret")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_signature"
    );
    // Signed correctly, then changed in transit.
    let raw = serde_json::to_vec(&event).unwrap();
    let header = sign_header(
        &[&app.webhook_secret()],
        chrono::Utc::now().timestamp(),
        &raw,
    );
    let tampered = String::from_utf8(raw)
        .unwrap()
        .replace("100", "900")
        .into_bytes();
    assert_eq!(
        app.post_raw_webhook(tampered, Some(header)).await.status(),
        401
    );
    assert_eq!(
        app.post_raw_webhook(serde_json::to_vec(&event).unwrap(), None)
            .await
            .status(),
        401
    );
    for bad in ["t=abc,v1=00", "v1=", "garbage", ""] {
        let r = app
            .post_raw_webhook(serde_json::to_vec(&event).unwrap(), Some(bad.into()))
            .await;
        assert_eq!(r.status(), 401, "{bad:?}");
    }
    assert_nothing_credited(&app, &person).await;
}

async fn a_stale_timestamp_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "stale@example.com", 1, 100).await;
    let raw = serde_json::to_vec(&app.event_for(&ids[0], "SUCCESS").await).unwrap();
    let now = chrono::Utc::now().timestamp();
    for t in [now - 310, now + 310, now - 3600] {
        let header = sign_header(&[&app.webhook_secret()], t, &raw);
        assert_eq!(
            app.post_raw_webhook(raw.clone(), Some(header))
                .await
                .status(),
            401,
            "t = now {:+}",
            t - now
        );
    }
    assert_nothing_credited(&app, &person).await;
}

async fn a_rotated_secret_with_two_signatures_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "rotated@example.com", 1, 300).await;
    let raw = serde_json::to_vec(&app.event_for(&ids[0], "SUCCESS").await).unwrap();
    let header = sign_header(
        &[b"the-new-secret-the-app-lacks", &app.webhook_secret()],
        chrono::Utc::now().timestamp(),
        &raw,
    );
    assert_eq!(header.matches("v1=").count(), 2);
    assert_eq!(app.post_raw_webhook(raw, Some(header)).await.status(), 200);
    assert_eq!(person.balance().await, 300);
}

async fn the_previous_secret_is_accepted_during_a_rotation(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.bank.previous_webhook_secret = Some(secrecy::SecretString::from("the-old-secret"));
    })
    .await;
    let (person, ids) = person_with_deposits(&app, "old@example.com", 1, 400).await;
    let event = app.event_for(&ids[0], "SUCCESS").await;
    assert_eq!(
        app.post_webhook(&event, Some(b"the-old-secret"))
            .await
            .status(),
        200
    );
    assert_eq!(person.balance().await, 400);
}

async fn a_body_that_disagrees_with_the_deposit_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "mismatch@example.com", 2, 1_000).await;
    let mut more = app.event_for(&ids[0], "SUCCESS").await;
    more["amount"] = json!(1_000_000);
    let r = app.post_webhook(&more, None).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "deposit_mismatch"
    );
    let mut other_ref = app.event_for(&ids[0], "SUCCESS").await;
    other_ref["ref"] = json!(ids[1]);
    assert_eq!(app.post_webhook(&other_ref, None).await.status(), 422);
    let mut other_currency = app.event_for(&ids[0], "SUCCESS").await;
    other_currency["currency"] = json!("USD");
    assert_eq!(app.post_webhook(&other_currency, None).await.status(), 422);
    assert_nothing_credited(&app, &person).await;
}

async fn an_unknown_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "unknown@example.com", 1, 100).await;
    let mut event = app.event_for(&ids[0], "SUCCESS").await;
    event["token"] = json!("bank_session_doesnotexist");
    let r = app.post_webhook(&event, None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_token"
    );
    assert_nothing_credited(&app, &person).await;
}

async fn a_malformed_event_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "malformed@example.com", 1, 100).await;
    let good = app.event_for(&ids[0], "SUCCESS").await;
    let mut bodies: Vec<Vec<u8>> = vec![b"not json".to_vec(), b"{}".to_vec(), b"[]".to_vec()];
    for (field, value) in [
        ("status", json!("MAYBE")),
        ("amount", json!("100")),
        ("amount", json!(100.5)),
        ("token", json!(7)),
    ] {
        let mut e = good.clone();
        e[field] = value;
        bodies.push(serde_json::to_vec(&e).unwrap());
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("status");
    bodies.push(serde_json::to_vec(&missing).unwrap());
    for raw in bodies {
        let header = sign_header(
            &[&app.webhook_secret()],
            chrono::Utc::now().timestamp(),
            &raw,
        );
        let r = app.post_raw_webhook(raw.clone(), Some(header)).await;
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&raw));
    }
    assert_nothing_credited(&app, &person).await;
}

async fn success_after_failure_and_failure_after_success_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "conflict@example.com", 2, 600).await;
    assert_eq!(
        app.post_webhook(&app.event_for(&ids[0], "FAILURE").await, None)
            .await
            .status(),
        200
    );
    let r = app
        .post_webhook(&app.event_for(&ids[0], "SUCCESS").await, None)
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(person.balance().await, 0);
    assert_eq!(
        app.post_webhook(&app.event_for(&ids[1], "SUCCESS").await, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_webhook(&app.event_for(&ids[1], "FAILURE").await, None)
            .await
            .status(),
        409
    );
    assert_eq!(person.balance().await, 600);
    let statuses: Vec<String> = person
        .transactions()
        .await
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, vec!["success", "failure"]);
    app.assert_books_balance().await;
}

async fn the_app_down_while_the_bank_delivers_is_credited_once_when_back(backend: Backend) {
    // The bank runs on its own, so it outlives the app.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut settings = test_settings(backend, dir.path()).await;
    settings.server.listen = format!("127.0.0.1:{port}");
    settings.dev.bank_enabled = Some(false);
    let mut config = onramp::dev::bank_sim_config(
        &settings,
        &format!("http://127.0.0.1:{port}/api/webhooks/bank"),
    );
    config.database_url = format!("sqlite://{}/standalone-bank.db", dir.path().display());
    let bank = onramp_bank_sim::BankSim::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        config,
    )
    .await
    .unwrap();
    settings.bank.api_url = Some(bank.url());

    let app = start(settings.clone(), dir, backend).await;
    let (person, ids) = person_with_deposits(&app, "patient@example.com", 3, 5_000).await;
    let urls: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids {
            let token = app.token_of(id).await;
            v.push(format!("{}/pay?token={token}", bank.url()));
        }
        v
    };
    // The app goes down; the person approves at the bank meanwhile.
    app.handle.stop(true).await;
    let TestApp { dir, .. } = app;
    let standalone = Bank::new(
        &bank.url(),
        secrecy::ExposeSecret::expose_secret(&settings.bank.api_key),
    );
    for url in &urls {
        assert_eq!(standalone.pay(url, true).await.status(), 303);
    }
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let list = standalone.deliveries().await;
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().all(|d| !d.delivered),
        "nothing delivered while the app is down: {list:?}"
    );
    assert!(
        list.iter().any(|d| d.attempts >= 2),
        "the bank retried: {list:?}"
    );

    // Back up on the same port: the retries land and each credit applies once.
    let app = start(settings, dir, backend).await;
    let person = Browser {
        client: person.client,
        app: app.address.clone(),
    };
    for id in &ids {
        assert_eq!(person.wait_final(id).await, "success");
    }
    assert_eq!(person.balance().await, 15_000);
    app.assert_books_balance().await;
    bank.stop().await;
}

async fn a_failed_commit_acknowledges_nothing_and_keeps_the_committed_balance(backend: Backend) {
    let app = spawn_app(backend).await;
    let (person, ids) = person_with_deposits(&app, "unlucky@example.com", 11, 100).await;
    assert_eq!(
        app.post_webhook(&app.event_for(&ids[0], "SUCCESS").await, None)
            .await
            .status(),
        200
    );
    assert_eq!(person.balance().await, 100);

    app.break_ledger().await;
    let mut events = Vec::new();
    for id in &ids[1..] {
        events.push(app.event_for(id, "SUCCESS").await);
    }
    let answers = join_all(
        events
            .iter()
            .map(|e| async { status_of(app.post_webhook(e, None).await).await }),
    )
    .await;
    assert!(
        answers.iter().all(|&s| s >= 500),
        "no 200 for an uncommitted credit: {answers:?}"
    );
    assert_eq!(
        person.balance().await,
        100,
        "the wallet's memory is back at the committed balance"
    );
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM deposits WHERE status = 'processing'")
            .await,
        10
    );
    app.assert_books_balance().await;

    // The database recovers; the bank's retries now land.
    app.heal_ledger().await;
    let answers = join_all(
        events
            .iter()
            .map(|e| async { status_of(app.post_webhook(e, None).await).await }),
    )
    .await;
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    assert_eq!(person.balance().await, 1_100);
    app.assert_books_balance().await;
}

async fn a_settlement_from_a_stale_read_is_answered_from_the_database(backend: Backend) {
    use onramp_actors::wallet::{SettleError, SettleOutcome, SettleRequest, Settling};
    use onramp_store::domain::{DepositId, DepositStatus, Settlement};
    let app = spawn_app_with(backend, |s| s.wallet.idle_secs = 0).await;
    let (person, ids) = person_with_deposits(&app, "stale-read@example.com", 1, 800).await;
    assert_eq!(
        app.post_webhook(&app.event_for(&ids[0], "SUCCESS").await, None)
            .await
            .status(),
        200
    );
    // The wallet actor stops when idle and forgets what it settled.
    let started = std::time::Instant::now();
    while app.state.wallets.alive() > 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let deposit = app
        .state
        .store
        .deposit(&DepositId::parse(&ids[0]).unwrap())
        .await
        .unwrap()
        .unwrap();
    // A caller that read the row before the credit committed still believes it is processing.
    let stale = |outcome| SettleRequest {
        target: Settling::Deposit(deposit.id.clone()),
        user_id: deposit.user_id,
        amount: deposit.amount,
        stored_status: DepositStatus::Processing,
        outcome,
    };
    assert_eq!(
        app.state
            .wallets
            .settle(stale(Settlement::Success))
            .await
            .unwrap(),
        SettleOutcome::Duplicate
    );
    assert!(matches!(
        app.state.wallets.settle(stale(Settlement::Failure)).await,
        Err(SettleError::Contradicts("success"))
    ));
    assert_eq!(person.balance().await, 800);
    app.assert_books_balance().await;
}

/// After a restart nothing is remembered: a webhook finds its deposit by its ref (our own
/// time-ordered id), not in the index of random bank tokens, whose pages stop fitting in memory
/// as the books grow; the token is compared with the stored one. Refusals are as before: the
/// token of one deposit with the ref of another is `422`, an unknown token `404`. On
/// PostgreSQL the token index is read only for those two refusals.
async fn after_a_restart_a_webhook_finds_its_deposit_by_its_ref_and_refuses_as_before(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(backend, dir.path()).await;
    let app = start(settings.clone(), dir, backend).await;
    let (person, ids) = person_with_deposits(&app, "restarted@example.com", 3, 1_000).await;
    let mut events = Vec::new();
    for id in &ids {
        events.push(app.event_for(id, "SUCCESS").await);
    }
    app.handle.stop(true).await;
    let TestApp { dir, .. } = app;
    let app = start(settings, dir, backend).await;
    let person = Browser {
        client: person.client,
        app: app.address.clone(),
    };
    let token_scans = || async {
        app.db
            .scalar(
                "SELECT COALESCE(SUM(idx_scan), 0)::BIGINT FROM pg_stat_user_indexes \
                 WHERE indexrelname = 'deposits_bank_token_key'",
            )
            .await
    };
    let before = match backend {
        Backend::Postgres => token_scans().await,
        Backend::Sqlite => 0,
    };

    for event in &events[..2] {
        assert_eq!(app.post_webhook(event, None).await.status(), 200);
    }
    let mut crossed = events[2].clone();
    crossed["ref"] = json!(ids[1]);
    let r = app.post_webhook(&crossed, None).await;
    assert_eq!(r.status(), 422, "another deposit's token");
    let mut unknown = events[2].clone();
    unknown["token"] = json!("bank_session_nobodys");
    let r = app.post_webhook(&unknown, None).await;
    assert_eq!(r.status(), 404, "a token no deposit holds");
    assert_eq!(person.balance().await, 2_000);
    assert_eq!(app.post_webhook(&events[2], None).await.status(), 200);
    assert_eq!(person.balance().await, 3_000);

    if backend == Backend::Postgres {
        // The server's statistics reach other sessions within about ten seconds of a query.
        let mut waited = Duration::ZERO;
        while token_scans().await < before + 2 && waited < Duration::from_secs(20) {
            actix_web::rt::time::sleep(Duration::from_millis(250)).await;
            waited += Duration::from_millis(250);
        }
        actix_web::rt::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(
            token_scans().await - before,
            2,
            "the token index is read for the two refusals only"
        );
    }
    app.assert_books_balance().await;
}

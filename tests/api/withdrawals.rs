//! Withdrawals: money out of the wallet to the person's bank, paid out by the bank (the
//! simulator, over real HTTP), returned exactly once when the payout fails, and never returned
//! while the bank may still pay it out.

use futures_util::future::join_all;
use onramp_test_support::{on_both_databases, spawn_app, spawn_app_with, Backend, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    a_withdrawal_leaves_the_balance_at_once_and_the_banks_success_ends_it,
    a_failed_payout_returns_the_money_once_though_its_webhook_comes_twice_at_once,
    every_refusal_of_a_withdrawal_changes_nothing,
    fifty_withdrawals_of_700_at_once_from_10_000_pay_out_exactly_14,
    the_same_idempotency_key_withdraws_once,
    payout_webhooks_that_name_no_withdrawal_or_disagree_are_refused,
    a_bank_that_is_down_keeps_the_money_held_until_it_answers,
    a_payout_made_but_answered_after_the_timeout_is_paid_once_and_never_returned,
    a_payout_the_bank_refuses_comes_back_at_once_and_its_key_answers_the_refusal,
    a_payout_refused_after_the_bank_was_down_comes_back_and_its_key_answers_as_first,
    a_refusal_that_does_not_last_returns_the_money_and_no_payout_is_made_after,
);

async fn code_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The ledger entries of withdrawal `id`, by kind.
async fn entries_of(app: &TestApp, id: &str) -> Vec<String> {
    app.db
        .strings(&format!(
            "SELECT kind FROM ledger_entries WHERE ref = '{id}' ORDER BY id"
        ))
        .await
}

async fn a_withdrawal_leaves_the_balance_at_once_and_the_banks_success_ends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 10_000).await;
    let made = asha.withdraws(2_500).await;
    let id = made["id"].as_str().unwrap();
    assert!(id.starts_with("wd_"), "{id}");
    assert_eq!(
        made,
        json!({"id": id, "status": "processing", "amount": 2_500, "currency": "INR"})
    );
    assert_eq!(asha.balance().await, 7_500, "the amount left at once");
    let items = asha.transactions().await;
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["kind"], "withdrawal");
    assert_eq!(items[0]["amount"], 2_500);
    assert!(items[0].get("counterparty").is_none());

    assert_eq!(asha.wait_final(id).await, "success");
    assert_eq!(asha.balance().await, 7_500);
    assert_eq!(entries_of(&app, id).await, ["withdrawal", "payout"]);
    let payout = app.payout_of(id).await.expect("the payout id is kept");
    let at_bank: Value = reqwest::Client::new()
        .get(format!("{}/api/bank/payouts/{payout}", app.bank_url))
        .bearer_auth(app.bank_api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (at_bank["status"].as_str(), at_bank["ref"].as_str()),
        (Some("SUCCESS"), Some(id))
    );
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

/// The simulator fails a payout whose amount ends in 13 and sends its webhook twice, at once: the
/// amount comes back to the wallet exactly once. A contradicting webhook later is `409`.
async fn a_failed_payout_returns_the_money_once_though_its_webhook_comes_twice_at_once(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.dev.webhook_duplicates = 1).await;
    let bilal = app.funded("bilal@example.com", "Bilal", 5_000).await;
    let id = bilal.withdraws(1_013).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(bilal.balance().await, 3_987);
    assert_eq!(bilal.wait_final(&id).await, "failure");
    assert_eq!(bilal.balance().await, 5_000, "returned");
    // Both copies have been answered once the webhook is delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.bank().delivered_count().await < 2 && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout_return"]);
    assert_eq!(bilal.balance().await, 5_000, "returned once");

    let again = app
        .post_webhook(&app.payout_event_for(&id, "FAILURE").await, None)
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    let contradicting = app
        .post_webhook(&app.payout_event_for(&id, "SUCCESS").await, None)
        .await;
    let (status, body) = code_of(contradicting).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("status_conflict"))
    );
    assert_eq!(bilal.balance().await, 5_000);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

async fn every_refusal_of_a_withdrawal_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let chitra = app.funded("chitra@example.com", "Chitra", 1_000).await;
    let max = app.settings.withdrawal.max_amount;
    for (body, code) in [
        (json!({"amount": 0}), "invalid_amount"),
        (json!({"amount": -5}), "invalid_amount"),
        (json!({"amount": "100"}), "invalid_amount"),
        (json!({"amount": 1.5}), "invalid_amount"),
        (json!({"amount": 100.0}), "invalid_amount"),
        (json!({"amount": max + 1}), "invalid_amount"),
        (json!({}), "invalid_amount"),
        (json!({"amount": 100, "to": "x"}), "invalid_body"),
        (json!([100]), "invalid_body"),
    ] {
        let (status, answer) = code_of(chitra.post_json("/api/withdrawals", &body).await).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    let (status, answer) = code_of(chitra.withdraw(1_001).await).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("insufficient_funds"))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("₹10.00"),
        "{answer}"
    );
    let (status, _) = code_of(chitra.withdraw_with_key(100, Some("bad key")).await).await;
    assert_eq!(status, 400);
    let (status, _) = code_of(app.browser().withdraw(100).await).await;
    assert_eq!(status, 401);
    let cross = chitra
        .client
        .post(format!("{}/api/withdrawals", app.address))
        .header("Origin", "https://evil.example")
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM withdrawals").await, 0);
    assert_eq!(chitra.balance().await, 1_000);
    app.assert_audit_passes().await;
}

/// 10,000 paise and 50 withdrawals of 700 at once: 14 fit, and exactly 14 are made; every
/// other is refused `409`, none gets a `5xx`.
async fn fifty_withdrawals_of_700_at_once_from_10_000_pay_out_exactly_14(backend: Backend) {
    let app = spawn_app(backend).await;
    let dev = app.funded("dev@example.com", "Dev", 10_000).await;
    let answers = join_all((0..50).map(|_| dev.withdraw(700))).await;
    let mut made = Vec::new();
    let mut refused = 0;
    for a in answers {
        let (status, body) = code_of(a).await;
        match status {
            201 => made.push(body["id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(body["error"]["code"], "insufficient_funds");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((made.len(), refused), (14, 36));
    assert_eq!(dev.balance().await, 200);
    for id in &made {
        assert_eq!(dev.wait_final(id).await, "success");
    }
    assert_eq!(dev.balance().await, 200);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

/// A key names the first withdrawal: given again with the same amount it answers the same, with
/// another amount `422`; a key whose first answer was a refusal is free to be used again.
async fn the_same_idempotency_key_withdraws_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let esha = app.funded("esha@example.com", "Esha", 3_000).await;
    let copies = join_all((0..5).map(|_| esha.withdraw_with_key(1_000, Some("k1")))).await;
    let mut ids = Vec::new();
    for c in copies {
        let (status, body) = code_of(c).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one withdrawal: {ids:?}");
    assert_eq!(esha.balance().await, 2_000);
    let (status, body) = code_of(esha.withdraw_with_key(900, Some("k1")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    let (status, _) = code_of(esha.withdraw_with_key(5_000, Some("k2")).await).await;
    assert_eq!(status, 409, "refused: the key is not bound");
    app.fund(&esha, 4_000).await;
    let (status, body) = code_of(esha.withdraw_with_key(5_000, Some("k2")).await).await;
    assert_eq!(status, 201, "after a top-up the same key withdraws: {body}");
    assert_eq!(esha.balance().await, 1_000);
    app.assert_audit_passes().await;
}

async fn payout_webhooks_that_name_no_withdrawal_or_disagree_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.dev.webhook_drop = true).await;
    let farah = app.funded("farah@example.com", "Farah", 2_000).await;
    let id = farah.withdraws(600).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown =
        onramp_test_support::webhook::payout_event("po_nobody", "wd_nobody", 600, "SUCCESS");
    let (status, body) = code_of(app.post_webhook(&unknown, None).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_payout"))
    );
    let mut other_amount = app.payout_event_for(&id, "FAILURE").await;
    other_amount["amount"] = json!(6_000);
    let (status, body) = code_of(app.post_webhook(&other_amount, None).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("payout_mismatch"))
    );
    assert_eq!(farah.balance().await, 1_400, "nothing returned");
    let right = app
        .post_webhook(&app.payout_event_for(&id, "SUCCESS").await, None)
        .await;
    assert_eq!(right.status(), 200);
    assert_eq!(farah.wait_final(&id).await, "success");
    app.assert_audit_passes().await;
}

/// The bank is down when the withdrawal is made: `502` with the withdrawal's id, and the money
/// stays held (the bank may have the payout). Once the bank is back, reconciliation asks again
/// with the same ref and the withdrawal ends as the bank says: paid for one, failed and returned
/// for the other (an amount ending in 13).
async fn a_bank_that_is_down_keeps_the_money_held_until_it_answers(backend: Backend) {
    let (app, bank) = app_with_its_own_bank(backend).await;
    let gita = app.signed_in("gita@example.com", "Gita").await;
    bank.fund(&app, &gita, 9_000).await;
    bank.stop().await;

    let mut held = Vec::new();
    for amount in [2_000, 1_013] {
        let (status, body) = code_of(gita.withdraw(amount).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (502, Some("bank_unavailable"))
        );
        held.push(body["id"].as_str().expect("the withdrawal's id").to_owned());
    }
    assert_eq!(
        gita.balance().await,
        9_000 - 2_000 - 1_013,
        "held, not returned"
    );
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    for id in &held {
        let item = gita
            .transactions()
            .await
            .into_iter()
            .find(|i| i["id"] == *id.as_str());
        assert_eq!(
            item.unwrap()["status"],
            "processing",
            "the bank has not answered"
        );
    }
    assert_eq!(gita.balance().await, 5_987);

    bank.start(false).await;
    assert_eq!(gita.wait_final(&held[0]).await, "success");
    assert_eq!(gita.wait_final(&held[1]).await, "failure");
    assert_eq!(
        gita.balance().await,
        9_000 - 2_000,
        "the failed one came back, once"
    );
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
    bank.stop().await;
}

/// The bank refuses the payout (`422`, no payout made): the money is back before the answer,
/// `502 bank_refused`, and the key answers that again and takes nothing.
async fn a_payout_the_bank_refuses_comes_back_at_once_and_its_key_answers_the_refusal(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.dev.bank_refuse_payouts = true).await;
    let ira = app.funded("ira@example.com", "Ira", 3_000).await;
    let (status, body) = code_of(ira.withdraw_with_key(1_000, Some("r1")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bank_refused"))
    );
    assert_eq!(ira.balance().await, 3_000, "back before the answer");
    let items = ira.transactions().await;
    let withdrawal = items.iter().find(|i| i["kind"] == "withdrawal").unwrap();
    assert_eq!(withdrawal["status"], "failure");
    let id = withdrawal["id"].as_str().unwrap().to_owned();
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout_return"]);

    let (status, body) = code_of(ira.withdraw_with_key(1_000, Some("r1")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bank_refused")),
        "the first answer again"
    );
    assert_eq!(ira.balance().await, 3_000);
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout_return"]);
    app.assert_audit_passes().await;
}

/// The bank is down when a withdrawal is made (`502 bank_unavailable`), and once back it refuses
/// the payout reconciliation asks for: it made none, so the money comes back, once. The key
/// still answers what the request was answered: `bank_unavailable`, with the id.
async fn a_payout_refused_after_the_bank_was_down_comes_back_and_its_key_answers_as_first(
    backend: Backend,
) {
    let (app, bank) = app_with_its_own_bank(backend).await;
    let jai = app.signed_in("jai@example.com", "Jai").await;
    bank.fund(&app, &jai, 5_000).await;
    bank.stop().await;
    let (status, body) = code_of(jai.withdraw_with_key(4_000, Some("j1")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bank_unavailable"))
    );
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(jai.balance().await, 1_000, "held while the bank may pay it");

    bank.start(true).await;
    assert_eq!(jai.wait_final(&id).await, "failure");
    assert_eq!(jai.balance().await, 5_000, "the refused payout came back");
    let (status, body) = code_of(jai.withdraw_with_key(4_000, Some("j1")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["id"].as_str()),
        (502, Some("bank_unavailable"), Some(id.as_str())),
        "the first answer, whole"
    );
    assert_eq!(jai.balance().await, 5_000);
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout_return"]);
    app.assert_audit_passes().await;
    bank.stop().await;
}

/// The bank refuses the request's create-payout for a moment (`429`: it made none), and answers
/// it 1.5 s late while reconciliation looks every 100 ms at withdrawals due at once. Nothing asks
/// the bank for the payout while the request is asking, so the money comes back once, and the
/// bank makes no payout of money the app gave back.
async fn a_refusal_that_does_not_last_returns_the_money_and_no_payout_is_made_after(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.dev.bank_refuse_first_payout_call = true;
        s.dev.create_payout_delay_ms = 1_500;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let kai = app.funded("kai@example.com", "Kai", 2_000).await;
    let (status, body) = code_of(kai.withdraw(1_500).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bank_refused"))
    );
    assert_eq!(kai.balance().await, 2_000);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let items = kai.transactions().await;
    let withdrawal = items.iter().find(|i| i["kind"] == "withdrawal").unwrap();
    assert_eq!(withdrawal["status"], "failure");
    let id = withdrawal["id"].as_str().unwrap().to_owned();
    let payouts = app
        .db
        .scalar("SELECT COUNT(*) FROM withdrawals WHERE payout_id IS NOT NULL")
        .await;
    assert_eq!(payouts, 0, "the bank made no payout for it");
    assert!(
        (app.bank().deliveries().await.iter()).all(|d| d.payout_id.is_none()),
        "no payout webhook"
    );
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout_return"]);
    assert_eq!(kai.balance().await, 2_000);
    app.assert_audit_passes().await;
}

/// An app whose bank simulator runs on its own in the test, so that the test can stop it and
/// start it again (refusing payouts, if asked) on the same address and database; reconciliation
/// looks every 100 ms and the bank's calls time out after 500 ms.
async fn app_with_its_own_bank(backend: Backend) -> (TestApp, OwnBank) {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(backend, |s| {
        s.dev.bank_enabled = Some(false);
        s.bank.api_url = Some(format!("http://{addr}"));
        s.bank.timeout_ms = 500;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let webhook_url = format!("{}/api/webhooks/bank", app.address);
    let mut config = onramp::dev::bank_sim_config(&app.settings, &webhook_url);
    config.database_url = format!("sqlite://{}/bank.db", dir.path().display());
    config.payout_delay = Duration::from_millis(200);
    let bank = OwnBank {
        addr,
        config,
        api_key: app.bank_api_key(),
        running: std::sync::Mutex::new(None),
        _dir: dir,
    };
    bank.start(false).await;
    (app, bank)
}

struct OwnBank {
    addr: std::net::SocketAddr,
    config: onramp_bank_sim::BankSimConfig,
    api_key: String,
    running: std::sync::Mutex<Option<onramp_bank_sim::BankSim>>,
    _dir: tempfile::TempDir,
}

impl OwnBank {
    async fn start(&self, refuse_payouts: bool) {
        let mut config = self.config.clone();
        config.faults.refuse_payouts = refuse_payouts;
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        let bank = onramp_bank_sim::BankSim::start(listener, config)
            .await
            .unwrap();
        *self.running.lock().unwrap() = Some(bank);
    }

    async fn stop(&self) {
        let bank = self.running.lock().unwrap().take();
        if let Some(bank) = bank {
            bank.stop().await;
        }
    }

    /// A deposit of `paise`, approved at this bank and credited.
    async fn fund(&self, app: &TestApp, person: &onramp_test_support::Browser, paise: i64) {
        let deposit = person.deposit(paise).await;
        let id = deposit["id"].as_str().unwrap();
        let token = app.token_of(id).await;
        let url = format!("http://{}", self.addr);
        onramp_test_support::Bank::new(&url, &self.api_key)
            .settle(&token, true)
            .await;
        assert_eq!(person.wait_final(id).await, "success");
    }
}

/// The bank makes the payout but answers create-payout after the app's timeout (twice): `502`
/// with the id, and the money stays held. The bank pays it out: the webhook, which names the
/// withdrawal by its ref, ends it as paid; the money is never returned.
async fn a_payout_made_but_answered_after_the_timeout_is_paid_once_and_never_returned(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.bank.timeout_ms = 300;
        s.dev.create_payout_delay_ms = 1_000;
        s.reconcile.first_after_secs = 0;
        s.reconcile.every_secs = 1;
        s.reconcile.scan_ms = 100;
    })
    .await;
    let hari = app.funded("hari@example.com", "Hari", 4_000).await;
    let (status, body) = code_of(hari.withdraw(3_000).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bank_unavailable"))
    );
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(hari.balance().await, 1_000);
    assert_eq!(hari.wait_final(&id).await, "success");
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hari.balance().await, 1_000, "paid out once, never returned");
    assert_eq!(entries_of(&app, &id).await, ["withdrawal", "payout"]);
    let payouts: Vec<Value> = app
        .bank()
        .deliveries()
        .await
        .into_iter()
        .filter(|d| d.token.is_empty())
        .map(|d| json!(d.event_id))
        .collect();
    assert_eq!(payouts.len(), 1, "the bank made one payout");
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

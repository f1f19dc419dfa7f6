//! Sending money to another person: `POST /api/transfers`, the balances both people see, their
//! histories, and the books, when many transfers arrive at once.

use futures_util::future::join_all;
use onramp_test_support::{on_both_databases, spawn_app, Backend};
use serde_json::Value;
use std::time::Duration;

on_both_databases!(
    a_person_sends_money_and_both_see_it_at_once,
    a_wallet_that_can_afford_33_of_100_transfers_sends_exactly_33,
    crossing_transfers_all_complete_and_end_where_they_started,
    transfers_while_deposits_land_on_the_same_wallets,
    the_same_idempotency_key_moves_money_once,
    copies_of_a_transfer_of_the_whole_balance_all_get_its_answer,
    a_failed_commit_moves_nothing_and_frees_the_money,
    key_replays_aimed_at_a_recipient_never_keep_them_from_their_money,
);

async fn status_of(r: reqwest::Response) -> u16 {
    r.status().as_u16()
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

async fn a_person_sends_money_and_both_see_it_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 10_000).await;
    let bilal = app.signed_in("bilal@example.com", "Bilal").await;
    // Bilal's wallet is in memory already: the transfer must reach it there.
    assert_eq!(bilal.balance().await, 0);

    let sent = asha.sends("bilal@EXAMPLE.com", 2_500).await;
    assert_eq!(sent["status"], "success");
    assert_eq!(sent["amount"], 2_500);
    assert_eq!(sent["currency"], "INR");
    assert_eq!(sent["to"]["name"], "Bilal");
    assert_eq!(sent["to"]["email"], "bilal@example.com");
    let id = sent["id"].as_str().unwrap();
    assert_eq!(asha.balance().await, 7_500);
    assert_eq!(bilal.balance().await, 2_500);

    let asha_items = asha.transactions().await;
    assert_eq!(asha_items.len(), 2);
    assert_eq!(asha_items[0]["id"], id);
    assert_eq!(asha_items[0]["kind"], "transfer_out");
    assert_eq!(asha_items[0]["amount"], 2_500, "amounts are positive");
    assert_eq!(asha_items[0]["status"], "success");
    assert_eq!(asha_items[0]["counterparty"]["name"], "Bilal");
    assert_eq!(asha_items[1]["kind"], "deposit");
    assert!(asha_items[1].get("counterparty").is_none());
    let bilal_items = bilal.transactions().await;
    assert_eq!(bilal_items.len(), 1);
    assert_eq!(bilal_items[0]["id"], id);
    assert_eq!(bilal_items[0]["kind"], "transfer_in");
    assert_eq!(bilal_items[0]["counterparty"]["email"], "asha@example.com");

    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

async fn a_wallet_that_can_afford_33_of_100_transfers_sends_exactly_33(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 3_300).await;
    let bilal = app.signed_in("bilal@example.com", "Bilal").await;
    let answers = join_all((0..100).map(|_| asha.transfer("bilal@example.com", 100))).await;
    let mut codes = Vec::new();
    for a in answers {
        codes.push(code_of(a).await);
    }
    let sent = codes.iter().filter(|(s, _)| *s == 201).count();
    let refused = codes
        .iter()
        .filter(|c| *c == &(409, "insufficient_funds".to_owned()))
        .count();
    assert_eq!((sent, refused), (33, 67), "{codes:?}");
    assert_eq!(asha.balance().await, 0);
    assert_eq!(bilal.balance().await, 3_300);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM transfers").await, 33);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

/// 400 transfers each way between two people at once, the case that deadlocks a design taking
/// row locks in request order.
async fn crossing_transfers_all_complete_and_end_where_they_started(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 10_000).await;
    let bilal = app.funded("bilal@example.com", "Bilal", 10_000).await;
    let mut all: Vec<_> = (0..400)
        .map(|_| asha.transfer("bilal@example.com", 10))
        .collect();
    all.extend((0..400).map(|_| bilal.transfer("asha@example.com", 10)));
    let answers = tokio::time::timeout(Duration::from_secs(120), join_all(all))
        .await
        .expect("800 crossing transfers finish in bounded time");
    let mut statuses = Vec::new();
    for a in answers {
        statuses.push(status_of(a).await);
    }
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    assert_eq!(asha.balance().await, 10_000);
    assert_eq!(bilal.balance().await, 10_000);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM transfers").await, 800);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

async fn transfers_while_deposits_land_on_the_same_wallets(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 5_000).await;
    let bilal = app.funded("bilal@example.com", "Bilal", 5_000).await;
    // Twenty deposits each, confirmed by webhooks while 200 transfers cross between them.
    let mut deposits = Vec::new();
    for person in [&asha, &bilal] {
        for _ in 0..20 {
            deposits.push(
                person.deposit(1_000).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let mut events = Vec::new();
    for id in &deposits {
        events.push(app.event_for(id, "SUCCESS").await);
    }
    let webhooks = join_all(events.iter().map(|e| app.post_webhook(e, None)));
    let transfers = join_all((0..200).map(|i| match i % 2 {
        0 => asha.transfer("bilal@example.com", 37),
        _ => bilal.transfer("asha@example.com", 37),
    }));
    let (hooks, sent) = tokio::join!(webhooks, transfers);
    assert!(hooks.iter().all(|r| r.status() == 200));
    for r in sent {
        // Every transfer is covered by the first deposit alone.
        assert_eq!(status_of(r).await, 201);
    }
    assert_eq!(asha.balance().await, 25_000);
    assert_eq!(bilal.balance().await, 25_000);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

async fn the_same_idempotency_key_moves_money_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 10_000).await;
    let bilal = app.signed_in("bilal@example.com", "Bilal").await;
    let first = asha
        .transfer_with_key("bilal@example.com", 1_000, Some("rent-december"))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // Given again, one by one and ten at once: the first answer, nothing moved again.
    let again = join_all(
        (0..10).map(|_| asha.transfer_with_key("bilal@example.com", 1_000, Some("rent-december"))),
    )
    .await;
    for r in again {
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, first);
    }
    // Ten new ones at once with one new key: exactly one moves money.
    let racing =
        join_all((0..10).map(|_| asha.transfer_with_key("bilal@example.com", 500, Some("gift"))))
            .await;
    let mut ids = std::collections::HashSet::new();
    for r in racing {
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one transfer for one key: {ids:?}");
    // The same key for another amount or another person is refused.
    let other = asha
        .transfer_with_key("bilal@example.com", 999, Some("rent-december"))
        .await;
    assert_eq!(
        code_of(other).await,
        (422, "idempotency_key_reused".to_owned())
    );
    app.signed_in("chitra@example.com", "Chitra").await;
    let other = asha
        .transfer_with_key("chitra@example.com", 1_000, Some("rent-december"))
        .await;
    assert_eq!(
        code_of(other).await,
        (422, "idempotency_key_reused".to_owned())
    );
    assert_eq!(asha.balance().await, 8_500);
    assert_eq!(bilal.balance().await, 1_500);
    app.assert_books_balance().await;
}

/// A client retrying a transfer while the first try is still committing (a double click, a
/// timeout): with the whole balance at stake, the copies must not be refused for funds the first
/// already took; each gets the first's answer.
async fn copies_of_a_transfer_of_the_whole_balance_all_get_its_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 500).await;
    let bilal = app.signed_in("bilal@example.com", "Bilal").await;
    let copies = join_all(
        (0..20).map(|_| asha.transfer_with_key("bilal@example.com", 500, Some("everything"))),
    )
    .await;
    let mut bodies = Vec::new();
    for r in copies {
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let body: Value = r.json().await.unwrap();
        bodies.push(body["id"].as_str().unwrap().to_owned());
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one transfer: {bodies:?}");
    assert_eq!(asha.balance().await, 0);
    assert_eq!(bilal.balance().await, 500);
    app.assert_books_balance().await;
}

async fn a_failed_commit_moves_nothing_and_frees_the_money(backend: Backend) {
    let app = spawn_app(backend).await;
    let asha = app.funded("asha@example.com", "Asha", 4_000).await;
    let bilal = app.signed_in("bilal@example.com", "Bilal").await;
    app.break_ledger().await;
    let failed = asha.transfer("bilal@example.com", 4_000).await;
    assert_eq!(code_of(failed).await, (503, "unavailable".to_owned()));
    assert_eq!(asha.balance().await, 4_000);
    assert_eq!(bilal.balance().await, 0);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM transfers").await, 0);
    app.heal_ledger().await;
    // The reservation was released: the whole balance can go now.
    asha.sends("bilal@example.com", 4_000).await;
    assert_eq!(asha.balance().await, 0);
    assert_eq!(bilal.balance().await, 4_000);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

/// Nobody can keep a person from their own money by replaying a used key at them. Mallory used
/// a key for a transfer to Omar, then floods copies of it naming Vera (another body: each is
/// refused `422` and moves nothing), while three people pay Vera and Vera reads her balance
/// and sends money on. Every one of Vera's reads is `200` and every send `201` (before, each
/// replay made Vera's wallet forget its balance, and with money arriving its fresh read was
/// refused again and again: `503`).
async fn key_replays_aimed_at_a_recipient_never_keep_them_from_their_money(backend: Backend) {
    let app = spawn_app(backend).await;
    let mallory = app
        .funded("mallory@example.com", "Mallory", 1_000_000)
        .await;
    let vera = app.funded("vera@example.com", "Vera", 100_000).await;
    let _omar = app.signed_in("omar@example.com", "Omar").await;
    let mut payers = Vec::new();
    for i in 0..3 {
        payers.push(
            app.funded(&format!("payer{i}@example.com"), "Payer", 100_000)
                .await,
        );
    }
    let used = mallory
        .transfer_with_key("omar@example.com", 1, Some("k"))
        .await;
    assert_eq!(used.status(), 201);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let running = || !stop.load(std::sync::atomic::Ordering::Relaxed);
    let replays = join_all((0..6).map(|_| async {
        let mut refused = 0;
        while running() {
            let r = mallory
                .transfer_with_key("vera@example.com", 1, Some("k"))
                .await;
            assert_eq!(code_of(r).await, (422, "idempotency_key_reused".into()));
            refused += 1;
        }
        refused
    }));
    let payments = join_all(payers.iter().map(|p| async {
        let mut paid = 0;
        while running() {
            assert_eq!(
                status_of(p.transfer("vera@example.com", 1).await).await,
                201
            );
            paid += 1;
        }
        paid
    }));
    let vera_works = async {
        let answers = join_all((0..4).map(|_| async {
            let mut answers = Vec::new();
            for _ in 0..60 {
                answers.push(("read", status_of(vera.get("/api/balance").await).await));
                answers.push((
                    "send",
                    status_of(vera.transfer("omar@example.com", 1).await).await,
                ));
            }
            answers
        }))
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        answers.concat()
    };
    let (refused, paid, answers) = futures_util::join!(replays, payments, vera_works);
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(what, status)| *status != if *what == "read" { 200 } else { 201 })
        .collect();
    assert!(wrong.is_empty(), "Vera got {wrong:?}");
    let (refused, paid): (i32, i32) = (refused.iter().sum(), paid.iter().sum());
    assert!(
        refused > 0 && paid > 0,
        "{refused} replays, {paid} payments"
    );
    let sent = answers.iter().filter(|(what, _)| *what == "send").count() as i64;
    assert_eq!(vera.balance().await, 100_000 + i64::from(paid) - sent);
    app.assert_books_balance().await;
    app.assert_audit_passes().await;
}

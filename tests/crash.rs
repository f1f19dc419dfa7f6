//! Crash safety: the real binary is killed with SIGKILL again and again while a webhook storm
//! lands (or people send each other money, or withdraw it to the bank), and restarted on the
//! same port; the bank simulator runs as its own process and keeps retrying. Afterwards every
//! acknowledged or retried webhook has been applied exactly once: each wallet equals the user's
//! deposits the bank marked SUCCESS (less what they paid out), and the ledger agrees.
//!
//! `cargo test --test crash -- --nocapture` shows the figures.

use onramp_test_support::{
    delivery_figures, on_both_databases_as, onramp_binary, report, sign_in_and_deposit, Backend,
    Made, Storm, World,
};
use rand::Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 20;
const DEPOSITS: usize = 300;
const KILLS: usize = 4;
const DUPLICATES: u32 = 2;
/// Approvals and declines sent to the bank at once, and how often one starts.
const STORM_CONCURRENCY: usize = 12;
const STORM_PACE: Duration = Duration::from_millis(8);

on_both_databases_as!(crash_storm => sqlite, postgres);
on_both_databases_as!(transfer_storm => transfers_sqlite, transfers_postgres);
on_both_databases_as!(withdrawal_storm => withdrawals_sqlite, withdrawals_postgres);

/// What the test does with deposit number `i`: approve, decline, or leave pending.
fn plan(i: usize) -> Option<bool> {
    if i.is_multiple_of(25) {
        None
    } else {
        Some(!i.is_multiple_of(6))
    }
}

async fn crash_storm(backend: Backend) {
    let started = Instant::now();
    let world = World::new(onramp_binary!(), backend).await;
    let _bank_sim = world.start_stubborn_bank(DUPLICATES).await;
    let mut app = world.start_app().await;
    let bank = world.bank();

    let (_browsers, made) = sign_in_and_deposit(&world, USERS, DEPOSITS).await;
    assert_eq!(made.len(), DEPOSITS);
    let prepared = started.elapsed();

    // The storm: approvals and declines at the bank, each queueing a webhook (and its
    // duplicates) to the app. The last tenth waits until every kill has happened, so each kill
    // lands mid-storm.
    let to_settle: Vec<(Made, bool)> = made
        .iter()
        .enumerate()
        .filter_map(|(i, m)| plan(i).map(|approve| (m.clone(), approve)))
        .collect();
    let approvals = to_settle.iter().filter(|(_, a)| *a).count();
    let storm = Storm::start(&bank, &to_settle, STORM_CONCURRENCY, STORM_PACE);

    // Meanwhile: SIGKILL the app at random-ish moments and restart it on the same port.
    let storm_started = Instant::now();
    let mut kill_log = Vec::new();
    let mut restart_total = Duration::ZERO;
    for k in 1..=KILLS {
        let pause = rand::thread_rng().gen_range(100..=400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let settled_then = storm.settled_count();
        let status = app.kill9();
        assert!(!status.success(), "the app was killed: {status}");
        assert!(settled_then < to_settle.len(), "kill {k} landed mid-storm");
        let delivered_then = bank.delivered_count().await;
        kill_log.push(format!(
            "kill {k} after {pause} ms: {settled_then}/{} settled at the bank, {delivered_then} webhooks delivered",
            to_settle.len()
        ));
        let restart = Instant::now();
        app = world.spawn_app();
        world.wait_app(&mut app).await;
        restart_total += restart.elapsed();
    }
    let kills_done_after = storm_started.elapsed();
    storm.release();
    storm.finish().await;
    let storm_took = storm_started.elapsed();

    // After the last restart the bank delivers everything.
    let list = bank
        .wait_all_delivered(to_settle.len(), Duration::from_secs(60))
        .await;
    let drained = storm_started.elapsed();
    let figures = delivery_figures(&list);

    // The books, read straight from the app's database, against the bank's word.
    let db = world.db().await;
    let books = db.snapshot().await;
    db.close().await;
    assert_eq!(books.deposits.len(), DEPOSITS, "every deposit is stored");
    let tokens: Vec<String> = made.iter().map(|m| m.token.clone()).collect();
    let bank_status = bank.statuses(&tokens).await;
    for (i, m) in made.iter().enumerate() {
        let want = match plan(i) {
            None => "PENDING",
            Some(true) => "SUCCESS",
            Some(false) => "FAILURE",
        };
        assert_eq!(bank_status[&m.token], want, "the bank's status of {}", m.id);
    }
    books.assert_consistent();
    books.assert_matches_bank(&bank_status);
    let expected_total: i64 = made
        .iter()
        .enumerate()
        .filter(|(i, _)| plan(*i) == Some(true))
        .map(|(_, m)| m.amount)
        .sum();
    assert_eq!(books.total_balance(), expected_total, "total credited");
    let by_status = |s: &str| books.deposits.iter().filter(|d| d.status == s).count();

    // Still serving, and a person sees the same balance as the books.
    let b = world.signed_in("user0@example.com", "User 0").await;
    let first_of_user0 = made.iter().find(|m| m.user == 0).unwrap();
    let user0 = books
        .deposits
        .iter()
        .find(|d| d.id == first_of_user0.id)
        .map(|d| d.user_id.clone())
        .unwrap();
    assert_eq!(b.balance().await, books.balance_of(&user0));
    drop(app);

    report!("crash test on {backend:?}:");
    report!(
        "  {USERS} users, {DEPOSITS} deposits ({} approved, {} declined, {} left pending), prepared in {prepared:.1?}",
        approvals,
        to_settle.len() - approvals,
        DEPOSITS - to_settle.len()
    );
    for line in &kill_log {
        report!("  {line}");
    }
    report!(
        "  {KILLS} SIGKILLs in {kills_done_after:.1?} (restarts took {restart_total:.1?} in all); storm done after {storm_took:.1?}, all delivered after {drained:.1?}"
    );
    report!(
        "  bank: {} deliveries, {} attempts ({} needed a retry, at most {} for one), {} duplicate copies sent ({DUPLICATES} per first attempt)",
        figures.deliveries,
        figures.attempts,
        figures.retried,
        figures.max_attempts,
        figures.deliveries as u64 * u64::from(DUPLICATES)
    );
    report!(
        "  app: {} success, {} failure, {} processing; {} ledger entries; wallets total {} paise = bank SUCCESS total {expected_total}",
        by_status("success"),
        by_status("failure"),
        by_status("processing"),
        books.ledger.len(),
        books.total_balance()
    );
    report!("  took {:.1?}", started.elapsed());
}

/// People sending each other money while the app is SIGKILLed and restarted: afterwards every
/// transfer the app acknowledged is in the books, each transfer moved money exactly once (its
/// one ledger entry), no wallet is below zero, the money is all still there, and `onramp audit`
/// exits 0.
async fn transfer_storm(backend: Backend) {
    const PEOPLE: usize = 12;
    const SENDERS: usize = 16;
    let world = World::new(onramp_binary!(), backend).await;
    let _bank_sim = world.start_stubborn_bank(0).await;
    let mut app = world.start_app().await;
    let bank = world.bank();

    // Everybody is paid in first: two deposits each, approved at the bank.
    let (browsers, made) = sign_in_and_deposit(&world, PEOPLE, PEOPLE * 2).await;
    for m in &made {
        bank.settle(&m.token, true).await;
    }
    bank.wait_all_delivered(made.len(), Duration::from_secs(60))
        .await;
    let deposited: i64 = made.iter().map(|m| m.amount).sum();

    // The storm: random people sending random amounts to each other, some beyond their means.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let browsers = Arc::new(browsers);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (acknowledged, stop, browsers) =
                (acknowledged.clone(), stop.clone(), browsers.clone());
            tokio::spawn(async move {
                let (mut sent, mut refused, mut failed) = (0, 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let (from, to, amount) = {
                        let mut rng = rand::thread_rng();
                        let from = rng.gen_range(0..PEOPLE);
                        let to = (from + rng.gen_range(1..PEOPLE)) % PEOPLE;
                        (from, to, rng.gen_range(1..=60_000))
                    };
                    let to = format!("user{to}@example.com");
                    match browsers[from].try_transfer(&to, amount).await {
                        Ok(r) if r.status() == 201 => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(body["id"].as_str().unwrap().to_owned());
                            sent += 1;
                        }
                        Ok(r) if r.status() == 409 => refused += 1,
                        // Killed mid-request, or not up yet.
                        _ => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (sent, refused, failed)
            })
        })
        .collect();

    let mut kill_log = Vec::new();
    for k in 1..=3 {
        let pause = rand::thread_rng().gen_range(300..=800);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let before = acknowledged.lock().unwrap().len();
        assert!(!app.kill9().success());
        kill_log.push(format!(
            "kill {k} after {pause} ms, {before} transfers acknowledged"
        ));
        app = world.spawn_app();
        world.wait_app(&mut app).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut refused, mut failed) = (0, 0, 0);
    for s in senders {
        let (a, b, c) = s.await.unwrap();
        (sent, refused, failed) = (sent + a, refused + b, failed + c);
    }

    let db = world.db().await;
    let books = db.snapshot().await;
    db.close().await;
    books.assert_consistent();
    assert_eq!(books.total_balance(), deposited, "money is conserved");
    let stored: HashSet<&str> = books.transfers.iter().map(|t| t.id.as_str()).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged transfers lost: {lost:?}");
    assert!(sent > 0 && refused > 0, "the storm sent and was refused");
    let (ok, audit) = world.audit();
    assert!(ok, "onramp audit failed:\n{audit}");
    // The restarted app serves the balances the books hold.
    for (i, b) in browsers.iter().enumerate().take(3) {
        let user = &books
            .deposits
            .iter()
            .find(|d| d.id == made.iter().find(|m| m.user == i).unwrap().id)
            .unwrap()
            .user_id;
        assert_eq!(b.balance().await, books.balance_of(user));
    }
    drop(app);
    report!("transfer crash test on {backend:?}:");
    for line in &kill_log {
        report!("  {line}");
    }
    report!(
        "  {sent} transfers acknowledged ({} stored in all), {refused} refused for funds, {failed} requests failed while the app was down; {} paise conserved",
        books.transfers.len(),
        deposited
    );
    report!("  onramp audit: {}", audit.lines().last().unwrap_or(""));
}

/// What a withdrawal storm's requests came to.
#[derive(Debug, Default, Clone, Copy)]
struct Withdrew {
    made: usize,
    refused: usize,
    unanswered_by_bank: usize,
    failed: usize,
}

/// People withdrawing to the bank while the app is SIGKILLed and restarted; the bank simulator
/// runs as its own process, settles each payout half a second after making it (`FAILURE` when
/// the amount ends in 13) and keeps delivering the payout webhooks, twice each, out of order.
/// A kill between a withdrawal's commit and the bank's answer leaves it for reconciliation,
/// which asks the bank again with the same ref. Afterwards nothing is processing, every
/// withdrawal the app acknowledged is in the books, each ended as the bank says (a failed one
/// returned once), every balance is the person's deposits less their paid withdrawals, and
/// `onramp audit` exits 0.
async fn withdrawal_storm(backend: Backend) {
    const PEOPLE: usize = 10;
    const WITHDRAWERS: usize = 12;
    let world = World::new(onramp_binary!(), backend)
        .await
        .with_app_settings(&[
            ("RECONCILE__FIRST_AFTER_SECS", "1"),
            ("RECONCILE__EVERY_SECS", "1"),
            ("RECONCILE__SCAN_MS", "200"),
        ]);
    let _bank_sim = world.start_stubborn_bank(1).await;
    let mut app = world.start_app().await;
    let bank = world.bank();
    let (browsers, made) = sign_in_and_deposit(&world, PEOPLE, PEOPLE * 2).await;
    for m in &made {
        bank.settle(&m.token, true).await;
    }
    bank.wait_all_delivered(made.len(), Duration::from_secs(60))
        .await;

    // The storm: random people withdrawing random amounts, some beyond their means.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let browsers = Arc::new(browsers);
    let withdrawers: Vec<_> = (0..WITHDRAWERS)
        .map(|_| {
            let (acknowledged, stop, browsers) =
                (acknowledged.clone(), stop.clone(), browsers.clone());
            tokio::spawn(async move {
                let mut w = Withdrew::default();
                while !stop.load(Ordering::Relaxed) {
                    let (who, amount) = {
                        let mut rng = rand::thread_rng();
                        let fails = rng.gen_bool(0.3);
                        let amount = rng.gen_range(1..=150) * 100 + if fails { 13 } else { 0 };
                        (rng.gen_range(0..PEOPLE), amount)
                    };
                    match browsers[who].try_withdraw(amount).await {
                        Ok(r) if r.status() == 201 => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            let id = body["id"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().push(id);
                            w.made += 1;
                        }
                        Ok(r) if r.status() == 409 => w.refused += 1,
                        Ok(r) if r.status() == 502 => w.unanswered_by_bank += 1,
                        // Killed mid-request, or not up yet.
                        _ => {
                            w.failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                w
            })
        })
        .collect();

    let mut kill_log = Vec::new();
    for k in 1..=3 {
        let pause = rand::thread_rng().gen_range(300..=800);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let before = acknowledged.lock().unwrap().len();
        assert!(!app.kill9().success());
        kill_log.push(format!(
            "kill {k} after {pause} ms, {before} withdrawals acknowledged"
        ));
        app = world.spawn_app();
        world.wait_app(&mut app).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Withdrew::default();
    for t in withdrawers {
        let w = t.await.unwrap();
        total.made += w.made;
        total.refused += w.refused;
        total.unanswered_by_bank += w.unanswered_by_bank;
        total.failed += w.failed;
    }

    // Every payout ends: by its webhook, or by reconciliation asking the bank.
    let settled_in = Instant::now();
    let db = world.db().await;
    let books = loop {
        let books = db.snapshot().await;
        let processing = books
            .withdrawals
            .iter()
            .filter(|w| w.status == "processing")
            .count();
        if processing == 0 {
            break books;
        }
        assert!(
            settled_in.elapsed() < Duration::from_secs(90),
            "{processing} withdrawals still processing"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let settled_in = settled_in.elapsed();
    db.close().await;
    books.assert_consistent();

    let stored: HashSet<&str> = books.withdrawals.iter().map(|w| w.id.as_str()).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged withdrawals lost: {lost:?}");
    assert!(
        total.made > 0 && total.refused > 0,
        "the storm withdrew and was refused: {total:?}"
    );
    assert_each_withdrawal_ended_as_the_bank_says(&books, &bank).await;

    // Every balance: the person's deposits less their paid withdrawals.
    for wallet in &books.wallets {
        let deposited: i64 = (books.deposits.iter())
            .filter(|d| d.user_id == wallet.user_id && d.status == "success")
            .map(|d| d.amount)
            .sum();
        let paid: i64 = (books.withdrawals.iter())
            .filter(|w| w.user_id == wallet.user_id && w.status == "success")
            .map(|w| w.amount)
            .sum();
        assert_eq!(
            wallet.balance,
            deposited - paid,
            "the balance of {}",
            wallet.user_id
        );
    }
    let (ok, audit) = world.audit();
    assert!(ok, "onramp audit failed:\n{audit}");
    // The restarted app serves the balances the books hold.
    for (i, b) in browsers.iter().enumerate().take(3) {
        let first = made.iter().find(|m| m.user == i).unwrap();
        let user = &books
            .deposits
            .iter()
            .find(|d| d.id == first.id)
            .unwrap()
            .user_id;
        assert_eq!(b.balance().await, books.balance_of(user));
    }
    // What the last app's reconciliation did (since its start).
    let metrics = reqwest::get(format!("{}/metrics", world.app_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let checks: Vec<&str> = (metrics.lines())
        .filter(|l| l.starts_with("onramp_payout_checks_total"))
        .collect();
    drop(app);
    let by_status = |s: &str| books.withdrawals.iter().filter(|w| w.status == s).count();
    report!("withdrawal crash test on {backend:?}:");
    for line in &kill_log {
        report!("  {line}");
    }
    report!(
        "  {} withdrawals acknowledged ({} stored: {} paid, {} failed and returned), {} refused for funds, {} answered 502 by the bank, {} requests failed while the app was down; all ended {settled_in:.1?} after the storm",
        total.made,
        books.withdrawals.len(),
        by_status("success"),
        by_status("failure"),
        total.refused,
        total.unanswered_by_bank,
        total.failed
    );
    report!("  payout checks by the last app's reconciliation: {checks:?}");
    report!("  onramp audit: {}", audit.lines().last().unwrap_or(""));
}

/// Each withdrawal ended as the simulator settles it (its amount ending in 13 fails), and the
/// bank holds its payout with that same status.
async fn assert_each_withdrawal_ended_as_the_bank_says(
    books: &onramp_test_support::Books,
    bank: &onramp_test_support::Bank,
) {
    for w in &books.withdrawals {
        let (want, bank_word) = if w.amount % 100 == 13 {
            ("failure", "FAILURE")
        } else {
            ("success", "SUCCESS")
        };
        assert_eq!(w.status, want, "withdrawal {} of {}", w.id, w.amount);
        let payout = w
            .payout_id
            .as_deref()
            .expect("a settled withdrawal has its payout id");
        assert_eq!(
            bank.payout_status(payout).await,
            bank_word,
            "payout of {}",
            w.id
        );
    }
}

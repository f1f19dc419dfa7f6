//! Crash safety: the real binary is killed with SIGKILL again and again while a webhook storm
//! lands, and restarted on the same port; the bank simulator runs as its own process and keeps
//! retrying. Afterwards every acknowledged or retried webhook has been applied exactly once:
//! each wallet equals the user's deposits the bank marked SUCCESS, and the ledger agrees.
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

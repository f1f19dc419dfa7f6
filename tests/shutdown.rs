//! Graceful shutdown of the real binary: SIGTERM while webhooks land. The process exits 0 in a
//! bounded time, nothing it acknowledged is lost, the books balance, and after a restart the
//! bank's retries finish the job with every deposit credited exactly once. Also: SIGTERM to an
//! idle app exits 0 at once.
//!
//! `cargo test --test shutdown -- --nocapture` shows the figures.

use onramp_bank_protocol::signature::{EVENT_ID_HEADER, SIGNATURE_HEADER};
use onramp_test_support::webhook;
use onramp_test_support::{
    delivery_figures, on_both_databases_as, onramp_binary, report, sign_in_and_deposit, Backend,
    Books, Made, Storm, World,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USERS: usize = 10;
const DEPOSITS: usize = 200;
const DUPLICATES: u32 = 1;
const STORM_CONCURRENCY: usize = 16;
const STORM_PACE: Duration = Duration::from_millis(5);
/// The burst of our own webhooks starts once the bank has delivered this many.
const SIGTERM_AFTER_DELIVERIES: usize = 30;
/// Our own webhooks in flight (head and half the body sent) when the SIGTERM comes.
const IN_FLIGHT: usize = 40;
/// How long after the SIGTERM they are held open before their bodies are finished.
const HELD_OPEN: Duration = Duration::from_millis(300);
/// The app must be gone this soon after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(15);
/// An idle app must be gone this soon after SIGTERM.
const IDLE_EXIT_LIMIT: Duration = Duration::from_secs(3);

on_both_databases_as!(idle => idle_sqlite, idle_postgres);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_finishes_requests_in_flight() {
    sigint_in_flight().await
}

on_both_databases_as!(under_load => under_load_sqlite, under_load_postgres);

/// SIGTERM to an app that is doing nothing (but has a signed-in user holding an idle
/// keep-alive connection) exits 0 quickly.
async fn idle(backend: Backend) {
    let world = World::new(onramp_binary!(), backend).await;
    let mut app = world.start_app().await;
    let browser = world.signed_in("idle@example.com", "Idle").await;
    assert_eq!(browser.balance().await, 0);
    let sent = Instant::now();
    app.sigterm();
    let status = app
        .wait_exit(IDLE_EXIT_LIMIT)
        .await
        .unwrap_or_else(|| panic!("the idle app still runs {IDLE_EXIT_LIMIT:?} after SIGTERM"));
    let took = sent.elapsed();
    report!("idle shutdown on {backend:?}: exited with {status} after {took:.1?}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    drop(browser);
}

/// SIGINT (Ctrl-C) stops as gracefully as SIGTERM: requests the app is in the middle of are
/// answered before it exits 0.
async fn sigint_in_flight() {
    let world = World::new(onramp_binary!(), Backend::Sqlite).await;
    let mut app = world.start_app().await;
    let unknown = unknown_deposit();
    let mut in_flight = Vec::new();
    for _ in 0..10 {
        in_flight.push(InFlight::start(&world, &unknown, true).await);
    }
    let sent = Instant::now();
    app.sigint();
    tokio::time::sleep(HELD_OPEN).await;
    assert!(
        app.try_wait().is_none(),
        "the app exited with requests in flight"
    );
    let answers = futures_util::future::join_all(in_flight.into_iter().map(InFlight::finish)).await;
    let status = app.wait_exit(EXIT_LIMIT).await.expect("the app exits");
    let took = sent.elapsed();
    report!("SIGINT with 10 requests in flight: {status} after {took:.1?}");
    for (_, _, answer) in &answers {
        assert!(
            matches!(answer, Ok(s) if s.starts_with("HTTP/1.1 404")),
            "an in-flight request was not answered: {answer:?}"
        );
    }
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
}

/// Among several processes, SIGTERM exits `0` within the contract's 30 s (config.md) even with a
/// request held in flight for ever (a webhook whose body never ends): it is cut off once the
/// process's time is up, instead of getting the 30 s a lone process gives it on top of the
/// hand-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_among_several_exits_within_30_s_whatever_is_in_flight() {
    let world = World::new(onramp_binary!(), Backend::Postgres)
        .await
        .with_processes(1, onramp_test_support::free_port());
    let _bank = world.start_stubborn_bank(0).await;
    let mut process = world.start_process(0).await;
    let held = InFlight::start(&world, &unknown_deposit(), true).await;
    let sent = Instant::now();
    process.sigterm();
    let status = process
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM, a request in flight"));
    let took = sent.elapsed();
    report!("SIGTERM among several, a request held in flight: {status} after {took:.1?}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    drop(held);
}

/// A deposit whose token the app does not know: its events are answered 404 once their bodies
/// arrive, so a request for it can be held in flight without changing anything.
fn unknown_deposit() -> Made {
    Made {
        user: 0,
        id: "txn_unknown".into(),
        token: format!("bank_session_{}", "0".repeat(48)),
        amount: 100,
    }
}

/// A webhook posted straight to the app over a raw connection, stopped halfway through its
/// body: the app has read the head (it answered `100 Continue`) and is handling the request,
/// waiting for the rest.
struct InFlight {
    token: String,
    approve: bool,
    stream: TcpStream,
    rest: Vec<u8>,
}

impl InFlight {
    /// Sends the head and half the body of a webhook for `m`, signed as the bank would.
    async fn start(world: &World, m: &Made, approve: bool) -> InFlight {
        let port = world.app_port;
        let status = if approve { "SUCCESS" } else { "FAILURE" };
        let event = webhook::event(&m.token, &m.id, m.amount, status);
        let event_id = event["event_id"].as_str().unwrap().to_owned();
        let body = event.to_string().into_bytes();
        let signature = webhook::signature(&world.webhook_secret(), &body);
        let head = format!(
            "POST /api/webhooks/bank HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\n{EVENT_ID_HEADER}: {event_id}\r\n\
             {SIGNATURE_HEADER}: {signature}\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // `100 Continue` says the app has read the head and is handling the request.
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut byte))
                .await
                .expect("the app answers 100 Continue within 10 s")
                .expect("the app answers 100 Continue");
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "not 100 Continue: {}",
            String::from_utf8_lossy(&interim)
        );
        let half = body.len() / 2;
        stream.write_all(&body[..half]).await.unwrap();
        InFlight {
            token: m.token.clone(),
            approve,
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body; answers the response's status line.
    async fn finish(mut self) -> (String, bool, Result<String, String>) {
        let answer = async {
            self.stream
                .write_all(&self.rest)
                .await
                .map_err(|e| format!("writing the rest: {e}"))?;
            let mut response = Vec::new();
            tokio::time::timeout(
                Duration::from_secs(20),
                self.stream.read_to_end(&mut response),
            )
            .await
            .map_err(|_| "no answer within 20 s".to_owned())?
            .map_err(|e| format!("reading the answer: {e}"))?;
            let text = String::from_utf8_lossy(&response);
            let status = text.lines().next().unwrap_or_default().trim().to_owned();
            if status.is_empty() {
                Err("the connection was closed without an answer".into())
            } else {
                Ok(status)
            }
        }
        .await;
        (self.token, self.approve, answer)
    }
}

/// Every acknowledged settlement is in the app's database: the deposit holds the bank's final
/// status and, for a success, its ledger entry.
fn assert_committed(books: &Books, acked: &[(String, bool)], what: &str) {
    let deposits = books.deposit_by_token();
    let ledger = books.ledger_by_deposit();
    for (token, approve) in acked {
        let d = deposits
            .get(token.as_str())
            .unwrap_or_else(|| panic!("no deposit has token {token}"));
        let want = if *approve { "success" } else { "failure" };
        assert_eq!(
            d.status, want,
            "{what}: deposit {} was acknowledged as {want} but is {}",
            d.id, d.status
        );
        let entries = ledger.get(d.id.as_str()).map_or(0, Vec::len);
        assert_eq!(
            entries,
            usize::from(*approve),
            "{what}: deposit {} ({want}) has {entries} ledger entries",
            d.id
        );
    }
}

async fn under_load(backend: Backend) {
    let started = Instant::now();
    let world = World::new(onramp_binary!(), backend).await;
    let bank_sim = world.start_stubborn_bank(DUPLICATES).await;
    let mut app = world.start_app().await;
    let bank = world.bank();
    let (_browsers, made) = sign_in_and_deposit(&world, USERS, DEPOSITS).await;
    let prepared = started.elapsed();

    // The storm: every order settled at the bank, which then delivers its webhook (and a
    // duplicate) to the app. The last tenth waits for the SIGTERM, so it surely lands
    // mid-storm.
    let plan: Vec<(Made, bool)> = made
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), !i.is_multiple_of(7)))
        .collect();
    let total = plan.len();
    let storm = Storm::start(&bank, &plan, STORM_CONCURRENCY, STORM_PACE);

    // Once the bank's webhooks are landing: requests of our own that the app is in the middle
    // of (head read, half the body), then SIGTERM while they and the bank's webhooks are in
    // flight. The app must stay up until they are done, answer every one, then exit 0.
    let storm_started = Instant::now();
    loop {
        if bank.delivered_count().await >= SIGTERM_AFTER_DELIVERIES {
            break;
        }
        assert!(
            storm_started.elapsed() < Duration::from_secs(30),
            "the bank never delivered {SIGTERM_AFTER_DELIVERIES} webhooks"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled_so_far = storm.settled();
    let mut in_flight = Vec::new();
    for (m, approve) in settled_so_far.iter().rev().cycle().take(IN_FLIGHT) {
        in_flight.push(InFlight::start(&world, m, *approve).await);
    }
    let settled_at_term = storm.settled_count();
    let term_at = Instant::now();
    app.sigterm();
    storm.release();
    tokio::time::sleep(HELD_OPEN).await;
    assert!(
        app.try_wait().is_none(),
        "the app exited while {IN_FLIGHT} requests were in flight"
    );
    let answers: Vec<(String, bool, Result<String, String>)> =
        futures_util::future::join_all(in_flight.into_iter().map(InFlight::finish)).await;
    let status = app.wait_exit(EXIT_LIMIT).await;
    let exit_took = term_at.elapsed();
    let status =
        status.unwrap_or_else(|| panic!("the app still runs {EXIT_LIMIT:?} after SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(settled_at_term < total, "the SIGTERM landed mid-storm");
    let not_ok: Vec<_> = answers
        .iter()
        .filter(|(_, _, a)| !matches!(a, Ok(s) if s.starts_with("HTTP/1.1 200")))
        .collect();
    assert!(
        not_ok.is_empty(),
        "in-flight requests were not answered 200: {not_ok:?}"
    );
    storm.finish().await;

    // The app is gone. Whatever it acknowledged must be in its database.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_exit = bank.deliveries().await;
    let db = world.db().await;
    let books = db.snapshot().await;
    let approve_of: HashMap<&str, bool> = plan
        .iter()
        .map(|(m, approve)| (m.token.as_str(), *approve))
        .collect();
    let bank_acked: Vec<(String, bool)> = at_exit
        .iter()
        .filter(|d| d.delivered)
        .map(|d| (d.token.clone(), approve_of[d.token.as_str()]))
        .collect();
    for d in &at_exit {
        assert_eq!(
            d.status == "SUCCESS",
            approve_of[d.token.as_str()],
            "the bank's event for {}",
            d.token
        );
    }
    let our_acked: Vec<(String, bool)> = answers
        .iter()
        .map(|(t, approve, _)| (t.clone(), *approve))
        .collect();
    assert_committed(&books, &bank_acked, "delivered by the bank before the exit");
    assert_committed(&books, &our_acked, "answered 200 to us before the exit");
    books.assert_consistent();
    let processing_at_exit = books
        .deposits
        .iter()
        .filter(|d| d.status == "processing")
        .count();
    let ledger_at_exit = books.ledger.len();

    // Restart: the bank's retries finish the job, and everything ends credited exactly once.
    let restart = Instant::now();
    let mut app = world.start_app().await;
    let restarted_in = restart.elapsed();
    let list = bank
        .wait_all_delivered(total, Duration::from_secs(60))
        .await;
    let drained = restart.elapsed();
    let books = db.snapshot().await;
    db.close().await;
    let tokens: Vec<String> = made.iter().map(|m| m.token.clone()).collect();
    let bank_status = bank.statuses(&tokens).await;
    for (m, approve) in &plan {
        let want = if *approve { "SUCCESS" } else { "FAILURE" };
        assert_eq!(bank_status[&m.token], want, "the bank's status of {}", m.id);
    }
    books.assert_consistent();
    books.assert_matches_bank(&bank_status);
    let all: Vec<(String, bool)> = plan
        .iter()
        .map(|(m, approve)| (m.token.clone(), *approve))
        .collect();
    assert_committed(&books, &all, "after the restart");
    let expected_total: i64 = plan.iter().filter(|(_, a)| *a).map(|(m, _)| m.amount).sum();
    assert_eq!(books.total_balance(), expected_total, "total credited");

    // And a second SIGTERM, now idle, exits 0 too.
    let term_at = Instant::now();
    app.sigterm();
    let second = app.wait_exit(EXIT_LIMIT).await.expect("the app exits");
    let second_took = term_at.elapsed();
    assert_eq!(
        second.code(),
        Some(0),
        "exit status after SIGTERM: {second}"
    );
    drop(bank_sim);

    let figures = delivery_figures(&list);
    let delivered_before = bank_acked.len();
    report!("shutdown under load on {backend:?}:");
    report!(
        "  {USERS} users, {DEPOSITS} deposits ({} approved, {} declined), prepared in {prepared:.1?}",
        plan.iter().filter(|(_, a)| *a).count(),
        plan.iter().filter(|(_, a)| !*a).count()
    );
    report!(
        "  SIGTERM after {settled_at_term}/{total} settled at the bank with {IN_FLIGHT} requests of ours in flight (finished {HELD_OPEN:?} later, all answered 200); exited with {status} after {exit_took:.1?}"
    );
    report!(
        "  before the exit: {delivered_before} bank deliveries acknowledged, all committed with our {IN_FLIGHT}; {ledger_at_exit} ledger entries, {processing_at_exit} still processing"
    );
    report!(
        "  restart in {restarted_in:.1?}; all {} deliveries delivered {drained:.1?} after it ({} attempts, {} retried, at most {}; {} duplicate copies)",
        figures.deliveries,
        figures.attempts,
        figures.retried,
        figures.max_attempts,
        figures.deliveries as u64 * u64::from(DUPLICATES)
    );
    report!(
        "  final: {} ledger entries, wallets total {} = bank SUCCESS total {expected_total}; second SIGTERM exited with {second} after {second_took:.1?}",
        books.ledger.len(),
        books.total_balance()
    );
    report!("  took {:.1?}", started.elapsed());
}

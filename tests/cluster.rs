//! Several processes, one service: real `onramp` processes on one PostgreSQL, behind Debian's
//! nginx configured by the sample `deploy/nginx.conf` (one upstream line per process), with the
//! standalone bank simulator posting its webhooks through nginx. Each process may get any
//! request; a wallet is served by the process that leases its shard, and the others forward
//! to it.
//!
//! `cargo test --test cluster -- --nocapture` shows the figures.

use onramp_test_support::nginx::Nginx;
use onramp_test_support::webhook::{event, Webhooks};
use onramp_test_support::{
    free_port, onramp_binary, report, sign_in_and_deposit, Backend, Browser, Made, Proc, Storm,
    World,
};
use rand::{Rng, SeedableRng};
use reqwest::cookie::CookieStore;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A service of `n` processes behind nginx, with the bank simulator as a process of its own.
struct Service {
    world: World,
    nginx: Nginx,
    _bank: Proc,
    processes: Vec<Proc>,
}

impl Service {
    async fn start(n: usize, settings: &[(&str, &str)]) -> Service {
        let front = free_port();
        let world = World::new(onramp_binary!(), Backend::Postgres)
            .await
            .with_processes(n, front)
            .with_app_settings(settings);
        let upstreams: Vec<String> = world
            .app_ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
        let nginx = Nginx::start_for(&upstreams, front);
        let bank = world.start_stubborn_bank(2).await;
        let mut processes = Vec::new();
        for i in 0..n {
            processes.push(world.start_process(i).await);
        }
        Service {
            world,
            nginx,
            _bank: bank,
            processes,
        }
    }

    /// `person`'s browser (its cookies) talking to process `i` directly.
    fn at(&self, person: &Browser, i: usize) -> Browser {
        Browser {
            client: person.client.clone(),
            app: self.world.process_url(i),
        }
    }

    /// Webhooks posted to process `i` directly, signed as the bank signs them.
    fn webhooks_to(&self, i: usize) -> Webhooks {
        Webhooks::new(&self.world.process_url(i), &self.world.webhook_secret())
    }

    fn n(&self) -> usize {
        self.processes.len()
    }

    /// Stops process `i` with SIGTERM, checks that it exits 0 within 30 s, and starts it again;
    /// answers how long it took to exit.
    async fn restart(&mut self, i: usize) -> Duration {
        let stopping = Instant::now();
        self.processes[i].sigterm();
        let status = self.processes[i]
            .wait_exit(Duration::from_secs(30))
            .await
            .expect("it exits within 30 s");
        assert!(status.success(), "process {i} exited {status}");
        let exited = stopping.elapsed();
        self.processes[i] = self.world.start_process(i).await;
        exited
    }
}

/// `GET /api/user/me`'s id of a signed-in person.
async fn id_of(person: &Browser) -> String {
    let v: Value = person.me().await.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_begun_on_one_process_ends_on_another_and_a_logout_reaches_all_within_a_second() {
    let service = Service::start(3, &[]).await;
    // Begun at process 0: the sign-in's state travels in its sealed cookie.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let person = Browser::with_jar(&service.world.process_url(0), jar.clone());
    let provider = person.start_sign_in().await;
    let back = person
        .submit_to_provider(&provider, &[("email", "ann@example.com"), ("name", "Ann")])
        .await;
    let callback = onramp_test_support::location(&back);
    // ...and ended at process 2 (the callback URL is the front's: send it to process 2).
    let path = callback.split_once("/api/").map(|(_, p)| p).unwrap();
    let at2 = service.at(&person, 2);
    let landed = at2.get(&format!("/api/{path}")).await;
    assert_eq!(landed.status(), 303, "{}", landed.text().await.unwrap());
    assert_eq!(onramp_test_support::location(&landed), "/");

    // The session cookie, sent by hand from now on: the logout's answer clears it from a
    // browser, and the test must see what the processes do with the old one.
    let url = url::Url::parse(&service.world.process_url(0)).unwrap();
    let cookie = jar.cookies(&url).unwrap().to_str().unwrap().to_owned();
    assert!(cookie.contains("session_id="), "{cookie}");
    let plain = reqwest::Client::new();
    let me = |i: usize| {
        plain
            .get(format!("{}/api/user/me", service.world.process_url(i)))
            .header("Cookie", &cookie)
            .send()
    };
    for i in 0..service.n() {
        assert_eq!(me(i).await.unwrap().status(), 200, "process {i}");
    }

    // A logout at process 1 is refused by process 0 and 2 within a second.
    let logout = plain
        .post(format!("{}/api/auth/logout", service.world.process_url(1)))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let started = Instant::now();
    for i in [0, 2] {
        loop {
            let status = me(i).await.unwrap().status();
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "process {i} still accepts the session after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    report!("logout refused everywhere after {:?}", started.elapsed());
    drop(service.nginx);
}

/// What the test knows was acknowledged for the receive-only people: credits only go up, so
/// after any `200`/`201` a read anywhere must show at least what was acknowledged before it.
#[derive(Default)]
struct Acked {
    credited: Mutex<HashMap<usize, i64>>,
    transfers: Mutex<Vec<String>>,
    /// Transfers sent straight to the killed process while it was down: no connection.
    unconnected: AtomicUsize,
    /// Transfers answered 5xx (a takeover under way, or an answer lost with the killed
    /// process): done or not, the books say.
    failed: AtomicUsize,
    refused: AtomicUsize,
    reads: AtomicUsize,
}

impl Acked {
    fn credit(&self, saver: usize, paise: i64) -> i64 {
        let mut c = self.credited.lock().unwrap();
        let v = c.entry(saver).or_default();
        *v += paise;
        *v
    }
}

const DEPOSITORS: usize = 16;
const SAVERS: usize = 4;
const DEPOSITS: usize = 300;

/// Three processes behind nginx: deposits settled by webhooks the bank sends through nginx
/// (each delivered several times, so to several processes), webhooks posted to random processes
/// directly, and transfers sent to random processes, while one process is killed with SIGKILL
/// mid-storm and started again. After every `200` or `201` a balance read on another process
/// includes it; at the end every process shows every wallet as the books have it, the books
/// match the bank, and `onramp audit` exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_keep_every_paisa_and_read_their_writes_through_a_sigkill() {
    let started = Instant::now();
    let mut service = Service::start(3, &[("CLUSTER__LEASE_SECS", "3")]).await;
    let world = &service.world;
    let bank = world.bank();
    let (browsers, made) = sign_in_and_deposit(world, DEPOSITORS, DEPOSITS).await;
    let mut savers = Vec::new();
    for s in 0..SAVERS {
        savers.push(
            world
                .signed_in(&format!("saver{s}@example.com"), &format!("Saver {s}"))
                .await,
        );
    }
    // The savers' own deposits, settled by the test's webhooks straight to a process.
    let mut saver_deposits = Vec::new();
    for (s, saver) in savers.iter().enumerate() {
        for k in 0..5 {
            let v = saver.deposit(1_000 + k).await;
            let id = v["id"].as_str().unwrap().to_owned();
            let token = onramp_test_support::pay_token(v["url"].as_str().unwrap()).to_owned();
            saver_deposits.push((s, id, token, 1_000 + k));
        }
    }
    let prepared = started.elapsed();

    let to_settle: Vec<(Made, bool)> = made
        .iter()
        .map(|m| (m.clone(), m.amount % 7 != 0))
        .collect();
    let storm = Storm::start(&bank, &to_settle, 8, Duration::from_millis(10));
    let acked = Arc::new(Acked::default());
    let stop = Arc::new(AtomicBool::new(false));
    let saver_emails: Vec<String> = (0..SAVERS)
        .map(|s| format!("saver{s}@example.com"))
        .collect();
    let n = service.n();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let senders: Vec<reqwest::Client> = browsers.iter().map(|b| b.client.clone()).collect();
        let readers: Vec<reqwest::Client> = savers.iter().map(|b| b.client.clone()).collect();
        let urls: Vec<String> = (0..n).map(|i| world.process_url(i)).collect();
        let emails = saver_emails.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            while !stop.load(Ordering::Relaxed) {
                let (from, to, amount) = (
                    rng.gen_range(0..DEPOSITORS),
                    rng.gen_range(0..SAVERS),
                    rng.gen_range(1..=300),
                );
                let (i, j) = {
                    let i = rng.gen_range(0..n);
                    (i, (i + rng.gen_range(1..n)) % n)
                };
                let key = uuid::Uuid::new_v4().to_string();
                let sender = Browser {
                    client: senders[from].clone(),
                    app: urls[i].clone(),
                };
                let answer = sender
                    .client
                    .post(format!("{}/api/transfers", sender.app))
                    .header("Idempotency-Key", &key)
                    .json(&serde_json::json!({ "to": emails[to], "amount": amount }))
                    .send()
                    .await;
                let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
                match status {
                    201 => {
                        let v: Value = answer.unwrap().json().await.unwrap();
                        acked
                            .transfers
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_owned());
                        let least = acked.credit(to, amount);
                        let reader = Browser {
                            client: readers[to].clone(),
                            app: urls[j].clone(),
                        };
                        if let Ok(r) = reader.client.get(format!("{}/api/balance", reader.app)).send().await {
                            if r.status() == 200 {
                                let seen = r.json::<Value>().await.unwrap()["amount"].as_i64().unwrap();
                                assert!(
                                    seen >= least,
                                    "process {j} shows saver {to} {seen} paise after process {i} acknowledged a transfer making it at least {least}"
                                );
                                acked.reads.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    409 => {
                        acked.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    0 => {
                        acked.unconnected.fetch_add(1, Ordering::Relaxed);
                    }
                    502 | 503 => {
                        acked.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("a transfer answered {other}"),
                }
            }
        }));
    }

    // Midway: SIGKILL process 1, then the savers' webhooks straight to the other processes,
    // each followed by a read on yet another one; then process 1 again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = storm.settled_count();
    service.processes[1].kill9();
    let kill = Instant::now();
    let mut webhook_reads = 0;
    for (k, (s, id, token, amount)) in saver_deposits.iter().enumerate() {
        let i = [0, 2][k % 2];
        let j = 2 - i;
        // The bank settles it too (and sends its own webhook, through nginx, later or sooner).
        bank.settle(token, true).await;
        let posted = service
            .webhooks_to(i)
            .post(&event(token, id, *amount, "SUCCESS"), None)
            .await;
        assert_eq!(
            posted.status(),
            200,
            "process {i}: {}",
            posted.text().await.unwrap()
        );
        let least = acked.credit(*s, *amount);
        let seen = service.at(&savers[*s], j).balance().await;
        assert!(
            seen >= least,
            "process {j} shows {seen} after process {i} credited to {least}"
        );
        webhook_reads += 1;
    }
    let webhooks_after_kill = kill.elapsed();
    service.processes[1] = world.start_process(1).await;
    let restarted = kill.elapsed();
    storm.release();
    storm.finish().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    bank.wait_all_delivered(
        to_settle.len() + saver_deposits.len(),
        Duration::from_secs(60),
    )
    .await;

    // The books against the bank, and every process against the books.
    let db = world.db().await;
    let books = db.snapshot().await;
    let tokens: Vec<String> = made
        .iter()
        .map(|m| m.token.clone())
        .chain(saver_deposits.iter().map(|d| d.2.clone()))
        .collect();
    let bank_status = bank.statuses(&tokens).await;
    books.assert_consistent();
    books.assert_matches_bank(&bank_status);
    let stored: std::collections::HashSet<&str> =
        books.transfers.iter().map(|t| t.id.as_str()).collect();
    let acked_transfers = acked.transfers.lock().unwrap().clone();
    for id in &acked_transfers {
        assert!(
            stored.contains(id.as_str()),
            "acknowledged transfer {id} is not stored"
        );
    }
    let people: Vec<&Browser> = browsers.iter().chain(savers.iter()).collect();
    for person in &people {
        let id = id_of(person).await;
        let want = books.balance_of(&id);
        for i in 0..n {
            assert_eq!(
                service.at(person, i).balance().await,
                want,
                "process {i} on {id}"
            );
        }
    }
    let (ok, audit) = world.audit();
    assert!(ok, "onramp audit failed:\n{audit}");
    db.close().await;

    report!("three processes behind nginx, SIGKILL of one mid-storm:");
    report!(
        "  {DEPOSITORS} depositors and {SAVERS} savers, {DEPOSITS} deposits, prepared in {prepared:.1?}; killed when {killed_at} were settled at the bank"
    );
    report!(
        "  {} transfers acknowledged ({} stored), {} refused (409), {} sent to the killed process while it was down, {} answered 5xx; {} reads on another process after a 201",
        acked_transfers.len(),
        books.transfers.len(),
        acked.refused.load(Ordering::Relaxed),
        acked.unconnected.load(Ordering::Relaxed),
        acked.failed.load(Ordering::Relaxed),
        acked.reads.load(Ordering::Relaxed)
    );
    report!(
        "  {webhook_reads} webhooks to the survivors each read back on the other, {webhooks_after_kill:.1?} after the kill; the killed process served again {restarted:.1?} after it"
    );
    report!("  took {:.1?}", started.elapsed());
    drop(service.nginx);
}

/// A process paused (SIGSTOP) past its lease loses its wallets to the other, and once resumed
/// commits nothing for them: the requests it had taken in are answered by the new owner, and
/// the books stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_paused_past_its_lease_commits_nothing_for_the_wallets_it_lost() {
    let service = Service::start(2, &[("CLUSTER__LEASE_SECS", "2")]).await;
    let world = &service.world;
    let bank = world.bank();
    let (people, made) = sign_in_and_deposit(world, 6, 12).await;
    for m in &made {
        bank.settle(&m.token, true).await;
    }
    bank.wait_all_delivered(made.len(), Duration::from_secs(30))
        .await;
    let ids = futures_ids(&people).await;
    let db = world.db().await;
    // Which process owns whom now.
    let urls = db
        .strings("SELECT COALESCE(url, '') FROM cluster_shards ORDER BY shard")
        .await;
    let p0 = format!("http://127.0.0.1:{}", world.app_ports()[0]);
    assert!(urls.contains(&p0), "process 0 owns shards: {urls:?}");

    // Paused, with requests for every person queued at its door.
    let pid = service.processes[0].pid();
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut queued = Vec::new();
    for (k, person) in people.iter().enumerate() {
        let at0 = service.at(person, 0);
        let to = format!("user{}@example.com", (k + 1) % people.len());
        queued.push(tokio::spawn(async move {
            let r = at0.transfer(&to, 100).await;
            r.status().as_u16()
        }));
    }
    // Past its lease: process 1 serves everyone, and moves their money meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (k, person) in people.iter().enumerate() {
        let to = format!("user{}@example.com", (k + 2) % people.len());
        let r = service.at(person, 1).transfer(&to, 50).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let owners = db
        .strings("SELECT DISTINCT COALESCE(url, '') FROM cluster_shards")
        .await;
    assert!(
        !owners.contains(&p0),
        "process 0 still holds shards: {owners:?}"
    );
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let mut answers = Vec::new();
    for q in queued {
        answers.push(q.await.unwrap());
    }
    // Each queued request was answered by the wallets' new owner, or refused honestly.
    assert!(
        answers.iter().all(|s| *s == 201 || *s == 503),
        "answers after the pause: {answers:?}"
    );
    let books = db.snapshot().await;
    books.assert_consistent();
    let moved_201 = answers.iter().filter(|s| **s == 201).count();
    assert_eq!(
        books.transfers.len(),
        people.len() + moved_201,
        "exactly the acknowledged transfers are stored"
    );
    for (person, id) in people.iter().zip(&ids) {
        for i in 0..2 {
            assert_eq!(service.at(person, i).balance().await, books.balance_of(id));
        }
    }
    let (ok, audit) = world.audit();
    assert!(ok, "onramp audit failed:\n{audit}");
    db.close().await;
    report!("paused past its lease: queued requests answered {answers:?}");
    drop(service.nginx);
}

async fn futures_ids(people: &[Browser]) -> Vec<String> {
    let mut ids = Vec::new();
    for p in people {
        ids.push(id_of(p).await);
    }
    ids
}

/// Every process restarted in turn (SIGTERM, then started again) while the load tool's mixed
/// scenario runs through nginx: each process exits 0 within 30 s, no request is answered 5xx,
/// and the load tool's check of every balance, transfer and withdrawal passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_process_under_load_answers_no_5xx() {
    use onramp_load::{run_scenario, LoadConfig, Scenario};
    let mut service = Service::start(3, &[("CLUSTER__LEASE_SECS", "5")]).await;
    let mut config = LoadConfig::new(Scenario::Mixed, service.world.app_url());
    config.webhook_secret = String::from_utf8(service.world.webhook_secret()).unwrap();
    config.progress = false;
    let r = &mut config.run;
    r.seed = 21;
    r.concurrency = 12;
    r.webhook_concurrency = 6;
    r.healthz_secs = 0.2;
    r.users = 60;
    r.deposits = Scenario::Mixed.funding_deposits(60).unwrap();
    let w = r.withdrawal.as_mut().expect("withdrawal options");
    w.withdrawals = ROLLING_LOAD;
    w.read_concurrency = 2;
    let t = r.transfer.as_mut().expect("transfer options");
    t.transfers = ROLLING_LOAD;
    t.storm_deposits = ROLLING_LOAD / 2;
    t.read_concurrency = 2;
    let load = tokio::spawn(run_scenario(config));

    // Once transfers are flowing, each process in turn.
    let db = service.world.db().await;
    let started = Instant::now();
    while db.scalar("SELECT count(*) FROM transfers").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no transfer yet"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rolling = Instant::now();
    let mut exits = Vec::new();
    for i in 0..service.n() {
        exits.push(service.restart(i).await);
    }
    let rolled_in = rolling.elapsed();
    let transfers_when_rolled = db.scalar("SELECT count(*) FROM transfers").await;
    let report = load.await.unwrap().expect("the scenario runs");
    println!("{}", report.table());
    if !report.check.passed {
        eprintln!("nginx's error log:\n{}", service.nginx.error_log());
    }
    assert!(
        (transfers_when_rolled as usize) < ROLLING_LOAD,
        "the load was still running when the last process came back"
    );
    assert!(
        report.check.passed,
        "the check failed: {:?}",
        report.check.problems
    );
    assert_eq!(
        report.check.server_errors, 0,
        "5xx answers during the restarts"
    );
    let (ok, audit) = service.world.audit();
    assert!(ok, "onramp audit failed:\n{audit}");
    db.close().await;
    report!(
        "rolling restart of 3 processes under the mixed load: each exited 0 in {exits:?}, all back after {rolled_in:.1?} ({transfers_when_rolled} transfers stored by then); {} requests in the mixed phase, no 5xx",
        report.mixed.as_ref().map_or(0, |m| m.requests)
    );
    drop(service.nginx);
}

/// Transfers and withdrawals the rolling restart's load sends: enough that it outlasts the
/// restarts.
const ROLLING_LOAD: usize = 3000;

/// A flood of POSTs through nginx while each process in turn is told to stop and started again:
/// every POST gets the app's own answer, within seconds. nginx never sends a POST twice, so a
/// connection left in the stopping process's accept queue and reset as its listener closed (the
/// request already written on it) would be a `502` here; one nginx opened while the listener
/// was closing waits for its SYN to be sent again (a second) and is passed to the other process.
/// The POSTs are webhooks with a wrong signature: the app answers each `401` at once, touching
/// no wallet, and each one a stopping process answers closes its connection, so nginx opens new
/// connections to it as fast as the machine allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_flooding_in_while_processes_stop_are_each_answered_by_the_app() {
    let mut service = Service::start(2, &[("CLUSTER__LEASE_SECS", "5")]).await;
    let url = format!("{}/api/webhooks/bank", service.world.app_url());
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let waits: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut flood = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        let (url, stop, answers, waits) =
            (url.clone(), stop.clone(), answers.clone(), waits.clone());
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let answer = match client
                    .post(&url)
                    .header("X-Bank-Signature", "t=1,v1=00")
                    .body(r#"{"type":"order"}"#)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => format!("no answer: {e}"),
                };
                waits.lock().unwrap().push(sent.elapsed());
                *answers.lock().unwrap().entry(answer).or_default() += 1;
            }
        }));
    }
    let mut exits = Vec::new();
    for _ in 0..FLOOD_ROUNDS {
        for i in 0..service.n() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            exits.push(service.restart(i).await);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let total: usize = answers.values().sum();
    let own = answers.get("401").copied().unwrap_or(0);
    if own != total {
        eprintln!("nginx's error log:\n{}", service.nginx.error_log());
    }
    assert_eq!(own, total, "answers other than the app's 401: {answers:?}");
    let mut waits = waits.lock().unwrap().clone();
    waits.sort();
    let slow = waits
        .iter()
        .filter(|w| **w > Duration::from_millis(500))
        .count();
    assert!(
        *waits.last().unwrap() < Duration::from_secs(3),
        "a POST waited {:?}",
        waits.last().unwrap()
    );
    report!(
        "{} stops of a process under a flood of {total} POSTs through nginx ({FLOOD_CONNECTIONS} at a time): each exited 0 in {exits:?}, every POST answered by the app; p99 {:.1?}, slowest {:.1?}, {slow} answers took over 0.5 s",
        exits.len(),
        waits[waits.len() * 99 / 100],
        waits.last().unwrap()
    );
}

/// POSTs in flight at once during the flood, and how many times each process is stopped.
const FLOOD_CONNECTIONS: usize = 32;
const FLOOD_ROUNDS: usize = 3;

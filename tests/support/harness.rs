//! The real `onramp` binary as child processes: the bank simulator on its own (`onramp bank-sim`,
//! so it outlives the app), the app with the bank turned off and pointed at it, and the tools the
//! crash and shutdown tests share: a person's browser, the bank's API, direct reads of the app's
//! database and the money invariants.
//!
//! The including test crate must declare `mod postgres;` (`tests/support/postgres.rs`) at its root.
#![allow(dead_code)]

use futures_util::{stream, StreamExt};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BANK_API_KEY: &str = "onramp-dev-bank-key";
pub const WEBHOOK_SECRET: &str = "onramp-dev-webhook-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One test's world: a scratch directory, the app's database and the three ports.
pub struct World {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub database_url: String,
    pub app_port: u16,
    pub bank_port: u16,
    pub idp_port: u16,
}

impl World {
    pub async fn new(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/app.db", dir.path().display()),
            Backend::Postgres => crate::postgres::cluster().fresh_database().await,
        };
        World {
            dir,
            backend,
            database_url,
            app_port: free_port(),
            bank_port: free_port(),
            idp_port: free_port(),
        }
    }

    /// The app as browsers see it (the OAuth callback and the cookie are on `localhost`).
    pub fn app_url(&self) -> String {
        format!("http://localhost:{}", self.app_port)
    }

    pub fn bank_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.bank_port)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

/// Keeps the scratch directory (logs, SQLite files) of a failed test, and says where.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "---- the failed test's files are kept in {} ----",
                self.dir.path().display()
            );
        }
    }
}

impl World {
    /// Environment shared by both processes: nothing may touch the repository's `data/`.
    fn common_env(&self) -> Vec<(String, String)> {
        let d = self.dir.path().display();
        vec![
            ("ONRAMP__LOG__LEVEL".into(), "warn".into()),
            ("ONRAMP__LOG__FORMAT".into(), "pretty".into()),
            ("RUST_LOG".into(), "warn".into()),
            ("NO_COLOR".into(), "1".into()),
            (
                "ONRAMP__DEV__BANK_DATABASE_URL".into(),
                format!("sqlite://{d}/bank.db"),
            ),
            (
                "ONRAMP__DEV__BANK_LISTEN".into(),
                format!("127.0.0.1:{}", self.bank_port),
            ),
            (
                "ONRAMP__DEV__IDP_LISTEN".into(),
                format!("127.0.0.1:{}", self.idp_port),
            ),
            (
                "ONRAMP__SERVER__LISTEN".into(),
                format!("127.0.0.1:{}", self.app_port),
            ),
            ("ONRAMP__DATABASE__URL".into(), self.database_url.clone()),
        ]
    }

    /// Starts `onramp bank-sim` posting to the app, with `extra` settings (`DEV__…` keys are
    /// prefixed with `ONRAMP__`), and waits until its API answers.
    pub async fn start_bank(&self, extra: &[(&str, &str)]) -> Proc {
        let mut env = self.common_env();
        env.push((
            "ONRAMP__DEV__WEBHOOK_URL".into(),
            format!("http://127.0.0.1:{}/api/webhooks/bank", self.app_port),
        ));
        for (k, v) in extra {
            env.push((format!("ONRAMP__{k}"), (*v).into()));
        }
        let mut bank = Proc::spawn("bank-sim", &["bank-sim"], env, self.log("bank-sim"));
        let url = format!("{}/api/bank/deliveries", self.bank_url());
        wait_until_up(&mut bank, &url, Some(BANK_API_KEY)).await;
        bank
    }

    /// Starts the app (bank off, pointed at the simulator; development sign-in on) and waits
    /// until `/healthz` answers.
    pub async fn start_app(&self) -> Proc {
        let mut app = self.spawn_app();
        self.wait_app(&mut app).await;
        app
    }

    pub fn spawn_app(&self) -> Proc {
        let mut env = self.common_env();
        env.extend([
            ("ONRAMP__DEV__BANK_ENABLED".into(), "false".into()),
            ("ONRAMP__DEV__IDP_ENABLED".into(), "true".into()),
            ("ONRAMP__BANK__API_URL".into(), self.bank_url()),
            ("ONRAMP__SERVER__WORKERS".into(), "2".into()),
            ("ONRAMP__DATABASE__MAX_CONNECTIONS".into(), "8".into()),
        ]);
        Proc::spawn("app", &[], env, self.log("app"))
    }

    pub async fn wait_app(&self, app: &mut Proc) {
        let url = format!("http://127.0.0.1:{}/healthz", self.app_port);
        wait_until_up(app, &url, None).await;
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.app_url())
    }

    pub fn bank(&self) -> Bank {
        Bank::new(&self.bank_url())
    }

    pub async fn db(&self) -> Db {
        Db::connect(&self.database_url).await
    }
}

/// Polls `url` until it answers 200; fails at once if the process exits.
async fn wait_until_up(p: &mut Proc, url: &str, bearer: Option<&str>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = p.try_wait() {
            panic!("{} exited while starting: {status}", p.name);
        }
        let mut req = client.get(url);
        if let Some(key) = bearer {
            req = req.bearer_auth(key);
        }
        if let Ok(r) = req.send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} did not come up at {url}",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process; killed (SIGKILL) when dropped. On a panic its log's tail is printed.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    log_from: u64,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], env: Vec<(String, String)>, log: PathBuf) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let log_from = out.metadata().unwrap().len();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_onramp"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("ONRAMP_CONFIG")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child: Some(child),
            log,
            log_from,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, which has not been reaped yet (we hold it).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "cannot signal {}", self.name);
    }

    /// SIGKILL, then reap it.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        child.wait().unwrap()
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What this process (this start of it) wrote so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(self.log_from));
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "---- last lines of {} ({}) ----\n{tail}",
                self.name,
                self.log.display()
            );
        }
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A person's browser: a cookie jar, no automatic redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub app: String,
}

impl Browser {
    pub fn new(app: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            app: app.into(),
        }
    }

    /// The whole sign-in through the development identity provider.
    pub async fn sign_in(&self, email: &str, name: &str) {
        let r = self
            .client
            .get(format!("{}/api/auth/google", self.app))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 302 || r.status() == 303,
            "status {}",
            r.status()
        );
        let authorize = url::Url::parse(&location(&r)).unwrap();
        let mut fields: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        fields.push(("email".into(), email.into()));
        fields.push(("name".into(), name.into()));
        let mut form_url = authorize.clone();
        form_url.set_query(None);
        let submitted = self
            .client
            .post(form_url)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(submitted.status(), 303, "the provider redirects back");
        let done = self.client.get(location(&submitted)).send().await.unwrap();
        assert_eq!(done.status(), 303, "the callback signs in");
        assert_eq!(location(&done), "/");
    }

    /// `POST /api/deposit`; answers `(deposit id, bank token)`.
    pub async fn deposit(&self, amount: i64) -> (String, String) {
        let r = self
            .client
            .post(format!("{}/api/deposit", self.app))
            .json(&json!({ "amount": amount }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "deposit refused: {v}");
        let url = v["url"].as_str().unwrap();
        let token = url.split("token=").nth(1).unwrap().to_owned();
        (v["id"].as_str().unwrap().to_owned(), token)
    }

    pub async fn balance(&self) -> i64 {
        let r = self
            .client
            .get(format!("{}/api/balance", self.app))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["amount"].as_i64().unwrap()
    }
}

/// A deposit made through the app.
#[derive(Debug, Clone)]
pub struct Made {
    pub user: usize,
    pub id: String,
    pub token: String,
    pub amount: i64,
}

/// Signs in `users` people and makes `deposits` deposits spread over them (16 at a time).
pub async fn sign_in_and_deposit(
    world: &World,
    users: usize,
    deposits: usize,
) -> (Vec<Browser>, Vec<Made>) {
    let browsers: Vec<Browser> = stream::iter(0..users)
        .map(|i| async move {
            let b = world.browser();
            b.sign_in(&format!("user{i}@example.com"), &format!("User {i}"))
                .await;
            b
        })
        .buffered(8)
        .collect()
        .await;
    let browsers_ref = &browsers;
    let made: Vec<Made> = stream::iter(0..deposits)
        .map(|i| async move {
            let user = i % users;
            // Varied amounts from ₹1 to about ₹1,000.
            let amount = 100 + (i as i64 * 7919) % 99_900;
            let (id, token) = browsers_ref[user].deposit(amount).await;
            Made {
                user,
                id,
                token,
                amount,
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    (browsers, made)
}

/// The bank's API, as the tests drive it.
#[derive(Clone)]
pub struct Bank {
    pub url: String,
    pub client: reqwest::Client,
}

/// One row of `GET /api/bank/deliveries`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub token: String,
    pub status: String,
    pub state: String,
    pub attempts: i64,
    pub delivered: bool,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
}

impl Bank {
    pub fn new(url: &str) -> Bank {
        Bank {
            url: url.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    /// Approves (or declines) an order through the JSON API; the order must have been pending.
    pub async fn settle(&self, token: &str, approve: bool) {
        let action = if approve { "approve" } else { "decline" };
        let r = self
            .client
            .post(format!("{}/api/bank/orders/{token}/{action}", self.url))
            .bearer_auth(BANK_API_KEY)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            200,
            "{action} {token}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// The bank's status of an order: PENDING, SUCCESS or FAILURE.
    pub async fn order_status(&self, token: &str) -> String {
        let r = self
            .client
            .get(format!("{}/api/bank/orders/{token}", self.url))
            .bearer_auth(BANK_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "order {token}");
        let v: Value = r.json().await.unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    /// The status of every token, asked 16 at a time.
    pub async fn statuses(&self, tokens: &[String]) -> HashMap<String, String> {
        stream::iter(tokens.iter().cloned())
            .map(|t| async move {
                let s = self.order_status(&t).await;
                (t, s)
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    pub async fn deliveries(&self) -> Vec<Delivery> {
        let r = self
            .client
            .get(format!("{}/api/bank/deliveries", self.url))
            .bearer_auth(BANK_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Waits (at most `limit`) until `expected` deliveries exist and every one is delivered.
    /// Fails at once if one was given up.
    pub async fn wait_all_delivered(&self, expected: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let list = self.deliveries().await;
            let failed: Vec<&Delivery> = list.iter().filter(|d| d.state == "failed").collect();
            assert!(failed.is_empty(), "the bank gave up deliveries: {failed:?}");
            let delivered = list.iter().filter(|d| d.state == "delivered").count();
            if list.len() == expected && delivered == expected {
                return list;
            }
            assert!(
                started.elapsed() < limit,
                "after {limit:?}: {delivered} of {} deliveries delivered ({expected} expected)",
                list.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Figures from the bank's delivery log.
pub struct DeliveryFigures {
    pub deliveries: usize,
    pub attempts: i64,
    pub retried: usize,
    pub max_attempts: i64,
}

pub fn delivery_figures(list: &[Delivery]) -> DeliveryFigures {
    DeliveryFigures {
        deliveries: list.len(),
        attempts: list.iter().map(|d| d.attempts).sum(),
        retried: list.iter().filter(|d| d.attempts > 1).count(),
        max_attempts: list.iter().map(|d| d.attempts).max().unwrap_or(0),
    }
}

/// Direct reads of the app's database.
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepositRow {
    pub id: String,
    pub user_id: String,
    pub amount: i64,
    pub status: String,
    pub bank_token: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub user_id: String,
    pub deposit_id: String,
    pub amount: i64,
    pub balance_after: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WalletRow {
    pub user_id: String,
    pub balance: i64,
}

const DEPOSITS: &str = "SELECT id, user_id, amount, status, bank_token FROM deposits ORDER BY id";
const LEDGER: &str =
    "SELECT id, user_id, deposit_id, amount, balance_after FROM ledger ORDER BY id";
const WALLETS: &str = "SELECT user_id, balance FROM wallets ORDER BY user_id";

macro_rules! fetch {
    ($db:expr, $ty:ty, $sql:expr) => {
        match $db {
            Db::Sqlite(p) => sqlx::query_as::<_, $ty>($sql).fetch_all(p).await,
            Db::Postgres(p) => sqlx::query_as::<_, $ty>($sql).fetch_all(p).await,
        }
        .unwrap()
    };
}

impl Db {
    pub async fn connect(url: &str) -> Db {
        if url.starts_with("sqlite") {
            Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .unwrap(),
            )
        } else {
            Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    pub async fn snapshot(&self) -> Books {
        Books {
            deposits: fetch!(self, DepositRow, DEPOSITS),
            ledger: fetch!(self, LedgerRow, LEDGER),
            wallets: fetch!(self, WalletRow, WALLETS),
        }
    }

    pub async fn close(self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// The app's money tables at one moment.
pub struct Books {
    pub deposits: Vec<DepositRow>,
    pub ledger: Vec<LedgerRow>,
    pub wallets: Vec<WalletRow>,
}

impl Books {
    pub fn deposit_by_token(&self) -> HashMap<&str, &DepositRow> {
        self.deposits
            .iter()
            .filter_map(|d| d.bank_token.as_deref().map(|t| (t, d)))
            .collect()
    }

    pub fn ledger_by_deposit(&self) -> HashMap<&str, Vec<&LedgerRow>> {
        let mut m: HashMap<&str, Vec<&LedgerRow>> = HashMap::new();
        for l in &self.ledger {
            m.entry(l.deposit_id.as_str()).or_default().push(l);
        }
        m
    }

    pub fn balance_of(&self, user_id: &str) -> i64 {
        self.wallets
            .iter()
            .find(|w| w.user_id == user_id)
            .map_or(0, |w| w.balance)
    }

    pub fn total_balance(&self) -> i64 {
        self.wallets.iter().map(|w| w.balance).sum()
    }

    /// The app's own books agree with themselves: every ledger entry belongs to a successful
    /// deposit of the same user and amount, every successful deposit has exactly one entry,
    /// each user's `balance_after` runs without a gap, and every wallet equals its ledger.
    pub fn assert_consistent(&self) {
        let deposits: HashMap<&str, &DepositRow> =
            self.deposits.iter().map(|d| (d.id.as_str(), d)).collect();
        let by_deposit = self.ledger_by_deposit();
        for (deposit_id, entries) in &by_deposit {
            assert_eq!(
                entries.len(),
                1,
                "deposit {deposit_id} has {} ledger entries",
                entries.len()
            );
            let d = deposits
                .get(deposit_id)
                .unwrap_or_else(|| panic!("ledger entry for unknown deposit {deposit_id}"));
            let e = entries[0];
            assert_eq!(
                d.status, "success",
                "ledger entry for a {} deposit",
                d.status
            );
            assert_eq!(e.user_id, d.user_id, "ledger entry {} user", e.id);
            assert_eq!(e.amount, d.amount, "ledger entry {} amount", e.id);
        }
        for d in &self.deposits {
            if d.status == "success" {
                assert!(
                    by_deposit.contains_key(d.id.as_str()),
                    "successful deposit {} has no ledger entry",
                    d.id
                );
            }
        }
        let mut running: BTreeMap<&str, i64> = BTreeMap::new();
        for e in &self.ledger {
            let r = running.entry(e.user_id.as_str()).or_insert(0);
            *r += e.amount;
            assert_eq!(
                e.balance_after, *r,
                "ledger entry {} of {}: balance_after {} but the entries sum to {}",
                e.id, e.user_id, e.balance_after, *r
            );
        }
        for w in &self.wallets {
            let sum = running.get(w.user_id.as_str()).copied().unwrap_or(0);
            assert_eq!(
                w.balance, sum,
                "wallet of {} is {} but its ledger sums to {sum}",
                w.user_id, w.balance
            );
        }
        for (user, sum) in &running {
            assert_eq!(
                self.balance_of(user),
                *sum,
                "user {user} has ledger entries summing to {sum} but no such wallet balance"
            );
        }
        let success: i64 = self
            .deposits
            .iter()
            .filter(|d| d.status == "success")
            .map(|d| d.amount)
            .sum();
        assert_eq!(
            self.total_balance(),
            success,
            "wallets and successful deposits disagree"
        );
    }

    /// The app agrees with the bank: for every deposit the bank settled, the app holds the same
    /// final status, and each user's wallet is exactly the sum of that user's deposits the bank
    /// marked SUCCESS. Deposits the bank still has pending are processing and uncredited.
    pub fn assert_matches_bank(&self, bank: &HashMap<String, String>) {
        let mut expected: HashMap<&str, i64> = HashMap::new();
        let mut processing_settled = Vec::new();
        for d in &self.deposits {
            let token = d
                .bank_token
                .as_deref()
                .expect("every deposit has a bank order");
            let status = bank
                .get(token)
                .unwrap_or_else(|| panic!("the bank was not asked about {token}"));
            match status.as_str() {
                "SUCCESS" | "FAILURE" if d.status == "processing" => {
                    processing_settled.push(d.id.clone())
                }
                "SUCCESS" | "FAILURE" => assert_eq!(
                    d.status,
                    status.to_lowercase(),
                    "deposit {}: the bank says {status}",
                    d.id
                ),
                "PENDING" => assert_eq!(
                    d.status, "processing",
                    "deposit {} is {} but the bank has it pending",
                    d.id, d.status
                ),
                other => panic!("unknown bank status {other}"),
            }
            if status == "SUCCESS" {
                *expected.entry(d.user_id.as_str()).or_insert(0) += d.amount;
            }
        }
        assert!(
            processing_settled.is_empty(),
            "{} deposits settled at the bank are still processing: {:?}",
            processing_settled.len(),
            processing_settled
        );
        let users: std::collections::BTreeSet<&str> = self
            .deposits
            .iter()
            .map(|d| d.user_id.as_str())
            .chain(self.wallets.iter().map(|w| w.user_id.as_str()))
            .collect();
        for user in users {
            let want = expected.get(user).copied().unwrap_or(0);
            assert_eq!(
                self.balance_of(user),
                want,
                "wallet of {user} differs from its deposits the bank marked SUCCESS"
            );
        }
    }
}

/// Prints to stdout (seen with `--nocapture`) and stderr (kept in CI logs on failure).
/// The including crate declares this module with `#[macro_use]`.
macro_rules! report {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        eprintln!("{line}");
    }};
}

//! The real `onramp` binary as child processes: the bank simulator on its own (`onramp
//! bank-sim`, so it outlives the app), the app with the bank turned off and pointed at it, and
//! what crash and shutdown tests do to them (SIGKILL, SIGTERM, SIGINT, restarts on the same
//! port, a storm of settlements).

use crate::{free_port, Backend, Bank, Browser, TestDb};
use futures_util::{stream, StreamExt};
use onramp::configuration::default_settings;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary to run and the directory to run it in (its `config/` is read from there). Made
/// by [`crate::onramp_binary!`] in the test crate, where Cargo names the binary it built.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub exe: &'static str,
    pub dir: &'static str,
}

/// One test's world: a scratch directory, the app's database and the three ports.
pub struct World {
    pub binary: Binary,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub database_url: String,
    pub app_port: u16,
    pub bank_port: u16,
    pub idp_port: u16,
    /// Settings of the app's beyond the world's own (`with_app_settings`).
    pub app_settings: Vec<(String, String)>,
    /// The ports of the service's other processes (`with_processes`): process 0 listens on
    /// `app_port`, process `i` on `more_app_ports[i - 1]`.
    pub more_app_ports: Vec<u16>,
    /// The port of a front (nginx) that browsers and the bank use instead of `app_port`.
    pub front_port: Option<u16>,
}

impl World {
    pub async fn new(binary: Binary, backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let database_url = backend.fresh_database(dir.path()).await;
        World {
            binary,
            dir,
            backend,
            database_url,
            app_port: free_port(),
            bank_port: free_port(),
            idp_port: free_port(),
            app_settings: Vec::new(),
            more_app_ports: Vec::new(),
            front_port: None,
        }
    }

    /// `n` app processes serve this world's database as one service (PostgreSQL), each on its
    /// own port; browsers and the bank go through a front on `front` ([`World::front_url`]).
    pub fn with_processes(mut self, n: usize, front: u16) -> World {
        assert!(n >= 1);
        self.more_app_ports = (1..n).map(|_| free_port()).collect();
        self.front_port = Some(front);
        self
    }

    /// Every app process's port, process 0 first.
    pub fn app_ports(&self) -> Vec<u16> {
        std::iter::once(self.app_port)
            .chain(self.more_app_ports.iter().copied())
            .collect()
    }

    /// Process `i`'s own URL (as another process or a test reaches it directly).
    pub fn process_url(&self, i: usize) -> String {
        format!("http://localhost:{}", self.app_ports()[i])
    }

    /// The app runs with these settings too (keys as `RECONCILE__EVERY_SECS`, prefixed with
    /// `ONRAMP__`), every time it is started.
    pub fn with_app_settings(mut self, settings: &[(&str, &str)]) -> World {
        (self.app_settings).extend(
            settings
                .iter()
                .map(|(k, v)| (format!("ONRAMP__{k}"), (*v).into())),
        );
        self
    }

    /// The app as browsers see it (the OAuth callback and the cookie are on `localhost`): the
    /// front, when there is one.
    pub fn app_url(&self) -> String {
        format!(
            "http://localhost:{}",
            self.front_port.unwrap_or(self.app_port)
        )
    }

    pub fn bank_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.bank_port)
    }

    /// The bank API key and webhook secret both processes run with: the defaults, since they
    /// read `config/default.toml` and no `ONRAMP_CONFIG`, and the tests set neither.
    pub fn bank_api_key(&self) -> String {
        crate::bank_api_key(&default_settings())
    }

    pub fn webhook_secret(&self) -> Vec<u8> {
        crate::webhook_secret(&default_settings())
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
        let to = self.front_port.unwrap_or(self.app_port);
        env.push((
            "ONRAMP__DEV__WEBHOOK_URL".into(),
            format!("http://127.0.0.1:{to}/api/webhooks/bank"),
        ));
        for (k, v) in extra {
            env.push((format!("ONRAMP__{k}"), (*v).into()));
        }
        let mut bank = Proc::spawn(
            self.binary,
            "bank-sim",
            &["bank-sim"],
            env,
            self.log("bank-sim"),
        );
        let url = format!("{}/api/bank/deliveries", self.bank_url());
        wait_until_up(&mut bank, &url, Some(&self.bank_api_key())).await;
        bank
    }

    /// A bank for a storm against an app that goes away: it retries patiently (200 attempts,
    /// backing off from 50 ms to 1 s, 2 s per attempt), sends `duplicates` extra copies of each
    /// first attempt, and delivers out of order.
    pub async fn start_stubborn_bank(&self, duplicates: u32) -> Proc {
        let duplicates = duplicates.to_string();
        self.start_bank(&[
            ("DEV__WEBHOOK_MAX_ATTEMPTS", "200"),
            ("DEV__WEBHOOK_BASE_DELAY_MS", "50"),
            ("DEV__WEBHOOK_MAX_DELAY_MS", "1000"),
            ("DEV__WEBHOOK_TIMEOUT_MS", "2000"),
            ("DEV__WEBHOOK_DUPLICATES", &duplicates),
            ("DEV__WEBHOOK_REORDER", "true"),
        ])
        .await
    }

    /// Starts the app (bank off, pointed at the simulator; development sign-in on) and waits
    /// until `/healthz` answers.
    pub async fn start_app(&self) -> Proc {
        let mut app = self.spawn_app();
        self.wait_app(&mut app).await;
        app
    }

    pub fn spawn_app(&self) -> Proc {
        self.spawn_process(0)
    }

    /// Starts app process `i` of the service and waits until `/healthz` answers.
    pub async fn start_process(&self, i: usize) -> Proc {
        let mut app = self.spawn_process(i);
        self.wait_process(i, &mut app).await;
        app
    }

    pub async fn wait_process(&self, i: usize, app: &mut Proc) {
        let url = format!("http://127.0.0.1:{}/healthz", self.app_ports()[i]);
        wait_until_up(app, &url, None).await;
    }

    /// App process `i`: its own port and advertised URL, the front's public URL (trusted as a
    /// proxy), and the world's settings.
    pub fn spawn_process(&self, i: usize) -> Proc {
        let port = self.app_ports()[i];
        let mut env = self.common_env();
        env.retain(|(k, _)| k != "ONRAMP__SERVER__LISTEN");
        env.push(("ONRAMP__SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
        env.push((
            "ONRAMP__SERVER__ADVERTISE_URL".into(),
            format!("http://127.0.0.1:{port}"),
        ));
        if let Some(front) = self.front_port {
            env.push((
                "ONRAMP__SERVER__PUBLIC_URL".into(),
                format!("http://localhost:{front}"),
            ));
            env.push(("ONRAMP__SERVER__TRUSTED_PROXIES".into(), "127.0.0.1".into()));
        }
        env.extend([
            ("ONRAMP__DEV__BANK_ENABLED".into(), "false".into()),
            ("ONRAMP__DEV__IDP_ENABLED".into(), "true".into()),
            ("ONRAMP__BANK__API_URL".into(), self.bank_url()),
            ("ONRAMP__SERVER__WORKERS".into(), "2".into()),
            ("ONRAMP__DATABASE__MAX_CONNECTIONS".into(), "8".into()),
        ]);
        if i > 0 {
            // One development identity provider for the service: process 0's.
            let idp = format!("http://127.0.0.1:{}", self.idp_port);
            env.extend([
                ("ONRAMP__DEV__IDP_ENABLED".into(), "false".into()),
                (
                    "ONRAMP__GOOGLE__AUTH_URL".into(),
                    format!("{idp}/authorize"),
                ),
                ("ONRAMP__GOOGLE__TOKEN_URL".into(), format!("{idp}/token")),
                (
                    "ONRAMP__GOOGLE__USERINFO_URL".into(),
                    format!("{idp}/userinfo"),
                ),
            ]);
        }
        env.extend(self.app_settings.iter().cloned());
        let name = if i == 0 {
            "app".to_owned()
        } else {
            format!("app{i}")
        };
        let log = self.log(&name);
        Proc::spawn(self.binary, &name, &[], env, log)
    }

    pub async fn wait_app(&self, app: &mut Proc) {
        let url = format!("http://127.0.0.1:{}/healthz", self.app_port);
        wait_until_up(app, &url, None).await;
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.app_url())
    }

    /// A browser that has signed in through the development provider.
    pub async fn signed_in(&self, email: &str, name: &str) -> Browser {
        Browser::signed_in(&self.app_url(), email, name).await
    }

    pub fn bank(&self) -> Bank {
        Bank::new(&self.bank_url(), &self.bank_api_key())
    }

    /// Runs `onramp audit` on this world's database, as an operator would (beside a running app
    /// or not); answers whether it exited 0, and what it printed.
    pub fn audit(&self) -> (bool, String) {
        let out = Command::new(self.binary.exe)
            .arg("audit")
            .current_dir(self.binary.dir)
            .env_remove("ONRAMP_CONFIG")
            .envs(self.common_env())
            .stdin(Stdio::null())
            .output()
            .expect("onramp audit runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    pub async fn db(&self) -> TestDb {
        TestDb::connect(&self.database_url).await
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
    /// Where this start's output begins in `log`: a restart appends to the same file.
    log_from: u64,
}

impl Proc {
    pub fn spawn(
        binary: Binary,
        name: &str,
        args: &[&str],
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let log_from = out.metadata().unwrap().len();
        let err = out.try_clone().unwrap();
        let child = Command::new(binary.exe)
            .args(args)
            .current_dir(binary.dir)
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
            world
                .signed_in(&format!("user{i}@example.com"), &format!("User {i}"))
                .await
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
            let v = browsers_ref[user].deposit(amount).await;
            Made {
                user,
                id: v["id"].as_str().unwrap().to_owned(),
                token: crate::pay_token(v["url"].as_str().unwrap()).to_owned(),
                amount,
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    (browsers, made)
}

/// A storm of settlements at the bank, each queueing a webhook (and its duplicates) to the app,
/// while the test does something to the app. The last tenth is held back until
/// [`Storm::release`], so whatever the test does before that (a kill, a SIGTERM) surely lands
/// mid-storm.
pub struct Storm {
    settled: Arc<Mutex<Vec<(Made, bool)>>>,
    release: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Storm {
    /// Approves (`true`) or declines each deposit of `plan`, `concurrency` at a time, the i-th
    /// starting no sooner than `pace * i` after the start.
    pub fn start(bank: &Bank, plan: &[(Made, bool)], concurrency: usize, pace: Duration) -> Storm {
        let settled: Arc<Mutex<Vec<(Made, bool)>>> = Arc::default();
        let (release, mut released) = tokio::sync::watch::channel(false);
        let mut paced = plan.to_vec();
        let reserve = paced.split_off(paced.len() - paced.len() / 10);
        let task = {
            let (bank, settled) = (bank.clone(), settled.clone());
            tokio::spawn(async move {
                let one = |(m, approve): (Made, bool)| {
                    let (bank, settled) = (bank.clone(), settled.clone());
                    async move {
                        bank.settle(&m.token, approve).await;
                        settled.lock().unwrap().push((m, approve));
                    }
                };
                let start = tokio::time::Instant::now();
                stream::iter(paced.into_iter().enumerate())
                    .for_each_concurrent(concurrency, |(i, item)| {
                        let one = &one;
                        async move {
                            tokio::time::sleep_until(start + pace * i as u32).await;
                            one(item).await
                        }
                    })
                    .await;
                released.wait_for(|go| *go).await.unwrap();
                stream::iter(reserve)
                    .for_each_concurrent(concurrency, one)
                    .await;
            })
        };
        Storm {
            settled,
            release,
            task,
        }
    }

    /// The settlements the bank has confirmed so far, in the order it did.
    pub fn settled(&self) -> Vec<(Made, bool)> {
        self.settled.lock().unwrap().clone()
    }

    pub fn settled_count(&self) -> usize {
        self.settled.lock().unwrap().len()
    }

    /// Lets the held-back last tenth go.
    pub fn release(&self) {
        self.release.send(true).unwrap();
    }

    /// Waits until every settlement is done (the held-back ones need [`Storm::release`]).
    pub async fn finish(self) {
        self.task.await.expect("the storm ran");
    }
}

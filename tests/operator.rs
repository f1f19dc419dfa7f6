//! What an operator sees of the real binary: start-up refusals of unsafe configurations, and
//! logs without the sign-in callback's secrets.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ONRAMP: &str = env!("CARGO_BIN_EXE_onramp");

/// The binary with nothing but `env` on top of a throwaway SQLite database and free ports.
fn onramp(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(ONRAMP);
    c.env_remove("ONRAMP_CONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("ONRAMP__SERVER__LISTEN", "127.0.0.1:0")
        .env("ONRAMP__DEV__BANK_LISTEN", "127.0.0.1:0")
        .env("ONRAMP__DEV__IDP_LISTEN", "127.0.0.1:0")
        .env(
            "ONRAMP__DATABASE__URL",
            format!("sqlite://{}/app.db", dir.display()),
        )
        .env(
            "ONRAMP__DEV__BANK_DATABASE_URL",
            format!("sqlite://{}/bank.db", dir.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs the binary to its end (it must end by itself within 20 s).
fn run_to_exit(mut command: Command) -> Output {
    let child = command.spawn().expect("onramp starts");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        // Still running: it did not refuse. Kill it so the test fails instead of hanging.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_public_https_site_on_development_parts_and_secrets_refuses_to_start_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_exit(onramp(
        dir.path(),
        &[("ONRAMP__SERVER__PUBLIC_URL", "https://wallet.example.com")],
    ));
    let log = text(&out);
    assert!(!out.status.success(), "it started:\n{log}");
    for key in [
        "dev.enabled",
        "google.client_secret",
        "bank.api_key",
        "bank.webhook_secret",
        "server.cookie_key",
        "cluster.key",
    ] {
        assert!(log.contains(key), "{key} is not named:\n{log}");
    }
    assert!(
        !log.contains("onramp-dev-webhook-secret"),
        "a secret was printed:\n{log}"
    );
    assert!(
        !dir.path().join("app.db").exists(),
        "refused before opening the database"
    );
}

#[test]
fn https_with_real_secrets_but_the_published_webhook_secret_is_refused_for_that_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_exit(onramp(
        dir.path(),
        &[
            ("ONRAMP__SERVER__PUBLIC_URL", "https://wallet.example.com"),
            ("ONRAMP__DEV__ENABLED", "false"),
            ("ONRAMP__GOOGLE__CLIENT_SECRET", "a-real-client-secret"),
            (
                "ONRAMP__GOOGLE__AUTH_URL",
                "https://accounts.example.com/auth",
            ),
            (
                "ONRAMP__GOOGLE__TOKEN_URL",
                "https://accounts.example.com/token",
            ),
            (
                "ONRAMP__GOOGLE__USERINFO_URL",
                "https://accounts.example.com/me",
            ),
            ("ONRAMP__BANK__API_URL", "https://bank.example.com"),
            ("ONRAMP__BANK__API_KEY", "a-real-api-key"),
        ],
    ));
    let log = text(&out);
    assert!(!out.status.success(), "it started:\n{log}");
    assert!(log.contains("bank.webhook_secret"), "{log}");
    assert!(!log.contains("bank.api_key is"), "{log}");
    assert!(!log.contains("dev.enabled"), "{log}");
}

#[test]
fn a_configured_deposit_maximum_past_the_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_exit(onramp(
        dir.path(),
        &[("ONRAMP__DEPOSIT__MAX_AMOUNT", "9223372036854775807")],
    ));
    let log = text(&out);
    assert!(!out.status.success(), "it started:\n{log}");
    assert!(log.contains("deposit.max_amount"), "{log}");
}

/// The log the binary wrote while it answered one request, made by `request` from the app's
/// base URL (the answer must be `303`: a sign-in callback refused).
fn log_of_one_callback(
    env: &[(&str, &str)],
    request: impl FnOnce(&reqwest::blocking::Client, String) -> reqwest::blocking::RequestBuilder,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("app.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut command = onramp(dir.path(), env);
    command
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let mut child = command.spawn().unwrap();
    let port = listening_port(&log_path);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = request(&client, format!("http://127.0.0.1:{port}"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 303);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("sign-in refused"),
        "the request was logged:\n{log}"
    );
    log
}

/// The provider's one-time code and our state arrive in the callback's query string; the
/// request's log lines must not carry them.
#[test]
fn the_sign_in_callbacks_code_and_state_never_reach_the_log() {
    let log = log_of_one_callback(&[], |client, app| {
        client.get(format!(
            "{app}/api/auth/google/callback?code=LEAKED-CODE-4711&state=LEAKED-STATE-0815"
        ))
    });
    assert!(log.contains("code=REDACTED"), "{log}");
    assert!(
        !log.contains("LEAKED-CODE"),
        "the code reached the log:\n{log}"
    );
    assert!(
        !log.contains("LEAKED-STATE"),
        "the state reached the log:\n{log}"
    );
}

/// A client that names someone else in `X-Forwarded-For` or `Forwarded` is logged as the
/// address it came from: with no proxy listed in `server.trusted_proxies`, those headers are
/// anyone's to write. From a listed proxy, the client the proxy names is logged.
#[test]
fn the_log_names_the_client_a_listed_proxy_names_and_no_one_else() {
    let spoofing = |client: &reqwest::blocking::Client, app: String| {
        client
            .get(format!(
                "{app}/api/auth/google/callback?error=access_denied"
            ))
            .header("X-Forwarded-For", "203.0.113.66")
            .header("Forwarded", "for=203.0.113.66")
    };
    let log = log_of_one_callback(&[], spoofing);
    assert!(log.contains("http.client_ip=127.0.0.1"), "{log}");
    assert!(
        !log.contains("203.0.113.66"),
        "a client wrote the log:\n{log}"
    );

    let behind_a_proxy = [("ONRAMP__SERVER__TRUSTED_PROXIES", "10.9.9.9,127.0.0.1")];
    let log = log_of_one_callback(&behind_a_proxy, spoofing);
    assert!(log.contains("http.client_ip=203.0.113.66"), "{log}");
}

/// The app's port, from its "onramp is listening" line.
fn listening_port(log: &std::path::Path) -> u16 {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("onramp is listening")) {
            let port = line.rsplit("port=").next().unwrap().trim();
            return port
                .parse()
                .unwrap_or_else(|_| panic!("no port in {line:?}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never listened:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two app processes on one SQLite database would keep two memories of the same wallets: the
/// second is refused, with a message that says why. On PostgreSQL the second joins the first as
/// one service (tests/cluster.rs). Either way a killed process's claim dies with it, so its
/// restart is not blocked.
async fn a_second_process_on_one_database(backend: onramp_test_support::Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let start = |log: &str| {
        let log = std::fs::File::create(dir.path().join(log)).unwrap();
        let mut c = onramp(dir.path(), &[("ONRAMP__DATABASE__URL", url.as_str())]);
        c.stdout(log.try_clone().unwrap()).stderr(log);
        c.spawn().unwrap()
    };
    let mut first = start("first.log");
    let port = listening_port(&dir.path().join("first.log"));
    assert!(port > 0);

    let second = || {
        let mut c = onramp(dir.path(), &[("ONRAMP__DATABASE__URL", url.as_str())]);
        c.env("ONRAMP__DEV__ENABLED", "false")
            .env("ONRAMP__GOOGLE__AUTH_URL", "http://127.0.0.1:9/a")
            .env("ONRAMP__GOOGLE__TOKEN_URL", "http://127.0.0.1:9/t")
            .env("ONRAMP__GOOGLE__USERINFO_URL", "http://127.0.0.1:9/u")
            .env("ONRAMP__BANK__API_URL", "http://127.0.0.1:9");
        c
    };
    match backend {
        onramp_test_support::Backend::Sqlite => {
            let second = run_to_exit(second());
            let log = text(&second);
            assert!(!second.status.success(), "a second app started:\n{log}");
            assert!(
                log.contains("another onramp process is using this database"),
                "{log}"
            );
        }
        onramp_test_support::Backend::Postgres => {
            let log = std::fs::File::create(dir.path().join("second.log")).unwrap();
            let mut c = second();
            c.stdout(log.try_clone().unwrap()).stderr(log);
            let mut second = c.spawn().unwrap();
            let port2 = listening_port(&dir.path().join("second.log"));
            for p in [port, port2] {
                let ready = reqwest::get(format!("http://127.0.0.1:{p}/readyz"))
                    .await
                    .unwrap();
                assert_eq!(ready.status(), 200, "process on port {p}");
            }
            second.kill().unwrap();
            second.wait().unwrap();
        }
    }

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mut restarted = start("restarted.log");
    let port = listening_port(&dir.path().join("restarted.log"));
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "the killed process's lock did not block its restart"
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_process_per_sqlite_database() {
    a_second_process_on_one_database(onramp_test_support::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_app_process_on_postgres_joins_the_first() {
    a_second_process_on_one_database(onramp_test_support::Backend::Postgres).await
}

/// `onramp audit` exits 0 on books that balance, and 1 naming what is wrong.
#[tokio::test]
async fn onramp_audit_exits_1_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let audit = || {
        run_to_exit({
            let mut c = onramp(dir.path(), &[]);
            c.arg("audit");
            c
        })
    };
    let out = audit();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the books balance"), "{}", text(&out));

    // Money appears in bank clearing from nowhere.
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE ledger_accounts SET balance = 500 WHERE system = 'bank_clearing'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = audit();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    for wanted in [
        "an account whose balance is not the sum of its entries",
        "bank_clearing INR: balance 500, entries 0",
        "the accounts do not add up to zero",
    ] {
        assert!(log.contains(wanted), "{wanted:?} not in:\n{log}");
    }
}

/// A password in the database URL's query (`?password=`, which sqlx accepts) or its user
/// information is never printed: not by `onramp audit` when the database cannot be opened, nor
/// in the app's start-up log, nor in its refusal when another process holds the database.
#[test]
fn a_database_password_is_never_printed_in_any_form() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://onramp@127.0.0.1:9/onramp?password=hunter2",
        "postgres://onramp@127.0.0.1:9/onramp?sslmode=disable&sslpassword=hunter2",
        "postgres://onramp:hunter2@127.0.0.1:9/onramp",
    ] {
        for command in [&["audit"][..], &["serve"][..]] {
            let mut c = onramp(dir.path(), &[("ONRAMP__DATABASE__URL", url)]);
            c.args(command);
            let out = run_to_exit(c);
            let printed = text(&out);
            assert!(!out.status.success(), "{command:?} {url}: {printed}");
            assert!(
                printed.contains("127.0.0.1:9"),
                "{command:?} names the database: {printed}"
            );
            assert!(
                !printed.contains("hunter2"),
                "{command:?} {url}:\n{printed}"
            );
        }
    }
}

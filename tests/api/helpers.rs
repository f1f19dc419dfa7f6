//! `spawn_app()`: the real server on port 0 with a fresh database (a SQLite file, or a new
//! database in the test PostgreSQL cluster), the in-process bank simulator and development
//! identity provider; and a `Browser` that signs in and uses the API like a person would.

#[path = "../support/postgres.rs"]
mod postgres;

use onramp::configuration::{default_settings, Settings};
use onramp::startup::Application;
use onramp::state::AppState;
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one async test body on both databases, as two tests.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[actix_web::test]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

pub struct TestApp {
    pub address: String,
    pub bank_url: String,
    pub settings: Settings,
    pub state: actix_web::web::Data<AppState>,
    pub db: TestDb,
    pub handle: actix_web::dev::ServerHandle,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

/// Settings for a test: every address on port 0, a fresh database, quick webhook retries.
pub async fn test_settings(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut s = default_settings();
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.dev.bank_listen = "127.0.0.1:0".into();
    s.dev.idp_listen = "127.0.0.1:0".into();
    s.dev.bank_database_url = format!("sqlite://{}/bank.db", dir.display());
    s.dev.webhook_base_delay_ms = 50;
    s.dev.webhook_max_delay_ms = 400;
    s.dev.webhook_max_attempts = 40;
    s.dev.webhook_timeout_ms = 3000;
    s.database.max_connections = 5;
    s.database.url = match backend {
        Backend::Sqlite => format!("sqlite://{}/app.db", dir.display()),
        Backend::Postgres => postgres::cluster().fresh_database().await,
    };
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(backend, dir.path()).await;
    change(&mut settings);
    start(settings, dir, backend).await
}

/// Starts the app with exactly these settings.
pub async fn start(settings: Settings, dir: tempfile::TempDir, backend: Backend) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("the app builds");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    let bank_url = app.bank_url().unwrap_or_default();
    actix_web::rt::spawn(app.run_until_stopped());
    let db = TestDb::connect(&settings.database.url).await;
    TestApp {
        address: format!("http://localhost:{port}"),
        bank_url,
        settings,
        state,
        db,
        handle,
        dir,
        backend,
    }
}

impl TestApp {
    /// A new browser with its own cookie jar.
    pub fn browser(&self) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            app: self.address.clone(),
        }
    }

    /// A browser that has signed in through the development provider.
    pub async fn signed_in(&self, email: &str, name: &str) -> Browser {
        let b = self.browser();
        let r = b.sign_in(email, name).await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), "/");
        b
    }

    pub fn bank_api_key(&self) -> String {
        use secrecy::ExposeSecret;
        self.settings.bank.api_key.expose_secret().to_owned()
    }

    pub fn webhook_secret(&self) -> Vec<u8> {
        use secrecy::ExposeSecret;
        self.settings
            .bank
            .webhook_secret
            .expose_secret()
            .as_bytes()
            .to_vec()
    }

    /// Approves (or declines) an order through the bank's pay page, like a person would.
    pub async fn pay(&self, pay_url: &str, approve: bool) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        let page = client.get(pay_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("bank-approve") && html.contains("bank-decline"));
        let token = pay_url.split("token=").nth(1).unwrap();
        let action = if approve { "approve" } else { "decline" };
        client
            .post(format!("{}/pay/{action}", self.bank_url))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// Posts a webhook signed with `secret` (the app's own when `None`), as the bank would.
    pub async fn post_webhook(&self, body: &Value, secret: Option<&[u8]>) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let t = chrono::Utc::now().timestamp();
        let own = self.webhook_secret();
        let header =
            onramp_bank_protocol::signature::sign_header(&[secret.unwrap_or(&own)], t, &raw);
        self.post_raw_webhook(raw, Some(header)).await
    }

    pub async fn post_raw_webhook(
        &self,
        raw: Vec<u8>,
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/webhooks/bank", self.address))
            .header("Content-Type", "application/json")
            .header(
                "X-Bank-Event-Id",
                format!("evt_{}", uuid::Uuid::new_v4().simple()),
            )
            .body(raw);
        if let Some(s) = signature {
            req = req.header("X-Bank-Signature", s);
        }
        req.send().await.unwrap()
    }

    /// The bank's own view of an order.
    pub async fn bank_order(&self, token: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/bank/orders/{token}", self.bank_url))
            .bearer_auth(self.bank_api_key())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The bank token the app stored for a deposit.
    pub async fn token_of(&self, deposit_id: &str) -> String {
        self.db
            .strings(&format!(
                "SELECT bank_token FROM deposits WHERE id = '{deposit_id}'"
            ))
            .await
            .pop()
            .expect("the deposit has a bank token")
    }

    /// The webhook body the bank would send for a deposit.
    pub async fn event_for(&self, deposit_id: &str, status: &str) -> Value {
        let amount = self
            .db
            .scalar(&format!(
                "SELECT amount FROM deposits WHERE id = '{deposit_id}'"
            ))
            .await;
        json!({
            "event_id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "token": self.token_of(deposit_id).await,
            "ref": deposit_id,
            "amount": amount,
            "currency": "INR",
            "status": status,
        })
    }

    /// Checks the money invariants: every wallet equals the sum of its ledger entries and of
    /// its successful deposits, and no deposit has more than one ledger entry.
    pub async fn assert_books_balance(&self) {
        let wallets = self
            .db
            .scalar("SELECT COALESCE(SUM(balance), 0) FROM wallets")
            .await;
        let ledger = self
            .db
            .scalar("SELECT COALESCE(SUM(amount), 0) FROM ledger")
            .await;
        let successes = self
            .db
            .scalar("SELECT COALESCE(SUM(amount), 0) FROM deposits WHERE status = 'success'")
            .await;
        assert_eq!(wallets, ledger, "wallets and ledger disagree");
        assert_eq!(ledger, successes, "ledger and successful deposits disagree");
        let doubled = self
            .db
            .scalar("SELECT COUNT(*) FROM (SELECT deposit_id FROM ledger GROUP BY deposit_id HAVING COUNT(*) > 1) d")
            .await;
        assert_eq!(doubled, 0, "a deposit was credited twice");
        let mismatched = self
            .db
            .scalar(
                "SELECT COUNT(*) FROM wallets w WHERE w.balance <> \
                 (SELECT COALESCE(SUM(amount), 0) FROM ledger l WHERE l.user_id = w.user_id) \
                 OR w.balance <> COALESCE((SELECT balance_after FROM ledger l WHERE l.user_id = w.user_id \
                 ORDER BY id DESC LIMIT 1), 0)",
            )
            .await;
        assert_eq!(mismatched, 0, "a wallet disagrees with its ledger");
    }
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A person's browser: a cookie jar and the app's address.
pub struct Browser {
    pub client: reqwest::Client,
    pub app: String,
}

impl Browser {
    /// `GET /api/auth/google`; answers the provider URL it redirects to.
    pub async fn start_sign_in(&self) -> String {
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
        location(&r)
    }

    /// The whole sign-in through the development provider; answers the callback's response.
    pub async fn sign_in(&self, email: &str, name: &str) -> reqwest::Response {
        let authorize = self.start_sign_in().await;
        let form_page = self.client.get(&authorize).send().await.unwrap();
        assert_eq!(form_page.status(), 200);
        let url = url::Url::parse(&authorize).unwrap();
        let mut fields: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        fields.push(("email".into(), email.into()));
        fields.push(("name".into(), name.into()));
        let submitted = self
            .client
            .post(url.as_str().split('?').next().unwrap())
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(submitted.status(), 303, "the provider redirects back");
        let callback = location(&submitted);
        self.client.get(callback).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.app))
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self) -> reqwest::Response {
        self.get("/api/user/me").await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.app))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn deposit(&self, amount: i64) -> Value {
        let r = self
            .post_json("/api/deposit", &json!({ "amount": amount }))
            .await;
        assert_eq!(
            r.status(),
            201,
            "deposit refused: {}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    pub async fn balance(&self) -> i64 {
        let r = self.get("/api/balance").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["currency"], "INR");
        v["amount"].as_i64().unwrap()
    }

    pub async fn transactions(&self) -> Vec<Value> {
        let v: Value = self
            .get("/api/transactions?limit=100")
            .await
            .json()
            .await
            .unwrap();
        v["items"].as_array().unwrap().clone()
    }

    /// Waits until the deposit is no longer processing; answers its final status.
    pub async fn wait_final(&self, deposit_id: &str) -> String {
        let started = Instant::now();
        loop {
            let items = self.transactions().await;
            let item = items
                .iter()
                .find(|i| i["id"] == deposit_id)
                .expect("the deposit is listed");
            if item["status"] != "processing" {
                return item["status"].as_str().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "deposit {deposit_id} stayed processing"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Direct access to the app's database, to check what it holds.
pub enum TestDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl TestDb {
    pub async fn connect(url: &str) -> TestDb {
        if url.starts_with("sqlite") {
            TestDb::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            TestDb::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    /// One integer (a count or a sum).
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(p)
                .await
                .unwrap(),
            TestDb::Postgres(p) => {
                let sql = format!("SELECT ({sql})::int8");
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        }
    }

    /// The first column of every row, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            TestDb::Sqlite(p) => sqlx::query_scalar::<_, String>(sql)
                .fetch_all(p)
                .await
                .unwrap(),
            TestDb::Postgres(p) => sqlx::query_scalar::<_, String>(sql)
                .fetch_all(p)
                .await
                .unwrap(),
        }
    }

    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            TestDb::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            TestDb::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
    }
}

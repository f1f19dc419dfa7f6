//! The app in the test process: the real server on port 0 with a fresh database, the in-process
//! bank simulator and development identity provider, on the test's actix system (so tests run
//! with `#[actix_web::test]`). Its state and database are at hand for the test to look into.

use crate::webhook::{self, Webhooks};
use crate::{Backend, Bank, Browser, TestDb};
use onramp::configuration::{default_settings, Settings};
use onramp::startup::Application;
use onramp::state::AppState;
use serde_json::Value;

pub struct TestApp {
    /// The app's base URL, on `localhost` as browsers see it.
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
    s.database.url = backend.fresh_database(dir).await;
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with the test's own changes to the settings.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(backend, dir.path()).await;
    change(&mut settings);
    start(settings, dir, backend).await
}

/// Starts the app with exactly these settings (a restart passes the same settings and `dir`).
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
        Browser::new(&self.address)
    }

    /// A browser that has signed in through the development provider.
    pub async fn signed_in(&self, email: &str, name: &str) -> Browser {
        Browser::signed_in(&self.address, email, name).await
    }

    pub fn bank_api_key(&self) -> String {
        crate::bank_api_key(&self.settings)
    }

    pub fn webhook_secret(&self) -> Vec<u8> {
        crate::webhook_secret(&self.settings)
    }

    /// The in-process bank simulator.
    pub fn bank(&self) -> Bank {
        Bank::new(&self.bank_url, &self.bank_api_key())
    }

    fn webhooks(&self) -> Webhooks {
        Webhooks::new(&self.address, &self.webhook_secret())
    }

    /// Approves (or declines) an order through the bank's pay page, like a person would.
    pub async fn pay(&self, pay_url: &str, approve: bool) -> reqwest::Response {
        self.bank().pay(pay_url, approve).await
    }

    /// Posts a webhook signed with `secret` (the app's own when `None`), as the bank would.
    pub async fn post_webhook(&self, body: &Value, secret: Option<&[u8]>) -> reqwest::Response {
        self.webhooks().post(body, secret).await
    }

    pub async fn post_raw_webhook(
        &self,
        raw: Vec<u8>,
        signature: Option<String>,
    ) -> reqwest::Response {
        self.webhooks().post_raw(raw, signature).await
    }

    /// The bank's own view of an order.
    pub async fn bank_order(&self, token: &str) -> Value {
        self.bank().order(token).await
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
        webhook::event(&self.token_of(deposit_id).await, deposit_id, amount, status)
    }

    /// The payout id the app stored for a withdrawal, once the bank answered.
    pub async fn payout_of(&self, withdrawal_id: &str) -> Option<String> {
        self.db
            .strings(&format!(
                "SELECT COALESCE(payout_id, '') FROM withdrawals WHERE id = '{withdrawal_id}'"
            ))
            .await
            .pop()
            .filter(|p| !p.is_empty())
    }

    /// The webhook body the bank would send for a withdrawal's payout.
    pub async fn payout_event_for(&self, withdrawal_id: &str, status: &str) -> Value {
        let amount = self
            .db
            .scalar(&format!(
                "SELECT amount FROM withdrawals WHERE id = '{withdrawal_id}'"
            ))
            .await;
        let payout = self
            .payout_of(withdrawal_id)
            .await
            .expect("the withdrawal has a payout id");
        webhook::payout_event(&payout, withdrawal_id, amount, status)
    }

    /// A person signed in with `paise` already in the wallet: a deposit the bank confirmed.
    pub async fn funded(&self, email: &str, name: &str, paise: i64) -> Browser {
        let person = self.signed_in(email, name).await;
        if paise > 0 {
            self.fund(&person, paise).await;
        }
        person
    }

    /// Adds `paise` to a signed-in person's wallet: a deposit the bank confirmed.
    pub async fn fund(&self, person: &Browser, paise: i64) {
        let before = person.balance().await;
        let deposit = person.deposit(paise).await;
        let id = deposit["id"].as_str().unwrap();
        let event = self.event_for(id, "SUCCESS").await;
        assert_eq!(self.post_webhook(&event, None).await.status(), 200);
        assert_eq!(person.balance().await, before + paise);
    }

    /// The books checked by the store's audit (`onramp audit`'s checks), which must pass.
    pub async fn assert_audit_passes(&self) {
        let report = self.state.store.audit().await.unwrap();
        assert!(report.is_ok(), "the audit failed:\n{report}");
    }

    /// Makes every ledger insert fail, as a broken database would, until [`TestApp::heal_ledger`].
    pub async fn break_ledger(&self) {
        match self.backend {
            Backend::Sqlite => self
                .db
                .execute("CREATE TRIGGER broken BEFORE INSERT ON ledger_entries BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
                .await
                .unwrap(),
            Backend::Postgres => {
                self.db
                    .execute("CREATE FUNCTION broken() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql")
                    .await
                    .unwrap();
                self.db
                    .execute("CREATE TRIGGER broken BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION broken()")
                    .await
                    .unwrap();
            }
        }
    }

    pub async fn heal_ledger(&self) {
        let drop = match self.backend {
            Backend::Sqlite => "DROP TRIGGER broken",
            Backend::Postgres => "DROP TRIGGER broken ON ledger_entries",
        };
        self.db.execute(drop).await.unwrap();
    }

    /// Checks the money invariants (see [`crate::Books::assert_consistent`]).
    pub async fn assert_books_balance(&self) {
        self.db.assert_books_balance().await
    }
}

//! The bank simulator: the bank of `docs/bank.md`, run in-process by the app in development
//! and by the tests, or alone with `onramp bank-sim`.
//!
//! - Bank API (`Authorization: Bearer <api key>`): `POST /api/bank/create-order`,
//!   `GET /api/bank/orders/{token}`, `POST /api/bank/orders/{token}/cancel`, and for tests and
//!   load tools `POST /api/bank/orders/{token}/approve`, `POST /api/bank/orders/{token}/decline`
//!   and `GET /api/bank/deliveries`.
//! - Orders are `PENDING` until paid (`SUCCESS`), declined (`FAILURE`), cancelled (`CANCELLED`)
//!   or past their `expires_at` (`EXPIRED`, persisted lazily the next time the order is read or
//!   acted on). Only `SUCCESS` and `FAILURE` send a webhook; a final order never changes again.
//! - Pay page (the user's browser): `GET /pay?token=…`, `POST /pay/approve`, `POST /pay/decline`.
//! - Webhooks: settling an order queues a delivery in the same database transaction; a background
//!   worker sends it, signed afresh on every attempt, and retries with exponential backoff until a
//!   `2xx` or `max_attempts`. Pending deliveries survive a restart on the same database.
//!
//! The simulator keeps its state in its own SQLite database (`database_url`); do not share it with
//! the app's database.

mod api;
mod db;
mod delivery;
mod html;
mod pay;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};

pub use onramp_bank_protocol::format_inr;

/// The merchant name shown on the pay page.
pub const MERCHANT_NAME: &str = "onramp";

/// Fault injection, all off by default. Used by tests and demos.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Wait this long after settlement before the first delivery attempt.
    pub delivery_delay: Duration,
    /// Send each event this many extra times (concurrently with its first attempt).
    pub duplicate_deliveries: u32,
    /// Settle orders but never deliver their webhooks (the delivery is recorded as dropped).
    pub drop_deliveries: bool,
    /// Hold deliveries briefly and send them in random order.
    pub reorder: bool,
    /// Sleep this long before answering create-order (the order is created first).
    pub create_order_delay: Duration,
    /// Sleep this long before answering create-payout (the payout is created first).
    pub create_payout_delay: Duration,
    /// Refuse every create-payout with `422 payout_refused` (the beneficiary's account is
    /// closed, say): no payout is made.
    pub refuse_payouts: bool,
    /// Refuse the first create-payout call of each ref with `429 rate_limited` (a refusal that
    /// does not last: no payout is made, and a later call with the ref makes it).
    pub refuse_first_payout_call: bool,
    /// A gateway in front of the bank answers order status and cancel calls with an HTML `404`
    /// page (a route broken by a deploy): not the bank's word.
    pub misroute_orders: bool,
}

impl Faults {
    /// How a settlement queues its webhook under these faults.
    pub(crate) fn queue_options(&self) -> db::QueueOptions {
        let mut delay = self.delivery_delay;
        if self.reorder {
            delay += delivery::REORDER_HOLD;
        }
        db::QueueOptions {
            delay,
            drop: self.drop_deliveries,
        }
    }
}

/// The simulator's configuration. `Debug` never shows the API key or the webhook secrets.
#[derive(Clone)]
pub struct BankSimConfig {
    /// The API key every Bank API call must carry as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// `[current]` or `[current, previous]`: with two, every webhook carries two `v1` values
    /// (a secret rotation).
    pub webhook_secrets: Vec<String>,
    /// Where webhooks are posted.
    pub webhook_url: String,
    /// `sqlite://path` (created if missing, with its parent directory).
    pub database_url: String,
    /// Base of `pay_url`; `None` → `http://<bound address>`.
    pub public_url: Option<String>,
    /// Attempts per webhook before giving up (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled after every failed attempt.
    pub base_delay: Duration,
    /// The largest delay between two attempts.
    pub max_delay: Duration,
    /// How long after its creation a payout settles (`SUCCESS`, or `FAILURE` for amounts whose
    /// last two digits are 13).
    pub payout_delay: Duration,
    /// Timeout of one delivery attempt.
    pub attempt_timeout: Duration,
    pub faults: Faults,
}

impl BankSimConfig {
    /// A configuration with the contract's schedule: 10 s per attempt, backoff 1 s, 2 s, 4 s, …
    /// capped at 60 s, 12 attempts; no public URL, no faults.
    pub fn new(
        api_key: impl Into<String>,
        webhook_secrets: Vec<String>,
        webhook_url: impl Into<String>,
        database_url: impl Into<String>,
    ) -> Self {
        BankSimConfig {
            api_key: api_key.into(),
            webhook_secrets,
            webhook_url: webhook_url.into(),
            database_url: database_url.into(),
            public_url: None,
            max_attempts: 12,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            payout_delay: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(10),
            faults: Faults::default(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.api_key.is_empty() {
            bail!("bank simulator: the API key is empty");
        }
        if self.webhook_secrets.is_empty() || self.webhook_secrets.iter().any(|s| s.is_empty()) {
            bail!("bank simulator: a webhook secret is required and none may be empty");
        }
        let url = url::Url::parse(&self.webhook_url)
            .with_context(|| format!("bank simulator: bad webhook_url {:?}", self.webhook_url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("bank simulator: webhook_url must be http(s)");
        }
        if let Some(public_url) = &self.public_url {
            let url = url::Url::parse(public_url)
                .with_context(|| format!("bank simulator: bad public_url {public_url:?}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!("bank simulator: public_url must be http(s)");
            }
        }
        if self.attempt_timeout.is_zero() {
            bail!("bank simulator: attempt_timeout must be positive");
        }
        Ok(())
    }
}

impl fmt::Debug for BankSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankSimConfig")
            .field("api_key", &"[redacted]")
            .field(
                "webhook_secrets",
                &format_args!("[{} redacted]", self.webhook_secrets.len()),
            )
            .field("webhook_url", &self.webhook_url)
            .field("database_url", &self.database_url)
            .field("public_url", &self.public_url)
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("payout_delay", &self.payout_delay)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("faults", &self.faults)
            .finish()
    }
}

/// Stops a running simulator from elsewhere (e.g. on Ctrl-C while another task is in
/// [`BankSim::wait`], which then returns).
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
}

impl StopHandle {
    /// Stops the HTTP server gracefully; [`BankSim::wait`] then stops the delivery worker.
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// A running simulator: its HTTP server and its delivery worker. Dropping it stops both
/// (without waiting); prefer [`BankSim::stop`].
pub struct BankSim {
    addr: SocketAddr,
    url: String,
    public_url: String,
    inner: Option<Running>,
}

struct Running {
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    worker_task: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    pool: sqlx::SqlitePool,
}

impl BankSim {
    /// Opens (and migrates) the database, starts the HTTP server on `listener` and the delivery
    /// worker, which resumes any deliveries left pending by an earlier run.
    ///
    /// Must be called inside an actix runtime (`#[actix_web::main]`, `#[actix_web::test]`).
    pub async fn start(listener: TcpListener, config: BankSimConfig) -> anyhow::Result<BankSim> {
        config.validate()?;
        let pool = db::connect(&config.database_url).await?;

        listener.set_nonblocking(true)?;
        let addr = reachable(listener.local_addr()?);
        let url = format!("http://{addr}");
        let public_url = config.pay_base(&url);

        let notify = Arc::new(Notify::new());
        let state = config.api_state(&pool, &public_url, &notify);
        let (server, server_task) = spawn_server(listener, state)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let worker =
            delivery::Worker::new(pool.clone(), config.delivery_config(), notify, shutdown_rx)?;
        let worker_task = tokio::spawn(worker.run());

        tracing::info!(%addr, %public_url, webhook_url = %config.webhook_url, "bank simulator started");
        Ok(BankSim {
            addr,
            url,
            public_url,
            inner: Some(Running {
                server,
                server_task,
                worker_task,
                shutdown,
                pool,
            }),
        })
    }

    /// The bound address (an unspecified IP is reported as the loopback address).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<local_addr>`, e.g. `http://127.0.0.1:8081`: the Bank API base URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The base of `pay_url` (the configured `public_url`, or [`BankSim::url`]).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// A handle that stops the server from another task.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.inner.as_ref().expect("running").server.clone(),
        }
    }

    /// Stops the server (gracefully, at most 2 s) and the delivery worker (in-flight attempts are
    /// abandoned). Pending deliveries stay in the database for the next start.
    pub async fn stop(mut self) {
        if let Some(mut running) = self.inner.take() {
            running.server.stop(true).await;
            let _ = (&mut running.server_task).await;
            running.shutdown_worker().await;
        }
    }

    /// Resolves when the server stops by itself or through a [`StopHandle`], after stopping the
    /// delivery worker. Returns the server's result.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let Some(mut running) = self.inner.take() else {
            return Ok(());
        };
        let result = match (&mut running.server_task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        };
        running.shutdown_worker().await;
        result
    }
}

impl Running {
    async fn shutdown_worker(self) {
        let _ = self.shutdown.send(true);
        let _ = self.worker_task.await;
        self.pool.close().await;
    }
}

impl Drop for BankSim {
    fn drop(&mut self) {
        if let Some(running) = self.inner.take() {
            // The stop command is sent at once; the worker stops when `shutdown` is dropped.
            drop(running.server.stop(false));
            let _ = running.shutdown.send(true);
        }
    }
}

impl BankSimConfig {
    /// The base of `pay_url`, without a trailing `/` so `{base}/pay` never has a double slash.
    fn pay_base(&self, url: &str) -> String {
        self.public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| url.to_owned())
    }

    fn api_state(
        &self,
        pool: &sqlx::SqlitePool,
        public_url: &str,
        notify: &Arc<Notify>,
    ) -> web::Data<api::State> {
        web::Data::new(api::State {
            pool: pool.clone(),
            // Only the digest is kept, so requests are compared in constant time and length.
            api_key_digest: Sha256::digest(self.api_key.as_bytes()).into(),
            public_url: public_url.to_owned(),
            notify: notify.clone(),
            faults: self.faults.clone(),
            payout_delay: self.payout_delay,
            refused_payout_refs: Default::default(),
        })
    }

    fn delivery_config(&self) -> delivery::DeliveryConfig {
        delivery::DeliveryConfig {
            webhook_url: self.webhook_url.clone(),
            secrets: self
                .webhook_secrets
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            max_attempts: self.max_attempts.max(1),
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            attempt_timeout: self.attempt_timeout,
            faults: self.faults.clone(),
        }
    }
}

/// Serves the Bank API and the pay page on `listener`, on the current actix runtime.
fn spawn_server(
    listener: TcpListener,
    state: web::Data<api::State>,
) -> anyhow::Result<(ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>)> {
    // One worker is plenty for a simulator; signals are the embedding process's to handle.
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(api::routes)
            .configure(pay::routes)
            .default_service(web::to(api::not_found))
    })
    .workers(1)
    .shutdown_timeout(2)
    .disable_signals()
    .listen(listener)
    .context("bank simulator: listening")?
    .run();
    let handle = server.handle();
    Ok((handle, actix_web::rt::spawn(server)))
}

/// A bound address made reachable: `0.0.0.0`/`::` become the loopback address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Unix milliseconds as RFC 3339 in UTC: `2025-06-01T12:00:00Z`, with `.mmm` only when the time
/// is not a whole second.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    }
}

/// `prefix` followed by `bytes` random bytes (OS randomness) in hex.
pub(crate) fn random_id(prefix: &str, bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let config = BankSimConfig::new(
            "the-api-key",
            vec!["secret-one".into(), "secret-two".into()],
            "http://127.0.0.1:1/hook",
            "sqlite://x.db",
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("the-api-key"), "{shown}");
        assert!(
            !shown.contains("secret-one") && !shown.contains("secret-two"),
            "{shown}"
        );
        assert!(shown.contains("http://127.0.0.1:1/hook"));
    }

    #[test]
    fn random_ids_are_long_and_distinct() {
        let a = random_id("bank_session_", 24);
        let b = random_id("bank_session_", 24);
        assert_ne!(a, b);
        assert_eq!(a.len(), "bank_session_".len() + 48);
        assert!(a["bank_session_".len()..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn times_are_shown_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799_000), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_748_779_200_000), "2025-06-01T12:00:00Z");
        assert_eq!(rfc3339(1_748_779_200_042), "2025-06-01T12:00:00.042Z");
        assert_eq!(rfc3339(4_107_542_399_000), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn unspecified_addresses_become_loopback() {
        let a: SocketAddr = "0.0.0.0:81".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "127.0.0.1:81");
        let a: SocketAddr = "[::]:81".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "[::1]:81");
        let a: SocketAddr = "10.0.0.2:81".parse().unwrap();
        assert_eq!(reachable(a), a);
    }

    #[test]
    fn config_validation() {
        let good = BankSimConfig::new("k", vec!["s".into()], "http://h/x", "sqlite://x.db");
        assert!(good.validate().is_ok());
        let mut c = good.clone();
        c.api_key.clear();
        assert!(c.validate().is_err());
        let mut c = good.clone();
        c.webhook_secrets.clear();
        assert!(c.validate().is_err());
        let mut c = good.clone();
        c.webhook_url = "ftp://h/x".into();
        assert!(c.validate().is_err());
        let mut c = good;
        c.public_url = Some("not a url".into());
        assert!(c.validate().is_err());
    }
}

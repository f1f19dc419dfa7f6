//! The webhook delivery worker: polls due deliveries (woken at once when one is queued), sends
//! each concurrently, signed afresh with the current time, and records the outcome: delivered on
//! a `2xx`, otherwise retried with exponential backoff until `max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use sqlx::SqlitePool;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::db::{self, Claimed};
use crate::{now_ms, now_secs, Faults};
use onramp_bank_protocol::signature::{sign_header, EVENT_ID_HEADER, SIGNATURE_HEADER};

/// At most this many attempts in flight.
const MAX_IN_FLIGHT: usize = 64;
/// Look for due deliveries at least this often.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// With `Faults::reorder`: deliveries are held this long, then sent in random order.
pub(crate) const REORDER_HOLD: Duration = Duration::from_millis(250);
/// Kept from a failed response's body for `last_error`.
const ERROR_BODY_CHARS: usize = 200;

pub(crate) struct DeliveryConfig {
    pub webhook_url: String,
    pub secrets: Vec<Vec<u8>>,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub attempt_timeout: Duration,
    pub faults: Faults,
}

/// The delay after failed attempt number `attempt` (1-based): `base * 2^(attempt-1)`, capped.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.checked_pow(attempt.saturating_sub(1));
    factor
        .and_then(|f| base.checked_mul(f))
        .map_or(max, |d| d.min(max))
}

pub(crate) struct Worker {
    pool: SqlitePool,
    sender: Sender,
    notify: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
struct Sender {
    pool: SqlitePool,
    client: reqwest::Client,
    config: Arc<DeliveryConfig>,
}

enum Outcome {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

impl Worker {
    pub(crate) fn new(
        pool: SqlitePool,
        config: DeliveryConfig,
        notify: Arc<Notify>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Worker> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.attempt_timeout)
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .user_agent(concat!("onramp-bank-sim/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Worker {
            pool: pool.clone(),
            sender: Sender {
                pool,
                client,
                config: Arc::new(config),
            },
            notify,
            shutdown,
        })
    }

    /// Runs until the shutdown signal (or its sender is dropped); in-flight attempts are then
    /// abandoned: their leases expire and the next run retries them.
    pub(crate) async fn run(mut self) {
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut tasks = JoinSet::new();
        // A lease outlives any attempt: the timeout, the reorder hold and a margin.
        let lease = self.sender.config.attempt_timeout + REORDER_HOLD + Duration::from_secs(5);
        loop {
            while tasks.try_join_next().is_some() {}
            let mut wait = self.settle_payouts().await.min(POLL_INTERVAL);
            let capacity = permits.available_permits();
            if capacity > 0 {
                let now = now_ms();
                let lease_until = now.saturating_add(lease.as_millis() as i64);
                match db::claim_due(&self.pool, now, lease_until, capacity as i64).await {
                    Ok(mut batch) => {
                        if self.sender.config.faults.reorder {
                            batch.shuffle(&mut rand::thread_rng());
                        }
                        for claimed in batch {
                            let permit = permits
                                .clone()
                                .try_acquire_owned()
                                .expect("no more claims than free permits");
                            let sender = self.sender.clone();
                            tasks.spawn(async move {
                                sender.attempt(claimed).await;
                                drop(permit);
                            });
                        }
                        match db::next_due(&self.pool).await {
                            Ok(Some(next)) => {
                                let until = u64::try_from(next - now_ms()).unwrap_or(0);
                                wait = wait.min(Duration::from_millis(until));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "bank simulator: reading deliveries failed")
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bank simulator: claiming deliveries failed");
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.changed() => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.shutdown().await;
    }
}

impl Worker {
    /// Settles the payouts whose time has come (their webhooks are queued with them), and
    /// answers how long until the next one's.
    async fn settle_payouts(&self) -> Duration {
        let queue = self.sender.config.faults.queue_options();
        if let Err(e) = db::settle_due_payouts(&self.pool, now_ms(), &queue).await {
            tracing::warn!(error = %e, "bank simulator: settling payouts failed");
        }
        match db::next_payout_due(&self.pool).await {
            Ok(Some(next)) => Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0)),
            Ok(None) => POLL_INTERVAL,
            Err(e) => {
                tracing::warn!(error = %e, "bank simulator: reading payouts failed");
                POLL_INTERVAL
            }
        }
    }
}

impl Sender {
    async fn attempt(&self, claimed: Claimed) {
        let faults = &self.config.faults;
        if faults.reorder {
            let hold = rand::thread_rng().gen_range(0..=REORDER_HOLD.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        // Fault injection: extra copies of the first attempt, concurrently with it.
        let mut duplicates = JoinSet::new();
        if claimed.attempts == 1 {
            for _ in 0..faults.duplicate_deliveries {
                let sender = self.clone();
                let (event_id, body) = (claimed.event_id.clone(), claimed.body.clone());
                duplicates.spawn(async move {
                    if let Outcome::Failed { error, .. } = sender.send(&event_id, &body).await {
                        tracing::debug!(%event_id, %error, "bank simulator: duplicate delivery failed");
                    }
                });
            }
        }
        let outcome = self.send(&claimed.event_id, &claimed.body).await;
        while duplicates.join_next().await.is_some() {}
        self.record(&claimed, outcome).await;
    }

    /// One signed POST of `body`.
    async fn send(&self, event_id: &str, body: &str) -> Outcome {
        let secrets: Vec<&[u8]> = self.config.secrets.iter().map(Vec::as_slice).collect();
        let signature = sign_header(&secrets, now_secs(), body.as_bytes());
        let result = self
            .client
            .post(&self.config.webhook_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(SIGNATURE_HEADER, signature)
            .timeout(self.config.attempt_timeout)
            .body(body.to_owned())
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    Outcome::Delivered(status.as_u16())
                } else {
                    let excerpt: String = text.chars().take(ERROR_BODY_CHARS).collect();
                    Outcome::Failed {
                        status: Some(status.as_u16()),
                        error: format!("HTTP {}: {}", status.as_u16(), excerpt.trim()),
                    }
                }
            }
            Err(e) => Outcome::Failed {
                status: None,
                error: describe(&e),
            },
        }
    }

    async fn record(&self, claimed: &Claimed, outcome: Outcome) {
        let event_id = &claimed.event_id;
        let attempts = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
        let result = match outcome {
            Outcome::Delivered(code) => {
                tracing::info!(%event_id, attempts, status = code, "bank simulator: webhook delivered");
                db::mark_delivered(&self.pool, event_id, code).await
            }
            Outcome::Failed { status, error } => {
                if attempts >= self.config.max_attempts {
                    tracing::warn!(%event_id, attempts, %error, "bank simulator: webhook failed, giving up");
                    db::mark_attempt_failed(&self.pool, event_id, status, &error, None).await
                } else {
                    let delay = backoff(self.config.base_delay, self.config.max_delay, attempts);
                    tracing::info!(%event_id, attempts, %error, retry_in = ?delay, "bank simulator: webhook failed, will retry");
                    let at = now_ms().saturating_add(delay.as_millis() as i64);
                    db::mark_attempt_failed(&self.pool, event_id, status, &error, Some(at)).await
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(%event_id, error = %e, "bank simulator: recording a delivery attempt failed");
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=9).map(|a| backoff(base, max, a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(base, max, 40), max);
        assert_eq!(backoff(base, max, u32::MAX), max);
        assert_eq!(
            backoff(Duration::from_millis(50), max, 3),
            Duration::from_millis(200)
        );
    }
}

//! Storage: orders and durable webhook deliveries in SQLite. Times are unix milliseconds.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use onramp_bank_protocol::{
    EventStatus, OrderEvent, OrderStatus, PayoutEvent, PayoutKind, PayoutStatus,
};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{now_ms, random_id};

/// Tokens carry 24 random bytes (192 bits).
const TOKEN_BYTES: usize = 24;
const EVENT_ID_BYTES: usize = 16;

pub(crate) async fn connect(database_url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(database_url)
        .with_context(|| format!("bank simulator: bad database URL {database_url:?}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL survives a killed process (what a restarted simulator needs to
        // keep delivering); only an OS crash may lose the last commits. The simulator is not
        // the system of record, and an fsync per order would make it the load tests' bottleneck.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
    if !in_memory {
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("bank simulator: creating {}", dir.display()))?;
            }
        }
    }
    let pool_options = if in_memory {
        // One connection that never closes: an in-memory database lives as long as it.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(4)
    };
    let pool = pool_options
        .connect_with(options)
        .await
        .with_context(|| format!("bank simulator: opening {database_url}"))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("bank simulator: migrating the database")?;
    Ok(pool)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Order {
    pub token: String,
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub return_url: String,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    /// Unix milliseconds (a whole second): a `PENDING` order is `EXPIRED` from then on.
    pub expires_at: i64,
}

const ORDER_COLUMNS: &str = "token, ref, amount, currency, return_url, status, expires_at";

/// What a create call (an order's or a payout's) did: both are idempotent on their `ref`.
pub(crate) enum CreateOutcome<T> {
    Created(T),
    /// The same ref with the same amount: the earlier one.
    Existing(T),
    /// The same ref with another amount.
    Conflict,
}

impl<T> CreateOutcome<T> {
    /// The earlier one with the ref, of `existing_amount`, asked for again with `amount`.
    fn earlier(existing: T, existing_amount: i64, amount: i64) -> Self {
        if existing_amount == amount {
            CreateOutcome::Existing(existing)
        } else {
            CreateOutcome::Conflict
        }
    }
}

/// Creates a `PENDING` order that expires `expires_in_secs` from now (rounded up to a whole
/// second, so it never expires early), or finds the earlier order with this `ref`, whose expiry
/// stands (a repeat's `expires_in` changes nothing).
pub(crate) async fn create_order(
    pool: &SqlitePool,
    reference: &str,
    amount: i64,
    currency: &str,
    return_url: &str,
    expires_in_secs: i64,
) -> Result<CreateOutcome<Order>, sqlx::Error> {
    let now = now_ms();
    let expires_at = ((now + 999) / 1000 + expires_in_secs) * 1000;
    let token = random_id("bank_session_", TOKEN_BYTES);
    let inserted = sqlx::query(
        "INSERT INTO orders (token, ref, amount, currency, return_url, status, created_at, updated_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?) ON CONFLICT (ref) DO NOTHING",
    )
    .bind(&token)
    .bind(reference)
    .bind(amount)
    .bind(currency)
    .bind(return_url)
    .bind(now)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(CreateOutcome::Created(Order {
            token,
            reference: reference.to_owned(),
            amount,
            currency: currency.to_owned(),
            return_url: return_url.to_owned(),
            status: OrderStatus::Pending,
            expires_at,
        }));
    }
    let existing: Order =
        sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE ref = ?"))
            .bind(reference)
            .fetch_one(pool)
            .await?;
    let existing_amount = existing.amount;
    Ok(CreateOutcome::earlier(existing, existing_amount, amount))
}

/// The order, as of now: a `PENDING` order past its expiry is first persisted as `EXPIRED`, so
/// no reader ever sees it `PENDING` after `expires_at`.
pub(crate) async fn get_order(
    pool: &SqlitePool,
    token: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE orders SET status = 'EXPIRED', updated_at = ? \
         WHERE token = ? AND status = 'PENDING' AND expires_at <= ?",
    )
    .bind(now)
    .bind(token)
    .bind(now)
    .execute(pool)
    .await?;
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE token = ?"
    ))
    .bind(token)
    .fetch_optional(pool)
    .await
}

/// Ends a `PENDING` order that has not expired as `CANCELLED` (no webhook). Returns the order
/// with its final status: `CANCELLED`, or what it had already ended as (an order past its expiry
/// is persisted as `EXPIRED`, as by [`get_order`]); `None` if unknown.
pub(crate) async fn cancel_order(
    pool: &SqlitePool,
    token: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let now = now_ms();
    let cancelled: Option<Order> = sqlx::query_as(&format!(
        "UPDATE orders SET status = 'CANCELLED', updated_at = ? \
         WHERE token = ? AND status = 'PENDING' AND expires_at > ? \
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(now)
    .bind(token)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    match cancelled {
        Some(order) => Ok(Some(order)),
        None => get_order(pool, token).await,
    }
}

/// How a settlement queues its webhook.
pub(crate) struct QueueOptions {
    /// Delay before the first attempt.
    pub delay: Duration,
    /// Record the delivery as dropped instead of queueing it.
    pub drop: bool,
}

pub(crate) enum SettleOutcome {
    Settled { order: Order, event_id: String },
    AlreadyFinal(Order),
    NotFound,
}

/// Moves a `PENDING` order that has not expired to `outcome` and queues its webhook, in one
/// transaction. Any other order is left alone (one past its expiry is persisted as `EXPIRED`)
/// and returned as `AlreadyFinal`.
pub(crate) async fn settle(
    pool: &SqlitePool,
    token: &str,
    outcome: EventStatus,
    queue: &QueueOptions,
) -> Result<SettleOutcome, sqlx::Error> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let updated: Option<Order> = sqlx::query_as(&format!(
        "UPDATE orders SET status = ?, updated_at = ? \
         WHERE token = ? AND status = 'PENDING' AND expires_at > ? \
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(outcome.as_str())
    .bind(now)
    .bind(token)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(order) = updated else {
        tx.rollback().await?;
        return Ok(match get_order(pool, token).await? {
            Some(order) => SettleOutcome::AlreadyFinal(order),
            None => SettleOutcome::NotFound,
        });
    };
    let event_id = random_id("evt_", EVENT_ID_BYTES);
    let body = serde_json::to_string(&OrderEvent {
        event_id: event_id.clone(),
        token: order.token.clone(),
        reference: order.reference.clone(),
        amount: order.amount,
        currency: order.currency.clone(),
        status: outcome,
    })
    .expect("a webhook body serializes");
    insert_delivery(
        &mut tx,
        Subject::Order(&order.token),
        &event_id,
        &body,
        queue,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(SettleOutcome::Settled { order, event_id })
}

/// What a delivery is the webhook of.
enum Subject<'a> {
    Order(&'a str),
    Payout(&'a str),
}

/// Queues the webhook `body` of `subject`, in the transaction that settled it.
async fn insert_delivery(
    tx: &mut sqlx::SqliteConnection,
    subject: Subject<'_>,
    event_id: &str,
    body: &str,
    queue: &QueueOptions,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (failed_at, last_error) = if queue.drop {
        (
            Some(now),
            Some("dropped (fault injection: drop_deliveries)"),
        )
    } else {
        (None, None)
    };
    let (token, payout_id) = match subject {
        Subject::Order(token) => (Some(token), None),
        Subject::Payout(id) => (None, Some(id)),
    };
    sqlx::query(
        "INSERT INTO deliveries (event_id, token, payout_id, body, attempts, next_attempt_at, \
                                 failed_at, last_error, created_at) \
         VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
    )
    .bind(event_id)
    .bind(token)
    .bind(payout_id)
    .bind(body)
    .bind(now.saturating_add(queue.delay.as_millis() as i64))
    .bind(failed_at)
    .bind(last_error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Payout {
    pub payout_id: String,
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub status: PayoutStatus,
}

const PAYOUT_COLUMNS: &str = "payout_id, ref, amount, currency, status";

/// Payout ids carry 16 random bytes.
const PAYOUT_ID_BYTES: usize = 16;

/// Creates a `PENDING` payout that settles at `settle_at`, or finds the earlier payout with
/// this `ref`.
pub(crate) async fn create_payout(
    pool: &SqlitePool,
    reference: &str,
    amount: i64,
    currency: &str,
    settle_at: i64,
) -> Result<CreateOutcome<Payout>, sqlx::Error> {
    let now = now_ms();
    let payout_id = random_id("po_", PAYOUT_ID_BYTES);
    let created: Option<Payout> = sqlx::query_as(&format!(
        "INSERT INTO payouts (payout_id, ref, amount, currency, status, settle_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?) ON CONFLICT (ref) DO NOTHING \
         RETURNING {PAYOUT_COLUMNS}"
    ))
    .bind(&payout_id)
    .bind(reference)
    .bind(amount)
    .bind(currency)
    .bind(settle_at)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if let Some(payout) = created {
        return Ok(CreateOutcome::Created(payout));
    }
    let existing: Payout = sqlx::query_as(&format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE ref = ?"
    ))
    .bind(reference)
    .fetch_one(pool)
    .await?;
    let existing_amount = existing.amount;
    Ok(CreateOutcome::earlier(existing, existing_amount, amount))
}

pub(crate) async fn get_payout(
    pool: &SqlitePool,
    payout_id: &str,
) -> Result<Option<Payout>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE payout_id = ?"
    ))
    .bind(payout_id)
    .fetch_optional(pool)
    .await
}

/// Settles every `PENDING` payout whose time has come and queues its webhook, in one
/// transaction. The outcome is the sandbox convention of `docs/bank.md`: `FAILURE` when the
/// amount's last two digits are 13 (1013 paise fails, 1000 succeeds), `SUCCESS` otherwise.
/// Answers how many were settled.
pub(crate) async fn settle_due_payouts(
    pool: &SqlitePool,
    now: i64,
    queue: &QueueOptions,
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let settled: Vec<Payout> = sqlx::query_as(&format!(
        "UPDATE payouts SET status = CASE WHEN amount % 100 = 13 THEN 'FAILURE' ELSE 'SUCCESS' END, \
                            updated_at = ? \
         WHERE status = 'PENDING' AND settle_at <= ? RETURNING {PAYOUT_COLUMNS}"
    ))
    .bind(now)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for payout in &settled {
        let event_id = random_id("evt_", EVENT_ID_BYTES);
        let outcome = payout
            .status
            .outcome()
            .expect("a settled payout has an outcome");
        let body = serde_json::to_string(&PayoutEvent {
            event_id: event_id.clone(),
            kind: PayoutKind::Payout,
            payout_id: payout.payout_id.clone(),
            reference: payout.reference.clone(),
            amount: payout.amount,
            currency: payout.currency.clone(),
            status: outcome,
        })
        .expect("a webhook body serializes");
        let subject = Subject::Payout(&payout.payout_id);
        insert_delivery(&mut tx, subject, &event_id, &body, queue, now).await?;
        tracing::info!(payout_id = %payout.payout_id, status = payout.status.as_str(), "bank simulator: payout settled");
    }
    tx.commit().await?;
    Ok(settled.len())
}

/// When the next pending payout settles.
pub(crate) async fn next_payout_due(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(settle_at) FROM payouts WHERE status = 'PENDING'")
        .fetch_one(pool)
        .await
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub event_id: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i64,
}

/// Claims up to `limit` due deliveries for one attempt each: counts the attempt and leases the
/// row until `lease_until` (so it is retried after a crash mid-attempt).
pub(crate) async fn claim_due(
    pool: &SqlitePool,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ? \
         WHERE event_id IN (SELECT event_id FROM deliveries \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, created_at LIMIT ?) \
         RETURNING event_id, body, attempts",
    )
    .bind(lease_until)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// When the next pending delivery is due (in-flight ones: when their lease ends).
pub(crate) async fn next_due(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

pub(crate) async fn mark_delivered(
    pool: &SqlitePool,
    event_id: &str,
    status_code: u16,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET delivered_at = ?, last_status_code = ?, last_error = NULL WHERE event_id = ?",
    )
    .bind(now_ms())
    .bind(i64::from(status_code))
    .bind(event_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: retry at `retry_at`, or give up when `None`.
pub(crate) async fn mark_attempt_failed(
    pool: &SqlitePool,
    event_id: &str,
    status_code: Option<u16>,
    error: &str,
    retry_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let (next_attempt_at, failed_at) = match retry_at {
        Some(at) => (at, None),
        None => (now, Some(now)),
    };
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = ?, failed_at = ?, last_status_code = ?, last_error = ? \
         WHERE event_id = ? AND delivered_at IS NULL",
    )
    .bind(next_attempt_at)
    .bind(failed_at)
    .bind(status_code.map(i64::from))
    .bind(error)
    .bind(event_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// One row of `GET /api/bank/deliveries`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct DeliveryInfo {
    pub event_id: String,
    /// The order's token, for an order's webhook.
    pub token: Option<String>,
    /// The payout's id, for a payout's webhook.
    pub payout_id: Option<String>,
    /// The event's status (`SUCCESS` or `FAILURE`).
    pub status: String,
    pub attempts: i64,
    pub delivered: bool,
    /// `pending`, `delivered` or `failed` (given up or dropped).
    pub state: String,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
}

pub(crate) async fn list_deliveries(
    pool: &SqlitePool,
    token: Option<&str>,
) -> Result<Vec<DeliveryInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.event_id, d.token, d.payout_id, COALESCE(o.status, p.status) AS status, \
                d.attempts, d.delivered_at IS NOT NULL AS delivered, \
                CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered' \
                     WHEN d.failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END AS state, \
                d.last_status_code, d.last_error \
         FROM deliveries d LEFT JOIN orders o ON o.token = d.token \
         LEFT JOIN payouts p ON p.payout_id = d.payout_id \
         WHERE ? IS NULL OR d.token = ? OR d.payout_id = ? \
         ORDER BY d.created_at, d.rowid",
    )
    .bind(token)
    .bind(token)
    .bind(token)
    .fetch_all(pool)
    .await
}

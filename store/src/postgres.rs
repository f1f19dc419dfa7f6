//! PostgreSQL: production. Each kind of change in a batch is written by one set-based statement
//! over `UNNEST` arrays instead of a round trip per change; the settlements are one statement
//! (data-modifying CTEs: deposit, wallet and ledger together), and a batch of one kind, such as a
//! storm of webhooks, is that statement alone, a transaction without BEGIN and COMMIT.

use super::batch::{applied, Plan, Written};
use super::*;
use crate::reads::accounts_postgres as accounts;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies the settlements: those whose deposit is still processing change it, credit the
/// wallet and append the ledger entry (their pending rows are dropped later, by
/// reconciliation); the statement answers their batch positions, with the ledger entry and the
/// balance after it for a credit. Each credit's `balance_after` is the
/// wallet's balance before the batch (its row locked first) plus its credits in this batch up to
/// and including this one, in batch order; the wallet records the last entry it includes.
const SETTLE: &str = "\
WITH input AS (
    SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])
        AS u(seq, deposit_id, status, user_id, amount, now)
), settled AS (
    UPDATE deposits AS d SET status = i.status, updated_at = i.now FROM input AS i
    WHERE d.id = i.deposit_id AND d.status = 'processing'
    RETURNING i.seq, i.deposit_id, i.status, i.user_id, i.amount, i.now
), credits AS (
    SELECT * FROM settled WHERE status = 'success'
), before AS (
    SELECT user_id, balance FROM wallets
    WHERE user_id IN (SELECT user_id FROM credits) FOR UPDATE
), entries AS (
    INSERT INTO ledger (user_id, deposit_id, amount, balance_after, created_at)
    SELECT c.user_id, c.deposit_id, c.amount,
           COALESCE(b.balance, 0)
               + SUM(c.amount) OVER (PARTITION BY c.user_id ORDER BY c.seq ROWS UNBOUNDED PRECEDING),
           c.now
    FROM credits AS c LEFT JOIN before AS b ON b.user_id = c.user_id
    ORDER BY c.seq
    RETURNING user_id, deposit_id, id, amount, balance_after, created_at
), wallets_after AS (
    INSERT INTO wallets (user_id, balance, updated_at, last_entry)
    SELECT user_id, SUM(amount), MAX(created_at), MAX(id) FROM entries GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE SET balance = wallets.balance + EXCLUDED.balance,
        updated_at = EXCLUDED.updated_at, last_entry = EXCLUDED.last_entry
)
SELECT s.seq, e.id, e.balance_after FROM settled AS s LEFT JOIN entries AS e USING (deposit_id)";

/// Writes every kind of change in `plan` with one set-based statement (accounts and purges one
/// at a time) and answers what the database decided.
async fn write(conn: &mut PgConnection, plan: &mut Plan<'_>) -> Result<Written, StoreError> {
    accounts::write(conn, plan).await?;
    let inserted = insert_deposits(conn, plan).await?;
    write_orders(conn, plan).await?;
    write_sessions(conn, plan).await?;
    write_schedule(conn, plan).await?;
    let settled = write_settlements(conn, plan).await?;
    Ok(Written { inserted, settled })
}

async fn write_orders(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.orders.is_empty() {
        let o = &plan.orders;
        sqlx::query(
            "UPDATE deposits AS d SET bank_token = o.token, pay_url = o.pay_url, updated_at = o.now \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS o(id, token, pay_url, now) \
             WHERE d.id = o.id",
        )
        .bind(o.iter().map(|o| o.id).collect::<Vec<_>>())
        .bind(o.iter().map(|o| o.token).collect::<Vec<_>>())
        .bind(o.iter().map(|o| o.pay_url).collect::<Vec<_>>())
        .bind(o.iter().map(|o| o.now).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// New sessions, renewals and logouts.
async fn write_sessions(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.new_sessions.is_empty() {
        let s = &plan.new_sessions;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) \
             SELECT hash, user_id, created_at, expires_at, created_at \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS s(hash, user_id, created_at, expires_at)",
        )
        .bind(s.iter().map(|s| s.hash).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.created_at).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.expires_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !plan.touches.is_empty() {
        let t = &plan.touches;
        sqlx::query(
            "UPDATE sessions AS s SET last_seen_at = t.seen \
             FROM (SELECT hash, MAX(seen) AS seen FROM UNNEST($1::text[], $2::int8[]) AS u(hash, seen) \
                   GROUP BY hash) AS t \
             WHERE s.token_hash = t.hash AND s.last_seen_at < t.seen",
        )
        .bind(t.iter().map(|t| t.0).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.1).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !plan.ended_sessions.is_empty() {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ANY($1)")
            .bind(&plan.ended_sessions)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reconciliation's next checks, and the rows of settled deposits it drops.
async fn write_schedule(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.checks.is_empty() {
        let c = &plan.checks;
        sqlx::query(
            "UPDATE pending_deposits AS p SET next_check_at = c.next, checks = p.checks + 1 \
             FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS c(id, due, next) \
             WHERE p.next_check_at = c.due AND p.deposit_id = c.id",
        )
        .bind(c.iter().map(|c| c.deposit_id).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.due_at).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.next_check_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !plan.forgets.is_empty() {
        let f = &plan.forgets;
        sqlx::query(
            "DELETE FROM pending_deposits AS p \
             USING UNNEST($1::text[], $2::int8[]) AS f(id, due) \
             WHERE p.next_check_at = f.due AND p.deposit_id = f.id",
        )
        .bind(f.iter().map(|f| f.0).collect::<Vec<_>>())
        .bind(f.iter().map(|f| f.1).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn write_settlements(
    conn: &mut PgConnection,
    plan: &Plan<'_>,
) -> Result<Vec<(usize, Option<Balance>)>, StoreError> {
    let mut settled = Vec::new();
    if !plan.settles.is_empty() {
        let s = &plan.settles;
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(SETTLE)
            .bind(s.iter().map(|s| s.index as i64).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.deposit_id).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.status).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.amount).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.now).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        settled = rows
            .into_iter()
            .map(|(seq, entry, after)| applied(seq as usize, entry, after))
            .collect();
    }
    Ok(settled)
}

/// Inserts the new deposits, pending (an idempotency key held by a deposit older than the
/// cutoff is given up first), and answers the batch positions of those inserted: a deposit
/// whose key is still held is not.
async fn insert_deposits(
    conn: &mut PgConnection,
    plan: &Plan<'_>,
) -> Result<Vec<usize>, StoreError> {
    let d = &plan.deposits;
    if d.is_empty() {
        return Ok(Vec::new());
    }
    if plan.has_keys() {
        let keyed: Vec<_> = d.iter().filter(|d| d.key.is_some()).collect();
        sqlx::query(
            "UPDATE deposits AS d SET idempotency_key = NULL \
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(user_id, key, cutoff) \
             WHERE d.user_id = k.user_id AND d.idempotency_key = k.key AND d.created_at < k.cutoff",
        )
        .bind(keyed.iter().map(|d| d.user_id.as_str()).collect::<Vec<_>>())
        .bind(keyed.iter().map(|d| d.key).collect::<Vec<_>>())
        .bind(keyed.iter().map(|d| d.key_cutoff).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH inserted AS ( \
             INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at) \
             SELECT id, user_id, amount, currency, 'processing', key, now, now \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[]) \
                 WITH ORDINALITY AS u(id, user_id, amount, key, now, currency, ord) \
             ORDER BY ord \
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING id, created_at \
         ), pending AS ( \
             INSERT INTO pending_deposits (next_check_at, deposit_id, created_at) \
             SELECT c.first_check, i.id, i.created_at FROM inserted AS i \
             JOIN UNNEST($1::text[], $7::int8[]) AS c(id, first_check) ON c.id = i.id \
         ) \
         SELECT id FROM inserted",
    )
    .bind(d.iter().map(|d| d.id).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.user_id.as_str()).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.amount).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.key).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.now).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.currency).collect::<Vec<_>>())
    .bind(d.iter().map(|d| d.first_check_at).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let inserted: HashSet<String> = rows.into_iter().map(|(id,)| id).collect();
    Ok(d.iter()
        .filter(|d| inserted.contains(d.id))
        .map(|d| d.index)
        .collect())
}

crate::reads::impl_store!(PgStore, postgres);

impl PgStore {
    /// One group commit (the `Store::commit_batch` of this backend).
    async fn commit(&self, ops: &[WriteOp]) -> Result<Vec<OpOutcome>, StoreError> {
        let mut plan = Plan::new(ops);
        let written = if plan.statements() == 1 {
            // One statement is a transaction of its own: no BEGIN and COMMIT round trips.
            write(&mut *self.pool.acquire().await?, &mut plan).await?
        } else {
            let mut tx = self.pool.begin().await?;
            let written = write(&mut tx, &mut plan).await?;
            tx.commit().await?;
            written
        };
        Ok(plan.finish(written))
    }
}

//! PostgreSQL: production. Settlements in a batch are written with a few set-based statements
//! (`UNNEST` arrays) instead of a round trip per credit, so a large batch costs about as much
//! as a small one.

use super::settle::{self, SettleItem};
use super::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
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
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies a run of consecutive settlements with set-based statements.
async fn settle_many(
    tx: &mut Transaction<'_, Postgres>,
    items: &[SettleItem<'_>],
    now: i64,
    outcomes: &mut [OpOutcome],
) -> Result<(), sqlx::Error> {
    let attempted = settle::first_of_each(items, outcomes);
    let ids: Vec<&str> = attempted.iter().map(|i| i.deposit_id.as_str()).collect();
    let statuses: Vec<&str> = attempted
        .iter()
        .map(|i| i.outcome.status().as_str())
        .collect();
    let changed: Vec<(String,)> = sqlx::query_as(
        "UPDATE deposits AS d SET status = u.status, updated_at = $3 \
         FROM UNNEST($1::text[], $2::text[]) AS u(id, status) \
         WHERE d.id = u.id AND d.status = 'processing' RETURNING d.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let credits = settle::credits(
        &attempted,
        changed.into_iter().map(|(id,)| id).collect(),
        outcomes,
    );
    if credits.is_empty() {
        return Ok(());
    }
    let sums = settle::per_user(&credits);
    let users: Vec<&str> = sums.iter().map(|(u, _)| u.as_str()).collect();
    let deltas: Vec<i64> = sums.iter().map(|(_, d)| *d).collect();
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO wallets (user_id, balance, currency, updated_at) \
         SELECT u.user_id, u.delta, 'INR', $3 FROM UNNEST($1::text[], $2::int8[]) AS u(user_id, delta) \
         ON CONFLICT (user_id) DO UPDATE SET balance = wallets.balance + EXCLUDED.balance, \
         updated_at = EXCLUDED.updated_at RETURNING user_id, balance",
    )
    .bind(&users)
    .bind(&deltas)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let rows = settle::ledger_rows(&credits, &sums, balances);
    let l_users: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    let l_deposits: Vec<&str> = rows.iter().map(|r| r.deposit_id.as_str()).collect();
    let l_amounts: Vec<i64> = rows.iter().map(|r| r.amount).collect();
    let l_after: Vec<i64> = rows.iter().map(|r| r.balance_after).collect();
    sqlx::query(
        "INSERT INTO ledger (user_id, deposit_id, amount, balance_after, created_at) \
         SELECT u.user_id, u.deposit_id, u.amount, u.balance_after, $5 \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(user_id, deposit_id, amount, balance_after)",
    )
    .bind(&l_users)
    .bind(&l_deposits)
    .bind(&l_amounts)
    .bind(&l_after)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply(tx: &mut Transaction<'_, Postgres>, op: &WriteOp) -> Result<OpOutcome, sqlx::Error> {
    match op {
        WriteOp::UpsertAccount {
            provider,
            sub,
            email,
            name,
            picture,
            now,
        } => {
            let existing: Option<(String,)> = sqlx::query_as(
                "SELECT user_id FROM auth_accounts WHERE provider = $1 AND sub = $2",
            )
            .bind(provider)
            .bind(sub.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((id,)) = existing {
                sqlx::query("UPDATE users SET email = $1, name = $2, picture = $3 WHERE id = $4")
                    .bind(email)
                    .bind(name)
                    .bind(picture)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                let id = UserId::parse(&id).map_err(|e| sqlx::Error::Decode(e.into()))?;
                return Ok(OpOutcome::User(id));
            }
            let id = UserId::new();
            sqlx::query(
                "INSERT INTO users (id, email, name, picture, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.to_string())
            .bind(email)
            .bind(name)
            .bind(picture)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query("INSERT INTO wallets (user_id, balance, currency, updated_at) VALUES ($1, 0, 'INR', $2)")
                .bind(id.to_string())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO auth_accounts (provider, sub, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(provider)
            .bind(sub.as_str())
            .bind(id.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::User(id))
        }
        WriteOp::InsertSession {
            hash,
            user_id,
            created_at,
            expires_at,
        } => {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $3)",
            )
            .bind(hash.as_str())
            .bind(user_id.to_string())
            .bind(created_at)
            .bind(expires_at)
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::TouchSession { hash, last_seen_at } => {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1",
            )
            .bind(last_seen_at)
            .bind(hash.as_str())
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::DeleteSession { hash } => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(hash.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::PurgeSessions { now, idle_ms } => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now)
                .bind(now - idle_ms)
                .execute(&mut **tx)
                .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::InsertDeposit {
            id,
            user_id,
            amount,
            idempotency_key,
            key_cutoff,
            now,
        } => {
            if let Some(key) = idempotency_key {
                sqlx::query(
                    "UPDATE deposits SET idempotency_key = NULL \
                     WHERE user_id = $1 AND idempotency_key = $2 AND created_at < $3",
                )
                .bind(user_id.to_string())
                .bind(key)
                .bind(key_cutoff)
                .execute(&mut **tx)
                .await?;
            }
            let inserted = sqlx::query(
                "INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'INR', 'processing', $4, $5, $5) \
                 ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            )
            .bind(id.as_str())
            .bind(user_id.to_string())
            .bind(amount.paise())
            .bind(idempotency_key)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            Ok(if inserted == 1 {
                OpOutcome::Done
            } else {
                OpOutcome::KeyTaken
            })
        }
        WriteOp::AttachBankOrder {
            id,
            token,
            pay_url,
            now,
        } => {
            sqlx::query(
                "UPDATE deposits SET bank_token = $1, pay_url = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(token.as_str())
            .bind(pay_url)
            .bind(now)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::Settle { .. } => unreachable!("settlements are applied by settle_many"),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn commit_batch(&self, ops: &[WriteOp]) -> Result<Vec<OpOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut outcomes = vec![OpOutcome::Done; ops.len()];
        let mut run: Vec<SettleItem> = Vec::new();
        let mut run_now = 0;
        for (index, op) in ops.iter().enumerate() {
            if let Some((item, now)) = SettleItem::from_op(index, op) {
                run_now = run_now.max(now);
                run.push(item);
                continue;
            }
            if !run.is_empty() {
                settle_many(&mut tx, &run, run_now, &mut outcomes).await?;
                run.clear();
            }
            outcomes[index] = apply(&mut tx, op).await?;
        }
        if !run.is_empty() {
            settle_many(&mut tx, &run, run_now, &mut outcomes).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>("SELECT id, email, name, picture FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(User::try_from)
            .transpose()
    }

    async fn session(&self, hash: &SessionHash) -> Result<Option<SessionRow>, StoreError> {
        sqlx::query_as::<_, SessionDbRow>(
            "SELECT user_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(SessionRow::try_from)
        .transpose()
    }

    async fn balance(&self, user: UserId) -> Result<i64, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM wallets WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |(b,)| b))
    }

    async fn deposit(&self, id: &DepositId) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Deposit::try_from)
        .transpose()
    }

    async fn deposit_by_token(&self, token: &BankToken) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE bank_token = $1"
        ))
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Deposit::try_from)
        .transpose()
    }

    async fn deposit_by_key(&self, user: UserId, key: &str) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = $1 AND idempotency_key = $2"
        ))
        .bind(user.to_string())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .map(Deposit::try_from)
        .transpose()
    }

    async fn deposits_page(
        &self,
        user: UserId,
        before: Option<(i64, DepositId)>,
        limit: u32,
    ) -> Result<Vec<Deposit>, StoreError> {
        let rows: Vec<DepositRow> = match before {
            None => {
                sqlx::query_as(&format!(
                    "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(user.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some((created_at, id)) => {
                sqlx::query_as(&format!(
                    "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = $1 \
                     AND (created_at, id) < ($2, $3) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(user.to_string())
                .bind(created_at)
                .bind(id.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(Deposit::try_from).collect()
    }

    async fn processing_deposits(
        &self,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Deposit>, StoreError> {
        let rows: Vec<DepositRow> = sqlx::query_as(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE status = 'processing' AND created_at < $1 \
             ORDER BY created_at LIMIT $2"
        ))
        .bind(created_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Deposit::try_from).collect()
    }

    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError> {
        let (entries, sum): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), SUM(amount)::int8 FROM ledger WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_one(&self.pool)
                .await?;
        let last: Option<(i64,)> = sqlx::query_as(
            "SELECT balance_after FROM ledger WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(LedgerTotals {
            entries,
            sum: sum.unwrap_or(0),
            last_balance_after: last.map(|(b,)| b),
        })
    }
}

//! SQLite: the embedded default. WAL mode, `synchronous = FULL` (a commit is on disk before the
//! writer reports it), foreign keys on. One writer (the DB writer actor); reads run in parallel.

use super::settle::{self, SettleItem};
use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    /// Readers. Every connection memory-maps the database file.
    pool: SqlitePool,
    /// The DB writer's own connection, with a large page cache that stays warm between batches.
    writer: tokio::sync::Mutex<SqliteConnection>,
}

/// Page cache of the writer's connection, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Page cache of each reader connection, in KiB.
const READER_CACHE_KIB: i64 = 8 * 1024;
const MMAP_BYTES: i64 = 1 << 30;

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("mmap_size", MMAP_BYTES.to_string())
            .pragma("temp_store", "memory");
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.into()))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let writer = options
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
            .connect()
            .await?;
        Ok(SqliteStore {
            pool,
            writer: tokio::sync::Mutex::new(writer),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

async fn apply(tx: &mut Transaction<'_, Sqlite>, op: &WriteOp) -> Result<OpOutcome, sqlx::Error> {
    match op {
        WriteOp::UpsertAccount {
            provider,
            sub,
            email,
            name,
            picture,
            now,
        } => {
            let existing: Option<(String,)> =
                sqlx::query_as("SELECT user_id FROM auth_accounts WHERE provider = ? AND sub = ?")
                    .bind(provider)
                    .bind(sub.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some((id,)) = existing {
                sqlx::query("UPDATE users SET email = ?, name = ?, picture = ? WHERE id = ?")
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
                "INSERT INTO users (id, email, name, picture, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id.to_string())
            .bind(email)
            .bind(name)
            .bind(picture)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query("INSERT INTO wallets (user_id, balance, currency, updated_at) VALUES (?, 0, 'INR', ?)")
                .bind(id.to_string())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO auth_accounts (provider, sub, user_id, created_at) VALUES (?, ?, ?, ?)",
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
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(hash.as_str())
            .bind(user_id.to_string())
            .bind(created_at)
            .bind(expires_at)
            .bind(created_at)
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::TouchSession { hash, last_seen_at } => {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND last_seen_at < ?",
            )
            .bind(last_seen_at)
            .bind(hash.as_str())
            .bind(last_seen_at)
            .execute(&mut **tx)
            .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::DeleteSession { hash } => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                .bind(hash.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(OpOutcome::Done)
        }
        WriteOp::PurgeSessions { now, idle_ms } => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
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
                     WHERE user_id = ? AND idempotency_key = ? AND created_at < ?",
                )
                .bind(user_id.to_string())
                .bind(key)
                .bind(key_cutoff)
                .execute(&mut **tx)
                .await?;
            }
            let inserted = sqlx::query(
                "INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at) \
                 VALUES (?, ?, ?, 'INR', 'processing', ?, ?, ?) \
                 ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            )
            .bind(id.as_str())
            .bind(user_id.to_string())
            .bind(amount.paise())
            .bind(idempotency_key)
            .bind(now)
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
                "UPDATE deposits SET bank_token = ?, pay_url = ?, updated_at = ? WHERE id = ?",
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

/// Applies a run of consecutive settlements with three set-based statements, the rows passed
/// as one JSON array each (`json_each`), instead of three statements per settlement.
async fn settle_many(
    tx: &mut Transaction<'_, Sqlite>,
    items: &[SettleItem<'_>],
    now: i64,
    outcomes: &mut [OpOutcome],
) -> Result<(), sqlx::Error> {
    let attempted = settle::first_of_each(items, outcomes);
    let targets: Vec<serde_json::Value> = attempted
        .iter()
        .map(|i| serde_json::json!([i.deposit_id.as_str(), i.outcome.status().as_str()]))
        .collect();
    let changed: Vec<(String,)> = sqlx::query_as(
        "UPDATE deposits SET status = j.value ->> 1, updated_at = ? \
         FROM json_each(?) AS j \
         WHERE deposits.id = j.value ->> 0 AND deposits.status = 'processing' RETURNING deposits.id",
    )
    .bind(now)
    .bind(serde_json::Value::Array(targets).to_string())
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
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO wallets (user_id, balance, currency, updated_at) \
         SELECT j.value ->> 0, j.value ->> 1, 'INR', ? FROM json_each(?) AS j WHERE true \
         ON CONFLICT (user_id) DO UPDATE SET balance = balance + excluded.balance, \
         updated_at = excluded.updated_at RETURNING user_id, balance",
    )
    .bind(now)
    .bind(serde_json::to_string(&sums).expect("plain data serializes"))
    .fetch_all(&mut **tx)
    .await?;
    let rows: Vec<serde_json::Value> = settle::ledger_rows(&credits, &sums, balances)
        .into_iter()
        .map(|r| serde_json::json!([r.user_id, r.deposit_id, r.amount, r.balance_after]))
        .collect();
    sqlx::query(
        "INSERT INTO ledger (user_id, deposit_id, amount, balance_after, created_at) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, ? FROM json_each(?) AS j",
    )
    .bind(now)
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn commit_batch(&self, ops: &[WriteOp]) -> Result<Vec<OpOutcome>, StoreError> {
        let mut writer = self.writer.lock().await;
        let mut tx = writer.begin().await?;
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
        sqlx::query_as::<_, UserRow>("SELECT id, email, name, picture FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(User::try_from)
            .transpose()
    }

    async fn session(&self, hash: &SessionHash) -> Result<Option<SessionRow>, StoreError> {
        sqlx::query_as::<_, SessionDbRow>(
            "SELECT user_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = ?",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(SessionRow::try_from)
        .transpose()
    }

    async fn balance(&self, user: UserId) -> Result<i64, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM wallets WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |(b,)| b))
    }

    async fn deposit(&self, id: &DepositId) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Deposit::try_from)
        .transpose()
    }

    async fn deposit_by_token(&self, token: &BankToken) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE bank_token = ?"
        ))
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Deposit::try_from)
        .transpose()
    }

    async fn deposit_by_key(&self, user: UserId, key: &str) -> Result<Option<Deposit>, StoreError> {
        sqlx::query_as::<_, DepositRow>(&format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = ? AND idempotency_key = ?"
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
                    "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = ? \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(user.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some((created_at, id)) => {
                sqlx::query_as(&format!(
                    "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = ? \
                     AND (created_at < ? OR (created_at = ? AND id < ?)) \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(user.to_string())
                .bind(created_at)
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
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE status = 'processing' AND created_at < ? \
             ORDER BY created_at LIMIT ?"
        ))
        .bind(created_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Deposit::try_from).collect()
    }

    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError> {
        let (entries, sum): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), SUM(amount) FROM ledger WHERE user_id = ?")
                .bind(user.to_string())
                .fetch_one(&self.pool)
                .await?;
        let last: Option<(i64,)> = sqlx::query_as(
            "SELECT balance_after FROM ledger WHERE user_id = ? ORDER BY id DESC LIMIT 1",
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

//! SQLite: the embedded default. WAL mode, `synchronous = FULL` (a commit is on disk before the
//! writer reports it), foreign keys on. One writer (the DB writer actor); reads run in parallel.

use super::batch::{Plan, Written};
use super::*;
use crate::reads::accounts_sqlite as accounts;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    /// Readers. They read pages with `pread` instead of a memory map: in WAL mode a reader that
    /// begins a read after any commit unmaps its whole map, and under a storm of commits the
    /// unmapping (a TLB shoot-down on every core) cost more than the copies it saved
    /// (BENCHMARKS.md, "Readers without a memory map").
    pool: SqlitePool,
    /// The DB writer's own connection, with a large page cache that stays warm between batches
    /// and a memory map (no commit but its own changes the file under it).
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
            // A connection to a file in this process does not go stale as a network one can,
            // and the ping before each use is one more round trip to the connection's thread
            // (a wake-up and a sleep) for every read.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}"))
                    .pragma("mmap_size", "0"),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let mut writer = options
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
            .connect()
            .await?;
        sqlx::raw_sql(WRITER_SETUP).execute(&mut writer).await?;
        Ok(SqliteStore {
            pool,
            writer: tokio::sync::Mutex::new(writer),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The batch script, one set-based statement per kind of change (see the file).
const BATCH_SCRIPT: &str = include_str!("sql/sqlite_batch.sql");

/// The statements of [`BATCH_SCRIPT`], each with the kinds of change it is for (none: always).
fn batch_statements() -> &'static [(Vec<&'static str>, &'static str)] {
    static STATEMENTS: std::sync::OnceLock<Vec<(Vec<&'static str>, &'static str)>> =
        std::sync::OnceLock::new();
    STATEMENTS.get_or_init(|| {
        BATCH_SCRIPT
            .split(";\n")
            .filter(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.starts_with("--"))
            })
            .map(|statement| {
                let kinds = statement
                    .lines()
                    .filter_map(|l| l.strip_prefix("-- when:"))
                    .flat_map(|kinds| kinds.split(','))
                    .map(str::trim)
                    .collect();
                (kinds, statement)
            })
            .collect()
    })
}

/// Whether `plan` has a change of `kind`, as the script's `-- when:` lines name them.
fn has_kind(plan: &Plan<'_>, kind: &str) -> bool {
    match kind {
        "deposits" => !plan.deposits.is_empty(),
        "deposit_keys" => plan.has_keys(),
        "checks" => !plan.checks.is_empty(),
        "forgets" => !plan.forgets.is_empty(),
        "orders" => !plan.orders.is_empty(),
        "sessions" => !plan.new_sessions.is_empty(),
        "touches" => !plan.touches.is_empty(),
        "logouts" => !plan.ended_sessions.is_empty(),
        "transfers" => !plan.transfers.is_empty(),
        "transfer_keys" => plan.has_transfer_keys(),
        "settlements" => !plan.settles.is_empty(),
        other => unreachable!("sqlite_batch.sql names an unknown kind of change: {other}"),
    }
}

/// The script for `plan`: the statements its kinds of change need, then COMMIT, after BEGIN
/// unless the transaction is already open (after sign-ins and purges). One command either way.
fn batch_script(plan: &Plan<'_>, begin: bool) -> String {
    let mut script = String::with_capacity(BATCH_SCRIPT.len() + 32);
    if begin {
        script.push_str("BEGIN IMMEDIATE;\n");
    }
    for (kinds, statement) in batch_statements() {
        if kinds.is_empty() || kinds.iter().any(|k| has_kind(plan, k)) {
            script.push_str(statement);
            script.push_str(";\n");
        }
    }
    script.push_str("COMMIT");
    script
}

/// Scratch tables and views of the writer's connection, for the batch script.
const WRITER_SETUP: &str = include_str!("sql/sqlite_writer.sql");

/// `[id, user_id, amount, idempotency_key, key_cutoff, now, batch position, currency,
/// first_check_at]`
type NewDepositRow<'a> = (
    &'a str,
    &'a str,
    i64,
    Option<&'a str>,
    i64,
    i64,
    usize,
    &'a str,
    i64,
);
/// `[batch position, deposit id, new status, user_id, amount, now]`
type SettlementRow<'a> = (usize, &'a str, &'a str, &'a str, i64, i64);
/// `[id, from user, to user, amount, currency, idempotency_key, key_cutoff, now, batch position,
/// recipient's name, recipient's email]`
type TransferRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    &'a str,
    Option<&'a str>,
    i64,
    i64,
    usize,
    &'a str,
    &'a str,
);

/// The batch script's input: each kind's rows, as `sql/sqlite_batch.sql` reads them.
#[derive(serde::Serialize)]
struct BatchInput<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deposits: Vec<NewDepositRow<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    orders: Vec<(&'a str, &'a str, &'a str, i64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sessions: Vec<(&'a str, &'a str, i64, i64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    touches: Vec<(&'a str, i64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logouts: Vec<(&'a str,)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    settlements: Vec<SettlementRow<'a>>,
    /// `[deposit id, current next_check_at, new next_check_at]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<(&'a str, i64, i64)>,
    /// `[deposit id, current next_check_at]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    forgets: Vec<(&'a str, i64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transfers: Vec<TransferRow<'a>>,
}

impl<'a> BatchInput<'a> {
    fn new(plan: &'a Plan<'a>) -> Self {
        BatchInput {
            deposits: plan
                .deposits
                .iter()
                .map(|d| {
                    (
                        d.id,
                        d.user_id.as_str(),
                        d.amount,
                        d.key,
                        d.key_cutoff,
                        d.now,
                        d.index,
                        d.currency,
                        d.first_check_at,
                    )
                })
                .collect(),
            orders: plan
                .orders
                .iter()
                .map(|o| (o.id, o.token, o.pay_url, o.now))
                .collect(),
            sessions: plan
                .new_sessions
                .iter()
                .map(|s| (s.hash, s.user_id.as_str(), s.created_at, s.expires_at))
                .collect(),
            touches: plan.touches.clone(),
            logouts: plan.ended_sessions.iter().map(|h| (*h,)).collect(),
            settlements: plan
                .settles
                .iter()
                .map(|s| {
                    (
                        s.index,
                        s.deposit_id,
                        s.status,
                        s.user_id.as_str(),
                        s.amount,
                        s.now,
                    )
                })
                .collect(),
            checks: plan
                .checks
                .iter()
                .map(|c| (c.deposit_id, c.due_at, c.next_check_at))
                .collect(),
            forgets: plan.forgets.clone(),
            transfers: plan
                .transfers
                .iter()
                .map(|t| {
                    (
                        t.id,
                        t.from.as_str(),
                        t.to.as_str(),
                        t.amount,
                        t.currency,
                        t.key,
                        t.key_cutoff,
                        t.now,
                        t.index,
                        t.to_name,
                        t.to_email,
                    )
                })
                .collect(),
        }
    }
}

/// Writes `plan` in one transaction and answers what the database decided.
async fn write(conn: &mut SqliteConnection, plan: &mut Plan<'_>) -> Result<Written, StoreError> {
    let one_at_a_time = !plan.accounts.is_empty() || !plan.purges.is_empty();
    if one_at_a_time {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        accounts::write(conn, plan).await?;
    }
    let input = serde_json::to_string(&BatchInput::new(plan)).expect("plain data serializes");
    // The same few scripts come back batch after batch, so each stays prepared in the
    // connection's statement cache.
    let script = batch_script(plan, !one_at_a_time);
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(&script)
        .bind(input)
        // All of it: `fetch_one` would stop the script at its first row, before the COMMIT.
        .fetch_all(&mut *conn)
        .await?;
    let (settled, inserted, transferred, balances) = rows
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("the batch answered no row".into()))?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("the batch's answer: {e}"));
    let balances: Vec<(String, i64, i64)> = serde_json::from_str(&balances).map_err(corrupt)?;
    Ok(Written {
        inserted: serde_json::from_str(&inserted).map_err(corrupt)?,
        settled: serde_json::from_str(&settled).map_err(corrupt)?,
        transferred: serde_json::from_str(&transferred).map_err(corrupt)?,
        balances: balances
            .into_iter()
            .map(|(user, paise, entry)| (user, Balance { paise, entry }))
            .collect(),
    })
}

crate::reads::impl_store!(SqliteStore, sqlite);

impl SqliteStore {
    /// One group commit (the `Store::commit_batch` of this backend).
    async fn commit(&self, ops: &[WriteOp]) -> Result<Vec<OpOutcome>, StoreError> {
        let mut plan = Plan::new(ops);
        let mut conn = self.writer.lock().await;
        match write(&mut conn, &mut plan).await {
            Ok(written) => plan.finish(written),
            Err(e) => {
                // A failed statement leaves the transaction open (unless SQLite already rolled
                // it back, when this ROLLBACK has nothing to do).
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, DepositId, Settlement};

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        (dir, SqliteStore::connect(&url, 2).await.unwrap())
    }

    /// Every statement of the batch script finds its rows through an index: none reads a whole
    /// table, however large it grows.
    #[tokio::test]
    async fn the_batch_script_never_scans_a_table() {
        let (_dir, store) = store().await;
        let mut conn = store.writer.lock().await;
        let statements = batch_statements();
        assert_eq!(statements.len(), 23, "the script's statements");
        for (_, statement) in statements {
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(Box::leak(
                format!("EXPLAIN QUERY PLAN {statement}").into_boxed_str(),
            ));
            query = query.bind("{}");
            let plan = query.fetch_all(&mut *conn).await.unwrap();
            // Tables are named by their alias where they have one: d (deposits), tr
            // (transfers), e (ledger entries), a, c, f, r (ledger accounts).
            let scanned: Vec<&str> = plan
                .iter()
                .filter_map(|(_, _, _, step)| step.strip_prefix("SCAN "))
                .filter_map(|rest| rest.split_whitespace().next())
                .collect();
            for table in scanned {
                assert!(
                    ![
                        "users",
                        "auth_accounts",
                        "sessions",
                        "ledger_accounts",
                        "ledger_entries",
                        "transfers",
                        "deposits",
                        "pending_deposits",
                        "d",
                        "tr",
                        "e",
                        "a",
                        "c",
                        "f",
                        "r"
                    ]
                    .contains(&table),
                    "{statement}\nreads all of {table}: {plan:?}"
                );
            }
        }
    }

    /// Every kind a `-- when:` line names is one the writer knows (a misspelt one would panic
    /// in `has_kind`), and a batch of one kind leaves the other kinds' statements out.
    #[test]
    fn the_script_for_a_batch_has_only_the_statements_its_kinds_need() {
        let empty = Plan::new(&[]);
        for (kinds, _) in batch_statements() {
            for kind in kinds {
                assert!(!has_kind(&empty, kind), "{kind}");
            }
        }
        let always = batch_statements()
            .iter()
            .filter(|(k, _)| k.is_empty())
            .count();
        assert_eq!(always, 5, "the statements every batch runs");
        let script = batch_script(&empty, true);
        assert_eq!(script.matches(";\n").count(), 1 + always);
        assert!(script.starts_with("BEGIN IMMEDIATE;\n") && script.ends_with("COMMIT"));
        assert!(
            !script.contains("INSERT INTO transfers") && !script.contains("INSERT INTO deposits")
        );

        let ops = [WriteOp::Settle(crate::SettleDeposit {
            deposit_id: DepositId::new(),
            user_id: crate::domain::UserId::new(),
            amount: Amount::parse(100, i64::MAX).unwrap(),
            outcome: Settlement::Success,
            now: 1,
        })];
        let script = batch_script(&Plan::new(&ops), false);
        assert!(!script.starts_with("BEGIN"));
        assert!(
            script.contains("UPDATE deposits SET status")
                && script.contains("UPDATE ledger_accounts")
        );
        assert!(
            !script.contains("INSERT INTO transfers") && !script.contains("INSERT INTO sessions")
        );
    }

    #[tokio::test]
    async fn settlements_in_one_batch_credit_once_each_and_answer_the_balance_after_it() {
        let (_dir, store) = store().await;
        let user = match &store
            .commit_batch(&[WriteOp::UpsertAccount(NewAccount {
                provider: crate::domain::Provider::Google,
                sub: crate::domain::ProviderSub::parse("s").unwrap(),
                email: "a@example.com".into(),
                email_verified: true,
                name: "A".into(),
                picture: String::new(),
                now: 1,
            })])
            .await
            .unwrap()[0]
        {
            OpOutcome::User(u) => *u,
            other => panic!("{other:?}"),
        };
        let ids: Vec<DepositId> = (0..3).map(|_| DepositId::new()).collect();
        let inserts: Vec<WriteOp> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                WriteOp::InsertDeposit(NewDeposit {
                    id: id.clone(),
                    user_id: user,
                    amount: Amount::parse(100 * (i as i64 + 1), i64::MAX).unwrap(),
                    currency: crate::domain::Currency::Inr,
                    idempotency_key: None,
                    key_cutoff: 0,
                    now: 2,
                    first_check_at: 3,
                })
            })
            .collect();
        assert_eq!(
            store.commit_batch(&inserts).await.unwrap(),
            vec![OpOutcome::Deposit(DepositInsert::Inserted); 3]
        );
        let settle = |i: usize, outcome| {
            WriteOp::Settle(SettleDeposit {
                deposit_id: ids[i].clone(),
                user_id: user,
                amount: Amount::parse(100 * (i as i64 + 1), i64::MAX).unwrap(),
                outcome,
                now: 3,
            })
        };
        let outcomes = store
            .commit_batch(&[
                settle(0, Settlement::Success),
                settle(1, Settlement::Failure),
                settle(0, Settlement::Success),
                settle(2, Settlement::Success),
            ])
            .await
            .unwrap();
        use SettleResult::{Applied, NotProcessing};
        let [OpOutcome::Settle(Applied(Some(first))), OpOutcome::Settle(Applied(None)), OpOutcome::Settle(NotProcessing), OpOutcome::Settle(Applied(Some(third)))] =
            outcomes.as_slice()
        else {
            panic!("{outcomes:?}");
        };
        // Both credits answer the wallet's balance after the batch, which includes them both.
        assert_eq!((first.paise, third.paise), (400, 400));
        assert_eq!(first.entry, third.entry);
        assert_eq!(store.balance(user).await.unwrap(), *third);
        let totals = store.ledger_totals(user).await.unwrap();
        assert_eq!((totals.entries, totals.sum, totals.balance), (2, 400, 400));
        assert!(store.audit().await.unwrap().is_ok());
    }
}

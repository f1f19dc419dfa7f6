//! SQLite: the embedded default. WAL mode, `synchronous = FULL` (a commit is on disk before the
//! writer reports it), foreign keys on. One writer (the DB writer actor); reads run in parallel.

use super::batch::{
    CheckItem, DepositItem, EndItem, ForgetItem, OrderItem, PayoutItem, PayoutSettleItem, Plan,
    SessionItem, SettleItem, TouchItem, TransferItem, WithdrawalItem, Written,
};
use super::*;
use crate::reads::accounts_sqlite as accounts;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct SqliteStore {
    /// Readers. They read pages with `pread` instead of a memory map: in WAL mode a reader that
    /// begins a read after any commit unmaps its whole map, and under a storm of commits the
    /// unmapping (a TLB shoot-down on every core) cost more than the copies it saved
    /// (BENCHMARKS.md, "Readers without a memory map").
    pub(crate) pool: SqlitePool,
    /// The DB writer's own connection, with a large page cache that stays warm between batches
    /// and a memory map (no commit but its own changes the file under it).
    pub(crate) writer: Arc<tokio::sync::Mutex<SqliteConnection>>,
    /// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`], on a connection
    /// of its own, and syncs the file, so that the writer's commits seldom do either (see
    /// [`Checkpointer`]). Stopped when the store is dropped.
    checkpointer: tokio::task::JoinHandle<()>,
    /// How many times the checkpointer has synced the database file.
    database_syncs: Arc<AtomicU64>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// How often the WAL is copied back into the database file, off the writer's path.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The background checkpoints: every [`CHECKPOINT_EVERY`] `conn` copies the WAL into the
/// database file and `file` is synced, then the writer's own connection, between two of its
/// batches, copies what was committed meanwhile, so that the WAL starts over.
///
/// In WAL mode a commit appends its pages to the WAL, and a checkpoint copies them back into
/// the database file. Left to SQLite, the checkpoint runs in the commit that takes the WAL past
/// `wal_autocheckpoint` pages, on the writer's thread, with the writer's group commit waiting:
/// on a database of a million users (BENCHMARKS.md, "Grown books") a transfer dirties leaf pages
/// scattered over indexes far larger than any cache, a checkpoint of 10,000 pages writes them
/// one by one all over the file and syncs it, and transfers' p99 was 3.2 times the empty
/// database's. A `PASSIVE` checkpoint from another connection does the same copy while the
/// writer goes on committing (it takes no lock the writer needs).
///
/// That was not enough (BENCHMARKS.md, "Tenth session"). SQLite syncs the database file, and
/// lets the WAL start over, only in a checkpoint that reaches the WAL's end (until then the
/// WAL's frames are what a crash recovers from), and with the writer committing every few
/// milliseconds a checkpoint from another connection seldom gets there. So the WAL still grew
/// to the writer's backstop, and every two seconds or so the writer copied what was left and
/// synced every page copied since the last time: 120 ms of a commit at the median, 161 ms at
/// most, traced on grown books. Here the file is synced after each copy (an extra sync changes
/// nothing SQLite relies on), and the writer's connection finishes the copy at once: the few
/// pages committed during it, and a sync of only those (12 ms at the median, 30 ms at most, four
/// times a second). The writer's `wal_autocheckpoint` stays as the backstop.
struct Checkpointer {
    conn: SqliteConnection,
    /// The database file, to sync (none for a database in memory): see [`database_file`].
    file: Option<&'static std::fs::File>,
    writer: Arc<tokio::sync::Mutex<SqliteConnection>>,
    syncs: Arc<AtomicU64>,
}

impl Checkpointer {
    /// For good.
    async fn run(mut self) {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // How many of the WAL's pages were copied into the file, after the last checkpoint.
        let mut last = 0;
        loop {
            every.tick().await;
            let Some(copied) = checkpoint(&mut self.conn).await else {
                continue;
            };
            if copied == 0 || copied == last {
                // Nothing copied since the last time (a reader holding an old snapshot may
                // hold the copy back while the WAL grows).
                last = copied;
                continue;
            }
            self.sync().await;
            // What was committed since the copy began (the WAL's end as it then was): the
            // writer's connection copies it and, at the WAL's end, syncs the file (those pages
            // only) and lets the WAL start over. With nothing committed, this does nothing.
            let mut writer = self.writer.lock().await;
            last = checkpoint(&mut writer).await.unwrap_or(copied);
        }
    }

    async fn sync(&self) {
        let Some(file) = self.file else {
            return;
        };
        // A sync blocks its thread for as long as the disk takes: not one of the runtime's.
        let synced = tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .unwrap_or_else(|e| Err(e.into()));
        match synced {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "syncing the database file failed"),
        }
    }
}

/// The database file of `url`, for the checkpointer to sync, opened once and never closed; none
/// for a database in memory, or if it cannot be opened (then SQLite's own syncs are all).
///
/// Never closed, because closing any descriptor of a file drops every POSIX lock this process
/// holds on it, SQLite's included ("How To Corrupt An SQLite Database File", 2.2): another
/// process could then take the database for unused and delete its WAL under our connections.
/// SQLite keeps its own descriptors open until its locks are gone for the same reason. One
/// descriptor per store opened: the app opens one.
fn database_file(url: &str, options: &SqliteConnectOptions) -> Option<&'static std::fs::File> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    match std::fs::File::open(options.get_filename()) {
        Ok(file) => Some(Box::leak(Box::new(file))),
        Err(e) => {
            tracing::warn!(error = %e, "the database file cannot be opened to sync it");
            None
        }
    }
}

/// A `PASSIVE` checkpoint on `conn`: how many of the WAL's pages are copied into the database
/// file; `None` if it failed (logged) or another checkpoint was under way.
async fn checkpoint(conn: &mut SqliteConnection) -> Option<i64> {
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await
    {
        // Busy (another checkpoint under way, such as the writer's backstop): `(1, -1, -1)`.
        Ok((busy, log, copied)) if busy == 0 && log >= 0 => Some(copied),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "a background checkpoint failed");
            None
        }
    }
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
            .clone()
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
            .connect()
            .await?;
        sqlx::raw_sql(WRITER_SETUP).execute(&mut writer).await?;
        let file = database_file(url, &options);
        let database_syncs = Arc::new(AtomicU64::new(0));
        let checkpointing = options
            .pragma("cache_size", "-2000")
            .pragma("mmap_size", "0")
            .connect()
            .await?;
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let checkpointer = Checkpointer {
            conn: checkpointing,
            file,
            writer: writer.clone(),
            syncs: database_syncs.clone(),
        };
        Ok(SqliteStore {
            pool,
            writer,
            checkpointer: tokio::spawn(checkpointer.run()),
            database_syncs,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// [`Store::ended_sessions_since`]: none, as SQLite serves one process, whose own logouts
    /// its session cache already knows.
    async fn ended_sessions(&self, _since: Option<i64>) -> Result<EndedSessions, StoreError> {
        Ok(EndedSessions {
            hashes: Vec::new(),
            read_at: crate::domain::now_ms(),
            complete: true,
        })
    }

    /// How many times the background checkpointer has synced the database file (after it
    /// copied pages into it).
    pub fn database_syncs(&self) -> u64 {
        self.database_syncs.load(Ordering::Relaxed)
    }

    /// Stops the background checkpoints (for the preload, which checkpoints the whole WAL away
    /// itself at its end and must not find another checkpoint under way).
    pub(crate) fn stop_checkpoints(&self) {
        self.checkpointer.abort();
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
        "deposit_keys" => plan.has_deposit_keys(),
        "checks" => !plan.checks.is_empty(),
        "forgets" => !plan.forgets.is_empty(),
        "orders" => !plan.orders.is_empty(),
        "sessions" => !plan.new_sessions.is_empty(),
        "touches" => !plan.touches.is_empty(),
        "logouts" => !plan.ended_sessions.is_empty(),
        "transfers" => !plan.transfers.is_empty(),
        "transfer_keys" => plan.has_transfer_keys(),
        "settlements" => !plan.settles.is_empty(),
        "withdrawals" => !plan.withdrawals.is_empty(),
        "withdrawal_keys" => plan.has_withdrawal_keys(),
        "payouts" => !plan.payouts.is_empty(),
        "payout_settlements" => !plan.payout_settles.is_empty(),
        "withdrawal_checks" => !plan.withdrawal_checks.is_empty(),
        "withdrawal_forgets" => !plan.withdrawal_forgets.is_empty(),
        other => unreachable!("sqlite_batch.sql names an unknown kind of change: {other}"),
    }
}

/// The script for `plan`: the statements its kinds of change need, then COMMIT, after BEGIN
/// unless the transaction is already open (after sign-ins, sign-in states and purges). One
/// command either way.
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

/// The batch script's input: each kind's rows, as `sql/sqlite_batch.sql` reads them (by the
/// field names of `batch.rs`).
#[derive(serde::Serialize)]
struct BatchInput<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    deposits: &'a [DepositItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    orders: &'a [OrderItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    sessions: &'a [SessionItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    touches: &'a [TouchItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    logouts: &'a [EndItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    settlements: &'a [SettleItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    checks: &'a [CheckItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    forgets: &'a [ForgetItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    transfers: &'a [TransferItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    withdrawals: &'a [WithdrawalItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    payouts: &'a [PayoutItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    payout_settlements: &'a [PayoutSettleItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    withdrawal_checks: &'a [CheckItem<'a>],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    withdrawal_forgets: &'a [ForgetItem<'a>],
}

impl<'a> BatchInput<'a> {
    fn new(plan: &'a Plan<'a>) -> Self {
        BatchInput {
            deposits: &plan.deposits,
            orders: &plan.orders,
            sessions: &plan.new_sessions,
            touches: &plan.touches,
            logouts: &plan.ended_sessions,
            settlements: &plan.settles,
            checks: &plan.checks,
            forgets: &plan.forgets,
            transfers: &plan.transfers,
            withdrawals: &plan.withdrawals,
            payouts: &plan.payouts,
            payout_settlements: &plan.payout_settles,
            withdrawal_checks: &plan.withdrawal_checks,
            withdrawal_forgets: &plan.withdrawal_forgets,
        }
    }
}

/// Writes `plan` in one transaction and answers what the database decided.
async fn write(conn: &mut SqliteConnection, plan: &mut Plan<'_>) -> Result<Written, StoreError> {
    let one_at_a_time = plan.has_one_at_a_time();
    if one_at_a_time {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        accounts::write(conn, plan).await?;
    }
    let input = serde_json::to_string(&BatchInput::new(plan)).expect("plain data serializes");
    // The same few scripts come back batch after batch, so each stays prepared in the
    // connection's statement cache.
    let script = batch_script(plan, !one_at_a_time);
    /// `(settled, inserted, transferred, withdrawn, paid, balances)`: see the script's end.
    type Answer = (String, String, String, String, String, String);
    let rows: Vec<Answer> = sqlx::query_as(&script)
        .bind(input)
        // All of it: `fetch_one` would stop the script at its first row, before the COMMIT.
        .fetch_all(&mut *conn)
        .await?;
    let (settled, inserted, transferred, withdrawn, paid, balances) = rows
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("the batch answered no row".into()))?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("the batch's answer: {e}"));
    let balances: Vec<(String, i64, i64)> = serde_json::from_str(&balances).map_err(corrupt)?;
    Ok(Written {
        inserted: serde_json::from_str(&inserted).map_err(corrupt)?,
        settled: serde_json::from_str(&settled).map_err(corrupt)?,
        transferred: serde_json::from_str(&transferred).map_err(corrupt)?,
        withdrawn: serde_json::from_str(&withdrawn).map_err(corrupt)?,
        paid: serde_json::from_str(&paid).map_err(corrupt)?,
        balances: balances
            .into_iter()
            .map(|(user, paise, entry)| (user, Balance { paise, entry }))
            .collect(),
    })
}

crate::reads::impl_store!(SqliteStore, sqlite);

impl SqliteStore {
    /// One group commit (the `Store::commit` of this backend).
    async fn write_batch(&self, batch: &Batch) -> Result<Outcomes, StoreError> {
        if batch.fence.is_some() {
            // One process owns a SQLite database (its file lock): no lease to check.
            return Err(StoreError::Corrupt(
                "a fenced batch on SQLite, which one process serves".into(),
            ));
        }
        let mut plan = Plan::new(batch);
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

    /// The checkpointer syncs the database file after it copies pages into it, and does not
    /// sync a file it did not write to.
    #[tokio::test]
    async fn the_checkpointer_syncs_the_database_file_it_copied_pages_into() {
        let (_dir, store) = store().await;
        let syncs = || store.database_syncs();
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let idle = syncs();
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        assert_eq!(syncs(), idle, "an idle database's file was synced again");
        for i in 0..50 {
            store.commit(&Batch::of(account(i))).await.unwrap();
        }
        let mut waited = Duration::ZERO;
        while syncs() == idle {
            assert!(
                waited < Duration::from_secs(2),
                "the database file was not synced within two seconds of 50 commits"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    }

    /// The WAL's length in frames, as the WAL index in shared memory (the `-shm` file) says: its
    /// header's `mxFrame`, a native-endian u32 at byte 16.
    fn wal_frames(db: &std::path::Path) -> u32 {
        let shm = std::fs::read(db.with_extension("db-shm")).unwrap();
        u32::from_ne_bytes(shm[16..20].try_into().unwrap())
    }

    /// While the writer commits without a pause, the WAL starts over every few checkpoints
    /// instead of growing to the writer's backstop of 10,000 pages: the checkpointer copies and
    /// syncs, and the writer's connection then copies the little committed meanwhile, between
    /// two batches.
    #[tokio::test]
    async fn the_wal_starts_over_while_the_writer_commits_without_a_pause() {
        let (dir, store) = store().await;
        let db = dir.path().join("t.db");
        let store = Arc::new(store);
        let committing = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    store.commit(&Batch::of(account(i))).await.unwrap();
                }
            })
        };
        let (mut restarts, mut longest, mut before) = (0, 0, 0);
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let frames = wal_frames(&db);
            if frames < before {
                restarts += 1;
            }
            longest = longest.max(frames);
            before = frames;
        }
        committing.abort();
        assert!(
            longest < 5_000,
            "the WAL grew to {longest} frames in two seconds of commits"
        );
        assert!(
            restarts >= 3,
            "the WAL started over {restarts} times in two seconds of commits (longest: {longest} \
             frames)"
        );
    }

    fn account(i: usize) -> NewAccount {
        NewAccount {
            provider: crate::domain::Provider::Google,
            sub: crate::domain::ProviderSub::parse(&format!("person-{i}")).unwrap(),
            email: format!("person-{i}@example.com"),
            email_verified: true,
            name: format!("Person {i}"),
            picture: String::new(),
            now: 1,
        }
    }

    /// Every statement of the batch script finds its rows through an index: none reads a whole
    /// table, however large it grows.
    #[tokio::test]
    async fn the_batch_script_never_scans_a_table() {
        let (_dir, store) = store().await;
        let mut conn = store.writer.lock().await;
        let statements = batch_statements();
        assert_eq!(statements.len(), 34, "the script's statements");
        for (_, statement) in statements {
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(Box::leak(
                format!("EXPLAIN QUERY PLAN {statement}").into_boxed_str(),
            ));
            query = query.bind("{}");
            let plan = query.fetch_all(&mut *conn).await.unwrap();
            // Tables are named by their alias where they have one: d (deposits), tr
            // (transfers), w (withdrawals), e (ledger entries), a, c, f, p, r (ledger accounts).
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
                        "withdrawals",
                        "pending_withdrawals",
                        "w",
                        "p",
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
        let nothing = Batch::default();
        let empty = Plan::new(&nothing);
        for (kinds, _) in batch_statements() {
            for kind in kinds {
                assert!(!has_kind(&empty, kind), "{kind}");
            }
        }
        let always = batch_statements()
            .iter()
            .filter(|(k, _)| k.is_empty())
            .count();
        assert_eq!(always, 6, "the statements every batch runs");
        let script = batch_script(&empty, true);
        assert_eq!(script.matches(";\n").count(), 1 + always);
        assert!(script.starts_with("BEGIN IMMEDIATE;\n") && script.ends_with("COMMIT"));
        assert!(
            !script.contains("INSERT INTO transfers") && !script.contains("INSERT INTO deposits")
        );

        let batch = Batch::of(crate::SettleDeposit {
            deposit_id: DepositId::new(),
            user_id: crate::domain::UserId::new(),
            amount: Amount::parse(100, i64::MAX).unwrap(),
            outcome: Settlement::Success,
            now: 1,
        });
        let script = batch_script(&Plan::new(&batch), false);
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
        let user = store
            .commit(&Batch::of(NewAccount {
                provider: crate::domain::Provider::Google,
                sub: crate::domain::ProviderSub::parse("s").unwrap(),
                email: "a@example.com".into(),
                email_verified: true,
                name: "A".into(),
                picture: String::new(),
                now: 1,
            }))
            .await
            .unwrap()
            .accounts[0];
        let ids: Vec<DepositId> = (0..3).map(|_| DepositId::new()).collect();
        let mut inserts = Batch::default();
        for (i, id) in ids.iter().enumerate() {
            inserts.add(NewDeposit {
                id: id.clone(),
                user_id: user,
                amount: Amount::parse(100 * (i as i64 + 1), i64::MAX).unwrap(),
                currency: crate::domain::Currency::Inr,
                idempotency_key: None,
                key_cutoff: 0,
                now: 2,
                first_check_at: 3,
            });
        }
        assert_eq!(
            store.commit(&inserts).await.unwrap().deposits,
            vec![DepositInsert::Inserted; 3]
        );
        let settle = |i: usize, outcome| SettleDeposit {
            deposit_id: ids[i].clone(),
            user_id: user,
            amount: Amount::parse(100 * (i as i64 + 1), i64::MAX).unwrap(),
            outcome,
            now: 3,
        };
        let mut batch = Batch::default();
        batch.add(settle(0, Settlement::Success));
        batch.add(settle(1, Settlement::Failure));
        batch.add(settle(0, Settlement::Success));
        batch.add(settle(2, Settlement::Success));
        let outcomes = store.commit(&batch).await.unwrap().settlements;
        use SettleResult::{Applied, NotProcessing};
        let [Applied(Some(first)), Applied(None), NotProcessing, Applied(Some(third))] =
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

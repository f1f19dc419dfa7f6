//! What one group commit costs, per change, straight against the store (no HTTP, no actors):
//! batches of credits (settled deposits to random users), of transfers between random users, of
//! new deposits (the commit before create-order) and of new withdrawals (the commit before
//! create-payout), on a database of 10,000 funded users. `cargo bench -p onramp-store --bench commit_batch`
//! runs SQLite; with `BENCH_POSTGRES=1` also a throwaway PostgreSQL cluster (as the tests
//! start one). `BENCH_BATCH` (default 16) is the changes per commit, `BENCH_BATCHES` (300) the
//! commits per kind, and `BENCH_SQL` a script (statements `;`-separated, run on one connection) run
//! on the database before the measured commits, to try a change of schema
//! (`BENCH_SQL="DROP INDEX transfers_to"`).
//! `BENCH_ACTIVE` (default all 10,000) keeps the credits and transfers to the first that many
//! users, so that a batch's changes share pages (the database still holds every user).
//! Each kind runs twice, alternating, after a warm-up; the figures are printed, nothing is
//! asserted but the audit of the books at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{account, deposit, settle, transfer};
use onramp_store::domain::{now_ms, DepositId, Settlement, UserId};
use onramp_store::{self as store, Batch, Outcomes, Store};
use onramp_test_support::Backend;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const FUNDS: i64 = 1_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn commit(store: &Arc<dyn Store>, batch: &Batch) -> Outcomes {
    store.commit(batch).await.expect("commit")
}

/// Commits a deposit of `paise` (with a key of its own) for each of `users`, and answers the
/// settlements that would credit them, to be committed later.
async fn deposits(store: &Arc<dyn Store>, users: &[UserId], paise: i64) -> Batch {
    let ids: Vec<DepositId> = users.iter().map(|_| DepositId::new()).collect();
    let key = || uuid::Uuid::new_v4().to_string();
    let mut inserts = Batch::default();
    for (id, u) in ids.iter().zip(users) {
        inserts.add(deposit(id, *u, paise, Some(&key()), now_ms()));
    }
    commit(store, &inserts).await;
    let mut settlements = Batch::default();
    for (id, u) in ids.iter().zip(users) {
        settlements.add(settle(id, *u, paise, Settlement::Success));
    }
    settlements
}

/// 10,000 users, each credited `FUNDS`.
async fn users(store: &Arc<dyn Store>) -> Vec<UserId> {
    let mut users = Vec::with_capacity(USERS);
    for chunk in 0..USERS / 500 {
        let mut sign_ins = Batch::default();
        for i in 0..500 {
            let sub = format!("bench-{}", chunk * 500 + i);
            sign_ins.add(account(&sub, &sub));
        }
        users.extend(commit(store, &sign_ins).await.accounts);
    }
    for chunk in users.chunks(500) {
        let settlements = deposits(store, chunk, FUNDS).await;
        commit(store, &settlements).await;
    }
    users
}

/// The CPU time this process has used (all its threads, SQLite's worker included), from
/// `/proc/self/stat`: on a shared host it varies less than the wall clock.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; ticks of
    // 1/100 s on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

struct Figures {
    cpu: Duration,
    commits: usize,
    changes: usize,
    spent: Duration,
    worst: Duration,
}

impl Figures {
    fn print(&self, what: &str, backend: &str) {
        let per_commit = self.spent.as_secs_f64() * 1e3 / self.commits as f64;
        let per_change = self.spent.as_secs_f64() * 1e6 / self.changes as f64;
        let cpu = self.cpu.as_secs_f64() * 1e6 / self.changes as f64;
        println!(
            "{backend:<10} {what:<10} {:>5} commits of {:>3}: {per_commit:>7.3} ms per commit, \
             {per_change:>6.1} µs per change ({cpu:>5.1} µs of CPU in this process), \
             {:>6.0} changes/s, worst commit {:.2} ms",
            self.commits,
            self.changes / self.commits,
            self.changes as f64 / self.spent.as_secs_f64(),
            self.worst.as_secs_f64() * 1e3,
        );
    }
}

async fn timed(store: &Arc<dyn Store>, batches: Vec<Batch>) -> Figures {
    let mut figures = Figures {
        cpu: Duration::ZERO,
        commits: 0,
        changes: 0,
        spent: Duration::ZERO,
        worst: Duration::ZERO,
    };
    let cpu = cpu_time();
    for batch in batches {
        let start = Instant::now();
        commit(store, &batch).await;
        let took = start.elapsed();
        figures.commits += 1;
        figures.changes += batch.len();
        figures.spent += took;
        figures.worst = figures.worst.max(took);
    }
    figures.cpu = cpu_time() - cpu;
    figures
}

async fn credits(
    store: &Arc<dyn Store>,
    users: &[UserId],
    rng: &mut StdRng,
    batch: usize,
    batches: usize,
) -> Figures {
    // The deposits are made first, untimed: only their settlement is the credit path.
    let mut pending = Vec::new();
    for _ in 0..batches {
        let some: Vec<UserId> = (0..batch)
            .map(|_| users[rng.gen_range(0..users.len())])
            .collect();
        pending.push(deposits(store, &some, 100).await);
    }
    timed(store, pending).await
}

async fn transfers(
    store: &Arc<dyn Store>,
    users: &[UserId],
    rng: &mut StdRng,
    batch: usize,
    batches: usize,
) -> Figures {
    let batches = (0..batches)
        .map(|_| {
            let mut transfers = Batch::default();
            for _ in 0..batch {
                let from = rng.gen_range(0..users.len());
                let to = (from + rng.gen_range(1..users.len())) % users.len();
                let key = uuid::Uuid::new_v4().to_string();
                let amount = rng.gen_range(1..100);
                transfers.add(transfer(
                    users[from],
                    users[to],
                    amount,
                    Some(&key),
                    now_ms(),
                ));
            }
            transfers
        })
        .collect();
    timed(store, batches).await
}

/// New deposits with keys, as `POST /api/deposit` records them before asking the bank.
async fn new_deposits(
    store: &Arc<dyn Store>,
    users: &[UserId],
    rng: &mut StdRng,
    batch: usize,
    batches: usize,
) -> Figures {
    let batches = (0..batches)
        .map(|_| {
            let mut inserts = Batch::default();
            for _ in 0..batch {
                let user = users[rng.gen_range(0..users.len())];
                let key = uuid::Uuid::new_v4().to_string();
                inserts.add(deposit(&DepositId::new(), user, 100, Some(&key), now_ms()));
            }
            inserts
        })
        .collect();
    timed(store, batches).await
}

/// New withdrawals with keys, as `POST /api/withdrawals` commits them before asking the bank.
async fn withdrawals(
    store: &Arc<dyn Store>,
    users: &[UserId],
    rng: &mut StdRng,
    batch: usize,
    batches: usize,
) -> Figures {
    let batches = (0..batches)
        .map(|_| {
            let mut inserts = Batch::default();
            for _ in 0..batch {
                let now = now_ms();
                inserts.add(store::NewWithdrawal {
                    id: onramp_store::domain::WithdrawalId::new(),
                    user_id: users[rng.gen_range(0..users.len())],
                    amount: common::paise(rng.gen_range(1..100)),
                    currency: onramp_store::domain::Currency::Inr,
                    idempotency_key: Some(uuid::Uuid::new_v4().to_string()),
                    key_cutoff: now - 86_400_000,
                    now,
                    first_check_at: now + 60_000,
                });
            }
            inserts
        })
        .collect();
    timed(store, batches).await
}

async fn run(backend: Backend, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let store = store::connect(&url, 4).await.unwrap();
    let users = users(&store).await;
    // An experiment's change to the schema, e.g. `BENCH_SQL="DROP INDEX transfers_to"`, as one
    // script on one connection: sent a statement at a time over the pool, a table rebuilt
    // (create, copy, drop, rename) was still there at the rename.
    if let Ok(sql) = std::env::var("BENCH_SQL") {
        let db = onramp_test_support::TestDb::connect(&url).await;
        db.execute_script(&sql).await.expect("BENCH_SQL");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let batch = env("BENCH_BATCH", 16);
    let batches = env("BENCH_BATCHES", 300);
    let users = &users[..env("BENCH_ACTIVE", USERS).clamp(2, USERS)];
    // A warm-up round of each, then the measured ones, alternating.
    credits(&store, users, &mut rng, batch, batches / 4).await;
    transfers(&store, users, &mut rng, batch, batches / 4).await;
    new_deposits(&store, users, &mut rng, batch, batches / 4).await;
    withdrawals(&store, users, &mut rng, batch, batches / 4).await;
    for _ in 0..2 {
        credits(&store, users, &mut rng, batch, batches)
            .await
            .print("credits", name);
        transfers(&store, users, &mut rng, batch, batches)
            .await
            .print("transfers", name);
        new_deposits(&store, users, &mut rng, batch, batches)
            .await
            .print("deposits", name);
        withdrawals(&store, users, &mut rng, batch, batches)
            .await
            .print("withdrawals", name);
    }
    let report = store.audit().await.unwrap();
    assert!(report.problems.is_empty(), "audit: {:?}", report.problems);
}

#[tokio::main]
async fn main() {
    run(Backend::Sqlite, "sqlite").await;
    if std::env::var("BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        run(Backend::Postgres, "postgres").await;
    }
}

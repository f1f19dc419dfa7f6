//! Credits per second through the wallet actors and the DB writer alone (no HTTP): N processing
//! deposits are settled by concurrent `Wallets::settle` calls, either all to one hot wallet or
//! spread over many; then the books are checked.
//!
//! `cargo bench -p onramp-actors --bench group_commit` (SQLite in a temp dir);
//! `DATABASE_URL=postgres://… cargo bench -p onramp-actors --bench group_commit` for PostgreSQL
//! (an empty database). `DEPOSITS=n`, `USERS=n`, `CONCURRENCY=n` change the shape.

use futures_util::stream::{self, StreamExt};
use onramp_actors::domain::{
    now_ms, Amount, DepositId, DepositStatus, ProviderSub, Settlement, UserId,
};
use onramp_actors::store::{self, OpOutcome, WriteOp};
use onramp_actors::wallet::{SettleRequest, Wallets};
use onramp_actors::writer::DbWriter;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let deposits = env("DEPOSITS", 20_000);
    let concurrency = env("CONCURRENCY", 64);
    let system = actix::System::new();
    system.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
        for users in [1, env("USERS", 10_000).min(deposits)] {
            let store = store::connect(&url, 8).await.unwrap();
            let writer = DbWriter::start(store.clone(), 1024);
            // Users, then processing deposits, written in large batches.
            let mut user_ids = Vec::with_capacity(users);
            for chunk in (0..users).collect::<Vec<_>>().chunks(1000) {
                let ops: Vec<WriteOp> = chunk
                    .iter()
                    .map(|i| WriteOp::UpsertAccount {
                        provider: "bench".into(),
                        sub: ProviderSub::parse(&format!("{}-{i}", uuid::Uuid::new_v4())).unwrap(),
                        email: format!("u{i}@example.com"),
                        name: "Bench".into(),
                        picture: String::new(),
                        now: now_ms(),
                    })
                    .collect();
                for o in store.commit_batch(&ops).await.unwrap() {
                    if let OpOutcome::User(id) = o {
                        user_ids.push(id);
                    }
                }
            }
            let mut requests = Vec::with_capacity(deposits);
            let mut ops = Vec::new();
            for i in 0..deposits {
                let user: UserId = user_ids[i % users];
                let id = DepositId::new();
                let amount = Amount::parse(100 + (i as i64 % 900), i64::MAX).unwrap();
                ops.push(WriteOp::InsertDeposit {
                    id: id.clone(),
                    user_id: user,
                    amount,
                    idempotency_key: None,
                    key_cutoff: 0,
                    now: now_ms(),
                });
                requests.push(SettleRequest {
                    deposit_id: id,
                    user_id: user,
                    amount,
                    stored_status: DepositStatus::Processing,
                    outcome: Settlement::Success,
                });
                if ops.len() == 1000 {
                    store.commit_batch(&ops).await.unwrap();
                    ops.clear();
                }
            }
            store.commit_batch(&ops).await.unwrap();
            let expected: i64 = requests.iter().map(|r| r.amount.paise()).sum();

            let wallets = Wallets::new(store.clone(), writer, Duration::from_secs(600), 2);
            let started = Instant::now();
            let results: Vec<_> = stream::iter(requests)
                .map(|r| {
                    let w = wallets.clone();
                    async move { w.settle(r).await }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let took = started.elapsed();
            assert!(results.iter().all(|r| r.is_ok()), "every settlement commits");
            let mut total = 0;
            for u in &user_ids {
                total += wallets.balance(*u).await.unwrap();
            }
            assert_eq!(total, expected, "balances equal the sum of the credits");
            println!(
                "{} | {users:>5} wallet(s) | {deposits} credits at concurrency {concurrency} in {:.2} s: {:.0} credits/s",
                if url.starts_with("sqlite") { "sqlite  " } else { "postgres" },
                took.as_secs_f64(),
                deposits as f64 / took.as_secs_f64()
            );
        }
    });
}

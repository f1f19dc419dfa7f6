//! Credits per second through the DB writer's storage and through the wallet actors (no HTTP):
//! N processing deposits are settled either all to one hot wallet or spread over many, first
//! by committing batches of settlements straight to the store (the writer's cost alone), then
//! by concurrent `Wallets::settle` calls (actors, group commit); then the books are checked.
//!
//! `cargo bench -p onramp-actors --bench group_commit` (SQLite in a temp dir);
//! `DATABASE_URL=postgres://… cargo bench -p onramp-actors --bench group_commit` for PostgreSQL
//! (an empty database). `DEPOSITS=n`, `USERS=n`, `CONCURRENCY=n`, `BATCH=n` change the shape.

use futures_util::stream::{self, StreamExt};
use onramp_actors::wallet::{SettleRequest, Settling, Wallets};
use onramp_actors::writer::DbWriter;
use onramp_store::domain::{
    now_ms, Amount, DepositId, DepositStatus, ProviderSub, Settlement, UserId,
};
use onramp_store::{self as store, Batch, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create_users(store: &Arc<dyn Store>, users: usize) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(1000) {
        let mut sign_ins = Batch::default();
        for i in chunk {
            sign_ins.add(store::NewAccount {
                provider: onramp_store::domain::Provider::Google,
                sub: ProviderSub::parse(&format!("{}-{i}", uuid::Uuid::new_v4())).unwrap(),
                email: format!("u{i}@example.com"),
                email_verified: true,
                name: "Bench".into(),
                picture: String::new(),
                now: now_ms(),
            });
        }
        ids.extend(store.commit(&sign_ins).await.unwrap().accounts);
    }
    ids
}

/// `deposits` processing deposits, round-robin over `users`, and the settlements that credit them.
async fn create_deposits(
    store: &Arc<dyn Store>,
    users: &[UserId],
    deposits: usize,
) -> Vec<SettleRequest> {
    let mut requests = Vec::with_capacity(deposits);
    let mut ops = Batch::default();
    for i in 0..deposits {
        let user = users[i % users.len()];
        let id = DepositId::new();
        let amount = Amount::parse(100 + (i as i64 % 900), i64::MAX).unwrap();
        ops.add(store::NewDeposit {
            id: id.clone(),
            user_id: user,
            amount,
            currency: onramp_store::domain::Currency::Inr,
            idempotency_key: None,
            key_cutoff: 0,
            now: now_ms(),
            first_check_at: now_ms() + 60_000,
        });
        requests.push(SettleRequest {
            target: Settling::Deposit(id.clone()),
            user_id: user,
            amount,
            stored_status: DepositStatus::Processing,
            outcome: Settlement::Success,
        });
        if ops.len() == 1000 {
            store.commit(&std::mem::take(&mut ops)).await.unwrap();
        }
    }
    store.commit(&ops).await.unwrap();
    requests
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let deposits = env("DEPOSITS", 20_000);
    let concurrency = env("CONCURRENCY", 64);
    let batch = env("BATCH", 32);
    let system = actix::System::new();
    system.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
        let db = if url.starts_with("sqlite") {
            "sqlite  "
        } else {
            "postgres"
        };
        for users in [1, env("USERS", 10_000).min(deposits)] {
            let store = store::connect(&url, 8).await.unwrap();
            let user_ids = create_users(&store, users).await;

            // The store alone: batches of `batch` settlements, one commit after the other.
            let requests = create_deposits(&store, &user_ids, deposits).await;
            let ops: Vec<store::SettleDeposit> = requests
                .iter()
                .map(|r| store::SettleDeposit {
                    deposit_id: match &r.target {
                        Settling::Deposit(id) => id.clone(),
                        _ => unreachable!("the bench settles deposits"),
                    },
                    user_id: r.user_id,
                    amount: r.amount,
                    outcome: r.outcome,
                    now: now_ms(),
                })
                .collect();
            let started = Instant::now();
            for chunk in ops.chunks(batch) {
                let settlements = Batch {
                    settlements: chunk.to_vec(),
                    ..Batch::default()
                };
                let outcomes = store.commit(&settlements).await.unwrap();
                assert!(outcomes
                    .settlements
                    .iter()
                    .all(|o| matches!(o, store::SettleResult::Applied(Some(_)))));
            }
            let took = started.elapsed();
            println!(
                "{db} | {users:>5} wallet(s) | store alone    | {deposits} credits in batches of {batch}: {:.0} credits/s, {:.2} ms per commit",
                deposits as f64 / took.as_secs_f64(),
                took.as_secs_f64() * 1000.0 / ops.len().div_ceil(batch) as f64
            );

            // Wallet actors and the DB writer, `concurrency` settlements at a time.
            let requests = create_deposits(&store, &user_ids, deposits).await;
            let expected: i64 = 2 * requests.iter().map(|r| r.amount.paise()).sum::<i64>();
            let writer = DbWriter::start(store.clone(), 1024);
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
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                panic!("a settlement failed: {e}");
            }
            let mut total = 0;
            for u in &user_ids {
                total += wallets.balance(*u).await.unwrap();
            }
            assert_eq!(total, expected, "balances equal the sum of the credits");
            println!(
                "{db} | {users:>5} wallet(s) | wallet actors  | {deposits} credits at concurrency {concurrency}: {:.0} credits/s",
                deposits as f64 / took.as_secs_f64()
            );
        }
    });
}

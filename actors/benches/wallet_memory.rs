//! Resident memory per idle wallet actor: starts N wallet actors through the real registry
//! (each loads its balance from a real SQLite database) and reads VmRSS before and after.
//!
//! `cargo bench -p onramp-actors --bench wallet_memory` (N = 100000; `WALLETS=n` to change).

use onramp_actors::wallet::Wallets;
use onramp_actors::writer::DbWriter;
use onramp_store as store;
use onramp_store::domain::UserId;
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("WALLETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let system = actix::System::new();
    system.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/wallets.db", dir.path().display());
        let store = store::connect(&url, 4).await.unwrap();
        let writer = DbWriter::start(store.clone(), 1024);
        let wallets = Wallets::new(store, writer, Duration::from_secs(3600), 2);
        let users: Vec<UserId> = (0..n).map(|_| UserId::new()).collect();
        // Warm up the allocator, the pool and the arbiters with a few actors first.
        for u in users.iter().take(100) {
            wallets.balance(*u).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        let started = Instant::now();
        for chunk in users[100..].chunks(1000) {
            futures_util::future::join_all(chunk.iter().map(|u| wallets.balance(*u))).await;
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        let alive = wallets.alive();
        let per = (after.saturating_sub(before) as f64 * 1024.0) / (n - 100) as f64;
        println!("wallet actors alive: {alive}");
        println!(
            "started {} actors in {:.2} s ({:.0}/s)",
            n - 100,
            took.as_secs_f64(),
            (n - 100) as f64 / took.as_secs_f64()
        );
        println!("resident memory: {before} KiB before, {after} KiB after");
        println!(
            "per idle wallet actor: {per:.0} bytes ({:.2} KiB)",
            per / 1024.0
        );
        assert_eq!(alive, n, "every wallet actor is alive");
    });
}

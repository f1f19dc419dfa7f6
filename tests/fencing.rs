//! The fence of the DB writer's commits, against a real PostgreSQL shared by two "processes"
//! (two lease holders): a change made under a lease that another process has since taken
//! writes nothing and is answered `Fenced`, while the changes of its batch made under leases
//! still held commit.

use onramp_actors::ownership::Lease;
use onramp_actors::writer::{DbWriter, WriteError};
use onramp_store::cluster::Leases;
use onramp_store::domain::{Provider, ProviderSub};
use onramp_store::NewAccount;
use onramp_test_support::{Backend, TestDb};
use std::time::Duration;

fn account(sub: &str) -> NewAccount {
    NewAccount {
        provider: Provider::Google,
        sub: ProviderSub::parse(sub).unwrap(),
        email: format!("{sub}@example.com"),
        email_verified: true,
        name: sub.into(),
        picture: String::new(),
        now: 1,
    }
}

/// A fresh database (migrated by opening its store) and two processes' lease calls on it.
struct TwoProcesses {
    url: String,
    store: std::sync::Arc<dyn onramp_store::Store>,
    a: Leases,
    b: Leases,
    _dir: tempfile::TempDir,
}

async fn two_processes() -> TwoProcesses {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Postgres.fresh_database(dir.path()).await;
    let store = onramp_store::connect(&url, 4).await.unwrap();
    TwoProcesses {
        a: Leases::connect(&url).await.unwrap(),
        b: Leases::connect(&url).await.unwrap(),
        url,
        store,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_change_under_a_lease_taken_over_writes_nothing_and_its_neighbours_commit() {
    let TwoProcesses {
        url, store, a, b, ..
    } = two_processes().await;
    // Process ids are UUIDs, made new at every start.
    let (node_a, node_b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let short = Duration::from_millis(500);
    let taken = a.take(&node_a, "http://a", 2, None, short).await.unwrap();
    assert_eq!(taken.len(), 2);
    let lease = |(shard, epoch): (i32, i64)| Lease {
        node: node_a.as_str().into(),
        shard,
        epoch,
    };
    let (kept, lost) = (lease(taken[0]), lease(taken[1]));
    let writer = DbWriter::start(store, 64);

    // While A holds both, both commit.
    writer
        .commit_under(account("before"), Some(lost.clone()))
        .await
        .unwrap();
    // A falls silent past its lease, and B takes one of the two shards.
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let by_b = b
        .take(&node_b, "http://b", 1, Some(lost.shard), short)
        .await
        .unwrap();
    assert_eq!(by_b, vec![(lost.shard, lost.epoch + 1)]);

    // A's two changes, in one group commit: the one under the lost lease is refused, the
    // other (nobody took its shard) commits.
    let (on_kept, on_lost) = tokio::join!(
        writer.commit_under(account("kept"), Some(kept)),
        writer.commit_under(account("lost"), Some(lost)),
    );
    on_kept.expect("the change under a lease still held commits");
    assert!(matches!(on_lost, Err(WriteError::Fenced)), "{on_lost:?}");
    let db = TestDb::connect(&url).await;
    let subs = db
        .strings("SELECT sub FROM auth_accounts ORDER BY sub")
        .await;
    assert_eq!(subs, ["before", "kept"]);
    db.close().await;
}

/// A takeover waits for the commits under way on the shard: while one holds the shard's lock
/// (as every fenced commit does from its fence to its COMMIT), the shard is not taken, even with
/// its lease run out; once that commit ends, it is.
#[tokio::test]
async fn a_shard_is_not_taken_while_a_commit_under_its_lease_is_under_way() {
    use sqlx::Connection;
    let TwoProcesses { url, a, b, .. } = two_processes().await;
    let short = Duration::from_millis(300);
    let taken = a.take("a", "http://a", 1, None, short).await.unwrap();
    let shard = taken[0].0;
    tokio::time::sleep(short + Duration::from_millis(200)).await;

    // A's commit under way: the lock its fence takes, held until its transaction ends.
    let mut commit = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = commit.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared(28527, $1)")
        .bind(shard)
        .execute(&mut *tx)
        .await
        .unwrap();
    let during = b
        .take("b", "http://b", 1, Some(shard), short)
        .await
        .unwrap();
    assert!(during.is_empty(), "taken during a commit: {during:?}");
    tx.commit().await.unwrap();
    let after = b
        .take("b", "http://b", 1, Some(shard), short)
        .await
        .unwrap();
    assert_eq!(after, vec![(shard, taken[0].1 + 1)]);
}

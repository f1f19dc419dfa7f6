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

/// Waits up to `limit` for `done`, checking every 20 ms.
async fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// A process whose liveness connection breaks (PostgreSQL restarted, a proxy closed it) is
/// counted dead by the others at once, and they may take its shards long before its leases run
/// out. It stops serving them at its next tick, not at its next renewal a quarter lease later:
/// until then its actors would answer balances that miss what the new owner commits. Once it
/// holds its liveness lock again, it serves the shards it still has.
#[tokio::test]
async fn a_process_that_lost_its_liveness_lock_stops_serving_its_shards_at_its_next_tick() {
    use onramp_actors::ownership::{ClusterConfig, Ownership};
    use onramp_store::domain::UserId;
    let TwoProcesses { url, a, b, .. } = two_processes().await;
    // Renewals every 30 s, trust for 90 s: far beyond what this test waits.
    let lease = Duration::from_secs(120);
    let config = |name: &str| ClusterConfig {
        node: uuid::Uuid::new_v4().to_string(),
        url: format!("http://{name}"),
        lease,
    };
    let (config_a, config_b) = (config("a"), config("b"));
    let node_a = config_a.node.clone();
    let a = Ownership::cluster(config_a, a);
    tokio::spawn(a.clone().run());
    assert!(
        within(Duration::from_secs(10), || a.held() == 64).await,
        "A took every shard"
    );
    let b = Ownership::cluster(config_b, b);
    tokio::spawn(b.clone().run());

    // No new connection for a while, and A's liveness connection cut: to B, A is dead.
    let mut books = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (lock_key,): (i32,) =
        sqlx::query_as("SELECT owner_lock FROM cluster_shards WHERE owner = $1 LIMIT 1")
            .bind(&node_a)
            .fetch_one(&mut books)
            .await
            .unwrap();
    let (server, db) = url.rsplit_once('/').unwrap();
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    let allow = |yes: bool| format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {yes}");
    sqlx::query(&allow(false)).execute(&admin).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks AS l \
         WHERE l.locktype = 'advisory' AND l.classid = 28526 AND l.objsubid = 2 \
           AND l.objid = $1::oid",
    )
    .bind(lock_key)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, vec![(true,)], "A's liveness connection");
    assert!(
        within(Duration::from_secs(5), || b.held() > 0).await,
        "B took shards of the dead-looking A"
    );
    let taken = std::iter::repeat_with(UserId::new)
        .find(|u| b.serves(*u))
        .unwrap();
    assert!(
        within(Duration::from_secs(2), || !a.serves(taken)).await,
        "A still serves a wallet whose shard B took"
    );

    // Connections allowed again: A holds its liveness lock again and renews what is still
    // its own. Every wallet is served again, and by one process only.
    sqlx::query(&allow(true)).execute(&admin).await.unwrap();
    let people: Vec<UserId> = std::iter::repeat_with(UserId::new).take(64).collect();
    assert!(
        within(Duration::from_secs(5), || people
            .iter()
            .all(|u| a.serves(*u) || b.serves(*u)))
        .await,
        "a wallet nobody serves once A is back"
    );
    for u in &people {
        assert!(!(a.serves(*u) && b.serves(*u)), "{u} served by both");
    }
}

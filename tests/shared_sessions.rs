//! Sessions shared by several processes through one PostgreSQL: two session managers on one
//! database stand in for two processes. Each serves a session in use from its own memory, a
//! logout on one is refused by the other within a second, and a session in use on one is not
//! ended by the other, whose copy of it only looks idle.

use onramp_actors::sessions::{SessionConfig, Sessions};
use onramp_actors::writer::DbWriter;
use onramp_store::domain::{Provider, ProviderSub, UserId};
use onramp_store::NewAccount;
use onramp_test_support::Backend;
use std::time::{Duration, Instant};

/// What the app gives a process of a service (`src/startup.rs`).
const RECHECK: Duration = Duration::from_millis(500);

struct TwoProcesses {
    a: Sessions,
    b: Sessions,
    user: UserId,
    _dir: tempfile::TempDir,
}

async fn two_processes(idle: Duration) -> TwoProcesses {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Postgres.fresh_database(dir.path()).await;
    let mut two = two_processes_on(&url, idle).await;
    two._dir = dir;
    two
}

async fn two_processes_on(url: &str, idle: Duration) -> TwoProcesses {
    let store = onramp_store::connect(url, 4).await.unwrap();
    let writer = DbWriter::start(store.clone(), 64);
    let config = || {
        let mut c = SessionConfig::new(Duration::from_secs(3600), idle);
        c.recheck_after = Some(RECHECK);
        c
    };
    let user = writer
        .commit(NewAccount {
            provider: Provider::Google,
            sub: ProviderSub::parse("shared").unwrap(),
            email: "shared@example.com".into(),
            email_verified: true,
            name: "Shared".into(),
            picture: String::new(),
            now: 1,
        })
        .await
        .unwrap();
    TwoProcesses {
        a: Sessions::start(store.clone(), writer.clone(), config()),
        b: Sessions::start(store, writer, config()),
        user,
        _dir: tempfile::tempdir().unwrap(),
    }
}

#[actix_web::test]
async fn a_logout_on_one_process_reaches_the_other_within_a_second_without_a_read_per_use() {
    let TwoProcesses { a, b, user, .. } = two_processes(Duration::from_secs(3600)).await;
    let token = a.create(user).await.unwrap();

    // B serves the session for a second and a half, well past the recheck interval: it read
    // it from the database once, at its first use, and then kept it, because it keeps reading
    // the service's logouts instead.
    for _ in 0..75 {
        assert_eq!(b.lookup(&token).await.unwrap(), Some(user));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.reads(), 1, "one read from the database, at the first use");

    a.revoke(&token).await.unwrap();
    let logged_out = Instant::now();
    while b.lookup(&token).await.unwrap().is_some() {
        assert!(
            logged_out.elapsed() < Duration::from_secs(1),
            "the other process still accepts the session a second after its logout"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "refused by the other process after {:?}",
        logged_out.elapsed()
    );
    assert_eq!(a.lookup(&token).await.unwrap(), None);
}

#[actix_web::test]
async fn a_session_in_use_on_one_process_is_not_ended_by_the_other_whose_copy_looks_idle() {
    // Idle after 2 s: a session in use is renewed in the database every 100 ms.
    let TwoProcesses { a, b, user, .. } = two_processes(Duration::from_secs(2)).await;
    let token = a.create(user).await.unwrap();
    assert_eq!(b.lookup(&token).await.unwrap(), Some(user));

    // The person goes on through A alone for three seconds; B's copy of the session was last
    // seen then, and looks idle.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(a.lookup(&token).await.unwrap(), Some(user));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.lookup(&token).await.unwrap(),
        Some(user),
        "B read the session again instead of ending it"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.lookup(&token).await.unwrap(),
        Some(user),
        "and nothing ended it meanwhile"
    );
}

/// During a rolling upgrade a process of an earlier release deletes a session at its logout
/// without listing it for the others: while such a process lives, the others read each cached
/// session again at its use, as before the list existed.
#[actix_web::test]
async fn while_a_process_that_does_not_list_its_logouts_lives_sessions_are_read_at_each_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Postgres.fresh_database(dir.path()).await;
    let db = onramp_test_support::TestDb::connect(&url).await;
    let TwoProcesses { a, b, user, .. } = two_processes_on(&url, Duration::from_secs(3600)).await;
    db.execute(
        "INSERT INTO cluster_nodes (node, url, lock_key, expires_at) \
         VALUES ('an-older-release', 'http://old', 7, now() + interval '1 hour')",
    )
    .await
    .unwrap();
    let token = a.create(user).await.unwrap();
    for _ in 0..75 {
        assert_eq!(b.lookup(&token).await.unwrap(), Some(user));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.reads() >= 3, "read again at its use: {} reads", b.reads());
    db.close().await;
}

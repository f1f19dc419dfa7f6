//! Logout holds even when its database write fails: the session stays refused until the delete
//! is committed, however long that takes, and the sweep commits it once the database heals.
//! A real SQLite database, with a trigger that refuses deletes standing in for the fault.

use onramp_actors::sessions::{SessionConfig, Sessions};
use onramp_actors::writer::DbWriter;
use onramp_store::domain::{Provider, ProviderSub};
use onramp_store::{NewAccount, SqliteStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// A person signed up with Google as `sub`, their email `<sub>@example.com`.
async fn person(writer: &DbWriter, sub: &str) -> onramp_store::domain::UserId {
    writer
        .commit(NewAccount {
            provider: Provider::Google,
            sub: ProviderSub::parse(sub).unwrap(),
            email: format!("{sub}@example.com"),
            email_verified: true,
            name: sub.to_owned(),
            picture: String::new(),
            now: 1,
        })
        .await
        .unwrap()
}

#[actix::test]
async fn a_logout_whose_delete_failed_stays_refused_until_the_delete_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let sqlite = Arc::new(SqliteStore::connect(&url, 2).await.unwrap());
    let pool = sqlite.pool().clone();
    let store: Arc<dyn Store> = sqlite;
    let writer = DbWriter::start(store.clone(), 16);
    let mut config = SessionConfig::new(Duration::from_secs(3600), Duration::from_secs(3600));
    config.sweep_every = Duration::from_millis(50);
    config.revoked_ttl = Duration::from_millis(100);
    let sessions = Sessions::start(store.clone(), writer.clone(), config);
    let user = person(&writer, "logout").await;
    let token = sessions.create(user).await.unwrap();
    assert_eq!(sessions.lookup(&token).await.unwrap(), Some(user));

    sqlx::query(
        "CREATE TRIGGER refuse_logout BEFORE DELETE ON sessions \
         BEGIN SELECT RAISE(ABORT, 'the disk is failing'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        sessions.revoke(&token).await.is_err(),
        "the logout is not durable"
    );
    // Many sweeps and marker lifetimes later, the row is still there and still refused.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        store.session(&token.hash()).await.unwrap().is_some(),
        "the row was not deleted"
    );
    assert_eq!(
        sessions.lookup(&token).await.unwrap(),
        None,
        "and yet refused"
    );

    sqlx::query("DROP TRIGGER refuse_logout")
        .execute(&pool)
        .await
        .unwrap();
    let mut waited = Duration::ZERO;
    while store.session(&token.hash()).await.unwrap().is_some() {
        assert!(
            waited < Duration::from_secs(5),
            "the sweep never committed the logout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sessions.lookup(&token).await.unwrap(),
        None,
        "gone for good"
    );
}

/// Past `cache.sessions`, sessions still work: they are read from the database at each
/// use instead of kept, and a logout of one of them is refused as any other.
#[actix::test]
async fn sessions_past_the_cache_capacity_are_read_from_the_database_and_still_log_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url, 2).await.unwrap());
    let writer = DbWriter::start(store.clone(), 16);
    let mut config = SessionConfig::new(Duration::from_secs(3600), Duration::from_secs(3600));
    config.capacity = 3;
    let sessions = Sessions::start(store.clone(), writer.clone(), config);
    let mut people = Vec::new();
    for i in 0..10 {
        let user = person(&writer, &format!("many-{i}")).await;
        people.push((user, sessions.create(user).await.unwrap()));
    }
    for _ in 0..2 {
        for (user, token) in &people {
            assert_eq!(sessions.lookup(token).await.unwrap(), Some(*user));
        }
    }
    assert_eq!(sessions.cached(), 3, "no more than the capacity is kept");

    let (_, last) = people.last().unwrap();
    sessions.revoke(last).await.unwrap();
    assert_eq!(sessions.lookup(last).await.unwrap(), None, "logged out");
    assert!(store.session(&last.hash()).await.unwrap().is_none());
    for (user, token) in &people[..9] {
        assert_eq!(sessions.lookup(token).await.unwrap(), Some(*user));
    }
}

/// A full cache does not keep sessions nobody uses: the sweep drops those untouched for twice
/// the touch interval (a twentieth of `session.idle_secs`), so the sessions in use get kept.
#[actix::test]
async fn a_full_cache_makes_room_for_the_sessions_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url, 2).await.unwrap());
    let writer = DbWriter::start(store.clone(), 16);
    // Idle after 20 s: a session in use is touched every second.
    let mut config = SessionConfig::new(Duration::from_secs(3600), Duration::from_secs(20));
    config.capacity = 3;
    config.sweep_every = Duration::from_millis(50);
    let sessions = Sessions::start(store.clone(), writer.clone(), config);
    let mut tokens = Vec::new();
    for i in 0..6 {
        let user = person(&writer, &format!("room-{i}")).await;
        tokens.push((user, sessions.create(user).await.unwrap()));
    }
    assert_eq!(
        sessions.cached(),
        3,
        "the first three, kept as they were made"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        sessions.cached(),
        0,
        "unused for over two seconds, and the cache was full"
    );
    for (user, token) in &tokens[3..] {
        assert_eq!(sessions.lookup(token).await.unwrap(), Some(*user));
    }
    assert_eq!(sessions.cached(), 3, "the sessions in use are kept now");
}

//! Grown books: `onramp-load preload` fills an empty database of either kind with books the
//! audit passes, the app serves them (a preloaded session reads its balance, the deep user's
//! history walks to its end newest first, preloaded people pay each other and the audit still
//! passes), and a second preload is refused without a change.

use onramp_load::grown::{use_sessions, walk, HistoryArgs, SessionsArgs};
use onramp_load::preloaded_transfers::{send, PreloadedTransfersArgs};
use onramp_store::preload::{preload, session_token, PreloadError, Sizes};
use onramp_test_support::{app, test_settings, Backend, TestDb};

const SEED: &str = "the seed of this test's tokens";

const SIZES: Sizes = Sizes {
    users: 50,
    deposits: 700,
    transfers: 300,
    sessions: 120,
    deep: 200,
};

async fn preloaded_books_pass_the_audit_and_the_app_serves_them(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(backend, dir.path()).await;
    let url = settings.database.url.clone();
    let done = preload(&url, SIZES, SEED).await.unwrap();
    // Deposits after each user's first round fail one in fifty: 700 - 200 - 50 = 450 of them
    // are past it, and 9 of those have k % 50 = 49.
    assert_eq!(done.successful_deposits, 700 - 9);

    let store = onramp_store::connect(&url, 2).await.unwrap();
    let report = store.audit().await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.transfers, 300);
    assert_eq!(report.entries, 691 + 300);

    let db = TestDb::connect(&url).await;
    ids_are_the_apps_own(&db).await;
    let deep_items = db
        .scalar(
            "SELECT (SELECT COUNT(*) FROM deposits WHERE user_id = u.id) \
                  + (SELECT COUNT(*) FROM transfers WHERE from_user = u.id OR to_user = u.id) \
             FROM users AS u WHERE email = 'preload-0@example.test'",
        )
        .await;
    let deep_deposits = db
        .scalar(
            "SELECT COUNT(*) FROM deposits AS d JOIN users AS u ON u.id = d.user_id \
             WHERE u.email = 'preload-0@example.test'",
        )
        .await;
    assert_eq!(
        deep_deposits,
        200 + 10,
        "the deep history, then every 50th of the other 500"
    );
    assert!(deep_items > deep_deposits, "and some transfers");

    let app = app::start(settings, dir, backend).await;
    let history = walk(&HistoryArgs {
        app: app.address.clone(),
        session: 0,
        token_seed: SEED.into(),
        limit: 50,
        walks: 1,
        json: None,
    })
    .await
    .unwrap();
    assert_eq!(
        history.items as i64, deep_items,
        "every item, once, newest first"
    );

    let used = use_sessions(&SessionsArgs {
        app: app.address.clone(),
        sessions: SIZES.sessions,
        token_seed: SEED.into(),
        wallets: SIZES.users,
        concurrency: 8,
        json: None,
    })
    .await
    .unwrap();
    assert_eq!(used.failures, 0, "every preloaded session is the app's");
    let strangers = use_sessions(&SessionsArgs {
        app: app.address.clone(),
        sessions: 5,
        token_seed: "a seed the preload was not given".into(),
        wallets: 0,
        concurrency: 1,
        json: None,
    })
    .await
    .unwrap();
    assert_eq!(
        strangers.failures, 5,
        "without the seed, no session is anyone's"
    );
    let client = reqwest::Client::new();
    let balance: serde_json::Value = client
        .get(format!("{}/api/balance", app.address))
        .header(
            "Cookie",
            format!("session_id={}", session_token(SEED, 51).expose()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_1 = db
        .scalar(
            "SELECT a.balance FROM ledger_accounts AS a JOIN users AS u ON u.id = a.user_id \
             WHERE u.email = 'preload-1@example.test'",
        )
        .await;
    assert_eq!(
        balance["amount"].as_i64(),
        Some(user_1),
        "session 51 is user 1's"
    );
    assert!(user_1 > 0);

    // Old customers pay each other: every balance moves by exactly what was answered.
    let paid = send(&PreloadedTransfersArgs {
        app: app.address.clone(),
        token_seed: SEED.into(),
        people: SIZES.users,
        transfers: 300,
        concurrency: 8,
        seed: 3,
        json: None,
    })
    .await
    .unwrap();
    assert_eq!((paid.failures, paid.mismatches, paid.unrecorded), (0, 0, 0));
    assert!(paid.declined < 300, "{} of 300 declined", paid.declined);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM transfers").await,
        300 + 300 - paid.declined as i64
    );

    let users = db.scalar("SELECT COUNT(*) FROM users").await;
    match preload(&url, SIZES, SEED).await {
        Err(PreloadError::Refused(why)) => assert!(why.contains("already has users"), "{why}"),
        other => panic!("a second preload must be refused, got {other:?}"),
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users").await, users);
    app.handle.stop(true).await;
    let report = store.audit().await.unwrap();
    assert!(report.is_ok(), "after the transfers: {report}");
}

/// Preloaded people have ids like the app's own (`UserId::new`): UUIDv7 carrying the moment
/// they signed up, so that the books' user-keyed indexes are ordered by sign-up as a real
/// service's would be, and people who sign up later sort after all of them.
async fn ids_are_the_apps_own(db: &TestDb) {
    let rows = db
        .strings("SELECT id || ' ' || CAST(created_at AS TEXT) FROM users ORDER BY created_at")
        .await;
    assert_eq!(rows.len(), SIZES.users as usize);
    let mut ids = Vec::new();
    for row in &rows {
        let (id, created_at) = row.split_once(' ').unwrap();
        let id = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(id.get_version_num(), 7, "{id}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        let ms = secs as i64 * 1000 + i64::from(nanos / 1_000_000);
        assert_eq!(ms, created_at.parse::<i64>().unwrap(), "{id}");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by sign-up");
    let now = uuid::Uuid::now_v7();
    assert!(ids.iter().all(|id| *id < now), "a new sign-up sorts last");
}

#[actix_web::test]
async fn preloaded_books_pass_the_audit_and_the_app_serves_them_on_sqlite() {
    preloaded_books_pass_the_audit_and_the_app_serves_them(Backend::Sqlite).await;
}

#[actix_web::test]
async fn preloaded_books_pass_the_audit_and_the_app_serves_them_on_postgres() {
    preloaded_books_pass_the_audit_and_the_app_serves_them(Backend::Postgres).await;
}

#[actix_web::test]
async fn a_short_token_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    match preload(&url, SIZES, "short").await {
        Err(PreloadError::Refused(why)) => assert!(why.contains("16 characters"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[actix_web::test]
async fn sizes_that_could_overdraw_a_wallet_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let sizes = Sizes {
        transfers: 10_000,
        ..SIZES
    };
    match preload(&url, sizes, SEED).await {
        Err(PreloadError::Refused(why)) => assert!(why.contains("more than 10"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!dir.path().join("app.db").exists(), "not even created");
}

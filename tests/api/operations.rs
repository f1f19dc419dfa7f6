//! Operating the app: metrics, readiness through a database outage, security headers.

use onramp_test_support::{on_both_databases, spawn_app, Backend, TestApp};
use std::time::{Duration, Instant};

on_both_databases!(
    metrics_show_webhooks_credits_and_group_commits,
    metrics_on_an_operator_address_leave_the_public_listener,
    pages_carry_security_headers
);

/// With `server.metrics_listen` set, `/metrics` answers there and nowhere else.
async fn metrics_on_an_operator_address_leave_the_public_listener(backend: Backend) {
    let port = onramp_test_support::free_port();
    let app = onramp_test_support::spawn_app_with(backend, move |s| {
        s.server.metrics_listen = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let public = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let operator = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(operator.status(), 200);
    let text = operator.text().await.unwrap();
    assert!(text.contains("onramp_"), "{text}");
    let other = reqwest::get(format!("http://127.0.0.1:{port}/api/balance"))
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "the operator address serves nothing else"
    );
}

async fn metrics_text(app: &TestApp) -> String {
    let r = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

async fn metrics_show_webhooks_credits_and_group_commits(backend: Backend) {
    let app = spawn_app(backend).await;
    let person = app.signed_in("metrics@example.com", "Metrics").await;
    let id = person.deposit(100).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post_webhook(&app.event_for(&id, "SUCCESS").await, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_webhook(&app.event_for(&id, "SUCCESS").await, Some(b"forged"))
            .await
            .status(),
        401
    );
    let text = metrics_text(&app).await;
    for needle in [
        "onramp_webhooks_total{outcome=\"applied\"}",
        "onramp_webhooks_total{outcome=\"invalid_signature\"}",
        "onramp_credits_total",
        "onramp_writer_batch_size_bucket{le=\"1\"}",
        "onramp_writer_batch_size_count",
        "onramp_writer_commit_seconds_bucket",
        "onramp_writer_commit_seconds_sum",
        "onramp_wallet_actors",
        "onramp_sessions_cached",
        "onramp_deposits_total{outcome=\"created\"}",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from /metrics:\n{text}"
        );
    }
}

async fn pages_carry_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/api/user/me"] {
        let r = reqwest::get(format!("{}{path}", app.address))
            .await
            .unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("referrer-policy"));
        assert!(
            h["x-request-id"].to_str().unwrap().len() >= 32,
            "a request id to find in the logs"
        );
    }
}

/// PostgreSQL only: a SQLite file cannot be "unreachable".
#[actix_web::test]
async fn readyz_fails_while_postgres_is_unreachable_and_the_app_recovers() {
    let app = spawn_app(Backend::Postgres).await;
    let person = app.signed_in("outage@example.com", "Outage").await;
    let first = person.deposit(1_000).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = person.deposit(2_000).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_event = app.event_for(&second, "SUCCESS").await;
    assert_eq!(
        app.post_webhook(&app.event_for(&first, "SUCCESS").await, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/readyz", app.address))
            .await
            .unwrap()
            .status(),
        200
    );

    // The database goes away: new connections are refused and the app's are cut.
    let url = app.settings.database.url.clone();
    let (admin_url, db) = url.rsplit_once('/').unwrap();
    let admin = sqlx::PgPool::connect(&format!("{admin_url}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ))
    .execute(&admin)
    .await
    .unwrap();

    let r = reqwest::get(format!("{}/readyz", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        onramp_api::ErrorBody::code_of(&r.bytes().await.unwrap()),
        Some(onramp_api::ErrorCode::NotReady),
        "a code of the API's one list"
    );
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.address))
            .await
            .unwrap()
            .status(),
        200
    );
    let during = app.post_webhook(&second_event, None).await;
    assert!(
        during.status().is_server_error(),
        "no 200 while nothing can be committed: {}",
        during.status()
    );

    // It comes back: readiness recovers, the bank's retry lands, nothing acknowledged was lost.
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    let started = Instant::now();
    while reqwest::get(format!("{}/readyz", app.address))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "readiness recovers"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.post_webhook(&second_event, None).await.status(), 200);
    assert_eq!(person.balance().await, 3_000);
    app.assert_books_balance().await;
}

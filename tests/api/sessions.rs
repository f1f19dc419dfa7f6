//! Sessions: the cookie, its lifetimes, logout, what the database keeps, and the Origin check.

use onramp_test_support::{on_both_databases, spawn_app, spawn_app_with, Backend, TestApp};
use sha2::{Digest, Sha256};
use std::time::Duration;

on_both_databases!(
    an_unknown_session_cookie_is_refused,
    a_tampered_session_cookie_is_refused,
    a_session_past_its_lifetime_is_refused,
    an_idle_session_ends_and_an_active_one_does_not,
    a_logged_out_session_is_refused_at_once,
    the_database_never_holds_a_raw_session_token,
    a_cross_origin_post_is_refused,
    sessions_survive_a_restart_of_the_app,
);

/// The raw value of the browser's session cookie, read from a fresh sign-in.
async fn sign_in_and_take_cookie(app: &TestApp) -> String {
    let browser = app.browser();
    let r = browser.sign_in("meera@example.com", "Meera").await;
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find_map(|c| {
            c.strip_prefix("session_id=")
                .map(|v| v.split(';').next().unwrap().to_owned())
        })
        .expect("a session cookie")
}

async fn me_with_cookie(app: &TestApp, cookie: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!("{}/api/user/me", app.address))
        .header("Cookie", format!("session_id={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn an_unknown_session_cookie_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        me_with_cookie(&app, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await,
        401
    );
    assert_eq!(me_with_cookie(&app, "not-a-token").await, 401);
    assert_eq!(me_with_cookie(&app, "").await, 401);
    let r = app.browser().me().await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

async fn a_tampered_session_cookie_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    assert_eq!(me_with_cookie(&app, &cookie).await, 200);
    let mut tampered: Vec<char> = cookie.chars().collect();
    tampered[10] = if tampered[10] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert_eq!(me_with_cookie(&app, &tampered).await, 401);
    assert_eq!(me_with_cookie(&app, &format!("{cookie}x")).await, 401);
}

async fn a_session_past_its_lifetime_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.ttl_secs = 1).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    assert_eq!(me_with_cookie(&app, &cookie).await, 200);
    actix_web::rt::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(me_with_cookie(&app, &cookie).await, 401);
}

async fn an_idle_session_ends_and_an_active_one_does_not(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_secs = 2).await;
    let idle = sign_in_and_take_cookie(&app).await;
    let active = sign_in_and_take_cookie(&app).await;
    // The active session is used every 0.5 s for 3 s: longer than the idle period in all.
    for _ in 0..6 {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            me_with_cookie(&app, &active).await,
            200,
            "use keeps a session alive"
        );
    }
    assert_eq!(
        me_with_cookie(&app, &idle).await,
        401,
        "2 s unused ends a session"
    );
}

async fn a_logged_out_session_is_refused_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/auth/logout", app.address))
        .header("Cookie", format!("session_id={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.starts_with("session_id=;") || cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(me_with_cookie(&app, &cookie).await, 401);
    assert_eq!(
        app.db.scalar("SELECT COUNT(*) FROM sessions").await,
        0,
        "ended server-side"
    );
    // Logging out without a session is itself refused.
    let r = client
        .post(format!("{}/api/auth/logout", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn the_database_never_holds_a_raw_session_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    assert!(cookie.len() >= 22, "at least 128 bits of randomness");
    let stored = app
        .db
        .strings("SELECT token_hash || ' ' || user_id || ' ' || created_at || ' ' || expires_at || ' ' || last_seen_at FROM sessions")
        .await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&cookie), "the raw token is stored");
    let hash = hex::encode(Sha256::digest(cookie.as_bytes()));
    assert!(
        stored[0].starts_with(&hash),
        "the database keys the session by the token's SHA-256"
    );
}

async fn a_cross_origin_post_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    let client = reqwest::Client::new();
    for (origin, expected) in [
        ("http://evil.example", 403),
        ("null", 403),
        (app.address.as_str(), 204),
    ] {
        let r = client
            .post(format!("{}/api/auth/logout", app.address))
            .header("Cookie", format!("session_id={cookie}"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "Origin: {origin}");
        if expected == 403 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "cross_origin");
            assert_eq!(
                me_with_cookie(&app, &cookie).await,
                200,
                "a refused logout changes nothing"
            );
        }
    }
    let r = client
        .post(format!("{}/api/deposit", app.address))
        .header("Origin", "https://evil.example")
        .json(&serde_json::json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 0);
}

async fn sessions_survive_a_restart_of_the_app(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = sign_in_and_take_cookie(&app).await;
    app.handle.stop(true).await;
    let settings = app.settings.clone();
    let dir = app.dir;
    let restarted = onramp_test_support::app::start(settings, dir, backend).await;
    assert_eq!(me_with_cookie(&restarted, &cookie).await, 200);
}

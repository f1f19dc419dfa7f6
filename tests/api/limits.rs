//! Rate limits: sign-in starts per client address and deposits per user answer `429` with the
//! JSON error and `Retry-After` past their bucket, and change nothing.

use onramp_test_support::{on_both_databases, spawn_app_with, Backend, TestApp};
use serde_json::{json, Value};

on_both_databases!(
    a_flood_of_sign_in_starts_from_one_address_is_refused_with_429,
    a_user_creating_deposits_too_fast_is_refused_and_nothing_is_stored,
);

/// Buckets of two, refilled once a second: a third request at once is over.
async fn app_with_tight_limits(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.limits.sign_in_per_second = 1;
        s.limits.sign_in_burst = 2;
        s.limits.deposit_per_second = 1;
        s.limits.deposit_burst = 2;
    })
    .await
}

async fn assert_rate_limited(r: reqwest::Response) {
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

async fn a_flood_of_sign_in_starts_from_one_address_is_refused_with_429(backend: Backend) {
    let app = app_with_tight_limits(backend).await;
    let browser = app.browser();
    for _ in 0..2 {
        assert_eq!(browser.get("/api/auth/google").await.status(), 302);
    }
    let refused = browser.get("/api/auth/google").await;
    assert!(
        refused.headers().get("set-cookie").is_none(),
        "a refused start begins no sign-in"
    );
    assert_rate_limited(refused).await;
}

async fn a_user_creating_deposits_too_fast_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = app_with_tight_limits(backend).await;
    // Signing in uses the address's two sign-in starts; the deposit bucket is the user's.
    let asha = app.signed_in("asha@example.com", "Asha").await;
    asha.deposit(100).await;
    asha.deposit(200).await;
    let r = asha
        .post_json("/api/deposit", &json!({"amount": 300}))
        .await;
    assert_rate_limited(r).await;
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 2);
}

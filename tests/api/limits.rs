//! Rate limits: sign-in starts per client address and deposits per user answer `429` with the
//! JSON error and `Retry-After` past their bucket, and change nothing.

use onramp::client_addr::TrustedProxies;
use onramp_test_support::{on_both_databases, spawn_app_with, Backend, TestApp};
use serde_json::{json, Value};

on_both_databases!(
    a_flood_of_sign_in_starts_from_one_address_is_refused_with_429,
    a_user_creating_deposits_too_fast_is_refused_and_nothing_is_stored,
    behind_a_listed_proxy_each_client_it_names_has_its_own_bucket,
    from_an_unlisted_address_a_forwarded_header_changes_no_bucket,
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

/// A sign-in start as a load balancer passes it on: `X-Forwarded-For` as the balancer sends it.
async fn start_forwarded(app: &TestApp, forwarded_for: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/auth/google", app.address))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .unwrap()
}

/// Behind a load balancer every start comes from its address. Listed in
/// `server.trusted_proxies`, it names each client, and each has its own bucket; what a client
/// writes into the header itself, left of what the balancer appended, is not believed.
async fn behind_a_listed_proxy_each_client_it_names_has_its_own_bucket(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.sign_in_per_second = 1;
        s.limits.sign_in_burst = 2;
        // The test's connections come from loopback, in whichever family `localhost` resolves to.
        s.server.trusted_proxies =
            TrustedProxies::new(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]);
    })
    .await;
    for client in ["198.51.100.7", "203.0.113.9"] {
        for _ in 0..2 {
            assert_eq!(
                start_forwarded(&app, client).await.status(),
                302,
                "{client}"
            );
        }
    }
    assert_rate_limited(start_forwarded(&app, "198.51.100.7").await).await;
    // The client claims to be someone fresh; the balancer appended the address it really saw.
    assert_rate_limited(start_forwarded(&app, "192.0.2.55, 198.51.100.7").await).await;
    // A third client still has its whole bucket.
    assert_eq!(start_forwarded(&app, "192.0.2.55").await.status(), 302);
}

/// With no proxy listed (the default), the header is anyone's to write and is ignored: a
/// client cannot take a fresh bucket by naming a new address in it.
async fn from_an_unlisted_address_a_forwarded_header_changes_no_bucket(backend: Backend) {
    let app = app_with_tight_limits(backend).await;
    assert_eq!(start_forwarded(&app, "198.51.100.1").await.status(), 302);
    assert_eq!(start_forwarded(&app, "198.51.100.2").await.status(), 302);
    assert_rate_limited(start_forwarded(&app, "198.51.100.3").await).await;
}

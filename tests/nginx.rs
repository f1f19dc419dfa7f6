//! The app behind Debian's nginx, configured by the sample `deploy/nginx.conf` (only its
//! addresses and its log's path changed): a person's journey through it, the bank's webhook
//! through it, an oversized body answered by the app's own JSON error, and the sign-in limit per
//! real client, which the app learns from nginx's `X-Forwarded-For` because nginx's address is
//! in `server.trusted_proxies`.

use onramp::client_addr::TrustedProxies;
use onramp_test_support::nginx::Nginx;
use onramp_test_support::{free_port, location, on_both_databases, spawn_app_with};
use onramp_test_support::{Backend, Browser, TestApp};
use std::net::IpAddr;

on_both_databases!(
    a_person_signs_in_adds_money_and_sends_it_through_nginx,
    behind_nginx_each_client_has_its_own_sign_in_limit,
);

/// The app on a free port with nginx in front of it: people and the bank see nginx's URL, and
/// the app believes nginx's `X-Forwarded-For`. `burst` sign-in starts per client at once.
async fn app_behind_nginx(backend: Backend, burst: u32) -> (TestApp, Nginx) {
    let port = free_port();
    let app = spawn_app_with(backend, |s| {
        s.server.public_url = Some(format!("http://127.0.0.1:{port}"));
        s.server.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
        s.limits.sign_in_per_second = 1;
        s.limits.sign_in_burst = burst;
    })
    .await;
    let app_port = app.address.rsplit(':').next().unwrap();
    let nginx = Nginx::start(&format!("127.0.0.1:{app_port}"), port);
    (app, nginx)
}

async fn a_person_signs_in_adds_money_and_sends_it_through_nginx(backend: Backend) {
    let (app, nginx) = app_behind_nginx(backend, 100).await;
    let asha = Browser::signed_in(&nginx.url, "asha@example.com", "Asha").await;
    let ben = Browser::signed_in(&nginx.url, "ben@example.com", "Ben").await;

    let deposit = asha.deposit(5_000).await;
    let paid = app.pay(deposit["url"].as_str().unwrap(), true).await;
    assert_eq!(paid.status(), 303);
    assert_eq!(location(&paid), format!("{}/dashboard", nginx.url));
    // The bank's webhook goes to the public URL: through nginx.
    let id = deposit["id"].as_str().unwrap();
    assert_eq!(asha.wait_final(id).await, "success");

    // A body over the app's 16 KiB passes nginx's limit and gets the app's JSON error.
    let padded = serde_json::json!({ "amount": 100, "note": "x".repeat(20_000) });
    let too_large = asha.post_json("/api/deposit", &padded).await;
    assert_eq!(too_large.status(), 413);
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    asha.sends("ben@example.com", 1_200).await;
    assert_eq!(asha.balance().await, 3_800);
    assert_eq!(ben.balance().await, 1_200);
    let log = nginx.access_log();
    for path in [
        "GET /api/auth/google/callback",
        "POST /api/deposit",
        "POST /api/webhooks/bank",
        "POST /api/transfers",
    ] {
        assert!(log.contains(path), "{path} did not pass nginx:\n{log}");
    }
    // The sign-in callback's code and state stay out of nginx's log, as out of the app's.
    assert!(
        !log.contains("code="),
        "a query reached the access log:\n{log}"
    );
}

/// A client of its own loopback address (all of 127.0.0.0/8 is this host), its connections
/// made from `from`, following no redirects.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start(client: &reqwest::Client, nginx: &Nginx, forwarded_for: Option<&str>) -> u16 {
    let mut r = client.get(format!("{}/api/auth/google", nginx.url));
    if let Some(claim) = forwarded_for {
        r = r.header("X-Forwarded-For", claim);
    }
    r.send().await.unwrap().status().as_u16()
}

/// Every connection reaches the app from nginx's address; the app counts each real client
/// apart, and a client that writes another address into the header is still itself.
async fn behind_nginx_each_client_has_its_own_sign_in_limit(backend: Backend) {
    let (_app, nginx) = app_behind_nginx(backend, 2).await;
    let first = client_from("127.0.0.2");
    let second = client_from("127.0.0.3");
    assert_eq!(start(&first, &nginx, None).await, 302);
    assert_eq!(start(&first, &nginx, None).await, 302);
    assert_eq!(start(&first, &nginx, None).await, 429, "its third at once");
    assert_eq!(
        start(&first, &nginx, Some("192.0.2.44")).await,
        429,
        "a client naming someone else in X-Forwarded-For is still itself"
    );
    assert_eq!(start(&second, &nginx, None).await, 302, "another client");
    assert_eq!(start(&second, &nginx, None).await, 302);
}

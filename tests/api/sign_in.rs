//! Signing in with Google (the development provider, or a mocked Google where a test needs
//! Google to misbehave).

use onramp_test_support::{
    location, on_both_databases, spawn_app, spawn_app_with, Backend, TestApp,
};
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

on_both_databases!(
    a_new_user_signs_in_and_sees_themselves,
    signing_in_again_reuses_the_same_user,
    the_same_email_with_another_sub_is_another_account,
    money_sent_to_an_email_reaches_whoever_signed_in_with_it_last,
    an_email_given_up_at_sign_in_no_longer_receives_money,
    a_transfer_given_again_with_its_key_answers_the_first_after_its_email_moved,
    a_transfer_given_again_with_its_key_answers_the_first_after_its_recipient_changed_email,
    a_callback_without_state_signs_nobody_in,
    a_forged_state_signs_nobody_in,
    a_reused_state_signs_nobody_in,
    a_reused_state_signs_nobody_in_even_with_its_sealed_cookie,
    a_sealed_cookie_that_was_tampered_with_signs_nobody_in,
    a_state_from_another_browser_signs_nobody_in,
    a_user_who_denies_access_is_told_so,
    a_failing_token_endpoint_signs_nobody_in,
    a_token_endpoint_that_times_out_signs_nobody_in,
);

async fn sessions_in(app: &TestApp) -> i64 {
    app.db.scalar("SELECT COUNT(*) FROM sessions").await
}

async fn a_new_user_signs_in_and_sees_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    assert_eq!(browser.me().await.status(), 401);

    let callback = browser.sign_in("asha@example.com", "Asha Rao").await;
    assert_eq!(callback.status(), 303);
    assert_eq!(location(&callback), "/");
    let cookie = callback
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_owned());
    let all: Vec<String> = callback
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    let session = all
        .iter()
        .find(|c| c.starts_with("session_id="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain http must not mark the cookie Secure: {session}"
    );
    assert!(cookie.is_some());

    let me = browser.me().await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "asha@example.com");
    assert_eq!(me["name"], "Asha Rao");
    assert!(me["id"].as_str().unwrap().len() >= 32);
    assert!(me.get("picture").is_some());
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.db
            .scalar("SELECT COUNT(*) FROM auth_accounts WHERE provider = 'google'")
            .await,
        1
    );
}

async fn signing_in_again_reuses_the_same_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let first: Value = app
        .signed_in("ravi@example.com", "Ravi")
        .await
        .me()
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .signed_in("ravi@example.com", "Ravi K")
        .await
        .me()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        second["name"], "Ravi K",
        "the profile is refreshed at sign-in"
    );
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        sessions_in(&app).await,
        2,
        "each sign-in has its own session"
    );
}

/// A mocked Google whose userinfo answers `sub` with a verified `email` and `name` for every
/// token.
async fn google_naming(server: &MockServer, sub: &str, email: &str, name: &str) {
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at", "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/userinfo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sub": sub, "email": email, "email_verified": true, "name": name, "picture": ""
        })))
        .mount(server)
        .await;
}

async fn spawn_with_google(backend: Backend, google: &MockServer, timeout_ms: u64) -> TestApp {
    let uri = google.uri();
    spawn_app_with(backend, move |s| {
        s.google.token_url = Some(format!("{uri}/token"));
        s.google.userinfo_url = Some(format!("{uri}/userinfo"));
        s.google.timeout_ms = timeout_ms;
    })
    .await
}

/// Runs a callback with the browser's own state and any code (Google is mocked).
async fn callback_with_own_state(
    app: &TestApp,
    browser: &onramp_test_support::Browser,
) -> reqwest::Response {
    let authorize = browser.start_sign_in().await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let _ = app;
    browser
        .get(&format!(
            "/api/auth/google/callback?code=somecode&state={state}"
        ))
        .await
}

async fn the_same_email_with_another_sub_is_another_account(backend: Backend) {
    let google = MockServer::start().await;
    let app = spawn_with_google(backend, &google, 5000).await;

    let first = signed_in_as(&app, &google, "111", "shared@example.com").await;
    let second = signed_in_as(&app, &google, "222", "shared@example.com").await;

    let a: Value = first.me().await.json().await.unwrap();
    let b: Value = second.me().await.json().await.unwrap();
    assert_eq!(a["email"], b["email"]);
    assert_ne!(
        a["id"], b["id"],
        "accounts are keyed by sub, never by email"
    );
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 2);
}

/// Signs a new browser in as `sub` with `email` through the mocked Google.
async fn signed_in_as(
    app: &TestApp,
    google: &MockServer,
    sub: &str,
    email: &str,
) -> onramp_test_support::Browser {
    signed_in_naming(app, google, sub, email, sub).await
}

/// As `signed_in_as`, with the name Google gives.
async fn signed_in_naming(
    app: &TestApp,
    google: &MockServer,
    sub: &str,
    email: &str,
    name: &str,
) -> onramp_test_support::Browser {
    google_naming(google, sub, email, name).await;
    let browser = app.browser();
    assert_eq!(location(&callback_with_own_state(app, &browser).await), "/");
    browser
}

/// A sender signed in through the mocked Google, holding `paise`.
async fn funded_sender(
    app: &TestApp,
    google: &MockServer,
    paise: i64,
) -> onramp_test_support::Browser {
    let sender = signed_in_as(app, google, "sender", "sender@example.com").await;
    app.fund(&sender, paise).await;
    sender
}

/// A sender's transfer, given again with its Idempotency-Key after another account signed in
/// with the recipient's email: the first transfer's answer comes back and nothing moves again
/// (the key names the first transfer, whoever the email finds now). Another amount with the
/// same key is still refused.
async fn a_transfer_given_again_with_its_key_answers_the_first_after_its_email_moved(
    backend: Backend,
) {
    let google = MockServer::start().await;
    let app = spawn_with_google(backend, &google, 5000).await;
    let sender = funded_sender(&app, &google, 10_000).await;
    let first = signed_in_as(&app, &google, "first", "moving@example.com").await;
    let sent = sender
        .transfer_with_key("moving@example.com", 700, Some("rent-may"))
        .await;
    assert_eq!(sent.status(), 201);
    let sent: Value = sent.json().await.unwrap();

    let second = signed_in_as(&app, &google, "second", "moving@example.com").await;
    let again = sender
        .transfer_with_key("Moving@example.com", 700, Some("rent-may"))
        .await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], sent["id"]);
    assert_eq!(again["to"]["name"], "first");

    let other = sender
        .transfer_with_key("moving@example.com", 800, Some("rent-may"))
        .await;
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_reused"
    );
    assert_eq!(first.balance().await, 700);
    assert_eq!(second.balance().await, 0);
    assert_eq!(sender.balance().await, 9_300);
    app.assert_audit_passes().await;
}

/// The recipient of a transfer made with a key signs in again with another email and name (they
/// changed them at Google). The sender's request, given again as it was, is still the same request: it
/// answers exactly what the first answered (the email it was sent to) and moves nothing.
async fn a_transfer_given_again_with_its_key_answers_the_first_after_its_recipient_changed_email(
    backend: Backend,
) {
    let google = MockServer::start().await;
    let app = spawn_with_google(backend, &google, 5000).await;
    let sender = funded_sender(&app, &google, 10_000).await;
    let recipient = signed_in_as(&app, &google, "first", "old@example.com").await;
    let sent = sender
        .transfer_with_key("old@example.com", 700, Some("rent-june"))
        .await;
    assert_eq!(sent.status(), 201);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(
        sent["to"],
        json!({"name": "first", "email": "old@example.com"})
    );

    let renamed =
        signed_in_naming(&app, &google, "first", "new@example.com", "First Renamed").await;
    assert_eq!(
        renamed.me().await.json::<Value>().await.unwrap()["name"],
        "First Renamed"
    );
    let again = sender
        .transfer_with_key("old@example.com", 700, Some("rent-june"))
        .await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, sent, "the first answer, whole");

    // The key with another recipient is another request, even the same person's new email.
    let elsewhere = sender
        .transfer_with_key("new@example.com", 700, Some("rent-june"))
        .await;
    assert_eq!(elsewhere.status(), 422);
    assert_eq!(recipient.balance().await, 700);
    assert_eq!(sender.balance().await, 9_300);
    app.assert_audit_passes().await;
}

/// Two accounts (two `sub`s) with one verified email: money goes to the one that signed in last,
/// even right after the app found the other one for a transfer a moment before.
async fn money_sent_to_an_email_reaches_whoever_signed_in_with_it_last(backend: Backend) {
    let google = MockServer::start().await;
    let app = spawn_with_google(backend, &google, 5000).await;
    let sender = funded_sender(&app, &google, 10_000).await;
    let first = signed_in_as(&app, &google, "first", "shared@example.com").await;
    assert_eq!(
        sender.sends("shared@example.com", 100).await["to"]["name"],
        "first"
    );

    let second = signed_in_as(&app, &google, "second", "SHARED@example.com").await;
    let sent = sender.sends("shared@example.com", 300).await;
    assert_eq!(sent["to"]["name"], "second");
    assert_eq!(first.balance().await, 100);
    assert_eq!(second.balance().await, 300);

    // And back: the first account signs in again and owns the email again.
    let first_again = signed_in_as(&app, &google, "first", "shared@example.com").await;
    assert_eq!(
        sender.sends("shared@example.com", 50).await["to"]["name"],
        "first"
    );
    assert_eq!(first_again.balance().await, 150);
    assert_eq!(second.balance().await, 300);
    app.assert_audit_passes().await;
}

/// A person who signs in with a new email no longer receives money sent to the old one, even
/// right after a transfer to the old one was sent.
async fn an_email_given_up_at_sign_in_no_longer_receives_money(backend: Backend) {
    let google = MockServer::start().await;
    let app = spawn_with_google(backend, &google, 5000).await;
    let sender = funded_sender(&app, &google, 10_000).await;
    let ravi = signed_in_as(&app, &google, "ravi", "ravi@old.example.com").await;
    assert_eq!(
        sender.sends("ravi@old.example.com", 100).await["to"]["name"],
        "ravi"
    );

    signed_in_as(&app, &google, "ravi", "ravi@new.example.com").await;
    let r = sender
        .try_transfer("ravi@old.example.com", 200)
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nobody owns the old email now");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_recipient");
    assert_eq!(
        sender.sends("ravi@new.example.com", 300).await["to"]["name"],
        "ravi"
    );
    assert_eq!(ravi.balance().await, 400);
    assert_eq!(sender.balance().await, 10_000 - 400);
    app.assert_audit_passes().await;
}

async fn assert_refused(app: &TestApp, response: reqwest::Response, code: &str) {
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("/?error={code}"));
    let sets_session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("session_id="));
    assert!(!sets_session, "no session cookie on a refused sign-in");
    assert_eq!(sessions_in(app).await, 0);
}

async fn a_callback_without_state_signs_nobody_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    browser.start_sign_in().await;
    let r = browser.get("/api/auth/google/callback?code=abc").await;
    assert_refused(&app, r, "invalid_state").await;
    // And without having started at all.
    let r = app
        .browser()
        .get("/api/auth/google/callback?code=abc&state=xyz")
        .await;
    assert_refused(&app, r, "invalid_state").await;
}

async fn a_forged_state_signs_nobody_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    browser.start_sign_in().await;
    let r = browser
        .get("/api/auth/google/callback?code=abc&state=forged-state-value")
        .await;
    assert_refused(&app, r, "invalid_state").await;
}

async fn a_reused_state_signs_nobody_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    // Complete a real sign-in, keeping the callback URL.
    let authorize = browser.start_sign_in().await;
    let submitted = browser
        .submit_to_provider(
            &authorize,
            &[("email", "reuse@example.com"), ("name", "Re Use")],
        )
        .await;
    let callback = location(&submitted);
    let first = browser.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&first), "/");
    assert_eq!(sessions_in(&app).await, 1);
    // The same callback again (a replayed URL) is refused and opens no second session.
    let again = browser.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&again), "/?error=invalid_state");
    assert_eq!(sessions_in(&app).await, 1);
}

/// The sealed cookie that carried a sign-in and the callback URL that finished it, sent again
/// together (a copy of both, or a browser that sent the callback twice at once): the state was
/// recorded as used at the first callback, so the second is refused before any code exchange.
async fn a_reused_state_signs_nobody_in_even_with_its_sealed_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let started = browser
        .client
        .get(format!("{}/api/auth/google", app.address))
        .send()
        .await
        .unwrap();
    let sealed = started
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(sealed.starts_with("oauth_flow="), "{sealed}");
    let submitted = browser
        .submit_to_provider(
            &location(&started),
            &[("email", "twice@example.com"), ("name", "Twice")],
        )
        .await;
    let callback = location(&submitted);
    let first = browser.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&first), "/");
    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let again = copy
        .get(&callback)
        .header("cookie", &sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&again), "/?error=invalid_state");
    assert!(!again
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("session_id=")));
    assert_eq!(
        sessions_in(&app).await,
        1,
        "the first sign-in's session alone"
    );
}

/// A sign-in cookie changed by one character does not open: nobody is signed in.
async fn a_sealed_cookie_that_was_tampered_with_signs_nobody_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let started = browser
        .client
        .get(format!("{}/api/auth/google", app.address))
        .send()
        .await
        .unwrap();
    let sealed = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = sealed.split(';').next().unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let submitted = browser
        .submit_to_provider(
            &location(&started),
            &[("email", "tamper@example.com"), ("name", "T")],
        )
        .await;
    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = copy
        .get(location(&submitted))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_refused(&app, r, "invalid_state").await;
}

/// Nobody can evict a person's sign-in: between the moment a person is sent to the provider
/// and the moment they come back, 120,000 other sign-ins start from five addresses (a flood
/// that filled and churned the in-memory flows before, which lived on the server). The person's
/// flow travels in their own sealed cookie, so their return signs them in.
#[actix_web::test]
async fn a_flood_of_sign_in_starts_from_five_addresses_evicts_nobodys_sign_in() {
    use futures_util::StreamExt;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.limits.sign_in_burst = 1_000_000;
        s.limits.sign_in_per_second = 1_000_000;
    })
    .await;
    let person = app.browser();
    let authorize = person.start_sign_in().await;

    let port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let start = format!("http://127.0.0.1:{port}/api/auth/google");
    let clients: Vec<reqwest::Client> = (2..=6)
        .map(|last| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, last]))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        })
        .collect();
    let began = std::time::Instant::now();
    // A connection the loaded machine dropped before any answer is tried once more: it is the
    // server's answers this counts, and every one must be the redirect.
    let start_once = |i: usize| {
        let (client, start) = (&clients[i % clients.len()], &start);
        async move {
            match client.get(start).send().await {
                Err(e) if e.status().is_none() => client.get(start).send().await,
                answer => answer,
            }
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
        }
    };
    let answers: Vec<Result<u16, String>> = futures_util::stream::iter(0..120_000usize)
        .map(start_once)
        .buffer_unordered(64)
        .collect()
        .await;
    let not_sent: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(not_sent.is_empty(), "starts not answered: {not_sent:?}");
    let started = answers.iter().filter(|a| **a == Ok(302)).count();
    let others: Vec<u16> = answers
        .iter()
        .flatten()
        .filter(|s| **s != 302)
        .copied()
        .collect();
    assert_eq!(
        started, 120_000,
        "every start from the five addresses went to the provider; other answers: {others:?}"
    );
    onramp_test_support::report!(
        "120,000 sign-in starts from five addresses in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    let submitted = person
        .submit_to_provider(
            &authorize,
            &[("email", "patient@example.com"), ("name", "Patient")],
        )
        .await;
    let back = person
        .client
        .get(location(&submitted))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&back),
        "/",
        "the person who started first is signed in"
    );
    assert_eq!(person.me().await.status(), 200);
}

async fn a_state_from_another_browser_signs_nobody_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.browser();
    let attacker = app.browser();
    let attackers_url = attacker.start_sign_in().await;
    victim.start_sign_in().await;
    let state = url::Url::parse(&attackers_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = victim
        .get(&format!("/api/auth/google/callback?code=abc&state={state}"))
        .await;
    assert_refused(&app, r, "invalid_state").await;
}

async fn a_user_who_denies_access_is_told_so(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let authorize = browser.start_sign_in().await;
    let denied = browser
        .submit_to_provider(&authorize, &[("action", "deny")])
        .await;
    assert_eq!(denied.status(), 303);
    let back = location(&denied);
    assert!(back.contains("error=access_denied"), "{back}");
    let r = browser.client.get(&back).send().await.unwrap();
    assert_refused(&app, r, "access_denied").await;
}

async fn a_failing_token_endpoint_signs_nobody_in(backend: Backend) {
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&google)
        .await;
    let app = spawn_with_google(backend, &google, 5000).await;
    let browser = app.browser();
    let r = callback_with_own_state(&app, &browser).await;
    assert_refused(&app, r, "token_exchange_failed").await;
    assert_eq!(browser.me().await.status(), 401);
}

async fn a_token_endpoint_that_times_out_signs_nobody_in(backend: Backend) {
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at", "token_type": "Bearer"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&google)
        .await;
    let app = spawn_with_google(backend, &google, 300).await;
    let browser = app.browser();
    let started = std::time::Instant::now();
    let r = callback_with_own_state(&app, &browser).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the app gives up at its timeout"
    );
    assert_refused(&app, r, "token_exchange_failed").await;
}

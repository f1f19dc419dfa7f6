//! Around the hostile requests: every table's rows before and after, a person signed in with a
//! cookie to send by hand, sign-in flows left unfinished, and the server still serving at the end.

use super::AMOUNT;
use onramp_test_support::{location, Browser, TestApp};
use reqwest::redirect::Policy;
use std::collections::BTreeMap;

const TABLES: [(&str, &str); 7] = [
    (
        "users",
        "SELECT id || '|' || email || '|' || name || '|' || picture FROM users ORDER BY id",
    ),
    (
        "auth_accounts",
        "SELECT provider || '|' || sub || '|' || user_id FROM auth_accounts ORDER BY provider, sub",
    ),
    // `last_seen_at` is left out: using a session may touch it.
    (
        "sessions",
        "SELECT token_hash || '|' || user_id || '|' || CAST(created_at AS TEXT) || '|' || \
         CAST(expires_at AS TEXT) FROM sessions ORDER BY token_hash",
    ),
    (
        "ledger_accounts",
        "SELECT CAST(id AS TEXT) || '|' || COALESCE(user_id, system) || '|' || \
         CAST(balance AS TEXT) || '|' || currency || '|' || CAST(updated_at AS TEXT) \
         FROM ledger_accounts ORDER BY id",
    ),
    (
        "transfers",
        "SELECT id || '|' || from_user || '|' || to_user || '|' || CAST(amount AS TEXT) || '|' || \
         COALESCE(idempotency_key, '-') FROM transfers ORDER BY id",
    ),
    (
        "deposits",
        "SELECT id || '|' || user_id || '|' || CAST(amount AS TEXT) || '|' || currency || '|' || \
         status || '|' || COALESCE(bank_token, '-') || '|' || COALESCE(pay_url, '-') || '|' || \
         COALESCE(idempotency_key, '-') || '|' || CAST(updated_at AS TEXT) FROM deposits ORDER BY id",
    ),
    (
        "ledger_entries",
        "SELECT CAST(id AS TEXT) || '|' || kind || '|' || ref || '|' || \
         CAST(debit_account AS TEXT) || '|' || CAST(credit_account AS TEXT) || '|' || \
         CAST(amount AS TEXT) FROM ledger_entries ORDER BY id",
    ),
];

/// Every row of every table (bar the session's last-seen time).
pub(super) async fn snapshot(app: &TestApp) -> BTreeMap<&'static str, Vec<String>> {
    let mut s = BTreeMap::new();
    for (table, sql) in TABLES {
        s.insert(table, app.db.strings(sql).await);
    }
    s
}

pub(super) fn row_counts(s: &BTreeMap<&'static str, Vec<String>>) -> String {
    s.iter()
        .map(|(t, rows)| format!("{t}={}", rows.len()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Signs in and answers the browser and its `session_id=…` cookie, to send by hand.
pub(super) async fn signed_in_with_cookie(
    app: &TestApp,
    email: &str,
    name: &str,
) -> (Browser, String) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = Browser::with_jar(&app.address, jar.clone());
    browser.assert_signs_in(email, name).await;
    use reqwest::cookie::CookieStore;
    let cookies = jar
        .cookies(&app.address.parse().unwrap())
        .expect("the browser holds cookies");
    let session = cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find(|c| c.starts_with("session_id="))
        .expect("a session cookie")
        .to_owned();
    (browser, session)
}

/// Starts a sign-in without finishing it: the `oauth_flow=…` cookie and the state.
pub(super) async fn started_flow(app: &TestApp) -> (String, String) {
    let r = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/auth/google", app.address))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("oauth_flow="))
        .expect("a flow cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let url = url::Url::parse(&location(&r)).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("a state")
        .1
        .into_owned();
    (cookie, state)
}

/// After the hostile requests: the server answers, the person can add money and the bank can
/// credit it.
pub(super) async fn still_serving(app: &TestApp, person: &Browser, processing_deposit: &str) {
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = person
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"amount": 700}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "a normal deposit still works");
    let event = app.event_for(processing_deposit, "SUCCESS").await;
    let r = app.post_webhook(&event, None).await;
    assert_eq!(r.status(), 200, "the bank still credits");
    assert_eq!(person.balance().await, AMOUNT);
    app.assert_books_balance().await;
}

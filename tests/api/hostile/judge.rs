//! Sending a case and judging the answer: the answer as read, our JSON error shape, what no
//! error may show, and no session handed out with a refusal.

use super::case::{Case, Expect};
use onramp_test_support::TestApp;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::time::Duration;

/// An answer, from reqwest or from a raw socket.
#[derive(Debug, Default)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(super) async fn send(app: &TestApp, session_cookie: &str, case: &Case) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("{}{}", app.address, case.path));
    if case.session {
        req = req.header("cookie", session_cookie);
    }
    for (name, value) in &case.headers {
        let value = HeaderValue::from_bytes(value)
            .unwrap_or_else(|e| panic!("{}: the table holds a bad header: {e}", case.name));
        req = req.header(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
    }
    if let Some(body) = &case.body {
        req = req.body(body.clone());
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e:?}", case.name));
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// What no error may show: the secrets, and the marks of a stack trace, SQL or a panic.
pub(super) fn forbidden_in_errors(app: &TestApp, session_cookie: &str) -> Vec<String> {
    let mut words: Vec<String> = [
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
        ".rs:",
        "src/",
        "sqlx",
        "SQLSTATE",
        "sqlite",
        "postgres",
        "syntax error",
        "no such table",
        "constraint",
        "INSERT INTO",
        "SELECT ",
        "internal_error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    words.push(String::from_utf8(app.webhook_secret()).unwrap());
    words.push(app.bank_api_key());
    words.push(app.settings.google.client_secret.expose_secret().to_owned());
    if let Some(token) = session_cookie.strip_prefix("session_id=") {
        words.push(token.to_owned());
    }
    assert!(words.iter().all(|w| w.len() >= 4), "{words:?}");
    words
}

/// `{"error": {"code": "snake_case", "message": "…"}}` as `application/json`, showing nothing
/// it should not.
pub(super) fn check_json_error(
    a: &Answer,
    code: Option<&str>,
    forbidden: &[String],
) -> Result<(), String> {
    let ct = a.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}, body {:?}", a.text()));
    }
    let v: Value =
        serde_json::from_slice(&a.body).map_err(|e| format!("not JSON ({e}): {:?}", a.text()))?;
    let obj = v.as_object().filter(|o| o.len() == 1);
    let err = obj
        .and_then(|o| o.get("error"))
        .and_then(Value::as_object)
        .filter(|e| e.len() == 2)
        .ok_or_else(|| format!("not an error object: {v}"))?;
    let got = err["code"].as_str().unwrap_or_default();
    let message = err["message"].as_str().unwrap_or_default();
    if got.is_empty() || !got.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("code {:?} is not snake_case", err["code"]));
    }
    if message.trim().is_empty() {
        return Err(format!("empty message: {v}"));
    }
    if let Some(code) = code {
        if got != code {
            return Err(format!("code {got:?}, expected {code:?} ({message})"));
        }
    }
    let text = a.text();
    if let Some(w) = forbidden.iter().find(|w| text.contains(w.as_str())) {
        return Err(format!("the error shows {w:?}: {text}"));
    }
    Ok(())
}

/// A new session cookie must never come with a refusal.
fn no_new_session(a: &Answer) -> Result<(), String> {
    match a
        .headers_named("set-cookie")
        .find(|c| c.starts_with("session_id=") && !c.starts_with("session_id=;"))
    {
        Some(c) => Err(format!("a session cookie was set: {c}")),
        None => Ok(()),
    }
}

pub(super) fn judge(
    app: &TestApp,
    expect: &Expect,
    a: &Answer,
    forbidden: &[String],
) -> Result<(), String> {
    if a.status >= 500 {
        return Err(format!("server error {}: {:?}", a.status, a.text()));
    }
    no_new_session(a)?;
    match expect {
        Expect::Api(status, code) => {
            if a.status != *status {
                return Err(format!(
                    "status {}, expected {status}: {:?}",
                    a.status,
                    a.text()
                ));
            }
            check_json_error(a, *code, forbidden)
        }
        Expect::SignInError(code) => {
            let loc = a.header("location").unwrap_or_default();
            let got = loc.strip_prefix("/?error=");
            match (a.status, got, code) {
                (303, Some(got), Some(code)) if got == *code => Ok(()),
                (303, Some(got), None) if !got.is_empty() => Ok(()),
                _ => Err(format!(
                    "status {} to {loc:?}, expected 303 to /?error={code:?}",
                    a.status
                )),
            }
        }
        Expect::ToProvider => {
            let loc = a.header("location").unwrap_or_default();
            let ok = matches!(a.status, 302 | 303)
                && loc.starts_with(&app.state.urls.auth_url)
                && !loc.contains("evil");
            ok.then_some(())
                .ok_or_else(|| format!("status {} to {loc:?}, expected the provider", a.status))
        }
        Expect::HttpLayer => {
            if !(400..500).contains(&a.status) {
                return Err(format!(
                    "status {}, expected a 4xx: {:?}",
                    a.status,
                    a.text()
                ));
            }
            // Refused before our code ran, the body may be empty; if it is JSON it is ours.
            if a.header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
            {
                check_json_error(a, None, forbidden)?;
            }
            Ok(())
        }
    }
}

//! Hostile input. Someone sends every endpoint what no browser or bank would: malformed JSON,
//! wrong content types, missing and doubled headers, bodies past the limit, numbers past `i64`,
//! floats and strings where integers belong, unicode and control characters, SQL-looking text,
//! very long cookies and headers, and bytes that are not HTTP at all. Each gets a `4xx` with a
//! JSON error (or the redirect `identity.md` names), the database does not change, and the server
//! keeps serving: afterwards the person can still add money and the bank can still credit it.
//!
//! What reaches our handlers must answer JSON. A few requests are refused by actix-web's HTTP/1
//! parser before any handler or middleware runs (a NUL byte in a header, a broken request line,
//! two different `Content-Length`s, more than 96 headers, a head past 128 KiB): those answer a
//! `400` or `431` with an empty body, and the table marks them `HttpLayer`. Note that actix-web's
//! head limit is 128 KiB, so an 8 KiB cookie and a 16 KiB header do reach our handlers (and get
//! our JSON `401`s); only the 100-header and 160 KiB-header requests are refused by the parser.

use onramp_bank_protocol::signature::sign_header;
use onramp_test_support::{location, on_both_databases, spawn_app, Backend, Browser, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

on_both_databases!(
    every_endpoint_answers_hostile_input_with_a_json_4xx_and_changes_nothing,
    requests_broken_at_the_http_layer_are_refused_and_the_server_keeps_serving,
    security_headers_are_on_the_page_and_on_api_errors,
    sql_and_unicode_that_are_valid_input_are_stored_as_plain_text,
);

const SQL: &str = "'; DROP TABLE users; --";
/// SQL without spaces, so that it passes checks for printable ASCII and reaches the database.
const SQL_NO_SPACES: &str = "';DROP/**/TABLE/**/deposits;--";
const AMOUNT: i64 = 2_500;

// ---------------------------------------------------------------------------------------------
// The table.

/// What a hostile request must get.
#[derive(Debug, Clone)]
enum Expect {
    /// Our JSON error `{"error": {"code", "message"}}` with this status (and this code, if given).
    Api(u16, Option<&'static str>),
    /// The OAuth callback's refusal: `303` to `/?error=<code>`, no session.
    SignInError(Option<&'static str>),
    /// `GET /api/auth/google` ignores junk and sends the browser to the provider.
    ToProvider,
    /// Refused by actix-web's HTTP/1 parser before our code runs: any `4xx`, possibly with an
    /// empty, non-JSON body (if the body is JSON, it must still be our error shape).
    HttpLayer,
}

fn api(status: u16, code: &'static str) -> Expect {
    Expect::Api(status, Some(code))
}

/// A known path with another method: actix-web hands it to the app's default service, our JSON
/// `404` (the spec asks for no `405`).
fn wrong_method() -> Expect {
    api(404, "not_found")
}

fn api_any_code(status: u16) -> Expect {
    Expect::Api(status, None)
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    method: &'static str,
    path: String,
    /// Send the signed-in person's session cookie.
    session: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    expect: Expect,
}

fn request(method: &'static str, path: impl Into<String>, name: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        session: false,
        headers: Vec::new(),
        body: None,
        expect: Expect::HttpLayer,
    }
}

fn get(path: impl Into<String>, name: impl Into<String>) -> Case {
    request("GET", path, name)
}

fn post(path: impl Into<String>, name: impl Into<String>) -> Case {
    request("POST", path, name)
}

impl Case {
    fn session(mut self) -> Self {
        self.session = true;
        self
    }
    fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }
    /// A body sent as `application/json`.
    fn json(self, body: impl AsRef<[u8]>) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    /// A body with no `Content-Type` of its own.
    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }
    fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// How a webhook case is signed.
enum Sig {
    /// Correctly, with the app's secret, now.
    Good,
    Missing,
    /// Correctly but 330 s ago / ahead (a margin over the 300 s tolerance, since a second may
    /// tick between signing and the app's check; the exact boundary is a property test).
    Stale,
    Future,
    /// Two correct `X-Bank-Signature` headers.
    Doubled,
    /// Correctly, but over other bytes.
    OtherBody,
    Raw(Vec<u8>),
}

fn webhook(secret: &[u8], name: &str, body: impl AsRef<[u8]>, sig: Sig) -> Case {
    let body = body.as_ref().to_vec();
    let now = chrono::Utc::now().timestamp();
    let sign = |t: i64, b: &[u8]| sign_header(&[secret], t, b).into_bytes();
    let mut case = post("/api/webhooks/bank", format!("webhook: {name}")).header(
        "x-bank-event-id",
        format!("evt_{}", uuid::Uuid::new_v4().simple()),
    );
    match sig {
        Sig::Good => case = case.header("x-bank-signature", sign(now, &body)),
        Sig::Missing => {}
        Sig::Stale => case = case.header("x-bank-signature", sign(now - 330, &body)),
        Sig::Future => case = case.header("x-bank-signature", sign(now + 330, &body)),
        Sig::Doubled => {
            case = case
                .header("x-bank-signature", sign(now, &body))
                .header("x-bank-signature", sign(now, &body))
        }
        Sig::OtherBody => case = case.header("x-bank-signature", sign(now, b"{}")),
        Sig::Raw(h) => case = case.header("x-bank-signature", h),
    }
    case.body(body)
}

/// What the table needs from the running app.
struct Fixture {
    secret: Vec<u8>,
    /// The app's own origin.
    origin: String,
    deposit_id: String,
    token: String,
    event: Value,
    /// Sign-in flows started for the callback cases: (`oauth_flow=…` cookie, state).
    flows: Vec<(String, String)>,
    /// Another user's email, for transfers.
    recipient: String,
}

/// `POST /api/transfers`: Mallory's balance is 0 (her deposit is still processing) and Trent is
/// another user, so even a well-formed transfer to him is refused (`insufficient_funds`).
/// A cookie of the right shape that names no session is looked up in the database; whatever
/// the body, the routes that take one answer that nobody is signed in (the body used to answer
/// first).
fn unknown_session_cases(cases: &mut Vec<Case>) {
    let stranger = format!("session_id={}", "A".repeat(43));
    for (path, what) in [("/api/transfers", "transfer"), ("/api/deposit", "deposit")] {
        for (name, content_type, body) in [
            ("text", "text/plain", "hello"),
            ("broken JSON", "application/json", "{"),
        ] {
            cases.push(
                post(path, format!("a {what} from an unknown session, {name}"))
                    .header("cookie", &stranger)
                    .header("content-type", content_type)
                    .body(body)
                    .expect(api(401, "unauthorized")),
            );
        }
    }
}

fn transfer_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let path = "/api/transfers";
    let to = &f.recipient;
    let body = |to: &str, amount: &str| {
        format!(
            r#"{{"to": {}, "amount": {amount}}}"#,
            serde_json::to_string(to).unwrap()
        )
    };
    for (amount, code) in [
        ("1e400", "invalid_body"),
        ("9223372036854775808", "invalid_amount"),
        ("\"100\"", "invalid_amount"),
        ("100.0", "invalid_amount"),
        ("1.5", "invalid_amount"),
        ("true", "invalid_amount"),
        ("null", "invalid_amount"),
        ("[100]", "invalid_amount"),
        ("0", "invalid_amount"),
        ("-1", "invalid_amount"),
        ("10000001", "invalid_amount"),
        ("NaN", "invalid_body"),
    ] {
        cases.push(
            post(path, format!("transfer amount {amount}"))
                .session()
                .json(body(to, amount))
                .expect(api(400, code)),
        );
    }
    for (name, json, expect) in [
        (
            "a transfer without a recipient",
            r#"{"amount": 100}"#.to_owned(),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to a number",
            r#"{"to": 5, "amount": 100}"#.to_owned(),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to an empty email",
            body("  ", "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to a 300-byte email",
            body(&format!("{}@x.test", "a".repeat(300)), "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer without an amount",
            format!(r#"{{"to": {to:?}}}"#),
            api(400, "invalid_amount"),
        ),
        (
            "a transfer with an extra field",
            format!(r#"{{"to": {to:?}, "amount": 100, "from": "x"}}"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer with a repeated amount",
            format!(r#"{{"to": {to:?}, "amount": 1, "amount": 100}}"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer as an array",
            format!(r#"[{to:?}, 100]"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer to herself",
            body("mallory@example.com", "100"),
            api(400, "self_transfer"),
        ),
        (
            "a transfer to herself in capitals",
            body(" MALLORY@Example.COM ", "100"),
            api(400, "self_transfer"),
        ),
        (
            "a transfer to nobody",
            body("nobody@example.com", "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer to SQL",
            body(SQL, "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer to a wildcard",
            body("%@example.com", "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer over the balance",
            body(to, "100"),
            api(409, "insufficient_funds"),
        ),
        (
            "a transfer over the balance, in capitals",
            body(&to.to_uppercase(), "1"),
            api(409, "insufficient_funds"),
        ),
    ] {
        cases.push(post(path, name).session().json(json).expect(expect));
    }
    let valid = body(to, "100");
    cases.extend([
        post(path, "transfer without a session")
            .json(valid.clone())
            .expect(api(401, "unauthorized")),
        post(path, "transfer from another site")
            .session()
            .header("origin", "https://evil.example")
            .json(valid.clone())
            .expect(api(403, "cross_origin")),
        post(path, "transfer with an empty Idempotency-Key")
            .session()
            .header("idempotency-key", "")
            .json(valid.clone())
            .expect(api(400, "invalid_idempotency_key")),
        post(path, "transfer as text")
            .session()
            .header("content-type", "text/plain")
            .body(valid.clone())
            .expect(api(415, "unsupported_media_type")),
        get(path, "transfer by GET")
            .session()
            .expect(wrong_method()),
    ]);
}

/// Every endpoint, with what it must answer. `session` cases carry the signed-in person's cookie.
fn hostile_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let kib = |n: usize, c: char| c.to_string().repeat(n * 1024);
    let big_cookie = format!("session_id={}", kib(8, 'a'));
    let big_header = kib(16, 'x');

    // GET /api/auth/google: junk is ignored, the browser goes to the provider.
    cases.extend([
        get(
            "/api/auth/google?redirect_uri=https://evil.example/&client_id=evil&state=x",
            "sign-in start with injected OAuth parameters",
        )
        .expect(Expect::ToProvider),
        get("/api/auth/google", "sign-in start with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(Expect::ToProvider),
        get(
            format!("/api/auth/google?q={}", urlencode(SQL)),
            "sign-in start with SQL in the query",
        )
        .expect(Expect::ToProvider),
        post("/api/auth/google", "sign-in start by POST").expect(wrong_method()),
    ]);

    // GET /api/auth/google/callback: every failure is a 303 to /?error=…, no session.
    let cb = "/api/auth/google/callback";
    let (flow_a, state_a) = &f.flows[0];
    let (flow_b, state_b) = &f.flows[1];
    let (flow_c, state_c) = &f.flows[2];
    cases.extend([
        get(cb, "callback without parameters").expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code={0}&state={0}", urlencode(SQL)),
            "callback with SQL in code and state",
        )
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?error=access_denied"),
            "callback with error=access_denied",
        )
        .expect(Expect::SignInError(Some("access_denied"))),
        get(
            format!("{cb}?error={}", urlencode("ошибка\u{0}\u{7}\r\n\u{202e}💥")),
            "callback with unicode and control characters in error",
        )
        .expect(Expect::SignInError(Some("provider_error"))),
        get(
            format!("{cb}?code=a&state=b&state=c"),
            "callback with a doubled state",
        )
        .expect(Expect::SignInError(None)),
        get(
            format!("{cb}?code=a&state=b"),
            "callback with an 8 KiB flow cookie",
        )
        .header("cookie", format!("oauth_flow={}", kib(8, 'f')))
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code=a&state={}", kib(16, 's')),
            "callback with a 16 KiB state",
        )
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code=a&state={state_a}x"),
            "callback with a real flow, wrong state",
        )
        .header("cookie", flow_a)
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code={}&state={state_b}", urlencode(SQL)),
            "callback with a real flow, SQL as the code",
        )
        .header("cookie", flow_b)
        .expect(Expect::SignInError(Some("token_exchange_failed"))),
        get(
            format!("{cb}?code=&state={state_c}"),
            "callback with a real flow, empty code",
        )
        .header("cookie", flow_c)
        .expect(Expect::SignInError(Some("missing_code"))),
        post(cb, "callback by POST").expect(wrong_method()),
    ]);

    // POST /api/auth/logout.
    let logout = "/api/auth/logout";
    cases.extend([
        post(logout, "logout without a session").expect(api(401, "unauthorized")),
        post(logout, "logout with an unknown well-formed session")
            .header("cookie", format!("session_id={}", "ab".repeat(32)))
            .expect(api(401, "unauthorized")),
        post(logout, "logout with SQL as the session")
            .header("cookie", format!("session_id={SQL}"))
            .expect(api(401, "unauthorized")),
        post(logout, "logout with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        post(logout, "logout from another site")
            .session()
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        post(logout, "logout from an opaque origin")
            .session()
            .header("origin", "null")
            .expect(api(403, "cross_origin")),
        get(logout, "logout by GET")
            .session()
            .expect(wrong_method()),
    ]);

    // GET /api/user/me.
    let me = "/api/user/me";
    cases.extend([
        get(me, "me without a session").expect(api(401, "unauthorized")),
        get(me, "me with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        get(me, "me with a 16 KiB header")
            .header("x-padding", &big_header)
            .expect(api(401, "unauthorized")),
        get(me, "me with 500 cookies")
            .header(
                "cookie",
                (0..500)
                    .map(|i| format!("c{i}=v{i}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .expect(api(401, "unauthorized")),
        get(me, "me with a unicode session cookie")
            .header("cookie", "session_id=сессия💥".as_bytes())
            .expect(api(401, "unauthorized")),
        get(me, "me with an invalid-UTF-8 session cookie")
            .header("cookie", b"session_id=\xff\xfe\xfd".as_slice())
            .expect(api(401, "unauthorized")),
        get(me, "me with SQL as the session")
            .header("cookie", format!("session_id={SQL_NO_SPACES}"))
            .expect(api(401, "unauthorized")),
        post(me, "me by POST").session().expect(wrong_method()),
    ]);

    // POST /api/deposit: amounts.
    let dep = "/api/deposit";
    for (amount, code) in [
        ("1e400", "invalid_body"),
        ("-1e400", "invalid_body"),
        ("9223372036854775808", "invalid_amount"),
        ("-9223372036854775809", "invalid_amount"),
        ("18446744073709551616", "invalid_amount"),
        ("99999999999999999999999999999999999999", "invalid_amount"),
        ("\"100\"", "invalid_amount"),
        ("\"'; DROP TABLE deposits; --\"", "invalid_amount"),
        ("\"１００\"", "invalid_amount"),
        ("100.0", "invalid_amount"),
        ("1.5", "invalid_amount"),
        ("1e2", "invalid_amount"),
        ("true", "invalid_amount"),
        ("null", "invalid_amount"),
        ("{}", "invalid_amount"),
        ("[]", "invalid_amount"),
        ("[100]", "invalid_amount"),
        ("0", "invalid_amount"),
        ("-1", "invalid_amount"),
        ("10000001", "invalid_amount"),
        ("NaN", "invalid_body"),
        ("Infinity", "invalid_body"),
        ("0x64", "invalid_body"),
        ("0100", "invalid_body"),
        ("+100", "invalid_body"),
    ] {
        cases.push(
            post(dep, format!("deposit amount {amount}"))
                .session()
                .json(format!(r#"{{"amount": {amount}}}"#))
                .expect(api(400, code)),
        );
    }

    // POST /api/deposit: bodies.
    let deep = format!(r#"{{"amount": {}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let mut past_limit = br#"{"amount": 100}"#.to_vec();
    past_limit.resize(16 * 1024 + 1, b' ');
    for (name, body, expect) in [
        ("an empty body", b"".to_vec(), api(400, "invalid_body")),
        ("a JSON array", b"[]".to_vec(), api(400, "invalid_body")),
        ("a bare number", b"100".to_vec(), api(400, "invalid_body")),
        (
            "a JSON string",
            b"\"amount\"".to_vec(),
            api(400, "invalid_body"),
        ),
        ("null", b"null".to_vec(), api(400, "invalid_body")),
        (
            "an empty object",
            b"{}".to_vec(),
            api(400, "invalid_amount"),
        ),
        (
            "truncated JSON",
            br#"{"amount": 1"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "an unknown field",
            br#"{"amount": 100, "extra": 1}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a capitalised key",
            br#"{"Amount": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a doubled amount",
            br#"{"amount": 100, "amount": 200}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a unicode key",
            r#"{"amöunt": 100}"#.as_bytes().to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "an escaped NUL in the key",
            br#"{"amount\u0000": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "SQL as a key",
            format!(r#"{{"{SQL}": 100}}"#).into_bytes(),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL after the object",
            b"{\"amount\": 100}\0".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL inside",
            b"{\"amount\": 1\x0000}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a raw control character in a string",
            b"{\"amount\": 100, \"n\": \"a\x01b\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"amount\": 100, \"n\": \"\xff\xfe\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8 as a key",
            b"{\"\xc3\x28\": 100}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a byte-order mark",
            b"\xef\xbb\xbf{\"amount\": 100}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "two objects",
            br#"{"amount": 100}{"amount": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "5000 nested arrays",
            deep.into_bytes(),
            api(400, "invalid_body"),
        ),
        (
            "one byte past 16 KiB",
            past_limit,
            api(413, "payload_too_large"),
        ),
        (
            "1 MiB",
            kib(1024, ' ').into_bytes(),
            api(413, "payload_too_large"),
        ),
    ] {
        cases.push(
            post(dep, format!("deposit with {name}"))
                .session()
                .json(body)
                .expect(expect),
        );
    }

    // POST /api/deposit: content types.
    let valid = br#"{"amount": 100}"#;
    let wrong_amount = br#"{"amount": "100"}"#;
    cases.extend([
        post(dep, "deposit without a Content-Type")
            .session()
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit as text/plain")
            .session()
            .header("content-type", "text/plain")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit as a form")
            .session()
            .header("content-type", "application/x-www-form-urlencoded")
            .body("amount=100")
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit with a broken Content-Type")
            .session()
            .header("content-type", ";;;/")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit with text/plain then application/json")
            .session()
            .header("content-type", "text/plain")
            .header("content-type", "application/json")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        // With a charset the body reaches the parser (and this one is refused there).
        post(dep, "deposit as application/json; charset=utf-8")
            .session()
            .header("content-type", "application/json; charset=utf-8")
            .body(wrong_amount)
            .expect(api(400, "invalid_amount")),
        post(dep, "deposit with a 16 KiB header")
            .session()
            .header("x-padding", &big_header)
            .json(wrong_amount)
            .expect(api(400, "invalid_amount")),
    ]);

    // POST /api/deposit: Idempotency-Key (with a valid body, so the key is what is refused).
    for (name, key) in [
        ("SQL", SQL.as_bytes().to_vec()),
        ("empty", Vec::new()),
        ("256 characters", "k".repeat(256).into_bytes()),
        ("16 KiB", kib(16, 'k').into_bytes()),
        ("unicode", "ключ-💥".as_bytes().to_vec()),
        ("invalid UTF-8", b"key-\xff\xfe".to_vec()),
        ("a tab", b"a\tb".to_vec()),
    ] {
        cases.push(
            post(dep, format!("deposit with an Idempotency-Key of {name}"))
                .session()
                .header("idempotency-key", key)
                .json(valid)
                .expect(api(400, "invalid_idempotency_key")),
        );
    }
    cases.extend([
        post(dep, "deposit with a doubled Idempotency-Key")
            .session()
            .header("idempotency-key", "key-1")
            .header("idempotency-key", "key-2")
            .json(valid)
            .expect(api(400, "invalid_idempotency_key")),
        post(dep, "deposit with the same Idempotency-Key twice")
            .session()
            .header("idempotency-key", "key-1")
            .header("idempotency-key", "key-1")
            .json(valid)
            .expect(api(400, "invalid_idempotency_key")),
    ]);

    // POST /api/deposit: who is asking.
    cases.extend([
        post(dep, "deposit without a session")
            .json(valid)
            .expect(api(401, "unauthorized")),
        post(dep, "deposit with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .json(valid)
            .expect(api(401, "unauthorized")),
        post(dep, "deposit without a session, 1 MiB")
            .json(kib(1024, ' '))
            .expect(api_any_code(401)),
        post(dep, "deposit from another site")
            .session()
            .header("origin", "https://evil.example")
            .json(valid)
            .expect(api(403, "cross_origin")),
        post(dep, "deposit with our origin and another")
            .session()
            .header("origin", &f.origin)
            .header("origin", "https://evil.example")
            .json(valid)
            .expect(api(403, "cross_origin")),
        get(dep, "deposit by GET").session().expect(wrong_method()),
        request("PUT", dep, "deposit by PUT")
            .session()
            .json(valid)
            .expect(wrong_method()),
        request("DELETE", dep, "deposit by DELETE")
            .session()
            .expect(wrong_method()),
        request("OPTIONS", dep, "deposit by OPTIONS").expect(wrong_method()),
    ]);

    transfer_cases(f, &mut cases);
    unknown_session_cases(&mut cases);

    // GET /api/balance.
    cases.extend([
        get("/api/balance", "balance without a session").expect(api(401, "unauthorized")),
        get("/api/balance", "balance with SQL as the session")
            .header("cookie", format!("session_id={SQL}"))
            .expect(api(401, "unauthorized")),
        get("/api/balance", "balance with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        post("/api/balance", "balance by POST")
            .session()
            .expect(wrong_method()),
        request("PATCH", "/api/balance", "balance by PATCH")
            .session()
            .expect(wrong_method()),
        request("BREW", "/api/balance", "balance by BREW")
            .session()
            .expect(wrong_method()),
    ]);

    // GET /api/transactions.
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let tx = "/api/transactions";
    for limit in [
        "0",
        "101",
        "-1",
        "1.5",
        "1e1",
        "abc",
        "",
        "99999999999999999999",
        "%20",
        "%00",
        "%FF%FE",
        "１０",
        "10%20OR%201=1",
    ] {
        cases.push(
            get(
                format!("{tx}?limit={limit}"),
                format!("transactions with limit={limit}"),
            )
            .session()
            .expect(api(400, "invalid_limit")),
        );
    }
    cases.push(
        get(
            format!("{tx}?limit={}", urlencode(SQL)),
            "transactions with SQL as the limit",
        )
        .session()
        .expect(api(400, "invalid_limit")),
    );
    let txn = format!("txn_{}", "0".repeat(32));
    for (name, cursor) in [
        ("SQL", urlencode(SQL)),
        ("SQL in base64", b64(&format!("0:{SQL}"))),
        ("SQL in place of the id", b64(&format!("0:{SQL_NO_SPACES}"))),
        (
            "SQL in place of the time",
            b64(&format!("{SQL_NO_SPACES}:{txn}")),
        ),
        (
            "a time past i64",
            b64(&format!("99999999999999999999:{txn}")),
        ),
        ("an empty value", String::new()),
        ("10 KiB", kib(10, 'A')),
        ("a NUL", "%00".into()),
        ("invalid UTF-8", "%FF%FE".into()),
        ("invalid UTF-8 in base64", b64("\u{0}:\u{ffff}")),
        ("unicode", urlencode("курсор💥")),
    ] {
        cases.push(
            get(
                format!("{tx}?cursor={cursor}"),
                format!("transactions with a cursor of {name}"),
            )
            .session()
            .expect(api(400, "invalid_cursor")),
        );
    }
    cases.extend([
        get(
            format!("{tx}?limit=1&limit=2"),
            "transactions with a doubled limit",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(
            format!("{tx}?cursor=a&cursor=b"),
            "transactions with a doubled cursor",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(format!("{tx}?limit[]=1"), "transactions with limit[]")
            .session()
            .expect(api(400, "invalid_query")),
        get(
            format!("{tx}?{}=1", urlencode(SQL)),
            "transactions with SQL as a parameter name",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(format!("{tx}?limit=10"), "transactions without a session")
            .expect(api(401, "unauthorized")),
        post(tx, "transactions by POST")
            .session()
            .expect(wrong_method()),
    ]);

    // POST /api/webhooks/bank: signatures (over a body that would otherwise be applied).
    let event = serde_json::to_vec(&f.event).unwrap();
    let wh = |name: &str, body: &[u8], sig: Sig| {
        webhook(&f.secret, name, body, sig).header("content-type", "application/json")
    };
    let bad_sig = api(401, "invalid_signature");
    cases.extend([
        wh("no signature", &event, Sig::Missing).expect(bad_sig.clone()),
        wh("a stale signature", &event, Sig::Stale).expect(bad_sig.clone()),
        wh("a signature from the future", &event, Sig::Future).expect(bad_sig.clone()),
        wh("two correct signature headers", &event, Sig::Doubled).expect(bad_sig.clone()),
        wh("a signature over other bytes", &event, Sig::OtherBody).expect(bad_sig.clone()),
        wh("SQL as the signature", &event, Sig::Raw(SQL.into())).expect(bad_sig.clone()),
        wh(
            "unicode in the signature",
            &event,
            Sig::Raw("t=１,v1=💥".into()),
        )
        .expect(bad_sig.clone()),
        wh(
            "invalid UTF-8 in the signature",
            &event,
            Sig::Raw(b"t=1\xff,v1=\xfe".to_vec()),
        )
        .expect(bad_sig.clone()),
        wh(
            "a timestamp past i64",
            &event,
            Sig::Raw(format!("t=99999999999999999999,v1={}", "0".repeat(64)).into()),
        )
        .expect(bad_sig.clone()),
        wh(
            "a 16 KiB signature",
            &event,
            Sig::Raw(format!("t=1{}", format!(",v1={}", "0".repeat(64)).repeat(240)).into()),
        )
        .expect(bad_sig.clone()),
        wh("an empty signature", &event, Sig::Raw(Vec::new())).expect(bad_sig.clone()),
        wh("a signed 1 MiB body", kib(1024, ' ').as_bytes(), Sig::Good)
            .expect(api(413, "payload_too_large")),
        wh(
            "an unsigned 1 MiB body",
            kib(1024, ' ').as_bytes(),
            Sig::Missing,
        )
        .expect(api(413, "payload_too_large")),
        wh(
            "a signed body one byte past 16 KiB",
            &{
                let mut b = event.clone();
                b.resize(16 * 1024 + 1, b' ');
                b
            },
            Sig::Good,
        )
        .expect(api(413, "payload_too_large")),
        wh("from a browser on another site", &event, Sig::Good)
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        get("/api/webhooks/bank", "webhook by GET").expect(wrong_method()),
    ]);

    // POST /api/webhooks/bank: correctly signed bodies that are not a valid event for the deposit.
    let with = |field: &str, value: Value| {
        let mut e = f.event.clone();
        e[field] = value;
        serde_json::to_vec(&e).unwrap()
    };
    let without = |field: &str| {
        let mut e = f.event.clone();
        e.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&e).unwrap()
    };
    let raw_event = |amount: &str, extra: &str| {
        format!(
            r#"{{"event_id":"evt_1","token":"{}","ref":"{}","amount":{amount},"currency":"INR","status":"SUCCESS"{extra}}}"#,
            f.token, f.deposit_id
        )
        .into_bytes()
    };
    for (name, body, expect) in [
        ("an empty body", b"".to_vec(), api(400, "invalid_body")),
        ("text", b"hello".to_vec(), api(400, "invalid_body")),
        ("a JSON array", b"[]".to_vec(), api(400, "invalid_body")),
        ("an empty object", b"{}".to_vec(), api(400, "invalid_body")),
        ("null", b"null".to_vec(), api(400, "invalid_body")),
        (
            "amount 1e400",
            raw_event("1e400", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount 9223372036854775808",
            raw_event("9223372036854775808", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount -9223372036854775809",
            raw_event("-9223372036854775809", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount as a string",
            with("amount", json!(AMOUNT.to_string())),
            api(400, "invalid_body"),
        ),
        (
            "amount as a float",
            raw_event(&format!("{AMOUNT}.0"), ""),
            api(400, "invalid_body"),
        ),
        (
            "amount true",
            with("amount", json!(true)),
            api(400, "invalid_body"),
        ),
        (
            "amount {}",
            with("amount", json!({})),
            api(400, "invalid_body"),
        ),
        (
            "amount []",
            with("amount", json!([])),
            api(400, "invalid_body"),
        ),
        (
            "status in lower case",
            with("status", json!("success")),
            api(400, "invalid_body"),
        ),
        (
            "status PENDING",
            with("status", json!("PENDING")),
            api(400, "invalid_body"),
        ),
        (
            "status with a NUL",
            with("status", json!("SUCCESS\u{0}")),
            api(400, "invalid_body"),
        ),
        ("no status", without("status"), api(400, "invalid_body")),
        ("no token", without("token"), api(400, "invalid_body")),
        ("no event_id", without("event_id"), api(400, "invalid_body")),
        (
            "the token as a number",
            with("token", json!(1)),
            api(400, "invalid_body"),
        ),
        (
            "a doubled status",
            raw_event(&AMOUNT.to_string(), r#","status":"FAILURE""#),
            api(400, "invalid_body"),
        ),
        (
            "a doubled amount",
            raw_event(
                &AMOUNT.to_string(),
                &format!(r#","amount":{}"#, AMOUNT * 1000),
            ),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL after it",
            [event.as_slice(), b"\0"].concat(),
            api(400, "invalid_body"),
        ),
        (
            "a second event after it",
            [event.as_slice(), event.as_slice()].concat(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8",
            b"{\"event_id\":\"evt_\xff\xfe\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a byte-order mark",
            [b"\xef\xbb\xbf".as_slice(), event.as_slice()].concat(),
            api(400, "invalid_body"),
        ),
        (
            "5000 nested arrays",
            format!(
                r#"{{"event_id":{}1{}}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            api(400, "invalid_body"),
        ),
        (
            "an unknown token",
            with("token", json!("bank_session_unknown")),
            api(404, "unknown_token"),
        ),
        (
            "SQL as the token",
            with("token", json!(SQL)),
            api(404, "unknown_token"),
        ),
        (
            "SQL without spaces as the token",
            with("token", json!(SQL_NO_SPACES)),
            api(404, "unknown_token"),
        ),
        (
            "a unicode token",
            with("token", json!("токен💥")),
            api(404, "unknown_token"),
        ),
        (
            "an empty token",
            with("token", json!("")),
            api(404, "unknown_token"),
        ),
        (
            "a 10 KiB token",
            with("token", json!(kib(10, 't'))),
            api(404, "unknown_token"),
        ),
        (
            "SQL as the ref",
            with("ref", json!(SQL)),
            api(422, "deposit_mismatch"),
        ),
        (
            "another amount",
            with("amount", json!(AMOUNT + 1)),
            api(422, "deposit_mismatch"),
        ),
        (
            "a negative amount",
            with("amount", json!(-AMOUNT)),
            api(422, "deposit_mismatch"),
        ),
        (
            "amount i64::MAX",
            with("amount", json!(i64::MAX)),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency USD",
            with("currency", json!("USD")),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency inr",
            with("currency", json!("inr")),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency INR with a NUL",
            with("currency", json!("INR\u{0}")),
            api(422, "deposit_mismatch"),
        ),
    ] {
        cases.push(wh(name, &body, Sig::Good).expect(expect));
    }
    // The signature is checked before the body, whatever the content type says.
    let unknown = with("token", json!("bank_session_unknown"));
    cases.extend([
        webhook(
            &f.secret,
            "unknown token without a Content-Type",
            &unknown,
            Sig::Good,
        )
        .expect(api(404, "unknown_token")),
        webhook(
            &f.secret,
            "unknown token as text/plain",
            &unknown,
            Sig::Good,
        )
        .header("content-type", "text/plain")
        .expect(api(404, "unknown_token")),
        webhook(&f.secret, "unsigned, as text/plain", &event, Sig::Missing)
            .header("content-type", "text/plain")
            .expect(bad_sig.clone()),
    ]);

    // Health checks, metrics, and unknown paths and methods.
    cases.extend([
        post("/healthz", "healthz by POST").expect(wrong_method()),
        post("/metrics", "metrics by POST")
            .json("{}")
            .expect(wrong_method()),
        request("DELETE", "/readyz", "readyz by DELETE").expect(wrong_method()),
        post("/healthz", "healthz by POST from another site")
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        get("/nope", "an unknown path").expect(api(404, "not_found")),
        get("/api/deposits", "a near-miss path")
            .session()
            .expect(api(404, "not_found")),
        post("/nope", "an unknown path by POST")
            .json("{}")
            .expect(api(404, "not_found")),
        get(format!("/api/{}", urlencode(SQL)), "SQL as a path").expect(api(404, "not_found")),
        get("/api/%00", "a NUL in the path").expect(api(404, "not_found")),
        get("/api/%FF%FE", "invalid UTF-8 in the path").expect(api(404, "not_found")),
        get("/api/ключ/💥", "unicode in the path").expect(api(404, "not_found")),
        get(format!("/{}", kib(16, 'p')), "a 16 KiB path").expect(api(404, "not_found")),
        get("/api/balance/", "a trailing slash")
            .session()
            .expect(api(404, "not_found")),
    ]);
    cases
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Sending a case and judging the answer.

/// An answer, from reqwest or from a raw socket.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(app: &TestApp, session_cookie: &str, case: &Case) -> Answer {
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
fn forbidden_in_errors(app: &TestApp, session_cookie: &str) -> Vec<String> {
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
fn check_json_error(a: &Answer, code: Option<&str>, forbidden: &[String]) -> Result<(), String> {
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

fn judge(app: &TestApp, expect: &Expect, a: &Answer, forbidden: &[String]) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// The database before and after.

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
async fn snapshot(app: &TestApp) -> BTreeMap<&'static str, Vec<String>> {
    let mut s = BTreeMap::new();
    for (table, sql) in TABLES {
        s.insert(table, app.db.strings(sql).await);
    }
    s
}

fn row_counts(s: &BTreeMap<&'static str, Vec<String>>) -> String {
    s.iter()
        .map(|(t, rows)| format!("{t}={}", rows.len()))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// People and flows.

/// Signs in and answers the browser and its `session_id=…` cookie, to send by hand.
async fn signed_in_with_cookie(app: &TestApp, email: &str, name: &str) -> (Browser, String) {
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
async fn started_flow(app: &TestApp) -> (String, String) {
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
async fn still_serving(app: &TestApp, person: &Browser, processing_deposit: &str) {
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

// ---------------------------------------------------------------------------------------------
// The tests.

async fn every_endpoint_answers_hostile_input_with_a_json_4xx_and_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (person, cookie) = signed_in_with_cookie(&app, "mallory@example.com", "Mallory").await;
    let deposit = person.deposit(AMOUNT).await;
    let deposit_id = deposit["id"].as_str().unwrap().to_owned();
    let mut flows = Vec::new();
    for _ in 0..3 {
        flows.push(started_flow(&app).await);
    }
    let fixture = Fixture {
        secret: app.webhook_secret(),
        origin: app.state.urls.public_origin.clone(),
        token: app.token_of(&deposit_id).await,
        event: app.event_for(&deposit_id, "SUCCESS").await,
        deposit_id: deposit_id.clone(),
        flows,
        recipient: "trent@example.com".into(),
    };
    app.signed_in(&fixture.recipient, "Trent").await;
    let forbidden = forbidden_in_errors(&app, &cookie);
    let before = snapshot(&app).await;
    println!("before: {}", row_counts(&before));

    let cases = hostile_cases(&fixture);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for case in &cases {
        let answer = send(&app, &cookie, case).await;
        *statuses.entry(answer.status).or_default() += 1;
        let verdict = judge(&app, &case.expect, &answer, &forbidden);
        println!(
            "{:>3} {:<7} {:<5} {:<60} {}",
            answer.status,
            case.method,
            if verdict.is_ok() { "ok" } else { "FAIL" },
            case.name,
            verdict.as_ref().err().map(String::as_str).unwrap_or("")
        );
        if let Err(why) = verdict {
            failures.push(format!(
                "{} ({} {}): {why}",
                case.name, case.method, case.path
            ));
        }
    }
    println!(
        "{} cases in {:?}; statuses {statuses:?}",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let after = snapshot(&app).await;
    assert_eq!(before, after, "hostile requests changed the database");
    still_serving(&app, &person, &deposit_id).await;
}

/// A request as raw bytes over a fresh connection; the answer as far as one came back.
async fn raw(app: &TestApp, request: &[u8]) -> Option<Answer> {
    use actix_web::rt::net::TcpStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    let write = async {
        // The server may refuse and close before it has read everything; that is its right.
        let _ = wr.write_all(request).await;
        let _ = wr.flush().await;
    };
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match actix_web::rt::time::timeout(Duration::from_secs(10), rd.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    };
    let ((), buf) = futures_util::join!(write, read);
    parse_answer(&buf)
}

fn parse_answer(buf: &[u8]) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[end + 4..];
    answer.body = match answer
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        Some(n) => rest[..n.min(rest.len())].to_vec(),
        None if answer.header("transfer-encoding") == Some("chunked") => dechunk(rest),
        None => rest.to_vec(),
    };
    Some(answer)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || rest.len() < eol + 2 + size {
            break;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[(eol + 2 + size + 2).min(rest.len())..];
    }
    body
}

struct RawCase {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn raw_cases(cookie: &str) -> Vec<RawCase> {
    let h = "Host: localhost\r\nConnection: close\r\n";
    let deposit = |extra: &str, body: &[u8]| {
        [
            format!(
                "POST /api/deposit HTTP/1.1\r\n{h}Cookie: {cookie}\r\nContent-Type: application/json\r\n{extra}\r\n"
            )
            .into_bytes(),
            body.to_vec(),
        ]
        .concat()
    };
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    // Four chunks of 16 KiB of spaces, then the last chunk: 64 KiB without a Content-Length.
    let chunk = [b"4000\r\n".as_slice(), &[b' '; 0x4000], b"\r\n"].concat();
    let chunked_64k = [chunk.repeat(4).as_slice(), b"0\r\n\r\n"].concat();
    vec![
        RawCase {
            name: "a path with dot segments left as sent",
            request: format!("GET /static/../../Cargo.toml HTTP/1.1\r\n{h}\r\n").into_bytes(),
            expect: api(404, "not_found"),
        },
        RawCase {
            name: "an absolute URI to another host",
            request: format!("GET http://evil.example/api/user/me HTTP/1.1\r\n{h}\r\n")
                .into_bytes(),
            expect: api(401, "unauthorized"),
        },
        RawCase {
            name: "a chunked 64 KiB deposit body",
            request: deposit("Transfer-Encoding: chunked\r\n", &chunked_64k),
            expect: api(413, "payload_too_large"),
        },
        RawCase {
            name: "a NUL in a header value",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}X-A: a\0b\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            // Header values a client library will not even send.
            name: "a DEL in the Idempotency-Key",
            request: deposit(
                "Content-Length: 15\r\nIdempotency-Key: a\x7fb\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the Idempotency-Key",
            request: deposit(
                "Content-Length: 15\r\nIdempotency-Key: a\0b\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the cookie",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}Cookie: session_id=\0\r\n\r\n")
                .into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the path",
            request: format!("GET /api/\0 HTTP/1.1\r\n{h}\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a space in a header name",
            request: format!("GET /healthz HTTP/1.1\r\n{h}Bad Header: x\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a header folded over two lines",
            request: format!("GET /healthz HTTP/1.1\r\n{h}X-A: a\r\n b\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a request line that is not HTTP",
            request: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "two different Content-Lengths",
            request: deposit(
                "Content-Length: 15\r\nContent-Length: 2\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "Content-Length and chunked together",
            request: deposit(
                "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
                b"f\r\n{\"amount\": 100}\r\n0\r\n\r\n",
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a negative Content-Length",
            request: deposit("Content-Length: -1\r\n", br#"{"amount": 100}"#),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a Content-Length past u64",
            request: deposit("Content-Length: 99999999999999999999999\r\n", b"{}"),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a broken chunk size",
            request: deposit("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "100 headers",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}{many_headers}\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a 160 KiB header",
            request: format!(
                "GET /api/user/me HTTP/1.1\r\n{h}X-Big: {}\r\n\r\n",
                "b".repeat(160 * 1024)
            )
            .into_bytes(),
            expect: Expect::HttpLayer,
        },
    ]
}

async fn requests_broken_at_the_http_layer_are_refused_and_the_server_keeps_serving(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (person, cookie) = signed_in_with_cookie(&app, "eve@example.com", "Eve").await;
    let deposit = person.deposit(AMOUNT).await;
    let deposit_id = deposit["id"].as_str().unwrap().to_owned();
    let forbidden = forbidden_in_errors(&app, &cookie);
    let before = snapshot(&app).await;

    let cases = raw_cases(&cookie);
    let mut failures = Vec::new();
    for case in &cases {
        let verdict = match raw(&app, &case.request).await {
            Some(answer) => {
                let v = judge(&app, &case.expect, &answer, &forbidden);
                println!(
                    "{:>3} {:<5} {:<45} body {:?} {}",
                    answer.status,
                    if v.is_ok() { "ok" } else { "FAIL" },
                    case.name,
                    answer.text().chars().take(80).collect::<String>(),
                    v.as_ref().err().map(String::as_str).unwrap_or("")
                );
                v
            }
            None => Err("the connection closed without an answer".to_owned()),
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} broken requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        before,
        snapshot(&app).await,
        "broken requests changed the database"
    );
    still_serving(&app, &person, &deposit_id).await;
}

async fn security_headers_are_on_the_page_and_on_api_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let person = app.signed_in("hedwig@example.com", "Hedwig").await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.address);
    let answers = [
        ("the page", client.get(url("/")).send().await.unwrap(), 200),
        (
            "a 401",
            client.get(url("/api/balance")).send().await.unwrap(),
            401,
        ),
        ("a 404", client.get(url("/nope")).send().await.unwrap(), 404),
        (
            "a wrong method",
            client.put(url("/api/balance")).send().await.unwrap(),
            404,
        ),
        ("a 400", person.get("/api/transactions?limit=0").await, 400),
        (
            "a 403",
            person
                .client
                .post(url("/api/deposit"))
                .header("origin", "https://evil.example")
                .json(&json!({"amount": 100}))
                .send()
                .await
                .unwrap(),
            403,
        ),
        (
            "a 413",
            person
                .client
                .post(url("/api/deposit"))
                .header("content-type", "application/json")
                .body(" ".repeat(64 * 1024))
                .send()
                .await
                .unwrap(),
            413,
        ),
    ];
    for (what, r, status) in answers {
        assert_eq!(r.status(), status, "{what}");
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what} has no Content-Security-Policy"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(
            h.get("referrer-policy").is_some(),
            "{what} has no Referrer-Policy"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        if status >= 400 {
            let a = Answer {
                status,
                headers: h
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
                body: r.bytes().await.unwrap().to_vec(),
            };
            check_json_error(&a, None, &[]).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

async fn sql_and_unicode_that_are_valid_input_are_stored_as_plain_text(backend: Backend) {
    let app = spawn_app(backend).await;
    // A name full of SQL and unicode; an email with SQL in it.
    let name = "Robert'); DROP TABLE users;-- 🦀 Ünïcödé \u{202e}ǝɯɐu";
    let email = "robert');drop/**/table/**/users;--@example.com";
    let (person, _) = signed_in_with_cookie(&app, email, name).await;
    let me: Value = person.me().await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(me["name"], name);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);

    // An Idempotency-Key made of SQL (printable ASCII, so it is a valid key) is just a key.
    let first = person
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("idempotency-key", SQL_NO_SPACES)
        .json(&json!({"amount": 1234}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = person
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("idempotency-key", SQL_NO_SPACES)
        .json(&json!({"amount": 1234}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(
        app.db.strings("SELECT idempotency_key FROM deposits").await,
        vec![SQL_NO_SPACES.to_owned()]
    );
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 1);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(person.transactions().await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Property: correctly signed webhook bodies, whatever they hold, never crash the app or change
// the books. A sync test drives the proptest runner and each case's requests on one actix system.

mod signed_webhook_bodies_never_crash_the_app_or_change_anything {
    use onramp_test_support::Backend;

    #[test]
    fn sqlite() {
        super::signed_webhook_bodies(Backend::Sqlite)
    }
    #[test]
    fn postgres() {
        super::signed_webhook_bodies(Backend::Postgres)
    }
}

const EVENT_FIELDS: [&str; 6] = ["event_id", "token", "ref", "amount", "currency", "status"];

/// Any JSON: numbers of every kind, unicode strings, and the event's own words.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "SUCCESS",
            "FAILURE",
            "INR",
            "evt_1",
            SQL,
            "bank_session_x"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EVENT_FIELDS.to_vec()).prop_map(String::from),
        ".{0,12}",
    ]
}

/// A real event for the deposit with one thing wrong: a field replaced by any other JSON value
/// (never a valid status), or a field missing; and maybe extra fields.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(&'static str, Value),
    Remove(&'static str),
}

fn mutation() -> impl Strategy<Value = (Mutation, Vec<(String, Value)>)> {
    let replace = (
        prop::sample::select(vec!["token", "ref", "amount", "currency", "status"]),
        prop_oneof![
            1 => any_json(),
            2 => ".{0,40}".prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
        ],
    )
        .prop_map(|(f, v)| Mutation::Replace(f, v));
    let remove = prop::sample::select(EVENT_FIELDS.to_vec()).prop_map(Mutation::Remove);
    let extra = prop::collection::vec(
        (
            ".{1,12}".prop_filter("not an event field", |k| {
                !EVENT_FIELDS.contains(&k.as_str())
            }),
            any_json(),
        ),
        0..3,
    );
    (prop_oneof![3 => replace, 1 => remove], extra)
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Mutated(Mutation, Vec<(String, Value)>),
    Bytes(Vec<u8>),
}

fn webhook_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => any_json().prop_map(Body::Json),
        2 => mutation().prop_map(|(m, extra)| Body::Mutated(m, extra)),
        1 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(Body::Bytes),
    ]
}

fn signed_webhook_bodies(backend: Backend) {
    const CASES: u32 = 256;
    let system = actix_web::rt::System::new();
    let (app, person, event) = system.block_on(async {
        let app = spawn_app(backend).await;
        let person = app.signed_in("prop@example.com", "Prop").await;
        let id = person.deposit(AMOUNT).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let event = app.event_for(&id, "SUCCESS").await;
        (app, person, event)
    });
    let forbidden = forbidden_in_errors(&app, "");
    let before = system.block_on(snapshot(&app));
    let secret = app.webhook_secret();
    let started = Instant::now();

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(BTreeMap::<u16, u32>::new());
    let result = runner.run(&webhook_body(), |body| {
        let raw = match &body {
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
            Body::Bytes(b) => b.clone(),
            Body::Mutated(m, extra) => {
                let mut e = event.clone();
                let obj = e.as_object_mut().unwrap();
                match m {
                    Mutation::Replace(field, v) => {
                        prop_assume!(obj[*field] != *v);
                        prop_assume!(!(*field == "status" && (v == "SUCCESS" || v == "FAILURE")));
                        obj.insert(field.to_string(), v.clone());
                    }
                    Mutation::Remove(field) => {
                        obj.remove(*field);
                    }
                }
                for (k, v) in extra {
                    obj.insert(k.clone(), v.clone());
                }
                serde_json::to_vec(&e).unwrap()
            }
        };
        system.block_on(async {
            let t = chrono::Utc::now().timestamp();
            let header = sign_header(&[&secret], t, &raw);
            let r = app.post_raw_webhook(raw.clone(), Some(header)).await;
            let a = Answer {
                status: r.status().as_u16(),
                headers: r
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: r.bytes().await.unwrap().to_vec(),
            };
            *statuses.borrow_mut().entry(a.status).or_default() += 1;
            prop_assert!(
                matches!(a.status, 400 | 404 | 422),
                "status {} for {:?}: {}",
                a.status,
                String::from_utf8_lossy(&raw),
                a.text()
            );
            check_json_error(&a, None, &forbidden).map_err(TestCaseError::fail)?;
            let now = snapshot(&app).await;
            prop_assert_eq!(&before, &now, "the database changed");
            Ok(())
        })
    });
    println!(
        "{backend:?}: {CASES} signed webhook bodies in {:?}, statuses {:?}",
        started.elapsed(),
        statuses.borrow()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    system.block_on(async {
        // The real event is still applied once.
        let r = app.post_webhook(&event, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(person.balance().await, AMOUNT);
        app.assert_books_balance().await;
        app.handle.stop(false).await;
    });
}

//! The table's cases: a request (method, path, headers, body, the person's session or not) and
//! what it must get, their builders, and the fixture they are built from.

use serde_json::Value;

/// What a hostile request must get.
#[derive(Debug, Clone)]
pub(super) enum Expect {
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

pub(super) fn api(status: u16, code: &'static str) -> Expect {
    Expect::Api(status, Some(code))
}

/// A known path with another method: actix-web hands it to the app's default service, our JSON
/// `404` (the spec asks for no `405`).
pub(super) fn wrong_method() -> Expect {
    api(404, "not_found")
}

pub(super) fn api_any_code(status: u16) -> Expect {
    Expect::Api(status, None)
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) name: String,
    pub(super) method: &'static str,
    pub(super) path: String,
    /// Send the signed-in person's session cookie.
    pub(super) session: bool,
    pub(super) headers: Vec<(&'static str, Vec<u8>)>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) expect: Expect,
}

pub(super) fn request(
    method: &'static str,
    path: impl Into<String>,
    name: impl Into<String>,
) -> Case {
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

pub(super) fn get(path: impl Into<String>, name: impl Into<String>) -> Case {
    request("GET", path, name)
}

pub(super) fn post(path: impl Into<String>, name: impl Into<String>) -> Case {
    request("POST", path, name)
}

impl Case {
    pub(super) fn session(mut self) -> Self {
        self.session = true;
        self
    }
    pub(super) fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }
    /// A body sent as `application/json`.
    pub(super) fn json(self, body: impl AsRef<[u8]>) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    /// A body with no `Content-Type` of its own.
    pub(super) fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }
    pub(super) fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// What the table needs from the running app.
pub(super) struct Fixture {
    pub(super) secret: Vec<u8>,
    /// The app's own origin.
    pub(super) origin: String,
    pub(super) deposit_id: String,
    pub(super) token: String,
    pub(super) event: Value,
    /// Sign-in flows started for the callback cases: (`oauth_flow=…` cookie, state).
    pub(super) flows: Vec<(String, String)>,
    /// Another user's email, for transfers.
    pub(super) recipient: String,
}

/// `n` KiB of `c`.
pub(super) fn kib(n: usize, c: char) -> String {
    c.to_string().repeat(n * 1024)
}

/// A `session_id` cookie of 8 KiB.
pub(super) fn big_cookie() -> String {
    format!("session_id={}", kib(8, 'a'))
}

/// A header value of 16 KiB.
pub(super) fn big_header() -> String {
    kib(16, 'x')
}

pub(super) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

//! Helpers shared by the HTTP tests: start the provider, drive the browser and client sides.
#![allow(dead_code)] // each test binary uses a subset

use std::net::TcpListener;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use onramp_dev_idp::{spawn, IdpConfig};
use rand::RngCore;
use reqwest::{redirect::Policy, Response, StatusCode};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "onramp-test-client";
pub const CLIENT_SECRET: &str = "test-secret-123";
/// A registered redirect URI with a query of its own, which must be preserved.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/api/auth/google/callback?from=app";
pub const OTHER_REDIRECT_URI: &str = "http://127.0.0.1:9/other";

pub fn config() -> IdpConfig {
    IdpConfig {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![REDIRECT_URI.into(), OTHER_REDIRECT_URI.into()],
        code_ttl: Duration::from_secs(60),
        token_ttl: Duration::from_secs(3600),
    }
}

pub struct Idp {
    pub base: String,
    pub http: reqwest::Client,
    pub config: IdpConfig,
}

/// Starts the provider with `spawn` on 127.0.0.1:0.
pub async fn start(config: IdpConfig) -> Idp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = spawn(listener, config.clone()).expect("spawn");
    actix_web::rt::spawn(server);
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Idp {
        base: format!("http://127.0.0.1:{port}"),
        http,
        config,
    }
}

pub async fn start_default() -> Idp {
    start(config()).await
}

/// A fresh PKCE pair (verifier, S256 challenge).
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization request the app sends.
pub fn authorize_query(challenge: &str, state: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid email profile"),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("nonce", "nonce-123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Replaces (or, with `None`, removes) one parameter.
pub fn with(
    mut query: Vec<(String, String)>,
    key: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    query.retain(|(k, _)| k != key);
    if let Some(v) = value {
        query.push((key.to_string(), v.to_string()));
    }
    query
}

impl Idp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get_authorize(&self, query: &[(String, String)]) -> Response {
        self.http
            .get(self.url("/authorize"))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_authorize(&self, form: &[(String, String)]) -> Response {
        self.http
            .post(self.url("/authorize"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Browser side: GET the form, fill it in from its own hidden fields, submit it; answers the
    /// `303` Location's `(code, state)` after checking it points at the redirect URI.
    pub async fn sign_in(&self, email: &str, name: &str, challenge: &str) -> (String, String) {
        let state = format!("state-{}", pkce_pair().0);
        let page = self
            .get_authorize(&authorize_query(challenge, &state))
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let mut form = hidden_fields(&html);
        form.push(("email".into(), email.into()));
        form.push(("name".into(), name.into()));
        form.push(("action".into(), "continue".into()));
        let resp = self.post_authorize(&form).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let location = url::Url::parse(location(&resp).as_str()).unwrap();
        assert_eq!(
            location.as_str().split('?').next(),
            REDIRECT_URI.split('?').next()
        );
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
        assert_eq!(pairs[0], ("from".into(), "app".into()));
        assert_eq!(pairs[1].0, "code");
        assert_eq!(pairs[2], ("state".into(), state.clone()));
        (pairs[1].1.clone(), state)
    }

    /// Token request with HTTP Basic client authentication.
    pub async fn token_basic(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        secret: &str,
    ) -> Response {
        self.http
            .post(self.url("/token"))
            .header("Authorization", basic(CLIENT_ID, secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Token request with the client credentials in the form.
    pub async fn token_form(&self, code: &str, verifier: &str, secret: &str) -> Response {
        self.http
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
                ("client_id", CLIENT_ID),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn userinfo(&self, authorization: Option<&str>) -> Response {
        let mut req = self.http.get(self.url("/userinfo"));
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        req.send().await.unwrap()
    }

    /// The full flow for one user: answers the access token.
    pub async fn login(&self, email: &str, name: &str) -> String {
        let (verifier, challenge) = pkce_pair();
        let (code, _) = self.sign_in(email, name, &challenge).await;
        let resp = self
            .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        json(resp).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Userinfo for a token, expecting success.
    pub async fn profile(&self, token: &str) -> serde_json::Value {
        let resp = self.userinfo(Some(&format!("Bearer {token}"))).await;
        assert_eq!(resp.status(), StatusCode::OK);
        json(resp).await
    }
}

/// `Basic base64(id:secret)` (raw, as most clients send it).
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub fn location(resp: &Response) -> String {
    resp.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

pub async fn json(resp: Response) -> serde_json::Value {
    resp.json().await.expect("a JSON body")
}

/// The hidden inputs of the sign-in form, in document order.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse("form input[type=hidden]").unwrap();
    doc.select(&sel)
        .map(|e| {
            (
                e.value().attr("name").unwrap().to_string(),
                e.value().attr("value").unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether the page has an element with this `data-testid`.
pub fn has_testid(html: &str, testid: &str) -> bool {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(&format!("[data-testid=\"{testid}\"]")).unwrap();
    doc.select(&sel).next().is_some()
}

/// Asserts an RFC 6749 error response: status and `error` (and `error_description` when given).
pub async fn assert_oauth_error(
    resp: Response,
    status: StatusCode,
    error: &str,
    description: Option<&str>,
) {
    assert_eq!(resp.status(), status);
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    let body = json(resp).await;
    match description {
        Some(d) => assert_eq!(
            body,
            serde_json::json!({ "error": error, "error_description": d })
        ),
        None => assert_eq!(body["error"], error, "{body}"),
    }
}

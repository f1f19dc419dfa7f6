//! The app's public interfaces as a browser and as the bank use them: sign-in through the
//! identity provider, deposits, transfers, withdrawals, balance, transactions, and signed
//! webhooks.
//!
//! One pooled client serves every simulated user: each request carries its user's
//! `session_id` cookie explicitly, which keeps ten thousand users to `concurrency` connections.

use super::phase::Rec;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, RequestBuilder, StatusCode};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "session_id";

/// The shared client: no redirects followed, keep-alive connections for `connections` tasks.
pub fn client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .redirect(Policy::none())
        .pool_max_idle_per_host(connections * 2 + 16)
        // Below the app's keep-alive (5 s), so that a connection the app is closing as idle is
        // never given a request (it would fail with no answer).
        .pool_idle_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// An answer read to its end.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// `name=value` of every cookie this answer sets.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let pair = v.split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned()
    }
}

/// Sends `req` and reads the whole answer, recording its latency in `rec` (as an error unless
/// its status is one of `expected`). A transport error is recorded and answered as `Err`.
pub async fn send(
    rec: &Rec,
    what: &str,
    req: RequestBuilder,
    expected: &[u16],
) -> Result<Answer, String> {
    let started = Instant::now();
    let result = async {
        let r = req.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await?.to_vec();
        Ok::<_, reqwest::Error>(Answer {
            status,
            headers,
            body,
        })
    }
    .await;
    match result {
        Ok(a) => {
            let ok = expected.contains(&a.status.as_u16());
            rec.request(started, ok);
            if a.status.is_server_error() {
                rec.server_error();
            }
            if !ok {
                rec.sample(|| format!("{what}: {} {}", a.status, a.snippet()));
            }
            Ok(a)
        }
        Err(e) => {
            rec.request(started, false);
            let message = format!("{what}: {e}");
            rec.sample(|| message.clone());
            Err(message)
        }
    }
}

/// [`send`] for one expected status; any other is an `Err` quoting the answer.
async fn send_expecting(
    rec: &Rec,
    what: &str,
    req: RequestBuilder,
    expected: StatusCode,
) -> Result<Answer, String> {
    let a = send(rec, what, req, &[expected.as_u16()]).await?;
    if a.status != expected {
        return Err(format!("{what} answered {} {}", a.status, a.snippet()));
    }
    Ok(a)
}

/// Signs in through the provider the app redirects to, as a browser would (three requests);
/// answers the `session_id=…` cookie pair.
pub async fn sign_in(
    client: &Client,
    rec: &Rec,
    app: &str,
    email: &str,
    name: &str,
) -> Result<String, String> {
    let (authorize, flow_cookies) = start_sign_in(client, rec, app).await?;
    let callback = submit_to_provider(client, rec, app, authorize, email, name).await?;
    finish_sign_in(client, rec, &callback, &flow_cookies).await
}

/// The provider's authorize URL, and the cookies that tie the callback to this sign-in.
async fn start_sign_in(
    client: &Client,
    rec: &Rec,
    app: &str,
) -> Result<(url::Url, Vec<String>), String> {
    let start = send(
        rec,
        "GET /api/auth/google",
        client.get(format!("{app}/api/auth/google")),
        &[302, 303],
    )
    .await?;
    if !matches!(start.status.as_u16(), 302 | 303) {
        return Err(format!("GET /api/auth/google answered {}", start.status));
    }
    let flow_cookies = start
        .cookies()
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let authorize = url::Url::parse(start.location())
        .map_err(|e| format!("the sign-in redirect {:?}: {e}", start.location()))?;
    Ok((authorize, flow_cookies))
}

/// Fills in the provider's form as the user would; answers the app's callback URL.
async fn submit_to_provider(
    client: &Client,
    rec: &Rec,
    app: &str,
    authorize: url::Url,
    email: &str,
    name: &str,
) -> Result<String, String> {
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("email".into(), email.into()));
    form.push(("name".into(), name.into()));
    let mut action = authorize;
    action.set_query(None);
    let submitted = send(
        rec,
        "POST <idp>/authorize",
        client.post(action.as_str()).form(&form),
        &[302, 303],
    )
    .await?;
    if !matches!(submitted.status.as_u16(), 302 | 303) {
        return Err(format!(
            "the provider answered {} {}",
            submitted.status,
            submitted.snippet()
        ));
    }
    let callback = submitted.location();
    Ok(if callback.starts_with('/') {
        format!("{app}{callback}")
    } else {
        callback.to_owned()
    })
}

async fn finish_sign_in(
    client: &Client,
    rec: &Rec,
    callback: &str,
    flow_cookies: &[String],
) -> Result<String, String> {
    let mut req = client.get(callback);
    if !flow_cookies.is_empty() {
        req = req.header(COOKIE, flow_cookies.join("; "));
    }
    let done = send(rec, "GET /api/auth/google/callback", req, &[303]).await?;
    if done.status != StatusCode::SEE_OTHER || done.location() != "/" {
        return Err(format!(
            "the callback answered {} to {:?}",
            done.status,
            done.location()
        ));
    }
    done.cookies()
        .into_iter()
        .find(|(n, v)| n == SESSION_COOKIE && !v.is_empty())
        .map(|(n, v)| format!("{n}={v}"))
        .ok_or_else(|| "the callback set no session cookie".to_owned())
}

/// A deposit the app created: its id and the bank's token.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub token: String,
}

/// `POST /api/deposit {"amount"}` as the signed-in user. On an error the app may have stored a
/// failed deposit (it does when the bank refuses the order).
pub async fn create_deposit(
    client: &Client,
    rec: &Rec,
    app: &str,
    cookie: &str,
    amount: i64,
) -> Result<Created, String> {
    let req = client
        .post(format!("{app}/api/deposit"))
        .header(COOKIE, cookie)
        .json(&serde_json::json!({ "amount": amount }));
    let a = send_expecting(rec, "POST /api/deposit", req, StatusCode::CREATED).await?;
    let v = a
        .json()
        .ok_or_else(|| "POST /api/deposit: not JSON".to_owned())?;
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let token = v["url"]
        .as_str()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "token")
                .map(|(_, t)| t.into_owned())
        })
        .unwrap_or_default();
    if id.is_empty() || token.is_empty() {
        return Err(format!("POST /api/deposit: no id or bank token in {v}"));
    }
    Ok(Created { id, token })
}

/// `GET /api/balance` as the signed-in user: the amount in paise.
pub async fn balance(client: &Client, rec: &Rec, app: &str, cookie: &str) -> Result<i64, String> {
    let req = client
        .get(format!("{app}/api/balance"))
        .header(COOKIE, cookie);
    let a = send_expecting(rec, "GET /api/balance", req, StatusCode::OK).await?;
    a.json()
        .and_then(|v| v["amount"].as_i64())
        .ok_or_else(|| format!("GET /api/balance: no amount in {}", a.snippet()))
}

/// One page of `GET /api/transactions?limit=100`: the items and the next cursor.
pub async fn transactions_page(
    client: &Client,
    rec: &Rec,
    app: &str,
    cookie: &str,
    cursor: Option<&str>,
) -> Result<(Vec<serde_json::Value>, Option<String>), String> {
    let mut url = url::Url::parse(&format!("{app}/api/transactions"))
        .map_err(|e| format!("the app URL: {e}"))?;
    url.query_pairs_mut().append_pair("limit", "100");
    if let Some(c) = cursor {
        url.query_pairs_mut().append_pair("cursor", c);
    }
    let req = client.get(url).header(COOKIE, cookie);
    let a = send_expecting(rec, "GET /api/transactions", req, StatusCode::OK).await?;
    let v = a
        .json()
        .ok_or_else(|| "GET /api/transactions: not JSON".to_owned())?;
    let items = v["items"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("GET /api/transactions: no items in {}", a.snippet()))?;
    Ok((items, v["next"].as_str().map(str::to_owned)))
}

/// Posts one webhook as the bank would: the raw body signed now with `secret`.
pub async fn post_webhook(
    client: &Client,
    rec: &Rec,
    app: &str,
    secret: &[u8],
    event_id: &str,
    body: &[u8],
    expected: &[u16],
) -> Result<Answer, String> {
    let t = chrono::Utc::now().timestamp();
    let signature = onramp_bank_protocol::signature::sign_header(&[secret], t, body);
    let req = client
        .post(format!("{app}/api/webhooks/bank"))
        .header(CONTENT_TYPE, "application/json")
        .header(onramp_bank_protocol::signature::EVENT_ID_HEADER, event_id)
        .header(onramp_bank_protocol::signature::SIGNATURE_HEADER, signature)
        .body(body.to_vec());
    send(rec, "POST /api/webhooks/bank", req, expected).await
}

/// `GET /healthz`.
pub async fn healthz(client: &Client, rec: &Rec, app: &str) -> Result<(), String> {
    send(
        rec,
        "GET /healthz",
        client.get(format!("{app}/healthz")),
        &[200],
    )
    .await
    .map(drop)
}

/// One `POST /api/transfers`: to whom (by email), how much, under which `Idempotency-Key`, and
/// the statuses that are a correct answer to it.
pub struct TransferRequest<'a> {
    pub to: &'a str,
    pub amount: i64,
    pub key: &'a str,
    pub expected: &'a [u16],
}

/// `POST /api/transfers {"to", "amount"}` as the signed-in user, with its `Idempotency-Key`.
pub async fn transfer(
    client: &Client,
    rec: &Rec,
    app: &str,
    cookie: &str,
    t: &TransferRequest<'_>,
) -> Result<Answer, String> {
    let body = serde_json::json!({ "to": t.to, "amount": t.amount });
    let req = post_keyed(client, app, "/api/transfers", cookie, t.key).json(&body);
    send(rec, "POST /api/transfers", req, t.expected).await
}

/// One `POST /api/withdrawals`: how much, under which `Idempotency-Key`, and the statuses that
/// are a correct answer to it.
pub struct WithdrawalRequest<'a> {
    pub amount: i64,
    pub key: &'a str,
    pub expected: &'a [u16],
}

/// `POST /api/withdrawals {"amount"}` as the signed-in user, with its `Idempotency-Key`.
pub async fn withdraw(
    client: &Client,
    rec: &Rec,
    app: &str,
    cookie: &str,
    w: &WithdrawalRequest<'_>,
) -> Result<Answer, String> {
    let body = serde_json::json!({ "amount": w.amount });
    let req = post_keyed(client, app, "/api/withdrawals", cookie, w.key).json(&body);
    send(rec, "POST /api/withdrawals", req, w.expected).await
}

/// A `POST` to `path` as the signed-in user (`cookie`), under `key` as its `Idempotency-Key`.
fn post_keyed(client: &Client, app: &str, path: &str, cookie: &str, key: &str) -> RequestBuilder {
    client
        .post(format!("{app}{path}"))
        .header(COOKIE, cookie)
        .header("Idempotency-Key", key)
}

/// The largest amounts `GET /api/settings` allows, where it says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// A deposit's or a transfer's, whichever is smaller (they are funded and sent alike).
    pub deposit: Option<i64>,
    pub withdrawal: Option<i64>,
}

/// The largest amount `GET /api/settings` allows a transfer (a deposit's, unless it names one
/// for transfers); `None` when it does not say.
pub async fn max_amount(client: &Client, app: &str) -> Option<i64> {
    limits(client, app).await.deposit
}

/// The limits of `GET /api/settings`; none known when it cannot be read.
pub async fn limits(client: &Client, app: &str) -> Limits {
    let settings = async {
        let r = client
            .get(format!("{app}/api/settings"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json::<serde_json::Value>().await.ok()
    };
    let Some(v) = settings.await else {
        return Limits::default();
    };
    let deposit = v["deposit"]["max_amount"].as_i64();
    Limits {
        deposit: match v["transfer"]["max_amount"].as_i64() {
            Some(t) => Some(deposit.map_or(t, |d| d.min(t))),
            None => deposit,
        },
        withdrawal: v["withdrawal"]["max_amount"].as_i64(),
    }
}

//! The bank simulator over real HTTP: a simulator on 127.0.0.1:0 with a temporary SQLite file, and
//! a webhook receiver (a small actix-web server) that records what it gets and can be told to
//! answer 500, to be slow, or to be down.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use onramp_bank_protocol::signature::{self, SignatureError};
use onramp_bank_sim::{BankSim, BankSimConfig, Faults};
use reqwest::StatusCode;
use serde_json::{json, Value};

const API_KEY: &str = "test-bank-api-key";
const SECRET: &str = "test-webhook-secret";
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// The webhook receiver.

#[derive(Clone, Debug)]
struct Received {
    event_id: Option<String>,
    signature: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }

    fn verify(&self, secrets: &[&[u8]]) -> Result<(), SignatureError> {
        signature::verify(self.signature.as_deref(), secrets, &self.body, now_secs())
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    /// Answers for the next requests: (status, delay before answering). Then 200 at once.
    script: Mutex<VecDeque<(u16, Duration)>>,
}

struct Receiver {
    state: Arc<ReceiverState>,
    addr: SocketAddr,
    handle: ServerHandle,
}

async fn hook(req: HttpRequest, body: web::Bytes, state: web::Data<ReceiverState>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.requests.lock().unwrap().push(Received {
        event_id: header("x-bank-event-id"),
        signature: header("x-bank-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let next = state.script.lock().unwrap().pop_front();
    let (status, delay) = next.unwrap_or((200, Duration::ZERO));
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("receiver")
}

impl Receiver {
    /// A receiver on `port` (0: any free port).
    async fn start(port: u16) -> Receiver {
        Receiver::start_with(port, Arc::new(ReceiverState::default())).await
    }

    async fn start_with(port: u16, state: Arc<ReceiverState>) -> Receiver {
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/hook", web::post().to(hook))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", port))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            state,
            addr,
            handle,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn script(&self, answers: &[(u16, Duration)]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().copied());
    }

    fn received(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} webhook requests, got {}",
                got.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A port nothing listens on (bound, then released without any connection).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

fn temp_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bank.db").display());
    Db { _dir: dir, url }
}

fn config(db: &Db, webhook_url: &str) -> BankSimConfig {
    BankSimConfig {
        api_key: API_KEY.into(),
        webhook_secrets: vec![SECRET.into()],
        webhook_url: webhook_url.into(),
        database_url: db.url.clone(),
        public_url: None,
        max_attempts: 5,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        payout_delay: Duration::from_millis(300),
        attempt_timeout: Duration::from_secs(2),
        faults: Faults::default(),
    }
}

async fn start(config: BankSimConfig) -> BankSim {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    BankSim::start(listener, config).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn create_raw(sim: &BankSim, content_type: &str, body: &str) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}/api/bank/create-order", sim.url()))
        .bearer_auth(API_KEY)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(response).await
}

async fn create(sim: &BankSim, reference: &str, amount: i64) -> (StatusCode, Value) {
    let body = json!({"ref": reference, "amount": amount, "currency": "INR",
        "return_url": "http://app.test/dashboard?deposit=1"});
    create_raw(sim, "application/json", &body.to_string()).await
}

/// Creates an order and returns its token.
async fn new_order(sim: &BankSim, reference: &str, amount: i64) -> String {
    let (status, body) = create(sim, reference, amount).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn get_order(sim: &BankSim, token: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}/api/bank/orders/{token}", sim.url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    read(response).await
}

async fn settle_api(sim: &BankSim, token: &str, action: &str) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}/api/bank/orders/{token}/{action}", sim.url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Creates an order with `expires_in` (any JSON value).
async fn create_expiring(
    sim: &BankSim,
    reference: &str,
    amount: i64,
    expires_in: Value,
) -> (StatusCode, Value) {
    let body = json!({"ref": reference, "amount": amount, "currency": "INR",
        "return_url": "http://app.test/dashboard?deposit=1", "expires_in": expires_in});
    create_raw(sim, "application/json", &body.to_string()).await
}

async fn cancel(sim: &BankSim, token: &str) -> (StatusCode, Value) {
    settle_api(sim, token, "cancel").await
}

/// The pay page of `token`: its status and HTML.
async fn pay_page(sim: &BankSim, token: &str) -> (StatusCode, String) {
    let response = client()
        .get(format!("{}/pay?token={token}", sim.url()))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The simulator's database, opened beside the running simulator (WAL allows it).
async fn open_db(db: &Db) -> sqlx::SqlitePool {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

/// `secs` seconds pass for the order `token`: its expiry moves that much earlier in the
/// simulator's database, which to the simulator is the same as its clock moving that much later
/// (an order's expiry is the only thing the clock decides).
async fn time_passes(db: &Db, token: &str, secs: i64) {
    let pool = open_db(db).await;
    let moved = sqlx::query("UPDATE orders SET expires_at = expires_at - ? WHERE token = ?")
        .bind(secs * 1000)
        .bind(token)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(moved, 1, "no order {token}");
    pool.close().await;
}

/// The status the simulator has stored (not just shown) for `token`.
async fn stored_status(db: &Db, token: &str) -> String {
    let pool = open_db(db).await;
    let status = sqlx::query_scalar("SELECT status FROM orders WHERE token = ?")
        .bind(token)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    status
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339 in UTC, whole seconds: what the simulator writes) as unix
/// seconds; panics on anything else.
fn unix_secs(rfc3339: &str) -> i64 {
    let b = rfc3339.as_bytes();
    assert!(
        b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z',
        "not RFC 3339 UTC: {rfc3339}"
    );
    let n = |from: usize, to: usize| -> i64 { rfc3339[from..to].parse().unwrap() };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "{rfc3339}");
    // Days since 1970-01-01 (H. Hinnant's `days_from_civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

/// A page that says the order ended unpaid with `status`, and offers no way to pay it.
fn assert_ended_page(page: &str, status: &str) {
    assert!(page.contains(r#"data-testid="bank-order-ended""#), "{page}");
    assert!(
        page.contains(&format!(
            r#"<span data-testid="bank-status">{status}</span>"#
        )),
        "{page}"
    );
    let words = match status {
        "EXPIRED" => "This payment request has expired",
        _ => "This payment request was cancelled",
    };
    assert!(page.contains(words), "{page}");
    assert!(
        !page.contains("bank-approve") && !page.contains("bank-decline"),
        "{page}"
    );
}

/// Nothing was sent for `token`, nor queued: waits long enough for a delivery to have happened.
async fn assert_no_webhook(sim: &BankSim, receiver: &Receiver, token: &str) {
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.json()["token"] != token),
        "a webhook was sent for {token}"
    );
    let queued: Vec<Value> = deliveries(sim)
        .await
        .into_iter()
        .filter(|d| d["token"] == token)
        .collect();
    assert!(queued.is_empty(), "{queued:?}");
}

/// Submits the pay page's Approve or Decline form.
async fn settle_form(sim: &BankSim, token: &str, action: &str) -> reqwest::Response {
    client()
        .post(format!("{}/pay/{action}", sim.url()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn deliveries(sim: &BankSim) -> Vec<Value> {
    let response = client()
        .get(format!("{}/api/bank/deliveries", sim.url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

/// Waits until the delivery of `token` satisfies `done`; returns it.
async fn wait_delivery(sim: &BankSim, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = deliveries(sim).await;
        if let Some(d) = all.iter().find(|d| d["token"] == token) {
            if done(d) {
                return d.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "delivery never got there: {all:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Checks a webhook against the contract: headers, signature, body.
fn assert_webhook(r: &Received, token: &str, reference: &str, amount: i64, status: &str) {
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.verify(&[SECRET.as_bytes()]), Ok(()), "{:?}", r.signature);
    assert_eq!(r.verify(&[b"another secret"]), Err(SignatureError::NoMatch));
    let body = r.json();
    let event_id = r.event_id.clone().expect("X-Bank-Event-Id");
    assert!(
        event_id.starts_with("evt_") && event_id.len() > 20,
        "{event_id}"
    );
    assert_eq!(
        body,
        json!({"event_id": event_id, "token": token, "ref": reference, "amount": amount,
            "currency": "INR", "status": status})
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6);
}

// ---------------------------------------------------------------------------------------------
// Bank API.

#[actix_web::test]
async fn create_order_is_idempotent_on_ref() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;

    let (status, first) = create(&sim, "txn_idem_1", 10000).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let token = first["token"].as_str().unwrap();
    let random = token.strip_prefix("bank_session_").expect("token prefix");
    assert!(
        random.len() >= 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    assert_eq!(first["pay_url"], format!("{}/pay?token={token}", sim.url()));
    assert!(first["expires_at"].is_string(), "{first}");
    assert_eq!(first.as_object().unwrap().len(), 3);

    let (status, again) = create(&sim, "txn_idem_1", 10000).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);

    let (status, body) = create(&sim, "txn_idem_1", 10001).await;
    assert_error(status, &body, StatusCode::CONFLICT, "ref_conflict");

    let (status, other) = create(&sim, "txn_idem_2", 10000).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["token"], first["token"]);

    let (status, order) = get_order(&sim, token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        order,
        json!({"token": token, "ref": "txn_idem_1", "amount": 10000, "currency": "INR",
            "expires_at": first["expires_at"], "status": "PENDING"})
    );
    let (status, body) = get_order(&sim, "bank_session_unknown").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    sim.stop().await;
}

/// Every error answer of the Bank API is JSON, a request with the wrong method's included.
#[actix_web::test]
async fn a_wrong_method_gets_a_json_error() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/api/bank/create-order", "POST"),
        (reqwest::Method::PUT, "/api/bank/payouts", "POST"),
        (
            reqwest::Method::DELETE,
            "/api/bank/orders/bank_session_x",
            "GET",
        ),
        (
            reqwest::Method::GET,
            "/api/bank/orders/bank_session_x/cancel",
            "POST",
        ),
    ] {
        let url = format!("{}{path}", sim.url());
        let answer = client()
            .request(method.clone(), &url)
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let allowed = answer.headers().get("allow").cloned();
        let (status, body) = read(answer).await;
        assert_error(
            status,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(allowed.as_ref().and_then(|v| v.to_str().ok()), Some(allow));
    }
    sim.stop().await;
}

#[actix_web::test]
async fn bad_create_order_bodies_are_refused() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    let url = r#""return_url":"http://app.test/r""#;
    let cases = [
        (
            format!(r#"{{"ref":"txn_bad","amount":100.5,"currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":100.0,"currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":"100","currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":0,"currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":-100,"currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":9223372036854775808,"currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"ref":"txn_bad","currency":"INR",{url}}}"#),
            "invalid_amount",
        ),
        (
            format!(r#"{{"amount":100,"currency":"INR",{url}}}"#),
            "invalid_ref",
        ),
        (
            format!(r#"{{"ref":"txn bad","amount":100,"currency":"INR",{url}}}"#),
            "invalid_ref",
        ),
        (
            format!(
                r#"{{"ref":"{}","amount":100,"currency":"INR",{url}}}"#,
                "r".repeat(101)
            ),
            "invalid_ref",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":100,"currency":"USD",{url}}}"#),
            "invalid_currency",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":100,{url}}}"#),
            "invalid_currency",
        ),
        (
            r#"{"ref":"txn_bad","amount":100,"currency":"INR"}"#.to_string(),
            "invalid_return_url",
        ),
        (
            r#"{"ref":"txn_bad","amount":100,"currency":"INR","return_url":"javascript:alert(1)"}"#
                .to_string(),
            "invalid_return_url",
        ),
        (
            r#"{"ref":"txn_bad","amount":100,"currency":"INR","return_url":"/relative"}"#
                .to_string(),
            "invalid_return_url",
        ),
        (
            format!(r#"{{"ref":"txn_bad","amount":100,"currency":"INR",{url},"extra":1}}"#),
            "invalid_body",
        ),
        (
            r#"["txn_bad",100,"INR","http://app.test/r"]"#.to_string(),
            "invalid_body",
        ),
        ("not json".to_string(), "invalid_body"),
        (String::new(), "invalid_body"),
    ];
    for (body, code) in &cases {
        let (status, answer) = create_raw(&sim, "application/json", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
    }
    let good = format!(r#"{{"ref":"txn_bad","amount":100,"currency":"INR",{url}}}"#);
    let (status, body) = create_raw(&sim, "text/plain", &good).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // None of the refused bodies created the order.
    let (status, body) = create_raw(&sim, "application/json; charset=utf-8", &good).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    sim.stop().await;
}

#[actix_web::test]
async fn the_api_key_is_required() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    let token = new_order(&sim, "txn_auth", 100).await;
    let c = client();
    let base = sim.url();
    let good = json!({"ref": "txn_auth_2", "amount": 100, "currency": "INR",
        "return_url": "http://app.test/r"});
    let requests = || {
        vec![
            c.post(format!("{base}/api/bank/create-order")).json(&good),
            c.get(format!("{base}/api/bank/orders/{token}")),
            c.post(format!("{base}/api/bank/orders/{token}/approve")),
            c.post(format!("{base}/api/bank/orders/{token}/decline")),
            c.post(format!("{base}/api/bank/orders/{token}/cancel")),
            c.get(format!("{base}/api/bank/deliveries")),
        ]
    };
    for auth in [
        None,
        Some("Bearer wrong-key".to_string()),
        Some(format!("Bearer {API_KEY}x")),
        Some(format!("Basic {API_KEY}")),
        Some(API_KEY.to_string()),
        Some("Bearer ".to_string()),
    ] {
        for request in requests() {
            let request = match &auth {
                Some(a) => request.header("authorization", a),
                None => request,
            };
            let (status, body) = read(request.send().await.unwrap()).await;
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // Nothing happened: the order is still pending and txn_auth_2 does not exist yet.
    assert_eq!(get_order(&sim, &token).await.1["status"], "PENDING");
    assert_eq!(create(&sim, "txn_auth_2", 100).await.0, StatusCode::CREATED);
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Pay page, settlement and webhooks.

#[actix_web::test]
async fn the_pay_page_shows_the_amount_and_both_buttons() {
    let db = temp_db();
    let mut cfg = config(&db, "http://127.0.0.1:9/hook");
    cfg.public_url = Some("http://bank.example:9999/".into());
    let sim = start(cfg).await;
    let (status, created) = create(&sim, "txn_page", 123456).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        created["pay_url"],
        format!("http://bank.example:9999/pay?token={token}")
    );

    let response = client()
        .get(format!("{}/pay?token={token}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("₹1,234.56"), "{page}");
    assert!(page.contains("onramp"));
    assert!(page.contains(r#"data-testid="bank-approve""#));
    assert!(page.contains(r#"data-testid="bank-decline""#));
    assert!(page.contains(r#"method="post" action="pay/approve""#));
    assert!(page.contains(r#"method="post" action="pay/decline""#));
    assert!(page.contains(&format!(r#"name="token" value="{token}""#)));
    assert!(!page.contains("bank-already-final"));

    let hundred = new_order(&sim, "txn_page_2", 10000).await;
    let page = client()
        .get(format!("{}/pay?token={hundred}", sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("₹100.00"), "{page}");

    for path in [
        "/pay?token=bank_session_nope",
        "/pay?token=%3Cscript%3E",
        "/pay",
    ] {
        let response = client()
            .get(format!("{}{path}", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let page = response.text().await.unwrap();
        assert!(!page.contains("<script>"), "{page}");
    }
    sim.stop().await;
}

#[actix_web::test]
async fn approve_redirects_and_sends_a_signed_success_webhook() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let token = new_order(&sim, "txn_approve", 10000).await;

    let response = settle_form(&sim, &token, "approve").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "http://app.test/dashboard?deposit=1"
    );

    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_approve", 10000, "SUCCESS");
    assert_eq!(get_order(&sim, &token).await.1["status"], "SUCCESS");

    let d = wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    assert_eq!(d["event_id"], got[0].event_id.clone().unwrap());
    assert_eq!(d["status"], "SUCCESS");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "a delivered event is not sent again"
    );
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn decline_sends_a_failure_webhook() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let token = new_order(&sim, "txn_decline", 2500).await;

    let response = settle_form(&sim, &token, "decline").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "http://app.test/dashboard?deposit=1"
    );
    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_decline", 2500, "FAILURE");
    assert_eq!(get_order(&sim, &token).await.1["status"], "FAILURE");
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn acting_on_a_final_order_changes_nothing() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let token = new_order(&sim, "txn_twice", 700).await;
    assert_eq!(
        settle_form(&sim, &token, "approve").await.status(),
        StatusCode::SEE_OTHER
    );

    for action in ["decline", "approve"] {
        let response = settle_form(&sim, &token, action).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{action}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(r#"data-testid="bank-already-final""#),
            "{page}"
        );
        let (status, body) = settle_api(&sim, &token, action).await;
        assert_error(status, &body, StatusCode::CONFLICT, "not_pending");
    }
    assert_eq!(get_order(&sim, &token).await.1["status"], "SUCCESS");

    // The pay page of a final order has no buttons any more.
    let page = client()
        .get(format!("{}/pay?token={token}", sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("bank-already-final") && !page.contains("bank-approve"),
        "{page}"
    );

    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_twice", 700, "SUCCESS");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(deliveries(&sim).await.len(), 1);

    let response = settle_form(&sim, "bank_session_nope", "approve").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("bank-not-found"));
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn the_json_settle_endpoints_work_without_a_browser() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let approved = new_order(&sim, "txn_json_a", 100).await;
    let declined = new_order(&sim, "txn_json_d", 200).await;

    let (status, body) = settle_api(&sim, &approved, "approve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "SUCCESS");
    let (status, body) = settle_api(&sim, &declined, "decline").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "FAILURE");
    let (status, body) = settle_api(&sim, &approved, "decline").await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_pending");
    let (status, body) = settle_api(&sim, "bank_session_nope", "approve").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let got = receiver.wait_for(2).await;
    let mut statuses: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["ref"].as_str().unwrap().into(),
                b["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("txn_json_a".to_string(), "SUCCESS".to_string()),
            ("txn_json_d".to_string(), "FAILURE".to_string())
        ]
    );
    sim.stop().await;
    receiver.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Expiry and cancel.

#[actix_web::test]
async fn expires_at_is_in_the_answers_and_follows_expires_in() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;

    let before = now_secs();
    let (status, default) = create(&sim, "txn_exp_default", 100).await;
    assert_eq!(status, StatusCode::CREATED, "{default}");
    let (status, shortest) = create_expiring(&sim, "txn_exp_60", 100, json!(60)).await;
    assert_eq!(status, StatusCode::CREATED, "{shortest}");
    let (status, longest) = create_expiring(&sim, "txn_exp_day", 100, json!(86400)).await;
    assert_eq!(status, StatusCode::CREATED, "{longest}");
    let after = now_secs();

    // Each order expires `expires_in` (default 3600) seconds after it was created, never sooner,
    // and GET shows the same expiry.
    for (created, secs) in [(&default, 3600), (&shortest, 60), (&longest, 86400)] {
        let expires_at = unix_secs(created["expires_at"].as_str().unwrap());
        assert!(
            (before + secs..=after + secs + 1).contains(&expires_at),
            "{created}: expected about now + {secs} s"
        );
        let (status, order) = get_order(&sim, created["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(order["expires_at"], created["expires_at"], "{order}");
        assert_eq!(order["status"], "PENDING");
        assert_eq!(order.as_object().unwrap().len(), 6, "{order}");
    }

    // A repeated ref is the same order with the same expiry, whatever `expires_in` it carries.
    let (status, again) = create_expiring(&sim, "txn_exp_60", 100, json!(7200)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, shortest);
    let (status, again) = create(&sim, "txn_exp_60", 100).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, shortest);
    sim.stop().await;
}

#[actix_web::test]
async fn bad_expires_in_values_are_refused_and_create_nothing() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    for bad in [
        "59",
        "86401",
        r#""60""#,
        "60.5",
        "-1",
        "0",
        "60.0",
        "6e1",
        "true",
        "[60]",
        "4294967356",
    ] {
        let body = format!(
            r#"{{"ref":"txn_exp_bad","amount":100,"currency":"INR","return_url":"http://app.test/r","expires_in":{bad}}}"#
        );
        let (status, answer) = create_raw(&sim, "application/json", &body).await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_expires_in",
        );
    }
    // None of them created the order: the ref is still free.
    let (status, created) = create_expiring(&sim, "txn_exp_bad", 100, json!(60)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    sim.stop().await;
}

#[actix_web::test]
async fn an_unpaid_order_expires_and_can_no_longer_be_paid() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;

    // An order that gives the user 60 seconds to pay.
    let (status, created) = create_expiring(&sim, "txn_expiring", 5000, json!(60)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();

    // 50 seconds later it can still be paid.
    time_passes(&db, &token, 50).await;
    assert_eq!(get_order(&sim, &token).await.1["status"], "PENDING");
    let (status, page) = pay_page(&sim, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"data-testid="bank-approve""#), "{page}");

    // 11 seconds more and nobody paid: the order has expired, for GET and in the database.
    time_passes(&db, &token, 11).await;
    let (status, order) = get_order(&sim, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "EXPIRED", "{order}");
    assert_eq!(order["token"], token.as_str());
    assert_eq!(order["ref"], "txn_expiring");
    assert_eq!(stored_status(&db, &token).await, "EXPIRED");

    // The pay page says so and offers no buttons.
    let (status, page) = pay_page(&sim, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_ended_page(&page, "EXPIRED");

    // Approving or declining it anyway changes nothing, from the browser or the API.
    for action in ["approve", "decline"] {
        let response = settle_form(&sim, &token, action).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{action}");
        assert_ended_page(&response.text().await.unwrap(), "EXPIRED");
        let (status, body) = settle_api(&sim, &token, action).await;
        assert_error(status, &body, StatusCode::CONFLICT, "not_pending");
    }
    // Nor does cancelling it: cancel answers the status it ended with.
    let (status, cancelled) = cancel(&sim, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled, order);

    assert_eq!(get_order(&sim, &token).await.1, order);
    assert_no_webhook(&sim, &receiver, &token).await;
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn an_order_is_paid_just_before_its_expiry_and_stays_paid() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let (status, created) = create_expiring(&sim, "txn_in_time", 900, json!(60)).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap().to_owned();

    time_passes(&db, &token, 55).await;
    let response = settle_form(&sim, &token, "approve").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_in_time", 900, "SUCCESS");

    // Long after its expiry it is still SUCCESS: expiry only ends PENDING orders.
    time_passes(&db, &token, 3600).await;
    assert_eq!(get_order(&sim, &token).await.1["status"], "SUCCESS");
    let (_, page) = pay_page(&sim, &token).await;
    assert!(
        page.contains(r#"data-testid="bank-already-final""#),
        "{page}"
    );
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn cancel_ends_a_pending_order_for_good() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let (status, created) = create(&sim, "txn_cancel", 4200).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap().to_owned();

    // The merchant cancels the order while the user has not paid yet.
    let (status, cancelled) = cancel(&sim, &token).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(
        cancelled,
        json!({"token": token, "ref": "txn_cancel", "amount": 4200, "currency": "INR",
            "expires_at": created["expires_at"], "status": "CANCELLED"})
    );
    assert_eq!(get_order(&sim, &token).await.1, cancelled);
    assert_eq!(stored_status(&db, &token).await, "CANCELLED");

    // Cancelling again answers the same.
    assert_eq!(
        cancel(&sim, &token).await,
        (StatusCode::OK, cancelled.clone())
    );

    // The user opens the pay page afterwards: it says the request was cancelled.
    let (status, page) = pay_page(&sim, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_ended_page(&page, "CANCELLED");

    // Approving or declining it anyway changes nothing.
    for action in ["approve", "decline"] {
        let response = settle_form(&sim, &token, action).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{action}");
        assert_ended_page(&response.text().await.unwrap(), "CANCELLED");
        let (status, body) = settle_api(&sim, &token, action).await;
        assert_error(status, &body, StatusCode::CONFLICT, "not_pending");
    }

    // Its expiry passing does not change it either.
    time_passes(&db, &token, 3601).await;
    assert_eq!(get_order(&sim, &token).await.1["status"], "CANCELLED");
    assert_eq!(cancel(&sim, &token).await.1["status"], "CANCELLED");
    assert_eq!(stored_status(&db, &token).await, "CANCELLED");
    assert_no_webhook(&sim, &receiver, &token).await;
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn cancel_of_a_settled_order_answers_its_outcome_and_changes_nothing() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let paid = new_order(&sim, "txn_cancel_paid", 100).await;
    let declined = new_order(&sim, "txn_cancel_declined", 200).await;
    assert_eq!(settle_api(&sim, &paid, "approve").await.0, StatusCode::OK);
    assert_eq!(
        settle_api(&sim, &declined, "decline").await.0,
        StatusCode::OK
    );
    receiver.wait_for(2).await;

    for (token, outcome) in [(&paid, "SUCCESS"), (&declined, "FAILURE")] {
        let (_, before) = get_order(&sim, token).await;
        let (status, answer) = cancel(&sim, token).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["status"], outcome);
        assert_eq!(answer, before);
        assert_eq!(get_order(&sim, token).await.1, before);
        assert_eq!(stored_status(&db, token).await, outcome);
    }
    let (_, page) = pay_page(&sim, &paid).await;
    assert!(
        page.contains(r#"data-testid="bank-already-final""#),
        "{page}"
    );

    // No further webhook: exactly the two outcomes were sent.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(deliveries(&sim).await.len(), 2);
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn cancel_needs_the_api_key_and_a_known_token() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    let token = new_order(&sim, "txn_cancel_auth", 100).await;
    let url = format!("{}/api/bank/orders/{token}/cancel", sim.url());

    let (status, body) = read(client().post(&url).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = read(
        client()
            .post(&url)
            .bearer_auth("wrong-key")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // The refused cancels changed nothing.
    assert_eq!(get_order(&sim, &token).await.1["status"], "PENDING");

    for unknown in ["bank_session_unknown".to_string(), "x".repeat(200)] {
        let (status, body) = cancel(&sim, &unknown).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    sim.stop().await;
}

#[actix_web::test]
async fn a_database_from_before_expiry_is_upgraded() {
    let db = temp_db();
    // The database as a simulator without expiry left it: only the first migration applied.
    let first = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/20250601000000_bank_sim.sql"
        ),
        first.path().join("20250601000000_bank_sim.sql"),
    )
    .unwrap();
    let pool = open_db(&db).await;
    sqlx::migrate::Migrator::new(first.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hours_ago = now - 2 * 3600 * 1000;
    let minute_ago = now - 60 * 1000;
    for (token, reference, status, created_at) in [
        ("bank_session_old", "txn_old", "PENDING", hours_ago),
        ("bank_session_recent", "txn_recent", "PENDING", minute_ago),
        ("bank_session_paid", "txn_paid", "SUCCESS", hours_ago),
    ] {
        sqlx::query(
            "INSERT INTO orders (token, ref, amount, currency, return_url, status, created_at, updated_at) \
             VALUES (?, ?, 100, 'INR', 'http://app.test/r', ?, ?, ?)",
        )
        .bind(token)
        .bind(reference)
        .bind(status)
        .bind(created_at)
        .bind(created_at)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO deliveries (event_id, token, body, attempts, next_attempt_at, delivered_at, last_status_code, created_at) \
         VALUES ('evt_old', 'bank_session_paid', '{}', 1, ?, ?, 200, ?)",
    )
    .bind(hours_ago)
    .bind(hours_ago)
    .bind(hours_ago)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // The new simulator migrates it: every order expires an hour after it was created.
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    for (token, created_at, status) in [
        ("bank_session_old", hours_ago, "EXPIRED"),
        ("bank_session_recent", minute_ago, "PENDING"),
        ("bank_session_paid", hours_ago, "SUCCESS"),
    ] {
        let (code, order) = get_order(&sim, token).await;
        assert_eq!(code, StatusCode::OK, "{order}");
        assert_eq!(order["status"], status, "{order}");
        let expires_at = unix_secs(order["expires_at"].as_str().unwrap());
        assert_eq!(expires_at, (created_at + 999) / 1000 + 3600, "{order}");
    }
    // The deliveries survived, still tied to their order.
    let list = deliveries(&sim).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["token"], "bank_session_paid");
    assert_eq!(list[0]["state"], "delivered");
    // The rebuilt table takes the new statuses, and new orders.
    assert_eq!(
        cancel(&sim, "bank_session_recent").await.1["status"],
        "CANCELLED"
    );
    new_order(&sim, "txn_after_upgrade", 100).await;
    // Its foreign key still holds.
    let pool = open_db(&db).await;
    let orphan = sqlx::query(
        "INSERT INTO deliveries (event_id, token, body, next_attempt_at, created_at) \
         VALUES ('evt_orphan', 'bank_session_nope', '{}', 0, 0)",
    )
    .execute(&pool)
    .await;
    assert!(orphan.is_err(), "a delivery without its order was accepted");
    pool.close().await;
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Retries and durability.

#[actix_web::test]
async fn a_failing_receiver_gets_retries_with_backoff_until_2xx() {
    let receiver = Receiver::start(0).await;
    receiver.script(&[(500, Duration::ZERO), (500, Duration::ZERO)]);
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let token = new_order(&sim, "txn_retry", 4200).await;
    settle_api(&sim, &token, "approve").await;

    let got = receiver.wait_for(3).await;
    let d = wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let got_later = receiver.received();
    assert_eq!(got_later.len(), 3, "exactly three attempts");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 200);
    assert_eq!(d["state"], "delivered");

    let event_id = got[0].event_id.clone().unwrap();
    for r in &got {
        assert_eq!(r.event_id.as_deref(), Some(event_id.as_str()));
        assert_webhook(r, &token, "txn_retry", 4200, "SUCCESS");
        assert_eq!(r.body, got[0].body, "the same body on every attempt");
    }
    // Backoff: 50 ms after the first failure, 100 ms after the second.
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(45),
        "{:?}",
        got[1].at - got[0].at
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(95),
        "{:?}",
        got[2].at - got[1].at
    );
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn the_bank_gives_up_after_max_attempts() {
    let receiver = Receiver::start(0).await;
    receiver.script(&[(500, Duration::ZERO); 10]);
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.max_attempts = 3;
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_give_up", 100).await;
    settle_api(&sim, &token, "approve").await;

    let d = wait_delivery(&sim, &token, |d| d["state"] == "failed").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["delivered"], false);
    assert_eq!(d["last_status_code"], 500);
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 3);
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    let receiver = Receiver::start(0).await;
    receiver.script(&[(200, Duration::from_millis(1500))]);
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.attempt_timeout = Duration::from_millis(300);
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_slow", 100).await;
    settle_api(&sim, &token, "approve").await;

    let d = wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    assert_eq!(d["attempts"], 2);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event_id, got[1].event_id);
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn a_receiver_that_is_down_gets_the_event_when_it_is_back() {
    let port = free_port();
    let db = temp_db();
    let mut cfg = config(&db, &format!("http://127.0.0.1:{port}/hook"));
    cfg.max_attempts = 100;
    cfg.max_delay = Duration::from_millis(200);
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_down", 900).await;
    let (_, settled) = settle_api(&sim, &token, "approve").await;

    let d = wait_delivery(&sim, &token, |d| d["attempts"].as_i64() >= Some(2)).await;
    assert_eq!(d["delivered"], false);
    assert_eq!(d["state"], "pending");
    assert_eq!(d["last_status_code"], Value::Null);

    let receiver = Receiver::start(port).await;
    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_down", 900, "SUCCESS");
    assert_eq!(got[0].event_id.as_deref(), settled["event_id"].as_str());
    wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn a_restarted_simulator_delivers_pending_events() {
    let port = free_port();
    let db = temp_db();
    let mut cfg = config(&db, &format!("http://127.0.0.1:{port}/hook"));
    cfg.max_attempts = 100;
    cfg.base_delay = Duration::from_millis(100);
    cfg.max_delay = Duration::from_millis(300);
    let sim = start(cfg.clone()).await;
    let token = new_order(&sim, "txn_restart", 5000).await;
    let (_, settled) = settle_api(&sim, &token, "approve").await;
    wait_delivery(&sim, &token, |d| d["attempts"].as_i64() >= Some(1)).await;
    sim.stop().await;

    // The receiver comes up while the simulator is down: nothing arrives until it restarts.
    let receiver = Receiver::start(port).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 0);

    let sim = start(cfg).await;
    let got = receiver.wait_for(1).await;
    assert_webhook(&got[0], &token, "txn_restart", 5000, "SUCCESS");
    assert_eq!(got[0].event_id.as_deref(), settled["event_id"].as_str());
    assert_eq!(get_order(&sim, &token).await.1["status"], "SUCCESS");
    let d = wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    assert!(d["attempts"].as_i64().unwrap() >= 2, "{d}");
    // The order survived too: same ref, same token.
    let (status, again) = create(&sim, "txn_restart", 5000).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["token"], token.as_str());
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn a_rotation_signs_with_both_secrets() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.webhook_secrets = vec!["new-secret".into(), "old-secret".into()];
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_rotate", 100).await;
    settle_api(&sim, &token, "approve").await;

    let got = receiver.wait_for(1).await;
    let header = got[0].signature.clone().unwrap();
    assert_eq!(header.matches("v1=").count(), 2, "{header}");
    assert_eq!(signature::parse_header(&header).unwrap().v1.len(), 2);
    assert_eq!(got[0].verify(&[b"new-secret"]), Ok(()));
    assert_eq!(got[0].verify(&[b"old-secret"]), Ok(()));
    assert_eq!(
        got[0].verify(&[SECRET.as_bytes()]),
        Err(SignatureError::NoMatch)
    );
    sim.stop().await;
    receiver.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Fault modes.

#[actix_web::test]
async fn duplicate_deliveries_send_extra_copies() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.duplicate_deliveries = 2;
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_dup", 100).await;
    settle_api(&sim, &token, "approve").await;

    let got = receiver.wait_for(3).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 3);
    for r in &got {
        assert_eq!(r.event_id, got[0].event_id);
        assert_webhook(r, &token, "txn_dup", 100, "SUCCESS");
    }
    let d = wait_delivery(&sim, &token, |d| d["delivered"] == true).await;
    assert_eq!(d["attempts"], 1);
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn dropped_deliveries_settle_but_never_arrive() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.drop_deliveries = true;
    let sim = start(cfg).await;
    let token = new_order(&sim, "txn_drop", 100).await;
    assert_eq!(
        settle_form(&sim, &token, "approve").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(get_order(&sim, &token).await.1["status"], "SUCCESS");
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 0);
    let d = wait_delivery(&sim, &token, |_| true).await;
    assert_eq!(d["state"], "failed");
    assert_eq!(d["attempts"], 0);
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn delays_hold_deliveries_and_create_order() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.delivery_delay = Duration::from_millis(600);
    cfg.faults.create_order_delay = Duration::from_millis(300);
    let sim = start(cfg).await;

    let started = Instant::now();
    let token = new_order(&sim, "txn_delay", 100).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let settled_at = Instant::now();
    settle_api(&sim, &token, "approve").await;
    let got = receiver.wait_for(1).await;
    assert!(
        got[0].at - settled_at >= Duration::from_millis(550),
        "{:?}",
        got[0].at - settled_at
    );
    sim.stop().await;
    receiver.stop().await;
}

#[actix_web::test]
async fn reordered_and_concurrent_deliveries_all_arrive() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.reorder = true;
    let sim = start(cfg).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(new_order(&sim, &format!("txn_many_{i}"), 100 + i).await);
    }
    let settles = tokens.iter().map(|t| settle_api(&sim, t, "approve"));
    for (status, _) in futures_util::future::join_all(settles).await {
        assert_eq!(status, StatusCode::OK);
    }
    let got = receiver.wait_for(20).await;
    let mut event_ids: Vec<String> = got.iter().map(|r| r.event_id.clone().unwrap()).collect();
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 20);
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r.verify(&[SECRET.as_bytes()]), Ok(()));
            r.json()["token"].as_str().unwrap().to_owned()
        })
        .collect();
    seen.sort();
    tokens.sort();
    assert_eq!(seen, tokens);
    sim.stop().await;
    receiver.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Payouts.

async fn create_payout_raw(sim: &BankSim, body: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}/api/bank/payouts", sim.url()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    read(request.send().await.unwrap()).await
}

async fn create_payout(sim: &BankSim, reference: &str, amount: i64) -> (StatusCode, Value) {
    let body = json!({"ref": reference, "amount": amount, "currency": "INR"});
    create_payout_raw(sim, &body.to_string(), Some(API_KEY)).await
}

async fn get_payout(sim: &BankSim, payout_id: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}/api/bank/payouts/{payout_id}", sim.url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Checks a payout's webhook against the contract: headers, signature, body.
fn assert_payout_webhook(
    r: &Received,
    payout_id: &str,
    reference: &str,
    amount: i64,
    status: &str,
) {
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.verify(&[SECRET.as_bytes()]), Ok(()), "{:?}", r.signature);
    let event_id = r.event_id.clone().expect("X-Bank-Event-Id");
    assert_eq!(
        r.json(),
        json!({"event_id": event_id, "type": "payout", "payout_id": payout_id, "ref": reference,
            "amount": amount, "currency": "INR", "status": status})
    );
}

#[actix_web::test]
async fn create_payout_is_idempotent_on_ref_and_refuses_bad_bodies() {
    let db = temp_db();
    let sim = start(config(&db, "http://127.0.0.1:9/hook")).await;
    let (status, first) = create_payout(&sim, "wd_1", 700).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "PENDING");
    let id = first["payout_id"].as_str().unwrap();
    assert!(id.starts_with("po_") && id.len() > 20, "{id}");
    let (status, again) = create_payout(&sim, "wd_1", 700).await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "the same payout"
    );
    let (status, body) = create_payout(&sim, "wd_1", 800).await;
    assert_error(status, &body, StatusCode::CONFLICT, "ref_conflict");

    for (body, code) in [
        (r#"{"amount": 5, "currency": "INR"}"#, "invalid_ref"),
        (
            r#"{"ref": "wd 2", "amount": 5, "currency": "INR"}"#,
            "invalid_ref",
        ),
        (
            r#"{"ref": "wd_2", "amount": 0, "currency": "INR"}"#,
            "invalid_amount",
        ),
        (
            r#"{"ref": "wd_2", "amount": "5", "currency": "INR"}"#,
            "invalid_amount",
        ),
        (
            r#"{"ref": "wd_2", "amount": 5.5, "currency": "INR"}"#,
            "invalid_amount",
        ),
        (
            r#"{"ref": "wd_2", "amount": 5, "currency": "USD"}"#,
            "invalid_currency",
        ),
        (
            r#"{"ref": "wd_2", "amount": 5, "currency": "INR", "to": "x"}"#,
            "invalid_body",
        ),
        (r#"["wd_2", 5, "INR"]"#, "invalid_body"),
        (r#"not json"#, "invalid_body"),
    ] {
        let (status, answer) = create_payout_raw(&sim, body, Some(API_KEY)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
    }
    let good = r#"{"ref": "wd_3", "amount": 5, "currency": "INR"}"#;
    let (status, _) = create_payout_raw(&sim, good, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = create_payout_raw(&sim, good, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get_payout(&sim, "po_unknown").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let pool = open_db(&db).await;
    let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payouts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(made, 1, "refusals made nothing");
    sim.stop().await;
}

/// A payout settles `payout_delay` after it was made: `FAILURE` when the amount's last two
/// digits are 13, `SUCCESS` otherwise; each sends its signed webhook, and never changes again.
#[actix_web::test]
async fn a_payout_settles_after_its_delay_and_sends_a_signed_webhook() {
    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let paid = create_payout(&sim, "wd_paid", 1_000).await.1;
    let failed = create_payout(&sim, "wd_failed", 1_013).await.1;
    let (paid_id, failed_id) = (
        paid["payout_id"].as_str().unwrap(),
        failed["payout_id"].as_str().unwrap(),
    );
    let (status, now) = get_payout(&sim, paid_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        now,
        json!({"payout_id": paid_id, "ref": "wd_paid", "amount": 1_000, "currency": "INR",
            "status": "PENDING"})
    );

    let got = receiver.wait_for(2).await;
    for r in &got {
        match r.json()["payout_id"].as_str().unwrap() {
            id if id == paid_id => assert_payout_webhook(r, paid_id, "wd_paid", 1_000, "SUCCESS"),
            id => assert_payout_webhook(r, id, "wd_failed", 1_013, "FAILURE"),
        }
    }
    assert_eq!(get_payout(&sim, paid_id).await.1["status"], "SUCCESS");
    assert_eq!(get_payout(&sim, failed_id).await.1["status"], "FAILURE");
    let again = create_payout(&sim, "wd_failed", 1_013).await;
    assert_eq!(
        again.1["status"], "FAILURE",
        "a repeated create answers it as it is"
    );
    let d = wait_delivery_of_payout(&sim, paid_id, |d| d["delivered"] == true).await;
    assert_eq!(
        (d["status"].as_str(), d["token"].is_null()),
        (Some("SUCCESS"), true)
    );
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 2, "one webhook each");
    sim.stop().await;
    receiver.stop().await;
}

async fn wait_delivery_of_payout(
    sim: &BankSim,
    payout_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = deliveries(sim).await;
        if let Some(d) = all.iter().find(|d| d["payout_id"] == payout_id) {
            if done(d) {
                return d.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "delivery never got there: {all:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Payout webhooks are retried until a `2xx` and follow the fault modes as order webhooks do:
/// extra copies, drops.
#[actix_web::test]
async fn payout_webhooks_are_retried_and_follow_the_fault_modes() {
    let receiver = Receiver::start(0).await;
    receiver.script(&[(500, Duration::ZERO), (503, Duration::ZERO)]);
    let db = temp_db();
    let sim = start(config(&db, &receiver.url())).await;
    let id = create_payout(&sim, "wd_retry", 400).await.1["payout_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(|r| r.event_id == got[0].event_id));
    let d = wait_delivery_of_payout(&sim, &id, |d| d["delivered"] == true).await;
    assert_eq!(d["attempts"], 3);
    sim.stop().await;
    receiver.stop().await;

    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.duplicate_deliveries = 2;
    let sim = start(cfg).await;
    create_payout(&sim, "wd_dup", 400).await;
    let got = receiver.wait_for(3).await;
    assert!(
        got.iter().all(|r| r.event_id == got[0].event_id),
        "copies of one event"
    );
    sim.stop().await;
    receiver.stop().await;

    let receiver = Receiver::start(0).await;
    let db = temp_db();
    let mut cfg = config(&db, &receiver.url());
    cfg.faults.drop_deliveries = true;
    let sim = start(cfg).await;
    let id = create_payout(&sim, "wd_drop", 400).await.1["payout_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = wait_delivery_of_payout(&sim, &id, |_| true).await;
    assert_eq!(d["state"], "failed");
    assert_eq!(
        get_payout(&sim, &id).await.1["status"],
        "SUCCESS",
        "settled all the same"
    );
    assert!(receiver.received().is_empty());
    sim.stop().await;
    receiver.stop().await;
}

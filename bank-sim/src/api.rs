//! The Bank API (server to server, `Authorization: Bearer <api key>`), plus the JSON endpoints
//! tests and load tools use instead of a browser.

use std::fmt;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::db::{self, CreateOutcome, SettleOutcome};
use crate::{rfc3339, Faults};
use onramp_bank_protocol::EventStatus;

/// The largest create-order body.
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_REF_CHARS: usize = 100;
const MAX_RETURN_URL_CHARS: usize = 2048;
/// `expires_in` (seconds): the contract's range and default.
const MIN_EXPIRES_IN: i64 = 60;
const MAX_EXPIRES_IN: i64 = 86_400;
const DEFAULT_EXPIRES_IN: i64 = 3600;
/// No token is longer; longer path segments are not looked up.
const MAX_TOKEN_CHARS: usize = 128;

pub(crate) struct State {
    pub pool: SqlitePool,
    pub api_key_digest: [u8; 32],
    pub public_url: String,
    /// Wakes the delivery worker.
    pub notify: Arc<Notify>,
    pub faults: Faults,
    /// How long after its creation a payout settles.
    pub payout_delay: std::time::Duration,
    /// The refs whose first create-payout call was refused ([`Faults::refuse_first_payout_call`]).
    pub refused_payout_refs: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl State {
    /// The refusal of a create-payout call under the fault modes, if any: nothing is made.
    fn payout_refusal(&self, reference: &str) -> Option<ApiError> {
        if self.faults.refuse_payouts {
            return Some(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payout_refused",
                "the beneficiary's account cannot receive payouts",
            ));
        }
        let first = self.faults.refuse_first_payout_call
            && (self.refused_payout_refs.lock().unwrap()).insert(reference.to_owned());
        first.then(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many payout requests; try again",
            )
        })
    }

    /// Settles `token` and wakes the delivery worker when a webhook was queued.
    pub(crate) async fn settle(
        &self,
        token: &str,
        outcome: EventStatus,
    ) -> Result<SettleOutcome, sqlx::Error> {
        if token.len() > MAX_TOKEN_CHARS {
            return Ok(SettleOutcome::NotFound);
        }
        let queue = self.faults.queue_options();
        let outcome = db::settle(&self.pool, token, outcome, &queue).await?;
        if let SettleOutcome::Settled { order, event_id } = &outcome {
            tracing::info!(token = %order.token, %event_id, status = order.status.as_str(), "bank simulator: order settled");
            self.notify.notify_one();
        }
        Ok(outcome)
    }

    pub(crate) async fn order(&self, token: &str) -> Result<Option<db::Order>, sqlx::Error> {
        if token.len() > MAX_TOKEN_CHARS {
            return Ok(None);
        }
        db::get_order(&self.pool, token).await
    }

    /// Cancels `token` if it is still `PENDING`; the order with its final status.
    pub(crate) async fn cancel(&self, token: &str) -> Result<Option<db::Order>, sqlx::Error> {
        if token.len() > MAX_TOKEN_CHARS {
            return Ok(None);
        }
        db::cancel_order(&self.pool, token).await
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    const GET: &str = "GET";
    const POST: &str = "POST";
    cfg.service(resource("/api/bank/create-order", POST).route(web::post().to(create_order)))
        .service(resource("/api/bank/deliveries", GET).route(web::get().to(deliveries)))
        .service(resource("/api/bank/orders/{token}", GET).route(web::get().to(get_order)))
        .service(resource("/api/bank/orders/{token}/approve", POST).route(web::post().to(approve)))
        .service(resource("/api/bank/orders/{token}/decline", POST).route(web::post().to(decline)))
        .service(resource("/api/bank/orders/{token}/cancel", POST).route(web::post().to(cancel)))
        .service(resource("/api/bank/payouts", POST).route(web::post().to(create_payout)))
        .service(resource("/api/bank/payouts/{payout_id}", GET).route(web::get().to(get_payout)));
}

/// A route of the Bank API, which takes the one method `allow`. A request with another gets
/// a JSON `405` (every error answer of the API is JSON) naming it in `Allow`, not actix-web's
/// empty one.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint takes {allow} only"),
    )
    .error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An error answered as `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such order")
    }

    fn no_payout() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such payout")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "bank simulator: database error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

/// Checks `Authorization: Bearer <api key>` in constant time (over SHA-256 digests, so the key's
/// length does not leak either).
fn authorize(req: &HttpRequest, state: &State) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let ok = presented.is_some_and(|key| {
        let digest = Sha256::digest(key.as_bytes());
        bool::from(digest.as_slice().ct_eq(&state.api_key_digest))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <api key>)",
        ))
    }
}

fn order_json(order: &db::Order) -> Value {
    json!({
        "token": order.token,
        "ref": order.reference,
        "amount": order.amount,
        "currency": order.currency,
        "expires_at": rfc3339(order.expires_at),
        "status": order.status,
    })
}

/// A create-order request that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NewOrder {
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub return_url: String,
    /// Seconds until the order expires (the default when the body has none).
    pub expires_in: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewOrder {
    #[serde(rename = "ref")]
    reference: Option<Value>,
    amount: Option<Value>,
    currency: Option<Value>,
    return_url: Option<Value>,
    expires_in: Option<Value>,
}

/// Strict validation of a create-order body: a JSON object with only the known fields (no
/// duplicates), `ref` 1–100 of `[A-Za-z0-9_-]`, `amount` a JSON integer in `1..=i64::MAX`,
/// `currency` `"INR"`, `return_url` an absolute http(s) URL of at most 2048 characters, and
/// optionally `expires_in` a JSON integer in `60..=86400` (default 3600).
///
/// Fields are checked in this order, so a body with several bad fields reports the first.
pub(crate) fn validate_new_order(body: &[u8]) -> Result<NewOrder, ApiError> {
    let raw = parse_raw_order(body)?;
    Ok(NewOrder {
        reference: parse_ref(raw.reference)?,
        amount: parse_amount(raw.amount)?,
        currency: parse_currency(raw.currency)?,
        return_url: parse_return_url(raw.return_url)?,
        expires_in: parse_expires_in(raw.expires_in)?,
    })
}

/// Decodes the body's shape (an object with only known, unrepeated fields) without judging the
/// values, so each field can report its own error code.
fn parse_raw_order(body: &[u8]) -> Result<RawNewOrder, ApiError> {
    // A derived struct also deserializes from a JSON array (fields by position); refuse that.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
}

fn parse_ref(value: Option<Value>) -> Result<String, ApiError> {
    match value {
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_REF_CHARS
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(s)
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_ref",
            "`ref` must be 1 to 100 characters of A-Z, a-z, 0-9, '_' and '-'",
        )),
        None => Err(ApiError::bad_request("invalid_ref", "`ref` is required")),
    }
}

fn parse_amount(value: Option<Value>) -> Result<i64, ApiError> {
    // `as_i64` is `None` for floats (`100.0`, `1e2`) and for integers beyond `i64`.
    match value {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) if a > 0 => Ok(a),
            _ => Err(bad_amount()),
        },
        Some(_) => Err(bad_amount()),
        None => Err(ApiError::bad_request(
            "invalid_amount",
            "`amount` is required",
        )),
    }
}

fn bad_amount() -> ApiError {
    ApiError::bad_request(
        "invalid_amount",
        "`amount` must be a positive integer number of paise",
    )
}

fn parse_currency(value: Option<Value>) -> Result<String, ApiError> {
    match value {
        Some(Value::String(s)) if s == "INR" => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            "invalid_currency",
            "`currency` must be \"INR\"",
        )),
        None => Err(ApiError::bad_request(
            "invalid_currency",
            "`currency` is required",
        )),
    }
}

fn parse_return_url(value: Option<Value>) -> Result<String, ApiError> {
    let url = match value {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_return_url",
                "`return_url` must be a string",
            ))
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_return_url",
                "`return_url` is required",
            ))
        }
    };
    check_return_url(&url).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_return_url",
            "`return_url` must be an absolute http(s) URL of at most 2048 characters",
        )
    })
}

/// `expires_in`: absent (or `null`, like every other field) means the default.
fn parse_expires_in(value: Option<Value>) -> Result<i64, ApiError> {
    // `as_i64` is `None` for floats (`60.0`, `6e1`) and for integers beyond `i64`.
    match value {
        None => Ok(DEFAULT_EXPIRES_IN),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(secs) if (MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&secs) => Ok(secs),
            _ => Err(bad_expires_in()),
        },
        Some(_) => Err(bad_expires_in()),
    }
}

fn bad_expires_in() -> ApiError {
    ApiError::bad_request(
        "invalid_expires_in",
        "`expires_in` must be an integer number of seconds from 60 to 86400",
    )
}

/// The URL to store: as given when it is plain visible ASCII, else its normalized (ASCII) form,
/// so it can always go into a `Location` header.
fn check_return_url(s: &str) -> Option<String> {
    if s.chars().count() > MAX_RETURN_URL_CHARS
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    let stored = if s.bytes().all(|b| b.is_ascii_graphic()) {
        s.to_owned()
    } else {
        url.as_str().to_owned()
    };
    (stored.len() <= MAX_RETURN_URL_CHARS).then_some(stored)
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON request body of at most [`MAX_BODY_BYTES`].
async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, ApiError> {
    if !is_json(req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::bad_request(
            "invalid_body",
            "the body could not be read",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is too large",
        )),
    }
}

async fn create_order(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> ApiResult {
    authorize(&req, &state)?;
    let body = json_body(&req, payload).await?;
    let new = validate_new_order(&body)?;
    let outcome = db::create_order(
        &state.pool,
        &new.reference,
        new.amount,
        &new.currency,
        &new.return_url,
        new.expires_in,
    )
    .await?;
    if !state.faults.create_order_delay.is_zero() {
        tokio::time::sleep(state.faults.create_order_delay).await;
    }
    let (status, order) = created(outcome, "an order")?;
    if status == StatusCode::CREATED {
        tracing::info!(token = %order.token, r#ref = %order.reference, amount = order.amount, "bank simulator: order created");
    }
    let pay_url = format!("{}/pay?token={}", state.public_url, order.token);
    Ok(HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "token": order.token,
            "pay_url": pay_url,
            "expires_at": rfc3339(order.expires_at),
        })))
}

async fn get_order(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<State>,
) -> ApiResult {
    if state.faults.misroute_orders {
        return Ok(misrouted());
    }
    authorize(&req, &state)?;
    let order = state.order(&token).await?.ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(order_json(&order)))
}

/// Ends a `PENDING` order as `CANCELLED`; always the order's body with its final status.
async fn cancel(req: HttpRequest, token: web::Path<String>, state: web::Data<State>) -> ApiResult {
    if state.faults.misroute_orders {
        return Ok(misrouted());
    }
    authorize(&req, &state)?;
    let order = state
        .cancel(&token)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(token = %order.token, status = order.status.as_str(), "bank simulator: cancel");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(order_json(&order)))
}

async fn approve(req: HttpRequest, token: web::Path<String>, state: web::Data<State>) -> ApiResult {
    settle_json(req, &token, &state, EventStatus::Success).await
}

async fn decline(req: HttpRequest, token: web::Path<String>, state: web::Data<State>) -> ApiResult {
    settle_json(req, &token, &state, EventStatus::Failure).await
}

async fn settle_json(
    req: HttpRequest,
    token: &str,
    state: &State,
    outcome: EventStatus,
) -> ApiResult {
    authorize(&req, state)?;
    match state.settle(token, outcome).await? {
        SettleOutcome::Settled { order, event_id } => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"token": order.token, "status": order.status, "event_id": event_id}))),
        SettleOutcome::AlreadyFinal(order) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_pending",
            format!("the order is already {}", order.status.as_str()),
        )),
        SettleOutcome::NotFound => Err(ApiError::not_found()),
    }
}

/// A create-payout request that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NewPayout {
    pub reference: String,
    pub amount: i64,
    pub currency: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewPayout {
    #[serde(rename = "ref")]
    reference: Option<Value>,
    amount: Option<Value>,
    currency: Option<Value>,
}

/// Strict validation of a create-payout body, as of a create-order body: a JSON object with
/// only `ref`, `amount` and `currency`, each as create-order's.
pub(crate) fn validate_new_payout(body: &[u8]) -> Result<NewPayout, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    let raw: RawNewPayout = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}")))?;
    Ok(NewPayout {
        reference: parse_ref(raw.reference)?,
        amount: parse_amount(raw.amount)?,
        currency: parse_currency(raw.currency)?,
    })
}

fn payout_json(payout: &db::Payout) -> Value {
    json!({
        "payout_id": payout.payout_id,
        "ref": payout.reference,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status,
    })
}

/// A create call's answer: `201` with what it made, `200` with the earlier one of its ref, or
/// `409 ref_conflict` when that one has another amount (`what`: "an order", "a payout").
fn created<T>(outcome: CreateOutcome<T>, what: &str) -> Result<(StatusCode, T), ApiError> {
    match outcome {
        CreateOutcome::Created(made) => Ok((StatusCode::CREATED, made)),
        CreateOutcome::Existing(earlier) => Ok((StatusCode::OK, earlier)),
        CreateOutcome::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ref_conflict",
            format!("{what} with this ref exists with a different amount"),
        )),
    }
}

/// `POST /api/bank/payouts`: `201` a new payout, `200` the payout already made for this `ref`,
/// `409` the same `ref` with another amount.
async fn create_payout(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> ApiResult {
    authorize(&req, &state)?;
    let body = json_body(&req, payload).await?;
    let new = validate_new_payout(&body)?;
    if let Some(refusal) = state.payout_refusal(&new.reference) {
        if !state.faults.create_payout_delay.is_zero() {
            tokio::time::sleep(state.faults.create_payout_delay).await;
        }
        return Err(refusal);
    }
    let settle_at = crate::now_ms().saturating_add(state.payout_delay.as_millis() as i64);
    let outcome = db::create_payout(
        &state.pool,
        &new.reference,
        new.amount,
        &new.currency,
        settle_at,
    )
    .await?;
    // Wake the worker: it settles the payout when its time comes.
    state.notify.notify_one();
    if !state.faults.create_payout_delay.is_zero() {
        tokio::time::sleep(state.faults.create_payout_delay).await;
    }
    let (status, payout) = created(outcome, "a payout")?;
    if status == StatusCode::CREATED {
        tracing::info!(payout_id = %payout.payout_id, r#ref = %payout.reference, amount = payout.amount, "bank simulator: payout created");
    }
    Ok(HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"payout_id": payout.payout_id, "status": payout.status})))
}

/// `GET /api/bank/payouts/{payout_id}`.
async fn get_payout(
    req: HttpRequest,
    payout_id: web::Path<String>,
    state: web::Data<State>,
) -> ApiResult {
    authorize(&req, &state)?;
    if payout_id.len() > MAX_TOKEN_CHARS {
        return Err(ApiError::no_payout());
    }
    let payout = db::get_payout(&state.pool, &payout_id)
        .await?
        .ok_or_else(ApiError::no_payout)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(payout_json(&payout)))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    token: Option<String>,
}

async fn deliveries(
    req: HttpRequest,
    query: web::Query<DeliveriesQuery>,
    state: web::Data<State>,
) -> ApiResult {
    authorize(&req, &state)?;
    let list = db::list_deliveries(&state.pool, query.token.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(list))
}

/// What a misrouting gateway answers (the `misroute_orders` fault): an HTML `404` page.
fn misrouted() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body("<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>")
}

/// Anything unrouted: a JSON 404.
pub(crate) async fn not_found() -> HttpResponse {
    let mut response =
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").error_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        match validate_new_order(body.as_bytes()) {
            Ok(_) => "ok",
            Err(e) => e.code,
        }
    }

    #[test]
    fn a_good_order_passes() {
        let new = validate_new_order(
            br#" {"ref":"txn_A-1","amount":100,"currency":"INR","return_url":"http://app:8080/dashboard?x=1"}"#,
        )
        .unwrap();
        assert_eq!(
            new,
            NewOrder {
                reference: "txn_A-1".into(),
                amount: 100,
                currency: "INR".into(),
                return_url: "http://app:8080/dashboard?x=1".into(),
                expires_in: 3600,
            }
        );
        for (given, expected) in [("60", 60), ("86400", 86400), ("900", 900), ("null", 3600)] {
            let body = format!(
                r#"{{"ref":"txn_1","amount":100,"currency":"INR","return_url":"http://a","expires_in":{given}}}"#
            );
            let new = validate_new_order(body.as_bytes()).unwrap();
            assert_eq!(new.expires_in, expected, "{given}");
        }
        let max = format!(
            r#"{{"ref":"{}","amount":{},"currency":"INR","return_url":"https://a.b"}}"#,
            "r".repeat(100),
            i64::MAX
        );
        assert_eq!(code(&max), "ok");
    }

    #[test]
    fn bad_orders_are_refused_with_their_code() {
        let with = |field: &str, value: &str| {
            let mut fields = vec![
                ("ref", r#""txn_1""#.to_string()),
                ("amount", "100".to_string()),
                ("currency", r#""INR""#.to_string()),
                ("return_url", r#""http://app/r""#.to_string()),
            ];
            fields.retain(|(k, _)| *k != field);
            if !value.is_empty() {
                fields.push((field, value.to_string()));
            }
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", inner.join(","))
        };
        for (field, value, expected) in [
            ("amount", "100.0", "invalid_amount"),
            ("amount", "1e2", "invalid_amount"),
            ("amount", r#""100""#, "invalid_amount"),
            ("amount", "0", "invalid_amount"),
            ("amount", "-5", "invalid_amount"),
            ("amount", "9223372036854775808", "invalid_amount"),
            ("amount", "100000000000000000000000", "invalid_amount"),
            ("amount", "null", "invalid_amount"),
            ("amount", "", "invalid_amount"),
            ("ref", "", "invalid_ref"),
            ("ref", r#""""#, "invalid_ref"),
            ("ref", r#""a b""#, "invalid_ref"),
            ("ref", r#""é""#, "invalid_ref"),
            ("ref", "12", "invalid_ref"),
            ("currency", r#""USD""#, "invalid_currency"),
            ("currency", r#""inr""#, "invalid_currency"),
            ("currency", "", "invalid_currency"),
            ("return_url", r#""/relative""#, "invalid_return_url"),
            (
                "return_url",
                r#""javascript:alert(1)""#,
                "invalid_return_url",
            ),
            ("return_url", r#""ftp://x/y""#, "invalid_return_url"),
            ("return_url", r#""http://x/a b""#, "invalid_return_url"),
            ("return_url", r#""http://x/\n""#, "invalid_return_url"),
            ("return_url", "5", "invalid_return_url"),
            ("return_url", "", "invalid_return_url"),
            ("expires_in", "59", "invalid_expires_in"),
            ("expires_in", "86401", "invalid_expires_in"),
            ("expires_in", "0", "invalid_expires_in"),
            ("expires_in", "-1", "invalid_expires_in"),
            ("expires_in", "-3600", "invalid_expires_in"),
            ("expires_in", "60.5", "invalid_expires_in"),
            ("expires_in", "60.0", "invalid_expires_in"),
            ("expires_in", "6e1", "invalid_expires_in"),
            ("expires_in", r#""60""#, "invalid_expires_in"),
            ("expires_in", "true", "invalid_expires_in"),
            ("expires_in", "[60]", "invalid_expires_in"),
            ("expires_in", r#"{"s":60}"#, "invalid_expires_in"),
            ("expires_in", "4294967356", "invalid_expires_in"),
            ("expires_in", "18446744073709551676", "invalid_expires_in"),
        ] {
            assert_eq!(code(&with(field, value)), expected, "{field} = {value}");
        }
        let long_ref = format!(r#""{}""#, "r".repeat(101));
        assert_eq!(code(&with("ref", &long_ref)), "invalid_ref");
        let long_url = format!(r#""http://x/{}""#, "a".repeat(2040));
        assert_eq!(code(&with("return_url", &long_url)), "invalid_return_url");
        for body in [
            "",
            "null",
            "[]",
            r#"["txn_1",100,"INR","http://app/r"]"#,
            "{",
            r#"{"ref":"txn_1","amount":100,"currency":"INR","return_url":"http://app/r","x":1}"#,
            r#"{"ref":"txn_1","ref":"txn_2","amount":100,"currency":"INR","return_url":"http://app/r"}"#,
            r#"{"ref":"txn_1","amount":100,"currency":"INR","return_url":"http://app/r","expires_in":60,"expires_in":61}"#,
            r#"{"ref":"txn_1","amount":100,"currency":"INR","return_url":"http://app/r"} x"#,
        ] {
            assert_eq!(code(body), "invalid_body", "{body}");
        }
    }

    #[test]
    fn non_ascii_return_urls_are_stored_normalized() {
        assert_eq!(
            check_return_url("http://app/ü").as_deref(),
            Some("http://app/%C3%BC")
        );
        assert_eq!(
            check_return_url("http://app").as_deref(),
            Some("http://app")
        );
    }
}

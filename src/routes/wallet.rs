//! `GET /api/balance`, `GET /api/transactions` and `GET /api/settings`.

use crate::auth::session::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use onramp_store::domain::{Currency, DepositId};
use onramp_store::Deposit;
use serde::Deserialize;

/// The committed balance, from the user's wallet actor.
pub async fn balance(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let amount = state
        .wallets
        .balance(user.0)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"amount": amount, "currency": Currency::Inr})))
}

/// `GET /api/settings`: what the page needs to know before it asks (currency and limits), so
/// that nothing the server decides is copied into the script.
pub async fn settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "currency": Currency::Inr,
        "deposit": {"min_amount": 1, "max_amount": state.settings.deposit.max_amount},
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    limit: Option<String>,
    cursor: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn item(d: &Deposit) -> serde_json::Value {
    serde_json::json!({
        "id": d.id.as_str(),
        "kind": "deposit",
        "amount": d.amount.paise(),
        "currency": d.currency,
        "status": d.status.as_str(),
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

fn encode_cursor(d: &Deposit) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", d.created_at, d.id))
}

fn decode_cursor(s: &str) -> Option<(i64, DepositId)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (at, id) = raw.split_once(':')?;
    Some((at.parse().ok()?, DepositId::parse(id).ok()?))
}

/// Newest first, `limit` (1 to 100, default 20) a page; `next` is the cursor of the next page.
pub async fn transactions(
    state: web::Data<AppState>,
    user: CurrentUser,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = match page.limit.as_deref() {
        None => 20,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    "The limit must be a whole number from 1 to 100.",
                )
            })?,
    };
    let before =
        match page.cursor.as_deref() {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "The cursor is not valid.")
            })?),
        };
    let mut rows = state
        .store
        .deposits_page(user.0, before, limit + 1)
        .await
        .map_err(ApiError::unavailable)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let items: Vec<_> = rows.iter().map(item).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next": next})))
}

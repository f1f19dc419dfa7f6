//! `GET /api/balance`, `GET /api/transactions` and `GET /api/settings`.

use crate::auth::session::CurrentUser;
use crate::error::ApiError;
use crate::routes::types;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use onramp_api::ErrorCode;
use onramp_store::domain::Currency;
use onramp_store::{Counterparty, HistoryItem};
use serde::Deserialize;

/// The committed balance, from the user's wallet actor.
#[utoipa::path(
    get,
    path = "/api/balance",
    tag = "wallet",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Committed money the user can spend", body = types::Balance),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The wallet is unavailable; try again", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn balance(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let amount = state
        .wallets
        .balance(user.0)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(types::Balance {
        amount,
        currency: Currency::Inr,
    }))
}

/// `GET /api/settings`: what the page needs to know before it asks (currency and limits), so
/// that nothing the server decides is copied into the script.
#[utoipa::path(
    get,
    path = "/api/settings",
    tag = "wallet",
    responses((status = 200, description = "The currency and the limits", body = types::Settings))
)]
pub async fn settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(types::Settings {
        currency: Currency::Inr,
        deposit: types::Limits {
            min_amount: 1,
            max_amount: state.settings.deposit.max_amount,
        },
        transfer: types::Limits {
            min_amount: 1,
            max_amount: state.settings.transfer_max_amount(),
        },
        withdrawal: types::Limits {
            min_amount: 1,
            max_amount: state.settings.withdrawal.max_amount,
        },
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Items per page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn item(h: &HistoryItem) -> types::TransactionItem {
    let party = |c: &Counterparty| {
        Some(types::Party {
            name: c.name.clone(),
            email: c.email.clone(),
        })
    };
    match h {
        HistoryItem::Deposit(d) => types::TransactionItem {
            id: d.id.as_str().to_owned(),
            kind: "deposit",
            amount: d.amount.paise(),
            currency: d.currency,
            status: d.status.as_str(),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            counterparty: None,
        },
        HistoryItem::Withdrawal(w) => types::TransactionItem {
            id: w.id.as_str().to_owned(),
            kind: "withdrawal",
            amount: w.amount.paise(),
            currency: w.currency,
            status: w.status.as_str(),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            counterparty: None,
        },
        HistoryItem::TransferOut(t, c) | HistoryItem::TransferIn(t, c) => types::TransactionItem {
            id: t.id.as_str().to_owned(),
            kind: match h {
                HistoryItem::TransferOut(..) => "transfer_out",
                _ => "transfer_in",
            },
            amount: t.amount.paise(),
            currency: t.currency,
            status: "success",
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.created_at),
            counterparty: party(c),
        },
    }
}

fn encode_cursor(h: &HistoryItem) -> String {
    let (at, id) = h.key();
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

/// `(created_at, id)` of the last item of a page; ids are our own (`txn_…`, `trf_…`).
fn decode_cursor(s: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (at, id) = raw.split_once(':')?;
    let ok =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(())?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Newest first, `limit` (1 to 100, default 20) a page; `next` is the cursor of the next page.
#[utoipa::path(
    get,
    path = "/api/transactions",
    tag = "wallet",
    params(Page),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of the history, newest first", body = types::TransactionPage),
        (status = 400, description = "A bad limit or cursor, or an unknown parameter", body = crate::routes::types::ErrorBody),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable; try again", body = crate::routes::types::ErrorBody),
    )
)]
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
                    ErrorCode::InvalidLimit,
                    "The limit must be a whole number from 1 to 100.",
                )
            })?,
    };
    let before = match page.cursor.as_deref() {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidCursor, "The cursor is not valid.")
        })?),
    };
    let mut rows = state
        .store
        .history_page(user.0, before, limit + 1)
        .await
        .map_err(ApiError::unavailable)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let items = rows.iter().map(item).collect();
    Ok(HttpResponse::Ok().json(types::TransactionPage { items, next }))
}

//! `POST /api/transfers`: money from the signed-in user's wallet to another user's, found by
//! verified email. The sender's wallet actor reserves the amount or refuses at once; the answer
//! comes after the debit and the credit are committed together (`onramp_actors::wallet`).

use crate::auth::session::{CurrentUser, SignedIn};
use crate::error::ApiError;
use crate::request::{idempotency_key, StrictObject, KEY_TTL_MS};
use crate::routes::types::{Party, TransferCreated};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_actors::wallet::DebitError;
use onramp_api::ErrorCode;
use onramp_store::domain::{now_ms, Amount, Currency, EmailKey, TransferId};
use onramp_store::{Counterparty, KeyedTransfer, NewTransfer, TransferResult, User};
use std::sync::Arc;

/// The longest `to` we look up: the longest email address there can be.
const MAX_EMAIL: usize = 254;

/// `{"to": "<email>", "amount": <paise>}` and nothing else.
fn parse_body(body: &StrictObject, max: i64) -> Result<(EmailKey, Amount), ApiError> {
    body.only(&["to", "amount"], r#"{"to": "<email>", "amount": <paise>}"#)?;
    let to = match body.get("to") {
        Some(serde_json::Value::String(to)) if is_email_like(to) => EmailKey::of(to),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRecipient,
                "The recipient must be an email address.",
            ))
        }
        None => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRecipient,
                "The recipient's email is missing.",
            ))
        }
    };
    Ok((to, body.amount(max)?))
}

/// Whether `to` may be an email: not blank, not too long, and no control character inside
/// (around it, as pasted, they are trimmed; PostgreSQL refuses a NUL in text).
fn is_email_like(to: &str) -> bool {
    let inner = to.trim();
    !inner.is_empty() && to.len() <= MAX_EMAIL && !inner.chars().any(char::is_control)
}

fn self_transfer() -> ApiError {
    ApiError::bad_request(
        ErrorCode::SelfTransfer,
        "You cannot send money to yourself.",
    )
}

#[utoipa::path(
    post,
    path = "/api/transfers",
    operation_id = "create_transfer",
    tag = "wallet",
    request_body = crate::routes::types::TransferRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters; the same key from the same user within \
        24 hours answers the first response and moves nothing again")),
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "Committed: both balances changed", body = crate::routes::types::TransferCreated),
        (status = 400, description = "A bad body, recipient or amount, a bad key, or a transfer to yourself (`self_transfer`)", body = crate::routes::types::ErrorBody),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 403, description = "A browser request from another origin", body = crate::routes::types::ErrorBody),
        (status = 404, description = "Nobody has signed in with that verified email (`unknown_recipient`)", body = crate::routes::types::ErrorBody),
        (status = 409, description = "The balance does not cover the amount (`insufficient_funds`), or a request with this Idempotency-Key is still being processed", body = crate::routes::types::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::routes::types::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::routes::types::ErrorBody),
        (status = 422, description = "This Idempotency-Key was used for a different request", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable or the commit failed, and the transfer is not acknowledged: normally nothing moved; retry with the same Idempotency-Key, which answers the transfer if the database did commit it", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(user, body): SignedIn<web::Json<StrictObject>>,
) -> Result<HttpResponse, ApiError> {
    let (to, amount) = parse_body(&body, state.settings.transfer_max_amount())?;
    let key = idempotency_key(&req)?;
    let sender = read_user(&state, &user).await?;
    let now = now_ms();
    let recipient = match recipient(&state, &sender, &to).await {
        Ok(recipient) => recipient,
        Err(refused) => {
            // A request given again with its key answers as the first did, even when the email
            // no longer finds the person it found then (they gave it up, or another account
            // signed in with it since).
            return match answered_before(&state, &user, key.as_deref(), &to, amount, now).await? {
                Some(answer) => Ok(answer),
                None => Err(refused),
            };
        }
    };
    // A request given again with its key is not looked up first: the sender's actor holds its
    // copies while the first commits, and a key already used answers KeyTaken (below), so the
    // common case, a new transfer, reads nothing from the database.
    let transfer = NewTransfer {
        id: TransferId::new(),
        from: sender.id,
        to: recipient.id,
        amount,
        currency: Currency::Inr,
        idempotency_key: key.clone(),
        key_cutoff: now - KEY_TTL_MS,
        now,
        recipient: Counterparty {
            name: recipient.name.clone(),
            email: recipient.email.clone(),
        },
    };
    let (id, named) = (transfer.id.clone(), transfer.recipient.clone());
    match state.wallets.transfer(transfer).await {
        Ok(TransferResult::Applied { .. }) => Ok(created(id.as_str(), amount, named)),
        Ok(TransferResult::KeyTaken) => {
            // A concurrent request with the same key won the race: answer as it did.
            match answered_before(&state, &user, key.as_deref(), &to, amount, now).await? {
                Some(answer) => Ok(answer),
                None => Err(ApiError::conflict(
                    ErrorCode::RequestInProgress,
                    "Please try again.",
                )),
            }
        }
        Err(DebitError::InsufficientFunds { available }) => {
            // A copy of a request that committed after this one looked its key up: the money is
            // gone because the first took it. Answer as the first did.
            match answered_before(&state, &user, key.as_deref(), &to, amount, now).await? {
                Some(answer) => Ok(answer),
                None => Err(insufficient(available)),
            }
        }
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

fn insufficient(available: i64) -> ApiError {
    ApiError::conflict(
        ErrorCode::InsufficientFunds,
        format!(
            "Your balance does not cover this transfer: you can send up to {}.",
            onramp_bank_protocol::format_inr(available)
        ),
    )
}

async fn read_user(state: &AppState, user: &CurrentUser) -> Result<Arc<User>, ApiError> {
    state
        .people
        .user(user.0)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a session names no user")))
}

/// The answer for this request when it gives again the `key` of a transfer the user made
/// within the key's lifetime (see [`replay`]); `None` without a key, or when the key made
/// nothing.
async fn answered_before(
    state: &AppState,
    user: &CurrentUser,
    key: Option<&str>,
    to: &EmailKey,
    amount: Amount,
    now: i64,
) -> Result<Option<HttpResponse>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let earlier = state
        .store
        .transfer_by_key(user.0, key)
        .await
        .map_err(ApiError::unavailable)?;
    match earlier.filter(|t| t.transfer.created_at >= now - KEY_TTL_MS) {
        Some(earlier) => replay(earlier, to, amount).map(Some),
        None => Ok(None),
    }
}

/// Whom `to` names for `sender`: the person who most recently signed in with that verified
/// email, never the sender.
async fn recipient(state: &AppState, sender: &User, to: &EmailKey) -> Result<Arc<User>, ApiError> {
    if *to == EmailKey::of(&sender.email) {
        return Err(self_transfer());
    }
    let recipient = state
        .people
        .by_email(to)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::UnknownRecipient,
                "Nobody with that email has an account here.",
            )
        })?;
    if recipient.id == sender.id {
        return Err(self_transfer());
    }
    Ok(recipient)
}

/// The answer for a transfer made with an idempotency key, given again: the first answer, whole,
/// when the request is the same: the same amount to the same email, as the first answer named
/// the recipient (in any letter case). Who that email finds now, and what name and email the
/// recipient has signed in with since, do not matter: the key names the first transfer.
fn replay(earlier: KeyedTransfer, to: &EmailKey, amount: Amount) -> Result<HttpResponse, ApiError> {
    let KeyedTransfer {
        transfer,
        recipient,
    } = earlier;
    if transfer.amount != amount || EmailKey::of(&recipient.email) != *to {
        return Err(ApiError::unprocessable(
            ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was used for a different request.",
        ));
    }
    Ok(created(transfer.id.as_str(), transfer.amount, recipient))
}

fn created(id: &str, amount: Amount, recipient: Counterparty) -> HttpResponse {
    HttpResponse::Created().json(TransferCreated {
        id: id.to_owned(),
        status: "success",
        amount: amount.paise(),
        currency: Currency::Inr,
        to: Party {
            name: recipient.name,
            email: recipient.email,
        },
    })
}

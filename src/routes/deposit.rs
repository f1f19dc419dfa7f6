//! `POST /api/deposit`: record a processing deposit, create the bank order, answer its pay URL.

use crate::auth::session::{CurrentUser, SignedIn};
use crate::bank_client::BankError;
use crate::error::ApiError;
use crate::pending::PendingDeposit;
use crate::request::{idempotency_key, StrictObject, KEY_TTL_MS};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_actors::wallet::{SettleRequest, Settling};
use onramp_api::ErrorCode;
use onramp_store::domain::{
    now_ms, Amount, BankToken, Currency, DepositId, DepositStatus, Settlement,
};
use onramp_store::{AttachOrder, Deposit, DepositInsert, NewDeposit};

fn created(d: &Deposit) -> HttpResponse {
    HttpResponse::Created().json(crate::routes::types::DepositCreated::now(d))
}

fn bank_failed() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::BankUnavailable,
        "The bank could not take the payment right now. Nothing was charged; please try again.",
    )
}

/// The bank did not answer create-order in time (or answered unreadably): it may hold the
/// order, which the app cancels unless it was paid.
fn bank_unanswered() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::BankUnavailable,
        "The bank did not answer in time. Nothing was charged; please try again in a moment.",
    )
}

/// The answer for a deposit made with an idempotency key, given again: the same deposit, with
/// the status it has now.
fn replay(d: &Deposit, amount: Amount) -> Result<HttpResponse, ApiError> {
    if d.amount != amount {
        return Err(ApiError::unprocessable(
            ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was used for a different request.",
        ));
    }
    match (d.status, &d.pay_url) {
        // Reconciliation credits a deposit whose bank answer was lost: it has no pay URL, but
        // the bank took the payment.
        (_, Some(_)) | (DepositStatus::Success, None) => Ok(created(d)),
        (DepositStatus::Processing, None) => Err(ApiError::conflict(
            ErrorCode::RequestInProgress,
            "A request with this Idempotency-Key is still being processed.",
        )),
        (DepositStatus::Failure, None) => Err(bank_failed()),
    }
}

#[utoipa::path(
    post,
    path = "/api/deposit",
    tag = "wallet",
    request_body = crate::routes::types::DepositRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters; the same key from the same user within \
        24 hours answers the first response and creates nothing new")),
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "Recorded and sent to the bank: go to `url` to pay", body = crate::routes::types::DepositCreated),
        (status = 400, description = "A bad body or amount (an integer from 1 to the maximum), or a bad key", body = crate::routes::types::ErrorBody),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 403, description = "A browser request from another origin", body = crate::routes::types::ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still being processed", body = crate::routes::types::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::routes::types::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::routes::types::ErrorBody),
        (status = 422, description = "This Idempotency-Key was used for a different request", body = crate::routes::types::ErrorBody),
        (status = 429, description = "Too many deposits of this user (`limits.*`)", body = crate::routes::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The bank could not take the payment; the deposit failed and nothing was charged", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable; try again", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(user, body): SignedIn<web::Json<StrictObject>>,
) -> Result<HttpResponse, ApiError> {
    let amount = body.amount_only(state.settings.deposit.max_amount)?;
    let key = idempotency_key(&req)?;
    state.limits.deposit(user.0)?;
    let now = now_ms();
    if let Some(key) = &key {
        if let Some(earlier) = recent_with_key(&state, &user, key, now).await? {
            return replay(&earlier, amount);
        }
    }
    let id = DepositId::new();
    if !record(&state, &user, &id, amount, key.clone(), now).await? {
        // A concurrent request with the same key won the race: answer as it did.
        let key = key.as_deref().unwrap_or_default();
        return match recent_with_key(&state, &user, key, now).await? {
            Some(earlier) => replay(&earlier, amount),
            None => Err(ApiError::conflict(
                ErrorCode::RequestInProgress,
                "Please try again.",
            )),
        };
    }
    send_to_bank(&state, &user, id, amount).await
}

/// The user's deposit made with `key` within the key's lifetime.
async fn recent_with_key(
    state: &AppState,
    user: &CurrentUser,
    key: &str,
    now: i64,
) -> Result<Option<Deposit>, ApiError> {
    let earlier = state
        .store
        .deposit_by_key(user.0, key)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(earlier.filter(|d| d.created_at >= now - KEY_TTL_MS))
}

/// Records the processing deposit before the bank hears of it, so that nothing the bank knows
/// is missing here. `false`: another deposit of the user holds the key.
async fn record(
    state: &AppState,
    user: &CurrentUser,
    id: &DepositId,
    amount: Amount,
    key: Option<String>,
    now: i64,
) -> Result<bool, ApiError> {
    let insert = NewDeposit {
        id: id.clone(),
        user_id: user.0,
        amount,
        currency: Currency::Inr,
        idempotency_key: key,
        key_cutoff: now - KEY_TTL_MS,
        now,
        first_check_at: now.saturating_add(
            (state.settings.reconcile.first_after_secs as i64).saturating_mul(1000),
        ),
    };
    let outcome = state
        .writer
        .commit(insert)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(outcome == DepositInsert::Inserted)
}

/// Creates the bank order and answers its pay URL. A bank that refused, or that the call never
/// reached, fails the deposit (`502`): nothing stays processing that the bank does not know
/// about. A call that may have made the order all the same (it timed out, or the answer was not
/// the bank's word) also answers `502` at once, but leaves the deposit processing without a
/// token: reconciliation asks the bank again with the same ref, and the deposit ends as the
/// bank says (a webhook for it is taken by its ref meanwhile).
async fn send_to_bank(
    state: &AppState,
    user: &CurrentUser,
    id: DepositId,
    amount: Amount,
) -> Result<HttpResponse, ApiError> {
    let return_url = state.urls.deposit_return_url();
    let order = state
        .bank
        .create_order(id.as_str(), amount.paise(), &return_url)
        .await
        .and_then(|o| {
            BankToken::parse(&o.token)
                .map(|t| (t, o.pay_url))
                .map_err(BankError::Invalid)
        });
    match order {
        Ok((token, pay_url)) => attach_order(state, user, id, amount, token, pay_url).await,
        Err(e) if e.may_have_acted() => {
            crate::metrics::deposit("bank_unanswered");
            Err(bank_unanswered().with_cause(e))
        }
        Err(e) => {
            // Logged once, with its cause, where the 502 is answered (`ApiError`).
            let fail = SettleRequest {
                target: Settling::Deposit(id),
                user_id: user.0,
                amount,
                stored_status: DepositStatus::Processing,
                outcome: Settlement::Failure,
            };
            state
                .wallets
                .settle(fail)
                .await
                .map_err(ApiError::unavailable)?;
            crate::metrics::deposit("bank_failed");
            Err(bank_failed().with_cause(e))
        }
    }
}

/// Stores the bank's order with the deposit and remembers it for the webhook.
async fn attach_order(
    state: &AppState,
    user: &CurrentUser,
    id: DepositId,
    amount: Amount,
    token: BankToken,
    pay_url: String,
) -> Result<HttpResponse, ApiError> {
    let attach = AttachOrder {
        deposit_id: id.clone(),
        token: token.clone(),
        pay_url: pay_url.clone(),
        now: now_ms(),
    };
    state
        .writer
        .commit(attach)
        .await
        .map_err(ApiError::unavailable)?;
    let pending = PendingDeposit {
        id: id.clone(),
        user_id: user.0,
        amount,
        currency: Currency::Inr,
    };
    state.pending.remember(&token, pending);
    crate::metrics::deposit("created");
    Ok(
        HttpResponse::Created().json(crate::routes::types::DepositCreated {
            id: id.as_str().to_owned(),
            status: DepositStatus::Processing.as_str(),
            amount: amount.paise(),
            currency: Currency::Inr,
            url: Some(pay_url),
        }),
    )
}

//! `POST /api/withdrawals`: money back to the user's bank. The user's wallet actor reserves the
//! amount and the DB writer commits the debit to payouts in flight, durably, before the bank is
//! asked for the payout (its `ref` is the withdrawal's id). The bank's refusal returns the money
//! at once; a bank that cannot be reached or does not answer in time may still make the payout,
//! so the withdrawal stays processing and reconciliation asks again with the same `ref`. Money the
//! bank may still pay out is never returned.

use crate::auth::session::{CurrentUser, SignedIn};
use crate::bank_client::{payout_for, BankError};
use crate::error::ApiError;
use crate::paying::{Answered, Call};
use crate::request::{idempotency_key, StrictObject, KEY_TTL_MS};
use crate::routes::types::WithdrawalCreated;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_actors::wallet::{DebitError, SettleRequest, Settling};
use onramp_api::ErrorCode;
use onramp_store::domain::{
    now_ms, Amount, Currency, FirstAnswer, PayoutId, Settlement, Status, WithdrawalId,
};
use onramp_store::{AttachPayout, NewWithdrawal, Withdrawal, WithdrawalResult};

#[utoipa::path(
    post,
    path = "/api/withdrawals",
    operation_id = "create_withdrawal",
    tag = "wallet",
    request_body = crate::routes::types::WithdrawalRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters; the same key from the same user within \
        24 hours answers the first withdrawal and takes nothing again (a key whose first answer was a \
        4xx refusal is not bound)")),
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "The amount left the balance (durably) and the bank is paying it out: `processing` until the bank settles the payout", body = WithdrawalCreated),
        (status = 400, description = "A bad body or amount (an integer from 1 to `withdrawal.max_amount`), or a bad key", body = crate::routes::types::ErrorBody),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 403, description = "A browser request from another origin", body = crate::routes::types::ErrorBody),
        (status = 409, description = "The balance does not cover the amount (`insufficient_funds`), or a request with this Idempotency-Key is still being processed", body = crate::routes::types::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::routes::types::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::routes::types::ErrorBody),
        (status = 422, description = "This Idempotency-Key was used for a different request", body = crate::routes::types::ErrorBody),
        (status = 502, description = "`bank_refused`: the bank refused the payout and the amount is back in the balance. `bank_unavailable`: the bank could not be reached or did not answer in time; the withdrawal (`id`) stays processing, its money held, until the bank's answer for it ends it", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable or the commit failed: normally nothing moved; retry with the same Idempotency-Key", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(user, body): SignedIn<web::Json<StrictObject>>,
) -> Result<HttpResponse, ApiError> {
    let amount = body.amount_only(state.settings.withdrawal.max_amount)?;
    let key = idempotency_key(&req)?;
    let now = now_ms();
    if let Some(earlier) = answered_before(&state, &user, key.as_deref(), now).await? {
        return replay(&state, earlier, amount).await;
    }
    let withdrawal = NewWithdrawal {
        id: WithdrawalId::new(),
        user_id: user.0,
        amount,
        currency: Currency::Inr,
        idempotency_key: key.clone(),
        key_cutoff: now - KEY_TTL_MS,
        now,
        first_check_at: now.saturating_add(
            (state.settings.reconcile.first_after_secs as i64).saturating_mul(1000),
        ),
    };
    let id = withdrawal.id.clone();
    // Before the commit: a copy that finds the row finds the call. The id is new: nobody else
    // can hold its call.
    let Some(call) = state.paying.start(&id) else {
        return Err(ApiError::unavailable(anyhow::anyhow!(
            "a new withdrawal id in use"
        )));
    };
    let refused = match state.wallets.withdraw(withdrawal).await {
        Ok(WithdrawalResult::Applied(_)) => return pay_out(&state, &user, call, id, amount).await,
        Ok(WithdrawalResult::KeyTaken) => ApiError::conflict(
            ErrorCode::RequestInProgress,
            "A request with this Idempotency-Key is still being processed. Please try again.",
        ),
        Err(DebitError::InsufficientFunds { available }) => insufficient(available),
        Err(e) => return Err(ApiError::unavailable(e)),
    };
    // A concurrent request with the same key won the race, or (insufficient funds) a copy of a
    // request that committed after this one looked its key up took the money: answer as it did.
    drop(call);
    match answered_before(&state, &user, key.as_deref(), now).await? {
        Some(earlier) => replay(&state, earlier, amount).await,
        None => Err(refused),
    }
}

fn insufficient(available: i64) -> ApiError {
    ApiError::conflict(
        ErrorCode::InsufficientFunds,
        format!(
            "Your balance does not cover this withdrawal: you can withdraw up to {}.",
            onramp_bank_protocol::format_inr(available)
        ),
    )
}

/// Asks the bank for the payout of a withdrawal just committed, and answers as the bank did.
/// Copies of the request that arrive meanwhile wait for `call`'s answer.
async fn pay_out(
    state: &AppState,
    user: &CurrentUser,
    call: Call<'_>,
    id: WithdrawalId,
    amount: Amount,
) -> Result<HttpResponse, ApiError> {
    let asked = (state.bank.create_payout(id.as_str(), amount.paise()).await)
        .and_then(|payout| payout_for(payout, id.as_str(), amount.paise()));
    match asked {
        Ok(payout) => {
            if let Err(e) = attach(state, &id, &payout.payout_id).await {
                // The answer is not recorded, so it is not given: a copy reads the row, and it
                // and this request must say the same. Reconciliation stores the payout later.
                call.answered(Answered::Unanswered);
                crate::metrics::withdrawal("bank_unanswered");
                return Err(bank_unanswered(&id).with_cause(e));
            }
            call.answered(Answered::Created);
            crate::metrics::withdrawal("created");
            Ok(created(&id, amount))
        }
        Err(e) if !e.may_have_acted() && matches!(e, BankError::Refused { .. }) => {
            // A return that fails leaves the withdrawal processing and `call` unanswered;
            // reconciliation asks the bank again.
            return_money(state, user, id, amount).await?;
            call.answered(Answered::Refused);
            crate::metrics::withdrawal("bank_refused");
            Err(bank_refused().with_cause(e))
        }
        Err(e) => {
            call.answered(Answered::Unanswered);
            crate::metrics::withdrawal("bank_unanswered");
            Err(bank_unanswered(&id).with_cause(e))
        }
    }
}

/// Stores the bank's payout id with the withdrawal, as its request's answer.
async fn attach(state: &AppState, id: &WithdrawalId, payout_id: &str) -> anyhow::Result<()> {
    let payout_id = PayoutId::parse(payout_id)
        .map_err(|e| BankError::Invalid(format!("payout id {payout_id:?}: {e}")))?;
    let attach = AttachPayout {
        withdrawal_id: id.clone(),
        payout_id,
        answers_request: true,
        now: now_ms(),
    };
    Ok(state.writer.commit(attach).await?)
}

/// The bank refused the payout: its amount goes back to the wallet, once, and the withdrawal
/// records that its request was refused.
async fn return_money(
    state: &AppState,
    user: &CurrentUser,
    id: WithdrawalId,
    amount: Amount,
) -> Result<(), ApiError> {
    let failed = SettleRequest {
        target: Settling::Refused(id),
        user_id: user.0,
        amount,
        stored_status: Status::Processing,
        outcome: Settlement::Failure,
    };
    state
        .wallets
        .settle(failed)
        .await
        .map(drop)
        .map_err(ApiError::unavailable)
}

fn created(id: &WithdrawalId, amount: Amount) -> HttpResponse {
    HttpResponse::Created().json(WithdrawalCreated {
        id: id.as_str().to_owned(),
        status: Status::Processing.as_str(),
        amount: amount.paise(),
        currency: Currency::Inr,
    })
}

fn bank_refused() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::BankRefused,
        "The bank refused this payout. The amount is back in your balance.",
    )
}

fn bank_unanswered(id: &WithdrawalId) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::BankUnavailable,
        "The bank did not answer in time. The amount stays set aside until the bank says whether \
         it paid it out; you will see the result in your history.",
    )
    .with_id(id.as_str())
}

/// The user's withdrawal made with `key` within the key's lifetime, if any.
async fn answered_before(
    state: &AppState,
    user: &CurrentUser,
    key: Option<&str>,
    now: i64,
) -> Result<Option<Withdrawal>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let earlier = state
        .store
        .withdrawal_by_key(user.0, key)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(earlier.filter(|w| w.created_at >= now - KEY_TTL_MS))
}

/// The answer for a withdrawal made with an idempotency key, given again: the first answer,
/// whole. While the first request is still waiting for the bank here, that is its answer when it
/// comes; otherwise the one the row recorded (`first_answer`): `201` when the bank made the
/// payout for the request, `502 bank_refused` when it refused it, and `502 bank_unavailable` with
/// the id when the request got no answer from the bank, however the payout ended since.
async fn replay(
    state: &AppState,
    earlier: Withdrawal,
    amount: Amount,
) -> Result<HttpResponse, ApiError> {
    if earlier.amount != amount {
        return Err(ApiError::unprocessable(
            ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was used for a different request.",
        ));
    }
    let mut earlier = earlier;
    if earlier.first_answer.is_none() {
        let answer = match state.paying.answer_of(&earlier.id).await {
            Some(Answered::Created) => Some(FirstAnswer::Created),
            Some(Answered::Refused) => Some(FirstAnswer::Refused),
            Some(Answered::Unanswered) => return Err(bank_unanswered(&earlier.id)),
            // No call under way: it ended before the row was read, or long ago.
            None => {
                let now = state.store.withdrawal(&earlier.id).await;
                now.map_err(ApiError::unavailable)?
                    .and_then(|w| w.first_answer)
            }
        };
        earlier.first_answer = answer;
    }
    match earlier.first_answer {
        Some(FirstAnswer::Created) => Ok(created(&earlier.id, earlier.amount)),
        Some(FirstAnswer::Refused) => Err(bank_refused()),
        None => Err(bank_unanswered(&earlier.id)),
    }
}

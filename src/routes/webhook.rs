//! `POST /api/webhooks/bank`: verify the signature over the raw bytes, then settle the deposit
//! (an order's event) or the withdrawal (a payout's event) through its owner's wallet actor.
//! `200` only once the outcome is durable (or was already).

use crate::error::ApiError;
use crate::pending::Known;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_actors::wallet::{SettleError, SettleOutcome, SettleRequest, Settling};
use onramp_api::ErrorCode;
use onramp_bank_protocol::signature::{self, SignatureError, SIGNATURE_HEADER};
use onramp_bank_protocol::{BankEvent, EventStatus, OrderEvent, PayoutEvent};
use onramp_store::domain::{now_ms, BankToken, PayoutId, Settlement, WithdrawalId};
use onramp_store::{AttachPayout, Withdrawal};

fn signature_header(req: &HttpRequest) -> Result<Option<&str>, SignatureError> {
    let mut values = req.headers().get_all(SIGNATURE_HEADER);
    let first = values.next();
    if values.next().is_some() {
        return Err(SignatureError::Malformed);
    }
    first
        .map(|v| v.to_str().map_err(|_| SignatureError::Malformed))
        .transpose()
}

#[utoipa::path(
    post,
    path = "/api/webhooks/bank",
    tag = "bank",
    request_body = crate::routes::types::BankEvent,
    params(("X-Bank-Event-Id" = String, Header, description = "The same on every retry of one event")),
    security(("bank_signature" = [])),
    responses(
        (status = 200, description = "Applied, durably, or already applied", body = crate::routes::types::WebhookAck),
        (status = 400, description = "A malformed body", body = crate::routes::types::ErrorBody),
        (status = 401, description = "A missing, bad or stale signature", body = crate::routes::types::ErrorBody),
        (status = 404, description = "No deposit has this token (`unknown_token`), or no withdrawal this payout (`unknown_payout`)", body = crate::routes::types::ErrorBody),
        (status = 409, description = "The status contradicts the deposit's or withdrawal's final one", body = crate::routes::types::ErrorBody),
        (status = 422, description = "The ref, amount or currency differs from the deposit (`deposit_mismatch`) or withdrawal (`payout_mismatch`)", body = crate::routes::types::ErrorBody),
        (status = 503, description = "Not committed; the bank retries", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn bank(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let result = settle_event(&req, &state, &body).await;
    crate::metrics::webhook(match &result {
        Ok(SettleOutcome::Applied) => "applied",
        Ok(SettleOutcome::Duplicate) => "duplicate",
        Err(e) => e.code().as_str(),
    });
    let applied = result? == SettleOutcome::Applied;
    Ok(HttpResponse::Ok().json(crate::routes::types::WebhookAck {
        status: if applied { "applied" } else { "duplicate" },
    }))
}

/// The deposit an event is for: the one holding its token (found by the event's ref, see
/// [`crate::pending::PendingDeposits::find`]), or, when none does, the deposit its ref names if
/// that one has no token yet: its create-order went unanswered (the app answered `502` and
/// kept it processing), yet the bank made the order and it was paid. The signature says the
/// bank sent the event; the user and amount still come from our own row.
async fn deposit_of(
    state: &AppState,
    token: &BankToken,
    event: &OrderEvent,
) -> Result<Option<Known>, onramp_store::StoreError> {
    state
        .pending
        .find(&*state.store, token, &event.reference)
        .await
}

async fn settle_event(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<SettleOutcome, ApiError> {
    let secrets: Vec<&[u8]> = state.webhook_secrets.iter().map(Vec::as_slice).collect();
    let now = chrono::Utc::now().timestamp();
    signature_header(req)
        .and_then(|h| signature::verify(h, &secrets, body, now))
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidSignature,
                "The signature is not valid.",
            )
            .with_cause(e)
        })?;

    let event = BankEvent::parse(body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("The event is not valid: {e}."),
        )
    })?;
    match event {
        BankEvent::Order(event) => settle_order(state, event).await,
        BankEvent::Payout(event) => settle_payout(state, event).await,
    }
}

/// An order's event: settles its deposit.
async fn settle_order(state: &AppState, event: OrderEvent) -> Result<SettleOutcome, ApiError> {
    let token = BankToken::parse(&event.token)
        .map_err(|_| ApiError::not_found(ErrorCode::UnknownToken, "No deposit has this token."))?;
    let known = deposit_of(state, &token, &event)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::UnknownToken, "No deposit has this token.")
        })?;
    let deposit = &known.deposit;
    if event.reference != deposit.id.as_str()
        || event.amount != deposit.amount.paise()
        || event.currency != deposit.currency.code()
    {
        return Err(ApiError::unprocessable(
            ErrorCode::DepositMismatch,
            "The event's ref, amount or currency differs from the deposit.",
        ));
    }
    let request = SettleRequest {
        target: Settling::Deposit(deposit.id.clone()),
        user_id: deposit.user_id,
        amount: deposit.amount,
        stored_status: known.status,
        outcome: settlement(event.status),
    };
    let result = state.wallets.settle(request).await;
    if matches!(result, Ok(_) | Err(SettleError::Contradicts(_))) {
        // Final now: later copies of this webhook read the database.
        state.pending.forget(&token);
    }
    match result {
        Ok(result) => {
            let applied = result == SettleOutcome::Applied;
            tracing::debug!(event = %event.event_id, deposit = %deposit.id, applied, "webhook settled");
            Ok(result)
        }
        Err(e) => Err(settle_error(e, "deposit")),
    }
}

fn settlement(status: EventStatus) -> Settlement {
    match status {
        EventStatus::Success => Settlement::Success,
        EventStatus::Failure => Settlement::Failure,
    }
}

fn settle_error(e: SettleError, what: &str) -> ApiError {
    match e {
        SettleError::Contradicts(status) => ApiError::conflict(
            ErrorCode::StatusConflict,
            format!("The {what} is already {status}."),
        ),
        e => ApiError::unavailable(e),
    }
}

/// A payout's event: settles its withdrawal (a failure returns the money to the wallet).
async fn settle_payout(state: &AppState, event: PayoutEvent) -> Result<SettleOutcome, ApiError> {
    let unknown =
        || ApiError::not_found(ErrorCode::UnknownPayout, "No withdrawal has this payout.");
    let payout = PayoutId::parse(&event.payout_id).map_err(|_| unknown())?;
    let withdrawal = withdrawal_of(state, &payout, &event)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(unknown)?;
    if event.reference != withdrawal.id.as_str()
        || event.amount != withdrawal.amount.paise()
        || event.currency != withdrawal.currency.code()
    {
        return Err(ApiError::unprocessable(
            ErrorCode::PayoutMismatch,
            "The event's ref, amount or currency differs from the withdrawal.",
        ));
    }
    if withdrawal.payout_id.is_none() {
        // Found by its ref: its create-payout was never answered here (a timeout, or a crash
        // before the answer was stored). The bank's id is kept with it first.
        let attach = AttachPayout {
            withdrawal_id: withdrawal.id.clone(),
            payout_id: payout.clone(),
            answers_request: false,
            now: now_ms(),
        };
        state
            .writer
            .commit(attach)
            .await
            .map_err(ApiError::unavailable)?;
    }
    let request = SettleRequest {
        target: Settling::Payout(withdrawal.id.clone()),
        user_id: withdrawal.user_id,
        amount: withdrawal.amount,
        stored_status: withdrawal.status,
        outcome: settlement(event.status),
    };
    let result = state.wallets.settle(request).await;
    tracing::debug!(event = %event.event_id, withdrawal = %withdrawal.id, ?result, "payout webhook");
    result.map_err(|e| settle_error(e, "withdrawal"))
}

/// The withdrawal a payout's event is for: the one holding its payout id, or, when none does,
/// the withdrawal its ref names if that one has no payout id yet (its create-payout went
/// unanswered, yet the bank made the payout). Its user and amount come from our own row.
async fn withdrawal_of(
    state: &AppState,
    payout: &PayoutId,
    event: &PayoutEvent,
) -> Result<Option<Withdrawal>, onramp_store::StoreError> {
    if let Some(w) = state.store.withdrawal_by_payout(payout).await? {
        return Ok(Some(w));
    }
    let Ok(id) = WithdrawalId::parse(&event.reference) else {
        return Ok(None);
    };
    let unanswered = state.store.withdrawal(&id).await?;
    Ok(unanswered.filter(|w| w.payout_id.is_none()))
}

//! The bodies of the HTTP API (`docs/api.md`) as types: the handlers serialize these, and the
//! OpenAPI document (`GET /api/openapi.json`) is generated from the same types, so the two
//! cannot drift apart.

use onramp_store::domain::Currency;
use onramp_store::{Deposit, User};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// What the error is about when it exists all the same: the withdrawal of a
    /// `502 bank_unavailable`, which stays processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, for programs: one of `ErrorCode`.
    #[schema(schema_with = error_code_ref)]
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// `ErrorDetail.code`'s schema: the list of codes, which the document adds from
/// `onramp_api::ErrorCode` (`crate::openapi`).
fn error_code_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("ErrorCode")
}

/// `GET /api/user/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: String,
    /// A picture URL, or empty.
    pub picture: String,
}

impl From<User> for Me {
    fn from(u: User) -> Self {
        Me {
            id: u.id.to_string(),
            email: u.email,
            name: u.name,
            picture: u.picture,
        }
    }
}

/// `POST /api/deposit`'s body. Exactly this one field; integers only.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; `deposit::DepositBody` parses it strictly
pub struct DepositRequest {
    /// Paise, from 1 to `deposit.max_amount` (see `GET /api/settings`).
    #[schema(minimum = 1, example = 10000)]
    pub amount: i64,
}

/// A deposit as `POST /api/deposit` answers it.
#[derive(Serialize, ToSchema)]
pub struct DepositCreated {
    pub id: String,
    /// `processing` until the bank settles it; a replay answers the status it has now.
    #[schema(example = "processing")]
    pub status: &'static str,
    pub amount: i64,
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
    /// Where the browser approves the payment at the bank.
    pub url: Option<String>,
}

impl DepositCreated {
    /// The deposit as it stands, for a replay of the request that made it.
    pub fn now(d: &Deposit) -> Self {
        DepositCreated {
            id: d.id.as_str().to_owned(),
            status: d.status.as_str(),
            amount: d.amount.paise(),
            currency: d.currency,
            url: d.pay_url.clone(),
        }
    }
}

/// `POST /api/withdrawals`'s body. Exactly this one field; integers only.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; `withdrawal::create` parses it strictly
pub struct WithdrawalRequest {
    /// Paise, from 1 to `withdrawal.max_amount` (see `GET /api/settings`).
    #[schema(minimum = 1, example = 10000)]
    pub amount: i64,
}

/// A withdrawal as `POST /api/withdrawals` answers it: the amount left the balance, and the
/// bank is paying it out.
#[derive(Serialize, ToSchema)]
pub struct WithdrawalCreated {
    pub id: String,
    /// `processing` until the bank settles the payout (then `success`, or `failure` with the
    /// amount back in the balance: see `GET /api/transactions`).
    #[schema(example = "processing")]
    pub status: &'static str,
    pub amount: i64,
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
}

/// `POST /api/transfers`'s body. Exactly these two fields; integers only.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; `transfer::create` parses it strictly
pub struct TransferRequest {
    /// The recipient's email (the account that most recently signed in with that verified
    /// email; any letter case).
    #[schema(example = "bob@example.com")]
    pub to: String,
    /// Paise, from 1 to the maximum of `GET /api/settings`.
    #[schema(minimum = 1, example = 10000)]
    pub amount: i64,
}

/// The other side of a transfer.
#[derive(Serialize, ToSchema)]
pub struct Party {
    pub name: String,
    pub email: String,
}

/// A transfer as `POST /api/transfers` answers it: committed, both balances changed.
#[derive(Serialize, ToSchema)]
pub struct TransferCreated {
    pub id: String,
    #[schema(example = "success")]
    pub status: &'static str,
    pub amount: i64,
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
    pub to: Party,
}

/// `GET /api/balance`: committed money the user can spend.
#[derive(Serialize, ToSchema)]
pub struct Balance {
    pub amount: i64,
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
}

/// `GET /api/settings`: what the page needs before it asks.
#[derive(Serialize, ToSchema)]
pub struct Settings {
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
    pub deposit: Limits,
    pub transfer: Limits,
    pub withdrawal: Limits,
}

/// The amounts an action accepts, in paise.
#[derive(Serialize, ToSchema)]
pub struct Limits {
    pub min_amount: i64,
    pub max_amount: i64,
}

/// `GET /api/transactions`: newest first.
#[derive(Serialize, ToSchema)]
pub struct TransactionPage {
    pub items: Vec<TransactionItem>,
    /// The cursor of the next page, or null on the last.
    pub next: Option<String>,
}

/// One movement of money.
#[derive(Serialize, ToSchema)]
pub struct TransactionItem {
    pub id: String,
    /// `deposit`, `withdrawal`, `transfer_in` or `transfer_out`.
    #[schema(example = "deposit")]
    pub kind: &'static str,
    /// Always positive; the kind gives the direction.
    pub amount: i64,
    #[schema(value_type = String, example = "INR")]
    pub currency: Currency,
    /// `processing`, `success` or `failure`.
    #[schema(example = "success")]
    pub status: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Transfers only: who sent it (`transfer_in`) or received it (`transfer_out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<Party>,
}

/// The bank's order event (`docs/bank.md`), as `POST /api/webhooks/bank` reads it.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; `onramp_bank_protocol::OrderEvent` parses it
pub struct BankEvent {
    pub event_id: String,
    pub token: String,
    #[schema(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    #[schema(example = "INR")]
    pub currency: String,
    /// `SUCCESS` or `FAILURE`.
    #[schema(example = "SUCCESS")]
    pub status: String,
}

/// A webhook's answer: `applied` the first time, `duplicate` for an event already applied.
#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    #[schema(example = "applied")]
    pub status: &'static str,
}

//! onramp's HTTP API as its clients see it. Every error the API answers is
//! `{"error": {"code": "<ErrorCode>", "message": "…"}}` ([`ErrorBody`]), and a refused sign-in
//! comes back to `/?error=<ErrorCode>`. The codes are one enum, used by the server to answer,
//! by its OpenAPI document to list them, and by the load tool to read them, so that none of the
//! three can name a code the others do not know.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares [`ErrorCode`] once: each variant with its wire spelling.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// An error's `code`, in `snake_case` on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $code)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order declared.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as the wire spells it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The code the wire spelling names.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    // A request the API cannot read.
    /// The body is not valid (not JSON, a field missing or unknown, a value of the wrong type).
    InvalidBody => "invalid_body",
    /// An amount that is not a whole number of paise from 1 to the maximum.
    InvalidAmount => "invalid_amount",
    /// A transfer's `to` that is not an email.
    InvalidRecipient => "invalid_recipient",
    /// An `Idempotency-Key` that is not 1 to 255 printable ASCII characters, or more than one.
    InvalidIdempotencyKey => "invalid_idempotency_key",
    /// A history page's `limit` outside 1 to 100.
    InvalidLimit => "invalid_limit",
    /// A history page's `cursor` that the API did not give.
    InvalidCursor => "invalid_cursor",
    /// A query string that does not parse.
    InvalidQuery => "invalid_query",
    /// Any other request that cannot be read.
    BadRequest => "bad_request",
    /// The body is larger than the API reads.
    PayloadTooLarge => "payload_too_large",
    /// The body is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// No such route.
    NotFound => "not_found",
    /// The route does not take this method.
    MethodNotAllowed => "method_not_allowed",

    // Who may ask.
    /// No valid session.
    Unauthorized => "unauthorized",
    /// A browser request that changes state from another site's page.
    CrossOrigin => "cross_origin",
    /// Too many requests: wait `Retry-After` seconds.
    RateLimited => "rate_limited",

    // Money.
    /// The balance does not cover the amount.
    InsufficientFunds => "insufficient_funds",
    /// A transfer to oneself.
    SelfTransfer => "self_transfer",
    /// Nobody has signed in with the transfer's verified email.
    UnknownRecipient => "unknown_recipient",
    /// An `Idempotency-Key` used before for another request.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// A request with this `Idempotency-Key` has not been answered yet.
    RequestInProgress => "request_in_progress",
    /// The bank could not be reached or did not answer in time (a deposit: nothing was charged;
    /// a withdrawal: its amount stays set aside until the bank's answer for it).
    BankUnavailable => "bank_unavailable",
    /// The bank refused a payout: the withdrawal failed and its amount is back in the balance.
    BankRefused => "bank_refused",

    // The bank's webhook.
    /// A missing, bad or stale signature.
    InvalidSignature => "invalid_signature",
    /// No deposit has the event's token.
    UnknownToken => "unknown_token",
    /// The event's ref, amount or currency differs from the deposit's.
    DepositMismatch => "deposit_mismatch",
    /// The event's status contradicts the deposit's or withdrawal's final one.
    StatusConflict => "status_conflict",
    /// No withdrawal has the event's payout.
    UnknownPayout => "unknown_payout",
    /// The payout event's ref, amount or currency differs from the withdrawal's.
    PayoutMismatch => "payout_mismatch",

    // The service.
    /// The database cannot commit or answer right now: retry (`Retry-After`).
    Unavailable => "unavailable",
    /// `GET /readyz`: the database did not answer within a second.
    NotReady => "not_ready",
    /// A failure of ours.
    InternalError => "internal_error",

    // A refused sign-in, shown as `/?error=<code>`.
    /// The callback's `state` is missing, used, expired or not this browser's.
    InvalidState => "invalid_state",
    /// The person declined at the provider.
    AccessDenied => "access_denied",
    /// The provider reported another error.
    ProviderError => "provider_error",
    /// The callback carries no code.
    MissingCode => "missing_code",
    /// The code could not be exchanged for a token.
    TokenExchangeFailed => "token_exchange_failed",
    /// The provider's userinfo could not be read, or names nobody usable.
    UserinfoFailed => "userinfo_failed",
    /// The sign-in could not be recorded right now: try again.
    TemporarilyUnavailable => "temporarily_unavailable",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error the API answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For a person.
    pub message: String,
}

impl ErrorBody {
    /// The error code in an answer's body, if the body is the API's error.
    pub fn code_of(body: &[u8]) -> Option<ErrorCode> {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .map(|b| b.error.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_in_snake_case_and_none_is_declared_twice() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let wire = code.as_str();
            assert!(seen.insert(wire), "{wire} twice");
            assert!(wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{wire}\""));
            assert_eq!(ErrorCode::parse(wire), Some(*code));
            assert_eq!(code.to_string(), wire);
        }
        assert_eq!(ErrorCode::parse("Insufficient_Funds"), None);
    }

    #[test]
    fn an_error_body_gives_its_code_and_anything_else_none() {
        let body = br#"{"error":{"code":"insufficient_funds","message":"No."}}"#;
        assert_eq!(ErrorBody::code_of(body), Some(ErrorCode::InsufficientFunds));
        assert_eq!(
            ErrorBody::code_of(br#"{"error":{"code":"nope","message":""}}"#),
            None
        );
        assert_eq!(ErrorBody::code_of(b"<html>"), None);
    }
}

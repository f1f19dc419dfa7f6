//! The bodies the app and the bank exchange, with their statuses as enums: an unknown status
//! is a parse error at the edge, never a string compared deep inside.

use serde::{Deserialize, Serialize};

/// An order's state at the bank. `Pending` can still be paid; the others are final.
/// `Expired` (not paid by its `expires_at`) and `Cancelled` (ended by the merchant) were never
/// paid and send no webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Success,
    Failure,
    Expired,
    Cancelled,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Success => "SUCCESS",
            OrderStatus::Failure => "FAILURE",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status behind its wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OrderStatus::Pending),
            "SUCCESS" => Some(OrderStatus::Success),
            "FAILURE" => Some(OrderStatus::Failure),
            "EXPIRED" => Some(OrderStatus::Expired),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }

    /// The webhook outcome, if the order has one: `SUCCESS`/`FAILURE`. `None` for `PENDING`
    /// and for the orders that ended unpaid (`EXPIRED`, `CANCELLED`), which send no webhook.
    pub const fn outcome(self) -> Option<EventStatus> {
        match self {
            OrderStatus::Success => Some(EventStatus::Success),
            OrderStatus::Failure => Some(EventStatus::Failure),
            OrderStatus::Pending | OrderStatus::Expired | OrderStatus::Cancelled => None,
        }
    }

    /// Whether the order has ended (everything but `PENDING`): it never changes again.
    pub const fn is_final(self) -> bool {
        !matches!(self, OrderStatus::Pending)
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;
    /// For rows that store the status as text (the bank simulator's orders).
    fn try_from(s: String) -> Result<Self, String> {
        OrderStatus::parse(&s).ok_or_else(|| format!("{s:?} is not an order status"))
    }
}

/// What a webhook reports: the final outcome of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    Success,
    Failure,
}

impl EventStatus {
    pub const fn as_str(self) -> &'static str {
        OrderStatus::from_outcome(self).as_str()
    }
}

impl OrderStatus {
    pub const fn from_outcome(outcome: EventStatus) -> Self {
        match outcome {
            EventStatus::Success => OrderStatus::Success,
            EventStatus::Failure => OrderStatus::Failure,
        }
    }
}

/// `POST /api/bank/create-order`'s body. `currency` is the bank's code (`"INR"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrder {
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub return_url: String,
    /// Seconds from now until the order expires, 60 to 86400; the bank's default (3600) when
    /// `None` (then not sent).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_in: Option<u32>,
}

/// create-order's answer (`201`, or `200` for a repeated `ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedOrder {
    pub token: String,
    pub pay_url: String,
    /// When the order expires (RFC 3339); `None` from a bank that does not say.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `GET /api/bank/orders/{token}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub token: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    /// When the order expires (RFC 3339); `None` from a bank that does not say.
    #[serde(default)]
    pub expires_at: Option<String>,
    pub status: OrderStatus,
}

/// An order's webhook body, in the contract's field order. Unknown fields (such as
/// `"type": "order"`) are ignored; a repeated field is an error. `currency` stays the bank's
/// text so that a receiver can refuse a mismatch (`422`) rather than a parse failure (`400`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    pub token: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub status: EventStatus,
}

/// A payout's state at the bank. `Pending` until the bank settles it, then `Success` or
/// `Failure`, never to change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PayoutStatus {
    Pending,
    Success,
    Failure,
}

impl PayoutStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "PENDING",
            PayoutStatus::Success => "SUCCESS",
            PayoutStatus::Failure => "FAILURE",
        }
    }

    /// The status behind its wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(PayoutStatus::Pending),
            "SUCCESS" => Some(PayoutStatus::Success),
            "FAILURE" => Some(PayoutStatus::Failure),
            _ => None,
        }
    }

    /// The final outcome, once there is one.
    pub const fn outcome(self) -> Option<EventStatus> {
        match self {
            PayoutStatus::Pending => None,
            PayoutStatus::Success => Some(EventStatus::Success),
            PayoutStatus::Failure => Some(EventStatus::Failure),
        }
    }
}

impl TryFrom<String> for PayoutStatus {
    type Error = String;
    /// For rows that store the status as text (the bank simulator's payouts).
    fn try_from(s: String) -> Result<Self, String> {
        PayoutStatus::parse(&s).ok_or_else(|| format!("{s:?} is not a payout status"))
    }
}

/// `POST /api/bank/payouts`'s body: money back to the user's bank account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayout {
    /// The app's own id for the withdrawal (`wd_…`): payouts are idempotent on it.
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
}

/// `POST /api/bank/payouts`'s answer (`201`, or `200` for a repeated `ref`), and
/// `GET /api/bank/payouts/{payout_id}`'s (with `ref`, `amount` and `currency` too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub payout_id: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub status: PayoutStatus,
}

/// A payout's webhook body. `type` is always `"payout"`; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: PayoutKind,
    pub payout_id: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub status: EventStatus,
}

/// The `type` of a payout event: `"payout"` and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutKind {
    Payout,
}

/// A webhook body: an order's event (no `type`, or `"type": "order"`) or a payout's
/// (`"type": "payout"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankEvent {
    Order(OrderEvent),
    Payout(PayoutEvent),
}

impl BankEvent {
    /// Parses a webhook body by its `type`.
    pub fn parse(body: &[u8]) -> Result<BankEvent, serde_json::Error> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(rename = "type", default)]
            kind: Option<String>,
        }
        let kind: Kind = serde_json::from_slice(body)?;
        match kind.kind.as_deref() {
            Some("payout") => serde_json::from_slice(body).map(BankEvent::Payout),
            None | Some("order") => serde_json::from_slice(body).map(BankEvent::Order),
            Some(other) => Err(serde::de::Error::custom(format_args!(
                "unknown event type {other:?}"
            ))),
        }
    }
}

/// Every error the bank API answers, `404` included: `{"error": {"code", "message"}}`. An
/// answer of another shape (a proxy's HTML page, an empty body) is not the bank's word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    /// The bank's error in `body`, if that is what it is.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        serde_json::from_slice(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_the_contract_spelling() {
        for (s, wire) in [
            (OrderStatus::Pending, "PENDING"),
            (OrderStatus::Success, "SUCCESS"),
            (OrderStatus::Failure, "FAILURE"),
            (OrderStatus::Expired, "EXPIRED"),
            (OrderStatus::Cancelled, "CANCELLED"),
        ] {
            assert_eq!(s.as_str(), wire);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(serde_json::from_str::<OrderStatus>(&json).unwrap(), s);
            assert_eq!(OrderStatus::parse(wire), Some(s));
            assert_eq!(OrderStatus::try_from(wire.to_string()), Ok(s));
        }
        assert_eq!(OrderStatus::parse("success"), None);
        assert_eq!(OrderStatus::parse("CANCELED"), None);
        assert!(OrderStatus::try_from("expired".to_string()).is_err());
        assert!(serde_json::from_str::<EventStatus>("\"PENDING\"").is_err());
        assert!(serde_json::from_str::<EventStatus>("\"EXPIRED\"").is_err());
        assert!(serde_json::from_str::<EventStatus>("\"CANCELLED\"").is_err());
    }

    #[test]
    fn only_paid_orders_have_an_outcome_and_only_pending_is_not_final() {
        assert_eq!(OrderStatus::Pending.outcome(), None);
        assert_eq!(OrderStatus::Success.outcome(), Some(EventStatus::Success));
        assert_eq!(OrderStatus::Failure.outcome(), Some(EventStatus::Failure));
        assert_eq!(OrderStatus::Expired.outcome(), None);
        assert_eq!(OrderStatus::Cancelled.outcome(), None);
        assert!(!OrderStatus::Pending.is_final());
        for s in [
            OrderStatus::Success,
            OrderStatus::Failure,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
        ] {
            assert!(s.is_final(), "{s:?}");
        }
        for e in [EventStatus::Success, EventStatus::Failure] {
            assert_eq!(OrderStatus::from_outcome(e).outcome(), Some(e));
        }
    }

    #[test]
    fn expires_in_is_sent_only_when_set() {
        let mut create = CreateOrder {
            reference: "txn_1".into(),
            amount: 100,
            currency: "INR".into(),
            return_url: "http://app/r".into(),
            expires_in: None,
        };
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            serde_json::json!({"ref": "txn_1", "amount": 100, "currency": "INR",
                "return_url": "http://app/r"})
        );
        create.expires_in = Some(60);
        let json = serde_json::to_value(&create).unwrap();
        assert_eq!(json["expires_in"], 60);
        assert_eq!(serde_json::from_value::<CreateOrder>(json).unwrap(), create);
        let without: CreateOrder = serde_json::from_str(
            r#"{"ref":"txn_1","amount":100,"currency":"INR","return_url":"http://app/r"}"#,
        )
        .unwrap();
        assert_eq!(without.expires_in, None);
    }

    #[test]
    fn answers_parse_with_or_without_expires_at() {
        let created: CreatedOrder =
            serde_json::from_str(r#"{"token":"t","pay_url":"http://bank/pay?token=t"}"#).unwrap();
        assert_eq!(created.expires_at, None);
        let created: CreatedOrder = serde_json::from_str(
            r#"{"token":"t","pay_url":"http://bank/pay?token=t","expires_at":"2025-06-01T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(created.expires_at.as_deref(), Some("2025-06-01T12:00:00Z"));

        let order: Order = serde_json::from_str(
            r#"{"token":"t","ref":"txn_1","amount":100,"currency":"INR","status":"PENDING"}"#,
        )
        .unwrap();
        assert_eq!(order.expires_at, None);
        assert_eq!(order.status, OrderStatus::Pending);
        let order: Order = serde_json::from_str(
            r#"{"token":"t","ref":"txn_1","amount":100,"currency":"INR","expires_at":"2025-06-01T12:00:00Z","status":"CANCELLED"}"#,
        )
        .unwrap();
        assert_eq!(order.expires_at.as_deref(), Some("2025-06-01T12:00:00Z"));
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert!(order.status.is_final() && order.status.outcome().is_none());
    }

    #[test]
    fn an_event_body_round_trips_and_ignores_its_type() {
        let body = r#"{"event_id":"evt_1","token":"t","ref":"txn_1","amount":100,"currency":"INR","status":"SUCCESS","type":"order"}"#;
        let event: OrderEvent = serde_json::from_str(body).unwrap();
        assert_eq!(event.status, EventStatus::Success);
        assert_eq!(event.reference, "txn_1");
        let again: OrderEvent =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn only_the_banks_json_error_is_the_banks_error() {
        let ours = br#"{"error":{"code":"not_found","message":"No order has this token."}}"#;
        assert_eq!(ErrorBody::parse(ours).unwrap().error.code, "not_found");
        for other in [
            &b"<html><body>404 Not Found</body></html>"[..],
            b"",
            br#"{"error":"not found"}"#,
            br#"{"message":"Not Found"}"#,
            br#"{"error":{"message":"no code"}}"#,
        ] {
            assert_eq!(
                ErrorBody::parse(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn a_webhook_body_is_an_order_event_or_a_payout_event_by_its_type() {
        let order = br#"{"event_id":"e","token":"t","ref":"txn_1","amount":5,"currency":"INR","status":"SUCCESS"}"#;
        assert!(matches!(BankEvent::parse(order), Ok(BankEvent::Order(_))));
        let typed = br#"{"type":"order","event_id":"e","token":"t","ref":"txn_1","amount":5,"currency":"INR","status":"FAILURE"}"#;
        assert!(matches!(BankEvent::parse(typed), Ok(BankEvent::Order(_))));
        let payout = br#"{"event_id":"e","type":"payout","payout_id":"po_1","ref":"wd_1","amount":1013,"currency":"INR","status":"FAILURE"}"#;
        match BankEvent::parse(payout) {
            Ok(BankEvent::Payout(p)) => {
                assert_eq!((p.payout_id.as_str(), p.amount), ("po_1", 1013));
                assert_eq!(p.status, EventStatus::Failure);
            }
            other => panic!("{other:?}"),
        }
        let unknown = br#"{"type":"refund","event_id":"e"}"#;
        assert!(BankEvent::parse(unknown).is_err());
        let payout_without_id = br#"{"event_id":"e","type":"payout","ref":"wd_1","amount":1,"currency":"INR","status":"SUCCESS"}"#;
        assert!(BankEvent::parse(payout_without_id).is_err());
        for (s, wire) in [
            (PayoutStatus::Pending, "PENDING"),
            (PayoutStatus::Success, "SUCCESS"),
            (PayoutStatus::Failure, "FAILURE"),
        ] {
            assert_eq!(PayoutStatus::parse(wire), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{wire}\""));
        }
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let body = r#"{"event_id":"e","token":"t","ref":"r","amount":1,"amount":2,"currency":"INR","status":"SUCCESS"}"#;
        assert!(serde_json::from_str::<OrderEvent>(body).is_err());
    }
}

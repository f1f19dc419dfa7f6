//! The bodies the app and the bank exchange, with their statuses as enums: an unknown status
//! is a parse error at the edge, never a string compared deep inside.

use serde::{Deserialize, Serialize};

/// An order's state at the bank. `Pending` can still be paid; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Success,
    Failure,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Success => "SUCCESS",
            OrderStatus::Failure => "FAILURE",
        }
    }

    /// The status behind its wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OrderStatus::Pending),
            "SUCCESS" => Some(OrderStatus::Success),
            "FAILURE" => Some(OrderStatus::Failure),
            _ => None,
        }
    }

    /// The final outcome, if the order has one.
    pub const fn outcome(self) -> Option<EventStatus> {
        match self {
            OrderStatus::Pending => None,
            OrderStatus::Success => Some(EventStatus::Success),
            OrderStatus::Failure => Some(EventStatus::Failure),
        }
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
}

/// create-order's answer (`201`, or `200` for a repeated `ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedOrder {
    pub token: String,
    pub pay_url: String,
}

/// `GET /api/bank/orders/{token}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub token: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub amount: i64,
    pub currency: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_the_contract_spelling() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Success,
            OrderStatus::Failure,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("success"), None);
        assert!(serde_json::from_str::<EventStatus>("\"PENDING\"").is_err());
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
    fn a_repeated_field_is_refused() {
        let body = r#"{"event_id":"e","token":"t","ref":"r","amount":1,"amount":2,"currency":"INR","status":"SUCCESS"}"#;
        assert!(serde_json::from_str::<OrderEvent>(body).is_err());
    }
}

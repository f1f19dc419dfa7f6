//! Webhooks to the app as the bank sends them, signed with
//! [`onramp_bank_protocol::signature::sign_header`] (the same code the simulator signs with).

use onramp_bank_protocol::signature::{sign_header, EVENT_ID_HEADER, SIGNATURE_HEADER};
use serde_json::{json, Value};

/// A new event id, as the bank makes them.
pub fn event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// The body the bank sends when order `token` (for the app's deposit `reference`) settles with
/// `status` (`SUCCESS` or `FAILURE`), under a new event id.
pub fn event(token: &str, reference: &str, amount: i64, status: &str) -> Value {
    json!({
        "event_id": event_id(),
        "token": token,
        "ref": reference,
        "amount": amount,
        "currency": "INR",
        "status": status,
    })
}

/// The body the bank sends when payout `payout_id` (for the app's withdrawal `reference`) ends
/// with `status` (`SUCCESS` or `FAILURE`), under a new event id.
pub fn payout_event(payout_id: &str, reference: &str, amount: i64, status: &str) -> Value {
    json!({
        "event_id": event_id(),
        "type": "payout",
        "payout_id": payout_id,
        "ref": reference,
        "amount": amount,
        "currency": "INR",
        "status": status,
    })
}

/// The signature header for `raw`, signed with `secret` now.
pub fn signature(secret: &[u8], raw: &[u8]) -> String {
    sign_header(&[secret], chrono::Utc::now().timestamp(), raw)
}

/// Posts webhooks to the app at `app` (its base URL), signing with its webhook secret.
pub struct Webhooks {
    pub app: String,
    pub secret: Vec<u8>,
}

impl Webhooks {
    pub fn new(app: &str, secret: &[u8]) -> Webhooks {
        Webhooks {
            app: app.into(),
            secret: secret.to_vec(),
        }
    }

    /// Posts `body` signed with `secret` (the app's own when `None`), as the bank would.
    pub async fn post(&self, body: &Value, secret: Option<&[u8]>) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let header = signature(secret.unwrap_or(&self.secret), &raw);
        self.post_raw(raw, Some(header)).await
    }

    /// Posts `raw` as it is, with `signature` as the signature header (none when `None`) and a
    /// new event id header.
    pub async fn post_raw(&self, raw: Vec<u8>, signature: Option<String>) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/webhooks/bank", self.app))
            .header("Content-Type", "application/json")
            .header(EVENT_ID_HEADER, event_id())
            .body(raw);
        if let Some(s) = signature {
            req = req.header(SIGNATURE_HEADER, s);
        }
        req.send().await.unwrap()
    }
}

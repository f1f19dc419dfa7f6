//! The bank API as the app calls it (see `docs/bank.md`): one pooled reqwest client with
//! timeouts and the API key on every call.

use onramp_bank_protocol::{CreateOrder, CreatedOrder, Currency, Order};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("the bank could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the bank refused with {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the bank's answer was not understood")]
    Unreadable(#[source] reqwest::Error),
    #[error("the bank's answer was not understood: {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct BankClient {
    http: reqwest::Client,
    api_url: String,
    api_key: SecretString,
    /// How long an order may be paid: the deposit's age at which reconciliation ends it, so
    /// that the bank stops taking the payment when the app stops waiting for it.
    order_ttl_secs: u32,
}

/// The bank's bounds on an order's `expires_in` (`docs/bank.md`).
pub const ORDER_TTL_SECS: std::ops::RangeInclusive<u32> = 60..=86_400;

impl BankClient {
    /// `order_ttl` is clamped to what the bank accepts ([`ORDER_TTL_SECS`]).
    pub fn new(
        api_url: &str,
        api_key: SecretString,
        timeout: Duration,
        order_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(BankClient {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_key,
            order_ttl_secs: u32::try_from(order_ttl.as_secs())
                .unwrap_or(u32::MAX)
                .clamp(*ORDER_TTL_SECS.start(), *ORDER_TTL_SECS.end()),
        })
    }

    /// Creates the order for deposit `reference` (idempotent on `reference` at the bank). A
    /// transport failure is retried once: the bank may have created the order already, and
    /// asking again returns the same one.
    pub async fn create_order(
        &self,
        reference: &str,
        amount: i64,
        return_url: &str,
    ) -> Result<CreatedOrder, BankError> {
        let body = CreateOrder {
            reference: reference.to_owned(),
            amount,
            currency: Currency::Inr.code().to_owned(),
            return_url: return_url.to_owned(),
            expires_in: Some(self.order_ttl_secs),
        };
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent = self
                .http
                .post(format!("{}/api/bank/create-order", self.api_url))
                .bearer_auth(self.api_key.expose_secret())
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) => break r,
                Err(e) if attempt < 2 && (e.is_timeout() || e.is_request()) => continue,
                Err(e) => return Err(BankError::Unreachable(e)),
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(BankError::Refused {
                status: status.as_u16(),
                body: truncate(body),
            });
        }
        response.json().await.map_err(BankError::Unreadable)
    }

    /// The order behind `token`; `None` when the bank does not know it.
    pub async fn order(&self, token: &str) -> Result<Option<Order>, BankError> {
        let url = format!("{}/api/bank/orders/{}", self.api_url, urlencode(token));
        let request = self.http.get(url);
        Self::order_answer(request.bearer_auth(self.api_key.expose_secret())).await
    }

    /// Ends the order behind `token` if it can still be paid, and answers its final state:
    /// `CANCELLED`, or how it had already ended. `None` when the bank does not know it.
    pub async fn cancel(&self, token: &str) -> Result<Option<Order>, BankError> {
        let url = format!(
            "{}/api/bank/orders/{}/cancel",
            self.api_url,
            urlencode(token)
        );
        let request = self.http.post(url);
        Self::order_answer(request.bearer_auth(self.api_key.expose_secret())).await
    }

    async fn order_answer(request: reqwest::RequestBuilder) -> Result<Option<Order>, BankError> {
        let response = request.send().await.map_err(BankError::Unreachable)?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => response
                .json()
                .await
                .map(Some)
                .map_err(BankError::Unreadable),
            status => Err(BankError::Refused {
                status,
                body: truncate(response.text().await.unwrap_or_default()),
            }),
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

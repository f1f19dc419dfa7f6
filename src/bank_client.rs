//! The bank API as the app calls it (see `docs/bank.md`): one pooled reqwest client with
//! timeouts and the API key on every call.
//!
//! Only the bank's own word ends anything: an answer in the shape of its API (a success body,
//! or its JSON error). Anything else (a proxy's HTML page, an empty body, a `5xx`, a call that
//! timed out) is a fault that says nothing about what the bank did, and [`BankError`] says
//! whether the bank may have acted on the call all the same.

use onramp_bank_protocol::{
    CreateOrder, CreatePayout, CreatedOrder, Currency, ErrorBody, Order, Payout,
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// No connection to the bank could be made: the call never reached it.
    #[error("the bank could not be reached")]
    NotSent(#[source] reqwest::Error),
    /// The call may have reached the bank, but no answer came (it timed out, or the
    /// connection broke): the bank may have acted on it.
    #[error("the bank did not answer")]
    NoAnswer(#[source] reqwest::Error),
    /// The bank's own refusal: a `4xx` with its JSON error. It did nothing.
    #[error("the bank refused with {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer that is not the bank's word: a `5xx`, or a body of another shape (an HTML
    /// page from a proxy, an empty body, a success that does not parse).
    #[error("the bank's answer was not understood ({status}): {detail}")]
    Fault { status: u16, detail: String },
    /// An answer of the right shape that cannot be right (a token that is not a token, an
    /// order of another deposit).
    #[error("the bank's answer cannot be right: {0}")]
    Invalid(String),
}

impl BankError {
    /// Whether the bank may have done what it was asked (made the order or the payout) in
    /// spite of this error: every error but a call that never reached it or that it refused. A
    /// `409` is no refusal of that kind: it says the ref is taken, by what the bank holds.
    pub fn may_have_acted(&self) -> bool {
        match self {
            BankError::NotSent(_) => false,
            BankError::Refused { status, .. } => *status == 409,
            _ => true,
        }
    }

    /// The error's kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BankError::NotSent(_) => "not_sent",
            BankError::NoAnswer(_) => "no_answer",
            BankError::Refused { .. } => "refused",
            BankError::Fault { .. } => "fault",
            BankError::Invalid(_) => "invalid",
        }
    }
}

/// Counts a bank call that did not give the bank's word (or refused), by call and kind.
fn count_fault(call: &'static str, e: &BankError) {
    metrics::counter!("onramp_bank_faults_total", "call" => call, "kind" => e.kind()).increment(1);
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

    /// Creates the order for deposit `reference` (idempotent on `reference` at the bank). A call
    /// that got no answer is made once more: the bank may have created the order already, and
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
        let url = format!("{}/api/bank/create-order", self.api_url);
        self.post_twice(&url, &body)
            .await
            .inspect_err(|e| count_fault("create_order", e))
    }

    /// Asks the bank to pay `amount` out for withdrawal `reference` (idempotent on `reference`
    /// at the bank: asking again answers the same payout). A call that got no answer is made
    /// once more.
    pub async fn create_payout(&self, reference: &str, amount: i64) -> Result<Payout, BankError> {
        let body = CreatePayout {
            reference: reference.to_owned(),
            amount,
            currency: Currency::Inr.code().to_owned(),
        };
        let url = format!("{}/api/bank/payouts", self.api_url);
        self.post_twice(&url, &body)
            .await
            .inspect_err(|e| count_fault("create_payout", e))
    }

    /// The payout behind `payout_id`; `None` when the bank says it does not know it (its own
    /// JSON `404`).
    pub async fn payout(&self, payout_id: &str) -> Result<Option<Payout>, BankError> {
        let url = format!("{}/api/bank/payouts/{}", self.api_url, urlencode(payout_id));
        let request = self.http.get(url);
        let request = request.bearer_auth(self.api_key.expose_secret());
        found(request)
            .await
            .inspect_err(|e| count_fault("payout", e))
    }

    /// Posts `body` to `url`, and once more when no answer came. When the first call may have
    /// reached the bank, a second that says the bank did nothing (a refusal, or no connection at
    /// all) speaks only for itself: the first error is answered then, so that what the first
    /// call may have made is never taken for nothing.
    async fn post_twice<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, BankError> {
        match self.post_json(url, body).await {
            Err(first @ (BankError::NotSent(_) | BankError::NoAnswer(_))) => {
                match self.post_json(url, body).await {
                    Err(second) if first.may_have_acted() && !second.may_have_acted() => Err(first),
                    second => second,
                }
            }
            answer => answer,
        }
    }

    async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, BankError> {
        let request = self.http.post(url).json(body);
        let response = send(request.bearer_auth(self.api_key.expose_secret())).await?;
        success(response).await
    }

    /// The order behind `token`; `None` when the bank says it does not know it (its own JSON
    /// `404`: any other `404` is a fault).
    pub async fn order(&self, token: &str) -> Result<Option<Order>, BankError> {
        let url = format!("{}/api/bank/orders/{}", self.api_url, urlencode(token));
        let request = self.http.get(url);
        let request = request.bearer_auth(self.api_key.expose_secret());
        found(request)
            .await
            .inspect_err(|e| count_fault("order", e))
    }

    /// Ends the order behind `token` if it can still be paid, and answers its final state:
    /// `CANCELLED`, or how it had already ended. `None` when the bank says it does not know it.
    pub async fn cancel(&self, token: &str) -> Result<Option<Order>, BankError> {
        let url = format!(
            "{}/api/bank/orders/{}/cancel",
            self.api_url,
            urlencode(token)
        );
        let request = self.http.post(url);
        let request = request.bearer_auth(self.api_key.expose_secret());
        found(request)
            .await
            .inspect_err(|e| count_fault("cancel", e))
    }
}

/// `payout` when it is the one asked for: the same ref, amount and currency wherever the bank's
/// answer says them; otherwise the answer is not the bank's word on this payout.
pub fn payout_for(payout: Payout, reference: &str, amount: i64) -> Result<Payout, BankError> {
    let same = payout.reference.as_deref().is_none_or(|r| r == reference)
        && payout.amount.is_none_or(|a| a == amount)
        && (payout.currency.as_deref()).is_none_or(|c| c == Currency::Inr.code());
    if same {
        Ok(payout)
    } else {
        Err(BankError::Invalid(format!(
            "the bank's payout {} disagrees with withdrawal {reference} (ref, amount or currency)",
            payout.payout_id
        )))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, BankError> {
    request.send().await.map_err(|e| {
        if e.is_connect() {
            BankError::NotSent(e)
        } else {
            BankError::NoAnswer(e)
        }
    })
}

/// A `2xx` answer's body, or the error the answer is.
async fn success<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, BankError> {
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(BankError::NoAnswer)?;
    if (200..300).contains(&status) {
        serde_json::from_slice(&body).map_err(|e| BankError::Fault {
            status,
            detail: format!("the body does not parse: {e}"),
        })
    } else {
        Err(refusal_or_fault(status, &body))
    }
}

/// A non-`2xx` answer: the bank's refusal when it is a `4xx` with its JSON error, otherwise a
/// fault.
fn refusal_or_fault(status: u16, body: &[u8]) -> BankError {
    match ErrorBody::parse(body) {
        Some(e) if (400..500).contains(&status) => BankError::Refused {
            status,
            code: e.error.code,
            message: truncate(e.error.message),
        },
        _ => BankError::Fault {
            status,
            detail: truncate(String::from_utf8_lossy(body).into_owned()),
        },
    }
}

/// A look-up's answer (an order's or a payout's): what the bank holds, `None` for the bank's own
/// "not found", or an error.
async fn found<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<Option<T>, BankError> {
    match success(send(request).await?).await {
        Ok(found) => Ok(Some(found)),
        Err(BankError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_4xx_with_the_banks_json_error_is_a_refusal() {
        let json = br#"{"error":{"code":"not_found","message":"No order has this token."}}"#;
        assert!(matches!(
            refusal_or_fault(404, json),
            BankError::Refused { status: 404, ref code, .. } if code == "not_found"
        ));
        for (status, body) in [
            (404, &b"<html><h1>404 Not Found</h1></html>"[..]),
            (404, b""),
            (502, b"<html>Bad Gateway</html>"),
            (500, json),
            (409, br#"{"message":"conflict"}"#),
        ] {
            let e = refusal_or_fault(status, body);
            assert!(matches!(e, BankError::Fault { .. }), "{status}: {e:?}");
            assert!(
                e.may_have_acted(),
                "{status}: a fault says nothing of what the bank did"
            );
        }
        let refused = refusal_or_fault(400, br#"{"error":{"code":"bad","message":"no"}}"#);
        assert!(!refused.may_have_acted(), "a refusal did nothing");
        let taken = refusal_or_fault(409, br#"{"error":{"code":"ref_conflict","message":"no"}}"#);
        assert!(
            taken.may_have_acted(),
            "the ref is taken by what the bank holds"
        );
    }

    /// A bank that took the first create-order and never answered, then went away: the second
    /// call cannot connect, which says nothing of the order the first may have made. The answer
    /// is the first call's (the deposit stays `processing`), not "not sent" (which fails it).
    #[tokio::test]
    async fn a_call_that_may_have_reached_the_bank_is_not_undone_by_a_retry_that_cannot_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bank = tokio::spawn(async move {
            let (mut call, _) = listener.accept().await.unwrap();
            // The listener refuses connections from now on (Linux), and keeps its port, so that
            // no other test's listener takes it and answers the retry.
            socket2::SockRef::from(&listener)
                .shutdown(std::net::Shutdown::Read)
                .unwrap();
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut call, &mut request).await;
            // Read, never answered.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(listener);
        });
        let client = BankClient::new(
            &url,
            SecretString::from("key".to_owned()),
            Duration::from_millis(300),
            Duration::from_secs(600),
        )
        .unwrap();
        let answer = client.create_order("txn_0", 100, "http://app.test/").await;
        bank.abort();
        match answer {
            Err(e @ BankError::NoAnswer(_)) => assert!(e.may_have_acted()),
            other => panic!("the first call's missing answer was lost: {other:?}"),
        }
    }
}

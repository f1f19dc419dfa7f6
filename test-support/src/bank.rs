//! The bank simulator as the tests drive it: its pay page (as a person would), its JSON API
//! (orders, settlements, the delivery log), in-process or a child process alike.

use futures_util::{stream, StreamExt};
use reqwest::redirect::Policy;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The order token in a pay page URL (`…/pay?token=…`).
pub fn pay_token(pay_url: &str) -> &str {
    pay_url
        .split("token=")
        .nth(1)
        .expect("a pay URL has a token")
}

/// The bank at `url`, with the API key the app uses.
#[derive(Clone)]
pub struct Bank {
    pub url: String,
    api_key: String,
    client: reqwest::Client,
}

/// One row of `GET /api/bank/deliveries`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivery {
    pub event_id: String,
    /// The order's token; empty for a payout's webhook.
    #[serde(deserialize_with = "empty_when_null")]
    pub token: String,
    /// The payout's id, for a payout's webhook.
    #[serde(default)]
    pub payout_id: Option<String>,
    pub status: String,
    pub state: String,
    pub attempts: i64,
    pub delivered: bool,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
}

fn empty_when_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(value.unwrap_or_default())
}

impl Bank {
    pub fn new(url: &str, api_key: &str) -> Bank {
        Bank {
            url: url.into(),
            api_key: api_key.into(),
            // No redirects: the pay page answers 303 back to the app, which a test checks.
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    /// Approves (or declines) an order through the bank's pay page, like a person would: the
    /// page must offer both buttons. Answers the form's response (303 back to the app).
    pub async fn pay(&self, pay_url: &str, approve: bool) -> reqwest::Response {
        let page = self.client.get(pay_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("bank-approve") && html.contains("bank-decline"));
        let action = if approve { "approve" } else { "decline" };
        self.client
            .post(format!("{}/pay/{action}", self.url))
            .form(&[("token", pay_token(pay_url))])
            .send()
            .await
            .unwrap()
    }

    /// A request to the bank's JSON API (`/api/bank…`), with the API key.
    async fn api(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, format!("{}/api/bank{path}", self.url))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap()
    }

    /// Approves (or declines) an order through the JSON API; the order must have been pending.
    pub async fn settle(&self, token: &str, approve: bool) {
        let action = if approve { "approve" } else { "decline" };
        let path = format!("/orders/{token}/{action}");
        let r = self.api(reqwest::Method::POST, &path).await;
        let status = r.status();
        assert_eq!(
            status,
            200,
            "{action} {token}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    async fn get_order(&self, token: &str) -> reqwest::Response {
        self.api(reqwest::Method::GET, &format!("/orders/{token}"))
            .await
    }

    /// The bank's own view of an order, whatever it answers.
    pub async fn order(&self, token: &str) -> Value {
        self.get_order(token).await.json().await.unwrap()
    }

    /// The bank's status of an order: PENDING, SUCCESS or FAILURE.
    pub async fn order_status(&self, token: &str) -> String {
        let r = self.get_order(token).await;
        assert_eq!(r.status(), 200, "order {token}");
        let v: Value = r.json().await.unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    /// The status of every token, asked 16 at a time.
    pub async fn statuses(&self, tokens: &[String]) -> HashMap<String, String> {
        stream::iter(tokens.iter().cloned())
            .map(|t| async move {
                let s = self.order_status(&t).await;
                (t, s)
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// The bank's status of a payout: PENDING, SUCCESS or FAILURE.
    pub async fn payout_status(&self, payout_id: &str) -> String {
        let r = self
            .api(reqwest::Method::GET, &format!("/payouts/{payout_id}"))
            .await;
        assert_eq!(r.status(), 200, "payout {payout_id}");
        let v: Value = r.json().await.unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    pub async fn deliveries(&self) -> Vec<Delivery> {
        let r = self.api(reqwest::Method::GET, "/deliveries").await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// How many deliveries the app has acknowledged.
    pub async fn delivered_count(&self) -> usize {
        self.deliveries()
            .await
            .iter()
            .filter(|d| d.delivered)
            .count()
    }

    /// Waits (at most `limit`) until `expected` deliveries exist and every one is delivered.
    /// Fails at once if one was given up.
    pub async fn wait_all_delivered(&self, expected: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let list = self.deliveries().await;
            let failed: Vec<&Delivery> = list.iter().filter(|d| d.state == "failed").collect();
            assert!(failed.is_empty(), "the bank gave up deliveries: {failed:?}");
            let delivered = list.iter().filter(|d| d.state == "delivered").count();
            if list.len() == expected && delivered == expected {
                return list;
            }
            assert!(
                started.elapsed() < limit,
                "after {limit:?}: {delivered} of {} deliveries delivered ({expected} expected)",
                list.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Figures from the bank's delivery log.
pub struct DeliveryFigures {
    pub deliveries: usize,
    pub attempts: i64,
    pub retried: usize,
    pub max_attempts: i64,
}

pub fn delivery_figures(list: &[Delivery]) -> DeliveryFigures {
    DeliveryFigures {
        deliveries: list.len(),
        attempts: list.iter().map(|d| d.attempts).sum(),
        retried: list.iter().filter(|d| d.attempts > 1).count(),
        max_attempts: list.iter().map(|d| d.attempts).max().unwrap_or(0),
    }
}

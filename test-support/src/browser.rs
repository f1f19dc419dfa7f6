//! A person's browser against the app at some base URL, in-process or a child process alike.

use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `Location` header, or `""`.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A person's browser: a cookie jar and the app's address. Redirects are not followed, so a
/// test sees each hop of the sign-in (and where the app sends people) itself.
pub struct Browser {
    pub client: reqwest::Client,
    /// The app's base URL, as browsers see it: `http://localhost:<port>`, since the OAuth
    /// callback and the session cookie are on `localhost`.
    pub app: String,
}

fn client(jar: Option<Arc<reqwest::cookie::Jar>>) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(Policy::none())
        // Below the app's keep-alive (5 s): a connection idle that long is being closed by the
        // app, and a request sent on it just then fails (hyper's IncompleteMessage).
        .pool_idle_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20));
    match jar {
        Some(jar) => builder.cookie_provider(jar),
        None => builder.cookie_store(true),
    }
    .build()
    .unwrap()
}

impl Browser {
    /// A new browser with its own cookie jar.
    pub fn new(app: &str) -> Browser {
        Browser {
            client: client(None),
            app: app.into(),
        }
    }

    /// A browser whose cookies live in `jar`, for a test that reads them or sends them by hand.
    pub fn with_jar(app: &str, jar: Arc<reqwest::cookie::Jar>) -> Browser {
        Browser {
            client: client(Some(jar)),
            app: app.into(),
        }
    }

    /// A new browser that has signed in through the development provider, back on `/`.
    pub async fn signed_in(app: &str, email: &str, name: &str) -> Browser {
        let b = Browser::new(app);
        b.assert_signs_in(email, name).await;
        b
    }

    /// Signs in and checks it worked: the callback sends the person to `/`.
    pub async fn assert_signs_in(&self, email: &str, name: &str) {
        let r = self.sign_in(email, name).await;
        assert_eq!(r.status(), 303, "the callback signs in");
        assert_eq!(location(&r), "/");
    }

    /// `GET /api/auth/google`; answers the provider URL it redirects to.
    pub async fn start_sign_in(&self) -> String {
        let r = self
            .client
            .get(format!("{}/api/auth/google", self.app))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 302 || r.status() == 303,
            "status {}",
            r.status()
        );
        location(&r)
    }

    /// Submits the development provider's form at `authorize` (its URL with the OAuth query)
    /// with the query's fields and `extra` ones, as the provider's page does.
    pub async fn submit_to_provider(
        &self,
        authorize: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = url::Url::parse(authorize).unwrap();
        let mut fields: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        fields.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        self.client
            .post(url.as_str().split('?').next().unwrap())
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// The whole sign-in through the development provider; answers the callback's response.
    pub async fn sign_in(&self, email: &str, name: &str) -> reqwest::Response {
        let authorize = self.start_sign_in().await;
        let form_page = self.client.get(&authorize).send().await.unwrap();
        assert_eq!(form_page.status(), 200);
        let submitted = self
            .submit_to_provider(&authorize, &[("email", email), ("name", name)])
            .await;
        assert_eq!(submitted.status(), 303, "the provider redirects back");
        let callback = location(&submitted);
        self.client.get(callback).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.app))
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self) -> reqwest::Response {
        self.get("/api/user/me").await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.app))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/transfers` with an optional `Idempotency-Key`; the answer as it came.
    pub async fn transfer_with_key(
        &self,
        to: &str,
        amount: i64,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/transfers", self.app))
            .json(&json!({ "to": to, "amount": amount }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn transfer(&self, to: &str, amount: i64) -> reqwest::Response {
        self.transfer_with_key(to, amount, None).await
    }

    /// A transfer whose connection may fail (the app is being killed).
    pub async fn try_transfer(&self, to: &str, amount: i64) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{}/api/transfers", self.app))
            .json(&json!({ "to": to, "amount": amount }))
            .send()
            .await
    }

    /// A transfer that must be accepted; answers the app's JSON.
    pub async fn sends(&self, to: &str, amount: i64) -> Value {
        let r = self.transfer(to, amount).await;
        assert_eq!(
            r.status(),
            201,
            "transfer refused: {}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    /// `POST /api/deposit`, which must be accepted; answers the app's JSON (`id`, `url`, …).
    pub async fn deposit(&self, amount: i64) -> Value {
        let r = self
            .post_json("/api/deposit", &json!({ "amount": amount }))
            .await;
        assert_eq!(
            r.status(),
            201,
            "deposit refused: {}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    pub async fn balance(&self) -> i64 {
        let r = self.get("/api/balance").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["currency"], "INR");
        v["amount"].as_i64().unwrap()
    }

    pub async fn transactions(&self) -> Vec<Value> {
        let v: Value = self
            .get("/api/transactions?limit=100")
            .await
            .json()
            .await
            .unwrap();
        v["items"].as_array().unwrap().clone()
    }

    /// `POST /api/withdrawals` with an optional `Idempotency-Key`; the answer as it came.
    pub async fn withdraw_with_key(&self, amount: i64, key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/withdrawals", self.app))
            .json(&json!({ "amount": amount }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// A withdrawal whose connection may fail (the app is being killed).
    pub async fn try_withdraw(&self, amount: i64) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{}/api/withdrawals", self.app))
            .json(&json!({ "amount": amount }))
            .send()
            .await
    }

    pub async fn withdraw(&self, amount: i64) -> reqwest::Response {
        self.withdraw_with_key(amount, None).await
    }

    /// A withdrawal that must be accepted; answers the app's JSON.
    pub async fn withdraws(&self, amount: i64) -> Value {
        let r = self.withdraw(amount).await;
        assert_eq!(
            r.status(),
            201,
            "withdrawal refused: {}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    /// Waits until the deposit or withdrawal `id` is no longer processing; answers its final
    /// status.
    pub async fn wait_final(&self, deposit_id: &str) -> String {
        let started = Instant::now();
        loop {
            let items = self.transactions().await;
            let item = items
                .iter()
                .find(|i| i["id"] == deposit_id)
                .expect("it is listed");
            if item["status"] != "processing" {
                return item["status"].as_str().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{deposit_id} stayed processing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

//! The security headers (`Content-Security-Policy`, `Referrer-Policy`,
//! `X-Content-Type-Options`) on the page and on every kind of API error.

use super::judge::{check_json_error, Answer};
use onramp_test_support::{on_both_databases, spawn_app, Backend};
use serde_json::json;

on_both_databases!(security_headers_are_on_the_page_and_on_api_errors);

async fn security_headers_are_on_the_page_and_on_api_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let person = app.signed_in("hedwig@example.com", "Hedwig").await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.address);
    let answers = [
        ("the page", client.get(url("/")).send().await.unwrap(), 200),
        (
            "a 401",
            client.get(url("/api/balance")).send().await.unwrap(),
            401,
        ),
        ("a 404", client.get(url("/nope")).send().await.unwrap(), 404),
        (
            "a wrong method",
            client.put(url("/api/balance")).send().await.unwrap(),
            404,
        ),
        ("a 400", person.get("/api/transactions?limit=0").await, 400),
        (
            "a 403",
            person
                .client
                .post(url("/api/deposit"))
                .header("origin", "https://evil.example")
                .json(&json!({"amount": 100}))
                .send()
                .await
                .unwrap(),
            403,
        ),
        (
            "a 413",
            person
                .client
                .post(url("/api/deposit"))
                .header("content-type", "application/json")
                .body(" ".repeat(64 * 1024))
                .send()
                .await
                .unwrap(),
            413,
        ),
    ];
    for (what, r, status) in answers {
        assert_eq!(r.status(), status, "{what}");
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what} has no Content-Security-Policy"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(
            h.get("referrer-policy").is_some(),
            "{what} has no Referrer-Policy"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        if status >= 400 {
            let a = Answer {
                status,
                headers: h
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
                body: r.bytes().await.unwrap().to_vec(),
            };
            check_json_error(&a, None, &[]).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

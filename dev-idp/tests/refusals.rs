//! Everything the provider must refuse, over HTTP against a provider started with `spawn`.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Response, StatusCode};
use serde_json::json;

/// An HTML 400 error page, and no redirect anywhere.
async fn assert_error_page(resp: Response) {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let html = resp.text().await.unwrap();
    assert!(has_testid(&html, "idp-error"));
    assert!(!has_testid(&html, "idp-continue"));
}

/// A form as the sign-in page would post it, built from `query`.
fn submitted(query: &[(String, String)]) -> Vec<(String, String)> {
    let mut form = query.to_vec();
    form.push(("email".into(), "mallory@example.com".into()));
    form.push(("name".into(), "Mallory".into()));
    form
}

#[actix_web::test]
async fn wrong_client_secret_is_invalid_client() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("gina@example.com", "Gina", &challenge).await;

    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, "wrong-secret")
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate").as_deref(),
        Some("Basic realm=\"dev-idp\"")
    );
    assert_eq!(json(resp).await, json!({ "error": "invalid_client" }));

    let resp = idp.token_form(&code, &verifier, "wrong-secret").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(resp).await, json!({ "error": "invalid_client" }));

    // No credentials at all.
    let resp = idp
        .http
        .post(idp.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(resp).await, json!({ "error": "invalid_client" }));

    // Unauthenticated attempts do not consume the code.
    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn unknown_client_id_at_authorize_is_an_error_page() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    let query = with(
        authorize_query(&challenge, "s"),
        "client_id",
        Some("evil-client"),
    );
    assert_error_page(idp.get_authorize(&query).await).await;
    assert_error_page(idp.post_authorize(&submitted(&query)).await).await;
    let missing = with(authorize_query(&challenge, "s"), "client_id", None);
    assert_error_page(idp.get_authorize(&missing).await).await;
}

#[actix_web::test]
async fn unregistered_redirect_uri_at_authorize_is_an_error_page() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    for uri in [
        "https://evil.example/callback",
        "http://127.0.0.1:9/api/auth/google/callback", // registered one has ?from=app
        "http://127.0.0.1:9/api/auth/google/callback?from=app&x=1",
    ] {
        let query = with(authorize_query(&challenge, "s"), "redirect_uri", Some(uri));
        assert_error_page(idp.get_authorize(&query).await).await;
        assert_error_page(idp.post_authorize(&submitted(&query)).await).await;
    }
}

#[actix_web::test]
async fn malformed_authorization_requests_are_error_pages() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    let base = authorize_query(&challenge, "s");
    let cases = [
        with(base.clone(), "response_type", Some("token")),
        with(base.clone(), "response_type", None),
        with(base.clone(), "code_challenge_method", Some("plain")),
        with(base.clone(), "code_challenge_method", None),
        with(base.clone(), "code_challenge", None),
        with(base.clone(), "code_challenge", Some("too-short")),
    ];
    for query in cases {
        assert_error_page(idp.get_authorize(&query).await).await;
        assert_error_page(idp.post_authorize(&submitted(&query)).await).await;
    }
    // A repeated parameter is refused too.
    let mut repeated = base.clone();
    repeated.push(("redirect_uri".into(), OTHER_REDIRECT_URI.into()));
    assert_error_page(idp.get_authorize(&repeated).await).await;
}

#[actix_web::test]
async fn wrong_redirect_uri_at_token_is_invalid_grant_and_consumes_the_code() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("hank@example.com", "Hank", &challenge).await;
    let resp = idp
        .token_basic(&code, &verifier, OTHER_REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("redirect_uri does not match the authorization request"),
    )
    .await;
    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("authorization code was already used"),
    )
    .await;
}

#[actix_web::test]
async fn wrong_pkce_verifier_is_invalid_grant_and_consumes_the_code() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("ivy@example.com", "Ivy", &challenge).await;
    let (other_verifier, _) = pkce_pair();
    let resp = idp
        .token_basic(&code, &other_verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("PKCE verification failed"),
    )
    .await;
    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("authorization code was already used"),
    )
    .await;

    // A malformed verifier (too short) fails the same way.
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("ivy@example.com", "Ivy", &challenge).await;
    let resp = idp
        .token_basic(&code, &verifier[..42], REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("PKCE verification failed"),
    )
    .await;
}

#[actix_web::test]
async fn reused_code_fails_and_revokes_the_first_token() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("jack@example.com", "Jack", &challenge).await;
    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let token = json(resp).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    idp.profile(&token).await;

    let resp = idp.token_form(&code, &verifier, CLIENT_SECRET).await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("authorization code was already used"),
    )
    .await;
    let resp = idp.userinfo(Some(&format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn expired_code_is_invalid_grant() {
    let mut config = config();
    config.code_ttl = Duration::from_secs(1);
    let idp = start(config).await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("kate@example.com", "Kate", &challenge).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    // Either still stored and expired, or already pruned: both are invalid_grant.
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = json(resp).await;
    assert_eq!(body["error"], "invalid_grant");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description == "authorization code expired" || description == "unknown authorization code",
        "{description}"
    );
}

#[actix_web::test]
async fn unknown_code_and_bad_token_requests() {
    let idp = start_default().await;
    let (verifier, _) = pkce_pair();
    let resp = idp
        .token_basic("no-such-code", &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some("unknown authorization code"),
    )
    .await;

    let post = |form: Vec<(&'static str, String)>| {
        idp.http
            .post(idp.url("/token"))
            .header("Authorization", basic(CLIENT_ID, CLIENT_SECRET))
            .form(&form)
            .send()
    };
    let resp = post(vec![
        ("grant_type", "client_credentials".into()),
        ("code", "x".into()),
    ])
    .await
    .unwrap();
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        Some("only authorization_code is supported"),
    )
    .await;
    let resp = post(vec![
        ("grant_type", "authorization_code".into()),
        ("code", "x".into()),
        ("redirect_uri", REDIRECT_URI.into()),
    ])
    .await
    .unwrap();
    assert_oauth_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("missing code_verifier"),
    )
    .await;

    // JSON instead of a form.
    let resp = idp
        .http
        .post(idp.url("/token"))
        .header("Authorization", basic(CLIENT_ID, CLIENT_SECRET))
        .json(&json!({ "grant_type": "authorization_code" }))
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request", None).await;
}

#[actix_web::test]
async fn bad_bearer_tokens_are_invalid_token() {
    let idp = start_default().await;
    let token = idp.login("liam@example.com", "Liam").await;
    let bad = [
        None,
        Some("Bearer not-a-token".to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {token}x")),
    ];
    for authorization in bad {
        let resp = idp.userinfo(authorization.as_deref()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(
            header(&resp, "www-authenticate").as_deref(),
            Some("Bearer error=\"invalid_token\"")
        );
        assert_eq!(json(resp).await, json!({ "error": "invalid_token" }));
    }
    // The real token still works, with a case-insensitive scheme.
    let resp = idp.userinfo(Some(&format!("bearer {token}"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn expired_token_is_invalid_token() {
    let mut config = config();
    config.token_ttl = Duration::from_secs(1);
    let idp = start(config).await;
    let token = idp.login("mia@example.com", "Mia").await;
    idp.profile(&token).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let resp = idp.userinfo(Some(&format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(resp).await, json!({ "error": "invalid_token" }));
}

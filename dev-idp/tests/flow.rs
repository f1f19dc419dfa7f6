//! The happy paths, over HTTP against a provider started with `spawn`.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn authorize_shows_the_form_with_testids_and_hidden_fields() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    let query = authorize_query(&challenge, "st<script>alert(1)</script>\"");
    let resp = idp.get_authorize(&query).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    let html = resp.text().await.unwrap();
    for id in ["idp-email", "idp-name", "idp-continue", "idp-deny"] {
        assert!(has_testid(&html, id), "missing data-testid {id}");
    }
    // The state is escaped in the page, and carried back intact as a hidden field.
    assert!(!html.contains("<script>"));
    assert!(html.contains("st&lt;script&gt;alert(1)&lt;/script&gt;&quot;"));
    let mut hidden = hidden_fields(&html);
    hidden.sort();
    let mut expected = query.clone();
    expected.sort();
    assert_eq!(hidden, expected);
}

#[actix_web::test]
async fn full_flow_with_basic_auth() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _state) = idp
        .sign_in("Alice@Example.com", "Alice Liddell", &challenge)
        .await;
    assert!(code.len() >= 22, "code too short: {}", code.len());

    let resp = idp
        .token_basic(&code, &verifier, REDIRECT_URI, CLIENT_SECRET)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    let body = json(resp).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 22);
    assert_eq!(
        body,
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid email profile",
        })
    );

    let profile = idp.profile(&token).await;
    let sub = profile["sub"].as_str().unwrap();
    assert_eq!(sub.len(), 21);
    assert!(sub.starts_with('1') && sub.bytes().all(|b| b.is_ascii_digit()));
    let picture = profile["picture"].as_str().unwrap();
    assert!(picture.starts_with("https://www.gravatar.com/avatar/"));
    assert_eq!(
        profile,
        json!({
            "sub": sub,
            "email": "alice@example.com",
            "email_verified": true,
            "name": "Alice Liddell",
            "picture": picture,
        })
    );
}

#[actix_web::test]
async fn full_flow_with_form_credentials() {
    let idp = start_default().await;
    let (verifier, challenge) = pkce_pair();
    let (code, _) = idp.sign_in("bob@example.com", "Bob", &challenge).await;
    let resp = idp.token_form(&code, &verifier, CLIENT_SECRET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let token = json(resp).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let profile = idp.profile(&token).await;
    assert_eq!(profile["email"], "bob@example.com");
    assert_eq!(profile["name"], "Bob");
}

#[actix_web::test]
async fn basic_auth_accepts_raw_and_form_encoded_credentials() {
    let mut config = config();
    config.client_secret = "p@ss word:+&=/".into();
    let idp = start(config).await;
    let secret = idp.config.client_secret.clone();

    // RFC 6749 §2.3.1: each credential application/x-www-form-urlencoded, then base64.
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    assert_eq!(encoded, "p%40ss+word%3A%2B%26%3D%2F");
    let rfc_header = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{encoded}"))
    );
    for authorization in [rfc_header, basic(CLIENT_ID, &secret)] {
        let (verifier, challenge) = pkce_pair();
        let (code, _) = idp.sign_in("carol@example.com", "", &challenge).await;
        let resp = idp
            .http
            .post(idp.url("/token"))
            .header("Authorization", &authorization)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{authorization}");
    }
}

#[actix_web::test]
async fn one_email_is_one_sub() {
    let idp = start_default().await;
    let first = idp
        .profile(&idp.login("dave@example.com", "Dave").await)
        .await;
    let again = idp
        .profile(&idp.login("  DAVE@example.com ", "Dave").await)
        .await;
    let other = idp
        .profile(&idp.login("erin@example.com", "Erin").await)
        .await;
    assert_eq!(first["sub"], again["sub"]);
    assert_eq!(first["email"], again["email"]);
    assert_ne!(first["sub"], other["sub"]);
    assert_ne!(first["picture"], other["picture"]);
}

#[actix_web::test]
async fn blank_name_falls_back_to_the_email_local_part() {
    let idp = start_default().await;
    let profile = idp
        .profile(&idp.login("frank@example.com", "   ").await)
        .await;
    assert_eq!(profile["name"], "frank");
}

#[actix_web::test]
async fn deny_redirects_with_access_denied_and_state() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    let query = authorize_query(&challenge, "state & more");
    let html = idp.get_authorize(&query).await.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("email".into(), String::new()));
    form.push(("action".into(), "deny".into()));
    let resp = idp.post_authorize(&form).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "http://127.0.0.1:9/api/auth/google/callback?from=app&error=access_denied&state=state+%26+more"
    );
}

#[actix_web::test]
async fn invalid_email_shows_the_form_again_without_redirect() {
    let idp = start_default().await;
    let (_, challenge) = pkce_pair();
    let html = idp
        .get_authorize(&authorize_query(&challenge, "s"))
        .await
        .text()
        .await
        .unwrap();
    for email in ["", "no-at-sign", "a@b@c", "<b>x</b>@"] {
        let mut form = hidden_fields(&html);
        form.push(("email".into(), email.into()));
        form.push(("name".into(), "N".into()));
        let resp = idp.post_authorize(&form).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{email:?}");
        assert!(resp.headers().get("location").is_none());
        let page = resp.text().await.unwrap();
        assert!(has_testid(&page, "idp-form-error"), "{email:?}");
        assert!(has_testid(&page, "idp-email"));
        assert!(!page.contains("<b>"));
    }
}

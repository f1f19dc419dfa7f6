//! `GET /userinfo`: the identity behind a Bearer access token.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::identity;
use crate::pages::no_store;
use crate::IdpState;

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn invalid_token() -> HttpResponse {
    no_store(StatusCode::UNAUTHORIZED)
        .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
        .json(json!({ "error": "invalid_token" }))
}

pub(crate) async fn userinfo(req: HttpRequest, state: web::Data<IdpState>) -> HttpResponse {
    let Some(grant) = bearer_token(&req).and_then(|t| state.store.token(t)) else {
        tracing::warn!("userinfo refused: missing, unknown or expired token");
        return invalid_token();
    };
    no_store(StatusCode::OK).json(json!({
        "sub": identity::sub_for(&grant.email),
        "email": grant.email,
        "email_verified": true,
        "name": grant.name,
        "picture": identity::picture_for(&grant.email),
    }))
}

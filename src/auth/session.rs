//! The session cookie and the extractor that turns it into the signed-in user.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use onramp_store::domain::{SessionToken, UserId};
use std::future::Future;
use std::pin::Pin;

pub const SESSION_COOKIE: &str = "session_id";
pub const FLOW_COOKIE: &str = "oauth_flow";

/// The session cookie carrying `token`.
pub fn session_cookie(state: &AppState, token: &SessionToken) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.expose().to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.cookie_secure)
        .max_age(CookieDuration::seconds(
            state.settings.session.ttl_secs as i64,
        ))
        .finish()
}

/// A cookie that makes the browser forget `name`.
pub fn removal_cookie(state: &AppState, name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build(name, "")
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(path)
        .secure(state.cookie_secure)
        .finish();
    c.make_removal();
    c
}

/// The session token the request carries, if it has the right shape.
pub fn token_of(req: &HttpRequest) -> Option<SessionToken> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    SessionToken::parse(cookie.value()).ok()
}

/// The signed-in user; answers `401` when the request has no live session.
pub struct CurrentUser(pub UserId);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = token_of(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or_else(ApiError::unauthorized)?;
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            match state.sessions.lookup(&token).await {
                Ok(Some(user)) => Ok(CurrentUser(user)),
                Ok(None) => Err(ApiError::unauthorized()),
                Err(e) => Err(ApiError::unavailable(e)),
            }
        })
    }
}

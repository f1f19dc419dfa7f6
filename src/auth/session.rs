//! The session cookie and the extractor that turns it into the signed-in user.

use crate::auth::cookies::CookieNames;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use onramp_store::domain::{SessionToken, UserId};
use std::future::Future;
use std::pin::Pin;

/// The session cookie carrying `token`.
pub fn session_cookie(state: &AppState, token: &SessionToken) -> Cookie<'static> {
    Cookie::build(state.cookies.session, token.expose().to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.cookies.secure)
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
        .secure(state.cookies.secure)
        .finish();
    c.make_removal();
    c
}

/// The session token the request carries, if it has the right shape.
pub fn token_of(req: &HttpRequest, names: &CookieNames) -> Option<SessionToken> {
    let cookie = req.cookie(names.session)?;
    SessionToken::parse(cookie.value()).ok()
}

/// The signed-in user; answers `401` when the request has no live session.
pub struct CurrentUser(pub UserId);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = state.as_ref().and_then(|s| token_of(req, &s.cookies));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let token = token.ok_or_else(ApiError::unauthorized)?;
            match state.sessions.lookup(&token).await {
                Ok(Some(user)) => Ok(CurrentUser(user)),
                Ok(None) => Err(ApiError::unauthorized()),
                Err(e) => Err(ApiError::unavailable(e)),
            }
        })
    }
}

/// The signed-in user, then the body `T`: a request without a live session is answered `401`
/// before its body is read. (Taken as two arguments, actix polls both extractors together, and
/// a body refused at once, as not JSON, would answer while the session was still being looked
/// up in the database.)
pub struct SignedIn<T>(pub CurrentUser, pub T);

impl<T> FromRequest for SignedIn<T>
where
    T: FromRequest + 'static,
    T::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = CurrentUser::from_request(req, &mut Payload::None);
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let user = user.await?;
            let body = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(SignedIn(user, body))
        })
    }
}

//! `/api/auth/*` and `/api/user/me`.

use crate::auth::google::{GoogleOAuth, GoogleUser, SignInError};
use crate::auth::session::{removal_cookie, session_cookie, token_of, CurrentUser};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header::LOCATION;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_api::ErrorCode;
use onramp_store::domain::{now_ms, Provider, ProviderSub};
use onramp_store::{NewAccount, StateUse, UseSignInState};
use serde::Deserialize;

/// `GET /api/auth/google`: off to the provider, with the flow sealed in a cookie.
#[utoipa::path(
    get,
    path = "/api/auth/google",
    tag = "sign-in",
    responses(
        (status = 302, description = "To the provider's consent page, with state, an S256 \
            PKCE challenge and a nonce; sets the short-lived sealed sign-in cookie that carries \
            them (nothing is stored on the server)",
            headers(("Location" = String, description = "The provider's authorization URL"))),
        (status = 429, description = "Too many sign-ins started from this address (`limits.*`)",
            body = crate::routes::types::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn google_start(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let proxies = &state.settings.server.trusted_proxies;
    if let Some(client) = proxies.client(req.peer_addr().map(|a| a.ip()), req.headers()) {
        state.limits.sign_in(client)?;
    }
    let (url, flow) = state.google.begin(now_ms());
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, url))
        .insert_header(("Cache-Control", "no-store"))
        .cookie(state.flows.seal(&flow))
        .finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The provider's authorization code.
    code: Option<String>,
    /// The state this app sent.
    state: Option<String>,
    /// The provider's error (for example `access_denied`).
    error: Option<String>,
}

/// `GET /api/auth/google/callback`: `303` to `/` signed in, or to `/?error=<code>`.
#[utoipa::path(
    get,
    path = "/api/auth/google/callback",
    tag = "sign-in",
    params(CallbackQuery),
    responses((status = 303, description = "To `/` with the session cookie set, or to \
        `/?error=<code>` with no session",
        headers(("Location" = String, description = "`/` or `/?error=<code>`"))))
)]
pub async fn google_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: Option<web::Query<CallbackQuery>>,
) -> HttpResponse {
    let q = query.map(|q| q.into_inner());
    let user = match provider_user(&req, &state, q.as_ref()).await {
        Ok(user) => user,
        Err(e) => {
            tracing::info!(code = e.code().as_str(), reason = %crate::error::Chain(&e), "sign-in refused");
            return redirect_home(Some(e.code().as_str()))
                .cookie(state.flows.removal())
                .finish();
        }
    };
    match sign_in(&state, user).await {
        Ok(token) => redirect_home(None)
            .cookie(state.flows.removal())
            .cookie(session_cookie(&state, &token))
            .finish(),
        Err(e) => {
            tracing::error!(error = ?e, "sign-in failed after the provider vouched");
            redirect_home(Some(e.code().as_str()))
                .cookie(state.flows.removal())
                .finish()
        }
    }
}

/// The user the provider vouches for, once the callback's state is the sealed flow's own and is
/// recorded as used (a state reaches the callback once), and the code is exchanged.
async fn provider_user(
    req: &HttpRequest,
    state: &AppState,
    q: Option<&CallbackQuery>,
) -> Result<GoogleUser, SignInError> {
    let now = now_ms();
    let flow = GoogleOAuth::check_state(
        state.flows.open(req),
        q.and_then(|q| q.state.as_deref()),
        now,
    )?;
    let first_use = UseSignInState {
        hash: flow.state_hash(),
        expires_at: flow.expires_at,
    };
    match state.writer.commit(first_use).await {
        Ok(StateUse::Fresh) => {}
        Ok(StateUse::Used) => return Err(SignInError::State),
        Err(e) => return Err(SignInError::Unavailable(Box::new(e))),
    }
    let (code, error) = match q {
        Some(q) => (q.code.as_deref(), q.error.as_deref()),
        None => (None, Some("invalid_request")),
    };
    state.google.finish(flow, code, error).await
}

fn redirect_home(error: Option<&str>) -> actix_web::HttpResponseBuilder {
    let location = match error {
        Some(code) => format!("/?error={code}"),
        None => "/".to_owned(),
    };
    let mut r = HttpResponse::SeeOther();
    r.insert_header((LOCATION, location))
        .insert_header(("Cache-Control", "no-store"));
    r
}

/// Finds or creates the user behind the provider's `sub` and opens a session.
async fn sign_in(
    state: &AppState,
    user: GoogleUser,
) -> Result<onramp_store::domain::SessionToken, ApiError> {
    let sub = ProviderSub::parse(&user.sub)
        .map_err(|e| ApiError::bad_request(ErrorCode::UserinfoFailed, e))?;
    let email = clip(&user.email, 320);
    let name = match user
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(n) => clip(n, 200),
        None => clip(email.split('@').next().unwrap_or_default(), 200),
    };
    let picture = user
        .picture
        .filter(|p| p.len() <= 2048 && (p.starts_with("https://") || p.starts_with("http://")))
        .unwrap_or_default();
    let email_key = onramp_store::domain::EmailKey::of(&email);
    let account = NewAccount {
        provider: Provider::Google,
        sub,
        email,
        email_verified: user.email_verified,
        name,
        picture,
        now: now_ms(),
    };
    let user_id = match state.writer.commit(account).await {
        Ok(user_id) => user_id,
        Err(e) => {
            state.people.sign_in_unsure(&email_key);
            return Err(ApiError::unavailable(e));
        }
    };
    state.people.signed_in(user_id, &email_key);
    state
        .sessions
        .create(user_id)
        .await
        .map_err(ApiError::unavailable)
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

/// `POST /api/auth/logout`: ends the session server-side and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "sign-in",
    security(("session_cookie" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 403, description = "A browser request from another origin", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable; try again", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    _user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = token_of(&req, &state.cookies) {
        state
            .sessions
            .revoke(&token)
            .await
            .map_err(ApiError::unavailable)?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(removal_cookie(&state, state.cookies.session, "/"))
        .finish())
}

/// `GET /api/user/me`.
#[utoipa::path(
    get,
    path = "/api/user/me",
    tag = "sign-in",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = crate::routes::types::Me),
        (status = 401, description = "No valid session", body = crate::routes::types::ErrorBody),
        (status = 503, description = "The database is unavailable; try again", body = crate::routes::types::ErrorBody),
    )
)]
pub async fn me(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let found = state
        .store
        .user(user.0)
        .await
        .map_err(ApiError::unavailable)?;
    let u = found.ok_or_else(ApiError::unauthorized)?;
    Ok(HttpResponse::Ok().json(crate::routes::types::Me::from(u)))
}

//! The development identity provider of `docs/sign-in.md`.
//!
//! It stands in for Google's OAuth 2.0 authorization-code endpoints during development and tests:
//!
//! * `GET /authorize` validates the request and shows a sign-in form (email, name, Continue, Deny);
//!   `POST /authorize` issues a single-use authorization code and answers `303` to the redirect URI.
//! * `POST /token` authenticates the client (HTTP Basic or form credentials), checks the code, the
//!   redirect URI and the PKCE (S256) verifier, and answers an access token.
//! * `GET /userinfo` answers the signed-in identity for a Bearer access token.
//!
//! State (codes and tokens) lives in memory and is pruned as it expires.
//!
//! Use [`spawn`] to run the provider on its own listener, or [`configure`] to mount the same routes
//! in another `App` (e.g. `App::new().configure(configure(config))`).

mod authorize;
mod identity;
mod pages;
mod params;
mod pkce;
mod store;
mod token;
mod userinfo;

use std::fmt;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::{dev::Server, web, App, HttpServer};

/// Largest request body accepted by the form endpoints.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Configuration of the provider: the one client it knows.
///
/// `Debug` is implemented by hand so that the client secret is never printed.
#[derive(Clone)]
pub struct IdpConfig {
    pub client_id: String,
    /// Plain string; never logged.
    pub client_secret: String,
    /// Redirect URIs the client may use (exact string match).
    pub redirect_uris: Vec<String>,
    /// Lifetime of an authorization code.
    pub code_ttl: Duration,
    /// Lifetime of an access token (also the `expires_in` of the token response).
    pub token_ttl: Duration,
}

impl fmt::Debug for IdpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("code_ttl", &self.code_ttl)
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

impl IdpConfig {
    /// Checks that the configuration is usable: non-empty credentials, at least one absolute
    /// redirect URI without a fragment, non-zero lifetimes.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_id.is_empty() {
            return Err("client_id is empty".into());
        }
        if self.client_secret.is_empty() {
            return Err("client_secret is empty".into());
        }
        if self.redirect_uris.is_empty() {
            return Err("no redirect_uris configured".into());
        }
        for uri in &self.redirect_uris {
            let parsed = url::Url::parse(uri)
                .map_err(|e| format!("redirect URI {uri:?} is invalid: {e}"))?;
            if parsed.fragment().is_some() {
                return Err(format!("redirect URI {uri:?} must not have a fragment"));
            }
        }
        if self.code_ttl.is_zero() || self.token_ttl.is_zero() {
            return Err("code_ttl and token_ttl must be positive".into());
        }
        Ok(())
    }
}

/// Shared state of one provider instance.
pub(crate) struct IdpState {
    pub(crate) config: IdpConfig,
    pub(crate) store: store::Store,
}

/// The provider's routes (`/authorize`, `/token`, `/userinfo`) for embedding in an `App`:
/// `App::new().configure(configure(config))`.
///
/// The state (codes, tokens) is created once, here; the returned closure is `Clone` and every
/// clone shares it, so it can be used in a multi-worker `HttpServer::new` factory. The state is
/// attached to the provider's own resources only and does not leak into the rest of the `App`.
/// An invalid configuration is logged (see [`IdpConfig::validate`]); [`spawn`] refuses it.
pub fn configure(config: IdpConfig) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    if let Err(error) = config.validate() {
        tracing::error!(%error, "invalid development identity provider configuration");
    }
    let state = web::Data::new(IdpState {
        store: store::Store::new(config.code_ttl),
        config,
    });
    move |cfg: &mut web::ServiceConfig| {
        let payload = || web::PayloadConfig::new(MAX_BODY_BYTES);
        cfg.service(
            web::resource("/authorize")
                .app_data(state.clone())
                .app_data(payload())
                .route(web::get().to(authorize::show))
                .route(web::post().to(authorize::submit)),
        )
        .service(
            web::resource("/token")
                .app_data(state.clone())
                .app_data(payload())
                .route(web::post().to(token::token)),
        )
        .service(
            web::resource("/userinfo")
                .app_data(state)
                .route(web::get().to(userinfo::userinfo)),
        );
    }
}

/// Starts the provider on an already-bound listener (one worker) and returns the running server;
/// the caller spawns or awaits it. Fails with `InvalidInput` on an invalid configuration.
pub fn spawn(listener: TcpListener, config: IdpConfig) -> std::io::Result<Server> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let routes = configure(config);
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .listen(listener)?
        .run();
    tracing::info!(%addr, "development identity provider listening");
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IdpConfig {
        IdpConfig {
            client_id: "client".into(),
            client_secret: "top-secret".into(),
            redirect_uris: vec!["http://localhost/cb".into()],
            code_ttl: Duration::from_secs(60),
            token_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn debug_redacts_secret() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("top-secret"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn validate_rejects_bad_configs() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.redirect_uris = vec!["not a url".into()];
        assert!(c.validate().is_err());
        let mut c = config();
        c.redirect_uris = vec!["http://localhost/cb#x".into()];
        assert!(c.validate().is_err());
        let mut c = config();
        c.client_secret.clear();
        assert!(c.validate().is_err());
        let mut c = config();
        c.code_ttl = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}

//! Google's OAuth 2.0 authorization code flow with state, PKCE (S256) and a nonce, through the
//! `oauth2` crate; userinfo through reqwest. The flow's secrets travel in a sealed cookie
//! ([`crate::auth::flow`]); the callback checks them, records the state as used, and only then
//! exchanges the code.

use crate::auth::flow::{Flow, FLOW_TTL};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use onramp_api::ErrorCode;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use subtle::ConstantTimeEq;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Why a callback did not sign anybody in; `code()` is what `/?error=` shows.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the provider reported {0}")]
    Provider(String),
    #[error("the state is missing, used, expired or does not match")]
    State,
    #[error("the sign-in could not be recorded")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the callback carries no code")]
    MissingCode,
    #[error("the token exchange failed")]
    Token(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the userinfo call failed")]
    Userinfo(#[source] reqwest::Error),
    #[error("the userinfo call answered {0}")]
    UserinfoStatus(reqwest::StatusCode),
}

impl SignInError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SignInError::Provider(e) if e == "access_denied" => ErrorCode::AccessDenied,
            SignInError::Provider(_) => ErrorCode::ProviderError,
            SignInError::State => ErrorCode::InvalidState,
            SignInError::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            SignInError::MissingCode => ErrorCode::MissingCode,
            SignInError::Token(_) => ErrorCode::TokenExchangeFailed,
            SignInError::Userinfo(_) | SignInError::UserinfoStatus(_) => ErrorCode::UserinfoFailed,
        }
    }
}

/// The identity the provider vouches for.
#[derive(Debug, Clone, Deserialize)]
pub struct GoogleUser {
    pub sub: String,
    #[serde(default)]
    pub email: String,
    /// Only a verified email lets others find the user (transfers). Some providers send the
    /// string `"true"`; anything else is unverified.
    #[serde(default, deserialize_with = "verified")]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
}

fn verified<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(t) => t == "true",
        Flag::Other(_) => false,
    })
}

pub struct GoogleOAuth {
    client: Client,
    http: oauth2::reqwest::Client,
    userinfo_url: String,
}

pub struct Endpoints<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub auth_url: &'a str,
    pub token_url: &'a str,
    pub userinfo_url: &'a str,
    pub redirect_url: &'a str,
    pub timeout: Duration,
}

impl GoogleOAuth {
    pub fn new(e: Endpoints<'_>) -> anyhow::Result<Self> {
        let client = BasicClient::new(ClientId::new(e.client_id.to_owned()))
            .set_client_secret(ClientSecret::new(
                e.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(e.auth_url.to_owned())?)
            .set_token_uri(TokenUrl::new(e.token_url.to_owned())?)
            .set_redirect_uri(RedirectUrl::new(e.redirect_url.to_owned())?);
        let http = oauth2::reqwest::Client::builder()
            .redirect(oauth2::reqwest::redirect::Policy::none())
            .timeout(e.timeout)
            .build()?;
        Ok(GoogleOAuth {
            client,
            http,
            userinfo_url: e.userinfo_url.to_owned(),
        })
    }

    /// Starts a sign-in at `now_ms`: the provider URL to send the browser to, and the flow for
    /// its sealed cookie.
    pub fn begin(&self, now_ms: i64) -> (String, Flow) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = random_token();
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .url();
        let flow = Flow {
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce,
            expires_at: now_ms + FLOW_TTL.as_millis() as i64,
        };
        (url.to_string(), flow)
    }

    /// Checks a callback's `state` against the flow its cookie carried (`None`: no cookie, or
    /// one that did not open) at `now_ms`, in constant time. The flow whose state matched is
    /// answered: record its state as used before going on.
    pub fn check_state(
        flow: Option<Flow>,
        state: Option<&str>,
        now_ms: i64,
    ) -> Result<Flow, SignInError> {
        let flow = flow
            .filter(|f| !f.is_expired(now_ms))
            .ok_or(SignInError::State)?;
        let state = state.ok_or(SignInError::State)?;
        if !bool::from(state.as_bytes().ct_eq(flow.state.as_bytes())) {
            return Err(SignInError::State);
        }
        Ok(flow)
    }

    /// Finishes a sign-in whose state was checked and recorded: the provider's `error`, or the
    /// `code` exchanged (with the flow's PKCE verifier) and the user the provider vouches for.
    pub async fn finish(
        &self,
        flow: Flow,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<GoogleUser, SignInError> {
        if let Some(error) = error {
            return Err(SignInError::Provider(error.chars().take(64).collect()));
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(SignInError::MissingCode)?;
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Token(Box::new(e)))?;
        let response = self
            .http
            .get(&self.userinfo_url)
            .bearer_auth(token.access_token().secret())
            .send()
            .await
            .map_err(SignInError::Userinfo)?;
        if !response.status().is_success() {
            return Err(SignInError::UserinfoStatus(response.status()));
        }
        response.json().await.map_err(SignInError::Userinfo)
    }
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a provider's explicit yes makes an email verified, whether it says so as a JSON
    /// boolean or as the string `"true"`; a missing or odd value is a no.
    #[test]
    fn an_email_is_verified_only_when_the_provider_says_so() {
        let verified = |extra: &str| {
            let json = format!(r#"{{"sub": "1", "email": "a@b.c"{extra}}}"#);
            serde_json::from_str::<GoogleUser>(&json)
                .unwrap()
                .email_verified
        };
        assert!(verified(r#", "email_verified": true"#));
        assert!(verified(r#", "email_verified": "true""#));
        for no in [
            "",
            r#", "email_verified": false"#,
            r#", "email_verified": "yes""#,
            r#", "email_verified": 1"#,
            r#", "email_verified": null"#,
        ] {
            assert!(!verified(no), "{no}");
        }
    }

    fn flow(state: &str, expires_at: i64) -> Flow {
        Flow {
            state: state.into(),
            verifier: "v".into(),
            nonce: "n".into(),
            expires_at,
        }
    }

    /// The callback's state must be the flow's own, brought back before the flow expires.
    #[test]
    fn a_state_is_accepted_only_from_its_own_unexpired_flow() {
        let check = |f: Option<Flow>, s: Option<&str>| GoogleOAuth::check_state(f, s, 100);
        assert!(check(Some(flow("s1", 101)), Some("s1")).is_ok());
        for refused in [
            check(None, Some("s1")),
            check(Some(flow("s1", 101)), None),
            check(Some(flow("s1", 101)), Some("s2")),
            check(Some(flow("s1", 101)), Some("s1x")),
            check(Some(flow("s1", 100)), Some("s1")),
        ] {
            assert!(matches!(refused, Err(SignInError::State)), "{refused:?}");
        }
    }
}

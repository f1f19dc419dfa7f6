//! Google's OAuth 2.0 authorization code flow with state, PKCE (S256) and a nonce, through the
//! `oauth2` crate; userinfo through reqwest. The flow's secrets live server-side, keyed by a
//! random id in a short-lived HttpOnly cookie, and are taken out (single use) by the callback.

use dashmap::DashMap;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How long a started sign-in may take.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in progress kept at most; past this, expired ones are dropped first.
const MAX_FLOWS: usize = 100_000;

struct Flow {
    state: String,
    verifier: String,
    started: Instant,
}

/// Why a callback did not sign anybody in; `code()` is what `/?error=` shows.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the provider reported {0}")]
    Provider(String),
    #[error("the state is missing, used or does not match")]
    State,
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
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::Provider(e) if e == "access_denied" => "access_denied",
            SignInError::Provider(_) => "provider_error",
            SignInError::State => "invalid_state",
            SignInError::MissingCode => "missing_code",
            SignInError::Token(_) => "token_exchange_failed",
            SignInError::Userinfo(_) | SignInError::UserinfoStatus(_) => "userinfo_failed",
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
    flows: DashMap<String, Flow>,
    max_flows: usize,
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
            flows: DashMap::new(),
            max_flows: MAX_FLOWS,
        })
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the flow id for its cookie.
    pub fn begin(&self) -> (String, String) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = random_token();
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce)
            .url();
        let flow_id = random_token();
        self.prune();
        self.flows.insert(
            flow_id.clone(),
            Flow {
                state: state.secret().clone(),
                verifier: verifier.secret().clone(),
                started: Instant::now(),
            },
        );
        (url.to_string(), flow_id)
    }

    /// Finishes a sign-in from the callback's parameters and the flow cookie.
    pub async fn finish(
        &self,
        flow_id: Option<&str>,
        state: Option<&str>,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<GoogleUser, SignInError> {
        // The flow is used up by any callback that names it, whatever happens next.
        let flow = flow_id.and_then(|id| self.flows.remove(id)).map(|(_, f)| f);
        if let Some(error) = error {
            return Err(SignInError::Provider(error.chars().take(64).collect()));
        }
        let flow = flow
            .filter(|f| f.started.elapsed() < FLOW_TTL)
            .ok_or(SignInError::State)?;
        let state = state.ok_or(SignInError::State)?;
        if !bool::from(state.as_bytes().ct_eq(flow.state.as_bytes())) {
            return Err(SignInError::State);
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

    /// Keeps the flows in progress under `max_flows`: only when the map is full, drop the
    /// expired flows and, if that is not enough, the oldest tenth. A flood of unfinished
    /// sign-ins thus costs one scan per tenth of the bound, and never ends the newest (live)
    /// sign-ins wholesale.
    fn prune(&self) {
        if self.flows.len() < self.max_flows {
            return;
        }
        self.flows.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        let keep = self.max_flows - self.max_flows / 10;
        if self.flows.len() <= keep {
            return;
        }
        let mut ages: Vec<(Instant, String)> = self
            .flows
            .iter()
            .map(|e| (e.value().started, e.key().clone()))
            .collect();
        let excess = ages.len() - keep;
        ages.select_nth_unstable(excess - 1);
        for (_, key) in &ages[..excess] {
            self.flows.remove(key);
        }
    }

    /// Sign-ins begun and not yet finished.
    pub fn flows_in_progress(&self) -> usize {
        self.flows.len()
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

    fn oauth(max_flows: usize) -> GoogleOAuth {
        let secret = SecretString::from("s");
        let mut g = GoogleOAuth::new(Endpoints {
            client_id: "c",
            client_secret: &secret,
            auth_url: "http://idp.invalid/authorize",
            token_url: "http://idp.invalid/token",
            userinfo_url: "http://idp.invalid/userinfo",
            redirect_url: "http://app.invalid/api/auth/google/callback",
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        g.max_flows = max_flows;
        g
    }

    /// A flood of sign-in starts keeps the map bounded and drops the oldest first: a sign-in
    /// begun after the flood can still finish its state check.
    #[test]
    fn a_flood_of_sign_in_starts_evicts_the_oldest_and_keeps_the_newest() {
        let g = oauth(100);
        let first = g.begin().1;
        for _ in 0..1_000 {
            g.begin();
        }
        assert!(g.flows_in_progress() <= 100, "{}", g.flows_in_progress());
        assert!(g.flows.get(&first).is_none(), "the oldest went first");
        let (_, newest) = g.begin();
        for _ in 0..50 {
            g.begin();
        }
        assert!(
            g.flows.get(&newest).is_some(),
            "a live, recent sign-in survives"
        );
    }
}

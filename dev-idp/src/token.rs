//! `POST /token`: the authorization-code grant with client authentication and PKCE.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::pages::no_store;
use crate::params::{is_form, Params};
use crate::pkce;
use crate::store::{redact, CodeGrant, Redeem};
use crate::{IdpConfig, IdpState};

/// The scope granted to every token.
const SCOPE: &str = "openid email profile";

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Option<String>,
    /// Answer `WWW-Authenticate: Basic` (the client tried HTTP Basic).
    basic_challenge: bool,
}

impl OAuthError {
    fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: Some(description.into()),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    fn invalid_client(basic_challenge: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: None,
            basic_challenge,
        }
    }

    fn response(&self) -> HttpResponse {
        tracing::warn!(error = self.error, description = ?self.description, "token request refused");
        let mut builder = no_store(self.status);
        if self.basic_challenge {
            builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"dev-idp\""));
        }
        match &self.description {
            Some(d) => builder.json(json!({ "error": self.error, "error_description": d })),
            None => builder.json(json!({ "error": self.error })),
        }
    }
}

/// Constant-time comparison of a presented secret with the configured one.
fn secret_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Whether `(id, secret)` are the configured credentials.
fn credentials_match(id: &str, secret: &str, config: &IdpConfig) -> bool {
    let secret_ok = secret_matches(secret, &config.client_secret);
    (id == config.client_id) & secret_ok
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential (RFC 6749 §2.3.1).
fn form_decode(value: &str) -> Option<String> {
    percent_decode_str(&value.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

/// Authenticates the client by HTTP Basic or by form credentials (not both).
fn authenticate(req: &HttpRequest, params: &Params, config: &IdpConfig) -> Result<(), OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        let (Some(id), Some(secret)) = (params.get("client_id"), params.get("client_secret"))
        else {
            return Err(OAuthError::invalid_client(false));
        };
        return if credentials_match(id, secret, config) {
            Ok(())
        } else {
            Err(OAuthError::invalid_client(false))
        };
    };
    if params.get("client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not both",
        ));
    }
    let basic = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            let b64 = b64.trim();
            STANDARD
                .decode(b64)
                .or_else(|_| STANDARD_NO_PAD.decode(b64))
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(basic) = basic else {
        return Err(OAuthError::invalid_client(true));
    };
    let Some((raw_id, raw_secret)) = basic.split_once(':') else {
        return Err(OAuthError::invalid_client(true));
    };
    // Accept both the RFC 6749 form-encoded credentials and raw ones (as many clients send).
    let raw_ok = credentials_match(raw_id, raw_secret, config);
    let decoded_ok = match (form_decode(raw_id), form_decode(raw_secret)) {
        (Some(id), Some(secret)) => credentials_match(&id, &secret, config),
        _ => false,
    };
    if !(raw_ok | decoded_ok) {
        return Err(OAuthError::invalid_client(true));
    }
    if params
        .get("client_id")
        .is_some_and(|id| id != config.client_id)
    {
        return Err(OAuthError::invalid_client(true));
    }
    Ok(())
}

/// Why a code does not fit the request.
enum Mismatch {
    Client,
    RedirectUri,
    Pkce,
}

fn exchange(req: &HttpRequest, body: &[u8], state: &IdpState) -> Result<HttpResponse, OAuthError> {
    if !is_form(req) {
        return Err(OAuthError::invalid_request(
            "expected an application/x-www-form-urlencoded body",
        ));
    }
    let params = Params::parse(body).map_err(OAuthError::invalid_request)?;
    let config = &state.config;
    // Authenticate before looking at the grant, so an unknown caller cannot probe codes.
    authenticate(req, &params, config)?;
    check_grant_type(&params)?;
    let code = required(&params, "code")?;
    let redirect_uri = required(&params, "redirect_uri")?;
    let verifier = required(&params, "code_verifier")?;

    let outcome = state.store.redeem(code, config.token_ttl, |grant| {
        check_grant(grant, config, redirect_uri, verifier)
    });
    let token = issued_token(outcome)?;
    tracing::info!(code = %redact(code), token = %redact(&token), "access token issued");
    Ok(no_store(StatusCode::OK).json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": config.token_ttl.as_secs(),
        "scope": SCOPE,
    })))
}

fn check_grant_type(params: &Params) -> Result<(), OAuthError> {
    match params.get("grant_type") {
        Some("authorization_code") => Ok(()),
        Some(_) => Err(OAuthError::bad_request(
            "unsupported_grant_type",
            "only authorization_code is supported",
        )),
        None => Err(OAuthError::invalid_request("missing grant_type")),
    }
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .ok_or_else(|| OAuthError::invalid_request(format!("missing {name}")))
}

/// Whether the code was issued to this client, for this redirect URI and PKCE challenge.
fn check_grant(
    grant: &CodeGrant,
    config: &IdpConfig,
    redirect_uri: &str,
    verifier: &str,
) -> Result<(), Mismatch> {
    if grant.client_id != config.client_id {
        Err(Mismatch::Client)
    } else if grant.redirect_uri != redirect_uri {
        Err(Mismatch::RedirectUri)
    } else if !pkce::verify(verifier, &grant.code_challenge) {
        Err(Mismatch::Pkce)
    } else {
        Ok(())
    }
}

/// The store's verdict on a code as the token or its RFC 6749 §5.2 refusal.
fn issued_token(outcome: Redeem<Mismatch>) -> Result<String, OAuthError> {
    match outcome {
        Redeem::Issued(token) => Ok(token),
        Redeem::Unknown => Err(OAuthError::invalid_grant("unknown authorization code")),
        Redeem::AlreadyUsed => Err(OAuthError::invalid_grant(
            "authorization code was already used",
        )),
        Redeem::Expired => Err(OAuthError::invalid_grant("authorization code expired")),
        Redeem::Rejected(Mismatch::Client) => Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        )),
        Redeem::Rejected(Mismatch::RedirectUri) => Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        )),
        Redeem::Rejected(Mismatch::Pkce) => {
            Err(OAuthError::invalid_grant("PKCE verification failed"))
        }
        Redeem::Full => Err(OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: Some("too many active tokens".into()),
            basic_challenge: false,
        }),
    }
}

pub(crate) async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<IdpState>,
) -> HttpResponse {
    exchange(&req, &body, &state).unwrap_or_else(|e| e.response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_of_basic_credentials() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%FF"), None);
    }

    #[test]
    fn secrets_compare() {
        assert!(secret_matches("s3cret", "s3cret"));
        assert!(!secret_matches("s3cret", "s3cre"));
        assert!(!secret_matches("", "s3cret"));
    }
}

//! `GET /authorize` (the sign-in form) and `POST /authorize` (issue a code, or deny).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::identity;
use crate::pages::{error_page, no_store, sign_in_form};
use crate::params::{is_form, Params};
use crate::pkce;
use crate::store::{redact, CodeGrant};
use crate::IdpState;

/// Longest accepted `state`, `nonce` or `scope`.
const MAX_PARAM_LEN: usize = 1024;

/// A validated authorization request.
struct AuthzRequest<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scope: Option<&'a str>,
    state: Option<&'a str>,
    code_challenge: &'a str,
    nonce: Option<&'a str>,
}

impl<'a> AuthzRequest<'a> {
    /// Validates the parameters. The client and the redirect URI are checked first, so that no
    /// error ever leads to an unvalidated redirect URI.
    fn validate(params: &'a Params, state: &IdpState) -> Result<Self, String> {
        let config = &state.config;
        let client_id = params.get("client_id").ok_or("Missing client_id.")?;
        if client_id != config.client_id {
            return Err(format!("Unknown client_id {client_id:?}."));
        }
        let redirect_uri = params.get("redirect_uri").ok_or("Missing redirect_uri.")?;
        if !config.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(format!(
                "The redirect_uri {redirect_uri:?} is not registered for this client."
            ));
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(format!(
                    "Unsupported response_type {other:?}; use \"code\"."
                ))
            }
            None => return Err("Missing response_type.".into()),
        }
        match params.get("code_challenge_method") {
            Some("S256") => {}
            Some(other) => {
                return Err(format!(
                    "Unsupported code_challenge_method {other:?}; use \"S256\"."
                ))
            }
            None => return Err("Missing code_challenge_method (S256 is required).".into()),
        }
        let code_challenge = params
            .get("code_challenge")
            .ok_or("Missing code_challenge (PKCE is required).")?;
        if !pkce::is_valid_challenge(code_challenge) {
            return Err("Malformed code_challenge: expected 43 base64url characters.".into());
        }
        for key in ["state", "nonce", "scope"] {
            if params.get(key).is_some_and(|v| v.len() > MAX_PARAM_LEN) {
                return Err(format!("The {key} parameter is too long."));
            }
        }
        Ok(Self {
            client_id,
            redirect_uri,
            scope: params.get("scope"),
            state: params.get("state"),
            code_challenge,
            nonce: params.get("nonce"),
        })
    }

    /// The parameters to carry through the form as hidden fields.
    fn hidden_fields(&self) -> Vec<(&'static str, &'a str)> {
        let mut fields = vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
        ];
        fields.extend(self.scope.map(|v| ("scope", v)));
        fields.extend(self.state.map(|v| ("state", v)));
        fields.push(("code_challenge", self.code_challenge));
        fields.push(("code_challenge_method", "S256"));
        fields.extend(self.nonce.map(|v| ("nonce", v)));
        fields
    }

    /// `303` to the redirect URI with `pairs` (and `state`) appended to its query.
    fn redirect(&self, pairs: &[(&str, &str)]) -> HttpResponse {
        let mut url = match url::Url::parse(self.redirect_uri) {
            Ok(url) => url,
            Err(_) => {
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The configured redirect_uri is not a valid URL.",
                )
            }
        };
        url.set_fragment(None);
        {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(pairs);
            if let Some(state) = self.state {
                query.append_pair("state", state);
            }
        }
        no_store(StatusCode::SEE_OTHER)
            .insert_header((header::LOCATION, url.as_str()))
            .finish()
    }
}

fn bad_request(message: &str) -> HttpResponse {
    tracing::warn!(reason = %message, "authorization request refused");
    error_page(StatusCode::BAD_REQUEST, message)
}

/// `GET /authorize`: validate and show the sign-in form.
pub(crate) async fn show(req: HttpRequest, state: web::Data<IdpState>) -> HttpResponse {
    let params = match Params::parse(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(e) => return bad_request(&e),
    };
    match AuthzRequest::validate(&params, &state) {
        Ok(authz) => sign_in_form(
            StatusCode::OK,
            authz.client_id,
            &authz.hidden_fields(),
            "",
            "",
            None,
        ),
        Err(e) => bad_request(&e),
    }
}

/// `POST /authorize`: re-validate, then deny or issue a code.
pub(crate) async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<IdpState>,
) -> HttpResponse {
    if !is_form(&req) {
        return bad_request("Expected an application/x-www-form-urlencoded form.");
    }
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(e) => return bad_request(&e),
    };
    let authz = match AuthzRequest::validate(&params, &state) {
        Ok(authz) => authz,
        Err(e) => return bad_request(&e),
    };
    match params.get("action").unwrap_or("continue") {
        "continue" => {}
        "deny" => {
            tracing::info!(client_id = %authz.client_id, "user denied the authorization request");
            return authz.redirect(&[("error", "access_denied")]);
        }
        _ => return bad_request("Unknown action."),
    }

    let raw_email = params.get("email").unwrap_or_default();
    let raw_name = params.get("name").unwrap_or_default();
    let email = match identity::validate_email(raw_email) {
        Ok(email) => email,
        Err(message) => {
            return sign_in_form(
                StatusCode::BAD_REQUEST,
                authz.client_id,
                &authz.hidden_fields(),
                raw_email,
                raw_name,
                Some(message),
            )
        }
    };
    let name = identity::display_name(Some(raw_name), &email);
    let grant = CodeGrant {
        client_id: authz.client_id.to_string(),
        redirect_uri: authz.redirect_uri.to_string(),
        code_challenge: authz.code_challenge.to_string(),
        nonce: authz.nonce.map(str::to_string),
        email,
        name,
    };
    let sub = identity::sub_for(&grant.email);
    let Some(code) = state.store.issue_code(grant, state.config.code_ttl) else {
        tracing::error!("authorization code store is full");
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many pending sign-ins; try again later.",
        );
    };
    tracing::info!(client_id = %authz.client_id, %sub, code = %redact(&code), "authorization code issued");
    authz.redirect(&[("code", &code)])
}

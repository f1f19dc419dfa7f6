//! The OpenAPI 3.1 document of every `/api` route, generated from the handlers' annotations and
//! the body types of `routes::types`, with every error code of [`ErrorCode`]. Rendered once at
//! start-up into the app's state, which `GET /api/openapi.json` serves.

use crate::routes::{auth, deposit, meta, transfer, types, wallet, webhook, withdrawal};
use onramp_api::ErrorCode;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The security scheme of routes that need a signed-in user.
pub const SESSION: &str = "session_cookie";
/// The security scheme of the bank's webhook.
pub const BANK_SIGNATURE: &str = "bank_signature";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "onramp",
        description = "A wallet: sign in with Google, add money through a bank, send it to other people, see the balance \
                       and history. Amounts are integers in paise. See docs/api.md."
    ),
    paths(
        auth::google_start,
        auth::google_callback,
        auth::logout,
        auth::me,
        deposit::create,
        transfer::create,
        withdrawal::create,
        wallet::balance,
        wallet::settings,
        wallet::transactions,
        webhook::bank,
        meta::openapi_json,
    ),
    components(schemas(types::ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "sign-in", description = "Google sign-in and the session"),
        (name = "wallet", description = "Deposits, transfers, balance and history"),
        (name = "bank", description = "What the bank calls"),
        (name = "meta", description = "About the API itself"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("ErrorCode".into(), error_code_schema().into());
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::cookies::SESSION_COOKIE,
                "The session cookie set by the sign-in callback (HttpOnly; SameSite=Lax).",
            ))),
        );
        components.add_security_scheme(
            BANK_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                onramp_bank_protocol::SIGNATURE_HEADER,
                "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" with the webhook \
                 secret>; several v1 values during a rotation (docs/bank.md).",
            ))),
        );
    }
}

/// Every code an error may carry, from [`ErrorCode`] (the one list the server, this document
/// and the load tool share).
fn error_code_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "What went wrong, for a program to act on (`message` is for a person). A refused \
             sign-in comes back to `/?error=<code>` with one of these.",
        ))
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
        .build()
}

/// The document, as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::API_ROUTES;

    fn parsed() -> serde_json::Value {
        serde_json::from_str(&document()).unwrap()
    }

    #[test]
    fn every_api_route_served_has_an_entry_and_every_entry_is_served() {
        let doc = parsed();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in API_ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is served but not in the OpenAPI document"
            );
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            API_ROUTES.len(),
            "the document lists a route not served"
        );
    }

    #[test]
    fn every_operation_documents_its_error_object_and_security() {
        let doc = parsed();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(
                            schema, "#/components/schemas/ErrorBody",
                            "{method} {path} {status} must answer the error object"
                        );
                    }
                }
                let needs_session = responses.contains_key("401") && path != "/api/webhooks/bank";
                if needs_session {
                    assert_eq!(
                        op["security"][0][SESSION],
                        serde_json::json!([]),
                        "{method} {path}"
                    );
                }
            }
        }
        assert_eq!(
            doc["paths"]["/api/webhooks/bank"]["post"]["security"][0][BANK_SIGNATURE],
            serde_json::json!([])
        );
    }

    /// Validated by `openapi-spec-validator` (PyPI; `.ci/run` installs it), the reference
    /// validator of OpenAPI 3.1 documents.
    #[test]
    fn every_error_code_is_listed_and_the_error_body_refers_to_them() {
        let doc = parsed();
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        let code = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"];
        assert_eq!(code["$ref"], "#/components/schemas/ErrorCode", "{code}");
    }

    #[test]
    fn the_document_is_valid_openapi_3_1() {
        let doc = parsed();
        assert_eq!(doc["openapi"], "3.1.0");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openapi.json");
        std::fs::write(&file, document()).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .expect(
                "python3 runs (install openapi-spec-validator: pip install openapi-spec-validator)",
            );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the document is not valid:\n{text}");
        assert!(text.contains("OK"), "{text}");
    }
}

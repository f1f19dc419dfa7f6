//! Cross-cutting request rules: the Origin check on state-changing requests and the security
//! headers on every response.

use crate::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, ORIGIN};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use onramp_api::ErrorCode;

/// The app's own origin (`scheme://host[:port]`), handed to [`origin_check`] as app data.
#[derive(Clone)]
pub struct OwnOrigin(pub String);

/// Refuses `POST`, `PUT`, `PATCH` and `DELETE` from a browser whose `Origin` is not ours (`403`).
/// Requests without `Origin` (servers such as the bank, command-line clients) pass.
/// The refusal is a response, not an `Err`, so that [`security_headers`] still adds its headers.
pub async fn origin_check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let changes_state = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if changes_state {
        let own = req
            .app_data::<OwnOrigin>()
            .map(|o| o.0.as_str())
            .unwrap_or_default();
        let foreign = req
            .headers()
            .get_all(ORIGIN)
            .any(|o| o.as_bytes() != own.as_bytes());
        if foreign {
            let refusal = ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CrossOrigin,
                "Requests from other sites are not allowed.",
            );
            return Ok(req.error_response(refusal).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; \
         connect-src 'self'; form-action 'self' http: https:; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to every response, and `x-request-id`: the id the logs of this
/// request carry.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .and_then(|id| HeaderValue::from_str(&id.to_string()).ok());
    // The origin is serialized by `url` (lower-case scheme), so a prefix test is exact here.
    let https = req
        .app_data::<OwnOrigin>()
        .is_some_and(|o| o.0.starts_with("https://"));
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if https {
        // Browsers that saw the site once refuse plain http to it for a year.
        headers.insert(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Some(id) = request_id {
        headers.insert(HeaderName::from_static("x-request-id"), id);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App, HttpResponse};

    async fn hsts_for(origin: &str) -> Option<String> {
        let app = test::init_service(
            App::new()
                .app_data(OwnOrigin(origin.into()))
                .wrap(from_fn(security_headers))
                .route("/", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        res.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// HSTS only where the public URL is https: on plain http it would be ignored at best, and
    /// on a development machine it would lock the browser out of http://localhost.
    #[actix_web::test]
    async fn hsts_is_sent_under_https_only() {
        assert_eq!(
            hsts_for("https://wallet.example.com").await.as_deref(),
            Some("max-age=31536000; includeSubDomains")
        );
        assert_eq!(hsts_for("http://localhost:8080").await, None);
    }
}

/// Set at SIGTERM among several processes: every answer closes its connection, so neither
/// nginx nor another process keeps one open to reuse at the moment this process stops
/// listening (a POST sent on a connection being closed would get nginx's `502`, which it never
/// sends again).
#[derive(Clone, Default)]
pub struct Draining(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

pub async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<Draining>()
        .is_some_and(|d| d.0.load(std::sync::atomic::Ordering::Acquire));
    let mut res = next.call(req).await?;
    if draining {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res)
}

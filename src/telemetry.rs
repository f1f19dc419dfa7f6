//! Logging through `tracing`: pretty for people, JSON for machines; `RUST_LOG` overrides the
//! configured level.

use tracing_subscriber::EnvFilter;

pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The request span of every HTTP request, as tracing-actix-web's default but with the query's
/// values of `code` and `state` replaced: the sign-in callback carries the provider's one-time
/// code and our state in its query, and neither belongs in a log.
pub struct RedactingRootSpan;

impl tracing_actix_web::RootSpanBuilder for RedactingRootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let request_id = actix_web::HttpMessage::extensions(request)
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_default(),
            http.target = %redacted_target(request.uri()),
            http.client_ip = %client_ip(request),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome)
    }
}

/// The client as `server.trusted_proxies` says (not actix's `realip_remote_addr`, which believes
/// a `Forwarded` or `X-Forwarded-For` header from anyone and so lets a client write the log).
fn client_ip(request: &actix_web::dev::ServiceRequest) -> String {
    let peer = request.peer_addr().map(|a| a.ip());
    let client = match request.app_data::<actix_web::web::Data<crate::state::AppState>>() {
        Some(state) => state
            .settings
            .server
            .trusted_proxies
            .client(peer, request.headers()),
        None => peer,
    };
    client.map(|ip| ip.to_string()).unwrap_or_default()
}

/// Query parameters whose values are never logged.
const SECRET_PARAMS: [&str; 2] = ["code", "state"];

/// The path and query of `uri`, with the values of [`SECRET_PARAMS`] replaced by `REDACTED`.
pub fn redacted_target(uri: &actix_web::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.contains(&name) => format!("{name}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callbacks_code_and_state_are_redacted_and_nothing_else() {
        let uri: actix_web::http::Uri =
            "/api/auth/google/callback?state=S3CR3T&code=C0DE&scope=email"
                .parse()
                .unwrap();
        assert_eq!(
            redacted_target(&uri),
            "/api/auth/google/callback?state=REDACTED&code=REDACTED&scope=email"
        );
        let plain: actix_web::http::Uri = "/api/transactions?limit=5".parse().unwrap();
        assert_eq!(redacted_target(&plain), "/api/transactions?limit=5");
    }
}

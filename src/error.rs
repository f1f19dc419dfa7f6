//! The one error type of the HTTP API: `{"error": {"code", "message"}}` with a fitting status.
//! Causes of 5xx errors are logged with their chain and never shown to the client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use onramp_api::ErrorCode;
use serde_json::json;
use std::fmt;

/// An error followed by its causes, `a: b: c`, for the one log line at the edge.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    cause: Option<anyhow::Error>,
    /// Seconds for a `Retry-After` header (rate limits).
    retry_after: Option<u64>,
    /// The id of what the error is about, when it exists all the same (a withdrawal the bank
    /// did not answer for): the body's top-level `id`.
    id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            cause: None,
            retry_after: None,
            id: None,
        }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Sign in first.",
        )
    }
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// A failure of ours; `cause` is logged, the client sees a generic message.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::InternalError,
            message: "Something went wrong on our side. Please try again.".into(),
            cause: Some(cause.into()),
            retry_after: None,
            id: None,
        }
    }
    /// Temporarily unable (the database or an actor); safe to retry.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::Unavailable,
            message: "The service is temporarily unavailable. Please try again.".into(),
            cause: Some(cause.into()),
            // app-api.md: a 503 says when to try again (a commit that failed, a wallet between
            // two processes: both pass within a second or two).
            retry_after: Some(1),
            id: None,
        }
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }
    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(cause) = &self.cause {
            write!(f, " (cause: {cause:#})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(code = self.code.as_str(), error = ?self, "request failed");
        } else if let Some(cause) = &self.cause {
            tracing::info!(code = self.code.as_str(), cause = %format!("{cause:#}"), "request refused");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        let error = json!({"code": self.code, "message": self.message});
        match &self.id {
            Some(id) => response.json(json!({"error": error, "id": id})),
            None => response.json(json!({ "error": error })),
        }
    }
}

/// JSON bodies that fail to parse: 415 for a wrong content type, 413 past the size limit,
/// otherwise 400 with serde's explanation.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Send the body as application/json.",
        ),
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "The body is too large.",
        ),
        E::Deserialize(e) => ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("The body is not valid: {e}."),
        ),
        other => ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("The body could not be read: {other}."),
        ),
    }
}

pub fn query_error(err: actix_web::error::QueryPayloadError) -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidQuery,
        format!("The query string is not valid: {err}."),
    )
}

/// For `ErrorHandlers`: an error response that actix-web built itself (a body past the limit of
/// `web::Bytes`, a payload it could not read) becomes our JSON error with the same status.
/// Responses that already are JSON pass unchanged.
pub fn json_error_body<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "The body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "Send the body as application/json.",
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "There is nothing here."),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "This method is not allowed here.",
        ),
        s if s.is_server_error() => (
            ErrorCode::InternalError,
            "Something went wrong on our side. Please try again.",
        ),
        _ => (ErrorCode::BadRequest, "The request could not be read."),
    };
    let (req, _) = res.into_parts();
    let json = ApiError::new(status, code, message).error_response();
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, json).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_says_when_to_try_again() {
        let r = ApiError::unavailable(anyhow::anyhow!("a wallet between two processes"))
            .error_response();
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap(),
            "1"
        );
    }
}

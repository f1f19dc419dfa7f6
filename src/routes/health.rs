use crate::state::AppState;
use actix_web::{web, HttpResponse};
use onramp_api::ErrorCode;
use std::time::Duration;

/// `200` while the process runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `200` when the database answers within a second, else `503`.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness: database timed out");
            not_ready()
        }
    }
}

fn not_ready() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
        .json(serde_json::json!({
            "error": {"code": ErrorCode::NotReady, "message": "The database is not answering."}
        }))
}

//! `GET /api/openapi.json`: the API's own description.

use crate::state::AppState;
use actix_web::{web, HttpResponse};

/// `GET /api/openapi.json`: the OpenAPI 3.1 document, rendered at start-up (`crate::openapi`).
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

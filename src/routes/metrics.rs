//! `GET /metrics`: Prometheus text.

use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!("onramp_wallet_actors").set(state.wallets.alive() as f64);
    metrics::gauge!("onramp_sessions_cached").set(state.sessions.cached() as f64);
    let handle = crate::metrics::handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

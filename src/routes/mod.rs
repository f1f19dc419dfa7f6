//! HTTP routes, one module per group (see `docs/api.md`).

pub mod auth;
pub mod deposit;
pub mod health;
pub mod metrics;
pub mod pages;
pub mod wallet;
pub mod webhook;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/api/auth/google", web::get().to(auth::google_start))
        .route(
            "/api/auth/google/callback",
            web::get().to(auth::google_callback),
        )
        .route("/api/auth/logout", web::post().to(auth::logout))
        .route("/api/user/me", web::get().to(auth::me))
        .route("/api/deposit", web::post().to(deposit::create))
        .route("/api/balance", web::get().to(wallet::balance))
        .route("/api/settings", web::get().to(wallet::settings))
        .route("/api/transactions", web::get().to(wallet::transactions))
        .route("/api/webhooks/bank", web::post().to(webhook::bank))
        .route("/", web::get().to(pages::index))
        .route("/dashboard", web::get().to(pages::index))
        .route("/static/{name:.*}", web::get().to(pages::asset));
}

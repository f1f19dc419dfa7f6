//! HTTP routes, one module per group (see `docs/api.md`).

pub mod auth;
pub mod deposit;
pub mod health;
pub mod meta;
pub mod metrics;
pub mod pages;
pub mod transfer;
pub mod types;
pub mod wallet;
pub mod webhook;
pub mod withdrawal;

use actix_web::web;

/// Declares the `/api` routes once: `configure` registers them and [`API_ROUTES`] lists them,
/// so that a test can hold the OpenAPI document to exactly what is served.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every `/api` route served, as `(method, path)`.
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn configure_api(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

api_routes! {
    get "/api/auth/google" => auth::google_start;
    get "/api/auth/google/callback" => auth::google_callback;
    post "/api/auth/logout" => auth::logout;
    get "/api/user/me" => auth::me;
    post "/api/deposit" => deposit::create;
    post "/api/transfers" => transfer::create;
    post "/api/withdrawals" => withdrawal::create;
    get "/api/balance" => wallet::balance;
    get "/api/settings" => wallet::settings;
    get "/api/transactions" => wallet::transactions;
    post "/api/webhooks/bank" => webhook::bank;
    get "/api/openapi.json" => meta::openapi_json;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_api(cfg);
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route(
            crate::cluster::CALL_PATH,
            web::post().to(crate::cluster::serve_call),
        )
        .route("/", web::get().to(pages::index))
        .route("/dashboard", web::get().to(pages::index))
        .route("/static/{name:.*}", web::get().to(pages::asset));
}

/// `/metrics`, on the main listener or on `server.metrics_listen` (see `startup`).
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics::metrics));
}

#[cfg(test)]
mod tests {
    /// `/api` routes are declared in `api_routes!` only, or the OpenAPI test could not see them.
    #[test]
    fn no_api_route_is_registered_outside_the_declaration() {
        let source = include_str!("mod.rs");
        // Built at run time, so that this line is not a match itself.
        let api_path = format!("\"/{}", "api");
        let registered_elsewhere = source
            .lines()
            .filter(|l| l.contains(".route(") && l.contains(&api_path))
            .count();
        assert_eq!(registered_elsewhere, 0);
    }
}

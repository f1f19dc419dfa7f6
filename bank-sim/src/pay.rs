//! The bank's frontend: the pay page and its Approve / Decline forms (no API key: the token is
//! the capability).

use actix_web::error::InternalError;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::Markup;
use serde::Deserialize;

use crate::api::State;
use crate::db::SettleOutcome;
use crate::html;
use onramp_bank_protocol::EventStatus;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(4096)
            .error_handler(|err, _req| {
                let response = page(
                    StatusCode::BAD_REQUEST,
                    html::message_page("Bad request", "This request is not valid.", "bank-error"),
                );
                InternalError::from_response(err, response).into()
            }),
    )
    .service(web::resource("/pay").route(web::get().to(pay_page)))
    .service(web::resource("/pay/approve").route(web::post().to(approve)))
    .service(web::resource("/pay/decline").route(web::post().to(decline)));
}

/// An HTML response with headers that keep the page (and its token) private and unframeable.
fn page(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(body.into_string())
}

fn not_found_page() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        html::message_page(
            "Payment not found",
            "This payment does not exist.",
            "bank-not-found",
        ),
    )
}

fn error_page() -> HttpResponse {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        html::message_page(
            "Error",
            "Something went wrong; please try again.",
            "bank-error",
        ),
    )
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

async fn pay_page(query: web::Query<TokenParam>, state: web::Data<State>) -> HttpResponse {
    let Some(token) = query.into_inner().token.filter(|t| !t.is_empty()) else {
        return not_found_page();
    };
    // `state.order` persists an order past its expiry as `EXPIRED` first.
    match state.order(&token).await {
        Ok(Some(order)) if !order.status.is_final() => page(StatusCode::OK, html::pay_page(&order)),
        Ok(Some(order)) => page(StatusCode::OK, html::final_page(&order)),
        Ok(None) => not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "bank simulator: reading an order failed");
            error_page()
        }
    }
}

async fn approve(form: web::Form<TokenParam>, state: web::Data<State>) -> HttpResponse {
    settle(form.into_inner(), &state, EventStatus::Success).await
}

async fn decline(form: web::Form<TokenParam>, state: web::Data<State>) -> HttpResponse {
    settle(form.into_inner(), &state, EventStatus::Failure).await
}

/// Settles the order and sends the browser back to the merchant (`303`); an order that is no
/// longer `PENDING` (paid, declined, expired or cancelled) is left alone and the page says so
/// (`409`).
async fn settle(form: TokenParam, state: &State, outcome: EventStatus) -> HttpResponse {
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return not_found_page();
    };
    match state.settle(&token, outcome).await {
        Ok(SettleOutcome::Settled { order, .. }) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, order.return_url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .finish(),
        Ok(SettleOutcome::AlreadyFinal(order)) => {
            page(StatusCode::CONFLICT, html::final_page(&order))
        }
        Ok(SettleOutcome::NotFound) => not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "bank simulator: settling an order failed");
            error_page()
        }
    }
}

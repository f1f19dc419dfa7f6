//! What every request handler shares.

use crate::auth::google::GoogleOAuth;
use crate::bank_client::BankClient;
use crate::configuration::Settings;
use onramp_actors::sessions::Sessions;
use onramp_actors::wallet::Wallets;
use onramp_actors::writer::DbWriter;
use onramp_store::Store;
use std::sync::Arc;

/// URLs after defaults are resolved against the addresses actually bound.
#[derive(Debug, Clone)]
pub struct Urls {
    pub public_url: String,
    pub public_origin: String,
    pub redirect_url: String,
    pub auth_url: String,
    pub token_url: String,
    pub userinfo_url: String,
    pub bank_api_url: String,
    pub webhook_url: String,
}

impl Urls {
    /// Where the bank sends the browser back after a payment.
    pub fn deposit_return_url(&self) -> String {
        format!("{}/dashboard", self.public_url)
    }
}

pub struct AppState {
    pub settings: Settings,
    pub urls: Urls,
    pub store: Arc<dyn Store>,
    pub writer: DbWriter,
    pub sessions: Sessions,
    pub wallets: Wallets,
    pub google: GoogleOAuth,
    pub bank: BankClient,
    /// Withdrawals whose create-payout call is under way here.
    pub paying: Arc<crate::paying::Paying>,
    /// Deposits waiting for the bank's webhook.
    pub pending: Arc<crate::pending::PendingDeposits>,
    /// The current webhook secret and, during a rotation, the previous one.
    pub webhook_secrets: Vec<Vec<u8>>,
    pub cookies: crate::auth::cookies::CookieNames,
    /// Seals and opens the sign-in cookie.
    pub flows: crate::auth::flow::FlowCookies,
    pub limits: crate::limits::Limits,
    /// The OpenAPI document, rendered once (`GET /api/openapi.json`).
    pub openapi: String,
    /// Senders and recipients of transfers, briefly cached.
    pub people: crate::people::People,
    /// Checks the proof of calls other processes forward here (PostgreSQL only).
    pub proof_key: Option<crate::cluster::ProofKey>,
    /// Set at SIGTERM among several processes (see [`crate::middleware::Draining`]).
    pub draining: crate::middleware::Draining,
}

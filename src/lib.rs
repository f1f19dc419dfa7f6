//! onramp: a wallet server. Sign in with Google, add money through a bank, see the balance;
//! the bank confirms each payment by a signed webhook and the wallet is credited exactly once.

pub mod audit;
pub mod auth;
pub mod bank_client;
pub mod client_addr;
pub mod cluster;
pub mod configuration;
pub mod dev;
pub mod error;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod paying;
pub mod pending;
pub mod people;
pub mod reconcile;
pub mod request;
pub mod routes;
pub mod safety;
pub mod signals;
pub mod startup;
pub mod state;
pub mod telemetry;

//! The app over real HTTP, on SQLite and on PostgreSQL. One test binary made of modules.

mod helpers;

mod deposits;
mod hostile;
mod operations;
mod reconcile;
mod sessions;
mod sign_in;
mod store;
mod webhooks;

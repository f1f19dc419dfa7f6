//! The app over real HTTP, on SQLite and on PostgreSQL. One test binary made of modules; the
//! harness (the app in-process, a person's browser, the bank, the database) is the
//! `onramp-test-support` crate.

mod deposits;
mod hostile;
mod limits;
mod operations;
mod reconcile;
mod sessions;
mod sign_in;
mod transfers;
mod webhooks;
mod withdrawals;

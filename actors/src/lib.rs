//! onramp's actors and storage: the DB writer (group commit), the session manager and the
//! per-user wallet actors, over one storage trait with a SQLite and a PostgreSQL backend.

pub mod domain;
pub mod sessions;
pub mod store;
pub mod wallet;
pub mod writer;

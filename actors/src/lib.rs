//! onramp's actors: the DB writer (group commit), the session manager and the per-user wallet
//! actors, over the [`onramp_store::Store`] trait.

pub mod funds;
pub mod ownership;
pub mod sessions;
pub mod wallet;
pub mod writer;

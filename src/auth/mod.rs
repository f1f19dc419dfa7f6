//! Signing in: the OAuth flow with Google (or the development provider) and the session cookie.

pub mod cookies;
pub mod flow;
pub mod google;
pub mod session;

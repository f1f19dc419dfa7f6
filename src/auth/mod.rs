//! Signing in: the OAuth flow with Google (or the development provider) and the session cookie.

pub mod google;
pub mod session;

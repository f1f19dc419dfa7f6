//! A sign-in in progress, kept by the browser in a sealed cookie: its state, PKCE verifier and
//! nonce, encrypted and authenticated (AES-256-GCM, the `cookie` crate's private jar, with the
//! cookie's name as associated data) under a key from `server.cookie_key`. Starting a sign-in
//! stores nothing on the server, so a flood of starts can evict nobody's sign-in, and any
//! process holding the same key can finish a sign-in that another began.
//!
//! The cookie lives [`FLOW_TTL`] and its sealed expiry is checked too (a copy kept past its
//! `Max-Age` is refused). A state is single-use: the callback records it in the database
//! ([`onramp_store::UseSignInState`]) and refuses one found there.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, CookieJar, Key, SameSite};
use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a started sign-in may take.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// What a sign-in carries from its start to its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The `state` sent to the provider, which the callback must bring back.
    pub state: String,
    /// The PKCE code verifier, sent with the code exchange.
    pub verifier: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// Unix milliseconds past which the sign-in is refused.
    pub expires_at: i64,
}

impl Flow {
    /// The SHA-256 of the state, in hex: how the database records a state used.
    pub fn state_hash(&self) -> String {
        hex::encode(Sha256::digest(self.state.as_bytes()))
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at
    }
}

/// Seals and opens the sign-in cookie.
#[derive(Clone)]
pub struct FlowCookies {
    key: Key,
    name: &'static str,
    secure: bool,
}

impl FlowCookies {
    /// `key` is the master key of `server.cookie_key` (at least 32 bytes, which
    /// [`crate::safety`] checks before anything starts).
    pub fn new(master_key: &[u8], name: &'static str, secure: bool) -> Self {
        FlowCookies {
            key: Key::derive_from(master_key),
            name,
            secure,
        }
    }

    /// The cookie carrying `flow`, sealed.
    pub fn seal(&self, flow: &Flow) -> Cookie<'static> {
        let value = serde_json::to_string(flow).expect("plain data serializes");
        let cookie = Cookie::build(self.name, value)
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure)
            .max_age(CookieDuration::seconds(FLOW_TTL.as_secs() as i64))
            .finish();
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(cookie);
        jar.get(self.name).expect("just added").clone()
    }

    /// The flow the request's cookie carries, if it opens under the key (sealed by us, for
    /// this name, unaltered) and parses. Its expiry is the caller's to check.
    pub fn open(&self, req: &HttpRequest) -> Option<Flow> {
        let sealed = req.cookie(self.name)?;
        let mut jar = CookieJar::new();
        jar.add_original(sealed);
        let opened = jar.private(&self.key).get(self.name)?;
        serde_json::from_str(opened.value()).ok()
    }

    /// The cookie that makes the browser forget the flow.
    pub fn removal(&self) -> Cookie<'static> {
        let mut c = Cookie::build(self.name, "")
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure)
            .finish();
        c.make_removal();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn flow() -> Flow {
        Flow {
            state: "the-state".into(),
            verifier: "the-verifier".into(),
            nonce: "the-nonce".into(),
            expires_at: 1_000,
        }
    }

    fn request_with(cookie: Cookie<'static>) -> HttpRequest {
        TestRequest::default().cookie(cookie).to_http_request()
    }

    #[test]
    fn a_sealed_flow_opens_only_under_its_key_and_name_and_shows_nothing_in_the_clear() {
        let cookies = FlowCookies::new(&[7; 32], "oauth_flow", false);
        let sealed = cookies.seal(&flow());
        for secret in ["the-state", "the-verifier", "the-nonce"] {
            assert!(!sealed.value().contains(secret), "{secret} is in the clear");
        }
        assert!(sealed.http_only().unwrap_or(false));
        assert_eq!(sealed.same_site(), Some(SameSite::Lax));
        // `/`, as a `__Host-` cookie must be under https (see `cookies.rs`).
        assert_eq!(sealed.path(), Some("/"));
        assert_eq!(sealed.domain(), None);
        assert_eq!(cookies.open(&request_with(sealed.clone())), Some(flow()));

        let other_key = FlowCookies::new(&[8; 32], "oauth_flow", false);
        assert_eq!(other_key.open(&request_with(sealed.clone())), None);

        // The same bytes under another name (the name is authenticated with them).
        let renamed = Cookie::new("other_flow", sealed.value().to_owned());
        let other_name = FlowCookies::new(&[7; 32], "other_flow", false);
        assert_eq!(other_name.open(&request_with(renamed)), None);

        // One bit changed.
        let mut value = sealed.value().as_bytes().to_vec();
        value[10] ^= 1;
        let altered = Cookie::new("oauth_flow", String::from_utf8(value).unwrap());
        assert_eq!(cookies.open(&request_with(altered)), None);
        let plain = Cookie::new("oauth_flow", serde_json::to_string(&flow()).unwrap());
        assert_eq!(cookies.open(&request_with(plain)), None, "an unsealed flow");
    }

    /// Under https the flow cookie meets the rules browsers hold a `__Host-` cookie to: Secure,
    /// `Path=/`, no `Domain`. One that broke them would be dropped, and every sign-in fail; one
    /// named `__Secure-` could be planted from a sibling subdomain (see `cookies.rs`).
    #[test]
    fn under_https_the_flow_cookie_is_a_host_cookie() {
        let names = crate::auth::cookies::CookieNames::for_public_url("https://wallet.example.com");
        let cookies = FlowCookies::new(&[7; 32], names.flow, names.secure);
        for cookie in [cookies.seal(&flow()), cookies.removal()] {
            assert!(cookie.name().starts_with("__Host-"), "{cookie}");
            assert_eq!(cookie.secure(), Some(true), "{cookie}");
            assert_eq!(cookie.path(), Some("/"), "{cookie}");
            assert_eq!(cookie.domain(), None, "{cookie}");
        }
    }

    #[test]
    fn a_flow_expires_at_its_time_and_its_state_hash_is_hex_sha256() {
        assert!(!flow().is_expired(999));
        assert!(flow().is_expired(1_000));
        assert_eq!(flow().state_hash().len(), 64);
        assert_ne!(flow().state_hash(), "the-state");
    }
}

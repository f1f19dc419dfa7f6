//! The names of the app's cookies, which depend on whether the site is served over https.

pub const SESSION_COOKIE: &str = "session_id";
pub const FLOW_COOKIE: &str = "oauth_flow";

/// The cookies' names. Under https both carry the browser-enforced prefix `__Host-`: only ever
/// set by this host over https, for `/`, so a sibling subdomain or a plain-http page can plant
/// or overwrite neither. For the sign-in flow that matters as much as for the session: a flow
/// cookie planted from `x.example.com` (the attacker's own sign-in, its state and code in the
/// link the victim follows) would sign the victim into the attacker's account, and their next
/// deposit would credit the attacker. `__Secure-` would not stop it, as it allows `Domain`.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    pub session: &'static str,
    pub flow: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_public_url(public_url: &str) -> Self {
        if crate::safety::is_https(public_url) {
            CookieNames {
                session: "__Host-session_id",
                flow: "__Host-oauth_flow",
                secure: true,
            }
        } else {
            CookieNames {
                session: SESSION_COOKIE,
                flow: FLOW_COOKIE,
                secure: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_https_the_cookies_carry_the_browser_enforced_prefixes() {
        let https = CookieNames::for_public_url("https://wallet.example.com");
        assert_eq!(https.session, "__Host-session_id");
        assert_eq!(https.flow, "__Host-oauth_flow");
        assert!(https.secure);
        let capitals = CookieNames::for_public_url("HTTPS://Wallet.Example.com");
        assert!(capitals.secure, "the scheme is read, not matched as text");
        let http = CookieNames::for_public_url("http://localhost:8080");
        assert_eq!(
            (http.session, http.flow, http.secure),
            (SESSION_COOKIE, FLOW_COOKIE, false)
        );
    }
}

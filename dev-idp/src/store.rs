//! In-memory authorization codes and access tokens, pruned as they expire.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;

/// Upper bound on stored codes and on stored tokens; beyond it, new ones are refused.
const MAX_ENTRIES: usize = 100_000;
/// Longest interval between two prunes (a prune happens on access once it is due).
const MAX_PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// 256 random bits, base64url without padding (43 characters).
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A short prefix of a code or token, for logs.
pub(crate) fn redact(secret: &str) -> String {
    format!("{}…", secret.get(..6).unwrap_or_default())
}

/// What an authorization code is bound to.
#[derive(Clone, Debug)]
pub(crate) struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    /// Bound to the code as the contract asks; unused until an ID token is issued.
    #[allow(dead_code)]
    pub(crate) nonce: Option<String>,
    pub(crate) email: String,
    pub(crate) name: String,
}

struct CodeEntry {
    grant: CodeGrant,
    expires_at: Instant,
    /// Set on the first redemption attempt: a code is single use.
    used: bool,
    /// The token issued from this code, revoked if the code is replayed (RFC 6749 §4.1.2).
    issued_token: Option<String>,
}

/// Who an access token stands for.
#[derive(Clone, Debug)]
pub(crate) struct TokenGrant {
    pub(crate) email: String,
    pub(crate) name: String,
}

struct TokenEntry {
    grant: TokenGrant,
    expires_at: Instant,
}

/// Outcome of a redemption attempt.
#[derive(Debug)]
pub(crate) enum Redeem<E> {
    Unknown,
    AlreadyUsed,
    Expired,
    Rejected(E),
    Full,
    Issued(String),
}

pub(crate) struct Store {
    codes: DashMap<String, CodeEntry>,
    tokens: DashMap<String, TokenEntry>,
    last_prune: Mutex<Instant>,
    prune_interval: Duration,
}

impl Store {
    pub(crate) fn new(code_ttl: Duration) -> Self {
        Self {
            codes: DashMap::new(),
            tokens: DashMap::new(),
            last_prune: Mutex::new(Instant::now()),
            prune_interval: code_ttl.clamp(Duration::from_secs(1), MAX_PRUNE_INTERVAL),
        }
    }

    /// Removes expired codes and tokens.
    pub(crate) fn prune(&self) {
        let now = Instant::now();
        self.codes.retain(|_, e| e.expires_at > now);
        self.tokens.retain(|_, e| e.expires_at > now);
    }

    /// Prunes when the last prune is older than the prune interval.
    pub(crate) fn prune_if_due(&self) {
        let due = match self.last_prune.try_lock() {
            Ok(mut last) if last.elapsed() >= self.prune_interval => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            self.prune();
        }
    }

    /// Stores a new single-use code for `grant`; `None` when the store is full.
    pub(crate) fn issue_code(&self, grant: CodeGrant, ttl: Duration) -> Option<String> {
        self.prune_if_due();
        if self.codes.len() >= MAX_ENTRIES {
            self.prune();
            if self.codes.len() >= MAX_ENTRIES {
                return None;
            }
        }
        let code = random_secret();
        self.codes.insert(
            code.clone(),
            CodeEntry {
                grant,
                expires_at: Instant::now() + ttl,
                used: false,
                issued_token: None,
            },
        );
        Some(code)
    }

    /// Redeems `code`: the first attempt consumes it whatever its outcome; `check` decides whether
    /// the request matches the grant; on success an access token valid for `token_ttl` is issued.
    /// Replaying a redeemed code revokes the token issued from it.
    pub(crate) fn redeem<E>(
        &self,
        code: &str,
        token_ttl: Duration,
        check: impl FnOnce(&CodeGrant) -> Result<(), E>,
    ) -> Redeem<E> {
        self.prune_if_due();
        let now = Instant::now();
        let Some(mut entry) = self.codes.get_mut(code) else {
            return Redeem::Unknown;
        };
        if entry.used {
            let revoked = entry.issued_token.take();
            drop(entry);
            if let Some(token) = revoked {
                self.tokens.remove(&token);
                tracing::warn!(token = %redact(&token), "authorization code replayed; token revoked");
            }
            return Redeem::AlreadyUsed;
        }
        entry.used = true;
        if entry.expires_at <= now {
            return Redeem::Expired;
        }
        if let Err(e) = check(&entry.grant) {
            return Redeem::Rejected(e);
        }
        if self.tokens.len() >= MAX_ENTRIES {
            self.tokens.retain(|_, e| e.expires_at > now);
            if self.tokens.len() >= MAX_ENTRIES {
                return Redeem::Full;
            }
        }
        let token = random_secret();
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                grant: TokenGrant {
                    email: entry.grant.email.clone(),
                    name: entry.grant.name.clone(),
                },
                expires_at: now + token_ttl,
            },
        );
        entry.issued_token = Some(token.clone());
        Redeem::Issued(token)
    }

    /// The identity behind an unexpired access token.
    pub(crate) fn token(&self, token: &str) -> Option<TokenGrant> {
        self.prune_if_due();
        let now = Instant::now();
        let found = self
            .tokens
            .get(token)
            .map(|e| (e.expires_at > now, e.grant.clone()));
        match found {
            Some((true, grant)) => Some(grant),
            Some((false, _)) => {
                self.tokens.remove(token);
                None
            }
            None => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.codes.len(), self.tokens.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> CodeGrant {
        CodeGrant {
            client_id: "c".into(),
            redirect_uri: "http://x/cb".into(),
            code_challenge: "ch".into(),
            nonce: None,
            email: "a@b.c".into(),
            name: "A".into(),
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn secrets_are_long_and_url_safe() {
        let s = random_secret();
        assert_eq!(s.len(), 43);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(s, random_secret());
        assert_eq!(redact(&s).chars().count(), 7);
    }

    #[test]
    fn code_is_single_use_even_when_rejected() {
        let store = Store::new(TTL);
        let code = store.issue_code(grant(), TTL).unwrap();
        assert!(matches!(
            store.redeem(&code, TTL, |_| Err("nope")),
            Redeem::Rejected("nope")
        ));
        assert!(matches!(
            store.redeem(&code, TTL, |_| Ok::<(), ()>(())),
            Redeem::AlreadyUsed
        ));
    }

    #[test]
    fn replay_revokes_issued_token() {
        let store = Store::new(TTL);
        let code = store.issue_code(grant(), TTL).unwrap();
        let Redeem::Issued(token) = store.redeem(&code, TTL, |_| Ok::<(), ()>(())) else {
            panic!("expected a token");
        };
        assert_eq!(store.token(&token).unwrap().email, "a@b.c");
        assert!(matches!(
            store.redeem(&code, TTL, |_| Ok::<(), ()>(())),
            Redeem::AlreadyUsed
        ));
        assert!(store.token(&token).is_none());
    }

    #[test]
    fn expired_entries_are_refused_and_pruned() {
        let store = Store::new(TTL);
        let short = Duration::from_millis(20);
        let code = store.issue_code(grant(), short).unwrap();
        let other = store.issue_code(grant(), TTL).unwrap();
        let Redeem::Issued(token) = store.redeem(&other, short, |_| Ok::<(), ()>(())) else {
            panic!("expected a token");
        };
        std::thread::sleep(Duration::from_millis(40));
        assert!(store.token(&token).is_none());
        assert!(matches!(
            store.redeem(&code, TTL, |_| Ok::<(), ()>(())),
            Redeem::Expired
        ));
        store.prune();
        assert_eq!(store.len(), (1, 0)); // only the unexpired (used) code remains
        assert!(matches!(
            store.redeem("unknown", TTL, |_| Ok::<(), ()>(())),
            Redeem::Unknown
        ));
    }
}

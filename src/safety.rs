//! Start-up refusals (`docs/configuration.md`, "Safety"): a configuration that would run a
//! public (`https`) service on development parts or published secrets, or with limits no
//! amount type can hold, is refused before anything binds, naming the key to change.

use crate::configuration::{default_settings, Settings};
use secrecy::{ExposeSecret, SecretString};

/// The largest configurable single amount, in paise (₹100 crore). Far below `i64::MAX`, so that
/// sums of many such amounts cannot overflow the balance type.
pub const MAX_CONFIGURED_AMOUNT: i64 = 1_000_000_000_000;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{key} must be off when server.public_url is https: the development {what} must not serve a public site")]
    DevPartOn {
        key: &'static str,
        what: &'static str,
    },
    #[error("{key} is empty or still the development default of config/default.toml, and server.public_url is https: set a real secret (for example with ONRAMP__{env})")]
    DevSecret {
        key: &'static str,
        env: &'static str,
    },
    #[error("{key} must be from 1 to {MAX_CONFIGURED_AMOUNT} paise, not {value}")]
    AmountOutOfRange { key: &'static str, value: i64 },
    #[error("{key} must be from {min} to {MAX_RECONCILE_SECS} seconds, not {value}")]
    TimeOutOfRange {
        key: &'static str,
        min: u64,
        value: u64,
    },
    #[error("bank.previous_webhook_secret {why}: anyone could sign webhooks with it")]
    WeakPreviousSecret { why: &'static str },
    #[error("{key} must be at least {MIN_KEY_BYTES} random bytes, written in hex or base64")]
    BadKey { key: &'static str },
}

/// The fewest bytes a key of ours (`server.cookie_key`, `cluster.key`) may have.
pub const MIN_KEY_BYTES: usize = 32;

/// The bytes of a key written in hex or base64 (standard or URL-safe, padded or not), if it has
/// at least [`MIN_KEY_BYTES`] of them.
pub fn key_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let text = text.trim();
    let bytes = hex::decode(text).ok().or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
    })?;
    (bytes.len() >= MIN_KEY_BYTES).then_some(bytes)
}

fn key_refusals(settings: &Settings) -> Vec<Refusal> {
    [
        ("server.cookie_key", &settings.server.cookie_key),
        // Whoever holds it can call any wallet as its owner process does.
        ("cluster.key", &settings.cluster.key),
    ]
    .into_iter()
    .filter(|(_, value)| key_bytes(value.expose_secret()).is_none())
    .map(|(key, _)| Refusal::BadKey { key })
    .collect()
}

fn reconcile_refusals(settings: &Settings) -> Vec<Refusal> {
    let r = &settings.reconcile;
    [
        ("reconcile.first_after_secs", 0, r.first_after_secs),
        ("reconcile.every_secs", 1, r.every_secs),
        ("reconcile.max_age_secs", 1, r.max_age_secs),
    ]
    .into_iter()
    .filter(|(_, min, value)| !(*min..=MAX_RECONCILE_SECS).contains(value))
    .map(|(key, min, value)| Refusal::TimeOutOfRange { key, min, value })
    .collect()
}

/// The secret still accepted during a rotation is as strong a key as the current one: never
/// empty, and under https never a published development default.
fn previous_secret_refusals(settings: &Settings) -> Vec<Refusal> {
    let Some(previous) = &settings.bank.previous_webhook_secret else {
        return Vec::new();
    };
    let previous = previous.expose_secret();
    let defaults = default_settings();
    let published = [
        defaults.bank.webhook_secret.expose_secret(),
        defaults.bank.api_key.expose_secret(),
        defaults.google.client_secret.expose_secret(),
    ];
    let https = settings.server.public_url.as_deref().is_some_and(is_https);
    if previous.trim().is_empty() {
        vec![Refusal::WeakPreviousSecret { why: "is empty" }]
    } else if https && published.contains(&previous) {
        vec![Refusal::WeakPreviousSecret {
            why: "is a development default of config/default.toml",
        }]
    } else {
        Vec::new()
    }
}

/// Whether `url` is served over https, by its parsed scheme (so `HTTPS://…` counts too). The
/// one test the refusals, the cookies and HSTS all use.
pub fn is_https(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "https")
}

/// The longest configurable reconciliation time: 30 days, so that times in milliseconds added
/// to a clock reading cannot overflow.
pub const MAX_RECONCILE_SECS: u64 = 30 * 24 * 3600;

/// Every refusal that applies, so that an operator fixes them all at once.
pub fn check(settings: &Settings) -> Vec<Refusal> {
    let mut refusals = amount_refusals(settings);
    refusals.extend(key_refusals(settings));
    refusals.extend(reconcile_refusals(settings));
    refusals.extend(previous_secret_refusals(settings));
    let https = settings.server.public_url.as_deref().is_some_and(is_https);
    if https {
        refusals.extend(dev_part_refusals(settings));
        refusals.extend(secret_refusals(settings));
    }
    refusals
}

fn amount_refusals(settings: &Settings) -> Vec<Refusal> {
    [
        ("deposit.max_amount", settings.deposit.max_amount),
        ("withdrawal.max_amount", settings.withdrawal.max_amount),
    ]
    .into_iter()
    .filter(|(_, value)| !(1..=MAX_CONFIGURED_AMOUNT).contains(value))
    .map(|(key, value)| Refusal::AmountOutOfRange { key, value })
    .collect()
}

fn dev_part_refusals(settings: &Settings) -> Vec<Refusal> {
    let d = &settings.dev;
    let mut refusals = Vec::new();
    if d.enabled && d.bank_enabled.is_none() && d.idp_enabled.is_none() {
        refusals.push(Refusal::DevPartOn {
            key: "dev.enabled",
            what: "bank simulator and identity provider",
        });
        return refusals;
    }
    if d.bank_enabled() {
        refusals.push(Refusal::DevPartOn {
            key: if d.bank_enabled.is_some() {
                "dev.bank_enabled"
            } else {
                "dev.enabled"
            },
            what: "bank simulator",
        });
    }
    if d.idp_enabled() {
        refusals.push(Refusal::DevPartOn {
            key: if d.idp_enabled.is_some() {
                "dev.idp_enabled"
            } else {
                "dev.enabled"
            },
            what: "identity provider",
        });
    }
    refusals
}

fn secret_refusals(settings: &Settings) -> Vec<Refusal> {
    let defaults = default_settings();
    let secrets: [(&'static str, &'static str, &SecretString, &SecretString); 5] = [
        (
            "google.client_secret",
            "GOOGLE__CLIENT_SECRET",
            &settings.google.client_secret,
            &defaults.google.client_secret,
        ),
        (
            "bank.api_key",
            "BANK__API_KEY",
            &settings.bank.api_key,
            &defaults.bank.api_key,
        ),
        (
            "bank.webhook_secret",
            "BANK__WEBHOOK_SECRET",
            &settings.bank.webhook_secret,
            &defaults.bank.webhook_secret,
        ),
        (
            "server.cookie_key",
            "SERVER__COOKIE_KEY",
            &settings.server.cookie_key,
            &defaults.server.cookie_key,
        ),
        (
            "cluster.key",
            "CLUSTER__KEY",
            &settings.cluster.key,
            &defaults.cluster.key,
        ),
    ];
    secrets
        .into_iter()
        .filter(|(_, _, value, default)| {
            let (value, default) = (value.expose_secret(), default.expose_secret());
            // A key is used as the bytes it decodes to: the default written another way (in
            // capitals, in base64, with spaces around it) is the published key all the same.
            let same_key = key_bytes(value).is_some_and(|key| Some(key) == key_bytes(default));
            value.trim().is_empty() || value == default || same_key
        })
        .map(|(key, env, _, _)| Refusal::DevSecret { key, env })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Settings {
        let mut s = default_settings();
        s.server.public_url = Some("https://wallet.example.com".into());
        s.dev.enabled = false;
        s.google.client_secret = SecretString::from("a-real-client-secret");
        s.bank.api_key = SecretString::from("a-real-api-key");
        s.bank.webhook_secret = SecretString::from("a-real-webhook-secret");
        s.server.cookie_key = SecretString::from(hex::encode([42u8; 32]));
        s.cluster.key = SecretString::from(hex::encode([7u8; 32]));
        s
    }

    fn keys(refusals: &[Refusal]) -> Vec<String> {
        refusals
            .iter()
            .map(|r| r.to_string().split_whitespace().next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_production_configuration_starts() {
        assert_eq!(check(&production()), vec![]);
    }

    #[test]
    fn the_development_defaults_start_on_http() {
        assert_eq!(check(&default_settings()), vec![]);
    }

    #[test]
    fn https_with_a_development_part_on_is_refused_naming_the_key() {
        let mut s = production();
        s.dev.enabled = true;
        assert_eq!(keys(&check(&s)), ["dev.enabled"]);
        let mut s = production();
        s.dev.bank_enabled = Some(true);
        assert_eq!(keys(&check(&s)), ["dev.bank_enabled"]);
        let mut s = production();
        s.dev.idp_enabled = Some(true);
        assert_eq!(keys(&check(&s)), ["dev.idp_enabled"]);
        let mut s = production();
        s.dev.enabled = true;
        s.dev.bank_enabled = Some(false);
        assert_eq!(
            keys(&check(&s)),
            ["dev.enabled"],
            "the provider still follows dev.enabled"
        );
    }

    #[test]
    fn https_with_a_default_or_empty_secret_is_refused_naming_each_key() {
        let mut s = production();
        s.bank.webhook_secret = default_settings().bank.webhook_secret;
        assert_eq!(keys(&check(&s)), ["bank.webhook_secret"]);
        let mut s = production();
        s.cluster.key = default_settings().cluster.key;
        assert_eq!(keys(&check(&s)), ["cluster.key"]);
        let mut s = production();
        s.google.client_secret = SecretString::from("");
        s.bank.api_key = SecretString::from("  ");
        assert_eq!(keys(&check(&s)), ["google.client_secret", "bank.api_key"]);
        let message = check(&s)[0].to_string();
        assert!(
            message.contains("ONRAMP__GOOGLE__CLIENT_SECRET"),
            "{message}"
        );
        assert!(
            !message.contains("onramp-dev"),
            "no secret is printed: {message}"
        );
    }

    #[test]
    fn a_cookie_key_must_be_32_bytes_of_hex_or_base64_and_not_the_default_under_https() {
        use base64::Engine;
        let key = [9u8; 32];
        let engine = base64::engine::general_purpose::STANDARD;
        for written in [
            hex::encode(key),
            engine.encode(key),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        ] {
            assert_eq!(key_bytes(&written), Some(key.to_vec()), "{written}");
            let mut s = production();
            s.server.cookie_key = SecretString::from(written);
            assert_eq!(check(&s), vec![]);
        }
        for bad in ["", "short", &hex::encode([9u8; 31]), "not base64 at all!!"] {
            let mut s = default_settings();
            s.server.cookie_key = SecretString::from(bad);
            assert_eq!(keys(&check(&s)), ["server.cookie_key"], "{bad:?}");
        }
        let mut s = production();
        s.server.cookie_key = default_settings().server.cookie_key;
        assert_eq!(keys(&check(&s)), ["server.cookie_key"]);
        assert!(check(&s)[0]
            .to_string()
            .contains("ONRAMP__SERVER__COOKIE_KEY"));
        // The published key written another way is the published key.
        let published = key_bytes(default_settings().server.cookie_key.expose_secret()).unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        for disguised in [
            hex::encode_upper(&published),
            format!("  {}\n", hex::encode(&published)),
            base64::Engine::encode(&engine, &published),
        ] {
            let mut s = production();
            s.server.cookie_key = SecretString::from(disguised.clone());
            assert_eq!(keys(&check(&s)), ["server.cookie_key"], "{disguised:?}");
        }
    }

    #[test]
    fn a_cluster_key_must_be_32_bytes_of_hex_or_base64_whatever_the_url() {
        for bad in [
            "",
            "short",
            "onramp-development-cluster-key",
            &hex::encode([9u8; 31]),
        ] {
            let mut s = default_settings();
            s.cluster.key = SecretString::from(bad);
            assert_eq!(keys(&check(&s)), ["cluster.key"], "{bad:?}");
        }
        let mut s = default_settings();
        s.cluster.key = SecretString::from(hex::encode([9u8; 32]));
        assert_eq!(check(&s), vec![]);
    }

    #[test]
    fn an_https_url_in_capitals_is_https_too() {
        let mut s = production();
        s.server.public_url = Some("HTTPS://Wallet.Example.com".into());
        s.dev.enabled = true;
        assert_eq!(keys(&check(&s)), ["dev.enabled"]);
        assert!(is_https("HTTPS://a.example"));
        assert!(!is_https("http://a.example"));
    }

    #[test]
    fn a_weak_previous_webhook_secret_is_refused() {
        let mut s = production();
        s.bank.previous_webhook_secret = Some(SecretString::from(""));
        assert_eq!(keys(&check(&s)), ["bank.previous_webhook_secret"]);
        s.bank.previous_webhook_secret = Some(default_settings().bank.webhook_secret);
        assert_eq!(keys(&check(&s)), ["bank.previous_webhook_secret"]);
        s.bank.previous_webhook_secret = Some(SecretString::from("the-old-real-secret"));
        assert_eq!(check(&s), vec![]);
        let mut dev = default_settings();
        dev.bank.previous_webhook_secret = Some(SecretString::from(" "));
        assert_eq!(
            keys(&check(&dev)),
            ["bank.previous_webhook_secret"],
            "even on http"
        );
    }

    #[test]
    fn reconciliation_times_past_thirty_days_are_refused() {
        let mut s = default_settings();
        s.reconcile.every_secs = u64::MAX;
        s.reconcile.max_age_secs = 0;
        assert_eq!(
            keys(&check(&s)),
            ["reconcile.every_secs", "reconcile.max_age_secs"]
        );
    }

    #[test]
    fn amounts_past_the_bound_or_below_one_are_refused() {
        for bad in [0, -5, MAX_CONFIGURED_AMOUNT + 1, i64::MAX] {
            let mut s = default_settings();
            s.deposit.max_amount = bad;
            assert_eq!(keys(&check(&s)), ["deposit.max_amount"], "{bad}");
        }
        let mut s = default_settings();
        s.deposit.max_amount = MAX_CONFIGURED_AMOUNT;
        assert_eq!(check(&s), vec![]);
        s.withdrawal.max_amount = 0;
        assert_eq!(keys(&check(&s)), ["withdrawal.max_amount"]);
    }
}

//! Layered configuration: `config/default.toml`, then the file named by `ONRAMP_CONFIG`,
//! then `ONRAMP__<SECTION>__<KEY>` environment variables (see `docs/configuration.md`).
//!
//! Secrets are `SecretString`s: their `Debug` prints `[REDACTED]`, so logging a `Settings`
//! never leaks them.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub google: GoogleSettings,
    pub bank: BankSettings,
    pub session: SessionSettings,
    #[serde(default)]
    pub cache: CacheSettings,
    pub deposit: DepositSettings,
    pub withdrawal: WithdrawalSettings,
    pub wallet: WalletSettings,
    pub writer: WriterSettings,
    pub log: LogSettings,
    pub reconcile: ReconcileSettings,
    pub limits: LimitSettings,
    pub cluster: ClusterSettings,
    pub dev: DevSettings,
}

/// Several processes on one PostgreSQL serving as one (docs/cluster.md).
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    /// How long a process that stops answering keeps its wallets before others take them.
    pub lease_secs: u64,
    /// Authenticates the calls one process forwards to another.
    pub key: SecretString,
}

/// Rate limits (token buckets): each key may spend `*_burst` at once, refilled at `*_per_second`.
/// The defaults let the load tool's scenarios run unthrottled (10,000 sign-ins from one address,
/// 20,000 deposits of one user); tests set them low.
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// `GET /api/auth/google` per client address.
    pub sign_in_per_second: u32,
    pub sign_in_burst: u32,
    /// `POST /api/deposit` per user.
    pub deposit_per_second: u32,
    pub deposit_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Address the app binds, e.g. `127.0.0.1:8080` (port 0 picks a free one).
    pub listen: String,
    /// The app's URL as browsers see it. Default: `http://localhost:<bound port>`.
    pub public_url: Option<String>,
    /// HTTP worker threads. Default: one per core.
    pub workers: Option<usize>,
    /// An operator-only address for `/metrics`. Unset: `/metrics` is on `listen`, except
    /// under an https public URL, where it is not served at all.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The key that seals short-lived cookies (a sign-in's state, PKCE verifier and nonce): at
    /// least 32 random bytes, in hex or base64.
    pub cookie_key: SecretString,
    /// Addresses whose `X-Forwarded-For` names the real client (the load balancer's). Default:
    /// none, and the header is ignored.
    #[serde(default)]
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// Where the other processes of the service reach this one. Default: `http://<listen>`
    /// (with the port actually bound).
    #[serde(default)]
    pub advertise_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoogleSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Default: the development provider's `/authorize`.
    pub auth_url: Option<String>,
    /// Default: the development provider's `/token`.
    pub token_url: Option<String>,
    /// Default: the development provider's `/userinfo`.
    pub userinfo_url: Option<String>,
    /// Default: `<public_url>/api/auth/google/callback`.
    pub redirect_url: Option<String>,
    /// Timeout of the token and userinfo calls.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BankSettings {
    /// Default: the in-process bank simulator.
    pub api_url: Option<String>,
    pub api_key: SecretString,
    pub webhook_secret: SecretString,
    /// Accepted too while a webhook secret is being rotated.
    pub previous_webhook_secret: Option<SecretString>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub ttl_secs: u64,
    pub idle_secs: u64,
}

/// The bounds of what each process keeps in memory (`cache.*`, docs/configuration.md). Past a
/// bound, what is not kept is read from the database: slower, never wrong.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    /// Live sessions.
    pub sessions: usize,
    /// Deposits awaiting the bank, remembered for their webhook.
    pub pending_deposits: usize,
    /// People found by id or email (transfer recipients), each kept a minute.
    pub people: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            sessions: onramp_actors::sessions::DEFAULT_CAPACITY,
            pending_deposits: crate::pending::CAPACITY,
            people: crate::people::CAPACITY,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DepositSettings {
    /// Largest single deposit in paise.
    pub max_amount: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WithdrawalSettings {
    /// Largest single withdrawal in paise.
    pub max_amount: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WalletSettings {
    /// A wallet actor with no traffic for this long is stopped (and reloaded on demand).
    pub idle_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WriterSettings {
    /// Most changes committed in one transaction.
    pub max_batch: usize,
}

/// The background job that asks the bank about deposits whose webhook never came.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileSettings {
    pub enabled: bool,
    /// A deposit still processing this long after creation is checked a first time…
    pub first_after_secs: u64,
    /// …then again this often (errors are retried sooner, with backoff)…
    pub every_secs: u64,
    /// …until it is this old: then its order is cancelled at the bank (and is created to expire
    /// then), and the deposit fails once the bank says it can no longer be paid.
    pub max_age_secs: u64,
    /// How often the job looks for deposits that are due.
    pub scan_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    /// `pretty` or `json`.
    pub format: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DevSettings {
    pub enabled: bool,
    pub bank_enabled: Option<bool>,
    pub idp_enabled: Option<bool>,
    pub bank_listen: String,
    pub idp_listen: String,
    /// Default: `<public_url>/api/webhooks/bank`.
    pub webhook_url: Option<String>,
    /// The bank simulator's own database (orders and pending webhook deliveries).
    pub bank_database_url: String,
    pub webhook_max_attempts: u32,
    pub webhook_base_delay_ms: u64,
    pub webhook_max_delay_ms: u64,
    /// How long the simulator takes to settle a payout.
    pub payout_delay_ms: u64,
    /// A delivery not answered `2xx` within this is retried.
    pub webhook_timeout_ms: u64,
    pub idp_code_ttl_secs: u64,
    /// The simulator holds each webhook this long before its first attempt (a slow bank).
    #[serde(default)]
    pub webhook_delay_ms: u64,
    /// Fault mode: each webhook is also sent this many extra times, concurrently.
    #[serde(default)]
    pub webhook_duplicates: u32,
    /// Fault mode: orders settle but their webhooks are never delivered.
    #[serde(default)]
    pub webhook_drop: bool,
    /// Fault mode: webhooks are held briefly and delivered in random order.
    #[serde(default)]
    pub webhook_reorder: bool,
    /// Fault mode: create-order answers after this delay (the order exists at once).
    #[serde(default)]
    pub create_order_delay_ms: u64,
    /// Fault mode: order status and cancel calls are answered by a misrouting gateway's HTML
    /// `404` page instead of the bank.
    #[serde(default)]
    pub bank_misroute_orders: bool,
    /// Fault mode: create-payout answers after this delay (the payout exists at once).
    #[serde(default)]
    pub create_payout_delay_ms: u64,
    /// Fault mode: the bank refuses every create-payout (`422 payout_refused`: it makes none).
    #[serde(default)]
    pub bank_refuse_payouts: bool,
    /// Fault mode: the bank refuses the first create-payout call of each ref (`429`, none made)
    /// and takes the later ones.
    #[serde(default)]
    pub bank_refuse_first_payout_call: bool,
}

impl Settings {
    /// The largest single transfer: the rules of deposits (app-api.md), so their maximum.
    pub fn transfer_max_amount(&self) -> i64 {
        self.deposit.max_amount
    }
}

impl BankSettings {
    /// The current webhook secret and, during a rotation, the previous one.
    pub fn webhook_secrets(&self) -> Vec<Vec<u8>> {
        use secrecy::ExposeSecret;
        std::iter::once(&self.webhook_secret)
            .chain(self.previous_webhook_secret.as_ref())
            .map(|s| s.expose_secret().as_bytes().to_vec())
            .collect()
    }
}

impl DevSettings {
    pub fn bank_enabled(&self) -> bool {
        self.bank_enabled.unwrap_or(self.enabled)
    }
    pub fn idp_enabled(&self) -> bool {
        self.idp_enabled.unwrap_or(self.enabled)
    }
}

/// Reads the configuration from `config/default.toml` (relative to `base_dir`),
/// the file named by `ONRAMP_CONFIG`, and the environment.
pub fn get_configuration_from(base_dir: &Path) -> Result<Settings, config::ConfigError> {
    let mut builder = config::Config::builder().add_source(config::File::from(
        base_dir.join("config").join("default.toml"),
    ));
    if let Ok(extra) = std::env::var("ONRAMP_CONFIG") {
        builder = builder.add_source(config::File::from(Path::new(&extra)));
    }
    builder.add_source(environment()).build()?.try_deserialize()
}

/// `ONRAMP__<SECTION>__<KEY>` variables. Values stay strings (no `try_parsing`, which would
/// turn a secret of digits into a number); a list such as `server.trusted_proxies` splits its
/// own string at commas.
fn environment() -> config::Environment {
    config::Environment::with_prefix("ONRAMP")
        .prefix_separator("__")
        .separator("__")
}

/// The configuration as the binary sees it: `config/` next to the working directory,
/// or next to the crate when run through cargo from elsewhere.
pub fn get_configuration() -> Result<Settings, config::ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    if cwd.join("config").join("default.toml").exists() {
        get_configuration_from(&cwd)
    } else {
        get_configuration_from(Path::new(env!("CARGO_MANIFEST_DIR")))
    }
}

/// Test and embedding helper: the defaults file only, no `ONRAMP_CONFIG`, no environment.
pub fn default_settings() -> Settings {
    config::Config::builder()
        .add_source(config::File::from_str(
            include_str!("../config/default.toml"),
            config::FileFormat::Toml,
        ))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("config/default.toml is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_defaults_match_the_contract() {
        let s = default_settings();
        assert_eq!(s.server.listen, "127.0.0.1:8080");
        assert!(s.database.url.starts_with("sqlite://data/"));
        assert_eq!(s.session.ttl_secs, 30 * 24 * 3600);
        assert_eq!(s.session.idle_secs, 7 * 24 * 3600);
        assert_eq!(
            (s.cache.sessions, s.cache.pending_deposits, s.cache.people),
            (100_000, 200_000, 100_000),
            "the memory bounds docs/configuration.md gives"
        );
        assert_eq!(s.deposit.max_amount, 10_000_000);
        assert_eq!(s.withdrawal.max_amount, 10_000_000);
        assert_eq!(s.dev.payout_delay_ms, 500);
        assert!(s.dev.enabled && s.dev.bank_enabled() && s.dev.idp_enabled());
        assert_eq!(s.dev.bank_listen, "127.0.0.1:8081");
        assert_eq!(s.dev.idp_listen, "127.0.0.1:8082");
    }

    /// The defaults with `vars` as the environment.
    fn with_environment(vars: &[(&str, &str)]) -> Result<Settings, config::ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        config::Config::builder()
            .add_source(config::File::from_str(
                include_str!("../config/default.toml"),
                config::FileFormat::Toml,
            ))
            .add_source(environment().source(Some(vars.collect())))
            .build()?
            .try_deserialize()
    }

    #[test]
    fn trusted_proxies_come_from_the_environment_with_commas() {
        use crate::client_addr::TrustedProxies;
        assert_eq!(
            default_settings().server.trusted_proxies,
            TrustedProxies::default()
        );
        let s =
            with_environment(&[("ONRAMP__SERVER__TRUSTED_PROXIES", "10.0.0.1,10.0.0.2")]).unwrap();
        let listed = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(s.server.trusted_proxies, TrustedProxies::new(listed));
        let typo = with_environment(&[("ONRAMP__SERVER__TRUSTED_PROXIES", "10.0.0.1,10.0.0")])
            .expect_err("a bad address refuses the configuration");
        assert!(
            typo.to_string().contains("\"10.0.0\" is not an IP address"),
            "{typo}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = default_settings();
        let printed = format!("{s:?}");
        for secret in [
            s.google.client_secret.expose_secret(),
            s.bank.api_key.expose_secret(),
            s.bank.webhook_secret.expose_secret(),
            s.server.cookie_key.expose_secret(),
        ] {
            assert!(!printed.contains(secret), "a secret is printed");
        }
    }

    #[test]
    fn a_file_then_the_environment_override_the_defaults() {
        let dir = std::env::temp_dir().join(format!("onramp-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(
            dir.join("config/default.toml"),
            include_str!("../config/default.toml"),
        )
        .unwrap();
        let extra = dir.join("extra.toml");
        std::fs::write(
            &extra,
            "[deposit]\nmax_amount = 500\n[database]\nurl = \"sqlite://from-file.db\"\n",
        )
        .unwrap();
        // SAFETY: this is the only test in the process that touches these variables.
        unsafe {
            std::env::set_var("ONRAMP_CONFIG", &extra);
            std::env::set_var("ONRAMP__DATABASE__URL", "postgres://from-env/db");
            std::env::set_var("ONRAMP__BANK__WEBHOOK_SECRET", "from-env-secret");
            std::env::set_var("ONRAMP__CACHE__SESSIONS", "7");
        }
        let s = get_configuration_from(&dir).unwrap();
        unsafe {
            std::env::remove_var("ONRAMP_CONFIG");
            std::env::remove_var("ONRAMP__DATABASE__URL");
            std::env::remove_var("ONRAMP__BANK__WEBHOOK_SECRET");
            std::env::remove_var("ONRAMP__CACHE__SESSIONS");
        }
        assert_eq!(s.cache.sessions, 7, "a memory bound from the environment");
        assert_eq!(
            s.deposit.max_amount, 500,
            "the ONRAMP_CONFIG file overrides the defaults"
        );
        assert_eq!(
            s.database.url, "postgres://from-env/db",
            "the environment overrides the file"
        );
        assert_eq!(s.bank.webhook_secret.expose_secret(), "from-env-secret");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

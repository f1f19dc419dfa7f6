//! The development parties: the bank simulator and the development identity provider, run
//! in-process by `cargo run` or alone by `onramp bank-sim`. Compiled only with the `dev` cargo
//! feature (on by default); a production build (`--no-default-features`) links neither and
//! refuses a configuration that asks for them.

use crate::configuration::Settings;

/// The development parties this process runs, stopped with it.
#[derive(Default)]
pub struct DevParties {
    #[cfg(feature = "dev")]
    bank: Option<onramp_bank_sim::BankSim>,
    #[cfg(feature = "dev")]
    idp: Option<actix_web::dev::ServerHandle>,
}

/// The listeners of the development parties the configuration turns on, bound before anything
/// else so that their real ports (port 0 in tests) are known when URLs are resolved.
#[derive(Default)]
pub struct DevListeners {
    pub bank: Option<std::net::TcpListener>,
    pub idp: Option<std::net::TcpListener>,
}

impl DevListeners {
    pub fn base_url(listener: &Option<std::net::TcpListener>) -> anyhow::Result<Option<String>> {
        listener
            .as_ref()
            .map(|l| Ok(format!("http://{}", l.local_addr()?)))
            .transpose()
    }
}

#[cfg(not(feature = "dev"))]
mod parties {
    use super::*;

    /// A production build has no development parties: asking for one is a configuration error.
    pub fn bind(settings: &Settings) -> anyhow::Result<DevListeners> {
        let d = &settings.dev;
        if d.bank_enabled() || d.idp_enabled() {
            anyhow::bail!(
                "dev.enabled, dev.bank_enabled and dev.idp_enabled need the `dev` cargo feature, \
                 and this server was built without it (--no-default-features): set dev.enabled = \
                 false and configure the real bank.* and google.* endpoints"
            );
        }
        Ok(DevListeners::default())
    }

    pub async fn start(
        _settings: &Settings,
        _urls: &crate::state::Urls,
        _listeners: DevListeners,
    ) -> anyhow::Result<DevParties> {
        Ok(DevParties::default())
    }

    impl DevParties {
        pub fn bank_url(&self) -> Option<String> {
            None
        }
        pub async fn stop(self) {}
    }

    /// `onramp bank-sim` in a production build.
    pub async fn run_bank_sim(_settings: Settings) -> anyhow::Result<()> {
        anyhow::bail!(
            "`onramp bank-sim` needs the `dev` cargo feature; this server was built without it"
        )
    }
}

#[cfg(feature = "dev")]
mod parties {
    use super::*;
    use crate::state::Urls;
    use actix_web::{App, HttpServer};
    use anyhow::Context;
    use onramp_bank_sim::{BankSim, BankSimConfig};
    use secrecy::ExposeSecret;
    use std::net::TcpListener;
    use std::time::Duration;

    fn bind_one(addr: &str) -> anyhow::Result<TcpListener> {
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
    }

    pub fn bind(settings: &Settings) -> anyhow::Result<DevListeners> {
        let d = &settings.dev;
        Ok(DevListeners {
            bank: d
                .bank_enabled()
                .then(|| bind_one(&d.bank_listen))
                .transpose()?,
            idp: d
                .idp_enabled()
                .then(|| bind_one(&d.idp_listen))
                .transpose()?,
        })
    }

    pub async fn start(
        settings: &Settings,
        urls: &Urls,
        listeners: DevListeners,
    ) -> anyhow::Result<DevParties> {
        let idp = listeners
            .idp
            .map(|l| start_idp(settings, urls, l))
            .transpose()?;
        let bank = match listeners.bank {
            Some(l) => Some(BankSim::start(l, bank_sim_config(settings, &urls.webhook_url)).await?),
            None => None,
        };
        Ok(DevParties { bank, idp })
    }

    fn start_idp(
        settings: &Settings,
        urls: &Urls,
        listener: TcpListener,
    ) -> anyhow::Result<actix_web::dev::ServerHandle> {
        let g = &settings.google;
        let config = onramp_dev_idp::IdpConfig {
            client_id: g.client_id.clone(),
            client_secret: g.client_secret.expose_secret().to_owned(),
            redirect_uris: vec![urls.redirect_url.clone()],
            code_ttl: Duration::from_secs(settings.dev.idp_code_ttl_secs),
            token_ttl: Duration::from_secs(3600),
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("development identity provider: {e}"))?;
        let routes = onramp_dev_idp::configure(config);
        // Not `onramp_dev_idp::spawn`: a server that handles signals itself stops the actix
        // System (and with it the wallet actors) while the app is still draining.
        let server = HttpServer::new(move || App::new().configure(routes.clone()))
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
        tracing::info!(url = %urls.auth_url, "development identity provider listening");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(handle)
    }

    impl DevParties {
        pub fn bank_url(&self) -> Option<String> {
            self.bank.as_ref().map(|b| b.url())
        }

        pub async fn stop(self) {
            if let Some(bank) = self.bank {
                bank.stop().await;
            }
            if let Some(idp) = self.idp {
                idp.stop(true).await;
            }
        }
    }

    /// `onramp bank-sim`: the simulator alone on `dev.bank_listen`, posting to `dev.webhook_url`,
    /// so that it outlives an app that is stopped or killed.
    pub async fn run_bank_sim(settings: Settings) -> anyhow::Result<()> {
        let listener = bind_one(&settings.dev.bank_listen)?;
        let public = settings
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| "http://localhost:8080".into());
        let webhook_url = settings
            .dev
            .webhook_url
            .clone()
            .unwrap_or_else(|| format!("{}/api/webhooks/bank", public.trim_end_matches('/')));
        let bank = BankSim::start(listener, bank_sim_config(&settings, &webhook_url)).await?;
        tracing::info!(url = %bank.url(), %webhook_url, "bank simulator is listening");
        let signal = crate::signals::shutdown_signals().await;
        tracing::info!(
            signal,
            "bank simulator stopping; pending deliveries stay stored"
        );
        bank.stop().await;
        Ok(())
    }

    /// The simulator's configuration from the app's settings.
    pub fn bank_sim_config(settings: &Settings, webhook_url: &str) -> BankSimConfig {
        let d = &settings.dev;
        BankSimConfig {
            api_key: settings.bank.api_key.expose_secret().to_owned(),
            webhook_secrets: vec![settings.bank.webhook_secret.expose_secret().to_owned()],
            webhook_url: webhook_url.to_owned(),
            database_url: d.bank_database_url.clone(),
            public_url: None,
            max_attempts: d.webhook_max_attempts,
            base_delay: Duration::from_millis(d.webhook_base_delay_ms),
            max_delay: Duration::from_millis(d.webhook_max_delay_ms),
            payout_delay: Duration::from_millis(d.payout_delay_ms),
            attempt_timeout: Duration::from_millis(d.webhook_timeout_ms),
            faults: onramp_bank_sim::Faults {
                delivery_delay: Duration::from_millis(d.webhook_delay_ms),
                duplicate_deliveries: d.webhook_duplicates,
                drop_deliveries: d.webhook_drop,
                reorder: d.webhook_reorder,
                create_order_delay: Duration::from_millis(d.create_order_delay_ms),
                misroute_orders: d.bank_misroute_orders,
                create_payout_delay: Duration::from_millis(d.create_payout_delay_ms),
                refuse_payouts: d.bank_refuse_payouts,
                refuse_first_payout_call: d.bank_refuse_first_payout_call,
            },
        }
    }
}

pub use parties::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::default_settings;

    /// Ports 0: the test binds nothing it keeps.
    fn settings(enabled: bool) -> Settings {
        let mut s = default_settings();
        s.dev.enabled = enabled;
        s.dev.bank_listen = "127.0.0.1:0".into();
        s.dev.idp_listen = "127.0.0.1:0".into();
        s
    }

    #[cfg(not(feature = "dev"))]
    #[test]
    fn a_production_build_refuses_a_configuration_that_asks_for_the_dev_parties() {
        for change in [
            |s: &mut Settings| s.dev.enabled = true,
            |s: &mut Settings| s.dev.bank_enabled = Some(true),
            |s: &mut Settings| s.dev.idp_enabled = Some(true),
        ] {
            let mut s = settings(false);
            change(&mut s);
            let message = bind(&s).err().expect("refused").to_string();
            assert!(message.contains("dev.enabled"), "{message}");
            assert!(message.contains("`dev` cargo feature"), "{message}");
        }
        let listeners = bind(&settings(false)).expect("no dev parties asked for");
        assert!(listeners.bank.is_none() && listeners.idp.is_none());
    }

    #[cfg(feature = "dev")]
    #[test]
    fn a_development_build_binds_what_the_configuration_turns_on() {
        let on = bind(&settings(true)).expect("binds");
        assert!(on.bank.is_some() && on.idp.is_some());
        let mut only_bank = settings(true);
        only_bank.dev.idp_enabled = Some(false);
        let listeners = bind(&only_bank).expect("binds");
        assert!(listeners.bank.is_some() && listeners.idp.is_none());
        let off = bind(&settings(false)).expect("binds");
        assert!(off.bank.is_none() && off.idp.is_none());
    }
}

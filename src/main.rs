use anyhow::Context;
use clap::{Parser, Subcommand};
use onramp::configuration::get_configuration;
use onramp::startup::{bank_sim_config, Application};
use onramp::telemetry;

/// onramp: a wallet server with Google sign-in and bank deposits.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the app (the default), with the development bank and identity provider when
    /// `dev.enabled` is true.
    Serve,
    /// Run the bank simulator alone on `dev.bank_listen`, posting webhooks to `dev.webhook_url`.
    BankSim,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = get_configuration().context("cannot read the configuration")?;
    telemetry::init(&settings.log.level, &settings.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "onramp is listening");
            app.run_until_stopped().await
        }
        Command::BankSim => {
            let listener = std::net::TcpListener::bind(&settings.dev.bank_listen)
                .with_context(|| format!("cannot listen on {}", settings.dev.bank_listen))?;
            let public = settings
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| "http://localhost:8080".into());
            let webhook_url =
                settings.dev.webhook_url.clone().unwrap_or_else(|| {
                    format!("{}/api/webhooks/bank", public.trim_end_matches('/'))
                });
            let bank =
                onramp_bank_sim::BankSim::start(listener, bank_sim_config(&settings, &webhook_url))
                    .await?;
            tracing::info!(url = %bank.url(), %webhook_url, "bank simulator is listening");
            let signal = onramp::startup::shutdown_signals().await;
            tracing::info!(
                signal,
                "bank simulator stopping; pending deliveries stay stored"
            );
            bank.stop().await;
            Ok(())
        }
    }
}

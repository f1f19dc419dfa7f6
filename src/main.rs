use anyhow::Context;
use clap::{Parser, Subcommand};
use onramp::configuration::get_configuration;
use onramp::startup::Application;
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
    /// Check the books of `database.url`: every entry balances, every account equals its
    /// entries, no user below zero, every successful deposit credited once, totals add up.
    /// Exits 1, naming what is wrong, otherwise. Safe to run beside the app.
    Audit,
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
        Command::BankSim => onramp::dev::run_bank_sim(settings).await,
        Command::Audit => {
            if onramp::audit::run(&settings).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

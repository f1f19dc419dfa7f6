//! The transfers-* scenarios. The users are funded as the deposit scenarios fund them (deposits
//! created with `POST /api/deposit`, settled by signed webhooks), then send each other transfers
//! with `POST /api/transfers` while a few connections read their balances (and, with
//! `--with-deposits`, while more deposits are settled on the same wallets). The check then holds
//! the app to the tool's own record: every balance equals deposits in + transfers in − transfers
//! out, the balances add up to what the successful deposits credited, every transfer answered
//! `201` is listed exactly once as `transfer_out` of its sender and once as `transfer_in` of its
//! recipient, nothing else is listed, and no balance read was below zero.
//!
//! `plan` draws the transfers, `fund` funds the users, `send` sends the transfers with the
//! balance readers alongside (`scenario::readers`, `scenario::together`), and `check` holds the
//! books to them; `config` has the options. The mixed scenario uses the same parts.

use super::check::Ledgers;
use super::readers::{readers_turns, Sampling};
use super::{LoadConfig, Run};
use crate::http;
use crate::report::{Report, TransferReport};
use anyhow::Context;
use plan::{draft, finalize};
use std::sync::Arc;
use std::time::Duration;

mod check;
mod config;
mod fund;
mod plan;
mod send;

pub(super) use check::Book;
pub(super) use config::{defaults, validate};
pub(super) use fund::{Funded, ToCreate};
pub(super) use plan::{
    draft as draft_transfers, finalize as finalize_transfers, over_amount, Drafts,
};
pub(super) use send::Sending;

/// The app's default largest amount, when `GET /api/settings` does not say.
pub(super) const FALLBACK_MAX_AMOUNT: i64 = 10_000_000;

/// Runs a transfers-* scenario and checks the books.
pub(super) async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    let mut run = Run::start(cfg).await?;
    let t = run
        .cfg
        .run
        .transfer
        .clone()
        .context("a transfers scenario without its options")?;
    let max_amount = http::max_amount(&run.ctx.client, run.ctx.app())
        .await
        .unwrap_or(FALLBACK_MAX_AMOUNT)
        .max(1);
    run.healthz().await;
    let users = run.sign_in().await?;
    let (scenario, n) = (run.cfg.scenario, run.cfg.run.users);
    let drafts = draft(&mut run.rng, scenario, n, &t);
    let mut f = run.fund(&users, &drafts, &t, max_amount).await?;

    let plan = finalize(
        &mut run.rng,
        &drafts,
        &f.funded,
        &f.stormed,
        max_amount,
        &users.run_id,
    );
    let who = readers_turns(&mut run.rng, scenario, n);
    let sampling = Arc::new(Sampling::new(&run.ctx, &users, who, plan.ceiling));
    let sending = Arc::new(Sending::new(&run.ctx, &users, plan.transfers, plan.items));
    let storm = std::mem::take(&mut f.storm_wave);
    let elapsed = run
        .transfer(&f.settle, &sending, &sampling, storm, t.read_concurrency)
        .await?;
    run.late(&f.settle, std::mem::take(&mut f.late)).await;

    let book = Arc::new(Book::new(&run.ctx, &sending, plan.monotone));
    let ledgers = Ledgers {
        book: Some(book.clone()),
        payouts: None,
    };
    let check = run.check(&f.settle, ledgers, &mut f.counts).await;
    let report = run.transfer_report(&book, &sending, &sampling, elapsed, f.storm_deposits);
    Ok(run.report(f.counts, check, f.credited_per_sec, Some(report)))
}

impl Run {
    /// What the transfers did and how fast, for the report: `elapsed` is the transfers phase's.
    pub(super) fn transfer_report(
        &self,
        book: &Book,
        sending: &Sending,
        sampling: &Sampling,
        elapsed: Duration,
        storm_deposits: usize,
    ) -> TransferReport {
        let mut report = book.report(sending);
        report.storm_deposits = storm_deposits;
        report.succeeded_per_sec = report.succeeded as f64 / elapsed.as_secs_f64().max(1e-9);
        let healthz = self.phases.iter().find(|p| p.name == "healthz");
        if let Some(h) = healthz.filter(|h| h.rate > 0.0) {
            report.succeeded_ratio_to_healthz = report.succeeded_per_sec / h.rate;
        }
        (report.balance_reads, report.lowest_balance_read) = sampling.figures();
        report
    }
}

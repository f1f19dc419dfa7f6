//! The withdrawals scenario. The users are funded as the deposit scenarios fund them (deposits
//! created with `POST /api/deposit`, which calls the bank's create-order, and settled by signed
//! webhooks), each with what its withdrawals will take and a margin. Then, as the measured
//! phase, they make many concurrent `POST /api/withdrawals` (the app reserves and commits the
//! amount, then asks the bank for the payout before it answers `201`) while a few connections
//! read their balances. A share of the amounts ends in 13, whose payouts the bank fails (the
//! money comes back); a share is over anything the user could hold and must be refused `409
//! insufficient_funds`. The report sets the rate of the `201`s beside that of the same run's
//! deposit creations.
//!
//! The check waits until no withdrawal is `processing`, then holds the app to the tool's record:
//! every balance equals deposits in − withdrawals not failed, every withdrawal answered `201` is
//! listed exactly once with status `failure` exactly when its amount ends in 13, nothing else is
//! listed, no refused withdrawal moved money and none the funding covered was refused, no answer
//! of any phase was a `5xx`, and no balance read was below zero.
//!
//! `plan` draws the withdrawals and the funding, `send` makes them, `wait` waits for their
//! payouts, and `check` holds the books to them; `config` has the options. The mixed scenario
//! uses the same parts.

use super::check::Ledgers;
use super::readers::{readers_turns, Sampling};
use super::transfers::FALLBACK_MAX_AMOUNT;
use super::{Ctx, LoadConfig, Run, Scenario};
use crate::http;
use crate::report::{Report, WithdrawalReport};
use anyhow::Context;
use plan::{funding, needs};
use std::sync::Arc;
use std::time::Duration;

mod check;
mod config;
mod plan;
mod send;
mod wait;

pub(super) use check::Payouts;
pub(super) use config::{defaults, validate, withdrawal_config, DEPOSITS_PER_USER};
pub(super) use plan::{draft, finalize, given_back, Draft};
pub(super) use send::Withdrawing;

/// The largest deposit and withdrawal `GET /api/settings` allows (the app's defaults where it
/// does not say).
pub(super) struct Maxima {
    pub(super) deposit: i64,
    pub(super) withdrawal: i64,
}

impl Maxima {
    pub(super) async fn read(ctx: &Ctx) -> Maxima {
        let limits = http::limits(&ctx.client, ctx.app()).await;
        Maxima {
            deposit: limits.deposit.unwrap_or(FALLBACK_MAX_AMOUNT).max(1),
            withdrawal: limits.withdrawal.unwrap_or(FALLBACK_MAX_AMOUNT).max(1),
        }
    }
}

/// Runs the withdrawals scenario and checks the books.
pub(super) async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    let mut run = Run::start(cfg).await?;
    let w = run
        .cfg
        .run
        .withdrawal
        .clone()
        .context("the withdrawals scenario without its options")?;
    let max = Maxima::read(&run.ctx).await;
    run.healthz().await;
    let users = run.sign_in().await?;
    let n = run.cfg.run.users;
    let drafts = draft(&mut run.rng, n, &w, max.withdrawal);
    let needs = needs(n, &drafts);
    let funding = funding(&mut run.rng, run.cfg.run.deposits, &needs, max.deposit);
    let mut f = run.fund_with(&users, funding, Default::default()).await?;

    let plan = finalize(
        &mut run.rng,
        &drafts,
        &f.funded,
        max.withdrawal,
        &users.run_id,
    );
    let covered = needs.iter().zip(&f.funded).map(|(n, f)| f >= n).collect();
    let monotone = given_back(n, &plan).into_iter().map(|b| !b).collect();
    let who = readers_turns(&mut run.rng, Scenario::Withdrawals, n);
    let sampling = Arc::new(Sampling::new(&run.ctx, &users, who, f.funded.clone()));
    let withdrawing = Arc::new(Withdrawing::new(&run.ctx, &users, plan));
    let phase = run.withdrawals_phase(&withdrawing, run.cfg.run.concurrency);
    let ran = run
        .together(vec![phase], None, &sampling, w.read_concurrency)
        .await?;
    let settled = run.wait_for_payouts(&withdrawing).await;
    run.late(&f.settle, std::mem::take(&mut f.late)).await;

    let payouts = Arc::new(Payouts::new(&run.ctx, &withdrawing, covered, monotone));
    let ledgers = Ledgers {
        book: None,
        payouts: Some(payouts.clone()),
    };
    let check = run.check(&f.settle, ledgers, &mut f.counts).await;
    let timing = Timing {
        elapsed: ran[0].elapsed,
        settled,
        deposits_created: f.created,
    };
    let report = run.withdrawal_report(&payouts, &withdrawing, &sampling, timing);
    let mut r = run.report(f.counts, check, f.credited_per_sec, None);
    r.withdrawals = Some(report);
    Ok(r)
}

/// What the report's rates are made of.
pub(super) struct Timing {
    /// The withdrawals phase's length.
    pub(super) elapsed: Duration,
    /// From its end until no withdrawal was processing ([`Run::wait_for_payouts`]).
    pub(super) settled: Option<f64>,
    /// Deposits the `deposits` phase created.
    pub(super) deposits_created: usize,
}

impl Run {
    /// What the withdrawals did and how fast, beside the `deposits` phase of the same run.
    pub(super) fn withdrawal_report(
        &self,
        payouts: &Payouts,
        w: &Withdrawing,
        sampling: &Sampling,
        t: Timing,
    ) -> WithdrawalReport {
        let mut r = payouts.report(w);
        r.succeeded_per_sec = r.succeeded as f64 / t.elapsed.as_secs_f64().max(1e-9);
        let created = &w.kind.created;
        (r.p50_ms, r.p99_ms) = (created.quantile_ms(0.50), created.quantile_ms(0.99));
        if let Some(d) = self.phases.iter().find(|p| p.name == "deposits") {
            r.deposits_created_per_sec = t.deposits_created as f64 / d.secs.max(1e-9);
            (r.deposit_p50_ms, r.deposit_p99_ms) = (d.p50_ms, d.p99_ms);
        }
        if r.deposits_created_per_sec > 0.0 {
            r.ratio_to_deposit_creation = r.succeeded_per_sec / r.deposits_created_per_sec;
        }
        r.settled_after_secs = t.settled;
        (r.balance_reads, r.lowest_balance_read) = sampling.figures();
        r
    }
}

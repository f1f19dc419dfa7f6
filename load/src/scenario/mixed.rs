//! The mixed scenario: deposits, transfers and withdrawals at once on the same wallets. The users
//! are funded as in transfers-random (one deposit each, settled by webhook), and more deposits
//! are created to be settled later. Then, as the measured phase, the webhooks of those deposits
//! (duplicated and shuffled as `--duplicates` and `--out-of-order` say, both on by default),
//! random transfers between the users and their withdrawals (a share failing at the bank by the
//! 13 rule) all run together, sharing `--concurrency`, while a few connections read balances.
//! Some transfers and withdrawals ask for more than the user could hold and must be refused.
//!
//! The check waits until no withdrawal is `processing`, then holds every balance to its deposits
//! in, plus its transfers in, minus its transfers out and its withdrawals not failed; each
//! transfer and withdrawal answered `201` to its listing; and finds no `5xx` anywhere and no
//! balance read below zero. The report gives the rate of the three kinds together and each
//! one's rate and latencies.

use super::check::Ledgers;
use super::readers::{readers_turns, Sampling};
use super::together::Pending;
use super::transfers::{draft_transfers, finalize_transfers, Book, Drafts, Funded, Sending};
use super::withdrawals::{self, Maxima, Payouts, Timing, Withdrawing};
use super::{Delivery, LoadConfig, Run, Scenario, Users};
use crate::phase::PhaseResult;
use crate::report::{MixedReport, Report, RunConfig, TransferConfig};
use anyhow::Context;
use std::sync::Arc;

const USERS: usize = 1_000;
const TRANSFERS: usize = 10_000;
const WITHDRAWALS: usize = 10_000;
/// Shares of the transfers and withdrawals asked over anything the user could hold.
const OVER_BALANCE: f64 = 0.1;
const READ_CONCURRENCY: usize = 4;

/// The mixed scenario's defaults: `base` with its users, one funding deposit each, the
/// transfers, the withdrawals, and half as many deposits settled alongside as transfers; the
/// deposits' webhooks duplicated and shuffled.
pub(super) fn defaults(base: RunConfig) -> RunConfig {
    RunConfig {
        users: USERS,
        deposits: USERS,
        duplicates: 0.3,
        out_of_order: true,
        transfer: Some(TransferConfig {
            transfers: TRANSFERS,
            over_balance: OVER_BALANCE,
            storm_deposits: TRANSFERS / 2,
            read_concurrency: READ_CONCURRENCY,
        }),
        withdrawal: Some(withdrawals::withdrawal_config(WITHDRAWALS)),
        ..base
    }
}

/// Runs the mixed scenario and checks the books.
pub(super) async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    let mut run = Run::start(cfg).await?;
    let (t, w) = match (&run.cfg.run.transfer, &run.cfg.run.withdrawal) {
        (Some(t), Some(w)) => (t.clone(), w.clone()),
        _ => anyhow::bail!("the mixed scenario without its transfer and withdrawal options"),
    };
    let max = Maxima::read(&run.ctx).await;
    run.healthz().await;
    let users = run.sign_in().await?;
    let n = run.cfg.run.users;
    let drafts = draft_transfers(&mut run.rng, Scenario::Mixed, n, &t);
    let w_drafts = withdrawals::draft(&mut run.rng, n, &w, max.withdrawal);
    let mut f = run.fund(&users, &drafts, &t, max.deposit).await?;

    let m = run.mixed_plan(&users, &f, (&drafts, &w_drafts), &max);
    let storm = std::mem::take(&mut f.storm_wave);
    let phases = run.mixed_phases(&f, &m.sending, &m.withdrawing, storm);
    let ran = run
        .together(phases, Some("mixed"), &m.sampling, t.read_concurrency)
        .await?;
    let settled = run.wait_for_payouts(&m.withdrawing).await;
    run.late(&f.settle, std::mem::take(&mut f.late)).await;
    run.mixed_check(f, m, &ran, settled).await
}

/// The transfers and withdrawals to make, the balance readers (with each user's ceiling), and
/// the users whose balance can only go down while they run.
struct MixedPlan {
    sending: Arc<Sending>,
    withdrawing: Arc<Withdrawing>,
    sampling: Arc<Sampling>,
    monotone: Vec<bool>,
}

impl Run {
    /// Decides the amounts now that the funding is known: each user's ceiling is its funding,
    /// its storm and every transfer to it, and an over-balance withdrawal asks for more.
    fn mixed_plan(
        &mut self,
        users: &Arc<Users>,
        f: &Funded,
        (drafts, w_drafts): (&Drafts, &[(usize, withdrawals::Draft)]),
        max: &Maxima,
    ) -> MixedPlan {
        let (rng, n, run_id) = (&mut self.rng, users.cookies.len(), &users.run_id);
        let plan = finalize_transfers(rng, drafts, &f.funded, &f.stormed, max.deposit, run_id);
        let w_plan = withdrawals::finalize(rng, w_drafts, &plan.ceiling, max.withdrawal, run_id);
        // A failed payout gives money back: its user's balance does not only go down.
        let back = withdrawals::given_back(n, &w_plan);
        let monotone = plan.monotone.iter().zip(&back).map(|(m, b)| *m && !b);
        let who = readers_turns(rng, Scenario::Mixed, n);
        let ctx = &self.ctx;
        MixedPlan {
            sampling: Arc::new(Sampling::new(ctx, users, who, plan.ceiling)),
            sending: Arc::new(Sending::new(ctx, users, plan.transfers, plan.items)),
            withdrawing: Arc::new(Withdrawing::new(ctx, users, w_plan)),
            monotone: monotone.collect(),
        }
    }

    /// The check over both ledgers, and the report: the transfers', the withdrawals' (`ran`:
    /// the transfers' and withdrawals' phases first), and the three kinds together.
    async fn mixed_check(
        mut self,
        mut f: Funded,
        m: MixedPlan,
        ran: &[PhaseResult],
        settled: Option<f64>,
    ) -> anyhow::Result<Report> {
        let n = self.cfg.run.users;
        let book = Arc::new(Book::new(&self.ctx, &m.sending, m.monotone.clone()));
        let payouts = Payouts::new(&self.ctx, &m.withdrawing, vec![false; n], m.monotone);
        let payouts = Arc::new(payouts);
        let ledgers = Ledgers {
            book: Some(book.clone()),
            payouts: Some(payouts.clone()),
        };
        let check = self.check(&f.settle, ledgers, &mut f.counts).await;
        let (elapsed, storm) = (ran[0].elapsed, f.storm_deposits);
        let t_report = self.transfer_report(&book, &m.sending, &m.sampling, elapsed, storm);
        let timing = Timing {
            elapsed: ran[1].elapsed,
            settled,
            deposits_created: f.created,
        };
        let w_report = self.withdrawal_report(&payouts, &m.withdrawing, &m.sampling, timing);
        let mixed = self
            .mixed_report(ran.len() > 2)
            .context("the mixed phases were not reported")?;
        let mut r = self.report(f.counts, check, f.credited_per_sec, Some(t_report));
        (r.withdrawals, r.mixed) = (Some(w_report), Some(mixed));
        Ok(r)
    }

    /// The transfers, the withdrawals and (when there are deposits to settle) their webhooks,
    /// in that order, sharing `--concurrency` evenly: the three together keep as many requests
    /// in flight as `/healthz` was measured with.
    fn mixed_phases(
        &self,
        f: &Funded,
        sending: &Arc<Sending>,
        withdrawing: &Arc<Withdrawing>,
        storm: Vec<Delivery>,
    ) -> Vec<Pending> {
        let kinds = if storm.is_empty() { 2 } else { 3 };
        let each = (self.cfg.run.concurrency / kinds).max(1);
        let mut phases = vec![
            self.transfers_phase(sending, each),
            self.withdrawals_phase(withdrawing, each),
        ];
        if !storm.is_empty() {
            phases.push(Box::pin(self.deliveries_at(
                "storm-webhooks",
                &f.settle,
                storm,
                each,
            )));
        }
        phases
    }

    /// The combined row and each kind's, as the phases reported them (`deposits`: whether
    /// deposit webhooks ran among them).
    fn mixed_report(&self, deposits: bool) -> Option<MixedReport> {
        let phase = |name: &str| self.phases.iter().find(|p| p.name == name);
        let mut kinds = vec![("transfers", phase("transfers")?)];
        kinds.push(("withdrawals", phase("withdrawals")?));
        if deposits {
            kinds.insert(0, ("deposits", phase("storm-webhooks")?));
        }
        Some(MixedReport::new(phase("mixed")?, &kinds))
    }
}

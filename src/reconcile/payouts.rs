//! Reconciliation of payouts: a withdrawal still processing is asked about at the bank on the
//! same due-time schedule as deposits (`pending_withdrawals`), with the same bounded concurrency
//! and backoff:
//! - with a payout id, its status (`GET /api/bank/payouts/{id}`); without one (its create-payout
//!   went unanswered), create-payout again with the same `ref`, which answers the payout the bank
//!   holds, or makes it (the money is set aside for it already);
//! - `SUCCESS` or `FAILURE` settles the withdrawal through its owner's wallet actor, exactly as
//!   the payout's webhook would (a failure returns the money, once);
//! - `PENDING` looks again `every_secs` later; any error (the bank unreachable, a refusal, an
//!   answer that is not the bank's word) retries with backoff.
//!
//! A payout never ends by age: money the bank may still pay out is never returned, so only the
//! bank's own `FAILURE` gives it back.

use super::{ms, take_checks, Reconciler, CHECKS_PER_SCAN, CONCURRENCY, SCAN_LIMIT};
use crate::bank_client::BankError;
use futures_util::StreamExt;
use onramp_actors::wallet::{SettleError, SettleRequest, Settling};
use onramp_bank_protocol::Payout;
use onramp_store::domain::{now_ms, PayoutId, Settlement, Status};
use onramp_store::{
    AttachPayout, DueWithdrawal, ForgetPendingWithdrawal, ScheduleWithdrawalCheck, Withdrawal,
};

impl Reconciler {
    /// Checks the withdrawals whose payout check is due now, [`CONCURRENCY`] at a time.
    pub async fn scan_payouts(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        let due = self.store.due_withdrawals(now, SCAN_LIMIT).await?;
        let (waiting, settled): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|d| d.withdrawal.status == Status::Processing);
        for d in &settled {
            self.forget_payout(d).await;
        }
        let waiting = take_checks(waiting, CHECKS_PER_SCAN, |d| d.withdrawal.created_at);
        let checked = waiting.len();
        futures_util::stream::iter(waiting)
            .for_each_concurrent(CONCURRENCY, |due| async move {
                self.check_payout(&due, now).await
            })
            .await;
        Ok(checked)
    }

    /// Asks the bank about one withdrawal's payout and acts on its answer; an error only
    /// delays it.
    async fn check_payout(&self, due: &DueWithdrawal, now: i64) {
        let w = &due.withdrawal;
        let result = match self.ask_payout(w).await {
            Ok(Some(outcome)) => self.settle_payout(due, outcome).await,
            Ok(None) => {
                crate::metrics::payout_check("pending");
                let next = now + ms(self.settings.every_secs);
                self.schedule_payout(due, next).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            crate::metrics::payout_check("error");
            tracing::warn!(withdrawal = %w.id, checks = due.checks, error = format!("{e:#}"), "payout check failed; retrying later");
            let retry_at = now.saturating_add(self.backoff_ms(due.checks));
            if let Err(e) = self.schedule_payout(due, retry_at).await {
                tracing::warn!(withdrawal = %w.id, error = %e, "cannot reschedule the payout check");
            }
        }
    }

    /// The bank's word on a withdrawal's payout: its outcome once it ended, `None` while it is
    /// pending.
    async fn ask_payout(&self, w: &Withdrawal) -> anyhow::Result<Option<Settlement>> {
        let payout = match &w.payout_id {
            Some(id) => self.bank.payout(id).await?.ok_or_else(|| {
                metrics::counter!("onramp_bank_faults_total", "call" => "payout", "kind" => "unknown_payout")
                    .increment(1);
                anyhow::anyhow!("the bank says it does not know payout {id}, which it answered")
            })?,
            None => {
                let payout = self.bank.create_payout(w.id.as_str(), w.amount.paise()).await?;
                self.attach_payout(w, &payout).await?;
                payout
            }
        };
        check_payout_matches(&payout, w)?;
        Ok(payout.status.outcome().map(|o| match o {
            onramp_bank_protocol::EventStatus::Success => Settlement::Success,
            onramp_bank_protocol::EventStatus::Failure => Settlement::Failure,
        }))
    }

    async fn attach_payout(&self, w: &Withdrawal, payout: &Payout) -> anyhow::Result<()> {
        let payout_id = PayoutId::parse(&payout.payout_id)
            .map_err(|e| BankError::Invalid(format!("payout id {:?}: {e}", payout.payout_id)))?;
        let attach = AttachPayout {
            withdrawal_id: w.id.clone(),
            payout_id,
            now: now_ms(),
        };
        Ok(self.writer.commit(attach).await?)
    }

    async fn settle_payout(&self, due: &DueWithdrawal, outcome: Settlement) -> anyhow::Result<()> {
        let w = &due.withdrawal;
        let request = SettleRequest {
            target: Settling::Payout(w.id.clone()),
            user_id: w.user_id,
            amount: w.amount,
            stored_status: w.status,
            outcome,
        };
        match self.wallets.settle(request).await {
            Ok(_) => {}
            Err(SettleError::Contradicts(stored)) => {
                crate::metrics::payout_check("contradiction");
                tracing::error!(withdrawal = %w.id, stored, bank = ?outcome, "the bank contradicts a final withdrawal");
            }
            Err(e) => return Err(e.into()),
        }
        crate::metrics::payout_check(match outcome {
            Settlement::Success => "success",
            Settlement::Failure => "failure",
        });
        self.forget_payout(due).await;
        Ok(())
    }

    async fn schedule_payout(&self, due: &DueWithdrawal, next_check_at: i64) -> anyhow::Result<()> {
        let check = ScheduleWithdrawalCheck {
            withdrawal_id: due.withdrawal.id.clone(),
            due_at: due.due_at,
            next_check_at,
        };
        Ok(self.writer.commit(check).await?)
    }

    /// Drops the schedule of a settled withdrawal (the next scan drops it when this fails).
    async fn forget_payout(&self, due: &DueWithdrawal) {
        let forget = ForgetPendingWithdrawal {
            withdrawal_id: due.withdrawal.id.clone(),
            due_at: due.due_at,
        };
        if let Err(e) = self.writer.commit(forget).await {
            tracing::warn!(error = %e, "cannot drop a settled withdrawal's schedule");
        }
    }
}

/// The bank's payout must be the withdrawal's: same ref, amount and currency, where it says.
fn check_payout_matches(payout: &Payout, w: &Withdrawal) -> anyhow::Result<()> {
    let same = payout
        .reference
        .as_deref()
        .is_none_or(|r| r == w.id.as_str())
        && payout.amount.is_none_or(|a| a == w.amount.paise())
        && (payout.currency.as_deref()).is_none_or(|c| c == w.currency.code());
    if !same {
        crate::metrics::payout_check("mismatch");
        anyhow::bail!(BankError::Invalid(format!(
            "the bank's payout {} disagrees with withdrawal {} (ref, amount or currency)",
            payout.payout_id, w.id
        )));
    }
    Ok(())
}

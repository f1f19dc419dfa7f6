//! Reconciliation of payouts: a withdrawal still processing is asked about at the bank on the
//! same due-time schedule as deposits (`pending_withdrawals`), with the same bounded concurrency
//! and backoff:
//! - with a payout id, its status (`GET /api/bank/payouts/{id}`); without one (its create-payout
//!   went unanswered), create-payout again with the same `ref`, which answers the payout the bank
//!   holds, or makes it (the money is set aside for it already);
//! - `SUCCESS` or `FAILURE` settles the withdrawal through its owner's wallet actor, exactly as
//!   the payout's webhook would (a failure returns the money, once);
//! - the bank's refusal of the create call (a `4xx` with its JSON error, not `409`) means it holds
//!   no payout for the ref and makes none: the money goes back, as when it refused the request;
//! - `PENDING` looks again `every_secs` later; any other error (the bank unreachable, an answer
//!   that is not the bank's word) retries with backoff.
//!
//! A payout never ends by age: money the bank may still pay out is never returned, so only the
//! bank's own `FAILURE` or refusal gives it back. No create call is made while this process's
//! request is making one for the same withdrawal ([`crate::paying`]).

use super::{ms, take_checks, Reconciler, CHECKS_PER_SCAN, CONCURRENCY, SCAN_LIMIT};
use crate::bank_client::{payout_for, BankError};
use futures_util::StreamExt;
use onramp_actors::wallet::{SettleError, SettleRequest, Settling};
use onramp_bank_protocol::{EventStatus, Payout};
use onramp_store::domain::{now_ms, PayoutId, Settlement, Status, WithdrawalId};
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
            Ok(Word::Ended(outcome)) => self.settle_payout(due, outcome, Settling::Payout).await,
            Ok(Word::Refused(e)) => {
                tracing::warn!(withdrawal = %w.id, error = %e, "the bank refused the payout; returning the money");
                self.settle_payout(due, Settlement::Failure, Settling::Payout)
                    .await
            }
            Ok(Word::Pending) => {
                crate::metrics::payout_check("pending");
                let next = now + ms(self.settings.every_secs);
                self.schedule_payout(due, next).await
            }
            // The request is asking the bank right now: left due, for the next scan.
            Ok(Word::Busy) => Ok(()),
            Ok(Word::AlreadyEnded) => {
                self.forget_payout(due).await;
                Ok(())
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

    /// The bank's word on a withdrawal's payout. Without a payout id the payout is created again
    /// with the same ref (the bank answers the one it holds, or makes it: the money is set aside
    /// for it already), but never while this process's request for it is asking the bank: the
    /// request returns the money when the bank refuses, and this call could make the payout.
    async fn ask_payout(&self, w: &Withdrawal) -> anyhow::Result<Word> {
        if let Some(id) = &w.payout_id {
            return self.payout_status(w, id).await;
        }
        let Some(_call) = self.paying.start(&w.id) else {
            return Ok(Word::Busy);
        };
        // Read again under the call: the request may have ended it before it let go.
        let Some(w) = self.store.withdrawal(&w.id).await? else {
            anyhow::bail!("withdrawal {} vanished", w.id);
        };
        if w.status != Status::Processing {
            return Ok(Word::AlreadyEnded);
        }
        if let Some(id) = &w.payout_id {
            return self.payout_status(&w, id).await;
        }
        let created = (self
            .bank
            .create_payout(w.id.as_str(), w.amount.paise())
            .await)
            .and_then(|p| payout_for(p, w.id.as_str(), w.amount.paise()));
        let payout = match created {
            Ok(payout) => payout,
            // The bank's own refusal: it holds no payout for this ref, and makes none.
            Err(e) if !e.may_have_acted() && matches!(e, BankError::Refused { .. }) => {
                return Ok(Word::Refused(e));
            }
            Err(e) => return Err(e.into()),
        };
        self.attach_payout(&w, &payout).await?;
        Ok(Word::of(&payout))
    }

    /// The status of a payout the bank answered before.
    async fn payout_status(&self, w: &Withdrawal, id: &str) -> anyhow::Result<Word> {
        let payout = self.bank.payout(id).await?.ok_or_else(|| {
            metrics::counter!("onramp_bank_faults_total", "call" => "payout", "kind" => "unknown_payout")
                .increment(1);
            anyhow::anyhow!("the bank says it does not know payout {id}, which it answered")
        })?;
        let payout = payout_for(payout, w.id.as_str(), w.amount.paise()).inspect_err(|_| {
            crate::metrics::payout_check("mismatch");
        })?;
        Ok(Word::of(&payout))
    }

    async fn attach_payout(&self, w: &Withdrawal, payout: &Payout) -> anyhow::Result<()> {
        let payout_id = PayoutId::parse(&payout.payout_id)
            .map_err(|e| BankError::Invalid(format!("payout id {:?}: {e}", payout.payout_id)))?;
        let attach = AttachPayout {
            withdrawal_id: w.id.clone(),
            payout_id,
            answers_request: false,
            now: now_ms(),
        };
        Ok(self.writer.commit(attach).await?)
    }

    async fn settle_payout(
        &self,
        due: &DueWithdrawal,
        outcome: Settlement,
        target: fn(WithdrawalId) -> Settling,
    ) -> anyhow::Result<()> {
        let w = &due.withdrawal;
        let request = SettleRequest {
            target: target(w.id.clone()),
            user_id: w.user_id,
            amount: w.amount,
            stored_status: w.status,
            outcome,
        };
        match self.wallets.settle(request).await {
            Ok(_) => {}
            // Another settlement holds the other outcome (the bank contradicts itself, or its
            // commit has not landed yet): looked at again later, and dropped from the schedule
            // only once the database has it final.
            Err(SettleError::Contradicts(stored)) => {
                crate::metrics::payout_check("contradiction");
                tracing::error!(withdrawal = %w.id, stored, bank = ?outcome, "the bank contradicts a withdrawal's settlement");
                let next = now_ms() + ms(self.settings.every_secs);
                return self.schedule_payout(due, next).await;
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

/// What the bank's word on a payout means here.
enum Word {
    Ended(Settlement),
    Pending,
    /// It refused to create the payout: it made none.
    Refused(BankError),
    /// This process's request for it is asking the bank now.
    Busy,
    /// Ended since it was read (by the request or a webhook).
    AlreadyEnded,
}

impl Word {
    fn of(payout: &Payout) -> Word {
        match payout.status.outcome() {
            Some(EventStatus::Success) => Word::Ended(Settlement::Success),
            Some(EventStatus::Failure) => Word::Ended(Settlement::Failure),
            None => Word::Pending,
        }
    }
}

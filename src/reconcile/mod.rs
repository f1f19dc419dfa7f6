//! Reconciliation: deposits and payouts whose webhook never arrived are settled by asking the
//! bank (payouts: [`payouts`]).
//!
//! Every deposit waiting for the bank has a next check time (`pending_deposits.next_check_at`,
//! indexed), first `first_after_secs` after its creation. Each scan takes the deposits that are
//! due, soonest first, and checks a bounded number at a time with the bank:
//! - a final answer (`SUCCESS`, `FAILURE`) settles the deposit through its owner's wallet actor,
//!   exactly as a webhook would (a webhook arriving later is a duplicate);
//! - `PENDING` schedules the next check `every_secs` later, but never past the deposit's
//!   maximum age;
//! - at `max_age_secs` the order is cancelled at the bank, and the deposit fails only when the
//!   bank's answer shows it can no longer be paid (`CANCELLED`, `EXPIRED`); an order that had
//!   already ended is settled as the bank says. The app never fails a deposit the bank may still
//!   take: its orders are created to expire at the same age;
//! - any error (the bank unreachable, a refusal, a commit that failed) schedules a retry with
//!   exponential backoff. A deposit leaves the schedule only by being settled.
//!
//! A deposit that never got a bank token (the app stopped, or the database stalled, between
//! recording it and hearing back from the bank) may still have an order at the bank: once it is
//! well past the bank call's timeout, create-order is asked again with the same ref (it is
//! idempotent, so it answers the order the bank holds, or makes one), that order is cancelled,
//! and the deposit ends as the bank's answer says, like any other at its maximum age.

mod payouts;

use crate::bank_client::{BankClient, BankError};
use crate::configuration::ReconcileSettings;
use crate::pending::PendingDeposits;
use crate::state::AppState;
use futures_util::StreamExt;
use onramp_actors::wallet::{SettleError, SettleRequest, Settling, Wallets};
use onramp_actors::writer::DbWriter;
use onramp_bank_protocol::{Order, OrderStatus};
use onramp_store::domain::{now_ms, DepositStatus, Settlement};
use onramp_store::{Deposit, Due, ForgetPending, ScheduleCheck, Store};
use std::sync::Arc;
use std::time::Duration;

/// Most schedule rows read at once (settled deposits' rows among them are only dropped).
const SCAN_LIMIT: u32 = 2048;
/// Most reads of the schedule in one scan: enough to drop the rows of a burst of deposits
/// settled by their webhooks.
const SCAN_ROUNDS: usize = 8;
/// Most deposits checked with the bank in one scan; the rest stay due for the next (see
/// [`take_checks`]), so one slow scan cannot hold the job for long.
pub const CHECKS_PER_SCAN: usize = 256;
/// Most checks in flight towards the bank at once.
const CONCURRENCY: usize = 16;
/// The first retry after an error; each further one doubles, up to `every_secs`.
const RETRY_BASE_MS: i64 = 2_000;
/// How often the backlog's gauges are read.
const BACKLOG_EVERY_MS: i64 = 10_000;

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The bank's word is final: settle. `why` labels the metric.
    Settle {
        outcome: Settlement,
        why: &'static str,
    },
    /// Ask again at this time (unix ms).
    CheckAt(i64),
}

pub struct Reconciler {
    settings: ReconcileSettings,
    store: Arc<dyn Store>,
    wallets: Wallets,
    writer: DbWriter,
    bank: BankClient,
    /// Forgotten once reconciliation settles a deposit, as a webhook would.
    pending: Arc<PendingDeposits>,
    /// The `return_url` of create-order, asked again for a deposit that never got its token.
    return_url: String,
    /// A deposit without a bank token younger than this may still be waiting for create-order.
    create_grace_ms: i64,
    /// When the backlog's gauges were last read (unix ms).
    backlog_at: std::sync::atomic::AtomicI64,
    /// The create-payout calls under way in this process: one per withdrawal at a time.
    paying: Arc<crate::paying::Paying>,
}

fn ms(secs: u64) -> i64 {
    (secs as i64).saturating_mul(1000)
}

impl Reconciler {
    /// Over the app's store, actors and bank client. `bank_timeout` is the app's create-order
    /// timeout: a deposit without a bank token is left alone until well past it.
    pub fn new(settings: ReconcileSettings, state: &AppState, bank_timeout: Duration) -> Self {
        let create_grace_ms = (bank_timeout.as_millis() as i64).saturating_mul(3);
        Reconciler {
            settings,
            store: state.store.clone(),
            wallets: state.wallets.clone(),
            writer: state.writer.clone(),
            bank: state.bank.clone(),
            pending: state.pending.clone(),
            return_url: state.urls.deposit_return_url(),
            create_grace_ms,
            backlog_at: std::sync::atomic::AtomicI64::new(0),
            paying: state.paying.clone(),
        }
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.settings.scan_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Among several processes, one at a time checks the service's deposits and payouts.
            if !self.wallets.ownership().leads() {
                continue;
            }
            if let Err(e) = self.scan().await {
                tracing::warn!(error = format!("{e:#}"), "reconciliation scan failed");
            }
            if let Err(e) = self.scan_payouts().await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "payout reconciliation scan failed"
                );
            }
        }
    }

    /// Checks the deposits that are due now, [`CONCURRENCY`] at a time.
    pub async fn scan(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        if self.backlog_due(now) {
            if let Err(e) = self.record_backlog(now).await {
                // The gauges are for people; the checks go on without them.
                tracing::warn!(error = %e, "cannot read the reconciliation backlog");
            }
        }
        let mut waiting = Vec::new();
        for _ in 0..SCAN_ROUNDS {
            let due = self.store.due_deposits(now, SCAN_LIMIT).await?;
            let full = due.len() == SCAN_LIMIT as usize;
            let (processing, settled): (Vec<Due>, Vec<Due>) = due
                .into_iter()
                .partition(|d| d.deposit.status == DepositStatus::Processing);
            self.forget_settled(&settled).await;
            waiting = processing;
            // Another round only while settled rows filled the read and may hide due ones.
            if !full || waiting.len() >= CHECKS_PER_SCAN || settled.is_empty() {
                break;
            }
        }
        let waiting = take_checks(waiting, CHECKS_PER_SCAN, |d| d.deposit.created_at);
        let checked = waiting.len();
        futures_util::stream::iter(waiting)
            .for_each_concurrent(
                CONCURRENCY,
                |due| async move { self.check(&due, now).await },
            )
            .await;
        Ok(checked)
    }

    /// Drops the schedule of deposits that were settled (by a webhook, or by this job) since it
    /// was written: settling leaves the row, so that the webhook path writes no more than it must.
    async fn forget_settled(&self, settled: &[Due]) {
        let forgets = settled.iter().map(|d| {
            self.writer.commit(ForgetPending {
                deposit_id: d.deposit.id.clone(),
                due_at: d.due_at,
            })
        });
        for result in futures_util::future::join_all(forgets).await {
            if let Err(e) = result {
                // The row stays due: the next scan drops it.
                tracing::warn!(error = %e, "cannot drop a settled deposit's schedule");
            }
        }
    }

    /// Whether the backlog's gauges are due again: they read the whole schedule, so only every
    /// [`BACKLOG_EVERY_MS`].
    fn backlog_due(&self, now: i64) -> bool {
        let last = self.backlog_at.load(std::sync::atomic::Ordering::Relaxed);
        let due = now - last >= BACKLOG_EVERY_MS;
        if due {
            self.backlog_at
                .store(now, std::sync::atomic::Ordering::Relaxed);
        }
        due
    }

    /// The backlog's gauges: deposits waiting, how many are due, the age of the oldest.
    async fn record_backlog(&self, now: i64) -> anyhow::Result<()> {
        let summary = self.store.pending_summary(now).await?;
        metrics::gauge!("onramp_reconcile_pending").set(summary.pending as f64);
        metrics::gauge!("onramp_reconcile_due").set(summary.due as f64);
        let oldest_ms = summary.oldest_created_at.map_or(0, |c| (now - c).max(0));
        metrics::gauge!("onramp_reconcile_oldest_pending_seconds").set(oldest_ms as f64 / 1000.0);
        Ok(())
    }

    /// Decides about one deposit and acts on it; an error only delays it.
    async fn check(&self, due: &Due, now: i64) {
        let (deposit, checks) = (&due.deposit, due.checks);
        let decided = match self.decide(deposit, now).await {
            Ok(decision) => self.act(due, decision).await,
            Err(e) => Err(e),
        };
        if let Err(e) = decided {
            crate::metrics::reconciliation("error");
            tracing::warn!(deposit = %deposit.id, checks, error = format!("{e:#}"), "reconciliation check failed; retrying later");
            let retry_at = now.saturating_add(self.backoff_ms(checks));
            if let Err(e) = self.schedule(due, retry_at).await {
                // The row keeps its old (past) check time, so the next scan takes it again.
                tracing::warn!(deposit = %deposit.id, error = %e, "cannot reschedule the check");
            }
        }
    }

    fn backoff_ms(&self, checks: u32) -> i64 {
        let doubled = RETRY_BASE_MS.saturating_mul(1_i64 << checks.min(20));
        doubled.min(ms(self.settings.every_secs).max(RETRY_BASE_MS))
    }

    /// What the bank's state means for `deposit` now.
    pub async fn decide(&self, deposit: &Deposit, now: i64) -> anyhow::Result<Decision> {
        let age = now - deposit.created_at;
        let max_age = ms(self.settings.max_age_secs);
        let token = match &deposit.bank_token {
            Some(token) => token.clone(),
            // Its create-order may still be on its way (the token is stored right after): look
            // again at the next regular check, and end it only once well past the bank's timeout.
            None if age < self.create_grace_ms => {
                let next = now + ms(self.settings.every_secs);
                return Ok(Decision::CheckAt(
                    next.min(deposit.created_at + self.create_grace_ms),
                ));
            }
            None => return self.end_unsent(deposit).await,
        };
        let old = age >= max_age;
        let order = if old {
            self.bank.cancel(&token).await
        } else {
            self.bank.order(&token).await
        };
        let order = known(order?, &token)?;
        check_matches(&order, deposit)?;
        if old && order.status == OrderStatus::Pending {
            anyhow::bail!(
                "the bank answered the cancel of order {} with PENDING",
                order.token
            );
        }
        let next = (now + ms(self.settings.every_secs)).min(deposit.created_at + max_age);
        Ok(decision(order.status, next))
    }

    /// A deposit the app never heard back about from create-order: the bank may hold its order
    /// all the same. Asks for it again (the same ref answers the same order), cancels it, and
    /// decides by the bank's final word.
    async fn end_unsent(&self, deposit: &Deposit) -> anyhow::Result<Decision> {
        let created = self
            .bank
            .create_order(
                deposit.id.as_str(),
                deposit.amount.paise(),
                &self.return_url,
            )
            .await?;
        let order = known(self.bank.cancel(&created.token).await?, &created.token)?;
        check_matches(&order, deposit)?;
        if order.status == OrderStatus::Pending {
            anyhow::bail!(
                "the bank answered the cancel of order {} with PENDING",
                order.token
            );
        }
        Ok(match decision(order.status, 0) {
            Decision::Settle { outcome, why } if outcome == Settlement::Failure => {
                Decision::Settle {
                    outcome,
                    why: if why == "failure" { why } else { "never_sent" },
                }
            }
            other => other,
        })
    }

    /// Settles or reschedules the deposit as decided.
    async fn act(&self, due: &Due, decision: Decision) -> anyhow::Result<()> {
        let deposit = &due.deposit;
        match decision {
            Decision::CheckAt(at) => {
                crate::metrics::reconciliation("pending");
                self.schedule(due, at).await
            }
            Decision::Settle { outcome, why } => {
                self.settle(deposit, outcome).await?;
                self.forget_settled(std::slice::from_ref(due)).await;
                crate::metrics::reconciliation(why);
                tracing::info!(deposit = %deposit.id, why, "reconciled");
                Ok(())
            }
        }
    }

    async fn schedule(&self, due: &Due, next_check_at: i64) -> anyhow::Result<()> {
        let op = ScheduleCheck {
            deposit_id: due.deposit.id.clone(),
            due_at: due.due_at,
            next_check_at,
        };
        Ok(self.writer.commit(op).await?)
    }

    async fn settle(&self, deposit: &Deposit, outcome: Settlement) -> anyhow::Result<()> {
        let request = SettleRequest {
            target: Settling::Deposit(deposit.id.clone()),
            user_id: deposit.user_id,
            amount: deposit.amount,
            stored_status: deposit.status,
            outcome,
        };
        let settled = match self.wallets.settle(request).await {
            Ok(_) => Ok(()),
            // The deposit ended otherwise than the bank now says. Nothing here can change that
            // (the bank's webhook would get 409 too): count it and tell a person.
            Err(SettleError::Contradicts(stored)) => {
                crate::metrics::reconciliation("contradiction");
                tracing::error!(deposit = %deposit.id, stored, bank = ?outcome, "the bank contradicts a final deposit");
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        if settled.is_ok() {
            if let Some(token) = deposit.bank_token.as_deref() {
                if let Ok(token) = onramp_store::domain::BankToken::parse(token) {
                    self.pending.forget(&token);
                }
            }
        }
        settled
    }
}

/// The deposits one scan checks, at most `n` of `due` (which is soonest due first): half are
/// the soonest due, so that every deposit's turn comes (a check always reschedules after now,
/// behind everything due); the other half are the most recently created of the rest, so that
/// a backlog of older deposits all due at once (the bank down for a while, or a burst it
/// cannot answer for) does not stand between a new deposit and its first check for several
/// scans. The rest are the first [`SCAN_LIMIT`] due, so past that many a new deposit waits its
/// turn as before.
fn take_checks<T>(mut due: Vec<T>, n: usize, created_at: impl Fn(&T) -> i64) -> Vec<T> {
    if due.len() <= n {
        return due;
    }
    let mut rest = due.split_off(n - n / 2);
    rest.sort_unstable_by_key(|d| std::cmp::Reverse(created_at(d)));
    rest.truncate(n / 2);
    due.append(&mut rest);
    due
}

/// The bank's order must be the deposit's: same ref, amount and currency.
fn check_matches(order: &Order, deposit: &Deposit) -> anyhow::Result<()> {
    let same = order.reference == deposit.id.as_str()
        && order.amount == deposit.amount.paise()
        && order.currency == deposit.currency.code();
    if !same {
        crate::metrics::reconciliation("mismatch");
        anyhow::bail!(BankError::Invalid(format!(
            "the bank's order {} disagrees with deposit {} (ref, amount or currency)",
            order.token, deposit.id
        )));
    }
    Ok(())
}

/// The order the bank answered for `token`. The bank never forgets an order it answered with
/// a token (`docs/bank.md`), so its "unknown order" is a fault like any other: the deposit
/// stays as it is and is asked about again later, and the fault is counted.
fn known(order: Option<Order>, token: &str) -> anyhow::Result<Order> {
    order.ok_or_else(|| {
        metrics::counter!("onramp_bank_faults_total", "call" => "order", "kind" => "unknown_order")
            .increment(1);
        anyhow::anyhow!("the bank says it does not know order {token}, which it answered itself")
    })
}

/// The decision for an order in `status`; `next`: when to look again at a pending one.
pub fn decision(status: OrderStatus, next: i64) -> Decision {
    let settle = |outcome, why| Decision::Settle { outcome, why };
    match status {
        OrderStatus::Success => settle(Settlement::Success, "success"),
        OrderStatus::Failure => settle(Settlement::Failure, "failure"),
        OrderStatus::Expired => settle(Settlement::Failure, "expired"),
        OrderStatus::Cancelled => settle(Settlement::Failure, "cancelled"),
        // Still payable (a cancel that answers PENDING breaks the contract: the caller asks
        // again).
        OrderStatus::Pending => Decision::CheckAt(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onramp_store::domain::{Amount, Currency, DepositId, DepositStatus, UserId};

    fn deposit(created_at: i64) -> Deposit {
        Deposit {
            id: DepositId::new(),
            user_id: UserId::new(),
            amount: Amount::parse(500, i64::MAX).unwrap(),
            currency: Currency::Inr,
            status: DepositStatus::Processing,
            bank_token: Some("tok".into()),
            pay_url: None,
            created_at,
            updated_at: created_at,
        }
    }

    /// A scan with more due than it may check takes the soonest due half and the newest of the
    /// rest, each once.
    #[test]
    fn a_scan_checks_the_soonest_due_and_the_newest() {
        // Soonest due first, which here is also oldest first.
        let due: Vec<Due> = (0..10)
            .map(|i| Due {
                deposit: deposit(10 + i),
                checks: 3,
                due_at: i,
            })
            .collect();
        let created =
            |taken: Vec<Due>| -> Vec<i64> { taken.iter().map(|d| d.deposit.created_at).collect() };
        let take = |due: Vec<Due>, n| take_checks(due, n, |d| d.deposit.created_at);
        assert_eq!(created(take(due.clone(), 4)), [10, 11, 19, 18]);
        assert_eq!(created(take(due.clone(), 5)), [10, 11, 12, 19, 18]);
        assert_eq!(created(take(due.clone(), 1)), [10]);
        assert_eq!(take(due.clone(), 10).len(), 10);
        assert_eq!(take(due, 20).len(), 10);
    }

    /// The bank's word settles a deposit only when its order is that deposit's: the same ref,
    /// amount and currency. A bank answering in dollars for a rupee deposit is refused.
    #[test]
    fn an_order_in_another_currency_is_not_the_deposits() {
        let deposit = deposit(0);
        let order = |currency: &str, amount: i64| Order {
            token: "tok".into(),
            reference: deposit.id.to_string(),
            amount,
            currency: currency.into(),
            expires_at: None,
            status: OrderStatus::Success,
        };
        assert!(check_matches(&order("INR", 500), &deposit).is_ok());
        assert!(check_matches(&order("USD", 500), &deposit).is_err());
        assert!(check_matches(&order("inr", 500), &deposit).is_err());
        assert!(check_matches(&order("INR", 501), &deposit).is_err());
    }

    #[test]
    fn only_an_order_that_can_no_longer_be_paid_fails_a_deposit() {
        let fails = |why| Decision::Settle {
            outcome: Settlement::Failure,
            why,
        };
        assert_eq!(decision(OrderStatus::Pending, 7), Decision::CheckAt(7));
        assert_eq!(decision(OrderStatus::Expired, 7), fails("expired"));
        assert_eq!(decision(OrderStatus::Cancelled, 7), fails("cancelled"));
        assert_eq!(decision(OrderStatus::Failure, 7), fails("failure"));
        assert_eq!(
            decision(OrderStatus::Success, 7),
            Decision::Settle {
                outcome: Settlement::Success,
                why: "success"
            },
            "paid just before the cancel: credited"
        );
        assert!(
            known(None, "tok").is_err(),
            "an order we hold a token for is never unknown: a fault, not a failure"
        );
    }
}

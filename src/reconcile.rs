//! Reconciliation: deposits whose webhook never arrived are settled by asking the bank.
//!
//! A deposit still processing `first_after` after its creation is looked up with
//! `GET /api/bank/orders/{token}`, then again every `every`, `max_tries` times at most, and once
//! more when it reaches `max_age`. A final answer from the bank settles it through the owner's
//! wallet actor, exactly as a webhook would (so a webhook arriving later is a duplicate). A
//! deposit the bank still calls PENDING at `max_age` is marked failed. A deposit that never got a
//! bank token (the app stopped between recording it and hearing back from the bank) was never
//! shown a pay page, so nobody can have paid it: it fails at its first check.

use crate::bank_client::BankClient;
use crate::configuration::ReconcileSettings;
use onramp_actors::wallet::{SettleError, SettleRequest, Wallets};
use onramp_bank_protocol::EventStatus;
use onramp_store::domain::{now_ms, DepositId, Settlement};
use onramp_store::{Deposit, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What one check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Settled(Settlement),
    /// The bank says PENDING (or is unreachable): look again later.
    StillPending,
    /// Too old and still PENDING, or never sent to the bank: failed.
    Expired,
}

struct Schedule {
    tries: u32,
    next_at: i64,
    final_check_done: bool,
}

pub struct Reconciler {
    settings: ReconcileSettings,
    store: Arc<dyn Store>,
    wallets: Wallets,
    bank: BankClient,
    /// A deposit without a bank token younger than this may still be waiting for create-order.
    create_grace_ms: i64,
    schedule: HashMap<DepositId, Schedule>,
}

impl Reconciler {
    /// `bank_timeout` is the app's create-order timeout: a deposit without a bank token is left
    /// alone until well past it.
    pub fn new(
        settings: ReconcileSettings,
        store: Arc<dyn Store>,
        wallets: Wallets,
        bank: BankClient,
        bank_timeout: Duration,
    ) -> Self {
        let create_grace_ms = (bank_timeout.as_millis() as i64).saturating_mul(3);
        Reconciler {
            settings,
            store,
            wallets,
            bank,
            create_grace_ms,
            schedule: HashMap::new(),
        }
    }

    fn ms(secs: u64) -> i64 {
        (secs as i64).saturating_mul(1000)
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.settings.scan_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.scan().await {
                tracing::warn!(error = format!("{e:#}"), "reconciliation scan failed");
            }
        }
    }

    /// Checks every deposit that is due now.
    pub async fn scan(&mut self) -> anyhow::Result<()> {
        let now = now_ms();
        let due_before = now - Self::ms(self.settings.first_after_secs);
        let candidates = self.store.processing_deposits(due_before, 1000).await?;
        let live: std::collections::HashSet<&DepositId> =
            candidates.iter().map(|d| &d.id).collect();
        self.schedule.retain(|id, _| live.contains(id));
        for deposit in &candidates {
            let age = now - deposit.created_at;
            let old = age >= Self::ms(self.settings.max_age_secs);
            let entry = self.schedule.entry(deposit.id.clone()).or_insert(Schedule {
                tries: 0,
                next_at: 0,
                final_check_done: false,
            });
            let due = if entry.tries < self.settings.max_tries {
                now >= entry.next_at
            } else {
                old && !entry.final_check_done
            };
            if !due {
                continue;
            }
            entry.tries += 1;
            entry.next_at = now + Self::ms(self.settings.every_secs);
            if entry.tries > self.settings.max_tries {
                entry.final_check_done = true;
            }
            if deposit.bank_token.is_none() && age < self.create_grace_ms {
                entry.tries -= 1;
                continue;
            }
            match self.check(deposit, old).await {
                Ok(outcome) => tracing::info!(deposit = %deposit.id, ?outcome, "reconciled"),
                Err(e) => {
                    crate::metrics::reconciliation("error");
                    tracing::warn!(deposit = %deposit.id, error = format!("{e:#}"), "reconciliation check failed")
                }
            }
        }
        Ok(())
    }

    async fn check(&self, deposit: &Deposit, old: bool) -> anyhow::Result<Checked> {
        let Some(token) = &deposit.bank_token else {
            self.settle(deposit, Settlement::Failure).await?;
            crate::metrics::reconciliation("never_sent");
            return Ok(Checked::Expired);
        };
        let order = self.bank.order(token).await?;
        let outcome = order.as_ref().and_then(|o| o.status.outcome());
        if let Some(o) = &order {
            if o.reference != deposit.id.as_str() || o.amount != deposit.amount.paise() {
                crate::metrics::reconciliation("mismatch");
                anyhow::bail!(
                    "the bank's order {} disagrees with deposit {}",
                    o.token,
                    deposit.id
                );
            }
        }
        let outcome = match outcome {
            Some(EventStatus::Success) => Settlement::Success,
            Some(EventStatus::Failure) => Settlement::Failure,
            None if old => {
                self.settle(deposit, Settlement::Failure).await?;
                crate::metrics::reconciliation("expired");
                return Ok(Checked::Expired);
            }
            None => {
                crate::metrics::reconciliation("pending");
                return Ok(Checked::StillPending);
            }
        };
        self.settle(deposit, outcome).await?;
        crate::metrics::reconciliation(match outcome {
            Settlement::Success => "success",
            Settlement::Failure => "failure",
        });
        Ok(Checked::Settled(outcome))
    }

    async fn settle(&self, deposit: &Deposit, outcome: Settlement) -> anyhow::Result<()> {
        let request = SettleRequest {
            deposit_id: deposit.id.clone(),
            user_id: deposit.user_id,
            amount: deposit.amount,
            stored_status: deposit.status,
            outcome,
        };
        match self.wallets.settle(request).await {
            Ok(_) => Ok(()),
            // A webhook got there first with the other outcome: the bank's word stands.
            Err(SettleError::Contradicts(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

//! Deposits and payouts settled through their owner's wallet actor: exactly once, however many
//! copies of the bank's answer arrive, and each answered only once its outcome is durable. A
//! deposit's success credits the wallet; a payout's failure returns its amount to the wallet.

use super::actor::WalletActor;
use super::SettleError;
use crate::writer::WriteError;
use actix::prelude::*;
use onramp_store::domain::{now_ms, Amount, DepositId, Settlement, Status, UserId, WithdrawalId};
use onramp_store::{SettleDeposit, SettlePayout, SettleResult, Store, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// What the bank's answer ends: a deposit (its order) or a withdrawal's payout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settling {
    Deposit(DepositId),
    Payout(WithdrawalId),
    /// The bank refused the withdrawal's own create-payout request: its payout fails, and the
    /// withdrawal records that its request was answered `bank_refused`.
    Refused(WithdrawalId),
}

impl Settling {
    /// The change that settles it.
    async fn commit(
        self,
        writer: &crate::writer::DbWriter,
        lease: Option<crate::ownership::Lease>,
        user_id: UserId,
        amount: Amount,
        outcome: Settlement,
    ) -> Result<SettleResult, WriteError> {
        let now = now_ms();
        let refused_request = matches!(self, Settling::Refused(_));
        match self {
            Settling::Deposit(deposit_id) => {
                let change = SettleDeposit {
                    deposit_id,
                    user_id,
                    amount,
                    outcome,
                    now,
                };
                writer.commit_under(change, lease).await
            }
            Settling::Payout(withdrawal_id) | Settling::Refused(withdrawal_id) => {
                let change = SettlePayout {
                    refused_request,
                    withdrawal_id,
                    user_id,
                    amount,
                    outcome,
                    now,
                };
                writer.commit_under(change, lease).await
            }
        }
    }

    /// Its status as stored now.
    async fn stored(&self, store: &dyn Store) -> Result<Status, StoreError> {
        let status = match self {
            Settling::Deposit(id) => store.deposit(id).await?.map(|d| d.status),
            Settling::Payout(id) | Settling::Refused(id) => {
                store.withdrawal(id).await?.map(|w| w.status)
            }
        };
        status.ok_or_else(|| StoreError::Corrupt(format!("{self:?} vanished")))
    }

    /// Counts what an applied settlement moved back into the wallet.
    fn count(&self, amount: Amount) {
        let (count, paise) = match self {
            Settling::Deposit(_) => ("onramp_credits_total", "onramp_credited_paise_total"),
            Settling::Payout(_) | Settling::Refused(_) => {
                ("onramp_payout_returns_total", "onramp_returned_paise_total")
            }
        };
        metrics::counter!(count).increment(1);
        metrics::counter!(paise).increment(amount.paise() as u64);
    }
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleOutcome {
    /// This settlement moved the deposit to its final state (and credited it on success).
    Applied,
    /// The deposit was already in this final state: nothing changed.
    Duplicate,
}

/// A settlement request: the deposit or withdrawal as stored (user, amount and status come from
/// our own database, never from the bank's message) and the outcome the bank reported.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SettleRequest {
    pub target: Settling,
    pub user_id: UserId,
    pub amount: Amount,
    /// Its status when the caller read it.
    pub stored_status: Status,
    pub outcome: Settlement,
}

type Waiter = oneshot::Sender<Result<SettleOutcome, SettleError>>;

pub(super) enum SettlingState {
    /// A settlement is committing; later duplicates wait here.
    Committing {
        outcome: Settlement,
        waiters: Vec<Waiter>,
    },
    Final(Status),
}

/// How many settled deposits and payouts an actor remembers beyond its in-flight ones.
const REMEMBER_FINAL: usize = 4096;

pub(super) type Ticket = Result<oneshot::Receiver<Result<SettleOutcome, SettleError>>, SettleError>;

#[derive(Message, Clone)]
#[rtype(result = "Ticket")]
pub(super) struct Settle(pub SettleRequest);

impl Handler<Settle> for WalletActor {
    type Result = Ticket;

    #[tracing::instrument(level = "trace", name = "wallet.settle", skip_all, fields(user = %self.user))]
    fn handle(&mut self, Settle(req): Settle, ctx: &mut Self::Context) -> Ticket {
        self.last_used = Instant::now();
        let (tx, rx) = oneshot::channel();
        if let Some(answer) = self.known_answer(&req, tx) {
            return answer.map(|()| rx);
        }
        self.in_flight += 1;
        let writer = self.shared.writer.clone();
        let lease = self.lease.clone();
        let store = self.shared.store.clone();
        let (target, user, amount, outcome) =
            (req.target.clone(), self.user, req.amount, req.outcome);
        ctx.spawn(
            async move {
                let result = target
                    .clone()
                    .commit(&writer, lease, user, amount, outcome)
                    .await;
                // It was final already: answer from what is stored now.
                let now_stored = match result {
                    Ok(SettleResult::NotProcessing) => Some(target.stored(&*store).await),
                    _ => None,
                };
                (result, now_stored)
            }
            .into_actor(self)
            .map(move |(result, now_stored), act, _| {
                act.finish(req.target, req.amount, result, now_stored)
            }),
        );
        Ok(rx)
    }
}

impl WalletActor {
    /// Answers `tx` at once when the state is known here or was final when the caller
    /// read it (`Some(Ok)`: answered or waiting on the commit under way; `Some(Err)`: refused).
    /// `None`: the settlement must be committed, and `tx` is its first waiter.
    fn known_answer(&mut self, req: &SettleRequest, tx: Waiter) -> Option<Result<(), SettleError>> {
        let wanted = req.outcome.status();
        match self.settling.get_mut(&req.target) {
            Some(SettlingState::Final(s)) if *s == wanted => {
                let _ = tx.send(Ok(SettleOutcome::Duplicate));
                return Some(Ok(()));
            }
            Some(SettlingState::Final(s)) => {
                return Some(Err(SettleError::Contradicts(s.as_str())))
            }
            Some(SettlingState::Committing { outcome, waiters }) if *outcome == req.outcome => {
                waiters.push(tx);
                return Some(Ok(()));
            }
            Some(SettlingState::Committing { outcome, .. }) => {
                return Some(Err(SettleError::Contradicts(outcome.status().as_str())))
            }
            None => {}
        }
        match req.stored_status {
            Status::Processing => {
                let committing = SettlingState::Committing {
                    outcome: req.outcome,
                    waiters: vec![tx],
                };
                self.settling.insert(req.target.clone(), committing);
                None
            }
            s if s == wanted => {
                let _ = tx.send(Ok(SettleOutcome::Duplicate));
                Some(Ok(()))
            }
            s => Some(Err(SettleError::Contradicts(s.as_str()))),
        }
    }

    fn forget_some_finals(&mut self) {
        if self.settling.len() > REMEMBER_FINAL + self.in_flight {
            self.settling
                .retain(|_, s| matches!(s, SettlingState::Committing { .. }));
        }
    }

    /// Answers everybody waiting on `target`'s commit. `now_stored` is its status re-read from
    /// the database when the commit found it no longer processing.
    fn finish(
        &mut self,
        target: Settling,
        amount: Amount,
        result: Result<SettleResult, WriteError>,
        now_stored: Option<Result<Status, StoreError>>,
    ) {
        self.in_flight -= 1;
        let Some(SettlingState::Committing { outcome, waiters }) = self.settling.remove(&target)
        else {
            unreachable!("a committing settlement stays committing until its commit answers");
        };
        let answer = self.decide(&target, amount, outcome, result, now_stored);
        // The first waiter hears `Applied`; the copies that waited with it are duplicates.
        let mut first = true;
        for w in waiters {
            let _ = w.send(match &answer {
                Ok(_) if !first => Ok(SettleOutcome::Duplicate),
                other => other.clone(),
            });
            first = false;
        }
        self.forget_some_finals();
    }

    /// What a settlement's commit means, remembering the final state.
    fn decide(
        &mut self,
        target: &Settling,
        amount: Amount,
        outcome: Settlement,
        result: Result<SettleResult, WriteError>,
        now_stored: Option<Result<Status, StoreError>>,
    ) -> Result<SettleOutcome, SettleError> {
        match (result, now_stored) {
            (Ok(SettleResult::Applied(balance)), _) => {
                if let Some(balance) = balance {
                    self.funds.observe(balance);
                    target.count(amount);
                }
                let done = SettlingState::Final(outcome.status());
                self.settling.insert(target.clone(), done);
                Ok(SettleOutcome::Applied)
            }
            // The database had it final already (our caller read the row before an earlier
            // settlement committed): answer from what is stored now.
            (Ok(_), Some(Ok(stored))) if stored != Status::Processing => {
                self.settling
                    .insert(target.clone(), SettlingState::Final(stored));
                if stored == outcome.status() {
                    Ok(SettleOutcome::Duplicate)
                } else {
                    Err(SettleError::Contradicts(stored.as_str()))
                }
            }
            (Ok(_), Some(Err(e))) => Err(SettleError::Reread(Arc::new(e))),
            // Not processing, and the row read back says processing: it changed under us.
            (Ok(_), _) => Err(SettleError::Reread(Arc::new(StoreError::Corrupt(
                "a settlement found it not processing, then processing".into(),
            )))),
            (Err(e), _) => {
                if e.may_have_landed() {
                    // The credit (or return) may have landed: read the balance afresh before
                    // answering it.
                    self.funds.forget();
                }
                Err(SettleError::Storage(e))
            }
        }
    }
}

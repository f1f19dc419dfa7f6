//! Deposits settled through their owner's wallet actor: exactly once, however many copies of
//! the bank's answer arrive, and each answered only once its outcome is durable.

use super::actor::WalletActor;
use super::SettleError;
use crate::writer::WriteError;
use actix::prelude::*;
use onramp_store::domain::{now_ms, Amount, DepositId, DepositStatus, Settlement, UserId};
use onramp_store::{SettleDeposit, SettleResult, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// This settlement moved the deposit to its final state (and credited it on success).
    Applied,
    /// The deposit was already in this final state: nothing changed.
    Duplicate,
}

/// A settlement request: the deposit as stored (user, amount and status come from our own
/// database, never from the bank's message) and the outcome the bank reported.
#[derive(Debug, Clone)]
pub struct SettleRequest {
    pub deposit_id: DepositId,
    pub user_id: UserId,
    pub amount: Amount,
    /// The deposit's status when the caller read it.
    pub stored_status: DepositStatus,
    pub outcome: Settlement,
}

type Waiter = oneshot::Sender<Result<SettleOutcome, SettleError>>;

pub(super) enum DepositState {
    /// A settlement is committing; later duplicates wait here.
    Committing {
        outcome: Settlement,
        waiters: Vec<Waiter>,
    },
    Final(DepositStatus),
}

/// How many settled deposits an actor remembers beyond its in-flight ones.
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
        let store = self.shared.store.clone();
        let op = SettleDeposit {
            deposit_id: req.deposit_id.clone(),
            user_id: self.user,
            amount: req.amount,
            outcome: req.outcome,
            now: now_ms(),
        };
        let id = req.deposit_id.clone();
        ctx.spawn(
            async move {
                let result = writer.commit(op).await;
                // The deposit was final already: answer from what is stored now.
                let now_stored = match result {
                    Ok(SettleResult::NotProcessing) => {
                        Some(store.deposit(&id).await.and_then(|d| {
                            d.map(|d| d.status)
                                .ok_or_else(|| StoreError::Corrupt("the deposit vanished".into()))
                        }))
                    }
                    _ => None,
                };
                (result, now_stored)
            }
            .into_actor(self)
            .map(move |(result, now_stored), act, _| {
                act.finish(req.deposit_id, req.amount, result, now_stored)
            }),
        );
        Ok(rx)
    }
}

impl WalletActor {
    /// Answers `tx` at once when the deposit's state is known here or was final when the caller
    /// read it (`Some(Ok)`: answered or waiting on the commit under way; `Some(Err)`: refused).
    /// `None`: the settlement must be committed, and `tx` is its first waiter.
    fn known_answer(&mut self, req: &SettleRequest, tx: Waiter) -> Option<Result<(), SettleError>> {
        let wanted = req.outcome.status();
        match self.deposits.get_mut(&req.deposit_id) {
            Some(DepositState::Final(s)) if *s == wanted => {
                let _ = tx.send(Ok(SettleOutcome::Duplicate));
                return Some(Ok(()));
            }
            Some(DepositState::Final(s)) => return Some(Err(SettleError::Contradicts(s.as_str()))),
            Some(DepositState::Committing { outcome, waiters }) if *outcome == req.outcome => {
                waiters.push(tx);
                return Some(Ok(()));
            }
            Some(DepositState::Committing { outcome, .. }) => {
                return Some(Err(SettleError::Contradicts(outcome.status().as_str())))
            }
            None => {}
        }
        match req.stored_status {
            DepositStatus::Processing => {
                let committing = DepositState::Committing {
                    outcome: req.outcome,
                    waiters: vec![tx],
                };
                self.deposits.insert(req.deposit_id.clone(), committing);
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
        if self.deposits.len() > REMEMBER_FINAL + self.in_flight {
            self.deposits
                .retain(|_, s| matches!(s, DepositState::Committing { .. }));
        }
    }

    /// Answers everybody waiting on `deposit`'s commit. `now_stored` is the deposit's status
    /// re-read from the database when the commit found it no longer processing.
    fn finish(
        &mut self,
        deposit: DepositId,
        amount: Amount,
        result: Result<SettleResult, WriteError>,
        now_stored: Option<Result<DepositStatus, StoreError>>,
    ) {
        self.in_flight -= 1;
        let Some(DepositState::Committing { outcome, waiters }) = self.deposits.remove(&deposit)
        else {
            unreachable!("a committing deposit stays committing until its commit answers");
        };
        let answer = self.decide(&deposit, amount, outcome, result, now_stored);
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

    /// What a settlement's commit means, remembering the deposit's final state.
    fn decide(
        &mut self,
        deposit: &DepositId,
        amount: Amount,
        outcome: Settlement,
        result: Result<SettleResult, WriteError>,
        now_stored: Option<Result<DepositStatus, StoreError>>,
    ) -> Result<SettleOutcome, SettleError> {
        match (result, now_stored) {
            (Ok(SettleResult::Applied(balance)), _) => {
                if let Some(balance) = balance {
                    self.funds.observe(balance);
                    metrics::counter!("onramp_credits_total").increment(1);
                    metrics::counter!("onramp_credited_paise_total")
                        .increment(amount.paise() as u64);
                }
                self.deposits
                    .insert(deposit.clone(), DepositState::Final(outcome.status()));
                Ok(SettleOutcome::Applied)
            }
            // The database had it final already (our caller read the row before an earlier
            // settlement committed): answer from what is stored now.
            (Ok(_), Some(Ok(stored))) if stored != DepositStatus::Processing => {
                self.deposits
                    .insert(deposit.clone(), DepositState::Final(stored));
                if stored == outcome.status() {
                    Ok(SettleOutcome::Duplicate)
                } else {
                    Err(SettleError::Contradicts(stored.as_str()))
                }
            }
            (Ok(_), Some(Err(e))) => Err(SettleError::Reread(Arc::new(e))),
            // Not processing, and the row read back says processing: it changed under us.
            (Ok(_), _) => Err(SettleError::Reread(Arc::new(StoreError::Corrupt(
                "a settlement found the deposit not processing, then processing".into(),
            )))),
            (Err(e), _) => {
                if e.may_have_landed() {
                    // The credit may have landed: read the balance afresh before answering it.
                    self.funds.forget();
                }
                Err(SettleError::Storage(e))
            }
        }
    }
}

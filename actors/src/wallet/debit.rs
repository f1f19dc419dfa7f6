//! Money out of a wallet: transfers and withdrawals. The wallet reserves the amount against its
//! available balance or refuses at once, hands the change to the DB writer, and turns the
//! reservation into its committed balance when the commit answers. Copies of a keyed request
//! that arrive while the first commits wait for its answer instead of reserving again.

use super::actor::WalletActor;
use super::DebitError;
use crate::funds::{Refusal, Reservation};
use crate::writer::WriteError;
use actix::prelude::*;
use onramp_store::domain::{Amount, UserId};
use onramp_store::{Balance, Change, NewTransfer, NewWithdrawal, TransferResult, WithdrawalResult};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::oneshot;

pub(super) type Answer<C> = Result<<C as Change>::Answer, DebitError>;
pub(super) type Ticket<C> = Result<oneshot::Receiver<Answer<C>>, Refusal>;
type Copies<C> = HashMap<String, Vec<oneshot::Sender<Answer<C>>>>;

/// The keys of the debits committing now, by kind (each kind's keys are its own), with the
/// copies waiting for each.
#[derive(Default)]
pub(super) struct Keyed {
    transfers: Copies<NewTransfer>,
    withdrawals: Copies<NewWithdrawal>,
}

/// A change that takes money out of the wallet.
pub(super) trait Debiting: Change {
    fn amount(&self) -> Amount;
    fn idempotency_key(&self) -> Option<&str>;
    /// The user wallet it credits, if any (a transfer's recipient): whether that credit landed is
    /// not known either after a commit of unknown outcome.
    fn credits(&self) -> Option<UserId>;
    /// The wallet's balance after it, when it was applied; `None` when its key was taken.
    fn after(answer: &Self::Answer) -> Option<Balance>;
    /// What a copy of a keyed request is answered when the first was applied.
    fn key_taken() -> Self::Answer;
    /// Counts one applied.
    fn count(amount: Amount);
    fn copies(keyed: &mut Keyed) -> &mut Copies<Self>;
}

impl Debiting for NewTransfer {
    fn amount(&self) -> Amount {
        self.amount
    }
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
    fn credits(&self) -> Option<UserId> {
        Some(self.to)
    }
    fn after(answer: &TransferResult) -> Option<Balance> {
        match answer {
            TransferResult::Applied { from, .. } => Some(*from),
            TransferResult::KeyTaken => None,
        }
    }
    fn key_taken() -> TransferResult {
        TransferResult::KeyTaken
    }
    fn count(amount: Amount) {
        metrics::counter!("onramp_transfers_total").increment(1);
        metrics::counter!("onramp_transferred_paise_total").increment(amount.paise() as u64);
    }
    fn copies(keyed: &mut Keyed) -> &mut Copies<Self> {
        &mut keyed.transfers
    }
}

impl Debiting for NewWithdrawal {
    fn amount(&self) -> Amount {
        self.amount
    }
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
    fn credits(&self) -> Option<UserId> {
        None
    }
    fn after(answer: &WithdrawalResult) -> Option<Balance> {
        match answer {
            WithdrawalResult::Applied(balance) => Some(*balance),
            WithdrawalResult::KeyTaken => None,
        }
    }
    fn key_taken() -> WithdrawalResult {
        WithdrawalResult::KeyTaken
    }
    fn count(amount: Amount) {
        metrics::counter!("onramp_withdrawals_total").increment(1);
        metrics::counter!("onramp_withdrawn_paise_total").increment(amount.paise() as u64);
    }
    fn copies(keyed: &mut Keyed) -> &mut Copies<Self> {
        &mut keyed.withdrawals
    }
}

/// Money out of this wallet: reserved now (or refused), answered once committed.
#[derive(Clone)]
pub(super) struct Debit<C>(pub C);

impl<C: Debiting> Message for Debit<C> {
    type Result = Ticket<C>;
}

impl<C: Debiting> Handler<Debit<C>> for WalletActor {
    type Result = Ticket<C>;

    #[tracing::instrument(level = "trace", name = "wallet.debit", skip_all, fields(user = %self.user))]
    fn handle(&mut self, Debit(change): Debit<C>, ctx: &mut Self::Context) -> Ticket<C> {
        self.last_used = Instant::now();
        let (tx, rx) = oneshot::channel();
        let key = change.idempotency_key().map(str::to_owned);
        if let Some(copies) = key
            .as_ref()
            .and_then(|k| C::copies(&mut self.keyed).get_mut(k))
        {
            // The same request is committing: its key will be taken, and the caller answers
            // as the first did.
            copies.push(tx);
            return Ok(rx);
        }
        let reservation = self.funds.reserve(change.amount())?;
        self.in_flight += 1;
        if let Some(k) = &key {
            C::copies(&mut self.keyed).insert(k.clone(), Vec::new());
        }
        let writer = self.shared.writer.clone();
        let lease = self.lease.clone();
        let credits = change.credits();
        ctx.spawn(
            async move { writer.commit_under(change, lease).await }
                .into_actor(self)
                .map(move |result, act, _| {
                    act.in_flight -= 1;
                    let answer = act.end_debit::<C>(reservation, credits, result);
                    let copies = key.and_then(|k| C::copies(&mut act.keyed).remove(&k));
                    for copy in copies.unwrap_or_default() {
                        let _ = copy.send(match &answer {
                            Ok(_) => Ok(C::key_taken()),
                            Err(e) => Err(e.clone()),
                        });
                    }
                    let _ = tx.send(answer);
                }),
        );
        Ok(rx)
    }
}

impl WalletActor {
    /// Ends a debit's reservation as its commit answered.
    fn end_debit<C: Debiting>(
        &mut self,
        reservation: Reservation,
        credits: Option<UserId>,
        result: Result<C::Answer, WriteError>,
    ) -> Answer<C> {
        match result {
            Ok(answer) => {
                match C::after(&answer) {
                    Some(after) => {
                        C::count(Amount::from_stored(reservation.paise()));
                        self.funds.commit(reservation, after);
                    }
                    // A replay of a request committed in an earlier batch: nothing moved now,
                    // and whoever it credited heard of it when it committed.
                    None => self.funds.release(reservation),
                }
                Ok(answer)
            }
            Err(e) if e.may_have_landed() => {
                // Whether the money moved is not known: this wallet and the one credited read
                // their balance afresh before they answer one again. The credited one is told
                // before the caller hears, so a read that follows the answer finds it forgotten.
                self.funds.release_unsure(reservation);
                if let Some(user) = credits {
                    self.shared.forget_balance(user);
                }
                Err(DebitError::Storage(e))
            }
            Err(e) => {
                self.funds.release(reservation);
                Err(DebitError::Storage(e))
            }
        }
    }
}

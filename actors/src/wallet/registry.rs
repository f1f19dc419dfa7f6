//! [`Wallets`]: the registry of wallet actors, and the calls the app makes on a user's wallet.

use super::actor::{Forget, GetBalance, Loaded, Observe, Reading, WalletActor};
use super::debit::{Debit, Debiting};
use super::settle::Settle;
use super::{DebitError, SettleError, SettleOutcome, SettleRequest, WalletError};
use crate::funds::Refusal;
use crate::writer::DbWriter;
use actix::dev::ToEnvelope;
use actix::prelude::*;
use dashmap::DashMap;
use onramp_store::domain::UserId;
use onramp_store::{Balance, NewTransfer, NewWithdrawal, Store, TransferResult, WithdrawalResult};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many times a call is made again: after the user's actor stopped between its look-up and
/// the call (an idle actor stops, and the next call starts a fresh one), or after a balance
/// read was overtaken by a commit of unknown outcome. Neither happens while the database is
/// healthy and the user is busy, so a few tries are plenty.
const ATTEMPTS: usize = 3;

pub(super) struct Shared {
    pub map: DashMap<UserId, (u64, Addr<WalletActor>)>,
    arbiters: Vec<ArbiterHandle>,
    pub store: Arc<dyn Store>,
    pub writer: DbWriter,
    pub idle: Duration,
    pub alive: AtomicUsize,
    next_generation: AtomicU64,
}

impl Shared {
    /// Makes `user`'s actor, if one is running, read its balance afresh before it answers one
    /// again. Queued at once (not awaited), so it is ahead of anything sent to that actor after
    /// this returns; an actor that is not running reads its balance when it starts anyway.
    pub fn forget_balance(&self, user: UserId) {
        if let Some(addr) = self.map.get(&user).map(|e| e.1.clone()) {
            addr.do_send(Forget);
        }
    }
}

/// The registry of wallet actors; cheap to clone.
#[derive(Clone)]
pub struct Wallets {
    shared: Arc<Shared>,
}

impl Wallets {
    /// `arbiters` threads host the actors; an actor idle for `idle` stops.
    pub fn new(store: Arc<dyn Store>, writer: DbWriter, idle: Duration, arbiters: usize) -> Self {
        let arbiters = (0..arbiters.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        Wallets {
            shared: Arc::new(Shared {
                map: DashMap::new(),
                arbiters,
                store,
                writer,
                idle,
                alive: AtomicUsize::new(0),
                next_generation: AtomicU64::new(1),
            }),
        }
    }

    fn actor(&self, user: UserId) -> Addr<WalletActor> {
        if let Some(entry) = self.shared.map.get(&user) {
            return entry.1.clone();
        }
        let shared = &self.shared;
        shared
            .map
            .entry(user)
            .or_insert_with(|| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                user.hash(&mut h);
                let arbiter = &shared.arbiters[h.finish() as usize % shared.arbiters.len()];
                let generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
                let actor = WalletActor::new(user, shared.clone(), generation);
                (
                    generation,
                    WalletActor::start_in_arbiter(arbiter, |_| actor),
                )
            })
            .1
            .clone()
    }

    /// Sends `msg` to `user`'s actor and waits for its answer. An actor that stopped before it
    /// took the message is dropped from the registry and the message sent to a fresh one.
    async fn ask<M>(&self, user: UserId, msg: M) -> Result<M::Result, WalletError>
    where
        M: Message + Clone + Send + 'static,
        M::Result: Send,
        WalletActor: Handler<M>,
        <WalletActor as Actor>::Context: ToEnvelope<WalletActor, M>,
    {
        for _ in 0..ATTEMPTS {
            let addr = self.actor(user);
            match addr.send(msg.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(_) => {
                    self.shared.map.remove_if(&user, |_, (_, a)| *a == addr);
                }
            }
        }
        Err(WalletError::Unavailable)
    }

    /// The user's committed balance in paise: from the actor's memory, or loaded from the
    /// database the first time (and after a commit of unknown outcome).
    pub async fn balance(&self, user: UserId) -> Result<i64, WalletError> {
        let mut reading = self.ask(user, GetBalance).await?;
        for _ in 0..ATTEMPTS {
            match reading {
                Reading::Known(paise) => return Ok(paise),
                Reading::Load { epoch } => {
                    let balance = self.shared.store.balance(user).await?;
                    reading = self.ask(user, Loaded { balance, epoch }).await?;
                }
            }
        }
        match reading {
            Reading::Known(paise) => Ok(paise),
            // Each read was overtaken by another commit of unknown outcome.
            Reading::Load { .. } => Err(WalletError::Unavailable),
        }
    }

    /// Settles a deposit through its owner's actor; answers once the result is durable.
    pub async fn settle(&self, req: SettleRequest) -> Result<SettleOutcome, SettleError> {
        let ticket = self.ask(req.user_id, Settle(req)).await??;
        ticket.await.map_err(|_| SettleError::Unavailable)?
    }

    /// Moves money from `transfer.from` to `transfer.to`: the sender's actor reserves it (or
    /// refuses at once), the DB writer commits it, and the recipient's actor learns its new
    /// balance, all before this answers. A failed commit releases the reservation.
    pub async fn transfer(&self, transfer: NewTransfer) -> Result<TransferResult, DebitError> {
        let to = transfer.to;
        let answer = self.debit(transfer.from, transfer).await?;
        if let TransferResult::Applied { to: received, .. } = answer {
            self.tell(to, received).await;
        }
        Ok(answer)
    }

    /// Takes a withdrawal's amount out of its user's wallet for the bank's payout: the actor
    /// reserves it (or refuses at once) and the DB writer commits the debit to payouts in flight
    /// before this answers.
    pub async fn withdraw(
        &self,
        withdrawal: NewWithdrawal,
    ) -> Result<WithdrawalResult, DebitError> {
        self.debit(withdrawal.user_id, withdrawal).await
    }

    /// Money out of `from`'s wallet, reserved by its actor (loaded first when it must be).
    async fn debit<C: Debiting>(&self, from: UserId, change: C) -> Result<C::Answer, DebitError> {
        for _ in 0..ATTEMPTS {
            let ticket = match self.ask(from, Debit(change.clone())).await? {
                Ok(ticket) => ticket,
                Err(Refusal::Insufficient { available }) => {
                    return Err(DebitError::InsufficientFunds { available })
                }
                Err(Refusal::NotLoaded) => {
                    self.balance(from).await?;
                    continue;
                }
            };
            return ticket.await.map_err(|_| DebitError::Unavailable)?;
        }
        Err(DebitError::Unavailable)
    }

    /// Tells `user`'s actor a committed balance. If the actor is gone, the next one loads the
    /// balance from the database, which has it already.
    async fn tell(&self, user: UserId, balance: Balance) {
        // Nothing to do when it fails: a fresh actor reads the database.
        let _ = self.ask(user, Observe(balance)).await;
    }

    /// Wallet actors alive now.
    pub fn alive(&self) -> usize {
        self.shared.alive.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }
}

//! [`Wallets`]: the registry of wallet actors, and the calls the app makes on a user's wallet.
//! Every call goes where the wallet is served ([`Ownership`]): to this process's actor, or to
//! the owning process through the [`Transport`], which answers it the same way ([`Wallets::serve`]).

use super::actor::{Forget, GetBalance, Loaded, Observe, Reading, WalletActor};
use super::call::{CallError, Transport, Undelivered, WalletCall, WalletReply};
use super::debit::{Debit, Debiting};
use super::settle::Settle;
use super::{DebitError, SettleError, SettleOutcome, SettleRequest, WalletError};
use crate::funds::Refusal;
use crate::ownership::{Lease, Ownership, Place};
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

/// How long telling a wallet's owner a balance may hold up the answer of the transfer that made
/// it: well inside the 5 s another process waits for that answer.
const TELL_WITHIN: Duration = Duration::from_secs(2);

/// A running actor in the registry.
pub(super) struct Entry {
    pub generation: u64,
    /// The epoch of the lease it was started under (0 alone): an actor of an older lease knows
    /// nothing of what the shard's owners did since, and is replaced.
    pub epoch: i64,
    pub addr: Addr<WalletActor>,
}

pub(super) struct Shared {
    pub map: DashMap<UserId, Entry>,
    arbiters: Vec<ArbiterHandle>,
    pub store: Arc<dyn Store>,
    pub writer: DbWriter,
    pub idle: Duration,
    pub alive: AtomicUsize,
    next_generation: AtomicU64,
    ownership: Ownership,
    transport: Option<Arc<dyn Transport>>,
}

impl Shared {
    /// Makes `user`'s actor, if one is running, read its balance afresh before it answers one
    /// again. Queued at once (not awaited), so it is ahead of anything sent to that actor after
    /// this returns; an actor that is not running reads its balance when it starts anyway.
    pub fn forget_balance(&self, user: UserId) {
        if let Some(addr) = self.map.get(&user).map(|e| e.addr.clone()) {
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
    /// `arbiters` threads host the actors; an actor idle for `idle` stops. One process owning
    /// every wallet.
    pub fn new(store: Arc<dyn Store>, writer: DbWriter, idle: Duration, arbiters: usize) -> Self {
        Self::owned(store, writer, idle, arbiters, Ownership::solo(), None)
    }

    /// Wallets of a process among several: those `ownership` places elsewhere are called
    /// through `transport`.
    pub fn owned(
        store: Arc<dyn Store>,
        writer: DbWriter,
        idle: Duration,
        arbiters: usize,
        ownership: Ownership,
        transport: Option<Arc<dyn Transport>>,
    ) -> Self {
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
                ownership,
                transport,
            }),
        }
    }

    fn actor(&self, user: UserId, lease: Option<&Lease>) -> Addr<WalletActor> {
        let epoch = lease.map_or(0, |l| l.epoch);
        if let Some(entry) = self.shared.map.get(&user).filter(|e| e.epoch >= epoch) {
            return entry.addr.clone();
        }
        let shared = &self.shared;
        let start = || {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            user.hash(&mut h);
            let arbiter = &shared.arbiters[h.finish() as usize % shared.arbiters.len()];
            let generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
            let actor = WalletActor::new(user, shared.clone(), generation, lease.cloned());
            Entry {
                generation,
                epoch,
                addr: WalletActor::start_in_arbiter(arbiter, |_| actor),
            }
        };
        let mut entry = shared.map.entry(user).or_insert_with(start);
        if entry.epoch < epoch {
            // Started under an older lease of the shard: forgotten (it stops when idle). One
            // of a newer lease (this call's lease was lost and taken again meanwhile) stays: it
            // decides for the wallet now, under its own lease.
            *entry = start();
        }
        entry.addr.clone()
    }

    /// Sends `msg` to `user`'s actor and waits for its answer. An actor that stopped before it
    /// took the message is dropped from the registry and the message sent to a fresh one.
    async fn ask<M>(
        &self,
        user: UserId,
        lease: Option<&Lease>,
        msg: M,
    ) -> Result<M::Result, WalletError>
    where
        M: Message + Clone + Send + 'static,
        M::Result: Send,
        WalletActor: Handler<M>,
        <WalletActor as Actor>::Context: ToEnvelope<WalletActor, M>,
    {
        for _ in 0..ATTEMPTS {
            let addr = self.actor(user, lease);
            match addr.send(msg.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(_) => {
                    self.shared.map.remove_if(&user, |_, e| e.addr == addr);
                }
            }
        }
        Err(WalletError::Unavailable)
    }

    /// The user's committed balance in paise: from the owning actor's memory, or loaded from
    /// the database the first time (and after a commit of unknown outcome).
    pub async fn balance(&self, user: UserId) -> Result<i64, WalletError> {
        match self.call(WalletCall::Balance { user }).await? {
            WalletReply::Balance(paise) => Ok(paise),
            other => Err(CallError::garbled(&other).into()),
        }
    }

    /// Settles a deposit or a payout through its owner's actor; answers once the result is
    /// durable.
    pub async fn settle(&self, req: SettleRequest) -> Result<SettleOutcome, SettleError> {
        match self.call(WalletCall::Settle(req)).await? {
            WalletReply::Settled(outcome) => Ok(outcome),
            other => Err(CallError::garbled(&other).into()),
        }
    }

    /// Moves money from `transfer.from` to `transfer.to`: the sender's actor reserves it (or
    /// refuses at once), the DB writer commits it, and the recipient's actor learns its new
    /// balance, all before this answers. A failed commit releases the reservation.
    pub async fn transfer(&self, transfer: NewTransfer) -> Result<TransferResult, DebitError> {
        match self.call(WalletCall::Transfer(transfer)).await? {
            WalletReply::Transferred(result) => Ok(result),
            other => Err(CallError::garbled(&other).into()),
        }
    }

    /// Takes a withdrawal's amount out of its user's wallet for the bank's payout: the actor
    /// reserves it (or refuses at once) and the DB writer commits the debit to payouts in flight
    /// before this answers.
    pub async fn withdraw(
        &self,
        withdrawal: NewWithdrawal,
    ) -> Result<WithdrawalResult, DebitError> {
        match self.call(WalletCall::Withdraw(withdrawal)).await? {
            WalletReply::Withdrawn(result) => Ok(result),
            other => Err(CallError::garbled(&other).into()),
        }
    }

    /// Answers `call` where its wallet is served: here, or at its owner, looked up afresh each
    /// time a process answers that it owns the wallet no longer. `Unavailable` when no process
    /// took the wallet's shard within a little more than a lease.
    pub async fn call(&self, call: WalletCall) -> Result<WalletReply, CallError> {
        let user = call.user();
        let ownership = &self.shared.ownership;
        // A hand-over under way bounces a call between the shard's old owner (leaving) and the
        // database (which names it until it lets go): a little more than a lease at most.
        let deadline = std::time::Instant::now() + ownership.patience();
        for attempt in 0.. {
            if attempt > 0 {
                if std::time::Instant::now() > deadline {
                    tracing::warn!(%user, attempt, "no process took the call on this wallet in time");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let place = if call.only_tells() {
                match ownership.place_owned(user).await {
                    Some(place) => place,
                    None => return Ok(WalletReply::Done),
                }
            } else {
                match ownership.place(user).await {
                    Some(place) => place,
                    None => {
                        tracing::warn!(%user, "no process took this wallet's shard in time");
                        return Err(CallError::Unavailable);
                    }
                }
            };
            match place {
                Place::Here(guard) => {
                    let lease = guard.as_ref().map(|g| g.lease());
                    match Box::pin(self.here(call.clone(), lease)).await {
                        // Fenced: the shard moved while the call was here; nothing was done.
                        Err(CallError::Moved) => {
                            if let Some(lease) = lease {
                                ownership.fenced(lease);
                            }
                            continue;
                        }
                        answer => return answer,
                    }
                }
                Place::There(url) => {
                    let Some(transport) = &self.shared.transport else {
                        return Err(CallError::Unavailable);
                    };
                    match transport.send(&url, &call).await {
                        Ok(Err(CallError::Moved)) | Err(Undelivered::NotSent) => {
                            ownership.moved(user, &url)
                        }
                        Ok(answer) => return answer,
                        Err(Undelivered::Unknown) if call.moves_money_out() => {
                            if let WalletCall::Transfer(t) = &call {
                                // It may have credited the recipient: read afresh, wherever.
                                let to = t.to;
                                let forget = WalletCall::Forget { user: to };
                                let _ = Box::pin(self.tell_bounded(forget)).await;
                            }
                            return Err(CallError::Storage {
                                message: format!("no answer from the process at {url}"),
                                landed: true,
                            });
                        }
                        // Idempotent: sent again, to whoever owns it now.
                        Err(Undelivered::Unknown) => ownership.moved(user, &url),
                    }
                }
            }
        }
        Err(CallError::Unavailable)
    }

    /// Answers a call forwarded by another process: here if this process owns the wallet, or
    /// [`CallError::Moved`] (nothing done) so the sender looks its owner up again.
    pub async fn serve(&self, call: WalletCall) -> Result<WalletReply, CallError> {
        match self.shared.ownership.place_here(call.user()) {
            Some(guard) => {
                let lease = guard.as_ref().map(|g| g.lease());
                Box::pin(self.here(call, lease)).await
            }
            None => Err(CallError::Moved),
        }
    }

    /// Answers `call` with this process's actor, under `lease`.
    async fn here(
        &self,
        call: WalletCall,
        lease: Option<&Lease>,
    ) -> Result<WalletReply, CallError> {
        match call {
            WalletCall::Balance { user } => {
                Ok(WalletReply::Balance(self.local_balance(user, lease).await?))
            }
            WalletCall::Settle(req) => {
                let user = req.user_id;
                let ticket = self.ask(user, lease, Settle(req)).await??;
                let outcome = ticket.await.map_err(|_| SettleError::Unavailable)??;
                Ok(WalletReply::Settled(outcome))
            }
            WalletCall::Transfer(transfer) => {
                let to = transfer.to;
                let answer = self.debit(transfer.from, lease, transfer).await;
                match &answer {
                    Ok(TransferResult::Applied { to: received, .. }) => {
                        self.tell(to, *received).await
                    }
                    // The recipient's own actor was told to forget by the sender's; one in
                    // another process is told here, before the caller hears.
                    Err(DebitError::Storage(e)) if e.may_have_landed() && !self.serves_here(to) => {
                        let _ = self.call(WalletCall::Forget { user: to }).await;
                    }
                    _ => {}
                }
                Ok(WalletReply::Transferred(answer?))
            }
            WalletCall::Withdraw(withdrawal) => {
                let user = withdrawal.user_id;
                Ok(WalletReply::Withdrawn(
                    self.debit(user, lease, withdrawal).await?,
                ))
            }
            // Told only to an actor that runs: one that starts later reads the database, which
            // has the commit told of (an actor started on a told balance could believe more
            // than there is, if a debit committed after it elsewhere). For the same reason a
            // running actor that knows no balance yet sets the tell aside (`Funds::told`).
            WalletCall::Observe { user, balance } => {
                if let Some(addr) = self.running(user, lease) {
                    let _ = addr.send(Observe(balance)).await;
                }
                Ok(WalletReply::Done)
            }
            WalletCall::Forget { user } => {
                if let Some(addr) = self.running(user, lease) {
                    let _ = addr.send(Forget).await;
                }
                Ok(WalletReply::Done)
            }
        }
    }

    /// Whether `user`'s wallet is served by this process (alone, every one is).
    fn serves_here(&self, user: UserId) -> bool {
        self.shared.ownership.serves(user)
    }

    /// `user`'s actor, if one runs under `lease`'s epoch (or a newer one).
    fn running(&self, user: UserId, lease: Option<&Lease>) -> Option<Addr<WalletActor>> {
        let epoch = lease.map_or(0, |l| l.epoch);
        self.shared
            .map
            .get(&user)
            .filter(|e| e.epoch >= epoch)
            .map(|e| e.addr.clone())
    }

    /// A call that only tells (a balance, or to forget one), given at most [`TELL_WITHIN`]:
    /// an owner that cannot be told in that time is paused or gone, and loses the shard (its
    /// next owner reads the database) before it could answer from its memory again.
    async fn tell_bounded(&self, call: WalletCall) -> Result<WalletReply, CallError> {
        match tokio::time::timeout(TELL_WITHIN, Box::pin(self.call(call))).await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!("a wallet's owner could not be told in time");
                Err(CallError::Unavailable)
            }
        }
    }

    async fn local_balance(&self, user: UserId, lease: Option<&Lease>) -> Result<i64, WalletError> {
        let mut reading = self.ask(user, lease, GetBalance).await?;
        for _ in 0..ATTEMPTS {
            match reading {
                Reading::Known(paise) => return Ok(paise),
                Reading::Load { epoch } => {
                    let balance = self.shared.store.balance(user).await?;
                    reading = self.ask(user, lease, Loaded { balance, epoch }).await?;
                }
            }
        }
        match reading {
            Reading::Known(paise) => Ok(paise),
            // Each read was overtaken by another commit of unknown outcome.
            Reading::Load { .. } => Err(WalletError::Unavailable),
        }
    }

    /// Money out of `from`'s wallet, reserved by its actor (loaded first when it must be).
    async fn debit<C: Debiting>(
        &self,
        from: UserId,
        lease: Option<&Lease>,
        change: C,
    ) -> Result<C::Answer, DebitError> {
        for _ in 0..ATTEMPTS {
            let ticket = match self.ask(from, lease, Debit(change.clone())).await? {
                Ok(ticket) => ticket,
                Err(Refusal::Insufficient { available }) => {
                    return Err(DebitError::InsufficientFunds { available })
                }
                Err(Refusal::NotLoaded) => {
                    self.local_balance(from, lease).await?;
                    continue;
                }
            };
            return ticket.await.map_err(|_| DebitError::Unavailable)?;
        }
        Err(DebitError::Unavailable)
    }

    /// Tells `user`'s actor, wherever it runs, a committed balance. If the actor is gone, the
    /// next one loads the balance from the database, which has it already.
    async fn tell(&self, user: UserId, balance: Balance) {
        // Nothing to do when it fails: a fresh actor reads the database.
        let _ = self
            .tell_bounded(WalletCall::Observe { user, balance })
            .await;
    }

    /// Who owns which wallets, as this process knows it.
    pub fn ownership(&self) -> &Ownership {
        &self.shared.ownership
    }

    /// Wallet actors alive now.
    pub fn alive(&self) -> usize {
        self.shared.alive.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }
}

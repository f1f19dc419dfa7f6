//! One [`WalletActor`] per user serializes that user's balance changes and answers balance
//! reads from memory.
//!
//! A settlement is checked against the deposit's state, queued to the DB writer and answered
//! later: the actor does not wait for one commit before taking the next settlement, so many
//! credits to one hot wallet ride in the same group commit. The balance it reports is the
//! committed one only: each credit's commit answers the wallet's balance after it (with its
//! ledger entry's id), and a failed commit leaves the memory as it was. An actor starts without
//! reading the database; the first balance read loads the committed balance, and of a loaded
//! balance and a committed credit the one with the later ledger entry wins. Duplicate
//! settlements that arrive while the first is still committing wait for the same commit.
//!
//! A transfer is decided by the sender's actor: it reserves the amount against its available
//! balance ([`crate::funds`]) or refuses at once, then hands the transfer to the DB writer,
//! which commits the debit and the credit in one ledger entry, many transfers per group commit.
//! The commit's answer turns the reservation into the committed balance, and the recipient's
//! actor is told its new balance before the caller hears of success. No database row is locked
//! for it and no two actors wait on each other.
//!
//! [`Wallets`] is the registry: actors start on demand (spread over a few arbiters), stop when
//! idle, and are reloaded from the database when needed.

use crate::funds::{Funds, Refusal, Reservation};
use crate::writer::{DbWriter, WriteError};
use actix::prelude::*;
use dashmap::DashMap;
use onramp_store::domain::{now_ms, Amount, DepositId, DepositStatus, Settlement, UserId};
use onramp_store::{
    Balance, NewTransfer, SettleDeposit, SettleResult, Store, StoreError, TransferResult,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// This settlement moved the deposit to its final state (and credited it on success).
    Applied,
    /// The deposit was already in this final state: nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SettleError {
    #[error("the deposit is already {0}")]
    Contradicts(&'static str),
    #[error("the change could not be committed")]
    Storage(#[source] WriteError),
    #[error("the deposit could not be read back after its settlement")]
    Reread(#[source] Arc<StoreError>),
    #[error("the wallet is unavailable")]
    Unavailable,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WalletError {
    #[error("the wallet could not be loaded")]
    Load(#[source] Arc<StoreError>),
    #[error("the wallet is unavailable")]
    Unavailable,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransferError {
    #[error("the balance ({available} paise available) does not cover the amount")]
    InsufficientFunds { available: i64 },
    #[error("the transfer could not be committed")]
    Storage(#[source] WriteError),
    #[error("the wallet could not be loaded")]
    Load(#[source] Arc<StoreError>),
    #[error("the wallet is unavailable")]
    Unavailable,
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

enum DepositState {
    /// A settlement is committing; later duplicates wait here.
    Committing {
        outcome: Settlement,
        waiters: Vec<Waiter>,
    },
    Final(DepositStatus),
}

/// Messages a wallet actor's mailbox holds before senders wait.
const MAILBOX: usize = 1024;

/// How many settled deposits an actor remembers beyond its in-flight ones.
const REMEMBER_FINAL: usize = 4096;

pub struct WalletActor {
    user: UserId,
    /// The committed balance (`None` until a read loads it or a commit tells it) and the
    /// debits reserved against it.
    funds: Funds,
    deposits: HashMap<DepositId, DepositState>,
    in_flight: usize,
    /// Idempotency keys of transfers committing now, with the copies of the same request that
    /// arrived meanwhile: they wait for that commit instead of reserving the money again.
    keyed: HashMap<String, Vec<oneshot::Sender<TransferAnswer>>>,
    last_used: Instant,
    shared: Arc<Shared>,
    generation: u64,
}

struct Shared {
    map: DashMap<UserId, (u64, Addr<WalletActor>)>,
    arbiters: Vec<ArbiterHandle>,
    store: Arc<dyn Store>,
    writer: DbWriter,
    idle: Duration,
    alive: AtomicUsize,
    next_generation: AtomicU64,
}

impl Actor for WalletActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.alive.fetch_add(1, Ordering::Relaxed);
        // A hot wallet takes many settlements at once; `send` still waits past this.
        ctx.set_mailbox_capacity(MAILBOX);
        let every =
            (self.shared.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(every, |act, ctx| {
            if act.in_flight == 0 && act.last_used.elapsed() >= act.shared.idle {
                act.unregister();
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.shared.alive.fetch_sub(1, Ordering::Relaxed);
        self.unregister();
    }
}

impl WalletActor {
    fn unregister(&self) {
        let generation = self.generation;
        self.shared
            .map
            .remove_if(&self.user, |_, (g, _)| *g == generation);
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
        let answer = match (result, now_stored) {
            (Ok(SettleResult::Applied(balance)), _) => {
                if let Some(balance) = balance {
                    self.funds.observe(balance);
                    metrics::counter!("onramp_credits_total").increment(1);
                    metrics::counter!("onramp_credited_paise_total")
                        .increment(amount.paise() as u64);
                }
                self.deposits
                    .insert(deposit, DepositState::Final(outcome.status()));
                Ok(SettleOutcome::Applied)
            }
            // The database had it final already (our caller read the row before an earlier
            // settlement committed): answer from what is stored now.
            (Ok(_), Some(Ok(stored))) if stored != DepositStatus::Processing => {
                self.deposits.insert(deposit, DepositState::Final(stored));
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
            (Err(e), _) => Err(SettleError::Storage(e)),
        };
        let answer = match answer {
            Ok(SettleOutcome::Duplicate) => {
                for w in waiters {
                    let _ = w.send(Ok(SettleOutcome::Duplicate));
                }
                self.forget_some_finals();
                return;
            }
            other => other,
        };
        let mut first = true;
        for w in waiters {
            let _ = w.send(match answer {
                Ok(_) if !first => Ok(SettleOutcome::Duplicate),
                ref other => other.clone(),
            });
            first = false;
        }
        self.forget_some_finals();
    }
}

/// The committed balance in paise if the actor knows it, or the epoch a read of it from the
/// database must carry back ([`Loaded`]).
#[derive(Message)]
#[rtype(result = "Result<i64, u64>")]
struct GetBalance;

impl Handler<GetBalance> for WalletActor {
    type Result = Result<i64, u64>;
    fn handle(&mut self, _: GetBalance, _: &mut Self::Context) -> Result<i64, u64> {
        self.last_used = Instant::now();
        self.funds
            .committed()
            .map(|c| c.paise)
            .ok_or(self.funds.epoch())
    }
}

/// A balance read from the database by a read that started at the epoch given: kept if the
/// actor has not forgotten its balance since and it is newer; the newest known is answered,
/// or `None` when the read was too old and another is needed.
#[derive(Message)]
#[rtype(result = "Option<i64>")]
struct Loaded(Balance, u64);

impl Handler<Loaded> for WalletActor {
    type Result = Option<i64>;
    fn handle(&mut self, Loaded(balance, epoch): Loaded, _: &mut Self::Context) -> Option<i64> {
        self.funds.load(balance, epoch);
        self.funds.committed().map(|c| c.paise)
    }
}

/// Forget the committed balance: something may have committed that this actor was not told
/// (a transfer's copy or replay found its key taken). The next read loads it afresh.
#[derive(Message)]
#[rtype(result = "()")]
struct Reload;

impl Handler<Reload> for WalletActor {
    type Result = ();
    fn handle(&mut self, _: Reload, _: &mut Self::Context) {
        self.funds.forget();
    }
}

/// A balance another wallet's commit answered for this one (a transfer received).
#[derive(Message)]
#[rtype(result = "()")]
struct Observe(Balance);

impl Handler<Observe> for WalletActor {
    type Result = ();
    fn handle(&mut self, Observe(balance): Observe, _: &mut Self::Context) {
        self.last_used = Instant::now();
        self.funds.observe(balance);
    }
}

type TransferAnswer = Result<TransferResult, TransferError>;
type TransferTicket = Result<oneshot::Receiver<TransferAnswer>, Refusal>;

/// A transfer out of this wallet: reserved now (or refused), answered once committed.
#[derive(Message)]
#[rtype(result = "TransferTicket")]
struct Debit(NewTransfer);

impl Handler<Debit> for WalletActor {
    type Result = TransferTicket;

    fn handle(&mut self, Debit(transfer): Debit, ctx: &mut Self::Context) -> TransferTicket {
        self.last_used = Instant::now();
        let (tx, rx) = oneshot::channel();
        let key = transfer.idempotency_key.clone();
        if let Some(copies) = key.as_ref().and_then(|k| self.keyed.get_mut(k)) {
            // The same request is committing: its key will be taken, and the caller answers
            // as the first did.
            copies.push(tx);
            return Ok(rx);
        }
        let reservation = self.funds.reserve(transfer.amount)?;
        self.in_flight += 1;
        if let Some(k) = &key {
            self.keyed.insert(k.clone(), Vec::new());
        }
        let writer = self.shared.writer.clone();
        ctx.spawn(
            async move { writer.transfer(transfer).await }
                .into_actor(self)
                .map(move |result, act, _| {
                    act.in_flight -= 1;
                    let answer = act.settle_debit(reservation, result);
                    for copy in key.and_then(|k| act.keyed.remove(&k)).unwrap_or_default() {
                        let _ = copy.send(match &answer {
                            Ok(_) => Ok(TransferResult::KeyTaken),
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
    /// Ends a transfer's reservation as its commit answered.
    fn settle_debit(
        &mut self,
        reservation: Reservation,
        result: Result<TransferResult, WriteError>,
    ) -> TransferAnswer {
        match result {
            Ok(TransferResult::Applied { from, to }) => {
                metrics::counter!("onramp_transfers_total").increment(1);
                metrics::counter!("onramp_transferred_paise_total")
                    .increment(reservation.paise() as u64);
                self.funds.commit(reservation, from);
                Ok(TransferResult::Applied { from, to })
            }
            // A replay of a transfer committed in an earlier batch: nothing moved now. (After a
            // failed batch the writer answers `Unsure` instead, below.)
            Ok(TransferResult::KeyTaken) => {
                self.funds.release(reservation);
                Ok(TransferResult::KeyTaken)
            }
            Err(e) => {
                self.funds.release_unsure(reservation);
                Err(TransferError::Storage(e))
            }
        }
    }
}

type Ticket = Result<oneshot::Receiver<Result<SettleOutcome, SettleError>>, SettleError>;

#[derive(Message)]
#[rtype(result = "Ticket")]
struct Settle(SettleRequest);

impl Handler<Settle> for WalletActor {
    type Result = Ticket;

    fn handle(&mut self, Settle(req): Settle, ctx: &mut Self::Context) -> Ticket {
        self.last_used = Instant::now();
        let (tx, rx) = oneshot::channel();
        let wanted = req.outcome.status();
        match self.deposits.get_mut(&req.deposit_id) {
            Some(DepositState::Final(s)) if *s == wanted => {
                let _ = tx.send(Ok(SettleOutcome::Duplicate));
                return Ok(rx);
            }
            Some(DepositState::Final(s)) => return Err(SettleError::Contradicts(s.as_str())),
            Some(DepositState::Committing { outcome, waiters }) if *outcome == req.outcome => {
                waiters.push(tx);
                return Ok(rx);
            }
            Some(DepositState::Committing { outcome, .. }) => {
                return Err(SettleError::Contradicts(outcome.status().as_str()))
            }
            None => {}
        }
        match req.stored_status {
            DepositStatus::Processing => {}
            s if s == wanted => {
                let _ = tx.send(Ok(SettleOutcome::Duplicate));
                return Ok(rx);
            }
            s => return Err(SettleError::Contradicts(s.as_str())),
        }
        self.in_flight += 1;
        self.deposits.insert(
            req.deposit_id.clone(),
            DepositState::Committing {
                outcome: req.outcome,
                waiters: vec![tx],
            },
        );
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
                let result = writer.settle(op).await;
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
        self.shared
            .map
            .entry(user)
            .or_insert_with(|| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                user.hash(&mut h);
                let arbiter =
                    &self.shared.arbiters[h.finish() as usize % self.shared.arbiters.len()];
                let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
                let actor = WalletActor {
                    user,
                    funds: Funds::default(),
                    deposits: HashMap::new(),
                    in_flight: 0,
                    keyed: HashMap::new(),
                    last_used: Instant::now(),
                    shared: self.shared.clone(),
                    generation,
                };
                (
                    generation,
                    WalletActor::start_in_arbiter(arbiter, |_| actor),
                )
            })
            .1
            .clone()
    }

    /// Drops a registry entry whose actor has stopped, so the next call starts a fresh one.
    fn forget(&self, user: UserId, addr: &Addr<WalletActor>) {
        self.shared.map.remove_if(&user, |_, (_, a)| a == addr);
    }

    /// The user's committed balance in paise: from the actor's memory, or loaded from the
    /// database the first time.
    pub async fn balance(&self, user: UserId) -> Result<i64, WalletError> {
        for _ in 0..3 {
            let addr = self.actor(user);
            let answer = match addr.send(GetBalance).await {
                Ok(Ok(b)) => return Ok(b),
                Ok(Err(epoch)) => {
                    let loaded = self.shared.store.balance(user).await?;
                    addr.send(Loaded(loaded, epoch)).await
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok(Some(b)) => return Ok(b),
                // The read was overtaken by a commit of unknown outcome: read again.
                Ok(None) => continue,
                Err(_) => self.forget(user, &addr),
            }
        }
        Err(WalletError::Unavailable)
    }

    /// Settles a deposit through its owner's actor; answers once the result is durable.
    pub async fn settle(&self, req: SettleRequest) -> Result<SettleOutcome, SettleError> {
        for _ in 0..3 {
            let addr = self.actor(req.user_id);
            match addr.send(Settle(req.clone())).await {
                Ok(ticket) => return ticket?.await.map_err(|_| SettleError::Unavailable)?,
                Err(_) => self.forget(req.user_id, &addr),
            }
        }
        Err(SettleError::Unavailable)
    }

    /// Moves money from `transfer.from` to `transfer.to`: the sender's actor reserves it (or
    /// refuses at once), the DB writer commits it, and the recipient's actor learns its new
    /// balance, all before this answers. A failed commit releases the reservation.
    pub async fn transfer(&self, transfer: NewTransfer) -> Result<TransferResult, TransferError> {
        let (from, to) = (transfer.from, transfer.to);
        for _ in 0..3 {
            let addr = self.actor(from);
            let ticket = match addr.send(Debit(transfer.clone())).await {
                Ok(ticket) => ticket,
                Err(_) => {
                    self.forget(from, &addr);
                    continue;
                }
            };
            let answer = match ticket {
                Ok(rx) => rx.await.map_err(|_| TransferError::Unavailable)??,
                Err(Refusal::Insufficient { available }) => {
                    return Err(TransferError::InsufficientFunds { available })
                }
                Err(Refusal::NotLoaded) => {
                    self.balance(from).await.map_err(|e| match e {
                        WalletError::Load(e) => TransferError::Load(e),
                        WalletError::Unavailable => TransferError::Unavailable,
                    })?;
                    continue;
                }
            };
            match answer {
                TransferResult::Applied { to: received, .. } => self.tell(to, received).await,
                // A copy or a replay: the transfer it names may have been committed without
                // the recipient's actor hearing of it yet (or at all, after a retried batch).
                TransferResult::KeyTaken => self.reload(to).await,
            }
            return Ok(answer);
        }
        Err(TransferError::Unavailable)
    }

    /// Tells `user`'s actor a committed balance. If the actor is gone, the next one loads the
    /// balance from the database, which has it already.
    async fn tell(&self, user: UserId, balance: Balance) {
        let addr = self.actor(user);
        if addr.send(Observe(balance)).await.is_err() {
            self.forget(user, &addr);
        }
    }

    /// Makes `user`'s actor read its balance afresh before it answers one again.
    async fn reload(&self, user: UserId) {
        if let Some(addr) = self.shared.map.get(&user).map(|e| e.1.clone()) {
            if addr.send(Reload).await.is_err() {
                self.forget(user, &addr);
            }
        }
    }

    /// Wallet actors alive now.
    pub fn alive(&self) -> usize {
        self.shared.alive.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }
}

impl From<StoreError> for WalletError {
    fn from(e: StoreError) -> Self {
        WalletError::Load(Arc::new(e))
    }
}

//! The wallet actor: its memory of the user's money, and balance reads.

use super::debit::Keyed;
use super::registry::Shared;
use super::settle::{Settling, SettlingState};
use crate::funds::Funds;
use actix::prelude::*;
use onramp_store::domain::UserId;
use onramp_store::Balance;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages a wallet actor's mailbox holds before senders wait.
const MAILBOX: usize = 1024;

pub struct WalletActor {
    pub(super) user: UserId,
    /// The committed balance (`None` until a read loads it or a commit tells it) and the
    /// debits reserved against it.
    pub(super) funds: Funds,
    /// Deposits and payouts this wallet settled or is settling.
    pub(super) settling: HashMap<Settling, SettlingState>,
    /// Changes queued to the writer and not yet answered: the actor does not stop while any is.
    pub(super) in_flight: usize,
    /// Idempotency keys of transfers and withdrawals committing now, with the copies of the
    /// same request that arrived meanwhile: they wait for that commit instead of reserving the
    /// money again.
    pub(super) keyed: Keyed,
    pub(super) last_used: Instant,
    pub(super) shared: Arc<Shared>,
    /// Tells this actor from an earlier one of the same user in the registry.
    pub(super) generation: u64,
    /// The lease of the user's shard it serves under, among several processes: its changes
    /// commit only while this process holds it.
    pub(super) lease: Option<crate::ownership::Lease>,
}

impl WalletActor {
    pub(super) fn new(
        user: UserId,
        shared: Arc<Shared>,
        generation: u64,
        lease: Option<crate::ownership::Lease>,
    ) -> Self {
        WalletActor {
            user,
            funds: Funds::default(),
            settling: HashMap::new(),
            in_flight: 0,
            keyed: Keyed::default(),
            last_used: Instant::now(),
            shared,
            generation,
            lease,
        }
    }

    fn unregister(&self) {
        let generation = self.generation;
        self.shared
            .map
            .remove_if(&self.user, |_, entry| entry.generation == generation);
    }
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

/// What a wallet knows of its committed balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// The committed balance, in paise.
    Known(i64),
    /// Not known: read it from the database and hand it back with this epoch ([`Loaded`]).
    Load { epoch: u64 },
}

impl WalletActor {
    fn reading(&self) -> Reading {
        match self.funds.committed() {
            Some(c) => Reading::Known(c.paise),
            None => Reading::Load {
                epoch: self.funds.epoch(),
            },
        }
    }
}

#[derive(Message, Clone)]
#[rtype(result = "Reading")]
pub(super) struct GetBalance;

impl Handler<GetBalance> for WalletActor {
    type Result = MessageResult<GetBalance>;

    #[tracing::instrument(level = "trace", name = "wallet.balance", skip_all, fields(user = %self.user))]
    fn handle(&mut self, _: GetBalance, _: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        MessageResult(self.reading())
    }
}

/// A balance read from the database by a read that started at `epoch`: kept (or the newer
/// balance a commit answered meanwhile) unless the actor forgot its balance since, in which
/// case another read is needed ([`Reading::Load`]).
#[derive(Message, Clone)]
#[rtype(result = "Reading")]
pub(super) struct Loaded {
    pub balance: Balance,
    pub epoch: u64,
}

impl Handler<Loaded> for WalletActor {
    type Result = MessageResult<Loaded>;

    #[tracing::instrument(level = "trace", name = "wallet.loaded", skip_all, fields(user = %self.user))]
    fn handle(&mut self, msg: Loaded, _: &mut Self::Context) -> Self::Result {
        self.funds.load(msg.balance, msg.epoch);
        MessageResult(self.reading())
    }
}

/// Forget the committed balance: a commit of unknown outcome may have changed it (a transfer
/// to this wallet whose connection broke after COMMIT). The next read loads it afresh.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(super) struct Forget;

impl Handler<Forget> for WalletActor {
    type Result = ();

    #[tracing::instrument(level = "debug", name = "wallet.forget", skip_all, fields(user = %self.user))]
    fn handle(&mut self, _: Forget, _: &mut Self::Context) {
        self.funds.forget();
    }
}

/// A balance another wallet's commit answered for this one (a transfer received): counted
/// beside a balance already known, set aside by an actor that knows none (`Funds::told`).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(super) struct Observe(pub Balance);

impl Handler<Observe> for WalletActor {
    type Result = ();

    #[tracing::instrument(level = "trace", name = "wallet.observe", skip_all, fields(user = %self.user))]
    fn handle(&mut self, Observe(balance): Observe, _: &mut Self::Context) {
        self.last_used = Instant::now();
        self.funds.told(balance);
    }
}

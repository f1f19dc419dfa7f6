//! Deposits waiting for the bank, remembered from their creation until they settle, so a
//! webhook need not read the deposit back from the database. Only facts that never change after
//! creation are kept (id, owner, amount, currency); the status is the wallet actor's business,
//! and a webhook for a deposit not remembered here (after a restart, or a late duplicate) reads
//! the database as before.
//!
//! The memory is bounded: at most [`CAPACITY`] deposits (past it, new ones are not remembered
//! and their webhooks read the database), each for at most the reconciliation age plus a margin
//! (swept now and then as deposits are remembered), and every path that settles a deposit
//! forgets it. A stale entry is harmless (it only says "processing"; the wallet actor and the
//! database's guard know better), so dropping one is only a cache miss.
//!
//! A `DashMap` rather than a caching crate: the webhook path reads it once per delivery, and a
//! sharded map read is the cheapest there is.

use dashmap::DashMap;
use onramp_store::domain::{Amount, BankToken, Currency, DepositId, DepositStatus, UserId};
use onramp_store::{Deposit, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PendingDeposit {
    pub id: DepositId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// What a webhook needs to know about the deposit behind a bank token.
#[derive(Debug, Clone)]
pub struct Known {
    pub deposit: PendingDeposit,
    /// The status as last read: `Processing` for a remembered deposit (the wallet actor and
    /// the database's guard settle the truth).
    pub status: DepositStatus,
}

/// Most deposits remembered at once, unless `cache.pending_deposits` says otherwise.
pub const CAPACITY: usize = 200_000;
/// A sweep of expired entries runs once per this many remembered deposits.
const SWEEP_EVERY: u64 = 4096;

pub struct PendingDeposits {
    by_token: DashMap<String, (PendingDeposit, Instant)>,
    capacity: usize,
    time_to_live: Duration,
    remembered: AtomicU64,
}

impl PendingDeposits {
    /// Entries live for `max_age` (the age at which reconciliation ends a deposit) plus ten
    /// minutes.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self::with_capacity(capacity, max_age.saturating_add(Duration::from_secs(600)))
    }

    pub fn with_capacity(capacity: usize, time_to_live: Duration) -> Self {
        PendingDeposits {
            by_token: DashMap::new(),
            capacity,
            time_to_live,
            remembered: AtomicU64::new(0),
        }
    }

    pub fn remember(&self, token: &BankToken, deposit: PendingDeposit) {
        if self.remembered.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        if self.by_token.len() < self.capacity {
            let entry = (deposit, Instant::now());
            self.by_token.insert(token.as_str().to_owned(), entry);
        }
    }

    pub fn forget(&self, token: &BankToken) {
        self.by_token.remove(token.as_str());
    }

    /// Drops the entries older than their time to live.
    pub fn sweep(&self) {
        let ttl = self.time_to_live;
        self.by_token.retain(|_, (_, at)| at.elapsed() < ttl);
    }

    /// Deposits remembered.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The deposit behind `token`, whose event names `reference` as its ref: from memory, else
    /// from the database by the ref (our own id: time-ordered, so its index pages are the
    /// recent, cached ones), comparing the token with the stored one. Only an event whose ref
    /// names no deposit of this token, or a deposit whose create-order went unanswered (no
    /// token stored), looks the token itself up, in an index of random tokens whose pages
    /// stop fitting in memory as the books grow: the deposit holding it, if any, decides
    /// between `404` and `422`.
    pub async fn find(
        &self,
        store: &dyn Store,
        token: &BankToken,
        reference: &str,
    ) -> Result<Option<Known>, StoreError> {
        if let Some(d) = self.by_token.get(token.as_str()) {
            return Ok(Some(Known {
                deposit: d.0.clone(),
                status: DepositStatus::Processing,
            }));
        }
        let named = match DepositId::parse(reference) {
            Ok(id) => store.deposit(&id).await?,
            Err(_) => None,
        };
        match named {
            Some(d) if d.bank_token.as_deref() == Some(token.as_str()) => Ok(Some(Known::from(d))),
            Some(d) if d.bank_token.is_none() => {
                // Unsent: this deposit, unless the token is another deposit's.
                let holder = store.deposit_by_token(token).await?;
                Ok(Some(Known::from(holder.unwrap_or(d))))
            }
            _ => Ok(store.deposit_by_token(token).await?.map(Known::from)),
        }
    }
}

impl From<Deposit> for Known {
    fn from(d: Deposit) -> Self {
        Known {
            status: d.status,
            deposit: PendingDeposit {
                id: d.id,
                user_id: d.user_id,
                amount: d.amount,
                currency: d.currency,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deposit() -> PendingDeposit {
        PendingDeposit {
            id: DepositId::new(),
            user_id: UserId::new(),
            amount: Amount::parse(100, i64::MAX).unwrap(),
            currency: Currency::Inr,
        }
    }

    fn token(i: usize) -> BankToken {
        BankToken::parse(&format!("bank_session_{i}")).unwrap()
    }

    #[test]
    fn the_memory_holds_at_most_its_capacity() {
        let pending = PendingDeposits::with_capacity(100, Duration::from_secs(3600));
        for i in 0..1_000 {
            pending.remember(&token(i), deposit());
        }
        assert!(pending.len() <= 100, "{}", pending.len());
    }

    #[test]
    fn a_deposit_nobody_settles_is_forgotten_after_its_time() {
        let pending = PendingDeposits::with_capacity(100, Duration::from_millis(50));
        pending.remember(&token(1), deposit());
        assert_eq!(pending.len(), 1);
        std::thread::sleep(Duration::from_millis(120));
        pending.sweep();
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn remembering_sweeps_now_and_then() {
        let pending = PendingDeposits::with_capacity(100_000, Duration::from_millis(20));
        for i in 0..10 {
            pending.remember(&token(i), deposit());
        }
        std::thread::sleep(Duration::from_millis(40));
        for i in 10..(10 + SWEEP_EVERY as usize) {
            pending.remember(&token(i), deposit());
        }
        assert!(
            pending.by_token.get("bank_session_1").is_none(),
            "the old ones were swept"
        );
    }

    #[test]
    fn forgetting_removes_at_once() {
        let pending = PendingDeposits::new(CAPACITY, Duration::from_secs(3600));
        pending.remember(&token(1), deposit());
        pending.forget(&token(1));
        assert!(pending.is_empty());
    }
}

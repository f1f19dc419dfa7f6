//! Deposits waiting for the bank, remembered from their creation until they settle, so a
//! webhook need not read the deposit back from the database. Only facts that never change after
//! creation are kept (id, owner, amount, currency); the status is the wallet actor's business,
//! and a webhook for a deposit not remembered here (after a restart, or a late duplicate) reads
//! the database as before.
//!
//! The memory is bounded: at most [`CAPACITY`] deposits, each for at most the reconciliation
//! age plus a margin (a deposit nobody pays is dropped with its order's expiry), and every path
//! that settles a deposit forgets it. A stale entry is harmless (it only says "processing"; the
//! wallet actor and the database's guard know better), so dropping one is only a cache miss.

use moka::sync::Cache;
use onramp_store::domain::{Amount, BankToken, Currency, DepositId, DepositStatus, UserId};
use onramp_store::{Deposit, Store, StoreError};
use std::time::Duration;

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

/// Most deposits remembered at once.
pub const CAPACITY: u64 = 200_000;

pub struct PendingDeposits {
    by_token: Cache<String, PendingDeposit>,
}

impl PendingDeposits {
    /// Entries live for `max_age` (the age at which reconciliation ends a deposit) plus ten
    /// minutes.
    pub fn new(max_age: Duration) -> Self {
        Self::with_capacity(CAPACITY, max_age + Duration::from_secs(600))
    }

    pub fn with_capacity(capacity: u64, time_to_live: Duration) -> Self {
        PendingDeposits {
            by_token: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(time_to_live)
                .build(),
        }
    }

    pub fn remember(&self, token: &BankToken, deposit: PendingDeposit) {
        self.by_token.insert(token.as_str().to_owned(), deposit);
    }

    pub fn forget(&self, token: &BankToken) {
        self.by_token.invalidate(token.as_str());
    }

    /// Deposits remembered (approximate until the cache's pending work runs).
    pub fn len(&self) -> u64 {
        self.by_token.run_pending_tasks();
        self.by_token.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The deposit behind `token`, from memory or else from the database.
    pub async fn find(
        &self,
        store: &dyn Store,
        token: &BankToken,
    ) -> Result<Option<Known>, StoreError> {
        if let Some(d) = self.by_token.get(token.as_str()) {
            return Ok(Some(Known {
                deposit: d,
                status: DepositStatus::Processing,
            }));
        }
        Ok(store
            .deposit_by_token(token)
            .await?
            .map(|d: Deposit| Known {
                status: d.status,
                deposit: PendingDeposit {
                    id: d.id,
                    user_id: d.user_id,
                    amount: d.amount,
                    currency: d.currency,
                },
            }))
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
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn forgetting_removes_at_once() {
        let pending = PendingDeposits::new(Duration::from_secs(3600));
        pending.remember(&token(1), deposit());
        pending.forget(&token(1));
        assert!(pending.is_empty());
    }
}

//! Deposits waiting for the bank, remembered from their creation until they settle, so a
//! webhook need not read the deposit back from the database. Only facts that never change after
//! creation are kept (id, owner, amount, currency); the status is the wallet actor's business,
//! and a webhook for a deposit not remembered here (after a restart, or a late duplicate) reads
//! the database as before.

use dashmap::DashMap;
use onramp_store::domain::{Amount, BankToken, Currency, DepositId, DepositStatus, UserId};
use onramp_store::{Deposit, Store, StoreError};

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

#[derive(Default)]
pub struct PendingDeposits {
    by_token: DashMap<String, PendingDeposit>,
}

impl PendingDeposits {
    pub fn remember(&self, token: &BankToken, deposit: PendingDeposit) {
        self.by_token.insert(token.as_str().to_owned(), deposit);
    }

    pub fn forget(&self, token: &BankToken) {
        self.by_token.remove(token.as_str());
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The deposit behind `token`, from memory or else from the database.
    pub async fn find(
        &self,
        store: &dyn Store,
        token: &BankToken,
    ) -> Result<Option<Known>, StoreError> {
        if let Some(d) = self.by_token.get(token.as_str()) {
            return Ok(Some(Known {
                deposit: d.clone(),
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

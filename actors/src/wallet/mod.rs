//! One [`WalletActor`] per user serializes that user's balance changes and answers balance
//! reads from memory.
//!
//! A settlement is checked against the deposit's state, queued to the DB writer and answered
//! later: the actor does not wait for one commit before taking the next settlement, so many
//! credits to one hot wallet ride in the same group commit ([`settle`]). The balance it reports
//! is the committed one only: each credit's commit answers the wallet's balance after it (with
//! its ledger entry's id), and of two balances the one with the later entry wins. An actor
//! starts without reading the database; the first balance read loads the committed balance.
//!
//! A transfer or a withdrawal is decided by the sender's actor ([`debit`]): it reserves the
//! amount against its available balance ([`crate::funds`]) or refuses at once, then hands the
//! change to the DB writer, which commits the debit (and a transfer's credit) in one ledger
//! entry, many per group commit. A payout's end is settled like a deposit ([`settle`]): its
//! failure returns the amount to the wallet.
//! The commit's answer turns the reservation into the committed balance, and the recipient's
//! actor is told its new balance before the caller hears of success. No database row is locked
//! for it and no two actors wait on each other.
//!
//! Only a commit of unknown outcome (its connection broke after COMMIT was sent) makes a wallet
//! forget its balance: the sender's (a debit that may have landed) and the recipient's (a credit
//! that may have landed). Nothing a user sends can cause one, so no user can keep another's
//! wallet from reading its balance; and a forgotten balance is known again after one read.
//!
//! [`Wallets`] is the registry: actors start on demand (spread over a few arbiters), stop when
//! idle, and are reloaded from the database when needed.

mod actor;
pub mod call;
mod debit;
mod registry;
mod settle;

pub use actor::WalletActor;
pub use call::{CallError, Transport, Undelivered, WalletCall, WalletReply};
pub use registry::Wallets;
pub use settle::{SettleOutcome, SettleRequest, Settling};

use crate::writer::WriteError;
use onramp_store::StoreError;
use std::sync::Arc;

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

/// Why money could not be taken out of a wallet (a transfer or a withdrawal).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DebitError {
    #[error("the balance ({available} paise available) does not cover the amount")]
    InsufficientFunds { available: i64 },
    #[error("the debit could not be committed")]
    Storage(#[source] WriteError),
    #[error("the wallet could not be loaded")]
    Load(#[source] Arc<StoreError>),
    #[error("the wallet is unavailable")]
    Unavailable,
}

impl From<StoreError> for WalletError {
    fn from(e: StoreError) -> Self {
        WalletError::Load(Arc::new(e))
    }
}

impl From<WalletError> for DebitError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::Load(e) => DebitError::Load(e),
            WalletError::Unavailable => DebitError::Unavailable,
        }
    }
}

impl From<WalletError> for SettleError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::Load(e) => SettleError::Reread(e),
            WalletError::Unavailable => SettleError::Unavailable,
        }
    }
}

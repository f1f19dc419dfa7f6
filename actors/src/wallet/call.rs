//! A call on a user's wallet as one process sends it to the wallet's owner, and its answer:
//! plain data (JSON on the wire), so that the owner answers a forwarded call exactly as it
//! answers its own.

use super::{DebitError, SettleError, SettleOutcome, SettleRequest, WalletError};
use crate::writer::WriteError;
use onramp_store::domain::{Status, UserId};
use onramp_store::{Balance, NewTransfer, NewWithdrawal, TransferResult, WithdrawalResult};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalletCall {
    Balance {
        user: UserId,
    },
    Settle(SettleRequest),
    Transfer(NewTransfer),
    Withdraw(NewWithdrawal),
    /// A balance another wallet's commit answered for this one (a transfer received).
    Observe {
        user: UserId,
        balance: Balance,
    },
    /// Read the balance afresh: a commit of unknown outcome may have credited it.
    Forget {
        user: UserId,
    },
}

impl WalletCall {
    /// The user whose wallet answers it.
    pub fn user(&self) -> UserId {
        match self {
            WalletCall::Balance { user }
            | WalletCall::Observe { user, .. }
            | WalletCall::Forget { user } => *user,
            WalletCall::Settle(req) => req.user_id,
            WalletCall::Transfer(t) => t.from,
            WalletCall::Withdraw(w) => w.user_id,
        }
    }

    /// Whether it only tells a wallet's owner something (a balance, or to forget one): nothing
    /// to tell when no process holds the wallet now.
    pub fn only_tells(&self) -> bool {
        matches!(self, WalletCall::Observe { .. } | WalletCall::Forget { .. })
    }

    /// Whether sending it again after an answer that never came could do it twice: money out
    /// of a wallet. Everything else is idempotent (a settlement is applied once by the
    /// deposit's or withdrawal's own state).
    pub fn moves_money_out(&self) -> bool {
        matches!(self, WalletCall::Transfer(_) | WalletCall::Withdraw(_))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalletReply {
    Balance(i64),
    Settled(SettleOutcome),
    Transferred(TransferResult),
    Withdrawn(WithdrawalResult),
    Done,
}

/// Why a call was not answered as asked, in a form that crosses processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum CallError {
    /// The process asked does not own the wallet (any more): nothing was done; ask its owner.
    #[error("this process does not own the wallet")]
    Moved,
    #[error("the balance ({available} paise available) does not cover the amount")]
    Insufficient { available: i64 },
    #[error("it is already {0:?}")]
    Contradicts(Status),
    #[error("the change could not be committed: {message}")]
    Storage {
        message: String,
        /// Whether it may have been committed all the same.
        landed: bool,
    },
    #[error("the wallet could not be loaded: {0}")]
    Load(String),
    #[error("the wallet is unavailable")]
    Unavailable,
    /// A reply that does not fit the call (a process of another build).
    #[error("the owning process answered something else: {0}")]
    Garbled(String),
}

impl CallError {
    fn storage(e: &WriteError) -> CallError {
        match e {
            WriteError::Fenced => CallError::Moved,
            e => CallError::Storage {
                message: e.to_string(),
                landed: e.may_have_landed(),
            },
        }
    }

    /// The writer's error this stands for.
    fn write_error(message: String, landed: bool) -> WriteError {
        if landed {
            WriteError::Remote { message }
        } else {
            WriteError::Stopped
        }
    }

    pub(super) fn garbled(reply: &WalletReply) -> CallError {
        CallError::Garbled(format!("{reply:?}"))
    }
}

impl From<WalletError> for CallError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::Load(e) => CallError::Load(e.to_string()),
            WalletError::Unavailable => CallError::Unavailable,
        }
    }
}

impl From<DebitError> for CallError {
    fn from(e: DebitError) -> Self {
        match e {
            DebitError::InsufficientFunds { available } => CallError::Insufficient { available },
            DebitError::Storage(e) => CallError::storage(&e),
            DebitError::Load(e) => CallError::Load(e.to_string()),
            DebitError::Unavailable => CallError::Unavailable,
        }
    }
}

impl From<SettleError> for CallError {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::Contradicts(s) => {
                CallError::Contradicts(Status::parse(s).unwrap_or(Status::Processing))
            }
            SettleError::Storage(e) => CallError::storage(&e),
            SettleError::Reread(e) => CallError::Load(e.to_string()),
            SettleError::Unavailable => CallError::Unavailable,
        }
    }
}

fn load_error(message: String) -> std::sync::Arc<onramp_store::StoreError> {
    std::sync::Arc::new(onramp_store::StoreError::Corrupt(message))
}

impl From<CallError> for WalletError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Load(m) | CallError::Garbled(m) => WalletError::Load(load_error(m)),
            _ => WalletError::Unavailable,
        }
    }
}

impl From<CallError> for DebitError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Insufficient { available } => DebitError::InsufficientFunds { available },
            CallError::Storage { message, landed } => {
                DebitError::Storage(CallError::write_error(message, landed))
            }
            CallError::Load(m) => DebitError::Load(load_error(m)),
            // Whatever it did is not known.
            CallError::Garbled(message) => {
                DebitError::Storage(CallError::write_error(message, true))
            }
            CallError::Moved | CallError::Contradicts(_) | CallError::Unavailable => {
                DebitError::Unavailable
            }
        }
    }
}

impl From<CallError> for SettleError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Contradicts(s) => SettleError::Contradicts(s.as_str()),
            CallError::Storage { message, landed } => {
                SettleError::Storage(CallError::write_error(message, landed))
            }
            CallError::Load(m) | CallError::Garbled(m) => SettleError::Reread(load_error(m)),
            CallError::Moved | CallError::Insufficient { .. } | CallError::Unavailable => {
                SettleError::Unavailable
            }
        }
    }
}

/// Why a call sent to another process has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// It never reached the process (no connection): nothing was done there.
    NotSent,
    /// It may have reached it (the answer never came): what was done is not known.
    Unknown,
}

/// How calls reach other processes (HTTP, with proof made from `cluster.key`, in the app).
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn send(
        &self,
        url: &str,
        call: &WalletCall,
    ) -> Result<Result<WalletReply, CallError>, Undelivered>;
}

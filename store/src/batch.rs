//! The database-independent half of a group commit: a batch of changes sorted by kind, so that
//! each backend writes every kind with one set-based statement instead of a round trip per
//! change.
//!
//! The kinds are written in a fixed order (accounts, deposits, bank orders, sessions,
//! settlements), not in the order the changes were queued. That is the same thing: the changes
//! in one batch were all queued before any of them committed, so none was made in answer to
//! another (a deposit is settled only once its bank order is stored, a session is touched only
//! once it exists), and two changes to the same row are ordered within their kind.

use super::{
    Balance, DepositInsert, NewAccount, NewDeposit, NewTransfer, OpOutcome, SettleDeposit,
    SettleResult, StoreError, TransferResult, WriteOp,
};
use crate::domain::{DepositId, EmailKey, ProviderSub, UserId};
use std::collections::{HashMap, HashSet};

/// `UpsertAccount`, which backends apply one at a time (a sign-in, not a hot path).
pub(super) struct AccountItem<'a> {
    pub index: usize,
    pub provider: &'static str,
    pub sub: &'a ProviderSub,
    pub email: &'a str,
    /// The email for look-ups, when the provider vouched for it.
    pub email_key: Option<EmailKey>,
    pub name: &'a str,
    pub picture: &'a str,
    pub now: i64,
}

impl<'a> AccountItem<'a> {
    fn of(index: usize, a: &'a NewAccount) -> Self {
        AccountItem {
            index,
            provider: a.provider.as_str(),
            sub: &a.sub,
            email: &a.email,
            email_key: a.email_verified.then(|| EmailKey::of(&a.email)),
            name: &a.name,
            picture: &a.picture,
            now: a.now,
        }
    }
}

pub(super) struct DepositItem<'a> {
    pub index: usize,
    pub id: &'a str,
    pub user_id: String,
    pub amount: i64,
    pub currency: &'static str,
    pub key: Option<&'a str>,
    pub key_cutoff: i64,
    pub now: i64,
    pub first_check_at: i64,
}

impl<'a> DepositItem<'a> {
    fn of(index: usize, d: &'a NewDeposit) -> Self {
        DepositItem {
            index,
            id: d.id.as_str(),
            user_id: d.user_id.to_string(),
            amount: d.amount.paise(),
            currency: d.currency.code(),
            key: d.idempotency_key.as_deref(),
            key_cutoff: d.key_cutoff,
            now: d.now,
            first_check_at: d.first_check_at,
        }
    }
}

/// `ScheduleCheck`: the pending row is `(due_at, deposit_id)`, moved to `next_check_at`.
pub(super) struct CheckItem<'a> {
    pub deposit_id: &'a str,
    pub due_at: i64,
    pub next_check_at: i64,
}

pub(super) struct OrderItem<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub pay_url: &'a str,
    pub now: i64,
}

pub(super) struct NewSession<'a> {
    pub hash: &'a str,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub(super) struct SettleItem<'a> {
    pub index: usize,
    pub deposit_id: &'a str,
    pub user_id: String,
    pub amount: i64,
    /// `success` or `failure`: the deposit's new status.
    pub status: &'static str,
    pub now: i64,
}

impl<'a> SettleItem<'a> {
    fn of(index: usize, s: &'a SettleDeposit) -> Self {
        SettleItem {
            index,
            deposit_id: s.deposit_id.as_str(),
            user_id: s.user_id.to_string(),
            amount: s.amount.paise(),
            status: s.outcome.status().as_str(),
            now: s.now,
        }
    }
}

pub(super) struct TransferItem<'a> {
    pub index: usize,
    pub id: &'a str,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub currency: &'static str,
    pub key: Option<&'a str>,
    pub key_cutoff: i64,
    pub now: i64,
    pub to_name: &'a str,
    pub to_email: &'a str,
}

impl<'a> TransferItem<'a> {
    fn of(index: usize, t: &'a NewTransfer) -> Self {
        TransferItem {
            index,
            id: t.id.as_str(),
            from: t.from.to_string(),
            to: t.to.to_string(),
            amount: t.amount.paise(),
            currency: t.currency.code(),
            key: t.idempotency_key.as_deref(),
            key_cutoff: t.key_cutoff,
            now: t.now,
            to_name: &t.recipient.name,
            to_email: &t.recipient.email,
        }
    }
}

/// What the database decided while writing a batch.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The batch positions of the deposits inserted (not those whose key was taken).
    pub inserted: Vec<usize>,
    /// The batch positions of the settlements applied (the deposit was still processing).
    pub settled: Vec<usize>,
    /// The batch positions of the transfers written (not those whose key was taken).
    pub transferred: Vec<usize>,
    /// The balance after the batch of every user account it changed (one wallet per user:
    /// the app keeps one currency), with the last entry that balance includes.
    pub balances: HashMap<String, Balance>,
}

/// A batch sorted by kind, with the outcome of every change that is known before writing.
pub(super) struct Plan<'a> {
    pub accounts: Vec<AccountItem<'a>>,
    pub deposits: Vec<DepositItem<'a>>,
    pub orders: Vec<OrderItem<'a>>,
    pub new_sessions: Vec<NewSession<'a>>,
    /// `(hash, last_seen_at)`.
    pub touches: Vec<(&'a str, i64)>,
    pub ended_sessions: Vec<&'a str>,
    /// `(now, idle_ms)`.
    pub purges: Vec<(i64, i64)>,
    /// The first settlement of each deposit; a later one in the same batch is answered
    /// [`OpOutcome::NotProcessing`] without being written.
    pub settles: Vec<SettleItem<'a>>,
    pub checks: Vec<CheckItem<'a>>,
    /// `(deposit id, due_at)` of `ForgetPending`.
    pub forgets: Vec<(&'a str, i64)>,
    pub transfers: Vec<TransferItem<'a>>,
    /// One per change, in the batch's order; [`Plan::finish`] fills in the rest.
    outcomes: Vec<OpOutcome>,
}

impl<'a> Plan<'a> {
    pub fn new(ops: &'a [WriteOp]) -> Plan<'a> {
        let mut plan = Plan {
            accounts: Vec::new(),
            deposits: Vec::new(),
            orders: Vec::new(),
            new_sessions: Vec::new(),
            touches: Vec::new(),
            ended_sessions: Vec::new(),
            purges: Vec::new(),
            settles: Vec::new(),
            checks: Vec::new(),
            forgets: Vec::new(),
            transfers: Vec::new(),
            outcomes: vec![OpOutcome::Done; ops.len()],
        };
        let mut settling: HashSet<&DepositId> = HashSet::new();
        for (index, op) in ops.iter().enumerate() {
            plan.add(index, op, &mut settling);
        }
        plan
    }

    /// Sorts change `index` into its kind.
    fn add(&mut self, index: usize, op: &'a WriteOp, settling: &mut HashSet<&'a DepositId>) {
        match op {
            WriteOp::UpsertAccount(a) => self.accounts.push(AccountItem::of(index, a)),
            WriteOp::InsertSession {
                hash,
                user_id,
                created_at,
                expires_at,
            } => self.new_sessions.push(NewSession {
                hash: hash.as_str(),
                user_id: user_id.to_string(),
                created_at: *created_at,
                expires_at: *expires_at,
            }),
            WriteOp::TouchSession { hash, last_seen_at } => {
                self.touches.push((hash.as_str(), *last_seen_at))
            }
            WriteOp::DeleteSession { hash } => self.ended_sessions.push(hash.as_str()),
            WriteOp::PurgeSessions { now, idle_ms } => self.purges.push((*now, *idle_ms)),
            WriteOp::InsertDeposit(d) => self.deposits.push(DepositItem::of(index, d)),
            WriteOp::ScheduleCheck {
                deposit_id,
                due_at,
                next_check_at,
            } => self.checks.push(CheckItem {
                deposit_id: deposit_id.as_str(),
                due_at: *due_at,
                next_check_at: *next_check_at,
            }),
            WriteOp::ForgetPending { deposit_id, due_at } => {
                self.forgets.push((deposit_id.as_str(), *due_at))
            }
            WriteOp::AttachBankOrder {
                id,
                token,
                pay_url,
                now,
            } => self.orders.push(OrderItem {
                id: id.as_str(),
                token: token.as_str(),
                pay_url,
                now: *now,
            }),
            WriteOp::Transfer(t) => self.transfers.push(TransferItem::of(index, t)),
            WriteOp::Settle(s) => {
                // Until the write says otherwise.
                self.outcomes[index] = OpOutcome::Settle(SettleResult::NotProcessing);
                if settling.insert(&s.deposit_id) {
                    self.settles.push(SettleItem::of(index, s));
                }
            }
        }
    }

    /// Whether any deposit gives its idempotency key a chance to be taken over.
    pub fn has_keys(&self) -> bool {
        self.deposits.iter().any(|d| d.key.is_some())
    }

    /// Whether any transfer gives its idempotency key a chance to be taken over.
    pub fn has_transfer_keys(&self) -> bool {
        self.transfers.iter().any(|t| t.key.is_some())
    }

    /// How many statements writing the batch takes, at most (an account takes several).
    pub fn statements(&self) -> usize {
        let kinds = [
            !self.orders.is_empty(),
            !self.new_sessions.is_empty(),
            !self.touches.is_empty(),
            !self.ended_sessions.is_empty(),
            // The ledger statement, for settlements and transfers alike.
            !self.settles.is_empty() || !self.transfers.is_empty(),
            !self.checks.is_empty(),
            !self.forgets.is_empty(),
        ];
        let deposits = if self.deposits.is_empty() {
            0
        } else {
            1 + usize::from(self.has_keys())
        };
        let transfers = if self.transfers.is_empty() {
            0
        } else {
            1 + usize::from(self.has_transfer_keys())
        };
        3 * self.accounts.len()
            + self.purges.len()
            + deposits
            + transfers
            + kinds.iter().filter(|k| **k).count()
    }

    /// Records the user an account change resolved to.
    pub fn set_user(&mut self, index: usize, user: UserId) {
        self.outcomes[index] = OpOutcome::User(user);
    }

    /// The outcomes, given what the database decided.
    pub fn finish(mut self, written: Written) -> Result<Vec<OpOutcome>, StoreError> {
        let balance = |user: &str| {
            written.balances.get(user).copied().ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the batch moved money of {user} but has no balance"
                ))
            })
        };
        for d in &self.deposits {
            self.outcomes[d.index] = OpOutcome::Deposit(DepositInsert::KeyTaken);
        }
        for &i in &written.inserted {
            self.outcomes[i] = OpOutcome::Deposit(DepositInsert::Inserted);
        }
        let settles: HashMap<usize, &SettleItem> =
            self.settles.iter().map(|s| (s.index, s)).collect();
        for &i in &written.settled {
            let s = settles.get(&i).ok_or_else(|| {
                StoreError::Corrupt(format!("the batch settled position {i}, not a settlement"))
            })?;
            let credited = match s.status {
                "success" => Some(balance(&s.user_id)?),
                _ => None,
            };
            self.outcomes[i] = OpOutcome::Settle(SettleResult::Applied(credited));
        }
        for t in &self.transfers {
            self.outcomes[t.index] = OpOutcome::Transfer(TransferResult::KeyTaken);
        }
        let transfers: HashMap<usize, &TransferItem> =
            self.transfers.iter().map(|t| (t.index, t)).collect();
        for &i in &written.transferred {
            let t = transfers.get(&i).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the batch transferred position {i}, not a transfer"
                ))
            })?;
            self.outcomes[i] = OpOutcome::Transfer(TransferResult::Applied {
                from: balance(&t.from)?,
                to: balance(&t.to)?,
            });
        }
        Ok(self.outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, SessionHash, Settlement};

    fn settle(id: &DepositId, user: UserId, outcome: Settlement) -> WriteOp {
        WriteOp::Settle(SettleDeposit {
            deposit_id: id.clone(),
            user_id: user,
            amount: Amount::parse(100, i64::MAX).unwrap(),
            outcome,
            now: 1,
        })
    }

    #[test]
    fn a_deposit_settled_twice_in_one_batch_is_written_once() {
        let user = UserId::new();
        let (a, b) = (DepositId::new(), DepositId::new());
        let ops = vec![
            settle(&a, user, Settlement::Success),
            settle(&b, user, Settlement::Failure),
            settle(&a, user, Settlement::Success),
        ];
        let plan = Plan::new(&ops);
        let written: Vec<(&str, &str)> = plan
            .settles
            .iter()
            .map(|s| (s.deposit_id, s.status))
            .collect();
        assert_eq!(
            written,
            vec![(a.as_str(), "success"), (b.as_str(), "failure")]
        );
        // The database applied both written settlements.
        let credit = Balance {
            paise: 100,
            entry: 7,
        };
        let outcomes = plan
            .finish(Written {
                settled: vec![0, 1],
                balances: [(user.to_string(), credit)].into(),
                ..Written::default()
            })
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                OpOutcome::Settle(SettleResult::Applied(Some(credit))),
                OpOutcome::Settle(SettleResult::Applied(None)),
                OpOutcome::Settle(SettleResult::NotProcessing)
            ]
        );
    }

    #[test]
    fn a_deposit_not_inserted_lost_its_key_and_unapplied_settlements_were_not_processing() {
        let user = UserId::new();
        let deposit = |key: &str| {
            WriteOp::InsertDeposit(NewDeposit {
                id: DepositId::new(),
                user_id: user,
                amount: Amount::parse(5, i64::MAX).unwrap(),
                currency: crate::domain::Currency::Inr,
                idempotency_key: Some(key.into()),
                key_cutoff: 0,
                now: 1,
                first_check_at: 2,
            })
        };
        let ops = vec![
            deposit("k"),
            WriteOp::DeleteSession {
                hash: SessionHash::from_stored("h".into()),
            },
            deposit("k"),
            settle(&DepositId::new(), user, Settlement::Success),
        ];
        let plan = Plan::new(&ops);
        assert!(plan.has_keys());
        assert_eq!(plan.ended_sessions, vec!["h"]);
        let outcomes = plan
            .finish(Written {
                inserted: vec![0],
                ..Written::default()
            })
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                OpOutcome::Deposit(DepositInsert::Inserted),
                OpOutcome::Done,
                OpOutcome::Deposit(DepositInsert::KeyTaken),
                OpOutcome::Settle(SettleResult::NotProcessing)
            ]
        );
    }
}

//! The database-independent half of a group commit: a [`Batch`] turned into the rows each
//! backend writes with one set-based statement per kind of change (instead of a round trip per
//! change), and what the database decided turned back into [`Outcomes`].
//!
//! Rows carry named fields: SQLite's batch script reads them from JSON by name
//! (`r ->> '$.amount'`), and PostgreSQL binds one array per field. `pos` is a change's position
//! among the changes of its kind, which is how the database's decisions come back.

use super::{
    Balance, Batch, DepositInsert, Outcomes, SettleResult, StateUse, StoreError, TransferResult,
    WithdrawalResult,
};
use crate::domain::{DepositId, EmailKey, FirstAnswer, ProviderSub, UserId};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A sign-in, which backends apply one at a time (not a hot path).
pub(super) struct AccountItem<'a> {
    pub provider: &'static str,
    pub sub: &'a ProviderSub,
    pub email: &'a str,
    /// The email for look-ups, when the provider vouched for it.
    pub email_key: Option<EmailKey>,
    pub name: &'a str,
    pub picture: &'a str,
    pub now: i64,
}

/// A new deposit or withdrawal: both are inserted `processing` with an optional idempotency key
/// and a first check on reconciliation's schedule, before the bank is asked.
#[derive(Serialize)]
pub(super) struct NewItem<'a> {
    pub pos: usize,
    pub id: &'a str,
    pub user: String,
    pub amount: i64,
    pub currency: &'static str,
    pub key: Option<&'a str>,
    pub cutoff: i64,
    pub now: i64,
    pub first_check: i64,
}

#[derive(Serialize)]
pub(super) struct OrderItem<'a> {
    pub deposit: &'a str,
    pub token: &'a str,
    pub pay_url: &'a str,
    pub now: i64,
}

#[derive(Serialize)]
pub(super) struct SessionItem<'a> {
    pub hash: &'a str,
    pub user: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Serialize)]
pub(super) struct TouchItem<'a> {
    pub hash: &'a str,
    pub seen: i64,
}

#[derive(Serialize)]
pub(super) struct EndItem<'a> {
    pub hash: &'a str,
}

/// A schedule's row is `(due, id)` (a deposit's or a withdrawal's): a check moves it to `next`.
#[derive(Serialize)]
pub(super) struct CheckItem<'a> {
    pub id: &'a str,
    pub due: i64,
    pub next: i64,
}

#[derive(Serialize)]
pub(super) struct ForgetItem<'a> {
    pub id: &'a str,
    pub due: i64,
}

pub(super) type DepositItem<'a> = NewItem<'a>;
pub(super) type WithdrawalItem<'a> = NewItem<'a>;

#[derive(Serialize)]
pub(super) struct PayoutItem<'a> {
    pub withdrawal: &'a str,
    pub payout_id: &'a str,
    /// `created` when it answers the withdrawal's request, else null (kept as it was).
    pub answer: Option<&'static str>,
    pub now: i64,
}

/// A payout's settlement: the user and amount moved are the withdrawal row's own, never these
/// (they only find the balance to answer).
#[derive(Serialize)]
pub(super) struct PayoutSettleItem<'a> {
    pub pos: usize,
    pub withdrawal: &'a str,
    /// `success` or `failure`: the withdrawal's new status.
    pub status: &'static str,
    /// `refused` when the bank refused the withdrawal's request, else null (kept as it was).
    pub answer: Option<&'static str>,
    pub now: i64,
    #[serde(skip)]
    pub user: String,
}

/// A settlement: the user and amount credited are the deposit's own row's, never these (they
/// only find the balance to answer).
#[derive(Serialize)]
pub(super) struct SettleItem<'a> {
    pub pos: usize,
    pub deposit: &'a str,
    /// `success` or `failure`: the deposit's new status.
    pub status: &'static str,
    pub now: i64,
    #[serde(skip)]
    pub user: String,
}

#[derive(Serialize)]
pub(super) struct TransferItem<'a> {
    pub pos: usize,
    pub id: &'a str,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub currency: &'static str,
    pub key: Option<&'a str>,
    pub cutoff: i64,
    pub now: i64,
    pub to_name: &'a str,
    pub to_email: &'a str,
}

pub(super) struct StateItem<'a> {
    pub pos: usize,
    pub hash: &'a str,
    pub expires_at: i64,
}

/// What the database decided while writing a batch.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The positions of the deposits inserted (not those whose key was taken).
    pub inserted: Vec<usize>,
    /// The positions of the settlements applied (the deposit was still processing).
    pub settled: Vec<usize>,
    /// The positions of the transfers written (not those whose key was taken).
    pub transferred: Vec<usize>,
    /// The positions of the withdrawals written (not those whose key was taken).
    pub withdrawn: Vec<usize>,
    /// The positions of the payout settlements applied (the withdrawal was still processing).
    pub paid: Vec<usize>,
    /// The balance after the batch of every user account it changed (one wallet per user:
    /// the app keeps one currency), with the last entry that balance includes.
    pub balances: HashMap<String, Balance>,
}

/// A batch as rows, with the outcome of every change that is known before writing.
pub(super) struct Plan<'a> {
    pub accounts: Vec<AccountItem<'a>>,
    /// `(now, idle_ms)`.
    pub purges: Vec<(i64, i64)>,
    pub deposits: Vec<DepositItem<'a>>,
    pub orders: Vec<OrderItem<'a>>,
    pub new_sessions: Vec<SessionItem<'a>>,
    pub touches: Vec<TouchItem<'a>>,
    pub ended_sessions: Vec<EndItem<'a>>,
    /// The first settlement of each deposit; a later one in the same batch is answered
    /// [`SettleResult::NotProcessing`] without being written.
    pub settles: Vec<SettleItem<'a>>,
    pub transfers: Vec<TransferItem<'a>>,
    pub checks: Vec<CheckItem<'a>>,
    pub forgets: Vec<ForgetItem<'a>>,
    /// The first use of each state; a later one in the same batch finds it used.
    pub states: Vec<StateItem<'a>>,
    pub withdrawals: Vec<WithdrawalItem<'a>>,
    pub payouts: Vec<PayoutItem<'a>>,
    /// The first settlement of each withdrawal's payout.
    pub payout_settles: Vec<PayoutSettleItem<'a>>,
    pub withdrawal_checks: Vec<CheckItem<'a>>,
    pub withdrawal_forgets: Vec<ForgetItem<'a>>,
    outcomes: Outcomes,
}

impl<'a> Plan<'a> {
    pub fn new(batch: &'a Batch) -> Plan<'a> {
        Plan {
            accounts: batch.accounts.iter().map(AccountItem::of).collect(),
            purges: batch.purges.iter().map(|p| (p.now, p.idle_ms)).collect(),
            deposits: batch
                .deposits
                .iter()
                .enumerate()
                .map(NewItem::deposit)
                .collect(),
            orders: batch.orders.iter().map(OrderItem::of).collect(),
            new_sessions: batch.new_sessions.iter().map(SessionItem::of).collect(),
            touches: (batch.touches.iter())
                .map(|t| TouchItem {
                    hash: t.hash.as_str(),
                    seen: t.last_seen_at,
                })
                .collect(),
            ended_sessions: (batch.ended_sessions.iter())
                .map(|e| EndItem {
                    hash: e.hash.as_str(),
                })
                .collect(),
            settles: first_settlements(batch),
            transfers: batch
                .transfers
                .iter()
                .enumerate()
                .map(TransferItem::of)
                .collect(),
            checks: (batch.checks.iter())
                .map(|c| CheckItem {
                    id: c.deposit_id.as_str(),
                    due: c.due_at,
                    next: c.next_check_at,
                })
                .collect(),
            forgets: (batch.forgets.iter())
                .map(|f| ForgetItem {
                    id: f.deposit_id.as_str(),
                    due: f.due_at,
                })
                .collect(),
            states: first_states(batch),
            withdrawals: (batch.withdrawals.iter().enumerate())
                .map(NewItem::withdrawal)
                .collect(),
            payouts: one_payout_each(batch),
            payout_settles: first_payout_settlements(batch),
            withdrawal_checks: (batch.withdrawal_checks.iter())
                .map(|c| CheckItem {
                    id: c.withdrawal_id.as_str(),
                    due: c.due_at,
                    next: c.next_check_at,
                })
                .collect(),
            withdrawal_forgets: (batch.withdrawal_forgets.iter())
                .map(|f| ForgetItem {
                    id: f.withdrawal_id.as_str(),
                    due: f.due_at,
                })
                .collect(),
            outcomes: Outcomes {
                accounts: Vec::with_capacity(batch.accounts.len()),
                deposits: vec![DepositInsert::KeyTaken; batch.deposits.len()],
                settlements: vec![SettleResult::NotProcessing; batch.settlements.len()],
                transfers: vec![TransferResult::KeyTaken; batch.transfers.len()],
                sign_in_states: vec![StateUse::Used; batch.sign_in_states.len()],
                withdrawals: vec![WithdrawalResult::KeyTaken; batch.withdrawals.len()],
                payout_settlements: vec![
                    SettleResult::NotProcessing;
                    batch.payout_settlements.len()
                ],
            },
        }
    }

    /// Whether any deposit gives its idempotency key a chance to be taken over.
    pub fn has_deposit_keys(&self) -> bool {
        self.deposits.iter().any(|d| d.key.is_some())
    }

    /// Whether any transfer gives its idempotency key a chance to be taken over.
    pub fn has_transfer_keys(&self) -> bool {
        self.transfers.iter().any(|t| t.key.is_some())
    }

    /// Whether any withdrawal gives its idempotency key a chance to be taken over.
    pub fn has_withdrawal_keys(&self) -> bool {
        self.withdrawals.iter().any(|w| w.key.is_some())
    }

    /// Whether the batch moves money: settlements, transfers, withdrawals or payouts' ends.
    pub fn moves_money(&self) -> bool {
        !self.settles.is_empty()
            || !self.transfers.is_empty()
            || !self.withdrawals.is_empty()
            || !self.payout_settles.is_empty()
    }

    /// Whether the batch has changes that backends write one statement each, in their own
    /// transaction before the set-based statements: sign-ins, sign-in states and purges.
    pub fn has_one_at_a_time(&self) -> bool {
        !self.accounts.is_empty() || !self.purges.is_empty() || !self.states.is_empty()
    }

    /// Records the user the next sign-in resolved to (sign-ins are written in order).
    pub fn push_user(&mut self, user: UserId) {
        self.outcomes.accounts.push(user);
    }

    /// Records that the state at `pos` reached the callback for the first time.
    pub fn state_fresh(&mut self, pos: usize) {
        self.outcomes.sign_in_states[pos] = StateUse::Fresh;
    }

    /// The outcomes, given what the database decided.
    pub fn finish(mut self, written: Written) -> Result<Outcomes, StoreError> {
        let balance = |user: &str| {
            written.balances.get(user).copied().ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the batch moved money of {user} but has no balance"
                ))
            })
        };
        for &i in &written.inserted {
            *slot(&mut self.outcomes.deposits, i)? = DepositInsert::Inserted;
        }
        let settles: HashMap<usize, &SettleItem> =
            self.settles.iter().map(|s| (s.pos, s)).collect();
        for &i in &written.settled {
            let s = settles.get(&i).ok_or_else(|| unplanned("settled", i))?;
            let credited = match s.status {
                "success" => Some(balance(&s.user)?),
                _ => None,
            };
            *slot(&mut self.outcomes.settlements, i)? = SettleResult::Applied(credited);
        }
        for &i in &written.transferred {
            let t = self
                .transfers
                .get(i)
                .ok_or_else(|| unplanned("transferred", i))?;
            let applied = TransferResult::Applied {
                from: balance(&t.from)?,
                to: balance(&t.to)?,
            };
            *slot(&mut self.outcomes.transfers, i)? = applied;
        }
        for &i in &written.withdrawn {
            let w = self
                .withdrawals
                .get(i)
                .ok_or_else(|| unplanned("withdrew", i))?;
            let applied = WithdrawalResult::Applied(balance(&w.user)?);
            *slot(&mut self.outcomes.withdrawals, i)? = applied;
        }
        let payouts: HashMap<usize, &PayoutSettleItem> =
            self.payout_settles.iter().map(|p| (p.pos, p)).collect();
        for &i in &written.paid {
            let p = payouts
                .get(&i)
                .ok_or_else(|| unplanned("settled payout", i))?;
            // A failed payout returns the money: the wallet's balance after it.
            let returned = match p.status {
                "failure" => Some(balance(&p.user)?),
                _ => None,
            };
            *slot(&mut self.outcomes.payout_settlements, i)? = SettleResult::Applied(returned);
        }
        Ok(self.outcomes)
    }
}

fn slot<T>(outcomes: &mut [T], pos: usize) -> Result<&mut T, StoreError> {
    outcomes
        .get_mut(pos)
        .ok_or_else(|| unplanned("answered", pos))
}

fn unplanned(what: &str, pos: usize) -> StoreError {
    StoreError::Corrupt(format!(
        "the batch {what} position {pos}, which it was not given"
    ))
}

/// The first settlement of each deposit in the batch: a later one changes nothing (the first
/// moves the deposit out of processing).
fn first_settlements(batch: &Batch) -> Vec<SettleItem<'_>> {
    let mut seen: HashSet<&DepositId> = HashSet::new();
    (batch.settlements.iter().enumerate())
        .filter(|(_, s)| seen.insert(&s.deposit_id))
        .map(|(pos, s)| SettleItem {
            pos,
            deposit: s.deposit_id.as_str(),
            status: s.outcome.status().as_str(),
            now: s.now,
            user: s.user_id.to_string(),
        })
        .collect()
}

/// One payout id per withdrawal in the batch: an update that joins two rows for one target
/// applies one of them, which one unsaid (on both databases), so the request's answer must not
/// ride on a row of its own. The bank holds one payout per ref: the ids agree, and the first is
/// kept; the answer is `created` when any of them answered the request.
fn one_payout_each(batch: &Batch) -> Vec<PayoutItem<'_>> {
    let mut items: Vec<PayoutItem> = Vec::new();
    let mut at: HashMap<&crate::domain::WithdrawalId, usize> = HashMap::new();
    for p in &batch.payouts {
        let answer = (p.answers_request).then_some(FirstAnswer::Created.as_str());
        match at.get(&p.withdrawal_id) {
            Some(&i) => items[i].answer = items[i].answer.or(answer),
            None => {
                at.insert(&p.withdrawal_id, items.len());
                items.push(PayoutItem {
                    withdrawal: p.withdrawal_id.as_str(),
                    payout_id: p.payout_id.as_str(),
                    answer,
                    now: p.now,
                });
            }
        }
    }
    items
}

/// The first settlement of each withdrawal's payout in the batch.
fn first_payout_settlements(batch: &Batch) -> Vec<PayoutSettleItem<'_>> {
    let mut seen: HashSet<&crate::domain::WithdrawalId> = HashSet::new();
    (batch.payout_settlements.iter().enumerate())
        .filter(|(_, s)| seen.insert(&s.withdrawal_id))
        .map(|(pos, s)| PayoutSettleItem {
            pos,
            withdrawal: s.withdrawal_id.as_str(),
            status: s.outcome.status().as_str(),
            answer: (s.refused_request).then_some(FirstAnswer::Refused.as_str()),
            now: s.now,
            user: s.user_id.to_string(),
        })
        .collect()
}

/// The first use of each sign-in state in the batch.
fn first_states(batch: &Batch) -> Vec<StateItem<'_>> {
    let mut seen: HashSet<&str> = HashSet::new();
    (batch.sign_in_states.iter().enumerate())
        .filter(|(_, s)| seen.insert(s.hash.as_str()))
        .map(|(pos, s)| StateItem {
            pos,
            hash: &s.hash,
            expires_at: s.expires_at,
        })
        .collect()
}

impl<'a> AccountItem<'a> {
    fn of(a: &'a crate::NewAccount) -> Self {
        AccountItem {
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

impl<'a> NewItem<'a> {
    fn deposit((pos, d): (usize, &'a crate::NewDeposit)) -> Self {
        let key = d.idempotency_key.as_deref();
        let money = (d.user_id, d.amount, d.currency);
        NewItem::new(
            pos,
            d.id.as_str(),
            money,
            key,
            [d.key_cutoff, d.now, d.first_check_at],
        )
    }

    fn withdrawal((pos, w): (usize, &'a crate::NewWithdrawal)) -> Self {
        let key = w.idempotency_key.as_deref();
        let money = (w.user_id, w.amount, w.currency);
        NewItem::new(
            pos,
            w.id.as_str(),
            money,
            key,
            [w.key_cutoff, w.now, w.first_check_at],
        )
    }

    /// `money`: whose, how much, in what; `times`: the key's cutoff, now, and the first check.
    fn new(
        pos: usize,
        id: &'a str,
        (user, amount, currency): (UserId, crate::domain::Amount, crate::domain::Currency),
        key: Option<&'a str>,
        [cutoff, now, first_check]: [i64; 3],
    ) -> Self {
        NewItem {
            pos,
            id,
            user: user.to_string(),
            amount: amount.paise(),
            currency: currency.code(),
            key,
            cutoff,
            now,
            first_check,
        }
    }
}

impl<'a> OrderItem<'a> {
    fn of(o: &'a crate::AttachOrder) -> Self {
        OrderItem {
            deposit: o.deposit_id.as_str(),
            token: o.token.as_str(),
            pay_url: &o.pay_url,
            now: o.now,
        }
    }
}

impl<'a> SessionItem<'a> {
    fn of(s: &'a crate::NewSession) -> Self {
        SessionItem {
            hash: s.hash.as_str(),
            user: s.user_id.to_string(),
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

impl<'a> TransferItem<'a> {
    fn of((pos, t): (usize, &'a crate::NewTransfer)) -> Self {
        TransferItem {
            pos,
            id: t.id.as_str(),
            from: t.from.to_string(),
            to: t.to.to_string(),
            amount: t.amount.paise(),
            currency: t.currency.code(),
            key: t.idempotency_key.as_deref(),
            cutoff: t.key_cutoff,
            now: t.now,
            to_name: &t.recipient.name,
            to_email: &t.recipient.email,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Currency, SessionHash, Settlement};
    use crate::{EndSession, NewDeposit, SettleDeposit, UseSignInState};

    fn settle(id: &DepositId, user: UserId, outcome: Settlement) -> SettleDeposit {
        SettleDeposit {
            deposit_id: id.clone(),
            user_id: user,
            amount: Amount::parse(100, i64::MAX).unwrap(),
            outcome,
            now: 1,
        }
    }

    #[test]
    fn a_deposit_settled_twice_in_one_batch_is_written_once() {
        let user = UserId::new();
        let (a, b) = (DepositId::new(), DepositId::new());
        let mut batch = Batch::default();
        batch.add(settle(&a, user, Settlement::Success));
        batch.add(settle(&b, user, Settlement::Failure));
        batch.add(settle(&a, user, Settlement::Success));
        let plan = Plan::new(&batch);
        let written: Vec<(&str, &str)> =
            plan.settles.iter().map(|s| (s.deposit, s.status)).collect();
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
            outcomes.settlements,
            vec![
                SettleResult::Applied(Some(credit)),
                SettleResult::Applied(None),
                SettleResult::NotProcessing
            ]
        );
    }

    #[test]
    fn a_deposit_not_inserted_lost_its_key_and_a_state_used_twice_is_fresh_once() {
        let user = UserId::new();
        let deposit = |key: &str| NewDeposit {
            id: DepositId::new(),
            user_id: user,
            amount: Amount::parse(5, i64::MAX).unwrap(),
            currency: Currency::Inr,
            idempotency_key: Some(key.into()),
            key_cutoff: 0,
            now: 1,
            first_check_at: 2,
        };
        let state = || UseSignInState {
            hash: "s".into(),
            expires_at: 9,
        };
        let mut batch = Batch::default();
        batch.add(deposit("k"));
        batch.add(EndSession {
            hash: SessionHash::from_stored("h".into()),
        });
        batch.add(deposit("k"));
        batch.add(state());
        batch.add(state());
        let mut plan = Plan::new(&batch);
        assert!(plan.has_deposit_keys() && plan.has_one_at_a_time());
        assert_eq!(plan.ended_sessions.len(), 1);
        assert_eq!(plan.states.len(), 1, "the second use is not written");
        plan.state_fresh(plan.states[0].pos);
        let outcomes = plan
            .finish(Written {
                inserted: vec![0],
                ..Written::default()
            })
            .unwrap();
        assert_eq!(
            outcomes.deposits,
            vec![DepositInsert::Inserted, DepositInsert::KeyTaken]
        );
        assert_eq!(
            outcomes.sign_in_states,
            vec![StateUse::Fresh, StateUse::Used]
        );
        assert!(outcomes.answer(&batch));
    }

    #[test]
    fn a_position_the_batch_did_not_have_is_a_corrupt_answer() {
        let batch = Batch::default();
        let answer = Plan::new(&batch).finish(Written {
            inserted: vec![3],
            ..Written::default()
        });
        assert!(matches!(answer, Err(StoreError::Corrupt(_))));
    }
}

//! The database-independent half of writing a run of settlements as a few set-based
//! statements: which deposits to update, who gets credited how much, and each ledger entry's
//! balance after it. Both backends use it; only the SQL differs.

use super::{OpOutcome, WriteOp};
use crate::domain::{DepositId, Settlement, UserId};
use std::collections::{HashMap, HashSet};

pub(super) struct SettleItem<'a> {
    /// Position of the op in the batch.
    pub index: usize,
    pub deposit_id: &'a DepositId,
    pub user_id: UserId,
    pub amount: i64,
    pub outcome: Settlement,
}

impl<'a> SettleItem<'a> {
    /// The settlement `op` asks for, with its time; `None` for other kinds of change.
    pub fn from_op(index: usize, op: &'a WriteOp) -> Option<(SettleItem<'a>, i64)> {
        match op {
            WriteOp::Settle {
                deposit_id,
                user_id,
                amount,
                outcome,
                now,
            } => Some((
                SettleItem {
                    index,
                    deposit_id,
                    user_id: *user_id,
                    amount: amount.paise(),
                    outcome: *outcome,
                },
                *now,
            )),
            _ => None,
        }
    }
}

pub(super) struct LedgerRow {
    pub user_id: String,
    pub deposit_id: String,
    pub amount: i64,
    pub balance_after: i64,
}

/// The settlements to attempt: the first one of each deposit (a later one in the same batch
/// answers [`OpOutcome::NotProcessing`]).
pub(super) fn first_of_each<'b, 'a>(
    items: &'b [SettleItem<'a>],
    outcomes: &mut [OpOutcome],
) -> Vec<&'b SettleItem<'a>> {
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(items.len());
    for item in items {
        if seen.insert(item.deposit_id) {
            unique.push(item);
        } else {
            outcomes[item.index] = OpOutcome::NotProcessing;
        }
    }
    unique
}

/// Records each attempted settlement's outcome given the deposits the update actually changed,
/// and answers the credits to apply, in batch order.
pub(super) fn credits<'b, 'a>(
    attempted: &[&'b SettleItem<'a>],
    mut changed: HashSet<String>,
    outcomes: &mut [OpOutcome],
) -> Vec<&'b SettleItem<'a>> {
    let mut credits = Vec::new();
    for item in attempted {
        outcomes[item.index] = if changed.remove(item.deposit_id.as_str()) {
            if item.outcome == Settlement::Success {
                credits.push(*item);
            }
            OpOutcome::Settled
        } else {
            OpOutcome::NotProcessing
        };
    }
    credits
}

/// The total credited to each wallet.
pub(super) fn per_user(credits: &[&SettleItem<'_>]) -> Vec<(String, i64)> {
    let mut sums: HashMap<UserId, i64> = HashMap::new();
    for c in credits {
        *sums.entry(c.user_id).or_default() += c.amount;
    }
    sums.into_iter().map(|(u, s)| (u.to_string(), s)).collect()
}

/// Ledger rows given each wallet's balance after the whole batch: every credit's balance_after
/// is the balance before the batch plus this batch's credits up to and including it.
pub(super) fn ledger_rows(
    credits: &[&SettleItem<'_>],
    sums: &[(String, i64)],
    balances_after: Vec<(String, i64)>,
) -> Vec<LedgerRow> {
    let sum_of: HashMap<&str, i64> = sums.iter().map(|(u, s)| (u.as_str(), *s)).collect();
    let mut running: HashMap<String, i64> = balances_after
        .into_iter()
        .map(|(u, after)| {
            let before = after - sum_of.get(u.as_str()).copied().unwrap_or(0);
            (u, before)
        })
        .collect();
    credits
        .iter()
        .map(|c| {
            let user_id = c.user_id.to_string();
            let balance = running.entry(user_id.clone()).or_default();
            *balance += c.amount;
            LedgerRow {
                balance_after: *balance,
                user_id,
                deposit_id: c.deposit_id.as_str().to_owned(),
                amount: c.amount,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_credit_carries_the_balance_after_it() {
        let (a, b) = (UserId::new(), UserId::new());
        let ids: Vec<DepositId> = (0..4).map(|_| DepositId::new()).collect();
        let items = vec![
            SettleItem {
                index: 0,
                deposit_id: &ids[0],
                user_id: a,
                amount: 100,
                outcome: Settlement::Success,
            },
            SettleItem {
                index: 1,
                deposit_id: &ids[1],
                user_id: b,
                amount: 7,
                outcome: Settlement::Success,
            },
            SettleItem {
                index: 2,
                deposit_id: &ids[0],
                user_id: a,
                amount: 100,
                outcome: Settlement::Success,
            },
            SettleItem {
                index: 3,
                deposit_id: &ids[2],
                user_id: a,
                amount: 50,
                outcome: Settlement::Success,
            },
            SettleItem {
                index: 4,
                deposit_id: &ids[3],
                user_id: a,
                amount: 9,
                outcome: Settlement::Failure,
            },
        ];
        let mut outcomes = vec![OpOutcome::Done; 5];
        let attempted = first_of_each(&items, &mut outcomes);
        assert_eq!(
            attempted.len(),
            4,
            "the second settlement of a deposit is not attempted"
        );
        assert_eq!(outcomes[2], OpOutcome::NotProcessing);
        // The database changed all but ids[2] (say it was settled earlier).
        let changed = [&ids[0], &ids[1], &ids[3]]
            .iter()
            .map(|i| i.as_str().to_owned())
            .collect();
        let credits = credits(&attempted, changed, &mut outcomes);
        assert_eq!(
            outcomes,
            vec![
                OpOutcome::Settled,
                OpOutcome::Settled,
                OpOutcome::NotProcessing,
                OpOutcome::NotProcessing,
                OpOutcome::Settled,
            ]
        );
        assert_eq!(
            credits.len(),
            2,
            "failures and unchanged deposits credit nothing"
        );
        let sums = per_user(&credits);
        // a had 1000 before: 1100 after the batch; b had 0: 7 after.
        let rows = ledger_rows(
            &credits,
            &sums,
            vec![(a.to_string(), 1100), (b.to_string(), 7)],
        );
        let after: Vec<(String, i64)> = rows
            .iter()
            .map(|r| (r.deposit_id.clone(), r.balance_after))
            .collect();
        assert_eq!(
            after,
            vec![(ids[0].to_string(), 1100), (ids[1].to_string(), 7)]
        );
    }
}

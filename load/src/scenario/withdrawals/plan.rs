//! What withdrawals to make: whose and how much, drawn before any money moves (a share with an
//! amount ending in 13, whose payouts the bank fails), the funding deposits that cover the rest
//! in the withdrawals scenario, and, once the funding is known, the amounts of those meant to be
//! over the balance.

use crate::report::WithdrawalConfig;
use crate::scenario::transfers::{over_amount, ToCreate};
use rand::rngs::StdRng;
use rand::Rng;
use std::ops::RangeInclusive;

/// A withdrawal's amount when it is not over the balance, in paise.
const SMALL: RangeInclusive<i64> = 100..=5_000;
/// Each user's funding is what its withdrawals take and this much more.
const FUNDING_MARGIN: RangeInclusive<i64> = 100..=10_000;

/// Whether the bank fails the payout of this amount: the sandbox convention of `docs/bank.md`,
/// an amount whose last two digits are 13 (1013 paise fails, 1000 succeeds).
pub(in crate::scenario) fn payout_fails(amount: i64) -> bool {
    amount % 100 == 13
}

/// A withdrawal as it will be made: whose, how much, under which `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::scenario) struct Withdrawal {
    pub(in crate::scenario) user: usize,
    pub(in crate::scenario) amount: i64,
    /// More than the user could ever hold: it must be refused.
    pub(in crate::scenario) over: bool,
    pub(in crate::scenario) key: String,
}

impl Withdrawal {
    /// Its payout fails at the bank (and its amount comes back), once it was answered `201`.
    pub(in crate::scenario) fn fails(&self) -> bool {
        payout_fails(self.amount)
    }
}

/// A planned withdrawal's amount: known at once, or over whatever the funding gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::scenario) enum Draft {
    Small(i64),
    Over,
}

/// The withdrawals, each of a random user: over the balance with the `over_balance` share,
/// otherwise a small amount (at most `max_amount`) that ends in 13 with the `failing_payouts`
/// share and never does otherwise.
pub(in crate::scenario) fn draft(
    rng: &mut StdRng,
    users: usize,
    w: &WithdrawalConfig,
    max_amount: i64,
) -> Vec<(usize, Draft)> {
    (0..w.withdrawals)
        .map(|_| {
            let user = rng.gen_range(0..users);
            if rng.gen_bool(w.over_balance) {
                return (user, Draft::Over);
            }
            let fail = rng.gen_bool(w.failing_payouts);
            let amount = rng.gen_range(SMALL);
            (user, Draft::Small(ending(fail, amount, max_amount)))
        })
        .collect()
}

/// `a` (at most `max`) moved to end in 13 when `fail`, or off it when not: the bank then fails
/// the payout exactly when asked to. With `max` below 13 nothing can fail.
fn ending(fail: bool, a: i64, max: i64) -> i64 {
    let a = a.clamp(1, max.max(1));
    match (fail, payout_fails(a)) {
        (false, false) | (true, true) => a,
        (false, true) => a - 1,
        (true, false) => {
            let up = a - a % 100 + 13;
            if up <= max {
                up
            } else if up > 100 {
                up - 100
            } else {
                a
            }
        }
    }
}

/// What each user's small withdrawals add up to: what its funding must cover.
pub(in crate::scenario) fn needs(users: usize, drafts: &[(usize, Draft)]) -> Vec<i64> {
    let mut needs = vec![0; users];
    for &(user, d) in drafts {
        if let Draft::Small(a) = d {
            needs[user] += a;
        }
    }
    needs
}

/// The funding deposits, round-robin over the users, each user's adding up to at least its
/// `needs` and a margin, each at most `max_amount` (a user it cannot cover that way is not
/// covered: its withdrawals may be refused).
pub(in crate::scenario) fn funding(
    rng: &mut StdRng,
    deposits: usize,
    needs: &[i64],
    max_amount: i64,
) -> ToCreate {
    let users = needs.len();
    let owners: Vec<usize> = (0..deposits).map(|i| i % users).collect();
    let mut count = vec![0i64; users];
    for &u in &owners {
        count[u] += 1;
    }
    let totals: Vec<i64> = needs
        .iter()
        .map(|n| n + rng.gen_range(FUNDING_MARGIN))
        .collect();
    let amounts = owners
        .iter()
        .map(|&u| ((totals[u] + count[u] - 1) / count[u]).clamp(1, max_amount.max(1)))
        .collect();
    (owners, amounts)
}

/// The withdrawals to make, now that `ceiling` (the most each user's balance can reach) is
/// known: an over-balance one asks for more than that; one that cannot without passing
/// `max_amount` is left out. Keys keep the planned index.
pub(in crate::scenario) fn finalize(
    rng: &mut StdRng,
    drafts: &[(usize, Draft)],
    ceiling: &[i64],
    max_amount: i64,
    run_id: &str,
) -> Vec<Withdrawal> {
    let mut plan = Vec::with_capacity(drafts.len());
    for (k, &(user, d)) in drafts.iter().enumerate() {
        let amount = match d {
            Draft::Small(a) => a,
            Draft::Over => match over_amount(rng, ceiling[user], max_amount) {
                Some(a) => a,
                None => continue,
            },
        };
        plan.push(Withdrawal {
            user,
            amount,
            over: d == Draft::Over,
            key: format!("load-{run_id}-w{k}"),
        });
    }
    plan
}

/// Users some of whose withdrawals will come back (their payout fails): their balance may go
/// up while the withdrawals run.
pub(in crate::scenario) fn given_back(users: usize, plan: &[Withdrawal]) -> Vec<bool> {
    let mut back = vec![false; users];
    for w in plan.iter().filter(|w| !w.over && w.fails()) {
        back[w.user] = true;
    }
    back
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn config(withdrawals: usize, over_balance: f64, failing_payouts: f64) -> WithdrawalConfig {
        WithdrawalConfig {
            withdrawals,
            over_balance,
            failing_payouts,
            read_concurrency: 1,
        }
    }

    #[test]
    fn the_bank_fails_exactly_the_amounts_ending_in_13() {
        for (amount, fails) in [
            (13, true),
            (113, true),
            (1_013, true),
            (999_913, true),
            (1_000, false),
            (1_003, false),
            (1_130, false),
            (1_312, false),
            (1_314, false),
            (1, false),
        ] {
            assert_eq!(payout_fails(amount), fails, "{amount}");
        }
    }

    #[test]
    fn a_drawn_amount_fails_exactly_when_asked_to() {
        for a in 1..=3_000 {
            for max in [12, 13, 100, 113, 1_000, 3_000] {
                let (fail, keep) = (ending(true, a, max), ending(false, a, max));
                assert!((1..=max).contains(&fail) && (1..=max).contains(&keep));
                assert!(!payout_fails(keep), "{a} under {max}: {keep}");
                assert_eq!(payout_fails(fail), max >= 13, "{a} under {max}: {fail}");
            }
        }
    }

    #[test]
    fn the_shares_of_the_draft_are_kept() {
        let mut rng = StdRng::seed_from_u64(1);
        let d = draft(&mut rng, 7, &config(4_000, 0.1, 0.25), 10_000_000);
        assert_eq!(d.len(), 4_000);
        assert!(d.iter().all(|&(u, _)| u < 7));
        let over = d.iter().filter(|p| p.1 == Draft::Over).count();
        assert!((300..500).contains(&over), "{over}");
        let small: Vec<i64> = d
            .iter()
            .filter_map(|p| match p.1 {
                Draft::Small(a) => Some(a),
                Draft::Over => None,
            })
            .collect();
        let failing = small.iter().filter(|&&a| payout_fails(a)).count();
        let share = failing as f64 / small.len() as f64;
        assert!((0.2..0.3).contains(&share), "{share}");
        assert!(small.iter().all(|a| (13..=5_100).contains(a)));
    }

    #[test]
    fn the_funding_covers_every_small_withdrawal_of_its_user() {
        let mut rng = StdRng::seed_from_u64(2);
        let drafts = [
            (0, Draft::Small(500)),
            (1, Draft::Over),
            (0, Draft::Small(1_013)),
            (2, Draft::Small(4_000)),
        ];
        let needs = needs(3, &drafts);
        assert_eq!(needs, vec![1_513, 0, 4_000]);
        let (owners, amounts) = funding(&mut rng, 7, &needs, 10_000_000);
        assert_eq!(owners, vec![0, 1, 2, 0, 1, 2, 0]);
        let mut total = vec![0; 3];
        for (u, a) in owners.iter().zip(&amounts) {
            total[*u] += a;
        }
        for u in 0..3 {
            let margin = total[u] - needs[u];
            assert!((100..=10_000 + 3).contains(&margin), "user {u}: {total:?}");
        }
        // A largest deposit too small to cover a user leaves it uncovered, never over the limit.
        let (_, capped) = funding(&mut rng, 3, &needs, 600);
        assert_eq!(capped[2], 600);
    }

    #[test]
    fn an_over_balance_withdrawal_asks_for_more_than_the_user_could_hold() {
        let mut rng = StdRng::seed_from_u64(3);
        let drafts = [
            (0, Draft::Small(500)),
            (1, Draft::Over),
            (0, Draft::Over),
            (1, Draft::Small(1_013)),
        ];
        let plan = finalize(&mut rng, &drafts, &[2_000, 9_000], 100_000, "r");
        assert_eq!(plan.len(), 4);
        assert!((9_001..=10_001).contains(&plan[1].amount) && plan[1].over);
        assert!((2_001..=3_001).contains(&plan[2].amount) && plan[2].over);
        assert_eq!((plan[3].amount, plan[3].fails()), (1_013, true));
        assert_eq!(plan[3].key, "load-r-w3");
        assert_eq!(given_back(3, &plan), vec![false, true, false]);
        // Over a largest amount of 5,000 only user 0 can be asked for more than it holds.
        let plan = finalize(&mut rng, &drafts, &[2_000, 9_000], 5_000, "r");
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[1].user, 0);
        assert_eq!(plan[2].key, "load-r-w3", "keys keep the planned index");
    }
}

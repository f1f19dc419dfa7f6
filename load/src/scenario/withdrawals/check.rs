//! Checking the withdrawals after the run: those answered `201`, by user, held against every
//! balance (what a withdrawal takes stays out unless its payout failed: then it came back,
//! once) and every transaction listed (each exactly once, `failure` exactly when its amount ends
//! in 13); and the withdrawals' part of the report.

use super::plan::Withdrawal;
use super::send::Withdrawing;
use crate::report::WithdrawalReport;
use crate::scenario::keyed::{one_id_each, tally, Outcome};
use crate::scenario::Ctx;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicUsize};

/// The withdrawals answered `201`, by user, and what the check found of them.
pub(in crate::scenario) struct Payouts {
    withdrawals: Vec<Withdrawal>,
    outcomes: Vec<Outcome>,
    /// Per user: its `201` withdrawals, by the id answered.
    by_user: Vec<HashMap<String, usize>>,
    /// Per user: what its `201` withdrawals took and kept (their payouts did not fail).
    kept: Vec<i64>,
    /// Withdrawals planned per user (bounds the pages of its transactions).
    planned: Vec<usize>,
    /// How often each `201` was listed.
    seen: Vec<AtomicU32>,
    /// Per user: its funding covered every withdrawal of its not over the balance, so none of
    /// them may be refused.
    covered: Vec<bool>,
    /// Per user: its balance only went down while the withdrawals ran (nothing came in, no
    /// payout came back), so one refused while the end balance still held it was refused wrongly.
    monotone: Vec<bool>,
    troubled: Vec<bool>,
    matched: AtomicUsize,
}

impl Payouts {
    pub(in crate::scenario) fn new(
        ctx: &Ctx,
        w: &Withdrawing,
        covered: Vec<bool>,
        monotone: Vec<bool>,
    ) -> Payouts {
        let users = w.users.cookies.len();
        let withdrawals = w.kind.withdrawals.clone();
        let outcomes = w.ended();
        one_id_each(ctx, "withdrawals", &outcomes);
        let mut p = Payouts {
            by_user: vec![HashMap::new(); users],
            kept: vec![0; users],
            planned: vec![0; users],
            seen: withdrawals.iter().map(|_| AtomicU32::new(0)).collect(),
            covered,
            monotone,
            troubled: w.troubled_users(),
            matched: AtomicUsize::new(0),
            withdrawals,
            outcomes,
        };
        p.book();
        p
    }

    /// Counts each `201` in its user's books: by id, and in what it kept unless it failed.
    fn book(&mut self) {
        for (k, w) in self.withdrawals.iter().enumerate() {
            self.planned[w.user] += 1;
            let Outcome::Done(id) = &self.outcomes[k] else {
                continue;
            };
            if !w.fails() {
                self.kept[w.user] += w.amount;
            }
            let Some(id) = id else { continue };
            self.by_user[w.user].insert(id.clone(), k);
        }
    }

    /// What `user`'s `201` withdrawals took and kept.
    pub(in crate::scenario) fn kept(&self, user: usize) -> i64 {
        self.kept[user]
    }

    pub(in crate::scenario) fn kept_total(&self) -> i64 {
        self.kept.iter().sum()
    }

    pub(in crate::scenario) fn planned(&self, user: usize) -> usize {
        self.planned[user]
    }

    /// One `withdrawal` item of `user`'s transactions.
    pub(in crate::scenario) fn check_item(&self, ctx: &Ctx, user: usize, item: &serde_json::Value) {
        let id = item["id"].as_str().unwrap_or_default();
        let status = item["status"].as_str().unwrap_or_default();
        let Some(&k) = self.by_user[user].get(id) else {
            ctx.problem(format!(
                "user {user}: withdrawal {id:?} of {} paise ({status}) was never answered 201 to \
                 this run (a refused or unanswered withdrawal that moved money?)",
                item["amount"]
            ));
            return;
        };
        self.seen[k].fetch_add(1, Relaxed);
        let w = &self.withdrawals[k];
        let want = if w.fails() { "failure" } else { "success" };
        let wrong = if status == "processing" {
            Some("status processing: its payout never settled".to_owned())
        } else if status != want {
            let ends = if w.fails() { "ends" } else { "does not end" };
            Some(format!(
                "status {status:?}, but its amount {} {ends} in 13",
                w.amount
            ))
        } else if item["amount"].as_i64() != Some(w.amount) {
            Some(format!("amount {} (asked {})", item["amount"], w.amount))
        } else if item["currency"] != "INR" {
            Some(format!("currency {}", item["currency"]))
        } else {
            None
        };
        if let Some(wrong) = wrong {
            ctx.problem(format!("user {user}: withdrawal {id} lists {wrong}"));
        }
    }

    /// Once every user is checked: each `201` listed exactly once, and no withdrawal refused
    /// that had to go through (its user was covered, or its balance only went down and still
    /// held the amount at the end).
    pub(in crate::scenario) fn finish(&self, ctx: &Ctx, balances: &[i64]) {
        for (k, w) in self.withdrawals.iter().enumerate() {
            match &self.outcomes[k] {
                Outcome::Done(Some(id)) => match self.seen[k].load(Relaxed) {
                    1 => {
                        self.matched.fetch_add(1, Relaxed);
                    }
                    n => ctx.problem(format!(
                        "withdrawal {id} (answered 201, user {}, {} paise) is listed {n} times, \
                         not once",
                        w.user, w.amount
                    )),
                },
                Outcome::Refused if !w.over && self.refused_wrongly(w, balances[w.user]) => {
                    ctx.problem(format!(
                        "withdrawal {k} of {} paise of user {} was refused for insufficient funds, \
                         but {}",
                        w.amount,
                        w.user,
                        if self.covered[w.user] {
                            "the user's funding covered every withdrawal it made".to_owned()
                        } else {
                            format!(
                                "that balance only went down and still holds {}",
                                balances[w.user]
                            )
                        }
                    ));
                }
                _ => {}
            }
        }
    }

    fn refused_wrongly(&self, w: &Withdrawal, balance: i64) -> bool {
        let u = w.user;
        !self.troubled[u] && (self.covered[u] || (self.monotone[u] && w.amount <= balance))
    }

    /// The counts of the report; the rates are the scenario's to fill in.
    pub(in crate::scenario) fn report(&self, w: &Withdrawing) -> WithdrawalReport {
        let [succeeded, insufficient_funds, other_answers, unresolved] = tally(&self.outcomes);
        let done = || {
            self.withdrawals
                .iter()
                .zip(&self.outcomes)
                .filter(|(_, o)| matches!(o, Outcome::Done(_)))
                .map(|(w, _)| w)
        };
        WithdrawalReport {
            planned: self.withdrawals.len(),
            over_balance: self.withdrawals.iter().filter(|w| w.over).count(),
            failing: self
                .withdrawals
                .iter()
                .filter(|w| !w.over && w.fails())
                .count(),
            succeeded,
            insufficient_funds,
            other_answers,
            unresolved,
            retries: w.retries.load(Relaxed),
            withdrawn_paise: done().map(|w| w.amount).sum(),
            returned_paise: done().filter(|w| w.fails()).map(|w| w.amount).sum(),
            matched: self.matched.load(Relaxed),
            ..WithdrawalReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::check::tests::{ctx, users};

    /// Two users. User 0: 500 (201 "wd_a"), 1013 (201 "wd_b", fails at the bank), 9000
    /// (refused, over the balance). User 1: 700 (201 "wd_c"), 300 (refused), 213 (unresolved).
    fn payouts(ctx: &Ctx, covered: Vec<bool>, monotone: Vec<bool>) -> Payouts {
        let plan = [
            (0, 500, false),
            (0, 1_013, false),
            (0, 9_000, true),
            (1, 700, false),
            (1, 300, false),
            (1, 213, false),
        ];
        let withdrawals = plan
            .iter()
            .enumerate()
            .map(|(k, &(user, amount, over))| Withdrawal {
                user,
                amount,
                over,
                key: format!("k{k}"),
            })
            .collect();
        let w = Withdrawing::new(&self::ctx(), &users(2), withdrawals);
        let outcomes = [
            Outcome::Done(Some("wd_a".into())),
            Outcome::Done(Some("wd_b".into())),
            Outcome::Refused,
            Outcome::Done(Some("wd_c".into())),
            Outcome::Refused,
        ];
        for (k, o) in outcomes.into_iter().enumerate() {
            w.outcomes[k].set(o).unwrap();
        }
        Payouts::new(ctx, &w, covered, monotone)
    }

    fn item(id: &str, amount: i64, status: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "kind": "withdrawal", "amount": amount, "currency": "INR",
            "status": status,
        })
    }

    fn list_all(ctx: &Ctx, p: &Payouts) {
        p.check_item(ctx, 0, &item("wd_a", 500, "success"));
        p.check_item(ctx, 0, &item("wd_b", 1_013, "failure"));
        p.check_item(ctx, 1, &item("wd_c", 700, "success"));
    }

    #[test]
    fn only_the_201s_whose_payout_did_not_fail_stay_out_of_the_balance() {
        let ctx = ctx();
        let p = payouts(&ctx, vec![false; 2], vec![false; 2]);
        // The 1013 came back; the refused and the unresolved never counted.
        assert_eq!((p.kept(0), p.kept(1), p.kept_total()), (500, 700, 1_200));
        assert_eq!((p.planned(0), p.planned(1)), (3, 3));
        let w = Withdrawing::new(&ctx, &users(2), Vec::new());
        let r = p.report(&w);
        assert_eq!((r.planned, r.over_balance, r.failing), (6, 1, 2));
        assert_eq!((r.succeeded, r.insufficient_funds, r.unresolved), (3, 2, 1));
        assert_eq!((r.withdrawn_paise, r.returned_paise), (2_213, 1_013));
        list_all(&ctx, &p);
        p.finish(&ctx, &[1_000, 300]);
        assert!(ctx.problems().is_empty(), "{:?}", ctx.problems());
        assert_eq!(p.matched.load(Relaxed), 3);
    }

    #[test]
    fn a_withdrawal_fails_exactly_when_its_amount_ends_in_13() {
        let ctx = ctx();
        let p = payouts(&ctx, vec![false; 2], vec![false; 2]);
        p.check_item(&ctx, 0, &item("wd_a", 500, "failure"));
        p.check_item(&ctx, 0, &item("wd_b", 1_013, "success"));
        p.check_item(&ctx, 1, &item("wd_c", 700, "processing"));
        let problems = ctx.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0]
            .contains("wd_a lists status \"failure\", but its amount 500 does not end in 13"));
        assert!(
            problems[1].contains("wd_b lists status \"success\", but its amount 1013 ends in 13")
        );
        assert!(problems[2].contains("wd_c lists status processing"));
    }

    #[test]
    fn each_201_is_listed_once_and_nothing_else() {
        let ctx = ctx();
        let p = payouts(&ctx, vec![false; 2], vec![false; 2]);
        list_all(&ctx, &p);
        // Listed twice, under the wrong user, and a withdrawal refused that moved money.
        p.check_item(&ctx, 0, &item("wd_a", 500, "success"));
        p.check_item(&ctx, 1, &item("wd_b", 1_013, "failure"));
        p.check_item(&ctx, 1, &item("wd_x", 300, "success"));
        p.finish(&ctx, &[1_000, 300]);
        let problems = ctx.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("user 1: withdrawal \"wd_b\""),
            "{problems:?}"
        );
        assert!(problems[1].contains("\"wd_x\" of 300 paise (success) was never answered 201"));
        assert!(problems[2].contains("wd_a (answered 201, user 0, 500 paise) is listed 2 times"));
        assert_eq!(p.matched.load(Relaxed), 2);
    }

    #[test]
    fn a_refusal_that_the_funding_or_the_balance_covered_fails_the_check() {
        // User 1 was covered: its 300 had to go through.
        let ctx = ctx();
        let p = payouts(&ctx, vec![false, true], vec![false; 2]);
        list_all(&ctx, &p);
        p.finish(&ctx, &[1_000, 0]);
        let problems = ctx.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("withdrawal 4 of 300 paise of user 1 was refused"));
        assert!(problems[0].contains("funding covered"));
        // User 1's balance only went down and still holds 300: as wrong. Over the balance (user
        // 0's 9000) a refusal is always right.
        let ctx = self::ctx();
        let p = payouts(&ctx, vec![false; 2], vec![true; 2]);
        list_all(&ctx, &p);
        p.finish(&ctx, &[1_000_000, 300]);
        assert_eq!(ctx.problems().len(), 1, "{:?}", ctx.problems());
        // Holding 299 it could not.
        let ctx = self::ctx();
        let p = payouts(&ctx, vec![false; 2], vec![true; 2]);
        list_all(&ctx, &p);
        p.finish(&ctx, &[1_000_000, 299]);
        assert!(ctx.problems().is_empty(), "{:?}", ctx.problems());
    }
}

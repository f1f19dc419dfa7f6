//! Checking the books after the run: the transfers answered `201`, by user, held against every
//! balance and every transaction listed, and the transfers' part of the report.

use super::plan::Transfer;
use super::send::Sending;
use crate::report::TransferReport;
use crate::scenario::keyed::{one_id_each, tally, Outcome};
use crate::scenario::{Ctx, Users};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::Arc;

/// The transfers answered `201`, by user, and what the check found of them.
pub(in crate::scenario) struct Book {
    users: Arc<Users>,
    transfers: Vec<Transfer>,
    outcomes: Vec<Outcome>,
    /// Per user: its `201` transfers out and in, by the id answered.
    out_by_user: Vec<HashMap<String, usize>>,
    in_by_user: Vec<HashMap<String, usize>>,
    paid_out: Vec<i64>,
    paid_in: Vec<i64>,
    /// Transfers planned per user, either way (bounds the pages of its transactions).
    involving: Vec<usize>,
    /// How often each `201` was listed as `transfer_out` (of its sender) and `transfer_in` (of
    /// its recipient).
    seen_out: Vec<AtomicU32>,
    seen_in: Vec<AtomicU32>,
    monotone: Vec<bool>,
    troubled: Vec<bool>,
    matched: AtomicUsize,
}

impl Book {
    pub(in crate::scenario) fn new(ctx: &Ctx, sending: &Sending, monotone: Vec<bool>) -> Book {
        let users = sending.users.cookies.len();
        let transfers = sending.kind.transfers.clone();
        let outcomes = sending.ended();
        one_id_each(ctx, "transfers", &outcomes);
        let mut book = Book {
            users: sending.users.clone(),
            out_by_user: vec![HashMap::new(); users],
            in_by_user: vec![HashMap::new(); users],
            paid_out: vec![0; users],
            paid_in: vec![0; users],
            involving: vec![0; users],
            seen_out: transfers.iter().map(|_| AtomicU32::new(0)).collect(),
            seen_in: transfers.iter().map(|_| AtomicU32::new(0)).collect(),
            monotone,
            troubled: sending.troubled_users(),
            matched: AtomicUsize::new(0),
            transfers,
            outcomes,
        };
        for (k, t) in book.transfers.iter().enumerate() {
            book.involving[t.from] += 1;
            book.involving[t.to] += 1;
            let Outcome::Done(id) = &book.outcomes[k] else {
                continue;
            };
            book.paid_out[t.from] += t.amount;
            book.paid_in[t.to] += t.amount;
            let Some(id) = id else { continue };
            book.out_by_user[t.from].insert(id.clone(), k);
            book.in_by_user[t.to].insert(id.clone(), k);
        }
        book
    }

    pub(in crate::scenario) fn involving(&self, user: usize) -> usize {
        self.involving[user]
    }

    /// What `user`'s `201` transfers brought in and took out.
    pub(in crate::scenario) fn paid(&self, user: usize) -> (i64, i64) {
        (self.paid_in[user], self.paid_out[user])
    }

    /// One `transfer_out` or `transfer_in` item of `user`'s transactions.
    pub(in crate::scenario) fn check_item(
        &self,
        ctx: &Ctx,
        user: usize,
        kind: &str,
        item: &serde_json::Value,
    ) {
        let out = kind == "transfer_out";
        let id = item["id"].as_str().unwrap_or_default();
        let mine = if out {
            &self.out_by_user[user]
        } else {
            &self.in_by_user[user]
        };
        let Some(&k) = mine.get(id) else {
            ctx.problem(format!(
                "user {user}: {kind} {id:?} of {} paise with {} was never answered 201 to this \
                 run as such (a refused or unanswered transfer that moved money?)",
                item["amount"], item["counterparty"]
            ));
            return;
        };
        let seen = if out { &self.seen_out } else { &self.seen_in };
        seen[k].fetch_add(1, Relaxed);
        let t = &self.transfers[k];
        let other = if out { t.to } else { t.from };
        let counterparty = &item["counterparty"];
        let email = counterparty["email"].as_str().unwrap_or_default();
        let wrong = if item["status"] != "success" {
            Some(format!("status {}", item["status"]))
        } else if item["amount"].as_i64() != Some(t.amount) {
            Some(format!("amount {} (sent {})", item["amount"], t.amount))
        } else if !email.eq_ignore_ascii_case(&self.users.emails[other]) {
            Some(format!("counterparty {counterparty}, not user {other}"))
        } else if counterparty["name"] != self.users.names[other].as_str() {
            Some(format!("counterparty name {}", counterparty["name"]))
        } else {
            None
        };
        if let Some(wrong) = wrong {
            ctx.problem(format!("user {user}: {kind} {id} lists {wrong}"));
        }
    }

    /// Once every user is checked: each `201` listed once on each side, and no `409` of a
    /// sender whose balance only went down while it was still enough (the money's conservation
    /// is checked over every ledger at once: `scenario::check`).
    pub(in crate::scenario) fn finish(&self, ctx: &Ctx, balances: &[i64]) {
        for (k, t) in self.transfers.iter().enumerate() {
            match &self.outcomes[k] {
                Outcome::Done(Some(id)) => {
                    let (out, inn) = (
                        self.seen_out[k].load(Relaxed),
                        self.seen_in[k].load(Relaxed),
                    );
                    if out == 1 && inn == 1 {
                        self.matched.fetch_add(1, Relaxed);
                    } else {
                        ctx.problem(format!(
                            "transfer {id} (answered 201, user {} to user {}, {} paise) is listed \
                             {out} times as transfer_out of the sender and {inn} times as \
                             transfer_in of the recipient, not once each",
                            t.from, t.to, t.amount
                        ));
                    }
                }
                Outcome::Refused
                    if self.monotone[t.from]
                        && !self.troubled[t.from]
                        && t.amount <= balances[t.from] =>
                {
                    ctx.problem(format!(
                        "transfer {k} of {} paise from user {} was refused for insufficient funds, \
                         but that balance only went down and still holds {}",
                        t.amount, t.from, balances[t.from]
                    ));
                }
                _ => {}
            }
        }
    }

    pub(super) fn report(&self, sending: &Sending) -> TransferReport {
        let [succeeded, insufficient_funds, other_answers, unresolved] = tally(&self.outcomes);
        TransferReport {
            planned: self.transfers.len(),
            over_balance: self.transfers.iter().filter(|t| t.over).count(),
            succeeded,
            insufficient_funds,
            other_answers,
            unresolved,
            retries: sending.retries.load(Relaxed),
            moved_paise: self.paid_out.iter().sum(),
            matched: self.matched.load(Relaxed),
            ..TransferReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scenario::check::tests::{ctx, users};

    /// Three users; transfer 0 (user 0 → 1, 300) answered 201 as "t0", transfer 1 (1 → 2, 50)
    /// as "t1", transfer 2 (0 → 2, 900) refused, transfer 3 (2 → 1, 10) unresolved.
    fn book(ctx: &Arc<Ctx>) -> Book {
        let transfer = |from, to, amount| Transfer {
            from,
            to,
            amount,
            over: false,
            key: String::new(),
        };
        let transfers = vec![
            transfer(0, 1, 300),
            transfer(1, 2, 50),
            transfer(0, 2, 900),
            transfer(2, 1, 10),
        ];
        let items = (0..4).map(|k| (k, None)).collect();
        let sending = Sending::new(ctx, &users(3), transfers, items);
        let outcomes = [
            Outcome::Done(Some("t0".into())),
            Outcome::Done(Some("t1".into())),
            Outcome::Refused,
        ];
        for (k, o) in outcomes.into_iter().enumerate() {
            sending.outcomes[k].set(o).unwrap();
        }
        Book::new(ctx, &sending, vec![true, false, false])
    }

    fn item(kind: &str, id: &str, amount: i64, other: usize) -> serde_json::Value {
        serde_json::json!({
            "id": id, "kind": kind, "amount": amount, "currency": "INR", "status": "success",
            "counterparty": {"name": format!("Load user {other}"), "email": format!("u{other}@load.test")},
        })
    }

    fn problems(ctx: &Ctx) -> Vec<String> {
        ctx.problems()
    }

    #[test]
    fn the_book_counts_only_the_201s_in_each_users_balance() {
        let ctx = ctx();
        let b = book(&ctx);
        assert_eq!(
            b.report(&Sending::new(&ctx, &users(3), vec![], vec![]))
                .succeeded,
            2
        );
        assert_eq!(
            (b.paid(0), b.paid(1), b.paid(2)),
            ((0, 300), (300, 50), (50, 0))
        );
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
        assert_eq!(b.involving(1), 3);
    }

    #[test]
    fn each_201_is_listed_once_on_each_side_and_nothing_else() {
        let ctx = ctx();
        let b = book(&ctx);
        b.check_item(&ctx, 0, "transfer_out", &item("transfer_out", "t0", 300, 1));
        b.check_item(&ctx, 1, "transfer_in", &item("transfer_in", "t0", 300, 0));
        b.check_item(&ctx, 1, "transfer_out", &item("transfer_out", "t1", 50, 2));
        b.check_item(&ctx, 2, "transfer_in", &item("transfer_in", "t1", 50, 1));
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
        b.finish(&ctx, &[700, 250, 50]);
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
        assert_eq!(b.matched.load(Relaxed), 2);

        // Listed twice, on the wrong side, with the wrong amount or counterparty, or never
        // answered 201 (a refused transfer that moved money).
        let ctx = self::ctx();
        let b = book(&ctx);
        b.check_item(&ctx, 0, "transfer_out", &item("transfer_out", "t0", 300, 1));
        b.check_item(&ctx, 0, "transfer_out", &item("transfer_out", "t0", 300, 1));
        b.check_item(&ctx, 2, "transfer_out", &item("transfer_out", "t1", 50, 1));
        b.check_item(&ctx, 1, "transfer_out", &item("transfer_out", "t1", 51, 2));
        b.check_item(&ctx, 2, "transfer_in", &item("transfer_in", "t1", 50, 0));
        b.check_item(&ctx, 2, "transfer_in", &item("transfer_in", "x9", 900, 0));
        let p = problems(&ctx);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p[0].contains("user 2: transfer_out \"t1\"") && p[0].contains("never answered 201")
        );
        assert!(p[1].contains("amount 51 (sent 50)"), "{p:?}");
        assert!(p[2].contains("not user 1"), "{p:?}");
        assert!(p[3].contains("\"x9\" of 900 paise"), "{p:?}");
        b.finish(&ctx, &[700, 250, 50]);
        let p = problems(&ctx);
        // t0 is listed twice as the sender's and never as the recipient's; t1 once on each
        // side (its wrong fields were reported above).
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(
            p[4].contains("t0")
                && p[4].contains("2 times as transfer_out")
                && p[4].contains("0 times as transfer_in"),
            "{p:?}"
        );
        assert_eq!(b.matched.load(Relaxed), 1);
    }

    fn list_all(ctx: &Ctx, b: &Book) {
        for (user, kind, id, amount, other) in [
            (0, "transfer_out", "t0", 300, 1),
            (1, "transfer_in", "t0", 300, 0),
            (1, "transfer_out", "t1", 50, 2),
            (2, "transfer_in", "t1", 50, 1),
        ] {
            b.check_item(ctx, user, kind, &item(kind, id, amount, other));
        }
    }

    #[test]
    fn a_409_while_a_balance_that_only_went_down_still_held_enough_fails_the_check() {
        let ctx = ctx();
        let b = book(&ctx);
        list_all(&ctx, &b);
        // User 0 only ever paid out; its 900 was refused, yet it still holds 950 at the end.
        b.finish(&ctx, &[950, 250, 50]);
        let p = problems(&ctx);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("transfer 2 of 900 paise from user 0 was refused"),
            "{p:?}"
        );
        // Not so after trouble (a 5xx or a lost answer) on that sender's transfers.
        let ctx = self::ctx();
        let mut b = book(&ctx);
        b.troubled[0] = true;
        list_all(&ctx, &b);
        b.finish(&ctx, &[950, 250, 50]);
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
    }
}

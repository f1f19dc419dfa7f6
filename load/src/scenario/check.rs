//! The final check of every scenario: each user's balance and transactions, read through the
//! API, held to the tool's own record of what it did: the deposits it settled and, where the
//! scenario made them, the transfers ([`Book`]) and withdrawals ([`Payouts`]) answered `201`.
//! The balances must add up to what came in less what left, and in the withdrawals and mixed
//! scenarios no answer of any phase may have been a `5xx`.

use super::transfers::Book;
use super::withdrawals::Payouts;
use super::{Ctx, Dep, Run, Settle};
use crate::http;
use crate::phase::{Bound, Rec};
use crate::report::{CheckReport, Counts};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::Arc;

/// What the scenario did beyond deposits, which every balance and listing must show.
#[derive(Default)]
pub(super) struct Ledgers {
    /// The transfers answered `201` (transfers-* and mixed).
    pub(super) book: Option<Arc<Book>>,
    /// The withdrawals answered `201` (withdrawals and mixed).
    pub(super) payouts: Option<Arc<Payouts>>,
}

/// The check phase's shared state.
struct Checking {
    settle: Arc<Settle>,
    ledgers: Ledgers,
    observed: AtomicI64,
    matched: AtomicUsize,
    /// Each user's balance as the check read it.
    balances: Vec<AtomicI64>,
}

impl Run {
    /// Every balance, every deposit's status, each deposit applied once; with a book, every
    /// transfer answered `201` listed once on each side and counted in the balances; with
    /// payouts, every withdrawal answered `201` listed once with the status its amount gives.
    pub(super) async fn check(
        &mut self,
        settle: &Arc<Settle>,
        ledgers: Ledgers,
        counts: &mut Counts,
    ) -> CheckReport {
        let users = self.cfg.run.users;
        let state = Arc::new(Checking {
            settle: settle.clone(),
            ledgers,
            observed: AtomicI64::new(0),
            matched: AtomicUsize::new(0),
            balances: (0..users).map(|_| AtomicI64::new(0)).collect(),
        });
        self.measured_phase("check", Bound::Items(users), state.clone(), check_one)
            .await;
        counts.applied = settle.applied_once();
        let balances: Vec<i64> = state.balances.iter().map(|b| b.load(Relaxed)).collect();
        let (book, payouts) = (&state.ledgers.book, &state.ledgers.payouts);
        if let Some(book) = book {
            book.finish(&self.ctx, &balances);
        }
        if let Some(payouts) = payouts {
            payouts.finish(&self.ctx, &balances);
        }
        let credited: i64 = settle.expected.iter().sum();
        let withdrawn = payouts.as_ref().map_or(0, |p| p.kept_total());
        if book.is_some() || payouts.is_some() {
            conserved(&self.ctx, balances.iter().sum(), credited, withdrawn);
        }
        let server_errors = self.server_errors();
        let problems_total = self.ctx.problems_total.load(Relaxed);
        CheckReport {
            passed: problems_total == 0,
            users_checked: users,
            deposits_matched: state.matched.load(Relaxed),
            expected_balance_paise: credited - withdrawn,
            observed_balance_paise: state.observed.load(Relaxed),
            server_errors,
            problems_total,
            problems: self.ctx.problems(),
        }
    }

    /// The `5xx` answers of every phase so far; in the withdrawals and mixed scenarios each
    /// phase that had any is a problem (their requests never call for one, retried or not).
    fn server_errors(&self) -> u64 {
        let strict = self.cfg.scenario.has_withdrawals();
        let mut total = 0;
        for p in self.phases.iter().filter(|p| p.server_errors > 0) {
            total += p.server_errors;
            if strict {
                self.ctx.problem(format!(
                    "phase {}: {} answers were 5xx (examples: {})",
                    p.name,
                    p.server_errors,
                    p.error_samples.join(" | ")
                ));
            }
        }
        total
    }
}

/// The money is conserved: the balances add up to what the successful deposits credited, less
/// what the withdrawals took and kept (transfers only move it between users).
fn conserved(ctx: &Ctx, total: i64, credited: i64, withdrawn: i64) {
    let expected = credited - withdrawn;
    if total == expected {
        return;
    }
    let less = if withdrawn == 0 {
        String::new()
    } else {
        format!(" less the {withdrawn} withdrawals not failed took")
    };
    ctx.problem(format!(
        "money is not conserved: the balances add up to {total} paise, the successful deposits \
         credited {credited}{less} ({:+})",
        total - expected
    ));
}

/// A user's balance at the end, term by term, as the tool's record has it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Expected {
    deposits: i64,
    /// `None` in a scenario without transfers or withdrawals (the term is left out).
    transfers: Option<(i64, i64)>,
    withdrawn: Option<i64>,
}

impl Expected {
    fn total(&self) -> i64 {
        let (paid_in, paid_out) = self.transfers.unwrap_or_default();
        self.deposits + paid_in - paid_out - self.withdrawn.unwrap_or_default()
    }

    /// The problem of a balance read at the end other than [`Expected::total`], naming the terms.
    fn problem(&self, user: usize, balance: i64) -> Option<String> {
        let total = self.total();
        if balance == total {
            return None;
        }
        if self.transfers.is_none() && self.withdrawn.is_none() {
            return Some(format!(
                "user {user}: balance {balance} paise, but the successful deposits add up to {total}"
            ));
        }
        let mut terms = format!("deposits in {}", self.deposits);
        if let Some((paid_in, paid_out)) = self.transfers {
            let _ = write!(
                terms,
                " + transfers in {paid_in} - transfers out {paid_out}"
            );
        }
        if let Some(w) = self.withdrawn {
            let _ = write!(terms, " - withdrawals not failed {w}");
        }
        Some(format!(
            "user {user}: balance {balance} paise, but {terms} = {total}"
        ))
    }
}

async fn check_one(c: Arc<Checking>, user: usize, rec: Arc<Rec>) {
    let balance = check_balance(&c, &rec, user).await;
    let matched = check_transactions(&c, &rec, user).await;
    c.observed.fetch_add(balance, Relaxed);
    c.matched.fetch_add(matched, Relaxed);
    c.balances[user].store(balance, Relaxed);
}

/// The balance equals the successful deposits (plus the transfers in, minus the transfers out,
/// minus the withdrawals whose payout did not fail). Answers the balance seen.
async fn check_balance(c: &Checking, rec: &Rec, user: usize) -> i64 {
    let (s, ctx) = (&c.settle, &c.settle.ctx);
    let balance = match http::balance(&ctx.client, rec, ctx.app(), &s.users.cookies[user]).await {
        Ok(b) => b,
        Err(e) => {
            ctx.problem(format!("user {user}: {e}"));
            return 0;
        }
    };
    let expected = Expected {
        deposits: s.expected[user],
        transfers: c.ledgers.book.as_ref().map(|b| b.paid(user)),
        withdrawn: c.ledgers.payouts.as_ref().map(|p| p.kept(user)),
    };
    if let Some(p) = expected.problem(user, balance) {
        ctx.problem(p);
    }
    balance
}

/// Pages through the user's transactions; answers the deposits matched.
async fn check_transactions(c: &Checking, rec: &Rec, user: usize) -> usize {
    let (s, ctx) = (&c.settle, &c.settle.ctx);
    let cookie = &s.users.cookies[user];
    let refused = s.users.refused[user].load(Relaxed);
    let mut listing = Listing::new(c, user, refused);
    let mut cursor: Option<String> = None;
    // More pages than the user can have means the cursor is going round in circles.
    let transfers = c.ledgers.book.as_ref().map_or(0, |b| b.involving(user));
    let withdrawals = c.ledgers.payouts.as_ref().map_or(0, |p| p.planned(user));
    let most_pages = (s.by_user[user].len() + refused + transfers + withdrawals) / 100 + 3;
    for _ in 0..most_pages {
        let page =
            http::transactions_page(&ctx.client, rec, ctx.app(), cookie, cursor.as_deref()).await;
        let (items, next) = match page {
            Ok(p) => p,
            Err(e) => {
                ctx.problem(format!("user {user}: {e}"));
                return listing.matched;
            }
        };
        for item in &items {
            listing.check(item);
        }
        match next {
            Some(n) if !items.is_empty() => cursor = Some(n),
            _ => {
                listing.report_missing();
                return listing.matched;
            }
        }
    }
    ctx.problem(format!(
        "user {user}: the transactions did not end after {most_pages} pages"
    ));
    listing.matched
}

/// One user's transactions as listed so far, against what this run did for them.
struct Listing<'a> {
    c: &'a Checking,
    user: usize,
    mine: HashMap<&'a str, usize>,
    seen: HashSet<String>,
    /// A refused creation may have left a failed (or never-sent) deposit.
    extra_allowed: usize,
    matched: usize,
}

impl<'a> Listing<'a> {
    fn new(c: &'a Checking, user: usize, refused: usize) -> Listing<'a> {
        let s = &c.settle;
        Listing {
            c,
            user,
            mine: s.by_user[user]
                .iter()
                .map(|&i| (s.deps[i].id.as_str(), i))
                .collect(),
            seen: HashSet::new(),
            extra_allowed: refused,
            matched: 0,
        }
    }

    fn check(&mut self, item: &serde_json::Value) {
        let (ctx, user) = (&self.c.settle.ctx, self.user);
        let ledgers = &self.c.ledgers;
        match (item["kind"].as_str(), &ledgers.book, &ledgers.payouts) {
            // Deposits; a server from before transfers lists no kind.
            (None | Some("deposit"), _, _) => self.check_deposit(item),
            (Some(kind @ ("transfer_in" | "transfer_out")), Some(book), _) => {
                book.check_item(ctx, user, kind, item)
            }
            (Some("withdrawal"), _, Some(payouts)) => payouts.check_item(ctx, user, item),
            (kind, _, _) => ctx.problem(format!(
                "user {user}: transaction {} of kind {kind:?} was never made by this run: {item}",
                item["id"]
            )),
        }
    }

    fn check_deposit(&mut self, item: &serde_json::Value) {
        let id = item["id"].as_str().unwrap_or_default();
        let status = item["status"].as_str().unwrap_or_default();
        let s = &self.c.settle;
        match self.mine.get(id) {
            Some(&i) => self.check_own(id, status, item, &s.deps[i]),
            None if status != "success" && self.extra_allowed > 0 => self.extra_allowed -= 1,
            None => s.ctx.problem(format!(
                "user {}: transaction {id} ({status}) was never created by this run",
                self.user
            )),
        }
    }

    fn check_own(&mut self, id: &str, status: &str, item: &serde_json::Value, d: &Dep) {
        let ctx = &self.c.settle.ctx;
        let want = if d.success { "success" } else { "failure" };
        if !self.seen.insert(id.to_owned()) {
            ctx.problem(format!("deposit {id} is listed twice"));
        } else if status != want {
            ctx.problem(format!("deposit {id} is {status:?}, the bank said {want}"));
        } else if item["amount"].as_i64() != Some(d.amount) {
            ctx.problem(format!(
                "deposit {id} lists amount {}, created with {}",
                item["amount"], d.amount
            ));
        } else {
            self.matched += 1;
        }
    }

    fn report_missing(&self) {
        let s = &self.c.settle;
        for &i in &s.by_user[self.user] {
            let id = &s.deps[i].id;
            if !self.seen.contains(id.as_str()) {
                s.ctx.problem(format!(
                    "deposit {id} is missing from user {}'s transactions",
                    self.user
                ));
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::scenario::Users;

    pub(in crate::scenario) fn ctx() -> Arc<Ctx> {
        Arc::new(Ctx {
            client: reqwest::Client::new(),
            apps: crate::apps::Apps::parse("http://localhost:1").unwrap(),
            secret: Vec::new(),
            problems: std::sync::Mutex::new(Vec::new()),
            problems_total: AtomicUsize::new(0),
        })
    }

    /// `n` signed-in users, user `i` as `u{i}@load.test`, "Load user {i}".
    pub(in crate::scenario) fn users(n: usize) -> Arc<Users> {
        Arc::new(Users {
            cookies: (0..n).map(|i| format!("session_id={i}")).collect(),
            emails: (0..n).map(|i| format!("u{i}@load.test")).collect(),
            names: (0..n).map(|i| format!("Load user {i}")).collect(),
            run_id: "r".into(),
            refused: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    #[test]
    fn a_balance_is_held_to_every_term_of_the_record() {
        let only_deposits = Expected {
            deposits: 1_000,
            ..Expected::default()
        };
        assert_eq!(only_deposits.problem(0, 1_000), None);
        assert_eq!(
            only_deposits.problem(3, 999).unwrap(),
            "user 3: balance 999 paise, but the successful deposits add up to 1000"
        );
        let transfers = Expected {
            transfers: Some((250, 300)),
            ..only_deposits
        };
        assert_eq!(transfers.total(), 950);
        assert_eq!(
            transfers.problem(0, 1_000).unwrap(),
            "user 0: balance 1000 paise, but deposits in 1000 + transfers in 250 - transfers out \
             300 = 950"
        );
        let all = Expected {
            withdrawn: Some(113),
            ..transfers
        };
        assert_eq!(all.total(), 837);
        assert_eq!(all.problem(1, 837), None);
        // A withdrawal counted that should not be (its payout failed): the check fails.
        assert_eq!(
            all.problem(1, 950).unwrap(),
            "user 1: balance 950 paise, but deposits in 1000 + transfers in 250 - transfers out \
             300 - withdrawals not failed 113 = 837"
        );
        let withdrawals = Expected {
            withdrawn: Some(400),
            ..only_deposits
        };
        assert_eq!(
            withdrawals.problem(2, 1_000).unwrap(),
            "user 2: balance 1000 paise, but deposits in 1000 - withdrawals not failed 400 = 600"
        );
    }

    #[test]
    fn money_made_or_lost_fails_the_check() {
        let ctx = ctx();
        conserved(&ctx, 1_000, 1_000, 0);
        conserved(&ctx, 600, 1_000, 400);
        assert!(ctx.problems().is_empty(), "{:?}", ctx.problems());
        conserved(&ctx, 1_010, 1_000, 0);
        conserved(&ctx, 1_000, 1_000, 400);
        let p = ctx.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0],
            "money is not conserved: the balances add up to 1010 paise, the successful deposits \
             credited 1000 (+10)"
        );
        assert_eq!(
            p[1],
            "money is not conserved: the balances add up to 1000 paise, the successful deposits \
             credited 1000 less the 400 withdrawals not failed took (+400)"
        );
    }
}

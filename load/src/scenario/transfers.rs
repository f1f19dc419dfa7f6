//! The transfers-* scenarios. The users are funded as the deposit scenarios fund them (deposits
//! created with `POST /api/deposit`, settled by signed webhooks), then send each other transfers
//! with `POST /api/transfers` while a few connections read their balances (and, with
//! `--with-deposits`, while more deposits are settled on the same wallets). The check then holds
//! the app to the tool's own record: every balance equals deposits in + transfers in − transfers
//! out, the balances add up to what the successful deposits credited, every transfer answered
//! `201` is listed exactly once as `transfer_out` of its sender and once as `transfer_in` of its
//! recipient, nothing else is listed, and no balance read was below zero.

use super::{Ctx, Delivery, Dep, LoadConfig, Plan, Run, Scenario, Settle, Users};
use crate::http::{self, Answer, TransferRequest};
use crate::metrics;
use crate::phase::{Bound, PhaseResult, Rec};
use crate::report::{Counts, PhaseReport, Report, RunConfig, TransferConfig, TransferReport};
use anyhow::{ensure, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Transfers sent unless `--transfers` says otherwise.
const DEFAULT_TRANSFERS: usize = 20_000;
/// The hot sender is funded with this share of what it sends: the last tenth or so meets an
/// empty wallet, concurrently with the transfers still in flight.
const HOT_FUNDING: f64 = 0.9;
/// In transfers-crossing, this share of the transfers asks for about the sender's whole funding:
/// whether it goes through depends on which of the crossing pair lands first.
const NEAR_BALANCE: f64 = 0.25;
/// Attempts at one transfer (again after a `5xx`, `429` or transport error, same key).
const TRANSFER_ATTEMPTS: u32 = 6;
/// The app's default largest amount, when `GET /api/settings` does not say.
const FALLBACK_MAX_AMOUNT: i64 = 10_000_000;
/// An over-balance transfer asks for up to this many paise more than the sender can reach.
const OVER_MARGIN: i64 = 1_000;
/// Connections reading balances while the transfers run.
const READ_CONCURRENCY: usize = 4;
/// The hot sender's balance is read every other time; the rest go round these many recipients.
const HOT_READ_RECIPIENTS: usize = 256;

/// The scenario's defaults: `base` with its users, funding and transfers.
pub(super) fn defaults(scenario: Scenario, base: RunConfig) -> RunConfig {
    let (users, deposits, over_balance) = match scenario {
        Scenario::TransfersHotSender => (1_000, 10, 0.0),
        Scenario::TransfersCrossing => (2_000, 2_000, 0.1),
        _ => (10_000, 10_000, 0.1),
    };
    RunConfig {
        users,
        deposits,
        transfer: Some(TransferConfig {
            transfers: DEFAULT_TRANSFERS,
            over_balance,
            storm_deposits: 0,
            read_concurrency: READ_CONCURRENCY,
        }),
        ..base
    }
}

pub(super) fn validate(cfg: &LoadConfig) -> anyhow::Result<()> {
    let name = cfg.scenario.name();
    let Some(t) = &cfg.run.transfer else {
        ensure!(
            !cfg.scenario.is_transfers(),
            "{name} needs its transfer options"
        );
        return Ok(());
    };
    ensure!(
        cfg.scenario.is_transfers(),
        "the transfer options are for the transfers-* scenarios, not {name}"
    );
    ensure!(cfg.run.users >= 2, "--users must be at least 2 in {name}");
    let least = if cfg.scenario == Scenario::TransfersCrossing {
        2
    } else {
        1
    };
    ensure!(
        t.transfers >= least,
        "--transfers must be at least {least} in {name}"
    );
    ensure!(
        (0.0..=1.0).contains(&t.over_balance),
        "--over-balance must be from 0 to 1"
    );
    ensure!(
        t.read_concurrency >= 1,
        "--read-concurrency must be at least 1"
    );
    Ok(())
}

/// A transfer as it will be sent: who pays whom how much, under which `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
struct Transfer {
    from: usize,
    to: usize,
    amount: i64,
    /// More than the sender could ever hold: it must be refused.
    over: bool,
    key: String,
}

/// A planned transfer's amount, decided once the funding is known.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Draft {
    Small(i64),
    /// About the sender's whole funding.
    Near,
    /// Over anything the sender could hold.
    Over,
}

/// The transfers drawn before any money moves, and how they are sent: each item one transfer,
/// or two at once (transfers-crossing).
#[derive(Debug)]
struct Drafts {
    parts: Vec<(usize, usize, Draft)>,
    items: Vec<(usize, Option<usize>)>,
}

fn draft(rng: &mut StdRng, scenario: Scenario, users: usize, t: &TransferConfig) -> Drafts {
    let mut parts = Vec::with_capacity(t.transfers);
    let mut items = Vec::with_capacity(t.transfers);
    let kind = |rng: &mut StdRng, small: std::ops::RangeInclusive<i64>, near: f64| {
        if rng.gen_bool(t.over_balance) {
            Draft::Over
        } else if rng.gen_bool(near) {
            Draft::Near
        } else {
            Draft::Small(rng.gen_range(small))
        }
    };
    match scenario {
        Scenario::TransfersCrossing => {
            let pairs = users / 2;
            for j in 0..t.transfers / 2 {
                // Round after round over every pair: a pair's two transfers go at once.
                let (a, b) = (2 * (j % pairs), 2 * (j % pairs) + 1);
                let ab = kind(rng, 100..=2_000, NEAR_BALANCE);
                let ba = kind(rng, 100..=2_000, NEAR_BALANCE);
                parts.push((a, b, ab));
                parts.push((b, a, ba));
                items.push((2 * j, Some(2 * j + 1)));
            }
        }
        Scenario::TransfersHotSender => {
            for k in 0..t.transfers {
                let to = rng.gen_range(1..users);
                parts.push((0, to, kind(rng, 100..=1_000, 0.0)));
                items.push((k, None));
            }
        }
        _ => {
            for k in 0..t.transfers {
                let from = rng.gen_range(0..users);
                let to = rng.gen_range(0..users - 1);
                let to = if to >= from { to + 1 } else { to };
                parts.push((from, to, kind(rng, 100..=5_000, 0.0)));
                items.push((k, None));
            }
        }
    }
    Drafts { parts, items }
}

/// Tasks that keep `concurrency` requests in flight: a task sends one item at a time, and a
/// crossing item is two requests at once, so that scenario gets half as many tasks. Every
/// transfer scenario then keeps as many requests in flight as `/healthz` and the webhook phases
/// (the balance readers come on top), and their rates and latencies compare.
fn tasks(items: &[(usize, Option<usize>)], concurrency: usize) -> usize {
    let per_item = if items.iter().any(|(_, b)| b.is_some()) {
        2
    } else {
        1
    };
    (concurrency / per_item).max(1)
}

/// The funding deposits' users and amounts: one per user round-robin, each up to ₹1,000; in
/// transfers-hot-sender all the sender's, adding up with what the storm brings it (`stormed`)
/// to nine tenths of what it will send.
fn funding(
    rng: &mut StdRng,
    scenario: Scenario,
    (users, deposits): (usize, usize),
    drafts: &Drafts,
    stormed: i64,
    max_amount: i64,
) -> (Vec<usize>, Vec<i64>) {
    if scenario == Scenario::TransfersHotSender {
        let sends: i64 = drafts
            .parts
            .iter()
            .map(|p| match p.2 {
                Draft::Small(a) => a,
                _ => 0,
            })
            .sum();
        let target = (HOT_FUNDING * sends as f64).ceil() as i64 - stormed;
        let each = (target / deposits.max(1) as i64 + 1).clamp(1, max_amount);
        return (vec![0; deposits], vec![each; deposits]);
    }
    let amounts = (0..deposits)
        .map(|_| rng.gen_range(100..=100_000i64).min(max_amount))
        .collect();
    ((0..deposits).map(|i| i % users).collect(), amounts)
}

/// The storm's deposits: round-robin over the users, each up to ₹1,000; in transfers-hot-sender
/// every other one is the sender's, of the size of its transfers (so that its money still runs
/// out while the storm lands).
fn storm(
    rng: &mut StdRng,
    scenario: Scenario,
    users: usize,
    deposits: usize,
    max_amount: i64,
) -> (Vec<usize>, Vec<i64>) {
    let owners: Vec<usize> = (0..deposits)
        .map(|j| match scenario {
            Scenario::TransfersHotSender if j % 2 == 0 => 0,
            Scenario::TransfersHotSender => 1 + (j / 2) % (users - 1),
            _ => j % users,
        })
        .collect();
    let amounts = owners
        .iter()
        .map(|&u| match (scenario, u) {
            (Scenario::TransfersHotSender, 0) => rng.gen_range(100..=1_000i64),
            _ => rng.gen_range(100..=100_000i64),
        })
        .map(|a| a.min(max_amount))
        .collect();
    (owners, amounts)
}

/// The transfers to send, with what the tool can say of every user beforehand.
#[derive(Debug)]
struct TransferPlan {
    transfers: Vec<Transfer>,
    items: Vec<(usize, Option<usize>)>,
    /// The most a user's balance can reach: its successful deposits and every transfer to it
    /// that may go through.
    ceiling: Vec<i64>,
    /// Users whose balance can only go down while the transfers run (nothing comes in).
    monotone: Vec<bool>,
}

/// Decides the amounts now that the funding is known. `funded`: each user's balance before the
/// transfers; `stormed`: what the storm will add. An over-balance transfer asks for more than
/// the sender's balance, storm and every transfer to it together; one that cannot without
/// passing `max_amount` is left out.
fn finalize(
    rng: &mut StdRng,
    drafts: &Drafts,
    funded: &[i64],
    stormed: &[i64],
    max_amount: i64,
    run_id: &str,
) -> TransferPlan {
    let users = funded.len();
    let mut amounts: Vec<i64> = drafts
        .parts
        .iter()
        .map(|&(from, _, d)| match d {
            Draft::Small(a) => a.min(max_amount),
            Draft::Near => {
                let f = funded[from].max(2);
                rng.gen_range(f / 2..=f + f / 2).clamp(1, max_amount)
            }
            Draft::Over => 0,
        })
        .collect();
    let mut incoming = vec![0i64; users];
    for (&(_, to, d), &a) in drafts.parts.iter().zip(&amounts) {
        if d != Draft::Over {
            incoming[to] += a;
        }
    }
    let ceiling: Vec<i64> = (0..users)
        .map(|u| funded[u] + stormed[u] + incoming[u])
        .collect();
    let mut kept = vec![true; drafts.parts.len()];
    for (k, &(from, _, d)) in drafts.parts.iter().enumerate() {
        if d == Draft::Over {
            let least = ceiling[from] + 1;
            if least <= max_amount {
                amounts[k] = rng.gen_range(least..=(least + OVER_MARGIN).min(max_amount));
            } else {
                kept[k] = false;
            }
        }
    }
    let mut index = vec![None; drafts.parts.len()];
    let mut transfers = Vec::with_capacity(drafts.parts.len());
    for (k, &(from, to, d)) in drafts.parts.iter().enumerate() {
        if kept[k] {
            index[k] = Some(transfers.len());
            transfers.push(Transfer {
                from,
                to,
                amount: amounts[k],
                over: d == Draft::Over,
                key: format!("load-{run_id}-t{k}"),
            });
        }
    }
    let items = drafts
        .items
        .iter()
        .filter_map(|&(a, b)| match (index[a], b.and_then(|b| index[b])) {
            (Some(a), b) => Some((a, b)),
            (None, Some(b)) => Some((b, None)),
            (None, None) => None,
        })
        .collect();
    let monotone = (0..users)
        .map(|u| incoming[u] == 0 && stormed[u] == 0)
        .collect();
    TransferPlan {
        transfers,
        items,
        ceiling,
        monotone,
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// `201`, with the id it answered.
    Done(Option<String>),
    /// `409 insufficient_funds`.
    Refused,
    /// Any other final answer (a problem already reported).
    Other,
    /// No final answer after every attempt (a problem already reported).
    Unresolved,
}

/// The transfers phase's shared state.
struct Sending {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    transfers: Vec<Transfer>,
    items: Vec<(usize, Option<usize>)>,
    outcomes: Vec<OnceLock<Outcome>>,
    retries: AtomicU64,
    /// A sender some of whose transfers met a `5xx`, `429` or transport error.
    troubled: Vec<AtomicBool>,
}

impl Sending {
    fn outcome(&self, k: usize) -> Outcome {
        self.outcomes[k]
            .get()
            .cloned()
            .unwrap_or(Outcome::Unresolved)
    }

    fn what(&self, k: usize) -> String {
        let t = &self.transfers[k];
        let over = if t.over { ", over the balance" } else { "" };
        format!(
            "transfer {k} (user {} to user {}, {} paise{over})",
            t.from, t.to, t.amount
        )
    }

    /// What one answer says of transfer `k`: `Break` with its outcome, or `Continue` with the
    /// reason to try again (and after how long at the least).
    fn judge(
        &self,
        k: usize,
        answer: Result<Answer, String>,
    ) -> ControlFlow<Outcome, (String, Duration)> {
        let a = match answer {
            Ok(a) => a,
            Err(e) => return ControlFlow::Continue((e, Duration::ZERO)),
        };
        let code = a
            .json()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let again = || format!("{} {}", a.status, a.snippet());
        match a.status.as_u16() {
            201 => ControlFlow::Break(self.created(k, &a)),
            409 if code == "insufficient_funds" => ControlFlow::Break(Outcome::Refused),
            409 if code == "request_in_progress" => {
                ControlFlow::Continue((again(), Duration::ZERO))
            }
            429 => ControlFlow::Continue((again(), retry_after(&a))),
            s if s >= 500 => ControlFlow::Continue((again(), Duration::ZERO)),
            _ => {
                self.ctx.problem(format!(
                    "{} was answered {} {}",
                    self.what(k),
                    a.status,
                    a.snippet()
                ));
                ControlFlow::Break(Outcome::Other)
            }
        }
    }

    /// A `201`: it moved the money, whatever else is wrong with it.
    fn created(&self, k: usize, a: &Answer) -> Outcome {
        let t = &self.transfers[k];
        let v = a.json().unwrap_or_default();
        let id = v["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let to = v["to"]["email"].as_str().unwrap_or_default();
        let wrong = if id.is_none() {
            Some("no id")
        } else if v["status"] != "success" {
            Some("a status other than success")
        } else if v["amount"].as_i64() != Some(t.amount) {
            Some("another amount")
        } else if !to.eq_ignore_ascii_case(&self.users.emails[t.to]) {
            Some("another recipient")
        } else {
            None
        };
        if let Some(wrong) = wrong {
            self.ctx.problem(format!(
                "{} was answered 201 with {wrong}: {}",
                self.what(k),
                a.snippet()
            ));
        }
        if t.over {
            self.ctx.problem(format!(
                "{} was answered 201: the sender could never hold that much",
                self.what(k)
            ));
        }
        Outcome::Done(id)
    }
}

/// `Retry-After` of a `429`, up to two seconds.
fn retry_after(a: &Answer) -> Duration {
    let secs = a
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(secs.min(2))
}

async fn send_item(s: Arc<Sending>, i: usize, rec: Arc<Rec>) {
    match s.items[i] {
        (a, None) => send_transfer(&s, &rec, a).await,
        // The crossing pair: A→B and B→A at the same moment.
        (a, Some(b)) => {
            tokio::join!(send_transfer(&s, &rec, a), send_transfer(&s, &rec, b));
        }
    }
}

async fn send_transfer(s: &Sending, rec: &Rec, k: usize) {
    let t = &s.transfers[k];
    let (ctx, cookie) = (&s.ctx, &s.users.cookies[t.from]);
    let request = TransferRequest {
        to: &s.users.emails[t.to],
        amount: t.amount,
        key: &t.key,
        expected: if t.over { &[409] } else { &[201, 409] },
    };
    let mut last = String::new();
    for attempt in 0..TRANSFER_ATTEMPTS {
        if attempt > 0 {
            s.retries.fetch_add(1, Relaxed);
        }
        let answer = http::transfer(&ctx.client, rec, &ctx.app, cookie, &request).await;
        match s.judge(k, answer) {
            ControlFlow::Break(outcome) => {
                let _ = s.outcomes[k].set(outcome);
                return;
            }
            ControlFlow::Continue((why, wait)) => {
                s.troubled[t.from].store(true, Relaxed);
                last = why;
                tokio::time::sleep(wait.max(Duration::from_millis(20 << attempt))).await;
            }
        }
    }
    let _ = s.outcomes[k].set(Outcome::Unresolved);
    ctx.problem(format!(
        "{}: no final answer after {TRANSFER_ATTEMPTS} attempts with its Idempotency-Key \
         (last: {last})",
        s.what(k)
    ));
}

/// The balance readers' shared state while the transfers run.
struct Sampling {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    /// The users read, in turn.
    who: Vec<usize>,
    ceiling: Vec<i64>,
    reads: AtomicU64,
    lowest: AtomicI64,
}

/// A balance read while money moves may be any committed state: never below zero, never more
/// than the user's deposits and every transfer to it.
async fn sample(s: Arc<Sampling>, i: usize, rec: Arc<Rec>) {
    let user = s.who[i % s.who.len()];
    let cookie = &s.users.cookies[user];
    if let Ok(b) = http::balance(&s.ctx.client, &rec, &s.ctx.app, cookie).await {
        s.reads.fetch_add(1, Relaxed);
        s.lowest.fetch_min(b, Relaxed);
        if b < 0 {
            s.ctx.problem(format!(
                "user {user}: a balance read {b} paise while the transfers ran: below zero"
            ));
        } else if b > s.ceiling[user] {
            s.ctx.problem(format!(
                "user {user}: a balance read {b} paise while the transfers ran, more than the {} \
                 its deposits and every transfer to it add up to",
                s.ceiling[user]
            ));
        }
    }
}

/// Which users the readers read: in transfers-hot-sender the sender every other time.
fn readers_turns(rng: &mut StdRng, scenario: Scenario, users: usize) -> Vec<usize> {
    if scenario == Scenario::TransfersHotSender {
        let recipients = (users - 1).min(HOT_READ_RECIPIENTS);
        return (1..=recipients).flat_map(|r| [0, r]).collect();
    }
    let mut who: Vec<usize> = (0..users).collect();
    who.shuffle(rng);
    who
}

/// The transfers answered `201`, by user, and what the check found of them.
pub(super) struct Book {
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
    fn new(ctx: &Ctx, sending: &Sending, monotone: Vec<bool>) -> Book {
        let users = sending.users.cookies.len();
        let transfers = sending.transfers.clone();
        let outcomes: Vec<Outcome> = (0..transfers.len()).map(|k| sending.outcome(k)).collect();
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
            troubled: sending.troubled.iter().map(|t| t.load(Relaxed)).collect(),
            matched: AtomicUsize::new(0),
            transfers,
            outcomes,
        };
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (k, t) in book.transfers.iter().enumerate() {
            book.involving[t.from] += 1;
            book.involving[t.to] += 1;
            let Outcome::Done(id) = &book.outcomes[k] else {
                continue;
            };
            book.paid_out[t.from] += t.amount;
            book.paid_in[t.to] += t.amount;
            let Some(id) = id else { continue };
            if let Some(first) = ids.insert(id, k) {
                ctx.problem(format!(
                    "transfers {first} and {k} were both answered 201 with the id {id}"
                ));
            }
            book.out_by_user[t.from].insert(id.clone(), k);
            book.in_by_user[t.to].insert(id.clone(), k);
        }
        book
    }

    pub(super) fn involving(&self, user: usize) -> usize {
        self.involving[user]
    }

    /// The balance the check read against deposits in + transfers in − transfers out.
    pub(super) fn check_balance(&self, ctx: &Ctx, user: usize, balance: i64, deposits: i64) {
        let (paid_in, paid_out) = (self.paid_in[user], self.paid_out[user]);
        let expected = deposits + paid_in - paid_out;
        if balance != expected {
            ctx.problem(format!(
                "user {user}: balance {balance} paise, but deposits in {deposits} + transfers in \
                 {paid_in} - transfers out {paid_out} = {expected}"
            ));
        }
    }

    /// One `transfer_out` or `transfer_in` item of `user`'s transactions.
    pub(super) fn check_item(&self, ctx: &Ctx, user: usize, kind: &str, item: &serde_json::Value) {
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

    /// Once every user is checked: each `201` listed once on each side, the money conserved,
    /// and no `409` of a sender whose balance only went down while it was still enough.
    pub(super) fn finish(&self, ctx: &Ctx, deposits: &[i64], balances: &[i64]) {
        let (total, credited) = (balances.iter().sum::<i64>(), deposits.iter().sum::<i64>());
        if total != credited {
            ctx.problem(format!(
                "money is not conserved: the balances add up to {total} paise, the successful \
                 deposits credited {credited} ({:+})",
                total - credited
            ));
        }
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

    fn report(&self, sending: &Sending) -> TransferReport {
        let count = |o: &dyn Fn(&Outcome) -> bool| self.outcomes.iter().filter(|x| o(x)).count();
        TransferReport {
            planned: self.transfers.len(),
            over_balance: self.transfers.iter().filter(|t| t.over).count(),
            succeeded: count(&|o| matches!(o, Outcome::Done(_))),
            insufficient_funds: count(&|o| *o == Outcome::Refused),
            other_answers: count(&|o| *o == Outcome::Other),
            unresolved: count(&|o| *o == Outcome::Unresolved),
            retries: sending.retries.load(Relaxed),
            moved_paise: self.paid_out.iter().sum(),
            matched: self.matched.load(Relaxed),
            ..TransferReport::default()
        }
    }
}

/// What each user is credited by the successful deposits among `deps`.
fn credits(users: usize, deps: &[Dep]) -> Vec<i64> {
    let mut c = vec![0; users];
    for d in deps.iter().filter(|d| d.success) {
        c[d.user] += d.amount;
    }
    c
}

fn add_counts(c: &mut Counts, more: &Counts) {
    c.deposits_requested += more.deposits_requested;
    c.deposits_created += more.deposits_created;
    c.successes += more.successes;
    c.failures += more.failures;
    c.deliveries += more.deliveries;
    c.duplicate_deliveries += more.duplicate_deliveries;
    c.late_deliveries += more.late_deliveries;
    c.contradicting_deliveries += more.contradicting_deliveries;
    c.credited_paise += more.credited_paise;
}

/// The funding and the storm's deposits as one list (the storm's after the funding's), with
/// their deliveries: the funding's wave, the storm's wave, and the late ones of both.
struct Deposits {
    deps: Vec<Dep>,
    storm_from: usize,
    funding_wave: Vec<Delivery>,
    storm_wave: Vec<Delivery>,
    late: Vec<Delivery>,
}

fn combine(funding: Plan, storm: Option<Plan>) -> Deposits {
    let mut d = Deposits {
        storm_from: funding.deps.len(),
        deps: funding.deps,
        funding_wave: funding.wave,
        storm_wave: Vec::new(),
        late: funding.late,
    };
    if let Some(storm) = storm {
        let offset = d.storm_from;
        let moved = |v: Vec<Delivery>| {
            v.into_iter().map(move |x| Delivery {
                dep: x.dep + offset,
                ..x
            })
        };
        d.storm_wave = moved(storm.wave).collect();
        d.late.extend(moved(storm.late));
        d.deps.extend(storm.deps);
    }
    d
}

/// Runs a transfers-* scenario and checks the books.
pub(super) async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    let mut run = Run::start(cfg).await?;
    let t = run
        .cfg
        .run
        .transfer
        .clone()
        .context("a transfers scenario without its options")?;
    let max_amount = http::max_amount(&run.ctx.client, &run.ctx.app)
        .await
        .unwrap_or(FALLBACK_MAX_AMOUNT)
        .max(1);
    run.healthz().await;
    let users = run.sign_in().await?;
    let (scenario, n) = (run.cfg.scenario, run.cfg.run.users);
    let drafts = draft(&mut run.rng, scenario, n, &t);
    let mut f = run.fund(&users, &drafts, &t, max_amount).await?;

    let plan = finalize(
        &mut run.rng,
        &drafts,
        &f.funded,
        &f.stormed,
        max_amount,
        &users.run_id,
    );
    let who = readers_turns(&mut run.rng, scenario, n);
    let sampling = Arc::new(Sampling::new(&run.ctx, &users, who, plan.ceiling));
    let sending = Arc::new(Sending::new(&run.ctx, &users, plan.transfers, plan.items));
    let storm = std::mem::take(&mut f.storm_wave);
    let elapsed = run
        .transfer(&f.settle, &sending, &sampling, storm, t.read_concurrency)
        .await?;
    run.late(&f.settle, std::mem::take(&mut f.late)).await;

    let book = Arc::new(Book::new(&run.ctx, &sending, plan.monotone));
    let check = run
        .check(&f.settle, Some(book.clone()), &mut f.counts)
        .await;
    let mut report = book.report(&sending);
    report.storm_deposits = f.storm_deposits;
    report.succeeded_per_sec = report.succeeded as f64 / elapsed.as_secs_f64().max(1e-9);
    let healthz = run.phases.iter().find(|p| p.name == "healthz");
    if let Some(h) = healthz.filter(|h| h.rate > 0.0) {
        report.succeeded_ratio_to_healthz = report.succeeded_per_sec / h.rate;
    }
    report.balance_reads = sampling.reads.load(Relaxed);
    report.lowest_balance_read = (report.balance_reads > 0).then(|| sampling.lowest.load(Relaxed));
    Ok(run.report(f.counts, check, f.credited_per_sec, Some(report)))
}

/// The users funded: the deposits of both kinds created and planned, the funding's settled.
struct Funded {
    settle: Arc<Settle>,
    counts: Counts,
    /// Per user: the balance the funding gave, and what the storm will add.
    funded: Vec<i64>,
    stormed: Vec<i64>,
    storm_deposits: usize,
    storm_wave: Vec<Delivery>,
    late: Vec<Delivery>,
    credited_per_sec: f64,
}

impl Sending {
    fn new(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        transfers: Vec<Transfer>,
        items: Vec<(usize, Option<usize>)>,
    ) -> Sending {
        Sending {
            ctx: ctx.clone(),
            users: users.clone(),
            outcomes: transfers.iter().map(|_| OnceLock::new()).collect(),
            transfers,
            items,
            retries: AtomicU64::new(0),
            troubled: users
                .cookies
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }
}

impl Sampling {
    fn new(ctx: &Arc<Ctx>, users: &Arc<Users>, who: Vec<usize>, ceiling: Vec<i64>) -> Sampling {
        Sampling {
            ctx: ctx.clone(),
            users: users.clone(),
            who,
            ceiling,
            reads: AtomicU64::new(0),
            lowest: AtomicI64::new(i64::MAX),
        }
    }
}

impl Run {
    /// Creates the funding deposits (and the storm's, settled later), and settles the funding
    /// by webhook.
    async fn fund(
        &mut self,
        users: &Arc<Users>,
        drafts: &Drafts,
        t: &TransferConfig,
        max_amount: i64,
    ) -> anyhow::Result<Funded> {
        let (scenario, n, deposits) =
            (self.cfg.scenario, self.cfg.run.users, self.cfg.run.deposits);
        let (storm_owners, storm_amounts) =
            storm(&mut self.rng, scenario, n, t.storm_deposits, max_amount);
        let to_sender = storm_owners
            .iter()
            .zip(&storm_amounts)
            .filter(|(&u, _)| u == 0)
            .map(|(_, &a)| a)
            .sum();
        let (owners, amounts) = funding(
            &mut self.rng,
            scenario,
            (n, deposits),
            drafts,
            to_sender,
            max_amount,
        );
        let funding = self
            .create("deposits", users.clone(), owners, amounts)
            .await;
        let stormy = match t.storm_deposits {
            0 => None,
            _ => Some(
                self.create("storm-deposits", users.clone(), storm_owners, storm_amounts)
                    .await,
            ),
        };
        let funding_plan = self.plan(&funding);
        let storm_plan = stormy.map(|c| self.plan(&c));
        let mut counts = self.counts(&funding_plan);
        if let Some(p) = &storm_plan {
            add_counts(&mut counts, &self.counts(p));
        }
        let storm_deposits = storm_plan.as_ref().map_or(0, |p| p.deps.len());
        let d = combine(funding_plan, storm_plan);
        let funded = credits(n, &d.deps[..d.storm_from]);
        let stormed = credits(n, &d.deps[d.storm_from..]);
        let settle = Arc::new(Settle::new(self.ctx.clone(), users.clone(), d.deps));
        let credited_per_sec = self.settle(&settle, d.funding_wave).await?;
        Ok(Funded {
            settle,
            counts,
            funded,
            stormed,
            storm_deposits,
            storm_wave: d.storm_wave,
            late: d.late,
            credited_per_sec,
        })
    }

    /// The transfers, with the balance readers and the storm's webhooks alongside; answers how
    /// long the transfers took.
    async fn transfer(
        &mut self,
        settle: &Arc<Settle>,
        sending: &Arc<Sending>,
        sampling: &Arc<Sampling>,
        storm: Vec<Delivery>,
        read_concurrency: usize,
    ) -> anyhow::Result<Duration> {
        let before = metrics::scrape(&self.ctx.client, &self.ctx.app).await;
        let stop = Arc::new(AtomicBool::new(false));
        let bound = Bound::Until(stop.clone());
        let reads = self.phase(
            "balance-reads",
            bound,
            read_concurrency,
            sampling.clone(),
            sample,
        );
        let reads = tokio::spawn(reads);
        let storm = (!storm.is_empty())
            .then(|| tokio::spawn(self.deliveries("storm-webhooks", settle, storm)));
        let bound = Bound::Items(sending.items.len());
        let tasks = tasks(&sending.items, self.cfg.run.concurrency);
        let sent = self
            .phase("transfers", bound, tasks, sending.clone(), send_item)
            .await;
        let storm = match storm {
            Some(h) => Some(h.await),
            None => None,
        };
        // The readers stop whatever became of the storm.
        stop.store(true, Relaxed);
        let storm = storm.transpose().context("the storm's webhooks failed")?;
        let reads = reads.await.context("the balance readers failed")?;
        let after = metrics::scrape(&self.ctx.client, &self.ctx.app).await;
        // The phases ran side by side: one pair of scrapes covers them all.
        let writer = metrics::figures(before.as_ref(), after.as_ref());
        let elapsed = sent.elapsed;
        let ran: Vec<PhaseResult> = [Some(sent), storm, Some(reads)]
            .into_iter()
            .flatten()
            .collect();
        for r in &ran {
            self.phases.push(PhaseReport::new(r, writer.clone()));
        }
        Ok(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn config(transfers: usize, over_balance: f64) -> TransferConfig {
        TransferConfig {
            transfers,
            over_balance,
            storm_deposits: 0,
            read_concurrency: 1,
        }
    }

    #[test]
    fn random_transfers_never_pay_the_sender_and_reach_every_kind() {
        let mut rng = StdRng::seed_from_u64(1);
        let d = draft(&mut rng, Scenario::TransfersRandom, 3, &config(3000, 0.1));
        assert_eq!(d.parts.len(), 3000);
        assert!(d.parts.iter().all(|&(f, t, _)| f != t && f < 3 && t < 3));
        let over = d.parts.iter().filter(|p| p.2 == Draft::Over).count();
        assert!((200..400).contains(&over), "{over}");
        assert!(d.items.iter().all(|i| i.1.is_none()));
    }

    #[test]
    fn crossing_transfers_go_in_opposite_pairs() {
        let mut rng = StdRng::seed_from_u64(2);
        let d = draft(&mut rng, Scenario::TransfersCrossing, 7, &config(41, 0.1));
        assert_eq!(d.parts.len(), 40);
        assert_eq!(d.items.len(), 20);
        for &(a, b) in &d.items {
            let b = b.expect("a pair");
            let (pa, pb) = (d.parts[a], d.parts[b]);
            assert_eq!((pa.0, pa.1), (pb.1, pb.0), "item {a}/{b}");
            assert!(pa.0 < 6 && pa.1 < 6, "the seventh user has no partner");
            assert_eq!(pa.0 / 2, pa.1 / 2);
        }
    }

    #[test]
    fn every_scenario_keeps_as_many_transfers_in_flight_as_its_concurrency() {
        let mut rng = StdRng::seed_from_u64(4);
        for (scenario, in_flight) in [
            (Scenario::TransfersRandom, 64),
            (Scenario::TransfersHotSender, 64),
            // Each task sends a pair at once.
            (Scenario::TransfersCrossing, 32),
        ] {
            let d = draft(&mut rng, scenario, 100, &config(500, 0.1));
            assert_eq!(tasks(&d.items, 64), in_flight, "{scenario:?}");
            assert_eq!(tasks(&d.items, 1), 1, "{scenario:?}: at least one task");
        }
    }

    #[test]
    fn the_hot_sender_is_funded_with_nine_tenths_of_what_it_sends() {
        let mut rng = StdRng::seed_from_u64(3);
        let d = draft(
            &mut rng,
            Scenario::TransfersHotSender,
            50,
            &config(1000, 0.0),
        );
        assert!(d
            .parts
            .iter()
            .all(|&(f, t, _)| f == 0 && (1..50).contains(&t)));
        let sends: i64 = d
            .parts
            .iter()
            .map(|p| match p.2 {
                Draft::Small(a) => a,
                other => panic!("{other:?}"),
            })
            .sum();
        let hot = Scenario::TransfersHotSender;
        let (owners, amounts) = funding(&mut rng, hot, (50, 7), &d, 0, 10_000_000);
        assert_eq!(owners, vec![0; 7]);
        let total: i64 = amounts.iter().sum();
        let nine_tenths = (sends as f64 * HOT_FUNDING) as i64;
        assert!(total >= nine_tenths && total < sends, "{total} of {sends}");
        let (_, capped) = funding(&mut rng, hot, (50, 7), &d, 0, 1000);
        assert_eq!(capped, vec![1000; 7], "no deposit over the largest amount");
        // What the storm brings the sender is counted in.
        let (_, less) = funding(&mut rng, hot, (50, 7), &d, 70_000, 10_000_000);
        let total: i64 = less.iter().sum();
        assert!(
            total >= nine_tenths - 70_000 && total < sends - 70_000,
            "{total}"
        );
        let (_, least) = funding(&mut rng, hot, (50, 7), &d, sends, 10_000_000);
        assert_eq!(
            least,
            vec![1; 7],
            "a storm bigger than the sends leaves a paisa each"
        );
    }

    #[test]
    fn an_over_balance_transfer_asks_for_more_than_the_sender_could_ever_hold() {
        let mut rng = StdRng::seed_from_u64(4);
        let drafts = Drafts {
            parts: vec![
                (0, 1, Draft::Small(500)),
                (1, 0, Draft::Over),
                (2, 1, Draft::Small(700)),
                (1, 2, Draft::Over),
                (0, 2, Draft::Over),
                (2, 0, Draft::Near),
            ],
            items: vec![(0, Some(1)), (2, None), (3, Some(4)), (5, None)],
        };
        let funded = [1_000, 2_000, 9_000];
        let stormed = [0, 300, 0];
        let plan = finalize(&mut rng, &drafts, &funded, &stormed, 100_000, "r");
        let near = plan.transfers[5].amount;
        assert!((4_500..=13_500).contains(&near), "{near}");
        // User 1 can reach 2,000 + 300 + 500 + 700.
        assert_eq!(plan.ceiling[1], 3_500);
        assert_eq!(plan.ceiling[0], 1_000 + near);
        for t in plan.transfers.iter().filter(|t| t.over) {
            assert!(t.amount > plan.ceiling[t.from], "{t:?}");
            assert!(t.amount <= plan.ceiling[t.from] + 1 + OVER_MARGIN);
        }
        assert_eq!(plan.transfers[4].key, "load-r-t4");
        // Only over-balance transfers go to user 2: they never go through.
        assert_eq!(plan.monotone, vec![false, false, true]);
        // With a small largest amount, the over-balance transfers that cannot pass the sender's
        // reach are left out, and their items with them.
        let plan = finalize(&mut rng, &drafts, &funded, &stormed, 3_000, "r");
        assert_eq!(plan.transfers.len(), 3);
        assert!(plan.transfers.iter().all(|t| !t.over));
        assert_eq!(plan.items, vec![(0, None), (1, None), (2, None)]);
        assert_eq!(plan.transfers[2].amount, 3_000, "near, capped");
        assert_eq!(
            plan.transfers[2].key, "load-r-t5",
            "keys keep the planned index"
        );
    }

    #[test]
    fn a_user_nothing_comes_to_is_monotone() {
        let mut rng = StdRng::seed_from_u64(5);
        let drafts = Drafts {
            parts: vec![(0, 1, Draft::Small(5)), (0, 2, Draft::Small(5))],
            items: vec![(0, None), (1, None)],
        };
        let plan = finalize(&mut rng, &drafts, &[10, 0, 0, 0], &[0, 0, 0, 7], 1_000, "r");
        assert_eq!(plan.monotone, vec![true, false, false, false]);
        assert_eq!(plan.ceiling, vec![10, 5, 5, 7]);
    }

    fn ctx() -> Arc<Ctx> {
        Arc::new(Ctx {
            client: reqwest::Client::new(),
            app: "http://localhost:1".into(),
            secret: Vec::new(),
            problems: std::sync::Mutex::new(Vec::new()),
            problems_total: AtomicUsize::new(0),
        })
    }

    fn users(n: usize) -> Arc<Users> {
        Arc::new(Users {
            cookies: (0..n).map(|i| format!("session_id={i}")).collect(),
            emails: (0..n).map(|i| format!("u{i}@load.test")).collect(),
            names: (0..n).map(|i| format!("Load user {i}")).collect(),
            run_id: "r".into(),
            refused: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

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
    fn the_book_holds_balances_to_deposits_and_the_201s() {
        let ctx = ctx();
        let b = book(&ctx);
        assert_eq!(
            b.report(&Sending::new(&ctx, &users(3), vec![], vec![]))
                .succeeded,
            2
        );
        b.check_balance(&ctx, 0, 700, 1_000);
        b.check_balance(&ctx, 1, 250, 0);
        b.check_balance(&ctx, 2, 50, 0);
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
        b.check_balance(&ctx, 0, 1_000, 1_000);
        assert_eq!(problems(&ctx).len(), 1);
        assert!(
            problems(&ctx)[0].contains("deposits in 1000 + transfers in 0 - transfers out 300"),
            "{:?}",
            problems(&ctx)
        );
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
        b.finish(&ctx, &[1_000, 0, 0], &[700, 250, 50]);
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
        b.finish(&ctx, &[1_000, 0, 0], &[700, 250, 50]);
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
    fn money_made_or_lost_fails_the_check() {
        let ctx = ctx();
        let b = book(&ctx);
        list_all(&ctx, &b);
        b.finish(&ctx, &[1_000, 0, 0], &[700, 250, 60]);
        let p = problems(&ctx);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains(
                "money is not conserved: the balances add up to 1010 paise, the successful \
                 deposits credited 1000 (+10)"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_409_while_a_balance_that_only_went_down_still_held_enough_fails_the_check() {
        let ctx = ctx();
        let b = book(&ctx);
        list_all(&ctx, &b);
        // User 0 only ever paid out; its 900 was refused, yet it still holds 950 at the end.
        b.finish(&ctx, &[1_250, 0, 0], &[950, 250, 50]);
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
        b.finish(&ctx, &[1_250, 0, 0], &[950, 250, 50]);
        assert!(problems(&ctx).is_empty(), "{:?}", problems(&ctx));
    }

    #[test]
    fn the_storm_shares_the_hot_senders_wallet() {
        let mut rng = StdRng::seed_from_u64(6);
        let (owners, amounts) = storm(&mut rng, Scenario::TransfersHotSender, 4, 8, 50);
        assert_eq!(owners, vec![0, 1, 0, 2, 0, 3, 0, 1]);
        assert!(amounts.iter().all(|&a| a == 50));
        let (owners, amounts) = storm(&mut rng, Scenario::TransfersHotSender, 4, 400, 1_000_000);
        for (u, a) in owners.iter().zip(amounts) {
            assert!(
                *u != 0 || (100..=1_000).contains(&a),
                "the sender's storm is small"
            );
        }
        let (owners, _) = storm(&mut rng, Scenario::TransfersRandom, 3, 5, 1000);
        assert_eq!(owners, vec![0, 1, 2, 0, 1]);
    }
}

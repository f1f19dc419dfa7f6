//! Making the withdrawals: the phase that makes them, each sent and retried under its
//! `Idempotency-Key`, and each answer judged into the withdrawal's outcome. The requests
//! answered `201` are timed apart as well: theirs is the rate and latency compared with deposit
//! creation (the refusals are quicker and would flatter it).

use super::plan::Withdrawal;
use crate::http::{self, Answer, WithdrawalRequest};
use crate::phase::{Bound, Rec};
use crate::scenario::together::Pending;
use crate::scenario::transfers::{retry_after, Outcome};
use crate::scenario::{Ctx, Run, Users};
use onramp_api::{ErrorBody, ErrorCode};
use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Attempts at one withdrawal (again after a `5xx`, `429` or transport error, same key).
const WITHDRAWAL_ATTEMPTS: u32 = 6;

/// The withdrawals phase's shared state.
pub(in crate::scenario) struct Withdrawing {
    ctx: Arc<Ctx>,
    pub(in crate::scenario) users: Arc<Users>,
    pub(in crate::scenario) withdrawals: Vec<Withdrawal>,
    pub(in crate::scenario) outcomes: Vec<OnceLock<Outcome>>,
    pub(in crate::scenario) retries: AtomicU64,
    /// A user some of whose withdrawals met a `5xx`, `429` or transport error.
    pub(in crate::scenario) troubled: Vec<AtomicBool>,
    /// The requests answered `201`, timed.
    pub(in crate::scenario) created: Rec,
}

impl Withdrawing {
    pub(in crate::scenario) fn new(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        withdrawals: Vec<Withdrawal>,
    ) -> Withdrawing {
        Withdrawing {
            ctx: ctx.clone(),
            users: users.clone(),
            outcomes: withdrawals.iter().map(|_| OnceLock::new()).collect(),
            withdrawals,
            retries: AtomicU64::new(0),
            troubled: users
                .cookies
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            created: Rec::default(),
        }
    }

    pub(in crate::scenario) fn outcome(&self, k: usize) -> Outcome {
        self.outcomes[k]
            .get()
            .cloned()
            .unwrap_or(Outcome::Unresolved)
    }

    pub(in crate::scenario) fn what(&self, k: usize) -> String {
        let w = &self.withdrawals[k];
        let why = match (w.over, w.fails()) {
            (true, _) => ", over the balance",
            (false, true) => ", to fail at the bank",
            (false, false) => "",
        };
        format!("withdrawal {k} (user {}, {} paise{why})", w.user, w.amount)
    }

    /// What one answer says of withdrawal `k`: `Break` with its outcome, or `Continue` with the
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
        let code = ErrorBody::code_of(&a.body);
        let again = || format!("{} {}", a.status, a.snippet());
        match (a.status.as_u16(), code) {
            (201, _) => ControlFlow::Break(self.created(k, &a)),
            (409, Some(ErrorCode::InsufficientFunds)) => ControlFlow::Break(Outcome::Refused),
            (409, Some(ErrorCode::RequestInProgress)) => {
                ControlFlow::Continue((again(), Duration::ZERO))
            }
            (429, _) => ControlFlow::Continue((again(), retry_after(&a))),
            // Final: the money is back. The simulator takes every payout asked of it.
            (502, Some(ErrorCode::BankRefused)) => {
                self.ctx.problem(format!(
                    "{} was answered 502 bank_refused: {}",
                    self.what(k),
                    a.snippet()
                ));
                ControlFlow::Break(Outcome::Other)
            }
            // Among them 502 bank_unavailable: the same key answers the withdrawal again.
            (s, _) if s >= 500 => ControlFlow::Continue((again(), Duration::ZERO)),
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

    /// A `201`: the amount left the balance, whatever else is wrong with the answer.
    fn created(&self, k: usize, a: &Answer) -> Outcome {
        let w = &self.withdrawals[k];
        let v = a.json().unwrap_or_default();
        let id = v["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let wrong = if !id.as_deref().is_some_and(|id| id.starts_with("wd_")) {
            Some("no wd_ id")
        } else if v["status"] != "processing" {
            Some("a status other than processing")
        } else if v["amount"].as_i64() != Some(w.amount) {
            Some("another amount")
        } else if v["currency"] != "INR" {
            Some("a currency other than INR")
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
        if w.over {
            self.ctx.problem(format!(
                "{} was answered 201: the user could never hold that much",
                self.what(k)
            ));
        }
        Outcome::Done(id)
    }
}

pub(in crate::scenario) async fn withdraw_one(s: Arc<Withdrawing>, k: usize, rec: Arc<Rec>) {
    let w = &s.withdrawals[k];
    let (ctx, cookie) = (&s.ctx, &s.users.cookies[w.user]);
    let request = WithdrawalRequest {
        amount: w.amount,
        key: &w.key,
        expected: if w.over { &[409] } else { &[201, 409] },
    };
    let mut last = String::new();
    for attempt in 0..WITHDRAWAL_ATTEMPTS {
        if attempt > 0 {
            s.retries.fetch_add(1, Relaxed);
        }
        let started = Instant::now();
        let answer = http::withdraw(&ctx.client, &rec, &ctx.app, cookie, &request).await;
        if answer.as_ref().is_ok_and(|a| a.status.as_u16() == 201) {
            s.created.request(started, true);
        }
        match s.judge(k, answer) {
            ControlFlow::Break(outcome) => {
                let _ = s.outcomes[k].set(outcome);
                return;
            }
            ControlFlow::Continue((why, wait)) => {
                s.troubled[w.user].store(true, Relaxed);
                last = why;
                tokio::time::sleep(wait.max(Duration::from_millis(20 << attempt))).await;
            }
        }
    }
    let _ = s.outcomes[k].set(Outcome::Unresolved);
    ctx.problem(format!(
        "{}: no final answer after {WITHDRAWAL_ATTEMPTS} attempts with its Idempotency-Key \
         (last: {last})",
        s.what(k)
    ));
}

impl Run {
    /// The withdrawals phase on `concurrency` connections.
    pub(in crate::scenario) fn withdrawals_phase(
        &self,
        withdrawing: &Arc<Withdrawing>,
        concurrency: usize,
    ) -> Pending {
        let bound = Bound::Items(withdrawing.withdrawals.len());
        let state = withdrawing.clone();
        Box::pin(self.phase("withdrawals", bound, concurrency, state, withdraw_one))
    }
}

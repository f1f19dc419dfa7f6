//! Sending the transfers: the phase that sends them (beside the balance readers and the storm's
//! webhooks), each transfer sent (a crossing pair at once) and retried under its
//! `Idempotency-Key`, and each answer judged into the transfer's outcome.

use super::plan::Transfer;
use crate::http::{self, Answer, TransferRequest};
use crate::phase::{Bound, Rec};
use crate::scenario::readers::Sampling;
use crate::scenario::together::Pending;
use crate::scenario::{Ctx, Delivery, Run, Settle, Users};
use onramp_api::{ErrorBody, ErrorCode};
use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Attempts at one transfer (again after a `5xx`, `429` or transport error, same key).
const TRANSFER_ATTEMPTS: u32 = 6;

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

/// How a transfer (or a withdrawal) ended.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::scenario) enum Outcome {
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
pub(in crate::scenario) struct Sending {
    ctx: Arc<Ctx>,
    pub(super) users: Arc<Users>,
    pub(super) transfers: Vec<Transfer>,
    items: Vec<(usize, Option<usize>)>,
    pub(super) outcomes: Vec<OnceLock<Outcome>>,
    pub(super) retries: AtomicU64,
    /// A sender some of whose transfers met a `5xx`, `429` or transport error.
    pub(super) troubled: Vec<AtomicBool>,
}

impl Sending {
    pub(in crate::scenario) fn new(
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

    pub(super) fn outcome(&self, k: usize) -> Outcome {
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
        let code = ErrorBody::code_of(&a.body);
        let again = || format!("{} {}", a.status, a.snippet());
        match a.status.as_u16() {
            201 => ControlFlow::Break(self.created(k, &a)),
            409 if code == Some(ErrorCode::InsufficientFunds) => {
                ControlFlow::Break(Outcome::Refused)
            }
            409 if code == Some(ErrorCode::RequestInProgress) => {
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
pub(in crate::scenario) fn retry_after(a: &Answer) -> Duration {
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

impl Run {
    /// The transfers phase, on as many tasks as keep `concurrency` requests in flight.
    pub(in crate::scenario) fn transfers_phase(
        &self,
        sending: &Arc<Sending>,
        concurrency: usize,
    ) -> Pending {
        let bound = Bound::Items(sending.items.len());
        let tasks = tasks(&sending.items, concurrency);
        Box::pin(self.phase("transfers", bound, tasks, sending.clone(), send_item))
    }

    /// The transfers, with the balance readers and the storm's webhooks alongside; answers how
    /// long the transfers took.
    pub(super) async fn transfer(
        &mut self,
        settle: &Arc<Settle>,
        sending: &Arc<Sending>,
        sampling: &Arc<Sampling>,
        storm: Vec<Delivery>,
        read_concurrency: usize,
    ) -> anyhow::Result<Duration> {
        let mut phases = vec![self.transfers_phase(sending, self.cfg.run.concurrency)];
        if !storm.is_empty() {
            phases.push(Box::pin(self.deliveries("storm-webhooks", settle, storm)));
        }
        let ran = self
            .together(phases, None, sampling, read_concurrency)
            .await?;
        Ok(ran[0].elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::transfers::plan::draft;
    use crate::scenario::transfers::plan::tests::config;
    use crate::scenario::Scenario;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

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
}

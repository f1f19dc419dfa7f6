//! Requests sent under an `Idempotency-Key` until they get a final answer: the transfers and the
//! withdrawals. A `5xx`, a `429` or a transport error sends the request again with the same key
//! (the app must answer it, not make it twice); each answer is judged into the request's
//! outcome. What only one kind knows (how to send it, what its `201` must say) is its [`Kind`].
//! The checks and the reports count the outcomes alike ([`tally`], [`one_id_each`]).

use crate::http::Answer;
use crate::phase::Rec;
use crate::scenario::{Ctx, Users};
use onramp_api::{ErrorBody, ErrorCode};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Attempts at one request (again after a `5xx`, `429` or transport error, same key).
const ATTEMPTS: u32 = 6;

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

/// One kind of keyed request: the requests planned, and what only this kind knows of them.
pub(in crate::scenario) trait Kind: Send + Sync + 'static {
    /// Whose balance a request takes from, as a problem names them.
    const PAYER: &'static str;

    /// The user who makes request `k`.
    fn user(&self, k: usize) -> usize;

    /// Request `k` asks for more than its user could ever hold: it must be refused.
    fn over(&self, k: usize) -> bool;

    /// Request `k`, as a problem names it.
    fn what(&self, k: usize) -> String;

    /// Sends request `k` once, with its key, as its user.
    fn send_once(
        &self,
        ctx: &Ctx,
        users: &Users,
        rec: &Rec,
        k: usize,
    ) -> impl Future<Output = Result<Answer, String>> + Send;

    /// What is wrong with `v`, the body of a `201` to request `k` (`id`: the id it names).
    fn wrong(&self, users: &Users, k: usize, v: &Value, id: Option<&str>) -> Option<&'static str>;

    /// The name of a `5xx` answer that is final for this kind (the same key would only answer
    /// it again); any other `5xx` is tried again.
    fn final_server_error(&self, _status: u16, _code: Option<ErrorCode>) -> Option<&'static str> {
        None
    }
}

/// The keyed requests of one kind, and what became of each: the state of their phase.
pub(in crate::scenario) struct Keyed<K> {
    ctx: Arc<Ctx>,
    pub(in crate::scenario) users: Arc<Users>,
    /// The requests, as their kind keeps them.
    pub(in crate::scenario) kind: K,
    pub(in crate::scenario) outcomes: Vec<OnceLock<Outcome>>,
    pub(in crate::scenario) retries: AtomicU64,
    /// A user some of whose requests met a `5xx`, `429` or transport error.
    troubled: Vec<AtomicBool>,
}

impl<K: Kind> Keyed<K> {
    /// `requests` requests of `kind`, none sent yet.
    pub(in crate::scenario) fn with(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        kind: K,
        requests: usize,
    ) -> Keyed<K> {
        Keyed {
            ctx: ctx.clone(),
            users: users.clone(),
            kind,
            outcomes: (0..requests).map(|_| OnceLock::new()).collect(),
            retries: AtomicU64::new(0),
            troubled: users
                .cookies
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }

    pub(in crate::scenario) fn outcome(&self, k: usize) -> Outcome {
        self.outcomes[k]
            .get()
            .cloned()
            .unwrap_or(Outcome::Unresolved)
    }

    /// Every request's outcome, for the check once their phase is over.
    pub(in crate::scenario) fn ended(&self) -> Vec<Outcome> {
        (0..self.outcomes.len()).map(|k| self.outcome(k)).collect()
    }

    /// The users some of whose requests met trouble, likewise.
    pub(in crate::scenario) fn troubled_users(&self) -> Vec<bool> {
        self.troubled.iter().map(|t| t.load(Relaxed)).collect()
    }

    /// Sends request `k` until an answer is final, and records its outcome.
    pub(in crate::scenario) async fn send(&self, k: usize, rec: &Rec) {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.retries.fetch_add(1, Relaxed);
            }
            let answer = self.kind.send_once(&self.ctx, &self.users, rec, k).await;
            match self.judge(k, answer) {
                ControlFlow::Break(outcome) => {
                    let _ = self.outcomes[k].set(outcome);
                    return;
                }
                ControlFlow::Continue((why, wait)) => {
                    self.troubled[self.kind.user(k)].store(true, Relaxed);
                    last = why;
                    tokio::time::sleep(wait.max(Duration::from_millis(20 << attempt))).await;
                }
            }
        }
        let _ = self.outcomes[k].set(Outcome::Unresolved);
        self.ctx.problem(format!(
            "{}: no final answer after {ATTEMPTS} attempts with its Idempotency-Key \
             (last: {last})",
            self.kind.what(k)
        ));
    }

    /// What one answer says of request `k`: `Break` with its outcome, or `Continue` with the
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
            (s, _) if s >= 500 => match self.kind.final_server_error(s, code) {
                Some(name) => ControlFlow::Break(self.other(k, format!("{name}: {}", a.snippet()))),
                None => ControlFlow::Continue((again(), Duration::ZERO)),
            },
            _ => ControlFlow::Break(self.other(k, again())),
        }
    }

    /// A final answer other than `201` and `409 insufficient_funds`: a problem.
    fn other(&self, k: usize, answer: String) -> Outcome {
        let what = self.kind.what(k);
        self.ctx.problem(format!("{what} was answered {answer}"));
        Outcome::Other
    }

    /// A `201`: the request went through, whatever else is wrong with the answer.
    fn created(&self, k: usize, a: &Answer) -> Outcome {
        let v = a.json().unwrap_or_default();
        let id = v["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        if let Some(wrong) = self.kind.wrong(&self.users, k, &v, id.as_deref()) {
            self.ctx.problem(format!(
                "{} was answered 201 with {wrong}: {}",
                self.kind.what(k),
                a.snippet()
            ));
        }
        if self.kind.over(k) {
            self.ctx.problem(format!(
                "{} was answered 201: the {} could never hold that much",
                self.kind.what(k),
                K::PAYER
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

/// How many `outcomes` were answered `201`, refused for insufficient funds, answered otherwise
/// and left unresolved, in that order: the reports' counts.
pub(in crate::scenario) fn tally(outcomes: &[Outcome]) -> [usize; 4] {
    let mut counts = [0; 4];
    for o in outcomes {
        let i = match o {
            Outcome::Done(_) => 0,
            Outcome::Refused => 1,
            Outcome::Other => 2,
            Outcome::Unresolved => 3,
        };
        counts[i] += 1;
    }
    counts
}

/// Each id answered with a `201` names one request: two that share one are a problem
/// (`kind`: what the requests are, in the plural).
pub(in crate::scenario) fn one_id_each(ctx: &Ctx, kind: &str, outcomes: &[Outcome]) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (k, o) in outcomes.iter().enumerate() {
        let Outcome::Done(Some(id)) = o else { continue };
        if let Some(first) = ids.insert(id, k) {
            ctx.problem(format!(
                "{kind} {first} and {k} were both answered 201 with the id {id}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::check::tests::{ctx, users};
    use reqwest::header::{HeaderMap, HeaderValue};
    use reqwest::StatusCode;

    /// A kind whose `502 bank_refused` is final, as a withdrawal's is.
    struct Refusable;

    impl Kind for Refusable {
        const PAYER: &'static str = "payer";

        fn user(&self, _: usize) -> usize {
            0
        }

        fn over(&self, k: usize) -> bool {
            k == 1
        }

        fn what(&self, k: usize) -> String {
            format!("request {k}")
        }

        async fn send_once(&self, _: &Ctx, _: &Users, _: &Rec, _: usize) -> Result<Answer, String> {
            Err("not sent in this test".into())
        }

        fn wrong(&self, _: &Users, _: usize, v: &Value, _: Option<&str>) -> Option<&'static str> {
            (v["status"] != "done").then_some("another status")
        }

        fn final_server_error(&self, status: u16, code: Option<ErrorCode>) -> Option<&'static str> {
            (status == 502 && code == Some(ErrorCode::BankRefused)).then_some("502 bank_refused")
        }
    }

    fn answer(status: u16, body: &str) -> Result<Answer, String> {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("5"));
        Ok(Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        })
    }

    fn error(code: &str) -> String {
        format!(r#"{{"error": {{"code": "{code}", "message": "m"}}}}"#)
    }

    #[test]
    fn only_a_final_answer_ends_a_keyed_request() {
        let ctx = ctx();
        let s = Keyed::with(&ctx, &users(1), Refusable, 2);
        let again = |a| match s.judge(0, a) {
            ControlFlow::Continue((_, wait)) => Some(wait),
            ControlFlow::Break(_) => None,
        };
        assert_eq!(again(Err("reset".into())), Some(Duration::ZERO));
        assert_eq!(
            again(answer(409, &error("request_in_progress"))),
            Some(Duration::ZERO)
        );
        assert_eq!(
            again(answer(429, "")),
            Some(Duration::from_secs(2)),
            "at most 2 s"
        );
        assert_eq!(
            again(answer(502, &error("bank_unavailable"))),
            Some(Duration::ZERO)
        );
        assert!(ctx.problems().is_empty(), "{:?}", ctx.problems());

        let done = answer(201, r#"{"id": "x1", "status": "done"}"#);
        assert_eq!(
            s.judge(0, done),
            ControlFlow::Break(Outcome::Done(Some("x1".into())))
        );
        let refused = answer(409, &error("insufficient_funds"));
        assert_eq!(s.judge(0, refused), ControlFlow::Break(Outcome::Refused));
        assert!(ctx.problems().is_empty(), "{:?}", ctx.problems());

        let bank_refused = answer(502, &error("bank_refused"));
        assert_eq!(s.judge(0, bank_refused), ControlFlow::Break(Outcome::Other));
        assert_eq!(
            s.judge(0, answer(400, "no")),
            ControlFlow::Break(Outcome::Other)
        );
        let odd = answer(201, r#"{"status": "odd"}"#);
        assert_eq!(s.judge(1, odd), ControlFlow::Break(Outcome::Done(None)));
        let p = ctx.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p[0].starts_with("request 0 was answered 502 bank_refused: {"),
            "{p:?}"
        );
        assert_eq!(p[1], "request 0 was answered 400 Bad Request no");
        assert_eq!(
            p[2],
            r#"request 1 was answered 201 with another status: {"status": "odd"}"#
        );
        assert_eq!(
            p[3],
            "request 1 was answered 201: the payer could never hold that much"
        );
    }

    #[test]
    fn the_outcomes_are_counted_and_each_id_names_one_request() {
        let ctx = ctx();
        let done = |id: &str| Outcome::Done(Some(id.into()));
        let outcomes = [
            done("a"),
            Outcome::Refused,
            done("b"),
            done("a"),
            Outcome::Unresolved,
        ];
        assert_eq!(tally(&outcomes), [3, 1, 0, 1]);
        one_id_each(&ctx, "requests", &outcomes);
        let p = ctx.problems();
        assert_eq!(p, ["requests 0 and 3 were both answered 201 with the id a"]);
    }
}

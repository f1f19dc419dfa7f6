//! Waiting for the payouts. The bank settles each payout `dev.payout_delay_ms` after it was
//! made (500 ms by default) and posts its webhook to the app (duplicated and reordered in the
//! benchmarks), so a withdrawal answered `201` stays `processing` a while; the check can only
//! hold each to its final status once none is. Each user's transactions are read until none of
//! its withdrawals is `processing`. The wait is bounded by progress: once [`STALL`] passes
//! without any payout settling (or [`MOST`] in all), a withdrawal still processing is a
//! problem, a payout the app never settled. A fixed bound would not do: the simulator's
//! reordering holds each delivery up to half a second, so tens of thousands of payouts take tens
//! of seconds to arrive, however fast the app takes them.

use crate::http;
use crate::phase::{Bound, Rec};
use crate::scenario::keyed::Outcome;
use crate::scenario::{Ctx, Run, Users};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::send::Withdrawing;

/// How long the wait goes on without any payout settling.
const STALL: Duration = Duration::from_secs(60);
/// How long it goes on at most, from the last withdrawal's answer.
const MOST: Duration = Duration::from_secs(600);
/// How often one user's transactions are read while its payouts are pending.
const POLL: Duration = Duration::from_millis(250);
/// Pages of 100 read at most per look (a cursor going round in circles ends there).
const MOST_PAGES: usize = 1_000;

/// The wait's shared state.
struct Waiting {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    /// The users that may hold a withdrawal: one of theirs was not refused.
    who: Vec<usize>,
    started: Instant,
    /// When the last user's withdrawals were all settled, in milliseconds from `started`.
    settled_ms: AtomicU64,
    /// When a user was last seen with fewer withdrawals processing, likewise.
    progress_ms: AtomicU64,
    stuck: AtomicBool,
}

impl Waiting {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn progressed(&self) {
        self.progress_ms.fetch_max(self.now_ms(), Relaxed);
    }

    /// Nothing settled for [`STALL`], or the wait took [`MOST`].
    fn stalled(&self) -> bool {
        let now = self.now_ms();
        let quiet = now.saturating_sub(self.progress_ms.load(Relaxed));
        quiet >= STALL.as_millis() as u64 || now >= MOST.as_millis() as u64
    }
}

impl Run {
    /// Waits until no withdrawal of `w` is listed as `processing`; answers how many seconds
    /// that took, or `None` when some still were as the wait stalled (each user's a problem).
    pub(in crate::scenario) async fn wait_for_payouts(&mut self, w: &Withdrawing) -> Option<f64> {
        let mut who: Vec<usize> = (0..w.kind.withdrawals.len())
            .filter(|&k| w.outcome(k) != Outcome::Refused)
            .map(|k| w.kind.withdrawals[k].user)
            .collect();
        who.sort_unstable();
        who.dedup();
        let state = Arc::new(Waiting {
            ctx: self.ctx.clone(),
            users: w.users.clone(),
            who,
            started: Instant::now(),
            settled_ms: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
        });
        let bound = Bound::Items(state.who.len());
        self.measured_phase("payouts-settle", bound, state.clone(), wait_user)
            .await;
        let stuck = state.stuck.load(Relaxed);
        (!stuck).then(|| state.settled_ms.load(Relaxed) as f64 / 1000.0)
    }
}

async fn wait_user(s: Arc<Waiting>, i: usize, rec: Arc<Rec>) {
    let user = s.who[i];
    let mut before: Option<usize> = None;
    loop {
        let still = processing(&s, &rec, user).await;
        match &still {
            Ok(ids) if ids.is_empty() => {
                s.settled_ms.fetch_max(s.now_ms(), Relaxed);
                s.progressed();
                return;
            }
            Ok(ids) => {
                if before.is_some_and(|b| ids.len() < b) {
                    s.progressed();
                }
                before = Some(ids.len());
            }
            Err(_) => {}
        }
        if s.stalled() {
            s.stuck.store(true, Relaxed);
            let what = match still {
                Ok(ids) => format!(
                    "{} withdrawals still processing: {}",
                    ids.len(),
                    ids.join(", ")
                ),
                Err(e) => format!("its transactions could not be read: {e}"),
            };
            s.ctx.problem(format!(
                "user {user}: {what} ({} s after the last withdrawal's answer, {} s without any \
                 payout settling)",
                s.now_ms() / 1000,
                s.now_ms().saturating_sub(s.progress_ms.load(Relaxed)) / 1000
            ));
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The ids of `user`'s withdrawals listed as `processing`, all pages read.
async fn processing(s: &Waiting, rec: &Rec, user: usize) -> Result<Vec<String>, String> {
    let (ctx, cookie) = (&s.ctx, &s.users.cookies[user]);
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MOST_PAGES {
        let (items, next) =
            http::transactions_page(&ctx.client, rec, ctx.app(), cookie, cursor.as_deref()).await?;
        let pending = items
            .iter()
            .filter(|i| i["kind"] == "withdrawal" && i["status"] == "processing");
        ids.extend(pending.map(|i| i["id"].as_str().unwrap_or("?").to_owned()));
        match next {
            Some(n) if !items.is_empty() => cursor = Some(n),
            _ => return Ok(ids),
        }
    }
    Err(format!(
        "the transactions did not end after {MOST_PAGES} pages"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::check::tests::ctx;
    use std::sync::atomic::AtomicUsize;

    fn waiting(ago: Duration, progress: Duration) -> Waiting {
        let users = Users {
            cookies: Vec::new(),
            emails: Vec::new(),
            names: Vec::new(),
            run_id: "r".into(),
            refused: Vec::<AtomicUsize>::new(),
        };
        Waiting {
            ctx: ctx(),
            users: Arc::new(users),
            who: Vec::new(),
            started: Instant::now().checked_sub(ago).unwrap(),
            settled_ms: AtomicU64::new(0),
            progress_ms: AtomicU64::new(progress.as_millis() as u64),
            stuck: AtomicBool::new(false),
        }
    }

    #[test]
    fn the_wait_ends_after_a_minute_without_any_payout_settling() {
        let secs = Duration::from_secs;
        assert!(!waiting(secs(59), secs(0)).stalled());
        assert!(waiting(secs(61), secs(0)).stalled());
        // Payouts still settling after a long wait: it goes on, up to ten minutes.
        let w = waiting(secs(300), secs(290));
        assert!(!w.stalled());
        assert!(!waiting(secs(599), secs(598)).stalled());
        assert!(waiting(secs(601), secs(600)).stalled());
    }
}

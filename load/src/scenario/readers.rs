//! The balance readers that run alongside the transfers and withdrawals: whom they read, in
//! turn, and what every read while money moves must satisfy.

use crate::http;
use crate::phase::Rec;
use crate::scenario::{Ctx, Scenario, Users};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

/// The hot sender's balance is read every other time; the rest go round these many recipients.
const HOT_READ_RECIPIENTS: usize = 256;

/// The balance readers' shared state while money moves.
pub(in crate::scenario) struct Sampling {
    ctx: Arc<Ctx>,
    users: Arc<Users>,
    /// The users read, in turn.
    who: Vec<usize>,
    ceiling: Vec<i64>,
    reads: AtomicU64,
    lowest: AtomicI64,
}

impl Sampling {
    pub(in crate::scenario) fn new(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        who: Vec<usize>,
        ceiling: Vec<i64>,
    ) -> Sampling {
        Sampling {
            ctx: ctx.clone(),
            users: users.clone(),
            who,
            ceiling,
            reads: AtomicU64::new(0),
            lowest: AtomicI64::new(i64::MAX),
        }
    }

    /// For the report: the balances read, and the lowest of them (`None` without any).
    pub(in crate::scenario) fn figures(&self) -> (u64, Option<i64>) {
        let reads = self.reads.load(Relaxed);
        (reads, (reads > 0).then(|| self.lowest.load(Relaxed)))
    }
}

/// A balance read while money moves may be any committed state: never below zero, never more
/// than the user's deposits and every transfer to it (a failed payout only gives back what its
/// withdrawal took).
pub(in crate::scenario) async fn sample(s: Arc<Sampling>, i: usize, rec: Arc<Rec>) {
    let user = s.who[i % s.who.len()];
    let cookie = &s.users.cookies[user];
    if let Ok(b) = http::balance(&s.ctx.client, &rec, s.ctx.app(), cookie).await {
        s.reads.fetch_add(1, Relaxed);
        s.lowest.fetch_min(b, Relaxed);
        if b < 0 {
            s.ctx.problem(format!(
                "user {user}: a balance read {b} paise while money moved: below zero"
            ));
        } else if b > s.ceiling[user] {
            s.ctx.problem(format!(
                "user {user}: a balance read {b} paise while money moved, more than the {} its \
                 deposits and every transfer to it add up to",
                s.ceiling[user]
            ));
        }
    }
}

/// Which users the readers read: in transfers-hot-sender the sender every other time.
pub(in crate::scenario) fn readers_turns(
    rng: &mut StdRng,
    scenario: Scenario,
    users: usize,
) -> Vec<usize> {
    if scenario == Scenario::TransfersHotSender {
        let recipients = (users - 1).min(HOT_READ_RECIPIENTS);
        return (1..=recipients).flat_map(|r| [0, r]).collect();
    }
    let mut who: Vec<usize> = (0..users).collect();
    who.shuffle(rng);
    who
}

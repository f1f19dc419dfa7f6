//! Making the withdrawals: the phase that makes them, each sent and retried under its
//! `Idempotency-Key` (`scenario::keyed`), and what a withdrawal's request and its `201` are. The
//! requests answered `201` are timed apart as well: theirs is the rate and latency compared with
//! deposit creation (the refusals are quicker and would flatter it).

use super::plan::Withdrawal;
use crate::http::{self, Answer, WithdrawalRequest};
use crate::phase::{Bound, Rec};
use crate::scenario::keyed::{Keyed, Kind};
use crate::scenario::together::Pending;
use crate::scenario::{Ctx, Run, Users};
use onramp_api::ErrorCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// The withdrawals phase's shared state.
pub(in crate::scenario) type Withdrawing = Keyed<Withdrawals>;

/// The withdrawals to make, and the requests answered `201`, timed.
pub(in crate::scenario) struct Withdrawals {
    pub(in crate::scenario) withdrawals: Vec<Withdrawal>,
    pub(in crate::scenario) created: Rec,
}

impl Withdrawing {
    pub(in crate::scenario) fn new(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        withdrawals: Vec<Withdrawal>,
    ) -> Withdrawing {
        let n = withdrawals.len();
        let kind = Withdrawals {
            withdrawals,
            created: Rec::default(),
        };
        Keyed::with(ctx, users, kind, n)
    }
}

impl Kind for Withdrawals {
    const PAYER: &'static str = "user";

    fn user(&self, k: usize) -> usize {
        self.withdrawals[k].user
    }

    fn over(&self, k: usize) -> bool {
        self.withdrawals[k].over
    }

    fn what(&self, k: usize) -> String {
        let w = &self.withdrawals[k];
        let why = match (w.over, w.fails()) {
            (true, _) => ", over the balance",
            (false, true) => ", to fail at the bank",
            (false, false) => "",
        };
        format!("withdrawal {k} (user {}, {} paise{why})", w.user, w.amount)
    }

    async fn send_once(
        &self,
        ctx: &Ctx,
        users: &Users,
        rec: &Rec,
        k: usize,
    ) -> Result<Answer, String> {
        let w = &self.withdrawals[k];
        let request = WithdrawalRequest {
            amount: w.amount,
            key: &w.key,
            expected: if w.over { &[409] } else { &[201, 409] },
        };
        let cookie = &users.cookies[w.user];
        let started = Instant::now();
        let answer = http::withdraw(&ctx.client, rec, ctx.app(), cookie, &request).await;
        if answer.as_ref().is_ok_and(|a| a.status.as_u16() == 201) {
            self.created.request(started, true);
        }
        answer
    }

    fn wrong(&self, _: &Users, k: usize, v: &Value, id: Option<&str>) -> Option<&'static str> {
        let w = &self.withdrawals[k];
        if !id.is_some_and(|id| id.starts_with("wd_")) {
            Some("no wd_ id")
        } else if v["status"] != "processing" {
            Some("a status other than processing")
        } else if v["amount"].as_i64() != Some(w.amount) {
            Some("another amount")
        } else if v["currency"] != "INR" {
            Some("a currency other than INR")
        } else {
            None
        }
    }

    /// Final: the money is back. The simulator takes every payout asked of it. (Among the
    /// others, `502 bank_unavailable`: the same key answers the withdrawal again.)
    fn final_server_error(&self, status: u16, code: Option<ErrorCode>) -> Option<&'static str> {
        let refused = status == 502 && code == Some(ErrorCode::BankRefused);
        refused.then_some("502 bank_refused")
    }
}

async fn withdraw_one(s: Arc<Withdrawing>, k: usize, rec: Arc<Rec>) {
    s.send(k, &rec).await
}

impl Run {
    /// The withdrawals phase on `concurrency` connections.
    pub(in crate::scenario) fn withdrawals_phase(
        &self,
        withdrawing: &Arc<Withdrawing>,
        concurrency: usize,
    ) -> Pending {
        let bound = Bound::Items(withdrawing.kind.withdrawals.len());
        let state = withdrawing.clone();
        Box::pin(self.phase("withdrawals", bound, concurrency, state, withdraw_one))
    }
}

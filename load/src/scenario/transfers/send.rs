//! Sending the transfers: the phase that sends them (beside the balance readers and the storm's
//! webhooks), each transfer sent (a crossing pair at once) and retried under its
//! `Idempotency-Key` (`scenario::keyed`), and what a transfer's request and its `201` are.

use super::plan::Transfer;
use crate::http::{self, Answer, TransferRequest};
use crate::phase::{Bound, Rec};
use crate::scenario::keyed::{Keyed, Kind};
use crate::scenario::readers::Sampling;
use crate::scenario::together::Pending;
use crate::scenario::{Ctx, Delivery, Run, Settle, Users};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

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

/// The transfers phase's shared state.
pub(in crate::scenario) type Sending = Keyed<Transfers>;

/// The transfers to send, and how: each item one transfer, or two at once.
pub(in crate::scenario) struct Transfers {
    pub(in crate::scenario) transfers: Vec<Transfer>,
    items: Vec<(usize, Option<usize>)>,
}

impl Sending {
    pub(in crate::scenario) fn new(
        ctx: &Arc<Ctx>,
        users: &Arc<Users>,
        transfers: Vec<Transfer>,
        items: Vec<(usize, Option<usize>)>,
    ) -> Sending {
        let n = transfers.len();
        Keyed::with(ctx, users, Transfers { transfers, items }, n)
    }
}

impl Kind for Transfers {
    const PAYER: &'static str = "sender";

    fn user(&self, k: usize) -> usize {
        self.transfers[k].from
    }

    fn over(&self, k: usize) -> bool {
        self.transfers[k].over
    }

    fn what(&self, k: usize) -> String {
        let t = &self.transfers[k];
        let over = if t.over { ", over the balance" } else { "" };
        format!(
            "transfer {k} (user {} to user {}, {} paise{over})",
            t.from, t.to, t.amount
        )
    }

    async fn send_once(
        &self,
        ctx: &Ctx,
        users: &Users,
        rec: &Rec,
        k: usize,
    ) -> Result<Answer, String> {
        let t = &self.transfers[k];
        let request = TransferRequest {
            to: &users.emails[t.to],
            amount: t.amount,
            key: &t.key,
            expected: if t.over { &[409] } else { &[201, 409] },
        };
        let cookie = &users.cookies[t.from];
        http::transfer(&ctx.client, rec, ctx.app(), cookie, &request).await
    }

    fn wrong(&self, users: &Users, k: usize, v: &Value, id: Option<&str>) -> Option<&'static str> {
        let t = &self.transfers[k];
        let to = v["to"]["email"].as_str().unwrap_or_default();
        if id.is_none() {
            Some("no id")
        } else if v["status"] != "success" {
            Some("a status other than success")
        } else if v["amount"].as_i64() != Some(t.amount) {
            Some("another amount")
        } else if !to.eq_ignore_ascii_case(&users.emails[t.to]) {
            Some("another recipient")
        } else {
            None
        }
    }
}

async fn send_item(s: Arc<Sending>, i: usize, rec: Arc<Rec>) {
    match s.kind.items[i] {
        (a, None) => s.send(a, &rec).await,
        // The crossing pair: A→B and B→A at the same moment.
        (a, Some(b)) => {
            tokio::join!(s.send(a, &rec), s.send(b, &rec));
        }
    }
}

impl Run {
    /// The transfers phase, on as many tasks as keep `concurrency` requests in flight.
    pub(in crate::scenario) fn transfers_phase(
        &self,
        sending: &Arc<Sending>,
        concurrency: usize,
    ) -> Pending {
        let bound = Bound::Items(sending.kind.items.len());
        let tasks = tasks(&sending.kind.items, concurrency);
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

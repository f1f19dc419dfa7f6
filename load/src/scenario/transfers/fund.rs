//! Funding the users before the transfers (or withdrawals): the funding deposits and the
//! storm's (settled while the transfers run), created, planned and the funding's settled by
//! webhook.

use super::plan::{Draft, Drafts};
use crate::report::{Counts, TransferConfig};
use crate::scenario::{Delivery, Dep, Plan, Run, Scenario, Settle, Users};
use rand::rngs::StdRng;
use rand::Rng;
use std::sync::Arc;

/// The hot sender is funded with this share of what it sends: the last tenth or so meets an
/// empty wallet, concurrently with the transfers still in flight.
const HOT_FUNDING: f64 = 0.9;

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

/// The users funded: the deposits of both kinds created and planned, the funding's settled.
pub(in crate::scenario) struct Funded {
    pub(in crate::scenario) settle: Arc<Settle>,
    pub(in crate::scenario) counts: Counts,
    /// The funding deposits created (the storm's apart).
    pub(in crate::scenario) created: usize,
    /// Per user: the balance the funding gave, and what the storm will add.
    pub(in crate::scenario) funded: Vec<i64>,
    pub(in crate::scenario) stormed: Vec<i64>,
    pub(in crate::scenario) storm_deposits: usize,
    pub(in crate::scenario) storm_wave: Vec<Delivery>,
    pub(in crate::scenario) late: Vec<Delivery>,
    pub(in crate::scenario) credited_per_sec: f64,
}

/// Deposits to create: each one's user and amount.
pub(in crate::scenario) type ToCreate = (Vec<usize>, Vec<i64>);

impl Run {
    /// Funds the users of a transfers-* or the mixed scenario: creates the funding deposits
    /// (and the storm's, settled later), and settles the funding by webhook.
    pub(in crate::scenario) async fn fund(
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
        let funding = funding(
            &mut self.rng,
            scenario,
            (n, deposits),
            drafts,
            to_sender,
            max_amount,
        );
        self.fund_with(users, funding, (storm_owners, storm_amounts))
            .await
    }

    /// Creates the `funding` deposits and the `storm`'s (settled later, when the scenario
    /// says), and settles the funding by webhook.
    pub(in crate::scenario) async fn fund_with(
        &mut self,
        users: &Arc<Users>,
        (owners, amounts): ToCreate,
        (storm_owners, storm_amounts): ToCreate,
    ) -> anyhow::Result<Funded> {
        let n = self.cfg.run.users;
        let funding = self
            .create("deposits", users.clone(), owners, amounts)
            .await;
        let stormy = match storm_owners.len() {
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
            created: d.storm_from,
            funded,
            stormed,
            storm_deposits,
            storm_wave: d.storm_wave,
            late: d.late,
            credited_per_sec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::transfers::plan::draft;
    use crate::scenario::transfers::plan::tests::config;
    use rand::SeedableRng;

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

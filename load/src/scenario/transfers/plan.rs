//! What transfers to send: who pays whom (random pairs, the hot sender, crossing pairs), drawn
//! before any money moves, and their amounts and keys once the funding is known.

use crate::report::TransferConfig;
use crate::scenario::Scenario;
use rand::rngs::StdRng;
use rand::Rng;

/// In transfers-crossing, this share of the transfers asks for about the sender's whole funding:
/// whether it goes through depends on which of the crossing pair lands first.
const NEAR_BALANCE: f64 = 0.25;
/// An over-balance transfer (or withdrawal) asks for up to this many paise more than its payer
/// can reach.
const OVER_MARGIN: i64 = 1_000;

/// A transfer as it will be sent: who pays whom how much, under which `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::scenario) struct Transfer {
    pub(in crate::scenario) from: usize,
    pub(in crate::scenario) to: usize,
    pub(in crate::scenario) amount: i64,
    /// More than the sender could ever hold: it must be refused.
    pub(in crate::scenario) over: bool,
    pub(in crate::scenario) key: String,
}

/// A planned transfer's amount, decided once the funding is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::scenario) enum Draft {
    Small(i64),
    /// About the sender's whole funding.
    Near,
    /// Over anything the sender could hold.
    Over,
}

/// The transfers drawn before any money moves, and how they are sent: each item one transfer,
/// or two at once (transfers-crossing).
#[derive(Debug)]
pub(in crate::scenario) struct Drafts {
    pub(in crate::scenario) parts: Vec<(usize, usize, Draft)>,
    pub(in crate::scenario) items: Vec<(usize, Option<usize>)>,
}

pub(in crate::scenario) fn draft(
    rng: &mut StdRng,
    scenario: Scenario,
    users: usize,
    t: &TransferConfig,
) -> Drafts {
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

/// The transfers to send, with what the tool can say of every user beforehand.
#[derive(Debug)]
pub(in crate::scenario) struct TransferPlan {
    pub(in crate::scenario) transfers: Vec<Transfer>,
    pub(in crate::scenario) items: Vec<(usize, Option<usize>)>,
    /// The most a user's balance can reach: its successful deposits and every transfer to it
    /// that may go through.
    pub(in crate::scenario) ceiling: Vec<i64>,
    /// Users whose balance can only go down while the transfers run (nothing comes in).
    pub(in crate::scenario) monotone: Vec<bool>,
}

/// Decides the amounts now that the funding is known. `funded`: each user's balance before the
/// transfers; `stormed`: what the storm will add. An over-balance transfer asks for more than
/// the sender's balance, storm and every transfer to it together; one that cannot without
/// passing `max_amount` is left out.
pub(in crate::scenario) fn finalize(
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
            match over_amount(rng, ceiling[from], max_amount) {
                Some(a) => amounts[k] = a,
                None => kept[k] = false,
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

/// An amount over `ceiling`, the most its payer's balance can reach, by up to [`OVER_MARGIN`];
/// `None` when `max_amount` leaves no room above it.
pub(in crate::scenario) fn over_amount(
    rng: &mut StdRng,
    ceiling: i64,
    max_amount: i64,
) -> Option<i64> {
    let least = ceiling + 1;
    (least <= max_amount).then(|| rng.gen_range(least..=(least + OVER_MARGIN).min(max_amount)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(in crate::scenario::transfers) fn config(
        transfers: usize,
        over_balance: f64,
    ) -> TransferConfig {
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
}

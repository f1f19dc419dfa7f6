//! `onramp-load preloaded-transfers`: transfers between people picked at random among all the
//! preloaded ones, each sending with its own preloaded session. The scenarios' transfers
//! (`--scenario transfers-random`) move money between people who signed up a minute before, so
//! their rows sit together at the end of every user-keyed index; here the activity is spread
//! over every sign-up date of the books, as in a service whose old customers still pay each
//! other, and each transfer lands on index pages no other transfer of the run touches.
//!
//! Every person involved reads their balance before and after, and each balance must have
//! changed by exactly what that person's answered transfers moved: a `201` moved its amount
//! once, a `409 insufficient_funds` moved nothing. Anything else is a failure. A balance is
//! answered from the wallet actor's memory, so each sender's history (read from the database)
//! must also list every transfer answered `201` to them.

use crate::grown::{client, cookie, histogram, runtime, transactions_page, write_json, Latency};
use anyhow::{bail, Context};
use clap::Args;
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::header::COOKIE;
use reqwest::{Client, StatusCode};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct PreloadedTransfersArgs {
    /// The app's base URL.
    #[arg(long, default_value = "http://localhost:8080")]
    pub app: String,
    /// The preload's `--token-seed`.
    #[arg(long)]
    pub token_seed: String,
    /// People to pick among: preloaded people 0 to N − 1, each sending with preloaded session
    /// of the same number (so no more than the preload's `--users` and `--sessions`).
    #[arg(long, default_value_t = 1_000_000)]
    pub people: u64,
    /// Transfers to send, each of one paisa, from one person picked at random to another.
    #[arg(long, default_value_t = 20_000)]
    pub transfers: usize,
    /// Requests at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Picks the pairs (the same seed, the same pairs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct PreloadedTransfersReport {
    pub transfers: usize,
    /// Distinct people who sent or received.
    pub people: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
    /// Answered `409 insufficient_funds`: the sender had spent what the preload gave them.
    pub declined: u64,
    /// Any other answer, or none.
    pub failures: u64,
    /// People whose balance did not change by what their answered transfers moved.
    pub mismatches: u64,
    /// Transfers answered `201` that their sender's history does not list.
    pub unrecorded: u64,
}

/// A transfer's outcome as the app answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// `201`, with the transfer's id.
    Moved(String),
    Declined,
    Failed,
}

pub fn run(args: PreloadedTransfersArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(send(&args))?;
    println!(
        "{} transfers between {} preloaded people in {:.1} s: {:.0}/s, p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms; {} declined, {} failures, {} balances off, \
         {} missing from their sender's history",
        report.transfers,
        report.people,
        report.seconds,
        report.per_second,
        report.latency.p50_us as f64 / 1000.0,
        report.latency.p99_us as f64 / 1000.0,
        report.latency.max_us as f64 / 1000.0,
        report.declined,
        report.failures,
        report.mismatches,
        report.unrecorded
    );
    write_json(&args.json, &report)?;
    if report.failures > 0 || report.mismatches > 0 || report.unrecorded > 0 {
        bail!(
            "{} transfers failed, {} balances are off, {} transfers are missing from history",
            report.failures,
            report.mismatches,
            report.unrecorded
        );
    }
    Ok(())
}

pub async fn send(args: &PreloadedTransfersArgs) -> anyhow::Result<PreloadedTransfersReport> {
    if args.people < 2 {
        bail!("--people must be at least 2");
    }
    let client = client(args.concurrency)?;
    let pairs = pairs(args);
    let people: Vec<u64> = pairs
        .iter()
        .flat_map(|&(from, to)| [from, to])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let before = balances(&client, args, &people).await?;
    let latencies = Arc::new(Mutex::new(histogram()));
    let began = Instant::now();
    let answers = each(args.concurrency, pairs.clone(), {
        let (client, app, seed) = (client.clone(), args.app.clone(), args.token_seed.clone());
        let latencies = latencies.clone();
        move |(from, to)| {
            let (client, app, seed, latencies) =
                (client.clone(), app.clone(), seed.clone(), latencies.clone());
            async move {
                let t = Instant::now();
                let answer = transfer(&client, &app, &seed, from, to).await;
                let _ = latencies
                    .lock()
                    .map(|mut h| h.record(t.elapsed().as_micros().max(1) as u64));
                answer
            }
        }
    })
    .await?;
    let seconds = began.elapsed().as_secs_f64();
    let after = balances(&client, args, &people).await?;
    let mismatches = off_balances(&pairs, &answers, &before, &after);
    let unrecorded = unrecorded(&client, args, &pairs, &answers).await?;
    let count = |a: Answer| answers.iter().filter(|x| **x == a).count() as u64;
    let latency = Latency::of(&latencies.lock().expect("not poisoned"));
    Ok(PreloadedTransfersReport {
        transfers: pairs.len(),
        people: people.len(),
        seconds,
        per_second: pairs.len() as f64 / seconds,
        latency,
        declined: count(Answer::Declined),
        failures: count(Answer::Failed),
        mismatches,
        unrecorded,
    })
}

/// `args.transfers` pairs of two different people, picked uniformly.
fn pairs(args: &PreloadedTransfersArgs) -> Vec<(u64, u64)> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    (0..args.transfers)
        .map(|_| {
            let from = rng.gen_range(0..args.people);
            let to = (from + rng.gen_range(1..args.people)) % args.people;
            (from, to)
        })
        .collect()
}

/// Runs `f` over `items`, `concurrency` at a time, and gives the results in the items' order.
async fn each<T, R, F, Fut>(concurrency: usize, items: Vec<T>, f: F) -> anyhow::Result<Vec<R>>
where
    T: Copy + Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = R> + Send,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (items, next, f) = (items.clone(), next.clone(), f.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&item) = items.get(i) else { break };
                    done.push((i, f(item).await));
                }
                done
            })
        })
        .collect();
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for t in tasks {
        for (i, r) in t.await? {
            results[i] = Some(r);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

async fn transfer(client: &Client, app: &str, seed: &str, from: u64, to: u64) -> Answer {
    let answer = client
        .post(format!("{app}/api/transfers"))
        .header(COOKIE, cookie(seed, from))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&serde_json::json!({ "to": format!("preload-{to}@example.test"), "amount": 1 }))
        .send()
        .await;
    let Ok(answer) = answer else {
        return Answer::Failed;
    };
    let status = answer.status();
    let body = answer.bytes().await;
    match status {
        _ if body.is_err() => Answer::Failed,
        StatusCode::CREATED => match body.ok().and_then(|b| transfer_id(&b)) {
            Some(id) => Answer::Moved(id),
            None => Answer::Failed,
        },
        StatusCode::CONFLICT
            if body.is_ok_and(|b| String::from_utf8_lossy(&b).contains("insufficient_funds")) =>
        {
            Answer::Declined
        }
        _ => Answer::Failed,
    }
}

fn transfer_id(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body["id"].as_str().map(str::to_owned)
}

/// How many transfers answered `201` their sender's history does not list as `transfer_out`.
async fn unrecorded(
    client: &Client,
    args: &PreloadedTransfersArgs,
    pairs: &[(u64, u64)],
    answers: &[Answer],
) -> anyhow::Result<u64> {
    let mut sent: HashMap<u64, BTreeSet<String>> = HashMap::new();
    for (&(from, _), answer) in pairs.iter().zip(answers) {
        if let Answer::Moved(id) = answer {
            sent.entry(from).or_default().insert(id.clone());
        }
    }
    let senders: Vec<u64> = sent.keys().copied().collect();
    let sent = Arc::new(sent);
    let (app, seed) = (args.app.clone(), args.token_seed.clone());
    let missing = each(args.concurrency, senders, {
        let client = client.clone();
        move |person| {
            let (client, app, seed, sent) =
                (client.clone(), app.clone(), seed.clone(), sent.clone());
            async move {
                let mut left = sent[&person].clone();
                let mut cursor: Option<String> = None;
                while !left.is_empty() {
                    let (ids, next) = history_page(&client, &app, &seed, person, cursor).await?;
                    for id in ids {
                        left.remove(&id);
                    }
                    match next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                anyhow::Ok(left.len() as u64)
            }
        }
    })
    .await?;
    missing
        .into_iter()
        .sum::<anyhow::Result<u64>>()
        .context("cannot read a sender's history")
}

/// One page of a person's history: the ids of its `transfer_out` items, and the next cursor.
async fn history_page(
    client: &Client,
    app: &str,
    seed: &str,
    person: u64,
    cursor: Option<String>,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let cookie = cookie(seed, person);
    let (items, next, _) = transactions_page(client, app, &cookie, 100, cursor.as_deref()).await?;
    let ids = items
        .iter()
        .filter(|i| i["kind"] == "transfer_out")
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    Ok((ids, next))
}

/// Each person's balance, read with their preloaded session.
async fn balances(
    client: &Client,
    args: &PreloadedTransfersArgs,
    people: &[u64],
) -> anyhow::Result<HashMap<u64, i64>> {
    let (app, seed) = (args.app.clone(), args.token_seed.clone());
    let read = each(args.concurrency, people.to_vec(), {
        let client = client.clone();
        move |person| {
            let (client, app, seed) = (client.clone(), app.clone(), seed.clone());
            async move {
                let body: serde_json::Value = client
                    .get(format!("{app}/api/balance"))
                    .header(COOKIE, cookie(&seed, person))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let amount = body["amount"].as_i64().context("no amount")?;
                anyhow::Ok((person, amount))
            }
        }
    })
    .await?;
    read.into_iter()
        .collect::<anyhow::Result<_>>()
        .context("cannot read a preloaded person's balance")
}

/// How many people's balances did not move by exactly what their transfers answered `201` moved.
fn off_balances(
    pairs: &[(u64, u64)],
    answers: &[Answer],
    before: &HashMap<u64, i64>,
    after: &HashMap<u64, i64>,
) -> u64 {
    let mut expected = before.clone();
    for (&(from, to), answer) in pairs.iter().zip(answers) {
        if matches!(answer, Answer::Moved(_)) {
            *expected.entry(from).or_default() -= 1;
            *expected.entry(to).or_default() += 1;
        }
    }
    expected
        .iter()
        .filter(|(person, amount)| after.get(person) != Some(amount))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(people: u64, transfers: usize) -> PreloadedTransfersArgs {
        PreloadedTransfersArgs {
            app: String::new(),
            token_seed: String::new(),
            people,
            transfers,
            concurrency: 1,
            seed: 7,
            json: None,
        }
    }

    #[test]
    fn pairs_are_two_different_people_spread_over_all_of_them() {
        let pairs = pairs(&args(1_000, 20_000));
        assert!(pairs
            .iter()
            .all(|(f, t)| f != t && *f < 1_000 && *t < 1_000));
        let senders: BTreeSet<u64> = pairs.iter().map(|p| p.0).collect();
        let recipients: BTreeSet<u64> = pairs.iter().map(|p| p.1).collect();
        assert!(senders.len() > 990 && recipients.len() > 990);
        assert_eq!(
            pairs,
            super::pairs(&args(1_000, 20_000)),
            "one seed, one set"
        );
    }

    #[test]
    fn a_balance_that_moved_other_than_answered_is_counted() {
        let pairs = [(1, 2), (2, 3), (1, 3)];
        let moved = || Answer::Moved("trf_".into());
        let answers = [moved(), Answer::Declined, moved()];
        let before = HashMap::from([(1, 10), (2, 0), (3, 5)]);
        let right = HashMap::from([(1, 8), (2, 1), (3, 6)]);
        assert_eq!(off_balances(&pairs, &answers, &before, &right), 0);
        let declined_moved = HashMap::from([(1, 8), (2, 0), (3, 7)]);
        assert_eq!(off_balances(&pairs, &answers, &before, &declined_moved), 2);
        let once_twice = HashMap::from([(1, 7), (2, 2), (3, 6)]);
        assert_eq!(off_balances(&pairs, &answers, &before, &once_twice), 2);
    }
}

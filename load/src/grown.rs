//! Measurements that need grown books (`onramp-load preload`) under the app:
//! - `onramp-load history`: follows the cursors of `GET /api/transactions` through the deep
//!   history of preloaded user 0, page after page, and sets the deepest pages' latency beside
//!   the first page's; it checks the pages on the way (newest first, nothing twice).
//! - `onramp-load sessions`: uses many preloaded sessions once each (`GET /api/balance` for the
//!   last `--wallets`, which starts their wallet actors, `GET /api/user/me` for the rest), so
//!   the app holds that many sessions and wallets; its resident memory is read outside.
//! - `onramp-load preloaded-transfers` ([`crate::preloaded_transfers`]): transfers between
//!   preloaded people picked at random, with their preloaded sessions.

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use onramp_store::preload::session_token;
use reqwest::header::COOKIE;
use reqwest::{Client, StatusCode};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The app's base URL.
    #[arg(long, default_value = "http://localhost:8080")]
    pub app: String,
    /// The preloaded session whose user's history is walked (session 0 is the deep user's).
    #[arg(long, default_value_t = 0)]
    pub session: u64,
    /// The preload's `--token-seed`.
    #[arg(long)]
    pub token_seed: String,
    /// Items a page (1 to 100).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Whole walks from the first page to the last.
    #[arg(long, default_value_t = 5)]
    pub walks: u32,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    /// The app's base URL.
    #[arg(long, default_value = "http://localhost:8080")]
    pub app: String,
    /// Preloaded sessions to use, each once: sessions 0 to N − 1 (no more than were preloaded).
    #[arg(long, default_value_t = 1_000_000)]
    pub sessions: u64,
    /// The preload's `--token-seed`.
    #[arg(long)]
    pub token_seed: String,
    /// Of them, how many (the last ones) read their balance, so that many wallet actors are
    /// alive at the end (they stop after `wallet.idle_secs` unused); the rest read
    /// `GET /api/user/me`.
    #[arg(long, default_value_t = 100_000)]
    pub wallets: u64,
    /// Requests at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Latencies in microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub items: usize,
    pub pages: usize,
    pub first_pages: Latency,
    /// The last tenth of the pages: the deepest.
    pub deepest_pages: Latency,
    pub p50_ratio: f64,
    pub p99_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct SessionsReport {
    pub sessions: u64,
    pub wallets: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
    pub failures: u64,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub(crate) fn client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .pool_max_idle_per_host(connections + 8)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

pub(crate) fn cookie(seed: &str, session: u64) -> String {
    format!("session_id={}", session_token(seed, session).expose())
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

pub(crate) fn write_json(
    path: &Option<std::path::PathBuf>,
    value: &impl Serialize,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{}", serde_json::to_string(value)?);
    if let Some(p) = path {
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// One page of `GET /api/transactions` for the session whose cookie is given: its items, the
/// next cursor and how long it took. Anything but `200` is an error.
pub(crate) async fn transactions_page(
    client: &Client,
    app: &str,
    cookie: &str,
    limit: u32,
    cursor: Option<&str>,
) -> anyhow::Result<(Vec<serde_json::Value>, Option<String>, Duration)> {
    let mut url = url::Url::parse(&format!("{app}/api/transactions"))?;
    url.query_pairs_mut()
        .append_pair("limit", &limit.to_string());
    if let Some(c) = cursor {
        url.query_pairs_mut().append_pair("cursor", c);
    }
    let began = Instant::now();
    let answer = client.get(url).header(COOKIE, cookie).send().await?;
    let status = answer.status();
    let mut body: serde_json::Value = answer.json().await?;
    let took = began.elapsed();
    if status != StatusCode::OK {
        bail!("GET /api/transactions answered {status}: {body}");
    }
    let next = body["next"].as_str().map(str::to_owned);
    match body["items"].take() {
        serde_json::Value::Array(items) => Ok((items, next, took)),
        _ => bail!("no items"),
    }
}

/// One page: its items' `(created_at, id)` keys and the next cursor, timed.
async fn page(
    client: &Client,
    args: &HistoryArgs,
    cursor: Option<&str>,
) -> anyhow::Result<(Vec<String>, Option<String>, Duration)> {
    let cookie = cookie(&args.token_seed, args.session);
    let (items, next, took) =
        transactions_page(client, &args.app, &cookie, args.limit, cursor).await?;
    let keys = items
        .iter()
        .map(|i| {
            let at = i["created_at"].as_str().unwrap_or_default().to_owned();
            format!("{at} {}", i["id"].as_str().unwrap_or_default())
        })
        .collect();
    Ok((keys, next, took))
}

pub fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(walk(&args))?;
    println!(
        "history of preloaded session {}: {} items in {} pages of {}; {} walks\n\
         first pages:  p50 {:.2} ms  p99 {:.2} ms\n\
         deepest 10%:  p50 {:.2} ms  p99 {:.2} ms   ({:.2}× and {:.2}× the first page's)",
        args.session,
        report.items,
        report.pages,
        args.limit,
        args.walks,
        report.first_pages.p50_us as f64 / 1000.0,
        report.first_pages.p99_us as f64 / 1000.0,
        report.deepest_pages.p50_us as f64 / 1000.0,
        report.deepest_pages.p99_us as f64 / 1000.0,
        report.p50_ratio,
        report.p99_ratio,
    );
    write_json(&args.json, &report)
}

pub async fn walk(args: &HistoryArgs) -> anyhow::Result<HistoryReport> {
    let client = client(1)?;
    let (mut first, mut deepest) = (histogram(), histogram());
    let (mut items, mut pages) = (0, 0);
    for _ in 0..args.walks.max(1) {
        let mut seen = std::collections::HashSet::new();
        let mut times = Vec::new();
        let mut cursor: Option<String> = None;
        let mut last: Option<String> = None;
        loop {
            let (keys, next, took) = page(&client, args, cursor.as_deref()).await?;
            times.push(took);
            for key in keys {
                if last.as_ref().is_some_and(|l| key.as_str() > l.as_str()) {
                    bail!("the history is not newest first at {key}");
                }
                if !seen.insert(key.clone()) {
                    bail!("{key} came twice");
                }
                last = Some(key);
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let deep_from = times.len() - times.len().div_ceil(10);
        for (i, t) in times.iter().enumerate() {
            let us = t.as_micros().max(1) as u64;
            if i == 0 {
                first.record(us)?;
            }
            if i >= deep_from {
                deepest.record(us)?;
            }
        }
        // More first pages, as many as deep ones, so both figures rest on as many reads.
        for _ in 1..times.len().div_ceil(10) {
            let (_, _, took) = page(&client, args, None).await?;
            first.record(took.as_micros().max(1) as u64)?;
        }
        (items, pages) = (seen.len(), times.len());
    }
    Ok(HistoryReport {
        items,
        pages,
        p50_ratio: deepest.value_at_quantile(0.5) as f64 / first.value_at_quantile(0.5) as f64,
        p99_ratio: deepest.value_at_quantile(0.99) as f64 / first.value_at_quantile(0.99) as f64,
        first_pages: Latency::of(&first),
        deepest_pages: Latency::of(&deepest),
    })
}

pub fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(use_sessions(&args))?;
    println!(
        "{} preloaded sessions used ({} balances) in {:.1} s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, \
         {} failures",
        report.sessions,
        report.wallets,
        report.seconds,
        report.per_second,
        report.latency.p50_us as f64 / 1000.0,
        report.latency.p99_us as f64 / 1000.0,
        report.failures
    );
    write_json(&args.json, &report)?;
    if report.failures > 0 {
        bail!("{} requests failed", report.failures);
    }
    Ok(())
}

pub async fn use_sessions(args: &SessionsArgs) -> anyhow::Result<SessionsReport> {
    let client = client(args.concurrency)?;
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(histogram()));
    let began = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, next, failures, latencies) = (
                client.clone(),
                next.clone(),
                failures.clone(),
                latencies.clone(),
            );
            let (app, total, wallets) = (args.app.clone(), args.sessions, args.wallets);
            let seed = args.token_seed.clone();
            tokio::spawn(async move {
                let mut mine = histogram();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let path = if i >= total.saturating_sub(wallets) {
                        "balance"
                    } else {
                        "user/me"
                    };
                    let t = Instant::now();
                    let answer = client
                        .get(format!("{app}/api/{path}"))
                        .header(COOKIE, cookie(&seed, i))
                        .send()
                        .await;
                    let ok = match answer {
                        Ok(a) => a.status() == StatusCode::OK && a.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let _ = mine.record(t.elapsed().as_micros().max(1) as u64);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = latencies.lock().map(|mut h| h.add(&mine));
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let seconds = began.elapsed().as_secs_f64();
    let latency = Latency::of(&latencies.lock().expect("not poisoned"));
    Ok(SessionsReport {
        sessions: args.sessions,
        wallets: args.wallets.min(args.sessions),
        seconds,
        per_second: args.sessions as f64 / seconds,
        latency,
        failures: failures.load(Ordering::Relaxed),
    })
}

//! Running one phase of load: a fixed pool of tokio tasks ("connections") pulling work items from
//! a shared counter, each request's latency recorded in an HDR histogram, and a progress line on
//! stderr every second.

use hdrhistogram::Histogram;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many error messages a phase keeps as examples.
const ERROR_SAMPLES: usize = 5;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one phase has recorded so far; shared by its tasks.
pub struct Rec {
    hist: Mutex<Histogram<u64>>,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Answers with a `5xx` status (also counted in `errors`).
    server_errors: AtomicU64,
    items: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Default for Rec {
    fn default() -> Rec {
        Rec {
            // Microseconds, 1 µs to 10 minutes, 3 significant digits.
            hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            items: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }
}

impl Rec {
    /// One request that started at `started` got its whole answer now; `ok` when it was the
    /// answer expected.
    pub fn request(&self, started: Instant, ok: bool) {
        let us = started.elapsed().as_micros() as u64;
        lock(&self.hist).saturating_record(us.max(1));
        self.requests.fetch_add(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// One of the answers recorded had a `5xx` status: the app failed, whatever the request.
    pub fn server_error(&self) {
        self.server_errors.fetch_add(1, Relaxed);
    }

    /// Keeps `message` as an example of what went wrong (the first few only).
    pub fn sample(&self, message: impl FnOnce() -> String) {
        let mut samples = lock(&self.samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(message());
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    pub fn server_errors(&self) -> u64 {
        self.server_errors.load(Relaxed)
    }

    pub fn items(&self) -> u64 {
        self.items.load(Relaxed)
    }

    pub fn samples(&self) -> Vec<String> {
        lock(&self.samples).clone()
    }

    /// Latency at `quantile` (0 to 1) in milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        let h = lock(&self.hist);
        if h.is_empty() {
            return 0.0;
        }
        h.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        let h = lock(&self.hist);
        if h.is_empty() {
            return 0.0;
        }
        h.max() as f64 / 1000.0
    }
}

/// How long a phase runs.
pub enum Bound {
    /// Items `0..n`, each once.
    Items(usize),
    /// Items `0..` for this long.
    For(Duration),
    /// Items `0..` until the flag is set.
    Until(Arc<AtomicBool>),
}

/// A finished phase.
pub struct PhaseResult {
    pub name: String,
    pub rec: Arc<Rec>,
    pub elapsed: Duration,
    pub cpu: Option<CpuShare>,
}

/// How busy the machine's CPUs were during a phase, in percent of all of them (Linux only).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CpuShare {
    /// Every process on the machine.
    pub machine_pct: f64,
    /// The load generator itself.
    pub load_tool_pct: f64,
}

/// (busy, total) clock ticks of all CPUs, and this process's ticks.
pub fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3)? + cpu.get(4)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let mine = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((total - idle, total, mine))
}

pub fn cpu_share(
    before: Option<(u64, u64, u64)>,
    after: Option<(u64, u64, u64)>,
) -> Option<CpuShare> {
    let ((b0, t0, m0), (b1, t1, m1)) = (before?, after?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)? as f64;
    Some(CpuShare {
        machine_pct: 100.0 * b1.saturating_sub(b0) as f64 / total,
        load_tool_pct: 100.0 * m1.saturating_sub(m0) as f64 / total,
    })
}

impl PhaseResult {
    /// Phases that ran at the same moment seen as one: every request of each, over the time
    /// they took together (`elapsed`), so that its rate is what the app served of them all.
    pub fn combined(
        name: &str,
        parts: &[&PhaseResult],
        elapsed: Duration,
        cpu: Option<CpuShare>,
    ) -> PhaseResult {
        let rec = Rec::default();
        for part in parts.iter().map(|p| &p.rec) {
            // The same bounds on every side: adding cannot fail.
            let _ = lock(&rec.hist).add(&*lock(&part.hist));
            for (mine, theirs) in [
                (&rec.requests, &part.requests),
                (&rec.errors, &part.errors),
                (&rec.server_errors, &part.server_errors),
                (&rec.items, &part.items),
            ] {
                mine.fetch_add(theirs.load(Relaxed), Relaxed);
            }
            for s in part.samples() {
                rec.sample(|| s);
            }
        }
        PhaseResult {
            name: name.to_owned(),
            rec: Arc::new(rec),
            elapsed,
            cpu,
        }
    }
}

/// Whether to print a progress line every second, and where to read the app's group-commit
/// figures for it (`GET /metrics`).
#[derive(Clone)]
pub struct Progress {
    pub show: bool,
    pub metrics: Option<(reqwest::Client, Vec<String>)>,
}

/// Hands out the items `0..` to the phase's tasks until its [`Bound`] is reached.
struct Items {
    next: AtomicUsize,
    limit: Option<usize>,
    deadline: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Items {
    fn new(bound: Bound) -> Items {
        let (limit, deadline, stop) = match bound {
            Bound::Items(n) => (Some(n), None, Arc::new(AtomicBool::new(false))),
            Bound::For(d) => (
                None,
                Some(Instant::now() + d),
                Arc::new(AtomicBool::new(false)),
            ),
            Bound::Until(flag) => (None, None, flag),
        };
        Items {
            next: AtomicUsize::new(0),
            limit,
            deadline,
            stop,
        }
    }

    /// No more tasks than items: an idle task would only hold a connection.
    fn tasks(&self, concurrency: usize) -> usize {
        match self.limit {
            Some(n) => concurrency.clamp(1, n.max(1)),
            None => concurrency.max(1),
        }
    }

    fn next(&self) -> Option<usize> {
        if self.stop.load(Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed);
        match self.limit {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }
}

/// Runs `work(i, rec)` for the phase's items on `concurrency` tasks; answers when all are done.
pub async fn run_phase<F, Fut>(
    name: &str,
    bound: Bound,
    concurrency: usize,
    progress: Progress,
    work: F,
) -> PhaseResult
where
    F: Fn(usize, Arc<Rec>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rec = Arc::new(Rec::default());
    let items = Arc::new(Items::new(bound));
    let tasks = items.tasks(concurrency);
    let ticks = cpu_ticks();
    let started = Instant::now();
    let ticker = progress.show.then(|| {
        tokio::spawn(report_progress(
            name.to_owned(),
            rec.clone(),
            items.limit,
            started,
            progress.metrics,
        ))
    });
    let work = Arc::new(work);
    let handles: Vec<_> = (0..tasks)
        .map(|_| tokio::spawn(work_through(items.clone(), work.clone(), rec.clone())))
        .collect();
    join(handles, &rec).await;
    let elapsed = started.elapsed();
    let cpu = cpu_share(ticks, cpu_ticks());
    if let Some(t) = ticker {
        t.abort();
        eprintln!(
            "[{name}] finished: {} items, {} requests in {:.1} s, {} errors",
            rec.items(),
            rec.requests(),
            elapsed.as_secs_f64(),
            rec.errors()
        );
    }
    PhaseResult {
        name: name.to_owned(),
        rec,
        elapsed,
        cpu,
    }
}

/// A task that panicked counts as an error of the phase rather than ending the run.
async fn join(handles: Vec<tokio::task::JoinHandle<()>>, rec: &Rec) {
    for h in handles {
        if let Err(e) = h.await {
            rec.errors.fetch_add(1, Relaxed);
            rec.sample(|| format!("a load task failed: {e}"));
        }
    }
}

/// One task of a phase: one item at a time, so that a task is one connection.
async fn work_through<F, Fut>(items: Arc<Items>, work: Arc<F>, rec: Arc<Rec>)
where
    F: Fn(usize, Arc<Rec>) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(i) = items.next() {
        work(i, rec.clone()).await;
        rec.items.fetch_add(1, Relaxed);
    }
}

async fn report_progress(
    name: String,
    rec: Arc<Rec>,
    total: Option<usize>,
    started: Instant,
    metrics: Option<(reqwest::Client, Vec<String>)>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    let scrape = || async {
        match &metrics {
            Some((client, apps)) => super::metrics::scrape(client, apps).await,
            None => None,
        }
    };
    let mut last_writer = scrape().await;
    loop {
        tick.tick().await;
        let (items, requests) = (rec.items(), rec.requests());
        let done = match total {
            Some(n) => format!(
                "{items}/{n} ({:.0}%)",
                100.0 * items as f64 / n.max(1) as f64
            ),
            None => format!("{items} done"),
        };
        // The group commit in the last second: how many changes per commit, how long each took.
        let writer = scrape().await;
        let commits = super::metrics::figures(last_writer.as_ref(), writer.as_ref())
            .filter(|w| w.commits > 0)
            .map(|w| {
                format!(
                    ", {} commits of {:.1} changes in {:.2} ms",
                    w.commits, w.mean_batch, w.mean_commit_ms
                )
            })
            .unwrap_or_default();
        last_writer = writer;
        eprintln!(
            "[{name}] {done}, {} req/s, {} errors{commits}, {:.0} s",
            requests - last,
            rec.errors(),
            started.elapsed().as_secs_f64()
        );
        last = requests;
    }
}

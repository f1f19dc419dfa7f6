//! What a load run found: per-phase figures, the writer's group commits, the final check; as a
//! table for people and as JSON for scripts.

use super::metrics::WriterFigures;
use super::phase::{CpuShare, PhaseResult};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub name: String,
    /// Work items done (sign-ins, deposits, deliveries, users checked…).
    pub items: u64,
    /// HTTP requests sent (a sign-in is three; a retried delivery counts each attempt).
    pub requests: u64,
    pub secs: f64,
    /// Requests per second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Requests whose answer was not the expected one (including transport errors).
    pub errors: u64,
    /// Examples of the errors.
    pub error_samples: Vec<String>,
    /// The DB writer's group commits during the phase; `None` when `/metrics` has no figures.
    pub writer: Option<WriterFigures>,
    /// How busy the machine was (everything on it, and the load tool's share).
    pub cpu: Option<CpuShare>,
}

impl PhaseReport {
    pub fn new(r: &PhaseResult, writer: Option<WriterFigures>) -> PhaseReport {
        let secs = r.elapsed.as_secs_f64();
        let requests = r.rec.requests();
        PhaseReport {
            name: r.name.clone(),
            items: r.rec.items(),
            requests,
            secs,
            rate: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            p50_ms: r.rec.quantile_ms(0.50),
            p90_ms: r.rec.quantile_ms(0.90),
            p99_ms: r.rec.quantile_ms(0.99),
            max_ms: r.rec.max_ms(),
            errors: r.rec.errors(),
            error_samples: r.rec.samples(),
            writer,
            cpu: r.cpu,
        }
    }
}

/// The options the run used.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub concurrency: usize,
    pub webhook_concurrency: usize,
    pub users: usize,
    pub deposits: usize,
    pub duplicates: f64,
    pub out_of_order: bool,
    pub failures: f64,
    pub healthz_secs: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub users: usize,
    pub deposits_requested: usize,
    pub deposits_created: usize,
    /// Deposits settled SUCCESS and FAILURE by the load tool.
    pub successes: usize,
    pub failures: usize,
    /// Webhook deliveries sent in the main wave (first deliveries and duplicates).
    pub deliveries: usize,
    pub duplicate_deliveries: usize,
    /// Deliveries sent after every deposit was final: re-sent finals and contradicting events.
    pub late_deliveries: usize,
    pub contradicting_deliveries: usize,
    /// Deliveries the app answered `{"status": "applied"}`.
    pub applied: u64,
    /// Paise the successful deposits add up to.
    pub credited_paise: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    pub users_checked: usize,
    /// Deposits listed with the status and amount sent.
    pub deposits_matched: usize,
    pub expected_balance_paise: i64,
    pub observed_balance_paise: i64,
    pub problems_total: usize,
    /// The first problems found.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub app: String,
    pub config: RunConfig,
    pub phases: Vec<PhaseReport>,
    /// The phase the scenario is about.
    pub headline_phase: String,
    pub headline_rate: f64,
    pub healthz_rate: f64,
    /// `headline_rate / healthz_rate`.
    pub ratio_to_healthz: f64,
    /// Successful deposits credited per second during the webhook phase.
    pub credited_per_sec: f64,
    pub counts: Counts,
    pub check: CheckReport,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The human-readable table and summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(
            out,
            "onramp load: scenario {} against {} (concurrency {}, webhook concurrency {}, {} users, \
             {} deposits, duplicates {}, out-of-order {}, failures {}, seed {})",
            self.scenario,
            self.app,
            c.concurrency,
            c.webhook_concurrency,
            c.users,
            c.deposits,
            c.duplicates,
            c.out_of_order,
            c.failures,
            c.seed
        );
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>10} {:>10} {:>5} {:>5}",
            "phase",
            "items",
            "requests",
            "rate/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "commits",
            "batch",
            "commit ms",
            "p99 cmt ms",
            "cpu%",
            "tool%"
        );
        for p in &self.phases {
            let (commits, batch, commit, p99c) = match &p.writer {
                Some(w) if w.commits == 0 => ("0".into(), "-".into(), "-".into(), "-".into()),
                Some(w) => (
                    w.commits.to_string(),
                    format!("{:.1}", w.mean_batch),
                    format!("{:.2}", w.mean_commit_ms),
                    w.p99_commit_ms.map_or("-".into(), |v| format!("≤{v}")),
                ),
                None => ("n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()),
            };
            let (cpu, tool) = match p.cpu {
                Some(c) => (
                    format!("{:.0}", c.machine_pct),
                    format!("{:.0}", c.load_tool_pct),
                ),
                None => ("n/a".into(), "n/a".into()),
            };
            let _ = writeln!(
                out,
                "{:<14} {:>8} {:>9} {:>10.1} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>10} {:>10} {:>5} {:>5}",
                p.name,
                p.items,
                p.requests,
                p.rate,
                ms(p.p50_ms),
                ms(p.p90_ms),
                ms(p.p99_ms),
                ms(p.max_ms),
                p.errors,
                commits,
                batch,
                commit,
                p99c,
                cpu,
                tool
            );
        }
        let _ = writeln!(
            out,
            "headline: {} {:.0}/s = {:.0}% of /healthz ({:.0}/s at the same concurrency); \
             credited {:.0} deposits/s during the webhooks",
            self.headline_phase,
            self.headline_rate,
            100.0 * self.ratio_to_healthz,
            self.healthz_rate,
            self.credited_per_sec
        );
        let n = &self.counts;
        let _ = writeln!(
            out,
            "sent: {} deposits created of {} ({} success, {} failure), {} deliveries ({} duplicates), \
             {} late ({} contradicting); app answered applied {} times",
            n.deposits_created,
            n.deposits_requested,
            n.successes,
            n.failures,
            n.deliveries,
            n.duplicate_deliveries,
            n.late_deliveries,
            n.contradicting_deliveries,
            n.applied
        );
        let k = &self.check;
        if k.passed {
            let _ = writeln!(
                out,
                "check: PASSED: {} users' balances equal their successful deposits ({} paise in all), \
                 {} deposits listed with the status sent, none applied twice",
                k.users_checked, k.observed_balance_paise, k.deposits_matched
            );
        } else {
            let _ = writeln!(
                out,
                "check: FAILED: {} problems (balances {} paise, expected {}); these figures do not count",
                k.problems_total, k.observed_balance_paise, k.expected_balance_paise
            );
            for p in &k.problems {
                let _ = writeln!(out, "  - {p}");
            }
            if k.problems_total > k.problems.len() {
                let _ = writeln!(out, "  … and {} more", k.problems_total - k.problems.len());
            }
        }
        for p in self.phases.iter().filter(|p| !p.error_samples.is_empty()) {
            let _ = writeln!(out, "errors in {}:", p.name);
            for s in &p.error_samples {
                let _ = writeln!(out, "  - {s}");
            }
        }
        out
    }
}

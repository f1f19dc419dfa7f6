//! What a load run found: per-phase figures, the writer's group commits, the final check; as a
//! table for people and as JSON for scripts.

use super::metrics::WriterFigures;
use super::phase::{CpuShare, PhaseResult};
use serde::Serialize;
use std::fmt::{self, Write as _};

mod withdrawals;

pub use withdrawals::{KindFigures, MixedReport, WithdrawalConfig, WithdrawalReport};

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
    /// Answers with a `5xx` status (counted in `errors` too).
    pub server_errors: u64,
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
            server_errors: r.rec.server_errors(),
            error_samples: r.rec.samples(),
            writer,
            cpu: r.cpu,
        }
    }
}

/// The options that shape the load; the report echoes them.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Connections for every phase but the webhooks.
    pub concurrency: usize,
    /// Connections posting webhooks.
    pub webhook_concurrency: usize,
    pub users: usize,
    pub deposits: usize,
    /// Extra deliveries of the same event per deposit (0.3: three deposits in ten get one).
    pub duplicates: f64,
    /// Shuffle the deliveries, and re-deliver some events (and contradicting ones) at the end.
    pub out_of_order: bool,
    /// Share of deposits the bank reports as FAILURE.
    pub failures: f64,
    pub healthz_secs: f64,
    pub seed: u64,
    /// The transfers-* and mixed scenarios' transfers; absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferConfig>,
    /// The withdrawals and mixed scenarios' withdrawals; absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<WithdrawalConfig>,
}

/// What shapes a transfers-* scenario beyond its funding deposits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferConfig {
    /// Transfers to send (transfers-crossing sends them in pairs, A→B and B→A at once).
    pub transfers: usize,
    /// Share of transfers deliberately over anything the sender could hold: each must be `409`.
    pub over_balance: f64,
    /// Deposits settled by webhook on the same wallets while the transfers run (0: none).
    pub storm_deposits: usize,
    /// Connections reading balances while the transfers run.
    pub read_concurrency: usize,
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
    /// `5xx` answers the app gave in any phase (a problem in the withdrawals and mixed
    /// scenarios, whose requests should never meet one).
    pub server_errors: u64,
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
    /// What the transfers did; absent in the deposit scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<TransferReport>,
    /// What the withdrawals did; absent without withdrawals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawals: Option<WithdrawalReport>,
    /// The mixed scenario's kinds of load; absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixed: Option<MixedReport>,
}

/// The transfers of a transfers-* scenario: what was sent, how it was answered, and what the
/// check found of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferReport {
    pub planned: usize,
    /// Planned deliberately over anything the sender could hold (each must be refused).
    pub over_balance: usize,
    /// Answered `201`.
    pub succeeded: usize,
    /// Answered `409 insufficient_funds`.
    pub insufficient_funds: usize,
    /// Answered anything else in the end (each is a problem of the check).
    pub other_answers: usize,
    /// No final answer after every attempt (each is a problem of the check).
    pub unresolved: usize,
    /// Attempts beyond the first (after a `5xx`, `429` or transport error, same Idempotency-Key).
    pub retries: u64,
    /// Paise the `201`s moved.
    pub moved_paise: i64,
    /// `201`s per second of the transfers phase.
    pub succeeded_per_sec: f64,
    /// `succeeded_per_sec / healthz_rate`.
    pub succeeded_ratio_to_healthz: f64,
    /// Deposits settled by webhook while the transfers ran.
    pub storm_deposits: usize,
    /// Balances read while the transfers ran, and the lowest of them.
    pub balance_reads: u64,
    pub lowest_balance_read: Option<i64>,
    /// `201`s found exactly once as `transfer_out` of the sender and once as `transfer_in` of the
    /// recipient.
    pub matched: usize,
}

/// The phase table's columns: heading and width; the first is left-aligned, the rest right.
const COLUMNS: [(&str, usize); 15] = [
    ("phase", 14),
    ("items", 8),
    ("requests", 9),
    ("rate/s", 10),
    ("p50 ms", 8),
    ("p90 ms", 8),
    ("p99 ms", 8),
    ("max ms", 8),
    ("errors", 7),
    ("commits", 8),
    ("batch", 7),
    ("commit ms", 10),
    ("p99 cmt ms", 10),
    ("cpu%", 5),
    ("tool%", 5),
];

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn row(out: &mut String, cells: [String; COLUMNS.len()]) -> fmt::Result {
    for (i, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
        if i == 0 {
            write!(out, "{cell:<width$}")?;
        } else {
            write!(out, " {cell:>width$}")?;
        }
    }
    writeln!(out)
}

fn phase_row(out: &mut String, p: &PhaseReport) -> fmt::Result {
    let [commits, batch, commit, p99_commit] = writer_cells(p.writer.as_ref());
    let [cpu, tool] = cpu_cells(p.cpu);
    row(
        out,
        [
            p.name.clone(),
            p.items.to_string(),
            p.requests.to_string(),
            format!("{:.1}", p.rate),
            ms(p.p50_ms),
            ms(p.p90_ms),
            ms(p.p99_ms),
            ms(p.max_ms),
            p.errors.to_string(),
            commits,
            batch,
            commit,
            p99_commit,
            cpu,
            tool,
        ],
    )
}

/// A phase that committed nothing has no batch or latency to show; "n/a" means the app has no
/// `/metrics` at all.
fn writer_cells(w: Option<&WriterFigures>) -> [String; 4] {
    match w {
        Some(w) if w.commits == 0 => ["0", "-", "-", "-"].map(String::from),
        Some(w) => [
            w.commits.to_string(),
            format!("{:.1}", w.mean_batch),
            format!("{:.2}", w.mean_commit_ms),
            w.p99_commit_ms.map_or("-".into(), |v| format!("≤{v}")),
        ],
        None => ["n/a"; 4].map(String::from),
    }
}

fn cpu_cells(cpu: Option<CpuShare>) -> [String; 2] {
    match cpu {
        Some(c) => [
            format!("{:.0}", c.machine_pct),
            format!("{:.0}", c.load_tool_pct),
        ],
        None => ["n/a"; 2].map(String::from),
    }
}

impl Report {
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The human-readable table and summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.write_table(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write_table(&self, out: &mut String) -> fmt::Result {
        self.write_title(out)?;
        row(out, COLUMNS.map(|(heading, _)| heading.to_owned()))?;
        for p in &self.phases {
            phase_row(out, p)?;
        }
        self.write_summary(out)?;
        self.check
            .write(out, self.transfers.as_ref(), self.withdrawals.as_ref())?;
        self.write_error_samples(out)
    }

    fn write_title(&self, out: &mut String) -> fmt::Result {
        let c = &self.config;
        writeln!(
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
        )?;
        if let Some(t) = &c.transfer {
            writeln!(
                out,
                "transfers: {} planned, over-balance share {}, {} deposits settled alongside, \
                 balances read on {} connections while they run",
                t.transfers, t.over_balance, t.storm_deposits, t.read_concurrency
            )?;
        }
        match &c.withdrawal {
            Some(w) => writeln!(
                out,
                "withdrawals: {} planned, over-balance share {}, failing-payout share {} (amounts \
                 ending in 13), balances read on {} connections while they run",
                w.withdrawals, w.over_balance, w.failing_payouts, w.read_concurrency
            ),
            None => Ok(()),
        }
    }

    fn write_summary(&self, out: &mut String) -> fmt::Result {
        match (&self.mixed, &self.withdrawals, &self.transfers) {
            (Some(m), _, _) => m.write_headline(out, self.healthz_rate)?,
            (None, Some(w), _) => w.write_headline(out, self.healthz_rate)?,
            (None, None, Some(t)) => return self.write_transfer_summary(out, t),
            (None, None, None) => writeln!(
                out,
                "headline: {} {:.0}/s = {:.0}% of /healthz ({:.0}/s at the same concurrency); \
                 credited {:.0} deposits/s during the webhooks",
                self.headline_phase,
                self.headline_rate,
                100.0 * self.ratio_to_healthz,
                self.healthz_rate,
                self.credited_per_sec
            )?,
        }
        self.write_sent(out)?;
        if let Some(t) = &self.transfers {
            write_transfer_line(out, t)?;
        }
        match (&self.mixed, &self.withdrawals) {
            (Some(_), Some(w)) => {
                w.write_rates(out)?;
                w.write_line(out)
            }
            (None, Some(w)) => w.write_line(out),
            _ => Ok(()),
        }
    }

    fn write_sent(&self, out: &mut String) -> fmt::Result {
        let n = &self.counts;
        writeln!(
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
        )
    }

    fn write_transfer_summary(&self, out: &mut String, t: &TransferReport) -> fmt::Result {
        writeln!(
            out,
            "headline: transfers answered 201 at {:.0}/s = {:.0}% of /healthz ({:.0}/s at the same \
             concurrency); all transfer requests {:.0}/s ({:.0}%); funding credited {:.0} deposits/s",
            t.succeeded_per_sec,
            100.0 * t.succeeded_ratio_to_healthz,
            self.healthz_rate,
            self.headline_rate,
            100.0 * self.ratio_to_healthz,
            self.credited_per_sec
        )?;
        self.write_sent(out)?;
        write_transfer_line(out, t)
    }

    fn write_error_samples(&self, out: &mut String) -> fmt::Result {
        for p in self.phases.iter().filter(|p| !p.error_samples.is_empty()) {
            writeln!(out, "errors in {}:", p.name)?;
            for s in &p.error_samples {
                writeln!(out, "  - {s}")?;
            }
        }
        Ok(())
    }
}

fn write_transfer_line(out: &mut String, t: &TransferReport) -> fmt::Result {
    let lowest = t
        .lowest_balance_read
        .map_or("-".to_owned(), |v| v.to_string());
    writeln!(
        out,
        "transfers: {} planned ({} over the balance), {} answered 201 ({} paise moved), {} refused \
         409 insufficient_funds, {} other answers, {} unresolved, {} retries; {} deposits settled \
         alongside; {} balance reads while they ran, the lowest {lowest} paise",
        t.planned,
        t.over_balance,
        t.succeeded,
        t.moved_paise,
        t.insufficient_funds,
        t.other_answers,
        t.unresolved,
        t.retries,
        t.storm_deposits,
        t.balance_reads
    )
}

impl CheckReport {
    fn write(
        &self,
        out: &mut String,
        transfers: Option<&TransferReport>,
        withdrawals: Option<&WithdrawalReport>,
    ) -> fmt::Result {
        if let (true, Some(w)) = (self.passed, withdrawals) {
            return withdrawals::write_passed(self, transfers, w, out);
        }
        if let (true, Some(t)) = (self.passed, transfers) {
            return writeln!(
                out,
                "check: PASSED: {} users' balances equal deposits in + transfers in - transfers out, \
                 and add up to the {} paise the successful deposits credited (money conserved); {} \
                 deposits listed with the status sent, none applied twice; {} transfers answered 201 \
                 listed exactly once on each side, no refused transfer moved money; no balance read \
                 below zero ({} reads)",
                self.users_checked,
                self.observed_balance_paise,
                self.deposits_matched,
                t.matched,
                t.balance_reads
            );
        }
        if self.passed {
            return writeln!(
                out,
                "check: PASSED: {} users' balances equal their successful deposits ({} paise in all), \
                 {} deposits listed with the status sent, none applied twice",
                self.users_checked, self.observed_balance_paise, self.deposits_matched
            );
        }
        writeln!(
            out,
            "check: FAILED: {} problems (balances {} paise, expected {}); these figures do not count",
            self.problems_total, self.observed_balance_paise, self.expected_balance_paise
        )?;
        for p in &self.problems {
            writeln!(out, "  - {p}")?;
        }
        if self.problems_total > self.problems.len() {
            writeln!(
                out,
                "  … and {} more",
                self.problems_total - self.problems.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, writer: Option<WriterFigures>, cpu: Option<CpuShare>) -> PhaseReport {
        PhaseReport {
            name: name.into(),
            items: 300,
            requests: 386,
            secs: 0.377,
            rate: 1021.84,
            p50_ms: 15.04,
            p90_ms: 99.996,
            p99_ms: 100.0,
            max_ms: 1234.5,
            errors: 0,
            server_errors: 0,
            error_samples: Vec::new(),
            writer,
            cpu,
        }
    }

    /// Each way a phase's writer and CPU columns can look.
    fn phases() -> Vec<PhaseReport> {
        let busy = WriterFigures {
            commits: 57,
            changes: 301,
            mean_batch: 5.28,
            mean_commit_ms: 5.625,
            p99_commit_ms: Some(25.0),
        };
        let idle = WriterFigures {
            commits: 0,
            changes: 0,
            mean_batch: 0.0,
            mean_commit_ms: 0.0,
            p99_commit_ms: None,
        };
        let unbounded = WriterFigures {
            p99_commit_ms: None,
            ..busy.clone()
        };
        let cpu = CpuShare {
            machine_pct: 99.6,
            load_tool_pct: 62.4,
        };
        let mut failing = phase("a-long-phase-name", None, None);
        failing.errors = 2;
        failing.error_samples = vec!["POST /api/webhooks/bank: 401 nope".into(), "x".into()];
        vec![
            phase("healthz", Some(busy), Some(cpu)),
            phase("late", Some(idle), Some(cpu)),
            phase("check", Some(unbounded), None),
            failing,
        ]
    }

    fn report(passed: bool) -> Report {
        let problems = vec!["deposit a: 401".to_owned(), "deposit b: 401".to_owned()];
        Report {
            scenario: "smoke".into(),
            app: "http://localhost:8080".into(),
            config: RunConfig {
                concurrency: 32,
                webhook_concurrency: 8,
                users: 7,
                deposits: 1000,
                duplicates: 1.5,
                out_of_order: false,
                failures: 0.25,
                healthz_secs: 2.0,
                seed: 42,
                transfer: None,
                withdrawal: None,
            },
            phases: phases(),
            headline_phase: "webhooks".into(),
            headline_rate: 1021.8,
            healthz_rate: 2281.1,
            ratio_to_healthz: 0.4479,
            credited_per_sec: 720.4,
            counts: Counts {
                users: 5,
                deposits_requested: 300,
                deposits_created: 299,
                successes: 271,
                failures: 28,
                deliveries: 386,
                duplicate_deliveries: 86,
                late_deliveries: 109,
                contradicting_deliveries: 15,
                applied: 300,
                credited_paise: 13_657_501,
            },
            check: CheckReport {
                passed,
                users_checked: 5,
                deposits_matched: 300,
                expected_balance_paise: 13_657_501,
                observed_balance_paise: 13_657_000,
                server_errors: 0,
                problems_total: if passed { 0 } else { 7 },
                problems: if passed { Vec::new() } else { problems },
            },
            transfers: None,
            withdrawals: None,
            mixed: None,
        }
    }

    /// Scripts and people read this text: its columns and wording stay put.
    const FAILED_TABLE: &str = "\
onramp load: scenario smoke against http://localhost:8080 (concurrency 32, webhook concurrency 8, 7 users, 1000 deposits, duplicates 1.5, out-of-order false, failures 0.25, seed 42)
phase             items  requests     rate/s   p50 ms   p90 ms   p99 ms   max ms  errors  commits   batch  commit ms p99 cmt ms  cpu% tool%
healthz             300       386     1021.8    15.04   100.00      100     1234       0       57     5.3       5.62        ≤25   100    62
late                300       386     1021.8    15.04   100.00      100     1234       0        0       -          -          -   100    62
check               300       386     1021.8    15.04   100.00      100     1234       0       57     5.3       5.62          -   n/a   n/a
a-long-phase-name      300       386     1021.8    15.04   100.00      100     1234       2      n/a     n/a        n/a        n/a   n/a   n/a
headline: webhooks 1022/s = 45% of /healthz (2281/s at the same concurrency); credited 720 deposits/s during the webhooks
sent: 299 deposits created of 300 (271 success, 28 failure), 386 deliveries (86 duplicates), 109 late (15 contradicting); app answered applied 300 times
check: FAILED: 7 problems (balances 13657000 paise, expected 13657501); these figures do not count
  - deposit a: 401
  - deposit b: 401
  … and 5 more
errors in a-long-phase-name:
  - POST /api/webhooks/bank: 401 nope
  - x
";

    #[test]
    fn the_table_keeps_its_layout() {
        assert_eq!(report(false).table(), FAILED_TABLE);
        let passed = report(true).table();
        assert!(passed.contains(
            "\ncheck: PASSED: 5 users' balances equal their successful deposits (13657000 paise \
             in all), 300 deposits listed with the status sent, none applied twice\n"
        ));
        assert!(!passed.contains("FAILED"));
    }

    #[test]
    fn the_json_names_every_figure() {
        let json = serde_json::to_value(report(false)).unwrap();
        assert_eq!(json["config"]["webhook_concurrency"], 8);
        assert_eq!(json["phases"][0]["writer"]["p99_commit_ms"], 25.0);
        assert_eq!(json["phases"][3]["cpu"], serde_json::Value::Null);
        assert_eq!(json["counts"]["contradicting_deliveries"], 15);
        assert_eq!(json["check"]["problems_total"], 7);
        assert!(json["config"].get("transfer").is_none(), "{json}");
        assert!(json.get("transfers").is_none(), "{json}");
    }

    fn transfer_report(passed: bool) -> Report {
        let mut r = report(passed);
        r.scenario = "transfers-crossing".into();
        r.headline_phase = "transfers".into();
        r.config.transfer = Some(TransferConfig {
            transfers: 2000,
            over_balance: 0.1,
            storm_deposits: 500,
            read_concurrency: 4,
        });
        r.transfers = Some(TransferReport {
            planned: 2000,
            over_balance: 190,
            succeeded: 1700,
            insufficient_funds: 300,
            retries: 2,
            moved_paise: 1_234_567,
            succeeded_per_sec: 850.4,
            succeeded_ratio_to_healthz: 0.3728,
            storm_deposits: 500,
            balance_reads: 4321,
            lowest_balance_read: Some(0),
            matched: 1700,
            ..TransferReport::default()
        });
        r
    }

    #[test]
    fn a_transfer_run_says_what_its_transfers_did() {
        let table = transfer_report(true).table();
        assert!(table.contains(
            "\ntransfers: 2000 planned, over-balance share 0.1, 500 deposits settled alongside, \
             balances read on 4 connections while they run\n"
        ));
        assert!(table.contains(
            "\nheadline: transfers answered 201 at 850/s = 37% of /healthz (2281/s at the same \
             concurrency); all transfer requests 1022/s (45%); funding credited 720 deposits/s\n"
        ));
        assert!(table.contains(
            "\ntransfers: 2000 planned (190 over the balance), 1700 answered 201 (1234567 paise \
             moved), 300 refused 409 insufficient_funds, 0 other answers, 0 unresolved, 2 retries; \
             500 deposits settled alongside; 4321 balance reads while they ran, the lowest 0 paise\n"
        ));
        assert!(
            table.contains("\ncheck: PASSED: 5 users' balances equal deposits in + transfers in")
        );
        assert!(table.contains("1700 transfers answered 201 listed exactly once on each side"));
        let failed = transfer_report(false).table();
        assert!(failed.contains("\ncheck: FAILED: 7 problems"), "{failed}");
        let json = serde_json::to_value(transfer_report(true)).unwrap();
        assert_eq!(json["config"]["transfer"]["storm_deposits"], 500);
        assert_eq!(json["transfers"]["succeeded"], 1700);
        assert_eq!(json["transfers"]["lowest_balance_read"], 0);
    }

    fn withdrawal_report(passed: bool) -> Report {
        let mut r = report(passed);
        r.scenario = "withdrawals".into();
        r.headline_phase = "withdrawals".into();
        r.config.withdrawal = Some(WithdrawalConfig {
            withdrawals: 3000,
            over_balance: 0.1,
            failing_payouts: 0.2,
            read_concurrency: 4,
        });
        r.withdrawals = Some(WithdrawalReport {
            planned: 3000,
            over_balance: 290,
            failing: 540,
            succeeded: 2710,
            insufficient_funds: 290,
            withdrawn_paise: 7_000_000,
            returned_paise: 1_400_000,
            succeeded_per_sec: 1250.4,
            p50_ms: 20.0,
            p99_ms: 80.5,
            deposits_created_per_sec: 1000.2,
            deposit_p50_ms: 25.0,
            deposit_p99_ms: 90.0,
            ratio_to_deposit_creation: 1.2502,
            settled_after_secs: Some(1.25),
            balance_reads: 999,
            lowest_balance_read: Some(0),
            matched: 2710,
            ..WithdrawalReport::default()
        });
        r
    }

    #[test]
    fn a_withdrawal_run_sets_its_rate_beside_the_deposit_creations() {
        let table = withdrawal_report(true).table();
        assert!(table.contains(
            "\nwithdrawals: 3000 planned, over-balance share 0.1, failing-payout share 0.2 \
             (amounts ending in 13), balances read on 4 connections while they run\n"
        ));
        assert!(table.contains(
            "\nheadline: withdrawals answered 201 at 1250/s (p50 20.00 ms, p99 80.50 ms, the \
             bank's create-payout included) = 1.25 x the same run's deposit creation, 1000/s \
             (p50 25.00 ms, p99 90.00 ms, the bank's create-order included); /healthz 2281/s at \
             the same concurrency\n"
        ));
        assert!(table.contains(
            "\nwithdrawals: 3000 planned (290 over the balance, 540 to fail at the bank), 2710 \
             answered 201 (7000000 paise, 1400000 returned by failed payouts), 290 refused 409 \
             insufficient_funds, 0 other answers, 0 unresolved, 0 retries; none processing 1.2 s \
             after the last answer; 999 balance reads while they ran, the lowest 0 paise\n"
        ));
        assert!(table.contains(
            "\ncheck: PASSED: 5 users' balances equal deposits in - withdrawals not failed"
        ));
        assert!(table.contains(
            "2710 withdrawals answered 201 listed exactly once, failure \
             exactly when the amount ends in 13"
        ));
        assert!(!table.contains("transfers"), "{table}");
        let failed = withdrawal_report(false).table();
        assert!(failed.contains("\ncheck: FAILED: 7 problems"), "{failed}");
        let json = serde_json::to_value(withdrawal_report(true)).unwrap();
        assert_eq!(json["config"]["withdrawal"]["failing_payouts"], 0.2);
        assert_eq!(json["withdrawals"]["deposits_created_per_sec"], 1000.2);
        assert_eq!(json["withdrawals"]["settled_after_secs"], 1.25);
        assert!(json.get("mixed").is_none() && json.get("transfers").is_none());
    }

    #[test]
    fn a_mixed_run_gives_each_kinds_rate_and_p99() {
        let mut r = withdrawal_report(true);
        let t = transfer_report(true);
        (r.scenario, r.headline_phase) = ("mixed".into(), "mixed".into());
        (r.config.transfer, r.transfers) = (t.config.transfer, t.transfers);
        let phases = phases();
        let kinds = [("deposits", &phases[0]), ("transfers", &phases[1])];
        r.mixed = Some(MixedReport::new(&phases[2], &kinds));
        let table = r.table();
        assert!(table.contains(
            "\nheadline: mixed load 1022 requests/s (p99 100.00 ms) = 45% of /healthz (2281/s at \
             the same concurrency); deposits 1022/s p99 100.00 ms, transfers 1022/s p99 100.00 \
             ms\n"
        ));
        assert!(table.contains("\nwithdrawals answered 201 at 1250/s (p50 20.00 ms, p99 80.50 ms)"));
        assert!(table.contains("\ntransfers: 2000 planned (190 over the balance)"));
        assert!(table.contains("\nwithdrawals: 3000 planned (290 over the balance"));
        assert!(table.contains(
            "balances equal deposits in + transfers in - transfers out - withdrawals not failed"
        ));
        assert!(table.contains("1700 transfers answered 201 listed exactly once on each side"));
        assert!(
            table.contains("no balance read below zero (999 reads)"),
            "{table}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mixed"]["kinds"][1]["kind"], "transfers");
        assert_eq!(json["mixed"]["kinds"][0]["phase"], "healthz");
        assert_eq!(json["mixed"]["requests"], 386);
    }
}

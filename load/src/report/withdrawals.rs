//! The withdrawals and mixed scenarios' part of the report: what shaped the withdrawals, what
//! they did beside the same run's deposit creations, and each kind of the mixed load; as JSON
//! and as the lines of the table.

use super::{CheckReport, PhaseReport, TransferReport};
use serde::Serialize;
use std::fmt::{self, Write as _};

/// What shapes the withdrawals of the withdrawals and mixed scenarios.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithdrawalConfig {
    /// Withdrawals to make.
    pub withdrawals: usize,
    /// Share deliberately over anything the user could hold: each must be `409`.
    pub over_balance: f64,
    /// Share whose amount ends in 13: the bank (its simulator) fails their payouts.
    pub failing_payouts: f64,
    /// Connections reading balances while the withdrawals run.
    pub read_concurrency: usize,
}

/// What the withdrawals did, how fast beside the same run's deposit creations, and what the
/// check found of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WithdrawalReport {
    pub planned: usize,
    /// Planned deliberately over anything the user could hold (each must be refused).
    pub over_balance: usize,
    /// Planned with an amount ending in 13: their payouts fail and the amount comes back.
    pub failing: usize,
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
    /// Paise the `201`s took, and the part their failed payouts brought back.
    pub withdrawn_paise: i64,
    pub returned_paise: i64,
    /// `201`s per second of the withdrawals phase (the bank's create-payout included), and the
    /// latency of the requests answered `201`.
    pub succeeded_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The same run's `POST /api/deposit` (the bank's create-order included): deposits created
    /// per second of their phase, and its latencies.
    pub deposits_created_per_sec: f64,
    pub deposit_p50_ms: f64,
    pub deposit_p99_ms: f64,
    /// `succeeded_per_sec / deposits_created_per_sec`.
    pub ratio_to_deposit_creation: f64,
    /// From the last withdrawal's answer until none was listed as `processing`; `None` when
    /// some still were at the end of the wait.
    pub settled_after_secs: Option<f64>,
    /// Balances read while the withdrawals ran, and the lowest of them.
    pub balance_reads: u64,
    pub lowest_balance_read: Option<i64>,
    /// `201`s listed exactly once, `failure` exactly when the amount ends in 13.
    pub matched: usize,
}

/// The mixed scenario's load as one: every request of the three kinds over the time they ran
/// together, and each kind on its own.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MixedReport {
    pub secs: f64,
    pub requests: u64,
    /// Requests per second, all kinds together.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub kinds: Vec<KindFigures>,
}

/// One kind of request of the mixed load, from its phase.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// `deposits` (the webhooks that settle them), `transfers` or `withdrawals`.
    pub kind: String,
    pub phase: String,
    pub requests: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl MixedReport {
    /// `all`: the phases' combined row; `kinds`: each kind's name and phase.
    pub fn new(all: &PhaseReport, kinds: &[(&str, &PhaseReport)]) -> MixedReport {
        MixedReport {
            secs: all.secs,
            requests: all.requests,
            rate: all.rate,
            p50_ms: all.p50_ms,
            p99_ms: all.p99_ms,
            kinds: kinds
                .iter()
                .map(|(kind, p)| KindFigures {
                    kind: (*kind).to_owned(),
                    phase: p.name.clone(),
                    requests: p.requests,
                    rate: p.rate,
                    p50_ms: p.p50_ms,
                    p99_ms: p.p99_ms,
                    errors: p.errors,
                })
                .collect(),
        }
    }

    pub(super) fn write_headline(&self, out: &mut String, healthz_rate: f64) -> fmt::Result {
        let pct = if healthz_rate > 0.0 {
            100.0 * self.rate / healthz_rate
        } else {
            0.0
        };
        write!(
            out,
            "headline: mixed load {:.0} requests/s (p99 {:.2} ms) = {pct:.0}% of /healthz ({:.0}/s at \
             the same concurrency);",
            self.rate, self.p99_ms, healthz_rate
        )?;
        for (i, k) in self.kinds.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                out,
                "{sep} {} {:.0}/s p99 {:.2} ms",
                k.kind, k.rate, k.p99_ms
            )?;
        }
        writeln!(out)
    }
}

impl WithdrawalReport {
    pub(super) fn write_headline(&self, out: &mut String, healthz_rate: f64) -> fmt::Result {
        writeln!(
            out,
            "headline: withdrawals answered 201 at {:.0}/s (p50 {:.2} ms, p99 {:.2} ms, the bank's \
             create-payout included) = {:.2} x the same run's deposit creation, {:.0}/s (p50 {:.2} \
             ms, p99 {:.2} ms, the bank's create-order included); /healthz {:.0}/s at the same \
             concurrency",
            self.succeeded_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.ratio_to_deposit_creation,
            self.deposits_created_per_sec,
            self.deposit_p50_ms,
            self.deposit_p99_ms,
            healthz_rate
        )
    }

    /// The comparison the mixed scenario's headline leaves out.
    pub(super) fn write_rates(&self, out: &mut String) -> fmt::Result {
        writeln!(
            out,
            "withdrawals answered 201 at {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) beside the rest; \
             deposits created at {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) before it",
            self.succeeded_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.deposits_created_per_sec,
            self.deposit_p50_ms,
            self.deposit_p99_ms
        )
    }

    pub(super) fn write_line(&self, out: &mut String) -> fmt::Result {
        let lowest = self
            .lowest_balance_read
            .map_or("-".to_owned(), |v| v.to_string());
        let settled = self
            .settled_after_secs
            .map_or("NOT within the wait".to_owned(), |s| format!("{s:.1} s"));
        writeln!(
            out,
            "withdrawals: {} planned ({} over the balance, {} to fail at the bank), {} answered 201 \
             ({} paise, {} returned by failed payouts), {} refused 409 insufficient_funds, {} other \
             answers, {} unresolved, {} retries; none processing {settled} after the last answer; \
             {} balance reads while they ran, the lowest {lowest} paise",
            self.planned,
            self.over_balance,
            self.failing,
            self.succeeded,
            self.withdrawn_paise,
            self.returned_paise,
            self.insufficient_funds,
            self.other_answers,
            self.unresolved,
            self.retries,
            self.balance_reads
        )
    }
}

/// The check's line of a passing run with withdrawals (and, in the mixed scenario, transfers).
pub(super) fn write_passed(
    check: &CheckReport,
    transfers: Option<&TransferReport>,
    w: &WithdrawalReport,
    out: &mut String,
) -> fmt::Result {
    let (terms, moved) = match transfers {
        Some(t) => (
            " + transfers in - transfers out",
            format!(
                "; {} transfers answered 201 listed exactly once on each side",
                t.matched
            ),
        ),
        None => ("", String::new()),
    };
    // One set of readers ran beside both the transfers and the withdrawals.
    let reads = w.balance_reads;
    writeln!(
        out,
        "check: PASSED: {} users' balances equal deposits in{terms} - withdrawals not failed, and \
         add up to the {} paise that leaves; {} deposits listed with the status sent, none applied \
         twice{moved}; {} withdrawals answered 201 listed exactly once, failure exactly when the \
         amount ends in 13, none left processing; no refused request moved money; no 5xx answer; \
         no balance read below zero ({reads} reads)",
        check.users_checked, check.observed_balance_paise, check.deposits_matched, w.matched
    )
}

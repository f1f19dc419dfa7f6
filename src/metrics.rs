//! Prometheus metrics: one recorder per process (installed on first use), rendered at
//! `GET /metrics`. Gauges of live things (wallet actors, cached sessions) are read at scrape time.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use onramp_actors::writer::{
    BATCH_BUCKETS, BATCH_SIZE_METRIC, COMMIT_BUCKETS, COMMIT_SECONDS_METRIC,
};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed the first time it is asked for.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(BATCH_SIZE_METRIC.into()), &BATCH_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMIT_SECONDS_METRIC.into()),
                        &COMMIT_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// The app's counters, each with what it counts.
const COUNTERS: &[(&str, &str)] = &[
    (
        "onramp_writer_failed_commits_total",
        "Group commits that failed",
    ),
    ("onramp_webhooks_total", "Bank webhooks by outcome"),
    ("onramp_credits_total", "Wallet credits committed"),
    ("onramp_credited_paise_total", "Paise credited to wallets"),
    (
        "onramp_payout_returns_total",
        "Failed payouts whose amount came back to the wallet",
    ),
    (
        "onramp_returned_paise_total",
        "Paise returned to wallets by failed payouts",
    ),
    (
        "onramp_deposits_total",
        "Deposits by outcome of their creation",
    ),
    (
        "onramp_reconciliation_total",
        "Reconciliation checks by outcome",
    ),
    (
        "onramp_withdrawal_requests_total",
        "Withdrawals by outcome of their creation",
    ),
    (
        "onramp_payout_checks_total",
        "Payout reconciliation checks by outcome",
    ),
    (
        "onramp_bank_faults_total",
        "Bank calls that did not give the bank's word, by call and kind",
    ),
];

fn describe() {
    metrics::describe_histogram!(
        BATCH_SIZE_METRIC,
        "Changes committed per group-commit transaction"
    );
    metrics::describe_histogram!(
        COMMIT_SECONDS_METRIC,
        metrics::Unit::Seconds,
        "Group-commit transaction latency"
    );
    for (name, help) in COUNTERS {
        metrics::describe_counter!(*name, *help);
    }
    metrics::describe_gauge!("onramp_wallet_actors", "Wallet actors alive");
    metrics::describe_gauge!("onramp_sessions_cached", "Sessions held in memory");
}

/// Counts a webhook by its outcome.
pub fn webhook(outcome: &'static str) {
    metrics::counter!("onramp_webhooks_total", "outcome" => outcome).increment(1);
}

/// Counts a deposit creation by its outcome.
pub fn deposit(outcome: &'static str) {
    metrics::counter!("onramp_deposits_total", "outcome" => outcome).increment(1);
}

/// Counts a withdrawal's creation by its outcome.
pub fn withdrawal(outcome: &'static str) {
    metrics::counter!("onramp_withdrawal_requests_total", "outcome" => outcome).increment(1);
}

/// Counts a payout reconciliation check by its outcome.
pub fn payout_check(outcome: &'static str) {
    metrics::counter!("onramp_payout_checks_total", "outcome" => outcome).increment(1);
}

/// Counts a reconciliation check by its outcome.
pub fn reconciliation(outcome: &'static str) {
    metrics::counter!("onramp_reconciliation_total", "outcome" => outcome).increment(1);
}

//! The withdrawals scenario's options: what it runs unless told otherwise, and what the
//! withdrawal options must satisfy (the mixed scenario's withdrawals too).

use crate::report::{RunConfig, WithdrawalConfig};
use crate::scenario::options::share;
use crate::scenario::LoadConfig;
use anyhow::ensure;

/// Withdrawals made unless `--withdrawals` says otherwise.
const DEFAULT_WITHDRAWALS: usize = 20_000;
const USERS: usize = 1_000;
/// Funding deposits per user unless `--deposits` says otherwise: enough that their creation,
/// the rate the withdrawals are compared with, is measured over a phase of some length.
pub(in crate::scenario) const DEPOSITS_PER_USER: usize = 10;
/// Shares of the withdrawals over the balance and failing at the bank.
const OVER_BALANCE: f64 = 0.1;
const FAILING_PAYOUTS: f64 = 0.2;
/// Connections reading balances while the withdrawals run.
const READ_CONCURRENCY: usize = 4;

/// `withdrawals` withdrawals with the default shares.
pub(in crate::scenario) fn withdrawal_config(withdrawals: usize) -> WithdrawalConfig {
    WithdrawalConfig {
        withdrawals,
        over_balance: OVER_BALANCE,
        failing_payouts: FAILING_PAYOUTS,
        read_concurrency: READ_CONCURRENCY,
    }
}

/// The withdrawals scenario's defaults: `base` with its users, funding and withdrawals.
pub(in crate::scenario) fn defaults(base: RunConfig) -> RunConfig {
    RunConfig {
        users: USERS,
        deposits: USERS * DEPOSITS_PER_USER,
        withdrawal: Some(withdrawal_config(DEFAULT_WITHDRAWALS)),
        ..base
    }
}

/// The withdrawal options `w`, given to a scenario that makes withdrawals.
pub(in crate::scenario) fn validate(cfg: &LoadConfig, w: &WithdrawalConfig) -> anyhow::Result<()> {
    let name = cfg.scenario.name();
    ensure!(
        w.withdrawals >= 1,
        "--withdrawals must be at least 1 in {name}"
    );
    share("--over-balance", w.over_balance)?;
    share("--failing-payouts", w.failing_payouts)
}

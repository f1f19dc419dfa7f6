//! The transfers-* scenarios' options: what each scenario runs unless told otherwise, and what
//! the options must satisfy (the mixed scenario's transfers too).

use crate::report::{RunConfig, TransferConfig};
use crate::scenario::options::share;
use crate::scenario::{LoadConfig, Scenario};
use anyhow::ensure;

/// Transfers sent unless `--transfers` says otherwise.
const DEFAULT_TRANSFERS: usize = 20_000;
/// Connections reading balances while the transfers run.
const READ_CONCURRENCY: usize = 4;

/// The scenario's defaults: `base` with its users, funding and transfers.
pub(in crate::scenario) fn defaults(scenario: Scenario, base: RunConfig) -> RunConfig {
    let (users, deposits, over_balance) = match scenario {
        Scenario::TransfersHotSender => (1_000, 10, 0.0),
        Scenario::TransfersCrossing => (2_000, 2_000, 0.1),
        _ => (10_000, 10_000, 0.1),
    };
    RunConfig {
        users,
        deposits,
        transfer: Some(TransferConfig {
            transfers: DEFAULT_TRANSFERS,
            over_balance,
            storm_deposits: 0,
            read_concurrency: READ_CONCURRENCY,
        }),
        ..base
    }
}

/// The transfer options `t`, given to a scenario that sends transfers.
pub(in crate::scenario) fn validate(cfg: &LoadConfig, t: &TransferConfig) -> anyhow::Result<()> {
    let name = cfg.scenario.name();
    ensure!(cfg.run.users >= 2, "--users must be at least 2 in {name}");
    let least = if cfg.scenario == Scenario::TransfersCrossing {
        2
    } else {
        1
    };
    ensure!(
        t.transfers >= least,
        "--transfers must be at least {least} in {name}"
    );
    share("--over-balance", t.over_balance)
}

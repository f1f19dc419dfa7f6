//! What the options must satisfy alike: the transfer and withdrawal options are given in exactly
//! the scenarios that make such requests, and every share is from 0 to 1.

use crate::scenario::Scenario;
use anyhow::ensure;

/// The scenarios that take the transfer options, and those that take the withdrawal options, as
/// the messages about them say.
pub(crate) const TRANSFER_SCENARIOS: &str = "the transfers-* and mixed scenarios";
pub(crate) const WITHDRAWAL_SCENARIOS: &str = "the withdrawals and mixed scenarios";

/// The options of one kind of request (`kind`: "transfer"), which a scenario that makes such
/// requests (`made`) needs and no other takes (`scenarios` names those that do); answers them
/// when given, for the kind's own checks.
pub(in crate::scenario) fn where_made<'a, T>(
    scenario: Scenario,
    options: Option<&'a T>,
    made: bool,
    (kind, scenarios): (&str, &str),
) -> anyhow::Result<Option<&'a T>> {
    let name = scenario.name();
    ensure!(
        options.is_some() || !made,
        "{name} needs its {kind} options"
    );
    ensure!(
        made || options.is_none(),
        "the {kind} options are for {scenarios}, not {name}"
    );
    Ok(options)
}

/// `option` is a share: from 0 to 1.
pub(in crate::scenario) fn share(option: &str, value: f64) -> anyhow::Result<()> {
    ensure!((0.0..=1.0).contains(&value), "{option} must be from 0 to 1");
    Ok(())
}

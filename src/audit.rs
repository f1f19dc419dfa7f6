//! `onramp audit`: checks the books of the database named by `database.url` (config.md) and
//! prints what it found. It reads one consistent snapshot, so it may run beside the app; it is
//! not an app process and takes no process lock.

use crate::configuration::Settings;
use anyhow::Context;

/// Prints the audit's report; `Ok(true)` when the books balance.
pub async fn run(settings: &Settings) -> anyhow::Result<bool> {
    let store = onramp_store::connect(&settings.database.url, 2)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                onramp_store::redact_url(&settings.database.url)
            )
        })?;
    let report = store.audit().await.context("the audit's queries failed")?;
    println!("{report}");
    Ok(report.is_ok())
}

//! `onramp load`: a load generator and checker that uses only the public interfaces.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {}

pub async fn run(_args: LoadArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

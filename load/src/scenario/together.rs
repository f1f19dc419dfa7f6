//! Phases that run at the same moment on the same wallets: the transfers, the withdrawals, or
//! both with the deposits' webhooks (the mixed scenario), with the balance readers alongside.
//! One pair of `/metrics` scrapes covers them all, since the app's writer served them together,
//! and the readers stop once the rest have ended, whatever became of them.

use super::readers::{sample, Sampling};
use super::Run;
use crate::metrics;
use crate::phase::{cpu_share, cpu_ticks, Bound, PhaseResult};
use crate::report::PhaseReport;
use anyhow::Context;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// A phase made ([`Run::phase`]) and not started yet.
pub(super) type Pending = Pin<Box<dyn Future<Output = PhaseResult> + Send + 'static>>;

impl Run {
    /// Runs `phases` at once with the balance readers alongside, reports them (the readers
    /// last), and answers their results in the order given. With `combined`, the phases are
    /// also reported as one, under that name, after them: their requests over the time from
    /// their start until the last of them ended.
    pub(super) async fn together(
        &mut self,
        phases: Vec<Pending>,
        combined: Option<&'static str>,
        sampling: &Arc<Sampling>,
        read_concurrency: usize,
    ) -> anyhow::Result<Vec<PhaseResult>> {
        let before = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        let stop = Arc::new(AtomicBool::new(false));
        // No readers at all with 0: a phase runs at least one task.
        let reads = (read_concurrency > 0).then(|| {
            tokio::spawn(self.phase(
                "balance-reads",
                Bound::Until(stop.clone()),
                read_concurrency,
                sampling.clone(),
                sample,
            ))
        });
        let (ticks, started) = (cpu_ticks(), Instant::now());
        let handles: Vec<_> = phases.into_iter().map(tokio::spawn).collect();
        let mut results = Vec::with_capacity(handles.len());
        let mut failed = None;
        for h in handles {
            match h.await {
                Ok(r) => results.push(r),
                Err(e) => failed = Some(e),
            }
        }
        let (elapsed, cpu) = (started.elapsed(), cpu_share(ticks, cpu_ticks()));
        stop.store(true, Relaxed);
        if let Some(e) = failed {
            return Err(e).context("a phase of the load failed");
        }
        let reads = match reads {
            Some(reads) => Some(reads.await.context("the balance readers failed")?),
            None => None,
        };
        let after = metrics::scrape(&self.ctx.client, self.ctx.apps.all()).await;
        let writer = metrics::figures(before.as_ref(), after.as_ref());
        for r in &results {
            self.phases.push(PhaseReport::new(r, writer.clone()));
        }
        if let Some(name) = combined {
            let parts: Vec<&PhaseResult> = results.iter().collect();
            let all = PhaseResult::combined(name, &parts, elapsed, cpu);
            self.phases.push(PhaseReport::new(&all, writer.clone()));
        }
        if let Some(reads) = reads {
            self.phases.push(PhaseReport::new(&reads, writer));
        }
        Ok(results)
    }
}

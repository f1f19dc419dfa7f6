//! The DB writer: the one place that changes the database. Callers queue a [`WriteOp`] and wait
//! for its outcome; the writer drains whatever has queued up (up to `max_batch`) into one
//! transaction, commits it, and only then answers every waiter (group commit). A failed batch
//! is retried one change at a time, so one bad change cannot fail its neighbours; a change that
//! fails alone is answered with the error and nobody is told it succeeded.

use crate::store::{OpOutcome, Store, StoreError, WriteOp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the change was not committed: {0}")]
    Failed(String),
    #[error("the DB writer has stopped")]
    Stopped,
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Failed(e.to_string())
    }
}

type Reply = oneshot::Sender<Result<OpOutcome, WriteError>>;

enum Job {
    Write(WriteOp, Reply),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Histogram bucket bounds (upper, inclusive) for batch sizes and commit latency.
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

/// Counters the writer keeps; read by `/metrics` and the load tool.
#[derive(Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub ops: AtomicU64,
    pub failed_batches: AtomicU64,
    pub failed_ops: AtomicU64,
    pub max_batch: AtomicU64,
    pub commit_us_total: AtomicU64,
    pub batch_size_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
}

impl WriterStats {
    fn record(&self, size: usize, took: Duration, ok: bool) {
        let size = size as u64;
        let us = took.as_micros() as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(size, Ordering::Relaxed);
        self.max_batch.fetch_max(size, Ordering::Relaxed);
        self.commit_us_total.fetch_add(us, Ordering::Relaxed);
        if !ok {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(i) = BATCH_BUCKETS.iter().position(|&b| size <= b) {
            self.batch_size_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|&b| us <= b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A handle to the DB writer; cheap to clone.
#[derive(Clone)]
pub struct DbWriter {
    tx: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
}

impl DbWriter {
    /// Starts the writer on the current tokio runtime. It stops when every handle is dropped,
    /// after committing what was queued.
    pub fn start(store: Arc<dyn Store>, max_batch: usize) -> DbWriter {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(store, rx, max_batch, stats.clone()));
        DbWriter { tx, stats }
    }

    /// Queues `op` and waits until it is committed (or has failed).
    pub async fn write(&self, op: WriteOp) -> Result<OpOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Write(op, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Flush(reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    stats: Arc<WriterStats>,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    let mut ops = Vec::with_capacity(max_batch);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        for job in jobs.drain(..) {
            match job {
                Job::Write(op, reply) => {
                    ops.push(op);
                    replies.push(reply);
                }
                Job::Flush(reply) => flushes.push(reply),
            }
        }
        if !ops.is_empty() {
            commit(&*store, &ops, &mut replies, &stats).await;
            ops.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
    tracing::debug!("DB writer stopped");
}

async fn commit(store: &dyn Store, ops: &[WriteOp], replies: &mut Vec<Reply>, stats: &WriterStats) {
    let started = Instant::now();
    let result = store.commit_batch(ops).await;
    let took = started.elapsed();
    stats.record(ops.len(), took, result.is_ok());
    tracing::trace!(
        batch = ops.len(),
        commit_us = took.as_micros() as u64,
        "group commit"
    );
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.drain(..).zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) if ops.len() == 1 => {
            tracing::error!(error = %e, "commit failed");
            stats.failed_ops.fetch_add(1, Ordering::Relaxed);
            for reply in replies.drain(..) {
                let _ = reply.send(Err(WriteError::Failed(e.to_string())));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = ops.len(), "batch commit failed; retrying its changes one by one");
            for (op, reply) in ops.iter().zip(replies.drain(..)) {
                let started = Instant::now();
                let single = store.commit_batch(std::slice::from_ref(op)).await;
                stats.record(1, started.elapsed(), single.is_ok());
                let answer = match single {
                    Ok(mut o) => Ok(o.pop().unwrap_or(OpOutcome::Done)),
                    Err(e) => {
                        tracing::error!(error = %e, "commit failed");
                        stats.failed_ops.fetch_add(1, Ordering::Relaxed);
                        Err(WriteError::from(e))
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }
}

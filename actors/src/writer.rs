//! The DB writer: the one place that changes the database. A caller queues one change with
//! [`DbWriter::commit`] and waits for its answer; the writer drains whatever has queued up (up
//! to `max_batch`) into one [`Batch`], commits it in one transaction, and only then answers
//! every waiter (group commit). A failed batch is retried one change at a time, so one bad
//! change cannot fail its neighbours; a change that fails alone is answered with the error and
//! nobody is told it succeeded.
//!
//! Every kind of change answers its own type ([`Change::Answer`]): a sign-in its user's id, a
//! transfer its [`onramp_store::TransferResult`], a session change nothing but "done". The
//! writer keeps each waiter with its change's kind and index in the batch, so it hands each
//! exactly its own answer.

use crate::ownership::Lease;
use onramp_store::{Batch, Change, Fence, Outcomes, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Shared by every change of the failed commit, hence the `Arc`.
    #[error("the change was not committed")]
    Failed(#[source] Arc<StoreError>),
    #[error("the DB writer has stopped")]
    Stopped,
    /// The change's batch failed, and retried alone it found a trace that may be its own (its
    /// key taken, its deposit settled): the batch's COMMIT may have landed after all (the
    /// connection failed after it was sent), so whether this change took effect is not known
    /// here. Asking again (with the same key, or reading the deposit) tells.
    #[error("the change's batch failed and whether it was committed is not known")]
    Unsure,
    /// The wallet's shard moved to another process before the change's batch committed:
    /// nothing was written, and the call belongs with the shard's new owner.
    #[error("the wallet moved to another process; the change was not committed")]
    Fenced,
    /// Another process answered that its commit failed in a way that may have landed, or
    /// never answered: whether it was committed is not known here.
    #[error("the owning process could not commit the change: {message}")]
    Remote { message: String },
}

impl WriteError {
    /// Whether the change may have been committed all the same: every failure but a stopped
    /// writer, which never sent it.
    pub fn may_have_landed(&self) -> bool {
        !matches!(self, WriteError::Stopped | WriteError::Fenced)
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            // Refused before anything was written.
            StoreError::Fenced { .. } => WriteError::Fenced,
            e => WriteError::Failed(Arc::new(e)),
        }
    }
}

/// A change waiting in the queue, with the one who waits for its answer. The writer sees it
/// through [`Waiting`], whatever its kind.
struct Queued<C: Change> {
    change: C,
    reply: oneshot::Sender<Result<C::Answer, WriteError>>,
    /// Its index among the changes of its kind in the batch being written.
    index: usize,
    /// The lease its wallet's change was made under, among several processes.
    lease: Option<Lease>,
}

/// What the writer does with a queued change of any kind.
trait Waiting: Send {
    /// Moves the change into `batch`, remembering where.
    fn add_to(&mut self, batch: &mut Batch);
    fn lease(&self) -> Option<&Lease>;
    /// Answers from what the batch answered.
    fn answer(self: Box<Self>, outcomes: &Outcomes);
    fn fail(self: Box<Self>, error: WriteError);
    /// After its batch failed: commits the change alone and answers.
    fn retry_alone<'a>(self: Box<Self>, store: &'a dyn Store, batch: &'a Batch) -> Retry<'a>;
}

type Retry<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

impl<C: Change> Waiting for Queued<C> {
    fn add_to(&mut self, batch: &mut Batch) {
        self.index = batch.add(self.change.clone());
    }

    fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    fn answer(self: Box<Self>, outcomes: &Outcomes) {
        let answer = C::answer(outcomes, self.index).expect("checked by Outcomes::answer");
        let _ = self.reply.send(Ok(answer));
    }

    fn fail(self: Box<Self>, error: WriteError) {
        let _ = self.reply.send(Err(error));
    }

    fn retry_alone<'a>(self: Box<Self>, store: &'a dyn Store, batch: &'a Batch) -> Retry<'a> {
        Box::pin(async move {
            let mut alone = Batch::of(C::lane(batch)[self.index].clone());
            alone.fence = fence_of(std::iter::once(self.lease.as_ref()));
            let started = Instant::now();
            let result = store.commit(&alone).await;
            record(1, started.elapsed(), result.is_ok());
            let answer = match result {
                Ok(outcomes) => match C::answer(&outcomes, 0) {
                    Some(a) if C::unsure_after_failed_batch(&a) => Err(WriteError::Unsure),
                    Some(a) => Ok(a),
                    None => Err(unanswered(1)),
                },
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
                    Err(WriteError::from(e))
                }
            };
            let _ = self.reply.send(answer);
        })
    }
}

enum Job {
    Write(Box<dyn Waiting>),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Metric names the writer records (Prometheus histograms and counters).
pub const BATCH_SIZE_METRIC: &str = "onramp_writer_batch_size";
pub const COMMIT_SECONDS_METRIC: &str = "onramp_writer_commit_seconds";
pub const FAILED_COMMITS_METRIC: &str = "onramp_writer_failed_commits_total";
/// Bucket bounds for the batch-size histogram.
pub const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Bucket bounds (seconds) for the commit-latency histogram.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn record(size: usize, took: Duration, ok: bool) {
    metrics::histogram!(BATCH_SIZE_METRIC).record(size as f64);
    metrics::histogram!(COMMIT_SECONDS_METRIC).record(took.as_secs_f64());
    if !ok {
        metrics::counter!(FAILED_COMMITS_METRIC).increment(1);
    }
}

fn unanswered(size: usize) -> WriteError {
    WriteError::from(StoreError::Corrupt(format!(
        "the store did not answer every change of a batch of {size}"
    )))
}

/// A handle to the DB writer; cheap to clone.
#[derive(Clone)]
pub struct DbWriter {
    tx: mpsc::Sender<Job>,
}

impl DbWriter {
    /// Starts the writer on the current tokio runtime. It stops when every handle is dropped,
    /// after committing what was queued.
    pub fn start(store: Arc<dyn Store>, max_batch: usize) -> DbWriter {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(store, rx, max_batch));
        DbWriter { tx }
    }

    /// Queues `change` and waits until it is committed (or has failed); answers what its kind
    /// answers.
    pub async fn commit<C: Change>(&self, change: C) -> Result<C::Answer, WriteError> {
        self.commit_under(change, None).await
    }

    /// [`DbWriter::commit`] for a wallet's change made under `lease`: committed only while this
    /// process still holds it ([`WriteError::Fenced`] otherwise).
    pub async fn commit_under<C: Change>(
        &self,
        change: C,
        lease: Option<Lease>,
    ) -> Result<C::Answer, WriteError> {
        let (reply, rx) = oneshot::channel();
        let queued = Queued {
            change,
            reply,
            index: 0,
            lease,
        };
        self.tx
            .send(Job::Write(Box::new(queued)))
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
}

/// The fence of a batch whose changes were made under `leases`: every distinct one.
fn fence_of<'a>(leases: impl Iterator<Item = Option<&'a Lease>>) -> Option<Fence> {
    let mut node = None;
    let mut held = Vec::new();
    for lease in leases.flatten() {
        node.get_or_insert_with(|| lease.node.to_string());
        held.push((lease.shard, lease.epoch));
    }
    held.sort_unstable();
    held.dedup();
    node.map(|node| Fence { node, held })
}

/// A batch of `waiting`'s changes, fenced by their leases.
fn batch_of(waiting: &mut [Box<dyn Waiting>]) -> Batch {
    let mut batch = Batch::default();
    for w in waiting.iter_mut() {
        w.add_to(&mut batch);
    }
    batch.fence = fence_of(waiting.iter().map(|w| w.lease()));
    batch
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut jobs = Vec::with_capacity(max_batch);
    let mut waiting: Vec<Box<dyn Waiting>> = Vec::with_capacity(max_batch);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        for job in jobs.drain(..) {
            match job {
                Job::Write(w) => waiting.push(w),
                Job::Flush(reply) => flushes.push(reply),
            }
        }
        if !waiting.is_empty() {
            let span = tracing::debug_span!(
                "group commit",
                size = waiting.len(),
                commit_us = tracing::field::Empty
            );
            commit(&*store, &mut waiting).instrument(span).await;
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
    tracing::debug!("DB writer stopped");
}

/// Commits `waiting`'s changes in one batch and answers everyone (emptying it). Changes made
/// under a lease this process lost are answered [`WriteError::Fenced`], and the rest committed
/// without them.
async fn commit(store: &dyn Store, waiting: &mut Vec<Box<dyn Waiting>>) {
    let mut batch = batch_of(waiting);
    let started = Instant::now();
    let mut result = store.commit(&batch).await;
    while let Err(StoreError::Fenced { held }) = &result {
        let (kept, lost): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .partition(|w| w.lease().is_none_or(|l| held.contains(&(l.shard, l.epoch))));
        tracing::warn!(lost = lost.len(), "changes fenced off: their wallets moved");
        // A fence that failed though every lease it named is held cannot be retried into
        // success: nobody is told it succeeded.
        let (lost, kept) = if lost.is_empty() {
            (kept, Vec::new())
        } else {
            (lost, kept)
        };
        for w in lost {
            w.fail(WriteError::Fenced);
        }
        *waiting = kept;
        if waiting.is_empty() {
            return;
        }
        batch = batch_of(waiting);
        result = store.commit(&batch).await;
    }
    let batch = &batch;
    let took = started.elapsed();
    record(waiting.len(), took, result.is_ok());
    tracing::Span::current().record("commit_us", took.as_micros() as u64);
    match result {
        Ok(outcomes) if outcomes.answer(batch) => {
            for w in waiting.drain(..) {
                w.answer(&outcomes);
            }
        }
        // A store that answered fewer changes than it was given has a bug: what it did is not
        // known, so nobody is told it succeeded.
        Ok(_) => {
            tracing::error!(batch = waiting.len(), "the store left changes unanswered");
            for w in waiting.drain(..) {
                w.fail(WriteError::Unsure);
            }
        }
        Err(e) if waiting.len() == 1 => {
            tracing::error!(error = %e, "commit failed");
            let e = WriteError::from(e);
            for w in waiting.drain(..) {
                w.fail(e.clone());
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = waiting.len(), "batch commit failed; retrying its changes one by one");
            for w in waiting.drain(..) {
                w.retry_alone(store, batch).await;
            }
        }
    }
}

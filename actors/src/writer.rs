//! The DB writer: the one place that changes the database. Callers queue a [`WriteOp`] and wait
//! for its outcome; the writer drains whatever has queued up (up to `max_batch`) into one
//! transaction, commits it, and only then answers every waiter (group commit). A failed batch
//! is retried one change at a time, so one bad change cannot fail its neighbours; a change that
//! fails alone is answered with the error and nobody is told it succeeded.
//!
//! Callers use the typed methods ([`DbWriter::upsert_account`], [`DbWriter::insert_deposit`],
//! [`DbWriter::settle`], [`DbWriter::transfer`], [`DbWriter::write`]): each answers the one type its kind of change
//! does, so no caller handles another kind's answer.

use onramp_store::{
    DepositInsert, NewAccount, NewDeposit, NewTransfer, OpOutcome, SettleDeposit, SettleResult,
    Store, StoreError, TransferResult, WriteOp,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Shared by every change of the failed commit, hence the `Arc`.
    #[error("the change was not committed")]
    Failed(#[source] Arc<StoreError>),
    #[error("the DB writer has stopped")]
    Stopped,
    /// A transfer retried alone after its batch failed found its key taken: the batch's COMMIT
    /// may have landed after all (the connection failed after it was sent), so whether this
    /// transfer moved money is not known here. Asking again with the key tells.
    #[error("the change's batch failed and whether it was committed is not known")]
    Unsure,
    /// The store answered a change with another kind's outcome: a bug in a backend.
    #[error("the store answered {0:?} to a change of another kind")]
    Mismatch(OpOutcome),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Failed(Arc::new(e))
    }
}

type Reply = oneshot::Sender<Result<OpOutcome, WriteError>>;

enum Job {
    Write(WriteOp, Reply),
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

    /// Finds or creates the user behind an account; answers the user's id once committed.
    pub async fn upsert_account(
        &self,
        account: NewAccount,
    ) -> Result<onramp_store::domain::UserId, WriteError> {
        match self.commit(WriteOp::UpsertAccount(account)).await? {
            OpOutcome::User(id) => Ok(id),
            other => Err(WriteError::Mismatch(other)),
        }
    }

    /// Records a processing deposit once committed.
    pub async fn insert_deposit(&self, deposit: NewDeposit) -> Result<DepositInsert, WriteError> {
        match self.commit(WriteOp::InsertDeposit(deposit)).await? {
            OpOutcome::Deposit(inserted) => Ok(inserted),
            other => Err(WriteError::Mismatch(other)),
        }
    }

    /// Settles a deposit once committed.
    pub async fn settle(&self, settle: SettleDeposit) -> Result<SettleResult, WriteError> {
        match self.commit(WriteOp::Settle(settle)).await? {
            OpOutcome::Settle(result) => Ok(result),
            other => Err(WriteError::Mismatch(other)),
        }
    }

    /// Moves money between two wallets once committed (the sender's actor reserved it).
    pub async fn transfer(&self, transfer: NewTransfer) -> Result<TransferResult, WriteError> {
        match self.commit(WriteOp::Transfer(transfer)).await? {
            OpOutcome::Transfer(result) => Ok(result),
            other => Err(WriteError::Mismatch(other)),
        }
    }

    /// Queues a change that answers nothing but "done" (sessions, bank orders) and waits until
    /// it is committed (or has failed).
    pub async fn write(&self, op: WriteOp) -> Result<(), WriteError> {
        debug_assert!(
            !matches!(
                op,
                WriteOp::UpsertAccount(_)
                    | WriteOp::InsertDeposit(_)
                    | WriteOp::Settle(_)
                    | WriteOp::Transfer(_)
            ),
            "use the typed method for {op:?}"
        );
        self.commit(op).await.map(drop)
    }

    /// Queues `op` and waits until it is committed (or has failed).
    async fn commit(&self, op: WriteOp) -> Result<OpOutcome, WriteError> {
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
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
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
            commit(&*store, &ops, &mut replies).await;
            ops.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
    tracing::debug!("DB writer stopped");
}

async fn commit(store: &dyn Store, ops: &[WriteOp], replies: &mut Vec<Reply>) {
    let started = Instant::now();
    let result = store.commit_batch(ops).await;
    let took = started.elapsed();
    record(ops.len(), took, result.is_ok());
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
            let e = WriteError::from(e);
            for reply in replies.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = ops.len(), "batch commit failed; retrying its changes one by one");
            for (op, reply) in ops.iter().zip(replies.drain(..)) {
                let started = Instant::now();
                let single = store.commit_batch(std::slice::from_ref(op)).await;
                record(1, started.elapsed(), single.is_ok());
                let answer = match single {
                    Ok(mut o) => match o.pop().unwrap_or(OpOutcome::Done) {
                        OpOutcome::Transfer(TransferResult::KeyTaken) => Err(WriteError::Unsure),
                        outcome => Ok(outcome),
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "commit failed");
                        Err(WriteError::from(e))
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }
}

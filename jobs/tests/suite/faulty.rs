//! A queue that makes acknowledgements fail on purpose: it wraps a real backend, delegates every
//! call, and fails `complete` calls as planned — refused before they reach the backend, or
//! applied by the backend with the reply lost on the way back. It also counts the `complete`
//! calls that returned an error, planned or real (a locked SQLite), so a test can wait for one.
// Shared by the conformance suite and `db_backend.rs`, which uses only part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::{
    Enqueued, JobDetail, JobPage, JobState, Lease, ListQuery, NewJob, Queue, QueueError,
    QueueResult, SharedQueue, Stats, WorkerId,
};
use tokio::sync::watch;

/// How one `complete` call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It never reaches the backend (a connection refused, a lock never granted).
    Refused,
    /// The backend applies it, then the reply is lost (a timeout, a dropped connection).
    ReplyLost,
}

/// See the module doc.
pub struct FaultyAcks {
    inner: SharedQueue,
    /// The faults of the next `complete` calls, front first.
    plan: Mutex<VecDeque<Fault>>,
    /// The fault of every call after the plan (None: delegate).
    then: Option<Fault>,
    /// `complete` calls that returned an error so far.
    failed: watch::Sender<usize>,
}

impl FaultyAcks {
    /// Wraps `inner`: the first `plan.len()` completes fail as planned, the rest as `then`.
    pub fn new(inner: SharedQueue, plan: Vec<Fault>, then: Option<Fault>) -> Self {
        FaultyAcks {
            inner,
            plan: Mutex::new(plan.into()),
            then,
            failed: watch::Sender::new(0),
        }
    }

    /// Counts the `complete` calls that returned an error.
    pub fn failed_completes(&self) -> watch::Receiver<usize> {
        self.failed.subscribe()
    }

    fn injected() -> QueueError {
        QueueError::Invalid("acknowledgement failed (injected by the test)".into())
    }
}

#[async_trait]
impl Queue for FaultyAcks {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        self.inner.enqueue(job).await
    }
    async fn fetch(&self, w: &WorkerId, max: usize, wait: Duration) -> QueueResult<Vec<Lease>> {
        self.inner.fetch(w, max, wait).await
    }
    async fn complete(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        let fault = self.plan.lock().unwrap().pop_front().or(self.then);
        let result = match fault {
            Some(Fault::Refused) => Err(Self::injected()),
            Some(Fault::ReplyLost) => self.inner.complete(w, id).await.and(Err(Self::injected())),
            None => self.inner.complete(w, id).await,
        };
        if result.is_err() {
            self.failed.send_modify(|n| *n += 1);
        }
        result
    }
    async fn retry_at(
        &self,
        w: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()> {
        self.inner.retry_at(w, id, error, at).await
    }
    async fn bury(&self, w: &WorkerId, id: &str, error: &str) -> QueueResult<()> {
        self.inner.bury(w, id, error).await
    }
    async fn release(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        self.inner.release(w, id).await
    }
    async fn heartbeat(&self, w: &WorkerId) -> QueueResult<()> {
        self.inner.heartbeat(w).await
    }
    async fn deregister(&self, w: &WorkerId) -> QueueResult<()> {
        self.inner.deregister(w).await
    }
    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64> {
        self.inner.recover_abandoned(stale_after).await
    }
    async fn held(&self, w: &WorkerId) -> QueueResult<Vec<String>> {
        self.inner.held(w).await
    }
    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage> {
        self.inner.list(query).await
    }
    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>> {
        self.inner.get(id).await
    }
    async fn retry(&self, id: &str) -> QueueResult<bool> {
        self.inner.retry(id).await
    }
    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64> {
        self.inner.retry_all(state, kind).await
    }
    async fn discard(&self, id: &str) -> QueueResult<bool> {
        self.inner.discard(id).await
    }
    async fn stats(&self) -> QueueResult<Stats> {
        self.inner.stats().await
    }
    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64> {
        self.inner.prune(before).await
    }
    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64> {
        self.inner.prune_dead(before, keep).await
    }
    async fn ping(&self) -> QueueResult<()> {
        self.inner.ping().await
    }
}

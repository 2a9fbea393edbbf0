//! A queue that wraps a real one and changes a call or two, for tests that make a backend fail
//! on purpose or run it differently (an acknowledgement refused, an enqueue on a blocking
//! thread): a test writes what it changes as an [`Intercept`], and [`Intercepted`] delegates
//! every other call of the [`Queue`] to the wrapped queue.
//!
//! The outcome counters and the session list ([`Queue::record_outcomes`],
//! [`Queue::sessions`] …) keep the trait's defaults (nothing kept), as for every test wrapper.

use std::ops::Deref;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::{
    Enqueued, JobDetail, JobPage, JobState, Lease, ListQuery, NewJob, Queue, QueueResult,
    SharedQueue, Stats, WorkerId,
};

/// What a wrapper changes of the queue it wraps; every call it leaves alone goes to
/// [`Intercept::inner`].
#[async_trait]
pub trait Intercept: Send + Sync + 'static {
    /// The wrapped queue.
    fn inner(&self) -> &SharedQueue;

    /// [`Queue::enqueue`]; the wrapped queue's unless changed.
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        self.inner().enqueue(job).await
    }

    /// [`Queue::complete`]; the wrapped queue's unless changed.
    async fn complete(&self, worker: &WorkerId, id: &str) -> QueueResult<()> {
        self.inner().complete(worker, id).await
    }
}

/// A [`Queue`] made of an [`Intercept`]; reaches the wrapper's own methods through `Deref`.
pub struct Intercepted<T>(pub T);

impl<T> Deref for Intercepted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[async_trait]
impl<T: Intercept> Queue for Intercepted<T> {
    fn backend(&self) -> &'static str {
        self.0.inner().backend()
    }
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        self.0.enqueue(job).await
    }
    async fn fetch(&self, w: &WorkerId, max: usize, wait: Duration) -> QueueResult<Vec<Lease>> {
        self.0.inner().fetch(w, max, wait).await
    }
    async fn complete(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        self.0.complete(w, id).await
    }
    async fn retry_at(
        &self,
        w: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()> {
        self.0.inner().retry_at(w, id, error, at).await
    }
    async fn bury(&self, w: &WorkerId, id: &str, error: &str) -> QueueResult<()> {
        self.0.inner().bury(w, id, error).await
    }
    async fn release(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        self.0.inner().release(w, id).await
    }
    async fn heartbeat(&self, w: &WorkerId) -> QueueResult<()> {
        self.0.inner().heartbeat(w).await
    }
    async fn deregister(&self, w: &WorkerId) -> QueueResult<()> {
        self.0.inner().deregister(w).await
    }
    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64> {
        self.0.inner().recover_abandoned(stale_after).await
    }
    async fn held(&self, w: &WorkerId) -> QueueResult<Vec<String>> {
        self.0.inner().held(w).await
    }
    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage> {
        self.0.inner().list(query).await
    }
    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>> {
        self.0.inner().get(id).await
    }
    async fn retry(&self, id: &str) -> QueueResult<bool> {
        self.0.inner().retry(id).await
    }
    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64> {
        self.0.inner().retry_all(state, kind).await
    }
    async fn discard(&self, id: &str) -> QueueResult<bool> {
        self.0.inner().discard(id).await
    }
    async fn stats(&self) -> QueueResult<Stats> {
        self.0.inner().stats().await
    }
    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64> {
        self.0.inner().prune(before).await
    }
    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64> {
        self.0.inner().prune_dead(before, keep).await
    }
    async fn ping(&self) -> QueueResult<()> {
        self.0.inner().ping().await
    }
}

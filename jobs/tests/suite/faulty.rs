//! A queue that makes acknowledgements fail on purpose: it wraps a real backend, delegates every
//! call ([`Intercepted`]), and fails `complete` calls as planned — refused before they reach the
//! backend, or applied by the backend with the reply lost on the way back. It also counts the
//! `complete` calls that returned an error, planned or real (a locked SQLite), so a test can wait
//! for one.
// Shared by the conformance suite and `db_backend.rs`, which uses only part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use moked_jobs::queue::{QueueError, QueueResult, SharedQueue, WorkerId};
use moked_testkit::{Intercept, Intercepted};
use tokio::sync::watch;

/// How one `complete` call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It never reaches the backend (a connection refused, a lock never granted).
    Refused,
    /// The backend applies it, then the reply is lost (a timeout, a dropped connection).
    ReplyLost,
}

/// See the module doc; a queue as [`Intercepted`]`<FaultyAcks>` ([`FaultyAcks::new`]).
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
    pub fn new(inner: SharedQueue, plan: Vec<Fault>, then: Option<Fault>) -> Intercepted<Self> {
        Intercepted(FaultyAcks {
            inner,
            plan: Mutex::new(plan.into()),
            then,
            failed: watch::Sender::new(0),
        })
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
impl Intercept for FaultyAcks {
    fn inner(&self) -> &SharedQueue {
        &self.inner
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
}

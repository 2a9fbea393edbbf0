//! Gathering concurrent calls into one script call, for the Redis backend's hot paths: enqueues
//! ([`super::redis_enqueue`]) and acks ([`super::redis`]'s `complete`, `retry_at`, `bury`,
//! `release`).
//!
//! Many callers are in flight at once under load (webhooks in the intake, finished jobs in a
//! worker). Sent one script call each, Redis spends a share of every call on per-call work
//! (reading the command, starting the script, one reply) and the caller one round trip each.
//! A [`Batcher`] hands every item to one task, which sends whatever has gathered as one call —
//! up to `max_batch` items, at most `max_in_flight` calls at a time — and each item carries its
//! own reply channel. A quiet queue sends each item alone at once (a batch of one: no timer, no
//! added wait); a busy one fills batches while earlier calls are on the wire.
//!
//! What a caller is told is unchanged by batching: it hears back only after Redis ran the call
//! holding its item, and a failed call fails every item in it (each caller handles the error as
//! it would its own). An item whose caller gave up before its batch left is dropped from the
//! batch ([`Waiting::gone`]).
//!
//! No crate does this for redis-rs: its multiplexed connection pipelines concurrent commands
//! but still runs one script per item, and pipelines cannot share a script's gathered writes.

use std::future::Future;
use std::sync::Arc;

use ::redis::RedisError;
use tokio::sync::{Semaphore, mpsc};

use super::QueueResult;

/// Items waiting for a batch before callers wait to hand theirs over (back-pressure).
const BACKLOG: usize = 4_096;

/// An item with a caller waiting for it.
pub(super) trait Waiting: Send + 'static {
    /// True when the caller has stopped waiting (its reply channel is closed).
    fn gone(&self) -> bool;
}

/// Hands items to the batching task. The task ends when the last handle is dropped.
pub(super) struct Batcher<T> {
    tx: mpsc::Sender<T>,
    what: &'static str,
}

impl<T> std::fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("what", &self.what).finish()
    }
}

impl<T: Waiting> Batcher<T> {
    /// Starts the batching task on the current Tokio runtime; `send` makes one script call of a
    /// batch and answers every item in it.
    pub(super) fn start<F, Fut>(
        what: &'static str,
        max_batch: usize,
        max_in_flight: usize,
        send: F,
    ) -> Batcher<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(gather(rx, max_batch, max_in_flight, send));
        Batcher { tx, what }
    }

    /// Queues `item` for the next batch.
    pub(super) async fn submit(&self, item: T) -> QueueResult<()> {
        self.tx.send(item).await.map_err(|_| stopped(self.what))
    }
}

/// The error of a call whose batching task is gone (its runtime shut down).
pub(super) fn stopped(what: &str) -> super::QueueError {
    RedisError::from(std::io::Error::other(format!(
        "the Redis {what} task has stopped"
    )))
    .into()
}

/// Takes the first waiting item, adds every item already waiting behind it (up to
/// `max_batch`), and sends the batch once a call slot is free.
async fn gather<T, F, Fut>(
    mut rx: mpsc::Receiver<T>,
    max_batch: usize,
    max_in_flight: usize,
    send: F,
) where
    T: Waiting,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_in_flight));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot here (not before `recv`) lets the batch grow meanwhile.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch);
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        batch.retain(|item| !item.gone());
        if batch.is_empty() {
            continue;
        }
        let call = send(batch);
        tokio::spawn(async move {
            call.await;
            drop(slot);
        });
    }
}

//! Group commit of enqueues for the Redis backend.
//!
//! The intake enqueues one job per webhook, and under load many webhooks are in flight at once.
//! Sent one script call each, Redis spent most of every enqueue on per-call overhead (reading
//! the command, starting the script, one write per reply) and the intake on one round trip per
//! request. Here every [`Enqueuer::enqueue`] hands its job to one task, which sends whatever has
//! gathered as one call of `lua/enqueue.lua` — up to [`MAX_BATCH`] jobs, at most
//! [`MAX_IN_FLIGHT`] calls at a time — and hands each caller its own result. A quiet queue
//! sends each job alone at once (a batch of one: no timer, no added wait); a busy one fills
//! batches while earlier calls are on the wire.
//!
//! Durability is unchanged: a caller gets its answer only after Redis ran the call that
//! created its job, and a failed call fails every job in it (each caller answers 503 and Twilio
//! redelivers; the dedupe keys make a redelivery of a job that was created after all a
//! duplicate, not a second job). A caller that gave up before its batch left (its timeout
//! expired) is dropped from the batch, so its job is not created behind a 503.
//!
//! No crate does this for redis-rs: its multiplexed connection pipelines concurrent commands
//! but still runs one script per job, and pipelines cannot share a script's gathered writes.

use std::sync::{Arc, LazyLock};

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Enqueued, QueueResult};

/// Jobs one script call creates, at most.
pub const MAX_BATCH: usize = 128;
/// Script calls of enqueues on the wire at once, at most. While they run, new jobs gather into
/// the next batch.
pub const MAX_IN_FLIGHT: usize = 4;
/// Jobs waiting for a batch before callers wait to hand theirs over (back-pressure).
const BACKLOG: usize = 4_096;

static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| super::lua::script(include_str!("lua/enqueue.lua")));

/// One job's script arguments, in `lua/enqueue.lua`'s order after the prefix.
#[derive(Debug)]
pub struct JobArgs {
    /// The new job's id.
    pub id: String,
    /// Its kind's stable name.
    pub kind: &'static str,
    /// The encoded payload.
    pub payload: String,
    /// `run_at` in ms since the epoch, or empty for "due now".
    pub run_at: String,
    /// The dedupe key, or empty.
    pub dedupe_key: String,
    /// The dedupe key's TTL in ms (ignored without a key).
    pub dedupe_ttl_ms: u64,
}

struct Pending {
    job: JobArgs,
    reply: oneshot::Sender<QueueResult<Enqueued>>,
}

/// Hands jobs to the batching task. Cheap to share; the task ends when the last handle is
/// dropped.
#[derive(Debug)]
pub struct Enqueuer {
    tx: mpsc::Sender<Pending>,
}

impl Enqueuer {
    /// Starts the batching task (on the current Tokio runtime) for keys under `prefix`.
    pub fn start(conn: ConnectionManager, prefix: String) -> Enqueuer {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(gather(rx, conn, Arc::from(prefix)));
        Enqueuer { tx }
    }

    /// Creates the job (or finds the owner of its dedupe key) in the next batch.
    pub async fn enqueue(&self, job: JobArgs) -> QueueResult<Enqueued> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { job, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The error of an enqueue whose batching task is gone (its runtime shut down).
fn stopped() -> super::QueueError {
    RedisError::from(std::io::Error::other("the Redis enqueue task has stopped")).into()
}

/// Takes the first waiting job, adds every job already waiting behind it (up to
/// [`MAX_BATCH`]), and sends the batch once a call slot is free.
async fn gather(mut rx: mpsc::Receiver<Pending>, conn: ConnectionManager, prefix: Arc<str>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot here (not before `recv`) lets the batch grow meanwhile.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let conn = conn.clone();
        let prefix = Arc::clone(&prefix);
        tokio::spawn(async move {
            send(conn, &prefix, batch).await;
            drop(slot);
        });
    }
}

/// One script call for `batch`; every caller gets its own result or the call's error.
async fn send(mut conn: ConnectionManager, prefix: &str, batch: Vec<Pending>) {
    let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
    if batch.is_empty() {
        return;
    }
    let mut call = ENQUEUE.prepare_invoke();
    call.arg(prefix);
    for Pending { job, .. } in &batch {
        call.arg(&job.id)
            .arg(job.kind)
            .arg(&job.payload)
            .arg(&job.run_at)
            .arg(&job.dedupe_key)
            .arg(job.dedupe_ttl_ms);
    }
    let result: Result<Vec<(usize, String)>, RedisError> = call.invoke_async(&mut conn).await;
    match result {
        Ok(taken) if taken.iter().all(|(at, _)| *at < batch.len()) => {
            let mut owners: Vec<Option<String>> = vec![None; batch.len()];
            for (at, owner) in taken {
                owners[at] = Some(owner);
            }
            for (Pending { job, reply }, owner) in batch.into_iter().zip(owners) {
                let enqueued = match owner {
                    Some(owner) => Enqueued::Duplicate(owner),
                    None => Enqueued::Created(job.id),
                };
                let _ = reply.send(Ok(enqueued));
            }
        }
        Ok(taken) => {
            let error = format!(
                "the enqueue script named a job beyond its batch of {}: {taken:?}",
                batch.len()
            );
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(super::QueueError::Corrupt(error.clone())));
            }
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone().into()));
            }
        }
    }
}

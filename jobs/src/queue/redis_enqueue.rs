//! Group commit of enqueues for the Redis backend: concurrent enqueues gathered into one call
//! of `lua/enqueue.lua` by a [`Batcher`] (see [`super::redis_batch`] for how batches form).
//!
//! Durability is unchanged: a caller gets its answer only after Redis ran the call that
//! created its job, and a failed call fails every job in it (each caller answers 503 and Twilio
//! redelivers; the dedupe keys make a redelivery of a job that was created after all a
//! duplicate, not a second job). A caller that gave up before its batch left (its timeout
//! expired) is dropped from the batch, so its job is not created behind a 503.

use std::sync::{Arc, LazyLock};

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};
use tokio::sync::oneshot;

use super::redis_batch::{Batcher, Waiting, stopped};
use super::{Enqueued, QueueResult};

/// Jobs one script call creates, at most.
pub const MAX_BATCH: usize = 128;
/// Script calls of enqueues on the wire at once, at most. While they run, new jobs gather into
/// the next batch.
pub const MAX_IN_FLIGHT: usize = 4;

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

impl Waiting for Pending {
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }
}

/// Hands jobs to the batching task. Cheap to share; the task ends when the last handle is
/// dropped.
#[derive(Debug)]
pub struct Enqueuer {
    batches: Batcher<Pending>,
}

impl Enqueuer {
    /// Starts the batching task (on the current Tokio runtime) for keys under `prefix`.
    pub fn start(conn: ConnectionManager, prefix: String) -> Enqueuer {
        let prefix: Arc<str> = Arc::from(prefix);
        Enqueuer {
            batches: Batcher::start("enqueue", MAX_BATCH, MAX_IN_FLIGHT, move |batch| {
                send(conn.clone(), Arc::clone(&prefix), batch)
            }),
        }
    }

    /// Creates the job (or finds the owner of its dedupe key) in the next batch.
    pub async fn enqueue(&self, job: JobArgs) -> QueueResult<Enqueued> {
        let (reply, answer) = oneshot::channel();
        self.batches.submit(Pending { job, reply }).await?;
        answer.await.map_err(|_| stopped("enqueue"))?
    }
}

/// One script call for `batch`; every caller gets its own result or the call's error.
async fn send(mut conn: ConnectionManager, prefix: Arc<str>, batch: Vec<Pending>) {
    let mut call = ENQUEUE.prepare_invoke();
    call.arg(&*prefix);
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

//! Acks for the Redis backend, gathered: the acks a worker process's jobs make at once go to
//! Redis as one call of `lua/ack.lua` through a [`Batcher`] (see [`super::redis_batch`] for how
//! batches form).
//!
//! What an ack means is unchanged: each ack is applied or found stale on its own (a stale ack
//! in a batch does not touch the others), a caller hears back only after the call that held
//! its ack ran, and a failed call fails every ack in it — each caller retries its own ack as it
//! would have (the runner's ack retries; an ack that landed after all is found stale then, and
//! changes nothing).

use std::sync::{Arc, LazyLock};

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};
use tokio::sync::oneshot;

use super::redis_batch::{Batcher, Waiting, stopped};
use super::{QueueError, QueueResult};

/// Acks one script call applies, at most.
pub const MAX_BATCH: usize = 128;
/// Script calls of acks on the wire at once, at most.
pub const MAX_IN_FLIGHT: usize = 4;

static ACK: LazyLock<Script> = LazyLock::new(|| super::lua::script(include_str!("lua/ack.lua")));

/// One ack's script arguments, in `lua/ack.lua`'s order after the prefix.
#[derive(Debug)]
pub struct AckArgs {
    /// The acking session.
    pub session: String,
    /// Its worker name (kept in the job's history).
    pub name: String,
    /// The job.
    pub id: String,
    /// `done`, `retry`, `dead` or `release`.
    pub op: &'static str,
    /// The error (retry, dead), else empty.
    pub error: String,
    /// The next run in ms since the epoch (retry), else 0.
    pub at_ms: i64,
}

struct Pending {
    ack: AckArgs,
    reply: oneshot::Sender<QueueResult<bool>>,
}

impl Waiting for Pending {
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }
}

/// Hands acks to the batching task. The task ends when the last handle is dropped.
#[derive(Debug)]
pub struct Acker {
    batches: Batcher<Pending>,
}

impl Acker {
    /// Starts the batching task (on the current Tokio runtime) for keys under `prefix`.
    pub fn start(conn: ConnectionManager, prefix: String) -> Acker {
        let prefix: Arc<str> = Arc::from(prefix);
        Acker {
            batches: Batcher::start("ack", MAX_BATCH, MAX_IN_FLIGHT, move |batch| {
                send(conn.clone(), Arc::clone(&prefix), batch)
            }),
        }
    }

    /// Applies the ack in the next batch: true when the job moved, false when it was stale.
    pub async fn ack(&self, ack: AckArgs) -> QueueResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.batches.submit(Pending { ack, reply }).await?;
        answer.await.map_err(|_| stopped("ack"))?
    }
}

/// One script call for `batch`; every caller gets its own outcome or the call's error.
async fn send(mut conn: ConnectionManager, prefix: Arc<str>, batch: Vec<Pending>) {
    let mut call = ACK.prepare_invoke();
    call.arg(&*prefix);
    for Pending { ack, .. } in &batch {
        call.arg(&ack.session)
            .arg(&ack.name)
            .arg(&ack.id)
            .arg(ack.op)
            .arg(&ack.error)
            .arg(ack.at_ms);
    }
    let result: Result<Vec<i64>, RedisError> = call.invoke_async(&mut conn).await;
    match result {
        Ok(moved) if moved.len() == batch.len() => {
            for (pending, moved) in batch.into_iter().zip(moved) {
                let _ = pending.reply.send(Ok(moved == 1));
            }
        }
        Ok(moved) => {
            let error = format!(
                "the ack script answered {} outcomes for a batch of {}",
                moved.len(),
                batch.len()
            );
            for pending in batch {
                let _ = pending.reply.send(Err(QueueError::Corrupt(error.clone())));
            }
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone().into()));
            }
        }
    }
}

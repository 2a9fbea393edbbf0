//! The intake's one enqueue path: every webhook that makes a job hands its payload to
//! [`enqueue`], and nothing else in the intake puts webhook jobs on the queue.
//!
//! [`enqueue`] keys the job by the payload's natural key
//! ([`NaturalKey`](moked_jobs::kinds::NaturalKey), written beside each payload struct) for
//! `DEDUPE_TTL`, enqueues it within the intake's enqueue timeout, records
//! `moked_enqueue_duration_seconds`, logs the outcome once and maps a queue failure or timeout
//! to a 503 ([`IntakeError::QueueUnavailable`]), so that the sender retries.
//! A duplicate (the key still remembered) is a success: the sender gets its usual answer and
//! no second job is created.

use moked_jobs::kinds::JobPayload;
use moked_jobs::queue::NewJob;

use crate::error::IntakeError;
use crate::{AppState, metrics};

/// Enqueues `payload` under its natural key (when it has one) for `DEDUPE_TTL`, within the
/// configured timeout; a failure or timeout is a 503, logged here once.
pub async fn enqueue<T: JobPayload>(state: &AppState, payload: &T) -> Result<(), IntakeError> {
    let mut job = NewJob::new(payload);
    if let Some(key) = payload.natural_key() {
        job = job.dedupe(key, state.core.dedupe_ttl);
    }
    let kind = T::KIND;
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(state.intake.enqueue_timeout, state.queue.enqueue(job)).await;
    metrics::enqueue_latency(kind, started.elapsed(), matches!(result, Ok(Ok(_))));
    match result {
        Ok(Ok(enqueued)) => {
            tracing::info!(
                kind = %kind,
                job_id = %enqueued.id(),
                duplicate = !enqueued.is_created(),
                "webhook enqueued"
            );
            Ok(())
        }
        Ok(Err(error)) => {
            tracing::error!(kind = %kind, %error, "enqueue failed; answering 503");
            Err(IntakeError::QueueUnavailable)
        }
        Err(_) => {
            tracing::error!(
                kind = %kind,
                timeout_ms = state.intake.enqueue_timeout.as_millis() as u64,
                "enqueue timed out; answering 503"
            );
            Err(IntakeError::QueueUnavailable)
        }
    }
}

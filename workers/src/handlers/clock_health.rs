//! `clock.health`: checks the database and the queue and logs queue depth and lag, so a stuck
//! queue shows in the logs even when nobody looks at the operator page. A failing dependency
//! fails the job (transient), which leaves a trace in the job's history.

use moked_jobs::kinds::ClockHealth;
use moked_jobs::queue::JobState;
use moked_jobs::retry::JobError;

use super::Ctx;

/// Handles one health tick.
pub async fn run(ctx: &Ctx, job: ClockHealth) -> Result<(), JobError> {
    ctx.db
        .ping()
        .await
        .map_err(|e| JobError::Transient(format!("database unreachable: {e}")))?;
    let stats = ctx
        .queue
        .stats()
        .await
        .map_err(|e| JobError::Transient(format!("queue unreachable: {e}")))?;
    tracing::info!(
        tick = %job.0.tick,
        queued = stats.count(JobState::Queued),
        running = stats.count(JobState::Running),
        retrying = stats.count(JobState::Retrying),
        dead = stats.count(JobState::Dead),
        oldest_queued_age_s = stats.oldest_queued_age_s.unwrap_or(0.0),
        "health ok"
    );
    Ok(())
}

//! `clock.cleanup`: prunes done and discarded jobs past their retention (JOB_RETENTION) and
//! expired dedupe keys. Dead jobs stay until an operator acts.

use moked_jobs::kinds::ClockCleanup;
use moked_jobs::retry::JobError;

use super::Ctx;

/// Handles one cleanup tick.
pub async fn run(ctx: &Ctx, job: ClockCleanup) -> Result<(), JobError> {
    let retention = chrono::Duration::from_std(ctx.core.job_retention)
        .map_err(|e| JobError::Permanent(format!("JOB_RETENTION out of range: {e}")))?;
    let before = chrono::Utc::now() - retention;
    let pruned = ctx.queue.prune(before).await.map_err(JobError::transient)?;
    tracing::info!(tick = %job.0.tick, pruned_jobs = pruned, "cleanup done");
    Ok(())
}

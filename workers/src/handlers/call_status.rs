//! `call.status`: a call status callback.
//!
//! Translates the payload into a [`CallStatusChange`] and applies it: the callback is appended
//! to the call's history once (dedupe key `status:{call_sid}:{status}:{sequence}`), and the
//! call's status moves only forward (queued < ringing < in-progress < terminal). A late or
//! duplicated callback is therefore a success that changes nothing, not an error. See
//! [`moked_jobs::store::calls`] for the rules.

use moked_jobs::kinds::CallStatus;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::calls::{self, CallStatusChange};
use moked_jobs::store::customers::Number;

use super::Ctx;

/// Handles one job.
#[tracing::instrument(skip_all, fields(call_sid = %job.call_sid, status = %job.status))]
pub async fn run(ctx: &Ctx, job: CallStatus, _claim: &Claim) -> Result<(), JobError> {
    let change = CallStatusChange {
        status: job.status,
        sequence: job.sequence,
        duration_s: job.duration_s,
        from: job.from.as_deref().map(Number::parse),
        to: job.to.as_deref().map(Number::parse),
        at: job.received_at,
        call_sid: job.call_sid,
    };
    let outcome = calls::apply_call_status(&ctx.db, &change).await?;
    tracing::info!(
        advanced = outcome.advanced,
        duplicate = !outcome.event_recorded,
        current = outcome
            .call
            .as_ref()
            .map(|c| c.status.as_str())
            .unwrap_or("-"),
        "call status applied"
    );
    Ok(())
}

//! `whatsapp.status`: a status callback for an outbound message.
//!
//! Translates the payload into a [`StatusCallback`] and applies it: stored once per
//! (MessageSid, status), applied only if it ranks higher than the message's status (queued <
//! sending < sent < delivered < read; failed/undelivered/canceled terminal with their ErrorCode).
//! A callback for a MessageSid the send path has not stored yet waits and is applied when the
//! sid is attached. Late, duplicate and early callbacks all succeed. See
//! [`moked_jobs::store::whatsapp::statuses`].

use moked_jobs::kinds::WhatsAppStatus;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::whatsapp::statuses::{self, StatusCallback, StatusChange, StatusOutcome};

use super::Ctx;

/// Handles one job.
#[tracing::instrument(skip_all, fields(message_sid = %job.message_sid, status = %job.status))]
pub async fn run(ctx: &Ctx, job: WhatsAppStatus, _claim: &Claim) -> Result<(), JobError> {
    let callback = StatusCallback {
        message_sid: job.message_sid,
        change: StatusChange {
            status: job.status,
            error_code: job.error_code,
            error_message: job.error_message,
            at: job.received_at,
        },
        our_id: job.our_id.filter(|id| !id.trim().is_empty()),
    };
    let outcome = statuses::apply_status_callback(&ctx.db, &callback).await?;
    match outcome {
        StatusOutcome::Applied | StatusOutcome::Unchanged => {
            tracing::info!(outcome = ?outcome, error_code = callback.change.error_code, "message status applied");
        }
        StatusOutcome::Pending => {
            tracing::info!(
                "status for a message sid not stored yet; kept until the send result attaches it"
            );
        }
        StatusOutcome::Ignored => {
            tracing::warn!("message status outside the known vocabulary; kept as an event only");
        }
    }
    Ok(())
}

//! Step 4 of `recording.process`, **notify**: [`notify_whatsapp`] queues the WhatsApp note of
//! `NOTIFY_WHATSAPP_TO` (nothing when it is unset), with the same `SendSettings` as the operator
//! API and the CLI.

use moked_jobs::kinds::RecordingProcess;
use moked_jobs::retry::JobError;
use moked_jobs::store::calls::get_call_row;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::transcripts_for_call;
use moked_jobs::whatsapp::send_api::{SendError, SendRequest, SendSettings, request_send};
use serde_json::json;

use super::{Ctx, event};

/// The longest transcript quoted in a WhatsApp note (the body limit is 1600 characters).
pub const NOTIFY_TEXT_CHARS: usize = 1400;

/// The WhatsApp note of `NOTIFY_WHATSAPP_TO`: the caller's number and the transcript (or
/// "not transcribed"), through the WhatsApp send API ([`moked_jobs::whatsapp::send_api::request_send`],
/// which stores the message and enqueues `whatsapp.send`).
///
/// Once per recording: the idempotency key `notify:{RecordingSid}` makes a re-run return the
/// first message instead of queueing another. Store and queue trouble is retried with the job; a
/// refusal (bad number, the 24-hour window with `WHATSAPP_ENFORCE_WINDOW=true`) does not undo
/// the stored recording and transcript — it is logged and put on the call as `notify.failed`.
pub async fn notify_whatsapp(ctx: &Ctx, job: &RecordingProcess) -> Result<(), JobError> {
    let Some(to) = ctx.config.notify_whatsapp_to.clone() else {
        return Ok(());
    };
    let sid = job.recording_sid.as_str();
    let caller = get_call_row(&ctx.db, &job.call_sid)
        .await?
        .and_then(|c| c.from)
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let transcript = transcripts_for_call(&ctx.db, &job.call_sid)
        .await?
        .into_iter()
        .find(|t| t.recording_sid == sid);
    let text = match &transcript {
        Some(t) if !t.text.trim().is_empty() => {
            t.text.chars().take(NOTIFY_TEXT_CHARS).collect::<String>()
        }
        Some(_) => "(silence)".to_owned(),
        None => "(not transcribed)".to_owned(),
    };
    let settings = SendSettings::new(&ctx.config.whatsapp, &ctx.core);
    let request = SendRequest {
        to,
        body: Some(format!("New voice message from {caller}:\n{text}")),
        idempotency_key: Some(format!("notify:{sid}")),
        ..SendRequest::default()
    };
    match request_send(&ctx.db, ctx.queue.as_ref(), request, &settings).await {
        Ok(out) => {
            let detail = json!({"recording_sid": sid, "message_id": out.message.id}).to_string();
            event(ctx, job, "notify.queued", &detail, now_ms()).await?;
            tracing::info!(message_id = %out.message.id, created = out.created, "WhatsApp note queued");
            Ok(())
        }
        Err(e @ (SendError::Store(_) | SendError::Queue(_))) => Err(JobError::Transient(format!(
            "queueing the WhatsApp note for recording {sid}: {e}"
        ))),
        Err(refused) => {
            // Logged and stored on the call's timeline: the refusal may quote the number.
            let reason = moked_jobs::phone::mask_in_text(&refused.to_string());
            tracing::warn!(error = %reason, "WhatsApp note refused; recording and transcript kept");
            let detail = json!({"recording_sid": sid, "error": reason}).to_string();
            event(ctx, job, "notify.failed", &detail, now_ms()).await?;
            Ok(())
        }
    }
}

//! `whatsapp.send`: send one outbound message (payload: our message id) exactly once.
//!
//! Steps, each idempotent:
//! 1. **Already done?** A message that carries a provider sid was sent (by an earlier attempt,
//!    or attached by a status callback that named our id); one in a final status failed for
//!    good. Either way: nothing to do.
//! 2. **Ambiguous earlier attempt?** When `attempt_started_at` is set, an earlier attempt may
//!    have sent the message (timeout or 5xx after the request left, or a worker that died
//!    mid-request). Before sending again, ask the provider for messages to this number since
//!    then ([`WhatsAppSender::find_sent`], matching rule in
//!    [`crate::clients::whatsapp::twilio`]) and adopt the first one whose sid no other message
//!    of ours holds. If the lookup fails, do not send: retry later.
//! 3. **Pace**: wait for this sender's next slot (`WHATSAPP_RATE`, shared through Redis when the
//!    queue is Redis); a slot further than the pacer's limit → `RetryAfter`.
//! 4. **Look again**: the wait may be long (seconds at a slow rate), and another run of this
//!    job may have sent the message meanwhile (one that took the job over from a worker thought
//!    dead). So the message is read once more right before sending: sent or final → nothing to
//!    do; an attempt that began meanwhile → retry later (the next attempt looks it up, step 2).
//! 5. **Send**: record the attempt's start first (step 2 of the next attempt depends on it),
//!    then send. The answer's sid and initial status are stored with
//!    [`statuses::attach_provider_sid`], which also applies status callbacks that beat us.
//!
//! Failures ([`FailureKind`]): rate limits and server errors retry per the kind's schedule,
//! honouring `Retry-After` (an ambiguous one keeps its attempt start so the next attempt looks
//! first); a refusal (21211, 21610, 21614, 63016, other 4xx) marks the message `failed` with the
//! code and a readable reason and sends the job to dead at once; a configuration problem (no
//! sender number, wrong credentials) sends the job to dead but leaves the message `queued`, so an
//! operator can fix the configuration and retry the job. A job that exhausts its schedule also
//! leaves the message `queued` and the dead job names the last error.
//!
//! Logs carry our id, the masked recipient and the provider sid; never the text. Provider error
//! texts quote the numbers they refuse ("The 'To' number whatsapp:+972… is not valid"): logged
//! through [`mask_in_text`] here, stored masked by the store and the runner.
//!
//! [`WhatsAppSender::find_sent`]: crate::clients::whatsapp::WhatsAppSender::find_sent

use chrono::Utc;
use moked_jobs::kinds::WhatsAppSend;
use moked_jobs::pacing::Paced;
use moked_jobs::phone::{E164, mask_in_text};
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::error::StoreError;
use moked_jobs::store::whatsapp::messages::{self, WhatsAppMessage};
use moked_jobs::store::whatsapp::outbound;
use moked_jobs::store::whatsapp::statuses::{self, StatusChange, is_terminal_message_status};
use tracing::{error, info, warn};

use super::Ctx;
use crate::clients::whatsapp::{Accepted, FailureKind, Outgoing};

/// Handles one job.
#[tracing::instrument(skip_all, fields(message_id = %job.message_id))]
pub async fn run(ctx: &Ctx, job: WhatsAppSend, _claim: &Claim) -> Result<(), JobError> {
    let id = job.message_id;
    let Some(message) = messages::get_message(&ctx.db, &id).await? else {
        return Err(JobError::Permanent(format!("no WhatsApp message {id}")));
    };
    if message.direction != "outbound" {
        return Err(JobError::Permanent(format!("message {id} is not outbound")));
    }
    if settled(&message) {
        return Ok(());
    }
    let sender = ctx.whatsapp.clone();
    if message.provider != sender.provider().as_str() {
        return Err(JobError::Permanent(format!(
            "message {id} was requested for provider {} but WHATSAPP_PROVIDER is {}",
            message.provider,
            sender.provider()
        )));
    }
    let Some(to) = message.to.as_deref().and_then(|t| E164::parse(t).ok()) else {
        let reason = "the recipient is not a phone number".to_owned();
        fail_message(ctx, &id, None, &reason).await?;
        return Err(JobError::Permanent(reason));
    };
    let out = Outgoing::new(&message, to);

    let attempt_started = outbound::send_attempt_started_at(&ctx.db, &id).await?;
    if let Some(since) = attempt_started {
        match sender.find_sent(&out, since).await {
            Ok(Some(candidates)) => {
                for found in candidates {
                    if messages::get_message_by_provider_sid(&ctx.db, &found.provider_sid)
                        .await?
                        .is_some()
                    {
                        continue;
                    }
                    info!(provider_sid = %found.provider_sid, to = %out.to.masked(), "an earlier ambiguous attempt had sent it; adopted");
                    return record(ctx, &id, &found).await;
                }
                info!(to = %out.to.masked(), "an earlier attempt was ambiguous and sent nothing that can be found; sending again");
            }
            Ok(None) => {
                warn!(to = %out.to.masked(), "an earlier attempt was ambiguous and the provider cannot look it up; sending again with the same idempotency key");
            }
            Err(f) => {
                warn!(error = %mask_in_text(&f.reason), "cannot check whether an earlier attempt sent the message; not sending now");
                return Err(f.job_error());
            }
        }
    }

    match ctx.pacer.acquire(&sender.pacing_key()).await {
        Ok(waited) if !waited.is_zero() => {
            tracing::debug!(waited_ms = waited.as_millis() as u64, "paced");
        }
        Ok(_) => {}
        Err(Paced::RetryAfter(after)) => {
            return Err(JobError::RetryAfter {
                after,
                reason: "over WHATSAPP_RATE for this sender".into(),
            });
        }
        Err(e @ Paced::Backend(_)) => return Err(JobError::transient(e)),
    }

    // Step 4: look again after the wait, right before sending.
    let Some(message) = messages::get_message(&ctx.db, &id).await? else {
        return Err(JobError::Permanent(format!("no WhatsApp message {id}")));
    };
    if settled(&message) {
        return Ok(());
    }
    if outbound::send_attempt_started_at(&ctx.db, &id).await? != attempt_started {
        warn!(to = %out.to.masked(), "another attempt began while this one waited for its pacing slot; not sending now");
        return Err(JobError::Transient(
            "another attempt of this message began while this one waited for its pacing slot; \
             the next attempt looks for what it sent"
                .into(),
        ));
    }

    let (before, _) = outbound::begin_send_attempt(&ctx.db, &id).await?;
    match sender.send(&out).await {
        Ok(accepted) => {
            info!(provider_sid = %accepted.provider_sid, status = %accepted.status, to = %out.to.masked(), "sent");
            record(ctx, &id, &accepted).await
        }
        Err(failure) => {
            match &failure.kind {
                FailureKind::RetryLater(_) | FailureKind::Misconfigured => {
                    outbound::end_send_attempt_unsent(&ctx.db, &id, before).await?;
                }
                FailureKind::Ambiguous(_) => {
                    warn!(error = %mask_in_text(&failure.reason), to = %out.to.masked(), "send may or may not have gone through; the next attempt looks first");
                }
                FailureKind::Rejected(code) => {
                    outbound::end_send_attempt_unsent(&ctx.db, &id, before).await?;
                    fail_message(ctx, &id, *code, &failure.reason).await?;
                    warn!(error_code = *code, to = %out.to.masked(), "the provider refused the message; marked failed");
                }
            }
            Err(failure.job_error())
        }
    }
}

/// Whether `message` needs no send: it carries a provider sid (an earlier attempt sent it, or
/// a status callback named our id) or a final status (it failed for good).
fn settled(message: &WhatsAppMessage) -> bool {
    if let Some(sid) = &message.provider_sid {
        info!(provider_sid = %sid, "already sent; nothing to do");
        return true;
    }
    if is_terminal_message_status(&message.status) {
        info!(status = %message.status, "already final; nothing to do");
        return true;
    }
    false
}

/// Stores the provider's answer: an error it already carries, then the sid and initial status
/// (plus any status callbacks that were waiting for the sid).
async fn record(ctx: &Ctx, id: &str, accepted: &Accepted) -> Result<(), JobError> {
    if accepted.error_code.is_some() || is_terminal_message_status(&accepted.status) {
        let status = if is_terminal_message_status(&accepted.status) {
            accepted.status.clone()
        } else {
            "failed".to_owned()
        };
        statuses::set_status_by_id(
            &ctx.db,
            id,
            &StatusChange {
                status,
                error_code: accepted.error_code,
                error_message: accepted.error_message.clone(),
                at: Utc::now(),
            },
        )
        .await?;
    }
    match statuses::attach_provider_sid(&ctx.db, id, &accepted.provider_sid, &accepted.status).await
    {
        Ok(message) => {
            info!(provider_sid = %accepted.provider_sid, status = %message.status, "provider sid stored");
            Ok(())
        }
        Err(StoreError::Invalid(reason)) => {
            // The message got another sid while we were sending (a status callback named our id
            // for an earlier attempt's message): the provider now holds two. Nothing to undo;
            // say so loudly, once.
            error!(provider_sid = %accepted.provider_sid, %reason, "the provider accepted a second message for this id");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Marks the message failed with `code` and `reason` (monotonic: a later status never regresses;
/// the store masks numbers in the reason).
async fn fail_message(
    ctx: &Ctx,
    id: &str,
    code: Option<i64>,
    reason: &str,
) -> Result<(), JobError> {
    statuses::set_status_by_id(
        &ctx.db,
        id,
        &StatusChange {
            status: "failed".into(),
            error_code: code,
            error_message: Some(reason.to_owned()),
            at: Utc::now(),
        },
    )
    .await?;
    Ok(())
}

//! `whatsapp.inbound`: a WhatsApp message reached us (Twilio or the Baileys bridge).
//!
//! Translates the payload into an [`Inbound`] and records it once per provider message id; the
//! sender becomes (or is found as) a customer of the business owning the number written to, and
//! the customer's `last_inbound_at` (the 24-hour window) moves forward. A sender number that does
//! not parse is kept as text and links no customer. Bodies and numbers never reach the logs
//! (numbers only masked). See [`moked_jobs::store::whatsapp::messages`].
//!
//! Twilio media (`MediaUrl{N}`) are then copied into the recordings object store with Basic
//! auth ([`media`]); a failed copy retries the job, which records nothing twice.

use moked_jobs::kinds::WhatsAppInbound;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::customers::Number;
use moked_jobs::store::whatsapp::messages::{self, Inbound, Media};

use super::Ctx;

pub mod media;

/// Handles one job.
#[tracing::instrument(skip_all, fields(provider = %job.provider, provider_sid = %job.provider_sid))]
pub async fn run(ctx: &Ctx, job: WhatsAppInbound, _claim: &Claim) -> Result<(), JobError> {
    let inbound = Inbound {
        from: Number::parse(&job.from),
        to: job.to.as_deref().map(Number::parse),
        body: job.body,
        media: job
            .media
            .into_iter()
            .map(|m| Media {
                url: m.url,
                content_type: m.content_type,
                location: None,
            })
            .collect(),
        profile_name: job.profile_name.filter(|n| !n.trim().is_empty()),
        at: job.received_at,
        provider: job.provider,
        provider_sid: job.provider_sid,
    };
    if inbound.from.e164.is_none() {
        tracing::info!(from = %inbound.from.masked(), "sender number does not parse; no customer linked");
    }
    let stored = messages::record_inbound(&ctx.db, &inbound).await?;
    tracing::info!(
        message_id = %stored.message.id,
        created = stored.created,
        from = %inbound.from.masked(),
        media = stored.message.media.len(),
        "inbound message recorded"
    );
    media::copy_media(
        ctx.twilio.as_ref(),
        &ctx.recordings,
        &ctx.db,
        &stored.message,
    )
    .await?;
    Ok(())
}

//! Job handlers: one file per job kind, and [`dispatch`], the one registration list.
//!
//! A handler is `async fn run(ctx: &Ctx, job: Payload) -> Result<(), JobError>`: it decodes
//! nothing and decides everything about one kind of job. Every handler is idempotent by its
//! natural key (CallSid, RecordingSid, MessageSid + status, our message id): the queue delivers
//! at least once, the effects happen once.

use std::sync::Arc;

use moked_jobs::config::CoreConfig;
use moked_jobs::kinds::{self, JobKind, JobPayload};
use moked_jobs::pacing::Pacer;
use moked_jobs::queue::{Lease, SharedQueue};
use moked_jobs::retry::JobError;
use moked_jobs::store::Db;

use crate::clients::audio_store::AudioStore;
use crate::clients::transcriber::SharedTranscriber;
use crate::clients::twilio::TwilioApi;
use crate::clients::whatsapp::WhatsAppSender;
use crate::config::WorkerConfig;

pub mod call_started;
pub mod call_status;
pub mod clock_cleanup;
pub mod clock_health;
pub mod clock_reconcile;
pub mod recording_process;
pub mod whatsapp_inbound;
pub mod whatsapp_send;
pub mod whatsapp_status;

/// What handlers work with: the store, the queue (for follow-up jobs) and the settings.
#[derive(Clone)]
pub struct Ctx {
    /// The store.
    pub db: Db,
    /// The queue.
    pub queue: SharedQueue,
    /// Shared settings.
    pub core: Arc<CoreConfig>,
    /// Worker settings.
    pub config: Arc<WorkerConfig>,
    /// The Twilio REST API.
    pub twilio: Arc<dyn TwilioApi>,
    /// Speech to text (`TRANSCRIBE_PROVIDER`).
    pub transcriber: SharedTranscriber,
    /// Where recordings are stored (`RECORDINGS_STORE`).
    pub recordings: AudioStore,
    /// The WhatsApp provider (`WHATSAPP_PROVIDER`).
    pub whatsapp: Arc<dyn WhatsAppSender>,
    /// Per-sender pacing of WhatsApp sends (`WHATSAPP_RATE`), shared through Redis in Redis mode.
    pub pacer: Pacer,
}

/// Decodes a payload; a payload that does not decode is a permanent failure (dead at once).
fn payload<T: JobPayload>(lease: &Lease) -> Result<T, JobError> {
    kinds::decode::<T>(&lease.payload).map_err(JobError::permanent)
}

/// Whether this build has a handler for `kind` (the clock schedules only those).
pub fn handles(kind: JobKind) -> bool {
    // Every kind has its handler in `dispatch` now.
    JobKind::ALL.contains(&kind)
}

/// Runs one claimed job with the handler of its kind.
pub async fn dispatch(ctx: &Ctx, lease: &Lease) -> Result<(), JobError> {
    let kind: JobKind = lease.kind.parse().map_err(JobError::permanent)?;
    match kind {
        JobKind::CallStarted => call_started::run(ctx, payload(lease)?).await,
        JobKind::CallStatus => call_status::run(ctx, payload(lease)?).await,
        JobKind::WhatsAppInbound => whatsapp_inbound::run(ctx, payload(lease)?).await,
        JobKind::WhatsAppStatus => whatsapp_status::run(ctx, payload(lease)?).await,
        JobKind::WhatsAppSend => whatsapp_send::run(ctx, payload(lease)?).await,
        JobKind::RecordingProcess => {
            let last = lease.attempts >= ctx.core.retry.schedule(kind).max_attempts();
            recording_process::run(ctx, payload(lease)?, last).await
        }
        JobKind::ClockReconcile => clock_reconcile::run(ctx, payload(lease)?).await,
        JobKind::ClockHealth => clock_health::run(ctx, payload(lease)?).await,
        JobKind::ClockCleanup => clock_cleanup::run(ctx, payload(lease)?).await,
    }
}

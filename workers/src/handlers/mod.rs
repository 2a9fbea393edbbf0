//! Job handlers: one file per job kind, and [`dispatch`], generated from the job kind table.
//!
//! A handler is `async fn run(ctx: &Ctx, job: Payload, claim: &Claim) -> Result<(), JobError>`:
//! it decodes nothing and decides everything about one kind of job ([`Claim`] carries the
//! kind, the lease and `is_last_attempt`, all from the runner). Which file runs which kind is
//! the `handler …` of the kind's line in [`moked_jobs::for_each_job_kind!`]; the `pub mod`
//! lines below stay written out so `cargo fmt` still finds the files. Every handler is
//! idempotent by its natural key (CallSid, RecordingSid, MessageSid + status, our message id):
//! the queue delivers at least once, the effects happen once.

use std::sync::Arc;

use moked_jobs::config::CoreConfig;
use moked_jobs::kinds::{self, JobKind, JobPayload};
use moked_jobs::pacing::Pacer;
use moked_jobs::queue::SharedQueue;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
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
fn payload<T: JobPayload>(claim: &Claim) -> Result<T, JobError> {
    kinds::decode::<T>(&claim.lease.payload).map_err(JobError::permanent)
}

/// Generates [`dispatch`] from the job kind table: each kind runs `run` of its `handler` file.
macro_rules! dispatch_by_kind {
    ($(
        $(#[doc = $doc:literal])+
        $kind:ident = $name:literal, handler $handler:ident, operator_retry $rule:ident;
    )+) => {
        /// Runs one claimed job with the handler of its kind (the runner parsed the kind).
        pub async fn dispatch(ctx: &Ctx, claim: &Claim) -> Result<(), JobError> {
            match claim.kind {
                $(JobKind::$kind => {
                    $handler::run(ctx, payload::<kinds::$kind>(claim)?, claim).await
                })+
            }
        }
    };
}
moked_jobs::for_each_job_kind!(dispatch_by_kind);

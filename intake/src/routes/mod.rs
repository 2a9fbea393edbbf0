//! The intake's routes, one module per surface.
//!
//! * [`voice`] — Twilio voice webhooks: incoming call, recording action, recording status,
//!   call status.
//! * [`messaging`] — Twilio WhatsApp webhooks: inbound message, message status.
//! * [`baileys`] — inbound messages and delivery receipts from the Baileys WhatsApp bridge (JSON,
//!   shared secret).
//! * [`health`] — liveness and readiness under `/api`.
//! * [`operator`] — the authenticated operator API under `/api`, its OpenAPI document, the
//!   `/ops` page and `/metrics`. Operator routes go there and nowhere else, so the webhook
//!   modules stay free of bearer-token concerns.
//! * [`enqueue`] — the one enqueue path every webhook job takes.
//!
//! Every webhook handler is translation only ("handlers translate, functions decide"): the
//! extractor verifies, a pure function in the same module turns the fields into a payload (unit
//! tested without HTTP), the handler notes the event's sid, applies its rate limit, hands the
//! payload to [`enqueue::enqueue`] and answers.
//!
//! Each job is deduplicated by the natural key of its event (CallSid, CallSid + status +
//! sequence, RecordingSid, MessageSid, MessageSid + status), which the signature covers. The
//! payload names its key (`moked_jobs::kinds::NaturalKey`, beside each payload struct); no
//! handler builds one. `I-Twilio-Idempotency-Token` is not part of the key: the signature does
//! not cover it, so a captured request replayed with a new token must still be the same job.

pub mod baileys;
pub mod enqueue;
pub mod health;
pub mod messaging;
pub mod operator;
pub mod voice;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// `POST /webhook/*`.
pub fn webhooks() -> Router<AppState> {
    Router::new()
        .route("/webhook/incoming_call", post(voice::incoming_call))
        .route("/webhook/handle_recording", post(voice::handle_recording))
        .route("/webhook/recording_status", post(voice::recording_status))
        .route("/webhook/call_status", post(voice::call_status))
        .route("/webhook/whatsapp/incoming", post(messaging::incoming))
        .route("/webhook/whatsapp/status", post(messaging::status))
        .route("/webhook/whatsapp/baileys", post(baileys::inbound))
}

/// Everything under `/api` (CORS is applied to this router only).
pub fn api(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(operator::router(state))
}

/// Notes the event's id (CallSid, MessageSid…) on the request's span, so every log line of the
/// request carries it.
pub(crate) fn note_sid(sid: &str) {
    tracing::Span::current().record("sid", sid);
}

//! WhatsApp in the store: the `whatsapp_message` rows and what hangs off them.
//!
//! * [`messages`] — inbound messages once per provider sid, outbound ones once per idempotency
//!   key, statuses that only move forward, and the status callbacks kept in
//!   `whatsapp_status_event`.
//! * [`outbound`] — the send path's bookkeeping on an outbound message: the start of an attempt
//!   that may have sent it, the message an idempotency key names, reopening a refused message
//!   for an operator retry.
//! * [`media`] — where an inbound message's media are kept once copied into the object store.
//!
//! The send API that creates outbound rows is [`crate::whatsapp`]; the workers' handlers that
//! move them are `workers/src/handlers/whatsapp_*.rs`.

pub mod media;
pub mod messages;
pub mod outbound;

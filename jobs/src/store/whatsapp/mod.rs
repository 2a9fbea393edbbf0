//! WhatsApp in the store: the `whatsapp_message` rows and what hangs off them.
//!
//! * [`messages`] — the message rows: inbound messages once per provider sid, outbound ones once
//!   per idempotency key, their media lists, lookups by our id or the provider's sid.
//! * [`statuses`] — statuses that only move forward, the status callbacks kept in
//!   `whatsapp_status_event`, and the provider sid attached once the send is accepted.
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
pub mod statuses;

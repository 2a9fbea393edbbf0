//! Rows as the services create them, for tests that need one in the store before they start.

use moked_jobs::phone::E164;
use moked_jobs::store::whatsapp::messages::{NewOutbound, new_message_id};

/// A free-form WhatsApp text to `to` (E.164) over Twilio, as the send API creates it: a fresh
/// id, sent from `from` when given, no media, no template, no idempotency key, the default
/// business.
pub fn twilio_text(to: &str, from: Option<&str>, body: &str) -> NewOutbound {
    NewOutbound {
        id: new_message_id(),
        provider: "twilio".into(),
        to: E164::parse(to).expect("an E.164 number"),
        from: from.map(str::to_owned),
        body: Some(body.into()),
        media: Vec::new(),
        content_sid: None,
        content_variables: None,
        idempotency_key: None,
        business_id: None,
    }
}

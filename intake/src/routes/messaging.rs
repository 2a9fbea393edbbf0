//! Twilio WhatsApp webhooks.
//!
//! | path | answer | enqueues | dedupe key (the payload's natural key) |
//! |---|---|---|---|
//! | `/webhook/whatsapp/incoming` | 200 TwiML `<Response/>` (never JSON: that is Twilio error 12300) | `whatsapp.inbound` | `whatsapp.inbound:{MessageSid}` |
//! | `/webhook/whatsapp/status` | 204 | `whatsapp.status` | `whatsapp.status:{MessageSid}:{MessageStatus}` |
//!
//! `I-Twilio-Idempotency-Token` never changes a key (see [`super`]).
//!
//! Status callbacks are limited per MessageSid (429). Our own message id, when the sender put
//! it in the StatusCallback URL as `?our_id=…` (or `?mid=…`, `?id=…`), is passed on as `our_id`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::StatusCode;
use moked_jobs::kinds::{InboundMedia, WhatsAppInbound, WhatsAppStatus};

use super::enqueue::enqueue;
use super::note_sid;
use crate::error::IntakeError;
use crate::ratelimit::Limit;
use crate::signature::TwilioForm;
use crate::{AppState, limit};

/// Twilio sends at most 10 media per message; more `NumMedia` than that is not trusted.
const MAX_MEDIA: usize = 10;

/// `POST /webhook/whatsapp/incoming`.
pub async fn incoming(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<Response, IntakeError> {
    let message = inbound(&hook)?;
    note_sid(&message.provider_sid);
    enqueue(&state, &message).await?;
    Ok(state.answers.empty.clone().into_response())
}

/// `POST /webhook/whatsapp/status`.
pub async fn status(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<StatusCode, IntakeError> {
    enqueue_status(&state, &status_of(&hook)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enqueues one `whatsapp.status` job (deduplicated by its natural key, MessageSid + status),
/// limited per MessageSid. Shared with the Baileys bridge's receipts, so a status means the
/// same job whichever provider reported it.
pub(crate) async fn enqueue_status(
    state: &AppState,
    status: &WhatsAppStatus,
) -> Result<(), IntakeError> {
    note_sid(&status.message_sid);
    limit(state, Limit::Status, &status.message_sid).await?;
    enqueue(state, status).await
}

/// The `whatsapp.inbound` payload. MessageSid and From are required; media are read from
/// `MediaUrl{N}` / `MediaContentType{N}` for N below `NumMedia`.
pub fn inbound(hook: &TwilioForm) -> Result<WhatsAppInbound, IntakeError> {
    let f = &hook.form;
    let declared = f
        .get_i64("NumMedia")
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_MEDIA);
    let media = (0..declared)
        .filter_map(|i| {
            let url = f.get_non_empty(&format!("MediaUrl{i}"))?;
            Some(InboundMedia {
                url: url.to_owned(),
                content_type: f
                    .get_non_empty(&format!("MediaContentType{i}"))
                    .map(str::to_owned),
            })
        })
        .collect();
    Ok(WhatsAppInbound {
        provider: "twilio".into(),
        provider_sid: f.require("MessageSid")?.to_owned(),
        from: f.require("From")?.to_owned(),
        to: f.get_non_empty("To").map(str::to_owned),
        body: f.get("Body").unwrap_or_default().to_owned(),
        media,
        profile_name: f.get_non_empty("ProfileName").map(str::to_owned),
        received_at: Utc::now(),
    })
}

/// The `whatsapp.status` payload. MessageSid and MessageStatus are required.
pub fn status_of(hook: &TwilioForm) -> Result<WhatsAppStatus, IntakeError> {
    let f = &hook.form;
    Ok(WhatsAppStatus {
        message_sid: f.require("MessageSid")?.to_owned(),
        status: f.require("MessageStatus")?.to_owned(),
        error_code: f.get_i64("ErrorCode"),
        error_message: f.get_non_empty("ErrorMessage").map(str::to_owned),
        our_id: hook
            .query
            .get_non_empty("our_id")
            .or_else(|| hook.query.get_non_empty("mid"))
            .or_else(|| hook.query.get_non_empty("id"))
            .map(str::to_owned),
        received_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Form;
    use crate::signature::hook;

    #[test]
    fn inbound_messages_keep_body_profile_and_declared_media() {
        let m = inbound(&hook(&[
            ("MessageSid", "SM1"),
            ("From", "whatsapp:+972501234567"),
            ("To", "whatsapp:+14155238886"),
            ("Body", "שלום"),
            ("ProfileName", "דנה"),
            ("NumMedia", "2"),
            ("MediaUrl0", "https://api.twilio.com/m0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/m1"),
            ("MediaUrl2", "https://api.twilio.com/not-declared"),
        ]))
        .expect("valid");
        assert_eq!(m.provider, "twilio");
        assert_eq!(m.body, "שלום");
        assert_eq!(m.profile_name.as_deref(), Some("דנה"));
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.media[1].content_type, None);
        assert_eq!(
            inbound(&hook(&[("From", "whatsapp:+1")])).expect_err("no sid"),
            IntakeError::missing("MessageSid")
        );
        let huge = inbound(&hook(&[
            ("MessageSid", "SM1"),
            ("From", "x"),
            ("NumMedia", "99999999999"),
        ]))
        .expect("valid");
        assert!(huge.media.is_empty());
    }

    #[test]
    fn statuses_carry_error_code_and_our_id_from_the_query() {
        let mut h = hook(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "63016"),
            ("ErrorMessage", "outside the window"),
        ]);
        h.query = Form::parse_query("our_id=0190-abc");
        let s = status_of(&h).expect("valid");
        assert_eq!(s.error_code, Some(63016));
        assert_eq!(s.our_id.as_deref(), Some("0190-abc"));
        h.query = Form::parse_query("id=m2");
        assert_eq!(status_of(&h).expect("valid").our_id.as_deref(), Some("m2"));
        assert_eq!(
            status_of(&hook(&[("MessageSid", "SM1")])).expect_err("no status"),
            IntakeError::missing("MessageStatus")
        );
    }
}

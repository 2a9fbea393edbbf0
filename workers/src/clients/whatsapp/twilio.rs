//! WhatsApp through Twilio's Messages API: [`TwilioSender`].
//!
//! `POST Messages.json` with `To=whatsapp:+E164`, `From=whatsapp:+E164` (TWILIO_WHATSAPP_NUMBER,
//! configured with or without its prefix: parsed to E.164 first, so the prefix is added exactly
//! once), `Body` or `ContentSid` + `ContentVariables`, `MediaUrl` per attachment and
//! `StatusCallback={PUBLIC_HOST}/webhook/whatsapp/status?mid={our id}` (our id in the query
//! lets a status callback attach the MessageSid to our message even when the send result was
//! lost, see [`moked_jobs::store::whatsapp::statuses::apply_status_callback`]).
//!
//! **Matching an ambiguous attempt.**
//!
//! Twilio has no idempotency key on message creation, and its list API does not return
//! `StatusCallback`, so our id cannot be read back from Twilio. A message counts as *ours* when
//! all of these hold:
//!
//! * `To` is the recipient and `From` is our sender (both compared as E.164);
//! * it was created no earlier than the earliest ambiguous attempt began, minus
//!   [`LOOKUP_SKEW`] for the difference between Twilio's clock and ours;
//! * for free-form text, its `body` equals ours (trimmed); for a template the rendered body is
//!   unknown to us, so any body matches; for media-only messages the body is empty;
//! * (checked by the handler) its sid is not already attached to another of our messages.
//!
//! The earliest such message is adopted. **Limits:** two of our messages to the same person
//! with the same text, both left ambiguous inside the same window, can swap sids (harmless: same
//! text, same person); two ambiguous *templates* to one person in one window can adopt each
//! other's message (the second is then sent again only if the first finds nothing); Twilio's
//! list is filtered by `DateSent` at day granularity and may lag creation by a moment, so a
//! message created just before a retry, or one still `queued` without a send date, may not be
//! listed yet — the retry delay (seconds at least) makes that unlikely, not impossible. A status
//! callback carrying our id closes the gap whenever it arrives first.
//!

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::phone::E164;
use moked_jobs::whatsapp::Provider;

use super::{Accepted, Failure, FailureKind, Outgoing, WhatsAppSender};
use crate::clients::twilio::{Message, NewMessage, TwilioApi, TwilioError};

/// How much earlier than our attempt a provider message may be dated and still be ours.
pub const LOOKUP_SKEW: Duration = Duration::from_secs(120);

/// The URL Twilio posts this message's status callbacks to.
pub fn status_callback_url(public_host: &str, message_id: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("mid", message_id)
        .finish();
    format!(
        "{}/webhook/whatsapp/status?{query}",
        public_host.trim_end_matches('/')
    )
}

/// A readable reason for a Twilio error code (the code itself is stored beside it).
pub fn twilio_reason(code: Option<i64>, twilio_message: &str) -> String {
    let known = match code {
        Some(21211) => "the recipient is not a valid phone number",
        Some(21408) => "sending to the recipient's region is not enabled on the Twilio account",
        Some(21610) => "the recipient has opted out (replied STOP) and cannot be messaged",
        Some(21614) => "the recipient is not a mobile number that can receive this message",
        Some(21617) => "the message body is too long",
        Some(63003) => "the recipient's WhatsApp address could not be reached",
        Some(63007) => "our sender is not a WhatsApp-enabled number of this Twilio account",
        Some(63016) => {
            "outside the 24-hour WhatsApp window: free-form text is not allowed, send an approved template (content_sid)"
        }
        Some(63021) => "the template content is invalid",
        Some(63030) => "media cannot be sent with a template",
        Some(63024) => "the recipient is not a valid WhatsApp user",
        _ => "",
    };
    let code_text = code
        .map(|c| format!("Twilio {c}"))
        .unwrap_or_else(|| "Twilio".into());
    match (known.is_empty(), twilio_message.trim().is_empty()) {
        (false, true) => format!("{known} ({code_text})"),
        (false, false) => format!("{known} ({code_text}: {})", twilio_message.trim()),
        (true, false) => format!("{} ({code_text})", twilio_message.trim()),
        (true, true) => format!("refused ({code_text})"),
    }
}

/// Sends through Twilio's Messages API.
pub struct TwilioSender {
    api: Arc<dyn TwilioApi>,
    from: Option<E164>,
    public_host: String,
    timeout: Duration,
}

impl TwilioSender {
    /// A sender from `from` (our WhatsApp number), posting status callbacks to `public_host`;
    /// a call slower than `timeout` counts as ambiguous.
    pub fn new(
        api: Arc<dyn TwilioApi>,
        from: Option<E164>,
        public_host: &str,
        timeout: Duration,
    ) -> Self {
        TwilioSender {
            api,
            from,
            public_host: public_host.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    fn from(&self) -> Result<&E164, Failure> {
        self.from.as_ref().ok_or_else(|| Failure {
            kind: FailureKind::Misconfigured,
            reason: "TWILIO_WHATSAPP_NUMBER is unset".into(),
        })
    }

    /// The form of `message` (public for the request-shape tests).
    pub fn new_message(&self, message: &Outgoing) -> Result<NewMessage, Failure> {
        Ok(NewMessage {
            to: message.to.whatsapp(),
            from: self.from()?.whatsapp(),
            body: message.body.clone(),
            content_sid: message.content_sid.clone(),
            content_variables: message.content_variables.clone(),
            media_urls: message.media_urls.clone(),
            status_callback: Some(status_callback_url(&self.public_host, &message.id)),
        })
    }
}

/// What a failed Twilio call means.
fn twilio_failure(e: &TwilioError, creating: bool) -> Failure {
    let kind = match e {
        TwilioError::Status {
            status,
            code,
            retry_after,
            ..
        } => {
            if *status == 429 || *code == Some(20429) {
                FailureKind::RetryLater(*retry_after)
            } else if *status >= 500 {
                if creating {
                    FailureKind::Ambiguous(*retry_after)
                } else {
                    FailureKind::RetryLater(*retry_after)
                }
            } else if matches!(*status, 401 | 403) || *code == Some(20003) || *status == 404 {
                // Wrong credentials or account: every message would fail the same way.
                FailureKind::Misconfigured
            } else if creating {
                FailureKind::Rejected(*code)
            } else {
                FailureKind::RetryLater(None)
            }
        }
        TwilioError::Transport { maybe_sent, .. } if creating && *maybe_sent => {
            FailureKind::Ambiguous(None)
        }
        // A 2xx we could not read: created, most likely.
        TwilioError::Decode { .. } if creating => FailureKind::Ambiguous(None),
        TwilioError::Transport { .. } | TwilioError::Decode { .. } => FailureKind::RetryLater(None),
        TwilioError::NotConfigured(_) | TwilioError::ForeignUrl(_) => FailureKind::Misconfigured,
    };
    let reason = match (&kind, e) {
        (FailureKind::Rejected(code), TwilioError::Status { message, .. }) => {
            twilio_reason(*code, message)
        }
        _ => e.to_string(),
    };
    Failure { kind, reason }
}

fn accepted(m: &Message) -> Accepted {
    Accepted {
        provider_sid: m.sid.clone(),
        status: m.status.clone(),
        error_code: m.error_code,
        error_message: m
            .error_code
            .map(|c| twilio_reason(Some(c), m.error_message.as_deref().unwrap_or_default())),
    }
}

/// Whether Twilio message `m` may be `message`, sent from `from` by an attempt since `since`
/// (the matching rule in the module doc; the handler also skips sids we already hold).
pub fn is_ours(m: &Message, message: &Outgoing, from: &E164, since: DateTime<Utc>) -> bool {
    let number = |raw: &Option<String>| raw.as_deref().and_then(|r| E164::parse(r).ok());
    if number(&m.to).as_ref() != Some(&message.to) || number(&m.from).as_ref() != Some(from) {
        return false;
    }
    let earliest = since - chrono::Duration::from_std(LOOKUP_SKEW).unwrap_or_default();
    let created = m
        .date_created
        .as_deref()
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok());
    if created.is_none_or(|c| c.with_timezone(&Utc) < earliest) {
        return false;
    }
    let theirs = m.body.as_deref().unwrap_or_default().trim();
    match (&message.content_sid, &message.body) {
        (Some(_), _) => true,
        (None, Some(body)) => theirs == body.trim(),
        (None, None) => theirs.is_empty(),
    }
}

#[async_trait]
impl WhatsAppSender for TwilioSender {
    fn provider(&self) -> Provider {
        Provider::Twilio
    }

    fn pacing_key(&self) -> String {
        match &self.from {
            Some(n) => format!("whatsapp:{}", n.as_str()),
            None => "whatsapp:twilio".into(),
        }
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, Failure> {
        let form = self.new_message(message)?;
        match tokio::time::timeout(self.timeout, self.api.create_message(&form)).await {
            Ok(Ok(m)) => Ok(accepted(&m)),
            Ok(Err(e)) => Err(twilio_failure(&e, true)),
            Err(_) => Err(Failure {
                kind: FailureKind::Ambiguous(None),
                reason: format!(
                    "Twilio POST Messages.json: no answer within {} ms",
                    self.timeout.as_millis()
                ),
            }),
        }
    }

    async fn find_sent(
        &self,
        message: &Outgoing,
        since: DateTime<Utc>,
    ) -> Result<Option<Vec<Accepted>>, Failure> {
        let from = self.from()?.clone();
        let after = since - chrono::Duration::from_std(LOOKUP_SKEW).unwrap_or_default();
        let listed = tokio::time::timeout(
            self.timeout,
            self.api.list_messages_to(&message.to.whatsapp(), after),
        )
        .await
        .map_err(|_| Failure {
            kind: FailureKind::RetryLater(None),
            reason: "Twilio GET Messages.json: no answer in time".into(),
        })?
        .map_err(|e| twilio_failure(&e, false))?;
        let mut ours: Vec<(DateTime<Utc>, Accepted)> = listed
            .iter()
            .filter(|m| is_ours(m, message, &from, since))
            .map(|m| {
                let created = m
                    .date_created
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or(since);
                (created, accepted(m))
            })
            .collect();
        ours.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.provider_sid.cmp(&b.1.provider_sid))
        });
        Ok(Some(ours.into_iter().map(|(_, a)| a).collect()))
    }
}

#[cfg(test)]
mod tests {
    use moked_jobs::retry::JobError;

    use super::*;

    fn msg(to: &str, from: &str, body: &str, created: &str) -> Message {
        Message {
            sid: "SM1".into(),
            status: "sent".into(),
            to: Some(to.into()),
            from: Some(from.into()),
            body: Some(body.into()),
            error_code: None,
            error_message: None,
            date_created: Some(created.into()),
        }
    }

    fn outgoing(body: Option<&str>, template: bool) -> Outgoing {
        Outgoing {
            id: "m1".into(),
            to: E164::parse("+972521234567").unwrap(),
            body: body.map(str::to_owned),
            content_sid: template.then(|| "HX1".to_owned()),
            content_variables: None,
            media_urls: vec![],
        }
    }

    #[test]
    fn a_listed_message_is_ours_only_with_our_numbers_our_text_and_a_recent_date() {
        let from = E164::parse("+14155238886").unwrap();
        let since = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = "Sun, 01 Mar 2026 10:00:05 +0000";
        let ours = msg(
            "whatsapp:+972521234567",
            "whatsapp:+14155238886",
            "שלום",
            at,
        );
        assert!(is_ours(&ours, &outgoing(Some("שלום"), false), &from, since));
        assert!(!is_ours(
            &ours,
            &outgoing(Some("other"), false),
            &from,
            since
        ));
        assert!(
            is_ours(&ours, &outgoing(None, true), &from, since),
            "templates match any body"
        );
        let other_to = msg(
            "whatsapp:+972521111111",
            "whatsapp:+14155238886",
            "שלום",
            at,
        );
        assert!(!is_ours(
            &other_to,
            &outgoing(Some("שלום"), false),
            &from,
            since
        ));
        let inbound = msg(
            "whatsapp:+14155238886",
            "whatsapp:+972521234567",
            "שלום",
            at,
        );
        assert!(!is_ours(
            &inbound,
            &outgoing(Some("שלום"), false),
            &from,
            since
        ));
        let old = msg(
            "whatsapp:+972521234567",
            "whatsapp:+14155238886",
            "שלום",
            "Sun, 01 Mar 2026 09:50:00 +0000",
        );
        assert!(!is_ours(&old, &outgoing(Some("שלום"), false), &from, since));
        let skewed = msg(
            "whatsapp:+972521234567",
            "whatsapp:+14155238886",
            "שלום",
            "Sun, 01 Mar 2026 09:59:00 +0000",
        );
        assert!(is_ours(
            &skewed,
            &outgoing(Some("שלום"), false),
            &from,
            since
        ));
    }

    #[test]
    fn the_status_callback_carries_our_id() {
        assert_eq!(
            status_callback_url("https://moked.example.com/", "0190-ab"),
            "https://moked.example.com/webhook/whatsapp/status?mid=0190-ab"
        );
    }

    #[test]
    fn twilio_failures_are_classified_for_the_message() {
        let status = |s: u16, code: Option<i64>| TwilioError::Status {
            method: "POST",
            path: "/x".into(),
            status: s,
            code,
            message: "Twilio says no".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            twilio_failure(&status(429, Some(20429)), true).kind,
            FailureKind::RetryLater(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            twilio_failure(&status(503, None), true).kind,
            FailureKind::Ambiguous(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            twilio_failure(&status(503, None), false).kind,
            FailureKind::RetryLater(Some(Duration::from_secs(3)))
        );
        let rejected = twilio_failure(&status(400, Some(63016)), true);
        assert_eq!(rejected.kind, FailureKind::Rejected(Some(63016)));
        assert!(rejected.reason.contains("24-hour"), "{}", rejected.reason);
        assert!(rejected.reason.contains("63016"), "{}", rejected.reason);
        assert_eq!(
            twilio_failure(&status(401, Some(20003)), true).kind,
            FailureKind::Misconfigured
        );
        assert!(matches!(
            twilio_failure(&status(400, Some(21211)), true).job_error(),
            JobError::Permanent(_)
        ));
    }
}

//! The Baileys WhatsApp bridge: `POST {BAILEYS_URL}/sendMessage`.
//!
//! The bridge is a small Node.js service around the Baileys library (WhatsApp Web); its contract
//! is written down in `docs/BAILEYS.md`. One call:
//!
//! ```text
//! POST {BAILEYS_URL}/sendMessage
//! Content-Type: application/json
//! X-BAILEYS-SECRET: {BAILEYS_SECRET}
//! Idempotency-Key: {our message id}
//!
//! {"to": "972501234567@s.whatsapp.net", "text": "…"}
//! → 200 {"ok": true, "message_id": "3EB0…"}
//! ```
//!
//! Recipients are WhatsApp JIDs (`<E.164 digits>@s.whatsapp.net`), never raw phone numbers (the
//! seed's bridge got that wrong). The `Idempotency-Key` header carries our message id so a bridge
//! that remembers it can answer a repeated request with the first `message_id` instead of sending
//! twice — the only defence against a duplicate after an ambiguous attempt, because the bridge
//! has no way to list what it sent.
//!
//! Failures are classified like Twilio's ([`BaileysError::is_ambiguous`]): 429 and 5xx are
//! retried (honouring `Retry-After`), a timeout or a broken connection after the request left
//! may have sent the message, 401/403 mean our secret is wrong, other 4xx refuse this message,
//! and `200 {"ok": false}` is a refusal the bridge chose to report (e.g. not paired yet) that is
//! retried — the seed reported success on such errors.
//!
//! [`BaileysSender`] is the [`WhatsAppSender`] over this client. The bridge cannot list what it
//! sent, so [`WhatsAppSender::find_sent`] answers `None`: after an ambiguous attempt the handler
//! sends again with the same `Idempotency-Key` (our id), which a conforming bridge answers with
//! the first message id.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::phone::E164;
use moked_jobs::whatsapp::Provider;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Accepted, Failure, FailureKind, Outgoing, WhatsAppSender};
use crate::clients::twilio::{retry_after, transport_failure};

/// The secret header, both directions.
pub const SECRET_HEADER: &str = "X-BAILEYS-SECRET";

/// The WhatsApp JID of a number: `972501234567@s.whatsapp.net`.
pub fn jid(to: &E164) -> String {
    format!("{}@s.whatsapp.net", to.digits())
}

/// The bridge's answer.
#[derive(Debug, Clone, Deserialize)]
struct Answer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Serialize)]
struct SendBody<'a> {
    to: String,
    text: &'a str,
}

/// A message the bridge accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaileysSent {
    /// The WhatsApp message id the bridge reported.
    pub message_id: String,
}

/// A failed bridge call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BaileysError {
    /// The bridge answered with an error status.
    #[error("Baileys bridge → HTTP {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The bridge's `error`, or the status text.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// `200 {"ok": false}`: the bridge says it did not send.
    #[error("Baileys bridge refused: {0}")]
    NotSent(String),
    /// No answer in time, or the connection broke.
    #[error("Baileys bridge: {reason}")]
    Transport {
        /// What happened.
        reason: String,
        /// Whether the request may have reached the bridge.
        maybe_sent: bool,
    },
    /// A success status with a body we cannot read (the message was probably sent).
    #[error("Baileys bridge: unreadable answer: {0}")]
    Decode(String),
    /// `BAILEYS_URL` or `BAILEYS_SECRET` missing.
    #[error("Baileys is not configured: {0}")]
    NotConfigured(&'static str),
}

impl BaileysError {
    /// Whether the message may have been sent although the call failed.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            BaileysError::Status { status, .. } => *status >= 500,
            BaileysError::Transport { maybe_sent, .. } => *maybe_sent,
            BaileysError::Decode(_) => true,
            BaileysError::NotSent(_) | BaileysError::NotConfigured(_) => false,
        }
    }
}

/// The bridge client.
#[derive(Clone)]
pub struct BaileysClient {
    http: reqwest::Client,
    base: Option<String>,
    secret: Option<SecretString>,
}

impl BaileysClient {
    /// A client for the bridge at `base` (no trailing slash), authenticating with `secret`;
    /// one call may take at most `timeout`.
    pub fn new(
        base: Option<String>,
        secret: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .user_agent(concat!("moked/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(BaileysClient {
            http,
            base: base.map(|b| b.trim_end_matches('/').to_owned()),
            secret,
        })
    }

    /// `POST /sendMessage` with `text` to `to`; `idempotency_key` is our message id.
    pub async fn send_text(
        &self,
        to: &E164,
        text: &str,
        idempotency_key: &str,
    ) -> Result<BaileysSent, BaileysError> {
        let base = self
            .base
            .as_deref()
            .ok_or(BaileysError::NotConfigured("BAILEYS_URL is unset"))?;
        let secret = self
            .secret
            .as_ref()
            .ok_or(BaileysError::NotConfigured("BAILEYS_SECRET is unset"))?;
        let resp = self
            .http
            .post(format!("{base}/sendMessage"))
            .header(SECRET_HEADER, secret.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .json(&SendBody { to: jid(to), text })
            .send()
            .await
            .map_err(|e| {
                let (reason, maybe_sent) = transport_failure(e);
                BaileysError::Transport { reason, maybe_sent }
            })?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        if !status.is_success() {
            let answer: Option<Answer> = resp.json().await.ok();
            return Err(BaileysError::Status {
                status: status.as_u16(),
                message: answer
                    .and_then(|a| a.error)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
                retry_after: retry,
            });
        }
        let answer: Answer = resp
            .json()
            .await
            .map_err(|e| BaileysError::Decode(e.without_url().to_string()))?;
        match (
            answer.ok,
            answer.message_id.filter(|m| !m.trim().is_empty()),
        ) {
            (true, Some(message_id)) => Ok(BaileysSent { message_id }),
            (true, None) => Err(BaileysError::Decode("ok without a message_id".into())),
            (false, _) => Err(BaileysError::NotSent(
                answer.error.unwrap_or_else(|| "no reason given".into()),
            )),
        }
    }
}

/// Sends through the Baileys bridge.
pub struct BaileysSender {
    client: BaileysClient,
}

impl BaileysSender {
    /// A sender over `client`.
    pub fn new(client: BaileysClient) -> Self {
        BaileysSender { client }
    }
}

fn baileys_failure(e: &BaileysError) -> Failure {
    let kind = match e {
        BaileysError::Status {
            status,
            retry_after,
            ..
        } => match *status {
            s if s >= 500 => FailureKind::Ambiguous(*retry_after),
            429 => FailureKind::RetryLater(*retry_after),
            401 | 403 | 404 => FailureKind::Misconfigured,
            _ => FailureKind::Rejected(None),
        },
        BaileysError::NotSent(_) => FailureKind::RetryLater(None),
        BaileysError::Transport { .. } | BaileysError::Decode(_) if e.is_ambiguous() => {
            FailureKind::Ambiguous(None)
        }
        BaileysError::Transport { .. } | BaileysError::Decode(_) => FailureKind::RetryLater(None),
        BaileysError::NotConfigured(_) => FailureKind::Misconfigured,
    };
    Failure {
        kind,
        reason: e.to_string(),
    }
}

#[async_trait]
impl WhatsAppSender for BaileysSender {
    fn provider(&self) -> Provider {
        Provider::Baileys
    }

    fn pacing_key(&self) -> String {
        "whatsapp:baileys".into()
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, Failure> {
        let Some(text) = message.body.as_deref() else {
            return Err(Failure {
                kind: FailureKind::Rejected(None),
                reason: "the Baileys bridge sends text only".into(),
            });
        };
        match self.client.send_text(&message.to, text, &message.id).await {
            Ok(sent) => Ok(Accepted {
                provider_sid: sent.message_id,
                // The bridge answers once WhatsApp took the message.
                status: "sent".into(),
                error_code: None,
                error_message: None,
            }),
            Err(e) => Err(baileys_failure(&e)),
        }
    }

    async fn find_sent(
        &self,
        _message: &Outgoing,
        _since: DateTime<Utc>,
    ) -> Result<Option<Vec<Accepted>>, Failure> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_jids_of_e164_digits() {
        let to = E164::parse("050-123-4567").unwrap();
        assert_eq!(jid(&to), "972501234567@s.whatsapp.net");
    }

    #[test]
    fn only_failures_after_the_request_left_are_ambiguous() {
        let status = |s| BaileysError::Status {
            status: s,
            message: "x".into(),
            retry_after: None,
        };
        assert!(status(500).is_ambiguous());
        assert!(!status(429).is_ambiguous());
        assert!(!status(403).is_ambiguous());
        assert!(BaileysError::Decode("x".into()).is_ambiguous());
        assert!(!BaileysError::NotSent("not paired".into()).is_ambiguous());
        assert!(
            BaileysError::Transport {
                reason: "timed out".into(),
                maybe_sent: true
            }
            .is_ambiguous()
        );
    }
}

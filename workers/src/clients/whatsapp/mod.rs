//! One WhatsApp provider trait, [`WhatsAppSender`], with a Twilio ([`twilio`]) and a Baileys
//! ([`baileys`]) implementation chosen by `WHATSAPP_PROVIDER` ([`from_config`]).
//!
//! The `whatsapp.send` handler sees only the trait: [`WhatsAppSender::send`] sends one message
//! and classifies a failure ([`Failure`]); [`WhatsAppSender::find_sent`] looks for a message an
//! earlier, ambiguous attempt may have sent (Twilio lists its messages and matches them,
//! [`twilio::is_ours`]; the bridge cannot, and answers `None`).

pub mod baileys;
pub mod twilio;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::config::CoreConfig;
use moked_jobs::phone::E164;
use moked_jobs::retry::JobError;
use moked_jobs::store::whatsapp::messages::WhatsAppMessage;
use moked_jobs::whatsapp::Provider;

use crate::clients::twilio::TwilioApi;
use crate::config::WorkerConfig;
use baileys::{BaileysClient, BaileysSender};
use twilio::TwilioSender;

/// One outbound message, as the provider needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Our message id.
    pub id: String,
    /// The recipient.
    pub to: E164,
    /// Free-form text.
    pub body: Option<String>,
    /// Template.
    pub content_sid: Option<String>,
    /// Template variables (JSON object text).
    pub content_variables: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
}

impl Outgoing {
    /// The stored message, sent to `to` (the parsed `to` column).
    pub fn new(message: &WhatsAppMessage, to: E164) -> Self {
        Outgoing {
            id: message.id.clone(),
            to,
            body: message.body.clone().filter(|b| !b.is_empty()),
            content_sid: message.content_sid.clone(),
            content_variables: message.content_variables.clone(),
            media_urls: message.media.iter().map(|m| m.url.clone()).collect(),
        }
    }
}

/// A message the provider holds (just created, or found by a lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id (Twilio MessageSid, Baileys message id).
    pub provider_sid: String,
    /// Its status in the provider's answer (Twilio sends no callback for it).
    pub status: String,
    /// The provider's error code, when the answer already says it failed.
    pub error_code: Option<i64>,
    /// A readable reason for that error.
    pub error_message: Option<String>,
}

/// How a send (or a lookup) failed, which decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing was sent; try again later (`after`, when the provider said).
    RetryLater(Option<Duration>),
    /// The message may have been sent; look before trying again.
    Ambiguous(Option<Duration>),
    /// The provider refused this message for good: it is marked failed with this code.
    Rejected(Option<i64>),
    /// Our configuration is wrong (credentials, sender); the message is left as it is so an
    /// operator can retry the job once the configuration is fixed.
    Misconfigured,
}

/// A failed send or lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Failure {
    /// What it means for the message.
    pub kind: FailureKind,
    /// Why, readable (no phone numbers, no bodies).
    pub reason: String,
}

impl Failure {
    /// The job outcome of this failure.
    pub fn job_error(&self) -> JobError {
        match self.kind {
            FailureKind::RetryLater(after) | FailureKind::Ambiguous(after) => match after {
                Some(after) => JobError::RetryAfter {
                    after,
                    reason: self.reason.clone(),
                },
                None => JobError::Transient(self.reason.clone()),
            },
            FailureKind::Rejected(_) | FailureKind::Misconfigured => {
                JobError::Permanent(self.reason.clone())
            }
        }
    }
}

/// A WhatsApp provider.
#[async_trait]
pub trait WhatsAppSender: Send + Sync + 'static {
    /// Which provider this is.
    fn provider(&self) -> Provider;

    /// The sender identity that pacing is counted against (our number, or the bridge).
    fn pacing_key(&self) -> String;

    /// Sends one message.
    async fn send(&self, message: &Outgoing) -> Result<Accepted, Failure>;

    /// Messages the provider holds that may be `message` sent by an attempt that began at
    /// `since`, earliest first; `None` when the provider cannot look messages up.
    async fn find_sent(
        &self,
        message: &Outgoing,
        since: DateTime<Utc>,
    ) -> Result<Option<Vec<Accepted>>, Failure>;
}

/// The sender `WHATSAPP_PROVIDER` asks for.
pub fn from_config(
    core: &CoreConfig,
    worker: &WorkerConfig,
    twilio: Arc<dyn TwilioApi>,
) -> anyhow::Result<Arc<dyn WhatsAppSender>> {
    let timeout = worker.delivery.send_timeout;
    Ok(match worker.whatsapp.provider {
        Provider::Twilio => Arc::new(TwilioSender::new(
            twilio,
            worker.whatsapp.sender.clone(),
            &core.public_host,
            timeout,
        )),
        Provider::Baileys => Arc::new(BaileysSender::new(BaileysClient::new(
            worker.baileys_url.clone(),
            core.baileys_secret.clone(),
            timeout,
        )?)),
    })
}

//! Job kinds and their payloads: the contract between the intake, the clock and the workers.
//!
//! Every job is one serde struct with a stable kind name (`call.started`, `recording.process`, …).
//! The names are used by the queue, `--kind` filters, metrics and the operator API, so they never
//! change; renaming a Rust type must not move a queue (a trap apalis fell into).
//!
//! Payloads carry ids and small fields, never blobs. Each payload is wrapped in an [`Envelope`]
//! with a schema version `v`; a worker that cannot decode a payload (unknown version, missing
//! field, garbage) sends the job to dead with the decode error instead of looping on it.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The schema version written into every new payload envelope.
pub const PAYLOAD_VERSION: u32 = 1;

/// The stable name of a kind of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobKind {
    /// A call reached `/webhook/incoming_call`.
    #[serde(rename = "call.started")]
    CallStarted,
    /// A call status callback reached `/webhook/call_status`.
    #[serde(rename = "call.status")]
    CallStatus,
    /// A recording to download, store and transcribe.
    #[serde(rename = "recording.process")]
    RecordingProcess,
    /// An inbound WhatsApp message (Twilio or Baileys).
    #[serde(rename = "whatsapp.inbound")]
    WhatsAppInbound,
    /// A WhatsApp message status callback.
    #[serde(rename = "whatsapp.status")]
    WhatsAppStatus,
    /// An outbound WhatsApp message to send.
    #[serde(rename = "whatsapp.send")]
    WhatsAppSend,
    /// Scheduled reconciliation with the Twilio REST API.
    #[serde(rename = "clock.reconcile")]
    ClockReconcile,
    /// Scheduled health check.
    #[serde(rename = "clock.health")]
    ClockHealth,
    /// Scheduled cleanup.
    #[serde(rename = "clock.cleanup")]
    ClockCleanup,
}

impl JobKind {
    /// Every kind, in a fixed order (stats, metrics, docs).
    pub const ALL: [JobKind; 9] = [
        JobKind::CallStarted,
        JobKind::CallStatus,
        JobKind::RecordingProcess,
        JobKind::WhatsAppInbound,
        JobKind::WhatsAppStatus,
        JobKind::WhatsAppSend,
        JobKind::ClockReconcile,
        JobKind::ClockHealth,
        JobKind::ClockCleanup,
    ];

    /// The stable name (`call.started`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::CallStarted => "call.started",
            JobKind::CallStatus => "call.status",
            JobKind::RecordingProcess => "recording.process",
            JobKind::WhatsAppInbound => "whatsapp.inbound",
            JobKind::WhatsAppStatus => "whatsapp.status",
            JobKind::WhatsAppSend => "whatsapp.send",
            JobKind::ClockReconcile => "clock.reconcile",
            JobKind::ClockHealth => "clock.health",
            JobKind::ClockCleanup => "clock.cleanup",
        }
    }

    /// The suffix of the env var that overrides this kind's retry schedule
    /// (`RETRY_SCHEDULE_WHATSAPP_SEND`).
    pub fn env_suffix(self) -> String {
        self.as_str().replace('.', "_").to_ascii_uppercase()
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`JobKind::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown job kind `{0}` (known: call.started, call.status, recording.process, whatsapp.inbound, whatsapp.status, whatsapp.send, clock.reconcile, clock.health, clock.cleanup)"
)]
pub struct UnknownKind(pub String);

impl FromStr for JobKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A payload type bound to its kind.
pub trait JobPayload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind this payload is queued as.
    const KIND: JobKind;
}

/// The versioned wrapper every payload is stored in: `{"v":1,"data":{…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Payload schema version.
    pub v: u32,
    /// The payload itself.
    pub data: T,
}

/// Why a stored payload could not be turned back into its type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON or not the shape of the payload type.
    #[error("payload does not decode as {kind}: {reason}")]
    Invalid {
        /// The kind that was expected.
        kind: JobKind,
        /// serde's reason.
        reason: String,
    },
    /// A version this build does not know.
    #[error(
        "payload version {found} of {kind} is not supported (this build reads version {PAYLOAD_VERSION})"
    )]
    Version {
        /// The kind that was expected.
        kind: JobKind,
        /// The version found.
        found: u32,
    },
}

/// Encodes a payload into its stored JSON form.
pub fn encode<T: JobPayload>(payload: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string(&Envelope {
        v: PAYLOAD_VERSION,
        data: payload,
    })
    .unwrap_or_else(|e| unreachable!("job payloads are plain data: {e}"))
}

/// Decodes a stored payload, checking its version.
pub fn decode<T: JobPayload>(raw: &str) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version = serde_json::from_str(raw).map_err(|e| DecodeError::Invalid {
        kind: T::KIND,
        reason: e.to_string(),
    })?;
    if version.v != PAYLOAD_VERSION {
        return Err(DecodeError::Version {
            kind: T::KIND,
            found: version.v,
        });
    }
    serde_json::from_str::<Envelope<T>>(raw)
        .map(|e| e.data)
        .map_err(|e| DecodeError::Invalid {
            kind: T::KIND,
            reason: e.to_string(),
        })
}

/// The intake's receipt time of a payload (`received_at`, RFC 3339); now when it is missing or
/// malformed (a timestamp is not worth losing the event over).
pub fn received_at(raw: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now())
}

/// `/webhook/incoming_call`: a call started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStarted {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Caller number as Twilio sent it.
    pub from: String,
    /// The business number called.
    pub to: String,
    /// Twilio CallStatus at the time (usually `ringing`).
    #[serde(default)]
    pub status: Option<String>,
    /// When the intake received it (RFC 3339).
    pub received_at: String,
}

impl JobPayload for CallStarted {
    const KIND: JobKind = JobKind::CallStarted;
}

/// `/webhook/call_status`: a call changed status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStatus {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Twilio CallStatus (`ringing`, `in-progress`, `completed`, …).
    pub status: String,
    /// Caller number, when sent.
    #[serde(default)]
    pub from: Option<String>,
    /// Called number, when sent.
    #[serde(default)]
    pub to: Option<String>,
    /// CallDuration in seconds, when sent.
    #[serde(default)]
    pub duration_s: Option<i64>,
    /// SequenceNumber, when sent.
    #[serde(default)]
    pub sequence: Option<i64>,
    /// When the intake received it (RFC 3339).
    pub received_at: String,
}

impl JobPayload for CallStatus {
    const KIND: JobKind = JobKind::CallStatus;
}

/// A recording to download, store and transcribe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingProcess {
    /// Twilio RecordingSid.
    pub recording_sid: String,
    /// Twilio CallSid the recording belongs to.
    pub call_sid: String,
    /// RecordingUrl as Twilio sent it (no extension).
    pub recording_url: String,
    /// RecordingDuration in seconds, when sent.
    #[serde(default)]
    pub duration_s: Option<i64>,
    /// When the intake received it (RFC 3339).
    pub received_at: String,
}

impl JobPayload for RecordingProcess {
    const KIND: JobKind = JobKind::RecordingProcess;
}

/// An inbound WhatsApp message, from Twilio or the Baileys bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsAppInbound {
    /// `twilio` or `baileys`.
    pub provider: String,
    /// The provider's message id (Twilio MessageSid, Baileys message_id).
    pub provider_sid: String,
    /// Sender, as the provider sent it (`whatsapp:+972…` or digits).
    pub from: String,
    /// Recipient (our number), when known.
    #[serde(default)]
    pub to: Option<String>,
    /// Message text.
    #[serde(default)]
    pub body: String,
    /// Media URLs (Twilio MediaUrl0..N).
    #[serde(default)]
    pub media: Vec<InboundMedia>,
    /// WhatsApp profile name, when sent.
    #[serde(default)]
    pub profile_name: Option<String>,
    /// When the intake received it (RFC 3339).
    pub received_at: String,
}

/// One media attachment of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMedia {
    /// MediaUrl{N}.
    pub url: String,
    /// MediaContentType{N}.
    #[serde(default)]
    pub content_type: Option<String>,
}

impl JobPayload for WhatsAppInbound {
    const KIND: JobKind = JobKind::WhatsAppInbound;
}

/// `/webhook/whatsapp/status`: an outbound message changed status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsAppStatus {
    /// Twilio MessageSid.
    pub message_sid: String,
    /// MessageStatus.
    pub status: String,
    /// ErrorCode, when sent.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// ErrorMessage, when sent.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Our message id, from the StatusCallback query, when present.
    #[serde(default)]
    pub our_id: Option<String>,
    /// When the intake received it (RFC 3339).
    pub received_at: String,
}

impl JobPayload for WhatsAppStatus {
    const KIND: JobKind = JobKind::WhatsAppStatus;
}

/// Send one outbound WhatsApp message (the row already exists in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsAppSend {
    /// Our message id.
    pub message_id: String,
}

impl JobPayload for WhatsAppSend {
    const KIND: JobKind = JobKind::WhatsAppSend;
}

/// A clock tick: the scheduled time it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockTick {
    /// The tick time (RFC 3339, UTC).
    pub tick: String,
}

/// Scheduled reconciliation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockReconcile(pub ClockTick);
impl JobPayload for ClockReconcile {
    const KIND: JobKind = JobKind::ClockReconcile;
}

/// Scheduled health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockHealth(pub ClockTick);
impl JobPayload for ClockHealth {
    const KIND: JobKind = JobKind::ClockHealth;
}

/// Scheduled cleanup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockCleanup(pub ClockTick);
impl JobPayload for ClockCleanup {
    const KIND: JobKind = JobKind::ClockCleanup;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_through_from_str_and_serde() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("call.bogus".parse::<JobKind>().is_err());
        assert_eq!(JobKind::WhatsAppSend.env_suffix(), "WHATSAPP_SEND");
    }

    #[test]
    fn payloads_decode_what_they_encode_and_reject_other_versions() {
        let p = WhatsAppSend {
            message_id: "m1".into(),
        };
        let raw = encode(&p);
        assert_eq!(raw, r#"{"v":1,"data":{"message_id":"m1"}}"#);
        assert_eq!(decode::<WhatsAppSend>(&raw).unwrap(), p);
        let err = decode::<WhatsAppSend>(r#"{"v":9,"data":{}}"#).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        let err = decode::<WhatsAppSend>("not json").unwrap_err();
        assert!(err.to_string().contains("whatsapp.send"), "{err}");
    }
}

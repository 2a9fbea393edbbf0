//! Job kinds and their payloads: the contract between the intake, the clock and the workers.
//!
//! Every job is one serde struct with a stable kind name (`call.started`, `recording.process`, …).
//! The names are used by the queue, `--kind` filters, metrics and the operator API, so they never
//! change; renaming a Rust type must not move a queue (a trap apalis fell into).
//!
//! **One table.** [`crate::for_each_job_kind!`] is the only list of kinds: one line per kind
//! names its variant (also the name of its payload type in this module), its stable name, the
//! workers' handler module that runs it and the rule an operator retry follows
//! ([`crate::retry_effect`]). Everything else is generated from it: [`JobKind`],
//! [`JobKind::ALL`], [`JobKind::as_str`], the list of known kinds in [`UnknownKind`]'s message,
//! each payload's [`JobPayload`] impl, the per-kind retry override (`RETRY_SCHEDULE_<KIND>`,
//! [`JobKind::retry_env`], [`crate::config::RetryOverrides`]), the operator retry's dispatch
//! and the workers' `dispatch`. Adding a kind is its payload struct here, its handler file and
//! one line in the table (docs/ARCHITECTURE.md, "Adding a kind").
//!
//! Payloads carry ids and small fields, never blobs. Each payload is wrapped in an [`Envelope`]
//! with a schema version `v`; a worker that cannot decode a payload (unknown version, missing
//! field, garbage, a `received_at` that is not a time) sends the job to dead with the decode
//! error instead of looping on it.
//!
//! **Natural keys.** Each payload knows the dedupe key its job is enqueued under
//! ([`NaturalKey`], a supertrait of [`JobPayload`], implemented beside each struct): the intake's
//! one enqueue path and the WhatsApp send API read the key from the payload instead of building
//! it. **Times.** `received_at` is a `DateTime<Utc>` from the intake to the handler; in the
//! queue it is the RFC 3339 text it always was ([`timestamp`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod timestamp;

/// The schema version written into every new payload envelope.
pub const PAYLOAD_VERSION: u32 = 1;

/// The table of job kinds, one line per kind: calls `$callback!` with every line.
///
/// A line reads `Variant = "stable.name", handler module, operator_retry rule;` under the kind's
/// doc comment:
///
/// * `Variant` is the [`JobKind`] variant and the payload type of the same name in
///   `moked_jobs::kinds` (which gets its [`JobPayload`] impl from here);
/// * `"stable.name"` is the name stored in the queue; it never changes once deployed;
/// * `handler module` names the file under `workers/src/handlers/` whose
///   `run(ctx, payload, claim)` runs the kind (the workers' `dispatch` is generated from it);
/// * `operator_retry rule` names the function in [`crate::retry_effect`] that decides what an
///   operator retry of such a job does (there is no default: a new kind picks its rule).
///
/// Used by this module (the kinds themselves), [`crate::retry_effect`] and the workers' handler
/// registry; read a callback to see what a kind gets.
#[macro_export]
macro_rules! for_each_job_kind {
    ($callback:ident) => {
        $callback! {
            /// A call reached `/webhook/incoming_call`.
            CallStarted = "call.started", handler call_started, operator_retry requeue;
            /// A call status callback reached `/webhook/call_status`.
            CallStatus = "call.status", handler call_status, operator_retry requeue;
            /// A recording to download, store and transcribe.
            RecordingProcess = "recording.process", handler recording_process, operator_retry requeue;
            /// An inbound WhatsApp message (Twilio or Baileys).
            WhatsAppInbound = "whatsapp.inbound", handler whatsapp_inbound, operator_retry requeue;
            /// A WhatsApp message status callback.
            WhatsAppStatus = "whatsapp.status", handler whatsapp_status, operator_retry requeue;
            /// An outbound WhatsApp message to send.
            WhatsAppSend = "whatsapp.send", handler whatsapp_send, operator_retry send_unless_accepted;
            /// Scheduled reconciliation with the Twilio REST API.
            ClockReconcile = "clock.reconcile", handler clock_reconcile, operator_retry requeue;
            /// Scheduled health check.
            ClockHealth = "clock.health", handler clock_health, operator_retry refuse_past_health_check;
            /// Scheduled cleanup.
            ClockCleanup = "clock.cleanup", handler clock_cleanup, operator_retry requeue;
        }
    };
}

/// Generates [`JobKind`] and everything named after a kind in this module from the table.
macro_rules! define_job_kinds {
    ($(
        $(#[doc = $doc:literal])+
        $kind:ident = $name:literal, handler $handler:ident, operator_retry $rule:ident;
    )+) => {
        /// The stable name of a kind of job.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum JobKind {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $name)]
                $kind,
            )+
        }

        impl JobKind {
            /// Every kind, in the table's order (stats, metrics, docs).
            pub const ALL: [JobKind; [$($name),+].len()] = [$(JobKind::$kind),+];

            /// The stable name (`call.started`, …).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(JobKind::$kind => $name,)+
                }
            }

            /// The env var that overrides this kind's retry schedule
            /// (`RETRY_SCHEDULE_WHATSAPP_SEND`).
            pub const fn retry_env(self) -> &'static str {
                match self {
                    $(JobKind::$kind => {
                        const BYTES: [u8; RETRY_ENV_PREFIX.len() + $name.len()] =
                            setting_name(RETRY_ENV_PREFIX, $name, b'_', true);
                        const NAME: &str = ascii(&BYTES);
                        NAME
                    })+
                }
            }

            /// The flag of [`JobKind::retry_env`] (`retry-schedule-whatsapp-send`, without the
            /// dashes in front).
            pub const fn retry_flag(self) -> &'static str {
                match self {
                    $(JobKind::$kind => {
                        const BYTES: [u8; RETRY_FLAG_PREFIX.len() + $name.len()] =
                            setting_name(RETRY_FLAG_PREFIX, $name, b'-', false);
                        const NAME: &str = ascii(&BYTES);
                        NAME
                    })+
                }
            }
        }

        $(
            impl JobPayload for $kind {
                const KIND: JobKind = JobKind::$kind;
            }
        )+
    };
}

for_each_job_kind!(define_job_kinds);

/// The start of every per-kind retry override's env var.
const RETRY_ENV_PREFIX: &str = "RETRY_SCHEDULE_";
/// The start of every per-kind retry override's flag.
const RETRY_FLAG_PREFIX: &str = "retry-schedule-";

/// `prefix` then `name` with its `.` (and `_`, `-`) as `sep`, upper-cased when `upper`: a
/// kind's setting name, built at compile time so it is a `&'static str` like every other
/// setting's (clap and [`crate::config::ConfigError`] take those).
const fn setting_name<const N: usize>(prefix: &str, name: &str, sep: u8, upper: bool) -> [u8; N] {
    let (prefix, name) = (prefix.as_bytes(), name.as_bytes());
    let mut out = [0u8; N];
    let mut i = 0;
    while i < prefix.len() {
        out[i] = prefix[i];
        i += 1;
    }
    let mut j = 0;
    while j < name.len() {
        out[i + j] = match name[j] {
            b'.' | b'_' | b'-' => sep,
            b if upper => b.to_ascii_uppercase(),
            b => b,
        };
        j += 1;
    }
    out
}

/// The text of a setting name made by [`setting_name`] (always UTF-8: only ASCII bytes of a
/// `&str` were replaced, by ASCII; the check runs at compile time).
const fn ascii(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("a job kind's name is ASCII"),
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every kind's name, comma-separated (the error message of [`UnknownKind`]).
fn known_kinds() -> String {
    JobKind::ALL.map(JobKind::as_str).join(", ")
}

/// A kind name that is not one of [`JobKind::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job kind `{0}` (known: {known})", known = known_kinds())]
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
pub trait JobPayload: NaturalKey + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind this payload is queued as (generated from [`crate::for_each_job_kind!`]).
    const KIND: JobKind;
}

/// The natural key of a payload: the dedupe key its job is enqueued under, so that the same
/// event delivered again inside the dedupe TTL is the same job ([`crate::queue::Dedupe`]).
/// Written beside each payload struct; the keys are stored in the queue, so they never change
/// once deployed.
pub trait NaturalKey {
    /// The dedupe key (`call.started:{CallSid}`, …), or `None` when the payload alone does not
    /// name its event (a clock tick: the clock keys it by its local time).
    fn natural_key(&self) -> Option<String>;
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
    /// When the intake received it (RFC 3339 in the queue, [`timestamp`]).
    #[serde(with = "timestamp")]
    pub received_at: DateTime<Utc>,
}

impl NaturalKey for CallStarted {
    /// `call.started:{CallSid}`.
    fn natural_key(&self) -> Option<String> {
        Some(format!("call.started:{}", self.call_sid))
    }
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
    /// When the intake received it (RFC 3339 in the queue, [`timestamp`]).
    #[serde(with = "timestamp")]
    pub received_at: DateTime<Utc>,
}

impl NaturalKey for CallStatus {
    /// `call.status:{CallSid}:{CallStatus}:{SequenceNumber}` (the last part empty when Twilio
    /// sent no SequenceNumber).
    fn natural_key(&self) -> Option<String> {
        let sequence = self.sequence.map(|n| n.to_string()).unwrap_or_default();
        Some(format!(
            "call.status:{}:{}:{sequence}",
            self.call_sid, self.status
        ))
    }
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
    /// When the intake received it (RFC 3339 in the queue, [`timestamp`]).
    #[serde(with = "timestamp")]
    pub received_at: DateTime<Utc>,
}

impl NaturalKey for RecordingProcess {
    /// `recording:{RecordingSid}`, whichever webhook (the `<Record>` action, the status
    /// callback) or the reconciliation made the job: one job per recording.
    fn natural_key(&self) -> Option<String> {
        Some(format!("recording:{}", self.recording_sid))
    }
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
    /// When the intake received it (RFC 3339 in the queue, [`timestamp`]).
    #[serde(with = "timestamp")]
    pub received_at: DateTime<Utc>,
}

impl NaturalKey for WhatsAppInbound {
    /// `whatsapp.inbound:{MessageSid}` for Twilio (its keys predate other providers),
    /// `whatsapp.inbound:{provider}:{message id}` for any other (`…:baileys:3EB0…`).
    fn natural_key(&self) -> Option<String> {
        Some(match self.provider.as_str() {
            "twilio" => format!("whatsapp.inbound:{}", self.provider_sid),
            provider => format!("whatsapp.inbound:{provider}:{}", self.provider_sid),
        })
    }
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
    /// When the intake received it (RFC 3339 in the queue, [`timestamp`]).
    #[serde(with = "timestamp")]
    pub received_at: DateTime<Utc>,
}

impl NaturalKey for WhatsAppStatus {
    /// `whatsapp.status:{MessageSid}:{MessageStatus}`, whichever provider reported it.
    fn natural_key(&self) -> Option<String> {
        Some(format!(
            "whatsapp.status:{}:{}",
            self.message_sid, self.status
        ))
    }
}

/// Send one outbound WhatsApp message (the row already exists in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatsAppSend {
    /// Our message id.
    pub message_id: String,
}

impl NaturalKey for WhatsAppSend {
    /// `whatsapp.send:{our message id}`: at most one send job per message.
    fn natural_key(&self) -> Option<String> {
        Some(format!("whatsapp.send:{}", self.message_id))
    }
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

/// Scheduled health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockHealth(pub ClockTick);

/// Scheduled cleanup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockCleanup(pub ClockTick);

/// A tick's payload holds its UTC time; the clock keys the job by the tick's local time
/// (`clock:{task}:{local time}`, workers/src/clock.rs), so the payload names no key.
macro_rules! keyed_by_the_clock {
    ($($tick:ty),+) => {
        $(impl NaturalKey for $tick {
            fn natural_key(&self) -> Option<String> {
                None
            }
        })+
    };
}
keyed_by_the_clock!(ClockReconcile, ClockHealth, ClockCleanup);

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
        assert_eq!(
            JobKind::WhatsAppSend.retry_env(),
            "RETRY_SCHEDULE_WHATSAPP_SEND"
        );
    }

    #[test]
    fn an_unknown_kind_is_refused_with_every_known_kind_named() {
        assert_eq!(
            "call.bogus".parse::<JobKind>().unwrap_err().to_string(),
            "unknown job kind `call.bogus` (known: call.started, call.status, recording.process, \
             whatsapp.inbound, whatsapp.status, whatsapp.send, clock.reconcile, clock.health, \
             clock.cleanup)"
        );
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

    fn at(text: &str) -> DateTime<Utc> {
        timestamp::parse(text).expect("a time")
    }

    fn inbound(provider: &str, sid: &str) -> WhatsAppInbound {
        WhatsAppInbound {
            provider: provider.into(),
            provider_sid: sid.into(),
            from: "whatsapp:+972501234567".into(),
            to: None,
            body: String::new(),
            media: Vec::new(),
            profile_name: None,
            received_at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn each_payload_names_the_dedupe_key_its_event_has_always_had() {
        let received_at = at("2026-01-01T00:00:00Z");
        let call_started = CallStarted {
            call_sid: "CA1".into(),
            from: String::new(),
            to: String::new(),
            status: None,
            received_at,
        };
        let status = |sequence| CallStatus {
            call_sid: "CA1".into(),
            status: "completed".into(),
            from: None,
            to: None,
            duration_s: None,
            sequence,
            received_at,
        };
        let recording = RecordingProcess {
            recording_sid: "RE1".into(),
            call_sid: "CA1".into(),
            recording_url: "https://api.twilio.com/r/RE1".into(),
            duration_s: None,
            received_at,
        };
        let message_status = WhatsAppStatus {
            message_sid: "SM1".into(),
            status: "delivered".into(),
            error_code: None,
            error_message: None,
            our_id: Some("m1".into()),
            received_at,
        };
        let send = WhatsAppSend {
            message_id: "0190-abc".into(),
        };
        let tick = ClockTick {
            tick: "2026-01-01T03:00:00Z".into(),
        };
        let keys = [
            call_started.natural_key(),
            status(Some(3)).natural_key(),
            status(None).natural_key(),
            recording.natural_key(),
            inbound("twilio", "SM1").natural_key(),
            inbound("baileys", "3EB0A").natural_key(),
            message_status.natural_key(),
            send.natural_key(),
            ClockReconcile(tick.clone()).natural_key(),
            ClockHealth(tick.clone()).natural_key(),
            ClockCleanup(tick).natural_key(),
        ];
        assert_eq!(
            keys.map(|k| k.unwrap_or_else(|| "(none)".into())),
            [
                "call.started:CA1",
                "call.status:CA1:completed:3",
                "call.status:CA1:completed:",
                "recording:RE1",
                "whatsapp.inbound:SM1",
                "whatsapp.inbound:baileys:3EB0A",
                "whatsapp.status:SM1:delivered",
                "whatsapp.send:0190-abc",
                "(none)",
                "(none)",
                "(none)",
            ]
        );
    }

    #[test]
    fn payloads_queued_by_earlier_versions_decode_with_their_received_at_typed() {
        // As the intake wrote them (milliseconds, `Z`) and as tests and older tools did
        // (`to_rfc3339()`: nanoseconds, `+00:00`; no fraction).
        let intake = r#"{"v":1,"data":{"call_sid":"CA1","from":"+972501234567","to":"+97233334444","status":"ringing","received_at":"2025-11-24T16:00:00.250Z"}}"#;
        let call = decode::<CallStarted>(intake).expect("decodes");
        assert_eq!(call.received_at, at("2025-11-24T16:00:00.250Z"));
        assert_eq!(encode(&call), intake, "written back exactly as it was read");
        let tool = r#"{"v":1,"data":{"provider":"baileys","provider_sid":"3EB0A","from":"9725","received_at":"2025-11-24T18:00:00.250123456+02:00"}}"#;
        let message = decode::<WhatsAppInbound>(tool).expect("decodes");
        assert_eq!(message.received_at, at("2025-11-24T16:00:00.250Z"));
        let plain = r#"{"v":1,"data":{"message_sid":"SM1","status":"read","received_at":"2025-11-24T16:00:00Z"}}"#;
        let status = decode::<WhatsAppStatus>(plain).expect("decodes");
        assert_eq!(status.received_at, at("2025-11-24T16:00:00.000Z"));
        assert!(encode(&status).contains(r#""received_at":"2025-11-24T16:00:00.000Z""#));
    }

    #[test]
    fn a_received_at_that_is_not_a_time_does_not_decode() {
        for bad in [r#""yesterday""#, r#""""#, "1764000000", "null"] {
            let raw = format!(
                r#"{{"v":1,"data":{{"recording_sid":"RE1","call_sid":"CA1","recording_url":"u","received_at":{bad}}}}}"#
            );
            let err = decode::<RecordingProcess>(&raw).expect_err(bad);
            assert!(
                err.to_string().contains("recording.process"),
                "{bad}: {err}"
            );
        }
        let raw = r#"{"v":1,"data":{"recording_sid":"RE1","call_sid":"CA1","recording_url":"u","received_at":"yesterday"}}"#;
        let err = decode::<RecordingProcess>(raw).expect_err("not a time");
        assert!(err.to_string().contains("not an RFC 3339 time"), "{err}");
    }
}

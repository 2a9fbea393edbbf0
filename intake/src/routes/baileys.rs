//! `POST /webhook/whatsapp/baileys`: inbound messages and delivery receipts from the Baileys
//! WhatsApp bridge.
//!
//! The bridge posts JSON with the shared secret in `X-BAILEYS-SECRET` (`BAILEYS_SECRET`),
//! compared in constant time. No secret configured, or a missing or wrong one → 403 (counted
//! against the client IP like a failed Twilio signature). `Content-Type` must be
//! `application/json` (415), the body at most 64 KiB (413) and well-formed (400). Answer: 204.
//!
//! Two bodies, told apart by `type` (docs/BAILEYS.md):
//!
//! * a message (no `type`, or `"message"`: the first bridges had no `type`, so its absence
//!   keeps meaning a message): `{"from", "text", "provider", "message_id", "timestamp"}` →
//!   `whatsapp.inbound` with provider `baileys`, deduplicated by its natural key
//!   `whatsapp.inbound:baileys:{message_id}` (the bridge redelivers on failure);
//! * a receipt (`"receipt"`): `{"message_id", "status", "timestamp", "error"}` for a message
//!   moked sent, `status` one of `sent`, `delivered`, `read`, `failed` → `whatsapp.status`,
//!   built and deduplicated exactly like Twilio's status callback
//!   (`whatsapp.status:{message_id}:{status}`, `messaging::enqueue_status`), so the
//!   store's forward-only rule and the wait for a message id not stored yet apply unchanged.
//!   `timestamp` (Unix seconds, when the bridge saw the receipt) becomes the status time, so a
//!   receipt that waited in the bridge's outbox while moked was down keeps its real
//!   `delivered_at`; a time in the future is taken as now.
//!
//! Any other `type` is a 400: a newer bridge's event this moked does not know is refused
//! rather than stored as a message.

use axum::extract::{FromRequest, Request, State};
use chrono::{DateTime, Utc};
use http::StatusCode;
use moked_jobs::kinds::{WhatsAppInbound, WhatsAppStatus};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::enqueue::enqueue;
use super::messaging::enqueue_status;
use super::note_sid;
use crate::AppState;
use crate::body::{self, JSON};
use crate::error::IntakeError;
use crate::signature::{client_of, refuse};

/// The header carrying the bridge's secret.
pub const SECRET_HEADER: &str = "x-baileys-secret";

/// An authenticated Baileys request body.
#[derive(Debug, Clone)]
pub struct BaileysJson(pub Value);

impl FromRequest<AppState> for BaileysJson {
    type Rejection = IntakeError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let client = client_of(&parts);
        // The secret first: only requests that fail it count against (and are refused by) the
        // unverified limit, so forged traffic from the bridge's address cannot lock it out.
        let given = parts
            .headers
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let authentic = match &state.core.baileys_secret {
            Some(secret) => secret_matches(secret.expose_secret().as_bytes(), given),
            None => false,
        };
        if !authentic {
            return Err(refuse(state, &client, "baileys secret missing or wrong").await);
        }
        if !body::content_type_is(&parts.headers, JSON) {
            return Err(IntakeError::UnsupportedMediaType { expected: JSON });
        }
        let raw = body::read(&parts.headers, body).await?;
        let value = serde_json::from_slice(&raw)
            .map_err(|_| IntakeError::BadRequest("malformed JSON body".into()))?;
        Ok(BaileysJson(value))
    }
}

/// Whether `given` is the configured secret, in time independent of both: the SHA-256 digests
/// of the two are compared in constant time, so neither the length of the secret nor how much
/// of it a guess got right shows in the answer time (`ct_eq` on the raw bytes returns at once
/// when the lengths differ). An empty header never matches.
fn secret_matches(configured: &[u8], given: &[u8]) -> bool {
    !given.is_empty() && digests_equal(configured, given, |a, b| bool::from(a.ct_eq(b)))
}

/// Compares the SHA-256 digests of `a` and `b` with `eq`, which therefore only ever sees two
/// 32-byte inputs (the seam lets the test check that).
fn digests_equal(a: &[u8], b: &[u8], eq: impl Fn(&[u8], &[u8]) -> bool) -> bool {
    eq(Sha256::digest(a).as_slice(), Sha256::digest(b).as_slice())
}

/// `POST /webhook/whatsapp/baileys`: a message or a receipt.
pub async fn inbound(
    State(state): State<AppState>,
    BaileysJson(value): BaileysJson,
) -> Result<StatusCode, IntakeError> {
    match event_of(&value)? {
        BridgeEvent::Message(message) => {
            note_sid(&message.provider_sid);
            enqueue(&state, &message).await?;
        }
        BridgeEvent::Receipt(status) => enqueue_status(&state, &status).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What a bridge posted.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeEvent {
    /// A message that arrived on the paired number.
    Message(WhatsAppInbound),
    /// A status change of a message moked sent through the bridge.
    Receipt(WhatsAppStatus),
}

/// The event of a bridge body, by its `type` (absent or `null`: a message).
pub fn event_of(value: &Value) -> Result<BridgeEvent, IntakeError> {
    if !value.is_object() {
        return Err(IntakeError::BadRequest("expected a JSON object".into()));
    }
    match value.get("type") {
        None | Some(Value::Null) => message_of(value).map(BridgeEvent::Message),
        Some(Value::String(t)) if t == "message" => message_of(value).map(BridgeEvent::Message),
        Some(Value::String(t)) if t == "receipt" => receipt_of(value).map(BridgeEvent::Receipt),
        Some(_) => Err(IntakeError::BadRequest(
            "`type` must be \"message\" or \"receipt\"".into(),
        )),
    }
}

/// A string field, also accepting a number (ids and timestamps arrive both ways).
fn text(value: &Value, name: &str) -> Option<String> {
    match value.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `whatsapp.inbound` payload of a bridge message. `message_id` and `from` are required.
pub fn message_of(value: &Value) -> Result<WhatsAppInbound, IntakeError> {
    if !value.is_object() {
        return Err(IntakeError::BadRequest("expected a JSON object".into()));
    }
    Ok(WhatsAppInbound {
        provider: "baileys".into(),
        provider_sid: text(value, "message_id")
            .ok_or_else(|| IntakeError::missing("message_id"))?,
        from: text(value, "from").ok_or_else(|| IntakeError::missing("from"))?,
        to: None,
        body: match value.get("text") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        media: Vec::new(),
        profile_name: None,
        received_at: Utc::now(),
    })
}

/// The statuses a bridge reports, already in moked's vocabulary (the bridge maps WhatsApp's
/// acks: server → `sent`, device → `delivered`, read or played → `read`, error → `failed`).
pub const RECEIPT_STATUSES: [&str; 4] = ["sent", "delivered", "read", "failed"];

/// The longest `error` kept from a receipt: a reason for an operator, not a document.
const MAX_RECEIPT_ERROR: usize = 500;

/// The `whatsapp.status` payload of a bridge receipt. `message_id` and `status` are required;
/// `error` is kept for `failed` only (it explains the failure and nothing else).
pub fn receipt_of(value: &Value) -> Result<WhatsAppStatus, IntakeError> {
    let message_sid =
        text(value, "message_id").ok_or_else(|| IntakeError::missing("message_id"))?;
    let status = match value.get("status") {
        Some(Value::String(s)) if RECEIPT_STATUSES.contains(&s.as_str()) => s.clone(),
        None | Some(Value::Null) => return Err(IntakeError::missing("status")),
        Some(_) => {
            return Err(IntakeError::BadRequest(format!(
                "`status` must be one of {}",
                RECEIPT_STATUSES.join(", ")
            )));
        }
    };
    let error_message = match value.get("error") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.trim().chars().take(MAX_RECEIPT_ERROR).collect()),
        Some(_) => return Err(IntakeError::BadRequest("`error` must be a string".into())),
    }
    .filter(|e: &String| status == "failed" && !e.is_empty());
    Ok(WhatsAppStatus {
        message_sid,
        status,
        error_code: None,
        error_message,
        our_id: None,
        received_at: receipt_time(value.get("timestamp"), Utc::now())?,
    })
}

/// The status time of a receipt: its `timestamp` (Unix seconds, a number or a string of
/// digits), `now` when absent or in the future (the bridge's clock may run ahead of ours; a
/// status cannot have happened later than we heard of it).
fn receipt_time(
    timestamp: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, IntakeError> {
    let invalid = || IntakeError::BadRequest("`timestamp` must be Unix seconds".into());
    let seconds = match timestamp {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(invalid)?),
        Some(Value::String(s)) => Some(s.trim().parse::<i64>().map_err(|_| invalid())?),
        Some(_) => return Err(invalid()),
    };
    let at = match seconds {
        None => now,
        Some(s) if s < 0 => return Err(invalid()),
        Some(s) => DateTime::from_timestamp(s, 0).ok_or_else(invalid)?.min(now),
    };
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moked_jobs::kinds::timestamp;
    use serde_json::json;

    #[test]
    fn the_secret_is_compared_as_fixed_length_digests_whatever_the_guess() {
        let secret = b"s3cret-of-the-bridge";
        for guess in [
            &b"s"[..],
            b"s3cret",
            b"s3cret-of-the-bridgeX",
            b"wrong-but-same-length",
            secret,
            &[0u8; 300],
        ] {
            let seen = std::cell::RefCell::new(Vec::new());
            digests_equal(secret, guess, |a, b| {
                seen.borrow_mut().push((a.len(), b.len()));
                a == b
            });
            assert_eq!(
                seen.into_inner(),
                vec![(32, 32)],
                "a guess of {} bytes must reach the comparison as two 32-byte digests",
                guess.len()
            );
        }
        assert!(secret_matches(secret, secret));
        assert!(!secret_matches(secret, b"s3cret"));
        assert!(!secret_matches(secret, b"s3cret-of-the-bridgeX"));
        assert!(!secret_matches(secret, b""));
        assert!(!secret_matches(b"", b""), "an empty header never matches");
    }

    #[test]
    fn bridge_messages_need_an_id_and_a_sender() {
        let m = message_of(&json!({
            "from": "972501234567@s.whatsapp.net",
            "text": "שלום",
            "provider": "baileys",
            "message_id": "3EB0ABC",
            "timestamp": 1_764_000_000
        }))
        .expect("valid");
        assert_eq!(
            (
                m.provider.as_str(),
                m.provider_sid.as_str(),
                m.body.as_str()
            ),
            ("baileys", "3EB0ABC", "שלום")
        );
        assert_eq!(
            message_of(&json!({"message_id": 42, "from": "9725"}))
                .expect("valid")
                .provider_sid,
            "42"
        );
        assert_eq!(
            message_of(&json!({"from": "x"})).expect_err("no id"),
            IntakeError::missing("message_id")
        );
        assert_eq!(
            message_of(&json!({"message_id": "m", "from": ""})).expect_err("no from"),
            IntakeError::missing("from")
        );
        assert!(message_of(&json!([1, 2])).is_err());
    }

    #[test]
    fn a_body_without_type_is_a_message_and_a_receipt_is_a_status() {
        let message = json!({"from": "972501234567@s.whatsapp.net", "message_id": "3EB0A"});
        assert!(matches!(event_of(&message), Ok(BridgeEvent::Message(_))));
        let typed = json!({"type": "message", "from": "9725", "message_id": "3EB0A"});
        assert!(matches!(event_of(&typed), Ok(BridgeEvent::Message(_))));
        let receipt = json!({
            "type": "receipt",
            "message_id": "3EB0B",
            "status": "delivered",
            "timestamp": 1_764_000_000
        });
        let Ok(BridgeEvent::Receipt(status)) = event_of(&receipt) else {
            panic!("a receipt: {:?}", event_of(&receipt));
        };
        assert_eq!(
            (status.message_sid.as_str(), status.status.as_str()),
            ("3EB0B", "delivered")
        );
        assert_eq!(
            timestamp::format(&status.received_at),
            "2025-11-24T16:00:00.000Z"
        );
        assert_eq!((status.error_code, status.our_id), (None, None));
        assert_eq!(
            event_of(&json!({"type": "reaction", "message_id": "3EB0C"})),
            Err(IntakeError::BadRequest(
                "`type` must be \"message\" or \"receipt\"".into()
            ))
        );
        assert!(event_of(&json!({"type": 1, "from": "9725", "message_id": "m"})).is_err());
    }

    #[test]
    fn receipts_need_an_id_and_a_known_status_and_keep_an_error_only_when_failed() {
        let receipt = |v: Value| receipt_of(&v);
        assert_eq!(
            receipt(json!({"status": "read"})),
            Err(IntakeError::missing("message_id"))
        );
        assert_eq!(
            receipt(json!({"message_id": "m"})),
            Err(IntakeError::missing("status"))
        );
        for status in [json!("played"), json!("DELIVERED"), json!(3), json!("")] {
            assert_eq!(
                receipt(json!({"message_id": "m", "status": status})),
                Err(IntakeError::BadRequest(
                    "`status` must be one of sent, delivered, read, failed".into()
                )),
                "{status}"
            );
        }
        for status in RECEIPT_STATUSES {
            assert_eq!(
                receipt(json!({"message_id": "m", "status": status}))
                    .expect("known")
                    .status,
                status
            );
        }
        let failed = receipt(json!({"message_id": "m", "status": "failed", "error": " 479 "}));
        assert_eq!(failed.expect("valid").error_message.as_deref(), Some("479"));
        let read = receipt(json!({"message_id": "m", "status": "read", "error": "x"}));
        assert_eq!(read.expect("valid").error_message, None);
        assert!(receipt(json!({"message_id": "m", "status": "failed", "error": 5})).is_err());
    }

    #[test]
    fn a_receipt_time_is_unix_seconds_never_later_than_now() {
        let now = DateTime::from_timestamp(1_764_000_100, 0).expect("time");
        let at = |v: Option<Value>| receipt_time(v.as_ref(), now).map(|t| timestamp::format(&t));
        let seen = "2025-11-24T16:00:00.000Z";
        assert_eq!(at(Some(json!(1_764_000_000))).as_deref(), Ok(seen));
        assert_eq!(at(Some(json!("1764000000"))).as_deref(), Ok(seen));
        let now_text = "2025-11-24T16:01:40.000Z";
        assert_eq!(at(None).as_deref(), Ok(now_text));
        assert_eq!(at(Some(Value::Null)).as_deref(), Ok(now_text));
        assert_eq!(at(Some(json!(1_900_000_000))).as_deref(), Ok(now_text));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("soon"),
            json!(i64::MAX),
            json!([1]),
        ] {
            assert_eq!(
                at(Some(bad.clone())),
                Err(IntakeError::BadRequest(
                    "`timestamp` must be Unix seconds".into()
                )),
                "{bad}"
            );
        }
    }
}

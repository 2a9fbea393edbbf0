//! `POST /webhook/whatsapp/baileys`: inbound messages from the Baileys WhatsApp bridge.
//!
//! The bridge posts JSON `{"from", "text", "provider", "message_id", "timestamp"}` with the
//! shared secret in `X-BAILEYS-SECRET` (`BAILEYS_SECRET`), compared in constant time. No
//! secret configured, or a missing or wrong one → 403 (counted against the client IP like a
//! failed Twilio signature). `Content-Type` must be `application/json` (415), the body at most
//! 64 KiB (413) and well-formed with `message_id` and `from` (400). Answer: 204.
//!
//! Enqueues `whatsapp.inbound` with provider `baileys`, deduplicated by
//! `whatsapp.inbound:baileys:{message_id}` (the bridge redelivers on failure).

use axum::extract::{FromRequest, Request, State};
use http::StatusCode;
use moked_jobs::kinds::WhatsAppInbound;
use moked_jobs::queue::NewJob;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{note_sid, now};
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

/// `POST /webhook/whatsapp/baileys`.
pub async fn inbound(
    State(state): State<AppState>,
    BaileysJson(value): BaileysJson,
) -> Result<StatusCode, IntakeError> {
    let message = message_of(&value)?;
    note_sid(&message.provider_sid);
    let key = format!("whatsapp.inbound:baileys:{}", message.provider_sid);
    state
        .enqueue(NewJob::new(&message).dedupe(key, state.core.dedupe_ttl))
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
        received_at: now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
}

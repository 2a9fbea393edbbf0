//! `/api/whatsapp/…`: send a WhatsApp message, look one up.
//!
//! `POST /api/whatsapp/send` takes `{"to","body"}` (free-form text) or
//! `{"to","content_sid","content_variables"}` (an approved template), optionally
//! `"media_urls"`, and an optional `Idempotency-Key` header. It is a thin translation of
//! [`moked_jobs::whatsapp::send_api::request_send`] — the same validation, storage and `whatsapp.send`
//! job as `moked-worker whatsapp send` — answered:
//!
//! | case | answer |
//! |---|---|
//! | a new message | 202 `{"id","status":"queued"}` |
//! | an `Idempotency-Key` seen before, same message | 200 `{"id","status"}` of the first message (its current status); nothing new is sent |
//! | the same key with a different message | 422 `idempotency_conflict` |
//! | `to` is not a phone number | 400 `invalid_number` |
//! | malformed JSON, unknown field, both or neither of body/content_sid, … | 400 `bad_request` / `invalid_request` |
//! | free text outside the 24-hour window with `WHATSAPP_ENFORCE_WINDOW=true` | 422 `outside_window` |
//! | the queue or store failing | 503 (the same key can be sent again safely) |
//!
//! The body is read as JSON whatever its `Content-Type` (a `curl -d` without `-H` works).
//!
//! `GET /api/whatsapp/messages/{id}` answers one message, inbound or outbound, with its
//! delivery timestamps and the provider's error of a failure.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use moked_jobs::phone::mask_raw;
use moked_jobs::store::whatsapp::messages::{WhatsAppMessage, get_message};
use moked_jobs::whatsapp::send_api::{SendError, SendRequest, SendSettings, request_send};

use super::audit::{self, Actor, Outcome as AuditOutcome};
use super::schema::{self, SendAccepted};
use crate::AppState;
use crate::error::ApiError;

/// The idempotency header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl From<SendError> for ApiError {
    /// The send API's own statuses and codes; store and queue trouble is a logged 503.
    fn from(e: SendError) -> Self {
        match e {
            SendError::Store(store) => store.into(),
            SendError::Queue(queue) => queue.into(),
            other => {
                let status = StatusCode::from_u16(other.http_status())
                    .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                ApiError::new(status, other.code(), other.to_string())
            }
        }
    }
}

/// The request's idempotency key, when it sent one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?
        .trim();
    if key.is_empty() {
        return Err(ApiError::bad_request("Idempotency-Key is empty"));
    }
    Ok(Some(key.to_owned()))
}

/// Queue one WhatsApp message.
#[utoipa::path(
    post,
    path = "/whatsapp/send",
    tag = "whatsapp",
    request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key again returns the first message (200) instead of sending a second one")),
    responses(
        (status = 202, description = "Queued", body = SendAccepted),
        (status = 200, description = "The message this Idempotency-Key already created", body = SendAccepted),
        (status = 400, description = "Bad JSON, not a phone number, body and template both or neither, …", body = schema::ErrorBody),
        (status = 422, description = "Outside the 24-hour window (free text), or the key names a different message", body = schema::ErrorBody),
        (status = 503, description = "Queue or store unavailable; retry with the same key", body = schema::ErrorBody),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut to = None;
    let answer = queue_send(&state, &headers, &body, &mut to).await;
    // Recorded under the masked number: the audit detail is also logged.
    let to = to
        .as_deref()
        .map(mask_raw)
        .unwrap_or_else(|| "?".to_owned());
    match &answer {
        Ok((status, accepted)) => {
            let detail = if *status == StatusCode::ACCEPTED {
                format!("queued to {to}")
            } else {
                format!(
                    "idempotent replay of the message to {to} ({})",
                    accepted.status
                )
            };
            audit::record(
                &state,
                &actor,
                ACTION,
                &accepted.id,
                AuditOutcome::Ok,
                detail,
            )
            .await;
        }
        // 4xx: the request was refused; 5xx: nothing was decided, the caller retries.
        Err(e) if e.status.is_client_error() => {
            let detail = format!("to {to}: {}", e.message);
            audit::record(&state, &actor, ACTION, "-", AuditOutcome::Refused, detail).await;
        }
        Err(_) => {}
    }
    let (status, accepted) = answer?;
    Ok((status, Json(accepted)).into_response())
}

/// The audit action of a send.
const ACTION: &str = "whatsapp.send";

/// Validates, stores and queues the message of `body`; `to` gets the recipient as given once
/// the body parsed (for the audit entry).
async fn queue_send(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    to: &mut Option<String>,
) -> Result<(StatusCode, SendAccepted), ApiError> {
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "body must be a JSON object such as {\"to\":\"+972…\",\"body\":\"…\"}",
        ));
    }
    *to = body.get("to").and_then(|v| v.as_str()).map(str::to_owned);
    let mut request: SendRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("body is not a send request: {e}")))?;
    request.idempotency_key = idempotency_key(headers)?;
    let settings = SendSettings::new(&state.intake.whatsapp, &state.core);
    let out = request_send(&state.db, state.queue.as_ref(), request, &settings).await?;
    let status = if out.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        SendAccepted {
            id: out.message.id,
            status: out.message.status,
        },
    ))
}

/// One WhatsApp message.
#[utoipa::path(
    get,
    path = "/whatsapp/messages/{id}",
    tag = "whatsapp",
    params(("id" = String, Path, description = "Our message id")),
    responses(
        (status = 200, description = "The message", body = WhatsAppMessage),
        (status = 404, description = "No such message", body = schema::ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WhatsAppMessage>, ApiError> {
    let m = get_message(&state.db, id.trim())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no WhatsApp message {id}")))?;
    Ok(Json(m))
}

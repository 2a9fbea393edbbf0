//! The WhatsApp send API: the request side, shared by the operator API (`POST
//! /api/whatsapp/send`) and `moked-worker whatsapp send`. No HTTP here: [`request_send`]
//! validates, stores and enqueues; the `whatsapp.send` worker talks to the provider.
//!
//! [`request_send`] does, in order:
//! 1. **Validate** before anything exists: `to` must be a phone number (E.164, default region
//!    IL: `050-123-4567` → `+972501234567`) else [`SendError::InvalidNumber`]; exactly one of a
//!    free-form `body` (optionally with media) or a template `content_sid` (+ optional
//!    `content_variables`, a JSON object) else [`SendError::Invalid`]; Baileys sends text only.
//! 2. **Idempotency**: a request with an `idempotency_key` already used returns the first
//!    message (and enqueues nothing new); the same key with a different message is
//!    [`SendError::IdempotencyConflict`].
//! 3. **The 24-hour window** (WhatsApp's customer-service window): with
//!    `WHATSAPP_ENFORCE_WINDOW=true` and the Twilio provider, free-form text to a customer whose
//!    last inbound message is older than 24 hours (or who never wrote) is refused with
//!    [`SendError::OutsideWindow`] (the API answers 422); a template always goes. By default the
//!    message is sent and Twilio's 63016 marks it failed with its reason.
//! 4. **Store** the message (`queued`) under the business that owns our sender number (the
//!    default business otherwise — the same rule inbound messages follow, so the window is read
//!    from the same customer row inbound messages move).
//! 5. **Enqueue** `whatsapp.send` under its natural key `whatsapp.send:{id}` (the payload's
//!    [`crate::kinds::NaturalKey`]): at most one job per message while the key is remembered,
//!    and the worker is idempotent beyond that (a message with a provider sid or a final status
//!    is never sent again).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Provider, WhatsAppSettings};
use crate::config::CoreConfig;
use crate::kinds::{NaturalKey, WhatsAppSend};
use crate::phone::{E164, PhoneError};
use crate::queue::{Enqueued, NewJob, Queue, QueueError};
use crate::store::Db;
use crate::store::business::{business_for_called, get_business};
use crate::store::customers::find_customers_by_phone;
use crate::store::error::StoreError;
use crate::store::whatsapp::messages::{self, Media, NewOutbound, WhatsAppMessage};
use crate::store::whatsapp::outbound;
use crate::store::whatsapp::statuses::is_terminal_message_status;

/// WhatsApp's customer-service window: free-form messages only this long after the customer's
/// last message.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Longest free-form text (Twilio refuses longer bodies with 21617).
pub const MAX_BODY_CHARS: usize = 1600;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Most media URLs in one message.
pub const MAX_MEDIA: usize = 10;

/// What the send API needs to know about the deployment, built one way:
/// [`SendSettings::new`].
#[derive(Debug, Clone)]
pub struct SendSettings {
    whatsapp: WhatsAppSettings,
    dedupe_ttl: Duration,
}

impl SendSettings {
    /// The WhatsApp settings, and how long the `whatsapp.send:{id}` dedupe key is remembered
    /// (`DEDUPE_TTL` of `core`).
    pub fn new(whatsapp: &WhatsAppSettings, core: &CoreConfig) -> Self {
        SendSettings {
            whatsapp: whatsapp.clone(),
            dedupe_ttl: core.dedupe_ttl,
        }
    }
}

/// A send request, as the CLI builds it or the operator API receives it: the JSON body of
/// `POST /api/whatsapp/send` (`SendBody`) is exactly the fields below that serde reads —
/// free-form text (`body`, inside the 24-hour window) or an approved template (`content_sid` +
/// `content_variables`); any other field is refused. The idempotency key comes from the
/// `Idempotency-Key` header and the business from moked's own numbers, never from the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        as = SendBody,
        examples(
            json!({"to": "+972521234567", "body": "שלום דנה, התור שלך מחר ב־10:00"}),
            json!({
                "to": "052-123-4567",
                "content_sid": "HX0123456789abcdef0123456789abcdef",
                "content_variables": {"1": "דנה", "2": "10:00"}
            })
        )
    )
)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Recipient in any common form (`050-123-4567`, `+972501234567`, `whatsapp:+972…`).
    #[cfg_attr(feature = "openapi", schema(example = "+972521234567"))]
    pub to: String,
    /// Free-form text (inside the 24-hour window).
    #[serde(default)]
    pub body: Option<String>,
    /// Template (Twilio Content API `HX…`), instead of `body`.
    #[serde(default)]
    pub content_sid: Option<String>,
    /// Template variables: an object such as `{"1":"Dana"}`, or a string holding one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub content_variables: Option<Value>,
    /// Public http(s) media URLs (free-form messages only).
    #[serde(default)]
    pub media_urls: Vec<String>,
    /// The caller's idempotency key: the same key returns the first message.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    /// The business sending (default: the one owning our sender number).
    #[serde(skip)]
    pub business_id: Option<i64>,
}

/// What a send request did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outbound {
    /// The message (our id, status `queued` until the worker sends it).
    pub message: WhatsAppMessage,
    /// False when an idempotency key returned an existing message.
    pub created: bool,
    /// The `whatsapp.send` job, when one exists or was created by this call.
    pub job_id: Option<String>,
}

/// Why a send request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// `to` is not a phone number (400).
    #[error("invalid recipient: {0}")]
    InvalidNumber(#[from] PhoneError),
    /// The request is malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// Free text outside the 24-hour window with `WHATSAPP_ENFORCE_WINDOW=true` (422).
    #[error(
        "outside the 24-hour WhatsApp window ({}): free-form text is not allowed, send an approved template (content_sid)",
        match .last_inbound_at {
            Some(t) => format!("the customer last wrote at {}", t.to_rfc3339()),
            None => "the customer never wrote".to_owned(),
        }
    )]
    OutsideWindow {
        /// The customer's last inbound message, if any.
        last_inbound_at: Option<DateTime<Utc>>,
    },
    /// The idempotency key already names a different message (422).
    #[error("idempotency key already used for a different message ({0})")]
    IdempotencyConflict(String),
    /// The store failed (500).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The queue failed (503).
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl SendError {
    /// The HTTP status the operator API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            SendError::InvalidNumber(_) | SendError::Invalid(_) => 400,
            SendError::OutsideWindow { .. } | SendError::IdempotencyConflict(_) => 422,
            SendError::Store(_) => 500,
            SendError::Queue(_) => 503,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::InvalidNumber(_) => "invalid_number",
            SendError::Invalid(_) => "invalid_request",
            SendError::OutsideWindow { .. } => "outside_window",
            SendError::IdempotencyConflict(_) => "idempotency_conflict",
            SendError::Store(_) => "store_unavailable",
            SendError::Queue(_) => "queue_unavailable",
        }
    }
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
struct Checked {
    to: E164,
    body: Option<String>,
    content_sid: Option<String>,
    content_variables: Option<Value>,
    media: Vec<String>,
    idempotency_key: Option<String>,
    business_id: Option<i64>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The template variables as a JSON object of strings (numbers and booleans are written as
/// text; nested values are refused).
fn content_variables(value: Value) -> Result<Value, SendError> {
    let value = match value {
        Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| SendError::Invalid(format!("content_variables is not JSON: {e}")))?,
        other => other,
    };
    let Value::Object(map) = value else {
        return Err(SendError::Invalid(
            "content_variables must be a JSON object such as {\"1\":\"Dana\"}".into(),
        ));
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(SendError::Invalid(format!(
                    "content_variables.{k} must be text"
                )));
            }
        };
        out.insert(k, Value::String(text));
    }
    Ok(Value::Object(out))
}

/// Step 1: everything that can be checked without the store.
fn check(req: SendRequest, provider: Provider) -> Result<Checked, SendError> {
    let to = E164::parse(&req.to)?;
    let body = req.body.filter(|b| !b.trim().is_empty());
    let content_sid = non_empty(req.content_sid);
    let media: Vec<String> = req
        .media_urls
        .into_iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let idempotency_key = non_empty(req.idempotency_key);
    if idempotency_key
        .as_ref()
        .is_some_and(|key| key.chars().count() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(SendError::Invalid(format!(
            "idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    match (&body, &content_sid) {
        (Some(_), Some(_)) => {
            return Err(SendError::Invalid(
                "give either body (free-form text) or content_sid (a template), not both".into(),
            ));
        }
        (None, None) if media.is_empty() => {
            return Err(SendError::Invalid(
                "give body (free-form text) or content_sid (a template)".into(),
            ));
        }
        _ => {}
    }
    if content_sid.is_some() && !media.is_empty() {
        return Err(SendError::Invalid(
            "media cannot be sent with a template (Twilio 63030)".into(),
        ));
    }
    if content_sid.is_none() && req.content_variables.is_some() {
        return Err(SendError::Invalid(
            "content_variables needs a content_sid".into(),
        ));
    }
    if body
        .as_ref()
        .is_some_and(|b| b.chars().count() > MAX_BODY_CHARS)
    {
        return Err(SendError::Invalid(format!(
            "body is longer than {MAX_BODY_CHARS} characters"
        )));
    }
    if media.len() > MAX_MEDIA {
        return Err(SendError::Invalid(format!(
            "at most {MAX_MEDIA} media URLs"
        )));
    }
    for m in &media {
        let ok = url::Url::parse(m)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(SendError::Invalid(
                "media_urls must be public http(s) URLs".into(),
            ));
        }
    }
    if provider == Provider::Baileys && (content_sid.is_some() || !media.is_empty()) {
        return Err(SendError::Invalid(
            "the Baileys bridge sends text only (no templates, no media)".into(),
        ));
    }
    if provider == Provider::Baileys && body.is_none() {
        return Err(SendError::Invalid("the Baileys bridge needs a body".into()));
    }
    let content_variables = match (content_sid.is_some(), req.content_variables) {
        (true, Some(v)) if !v.is_null() => Some(content_variables(v)?),
        _ => None,
    };
    Ok(Checked {
        to,
        body,
        content_sid,
        content_variables,
        media,
        idempotency_key,
        business_id: req.business_id,
    })
}

/// Whether a stored message is the one `checked` describes (same key, same message).
fn same_message(stored: &WhatsAppMessage, checked: &Checked) -> bool {
    let stored_vars: Option<Value> = stored
        .content_variables
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let stored_media: Vec<&str> = stored.media.iter().map(|m| m.url.as_str()).collect();
    let media: Vec<&str> = checked.media.iter().map(String::as_str).collect();
    stored.to.as_deref() == Some(checked.to.as_str())
        && stored.body == checked.body
        && stored.content_sid == checked.content_sid
        && stored_vars == checked.content_variables
        && stored_media == media
}

/// Enqueues the send job of `message` unless it needs none (already sent or final).
async fn ensure_job(
    queue: &dyn Queue,
    message: &WhatsAppMessage,
    ttl: Duration,
) -> Result<Option<Enqueued>, QueueError> {
    if message.provider_sid.is_some() || is_terminal_message_status(&message.status) {
        return Ok(None);
    }
    let send = WhatsAppSend {
        message_id: message.id.clone(),
    };
    let mut job = NewJob::new(&send);
    if let Some(key) = send.natural_key() {
        job = job.dedupe(key, ttl);
    }
    queue.enqueue(job).await.map(Some)
}

/// Returns the message an idempotency key already names (checked against the request).
async fn existing_for_key(
    db: &Db,
    key: &str,
    checked: &Checked,
) -> Result<Option<WhatsAppMessage>, SendError> {
    let Some(id) = outbound::message_id_for_key(db, key).await? else {
        return Ok(None);
    };
    let Some(message) = messages::get_message(db, &id).await? else {
        return Ok(None);
    };
    if !same_message(&message, checked) {
        return Err(SendError::IdempotencyConflict(format!(
            "message {}",
            message.id
        )));
    }
    Ok(Some(message))
}

/// Validates, stores and enqueues one outbound WhatsApp message; see the module doc.
pub async fn request_send(
    db: &Db,
    queue: &dyn Queue,
    req: SendRequest,
    settings: &SendSettings,
) -> Result<Outbound, SendError> {
    let checked = check(req, settings.whatsapp.provider)?;
    if let Some(key) = &checked.idempotency_key
        && let Some(message) = existing_for_key(db, key, &checked).await?
    {
        let job = ensure_job(queue, &message, settings.dedupe_ttl).await?;
        return Ok(Outbound {
            message,
            created: false,
            job_id: job.map(|j| j.id().to_owned()),
        });
    }
    let business = match settings.business_for(db, checked.business_id).await? {
        Some(b) => b,
        None => {
            return Err(SendError::Invalid("unknown business_id".into()));
        }
    };
    if settings.whatsapp.enforce_window
        && settings.whatsapp.provider == Provider::Twilio
        && checked.content_sid.is_none()
    {
        let last = last_inbound_at(db, business, &checked.to).await?;
        let open = last.is_some_and(|t| {
            Utc::now().signed_duration_since(t)
                < chrono::Duration::from_std(WINDOW).unwrap_or(chrono::Duration::MAX)
        });
        if !open {
            return Err(SendError::OutsideWindow {
                last_inbound_at: last,
            });
        }
    }
    let new = NewOutbound {
        id: messages::new_message_id(),
        provider: settings.whatsapp.provider.as_str().to_owned(),
        to: checked.to.clone(),
        from: settings
            .whatsapp
            .sender
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        body: checked.body.clone(),
        media: checked
            .media
            .iter()
            .map(|url| Media {
                url: url.clone(),
                content_type: None,
                location: None,
            })
            .collect(),
        content_sid: checked.content_sid.clone(),
        content_variables: checked.content_variables.as_ref().map(Value::to_string),
        idempotency_key: checked.idempotency_key.clone(),
        business_id: Some(business),
    };
    let stored = messages::create_outbound(db, &new).await?;
    if !stored.created && !same_message(&stored.message, &checked) {
        // A concurrent request took the key first with another message.
        return Err(SendError::IdempotencyConflict(format!(
            "message {}",
            stored.message.id
        )));
    }
    let job = ensure_job(queue, &stored.message, settings.dedupe_ttl).await?;
    tracing::info!(
        message_id = %stored.message.id,
        to = %checked.to.masked(),
        provider = %settings.whatsapp.provider,
        template = checked.content_sid.is_some(),
        created = stored.created,
        "whatsapp message requested"
    );
    Ok(Outbound {
        message: stored.message,
        created: stored.created,
        job_id: job.map(|j| j.id().to_owned()),
    })
}

impl SendSettings {
    /// The business the message is sent for: the one asked for (`None` when it does not exist),
    /// else the one owning our sender number, else the default business.
    async fn business_for(
        &self,
        db: &Db,
        requested: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        match requested {
            Some(id) => Ok(get_business(db, id).await?.map(|b| b.id)),
            None => Ok(Some(
                business_for_called(db, self.whatsapp.sender.as_ref())
                    .await?
                    .id,
            )),
        }
    }
}

/// The last inbound message of `to` as a customer of `business`.
async fn last_inbound_at(
    db: &Db,
    business: i64,
    to: &E164,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(find_customers_by_phone(db, to)
        .await?
        .into_iter()
        .find(|c| c.business_id == business)
        .and_then(|c| c.last_inbound_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(to: &str, body: Option<&str>) -> SendRequest {
        SendRequest {
            to: to.into(),
            body: body.map(str::to_owned),
            ..SendRequest::default()
        }
    }

    #[test]
    fn numbers_normalise_to_e164_and_garbage_is_refused() {
        let c = check(req("050-123-4567", Some("hi")), Provider::Twilio).unwrap();
        assert_eq!(c.to.as_str(), "+972501234567");
        let c = check(req("whatsapp:+972501234567", Some("hi")), Provider::Twilio).unwrap();
        assert_eq!(c.to.as_str(), "+972501234567");
        let e = check(req("hello", Some("hi")), Provider::Twilio).unwrap_err();
        assert!(matches!(e, SendError::InvalidNumber(_)), "{e:?}");
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn body_and_template_are_exclusive_and_variables_must_be_an_object() {
        let mut both = req("0521234567", Some("hi"));
        both.content_sid = Some("HX123".into());
        assert!(matches!(
            check(both, Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
        assert!(matches!(
            check(req("0521234567", None), Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
        let mut template = req("0521234567", None);
        template.content_sid = Some("HXaaaa".into());
        template.content_variables = Some(Value::String(r#"{"1":"Dana","2":3}"#.into()));
        let c = check(template.clone(), Provider::Twilio).unwrap();
        assert_eq!(
            c.content_variables.unwrap().to_string(),
            r#"{"1":"Dana","2":"3"}"#
        );
        template.content_variables = Some(Value::String("[1,2]".into()));
        assert!(matches!(
            check(template.clone(), Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
        assert!(matches!(
            check(template, Provider::Baileys),
            Err(SendError::Invalid(_))
        ));
        let mut vars_alone = req("0521234567", Some("hi"));
        vars_alone.content_variables = Some(serde_json::json!({"1": "x"}));
        assert!(matches!(
            check(vars_alone, Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
    }

    #[test]
    fn media_must_be_web_urls_and_never_ride_with_a_template() {
        let mut m = req("0521234567", None);
        m.media_urls = vec!["https://example.com/a.jpg".into()];
        assert!(check(m.clone(), Provider::Twilio).is_ok());
        m.media_urls = vec!["file:///etc/passwd".into()];
        assert!(matches!(
            check(m.clone(), Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
        m.media_urls = vec!["https://example.com/a.jpg".into()];
        m.content_sid = Some("HXaaaa".into());
        assert!(matches!(
            check(m, Provider::Twilio),
            Err(SendError::Invalid(_))
        ));
    }

    #[test]
    fn refusals_map_to_their_http_statuses() {
        assert_eq!(
            SendError::OutsideWindow {
                last_inbound_at: None
            }
            .http_status(),
            422
        );
        let text = SendError::OutsideWindow {
            last_inbound_at: None,
        }
        .to_string();
        assert!(text.contains("template"), "{text}");
        assert_eq!(
            SendError::IdempotencyConflict("m".into()).http_status(),
            422
        );
        assert_eq!(SendError::Invalid("x".into()).code(), "invalid_request");
    }
}

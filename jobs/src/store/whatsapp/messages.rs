//! WhatsApp message rows: inbound once per provider sid, outbound once per idempotency key.
//!
//! **Inbound.** A message is stored once per provider message id (`provider_sid UNIQUE`,
//! `INSERT … ON CONFLICT DO NOTHING`), linked to the customer of the sender's number (none when
//! the number does not parse), its media list kept as JSON text. Every delivery, first or
//! repeated, moves the customer's `last_inbound_at` forward (never back), so a retry after a
//! half-done attempt completes the work.
//!
//! **Outbound.** [`create_outbound`] inserts our row (our id, status `queued`) once per
//! `idempotency_key` (`UNIQUE`): the same key again returns the first row. When the provider
//! accepts the message, the send path calls [`attach_provider_sid`] with the provider's sid and
//! the status of its answer (Twilio sends no callback for that initial status).
//!
//! How a row's status moves after that — only forward, every callback kept, a callback that
//! beats the send result — is [`super::statuses`].
//!
//! [`attach_provider_sid`]: super::statuses::attach_provider_sid

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::phone::E164;
use crate::store::business::{business_for_called, default_business};
use crate::store::customers::{Number, touch_last_inbound, upsert_customer};
use crate::store::error::StoreError;
use crate::store::{Db, from_ms, now_ms, returned, to_ms};

/// The status of a new outbound message.
pub const OUTBOUND_INITIAL_STATUS: &str = "queued";

/// The status of an inbound message.
pub const INBOUND_STATUS: &str = "received";

const MESSAGE_COLUMNS: &str = "id, business_id, customer_id, provider, provider_sid, direction, \
     to_phone, from_phone, body, content_sid, content_variables, media, status, error_code, \
     error_message, idempotency_key, created_at, updated_at, sent_at, delivered_at, read_at";

/// One media attachment, as stored in the `media` JSON list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Where the provider serves it (Twilio MediaUrl{N}).
    pub url: String,
    /// Its content type, when known.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Our stored copy (object-store key), once fetched.
    #[serde(default)]
    pub location: Option<String>,
}

/// A WhatsApp message, inbound or outbound. Serialises as the operator API shows it
/// (`MessageView`): the row links, the template, the attachments, the caller's idempotency key
/// and the last change are not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = MessageView))]
#[serde(deny_unknown_fields)]
pub struct WhatsAppMessage {
    /// Our id (UUIDv7).
    pub id: String,
    /// The business, when linked.
    #[serde(skip_serializing)]
    pub business_id: Option<i64>,
    /// The customer, when linked (never for a number that does not parse).
    #[serde(skip_serializing)]
    pub customer_id: Option<i64>,
    /// `twilio` or `baileys`.
    pub provider: String,
    /// The provider's message id, once known.
    pub provider_sid: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Recipient, when known.
    pub to: Option<String>,
    /// Sender, when known.
    pub from: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// Template (Twilio ContentSid).
    #[serde(skip_serializing)]
    pub content_sid: Option<String>,
    /// Template variables (JSON text).
    #[serde(skip_serializing)]
    pub content_variables: Option<String>,
    /// Attachments.
    #[serde(skip_serializing)]
    pub media: Vec<Media>,
    /// Status (highest rank seen for outbound; `received` for inbound): `queued`, `sending`,
    /// `sent`, `delivered`, `read`, `failed`, `undelivered`, `received`, …
    pub status: String,
    /// Provider error code of a failure (e.g. 63016: outside the 24-hour window).
    pub error_code: Option<i64>,
    /// Provider error message of a failure.
    pub error_message: Option<String>,
    /// The caller's idempotency key, for outbound messages created with one.
    #[serde(skip_serializing)]
    pub idempotency_key: Option<String>,
    /// When the row was created (for inbound: received).
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(skip_serializing)]
    pub updated_at: DateTime<Utc>,
    /// When it reached `sent` (or later).
    pub sent_at: Option<DateTime<Utc>>,
    /// When it reached `delivered` (or `read`).
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it reached `read`.
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    business_id: Option<i64>,
    customer_id: Option<i64>,
    provider: String,
    provider_sid: Option<String>,
    direction: String,
    to_phone: Option<String>,
    from_phone: Option<String>,
    body: Option<String>,
    content_sid: Option<String>,
    content_variables: Option<String>,
    media: Option<String>,
    status: String,
    error_code: Option<i64>,
    error_message: Option<String>,
    idempotency_key: Option<String>,
    created_at: i64,
    updated_at: i64,
    sent_at: Option<i64>,
    delivered_at: Option<i64>,
    read_at: Option<i64>,
}

impl TryFrom<MessageRow> for WhatsAppMessage {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        let media = match r.media.as_deref() {
            None | Some("") => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                StoreError::Invalid(format!("message {} has a broken media list: {e}", r.id))
            })?,
        };
        Ok(WhatsAppMessage {
            id: r.id,
            business_id: r.business_id,
            customer_id: r.customer_id,
            provider: r.provider,
            provider_sid: r.provider_sid,
            direction: r.direction,
            to: r.to_phone,
            from: r.from_phone,
            body: r.body,
            content_sid: r.content_sid,
            content_variables: r.content_variables,
            media,
            status: r.status,
            error_code: r.error_code,
            error_message: r.error_message,
            idempotency_key: r.idempotency_key,
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
            sent_at: r.sent_at.map(from_ms),
            delivered_at: r.delivered_at.map(from_ms),
            read_at: r.read_at.map(from_ms),
        })
    }
}

/// A new message id (UUIDv7: sortable by creation time).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn media_json(media: &[Media]) -> Result<Option<String>, StoreError> {
    if media.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(media)
        .map(Some)
        .map_err(|e| StoreError::Invalid(format!("media list does not serialise: {e}")))
}

async fn message_where(
    db: &Db,
    column: &str,
    value: &str,
) -> Result<Option<WhatsAppMessage>, StoreError> {
    sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM whatsapp_message WHERE {column} = $1"
    )))
    .bind(value)
    .fetch_optional(db.pool())
    .await?
    .map(WhatsAppMessage::try_from)
    .transpose()
}

/// The message with our id.
pub async fn get_message(db: &Db, id: &str) -> Result<Option<WhatsAppMessage>, StoreError> {
    message_where(db, "id", id).await
}

/// The message with this provider sid (Twilio MessageSid, Baileys message id).
pub async fn get_message_by_provider_sid(
    db: &Db,
    provider_sid: &str,
) -> Result<Option<WhatsAppMessage>, StoreError> {
    message_where(db, "provider_sid", provider_sid).await
}

/// An inbound message as the provider sent it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// `twilio` or `baileys`.
    pub provider: String,
    /// The provider's message id (the dedupe key).
    pub provider_sid: String,
    /// Sender.
    pub from: Number,
    /// Our number, when the provider said (selects the business).
    pub to: Option<Number>,
    /// Text.
    pub body: String,
    /// Attachments.
    pub media: Vec<Media>,
    /// WhatsApp profile name (fills an empty customer name).
    pub profile_name: Option<String>,
    /// When the intake received it.
    pub at: DateTime<Utc>,
}

/// The stored message and whether this call created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The message.
    pub message: WhatsAppMessage,
    /// False when it already existed (redelivery, same idempotency key).
    pub created: bool,
}

/// Stores an inbound message once per provider sid, linked to the business of the number it was
/// sent to and the customer of the sender (when the sender parses), and moves the customer's
/// `last_inbound_at` forward. Idempotent: a repeat returns the first row and still moves
/// `last_inbound_at` (a no-op unless the first attempt stopped half-way).
pub async fn record_inbound(db: &Db, inbound: &Inbound) -> Result<Stored, StoreError> {
    if inbound.provider_sid.trim().is_empty() {
        return Err(StoreError::Invalid(
            "inbound message without a provider id".into(),
        ));
    }
    let business =
        business_for_called(db, inbound.to.as_ref().and_then(|n| n.e164.as_ref())).await?;
    let customer = match &inbound.from.e164 {
        Some(phone) => {
            Some(upsert_customer(db, business.id, phone, inbound.profile_name.as_deref()).await?)
        }
        None => None,
    };
    let at = to_ms(inbound.at);
    let inserted = sqlx::query(
        "INSERT INTO whatsapp_message (id, business_id, customer_id, provider, provider_sid, \
             direction, to_phone, from_phone, body, media, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'inbound', $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (provider_sid) DO NOTHING",
    )
    .bind(new_message_id())
    .bind(business.id)
    .bind(customer.as_ref().map(|c| c.id))
    .bind(inbound.provider.as_str())
    .bind(inbound.provider_sid.as_str())
    .bind(inbound.to.as_ref().and_then(Number::stored))
    .bind(inbound.from.stored())
    .bind(inbound.body.as_str())
    .bind(media_json(&inbound.media)?)
    .bind(INBOUND_STATUS)
    .bind(at)
    .execute(db.pool())
    .await?
    .rows_affected();
    let message = get_message_by_provider_sid(db, &inbound.provider_sid)
        .await?
        .ok_or(StoreError::NotFound)?;
    if message.direction != "inbound" {
        return Err(StoreError::Invalid(format!(
            "provider id of inbound message belongs to outbound message {}",
            message.id
        )));
    }
    if let Some(customer_id) = message.customer_id {
        touch_last_inbound(db, customer_id, inbound.at).await?;
    }
    Ok(Stored {
        message,
        created: inserted > 0,
    })
}

/// An outbound message to create (before it is sent).
#[derive(Debug, Clone)]
pub struct NewOutbound {
    /// Our id ([`new_message_id`]).
    pub id: String,
    /// `twilio` or `baileys`.
    pub provider: String,
    /// Recipient.
    pub to: E164,
    /// Our sending number, when chosen.
    pub from: Option<String>,
    /// Free-form text (inside the 24-hour window).
    pub body: Option<String>,
    /// Attachments (free-form only).
    pub media: Vec<Media>,
    /// Template (Twilio ContentSid); never together with body or media.
    pub content_sid: Option<String>,
    /// Template variables, JSON text.
    pub content_variables: Option<String>,
    /// The caller's idempotency key: the same key returns the first message.
    pub idempotency_key: Option<String>,
    /// The business sending; the default business when `None`.
    pub business_id: Option<i64>,
}

/// Creates an outbound message (`queued`), linked to the recipient as a customer of the business.
/// The same idempotency key (or the same id) returns the first row with `created: false`.
pub async fn create_outbound(db: &Db, new: &NewOutbound) -> Result<Stored, StoreError> {
    let has_text = new.body.as_deref().is_some_and(|b| !b.is_empty()) || !new.media.is_empty();
    match (&new.content_sid, has_text) {
        (Some(_), true) => {
            return Err(StoreError::Invalid(
                "a template (content_sid) cannot carry a body or media".into(),
            ));
        }
        (None, false) => {
            return Err(StoreError::Invalid(
                "a message needs a body, media or a template (content_sid)".into(),
            ));
        }
        _ => {}
    }
    let business_id = match new.business_id {
        Some(id) => id,
        None => default_business(db).await?.id,
    };
    let customer = upsert_customer(db, business_id, &new.to, None).await?;
    let now = now_ms();
    // No conflict target: a repeated id or idempotency key both mean "already created".
    let inserted = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO whatsapp_message (id, business_id, customer_id, provider, direction, \
             to_phone, from_phone, body, content_sid, content_variables, media, status, \
             idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'outbound', $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         ON CONFLICT DO NOTHING RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(new.id.as_str())
    .bind(business_id)
    .bind(customer.id)
    .bind(new.provider.as_str())
    .bind(new.to.as_str())
    .bind(new.from.as_deref())
    .bind(new.body.as_deref())
    .bind(new.content_sid.as_deref())
    .bind(new.content_variables.as_deref())
    .bind(media_json(&new.media)?)
    .bind(OUTBOUND_INITIAL_STATUS)
    .bind(new.idempotency_key.as_deref())
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    if let Some(row) = returned(inserted) {
        return Ok(Stored {
            message: row.try_into()?,
            created: true,
        });
    }
    let existing = match &new.idempotency_key {
        Some(key) => message_where(db, "idempotency_key", key).await?,
        None => None,
    };
    let existing = match existing {
        Some(m) => Some(m),
        None => get_message(db, &new.id).await?,
    };
    existing
        .map(|message| Stored {
            message,
            created: false,
        })
        .ok_or_else(|| StoreError::Invalid("message conflicts with an existing one".into()))
}

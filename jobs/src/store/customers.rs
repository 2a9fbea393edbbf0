//! Customers: the people who call and write, one row per (business, E.164 phone).
//!
//! Invariants:
//! * **Unique per business.** `UNIQUE (business_id, phone)`; [`upsert_customer`] is one
//!   `INSERT … ON CONFLICT DO UPDATE … RETURNING`, so concurrent workers seeing the same caller
//!   get the same row. Phones are always E.164 ([`E164`]); a number that does not parse never
//!   becomes a customer (the call or message keeps the raw text instead).
//! * **Names are not overwritten.** A WhatsApp profile name fills an empty name only, so a name
//!   an operator typed is not replaced by whatever the customer calls themselves today.
//! * **`last_inbound_at` only moves forward.** It opens WhatsApp's 24-hour customer-service
//!   window, so a redelivered or late inbound message must not pull it back: the update is
//!   conditional (`WHERE last_inbound_at IS NULL OR last_inbound_at < $at`).
//!
//! The customer timeline ([`customer_timeline`]) merges calls and WhatsApp messages of every
//! customer row with that phone (a person can be a customer of several businesses), newest
//! first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use super::error::StoreError;
use super::{Db, from_ms, now_ms, returned, to_ms};
use crate::phone::E164;

/// A customer of one business. Serialises as the operator API shows the caller of a call
/// (`CustomerRef`): id, phone and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CustomerRef))]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Row id.
    pub id: i64,
    /// The business they are a customer of.
    #[serde(skip_serializing)]
    pub business_id: i64,
    /// E.164 phone (`GET /api/customers/{phone}` has the timeline).
    pub phone: String,
    /// Name, when known.
    pub name: Option<String>,
    /// Last inbound WhatsApp message (opens the 24-hour window).
    #[serde(skip_serializing)]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When the row was created.
    #[serde(skip_serializing)]
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: i64,
    business_id: i64,
    phone: String,
    name: Option<String>,
    last_inbound_at: Option<i64>,
    created_at: i64,
}

impl From<CustomerRow> for Customer {
    fn from(r: CustomerRow) -> Self {
        Customer {
            id: r.id,
            business_id: r.business_id,
            phone: r.phone,
            name: r.name,
            last_inbound_at: r.last_inbound_at.map(from_ms),
            created_at: from_ms(r.created_at),
        }
    }
}

const CUSTOMER_COLUMNS: &str = "id, business_id, phone, name, last_inbound_at, created_at";

/// The customer (business, phone), created when missing. `name` fills an empty name only.
pub async fn upsert_customer(
    db: &Db,
    business_id: i64,
    phone: &E164,
    name: Option<&str>,
) -> Result<Customer, StoreError> {
    upsert_customer_on(&mut *db.pool().acquire().await?, business_id, phone, name).await
}

/// [`upsert_customer`] on one connection (or inside a transaction).
pub(crate) async fn upsert_customer_on(
    conn: &mut AnyConnection,
    business_id: i64,
    phone: &E164,
    name: Option<&str>,
) -> Result<Customer, StoreError> {
    // DO UPDATE (not DO NOTHING) so RETURNING yields the row on both paths.
    let row = sqlx::query_as::<_, CustomerRow>(
        "INSERT INTO customer (business_id, phone, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (business_id, phone) DO UPDATE SET name = COALESCE(customer.name, excluded.name) \
         RETURNING id, business_id, phone, name, last_inbound_at, created_at",
    )
    .bind(business_id)
    .bind(phone.as_str())
    .bind(name.filter(|n| !n.trim().is_empty()))
    .bind(now_ms())
    .fetch_all(conn)
    .await?;
    Ok(returned(row).ok_or(sqlx::Error::RowNotFound)?.into())
}

/// The customer with this id.
pub async fn get_customer(db: &Db, id: i64) -> Result<Option<Customer>, StoreError> {
    Ok(
        sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customer WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .map(Customer::from),
    )
}

/// Every customer row with this phone (one per business), oldest first.
pub async fn find_customers_by_phone(db: &Db, phone: &E164) -> Result<Vec<Customer>, StoreError> {
    Ok(
        sqlx::query_as::<_, CustomerRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customer WHERE phone = $1 ORDER BY id"
        )))
        .bind(phone.as_str())
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(Customer::from)
        .collect(),
    )
}

/// Records an inbound message at `at`: `last_inbound_at` moves forward, never back.
/// Returns whether it moved.
pub async fn touch_last_inbound(
    db: &Db,
    customer_id: i64,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let at = to_ms(at);
    let moved = sqlx::query(
        "UPDATE customer SET last_inbound_at = $2 \
         WHERE id = $1 AND (last_inbound_at IS NULL OR last_inbound_at < $2)",
    )
    .bind(customer_id)
    .bind(at)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(moved > 0)
}

/// A phone number from a webhook: parsed when it could be, else only the raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// As received.
    pub raw: String,
    /// E.164, when it parsed.
    pub e164: Option<E164>,
}

impl Number {
    /// Keeps `raw` and parses it with [`E164::parse`]; a number that does not parse is kept raw.
    pub fn parse(raw: &str) -> Number {
        Number {
            raw: raw.to_owned(),
            e164: E164::parse(raw).ok(),
        }
    }

    /// The masked form for logs (never the number itself).
    pub fn masked(&self) -> String {
        match &self.e164 {
            Some(n) => n.masked(),
            None => crate::phone::mask_raw(&self.raw),
        }
    }

    /// The text stored: E.164 when parsed, else the raw text (`None` when blank).
    pub fn stored(&self) -> Option<String> {
        match &self.e164 {
            Some(n) => Some(n.as_str().to_owned()),
            None if self.raw.trim().is_empty() => None,
            None => Some(self.raw.trim().to_owned()),
        }
    }
}

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TimelineType))]
#[serde(rename_all = "lowercase")]
pub enum TimelineKind {
    /// A phone call (`id` is the CallSid).
    Call,
    /// A WhatsApp message (`id` is our message id).
    Message,
}

/// One entry of a customer's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TimelineEntry))]
#[serde(deny_unknown_fields)]
pub struct TimelineItem {
    /// When it happened (call start, message creation).
    pub at: DateTime<Utc>,
    /// Call or message.
    #[serde(rename = "type")]
    pub kind: TimelineKind,
    /// CallSid or our message id.
    pub id: String,
    /// `inbound` or `outbound` (calls reach moked only inbound).
    pub direction: String,
    /// Twilio status of the call or message.
    pub status: String,
    /// The start of the transcript or message body, when there is one.
    pub summary: Option<String>,
}

/// A customer's history across businesses (`GET /api/customers/{phone}` answers it as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CustomerView))]
#[serde(deny_unknown_fields)]
pub struct CustomerTimeline {
    /// E.164 phone.
    pub phone: String,
    /// The latest inbound WhatsApp message of any of its customer rows.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Calls and messages, newest first.
    pub timeline: Vec<TimelineItem>,
}

/// Summaries are cut to this many characters.
pub const SUMMARY_CHARS: usize = 120;

#[derive(sqlx::FromRow)]
struct TimelineRow {
    kind: String,
    id: String,
    direction: String,
    status: String,
    at: i64,
    summary: Option<String>,
}

/// The timeline of the person with this phone: up to `limit` calls and messages, newest first
/// (ties by id, newest first). `None` when no business has this customer.
pub async fn customer_timeline(
    db: &Db,
    phone: &E164,
    limit: i64,
) -> Result<Option<CustomerTimeline>, StoreError> {
    let customers = find_customers_by_phone(db, phone).await?;
    if customers.is_empty() {
        return Ok(None);
    }
    let last_inbound_at = customers.iter().filter_map(|c| c.last_inbound_at).max();
    let rows = sqlx::query_as::<_, TimelineRow>(
        "SELECT 'call' AS kind, c.call_sid AS id, 'inbound' AS direction, c.status AS status, \
                c.started_at AS at, \
                (SELECT t.text FROM transcript t WHERE t.call_sid = c.call_sid \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT 1) AS summary \
           FROM call c JOIN customer cu ON cu.id = c.customer_id WHERE cu.phone = $1 \
         UNION ALL \
         SELECT 'message', m.id, m.direction, m.status, m.created_at, m.body \
           FROM whatsapp_message m JOIN customer cu ON cu.id = m.customer_id WHERE cu.phone = $1 \
         ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(phone.as_str())
    .bind(limit.max(0))
    .fetch_all(db.pool())
    .await?;
    let timeline = rows
        .into_iter()
        .map(|r| TimelineItem {
            at: from_ms(r.at),
            kind: if r.kind == "call" {
                TimelineKind::Call
            } else {
                TimelineKind::Message
            },
            id: r.id,
            direction: r.direction,
            status: r.status,
            summary: r.summary.as_deref().and_then(summarise),
        })
        .collect();
    Ok(Some(CustomerTimeline {
        phone: phone.as_str().to_owned(),
        last_inbound_at,
        timeline,
    }))
}

/// The first [`SUMMARY_CHARS`] characters of `text` (whitespace collapsed), `…` when cut;
/// `None` for blank text.
pub fn summarise(text: &str) -> Option<String> {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    let mut chars = collapsed.chars();
    let head: String = chars.by_ref().take(SUMMARY_CHARS).collect();
    Some(if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_collapse_whitespace_and_cut_long_hebrew_text_on_characters() {
        assert_eq!(summarise("  שלום \n עולם "), Some("שלום עולם".into()));
        assert_eq!(summarise(" \n "), None);
        let long = "א".repeat(SUMMARY_CHARS + 5);
        let s = summarise(&long).unwrap_or_default();
        assert_eq!(s.chars().count(), SUMMARY_CHARS + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn unparsed_numbers_are_stored_raw_and_blank_ones_not_at_all() {
        let parsed = Number {
            raw: "050-123-4567".into(),
            e164: E164::parse("050-123-4567").ok(),
        };
        assert_eq!(parsed.stored().as_deref(), Some("+972501234567"));
        let raw = Number {
            raw: " anonymous ".into(),
            e164: None,
        };
        assert_eq!(raw.stored().as_deref(), Some("anonymous"));
        let blank = Number {
            raw: " ".into(),
            e164: None,
        };
        assert_eq!(blank.stored(), None);
    }
}

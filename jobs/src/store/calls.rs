//! Calls: one row per CallSid, its status history, and the call timeline read.
//!
//! **Why monotonic.** Twilio delivers status callbacks at least once, in no guaranteed order, and
//! moked's workers run them concurrently; the seed system wrote whatever arrived last into one
//! column (origin defect 7), so a late `ringing` could reopen a `completed` call. Here a status
//! has a *rank* ([`call_status_rank`]):
//!
//! ```text
//! queued = initiated (1) < ringing (2) < in-progress (3) < completed | busy | failed | no-answer | canceled (4)
//! ```
//!
//! and `call.status` changes only to a status of strictly higher rank. The rank-4 statuses are
//! terminal: once one is stored nothing replaces it (not even another terminal status), and that
//! one change sets `ended_at` (and `duration_s` when Twilio sent CallDuration). A status outside
//! the vocabulary is recorded as an event and never becomes the call's status.
//!
//! **Race safety.** The rule is enforced by the database, not by read-modify-write in Rust: the
//! change is one `INSERT … ON CONFLICT (call_sid) DO UPDATE … WHERE rank(old) < rank(new)`, the
//! rank being a SQL `CASE` generated from the same table as [`call_status_rank`]. Two workers
//! applying `completed` and a late `ringing` at once end at `completed` whichever commits first.
//!
//! **Every callback is kept.** Before the status is considered, the callback is appended to
//! `call_event` with a dedupe key `status:{call_sid}:{status}:{sequence}` (`-` when Twilio sent
//! no SequenceNumber; the key is global, hence the CallSid). A redelivered callback hits
//! `ON CONFLICT (dedupe_key) DO NOTHING`, so the history holds each callback once. The voice
//! webhook (`call.started`) is recorded the same way under `call.started:{call_sid}`.
//!
//! **Links fill, never move.** `call.started` links the call to its business (by the number
//! called) and customer (by the caller); a status callback may create the row first, and the
//! later `call.started` then fills the empty links (`COALESCE(existing, new)`). `started_at` is
//! set by whichever insert comes first and never changed.

use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, FromRow, Row};

use super::business::{Business, business_for_called_on, get_business};
use super::customers::{Customer, Number, get_customer, upsert_customer_on};
use super::error::StoreError;
use super::recordings::{Recording, Transcript, recordings_for_call, transcripts_for_call};
use super::{Db, DbKind, from_ms, now_ms, returned, to_ms};

/// Call statuses and their ranks; the single source of both [`call_status_rank`] and the SQL.
pub const CALL_STATUS_RANKS: &[(&str, u8)] = &[
    ("queued", 1),
    ("initiated", 1),
    ("ringing", 2),
    ("in-progress", 3),
    ("completed", TERMINAL_CALL_RANK),
    ("busy", TERMINAL_CALL_RANK),
    ("failed", TERMINAL_CALL_RANK),
    ("no-answer", TERMINAL_CALL_RANK),
    ("canceled", TERMINAL_CALL_RANK),
];

/// The rank of the terminal call statuses.
pub const TERMINAL_CALL_RANK: u8 = 4;

/// The status a call gets from the voice webhook when Twilio sent none: the webhook fires while
/// the call rings at us.
pub const DEFAULT_STARTED_STATUS: &str = "ringing";

/// The rank of a call status, `None` outside Twilio's vocabulary.
pub fn call_status_rank(status: &str) -> Option<u8> {
    CALL_STATUS_RANKS
        .iter()
        .find(|(name, _)| *name == status)
        .map(|(_, rank)| *rank)
}

/// True for completed, busy, failed, no-answer and canceled.
pub fn is_terminal_call_status(status: &str) -> bool {
    call_status_rank(status) == Some(TERMINAL_CALL_RANK)
}

/// Whether a call at `current` moves to `new`: only to a known status of strictly higher rank
/// (an unknown current status ranks 0). The SQL applies exactly this rule.
pub fn call_status_advances(current: &str, new: &str) -> bool {
    match call_status_rank(new) {
        Some(new_rank) => call_status_rank(current).unwrap_or(0) < new_rank,
        None => false,
    }
}

/// Twilio statuses are lowercase words; tolerate stray case and spaces.
fn canonical(status: &str) -> String {
    status.trim().to_ascii_lowercase()
}

/// `(CASE {column} WHEN 'queued' THEN 1 … ELSE 0 END)` from a rank table.
pub(crate) fn rank_sql(ranks: &[(&str, u8)], column: &str) -> String {
    let mut sql = format!("(CASE {column}");
    for (name, rank) in ranks {
        let _ = write!(sql, " WHEN '{name}' THEN {rank}");
    }
    sql.push_str(" ELSE 0 END)");
    sql
}

const CALL_COLUMNS: &str = "id, call_sid, business_id, customer_id, from_phone, to_phone, status, \
     duration_s, started_at, ended_at, updated_at";

/// `call.started`: insert, or fill empty links and advance the status monotonically.
static UPSERT_STARTED_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_started_sql("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)"));

/// Postgres: the whole of `call.started` in one statement — one round trip, one implicit
/// transaction, instead of six (`BEGIN`, business, customer, call, event, `COMMIT`) — when the
/// number called has a business: the customer upsert, the call upsert and the event insert are
/// data-modifying CTEs over the business found (same `ON CONFLICT` rules as the statements of
/// the general path). No row back means no business owns the number yet, and nothing was
/// written: the general path runs. SQLite (no writable CTEs) always takes the general path,
/// whose statements cost no round trip there.
///
/// `$1` CallSid, `$2` number called (E.164), `$3` caller (E.164 or NULL), `$4`/`$5` the numbers
/// as stored, `$6` status, `$7` at, `$8` ended_at, `$9` now (a new customer's `created_at`),
/// `$10` the event's detail, `$11` its dedupe key.
static STARTED_ONE_STATEMENT_PG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH b AS (SELECT business_id AS id FROM business_number WHERE phone = $2), \
         c AS (INSERT INTO customer (business_id, phone, name, created_at) \
               SELECT b.id, $3, NULL, $9 FROM b WHERE $3::text IS NOT NULL \
               ON CONFLICT (business_id, phone) DO UPDATE SET \
                 name = COALESCE(customer.name, excluded.name) \
               RETURNING id), \
         k AS ({}), \
         e AS (INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
               SELECT $1, 'status', $6, $10, $7, $11 FROM b \
               ON CONFLICT (dedupe_key) DO NOTHING) \
         SELECT {CALL_COLUMNS} FROM k",
        upsert_started_sql("SELECT $1, b.id, (SELECT id FROM c), $4, $5, $6, $7, $8, $7 FROM b")
    )
});

/// The `call.started` upsert with its rows from `source` (`VALUES …` or a `SELECT`).
fn upsert_started_sql(source: &str) -> String {
    let advances = format!(
        "{} > {}",
        rank_sql(CALL_STATUS_RANKS, "excluded.status"),
        rank_sql(CALL_STATUS_RANKS, "call.status")
    );
    format!(
        "INSERT INTO call (call_sid, business_id, customer_id, from_phone, to_phone, status, \
                           started_at, ended_at, updated_at) \
         {source} \
         ON CONFLICT (call_sid) DO UPDATE SET \
           business_id = COALESCE(call.business_id, excluded.business_id), \
           customer_id = COALESCE(call.customer_id, excluded.customer_id), \
           from_phone = COALESCE(call.from_phone, excluded.from_phone), \
           to_phone = COALESCE(call.to_phone, excluded.to_phone), \
           status = CASE WHEN {advances} THEN excluded.status ELSE call.status END, \
           ended_at = CASE WHEN {advances} THEN COALESCE(call.ended_at, excluded.ended_at) \
                      ELSE call.ended_at END, \
           updated_at = CASE WHEN excluded.updated_at > call.updated_at \
                        THEN excluded.updated_at ELSE call.updated_at END \
         RETURNING {CALL_COLUMNS}"
    )
}

/// `call.status`: insert, or change the status only when it advances (no row returned if not).
static APPLY_STATUS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO call (call_sid, from_phone, to_phone, status, duration_s, started_at, \
                           ended_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $6) \
         ON CONFLICT (call_sid) DO UPDATE SET \
           status = excluded.status, \
           duration_s = COALESCE(excluded.duration_s, call.duration_s), \
           ended_at = COALESCE(call.ended_at, excluded.ended_at), \
           from_phone = COALESCE(call.from_phone, excluded.from_phone), \
           to_phone = COALESCE(call.to_phone, excluded.to_phone), \
           updated_at = CASE WHEN excluded.updated_at > call.updated_at \
                        THEN excluded.updated_at ELSE call.updated_at END \
         WHERE {} < {} \
         RETURNING {CALL_COLUMNS}",
        rank_sql(CALL_STATUS_RANKS, "call.status"),
        rank_sql(CALL_STATUS_RANKS, "excluded.status"),
    )
});

/// Postgres: the whole of `call.status` for a status of Twilio's vocabulary in one statement —
/// one round trip and one implicit transaction instead of four or five (`BEGIN`, event, call,
/// perhaps a read, `COMMIT`): the event insert and the call upsert of the general path as
/// data-modifying CTEs. It always returns one row: `recorded` (the event was new) and the
/// call's columns when the status advanced, NULL otherwise. A status that did not advance is
/// then read by a statement of its own ([`get_call_row`]): this statement's snapshot may not
/// show a row that a concurrent `call.started` committed while it ran, though its conflict
/// check did.
///
/// `$1`–`$7` as [`APPLY_STATUS_SQL`], `$8` the event's detail, `$9` its dedupe key.
static APPLY_STATUS_ONE_STATEMENT_PG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH e AS (INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
               VALUES ($1, 'status', $4, $8, $6, $9) \
               ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1), \
         u AS ({}) \
         SELECT EXISTS (SELECT 1 FROM e) AS recorded, u.* FROM (SELECT 1) AS one \
         LEFT JOIN u ON TRUE",
        APPLY_STATUS_SQL.as_str()
    )
});

/// A call. Serialises as the operator API lists calls (`CallSummary`): the row ids and the
/// last change are not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CallSummary))]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// Row id.
    #[serde(skip_serializing)]
    pub id: i64,
    /// Twilio CallSid.
    pub call_sid: String,
    /// The business called, once known.
    #[serde(skip_serializing)]
    pub business_id: Option<i64>,
    /// The caller as a customer, once known (never for a number that does not parse).
    #[serde(skip_serializing)]
    pub customer_id: Option<i64>,
    /// Caller: E.164 when it parsed, else as Twilio sent it.
    pub from: Option<String>,
    /// Number called: E.164 when it parsed, else as Twilio sent it.
    pub to: Option<String>,
    /// Twilio call status (highest rank seen: it only moves forward).
    pub status: String,
    /// CallDuration from the terminal callback.
    pub duration_s: Option<i64>,
    /// When moked first heard of the call.
    pub started_at: DateTime<Utc>,
    /// When it reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(skip_serializing)]
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CallRow {
    id: i64,
    call_sid: String,
    business_id: Option<i64>,
    customer_id: Option<i64>,
    from_phone: Option<String>,
    to_phone: Option<String>,
    status: String,
    duration_s: Option<i64>,
    started_at: i64,
    ended_at: Option<i64>,
    updated_at: i64,
}

impl From<CallRow> for Call {
    fn from(r: CallRow) -> Self {
        Call {
            id: r.id,
            call_sid: r.call_sid,
            business_id: r.business_id,
            customer_id: r.customer_id,
            from: r.from_phone,
            to: r.to_phone,
            status: r.status,
            duration_s: r.duration_s,
            started_at: from_ms(r.started_at),
            ended_at: r.ended_at.map(from_ms),
            updated_at: from_ms(r.updated_at),
        }
    }
}

/// What the voice webhook told us about a new call.
#[derive(Debug, Clone)]
pub struct CallStart {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Caller.
    pub from: Number,
    /// Number called (selects the business).
    pub to: Number,
    /// CallStatus, when sent ([`DEFAULT_STARTED_STATUS`] otherwise, or when unknown).
    pub status: Option<String>,
    /// When the intake received it.
    pub at: DateTime<Utc>,
}

/// Records a call that reached the voice webhook: business by the number called (see
/// [`business_for_called`](super::business::business_for_called)), customer by the caller
/// (only when the caller parsed), the call row (links filled if empty, status advanced
/// monotonically) and a `call.started` event. Idempotent.
pub async fn record_call_started(db: &Db, start: &CallStart) -> Result<Call, StoreError> {
    if db.kind() == DbKind::Postgres
        && let Some(called) = &start.to.e164
    {
        let status = started_status(start);
        let at = to_ms(start.at);
        let row = sqlx::query_as::<_, CallRow>(STARTED_ONE_STATEMENT_PG.as_str())
            .bind(start.call_sid.as_str())
            .bind(called.as_str())
            .bind(start.from.e164.as_ref().map(|p| p.as_str()))
            .bind(start.from.stored())
            .bind(start.to.stored())
            .bind(status.as_str())
            .bind(at)
            .bind(is_terminal_call_status(&status).then_some(at))
            .bind(now_ms())
            .bind(STARTED_EVENT_DETAIL)
            .bind(started_event_key(&start.call_sid))
            .fetch_all(db.pool())
            .await?;
        if let Some(row) = returned(row) {
            return Ok(row.into());
        }
    }
    let start = start.clone();
    db.write_unit(move |conn| Box::pin(async move { record_started_on(conn, &start).await }))
        .await
}

/// The detail of the timeline event `call.started` records.
const STARTED_EVENT_DETAIL: &str = r#"{"source":"call.started"}"#;

/// The dedupe key of the timeline event `call.started` records.
fn started_event_key(call_sid: &str) -> String {
    format!("call.started:{call_sid}")
}

/// The status a new call is recorded with: the one sent when Twilio's vocabulary has it.
fn started_status(start: &CallStart) -> String {
    start
        .status
        .as_deref()
        .map(canonical)
        .filter(|s| call_status_rank(s).is_some())
        .unwrap_or_else(|| DEFAULT_STARTED_STATUS.to_owned())
}

async fn record_started_on(
    conn: &mut AnyConnection,
    start: &CallStart,
) -> Result<Call, StoreError> {
    let business = business_for_called_on(conn, start.to.e164.as_ref()).await?;
    let customer = match &start.from.e164 {
        Some(phone) => Some(upsert_customer_on(conn, business.id, phone, None).await?),
        None => None,
    };
    let status = started_status(start);
    let at = to_ms(start.at);
    let ended_at = is_terminal_call_status(&status).then_some(at);
    let row = sqlx::query_as::<_, CallRow>(UPSERT_STARTED_SQL.as_str())
        .bind(start.call_sid.as_str())
        .bind(business.id)
        .bind(customer.as_ref().map(|c| c.id))
        .bind(start.from.stored())
        .bind(start.to.stored())
        .bind(status.as_str())
        .bind(at)
        .bind(ended_at)
        .fetch_all(&mut *conn)
        .await?;
    let row = returned(row).ok_or(sqlx::Error::RowNotFound)?;
    insert_event(
        conn,
        &start.call_sid,
        "status",
        Some(&status),
        Some(STARTED_EVENT_DETAIL),
        at,
        &started_event_key(&start.call_sid),
    )
    .await?;
    Ok(row.into())
}

/// A status callback.
#[derive(Debug, Clone)]
pub struct CallStatusChange {
    /// Twilio CallSid.
    pub call_sid: String,
    /// CallStatus.
    pub status: String,
    /// SequenceNumber, when sent (part of the dedupe key).
    pub sequence: Option<i64>,
    /// CallDuration, when sent.
    pub duration_s: Option<i64>,
    /// Caller, when sent (fills an empty `from`).
    pub from: Option<Number>,
    /// Number called, when sent (fills an empty `to`).
    pub to: Option<Number>,
    /// When the intake received it.
    pub at: DateTime<Utc>,
}

/// What applying a status callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusOutcome {
    /// False when this callback was already in the history (a redelivery).
    pub event_recorded: bool,
    /// True when the call's status became this one (or the call was created with it).
    pub advanced: bool,
    /// The call after the change; `None` only for an unknown status of a call never seen.
    pub call: Option<Call>,
}

/// The dedupe key of a status callback in `call_event`.
pub fn status_event_key(call_sid: &str, status: &str, sequence: Option<i64>) -> String {
    match sequence {
        Some(seq) => format!("status:{call_sid}:{status}:{seq}"),
        None => format!("status:{call_sid}:{status}:-"),
    }
}

/// Applies a status callback: appends it to the history once, then advances the call's status
/// if (and only if) it ranks higher than the stored one; a terminal status sets `ended_at` and
/// `duration_s`. A call not seen yet is created from the callback. Idempotent and order-free.
pub async fn apply_call_status(
    db: &Db,
    change: &CallStatusChange,
) -> Result<CallStatusOutcome, StoreError> {
    apply_status(db, change, None).await
}

/// [`apply_call_status`] for a status moked learned elsewhere than a callback (e.g. `reconcile`,
/// from Twilio's REST API): the same monotonic rule, but the event names its `source` in its
/// detail and its dedupe key (`status:{call_sid}:{status}:{source}`), so it neither hides nor is
/// hidden by a callback of the same status.
pub async fn apply_call_status_from(
    db: &Db,
    change: &CallStatusChange,
    source: &str,
) -> Result<CallStatusOutcome, StoreError> {
    apply_status(db, change, Some(source)).await
}

async fn apply_status(
    db: &Db,
    change: &CallStatusChange,
    source: Option<&str>,
) -> Result<CallStatusOutcome, StoreError> {
    let status = canonical(&change.status);
    if status.is_empty() {
        return Err(StoreError::Invalid("empty call status".into()));
    }
    let mut detail = serde_json::json!({
        "sequence": change.sequence,
        "duration_s": change.duration_s,
    });
    let key = match source {
        Some(source) => {
            detail["source"] = source.into();
            format!("status:{}:{status}:{source}", change.call_sid)
        }
        None => status_event_key(&change.call_sid, &status, change.sequence),
    };
    let event = StatusEvent {
        status,
        detail: detail.to_string(),
        key,
    };
    if db.kind() == DbKind::Postgres && call_status_rank(&event.status).is_some() {
        return apply_status_pg(db, change, &event).await;
    }
    let change = change.clone();
    db.write_unit(move |conn| Box::pin(async move { apply_status_on(conn, &change, &event).await }))
        .await
}

/// The timeline event a status change records: the canonical status, its detail and its
/// dedupe key.
struct StatusEvent {
    status: String,
    detail: String,
    key: String,
}

/// `sql` with [`APPLY_STATUS_SQL`]'s parameters `$1`–`$7` bound from `change`.
fn bind_status<'q>(
    sql: &'static str,
    change: &'q CallStatusChange,
    status: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let at = to_ms(change.at);
    sqlx::query(sql)
        .bind(change.call_sid.as_str())
        .bind(change.from.as_ref().and_then(Number::stored))
        .bind(change.to.as_ref().and_then(Number::stored))
        .bind(status)
        .bind(change.duration_s)
        .bind(at)
        .bind(is_terminal_call_status(status).then_some(at))
}

/// [`APPLY_STATUS_ONE_STATEMENT_PG`] and, when the status did not advance, the call as it is.
async fn apply_status_pg(
    db: &Db,
    change: &CallStatusChange,
    event: &StatusEvent,
) -> Result<CallStatusOutcome, StoreError> {
    let row = bind_status(
        APPLY_STATUS_ONE_STATEMENT_PG.as_str(),
        change,
        &event.status,
    )
    .bind(event.detail.as_str())
    .bind(event.key.as_str())
    .fetch_one(db.pool())
    .await?;
    let event_recorded: bool = row.try_get("recorded")?;
    if row.try_get::<Option<i64>, _>("id")?.is_some() {
        return Ok(CallStatusOutcome {
            event_recorded,
            advanced: true,
            call: Some(CallRow::from_row(&row)?.into()),
        });
    }
    Ok(CallStatusOutcome {
        event_recorded,
        advanced: false,
        call: get_call_row(db, &change.call_sid).await?,
    })
}

async fn apply_status_on(
    conn: &mut AnyConnection,
    change: &CallStatusChange,
    event: &StatusEvent,
) -> Result<CallStatusOutcome, StoreError> {
    let status = event.status.as_str();
    let event_recorded = insert_event(
        conn,
        &change.call_sid,
        "status",
        Some(status),
        Some(&event.detail),
        to_ms(change.at),
        &event.key,
    )
    .await?;
    if call_status_rank(status).is_none() {
        tracing::warn!(status = %status, "call status outside Twilio's vocabulary kept as an event only");
        return Ok(CallStatusOutcome {
            event_recorded,
            advanced: false,
            call: get_call_row_on(conn, &change.call_sid).await?,
        });
    }
    let advanced = bind_status(APPLY_STATUS_SQL.as_str(), change, status)
        .fetch_all(&mut *conn)
        .await?;
    Ok(match returned(advanced) {
        Some(row) => CallStatusOutcome {
            event_recorded,
            advanced: true,
            call: Some(CallRow::from_row(&row)?.into()),
        },
        None => CallStatusOutcome {
            event_recorded,
            advanced: false,
            call: get_call_row_on(conn, &change.call_sid).await?,
        },
    })
}

/// Appends an event to a call's history once per dedupe key; true when it was new.
async fn insert_event(
    conn: &mut AnyConnection,
    call_sid: &str,
    kind: &str,
    status: Option<&str>,
    detail: Option<&str>,
    at: i64,
    dedupe_key: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(call_sid)
    .bind(kind)
    .bind(status)
    .bind(detail)
    .bind(at)
    .bind(dedupe_key)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// The call row alone.
pub async fn get_call_row(db: &Db, call_sid: &str) -> Result<Option<Call>, StoreError> {
    get_call_row_on(&mut *db.pool().acquire().await?, call_sid).await
}

async fn get_call_row_on(
    conn: &mut AnyConnection,
    call_sid: &str,
) -> Result<Option<Call>, StoreError> {
    Ok(sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLUMNS} FROM call WHERE call_sid = $1"
    )))
    .bind(call_sid)
    .fetch_optional(conn)
    .await?
    .map(Call::from))
}

/// One entry of a call's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallEvent {
    /// `status`, `recording.stored`, `transcript.stored`, `recording.failed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The status, for status events.
    pub status: Option<String>,
    /// Extra facts as JSON text (sequence, duration, source).
    pub detail: Option<String>,
    /// When moked received it.
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CallEventRow {
    kind: String,
    status: Option<String>,
    detail: Option<String>,
    at: i64,
}

/// A call with everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallDetail {
    /// The call row.
    #[serde(flatten)]
    pub call: Call,
    /// Its business, once linked.
    pub business: Option<Business>,
    /// The caller as a customer, once linked.
    pub customer: Option<Customer>,
    /// The history, oldest first (by receipt time, then insertion).
    pub events: Vec<CallEvent>,
    /// Its recordings, oldest first.
    pub recordings: Vec<Recording>,
    /// The latest transcript of any of its recordings.
    pub transcript: Option<Transcript>,
}

/// The call timeline: the call, its business and customer, its events ordered by time, its
/// recordings and its (latest) transcript. `None` for a CallSid never seen.
pub async fn get_call(db: &Db, call_sid: &str) -> Result<Option<CallDetail>, StoreError> {
    let Some(call) = get_call_row(db, call_sid).await? else {
        return Ok(None);
    };
    let business = match call.business_id {
        Some(id) => get_business(db, id).await?,
        None => None,
    };
    let customer = match call.customer_id {
        Some(id) => get_customer(db, id).await?,
        None => None,
    };
    let events = sqlx::query_as::<_, CallEventRow>(
        "SELECT type AS kind, status, detail, at FROM call_event WHERE call_sid = $1 ORDER BY at, id",
    )
    .bind(call_sid)
    .fetch_all(db.pool())
    .await?
    .into_iter()
    .map(|r| CallEvent {
        kind: r.kind,
        status: r.status,
        detail: r.detail,
        at: from_ms(r.at),
    })
    .collect();
    let recordings = recordings_for_call(db, call_sid).await?;
    let transcript = transcripts_for_call(db, call_sid).await?.pop();
    Ok(Some(CallDetail {
        call,
        business,
        customer,
        events,
        recordings,
        transcript,
    }))
}

/// One page of calls, newest first (what `list_calls` reads and `GET /api/calls` answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CallList))]
#[serde(deny_unknown_fields)]
pub struct CallPage {
    /// This page.
    pub calls: Vec<Call>,
    /// The cursor of the next page (`{started_at ms}:{id}` of this page's last call; pass it
    /// as `cursor`); null on the last.
    pub next_cursor: Option<String>,
}

/// The largest page [`list_calls`] returns.
pub const MAX_CALL_PAGE: u32 = 500;

/// Reads a [`CallPage::next_cursor`].
fn parse_call_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad = || StoreError::Invalid(format!("`{cursor}` is not a calls cursor"));
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((
        at.trim().parse().map_err(|_| bad())?,
        id.trim().parse().map_err(|_| bad())?,
    ))
}

/// Which calls [`list_calls`] lists (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Started at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Started before this instant.
    pub until: Option<DateTime<Utc>>,
    /// In this status.
    pub status: Option<String>,
    /// With (`true`) or without (`false`) a transcript.
    pub has_transcript: Option<bool>,
}

/// Calls newest first (by `started_at`, then row id), `limit` (1..=[`MAX_CALL_PAGE`]) at a time,
/// for the operator API, narrowed by `filter`. Keyset paging: `cursor` is the previous page's
/// `next_cursor`, so a page costs one index range scan however deep it is, and calls arriving
/// meanwhile never shift later pages. A cursor that does not parse is [`StoreError::Invalid`].
pub async fn list_calls(
    db: &Db,
    filter: &CallFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<CallPage, StoreError> {
    let limit = limit.clamp(1, MAX_CALL_PAGE);
    // Every bound value but the status is an integer; the status goes after them.
    let mut clauses: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    if let Some((at, id)) = cursor.map(parse_call_cursor).transpose()? {
        ints.extend([at, id]);
        clauses.push("(started_at < $1 OR (started_at = $1 AND id < $2))".to_owned());
    }
    if let Some(from) = filter.from {
        ints.push(to_ms(from));
        clauses.push(format!("started_at >= ${}", ints.len()));
    }
    if let Some(until) = filter.until {
        ints.push(to_ms(until));
        clauses.push(format!("started_at < ${}", ints.len()));
    }
    match filter.has_transcript {
        Some(true) => clauses.push(TRANSCRIBED.to_owned()),
        Some(false) => clauses.push(format!("NOT {TRANSCRIBED}")),
        None => {}
    }
    if filter.status.is_some() {
        clauses.push(format!("status = ${}", ints.len() + 1));
    }
    let limit_param = ints.len() + usize::from(filter.status.is_some()) + 1;
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM call{filter_sql} \
         ORDER BY started_at DESC, id DESC LIMIT ${limit_param}"
    );
    let mut query = sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(sql));
    for v in ints {
        query = query.bind(v);
    }
    if let Some(status) = &filter.status {
        query = query.bind(status.clone());
    }
    let rows = query
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    let (calls, next_cursor) = super::page(
        rows.into_iter().map(Call::from).collect(),
        limit,
        |last: &Call| format!("{}:{}", to_ms(last.started_at), last.id),
    );
    Ok(CallPage { calls, next_cursor })
}

/// A call with a transcript (of any of its recordings).
const TRANSCRIBED: &str = "EXISTS (SELECT 1 FROM transcript t WHERE t.call_sid = call.call_sid)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_statuses_rank_in_twilios_order_with_initiated_beside_queued() {
        let order = ["queued", "ringing", "in-progress", "completed"];
        for pair in order.windows(2) {
            assert!(
                call_status_rank(pair[0]) < call_status_rank(pair[1]),
                "{pair:?}"
            );
        }
        assert_eq!(call_status_rank("initiated"), call_status_rank("queued"));
        assert_eq!(call_status_rank("answered"), None);
        for t in ["completed", "busy", "failed", "no-answer", "canceled"] {
            assert!(is_terminal_call_status(t), "{t}");
        }
        assert!(!is_terminal_call_status("in-progress"));
    }

    #[test]
    fn a_late_status_never_moves_a_call_back_and_terminal_statuses_are_final() {
        assert!(call_status_advances("ringing", "in-progress"));
        assert!(call_status_advances("queued", "completed"));
        assert!(!call_status_advances("completed", "ringing"));
        assert!(!call_status_advances("in-progress", "in-progress"));
        assert!(!call_status_advances("completed", "failed"));
        assert!(!call_status_advances("busy", "completed"));
        assert!(!call_status_advances("initiated", "queued"));
        assert!(!call_status_advances("ringing", "bogus"));
        assert!(call_status_advances("bogus", "queued"));
    }

    #[test]
    fn rank_sql_lists_every_status_of_the_table() {
        let sql = rank_sql(CALL_STATUS_RANKS, "call.status");
        assert!(
            sql.starts_with("(CASE call.status WHEN 'queued' THEN 1"),
            "{sql}"
        );
        assert!(sql.contains("WHEN 'no-answer' THEN 4"), "{sql}");
        assert!(sql.ends_with("ELSE 0 END)"), "{sql}");
    }

    #[test]
    fn call_cursors_are_time_and_id_and_anything_else_is_refused() {
        assert_eq!(
            parse_call_cursor("1700000000000:42").ok(),
            Some((1_700_000_000_000, 42))
        );
        for bad in ["", "42", "x:1", "1:y", "1:2:3"] {
            assert!(
                matches!(parse_call_cursor(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_event_keys_name_the_call_status_and_sequence() {
        assert_eq!(
            status_event_key("CA1", "completed", Some(3)),
            "status:CA1:completed:3"
        );
        assert_eq!(
            status_event_key("CA1", "ringing", None),
            "status:CA1:ringing:-"
        );
    }
}

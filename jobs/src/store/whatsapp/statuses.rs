//! WhatsApp message statuses that only move forward, and the status callbacks kept in
//! `whatsapp_status_event`.
//!
//! **Why monotonic.** Twilio's status callbacks arrive late, duplicated and out of order (the
//! seed and Chatwoot overwrite blindly, so a late `delivered` regresses `read`). A status has a
//! rank ([`message_status_rank`]):
//!
//! ```text
//! queued = accepted = scheduled (1) < sending (2) < sent (3) < delivered (4) < read (5)
//!                                                    < failed = undelivered = canceled (6, terminal)
//! ```
//!
//! and the stored status changes only to a strictly higher rank, in one conditional
//! `UPDATE … WHERE rank(status) < $rank` (the `CASE` is generated from the same table), so
//! concurrent workers cannot interleave a read-modify-write. A status that advances also fills
//! the timestamps it implies, each only once (`COALESCE(existing, new)`): `sent` sets `sent_at`;
//! `delivered` also `delivered_at`; `read` also `read_at` — so a `read` that beats `delivered`
//! leaves both timestamps set, and the late `delivered` changes nothing. A terminal failure keeps
//! ErrorCode and ErrorMessage. Statuses outside the table (`receiving`, `partially_delivered`,
//! new words) are stored as events and never become a message's status. Inbound rows are never
//! touched by status callbacks.
//!
//! **Every callback is kept** in `whatsapp_status_event`, `UNIQUE (message_sid, status)`, so a
//! redelivery is a no-op. **A callback can beat the send result** (the 201 and the first callback
//! race): for a MessageSid no row carries yet the event simply waits in that table, and
//! [`attach_provider_sid`] applies the waiting events once it stores the sid (lowest rank first,
//! so each timestamp is the one of its own status). The two sides cannot miss each other: the
//! callback writes its event *before* its update by sid, and the attach stores the sid *before*
//! it reads the events, so whichever runs second sees the other's write.
//!
//! The rows themselves (inbound and outbound messages, their ids and lookups) are
//! [`super::messages`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::messages::{WhatsAppMessage, get_message, get_message_by_provider_sid};
use crate::phone::mask_in_text;
use crate::store::calls::rank_sql;
use crate::store::error::StoreError;
use crate::store::{Db, from_ms, now_ms, to_ms};

/// Message statuses and their ranks; the single source of [`message_status_rank`] and the SQL.
pub const MESSAGE_STATUS_RANKS: &[(&str, u8)] = &[
    ("queued", 1),
    ("accepted", 1),
    ("scheduled", 1),
    ("sending", 2),
    ("sent", 3),
    ("delivered", 4),
    ("read", 5),
    ("failed", TERMINAL_MESSAGE_RANK),
    ("undelivered", TERMINAL_MESSAGE_RANK),
    ("canceled", TERMINAL_MESSAGE_RANK),
];

/// The rank of the terminal (failure) statuses.
pub const TERMINAL_MESSAGE_RANK: u8 = 6;

/// The rank of an outbound message status, `None` outside the table.
pub fn message_status_rank(status: &str) -> Option<u8> {
    MESSAGE_STATUS_RANKS
        .iter()
        .find(|(name, _)| *name == status)
        .map(|(_, rank)| *rank)
}

/// True for failed, undelivered and canceled.
pub fn is_terminal_message_status(status: &str) -> bool {
    message_status_rank(status) == Some(TERMINAL_MESSAGE_RANK)
}

/// Whether a message at `current` moves to `new`: only to a known status of strictly higher
/// rank (an unknown current status ranks 0). The SQL applies exactly this rule.
pub fn message_status_advances(current: &str, new: &str) -> bool {
    match message_status_rank(new) {
        Some(new_rank) => message_status_rank(current).unwrap_or(0) < new_rank,
        None => false,
    }
}

/// The delivery timestamps a status implies (each is only ever set once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reached {
    /// Sets `sent_at`.
    pub sent: bool,
    /// Sets `delivered_at`.
    pub delivered: bool,
    /// Sets `read_at`.
    pub read: bool,
}

/// `sent` < `delivered` < `read` each imply the ones before; nothing else sets a timestamp.
pub fn reached(status: &str) -> Reached {
    match status {
        "sent" => Reached {
            sent: true,
            ..Reached::default()
        },
        "delivered" => Reached {
            sent: true,
            delivered: true,
            read: false,
        },
        "read" => Reached {
            sent: true,
            delivered: true,
            read: true,
        },
        _ => Reached::default(),
    }
}

fn canonical(status: &str) -> String {
    status.trim().to_ascii_lowercase()
}

/// The conditional update of one outbound message, keyed by `key` (`provider_sid` or `id`).
fn update_sql(key: &str) -> String {
    format!(
        "UPDATE whatsapp_message SET \
           status = $2, \
           error_code = COALESCE($3, error_code), \
           error_message = COALESCE($4, error_message), \
           sent_at = COALESCE(sent_at, $5), \
           delivered_at = COALESCE(delivered_at, $6), \
           read_at = COALESCE(read_at, $7), \
           updated_at = $8 \
         WHERE {key} = $1 AND direction = 'outbound' AND {} < $9",
        rank_sql(MESSAGE_STATUS_RANKS, "status")
    )
}

static UPDATE_BY_SID_SQL: LazyLock<String> = LazyLock::new(|| update_sql("provider_sid"));
static UPDATE_BY_ID_SQL: LazyLock<String> = LazyLock::new(|| update_sql("id"));

/// A status for an outbound message.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The status word.
    pub status: String,
    /// ErrorCode, when sent.
    pub error_code: Option<i64>,
    /// ErrorMessage, when sent.
    pub error_message: Option<String>,
    /// When it was received.
    pub at: DateTime<Utc>,
}

/// Applies `change` to the outbound message whose `key` column is `value`, if it advances.
async fn apply_change(
    db: &Db,
    by_sid: bool,
    value: &str,
    change: &StatusChange,
) -> Result<bool, StoreError> {
    let status = canonical(&change.status);
    let Some(rank) = message_status_rank(&status) else {
        return Ok(false);
    };
    let at = to_ms(change.at);
    let hit = reached(&status);
    let sql = if by_sid {
        UPDATE_BY_SID_SQL.as_str()
    } else {
        UPDATE_BY_ID_SQL.as_str()
    };
    let moved = sqlx::query(sql)
        .bind(value)
        .bind(status.as_str())
        .bind(change.error_code)
        // Providers quote the number they refused ("The 'To' number … is not valid").
        .bind(change.error_message.as_deref().map(mask_in_text))
        .bind(hit.sent.then_some(at))
        .bind(hit.delivered.then_some(at))
        .bind(hit.read.then_some(at))
        .bind(now_ms())
        .bind(i64::from(rank))
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(moved > 0)
}

/// Sets the status of our outbound message `id` directly (e.g. the send path's own failure, with
/// the provider's error code), under the same monotonic rule. True when it advanced.
pub async fn set_status_by_id(
    db: &Db,
    id: &str,
    change: &StatusChange,
) -> Result<bool, StoreError> {
    apply_change(db, false, id, change).await
}

/// A status callback.
#[derive(Debug, Clone)]
pub struct StatusCallback {
    /// Twilio MessageSid.
    pub message_sid: String,
    /// The status and its error.
    pub change: StatusChange,
    /// Our message id from the StatusCallback URL, when present.
    pub our_id: Option<String>,
}

/// What a status callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The message moved to this status.
    Applied,
    /// The message is known and already at this or a higher rank (late or duplicate).
    Unchanged,
    /// No message carries this sid yet; the event waits for [`attach_provider_sid`].
    Pending,
    /// The status is outside the table; kept as an event only.
    Ignored,
}

/// Records a status callback once (`whatsapp_status_event`) and applies it if it advances the
/// message. For an unknown MessageSid the event waits; when the callback names our message id
/// (StatusCallback URL) and that message has no provider sid yet, the sid is attached here and
/// the waiting events applied.
pub async fn apply_status_callback(
    db: &Db,
    callback: &StatusCallback,
) -> Result<StatusOutcome, StoreError> {
    let status = canonical(&callback.change.status);
    if status.is_empty() || callback.message_sid.trim().is_empty() {
        return Err(StoreError::Invalid(
            "status callback without sid or status".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO whatsapp_status_event (message_sid, status, error_code, error_message, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_sid, status) DO NOTHING",
    )
    .bind(callback.message_sid.as_str())
    .bind(status.as_str())
    .bind(callback.change.error_code)
    .bind(callback.change.error_message.as_deref().map(mask_in_text))
    .bind(to_ms(callback.change.at))
    .execute(db.pool())
    .await?;
    if message_status_rank(&status).is_none() {
        return Ok(StatusOutcome::Ignored);
    }
    if apply_change(db, true, &callback.message_sid, &callback.change).await? {
        return Ok(StatusOutcome::Applied);
    }
    if get_message_by_provider_sid(db, &callback.message_sid)
        .await?
        .is_some()
    {
        return Ok(StatusOutcome::Unchanged);
    }
    let Some(our_id) = &callback.our_id else {
        return Ok(StatusOutcome::Pending);
    };
    match attach(db, our_id, &callback.message_sid, None).await {
        Ok(message) if message.status == status => Ok(StatusOutcome::Applied),
        Ok(_) => Ok(StatusOutcome::Unchanged),
        // Our id unknown, or it already carries another sid: keep the event waiting.
        Err(StoreError::NotFound | StoreError::Invalid(_)) => Ok(StatusOutcome::Pending),
        Err(e) => Err(e),
    }
}

/// The stored status callbacks of a MessageSid, in receipt order.
pub async fn status_events(db: &Db, message_sid: &str) -> Result<Vec<StatusEvent>, StoreError> {
    Ok(sqlx::query_as::<_, StatusEventRow>(
        "SELECT status, error_code, error_message, at FROM whatsapp_status_event \
         WHERE message_sid = $1 ORDER BY at, id",
    )
    .bind(message_sid)
    .fetch_all(db.pool())
    .await?
    .into_iter()
    .map(|r| StatusEvent {
        status: r.status,
        error_code: r.error_code,
        error_message: r.error_message,
        at: from_ms(r.at),
    })
    .collect())
}

/// One stored status callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEvent {
    /// The status.
    pub status: String,
    /// ErrorCode, when sent.
    pub error_code: Option<i64>,
    /// ErrorMessage, when sent.
    pub error_message: Option<String>,
    /// When it was received.
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct StatusEventRow {
    status: String,
    error_code: Option<i64>,
    error_message: Option<String>,
    at: i64,
}

/// The send path stored the provider's answer: attaches `provider_sid` to our message `our_id`,
/// applies `initial_status` (the status in the provider's answer; no callback ever reports it)
/// and then every status callback that arrived for that sid before this call. Idempotent: the
/// same sid again is fine. `NotFound` for an unknown id; `Invalid` when the message already
/// carries a different sid (it was sent before — do not send it again) or the sid belongs to
/// another message.
pub async fn attach_provider_sid(
    db: &Db,
    our_id: &str,
    provider_sid: &str,
    initial_status: &str,
) -> Result<WhatsAppMessage, StoreError> {
    attach(db, our_id, provider_sid, Some(initial_status)).await
}

async fn attach(
    db: &Db,
    our_id: &str,
    provider_sid: &str,
    initial_status: Option<&str>,
) -> Result<WhatsAppMessage, StoreError> {
    if provider_sid.trim().is_empty() {
        return Err(StoreError::Invalid("empty provider sid".into()));
    }
    // 1. Store the sid (only on a message that has none) — before reading waiting events.
    let stored = sqlx::query(
        "UPDATE whatsapp_message SET provider_sid = $2, updated_at = $3 \
         WHERE id = $1 AND direction = 'outbound' AND provider_sid IS NULL",
    )
    .bind(our_id)
    .bind(provider_sid)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map_err(StoreError::from);
    if let Err(e) = stored {
        return Err(if e.is_unique_violation() {
            StoreError::Invalid("provider sid already belongs to another message".into())
        } else {
            e
        });
    }
    let message = get_message(db, our_id).await?.ok_or(StoreError::NotFound)?;
    if message.direction != "outbound" {
        return Err(StoreError::Invalid(format!(
            "message {our_id} is not outbound"
        )));
    }
    if message.provider_sid.as_deref() != Some(provider_sid) {
        return Err(StoreError::Invalid(format!(
            "message {our_id} already carries another provider sid"
        )));
    }
    // 2. The provider's answer.
    if let Some(status) = initial_status {
        let change = StatusChange {
            status: status.to_owned(),
            error_code: None,
            error_message: None,
            at: Utc::now(),
        };
        apply_change(db, false, our_id, &change).await?;
    }
    // 3. Callbacks that beat us, lowest rank first so each timestamp is its own status's.
    let mut waiting = status_events(db, provider_sid).await?;
    waiting.sort_by_key(|e| (message_status_rank(&e.status).unwrap_or(0), e.at));
    for event in waiting {
        let change = StatusChange {
            status: event.status,
            error_code: event.error_code,
            error_message: event.error_message,
            at: event.at,
        };
        apply_change(db, true, provider_sid, &change).await?;
    }
    get_message(db, our_id).await?.ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_statuses_rank_queued_sending_sent_delivered_read_then_failures() {
        let order = ["queued", "sending", "sent", "delivered", "read", "failed"];
        for pair in order.windows(2) {
            assert!(
                message_status_rank(pair[0]) < message_status_rank(pair[1]),
                "{pair:?}"
            );
        }
        assert_eq!(
            message_status_rank("accepted"),
            message_status_rank("queued")
        );
        assert_eq!(
            message_status_rank("scheduled"),
            message_status_rank("queued")
        );
        for t in ["failed", "undelivered", "canceled"] {
            assert!(is_terminal_message_status(t), "{t}");
        }
        assert_eq!(message_status_rank("received"), None);
        assert_eq!(message_status_rank("partially_delivered"), None);
    }

    #[test]
    fn a_late_delivered_never_regresses_read_and_failures_are_final() {
        assert!(message_status_advances("sent", "read"));
        assert!(!message_status_advances("read", "delivered"));
        assert!(!message_status_advances("read", "read"));
        assert!(!message_status_advances("accepted", "queued"));
        assert!(message_status_advances("sent", "undelivered"));
        assert!(!message_status_advances("failed", "read"));
        assert!(!message_status_advances("failed", "undelivered"));
        assert!(!message_status_advances("sent", "partially_delivered"));
    }

    #[test]
    fn read_implies_delivered_and_sent_and_failures_imply_no_timestamp() {
        assert_eq!(
            reached("read"),
            Reached {
                sent: true,
                delivered: true,
                read: true
            }
        );
        assert_eq!(
            reached("delivered"),
            Reached {
                sent: true,
                delivered: true,
                read: false
            }
        );
        assert!(reached("sent").sent && !reached("sent").delivered);
        assert_eq!(reached("failed"), Reached::default());
        assert_eq!(reached("queued"), Reached::default());
    }

    #[test]
    fn the_update_sql_is_conditional_on_rank() {
        let sql = update_sql("provider_sid");
        assert!(
            sql.contains("WHERE provider_sid = $1 AND direction = 'outbound' AND (CASE status"),
            "{sql}"
        );
        assert!(sql.contains("WHEN 'read' THEN 5"), "{sql}");
        assert!(sql.ends_with("< $9"), "{sql}");
    }
}

//! What `clock.reconcile` asks Twilio about, and what it remembers having asked.
//!
//! Webhooks get lost (Twilio gives up after its retries, the intake was down, a deploy raced), so
//! the reconcile task looks for three kinds of local state that a webhook should have moved on and
//! repairs them from Twilio's REST API:
//!
//! | candidate query | what is stale | Twilio call |
//! |---|---|---|
//! | [`stale_open_calls`] | a call not in a terminal status whose last change is older than `before` | `GET Calls/{Sid}.json` |
//! | [`stale_outbound_messages`] | an outbound Twilio message still `queued`/`accepted`/`scheduled`/`sending`/`sent`, with a MessageSid, unchanged since `before` | `GET Messages/{Sid}.json` |
//! | [`completed_calls_without_recording`] | a `completed` call that ended before `before` and has no recording row | `GET Calls/{Sid}/Recordings.json` |
//!
//! Each returns the rows of a [`Window`]: at most `limit`, **oldest first**, and only rows
//! changed after `horizon` (older ones are left alone for good: a message nobody delivered in a
//! week will not be, and a call without a recording after a week has none).
//!
//! **Checks hold items back.** After asking about an item the task calls [`mark_checked`]: the
//! row in `reconcile_check` keeps the item out of the candidates until its `next_at`, which
//! doubles with every check (`after`, 2×, 4× … capped at [`MAX_BACKOFF`]). So an item Twilio
//! reports unchanged (a long call still `in-progress`, a message still `sent` because the phone
//! is off) does not take a place in every run's batch, the batch pages through the backlog run
//! by run, and a run retried after a Twilio 429 does not ask again about what it already did —
//! those items are either no longer stale (their status moved) or held back by their check.
//! [`prune_checks`] forgets checks older than the horizon.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use std::time::Duration;

use super::error::StoreError;
use super::{Db, from_ms, to_ms};

/// The longest an item is held back between two checks.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// What kind of item a check is about (its `reconcile_check.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A call's status (keyed by CallSid).
    Call,
    /// An outbound message's status (keyed by MessageSid).
    Message,
    /// A completed call's recordings (keyed by CallSid).
    Recording,
}

impl CheckKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckKind::Call => "call",
            CheckKind::Message => "message",
            CheckKind::Recording => "recording",
        }
    }
}

/// A call that may have missed its status callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCall {
    /// Twilio CallSid.
    pub call_sid: String,
    /// The status moked has.
    pub status: String,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
}

/// An outbound message that may have missed its status callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleMessage {
    /// Our id.
    pub id: String,
    /// Twilio MessageSid.
    pub provider_sid: String,
    /// The status moked has.
    pub status: String,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
}

/// A completed call with no recording row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallWithoutRecording {
    /// Twilio CallSid.
    pub call_sid: String,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct StaleCallRow {
    call_sid: String,
    status: String,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct StaleMessageRow {
    id: String,
    provider_sid: String,
    status: String,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct NoRecordingRow {
    call_sid: String,
    ended_at: i64,
}

/// Which items a candidate query returns: last changed (a recording's call: ended) in
/// `[horizon, before)`, not held back by a check at `now`, oldest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Changed before this (stale since).
    pub before: DateTime<Utc>,
    /// Changed at or after this (older items are left alone for good).
    pub horizon: DateTime<Utc>,
    /// Checks whose `next_at` is after this hold their items back.
    pub now: DateTime<Utc>,
    /// At most this many rows (at least 1).
    pub limit: u32,
}

/// Runs a candidate query whose `$1` … `$4` are the window's `before`, `horizon`, `now` and
/// limit, and makes an item of each row.
async fn candidates<R, T>(
    db: &Db,
    sql: &'static str,
    window: &Window,
    item: impl FnMut(R) -> T,
) -> Result<Vec<T>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    let rows = sqlx::query_as::<_, R>(sql)
        .bind(to_ms(window.before))
        .bind(to_ms(window.horizon))
        .bind(to_ms(window.now))
        .bind(i64::from(window.limit.max(1)))
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(item).collect())
}

/// Open calls (not completed, busy, failed, no-answer or canceled) in the `window` of their
/// last change.
pub async fn stale_open_calls(db: &Db, window: &Window) -> Result<Vec<StaleCall>, StoreError> {
    // The status predicate is the one of the partial index `call_open`, word for word.
    candidates(
        db,
        "SELECT c.call_sid, c.status, c.updated_at FROM call c \
         LEFT JOIN reconcile_check r ON r.kind = 'call' AND r.sid = c.call_sid \
         WHERE c.status NOT IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
           AND c.updated_at < $1 AND c.updated_at >= $2 \
           AND (r.next_at IS NULL OR r.next_at <= $3) \
         ORDER BY c.updated_at, c.id LIMIT $4",
        window,
        |r: StaleCallRow| StaleCall {
            call_sid: r.call_sid,
            status: r.status,
            updated_at: from_ms(r.updated_at),
        },
    )
    .await
}

/// Outbound Twilio messages with a MessageSid still in a sending status (queued, accepted,
/// scheduled, sending, sent) in the `window` of their last change. Baileys messages are not
/// Twilio's to report on.
pub async fn stale_outbound_messages(
    db: &Db,
    window: &Window,
) -> Result<Vec<StaleMessage>, StoreError> {
    // The status predicate is the one of the partial index `whatsapp_message_open`.
    candidates(
        db,
        "SELECT m.id, m.provider_sid, m.status, m.updated_at FROM whatsapp_message m \
         LEFT JOIN reconcile_check r ON r.kind = 'message' AND r.sid = m.provider_sid \
         WHERE m.status IN ('queued', 'accepted', 'scheduled', 'sending', 'sent') \
           AND m.direction = 'outbound' AND m.provider = 'twilio' \
           AND m.provider_sid IS NOT NULL \
           AND m.updated_at < $1 AND m.updated_at >= $2 \
           AND (r.next_at IS NULL OR r.next_at <= $3) \
         ORDER BY m.updated_at, m.id LIMIT $4",
        window,
        |r: StaleMessageRow| StaleMessage {
            id: r.id,
            provider_sid: r.provider_sid,
            status: r.status,
            updated_at: from_ms(r.updated_at),
        },
    )
    .await
}

/// Calls `completed` in the `window` (of their end) with no recording row. A recording job
/// still waiting in the queue has no row yet; enqueueing it again under its dedupe key
/// (`recording:{RecordingSid}`) creates nothing.
pub async fn completed_calls_without_recording(
    db: &Db,
    window: &Window,
) -> Result<Vec<CallWithoutRecording>, StoreError> {
    candidates(
        db,
        "SELECT c.call_sid, c.ended_at FROM call c \
         LEFT JOIN reconcile_check r ON r.kind = 'recording' AND r.sid = c.call_sid \
         WHERE c.status = 'completed' AND c.ended_at IS NOT NULL \
           AND c.ended_at < $1 AND c.ended_at >= $2 \
           AND NOT EXISTS (SELECT 1 FROM recording x WHERE x.call_sid = c.call_sid) \
           AND (r.next_at IS NULL OR r.next_at <= $3) \
         ORDER BY c.ended_at, c.id LIMIT $4",
        window,
        |r: NoRecordingRow| CallWithoutRecording {
            call_sid: r.call_sid,
            ended_at: from_ms(r.ended_at),
        },
    )
    .await
}

/// How long the `checks`-th check (1 = the first) holds an item back: `after × 2^(checks−1)`,
/// at most [`MAX_BACKOFF`].
pub fn backoff(after: Duration, checks: u32) -> Duration {
    let factor = 1u32 << checks.saturating_sub(1).min(16);
    after.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Records that `sid` was checked at `now` and what was seen; holds it back for
/// [`backoff`]`(after, checks)`. Returns the number of checks so far.
pub async fn mark_checked(
    db: &Db,
    kind: CheckKind,
    sid: &str,
    outcome: &str,
    after: Duration,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let previous: Option<i64> =
        sqlx::query_scalar("SELECT checks FROM reconcile_check WHERE kind = $1 AND sid = $2")
            .bind(kind.as_str())
            .bind(sid)
            .fetch_optional(db.pool())
            .await?;
    let checks = u32::try_from(previous.unwrap_or(0))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let hold = chrono::Duration::from_std(backoff(after, checks))
        .unwrap_or_else(|_| chrono::Duration::hours(24));
    sqlx::query(
        "INSERT INTO reconcile_check (kind, sid, checks, checked_at, next_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (kind, sid) DO UPDATE SET checks = excluded.checks, \
           checked_at = excluded.checked_at, next_at = excluded.next_at, \
           outcome = excluded.outcome",
    )
    .bind(kind.as_str())
    .bind(sid)
    .bind(i64::from(checks))
    .bind(to_ms(now))
    .bind(to_ms(now + hold))
    .bind(outcome)
    .execute(db.pool())
    .await?;
    Ok(checks)
}

/// One remembered check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How many times the item was checked.
    pub checks: u32,
    /// The last check.
    pub checked_at: DateTime<Utc>,
    /// Not a candidate again before this.
    pub next_at: DateTime<Utc>,
    /// What the last check saw.
    pub outcome: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    checks: i64,
    checked_at: i64,
    next_at: i64,
    outcome: Option<String>,
}

/// The remembered check of an item, if any.
pub async fn get_check(db: &Db, kind: CheckKind, sid: &str) -> Result<Option<Check>, StoreError> {
    Ok(sqlx::query_as::<_, CheckRow>(
        "SELECT checks, checked_at, next_at, outcome FROM reconcile_check \
         WHERE kind = $1 AND sid = $2",
    )
    .bind(kind.as_str())
    .bind(sid)
    .fetch_optional(db.pool())
    .await?
    .map(|r| Check {
        checks: u32::try_from(r.checks).unwrap_or(u32::MAX),
        checked_at: from_ms(r.checked_at),
        next_at: from_ms(r.next_at),
        outcome: r.outcome,
    }))
}

/// Forgets checks made before `before` (their items are past the horizon). Returns how many.
pub async fn prune_checks(db: &Db, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM reconcile_check WHERE checked_at < $1")
            .bind(to_ms(before))
            .execute(db.pool())
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_doubles_per_check_up_to_a_day() {
        let ten = Duration::from_secs(600);
        assert_eq!(backoff(ten, 1), ten);
        assert_eq!(backoff(ten, 2), ten * 2);
        assert_eq!(backoff(ten, 4), ten * 8);
        assert_eq!(backoff(ten, 40), MAX_BACKOFF);
        assert_eq!(backoff(ten, 0), ten);
    }
}

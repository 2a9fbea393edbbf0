//! The send path's bookkeeping on outbound WhatsApp messages, next to [`super::messages`]
//! (which owns creation, provider sids and statuses).
//!
//! **Ambiguous attempts.** A `POST` to the provider that times out or gets a 5xx may still have
//! sent the message. Before each attempt the worker calls [`begin_send_attempt`], which sets
//! `attempt_started_at` unless it is already set, so the column always holds the start of the
//! *earliest attempt that may have sent* the message; the next attempt looks for provider
//! messages created since then before it sends again. When an attempt ends in a way that proves
//! nothing was sent (429, a 4xx, a refused connection), [`end_send_attempt_unsent`] puts the
//! column back to what it was before that attempt, so a plain rate-limit retry does not pay for
//! a lookup. A worker that dies mid-request leaves the column set: the next attempt looks first.
//!
//! **Operator retry.** A message the provider refused before accepting it (no provider sid) is
//! `failed`, and its send job dead; [`reopen_refused`] puts it back to `queued` for
//! [`crate::retry_effect`], so the retried job sends it instead of finding it final. A message
//! with a provider sid is never reopened.
//!
//! Idempotency keys are owned by [`super::messages::create_outbound`]; [`message_id_for_key`]
//! only lets the send API find the message a key already names before it re-checks anything.

use chrono::{DateTime, Utc};

use crate::store::error::StoreError;
use crate::store::{Db, from_ms, now_ms, returned, to_ms};

/// Marks the start of a send attempt of outbound message `id`. Returns the value the column had
/// before (pass it to [`end_send_attempt_unsent`]) and the value it has now (the start of the
/// earliest attempt that may have sent the message). `NotFound` for an unknown id.
pub async fn begin_send_attempt(
    db: &Db,
    id: &str,
) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), StoreError> {
    let before = send_attempt_started_at(db, id).await?;
    let now = now_ms();
    let row: Vec<(Option<i64>,)> = sqlx::query_as(
        "UPDATE whatsapp_message SET attempt_started_at = COALESCE(attempt_started_at, $2) \
         WHERE id = $1 AND direction = 'outbound' RETURNING attempt_started_at",
    )
    .bind(id)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let (Some(started),) = returned(row).ok_or(StoreError::NotFound)? else {
        return Err(StoreError::Invalid(format!(
            "message {id} has no attempt start after marking it"
        )));
    };
    Ok((before, from_ms(started)))
}

/// The attempt that began with [`begin_send_attempt`] provably sent nothing: restores the
/// column to `before` (unless a provider sid was stored meanwhile, when it no longer matters).
pub async fn end_send_attempt_unsent(
    db: &Db,
    id: &str,
    before: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE whatsapp_message SET attempt_started_at = $2 \
         WHERE id = $1 AND direction = 'outbound' AND provider_sid IS NULL",
    )
    .bind(id)
    .bind(before.map(to_ms))
    .execute(db.pool())
    .await?;
    Ok(())
}

/// When the earliest attempt that may have sent outbound message `id` began (`None`: no attempt
/// may have sent it). `NotFound` for an unknown id.
pub async fn send_attempt_started_at(
    db: &Db,
    id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT attempt_started_at FROM whatsapp_message WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    let (at,) = row.ok_or(StoreError::NotFound)?;
    Ok(at.map(from_ms))
}

/// The id of the outbound message created with idempotency key `key`, if any.
pub async fn message_id_for_key(db: &Db, key: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM whatsapp_message WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(id,)| id))
}

/// The provider's refusal a reopened message carried, so a caller that cannot queue its job
/// after all can put it back ([`super::statuses::set_status_by_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The terminal status it had (`failed`, `undelivered`, `canceled`).
    pub status: String,
    /// The provider's error code.
    pub error_code: Option<i64>,
    /// The provider's (or our) reason.
    pub error_message: Option<String>,
}

/// An operator retry of a `whatsapp.send` whose message was refused **before** any provider sid
/// existed: the message goes back to `queued` (error cleared, so a later success does not
/// carry the old code) and the send job can run again. Only a row that is still outbound,
/// without a provider sid and in a terminal status moves (one conditional `UPDATE`), so a
/// message the provider accepted is never reopened. Returns the refusal it cleared, `None`
/// when nothing moved. `attempt_started_at` is kept: an earlier ambiguous attempt is still
/// looked up before the resend.
pub async fn reopen_refused(db: &Db, id: &str) -> Result<Option<Refusal>, StoreError> {
    let row: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT status, error_code, error_message FROM whatsapp_message \
         WHERE id = $1 AND direction = 'outbound' AND provider_sid IS NULL",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let Some((status, error_code, error_message)) = row else {
        return Ok(None);
    };
    if !super::statuses::is_terminal_message_status(&status) {
        return Ok(None);
    }
    // Conditional on the status just read: a concurrent change (another operator, a late
    // callback naming our id) makes this a no-op instead of overwriting it.
    let moved = sqlx::query(
        "UPDATE whatsapp_message SET status = $2, error_code = NULL, error_message = NULL, \
                updated_at = $3 \
         WHERE id = $1 AND direction = 'outbound' AND provider_sid IS NULL AND status = $4",
    )
    .bind(id)
    .bind(super::messages::OUTBOUND_INITIAL_STATUS)
    .bind(now_ms())
    .bind(status.as_str())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok((moved > 0).then_some(Refusal {
        status,
        error_code,
        error_message,
    }))
}

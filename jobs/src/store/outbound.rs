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
//! Idempotency keys are owned by [`super::messages::create_outbound`]; [`message_id_for_key`]
//! only lets the send API find the message a key already names before it re-checks anything.

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::{Db, from_ms, now_ms, returned, to_ms};

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

//! What the operator console reads beyond the plain listings: a day's bounds in the console's
//! zone, today's call and WhatsApp counts, and the one search box.
//!
//! * [`day_bounds`] — the UTC instants a local calendar day starts and ends (a day is 23 or 25
//!   hours around DST).
//! * [`day_counts`] — calls started and WhatsApp messages created in a window, counted by how
//!   far they got. Statuses only move forward (see the module doc of [`super`]), so "reached
//!   sent or beyond" is a status test.
//! * [`search`] — a CallSid, RecordingSid, MessageSid (Twilio `SM…`/`MM…` or a Baileys id), our
//!   message id, or a phone number in any common Israeli spelling, to the calls, messages and
//!   customers it names. Job ids are the queue's, looked up by the caller.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::error::StoreError;
use super::{Db, to_ms};
use crate::phone::E164;

/// The UTC start (inclusive) and end (exclusive) of the calendar day `date` in `tz`.
pub fn day_bounds(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        // A zone whose clocks skip midnight (DST at 00:00) starts the day at the first
        // existing minute.
        (0..=180)
            .find_map(|m| {
                tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc())
    };
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    (start(date), start(next))
}

/// Today's date in `tz`.
pub fn today(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// Calls started in a window, by how far they got (`GET /api/stats/today` shows today's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CallsToday))]
#[serde(deny_unknown_fields)]
pub struct CallCounts {
    /// All of them.
    pub total: i64,
    /// Answered (in progress or completed).
    pub answered: i64,
    /// With a stored recording.
    pub with_recording: i64,
    /// With a transcript.
    pub transcribed: i64,
}

/// WhatsApp messages created in a window, by how far they got (`GET /api/stats/today` shows
/// today's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WhatsAppToday))]
#[serde(deny_unknown_fields)]
pub struct MessageCounts {
    /// Outbound, sent or beyond (delivered, read).
    pub sent: i64,
    /// Outbound, delivered or read.
    pub delivered: i64,
    /// Outbound, read.
    pub read: i64,
    /// Outbound, failed or undelivered.
    pub failed: i64,
    /// Inbound.
    pub received: i64,
}

/// Calls started and messages created in `[from, to)`.
pub async fn day_counts(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(CallCounts, MessageCounts), StoreError> {
    let (c0, c1, c2, c3): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), \
           COALESCE(SUM(CASE WHEN c.status IN ('in-progress', 'completed') THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM recording r WHERE r.call_sid = c.call_sid \
             AND r.status IN ('stored', 'expired')) THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM transcript t \
             WHERE t.call_sid = c.call_sid) THEN 1 ELSE 0 END), 0) \
         FROM call c WHERE c.started_at >= $1 AND c.started_at < $2",
    )
    .bind(to_ms(from))
    .bind(to_ms(to))
    .fetch_one(db.pool())
    .await?;
    let (m0, m1, m2, m3, m4): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT \
           COALESCE(SUM(CASE WHEN direction = 'outbound' \
             AND status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN direction = 'outbound' \
             AND status IN ('delivered', 'read') THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN direction = 'outbound' AND status = 'read' THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN direction = 'outbound' \
             AND status IN ('failed', 'undelivered') THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END), 0) \
         FROM whatsapp_message WHERE created_at >= $1 AND created_at < $2",
    )
    .bind(to_ms(from))
    .bind(to_ms(to))
    .fetch_one(db.pool())
    .await?;
    Ok((
        CallCounts {
            total: c0,
            answered: c1,
            with_recording: c2,
            transcribed: c3,
        },
        MessageCounts {
            sent: m0,
            delivered: m1,
            read: m2,
            failed: m3,
            received: m4,
        },
    ))
}

/// What a search result is. The store finds calls, messages and customers; the operator API's
/// search adds the job a job id names, from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ResultType))]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    /// A job (`id` is the job id).
    Job,
    /// A call (`id` is the CallSid).
    Call,
    /// A WhatsApp message (`id` is our message id).
    Message,
    /// A customer (`id` is the E.164 phone, `GET /api/customers/{phone}`).
    Customer,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SearchResult))]
#[serde(deny_unknown_fields)]
pub struct Hit {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: HitKind,
    /// Its id.
    pub id: String,
    /// A line for a person.
    pub title: String,
}

/// How many calls a phone search lists beside the customers.
const CALLS_PER_NUMBER: i64 = 5;

/// The number `q` spells, in any of the common Israeli forms (`050-123-4567`,
/// `+972501234567`, `0501234567`, `972501234567`, spaces and brackets allowed); `None` when `q`
/// is not (only) a phone number.
pub fn phone_query(q: &str) -> Option<E164> {
    let q = q.trim();
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let only_phone_chars = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'));
    if !only_phone_chars || !(8..=15).contains(&digits.len()) {
        return None;
    }
    // Without a plus, a leading country code reads as a national number; try it as
    // international first when it starts with Israel's.
    if !q.starts_with('+')
        && digits.starts_with("972")
        && let Ok(n) = E164::parse(&format!("+{digits}"))
    {
        return Some(n);
    }
    E164::parse(q).ok()
}

/// The calls, messages and customers `q` names (see the module doc); empty when none.
pub async fn search(db: &Db, q: &str) -> Result<Vec<Hit>, StoreError> {
    let q = q.trim();
    let mut hits = Vec::new();
    if let Some(phone) = phone_query(q) {
        let customers: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT phone, name FROM customer WHERE phone = $1 ORDER BY id")
                .bind(phone.as_str())
                .fetch_all(db.pool())
                .await?;
        for (p, name) in customers {
            let title = match name {
                Some(n) => format!("{n} {p}"),
                None => p.clone(),
            };
            hits.push(Hit {
                kind: HitKind::Customer,
                id: p,
                title,
            });
        }
        let calls: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT call_sid, status, started_at FROM call WHERE from_phone = $1 OR to_phone = $1 \
             ORDER BY started_at DESC LIMIT $2",
        )
        .bind(phone.as_str())
        .bind(CALLS_PER_NUMBER)
        .fetch_all(db.pool())
        .await?;
        hits.extend(calls.into_iter().map(|(sid, status, at)| Hit {
            kind: HitKind::Call,
            title: format!("{sid} {status} {}", super::from_ms(at).to_rfc3339()),
            id: sid,
        }));
        return Ok(hits);
    }
    if q.is_empty() || q.len() > 200 {
        return Ok(hits);
    }
    let call: Option<(String, String)> =
        sqlx::query_as("SELECT call_sid, status FROM call WHERE call_sid = $1")
            .bind(q)
            .fetch_optional(db.pool())
            .await?;
    if let Some((sid, status)) = call {
        hits.push(Hit {
            kind: HitKind::Call,
            title: format!("{sid} {status}"),
            id: sid,
        });
    }
    let recording: Option<(String, String)> =
        sqlx::query_as("SELECT call_sid, status FROM recording WHERE recording_sid = $1")
            .bind(q)
            .fetch_optional(db.pool())
            .await?;
    if let Some((call_sid, status)) = recording {
        hits.push(Hit {
            kind: HitKind::Call,
            title: format!("{q} ({status}) of {call_sid}"),
            id: call_sid,
        });
    }
    let messages: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, direction, status FROM whatsapp_message WHERE provider_sid = $1 OR id = $1",
    )
    .bind(q)
    .fetch_all(db.pool())
    .await?;
    hits.extend(messages.into_iter().map(|(id, direction, status)| Hit {
        kind: HitKind::Message,
        title: format!("WhatsApp {direction} {status}"),
        id,
    }));
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_israeli_spelling_is_one_number() {
        for q in [
            "050-123-4567",
            "+972501234567",
            "0501234567",
            "972501234567",
            "+972 50-123-4567",
            "(050) 123 4567",
        ] {
            assert_eq!(
                phone_query(q).map(|n| n.as_str().to_owned()),
                Some("+972501234567".to_owned()),
                "{q}"
            );
        }
        for not in ["CA0123", "1234", "0190d2a4-0000-7000-8000-000000000001", ""] {
            assert_eq!(phone_query(not), None, "{not}");
        }
    }

    #[test]
    fn a_local_day_is_its_own_length_around_dst() {
        let tz = chrono_tz::Asia::Jerusalem;
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (a, b) = day_bounds(tz, day("2026-01-15"));
        assert_eq!(a.to_rfc3339(), "2026-01-14T22:00:00+00:00");
        assert_eq!((b - a).num_hours(), 24);
        // Israel springs forward on Friday 27 March 2026 and falls back on 25 October.
        let (a, b) = day_bounds(tz, day("2026-03-27"));
        assert_eq!((b - a).num_hours(), 23);
        let (a, b) = day_bounds(tz, day("2026-10-25"));
        assert_eq!((b - a).num_hours(), 25);
    }
}

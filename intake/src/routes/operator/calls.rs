//! `/api/calls…`: calls for operators.
//!
//! * `GET /api/calls?date=&status=&has_transcript=&cursor=&limit=` — newest first,
//!   keyset-paged ([`moked_jobs::store::calls::list_calls`]): `{"calls":[…],"next_cursor"}`;
//!   `date` (`YYYY-MM-DD`) is a calendar day in the console's zone (`CLOCK_TZ`, as the clock
//!   published it), `has_transcript` is `true` or `false`.
//! * `GET /api/calls/{call_sid}` — the call, its business and customer, its history (status
//!   callbacks and the voice pipeline's steps, oldest first), its recordings (each with a
//!   `download_url` served by [`super::recordings`] once stored) and its latest transcript.
//!
//! Numbers are shown in full: see the module doc of [`super`].

use axum::Json;
use axum::extract::{Path, State};
use moked_jobs::store::calls::{self as store_calls, CallDetail, CallEvent, CallFilter, CallPage};
use moked_jobs::store::recordings::Recording;
use moked_jobs::store::{clock_tasks, console};

use super::schema::{self, CallEventView, CallListQuery, CallView, RecordingView};
use super::{ApiQuery, page_size};
use crate::AppState;
use crate::error::ApiError;

/// Calls, newest first, optionally of one day, status, and with or without a transcript.
#[utoipa::path(
    get,
    path = "/calls",
    tag = "calls",
    params(CallListQuery),
    responses(
        (status = 200, description = "One page of calls", body = CallPage),
        (status = 400, description = "Bad date, has_transcript, cursor or limit", body = schema::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CallListQuery>,
) -> Result<Json<CallPage>, ApiError> {
    let limit = page_size(q.limit)?;
    let cursor = q.cursor.filter(|c| !c.trim().is_empty());
    let filter = call_filter(&state, q.date, q.status, q.has_transcript).await?;
    let page = store_calls::list_calls(&state.db, &filter, cursor.as_deref(), limit).await?;
    Ok(Json(page))
}

/// The store filter of the listing's query: the day in the console's zone, the status, and
/// `has_transcript` as `true`/`false` (anything else is a 400 naming it).
async fn call_filter(
    state: &AppState,
    date: Option<String>,
    status: Option<String>,
    has_transcript: Option<String>,
) -> Result<CallFilter, ApiError> {
    let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut filter = CallFilter {
        status: present(status),
        has_transcript: match present(has_transcript).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "has_transcript must be true or false (got `{other}`)"
                )));
            }
        },
        ..CallFilter::default()
    };
    if let Some(date) = present(date) {
        let day = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(format!("date must be YYYY-MM-DD (got `{date}`)"))
        })?;
        let tz = clock_tasks::console_tz(&state.db).await?;
        let (from, until) = console::day_bounds(tz, day);
        filter.from = Some(from);
        filter.until = Some(until);
    }
    Ok(filter)
}

/// One call with its history, recordings and transcript.
#[utoipa::path(
    get,
    path = "/calls/{call_sid}",
    tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio CallSid")),
    responses(
        (status = 200, description = "The call", body = CallView),
        (status = 404, description = "No such call", body = schema::ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> Result<Json<CallView>, ApiError> {
    let detail = store_calls::get_call(&state.db, call_sid.trim())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call with CallSid {call_sid}")))?;
    Ok(Json(call_view(&state, detail)))
}

/// The `status` of an event: the call status for status callbacks, the step's name otherwise.
fn event_view(e: CallEvent) -> CallEventView {
    let status = match (e.kind.as_str(), e.status) {
        ("status", Some(status)) => status,
        _ => e.kind,
    };
    CallEventView { status, at: e.at }
}

/// A recording with its download URL (only once stored, and only when this intake can read the
/// recordings store).
pub(crate) fn recording_view(state: &AppState, r: Recording) -> RecordingView {
    let downloadable =
        state.recordings.is_some() && r.status == "stored" && r.media_location.is_some();
    RecordingView {
        download_url: downloadable.then(|| {
            format!(
                "{}/api/recordings/{}/audio",
                state.core.public_host.trim_end_matches('/'),
                r.recording_sid
            )
        }),
        recording_sid: r.recording_sid,
        status: r.status,
        duration_s: r.duration_s,
        stored_at: r.stored_at,
        size_bytes: r.size_bytes,
    }
}

fn call_view(state: &AppState, d: CallDetail) -> CallView {
    CallView {
        call_sid: d.call.call_sid,
        status: d.call.status,
        from: d.call.from,
        to: d.call.to,
        business: d.business,
        customer: d.customer,
        started_at: d.call.started_at,
        ended_at: d.call.ended_at,
        events: d.events.into_iter().map(event_view).collect(),
        recordings: d
            .recordings
            .into_iter()
            .map(|r| recording_view(state, r))
            .collect(),
        transcript: d.transcript,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn status_events_show_the_status_and_pipeline_events_their_step() {
        let status = CallEvent {
            kind: "status".into(),
            status: Some("completed".into()),
            detail: None,
            at: Utc::now(),
        };
        assert_eq!(event_view(status).status, "completed");
        let step = CallEvent {
            kind: "recording.stored".into(),
            status: None,
            detail: Some("{}".into()),
            at: Utc::now(),
        };
        assert_eq!(event_view(step).status, "recording.stored");
    }
}

//! `/api/stats/…`: the console's dashboard.
//!
//! * `GET /api/stats/today` — calls and WhatsApp messages of today, the calendar day in the
//!   console's zone (`CLOCK_TZ` as the clock published it, [`clock_tasks::console_tz`]; Asia/
//!   Jerusalem before any clock ran), from the store ([`console::day_counts`]).
//! * `GET /api/stats/history?span=minute|hour` — the cluster-wide outcome counters kept in the
//!   queue by every worker process ([`moked_jobs::queue::outcomes`]): the last 60 minutes or
//!   the last 24 hours, oldest first, every bucket present (empty ones with no kinds), each
//!   kind with all three outcomes. Queue depth and the oldest job's age are
//!   `GET /api/jobs/stats`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use moked_jobs::queue::outcomes::{Outcome, Span};
use moked_jobs::store::clock_tasks;
use moked_jobs::store::console::{self, CallCounts, MessageCounts};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiQuery;
use super::schema::ErrorBody;
use crate::AppState;
use crate::error::ApiError;

/// Today at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Today {
    /// The zone "today" is read in (`CLOCK_TZ`).
    #[schema(example = "Asia/Jerusalem")]
    pub tz: String,
    /// When today began there.
    pub since: DateTime<Utc>,
    /// Calls.
    pub calls: CallCounts,
    /// WhatsApp messages.
    pub whatsapp: MessageCounts,
}

/// Calls and WhatsApp messages of today.
#[utoipa::path(
    get,
    path = "/stats/today",
    tag = "stats",
    responses(
        (status = 200, description = "Today's counts", body = Today),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub async fn today(State(state): State<AppState>) -> Result<Json<Today>, ApiError> {
    let tz = clock_tasks::console_tz(&state.db).await?;
    let (since, until) = console::day_bounds(tz, console::today(tz, Utc::now()));
    let (calls, messages) = console::day_counts(&state.db, since, until).await?;
    Ok(Json(Today {
        tz: tz.name().to_owned(),
        since,
        calls,
        whatsapp: messages,
    }))
}

/// `GET /api/stats/history` span.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `minute` (the last 60 minutes, the default) or `hour` (the last 24 hours).
    pub span: Option<String>,
}

/// Attempts of one kind that came to each outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeCounts {
    /// Finished.
    pub done: u64,
    /// Failed, to be tried again.
    pub retry: u64,
    /// Failed for good.
    pub dead: u64,
}

/// One minute or hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryBucket {
    /// When it starts.
    pub at: DateTime<Utc>,
    /// Per kind (kinds with no attempts in it left out).
    pub counts: BTreeMap<String, OutcomeCounts>,
}

/// The queue over time, from every worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// `minute` or `hour`.
    #[schema(example = "minute")]
    pub span: String,
    /// Oldest first: 60 minutes or 24 hours, the current one last.
    pub buckets: Vec<HistoryBucket>,
}

/// Processed and failed jobs per minute or hour, by kind.
#[utoipa::path(
    get,
    path = "/stats/history",
    tag = "stats",
    params(HistoryQuery),
    responses(
        (status = 200, description = "The buckets, oldest first", body = History),
        (status = 400, description = "A span other than minute or hour", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let (span, name, back) = match q.span.as_deref().map(str::trim) {
        None | Some("") | Some("minute") => (Span::Minute, "minute", Duration::minutes(59)),
        Some("hour") => (Span::Hour, "hour", Duration::hours(23)),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "span must be minute or hour (got `{other}`)"
            )));
        }
    };
    let now = Utc::now();
    let series = state.queue.outcome_series(span, now - back, now).await?;
    let buckets = series
        .into_iter()
        .map(|b| HistoryBucket {
            at: b.at,
            counts: b
                .counts
                .into_iter()
                .map(|(kind, by)| {
                    let n = |o: Outcome| by.get(&o).copied().unwrap_or(0);
                    (
                        kind,
                        OutcomeCounts {
                            done: n(Outcome::Done),
                            retry: n(Outcome::Retry),
                            dead: n(Outcome::Dead),
                        },
                    )
                })
                .collect(),
        })
        .collect();
    Ok(Json(History {
        span: name.to_owned(),
        buckets,
    }))
}

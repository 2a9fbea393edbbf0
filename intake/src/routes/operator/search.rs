//! `GET /api/search?q=…`: the console's one search box.
//!
//! `q` may be a job id (the queue is asked), a CallSid (`CA…`), a RecordingSid (`RE…`, found
//! as its call), a MessageSid (`SM…`/`MM…`, a Baileys id) or our message id, or a phone number
//! in any common Israeli spelling (`050-123-4567`, `+972501234567`, `0501234567`,
//! `972501234567`), which finds the customers with that number and their latest calls
//! ([`moked_jobs::store::console::search`]). The page opens a `call` in the call view, a
//! `customer` in the timeline, a `job` in the job view, a `message` in its customer's timeline.
//! Numbers are shown unmasked, as in the calls and customers the results lead to.

use axum::Json;
use axum::extract::State;
use moked_jobs::store::console::{self, Hit, HitKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiQuery;
use super::schema::ErrorBody;
use crate::AppState;
use crate::error::ApiError;

/// The longest query taken.
const MAX_QUERY: usize = 200;

/// `GET /api/search` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// A job id, CallSid, RecordingSid, MessageSid or phone number.
    pub q: Option<String>,
}

/// Search results.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchResults {
    /// The query as understood (trimmed).
    pub query: String,
    /// What it names; empty when nothing.
    pub results: Vec<Hit>,
}

/// Find a job, call, message or customer by id or phone number.
#[utoipa::path(
    get,
    path = "/search",
    tag = "search",
    params(SearchQuery),
    responses(
        (status = 200, description = "What the query names (possibly nothing)", body = SearchResults),
        (status = 400, description = "An empty or overlong query", body = ErrorBody),
        (status = 503, description = "Store or queue unavailable", body = ErrorBody),
    )
)]
pub async fn find(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let query = q.q.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if query.is_empty() {
        return Err(ApiError::bad_request("q is empty"));
    }
    if query.chars().count() > MAX_QUERY {
        return Err(ApiError::bad_request(format!(
            "q is longer than {MAX_QUERY} characters"
        )));
    }
    let mut results = Vec::new();
    // Job ids are UUIDs; anything else is not asked of the queue.
    if uuid::Uuid::parse_str(&query).is_ok()
        && let Some(job) = state.queue.get(&query).await?
    {
        results.push(Hit {
            kind: HitKind::Job,
            title: format!("{} {}", job.summary.kind, job.summary.state),
            id: job.summary.id,
        });
    }
    results.extend(console::search(&state.db, &query).await?);
    Ok(Json(SearchResults { query, results }))
}

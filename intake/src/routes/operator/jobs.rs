//! `/api/jobs…`: the queue for operators, answered with the shared
//! [`moked_jobs::queue::view`] (the same JSON `moked-worker jobs … --json` prints).
//!
//! * `GET /api/jobs?state=&kind=&cursor=&limit=` — newest first; `total` comes from the
//!   queue's per-state counts (O(1) on Redis, an indexed count on the database), so polling it
//!   is cheap.
//! * `GET /api/jobs/stats` — counts per state, `by_kind`, `oldest_queued_age_s`.
//! * `GET /api/jobs/{id}` — payload (numbers masked) and attempt history.
//! * `POST /api/jobs/{id}/retry` — a dead or retrying job queued again now, its effect
//!   re-attempted ([`moked_jobs::retry_effect`]: e.g. a refused WhatsApp message goes back to
//!   `queued` and is sent); 409 `conflict` in any other state, 409 `not_retryable` with the
//!   reason when the effect cannot be re-attempted (a message the provider already accepted).
//!   `POST /api/jobs/{id}/discard` — a queued, retrying or dead job discarded; 409 otherwise.
//!   Both answer the job as it is afterwards.
//! * `GET /api/jobs?…&q=TEXT` — only jobs whose `last_error` contains TEXT, gathered by a
//!   bounded scan of the listing (`search_errors`).
//! * `POST /api/jobs/discard?state=dead|retrying|queued&kind=` — every such job discarded:
//!   `{"discarded": N}`.
//! * `POST /api/jobs/retry?state=dead&kind=` — every dead (or `state=retrying`) job,
//!   optionally of one kind, retried by the same rule: `{"retried": N, "refused": M,
//!   "refusals": [{"id","kind","reason"}…]}` (at most 100 listed)
//!   (`moked-worker jobs retry --all-dead [--kind K]` / `--all-retrying`).

use axum::Json;
use axum::extract::{Path, State};
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::view::{self, DetailView, StatsView};
use moked_jobs::queue::{JobPage, JobState, ListQuery};
use moked_jobs::retry_effect::{self, Bulk, Outcome, RetryError};

use super::audit::{self, Actor, Outcome as AuditOutcome};
use super::schema::{self, BulkDiscardQuery, BulkRetryQuery, JobListQuery};
use super::{ApiQuery, page_size};
use crate::AppState;
use crate::error::ApiError;

fn parse_state(s: &str) -> Result<JobState, ApiError> {
    s.trim()
        .parse::<JobState>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn parse_kind(s: &str) -> Result<JobKind, ApiError> {
    s.trim()
        .parse::<JobKind>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// List jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(JobListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = JobPage),
        (status = 400, description = "Unknown state or kind, bad cursor or limit", body = schema::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let query = ListQuery {
        state: non_empty(q.state).as_deref().map(parse_state).transpose()?,
        kind: non_empty(q.kind).as_deref().map(parse_kind).transpose()?,
        cursor: non_empty(q.cursor),
        limit: page_size(q.limit)?,
    };
    let page = match non_empty(q.q) {
        None => state.queue.list(&query).await?,
        Some(text) => search_errors(&state, query, &text).await?,
    };
    Ok(Json(page))
}

/// How many jobs one error search reads at most, and in how many listing calls, before it
/// answers (a page of fewer matches, and a cursor to read on).
const ERROR_SCAN: usize = 5_000;
const ERROR_SCAN_CALLS: usize = 50;

/// The jobs of `query` whose last error contains `text`: pages of the listing read in order
/// until `limit` jobs matched, the listing ended, or the scan's bounds were reached. Neither
/// backend indexes error text (a substring cannot use an index anyway); the bounds keep one
/// request from reading the whole queue. Each page read is only as long as the matches still
/// missing, so a page never overshoots `limit` and the listing's own cursor resumes exactly
/// where the scan stopped.
async fn search_errors(
    state: &AppState,
    mut query: ListQuery,
    text: &str,
) -> Result<JobPage, ApiError> {
    let limit = query.limit as usize;
    let (mut jobs, mut read) = (Vec::new(), 0usize);
    for _ in 0..ERROR_SCAN_CALLS {
        query.limit = u32::try_from(limit - jobs.len()).unwrap_or(1);
        let page = state.queue.list(&query).await?;
        read += page.jobs.len();
        jobs.extend(
            page.jobs
                .into_iter()
                .filter(|j| j.last_error.as_deref().is_some_and(|e| e.contains(text))),
        );
        query.cursor = page.next_cursor;
        if jobs.len() >= limit || query.cursor.is_none() || read >= ERROR_SCAN {
            break;
        }
    }
    Ok(JobPage {
        total: jobs.len() as u64,
        jobs,
        next_cursor: query.cursor,
    })
}

/// Counts per state and kind.
#[utoipa::path(
    get,
    path = "/jobs/stats",
    tag = "jobs",
    responses(
        (status = 200, description = "Counts", body = StatsView),
    )
)]
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsView>, ApiError> {
    let stats = state.queue.stats().await?;
    Ok(Json(view::stats(&stats)))
}

/// One job in full.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = DetailView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DetailView>, ApiError> {
    let job = state.queue.get(&id).await?.ok_or_else(|| no_job(&id))?;
    Ok(Json(view::detail(&job)))
}

fn no_job(id: &str) -> ApiError {
    ApiError::not_found(format!("no job with id {id}"))
}

/// Runs `act` on job `id` and answers the job afterwards: 404 for an unknown id, 409 (naming
/// the state) when the job is in none of the `allowed` states.
async fn act(
    state: &AppState,
    id: &str,
    verb: &str,
    allowed: &[JobState],
    moved: bool,
) -> Result<Json<DetailView>, ApiError> {
    let job = state.queue.get(id).await?.ok_or_else(|| no_job(id))?;
    if !moved {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::conflict(format!(
            "job {id} is {}; only {} jobs can be {verb}",
            job.summary.state,
            names.join(" or ")
        )));
    }
    Ok(Json(view::detail(&job)))
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::Queue(e) => e.into(),
            RetryError::Store(e) => e.into(),
        }
    }
}

/// The 409 of a retry the job's effect does not allow.
fn not_retryable(id: &str, kind: &str, reason: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::CONFLICT,
        "not_retryable",
        format!("job {id} ({kind}) cannot be retried: {reason}"),
    )
}

/// Queue a dead or retrying job again, now, re-attempting its effect.
#[utoipa::path(
    post,
    path = "/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, queued again (its effect prepared: a refused WhatsApp message is queued again)", body = DetailView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "`conflict`: the job is not dead or retrying; `not_retryable`: its effect cannot be re-attempted (e.g. the provider already accepted the message), with the reason", body = schema::ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<DetailView>, ApiError> {
    const ACTION: &str = "job.retry";
    match retry_effect::retry(state.queue.as_ref(), &state.db, &id).await? {
        Outcome::Retried(job) => {
            let detail = format!("{} queued again", job.summary.kind);
            audit::record(&state, &actor, ACTION, &id, AuditOutcome::Ok, detail).await;
            Ok(Json(view::detail(&job)))
        }
        Outcome::NotFound => Err(no_job(&id)),
        Outcome::WrongState(now) => {
            let e = ApiError::conflict(format!(
                "job {id} is {now}; only dead or retrying jobs can be retried"
            ));
            let detail = e.message.clone();
            audit::record(&state, &actor, ACTION, &id, AuditOutcome::Conflict, detail).await;
            Err(e)
        }
        Outcome::Refused { kind, reason } => {
            let e = not_retryable(&id, &kind, &reason);
            let detail = e.message.clone();
            audit::record(&state, &actor, ACTION, &id, AuditOutcome::Refused, detail).await;
            Err(e)
        }
    }
}

/// Discard a queued, retrying or dead job.
#[utoipa::path(
    post,
    path = "/jobs/{id}/discard",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, discarded", body = DetailView),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "The job is running, done or already discarded", body = schema::ErrorBody),
    )
)]
pub async fn discard(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<DetailView>, ApiError> {
    let moved = state.queue.discard(&id).await?;
    let answer = act(
        &state,
        &id,
        "discarded",
        &[JobState::Queued, JobState::Retrying, JobState::Dead],
        moved,
    )
    .await;
    let (outcome, detail) = match &answer {
        Ok(_) => (AuditOutcome::Ok, "discarded".to_owned()),
        Err(e) if e.status == http::StatusCode::CONFLICT => {
            (AuditOutcome::Conflict, e.message.clone())
        }
        // An unknown id (404) or a failing queue: nothing was acted on.
        Err(_) => return answer,
    };
    audit::record(&state, &actor, "job.discard", &id, outcome, detail).await;
    answer
}

/// Queue every dead (or retrying) job again, optionally of one kind, each by the retry rule.
#[utoipa::path(
    post,
    path = "/jobs/retry",
    tag = "jobs",
    params(BulkRetryQuery),
    responses(
        (status = 200, description = "How many jobs were queued again, and the ones whose effect cannot be re-attempted with their reasons", body = Bulk),
        (status = 400, description = "A state other than dead or retrying, or an unknown kind", body = schema::ErrorBody),
    )
)]
pub async fn retry_all(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<BulkRetryQuery>,
) -> Result<Json<Bulk>, ApiError> {
    let (job_state, kind) = bulk_selection(
        q.state,
        q.kind,
        &[JobState::Dead, JobState::Retrying],
        "only dead or retrying jobs can be retried in bulk",
    )?;
    let bulk = retry_effect::retry_all(state.queue.as_ref(), &state.db, job_state, kind).await?;
    audit::record(
        &state,
        &actor,
        "jobs.retry",
        &bulk_target(job_state, kind),
        AuditOutcome::Ok,
        format!("{} retried, {} refused", bulk.retried, bulk.refused),
    )
    .await;
    Ok(Json(bulk))
}

/// Discard every dead (or retrying, or queued) job, optionally of one kind.
#[utoipa::path(
    post,
    path = "/jobs/discard",
    tag = "jobs",
    params(BulkDiscardQuery),
    responses(
        (status = 200, description = "How many jobs were discarded", body = schema::Discarded),
        (status = 400, description = "A state other than dead, retrying or queued, or an unknown kind", body = schema::ErrorBody),
    )
)]
pub async fn discard_all(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<BulkDiscardQuery>,
) -> Result<Json<schema::Discarded>, ApiError> {
    let (job_state, kind) = bulk_selection(
        q.state,
        q.kind,
        &[JobState::Dead, JobState::Retrying, JobState::Queued],
        "only dead, retrying or queued jobs can be discarded in bulk",
    )?;
    let discarded = discard_matching(&state, job_state, kind).await?;
    audit::record(
        &state,
        &actor,
        "jobs.discard",
        &bulk_target(job_state, kind),
        AuditOutcome::Ok,
        format!("{discarded} discarded"),
    )
    .await;
    Ok(Json(schema::Discarded { discarded }))
}

/// The state (default dead, one of `allowed`) and optional kind a bulk action works on; 400
/// with `refusal` for another state.
fn bulk_selection(
    state: Option<String>,
    kind: Option<String>,
    allowed: &[JobState],
    refusal: &str,
) -> Result<(JobState, Option<JobKind>), ApiError> {
    let job_state = match non_empty(state) {
        None => JobState::Dead,
        Some(s) => parse_state(&s)?,
    };
    if !allowed.contains(&job_state) {
        return Err(ApiError::bad_request(format!(
            "{refusal} (got state={job_state})"
        )));
    }
    let kind = non_empty(kind).as_deref().map(parse_kind).transpose()?;
    Ok((job_state, kind))
}

/// Discards the jobs in `state` (of `kind`), a page at a time from the start of the listing
/// (a discarded job leaves it, so the next page is the listing's first again), until a page
/// discards nothing. Jobs entering the state meanwhile may be taken too, as the CLI's would.
async fn discard_matching(
    state: &AppState,
    job_state: JobState,
    kind: Option<JobKind>,
) -> Result<u64, ApiError> {
    let query = ListQuery {
        state: Some(job_state),
        kind,
        cursor: None,
        limit: 500,
    };
    let mut discarded = 0u64;
    loop {
        let page = state.queue.list(&query).await?;
        let mut moved = 0u64;
        for job in &page.jobs {
            if state.queue.discard(&job.id).await? {
                moved += 1;
            }
        }
        discarded += moved;
        if moved == 0 || page.next_cursor.is_none() && moved == page.jobs.len() as u64 {
            return Ok(discarded);
        }
    }
}

/// The audit target of a bulk action: `state=dead&kind=call.started` (`kind=*` for all kinds).
fn bulk_target(state: JobState, kind: Option<JobKind>) -> String {
    format!(
        "state={state}&kind={}",
        kind.map(JobKind::as_str).unwrap_or("*")
    )
}

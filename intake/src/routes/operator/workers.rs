//! `GET /api/workers` and `GET /api/clock`: the fleet and the clock for the console.
//!
//! * Workers come from the queue ([`moked_jobs::queue::Queue::sessions`]): every registered
//!   session with its last heartbeat and the jobs running for it. A session silent longer than
//!   the stale window (`WORKER_STALE_AFTER`, the workers' own setting, default 20 s) is
//!   `stale`: the next live worker's recovery will re-queue its jobs.
//! * The clock's tasks come from the `clock_task` table the clock process publishes
//!   ([`moked_jobs::store::clock_tasks`]): the intake has no clock settings of its own. The
//!   last tick's job is looked up in the queue for its outcome (its state is null once the job
//!   was pruned).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use moked_jobs::queue::RunningJob;
use moked_jobs::store::clock_tasks;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::ErrorBody;
use crate::AppState;
use crate::error::ApiError;

/// One worker session.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSession {
    /// The worker's name (e.g. `worker.1`).
    pub name: String,
    /// The session (`name#uuid`, new per process start).
    pub session: String,
    /// When its process started (from the session's UUIDv7).
    pub started_at: Option<DateTime<Utc>>,
    /// Its last heartbeat or fetch.
    pub last_seen_at: DateTime<Utc>,
    /// Silent longer than `stale_after_s`.
    pub stale: bool,
    /// The jobs running for it, oldest start first.
    pub running: Vec<RunningJob>,
}

/// The fleet.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// The stale window in seconds.
    pub stale_after_s: u64,
    /// Every registered session, by name.
    pub sessions: Vec<WorkerSession>,
}

/// Worker sessions and the jobs they run.
#[utoipa::path(
    get,
    path = "/workers",
    tag = "fleet",
    responses(
        (status = 200, description = "Every worker session", body = Workers),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub async fn workers(State(state): State<AppState>) -> Result<Json<Workers>, ApiError> {
    let stale_after = state.intake.worker_stale_after;
    let stale_after_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    let now = Utc::now();
    let sessions = state.queue.sessions().await?;
    Ok(Json(Workers {
        stale_after_s: stale_after.as_secs(),
        sessions: sessions
            .into_iter()
            .map(|s| WorkerSession {
                stale: (now - s.last_seen_at).num_milliseconds() > stale_after_ms,
                started_at: moked_jobs::queue::WorkerId::started_at(&s.session),
                name: s.name,
                session: s.session,
                last_seen_at: s.last_seen_at,
                running: s.running,
            })
            .collect(),
    }))
}

/// The job of a task's last tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TickJob {
    /// Job id.
    pub id: String,
    /// Its state now (`done`, `retrying`, `dead`, …); null once pruned.
    pub state: Option<String>,
    /// Its last error, if any.
    pub error: Option<String>,
}

/// One scheduled task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockTaskView {
    /// `reconcile`, `health` or `cleanup`.
    pub task: String,
    /// The job kind it enqueues.
    pub kind: String,
    /// Cron expression, 6 fields, seconds first, read in `tz`.
    #[schema(example = "0 */5 * * * *")]
    pub cron: String,
    /// The last tick fired (its scheduled time).
    pub last_tick: Option<DateTime<Utc>>,
    /// The job of that tick.
    pub last_job: Option<TickJob>,
    /// The next tick.
    pub next_tick: Option<DateTime<Utc>>,
    /// When the clock last published this task.
    pub updated_at: DateTime<Utc>,
}

/// The clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    /// `CLOCK_TZ` as the clock published it (Asia/Jerusalem before any clock ran).
    #[schema(example = "Asia/Jerusalem")]
    pub tz: String,
    /// The scheduled tasks, by name (empty before any clock ran).
    pub tasks: Vec<ClockTaskView>,
}

/// The clock's scheduled tasks, their last and next ticks.
#[utoipa::path(
    get,
    path = "/clock",
    tag = "fleet",
    responses(
        (status = 200, description = "The scheduled tasks", body = Clock),
        (status = 503, description = "Store or queue unavailable", body = ErrorBody),
    )
)]
pub async fn clock(State(state): State<AppState>) -> Result<Json<Clock>, ApiError> {
    let tz = clock_tasks::console_tz(&state.db).await?;
    let mut tasks = Vec::new();
    for t in clock_tasks::list(&state.db).await? {
        let last_job = match t.last_job_id {
            Some(id) => {
                let job = state.queue.get(&id).await?;
                Some(TickJob {
                    state: job.as_ref().map(|j| j.summary.state.as_str().to_owned()),
                    error: job.and_then(|j| j.summary.last_error),
                    id,
                })
            }
            None => None,
        };
        tasks.push(ClockTaskView {
            task: t.task,
            kind: t.kind,
            cron: t.cron,
            last_tick: t.last_tick,
            last_job,
            next_tick: t.next_tick,
            updated_at: t.updated_at,
        });
    }
    Ok(Json(Clock {
        tz: tz.name().to_owned(),
        tasks,
    }))
}

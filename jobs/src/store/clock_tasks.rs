//! The clock's published schedule (`clock_task`): one row per task with its cron, zone, last
//! fired tick (and that tick's job) and next tick.
//!
//! The clock process ([`publish_schedule`] at start, [`record_tick`] on every tick it fires)
//! writes it; the intake, which has no clock settings, reads it for `GET /api/clock` and takes
//! the console's time zone from it ([`console_tz`]). Several clocks publishing the same
//! schedule write the same rows; a tick only ever moves `last_tick` forward.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::error::StoreError;
use super::{Db, from_ms, now_ms, to_ms};

/// The zone of the console when no clock has published one: `CLOCK_TZ`'s default.
pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Jerusalem;

/// One task as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockTask {
    /// Task name (`reconcile`, `health`, `cleanup`).
    pub task: String,
    /// The job kind it enqueues.
    pub kind: String,
    /// Its cron expression (6 fields, seconds first).
    pub cron: String,
    /// `CLOCK_TZ`.
    pub tz: String,
    /// The last tick fired (its scheduled instant).
    pub last_tick: Option<DateTime<Utc>>,
    /// The job of that tick.
    pub last_job_id: Option<String>,
    /// The next tick.
    pub next_tick: Option<DateTime<Utc>>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// A task's schedule, as the clock publishes it at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Task name.
    pub task: String,
    /// Job kind.
    pub kind: String,
    /// Cron expression.
    pub cron: String,
    /// Zone name.
    pub tz: String,
    /// Its next tick.
    pub next_tick: Option<DateTime<Utc>>,
}

/// Publishes each task's schedule (keeping its last tick), and forgets tasks no longer
/// scheduled.
pub async fn publish_schedule(db: &Db, tasks: &[Schedule]) -> Result<(), StoreError> {
    let now = now_ms();
    for t in tasks {
        sqlx::query(
            "INSERT INTO clock_task (task, kind, cron, tz, next_tick, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (task) DO UPDATE SET kind = excluded.kind, cron = excluded.cron, \
               tz = excluded.tz, next_tick = excluded.next_tick, updated_at = excluded.updated_at",
        )
        .bind(&t.task)
        .bind(&t.kind)
        .bind(&t.cron)
        .bind(&t.tz)
        .bind(t.next_tick.map(to_ms))
        .bind(now)
        .execute(db.pool())
        .await?;
    }
    let names: Vec<&str> = tasks.iter().map(|t| t.task.as_str()).collect();
    for row in list(db).await? {
        if !names.contains(&row.task.as_str()) {
            sqlx::query("DELETE FROM clock_task WHERE task = $1")
                .bind(&row.task)
                .execute(db.pool())
                .await?;
        }
    }
    Ok(())
}

/// Records a fired tick of `task` and its job, and the task's next tick. A tick older than the
/// one recorded (a slower clock) changes nothing.
pub async fn record_tick(
    db: &Db,
    task: &str,
    tick: DateTime<Utc>,
    job_id: &str,
    next_tick: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE clock_task SET last_tick = $2, last_job_id = $3, next_tick = $4, updated_at = $5 \
         WHERE task = $1 AND (last_tick IS NULL OR last_tick <= $2)",
    )
    .bind(task)
    .bind(to_ms(tick))
    .bind(job_id)
    .bind(next_tick.map(to_ms))
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    task: String,
    kind: String,
    cron: String,
    tz: String,
    last_tick: Option<i64>,
    last_job_id: Option<String>,
    next_tick: Option<i64>,
    updated_at: i64,
}

/// Every published task, by name.
pub async fn list(db: &Db) -> Result<Vec<ClockTask>, StoreError> {
    let rows = sqlx::query_as::<_, Row>(
        "SELECT task, kind, cron, tz, last_tick, last_job_id, next_tick, updated_at \
         FROM clock_task ORDER BY task",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClockTask {
            task: r.task,
            kind: r.kind,
            cron: r.cron,
            tz: r.tz,
            last_tick: r.last_tick.map(from_ms),
            last_job_id: r.last_job_id,
            next_tick: r.next_tick.map(from_ms),
            updated_at: from_ms(r.updated_at),
        })
        .collect())
}

/// The console's zone: the one the clock last published (`CLOCK_TZ`), else [`DEFAULT_TZ`].
pub async fn console_tz(db: &Db) -> Result<Tz, StoreError> {
    let tz: Option<String> =
        sqlx::query_scalar("SELECT tz FROM clock_task ORDER BY updated_at DESC LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    Ok(tz.and_then(|t| t.parse().ok()).unwrap_or(DEFAULT_TZ))
}

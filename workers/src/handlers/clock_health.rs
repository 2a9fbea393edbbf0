//! `clock.health`: checks every dependency once per tick (default every minute), logs the result
//! and stores it where the intake's `/api/ready` reads it ([`moked_jobs::store::health`]).
//!
//! | check | how | failing means |
//! |---|---|---|
//! | `database` | `SELECT 1` | the job fails (transient); `/api/ready` answers 503 on its own ping |
//! | `queue` | [`Queue::stats`]: counts per state, age of the oldest due queued job | the job fails (transient) |
//! | `twilio` | `GET Accounts/{Sid}.json` (reachability and credentials); `skipped` without credentials | degraded |
//! | `storage` | write and delete a small object in `RECORDINGS_STORE` | degraded |
//!
//! **Queue lag** is the larger of the oldest due queued job's age and this job's own wait (from
//! its tick to now — the check waits in the queue like everything else). Over
//! `QUEUE_LAG_DEGRADED` (default 5 min) the result is `degraded`: `/api/ready` still answers 200
//! (the intake takes webhooks fine; the workers are behind), with `"status":"degraded"`.
//! Every check is bounded by [`CHECK_TIMEOUT`], so one hung dependency cannot stall the others.
//!
//! [`Queue::stats`]: moked_jobs::queue::Queue::stats

use std::time::{Duration, Instant};

use chrono::Utc;
use moked_jobs::kinds::ClockHealth;
use moked_jobs::queue::{JobState, Stats};
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::health::{CLOCK_HEALTH, HealthRecord, record_health};
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use super::Ctx;

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The object written and deleted by the storage check.
pub const PROBE_KEY: &str = "moked-health-probe";

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    ok: bool,
    detail: Value,
}

impl Check {
    fn ok(started: Instant, mut extra: Value) -> Check {
        extra["status"] = "ok".into();
        extra["ms"] = (started.elapsed().as_millis() as u64).into();
        Check {
            ok: true,
            detail: extra,
        }
    }

    fn failed(reason: impl std::fmt::Display) -> Check {
        Check {
            ok: false,
            detail: json!({"status": "error", "error": reason.to_string()}),
        }
    }

    fn skipped(reason: &str) -> Check {
        Check {
            ok: true,
            detail: json!({"status": "skipped", "reason": reason}),
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    what: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, what).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn database(ctx: &Ctx) -> Check {
    let started = Instant::now();
    match bounded(ctx.db.ping()).await {
        Ok(()) => Check::ok(started, json!({})),
        Err(e) => Check::failed(e),
    }
}

async fn queue(ctx: &Ctx) -> (Check, Option<Stats>) {
    let started = Instant::now();
    match bounded(ctx.queue.stats()).await {
        Ok(stats) => {
            let detail = json!({
                "backend": ctx.queue.backend(),
                "queued": stats.count(JobState::Queued),
                "running": stats.count(JobState::Running),
                "retrying": stats.count(JobState::Retrying),
                "dead": stats.count(JobState::Dead),
                "oldest_queued_age_s": stats.oldest_queued_age_s,
            });
            (Check::ok(started, detail), Some(stats))
        }
        Err(e) => (Check::failed(e), None),
    }
}

async fn twilio(ctx: &Ctx) -> Check {
    let t = &ctx.core.twilio;
    if t.account_sid.is_none() || t.auth_token.is_none() {
        return Check::skipped("TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN is unset");
    }
    let started = Instant::now();
    match bounded(ctx.twilio.fetch_account()).await {
        Ok(()) => Check::ok(started, json!({})),
        Err(e) => Check::failed(e),
    }
}

async fn storage(ctx: &Ctx) -> Check {
    let started = Instant::now();
    let path = object_store::path::Path::from(PROBE_KEY);
    let probe = async {
        ctx.recordings
            .put(&path, object_store::PutPayload::from_static(b"ok"))
            .await?;
        ctx.recordings.delete(&path).await
    };
    match bounded(probe).await {
        Ok(()) => Check::ok(started, json!({})),
        Err(e) => Check::failed(e),
    }
}

/// Handles one health tick.
#[tracing::instrument(skip_all, fields(tick = %job.0.tick))]
pub async fn run(ctx: &Ctx, job: ClockHealth, _claim: &Claim) -> Result<(), JobError> {
    let (db, (queue, stats), twilio, storage) =
        tokio::join!(database(ctx), queue(ctx), twilio(ctx), storage(ctx));
    let now = Utc::now();
    // This job's own wait since its tick (a `--once` job: since it was asked for).
    let own_wait = chrono::DateTime::parse_from_rfc3339(&job.0.tick)
        .ok()
        .and_then(|t| (now - t.with_timezone(&Utc)).to_std().ok())
        .unwrap_or_default();
    let oldest = stats
        .as_ref()
        .and_then(|s| s.oldest_queued_age_s)
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .unwrap_or_default();
    let lag = oldest.max(own_wait);
    let threshold = ctx.config.tasks.queue_lag_degraded;
    let lagging = lag > threshold;
    let all_ok = db.ok && queue.ok && twilio.ok && storage.ok;
    let status = if all_ok && !lagging { "ok" } else { "degraded" };
    let detail = json!({
        "database": db.detail,
        "queue": queue.detail,
        "twilio": twilio.detail,
        "storage": storage.detail,
        "queue_lag_s": lag.as_secs_f64(),
    });
    let failing: Vec<&str> = [
        ("database", &db),
        ("queue", &queue),
        ("twilio", &twilio),
        ("storage", &storage),
    ]
    .into_iter()
    .filter(|(_, c)| !c.ok)
    .map(|(name, _)| name)
    .collect();
    if status == "ok" {
        tracing::info!(queue_lag_s = lag.as_secs_f64(), detail = %detail, "health ok");
    } else {
        tracing::warn!(queue_lag_s = lag.as_secs_f64(), lag_degraded_s = threshold.as_secs(), failing = ?failing, detail = %detail, "health degraded");
    }
    if db.ok {
        let record = HealthRecord {
            status: status.to_owned(),
            checked_at: now,
            queue_lag: Some(lag),
            lag_degraded: threshold,
            detail: detail.to_string(),
        };
        record_health(&ctx.db, CLOCK_HEALTH, &record).await?;
    }
    if !db.ok || !queue.ok {
        return Err(JobError::Transient(format!(
            "health: {} unreachable",
            failing
                .iter()
                .filter(|n| **n == "database" || **n == "queue")
                .copied()
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    Ok(())
}

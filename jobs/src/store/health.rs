//! The latest result of the `clock.health` task, where the intake's `/api/ready` reads it.
//!
//! The health task runs on a worker (any worker, once per tick), the readiness probe is served
//! by the intake: the store is the one place both see, whatever the queue backend. One row per
//! name in `health_check` (today only [`CLOCK_HEALTH`]), replaced by every run.
//!
//! **Why the age matters.** The health task is itself a job: when the queue lags, the check
//! waits in it like everything else. So a result older than its own lag threshold
//! (`QUEUE_LAG_DEGRADED`, stored with it) means the queue lags at least that much — or the clock
//! stopped — and [`HealthRecord::verdict`] says `degraded` for it too.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::error::StoreError;
use super::{Db, from_ms, to_ms};

/// The row name of the clock's health check.
pub const CLOCK_HEALTH: &str = "clock.health";

/// How much older than `QUEUE_LAG_DEGRADED` a result may be before it counts as overdue (the
/// health schedule's period, one minute by default, plus slack).
pub const OVERDUE_GRACE: Duration = Duration::from_secs(120);

/// One stored health result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    /// `ok` or `degraded`.
    pub status: String,
    /// When it was checked.
    pub checked_at: DateTime<Utc>,
    /// How far the queue lagged (oldest due queued job, or this check's own wait).
    pub queue_lag: Option<Duration>,
    /// The threshold it was judged by (`QUEUE_LAG_DEGRADED`).
    pub lag_degraded: Duration,
    /// JSON: one entry per check (`database`, `queue`, `twilio`, `storage`).
    pub detail: String,
}

/// What a stored result means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed and the queue keeps up.
    Ok,
    /// Something is wrong but the service still takes work (the reason says what).
    Degraded(String),
}

impl HealthRecord {
    /// The verdict at `now`: the stored status, or `degraded` when the result is older than
    /// its lag threshold plus [`OVERDUE_GRACE`] (see the module doc).
    pub fn verdict(&self, now: DateTime<Utc>) -> Verdict {
        let age = (now - self.checked_at).to_std().unwrap_or_default();
        if age > self.lag_degraded + OVERDUE_GRACE {
            return Verdict::Degraded(format!(
                "the last health check is {} s old (the clock or the workers are behind)",
                age.as_secs()
            ));
        }
        if self.status == "ok" {
            return Verdict::Ok;
        }
        let mut reasons = Vec::new();
        if let Some(lag) = self.queue_lag.filter(|lag| *lag > self.lag_degraded) {
            reasons.push(format!(
                "queue lag {} s is over {} s",
                lag.as_secs(),
                self.lag_degraded.as_secs()
            ));
        }
        let failing: Vec<String> = self
            .checks()
            .into_iter()
            .filter(|(_, status)| status == "error")
            .map(|(name, _)| name)
            .collect();
        if !failing.is_empty() {
            reasons.push(format!("failing: {}", failing.join(", ")));
        }
        if reasons.is_empty() {
            reasons.push("degraded".to_owned());
        }
        Verdict::Degraded(reasons.join("; "))
    }

    /// Each check's name and status (`ok`, `error`, `skipped`) from the stored detail, in name
    /// order (e.g. for metrics gauges). Empty when the detail is not the expected JSON.
    pub fn checks(&self) -> Vec<(String, String)> {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&self.detail) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = map
            .into_iter()
            .filter_map(|(name, v)| {
                let status = v.get("status")?.as_str()?.to_owned();
                Some((name, status))
            })
            .collect();
        out.sort();
        out
    }
}

#[derive(sqlx::FromRow)]
struct HealthRow {
    status: String,
    checked_at: i64,
    queue_lag_ms: Option<i64>,
    lag_degraded_ms: i64,
    detail: String,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Stores `record` as the latest result under `name`.
pub async fn record_health(db: &Db, name: &str, record: &HealthRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO health_check (name, status, checked_at, queue_lag_ms, lag_degraded_ms, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET status = excluded.status, \
           checked_at = excluded.checked_at, queue_lag_ms = excluded.queue_lag_ms, \
           lag_degraded_ms = excluded.lag_degraded_ms, detail = excluded.detail",
    )
    .bind(name)
    .bind(record.status.as_str())
    .bind(to_ms(record.checked_at))
    .bind(record.queue_lag.map(ms))
    .bind(ms(record.lag_degraded))
    .bind(record.detail.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The latest result under `name`, if one was ever stored.
pub async fn latest_health(db: &Db, name: &str) -> Result<Option<HealthRecord>, StoreError> {
    Ok(sqlx::query_as::<_, HealthRow>(
        "SELECT status, checked_at, queue_lag_ms, lag_degraded_ms, detail \
         FROM health_check WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(db.pool())
    .await?
    .map(|r| HealthRecord {
        status: r.status,
        checked_at: from_ms(r.checked_at),
        queue_lag: r.queue_lag_ms.map(duration),
        lag_degraded: duration(r.lag_degraded_ms),
        detail: r.detail,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, lag_s: u64, age_s: i64, now: DateTime<Utc>) -> HealthRecord {
        HealthRecord {
            status: status.into(),
            checked_at: now - chrono::Duration::seconds(age_s),
            queue_lag: Some(Duration::from_secs(lag_s)),
            lag_degraded: Duration::from_secs(300),
            detail: "{}".into(),
        }
    }

    #[test]
    fn a_fresh_ok_is_ok_and_a_lagging_or_overdue_result_is_degraded() {
        let now = Utc::now();
        assert_eq!(record("ok", 3, 30, now).verdict(now), Verdict::Ok);
        let Verdict::Degraded(why) = record("degraded", 400, 30, now).verdict(now) else {
            panic!("lag over the threshold is degraded");
        };
        assert!(why.contains("400"), "{why}");
        let Verdict::Degraded(why) = record("ok", 0, 600, now).verdict(now) else {
            panic!("an overdue result is degraded");
        };
        assert!(why.contains("600 s old"), "{why}");
        let mut failing = record("degraded", 0, 30, now);
        failing.detail =
            r#"{"database":{"status":"ok"},"twilio":{"status":"error","error":"x"},"queue_lag_s":0}"#
                .into();
        assert_eq!(
            failing.verdict(now),
            Verdict::Degraded("failing: twilio".into())
        );
        assert_eq!(
            failing.checks(),
            [
                ("database".to_owned(), "ok".to_owned()),
                ("twilio".to_owned(), "error".to_owned())
            ]
        );
    }
}

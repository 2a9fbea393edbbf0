//! Liveness and readiness.
//!
//! * `GET /api/health` — liveness: always exactly
//!   `{"service":"Hebrew AI Call Center CRM","status":"ok"}`, touching nothing (a platform
//!   restarting the process because the database is down would only make things worse).
//! * `GET /api/ready` — readiness: pings the database and the queue (each bounded by
//!   [`CHECK_TIMEOUT`]) and answers 200 when both answer, else 503, with one check per
//!   dependency:
//!   `{"status":"ready","checks":{"database":{"status":"ok","backend":"sqlite"},"queue":{"status":"ok","backend":"redis"}}}`.
//!   A failing check says `"status":"error"` and a short reason; the cause is logged.
//!   Once the clock's health task has run, a third check `clock` reports its latest stored result
//!   ([`moked_jobs::store::health`]): when it is degraded (queue lag over `QUEUE_LAG_DEGRADED`, a
//!   failing Twilio or storage check, or the result itself overdue) the answer is still 200 but
//!   with `"status":"degraded"` and the reason — the intake takes webhooks fine, the workers are
//!   behind. Reading it is best effort: no result (no clock yet) or an unreadable one adds nothing.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use moked_jobs::store::DbKind;
use moked_jobs::store::health::{CLOCK_HEALTH, Verdict, latest_health};
use serde_json::{Value, json};

use crate::AppState;

/// The liveness body, byte for byte.
pub const HEALTH_BODY: &str = r#"{"service":"Hebrew AI Call Center CRM","status":"ok"}"#;

/// How long each readiness check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /api/health`.
pub async fn health() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        HEALTH_BODY,
    )
        .into_response()
}

/// One dependency check: `{"status":"ok"}` or `{"status":"error","error":…}`.
async fn check<E: std::fmt::Display>(
    name: &'static str,
    backend: &'static str,
    ping: impl Future<Output = Result<(), E>>,
) -> (bool, Value) {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => (true, json!({"status": "ok", "backend": backend})),
        Ok(Err(error)) => {
            tracing::warn!(dependency = name, %error, "readiness check failed");
            (
                false,
                json!({"status": "error", "backend": backend, "error": "unavailable"}),
            )
        }
        Err(_) => {
            tracing::warn!(dependency = name, "readiness check timed out");
            (
                false,
                json!({"status": "error", "backend": backend, "error": "timed out"}),
            )
        }
    }
}

/// `GET /api/ready`.
pub async fn ready(State(state): State<AppState>) -> Response {
    let db_backend = match state.db.kind() {
        DbKind::Sqlite => "sqlite",
        DbKind::Postgres => "postgres",
    };
    let ((db_ok, db), (queue_ok, queue), clock) = tokio::join!(
        check("database", db_backend, state.db.ping()),
        check("queue", state.queue.backend(), state.queue.ping()),
        clock_check(&state),
    );
    let ok = db_ok && queue_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let degraded = clock.as_ref().is_some_and(|(ok, _)| !ok);
    let mut body = json!({
        "status": match (ok, degraded) {
            (false, _) => "unavailable",
            (true, true) => "degraded",
            (true, false) => "ready",
        },
        "checks": {"database": db, "queue": queue},
    });
    if let Some((_, clock)) = clock {
        body["checks"]["clock"] = clock;
    }
    (status, Json(body)).into_response()
}

/// The clock's latest health result, if there is one: `(ok, check)`.
async fn clock_check(state: &AppState) -> Option<(bool, Value)> {
    let stored = tokio::time::timeout(CHECK_TIMEOUT, latest_health(&state.db, CLOCK_HEALTH)).await;
    let record = match stored {
        Ok(Ok(Some(record))) => record,
        Ok(Ok(None)) => return None,
        Ok(Err(error)) => {
            tracing::debug!(%error, "the clock's health result could not be read");
            return None;
        }
        Err(_) => return None,
    };
    let now = chrono::Utc::now();
    let mut value = json!({
        "checked_at": record.checked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "age_s": (now - record.checked_at).num_seconds().max(0),
        "queue_lag_s": record.queue_lag.map(|d| d.as_secs()),
    });
    let ok = match record.verdict(now) {
        Verdict::Ok => {
            value["status"] = "ok".into();
            true
        }
        Verdict::Degraded(reason) => {
            value["status"] = "degraded".into();
            value["reason"] = reason.into();
            false
        }
    };
    Some((ok, value))
}

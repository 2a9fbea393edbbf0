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

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use moked_jobs::store::DbKind;
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
    let ((db_ok, db), (queue_ok, queue)) = tokio::join!(
        check("database", db_backend, state.db.ping()),
        check("queue", state.queue.backend(), state.queue.ping()),
    );
    let ok = db_ok && queue_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "checks": {"database": db, "queue": queue},
    });
    (status, Json(body)).into_response()
}

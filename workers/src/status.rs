//! The per-process status endpoint of `moked-worker run` and `moked-worker clock`, and the
//! `moked-worker health` probe that reads it.
//!
//! With `METRICS_PORT` set, the process serves on `0.0.0.0:METRICS_PORT`:
//!
//! | path | answers |
//! |---|---|
//! | `/metrics` | this process's Prometheus metrics (job outcomes and durations, Twilio requests, transcription, `moked_build_info`); the fleet's totals are on the intake's `/metrics`, from the counters kept in the queue |
//! | `/health` | 200 `{"status":"ok",…}` while the process runs (liveness) |
//! | `/ready` | 200 when the queue answered a ping within 2 s, else 503 (readiness) |
//!
//! The port carries no secrets and takes no input, so it has no token: bind it to a private
//! network (a container's port that is not published, a host firewall). Container images have
//! no curl, so `moked-worker health` is the `HEALTHCHECK`: it asks `/health` of the process in
//! the same container (`METRICS_PORT` when set, else the intake's `PORT`) and exits 0 or 1.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moked_jobs::queue::SharedQueue;
use serde_json::json;

/// How long `/ready` waits for the queue.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The status endpoint's setting, flattened into `run` and `clock`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Serve /metrics, /health and /ready on this port (0.0.0.0). Unset: no port.
    #[arg(long, env = "METRICS_PORT")]
    pub metrics_port: Option<u16>,
}

#[derive(Clone)]
struct Status {
    role: &'static str,
    queue: SharedQueue,
}

/// Starts the endpoint on `port` for a process of `role` (`worker`, `clock`); it runs until
/// the process exits. Returns the bound address.
pub async fn spawn(
    port: u16,
    role: &'static str,
    queue: SharedQueue,
) -> anyhow::Result<SocketAddr> {
    use anyhow::Context as _;
    moked_jobs::telemetry::prometheus();
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (METRICS_PORT)"))?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(Status { role, queue });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the status endpoint stopped");
        }
    });
    tracing::info!(addr = %local, role, "status endpoint on http://{local} (/metrics, /health, /ready)");
    Ok(local)
}

async fn metrics() -> Response {
    let body = moked_jobs::telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn health(State(s): State<Status>) -> Response {
    axum::Json(json!({"status": "ok", "role": s.role, "version": env!("CARGO_PKG_VERSION")}))
        .into_response()
}

async fn ready(State(s): State<Status>) -> Response {
    let (status, queue) = match tokio::time::timeout(READY_TIMEOUT, s.queue.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok".to_owned()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {} s", READY_TIMEOUT.as_secs()),
        ),
    };
    let ok = status.is_success();
    let body =
        json!({"status": if ok { "ok" } else { "unavailable" }, "role": s.role, "queue": queue});
    (status, axum::Json(body)).into_response()
}

/// `moked-worker health`: where to ask.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The URL to ask. Default: /health on 127.0.0.1:METRICS_PORT when set, else on PORT
    /// (8080), i.e. the moked process in the same container.
    #[arg(long)]
    pub url: Option<String>,
}

/// The URL `moked-worker health` asks when none is given, from `METRICS_PORT` and `PORT`.
pub fn default_health_url(metrics_port: Option<&str>, port: Option<&str>) -> String {
    let pick = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let port = pick(metrics_port)
        .or_else(|| pick(port))
        .unwrap_or_else(|| "8080".to_owned());
    format!("http://127.0.0.1:{port}/health")
}

/// Asks the URL; Ok with a line on a 2xx answer, Err with the reason otherwise.
pub async fn probe(args: &HealthArgs) -> Result<String, String> {
    let url = args.url.clone().unwrap_or_else(|| {
        default_health_url(
            std::env::var("METRICS_PORT").ok().as_deref(),
            std::env::var("PORT").ok().as_deref(),
        )
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(format!("healthy: {url} answered {}", r.status())),
        Ok(r) => Err(format!("unhealthy: {url} answered {}", r.status())),
        Err(e) => Err(format!("unhealthy: {url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_asks_the_metrics_port_first_then_the_intake_port() {
        assert_eq!(
            default_health_url(Some("9191"), Some("8080")),
            "http://127.0.0.1:9191/health"
        );
        assert_eq!(
            default_health_url(None, Some("5000")),
            "http://127.0.0.1:5000/health"
        );
        assert_eq!(
            default_health_url(Some(" "), None),
            "http://127.0.0.1:8080/health"
        );
    }
}

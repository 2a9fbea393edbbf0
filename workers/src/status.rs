//! The per-process status endpoint of `moked-worker run` and `moked-worker clock` (the
//! `moked-worker health` probe that reads it is [`crate::cli::health`]).
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
//! network (a container's port that is not published, a host firewall). It is served by the
//! intake's accept loop ([`moked_jobs::serve`]): a client gets 10 s to send a request head and
//! the port keeps at most 64 connections, so slow or half-open clients cannot hold the files the
//! worker's own connections need.
//!
//! Container images have no curl, so `moked-worker health` is the `HEALTHCHECK`: it asks
//! `/health` of the process in the same container (`METRICS_PORT` when set, else the intake's
//! `PORT`) and exits 0 or 1.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moked_jobs::queue::SharedQueue;
use moked_jobs::serve::{ConnectionLimits, serve};
use serde_json::json;

/// How long `/ready` waits for the queue.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The port's connections: a scraper and a health probe need a few, and the cap keeps a flood of
/// slow clients far below the process's usual 1,024 open files (at the cap the idlest
/// connection makes room for a new one, as on the intake).
const STATUS_LIMITS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(10),
    max_connections: 64,
};

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
    // The intake's accept loop, so a client that sends half a request head cannot hold a socket
    // for ever: enough of them would take the file descriptors the worker's own Redis, database
    // and HTTP clients need. The port runs until the process exits.
    tokio::spawn(serve(listener, app, STATUS_LIMITS, std::future::pending()));
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

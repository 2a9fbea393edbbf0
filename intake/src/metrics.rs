//! Prometheus metrics: one recorder per process, rendered on `GET /metrics`.
//!
//! [`install`] puts the process's recorder in place ([`moked_jobs::telemetry::prometheus`], no
//! HTTP listener of its own: the intake renders it on request) and describes the intake's
//! metrics. Every `metrics::counter!`/`histogram!` in the process lands in it, so in the
//! all-in-one `moked` the worker runtime's, the Twilio client's and the voice pipeline's
//! metrics show up next to the intake's. A separate `moked-worker` serves its own on
//! `METRICS_PORT`; the whole fleet's work shows here too, through the queue gauges (sampled
//! from [`moked_jobs::queue::Queue::stats`] on every scrape) and `moked_cluster_jobs_total` (the
//! outcome counters every worker flushes into the queue), the same whichever intake is scraped.
//!
//! | metric | type | labels | where |
//! |---|---|---|---|
//! | `moked_webhooks_total` | counter | `path`, `outcome` (`accepted`, or the status: `400`, `403`, `413`, `415`, `429`, `503`) | every `/webhook/*` answer ([`count_webhook`]) |
//! | `moked_rate_limited_total` | counter | `limit` (`unverified`, `calls`, `recordings`, `status`) | every refusal of a rate limit ([`crate::ratelimit`]) |
//! | `moked_enqueue_duration_seconds` | histogram | `kind`, `result` (`ok`, `error`) | [`crate::routes::enqueue::enqueue`] |
//! | `moked_jobs_total` | counter | `kind`, `outcome` (`done`, `retry`, `dead`) | worker runtime (`jobs/src/runner.rs`) |
//! | `moked_job_duration_seconds` | histogram | `kind` | worker runtime |
//! | `moked_webhook_duration_seconds` | histogram | `path` | every `/webhook/*` answer ([`count_webhook`]) |
//! | `moked_queue_jobs` | gauge | `kind`, `state` | sampled on scrape (`sum by (state)` for totals) |
//! | `moked_cluster_jobs_total` | counter | `kind`, `outcome` (`done`, `retry`, `dead`) | the fleet's finished attempts, from the counters workers keep in the queue (`queue::outcomes`), read on scrape |
//! | `moked_queue_oldest_age_seconds` | gauge | `state` (`queued`: the oldest due job's wait) | sampled on scrape |
//! | `moked_queue_up` | gauge | — | 1 when the last sample worked, 0 when the queue did not answer |
//! | `moked_jobs_pruned_total` | counter | `state` (`finished`, `dead`) | the clock's cleanup job (`workers/src/handlers/clock_cleanup.rs`) |
//! | `moked_twilio_requests_total` | counter | `method`, `status` (HTTP code or `transport_error`) | Twilio REST client (`workers/src/clients/twilio.rs`) |
//! | `moked_transcription_audio_seconds_total` | counter | `provider` | voice pipeline, per transcript stored |
//! | `moked_transcription_duration_seconds` | histogram | `provider` | voice pipeline, wall time per transcription |
//!
//! `GET /metrics` is part of the operator surface: it answers 404 while `OPERATOR_TOKEN` is unset
//! and needs `Authorization: Bearer OPERATOR_TOKEN` otherwise (Prometheus: `authorization:
//! {type: Bearer, credentials: …}` in the scrape config). The intake is usually the public web
//! process; queue depths and traffic counts are not for everyone.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use metrics_exporter_prometheus::PrometheusHandle;
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::JobState;

use crate::AppState;

/// How long a scrape waits for the queue's counts before rendering without them.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs the process's Prometheus recorder ([`moked_jobs::telemetry::prometheus`]) and
/// describes the intake's metrics. `None` when another recorder was installed first (then
/// `/metrics` renders nothing of ours).
pub fn install() -> Option<&'static PrometheusHandle> {
    let handle = moked_jobs::telemetry::prometheus();
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

/// Help texts of the metrics this crate and the queue gauges emit.
fn describe() {
    metrics::describe_counter!(
        "moked_webhooks_total",
        "Twilio/Baileys webhooks answered, by route and outcome"
    );
    metrics::describe_histogram!(
        "moked_enqueue_duration_seconds",
        metrics::Unit::Seconds,
        "Time to enqueue a webhook's job"
    );
    metrics::describe_histogram!(
        "moked_webhook_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a webhook, by route"
    );
    metrics::describe_gauge!(
        "moked_queue_jobs",
        "Jobs per kind and state (sampled on scrape)"
    );
    metrics::describe_counter!(
        "moked_rate_limited_total",
        "Requests refused by a rate limit, by limit (unverified, calls, recordings, status)"
    );
    metrics::describe_counter!(
        "moked_cluster_jobs_total",
        "Finished job attempts of the whole fleet by kind and outcome (counters kept in the queue)"
    );
    metrics::describe_gauge!(
        "moked_queue_oldest_age_seconds",
        "Seconds the oldest due job of a state has waited (sampled on scrape)"
    );
    metrics::describe_gauge!(
        "moked_queue_up",
        "1 when the last scrape read the queue's counts, else 0"
    );
}

/// The `outcome` label of a webhook answer: `accepted` for 2xx, else the status code.
pub fn webhook_outcome(status: http::StatusCode) -> String {
    if status.is_success() {
        "accepted".to_owned()
    } else {
        status.as_u16().to_string()
    }
}

/// Middleware on the webhook routes: times and counts each answer by route and outcome.
pub async fn count_webhook(path: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let took = started.elapsed().as_secs_f64();
    let path = path.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status();
    if status.is_success() {
        accepted_on(path, took);
    } else {
        let (duration, answers) = webhook_handles(path, webhook_outcome(status));
        duration.record(took);
        answers.increment(1);
    }
    response
}

/// The duration histogram and the answer counter of `path` with `outcome`.
fn webhook_handles(path: &str, outcome: String) -> (metrics::Histogram, metrics::Counter) {
    (
        metrics::histogram!("moked_webhook_duration_seconds", "path" => path.to_owned()),
        metrics::counter!(
            "moked_webhooks_total",
            "path" => path.to_owned(),
            "outcome" => outcome,
        ),
    )
}

/// Records an accepted answer on `path` through handles made on the route's first accepted
/// answer and kept: looking a labelled metric up builds its key (label strings, a hash) and
/// searches the registry on every call, which cost more than the counting itself on the
/// busiest path of the intake. Routes are the router's templates, so the map stays small.
fn accepted_on(path: &str, took: f64) {
    type Handles = HashMap<String, (metrics::Histogram, metrics::Counter)>;
    static ACCEPTED: LazyLock<RwLock<Handles>> = LazyLock::new(RwLock::default);
    let read = ACCEPTED.read().unwrap_or_else(PoisonError::into_inner);
    if let Some((duration, answers)) = read.get(path) {
        duration.record(took);
        answers.increment(1);
        return;
    }
    drop(read);
    let mut write = ACCEPTED.write().unwrap_or_else(PoisonError::into_inner);
    let (duration, answers) = write
        .entry(path.to_owned())
        .or_insert_with(|| webhook_handles(path, webhook_outcome(http::StatusCode::OK)));
    duration.record(took);
    answers.increment(1);
}

/// Records one enqueue's latency.
pub fn enqueue_latency(kind: JobKind, took: Duration, ok: bool) {
    metrics::histogram!(
        "moked_enqueue_duration_seconds",
        "kind" => kind.as_str(),
        "result" => if ok { "ok" } else { "error" },
    )
    .record(took.as_secs_f64());
}

/// Samples the queue's counts into the gauges (a failing or slow queue sets `moked_queue_up`
/// to 0 and leaves the last values).
async fn sample_queue(state: &AppState) {
    let stats = match tokio::time::timeout(STATS_TIMEOUT, state.queue.stats()).await {
        Ok(Ok(stats)) => stats,
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: queue counts unavailable");
            metrics::gauge!("moked_queue_up").set(0.0);
            return;
        }
        Err(_) => {
            tracing::warn!("metrics: queue counts timed out");
            metrics::gauge!("moked_queue_up").set(0.0);
            return;
        }
    };
    metrics::gauge!("moked_queue_up").set(1.0);
    // One series per kind and state (every known kind, zeros included, so a rate never starts
    // from a missing series); `sum by (state)` gives the totals.
    for kind in JobKind::ALL {
        let per = stats.by_kind.get(kind.as_str());
        for s in JobState::ALL {
            let n = per.and_then(|m| m.get(&s)).copied().unwrap_or(0);
            metrics::gauge!(
                "moked_queue_jobs",
                "kind" => kind.as_str(),
                "state" => s.as_str(),
            )
            .set(n as f64);
        }
    }
    metrics::gauge!("moked_queue_oldest_age_seconds", "state" => "queued")
        .set(stats.oldest_queued_age_s.unwrap_or(0.0));
    // The whole fleet's finished attempts, from the counters every worker flushes into the
    // queue: the same numbers whichever intake is scraped, whichever worker ran the jobs.
    match tokio::time::timeout(STATS_TIMEOUT, state.queue.outcome_totals()).await {
        Ok(Ok(totals)) => {
            for (kind, per) in totals {
                for (outcome, n) in per {
                    metrics::counter!(
                        "moked_cluster_jobs_total",
                        "kind" => kind.clone(),
                        "outcome" => outcome.as_str(),
                    )
                    .absolute(n);
                }
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: outcome counters unavailable"),
        Err(_) => tracing::warn!("metrics: outcome counters timed out"),
    }
}

/// Exports the clock's latest health result (`clock.health`, stored in the database):
/// `moked_health_check{check}` is 1 when a check passed, 0 when it failed (skipped checks are
/// left out), `moked_health_ok` is 1 when the stored verdict is ok now, and
/// `moked_health_age_seconds` tells how old the result is.
async fn sample_health(state: &AppState) {
    use moked_jobs::store::health::{CLOCK_HEALTH, Verdict, latest_health};
    let record =
        match tokio::time::timeout(STATS_TIMEOUT, latest_health(&state.db, CLOCK_HEALTH)).await {
            Ok(Ok(Some(record))) => record,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::warn!(%error, "metrics: health result unavailable");
                return;
            }
            Err(_) => {
                tracing::warn!("metrics: health result timed out");
                return;
            }
        };
    let now = chrono::Utc::now();
    for (check, status) in record.checks() {
        let value = match status.as_str() {
            "ok" => 1.0,
            "error" => 0.0,
            _ => continue,
        };
        metrics::gauge!("moked_health_check", "check" => check).set(value);
    }
    let ok = matches!(record.verdict(now), Verdict::Ok);
    metrics::gauge!("moked_health_ok").set(if ok { 1.0 } else { 0.0 });
    metrics::gauge!("moked_health_age_seconds")
        .set((now - record.checked_at).num_milliseconds() as f64 / 1000.0);
}

/// `GET /metrics` (behind the operator token): samples the queue, renders the text format.
/// Scrapes are serialised, so each answer shows the gauges of the queue it sampled (the
/// recorder is per process; several intakes in one process — tests — each get their own).
pub async fn render(State(state): State<AppState>) -> Response {
    static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = SCRAPE.lock().await;
    sample_queue(&state).await;
    sample_health(&state).await;
    let body = install().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_outcomes_are_accepted_or_the_status_code() {
        assert_eq!(webhook_outcome(http::StatusCode::NO_CONTENT), "accepted");
        assert_eq!(webhook_outcome(http::StatusCode::OK), "accepted");
        assert_eq!(webhook_outcome(http::StatusCode::FORBIDDEN), "403");
        assert_eq!(webhook_outcome(http::StatusCode::TOO_MANY_REQUESTS), "429");
    }
}

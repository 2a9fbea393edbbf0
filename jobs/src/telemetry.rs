//! One Prometheus recorder per process ([`prometheus`]): the intake renders it on its
//! `/metrics`, `moked-worker run|clock` on their `METRICS_PORT`. (Logging is set up with the
//! rest of start-up, [`crate::startup::logging`].)

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often the recorder's histograms are folded (bounds their memory between scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of the latency histograms (seconds): 1 ms to 2 min.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the same handle) and,
/// inside a Tokio runtime, its upkeep task; every `metrics::counter!`/`histogram!` of the
/// process lands in it. `None` when another recorder was installed first (then nothing of ours
/// is rendered).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .map(|b| b.upkeep_timeout(UPKEEP_EVERY));
            let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => handle,
                Err(error) => {
                    tracing::warn!(%error, "no Prometheus recorder: /metrics will be empty");
                    return None;
                }
            };
            describe();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                rt.spawn(async move {
                    let mut tick = tokio::time::interval(UPKEEP_EVERY);
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            Some(handle)
        })
        .as_ref()
}

/// Help texts of the metrics the worker side emits (the intake describes its own).
fn describe() {
    metrics::describe_counter!("moked_jobs_total", "Job runs by kind and outcome");
    metrics::describe_histogram!(
        "moked_job_duration_seconds",
        metrics::Unit::Seconds,
        "Handler run time per job"
    );
    metrics::describe_counter!(
        "moked_twilio_requests_total",
        "Twilio REST API requests by method and HTTP status"
    );
    metrics::describe_counter!(
        "moked_transcription_audio_seconds_total",
        "Seconds of call audio transcribed"
    );
    metrics::describe_histogram!(
        "moked_transcription_duration_seconds",
        metrics::Unit::Seconds,
        "Wall time of one transcription"
    );
    metrics::describe_counter!(
        "moked_jobs_pruned_total",
        "Jobs the cleanup deleted: finished (done, discarded) or dead past DEAD_JOB_RETENTION / DEAD_JOB_MAX"
    );
    metrics::describe_gauge!(
        "moked_build_info",
        "Always 1; the labels name the running build"
    );
    metrics::gauge!(
        "moked_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => env!("MOKED_COMMIT")
    )
    .set(1.0);
}

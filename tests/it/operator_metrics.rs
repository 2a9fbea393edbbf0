//! `GET /metrics`: Prometheus text behind the operator token, with the webhook outcomes, the
//! enqueue latency, the worker runtime's job outcomes and durations (the recorder is per
//! process, as in the all-in-one `moked`), and the queue's depth sampled on each scrape.

use std::time::Duration;

use moked_jobs::runner::{Runner, RunnerConfig, handler};
use reqwest::Method;

use crate::helpers::{Backend, call_params, sid, spawn_app};
use crate::operator_support::{
    Make, OP_TOKEN, call, clock_health_job, make_jobs, spawn_operator_app, spawn_operator_app_with,
    whatsapp_send_job,
};

/// The value of the sample `name{labels}` (labels in the exporter's order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let a = call(app, Method::GET, "/metrics", Some(OP_TOKEN), None, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.headers["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/plain")),
        "{:?}",
        a.headers["content-type"]
    );
    a.text
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_need_the_bearer() {
    let off = spawn_app().await;
    call(&off, Method::GET, "/metrics", None, None, &[])
        .await
        .assert_error(404, "operator_api_disabled");
    let on = spawn_operator_app(Backend::Sqlite).await;
    call(&on, Method::GET, "/metrics", None, None, &[])
        .await
        .assert_error(401, "unauthorized");
}

async fn metrics_show_webhooks_enqueues_jobs_and_the_queue(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    // A refused webhook and an accepted one.
    let refused = app
        .webhook("/webhook/call_status")
        .params(call_params(&sid("CA"), "+972521234567"))
        .signature(crate::helpers::Signature::Missing)
        .send()
        .await;
    assert_eq!(refused.status, 403);
    let completed = call_params(&sid("CA"), "+972521234567")
        .into_iter()
        .map(|(k, v)| match k {
            "CallStatus" => (k, "completed".to_owned()),
            _ => (k, v),
        });
    let accepted = app
        .webhook("/webhook/call_status")
        .params(completed)
        .send()
        .await;
    assert!(accepted.status < 300, "{accepted:?}");

    // Jobs: two dead, then one run to done by an in-process worker runtime.
    make_jobs(
        app.queue.as_ref(),
        vec![
            (whatsapp_send_job(), Make::Dead, "e"),
            (whatsapp_send_job(), Make::Dead, "e"),
        ],
    )
    .await;
    app.queue
        .enqueue(clock_health_job())
        .await
        .expect("enqueue");
    let runner = Runner::new(
        app.queue.clone(),
        "metrics-test",
        RunnerConfig {
            concurrency: 4,
            fetch_wait: Duration::from_millis(100),
            ..RunnerConfig::default()
        },
        handler(|_claim| async { Ok(()) }),
    );
    // The webhook's call.status job runs too (the handler accepts everything).
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        runner.drain(std::future::pending()),
    )
    .await
    .expect("drained in time")
    .expect("drain");
    assert!(summary.done >= 2, "{summary:?}");

    let text = scrape(&app).await;
    assert!(
        sample(
            &text,
            r#"moked_webhooks_total{path="/webhook/call_status",outcome="403"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"moked_webhooks_total{path="/webhook/call_status",outcome="accepted"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        text.contains(
            r#"moked_enqueue_duration_seconds_bucket{kind="call.status",result="ok",le="#
        ),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"moked_jobs_total{kind="clock.health",outcome="done"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"moked_job_duration_seconds_count{kind="clock.health"}"#),
        "{text}"
    );
    // Gauges are this app's queue, sampled by this scrape: one series per kind and state.
    assert_eq!(
        sample(
            &text,
            r#"moked_queue_jobs{kind="whatsapp.send",state="dead"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"moked_queue_jobs{kind="call.started",state="queued"}"#
        ),
        Some(0.0)
    );
    let dead_total: f64 = text
        .lines()
        .filter(|l| l.starts_with("moked_queue_jobs{") && l.contains(r#"state="dead""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead_total, 2.0, "sum by (state) is the total: {text}");
    assert!(
        !text.contains("moked_queue_jobs_by_kind"),
        "one gauge, not two overlapping ones"
    );
    assert!(
        text.contains("moked_webhook_duration_seconds_bucket{path=\"/webhook/call_status\",le="),
        "{text}"
    );
    assert_eq!(sample(&text, "moked_queue_up"), Some(1.0));
    assert!(text.contains(r#"moked_queue_oldest_age_seconds{state="queued"}"#));
    assert!(text.contains("# TYPE moked_jobs_total counter"), "{text}");
}

backend_tests!(
    metrics_show_webhooks_enqueues_jobs_and_the_queue,
    the_exposition_text_parses_with_prometheus_own_parser,
);

#[tokio::test]
async fn metrics_export_the_clocks_latest_health_checks() {
    use moked_jobs::store::health::{CLOCK_HEALTH, HealthRecord, record_health};
    let app = spawn_operator_app(Backend::Sqlite).await;
    let record = HealthRecord {
        status: "degraded".into(),
        checked_at: chrono::Utc::now(),
        queue_lag: Some(Duration::from_secs(1)),
        lag_degraded: Duration::from_secs(300),
        detail: r#"{"database":{"status":"ok"},"queue":{"status":"ok"},"twilio":{"status":"error"},"storage":{"status":"skipped"}}"#.into(),
    };
    record_health(&app.db, CLOCK_HEALTH, &record)
        .await
        .expect("store the health result");
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, r#"moked_health_check{check="database"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"moked_health_check{check="twilio"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"moked_health_check{check="storage"}"#),
        None,
        "skipped checks are left out"
    );
    assert_eq!(sample(&text, "moked_health_ok"), Some(0.0));
    assert!(
        sample(&text, "moked_health_age_seconds").is_some_and(|age| (0.0..60.0).contains(&age))
    );
}

/// The exposition text parsed by Prometheus's own Python client (`prometheus_client`, pinned in
/// `tests/twilio/requirements.txt`): every family, its type and a sample count per family.
fn parsed_by_prometheus_client(text: &str) -> std::collections::BTreeMap<String, (String, usize)> {
    let py = crate::helpers::twilio_python().expect("python3 with the test kit");
    let script = "import json,sys\n\
        from prometheus_client.parser import text_string_to_metric_families as parse\n\
        print(json.dumps({f.name: [f.type, len(f.samples)] for f in parse(sys.stdin.read())}))";
    let mut child = std::process::Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the parser");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: std::collections::BTreeMap<String, (String, usize)> =
        serde_json::from_slice(&out.stdout).expect("parser JSON");
    families
}

async fn the_exposition_text_parses_with_prometheus_own_parser(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let accepted = app
        .webhook("/webhook/call_status")
        .params([("CallSid", "CA9"), ("CallStatus", "ringing")])
        .send()
        .await;
    assert!(accepted.status < 300, "{accepted:?}");
    let runner = Runner::new(
        app.queue.clone(),
        "metrics-parse",
        RunnerConfig {
            fetch_wait: Duration::from_millis(100),
            ..RunnerConfig::default()
        },
        handler(|_claim| async { Ok(()) }),
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        runner.drain(std::future::pending()),
    )
    .await
    .expect("drained in time")
    .expect("drain");
    let families = parsed_by_prometheus_client(&scrape(&app).await);
    for (name, kind) in [
        ("moked_webhooks", "counter"),
        ("moked_webhook_duration_seconds", "histogram"),
        ("moked_queue_jobs", "gauge"),
        ("moked_cluster_jobs", "counter"),
        ("moked_build_info", "gauge"),
        ("moked_queue_up", "gauge"),
    ] {
        let (got, samples) = families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing: {families:?}"));
        assert_eq!(got, kind, "{name}");
        assert!(*samples > 0, "{name} has no sample");
    }
}

#[tokio::test]
async fn refusals_of_each_rate_limit_are_counted_by_limit() {
    let app = spawn_operator_app_with(Backend::Sqlite, |_, intake| {
        intake.limits = moked_intake::config::RateLimits::default();
    })
    .await;
    let mut refused = 0;
    for _ in 0..70 {
        let resp = app
            .webhook("/webhook/call_status")
            .params([("CallSid", "CA1"), ("CallStatus", "completed")])
            .signature(crate::helpers::Signature::Missing)
            .header("X-Forwarded-For", "198.51.100.7")
            .send()
            .await;
        refused += u32::from(resp.status == 429);
    }
    assert!(
        refused > 0,
        "the unsigned flood went over RATE_LIMIT_UNVERIFIED"
    );
    let text = scrape(&app).await;
    let counted = sample(&text, r#"moked_rate_limited_total{limit="unverified"}"#).unwrap_or(0.0);
    assert!(
        counted >= f64::from(refused),
        "{refused} refused, {counted} counted: {text}"
    );
}

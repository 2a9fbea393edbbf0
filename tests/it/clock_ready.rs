//! `/api/ready` and the clock's stored health result: degraded is still 200.

use std::time::Duration;

use chrono::Utc;
use moked_jobs::store::health::{CLOCK_HEALTH, HealthRecord, record_health};

use crate::helpers::{Response, TestApp, spawn_app};

async fn ready(app: &TestApp) -> (u16, serde_json::Value) {
    let resp = Response::read(
        app.client
            .get(app.url("/api/ready"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let body = serde_json::from_str(&resp.body).expect("JSON");
    (resp.status, body)
}

fn record(status: &str, lag_s: u64, age_s: i64) -> HealthRecord {
    HealthRecord {
        status: status.into(),
        checked_at: Utc::now() - chrono::Duration::seconds(age_s),
        queue_lag: Some(Duration::from_secs(lag_s)),
        lag_degraded: Duration::from_secs(300),
        detail: r#"{"database":{"status":"ok"},"queue":{"status":"ok"},"twilio":{"status":"skipped"},"storage":{"status":"ok"}}"#.into(),
    }
}

#[tokio::test]
async fn ready_reports_the_clocks_health_and_a_lagging_queue_is_degraded_not_down() {
    let app = spawn_app().await;
    let (status, body) = ready(&app).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    assert!(
        body["checks"].get("clock").is_none(),
        "no result yet: {body}"
    );

    record_health(&app.db, CLOCK_HEALTH, &record("ok", 2, 20))
        .await
        .expect("store");
    let (status, body) = ready(&app).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    assert_eq!(body["checks"]["clock"]["status"], "ok");
    assert_eq!(body["checks"]["clock"]["queue_lag_s"], 2);

    record_health(&app.db, CLOCK_HEALTH, &record("degraded", 420, 20))
        .await
        .expect("store");
    let (status, body) = ready(&app).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")));
    let reason = body["checks"]["clock"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("queue lag 420 s is over 300 s"), "{body}");

    // An ok result that is too old: the check itself is stuck in the queue (or the clock stopped).
    record_health(&app.db, CLOCK_HEALTH, &record("ok", 0, 3600))
        .await
        .expect("store");
    let (status, body) = ready(&app).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")));
    assert_eq!(body["checks"]["clock"]["status"], "degraded");
}

//! `GET /api/clock` (#18.3): the clock process publishes its schedule at start and every tick it
//! fires into the store, and the intake, which has no clock settings, shows each task's cron,
//! zone, last tick with its job's outcome, and next tick.

use std::time::Duration;

use chrono::{DateTime, Utc};
use moked_workers::clock::{ClockArgs, ClockConfig, run_with};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::operator_support::{fields, get, keys, spawn_operator_app};

/// Re-reads `/api/clock` every 20 ms until `done` holds (at most 10 s); returns that answer.
async fn clock_until(app: &TestApp, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..500 {
        tick.tick().await;
        let a = get(app, "/api/clock").await;
        assert_eq!(a.status, 200, "{}", a.text);
        if done(&a.json) {
            return a.json;
        }
    }
    panic!("timed out waiting until {what}");
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{v} is not a time: {e}"))
        .to_utc()
}

async fn the_clock_publishes_its_schedule_and_ticks_for_the_console(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let before = get(&app, "/api/clock").await;
    assert_eq!(
        before.json["tasks"],
        serde_json::json!([]),
        "no clock ran yet"
    );
    assert_eq!(before.json["tz"], "Asia/Jerusalem");

    let config = ClockArgs {
        clock_tz: "Europe/London".into(),
        schedule_reconcile: "0 */5 * * * *".into(),
        schedule_health: "* * * * * *".into(),
        schedule_cleanup: "0 30 3 * * *".into(),
    }
    .into_config()
    .expect("clock config");
    let config = ClockConfig {
        store: Some(app.db.clone()),
        ..config
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let clock = tokio::spawn(run_with(config, app.queue.clone(), Utc::now, async move {
        let _ = stopped.await;
    }));

    // The catch-up fires each task's latest past tick at start.
    let first = clock_until(&app, "every task has a published tick", |v| {
        v["tasks"]
            .as_array()
            .is_some_and(|t| t.len() == 3 && t.iter().all(|t| !t["last_tick"].is_null()))
    })
    .await;
    assert_eq!(first["tz"], "Europe/London", "the zone the clock published");
    let tasks = first["tasks"].as_array().expect("tasks");
    let names: Vec<&str> = tasks.iter().filter_map(|t| t["task"].as_str()).collect();
    assert_eq!(names, ["cleanup", "health", "reconcile"]);
    let reconcile = &tasks[2];
    assert_eq!(
        keys(reconcile),
        fields("task kind cron last_tick last_job next_tick updated_at")
    );
    assert_eq!(reconcile["kind"], "clock.reconcile");
    assert_eq!(reconcile["cron"], "0 */5 * * * *");
    assert!(time(&reconcile["last_tick"]) <= Utc::now());
    assert!(time(&reconcile["next_tick"]) > time(&reconcile["last_tick"]));
    let job_id = reconcile["last_job"]["id"]
        .as_str()
        .expect("the tick's job");
    let job = app
        .queue
        .get(job_id)
        .await
        .expect("get")
        .expect("the job exists");
    assert_eq!(job.summary.kind, "clock.reconcile");
    assert_eq!(
        reconcile["last_job"]["state"], "queued",
        "no worker runs here"
    );
    assert_eq!(reconcile["last_job"]["error"], Value::Null);

    // Each fired tick moves the task on.
    let health_tick = time(&tasks[1]["last_tick"]);
    let later = clock_until(&app, "the health task ticked again", |v| {
        v["tasks"][1]["last_tick"]
            .as_str()
            .is_some_and(|t| time(&Value::from(t)) > health_tick)
    })
    .await;
    assert_ne!(
        later["tasks"][1]["last_job"]["id"],
        tasks[1]["last_job"]["id"]
    );
    let _ = stop.send(());
    clock.await.expect("the clock stops");
}

backend_tests!(the_clock_publishes_its_schedule_and_ticks_for_the_console);

//! Accountable actions (#18.5): `OPERATOR_TOKENS=name:token,…` beside the single
//! `OPERATOR_TOKEN` (the operator named `operator`), `GET /api/me`, and the audit log at
//! `GET /api/audit` — every retry, discard (single and bulk) and WhatsApp send recorded under
//! the name of the operator who did it, with its outcome and address, never a token.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::operator_support::{
    Make, OP_TOKEN, call, call_started_job, clock_health_job, keys, make_jobs, operator_tokens,
    sorted, spawn_operator_app_with, whatsapp_send_job,
};

/// Dana's token.
pub const DANA: &str = "t0ken-of-dana";
/// Yossi's token.
pub const YOSSI: &str = "t0ken-of-yossi";

/// An intake with `OPERATOR_TOKENS=dana:…,yossi:…` and `OPERATOR_TOKEN` set.
pub async fn spawn_two_operators(backend: Backend) -> TestApp {
    spawn_operator_app_with(backend, |core, _| {
        core.operator_tokens = operator_tokens(&[("dana", DANA), ("yossi", YOSSI)]);
    })
    .await
}

async fn as_op(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let a = call(
        app,
        method,
        path,
        Some(token),
        body,
        &[("X-Forwarded-For", "10.9.8.7, 1.2.3.4")],
    )
    .await;
    assert!(a.status < 500, "{path}: {}", a.text);
    a.json
}

async fn audit(app: &TestApp, query: &str) -> Value {
    let a = call(
        app,
        Method::GET,
        &format!("/api/audit{query}"),
        Some(DANA),
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json
}

async fn each_operator_acts_under_their_own_name_in_the_audit_log(backend: Backend) {
    let app = spawn_two_operators(backend).await;
    for (token, name) in [(DANA, "dana"), (YOSSI, "yossi"), (OP_TOKEN, "operator")] {
        let me = call(&app, Method::GET, "/api/me", Some(token), None, &[]).await;
        assert_eq!(
            (me.status, me.json.clone()),
            (200, json!({"operator": name}))
        );
    }
    call(
        &app,
        Method::GET,
        "/api/me",
        Some("t0ken-of-nobody"),
        None,
        &[],
    )
    .await
    .assert_error(401, "unauthorized");

    let q = app.queue.as_ref();
    let ids = make_jobs(
        q,
        vec![
            (call_started_job("+972501234567"), Make::Dead, "boom"),
            (call_started_job("+972501234568"), Make::Dead, "boom"),
            (whatsapp_send_job(), Make::Queued, ""),
            (clock_health_job(), Make::Done, ""),
        ],
    )
    .await;
    let (dead, dead2, queued, done) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    for (token, path) in [
        (DANA, format!("/api/jobs/{dead}/retry")),
        (YOSSI, format!("/api/jobs/{queued}/discard")),
        (YOSSI, format!("/api/jobs/{done}/discard")),
        (OP_TOKEN, format!("/api/jobs/{done}/retry")),
        (DANA, "/api/jobs/retry?state=dead&kind=call.started".into()),
    ] {
        as_op(&app, token, Method::POST, &path, None).await;
    }
    let sent = as_op(
        &app,
        YOSSI,
        Method::POST,
        "/api/whatsapp/send",
        Some(json!({"to": "050-123-4567", "body": "שלום"})),
    )
    .await;
    as_op(
        &app,
        DANA,
        Method::POST,
        "/api/whatsapp/send",
        Some(json!({"to": "12", "body": "x"})),
    )
    .await;

    let log = audit(&app, "").await;
    let entries = log["entries"].as_array().expect("entries");
    let seen: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["operator"].as_str().unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let message_id = sent["id"].as_str().expect("message id");
    assert_eq!(
        seen,
        [
            ("dana", "whatsapp.send", "-", "refused"),
            ("yossi", "whatsapp.send", message_id, "ok"),
            ("dana", "jobs.retry", "state=dead&kind=call.started", "ok"),
            ("operator", "job.retry", done.as_str(), "conflict"),
            ("yossi", "job.discard", done.as_str(), "conflict"),
            ("yossi", "job.discard", queued.as_str(), "ok"),
            ("dana", "job.retry", dead.as_str(), "ok"),
        ],
        "newest first, each under its operator: {log:#}"
    );
    assert_eq!(log["next_cursor"], Value::Null);
    let first = &entries[0];
    assert_eq!(
        keys(first),
        sorted(&[
            "id", "at", "operator", "action", "target", "outcome", "detail", "ip"
        ])
    );
    assert_eq!(
        first["ip"], "1.2.3.4",
        "the right-most X-Forwarded-For entry"
    );
    assert_eq!(entries[2]["detail"], "1 retried, 0 refused");
    assert_eq!(
        app.queue
            .get(dead2)
            .await
            .expect("get")
            .expect("job")
            .summary
            .state,
        moked_jobs::queue::JobState::Queued
    );
    let text = log.to_string();
    for secret in [DANA, YOSSI, OP_TOKEN] {
        assert!(!text.contains(secret), "a token in the audit log: {text}");
    }
    assert!(
        !text.contains("501234567"),
        "numbers are masked in the log: {text}"
    );

    // Paging: two at a time, then on from the cursor, down to the first action.
    let page = audit(&app, "?limit=2").await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = audit(&app, &format!("?limit=500&before={cursor}")).await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(5));
    assert_eq!(rest["entries"][4]["target"], dead.as_str());
    assert_eq!(rest["next_cursor"], Value::Null);
    for query in ["?before=nope", "?limit=0"] {
        let path = format!("/api/audit{query}");
        call(&app, Method::GET, &path, Some(DANA), None, &[])
            .await
            .assert_error(400, "bad_request");
    }
}

async fn operator_tokens_alone_turn_the_operator_api_on(backend: Backend) {
    let app = spawn_operator_app_with(backend, |core, _| {
        core.operator_token = None;
        core.operator_tokens = operator_tokens(&[("dana", DANA)]);
    })
    .await;
    let me = call(&app, Method::GET, "/api/me", Some(DANA), None, &[]).await;
    assert_eq!(
        (me.status, me.json["operator"].clone()),
        (200, json!("dana"))
    );
    call(&app, Method::GET, "/api/me", Some(OP_TOKEN), None, &[])
        .await
        .assert_error(401, "unauthorized");
}

backend_tests!(
    each_operator_acts_under_their_own_name_in_the_audit_log,
    operator_tokens_alone_turn_the_operator_api_on,
);

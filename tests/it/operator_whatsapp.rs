//! `POST /api/whatsapp/send` and `GET /api/whatsapp/messages/{id}`: 202 for a new message and
//! one `whatsapp.send` job; the same Idempotency-Key gives the same message (200) and no second
//! job; bad input is a JSON 400 naming it; the 24-hour window (when enforced) is a 422.

use moked_jobs::kinds::JobKind;
use reqwest::Method;
use serde_json::json;

use crate::helpers::Backend;
use crate::operator_support::{
    Answer, OP_TOKEN, call, fields, get, keys, sorted, spawn_operator_app, spawn_operator_app_with,
};

async fn send(app: &crate::helpers::TestApp, body: serde_json::Value, key: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    call(
        app,
        Method::POST,
        "/api/whatsapp/send",
        Some(OP_TOKEN),
        Some(body),
        &headers,
    )
    .await
}

async fn a_send_is_queued_once_per_idempotency_key(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let body = json!({"to": "052-123-4567", "body": "שלום דנה, התור שלך מחר ב-10:00"});
    let first = send(&app, body.clone(), Some("order-17-reminder")).await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(keys(&first.json), sorted(&["id", "status"]));
    assert_eq!(first.json["status"], "queued");
    let id = first.json["id"].as_str().expect("id").to_owned();

    let again = send(&app, body.clone(), Some("order-17-reminder")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json, first.json, "the first result");
    let jobs = app.jobs(JobKind::WhatsAppSend).await;
    assert_eq!(jobs.len(), 1, "one job for one message");
    assert!(jobs[0].payload.contains(&id));

    let other = send(
        &app,
        json!({"to": "052-123-4567", "body": "something else"}),
        Some("order-17-reminder"),
    )
    .await;
    other.assert_error(422, "idempotency_conflict");

    // Without a key, each request is a new message.
    let a = send(&app, json!({"to": "+972521234567", "body": "x"}), None).await;
    let b = send(&app, json!({"to": "+972521234567", "body": "x"}), None).await;
    assert_eq!((a.status, b.status), (202, 202));
    assert_ne!(a.json["id"], b.json["id"]);

    let template = send(
        &app,
        json!({"to": "+972521234567", "content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e", "content_variables": {"1": "Dana", "2": 10}}),
        Some("template-1"),
    )
    .await;
    assert_eq!(template.status, 202, "{}", template.text);

    let m = get(&app, &format!("/api/whatsapp/messages/{id}")).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(
        keys(&m.json),
        fields(
            "id provider provider_sid direction to from body status error_code \
             error_message created_at sent_at delivered_at read_at",
        )
    );
    assert_eq!(m.json["id"], id.as_str());
    assert_eq!(m.json["to"], "+972521234567");
    assert_eq!(m.json["direction"], "outbound");
    assert_eq!(m.json["provider"], "twilio");
    assert_eq!(m.json["status"], "queued");
    assert_eq!(m.json["body"], "שלום דנה, התור שלך מחר ב-10:00");
    get(
        &app,
        "/api/whatsapp/messages/0190d2a4-0000-7000-8000-000000000000",
    )
    .await
    .assert_error(404, "not_found");
}

async fn bad_send_requests_are_json_400s_naming_the_problem(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let raw = app
        .client
        .post(app.url("/api/whatsapp/send"))
        .bearer_auth(OP_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), 400);
    let v: serde_json::Value = raw.json().await.expect("json error");
    assert_eq!(v["error"]["code"], "bad_request");

    send(&app, json!({"to": "hello", "body": "x"}), None)
        .await
        .assert_error(400, "invalid_number");
    send(&app, json!({"to": "+972521234567"}), None)
        .await
        .assert_error(400, "invalid_request");
    send(
        &app,
        json!({"to": "+972521234567", "body": "x", "content_sid": "HX1"}),
        None,
    )
    .await
    .assert_error(400, "invalid_request");
    send(&app, json!({"to": "+972521234567", "text": "typo"}), None)
        .await
        .assert_error(400, "bad_request");
    send(&app, json!({"body": "no recipient"}), None)
        .await
        .assert_error(400, "bad_request");
    send(&app, json!(["not", "an", "object"]), None)
        .await
        .assert_error(400, "bad_request");
    assert!(
        app.jobs(JobKind::WhatsAppSend).await.is_empty(),
        "nothing was queued"
    );
}

async fn free_text_outside_the_window_is_422_when_enforced_and_templates_still_go(
    backend: Backend,
) {
    let app = spawn_operator_app_with(backend, |_, intake| {
        intake.whatsapp.enforce_window = true;
    })
    .await;
    let a = send(&app, json!({"to": "+972521234567", "body": "hi"}), None).await;
    a.assert_error(422, "outside_window");
    let t = send(
        &app,
        json!({"to": "+972521234567", "content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e"}),
        None,
    )
    .await;
    assert_eq!(t.status, 202, "{}", t.text);
}

backend_tests!(
    a_send_is_queued_once_per_idempotency_key,
    bad_send_requests_are_json_400s_naming_the_problem,
    free_text_outside_the_window_is_422_when_enforced_and_templates_still_go,
);

//! Around the webhooks: health and readiness, CORS for /api/* only, request ids, static files
//! and graceful shutdown.

use reqwest::Method;

use crate::helpers::{Backend, Response, TestApp, spawn_app, spawn_app_with};

async fn get(app: &TestApp, path: &str) -> Response {
    Response::read(app.client.get(app.url(path)).send().await.expect("request")).await
}

#[tokio::test]
async fn health_answers_exactly_the_service_json() {
    let app = spawn_app().await;
    let resp = get(&app, "/api/health").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.body,
        r#"{"service":"Hebrew AI Call Center CRM","status":"ok"}"#
    );
}

async fn ready_is_200_with_a_check_per_dependency(backend: Backend) {
    let app = spawn_app_with(backend, |_, _| {}).await;
    let resp = get(&app, "/api/ready").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["queue"]["status"], "ok");
    let (db, queue) = match backend {
        Backend::Sqlite => ("sqlite", "sqlite"),
        Backend::Postgres => ("postgres", "postgres"),
        Backend::Redis => ("sqlite", "redis"),
    };
    assert_eq!(body["checks"]["database"]["backend"], db);
    assert_eq!(body["checks"]["queue"]["backend"], queue);
}

backend_tests!(ready_is_200_with_a_check_per_dependency);

#[tokio::test]
async fn ready_is_503_naming_the_dependency_that_is_down_while_health_stays_200() {
    let app = spawn_app().await;
    app.db.close().await;
    let resp = get(&app, "/api/ready").await;
    assert_eq!(resp.status, 503);
    let body: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["status"], "error");
    assert_eq!(get(&app, "/api/health").await.status, 200);
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    let resp = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("request");
    Response::read(resp).await
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins_and_only_on_api() {
    let app = spawn_app_with(Backend::Sqlite, |_, intake| {
        intake.cors_origins =
            moked_intake::config::parse_origins("https://crm.example.com,http://localhost:3000")
                .expect("valid origins");
    })
    .await;
    let ok = preflight(&app, "/api/health", "https://crm.example.com").await;
    assert!(ok.status < 300, "{}", ok.status);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://crm.example.com")
    );
    assert!(
        ok.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization"))
    );
    let simple = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .expect("request");
    assert_eq!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:3000")
    );
    let other = preflight(&app, "/api/health", "https://evil.example").await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    let webhook = preflight(&app, "/webhook/incoming_call", "https://crm.example.com").await;
    assert_eq!(webhook.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_cors_origins_no_origin_is_allowed() {
    let app = spawn_app().await;
    let resp = preflight(&app, "/api/health", "https://crm.example.com").await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
    let resp = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "https://crm.example.com")
        .send()
        .await
        .expect("request");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_request_id_is_echoed_when_given_and_generated_otherwise() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/api/health"))
        .header("X-Request-Id", "req-42")
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-42")
    );
    let generated = get(&app, "/api/health").await;
    let id = generated.header("x-request-id").expect("generated id");
    assert_eq!(id.len(), 36, "{id}");
    let forbidden = app
        .webhook("/webhook/call_status")
        .params([("CallSid", "CA1")])
        .signature(crate::helpers::Signature::Missing)
        .send()
        .await;
    assert_eq!(forbidden.status, 403);
    assert!(forbidden.header("x-request-id").is_some());
}

#[tokio::test]
async fn static_files_are_served_from_static_dir() {
    let app = spawn_app().await;
    std::fs::create_dir_all(app.static_dir().join("ops")).expect("mkdir");
    std::fs::write(app.static_dir().join("ops/index.html"), "<h1>moked</h1>").expect("write");
    let resp = get(&app, "/static/ops/index.html").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "<h1>moked</h1>");
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert_eq!(get(&app, "/static/missing.mp3").await.status, 404);
}

#[tokio::test]
async fn shutdown_finishes_and_the_server_stops_accepting() {
    let mut app = spawn_app().await;
    assert_eq!(get(&app, "/api/health").await.status, 200);
    app.stop().await.expect("server stops cleanly");
    let after = app.client.get(app.url("/api/health")).send().await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}

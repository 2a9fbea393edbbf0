//! Who may use the operator surface: nobody while OPERATOR_TOKEN is unset (a clear JSON 404),
//! only bearers of the exact token otherwise (JSON 401); the page and the OpenAPI document
//! need no token; unknown paths and wrong methods are JSON errors too.

use reqwest::Method;

use crate::helpers::{Backend, spawn_app};
use crate::operator_support::{OP_TOKEN, call, spawn_operator_app};

/// Every operator endpoint, with a method and a concrete path.
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/stats"),
    ("GET", "/api/jobs/0190d2a4-0000-7000-8000-000000000001"),
    (
        "POST",
        "/api/jobs/0190d2a4-0000-7000-8000-000000000001/retry",
    ),
    (
        "POST",
        "/api/jobs/0190d2a4-0000-7000-8000-000000000001/discard",
    ),
    ("POST", "/api/jobs/retry?state=dead"),
    ("GET", "/api/calls"),
    ("GET", "/api/calls/CA0000"),
    ("GET", "/api/recordings/RE0000/audio"),
    ("GET", "/api/customers/+972501234567"),
    ("POST", "/api/whatsapp/send"),
    ("GET", "/api/whatsapp/messages/m1"),
    ("GET", "/metrics"),
];

fn method(m: &str) -> Method {
    if m == "POST" {
        Method::POST
    } else {
        Method::GET
    }
}

#[tokio::test]
async fn without_operator_token_every_operator_path_is_a_clear_json_404() {
    let app = spawn_app().await;
    for (m, path) in ENDPOINTS
        .iter()
        .copied()
        .chain([("GET", "/api/openapi.json")])
    {
        for token in [None, Some(OP_TOKEN)] {
            let a = call(&app, method(m), path, token, None, &[]).await;
            a.assert_error(404, "operator_api_disabled");
            assert!(
                a.json["error"]["message"]
                    .as_str()
                    .is_some_and(|s| s.contains("OPERATOR_TOKEN")),
                "{m} {path}: {}",
                a.text
            );
        }
    }
    // The webhooks and health checks are not affected.
    let health = call(&app, Method::GET, "/api/health", None, None, &[]).await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn every_operator_path_refuses_a_missing_or_wrong_token_with_json_401() {
    let app = spawn_operator_app(Backend::Sqlite).await;
    for (m, path) in ENDPOINTS {
        for token in [None, Some("wrong"), Some(&OP_TOKEN[..OP_TOKEN.len() - 1])] {
            let a = call(&app, method(m), path, token, None, &[]).await;
            a.assert_error(401, "unauthorized");
            assert!(
                a.headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{m} {path}"
            );
        }
        // Another scheme carrying the right secret is not a bearer token.
        let basic = format!("Basic {OP_TOKEN}");
        let a = call(
            &app,
            method(m),
            path,
            None,
            None,
            &[("Authorization", basic.as_str())],
        )
        .await;
        a.assert_error(401, "unauthorized");
    }
}

#[tokio::test]
async fn the_right_token_opens_the_api_in_any_case_of_the_scheme() {
    let app = spawn_operator_app(Backend::Sqlite).await;
    let a = call(
        &app,
        Method::GET,
        "/api/jobs/stats",
        Some(OP_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let lower = format!("bearer {OP_TOKEN}");
    let a = call(
        &app,
        Method::GET,
        "/api/jobs",
        None,
        None,
        &[("Authorization", lower.as_str())],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["total"], 0);
}

#[tokio::test]
async fn the_page_and_the_openapi_document_need_no_token() {
    let app = spawn_operator_app(Backend::Sqlite).await;
    let page = call(&app, Method::GET, "/ops", None, None, &[]).await;
    assert_eq!(page.status, 200);
    // Hebrew first: the page opens right to left (English is a toggle in the page).
    assert!(page.text.contains(r#"<html lang="he" dir="rtl">"#));
    assert!(page.text.contains("<title>מוקד · מפעילים</title>"));
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for asset in [
        "/ops/app.js",
        "/ops/i18n.js",
        "/ops/charts.js",
        "/ops/sw.js",
        "/ops/app.css",
    ] {
        let a = call(&app, Method::GET, asset, None, None, &[]).await;
        assert_eq!(a.status, 200, "{asset}");
        assert!(a.text.len() > 100, "{asset}");
    }
    // The service worker may control the page itself (/ops), above its own folder.
    let sw = call(&app, Method::GET, "/ops/sw.js", None, None, &[]).await;
    assert_eq!(sw.headers["service-worker-allowed"], "/ops");
    let spec = call(&app, Method::GET, "/api/openapi.json", None, None, &[]).await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.json["info"]["title"], "moked operator API");
}

#[tokio::test]
async fn unknown_operator_paths_and_wrong_methods_are_json_errors() {
    let app = spawn_operator_app(Backend::Sqlite).await;
    let a = call(
        &app,
        Method::GET,
        "/api/nothing-here",
        Some(OP_TOKEN),
        None,
        &[],
    )
    .await;
    a.assert_error(404, "not_found");
    let a = call(&app, Method::DELETE, "/api/jobs", Some(OP_TOKEN), None, &[]).await;
    a.assert_error(405, "method_not_allowed");
    let a = call(
        &app,
        Method::GET,
        "/api/jobs/x/retry",
        Some(OP_TOKEN),
        None,
        &[],
    )
    .await;
    a.assert_error(405, "method_not_allowed");
}

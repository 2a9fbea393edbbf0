//! The OpenAPI document: generated from the handlers (utoipa), committed as
//! `docs/openapi.json`, and kept in sync by this test. After changing the API, regenerate it
//! with `MOKED_UPDATE_OPENAPI=1 cargo test -p moked --test it operator_openapi` and commit the
//! file with the change.

use std::path::PathBuf;

use reqwest::Method;

use crate::helpers::Backend;
use crate::operator_support::{call, spawn_operator_app};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[test]
fn the_committed_openapi_document_is_the_one_the_code_generates() {
    let generated = moked_intake::routes::operator::openapi_json();
    let path = committed_path();
    if std::env::var_os("MOKED_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the document the code generates; regenerate it with \
         `MOKED_UPDATE_OPENAPI=1 cargo test -p moked --test it operator_openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_describes_every_operator_path_with_bearer_auth() {
    let app = spawn_operator_app(Backend::Sqlite).await;
    let a = call(&app, Method::GET, "/api/openapi.json", None, None, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text, moked_intake::routes::operator::openapi_json());
    let spec = &a.json;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = spec["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/jobs", "get"),
        ("/api/jobs/stats", "get"),
        ("/api/jobs/{id}", "get"),
        ("/api/jobs/{id}/retry", "post"),
        ("/api/jobs/{id}/discard", "post"),
        ("/api/jobs/retry", "post"),
        ("/api/calls", "get"),
        ("/api/calls/{call_sid}", "get"),
        ("/api/recordings/{recording_sid}/audio", "get"),
        ("/api/customers/{phone}", "get"),
        ("/api/whatsapp/send", "post"),
        ("/api/whatsapp/messages/{id}", "get"),
        ("/api/jobs/discard", "post"),
        ("/api/me", "get"),
        ("/api/audit", "get"),
        ("/api/stats/today", "get"),
        ("/api/stats/history", "get"),
        ("/api/workers", "get"),
        ("/api/clock", "get"),
        ("/api/search", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(paths.len(), 20, "documented paths: {:?}", paths.keys());
    // Every path is behind the bearer token, so every operation documents its 401 (schemathesis
    // checks each answer's status against the document).
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/ErrorBody",
                "{method} {path} does not document its 401"
            );
        }
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(spec["components"]["schemas"]["JobDetail"].is_object());
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

#[test]
fn every_operation_id_is_unique() {
    let doc: serde_json::Value =
        serde_json::from_str(&moked_intake::routes::operator::openapi_json()).expect("JSON");
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(id) = op["operationId"].as_str() {
                seen.entry(id.to_owned())
                    .or_default()
                    .push(format!("{method} {path}"));
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "operationIds used more than once: {twice:?}"
    );
    assert!(seen.len() >= 8, "{seen:?}");
}

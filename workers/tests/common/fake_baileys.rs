//! An in-process fake of a Baileys bridge's outbound half (`POST /sendMessage`, the contract of
//! `docs/BAILEYS.md`), for `whatsapp.rs`.
//!
//! Checks in this order:
//! 1. `X-BAILEYS-SECRET` missing or different → 403 `{"ok": false, "error": "forbidden"}` (not
//!    counted as a failure to inject);
//! 2. the first [`Failures::first`] requests with the right secret → the scripted failure (429 and
//!    503 with `Retry-After`);
//! 3. not `Content-Type: application/json` with non-empty strings `to` and `text` → 400;
//! 4. else 200 `{"ok": true, "message_id": "FAKE…"}` — and, as the contract requires, a repeated
//!    `Idempotency-Key` gets the first answer's `message_id` again without a second send.
//!
//! Each request is logged ([`FakeBaileys::requests`]) with its `body` (the parsed JSON, else the
//! raw text), `secret_ok`, `message_id` and `replayed` (an idempotent repeat).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::fake_http::{Failures, RequestLog, Served};

const PATH: &str = "/sendMessage";

/// What the bridge answers.
#[derive(Debug, Clone)]
pub struct BridgeScript {
    pub secret: String,
    pub failures: Failures,
}

impl BridgeScript {
    /// A bridge that expects `secret` and sends everything.
    pub fn new(secret: &str) -> BridgeScript {
        BridgeScript {
            secret: secret.into(),
            failures: Failures::default(),
        }
    }

    /// Answers the first `first` requests with the right secret with `status`.
    pub fn failing_first(self, first: usize, status: u16) -> BridgeScript {
        BridgeScript {
            failures: self.failures.first(first, status),
            ..self
        }
    }
}

#[derive(Clone)]
struct Bridge {
    script: BridgeScript,
    log: RequestLog,
    /// Idempotency-Key → the message_id it was sent as.
    sent: Arc<Mutex<HashMap<String, String>>>,
}

/// The fake bridge on a free port; stops when dropped.
pub struct FakeBaileys {
    served: Served,
    log: RequestLog,
    /// Its base URL (`BAILEYS_URL`).
    pub url: String,
}

impl FakeBaileys {
    pub fn start(script: BridgeScript) -> FakeBaileys {
        let log = RequestLog::default();
        let app = Router::new().route(PATH, post(send)).with_state(Bridge {
            script,
            log: log.clone(),
            sent: Arc::default(),
        });
        let served = Served::start(app);
        FakeBaileys {
            url: served.url.clone(),
            served,
            log,
        }
    }

    /// The `POST /sendMessage` requests, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.log.requests_to(PATH)
    }
}

async fn send(
    State(bridge): State<Bridge>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let log = &bridge.log;
    let mut record = log.arrived(&method, &uri, &headers);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    record.insert(
        "body".into(),
        parsed
            .clone()
            .unwrap_or_else(|| json!(String::from_utf8_lossy(&body))),
    );
    let secret_ok = headers.get("x-baileys-secret").map(|v| v.as_bytes())
        == Some(bridge.script.secret.as_bytes());
    record.insert("secret_ok".into(), json!(secret_ok));
    if !secret_ok {
        return log.json(record, 403, &[], json!({"ok": false, "error": "forbidden"}));
    }
    let failures = bridge.script.failures;
    if log.inject(&failures) {
        let headers: Vec<_> = failures.retry_after().into_iter().collect();
        let err = json!({"ok": false, "error": "injected failure"});
        return log.json(record, failures.status, &headers, err);
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let filled = |k: &str| {
        parsed
            .as_ref()
            .and_then(|b| b[k].as_str())
            .is_some_and(|s| !s.is_empty())
    };
    if !(is_json && filled("to") && filled("text")) {
        let err = json!({
            "ok": false,
            "error": "expected Content-Type: application/json, {\"to\": \"...\", \"text\": \"...\"}",
        });
        return log.json(record, 400, &[], err);
    }
    let seq = record["seq"].as_u64().unwrap_or(0);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (message_id, replayed) = {
        let mut sent = bridge.sent.lock().unwrap();
        match key.as_ref().and_then(|k| sent.get(k)) {
            Some(id) => (id.clone(), true),
            None => {
                let id = format!("FAKE{seq:012X}");
                if let Some(k) = key {
                    sent.insert(k, id.clone());
                }
                (id, false)
            }
        }
    };
    record.insert("message_id".into(), json!(message_id));
    record.insert("replayed".into(), json!(replayed));
    log.json(
        record,
        200,
        &[],
        json!({"ok": true, "message_id": message_id}),
    )
}

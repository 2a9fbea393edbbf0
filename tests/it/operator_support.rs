//! What the `operator_*` tests share: an intake with the operator API on, authenticated
//! requests that read JSON back, and jobs, calls and messages put in the states a test needs
//! through the queue and the store (never through the API under test).
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use moked_intake::config::IntakeConfig;
use moked_jobs::config::{CoreConfig, OperatorToken};
use moked_jobs::kinds::{CallStarted, ClockTick, WhatsAppSend};
use moked_jobs::queue::{NewJob, Queue, WorkerId};
use moked_jobs::store::Db;
use moked_jobs::store::calls::{
    CallStart, CallStatusChange, apply_call_status, record_call_started,
};
use moked_jobs::store::customers::Number;
use moked_testkit::rows::twilio_text;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, spawn_app_with};

/// The operator token of test apps.
pub const OP_TOKEN: &str = "op-t0ken-for-tests";

/// An intake with `OPERATOR_TOKEN` set.
pub async fn spawn_operator_app(backend: Backend) -> TestApp {
    spawn_operator_app_with(backend, |_, _| {}).await
}

/// An intake with `OPERATOR_TOKEN` set, after `configure`.
pub async fn spawn_operator_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut CoreConfig, &mut IntakeConfig),
) -> TestApp {
    spawn_app_with(backend, |core, intake| {
        core.operator_token = Some(SecretString::from(OP_TOKEN));
        configure(core, intake);
    })
    .await
}

/// An answer: status, headers and the body parsed as JSON (`Value::Null` when it is not).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON.
    pub json: Value,
    /// Body as text.
    pub text: String,
}

impl Answer {
    /// Asserts the JSON error shape `{"error":{"code","message"}}` with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["error"]["code"], code, "{}", self.text);
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(
            self.json.as_object().map(|o| o.len()),
            Some(1),
            "only `error` at the top: {}",
            self.text
        );
        assert!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "errors are JSON: {:?}",
            self.headers.get("content-type")
        );
    }
}

/// A request to the app with (`Some`) or without (`None`) a bearer token.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request reaches the app");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Answer {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// `GET path` with the operator token.
pub async fn get(app: &TestApp, path: &str) -> Answer {
    call(app, Method::GET, path, Some(OP_TOKEN), None, &[]).await
}

/// `POST path` with the operator token and an optional JSON body.
pub async fn post(app: &TestApp, path: &str, body: Option<Value>) -> Answer {
    call(app, Method::POST, path, Some(OP_TOKEN), body, &[]).await
}

/// The state a test job should end up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    /// Left queued.
    Queued,
    /// Claimed, failed for good.
    Dead,
    /// Claimed, failed, next attempt in an hour.
    Retrying,
    /// Claimed and completed.
    Done,
}

/// A `call.started` job whose payload carries a caller number.
pub fn call_started_job(from: &str) -> NewJob {
    NewJob::new(&CallStarted {
        call_sid: crate::helpers::sid("CA"),
        from: from.into(),
        to: "+97233334444".into(),
        status: Some("ringing".into()),
        received_at: Utc::now(),
    })
}

/// A `whatsapp.send` job.
pub fn whatsapp_send_job() -> NewJob {
    NewJob::new(&WhatsAppSend {
        message_id: uuid::Uuid::now_v7().to_string(),
    })
}

/// A `clock.health` job.
pub fn clock_health_job() -> NewJob {
    NewJob::new(&moked_jobs::kinds::ClockHealth(ClockTick {
        tick: Utc::now().to_rfc3339(),
    }))
}

/// Enqueues `jobs` and drives each to its state through the queue (as a worker named
/// `test-worker` would); returns their ids in order. Queued ones are enqueued last so the
/// claims never take them.
pub async fn make_jobs(queue: &dyn Queue, jobs: Vec<(NewJob, Make, &str)>) -> Vec<String> {
    let worker = WorkerId::new("test-worker");
    queue.heartbeat(&worker).await.expect("heartbeat");
    let mut ids = vec![String::new(); jobs.len()];
    let mut later = Vec::new();
    let mut claimed = Vec::new();
    for (i, (job, make, error)) in jobs.into_iter().enumerate() {
        if make == Make::Queued {
            later.push((i, job));
            continue;
        }
        let id = queue.enqueue(job).await.expect("enqueue").id().to_owned();
        ids[i] = id.clone();
        claimed.push((id, make, error.to_owned()));
    }
    // Claim until every job of ours is held; anything else due (a webhook's job) goes back.
    let ours: std::collections::HashSet<String> =
        claimed.iter().map(|(id, _, _)| id.clone()).collect();
    let mut leased = std::collections::HashSet::new();
    let mut others = Vec::new();
    while leased.len() < ours.len() {
        let leases = queue
            .fetch(
                &worker,
                ours.len() - leased.len(),
                Duration::from_millis(200),
            )
            .await
            .expect("fetch");
        assert!(!leases.is_empty(), "the queue handed out no job");
        for lease in leases {
            if ours.contains(&lease.id) {
                leased.insert(lease.id);
            } else {
                others.push(lease.id);
            }
        }
    }
    for id in others {
        queue.release(&worker, &id).await.expect("release");
    }
    for (id, make, error) in claimed {
        match make {
            Make::Dead => queue.bury(&worker, &id, &error).await.expect("bury"),
            Make::Retrying => queue
                .retry_at(
                    &worker,
                    &id,
                    &error,
                    Utc::now() + chrono::Duration::hours(1),
                )
                .await
                .expect("retry_at"),
            Make::Done => queue.complete(&worker, &id).await.expect("complete"),
            Make::Queued => unreachable!("queued jobs are enqueued last"),
        }
    }
    for (i, job) in later {
        ids[i] = queue.enqueue(job).await.expect("enqueue").id().to_owned();
    }
    ids
}

/// Records a call (call.started, then `status` if given) at `at`.
pub async fn record_call(
    db: &Db,
    call_sid: &str,
    from: &str,
    status: Option<&str>,
    at: DateTime<Utc>,
) {
    record_call_started(
        db,
        &CallStart {
            call_sid: call_sid.into(),
            from: Number::parse(from),
            to: Number::parse("+97233334444"),
            status: Some("ringing".into()),
            at,
        },
    )
    .await
    .expect("record call.started");
    if let Some(status) = status {
        apply_call_status(
            db,
            &CallStatusChange {
                call_sid: call_sid.into(),
                status: status.into(),
                sequence: Some(1),
                duration_s: Some(42),
                from: None,
                to: None,
                at: at + chrono::Duration::seconds(42),
            },
        )
        .await
        .expect("apply call status");
    }
}

/// A stored recording (as the voice pipeline leaves it) of `call_sid`, with the audio at
/// `key`, and its transcript.
pub async fn stored_recording(
    db: &Db,
    call_sid: &str,
    recording_sid: &str,
    key: &str,
    size: i64,
    transcript: Option<&str>,
) {
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO recording (recording_sid, call_sid, status, source_url, media_location, \
           content_type, size_bytes, duration_s, transcription_status, created_at, stored_at, \
           updated_at) \
         VALUES ($1, $2, 'stored', 'https://api.twilio.com/secret', $3, 'audio/x-wav', $4, 7, \
           'done', $5, $5, $5)",
    )
    .bind(recording_sid)
    .bind(call_sid)
    .bind(key)
    .bind(size)
    .bind(now)
    .execute(db.pool())
    .await
    .expect("insert recording");
    sqlx::query(
        "INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
         VALUES ($1, 'recording.stored', NULL, '{}', $2, $3)",
    )
    .bind(call_sid)
    .bind(now)
    .bind(format!("recording.stored:{recording_sid}"))
    .execute(db.pool())
    .await
    .expect("insert event");
    if let Some(text) = transcript {
        sqlx::query(
            "INSERT INTO transcript (recording_sid, call_sid, text, language, provider, model, \
               duration_s, created_at) VALUES ($1, $2, $3, 'he', 'openai', 'gpt-4o-transcribe', 7, $4)",
        )
        .bind(recording_sid)
        .bind(call_sid)
        .bind(text)
        .bind(now)
        .execute(db.pool())
        .await
        .expect("insert transcript");
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// `names` sorted, as owned strings (to compare with [`keys`]).
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

/// The space-separated `names` sorted, as owned strings (to compare with [`keys`]): the fields
/// of an object on one line.
pub fn fields(names: &str) -> Vec<String> {
    sorted(&names.split_whitespace().collect::<Vec<_>>())
}

/// `OPERATOR_TOKENS` of these (name, token) pairs.
pub fn operator_tokens(named: &[(&str, &str)]) -> Vec<OperatorToken> {
    named
        .iter()
        .map(|(name, token)| OperatorToken {
            name: (*name).into(),
            token: SecretString::from(*token),
        })
        .collect()
}

/// An outbound WhatsApp message to `to`, as the send API stores it (`queued`, no sid).
pub async fn outbound_message(db: &Db, to: &str) -> String {
    let new = twilio_text(to, None, "התור שלך אושר");
    moked_jobs::store::whatsapp::messages::create_outbound(db, &new)
        .await
        .expect("create message");
    new.id
}

//! Plumbing for the in-process fakes of outside HTTP services ([`crate::fake_transcriber`], the
//! workers' scripted Twilio fakes): serving an axum router on `127.0.0.1:0`, a request log the
//! test reads back, and "fail the first K requests" injection.
//!
//! The log holds one JSON record per request, in arrival order: `seq`, `time` (RFC 3339, ms,
//! taken when the request arrived), `method`, `path`, `headers` (secrets redacted), `status`, plus
//! whatever the fake adds. A record is stored before the answer leaves, so a test that reads the
//! log after the client got its answer always finds it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// Header values never written to the log.
const SECRET_HEADERS: [&str; 2] = ["authorization", "x-baileys-secret"];

/// "Fail the first K requests that passed the checks" with `status`; 429 and 503 carry
/// `Retry-After: retry_after_s` (the services' own throttling and maintenance answers).
#[derive(Debug, Clone, Copy)]
pub struct Failures {
    /// How many requests fail.
    pub first: usize,
    /// With this status.
    pub status: u16,
    /// The `Retry-After` seconds of a 429 or 503.
    pub retry_after_s: u64,
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            first: 0,
            status: 500,
            retry_after_s: 1,
        }
    }
}

impl Failures {
    /// These failures, changed to "the first `first` requests get `status`".
    pub fn first(self, first: usize, status: u16) -> Failures {
        Failures {
            first,
            status,
            ..self
        }
    }

    /// The `Retry-After` header this status carries, if any.
    pub fn retry_after(&self) -> Option<(&'static str, String)> {
        matches!(self.status, 429 | 503).then(|| ("retry-after", self.retry_after_s.to_string()))
    }
}

#[derive(Default)]
struct LogState {
    records: Vec<Value>,
    counted: usize,
}

/// The request log of one fake, shared by its handlers and the test.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<LogState>>);

impl RequestLog {
    /// A record for a request that has just arrived (not stored until [`RequestLog::answer`]).
    pub fn arrived(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Map<String, Value> {
        let seq = self.0.lock().unwrap().records.len() + 1;
        let headers: Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                let shown = if SECRET_HEADERS.contains(&name.as_str()) {
                    "<redacted>".to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), Value::String(shown))
            })
            .collect();
        let mut record = Map::new();
        record.insert("seq".into(), json!(seq));
        record.insert(
            "time".into(),
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        record.insert("method".into(), json!(method.as_str()));
        record.insert("path".into(), json!(uri.path()));
        record.insert("headers".into(), Value::Object(headers));
        record
    }

    /// Whether this request is one of the first `failures.first` counted ones.
    pub fn inject(&self, failures: &Failures) -> bool {
        let mut state = self.0.lock().unwrap();
        state.counted += 1;
        state.counted <= failures.first
    }

    /// Stores `record` with its status, then builds the answer.
    pub fn answer(
        &self,
        mut record: Map<String, Value>,
        status: u16,
        headers: &[(&'static str, String)],
        content_type: &'static str,
        body: String,
    ) -> Response {
        record.insert("status".into(), json!(status));
        self.0.lock().unwrap().records.push(Value::Object(record));
        let mut resp = (
            StatusCode::from_u16(status).expect("a valid status"),
            [("content-type", content_type)],
            body,
        )
            .into_response();
        for (name, value) in headers {
            resp.headers_mut().insert(
                *name,
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
        resp
    }

    /// [`RequestLog::answer`] with a JSON body.
    pub fn json(
        &self,
        record: Map<String, Value>,
        status: u16,
        headers: &[(&'static str, String)],
        body: Value,
    ) -> Response {
        self.answer(
            record,
            status,
            headers,
            "application/json",
            body.to_string(),
        )
    }

    /// Every record whose path is `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|r| r["path"] == path)
            .cloned()
            .collect()
    }
}

/// A fake serving on `127.0.0.1:<free port>` until it is dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Served {
    /// Binds at once (so the URL is known before any await) and serves `app` on the current
    /// tokio runtime.
    pub fn start(app: Router) -> Served {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", std_listener.local_addr().expect("address"));
        let listener =
            tokio::net::TcpListener::from_std(std_listener).expect("a tokio runtime is running");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Served { url, task }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! An in-process fake of OpenAI's transcription API (`POST /v1/audio/transcriptions`), for the
//! `openai` transcriber provider (the workers' voice tests point it at [`FakeTranscriber::base`]).
//!
//! It answers as the real API does, checks in this order:
//! 1. `Authorization: Bearer <api_key>` missing or different → 401 `invalid_api_key`;
//! 2. a body that is not `multipart/form-data` → 400;
//! 3. a `file` over 26,214,400 bytes (OpenAI's 25 MiB limit) → 413;
//! 4. the first [`Failures::first`] requests that got this far → the scripted failure (429 and
//!    503 with `Retry-After`);
//! 5. no `file` or no `model` field, or an unknown `response_format` → 400;
//! 6. else 200: `{"text": …}` for `json`/`verbose_json`, the plain text for `text`, `srt`, `vtt`.
//!
//! Errors have OpenAI's shape `{"error": {"message", "type", "param", "code"}}`. Each request is
//! logged ([`FakeTranscriber::requests`]) with its text `fields` and its `file` (`filename`,
//! `content_type`, `bytes`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::fake_http::{Failures, RequestLog, Served};

/// The key [`SttScript::default`] expects.
pub const STT_KEY: &str = "sk-test";
/// OpenAI's upload limit.
pub const MAX_FILE: usize = 26_214_400;
const PATH: &str = "/v1/audio/transcriptions";
const FORMATS: [&str; 5] = ["json", "text", "verbose_json", "srt", "vtt"];

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct SttScript {
    /// The API key it accepts.
    pub api_key: String,
    /// The transcript of every file.
    pub text: String,
    /// The failures to inject.
    pub failures: Failures,
}

impl Default for SttScript {
    fn default() -> Self {
        SttScript {
            api_key: STT_KEY.into(),
            text: "שלום, זו הודעת בדיקה.".into(),
            failures: Failures::default(),
        }
    }
}

impl SttScript {
    /// Transcribes everything as `text`.
    pub fn text(text: &str) -> SttScript {
        SttScript {
            text: text.into(),
            ..SttScript::default()
        }
    }

    /// Answers the first `first` requests with `status` (429/503 with `Retry-After: 1`).
    pub fn failing_first(self, first: usize, status: u16) -> SttScript {
        SttScript {
            failures: self.failures.first(first, status),
            ..self
        }
    }
}

#[derive(Clone)]
struct Fake {
    script: SttScript,
    log: RequestLog,
}

/// The fake on a free port; stops when dropped.
pub struct FakeTranscriber {
    served: Served,
    log: RequestLog,
}

impl FakeTranscriber {
    /// Starts the fake answering as `script` says.
    pub fn start(script: SttScript) -> FakeTranscriber {
        let log = RequestLog::default();
        let app = Router::new()
            .route(PATH, post(transcribe))
            // The 413 must come from the size check, as at OpenAI, not from axum's 2 MB default.
            .layer(DefaultBodyLimit::disable())
            .with_state(Fake {
                script,
                log: log.clone(),
            });
        FakeTranscriber {
            served: Served::start(app),
            log,
        }
    }

    /// The API base URL a client is configured with (`…/v1`).
    pub fn base(&self) -> String {
        format!("{}/v1", self.served.url)
    }

    /// The transcription requests, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.log.requests_to(PATH)
    }
}

fn openai_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

async fn transcribe(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = fake.log.arrived(&method, &uri, &headers);
    let log = &fake.log;
    let expected = format!("Bearer {}", fake.script.api_key);
    if headers.get("authorization").map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        let err = openai_error(
            "Incorrect API key provided",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        );
        return log.json(record, 401, &[], err);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match parse_multipart(content_type, &body) {
        Ok(parts) => parts,
        Err(e) => {
            let err = openai_error(e, "invalid_request_error", None, None);
            return log.json(record, 400, &[], err);
        }
    };
    let fields: Map<String, Value> = parts
        .iter()
        .filter(|p| p.filename.is_none())
        .map(|p| (p.name.clone(), json!(String::from_utf8_lossy(p.data))))
        .collect();
    record.insert("fields".into(), Value::Object(fields.clone()));
    let file = parts.iter().find(|p| p.name == "file");
    if let Some(f) = file {
        record.insert(
            "file".into(),
            json!({"filename": f.filename, "content_type": f.content_type, "bytes": f.data.len()}),
        );
        if f.data.len() > MAX_FILE {
            let message = format!(
                "Maximum content size limit ({MAX_FILE}) exceeded ({} bytes read)",
                f.data.len()
            );
            let err = openai_error(&message, "server_error", None, None);
            return log.json(record, 413, &[], err);
        }
    }
    let failures = fake.script.failures;
    if log.inject(&failures) {
        let (message, kind) = if failures.status == 429 {
            ("Rate limit reached for requests", "requests")
        } else {
            (
                "The server had an error while processing your request.",
                "server_error",
            )
        };
        let headers: Vec<_> = failures.retry_after().into_iter().collect();
        let err = openai_error(message, kind, None, None);
        return log.json(record, failures.status, &headers, err);
    }
    let field = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or("");
    let invalid = |message: &str, param: &str| {
        openai_error(message, "invalid_request_error", Some(param), None)
    };
    if file.is_none_or(|f| f.filename.is_none()) {
        return log.json(record, 400, &[], invalid("you must provide a file", "file"));
    }
    if field("model").is_empty() {
        let err = invalid("you must provide a model parameter", "model");
        return log.json(record, 400, &[], err);
    }
    let format = match field("response_format") {
        "" => "json",
        f => f,
    };
    if !FORMATS.contains(&format) {
        let err = invalid(
            &format!("response_format must be one of {FORMATS:?}"),
            "response_format",
        );
        return log.json(record, 400, &[], err);
    }
    let text = fake.script.text.clone();
    match format {
        "json" | "verbose_json" => log.json(record, 200, &[], json!({"text": text})),
        _ => log.answer(record, 200, &[], "text/plain; charset=utf-8", text),
    }
}

/// One part of a `multipart/form-data` body.
struct Part<'a> {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: &'a [u8],
}

/// Splits a `multipart/form-data` body into its parts (RFC 7578; enough for what HTTP clients
/// send: quoted `name`/`filename`, CRLF line ends).
fn parse_multipart<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, &'static str> {
    const NOT_MULTIPART: &str = "expected multipart/form-data with a boundary";
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err(NOT_MULTIPART);
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or(NOT_MULTIPART)?;
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter opens the body (no CRLF before it) unless a preamble precedes it.
    let first = &delimiter.as_bytes()[2..];
    let mut rest = if body.starts_with(first) {
        &body[first.len()..]
    } else {
        let start = find(body, delimiter.as_bytes()).ok_or("no multipart delimiter")?;
        &body[start + delimiter.len()..]
    };
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let end = find(rest, delimiter.as_bytes()).ok_or("unterminated multipart body")?;
        let chunk = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let chunk = chunk
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart part")?;
        let split = find(chunk, b"\r\n\r\n").ok_or("malformed multipart part")?;
        let head = String::from_utf8_lossy(&chunk[..split]);
        let data = &chunk[split + 4..];
        let header = |name: &str| {
            head.split("\r\n").find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let disposition = header("content-disposition").unwrap_or_default();
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name").ok_or("multipart part without a name")?,
            filename: param("filename"),
            content_type: header("content-type"),
            data,
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

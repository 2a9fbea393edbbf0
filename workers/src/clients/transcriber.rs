//! Speech to text behind [`Transcriber`], one provider per `TRANSCRIBE_PROVIDER`:
//!
//! * `openai` ([`OpenAiTranscriber`]): any OpenAI-compatible
//!   `POST {TRANSCRIBE_API_BASE}/audio/transcriptions` — OpenAI itself (`gpt-4o-transcribe`, the
//!   default, or `whisper-1`), or a self-hosted Whisper server — as multipart `file` (the stored
//!   bytes as they are, streamed from disk), `model`, `language=he`, `response_format=json`, with
//!   `Authorization: Bearer TRANSCRIBE_API_KEY`.
//! * `whisper` (cargo feature `whisper`, `clients/whisper.rs`): whisper-rs on this machine.
//! * `none` ([`NoTranscriber`]): nothing is transcribed; the handler marks the recording
//!   `not_transcribed` and never writes a placeholder transcript.
//!
//! **Errors** are classified for the retry policy ([`TranscribeError`]):
//!
//! | answer | error | job |
//! |---|---|---|
//! | 429 (rate limit), 5xx, 408, timeout, connection failure | `Transient { retry_after }` (`Retry-After` seconds when sent) | retried per schedule, or after `Retry-After` |
//! | 429 `insufficient_quota` | `Permanent` (no retry buys credit) | dead |
//! | 413, or a file over the provider's limit (25 MiB at OpenAI, checked before sending) | `TooLarge` | split, see below |
//! | 401, 403, 400, 404, other 4xx, unreadable 200 | `Permanent` | dead |
//!
//! **Too large** ([`transcribe_audio`]): the WAV is split into parts below the limit — mixed to
//! mono, at most 16 kHz, cut in pauses ([`super::audio::split_wav`]) — the parts are transcribed
//! in order and their texts joined with a space. A part that is still refused is split again, up
//! to [`MAX_SPLIT_DEPTH`] times. MP3 and compressed WAVs cannot be split in pure Rust; they fail
//! permanently with a message saying so (they would have to be over ~109 minutes to get there).
//!
//! Nothing here logs transcript text or audio; only sizes, durations, statuses and ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::audio;

/// The language every recording is transcribed in.
pub const LANGUAGE: &str = "he";

/// OpenAI's upload limit: 25 MiB for the whole multipart body.
pub const OPENAI_MAX_UPLOAD_BYTES: u64 = 26_214_400;

/// Room left in a part for the multipart framing and the other fields.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// How often a part that is still too large is split again.
pub const MAX_SPLIT_DEPTH: u32 = 3;

/// How long one transcription request may take (a 25 MiB upload and a long transcription).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A local audio file to transcribe.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Where the bytes are.
    pub path: PathBuf,
    /// The file name sent to an API (with its extension: `RE….wav`).
    pub file_name: String,
    /// Its Content-Type (`audio/x-wav`, `audio/mpeg`).
    pub content_type: String,
}

impl Audio {
    /// Whether the bytes are a WAV (by Content-Type or extension).
    pub fn is_wav(&self) -> bool {
        self.content_type.contains("wav") || self.file_name.ends_with(".wav")
    }
}

/// A transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// The text (may be empty when nothing was said).
    pub text: String,
    /// Language code.
    pub language: String,
    /// The model that produced it, when the provider names one.
    pub model: Option<String>,
}

/// Why a transcription failed, classified for the retry policy (see the module doc).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranscribeError {
    /// Try again later (after `retry_after` when the service said so).
    #[error("transcription failed for now: {reason}")]
    Transient {
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// What happened.
        reason: String,
    },
    /// The audio is over the provider's size limit: split it.
    #[error("audio too large for the transcriber: {0}")]
    TooLarge(String),
    /// Never retry (bad key, bad request, no quota).
    #[error("transcription failed: {0}")]
    Permanent(String),
}

/// Speech to text.
#[async_trait]
pub trait Transcriber: Send + Sync + 'static {
    /// `openai`, `whisper` or `none` (stored with the transcript).
    fn provider(&self) -> &'static str;
    /// False for `none`: nothing is transcribed.
    fn enabled(&self) -> bool {
        true
    }
    /// The largest file the provider accepts, when it has a limit.
    fn max_upload_bytes(&self) -> Option<u64> {
        None
    }
    /// Transcribes one file.
    async fn transcribe(&self, audio: &Audio) -> Result<Transcription, TranscribeError>;
}

/// A shared transcriber.
pub type SharedTranscriber = Arc<dyn Transcriber>;

/// `TRANSCRIBE_PROVIDER=none`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTranscriber;

#[async_trait]
impl Transcriber for NoTranscriber {
    fn provider(&self) -> &'static str {
        "none"
    }
    fn enabled(&self) -> bool {
        false
    }
    async fn transcribe(&self, _audio: &Audio) -> Result<Transcription, TranscribeError> {
        Err(TranscribeError::Permanent(
            "TRANSCRIBE_PROVIDER=none: nothing is transcribed".into(),
        ))
    }
}

/// The OpenAI-compatible HTTP provider.
#[derive(Clone)]
pub struct OpenAiTranscriber {
    http: reqwest::Client,
    url: String,
    key: SecretString,
    model: String,
    max_upload_bytes: u64,
}

/// OpenAI's error body `{"error": {"message", "type", "code"}}` (other servers: anything).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TextBody {
    text: String,
}

impl OpenAiTranscriber {
    /// A client for `{api_base}/audio/transcriptions`.
    pub fn new(api_base: &str, key: SecretString, model: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("moked/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OpenAiTranscriber {
            http,
            url: format!("{}/audio/transcriptions", api_base.trim_end_matches('/')),
            key,
            model: model.to_owned(),
            max_upload_bytes: OPENAI_MAX_UPLOAD_BYTES,
        })
    }

    /// Overrides the size checked before sending (servers with other limits; tests that want
    /// the server's 413).
    pub fn with_max_upload_bytes(mut self, bytes: u64) -> Self {
        self.max_upload_bytes = bytes;
        self
    }

    /// Classifies a non-2xx answer.
    fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> TranscribeError {
        let detail = serde_json::from_str::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.error)
            .unwrap_or_default();
        let code = detail
            .code
            .as_ref()
            .and_then(|c| c.as_str().map(str::to_owned))
            .or(detail.kind.clone())
            .unwrap_or_default();
        // The server's message is about the request (limits, keys), never about the audio.
        let message: String = detail
            .message
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
            .chars()
            .take(300)
            .collect();
        let reason = if code.is_empty() {
            format!("HTTP {}: {message}", status.as_u16())
        } else {
            format!("HTTP {} ({code}): {message}", status.as_u16())
        };
        match status.as_u16() {
            413 => TranscribeError::TooLarge(reason),
            429 if code == "insufficient_quota" => TranscribeError::Permanent(format!(
                "{reason} — the account has no quota left; add credit, then retry the job"
            )),
            429 | 408 | 500..=599 => TranscribeError::Transient {
                retry_after,
                reason,
            },
            401 | 403 => TranscribeError::Permanent(format!("{reason} — check TRANSCRIBE_API_KEY")),
            _ => TranscribeError::Permanent(reason),
        }
    }
}

/// Parses `Retry-After` seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    v.parse::<u64>().ok().map(Duration::from_secs).or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64)
    })
}

#[async_trait]
impl Transcriber for OpenAiTranscriber {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn max_upload_bytes(&self) -> Option<u64> {
        Some(self.max_upload_bytes)
    }

    async fn transcribe(&self, audio: &Audio) -> Result<Transcription, TranscribeError> {
        let io = |e: std::io::Error| TranscribeError::Transient {
            retry_after: None,
            reason: format!("reading the stored audio: {e}"),
        };
        let size = tokio::fs::metadata(&audio.path).await.map_err(io)?.len();
        if size > self.max_upload_bytes {
            return Err(TranscribeError::TooLarge(format!(
                "{size} bytes is over the {} byte upload limit",
                self.max_upload_bytes
            )));
        }
        let file = tokio::fs::File::open(&audio.path).await.map_err(io)?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, size)
            .file_name(audio.file_name.clone())
            .mime_str(&audio.content_type)
            .map_err(|e| TranscribeError::Permanent(format!("bad content type: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.model.clone())
            .text("language", LANGUAGE)
            .text("response_format", "json");
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.key.expose_secret())
            .multipart(form)
            .send()
            .await
            .map_err(|e| TranscribeError::Transient {
                retry_after: None,
                reason: if e.is_timeout() {
                    "the transcription API did not answer in time".into()
                } else {
                    format!("cannot reach the transcription API ({})", e.without_url())
                },
            })?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let retry = retry_after(resp.headers());
        let body = resp.text().await.map_err(|e| TranscribeError::Transient {
            retry_after: None,
            reason: format!(
                "the transcription API's answer broke off ({})",
                e.without_url()
            ),
        })?;
        tracing::info!(
            status = status.as_u16(),
            request_id = %request_id,
            upload_bytes = size,
            duration_ms = started.elapsed().as_millis() as u64,
            "transcription API answered"
        );
        if !status.is_success() {
            return Err(Self::classify(status, retry, &body));
        }
        let parsed: TextBody = serde_json::from_str(&body).map_err(|e| {
            TranscribeError::Permanent(format!(
                "the transcription API answered 200 without a JSON `text` ({e})"
            ))
        })?;
        Ok(Transcription {
            text: parsed.text.trim().to_owned(),
            language: LANGUAGE.to_owned(),
            model: Some(self.model.clone()),
        })
    }
}

/// Transcribes `audio`, splitting it into parts when the provider finds it too large (see the
/// module doc). `scratch` holds the parts while they are sent.
pub async fn transcribe_audio(
    t: &dyn Transcriber,
    audio: &Audio,
    scratch: &Path,
) -> Result<Transcription, TranscribeError> {
    match t.transcribe(audio).await {
        Err(TranscribeError::TooLarge(why)) => {
            tracing::info!(reason = %why, "audio too large for one request; splitting");
            let limit = t
                .max_upload_bytes()
                .unwrap_or(OPENAI_MAX_UPLOAD_BYTES)
                .min(OPENAI_MAX_UPLOAD_BYTES)
                .saturating_sub(MULTIPART_OVERHEAD);
            transcribe_split(t, audio, scratch, limit, 1).await
        }
        other => other,
    }
}

/// Splits `audio` into parts of at most `limit` bytes and transcribes them in order.
async fn transcribe_split(
    t: &dyn Transcriber,
    audio: &Audio,
    scratch: &Path,
    limit: u64,
    depth: u32,
) -> Result<Transcription, TranscribeError> {
    if !audio.is_wav() {
        return Err(TranscribeError::Permanent(format!(
            "{} is too large for the transcriber and only WAV can be split (set RECORDING_FORMAT=wav)",
            audio.content_type
        )));
    }
    if depth > MAX_SPLIT_DEPTH {
        return Err(TranscribeError::Permanent(format!(
            "still too large after splitting {MAX_SPLIT_DEPTH} times (parts of {limit} bytes)"
        )));
    }
    let (path, dir) = (audio.path.clone(), scratch.to_owned());
    let parts = tokio::task::spawn_blocking(move || audio::split_wav(&path, limit, &dir))
        .await
        .map_err(|e| TranscribeError::Transient {
            retry_after: None,
            reason: format!("splitting stopped: {e}"),
        })?
        .map_err(|e| match e {
            audio::AudioError::Io(io) => TranscribeError::Transient {
                retry_after: None,
                reason: format!("splitting the audio: {io}"),
            },
            unsupported => TranscribeError::Permanent(format!(
                "too large for the transcriber and cannot be split: {unsupported}"
            )),
        })?;
    tracing::info!(
        parts = parts.len(),
        part_limit_bytes = limit,
        depth,
        "audio split"
    );
    let stem = audio.file_name.trim_end_matches(".wav");
    let mut texts = Vec::with_capacity(parts.len());
    let mut model = None;
    for (i, part) in parts.iter().enumerate() {
        let piece = Audio {
            path: part.path().to_owned(),
            file_name: format!("{stem}.part{}.wav", i + 1),
            content_type: "audio/wav".into(),
        };
        let result = match t.transcribe(&piece).await {
            Err(TranscribeError::TooLarge(_)) => {
                Box::pin(transcribe_split(t, &piece, scratch, limit / 2, depth + 1)).await
            }
            other => other,
        }?;
        model = model.or(result.model);
        if !result.text.is_empty() {
            texts.push(result.text);
        }
    }
    Ok(Transcription {
        text: texts.join(" "),
        language: LANGUAGE.to_owned(),
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_for_the_retry_policy() {
        let c = |s: u16, ra: Option<u64>, body: &str| {
            OpenAiTranscriber::classify(
                StatusCode::from_u16(s).unwrap(),
                ra.map(Duration::from_secs),
                body,
            )
        };
        assert!(matches!(
            c(429, Some(3), r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#),
            TranscribeError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            c(429, None, r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#),
            TranscribeError::Permanent(m) if m.contains("quota")
        ));
        assert!(matches!(
            c(503, None, "overloaded"),
            TranscribeError::Transient {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(c(413, None, "{}"), TranscribeError::TooLarge(_)));
        assert!(
            matches!(c(401, None, r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#),
            TranscribeError::Permanent(m) if m.contains("TRANSCRIBE_API_KEY") && m.contains("401"))
        );
        assert!(matches!(
            c(400, None, r#"{"error":"bad"}"#),
            TranscribeError::Permanent(_)
        ));
    }

    #[test]
    fn retry_after_reads_whole_and_fractional_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(reqwest::header::RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
    }
}

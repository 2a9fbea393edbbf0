//! The voice pipeline (`recording.process`) through the real runner: download from Twilio,
//! store, transcribe, and the call's timeline.
//!
//! Each test gets its own SQLite file (one test runs on Postgres), its own recordings folder,
//! and its own outside services:
//! * a **scripted fake Twilio** (axum on 127.0.0.1:0) for exact sequences: it answers media GETs
//!   from a script (404, 401, a WAV, a body cut short …) and records every request;
//! * **Prism** serving Twilio's official OpenAPI spec for the REST shapes (`MOKED_PRISM_URL`,
//!   started by scripts/test; a local run without it skips those tests with a message, CI fails);
//! * the **fake transcription API** of the test kit (`moked_testkit::fake_transcriber`, axum on
//!   127.0.0.1:0) for the `openai` provider.
//!
//! Jobs run with [`Runner::drain`] and retry schedules of a few tens of milliseconds, so retries
//! happen for real and no test sleeps to wait for work.

mod world;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use moked_jobs::kinds::{self, JobKind, RecordingProcess, timestamp};
use moked_jobs::phone::E164;
use moked_jobs::queue::{JobDetail, JobState, NewJob};
use moked_jobs::retry::{RetryPolicy, RetrySchedule};
use moked_jobs::runner::RunSummary;
use moked_jobs::store::calls::CallDetail;
use moked_jobs::store::recordings::Recording;
use moked_testkit::Backend;
use moked_testkit::audio::wav;
use moked_testkit::fake_http::Served;
use moked_testkit::fake_transcriber::{FakeTranscriber, SttScript};
use moked_testkit::fake_twilio::sid;
use moked_testkit::prism::prism_url;
use moked_workers::clients::transcriber::{
    NoTranscriber, OpenAiTranscriber, SharedTranscriber, Transcriber,
};
use moked_workers::handlers::Ctx;
use world::{AC, BUSINESS_NUMBER, CALLER, TOKEN, World};

/// The retry schedule of the voice tests' jobs.
const RETRY: &str = "30ms,30ms,30ms";

// ---------------------------------------------------------------------------------------------
// The world of one test.

impl World {
    /// A SQLite world whose Twilio REST base is `api_base`; retries after ~30 ms, 4 attempts.
    async fn new(api_base: &str) -> World {
        World::twilio(Backend::Sqlite, api_base, RETRY, "voice").await
    }

    /// The same on a fresh Postgres database.
    async fn postgres(api_base: &str) -> World {
        World::twilio(Backend::Postgres, api_base, RETRY, "voice").await
    }

    /// The handler context with the real Twilio client and `transcriber`.
    fn ctx(&self, transcriber: SharedTranscriber) -> Ctx {
        Ctx {
            transcriber,
            ..self.context()
        }
    }

    /// Records the call the way `call.started` does (links it to a business).
    async fn call(&self, call_sid: &str) {
        self.call_started(call_sid, Utc::now()).await;
    }

    /// Enqueues a recording job the way the intake does (dedupe key `recording:{sid}`), or
    /// without a key (a duplicate that slipped past dedupe).
    async fn enqueue(&self, job: &RecordingProcess, dedupe: bool) -> String {
        let mut new = NewJob::new(job);
        if dedupe {
            new = new.dedupe(
                format!("recording:{}", job.recording_sid),
                Duration::from_secs(3600),
            );
        }
        self.queue
            .enqueue(new)
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Runs every job to done or dead, transcribing with `transcriber`.
    async fn drain(&self, transcriber: impl Transcriber) -> RunSummary {
        let limit = Duration::from_secs(120);
        let ctx = self.ctx(Arc::new(transcriber));
        self.drain_with("voice-test", self.runner_config(), ctx, limit)
            .await
    }

    /// A call of its own (recorded as `call.started` does) and a recording sid: (`RE…`, `CA…`).
    async fn new_call(&self) -> (String, String) {
        let (re, ca) = (sid("RE"), sid("CA"));
        self.call(&ca).await;
        (re, ca)
    }

    /// Enqueues the job of Twilio's recording webhook for `re` of `ca`, received now, under the
    /// intake's dedupe key.
    async fn webhook(&self, re: &str, ca: &str) -> String {
        self.enqueue(&recording_job(re, ca, Utc::now()), true).await
    }

    /// The kinds of the events of the call `ca` other than status changes.
    async fn events(&self, ca: &str) -> Vec<String> {
        event_kinds(&self.timeline(ca).await)
    }

    fn stored_file(&self, rec: &Recording) -> Vec<u8> {
        let key = rec.media_location.as_deref().expect("location");
        std::fs::read(self.dir().join("recordings").join(key)).expect("stored file")
    }
}

/// The `openai` provider pointed at a [`FakeTranscriber`].
trait OpenAi {
    /// The provider calling this fake with `key`.
    fn transcriber(&self, key: &str) -> OpenAiTranscriber;
}

impl OpenAi for FakeTranscriber {
    fn transcriber(&self, key: &str) -> OpenAiTranscriber {
        OpenAiTranscriber::new(&self.base(), key.to_owned().into(), "gpt-4o-transcribe")
            .expect("client")
    }
}

/// A recording job as the intake builds it from Twilio's webhook.
fn recording_job(
    recording_sid: &str,
    call_sid: &str,
    received_at: DateTime<Utc>,
) -> RecordingProcess {
    RecordingProcess {
        recording_sid: recording_sid.to_owned(),
        call_sid: call_sid.to_owned(),
        recording_url: format!(
            "https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{recording_sid}"
        ),
        duration_s: Some(2),
        received_at,
    }
}

/// A job's state and attempts.
fn outcome(detail: &JobDetail) -> (JobState, u32) {
    (detail.summary.state, detail.summary.attempts)
}

/// A job's last error, or "".
fn last_error(detail: &JobDetail) -> String {
    detail.summary.last_error.clone().unwrap_or_default()
}

/// What the timeline of a recording stored, deleted at Twilio and not transcribed shows.
const STORED_AND_DELETED: [&str; 3] = [
    "recording.stored",
    "recording.deleted_at_twilio",
    "recording.not_transcribed",
];

fn event_kinds(detail: &CallDetail) -> Vec<String> {
    detail
        .events
        .iter()
        .filter(|e| e.kind != "status")
        .map(|e| e.kind.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scripted fake Twilio.

#[derive(Clone)]
enum Reply {
    /// An error status with Twilio's error body.
    Status(u16),
    /// 200 with these bytes as `audio/x-wav`.
    Wav(Vec<u8>),
    /// 200 claiming `Content-Length` of the whole file but sending only the first `sent` bytes.
    CutShort(Vec<u8>, usize),
    /// The reply after a delay.
    Slow(Duration, Box<Reply>),
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    /// The form fields of a POST, decoded.
    form: Vec<(String, String)>,
}

#[derive(Clone)]
struct FakeState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The fake on a free port (`served.url`); stops when dropped.
struct FakeTwilio {
    served: Served,
    state: FakeState,
}

impl FakeTwilio {
    /// Answers media GETs with `script` in order (the last reply repeats) and DELETEs with 204.
    async fn start(script: Vec<Reply>) -> FakeTwilio {
        let state = FakeState {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let app = Router::new().fallback(fake_twilio);
        let served = Served::start(app.with_state(state.clone()));
        FakeTwilio { served, state }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    fn gets(&self) -> usize {
        self.seen().iter().filter(|s| s.method == "GET").count()
    }
}

/// The fake answering media GETs with `script`, and a SQLite world using it.
async fn fake_world(script: Vec<Reply>) -> (FakeTwilio, World) {
    let twilio = FakeTwilio::start(script).await;
    let w = World::new(&twilio.served.url).await;
    (twilio, w)
}

async fn fake_twilio(
    State(state): State<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.seen.lock().expect("lock").push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: form_urlencoded::parse(&body).into_owned().collect(),
    });
    if method == Method::POST && uri.path().ends_with("/Messages.json") {
        let message = serde_json::json!({
            "sid": sid("SM"),
            "status": "queued",
            "to": null,
            "from": null,
            "body": null,
            "error_code": null,
            "error_message": null,
        });
        return Response::builder()
            .status(StatusCode::CREATED)
            .header("content-type", "application/json")
            .body(Body::from(message.to_string()))
            .expect("response");
    }
    if method == Method::DELETE {
        return Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::empty())
            .expect("response");
    }
    let reply = {
        let mut script = state.script.lock().expect("lock");
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    };
    render(reply.unwrap_or(Reply::Status(404))).await
}

async fn render(reply: Reply) -> Response {
    match reply {
        Reply::Status(status) => {
            let code = match status {
                401 => 20003,
                404 => 20404,
                429 => 20429,
                _ => 20500,
            };
            let body = serde_json::json!({
                "code": code,
                "message": "scripted",
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            });
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("response")
        }
        Reply::Wav(bytes) => Response::builder()
            .header("content-type", "audio/x-wav")
            .header("content-length", bytes.len())
            .body(Body::from(bytes))
            .expect("response"),
        Reply::CutShort(bytes, sent) => {
            let total = bytes.len();
            let part = bytes[..sent].to_vec();
            // Half the body goes out, then the connection breaks: the client sees a short read.
            let stream = futures::stream::iter([Ok::<_, std::io::Error>(part)]).chain(
                futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::other("connection lost"))
                }),
            );
            Response::builder()
                .header("content-type", "audio/x-wav")
                .header("content-length", total)
                .body(Body::from_stream(stream))
                .expect("response")
        }
        Reply::Slow(delay, inner) => {
            tokio::time::sleep(delay).await;
            Box::pin(render(*inner)).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prism and the fake transcriber.

fn file_bytes(r: &serde_json::Value) -> u64 {
    r["file"]["bytes"].as_u64().unwrap_or(0)
}

fn at(r: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(r["time"].as_str().expect("time"))
        .expect("time parses")
        .with_timezone(&Utc)
}

// ---------------------------------------------------------------------------------------------
// Download and store, against the scripted fake.

#[tokio::test]
async fn a_recording_that_404s_twice_is_stored_once_with_basic_auth() {
    let audio = wav(2);
    let twilio = FakeTwilio::start(vec![
        Reply::Status(404),
        Reply::Status(404),
        Reply::Wav(audio.clone()),
    ])
    .await;
    let w = World::new(&twilio.served.url).await;
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    // The status callback of the same recording is deduplicated at enqueue.
    assert_eq!(w.webhook(&re, &ca).await, job);

    let started = Instant::now();
    let summary = w.drain(NoTranscriber).await;
    eprintln!("404, 404, 200 → stored in {:?}", started.elapsed());

    assert_eq!((summary.done, summary.retried, summary.dead), (1, 2, 0));
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Done);
    assert_eq!(detail.summary.attempts, 3);
    assert!(
        detail.history.iter().all(|a| a.error.contains("HTTP 404")),
        "{:?}",
        detail.history
    );
    assert!(
        detail
            .history
            .iter()
            .all(|a| !a.error.contains("api.twilio.com"))
    );

    let seen = twilio.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{AC}:{TOKEN}"))
    );
    for s in &seen {
        assert_eq!(s.method, "GET");
        assert_eq!(
            s.path,
            format!("/2010-04-01/Accounts/{AC}/Recordings/{re}.wav")
        );
        assert_eq!(s.authorization.as_deref(), Some(basic.as_str()));
    }

    let rec = w.recording(&re).await;
    assert_eq!(rec.status, "stored");
    assert_eq!(rec.size_bytes, Some(audio.len() as i64));
    assert_eq!(rec.duration_s, Some(2));
    assert_eq!(rec.content_type.as_deref(), Some("audio/x-wav"));
    assert_eq!(rec.transcription_status, "not_transcribed");
    let key = rec.media_location.clone().unwrap_or_default();
    let month = Utc::now().format("%Y/%m").to_string();
    assert!(
        key.starts_with("recordings/") && key.ends_with(&format!("/{month}/{re}.wav")),
        "{key}"
    );
    assert_eq!(w.stored_file(&rec), audio);

    let timeline = w.timeline(&ca).await;
    assert_eq!(
        event_kinds(&timeline),
        ["recording.stored", "recording.not_transcribed"]
    );
    assert_eq!(timeline.recordings.len(), 1);
    assert!(timeline.transcript.is_none(), "never a fake transcript");
    assert!(
        !serde_json::to_string(&timeline)
            .unwrap_or_default()
            .contains("api.twilio.com")
    );
    w.close().await;
}

#[tokio::test]
async fn a_401_sends_the_job_to_dead_at_once_with_a_clear_error() {
    let (twilio, w) = fake_world(vec![Reply::Status(401)]).await;
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    let summary = w.drain(NoTranscriber).await;

    assert_eq!((summary.done, summary.dead), (0, 1));
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Dead);
    assert_eq!(detail.summary.attempts, 1);
    let error = last_error(&detail);
    assert!(
        error.contains("refused our credentials")
            && error.contains("HTTP 401")
            && error.contains("TWILIO_AUTH_TOKEN"),
        "{error}"
    );
    assert_eq!(twilio.gets(), 1);
    let rec = w.recording(&re).await;
    assert_eq!(rec.status, "failed");
    assert!(rec.error.unwrap_or_default().contains("HTTP 401"));
    assert_eq!(w.events(&ca).await, ["recording.failed"]);
    w.close().await;
}

#[tokio::test]
async fn a_job_whose_received_at_is_not_a_time_is_dead_at_once_without_a_download() {
    let (twilio, w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    let (re, ca) = w.new_call().await;
    let job = recording_job(&re, &ca, Utc::now());
    let poison = kinds::encode(&job).replace(&timestamp::format(&job.received_at), "yesterday");
    let id = w
        .queue
        .enqueue(NewJob::raw(JobKind::RecordingProcess, poison))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    let summary = w.drain(NoTranscriber).await;

    assert_eq!((summary.done, summary.dead), (0, 1));
    let detail = w.job(&id).await;
    assert_eq!(detail.summary.attempts, 1);
    let error = last_error(&detail);
    assert!(
        error.contains("recording.process") && error.contains("`yesterday` is not an RFC 3339"),
        "{error}"
    );
    assert_eq!(twilio.gets(), 0);
    w.close().await;
}

#[tokio::test]
async fn duplicate_jobs_for_one_recording_download_it_once() {
    let audio = wav(1);
    let twilio = FakeTwilio::start(vec![Reply::Slow(
        Duration::from_millis(300),
        Box::new(Reply::Wav(audio.clone())),
    )])
    .await;
    let mut w = World::new(&twilio.served.url).await;
    // The losers retry while the winner downloads (300 ms): give them time to wait it out.
    w.core.retry = RetryPolicy::new(
        "500ms,500ms,500ms,500ms,500ms,500ms"
            .parse::<RetrySchedule>()
            .expect("schedule"),
    );
    let (re, ca) = w.new_call().await;
    // Three jobs that slipped past the dedupe key (e.g. redelivered after the key expired).
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(w.enqueue(&recording_job(&re, &ca, Utc::now()), false).await);
    }
    let summary = w.drain(NoTranscriber).await;
    assert_eq!((summary.done, summary.dead), (3, 0));
    assert_eq!(twilio.gets(), 1, "{:?}", twilio.seen());

    // A late duplicate after the recording is stored downloads nothing either.
    ids.push(w.enqueue(&recording_job(&re, &ca, Utc::now()), false).await);
    w.drain(NoTranscriber).await;
    assert_eq!(twilio.gets(), 1);
    for id in &ids {
        assert_eq!(w.job(id).await.summary.state, JobState::Done);
    }
    let timeline = w.timeline(&ca).await;
    assert_eq!(
        event_kinds(&timeline),
        ["recording.stored", "recording.not_transcribed"]
    );
    assert_eq!(w.stored_file(&w.recording(&re).await), audio);
    w.close().await;
}

#[tokio::test]
async fn a_404_ten_minutes_after_the_webhook_is_permanent() {
    let (_twilio, w) = fake_world(vec![Reply::Status(404)]).await;
    let (re, ca) = w.new_call().await;
    let long_ago = Utc::now() - chrono::Duration::minutes(11);
    let job = w.enqueue(&recording_job(&re, &ca, long_ago), true).await;
    w.drain(NoTranscriber).await;
    let detail = w.job(&job).await;
    assert_eq!(outcome(&detail), (JobState::Dead, 1));
    let error = last_error(&detail);
    assert!(
        error.contains("still not found") && error.contains("11 minutes"),
        "{error}"
    );
    assert_eq!(w.recording(&re).await.status, "failed");
    w.close().await;
}

#[tokio::test]
async fn a_body_cut_short_is_retried_and_the_store_gets_the_whole_file() {
    let audio = wav(3);
    let twilio = FakeTwilio::start(vec![
        Reply::CutShort(audio.clone(), audio.len() / 2),
        Reply::Wav(audio.clone()),
    ])
    .await;
    let w = World::new(&twilio.served.url).await;
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    w.drain(NoTranscriber).await;
    let detail = w.job(&job).await;
    assert_eq!(outcome(&detail), (JobState::Done, 2));
    let first = &detail.history[0].error;
    assert!(
        first.contains("broke off") || first.contains("short download"),
        "{first}"
    );
    let rec = w.recording(&re).await;
    assert_eq!(rec.size_bytes, Some(audio.len() as i64));
    assert_eq!(w.stored_file(&rec), audio);
    w.close().await;
}

#[tokio::test]
async fn a_recording_url_off_twilio_is_refused_without_sending_credentials() {
    let (twilio, w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    let (re, ca) = w.new_call().await;
    let mut payload = recording_job(&re, &ca, Utc::now());
    payload.recording_url =
        format!("https://attacker.example/2010-04-01/Accounts/{AC}/Recordings/{re}");
    let job = w.enqueue(&payload, true).await;
    w.drain(NoTranscriber).await;
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Dead);
    let error = last_error(&detail);
    assert!(
        error.contains("not on Twilio's API host") && !error.contains("attacker"),
        "{error}"
    );
    assert_eq!(twilio.seen().len(), 0);
    w.close().await;
}

#[tokio::test]
async fn deleting_twilios_copy_after_a_verified_store_when_configured() {
    let (twilio, mut w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    w.worker.delete_twilio_recording_after_store = true;
    let (re, ca) = w.new_call().await;
    w.webhook(&re, &ca).await;
    w.drain(NoTranscriber).await;
    let seen = twilio.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "DELETE"]);
    assert_eq!(
        seen[1].path,
        format!("/2010-04-01/Accounts/{AC}/Recordings/{re}.json")
    );
    assert_eq!(w.events(&ca).await, STORED_AND_DELETED);
    w.close().await;
}

// ---------------------------------------------------------------------------------------------
// REST shapes against Prism (Twilio's official OpenAPI spec).

#[tokio::test]
async fn prism_serves_the_media_path_we_build_and_accepts_our_delete() {
    let Some(prism) = prism_url() else { return };
    let mut w = World::new(&prism).await;
    w.worker.delete_twilio_recording_after_store = true;
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    let started = Instant::now();
    w.drain(NoTranscriber).await;
    eprintln!("Prism download + store + delete in {:?}", started.elapsed());
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
    let rec = w.recording(&re).await;
    // Prism's overlay serves a real 124-byte 8 kHz WAV for `…/Recordings/{RE…}.wav`.
    assert_eq!((rec.status.as_str(), rec.size_bytes), ("stored", Some(124)));
    assert_eq!(rec.content_type.as_deref(), Some("audio/x-wav"));
    assert_eq!(&w.stored_file(&rec)[..4], b"RIFF");
    assert_eq!(w.events(&ca).await, STORED_AND_DELETED);
    w.close().await;
}

#[tokio::test]
async fn prism_mp3_when_recording_format_is_mp3() {
    let Some(prism) = prism_url() else { return };
    let mut w = World::new(&prism).await;
    w.worker.recording_format = moked_workers::config::RecordingFormat::Mp3;
    let (re, ca) = w.new_call().await;
    w.webhook(&re, &ca).await;
    w.drain(NoTranscriber).await;
    let rec = w.recording(&re).await;
    assert_eq!(rec.status, "stored");
    assert_eq!(rec.content_type.as_deref(), Some("audio/mpeg"));
    assert!(
        rec.media_location
            .unwrap_or_default()
            .ends_with(&format!("{re}.mp3"))
    );
    w.close().await;
}

// ---------------------------------------------------------------------------------------------
// The openai provider against the fake transcription API.

#[tokio::test]
async fn an_openai_transcript_is_stored_on_the_call_with_provider_model_and_language() {
    let audio = wav(2);
    let (_twilio, w) = fake_world(vec![Reply::Wav(audio.clone())]).await;
    let stt = FakeTranscriber::start(SttScript::text("שלום, אני רוצה לקבוע פגישה"));
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    let started = Instant::now();
    w.drain(stt.transcriber("sk-test")).await;
    eprintln!(
        "download + store + openai transcription in {:?}",
        started.elapsed()
    );

    assert_eq!(w.job(&job).await.summary.state, JobState::Done);
    let timeline = w.timeline(&ca).await;
    let t = timeline.transcript.clone().expect("transcript on the call");
    assert_eq!(t.text, "שלום, אני רוצה לקבוע פגישה");
    assert_eq!(
        (t.provider.as_str(), t.model.as_deref(), t.language.as_str()),
        ("openai", Some("gpt-4o-transcribe"), "he")
    );
    assert_eq!(t.duration_s, Some(2));
    assert_eq!(
        event_kinds(&timeline),
        ["recording.stored", "transcript.stored"]
    );
    assert!(
        timeline
            .events
            .iter()
            .all(|e| !e.detail.as_deref().unwrap_or("").contains("שלום")),
        "events never carry the text"
    );
    assert_eq!(w.recording(&re).await.transcription_status, "done");

    let reqs = stt.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["status"], 200);
    assert_eq!(r["fields"]["model"], "gpt-4o-transcribe");
    assert_eq!(r["fields"]["language"], "he");
    assert_eq!(r["fields"]["response_format"], "json");
    assert_eq!(r["file"]["filename"], format!("{re}.wav"));
    assert_eq!(file_bytes(r), audio.len() as u64);
    w.close().await;
}

#[tokio::test]
async fn an_openai_429_with_retry_after_is_retried_after_the_delay_without_downloading_again() {
    let (twilio, w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    let stt = FakeTranscriber::start(SttScript::text("תודה רבה").failing_first(1, 429));
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    w.drain(stt.transcriber("sk-test")).await;

    let detail = w.job(&job).await;
    assert_eq!(outcome(&detail), (JobState::Done, 2));
    assert!(
        detail.history[0].error.contains("HTTP 429"),
        "{:?}",
        detail.history
    );
    let reqs = stt.requests();
    assert_eq!(
        reqs.iter()
            .map(|r| r["status"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [429, 200]
    );
    let gap = at(&reqs[1]) - at(&reqs[0]);
    eprintln!(
        "429 Retry-After: 1 → retried after {} ms",
        gap.num_milliseconds()
    );
    assert!(
        gap >= chrono::Duration::milliseconds(950),
        "retried after {gap}"
    );
    assert_eq!(
        twilio.gets(),
        1,
        "the stored copy is transcribed, Twilio is not asked again"
    );
    assert_eq!(
        w.timeline(&ca).await.transcript.map(|t| t.text).as_deref(),
        Some("תודה רבה")
    );
    w.close().await;
}

#[tokio::test]
async fn an_openai_413_splits_the_recording_and_joins_the_parts() {
    // ~27.6 minutes of Twilio WAV: 26.5 MB, over OpenAI's 26,214,400-byte limit.
    let audio = wav(1656);
    assert!(audio.len() as u64 > 26_214_400);
    let (_twilio, w) = fake_world(vec![Reply::Wav(audio.clone())]).await;
    let stt = FakeTranscriber::start(SttScript::text("חלק"));
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    // Let the upload through so the server's own 413 drives the split.
    let transcriber = stt
        .transcriber("sk-test")
        .with_max_upload_bytes(64 * 1024 * 1024);
    let started = Instant::now();
    w.drain(transcriber).await;
    eprintln!(
        "26.5 MB: download, store, 413, split, 2 transcriptions in {:?}",
        started.elapsed()
    );

    assert_eq!(w.job(&job).await.summary.state, JobState::Done);
    let reqs = stt.requests();
    let statuses: Vec<u64> = reqs
        .iter()
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [413, 200, 200], "{reqs:?}");
    assert_eq!(file_bytes(&reqs[0]), audio.len() as u64);
    for part in &reqs[1..] {
        assert!(file_bytes(part) < 26_214_400, "{part}");
        assert!(
            part["file"]["filename"]
                .as_str()
                .unwrap_or("")
                .contains(".part")
        );
    }
    assert_eq!(
        w.timeline(&ca).await.transcript.map(|t| t.text).as_deref(),
        Some("חלק חלק")
    );
    w.close().await;
}

#[tokio::test]
async fn an_openai_upload_over_25_mib_is_split_before_sending() {
    let audio = wav(1656);
    let (_twilio, w) = fake_world(vec![Reply::Wav(audio)]).await;
    let stt = FakeTranscriber::start(SttScript::text("חלק"));
    let (re, ca) = w.new_call().await;
    w.webhook(&re, &ca).await;
    w.drain(stt.transcriber("sk-test")).await;
    let reqs = stt.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(
        reqs.iter()
            .all(|r| r["status"] == 200 && file_bytes(r) < 26_214_400)
    );
    assert_eq!(w.recording(&re).await.transcription_status, "done");
    w.close().await;
}

#[tokio::test]
async fn openai_500s_are_retried_then_the_job_is_dead_and_the_recording_stays_stored() {
    let (twilio, w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    let stt = FakeTranscriber::start(SttScript::default().failing_first(100, 500));
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    let summary = w.drain(stt.transcriber("sk-test")).await;

    assert_eq!((summary.retried, summary.dead), (3, 1));
    let detail = w.job(&job).await;
    assert_eq!(outcome(&detail), (JobState::Dead, 4));
    assert!(
        detail
            .summary
            .last_error
            .unwrap_or_default()
            .contains("HTTP 500")
    );
    assert_eq!(stt.requests().len(), 4);
    assert_eq!(twilio.gets(), 1);
    let rec = w.recording(&re).await;
    assert_eq!(
        (rec.status.as_str(), rec.transcription_status.as_str()),
        ("stored", "failed")
    );
    let timeline = w.timeline(&ca).await;
    assert_eq!(
        event_kinds(&timeline),
        ["recording.stored", "transcript.failed"]
    );
    assert!(timeline.transcript.is_none());

    // Running the recording again (once the API is back) transcribes the stored copy without
    // downloading it again: a failed transcription can be re-claimed.
    drop(stt);
    let stt = FakeTranscriber::start(SttScript::text("שוב"));
    let again = w.enqueue(&recording_job(&re, &ca, Utc::now()), false).await;
    w.drain(stt.transcriber("sk-test")).await;
    assert_eq!(w.job(&again).await.summary.state, JobState::Done);
    assert_eq!(
        w.timeline(&ca).await.transcript.map(|t| t.text).as_deref(),
        Some("שוב")
    );
    assert_eq!(twilio.gets(), 1);
    w.close().await;
}

#[tokio::test]
async fn a_wrong_transcription_key_is_dead_at_once_naming_the_setting() {
    let (_twilio, w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    let stt = FakeTranscriber::start(SttScript::default());
    let (re, ca) = w.new_call().await;
    let job = w.webhook(&re, &ca).await;
    w.drain(stt.transcriber("sk-wrong")).await;
    let detail = w.job(&job).await;
    assert_eq!(outcome(&detail), (JobState::Dead, 1));
    let error = last_error(&detail);
    assert!(
        error.contains("HTTP 401") && error.contains("TRANSCRIBE_API_KEY"),
        "{error}"
    );
    w.close().await;
}

#[tokio::test]
async fn notify_whatsapp_to_queues_one_note_with_the_caller_and_the_transcript() {
    let (twilio, mut w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    w.worker.notify_whatsapp_to = Some("+972541112233".into());
    w.worker.whatsapp.sender = Some(E164::parse(BUSINESS_NUMBER).expect("our number"));
    let stt = FakeTranscriber::start(SttScript::text("אני רוצה לקבוע פגישה"));
    let (re, ca) = w.new_call().await;
    w.webhook(&re, &ca).await;
    w.drain(stt.transcriber("sk-test")).await;
    // A duplicate run later queues no second note.
    w.enqueue(&recording_job(&re, &ca, Utc::now()), false).await;
    w.drain(stt.transcriber("sk-test")).await;

    let posts: Vec<Seen> = twilio
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let field = |name: &str| {
        posts[0]
            .form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), "whatsapp:+972541112233");
    let body = field("Body");
    assert!(
        body.contains(CALLER) && body.contains("אני רוצה לקבוע פגישה"),
        "{body}"
    );
    let kinds = w.events(&ca).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "notify.queued").count(),
        1,
        "{kinds:?}"
    );
    w.close().await;
}

// ---------------------------------------------------------------------------------------------
// Postgres, and the intake's order of events.

#[tokio::test]
async fn on_postgres_a_recording_is_stored_and_transcribed_once() {
    let audio = wav(1);
    let twilio = FakeTwilio::start(vec![Reply::Status(404), Reply::Wav(audio.clone())]).await;
    let w = World::postgres(&twilio.served.url).await;
    let stt = FakeTranscriber::start(SttScript::text("בדיקה"));
    let (re, ca) = w.new_call().await;
    for _ in 0..2 {
        w.enqueue(&recording_job(&re, &ca, Utc::now()), false).await;
    }
    let summary = w.drain(stt.transcriber("sk-test")).await;
    assert_eq!((summary.done, summary.dead), (2, 0));
    assert_eq!(twilio.gets(), 2);
    assert_eq!(stt.requests().len(), 1);
    let timeline = w.timeline(&ca).await;
    assert_eq!(
        timeline.transcript.as_ref().map(|t| t.text.as_str()),
        Some("בדיקה")
    );
    assert_eq!(
        event_kinds(&timeline),
        ["recording.stored", "transcript.stored"]
    );
    w.close().await;
}

#[tokio::test]
async fn a_recording_that_beats_its_call_started_job_waits_for_the_call_and_files_under_its_business()
 {
    let (_twilio, mut w) = fake_world(vec![Reply::Wav(wav(1))]).await;
    w.core.retry = RetryPolicy::new(
        "1s,1s,1s,1s,1s,1s"
            .parse::<RetrySchedule>()
            .expect("schedule"),
    );
    let (re, ca) = (sid("RE"), sid("CA"));
    // The recording job runs before call.started: it waits (transient) instead of guessing.
    let job = w.webhook(&re, &ca).await;
    let started = moked_jobs::kinds::CallStarted {
        call_sid: ca.clone(),
        from: CALLER.into(),
        to: BUSINESS_NUMBER.into(),
        status: Some("ringing".into()),
        received_at: Utc::now(),
    };
    w.queue
        .enqueue(NewJob::new(&started).run_at(Utc::now() + chrono::Duration::milliseconds(300)))
        .await
        .expect("enqueue call.started");
    w.drain(NoTranscriber).await;
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
    assert!(
        detail.history[0]
            .error
            .contains("not linked to a business yet"),
        "{:?}",
        detail.history
    );
    let timeline = w.timeline(&ca).await;
    let business = timeline.business.expect("business").id;
    assert!(
        w.recording(&re)
            .await
            .media_location
            .unwrap_or_default()
            .starts_with(&format!("recordings/{business}/"))
    );
    w.close().await;
}

// ---------------------------------------------------------------------------------------------
// The whisper provider (cargo feature `whisper`): real transcription of clips made offline with
// espeak-ng + sox (workers/tests/data/README.md), models built from PyPI wheels by
// workers/tests/whisper/fetch_models.sh.

#[cfg(feature = "whisper")]
mod whisper {
    use std::path::Path;

    use super::*;
    use moked_testkit::prism::flag;
    use moked_workers::clients::whisper::WhisperTranscriber;

    /// `$MOKED_WHISPER_MODEL_DIR/ggml-{name}.bin`; in CI its absence is a failure.
    fn model(name: &str) -> Option<String> {
        match std::env::var("MOKED_WHISPER_MODEL_DIR") {
            Ok(dir) if !dir.trim().is_empty() => {
                let path = Path::new(dir.trim()).join(format!("ggml-{name}.bin"));
                assert!(
                    path.is_file(),
                    "{} is missing: run workers/tests/whisper/fetch_models.sh",
                    path.display()
                );
                Some(path.display().to_string())
            }
            _ if flag("CI") => panic!(
                "MOKED_WHISPER_MODEL_DIR is unset in CI: export MOKED_WHISPER_MODEL_DIR=$(bash workers/tests/whisper/fetch_models.sh)"
            ),
            _ => {
                eprintln!(
                    "SKIPPED: MOKED_WHISPER_MODEL_DIR is unset; export MOKED_WHISPER_MODEL_DIR=$(bash workers/tests/whisper/fetch_models.sh)"
                );
                None
            }
        }
    }

    fn clip(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(name),
        )
        .expect("clip")
    }

    /// Lowercase letters and digits (niqqud and punctuation dropped), words single-spaced.
    fn normalise(text: &str) -> String {
        text.chars()
            .filter(|c| !('\u{0591}'..='\u{05C7}').contains(c))
            .map(|c| {
                if c.is_alphanumeric() {
                    c.to_lowercase().next().unwrap_or(c)
                } else {
                    ' '
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Character error rate: edit distance over the reference length.
    fn cer(reference: &str, hypothesis: &str) -> f64 {
        let (r, h): (Vec<char>, Vec<char>) =
            (reference.chars().collect(), hypothesis.chars().collect());
        let mut prev: Vec<usize> = (0..=h.len()).collect();
        for (i, rc) in r.iter().enumerate() {
            let mut cur = vec![i + 1; h.len() + 1];
            for (j, hc) in h.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(rc != hc))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[h.len()] as f64 / r.len().max(1) as f64
    }

    /// Runs one recording of `audio` through the whole job with `transcriber`: the transcript
    /// and the time it took, or the job's error when it died (only allowed when `!must_succeed`).
    async fn transcribe_call(
        audio: Vec<u8>,
        transcriber: WhisperTranscriber,
        must_succeed: bool,
    ) -> Result<(String, Duration), String> {
        let (_twilio, w) = fake_world(vec![Reply::Wav(audio)]).await;
        let (re, ca) = w.new_call().await;
        let job = w.webhook(&re, &ca).await;
        let started = Instant::now();
        w.drain(transcriber).await;
        let took = started.elapsed();
        let detail = w.job(&job).await;
        if detail.summary.state != JobState::Done && !must_succeed {
            w.close().await;
            return Err(detail.summary.last_error.unwrap_or_default());
        }
        assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
        let t = w.timeline(&ca).await.transcript.expect("transcript");
        assert_eq!(
            (t.provider.as_str(), t.duration_s.is_some()),
            ("whisper", true)
        );
        w.close().await;
        Ok((t.text, took))
    }

    #[tokio::test]
    async fn whisper_transcribes_an_english_call_word_for_word() {
        let Some(path) = model("tiny.en") else { return };
        let t = WhisperTranscriber::load(&path, 1, 2)
            .expect("model loads")
            .with_language("en");
        let (text, took) = transcribe_call(clip("en_call.8k.wav"), t, true)
            .await
            .expect("transcribed");
        let reference = "hello my name is yossi cohen please call me back about the apartment on herzl street thank you very much goodbye";
        let got = normalise(&text);
        let rate = cer(reference, &got);
        eprintln!("whisper tiny.en, 9.0 s English call: {took:?} end to end, CER {rate:.3}: {got}");
        // What tiny.en gets right on this clip every time (it hears "call me Mac, I'm out in the
        // apartment"): asserted word for word; the rest is held to the character error rate.
        for words in [
            "hello my name is",
            "please call me",
            "the apartment",
            "thank you very much",
            "goodbye",
        ] {
            assert!(got.contains(words), "`{words}` missing from `{got}`");
        }
        assert!(rate < 0.25, "CER {rate:.3}: {got}");
    }

    #[tokio::test]
    async fn whisper_runs_the_hebrew_clips_and_prints_their_character_error_rate() {
        let Some(path) = model("base") else { return };
        let clips = [
            (
                "he_1.8k.wav",
                "שלום אני רוצה לקבוע פגישה לראות דירה ברחוב הרצל",
            ),
            ("he_5.8k.wav", "תודה רבה להתראות"),
        ];
        for (name, reference) in clips {
            let t = WhisperTranscriber::load(&path, 1, 2).expect("model loads");
            // Whisper base is weak at Hebrew (measured CER ≈ 0.5–0.6 on these synthetic 8 kHz
            // clips, and some clips loop); the rate is reported, not asserted, and the text is
            // stored as it came. A decode that runs past its deadline counts as CER 1.
            match transcribe_call(clip(name), t, false).await {
                Ok((text, took)) => {
                    let got = normalise(&text);
                    eprintln!(
                        "whisper base, {name}: {took:?} end to end, CER {:.3}: {got}",
                        cer(reference, &got)
                    );
                }
                Err(error) => {
                    assert!(error.contains("ran away"), "{error}");
                    eprintln!("whisper base, {name}: CER 1.000 ({error})");
                }
            }
        }
    }
}

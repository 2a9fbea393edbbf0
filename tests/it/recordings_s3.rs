//! `RECORDINGS_STORE=s3://…` for real: the release-shaped `moked` binary stores a recording in
//! an S3-compatible server and serves it back to an operator, configured only through the
//! `AWS_*` variables the README documents.
//!
//! The server is moto's S3 (PyPI `moto[server]`, pinned in `tests/s3/requirements.txt`), started
//! by `scripts/test`, which exports `MOKED_S3_ENDPOINT`. Without it the test says it skipped; in
//! CI (`CI` set) it fails instead. Twilio's recording download is a small fake on
//! `127.0.0.1:0` (the pipeline only asks `TWILIO_API_BASE` for the media).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::helpers::until;

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3-test-auth-token";
const OPERATOR: &str = "s3-test-operator";
const BUCKET: &str = "moked-recordings";

/// The S3 endpoint scripts/test started, or `None` (after saying so) outside CI.
fn endpoint() -> Option<String> {
    match std::env::var("MOKED_S3_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("MOKED_S3_ENDPOINT is unset in CI: scripts/test must start the S3 server")
        }
        _ => {
            eprintln!(
                "SKIPPED: MOKED_S3_ENDPOINT is unset (scripts/test starts moto's S3 server and sets it)"
            );
            None
        }
    }
}

/// A recording a caller left: a real 8 kHz WAV from the workers' test data.
fn wav() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workers/tests/data/he_1.8k.wav"
    );
    std::fs::read(path).expect("test WAV")
}

/// Twilio's media endpoint: every GET of a `.wav` gets the recording.
async fn fake_twilio(audio: Arc<Vec<u8>>, hits: Arc<AtomicUsize>) -> String {
    async fn media(
        State((audio, hits)): State<(Arc<Vec<u8>>, Arc<AtomicUsize>)>,
        uri: Uri,
    ) -> Response {
        if !uri.path().ends_with(".wav") {
            return StatusCode::NOT_FOUND.into_response();
        }
        hits.fetch_add(1, Ordering::SeqCst);
        (
            [(header::CONTENT_TYPE, "audio/x-wav")],
            audio.as_ref().clone(),
        )
            .into_response()
    }
    let app = Router::new().fallback(media).with_state((audio, hits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_stored_in_s3_and_served_back_with_ranges() {
    let Some(s3) = endpoint() else { return };
    let http = reqwest::Client::new();
    // moto accepts any credentials; the bucket is created as an operator would.
    let created = http
        .put(format!("{s3}/{BUCKET}"))
        .send()
        .await
        .expect("create the bucket");
    assert!(created.status().is_success(), "{created:?}");
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());

    let audio = Arc::new(wav());
    let hits = Arc::new(AtomicUsize::new(0));
    let twilio = fake_twilio(audio.clone(), hits.clone()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let moked = Killed(
        Command::new(env!("CARGO_BIN_EXE_moked"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("PUBLIC_HOST", &public)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("moked.db").display()),
            )
            .env("TWILIO_ACCOUNT_SID", AC)
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("TWILIO_API_BASE", &twilio)
            .env("OPERATOR_TOKEN", OPERATOR)
            .env("RECORDINGS_STORE", format!("s3://{BUCKET}/{prefix}"))
            // The settings the README documents for an S3-compatible store.
            .env("AWS_ACCESS_KEY_ID", "moked-test")
            .env("AWS_SECRET_ACCESS_KEY", "moked-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moked"),
    );
    until(Duration::from_secs(30), "moked to answer", || {
        let url = format!("{public}/api/health");
        let http = http.clone();
        async move { http.get(url).send().await.ok().map(|_| ()) }
    })
    .await;

    // A call comes in, then Twilio says its recording is ready.
    let (ca, re) = (
        "CA5c3e0000000000000000000000000001",
        "RE5c3e0000000000000000000000000001",
    );
    let post = |path: &'static str, params: Vec<(String, String)>| {
        let (http, url) = (http.clone(), format!("{public}{path}"));
        async move {
            let signature = moked_jobs::signature::compute(TOKEN, &url, &params);
            let answer = http
                .post(&url)
                .header("X-Twilio-Signature", signature)
                .form(&params)
                .send()
                .await
                .expect("webhook");
            assert!(answer.status().is_success(), "{path}: {answer:?}");
        }
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    post(
        "/webhook/incoming_call",
        pairs(&[
            ("AccountSid", AC),
            ("CallSid", ca),
            ("From", "+972521234567"),
            ("To", "+97233334444"),
            ("CallStatus", "ringing"),
        ]),
    )
    .await;
    let params: Vec<(String, String)> = [
        ("AccountSid", AC.to_owned()),
        ("CallSid", ca.to_owned()),
        ("RecordingSid", re.to_owned()),
        (
            "RecordingUrl",
            format!("{twilio}/2010-04-01/Accounts/{AC}/Recordings/{re}"),
        ),
        ("RecordingStatus", "completed".to_owned()),
        ("RecordingDuration", "1".to_owned()),
        ("RecordingChannels", "1".to_owned()),
        ("RecordingSource", "RecordVerb".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    post("/webhook/recording_status", params).await;

    // The worker downloads it and stores it; the call shows a download URL.
    let download = until(Duration::from_secs(60), "the recording stored", || {
        let (http, url) = (http.clone(), format!("{public}/api/calls/{ca}"));
        async move {
            let call: serde_json::Value = http
                .get(url)
                .bearer_auth(OPERATOR)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let rec = call["recordings"].as_array()?.first()?.clone();
            (rec["status"] == "stored").then(|| rec["download_url"].as_str().map(str::to_owned))?
        }
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "downloaded once");

    // It is in the bucket, under the prefix, byte for byte.
    let listing = http
        .get(format!("{s3}/{BUCKET}?list-type=2&prefix={prefix}/"))
        .send()
        .await
        .expect("list the bucket")
        .text()
        .await
        .expect("listing");
    let key = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .find(|k| k.ends_with(&format!("{re}.wav")))
        .unwrap_or_else(|| panic!("{re}.wav under {prefix}/ in {listing}"))
        .to_owned();
    assert!(key.starts_with(&format!("{prefix}/recordings/")), "{key}");
    let stored = http
        .get(format!("{s3}/{BUCKET}/{key}"))
        .send()
        .await
        .expect("get the object")
        .bytes()
        .await
        .expect("object body");
    assert_eq!(stored.as_ref(), audio.as_slice());

    // The operator plays it from the intake, which reads the same bucket, seeking as it goes.
    let whole = http
        .get(&download)
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("audio");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(
        whole.bytes().await.expect("body").as_ref(),
        audio.as_slice()
    );
    let part = http
        .get(&download)
        .bearer_auth(OPERATOR)
        .header(header::RANGE, "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[header::CONTENT_RANGE],
        format!("bytes 100-199/{}", audio.len()).as_str()
    );
    assert_eq!(part.bytes().await.expect("body").as_ref(), &audio[100..200]);
    drop(moked);
}

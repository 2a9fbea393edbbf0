//! The operator page in a real browser: headless Debian Chromium driven by playwright-core
//! (`tests/browser/ops_e2e.mjs`) signs in, sees a dead job with its error and attempts, retries
//! it, and sees it done — a worker runtime runs in this process and fails the job (a "failing
//! fake Twilio") until the test makes it healthy. A second dead job, whose message the provider
//! had already accepted, is refused on Retry and the page shows why. It then opens a call (Hebrew transcript right
//! to left, audio played from the authenticated download) and the caller's timeline, and leaves
//! screenshots in `target/ops-e2e/`.
//!
//! Needs `/usr/bin/chromium` (Debian package `chromium`; `MOKED_CHROMIUM` overrides the path)
//! and Node.js with npm: playwright-core (pinned below) is installed into `target/ops-e2e/` on
//! first use. Without the browser or npm the test fails under CI (`CI` set) and is skipped
//! loudly elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use moked_jobs::kinds::WhatsAppSend;
use moked_jobs::queue::{JobState, NewJob};
use moked_jobs::retry::JobError;
use moked_jobs::runner::{Runner, RunnerConfig, handler};
use moked_jobs::store::messages::attach_provider_sid;

use crate::helpers::{Backend, sid};
use crate::operator_support::{
    OP_TOKEN, outbound_message, record_call, spawn_operator_app_with, stored_recording,
};

/// The playwright-core release the test drives Chromium with.
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.1";

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// Fails under CI, skips loudly elsewhere. Returns `None` to skip.
fn missing(what: &str) -> Option<PathBuf> {
    let message = format!(
        "the operator page browser test needs {what} (CI must install it: see tests/it/operator_browser.rs)"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("\n*** SKIPPING the operator page browser test: {message} ***\n");
    None
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("MOKED_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        Some(path)
    } else {
        missing(&format!(
            "Chromium at {} (apt-get install -y chromium)",
            path.display()
        ))
    }
}

/// `target/ops-e2e` with playwright-core in its node_modules, installed with npm when missing.
fn playwright() -> Option<PathBuf> {
    let dir = target_dir().join("ops-e2e");
    let installed = |d: &Path| {
        d.join("node_modules/playwright-core/package.json")
            .is_file()
    };
    if installed(&dir) {
        return Some(dir);
    }
    let npm = Command::new("npm").arg("--version").output();
    if !npm.is_ok_and(|o| o.status.success()) {
        return missing("Node.js with npm (to install playwright-core)");
    }
    // Install into a private folder, then move it into place.
    let tmp = target_dir().join(format!("ops-e2e.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create the playwright folder");
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&tmp)
        .arg(PLAYWRIGHT_CORE)
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "npm install {PLAYWRIGHT_CORE} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    assert!(
        installed(&dir),
        "playwright-core is not in {}",
        dir.display()
    );
    Some(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_a_dead_job_retries_it_and_sees_it_done() {
    let Some(chromium) = chromium() else { return };
    let Some(playwright) = playwright() else {
        return;
    };
    let store = tempfile::tempdir().expect("store dir");
    let store_url = format!("file://{}", store.path().display());
    let app = spawn_operator_app_with(Backend::Sqlite, |_, intake| {
        intake.recordings_store = Some(store_url.clone());
    })
    .await;

    // A worker in this process; the "Twilio" it talks to fails until the test heals it.
    let failing = Arc::new(AtomicBool::new(true));
    let runner = Runner::new(
        app.queue.clone(),
        "browser-test-worker",
        RunnerConfig {
            concurrency: 2,
            fetch_wait: Duration::from_millis(100),
            ..RunnerConfig::default()
        },
        handler({
            let failing = failing.clone();
            move |_lease| {
                let failing = failing.load(Ordering::SeqCst);
                async move {
                    if failing {
                        Err(JobError::Permanent(
                            "Twilio 400 (21211): the fake Twilio is failing: invalid 'To' number"
                                .into(),
                        ))
                    } else {
                        Ok(())
                    }
                }
            }
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));

    // Two sends: one the operator can retry, one whose message the provider already accepted
    // (a retry could only end `done` having sent nothing, so the page must show the refusal).
    let send = |message_id: String| {
        let queue = app.queue.clone();
        async move {
            queue
                .enqueue(NewJob::new(&WhatsAppSend { message_id }))
                .await
                .expect("enqueue")
                .id()
                .to_owned()
        }
    };
    let job = send(outbound_message(&app.db, "+972525550002").await).await;
    let accepted = outbound_message(&app.db, "+972525550003").await;
    attach_provider_sid(
        &app.db,
        &accepted,
        "SM0123456789abcdef0123456789abcdef",
        "sent",
    )
    .await
    .expect("attach sid");
    let refused_job = send(accepted).await;
    let mut dead = false;
    for _ in 0..200 {
        let mut states = Vec::new();
        for id in [&job, &refused_job] {
            states.push(
                app.queue
                    .get(id)
                    .await
                    .expect("get")
                    .map(|j| j.summary.state),
            );
        }
        if states.iter().all(|s| *s == Some(JobState::Dead)) {
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead, "the worker did not bury the jobs");
    failing.store(false, Ordering::SeqCst);

    // A call with a Hebrew transcript and a stored recording, for the call and customer views.
    let call_sid = sid("CA");
    let rec_sid = sid("RE");
    let phone = "+972521234567";
    record_call(
        &app.db,
        &call_sid,
        phone,
        Some("completed"),
        Utc::now() - chrono::Duration::minutes(5),
    )
    .await;
    let key = format!("recordings/{rec_sid}.wav");
    std::fs::create_dir_all(store.path().join("recordings")).expect("mkdir");
    std::fs::write(store.path().join(&key), silent_wav()).expect("audio");
    stored_recording(
        &app.db,
        &call_sid,
        &rec_sid,
        &key,
        silent_wav().len() as i64,
        Some("שלום, רציתי לברר אם אפשר להזיז את התור שלי ליום חמישי בבוקר. תודה רבה!"),
    )
    .await;

    let shots = target_dir().join("ops-e2e");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ops_e2e.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("OPS_BASE", &app.base)
        .env("OPS_TOKEN", OP_TOKEN)
        .env("OPS_JOB", &job)
        .env("OPS_REFUSED_JOB", &refused_job)
        .env("OPS_CALL", &call_sid)
        .env("OPS_PHONE", phone)
        .env("OPS_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_DIR", &playwright)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes")
        .expect("run node");
    let _ = stop.send(());
    let _ = worker.await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("[ops-e2e] OK"),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = app
        .queue
        .get(&refused_job)
        .await
        .expect("get")
        .expect("job");
    assert_eq!(
        refused.summary.state,
        JobState::Dead,
        "a refused retry moves nothing"
    );
    let job = app.queue.get(&job).await.expect("get").expect("job");
    assert_eq!(job.summary.state, JobState::Done);
    assert_eq!(
        job.history.len(),
        1,
        "the failed attempt stays in the history"
    );
    assert_eq!(
        job.summary.attempts, 1,
        "an operator retry starts a fresh schedule"
    );
    for shot in [
        "ops-jobs-dead.png",
        "ops-job-done.png",
        "ops-job-refused.png",
        "ops-call.png",
        "ops-customer.png",
    ] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
}

/// One second of silence as a 8 kHz mono 16-bit WAV.
fn silent_wav() -> Vec<u8> {
    let samples: u32 = 8000;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}

//! The operator console in a real browser: headless Debian Chromium driven by playwright-core
//! (`tests/browser/ops_e2e.mjs`) walks every view in Hebrew, right to left, and checks what it
//! shows against data this test put there:
//!
//! * a worker runtime runs in this process ("browser-test-worker", its own session, flushing
//!   its outcome counters into the queue every heartbeat): it buries two WhatsApp sends and two
//!   health checks (a "failing fake Twilio / database") and keeps a call.started retrying; the
//!   dashboard's charts must show those counters, read back from the queue by the intake;
//! * two named operators (`OPERATOR_TOKENS`): dana retries a job (and sees it done, and sees a
//!   second retry refused with the reason), yossi discards jobs in bulk after a confirmation;
//!   the audit view names each;
//! * a call today with a Hebrew transcript, a stored recording (streamed with Range through
//!   the page's service worker) and WhatsApp messages before and after it; search by each id
//!   type and each spelling of the caller's number;
//! * the clock's published schedule on the workers view.
//!
//! It leaves screenshots in `target/ops-e2e/`, and with `MOKED_SCREENSHOTS=DIR` (what
//! `scripts/screenshots` sets) the README's in `DIR`.
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
use moked_jobs::queue::outcomes::Outcome;
use moked_jobs::queue::{JobState, NewJob};
use moked_jobs::retry::JobError;
use moked_jobs::runner::{Runner, RunnerConfig, handler};
use moked_jobs::store::clock_tasks;
use moked_jobs::store::customers::Number;
use moked_jobs::store::whatsapp::messages::{Inbound, record_inbound};
use moked_jobs::store::whatsapp::statuses::attach_provider_sid;

use crate::helpers::{Backend, sid};
use crate::operator_support::{
    call_started_job, clock_health_job, operator_tokens, outbound_message, record_call,
    spawn_operator_app_with, stored_recording,
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

/// The operators of the browser test (`OPERATOR_TOKENS`).
const DANA: &str = "dana-t0ken-for-browser-tests";
const YOSSI: &str = "yossi-t0ken-for-browser-tests";
/// The worker runtime's name.
const WORKER: &str = "browser-test-worker";
/// The error of the jobs yossi discards (and of no other job).
const DB_DOWN: &str = "health probe failed: the fake database is down";

/// Polls `check` every 50 ms until it holds, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::helpers::until(Duration::from_secs(10), what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_console_works_in_hebrew_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    let Some(playwright) = playwright() else {
        return;
    };
    let store = tempfile::tempdir().expect("store dir");
    let store_url = format!("file://{}", store.path().display());
    let app = spawn_operator_app_with(Backend::Sqlite, |core, intake| {
        intake.recordings_store = Some(store_url.clone());
        core.operator_tokens = operator_tokens(&[("dana", DANA), ("yossi", YOSSI)]);
    })
    .await;

    // A worker in this process; the "Twilio" and "database" it talks to fail until the test
    // heals them, and a call.started is always asked to come back in ten minutes.
    let failing = Arc::new(AtomicBool::new(true));
    let runner = Runner::new(
        app.queue.clone(),
        WORKER,
        RunnerConfig {
            concurrency: 2,
            fetch_wait: Duration::from_millis(100),
            heartbeat: Duration::from_millis(200),
            ..RunnerConfig::default()
        },
        handler({
            let failing = failing.clone();
            move |claim| {
                let failing = failing.load(Ordering::SeqCst);
                async move {
                    match claim.lease.kind.as_str() {
                        "call.started" => Err(JobError::RetryAfter {
                            after: Duration::from_secs(600),
                            reason: "the fake CRM is busy".into(),
                        }),
                        "clock.health" if failing => Err(JobError::Permanent(DB_DOWN.into())),
                        _ if failing => Err(JobError::Permanent(
                            "Twilio 400 (21211): the fake Twilio is failing: invalid 'To' number"
                                .into(),
                        )),
                        _ => Ok(()),
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
    let enqueue = |job: NewJob| {
        let queue = app.queue.clone();
        async move { queue.enqueue(job).await.expect("enqueue").id().to_owned() }
    };
    let send = |message_id: String| NewJob::new(&WhatsAppSend { message_id });
    let job = enqueue(send(outbound_message(&app.db, "+972525550002").await)).await;
    let accepted = outbound_message(&app.db, "+972525550003").await;
    attach_provider_sid(
        &app.db,
        &accepted,
        "SM0123456789abcdef0123456789abcdef",
        "sent",
    )
    .await
    .expect("attach sid");
    let refused_job = enqueue(send(accepted)).await;
    let health = [
        enqueue(clock_health_job()).await,
        enqueue(clock_health_job()).await,
    ];
    let retrying = enqueue(call_started_job("+972525550004")).await;
    let state = |id: String| {
        let queue = app.queue.clone();
        async move { queue.get(&id).await.expect("get").map(|j| j.summary.state) }
    };
    eventually("the worker buries four jobs and retries one", || {
        let ids: Vec<String> = [&job, &refused_job, &health[0], &health[1]]
            .into_iter()
            .cloned()
            .collect();
        let retrying = retrying.clone();
        async move {
            for id in ids {
                if state(id).await != Some(JobState::Dead) {
                    return false;
                }
            }
            state(retrying).await == Some(JobState::Retrying)
        }
    })
    .await;
    // The dashboard reads the counters the worker flushes into the queue (on its heartbeat).
    eventually("the worker's counters reach the queue", || {
        let queue = app.queue.clone();
        async move {
            let totals = queue.outcome_totals().await.expect("totals");
            let n = |kind: &str, outcome: Outcome| {
                totals
                    .get(kind)
                    .and_then(|c| c.get(&outcome))
                    .copied()
                    .unwrap_or(0)
            };
            n("whatsapp.send", Outcome::Dead) == 2
                && n("clock.health", Outcome::Dead) == 2
                && n("call.started", Outcome::Retry) >= 1
        }
    })
    .await;
    failing.store(false, Ordering::SeqCst);

    // The clock's schedule, as `moked-worker clock` publishes it; its last tick is a buried job.
    let next = Utc::now() + chrono::Duration::seconds(40);
    clock_tasks::publish_schedule(
        &app.db,
        &[clock_tasks::Schedule {
            task: "health".into(),
            kind: "clock.health".into(),
            cron: "0 * * * * *".into(),
            tz: "Asia/Jerusalem".into(),
            next_tick: Some(next),
        }],
    )
    .await
    .expect("publish the schedule");
    clock_tasks::record_tick(
        &app.db,
        "health",
        Utc::now() - chrono::Duration::seconds(20),
        &health[0],
        Some(next),
    )
    .await
    .expect("record a tick");

    // A call today with a Hebrew transcript and a stored recording, a WhatsApp message from the
    // caller before it and one to them after it.
    let call_sid = sid("CA");
    let rec_sid = sid("RE");
    let message_sid = sid("SM");
    let phone = "+972521234567";
    let inbound = record_inbound(
        &app.db,
        &Inbound {
            provider: "twilio".into(),
            provider_sid: message_sid.clone(),
            from: Number::parse(phone),
            to: Some(Number::parse("+97233334444")),
            body: "שלום, אפשר לדבר עם מישהו על התור?".into(),
            media: Vec::new(),
            profile_name: Some("דנה".into()),
            at: Utc::now() - chrono::Duration::minutes(3),
        },
    )
    .await
    .expect("record inbound")
    .message
    .id;
    record_call(
        &app.db,
        &call_sid,
        phone,
        Some("completed"),
        Utc::now() - chrono::Duration::minutes(2),
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
    outbound_message(&app.db, phone).await;

    let shots = target_dir().join("ops-e2e");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ops_e2e.mjs");
    let mut node = tokio::process::Command::new("node");
    node.arg(&script)
        .env("OPS_BASE", &app.base)
        .env("OPS_TOKEN_DANA", DANA)
        .env("OPS_TOKEN_YOSSI", YOSSI)
        .env("OPS_JOB", &job)
        .env("OPS_REFUSED_JOB", &refused_job)
        .env("OPS_RETRYING_JOB", &retrying)
        .env("OPS_DISCARD_KIND", "clock.health")
        .env("OPS_DISCARD_ERROR", DB_DOWN)
        .env("OPS_CALL", &call_sid)
        .env("OPS_RECORDING", &rec_sid)
        .env("OPS_PHONE", phone)
        .env("OPS_MESSAGE_SID", &message_sid)
        .env("OPS_MESSAGE_ID", &inbound)
        .env("OPS_WORKER", WORKER)
        .env("OPS_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_DIR", &playwright)
        .kill_on_drop(true);
    if let Some(dir) = std::env::var_os("MOKED_SCREENSHOTS") {
        node.env("OPS_DOCS_SHOTS", dir);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), node.output())
        .await
        .expect("the browser run finishes within 4 minutes")
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
    for id in &health {
        assert_eq!(state(id.clone()).await, Some(JobState::Discarded));
    }
    for shot in [
        "ops-dashboard.png",
        "ops-jobs-dead.png",
        "ops-job-done.png",
        "ops-job-refused.png",
        "ops-discard-confirm.png",
        "ops-audit.png",
        "ops-workers.png",
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

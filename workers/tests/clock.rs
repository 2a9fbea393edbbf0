//! The clock and its tasks, end to end on a real queue (a SQLite file per test).
//!
//! * **Exactly one job per tick.** Two clocks share one queue and walk a simulated day: either
//!   stepped second by second ([`Scheduler::step`]), or running their real loop ([`run_with`])
//!   under paused tokio time with a virtual wall clock (start + elapsed tokio time). Plain days,
//!   and the 2026 spring-forward and fall-back days of Asia/Jerusalem.
//! * **Reconcile** through the real runner ([`Runner::drain`], retries of a few milliseconds)
//!   against a **scripted fake Twilio** (axum on 127.0.0.1:0) for exact sequences — a call stuck
//!   in-progress, messages stuck at sent, a recording that never arrived, a 429 mid-run — and
//!   against **Prism** serving Twilio's official OpenAPI spec for the REST shapes
//!   (`MOKED_PRISM_URL`, set by scripts/test; locally a loud skip without it, in CI a failure).
//! * **Health** and **cleanup** through the runner as well.
//!
//! No test sleeps to wait for work.

mod world;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use moked_jobs::kinds::{
    ClockCleanup, ClockHealth, ClockReconcile, ClockTick, JobKind, RecordingProcess,
};
use moked_jobs::queue::{
    Enqueued, JobDetail, JobPage, JobState, ListQuery, NewJob, QueueResult, SharedQueue,
};
use moked_jobs::runner::RunSummary;
use moked_jobs::store::calls::{self, CallStatusChange};
use moked_jobs::store::health::{CLOCK_HEALTH, HealthRecord, Verdict, latest_health};
use moked_jobs::store::recordings::get_recording;
use moked_jobs::store::whatsapp::messages::{self, WhatsAppMessage};
use moked_jobs::store::whatsapp::statuses;
use moked_jobs::store::{recordings, to_ms};
use moked_testkit::audio::wav;
use moked_testkit::fake_http::Served;
use moked_testkit::fake_twilio::sid;
use moked_testkit::prism::prism_url;
use moked_testkit::rows::twilio_text;
use moked_testkit::{Backend, Intercept, Intercepted};
use moked_workers::clock::{self, ClockConfig, Scheduler, Task};
use moked_workers::handlers::Ctx;
use serde_json::{Value, json};
use world::{AC, BUSINESS_NUMBER, CALLER, World};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

// ---------------------------------------------------------------------------------------------
// The world of one test.

impl World {
    /// A SQLite world whose Twilio REST base is `api_base`; retries after 10 ms, 4 attempts;
    /// recordings in a `file://` folder of the test; no pacing between Twilio requests.
    async fn new(api_base: &str) -> World {
        World::clock(Backend::Sqlite, api_base).await
    }

    /// The same on a fresh Postgres database (dropped by [`World::close`]).
    async fn postgres(api_base: &str) -> World {
        World::clock(Backend::Postgres, api_base).await
    }

    async fn clock(backend: Backend, api_base: &str) -> World {
        let mut w = World::twilio(backend, api_base, "10ms,10ms,10ms", "clock").await;
        w.worker.tasks.reconcile_pace = Duration::ZERO;
        w
    }

    fn ctx(&self) -> Ctx {
        self.context()
    }

    /// Runs every job to done or dead with the real runner.
    async fn drain(&self) -> RunSummary {
        let limit = Duration::from_secs(120);
        self.drain_with("clock-test", self.runner_config(), self.ctx(), limit)
            .await
    }

    /// Enqueues one reconcile job, as the clock would, and returns its id.
    async fn reconcile_job(&self) -> String {
        let tick = ClockTick {
            tick: Utc::now().to_rfc3339(),
        };
        self.queue
            .enqueue(NewJob::new(&ClockReconcile(tick)))
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Jobs of `kind` in the queue, any state.
    async fn count(&self, kind: JobKind) -> u64 {
        let stats = self.queue.stats().await.expect("stats");
        stats
            .by_kind
            .get(kind.as_str())
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// A call the voice webhook saw at `at` (linked to a business), then `status` at `at`.
    async fn call(&self, call_sid: &str, status: &str, at: DateTime<Utc>) {
        self.call_started(call_sid, at).await;
        if status != "ringing" {
            calls::apply_call_status(
                &self.db,
                &CallStatusChange {
                    call_sid: call_sid.to_owned(),
                    status: status.to_owned(),
                    sequence: Some(1),
                    duration_s: None,
                    from: None,
                    to: None,
                    at,
                },
            )
            .await
            .expect("status applied");
        }
    }

    /// An outbound Twilio message at `status` with `message_sid`, last changed at `at`.
    async fn message(&self, message_sid: &str, status: &str, at: DateTime<Utc>) -> String {
        let new = twilio_text(CALLER, Some("whatsapp:+97233334444"), "שלום");
        let stored = messages::create_outbound(&self.db, &new)
            .await
            .expect("outbound");
        let id = stored.message.id;
        statuses::attach_provider_sid(&self.db, &id, message_sid, status)
            .await
            .expect("attach");
        sqlx::query("UPDATE whatsapp_message SET updated_at = $1 WHERE id = $2")
            .bind(to_ms(at))
            .bind(id.as_str())
            .execute(self.db.pool())
            .await
            .expect("age the message");
        id
    }

    /// The WhatsApp message `id`, which exists.
    async fn message_row(&self, id: &str) -> WhatsAppMessage {
        messages::get_message(&self.db, id)
            .await
            .expect("read")
            .expect("message")
    }

    /// The clock's latest health record, which exists.
    async fn health(&self) -> HealthRecord {
        latest_health(&self.db, CLOCK_HEALTH)
            .await
            .expect("read")
            .expect("stored")
    }

    /// Enqueues one reconcile job, runs every job, and returns the reconcile job.
    async fn reconcile(&self) -> JobDetail {
        let job = self.reconcile_job().await;
        self.drain().await;
        self.job(&job).await
    }

    async fn call_row(&self, call_sid: &str) -> calls::Call {
        calls::get_call_row(&self.db, call_sid)
            .await
            .expect("read")
            .expect("call")
    }

    /// The status events of a call whose detail names `source`.
    async fn events_from(&self, call_sid: &str, source: &str) -> Vec<String> {
        self.timeline(call_sid)
            .await
            .events
            .into_iter()
            .filter(|e| {
                e.detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .is_some_and(|d| d["source"] == source)
            })
            .filter_map(|e| e.status)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Exactly one job per tick: two clocks, one queue.

/// The clock jobs of a queue: per task name, every tick payload, sorted.
type Jobs = BTreeMap<&'static str, Vec<String>>;

/// The clock jobs in the queue: per task, how many, and every tick payload.
async fn clock_jobs(queue: &SharedQueue) -> Jobs {
    let mut out = BTreeMap::new();
    for task in Task::ALL {
        let mut ticks = Vec::new();
        let mut cursor = None;
        loop {
            let page = queue
                .list(&ListQuery {
                    state: None,
                    kind: Some(task.kind()),
                    cursor,
                    limit: 500,
                })
                .await
                .expect("list");
            for job in &page.jobs {
                let detail = queue.get(&job.id).await.expect("get").expect("job");
                let payload: Value = serde_json::from_str(&detail.payload).expect("payload");
                ticks.push(
                    payload["data"]["tick"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        ticks.sort();
        out.insert(task.name(), ticks);
    }
    out
}

/// Two schedulers start at `start` and step through `[start, end]` one virtual second at a time.
/// Returns (jobs created by either, duplicates returned).
async fn two_clocks_step(
    config: ClockConfig,
    queue: &SharedQueue,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (u64, u64) {
    let (mut created, mut duplicates) = (0, 0);
    let mut tally = |fired: Vec<clock::Fired>| {
        for f in fired {
            match f.result.expect("enqueue") {
                Enqueued::Created(_) => created += 1,
                Enqueued::Duplicate(_) => duplicates += 1,
            }
        }
    };
    let (mut a, fired) = Scheduler::start(config.clone(), queue.clone(), start).await;
    tally(fired);
    let (mut b, fired) = Scheduler::start(config, queue.clone(), start).await;
    tally(fired);
    let mut now = start;
    while now < end {
        now += chrono::Duration::seconds(1);
        tally(a.step(now).await);
        tally(b.step(now).await);
    }
    (created, duplicates)
}

/// Two clocks (reconcile every 5 minutes, health every minute, cleanup at `cleanup`) on a fresh
/// queue step from `start` to `end` ([`two_clocks_step`]): the clock jobs they made, and
/// (created, duplicates).
async fn two_clocks_through(cleanup: &str, start: &str, end: &str) -> (Jobs, (u64, u64)) {
    let w = World::new("http://127.0.0.1:9").await;
    let config = ClockConfig::for_tests("0 */5 * * * *", "0 * * * * *", cleanup);
    let made = two_clocks_step(config, &w.queue, utc(start), utc(end)).await;
    (clock_jobs(&w.queue).await, made)
}

/// Whether `task` fired for the tick at `at` (RFC 3339, UTC).
fn fired(jobs: &Jobs, task: &str, at: &str) -> bool {
    jobs[task].contains(&at.to_owned())
}

fn counts(jobs: &Jobs) -> (usize, usize, usize) {
    (
        jobs["reconcile"].len(),
        jobs["health"].len(),
        jobs["cleanup"].len(),
    )
}

fn distinct(jobs: &Jobs) -> bool {
    jobs.values()
        .all(|ticks| ticks.iter().collect::<HashSet<_>>().len() == ticks.len())
}

#[tokio::test]
async fn two_clocks_stepping_through_a_day_make_exactly_one_job_per_tick() {
    // Local midnight of an ordinary June day (IDT, UTC+3).
    let (jobs, (created, duplicates)) = two_clocks_through(
        "0 30 3 * * *",
        "2026-06-01T00:00:00+03:00",
        "2026-06-02T00:00:00+03:00",
    )
    .await;
    // Catch-up (one per task: 00:00, 00:00, yesterday's 03:30) + the day's ticks in (start, end].
    assert_eq!(counts(&jobs), (1 + 288, 1 + 1440, 1 + 1));
    assert_eq!(created, 1732);
    assert_eq!(
        duplicates, created,
        "the second clock's every tick was a duplicate"
    );
    assert!(distinct(&jobs), "no tick twice");
}

#[tokio::test]
async fn two_clocks_on_the_spring_forward_day_fire_the_gap_tick_once() {
    // Israel 2026: 02:00 IST → 03:00 IDT on Friday 27 March (00:00 UTC). Cleanup at 02:30, a
    // wall time that does not exist that day.
    let start = "2026-03-27T00:00:00+02:00";
    let (jobs, made) = two_clocks_through("0 30 2 * * *", start, "2026-03-28T00:00:00+03:00").await;
    // A 23-hour day: 1380 minutes, 276 five-minute marks; the gap's 02:xx marks and the 03:00
    // mark are due at the same instant and fire once (as 03:00).
    assert_eq!(counts(&jobs), (1 + 276, 1 + 1380, 1 + 1));
    assert_eq!(made, (1660, 1660));
    let gap_end = "2026-03-27T00:00:00+00:00";
    assert!(
        fired(&jobs, "cleanup", gap_end),
        "02:30 fired once, at the end of the gap: {:?}",
        jobs["cleanup"]
    );
    assert!(distinct(&jobs));
}

#[tokio::test]
async fn two_clocks_on_the_fall_back_day_fire_the_repeated_hour_once() {
    // Israel 2026: 02:00 IDT → 01:00 IST on Sunday 25 October (23:00 UTC on the 24th). Cleanup
    // at 01:30, a wall time that happens twice that day.
    let end = "2026-10-26T00:00:00+02:00";
    let (jobs, made) = two_clocks_through("0 30 1 * * *", "2026-10-25T00:00:00+03:00", end).await;
    assert!(distinct(&jobs));
    assert!(
        fired(&jobs, "cleanup", "2026-10-24T22:30:00+00:00"),
        "01:30 fired once, at its first occurrence: {:?}",
        jobs["cleanup"]
    );
    // A 25-hour day, but each wall-clock minute fires once: 1440 minutes, 288 five-minute marks.
    assert_eq!(made, (1732, 1732));
    assert_eq!(counts(&jobs), (1 + 288, 1 + 1440, 1 + 1));
}

/// A queue whose enqueue runs on a blocking thread: tokio does not auto-advance paused time
/// while a `spawn_blocking` task runs, so the virtual clock stands still while the real SQLite
/// write happens (otherwise the idle runtime would jump to the next timer mid-write).
struct HoldTime(SharedQueue);

#[async_trait]
impl Intercept for HoldTime {
    fn inner(&self) -> &SharedQueue {
        &self.0
    }
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        let (queue, rt) = (self.0.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || rt.block_on(queue.enqueue(job)))
            .await
            .expect("enqueue thread")
    }
}

/// Runs two real clock loops ([`clock::run_with`]) of `config` on a fresh queue from `start`
/// (RFC 3339) for `span` of paused tokio time, the wall clock being `start` + elapsed tokio
/// time; returns the clock jobs they made.
async fn two_clock_loops(config: ClockConfig, start: &str, span: Duration) -> Jobs {
    let w = World::new("http://127.0.0.1:9").await;
    let start = utc(start);
    tokio::time::pause();
    let origin = tokio::time::Instant::now();
    let wall = move || {
        start + chrono::Duration::from_std(origin.elapsed()).unwrap_or(chrono::Duration::MAX)
    };
    let held: SharedQueue = Arc::new(Intercepted(HoldTime(w.queue.clone())));
    // Stop a second after the last tick of the span.
    let stop = move || tokio::time::sleep_until(origin + span + Duration::from_secs(1));
    let a = tokio::spawn(clock::run_with(config.clone(), held.clone(), wall, stop()));
    let b = tokio::spawn(clock::run_with(config, held, wall, stop()));
    let (a, b) = tokio::join!(a, b);
    a.expect("clock a");
    b.expect("clock b");
    tokio::time::resume();
    clock_jobs(&w.queue).await
}

#[tokio::test]
async fn two_clock_loops_in_paused_time_make_exactly_one_job_per_tick_for_a_day() {
    let config = ClockConfig::for_tests("0 */5 * * * *", "0 * * * * *", "0 30 3 * * *");
    let started = std::time::Instant::now();
    let day = Duration::from_secs(86_400);
    let jobs = two_clock_loops(config, "2026-06-01T00:00:00+03:00", day).await;
    eprintln!("a simulated day of two clocks took {:?}", started.elapsed());
    assert_eq!(counts(&jobs), (1 + 288, 1 + 1440, 1 + 1));
    assert!(distinct(&jobs));
}

#[tokio::test]
async fn two_clock_loops_in_paused_time_fire_the_dst_gap_and_overlap_ticks_once() {
    // 02:30 falls in the spring-forward gap (27 March), 01:30 in the fall-back overlap
    // (25 October); hourly reconcile at :15 sees both transitions.
    let hourly = |cleanup| ClockConfig::for_tests("0 15 * * * *", "0 0 0 1 1 *", cleanup);
    let hours = |n: u64| Duration::from_secs(n * 3600);
    let spring = two_clock_loops(
        hourly("0 30 2 * * *"),
        "2026-03-27T00:00:00+02:00",
        hours(23),
    );
    let jobs = spring.await;
    // Catch-up (23:15 the day before) + the day's 24 marks: 02:15 does not exist and fires at
    // 03:00, the end of the gap — once.
    assert_eq!(jobs["reconcile"].len(), 1 + 24, "{:?}", jobs["reconcile"]);
    let gap_end = "2026-03-27T00:00:00+00:00";
    assert!(fired(&jobs, "reconcile", gap_end));
    assert!(fired(&jobs, "cleanup", gap_end));
    assert_eq!(jobs["cleanup"].len(), 1 + 1);
    assert!(distinct(&jobs));

    let fall = two_clock_loops(
        hourly("0 30 1 * * *"),
        "2026-10-25T00:00:00+03:00",
        hours(25),
    );
    let jobs = fall.await;
    assert!(distinct(&jobs));
    assert_eq!(jobs["cleanup"].len(), 1 + 1);
    assert!(fired(&jobs, "cleanup", "2026-10-24T22:30:00+00:00"));
    assert_eq!(jobs["reconcile"].len(), 1 + 24, "each wall-clock hour once");
}

// ---------------------------------------------------------------------------------------------
// The scripted fake Twilio.

#[derive(Clone)]
enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// An error status with Twilio's error body, and `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// 200 with these bytes as `audio/x-wav`.
    Wav(Vec<u8>),
}

#[derive(Clone, Default)]
struct FakeState {
    /// Path suffix → replies in order (the last one repeats).
    script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
    /// Every request: (method, path).
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

/// The fake on a free port (`served.url`); stops when dropped.
struct FakeTwilio {
    served: Served,
    state: FakeState,
}

impl FakeTwilio {
    async fn start() -> FakeTwilio {
        let state = FakeState::default();
        let app = Router::new().fallback(fake_twilio);
        let served = Served::start(app.with_state(state.clone()));
        FakeTwilio { served, state }
    }

    /// Answers requests whose path ends with `suffix` (under our account) with `replies`.
    fn on(&self, suffix: &str, replies: Vec<Reply>) {
        self.state
            .script
            .lock()
            .expect("script")
            .insert(format!("/2010-04-01/Accounts/{AC}{suffix}"), replies.into());
    }

    /// How many requests reached a path ending with `suffix`.
    fn hits(&self, suffix: &str) -> usize {
        self.state
            .seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(_, p)| p.ends_with(suffix))
            .count()
    }

    fn requests(&self) -> usize {
        self.state.seen.lock().expect("seen").len()
    }

    /// Answers the call `call_sid`'s fetch with `replies`.
    fn on_call(&self, call_sid: &str, replies: Vec<Reply>) {
        self.on(&format!("/Calls/{call_sid}.json"), replies);
    }

    /// Answers the call `call_sid`'s recordings list with `recordings` (sid, status).
    fn on_recordings(&self, call_sid: &str, recordings: &[(&str, &str)]) {
        let list = recordings_json(call_sid, recordings);
        self.on(&format!("/Calls/{call_sid}/Recordings.json"), vec![list]);
    }

    /// Answers the message `message_sid`'s fetch with it at `status` (and `error_code`).
    fn on_message(&self, message_sid: &str, status: &str, error_code: Option<i64>) {
        let reply = message_json(message_sid, status, error_code);
        self.on(&format!("/Messages/{message_sid}.json"), vec![reply]);
    }

    /// Serves the recording `re` as a one-second WAV.
    fn on_media(&self, re: &str) {
        self.on(&format!("/Recordings/{re}.wav"), vec![Reply::Wav(wav(1))]);
    }

    /// Answers the account fetch (the health check) as an active account.
    fn on_account(&self) {
        let account = json!({"sid": AC, "status": "active"});
        self.on(".json", vec![Reply::Json(account)]);
    }

    /// How many requests asked for the call `call_sid`.
    fn call_hits(&self, call_sid: &str) -> usize {
        self.hits(&format!("/Calls/{call_sid}.json"))
    }

    /// How many requests listed the recordings of the call `call_sid`.
    fn recordings_hits(&self, call_sid: &str) -> usize {
        self.hits(&format!("/Calls/{call_sid}/Recordings.json"))
    }
}

/// A scripted fake Twilio and a SQLite world using it.
async fn fake_world() -> (FakeTwilio, World) {
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.served.url).await;
    (twilio, w)
}

async fn fake_twilio(State(state): State<FakeState>, method: Method, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    state
        .seen
        .lock()
        .expect("seen")
        .push((method.to_string(), path.clone()));
    let reply = {
        let mut script = state.script.lock().expect("script");
        script.get_mut(&path).and_then(|q| {
            if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            }
        })
    };
    let error = |status: u16, retry: Option<u64>| {
        let mut r = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(s) = retry {
            r = r.header("retry-after", s.to_string());
        }
        let code = if status == 429 { 20429 } else { 20404 };
        r.body(Body::from(
            json!({"code": code, "message": "scripted", "status": status}).to_string(),
        ))
        .expect("response")
    };
    match reply {
        None => error(404, None),
        Some(Reply::Status(status, retry)) => error(status, retry),
        Some(Reply::Json(v)) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .expect("response"),
        Some(Reply::Wav(bytes)) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "audio/x-wav")
            .body(Body::from(bytes))
            .expect("response"),
    }
}

fn call_json(call_sid: &str, status: &str, duration: &str) -> Reply {
    Reply::Json(json!({
        "sid": call_sid, "account_sid": AC, "status": status, "duration": duration,
        "from": CALLER, "to": BUSINESS_NUMBER,
    }))
}

fn message_json(message_sid: &str, status: &str, error_code: Option<i64>) -> Reply {
    Reply::Json(json!({
        "sid": message_sid, "account_sid": AC, "status": status,
        "error_code": error_code,
        "error_message": error_code.map(|_| "Message Delivery - Unknown error"),
        "num_media": "0", "num_segments": "1",
    }))
}

fn recordings_json(call_sid: &str, recordings: &[(&str, &str)]) -> Reply {
    let list: Vec<Value> = recordings
        .iter()
        .map(|(sid, status)| {
            json!({"sid": sid, "call_sid": call_sid, "status": status, "duration": "1",
                   "account_sid": AC, "channels": 1})
        })
        .collect();
    Reply::Json(json!({"recordings": list, "next_page_uri": null, "page": 0, "page_size": 50}))
}

fn minutes_ago(m: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(m)
}

// ---------------------------------------------------------------------------------------------
// Reconcile against the scripted fake.

#[tokio::test]
async fn a_call_stuck_in_progress_becomes_completed_from_twilio() {
    let (twilio, w) = fake_world().await;
    let (stuck, fresh) = (sid("CA"), sid("CA"));
    w.call(&stuck, "in-progress", minutes_ago(20)).await;
    w.call(&fresh, "in-progress", minutes_ago(2)).await;
    twilio.on_call(&stuck, vec![call_json(&stuck, "completed", "1234")]);

    assert_eq!(w.reconcile().await.summary.state, JobState::Done);
    let call = w.call_row(&stuck).await;
    assert_eq!(
        (call.status.as_str(), call.duration_s),
        ("completed", Some(1234))
    );
    assert!(call.ended_at.is_some());
    assert_eq!(w.events_from(&stuck, "reconcile").await, ["completed"]);
    assert_eq!(twilio.call_hits(&stuck), 1);
    assert_eq!(
        w.call_row(&fresh).await.status,
        "in-progress",
        "a call changed 2 minutes ago is not stale"
    );
    assert_eq!(twilio.requests(), 1, "nothing else was asked");

    // Another run: the call is terminal now; nothing to ask.
    w.reconcile().await;
    assert_eq!(twilio.requests(), 1);
}

#[tokio::test]
async fn a_call_twilio_still_reports_in_progress_is_held_back_not_asked_every_run() {
    let (twilio, w) = fake_world().await;
    let long = sid("CA");
    w.call(&long, "in-progress", minutes_ago(20)).await;
    twilio.on_call(&long, vec![call_json(&long, "in-progress", "0")]);
    w.reconcile().await;
    w.reconcile().await;
    assert_eq!(twilio.call_hits(&long), 1);
    let check = moked_jobs::store::reconcile::get_check(
        &w.db,
        moked_jobs::store::reconcile::CheckKind::Call,
        &long,
    )
    .await
    .expect("read")
    .expect("checked");
    assert_eq!(
        (check.checks, check.outcome.as_deref()),
        (1, Some("in-progress"))
    );
    assert_eq!(
        (check.next_at - check.checked_at).num_minutes(),
        10,
        "held back for RECONCILE_CALLS_AFTER"
    );
}

#[tokio::test]
async fn messages_stuck_at_sent_become_delivered_or_failed_with_the_error_code() {
    let (twilio, w) = fake_world().await;
    let (delivered, failed, recent) = (sid("SM"), sid("SM"), sid("SM"));
    let delivered_id = w.message(&delivered, "sent", minutes_ago(120)).await;
    let failed_id = w.message(&failed, "queued", minutes_ago(90)).await;
    let recent_id = w.message(&recent, "sent", minutes_ago(10)).await;
    twilio.on_message(&delivered, "delivered", None);
    twilio.on_message(&failed, "undelivered", Some(63016));

    w.reconcile().await;
    let m = w.message_row(&delivered_id).await;
    assert_eq!(m.status, "delivered");
    assert!(m.delivered_at.is_some() && m.sent_at.is_some());
    let m = w.message_row(&failed_id).await;
    assert_eq!(
        (m.status.as_str(), m.error_code),
        ("undelivered", Some(63016))
    );
    let m = w.message_row(&recent_id).await;
    assert_eq!(m.status, "sent", "not stale for an hour yet");
    assert_eq!(twilio.requests(), 2);
    assert_eq!(
        statuses::status_events(&w.db, &delivered)
            .await
            .expect("events")
            .iter()
            .map(|e| e.status.as_str())
            .collect::<Vec<_>>(),
        ["delivered"],
        "the status Twilio reported is kept like a callback"
    );
}

#[tokio::test]
async fn a_missing_recording_is_enqueued_under_the_intakes_key_and_fetched() {
    let (twilio, w) = fake_world().await;
    let (ca, re, unfinished) = (sid("CA"), sid("RE"), sid("RE"));
    w.call(&ca, "completed", minutes_ago(30)).await;
    twilio.on_recordings(&ca, &[(&re, "completed"), (&unfinished, "processing")]);
    twilio.on_media(&re);

    w.reconcile().await;
    assert_eq!(twilio.recordings_hits(&ca), 1);
    assert_eq!(
        w.count(JobKind::RecordingProcess).await,
        1,
        "one job, for the completed recording"
    );
    let rec = w.recording(&re).await;
    assert_eq!(rec.status, "stored", "the voice pipeline fetched it");
    assert_eq!(rec.call_sid, ca);
    assert_eq!(twilio.hits(&format!("/Recordings/{re}.wav")), 1);

    // A late webhook (the intake's key) and another run create nothing new.
    let late = NewJob::new(&RecordingProcess {
        recording_sid: re.clone(),
        call_sid: ca.clone(),
        recording_url: format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{re}"),
        duration_s: Some(1),
        received_at: Utc::now(),
    })
    .dedupe(format!("recording:{re}"), w.core.dedupe_ttl);
    assert!(!w.queue.enqueue(late).await.expect("enqueue").is_created());
    w.reconcile().await;
    assert_eq!(w.count(JobKind::RecordingProcess).await, 1);
    assert_eq!(
        twilio.recordings_hits(&ca),
        1,
        "the call has its recording now"
    );
}

#[tokio::test]
async fn twilio_429_mid_run_stops_it_and_the_retry_resumes_without_duplicates() {
    let (twilio, w) = fake_world().await;
    let (a, b, c, d) = (sid("CA"), sid("CA"), sid("CA"), sid("CA"));
    let re = sid("RE");
    // Oldest first: a, b, c are stuck calls; d completed long ago without its recording.
    w.call(&a, "in-progress", minutes_ago(40)).await;
    w.call(&b, "ringing", minutes_ago(35)).await;
    w.call(&c, "in-progress", minutes_ago(30)).await;
    w.call(&d, "completed", minutes_ago(60)).await;
    twilio.on_call(&a, vec![call_json(&a, "completed", "10")]);
    let busy = Reply::Status(429, Some(0));
    twilio.on_call(&b, vec![busy, call_json(&b, "no-answer", "0")]);
    twilio.on_call(&c, vec![call_json(&c, "completed", "30")]);
    twilio.on_recordings(&d, &[(&re, "completed")]);
    twilio.on_media(&re);

    let detail = w.reconcile().await;
    assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
    assert_eq!(
        detail.summary.attempts, 2,
        "stopped once by the 429, then resumed"
    );
    assert!(
        detail.history[0].error.contains("429"),
        "{:?}",
        detail.history
    );
    // Each call asked once, except b (429, then its answer); nothing applied twice.
    assert_eq!(twilio.call_hits(&a), 1, "a was reconciled before the 429");
    assert_eq!(twilio.call_hits(&b), 2);
    assert_eq!(twilio.call_hits(&c), 1, "c waited for the retry");
    assert_eq!(twilio.recordings_hits(&d), 1);
    assert_eq!(w.events_from(&a, "reconcile").await, ["completed"]);
    assert_eq!(w.events_from(&b, "reconcile").await, ["no-answer"]);
    assert_eq!(w.events_from(&c, "reconcile").await, ["completed"]);
    assert_eq!(w.call_row(&b).await.status, "no-answer");
    assert_eq!(w.count(JobKind::RecordingProcess).await, 1);
    assert_eq!(w.recording(&re).await.status, "stored");
}

#[tokio::test]
async fn a_twilio_404_skips_only_that_item_and_holds_it_back() {
    let (twilio, w) = fake_world().await;
    let (gone, ok) = (sid("CA"), sid("CA"));
    w.call(&gone, "ringing", minutes_ago(30)).await;
    w.call(&ok, "ringing", minutes_ago(20)).await;
    // No script for `gone`: the fake answers 404 (code 20404).
    twilio.on_call(&ok, vec![call_json(&ok, "busy", "0")]);
    assert_eq!(w.reconcile().await.summary.state, JobState::Done);
    assert_eq!(w.call_row(&ok).await.status, "busy");
    assert_eq!(w.call_row(&gone).await.status, "ringing");
    w.reconcile().await;
    assert_eq!(twilio.call_hits(&gone), 1, "held back after its 404");
}

#[tokio::test]
async fn without_twilio_credentials_reconcile_does_nothing_and_succeeds() {
    let (twilio, mut w) = fake_world().await;
    w.core.twilio.auth_token = None;
    w.call(&sid("CA"), "ringing", minutes_ago(30)).await;
    assert_eq!(w.reconcile().await.summary.state, JobState::Done);
    assert_eq!(twilio.requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Reconcile and health against Prism (Twilio's official OpenAPI spec).

#[tokio::test]
async fn prism_accepts_every_reconcile_request_and_its_answers_decode() {
    let Some(prism) = prism_url() else { return };
    let w = World::new(&prism).await;
    // Prism answers every GET with the spec's example: a `completed` call, a `sent` message with
    // error 30007, and one completed recording REaaa… of call CAaaa….
    let stuck = sid("CA");
    let with_recording = format!("CA{}", "a".repeat(32));
    let message = sid("SM");
    w.call(&stuck, "in-progress", minutes_ago(20)).await;
    w.call(&with_recording, "completed", minutes_ago(30)).await;
    let message_id = w.message(&message, "queued", minutes_ago(120)).await;

    let detail = w.reconcile().await;
    assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
    assert_eq!(w.call_row(&stuck).await.status, "completed");
    assert_eq!(w.call_row(&stuck).await.duration_s, Some(4));
    let m = w.message_row(&message_id).await;
    assert_eq!((m.status.as_str(), m.error_code), ("sent", Some(30007)));
    let re = format!("RE{}", "a".repeat(32));
    let rec = get_recording(&w.db, &re)
        .await
        .expect("read")
        .expect("the listed recording was enqueued and fetched");
    assert_eq!(
        (rec.status.as_str(), rec.call_sid.as_str()),
        ("stored", with_recording.as_str())
    );
}

#[tokio::test]
async fn prism_health_reaches_twilio_and_stores_an_ok_result() {
    let Some(prism) = prism_url() else { return };
    let w = World::new(&prism).await;
    let record = w.health_now(Utc::now()).await;
    assert_eq!(record.verdict(Utc::now()), Verdict::Ok, "{}", record.detail);
    let detail: Value = serde_json::from_str(&record.detail).expect("JSON");
    assert_eq!(detail["twilio"]["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// Health and cleanup.

async fn health_job(w: &World, tick: DateTime<Utc>) -> String {
    let job = NewJob::new(&ClockHealth(ClockTick {
        tick: tick.to_rfc3339(),
    }))
    .run_at(tick);
    w.queue.enqueue(job).await.expect("enqueue").id().to_owned()
}

impl World {
    /// Runs a health job of the tick `tick` (and every other job); the health record after.
    async fn health_now(&self, tick: DateTime<Utc>) -> HealthRecord {
        health_job(self, tick).await;
        self.drain().await;
        self.health().await
    }
}

#[tokio::test]
async fn health_stores_ok_and_a_lagging_queue_makes_it_degraded() {
    let (twilio, w) = fake_world().await;
    twilio.on_account();
    let record = w.health_now(Utc::now()).await;
    assert_eq!(record.verdict(Utc::now()), Verdict::Ok, "{}", record.detail);
    let detail: Value = serde_json::from_str(&record.detail).expect("JSON");
    for check in ["database", "queue", "twilio", "storage"] {
        assert_eq!(detail[check]["status"], "ok", "{check}: {detail}");
    }
    assert_eq!(twilio.hits(&format!("/Accounts/{AC}.json")), 1);

    // A tick that waited ten minutes in the queue: the queue lags.
    let record = w.health_now(minutes_ago(10)).await;
    assert_eq!(record.status, "degraded");
    let Verdict::Degraded(why) = record.verdict(Utc::now()) else {
        panic!("degraded expected");
    };
    assert!(why.contains("over 300 s"), "{why}");
}

#[tokio::test]
async fn health_without_twilio_credentials_skips_that_check_and_a_failing_twilio_degrades() {
    let (twilio, mut w) = fake_world().await;
    w.core.twilio.account_sid = None;
    let record = w.health_now(Utc::now()).await;
    assert_eq!(record.status, "ok", "{}", record.detail);
    assert_eq!(twilio.requests(), 0);

    w.core.twilio.account_sid = Some(AC.into());
    twilio.on(".json", vec![Reply::Status(401, None)]);
    let record = w.health_now(Utc::now()).await;
    assert_eq!(
        record.verdict(Utc::now()),
        Verdict::Degraded("failing: twilio".into())
    );
}

#[tokio::test]
async fn cleanup_deletes_recordings_past_retention_and_orphaned_partial_files() {
    let mut w = World::new("http://127.0.0.1:9").await;
    w.worker.tasks.recording_retention_days = Some(30);
    cleanup_scenario(&w).await;
}

async fn cleanup_scenario(w: &World) {
    let folder = w.dir().join("recordings");
    let (old, young, ca) = (sid("RE"), sid("RE"), sid("CA"));
    w.call(&ca, "completed", minutes_ago(60 * 24 * 40)).await;
    for (re, days) in [(&old, 40), (&young, 5)] {
        let key = format!("recordings/1/2026/01/{re}.wav");
        std::fs::create_dir_all(folder.join("recordings/1/2026/01")).expect("mkdir");
        std::fs::write(folder.join(&key), b"RIFF").expect("write");
        let at = to_ms(minutes_ago(60 * 24 * days));
        recordings::ensure_recording(
            &w.db,
            &recordings::NewRecording {
                recording_sid: re,
                call_sid: &ca,
                source_url: "https://api.twilio.com/x",
                duration_s: Some(1),
                at,
            },
        )
        .await
        .expect("row");
        assert!(
            recordings::claim_download(&w.db, re, at, at)
                .await
                .expect("claim")
        );
        assert!(
            recordings::mark_stored(
                &w.db,
                re,
                &recordings::StoredCopy {
                    location: &key,
                    content_type: "audio/x-wav",
                    size_bytes: 4,
                    duration_s: Some(1),
                    at,
                },
            )
            .await
            .expect("stored")
        );
    }
    let orphan = folder.join(format!("recordings/1/2026/01/{}.wav#1", sid("RE")));
    std::fs::write(&orphan, b"RI").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
        .expect("age");

    w.queue
        .enqueue(NewJob::new(&ClockCleanup(ClockTick {
            tick: Utc::now().to_rfc3339(),
        })))
        .await
        .expect("enqueue");
    w.drain().await;

    let gone = w.recording(&old).await;
    assert_eq!(
        (gone.status.as_str(), gone.media_location),
        ("expired", None)
    );
    assert!(
        !folder
            .join(format!("recordings/1/2026/01/{old}.wav"))
            .exists()
    );
    let kept = w.recording(&young).await;
    assert_eq!(kept.status, "stored");
    assert!(
        folder
            .join(format!("recordings/1/2026/01/{young}.wav"))
            .exists()
    );
    assert!(!orphan.exists(), "the orphaned partial upload is gone");
    let timeline = w.timeline(&ca).await;
    assert_eq!(
        timeline
            .events
            .iter()
            .filter(|e| e.kind == "recording.expired")
            .count(),
        1
    );
}

#[tokio::test]
async fn cleanup_bounds_the_dead_jobs_of_a_kind_that_always_fails() {
    let mut w = World::new("http://127.0.0.1:9").await;
    // Poison payloads: a kind whose every job fails for good, at once.
    for _ in 0..7 {
        w.queue
            .enqueue(NewJob::raw(
                JobKind::WhatsAppSend,
                "{\"v\":1,\"data\":{\"nope\":",
            ))
            .await
            .expect("enqueue");
    }
    assert_eq!(w.drain().await.dead, 7);
    let dead = ListQuery {
        state: Some(JobState::Dead),
        limit: 500,
        ..ListQuery::default()
    };
    let dead_ids = |page: JobPage| page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let newest_first = dead_ids(w.queue.list(&dead).await.expect("list"));
    let cleanup = || {
        NewJob::new(&ClockCleanup(ClockTick {
            tick: Utc::now().to_rfc3339(),
        }))
    };

    // Within DEAD_JOB_RETENTION the cap alone prunes: the three newest stay, and the count
    // reaches /metrics (only this test prunes dead jobs in this process).
    let metrics = moked_jobs::telemetry::prometheus().expect("a Prometheus recorder");
    w.core.dead_job_max = 3;
    w.queue.enqueue(cleanup()).await.expect("enqueue");
    assert_eq!(w.drain().await.done, 1);
    assert_eq!(
        dead_ids(w.queue.list(&dead).await.expect("list")),
        newest_first[..3]
    );
    let pruned = "moked_jobs_pruned_total{state=\"dead\"} 4";
    assert!(
        metrics.render().contains(pruned),
        "{pruned} not in /metrics"
    );

    // Past it, every dead job goes whatever the cap.
    w.core.dead_job_retention = Duration::ZERO;
    w.core.dead_job_max = 50_000;
    w.queue.enqueue(cleanup()).await.expect("enqueue");
    assert_eq!(w.drain().await.done, 1);
    let stats = w.queue.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Dead), 0);
}

// ---------------------------------------------------------------------------------------------
// The same store queries on Postgres.

#[tokio::test]
async fn on_postgres_reconcile_health_and_cleanup_behave_the_same() {
    let twilio = FakeTwilio::start().await;
    let mut w = World::postgres(&twilio.served.url).await;
    w.worker.tasks.recording_retention_days = Some(30);
    let (stuck, done, re) = (sid("CA"), sid("CA"), sid("RE"));
    let message = sid("SM");
    w.call(&stuck, "in-progress", minutes_ago(20)).await;
    w.call(&done, "completed", minutes_ago(30)).await;
    let message_id = w.message(&message, "sent", minutes_ago(120)).await;
    let busy = Reply::Status(429, Some(0));
    twilio.on_call(&stuck, vec![busy, call_json(&stuck, "completed", "5")]);
    twilio.on_message(&message, "read", None);
    twilio.on_recordings(&done, &[(&re, "completed")]);
    twilio.on_media(&re);
    twilio.on_account();

    let job = w.reconcile_job().await;
    health_job(&w, Utc::now()).await;
    w.drain().await;
    assert_eq!(w.job(&job).await.summary.attempts, 2);
    assert_eq!(w.call_row(&stuck).await.status, "completed");
    assert_eq!(w.events_from(&stuck, "reconcile").await, ["completed"]);
    assert_eq!(w.message_row(&message_id).await.status, "read");
    assert_eq!(w.recording(&re).await.status, "stored");
    assert_eq!(twilio.call_hits(&stuck), 2);
    assert_eq!(twilio.recordings_hits(&done), 1);
    let record = w.health().await;
    assert_eq!(record.verdict(Utc::now()), Verdict::Ok, "{}", record.detail);

    cleanup_scenario(&w).await;
    w.close().await;
}

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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use moked_jobs::config::CoreConfig;
use moked_jobs::kinds::{
    ClockCleanup, ClockHealth, ClockReconcile, ClockTick, JobKind, RecordingProcess,
};
use moked_jobs::queue::{
    self, Enqueued, JobDetail, JobPage, JobState, Lease, ListQuery, NewJob, Queue, QueueResult,
    SharedQueue, Stats, WorkerId,
};
use moked_jobs::retry::{RetryPolicy, RetrySchedule};
use moked_jobs::runner::{RunSummary, Runner};
use moked_jobs::store::Db;
use moked_jobs::store::calls::{self, CallStart, CallStatusChange};
use moked_jobs::store::customers::Number;
use moked_jobs::store::health::{CLOCK_HEALTH, Verdict, latest_health};
use moked_jobs::store::recordings::get_recording;
use moked_jobs::store::whatsapp::messages::{self, NewOutbound};
use moked_jobs::store::{recordings, to_ms};
use moked_workers::clock::{self, ClockArgs, ClockConfig, Scheduler, Task};
use moked_workers::config::WorkerConfig;
use moked_workers::handlers::Ctx;
use moked_workers::run;
use serde_json::{Value, json};

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token";
const CALLER: &str = "+972521234567";
const BUSINESS_NUMBER: &str = "+97233334444";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------
// The world of one test.

struct World {
    dir: tempfile::TempDir,
    db: Db,
    queue: SharedQueue,
    core: CoreConfig,
    worker: WorkerConfig,
    pg_name: Option<String>,
}

fn pg_base() -> String {
    std::env::var("MOKED_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl World {
    /// A SQLite world whose Twilio REST base is `api_base`; retries after 10 ms, 4 attempts;
    /// recordings in a `file://` folder of the test; no pacing between Twilio requests.
    async fn new(api_base: &str) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("moked.db").display());
        World::open(dir, url, None, api_base).await
    }

    /// The same on a fresh Postgres database (dropped by [`World::close`]).
    async fn postgres(api_base: &str) -> World {
        use sqlx::Connection;
        let name = format!("moked_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{}/test", pg_base()))
            .await
            .expect("connect to the test Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = format!("{}/{name}", pg_base());
        let dir = tempfile::tempdir().expect("temp dir");
        World::open(dir, url, Some(name), api_base).await
    }

    async fn open(
        dir: tempfile::TempDir,
        url: String,
        pg_name: Option<String>,
        api_base: &str,
    ) -> World {
        let db = Db::connect(&url).await.expect("open db");
        db.migrate().await.expect("migrate");
        let mut core = CoreConfig::for_database(&url);
        core.twilio.account_sid = Some(AC.into());
        core.twilio.auth_token = Some(TOKEN.to_owned().into());
        core.twilio.api_base = api_base.trim_end_matches('/').to_owned();
        core.retry = RetryPolicy::new("10ms,10ms,10ms".parse::<RetrySchedule>().expect("schedule"));
        let queue = queue::connect(&core, &db).await.expect("queue");
        let mut worker = WorkerConfig::for_tests("clock");
        worker.recordings_store = format!("file://{}", dir.path().join("recordings").display());
        worker.tasks.reconcile_pace = Duration::ZERO;
        World {
            dir,
            db,
            queue,
            core,
            worker,
            pg_name,
        }
    }

    /// Closes the pool and drops a Postgres test database.
    async fn close(self) {
        use sqlx::Connection;
        self.db.close().await;
        if let Some(name) = &self.pg_name
            && let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/test", pg_base())).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }

    fn ctx(&self) -> Ctx {
        run::context(
            &self.core,
            &self.worker,
            self.db.clone(),
            self.queue.clone(),
        )
        .expect("worker context")
    }

    /// Runs every job to done or dead with the real runner.
    async fn drain(&self) -> RunSummary {
        let mut config = run::runner_config(&self.core, &self.worker);
        config.fetch_wait = Duration::from_millis(50);
        let runner = Runner::new(
            self.queue.clone(),
            "clock-test",
            config,
            run::dispatcher(self.ctx()),
        );
        tokio::time::timeout(
            Duration::from_secs(120),
            runner.drain(std::future::pending()),
        )
        .await
        .expect("the queue drains within two minutes")
        .expect("runner")
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

    async fn job(&self, id: &str) -> JobDetail {
        self.queue
            .get(id)
            .await
            .expect("get job")
            .expect("job exists")
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
        calls::record_call_started(
            &self.db,
            &CallStart {
                call_sid: call_sid.to_owned(),
                from: Number::parse(CALLER),
                to: Number::parse(BUSINESS_NUMBER),
                status: Some("ringing".into()),
                at,
            },
        )
        .await
        .expect("call recorded");
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
        let stored = messages::create_outbound(
            &self.db,
            &NewOutbound {
                id: messages::new_message_id(),
                provider: "twilio".into(),
                to: moked_jobs::phone::E164::parse(CALLER).expect("E.164"),
                from: Some("whatsapp:+97233334444".into()),
                body: Some("שלום".into()),
                media: Vec::new(),
                content_sid: None,
                content_variables: None,
                idempotency_key: None,
                business_id: None,
            },
        )
        .await
        .expect("outbound");
        let id = stored.message.id;
        messages::attach_provider_sid(&self.db, &id, message_sid, status)
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

    async fn call_row(&self, call_sid: &str) -> calls::Call {
        calls::get_call_row(&self.db, call_sid)
            .await
            .expect("read")
            .expect("call")
    }

    /// The status events of a call whose detail names `source`.
    async fn events_from(&self, call_sid: &str, source: &str) -> Vec<String> {
        calls::get_call(&self.db, call_sid)
            .await
            .expect("read")
            .expect("call")
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

/// `secs` seconds of 8 kHz 16-bit mono WAV (Twilio's format).
fn wav(secs: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Vec::new();
    {
        let mut w = hound::WavWriter::new(Cursor::new(&mut bytes), spec).expect("wav");
        for i in 0..8000 * secs {
            w.write_sample(if (i / 10) % 2 == 0 { 6000i16 } else { -6000 })
                .expect("sample");
        }
        w.finalize().expect("finalize");
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Exactly one job per tick: two clocks, one queue.

fn clock_config(reconcile: &str, health: &str, cleanup: &str) -> ClockConfig {
    ClockArgs {
        clock_tz: "Asia/Jerusalem".into(),
        schedule_reconcile: reconcile.into(),
        schedule_health: health.into(),
        schedule_cleanup: cleanup.into(),
    }
    .into_config()
    .expect("clock config")
}

/// The clock jobs in the queue: per task, how many, and every tick payload.
async fn clock_jobs(queue: &SharedQueue) -> BTreeMap<&'static str, Vec<String>> {
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

fn counts(jobs: &BTreeMap<&'static str, Vec<String>>) -> (usize, usize, usize) {
    (
        jobs["reconcile"].len(),
        jobs["health"].len(),
        jobs["cleanup"].len(),
    )
}

fn distinct(jobs: &BTreeMap<&'static str, Vec<String>>) -> bool {
    jobs.values()
        .all(|ticks| ticks.iter().collect::<HashSet<_>>().len() == ticks.len())
}

#[tokio::test]
async fn two_clocks_stepping_through_a_day_make_exactly_one_job_per_tick() {
    let w = World::new("http://127.0.0.1:9").await;
    let config = clock_config("0 */5 * * * *", "0 * * * * *", "0 30 3 * * *");
    // Local midnight of an ordinary June day (IDT, UTC+3).
    let start = utc("2026-06-01T00:00:00+03:00");
    let end = utc("2026-06-02T00:00:00+03:00");
    let (created, duplicates) = two_clocks_step(config, &w.queue, start, end).await;
    let jobs = clock_jobs(&w.queue).await;
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
    let w = World::new("http://127.0.0.1:9").await;
    // Israel 2026: 02:00 IST → 03:00 IDT on Friday 27 March (00:00 UTC). Cleanup at 02:30, a
    // wall time that does not exist that day.
    let config = clock_config("0 */5 * * * *", "0 * * * * *", "0 30 2 * * *");
    let start = utc("2026-03-27T00:00:00+02:00");
    let end = utc("2026-03-28T00:00:00+03:00");
    let (created, duplicates) = two_clocks_step(config, &w.queue, start, end).await;
    let jobs = clock_jobs(&w.queue).await;
    // A 23-hour day: 1380 minutes, 276 five-minute marks; the gap's 02:xx marks and the 03:00
    // mark are due at the same instant and fire once (as 03:00).
    assert_eq!(counts(&jobs), (1 + 276, 1 + 1380, 1 + 1));
    assert_eq!((created, duplicates), (1660, 1660));
    assert!(distinct(&jobs));
    assert!(
        jobs["cleanup"].contains(&"2026-03-27T00:00:00+00:00".to_owned()),
        "02:30 fired once, at the end of the gap: {:?}",
        jobs["cleanup"]
    );
}

#[tokio::test]
async fn two_clocks_on_the_fall_back_day_fire_the_repeated_hour_once() {
    let w = World::new("http://127.0.0.1:9").await;
    // Israel 2026: 02:00 IDT → 01:00 IST on Sunday 25 October (23:00 UTC on the 24th). Cleanup
    // at 01:30, a wall time that happens twice that day.
    let config = clock_config("0 */5 * * * *", "0 * * * * *", "0 30 1 * * *");
    let start = utc("2026-10-25T00:00:00+03:00");
    let end = utc("2026-10-26T00:00:00+02:00");
    let (created, duplicates) = two_clocks_step(config, &w.queue, start, end).await;
    let jobs = clock_jobs(&w.queue).await;
    // A 25-hour day, but each wall-clock minute fires once: 1440 minutes, 288 five-minute marks.
    assert_eq!(counts(&jobs), (1 + 288, 1 + 1440, 1 + 1));
    assert_eq!((created, duplicates), (1732, 1732));
    assert!(distinct(&jobs));
    assert!(
        jobs["cleanup"].contains(&"2026-10-24T22:30:00+00:00".to_owned()),
        "01:30 fired once, at its first occurrence: {:?}",
        jobs["cleanup"]
    );
}

/// A queue whose enqueue runs on a blocking thread: tokio does not auto-advance paused time
/// while a `spawn_blocking` task runs, so the virtual clock stands still while the real SQLite
/// write happens (otherwise the idle runtime would jump to the next timer mid-write).
struct HoldTime(SharedQueue);

#[async_trait]
impl Queue for HoldTime {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        let (queue, rt) = (self.0.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || rt.block_on(queue.enqueue(job)))
            .await
            .expect("enqueue thread")
    }
    async fn fetch(&self, w: &WorkerId, max: usize, wait: Duration) -> QueueResult<Vec<Lease>> {
        self.0.fetch(w, max, wait).await
    }
    async fn complete(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        self.0.complete(w, id).await
    }
    async fn retry_at(
        &self,
        w: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()> {
        self.0.retry_at(w, id, error, at).await
    }
    async fn bury(&self, w: &WorkerId, id: &str, error: &str) -> QueueResult<()> {
        self.0.bury(w, id, error).await
    }
    async fn release(&self, w: &WorkerId, id: &str) -> QueueResult<()> {
        self.0.release(w, id).await
    }
    async fn heartbeat(&self, w: &WorkerId) -> QueueResult<()> {
        self.0.heartbeat(w).await
    }
    async fn deregister(&self, w: &WorkerId) -> QueueResult<()> {
        self.0.deregister(w).await
    }
    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64> {
        self.0.recover_abandoned(stale_after).await
    }
    async fn held(&self, w: &WorkerId) -> QueueResult<Vec<String>> {
        self.0.held(w).await
    }
    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage> {
        self.0.list(query).await
    }
    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>> {
        self.0.get(id).await
    }
    async fn retry(&self, id: &str) -> QueueResult<bool> {
        self.0.retry(id).await
    }
    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64> {
        self.0.retry_all(state, kind).await
    }
    async fn discard(&self, id: &str) -> QueueResult<bool> {
        self.0.discard(id).await
    }
    async fn stats(&self) -> QueueResult<Stats> {
        self.0.stats().await
    }
    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64> {
        self.0.prune(before).await
    }
    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64> {
        self.0.prune_dead(before, keep).await
    }
    async fn ping(&self) -> QueueResult<()> {
        self.0.ping().await
    }
}

/// Runs two real clock loops ([`clock::run_with`]) from `start` for `span` of paused tokio time,
/// the wall clock being `start` + elapsed tokio time.
async fn two_clock_loops(
    config: ClockConfig,
    queue: SharedQueue,
    start: DateTime<Utc>,
    span: Duration,
) {
    tokio::time::pause();
    let origin = tokio::time::Instant::now();
    let wall = move || {
        start + chrono::Duration::from_std(origin.elapsed()).unwrap_or(chrono::Duration::MAX)
    };
    let held: SharedQueue = Arc::new(HoldTime(queue));
    // Stop a second after the last tick of the span.
    let stop = move || tokio::time::sleep_until(origin + span + Duration::from_secs(1));
    let a = tokio::spawn(clock::run_with(config.clone(), held.clone(), wall, stop()));
    let b = tokio::spawn(clock::run_with(config, held, wall, stop()));
    let (a, b) = tokio::join!(a, b);
    a.expect("clock a");
    b.expect("clock b");
    tokio::time::resume();
}

#[tokio::test]
async fn two_clock_loops_in_paused_time_make_exactly_one_job_per_tick_for_a_day() {
    let w = World::new("http://127.0.0.1:9").await;
    let config = clock_config("0 */5 * * * *", "0 * * * * *", "0 30 3 * * *");
    let started = std::time::Instant::now();
    two_clock_loops(
        config,
        w.queue.clone(),
        utc("2026-06-01T00:00:00+03:00"),
        Duration::from_secs(86_400),
    )
    .await;
    eprintln!("a simulated day of two clocks took {:?}", started.elapsed());
    let jobs = clock_jobs(&w.queue).await;
    assert_eq!(counts(&jobs), (1 + 288, 1 + 1440, 1 + 1));
    assert!(distinct(&jobs));
}

#[tokio::test]
async fn two_clock_loops_in_paused_time_fire_the_dst_gap_and_overlap_ticks_once() {
    let w = World::new("http://127.0.0.1:9").await;
    // 02:30 falls in the spring-forward gap (27 March), 01:30 in the fall-back overlap
    // (25 October); hourly reconcile at :15 sees both transitions.
    let spring = clock_config("0 15 * * * *", "0 0 0 1 1 *", "0 30 2 * * *");
    two_clock_loops(
        spring,
        w.queue.clone(),
        utc("2026-03-27T00:00:00+02:00"),
        Duration::from_secs(23 * 3600),
    )
    .await;
    let jobs = clock_jobs(&w.queue).await;
    // Catch-up (23:15 the day before) + the day's 24 marks: 02:15 does not exist and fires at
    // 03:00, the end of the gap — once.
    assert_eq!(jobs["reconcile"].len(), 1 + 24, "{:?}", jobs["reconcile"]);
    assert!(jobs["reconcile"].contains(&"2026-03-27T00:00:00+00:00".to_owned()));
    assert!(jobs["cleanup"].contains(&"2026-03-27T00:00:00+00:00".to_owned()));
    assert_eq!(jobs["cleanup"].len(), 1 + 1);
    assert!(distinct(&jobs));

    let w = World::new("http://127.0.0.1:9").await;
    let fall = clock_config("0 15 * * * *", "0 0 0 1 1 *", "0 30 1 * * *");
    two_clock_loops(
        fall,
        w.queue.clone(),
        utc("2026-10-25T00:00:00+03:00"),
        Duration::from_secs(25 * 3600),
    )
    .await;
    let jobs = clock_jobs(&w.queue).await;
    assert_eq!(jobs["reconcile"].len(), 1 + 24, "each wall-clock hour once");
    assert!(jobs["cleanup"].contains(&"2026-10-24T22:30:00+00:00".to_owned()));
    assert_eq!(jobs["cleanup"].len(), 1 + 1);
    assert!(distinct(&jobs));
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

struct FakeTwilio {
    base: String,
    state: FakeState,
}

impl FakeTwilio {
    async fn start() -> FakeTwilio {
        let state = FakeState::default();
        let app = Router::new()
            .fallback(fake_twilio)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio { base, state }
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
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let (stuck, fresh) = (sid("CA"), sid("CA"));
    w.call(&stuck, "in-progress", minutes_ago(20)).await;
    w.call(&fresh, "in-progress", minutes_ago(2)).await;
    twilio.on(
        &format!("/Calls/{stuck}.json"),
        vec![call_json(&stuck, "completed", "1234")],
    );

    let job = w.reconcile_job().await;
    w.drain().await;
    assert_eq!(w.job(&job).await.summary.state, JobState::Done);
    let call = w.call_row(&stuck).await;
    assert_eq!(
        (call.status.as_str(), call.duration_s),
        ("completed", Some(1234))
    );
    assert!(call.ended_at.is_some());
    assert_eq!(w.events_from(&stuck, "reconcile").await, ["completed"]);
    assert_eq!(twilio.hits(&format!("/Calls/{stuck}.json")), 1);
    assert_eq!(
        w.call_row(&fresh).await.status,
        "in-progress",
        "a call changed 2 minutes ago is not stale"
    );
    assert_eq!(twilio.requests(), 1, "nothing else was asked");

    // Another run: the call is terminal now; nothing to ask.
    w.reconcile_job().await;
    w.drain().await;
    assert_eq!(twilio.requests(), 1);
}

#[tokio::test]
async fn a_call_twilio_still_reports_in_progress_is_held_back_not_asked_every_run() {
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let long = sid("CA");
    w.call(&long, "in-progress", minutes_ago(20)).await;
    twilio.on(
        &format!("/Calls/{long}.json"),
        vec![call_json(&long, "in-progress", "0")],
    );
    w.reconcile_job().await;
    w.drain().await;
    w.reconcile_job().await;
    w.drain().await;
    assert_eq!(twilio.hits(&format!("/Calls/{long}.json")), 1);
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
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let (delivered, failed, recent) = (sid("SM"), sid("SM"), sid("SM"));
    let delivered_id = w.message(&delivered, "sent", minutes_ago(120)).await;
    let failed_id = w.message(&failed, "queued", minutes_ago(90)).await;
    let recent_id = w.message(&recent, "sent", minutes_ago(10)).await;
    twilio.on(
        &format!("/Messages/{delivered}.json"),
        vec![message_json(&delivered, "delivered", None)],
    );
    twilio.on(
        &format!("/Messages/{failed}.json"),
        vec![message_json(&failed, "undelivered", Some(63016))],
    );

    w.reconcile_job().await;
    w.drain().await;
    let m = messages::get_message(&w.db, &delivered_id)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(m.status, "delivered");
    assert!(m.delivered_at.is_some() && m.sent_at.is_some());
    let m = messages::get_message(&w.db, &failed_id)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(
        (m.status.as_str(), m.error_code),
        ("undelivered", Some(63016))
    );
    let m = messages::get_message(&w.db, &recent_id)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(m.status, "sent", "not stale for an hour yet");
    assert_eq!(twilio.requests(), 2);
    assert_eq!(
        messages::status_events(&w.db, &delivered)
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
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let (ca, re, unfinished) = (sid("CA"), sid("RE"), sid("RE"));
    w.call(&ca, "completed", minutes_ago(30)).await;
    twilio.on(
        &format!("/Calls/{ca}/Recordings.json"),
        vec![recordings_json(
            &ca,
            &[(&re, "completed"), (&unfinished, "processing")],
        )],
    );
    twilio.on(&format!("/Recordings/{re}.wav"), vec![Reply::Wav(wav(1))]);

    w.reconcile_job().await;
    w.drain().await;
    assert_eq!(twilio.hits(&format!("/Calls/{ca}/Recordings.json")), 1);
    assert_eq!(
        w.count(JobKind::RecordingProcess).await,
        1,
        "one job, for the completed recording"
    );
    let rec = get_recording(&w.db, &re)
        .await
        .expect("read")
        .expect("recording row");
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
    w.reconcile_job().await;
    w.drain().await;
    assert_eq!(w.count(JobKind::RecordingProcess).await, 1);
    assert_eq!(
        twilio.hits(&format!("/Calls/{ca}/Recordings.json")),
        1,
        "the call has its recording now"
    );
}

#[tokio::test]
async fn twilio_429_mid_run_stops_it_and_the_retry_resumes_without_duplicates() {
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let (a, b, c, d) = (sid("CA"), sid("CA"), sid("CA"), sid("CA"));
    let re = sid("RE");
    // Oldest first: a, b, c are stuck calls; d completed long ago without its recording.
    w.call(&a, "in-progress", minutes_ago(40)).await;
    w.call(&b, "ringing", minutes_ago(35)).await;
    w.call(&c, "in-progress", minutes_ago(30)).await;
    w.call(&d, "completed", minutes_ago(60)).await;
    twilio.on(
        &format!("/Calls/{a}.json"),
        vec![call_json(&a, "completed", "10")],
    );
    twilio.on(
        &format!("/Calls/{b}.json"),
        vec![Reply::Status(429, Some(0)), call_json(&b, "no-answer", "0")],
    );
    twilio.on(
        &format!("/Calls/{c}.json"),
        vec![call_json(&c, "completed", "30")],
    );
    twilio.on(
        &format!("/Calls/{d}/Recordings.json"),
        vec![recordings_json(&d, &[(&re, "completed")])],
    );
    twilio.on(&format!("/Recordings/{re}.wav"), vec![Reply::Wav(wav(1))]);

    let job = w.reconcile_job().await;
    w.drain().await;
    let detail = w.job(&job).await;
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
    assert_eq!(
        twilio.hits(&format!("/Calls/{a}.json")),
        1,
        "a was reconciled before the 429"
    );
    assert_eq!(twilio.hits(&format!("/Calls/{b}.json")), 2);
    assert_eq!(
        twilio.hits(&format!("/Calls/{c}.json")),
        1,
        "c waited for the retry"
    );
    assert_eq!(twilio.hits(&format!("/Calls/{d}/Recordings.json")), 1);
    assert_eq!(w.events_from(&a, "reconcile").await, ["completed"]);
    assert_eq!(w.events_from(&b, "reconcile").await, ["no-answer"]);
    assert_eq!(w.events_from(&c, "reconcile").await, ["completed"]);
    assert_eq!(w.call_row(&b).await.status, "no-answer");
    assert_eq!(w.count(JobKind::RecordingProcess).await, 1);
    assert_eq!(
        get_recording(&w.db, &re)
            .await
            .expect("read")
            .expect("row")
            .status,
        "stored"
    );
}

#[tokio::test]
async fn a_twilio_404_skips_only_that_item_and_holds_it_back() {
    let twilio = FakeTwilio::start().await;
    let w = World::new(&twilio.base).await;
    let (gone, ok) = (sid("CA"), sid("CA"));
    w.call(&gone, "ringing", minutes_ago(30)).await;
    w.call(&ok, "ringing", minutes_ago(20)).await;
    // No script for `gone`: the fake answers 404 (code 20404).
    twilio.on(
        &format!("/Calls/{ok}.json"),
        vec![call_json(&ok, "busy", "0")],
    );
    let job = w.reconcile_job().await;
    w.drain().await;
    assert_eq!(w.job(&job).await.summary.state, JobState::Done);
    assert_eq!(w.call_row(&ok).await.status, "busy");
    assert_eq!(w.call_row(&gone).await.status, "ringing");
    w.reconcile_job().await;
    w.drain().await;
    assert_eq!(
        twilio.hits(&format!("/Calls/{gone}.json")),
        1,
        "held back after its 404"
    );
}

#[tokio::test]
async fn without_twilio_credentials_reconcile_does_nothing_and_succeeds() {
    let twilio = FakeTwilio::start().await;
    let mut w = World::new(&twilio.base).await;
    w.core.twilio.auth_token = None;
    w.call(&sid("CA"), "ringing", minutes_ago(30)).await;
    let job = w.reconcile_job().await;
    w.drain().await;
    assert_eq!(w.job(&job).await.summary.state, JobState::Done);
    assert_eq!(twilio.requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Reconcile and health against Prism (Twilio's official OpenAPI spec).

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Prism's URL; in CI its absence is a failure, locally a loud skip.
fn prism_url() -> Option<String> {
    match std::env::var("MOKED_PRISM_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if flag("CI") => panic!(
            "MOKED_PRISM_URL is unset in CI: scripts/test must start Prism (tests/twilio/prism.sh start 4010)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: MOKED_PRISM_URL is unset; start Prism with `tests/twilio/prism.sh start 4010` and export MOKED_PRISM_URL=http://127.0.0.1:4010"
            );
            None
        }
    }
}

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

    let job = w.reconcile_job().await;
    w.drain().await;
    let detail = w.job(&job).await;
    assert_eq!(detail.summary.state, JobState::Done, "{:?}", detail.history);
    assert_eq!(w.call_row(&stuck).await.status, "completed");
    assert_eq!(w.call_row(&stuck).await.duration_s, Some(4));
    let m = messages::get_message(&w.db, &message_id)
        .await
        .expect("read")
        .expect("message");
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
    health_job(&w, Utc::now()).await;
    w.drain().await;
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
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

#[tokio::test]
async fn health_stores_ok_and_a_lagging_queue_makes_it_degraded() {
    let twilio = FakeTwilio::start().await;
    twilio.on(
        ".json",
        vec![Reply::Json(json!({"sid": AC, "status": "active"}))],
    );
    let w = World::new(&twilio.base).await;
    health_job(&w, Utc::now()).await;
    w.drain().await;
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.verdict(Utc::now()), Verdict::Ok, "{}", record.detail);
    let detail: Value = serde_json::from_str(&record.detail).expect("JSON");
    for check in ["database", "queue", "twilio", "storage"] {
        assert_eq!(detail[check]["status"], "ok", "{check}: {detail}");
    }
    assert_eq!(twilio.hits(&format!("/Accounts/{AC}.json")), 1);

    // A tick that waited ten minutes in the queue: the queue lags.
    health_job(&w, minutes_ago(10)).await;
    w.drain().await;
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.status, "degraded");
    let Verdict::Degraded(why) = record.verdict(Utc::now()) else {
        panic!("degraded expected");
    };
    assert!(why.contains("over 300 s"), "{why}");
}

#[tokio::test]
async fn health_without_twilio_credentials_skips_that_check_and_a_failing_twilio_degrades() {
    let twilio = FakeTwilio::start().await;
    let mut w = World::new(&twilio.base).await;
    w.core.twilio.account_sid = None;
    health_job(&w, Utc::now()).await;
    w.drain().await;
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.status, "ok", "{}", record.detail);
    assert_eq!(twilio.requests(), 0);

    w.core.twilio.account_sid = Some(AC.into());
    twilio.on(".json", vec![Reply::Status(401, None)]);
    health_job(&w, Utc::now()).await;
    w.drain().await;
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
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
    let folder = w.dir.path().join("recordings");
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

    let gone = get_recording(&w.db, &old)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (gone.status.as_str(), gone.media_location),
        ("expired", None)
    );
    assert!(
        !folder
            .join(format!("recordings/1/2026/01/{old}.wav"))
            .exists()
    );
    let kept = get_recording(&w.db, &young)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(kept.status, "stored");
    assert!(
        folder
            .join(format!("recordings/1/2026/01/{young}.wav"))
            .exists()
    );
    assert!(!orphan.exists(), "the orphaned partial upload is gone");
    let timeline = calls::get_call(&w.db, &ca)
        .await
        .expect("read")
        .expect("call");
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
    let mut w = World::postgres(&twilio.base).await;
    w.worker.tasks.recording_retention_days = Some(30);
    let (stuck, done, re) = (sid("CA"), sid("CA"), sid("RE"));
    let message = sid("SM");
    w.call(&stuck, "in-progress", minutes_ago(20)).await;
    w.call(&done, "completed", minutes_ago(30)).await;
    let message_id = w.message(&message, "sent", minutes_ago(120)).await;
    twilio.on(
        &format!("/Calls/{stuck}.json"),
        vec![
            Reply::Status(429, Some(0)),
            call_json(&stuck, "completed", "5"),
        ],
    );
    twilio.on(
        &format!("/Messages/{message}.json"),
        vec![message_json(&message, "read", None)],
    );
    twilio.on(
        &format!("/Calls/{done}/Recordings.json"),
        vec![recordings_json(&done, &[(&re, "completed")])],
    );
    twilio.on(&format!("/Recordings/{re}.wav"), vec![Reply::Wav(wav(1))]);
    twilio.on(
        ".json",
        vec![Reply::Json(json!({"sid": AC, "status": "active"}))],
    );

    let job = w.reconcile_job().await;
    health_job(&w, Utc::now()).await;
    w.drain().await;
    assert_eq!(w.job(&job).await.summary.attempts, 2);
    assert_eq!(w.call_row(&stuck).await.status, "completed");
    assert_eq!(w.events_from(&stuck, "reconcile").await, ["completed"]);
    let m = messages::get_message(&w.db, &message_id)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(m.status, "read");
    assert_eq!(
        get_recording(&w.db, &re)
            .await
            .expect("read")
            .expect("row")
            .status,
        "stored"
    );
    assert_eq!(twilio.hits(&format!("/Calls/{stuck}.json")), 2);
    assert_eq!(twilio.hits(&format!("/Calls/{done}/Recordings.json")), 1);
    let record = latest_health(&w.db, CLOCK_HEALTH)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.verdict(Utc::now()), Verdict::Ok, "{}", record.detail);

    cleanup_scenario(&w).await;
    w.close().await;
}

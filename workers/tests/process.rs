//! Process-level tests of `moked-worker`: the real binary, killed and restarted.
//!
//! Each test gets its own SQLite store file and either the database queue (same file) or a
//! fresh Redis key prefix. Waiting is done by [`eventually`], which re-checks a condition on
//! the store until a deadline: the binary runs in another process, so there is no in-process
//! drain to await.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use moked_jobs::config::CoreConfig;
use moked_jobs::kinds::CallStarted;
use moked_jobs::queue::{JobState, NewJob, SharedQueue};
use moked_testkit::{Backend, eventually};

/// A test world ([`moked_testkit::World`], reached through `Deref`: its store, and the database
/// queue or a fresh Redis prefix) and a queue on it.
struct World {
    base: moked_testkit::World,
    queue: SharedQueue,
}

moked_testkit::deref_to_world!(World, base);

impl World {
    async fn new(redis: bool) -> World {
        let base = moked_testkit::World::new(Backend::sqlite_or_redis(redis)).await;
        let queue = base.queue().await;
        World { base, queue }
    }

    /// Queues `n` `call.started` jobs, CallSids `CA{i:032x}`, callers `{caller_prefix}{i:07}`.
    async fn enqueue_calls(&self, n: u64, caller_prefix: &str) {
        for i in 0..n {
            let job = CallStarted {
                call_sid: format!("CA{i:032x}"),
                from: format!("{caller_prefix}{i:07}"),
                to: "+97231234567".into(),
                status: Some("ringing".into()),
                received_at: chrono::Utc::now(),
            };
            self.queue.enqueue(NewJob::new(&job)).await.unwrap();
        }
    }

    fn worker(&self, name: &str) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moked-worker"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.db_url())
            .env("WORKER_NAME", name)
            .env("WORKER_CONCURRENCY", "16")
            .env("WORKER_HEARTBEAT", "200ms")
            .env("WORKER_STALE_AFTER", "1s")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(redis) = self.redis() {
            cmd.env("REDIS_URL", redis.url())
                .env("QUEUE_PREFIX", redis.prefix());
        }
        cmd.spawn().expect("start moked-worker")
    }

    async fn count(&self, state: JobState) -> u64 {
        self.queue.stats().await.unwrap().count(state)
    }
}

async fn sigkill_mid_drain_then_restart_under_the_same_name(redis: bool) {
    let w = World::new(redis).await;
    let n = 1500u64;
    w.enqueue_calls(n, "+97250").await;
    let mut first = w.worker("worker.1");
    eventually(
        Duration::from_secs(60),
        "a quarter of the jobs done",
        || async { w.count(JobState::Done).await >= n / 4 },
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let done_at_kill = w.count(JobState::Done).await;
    assert!(
        done_at_kill < n,
        "killed mid-drain ({done_at_kill} of {n} done)"
    );

    let mut second = w.worker("worker.1");
    let took = eventually(Duration::from_secs(60), "every job done", || async {
        w.count(JobState::Done).await == n
    })
    .await;
    let stats = w.queue.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Dead), 0);
    assert_eq!(stats.count(JobState::Running), 0);
    assert_eq!(stats.count(JobState::Queued), 0);
    // Effects exactly once: one call row per CallSid, one status event per call.
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call")
        .fetch_one(w.db.pool())
        .await
        .unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT call_sid) FROM call")
        .fetch_one(w.db.pool())
        .await
        .unwrap();
    assert_eq!((calls, distinct), (n as i64, n as i64));
    assert!(
        took < Duration::from_secs(30),
        "orphans re-run within 30 s (took {took:?})"
    );

    // SIGTERM: a graceful exit with status 0.
    let pid = second.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = Instant::now();
    let status = second.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(exited.elapsed() < Duration::from_secs(25));
    if let Some(redis) = w.redis() {
        moked_jobs::queue::redis::RedisQueue::connect(redis.url(), redis.prefix())
            .await
            .unwrap()
            .delete_all()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_on_redis_loses_nothing_and_restarts_under_its_name() {
    sigkill_mid_drain_then_restart_under_the_same_name(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_on_sqlite_loses_nothing_and_restarts_under_its_name() {
    sigkill_mid_drain_then_restart_under_the_same_name(false).await;
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `moked-worker health` with `METRICS_PORT`: its exit status and what it printed.
fn health(port: u16) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moked-worker"))
        .arg("health")
        .env_clear()
        .env("METRICS_PORT", port.to_string())
        .output()
        .expect("moked-worker health");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The status port under `ulimit -n 256`, with more half-sent requests than the process has
/// files: the port keeps at most 64 connections (the idlest makes room for a new one), so
/// `/health` still answers, the worker keeps its files for its own connections and goes on
/// working. Served by `axum::serve` (no header timeout, no cap), the held sockets took every
/// file (256 of 256): the worker could have opened no other connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_on_the_status_port_neither_starve_it_nor_take_the_workers_files() {
    const LIMIT: usize = 256;
    const HALF_OPEN: usize = 400;
    let w = World::new(false).await;
    let port = free_port();
    let worker = KilledOnDrop(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {LIMIT} && exec \"$0\" run"))
            .arg(env!("CARGO_BIN_EXE_moked-worker"))
            .env_clear()
            .env("DATABASE_URL", w.db_url())
            .env("WORKER_NAME", "slow-clients.1")
            .env("METRICS_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moked-worker"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health_url = format!("http://127.0.0.1:{port}/health");
    let answers = || async {
        http.get(&health_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    eventually(Duration::from_secs(30), "the status port answers", answers).await;

    let mut held = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        use tokio::io::AsyncWriteExt as _;
        // A server that stopped accepting leaves new connections in the listen backlog, and
        // once that is full a connect waits for minutes: give up on it after a moment.
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        let Ok(Ok(mut socket)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
            break;
        };
        let _ = socket
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(socket);
    }
    assert!(
        answers().await,
        "/health answers while {} sockets are held",
        held.len()
    );
    let files = std::fs::read_dir(format!("/proc/{}/fd", worker.0.id()))
        .map(|d| d.count())
        .unwrap_or(usize::MAX);
    assert!(
        files < LIMIT / 2,
        "{files} open files under a limit of {LIMIT}"
    );
    w.enqueue_calls(5, "+97253").await;
    eventually(
        Duration::from_secs(30),
        "the jobs done meanwhile",
        || async { w.count(JobState::Done).await == 5 },
    )
    .await;
    drop((held, worker));
}

/// A child process killed (and reaped) when dropped, a failed assertion included.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_own_metrics_health_and_readiness_on_metrics_port() {
    let w = World::new(false).await;
    let port = free_port();
    let n = 25u64;
    w.enqueue_calls(n, "+97252").await;
    let mut worker = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moked-worker"));
        cmd.arg("run")
            .env_clear()
            .env("DATABASE_URL", w.db_url())
            .env("WORKER_NAME", "metrics.1")
            .env("METRICS_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().expect("start moked-worker")
    };
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &'static str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let r = http.get(url).send().await.ok()?;
            Some((r.status().as_u16(), r.text().await.ok()?))
        }
    };
    eventually(Duration::from_secs(30), "every job done", || async {
        w.count(JobState::Done).await == n
    })
    .await;
    // The runner counts an outcome just before it acknowledges, so the scrape may lag the
    // store by a moment: wait for the counter rather than read it once.
    let wanted = format!("moked_jobs_total{{kind=\"call.started\",outcome=\"done\"}} {n}");
    eventually(
        Duration::from_secs(10),
        "the done counter on /metrics",
        || async {
            get("/metrics")
                .await
                .is_some_and(|(s, body)| s == 200 && body.lines().any(|l| l == wanted))
        },
    )
    .await;
    let (status, body) = get("/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(
        body.contains("moked_job_duration_seconds_count{kind=\"call.started\"}"),
        "{body}"
    );
    assert!(body.contains("moked_build_info{"), "{body}");
    let (status, body) = get("/health").await.expect("/health answers");
    assert_eq!(
        (status, body.contains("\"role\":\"worker\"")),
        (200, true),
        "{body}"
    );
    let (status, body) = get("/ready").await.expect("/ready answers");
    assert_eq!(
        (status, body.contains("\"queue\":\"ok\"")),
        (200, true),
        "{body}"
    );

    let (ok, said) = health(port);
    assert!(ok, "healthy worker: {said}");
    assert!(said.contains("200"), "{said}");

    // The intake, another process's view: the fleet's counters the worker flushed into the
    // queue on its heartbeats (the worker above is a separate process; this intake ran no job).
    let mut core = CoreConfig::for_database(w.db_url());
    core.operator_token = Some("metrics-op".to_owned().into());
    let static_dir = tempfile::tempdir().unwrap();
    let state = moked_intake::build_state(
        core,
        moked_intake::IntakeConfig {
            static_dir: static_dir.path().to_owned(),
            ..moked_intake::IntakeConfig::default()
        },
    )
    .await
    .expect("intake state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let intake = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(moked_intake::run(listener, state, std::future::pending()));
    let fleet = format!("moked_cluster_jobs_total{{kind=\"call.started\",outcome=\"done\"}} {n}");
    eventually(
        Duration::from_secs(10),
        "the fleet's counter on the intake",
        || async {
            let Ok(r) = http.get(&intake).bearer_auth("metrics-op").send().await else {
                return false;
            };
            r.text()
                .await
                .is_ok_and(|body| body.lines().any(|l| l == fleet))
        },
    )
    .await;

    worker.kill().expect("SIGKILL");
    worker.wait().unwrap();
    let (ok, said) = health(port);
    assert!(!ok, "a dead worker is unhealthy: {said}");
    assert!(said.contains("unhealthy"), "{said}");
}

#[test]
fn a_malformed_env_file_stops_the_worker_with_the_line_that_is_wrong() {
    // As moked and moked-intake do: a half-read .env would run with settings nobody chose.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "GOOD=1\nthis is not a line\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_moked-worker"))
        .args(["jobs", "stats"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .expect("moked-worker");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cannot read .env") && said.contains("this is not a line"),
        "{said}"
    );
}

#[test]
fn a_worker_on_a_database_never_migrated_says_to_run_migrate() {
    // The error alone names a table ("no such table: worker_sessions"), not what to do.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_moked-worker"))
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("empty.db").display()),
        )
        .env("RUST_LOG", "off")
        .output()
        .expect("moked-worker");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no such table") && said.contains("run `moked-worker migrate` first"),
        "{said}"
    );
}

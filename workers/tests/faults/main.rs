//! Fault injection (issue #9, "Production readiness"): the real `moked-worker` binary, the real
//! intake, real Redis and Postgres servers and a fake Twilio, each made to fail the way
//! production fails, and every test asserts what was lost or duplicated (nothing).
//!
//! One module per scenario:
//! * [`sigkill`] — a worker SIGKILLed mid-drain of 5,000 WhatsApp sends, restarted under its
//!   name: one POST per message, orphans re-run within 30 s.
//! * [`redis_restart`] — our own redis-server (AOF, `appendfsync always`) killed and restarted
//!   under a steady stream of signed webhooks: fast 503s while down, recovery without a
//!   restart, every 2xx processed.
//! * [`postgres_restart`] — our own Postgres cluster crashed and restarted mid-drain: jobs
//!   retry, every row there once.
//! * [`twilio_faults`] — 429 storms with `Retry-After`, 5xx bursts, answers past the client
//!   timeout and connection resets over many messages: the right state, the right sends.
//! * [`sigterm`] — SIGTERM under load: in-flight jobs finish, the rest stay queued for the next
//!   worker, exit 0 within 30 s.
//! * [`sigterm_paced`] — SIGTERM while a send waits for its `WHATSAPP_RATE` slot, with a grace
//!   longer than the stale window and a second worker watching: every message sent once.
//!
//! Shared here: processes stopped by PID on drop ([`Proc`]), free ports, waiting on a condition
//! with a deadline ([`eventually`], from the test kit), a world of store + Redis queue
//! ([`World`], on the test kit's), the worker's environment ([`WorkerEnv`]) and bulk WhatsApp
//! requests. Set `MOKED_FAULTS_LOGS=DIR` to keep
//! the servers' and workers' logs in `DIR`.
//!
//! Servers of our own (redis-server, postgres) run on free ports in temp dirs; the shared
//! Redis (`MOKED_TEST_REDIS`) and Postgres (`MOKED_TEST_PG`) are only used through a fresh key
//! prefix or database, never stopped.

mod postgres_restart;
mod redis_restart;
mod sigkill;
mod sigterm;
mod sigterm_paced;
mod twilio_faults;

pub use moked_testkit::{eventually, fake_twilio};

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use moked_jobs::queue::{JobState, SharedQueue};
use moked_jobs::whatsapp::send_api::{SendRequest, SendSettings, request_send};
use moked_jobs::whatsapp::{Provider, WhatsAppSettings};
use moked_testkit::{RedisPrefix, Store};

use crate::fake_twilio::FakeTwilio;

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fault-test-token";
pub const SENDER: &str = "+14155238886";
pub const PUBLIC_HOST: &str = "https://moked.example.com";

// ---------------------------------------------------------------------------------------------
// Processes and waiting.

/// A child process stopped (SIGKILL) and reaped by PID when dropped, also when a test fails.
pub struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    /// Starts `cmd`; `what` names it in messages.
    pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Proc {
            child,
            what: what.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, `QUIT`, `KILL`) to this process only.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{signal} {} ({})", self.pid(), self.what);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit, at most `limit`; returns the status and how long it took.
    pub async fn exit_within(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "{} (pid {}) still runs after {limit:?}",
                self.what,
                self.pid()
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
    }
}

/// Where a process's output goes: a file in `MOKED_FAULTS_LOGS` when set, else nowhere.
pub fn log_to(name: &str) -> Stdio {
    match std::env::var_os("MOKED_FAULTS_LOGS") {
        Some(dir) => {
            let path = PathBuf::from(dir).join(format!("{name}.log"));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        }
        None => Stdio::null(),
    }
}

/// A TCP port nothing listens on right now (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------------------------------
// A world: the store, a Redis queue under a fresh prefix.

/// The store (Postgres) and the queue (Redis, a fresh prefix), as production runs them: a test
/// world ([`moked_testkit::World`], reached through `Deref`) and a queue on it.
pub struct World {
    base: moked_testkit::World,
    pub queue: SharedQueue,
}

moked_testkit::deref_to_world!(World, base);

impl World {
    /// A fresh database on the test Postgres and a fresh prefix on the test Redis.
    pub async fn new() -> World {
        World::on(Store::postgres().await, &moked_testkit::redis_url()).await
    }

    /// A world on `store` and a fresh prefix on the Redis at `redis_url`; its settings
    /// ([`moked_testkit::World::core`]) also carry [`PUBLIC_HOST`].
    pub async fn on(store: Store, redis_url: &str) -> World {
        let mut base = moked_testkit::World::on(store, Some(RedisPrefix::new(redis_url)));
        base.core.public_host = PUBLIC_HOST.into();
        let queue = base.queue().await;
        World { base, queue }
    }

    /// The environment of a `moked-worker run` on this world.
    pub fn worker_env(&self) -> WorkerEnv {
        let redis = self.redis().expect("a world with Redis");
        WorkerEnv::default()
            .set("DATABASE_URL", self.db_url())
            .set("REDIS_URL", redis.url())
            .set("QUEUE_PREFIX", redis.prefix())
    }

    pub async fn count(&self, state: JobState) -> u64 {
        self.queue.stats().await.expect("queue stats").count(state)
    }

    /// Queues one WhatsApp text per recipient through the send API (as the operator API
    /// does); returns our message ids.
    pub async fn request_sends(&self, to: &[String]) -> Vec<String> {
        let whatsapp = WhatsAppSettings::new(Provider::Twilio, Some(SENDER), false).unwrap();
        let settings = SendSettings::new(&whatsapp, &self.core);
        let settings = &settings;
        futures::stream::iter(to.iter().enumerate())
            .map(|(i, to)| async move {
                let req = SendRequest {
                    to: to.clone(),
                    body: Some(format!("שלום {i}")),
                    ..SendRequest::default()
                };
                request_send(&self.db, self.queue.as_ref(), req, settings)
                    .await
                    .expect("send accepted")
                    .message
                    .id
            })
            .buffered(32)
            .collect()
            .await
    }

    /// Our outbound messages, as stored.
    pub async fn outbound(&self) -> Vec<Outbound> {
        sqlx::query_as(
            "SELECT id, to_phone, provider_sid, status FROM whatsapp_message \
             WHERE direction = 'outbound'",
        )
        .fetch_all(self.db.pool())
        .await
        .expect("read messages")
    }

    /// How many of our outbound messages carry a provider sid.
    pub async fn sent_count(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM whatsapp_message \
             WHERE direction = 'outbound' AND provider_sid IS NOT NULL",
        )
        .fetch_one(self.db.pool())
        .await
        .expect("count sent messages")
    }
}

/// One stored outbound message ([`World::outbound`]).
#[derive(sqlx::FromRow)]
pub struct Outbound {
    /// Our id.
    pub id: String,
    /// The recipient, E.164.
    pub to_phone: String,
    /// Twilio's sid, once known.
    pub provider_sid: Option<String>,
    /// Its status.
    pub status: String,
}

/// `count` recipients, distinct per test run (`+97252` + 7 digits from `base`).
pub fn recipients(base: u32, count: u32) -> Vec<String> {
    (0..count)
        .map(|i| format!("+97252{:07}", base + i))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The worker binary.

/// The environment of one `moked-worker run` (nothing inherited but `PATH`).
#[derive(Clone)]
pub struct WorkerEnv {
    vars: Vec<(String, String)>,
}

impl Default for WorkerEnv {
    /// Fast liveness for tests (heartbeat 200 ms, dead after 1 s), logs at `warn`.
    fn default() -> Self {
        WorkerEnv { vars: Vec::new() }
            .set("PATH", &std::env::var("PATH").unwrap_or_default())
            .set("WORKER_HEARTBEAT", "200ms")
            .set("WORKER_STALE_AFTER", "1s")
            .set("RUST_LOG", "warn")
            .set("PUBLIC_HOST", PUBLIC_HOST)
    }
}

impl WorkerEnv {
    /// Sets `name` (a later value wins).
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends WhatsApp through `twilio`, unpaced.
    pub fn twilio(self, twilio: &FakeTwilio) -> Self {
        self.set("TWILIO_API_BASE", &twilio.url)
            .set("TWILIO_ACCOUNT_SID", ACCOUNT)
            .set("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .set("TWILIO_WHATSAPP_NUMBER", SENDER)
            .set("WHATSAPP_RATE", "off")
    }

    /// Starts `moked-worker run` as `WORKER_NAME=name`.
    pub fn spawn(&self, name: &str) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moked-worker"));
        cmd.arg("run")
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("WORKER_NAME", name)
            .stdout(Stdio::null())
            .stderr(log_to(name));
        Proc::spawn(&mut cmd, &format!("moked-worker {name}"))
    }
}

//! Redis killed and restarted under a steady stream of signed webhooks.
//!
//! Our own `redis-server` on a free port, persisted as docs/DEPLOY.md tells production
//! (`appendonly yes`, `appendfsync always`, in a temp dir); the real intake in-process with its
//! queue on it (store: a fresh Postgres database); 20 signed `incoming_call` webhooks a second,
//! each on its own connection timing. Redis is SIGKILLed mid-stream and started again on the
//! same port; a worker runs only after that, so every job it finds survived the kill on disk.
//!
//! Asserts: while Redis is down the intake answers 503 (never anything but 200/503) and no
//! request takes 10 s or more; it takes 2xx again on its own (no restart) soon after Redis is
//! back; every CallSid that got a 2xx — before the kill, around it, after it — ends up in the
//! store as a call, once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moked_intake::IntakeConfig;
use moked_intake::config::RateLimits;
use moked_jobs::queue::JobState;
use moked_testkit::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::{AUTH_TOKEN, PUBLIC_HOST, Proc, World, eventually, free_port, log_to};

/// A redis-server of this test's own, persisted with an fsync'd append-only file.
pub struct OwnRedis {
    dir: tempfile::TempDir,
    pub port: u16,
    proc: Option<Proc>,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let mut redis = OwnRedis {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            proc: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port and data dir; returns once it answers PONG (the AOF
    /// loaded).
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "already running");
        let dir: PathBuf = self.dir.path().to_owned();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .stdout(log_to("redis"))
            .stderr(log_to("redis"));
        self.proc = Some(Proc::spawn(&mut cmd, "redis-server"));
        let port = self.port;
        eventually(Duration::from_secs(20), "redis-server answers PONG", || {
            ping(port)
        })
        .await;
    }

    /// SIGKILL (no shutdown save: only what the AOF fsync'd survives).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

async fn ping(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").await.is_ok()
        && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// One webhook of the stream.
#[derive(Debug, Clone)]
struct Sent {
    call_sid: String,
    sent: Instant,
    /// The HTTP status, or 0 when no answer came (a transport error).
    status: u16,
    latency: Duration,
}

impl Sent {
    fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A steady stream of signed `incoming_call` webhooks, each request on its own task so a slow
/// answer does not slow the stream.
struct Stream {
    log: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<AtomicBool>,
    driver: JoinHandle<Vec<JoinHandle<()>>>,
}

impl Stream {
    /// Posts one webhook every `every` to the intake at `base` until [`Stream::finish`].
    fn start(base: &str, every: Duration) -> Stream {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let url = format!("{PUBLIC_HOST}/webhook/incoming_call");
        let target = format!("{base}/webhook/incoming_call");
        let (sink, stopped) = (log.clone(), stop.clone());
        let driver = tokio::spawn(async move {
            let mut requests = Vec::new();
            let mut tick = tokio::time::interval(every);
            let mut n = 0u32;
            while !stopped.load(Ordering::SeqCst) {
                tick.tick().await;
                n += 1;
                let call_sid = format!("CA{:032x}", u128::from(n) | (0xfa17u128 << 100));
                let form: Vec<(String, String)> = vec![
                    ("AccountSid".into(), crate::ACCOUNT.into()),
                    ("CallSid".into(), call_sid.clone()),
                    ("CallStatus".into(), "ringing".into()),
                    ("From".into(), format!("+97250{n:07}")),
                    ("To".into(), "+97231234567".into()),
                ];
                let signature = moked_jobs::signature::compute(AUTH_TOKEN, &url, &form);
                let (client, target, sink) = (client.clone(), target.clone(), sink.clone());
                requests.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let status = client
                        .post(&target)
                        .header("X-Twilio-Signature", signature)
                        .form(&form)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    sink.lock().unwrap().push(Sent {
                        call_sid,
                        sent,
                        status,
                        latency: sent.elapsed(),
                    });
                }));
            }
            requests
        });
        Stream { log, stop, driver }
    }

    /// How many answered webhooks match `pred`.
    fn count(&self, pred: impl Fn(&Sent) -> bool) -> usize {
        self.log.lock().unwrap().iter().filter(|s| pred(s)).count()
    }

    /// Stops sending, waits for every answer, returns them all.
    async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        for request in self.driver.await.unwrap() {
            request.await.unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_a_webhook_stream_gives_fast_503s_and_loses_no_accepted_webhook() {
    let mut redis = OwnRedis::start().await;
    let w = World::on(Store::postgres().await, &redis.url()).await;

    // The real intake, in-process, queue on our Redis.
    let mut core = w.core.clone();
    core.twilio.auth_token = Some(AUTH_TOKEN.to_owned().into());
    let static_dir = tempfile::tempdir().unwrap();
    let intake = IntakeConfig {
        limits: RateLimits::OFF,
        static_dir: static_dir.path().to_owned(),
        ..IntakeConfig::default()
    };
    let state = moked_intake::build_state(core, intake)
        .await
        .expect("intake state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_intake, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(moked_intake::run(listener, state, async move {
        let _ = stopped.await;
    }));

    let stream = Stream::start(&base, Duration::from_millis(50));

    eventually(Duration::from_secs(30), "50 webhooks accepted", || async {
        stream.count(|s| s.accepted()) >= 50
    })
    .await;
    redis.kill();
    let down_at = Instant::now();
    eventually(
        Duration::from_secs(30),
        "20 webhooks answered 503 while Redis is down",
        || async { stream.count(|s| s.status == 503 && s.sent > down_at) >= 20 },
    )
    .await;
    redis.restart().await;
    let up_at = Instant::now();
    let recovered = eventually(
        Duration::from_secs(30),
        "a webhook accepted again after Redis is back",
        || async { stream.count(|s| s.accepted() && s.sent > up_at) >= 1 },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "50 more webhooks accepted",
        || async { stream.count(|s| s.accepted() && s.sent > up_at) >= 50 },
    )
    .await;
    let sent = stream.finish().await;
    let _ = stop_intake.send(());
    let _ = server.await;

    let max_latency = sent.iter().map(|s| s.latency).max().unwrap();
    let max_503 = sent
        .iter()
        .filter(|s| s.status == 503)
        .map(|s| s.latency)
        .max()
        .unwrap();
    let others: Vec<&Sent> = sent
        .iter()
        .filter(|s| !s.accepted() && s.status != 503)
        .collect();
    assert!(others.is_empty(), "answers other than 2xx/503: {others:?}");
    assert!(
        max_latency < Duration::from_secs(10),
        "no webhook hangs 10 s (slowest {max_latency:?})"
    );
    let accepted: HashSet<String> = sent
        .iter()
        .filter(|s| s.accepted())
        .map(|s| s.call_sid.clone())
        .collect();
    let refused = sent.len() - accepted.len();

    // A worker only now: what was acknowledged before the kill came back from the AOF.
    let _worker = w.worker_env().spawn("fault.redis");
    let accepted_sids: Vec<String> = accepted.iter().cloned().collect();
    let stored = || async {
        let rows: Vec<String> = sqlx::query_scalar("SELECT call_sid FROM call")
            .fetch_all(w.db.pool())
            .await
            .unwrap();
        rows
    };
    eventually(
        Duration::from_secs(60),
        "every accepted webhook stored as a call",
        || async {
            let rows: HashSet<String> = stored().await.into_iter().collect();
            accepted_sids.iter().all(|sid| rows.contains(sid))
        },
    )
    .await;
    let rows = stored().await;
    let distinct: HashSet<&String> = rows.iter().collect();
    assert_eq!(rows.len(), distinct.len(), "each call stored once");
    // The test's own queue connection predates the restart: its first command may fail once
    // (broken pipe) before it reconnects.
    eventually(Duration::from_secs(10), "queue stats readable", || async {
        w.queue.stats().await.is_ok()
    })
    .await;
    assert_eq!(w.count(JobState::Dead).await, 0);
    eprintln!(
        "redis restart: {} webhooks, {} accepted (all stored), {refused} refused 503; slowest \
         answer {max_latency:?}, slowest 503 {max_503:?}; Redis down {:?}; first 2xx {recovered:?} \
         after Redis was back",
        sent.len(),
        accepted.len(),
        up_at - down_at
    );
}

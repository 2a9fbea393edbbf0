//! Slow and half-open connections against the real `moked` binary under `ulimit -n 1024`
//! (issue #14, item 7): 1,100 sockets that sent half a request head are held open while a
//! correctly signed webhook and `/api/health` are sent; both are answered within a few
//! seconds (Twilio gives up after 15 s), the process does not spin on `accept` errors (its
//! CPU time while the sockets are held stays low), its open files stay under the limit, and
//! every half-open socket is closed by the server once `HEADER_READ_TIMEOUT` has passed.
//!
//! Twice: with the default `MAX_CONNECTIONS` (the cap keeps the process under its file limit)
//! and with a cap above the file limit (so `accept` fails with EMFILE and the back-off and
//! shedding of idle connections are what keep it serving).
//!
//! The test process itself holds over 1,100 sockets: its soft open-file limit is raised to the
//! hard one with `prlimit` when it is lower than that.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::helpers::{PUBLIC_HOST, TOKEN, encode_form};

/// Sockets held open with half a request head.
const HALF_OPEN: usize = 1_100;
/// The server's header-read timeout in these tests. Long enough that opening the 1,100
/// sockets (up to ~4.2 s measured past the file limit, where accept backs off) plus the
/// webhook still ends before the first half-open socket can time out: the check below is
/// then about queueing behind timeouts, not about how fast the test connects.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/api/health` may take while the sockets are held.
const HEALTH_WITHIN: Duration = Duration::from_secs(5);
/// The open-file limit the server runs under.
const SERVER_NOFILE: u32 = 1_024;

/// Raises this process's soft open-file limit when it cannot hold the test's sockets.
fn ensure_own_file_limit(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open-file limit line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let soft: u64 = fields[3].parse().unwrap_or(u64::MAX);
    let hard: u64 = fields[4].parse().unwrap_or(u64::MAX);
    if soft >= needed {
        return;
    }
    assert!(
        hard >= needed,
        "this test holds {needed} sockets but the hard open-file limit is {hard}"
    );
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:"))
        .status()
        .expect("run prlimit (util-linux) to raise the soft open-file limit");
    assert!(status.success(), "prlimit failed");
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A running `moked` under `ulimit -n 1024`, and where it listens.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    _dir: tempfile::TempDir,
}

async fn start_moked(max_connections: usize) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let never = "0 0 0 1 1 *";
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {SERVER_NOFILE} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_moked"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("moked.db").display()),
        )
        .env("PUBLIC_HOST", PUBLIC_HOST)
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .env("TWILIO_API_BASE", "http://127.0.0.1:9")
        .env("SCHEDULE_RECONCILE", never)
        .env("SCHEDULE_HEALTH", never)
        .env("SCHEDULE_CLEANUP", never)
        .env(
            "HEADER_READ_TIMEOUT",
            format!("{}s", HEADER_TIMEOUT.as_secs()),
        )
        .env("MAX_CONNECTIONS", max_connections.to_string())
        // The accept loop's errors only (the clock's catch-up health check warns too).
        .env("RUST_LOG", "error,moked_workers=off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start moked");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("moked listening on http://0.0.0.0:") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .expect("port");
            }
        }
        panic!("moked exited before listening");
    })
    .await
    .expect("moked listens within 60 s");
    // Keep reading stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        pid,
        port,
        _dir: dir,
    }
}

/// A signed call-status webhook, answered within 15 s (or the test fails).
async fn signed_webhook(client: &reqwest::Client, port: u16) -> (u16, Duration) {
    let path = "/webhook/call_status";
    let params = vec![
        ("CallSid".to_owned(), "CA0123456789abcdef".to_owned()),
        ("CallStatus".to_owned(), "completed".to_owned()),
    ];
    let signature = moked_jobs::signature::compute(TOKEN, &format!("{PUBLIC_HOST}{path}"), &params);
    let started = Instant::now();
    let resp = client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("X-Twilio-Signature", signature)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode_form(&params))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("the signed webhook is answered within Twilio's 15 s");
    (resp.status().as_u16(), started.elapsed())
}

async fn half_open_sockets_neither_starve_webhooks_nor_spin_the_accept_loop(
    max_connections: usize,
) {
    ensure_own_file_limit(HALF_OPEN as u64 + 500);
    let mut server = start_moked(max_connections).await;
    let addr = format!("127.0.0.1:{}", server.port);
    let mut held = Vec::with_capacity(HALF_OPEN);
    let first_connect = Instant::now();
    for _ in 0..HALF_OPEN {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"POST /webhook/call_status HTTP/1.1\r\nHost: moked.test\r\nContent-Ty")
            .await
            .expect("half a head");
        held.push(s);
    }
    let connected_in = first_connect.elapsed();
    let cpu_before = cpu_ticks(server.pid);
    let holding_since = Instant::now();

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let (status, took) = signed_webhook(&client, server.port).await;
    assert_eq!(status, 204, "signed webhook");
    // Answered before the first half-open sockets timed out: it did not queue behind them.
    assert!(
        first_connect.elapsed() < HEADER_TIMEOUT,
        "the webhook was answered {:?} after the first half-open socket connected ({took:?} \
         after it was sent): it waited for half-open sockets to time out",
        first_connect.elapsed()
    );
    let started = Instant::now();
    let health = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://127.0.0.1:{}/api/health", server.port))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("/api/health is answered within 15 s");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < HEALTH_WITHIN, "{:?}", started.elapsed());
    let files = open_files(server.pid);
    assert!(
        files < SERVER_NOFILE as usize,
        "{files} open files under a limit of {SERVER_NOFILE}"
    );

    // Every half-open socket is closed by the server (EOF or reset), the last ones once the
    // header timeout has passed.
    let mut closing = JoinSet::new();
    for mut s in held {
        closing.spawn(async move {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
    }
    let deadline = HEADER_TIMEOUT + Duration::from_secs(10);
    let all_closed = tokio::time::timeout(deadline, async {
        while closing.join_next().await.is_some() {}
    })
    .await;
    assert!(
        all_closed.is_ok(),
        "{} of {HALF_OPEN} half-open sockets still open {deadline:?} later",
        closing.len()
    );
    let held_for = holding_since.elapsed();
    let cpu = Duration::from_millis((cpu_ticks(server.pid) - cpu_before) * 10);
    // A loop spinning on accept errors burns a whole core; serving and closing 1,100 sockets
    // takes a small fraction of one.
    assert!(
        cpu.as_secs_f64() < held_for.as_secs_f64() * 0.3,
        "moked used {cpu:?} of CPU in {held_for:?} while the sockets were held"
    );
    eprintln!(
        "max_connections={max_connections}: {HALF_OPEN} sockets connected in {connected_in:?}, \
         webhook answered in {took:?}, {files} open files, {cpu:?} CPU in {held_for:?} of holding"
    );
    // Still serving.
    let (status, _) = signed_webhook(&client, server.port).await;
    assert_eq!(status, 204);
    server.child.start_kill().expect("stop moked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sockets_under_the_default_connection_cap_are_timed_out_and_do_not_starve_webhooks()
 {
    half_open_sockets_neither_starve_webhooks_nor_spin_the_accept_loop(
        moked_intake::config::DEFAULT_MAX_CONNECTIONS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sockets_past_the_file_limit_do_not_spin_the_accept_loop_or_starve_webhooks() {
    half_open_sockets_neither_starve_webhooks_nor_spin_the_accept_loop(5_000).await;
}

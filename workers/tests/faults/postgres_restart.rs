//! Postgres crashed and restarted while a worker drains jobs that write to the store.
//!
//! Our own cluster (initdb into a temp dir, trust auth, a free port; as root it runs as the
//! `postgres` user), the queue on the test Redis (a fresh prefix), 2,000 `call.started` jobs and
//! the real `moked-worker run`. A quarter in, the postmaster gets SIGQUIT (immediate shutdown:
//! every backend killed, crash recovery on the next start); once the worker has seen the outage
//! (jobs retrying), the cluster is started again on the same port.
//!
//! Asserts: the jobs that failed during the outage retry and finish, none is dead or left
//! queued/running, and the store holds one call row per CallSid (2,000 rows, 2,000 distinct).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use moked_jobs::kinds::CallStarted;
use moked_jobs::queue::{JobState, NewJob};
use moked_testkit::Store;
use sqlx::Connection;

use crate::{Proc, World, eventually, free_port, log_to};

const JOBS: u64 = 2_000;

/// A Postgres cluster of this test's own.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The `postgres` user's uid and gid when we are root (Postgres refuses to run as root).
    user: Option<(u32, u32)>,
    proc: Option<Proc>,
}

/// The newest `/usr/lib/postgresql/*/bin` (or `MOKED_PG_BIN`).
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("MOKED_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres binaries under /usr/lib/postgresql")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql")
        .1
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {args:?}"))
}

impl OwnPostgres {
    /// initdb, then start.
    pub async fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let user = (id(&["-u"]) == 0).then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])));
        if user.is_some() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster dir to postgres");
        }
        let mut pg = OwnPostgres {
            dir,
            bin: pg_bin(),
            port: free_port(),
            user,
            proc: None,
        };
        let mut initdb = pg.command("initdb");
        initdb
            .arg("-D")
            .arg(pg.data())
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .stdout(log_to("postgres"))
            .stderr(log_to("postgres"));
        let status = Proc::spawn(&mut initdb, "initdb")
            .exit_within(Duration::from_secs(120))
            .await
            .0;
        assert!(status.success(), "initdb: {status:?}");
        pg.restart().await;
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd.env_clear().env("LC_ALL", "C");
        cmd
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the postmaster; returns once it accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.proc.is_none(), "already running");
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.socket_dir()),
            ])
            .args(["-c", "max_connections=50"])
            .stdout(log_to("postgres"))
            .stderr(log_to("postgres"));
        self.proc = Some(Proc::spawn(&mut cmd, "postgres"));
        let url = self.url();
        eventually(
            Duration::from_secs(60),
            "postgres accepts connections",
            || async {
                match sqlx::PgConnection::connect(&url).await {
                    Ok(c) => c.close().await.is_ok(),
                    Err(_) => false,
                }
            },
        )
        .await;
    }

    fn socket_dir(&self) -> String {
        Path::new(self.dir.path()).display().to_string()
    }

    /// Immediate shutdown (SIGQUIT): backends killed without a checkpoint, like a crash.
    pub async fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("QUIT");
            p.exit_within(Duration::from_secs(30)).await;
        }
    }

    /// Fast shutdown (SIGINT).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("INT");
            p.exit_within(Duration::from_secs(30)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_mid_drain_retries_jobs_and_loses_no_row() {
    let mut pg = OwnPostgres::start().await;
    let store = Store::at(&pg.url()).await;
    let w = World::on(store, &moked_testkit::redis_url()).await;
    futures::stream::iter(0..JOBS)
        .for_each_concurrent(32, |i| {
            let queue = w.queue.clone();
            async move {
                let job = CallStarted {
                    call_sid: format!("CA{i:032x}"),
                    from: format!("+97250{i:07}"),
                    to: "+97231234567".into(),
                    status: Some("ringing".into()),
                    received_at: chrono::Utc::now(),
                };
                queue.enqueue(NewJob::new(&job)).await.unwrap();
            }
        })
        .await;

    let env = w.worker_env().set("WORKER_CONCURRENCY", "16").set(
        "RETRY_SCHEDULE_CALL_STARTED",
        // Full jitter: a retry may come at once, so enough of them to outlast a slow
        // restart on a loaded machine (about 35 s on average).
        "200ms,500ms,1s,2s,3s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s",
    );
    let _worker = env.spawn("fault.postgres");
    eventually(
        Duration::from_secs(60),
        "a quarter of the jobs done",
        || async { w.count(JobState::Done).await >= JOBS / 4 },
    )
    .await;
    pg.crash().await;
    let down_at = Instant::now();
    let done_at_crash = w.count(JobState::Done).await;
    assert!(done_at_crash < JOBS, "crashed mid-drain");
    let seen = eventually(
        Duration::from_secs(30),
        "the worker sees the outage (jobs retrying)",
        || async { w.count(JobState::Retrying).await >= 1 },
    )
    .await;
    let retrying_at_restart = w.count(JobState::Retrying).await;
    pg.restart().await;
    let down_for = down_at.elapsed();
    let drained = eventually(Duration::from_secs(90), "every job done", || async {
        w.count(JobState::Done).await == JOBS
    })
    .await;

    let stats = w.queue.stats().await.unwrap();
    for state in [
        JobState::Dead,
        JobState::Running,
        JobState::Queued,
        JobState::Retrying,
    ] {
        assert_eq!(stats.count(state), 0, "{state:?}: {stats:?}");
    }
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT call_sid) FROM call")
            .fetch_one(w.db.pool())
            .await
            .unwrap();
    assert_eq!((rows, distinct), (JOBS as i64, JOBS as i64));
    eprintln!(
        "postgres restart: {JOBS} jobs, {done_at_crash} done at the crash, {retrying_at_restart} \
         retrying when it came back, outage seen {seen:?} after the crash, down {down_for:?} in all, all done {drained:?} after the restart; \
         {rows} rows, {distinct} distinct"
    );
    w.db.close().await;
    pg.stop().await;
}

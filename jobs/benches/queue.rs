//! Queue benchmarks (not tests): drain throughput, a large due backlog, idle pickup latency.
//!
//! ```text
//! cargo bench -p moked-jobs --bench queue -- drain   [--jobs 50000] [--concurrency 50] [--runners 1]
//! cargo bench -p moked-jobs --bench queue -- backlog [--jobs 300000]
//! cargo bench -p moked-jobs --bench queue -- pickup  [--samples 200] [--gap-ms 50]
//! cargo bench -p moked-jobs --bench queue -- raw     [--jobs 50000]   # backend without the runner
//! ```
//! Environment: `REDIS_URL` (default redis://127.0.0.1:6391/0, the bench harness's Redis) or
//! `DATABASE_URL` (sqlite:// or postgres://) to bench the database backend instead.
//! Each prints one `RESULT key=value …` line, the format `bench/queue.sh` and
//! `bench/report.py` read. Jobs are no-op `call.status` jobs, as in the BullMQ drain (`drain.js`) they are
//! compared with. Redis CPU is read from `INFO cpu` around the drain.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use moked_jobs::kinds::CallStatus;
use moked_jobs::queue::database::DbQueue;
use moked_jobs::queue::redis::RedisQueue;
use moked_jobs::queue::{JobState, NewJob, SharedQueue};
use moked_jobs::runner::{Runner, RunnerConfig, handler};
use moked_jobs::store::Db;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn job(i: u64) -> NewJob {
    NewJob::new(&CallStatus {
        call_sid: format!("CA{i:032x}"),
        status: "completed".into(),
        from: None,
        to: None,
        duration_s: None,
        sequence: None,
        received_at: "2026-01-01T00:00:00Z".parse().expect("a time"),
    })
}

struct Target {
    queue: SharedQueue,
    redis: Option<redis::Client>,
    name: String,
    cleanup: Option<RedisQueue>,
}

async fn target() -> Target {
    if let Ok(db_url) = std::env::var("DATABASE_URL") {
        let db = Db::connect(&db_url).await.expect("database");
        db.migrate().await.expect("migrate");
        let q = DbQueue::new(db).await.expect("db queue");
        return Target {
            name: q_name(&db_url),
            queue: Arc::new(q),
            redis: None,
            cleanup: None,
        };
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6391/0".into());
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let q = RedisQueue::connect(&url, &prefix)
        .await
        .expect("redis queue");
    Target {
        name: "redis".into(),
        queue: Arc::new(q.clone()),
        redis: Some(redis::Client::open(url).expect("redis url")),
        cleanup: Some(q),
    }
}

fn q_name(url: &str) -> String {
    url.split(':').next().unwrap_or("db").to_owned()
}

async fn redis_cpu(t: &Target) -> f64 {
    let Some(client) = &t.redis else { return 0.0 };
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// Enqueues `n` jobs with 64 enqueues in flight; returns seconds taken.
async fn fill(q: &SharedQueue, n: u64, run_at: Option<chrono::DateTime<Utc>>) -> f64 {
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (q, next) = (q.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let mut j = job(i);
                if let Some(at) = run_at {
                    j = j.run_at(at);
                }
                q.enqueue(j).await.expect("enqueue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("filler");
    }
    t.elapsed().as_secs_f64()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ut: f64 = after.get(11)?.parse().ok()?;
            let st: f64 = after.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

async fn drain(t: &Target, n: u64, concurrency: usize) -> String {
    let stats = t.queue.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Done), 0);
    let rc0 = redis_cpu(t).await;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let config = RunnerConfig {
        concurrency,
        ..RunnerConfig::default()
    };
    // Timed like BullMQ's drain.js: until the n-th job has completed (the runner's drain
    // helper would add the idle wait by which it learns that the queue is empty).
    let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (all_tx, all_rx) = tokio::sync::watch::channel(false);

    let runners = arg("--runners", 1).max(1);
    let mut handles = Vec::new();
    for r in 0..runners {
        let (handled, all_tx) = (handled.clone(), all_tx.clone());
        let runner = Runner::new(
            t.queue.clone(),
            &format!("bench-{r}"),
            RunnerConfig {
                concurrency: concurrency / runners as usize,
                ..config.clone()
            },
            handler(move |_l| {
                if handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == n {
                    let _ = all_tx.send(true);
                }
                async { Ok(()) }
            }),
        );
        let mut stop = all_rx.clone();
        handles.push(tokio::spawn(runner.run(async move {
            let _ = stop.wait_for(|all| *all).await;
        })));
    }
    // Then wait until every job is acknowledged (done in the queue), as BullMQ counts
    // `completed`, checking every millisecond. The runners' own shutdown is not timed: a
    // fetch blocked on the then empty queue ends only at its wait limit.
    let mut all = all_rx.clone();
    let _ = all.wait_for(|all| *all).await;
    while t.queue.stats().await.expect("stats").count(JobState::Done) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rc = redis_cpu(t).await - rc0;
    let mut summary = moked_jobs::runner::RunSummary::default();
    for h in handles {
        summary.done += h.await.expect("runner task").expect("run").done;
    }
    let done = t.queue.stats().await.expect("stats").count(JobState::Done);
    format!(
        "jobs={n} done={done} concurrency={concurrency} drain_s={secs:.3} jobs_per_s={:.1} worker_cpu_s={cpu:.2} cpu_ms_per_job={:.4} redis_cpu_s={rc:.2} redis_cpu_us_per_job={:.1} completed={}",
        n as f64 / secs,
        1000.0 * cpu / n as f64,
        1e6 * rc / n as f64,
        summary.done
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn pickup(t: &Target, samples: u64, gap: Duration) -> String {
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; samples as usize]));
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let h = {
        let (sent, lat) = (sent.clone(), lat.clone());
        handler(move |claim| {
            let (sent, lat) = (sent.clone(), lat.clone());
            async move {
                let now = Instant::now();
                let p: CallStatus =
                    moked_jobs::kinds::decode(&claim.lease.payload).expect("payload");
                let i = usize::from_str_radix(&p.call_sid[2..], 16).expect("index");
                if let Some(at) = sent.lock().expect("lock")[i] {
                    lat.lock()
                        .expect("lock")
                        .push(now.duration_since(at).as_secs_f64() * 1000.0);
                }
                Ok(())
            }
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(
        Runner::new(t.queue.clone(), "bench", RunnerConfig::default(), h).run(async move {
            let _ = stop_rx.await;
        }),
    );
    // Let the worker reach its idle wait first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tick = tokio::time::interval(gap);
    for i in 0..samples {
        tick.tick().await;
        sent.lock().expect("lock")[i as usize] = Some(Instant::now());
        t.queue.enqueue(job(i)).await.expect("enqueue");
    }
    while (lat.lock().expect("lock").len() as u64) < samples {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    runner.await.expect("runner").expect("run");
    let mut l = lat.lock().expect("lock").clone();
    l.sort_by(f64::total_cmp);
    format!(
        "samples={samples} gap_ms={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        gap.as_millis(),
        percentile(&l, 0.5),
        percentile(&l, 0.9),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(0.0)
    )
}

#[tokio::main]
async fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| ["drain", "backlog", "pickup", "raw"].contains(&a.as_str()))
        .unwrap_or_else(|| "drain".into());
    let t = target().await;
    let line = match mode.as_str() {
        "drain" => {
            let n = arg("--jobs", 50_000);
            let fill_s = fill(&t.queue, n, None).await;
            format!(
                "mode=drain backend={} fill_s={fill_s:.3} {}",
                t.name,
                drain(&t, n, arg("--concurrency", 50) as usize).await
            )
        }
        "raw" => {
            let n = arg("--jobs", 50_000);
            fill(&t.queue, n, None).await;
            raw(&t, n).await
        }
        "backlog" => {
            // Every job is scheduled a moment ahead, so all of them sit in the delayed set and
            // become due together: the promotion path apalis-redis wedged on.
            let n = arg("--jobs", 300_000);
            let at = Utc::now() + chrono::Duration::seconds(1);
            let fill_s = fill(&t.queue, n, Some(at)).await;
            while Utc::now() < at {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            format!(
                "mode=backlog backend={} fill_s={fill_s:.3} {}",
                t.name,
                drain(&t, n, arg("--concurrency", 50) as usize).await
            )
        }
        _ => format!(
            "mode=pickup backend={} {}",
            t.name,
            pickup(
                &t,
                arg("--samples", 200),
                Duration::from_millis(arg("--gap-ms", 50))
            )
            .await
        ),
    };
    println!("RESULT {line}");
    if let Some(q) = t.cleanup {
        q.delete_all().await.expect("cleanup");
    }
}

/// The backend's own ceiling, without the runner: fetch 50 at a time, acknowledge each job
/// concurrently (at most 50 outstanding); reports batches and fetch round-trip time.
async fn raw(t: &Target, n: u64) -> String {
    let w = moked_jobs::queue::WorkerId::new("raw");
    t.queue.heartbeat(&w).await.expect("hb");
    let start = Instant::now();
    let (mut fetches, mut got, mut fetch_time) = (0u64, 0u64, Duration::ZERO);
    let mut acks = tokio::task::JoinSet::new();
    while got < n {
        let f = Instant::now();
        let leases = t.queue.fetch(&w, 50, Duration::ZERO).await.expect("fetch");
        fetch_time += f.elapsed();
        fetches += 1;
        got += leases.len() as u64;
        for l in leases {
            let (q, w) = (t.queue.clone(), w.clone());
            acks.spawn(async move { q.complete(&w, &l.id).await.expect("ack") });
        }
        while acks.len() > 50 {
            acks.join_next().await;
        }
    }
    while acks.join_next().await.is_some() {}
    format!(
        "raw jobs={got} fetches={fetches} avg_batch={:.1} avg_fetch_ms={:.3} jobs_per_s={:.0}",
        got as f64 / fetches as f64,
        fetch_time.as_secs_f64() * 1000.0 / fetches as f64,
        got as f64 / start.elapsed().as_secs_f64()
    )
}

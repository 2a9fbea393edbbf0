//! The database backend's own tests (beyond the shared conformance suite): the SQL invariants
//! that need two processes, many concurrent callers, corrupt rows or more than one batch. Each
//! case runs on SQLite (a temp file) and Postgres (a fresh database), as `sqlite::…` and
//! `postgres::…`. A second `DbQueue` on its own pool stands in for a second process.

#[path = "suite/faulty.rs"]
mod faulty;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use moked_jobs::kinds::{JobKind, WhatsAppSend};
use moked_jobs::queue::database::DbQueue;
use moked_jobs::queue::{JobState, ListQuery, NewJob, Queue, QueueError, WorkerId};
use moked_jobs::store::{Db, now_ms};
use moked_testkit::Store;
use tokio::sync::Mutex;

fn send_job(n: usize) -> NewJob {
    NewJob::new(&WhatsAppSend {
        message_id: format!("m{n}"),
    })
}

async fn queue(t: &Store) -> DbQueue {
    DbQueue::new(t.db.clone()).await.expect("queue")
}

/// Another process on the same database: its own pool, its own wake-ups.
async fn other_process(t: &Store) -> DbQueue {
    let db = Db::connect(&t.url).await.expect("second pool");
    DbQueue::new(db).await.expect("second queue")
}

/// Runs `sql` against the test database (tests reach behind the queue to age or corrupt rows).
async fn exec(t: &Store, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(t.db.pool())
        .await
        .expect("test SQL");
}

/// Waits (on the queue's own signal, never on a timer) until a fetch of `q` is blocked.
async fn until_a_fetch_waits(q: &DbQueue) {
    let mut idle = q.idle_fetchers();
    tokio::time::timeout(Duration::from_secs(5), idle.wait_for(|n| *n > 0))
        .await
        .expect("a fetch became idle within 5 s")
        .expect("queue alive");
}

async fn concurrent_fetchers_on_two_processes_claim_every_job_exactly_once(t: &Store) {
    let (a, b) = (queue(t).await, other_process(t).await);
    let n = 500;
    join_all((0..10).map(|chunk| {
        let q = if chunk % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            for i in (chunk * n / 10)..((chunk + 1) * n / 10) {
                q.enqueue(send_job(i)).await.expect("enqueue");
            }
        }
    }))
    .await;

    let claimed = Arc::new(Mutex::new(Vec::<String>::new()));
    let fetchers = (0..8).map(|f| {
        let q = if f % 2 == 0 { a.clone() } else { b.clone() };
        let claimed = claimed.clone();
        tokio::spawn(async move {
            let w = WorkerId::new(format!("w{f}"));
            q.heartbeat(&w).await.expect("heartbeat");
            // Nothing ever goes back to the queue, so an empty fetch means all are claimed.
            loop {
                let leases = q.fetch(&w, 7, Duration::ZERO).await.expect("fetch");
                if leases.is_empty() {
                    return;
                }
                for lease in leases {
                    assert_eq!(lease.attempts, 1, "a first claim counts one attempt");
                    q.complete(&w, &lease.id).await.expect("complete");
                    claimed.lock().await.push(lease.id);
                }
            }
        })
    });
    for fetcher in join_all(fetchers).await {
        fetcher.expect("fetcher did not panic");
    }
    let claimed = claimed.lock().await;
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(
        (claimed.len(), unique.len()),
        (n, n),
        "every job claimed exactly once"
    );
    assert_eq!(
        a.stats().await.expect("stats").count(JobState::Done),
        n as u64
    );
}

async fn concurrent_enqueues_of_one_dedupe_key_create_exactly_one_job(t: &Store) {
    let (a, b) = (queue(t).await, other_process(t).await);
    let ttl = Duration::from_secs(3600);
    let results = join_all((0..16).map(|i| {
        let q = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            q.enqueue(send_job(i).dedupe("RecordingSid:RE1", ttl))
                .await
                .expect("enqueue")
        }
    }))
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.is_created()).collect();
    assert_eq!(created.len(), 1, "one creator: {results:?}");
    assert!(
        results.iter().all(|r| r.id() == created[0].id()),
        "all see the first id"
    );
    assert_eq!(a.stats().await.expect("stats").count(JobState::Queued), 1);
}

async fn an_expired_dedupe_key_is_taken_over_and_then_holds(t: &Store) {
    let q = queue(t).await;
    let old = q
        .enqueue(send_job(1).dedupe("k", Duration::ZERO))
        .await
        .expect("enqueue");
    let new = q
        .enqueue(send_job(2).dedupe("k", Duration::from_secs(60)))
        .await
        .expect("enqueue");
    let again = q
        .enqueue(send_job(3).dedupe("k", Duration::from_secs(60)))
        .await
        .expect("enqueue");
    assert!(old.is_created() && new.is_created());
    assert_ne!(old.id(), new.id());
    assert!(!again.is_created());
    assert_eq!(
        again.id(),
        new.id(),
        "the key now points at the job that took it over"
    );
}

/// A fetch blocked on `fetcher` gets the job `enqueuer` then enqueues, within 250 ms.
async fn an_enqueue_wakes_a_blocked_fetch_within_250ms(fetcher: &DbQueue, enqueuer: &DbQueue) {
    let w = WorkerId::new("w");
    let fetch = tokio::spawn({
        let (q, w) = (fetcher.clone(), w.clone());
        async move {
            let leases = q.fetch(&w, 1, Duration::from_secs(5)).await.expect("fetch");
            (leases, Instant::now())
        }
    });
    until_a_fetch_waits(fetcher).await;
    let enqueued_at = Instant::now();
    let job = enqueuer.enqueue(send_job(1)).await.expect("enqueue");
    let (leases, woke_at) = fetch.await.expect("fetch task");
    let latency = woke_at.duration_since(enqueued_at);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].id, job.id());
    assert!(
        latency < Duration::from_millis(250),
        "pickup took {latency:?}"
    );
}

async fn a_blocking_fetch_wakes_on_an_enqueue_from_the_same_queue_well_under_250ms(t: &Store) {
    let q = queue(t).await;
    an_enqueue_wakes_a_blocked_fetch_within_250ms(&q, &q).await;
}

async fn a_blocking_fetch_wakes_on_an_enqueue_from_another_process_under_250ms(t: &Store) {
    let (worker_side, intake_side) = (queue(t).await, other_process(t).await);
    an_enqueue_wakes_a_blocked_fetch_within_250ms(&worker_side, &intake_side).await;
}

async fn a_blocking_fetch_wakes_when_a_delayed_job_becomes_due(t: &Store) {
    let q = queue(t).await;
    let w = WorkerId::new("w");
    let due = Utc::now() + chrono::Duration::milliseconds(300);
    q.enqueue(send_job(1).run_at(due)).await.expect("enqueue");
    let leases = q.fetch(&w, 1, Duration::from_secs(5)).await.expect("fetch");
    let late = Utc::now() - due;
    assert_eq!(leases.len(), 1);
    assert!(late >= chrono::Duration::zero(), "not before it was due");
    assert!(late < chrono::Duration::milliseconds(250), "{late:?} late");
}

async fn a_blocking_fetch_on_an_empty_queue_returns_nothing_after_its_wait(t: &Store) {
    let q = queue(t).await;
    let started = Instant::now();
    let leases = q
        .fetch(&WorkerId::new("w"), 5, Duration::from_millis(300))
        .await
        .expect("fetch");
    let took = started.elapsed();
    assert!(leases.is_empty());
    assert!(
        took >= Duration::from_millis(300),
        "waited the full wait: {took:?}"
    );
    assert!(
        took < Duration::from_millis(300 + 250),
        "and not much longer: {took:?}"
    );
}

async fn a_fetch_dropped_mid_claim_leaves_no_job_stranded(t: &Store) {
    let q = queue(t).await;
    for n in 0..5 {
        q.enqueue(send_job(n)).await.expect("enqueue");
    }
    // Polled once (the claim is under way on its own task), then dropped: a worker whose
    // shutdown signal won the race against its fetch.
    // On a loaded machine the claim can finish on another thread before that single poll
    // returns; then the fetch was not cut off: hand the jobs back and try again.
    let cancelled = WorkerId::new("stopping");
    let mut cut_off = false;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::ZERO, q.fetch(&cancelled, 5, Duration::ZERO)).await {
            Err(_) => {
                cut_off = true;
                break;
            }
            Ok(leases) => {
                for l in leases.expect("fetch") {
                    q.release(&cancelled, &l.id).await.expect("release");
                }
            }
        }
    }
    assert!(cut_off, "a fetch was cut off mid-claim");
    let w = WorkerId::new("w");
    let mut got = Vec::new();
    while got.len() < 5 {
        let leases = q.fetch(&w, 5, Duration::from_secs(5)).await.expect("fetch");
        assert!(!leases.is_empty(), "jobs came back within 5 s");
        got.extend(leases);
    }
    assert!(
        got.iter().all(|l| l.attempts == 1),
        "the cut-off claim is not counted"
    );
}

async fn recovery_requeues_only_the_jobs_of_a_silent_session_and_says_why(t: &Store) {
    let q = queue(t).await;
    let (silent, live) = (WorkerId::new("worker.1"), WorkerId::new("worker.2"));
    for w in [&silent, &live] {
        q.heartbeat(w).await.expect("heartbeat");
    }
    for n in 0..3 {
        q.enqueue(send_job(n)).await.expect("enqueue");
    }
    let lost = q.fetch(&silent, 2, Duration::ZERO).await.expect("fetch");
    let kept = q.fetch(&live, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!((lost.len(), kept.len()), (2, 1));
    // worker.1 last heartbeated a minute ago.
    exec(
        t,
        &format!(
            "UPDATE worker_sessions SET heartbeat_at = {} WHERE session = '{}'",
            now_ms() - 60_000,
            silent.session
        ),
    )
    .await;

    assert_eq!(
        q.recover_abandoned(Duration::from_secs(30))
            .await
            .expect("recover"),
        2
    );
    for lease in &lost {
        let d = q.get(&lease.id).await.expect("get").expect("job");
        assert_eq!(d.summary.state, JobState::Queued);
        assert_eq!(d.worker, None);
        let note = "abandoned by worker worker.1 (no heartbeat for 60s)";
        assert_eq!(d.history.len(), 1);
        assert_eq!(d.history[0].error, note);
        assert_eq!(d.history[0].worker, "worker.1");
        assert_eq!(d.summary.last_error.as_deref(), Some(note));
    }
    let d = q.get(&kept[0].id).await.expect("get").expect("job");
    assert_eq!(d.summary.state, JobState::Running);
    assert_eq!(d.worker.as_deref(), Some(live.session.as_str()));
    // Recovery is idempotent, and the silent session's late acks change nothing.
    assert_eq!(
        q.recover_abandoned(Duration::from_secs(30))
            .await
            .expect("recover"),
        0
    );
    q.complete(&silent, &lost[0].id)
        .await
        .expect("late complete");
    q.bury(&silent, &lost[1].id, "late")
        .await
        .expect("late bury");
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.count(JobState::Queued), s.count(JobState::Running)),
        (2, 1)
    );
}

async fn a_job_of_a_worker_that_died_before_its_first_heartbeat_is_recovered(t: &Store) {
    let q = queue(t).await;
    let w = WorkerId::new("worker.3");
    let job = q.enqueue(send_job(1)).await.expect("enqueue");
    assert_eq!(
        q.fetch(&w, 1, Duration::ZERO).await.expect("fetch").len(),
        1
    );
    assert_eq!(
        q.recover_abandoned(Duration::from_secs(30))
            .await
            .expect("recover"),
        0,
        "a fresh claim is not abandoned yet"
    );
    exec(
        t,
        &format!(
            "UPDATE jobs SET started_at = {} WHERE id = '{}'",
            now_ms() - 45_000,
            job.id()
        ),
    )
    .await;
    assert_eq!(
        q.recover_abandoned(Duration::from_secs(30))
            .await
            .expect("recover"),
        1
    );
    let d = q.get(job.id()).await.expect("get").expect("job");
    assert_eq!(d.summary.state, JobState::Queued);
    assert_eq!(
        d.history[0].error,
        "abandoned by worker worker.3 (no heartbeat for 45s)"
    );
}

/// Another process on a host whose clock is `skew` off.
async fn host_with_clock_skew(t: &Store, skew: chrono::TimeDelta) -> DbQueue {
    let db = Db::connect(&t.url).await.expect("second pool");
    DbQueue::with_host_clock_skew(db, skew)
        .await
        .expect("skewed queue")
}

/// Heartbeats, enqueues and claims one job on `q` for a new session of `name`.
async fn running_job(q: &DbQueue, name: &str) -> (WorkerId, String) {
    let w = WorkerId::new(name);
    q.heartbeat(&w).await.expect("heartbeat");
    let job = q.enqueue(send_job(1)).await.expect("enqueue");
    let leases = q.fetch(&w, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), [job.id()]);
    (w, job.id().to_owned())
}

fn ids(leases: &[moked_jobs::queue::Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.id.as_str()).collect()
}

async fn hosts_with_skewed_clocks_agree_on_which_sessions_are_alive(t: &Store) {
    // A minute of skew, three times the stale window.
    let stale = Duration::from_secs(20);
    let right = queue(t).await;
    let behind = host_with_clock_skew(t, chrono::TimeDelta::seconds(-60)).await;
    let ahead = host_with_clock_skew(t, chrono::TimeDelta::seconds(60)).await;
    let (_, slow_job) = running_job(&behind, "slow-clock").await;
    let (_, right_job) = running_job(&right, "right-clock").await;

    // Live sessions stay theirs, whichever host looks: a host whose clock is right must not
    // take the jobs of one whose clock is behind, nor a host whose clock is ahead those of one
    // whose clock is right.
    assert_eq!(right.recover_abandoned(stale).await.expect("recover"), 0);
    assert_eq!(ahead.recover_abandoned(stale).await.expect("recover"), 0);
    for id in [&slow_job, &right_job] {
        let d = right.get(id).await.expect("get").expect("job");
        assert_eq!(d.summary.state, JobState::Running, "job {id}");
    }

    // And a silent session on a host whose clock is ahead is still recovered once stale (a
    // zero window: every session is stale now).
    let (_, fast_job) = running_job(&ahead, "fast-clock").await;
    right
        .recover_abandoned(Duration::ZERO)
        .await
        .expect("recover");
    let d = right.get(&fast_job).await.expect("get").expect("job");
    assert_eq!(d.summary.state, JobState::Queued);
    assert!(
        d.history[0]
            .error
            .starts_with("abandoned by worker fast-clock"),
        "{:?}",
        d.history
    );
}

async fn prune_dead_works_through_more_than_one_batch_oldest_first(t: &Store) {
    let q = queue(t).await;
    // 2,500 dead jobs that died a millisecond apart, a day ago.
    let old = now_ms() - 86_400_000;
    exec(
        t,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
             INSERT INTO jobs (id, kind, payload, state, attempts, created_at, run_at, \
                 state_at, finished_at) \
             SELECT 'dead-' || i, 'whatsapp.send', '{{}}', 'dead', 1, {old}, {old}, \
                 {old} + i, {old} + i FROM n"
        ),
    )
    .await;
    let done = q.enqueue(send_job(1)).await.expect("enqueue");

    // 499 died before `old + 500`; of the other 2,001 the cap keeps the newest 100.
    let before = chrono::DateTime::from_timestamp_millis(old + 500).expect("time");
    assert_eq!(q.prune_dead(before, 100).await.expect("prune"), 2_400);
    let left = sqlx::query(
        "SELECT MIN(state_at) - $1 AS first, COUNT(*) AS n FROM jobs WHERE state = 'dead'",
    )
    .bind(old)
    .fetch_one(t.db.pool())
    .await
    .expect("count");
    assert_eq!(sqlx::Row::get::<i64, _>(&left, "n"), 100);
    assert_eq!(sqlx::Row::get::<i64, _>(&left, "first"), 2_401);
    assert!(q.get(done.id()).await.expect("get").is_some());
}

async fn listing_is_newest_state_change_first_and_rejects_a_foreign_cursor(t: &Store) {
    let q = queue(t).await;
    let w = WorkerId::new("w");
    let first = q.enqueue(send_job(1)).await.expect("enqueue");
    q.enqueue(send_job(2)).await.expect("enqueue");
    exec(t, "UPDATE jobs SET state_at = state_at - 1000").await;
    // The oldest job changes state last, so it lists first.
    q.fetch(&w, 1, Duration::ZERO).await.expect("fetch");
    let page = q
        .list(&ListQuery {
            limit: 1,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.total, 2);
    assert_eq!(page.jobs[0].id, first.id());
    let next = q
        .list(&ListQuery {
            limit: 1,
            cursor: page.next_cursor,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(next.jobs.len(), 1);
    assert_ne!(next.jobs[0].id, first.id());
    assert_eq!(next.next_cursor, None);
    let bad = q
        .list(&ListQuery {
            cursor: Some("page-2".into()),
            ..ListQuery::default()
        })
        .await;
    assert!(matches!(bad, Err(QueueError::Invalid(_))), "{bad:?}");
}

async fn a_row_with_an_unknown_state_is_reported_as_corrupt_not_a_panic(t: &Store) {
    let q = queue(t).await;
    let job = q.enqueue(send_job(1)).await.expect("enqueue");
    exec(
        t,
        &format!("UPDATE jobs SET state = 'paused' WHERE id = '{}'", job.id()),
    )
    .await;
    assert!(matches!(q.get(job.id()).await, Err(QueueError::Corrupt(_))));
    assert!(matches!(
        q.list(&ListQuery::default()).await,
        Err(QueueError::Corrupt(_))
    ));
    assert!(matches!(q.stats().await, Err(QueueError::Corrupt(_))));
}

async fn bulk_retry_and_prune_work_through_more_than_one_batch(t: &Store) {
    let q = queue(t).await;
    let old = now_ms() - 86_400_000;
    let bulk = |prefix: &str, count: usize, state: &str| {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO jobs (id, kind, payload, state, attempts, created_at, run_at, \
                 state_at, finished_at) \
             SELECT '{prefix}' || i, 'whatsapp.send', '{{}}', '{state}', 1, {old}, {old}, \
                 {old}, {old} FROM n"
        )
    };
    exec(t, &bulk("dead-", 1_200, "dead")).await;
    exec(t, &bulk("done-", 2_300, "done")).await;
    exec(
        t,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) \
             INSERT INTO webhook_receipt (key, job_id, expires_at) \
             SELECT 'old-' || i, 'done-1', {old} FROM n"
        ),
    )
    .await;
    let live = q
        .enqueue(send_job(1).dedupe("live", Duration::from_secs(60)))
        .await
        .expect("enqueue");

    assert_eq!(
        q.retry_all(JobState::Dead, Some(JobKind::WhatsAppSend))
            .await
            .expect("retry_all"),
        1_200
    );
    assert_eq!(q.prune(Utc::now()).await.expect("prune"), 2_300);
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (
            s.count(JobState::Queued),
            s.count(JobState::Dead),
            s.count(JobState::Done)
        ),
        (1_201, 0, 0)
    );
    let again = q
        .enqueue(send_job(2).dedupe("live", Duration::from_secs(60)))
        .await
        .expect("enqueue");
    assert_eq!(again.id(), live.id(), "a live dedupe key survives pruning");
    let receipts = sqlx::query("SELECT COUNT(*) AS n FROM webhook_receipt")
        .fetch_one(t.db.pool())
        .await
        .expect("count");
    assert_eq!(sqlx::Row::get::<i64, _>(&receipts, "n"), 1);
    assert!(matches!(
        q.retry_all(JobState::Done, None).await,
        Err(QueueError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wake_ups_survive_a_killed_listener_connection() {
    let t = Store::postgres().await;
    let (worker_side, intake_side) = (queue(&t).await, other_process(&t).await);
    let killed = sqlx::query(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(t.db.pool())
    .await
    .expect("terminate listeners");
    assert_eq!(killed.len(), 2, "one listener per queue");
    // Whether or not the listener is back yet, the job is picked up quickly: by a wake-up, or
    // while the listener is down by the 100 ms poll it falls back to.
    let w = WorkerId::new("w");
    for n in 0..3 {
        let fetch = tokio::spawn({
            let (q, w) = (worker_side.clone(), w.clone());
            async move { q.fetch(&w, 1, Duration::from_secs(5)).await }
        });
        until_a_fetch_waits(&worker_side).await;
        let started = Instant::now();
        intake_side.enqueue(send_job(n)).await.expect("enqueue");
        let leases = fetch.await.expect("fetch task").expect("fetch");
        assert_eq!(leases.len(), 1);
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }
    t.close().await;
}

/// A pooled connection the server closed while it sat idle (a database restart, a proxy's idle
/// timeout) is not handed out: a connection idle for longer than the store's trusted second is
/// pinged first, and a dead one is replaced. The queue's next calls all succeed. The wait is
/// real time: the pool's idle clock is std's, not tokio's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_closed_while_idle_are_replaced_before_use() {
    let t = Store::postgres().await;
    let q = queue(&t).await;
    for r in join_all((0..4).map(|n| q.enqueue(send_job(n)))).await {
        r.expect("enqueue");
    }
    let mut outside = <sqlx::PgConnection as sqlx::Connection>::connect(&t.url)
        .await
        .expect("connect");
    let killed = sqlx::query(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut outside)
    .await
    .expect("terminate the pool's connections");
    assert!(
        killed.len() >= 2,
        "the pool and the listener: {}",
        killed.len()
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for n in 4..12 {
        q.enqueue(send_job(n))
            .await
            .expect("an enqueue after the connections died");
    }
    let s = q.stats().await.expect("stats");
    assert_eq!(s.count(JobState::Queued), 12);
    t.close().await;
}

/// Issue #14: a job finishes while another process holds SQLite's write lock (`BEGIN
/// IMMEDIATE`) longer than the 5 s busy timeout, so the `complete` fails with `SQLITE_BUSY`.
/// The ack is tried again and lands once the lock is gone; the job does not stay `running`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_ack_refused_by_a_long_write_lock_lands_once_the_lock_is_gone() {
    use moked_jobs::retry::{JobError, RetryPolicy};
    use moked_jobs::runner::{Runner, RunnerConfig, handler};

    let t = Store::sqlite().await;
    let q: Arc<dyn Queue> = Arc::new(queue(&t).await);
    // No fault injected: it only counts the completes that failed for real.
    let observed = Arc::new(faulty::FaultyAcks::new(q.clone(), vec![], None));
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let h = {
        let gate = gate.clone();
        handler(move |_claim| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                gate.acquire().await.unwrap().forget();
                Ok::<(), JobError>(())
            }
        })
    };
    let config = RunnerConfig {
        concurrency: 1,
        heartbeat: Duration::from_millis(100),
        stale_after: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(5),
        fetch_wait: Duration::from_millis(200),
        policy: RetryPolicy::default(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Runner::new(observed.clone(), "w", config, h).run(async move {
            let _ = stop_rx.await;
        }),
    );
    started.recv().await.unwrap();

    // Another process takes the write lock and keeps it past the busy timeout.
    let other = Db::connect(&t.url).await.expect("second pool");
    let mut lock = other.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    gate.add_permits(1);
    let mut failed = observed.failed_completes();
    tokio::time::timeout(Duration::from_secs(30), failed.wait_for(|n| *n >= 1))
        .await
        .expect("the complete failed under the lock")
        .unwrap();
    assert_eq!(
        q.get(job.id()).await.unwrap().unwrap().summary.state,
        JobState::Running
    );
    sqlx::query("COMMIT").execute(&mut *lock).await.unwrap();
    drop(lock);

    moked_testkit::eventually(Duration::from_secs(20), "the job is done", || async {
        q.get(job.id()).await.unwrap().unwrap().summary.state == JobState::Done
    })
    .await;
    stop_tx.send(()).unwrap();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.done, summary.released), (1, 0));
    t.close().await;
}

macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let t = super::Store::sqlite().await;
                    super::$case(&t).await;
                    t.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let t = super::Store::postgres().await;
                    super::$case(&t).await;
                    t.close().await;
                }
            )*
        }
    };
}

on_both_databases!(
    concurrent_fetchers_on_two_processes_claim_every_job_exactly_once,
    concurrent_enqueues_of_one_dedupe_key_create_exactly_one_job,
    an_expired_dedupe_key_is_taken_over_and_then_holds,
    a_blocking_fetch_wakes_on_an_enqueue_from_the_same_queue_well_under_250ms,
    a_blocking_fetch_wakes_on_an_enqueue_from_another_process_under_250ms,
    a_blocking_fetch_wakes_when_a_delayed_job_becomes_due,
    a_blocking_fetch_on_an_empty_queue_returns_nothing_after_its_wait,
    a_fetch_dropped_mid_claim_leaves_no_job_stranded,
    recovery_requeues_only_the_jobs_of_a_silent_session_and_says_why,
    a_job_of_a_worker_that_died_before_its_first_heartbeat_is_recovered,
    hosts_with_skewed_clocks_agree_on_which_sessions_are_alive,
    listing_is_newest_state_change_first_and_rejects_a_foreign_cursor,
    a_row_with_an_unknown_state_is_reported_as_corrupt_not_a_panic,
    bulk_retry_and_prune_work_through_more_than_one_batch,
    prune_dead_works_through_more_than_one_batch_oldest_first,
);

//! Tests of the Redis backend's own promises (the shared conformance suite covers the contract):
//! no backlog cliff, blocking pickup, recovery of silent sessions, stale acks, dedupe, lost
//! replies. They need a Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); each test
//! works under its own random prefix and deletes it when it ends, even on a panic.

use std::collections::HashSet;
use std::ops::Deref;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::try_join_all;
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::redis::RedisQueue;
use moked_jobs::queue::{Enqueued, JobState, ListQuery, NewJob, Queue, WorkerId};
use redis::AsyncCommands;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A queue under a fresh prefix, deleted on drop.
struct TestQueue {
    queue: RedisQueue,
}

impl Deref for TestQueue {
    type Target = RedisQueue;
    fn deref(&self) -> &RedisQueue {
        &self.queue
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        // Blocking, so it also runs while a failed test unwinds.
        moked_testkit::teardown::delete_prefix(redis_url(), self.queue.prefix().to_owned());
    }
}

async fn queue() -> TestQueue {
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let queue = RedisQueue::connect(&redis_url(), &prefix)
        .await
        .expect("connect to Redis");
    TestQueue { queue }
}

/// A plain connection for looking at (and, where a test says so, arranging) raw keys.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

fn job(n: usize) -> NewJob {
    NewJob::raw(JobKind::CallStatus, format!("{{\"v\":1,\"data\":{n}}}"))
}

fn ids(leases: &[moked_jobs::queue::Lease]) -> Vec<String> {
    leases.iter().map(|l| l.id.clone()).collect()
}

#[tokio::test]
async fn a_backlog_of_20000_due_jobs_drains_completely() {
    const JOBS: usize = 20_000;
    let q = queue().await;
    let started = Instant::now();

    // Enqueue far in the future so every job lands in the delayed set…
    let later = Utc::now() + chrono::Duration::hours(1);
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1000) {
        try_join_all(chunk.iter().map(|&n| q.enqueue(job(n).run_at(later))))
            .await
            .expect("enqueue");
    }
    let mut conn = raw().await;
    let delayed = format!("{}:delayed", q.prefix());
    let waiting: usize = conn.zcard(&delayed).await.expect("zcard");
    assert_eq!(waiting, JOBS);
    // …then make all of them due at once: 20,000 due delayed jobs, the backlog that wedged
    // apalis-redis ("too many results to unpack") for good.
    let () = redis::cmd("ZUNIONSTORE")
        .arg(&delayed)
        .arg(1)
        .arg(&delayed)
        .arg("WEIGHTS")
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("make the backlog due");
    let enqueued = started.elapsed();

    let worker = WorkerId::new("drain");
    let mut seen = HashSet::new();
    loop {
        let leases = q.fetch(&worker, 100, Duration::ZERO).await.expect("fetch");
        if leases.is_empty() {
            break;
        }
        for lease in &leases {
            assert_eq!(lease.attempts, 1);
            assert!(
                seen.insert(lease.id.clone()),
                "{} delivered twice",
                lease.id
            );
        }
        try_join_all(leases.iter().map(|l| q.complete(&worker, &l.id)))
            .await
            .expect("complete");
    }
    let drained = started.elapsed() - enqueued;

    assert_eq!(seen.len(), JOBS);
    let stats = q.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Done), JOBS as u64);
    assert_eq!(stats.count(JobState::Queued), 0);
    assert_eq!(stats.count(JobState::Running), 0);
    let waiting: usize = conn.zcard(&delayed).await.expect("zcard");
    assert_eq!(waiting, 0);
    eprintln!("20,000 jobs: enqueued in {enqueued:?}, drained in {drained:?}");
}

#[tokio::test]
async fn a_blocked_fetch_wakes_up_when_a_job_is_enqueued() {
    let q = queue().await;
    let worker = WorkerId::new("sleeper");
    let fetcher = {
        let queue = q.queue.clone();
        tokio::spawn(async move {
            let leases = queue.fetch(&worker, 10, Duration::from_secs(5)).await;
            (leases, Instant::now())
        })
    };

    // Wait until the fetch is really blocked in BLMOVE (its connection is named after the
    // prefix), so the enqueue below has to wake it.
    let mut conn = raw().await;
    let name = format!("name=moked-fetch:{} ", q.prefix());
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .expect("client list");
        if clients
            .lines()
            .any(|l| l.contains(&name) && l.contains("cmd=blmove"))
        {
            break;
        }
        assert!(Instant::now() < give_up, "the fetch never blocked");
        tokio::task::yield_now().await;
    }

    let enqueued_at = Instant::now();
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let (leases, returned_at) = fetcher.await.expect("fetch task");
    let leases = leases.expect("fetch");
    assert_eq!(ids(&leases), vec![id]);
    let pickup = returned_at - enqueued_at;
    // Without a wake-up the job would wait for the block to time out (up to a second).
    assert!(
        pickup < Duration::from_millis(500),
        "pickup took {pickup:?}"
    );
    eprintln!("blocked fetch picked the job up {pickup:?} after the enqueue");
}

#[tokio::test]
async fn a_blocking_connection_closed_while_idle_is_replaced_without_an_error() {
    let q = queue().await;
    let worker = WorkerId::new("idle");
    // A first waiting fetch opens (and pools) a blocking connection.
    assert!(
        q.fetch(&worker, 1, Duration::from_millis(20))
            .await
            .expect("fetch")
            .is_empty()
    );
    // The server (or a proxy's idle timeout) closes it.
    let mut conn = raw().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("client list");
    let name = format!("name=moked-fetch:{} ", q.prefix());
    let ids: Vec<String> = clients
        .lines()
        .filter(|l| l.contains(&name))
        .filter_map(|l| l.strip_prefix("id=")?.split(' ').next().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "{clients}");
    let () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .expect("client kill");

    // The next waiting fetch blocks on a fresh connection instead of failing.
    assert!(
        q.fetch(&worker, 1, Duration::from_millis(20))
            .await
            .expect("fetch after the connection was closed")
            .is_empty()
    );
}

#[tokio::test]
async fn a_blocked_fetch_picks_up_a_delayed_job_when_it_becomes_due() {
    let q = queue().await;
    let worker = WorkerId::new("patient");
    let due = Utc::now() + chrono::Duration::milliseconds(300);
    let id = q
        .enqueue(job(1).run_at(due))
        .await
        .expect("enqueue")
        .id()
        .to_owned();

    assert!(
        q.fetch(&worker, 10, Duration::ZERO)
            .await
            .expect("fetch")
            .is_empty(),
        "a job was handed out before it was due"
    );
    let leases = q
        .fetch(&worker, 10, Duration::from_secs(5))
        .await
        .expect("fetch");
    let late = Utc::now() - due;
    assert_eq!(ids(&leases), vec![id]);
    assert!(late >= chrono::Duration::zero(), "fetched {late} early");
    assert!(
        late < chrono::Duration::milliseconds(500),
        "fetched {late} late"
    );
}

#[tokio::test]
async fn recover_abandoned_requeues_the_jobs_of_a_silent_session() {
    let q = queue().await;
    let dead = WorkerId::new("worker.1");
    let a = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let b = q.enqueue(job(2)).await.expect("enqueue").id().to_owned();
    q.heartbeat(&dead).await.expect("heartbeat");
    let held = q.fetch(&dead, 10, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&held), vec![a.clone(), b.clone()]);

    assert_eq!(
        q.recover_abandoned(Duration::from_secs(60))
            .await
            .expect("recover"),
        0,
        "a live session lost its jobs"
    );
    assert_eq!(
        q.recover_abandoned(Duration::ZERO).await.expect("recover"),
        2
    );

    let detail = q.get(&a).await.expect("get").expect("job a");
    assert_eq!(detail.summary.state, JobState::Queued);
    assert_eq!(detail.summary.attempts, 1);
    assert_eq!(detail.worker, None);
    assert_eq!(detail.history.len(), 1);
    assert_eq!(detail.history[0].worker, "worker.1");
    assert!(
        detail.history[0]
            .error
            .starts_with("abandoned by worker worker.1 (no heartbeat for "),
        "{}",
        detail.history[0].error
    );

    let next = WorkerId::new("worker.2");
    let leases = q.fetch(&next, 10, Duration::ZERO).await.expect("fetch");
    let mut got = ids(&leases);
    got.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(got, want);
    assert!(leases.iter().all(|l| l.attempts == 2));
    // The silent session is forgotten: nothing more to recover.
    q.heartbeat(&next).await.expect("heartbeat");
    assert_eq!(
        q.recover_abandoned(Duration::from_secs(60))
            .await
            .expect("recover"),
        0
    );
}

#[tokio::test]
async fn a_stale_ack_after_recovery_is_ignored() {
    let q = queue().await;
    let slow = WorkerId::new("slow");
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    q.fetch(&slow, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!(
        q.recover_abandoned(Duration::ZERO).await.expect("recover"),
        1
    );
    let fast = WorkerId::new("fast");
    let leases = q.fetch(&fast, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![id.clone()]);

    // The first worker wakes up and reports: nothing happens, without an error.
    q.complete(&slow, &id).await.expect("stale complete");
    q.bury(&slow, &id, "late").await.expect("stale bury");
    q.retry_at(&slow, &id, "late", Utc::now())
        .await
        .expect("stale retry");
    q.release(&slow, &id).await.expect("stale release");
    let detail = q.get(&id).await.expect("get").expect("job");
    assert_eq!(detail.summary.state, JobState::Running);
    assert_eq!(detail.summary.attempts, 2);
    assert_eq!(detail.worker.as_deref(), Some(fast.session.as_str()));
    assert_eq!(detail.history.len(), 1, "only the abandonment is recorded");

    q.complete(&fast, &id).await.expect("complete");
    let detail = q.get(&id).await.expect("get").expect("job");
    assert_eq!(detail.summary.state, JobState::Done);
}

/// One of the queue's Lua scripts as `redis.rs` loads it: the argument checks of `args.lua`
/// in front of the script's own text.
fn lua(body: &str) -> redis::Script {
    let args = include_str!("../src/queue/lua/args.lua");
    redis::Script::new(&format!("{args}\n{body}"))
}

/// Every key under the queue's prefix, each once: `SCAN` may return a key more than once (it
/// does while Redis rehashes the keyspace, e.g. just after many deletes), so the keys are
/// gathered in a set.
async fn keys_under(q: &RedisQueue) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys = std::collections::BTreeSet::new();
    let mut iter: redis::AsyncIter<String> = conn
        .scan_match(format!("{}:*", q.prefix()))
        .await
        .expect("scan");
    while let Some(key) = iter.next_item().await {
        keys.insert(key.expect("key"));
    }
    keys.into_iter().collect()
}

/// Runs a script call that must be refused: its error says `expected`, and nothing is left
/// under the queue's prefix.
async fn refused_leaving_nothing(
    q: &RedisQueue,
    call: &redis::ScriptInvocation<'_>,
    expected: &str,
) {
    let error = call
        .invoke_async::<redis::Value>(&mut raw().await)
        .await
        .expect_err("the call is refused");
    assert!(
        error.to_string().contains(expected),
        "{expected:?} not in {error}"
    );
    assert_eq!(keys_under(q).await, Vec::<String>::new(), "{expected}");
}

#[tokio::test]
async fn a_malformed_enqueue_argument_mid_batch_writes_nothing() {
    let q = queue().await;
    let enqueue = lua(include_str!("../src/queue/lua/enqueue.lua"));
    let job = |id: &str, run_at: &str, key: &str, ttl: &str| {
        [id, "call.status", "{}", run_at, key, ttl].map(str::to_owned)
    };
    // The second job of each batch is malformed; the first is fine and comes first.
    let batches = [
        (job("j2", "soon", "", "0"), "ARGV[11] must be an integer"),
        (job("j2", "", "k2", "1e3"), "ARGV[13] must be an integer"),
        (job("j2", "", "k2", "0"), "ARGV[13] must be at least 1"),
        (
            job("j2", "", "", "0").map(|_| String::new()),
            "ARGV[8] must not be empty",
        ),
    ];
    for (second, expected) in batches {
        let mut call = enqueue.prepare_invoke();
        call.arg(q.prefix());
        for arg in job("j1", "", "k1", "60000").iter().chain(&second) {
            call.arg(arg);
        }
        refused_leaving_nothing(&q, &call, expected).await;
    }
    // A batch cut short fails whole too.
    let mut call = enqueue.prepare_invoke();
    call.arg(q.prefix()).arg(&job("j1", "", "k1", "60000")[..5]);
    refused_leaving_nothing(&q, &call, "six arguments per job").await;

    // So does a batch past the cap (its gathered writes would pass Lua's unpack limit after
    // the jobs were written).
    let mut call = enqueue.prepare_invoke();
    call.arg(q.prefix());
    for n in 0..1_001 {
        for arg in job(&format!("j{n}"), "", &format!("k{n}"), "60000") {
            call.arg(arg);
        }
    }
    refused_leaving_nothing(&q, &call, "at most 1000 jobs a call").await;

    // The dedupe keys were never taken: the same jobs go through afterwards.
    let created = q
        .enqueue(NewJob::raw(JobKind::CallStatus, "{}").dedupe("k1", Duration::from_secs(60)))
        .await
        .expect("enqueue");
    assert!(created.is_created());
}

#[tokio::test]
async fn an_ack_with_an_unknown_op_fails_before_touching_the_job() {
    let q = queue().await;
    let w = WorkerId::new("w");
    let first = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let second = q.enqueue(job(2)).await.expect("enqueue").id().to_owned();
    assert_eq!(
        ids(&q.fetch(&w, 2, Duration::ZERO).await.expect("fetch")),
        [first.as_str(), second.as_str()]
    );
    // One call acks both (as the worker's gathered acks do): the first is a good `done`, the
    // second's op is unknown. Nothing may be written for either.
    let ack = lua(include_str!("../src/queue/lua/ack.lua"));
    let mut conn = raw().await;
    let error = ack
        .prepare_invoke()
        .arg(q.prefix())
        .arg(&w.session)
        .arg(&w.name)
        .arg(&first)
        .arg("done")
        .arg("")
        .arg(0)
        .arg(&w.session)
        .arg(&w.name)
        .arg(&second)
        .arg("finish")
        .arg("")
        .arg(0)
        .invoke_async::<redis::Value>(&mut conn)
        .await
        .expect_err("an unknown op fails");

    // Both jobs are still running and still in their session's in-flight list, so the worker's
    // real acks (or recovery) still find them.
    let inflight: Vec<String> = conn
        .lrange(format!("{}:inflight:{}", q.prefix(), w.session), 0, -1)
        .await
        .expect("lrange");
    assert_eq!(inflight, [first.as_str(), second.as_str()]);
    assert!(
        error
            .to_string()
            .contains("moked ack: ARGV[11] must be one of"),
        "{error}"
    );
    for id in [&first, &second] {
        let detail = q.get(id).await.expect("get").expect("job");
        assert_eq!(detail.summary.state, JobState::Running);
        q.complete(&w, id).await.expect("complete");
        let detail = q.get(id).await.expect("get").expect("job");
        assert_eq!(detail.summary.state, JobState::Done);
    }
}

/// Members of the state index `{prefix}:s:{name}`.
async fn index_members(q: &RedisQueue, name: &str) -> HashSet<String> {
    raw()
        .await
        .zrange(format!("{}:s:{name}", q.prefix()), 0, -1)
        .await
        .expect("zrange")
}

#[tokio::test]
async fn jobs_of_several_kinds_claimed_in_one_call_and_acked_together_each_move_between_every_index()
 {
    // The claim and ack scripts gather their index writes into one ZREM / ZADD per index;
    // with three kinds in one call, every job must still leave its own state and kind index
    // and enter the right ones.
    const KINDS: [JobKind; 3] = [
        JobKind::CallStatus,
        JobKind::CallStarted,
        JobKind::WhatsAppStatus,
    ];
    let q = queue().await;
    let created = try_join_all(
        (0..30).map(|n| q.enqueue(NewJob::raw(KINDS[n % 3], format!("{{\"n\":{n}}}")))),
    )
    .await
    .expect("enqueue");
    let of_kind = |k: usize| -> HashSet<String> {
        created
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 3 == k)
            .map(|(_, e)| e.id().to_owned())
            .collect()
    };
    for (k, kind) in KINDS.iter().enumerate() {
        assert_eq!(
            index_members(&q, &format!("queued:{}", kind.as_str())).await,
            of_kind(k)
        );
    }

    let w = WorkerId::new("w");
    let leases = q.fetch(&w, 30, Duration::ZERO).await.expect("fetch");
    assert_eq!(leases.len(), 30);
    assert!(index_members(&q, "queued").await.is_empty());
    for kind in KINDS {
        assert!(
            index_members(&q, &format!("queued:{}", kind.as_str()))
                .await
                .is_empty()
        );
    }

    // Concurrent acks are gathered into shared calls (redis_batch.rs), kinds and outcomes
    // mixed: done for the first kind, dead for the second, a retry for the third.
    try_join_all(leases.iter().map(|l| {
        let q = &q;
        let w = &w;
        async move {
            match l.kind.as_str() {
                "call.status" => q.complete(w, &l.id).await,
                "call.started" => q.bury(w, &l.id, "poison").await,
                _ => q.retry_at(w, &l.id, "later", Utc::now()).await,
            }
        }
    }))
    .await
    .expect("ack");
    let all = |ks: &[usize]| -> HashSet<String> { ks.iter().flat_map(|&k| of_kind(k)).collect() };
    assert_eq!(index_members(&q, "done").await, all(&[0]));
    assert_eq!(index_members(&q, "done:call.status").await, all(&[0]));
    assert_eq!(index_members(&q, "dead").await, all(&[1]));
    assert_eq!(index_members(&q, "dead:call.started").await, all(&[1]));
    assert_eq!(index_members(&q, "retrying").await, all(&[2]));
    assert_eq!(
        index_members(&q, "retrying:whatsapp.status").await,
        all(&[2])
    );
    for other in [
        "done:call.started",
        "dead:call.status",
        "retrying:call.status",
    ] {
        assert!(index_members(&q, other).await.is_empty(), "{other}");
    }
    let stats = q.stats().await.expect("stats");
    assert_eq!(
        (
            stats.count(JobState::Done),
            stats.count(JobState::Dead),
            stats.count(JobState::Retrying),
            stats.count(JobState::Queued),
        ),
        (10, 10, 10, 0)
    );
}

#[tokio::test]
async fn an_ack_call_past_its_cap_is_refused_before_any_write() {
    // The ack script's index writes unpack every ack of the call at once; a call too large
    // for that must fail before its first write, not after the jobs moved.
    let q = queue().await;
    let w = WorkerId::new("w");
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    assert_eq!(
        ids(&q.fetch(&w, 1, Duration::ZERO).await.expect("fetch")),
        [id.as_str()]
    );
    let ack = lua(include_str!("../src/queue/lua/ack.lua"));
    let mut call = ack.prepare_invoke();
    call.arg(q.prefix());
    for n in 0..1_001 {
        let target = if n == 0 {
            id.clone()
        } else {
            format!("absent-{n}")
        };
        call.arg(&w.session)
            .arg(&w.name)
            .arg(target)
            .arg("done")
            .arg("")
            .arg(0);
    }
    let error = call
        .invoke_async::<redis::Value>(&mut raw().await)
        .await
        .expect_err("too many acks");
    assert!(
        error.to_string().contains("at most 1000 acks a call"),
        "{error}"
    );
    let detail = q.get(&id).await.expect("get").expect("job");
    assert_eq!(detail.summary.state, JobState::Running);
    assert!(index_members(&q, "done").await.is_empty());
    q.complete(&w, &id).await.expect("complete");
    assert_eq!(index_members(&q, "done").await, HashSet::from([id]));
}

#[tokio::test]
async fn prune_dead_works_through_more_than_one_batch_and_leaves_no_trace() {
    const DEAD: usize = 1_100;
    let q = queue().await;
    try_join_all((0..DEAD).map(|n| q.enqueue(job(n))))
        .await
        .expect("enqueue");
    let w = WorkerId::new("w");
    loop {
        let leases = q.fetch(&w, 500, Duration::ZERO).await.expect("fetch");
        if leases.is_empty() {
            break;
        }
        try_join_all(leases.iter().map(|l| q.bury(&w, &l.id, "always fails")))
            .await
            .expect("bury");
    }
    assert_eq!(
        q.stats().await.expect("stats").count(JobState::Dead),
        DEAD as u64
    );

    // More than two batches of 500 go: hashes, histories and both indexes.
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        q.prune_dead(an_hour_ago, 50).await.expect("prune"),
        DEAD as u64 - 50
    );
    let mut conn = raw().await;
    let dead: usize = conn
        .zcard(format!("{}:s:dead", q.prefix()))
        .await
        .expect("zcard");
    let dead_of_kind: usize = conn
        .zcard(format!("{}:s:dead:call.status", q.prefix()))
        .await
        .expect("zcard");
    assert_eq!((dead, dead_of_kind), (50, 50));
    let keys = keys_under(&q).await;
    let count = |part: &str| keys.iter().filter(|k| k.contains(part)).count();
    assert_eq!((count(":job:"), count(":hist:")), (50, 50));
}

#[tokio::test]
async fn a_dedupe_key_inside_its_ttl_returns_the_first_job() {
    let q = queue().await;
    let ttl = Duration::from_secs(3600);
    let first = q
        .enqueue(job(1).dedupe("call.status:CA1:completed", ttl))
        .await
        .expect("enqueue");
    let again = q
        .enqueue(job(2).dedupe("call.status:CA1:completed", ttl))
        .await
        .expect("enqueue");
    let other = q
        .enqueue(job(3).dedupe("call.status:CA2:completed", ttl))
        .await
        .expect("enqueue");

    assert!(first.is_created());
    assert_eq!(again, Enqueued::Duplicate(first.id().to_owned()));
    assert!(other.is_created());
    assert_ne!(other.id(), first.id());
    assert_eq!(q.stats().await.expect("stats").count(JobState::Queued), 2);
}

/// Concurrent enqueues share script calls (see `redis_enqueue.rs`); each caller must still get
/// its own answer, a key repeated inside one batch must still make one job, and every created
/// job must carry its creator's payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_each_get_their_own_answer() {
    let q = queue().await;
    let ttl = Duration::from_secs(3600);
    let answers = futures::future::join_all((0..1_000).map(|n| {
        let q = q.queue.clone();
        async move {
            // 800 jobs on 400 keys (each key twice), 200 without a key.
            let mut new = job(n);
            if n < 800 {
                new = new.dedupe(format!("k{}", n % 400), ttl);
            }
            (n, q.enqueue(new).await.expect("enqueue"))
        }
    }))
    .await;

    let mut owner_of_key = std::collections::HashMap::new();
    let mut created = std::collections::HashMap::new();
    for (n, answer) in &answers {
        if answer.is_created() {
            assert!(created.insert(answer.id().to_owned(), *n).is_none());
        }
        if *n < 800 {
            let owner = owner_of_key
                .entry(n % 400)
                .or_insert_with(|| answer.id().to_owned());
            assert_eq!(owner, answer.id(), "key k{} has two owners", n % 400);
        }
    }
    assert_eq!(created.len(), 600, "400 keyed jobs and 200 unkeyed");
    assert_eq!(owner_of_key.len(), 400);
    assert_eq!(q.stats().await.expect("stats").count(JobState::Queued), 600);
    let ready: usize = raw()
        .await
        .llen(format!("{}:ready", q.prefix()))
        .await
        .expect("llen");
    assert_eq!(ready, 600);

    let worker = WorkerId::new("batch");
    let leases = q
        .fetch(&worker, 1_000, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(leases.len(), 600);
    for lease in &leases {
        let n = created[&lease.id];
        assert_eq!(lease.payload, format!("{{\"v\":1,\"data\":{n}}}"));
    }
}

#[tokio::test]
async fn an_id_popped_but_never_marked_is_returned_by_recovery() {
    let q = queue().await;
    let crashed = WorkerId::new("crashed");
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    q.heartbeat(&crashed).await.expect("heartbeat");
    // The worker's BLMOVE moved the id into its in-flight list, then the process died before
    // the claim script marked the job running.
    let mut conn = raw().await;
    let moved: Option<String> = redis::cmd("LMOVE")
        .arg(format!("{}:ready", q.prefix()))
        .arg(format!("{}:inflight:{}", q.prefix(), crashed.session))
        .arg("LEFT")
        .arg("RIGHT")
        .query_async(&mut conn)
        .await
        .expect("lmove");
    assert_eq!(moved.as_deref(), Some(id.as_str()));
    let next = WorkerId::new("next");
    assert!(
        q.fetch(&next, 1, Duration::ZERO)
            .await
            .expect("fetch")
            .is_empty()
    );

    assert_eq!(
        q.recover_abandoned(Duration::ZERO).await.expect("recover"),
        1
    );
    let leases = q.fetch(&next, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![id]);
    assert_eq!(leases[0].attempts, 1, "the unmarked pop was not an attempt");
}

#[tokio::test]
async fn jobs_of_a_claim_whose_reply_was_lost_are_delivered_by_the_next_fetch() {
    let q = queue().await;
    let worker = WorkerId::new("unlucky");
    let first = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let second = q.enqueue(job(2)).await.expect("enqueue").id().to_owned();

    // Start a fetch, let its claim reach Redis and run, and drop the fetch before it reads
    // the reply: the claim ran on the server, but the worker never learnt of it.
    let mut fetch = Box::pin(q.fetch(&worker, 10, Duration::ZERO));
    assert!(futures::poll!(fetch.as_mut()).is_pending());
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let detail = q.get(&first).await.expect("get").expect("job");
        if detail.summary.state == JobState::Running {
            break;
        }
        assert!(Instant::now() < give_up, "the claim never ran");
    }
    drop(fetch);

    let leases = q.fetch(&worker, 10, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![first.clone(), second]);
    assert!(leases.iter().all(|l| l.attempts == 1));
    // Delivered once more, not forever.
    assert!(
        q.fetch(&worker, 10, Duration::ZERO)
            .await
            .expect("fetch")
            .is_empty()
    );
    q.complete(&worker, &first).await.expect("complete");
    assert_eq!(
        q.get(&first)
            .await
            .expect("get")
            .expect("job")
            .summary
            .state,
        JobState::Done
    );
}

#[tokio::test]
async fn deregister_requeues_whatever_the_session_still_holds() {
    let q = queue().await;
    let leaving = WorkerId::new("leaving");
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    q.heartbeat(&leaving).await.expect("heartbeat");
    q.fetch(&leaving, 1, Duration::ZERO).await.expect("fetch");
    q.deregister(&leaving).await.expect("deregister");

    let detail = q.get(&id).await.expect("get").expect("job");
    assert_eq!(detail.summary.state, JobState::Queued);
    let mut conn = raw().await;
    let sessions: usize = conn
        .zcard(format!("{}:sessions", q.prefix()))
        .await
        .expect("zcard");
    assert_eq!(sessions, 0);
    let leases = q
        .fetch(&WorkerId::new("other"), 1, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(ids(&leases), vec![id]);
}

#[tokio::test]
async fn release_puts_the_job_first_in_line_without_counting_the_attempt() {
    let q = queue().await;
    let worker = WorkerId::new("stopping");
    let a = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let b = q.enqueue(job(2)).await.expect("enqueue").id().to_owned();
    let leases = q.fetch(&worker, 1, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![a.clone()]);
    q.release(&worker, &a).await.expect("release");

    let leases = q.fetch(&worker, 2, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![a, b]);
    assert!(leases.iter().all(|l| l.attempts == 1));
}

#[tokio::test]
async fn failures_retries_and_operator_verbs_move_jobs_between_states() {
    let q = queue().await;
    let worker = WorkerId::new("ops");
    let a = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let b = q.enqueue(job(2)).await.expect("enqueue").id().to_owned();
    q.fetch(&worker, 2, Duration::ZERO).await.expect("fetch");
    let later = Utc::now() + chrono::Duration::hours(1);
    q.retry_at(&worker, &a, "503 from Twilio", later)
        .await
        .expect("retry_at");
    q.bury(&worker, &b, "21211 invalid number")
        .await
        .expect("bury");

    let stats = q.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Retrying), 1);
    assert_eq!(stats.count(JobState::Dead), 1);
    assert_eq!(
        stats.by_kind["call.status"][&JobState::Dead],
        1,
        "{stats:?}"
    );
    assert_eq!(stats.by_kind.len(), 1);
    assert!(
        q.fetch(&worker, 2, Duration::ZERO)
            .await
            .expect("fetch")
            .is_empty(),
        "a retry scheduled an hour ahead ran now"
    );

    let dead = q.get(&b).await.expect("get").expect("job");
    assert_eq!(
        dead.summary.last_error.as_deref(),
        Some("21211 invalid number")
    );
    assert_eq!(dead.history.len(), 1);
    assert_eq!(dead.history[0].worker, "ops");
    assert!(dead.summary.finished_at.is_some());

    // Operator: retry the retrying one now, retry every dead one, discard nothing running.
    assert!(q.retry(&a).await.expect("retry"));
    assert!(!q.retry(&a).await.expect("retry a queued job"));
    assert_eq!(
        q.retry_all(JobState::Dead, None).await.expect("retry_all"),
        1
    );
    let leases = q.fetch(&worker, 10, Duration::ZERO).await.expect("fetch");
    assert_eq!(leases.len(), 2);
    assert!(
        leases.iter().all(|l| l.attempts == 1),
        "an operator retry starts a fresh schedule"
    );
    assert!(!q.discard(&a).await.expect("discard a running job"));

    q.bury(&worker, &a, "again").await.expect("bury");
    assert!(q.discard(&a).await.expect("discard"));
    q.complete(&worker, &b).await.expect("complete");
    let stats = q.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Discarded), 1);
    assert_eq!(stats.count(JobState::Done), 1);

    // Prune leaves no trace of finished jobs.
    let pruned = q
        .prune(Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 2);
    assert!(q.get(&a).await.expect("get").is_none());
    let mut conn = raw().await;
    let left: Vec<String> = conn
        .keys(format!("{}:*{a}*", q.prefix()))
        .await
        .expect("keys");
    assert!(left.is_empty(), "{left:?}");
    let stats = q.stats().await.expect("stats");
    assert!(stats.counts.values().all(|&c| c == 0), "{stats:?}");
    assert!(stats.by_kind.is_empty());
}

#[tokio::test]
async fn a_queued_job_discarded_while_waiting_is_never_handed_out() {
    let q = queue().await;
    let worker = WorkerId::new("w");
    let due = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    let later = q
        .enqueue(job(2).run_at(Utc::now() + chrono::Duration::hours(1)))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    assert!(q.discard(&due).await.expect("discard"));
    assert!(q.discard(&later).await.expect("discard"));
    assert!(
        q.fetch(&worker, 10, Duration::ZERO)
            .await
            .expect("fetch")
            .is_empty()
    );
    let stats = q.stats().await.expect("stats");
    assert_eq!(stats.count(JobState::Discarded), 2);
    assert_eq!(stats.count(JobState::Queued), 0);
}

#[tokio::test]
async fn listing_pages_through_every_state_with_a_cursor() {
    let q = queue().await;
    let worker = WorkerId::new("lister");
    for n in 0..7 {
        q.enqueue(job(n)).await.expect("enqueue");
    }
    q.enqueue(NewJob::raw(JobKind::WhatsAppSend, "{}"))
        .await
        .expect("enqueue");
    let leases = q.fetch(&worker, 3, Duration::ZERO).await.expect("fetch");
    q.complete(&worker, &leases[0].id).await.expect("complete");
    q.bury(&worker, &leases[1].id, "no").await.expect("bury");

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = q
            .list(&ListQuery {
                state: None,
                kind: None,
                cursor: cursor.clone(),
                limit: 3,
            })
            .await
            .expect("list");
        assert_eq!(page.total, 8);
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.iter().map(|j| (j.state, j.id.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    let states: Vec<JobState> = seen.iter().map(|(s, _)| *s).collect();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(states, sorted, "states come in display order");
    assert_eq!(
        seen.iter().map(|(_, id)| id).collect::<HashSet<_>>().len(),
        8
    );

    let page = q
        .list(&ListQuery {
            state: Some(JobState::Queued),
            kind: Some(JobKind::WhatsAppSend),
            cursor: None,
            limit: 50,
        })
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(page.jobs[0].kind, "whatsapp.send");
    assert_eq!(page.next_cursor, None);
    assert!(
        q.list(&ListQuery {
            cursor: Some("garbage".into()),
            ..ListQuery::default()
        })
        .await
        .is_err()
    );
}

#[tokio::test]
async fn stats_report_the_age_of_the_oldest_due_queued_job() {
    let q = queue().await;
    assert_eq!(q.stats().await.expect("stats").oldest_queued_age_s, None);
    q.enqueue(job(1).run_at(Utc::now() + chrono::Duration::hours(1)))
        .await
        .expect("enqueue");
    assert_eq!(
        q.stats().await.expect("stats").oldest_queued_age_s,
        None,
        "a job not yet due is not waiting"
    );
    q.enqueue(job(2).run_at(Utc::now() - chrono::Duration::seconds(90)))
        .await
        .expect("enqueue");
    let age = q
        .stats()
        .await
        .expect("stats")
        .oldest_queued_age_s
        .expect("an overdue job");
    assert!((89.0..120.0).contains(&age), "{age}");
}

#[tokio::test]
async fn delete_all_removes_only_its_own_prefix() {
    let mine = queue().await;
    let theirs = queue().await;
    mine.enqueue(job(1)).await.expect("enqueue");
    theirs.enqueue(job(1)).await.expect("enqueue");
    mine.delete_all().await.expect("delete_all");
    let mut conn = raw().await;
    let left: Vec<String> = conn
        .keys(format!("{}:*", mine.prefix()))
        .await
        .expect("keys");
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        theirs.stats().await.expect("stats").count(JobState::Queued),
        1
    );
}

/// Redis CPU seconds so far (user + system), from `INFO cpu`.
async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .expect("info");
    info.lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum()
}

/// Not a test: measures Redis CPU per job for enqueue and for a drain shaped like one worker
/// at concurrency 32 (one fetch loop, acks in parallel). Meaningful only against a Redis of its
/// own: `REDIS_URL=redis://127.0.0.1:6390 cargo test -p moked-jobs --release --test
/// redis_backend -- --ignored --nocapture redis_cpu_per_job`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run against an otherwise idle Redis"]
async fn redis_cpu_per_job_is_measured() {
    const JOBS: usize = 20_000;
    const CONCURRENCY: usize = 32;
    let q = queue().await;
    let mut conn = raw().await;
    let payload =
        r#"{"v":1,"data":{"call_sid":"CA0123456789abcdef0123456789abcdef","status":"completed"}}"#;

    let cpu = redis_cpu(&mut conn).await;
    let started = Instant::now();
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(CONCURRENCY * 2) {
        try_join_all(
            chunk
                .iter()
                .map(|_| q.enqueue(NewJob::raw(JobKind::CallStatus, payload))),
        )
        .await
        .expect("enqueue");
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    let enqueue_cpu = redis_cpu(&mut conn).await - cpu;

    let cpu = redis_cpu(&mut conn).await;
    let started = Instant::now();
    let worker = WorkerId::new("bench");
    let mut done = 0;
    while done < JOBS {
        let leases = q
            .fetch(&worker, CONCURRENCY, Duration::ZERO)
            .await
            .expect("fetch");
        try_join_all(leases.iter().map(|l| q.complete(&worker, &l.id)))
            .await
            .expect("complete");
        done += leases.len();
    }
    let drain_s = started.elapsed().as_secs_f64();
    let drain_cpu = redis_cpu(&mut conn).await - cpu;

    let per_job = |s: f64| s * 1e6 / JOBS as f64;
    eprintln!(
        "enqueue: {:.0} jobs/s, Redis CPU {:.1} µs/job; drain: {:.0} jobs/s, Redis CPU {:.1} µs/job",
        JOBS as f64 / enqueue_s,
        per_job(enqueue_cpu),
        JOBS as f64 / drain_s,
        per_job(drain_cpu),
    );
}

const STALL_3S: &str = "local t = redis.call('TIME') \
    local s = tonumber(t[1]) + tonumber(t[2]) / 1e6 \
    repeat t = redis.call('TIME') until tonumber(t[1]) + tonumber(t[2]) / 1e6 - s >= 3";

/// Ignored by default because it stalls the whole server (every other test using
/// it too): run it against a Redis of its own, e.g. `REDIS_URL=redis://127.0.0.1:6390 cargo
/// test -p moked-jobs --test redis_backend -- --ignored a_stalled_redis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stalls the whole Redis server for three seconds"]
async fn a_stalled_redis_fails_fast_and_the_claim_it_swallowed_is_delivered_later() {
    let q = queue().await;
    let worker = WorkerId::new("patient");
    let id = q.enqueue(job(1)).await.expect("enqueue").id().to_owned();
    // A script that spins for three seconds stalls the server like `DEBUG SLEEP` (which most
    // servers refuse) and stays below the 5 s busy-script threshold.
    let stall = tokio::spawn(async {
        let mut conn = redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .expect("connect to Redis");
        redis::cmd("EVAL")
            .arg(STALL_3S)
            .arg(0)
            .query_async::<()>(&mut conn)
            .await
    });
    // Wait until the stall has begun: a ping on another connection stops being answered.
    let mut conn = raw().await;
    let give_up = Instant::now() + Duration::from_secs(2);
    while tokio::time::timeout(
        Duration::from_millis(50),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await
    .is_ok()
    {
        assert!(Instant::now() < give_up, "the stall never began");
    }

    let started = Instant::now();
    let result = q.fetch(&worker, 10, Duration::ZERO).await;
    let waited = started.elapsed();
    assert!(result.is_err(), "the fetch should time out, got {result:?}");
    assert!(
        waited < Duration::from_millis(2_800),
        "failed after {waited:?}"
    );
    stall.await.expect("stall task").expect("stall");

    // The claim ran once Redis woke up; its reply was lost. The next fetch delivers the job.
    let leases = q.fetch(&worker, 10, Duration::ZERO).await.expect("fetch");
    assert_eq!(ids(&leases), vec![id]);
    assert_eq!(leases[0].attempts, 1);
}

//! The Redis backend of the durable queue.
//!
//! Production runs any number of intake and worker processes against one Redis (7.0 or newer:
//! the scripts use `SET … NX GET`, `LPOP … count` and `BLMOVE`). This backend exists because
//! apalis-redis 1.0 could not meet the contract (docs/ARCHITECTURE.md, "Why our own queue"); every rule below answers
//! one of its measured defects.
//!
//! # Keys
//!
//! Every key starts with the prefix `{p}` given to [`RedisQueue::connect`] and a colon, so
//! several deployments (and every test) can share one Redis, and [`RedisQueue::delete_all`]
//! can remove one queue completely.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:job:{id}` | HASH | `kind`, `payload`, `state`, `attempts`, `last_error`, `created_at`, `run_at`, `started_at`, `finished_at`, `state_at`, `session` (the claiming session; kept after it finishes, shown only while running), `claim` (token of the claim call, see *Lost replies*) |
//! | `{p}:hist:{id}` | LIST | one JSON entry per failed attempt, oldest first: `{"at":ms,"error":…,"worker":name}` |
//! | `{p}:ready` | LIST | ids of due jobs, claimed from the left; new jobs are pushed right (FIFO), released and recovered jobs left (they go first) |
//! | `{p}:delayed` | ZSET | id → `run_at` ms of jobs not yet due: future first runs (`queued`) and scheduled retries (`retrying`) |
//! | `{p}:inflight:{session}` | LIST | ids claimed by one worker session and not yet acknowledged |
//! | `{p}:sessions` | ZSET | session → last sign of life in ms (a heartbeat or a fetch) |
//! | `{p}:session-names` | HASH | session → worker name (for "abandoned by worker NAME" and the console's workers view, `lua/sessions.lua`) |
//! | `{p}:s:{state}` | ZSET | id → score, one index per state except `running` (see *Indexes*); the score is `state_at`, except in `queued` where it is `run_at` |
//! | `{p}:s:{state}:{kind}` | ZSET | the same, per kind |
//! | `{p}:dedupe:{key}` | STRING | the id of the job that took the dedupe key; expires after the key's TTL (`PX`) |
//! | `{p}:stats:m:{minute}`, `{p}:stats:h:{hour}`, `{p}:stats:total` | HASH | the cluster-wide outcome counters, field `{kind}\|{outcome}` (see [`super::outcomes`]); minute and hour buckets expire |
//!
//! Times are integer milliseconds since the Unix epoch.
//!
//! # One script per transition
//!
//! A job is in exactly one place at a time: the delayed set, the ready list, one session's
//! in-flight list, or none (done, dead, discarded). Every transition that touches more than one
//! key is one Lua script (`lua/*.lua`, loaded with [`Script`], which runs `EVALSHA` and loads
//! the script on `NOSCRIPT`), so a crash of the client or of Redis never leaves a job in two
//! places or in none.
//!
//! A script that fails half way is not rolled back: Redis keeps every write it made before the
//! error. So every script starts with `lua/args.lua` (see `script()`) and checks *all* of its
//! arguments (integers are digits, counts match, states and ops are known words) before its
//! first write; a malformed call fails whole, with an error naming the script and the
//! argument, and writes nothing. (An enqueue batch with one bad job in the middle must not
//! leave the jobs before it, or a dedupe key pointing at a job that was never created: Twilio's
//! redeliveries would be answered "duplicate" and the work never done.)
//!
//! Every script does bounded work. apalis-redis wedged for good once more than ~8,000 jobs were
//! due, because it promoted them with `RPUSH … unpack(all due ids)` and Lua refuses to unpack
//! that many values. Here promotion moves at most [`PROMOTE_LIMIT`] ids per fetch, a claim pops
//! at most `max` ids, and operator bulk operations (`retry_all`, `prune`, `prune_dead`,
//! recovery) run in batches of [`BATCH`] that Rust calls again until one comes back short.
//! `prune_dead`'s cap deletes what lies past the newest `keep` members of `{p}:s:dead`
//! (`ZREVRANGE keep …`: the listing order, oldest first).
//!
//! # What the server must provide
//!
//! * Redis 7.0 or newer, a single instance or a primary with replicas — not Redis Cluster: the
//!   scripts build job keys from the prefix instead of receiving them in `KEYS`.
//! * `maxmemory-policy noeviction`: an evicted job hash or list is a lost job.
//! * AOF (`appendfsync everysec`) if jobs must survive a Redis restart; at most the last second
//!   of transitions is lost, and each lost transition is one whole script (never half of one).
//!
//! # Enqueue
//!
//! Concurrent enqueues of one process are gathered into batches, each one call of
//! `lua/enqueue.lua` (see `redis_enqueue.rs`): under load one call creates dozens of jobs, with
//! one `RPUSH` and one `ZADD` per index for the whole batch, and every caller still answers
//! only once the call that created its job has returned. Alone, a job goes at once.
//!
//! # Fetch
//!
//! 1. The claim script registers the session as alive, promotes due delayed jobs (bounded),
//!    pops up to `max` ids from the head of `{p}:ready`, marks each job running (one more
//!    attempt, `started_at`, `session`, out of its state index) and appends the ids to the
//!    session's in-flight list — all in one step.
//! 2. When nothing was claimed and the caller is willing to wait, fetch blocks with `BLMOVE
//!    {p}:ready → {p}:inflight:{session}` on a dedicated connection (a blocking command on the
//!    shared multiplexed connection would stall every other command behind it) for at most the
//!    remaining wait, the time until the next delayed job is due, and [`MAX_BLOCK`]. The cap
//!    bounds how late a delayed job scheduled *during* the block can start.
//! 3. A popped id is marked running by the claim script, which also tops the batch up from the
//!    ready list. A crash between the pop and the mark leaves the id in the in-flight list in
//!    state `queued`; recovery (or the same session's resync) finds it there.
//!
//! Idle pickup therefore takes about one round trip after the enqueue.
//!
//! # Lost replies
//!
//! A call can run on the server and still fail on the client (a response timeout while Redis
//! was stalled, a dropped connection, a cancelled future). For a claim that would strand jobs
//! marked running for a session that is alive and keeps heartbeating, so recovery would never
//! return them. Each claim therefore stamps its jobs with a fresh `claim` token; the token of a
//! call that did not succeed is remembered per session (also when the fetch future is dropped),
//! and the session's next fetch asks the claim script to re-deliver jobs it holds under those
//! tokens and to mark ids a blocking pop moved but nobody marked. This only ever reads the
//! session's own in-flight list.
//!
//! # Acknowledgements and stale acks
//!
//! `complete`, `retry_at`, `bury` and `release` act only on a job that is `running` *for the
//! calling session*. If the session was declared dead and its job recovered (and perhaps
//! claimed by another worker), the late ack of the first worker is a no-op that returns `Ok`:
//! the current owner's ack is the one that counts, and the job runs at least once more.
//!
//! # Sessions and recovery
//!
//! `heartbeat` and every fetch set the session's score in `{p}:sessions` to now;
//! [`Queue::recover_abandoned`] takes sessions silent for at least `stale_after`, moves every id
//! in their in-flight lists back to the head of the ready list (running jobs become `queued`
//! with an "abandoned by worker NAME (no heartbeat for Ns)" history entry; their attempt stays
//! counted) and forgets the session. `deregister` does the same for its own session at once, so
//! nothing a stopping worker still holds (e.g. an id popped as the fetch was cancelled) is left
//! behind. A live session reads what it holds with [`Queue::held`] (`lua/held.lua`: its
//! in-flight ids still running for it) and releases what it is not running.
//!
//! # Indexes
//!
//! Listing, counting and stats never scan the queue: each state has a sorted set of its ids (and
//! one per kind), moved by the same scripts that change the state. `total` and stats are
//! `ZCARD`s, pages are `ZREVRANGE` offsets (newest first). The `queued` index is scored by
//! `run_at` rather than by `state_at`, so its lowest member is the most overdue job and
//! `oldest_queued_age_s` costs one `ZRANGE 0 0`. Jobs that become due again by an operator
//! retry, a release or a recovery get `run_at` = now.
//!
//! `running` is the exception: the in-flight lists already hold exactly the claimed ids, so
//! running jobs are counted and listed by walking them (`lua/running.lua`, O(jobs in flight),
//! bounded by the workers' total concurrency). An index would cost every claim and every ack
//! two more sorted-set writes per job on the hottest path (measured: about a fifth of the Redis
//! time of a drain).
//!
//! # Clocks
//!
//! Every time a script records (`created_at`, `state_at`, `started_at`, `finished_at`, history
//! entries, heartbeats) and every "now" it compares with (promotion, staleness) is Redis's own
//! clock (`TIME`), so workers on hosts whose clocks disagree still agree on who is stale and
//! what is due. `run_at` of an enqueue or a retry comes from the caller's clock (a
//! [`DateTime<Utc>`]); host skew shifts such a delay by the skew and nothing else.
//!
//! # Timeouts
//!
//! Commands go through one [`ConnectionManager`] (multiplexed, reconnecting) with a deliberate
//! [`RESPONSE_TIMEOUT`] and [`CONNECTION_TIMEOUT`]: a stalled or unreachable Redis turns into a
//! [`QueueError::Redis`] within about two seconds instead of a hang, so the intake answers
//! Twilio and workers back off. Blocking pops use their own connections with a timeout of the
//! longest block plus [`RESPONSE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, FromRedisValue, Script, Value};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::lua::script;
use super::outcomes;
use super::redis_ack::{AckArgs, Acker};
use super::redis_enqueue::{Enqueuer, JobArgs};
use super::{
    Attempt, Enqueued, JobDetail, JobPage, JobState, JobSummary, Lease, ListQuery, NewJob, Queue,
    QueueError, QueueResult, Stats, WorkerId, new_job_id, page_limit,
};
use crate::kinds::JobKind;

/// How long a command may wait for its reply before failing.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting (or reconnecting) may take before failing.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest single blocking pop. Bounds how late a delayed job that was scheduled while a
/// fetch was blocked can start.
pub const MAX_BLOCK: Duration = Duration::from_secs(1);
/// Delayed jobs promoted per fetch, at most (far below Lua's ~8,000-value unpack limit).
pub const PROMOTE_LIMIT: usize = 500;
/// Jobs one fetch may claim, at most.
pub const MAX_CLAIM: usize = 1_000;
/// Jobs (or in-flight ids) one call of a bulk script handles: `retry_all`, `prune`, recovery.
pub const BATCH: usize = 500;

static CLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/claim.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/heartbeat.lua")));
static RECOVER: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/recover.lua")));
static RETRY: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/retry.lua")));
static DISCARD: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/discard.lua")));
static PRUNE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/prune.lua")));
static RUNNING: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/running.lua")));
static HELD: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/held.lua")));
static SESSIONS: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/sessions.lua")));

/// Marks "a blocking pop may have moved an id nobody marked" in a session's lost claims.
const SWEEP: &str = "-";

/// The Redis queue. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// The key prefix, without the trailing colon.
    prefix: String,
    /// Opens the dedicated connections of blocking pops.
    client: Client,
    /// Every non-blocking command.
    conn: ConnectionManager,
    /// Enqueues, gathered into batches on `conn`.
    enqueuer: Enqueuer,
    /// Acks, gathered into batches on `conn`.
    acker: Acker,
    /// Idle connections for blocking pops: one per concurrent blocked fetch. A connection is
    /// returned only after a clean pop, so a cancelled fetch closes its connection and Redis
    /// abandons the pop.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    /// Per session, the tokens of claim calls whose outcome is unknown (and [`SWEEP`]). The
    /// session's next fetch resyncs them (see "Lost replies" in the module doc).
    lost: Mutex<HashMap<String, Vec<String>>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain collections
/// updated in one step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Remembers claim tokens as lost unless disarmed: dropping it (an error returned with `?`, or
/// the fetch future cancelled mid-call) records them for the session's next fetch.
struct LostGuard<'a> {
    inner: &'a Inner,
    session: &'a str,
    tokens: Vec<String>,
}

impl LostGuard<'_> {
    fn disarm(&mut self) {
        self.tokens.clear();
    }
}

impl Drop for LostGuard<'_> {
    fn drop(&mut self) {
        if !self.tokens.is_empty() {
            let mut lost = lock(&self.inner.lost);
            lost.entry(self.session.to_owned())
                .or_default()
                .append(&mut self.tokens);
        }
    }
}

/// What one claim call returned.
struct Claimed {
    leases: Vec<Lease>,
    /// `run_at` of the earliest delayed job (only looked up when nothing was claimed).
    next_due_ms: Option<i64>,
    /// Redis's clock at the call.
    now_ms: i64,
}

/// One stored history entry.
#[derive(Deserialize)]
struct StoredAttempt {
    at: f64,
    error: String,
    worker: String,
}

/// A Redis client for `url` with `TCP_NODELAY` set.
///
/// redis-rs leaves Nagle's algorithm on by default; every command here is small and waits for
/// its reply, which is the pattern Nagle delays (a write waits for the previous segment's ACK).
/// Every Redis connection of moked (queue, rate limiter, pacing) is made through this function.
pub fn client(url: &str) -> ::redis::RedisResult<Client> {
    use ::redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Client::open(info.set_tcp_settings(tcp))
}

impl RedisQueue {
    /// Connects to Redis at `url` (`redis://` or `rediss://`; a `#insecure` fragment skips TLS
    /// certificate checks) and uses keys under `prefix:`.
    ///
    /// Fails if Redis cannot be reached within [`CONNECTION_TIMEOUT`] (a few attempts).
    pub async fn connect(url: &str, prefix: &str) -> QueueResult<RedisQueue> {
        if prefix.is_empty() {
            return Err(QueueError::Invalid("the Redis key prefix is empty".into()));
        }
        let client = client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisQueue {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                client,
                enqueuer: Enqueuer::start(conn.clone(), prefix.to_owned()),
                acker: Acker::start(conn.clone(), prefix.to_owned()),
                conn,
                blocking: Mutex::new(Vec::new()),
                lost: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The key prefix (without the trailing colon).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Deletes every key under the prefix (`SCAN` + `UNLINK`). For tests and teardown; jobs
    /// written concurrently may survive.
    pub async fn delete_all(&self) -> QueueResult<()> {
        let mut conn = self.conn();
        let pattern = format!("{}:*", glob_escape(&self.inner.prefix));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                ::redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.inner.prefix)
    }

    /// The state index, overall or for one kind.
    fn index(&self, state: JobState, kind: Option<JobKind>) -> String {
        match kind {
            Some(kind) => self.key(&format!("s:{state}:{kind}")),
            None => self.key(&format!("s:{state}")),
        }
    }

    /// One claim call: resync lost claims of the session, mark `popped`, promote, claim.
    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        popped: Option<&str>,
    ) -> QueueResult<Claimed> {
        let previous = lock(&self.inner.lost)
            .remove(&worker.session)
            .unwrap_or_default();
        let token = format!("{:016x}", rand::random::<u64>());
        let mut guard = LostGuard {
            inner: &self.inner,
            session: &worker.session,
            tokens: previous.clone(),
        };
        guard.tokens.push(token.clone());

        let reply: Vec<Value> = CLAIM
            .arg(&self.inner.prefix)
            .arg(&worker.session)
            .arg(&worker.name)
            .arg(max)
            .arg(PROMOTE_LIMIT)
            .arg(&token)
            .arg(popped.unwrap_or(""))
            .arg(previous.join(" "))
            .invoke_async(&mut self.conn())
            .await?;
        let claimed = parse_claim(reply)?;
        // The call succeeded: its own token is settled. A resync that filled the batch may have
        // left more behind, so its tokens stay for the next fetch.
        guard.disarm();
        if !previous.is_empty() && claimed.leases.len() >= max {
            guard.tokens = previous;
        }
        Ok(claimed)
    }

    /// Blocks up to `timeout` for an id on the ready list, moving it to the session's in-flight
    /// list. `Ok(None)` when the time ran out.
    async fn block_pop(&self, worker: &WorkerId, timeout: Duration) -> QueueResult<Option<String>> {
        let pooled = lock(&self.inner.blocking).pop();
        if let Some(mut conn) = pooled {
            match self.blmove(&mut conn, worker, timeout).await {
                Ok(popped) => {
                    lock(&self.inner.blocking).push(conn);
                    return Ok(popped);
                }
                // An idle pooled connection may have been closed meanwhile (a Redis restart, a
                // proxy's idle timeout): try once more on a fresh one rather than fail the
                // fetch. Should the failed pop have run after all, the sweep finds its id.
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    tracing::debug!(error = %e, "a pooled blocking connection failed; reconnecting");
                    lock(&self.inner.lost)
                        .entry(worker.session.clone())
                        .or_default()
                        .push(SWEEP.to_owned());
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut conn = self.blocking_connection().await?;
        let popped = self.blmove(&mut conn, worker, timeout).await?;
        lock(&self.inner.blocking).push(conn);
        Ok(popped)
    }

    /// `BLMOVE {p}:ready {p}:inflight:{session} LEFT RIGHT timeout`.
    async fn blmove(
        &self,
        conn: &mut MultiplexedConnection,
        worker: &WorkerId,
        timeout: Duration,
    ) -> ::redis::RedisResult<Option<String>> {
        ::redis::cmd("BLMOVE")
            .arg(self.key("ready"))
            .arg(self.key(&format!("inflight:{}", worker.session)))
            .arg("LEFT")
            .arg("RIGHT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await
    }

    /// A new connection for blocking pops.
    async fn blocking_connection(&self) -> QueueResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(MAX_BLOCK + RESPONSE_TIMEOUT));
        let mut conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Named so `CLIENT LIST` shows which connections are moked's blocked fetches. Best
        // effort: a server that refuses names still serves the pop.
        let name = format!("moked-fetch:{}", self.inner.prefix)
            .replace(|c: char| !c.is_ascii_graphic(), "_");
        if let Err(e) = ::redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(name)
            .query_async::<()>(&mut conn)
            .await
        {
            tracing::debug!(error = %e, "could not name a blocking connection");
        }
        Ok(conn)
    }

    /// One acknowledgement. Returns whether the job moved (false: a stale ack, ignored).
    async fn ack(
        &self,
        worker: &WorkerId,
        id: &str,
        op: &'static str,
        error: &str,
        at: Option<DateTime<Utc>>,
    ) -> QueueResult<()> {
        let moved = self
            .inner
            .acker
            .ack(AckArgs {
                session: worker.session.clone(),
                name: worker.name.clone(),
                id: id.to_owned(),
                op,
                error: error.to_owned(),
                at_ms: at.map(|at| at.timestamp_millis()).unwrap_or(0),
            })
            .await?;
        if !moved {
            tracing::warn!(
                job_id = id,
                session = %worker.session,
                op,
                "ignored a stale ack: the job is no longer running for this session"
            );
        }
        Ok(())
    }

    /// Runs the prune script over `states` until a call comes back short: jobs finished before
    /// `before` and, with `keep`, all but the newest `keep` of each state.
    async fn prune_states(
        &self,
        states: &[JobState],
        before: DateTime<Utc>,
        keep: Option<u64>,
    ) -> QueueResult<u64> {
        let mut total = 0;
        loop {
            let mut call = PRUNE.prepare_invoke();
            call.arg(&self.inner.prefix)
                .arg(before.timestamp_millis())
                .arg(BATCH)
                .arg(keep.map(|k| k.to_string()).unwrap_or_default());
            for state in states {
                call.arg(state.as_str());
            }
            let (deleted, scanned): (u64, usize) = call.invoke_async(&mut self.conn()).await?;
            total += deleted;
            if scanned < BATCH {
                return Ok(total);
            }
        }
    }

    /// Runs the recovery script until it reports nothing more to do.
    async fn recover(&self, stale_after: Duration, session: &str) -> QueueResult<u64> {
        let stale_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
        let mut moved = 0;
        loop {
            let (n, more): (u64, i64) = RECOVER
                .arg(&self.inner.prefix)
                .arg(stale_ms)
                .arg(BATCH)
                .arg(session)
                .invoke_async(&mut self.conn())
                .await?;
            moved += n;
            if more == 0 {
                return Ok(moved);
            }
        }
    }

    /// Every running job (optionally of one kind) as (id, kind, started_at ms), newest first.
    async fn running(&self, kind: Option<JobKind>) -> QueueResult<Vec<(String, String, i64)>> {
        let reply: Vec<Value> = RUNNING
            .arg(&self.inner.prefix)
            .arg(kind.map(JobKind::as_str).unwrap_or(""))
            .invoke_async(&mut self.conn())
            .await?;
        let mut jobs = Vec::with_capacity(reply.len() / 3);
        let mut values = reply.into_iter();
        while let (Some(id), Some(kind), Some(started)) =
            (values.next(), values.next(), values.next())
        {
            jobs.push((value(id)?, value(kind)?, value(started)?));
        }
        jobs.sort_by(|a: &(String, String, i64), b| (b.2, &b.0).cmp(&(a.2, &a.0)));
        Ok(jobs)
    }

    /// The summaries of `ids`, in order; ids whose job vanished meanwhile are skipped.
    async fn summaries(&self, ids: &[String]) -> QueueResult<Vec<JobSummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("job:{id}")))
                .arg(&SUMMARY_FIELDS);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.conn()).await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for (id, row) in ids.iter().zip(rows) {
            let fields: HashMap<&str, String> = SUMMARY_FIELDS
                .iter()
                .copied()
                .zip(row)
                .filter_map(|(name, value)| value.map(|v| (name, v)))
                .collect();
            if fields.contains_key("state") {
                jobs.push(summary(id, &fields)?);
            }
        }
        Ok(jobs)
    }
}

/// The hash fields a summary is built from.
const SUMMARY_FIELDS: [&str; 7] = [
    "kind",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "run_at",
    "finished_at",
];

#[async_trait]
impl Queue for RedisQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        let (dedupe_key, dedupe_ttl_ms) = match job.dedupe {
            // PX needs at least 1 ms.
            Some(d) => (d.key, d.ttl.as_millis().max(1)),
            None => (String::new(), 0),
        };
        let args = JobArgs {
            id: new_job_id(),
            kind: job.kind.as_str(),
            payload: job.payload,
            run_at: job
                .run_at
                .map(|at| at.timestamp_millis().to_string())
                .unwrap_or_default(),
            dedupe_key,
            dedupe_ttl_ms: u64::try_from(dedupe_ttl_ms).unwrap_or(u64::MAX),
        };
        self.inner.enqueuer.enqueue(args).await
    }

    async fn fetch(
        &self,
        worker: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> QueueResult<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(MAX_CLAIM);
        let deadline = Instant::now() + wait;
        // Armed while an id may sit unmarked in our in-flight list: from before a blocking pop
        // until the claim that marks it has succeeded.
        let mut sweep: Option<LostGuard<'_>> = None;
        let mut popped: Option<String> = None;
        loop {
            let claimed = self.claim(worker, max, popped.as_deref()).await?;
            if let Some(mut guard) = sweep.take() {
                guard.disarm();
            }
            if !claimed.leases.is_empty() {
                return Ok(claimed.leases);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut block = (deadline - now).min(MAX_BLOCK);
            if let Some(due) = claimed.next_due_ms {
                let until = u64::try_from(due - claimed.now_ms).unwrap_or(0);
                block = block.min(Duration::from_millis(until));
            }
            // BLMOVE's timeout 0 means "forever"; a job due now is promoted by the next claim.
            let block = block.max(Duration::from_millis(1));
            let mut guard = LostGuard {
                inner: &self.inner,
                session: &worker.session,
                tokens: vec![SWEEP.to_owned()],
            };
            popped = self.block_pop(worker, block).await?;
            if popped.is_none() {
                guard.disarm();
            }
            sweep = Some(guard);
        }
    }

    async fn complete(&self, worker: &WorkerId, id: &str) -> QueueResult<()> {
        self.ack(worker, id, "done", "", None).await
    }

    async fn retry_at(
        &self,
        worker: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()> {
        self.ack(worker, id, "retry", error, Some(at)).await
    }

    async fn bury(&self, worker: &WorkerId, id: &str, error: &str) -> QueueResult<()> {
        self.ack(worker, id, "dead", error, None).await
    }

    async fn release(&self, worker: &WorkerId, id: &str) -> QueueResult<()> {
        self.ack(worker, id, "release", "", None).await
    }

    async fn heartbeat(&self, worker: &WorkerId) -> QueueResult<()> {
        HEARTBEAT
            .arg(&self.inner.prefix)
            .arg(&worker.session)
            .arg(&worker.name)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn deregister(&self, worker: &WorkerId) -> QueueResult<()> {
        let moved = self.recover(Duration::ZERO, &worker.session).await?;
        lock(&self.inner.lost).remove(&worker.session);
        if moved > 0 {
            tracing::warn!(
                session = %worker.session,
                jobs = moved,
                "deregistered a session that still held jobs; they were re-queued"
            );
        }
        Ok(())
    }

    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64> {
        // Not logged here: the caller (the runner's heartbeat loop) reports the count once.
        self.recover(stale_after, "").await
    }

    async fn held(&self, worker: &WorkerId) -> QueueResult<Vec<String>> {
        // One script: the in-flight list and each job's owner are read at one instant (O(jobs
        // this session holds), bounded by its claim limit).
        Ok(HELD
            .arg(&self.inner.prefix)
            .arg(&worker.session)
            .invoke_async(&mut self.conn())
            .await?)
    }

    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage> {
        let limit = page_limit(query.limit) as usize;
        let states: Vec<JobState> = match query.state {
            Some(state) => vec![state],
            None => JobState::ALL.to_vec(),
        };
        let (mut at, mut offset) = match &query.cursor {
            Some(cursor) => parse_cursor(cursor, &states)?,
            None => (0, 0),
        };

        let running: Vec<String> = if states.contains(&JobState::Running) {
            let running = self.running(query.kind).await?;
            running.into_iter().map(|(id, _, _)| id).collect()
        } else {
            Vec::new()
        };
        let mut pipe = ::redis::pipe();
        for state in &states {
            pipe.cmd("ZCARD").arg(self.index(*state, query.kind));
        }
        let mut counts: Vec<u64> = pipe.query_async(&mut self.conn()).await?;
        if let Some(at) = states.iter().position(|s| *s == JobState::Running) {
            counts[at] = running.len() as u64;
        }
        let total = counts.iter().sum();

        let mut ids: Vec<String> = Vec::with_capacity(limit);
        while at < states.len() && ids.len() < limit {
            let need = limit - ids.len();
            let page: Vec<String> = if states[at] == JobState::Running {
                running.iter().skip(offset).take(need).cloned().collect()
            } else {
                ::redis::cmd("ZREVRANGE")
                    .arg(self.index(states[at], query.kind))
                    .arg(offset)
                    .arg(offset + need - 1)
                    .query_async(&mut self.conn())
                    .await?
            };
            let got = page.len();
            ids.extend(page);
            if got < need {
                at += 1;
                offset = 0;
            } else {
                offset += got;
            }
        }

        // More pages exist if the current state has members past the offset or a later state
        // has any (counts are a snapshot; a page may come back short at the very end).
        let more = at < states.len()
            && (counts[at] > offset as u64 || counts[at + 1..].iter().any(|&c| c > 0));
        let next_cursor = more.then(|| format!("{}.{offset}", states[at]));
        let jobs = self.summaries(&ids).await?;
        Ok(JobPage {
            total,
            jobs,
            next_cursor,
        })
    }

    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>> {
        let (fields, history): (HashMap<String, String>, Vec<String>) = ::redis::pipe()
            .cmd("HGETALL")
            .arg(self.key(&format!("job:{id}")))
            .cmd("LRANGE")
            .arg(self.key(&format!("hist:{id}")))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        if !fields.contains_key("state") {
            return Ok(None);
        }
        let fields: HashMap<&str, String> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let summary = summary(id, &fields)?;
        let history = history
            .iter()
            .map(|entry| {
                let stored: StoredAttempt = serde_json::from_str(entry).map_err(|e| {
                    QueueError::Corrupt(format!("job {id}: history entry {entry:?}: {e}"))
                })?;
                Ok(Attempt {
                    at: millis(id, "history at", stored.at as i64)?,
                    error: stored.error,
                    worker: stored.worker,
                })
            })
            .collect::<QueueResult<Vec<_>>>()?;
        let started_at = optional_time(id, &fields, "started_at")?;
        let worker = match summary.state {
            JobState::Running => fields.get("session").cloned(),
            _ => None,
        };
        let payload = fields.get("payload").cloned().unwrap_or_default();
        Ok(Some(JobDetail {
            summary,
            payload,
            history,
            started_at,
            worker,
        }))
    }

    async fn retry(&self, id: &str) -> QueueResult<bool> {
        let (moved, _): (u64, u64) = RETRY
            .arg(&self.inner.prefix)
            .arg("id")
            .arg(id)
            .arg("")
            .arg(1)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(moved == 1)
    }

    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64> {
        if !matches!(state, JobState::Dead | JobState::Retrying) {
            return Err(QueueError::Invalid(format!(
                "only dead or retrying jobs can be retried, not {state}"
            )));
        }
        let mut total = 0;
        loop {
            let (moved, scanned): (u64, usize) = RETRY
                .arg(&self.inner.prefix)
                .arg("all")
                .arg(state.as_str())
                .arg(kind.map(JobKind::as_str).unwrap_or(""))
                .arg(BATCH)
                .invoke_async(&mut self.conn())
                .await?;
            total += moved;
            if scanned < BATCH {
                return Ok(total);
            }
        }
    }

    async fn discard(&self, id: &str) -> QueueResult<bool> {
        let moved: i64 = DISCARD
            .arg(&self.inner.prefix)
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(moved == 1)
    }

    async fn stats(&self) -> QueueResult<Stats> {
        let mut pipe = ::redis::pipe();
        for state in JobState::ALL {
            pipe.cmd("ZCARD").arg(self.index(state, None));
        }
        for kind in JobKind::ALL {
            for state in JobState::ALL {
                pipe.cmd("ZCARD").arg(self.index(state, Some(kind)));
            }
        }
        pipe.cmd("ZRANGE")
            .arg(self.index(JobState::Queued, None))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        pipe.cmd("TIME");
        let mut replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;

        let (secs, micros): (i64, i64) = take(&mut replies)?;
        let now_ms = secs * 1000 + micros / 1000;
        let oldest: Vec<(String, f64)> = take(&mut replies)?;
        let cards: Vec<u64> = replies
            .into_iter()
            .map(value::<u64>)
            .collect::<QueueResult<_>>()?;

        // Running counts are not ZCARDs (there is no running index): they come from the
        // in-flight lists, into the running slot of the overall six and of each kind's six.
        let running = self.running(None).await?;
        let slot = JobState::ALL
            .iter()
            .position(|s| *s == JobState::Running)
            .unwrap_or(1);
        let mut cards = cards;
        cards[slot] = running.len() as u64;
        for (k, kind) in JobKind::ALL.into_iter().enumerate() {
            let count = running.iter().filter(|r| r.1 == kind.as_str()).count();
            cards[6 * (k + 1) + slot] = count as u64;
        }

        let mut stats = Stats::default();
        for (state, count) in JobState::ALL.into_iter().zip(&cards) {
            stats.counts.insert(state, *count);
        }
        for (kind, counts) in JobKind::ALL.into_iter().zip(cards[6..].chunks(6)) {
            if counts.iter().any(|&c| c > 0) {
                let per_state = JobState::ALL.into_iter().zip(counts.iter().copied());
                stats
                    .by_kind
                    .insert(kind.as_str().to_owned(), per_state.collect());
            }
        }
        stats.oldest_queued_age_s = oldest
            .first()
            .map(|(_, run_at)| *run_at as i64)
            .filter(|run_at| *run_at <= now_ms)
            .map(|run_at| (now_ms - run_at) as f64 / 1000.0);
        Ok(stats)
    }

    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64> {
        self.prune_states(&[JobState::Done, JobState::Discarded], before, None)
            .await
    }

    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64> {
        self.prune_states(&[JobState::Dead], before, Some(keep))
            .await
    }

    async fn ping(&self) -> QueueResult<()> {
        ::redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn record_outcomes(&self, counts: &[outcomes::OutcomeCount]) -> QueueResult<()> {
        outcomes::redis_record(&mut self.conn(), &self.inner.prefix, counts).await
    }

    async fn outcome_series(
        &self,
        span: outcomes::Span,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> QueueResult<Vec<outcomes::Bucket>> {
        outcomes::redis_series(&mut self.conn(), &self.inner.prefix, span, from, to).await
    }

    async fn outcome_totals(&self) -> QueueResult<outcomes::Counts> {
        outcomes::redis_totals(&mut self.conn(), &self.inner.prefix).await
    }

    async fn sessions(&self) -> QueueResult<Vec<super::SessionInfo>> {
        // One script: each session's liveness and in-flight jobs read at one instant
        // (O(sessions + jobs in flight), bounded by the fleet's concurrency).
        type Reply = Vec<(String, String, String, Vec<(String, String, String)>)>;
        let reply: Reply = SESSIONS
            .arg(&self.inner.prefix)
            .invoke_async(&mut self.conn())
            .await?;
        let ms = |s: &str| {
            s.parse::<f64>()
                .ok()
                .map(|v| crate::store::from_ms(v as i64))
        };
        let mut out: Vec<super::SessionInfo> = reply
            .into_iter()
            .map(|(session, name, seen, jobs)| {
                let mut running: Vec<super::RunningJob> = jobs
                    .into_iter()
                    .map(|(id, kind, started)| super::RunningJob {
                        id,
                        kind,
                        started_at: ms(&started),
                    })
                    .collect();
                running.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
                super::SessionInfo {
                    name: if name.is_empty() {
                        session.split('#').next().unwrap_or_default().to_owned()
                    } else {
                        name
                    },
                    last_seen_at: ms(&seen).unwrap_or_default(),
                    session,
                    running,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.session).cmp(&(&b.name, &b.session)));
        Ok(out)
    }
}

/// Parses the claim script's reply: `{next_due, now, (id, kind, payload, attempts,
/// created_at)*}`.
fn parse_claim(reply: Vec<Value>) -> QueueResult<Claimed> {
    let mut values = reply.into_iter();
    let mut next = |what: &str| {
        values
            .next()
            .ok_or_else(|| QueueError::Corrupt(format!("claim reply lacks {what}")))
    };
    let next_due_ms: i64 = value(next("next_due")?)?;
    let now_ms: i64 = value(next("now")?)?;
    let mut leases = Vec::new();
    while let Ok(id) = next("id") {
        let id: String = value(id)?;
        let kind: String = value(next("kind")?)?;
        let payload: String = value(next("payload")?)?;
        let attempts: u32 = value(next("attempts")?)?;
        let created_at: i64 = value(next("created_at")?)?;
        let created_at = millis(&id, "created_at", created_at)?;
        leases.push(Lease {
            id,
            kind,
            payload,
            attempts,
            created_at,
        });
    }
    Ok(Claimed {
        leases,
        next_due_ms: (next_due_ms > 0).then_some(next_due_ms),
        now_ms,
    })
}

/// Converts one reply value.
fn value<T: FromRedisValue>(v: Value) -> QueueResult<T> {
    T::from_redis_value(v).map_err(|e| QueueError::Corrupt(format!("unexpected reply: {e}")))
}

/// Takes and converts the last value of a pipeline reply.
fn take<T: FromRedisValue>(replies: &mut Vec<Value>) -> QueueResult<T> {
    let v = replies
        .pop()
        .ok_or_else(|| QueueError::Corrupt("short pipeline reply".into()))?;
    value(v)
}

/// Milliseconds since the epoch as a time.
fn millis(id: &str, what: &str, ms: i64) -> QueueResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| QueueError::Corrupt(format!("job {id}: {what} {ms} is out of range")))
}

fn required_time(
    id: &str,
    fields: &HashMap<&str, String>,
    name: &str,
) -> QueueResult<DateTime<Utc>> {
    optional_time(id, fields, name)?
        .ok_or_else(|| QueueError::Corrupt(format!("job {id}: missing {name}")))
}

fn optional_time(
    id: &str,
    fields: &HashMap<&str, String>,
    name: &str,
) -> QueueResult<Option<DateTime<Utc>>> {
    match fields.get(name) {
        None => Ok(None),
        Some(text) => {
            let ms: i64 = text
                .parse()
                .map_err(|_| QueueError::Corrupt(format!("job {id}: {name} {text:?}")))?;
            millis(id, name, ms).map(Some)
        }
    }
}

/// Builds a summary from a job hash's fields.
fn summary(id: &str, fields: &HashMap<&str, String>) -> QueueResult<JobSummary> {
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| QueueError::Corrupt(format!("job {id}: missing {name}")))
    };
    let state = get("state")?;
    let state = state
        .parse()
        .map_err(|_| QueueError::Corrupt(format!("job {id}: state {state:?}")))?;
    let attempts = get("attempts")?;
    let attempts = attempts
        .parse()
        .map_err(|_| QueueError::Corrupt(format!("job {id}: attempts {attempts:?}")))?;
    Ok(JobSummary {
        id: id.to_owned(),
        kind: get("kind")?.clone(),
        state,
        attempts,
        last_error: fields.get("last_error").cloned(),
        created_at: required_time(id, fields, "created_at")?,
        run_at: required_time(id, fields, "run_at")?,
        finished_at: optional_time(id, fields, "finished_at")?,
    })
}

/// Parses a listing cursor `{state}.{offset}` into (position in `states`, offset).
fn parse_cursor(cursor: &str, states: &[JobState]) -> QueueResult<(usize, usize)> {
    let invalid = || QueueError::Invalid(format!("invalid cursor {cursor:?}"));
    let (state, offset) = cursor.split_once('.').ok_or_else(invalid)?;
    let state: JobState = state.parse().map_err(|_| invalid())?;
    let offset = offset.parse().map_err(|_| invalid())?;
    let at = states
        .iter()
        .position(|s| *s == state)
        .ok_or_else(invalid)?;
    Ok((at, offset))
}

/// Escapes glob metacharacters for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_through_its_text_form() {
        let states = JobState::ALL.to_vec();
        assert_eq!(parse_cursor("dead.100", &states).ok(), Some((3, 100)));
        assert!(parse_cursor("dead", &states).is_err());
        assert!(parse_cursor("nope.1", &states).is_err());
        assert!(parse_cursor("done.1", &[JobState::Dead]).is_err());
    }

    #[test]
    fn glob_metacharacters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("moked"), "moked");
    }
}

//! The database backend: the queue as rows of the store's `jobs` table, on SQLite or Postgres,
//! with one code path (runtime `sqlx::query` over the `Any` pool, `$N` placeholders, times as
//! `BIGINT` milliseconds) and dialect branches only for row locking, transactions and wake-ups.
//!
//! # Tables (`migrations/*/0001_init.sql`)
//! * `jobs` — one row per job. `state` is one of [`JobState`]'s six names; `state_at` is when it
//!   entered that state (listing order, pruning); `session` is the owning worker session while
//!   (and only while) `state = 'running'`.
//! * `job_attempts` — the history: one row per failed attempt or abandonment, ordered by
//!   `(at, id)`; deleted with its job (`ON DELETE CASCADE`).
//! * `webhook_receipt` — dedupe keys with their first job and expiry.
//! * `worker_sessions` — one row per live worker session with its last heartbeat.
//!
//! # SQL invariants
//! * **A claim is one statement.** `fetch` picks the due rows (`state IN ('queued','retrying')
//!   AND run_at <= now`, oldest `run_at` first, `LIMIT max`) in a `MATERIALIZED` CTE and flips
//!   them to `running` with `attempts + 1` and the caller's session in the same `UPDATE …
//!   RETURNING`. On Postgres the CTE ends in `FOR UPDATE SKIP LOCKED`: concurrent fetchers (in
//!   any number of processes) lock disjoint rows instead of queueing behind each other's locks,
//!   and a row locked by one claim is invisible to the next, so no job is claimed twice. The CTE
//!   is materialised so the `LIMIT` subquery runs once (an `IN (subquery … LIMIT)` may be
//!   re-evaluated by the planner and claim more than `max`). SQLite has one writer at a time,
//!   so the same statement without the lock clause is already atomic.
//! * **Acks are owned.** `complete`, `retry_at`, `bury` and `release` match `state = 'running'
//!   AND session = <caller's session>`; after [`Queue::recover_abandoned`] has taken a job away
//!   (session set to NULL), a late ack from the old session changes nothing.
//! * **Dedupe is one upsert.** `INSERT INTO webhook_receipt … ON CONFLICT (key) DO UPDATE …
//!   WHERE webhook_receipt.expires_at <= now RETURNING job_id` in the enqueue transaction: a row
//!   comes back only when the key was free or expired (taken over), otherwise the key's first
//!   job is read back and returned as [`Enqueued::Duplicate`]. Postgres makes a concurrent
//!   inserter of the same key wait for the first transaction and then take the `DO UPDATE`
//!   branch, so exactly one of several concurrent enqueues creates a job.
//! * **Recovery deletes the session row first.** `DELETE FROM worker_sessions … WHERE
//!   heartbeat_at <= now - stale RETURNING …` decides, under the row lock, which of several
//!   recoverers handles a stale session (and that it is still stale); its running jobs go back
//!   to `queued` in the same transaction with an "abandoned by worker …" history entry (also
//!   their `last_error`). Running jobs whose session row does not exist at all (a worker that
//!   died before its first heartbeat) are recovered once their `started_at` is as old as the
//!   stale window. A zero window therefore means "every session is stale now".
//! * **Bulk work is bounded.** `retry_all`, `prune` and `prune_dead` move or delete at most
//!   [`BATCH`] rows per statement and loop, so none holds a long lock nor builds a huge
//!   transaction. `prune_dead`'s cap deletes what lies past the newest `keep` dead jobs in
//!   listing order (`ORDER BY state_at DESC, id DESC … OFFSET keep`), re-read by every batch.
//!
//! # Clocks
//! Liveness is judged on the **database server's clock**: `heartbeat_at`, a claim's
//! `started_at` and the stale cutoff of [`Queue::recover_abandoned`] all come from it
//! (`julianday('now')` on SQLite, `clock_timestamp()` on Postgres), so workers on hosts whose
//! clocks disagree still agree on who is stale. Other times (`created_at`, `state_at`, a due-now
//! `run_at`, history entries) come from the calling host, where skew only shifts a timestamp or
//! a delay by the skew.
//!
//! # Transactions and SQLite
//! Multi-statement transactions begin with `BEGIN IMMEDIATE` on SQLite: the write lock is taken
//! up front (waiting up to the pool's 5 s `busy_timeout`), so a transaction never has to
//! upgrade a read snapshot to a write lock, which in WAL mode fails at once with `SQLITE_BUSY`
//! instead of waiting; they are the store's write transactions ([`Db::write`]), so the
//! process's queue and store writers take turns through one gate rather than SQLite's sleeping
//! busy handler. Single statements run in autocommit. Postgres uses plain `BEGIN` (READ
//! COMMITTED); correctness there comes from row locks and `ON CONFLICT`, as above.
//!
//! # Wake-ups
//! An idle `fetch` waits on a [`tokio::sync::Notify`] shared by all clones of a [`DbQueue`]; it
//! is armed *before* the claim query runs, so a job committed after the claim's snapshot always
//! wakes it (no lost wake-ups). Every transition that makes a job claimable (enqueue, retry,
//! release, recovery, a retry scheduled for later) notifies it after commit. Other processes:
//! * **Postgres**: the transition also runs `NOTIFY moked_jobs` (delivered on commit); a task
//!   per `DbQueue` `LISTEN`s on a dedicated connection and turns every notification into a local
//!   wake-up. A 1 s safety poll remains; while the listener is down (reconnecting) the poll drops
//!   to 100 ms.
//! * **SQLite**: there is no cross-process signal, so an idle fetch re-checks every 100 ms (a
//!   read of `MIN(run_at)` over the due index, no write lock), keeping pickup of a job enqueued
//!   by another process (the intake) well under 250 ms.
//!
//! Either way a waiting fetch also wakes when the earliest delayed job becomes due.
//!
//! # Cancellation
//! Dropping a `fetch` future never strands a job: while it waits nothing is claimed, and the
//! claim runs on a spawned task that skips the claim if the fetch is already gone and puts the
//! jobs back (`release`, attempt not counted) if the fetch was dropped while the `UPDATE` was in
//! flight. That put-back is asynchronous: for a few milliseconds such jobs still read as
//! running. A worker that must guarantee "nothing claimed after stop" should let the fetch
//! return (it is bounded by `wait`) and release what it got instead of dropping it.
//!
//! # Listing cursor
//! Keyset pagination on `(state_at, id)` descending. The cursor is the plain text
//! `"<state_at ms>:<id>"` of the last row of the page; callers treat it as opaque.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::postgres::PgListener;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Decode, Row, Type};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::outcomes;
use super::{
    Attempt, Enqueued, JobDetail, JobPage, JobState, JobSummary, Lease, ListQuery, NewJob, Queue,
    QueueError, QueueResult, Stats, WorkerId, new_job_id, page_limit,
};
use crate::kinds::JobKind;
use crate::store::{Db, DbKind, WriteTx, from_ms, now_ms, to_ms};

/// The Postgres `LISTEN/NOTIFY` channel of the queue (the `NOTIFY` statements spell it out).
pub const CHANNEL: &str = "moked_jobs";

/// Rows moved or deleted per statement by `retry_all` and `prune`.
pub const BATCH: i64 = 1000;

/// How often an idle SQLite fetch re-checks for jobs enqueued by other processes.
const SQLITE_POLL: Duration = Duration::from_millis(100);

/// The safety poll of an idle Postgres fetch while the listener is up.
const POSTGRES_POLL: Duration = Duration::from_secs(1);

/// The shortest pause of an idle fetch (a due job that another fetcher holds locked).
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// How long the listener task waits before reconnecting after a failure.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The columns of a [`JobSummary`], in the order [`summary`] reads them by name.
const SUMMARY_COLUMNS: &str =
    "id, kind, state, attempts, last_error, created_at, run_at, finished_at";

/// The durable queue on the store's database. Cheap to clone; clones share the wake-up signal
/// and (on Postgres) the listener.
#[derive(Clone)]
pub struct DbQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Wakes idle fetchers of this process.
    wake: Arc<Notify>,
    /// Whether the Postgres listener is connected (false on SQLite).
    listening: Arc<AtomicBool>,
    /// The Postgres listener task, stopped when the last clone is dropped.
    listener: Option<JoinHandle<()>>,
    /// How far this host's clock is off, in ms: 0, except in tests of clock skew
    /// ([`DbQueue::with_host_clock_skew`]).
    skew_ms: i64,
    /// How many fetches are waiting for work right now.
    idle: watch::Sender<usize>,
}

/// Counts a fetch as idle while it lives (cancellation-safe).
struct IdleGuard<'a>(&'a watch::Sender<usize>);

impl<'a> IdleGuard<'a> {
    fn new(idle: &'a watch::Sender<usize>) -> Self {
        idle.send_modify(|n| *n += 1);
        IdleGuard(idle)
    }
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for DbQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbQueue")
            .field("kind", &self.inner.db.kind())
            .field("listening", &self.inner.listening.load(Ordering::Relaxed))
            .finish()
    }
}

impl DbQueue {
    /// A queue on `db` (already migrated). On Postgres this connects a dedicated `LISTEN`
    /// connection and spawns the task that turns notifications into wake-ups, so it must run
    /// inside a Tokio runtime; if that connection fails the queue still works, polling every
    /// 100 ms until the task reconnects.
    pub async fn new(db: Db) -> QueueResult<DbQueue> {
        Self::with_host_clock_skew(db, chrono::TimeDelta::zero()).await
    }

    /// [`DbQueue::new`] on a host whose clock reads `skew` off the true time (negative:
    /// behind), for tests: timestamps this queue takes from its host (`run_at`, `state_at`,
    /// …) shift by `skew`, while heartbeats and staleness, read from the database server's
    /// clock, must not.
    pub async fn with_host_clock_skew(db: Db, skew: chrono::TimeDelta) -> QueueResult<DbQueue> {
        let wake = Arc::new(Notify::new());
        let listening = Arc::new(AtomicBool::new(false));
        let listener = match db.kind() {
            DbKind::Sqlite => None,
            DbKind::Postgres => {
                let url = db.pool().connect_options().database_url.to_string();
                // Wake-ups are an optimisation: without a listener fetches poll every 100 ms
                // and the task keeps trying to connect one.
                let listener = match listen(&url).await {
                    Ok(listener) => {
                        listening.store(true, Ordering::Relaxed);
                        Some(listener)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "queue listener cannot connect; polling meanwhile");
                        None
                    }
                };
                Some(tokio::spawn(forward_notifications(
                    url,
                    listener,
                    wake.clone(),
                    listening.clone(),
                )))
            }
        };
        Ok(DbQueue {
            inner: Arc::new(Inner {
                db,
                wake,
                listening,
                listener,
                idle: watch::Sender::new(0),
                skew_ms: skew.num_milliseconds(),
            }),
        })
    }

    /// The database this queue lives in.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// How many `fetch` calls on this queue (and its clones) are waiting for work: they have
    /// found nothing due and are armed for a wake-up. Tests await it instead of sleeping; it
    /// also reads as a gauge of idle workers.
    pub fn idle_fetchers(&self) -> watch::Receiver<usize> {
        self.inner.idle.subscribe()
    }

    fn kind(&self) -> DbKind {
        self.inner.db.kind()
    }

    fn pool(&self) -> &sqlx::AnyPool {
        self.inner.db.pool()
    }

    /// This host's clock in ms (see `skew_ms`).
    fn host_ms(&self) -> i64 {
        now_ms().saturating_add(self.inner.skew_ms)
    }

    /// The database server's clock in ms since the epoch, as an SQL expression. Heartbeats and
    /// the stale cutoff are read from it, never from a worker's host: hosts whose clocks
    /// disagree by more than the stale window would otherwise re-queue each other's live jobs
    /// (or never recover a dead host whose clock runs ahead).
    fn now_sql(&self) -> &'static str {
        match self.kind() {
            // julianday('now') is fixed for the whole statement and kept in whole milliseconds;
            // ROUND undoes the floating-point error of the day fraction.
            DbKind::Sqlite => "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)",
            DbKind::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        }
    }

    /// The database server's clock in ms (see [`DbQueue::now_sql`]).
    async fn db_ms(&self) -> QueueResult<i64> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {} AS now", self.now_sql())))
            .fetch_one(self.pool())
            .await?;
        get(&row, "now")
    }

    /// Begins a transaction that holds the write lock from the start on SQLite.
    async fn begin(&self) -> QueueResult<WriteTx> {
        Ok(self.inner.db.write().await?)
    }

    /// `FOR UPDATE SKIP LOCKED` where rows can be locked, nothing on SQLite.
    fn skip_locked(&self) -> &'static str {
        match self.kind() {
            DbKind::Sqlite => "",
            DbKind::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Tells other processes (Postgres) inside `tx` that jobs may be claimable; delivered on
    /// commit.
    async fn notify_in(&self, tx: &mut WriteTx) -> QueueResult<()> {
        if self.kind() == DbKind::Postgres {
            sqlx::query("NOTIFY moked_jobs").execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Wakes this process's fetchers and (Postgres) other processes' after a committed change.
    /// A failed `NOTIFY` only costs latency (the safety poll), so it is logged, not returned.
    async fn wake_all(&self) {
        self.inner.wake.notify_waiters();
        if self.kind() == DbKind::Postgres
            && let Err(error) = sqlx::query("NOTIFY moked_jobs").execute(self.pool()).await
        {
            tracing::warn!(%error, "queue wake-up notification failed");
        }
    }

    /// How often an idle fetch re-checks without a wake-up.
    fn poll_interval(&self) -> Duration {
        match self.kind() {
            DbKind::Sqlite => SQLITE_POLL,
            DbKind::Postgres if self.inner.listening.load(Ordering::Relaxed) => POSTGRES_POLL,
            DbKind::Postgres => SQLITE_POLL,
        }
    }

    /// Claims up to `max` due jobs for `worker` in one statement (see the module doc).
    async fn claim(&self, worker: &WorkerId, max: usize) -> QueueResult<Vec<Lease>> {
        let now = self.host_ms();
        let sql = format!(
            "WITH picked AS MATERIALIZED ( \
                 SELECT id FROM jobs \
                 WHERE state IN ('queued', 'retrying') AND run_at <= $1 \
                 ORDER BY run_at, id LIMIT $2 {lock} \
             ) \
             UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = {now}, \
                 state_at = $1, session = $3 \
             WHERE id IN (SELECT id FROM picked) AND state IN ('queued', 'retrying') \
             RETURNING id, kind, payload, attempts, created_at, run_at",
            lock = self.skip_locked(),
            // started_at on the server's clock: recovery compares it with the stale cutoff
            // when the session has no heartbeat row.
            now = self.now_sql()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(worker.session.clone())
            .fetch_all(self.pool())
            .await?;
        let mut leases = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = get(row, "id")?;
            let attempts = attempts(&id, get(row, "attempts")?)?;
            let run_at: i64 = get(row, "run_at")?;
            leases.push((
                run_at,
                Lease {
                    kind: get(row, "kind")?,
                    payload: get(row, "payload")?,
                    attempts,
                    created_at: from_ms(get(row, "created_at")?),
                    id,
                },
            ));
        }
        // RETURNING has no order; hand them out oldest first like the claim picked them.
        leases.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
        Ok(leases.into_iter().map(|(_, lease)| lease).collect())
    }

    /// [`DbQueue::claim`] on its own task, so that dropping the fetch (a worker racing its
    /// fetch against shutdown) cannot lose a claim whose `UPDATE` already committed: if nobody
    /// is left to take the leases, the task puts them back with [`Queue::release`].
    async fn claim_detached(&self, worker: &WorkerId, max: usize) -> QueueResult<Vec<Lease>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (queue, worker) = (self.clone(), worker.clone());
        tokio::spawn(async move {
            if tx.is_closed() {
                // The fetch was dropped before the claim began: claim nothing.
                return;
            }
            let claimed = queue.claim(&worker, max).await;
            if let Err(Ok(leases)) = tx.send(claimed) {
                for lease in leases {
                    if let Err(error) = queue.release(&worker, &lease.id).await {
                        tracing::warn!(job_id = %lease.id, %error,
                            "could not put back a job claimed by a cancelled fetch; recovery will");
                    }
                }
            }
        });
        rx.await
            .map_err(|_| QueueError::Invalid("the claim task was cancelled".into()))?
    }

    /// The earliest `run_at` of a claimable job (due or delayed).
    async fn next_run_at(&self) -> QueueResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(run_at) AS next FROM jobs WHERE state IN ('queued', 'retrying')",
        )
        .fetch_one(self.pool())
        .await?;
        get(&row, "next")
    }

    /// Moves a job that `worker` holds out of running; `set` is the SET list for the new state,
    /// with `$1` = now. Returns whether the job moved (false: not running or not ours).
    async fn leave_running(&self, worker: &WorkerId, id: &str, set: &str) -> QueueResult<bool> {
        let moved = sqlx::query(AssertSqlSafe(leaving_running(set)))
            .bind(self.host_ms())
            .bind(id.to_owned())
            .bind(worker.session.clone())
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(moved > 0)
    }

    /// Records a failed attempt of a job that `worker` holds and moves it out of running, in one
    /// transaction; `set` is the SET list for the new state, with `$1` = now and `$5` = `run_at`
    /// when given (the error is stored as `last_error`). A job not running or not ours is left
    /// alone. With a `run_at` (a retry) idle fetchers recompute when the earliest delayed job is
    /// due.
    async fn fail_running(
        &self,
        worker: &WorkerId,
        id: &str,
        error: &str,
        set: &str,
        run_at: Option<i64>,
    ) -> QueueResult<()> {
        let now = self.host_ms();
        let mut tx = self.begin().await?;
        let sql = leaving_running(&format!("{set}, last_error = $4"));
        let mut update = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(id.to_owned())
            .bind(worker.session.clone())
            .bind(error.to_owned());
        if let Some(at) = run_at {
            update = update.bind(at);
        }
        let moved = update.execute(&mut *tx).await?.rows_affected();
        if moved == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        add_attempt(&mut tx, id, now, error, &worker.name).await?;
        if run_at.is_some() {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if run_at.is_some() {
            self.inner.wake.notify_waiters();
        }
        Ok(())
    }

    /// Re-queues the running jobs of one stale session, if it is still stale and no other
    /// recoverer got there first. Returns how many jobs moved.
    async fn recover_session(&self, session: &str, cutoff: i64, now: i64) -> QueueResult<u64> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM worker_sessions WHERE session = $1 AND heartbeat_at <= $2 \
             RETURNING name, heartbeat_at",
        )
        .bind(session.to_owned())
        .bind(cutoff)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(gone) = gone else {
            // It heartbeated meanwhile, or another process recovered it.
            tx.rollback().await?;
            return Ok(0);
        };
        let name: String = get(&gone, "name")?;
        let heartbeat_at: i64 = get(&gone, "heartbeat_at")?;
        let error = abandoned(&name, now - heartbeat_at);
        let ids = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, state_at = $1, session = NULL, \
                 last_error = $3 \
             WHERE state = 'running' AND session = $2 RETURNING id",
        )
        .bind(now)
        .bind(session.to_owned())
        .bind(error.clone())
        .fetch_all(&mut *tx)
        .await?;
        for row in &ids {
            let id: String = get(row, "id")?;
            add_attempt(&mut tx, &id, now, &error, &name).await?;
        }
        if !ids.is_empty() {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Re-queues one running job whose session has no row (never heartbeated) if it is still
    /// in that state. Returns whether it moved.
    async fn recover_orphan(
        &self,
        id: &str,
        session: &str,
        started_at: i64,
        now: i64,
    ) -> QueueResult<bool> {
        let name = worker_name(session);
        let error = abandoned(name, now - started_at);
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, state_at = $1, session = NULL, \
                 last_error = $4 \
             WHERE id = $2 AND state = 'running' AND COALESCE(session, '') = $3 \
               AND NOT EXISTS (SELECT 1 FROM worker_sessions w WHERE w.session = jobs.session)",
        )
        .bind(now)
        .bind(id.to_owned())
        .bind(session.to_owned())
        .bind(error.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        add_attempt(&mut tx, id, now, &error, name).await?;
        self.notify_in(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl Queue for DbQueue {
    fn backend(&self) -> &'static str {
        match self.kind() {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }

    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued> {
        let id = new_job_id();
        let now = self.host_ms();
        let run_at = job.run_at.map(to_ms).unwrap_or(now);
        let mut tx = self.begin().await?;
        if let Some(dedupe) = &job.dedupe {
            let expires_at = now.saturating_add(millis(dedupe.ttl));
            let taken = sqlx::query(
                "INSERT INTO webhook_receipt (key, job_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE \
                     SET job_id = excluded.job_id, expires_at = excluded.expires_at \
                     WHERE webhook_receipt.expires_at <= $4 \
                 RETURNING job_id",
            )
            .bind(dedupe.key.clone())
            .bind(id.clone())
            .bind(expires_at)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_none() {
                let first = sqlx::query("SELECT job_id FROM webhook_receipt WHERE key = $1")
                    .bind(dedupe.key.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                // The conflicting row is live (not expired) and nothing deletes live rows, so
                // it is there; if it is not, the store is not what this code wrote.
                let first = first.ok_or_else(|| {
                    QueueError::Corrupt(format!(
                        "dedupe key `{}` conflicted but has no row",
                        dedupe.key
                    ))
                })?;
                let first = get(&first, "job_id")?;
                // Ends the transaction now: on Postgres the conflicting upsert locked the key's
                // row, and a dropped transaction would only roll back lazily.
                tx.rollback().await?;
                return Ok(Enqueued::Duplicate(first));
            }
        }
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, state, attempts, created_at, run_at, state_at) \
             VALUES ($1, $2, $3, 'queued', 0, $4, $5, $4)",
        )
        .bind(id.clone())
        .bind(job.kind.as_str())
        .bind(job.payload)
        .bind(now)
        .bind(run_at)
        .execute(&mut *tx)
        .await?;
        self.notify_in(&mut tx).await?;
        tx.commit().await?;
        self.inner.wake.notify_waiters();
        Ok(Enqueued::Created(id))
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
        let start = Instant::now();
        let deadline = start
            .checked_add(wait)
            .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365));
        // The first pass claims straight away; later passes first read the earliest run_at
        // (no write lock) and claim only when something is due.
        // Claim straight away on the first pass, after a wake-up and when the earliest delayed
        // job has become due; after a plain poll tick, first read the earliest run_at (no
        // write lock, cheap on SQLite) and claim only when something is due.
        let mut claim_now = true;
        loop {
            // Armed before the claim: a job committed after the claim's snapshot wakes us.
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let mut next = if claim_now {
                Some(i64::MIN)
            } else {
                self.next_run_at().await?
            };
            if next.is_some_and(|at| at <= self.host_ms()) {
                let leases = self.claim_detached(worker, max).await?;
                if !leases.is_empty() {
                    return Ok(leases);
                }
                next = self.next_run_at().await?;
            }

            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let poll = deadline.min(now + self.poll_interval());
            let due = next.map(|at| {
                let in_ms = u64::try_from(at.saturating_sub(self.host_ms())).unwrap_or(0);
                now + Duration::from_millis(in_ms).max(MIN_PAUSE)
            });
            let until = due.map_or(poll, |due| due.min(poll));
            let _idle = IdleGuard::new(&self.inner.idle);
            claim_now = tokio::select! {
                () = &mut notified => true,
                () = tokio::time::sleep_until(until) => due.is_some_and(|due| due <= poll),
            };
        }
    }

    async fn complete(&self, worker: &WorkerId, id: &str) -> QueueResult<()> {
        self.leave_running(worker, id, "state = 'done', finished_at = $1")
            .await
            .map(drop)
    }

    async fn retry_at(
        &self,
        worker: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()> {
        self.fail_running(
            worker,
            id,
            error,
            "state = 'retrying', run_at = $5",
            Some(to_ms(at)),
        )
        .await
    }

    async fn bury(&self, worker: &WorkerId, id: &str, error: &str) -> QueueResult<()> {
        self.fail_running(worker, id, error, "state = 'dead', finished_at = $1", None)
            .await
    }

    async fn release(&self, worker: &WorkerId, id: &str) -> QueueResult<()> {
        let moved = self
            .leave_running(
                worker,
                id,
                "state = 'queued', run_at = $1, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END",
            )
            .await?;
        if moved {
            self.wake_all().await;
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &WorkerId) -> QueueResult<()> {
        let sql = format!(
            "INSERT INTO worker_sessions (session, name, heartbeat_at) VALUES ($1, $2, {now}) \
             ON CONFLICT (session) DO UPDATE \
                 SET name = excluded.name, heartbeat_at = excluded.heartbeat_at",
            now = self.now_sql()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(worker.session.clone())
            .bind(worker.name.clone())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn deregister(&self, worker: &WorkerId) -> QueueResult<()> {
        sqlx::query("DELETE FROM worker_sessions WHERE session = $1")
            .bind(worker.session.clone())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64> {
        // The server's clock, like the heartbeats it is compared with (see `now_sql`).
        let now = self.db_ms().await?;
        let cutoff = now.saturating_sub(millis(stale_after));
        let mut moved = 0;

        let stale = sqlx::query("SELECT session FROM worker_sessions WHERE heartbeat_at <= $1")
            .bind(cutoff)
            .fetch_all(self.pool())
            .await?;
        for row in &stale {
            let session: String = get(row, "session")?;
            moved += self.recover_session(&session, cutoff, now).await?;
        }

        // Running jobs of sessions that never heartbeated (or whose row is gone).
        let orphans = sqlx::query(
            "SELECT id, COALESCE(session, '') AS session, started_at FROM jobs \
             WHERE state = 'running' AND COALESCE(started_at, 0) <= $1 \
               AND NOT EXISTS (SELECT 1 FROM worker_sessions w WHERE w.session = jobs.session)",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        for row in &orphans {
            let id: String = get(row, "id")?;
            let session: String = get(row, "session")?;
            let started_at: Option<i64> = get(row, "started_at")?;
            if self
                .recover_orphan(&id, &session, started_at.unwrap_or(0), now)
                .await?
            {
                moved += 1;
            }
        }

        if moved > 0 {
            // The caller logs the count; one line per recovery is enough.
            self.inner.wake.notify_waiters();
        }
        Ok(moved)
    }

    async fn held(&self, worker: &WorkerId) -> QueueResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM jobs WHERE state = 'running' AND session = $1")
            .bind(worker.session.clone())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| get(row, "id")).collect()
    }

    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage> {
        let limit = page_limit(query.limit);
        let mut filter: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if let Some(state) = query.state {
            args.push(Arg::Text(state.as_str().to_owned()));
            filter.push(format!("state = ${}", args.len()));
        }
        if let Some(kind) = query.kind {
            args.push(Arg::Text(kind.as_str().to_owned()));
            filter.push(format!("kind = ${}", args.len()));
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM jobs{}", where_clause(&filter));
        let count_row = bind_all(sqlx::query(AssertSqlSafe(count_sql)), &args)
            .fetch_one(self.pool())
            .await?;
        let total: i64 = get(&count_row, "n")?;

        if let Some(cursor) = &query.cursor {
            let (state_at, id) = parse_cursor(cursor)?;
            args.push(Arg::Int(state_at));
            args.push(Arg::Text(id));
            filter.push(format!(
                "(state_at, id) < (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Arg::Int(i64::from(limit) + 1));
        let page_sql = format!(
            "SELECT {SUMMARY_COLUMNS}, state_at FROM jobs{} \
             ORDER BY state_at DESC, id DESC LIMIT ${}",
            where_clause(&filter),
            args.len()
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(page_sql)), &args)
            .fetch_all(self.pool())
            .await?;
        let more = rows.len() > limit as usize;
        let mut jobs = Vec::with_capacity(rows.len().min(limit as usize));
        let mut next_cursor = None;
        for row in rows.iter().take(limit as usize) {
            let job = summary(row)?;
            if more {
                let state_at: i64 = get(row, "state_at")?;
                next_cursor = Some(format!("{state_at}:{}", job.id));
            }
            jobs.push(job);
        }
        Ok(JobPage {
            total: u64::try_from(total).unwrap_or(0),
            jobs,
            next_cursor,
        })
    }

    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS}, payload, started_at, session FROM jobs WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let history = sqlx::query(
            "SELECT at, error, worker FROM job_attempts WHERE job_id = $1 ORDER BY at, id",
        )
        .bind(id.to_owned())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|attempt| {
            Ok(Attempt {
                at: from_ms(get(attempt, "at")?),
                error: get(attempt, "error")?,
                worker: get(attempt, "worker")?,
            })
        })
        .collect::<QueueResult<Vec<_>>>()?;
        let started_at: Option<i64> = get(&row, "started_at")?;
        Ok(Some(JobDetail {
            summary: summary(&row)?,
            payload: get(&row, "payload")?,
            history,
            started_at: started_at.map(from_ms),
            worker: get(&row, "session")?,
        }))
    }

    async fn retry(&self, id: &str) -> QueueResult<bool> {
        let moved = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, state_at = $1, finished_at = NULL, attempts = 0 \
             WHERE id = $2 AND state IN ('dead', 'retrying')",
        )
        .bind(self.host_ms())
        .bind(id.to_owned())
        .execute(self.pool())
        .await?
        .rows_affected();
        if moved > 0 {
            self.wake_all().await;
        }
        Ok(moved > 0)
    }

    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64> {
        if !matches!(state, JobState::Dead | JobState::Retrying) {
            return Err(QueueError::Invalid(format!(
                "only dead or retrying jobs can be retried, not {state}"
            )));
        }
        let kind_filter = if kind.is_some() { "AND kind = $4" } else { "" };
        let sql = format!(
            "WITH picked AS MATERIALIZED ( \
                 SELECT id FROM jobs WHERE state = $2 {kind_filter} LIMIT $3 {lock} \
             ) \
             UPDATE jobs SET state = 'queued', run_at = $1, state_at = $1, finished_at = NULL, attempts = 0 \
             WHERE id IN (SELECT id FROM picked) AND state = $2",
            lock = self.skip_locked()
        );
        let mut moved = 0;
        loop {
            let batch = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(self.host_ms())
                .bind(state.as_str())
                .bind(BATCH);
            let batch = match kind {
                Some(kind) => batch.bind(kind.as_str()),
                None => batch,
            };
            let n = batch.execute(self.pool()).await?.rows_affected();
            moved += n;
            if n > 0 {
                self.wake_all().await;
            }
            if n < BATCH as u64 {
                return Ok(moved);
            }
        }
    }

    async fn discard(&self, id: &str) -> QueueResult<bool> {
        let moved = sqlx::query(
            "UPDATE jobs SET state = 'discarded', finished_at = $1, state_at = $1 \
             WHERE id = $2 AND state IN ('queued', 'retrying', 'dead')",
        )
        .bind(self.host_ms())
        .bind(id.to_owned())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(moved > 0)
    }

    async fn stats(&self) -> QueueResult<Stats> {
        let rows = sqlx::query("SELECT state, kind, COUNT(*) AS n FROM jobs GROUP BY state, kind")
            .fetch_all(self.pool())
            .await?;
        let mut stats = Stats {
            counts: JobState::ALL.into_iter().map(|s| (s, 0)).collect(),
            ..Stats::default()
        };
        for row in &rows {
            let state = state(&get::<String>(row, "state")?)?;
            let kind: String = get(row, "kind")?;
            let n = u64::try_from(get::<i64>(row, "n")?).unwrap_or(0);
            *stats.counts.entry(state).or_default() += n;
            *stats
                .by_kind
                .entry(kind)
                .or_default()
                .entry(state)
                .or_default() += n;
        }
        let now = self.host_ms();
        let oldest = sqlx::query(
            "SELECT MIN(run_at) AS oldest FROM jobs WHERE state = 'queued' AND run_at <= $1",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        stats.oldest_queued_age_s = get::<Option<i64>>(&oldest, "oldest")?
            .map(|at| (now.saturating_sub(at)).max(0) as f64 / 1000.0);
        Ok(stats)
    }

    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64> {
        let deleted = delete_batches(
            self.pool(),
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs \
                 WHERE state IN ('done', 'discarded') AND state_at < $2 LIMIT $1)",
            to_ms(before),
        )
        .await?;
        delete_batches(
            self.pool(),
            "DELETE FROM webhook_receipt WHERE key IN ( \
                 SELECT key FROM webhook_receipt WHERE expires_at <= $2 LIMIT $1)",
            self.host_ms(),
        )
        .await?;
        Ok(deleted)
    }

    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64> {
        let by_age = delete_batches(
            self.pool(),
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE state = 'dead' AND state_at < $2 LIMIT $1)",
            to_ms(before),
        )
        .await?;
        // Everything past the newest `keep` in listing order (state_at, id), a batch at a time:
        // each statement re-reads the order, so jobs dying meanwhile never shift the cut onto a
        // job that should stay.
        let over_cap = delete_batches(
            self.pool(),
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE state = 'dead' \
                 ORDER BY state_at DESC, id DESC LIMIT $1 OFFSET $2)",
            i64::try_from(keep).unwrap_or(i64::MAX),
        )
        .await?;
        Ok(by_age + over_cap)
    }

    async fn ping(&self) -> QueueResult<()> {
        Ok(self.inner.db.ping().await?)
    }

    async fn record_outcomes(&self, counts: &[outcomes::OutcomeCount]) -> QueueResult<()> {
        outcomes::db_record(&self.inner.db, counts).await
    }

    async fn outcome_series(
        &self,
        span: outcomes::Span,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> QueueResult<Vec<outcomes::Bucket>> {
        outcomes::db_series(&self.inner.db, span, from, to).await
    }

    async fn outcome_totals(&self) -> QueueResult<outcomes::Counts> {
        outcomes::db_totals(&self.inner.db).await
    }

    async fn sessions(&self) -> QueueResult<Vec<super::SessionInfo>> {
        let sessions: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT session, name, heartbeat_at FROM worker_sessions ORDER BY name, session",
        )
        .fetch_all(self.pool())
        .await?;
        let running: Vec<(String, String, Option<i64>, String)> = sqlx::query_as(
            "SELECT id, kind, started_at, session FROM jobs \
             WHERE state = 'running' AND session IS NOT NULL ORDER BY started_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(sessions
            .into_iter()
            .map(|(session, name, seen)| super::SessionInfo {
                running: running
                    .iter()
                    .filter(|r| r.3 == session)
                    .map(|(id, kind, started, _)| super::RunningJob {
                        id: id.clone(),
                        kind: kind.clone(),
                        started_at: started.map(crate::store::from_ms),
                    })
                    .collect(),
                name,
                session,
                last_seen_at: crate::store::from_ms(seen),
            })
            .collect())
    }
}

/// Connects a listener on the queue channel.
async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Turns notifications into wake-ups until aborted. A lost connection is re-established by
/// the listener itself (`try_recv` returns `None` after reconnecting); since notifications sent
/// meanwhile are lost, every fetcher is woken to look for itself. A failed reconnect marks the
/// listener down (fetchers poll every 100 ms) and a fresh listener is tried every second.
async fn forward_notifications(
    url: String,
    mut listener: Option<PgListener>,
    wake: Arc<Notify>,
    listening: Arc<AtomicBool>,
) {
    loop {
        let Some(current) = listener.as_mut() else {
            match listen(&url).await {
                Ok(fresh) => {
                    tracing::info!("queue listener connected");
                    listener = Some(fresh);
                    listening.store(true, Ordering::Relaxed);
                    wake.notify_waiters();
                }
                Err(error) => {
                    // Warned once when it went down; each retry is only debug noise.
                    tracing::debug!(%error, "queue listener still cannot connect");
                    tokio::time::sleep(LISTEN_RETRY).await;
                }
            }
            continue;
        };
        match current.try_recv().await {
            Ok(_) => wake.notify_waiters(),
            Err(error) => {
                tracing::warn!(%error, "queue listener lost its connection; polling meanwhile");
                listening.store(false, Ordering::Relaxed);
                listener = None;
                wake.notify_waiters();
                tokio::time::sleep(LISTEN_RETRY).await;
            }
        }
    }
}

/// Runs `sql` (a bounded `DELETE` taking the batch size as `$1` and `arg` as `$2`) until a
/// statement deletes less than a batch. Returns how many rows went.
async fn delete_batches(pool: &sqlx::AnyPool, sql: &'static str, arg: i64) -> QueueResult<u64> {
    let mut deleted = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(BATCH)
            .bind(arg)
            .execute(pool)
            .await?
            .rows_affected();
        deleted += n;
        if n < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// The statement that moves a job out of running for its session: `set` is the SET list for
/// the new state, with `$1` = now, `$2` = the job id and `$3` = the session.
fn leaving_running(set: &str) -> String {
    format!(
        "UPDATE jobs SET {set}, state_at = $1, session = NULL \
         WHERE id = $2 AND state = 'running' AND session = $3"
    )
}

/// Appends one entry to a job's history.
async fn add_attempt(
    tx: &mut WriteTx,
    id: &str,
    at: i64,
    error: &str,
    worker: &str,
) -> QueueResult<()> {
    sqlx::query("INSERT INTO job_attempts (job_id, at, error, worker) VALUES ($1, $2, $3, $4)")
        .bind(id.to_owned())
        .bind(at)
        .bind(error.to_owned())
        .bind(worker.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The history entry of a job taken from a silent worker.
fn abandoned(name: &str, silent_ms: i64) -> String {
    format!(
        "abandoned by worker {name} (no heartbeat for {}s)",
        silent_ms.max(0) / 1000
    )
}

/// The worker name of a session (`name#uuid`).
fn worker_name(session: &str) -> &str {
    match session.rsplit_once('#') {
        Some((name, _)) => name,
        None if session.is_empty() => "unknown",
        None => session,
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A bind value of a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    args: &[Arg],
) -> Query<'q, Any, AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.clone()),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

fn where_clause(filter: &[String]) -> String {
    if filter.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filter.join(" AND "))
    }
}

/// Parses a listing cursor `"<state_at ms>:<id>"`.
fn parse_cursor(cursor: &str) -> QueueResult<(i64, String)> {
    cursor
        .split_once(':')
        .and_then(|(at, id)| Some((at.parse().ok()?, id)))
        .filter(|(_, id)| !id.is_empty())
        .map(|(at, id)| (at, id.to_owned()))
        .ok_or_else(|| QueueError::Invalid(format!("unknown cursor `{cursor}`")))
}

/// Reads a column; a value of the wrong type or an unexpected NULL is corrupt data.
fn get<T>(row: &AnyRow, column: &str) -> QueueResult<T>
where
    T: for<'r> Decode<'r, Any> + Type<Any>,
{
    row.try_get(column).map_err(|error| match error {
        sqlx::Error::ColumnDecode { .. } => QueueError::Corrupt(error.to_string()),
        other => QueueError::Database(other),
    })
}

fn state(name: &str) -> QueueResult<JobState> {
    name.parse()
        .map_err(|e: super::UnknownState| QueueError::Corrupt(e.to_string()))
}

fn attempts(id: &str, n: i64) -> QueueResult<u32> {
    u32::try_from(n)
        .map_err(|_| QueueError::Corrupt(format!("job {id} has {n} attempts (out of range)")))
}

/// A [`JobSummary`] from a row holding [`SUMMARY_COLUMNS`].
fn summary(row: &AnyRow) -> QueueResult<JobSummary> {
    let id: String = get(row, "id")?;
    let finished_at: Option<i64> = get(row, "finished_at")?;
    Ok(JobSummary {
        kind: get(row, "kind")?,
        state: state(&get::<String>(row, "state")?)?,
        attempts: attempts(&id, get(row, "attempts")?)?,
        last_error: get(row, "last_error")?,
        created_at: from_ms(get(row, "created_at")?),
        run_at: from_ms(get(row, "run_at")?),
        finished_at: finished_at.map(from_ms),
        id,
    })
}

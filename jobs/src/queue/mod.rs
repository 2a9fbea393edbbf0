//! The durable queue: one trait, two backends.
//!
//! * [`redis::RedisQueue`] — production: any number of intake and worker processes on one Redis.
//!   Every multi-key transition is one Lua script, due jobs are claimed into a per-worker
//!   in-flight list, delayed jobs are promoted in bounded batches, idle workers block on the
//!   ready list (pickup in milliseconds).
//! * [`database::DbQueue`] — the same contract on the store's database: SQLite (embedded
//!   default) or Postgres (`FOR UPDATE SKIP LOCKED` + `LISTEN/NOTIFY`).
//!
//! The contract (tested by one conformance suite against every backend, `jobs/tests/`):
//! * **At least once.** A fetched job is owned by a worker *session* (worker name + a fresh id per
//!   process start) that heartbeats; [`Queue::recover_abandoned`] re-queues the jobs of sessions
//!   silent for longer than the stale window. A worker restarted under the same name gets a new
//!   session and starts at once.
//! * **Dedupe at enqueue.** A [`Dedupe`] key seen inside its TTL returns the first job's id.
//! * **States** are exactly [`JobState`]'s six: queued → running → done | retrying → … → dead;
//!   discarded by an operator. Delayed jobs (`run_at` in the future) are `queued` (first run) or
//!   `retrying` (after a failure) until due and claimed.
//! * **Attempts** count claims; the worker decides retry vs dead from the kind's
//!   [`crate::retry::RetrySchedule`]; each failure appends to the job's history.

pub mod database;
mod lua;
pub mod outcomes;
pub mod redis;
mod redis_ack;
mod redis_batch;
mod redis_enqueue;
pub mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kinds::{JobKind, JobPayload, encode};

/// A job id: a UUIDv7 in text form (sortable by creation time).
pub type JobId = String;

/// Makes a new job id.
pub fn new_job_id() -> JobId {
    uuid::Uuid::now_v7().to_string()
}

/// The six states of a job (exactly these six words). Their names are part of the external
/// contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (possibly not before its `run_at`).
    Queued,
    /// Claimed by a worker session.
    Running,
    /// Failed at least once; waiting for its next attempt.
    Retrying,
    /// Failed for good; kept until an operator retries or discards it.
    Dead,
    /// Finished successfully; pruned after the retention time.
    Done,
    /// Dropped by an operator; pruned after the retention time.
    Discarded,
}

impl JobState {
    /// All states in display order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Dead,
        JobState::Done,
        JobState::Discarded,
    ];

    /// The state's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Dead => "dead",
            JobState::Done => "done",
            JobState::Discarded => "discarded",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of the six.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job state `{0}` (known: queued, running, retrying, dead, done, discarded)")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Deduplication of an enqueue: the same key inside `ttl` yields the first job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedupe {
    /// The key (an idempotency token or a natural key such as `call.started:CA…`).
    pub key: String,
    /// How long the key is remembered.
    pub ttl: Duration,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its kind.
    pub kind: JobKind,
    /// The encoded payload (see [`crate::kinds::encode`]).
    pub payload: String,
    /// Optional dedupe key.
    pub dedupe: Option<Dedupe>,
    /// Run not before this time (None: now).
    pub run_at: Option<DateTime<Utc>>,
}

impl NewJob {
    /// A job carrying `payload`, due now.
    pub fn new<T: JobPayload>(payload: &T) -> Self {
        Self::raw(T::KIND, encode(payload))
    }

    /// A job with an already encoded (or deliberately broken, in tests) payload.
    pub fn raw(kind: JobKind, payload: impl Into<String>) -> Self {
        NewJob {
            kind,
            payload: payload.into(),
            dedupe: None,
            run_at: None,
        }
    }

    /// Deduplicate by `key` for `ttl`.
    pub fn dedupe(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.dedupe = Some(Dedupe {
            key: key.into(),
            ttl,
        });
        self
    }

    /// Run not before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job was created.
    Created(JobId),
    /// The dedupe key was already taken by this job; nothing was created.
    Duplicate(JobId),
}

impl Enqueued {
    /// The job's id either way.
    pub fn id(&self) -> &str {
        match self {
            Enqueued::Created(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// Whether a new job was created.
    pub fn is_created(&self) -> bool {
        matches!(self, Enqueued::Created(_))
    }
}

/// A worker process's identity: a stable `name` (e.g. the dyno name `worker.1`) and a `session`
/// unique to this process start. Jobs are owned by sessions, so a restart under the same name
/// never collides with the dead predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId {
    /// The stable name.
    pub name: String,
    /// `name#uuid`, unique per process start.
    pub session: String,
}

impl WorkerId {
    /// A new session for `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let session = format!("{name}#{}", uuid::Uuid::now_v7().simple());
        WorkerId { name, session }
    }

    /// When the process that made `session` started: the time in its UUIDv7 (`None` for a
    /// session string of another shape).
    pub fn started_at(session: &str) -> Option<DateTime<Utc>> {
        let (_, id) = session.rsplit_once('#')?;
        let (secs, nanos) = uuid::Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }
}

/// A job claimed by a worker session.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job id.
    pub id: JobId,
    /// The kind name as stored (may be unknown to this build).
    pub kind: String,
    /// The payload as stored.
    pub payload: String,
    /// Attempts including this one.
    pub attempts: u32,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
}

/// One failed attempt in a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JobAttempt))]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// When it failed.
    pub at: DateTime<Utc>,
    /// Why.
    pub error: String,
    /// The worker (name) that ran it.
    pub worker: String,
}

/// A job as listed (`jobs list --json`, `GET /api/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Job))]
pub struct JobSummary {
    /// The job id (UUIDv7).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: JobId,
    /// The kind name: `call.started`, `call.status`, `recording.process`, `whatsapp.inbound`,
    /// `whatsapp.status`, `whatsapp.send`, `clock.reconcile`, `clock.health`, `clock.cleanup`.
    #[cfg_attr(feature = "openapi", schema(example = "whatsapp.send"))]
    pub kind: String,
    /// The state.
    pub state: JobState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When it reached done, dead or discarded.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job in full (`jobs show --json`, `GET /api/jobs/{id}`). The payload is the raw stored
/// payload; callers mask phone numbers before showing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The raw payload.
    pub payload: String,
    /// One entry per failed attempt, oldest first.
    pub history: Vec<Attempt>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// The session that holds it while running.
    pub worker: Option<String>,
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this state (None: all states).
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size (1..=500).
    pub limit: u32,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JobList))]
#[serde(deny_unknown_fields)]
pub struct JobPage {
    /// How many jobs match the filter (all pages; from the queue's counts, cheap to poll).
    pub total: u64,
    /// This page.
    pub jobs: Vec<JobSummary>,
    /// The cursor of the next page (pass it as `cursor`); null on the last.
    pub next_cursor: Option<String>,
}

/// Counts per state, overall and per kind, and the age of the oldest due queued job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Jobs per state (every state present, zero included).
    pub counts: BTreeMap<JobState, u64>,
    /// Jobs per kind and state (only kinds with jobs).
    pub by_kind: BTreeMap<String, BTreeMap<JobState, u64>>,
    /// Seconds since the oldest due queued job became due.
    pub oldest_queued_age_s: Option<f64>,
}

impl Stats {
    /// The count for one state.
    pub fn count(&self, state: JobState) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }
}

/// A worker session as the queue knows it ([`Queue::sessions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The worker's stable name.
    pub name: String,
    /// The session (`name#uuid`).
    pub session: String,
    /// Its last heartbeat or fetch.
    pub last_seen_at: DateTime<Utc>,
    /// The jobs running for it, oldest start first.
    pub running: Vec<RunningJob>,
}

/// A job running for a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RunningJobView))]
#[serde(deny_unknown_fields)]
pub struct RunningJob {
    /// The job id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// When this attempt started.
    pub started_at: Option<DateTime<Utc>>,
}

/// Errors of the queue boundary.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored record was not what this build expects.
    #[error("corrupt queue record: {0}")]
    Corrupt(String),
    /// A bad request (unknown cursor, …).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for queue calls.
pub type QueueResult<T> = Result<T, QueueError>;

/// The durable queue. Both backends implement it; see the module doc for the contract.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// The backend's name (`redis`, `sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Adds a job (or returns the existing one for a dedupe key still remembered).
    async fn enqueue(&self, job: NewJob) -> QueueResult<Enqueued>;

    /// Claims up to `max` due jobs for `worker`, marking them running and counting an attempt.
    /// Waits up to `wait` for one when none is due (returns an empty vec then).
    async fn fetch(&self, worker: &WorkerId, max: usize, wait: Duration)
    -> QueueResult<Vec<Lease>>;

    /// Marks a running job done.
    async fn complete(&self, worker: &WorkerId, id: &str) -> QueueResult<()>;

    /// Records a failed attempt and schedules the next one at `at` (state retrying).
    async fn retry_at(
        &self,
        worker: &WorkerId,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> QueueResult<()>;

    /// Records a failed attempt and moves the job to dead.
    async fn bury(&self, worker: &WorkerId, id: &str, error: &str) -> QueueResult<()>;

    /// Puts a claimed job back, due now, without counting the attempt (shutdown).
    async fn release(&self, worker: &WorkerId, id: &str) -> QueueResult<()>;

    /// Registers or refreshes the worker session's heartbeat.
    async fn heartbeat(&self, worker: &WorkerId) -> QueueResult<()>;

    /// Removes the session on a clean exit (after releasing its jobs).
    async fn deregister(&self, worker: &WorkerId) -> QueueResult<()>;

    /// Re-queues the running jobs of sessions whose heartbeat is older than `stale_after`,
    /// noting "abandoned by worker …" in their history. Returns how many jobs moved.
    async fn recover_abandoned(&self, stale_after: Duration) -> QueueResult<u64>;

    /// The ids of the jobs `running` for `worker`'s session (claimed, not yet acknowledged), in
    /// no particular order. The runner compares them with the jobs it really runs and puts the
    /// others back ([`Queue::release`]): a claim whose reply was lost, or an ack that never
    /// landed, would otherwise stay `running` as long as the session heartbeats.
    async fn held(&self, worker: &WorkerId) -> QueueResult<Vec<JobId>>;

    /// Lists jobs.
    async fn list(&self, query: &ListQuery) -> QueueResult<JobPage>;

    /// One job in full.
    async fn get(&self, id: &str) -> QueueResult<Option<JobDetail>>;

    /// Moves a dead or retrying job to queued, due now, with a fresh retry schedule (attempts
    /// back to 0; the history keeps the earlier attempts). Returns whether it moved.
    async fn retry(&self, id: &str) -> QueueResult<bool>;

    /// Moves every job in `state` (dead or retrying), optionally of one kind, to queued, as
    /// [`Queue::retry`] does.
    async fn retry_all(&self, state: JobState, kind: Option<JobKind>) -> QueueResult<u64>;

    /// Moves a queued, retrying or dead job to discarded. Returns whether it moved.
    async fn discard(&self, id: &str) -> QueueResult<bool>;

    /// Counts per state and kind.
    async fn stats(&self) -> QueueResult<Stats>;

    /// Deletes done and discarded jobs finished before `before` and expired dedupe keys, in
    /// bounded batches. Returns how many jobs were deleted.
    async fn prune(&self, before: DateTime<Utc>) -> QueueResult<u64>;

    /// Deletes dead jobs that died before `before` and, of those left, every one but the newest
    /// `keep` (oldest first), in bounded batches. Returns how many jobs were deleted. Dead jobs
    /// wait for an operator, but not forever: a kind that keeps failing would otherwise fill
    /// the store (on Redis with `noeviction`, until every enqueue fails). Dedupe keys are left
    /// alone; they expire on their own.
    async fn prune_dead(&self, before: DateTime<Utc>, keep: u64) -> QueueResult<u64>;

    /// A cheap round trip (readiness).
    async fn ping(&self) -> QueueResult<()>;

    // The cluster-wide outcome counters ([`outcomes`]). Both backends keep them; the defaults
    // (keep nothing) serve test wrappers that delegate only the transitions they exercise.

    /// Adds a worker's finished attempts to the cluster-wide outcome counters.
    async fn record_outcomes(&self, _counts: &[outcomes::OutcomeCount]) -> QueueResult<()> {
        Ok(())
    }

    /// The cluster-wide outcome counters, one bucket per `span` from `from` to `to` (oldest
    /// first; at most what is kept).
    async fn outcome_series(
        &self,
        _span: outcomes::Span,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> QueueResult<Vec<outcomes::Bucket>> {
        Ok(Vec::new())
    }

    /// The cluster-wide outcome counters since the queue began.
    async fn outcome_totals(&self) -> QueueResult<outcomes::Counts> {
        Ok(outcomes::Counts::new())
    }

    /// Every registered worker session with its last sign of life and the jobs running for it,
    /// for the operator console (`GET /api/workers`). The default (none) serves test wrappers.
    async fn sessions(&self) -> QueueResult<Vec<SessionInfo>> {
        Ok(Vec::new())
    }
}

/// A shared queue handle.
pub type SharedQueue = Arc<dyn Queue>;

/// Clamps a listing page size to 1..=500 (default 50).
pub fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => 50,
        n => n.min(500),
    }
}

/// Opens the queue the configuration asks for: Redis when `REDIS_URL`/`REDIS_TLS_URL` is set,
/// else the store's database.
pub async fn connect(
    core: &crate::config::CoreConfig,
    db: &crate::store::Db,
) -> QueueResult<SharedQueue> {
    use secrecy::ExposeSecret;
    Ok(match &core.queue {
        crate::config::QueueBackend::Redis(url) => {
            Arc::new(redis::RedisQueue::connect(url.expose_secret(), &core.queue_prefix).await?)
        }
        crate::config::QueueBackend::Database => {
            Arc::new(database::DbQueue::new(db.clone()).await?)
        }
    })
}

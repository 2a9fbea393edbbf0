//! The worker runtime: fetch, run, acknowledge, retry, recover, shut down.
//!
//! A [`Runner`] owns one worker *session* ([`WorkerId`]) on a [`Queue`](crate::queue::Queue)
//! and runs jobs with a handler function, at most `concurrency` at once:
//!
//! 1. **Fetch** ahead: up to twice `concurrency` jobs are claimed at once (a prefetch of one
//!    `concurrency`), waiting up to `fetch_wait` on the backend's wake-up (blocking pop /
//!    notify) when nothing is due. A fetch costs one round trip whatever its size; claiming
//!    only the slots free at that instant kept batches small and made the fetch loop the
//!    limit (no-op drain on Redis, `bench/queue.sh`: ~28k jobs/s without the prefetch, ~35k
//!    with it). Prefetched jobs are `running` in the queue (claimed by this session) but wait
//!    for an execution slot.
//! 2. **Run** each job on its own task, at most `concurrency` at once; a panic is caught and
//!    treated as a transient failure. The handler gets a [`Claim`]: the lease with its kind
//!    parsed once here (an unknown kind is dead without running) and `is_last_attempt` from the
//!    same retry schedule step 3 applies.
//! 3. **Decide**: success → `complete`; failure → the kind's [`RetrySchedule`] says retry at
//!    `now + delay` or dead ([`JobError::Permanent`] is dead at once). A job claimed more often
//!    than its schedule allows (it kept killing its workers) goes to dead before it runs again.
//!    The error text is stored and logged with phone numbers masked ([`mask_in_text`]).
//! 4. **Acknowledge** (`complete`, `retry_at`, `bury`) with capped exponential backoff while the
//!    ack fails (a locked SQLite, a Redis reply lost to a timeout or a dropped connection), for
//!    up to `stale_after − heartbeat − fetch_wait`; meanwhile the job stays in this process's
//!    set of held jobs. A repeated ack whose first try did land is a harmless no-op in both
//!    backends (acks act only on a job running for the calling session). An ack that still
//!    fails is given up: the job leaves the set and reconciliation (5) puts it back.
//! 5. **Reconcile** every `heartbeat`, in the fetch loop between two fetches: the jobs the queue
//!    says this session holds ([`Queue::held`]) but this process is not running, prefetching or
//!    acknowledging are put back (`release`, attempt not counted). Recovery only sees silent
//!    sessions; without this a job whose ack never landed (or whose claim reply was lost)
//!    stayed `running` for as long as its live session heartbeated. Running it between fetches
//!    makes it exact: no fetch is in flight, so every job this session claimed and was told
//!    about is in the set, and what the set lacks is stray (or an ack landing at that moment,
//!    whose release is then a no-op; the job cannot be claimed again by this session before
//!    the release lands). A job is therefore back in the queue about `stale_after` after this
//!    process stopped working on it (patience + one `heartbeat` + one fetch + the release's
//!    round trip), no later than the jobs of a dead worker (`stale_after` + one `heartbeat`).
//! 6. **Heartbeat** every `heartbeat`, and on the same tick re-queue the jobs of sessions silent
//!    for `stale_after` (any live worker does this; the backends make it idempotent).
//! 7. **Shutdown** (the future passed to [`Runner::run`] resolves): stop fetching, put
//!    prefetched jobs that have not started back at once, let running jobs finish for up to
//!    `shutdown_grace`, put the unfinished ones back (`release`, attempt not counted), remove
//!    the session, return. The session heartbeats until it is removed: a grace longer than
//!    `stale_after` must not let another worker declare it dead and run its jobs a second time.
//!
//! [`Queue::held`]: crate::queue::Queue::held
//!
//! Metrics (recorded when the process installed a recorder — the all-in-one `moked` does, see
//! the intake's `metrics` module): `moked_jobs_total{kind,outcome=done|retry|dead}` per
//! finished attempt and `moked_job_duration_seconds{kind}` per handler run. Each finished
//! attempt is also tallied for the queue's cluster-wide counters ([`crate::queue::outcomes`]),
//! flushed on every heartbeat and once more before the session is removed.
//!
//! [`RetrySchedule`]: crate::retry::RetrySchedule
//! [`mask_in_text`]: crate::phone::mask_in_text

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::kinds::JobKind;
use crate::phone::mask_in_text;
use crate::queue::outcomes::{Outcome, Tally};
use crate::queue::{JobState, Lease, QueueError, SharedQueue, WorkerId};
use crate::retry::{JobError, Next, RetryPolicy, panic_message};

/// One claimed job as its handler gets it: the lease, the kind the runner parsed (once, before
/// the handler runs; a kind this build does not know never reaches a handler) and whether this
/// is the last attempt the kind's retry schedule allows.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The job as the queue handed it out.
    pub lease: Lease,
    /// The lease's kind, parsed.
    pub kind: JobKind,
    /// No attempt follows this one if it fails (the runner's [`RetryPolicy`] says so; a
    /// handler that must leave a final record on its last try reads this instead of working it
    /// out again).
    pub is_last_attempt: bool,
}

/// A job handler: runs one claimed job.
pub type Handler = Arc<dyn Fn(Claim) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Claim) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |claim| f(claim).boxed())
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Jobs at once.
    pub concurrency: usize,
    /// Heartbeat, recovery and reconciliation interval.
    pub heartbeat: Duration,
    /// A session silent this long is dead.
    pub stale_after: Duration,
    /// How long shutdown waits for running jobs.
    pub shutdown_grace: Duration,
    /// Longest blocking wait of one fetch (bounds shutdown latency).
    pub fetch_wait: Duration,
    /// Retry schedules.
    pub policy: RetryPolicy,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            concurrency: 32,
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(25),
            fetch_wait: Duration::from_secs(1),
            policy: RetryPolicy::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Jobs completed.
    pub done: u64,
    /// Failures scheduled for another attempt.
    pub retried: u64,
    /// Jobs sent to dead.
    pub dead: u64,
    /// Jobs put back at shutdown.
    pub released: u64,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    /// Finished attempts not yet added to the queue's cluster-wide counters (flushed on each
    /// heartbeat and at shutdown, [`flush_outcomes`]).
    tally: Tally,
}

impl Counters {
    /// Counts one finished attempt of a `kind` job: this run's summary, the process's
    /// `moked_jobs_total` and the tally for the cluster-wide counters.
    fn finished(&self, kind: &str, outcome: Outcome) {
        let own = match outcome {
            Outcome::Done => &self.done,
            Outcome::Retry => &self.retried,
            Outcome::Dead => &self.dead,
        };
        own.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("moked_jobs_total", "kind" => kind.to_owned(), "outcome" => outcome.as_str())
            .increment(1);
        self.tally.add(kind, outcome, Utc::now());
    }
}

/// Adds the tallied outcomes to the queue's cluster-wide counters; on failure they stay in the
/// tally for the next flush.
async fn flush_outcomes(queue: &SharedQueue, counters: &Counters) {
    let counts = counters.tally.take();
    if counts.is_empty() {
        return;
    }
    if let Err(e) = queue.record_outcomes(&counts).await {
        warn!(error = %e, "could not add to the cluster-wide job counters; trying again on the next heartbeat");
        counters.tally.restore(counts);
    }
}

/// Runs jobs from a queue; see the module doc.
pub struct Runner {
    queue: SharedQueue,
    worker: WorkerId,
    config: RunnerConfig,
    handler: Handler,
    counters: Arc<Counters>,
}

/// How a run loop ends.
enum Until {
    /// When the shutdown signal fires.
    Signal,
    /// When nothing is queued, running or retrying (tests and benchmarks).
    Drained,
}

impl Runner {
    /// A runner with a new session under `name`.
    pub fn new(queue: SharedQueue, name: &str, config: RunnerConfig, handler: Handler) -> Self {
        Runner {
            queue,
            worker: WorkerId::new(name),
            config,
            handler,
            counters: Arc::default(),
        }
    }

    /// This runner's session.
    pub fn worker(&self) -> &WorkerId {
        &self.worker
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunSummary, QueueError> {
        self.run_inner(Until::Signal, shutdown).await
    }

    /// Runs until no job is queued, running or retrying in the whole queue (a drain helper for
    /// tests and benchmarks; delayed retries are waited for), or until `shutdown` resolves.
    pub async fn drain(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunSummary, QueueError> {
        self.run_inner(Until::Drained, shutdown).await
    }

    async fn run_inner(
        self,
        until: Until,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunSummary, QueueError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let signal = AbortOnDrop(tokio::spawn({
            let stop_tx = stop_tx.clone();
            async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            }
        }));
        self.queue.heartbeat(&self.worker).await?;
        info!(worker = %self.worker.session, backend = self.queue.backend(), concurrency = self.config.concurrency, "worker started");
        let held: Arc<Mutex<HashSet<String>>> = Arc::default();
        // Beats through the shutdown grace too, until just before the session is removed (a
        // beat after `deregister` would register it again). Dropped with this future: a runner
        // that is cancelled (or whose process dies) stops heartbeating, so its jobs are
        // recovered by others.
        let beat = AbortOnDrop(tokio::spawn(heartbeat_loop(
            self.queue.clone(),
            self.worker.clone(),
            self.config.clone(),
            self.counters.clone(),
        )));

        let slots = Slots {
            claim: Arc::new(Semaphore::new(self.config.concurrency * 2)),
            exec: Arc::new(Semaphore::new(self.config.concurrency)),
        };
        let mut tasks = JoinSet::new();
        let result = self
            .fetch_loop(&until, &stop_rx, &slots, &held, &mut tasks)
            .await;

        let _ = stop_tx.send(true);
        let released = self.finish(&mut tasks, &held).await;
        drop(signal);
        drop(beat);
        flush_outcomes(&self.queue, &self.counters).await;
        if let Err(e) = self.queue.deregister(&self.worker).await {
            warn!(error = %e, "could not remove the worker session; it expires on its own");
        }
        let summary = RunSummary {
            done: self.counters.done.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            dead: self.counters.dead.load(Ordering::Relaxed),
            released,
        };
        info!(worker = %self.worker.session, ?summary, "worker stopped");
        result.map(|()| summary)
    }

    async fn fetch_loop(
        &self,
        until: &Until,
        stop: &watch::Receiver<bool>,
        slots: &Slots,
        held: &Arc<Mutex<HashSet<String>>>,
        tasks: &mut JoinSet<()>,
    ) -> Result<(), QueueError> {
        let mut backoff = Duration::from_millis(100);
        let mut reconcile = tokio::time::interval(self.config.heartbeat);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            while tasks.try_join_next().is_some() {}
            // Wait for at least one free slot (or shutdown); reconcile when it is time, also
            // while every slot is busy.
            let woke = {
                let mut stop = stop.clone();
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => Woke::Stop,
                    _ = reconcile.tick() => Woke::Reconcile,
                    permit = slots.claim.clone().acquire_owned() => Woke::Slot(permit.map_err(|_| QueueError::Invalid("slots closed".into()))?),
                }
            };
            let first = match woke {
                Woke::Stop => return Ok(()),
                Woke::Reconcile => {
                    self.reconcile(held).await;
                    continue;
                }
                Woke::Slot(permit) => permit,
            };
            let mut permits = vec![first];
            while let Ok(p) = slots.claim.clone().try_acquire_owned() {
                permits.push(p);
            }
            let fetched = self
                .queue
                .fetch(&self.worker, permits.len(), self.config.fetch_wait)
                .await;
            // Held before the next reconciliation can run (it runs in this loop). Jobs fetched
            // as shutdown began are not held: they go straight back below.
            let stopping = *stop.borrow();
            if let (Ok(leases), false) = (&fetched, stopping) {
                lock(held).extend(leases.iter().map(|l| l.id.clone()));
            }
            let leases = match fetched {
                Ok(leases) => {
                    backoff = Duration::from_millis(100);
                    leases
                }
                Err(e) => {
                    error!(error = %e, "fetch failed; backing off");
                    drop(permits);
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if stopping {
                // Shutdown began while the fetch waited: the jobs it brought back are not ours
                // to start any more; put them back uncounted.
                for lease in &leases {
                    if let Err(e) = self.queue.release(&self.worker, &lease.id).await {
                        warn!(job_id = %lease.id, error = %e, "could not release a job fetched during shutdown; reconciliation or recovery will re-queue it");
                    }
                }
                return Ok(());
            }
            if leases.is_empty() {
                drop(permits);
                if matches!(until, Until::Drained) && tasks.is_empty() && self.settled().await? {
                    return Ok(());
                }
                continue;
            }
            for (lease, permit) in leases.into_iter().zip(permits.drain(..)) {
                let job = JobTask {
                    queue: self.queue.clone(),
                    worker: self.worker.clone(),
                    policy: self.config.policy.clone(),
                    ack_patience: ack_patience(&self.config),
                    handler: self.handler.clone(),
                    counters: self.counters.clone(),
                    held: held.clone(),
                };
                let span = info_span!("job", job_id = %lease.id, kind = %lease.kind, attempt = lease.attempts);
                let (exec, mut stop) = (slots.exec.clone(), stop.clone());
                tasks.spawn(
                    async move {
                        // A prefetched job waits for an execution slot; if shutdown comes
                        // first it goes back to the queue unstarted.
                        let slot = tokio::select! {
                            biased;
                            _ = stop.wait_for(|s| *s) => None,
                            slot = exec.acquire_owned() => slot.ok(),
                        };
                        match slot {
                            Some(slot) => {
                                job.execute(lease).await;
                                drop(slot);
                            }
                            None => job.give_back(lease).await,
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }

    /// Puts back what the queue says this session holds but this process does not (see the
    /// module doc, step 5). Only called from the fetch loop between two fetches. Failures are
    /// logged: the next tick tries again.
    async fn reconcile(&self, held: &Mutex<HashSet<String>>) {
        let claimed = match self.queue.held(&self.worker).await {
            Ok(claimed) => claimed,
            Err(e) => {
                warn!(error = %e, "could not read which jobs this worker holds; reconciling at the next heartbeat");
                return;
            }
        };
        let stray: Vec<String> = {
            let held = lock(held);
            claimed
                .into_iter()
                .filter(|id| !held.contains(id))
                .collect()
        };
        for id in stray {
            match self.queue.release(&self.worker, &id).await {
                Ok(()) => {
                    warn!(job_id = %id, "put back a job the queue said this worker held but it was not running (an ack or a claim reply was lost)")
                }
                Err(e) => {
                    warn!(job_id = %id, error = %e, "could not put back a job this worker holds but does not run; trying again at the next heartbeat")
                }
            }
        }
    }

    /// Whether nothing is left to do in the whole queue.
    async fn settled(&self) -> Result<bool, QueueError> {
        let stats = self.queue.stats().await?;
        Ok([JobState::Queued, JobState::Running, JobState::Retrying]
            .into_iter()
            .all(|s| stats.count(s) == 0))
    }

    /// Waits up to the grace period for running jobs, then releases what is left.
    async fn finish(&self, tasks: &mut JoinSet<()>, held: &Mutex<HashSet<String>>) -> u64 {
        if !tasks.is_empty() {
            info!(
                running = tasks.len(),
                grace_s = self.config.shutdown_grace.as_secs_f64(),
                "waiting for running jobs"
            );
        }
        let waited = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if waited.is_ok() {
            return 0;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let left: Vec<String> = lock(held).iter().cloned().collect();
        let mut released = 0;
        for id in left {
            match self.queue.release(&self.worker, &id).await {
                Ok(()) => released += 1,
                Err(e) => {
                    warn!(job_id = %id, error = %e, "could not release a job; recovery will re-queue it")
                }
            }
        }
        warn!(released, "shutdown grace ran out; unfinished jobs put back");
        released
    }
}

/// What the fetch loop's wait for a free slot ended with.
enum Woke {
    Stop,
    Reconcile,
    Slot(tokio::sync::OwnedSemaphorePermit),
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runner's two limits: jobs claimed (running + prefetched) and jobs executing.
struct Slots {
    claim: Arc<Semaphore>,
    exec: Arc<Semaphore>,
}

/// The first pause before an ack is tried again; it doubles up to [`ACK_RETRY_MAX`].
const ACK_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two tries of one ack.
const ACK_RETRY_MAX: Duration = Duration::from_secs(5);

/// How long a failing ack is tried again before the job is left to reconciliation: with the
/// heartbeat until the next reconciliation and the fetch it may wait for, a job whose outcome
/// cannot be recorded is back in the queue `stale_after` after it ran, as if its worker had
/// died.
fn ack_patience(config: &RunnerConfig) -> Duration {
    config
        .stale_after
        .saturating_sub(config.heartbeat)
        .saturating_sub(config.fetch_wait)
}

/// Locks the set of held jobs — claimed and running, prefetched, or being acknowledged; it stays
/// consistent even if a holder panicked (each update is one step).
fn lock(held: &Mutex<HashSet<String>>) -> MutexGuard<'_, HashSet<String>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything one job's task needs.
struct JobTask {
    queue: SharedQueue,
    worker: WorkerId,
    policy: RetryPolicy,
    ack_patience: Duration,
    handler: Handler,
    counters: Arc<Counters>,
    held: Arc<Mutex<HashSet<String>>>,
}

/// The outcome of one attempt, as the queue is told it.
enum Ack {
    Done,
    Retry { error: String, at: DateTime<Utc> },
    Dead { error: String },
}

impl JobTask {
    /// Puts a prefetched job back unstarted (shutdown).
    async fn give_back(self, lease: Lease) {
        if let Err(e) = self.queue.release(&self.worker, &lease.id).await {
            warn!(error = %e, "could not put back a prefetched job; reconciliation or recovery will re-queue it");
        }
        lock(&self.held).remove(&lease.id);
    }

    async fn execute(self, lease: Lease) {
        let id = lease.id.clone();
        let kind_name = lease.kind.clone();
        let attempts = lease.attempts;
        let kind = lease.kind.parse::<JobKind>();
        let outcome = match &kind {
            Err(e) => Err(JobError::permanent(e)),
            Ok(k) if attempts > self.policy.schedule(*k).max_attempts() => {
                Err(JobError::Permanent(format!(
                    "gave up after {} claims (the job was abandoned by its workers too often)",
                    attempts - 1
                )))
            }
            Ok(k) => {
                let claim = Claim {
                    is_last_attempt: self.policy.schedule(*k).is_last_attempt(attempts),
                    kind: *k,
                    lease,
                };
                let started = std::time::Instant::now();
                let result = AssertUnwindSafe((self.handler)(claim)).catch_unwind().await;
                let result = result.unwrap_or_else(|panic| {
                    Err(JobError::Transient(format!(
                        "handler panicked: {}",
                        panic_message(&*panic)
                    )))
                });
                metrics::histogram!("moked_job_duration_seconds", "kind" => kind_name.clone())
                    .record(started.elapsed().as_secs_f64());
                debug!(
                    duration_ms = started.elapsed().as_millis() as u64,
                    ok = result.is_ok(),
                    "job ran"
                );
                result
            }
        };
        let ack = match outcome {
            Ok(()) => {
                self.counters.finished(&kind_name, Outcome::Done);
                Ack::Done
            }
            Err(err) => {
                let schedule = kind
                    .as_ref()
                    .map(|k| self.policy.schedule(*k).clone())
                    .unwrap_or_default();
                let next = schedule.next(attempts, &err, &mut rand::rng());
                // Stored as `last_error` and in the history, shown to operators and logged:
                // provider errors quote the numbers they refused.
                let error = mask_in_text(&err.to_string());
                match next {
                    Next::RetryIn(delay) => {
                        self.counters.finished(&kind_name, Outcome::Retry);
                        warn!(%error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
                        let at = Utc::now()
                            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        Ack::Retry { error, at }
                    }
                    Next::Dead => {
                        self.counters.finished(&kind_name, Outcome::Dead);
                        error!(%error, "job failed for good; moved to dead");
                        Ack::Dead { error }
                    }
                }
            }
        };
        self.acknowledge(&id, &ack).await;
        lock(&self.held).remove(&id);
    }

    /// Tells the queue `ack`, trying again with capped exponential backoff for up to
    /// `ack_patience` (see the module doc, step 4). Trying again is safe: an ack whose earlier
    /// try landed (only its reply was lost) is a no-op.
    async fn acknowledge(&self, id: &str, ack: &Ack) {
        let deadline = tokio::time::Instant::now() + self.ack_patience;
        let mut pause = ACK_RETRY_FIRST;
        loop {
            let result = match ack {
                Ack::Done => self.queue.complete(&self.worker, id).await,
                Ack::Retry { error, at } => self.queue.retry_at(&self.worker, id, error, *at).await,
                Ack::Dead { error } => self.queue.bury(&self.worker, id, error).await,
            };
            let Err(e) = result else { return };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                error!(error = %e, "could not record the job's outcome; giving up, the job goes back to the queue and runs again");
                return;
            }
            let pause_now = pause.min(left);
            warn!(error = %e, retry_in_ms = pause_now.as_millis() as u64, "could not record the job's outcome; trying again");
            tokio::time::sleep(pause_now).await;
            pause = (pause * 2).min(ACK_RETRY_MAX);
        }
    }
}

/// Heartbeats and recovers silent sessions' jobs every `heartbeat` until aborted (the runner
/// aborts it just before removing the session).
async fn heartbeat_loop(
    queue: SharedQueue,
    worker: WorkerId,
    config: RunnerConfig,
    counters: Arc<Counters>,
) {
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = queue.heartbeat(&worker).await {
            warn!(error = %e, "heartbeat failed");
            continue;
        }
        flush_outcomes(&queue, &counters).await;
        match queue.recover_abandoned(config.stale_after).await {
            Ok(0) => {}
            Ok(n) => warn!(jobs = n, "re-queued jobs of dead workers"),
            Err(e) => warn!(error = %e, "recovery of abandoned jobs failed"),
        }
    }
}

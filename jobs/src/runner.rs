//! The worker runtime: fetch, run, acknowledge, retry, recover, shut down.
//!
//! A [`Runner`] owns one worker *session* ([`WorkerId`]) on a [`Queue`] and runs jobs with a
//! handler function, at most `concurrency` at once:
//!
//! 1. **Fetch** ahead: up to twice `concurrency` jobs are claimed at once (a prefetch of one
//!    `concurrency`), waiting up to `fetch_wait` on the backend's wake-up (blocking pop /
//!    notify) when nothing is due. A fetch costs one round trip whatever its size; claiming
//!    only the slots free at that instant kept batches small and made the fetch loop the
//!    limit (no-op drain on Redis, `bench/queue.sh`: ~28k jobs/s without the prefetch, ~35k
//!    with it). Prefetched jobs are `running` in the queue (claimed by this session) but wait
//!    for an execution slot.
//! 2. **Run** each job on its own task, at most `concurrency` at once; a panic is caught and
//!    treated as a transient failure.
//! 3. **Decide**: success → `complete`; failure → the kind's [`RetrySchedule`] says retry at
//!    `now + delay` or dead ([`JobError::Permanent`] is dead at once). A job claimed more often
//!    than its schedule allows (it kept killing its workers) goes to dead before it runs again.
//! 4. **Heartbeat** every `heartbeat`, and on the same tick re-queue the jobs of sessions silent
//!    for `stale_after` (any live worker does this; the backends make it idempotent).
//! 5. **Shutdown** (the future passed to [`Runner::run`] resolves): stop fetching, put
//!    prefetched jobs that have not started back at once, let running jobs finish for up to
//!    `shutdown_grace`, put the unfinished ones back (`release`, attempt not counted), remove
//!    the session, return.
//!
//! Metrics (recorded when the process installed a recorder — the all-in-one `moked` does, see
//! the intake's `metrics` module): `moked_jobs_total{kind,outcome=done|retry|dead}` per
//! finished attempt and `moked_job_duration_seconds{kind}` per handler run.
//!
//! [`RetrySchedule`]: crate::retry::RetrySchedule

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::kinds::JobKind;
use crate::queue::{JobState, Lease, QueueError, SharedQueue, WorkerId};
use crate::retry::{JobError, Next, RetryPolicy};

/// A job handler: runs one claimed job.
pub type Handler = Arc<dyn Fn(Lease) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Lease) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |lease| f(lease).boxed())
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Jobs at once.
    pub concurrency: usize,
    /// Heartbeat (and recovery) interval.
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
        // Dropped with this future: a runner that is cancelled (or whose process dies) stops
        // heartbeating, so its jobs are recovered by others.
        let beat = AbortOnDrop(tokio::spawn(heartbeat_loop(
            self.queue.clone(),
            self.worker.clone(),
            self.config.clone(),
            stop_rx.clone(),
        )));

        let slots = Slots {
            claim: Arc::new(Semaphore::new(self.config.concurrency * 2)),
            exec: Arc::new(Semaphore::new(self.config.concurrency)),
        };
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let result = self
            .fetch_loop(&until, &stop_rx, &slots, &running, &mut tasks)
            .await;

        let _ = stop_tx.send(true);
        let released = self.finish(&mut tasks, &running).await;
        drop(signal);
        drop(beat);
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
        running: &Arc<Mutex<HashSet<String>>>,
        tasks: &mut JoinSet<()>,
    ) -> Result<(), QueueError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            while tasks.try_join_next().is_some() {}
            // Wait for at least one free slot (or shutdown).
            let first = {
                let mut stop = stop.clone();
                tokio::select! {
                    permit = slots.claim.clone().acquire_owned() => permit.map_err(|_| QueueError::Invalid("slots closed".into()))?,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            };
            let mut permits = vec![first];
            while let Ok(p) = slots.claim.clone().try_acquire_owned() {
                permits.push(p);
            }
            let leases = match self
                .queue
                .fetch(&self.worker, permits.len(), self.config.fetch_wait)
                .await
            {
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
            if *stop.borrow() {
                // Shutdown began while the fetch waited: the jobs it brought back are not ours
                // to start any more; put them back uncounted.
                for lease in &leases {
                    if let Err(e) = self.queue.release(&self.worker, &lease.id).await {
                        warn!(job_id = %lease.id, error = %e, "could not release a job fetched during shutdown; recovery will re-queue it");
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
                if let Ok(mut set) = running.lock() {
                    set.insert(lease.id.clone());
                }
                let job = JobTask {
                    queue: self.queue.clone(),
                    worker: self.worker.clone(),
                    policy: self.config.policy.clone(),
                    handler: self.handler.clone(),
                    counters: self.counters.clone(),
                    running: running.clone(),
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

    /// Whether nothing is left to do in the whole queue.
    async fn settled(&self) -> Result<bool, QueueError> {
        let stats = self.queue.stats().await?;
        Ok([JobState::Queued, JobState::Running, JobState::Retrying]
            .into_iter()
            .all(|s| stats.count(s) == 0))
    }

    /// Waits up to the grace period for running jobs, then releases what is left.
    async fn finish(&self, tasks: &mut JoinSet<()>, running: &Arc<Mutex<HashSet<String>>>) -> u64 {
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
        let left: Vec<String> = running
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
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

/// Everything one job's task needs.
struct JobTask {
    queue: SharedQueue,
    worker: WorkerId,
    policy: RetryPolicy,
    handler: Handler,
    counters: Arc<Counters>,
    running: Arc<Mutex<HashSet<String>>>,
}

impl JobTask {
    /// Puts a prefetched job back unstarted (shutdown).
    async fn give_back(self, lease: Lease) {
        if let Err(e) = self.queue.release(&self.worker, &lease.id).await {
            warn!(error = %e, "could not put back a prefetched job; recovery will re-queue it");
        }
        if let Ok(mut set) = self.running.lock() {
            set.remove(&lease.id);
        }
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
            Ok(_) => {
                let started = std::time::Instant::now();
                let result = AssertUnwindSafe((self.handler)(lease)).catch_unwind().await;
                let result = result.unwrap_or_else(|panic| {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    Err(JobError::Transient(format!("handler panicked: {msg}")))
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
                self.counters.done.fetch_add(1, Ordering::Relaxed);
                job_outcome(&kind_name, "done");
                self.queue.complete(&self.worker, &id).await
            }
            Err(err) => {
                let schedule = kind
                    .as_ref()
                    .map(|k| self.policy.schedule(*k).clone())
                    .unwrap_or_default();
                let next = schedule.next(attempts, &err, &mut rand::rng());
                let message = err.to_string();
                match next {
                    Next::RetryIn(delay) => {
                        self.counters.retried.fetch_add(1, Ordering::Relaxed);
                        job_outcome(&kind_name, "retry");
                        warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
                        let at = Utc::now()
                            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        self.queue.retry_at(&self.worker, &id, &message, at).await
                    }
                    Next::Dead => {
                        self.counters.dead.fetch_add(1, Ordering::Relaxed);
                        job_outcome(&kind_name, "dead");
                        error!(error = %message, "job failed for good; moved to dead");
                        self.queue.bury(&self.worker, &id, &message).await
                    }
                }
            }
        };
        if let Err(e) = ack {
            error!(error = %e, "could not record the job's outcome; it will run again after recovery");
        }
        if let Ok(mut set) = self.running.lock() {
            set.remove(&id);
        }
    }
}

/// Counts one finished attempt of a `kind` job: `done`, `retry` or `dead`.
fn job_outcome(kind: &str, outcome: &'static str) {
    metrics::counter!("moked_jobs_total", "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
}

async fn heartbeat_loop(
    queue: SharedQueue,
    worker: WorkerId,
    config: RunnerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = queue.heartbeat(&worker).await {
            warn!(error = %e, "heartbeat failed");
            continue;
        }
        match queue.recover_abandoned(config.stale_after).await {
            Ok(0) => {}
            Ok(n) => warn!(jobs = n, "re-queued jobs of dead workers"),
            Err(e) => warn!(error = %e, "recovery of abandoned jobs failed"),
        }
    }
}

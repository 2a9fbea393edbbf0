//! `moked-worker clock`: fires scheduled tasks (reconcile, health, cleanup) as jobs, exactly once
//! per tick however many clock processes run.
//!
//! **Exactly once.** Each tick enqueues one job with the dedupe key `clock:{task}:{local tick time}`,
//! so any number of clock processes (or all-in-one `moked` instances) produce one job per tick:
//! the queue's dedupe does the election, no leader needed.
//!
//! **Wall-clock schedules and DST.** Schedules are 6-field cron expressions (seconds first)
//! evaluated on the *local* wall clock of `CLOCK_TZ` (default Asia/Jerusalem). We walk local
//! naive times and only then map them to instants, because the `cron` crate, evaluated in a zone,
//! skips ticks inside a spring-forward gap and fires twice in a fall-back overlap:
//! * a local time that does not exist (the gap) fires at the first instant after the gap;
//! * a local time that exists twice (the overlap) fires at its first occurrence, and the second
//!   one has the same dedupe key, so it is not fired again.
//!
//! **Downtime.** Missed ticks are not replayed one by one: at start-up each task gets one
//! catch-up job for its latest past tick (deduplicated like any tick, so a tick another clock
//! already fired is not repeated), and a running clock that finds several ticks of one task due
//! at once (the host was suspended, the system clock jumped) fires only the latest of them.
//!
//! **Time is a parameter.** [`Scheduler::step`] fires the ticks due by the instant it is given,
//! and [`run_with`] reads the time from a closure ([`run`] passes `Utc::now`) and waits with
//! `tokio::time::sleep`; tests drive a virtual clock through either (paused tokio time, or one
//! step per virtual second) against a real queue.
//!
//! The settings of the tasks themselves (reconcile thresholds, batch and pacing, the queue-lag
//! threshold of the health check, recording retention) are worker settings
//! ([`TaskArgs`](crate::config::TaskArgs)), read by the workers that run the jobs, not by the
//! clock.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use clap::Args;
use cron::Schedule;
use moked_jobs::config::ConfigError;
use moked_jobs::kinds::{ClockCleanup, ClockHealth, ClockReconcile, ClockTick, JobKind};
use moked_jobs::queue::{Enqueued, NewJob, QueueResult, SharedQueue};
use moked_jobs::store::clock_tasks;
use tracing::{info, warn};

/// The scheduled tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Task {
    /// Repair call and message state from the Twilio REST API.
    Reconcile,
    /// Check the database, queue, Twilio and storage.
    Health,
    /// Prune old jobs, dedupe keys and recordings.
    Cleanup,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 3] = [Task::Reconcile, Task::Health, Task::Cleanup];

    /// The task's name in dedupe keys and logs.
    pub fn name(self) -> &'static str {
        match self {
            Task::Reconcile => "reconcile",
            Task::Health => "health",
            Task::Cleanup => "cleanup",
        }
    }

    /// The job kind it enqueues.
    pub fn kind(self) -> JobKind {
        match self {
            Task::Reconcile => JobKind::ClockReconcile,
            Task::Health => JobKind::ClockHealth,
            Task::Cleanup => JobKind::ClockCleanup,
        }
    }

    fn job(self, tick: DateTime<Utc>) -> NewJob {
        let t = ClockTick {
            tick: tick.to_rfc3339(),
        };
        match self {
            Task::Reconcile => NewJob::new(&ClockReconcile(t)),
            Task::Health => NewJob::new(&ClockHealth(t)),
            Task::Cleanup => NewJob::new(&ClockCleanup(t)),
        }
    }
}

/// Raw clock settings.
#[derive(Debug, Clone, Args)]
pub struct ClockArgs {
    /// Time zone the schedules are read in.
    #[arg(long, env = "CLOCK_TZ", default_value = "Asia/Jerusalem")]
    pub clock_tz: String,
    /// When reconciliation runs (cron, 6 fields, seconds first).
    #[arg(long, env = "SCHEDULE_RECONCILE", default_value = "0 */5 * * * *")]
    pub schedule_reconcile: String,
    /// When the health check runs.
    #[arg(long, env = "SCHEDULE_HEALTH", default_value = "0 * * * * *")]
    pub schedule_health: String,
    /// When cleanup runs.
    #[arg(long, env = "SCHEDULE_CLEANUP", default_value = "0 30 3 * * *")]
    pub schedule_cleanup: String,
}

/// Typed clock settings.
#[derive(Debug, Clone)]
pub struct ClockConfig {
    /// Zone of the schedules.
    pub tz: Tz,
    /// Each task's schedule.
    pub schedules: Vec<(Task, Schedule)>,
    /// Where [`run_with`] publishes the schedule and each fired tick for the operator console
    /// (`clock_task`, [`moked_jobs::store::clock_tasks`]); `None`: not published.
    pub store: Option<moked_jobs::store::Db>,
}

fn parse_schedule(var: &'static str, s: &str) -> Result<Schedule, ConfigError> {
    let fields = s.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(ConfigError::new(
            var,
            format!("`{s}` has {fields} fields; use 6 (seconds first), e.g. `0 */5 * * * *`"),
        ));
    }
    Schedule::from_str(s).map_err(|e| ConfigError::new(var, format!("`{s}`: {e}")))
}

impl ClockArgs {
    /// Parses and checks the clock settings.
    pub fn into_config(self) -> Result<ClockConfig, ConfigError> {
        let tz: Tz = self.clock_tz.parse().map_err(|_| {
            ConfigError::new("CLOCK_TZ", format!("unknown time zone `{}`", self.clock_tz))
        })?;
        Ok(ClockConfig {
            tz,
            store: None,
            schedules: vec![
                (
                    Task::Reconcile,
                    parse_schedule("SCHEDULE_RECONCILE", &self.schedule_reconcile)?,
                ),
                (
                    Task::Health,
                    parse_schedule("SCHEDULE_HEALTH", &self.schedule_health)?,
                ),
                (
                    Task::Cleanup,
                    parse_schedule("SCHEDULE_CLEANUP", &self.schedule_cleanup)?,
                ),
            ],
        })
    }
}

impl ClockConfig {
    /// The clock of `Asia/Jerusalem` (the default zone) with these schedules (cron, 6 fields),
    /// for tests; panics when one does not parse.
    #[doc(hidden)]
    pub fn for_tests(reconcile: &str, health: &str, cleanup: &str) -> ClockConfig {
        ClockArgs {
            clock_tz: "Asia/Jerusalem".into(),
            schedule_reconcile: reconcile.into(),
            schedule_health: health.into(),
            schedule_cleanup: cleanup.into(),
        }
        .into_config()
        .expect("clock config")
    }
}

/// One firing: a task at a local wall-clock time, and the instant it fires at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The task.
    pub task: Task,
    /// The wall-clock time in the schedule's zone (the dedupe identity).
    pub local: NaiveDateTime,
    /// When it fires.
    pub at: DateTime<Utc>,
}

impl Tick {
    /// The dedupe key: `clock:{task}:{local time}`.
    pub fn key(&self) -> String {
        format!(
            "clock:{}:{}",
            self.task.name(),
            self.local.format("%Y-%m-%dT%H:%M:%S")
        )
    }
}

/// Maps a local wall-clock time to the instant it fires at (see the module doc for gaps and
/// overlaps).
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the first existing whole minute after it (gaps last at most hours).
            let minute = local.with_second(0).unwrap_or(local);
            (1..=24 * 60)
                .find_map(|m| {
                    tz.from_local_datetime(&(minute + chrono::Duration::minutes(m)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| local.and_utc())
        }
    }
}

impl ClockConfig {
    /// The local wall-clock time of an instant.
    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// Every tick firing in `(from, to]`, in firing order.
    pub fn ticks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Tick> {
        let mut out = Vec::new();
        // Start a little before `from`'s wall time: around a fall-back the wall clock goes back.
        let start = self.local(from) - chrono::Duration::hours(3);
        let end = self.local(to) + chrono::Duration::hours(3);
        for (task, schedule) in &self.schedules {
            for local in schedule.after(&start.and_utc()) {
                let local = local.naive_utc();
                if local > end {
                    break;
                }
                let at = resolve(self.tz, local);
                if at > from && at <= to {
                    out.push(Tick {
                        task: *task,
                        local,
                        at,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.local.cmp(&b.local)));
        out
    }

    /// The next tick after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<Tick> {
        // Look ahead in widening windows (a yearly schedule still terminates).
        [1i64, 24, 24 * 40, 24 * 400].into_iter().find_map(|hours| {
            self.ticks_between(now, now + chrono::Duration::hours(hours))
                .into_iter()
                .next()
        })
    }

    /// The latest tick of each task at or before `now` (for the catch-up run).
    pub fn latest_before(&self, now: DateTime<Utc>) -> Vec<Tick> {
        let mut out = Vec::new();
        for task in Task::ALL {
            let only = ClockConfig {
                tz: self.tz,
                store: None,
                schedules: self
                    .schedules
                    .iter()
                    .filter(|(t, _)| *t == task)
                    .cloned()
                    .collect(),
            };
            let found = [2i64, 48, 24 * 40, 24 * 400].into_iter().find_map(|hours| {
                only.ticks_between(now - chrono::Duration::hours(hours), now)
                    .into_iter()
                    .last()
            });
            out.extend(found);
        }
        out
    }
}

/// Enqueues the job of one tick (deduplicated across clock processes).
pub async fn fire(queue: &SharedQueue, tick: &Tick) -> QueueResult<Enqueued> {
    // Keys outlive any plausible clock skew or restart between replicas.
    let job = tick
        .task
        .job(tick.at)
        .dedupe(tick.key(), Duration::from_secs(3 * 86_400));
    queue.enqueue(job).await
}

/// Enqueues one job for `task` now (`moked-worker clock --once TASK`).
pub async fn once(queue: &SharedQueue, task: Task) -> QueueResult<Enqueued> {
    queue.enqueue(task.job(Utc::now())).await
}

/// One tick handed to the queue, and what the queue said.
#[derive(Debug)]
pub struct Fired {
    /// The tick.
    pub tick: Tick,
    /// `Created` when this clock made the job, `Duplicate` when another clock already had.
    pub result: QueueResult<Enqueued>,
}

/// One clock's progress through its schedules: fires the ticks that fall between the instants
/// it is stepped to. [`run_with`] steps it from a real (or virtual) clock; tests step it
/// directly.
pub struct Scheduler {
    config: ClockConfig,
    queue: SharedQueue,
    /// Every tick at or before this instant has been dealt with.
    done_to: DateTime<Utc>,
    /// The first tick after `done_to` (kept, so a step that reaches no tick costs nothing).
    next: Option<Tick>,
}

impl Scheduler {
    /// A scheduler starting at `now`: fires the catch-up (each task's latest tick at or before
    /// `now`, deduplicated like any tick) and returns what it fired.
    pub async fn start(
        config: ClockConfig,
        queue: SharedQueue,
        now: DateTime<Utc>,
    ) -> (Scheduler, Vec<Fired>) {
        let mut fired = Vec::new();
        for tick in config.latest_before(now) {
            let result = fire(&queue, &tick).await;
            fired.push(Fired { tick, result });
        }
        let next = config.next_after(now);
        let scheduler = Scheduler {
            config,
            queue,
            done_to: now,
            next,
        };
        (scheduler, fired)
    }

    /// The next tick to fire, if any schedule ever fires again.
    pub fn next_tick(&self) -> Option<&Tick> {
        self.next.as_ref()
    }

    /// Fires every tick due in `(last step, now]`, oldest first; of several ticks of one task
    /// only the latest (missed ticks are not replayed). A `now` at or before the last step (the
    /// system clock went back) fires nothing.
    pub async fn step(&mut self, now: DateTime<Utc>) -> Vec<Fired> {
        if now <= self.done_to {
            return Vec::new();
        }
        if self.next.as_ref().is_some_and(|t| t.at > now) {
            self.done_to = now;
            return Vec::new();
        }
        let due = self.config.ticks_between(self.done_to, now);
        let mut latest: Vec<Tick> = Vec::new();
        for tick in due {
            // `due` is in firing order, so a later tick of a task replaces an earlier one.
            match latest.iter_mut().find(|t| t.task == tick.task) {
                Some(slot) => {
                    warn!(task = tick.task.name(), skipped = %slot.key(), "several ticks of one task due at once; firing only the latest");
                    *slot = tick;
                }
                None => latest.push(tick),
            }
        }
        latest.sort_by(|a, b| a.at.cmp(&b.at).then(a.local.cmp(&b.local)));
        let mut fired = Vec::with_capacity(latest.len());
        for tick in latest {
            let result = fire(&self.queue, &tick).await;
            fired.push(Fired { tick, result });
        }
        self.done_to = now;
        self.next = self.config.next_after(now);
        fired
    }
}

/// Runs the clock on the system clock until `shutdown` resolves (see [`run_with`]).
pub async fn run(
    config: ClockConfig,
    queue: SharedQueue,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    run_with(config, queue, Utc::now, shutdown).await;
}

/// Runs the clock until `shutdown` resolves: the catch-up, then every tick, reading the time
/// from `now` and waiting for the next tick with `tokio::time::sleep`.
pub async fn run_with(
    config: ClockConfig,
    queue: SharedQueue,
    now: impl Fn() -> DateTime<Utc> + Send + Sync,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    let tz = config.tz;
    let published = config.clone();
    publish_schedule(&published, now()).await;
    let (mut scheduler, fired) = Scheduler::start(config, queue, now()).await;
    report(&fired, "catch-up");
    publish_ticks(&published, &fired).await;
    info!(%tz, "clock started");
    loop {
        let Some(next_at) = scheduler.next_tick().map(|t| t.at) else {
            warn!("no schedule ever fires; the clock has nothing to do");
            shutdown.as_mut().await;
            return;
        };
        let wait = (next_at - now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.as_mut() => {
                info!("clock stopped");
                return;
            }
        }
        // The timer may wake a hair before the wall clock reaches the tick.
        let fired = scheduler.step(now().max(next_at)).await;
        report(&fired, "tick");
        publish_ticks(&published, &fired).await;
    }
}

/// The next tick of `task` after `now`.
fn next_of(config: &ClockConfig, task: Task, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let only = ClockConfig {
        tz: config.tz,
        store: None,
        schedules: config
            .schedules
            .iter()
            .filter(|(t, _)| *t == task)
            .cloned()
            .collect(),
    };
    only.next_after(now).map(|t| t.at)
}

/// Publishes every task's schedule (`config.store`); a failure is logged, never stops the clock.
async fn publish_schedule(config: &ClockConfig, now: DateTime<Utc>) {
    let Some(db) = &config.store else { return };
    let tasks: Vec<clock_tasks::Schedule> = config
        .schedules
        .iter()
        .map(|(task, schedule)| clock_tasks::Schedule {
            task: task.name().to_owned(),
            kind: task.kind().as_str().to_owned(),
            cron: schedule.to_string(),
            tz: config.tz.name().to_owned(),
            next_tick: next_of(config, *task, now),
        })
        .collect();
    if let Err(e) = clock_tasks::publish_schedule(db, &tasks).await {
        warn!(error = %e, "could not publish the clock's schedule");
    }
}

/// Publishes each fired tick with its job (this clock's or the one another clock made).
async fn publish_ticks(config: &ClockConfig, fired: &[Fired]) {
    let Some(db) = &config.store else { return };
    for f in fired {
        let Ok(enqueued) = &f.result else { continue };
        let next = next_of(config, f.tick.task, f.tick.at);
        let task = f.tick.task.name();
        let published = clock_tasks::record_tick(db, task, f.tick.at, enqueued.id(), next);
        if let Err(e) = published.await {
            warn!(task, error = %e, "could not publish a clock tick");
        }
    }
}

fn report(fired: &[Fired], what: &str) {
    for f in fired {
        report_one(&f.tick, &f.result, what);
    }
}

fn report_one(tick: &Tick, result: &QueueResult<Enqueued>, what: &str) {
    match result {
        Ok(Enqueued::Created(id)) => {
            info!(task = tick.task.name(), key = %tick.key(), job_id = %id, "{what} fired")
        }
        Ok(Enqueued::Duplicate(_)) => {
            tracing::debug!(task = tick.task.name(), key = %tick.key(), "{what} already fired elsewhere")
        }
        Err(e) => warn!(task = tick.task.name(), error = %e, "{what} could not be enqueued"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The reconcile ticks of `c` between two RFC 3339 times.
    fn reconcile_ticks(c: &ClockConfig, from: &str, to: &str) -> Vec<Tick> {
        c.ticks_between(utc(from), utc(to))
            .into_iter()
            .filter(|t| t.task == Task::Reconcile)
            .collect()
    }

    #[test]
    fn the_default_schedules_fire_the_expected_number_of_times_in_a_day() {
        let c = ClockConfig::for_tests("0 */5 * * * *", "0 * * * * *", "0 30 3 * * *");
        let ticks = c.ticks_between(utc("2026-06-01T00:00:00Z"), utc("2026-06-02T00:00:00Z"));
        let count = |t: Task| ticks.iter().filter(|k| k.task == t).count();
        assert_eq!(
            (
                count(Task::Reconcile),
                count(Task::Health),
                count(Task::Cleanup)
            ),
            (288, 1440, 1)
        );
    }

    #[test]
    fn a_tick_in_the_spring_forward_gap_fires_once_after_the_gap() {
        // Israel 2026: clocks jump 02:00 → 03:00 on Friday 27 March (00:00 UTC).
        let c = ClockConfig::for_tests("0 30 2 * * *", "0 0 0 1 1 *", "0 0 0 1 1 *");
        let ticks = reconcile_ticks(&c, "2026-03-26T12:00:00Z", "2026-03-27T12:00:00Z");
        assert_eq!(ticks.len(), 1, "{ticks:?}");
        assert_eq!(
            ticks[0].at,
            utc("2026-03-27T00:00:00Z"),
            "03:00 IDT, the end of the gap"
        );
    }

    #[test]
    fn a_tick_in_the_fall_back_overlap_fires_once() {
        // Israel 2026: clocks go 02:00 → 01:00 on Sunday 25 October (23:00 UTC on the 24th).
        let c = ClockConfig::for_tests("0 30 1 * * *", "0 0 0 1 1 *", "0 0 0 1 1 *");
        let ticks = reconcile_ticks(&c, "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z");
        assert_eq!(ticks.len(), 1, "{ticks:?}");
        assert_eq!(
            ticks[0].at,
            utc("2026-10-24T22:30:00Z"),
            "01:30 IDT, the first occurrence"
        );
        // The local day has 25 real hours; an hourly schedule fires once per wall-clock hour.
        let hourly = ClockConfig::for_tests("0 15 * * * *", "0 0 0 1 1 *", "0 0 0 1 1 *");
        let ticks = reconcile_ticks(&hourly, "2026-10-24T21:00:00Z", "2026-10-25T22:00:00Z");
        let keys: std::collections::HashSet<String> = ticks.iter().map(Tick::key).collect();
        assert_eq!(
            (ticks.len(), keys.len()),
            (24, 24),
            "each wall-clock hour once"
        );
    }

    #[test]
    fn five_field_cron_is_refused_with_the_variable_named() {
        let e = ClockArgs {
            clock_tz: "Asia/Jerusalem".into(),
            schedule_reconcile: "*/5 * * * *".into(),
            schedule_health: "0 * * * * *".into(),
            schedule_cleanup: "0 30 3 * * *".into(),
        }
        .into_config()
        .unwrap_err();
        assert_eq!(e.var, "SCHEDULE_RECONCILE");
        let tz = ClockArgs {
            clock_tz: "Mars/Olympus".into(),
            schedule_reconcile: "0 */5 * * * *".into(),
            schedule_health: "0 * * * * *".into(),
            schedule_cleanup: "0 30 3 * * *".into(),
        }
        .into_config()
        .unwrap_err();
        assert_eq!(tz.var, "CLOCK_TZ");
    }

    #[test]
    fn catch_up_names_the_latest_past_tick_of_each_task() {
        let c = ClockConfig::for_tests("0 */5 * * * *", "0 * * * * *", "0 30 3 * * *");
        let latest = c.latest_before(utc("2026-06-01T10:07:30Z"));
        let find = |t: Task| latest.iter().find(|k| k.task == t).unwrap().at;
        assert_eq!(find(Task::Reconcile), utc("2026-06-01T10:05:00Z"));
        assert_eq!(find(Task::Health), utc("2026-06-01T10:07:00Z"));
        assert_eq!(find(Task::Cleanup), utc("2026-06-01T00:30:00Z"));
    }
}

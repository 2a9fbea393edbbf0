//! The queue conformance suite: one set of cases, run unchanged against every backend
//! (`conformance.rs` instantiates it for Redis, SQLite and Postgres).
//!
//! Each case takes a fresh, empty queue. Nothing here sleeps to wait for work: cases wait on
//! the backends' own blocking fetch, on the runner's drain helper, or on channels from handlers.
#![allow(dead_code)]

pub mod faulty;
mod outcomes;
pub use outcomes::*;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use moked_jobs::kinds::{self, JobKind, WhatsAppSend};
use moked_jobs::queue::{JobState, ListQuery, NewJob, QueueResult, SharedQueue, WorkerId};
use moked_jobs::retry::{JobError, RetryPolicy, RetrySchedule};
use moked_jobs::runner::{Handler, RunSummary, Runner, RunnerConfig, handler};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

fn send_job(n: usize) -> NewJob {
    NewJob::new(&WhatsAppSend {
        message_id: format!("m{n}"),
    })
}

fn fast_config() -> RunnerConfig {
    RunnerConfig {
        concurrency: 8,
        heartbeat: Duration::from_millis(100),
        stale_after: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        fetch_wait: Duration::from_millis(200),
        policy: RetryPolicy::new("50ms,100ms".parse().expect("schedule")),
    }
}

/// A drain that must finish within 30 s (a hung backend fails the test instead of hanging CI).
async fn drain(runner: Runner) -> RunSummary {
    tokio::time::timeout(
        Duration::from_secs(30),
        runner.drain(std::future::pending()),
    )
    .await
    .expect("drain finished within 30 s")
    .expect("drain ran without queue errors")
}

fn ok_handler() -> Handler {
    handler(|_claim| async { Ok(()) })
}

/// A handler that notes the instant of each run and answers `answer(n)` to the `n`th (from 1),
/// and the instants.
fn timed_handler(
    answer: impl Fn(usize) -> Result<(), JobError> + Send + Sync + 'static,
) -> (Handler, Arc<Mutex<Vec<Instant>>>) {
    let runs = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let answer = Arc::new(answer);
    let h = {
        let runs = runs.clone();
        handler(move |_claim| {
            let (runs, answer) = (runs.clone(), answer.clone());
            async move {
                let n = {
                    let mut r = runs.lock().unwrap();
                    r.push(Instant::now());
                    r.len()
                };
                answer(n)
            }
        })
    };
    (h, runs)
}

/// A handler that tells the receiver when it first starts, then never returns.
fn hanging_handler() -> (Handler, oneshot::Receiver<()>) {
    let (started_tx, started_rx) = oneshot::channel();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let hang = handler(move |_l| {
        let tx = started_tx.lock().unwrap().take();
        async move {
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
            std::future::pending::<Result<(), JobError>>().await
        }
    });
    (hang, started_rx)
}

/// A handler that sends each job's id when it starts, then waits for a permit of the gate.
fn gated_handler() -> (Handler, mpsc::UnboundedReceiver<String>, Arc<Semaphore>) {
    let (started_tx, started_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let h = {
        let gate = gate.clone();
        handler(move |claim| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(claim.lease.id.clone());
                gate.acquire().await.unwrap().forget();
                Ok(())
            }
        })
    };
    (h, started_rx, gate)
}

/// The runner's loop, spawned; it stops when the sender sends (or is dropped).
fn run_until_stopped(runner: Runner) -> (oneshot::Sender<()>, JoinHandle<QueueResult<RunSummary>>) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(runner.run(async move {
        let _ = stop_rx.await;
    }));
    (stop_tx, run)
}

/// A `call.started` job of call `CA1`.
fn call_started_job() -> NewJob {
    NewJob::new(&moked_jobs::kinds::CallStarted {
        call_sid: "CA1".into(),
        from: "+972501234567".into(),
        to: "+97231234567".into(),
        status: None,
        received_at: Utc::now(),
    })
}

pub async fn a_dedupe_key_inside_its_ttl_yields_one_job(q: SharedQueue) {
    let ttl = Duration::from_secs(60);
    let first = q
        .enqueue(send_job(1).dedupe("call.started:CA1", ttl))
        .await
        .unwrap();
    let second = q
        .enqueue(send_job(2).dedupe("call.started:CA1", ttl))
        .await
        .unwrap();
    let other = q
        .enqueue(send_job(3).dedupe("call.started:CA2", ttl))
        .await
        .unwrap();
    assert!(first.is_created());
    assert!(
        !second.is_created(),
        "the same key must not create a second job"
    );
    assert_eq!(first.id(), second.id());
    assert!(other.is_created());
    assert_eq!(q.stats().await.unwrap().count(JobState::Queued), 2);
}

pub async fn an_expired_dedupe_key_allows_a_new_job(q: SharedQueue) {
    let first = q
        .enqueue(send_job(1).dedupe("k", Duration::from_millis(1)))
        .await
        .unwrap();
    // Wait on the clock itself (not on work): the key's TTL is 1 ms.
    let deadline = Instant::now() + Duration::from_millis(5);
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    let second = q
        .enqueue(send_job(2).dedupe("k", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(second.is_created());
    assert_ne!(first.id(), second.id());
}

pub async fn fetch_claims_due_jobs_oldest_first_and_marks_them_running(q: SharedQueue) {
    let w = WorkerId::new("w");
    q.heartbeat(&w).await.unwrap();
    let a = q.enqueue(send_job(1)).await.unwrap();
    let b = q.enqueue(send_job(2)).await.unwrap();
    let leases = q.fetch(&w, 10, Duration::ZERO).await.unwrap();
    let ids: Vec<&str> = leases.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, vec![a.id(), b.id()]);
    assert!(
        leases
            .iter()
            .all(|l| l.attempts == 1 && l.kind == "whatsapp.send")
    );
    assert_eq!(
        kinds::decode::<WhatsAppSend>(&leases[0].payload)
            .unwrap()
            .message_id,
        "m1"
    );
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Running), 2);
    assert_eq!(stats.count(JobState::Queued), 0);
    let detail = q.get(a.id()).await.unwrap().unwrap();
    assert_eq!(detail.summary.state, JobState::Running);
    assert!(detail.started_at.is_some());
    assert!(q.fetch(&w, 10, Duration::ZERO).await.unwrap().is_empty());
}

pub async fn fetch_never_hands_out_more_than_asked(q: SharedQueue) {
    let w = WorkerId::new("w");
    q.heartbeat(&w).await.unwrap();
    for n in 0..10 {
        q.enqueue(send_job(n)).await.unwrap();
    }
    assert_eq!(q.fetch(&w, 3, Duration::ZERO).await.unwrap().len(), 3);
    assert_eq!(q.stats().await.unwrap().count(JobState::Queued), 7);
}

pub async fn a_delayed_job_is_not_fetched_before_its_run_at(q: SharedQueue) {
    let w = WorkerId::new("w");
    q.heartbeat(&w).await.unwrap();
    let run_at = Utc::now() + chrono::Duration::milliseconds(700);
    let job = q.enqueue(send_job(1).run_at(run_at)).await.unwrap();
    assert!(q.fetch(&w, 10, Duration::ZERO).await.unwrap().is_empty());
    let summary = &q.get(job.id()).await.unwrap().unwrap().summary;
    assert_eq!(summary.state, JobState::Queued);
    assert_eq!(summary.run_at.timestamp_millis(), run_at.timestamp_millis());
    // A blocking fetch returns it once due, and not much later.
    let started = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() && started.elapsed() < Duration::from_secs(5) {
        got = q.fetch(&w, 10, Duration::from_secs(2)).await.unwrap();
    }
    assert_eq!(got.len(), 1, "the delayed job ran");
    assert!(Utc::now() >= run_at, "not before its run_at");
    assert!(
        started.elapsed() < Duration::from_millis(700 + 900),
        "picked up soon after it became due: {:?}",
        started.elapsed()
    );
}

pub async fn an_idle_fetch_wakes_up_on_enqueue(q: SharedQueue) {
    let w = WorkerId::new("w");
    q.heartbeat(&w).await.unwrap();
    let waiter = {
        let q = q.clone();
        let w = w.clone();
        tokio::spawn(async move {
            let leases = q.fetch(&w, 1, Duration::from_secs(5)).await.unwrap();
            (leases, Instant::now())
        })
    };
    // Let the fetch reach its blocking wait: a first fetch on an empty queue returns nothing
    // before the enqueue, whichever way the scheduler runs.
    tokio::task::yield_now().await;
    let enqueued_at = Instant::now();
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (leases, woke_at) = waiter.await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].id, job.id());
    let latency = woke_at.duration_since(enqueued_at);
    assert!(
        latency < Duration::from_millis(250),
        "pickup took {latency:?}"
    );
}

pub async fn complete_moves_a_job_to_done(q: SharedQueue) {
    let w = WorkerId::new("w");
    q.heartbeat(&w).await.unwrap();
    let job = q.enqueue(send_job(1)).await.unwrap();
    q.fetch(&w, 1, Duration::ZERO).await.unwrap();
    q.complete(&w, job.id()).await.unwrap();
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Done);
    assert!(d.summary.finished_at.is_some());
    assert_eq!(q.stats().await.unwrap().count(JobState::Done), 1);
}

pub async fn the_runner_retries_on_the_kinds_schedule_then_buries(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (h, runs) = timed_handler(|_| Err(JobError::transient("twilio said 503")));
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    // Schedule 50ms,100ms: three attempts, then dead.
    assert_eq!(summary.dead, 1);
    assert_eq!(summary.retried, 2);
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Dead);
    assert_eq!(d.summary.attempts, 3);
    assert_eq!(d.summary.last_error.as_deref(), Some("twilio said 503"));
    assert_eq!(d.history.len(), 3);
    assert!(
        d.history
            .iter()
            .all(|a| a.worker == "w" && a.error == "twilio said 503")
    );
    assert!(d.history.windows(2).all(|p| p[0].at <= p[1].at));
}

pub async fn a_retry_waits_for_the_scheduled_delay(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (h, runs) = timed_handler(|n| {
        if n == 1 {
            Err(JobError::RetryAfter {
                after: Duration::from_millis(400),
                reason: "429 Too Many Requests".into(),
            })
        } else {
            Ok(())
        }
    });
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    assert_eq!((summary.done, summary.retried), (1, 1));
    let runs = runs.lock().unwrap().clone();
    let gap = runs[1].duration_since(runs[0]);
    assert!(
        gap >= Duration::from_millis(390),
        "Retry-After honoured: {gap:?}"
    );
    assert!(
        gap < Duration::from_millis(400 + 1000),
        "and not much later: {gap:?}"
    );
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Done);
    assert_eq!(d.summary.attempts, 2);
    assert!(d.history[0].error.contains("429"));
}

pub async fn a_permanent_error_is_dead_at_once(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let h = {
        let calls = calls.clone();
        handler(move |_claim| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(JobError::permanent("Twilio 21211: invalid To number")) }
        })
    };
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    assert_eq!(summary.dead, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Dead);
    assert_eq!(d.summary.attempts, 1);
    assert!(d.summary.last_error.unwrap().contains("21211"));
}

pub async fn an_undecodable_payload_goes_to_dead_once_and_blocks_nothing(q: SharedQueue) {
    let good_before = q.enqueue(send_job(1)).await.unwrap();
    let poison = q
        .enqueue(NewJob::raw(
            JobKind::WhatsAppSend,
            "{\"v\":1,\"data\":{\"nope\":",
        ))
        .await
        .unwrap();
    let future_version = q
        .enqueue(NewJob::raw(JobKind::WhatsAppSend, r#"{"v":99,"data":{}}"#))
        .await
        .unwrap();
    let good_after = q.enqueue(send_job(2)).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let h = {
        let calls = calls.clone();
        handler(move |claim| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                kinds::decode::<WhatsAppSend>(&claim.lease.payload).map_err(JobError::permanent)?;
                Ok(())
            }
        })
    };
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    assert_eq!((summary.done, summary.dead, summary.retried), (2, 2, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 4, "each job ran exactly once");
    for id in [good_before.id(), good_after.id()] {
        assert_eq!(
            q.get(id).await.unwrap().unwrap().summary.state,
            JobState::Done
        );
    }
    let p = q.get(poison.id()).await.unwrap().unwrap();
    assert_eq!(p.summary.state, JobState::Dead);
    assert!(p.summary.last_error.unwrap().contains("does not decode"));
    assert_eq!(
        p.payload, "{\"v\":1,\"data\":{\"nope\":",
        "the raw payload is kept"
    );
    let v = q.get(future_version.id()).await.unwrap().unwrap();
    assert!(v.summary.last_error.unwrap().contains("version 99"));
}

pub async fn a_panicking_handler_is_retried_and_the_worker_survives(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let other = q.enqueue(send_job(2)).await.unwrap();
    let h = handler(move |claim| async move {
        let p = kinds::decode::<WhatsAppSend>(&claim.lease.payload).unwrap();
        if p.message_id == "m1" && claim.lease.attempts == 1 {
            panic!("bug in a handler");
        }
        Ok(())
    });
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    assert_eq!((summary.done, summary.retried), (2, 1));
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Done);
    assert!(d.history[0].error.contains("bug in a handler"));
    assert_eq!(
        q.get(other.id()).await.unwrap().unwrap().summary.state,
        JobState::Done
    );
}

pub async fn a_handler_gets_the_parsed_kind_and_whether_it_is_the_last_attempt(q: SharedQueue) {
    let send = q.enqueue(send_job(1)).await.unwrap();
    let call = q.enqueue(call_started_job()).await.unwrap();
    // Three attempts for whatsapp.send (the default of fast_config), two for call.started: the
    // flag follows the schedule of the job's own kind.
    let mut config = fast_config();
    config.policy = config
        .policy
        .with(JobKind::CallStarted, "50ms".parse().expect("schedule"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = handler({
        let seen = seen.clone();
        move |claim| {
            seen.lock().unwrap().push((
                claim.lease.id.clone(),
                claim.kind,
                claim.lease.attempts,
                claim.is_last_attempt,
            ));
            async { Err(JobError::Transient("not yet".into())) }
        }
    });
    let summary = drain(Runner::new(q.clone(), "w", config, h)).await;
    assert_eq!((summary.retried, summary.dead), (3, 2));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(id, _, attempts, _)| (id.clone(), *attempts));
    let (send, call) = (send.id().to_owned(), call.id().to_owned());
    let mut expected = vec![
        (send.clone(), JobKind::WhatsAppSend, 1, false),
        (send.clone(), JobKind::WhatsAppSend, 2, false),
        (send, JobKind::WhatsAppSend, 3, true),
        (call.clone(), JobKind::CallStarted, 1, false),
        (call, JobKind::CallStarted, 2, true),
    ];
    expected.sort_by_key(|(id, _, attempts, _)| (id.clone(), *attempts));
    assert_eq!(seen, expected);
}

pub async fn operators_retry_and_discard_dead_jobs(q: SharedQueue) {
    let a = q.enqueue(send_job(1)).await.unwrap();
    let b = q.enqueue(send_job(2)).await.unwrap();
    let c = q.enqueue(call_started_job()).await.unwrap();
    let fail = handler(|_l| async { Err(JobError::permanent("boom")) });
    drain(Runner::new(q.clone(), "w", fast_config(), fail)).await;
    assert_eq!(q.stats().await.unwrap().count(JobState::Dead), 3);

    assert!(q.retry(a.id()).await.unwrap());
    assert!(q.discard(b.id()).await.unwrap());
    assert!(
        !q.retry(b.id()).await.unwrap(),
        "a discarded job is not retried"
    );
    let s = q.stats().await.unwrap();
    assert_eq!(
        (
            s.count(JobState::Queued),
            s.count(JobState::Dead),
            s.count(JobState::Discarded)
        ),
        (1, 1, 1)
    );
    let retried = q.get(a.id()).await.unwrap().unwrap();
    assert_eq!(retried.summary.state, JobState::Queued);
    assert_eq!(
        retried.history.len(),
        1,
        "history is kept across an operator retry"
    );

    drain(Runner::new(q.clone(), "w", fast_config(), ok_handler())).await;
    assert_eq!(
        q.get(a.id()).await.unwrap().unwrap().summary.state,
        JobState::Done
    );

    // Bulk retry by kind only touches that kind.
    assert_eq!(
        q.retry_all(JobState::Dead, Some(JobKind::WhatsAppSend))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        q.retry_all(JobState::Dead, Some(JobKind::CallStarted))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        q.get(c.id()).await.unwrap().unwrap().summary.state,
        JobState::Queued
    );
    assert!(!q.discard("no-such-job").await.unwrap());
    assert!(q.get("no-such-job").await.unwrap().is_none());
}

pub async fn listing_pages_through_a_state_with_cheap_totals(q: SharedQueue) {
    for n in 0..25 {
        q.enqueue(send_job(n)).await.unwrap();
    }
    q.enqueue(NewJob::raw(JobKind::CallStatus, "{}"))
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = q
            .list(&ListQuery {
                state: Some(JobState::Queued),
                kind: Some(JobKind::WhatsAppSend),
                cursor: cursor.clone(),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.total, 25);
        pages += 1;
        for j in &page.jobs {
            assert_eq!(j.kind, "whatsapp.send");
            assert_eq!(j.state, JobState::Queued);
            assert!(seen.insert(j.id.clone()), "no job twice across pages");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "paging terminates");
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(pages, 3);
    let all = q
        .list(&ListQuery {
            state: None,
            kind: None,
            cursor: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(all.total, 26);
    assert_eq!(all.jobs.len(), 26);
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.by_kind["whatsapp.send"][&JobState::Queued], 25);
    assert_eq!(stats.by_kind["call.status"][&JobState::Queued], 1);
    assert!(stats.oldest_queued_age_s.is_some());
}

pub async fn jobs_of_a_worker_that_vanished_are_requeued_and_its_late_ack_is_ignored(
    q: SharedQueue,
) {
    let dead = WorkerId::new("worker.1");
    q.heartbeat(&dead).await.unwrap();
    let job = q.enqueue(send_job(1)).await.unwrap();
    assert_eq!(q.fetch(&dead, 1, Duration::ZERO).await.unwrap().len(), 1);
    // The worker is SIGKILLed: no ack, no heartbeat. A zero stale window makes it stale now.
    assert_eq!(q.recover_abandoned(Duration::ZERO).await.unwrap(), 1);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Queued);
    assert!(d.history.last().unwrap().error.contains("abandoned"));
    // Restarted under the same name: a new session picks it up normally.
    let restarted = WorkerId::new("worker.1");
    q.heartbeat(&restarted).await.unwrap();
    let leases = q.fetch(&restarted, 1, Duration::ZERO).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].attempts, 2);
    // The dead session's late ack does nothing; the live one's counts.
    q.complete(&dead, job.id()).await.unwrap();
    assert_eq!(
        q.get(job.id()).await.unwrap().unwrap().summary.state,
        JobState::Running
    );
    q.complete(&restarted, job.id()).await.unwrap();
    assert_eq!(
        q.get(job.id()).await.unwrap().unwrap().summary.state,
        JobState::Done
    );
    assert_eq!(
        q.recover_abandoned(Duration::from_secs(60)).await.unwrap(),
        0
    );
}

pub async fn a_runner_dropped_mid_job_is_recovered_by_another(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    // Runner A claims the job and hangs in it; then it is dropped without any cleanup (SIGKILL).
    let (hang, started_rx) = hanging_handler();
    let a = tokio::spawn(
        Runner::new(q.clone(), "worker.1", fast_config(), hang).run(std::future::pending()),
    );
    started_rx.await.unwrap();
    a.abort();
    let _ = a.await;
    assert_eq!(
        q.get(job.id()).await.unwrap().unwrap().summary.state,
        JobState::Running
    );
    // Runner B (same name, new session) recovers it after the stale window and runs it.
    let started = Instant::now();
    let summary = drain(Runner::new(
        q.clone(),
        "worker.1",
        fast_config(),
        ok_handler(),
    ))
    .await;
    assert_eq!(summary.done, 1);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Done);
    assert_eq!(d.summary.attempts, 2);
    assert!(started.elapsed() < Duration::from_secs(10));
}

pub async fn the_runner_never_exceeds_its_concurrency(q: SharedQueue) {
    for n in 0..40 {
        q.enqueue(send_job(n)).await.unwrap();
    }
    let active = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (full_tx, mut full_rx) = mpsc::unbounded_channel();
    let h = {
        let (active, max, gate) = (active.clone(), max.clone(), gate.clone());
        handler(move |_l| {
            let (active, max, gate, full_tx) =
                (active.clone(), max.clone(), gate.clone(), full_tx.clone());
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let _ = full_tx.send(now);
                gate.acquire().await.unwrap().forget();
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let config = RunnerConfig {
        concurrency: 4,
        ..fast_config()
    };
    let run = tokio::spawn(drain(Runner::new(q.clone(), "w", config, h)));
    // Wait until four run at once, then open the gate. Up to four more may be claimed ahead
    // (the runner's prefetch), but they do not start.
    while full_rx.recv().await.unwrap() < 4 {}
    let running = q.stats().await.unwrap().count(JobState::Running);
    assert!((4..=8).contains(&running), "claimed: {running}");
    gate.add_permits(1000);
    let summary = run.await.unwrap();
    assert_eq!(summary.done, 40);
    assert_eq!(max.load(Ordering::SeqCst), 4, "never more than 4 at once");
}

pub async fn shutdown_lets_running_jobs_finish_and_fetches_nothing_new(q: SharedQueue) {
    let first = q.enqueue(send_job(1)).await.unwrap();
    let (h, mut started_rx, gate) = gated_handler();
    let (stop_tx, run) = run_until_stopped(Runner::new(q.clone(), "w", fast_config(), h));
    assert_eq!(started_rx.recv().await.unwrap(), first.id());
    stop_tx.send(()).unwrap();
    // Queued after the signal: must stay queued.
    let second = q.enqueue(send_job(2)).await.unwrap();
    gate.add_permits(10);
    let summary = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("shutdown finished")
        .unwrap()
        .unwrap();
    assert_eq!((summary.done, summary.released), (1, 0));
    assert_eq!(
        q.get(first.id()).await.unwrap().unwrap().summary.state,
        JobState::Done
    );
    assert_eq!(
        q.get(second.id()).await.unwrap().unwrap().summary.state,
        JobState::Queued
    );
}

pub async fn shutdown_puts_back_jobs_that_outlive_the_grace_period(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (hang, started_rx) = hanging_handler();
    let config = RunnerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..fast_config()
    };
    let (stop_tx, run) = run_until_stopped(Runner::new(q.clone(), "w", config, hang));
    started_rx.await.unwrap();
    stop_tx.send(()).unwrap();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.released, 1);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Queued);
    assert_eq!(d.summary.attempts, 0, "a released attempt is not counted");
}

pub async fn a_job_that_keeps_killing_its_workers_ends_dead(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let schedule: RetrySchedule = "50ms".parse().unwrap();
    // Two claims allowed (1 + one retry); abandon it three times.
    for _ in 0..3 {
        let w = WorkerId::new("crashy");
        q.heartbeat(&w).await.unwrap();
        assert_eq!(q.fetch(&w, 1, Duration::ZERO).await.unwrap().len(), 1);
        assert_eq!(q.recover_abandoned(Duration::ZERO).await.unwrap(), 1);
    }
    let config = RunnerConfig {
        policy: RetryPolicy::new(schedule),
        ..fast_config()
    };
    let summary = drain(Runner::new(q.clone(), "w", config, ok_handler())).await;
    assert_eq!((summary.done, summary.dead), (0, 1));
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Dead);
    assert!(d.summary.last_error.unwrap().contains("abandoned"));
}

pub async fn prune_deletes_old_done_jobs_and_keeps_dead_ones(q: SharedQueue) {
    let done = q.enqueue(send_job(1)).await.unwrap();
    drain(Runner::new(q.clone(), "w", fast_config(), ok_handler())).await;
    let dead = q.enqueue(send_job(2)).await.unwrap();
    let fail = handler(|_l| async { Err(JobError::permanent("no")) });
    drain(Runner::new(q.clone(), "w", fast_config(), fail)).await;
    // Nothing is older than an hour ago.
    assert_eq!(
        q.prune(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        q.prune(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(q.get(done.id()).await.unwrap().is_none());
    assert_eq!(
        q.get(dead.id()).await.unwrap().unwrap().summary.state,
        JobState::Dead
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.count(JobState::Done), s.count(JobState::Dead)), (0, 1));
}

pub async fn prune_dead_keeps_the_newest_dead_jobs_up_to_the_cap_and_none_past_retention(
    q: SharedQueue,
) {
    // A kind that always fails: every job ends dead.
    let n = 12;
    for i in 0..n {
        q.enqueue(send_job(i)).await.unwrap();
    }
    let fail = handler(|_l| async { Err(JobError::permanent("always fails")) });
    assert_eq!(
        drain(Runner::new(q.clone(), "w", fast_config(), fail))
            .await
            .dead,
        n as u64
    );
    let done = q.enqueue(send_job(n)).await.unwrap();
    drain(Runner::new(q.clone(), "w", fast_config(), ok_handler())).await;
    let dead = ListQuery {
        state: Some(JobState::Dead),
        limit: 500,
        ..ListQuery::default()
    };
    let dead_ids =
        |page: moked_jobs::queue::JobPage| page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let newest_first = dead_ids(q.list(&dead).await.unwrap());
    assert_eq!(newest_first.len(), n);

    // Nothing died an hour ago: only the cap prunes, oldest first.
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    let cap = 5;
    assert_eq!(
        q.prune_dead(an_hour_ago, cap as u64).await.unwrap(),
        (n - cap) as u64
    );
    assert_eq!(dead_ids(q.list(&dead).await.unwrap()), newest_first[..cap]);
    assert_eq!(q.prune_dead(an_hour_ago, cap as u64).await.unwrap(), 0);
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.count(JobState::Dead), s.count(JobState::Done)),
        (cap as u64, 1)
    );
    assert_eq!(s.by_kind["whatsapp.send"][&JobState::Dead], cap as u64);

    // Past the retention every dead job goes whatever the cap; done jobs are prune's business.
    assert_eq!(
        q.prune_dead(Utc::now() + chrono::Duration::seconds(1), 50_000)
            .await
            .unwrap(),
        cap as u64
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.count(JobState::Dead), s.count(JobState::Done)), (0, 1));
    assert!(q.get(done.id()).await.unwrap().is_some());
    assert!(q.get(&newest_first[0]).await.unwrap().is_none());
}

pub async fn two_runners_share_a_backlog_and_run_each_job_exactly_once(q: SharedQueue) {
    let n = 300;
    for i in 0..n {
        q.enqueue(send_job(i)).await.unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let make = |seen: Arc<Mutex<Vec<String>>>| {
        handler(move |claim| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(claim.lease.id);
                Ok(())
            }
        })
    };
    let a = tokio::spawn(drain(Runner::new(
        q.clone(),
        "a",
        fast_config(),
        make(seen.clone()),
    )));
    let b = tokio::spawn(drain(Runner::new(
        q.clone(),
        "b",
        fast_config(),
        make(seen.clone()),
    )));
    let (sa, sb) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(sa.done + sb.done, n as u64);
    let seen = seen.lock().unwrap().clone();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (n, n));
    assert_eq!(q.stats().await.unwrap().count(JobState::Done), n as u64);
}

pub async fn an_operator_retry_gives_a_dead_job_a_fresh_schedule(q: SharedQueue) {
    let job = q.enqueue(send_job(1)).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let h = {
        let runs = runs.clone();
        handler(move |_l| {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(JobError::transient("still down"))
                } else {
                    Ok(())
                }
            }
        })
    };
    // Schedule 50ms,100ms: three failing attempts, then dead.
    drain(Runner::new(q.clone(), "w", fast_config(), h.clone())).await;
    let dead = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(
        (dead.summary.state, dead.summary.attempts),
        (JobState::Dead, 3)
    );
    assert!(q.retry(job.id()).await.unwrap());
    let summary = drain(Runner::new(q.clone(), "w", fast_config(), h)).await;
    assert_eq!(summary.done, 1, "the retried job runs again");
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!((d.summary.state, d.summary.attempts), (JobState::Done, 1));
    assert_eq!(d.history.len(), 3, "earlier failures stay in the history");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

pub async fn held_lists_the_jobs_a_session_runs_and_nothing_else(q: SharedQueue) {
    let (a, b) = (WorkerId::new("a"), WorkerId::new("b"));
    q.heartbeat(&a).await.unwrap();
    q.heartbeat(&b).await.unwrap();
    for n in 0..5 {
        q.enqueue(send_job(n)).await.unwrap();
    }
    assert!(q.held(&a).await.unwrap().is_empty());
    let of_a: Vec<String> = q
        .fetch(&a, 3, Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    let of_b: Vec<String> = q
        .fetch(&b, 1, Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(sorted(q.held(&a).await.unwrap()), sorted(of_a.clone()));
    assert_eq!(q.held(&b).await.unwrap(), of_b);

    // Every way out of running leaves the list: done, retrying, dead, released.
    q.complete(&a, &of_a[0]).await.unwrap();
    q.retry_at(
        &a,
        &of_a[1],
        "boom",
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(q.held(&a).await.unwrap(), vec![of_a[2].clone()]);
    q.release(&a, &of_a[2]).await.unwrap();
    assert!(q.held(&a).await.unwrap().is_empty());

    // A repeated ack (its first reply was lost) is a harmless no-op: the job stays as the first
    // one left it, with one history entry.
    q.complete(&a, &of_a[0]).await.unwrap();
    q.retry_at(&a, &of_a[1], "boom", Utc::now()).await.unwrap();
    assert_eq!(
        q.get(&of_a[0]).await.unwrap().unwrap().summary.state,
        JobState::Done
    );
    let retried = q.get(&of_a[1]).await.unwrap().unwrap();
    assert_eq!(retried.summary.state, JobState::Retrying);
    assert_eq!(retried.history.len(), 1);

    // Recovered from a silent session: no longer held by it.
    assert_eq!(q.recover_abandoned(Duration::ZERO).await.unwrap(), 1);
    assert!(q.held(&b).await.unwrap().is_empty());
}

/// A runner on `faulty` whose handler reports each run's lease (at its start) and the instant
/// it returned Ok.
fn reporting_runner(
    faulty: SharedQueue,
    config: RunnerConfig,
) -> (
    Runner,
    mpsc::UnboundedReceiver<(u32, Instant)>,
    mpsc::UnboundedReceiver<Instant>,
) {
    let (start_tx, start_rx) = mpsc::unbounded_channel();
    let (end_tx, end_rx) = mpsc::unbounded_channel();
    let h = handler(move |claim| {
        let (start_tx, end_tx) = (start_tx.clone(), end_tx.clone());
        async move {
            let _ = start_tx.send((claim.lease.attempts, Instant::now()));
            let _ = end_tx.send(Instant::now());
            Ok(())
        }
    });
    (Runner::new(faulty, "acks", config, h), start_rx, end_rx)
}

pub async fn a_failed_ack_is_retried_until_it_lands(q: SharedQueue) {
    use faulty::Fault;
    let job = q.enqueue(send_job(1)).await.unwrap();
    // Refused once, then applied with the reply lost, then answered: the third try is the
    // stale no-op of a job already done.
    let faulty = Arc::new(faulty::FaultyAcks::new(
        q.clone(),
        vec![Fault::Refused, Fault::ReplyLost],
        None,
    ));
    let (runner, mut starts, _ends) = reporting_runner(faulty.clone(), fast_config());
    let summary = drain(runner).await;
    assert_eq!(summary.done, 1);
    assert_eq!(*faulty.failed_completes().borrow(), 2);
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Done);
    assert_eq!(d.summary.attempts, 1);
    assert!(starts.recv().await.is_some());
    assert!(starts.try_recv().is_err(), "the job ran once");
}

pub async fn a_job_whose_ack_never_lands_goes_back_within_the_stale_window(q: SharedQueue) {
    use faulty::Fault;
    let config = fast_config();
    let job = q.enqueue(send_job(1)).await.unwrap();
    let faulty = Arc::new(faulty::FaultyAcks::new(
        q.clone(),
        vec![],
        Some(Fault::Refused),
    ));
    let (runner, mut starts, mut ends) = reporting_runner(faulty, config.clone());
    let (stop_tx, run) = run_until_stopped(runner);
    let within = Duration::from_secs(10);
    let (first, _) = starts.recv().await.unwrap();
    let ran = ends.recv().await.unwrap();
    // The session lives and heartbeats, so recovery never takes the job; only this session's
    // reconciliation can put it back.
    let (again, started) = tokio::time::timeout(within, starts.recv())
        .await
        .expect("the job whose ack never landed ran again")
        .unwrap();
    let took = started - ran;
    assert!(
        took <= config.stale_after + config.heartbeat + Duration::from_secs(1),
        "back after {took:?}"
    );
    // Put back uncounted by its own session (a recovery would have counted the attempt).
    assert_eq!((first, again), (1, 1));
    let history = q.get(job.id()).await.unwrap().unwrap().history;
    assert!(history.is_empty(), "{history:?}");
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
}

pub async fn shutdown_keeps_the_session_alive_through_the_grace_period(q: SharedQueue) {
    let config = RunnerConfig {
        shutdown_grace: Duration::from_secs(10),
        ..fast_config()
    };
    let job = q.enqueue(send_job(1)).await.unwrap();
    let (h, mut started_rx, gate) = gated_handler();
    let (stop_tx, run) = run_until_stopped(Runner::new(q.clone(), "w", config.clone(), h));
    started_rx.recv().await.unwrap();
    stop_tx.send(()).unwrap();
    // For three stale windows of the grace period, another worker's recovery (run on every
    // tick, as live workers do) finds nothing to take: the stopping session still beats.
    let window = config.stale_after * 3;
    let since = Instant::now();
    let mut tick = tokio::time::interval(config.heartbeat);
    while since.elapsed() < window {
        tick.tick().await;
        assert_eq!(
            q.recover_abandoned(config.stale_after).await.unwrap(),
            0,
            "the job of a session in its shutdown grace was taken after {:?}",
            since.elapsed()
        );
    }
    gate.add_permits(1);
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.done, summary.released), (1, 0));
    let d = q.get(job.id()).await.unwrap().unwrap();
    assert_eq!((d.summary.state, d.summary.attempts), (JobState::Done, 1));
    assert!(started_rx.try_recv().is_err(), "the job ran once");
}

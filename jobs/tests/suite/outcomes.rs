//! The cluster-wide outcome counters (`queue::outcomes`): what every worker flushes adds up,
//! per minute, per hour and in total, on every backend.

use chrono::{DateTime, Duration, Utc};
use moked_jobs::queue::SharedQueue;
use moked_jobs::queue::outcomes::{Outcome, OutcomeCount, Span};

fn count(minute: i64, kind: &str, outcome: Outcome, n: u64) -> OutcomeCount {
    OutcomeCount {
        minute,
        kind: kind.into(),
        outcome,
        n,
    }
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

/// Workers stopping together flush the same rows at once, listed in whatever order each one
/// met its kinds: every flush lands (on Postgres, rows taken in input order could deadlock two
/// flushes and lose one's counts).
pub async fn workers_flushing_the_same_counters_at_once_in_any_order_all_land(q: SharedQueue) {
    let m = minute_of(Utc::now());
    let kinds = [
        "call.started",
        "call.status",
        "whatsapp.send",
        "whatsapp.status",
    ];
    let forward: Vec<OutcomeCount> = kinds
        .iter()
        .map(|k| count(m, k, Outcome::Done, 1))
        .collect();
    let backward: Vec<OutcomeCount> = forward.iter().rev().cloned().collect();
    for _ in 0..25 {
        let flushes = [&forward, &backward, &forward, &backward].map(|counts| {
            let q = q.clone();
            let counts = counts.clone();
            tokio::spawn(async move { q.record_outcomes(&counts).await })
        });
        for flush in futures::future::join_all(flushes).await {
            flush.expect("task").expect("a flush");
        }
    }
    let totals = q.outcome_totals().await.expect("totals");
    for k in kinds {
        assert_eq!(totals[k][&Outcome::Done], 100, "{k}: {totals:?}");
    }
}

pub async fn outcome_counters_add_up_across_workers_per_minute_hour_and_total(q: SharedQueue) {
    let now = Utc::now();
    let (m0, m1) = (minute_of(now) - 1, minute_of(now));
    // Two workers flush what they finished; the second adds to the first's minute.
    q.record_outcomes(&[
        count(m0, "call.started", Outcome::Done, 5),
        count(m0, "whatsapp.send", Outcome::Retry, 2),
        count(m1, "call.started", Outcome::Done, 1),
    ])
    .await
    .expect("first worker's flush");
    q.record_outcomes(&[
        count(m0, "call.started", Outcome::Done, 3),
        count(m1, "whatsapp.send", Outcome::Dead, 1),
    ])
    .await
    .expect("second worker's flush");
    q.record_outcomes(&[]).await.expect("an empty flush");

    let series = q
        .outcome_series(Span::Minute, now - Duration::minutes(4), now)
        .await
        .expect("minute series");
    assert_eq!(series.len(), 5, "one bucket a minute, empty ones included");
    assert!(series.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
    let at = |m: i64| {
        series
            .iter()
            .find(|b| b.at.timestamp() == m * 60)
            .map(|b| b.counts.clone())
            .unwrap_or_default()
    };
    assert_eq!(at(m0)["call.started"][&Outcome::Done], 8);
    assert_eq!(at(m0)["whatsapp.send"][&Outcome::Retry], 2);
    assert_eq!(at(m1)["call.started"][&Outcome::Done], 1);
    assert_eq!(at(m1)["whatsapp.send"][&Outcome::Dead], 1);
    assert!(at(m0 - 1).is_empty());

    let hours = q
        .outcome_series(Span::Hour, now - Duration::hours(1), now)
        .await
        .expect("hour series");
    assert_eq!(hours.len(), 2);
    let in_hours: u64 = hours
        .iter()
        .flat_map(|b| b.counts.values())
        .flat_map(|per| per.values())
        .sum();
    assert_eq!(in_hours, 12, "{hours:?}");

    let totals = q.outcome_totals().await.expect("totals");
    assert_eq!(totals["call.started"][&Outcome::Done], 9);
    assert_eq!(totals["whatsapp.send"][&Outcome::Retry], 2);
    assert_eq!(totals["whatsapp.send"][&Outcome::Dead], 1);
}

pub async fn two_runners_add_what_they_finished_to_the_cluster_wide_counters(q: SharedQueue) {
    use std::time::Duration;

    use moked_jobs::queue::NewJob;
    use moked_jobs::retry::{JobError, RetryPolicy};
    use moked_jobs::runner::{Runner, RunnerConfig, handler};

    for i in 0..6 {
        q.enqueue(super::send_job(i)).await.expect("enqueue");
    }
    q.enqueue(NewJob::raw(
        moked_jobs::kinds::JobKind::CallStarted,
        "not a payload",
    ))
    .await
    .expect("enqueue");
    // Sends fail once, then succeed; the undecodable call.started goes dead.
    let tried = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let h = handler(move |claim| {
        let first = tried
            .lock()
            .map(|mut t| t.insert(claim.lease.id.clone()))
            .unwrap_or(false);
        async move {
            if claim.lease.kind == "call.started" {
                Err(JobError::permanent("undecodable"))
            } else if first {
                Err(JobError::Transient("Twilio 503".into()))
            } else {
                Ok(())
            }
        }
    });
    let config = RunnerConfig {
        concurrency: 2,
        heartbeat: Duration::from_millis(100),
        stale_after: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        fetch_wait: Duration::from_millis(100),
        policy: RetryPolicy::new("20ms".parse().expect("schedule")),
    };
    let (a, b) = tokio::join!(
        super::drain(Runner::new(
            q.clone(),
            "counter-a",
            config.clone(),
            h.clone()
        )),
        super::drain(Runner::new(q.clone(), "counter-b", config, h)),
    );
    assert_eq!(a.done + b.done, 6);
    // Each runner flushed its tally before it stopped.
    let totals = q.outcome_totals().await.expect("totals");
    assert_eq!(totals["whatsapp.send"][&Outcome::Done], 6, "{totals:?}");
    assert_eq!(totals["whatsapp.send"][&Outcome::Retry], 6, "{totals:?}");
    assert_eq!(totals["call.started"][&Outcome::Dead], 1, "{totals:?}");
    let now = Utc::now();
    let series = q
        .outcome_series(Span::Minute, now - Duration::from_secs(120), now)
        .await
        .expect("series");
    let done: u64 = series
        .iter()
        .filter_map(|b| b.counts.get("whatsapp.send"))
        .filter_map(|per| per.get(&Outcome::Done))
        .sum();
    assert_eq!(done, 6);
}

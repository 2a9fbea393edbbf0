//! A worker SIGKILLed mid-drain of 5,000 WhatsApp sends (Redis queue, Postgres store, the
//! counting fake Twilio with 20 ms of latency), then restarted under the same `WORKER_NAME`.
//! Just before the kill the fake holds its answers (60 s) until 16 more sends are created at
//! "Twilio", so those are surely unanswered when the worker dies: the ambiguous case.
//!
//! Asserts: no message lost (every one carries the sid the fake created for it, status
//! `queued`/`sent`), none
//! duplicated (exactly one POST per recipient at the fake: the sends whose answer died with the
//! worker are adopted through the list lookup, not resent), the jobs the dead worker held re-run
//! within 30 s, no job left running, queued or dead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moked_jobs::queue::{JobState, ListQuery};

use crate::fake_twilio::FakeTwilio;
use crate::{World, eventually, recipients};

const SENDS: u32 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sigkilled_mid_drain_of_5000_sends_loses_and_duplicates_nothing() {
    let w = World::new().await;
    let twilio = FakeTwilio::start(vec![]).await;
    twilio.set_delay(Duration::from_millis(20));
    let to = recipients(1_000_000, SENDS);
    let ids = w.request_sends(&to).await;
    assert_eq!(ids.len(), SENDS as usize);

    let env = w
        .worker_env()
        .twilio(&twilio)
        .set("WORKER_CONCURRENCY", "32")
        .set("WHATSAPP_SEND_TIMEOUT", "5s");
    let mut first = env.spawn("fault.sigkill");
    eventually(
        Duration::from_secs(90),
        "a quarter of the messages sent",
        || async { w.sent_count().await >= i64::from(SENDS / 4) },
    )
    .await;
    // Hold Twilio's answers so the kill surely catches sends Twilio created but the worker never
    // heard back about: the ambiguous case a restart must adopt, not resend.
    twilio.set_delay(Duration::from_secs(60));
    let held_from = twilio.created_count();
    eventually(
        Duration::from_secs(10),
        "16 sends created at Twilio after the hold, their answers held",
        || async { twilio.created_count() >= held_from + 16 },
    )
    .await;
    first.kill();
    let killed_at = Instant::now();
    twilio.set_delay(Duration::from_millis(20));

    // What the dead worker left: jobs still running under its session, and messages Twilio
    // created whose answer never reached the store (the ambiguous sends).
    let orphans: Vec<String> = w
        .queue
        .list(&ListQuery {
            state: Some(JobState::Running),
            limit: 500,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    let sent_at_kill = w.sent_count().await;
    let unrecorded = twilio.created_count() as i64 - sent_at_kill;
    assert!(
        sent_at_kill < i64::from(SENDS),
        "killed mid-drain ({sent_at_kill} of {SENDS} sent)"
    );
    assert!(!orphans.is_empty(), "the worker held jobs when it died");
    assert!(
        unrecorded >= 1,
        "no send was in flight at the kill ({unrecorded} unrecorded)"
    );

    let _second = env.spawn("fault.sigkill");
    let orphans_done = eventually(
        Duration::from_secs(30),
        "the dead worker's jobs re-run and done",
        || async {
            for id in &orphans {
                match w.queue.get(id).await.unwrap() {
                    Some(job) if job.summary.state == JobState::Done => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    let orphans_after_kill = killed_at.elapsed();
    let drained = eventually(
        Duration::from_secs(120),
        "every message sent and its job done",
        || async {
            w.sent_count().await == i64::from(SENDS)
                && w.count(JobState::Done).await == u64::from(SENDS)
        },
    )
    .await;

    let stats = w.queue.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Done), u64::from(SENDS), "{stats:?}");
    for state in [JobState::Dead, JobState::Running, JobState::Queued] {
        assert_eq!(stats.count(state), 0, "{state:?} jobs left: {stats:?}");
    }
    // Exactly one POST and one created message per recipient.
    let posts = twilio.posts_per_to();
    let duplicated: Vec<_> = posts.iter().filter(|(_, n)| **n != 1).collect();
    assert_eq!(posts.len(), SENDS as usize, "a POST for every recipient");
    assert!(duplicated.is_empty(), "POSTs per recipient: {duplicated:?}");
    let created = twilio.created();
    assert_eq!(created.len(), SENDS as usize);
    assert!(
        twilio.lists() >= unrecorded as usize,
        "each send in flight at the kill was looked up ({} lookups)",
        twilio.lists()
    );
    // Every message ends sent, with the sid Twilio created for its recipient.
    let sid_of: HashMap<String, String> = created
        .into_iter()
        .map(|c| (c.to.trim_start_matches("whatsapp:").to_owned(), c.sid))
        .collect();
    let ours = w.outbound().await;
    assert_eq!(ours.len(), SENDS as usize);
    for m in ours {
        let id = &m.id;
        assert_eq!(
            m.provider_sid.as_ref(),
            sid_of.get(&m.to_phone),
            "message {id}"
        );
        // Twilio answers a create `queued`; a lookup lists the message `sent`.
        assert!(
            matches!(m.status.as_str(), "queued" | "sent"),
            "message {id}: {}",
            m.status
        );
    }
    eprintln!(
        "sigkill: {SENDS} sends, {} sent before the kill, {} orphaned jobs, {unrecorded} sent \
         but unrecorded at the kill (adopted: {} lookups), orphans done {orphans_after_kill:?} \
         after the kill ({orphans_done:?} after the restart), all sent {drained:?} after the \
         restart, duplicates 0",
        sent_at_kill,
        orphans.len(),
        twilio.lists()
    );
    assert!(
        orphans_after_kill < Duration::from_secs(30),
        "orphans re-run within 30 s of the kill (took {orphans_after_kill:?})"
    );
}

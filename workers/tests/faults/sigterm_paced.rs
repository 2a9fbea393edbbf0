//! SIGTERM while a send waits for its pacing slot (issue #14, item 2): two `moked-worker run`
//! on one Redis, `WHATSAPP_RATE=6/m` (one slot every 10 s, shared through Redis),
//! `SHUTDOWN_GRACE=15s` — longer than `WORKER_STALE_AFTER` (1 s) — and SIGTERM to the first
//! worker right after its first send, while its second send waits in the pacer.
//!
//! Before the fix the stopping worker stopped heartbeating at SIGTERM; the second worker
//! declared it dead after 1 s, re-ran the waiting send, and both sent it. Asserts: every message
//! is POSTed exactly once and recorded sent, the stopping worker finishes its paced send inside
//! the grace and exits 0, nothing is left running.

use std::time::Duration;

use moked_jobs::queue::JobState;

use crate::fake_twilio::FakeTwilio;
use crate::{World, eventually, recipients};

const SENDS: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_send_waits_for_its_pacing_slot_sends_every_message_once() {
    let w = World::new().await;
    let twilio = FakeTwilio::start(vec![]).await;
    w.request_sends(&recipients(3_000_000, SENDS)).await;
    let env = w
        .worker_env()
        .twilio(&twilio)
        .set("WHATSAPP_RATE", "6/m")
        .set("SHUTDOWN_GRACE", "15s")
        .set("WORKER_CONCURRENCY", &SENDS.to_string());

    // The first worker claims both sends: one goes out at once, the other waits for the slot
    // 10 s later. The second worker is up before that slot comes.
    let mut first = env.spawn("fault.paced.1");
    eventually(Duration::from_secs(30), "the first send", || async {
        twilio.post_count() >= 1
    })
    .await;
    let mut second = env.spawn("fault.paced.2");
    first.signal("TERM");
    assert_eq!(twilio.post_count(), 1, "the second send waits for its slot");

    let (status, exit_took) = first.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");
    eventually(Duration::from_secs(60), "every send done", || async {
        w.count(JobState::Done).await == u64::from(SENDS)
    })
    .await;
    let posts = twilio.posts_per_to();
    assert_eq!(posts.len(), SENDS as usize, "{posts:?}");
    assert!(posts.values().all(|n| *n == 1), "one POST each: {posts:?}");
    assert_eq!(w.sent_count().await, i64::from(SENDS));
    let stats = w.queue.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Running), 0, "{stats:?}");

    second.signal("TERM");
    let (status, _) = second.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "second worker exit status {status:?}");
    eprintln!(
        "sigterm while paced: the stopping worker sent its paced message and exited 0 {exit_took:?} after SIGTERM; one POST per message"
    );
}

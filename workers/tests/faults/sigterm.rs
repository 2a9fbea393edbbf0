//! SIGTERM during load: the real `moked-worker run` with every slot busy on a slow Twilio (2 s
//! per send) gets SIGTERM.
//!
//! Asserts: it fetches nothing more, the sends in flight finish and are recorded (each POST the
//! fake received has its sid in the store and its job done), it exits 0 within 30 s, nothing is
//! left running, the jobs it never started are still queued, and a later worker sends each of
//! them once (one POST per recipient over both workers).

use std::time::Duration;

use moked_jobs::queue::JobState;

use crate::fake_twilio::FakeTwilio;
use crate::{World, eventually, recipients};

const SENDS: u32 = 60;
const SLOTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_sends_and_leaves_the_rest_queued() {
    let w = World::new().await;
    let twilio = FakeTwilio::start(vec![]).await;
    twilio.set_delay(Duration::from_secs(2));
    w.request_sends(&recipients(2_000_000, SENDS)).await;
    let env = w
        .worker_env()
        .twilio(&twilio)
        .set("WORKER_CONCURRENCY", &SLOTS.to_string())
        .set("WHATSAPP_SEND_TIMEOUT", "15s");

    let mut first = env.spawn("fault.sigterm.1");
    eventually(
        Duration::from_secs(30),
        "every slot busy sending",
        || async { twilio.post_count() >= SLOTS },
    )
    .await;
    let in_flight = twilio.post_count();
    assert_eq!(in_flight, SLOTS, "at most WORKER_CONCURRENCY sends at once");
    first.signal("TERM");
    let (status, exit_took) = first.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");

    assert_eq!(
        twilio.post_count(),
        in_flight,
        "nothing fetched after SIGTERM"
    );
    assert_eq!(
        w.sent_count().await,
        in_flight as i64,
        "every send in flight finished and was recorded"
    );
    let stats = w.queue.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Done), in_flight as u64, "{stats:?}");
    assert_eq!(stats.count(JobState::Running), 0, "{stats:?}");
    assert_eq!(stats.count(JobState::Dead), 0, "{stats:?}");
    assert_eq!(
        stats.count(JobState::Queued),
        u64::from(SENDS) - in_flight as u64,
        "what was not started stays queued: {stats:?}"
    );

    twilio.set_delay(Duration::ZERO);
    let mut second = env.spawn("fault.sigterm.2");
    eventually(
        Duration::from_secs(60),
        "the next worker sends the rest",
        || async { w.count(JobState::Done).await == u64::from(SENDS) },
    )
    .await;
    assert_eq!(w.sent_count().await, i64::from(SENDS));
    let posts = twilio.posts_per_to();
    assert_eq!(posts.len(), SENDS as usize);
    assert!(posts.values().all(|n| *n == 1), "one POST each: {posts:?}");
    second.signal("TERM");
    let (status, idle_exit) = second.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "idle worker exit status {status:?}");
    eprintln!(
        "sigterm: {in_flight} sends in flight (2 s each) finished, exit 0 {exit_took:?} after \
         SIGTERM; {} left queued and sent by the next worker; idle exit {idle_exit:?}",
        u64::from(SENDS) - in_flight as u64
    );
}

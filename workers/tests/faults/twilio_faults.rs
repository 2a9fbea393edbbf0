//! Twilio misbehaving over many messages at once, through the real `moked-worker run`: a 429
//! storm with `Retry-After`, 5xx bursts before and after Twilio created the message, answers
//! that come only after the client's timeout, and connection resets (RST, no answer) before and
//! after creating.
//!
//! Asserts, per fault class: every message ends with the one message Twilio holds for its
//! recipient (its sid stored, status `queued`/`sent`, no job dead), and the number of POSTs is
//! exactly what the contract implies — a refused (429) or not-created attempt is sent again, an
//! ambiguous attempt that did create (5xx after create, timeout, reset after create) is adopted
//! through the list lookup and never sent twice; a 429's `Retry-After` is honoured to the
//! millisecond. (`whatsapp.rs` covers single messages in-process; this is the storm through the
//! binary.)

use std::collections::HashMap;
use std::time::Duration;

use moked_jobs::queue::JobState;

use crate::fake_twilio::{FakeTwilio, Step};
use crate::{World, eventually, recipients};

/// Messages per fault class.
const PER_CLASS: u32 = 40;

/// One fault class: its script for each of its recipients, and the POSTs it should take.
struct Class {
    name: &'static str,
    script: Vec<Step>,
    posts: usize,
}

fn fail(status: u16, code: i64, retry_after: Option<u64>, create: bool) -> Step {
    Step::Fail {
        status,
        code,
        retry_after,
        create,
    }
}

fn classes() -> Vec<Class> {
    vec![
        Class {
            name: "429 storm, Retry-After: 1, twice",
            script: vec![
                fail(429, 20429, Some(1), false),
                fail(429, 20429, Some(1), false),
            ],
            posts: 3,
        },
        Class {
            name: "503 then 500 burst, nothing created",
            script: vec![fail(503, 20503, None, false), fail(500, 20500, None, false)],
            posts: 3,
        },
        Class {
            name: "500 after Twilio created the message",
            script: vec![fail(500, 20500, None, true)],
            posts: 1,
        },
        Class {
            name: "201 only after the client's timeout",
            script: vec![Step::Slow {
                delay: Duration::from_millis(1500),
            }],
            posts: 1,
        },
        Class {
            name: "connection reset before creating",
            script: vec![Step::Reset { create: false }],
            posts: 2,
        },
        Class {
            name: "connection reset after creating",
            script: vec![Step::Reset { create: true }],
            posts: 1,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_429_5xx_timeouts_and_resets_end_with_one_message_each() {
    let w = World::new().await;
    let twilio = FakeTwilio::start(vec![]).await;
    let classes = classes();
    let mut class_of: HashMap<String, usize> = HashMap::new();
    let mut all = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        let to = recipients(3_000_000 + 1_000 * c as u32, PER_CLASS);
        for number in &to {
            twilio.script_for(number, class.script.clone());
            class_of.insert(format!("whatsapp:{number}"), c);
        }
        all.extend(to);
    }
    let total = all.len() as u64;
    let ids = w.request_sends(&all).await;
    assert_eq!(ids.len() as u64, total);

    let env = w
        .worker_env()
        .twilio(&twilio)
        .set("WORKER_CONCURRENCY", "32")
        .set("WHATSAPP_SEND_TIMEOUT", "400ms")
        .set(
            "RETRY_SCHEDULE_WHATSAPP_SEND",
            "50ms,50ms,50ms,50ms,50ms,50ms",
        );
    let _worker = env.spawn("fault.twilio");
    let took = eventually(
        Duration::from_secs(60),
        "every job done or dead",
        || async {
            let stats = w.queue.stats().await.unwrap();
            stats.count(JobState::Done) + stats.count(JobState::Dead) == total
        },
    )
    .await;
    assert_eq!(w.count(JobState::Dead).await, 0, "no job dead");

    // One message at Twilio per recipient, and it is the one we stored.
    let created = twilio.created();
    let mut created_per_to: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &created {
        created_per_to
            .entry(c.to.as_str())
            .or_default()
            .push(c.sid.as_str());
    }
    let ours = w.outbound().await;
    assert_eq!(ours.len() as u64, total);
    for m in &ours {
        let twilio_to = format!("whatsapp:{}", m.to_phone);
        let name = classes[class_of[&twilio_to]].name;
        let sids = &created_per_to[twilio_to.as_str()];
        assert_eq!(
            sids.len(),
            1,
            "{name}: messages at Twilio for one recipient"
        );
        assert_eq!(
            m.provider_sid.as_deref(),
            Some(sids[0]),
            "{name}: the stored sid"
        );
        assert!(
            matches!(m.status.as_str(), "queued" | "sent"),
            "{name}: status {}",
            m.status
        );
    }

    // The right number of POSTs per class.
    let posts = twilio.posts_per_to();
    let mut report = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        let counts: Vec<usize> = class_of
            .iter()
            .filter(|(_, k)| **k == c)
            .map(|(to, _)| posts.get(to).copied().unwrap_or(0))
            .collect();
        assert!(
            counts.iter().all(|n| *n == class.posts),
            "{}: POSTs per message {counts:?}, expected {}",
            class.name,
            class.posts
        );
        report.push(format!("{}: {} POSTs each", class.name, class.posts));
    }

    // Retry-After: 1 honoured between every two POSTs of a 429'd message.
    let storm = &classes[0];
    assert!(storm.name.starts_with("429"));
    let mut min_gap = Duration::MAX;
    for (to, _) in class_of.iter().filter(|(_, k)| **k == 0) {
        let times = twilio.post_times_to(to.trim_start_matches("whatsapp:"));
        for pair in times.windows(2) {
            min_gap = min_gap.min(pair[1] - pair[0]);
        }
    }
    assert!(
        min_gap >= Duration::from_millis(990),
        "Retry-After: 1 honoured (shortest gap {min_gap:?})"
    );
    eprintln!(
        "twilio faults: {total} messages in {took:?}, {} POSTs, {} lookups, 0 duplicates, \
         shortest gap after a 429 {min_gap:?}; {}",
        twilio.post_count(),
        twilio.lists(),
        report.join("; ")
    );
}

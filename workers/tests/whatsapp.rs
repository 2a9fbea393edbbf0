//! WhatsApp end to end through the real runner: the send API ([`request_send`]), the queue, the
//! `whatsapp.send`, `whatsapp.status` and `whatsapp.inbound` handlers, and the store.
//!
//! Three stand-ins for the outside world:
//! * the **scripted fake Twilio** of the test kit (`moked_testkit::fake_twilio`, axum on
//!   127.0.0.1:0, shared with the fault-injection tests) that answers each `POST Messages.json`
//!   as scripted (201, 4xx/5xx with a Twilio error body, create-then-500, create-then-hang) and
//!   counts the messages it created per recipient, so "exactly one WhatsApp" is a count, not a hope; it
//!   also serves the list endpoint the lookup uses;
//! * the **Prism mock** of Twilio's official OpenAPI spec (`MOKED_PRISM_URL`, started by
//!   `scripts/test`) for the request shape; in CI a missing mock fails, locally it is skipped;
//! * the **real Baileys bridge** of `bridge/` (`node bridge/test/stub-server.js`, started by
//!   `moked_testkit::baileys_bridge`): its own HTTP server, idempotency key store and outbox on
//!   127.0.0.1:0, with a stub WhatsApp socket in place of Baileys that records what it sent and
//!   fails sends on request. Needs Node.js ≥ 20; installs `bridge/node_modules` when missing.
//!
//! Each test has its own SQLite file (and, for pacing, its own Redis prefix, deleted after).
//! Nothing sleeps to wait for work: [`Runner::drain`] returns when no job is left; retry
//! schedules are a few milliseconds so retries take no time.

mod world;

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use moked_jobs::kinds::{WhatsAppInbound, WhatsAppSend, WhatsAppStatus};
use moked_jobs::pacing::{Pacer, Rate};
use moked_jobs::queue::{self, JobDetail, JobState, NewJob};
use moked_jobs::retry::{RetryPolicy, RetrySchedule};
use moked_jobs::runner::{RunSummary, Runner, RunnerConfig};
use moked_jobs::store::whatsapp::messages::{self, WhatsAppMessage};
use moked_jobs::store::whatsapp::statuses;
use moked_jobs::whatsapp::send_api::{
    Outbound, SendError, SendRequest, SendSettings, request_send,
};
use moked_jobs::whatsapp::{Provider, WhatsAppSettings};
use moked_testkit::Backend;
use moked_testkit::baileys_bridge::{Answered, BaileysBridge, Failing};
use moked_testkit::fake_twilio::{FakeTwilio, MEDIA_BYTES, Step, field};
use moked_testkit::prism::prism_url;
use moked_workers::clients::whatsapp::Outgoing;
use moked_workers::config::WorkerConfig;
use moked_workers::run;
use serde_json::{Value, json};
use world::{AC, TOKEN, World};

const SENDER: &str = "+14155238886";
const PUBLIC_HOST: &str = "https://moked.example.com";

// ---------------------------------------------------------------------------------------------
// A world: a store, a queue, the worker context.

/// The WhatsApp settings `TWILIO_WHATSAPP_NUMBER=sender` gives (parsed as at start-up).
fn whatsapp_settings(provider: Provider, sender: &str) -> WhatsAppSettings {
    WhatsAppSettings::new(provider, Some(sender), false).expect("a sender number")
}

impl World {
    /// A world whose Twilio is `api_base`, with the database queue.
    async fn new(api_base: &str) -> World {
        World::build(api_base, false, |_| {}).await
    }

    async fn build(api_base: &str, redis: bool, tune: impl FnOnce(&mut WorkerConfig)) -> World {
        let mut base = moked_testkit::World::new(Backend::sqlite_or_redis(redis)).await;
        base.twilio(api_base, AC, TOKEN);
        base.core.public_host = PUBLIC_HOST.into();
        base.core.baileys_secret = Some("s3cret".to_owned().into());
        let mut worker = WorkerConfig::for_tests("wa");
        worker.whatsapp = whatsapp_settings(Provider::Twilio, &format!("whatsapp:{SENDER}"));
        worker.delivery.send_timeout = Duration::from_millis(400);
        worker.delivery.rate = None;
        tune(&mut worker);
        World::on(base, worker).await
    }

    fn settings(&self) -> SendSettings {
        SendSettings::new(&self.worker.whatsapp, &self.core)
    }

    async fn send(&self, req: SendRequest) -> Result<Outbound, SendError> {
        request_send(&self.db, self.queue.as_ref(), req, &self.settings()).await
    }

    async fn send_text(&self, to: &str, body: &str) -> Outbound {
        self.send(text(to, body)).await.expect("send accepted")
    }

    /// Runs every job with the real handlers until none is left.
    async fn drain(&self) -> RunSummary {
        let schedule: RetrySchedule = "20ms,20ms,20ms,20ms,20ms".parse().unwrap();
        let config = RunnerConfig {
            concurrency: 8,
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            fetch_wait: Duration::from_millis(50),
            policy: RetryPolicy::new(schedule),
        };
        let limit = Duration::from_secs(60);
        self.drain_with("wa-test", config, self.context(), limit)
            .await
    }

    async fn message(&self, id: &str) -> WhatsAppMessage {
        messages::get_message(&self.db, id)
            .await
            .unwrap()
            .expect("message exists")
    }

    /// The job that sends `out`.
    async fn send_job(&self, out: &Outbound) -> JobDetail {
        self.job(out.job_id.as_deref().unwrap()).await
    }

    /// A pacer on this world's Redis (as another process would make one).
    fn pacer(&self, rate: Option<Rate>, max_wait: Duration) -> Pacer {
        let redis = self.redis().expect("a world with Redis");
        Pacer::redis(redis.url(), redis.prefix(), rate, max_wait).unwrap()
    }

    async fn count(&self, state: JobState) -> u64 {
        self.queue.stats().await.unwrap().count(state)
    }

    async fn total_jobs(&self) -> u64 {
        let stats = self.queue.stats().await.unwrap();
        JobState::ALL.into_iter().map(|s| stats.count(s)).sum()
    }

    async fn enqueue_status(&self, sid: &str, status: &str, our_id: Option<&str>) {
        let job = WhatsAppStatus {
            message_sid: sid.into(),
            status: status.into(),
            error_code: None,
            error_message: None,
            our_id: our_id.map(str::to_owned),
            received_at: Utc::now(),
        };
        self.queue.enqueue(NewJob::new(&job)).await.unwrap();
    }
}

fn text(to: &str, body: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        body: Some(body.into()),
        ..SendRequest::default()
    }
}

fn template(to: &str) -> SendRequest {
    SendRequest {
        to: to.into(),
        content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
        content_variables: Some(json!({"1": "דנה", "2": 3})),
        ..SendRequest::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Retries without duplicates (scripted fake Twilio).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_five_hundred_then_201_sends_exactly_one_message() {
    let fail = Step::Fail {
        status: 500,
        code: 20500,
        retry_after: None,
        create: false,
    };
    let twilio = FakeTwilio::start(vec![fail.clone(), fail, Step::Create]).await;
    let w = World::new(&twilio.url).await;
    let out = w.send_text("052-555-1234", "שלום, קיבלנו את פנייתך").await;

    let summary = w.drain().await;

    assert_eq!(twilio.posts().len(), 3, "two 500s, then the 201");
    assert_eq!(
        twilio.created_to("+972525551234"),
        1,
        "exactly one WhatsApp"
    );
    assert_eq!(
        twilio.lists(),
        2,
        "each resend after an ambiguous 500 looked first"
    );
    let m = w.message(&out.message.id).await;
    assert_eq!(
        m.provider_sid.as_deref(),
        Some(twilio.created()[0].sid.as_str())
    );
    assert_eq!(m.status, "queued", "the 201's status is stored");
    assert_eq!((summary.done, summary.retried, summary.dead), (1, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_after_twilio_created_the_message_is_adopted_not_resent() {
    let twilio = FakeTwilio::start(vec![Step::Fail {
        status: 503,
        code: 20503,
        retry_after: None,
        create: true,
    }])
    .await;
    let w = World::new(&twilio.url).await;
    let out = w.send_text("+972525551234", "נחזור אליך היום").await;

    w.drain().await;

    assert_eq!(twilio.posts().len(), 1, "no second POST");
    assert_eq!(twilio.created_to("+972525551234"), 1);
    let m = w.message(&out.message.id).await;
    assert_eq!(
        m.provider_sid.as_deref(),
        Some(twilio.created()[0].sid.as_str())
    );
    assert_eq!(
        m.status, "sent",
        "adopted with the status the list reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_timeout_never_yields_a_duplicate() {
    // Twilio created the message but the answer never came: the next attempt finds and adopts it.
    let twilio = FakeTwilio::start(vec![Step::Hang { create: true }]).await;
    let w = World::new(&twilio.url).await;
    let out = w.send_text("052-555-1234", "תודה שפנית").await;
    let started = Instant::now();

    w.drain().await;

    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the 400 ms send timeout ran out"
    );
    assert_eq!(twilio.posts().len(), 1, "no second POST after the timeout");
    assert_eq!(twilio.created_to("+972525551234"), 1);
    assert_eq!(
        w.message(&out.message.id).await.provider_sid.as_deref(),
        Some(twilio.created()[0].sid.as_str())
    );

    // A timeout before Twilio created anything: the lookup finds nothing and one resend goes.
    let twilio = FakeTwilio::start(vec![Step::Hang { create: false }]).await;
    let w = World::new(&twilio.url).await;
    let out = w.send_text("052-555-1234", "תודה שפנית").await;
    w.drain().await;
    assert_eq!(twilio.posts().len(), 2);
    assert_eq!(twilio.created_to("+972525551234"), 1);
    assert_eq!(twilio.lists(), 1);
    assert!(w.message(&out.message.id).await.provider_sid.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured_and_needs_no_lookup() {
    let twilio = FakeTwilio::start(vec![Step::Fail {
        status: 429,
        code: 20429,
        retry_after: Some(1),
        create: false,
    }])
    .await;
    let w = World::new(&twilio.url).await;
    let out = w.send_text("052-555-1234", "שלום").await;

    w.drain().await;

    let times = twilio.post_times();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {gap:?}"
    );
    assert!(gap < Duration::from_secs(3), "and not much longer: {gap:?}");
    assert_eq!(
        twilio.lists(),
        0,
        "a 429 is never processed: nothing to look up"
    );
    assert_eq!(twilio.created_to("+972525551234"), 1);
    assert!(w.message(&out.message.id).await.provider_sid.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_fail_the_message_at_once_with_code_and_reason() {
    let refusal = |code| Step::Fail {
        status: 400,
        code,
        retry_after: None,
        create: false,
    };
    let cases = [
        (63016, "+972525550001", "24-hour"),
        (21211, "+972525550002", "not a valid phone number"),
        (21610, "+972525550003", "opted out"),
        (21614, "+972525550004", "not a mobile number"),
        (21606, "+972525550005", "scripted 400"),
    ];
    let twilio = FakeTwilio::start(vec![]).await;
    for (code, to, _) in &cases {
        twilio.script_for(to, vec![refusal(*code)]);
    }
    let w = World::new(&twilio.url).await;
    let mut ids = Vec::new();
    for (_, to, _) in &cases {
        ids.push(w.send_text(to, "הודעה חופשית").await);
    }

    let summary = w.drain().await;

    assert_eq!(
        twilio.posts().len(),
        cases.len(),
        "one attempt each, no retry"
    );
    assert_eq!((summary.dead, summary.retried), (cases.len() as u64, 0));
    for ((code, _, reason), out) in cases.iter().zip(&ids) {
        let m = w.message(&out.message.id).await;
        assert_eq!(m.status, "failed");
        assert_eq!(m.error_code, Some(*code));
        let text = m.error_message.unwrap_or_default();
        assert!(text.contains(reason), "{code}: {text}");
        let job = w.send_job(out).await;
        assert_eq!(
            (job.summary.state, job.summary.attempts),
            (JobState::Dead, 1)
        );
        let last_error = job.summary.last_error.unwrap_or_default();
        assert!(last_error.contains(&code.to_string()));
        // Twilio's 21211 text quotes the number ("The 'To' number whatsapp:+972… is not
        // valid."): the message's error, the job's last error and its history keep it masked.
        if *code == 21211 {
            let history = &job.history.last().unwrap().error;
            for stored in [&text, &last_error, history] {
                assert!(stored.contains("whatsapp:+9725****0002"), "{stored}");
                assert!(!stored.contains("525550002"), "{stored}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request shape and idempotency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whatsapp_prefix_is_added_exactly_once_and_the_callback_carries_our_id() {
    let twilio = FakeTwilio::start(vec![]).await;
    for configured in [
        format!("whatsapp:{SENDER}"),
        SENDER.to_owned(),
        " whatsapp:+1 415 523 8886 ".to_owned(),
    ] {
        let w = World::build(&twilio.url, false, |wc| {
            wc.whatsapp = whatsapp_settings(Provider::Twilio, &configured)
        })
        .await;
        let a = w.send_text("whatsapp:+972525551234", "א").await;
        let b = w.send_text("052-555-1234", "ב").await;
        let c = w.send(template("0525551234")).await.unwrap();
        let d = w
            .send(SendRequest {
                media_urls: vec!["https://example.com/menu.jpg".into()],
                ..text("052-555-1234", "ד")
            })
            .await
            .unwrap();
        w.drain().await;
        for out in [&a, &b, &c, &d] {
            assert!(w.message(&out.message.id).await.provider_sid.is_some());
        }
    }
    let posts = twilio.posts();
    assert_eq!(posts.len(), 12);
    for form in &posts {
        for (k, v) in form {
            assert!(!v.contains("whatsapp:whatsapp:"), "{k}={v}");
        }
        assert_eq!(field(form, "From"), Some("whatsapp:+14155238886"));
        assert_eq!(field(form, "To"), Some("whatsapp:+972525551234"));
        let callback = field(form, "StatusCallback").unwrap();
        assert!(
            callback.starts_with("https://moked.example.com/webhook/whatsapp/status?mid="),
            "{callback}"
        );
    }
    // Every callback names its own message.
    let ids: std::collections::HashSet<&str> = posts
        .iter()
        .map(|f| {
            field(f, "StatusCallback")
                .unwrap()
                .rsplit('=')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 12);
    let template = posts
        .iter()
        .find(|f| field(f, "ContentSid").is_some())
        .unwrap();
    assert_eq!(field(template, "Body"), None, "never Body with a template");
    assert_eq!(
        field(template, "ContentVariables"),
        Some(r#"{"1":"דנה","2":"3"}"#)
    );
    let media = posts
        .iter()
        .find(|f| field(f, "MediaUrl").is_some())
        .unwrap();
    assert_eq!(
        field(media, "MediaUrl"),
        Some("https://example.com/menu.jpg")
    );
    assert_eq!(twilio.state.lock().unwrap().unauthenticated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_number_is_refused_before_any_job_or_row_exists() {
    let twilio = FakeTwilio::start(vec![]).await;
    let w = World::new(&twilio.url).await;
    for bad in ["hello", "*2345", "12", ""] {
        let err = w.send(text(bad, "x")).await.unwrap_err();
        assert!(matches!(err, SendError::InvalidNumber(_)), "{bad}: {err:?}");
        assert_eq!(err.http_status(), 400);
    }
    let err = w
        .send(SendRequest {
            content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
            ..text("052-555-1234", "both")
        })
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert_eq!(w.total_jobs().await, 0);
    let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM whatsapp_message")
        .fetch_one(w.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_returns_the_first_message_and_no_second_job() {
    let twilio = FakeTwilio::start(vec![]).await;
    let w = World::new(&twilio.url).await;
    let req = SendRequest {
        idempotency_key: Some("order-17".into()),
        ..text("050-123-4567", "ההזמנה שלך מוכנה")
    };
    let first = w.send(req.clone()).await.unwrap();
    let again = w.send(req.clone()).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.message.id, again.message.id);
    assert_eq!(first.message.to.as_deref(), Some("+972501234567"));
    assert_eq!(w.total_jobs().await, 1, "one job for one message");
    let other = SendRequest {
        body: Some("something else".into()),
        ..req.clone()
    };
    let err = w.send(other).await.unwrap_err();
    assert!(matches!(err, SendError::IdempotencyConflict(_)), "{err:?}");

    w.drain().await;
    // After it was sent: the key still returns it, and no job is needed.
    let later = w.send(req).await.unwrap();
    assert_eq!(
        (later.message.id.as_str(), later.job_id.as_deref()),
        (first.message.id.as_str(), None)
    );
    // A stray second job for a sent message sends nothing.
    w.queue
        .enqueue(NewJob::new(&WhatsAppSend {
            message_id: first.message.id.clone(),
        }))
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(twilio.posts().len(), 1);
    assert_eq!(twilio.created_to("+972501234567"), 1);
}

// ---------------------------------------------------------------------------------------------
// Status callbacks, inbound messages and the 24-hour window.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_out_of_order_end_at_read_with_both_timestamps() {
    const SID: &str = "SM0123456789abcdef0123456789abcdef";
    let twilio = FakeTwilio::start(vec![Step::CreateWithSid(SID)]).await;
    let w = World::new(&twilio.url).await;
    // The callbacks beat the send result: read first, then delivered, for a sid nobody knows.
    w.enqueue_status(SID, "read", None).await;
    w.enqueue_status(SID, "delivered", None).await;
    w.drain().await;
    assert!(
        messages::get_message_by_provider_sid(&w.db, SID)
            .await
            .unwrap()
            .is_none()
    );

    let out = w.send_text("052-555-1234", "שלום").await;
    w.drain().await;
    let m = w.message(&out.message.id).await;
    assert_eq!(m.provider_sid.as_deref(), Some(SID));
    assert_eq!(
        m.status, "read",
        "the waiting callbacks were applied when the sid landed"
    );
    let (delivered, read) = (m.delivered_at.unwrap(), m.read_at.unwrap());
    assert!(m.sent_at.is_some());

    // Late and duplicate callbacks change nothing.
    w.enqueue_status(SID, "sent", Some(&out.message.id)).await;
    w.enqueue_status(SID, "delivered", Some(&out.message.id))
        .await;
    w.enqueue_status(SID, "queued", None).await;
    w.drain().await;
    let m = w.message(&out.message.id).await;
    assert_eq!(m.status, "read");
    assert_eq!((m.delivered_at, m.read_at), (Some(delivered), Some(read)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_naming_our_id_attaches_the_sid_so_a_retry_does_not_resend() {
    // The POST timed out, but Twilio's first callback (with our id in its URL) arrives before the
    // retry: the message is known to be sent without any lookup.
    let twilio = FakeTwilio::start(vec![Step::Hang { create: true }]).await;
    let w = World::build(&twilio.url, false, |wc| {
        wc.delivery.send_timeout = Duration::from_millis(200)
    })
    .await;
    let out = w.send_text("052-555-1234", "שלום").await;
    let sid = {
        // Run the first attempt only: a runner with a one-attempt schedule leaves the job dead.
        let ctx = w.context();
        let config = RunnerConfig {
            concurrency: 1,
            fetch_wait: Duration::from_millis(50),
            policy: RetryPolicy::new(RetrySchedule::new(vec![])),
            ..RunnerConfig::default()
        };
        Runner::new(w.queue.clone(), "wa-once", config, run::dispatcher(ctx))
            .drain(std::future::pending())
            .await
            .unwrap();
        twilio.created()[0].sid.clone()
    };
    w.enqueue_status(&sid, "sent", Some(&out.message.id)).await;
    w.drain().await;
    assert_eq!(
        w.message(&out.message.id).await.provider_sid.as_deref(),
        Some(sid.as_str())
    );
    assert!(
        w.queue.retry(out.job_id.as_deref().unwrap()).await.unwrap(),
        "operator retry"
    );
    w.drain().await;
    assert_eq!(twilio.posts().len(), 1);
    assert_eq!(twilio.lists(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_is_stored_once_and_opens_the_24_hour_window() {
    let twilio = FakeTwilio::start(vec![]).await;
    let w = World::build(&twilio.url, false, |wc| wc.whatsapp.enforce_window = true).await;

    // Nobody wrote yet: free text is refused with 422, a template goes.
    let err = w.send(text("052-555-1234", "שלום")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::OutsideWindow {
                last_inbound_at: None
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 422);
    assert_eq!(w.total_jobs().await, 0);
    w.send(template("052-555-1234")).await.unwrap();

    // The customer writes (delivered twice).
    let inbound = WhatsAppInbound {
        provider: "twilio".into(),
        provider_sid: "SMfeedfacefeedfacefeedfacefeedface".into(),
        from: "whatsapp:+972525551234".into(),
        to: Some(format!("whatsapp:{SENDER}")),
        body: "היי, אפשר פרטים?".into(),
        media: vec![],
        profile_name: Some("דנה".into()),
        received_at: Utc::now(),
    };
    w.queue.enqueue(NewJob::new(&inbound)).await.unwrap();
    w.queue.enqueue(NewJob::new(&inbound)).await.unwrap();
    w.drain().await;
    let rows: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM whatsapp_message WHERE direction = 'inbound'")
            .fetch_one(w.db.pool())
            .await
            .unwrap();
    assert_eq!(rows.0, 1, "once per provider id");
    let phone = moked_jobs::phone::E164::parse("+972525551234").unwrap();
    let customers = moked_jobs::store::customers::find_customers_by_phone(&w.db, &phone)
        .await
        .unwrap();
    assert_eq!(
        customers.len(),
        1,
        "inbound and outbound share one customer row"
    );
    assert!(customers[0].last_inbound_at.is_some());

    // Inside the window now.
    let out = w.send(text("052-555-1234", "בשמחה!")).await.unwrap();
    w.drain().await;
    assert!(w.message(&out.message.id).await.provider_sid.is_some());
    assert_eq!(
        twilio.created_to("+972525551234"),
        2,
        "the template and the reply"
    );

    // An old inbound does not reopen it.
    sqlx::query("UPDATE customer SET last_inbound_at = $1")
        .bind(moked_jobs::store::to_ms(
            Utc::now() - chrono::Duration::hours(25),
        ))
        .execute(w.db.pool())
        .await
        .unwrap();
    let err = w.send(text("052-555-1234", "עוד משהו")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::OutsideWindow {
                last_inbound_at: Some(_)
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_are_copied_with_auth_once_into_the_recordings_store() {
    let twilio = FakeTwilio::start(vec![]).await;
    twilio.state.lock().unwrap().media_404_first = true;
    let mut w = World::new(&twilio.url).await;
    let store = w.dir().join("store");
    w.worker.recordings_store = format!("file://{}", store.display());
    let inbound = WhatsAppInbound {
        provider: "twilio".into(),
        provider_sid: "MMfeedfacefeedfacefeedfacefeedface".into(),
        from: "whatsapp:+972525551234".into(),
        to: Some(format!("whatsapp:{SENDER}")),
        body: String::new(),
        media: vec![
            moked_jobs::kinds::InboundMedia {
                url: format!(
                    "{}/2010-04-01/Accounts/{AC}/Messages/MMfeedface/Media/ME0001",
                    twilio.url
                ),
                content_type: Some("image/jpeg".into()),
            },
            moked_jobs::kinds::InboundMedia {
                url: "https://media.example.net/steal-my-credentials.jpg".into(),
                content_type: Some("image/jpeg".into()),
            },
        ],
        profile_name: None,
        received_at: Utc::now(),
    };
    w.queue.enqueue(NewJob::new(&inbound)).await.unwrap();

    let summary = w.drain().await;

    assert_eq!(
        (summary.done, summary.retried),
        (1, 1),
        "the 404 was retried"
    );
    let m = messages::get_message_by_provider_sid(&w.db, &inbound.provider_sid)
        .await
        .unwrap()
        .unwrap();
    let key = m.media[0].location.clone().expect("first media stored");
    assert!(
        key.starts_with("whatsapp/") && key.ends_with(&format!("{}/0.jpg", m.id)),
        "{key}"
    );
    assert_eq!(std::fs::read(store.join(&key)).unwrap(), MEDIA_BYTES);
    assert_eq!(
        m.media[1].location, None,
        "credentials never go to a foreign host"
    );
    assert_eq!(twilio.state.lock().unwrap().unauthenticated, 0);

    // A redelivery downloads nothing again.
    w.queue.enqueue(NewJob::new(&inbound)).await.unwrap();
    w.drain().await;
    assert_eq!(twilio.state.lock().unwrap().media_gets, 2);
}

// ---------------------------------------------------------------------------------------------
// Per-sender pacing shared through Redis.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_spreads_sends_at_the_configured_rate_across_workers() {
    let twilio = FakeTwilio::start(vec![]).await;
    let w = World::build(&twilio.url, true, |wc| {
        wc.delivery.rate = Rate::per_second(50.0)
    })
    .await;
    for i in 0..15 {
        w.send_text(&format!("+97252555{i:04}"), "שלום").await;
    }
    // Two runners (two workers) on the same Redis share the sender's limit.
    let (a, b) = tokio::join!(w.drain(), w.drain());
    assert_eq!(a.done + b.done, 15);
    let times = twilio.post_times();
    assert_eq!(times.len(), 15);
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    // 15 sends at 50/s are 14 intervals of 20 ms apart (280 ms) when their slots are reserved;
    // the POSTs arrive give or take one request's latency.
    assert!(
        last - first >= Duration::from_millis(250),
        "15 sends spread over {:?}",
        last - first
    );

    // The limiter alone: two pacers (as two processes) share one key's rate.
    let pacer = |rate, max_wait| w.pacer(rate, max_wait);
    let p1 = pacer(Rate::per_second(100.0), Duration::from_secs(5));
    let p2 = pacer(Rate::per_second(100.0), Duration::from_secs(5));
    assert!(p1.is_shared());
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let p = if i % 2 == 0 { p1.clone() } else { p2.clone() };
            tokio::spawn(async move {
                // The slot each caller got: when it asked plus how long it was told to wait.
                let asked = Instant::now();
                asked + p.acquire("whatsapp:+15550001111").await.unwrap()
            })
        })
        .collect();
    let mut waits = Vec::new();
    for t in tasks {
        waits.push(t.await.unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(185),
        "{:?}",
        started.elapsed()
    );
    waits.sort();
    // Slots are 10 ms apart: the i-th is at least i × 10 ms after the first. A caller reads its
    // clock before its call, so on a loaded machine (a pause between the reading and the call)
    // its slot looks a little early; the tolerance is per slot and does not add up.
    let first = waits[0];
    for (i, slot) in waits.iter().enumerate() {
        let due = first + Duration::from_millis(10 * i as u64);
        let early = due.saturating_duration_since(*slot);
        assert!(early <= Duration::from_millis(5), "slot {i}: {waits:?}");
    }
    // Over the limit: nothing reserved, told when to come back.
    let tight = pacer(Rate::per_second(1.0), Duration::from_millis(100));
    tight.acquire("k").await.unwrap();
    assert!(matches!(
        tight.acquire("k").await,
        Err(moked_jobs::pacing::Paced::RetryAfter(d)) if d > Duration::from_millis(800)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_waited_for_its_slot_looks_again_and_does_not_resend() {
    // Issue #14: two runs of one message's send job (one took the job over from a worker
    // thought dead) both read "unsent", then wait in the pacer. The first sends when its slot
    // comes; the second, whose slot comes later, must see that before it sends.
    let twilio = FakeTwilio::start(vec![]).await;
    let interval = Duration::from_millis(500);
    let rate = Rate::per_second(1.0 / interval.as_secs_f64());
    let w = World::build(&twilio.url, true, |wc| wc.delivery.rate = rate).await;
    let out = w.send_text("+972525556789", "שלום").await;
    w.queue
        .enqueue(NewJob::new(&WhatsAppSend {
            message_id: out.message.id.clone(),
        }))
        .await
        .unwrap();
    // Another sender's message took the next slot: both runs wait, one interval apart.
    w.pacer(rate, Duration::from_secs(5))
        .acquire(&format!("whatsapp:{SENDER}"))
        .await
        .unwrap();

    let summary = w.drain().await;

    assert_eq!(summary.done, 2, "{summary:?}");
    assert_eq!(twilio.post_count(), 1, "sent once");
    assert!(w.message(&out.message.id).await.provider_sid.is_some());
}

// ---------------------------------------------------------------------------------------------
// The Prism mock of Twilio's REST spec: the request shape.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prism_accepts_the_request_shapes_of_text_templates_and_the_lookup() {
    let Some(prism) = prism_url() else { return };
    // Media are left to the scripted fake: Prism reads a form's repeated `MediaUrl` (how Twilio
    // and its SDKs send it, one key per URL) as a string and refuses it ("must be array").
    let requests = [
        text("052-555-1234", "שלום, קיבלנו את פנייתך"),
        template("052-555-1234"),
    ];
    for req in requests {
        // One message per world: Prism answers every create with the same example sid.
        let w = World::new(&prism).await;
        let out = w.send(req).await.unwrap();
        let summary = w.drain().await;
        assert_eq!(
            (summary.done, summary.dead, summary.retried),
            (1, 0, 0),
            "{summary:?}"
        );
        let m = w.message(&out.message.id).await;
        assert!(
            m.provider_sid
                .as_deref()
                .is_some_and(|s| s.starts_with("SM")),
            "{m:?}"
        );
        assert_eq!(m.status, "queued");
    }
    // The lookup's list query is one the spec accepts (its example messages are not ours).
    let w = World::new(&prism).await;
    let ctx = w.context();
    let out = w.send_text("052-555-1234", "x").await;
    let outgoing = Outgoing::new(
        &out.message,
        moked_jobs::phone::E164::parse("0525551234").unwrap(),
    );
    let found = ctx.whatsapp.find_sent(&outgoing, Utc::now()).await.unwrap();
    assert_eq!(found, Some(vec![]));
}

// ---------------------------------------------------------------------------------------------
// The Baileys bridge: the real one of bridge/ over a stub WhatsApp socket
// (moked_testkit::baileys_bridge).

async fn baileys_world(bridge: &BaileysBridge, secret: &str) -> World {
    let url = bridge.url.clone();
    let mut w = World::build("http://127.0.0.1:9", false, move |wc| {
        wc.whatsapp.provider = Provider::Baileys;
        wc.baileys_url = Some(url);
        // A real process that fsyncs its key log before each send: a loaded machine must not
        // turn a send into an ambiguous timeout and change what the tests count.
        wc.delivery.send_timeout = Duration::from_secs(10);
    })
    .await;
    w.core.baileys_secret = Some(secret.to_owned().into());
    w
}

/// A text sent through a fresh bridge (secret `s3cret`) that fails its next `fail` sends as
/// given, from a world using `secret`, and every job run: the bridge, the world, the message
/// and the run.
async fn baileys_text(
    fail: Option<(usize, u16, Failing)>,
    secret: &str,
) -> (BaileysBridge, World, Outbound, RunSummary) {
    let bridge = BaileysBridge::start("s3cret").await;
    if let Some((count, status, when)) = fail {
        bridge.fail_next(count, status, when).await;
    }
    let w = baileys_world(&bridge, secret).await;
    let out = w.send_text("052-555-1234", "שלום").await;
    let summary = w.drain().await;
    (bridge, w, out, summary)
}

/// The bridge's answers, as (Idempotency-Key, HTTP status).
fn answers(requests: &[Answered]) -> Vec<(Option<&str>, u16)> {
    requests
        .iter()
        .map(|r| (r.key.as_deref(), r.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baileys_sends_text_to_a_jid_with_the_secret_and_our_id() {
    let bridge = BaileysBridge::start("s3cret").await;
    let w = baileys_world(&bridge, "s3cret").await;
    let out = w.send_text("052-555-1234", "שלום מהגשר").await;
    assert_eq!(out.message.provider, "baileys");
    assert!(matches!(
        w.send(template("0525551234")).await,
        Err(SendError::Invalid(_))
    ));

    w.drain().await;

    let sent = bridge.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].jid.as_str(), sent[0].text.as_str()),
        ("972525551234@s.whatsapp.net", "שלום מהגשר")
    );
    let m = w.message(&out.message.id).await;
    assert_eq!(m.provider_sid.as_deref(), Some(sent[0].id.as_str()));
    assert_eq!(m.status, "sent");
    let reqs = bridge.requests().await;
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].secret_ok);
    assert_eq!(answers(&reqs), [(Some(out.message.id.as_str()), 200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baileys_errors_retry_with_the_same_idempotency_key_until_one_message_is_sent() {
    // A socket error with no sign of where it happened: the bridge cannot tell whether the
    // message went out, so it answers 500 (docs/BAILEYS.md), which moked retries as ambiguous.
    let fail = (2, 500, Failing::BeforeSending);
    let (bridge, w, out, summary) = baileys_text(Some(fail), "s3cret").await;

    let key = Some(out.message.id.as_str());
    let reqs = bridge.requests().await;
    assert_eq!(answers(&reqs), [(key, 500), (key, 500), (key, 200)]);
    let sent = bridge.sent().await;
    assert_eq!(sent.len(), 1, "one message sent: {sent:?}");
    assert_eq!((summary.done, summary.retried), (1, 2));
    let m = w.message(&out.message.id).await;
    assert_eq!(m.provider_sid.as_deref(), Some(sent[0].id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baileys_send_cut_short_after_it_went_out_is_retried_as_the_same_whatsapp_message() {
    // The socket sent, then failed waiting for WhatsApp (408): 500 to moked, which retries with
    // the same key; the bridge sends again under the WhatsApp id it chose the first time, so
    // WhatsApp sees one message and moked stores that id.
    let (bridge, w, out, summary) =
        baileys_text(Some((1, 408, Failing::AfterSending)), "s3cret").await;

    assert_eq!((summary.done, summary.retried), (1, 1));
    let key = Some(out.message.id.as_str());
    assert_eq!(answers(&bridge.requests().await), [(key, 500), (key, 200)]);
    let sent = bridge.sent().await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].id, sent[1].id, "one WhatsApp message id");
    let m = w.message(&out.message.id).await;
    assert_eq!(m.provider_sid.as_deref(), Some(sent[0].id.as_str()));
    assert_eq!(m.status, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_baileys_secret_leaves_the_message_queued_for_an_operator() {
    let (bridge, w, out, summary) = baileys_text(None, "wrong").await;

    assert_eq!((summary.dead, summary.retried), (1, 0));
    let reqs = bridge.requests().await;
    assert_eq!(reqs.len(), 1);
    assert!(!reqs[0].secret_ok);
    assert_eq!(reqs[0].status, 403);
    assert!(bridge.sent().await.is_empty());
    let m = w.message(&out.message.id).await;
    assert_eq!((m.status.as_str(), m.provider_sid), ("queued", None));
    let job = w.send_job(&out).await;
    assert!(job.summary.last_error.unwrap_or_default().contains("403"));
}

// ---------------------------------------------------------------------------------------------
// The CLI verb.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_queues_a_message_once_per_idempotency_key_and_refuses_bad_numbers() {
    let w = World::new("http://127.0.0.1:9").await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_moked-worker"))
            .arg("whatsapp")
            .arg("send")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", w.db_url())
            .env("WHATSAPP_PROVIDER", "twilio")
            .env("TWILIO_WHATSAPP_NUMBER", SENDER)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let ok = cli(&[
        "--to",
        "050-123-4567",
        "--body",
        "שלום",
        "--idempotency-key",
        "k1",
        "--json",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let first: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(first["created"], json!(true));
    let again = cli(&[
        "--to",
        "+972501234567",
        "--body",
        "שלום",
        "--idempotency-key",
        "k1",
        "--json",
    ]);
    let second: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (second["id"].clone(), second["created"].clone()),
        (first["id"].clone(), json!(false))
    );
    assert_eq!(w.total_jobs().await, 1);

    let bad = cli(&["--to", "hello", "--body", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a phone number"));
    let neither = cli(&["--to", "0501234567"]);
    assert!(!neither.status.success(), "body or content sid is required");
    let tmpl = cli(&[
        "--to",
        "0501234567",
        "--content-sid",
        "HX0123456789abcdef0123456789abcdef",
        "--content-variables",
        r#"{"1":"Dana"}"#,
    ]);
    assert!(
        tmpl.status.success(),
        "{}",
        String::from_utf8_lossy(&tmpl.stderr)
    );
    assert!(String::from_utf8_lossy(&tmpl.stdout).starts_with("queued WhatsApp message"));
    assert_eq!(w.count(JobState::Queued).await, 2);
}

// ---------------------------------------------------------------------------------------------
// Operator retry re-attempts the send (issue #14, item 3).

/// `moked-worker jobs retry ARGS…` against the world's store and queue.
fn jobs_retry(w: &World, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moked-worker"))
        .args(["jobs", "retry"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", w.db_url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retry_of_a_refused_message_sends_it_once_and_an_accepted_one_is_refused() {
    let to = "+972525550002";
    let twilio = FakeTwilio::start(vec![]).await;
    twilio.script_for(
        to,
        vec![Step::Fail {
            status: 400,
            code: 21211,
            retry_after: None,
            create: false,
        }],
    );
    let w = World::new(&twilio.url).await;
    let refused = w.send_text(to, "התור שלך אושר").await;
    let job = refused.job_id.clone().expect("a job");
    let summary = w.drain().await;
    assert_eq!(summary.dead, 1);
    let m = w.message(&refused.message.id).await;
    assert_eq!((m.status.as_str(), m.error_code), ("failed", Some(21211)));

    // The number is fixed at Twilio's end (the fake accepts from now on); the operator retries.
    let out = jobs_retry(&w, &[&job]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "retried 1 job(s)"
    );
    let m = w.message(&refused.message.id).await;
    assert_eq!(
        (m.status.as_str(), m.error_code, m.provider_sid.as_deref()),
        ("queued", None, None),
        "the message is queued again before its job runs"
    );
    let detail = w.queue.get(&job).await.unwrap().unwrap();
    assert_eq!(detail.summary.state, JobState::Queued);
    assert!(
        detail.history[0].error.contains("21211"),
        "the refusal stays in the job's history: {:?}",
        detail.history
    );

    let summary = w.drain().await;
    assert_eq!((summary.done, summary.dead), (1, 0));
    assert_eq!(twilio.posts().len(), 2, "the refused POST, then one more");
    assert_eq!(twilio.created_to(to), 1, "sent exactly once");
    let m = w.message(&refused.message.id).await;
    assert_eq!(
        m.provider_sid.as_deref(),
        Some(twilio.created()[0].sid.as_str())
    );
    assert_eq!(
        m.error_code, None,
        "the old refusal does not stick to the sent message"
    );
    let detail = w.queue.get(&job).await.unwrap().unwrap();
    assert_eq!(detail.summary.state, JobState::Done);

    // A job that died after the provider accepted its message (it has a sid): a retry would
    // send nothing and end `done`, so it is refused with the reason and the job stays dead.
    let accepted = w.send_text("+972525550003", "תודה").await;
    let job = accepted.job_id.clone().expect("a job");
    statuses::attach_provider_sid(&w.db, &accepted.message.id, "SM0123456789abcdef", "sent")
        .await
        .unwrap();
    let worker = queue::WorkerId::new("operator-test");
    let leases = w
        .queue
        .fetch(&worker, 1, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    w.queue
        .bury(&worker, &job, "database error: the store went away")
        .await
        .unwrap();

    let out = jobs_retry(&w, &[&job]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&job)
            && said.contains("SM0123456789abcdef")
            && said.contains("second message"),
        "the refusal names the job and the reason: {said}"
    );
    let out = jobs_retry(&w, &["--all-dead"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("retried 0 dead job(s); 1 cannot be retried") && said.contains(&job),
        "bulk retry applies the same rule and names the refused job: {said}"
    );
    assert_eq!(
        w.queue.get(&job).await.unwrap().unwrap().summary.state,
        JobState::Dead
    );
    assert_eq!(twilio.created_to("+972525550003"), 0, "nothing was sent");
}

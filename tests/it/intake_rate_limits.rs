//! Rate limits, per process (database queue) and shared through Redis: failed signatures per
//! client IP (spoofed `X-Forwarded-For` entries do not help), incoming calls per caller
//! (rejected busy, nothing enqueued), recording and status callbacks per sid (429), and `off`.

use moked_intake::config::RateLimits;
use moked_jobs::kinds::JobKind;
use moked_jobs::pacing::Rate;

use crate::helpers::{
    Backend, Response, Signature, TestApp, call_params, sid, spawn_app_with, spawn_sibling,
};

const REJECT_BUSY: &str =
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>"#;

async fn app_with(backend: Backend, limits: RateLimits) -> TestApp {
    spawn_app_with(backend, move |_, intake| intake.limits = limits).await
}

/// An app whose only limit is the one `limit` sets (every other one `off`).
async fn limited(backend: Backend, limit: impl FnOnce(&mut RateLimits)) -> TestApp {
    let mut limits = RateLimits::OFF;
    limit(&mut limits);
    app_with(backend, limits).await
}

/// A call-status callback with a forged signature, from `forwarded_for` when given.
async fn forged(app: &TestApp, forwarded_for: Option<&str>) -> Response {
    let mut hook = app
        .webhook("/webhook/call_status")
        .params([("CallSid", "CA1"), ("CallStatus", "ringing")])
        .signature(Signature::Exactly("forged".into()));
    if let Some(ips) = forwarded_for {
        hook = hook.header("X-Forwarded-For", ips);
    }
    hook.send().await
}

/// A correctly signed call-status callback of a new call, from `forwarded_for`.
async fn signed_status(app: &TestApp, forwarded_for: &str) -> Response {
    app.webhook("/webhook/call_status")
        .params([("CallSid", sid("CA")), ("CallStatus", "ringing".into())])
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
}

/// An incoming call from `caller` (a new call sid).
async fn incoming_call(app: &TestApp, caller: &str) -> Response {
    app.webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), caller))
        .send()
        .await
}

/// The statuses `path` answers to one callback per entry of `params`, in order.
async fn answers<'a>(
    app: &TestApp,
    path: &str,
    params: impl IntoIterator<Item = Vec<(&'a str, &'a str)>>,
) -> Vec<u16> {
    let mut answers = Vec::new();
    for params in params {
        answers.push(app.webhook(path).params(params).send().await.status);
    }
    answers
}

async fn an_ip_over_the_unverified_limit_gets_429_for_its_unsigned_requests(backend: Backend) {
    let app = limited(backend, |l| l.unverified = Some(Rate::per_minute(3))).await;
    let attacker = |i: u32| format!("10.9.{i}.{i}, 203.0.113.7");
    for i in 0..3 {
        let resp = forged(&app, Some(&attacker(i))).await;
        assert_eq!(resp.status, 403, "attempt {i}");
    }
    // Over the limit: 429 with Retry-After, whatever entries the client adds on the left...
    for i in 3..6 {
        let resp = forged(&app, Some(&attacker(i))).await;
        assert_eq!(resp.status, 429, "attempt {i}");
        let retry_after: u64 = resp
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("numeric Retry-After");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    // ...but a correctly signed request from that IP is verified first and answered: the
    // limit refuses only requests that fail verification.
    assert_eq!(signed_status(&app, "203.0.113.7").await.status, 204);
    // The Baileys route shares the limit.
    let resp = app
        .client
        .post(app.url("/webhook/whatsapp/baileys"))
        .header("X-Forwarded-For", "1.1.1.1, 203.0.113.7")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 429);
    // Another client (Twilio's address behind the same router) is unaffected.
    let resp = signed_status(&app, "203.0.113.7, 54.172.60.1").await;
    assert_eq!(resp.status, 204);
    assert_eq!(app.job_total().await, 2);
}

async fn a_caller_over_the_call_limit_is_rejected_busy_and_nothing_is_enqueued(backend: Backend) {
    let app = limited(backend, |l| l.calls = Some(Rate::per_minute(2))).await;
    let spammer = "+972501110000";
    for n in 0..2 {
        let resp = incoming_call(&app, spammer).await;
        assert!(resp.body.contains("<Record "), "call {n}: {}", resp.body);
    }
    for n in 2..4 {
        let resp = incoming_call(&app, spammer).await;
        assert_eq!(resp.status, 200, "call {n}");
        assert_eq!(resp.header("content-type"), Some("text/xml; charset=utf-8"));
        assert_eq!(resp.body, REJECT_BUSY, "call {n}");
    }
    let other = incoming_call(&app, "+972502220000").await;
    assert!(other.body.contains("<Record "), "{}", other.body);
    let jobs = app.payloads(JobKind::CallStarted).await;
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs.iter().filter(|j| j["from"] == spammer).count(), 2);
}

async fn recording_callbacks_over_the_limit_per_call_sid_get_429(backend: Backend) {
    let app = limited(backend, |l| l.recordings = Some(Rate::per_minute(2))).await;
    let call = sid("CA");
    let statuses = ["in-progress", "in-progress", "completed"];
    let callbacks = statuses.map(|status| {
        vec![
            ("CallSid", call.as_str()),
            ("RecordingSid", "RE1"),
            ("RecordingUrl", "https://api.twilio.com/r/RE1"),
            ("RecordingStatus", status),
        ]
    });
    let answered = answers(&app, "/webhook/recording_status", callbacks).await;
    assert_eq!(answered, [204, 204, 429]);
    // The <Record action> of the same call counts against the same CallSid.
    let resp = app
        .webhook("/webhook/handle_recording")
        .params([("CallSid", call.as_str())])
        .send()
        .await;
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some());
    assert_eq!(app.job_total().await, 0);
    let other = app
        .webhook("/webhook/handle_recording")
        .params([("CallSid", sid("CA"))])
        .send()
        .await;
    assert_eq!(other.status, 200);
}

async fn status_callbacks_over_the_limit_per_sid_get_429(backend: Backend) {
    let app = limited(backend, |l| l.status = Some(Rate::per_minute(2))).await;
    let call = sid("CA");
    let calls = ["ringing", "in-progress", "completed"]
        .map(|status| vec![("CallSid", call.as_str()), ("CallStatus", status)]);
    assert_eq!(
        answers(&app, "/webhook/call_status", calls).await,
        [204, 204, 429]
    );
    let msg = sid("SM");
    let messages = ["sent", "delivered", "read"]
        .map(|status| vec![("MessageSid", msg.as_str()), ("MessageStatus", status)]);
    assert_eq!(
        answers(&app, "/webhook/whatsapp/status", messages).await,
        [204, 204, 429]
    );
    assert_eq!(app.jobs(JobKind::CallStatus).await.len(), 2);
    assert_eq!(app.jobs(JobKind::WhatsAppStatus).await.len(), 2);
}

backend_tests!(
    an_ip_over_the_unverified_limit_gets_429_for_its_unsigned_requests,
    a_caller_over_the_call_limit_is_rejected_busy_and_nothing_is_enqueued,
    recording_callbacks_over_the_limit_per_call_sid_get_429,
    status_callbacks_over_the_limit_per_sid_get_429,
);

#[tokio::test]
async fn limits_set_to_off_never_limit() {
    let app = app_with(Backend::Sqlite, RateLimits::OFF).await;
    for _ in 0..80 {
        assert_eq!(forged(&app, None).await.status, 403);
    }
    for _ in 0..40 {
        let resp = incoming_call(&app, "+972501110000").await;
        assert!(resp.body.contains("<Record "));
    }
}

#[tokio::test]
async fn the_default_limits_leave_a_busy_call_centre_alone() {
    // Twilio's traffic comes from few addresses: 100 signed callbacks from one IP are fine.
    let app = app_with(Backend::Sqlite, RateLimits::default()).await;
    for _ in 0..100 {
        assert_eq!(signed_status(&app, "54.172.60.1").await.status, 204);
    }
}

#[tokio::test]
async fn with_redis_the_counters_are_shared_by_every_intake_process() {
    let first = limited(Backend::Redis, |l| {
        l.calls = Some(Rate::per_minute(2));
        l.unverified = Some(Rate::per_minute(2));
    })
    .await;
    let second = spawn_sibling(&first).await;
    let caller = "+972503330000";
    for app in [&first, &second] {
        let resp = incoming_call(app, caller).await;
        assert!(resp.body.contains("<Record "), "{}", resp.body);
    }
    for app in [&first, &second] {
        assert_eq!(incoming_call(app, caller).await.body, REJECT_BUSY);
    }
    assert_eq!(first.jobs(JobKind::CallStarted).await.len(), 2);
    // Failed signatures: two through the first process use the IP's budget; the second process
    // learns of it from its own first failure (Redis answers it over the limit: 429).
    let ip = Some("198.51.100.4");
    assert_eq!(forged(&first, ip).await.status, 403);
    assert_eq!(forged(&first, ip).await.status, 403);
    assert_eq!(forged(&first, ip).await.status, 429);
    assert_eq!(forged(&second, ip).await.status, 429);
    assert_eq!(forged(&second, ip).await.status, 429);
}

//! Hostile traffic at the intake (issue #14, items 8, 9, 10 and the Range part of 12): forged
//! requests naming Twilio's address never lock out a correctly signed webhook; a captured
//! signed request replayed with new `I-Twilio-Idempotency-Token`s is still one job; the
//! operator page has the same protective headers wherever it is reached; a byte range at the
//! edge of `u64` is 416, not a panic.

use moked_intake::config::RateLimits;
use moked_jobs::kinds::JobKind;

use crate::helpers::{
    BAILEYS_SECRET, Backend, Response, Signature, TestApp, call_params, sid, spawn_app,
    spawn_app_with,
};
use crate::operator_support::{OP_TOKEN, record_call, spawn_operator_app_with, stored_recording};

/// One of Twilio's shared egress addresses: anyone can name it in `X-Forwarded-For`, and any
/// Twilio account (the attacker's own included) sends from it.
const TWILIO_EGRESS: &str = "54.172.60.1";

async fn forged_requests_naming_twilios_address_never_lock_out_a_signed_webhook(backend: Backend) {
    // The documented defaults: 60 failed checks per minute per client.
    let app = spawn_app_with(backend, |_, intake| intake.limits = RateLimits::default()).await;
    let mut limited = 0;
    for i in 0..70 {
        let signature = if i % 2 == 0 {
            Signature::Missing
        } else {
            Signature::Exactly("forged".into())
        };
        let resp = app
            .webhook("/webhook/call_status")
            .params([("CallSid", "CA1"), ("CallStatus", "completed")])
            .signature(signature)
            .header("X-Forwarded-For", TWILIO_EGRESS)
            .send()
            .await;
        match resp.status {
            403 => {}
            429 => {
                limited += 1;
                assert!(
                    resp.header("retry-after").is_some(),
                    "429 without Retry-After"
                );
            }
            other => panic!("forged request {i}: {other}"),
        }
    }
    assert!(
        limited > 0,
        "the forged flood went over RATE_LIMIT_UNVERIFIED"
    );
    // The genuine webhooks from that address are verified first and answered.
    let call = sid("CA");
    let resp = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&call, "+972501234567"))
        .header("X-Forwarded-For", TWILIO_EGRESS)
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("<Record "), "{}", resp.body);
    let resp = app
        .webhook("/webhook/call_status")
        .params([("CallSid", call.as_str()), ("CallStatus", "completed")])
        .header("X-Forwarded-For", TWILIO_EGRESS)
        .send()
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert_eq!(app.job_total().await, 2);
    // ...while the forgeries are still refused.
    let resp = app
        .webhook("/webhook/call_status")
        .params([("CallSid", "CA1"), ("CallStatus", "completed")])
        .signature(Signature::Missing)
        .header("X-Forwarded-For", TWILIO_EGRESS)
        .send()
        .await;
    assert_eq!(resp.status, 429);
}

/// A webhook path, its form and the kind of job it makes.
type Case = (&'static str, Vec<(&'static str, String)>, JobKind);

async fn a_signed_webhook_replayed_with_new_idempotency_tokens_is_one_job(backend: Backend) {
    let app = spawn_app_with(backend, |_, _| {}).await;
    let (call, msg) = (sid("CA"), sid("SM"));
    let cases: [Case; 4] = [
        (
            "/webhook/incoming_call",
            call_params(&call, "+972501234567"),
            JobKind::CallStarted,
        ),
        (
            "/webhook/call_status",
            vec![
                ("CallSid", call.clone()),
                ("CallStatus", "completed".into()),
                ("SequenceNumber", "3".into()),
            ],
            JobKind::CallStatus,
        ),
        (
            "/webhook/whatsapp/incoming",
            vec![
                ("MessageSid", msg.clone()),
                ("From", "whatsapp:+972501234567".into()),
                ("To", "whatsapp:+14155238886".into()),
                ("Body", "שלום".into()),
            ],
            JobKind::WhatsAppInbound,
        ),
        (
            "/webhook/whatsapp/status",
            vec![
                ("MessageSid", msg.clone()),
                ("MessageStatus", "read".into()),
            ],
            JobKind::WhatsAppStatus,
        ),
    ];
    for (path, params, kind) in cases {
        // One captured request, posted with no token and with three new ones.
        for token in [None, Some("replay-A"), Some("replay-B"), Some("replay-C")] {
            let mut hook = app.webhook(path).params(params.clone());
            if let Some(token) = token {
                hook = hook.idem(token);
            }
            let resp = hook.send().await;
            assert!(
                (200..300).contains(&resp.status),
                "{path} {token:?}: {}",
                resp.status
            );
        }
        let jobs = app.jobs(kind).await;
        assert_eq!(jobs.len(), 1, "{path}: {jobs:?}");
    }
    assert_eq!(app.job_total().await, 4);
}

async fn forged_secrets_from_the_bridges_address_never_lock_out_the_bridge(backend: Backend) {
    let app = spawn_app_with(backend, |_, intake| intake.limits = RateLimits::default()).await;
    let bridge_ip = "10.20.30.40";
    let post = |secret: &'static str, id: &'static str| {
        let body = serde_json::json!({
            "from": "972501234567@s.whatsapp.net",
            "text": "שלום",
            "provider": "baileys",
            "message_id": id,
            "timestamp": 1_764_000_000
        })
        .to_string();
        let request = app
            .client
            .post(app.url("/webhook/whatsapp/baileys"))
            .header("Content-Type", "application/json")
            .header("X-BAILEYS-SECRET", secret)
            .header("X-Forwarded-For", bridge_ip)
            .body(body);
        async move { Response::read(request.send().await.expect("request")).await }
    };
    let mut limited = 0;
    for _ in 0..70 {
        match post("guessed-wrong", "3EB0FORGED").await.status {
            403 => {}
            429 => limited += 1,
            other => panic!("a wrong secret got {other}"),
        }
    }
    assert!(limited > 0, "the guesses went over RATE_LIMIT_UNVERIFIED");
    // The bridge itself, from the same address, is checked first and answered.
    let resp = post(BAILEYS_SECRET, "3EB0GENUINE").await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let jobs = app.payloads(JobKind::WhatsAppInbound).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["provider_sid"], "3EB0GENUINE");
}

backend_tests!(
    forged_secrets_from_the_bridges_address_never_lock_out_the_bridge,
    forged_requests_naming_twilios_address_never_lock_out_a_signed_webhook,
    a_signed_webhook_replayed_with_new_idempotency_tokens_is_one_job,
);

/// The protective headers of the operator page.
const PAGE_HEADERS: [&str; 4] = [
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
];

async fn headers_of(app: &TestApp, path: &str) -> reqwest::header::HeaderMap {
    let resp = app.client.get(app.url(path)).send().await.expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    resp.headers().clone()
}

#[tokio::test]
async fn the_operator_page_has_the_same_protective_headers_at_ops_and_under_static() {
    let app = spawn_app().await;
    // STATIC_DIR defaults to the repository's static/, which holds the page's sources.
    let repo_static = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let ops = app.static_dir().join("ops");
    std::fs::create_dir_all(&ops).expect("mkdir ops");
    for file in ["index.html", "app.js", "app.css"] {
        std::fs::copy(repo_static.join("ops").join(file), ops.join(file)).expect("copy page");
    }
    let voice = app.static_dir().join("voice_responses");
    std::fs::create_dir_all(&voice).expect("mkdir voice_responses");
    std::fs::write(voice.join("welcome.mp3"), b"ID3 not really audio").expect("write mp3");

    let page = headers_of(&app, "/ops").await;
    assert_eq!(page["cache-control"], "no-store");
    for (served, copy) in [
        ("/ops", "/static/ops/index.html"),
        ("/ops", "/static/ops/"),
        ("/ops/app.js", "/static/ops/app.js"),
        ("/ops/app.css", "/static/ops/app.css"),
    ] {
        let (a, b) = (headers_of(&app, served).await, headers_of(&app, copy).await);
        for name in PAGE_HEADERS.iter().chain(&["cache-control"]) {
            assert_eq!(
                a.get(*name),
                b.get(*name),
                "{name} of {copy} differs from {served}"
            );
        }
    }
    // Twilio's <Play> audio keeps the protective headers but stays cacheable.
    let mp3 = headers_of(&app, "/static/voice_responses/welcome.mp3").await;
    assert_eq!(mp3["content-type"], "audio/mpeg");
    assert!(mp3.get("cache-control").is_none(), "{mp3:?}");
    for name in PAGE_HEADERS {
        assert_eq!(mp3.get(name), page.get(name), "{name}");
    }
}

#[tokio::test]
async fn byte_ranges_at_the_edge_of_u64_are_416_not_a_crash() {
    let store = tempfile::tempdir().expect("store dir");
    let store_url = format!("file://{}", store.path().display());
    let app = spawn_operator_app_with(Backend::Sqlite, |_, intake| {
        intake.recordings_store = Some(store_url.clone());
    })
    .await;
    let (call_sid, rec_sid) = (sid("CA"), sid("RE"));
    record_call(
        &app.db,
        &call_sid,
        "050-123-4567",
        Some("completed"),
        chrono::Utc::now(),
    )
    .await;
    let key = format!("recordings/1/2026/12/{rec_sid}.wav");
    std::fs::create_dir_all(store.path().join("recordings/1/2026/12")).expect("mkdir");
    std::fs::write(store.path().join(&key), [7u8; 64]).expect("write audio");
    stored_recording(&app.db, &call_sid, &rec_sid, &key, 64, None).await;
    let path = format!("/api/recordings/{rec_sid}/audio");
    for range in [
        "bytes=0-18446744073709551615",
        "bytes=18446744073709551615-",
    ] {
        let resp = app
            .client
            .get(app.url(&path))
            .bearer_auth(OP_TOKEN)
            .header("Range", range)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 416, "{range}");
        let body: serde_json::Value = resp.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "range_not_satisfiable", "{range}");
    }
    // The server is still there and serves ranges.
    let resp = app
        .client
        .get(app.url(&path))
        .bearer_auth(OP_TOKEN)
        .header("Range", "bytes=60-")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &[7u8; 4]);
}

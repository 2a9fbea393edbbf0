//! Every row of the webhook table, on every backend: the exact answer, its content type, the
//! job it enqueues (or not), and redeliveries that get the same answer and no second job.

use moked_jobs::kinds::JobKind;

use crate::helpers::{
    BAILEYS_SECRET, Backend, PUBLIC_HOST, Response, TestApp, call_params, sid, spawn_app_with,
};

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
const TWIML: &str = "text/xml; charset=utf-8";

fn incoming_call_twiml() -> String {
    format!(
        "{DECL}<Response><Say language=\"he-IL\" voice=\"Google.he-IL-Wavenet-A\">\
         שלום, ההקלטה מתחילה עכשיו. השאירו הודעה אחרי הצפצוף.</Say><Pause length=\"1\"/>\
         <Record action=\"{PUBLIC_HOST}/webhook/handle_recording\" method=\"POST\" maxLength=\"30\" \
         timeout=\"5\" finishOnKey=\"*\" playBeep=\"true\" \
         recordingStatusCallback=\"{PUBLIC_HOST}/webhook/recording_status\" \
         recordingStatusCallbackEvent=\"completed\"/></Response>"
    )
}

fn after_recording_twiml() -> String {
    format!(
        "{DECL}<Response><Say language=\"he-IL\" voice=\"Google.he-IL-Wavenet-A\">\
         תודה, קיבלנו את ההודעה שלך.</Say><Hangup/></Response>"
    )
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_, _| {}).await
}

fn assert_twiml(resp: &Response, expected: &str) {
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("content-type"), Some(TWIML));
    assert_eq!(resp.body, expected);
}

/// The payload of the one job of `kind` (asserting there is exactly one).
async fn the_one_payload(app: &TestApp, kind: JobKind) -> serde_json::Value {
    let jobs = app.payloads(kind).await;
    assert_eq!(jobs.len(), 1);
    jobs[0].clone()
}

/// An incoming call `call_sid` from +972501234567.
async fn incoming_call(app: &TestApp, call_sid: &str) -> Response {
    app.webhook("/webhook/incoming_call")
        .params(call_params(call_sid, "+972501234567"))
        .send()
        .await
}

/// Posts `body` (JSON) to the Baileys route with `X-BAILEYS-SECRET: secret` when given.
async fn baileys_post(app: &TestApp, secret: Option<&str>, body: &str) -> Response {
    let mut req = app
        .client
        .post(app.url("/webhook/whatsapp/baileys"))
        .header("Content-Type", "application/json");
    if let Some(secret) = secret {
        req = req.header("X-BAILEYS-SECRET", secret);
    }
    Response::read(req.body(body.to_owned()).send().await.expect("request")).await
}

fn recording_params(call_sid: &str, recording_sid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
        ("CallSid", call_sid.into()),
        ("RecordingSid", recording_sid.into()),
        (
            "RecordingUrl",
            format!("https://api.twilio.com/2010-04-01/Accounts/ACaaaa/Recordings/{recording_sid}"),
        ),
        ("RecordingDuration", "12".into()),
    ]
}

async fn incoming_call_answers_the_spoken_greeting_and_enqueues_call_started(backend: Backend) {
    let app = app(backend).await;
    let call = sid("CA");
    assert_twiml(&incoming_call(&app, &call).await, &incoming_call_twiml());
    let job = the_one_payload(&app, JobKind::CallStarted).await;
    assert_eq!(job["call_sid"], call.as_str());
    assert_eq!(job["from"], "+972501234567");
    assert_eq!(job["to"], "+97233334444");
    assert_eq!(job["status"], "ringing");
    assert_eq!(app.job_total().await, 1);
}

async fn a_redelivered_incoming_call_gets_the_same_answer_and_no_second_job(backend: Backend) {
    let app = app(backend).await;
    let call = sid("CA");
    let send = |token: Option<&'static str>| {
        let mut hook = app
            .webhook("/webhook/incoming_call")
            .params(call_params(&call, "+972501234567"));
        if let Some(token) = token {
            hook = hook.idem(token);
        }
        hook.send()
    };
    let first = send(Some("idem-1")).await;
    let again = send(Some("idem-1")).await;
    assert_twiml(&first, &incoming_call_twiml());
    assert_eq!(again.body, first.body);
    // Without a token the natural key (CallSid) still recognises the call.
    let untokened = send(None).await;
    let untokened_again = send(None).await;
    assert_eq!(untokened.body, first.body);
    assert_eq!(untokened_again.body, first.body);
    let jobs = app.jobs(JobKind::CallStarted).await;
    // One job: the CallSid is the key, with or without Twilio's (unsigned) token.
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}

async fn handle_recording_thanks_the_caller_hangs_up_and_enqueues_the_recording(backend: Backend) {
    let app = app(backend).await;
    let (call, rec) = (sid("CA"), sid("RE"));
    let resp = app
        .webhook("/webhook/handle_recording")
        .params(recording_params(&call, &rec))
        .param("Digits", "hangup")
        .send()
        .await;
    assert_twiml(&resp, &after_recording_twiml());
    let job = the_one_payload(&app, JobKind::RecordingProcess).await;
    assert_eq!(job["recording_sid"], rec.as_str());
    assert_eq!(job["call_sid"], call.as_str());
    assert_eq!(job["duration_s"], 12);
    assert!(
        job["recording_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&rec))
    );
}

async fn handle_recording_without_a_recording_still_thanks_and_enqueues_nothing(backend: Backend) {
    let app = app(backend).await;
    let resp = app
        .webhook("/webhook/handle_recording")
        .params([("CallSid", sid("CA").as_str()), ("Digits", "*")])
        .send()
        .await;
    assert_twiml(&resp, &after_recording_twiml());
    assert_eq!(app.job_total().await, 0);
}

async fn recording_status_enqueues_only_when_the_recording_is_completed(backend: Backend) {
    let app = app(backend).await;
    let (call, rec) = (sid("CA"), sid("RE"));
    for status in ["in-progress", "absent"] {
        let resp = app
            .webhook("/webhook/recording_status")
            .params(recording_params(&call, &rec))
            .param("RecordingStatus", status)
            .send()
            .await;
        assert_eq!(resp.status, 204, "{status}: {}", resp.body);
        assert!(resp.body.is_empty());
    }
    assert_eq!(app.job_total().await, 0);
    let resp = app
        .webhook("/webhook/recording_status")
        .params(recording_params(&call, &rec))
        .param("RecordingStatus", "completed")
        .send()
        .await;
    assert_eq!(resp.status, 204);
    let job = the_one_payload(&app, JobKind::RecordingProcess).await;
    assert_eq!(job["recording_sid"], rec.as_str());
}

async fn the_record_action_and_the_status_callback_of_one_recording_make_one_job(backend: Backend) {
    let app = app(backend).await;
    let (call, rec) = (sid("CA"), sid("RE"));
    app.webhook("/webhook/handle_recording")
        .params(recording_params(&call, &rec))
        .idem("token-action")
        .send()
        .await;
    for token in ["token-status", "token-status-retry"] {
        let resp = app
            .webhook("/webhook/recording_status")
            .params(recording_params(&call, &rec))
            .param("RecordingStatus", "completed")
            .idem(token)
            .send()
            .await;
        assert_eq!(resp.status, 204);
    }
    assert_eq!(app.jobs(JobKind::RecordingProcess).await.len(), 1);
    // Another recording of the same call is its own job.
    app.webhook("/webhook/recording_status")
        .params(recording_params(&call, &sid("RE")))
        .param("RecordingStatus", "completed")
        .send()
        .await;
    assert_eq!(app.jobs(JobKind::RecordingProcess).await.len(), 2);
}

async fn call_status_answers_204_and_enqueues_each_status_once(backend: Backend) {
    let app = app(backend).await;
    let call = sid("CA");
    let statuses = [
        ("initiated", "0"),
        ("ringing", "1"),
        ("in-progress", "2"),
        ("completed", "3"),
    ];
    for (status, seq) in statuses.iter().chain(&statuses[3..]) {
        let resp = app
            .webhook("/webhook/call_status")
            .params([
                ("CallSid", call.as_str()),
                ("CallStatus", status),
                ("SequenceNumber", seq),
                ("CallDuration", "42"),
                ("From", "+972501234567"),
                ("To", "+97233334444"),
            ])
            .send()
            .await;
        assert_eq!(resp.status, 204, "{status}: {}", resp.body);
        assert!(resp.body.is_empty());
    }
    let jobs = app.payloads(JobKind::CallStatus).await;
    assert_eq!(jobs.len(), 4, "the redelivered `completed` made no job");
    let completed = jobs.iter().find(|j| j["status"] == "completed");
    let completed = completed.expect("completed status enqueued");
    assert_eq!(completed["sequence"], 3);
    assert_eq!(completed["duration_s"], 42);
    assert_eq!(completed["call_sid"], call.as_str());
}

async fn whatsapp_incoming_answers_empty_twiml_never_json_and_enqueues_the_message(
    backend: Backend,
) {
    let app = app(backend).await;
    let msg = sid("SM");
    let send = || {
        app.webhook("/webhook/whatsapp/incoming")
            .params([
                ("MessageSid", msg.as_str()),
                ("From", "whatsapp:+972501234567"),
                ("To", "whatsapp:+14155238886"),
                ("Body", "שלום, 1+1=2 & 50% off"),
                ("ProfileName", "דנה"),
                ("WaId", "972501234567"),
                ("NumMedia", "1"),
                ("MediaUrl0", "https://api.twilio.com/media/ME1"),
                ("MediaContentType0", "image/jpeg"),
            ])
            .idem("wa-token-1")
            .send()
    };
    let resp = send().await;
    assert_twiml(&resp, &format!("{DECL}<Response/>"));
    assert_eq!(send().await.body, resp.body);
    let m = &the_one_payload(&app, JobKind::WhatsAppInbound).await;
    assert_eq!(m["provider"], "twilio");
    assert_eq!(m["provider_sid"], msg.as_str());
    assert_eq!(m["from"], "whatsapp:+972501234567");
    assert_eq!(m["body"], "שלום, 1+1=2 & 50% off");
    assert_eq!(m["profile_name"], "דנה");
    assert_eq!(m["media"][0]["url"], "https://api.twilio.com/media/ME1");
    assert_eq!(m["media"][0]["content_type"], "image/jpeg");
}

async fn whatsapp_status_answers_204_and_enqueues_each_status_once_with_its_error_code(
    backend: Backend,
) {
    let app = app(backend).await;
    let msg = sid("SM");
    for status in ["sent", "undelivered", "undelivered"] {
        let resp = app
            .webhook("/webhook/whatsapp/status?our_id=0190aaaa")
            .params([
                ("MessageSid", msg.as_str()),
                ("MessageStatus", status),
                ("ErrorCode", if status == "sent" { "" } else { "63016" }),
                ("ErrorMessage", "outside the 24h window"),
            ])
            .send()
            .await;
        assert_eq!(resp.status, 204, "{status}: {}", resp.body);
    }
    let jobs = app.payloads(JobKind::WhatsAppStatus).await;
    assert_eq!(jobs.len(), 2);
    let failed = jobs.iter().find(|j| j["status"] == "undelivered");
    let failed = failed.expect("undelivered enqueued");
    assert_eq!(failed["error_code"], 63016);
    assert_eq!(failed["message_sid"], msg.as_str());
    assert_eq!(failed["our_id"], "0190aaaa");
}

async fn a_baileys_message_with_the_secret_answers_204_and_is_enqueued_once(backend: Backend) {
    let app = app(backend).await;
    let body = serde_json::json!({
        "from": "972501234567@s.whatsapp.net",
        "text": "שלום",
        "provider": "baileys",
        "message_id": "3EB0C0FFEE",
        "timestamp": 1_764_000_000
    })
    .to_string();
    for _ in 0..2 {
        let resp = baileys_post(&app, Some(BAILEYS_SECRET), &body).await;
        assert_eq!(resp.status, 204, "{}", resp.body);
    }
    let job = the_one_payload(&app, JobKind::WhatsAppInbound).await;
    assert_eq!(job["provider"], "baileys");
    assert_eq!(job["provider_sid"], "3EB0C0FFEE");
    assert_eq!(job["body"], "שלום");
}

async fn a_baileys_message_without_the_right_secret_is_403_and_enqueues_nothing(backend: Backend) {
    let app = app(backend).await;
    let body = r#"{"from":"972501234567","text":"x","message_id":"m1"}"#;
    for secret in [None, Some("wrong"), Some("")] {
        let resp = baileys_post(&app, secret, body).await;
        assert_eq!(resp.status, 403, "{secret:?}");
        assert!(resp.body.is_empty());
    }
    assert_eq!(app.job_total().await, 0);
}

backend_tests!(
    incoming_call_answers_the_spoken_greeting_and_enqueues_call_started,
    a_redelivered_incoming_call_gets_the_same_answer_and_no_second_job,
    handle_recording_thanks_the_caller_hangs_up_and_enqueues_the_recording,
    handle_recording_without_a_recording_still_thanks_and_enqueues_nothing,
    recording_status_enqueues_only_when_the_recording_is_completed,
    the_record_action_and_the_status_callback_of_one_recording_make_one_job,
    call_status_answers_204_and_enqueues_each_status_once,
    whatsapp_incoming_answers_empty_twiml_never_json_and_enqueues_the_message,
    whatsapp_status_answers_204_and_enqueues_each_status_once_with_its_error_code,
    a_baileys_message_with_the_secret_answers_204_and_is_enqueued_once,
    a_baileys_message_without_the_right_secret_is_403_and_enqueues_nothing,
);

#[tokio::test]
async fn incoming_call_plays_welcome_mp3_when_it_exists_under_static() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("voice_responses")).expect("mkdir");
    std::fs::write(
        dir.path().join("voice_responses/welcome.mp3"),
        b"ID3\x03\x00fake mp3",
    )
    .expect("write mp3");
    let static_dir = dir.path().to_owned();
    let app = spawn_app_with(Backend::Sqlite, move |_, intake| {
        intake.static_dir = static_dir;
    })
    .await;
    let resp = incoming_call(&app, &sid("CA")).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.starts_with(&format!(
            "{DECL}<Response><Play>{PUBLIC_HOST}/static/voice_responses/welcome.mp3</Play>\
             <Pause length=\"1\"/><Record "
        )),
        "{}",
        resp.body
    );
    assert!(!resp.body.contains("<Say"), "{}", resp.body);
    let mp3 = app
        .client
        .get(app.url("/static/voice_responses/welcome.mp3"))
        .send()
        .await
        .expect("request");
    assert_eq!(mp3.status(), 200);
    assert_eq!(
        mp3.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("audio/mpeg")
    );
}

#[tokio::test]
async fn the_say_voice_setting_is_used_in_every_hebrew_say() {
    let app = spawn_app_with(Backend::Sqlite, |_, intake| {
        intake.say_voice = "Google.he-IL-Standard-C".into();
    })
    .await;
    let call = incoming_call(&app, &sid("CA")).await;
    let thanks = app
        .webhook("/webhook/handle_recording")
        .params([("CallSid", sid("CA"))])
        .send()
        .await;
    for resp in [call, thanks] {
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.body
                .matches("<Say language=\"he-IL\" voice=\"Google.he-IL-Standard-C\">")
                .count(),
            resp.body.matches("<Say").count()
        );
        assert!(resp.body.contains("<Say"));
    }
}

/// Delivery receipts from the Baileys bridge: the same route and secret as its messages, told
/// apart by `"type": "receipt"`, each a `whatsapp.status` job like Twilio's status callback.
mod baileys_receipts {
    use moked_jobs::kinds::JobKind;

    use super::baileys_post as post;
    use crate::helpers::{BAILEYS_SECRET, Backend, spawn_app_with};

    async fn a_baileys_receipt_becomes_one_whatsapp_status_job_and_a_redelivery_none(
        backend: Backend,
    ) {
        let app = spawn_app_with(backend, |_, _| {}).await;
        let delivered = serde_json::json!({
            "type": "receipt",
            "message_id": "3EB0RECEIPT1",
            "status": "delivered",
            "timestamp": 1_764_000_000
        });
        // The bridge redelivers after a lost answer, with its own clock moved on: one job.
        let mut redelivered = delivered.clone();
        redelivered["timestamp"] = 1_764_000_007.into();
        for body in [&delivered, &redelivered] {
            let resp = post(&app, Some(BAILEYS_SECRET), &body.to_string()).await;
            assert_eq!(resp.status, 204, "{}", resp.body);
        }
        let jobs = app.payloads(JobKind::WhatsAppStatus).await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0]["message_sid"], "3EB0RECEIPT1");
        assert_eq!(jobs[0]["status"], "delivered");
        assert_eq!(jobs[0]["received_at"], "2025-11-24T16:00:00.000Z");
        assert!(jobs[0]["our_id"].is_null() && jobs[0]["error_code"].is_null());
        assert!(app.payloads(JobKind::WhatsAppInbound).await.is_empty());
        // The next status of the same message is a job of its own.
        let read = r#"{"type":"receipt","message_id":"3EB0RECEIPT1","status":"read"}"#;
        assert_eq!(post(&app, Some(BAILEYS_SECRET), read).await.status, 204);
        assert_eq!(app.payloads(JobKind::WhatsAppStatus).await.len(), 2);
    }

    async fn a_baileys_receipt_without_the_right_secret_is_403_and_enqueues_nothing(
        backend: Backend,
    ) {
        let app = spawn_app_with(backend, |_, _| {}).await;
        let body = r#"{"type":"receipt","message_id":"3EB0RECEIPT2","status":"read"}"#;
        for secret in [None, Some("wrong"), Some("")] {
            let resp = post(&app, secret, body).await;
            assert_eq!(resp.status, 403, "{secret:?}");
            assert!(resp.body.is_empty());
        }
        assert_eq!(app.job_total().await, 0);
    }

    async fn a_malformed_baileys_receipt_is_400_with_the_reason_and_enqueues_nothing(
        backend: Backend,
    ) {
        let app = spawn_app_with(backend, |_, _| {}).await;
        for (body, reason) in [
            (
                r#"{"type":"receipt","status":"read"}"#,
                "missing message_id",
            ),
            (r#"{"type":"receipt","message_id":"m"}"#, "missing status"),
            (
                r#"{"type":"receipt","message_id":"m","status":"played"}"#,
                "`status` must be one of sent, delivered, read, failed",
            ),
            (
                r#"{"type":"receipt","message_id":"m","status":"read","timestamp":"soon"}"#,
                "`timestamp` must be Unix seconds",
            ),
            (
                r#"{"type":"receipt","message_id":"m","status":"failed","error":{"code":479}}"#,
                "`error` must be a string",
            ),
            (
                r#"{"type":"reaction","message_id":"m","from":"972501234567@s.whatsapp.net"}"#,
                "`type` must be \"message\" or \"receipt\"",
            ),
            (r#"{"type":"receipt","#, "malformed JSON body"),
        ] {
            let resp = post(&app, Some(BAILEYS_SECRET), body).await;
            assert_eq!((resp.status, resp.body.as_str()), (400, reason), "{body}");
        }
        assert_eq!(app.job_total().await, 0);
    }

    backend_tests!(
        a_baileys_receipt_becomes_one_whatsapp_status_job_and_a_redelivery_none,
        a_baileys_receipt_without_the_right_secret_is_403_and_enqueues_nothing,
        a_malformed_baileys_receipt_is_400_with_the_reason_and_enqueues_nothing,
    );
}

//! Malformed input: each class gets its own 4xx (400 malformed or incomplete, 413 over
//! 64 KiB, 415 wrong content type), nothing is enqueued, and no input at all produces a 5xx —
//! except 503 when the queue is down, so that Twilio retries.

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{BAILEYS_SECRET, Response, Signature, TestApp, call_params, sid, spawn_app};

const WEBHOOKS: [&str; 7] = [
    "/webhook/incoming_call",
    "/webhook/handle_recording",
    "/webhook/recording_status",
    "/webhook/call_status",
    "/webhook/whatsapp/incoming",
    "/webhook/whatsapp/status",
    "/webhook/whatsapp/baileys",
];

#[tokio::test]
async fn a_body_over_64_kib_is_413_and_enqueues_nothing() {
    let app = spawn_app().await;
    let big = "x".repeat(64 * 1024 + 1);
    let resp = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"))
        .param("Padding", &big)
        .send()
        .await;
    assert_eq!(resp.status, 413);
    // Exactly 64 KiB is still accepted.
    let mut hook = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"));
    let base_len = crate::helpers::encode_form(
        &call_params("CA00000000000000000000000000000000", "+972501234567")
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect::<Vec<_>>(),
    )
    .len();
    hook = hook.param(
        "Padding",
        &"y".repeat(64 * 1024 - base_len - "&Padding=".len()),
    );
    assert_eq!(hook.send().await.status, 200);
    let resp = app
        .client
        .post(app.url("/webhook/whatsapp/baileys"))
        .header("Content-Type", "application/json")
        .header("X-BAILEYS-SECRET", BAILEYS_SECRET)
        .body(format!(r#"{{"from":"1","message_id":"m","text":"{big}"}}"#))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 413);
    assert_eq!(app.job_total().await, 1);
}

/// Sends a raw HTTP/1.1 request with a chunked body and returns the status code.
async fn chunked_post(app: &TestApp, path: &str, headers: &str, chunks: &[Vec<u8>]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n{headers}\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    for chunk in chunks {
        let frame = format!("{:x}\r\n", chunk.len());
        // The server may answer 413 and close before every chunk is written.
        if stream.write_all(frame.as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

#[tokio::test]
async fn a_chunked_body_growing_past_64_kib_is_413() {
    let app = spawn_app().await;
    let chunks = vec![vec![b'a'; 16 * 1024]; 5];
    let status = chunked_post(
        &app,
        "/webhook/call_status",
        "Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: x\r\n",
        &chunks,
    )
    .await;
    assert_eq!(status, 413);
    let small = chunked_post(
        &app,
        "/webhook/call_status",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        &[b"CallSid=CA1&".to_vec(), b"CallStatus=ringing".to_vec()],
    )
    .await;
    assert_eq!(
        small, 403,
        "a small chunked body is read, then refused unsigned"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_415_and_enqueues_nothing() {
    let app = spawn_app().await;
    for path in &WEBHOOKS[..6] {
        for content_type in [
            Some("application/json"),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let resp = app
                .webhook(path)
                .params(call_params(&sid("CA"), "+972501234567"))
                .content_type(content_type)
                .send()
                .await;
            assert_eq!(resp.status, 415, "{path} {content_type:?}");
        }
    }
    // The Baileys route takes JSON only.
    let resp = app
        .client
        .post(app.url("/webhook/whatsapp/baileys"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-BAILEYS-SECRET", BAILEYS_SECRET)
        .body("from=1&message_id=2")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 415);
    assert_eq!(app.job_total().await, 0);
}

#[tokio::test]
async fn a_malformed_form_is_400_and_enqueues_nothing() {
    let app = spawn_app().await;
    for body in [
        &b"CallSid=%zz"[..],
        b"CallSid=CA1&From=%",
        b"CallSid=%FF%FE",
        b"\xff\xfe=1",
    ] {
        let resp = app
            .webhook("/webhook/incoming_call")
            .raw_body(body)
            .send()
            .await;
        assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(
            resp.body.starts_with("malformed form body"),
            "{}",
            resp.body
        );
    }
    for body in [
        "{not json",
        "[1,2]",
        r#"{"from":"1"}"#,
        r#"{"message_id":"m"}"#,
    ] {
        let resp = app
            .client
            .post(app.url("/webhook/whatsapp/baileys"))
            .header("Content-Type", "application/json")
            .header("X-BAILEYS-SECRET", BAILEYS_SECRET)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 400, "{body}");
    }
    assert_eq!(app.job_total().await, 0);
}

#[tokio::test]
async fn a_signed_webhook_without_its_required_fields_is_400_and_enqueues_nothing() {
    let app = spawn_app().await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            "/webhook/incoming_call",
            &[("From", "+972501234567")],
            "missing CallSid",
        ),
        (
            "/webhook/handle_recording",
            &[("RecordingSid", "RE1")],
            "missing CallSid",
        ),
        (
            "/webhook/recording_status",
            &[("CallSid", "CA1"), ("RecordingStatus", "completed")],
            "missing RecordingSid",
        ),
        (
            "/webhook/call_status",
            &[("CallSid", "CA1")],
            "missing CallStatus",
        ),
        (
            "/webhook/whatsapp/incoming",
            &[("From", "whatsapp:+1")],
            "missing MessageSid",
        ),
        (
            "/webhook/whatsapp/status",
            &[("MessageSid", "SM1")],
            "missing MessageStatus",
        ),
    ];
    for (path, params, reason) in cases {
        let resp = app
            .webhook(path)
            .params(params.iter().copied())
            .send()
            .await;
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.body, reason, "{path}");
    }
    assert_eq!(app.job_total().await, 0);
}

#[tokio::test]
async fn random_bodies_headers_and_signatures_never_get_a_5xx() {
    let app = spawn_app().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d6f6b6564);
    let alphabet: Vec<&[u8]> = vec![
        b"CallSid",
        b"From",
        b"MessageSid",
        b"RecordingStatus",
        b"completed",
        b"%",
        b"%4",
        b"%41",
        b"%ff",
        b"&",
        b"=",
        b"+",
        b"\xd7\xa9",
        b"\xff",
        b"\x00",
        b" ",
        b"{",
        b"}",
        b"\"",
        b":",
        b"message_id",
        b"CA1",
        b"[",
    ];
    let content_types = [
        Some("application/x-www-form-urlencoded"),
        Some("application/x-www-form-urlencoded; charset=utf-8"),
        Some("application/json"),
        Some("text/xml"),
        Some("garbage;;;=="),
        None,
    ];
    for i in 0..400 {
        let path = WEBHOOKS[rng.random_range(0..WEBHOOKS.len())];
        let query = if rng.random_bool(0.2) {
            "?our_id=%zz&x"
        } else {
            ""
        };
        let path = format!("{path}{query}");
        let len = rng.random_range(0..30);
        let body: Vec<u8> = (0..len)
            .flat_map(|_| alphabet[rng.random_range(0..alphabet.len())].to_vec())
            .collect();
        // Sign what the body parses to, when it parses, half of the time.
        let parsed = moked_intake::body::Form::parse(&body).ok();
        let signature = match (&parsed, rng.random_bool(0.5)) {
            (Some(form), true) => Signature::Exactly(moked_jobs::signature::compute(
                crate::helpers::TOKEN,
                &app.public_url(&path),
                form.pairs(),
            )),
            _ => Signature::Exactly("garbage".into()),
        };
        let mut hook = app
            .webhook(&path)
            .raw_body(body.clone())
            .content_type(content_types[rng.random_range(0..content_types.len())])
            .signature(signature);
        if rng.random_bool(0.3) {
            hook = hook.header("X-BAILEYS-SECRET", BAILEYS_SECRET);
        }
        if rng.random_bool(0.2) {
            hook = hook.header("X-Twilio-Webhooks-Signature-Settings", "key=,algorithm=%%");
        }
        if rng.random_bool(0.2) {
            hook = hook.header("X-Forwarded-For", "not-an-ip, , ::1, 999.1.1.1");
        }
        let resp: Response = hook.send().await;
        assert!(
            resp.status < 500,
            "request {i} to {path} with body {:?} got {} {}",
            String::from_utf8_lossy(&body),
            resp.status,
            resp.body
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_4xx() {
    let app = spawn_app().await;
    let get = app
        .client
        .get(app.url("/webhook/incoming_call"))
        .send()
        .await
        .expect("request");
    assert_eq!(get.status(), 405);
    let missing = app
        .client
        .post(app.url("/webhook/nope"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_queue_that_is_down_gets_503_with_a_reason_so_twilio_retries() {
    let app = spawn_app().await;
    // The database queue's pool closed: every enqueue fails at once.
    app.db.close().await;
    let resp = app
        .webhook("/webhook/call_status")
        .params([("CallSid", sid("CA")), ("CallStatus", "ringing".into())])
        .send()
        .await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body, "queue unavailable, retry later");
    assert!(resp.header("retry-after").is_some());
    let resp = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"))
        .send()
        .await;
    assert_eq!(
        resp.status, 503,
        "an incoming call is not answered without its job"
    );
}

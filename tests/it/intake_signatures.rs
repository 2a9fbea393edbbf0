//! Signature verification end to end: 403 with an empty body and nothing enqueued for every
//! missing or wrong signature, the URL signed is PUBLIC_HOST (never the Host header), fail
//! closed without a token, token rotation, SharedKey mode, and requests signed by the
//! official Twilio Python SDK.

use moked_jobs::signature::{compute, compute_sha256};
use secrecy::SecretString;

use crate::helpers::{
    Backend, PUBLIC_HOST, Signature, TOKEN, call_params, sid, spawn_app, spawn_app_with,
    twilio_kit, twilio_python,
};

/// The Twilio webhooks and a valid form for each.
fn every_webhook() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let (call, rec, msg) = (sid("CA"), sid("RE"), sid("SM"));
    vec![
        (
            "/webhook/incoming_call",
            call_params(&call, "+972501234567"),
        ),
        (
            "/webhook/handle_recording",
            vec![
                ("CallSid", call.clone()),
                ("RecordingSid", rec.clone()),
                ("RecordingUrl", format!("https://api.twilio.com/r/{rec}")),
            ],
        ),
        (
            "/webhook/recording_status",
            vec![
                ("CallSid", call.clone()),
                ("RecordingSid", rec.clone()),
                ("RecordingUrl", format!("https://api.twilio.com/r/{rec}")),
                ("RecordingStatus", "completed".into()),
            ],
        ),
        (
            "/webhook/call_status",
            vec![
                ("CallSid", call.clone()),
                ("CallStatus", "completed".into()),
            ],
        ),
        (
            "/webhook/whatsapp/incoming",
            vec![
                ("MessageSid", msg.clone()),
                ("From", "whatsapp:+972501234567".into()),
                ("Body", "hi".into()),
            ],
        ),
        (
            "/webhook/whatsapp/status",
            vec![("MessageSid", msg), ("MessageStatus", "delivered".into())],
        ),
    ]
}

#[tokio::test]
async fn every_webhook_without_a_valid_signature_is_403_with_an_empty_body_and_enqueues_nothing() {
    let app = spawn_app().await;
    for (path, params) in every_webhook() {
        let wrong = [
            Signature::Missing,
            Signature::Exactly(String::new()),
            Signature::Exactly("RSOYDt4T1cUTdK1PDd93/VVr8B8=".into()),
            Signature::Exactly("not base64 at all".into()),
        ];
        for signature in wrong {
            let resp = app
                .webhook(path)
                .params(params.clone())
                .signature(signature.clone())
                .send()
                .await;
            assert_eq!(resp.status, 403, "{path} {signature:?}");
            assert!(resp.body.is_empty(), "{path}: {}", resp.body);
        }
        let other_token = app
            .webhook(path)
            .params(params.clone())
            .token("another-account-token")
            .send()
            .await;
        assert_eq!(other_token.status, 403, "{path}");
    }
    assert_eq!(app.job_total().await, 0);
    // The same requests, signed, are accepted.
    for (path, params) in every_webhook() {
        let resp = app.webhook(path).params(params).send().await;
        assert!(resp.status < 300, "{path}: {} {}", resp.status, resp.body);
    }
}

#[tokio::test]
async fn a_signature_over_the_host_header_instead_of_public_host_is_refused() {
    let app = spawn_app().await;
    let over_host = app.url("/webhook/incoming_call");
    let resp = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"))
        .signature(Signature::OverUrl(over_host))
        .send()
        .await;
    assert_eq!(resp.status, 403);
    // A spoofed Host header equal to the public host changes nothing either.
    let resp = app
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"))
        .header("Host", "moked.test")
        .header("X-Forwarded-Proto", "https")
        .signature(Signature::OverUrl(app.url("/webhook/incoming_call")))
        .send()
        .await;
    assert_eq!(resp.status, 403);
    assert_eq!(app.job_total().await, 0);
}

#[tokio::test]
async fn the_query_string_is_signed_as_received() {
    let app = spawn_app().await;
    let params = [("MessageSid", sid("SM")), ("MessageStatus", "sent".into())];
    let signed_for_other_query = format!("{PUBLIC_HOST}/webhook/whatsapp/status?our_id=a");
    let resp = app
        .webhook("/webhook/whatsapp/status?our_id=b")
        .params(params.clone())
        .signature(Signature::OverUrl(signed_for_other_query))
        .send()
        .await;
    assert_eq!(resp.status, 403);
    // Bytes a re-serialiser would change (`+`, `%41`) are verified exactly as received.
    let resp = app
        .webhook("/webhook/whatsapp/status?our_id=a+b&x=%41&&y")
        .params(params)
        .send()
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
}

#[tokio::test]
async fn every_webhook_is_refused_when_no_auth_token_is_configured() {
    let app = spawn_app_with(Backend::Sqlite, |core, _| core.twilio.auth_token = None).await;
    for (path, params) in every_webhook() {
        let resp = app.webhook(path).params(params.clone()).send().await;
        assert_eq!(resp.status, 403, "{path}");
        let resp = app.webhook(path).params(params).token("").send().await;
        assert_eq!(resp.status, 403, "{path}");
    }
    assert_eq!(app.job_total().await, 0);
}

#[tokio::test]
async fn the_secondary_token_is_accepted_while_the_auth_token_rotates() {
    let app = spawn_app_with(Backend::Sqlite, |_, intake| {
        intake.auth_token_secondary = Some(SecretString::from("old-token"));
    })
    .await;
    for token in [TOKEN, "old-token"] {
        let resp = app
            .webhook("/webhook/call_status")
            .params([("CallSid", sid("CA")), ("CallStatus", "ringing".into())])
            .token(token)
            .send()
            .await;
        assert_eq!(resp.status, 204, "{token}");
    }
    let resp = app
        .webhook("/webhook/call_status")
        .params([("CallSid", sid("CA")), ("CallStatus", "ringing".into())])
        .token("older-token")
        .send()
        .await;
    assert_eq!(resp.status, 403);
}

#[tokio::test]
async fn shared_key_signatures_announced_by_the_settings_header_are_accepted() {
    let app = spawn_app_with(Backend::Sqlite, |_, intake| {
        intake.shared_key = Some(moked_jobs::signature::SharedKey {
            id: Some("webhooks_sharedkey_1".into()),
            secret: SecretString::from("shared-secret"),
        });
    })
    .await;
    let params = vec![
        ("CallSid".to_owned(), sid("CA")),
        ("CallStatus".to_owned(), "ringing".to_owned()),
    ];
    let url = format!("{PUBLIC_HOST}/webhook/call_status");
    let sha256 = compute_sha256("shared-secret", &url, &params);
    let send = |settings: &'static str, signature: String| {
        app.webhook("/webhook/call_status")
            .params(params.clone())
            .header("X-Twilio-Webhooks-Signature-Settings", settings)
            .signature(Signature::Exactly(signature))
            .send()
    };
    let ok = send(
        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        sha256.clone(),
    )
    .await;
    assert_eq!(ok.status, 204);
    let unknown_key = send("key=webhooks_sharedkey_2,algorithm=HMAC_SHA256", sha256).await;
    assert_eq!(unknown_key.status, 403);
    let token_in_shared_mode = send(
        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        compute_sha256(TOKEN, &url, &params),
    )
    .await;
    assert_eq!(token_in_shared_mode.status, 403);
    // The Auth Token keeps working for requests without the settings header.
    let plain = app
        .webhook("/webhook/call_status")
        .params(params.clone())
        .signature(Signature::Exactly(compute(TOKEN, &url, &params)))
        .send()
        .await;
    assert_eq!(plain.status, 204);
}

#[tokio::test]
async fn a_public_host_with_its_default_port_accepts_signatures_without_it() {
    let app = spawn_app_with(Backend::Sqlite, |core, _| {
        core.public_host = "https://moked.test:443".into();
    })
    .await;
    let params = [("CallSid", sid("CA")), ("CallStatus", "ringing".into())];
    let resp = app
        .webhook("/webhook/call_status")
        .params(params)
        .signature(Signature::OverUrl(
            "https://moked.test/webhook/call_status".into(),
        ))
        .send()
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
}

#[tokio::test]
async fn repeated_keys_blank_values_and_hebrew_are_signed_like_twilio_signs_them() {
    let app = spawn_app().await;
    let resp = app
        .webhook("/webhook/whatsapp/incoming")
        .params([
            ("MessageSid", sid("SM").as_str()),
            ("From", "whatsapp:+972501234567"),
            ("Body", "שלום עולם"),
            ("Digits", "2"),
            ("Digits", "1"),
            ("Digits", "2"),
            ("ForwardedFrom", ""),
        ])
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
}

/// Runs `twilio_sign.py` (the official SDK signs) against the app; returns (exit code, stdout).
async fn pypi_signer(app: &crate::helpers::TestApp, args: &[&str]) -> Option<(i32, String)> {
    let py = twilio_python()?;
    let path = args[0];
    let out = tokio::process::Command::new(py)
        .arg(twilio_kit().join("twilio_sign.py"))
        .args(["--public-url", &app.public_url(path)])
        .args(["--target", &app.url(path)])
        .args(["--token", TOKEN])
        .args(&args[1..])
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .await
        .expect("run twilio_sign.py");
    Some((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test]
async fn requests_signed_by_the_official_twilio_python_sdk_are_accepted() {
    let app = spawn_app().await;
    let call = sid("CA");
    let from = "-p=From=+972501234567".to_owned();
    let call_arg = format!("-p=CallSid={call}");
    let Some((code, out)) = pypi_signer(
        &app,
        &[
            "/webhook/incoming_call",
            &call_arg,
            &from,
            "-p=To=+97233334444",
            "-p=CallStatus=ringing",
            "--idem=pypi-1",
            "--expect=200",
        ],
    )
    .await
    else {
        return;
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HTTP 200 text/xml; charset=utf-8"), "{out}");
    assert!(out.contains("<Record action="), "{out}");
    // The same event redelivered: same answer, no second job.
    let (code, out) = pypi_signer(
        &app,
        &[
            "/webhook/incoming_call",
            &call_arg,
            &from,
            "-p=To=+97233334444",
            "--idem=pypi-1",
            "--expect=200",
        ],
    )
    .await
    .expect("python present");
    assert_eq!(code, 0, "{out}");
    // UTF-8, reserved characters and repeated keys on a query-carrying URL.
    let msg = format!("-p=MessageSid={}", sid("SM"));
    let (code, out) = pypi_signer(
        &app,
        &[
            "/webhook/whatsapp/incoming",
            &msg,
            "-p=From=whatsapp:+972501234567",
            "-p=Body=שלום, 1+1=2 & it's \"fine\" 50%",
            "-p=Digits=2",
            "-p=Digits=1",
            "-p=ProfileName=",
            "--expect=200",
        ],
    )
    .await
    .expect("python present");
    assert_eq!(code, 0, "{out}");
    let sm = format!("-p=MessageSid={}", sid("SM"));
    let (code, out) = pypi_signer(
        &app,
        &[
            "/webhook/whatsapp/status?our_id=it's+ok",
            &sm,
            "-p=MessageStatus=read",
            "--expect=204",
        ],
    )
    .await
    .expect("python present");
    assert_eq!(code, 0, "{out}");
    // And what it signs wrongly (or not at all) is refused.
    for flag in ["--bad-signature", "--no-signature"] {
        let (code, out) = pypi_signer(
            &app,
            &[
                "/webhook/call_status",
                "-p=CallSid=CA1",
                "-p=CallStatus=ringing",
                flag,
                "--expect=403",
            ],
        )
        .await
        .expect("python present");
        assert_eq!(code, 0, "{flag}: {out}");
    }
    assert_eq!(
        app.jobs(moked_jobs::kinds::JobKind::CallStarted)
            .await
            .len(),
        1
    );
    assert_eq!(
        app.jobs(moked_jobs::kinds::JobKind::WhatsAppInbound)
            .await
            .len(),
        1
    );
    assert_eq!(
        app.jobs(moked_jobs::kinds::JobKind::WhatsAppStatus)
            .await
            .len(),
        1
    );
    assert_eq!(app.job_total().await, 3);
}

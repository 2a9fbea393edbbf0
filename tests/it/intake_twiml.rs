//! Every TwiML answer the intake gives passes `tests/twilio/twiml_check.py`, the oracle
//! built from the official SDK's TwiML model (nesting, attribute names, required text).

use moked_intake::config::RateLimits;
use moked_jobs::pacing::Rate;

use crate::helpers::{Backend, assert_valid_twiml, call_params, sid, spawn_app_with};

#[tokio::test]
async fn every_twiml_answer_passes_the_twilio_sdk_checker() {
    let mp3_dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(mp3_dir.path().join("voice_responses")).expect("mkdir");
    std::fs::write(mp3_dir.path().join("voice_responses/welcome.mp3"), b"ID3").expect("mp3");
    let with_mp3 = mp3_dir.path().to_owned();
    let spoken = spawn_app_with(Backend::Sqlite, |_, intake| {
        intake.limits = RateLimits {
            calls: Some(Rate::per_minute(1)),
            ..RateLimits::OFF
        };
    })
    .await;
    let played = spawn_app_with(Backend::Sqlite, move |_, intake| {
        intake.static_dir = with_mp3
    })
    .await;

    let mut answers = Vec::new();
    for app in [&spoken, &played] {
        let call = app
            .webhook("/webhook/incoming_call")
            .params(call_params(&sid("CA"), "+972501234567"))
            .send()
            .await;
        answers.push(("incoming_call", "voice", call.body));
    }
    let busy = spoken
        .webhook("/webhook/incoming_call")
        .params(call_params(&sid("CA"), "+972501234567"))
        .send()
        .await;
    assert!(busy.body.contains("<Reject"), "{}", busy.body);
    answers.push(("reject busy", "voice", busy.body));
    let thanks = spoken
        .webhook("/webhook/handle_recording")
        .params([("CallSid", sid("CA"))])
        .send()
        .await;
    answers.push(("handle_recording", "voice", thanks.body));
    let empty = spoken
        .webhook("/webhook/whatsapp/incoming")
        .params([
            ("MessageSid", sid("SM")),
            ("From", "whatsapp:+972501234567".into()),
        ])
        .send()
        .await;
    answers.push(("whatsapp/incoming", "messaging", empty.body));

    assert!(answers[0].2.contains("<Say"), "{}", answers[0].2);
    assert!(answers[1].2.contains("<Play>"), "{}", answers[1].2);
    for (name, kind, xml) in answers {
        if !assert_valid_twiml(&xml, kind).await {
            return;
        }
        eprintln!("twiml_check OK: {name}");
    }
}

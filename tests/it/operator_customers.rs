//! `GET /api/customers/{phone}`: the number in any common form finds the same customer, whose
//! calls and WhatsApp messages come newest first; a non-number is 400, a stranger 404.

use chrono::{Duration, Utc};
use moked_jobs::store::customers::Number;
use moked_jobs::store::whatsapp::messages::{Inbound, record_inbound};

use crate::helpers::{Backend, sid};
use crate::operator_support::{get, keys, record_call, sorted, spawn_operator_app};

async fn a_customer_timeline_merges_calls_and_messages_newest_first(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let now = Utc::now();
    let first_call = sid("CA");
    let second_call = sid("CA");
    record_call(
        &app.db,
        &first_call,
        "+972521234567",
        Some("completed"),
        now - Duration::hours(3),
    )
    .await;
    record_inbound(
        &app.db,
        &Inbound {
            provider: "twilio".into(),
            provider_sid: sid("SM"),
            from: Number::parse("whatsapp:+972521234567"),
            to: Some(Number::parse("whatsapp:+97233334444")),
            body: "היי, מתי אתם פתוחים מחר?".into(),
            media: Vec::new(),
            profile_name: Some("דנה".into()),
            at: now - Duration::hours(2),
        },
    )
    .await
    .expect("inbound message");
    record_call(
        &app.db,
        &second_call,
        "0521234567",
        None,
        now - Duration::hours(1),
    )
    .await;

    for form in [
        "%2B972521234567",
        "+972521234567",
        "052-123-4567",
        "972521234567",
        "whatsapp:%2B972521234567",
    ] {
        let a = get(&app, &format!("/api/customers/{form}")).await;
        assert_eq!(a.status, 200, "{form}: {}", a.text);
        assert_eq!(
            keys(&a.json),
            sorted(&["phone", "last_inbound_at", "timeline"])
        );
        assert_eq!(a.json["phone"], "+972521234567", "{form}");
        assert!(a.json["last_inbound_at"].is_string());
        let timeline = a.json["timeline"].as_array().expect("timeline");
        assert_eq!(timeline.len(), 3, "{}", a.text);
        for t in timeline {
            assert_eq!(
                keys(t),
                sorted(&["at", "type", "id", "direction", "status", "summary"])
            );
        }
        let order: Vec<(&str, &str)> = timeline
            .iter()
            .map(|t| {
                (
                    t["type"].as_str().unwrap_or(""),
                    t["id"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(order[0], ("call", second_call.as_str()));
        assert_eq!(order[1].0, "message");
        assert_eq!(order[2], ("call", first_call.as_str()));
        assert_eq!(timeline[1]["summary"], "היי, מתי אתם פתוחים מחר?");
        assert_eq!(timeline[1]["direction"], "inbound");
    }
    let limited = get(&app, "/api/customers/+972521234567?limit=1").await;
    assert_eq!(limited.json["timeline"].as_array().map(Vec::len), Some(1));

    get(&app, "/api/customers/hello")
        .await
        .assert_error(400, "invalid_number");
    get(&app, "/api/customers/+972521234567?limit=0")
        .await
        .assert_error(400, "bad_request");
    get(&app, "/api/customers/+972529999999")
        .await
        .assert_error(404, "not_found");
}

backend_tests!(a_customer_timeline_merges_calls_and_messages_newest_first);

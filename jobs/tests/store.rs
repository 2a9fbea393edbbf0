//! The CRM store against both databases: every test body runs once on a fresh SQLite file and
//! once on a fresh Postgres database (`sqlite::…` and `postgres::…` in the output).
//!
//! Callbacks are replayed out of order and duplicated on purpose: the store must end in the same
//! state whatever order the queue delivered them in. Times are fixed instants, never the clock,
//! and nothing sleeps.

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use moked_jobs::phone::E164;
use moked_jobs::store::Db;
use moked_jobs::store::business::{self, DEFAULT_BUSINESS};
use moked_jobs::store::calls::{self, CallStart, CallStatusChange};
use moked_jobs::store::customers::{self, Number, TimelineKind};
use moked_jobs::store::error::StoreError;
use moked_jobs::store::whatsapp::messages::{self, Inbound, Media, NewOutbound};
use moked_jobs::store::whatsapp::statuses::{self, StatusCallback, StatusChange, StatusOutcome};

use moked_testkit::Store;

/// Runs `body` on a world's database, then drops the database even when the body panicked.
async fn in_world<F, Fut>(world: Store, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body(world.db.clone())).await;
    world.close().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// One `#[tokio::test]` per body and database.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::in_world(super::Store::sqlite().await, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::in_world(super::Store::postgres().await, super::$name).await;
                }
            )*
        }
    };
}

on_both_databases!(
    call_status_ends_completed_after_out_of_order_and_duplicate_callbacks_each_recorded_once,
    a_terminal_call_status_is_final_and_keeps_its_end_time,
    a_status_callback_before_call_started_creates_the_call_and_call_started_fills_its_links,
    an_unknown_call_status_is_kept_as_an_event_and_never_becomes_the_status,
    a_caller_number_that_does_not_parse_is_kept_raw_and_links_no_customer,
    the_call_timeline_has_events_in_time_order_recordings_and_the_transcript,
    an_unknown_business_number_is_recorded_on_the_default_business_once,
    a_known_business_number_files_calls_under_its_business,
    customers_are_unique_per_business_and_keep_their_first_name,
    an_inbound_message_is_stored_once_per_provider_sid_with_its_media,
    last_inbound_at_only_moves_forward,
    an_inbound_sender_that_does_not_parse_links_no_customer,
    whatsapp_statuses_out_of_order_end_at_read_with_each_timestamp_set_once,
    a_failed_message_stays_failed_and_keeps_its_error_code,
    a_status_for_an_unknown_message_sid_is_applied_when_the_sid_attaches,
    a_status_callback_naming_our_id_attaches_the_sid_itself,
    attaching_a_different_sid_to_a_sent_message_is_refused,
    status_callbacks_never_touch_inbound_messages,
    concurrent_status_callbacks_in_every_order_end_at_read,
    an_idempotency_key_returns_the_first_outbound_message,
    an_outbound_message_needs_text_or_a_template_but_not_both,
    the_customer_timeline_lists_calls_and_messages_newest_first,
    concurrent_write_units_each_commit_their_rows_and_a_failing_one_undoes_only_its_own,
    concurrent_incoming_calls_each_get_their_call_customer_and_event,
    a_write_unit_that_panics_fails_alone_and_later_units_still_commit,
);

// ---------------------------------------------------------------- helpers

/// A fixed instant `s` seconds after a base time.
fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .expect("valid time")
}

fn e164(raw: &str) -> E164 {
    E164::parse(raw).expect("test numbers parse")
}

const CALLER: &str = "+972501234567";
const OUR_NUMBER: &str = "+97231234567";

fn start(call_sid: &str, at: DateTime<Utc>) -> CallStart {
    CallStart {
        call_sid: call_sid.into(),
        from: Number::parse(CALLER),
        to: Number::parse(OUR_NUMBER),
        status: Some("ringing".into()),
        at,
    }
}

fn status(call_sid: &str, status: &str, sequence: i64, at: DateTime<Utc>) -> CallStatusChange {
    CallStatusChange {
        call_sid: call_sid.into(),
        status: status.into(),
        sequence: Some(sequence),
        duration_s: (status == "completed").then_some(42),
        from: None,
        to: None,
        at,
    }
}

fn inbound(sid: &str, from: &str, at: DateTime<Utc>) -> Inbound {
    Inbound {
        provider: "twilio".into(),
        provider_sid: sid.into(),
        from: Number::parse(&format!("whatsapp:{from}")),
        to: Some(Number::parse(&format!("whatsapp:{OUR_NUMBER}"))),
        body: "שלום, אפשר לקבוע פגישה?".into(),
        media: Vec::new(),
        profile_name: Some("Dana".into()),
        at,
    }
}

fn outbound(id: &str) -> NewOutbound {
    NewOutbound {
        id: id.into(),
        provider: "twilio".into(),
        to: e164(CALLER),
        from: None,
        body: Some("תודה, נחזור אליך".into()),
        media: Vec::new(),
        content_sid: None,
        content_variables: None,
        idempotency_key: None,
        business_id: None,
    }
}

fn callback(sid: &str, status: &str, at: DateTime<Utc>) -> StatusCallback {
    StatusCallback {
        message_sid: sid.into(),
        change: StatusChange {
            status: status.into(),
            error_code: None,
            error_message: None,
            at,
        },
        our_id: None,
    }
}

/// An outbound message created and attached to `sid` (status `queued`).
async fn sent_message(db: &Db, sid: &str) -> String {
    let id = messages::new_message_id();
    messages::create_outbound(db, &outbound(&id))
        .await
        .expect("create");
    statuses::attach_provider_sid(db, &id, sid, "queued")
        .await
        .expect("attach");
    id
}

async fn message(db: &Db, id: &str) -> messages::WhatsAppMessage {
    messages::get_message(db, id)
        .await
        .expect("read")
        .expect("message exists")
}

async fn count(db: &Db, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(bind.to_owned())
        .fetch_one(db.pool())
        .await
        .expect("count")
}

// ---------------------------------------------------------------- write units

/// Many units at once (on SQLite they share transactions): each caller gets its own value back,
/// every unit that succeeded has its rows, and a unit that failed half-way has none of its own
/// rows while the units committed with it keep theirs.
async fn concurrent_write_units_each_commit_their_rows_and_a_failing_one_undoes_only_its_own(
    db: Db,
) {
    let units = (0..120).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.write_unit(move |conn| {
                Box::pin(async move {
                    let name = format!("unit-{i}");
                    sqlx::query("INSERT INTO business (name, created_at) VALUES ($1, 0)")
                        .bind(name.clone())
                        .execute(&mut *conn)
                        .await?;
                    if i % 10 == 3 {
                        // A second write that breaks UNIQUE (name): the whole unit is undone.
                        sqlx::query("INSERT INTO business (name, created_at) VALUES ($1, 0)")
                            .bind(name)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(i * 2)
                })
            })
            .await
        })
    });
    let results = futures::future::join_all(units).await;
    for (i, r) in results.into_iter().enumerate() {
        let r = r.expect("task");
        if i % 10 == 3 {
            let e = r.expect_err("the unit that broke UNIQUE fails");
            assert!(e.is_unique_violation(), "{e:?}");
        } else {
            assert_eq!(r.expect("unit"), i * 2);
        }
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM business WHERE name LIKE 'unit-%' ORDER BY name")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut expected: Vec<String> = (0..120)
        .filter(|i| i % 10 != 3)
        .map(|i| format!("unit-{i}"))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

/// A unit that panics half-way (a bug) fails without its row, the units beside it commit, and
/// the store keeps working: on SQLite the shared committer survives the panic, on Postgres the
/// panic stays on the caller's task.
async fn a_write_unit_that_panics_fails_alone_and_later_units_still_commit(db: Db) {
    let units = (0..30).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.write_unit(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO business (name, created_at) VALUES ($1, 0)")
                        .bind(format!("p-{i:02}"))
                        .execute(&mut *conn)
                        .await?;
                    assert!(i != 7, "unit 7 breaks");
                    Ok(())
                })
            })
            .await
        })
    });
    let outcomes: Vec<bool> = futures::future::join_all(units)
        .await
        .into_iter()
        .map(|joined| matches!(joined, Ok(Ok(()))))
        .collect();
    let failed: Vec<usize> = (0..30).filter(|&i| !outcomes[i]).collect();
    assert_eq!(failed, [7]);
    let after = db
        .write_unit(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO business (name, created_at) VALUES ('p-after', 0)")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await;
    assert!(after.is_ok(), "{after:?}");
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM business WHERE name LIKE 'p-%' ORDER BY name")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut expected: Vec<String> = (0..30)
        .filter(|&i| i != 7)
        .map(|i| format!("p-{i:02}"))
        .collect();
    expected.push("p-after".into());
    assert_eq!(names, expected);
}

/// The worker's hot path under its concurrency: 200 calls from 50 callers recorded at once give
/// 200 calls, 50 customers and one `ringing` event per call.
async fn concurrent_incoming_calls_each_get_their_call_customer_and_event(db: Db) {
    let calls = (0..200).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut s = start(&format!("CA{i:04}"), t(i));
            s.from = Number::parse(&format!("+97250{:07}", i % 50));
            calls::record_call_started(&db, &s).await
        })
    });
    for r in futures::future::join_all(calls).await {
        let call = r.expect("task").expect("recorded");
        assert!(call.customer_id.is_some(), "{call:?}");
    }
    for (sql, n) in [
        ("SELECT count(*) FROM call WHERE call_sid LIKE $1", 200),
        ("SELECT count(*) FROM customer WHERE phone LIKE $1", 50),
        (
            "SELECT count(*) FROM call_event WHERE status = 'ringing' AND call_sid LIKE $1",
            200,
        ),
    ] {
        let bind = if sql.contains("phone") {
            "+97250%"
        } else {
            "CA%"
        };
        assert_eq!(count(&db, sql, bind).await, n, "{sql}");
    }
}

// ---------------------------------------------------------------- calls

async fn call_status_ends_completed_after_out_of_order_and_duplicate_callbacks_each_recorded_once(
    db: Db,
) {
    calls::record_call_started(&db, &start("CA1", t(0)))
        .await
        .unwrap();
    let deliveries = [
        status("CA1", "completed", 4, t(40)),
        status("CA1", "in-progress", 3, t(41)),
        status("CA1", "completed", 4, t(42)),
        status("CA1", "ringing", 2, t(43)),
        status("CA1", "initiated", 1, t(44)),
        status("CA1", "in-progress", 3, t(45)),
    ];
    let mut outcomes = Vec::new();
    for d in &deliveries {
        outcomes.push(calls::apply_call_status(&db, d).await.unwrap());
    }
    assert!(outcomes[0].advanced, "completed moves a ringing call");
    assert!(outcomes[1..].iter().all(|o| !o.advanced), "{outcomes:?}");
    let seen: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| o.call.as_ref().map(|c| c.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        [Some("completed"); 6],
        "each outcome shows the call as it is"
    );
    let recorded: Vec<bool> = outcomes.iter().map(|o| o.event_recorded).collect();
    assert_eq!(recorded, [true, true, false, true, true, false]);

    let detail = calls::get_call(&db, "CA1").await.unwrap().unwrap();
    assert_eq!(detail.call.status, "completed");
    assert_eq!(detail.call.ended_at, Some(t(40)));
    assert_eq!(detail.call.duration_s, Some(42));
    assert_eq!(detail.call.started_at, t(0));
    let history: Vec<(&str, DateTime<Utc>)> = detail
        .events
        .iter()
        .map(|e| (e.status.as_deref().unwrap_or("?"), e.at))
        .collect();
    assert_eq!(
        history,
        [
            ("ringing", t(0)),
            ("completed", t(40)),
            ("in-progress", t(41)),
            ("ringing", t(43)),
            ("initiated", t(44)),
        ]
    );
}

async fn a_terminal_call_status_is_final_and_keeps_its_end_time(db: Db) {
    calls::record_call_started(&db, &start("CA2", t(0)))
        .await
        .unwrap();
    calls::apply_call_status(&db, &status("CA2", "no-answer", 2, t(30)))
        .await
        .unwrap();
    let late = calls::apply_call_status(&db, &status("CA2", "completed", 3, t(31)))
        .await
        .unwrap();
    assert!(!late.advanced);
    let call = late.call.unwrap();
    assert_eq!(call.status, "no-answer");
    assert_eq!(call.ended_at, Some(t(30)));
    assert_eq!(call.duration_s, None);
    // A late voice webhook does not reopen it either.
    let again = calls::record_call_started(&db, &start("CA2", t(50)))
        .await
        .unwrap();
    assert_eq!(again.status, "no-answer");
    assert_eq!(again.started_at, t(0));
}

async fn a_status_callback_before_call_started_creates_the_call_and_call_started_fills_its_links(
    db: Db,
) {
    let first = calls::apply_call_status(&db, &status("CA3", "in-progress", 2, t(5)))
        .await
        .unwrap();
    let created = first.call.unwrap();
    assert!(first.advanced);
    assert_eq!(created.status, "in-progress");
    assert_eq!((created.business_id, created.customer_id), (None, None));

    let call = calls::record_call_started(&db, &start("CA3", t(6)))
        .await
        .unwrap();
    assert_eq!(call.status, "in-progress", "ringing arrived late");
    assert_eq!(call.started_at, t(5), "the first insert set started_at");
    assert_eq!(call.from.as_deref(), Some(CALLER));
    assert_eq!(call.to.as_deref(), Some(OUR_NUMBER));
    let detail = calls::get_call(&db, "CA3").await.unwrap().unwrap();
    assert_eq!(detail.business.unwrap().name, DEFAULT_BUSINESS);
    assert_eq!(detail.customer.unwrap().phone, CALLER);
}

async fn an_unknown_call_status_is_kept_as_an_event_and_never_becomes_the_status(db: Db) {
    calls::record_call_started(&db, &start("CA4", t(0)))
        .await
        .unwrap();
    let odd = calls::apply_call_status(&db, &status("CA4", "Teleported", 2, t(1)))
        .await
        .unwrap();
    assert!(odd.event_recorded && !odd.advanced);
    let detail = calls::get_call(&db, "CA4").await.unwrap().unwrap();
    assert_eq!(detail.call.status, "ringing");
    assert_eq!(
        detail.events.last().and_then(|e| e.status.as_deref()),
        Some("teleported")
    );
}

async fn a_caller_number_that_does_not_parse_is_kept_raw_and_links_no_customer(db: Db) {
    let mut anonymous = start("CA5", t(0));
    anonymous.from = Number::parse("anonymous");
    let call = calls::record_call_started(&db, &anonymous).await.unwrap();
    assert_eq!(call.from.as_deref(), Some("anonymous"));
    assert_eq!(call.customer_id, None);
    assert!(call.business_id.is_some());
    let customers = count(&db, "SELECT COUNT(*) FROM customer WHERE phone <> $1", "").await;
    assert_eq!(customers, 0);
}

async fn the_call_timeline_has_events_in_time_order_recordings_and_the_transcript(db: Db) {
    calls::record_call_started(&db, &start("CA6", t(0)))
        .await
        .unwrap();
    calls::apply_call_status(&db, &status("CA6", "completed", 2, t(60)))
        .await
        .unwrap();
    calls::apply_call_status(&db, &status("CA6", "in-progress", 1, t(30)))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO recording (recording_sid, call_sid, status, source_url, media_location, \
             content_type, size_bytes, duration_s, transcription_status, created_at, stored_at, updated_at) \
         VALUES ('RE1', 'CA6', 'stored', 'https://api.twilio.com/x', 'recordings/RE1.wav', \
             'audio/x-wav', 1000, 12, 'done', $1, $1, $1)",
    )
    .bind(calls_ms(t(61)))
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO transcript (recording_sid, call_sid, text, language, provider, model, created_at) \
         VALUES ('RE1', 'CA6', 'שלום, אני מחפש דירה', 'he', 'openai', 'whisper-1', $1)",
    )
    .bind(calls_ms(t(62)))
    .execute(db.pool())
    .await
    .unwrap();

    let detail = calls::get_call(&db, "CA6").await.unwrap().unwrap();
    let times: Vec<DateTime<Utc>> = detail.events.iter().map(|e| e.at).collect();
    assert_eq!(times, [t(0), t(30), t(60)]);
    assert_eq!(detail.recordings.len(), 1);
    assert_eq!(detail.recordings[0].duration_s, Some(12));
    let transcript = detail.transcript.clone().unwrap();
    assert_eq!(transcript.text, "שלום, אני מחפש דירה");
    assert_eq!(transcript.model.as_deref(), Some("whisper-1"));

    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["call_sid"], "CA6");
    assert_eq!(json["from"], CALLER);
    assert_eq!(json["events"][0]["type"], "status");
    assert!(
        json["recordings"][0].get("source_url").is_none(),
        "Twilio URLs are not served"
    );
    assert!(calls::get_call(&db, "CA-none").await.unwrap().is_none());
}

fn calls_ms(at: DateTime<Utc>) -> i64 {
    moked_jobs::store::to_ms(at)
}

// ---------------------------------------------------------------- businesses and customers

async fn an_unknown_business_number_is_recorded_on_the_default_business_once(db: Db) {
    let number = e164(OUR_NUMBER);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            let number = number.clone();
            tokio::spawn(async move { business::business_for_called(&db, Some(&number)).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every racer got the same business");
    let default = business::default_business(&db).await.unwrap();
    assert_eq!(ids[0], default.id);
    let found = business::find_business_by_number(&db, &number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, DEFAULT_BUSINESS);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM business WHERE name = $1",
            DEFAULT_BUSINESS
        )
        .await,
        1
    );
    // A number that does not parse files under the default business, recording nothing.
    let none = business::business_for_called(&db, None).await.unwrap();
    assert_eq!(none.id, default.id);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM business_number WHERE phone <> $1",
            ""
        )
        .await,
        1
    );
}

async fn a_known_business_number_files_calls_under_its_business(db: Db) {
    let shai = business::ensure_business(&db, "Shai Apartments")
        .await
        .unwrap();
    business::assign_number(&db, shai.id, &e164(OUR_NUMBER))
        .await
        .unwrap();
    let call = calls::record_call_started(&db, &start("CA7", t(0)))
        .await
        .unwrap();
    assert_eq!(call.business_id, Some(shai.id));
    let customer = customers::get_customer(&db, call.customer_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.business_id, shai.id);

    // Redelivered, and from a caller that does not parse, on the number the business owns
    // (Postgres records these in one statement; the outcome is the general path's): one call
    // and one `ringing` event per CallSid, the same customer, no customer for the withheld one.
    let again = calls::record_call_started(&db, &start("CA7", t(5)))
        .await
        .unwrap();
    assert_eq!(
        (
            again.id,
            again.customer_id,
            again.started_at,
            again.updated_at
        ),
        (call.id, call.customer_id, t(0), t(5)),
        "the same row, touched again"
    );
    let mut withheld = start("CA8", t(1));
    withheld.from = Number::parse("anonymous");
    let anon = calls::record_call_started(&db, &withheld).await.unwrap();
    assert_eq!(
        (anon.business_id, anon.customer_id, anon.from.as_deref()),
        (Some(shai.id), None, Some("anonymous"))
    );
    let ended = calls::record_call_started(
        &db,
        &CallStart {
            status: Some("completed".into()),
            ..start("CA9", t(2))
        },
    )
    .await
    .unwrap();
    assert_eq!(ended.customer_id, call.customer_id);
    assert_eq!(
        (ended.status.as_str(), ended.ended_at),
        ("completed", Some(t(2)))
    );
    for (sid, n) in [("CA7", 1), ("CA8", 1), ("CA9", 1)] {
        let events = "SELECT count(*) FROM call_event WHERE call_sid = $1";
        assert_eq!(count(&db, events, sid).await, n, "{sid}");
    }
    let customers = "SELECT count(*) FROM customer WHERE phone = $1";
    assert_eq!(count(&db, customers, CALLER).await, 1);
}

async fn customers_are_unique_per_business_and_keep_their_first_name(db: Db) {
    let a = business::ensure_business(&db, "A").await.unwrap();
    let b = business::ensure_business(&db, "B").await.unwrap();
    let phone = e164("050-123-4567");
    let first = customers::upsert_customer(&db, a.id, &phone, Some("Dana"))
        .await
        .unwrap();
    let again = customers::upsert_customer(&db, a.id, &phone, Some("D."))
        .await
        .unwrap();
    let other = customers::upsert_customer(&db, b.id, &phone, None)
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.name.as_deref(), Some("Dana"));
    assert_ne!(first.id, other.id);
    let named = customers::upsert_customer(&db, b.id, &phone, Some("Dana L."))
        .await
        .unwrap();
    assert_eq!(
        named.name.as_deref(),
        Some("Dana L."),
        "an empty name is filled"
    );
    let rows = customers::find_customers_by_phone(&db, &phone)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|c| c.phone == "+972501234567"));
}

// ---------------------------------------------------------------- inbound WhatsApp

async fn an_inbound_message_is_stored_once_per_provider_sid_with_its_media(db: Db) {
    let mut msg = inbound("SMin1", CALLER, t(10));
    msg.media = vec![Media {
        url: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/SMin1/Media/ME1".into(),
        content_type: Some("image/jpeg".into()),
        location: None,
    }];
    let first = messages::record_inbound(&db, &msg).await.unwrap();
    let again = messages::record_inbound(&db, &msg).await.unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.message.id, again.message.id);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM whatsapp_message WHERE provider_sid = $1",
            "SMin1"
        )
        .await,
        1
    );
    let stored = message(&db, &first.message.id).await;
    assert_eq!(stored.direction, "inbound");
    assert_eq!(stored.status, "received");
    assert_eq!(stored.from.as_deref(), Some(CALLER));
    assert_eq!(stored.to.as_deref(), Some(OUR_NUMBER));
    assert_eq!(stored.media, msg.media);
    let customer = customers::get_customer(&db, stored.customer_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.name.as_deref(), Some("Dana"));
    assert_eq!(customer.last_inbound_at, Some(t(10)));
}

async fn last_inbound_at_only_moves_forward(db: Db) {
    messages::record_inbound(&db, &inbound("SMa", CALLER, t(100)))
        .await
        .unwrap();
    // An older message delivered late does not pull the 24-hour window back.
    messages::record_inbound(&db, &inbound("SMb", CALLER, t(50)))
        .await
        .unwrap();
    let phone = e164(CALLER);
    let customer = &customers::find_customers_by_phone(&db, &phone)
        .await
        .unwrap()[0];
    assert_eq!(customer.last_inbound_at, Some(t(100)));
    messages::record_inbound(&db, &inbound("SMc", CALLER, t(200)))
        .await
        .unwrap();
    let customer = &customers::find_customers_by_phone(&db, &phone)
        .await
        .unwrap()[0];
    assert_eq!(customer.last_inbound_at, Some(t(200)));
}

async fn an_inbound_sender_that_does_not_parse_links_no_customer(db: Db) {
    let mut msg = inbound("SModd", CALLER, t(1));
    msg.from = Number::parse("status@broadcast");
    msg.to = None;
    let stored = messages::record_inbound(&db, &msg).await.unwrap();
    assert_eq!(stored.message.customer_id, None);
    assert_eq!(stored.message.from.as_deref(), Some("status@broadcast"));
    assert_eq!(stored.message.to, None);
    assert!(stored.message.business_id.is_some());
}

// ---------------------------------------------------------------- WhatsApp statuses

async fn whatsapp_statuses_out_of_order_end_at_read_with_each_timestamp_set_once(db: Db) {
    let id = sent_message(&db, "SM1").await;
    let outcomes = [
        statuses::apply_status_callback(&db, &callback("SM1", "sent", t(1))).await,
        statuses::apply_status_callback(&db, &callback("SM1", "read", t(3))).await,
        statuses::apply_status_callback(&db, &callback("SM1", "delivered", t(2))).await,
        statuses::apply_status_callback(&db, &callback("SM1", "read", t(4))).await,
    ]
    .map(Result::unwrap);
    assert_eq!(
        outcomes,
        [
            StatusOutcome::Applied,
            StatusOutcome::Applied,
            StatusOutcome::Unchanged,
            StatusOutcome::Unchanged,
        ]
    );
    let m = message(&db, &id).await;
    assert_eq!(m.status, "read");
    assert_eq!(m.sent_at, Some(t(1)));
    assert_eq!(
        m.read_at,
        Some(t(3)),
        "the duplicate read did not move read_at"
    );
    assert_eq!(
        m.delivered_at,
        Some(t(3)),
        "read before delivered set delivered_at"
    );
    let events = statuses::status_events(&db, "SM1").await.unwrap();
    let kept: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        kept,
        ["sent", "delivered", "read"],
        "each (sid, status) once"
    );
}

async fn a_failed_message_stays_failed_and_keeps_its_error_code(db: Db) {
    let id = sent_message(&db, "SM2").await;
    statuses::apply_status_callback(&db, &callback("SM2", "sent", t(1)))
        .await
        .unwrap();
    let mut failed = callback("SM2", "undelivered", t(2));
    failed.change.error_code = Some(63016);
    failed.change.error_message = Some("outside the 24 hour window".into());
    assert_eq!(
        statuses::apply_status_callback(&db, &failed).await.unwrap(),
        StatusOutcome::Applied
    );
    for late in ["delivered", "read", "failed"] {
        let outcome = statuses::apply_status_callback(&db, &callback("SM2", late, t(3)))
            .await
            .unwrap();
        assert_eq!(outcome, StatusOutcome::Unchanged, "{late}");
    }
    let m = message(&db, &id).await;
    assert_eq!(m.status, "undelivered");
    assert_eq!(m.error_code, Some(63016));
    assert_eq!(
        m.error_message.as_deref(),
        Some("outside the 24 hour window")
    );
    assert_eq!((m.delivered_at, m.read_at), (None, None));
}

async fn a_status_for_an_unknown_message_sid_is_applied_when_the_sid_attaches(db: Db) {
    let id = messages::new_message_id();
    messages::create_outbound(&db, &outbound(&id))
        .await
        .unwrap();
    for (s, at) in [("delivered", t(2)), ("sent", t(1)), ("delivered", t(5))] {
        let outcome = statuses::apply_status_callback(&db, &callback("SM3", s, at))
            .await
            .unwrap();
        assert_eq!(outcome, StatusOutcome::Pending, "{s}");
    }
    assert_eq!(message(&db, &id).await.status, "queued");

    let attached = statuses::attach_provider_sid(&db, &id, "SM3", "accepted")
        .await
        .unwrap();
    assert_eq!(attached.provider_sid.as_deref(), Some("SM3"));
    assert_eq!(attached.status, "delivered");
    assert_eq!(
        attached.sent_at,
        Some(t(1)),
        "each waiting status keeps its own time"
    );
    assert_eq!(attached.delivered_at, Some(t(2)));
    // The send path retrying its attach changes nothing.
    let again = statuses::attach_provider_sid(&db, &id, "SM3", "queued")
        .await
        .unwrap();
    assert_eq!(again, attached);
    assert!(matches!(
        statuses::attach_provider_sid(&db, "no-such-id", "SM9", "queued").await,
        Err(StoreError::NotFound)
    ));
}

async fn a_status_callback_naming_our_id_attaches_the_sid_itself(db: Db) {
    let id = messages::new_message_id();
    messages::create_outbound(&db, &outbound(&id))
        .await
        .unwrap();
    let mut early = callback("SM4", "sent", t(1));
    early.our_id = Some(id.clone());
    assert_eq!(
        statuses::apply_status_callback(&db, &early).await.unwrap(),
        StatusOutcome::Applied
    );
    let m = message(&db, &id).await;
    assert_eq!(m.provider_sid.as_deref(), Some("SM4"));
    assert_eq!(m.status, "sent");
    // The send result arriving afterwards is idempotent and does not regress `sent`.
    let attached = statuses::attach_provider_sid(&db, &id, "SM4", "queued")
        .await
        .unwrap();
    assert_eq!(attached.status, "sent");
}

async fn attaching_a_different_sid_to_a_sent_message_is_refused(db: Db) {
    let id = sent_message(&db, "SM5").await;
    let err = statuses::attach_provider_sid(&db, &id, "SM6", "queued")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let other = messages::new_message_id();
    messages::create_outbound(&db, &outbound(&other))
        .await
        .unwrap();
    let err = statuses::attach_provider_sid(&db, &other, "SM5", "queued")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

async fn status_callbacks_never_touch_inbound_messages(db: Db) {
    let stored = messages::record_inbound(&db, &inbound("SMin2", CALLER, t(1)))
        .await
        .unwrap();
    let outcome = statuses::apply_status_callback(&db, &callback("SMin2", "read", t(2)))
        .await
        .unwrap();
    assert_eq!(outcome, StatusOutcome::Unchanged);
    let m = message(&db, &stored.message.id).await;
    assert_eq!(m.status, "received");
    assert_eq!(m.read_at, None);
}

async fn concurrent_status_callbacks_in_every_order_end_at_read(db: Db) {
    let statuses = ["queued", "sending", "sent", "delivered", "read"];
    for round in 0..4_usize {
        let sid = format!("SMc{round}");
        let id = sent_message(&db, &sid).await;
        let mut order: Vec<(usize, &str)> = statuses.iter().copied().enumerate().collect();
        order.rotate_left(round);
        if round % 2 == 1 {
            order.reverse();
        }
        let tasks: Vec<_> = order
            .into_iter()
            .flat_map(|entry| [entry, entry])
            .map(|(i, s)| {
                let db = db.clone();
                let cb = callback(&sid, s, t(i64::try_from(i).unwrap_or(0)));
                tokio::spawn(async move { statuses::apply_status_callback(&db, &cb).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let m = message(&db, &id).await;
        assert_eq!(m.status, "read", "round {round}");
        assert!(m.sent_at.is_some() && m.delivered_at.is_some() && m.read_at.is_some());
        assert_eq!(statuses::status_events(&db, &sid).await.unwrap().len(), 5);
    }
}

// ---------------------------------------------------------------- outbound WhatsApp

async fn an_idempotency_key_returns_the_first_outbound_message(db: Db) {
    let mut first = outbound(&messages::new_message_id());
    first.idempotency_key = Some("key-1".into());
    let mut second = outbound(&messages::new_message_id());
    second.idempotency_key = Some("key-1".into());
    second.body = Some("a different body".into());
    let a = messages::create_outbound(&db, &first).await.unwrap();
    let b = messages::create_outbound(&db, &second).await.unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.message, b.message);
    assert_eq!(a.message.status, "queued");
    assert_eq!(a.message.to.as_deref(), Some(CALLER));
    assert!(a.message.customer_id.is_some());
    // Retrying with the same id (no key) is also a no-op.
    let c = messages::create_outbound(&db, &first).await.unwrap();
    assert!(!c.created);
    assert_eq!(c.message.id, a.message.id);
}

async fn an_outbound_message_needs_text_or_a_template_but_not_both(db: Db) {
    let mut both = outbound(&messages::new_message_id());
    both.content_sid = Some("HX123".into());
    assert!(matches!(
        messages::create_outbound(&db, &both).await,
        Err(StoreError::Invalid(_))
    ));
    let mut neither = outbound(&messages::new_message_id());
    neither.body = None;
    assert!(matches!(
        messages::create_outbound(&db, &neither).await,
        Err(StoreError::Invalid(_))
    ));
    let mut template = outbound(&messages::new_message_id());
    template.body = None;
    template.content_sid = Some("HX123".into());
    template.content_variables = Some(r#"{"1":"Dana"}"#.into());
    assert!(
        messages::create_outbound(&db, &template)
            .await
            .unwrap()
            .created
    );
}

// ---------------------------------------------------------------- customer timeline

async fn the_customer_timeline_lists_calls_and_messages_newest_first(db: Db) {
    calls::record_call_started(&db, &start("CA10", t(10)))
        .await
        .unwrap();
    messages::record_inbound(&db, &inbound("SMt1", CALLER, t(20)))
        .await
        .unwrap();
    calls::record_call_started(&db, &start("CA30", t(30)))
        .await
        .unwrap();
    calls::apply_call_status(&db, &status("CA30", "completed", 1, t(35)))
        .await
        .unwrap();
    let reply = messages::new_message_id();
    let mut out = outbound(&reply);
    out.business_id = Some(business::default_business(&db).await.unwrap().id);
    messages::create_outbound(&db, &out).await.unwrap();
    sqlx::query("UPDATE whatsapp_message SET created_at = $1 WHERE id = $2")
        .bind(calls_ms(t(40)))
        .bind(reply.clone())
        .execute(db.pool())
        .await
        .unwrap();
    // Someone else's history stays out.
    messages::record_inbound(&db, &inbound("SMt2", "+972529999999", t(50)))
        .await
        .unwrap();

    let timeline = customers::customer_timeline(&db, &e164(CALLER), 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeline.phone, CALLER);
    assert_eq!(timeline.last_inbound_at, Some(t(20)));
    let entries: Vec<(TimelineKind, &str, &str, DateTime<Utc>)> = timeline
        .timeline
        .iter()
        .map(|e| (e.kind, e.direction.as_str(), e.status.as_str(), e.at))
        .collect();
    assert_eq!(
        entries,
        [
            (TimelineKind::Message, "outbound", "queued", t(40)),
            (TimelineKind::Call, "inbound", "completed", t(30)),
            (TimelineKind::Message, "inbound", "received", t(20)),
            (TimelineKind::Call, "inbound", "ringing", t(10)),
        ]
    );
    assert_eq!(timeline.timeline[0].id, reply);
    assert_eq!(
        timeline.timeline[2].summary.as_deref(),
        Some("שלום, אפשר לקבוע פגישה?")
    );
    let json = serde_json::to_value(&timeline).unwrap();
    assert_eq!(json["timeline"][1]["type"], "call");
    assert_eq!(json["timeline"][1]["id"], "CA30");

    let limited = customers::customer_timeline(&db, &e164(CALLER), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(limited.timeline.len(), 2);
    assert!(
        customers::customer_timeline(&db, &e164("+972521111111"), 10)
            .await
            .unwrap()
            .is_none()
    );
}

//! The console's API (#18): today's counts, the queue over time from the cluster-wide
//! counters, the workers and the clock, the filters of the calls and jobs listings, bulk
//! discard and the one search box — each on SQLite, Postgres and Redis.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use moked_jobs::kinds::JobKind;
use moked_jobs::queue::outcomes::{Outcome, OutcomeCount};
use moked_jobs::queue::{JobState, ListQuery, WorkerId};
use moked_jobs::store::Db;
use moked_jobs::store::customers::Number;
use moked_jobs::store::whatsapp::messages::{Inbound, record_inbound};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, sid};
use crate::operator_support::{
    Make, call_started_job, clock_health_job, get, keys, make_jobs, outbound_message, post,
    record_call, sorted, spawn_operator_app, spawn_operator_app_with, stored_recording,
    whatsapp_send_job,
};

/// Moves a stored outbound message to `status` with a provider sid, as callbacks would.
async fn message_status(db: &Db, id: &str, status: &str, provider_sid: &str) {
    sqlx::query("UPDATE whatsapp_message SET status = $1, provider_sid = $2 WHERE id = $3")
        .bind(status)
        .bind(provider_sid)
        .bind(id)
        .execute(db.pool())
        .await
        .expect("set message status");
}

async fn inbound(db: &Db, from: &str, at: chrono::DateTime<Utc>) -> String {
    let provider_sid = sid("SM");
    record_inbound(
        db,
        &Inbound {
            provider: "twilio".into(),
            provider_sid: provider_sid.clone(),
            from: Number::parse(&format!("whatsapp:{from}")),
            to: Some(Number::parse("whatsapp:+97233334444")),
            body: "שלום".into(),
            media: Vec::new(),
            profile_name: None,
            at,
        },
    )
    .await
    .expect("inbound message");
    provider_sid
}

async fn today_counts_calls_and_messages_of_the_local_day_only(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let now = Utc::now();
    let (answered, missed, transcribed, yesterday) = (sid("CA"), sid("CA"), sid("CA"), sid("CA"));
    record_call(&app.db, &answered, "+972501234567", Some("completed"), now).await;
    record_call(&app.db, &missed, "+972501234568", Some("no-answer"), now).await;
    record_call(
        &app.db,
        &transcribed,
        "+972501234569",
        Some("completed"),
        now,
    )
    .await;
    record_call(
        &app.db,
        &yesterday,
        "+972501234560",
        Some("completed"),
        now - Duration::days(2),
    )
    .await;
    stored_recording(&app.db, &answered, &sid("RE"), "k1", 10, None).await;
    stored_recording(
        &app.db,
        &transcribed,
        &sid("RE"),
        "k2",
        10,
        Some("שלום, רציתי לקבוע תור"),
    )
    .await;
    stored_recording(&app.db, &yesterday, &sid("RE"), "k3", 10, Some("old")).await;
    for (status, n) in [
        ("sent", 1),
        ("delivered", 2),
        ("read", 1),
        ("failed", 1),
        ("undelivered", 1),
        ("queued", 1),
    ] {
        for _ in 0..n {
            let id = outbound_message(&app.db, "+972501234567").await;
            message_status(&app.db, &id, status, &sid("SM")).await;
        }
    }
    inbound(&app.db, "+972501234567", now).await;
    inbound(&app.db, "+972501234567", now - Duration::days(2)).await;
    sqlx::query(
        "UPDATE whatsapp_message SET created_at = created_at - 172800000 WHERE created_at < $1",
    )
    .bind((now - Duration::days(1)).timestamp_millis())
    .execute(app.db.pool())
    .await
    .expect("age the old inbound");

    let a = get(&app, "/api/stats/today").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["tz"], "Asia/Jerusalem");
    assert_eq!(keys(&a.json), sorted(&["tz", "since", "calls", "whatsapp"]));
    assert_eq!(
        a.json["calls"],
        json!({"total": 3, "answered": 2, "with_recording": 2, "transcribed": 1})
    );
    assert_eq!(
        a.json["whatsapp"],
        json!({"sent": 4, "delivered": 3, "read": 1, "failed": 2, "received": 1})
    );
    // Midnight in Jerusalem is 22:00 or 21:00 UTC (UTC+2, or +3 in summer), of the last day.
    let since = chrono::DateTime::parse_from_rfc3339(a.json["since"].as_str().expect("since"))
        .expect("rfc3339")
        .to_utc();
    assert!(since <= now && now - since < Duration::hours(24), "{since}");
    assert!(
        matches!(
            since.format("%H:%M:%S").to_string().as_str(),
            "22:00:00" | "21:00:00"
        ),
        "{since}"
    );
}

async fn history_serves_the_counters_every_worker_process_recorded(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    // A second handle on the same queue stands for another worker process.
    let other = moked_jobs::queue::connect(&app.core, &app.db)
        .await
        .expect("second queue handle");
    let minute = Utc::now().timestamp().div_euclid(60);
    let count = |kind: &str, outcome, n| OutcomeCount {
        minute,
        kind: kind.into(),
        outcome,
        n,
    };
    other
        .record_outcomes(&[
            count("call.started", Outcome::Done, 3),
            count("call.started", Outcome::Retry, 1),
            count("whatsapp.send", Outcome::Dead, 2),
        ])
        .await
        .expect("record");
    app.queue
        .record_outcomes(&[count("call.started", Outcome::Done, 2)])
        .await
        .expect("record");

    for (span, n) in [("minute", 60), ("hour", 24)] {
        let a = get(&app, &format!("/api/stats/history?span={span}")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["span"], span);
        let buckets = a.json["buckets"].as_array().expect("buckets");
        assert_eq!(buckets.len(), n, "{span}");
        let last = &buckets[n - 1]["counts"];
        assert_eq!(
            last["call.started"],
            json!({"done": 5, "retry": 1, "dead": 0}),
            "{span}"
        );
        assert_eq!(
            last["whatsapp.send"],
            json!({"done": 0, "retry": 0, "dead": 2}),
            "{span}"
        );
        assert_eq!(
            buckets[0]["counts"],
            json!({}),
            "{span}: older buckets are empty"
        );
    }
    let default = get(&app, "/api/stats/history").await;
    assert_eq!(default.json["span"], "minute");
    get(&app, "/api/stats/history?span=day")
        .await
        .assert_error(400, "bad_request");
}

async fn workers_shows_each_session_its_jobs_and_which_are_stale(backend: Backend) {
    let app = spawn_operator_app_with(backend, |_, intake| {
        intake.worker_stale_after = StdDuration::from_secs(600);
    })
    .await;
    let q = app.queue.as_ref();
    let live = WorkerId::new("worker.1");
    let silent = WorkerId::new("worker.2");
    q.heartbeat(&live).await.expect("heartbeat");
    q.heartbeat(&silent).await.expect("heartbeat");
    let id = q
        .enqueue(clock_health_job())
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    let leases = q
        .fetch(&live, 1, StdDuration::from_millis(500))
        .await
        .expect("fetch");
    assert_eq!(leases.len(), 1);
    age_session(&app, &silent.session).await;

    let a = get(&app, "/api/workers").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["stale_after_s"], 600);
    let sessions = a.json["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{}", a.text);
    let (one, two) = (&sessions[0], &sessions[1]);
    assert_eq!(
        keys(one),
        sorted(&[
            "name",
            "session",
            "started_at",
            "last_seen_at",
            "stale",
            "running"
        ])
    );
    // The session's process start, from its UUIDv7: not after its first sign of life.
    let started = one["started_at"].as_str().expect("started_at");
    let started: chrono::DateTime<chrono::Utc> = started.parse().expect("RFC 3339");
    assert!(started <= chrono::Utc::now(), "{started}");
    assert!(
        chrono::Utc::now() - started < chrono::Duration::minutes(5),
        "{started}"
    );
    assert_eq!(
        (
            one["name"].clone(),
            one["session"].clone(),
            one["stale"].clone()
        ),
        (json!("worker.1"), json!(live.session), json!(false))
    );
    assert_eq!(one["running"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["running"][0]["id"], id.as_str());
    assert_eq!(one["running"][0]["kind"], "clock.health");
    assert!(one["running"][0]["started_at"].is_string());
    assert_eq!(
        (two["name"].clone(), two["stale"].clone()),
        (json!("worker.2"), json!(true))
    );
    assert_eq!(two["running"], json!([]));
}

/// Makes a session look silent for an hour, in whichever backend holds it.
async fn age_session(app: &TestApp, session: &str) {
    let hour_ago = (Utc::now() - Duration::hours(1)).timestamp_millis();
    match &app.core.queue {
        moked_jobs::config::QueueBackend::Database => {
            sqlx::query("UPDATE worker_sessions SET heartbeat_at = $1 WHERE session = $2")
                .bind(hour_ago)
                .bind(session)
                .execute(app.db.pool())
                .await
                .expect("age session");
        }
        moked_jobs::config::QueueBackend::Redis(_) => {
            let client = ::redis::Client::open(crate::helpers::redis_url()).expect("redis");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            ::redis::cmd("ZADD")
                .arg(format!("{}:sessions", app.core.queue_prefix))
                .arg(hour_ago)
                .arg(session)
                .query_async::<i64>(&mut conn)
                .await
                .expect("age session");
        }
    }
}

async fn calls_filter_by_local_day_status_and_transcript(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    // 23:30 in Jerusalem on 14 Jan 2026 is 21:30 UTC: the 14th there, whatever UTC says.
    let late = chrono::DateTime::parse_from_rfc3339("2026-01-14T21:30:00Z")
        .unwrap()
        .to_utc();
    let next_day = late + Duration::hours(1);
    let (a, b, c) = (sid("CA"), sid("CA"), sid("CA"));
    record_call(&app.db, &a, "+972501234567", Some("completed"), late).await;
    record_call(
        &app.db,
        &b,
        "+972501234567",
        Some("no-answer"),
        late - Duration::hours(2),
    )
    .await;
    record_call(&app.db, &c, "+972501234567", Some("completed"), next_day).await;
    stored_recording(&app.db, &c, &sid("RE"), "k", 10, Some("שלום")).await;

    let sids = |v: &Value| -> Vec<String> {
        v["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| c["call_sid"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let all = get(&app, "/api/calls").await;
    assert_eq!(sids(&all.json), [c.as_str(), a.as_str(), b.as_str()]);
    let day = get(&app, "/api/calls?date=2026-01-14").await;
    assert_eq!(sids(&day.json), [a.as_str(), b.as_str()], "{}", day.text);
    let done = get(&app, "/api/calls?date=2026-01-14&status=completed").await;
    assert_eq!(sids(&done.json), [a.as_str()]);
    let with = get(&app, "/api/calls?has_transcript=true").await;
    assert_eq!(sids(&with.json), [c.as_str()]);
    let without = get(&app, "/api/calls?has_transcript=false&limit=1").await;
    assert_eq!(sids(&without.json), [a.as_str()]);
    let cursor = without.json["next_cursor"].as_str().expect("more");
    let rest = get(
        &app,
        &format!("/api/calls?has_transcript=false&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(sids(&rest.json), [b.as_str()]);
    assert_eq!(rest.json["next_cursor"], Value::Null);
    get(&app, "/api/calls?date=14-01-2026")
        .await
        .assert_error(400, "bad_request");
    get(&app, "/api/calls?has_transcript=yes")
        .await
        .assert_error(400, "bad_request");
}

async fn jobs_filter_by_error_text_and_discard_in_bulk(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let ids = make_jobs(
        app.queue.as_ref(),
        vec![
            (
                call_started_job("+972501234567"),
                Make::Dead,
                "Twilio 503 Service Unavailable",
            ),
            (
                call_started_job("+972501234567"),
                Make::Dead,
                "database is locked",
            ),
            (whatsapp_send_job(), Make::Dead, "Twilio 21211 invalid To"),
            (
                whatsapp_send_job(),
                Make::Retrying,
                "Twilio 429 Too Many Requests",
            ),
            (clock_health_job(), Make::Queued, ""),
        ],
    )
    .await;
    let found = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut twilio = vec![ids[0].clone(), ids[2].clone(), ids[3].clone()];
    twilio.sort();
    let a = get(&app, "/api/jobs?q=Twilio").await;
    assert_eq!(found(&a.json), twilio, "{}", a.text);
    assert_eq!(a.json["total"], 3);
    let dead = get(&app, "/api/jobs?q=Twilio&state=dead&kind=call.started").await;
    assert_eq!(found(&dead.json), [ids[0].clone()]);
    // Paged: one match per page, the cursor resumes the scan.
    let first = get(&app, "/api/jobs?q=Twilio&state=dead&limit=1").await;
    assert_eq!(first.json["jobs"].as_array().map(Vec::len), Some(1));
    let cursor = first.json["next_cursor"].as_str().expect("more").to_owned();
    let second = get(
        &app,
        &format!("/api/jobs?q=Twilio&state=dead&limit=1&cursor={cursor}"),
    )
    .await;
    let mut both = [found(&first.json), found(&second.json)].concat();
    both.sort();
    let mut dead_twilio = vec![ids[0].clone(), ids[2].clone()];
    dead_twilio.sort();
    assert_eq!(both, dead_twilio);
    let retrying = get(&app, "/api/jobs?state=retrying").await;
    assert_eq!(retrying.json["jobs"][0]["id"], ids[3].as_str());
    let run_at = chrono::DateTime::parse_from_rfc3339(
        retrying.json["jobs"][0]["run_at"].as_str().expect("run_at"),
    )
    .expect("time");
    assert!(
        run_at.to_utc() > Utc::now() + Duration::minutes(50),
        "next retry in an hour"
    );

    let bulk = post(&app, "/api/jobs/discard?state=dead&kind=call.started", None).await;
    assert_eq!(
        (bulk.status, bulk.json.clone()),
        (200, json!({"discarded": 2})),
        "{}",
        bulk.text
    );
    let stats = app.queue.stats().await.expect("stats");
    assert_eq!(
        stats.count(JobState::Dead),
        1,
        "the whatsapp.send job stays"
    );
    assert_eq!(stats.count(JobState::Discarded), 2);
    let queued = post(&app, "/api/jobs/discard?state=queued", None).await;
    assert_eq!(queued.json, json!({"discarded": 1}));
    let again = post(&app, "/api/jobs/discard?state=dead&kind=call.started", None).await;
    assert_eq!(again.json, json!({"discarded": 0}));
    post(&app, "/api/jobs/discard?state=done", None)
        .await
        .assert_error(400, "bad_request");
    post(&app, "/api/jobs/discard?kind=nope", None)
        .await
        .assert_error(400, "bad_request");
    let page = app
        .queue
        .list(&ListQuery {
            state: Some(JobState::Discarded),
            kind: Some(JobKind::CallStarted),
            cursor: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(page.jobs.len(), 2);
}

async fn search_finds_jobs_calls_recordings_messages_and_every_phone_spelling(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let call = sid("CA");
    let recording = sid("RE");
    record_call(
        &app.db,
        &call,
        "+972501234567",
        Some("completed"),
        Utc::now(),
    )
    .await;
    stored_recording(&app.db, &call, &recording, "k", 10, None).await;
    let message = outbound_message(&app.db, "+972501234567").await;
    let message_sid = sid("SM");
    message_status(&app.db, &message, "delivered", &message_sid).await;
    let baileys = "3EB0C767D26A1D8F5A2B";
    let inbound_id = {
        inbound(&app.db, "+972501234567", Utc::now()).await;
        let id: String =
            sqlx::query_scalar("SELECT id FROM whatsapp_message WHERE direction = 'inbound'")
                .fetch_one(app.db.pool())
                .await
                .expect("inbound id");
        sqlx::query(
            "UPDATE whatsapp_message SET provider = 'baileys', provider_sid = $1 WHERE id = $2",
        )
        .bind(baileys)
        .bind(&id)
        .execute(app.db.pool())
        .await
        .expect("baileys id");
        id
    };
    let job = make_jobs(
        app.queue.as_ref(),
        vec![(clock_health_job(), Make::Dead, "boom")],
    )
    .await
    .remove(0);

    let results = |q: &str| {
        let app = &app;
        let q = q.to_owned();
        async move {
            let a = get(app, &format!("/api/search?q={}", urlencode(&q))).await;
            assert_eq!(a.status, 200, "{q}: {}", a.text);
            assert_eq!(a.json["query"], q.trim());
            a.json["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| {
                    (
                        r["type"].as_str().unwrap_or_default().to_owned(),
                        r["id"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let one = |t: &str, id: &str| vec![(t.to_owned(), id.to_owned())];
    assert_eq!(results(&job).await, one("job", &job));
    assert_eq!(results(&call).await, one("call", &call));
    assert_eq!(results(&format!(" {recording} ")).await, one("call", &call));
    assert_eq!(results(&message_sid).await, one("message", &message));
    assert_eq!(results(baileys).await, one("message", &inbound_id));
    assert_eq!(
        results(&message).await,
        one("message", &message),
        "our own message id"
    );
    for spelling in [
        "050-123-4567",
        "+972501234567",
        "0501234567",
        "972501234567",
        "050 1234567",
    ] {
        let r = results(spelling).await;
        assert_eq!(
            r.first(),
            Some(&("customer".to_owned(), "+972501234567".to_owned())),
            "{spelling}: {r:?}"
        );
        assert!(
            r.contains(&("call".to_owned(), call.clone())),
            "{spelling}: {r:?}"
        );
    }
    assert_eq!(results("CA00000000000000000000000000000000").await, vec![]);
    assert_eq!(results("052-000-0000").await, vec![]);
    get(&app, "/api/search?q=")
        .await
        .assert_error(400, "bad_request");
    get(&app, &format!("/api/search?q={}", "x".repeat(201)))
        .await
        .assert_error(400, "bad_request");
}

/// Percent-encodes what the search queries here hold besides letters and digits.
fn urlencode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace(' ', "%20")
}

backend_tests!(
    today_counts_calls_and_messages_of_the_local_day_only,
    history_serves_the_counters_every_worker_process_recorded,
    workers_shows_each_session_its_jobs_and_which_are_stale,
    calls_filter_by_local_day_status_and_transcript,
    jobs_filter_by_error_text_and_discard_in_bulk,
    search_finds_jobs_calls_recordings_messages_and_every_phone_spelling,
);

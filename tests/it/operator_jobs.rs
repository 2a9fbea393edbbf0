//! `/api/jobs…` on every backend: listing with filters and keyset paging (and a cheap
//! `total`), one job with its masked payload and history, retry and discard with their state
//! rules, a retry that re-attempts the job's effect or is refused with the reason (single and
//! bulk), and stats — all in the same JSON as `moked-worker jobs … --json`.

use chrono::Utc;
use moked_jobs::kinds::{JobKind, WhatsAppSend};
use moked_jobs::queue::{NewJob, view};
use moked_jobs::store::Db;
use moked_jobs::store::whatsapp::messages::{get_message, new_message_id};
use moked_jobs::store::whatsapp::statuses::{StatusChange, attach_provider_sid, set_status_by_id};

use crate::helpers::Backend;
use crate::operator_support::{
    Make, call_started_job, clock_health_job, fields, get, keys, make_jobs, outbound_message, post,
    sorted, spawn_operator_app, whatsapp_send_job,
};

/// The fields of a job in a listing, sorted.
fn job_keys() -> Vec<String> {
    fields("id kind state attempts last_error created_at run_at finished_at")
}

async fn listing_filters_by_state_and_kind_and_pages_with_a_cursor(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let mut jobs = Vec::new();
    for _ in 0..5 {
        jobs.push((whatsapp_send_job(), Make::Dead, "Twilio 500 from the fake"));
    }
    jobs.push((clock_health_job(), Make::Dead, "health failed"));
    jobs.push((call_started_job("+972501234567"), Make::Done, ""));
    jobs.push((call_started_job("+972501234568"), Make::Queued, ""));
    let ids = make_jobs(app.queue.as_ref(), jobs).await;

    let all = get(&app, "/api/jobs").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.json["total"], 8);
    assert_eq!(sorted(&["total", "jobs", "next_cursor"]), keys(&all.json));
    for j in all.json["jobs"].as_array().expect("jobs") {
        assert_eq!(keys(j), job_keys(), "{j}");
    }

    // Dead whatsapp.send jobs, two per page: 2 + 2 + 1, each page's total the filter's count.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/jobs?state=dead&kind=whatsapp.send&limit=2&cursor={c}"),
            None => "/api/jobs?state=dead&kind=whatsapp.send&limit=2".to_owned(),
        };
        let page = get(&app, &path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.json["total"], 5);
        for j in page.json["jobs"].as_array().expect("jobs") {
            assert_eq!(j["state"], "dead");
            assert_eq!(j["kind"], "whatsapp.send");
            assert_eq!(j["last_error"], "Twilio 500 from the fake");
            assert_eq!(j["attempts"], 1);
            seen.push(j["id"].as_str().expect("id").to_owned());
        }
        pages += 1;
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = ids[..5].to_vec();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(
        got, want,
        "every dead whatsapp.send job exactly once across the pages"
    );
    // Newest first.
    let mut newest_first = want.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let queued = get(&app, "/api/jobs?state=queued").await;
    assert_eq!(queued.json["total"], 1);
    assert_eq!(queued.json["jobs"][0]["id"], ids[7].as_str());

    // The API answers what the CLI prints: the same view over the same page.
    let page = app
        .queue
        .list(&moked_jobs::queue::ListQuery {
            state: Some(moked_jobs::queue::JobState::Queued),
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(queued.json, serde_json::to_value(&page).unwrap());

    for bad in [
        "/api/jobs?state=sleeping",
        "/api/jobs?kind=nope",
        "/api/jobs?limit=0",
        "/api/jobs?limit=501",
        "/api/jobs?limit=many",
        "/api/jobs?cursor=garbage",
    ] {
        get(&app, bad).await.assert_error(400, "bad_request");
    }
}

async fn a_job_shows_its_masked_payload_and_history_and_unknown_ids_are_404(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let ids = make_jobs(
        app.queue.as_ref(),
        vec![(call_started_job("+972501234567"), Make::Dead, "boom: שגיאה")],
    )
    .await;
    let a = get(&app, &format!("/api/jobs/{}", ids[0])).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut want = job_keys();
    want.extend([
        "history".to_owned(),
        "payload".to_owned(),
        "started_at".to_owned(),
    ]);
    want.sort();
    assert_eq!(keys(&a.json), want);
    assert_eq!(a.json["payload"]["data"]["from"], "+9725****4567");
    assert!(
        !a.text.contains("+972501234567"),
        "a full number leaked: {}",
        a.text
    );
    assert_eq!(a.json["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.json["history"][0]["error"], "boom: שגיאה");
    assert_eq!(a.json["history"][0]["worker"], "test-worker");
    let detail = app.queue.get(&ids[0]).await.expect("get").expect("exists");
    assert_eq!(
        a.json,
        serde_json::to_value(view::detail(&detail)).unwrap(),
        "the CLI's `jobs show --json` view"
    );

    get(&app, "/api/jobs/0190d2a4-0000-7000-8000-00000000dead")
        .await
        .assert_error(404, "not_found");
    post(
        &app,
        "/api/jobs/0190d2a4-0000-7000-8000-00000000dead/retry",
        None,
    )
    .await
    .assert_error(404, "not_found");
    post(
        &app,
        "/api/jobs/0190d2a4-0000-7000-8000-00000000dead/discard",
        None,
    )
    .await
    .assert_error(404, "not_found");
}

async fn retry_and_discard_move_only_jobs_in_a_state_that_allows_it(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let ids = make_jobs(
        app.queue.as_ref(),
        vec![
            (call_started_job("+972501234567"), Make::Dead, "e1"),
            (call_started_job("+972501234568"), Make::Retrying, "e2"),
            (whatsapp_send_job(), Make::Done, ""),
            (whatsapp_send_job(), Make::Queued, ""),
        ],
    )
    .await;
    let (dead, retrying, done, queued) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    let a = post(&app, &format!("/api/jobs/{dead}/retry"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["state"], "queued");
    assert_eq!(a.json["id"], dead.as_str());
    let a = post(&app, &format!("/api/jobs/{retrying}/retry"), None).await;
    assert_eq!(a.json["state"], "queued", "{}", a.text);

    let a = post(&app, &format!("/api/jobs/{done}/retry"), None).await;
    a.assert_error(409, "conflict");
    assert!(a.text.contains("done"), "{}", a.text);
    post(&app, &format!("/api/jobs/{queued}/retry"), None)
        .await
        .assert_error(409, "conflict");

    let a = post(&app, &format!("/api/jobs/{queued}/discard"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["state"], "discarded");
    post(&app, &format!("/api/jobs/{queued}/discard"), None)
        .await
        .assert_error(409, "conflict");
    post(&app, &format!("/api/jobs/{done}/discard"), None)
        .await
        .assert_error(409, "conflict");
}

async fn bulk_retry_takes_every_dead_job_of_one_kind_and_leaves_the_rest(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let ids = make_jobs(
        app.queue.as_ref(),
        vec![
            (call_started_job("+972501234567"), Make::Dead, "e"),
            (call_started_job("+972501234568"), Make::Dead, "e"),
            (call_started_job("+972501234569"), Make::Retrying, "e"),
            (clock_health_job(), Make::Dead, "e"),
        ],
    )
    .await;
    let a = post(&app, "/api/jobs/retry?state=dead&kind=call.started", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json,
        serde_json::json!({"retried": 2, "refused": 0, "refusals": []})
    );
    let state = |id: String| {
        let app = &app;
        async move { get(app, &format!("/api/jobs/{id}")).await.json["state"].clone() }
    };
    assert_eq!(state(ids[0].clone()).await, "queued");
    assert_eq!(state(ids[1].clone()).await, "queued");
    assert_eq!(state(ids[2].clone()).await, "retrying");
    assert_eq!(
        state(ids[3].clone()).await,
        "dead",
        "another kind is untouched"
    );

    // Without a state it means dead (the dead health check is not retried: a new tick
    // supersedes it, and the answer says so); retrying can be asked for; nothing else.
    let a = post(&app, "/api/jobs/retry", None).await;
    assert_eq!(
        (&a.json["retried"], &a.json["refused"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "{}",
        a.text
    );
    assert_eq!(a.json["refusals"][0]["id"], ids[3].as_str());
    assert_eq!(a.json["refusals"][0]["kind"], "clock.health");
    assert!(
        a.json["refusals"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("clock --once health")),
        "{}",
        a.text
    );
    assert_eq!(state(ids[3].clone()).await, "dead");
    let a = post(&app, "/api/jobs/retry?state=retrying", None).await;
    assert_eq!(
        a.json,
        serde_json::json!({"retried": 1, "refused": 0, "refusals": []}),
        "{}",
        a.text
    );
    post(&app, "/api/jobs/retry?state=done", None)
        .await
        .assert_error(400, "bad_request");
    post(&app, "/api/jobs/retry?kind=nope", None)
        .await
        .assert_error(400, "bad_request");
}

/// An outbound message Twilio refused with 21211 before accepting it (as the send path marks it).
async fn refused_message(db: &Db, to: &str) -> String {
    let id = outbound_message(db, to).await;
    set_status_by_id(
        db,
        &id,
        &StatusChange {
            status: "failed".into(),
            error_code: Some(21211),
            error_message: Some("the recipient is not a valid phone number (Twilio 21211)".into()),
            at: Utc::now(),
        },
    )
    .await
    .expect("fail message");
    id
}

fn send_job(message_id: &str) -> NewJob {
    NewJob::new(&WhatsAppSend {
        message_id: message_id.into(),
    })
}

async fn a_retry_re_attempts_the_effect_or_is_refused_with_the_reason(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let refused = refused_message(&app.db, "+972525550002").await;
    let accepted = outbound_message(&app.db, "+972525550003").await;
    attach_provider_sid(
        &app.db,
        &accepted,
        "SM0123456789abcdef0123456789abcdef",
        "delivered",
    )
    .await
    .expect("attach sid");
    let refusal = "the recipient is not a valid phone number (Twilio 21211)";
    let ids = make_jobs(
        app.queue.as_ref(),
        vec![
            (send_job(&refused), Make::Dead, refusal),
            (send_job(&accepted), Make::Dead, "database error: gone"),
            (
                send_job(&new_message_id()),
                Make::Dead,
                "no WhatsApp message",
            ),
            (
                NewJob::raw(JobKind::CallStarted, "{not json"),
                Make::Dead,
                "payload does not decode",
            ),
        ],
    )
    .await;

    // Refused before any sid existed: the message is queued again, then the job; the refusal
    // stays in the job's history.
    let a = post(&app, &format!("/api/jobs/{}/retry", ids[0]), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["state"], "queued");
    assert_eq!(a.json["history"][0]["error"], refusal);
    let m = get_message(&app.db, &refused)
        .await
        .expect("get")
        .expect("message");
    assert_eq!(
        (m.status.as_str(), m.error_code, m.provider_sid),
        ("queued", None, None),
        "the message goes back to queued so the job sends it"
    );

    // Accepted by the provider: a retry would end `done` having sent nothing, so it is refused.
    let a = post(&app, &format!("/api/jobs/{}/retry", ids[1]), None).await;
    a.assert_error(409, "not_retryable");
    let reason = a.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("SM0123456789abcdef0123456789abcdef") && reason.contains("second message"),
        "{reason}"
    );
    assert_eq!(
        get(&app, &format!("/api/jobs/{}", ids[1])).await.json["state"],
        "dead"
    );
    let m = get_message(&app.db, &accepted)
        .await
        .expect("get")
        .expect("message");
    assert_eq!(m.status, "delivered", "untouched");

    // Nothing to send, and a payload no worker can run: refused, with why.
    let a = post(&app, &format!("/api/jobs/{}/retry", ids[2]), None).await;
    a.assert_error(409, "not_retryable");
    assert!(a.text.contains("does not exist"), "{}", a.text);
    let a = post(&app, &format!("/api/jobs/{}/retry", ids[3]), None).await;
    a.assert_error(409, "not_retryable");
    assert!(a.text.contains("payload"), "{}", a.text);

    // Bulk: the same rule per job; the refused ones are reported, the others queued.
    let again = refused_message(&app.db, "+972525550004").await;
    let more = make_jobs(
        app.queue.as_ref(),
        vec![(send_job(&again), Make::Dead, refusal)],
    )
    .await;
    let a = post(&app, "/api/jobs/retry?state=dead&kind=whatsapp.send", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (&a.json["retried"], &a.json["refused"]),
        (&serde_json::json!(1), &serde_json::json!(2)),
        "{}",
        a.text
    );
    let mut listed: Vec<&str> = a.json["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default())
        .collect();
    listed.sort();
    let mut want = vec![ids[1].as_str(), ids[2].as_str()];
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        get(&app, &format!("/api/jobs/{}", more[0])).await.json["state"],
        "queued"
    );
    let m = get_message(&app.db, &again)
        .await
        .expect("get")
        .expect("message");
    assert_eq!(m.status, "queued");
}

async fn stats_count_every_state_per_kind_like_the_cli(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    make_jobs(
        app.queue.as_ref(),
        vec![
            (whatsapp_send_job(), Make::Dead, "e"),
            (clock_health_job(), Make::Done, ""),
            (call_started_job("+972501234567"), Make::Queued, ""),
        ],
    )
    .await;
    let a = get(&app, "/api/jobs/stats").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        keys(&a.json),
        fields("queued running retrying dead done discarded by_kind oldest_queued_age_s")
    );
    assert_eq!(a.json["dead"], 1);
    assert_eq!(a.json["done"], 1);
    assert_eq!(a.json["queued"], 1);
    assert_eq!(a.json["by_kind"]["whatsapp.send"]["dead"], 1);
    assert_eq!(a.json["by_kind"]["call.started"]["queued"], 1);
    assert!(
        a.json["oldest_queued_age_s"]
            .as_f64()
            .is_some_and(|s| s >= 0.0)
    );
    let stats = app.queue.stats().await.expect("stats");
    let cli = serde_json::to_value(view::stats(&stats)).unwrap();
    assert_eq!(a.json["by_kind"], cli["by_kind"]);
    assert_eq!(a.json["dead"], cli["dead"]);
}

backend_tests!(
    listing_filters_by_state_and_kind_and_pages_with_a_cursor,
    a_job_shows_its_masked_payload_and_history_and_unknown_ids_are_404,
    retry_and_discard_move_only_jobs_in_a_state_that_allows_it,
    bulk_retry_takes_every_dead_job_of_one_kind_and_leaves_the_rest,
    a_retry_re_attempts_the_effect_or_is_refused_with_the_reason,
    stats_count_every_state_per_kind_like_the_cli,
);

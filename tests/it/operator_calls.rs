//! `/api/calls…` and the recording audio: newest-first keyset paging, a call's exact shape
//! (events, recordings with a download URL, the Hebrew transcript), the authenticated audio
//! download with byte ranges, and 404s for what does not exist.

use chrono::{Duration, Utc};
use reqwest::Method;

use crate::helpers::TestApp;
use crate::helpers::{Backend, sid};
use crate::operator_support::{
    OP_TOKEN, call, fields, get, keys, record_call, sorted, spawn_operator_app,
    spawn_operator_app_with, stored_recording,
};

/// The recording audio at `path` with the operator token, and a `Range` header when given.
async fn get_audio(app: &TestApp, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path)).bearer_auth(OP_TOKEN);
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    req.send().await.expect("audio")
}

async fn calls_list_newest_first_in_pages_that_never_repeat(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let base = Utc::now() - Duration::hours(1);
    let mut sids = Vec::new();
    for i in 0..5 {
        let call_sid = sid("CA");
        record_call(
            &app.db,
            &call_sid,
            "+972521234567",
            Some("completed"),
            base + Duration::minutes(i),
        )
        .await;
        sids.push(call_sid);
    }
    // Two calls in the same millisecond still page apart (the row id breaks the tie).
    let twin = sid("CA");
    record_call(
        &app.db,
        &twin,
        "+972521234567",
        None,
        base + Duration::minutes(4),
    )
    .await;
    sids.push(twin);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/calls?limit=2&cursor={c}"),
            None => "/api/calls?limit=2".to_owned(),
        };
        let page = get(&app, &path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(keys(&page.json), sorted(&["calls", "next_cursor"]));
        for c in page.json["calls"].as_array().expect("calls") {
            assert_eq!(
                keys(c),
                fields("call_sid status from to started_at ended_at duration_s")
            );
            seen.push(c["call_sid"].as_str().expect("sid").to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    // Newest first: the twin (same time as call 4, inserted later) leads, then 4, 3, 2, 1, 0.
    let want = vec![
        sids[5].clone(),
        sids[4].clone(),
        sids[3].clone(),
        sids[2].clone(),
        sids[1].clone(),
        sids[0].clone(),
    ];
    assert_eq!(seen, want);

    for path in ["/api/calls?cursor=nonsense", "/api/calls?limit=0"] {
        get(&app, path).await.assert_error(400, "bad_request");
    }
}

async fn a_call_shows_its_history_recordings_and_hebrew_transcript(backend: Backend) {
    let store = tempfile::tempdir().expect("store dir");
    let store_url = format!("file://{}", store.path().display());
    let app = spawn_operator_app_with(backend, |_, intake| {
        intake.recordings_store = Some(store_url.clone());
    })
    .await;
    let call_sid = sid("CA");
    let rec_sid = sid("RE");
    let ten_minutes_ago = Utc::now() - Duration::minutes(10);
    record_call(
        &app.db,
        &call_sid,
        "050-123-4567",
        Some("completed"),
        ten_minutes_ago,
    )
    .await;
    let audio: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let key = format!("recordings/1/2026/11/{rec_sid}.wav");
    std::fs::create_dir_all(store.path().join("recordings/1/2026/11")).expect("mkdir");
    std::fs::write(store.path().join(&key), &audio).expect("write audio");
    let hebrew = "שלום, אני רוצה לקבוע תור למחר בבוקר";
    stored_recording(
        &app.db,
        &call_sid,
        &rec_sid,
        &key,
        audio.len() as i64,
        Some(hebrew),
    )
    .await;

    let a = get(&app, &format!("/api/calls/{call_sid}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let c = &a.json;
    assert_eq!(
        keys(c),
        fields(
            "call_sid status from to business customer started_at ended_at events \
             recordings transcript",
        )
    );
    assert_eq!(c["status"], "completed");
    // Operators see real numbers on calls (they are the CRM record to call back).
    assert_eq!(c["from"], "+972501234567");
    assert_eq!(c["customer"]["phone"], "+972501234567");
    assert!(c["business"]["name"].is_string(), "{c}");
    assert!(c["ended_at"].is_string());
    let statuses: Vec<&str> = c["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            assert_eq!(keys(e), sorted(&["status", "at"]));
            e["status"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(statuses, ["ringing", "completed", "recording.stored"]);
    let r = &c["recordings"][0];
    assert_eq!(
        keys(r),
        fields("recording_sid status duration_s stored_at size_bytes download_url")
    );
    assert_eq!(r["status"], "stored");
    assert_eq!(r["size_bytes"], 2048);
    let url = r["download_url"].as_str().expect("download_url");
    assert_eq!(
        url,
        format!("https://moked.test/api/recordings/{rec_sid}/audio")
    );
    assert!(
        !a.text.contains("api.twilio.com"),
        "Twilio's URL is never shown"
    );
    assert_eq!(
        c["transcript"],
        serde_json::json!({"text": hebrew, "language": "he", "provider": "openai", "model": "gpt-4o-transcribe"})
    );

    // The audio, whole and in ranges, only with the token.
    let path = format!("/api/recordings/{rec_sid}/audio");
    let whole = get_audio(&app, &path, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "audio/x-wav");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), &audio[..]);
    let part = get_audio(&app, &path, Some("bytes=100-199")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/2048");
    assert_eq!(
        part.bytes().await.expect("bytes").as_ref(),
        &audio[100..200]
    );
    let tail = get_audio(&app, &path, Some("bytes=-48")).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.expect("bytes").as_ref(), &audio[2000..]);
    call(&app, Method::GET, &path, None, None, &[])
        .await
        .assert_error(401, "unauthorized");
    for unknown in [
        "/api/recordings/RE-unknown/audio",
        "/api/calls/CA-never-seen",
    ] {
        get(&app, unknown).await.assert_error(404, "not_found");
    }
}

async fn without_a_recordings_store_recordings_have_no_download_url(backend: Backend) {
    let app = spawn_operator_app(backend).await;
    let call_sid = sid("CA");
    let rec_sid = sid("RE");
    record_call(
        &app.db,
        &call_sid,
        "+972521234567",
        Some("completed"),
        Utc::now(),
    )
    .await;
    stored_recording(&app.db, &call_sid, &rec_sid, "recordings/x.wav", 10, None).await;
    let a = get(&app, &format!("/api/calls/{call_sid}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.json["recordings"][0]["download_url"].is_null(),
        "{}",
        a.text
    );
    assert!(a.json["transcript"].is_null());
    get(&app, &format!("/api/recordings/{rec_sid}/audio"))
        .await
        .assert_error(404, "recordings_unavailable");
}

backend_tests!(
    calls_list_newest_first_in_pages_that_never_repeat,
    a_call_shows_its_history_recordings_and_hebrew_transcript,
    without_a_recordings_store_recordings_have_no_download_url,
);

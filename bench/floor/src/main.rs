//! The intake floor: the least any signed-webhook intake can do, as a reference for the intake
//! benchmark (bench/floor.sh runs it in bench/harness/ beside bare axum).
//!
//! Per request it reads the form, checks `X-Twilio-Signature` (HMAC-SHA1 over PUBLIC_HOST +
//! path + the sorted pairs; one URL variant, one token) and, with `FLOOR_MODE=push` (the
//! default), appends a short job line to the Redis list `floor:jobs` before answering: 204, or a
//! fixed TwiML `<Record>` for `incoming_call`. Concurrent requests share one `RPUSH` (at most 128
//! jobs a call, 4 calls in flight), as moked's enqueue batches. `FLOOR_MODE=verify` skips Redis.
//!
//! It deliberately leaves out what moked must do and this costs: no deduplication of
//! redeliveries, no job record or state indexes for operators and workers, no strict form
//! errors, request ids, spans, metrics, rate limits, timeouts or TwiML writer. So no product
//! built on the same stack can go faster than this on the same machine; the distance from bare
//! axum to this floor is the price of checking and durably queueing a webhook at all.
//!
//! Env: PORT (8095), PUBLIC_HOST (`http://127.0.0.1:$PORT`), TWILIO_AUTH_TOKEN (the harness's
//! default), REDIS_URL (`redis://127.0.0.1:6391/0`), FLOOR_MODE (`push` | `verify`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use tokio::sync::{Semaphore, mpsc, oneshot};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Redis list the jobs go to.
const LIST: &str = "floor:jobs";
/// At most this many jobs in one `RPUSH`, and this many `RPUSH`es in flight.
const BATCH: usize = 128;
const IN_FLIGHT: usize = 4;

type Push = (String, oneshot::Sender<bool>);

struct Floor {
    public_host: String,
    /// HMAC-SHA1 keyed with the auth token, cloned per request.
    keyed: Hmac<sha1::Sha1>,
    twiml: String,
    /// `None` in `verify` mode.
    pushes: Option<mpsc::Sender<Push>>,
}

async fn webhook(
    State(floor): State<Arc<Floor>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    pairs.sort();
    let mut mac = floor.keyed.clone();
    mac.update(floor.public_host.as_bytes());
    mac.update(uri.path().as_bytes());
    for (name, value) in &pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    let Some(given) = headers.get("x-twilio-signature").and_then(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .ok()
    }) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    if mac.verify_slice(&given).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(pushes) = &floor.pushes {
        let sid = pairs
            .iter()
            .find(|(name, _)| name == "CallSid" || name == "MessageSid")
            .map_or("", |(_, value)| value.as_str());
        let (done, pushed) = oneshot::channel();
        if pushes
            .send((format!("{} {sid}", uri.path()), done))
            .await
            .is_err()
            || pushed.await != Ok(true)
        {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    if uri.path().ends_with("/incoming_call") {
        ([(header::CONTENT_TYPE, "text/xml")], floor.twiml.clone()).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Gathers waiting jobs into one `RPUSH` and answers each job's request once Redis has it.
async fn pusher(mut jobs: mpsc::Receiver<Push>, redis: redis::aio::MultiplexedConnection) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut redis = redis.clone();
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        tokio::spawn(async move {
            let mut rpush = redis::cmd("RPUSH");
            rpush.arg(LIST);
            for (line, _) in &taken {
                rpush.arg(line);
            }
            let ok = rpush.query_async::<i64>(&mut redis).await.is_ok();
            for (_, done) in taken {
                let _ = done.send(ok);
            }
            drop(slot);
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let port = var("PORT").unwrap_or_else(|| "8095".into());
    let public_host = var("PUBLIC_HOST").unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let pushes = match var("FLOOR_MODE").as_deref().unwrap_or("push") {
        "verify" => None,
        "push" => {
            let url = var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6391/0".into());
            let redis = redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?;
            let (tx, rx) = mpsc::channel(4 * BATCH);
            tokio::spawn(pusher(rx, redis));
            Some(tx)
        }
        other => return Err(format!("FLOOR_MODE must be push or verify, not {other}").into()),
    };
    let token =
        var("TWILIO_AUTH_TOKEN").unwrap_or_else(|| "bench-auth-token-0123456789abcdef".into());
    let floor = Floor {
        twiml: format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Record action="{public_host}/webhook/handle_recording" method="POST"/></Response>"#
        ),
        public_host,
        keyed: Hmac::new_from_slice(token.as_bytes())?,
        pushes,
    };
    let app = Router::new()
        .route("/webhook/{*hook}", post(webhook))
        .with_state(Arc::new(floor));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

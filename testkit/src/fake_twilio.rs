//! A scripted, counting fake of Twilio's Messages API (axum on 127.0.0.1:0), shared by the
//! workers' WhatsApp tests (`whatsapp.rs`) and their fault-injection binary (`faults/`).
//!
//! * `POST …/Messages.json` is answered as scripted ([`Step`]: 201, a 4xx/5xx with a Twilio
//!   error body and optional `Retry-After`, create-then-error, create-then-hang, a slow 201, or
//!   a connection reset with or without creating first); every POST is recorded, and every
//!   message that exists at "Twilio" is in [`FakeTwilio::created`], so "exactly one WhatsApp"
//!   is a count, not a hope. [`FakeTwilio::set_delay`] adds Twilio's latency to every answer
//!   (the message exists as soon as the request arrives).
//! * `GET …/Messages.json` lists like Twilio: `To` (and `From` when given) filter, `DateSent>`
//!   at day granularity, newest first, `PageSize` pages linked by `next_page_uri`. Like
//!   Twilio's, the list does not return `StatusCallback`.
//! * `GET …/Messages/{sid}/Media/{media}` serves [`MEDIA_BYTES`] (with Basic auth).
//!
//! A connection reset is real: the listener hands every connection to hyper through a wrapper
//! whose writes fail once the handler cuts it, and the socket has a zero linger, so the client
//! gets an RST and no answer byte.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use axum::{Form, Json, Router};
use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers one `POST Messages.json`.
#[derive(Debug, Clone)]
pub enum Step {
    /// 201 with a fresh sid.
    Create,
    /// 201 with this sid.
    CreateWithSid(&'static str),
    /// An error status with a Twilio error body; `create` first creates the message (the
    /// error came after Twilio accepted it).
    Fail {
        status: u16,
        code: i64,
        retry_after: Option<u64>,
        create: bool,
    },
    /// Never answers (the client times out); `create` first creates the message.
    Hang { create: bool },
    /// Creates the message and answers 201 only after `delay` (past the client's timeout).
    Slow { delay: Duration },
    /// Closes the connection without answering (an RST); `create` first creates the message.
    Reset { create: bool },
}

/// A message that exists at the fake Twilio.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its sid (`SM…`).
    pub sid: String,
    /// `To` of the create (`whatsapp:+…`).
    pub to: String,
    /// `From` of the create.
    pub from: String,
    /// `Body` of the create.
    pub body: String,
    /// When it was created.
    pub at: chrono::DateTime<Utc>,
}

/// What the fake was told and what it saw (the test may read and change it).
#[derive(Default)]
pub struct FakeState {
    /// How the next `POST`s are answered, in order (then 201).
    pub script: VecDeque<Step>,
    /// Scripts for one recipient (`To`), used before `script`.
    pub per_to: HashMap<String, VecDeque<Step>>,
    /// Every POST: when, and its form.
    pub posts: Vec<(Instant, Vec<(String, String)>)>,
    /// Messages that exist at "Twilio".
    pub created: Vec<Created>,
    /// List calls (lookups).
    pub lists: usize,
    /// Requests without Basic auth.
    pub unauthenticated: usize,
    /// Media downloads answered (any status).
    pub media_gets: usize,
    /// Whether the first media download is a 404 (Twilio's media can lag its webhook).
    pub media_404_first: bool,
    /// Latency added to every answer (after the message was created).
    pub delay: Duration,
}

/// The fake, serving until the test's runtime ends.
#[derive(Clone)]
pub struct FakeTwilio {
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
    /// Its base URL (`TWILIO_API_BASE`).
    pub url: String,
}

impl FakeTwilio {
    /// A fake that answers `POST`s as `script` says (then 201).
    pub async fn start(script: Vec<Step>) -> FakeTwilio {
        let state = Arc::new(Mutex::new(FakeState {
            script: script.into(),
            ..FakeState::default()
        }));
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(fake_create).get(fake_list),
            )
            .route(
                "/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}",
                get(fake_media),
            )
            .with_state(state.clone());
        let listener = CuttableListener(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let url = format!("http://{}", listener.0.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<Cut>()).await;
        });
        FakeTwilio { state, url }
    }

    /// Scripts the answers to `POST`s for recipient `to` (E.164).
    pub fn script_for(&self, to: &str, steps: Vec<Step>) {
        self.state
            .lock()
            .unwrap()
            .per_to
            .insert(format!("whatsapp:{to}"), steps.into());
    }

    /// Every answer waits `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// The form of every `POST`, in order.
    pub fn posts(&self) -> Vec<Vec<(String, String)>> {
        self.state
            .lock()
            .unwrap()
            .posts
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// How many `POST`s arrived.
    pub fn post_count(&self) -> usize {
        self.state.lock().unwrap().posts.len()
    }

    /// When each `POST` arrived, in order.
    pub fn post_times(&self) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap()
            .posts
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    /// When each POST for recipient `to` (E.164) arrived, in order.
    pub fn post_times_to(&self, to: &str) -> Vec<Instant> {
        let to = format!("whatsapp:{to}");
        self.state
            .lock()
            .unwrap()
            .posts
            .iter()
            .filter(|(_, f)| field(f, "To") == Some(to.as_str()))
            .map(|(t, _)| *t)
            .collect()
    }

    /// POSTs per recipient (`whatsapp:+…`).
    pub fn posts_per_to(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (_, form) in &self.state.lock().unwrap().posts {
            *counts
                .entry(field(form, "To").unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        counts
    }

    /// The messages that exist at "Twilio", in creation order.
    pub fn created(&self) -> Vec<Created> {
        self.state.lock().unwrap().created.clone()
    }

    /// How many messages exist at "Twilio".
    pub fn created_count(&self) -> usize {
        self.state.lock().unwrap().created.len()
    }

    /// Messages created for recipient `to` (E.164).
    pub fn created_to(&self, to: &str) -> usize {
        let to = format!("whatsapp:{to}");
        self.created().iter().filter(|c| c.to == to).count()
    }

    /// How many list calls (lookups) arrived.
    pub fn lists(&self) -> usize {
        self.state.lock().unwrap().lists
    }
}

/// A fresh Twilio-looking sid: `prefix` (`CA`, `RE`, `SM` …) and 32 hex digits.
pub fn sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh message sid (`SM…`).
pub fn new_sid() -> String {
    sid("SM")
}

/// Twilio's JSON of the message `c` at `status`.
pub fn message_json(c: &Created, status: &str) -> Value {
    json!({
        "sid": c.sid, "status": status, "to": c.to, "from": c.from, "body": c.body,
        "date_created": c.at.to_rfc2822(), "error_code": null, "error_message": null,
        "direction": "outbound-api", "num_media": "0", "num_segments": "1",
    })
}

/// The first value of `name` in a form or query.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn authenticated(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "))
}

async fn fake_create(
    State(state): State<Arc<Mutex<FakeState>>>,
    ConnectInfo(cut): ConnectInfo<Cut>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (step, delay) = {
        let mut s = state.lock().unwrap();
        if !authenticated(&headers) {
            s.unauthenticated += 1;
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
            )
                .into_response();
        }
        s.posts.push((Instant::now(), form.clone()));
        let to = field(&form, "To").unwrap_or_default().to_owned();
        let step = match s.per_to.get_mut(&to).and_then(VecDeque::pop_front) {
            Some(step) => step,
            None => s.script.pop_front().unwrap_or(Step::Create),
        };
        (step, s.delay)
    };
    let create = |sid: String| {
        let c = Created {
            sid,
            to: field(&form, "To").unwrap_or_default().to_owned(),
            from: field(&form, "From").unwrap_or_default().to_owned(),
            body: field(&form, "Body").unwrap_or_default().to_owned(),
            at: Utc::now(),
        };
        state.lock().unwrap().created.push(c.clone());
        c
    };
    let created = match &step {
        Step::Create | Step::Slow { .. } => Some(create(new_sid())),
        Step::CreateWithSid(sid) => Some(create((*sid).to_owned())),
        Step::Fail { create: true, .. }
        | Step::Hang { create: true }
        | Step::Reset { create: true } => Some(create(new_sid())),
        _ => None,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match step {
        Step::Create | Step::CreateWithSid(_) => {
            let c = created.expect("created");
            (StatusCode::CREATED, Json(message_json(&c, "queued"))).into_response()
        }
        Step::Slow { delay } => {
            tokio::time::sleep(delay).await;
            let c = created.expect("created");
            (StatusCode::CREATED, Json(message_json(&c, "queued"))).into_response()
        }
        Step::Fail {
            status,
            code,
            retry_after,
            ..
        } => {
            let status = StatusCode::from_u16(status).unwrap();
            // Twilio's own text for 21211 quotes the number (the masking tests need that).
            let message = match code {
                21211 => format!(
                    "The 'To' number {} is not valid.",
                    field(&form, "To").unwrap_or_default()
                ),
                _ => format!("scripted {}", status.as_u16()),
            };
            let body = Json(json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status.as_u16(),
            }));
            match retry_after {
                Some(s) => (status, [("retry-after", s.to_string())], body).into_response(),
                None => (status, body).into_response(),
            }
        }
        Step::Hang { .. } => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Step::Reset { .. } => {
            // The answer is never written: the connection's next write fails and hyper drops
            // the socket, which the zero linger turns into an RST.
            cut.0.store(true, Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
    }
}

/// The bytes the fake serves as every inbound media file.
pub const MEDIA_BYTES: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg";

async fn fake_media(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap) -> Response {
    let mut s = state.lock().unwrap();
    if !authenticated(&headers) {
        s.unauthenticated += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.media_gets += 1;
    if s.media_404_first && s.media_gets == 1 {
        // Twilio's media can lag the webhook that announced it.
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 20404, "message": "not found", "status": 404})),
        )
            .into_response();
    }
    ([("content-type", "image/jpeg")], MEDIA_BYTES).into_response()
}

async fn fake_list(
    State(state): State<Arc<Mutex<FakeState>>>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = state.lock().unwrap();
    s.lists += 1;
    let to = field(&query, "To").unwrap_or_default().to_owned();
    let from = field(&query, "From");
    let sent_after = field(&query, "DateSent>").and_then(|d| d.parse::<NaiveDate>().ok());
    let page_size: usize = field(&query, "PageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let page: usize = field(&query, "Page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let matching: Vec<Value> = s
        .created
        .iter()
        .rev()
        .filter(|c| c.to == to)
        .filter(|c| from.is_none_or(|f| c.from == f))
        .filter(|c| sent_after.is_none_or(|d| c.at.date_naive() >= d))
        .map(|c| message_json(c, "sent"))
        .collect();
    let messages: Vec<Value> = matching
        .iter()
        .skip(page * page_size)
        .take(page_size)
        .cloned()
        .collect();
    let next_page_uri = ((page + 1) * page_size < matching.len()).then(|| {
        let rest: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter().filter(|(k, _)| k != "Page"))
            .append_pair("Page", &(page + 1).to_string())
            .finish();
        format!("{}?{rest}", uri.path())
    });
    Json(json!({
        "messages": messages, "next_page_uri": next_page_uri, "page": page,
        "page_size": page_size,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Connections the handler can cut.

/// A handle on one connection: set, its writes fail (the answer never leaves).
#[derive(Clone, Debug)]
pub struct Cut(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, CuttableListener>> for Cut {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections carry a [`Cut`] and close with an RST.
pub struct CuttableListener(TcpListener);

impl Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = Cut;

    async fn accept(&mut self) -> (CuttableStream, Cut) {
        loop {
            if let Ok((stream, _)) = self.0.accept().await {
                let _ = stream.set_zero_linger();
                let cut = Cut(Arc::new(AtomicBool::new(false)));
                return (
                    CuttableStream {
                        inner: stream,
                        cut: cut.clone(),
                    },
                    cut,
                );
            }
        }
    }

    fn local_addr(&self) -> io::Result<Cut> {
        Ok(Cut(Arc::new(AtomicBool::new(false))))
    }
}

/// A TCP stream whose writes fail once its [`Cut`] is set.
pub struct CuttableStream {
    inner: TcpStream,
    cut: Cut,
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut.0.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! moked intake: the axum server Twilio calls.
//!
//! It verifies each webhook's signature, answers at once (TwiML or an empty 2xx) and turns the
//! webhook into a durable job; the slow and fallible work happens in the workers. It never
//! talks to Twilio's REST API.
//!
//! * [`config`] — intake settings (rate limits, CORS, `<Say>` voice, static folder, extra
//!   signing secrets).
//! * [`signature`] — the [`signature::TwilioForm`] extractor: body limits, form parsing,
//!   signature verification over PUBLIC_HOST (403 on failure).
//! * [`body`] — bounded body reading, content types, the strict form parser.
//! * [`twiml`] — TwiML answers built with an XML writer.
//! * [`ratelimit`] — the four keyed limits (per process, or shared through Redis).
//! * [`routes`] — one module per surface: voice, messaging, Baileys, health, and the
//!   operator API, its OpenAPI document and the `/ops` page ([`routes::operator`]).
//! * [`metrics`] — the Prometheus recorder, `GET /metrics` and the webhook outcome counter.
//! * [`moked_jobs::serve`] — the accept loop: header-read timeout, connection cap, accept errors.
//! * [`error`] — the webhook error type and its HTTP answers, and the operator API's JSON error.
//!
//! Entry points: [`build_state`] connects the database, the queue and the limiter from the
//! typed settings; [`router`] is the whole HTTP surface; [`run`] serves it until shutdown.

pub mod body;
pub mod config;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod signature;
pub mod twiml;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, Method, Request, header};
use moked_jobs::config::CoreConfig;
use moked_jobs::queue::SharedQueue;
use moked_jobs::serve::{ConnectionLimits, serve};
use moked_jobs::signature::Keys;
use moked_jobs::store::Db;
use secrecy::ExposeSecret;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use crate::config::{IntakeArgs, IntakeConfig};
use crate::error::IntakeError;
use crate::ratelimit::{Decision, Limit, Limiter};
use crate::twiml::Answers;

/// How long in-flight requests may run after shutdown begins before the server stops anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a whole request may take (slow clients included) before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request needs, behind one `Arc`: axum clones the state for every extractor
/// that asks for it (several per request), and a clone is one atomic increment here, where
/// cloning the handles inside one by one cost a dozen increments and decrements of counters
/// that every core shares. Reads go through `Deref` to [`Shared`] (`state.queue`, `state.core`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every request reads: the settings, the queue, the store, the limiter, the secrets and
/// the prebuilt answers ([`AppState`] is the handle to it).
pub struct Shared {
    /// Shared settings.
    pub core: Arc<CoreConfig>,
    /// Intake settings.
    pub intake: Arc<IntakeConfig>,
    /// The durable queue jobs go to.
    pub queue: SharedQueue,
    /// The store (readiness; the database queue lives in it too).
    pub db: Db,
    /// Rate limits.
    pub limiter: Limiter,
    /// Signature secrets.
    pub(crate) keys: Arc<Keys>,
    /// The prebuilt TwiML answers.
    pub(crate) answers: Arc<Answers>,
    /// The recordings store the operator API serves audio from (`RECORDINGS_STORE`).
    pub(crate) recordings: Option<routes::operator::recordings::AudioStore>,
    /// Refused webhooks, logged once a minute.
    pub(crate) refusals: Arc<signature::Refusals>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_host", &self.core.public_host)
            .field("queue", &self.queue.backend())
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state from connected parts: gathers the signing secrets and builds the
    /// TwiML answers (checking once whether `STATIC_DIR/voice_responses/welcome.mp3` exists).
    pub fn new(
        core: CoreConfig,
        intake: IntakeConfig,
        db: Db,
        queue: SharedQueue,
        limiter: Limiter,
    ) -> std::io::Result<AppState> {
        let mut keys = Keys::new();
        for token in [&core.twilio.auth_token, &intake.auth_token_secondary]
            .into_iter()
            .flatten()
        {
            keys = keys.with_auth_token(token.clone());
        }
        if let Some(shared) = &intake.shared_key {
            keys = keys.with_shared_key(shared.clone());
        }
        if keys.is_empty() {
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: every Twilio webhook will be refused with 403"
            );
        }
        let welcome = intake.welcome_path();
        let welcome_url = welcome
            .is_file()
            .then(|| format!("{}/static/voice_responses/welcome.mp3", core.public_host));
        match &welcome_url {
            Some(_) => tracing::info!("incoming calls hear welcome.mp3 (<Play>)"),
            None => tracing::info!(
                "incoming calls hear the spoken greeting (<Say>): no \
                 STATIC_DIR/voice_responses/welcome.mp3"
            ),
        }
        let answers = Answers::build(&core.public_host, &intake.say_voice, welcome_url.as_deref())?;
        let recordings = routes::operator::recordings::open_configured(&intake)?;
        metrics::install();
        Ok(AppState(Arc::new(Shared {
            core: Arc::new(core),
            intake: Arc::new(intake),
            queue,
            db,
            limiter,
            keys: Arc::new(keys),
            answers: Arc::new(answers),
            recordings,
            refusals: Arc::default(),
        })))
    }
}

/// Counts one event against `limit` for `key`: 429 when over it.
pub(crate) async fn limit(state: &AppState, limit: Limit, key: &str) -> Result<(), IntakeError> {
    match state.limiter.hit(limit, key).await {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            tracing::info!(limit = limit.name(), "over the rate limit: 429");
            Err(IntakeError::RateLimited { retry_after })
        }
    }
}

/// Connects the database (without migrating: that is `moked-worker migrate`'s job), the queue
/// and the rate limiter the settings ask for.
pub async fn build_state(core: CoreConfig, intake: IntakeConfig) -> anyhow::Result<AppState> {
    let db = Db::connect(core.database_url.expose_secret())
        .await
        .context("cannot open the database (DATABASE_URL)")?;
    let (queue, limiter) = connect_on(&core, &intake, &db).await?;
    AppState::new(core, intake, db, queue, limiter).context("cannot build the TwiML answers")
}

/// Connects the queue on the open `db` (or Redis) and the rate limiter the settings ask for.
pub async fn connect_on(
    core: &CoreConfig,
    intake: &IntakeConfig,
    db: &Db,
) -> anyhow::Result<(SharedQueue, Limiter)> {
    let queue = moked_jobs::queue::connect(core, db)
        .await
        .context("cannot connect the queue")?;
    let limiter = Limiter::connect(core, intake.limits)
        .await
        .context("cannot connect the rate limiter to Redis")?;
    Ok((queue, limiter))
}

/// Request headers never written to logs or traces.
fn sensitive_headers() -> [HeaderName; 5] {
    [
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("x-twilio-signature"),
        HeaderName::from_static("x-twilio-webhooks-signature-settings"),
        HeaderName::from_static("x-baileys-secret"),
    ]
}

/// The CORS policy of `/api/*`: only `CORS_ORIGINS`, none by default.
fn cors(intake: &IntakeConfig) -> Option<CorsLayer> {
    if intake.cors_origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(intake.cors_origins.clone())
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// The span of one request: method, path, request id, and the event's sid once known.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        sid = tracing::field::Empty,
    )
}

/// The whole HTTP surface: webhooks, `/api/*` (with CORS), `/static/*`, and the layers every
/// request goes through (sensitive headers hidden, request id set and echoed, a span, a
/// panic guard and a timeout).
pub fn router(state: AppState) -> Router {
    let mut api = routes::api(&state);
    if let Some(cors) = cors(&state.intake) {
        api = api.layer(cors);
    }
    let layers = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive_headers()))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    Router::new()
        .merge(routes::webhooks().route_layer(axum::middleware::from_fn(metrics::count_webhook)))
        .merge(routes::operator::pages(&state))
        .nest("/api", api)
        .merge(
            Router::new()
                .nest_service("/static", ServeDir::new(&state.intake.static_dir))
                .layer(axum::middleware::map_response(
                    routes::operator::page::harden_static,
                )),
        )
        .layer(layers)
        .with_state(state)
}

/// Serves the router on `listener` ([`serve`], with the settings' header-read timeout
/// and connection cap) until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish and returns — after [`SHUTDOWN_GRACE`] at the latest.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("intake shutting down: no new connections, finishing in-flight requests");
        let _ = begun_tx.send(());
    };
    let limits = ConnectionLimits {
        header_read_timeout: state.intake.header_read_timeout,
        max_connections: state.intake.max_connections.max(1),
    };
    let server = serve(listener, router(state), limits, signal);
    let deadline = async {
        if begun_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = server => Ok(()),
        () = deadline => {
            tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "in-flight requests still running after the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

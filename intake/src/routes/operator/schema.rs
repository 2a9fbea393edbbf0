//! The operator API's document ([`ApiDoc`]) and the JSON shapes that are the API's own.
//!
//! Every answer is a serialised Rust type and its schema is derived from that same type, so
//! the document is the code. Most answers are the types of `moked-jobs` themselves, whose
//! schemas its `openapi` feature derives: the queue's views ([`moked_jobs::queue::view`], the
//! same JSON `moked-worker jobs … --json` prints), calls, customers' timelines, WhatsApp
//! messages and the send request. Only what exists for the API alone lives here: errors, query
//! parameters, and the views the API composes (a call with its recordings' download URLs).

use chrono::{DateTime, Utc};
use moked_jobs::queue::JobState;
use moked_jobs::store::business::Business;
use moked_jobs::store::customers::Customer;
use moked_jobs::store::recordings::Transcript;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The operator API's document: metadata, the bearer scheme, the shared schemas. Paths come
/// from the handlers ([`super::openapi`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "moked operator API",
        description = "Jobs, calls, customers and WhatsApp messages of moked, for operators. \
                       Every path needs `Authorization: Bearer OPERATOR_TOKEN`; with \
                       OPERATOR_TOKEN unset every path answers 404 `operator_api_disabled`. \
                       Every error is `{\"error\":{\"code\",\"message\"}}`.",
        license(name = "MIT"),
        version = env!("CARGO_PKG_VERSION"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody, ErrorDetail, JobState)),
    tags(
        (name = "jobs", description = "The durable queue: list, inspect, retry, discard"),
        (name = "calls", description = "Calls with their status history, recordings and transcript"),
        (name = "customers", description = "A customer's calls and messages"),
        (name = "whatsapp", description = "Send and look up WhatsApp messages"),
        (name = "operators", description = "Who is signed in, and the audit log of what operators did"),
        (name = "stats", description = "Today's calls and messages, and the queue over time"),
        (name = "fleet", description = "Worker sessions and the clock's scheduled tasks"),
        (name = "search", description = "One box for ids and phone numbers"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Gives every operation a document-wide unique id, `{tag}_{handler}` (`calls_show`,
/// `jobs_show`, …): utoipa names an operation after its handler function alone, and several
/// modules have a `show` or a `list`, which code generators and validators reject.
pub fn name_operations(doc: &mut utoipa::openapi::OpenApi) {
    for operation in operations(doc) {
        let tag = operation.tags.as_ref().and_then(|t| t.first()).cloned();
        if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut())
            && !id.starts_with(&format!("{tag}_"))
        {
            *id = format!("{tag}_{id}");
        }
    }
}

/// Every operation of `doc`, whatever its method.
fn operations(
    doc: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the 401 answer to every operation of `doc`. Every documented path sits behind the
/// bearer token (one layer, [`super::router`]), so every operation can answer 401; it is
/// documented here, once, rather than on each handler, so a new path cannot forget it.
pub fn document_unauthorized(doc: &mut utoipa::openapi::OpenApi) {
    let unauthorized: RefOr<Response> = ResponseBuilder::new()
        .description("Missing or wrong bearer token")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into();
    for operation in operations(doc) {
        operation
            .responses
            .responses
            .entry("401".to_owned())
            .or_insert_with(|| unauthorized.clone());
    }
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `unauthorized`, `operator_api_disabled`, `not_found`,
    /// `bad_request`, `conflict`, `not_retryable`, `invalid_number`, `invalid_request`,
    /// `outside_window`, `idempotency_conflict`, `method_not_allowed`, `unavailable`, …
    #[schema(example = "not_found")]
    pub code: String,
    /// For a person.
    pub message: String,
}

/// `GET /api/jobs` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only this state: queued, running, retrying, dead, done, discarded.
    pub state: Option<String>,
    /// Only this kind (e.g. `whatsapp.send`).
    pub kind: Option<String>,
    /// Only jobs whose last error contains this text (case-sensitive). The page is then
    /// gathered from a bounded scan: `total` counts the matches found so far, and
    /// `next_cursor` continues the scan.
    pub q: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<u32>,
}

/// `POST /api/jobs/discard` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkDiscardQuery {
    /// `dead` (default), `retrying` or `queued`.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// What a bulk discard did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Discarded {
    /// How many jobs were discarded.
    pub discarded: u64,
}

/// `GET /api/calls` filters and paging.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallListQuery {
    /// Only calls that started on this day (`YYYY-MM-DD`) in the console's zone (`CLOCK_TZ`).
    pub date: Option<String>,
    /// Only calls in this status (`completed`, `no-answer`, …).
    pub status: Option<String>,
    /// `true`: only calls with a transcript; `false`: only calls without one.
    pub has_transcript: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<u32>,
}

/// `POST /api/jobs/retry` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkRetryQuery {
    /// `dead` (default) or `retrying`.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// One entry of a call's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallEventView {
    /// The call status of a status callback (`ringing`, `completed`, …), or the pipeline step
    /// for other events (`recording.stored`, `transcript.stored`, `recording.failed`, …).
    pub status: String,
    /// When moked received it.
    pub at: DateTime<Utc>,
}

/// A recording of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingView {
    /// Twilio RecordingSid.
    pub recording_sid: String,
    /// `pending`, `downloading`, `stored` or `failed`.
    pub status: String,
    /// Length in seconds.
    pub duration_s: Option<i64>,
    /// When our copy became durable.
    pub stored_at: Option<DateTime<Utc>>,
    /// Size of our copy.
    pub size_bytes: Option<i64>,
    /// `GET` it with the bearer token for the audio; null until stored, or when this intake
    /// cannot reach the recordings store.
    pub download_url: Option<String>,
}

/// A call with everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallView {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Twilio call status.
    pub status: String,
    /// Caller.
    pub from: Option<String>,
    /// Number called.
    pub to: Option<String>,
    /// The business called, once linked.
    pub business: Option<Business>,
    /// The caller as a customer, once linked.
    pub customer: Option<Customer>,
    /// When moked first heard of it.
    pub started_at: DateTime<Utc>,
    /// When it reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its history, oldest first.
    pub events: Vec<CallEventView>,
    /// Its recordings, oldest first.
    pub recordings: Vec<RecordingView>,
    /// The latest transcript of any of its recordings.
    pub transcript: Option<Transcript>,
}

/// `GET /api/customers/{phone}` options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Most entries, 1..=500 (default 100).
    pub limit: Option<u32>,
}

/// A send request's answer: 202 for a new message, 200 for the one an `Idempotency-Key`
/// already named (with its current status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendAccepted {
    /// Our message id (`GET /api/whatsapp/messages/{id}`).
    pub id: String,
    /// `queued` for a new message.
    #[schema(example = "queued")]
    pub status: String,
}

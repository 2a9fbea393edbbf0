//! The operator API's JSON shapes as Rust types, for the OpenAPI document ([`ApiDoc`]) and for
//! the answers themselves.
//!
//! Calls, customers and messages are answered by serialising these types, so the document is
//! the code. Jobs are answered by [`moked_jobs::queue::view`], the one view `moked-worker jobs
//! … --json` prints too (so the CLI and the API never drift); the job types here only describe
//! that view, and a test feeds the view's output through them with `deny_unknown_fields` and
//! compares the round trip, so a field added to the view without its schema fails the build's
//! tests, not an operator's client.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// A job state (exactly these six words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Failed at least once, waiting for its next attempt.
    Retrying,
    /// Failed for good; kept until an operator retries or discards it.
    Dead,
    /// Finished.
    Done,
    /// Dropped by an operator.
    Discarded,
}

/// A job as listed (the `moked-worker jobs list --json` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Job id (UUIDv7).
    pub id: String,
    /// Kind: `call.started`, `call.status`, `recording.process`, `whatsapp.inbound`,
    /// `whatsapp.status`, `whatsapp.send`, `clock.reconcile`, `clock.health`, `clock.cleanup`.
    #[schema(example = "whatsapp.send")]
    pub kind: String,
    /// State.
    pub state: JobState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When it reached done, dead or discarded.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobAttempt {
    /// When it failed.
    pub at: DateTime<Utc>,
    /// Why.
    pub error: String,
    /// The worker that ran it.
    pub worker: String,
}

/// A job in full (the `moked-worker jobs show --json` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDetail {
    /// Job id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// State.
    pub state: JobState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When it reached done, dead or discarded.
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload envelope `{"v":1,"data":{…}}` with phone numbers masked (a string when
    /// the stored payload is not JSON).
    #[schema(value_type = Object)]
    pub payload: Value,
    /// One entry per failed attempt, oldest first.
    pub history: Vec<JobAttempt>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobList {
    /// How many jobs match the filter (all pages; from the queue's counts, cheap to poll).
    pub total: u64,
    /// This page.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Jobs per state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateCounts {
    /// Queued.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Retrying.
    pub retrying: u64,
    /// Dead.
    pub dead: u64,
    /// Done (until pruned).
    pub done: u64,
    /// Discarded (until pruned).
    pub discarded: u64,
}

/// Counts per state, per kind, and the oldest due job's wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStats {
    /// Queued.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Retrying.
    pub retrying: u64,
    /// Dead.
    pub dead: u64,
    /// Done (until pruned).
    pub done: u64,
    /// Discarded (until pruned).
    pub discarded: u64,
    /// The same counts per kind (kinds with jobs only).
    pub by_kind: BTreeMap<String, StateCounts>,
    /// Seconds since the oldest due queued job became due; null when none waits.
    pub oldest_queued_age_s: Option<f64>,
}

/// What a bulk retry did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retried {
    /// How many jobs were queued again.
    pub retried: u64,
    /// How many were left alone because their effect cannot be re-attempted (e.g. a WhatsApp
    /// message the provider already accepted).
    pub refused: u64,
    /// The first 100 of those, with the reason for each.
    pub refusals: Vec<RefusedJob>,
}

/// A job a bulk retry left alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefusedJob {
    /// Job id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Why it was not queued again.
    pub reason: String,
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

/// A call as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSummary {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Twilio call status (only moves forward).
    pub status: String,
    /// Caller (E.164 when it parsed).
    pub from: Option<String>,
    /// Number called.
    pub to: Option<String>,
    /// When moked first heard of it.
    pub started_at: DateTime<Utc>,
    /// When it reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// CallDuration, once the call ended.
    pub duration_s: Option<i64>,
}

/// One page of calls, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallList {
    /// This page.
    pub calls: Vec<CallSummary>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The business a call or message belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessRef {
    /// Row id.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// The caller as a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    /// Row id.
    pub id: i64,
    /// E.164 phone (`GET /api/customers/{phone}` has the timeline).
    pub phone: String,
    /// Name, when known.
    pub name: Option<String>,
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

/// A call's transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptView {
    /// The text (Hebrew, typically).
    pub text: String,
    /// Language code (e.g. `he`).
    pub language: String,
    /// Transcriber (e.g. `openai`).
    pub provider: String,
    /// Model, when the provider names one.
    pub model: Option<String>,
}

/// A call with everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    pub business: Option<BusinessRef>,
    /// The caller as a customer, once linked.
    pub customer: Option<CustomerRef>,
    /// When moked first heard of it.
    pub started_at: DateTime<Utc>,
    /// When it reached a terminal status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its history, oldest first.
    pub events: Vec<CallEventView>,
    /// Its recordings, oldest first.
    pub recordings: Vec<RecordingView>,
    /// The latest transcript of any of its recordings.
    pub transcript: Option<TranscriptView>,
}

/// `call` or `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimelineType {
    /// A phone call (`id` is the CallSid).
    Call,
    /// A WhatsApp message (`id` is our message id).
    Message,
}

/// One entry of a customer's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Call or message.
    #[serde(rename = "type")]
    pub kind: TimelineType,
    /// CallSid or message id.
    pub id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Status of the call or message.
    pub status: String,
    /// The start of the transcript or message body.
    pub summary: Option<String>,
}

/// A customer's history across businesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerView {
    /// E.164 phone.
    pub phone: String,
    /// Their last inbound WhatsApp message (opens the 24-hour window).
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Calls and messages, newest first.
    pub timeline: Vec<TimelineEntry>,
}

/// `GET /api/customers/{phone}` options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Most entries, 1..=500 (default 100).
    pub limit: Option<u32>,
}

/// A WhatsApp message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageView {
    /// Our id.
    pub id: String,
    /// `twilio` or `baileys`.
    pub provider: String,
    /// The provider's id (Twilio MessageSid), once sent.
    pub provider_sid: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Recipient.
    pub to: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed`, `undelivered`, `received`, …
    pub status: String,
    /// Provider error code of a failure (e.g. 63016: outside the 24-hour window).
    pub error_code: Option<i64>,
    /// Provider error message of a failure.
    pub error_message: Option<String>,
    /// When it was created (inbound: received).
    pub created_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
}

/// `POST /api/whatsapp/send`: free-form text (`body`, inside the 24-hour window) or an
/// approved template (`content_sid` + `content_variables`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"to": "+972521234567", "body": "שלום דנה, התור שלך מחר ב־10:00"}),
    json!({
        "to": "052-123-4567",
        "content_sid": "HX0123456789abcdef0123456789abcdef",
        "content_variables": {"1": "דנה", "2": "10:00"}
    })
))]
pub struct SendBody {
    /// Recipient in any common form (`050-123-4567`, `+972501234567`, `whatsapp:+972…`).
    #[schema(example = "+972521234567")]
    pub to: String,
    /// Free-form text.
    #[serde(default)]
    pub body: Option<String>,
    /// Template (Twilio Content API `HX…`).
    #[serde(default)]
    pub content_sid: Option<String>,
    /// Template variables: an object such as `{"1":"Dana"}`, or a string holding one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub content_variables: Option<Value>,
    /// Public http(s) media URLs (free-form messages only).
    #[serde(default)]
    pub media_urls: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use moked_jobs::queue::{self, Attempt, JobPage, JobSummary, Stats, view};

    /// `value` decodes into `T` (no unknown field) and encodes back to the same JSON.
    fn same_shape<T: Serialize + for<'de> Deserialize<'de>>(value: &Value) {
        let typed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("the view does not match its schema: {e}\n{value:#}"));
        let back = serde_json::to_value(&typed).unwrap_or_default();
        assert_eq!(&back, value, "the schema loses or changes a field");
    }

    fn summary(state: queue::JobState, finished: bool) -> JobSummary {
        JobSummary {
            id: "0190d2a4-0000-7000-8000-000000000001".into(),
            kind: "whatsapp.send".into(),
            state,
            attempts: 3,
            last_error: Some("Twilio 500".into()),
            created_at: Utc::now(),
            run_at: Utc::now(),
            finished_at: finished.then(Utc::now),
        }
    }

    #[test]
    fn the_shared_job_view_matches_the_documented_schemas_exactly() {
        for state in queue::JobState::ALL {
            same_shape::<Job>(&view::job(&summary(state, true)));
        }
        same_shape::<Job>(&view::job(&summary(queue::JobState::Queued, false)));
        let detail = queue::JobDetail {
            summary: summary(queue::JobState::Dead, true),
            payload: r#"{"v":1,"data":{"message_id":"m1","to":"+972501234567"}}"#.into(),
            history: vec![Attempt {
                at: Utc::now(),
                error: "Twilio 500".into(),
                worker: "w1".into(),
            }],
            started_at: Some(Utc::now()),
            worker: None,
        };
        same_shape::<JobDetail>(&view::detail(&detail));
        let page = JobPage {
            total: 7,
            jobs: vec![summary(queue::JobState::Dead, true)],
            next_cursor: Some("1:abc".into()),
        };
        same_shape::<JobList>(&view::page(&page));
        let mut stats = Stats::default();
        for s in queue::JobState::ALL {
            stats.counts.insert(s, 2);
        }
        stats.by_kind.insert(
            "call.started".into(),
            [(queue::JobState::Dead, 1)].into_iter().collect(),
        );
        stats.oldest_queued_age_s = Some(1.5);
        same_shape::<JobStats>(&view::stats(&stats));
        same_shape::<JobStats>(&view::stats(&Stats::default()));
    }
}

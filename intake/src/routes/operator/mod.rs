//! The operator surface: the JSON API under `/api` (jobs, calls, customers, WhatsApp), its
//! OpenAPI document, the `/ops` page and `/metrics`.
//!
//! **Access.** With neither `OPERATOR_TOKEN` nor `OPERATOR_TOKENS` set the whole surface is
//! off: every operator path answers 404 `{"error":{"code":"operator_api_disabled",…}}` (the
//! page still loads and says so). With either set, every request needs
//! `Authorization: Bearer <token>` of one operator (`OPERATOR_TOKENS=name:token,…` names each;
//! the single `OPERATOR_TOKEN` is the operator named `operator`), compared in constant time
//! with every configured token (both sides hashed with SHA-256 first, so neither the content
//! nor the length of a token leaks through timing); a missing or wrong token is a 401 with
//! `WWW-Authenticate: Bearer`. Retries, discards and sends are recorded under the operator's
//! name in the audit log ([`audit`]). Two exceptions need no token: `GET /api/openapi.json` (it
//! describes the API and holds no data) and the page's static assets (`/ops`, which asks for
//! the token and keeps it in the tab's `sessionStorage`).
//!
//! **Errors.** Every refusal is JSON `{"error":{"code","message"}}` ([`ApiError`]), unknown
//! `/api/*` paths and wrong methods included; bad input is a 400/404/409/422 naming the
//! problem, never a 500.
//!
//! **Phone numbers.** Job payloads are shown with numbers masked (the shared
//! [`moked_jobs::queue::view`], same as `moked-worker jobs show`): jobs are plumbing and their
//! payloads get copied into tickets and chats. Calls, customers and messages show the real
//! numbers: they are the CRM records an authenticated operator looks up in order to call or
//! write back, and a customer is looked up *by* number anyway.
//!
//! | path | module |
//! |---|---|
//! | `GET /api/jobs`, `GET /api/jobs/stats`, `GET /api/jobs/{id}`, `POST /api/jobs/{id}/retry`, `POST /api/jobs/{id}/discard`, `POST /api/jobs/retry` | [`jobs`] |
//! | `GET /api/calls`, `GET /api/calls/{call_sid}` | [`calls`] |
//! | `GET /api/recordings/{recording_sid}/audio` | [`recordings`] |
//! | `GET /api/customers/{phone}` | [`customers`] |
//! | `POST /api/whatsapp/send`, `GET /api/whatsapp/messages/{id}` | [`whatsapp`] |
//! | `POST /api/jobs/discard` (bulk) | [`jobs`] |
//! | `GET /api/me`, `GET /api/audit` | [`audit`] (who is signed in; the audit log of retries, discards and sends) |
//! | `GET /api/stats/today`, `GET /api/stats/history` | [`stats`] |
//! | `GET /api/workers`, `GET /api/clock` | [`workers`] |
//! | `GET /api/search` | [`search`] |
//! | `GET /api/openapi.json` | [`schema`] (generated from the handlers' annotations) |
//! | `GET /ops`, `/ops/app.js`, `/ops/app.css`, `/ops/i18n.js`, `/ops/charts.js`, `/ops/sw.js` | [`page`] |
//! | `GET /metrics` | [`crate::metrics`] |

pub mod audit;
pub mod calls;
pub mod customers;
pub mod jobs;
pub mod page;
pub mod recordings;
pub mod schema;
pub mod search;
pub mod stats;
pub mod whatsapp;
pub mod workers;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::request::Parts;
use http::{HeaderValue, header};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// The documented operator routes, paths relative to `/api`.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::stats))
        .routes(routes!(jobs::retry_all))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::discard))
        .routes(routes!(calls::list))
        .routes(routes!(calls::show))
        .routes(routes!(recordings::audio))
        .routes(routes!(customers::show))
        .routes(routes!(whatsapp::send))
        .routes(routes!(whatsapp::show))
        .routes(routes!(audit::audit))
        .routes(routes!(audit::me))
        .routes(routes!(stats::today))
        .routes(routes!(stats::history))
        .routes(routes!(workers::workers))
        .routes(routes!(workers::clock))
        .routes(routes!(search::find))
        .routes(routes!(jobs::discard_all))
}

/// The OpenAPI document of the operator API, generated from the handlers (what
/// `GET /api/openapi.json` serves and `docs/openapi.json` must equal).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::<AppState>::with_openapi(schema::ApiDoc::openapi())
        .nest("/api", documented())
        .into_openapi();
    schema::document_unauthorized(&mut doc);
    schema::name_operations(&mut doc);
    doc
}

/// The document as served: pretty JSON with a trailing newline (the committed file's form).
pub fn openapi_json() -> String {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut json = openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned());
        json.push('\n');
        json
    });
    JSON.clone()
}

/// `GET /api/openapi.json`.
async fn openapi_document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_json(),
    )
        .into_response()
}

/// The operator routes under `/api`: the documented ones behind the bearer token, the OpenAPI
/// document (off with the API, no token needed), and JSON answers for unknown paths and methods.
pub fn router(state: &AppState) -> Router<AppState> {
    let (api, _) = documented().split_for_parts();
    Router::new()
        .merge(api.route_layer(from_fn_with_state(state.clone(), require_token)))
        .route("/openapi.json", get(openapi_document))
        .route_layer(from_fn_with_state(state.clone(), require_enabled))
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
}

/// Routes outside `/api`: the page (no token: it asks for one) and `/metrics` (token).
pub fn pages(state: &AppState) -> Router<AppState> {
    let metrics = Router::new()
        .route("/metrics", get(crate::metrics::render))
        .route_layer(from_fn_with_state(state.clone(), require_token))
        .route_layer(from_fn_with_state(state.clone(), require_enabled));
    page::router().merge(metrics)
}

async fn unknown_path() -> ApiError {
    ApiError::not_found("no such operator API path")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method",
    )
}

/// Whether any operator token is configured (`OPERATOR_TOKEN` or `OPERATOR_TOKENS`).
fn enabled(state: &AppState) -> bool {
    state.core.operator_token.is_some() || !state.core.operator_tokens.is_empty()
}

/// 404 `operator_api_disabled` while neither `OPERATOR_TOKEN` nor `OPERATOR_TOKENS` is set.
async fn require_enabled(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !enabled(&state) {
        return ApiError::disabled().into_response();
    }
    next.run(req).await
}

/// 401 unless the request carries `Authorization: Bearer <token>` of a configured operator;
/// the operator's name goes into the request's extensions ([`audit::Actor`] reads it).
async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !enabled(&state) {
        return ApiError::disabled().into_response();
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let operators = state.core.operators();
    let signed_in = given.and_then(|token| {
        find_operator(
            token,
            operators
                .iter()
                .map(|o| (o.name.as_str(), o.token.expose_secret())),
        )
    });
    match signed_in {
        Some(name) => {
            req.extensions_mut()
                .insert(audit::SignedIn(name.to_owned()));
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// The name of the operator whose token `given` is. Every configured token is compared (in
/// constant time, [`token_matches`]) whichever matches, so the answer's timing does not say
/// which operator's token came close or how many there are before it.
fn find_operator<'a>(
    given: &str,
    operators: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<&'a str> {
    let mut found = None;
    for (name, token) in operators {
        if token_matches(given, token) && found.is_none() {
            found = Some(name);
        }
    }
    found
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Constant-time comparison of the presented token with the configured one: both are hashed
/// first, so the comparison time depends on neither their content nor their lengths.
fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// A query string decoded into `T`, refused with a JSON 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_query(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
    }
}

fn serde_urlencoded_query<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}

/// Page sizes of the operator listings: 1..=500, 50 when absent.
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=500) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be 1..=500 (got {n})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_with_the_exact_token_passes() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn a_token_signs_in_the_operator_it_belongs_to() {
        let ops = [("dana", "t-dana"), ("yossi", "t-yossi")];
        assert_eq!(find_operator("t-yossi", ops.into_iter()), Some("yossi"));
        assert_eq!(find_operator("t-dana", ops.into_iter()), Some("dana"));
        assert_eq!(find_operator("t-other", ops.into_iter()), None);
    }

    #[test]
    fn page_sizes_default_to_50_and_stay_within_500() {
        assert_eq!(page_size(None), Ok(50));
        assert_eq!(page_size(Some(500)), Ok(500));
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(501)).is_err());
    }
}

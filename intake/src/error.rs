//! The intake's one error type and its HTTP answers.
//!
//! Policy: every input gets a deliberate 4xx, never a 500. The only 5xx is 503 when the queue
//! cannot take the job in time, so Twilio retries later (with the same idempotency token, which
//! dedupes the retry if the first enqueue did land). The cause of a 503 is logged once where it
//! happens; the answer carries a short reason and no internals. A refused signature is a 403
//! with an empty body: no hint for whoever is probing.
//!
//! The operator API (`/api/*` behind the bearer token) is another boundary with its own error,
//! [`ApiError`]: every refusal there is JSON, `{"error":{"code","message"}}`, with a stable
//! machine-readable `code` (`unauthorized`, `operator_api_disabled`, `not_found`,
//! `bad_request`, `conflict`, `invalid_number`, `outside_window`, …). Bad input is a 4xx with
//! the reason; a failing store or queue is a 503 whose cause is logged once and not shown.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The largest webhook body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Missing or wrong signature or secret, or no key configured: 403, empty body.
    #[error("forbidden")]
    Forbidden,
    /// Over a rate limit: 429 with `Retry-After`.
    #[error("rate limited")]
    RateLimited {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// Body over [`MAX_BODY`]: 413.
    #[error("request body over 64 KiB")]
    PayloadTooLarge,
    /// Wrong `Content-Type`: 415, naming the expected one.
    #[error("expected Content-Type {expected}")]
    UnsupportedMediaType {
        /// The content type the route takes.
        expected: &'static str,
    },
    /// Malformed body or a required field missing: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The queue did not take the job in time: 503, so the sender retries.
    #[error("queue unavailable, retry later")]
    QueueUnavailable,
}

impl IntakeError {
    /// A 400 for a missing required field.
    pub fn missing(field: &str) -> Self {
        IntakeError::BadRequest(format!("missing {field}"))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::Forbidden => StatusCode::FORBIDDEN,
            IntakeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IntakeError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IntakeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IntakeError::QueueUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            IntakeError::Forbidden => status.into_response(),
            IntakeError::RateLimited { retry_after } => (
                status,
                [(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(retry_after)),
                )],
            )
                .into_response(),
            IntakeError::QueueUnavailable => (
                status,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                self.to_string(),
            )
                .into_response(),
            other => (status, other.to_string()).into_response(),
        }
    }
}

/// A refusal of the operator API: an HTTP status, a stable code and a human reason, answered
/// as `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (snake_case).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`: the resource exists but is not in a state that allows the action.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 401 `unauthorized` (answered with `WWW-Authenticate: Bearer`).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer OPERATOR_TOKEN)",
        )
    }

    /// 404 `operator_api_disabled`: OPERATOR_TOKEN is unset.
    pub fn disabled() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "operator_api_disabled",
            "the operator API is off: set OPERATOR_TOKEN to enable it",
        )
    }

    /// 503 for a dependency that failed: logs `cause` once here and answers without it.
    pub fn unavailable(what: &'static str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(dependency = what, error = %cause, "operator request failed: answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the {what} is unavailable, try again"),
        )
    }
}

impl From<moked_jobs::queue::QueueError> for ApiError {
    /// A refused argument (a bad cursor) is the caller's 400; anything else is the queue's 503.
    fn from(e: moked_jobs::queue::QueueError) -> Self {
        match e {
            moked_jobs::queue::QueueError::Invalid(reason) => ApiError::bad_request(reason),
            other => ApiError::unavailable("queue", &other),
        }
    }
}

impl From<moked_jobs::store::error::StoreError> for ApiError {
    /// Bad input (a malformed cursor) is a 400, a missing row 404, the database failing 503.
    fn from(e: moked_jobs::store::error::StoreError) -> Self {
        use moked_jobs::store::error::StoreError;
        match e {
            StoreError::Invalid(reason) => ApiError::bad_request(reason),
            StoreError::NotFound => ApiError::not_found("not found"),
            other => ApiError::unavailable("store", &other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"moked operator\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_forbidden_has_no_body() {
        assert_eq!(IntakeError::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(IntakeError::PayloadTooLarge.status(), 413);
        assert_eq!(
            IntakeError::missing("CallSid").to_string(),
            "missing CallSid"
        );
        let r = IntakeError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
        let r = IntakeError::QueueUnavailable.into_response();
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
    }

    #[tokio::test]
    async fn operator_errors_are_json_with_a_code_and_401_names_the_scheme() {
        let r = ApiError::unauthorized().into_response();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let body = axum::body::to_bytes(r.into_body(), 4096)
            .await
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "unauthorized");
        assert!(v["error"]["message"].is_string());
        let bad: ApiError = moked_jobs::queue::QueueError::Invalid("bad cursor".into()).into();
        assert_eq!(
            (bad.status, bad.code),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
    }
}

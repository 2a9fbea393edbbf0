//! The intake's one error type and its HTTP answers.
//!
//! Policy: every input gets a deliberate 4xx, never a 500. The only 5xx is 503 when the queue
//! cannot take the job in time, so Twilio retries later (with the same idempotency token, which
//! dedupes the retry if the first enqueue did land). The cause of a 503 is logged once where it
//! happens; the answer carries a short reason and no internals. A refused signature is a 403
//! with an empty body: no hint for whoever is probing.

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
}

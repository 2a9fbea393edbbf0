//! The `TwilioForm` extractor: a Twilio webhook whose signature has been verified.
//!
//! Steps, in order (each failure answers at once and nothing is enqueued):
//! 1. The client IP ([`crate::ratelimit::client_key`]) over `RATE_LIMIT_UNVERIFIED` → 429 with
//!    `Retry-After`, before any other work.
//! 2. `Content-Type` not `application/x-www-form-urlencoded` → 415.
//! 3. Body over 64 KiB → 413; malformed form → 400.
//! 4. Signature ([`moked_jobs::signature::verify`]) over **PUBLIC_HOST + raw path + query** —
//!    never the `Host` header, which a proxy rewrites — with the decoded fields, any configured
//!    Auth Token (primary, secondary) or SharedKey. Missing, wrong, or no key configured → 403
//!    with an empty body, and the failure is counted against the client IP.
//!
//! The signature and token values are never logged; the rejection reason is (at info), and the
//! URL it was checked over at debug.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, OriginalUri, Request};
use http::request::Parts;
use moked_jobs::signature::{self, Body as SignedBody};

use crate::AppState;
use crate::body::{self, FORM, Form};
use crate::error::IntakeError;
use crate::ratelimit::{Decision, Limit, client_key};

/// The header Twilio sends with every delivery of one event.
pub const IDEMPOTENCY_HEADER: &str = "i-twilio-idempotency-token";

/// Idempotency tokens longer than this are ignored (the natural key is used instead).
const MAX_TOKEN_LEN: usize = 256;

/// A verified Twilio form webhook.
#[derive(Debug, Clone, Default)]
pub struct TwilioForm {
    /// The decoded body fields.
    pub form: Form,
    /// The decoded query parameters of the request URL (part of what was signed).
    pub query: Form,
    /// `I-Twilio-Idempotency-Token`, when present and sane.
    pub idempotency_token: Option<String>,
}

impl TwilioForm {
    /// A form as if verified (tests of the pure route functions).
    pub fn new(form: Form) -> Self {
        TwilioForm {
            form,
            ..TwilioForm::default()
        }
    }

    /// With an idempotency token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.idempotency_token = Some(token.into());
        self
    }
}

/// The client key of a request (right-most `X-Forwarded-For`, else the peer).
pub(crate) fn client_of(parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    client_key(&parts.headers, peer)
}

/// 429 when the client is already over the unverified limit.
pub(crate) fn check_unverified(state: &AppState, client: &str) -> Result<(), IntakeError> {
    match state.limiter.peek(Limit::Unverified, client) {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => Err(IntakeError::RateLimited { retry_after }),
    }
}

/// Counts a failed check against the client and answers 403. The reason is logged at info
/// (a wrong PUBLIC_HOST, the most common deployment mistake, shows up as `signature mismatch`
/// on every webhook); the number of such lines per client is bounded by the unverified limit.
pub(crate) async fn refuse(
    state: &AppState,
    client: &str,
    reason: impl std::fmt::Display + Send,
) -> IntakeError {
    tracing::info!(%reason, "webhook refused: 403");
    state.limiter.hit(Limit::Unverified, client).await;
    IntakeError::Forbidden
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequest<AppState> for TwilioForm {
    type Rejection = IntakeError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let client = client_of(&parts);
        check_unverified(state, &client)?;
        if !body::content_type_is(&parts.headers, FORM) {
            return Err(IntakeError::UnsupportedMediaType { expected: FORM });
        }
        let raw = body::read(&parts.headers, body).await?;
        let form = Form::parse(&raw)?;

        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0);
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("{}{}", state.core.public_host, path_and_query);
        let verdict = signature::verify(
            &state.keys,
            &signature::Request {
                url: &url,
                body: SignedBody::Form(form.pairs()),
                signature: header(&parts, signature::SIGNATURE_HEADER),
                settings: header(&parts, signature::SETTINGS_HEADER),
            },
        );
        if let Err(reason) = verdict {
            // The URL (never the signature) tells an operator what PUBLIC_HOST produced.
            tracing::debug!(signed_url = %url, "signature checked over this URL");
            return Err(refuse(state, &client, reason).await);
        }

        let idempotency_token = header(&parts, IDEMPOTENCY_HEADER)
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
            .map(str::to_owned);
        Ok(TwilioForm {
            form,
            query: Form::parse_query(uri.query().unwrap_or("")),
            idempotency_token,
        })
    }
}

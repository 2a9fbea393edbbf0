//! The `TwilioForm` extractor: a Twilio webhook whose signature has been verified.
//!
//! Steps, in order (each failure answers at once and nothing is enqueued):
//! 1. `Content-Type` not `application/x-www-form-urlencoded` → 415.
//! 2. Body over 64 KiB → 413; malformed form → 400.
//! 3. Signature ([`moked_jobs::signature::verify`]) over **PUBLIC_HOST + raw path + query** —
//!    never the `Host` header, which a proxy rewrites — with the decoded fields, any configured
//!    Auth Token (primary, secondary) or SharedKey. Missing, wrong, or no key configured → 403
//!    with an empty body, and the failure is counted against the client IP
//!    ([`crate::ratelimit::client_key`]); a client over `RATE_LIMIT_UNVERIFIED` gets 429 with
//!    `Retry-After` instead.
//!
//! Verifying comes first because it is cheap (an HMAC over at most 64 KiB, microseconds) and
//! because the client key is not proof of anything: `X-Forwarded-For` names any address, and
//! Twilio's egress addresses are shared by every Twilio account. Were the limit checked first,
//! anyone could lock genuine webhooks out by sending unsigned requests naming Twilio's address.
//! So only requests that fail verification are counted or refused by the limit; a correctly
//! signed request never is.
//!
//! Refusals are logged through [`Refusals`]: one line per minute at most (the reason of the
//! refusal that opens the minute, and how many requests from how many clients were refused in
//! the minute before), so a flood of forged requests cannot flood the logs. The signature and
//! token values are never logged; the URL a signature was checked over is, at debug.
//!
//! `I-Twilio-Idempotency-Token` is not read: it is not covered by the signature, so a captured
//! request replayed with new tokens would make new jobs. Webhooks are deduplicated by the
//! natural key of their event alone ([`crate::routes`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, OriginalUri, Request};
use http::request::Parts;
use moked_jobs::signature::{self, Body as SignedBody};
use tokio::time::Instant;

use crate::AppState;
use crate::body::{self, FORM, Form};
use crate::error::IntakeError;
use crate::ratelimit::{Decision, Limit, client_key};

/// How often refused requests are logged: one line per this interval at most.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Distinct clients counted per interval; more are reported as "at least" this many.
const MAX_COUNTED_CLIENTS: usize = 10_000;

/// A verified Twilio form webhook.
#[derive(Debug, Clone, Default)]
pub struct TwilioForm {
    /// The decoded body fields.
    pub form: Form,
    /// The decoded query parameters of the request URL (part of what was signed).
    pub query: Form,
}

impl TwilioForm {
    /// A form as if verified (tests of the pure route functions).
    pub fn new(form: Form) -> Self {
        TwilioForm {
            form,
            ..TwilioForm::default()
        }
    }
}

/// A webhook with these body fields, as if verified (unit tests of the pure route functions).
#[cfg(test)]
pub(crate) fn hook(pairs: &[(&str, &str)]) -> TwilioForm {
    TwilioForm::new(Form::from_pairs(pairs.iter().copied()))
}

/// The client key of a request (right-most `X-Forwarded-For`, else the peer).
pub(crate) fn client_of(parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    client_key(&parts.headers, peer)
}

/// The answer to a request that failed verification: 403, counted against the client, or 429
/// when the client is over `RATE_LIMIT_UNVERIFIED` (known locally first, so a flood costs no
/// Redis round trip per request). Noted in [`Refusals`], which logs at most one line a minute.
pub(crate) async fn refuse(
    state: &AppState,
    client: &str,
    reason: impl std::fmt::Display + Send,
) -> IntakeError {
    let decision = match state.limiter.peek(Limit::Unverified, client) {
        Decision::Allowed => state.limiter.hit(Limit::Unverified, client).await,
        limited => limited,
    };
    let error = match decision {
        Decision::Allowed => IntakeError::Forbidden,
        Decision::Limited { retry_after } => IntakeError::RateLimited { retry_after },
    };
    state.refusals.note(client, &reason, &error);
    error
}

/// Refused requests of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCount {
    /// Answered 403.
    pub forbidden: u64,
    /// Answered 429.
    pub limited: u64,
    /// Distinct client keys (at most `MAX_COUNTED_CLIENTS`).
    pub clients: usize,
}

#[derive(Debug, Default)]
struct RefusalWindow {
    started: Option<Instant>,
    count: RefusalCount,
    clients: HashSet<String>,
}

/// The log of refused webhooks: the first refusal of each [`REFUSAL_LOG_INTERVAL`] is logged
/// with its reason (a wrong PUBLIC_HOST, the most common deployment mistake, shows up at once
/// as `signature mismatch`) and the counts of the interval before; the others only counted.
#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<RefusalWindow>,
}

impl Refusals {
    /// Counts one refusal at `now`; `Some(previous interval's count)` when this one opens a
    /// new interval and is to be logged.
    pub fn count(&self, now: Instant, client: &str, limited: bool) -> Option<RefusalCount> {
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let opens = w
            .started
            .is_none_or(|started| now.duration_since(started) >= REFUSAL_LOG_INTERVAL);
        let previous = opens.then(|| {
            w.started = Some(now);
            w.clients.clear();
            std::mem::take(&mut w.count)
        });
        if limited {
            w.count.limited += 1;
        } else {
            w.count.forbidden += 1;
        }
        if w.clients.len() < MAX_COUNTED_CLIENTS && !w.clients.contains(client) {
            w.clients.insert(client.to_owned());
            w.count.clients = w.clients.len();
        }
        previous
    }

    fn note(&self, client: &str, reason: &dyn std::fmt::Display, error: &IntakeError) {
        let limited = matches!(error, IntakeError::RateLimited { .. });
        if let Some(before) = self.count(Instant::now(), client, limited) {
            tracing::info!(
                %reason,
                status = if limited { 429 } else { 403 },
                previous_forbidden = before.forbidden,
                previous_limited = before.limited,
                previous_clients = before.clients,
                "webhook refused (refusals are logged once a minute: previous_* count the \
                 minute before this line)"
            );
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl FromRequest<AppState> for TwilioForm {
    type Rejection = IntakeError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
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
            return Err(refuse(state, &client_of(&parts), reason).await);
        }
        Ok(TwilioForm {
            form,
            query: Form::parse_query(uri.query().unwrap_or("")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_interval_with_the_counts_of_the_one_before() {
        let log = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(
            log.count(t0, "203.0.113.7", false),
            Some(RefusalCount::default()),
            "the first refusal is logged"
        );
        let mut logged = 0;
        for i in 1..1_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 50);
            let client = format!("198.51.100.{}", i % 3);
            if log.count(at, &client, i % 2 == 0).is_some() {
                logged += 1;
            }
        }
        // 1,000 refusals over 50 s: no other line.
        assert_eq!(logged, 0);
        let next = log
            .count(t0 + REFUSAL_LOG_INTERVAL, "203.0.113.7", true)
            .expect("a new interval logs one line");
        assert_eq!(
            next,
            RefusalCount {
                forbidden: 501,
                limited: 499,
                clients: 4
            }
        );
    }
}

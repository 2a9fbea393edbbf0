//! Who the operator is, and the audit log of what operators did.
//!
//! * [`Actor`] — the signed-in operator (the `OPERATOR_TOKENS` name of the bearer token, or
//!   `operator` for the single `OPERATOR_TOKEN`) and the client address (the right-most
//!   `X-Forwarded-For` entry, as the router in front of us appends it, else the TCP peer).
//! * [`record`] — one `operator_audit` row per retry, discard (single or bulk) and WhatsApp
//!   send, written after the action so it carries the outcome (`ok`, `refused`, `conflict`).
//!   An action whose audit row cannot be written still answers as it ran (it happened); the
//!   failure is logged with the operator and the action.
//! * `GET /api/audit?limit=&before=` — entries newest first (`next_cursor` → `before`).
//! * `GET /api/me` — `{"operator":"dana"}`: who the page is signed in as.
//!
//! No entry and no log line holds a token: only the name it belongs to.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use http::request::Parts;
use moked_jobs::store::audit::{self as store_audit, AuditPage, NewAudit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schema::ErrorBody;
use super::{ApiQuery, page_size};
use crate::AppState;
use crate::error::ApiError;

/// The name of the operator whose token authenticated the request (set by the token check).
#[derive(Debug, Clone)]
pub struct SignedIn(pub String);

/// The operator behind a request, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The operator's name.
    pub operator: String,
    /// The client address, when known.
    pub ip: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only routes behind the token check take an Actor, so a missing name is a wiring
        // mistake; refusing is the safe answer.
        let operator = parts
            .extensions
            .get::<SignedIn>()
            .map(|s| s.0.clone())
            .ok_or_else(ApiError::unauthorized)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Actor {
            operator,
            ip: crate::ratelimit::client_ip(&parts.headers, peer).map(|ip| ip.to_string()),
        })
    }
}

/// What an audited action came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was done.
    Ok,
    /// It was refused (bad input, an effect that cannot be re-attempted, …).
    Refused,
    /// The target was not in a state that allows it.
    Conflict,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Conflict => "conflict",
        }
    }
}

/// Records one action of `actor` in the audit log and logs it under the operator's name.
pub async fn record(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: &str,
    outcome: Outcome,
    detail: impl Into<String>,
) {
    let entry = NewAudit {
        operator: actor.operator.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.as_str().to_owned(),
        detail: detail.into(),
        ip: actor.ip.clone(),
    };
    tracing::info!(
        operator = %entry.operator,
        action,
        target,
        outcome = entry.outcome,
        detail = %entry.detail,
        "operator action"
    );
    if let Err(e) = store_audit::record(&state.db, &entry).await {
        tracing::error!(operator = %entry.operator, action, target, error = %e,
            "operator action not written to the audit log");
    }
}

/// `GET /api/audit` paging.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `next_cursor` of the previous page.
    pub before: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<u32>,
}

/// The signed-in operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Me {
    /// The operator's name (`operator` for the single OPERATOR_TOKEN).
    #[schema(example = "dana")]
    pub operator: String,
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "operators",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of the audit log", body = AuditPage),
        (status = 400, description = "Bad cursor or limit", body = ErrorBody),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_size(q.limit)?;
    let before = q.before.filter(|c| !c.trim().is_empty());
    let page = store_audit::list(&state.db, before.as_deref(), limit).await?;
    Ok(Json(page))
}

/// Who is signed in.
#[utoipa::path(
    get,
    path = "/me",
    tag = "operators",
    responses(
        (status = 200, description = "The operator the bearer token belongs to", body = Me),
    )
)]
pub async fn me(actor: Actor) -> Json<Me> {
    Json(Me {
        operator: actor.operator,
    })
}

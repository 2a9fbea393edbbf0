//! `GET /api/customers/{phone}`: everything one person did with us — their calls and WhatsApp
//! messages across every business, newest first
//! ([`moked_jobs::store::customers::customer_timeline`]).
//!
//! The phone is taken in any common form and normalised to E.164 (default region Israel):
//! `+972501234567`, `%2B972501234567`, `972501234567`, `050-123-4567` and
//! `whatsapp:+972501234567` all name the same customer. Something that is not a phone number is
//! a 400 `invalid_number`; a number no business knows is a 404.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use moked_jobs::phone::E164;
use moked_jobs::store::customers::{CustomerTimeline, customer_timeline};

use super::ApiQuery;
use super::schema::{self, TimelineQuery};
use crate::AppState;
use crate::error::ApiError;

/// Timeline entries when `limit` is not given.
pub const DEFAULT_TIMELINE: u32 = 100;

/// A customer's calls and messages, newest first.
#[utoipa::path(
    get,
    path = "/customers/{phone}",
    tag = "customers",
    params(
        ("phone" = String, Path, description = "Phone in any common form (E.164 `+972…` URL-encoded as `%2B972…`, `050-123-4567`, `whatsapp:+972…`)"),
        TimelineQuery,
    ),
    responses(
        (status = 200, description = "The customer's timeline", body = CustomerTimeline),
        (status = 400, description = "Not a phone number, or a bad limit", body = schema::ErrorBody),
        (status = 404, description = "No customer with this number", body = schema::ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(phone): Path<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<CustomerTimeline>, ApiError> {
    let limit = match q.limit {
        None => DEFAULT_TIMELINE,
        Some(n @ 1..=500) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..=500 (got {n})"
            )));
        }
    };
    let phone = E164::parse(&phone)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_number", e.to_string()))?;
    let timeline = customer_timeline(&state.db, &phone, i64::from(limit))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no customer with phone {phone}")))?;
    Ok(Json(timeline))
}

//! The operator API (jobs, calls, customers, WhatsApp send) — specified by its own issue and
//! not served yet. It mounts under `/api` through [`router`], behind the same CORS policy as
//! the health routes, and owns its bearer-token authentication (`OPERATOR_TOKEN`).

use axum::Router;

use crate::AppState;

/// The operator routes (none yet).
pub fn router() -> Router<AppState> {
    Router::new()
}

//! `GET /ops`: the operator page — plain HTML, one script and one stylesheet from
//! `static/ops/`, compiled into the binary (no build step, nothing to deploy beside it, and it
//! works whatever `STATIC_DIR` says).
//!
//! The page itself needs no token: it asks for `OPERATOR_TOKEN` once, keeps it in the tab's
//! `sessionStorage` (gone when the tab closes) and sends it as a bearer token on every API call
//! it makes. It is served with a strict Content-Security-Policy (own scripts and styles only,
//! audio from `blob:` URLs the script makes from the authenticated audio download), no caching
//! and no framing.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, header};

use crate::AppState;

/// `static/ops/index.html`.
pub const INDEX_HTML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/index.html"
));
/// `static/ops/app.js`.
pub const APP_JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../static/ops/app.js"));
/// `static/ops/app.css`.
pub const APP_CSS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/app.css"
));

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `/ops`, `/ops/`, `/ops/app.js`, `/ops/app.css`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(index))
        .route("/ops/", get(index))
        .route("/ops/app.js", get(script))
        .route("/ops/app.css", get(style))
}

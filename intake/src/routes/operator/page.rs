//! `GET /ops`: the operator page — plain HTML, one script and one stylesheet from
//! `static/ops/`, compiled into the binary (no build step, nothing to deploy beside it, and it
//! works whatever `STATIC_DIR` says).
//!
//! The page itself needs no token: it asks for `OPERATOR_TOKEN` once, keeps it in the tab's
//! `sessionStorage` (gone when the tab closes) and sends it as a bearer token on every API call
//! it makes. It is served with a strict Content-Security-Policy (own scripts and styles only,
//! audio from `blob:` URLs the script makes from the authenticated audio download), no caching
//! and no framing.
//!
//! Recordings stream through a service worker (`/ops/sw.js`, scope `/ops`) that adds the
//! bearer token to the audio element's own (Range) requests; it asks the page for the token
//! and keeps none.
//!
//! The page's sources also sit in the repository's `static/ops/`, which is the default
//! `STATIC_DIR` served at `/static/*`; so every `/static/*` answer gets the same headers
//! ([`harden_static`]): a copy of the page reached there is no more frameable or cacheable than
//! `/ops`. Audio (`welcome.mp3`, which Twilio fetches for `<Play>` and may cache) is the one
//! kind left cacheable.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::AppState;

/// `static/ops/index.html`.
pub const INDEX_HTML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/index.html"
));
/// `static/ops/app.js`.
pub const APP_JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../static/ops/app.js"));
/// `static/ops/i18n.js` (the page's words, dates and language toggle).
pub const I18N_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/i18n.js"
));
/// `static/ops/charts.js` (the dashboard's SVG charts).
pub const CHARTS_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/charts.js"
));
/// `static/ops/sw.js` (the service worker that streams recordings with the bearer token).
pub const SW_JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../static/ops/sw.js"));
/// `static/ops/app.css`.
pub const APP_CSS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../static/ops/app.css"
));

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's headers: CSP, no framing, no sniffing, no referrer, and (unless `cache`) no caching.
fn protect(headers: &mut HeaderMap, cache: bool) {
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !cache {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    protect(response.headers_mut(), false);
    response
}

/// The headers of every `/static/*` answer: the page's, and `no-store` on all but audio.
pub async fn harden_static(mut response: Response) -> Response {
    let audio = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("audio/"));
    protect(response.headers_mut(), audio);
    response
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

async fn i18n() -> Response {
    asset("text/javascript; charset=utf-8", I18N_JS)
}

async fn charts() -> Response {
    asset("text/javascript; charset=utf-8", CHARTS_JS)
}

/// The service worker, allowed to control `/ops` itself (its folder alone would be `/ops/`).
async fn service_worker() -> Response {
    let mut response = asset("text/javascript; charset=utf-8", SW_JS);
    response.headers_mut().insert(
        HeaderName::from_static("service-worker-allowed"),
        HeaderValue::from_static("/ops"),
    );
    response
}

/// `/ops`, `/ops/`, `/ops/app.js`, `/ops/i18n.js`, `/ops/charts.js`, `/ops/sw.js`, `/ops/app.css`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(index))
        .route("/ops/", get(index))
        .route("/ops/app.js", get(script))
        .route("/ops/i18n.js", get(i18n))
        .route("/ops/charts.js", get(charts))
        .route("/ops/sw.js", get(service_worker))
        .route("/ops/app.css", get(style))
}

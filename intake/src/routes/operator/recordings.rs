//! `GET /api/recordings/{recording_sid}/audio`: a stored recording's audio, behind the bearer
//! token, streamed from the store the voice pipeline writes (`RECORDINGS_STORE`).
//!
//! The intake opens that store with the workers' rules (`moked_jobs::audio_store`): `file://PATH`
//! (relative to the working directory), `s3://bucket/prefix` and `gs://bucket/prefix` (cargo
//! features `s3`, `gcs`, on by default), keys relative to the store's root. `memory://` (tests of
//! the workers) is a store of its own process, so the intake treats it as no store. Without a
//! store, calls list their recordings with `download_url: null`.
//!
//! A single `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` is honoured (206, so the browser's audio player can
//! seek); a range that cannot be satisfied (its end past 2^64 − 1, or its start past the end of
//! the audio) is 416 `range_not_satisfiable` with the reason; anything else gets the whole file.
//! Twilio's own recording URL is never served or shown.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use moked_jobs::store::recordings::get_recording;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::schema;
use crate::AppState;
use crate::config::IntakeConfig;
use crate::error::ApiError;

pub use moked_jobs::audio_store::AudioStore;

/// Opens `RECORDINGS_STORE` when configured. A `file://` folder that does not exist (yet) is
/// created, as the workers do; a store that cannot be opened is a start-up error.
pub fn open_configured(intake: &IntakeConfig) -> std::io::Result<Option<AudioStore>> {
    match intake.recordings_store.as_deref() {
        None => Ok(None),
        Some(url) => open(url).map_err(std::io::Error::other),
    }
}

/// Opens a store URL with the workers' rules ([`moked_jobs::audio_store::open`]); `Ok(None)`
/// for `memory://`, which is a store of its own process.
pub fn open(url: &str) -> Result<Option<AudioStore>, String> {
    if url.starts_with("memory://") {
        tracing::info!("RECORDINGS_STORE=memory:// is per process: recordings not served");
        return Ok(None);
    }
    moked_jobs::audio_store::open(url)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A single byte range asked for: `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes).
/// `Ok(None)`: no range, or one we do not honour (the whole file is served); `Err`: a range
/// that can never be satisfied (416).
fn requested_range(headers: &HeaderMap) -> Result<Option<GetRange>, ApiError> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    if start.trim().is_empty() {
        return Ok(match end.trim().parse::<u64>() {
            Ok(last) if last > 0 => Some(GetRange::Suffix(last)),
            _ => None,
        });
    }
    let Ok(start) = start.trim().parse::<u64>() else {
        return Ok(None);
    };
    match end.trim() {
        "" => Ok(Some(GetRange::Offset(start))),
        end => match end.parse::<u64>() {
            Ok(end) if end >= start => end
                .checked_add(1)
                .map(|stop| Some(GetRange::Bounded(start..stop)))
                .ok_or_else(|| unsatisfiable(format!("range end {end} is past any audio"))),
            _ => Ok(None),
        },
    }
}

/// 416 with its reason.
fn unsatisfiable(reason: String) -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        reason,
    )
}

/// The audio of a stored recording.
#[utoipa::path(
    get,
    path = "/recordings/{recording_sid}/audio",
    tag = "calls",
    params(("recording_sid" = String, Path, description = "Twilio RecordingSid")),
    responses(
        (status = 200, description = "The audio (audio/x-wav or audio/mpeg)", content_type = "audio/*", body = Vec<u8>),
        (status = 206, description = "The requested byte range", content_type = "audio/*", body = Vec<u8>),
        (status = 404, description = "No such recording, not stored yet, or no recordings store", body = schema::ErrorBody),
        (status = 416, description = "The byte range cannot be satisfied (`range_not_satisfiable`)", body = schema::ErrorBody),
    )
)]
pub async fn audio(
    State(state): State<AppState>,
    Path(recording_sid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let recording = get_recording(&state.db, recording_sid.trim())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no recording {recording_sid}")))?;
    let Some(store) = &state.recordings else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "recordings_unavailable",
            "this intake has no recordings store (RECORDINGS_STORE)",
        ));
    };
    let key = match (&recording.media_location, recording.status.as_str()) {
        (Some(key), "stored") => key.clone(),
        (_, status) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_stored",
                format!("recording {recording_sid} is not stored (status {status})"),
            ));
        }
    };
    let location = StorePath::parse(&key)
        .map_err(|e| ApiError::unavailable("recordings store", &format!("bad stored key: {e}")))?;
    let range = requested_range(&headers)?;
    let partial = range.is_some();
    let options = GetOptions {
        range,
        ..GetOptions::default()
    };
    let got = match store.get_opts(&location, options).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_stored",
                format!("the audio of recording {recording_sid} is missing from the store"),
            ));
        }
        Err(e) if partial && e.to_string().to_ascii_lowercase().contains("range") => {
            return Err(unsatisfiable(e.to_string()));
        }
        Err(e) => return Err(ApiError::unavailable("recordings store", &e)),
    };
    let total = got.meta.size;
    let served = got.range.clone();
    let content_type = recording
        .content_type
        .clone()
        .filter(|c| HeaderValue::from_str(c).is_ok())
        .unwrap_or_else(|| "audio/x-wav".to_owned());
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("audio/x-wav")),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(served.end - served.start),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{total}",
            served.start,
            served.end.saturating_sub(1)
        )) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Option<GetRange> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).ok()?);
        requested_range(&h).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    #[test]
    fn ranges_at_the_edge_of_u64_are_checked_not_overflowed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_static("bytes=0-18446744073709551615"),
        );
        let e = requested_range(&h).expect_err("no audio reaches 2^64 bytes");
        assert_eq!(e.status, StatusCode::RANGE_NOT_SATISFIABLE);
        // A start at u64::MAX is read as asked; the store then answers it unsatisfiable (416).
        assert_eq!(
            range("bytes=18446744073709551615-"),
            Some(GetRange::Offset(u64::MAX))
        );
        assert_eq!(
            range("bytes=18446744073709551614-18446744073709551614"),
            Some(GetRange::Bounded(u64::MAX - 1..u64::MAX))
        );
        // One past u64::MAX does not parse: not a range we honour, the whole file.
        assert_eq!(range("bytes=0-18446744073709551616"), None);
    }

    #[test]
    fn single_byte_ranges_are_read_and_anything_else_means_the_whole_file() {
        assert_eq!(range("bytes=0-"), Some(GetRange::Offset(0)));
        assert_eq!(range("bytes=10-19"), Some(GetRange::Bounded(10..20)));
        assert_eq!(range("bytes=5-1"), None);
        assert_eq!(range("bytes=0-1,4-5"), None);
        assert_eq!(range("bytes=-500"), Some(GetRange::Suffix(500)));
        assert_eq!(range("bytes=-0"), None);
        assert_eq!(range("items=0-1"), None);
    }

    #[test]
    fn stores_open_by_scheme_and_memory_means_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("file://{}/rec", dir.path().display());
        assert!(matches!(open(&url), Ok(Some(_))));
        assert!(matches!(open("memory://"), Ok(None)));
        assert!(open("ftp://x/y").is_err());
        assert!(open("file://").is_err());
    }
}

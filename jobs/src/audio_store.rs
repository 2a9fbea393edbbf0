//! Where recordings are kept: an [`ObjectStore`] opened from `RECORDINGS_STORE`.
//!
//! | RECORDINGS_STORE | store | notes |
//! |---|---|---|
//! | `file://data/recordings` (default), `file:///var/lib/moked/recordings` | local filesystem | relative paths are relative to the working directory; the folder is created; writes are fsynced (a copy is durable before Twilio's is deleted) |
//! | `s3://bucket/prefix` | Amazon S3 and compatibles | cargo feature `s3` (default on); credentials and region from the usual `AWS_*` env vars (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for MinIO/R2, …) |
//! | `gs://bucket/prefix` | Google Cloud Storage | cargo feature `gcs` (default on); `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS` |
//! | `memory://` | in memory | tests only |
//!
//! **Why these features.** `object_store` 0.14 builds its cloud clients on reqwest 0.13, rustls
//! and aws-lc-rs — the same crates sqlx and our Twilio client already compile — so `aws` and `gcp`
//! add only object_store's own cloud modules and a few small crates (quick-xml 0.41, crc-fast,
//! md-5, serde_urlencoded). Azure is left out (nobody asked for it; one more feature when they
//! do). A build without them (`--no-default-features`) rejects `s3://`/`gs://` at start-up with a
//! message naming the missing feature, rather than failing on the first recording.
//!
//! It lives in the shared crate because both the workers (which write recordings) and the
//! intake (which serves them to operators) open it by the same rules; it is the one outside
//! client this crate holds.
//!
//! A bucket URL's path is a prefix: every key (`recordings/{business}/{yyyy}/{mm}/{sid}.wav`) is
//! stored under it.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

/// The object store holding recordings.
pub type AudioStore = Arc<dyn ObjectStore>;

/// Why `RECORDINGS_STORE` could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("invalid RECORDINGS_STORE `{url}`: {reason}")]
pub struct AudioStoreError {
    url: String,
    reason: String,
}

/// Opens the store `RECORDINGS_STORE` names (see the module doc).
pub fn open(url: &str) -> Result<AudioStore, AudioStoreError> {
    let err = |reason: String| AudioStoreError {
        url: url.to_owned(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(err("no folder given".into()));
        }
        std::fs::create_dir_all(path).map_err(|e| err(format!("cannot create the folder: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| err(e.to_string()))?
            .with_fsync(true);
        return Ok(Arc::new(fs));
    }
    if url == "memory://" || url.starts_with("memory://") {
        return Ok(Arc::new(InMemory::new()));
    }
    let parsed = url::Url::parse(url).map_err(|e| err(e.to_string()))?;
    let prefix = parsed.path().trim_matches('/').to_owned();
    let bucket_url = format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    );
    let store: AudioStore = match parsed.scheme() {
        "s3" => s3(&bucket_url).map_err(err)?,
        "gs" => gcs(&bucket_url).map_err(err)?,
        other => {
            return Err(err(format!(
                "scheme `{other}` is not supported (use file://, s3:// or gs://)"
            )));
        }
    };
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

#[cfg(feature = "s3")]
fn s3(bucket_url: &str) -> Result<AudioStore, String> {
    object_store::aws::AmazonS3Builder::from_env()
        .with_url(bucket_url)
        .build()
        .map(|s| Arc::new(s) as AudioStore)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "s3"))]
fn s3(_: &str) -> Result<AudioStore, String> {
    Err("this build has no S3 support (cargo feature `s3` of moked-jobs)".into())
}

#[cfg(feature = "gcs")]
fn gcs(bucket_url: &str) -> Result<AudioStore, String> {
    object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_url(bucket_url)
        .build()
        .map(|s| Arc::new(s) as AudioStore)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "gcs"))]
fn gcs(_: &str) -> Result<AudioStore, String> {
    Err("this build has no Google Cloud Storage support (cargo feature `gcs` of moked-jobs)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_open_relative_and_absolute_folders_and_unknown_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let abs = format!("file://{}/rec", dir.path().display());
        assert!(open(&abs).is_ok());
        assert!(dir.path().join("rec").is_dir());
        assert!(open("memory://").is_ok());
        let e = open("ftp://x/y")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("RECORDINGS_STORE") && e.contains("ftp"), "{e}");
        assert!(open("file://").is_err());
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_urls_open_with_a_prefix_without_touching_the_network() {
        // Building the client makes no request; credentials are looked up lazily.
        let store = open("s3://moked-test-bucket/some/prefix");
        assert!(store.is_ok(), "{:?}", store.err());
    }
}

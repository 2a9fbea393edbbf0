//! `clock.cleanup` (default daily at 03:30): removes what nobody needs any more.
//!
//! 1. **Jobs**: done and discarded jobs finished more than `JOB_RETENTION` ago
//!    ([`Queue::prune`]); dead jobs older than `DEAD_JOB_RETENTION` (30 days) and, beyond the
//!    newest `DEAD_JOB_MAX` (50,000), the oldest ones ([`Queue::prune_dead`]). Dead jobs wait
//!    for an operator, but a kind that keeps failing must not fill the queue's store: on Redis
//!    under `noeviction` a full memory fails every enqueue, so every webhook would get 503.
//!    Counted in `moked_jobs_pruned_total{state}` (`finished` or `dead`).
//! 2. **Webhook dedupe keys** past their TTL: the database queue deletes expired
//!    `webhook_receipt` rows in the same prune; Redis keys carry their own TTL and expire alone.
//! 3. **Reconcile checks** older than `RECONCILE_MAX_AGE` plus a day (their items are past the
//!    reconcile horizon).
//! 4. **Recordings past `RECORDING_RETENTION_DAYS`** (when set), for `file://` stores only: the
//!    audio of every recording stored longer ago is deleted and the row marked `expired`
//!    ([`moked_jobs::store::recordings`]); the row, the transcript and the timeline stay. Bucket
//!    stores (`s3://`, `gs://`) should expire objects with the bucket's lifecycle rules, which
//!    cost no requests from here — the task says so in its log instead.
//! 5. **Orphaned partial downloads**: an upload to a `file://` store is written to
//!    `{key}#{n}` beside its final name and renamed when complete; a worker killed mid-download
//!    leaves that file behind. Those older than [`ORPHAN_AGE`] are deleted, and so are the
//!    transcriber's split parts (`moked-part-*.wav` in the temp folder) left by a killed worker.
//!    The download's own temporary file has an anonymous name (`.tmp…` in the temp folder) that
//!    cannot be told from other programs' files; it is removed on drop and by the OS's temp
//!    cleaning otherwise.
//!
//! Work is bounded per run (pages of [`PAGE`] recordings, at most [`MAX_EXPIRED_PER_RUN`]); what
//! is left goes the next day.
//!
//! [`Queue::prune`]: moked_jobs::queue::Queue::prune
//! [`Queue::prune_dead`]: moked_jobs::queue::Queue::prune_dead

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use moked_jobs::kinds::ClockCleanup;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::reconcile::prune_checks;
use moked_jobs::store::recordings::{mark_recording_expired, recordings_stored_before};
use object_store::ObjectStoreExt;

use super::Ctx;

/// A partial file older than this belongs to no running download (downloads are claimed for 15
/// minutes at most).
pub const ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Recordings expired per page.
pub const PAGE: u32 = 200;

/// Recordings expired per run at most.
pub const MAX_EXPIRED_PER_RUN: u32 = 10_000;

/// The prefix of the transcriber's split parts in the temp folder.
pub const PART_PREFIX: &str = "moked-part-";

/// What one run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Done and discarded jobs deleted.
    pub jobs: u64,
    /// Dead jobs deleted (past `DEAD_JOB_RETENTION` or beyond `DEAD_JOB_MAX`).
    pub dead_jobs: u64,
    /// Reconcile checks forgotten.
    pub checks: u64,
    /// Recordings whose audio was deleted.
    pub recordings_expired: u32,
    /// Recordings whose audio could not be deleted (tried again next run).
    pub recordings_failed: u32,
    /// Orphaned partial files deleted.
    pub orphans: u32,
}

/// Handles one cleanup tick.
#[tracing::instrument(skip_all, fields(tick = %job.0.tick))]
pub async fn run(ctx: &Ctx, job: ClockCleanup, _claim: &Claim) -> Result<(), JobError> {
    let now = Utc::now();
    let mut summary = Summary::default();
    let retention = chrono::Duration::from_std(ctx.core.job_retention)
        .map_err(|e| JobError::Permanent(format!("JOB_RETENTION out of range: {e}")))?;
    summary.jobs = ctx
        .queue
        .prune(now - retention)
        .await
        .map_err(JobError::transient)?;
    let dead_retention = chrono::Duration::from_std(ctx.core.dead_job_retention)
        .map_err(|e| JobError::Permanent(format!("DEAD_JOB_RETENTION out of range: {e}")))?;
    summary.dead_jobs = ctx
        .queue
        .prune_dead(
            // A retention longer than the calendar goes back to its start instead of panicking.
            now.checked_sub_signed(dead_retention)
                .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC),
            ctx.core.dead_job_max,
        )
        .await
        .map_err(JobError::transient)?;
    metrics::counter!("moked_jobs_pruned_total", "state" => "finished").increment(summary.jobs);
    metrics::counter!("moked_jobs_pruned_total", "state" => "dead").increment(summary.dead_jobs);
    let horizon = chrono::Duration::from_std(ctx.config.tasks.reconcile_max_age)
        .unwrap_or(chrono::Duration::MAX / 2)
        + chrono::Duration::days(1);
    summary.checks = prune_checks(&ctx.db, now - horizon).await?;

    let folder = file_store_folder(&ctx.config.recordings_store);
    match (ctx.config.tasks.recording_retention_days, &folder) {
        (Some(days), Some(_)) => expire_recordings(ctx, days, now, &mut summary).await?,
        (Some(days), None) => tracing::info!(
            retention_days = days,
            "RECORDING_RETENTION_DAYS applies to file:// stores only; expire bucket objects with the bucket's lifecycle rules"
        ),
        (None, _) => {}
    }
    let mut roots: Vec<(PathBuf, Orphan)> = vec![(std::env::temp_dir(), Orphan::SplitPart)];
    if let Some(folder) = folder {
        roots.push((folder, Orphan::StagedUpload));
    }
    summary.orphans = tokio::task::spawn_blocking(move || {
        roots
            .iter()
            .map(|(root, kind)| remove_orphans(root, *kind, ORPHAN_AGE))
            .sum()
    })
    .await
    .map_err(|e| JobError::Transient(format!("orphan sweep panicked: {e}")))?;

    tracing::info!(
        pruned_jobs = summary.jobs,
        pruned_dead_jobs = summary.dead_jobs,
        pruned_checks = summary.checks,
        recordings_expired = summary.recordings_expired,
        recordings_failed = summary.recordings_failed,
        orphans_removed = summary.orphans,
        "cleanup done"
    );
    Ok(())
}

/// The folder of a `file://` store, `None` for any other store.
pub fn file_store_folder(store: &str) -> Option<PathBuf> {
    store
        .strip_prefix("file://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

async fn expire_recordings(
    ctx: &Ctx,
    days: u32,
    now: chrono::DateTime<Utc>,
    summary: &mut Summary,
) -> Result<(), JobError> {
    let before = now - chrono::Duration::days(i64::from(days));
    while summary.recordings_expired < MAX_EXPIRED_PER_RUN {
        let page = recordings_stored_before(&ctx.db, before, PAGE).await?;
        let full = page.len() == PAGE as usize;
        let mut failed = false;
        for rec in page {
            let path = object_store::path::Path::from(rec.media_location.as_str());
            match ctx.recordings.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    if mark_recording_expired(&ctx.db, &rec.recording_sid, days, now).await? {
                        summary.recordings_expired += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(recording_sid = %rec.recording_sid, error = %e, "could not delete an expired recording; next run tries again");
                    summary.recordings_failed += 1;
                    failed = true;
                }
            }
        }
        // A row that could not be deleted would come back in the next page: stop for today.
        if !full || failed {
            break;
        }
    }
    Ok(())
}

/// The kinds of leftover file the sweep recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    /// `{key}#{n}`: an unfinished upload to a `file://` object store (searched recursively).
    StagedUpload,
    /// `moked-part-*.wav`: a transcriber split part (top level of the temp folder only).
    SplitPart,
}

impl Orphan {
    /// Whether a file name is this kind of leftover.
    pub fn matches(self, name: &str) -> bool {
        match self {
            Orphan::StagedUpload => name.rsplit_once('#').is_some_and(|(stem, n)| {
                !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            }),
            Orphan::SplitPart => name.starts_with(PART_PREFIX) && name.ends_with(".wav"),
        }
    }
}

/// Deletes the files under `root` that are `kind` leftovers last modified more than `age` ago.
/// Returns how many went. Unreadable folders and files are skipped.
pub fn remove_orphans(root: &Path, kind: Orphan, age: Duration) -> u32 {
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if kind == Orphan::StagedUpload {
                    folders.push(entry.path());
                }
                continue;
            }
            let name = entry.file_name();
            let old = meta.modified().is_ok_and(|m| m < cutoff);
            if meta.is_file() && old && kind.matches(&name.to_string_lossy()) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not remove a leftover partial file")
                    }
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_uploads_and_split_parts_are_recognised_by_name_only() {
        assert!(Orphan::StagedUpload.matches("RE0123.wav#1"));
        assert!(Orphan::StagedUpload.matches("RE0123.wav#12"));
        assert!(!Orphan::StagedUpload.matches("RE0123.wav"));
        assert!(!Orphan::StagedUpload.matches("#1"));
        assert!(!Orphan::StagedUpload.matches("RE0123.wav#x"));
        assert!(Orphan::SplitPart.matches("moked-part-abc123.wav"));
        assert!(!Orphan::SplitPart.matches(".tmpabc123"));
    }

    #[test]
    fn only_old_leftovers_are_removed_and_finished_recordings_stay() {
        let dir = tempfile::tempdir().unwrap();
        let month = dir.path().join("recordings/1/2026/03");
        std::fs::create_dir_all(&month).unwrap();
        let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for name in ["REa.wav", "REb.wav#1", "REc.wav#2"] {
            std::fs::write(month.join(name), b"x").unwrap();
        }
        let f = std::fs::File::options()
            .write(true)
            .open(month.join("REb.wav#1"))
            .unwrap();
        f.set_modified(old).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(month.join("REa.wav"))
            .unwrap();
        f.set_modified(old).unwrap();
        assert_eq!(
            remove_orphans(dir.path(), Orphan::StagedUpload, ORPHAN_AGE),
            1
        );
        assert!(month.join("REa.wav").exists(), "a finished recording stays");
        assert!(!month.join("REb.wav#1").exists(), "an old partial goes");
        assert!(
            month.join("REc.wav#2").exists(),
            "a fresh partial may still be written"
        );
    }
}

//! `clock.reconcile`: repairs call, message and recording state that a lost webhook left behind,
//! from Twilio's REST API.
//!
//! Webhooks get lost (Twilio gives up after its retries, the intake was down, a deploy raced).
//! Every run (default every 5 minutes) looks at three kinds of local state, each found by its
//! own query in [`moked_jobs::store::reconcile`], oldest first and at most `RECONCILE_BATCH` of
//! each:
//!
//! 1. **Calls** not in a terminal status `RECONCILE_CALLS_AFTER` (10 min) after their last change
//!    → `GET Calls/{Sid}.json`, and Twilio's status applied through the same monotonic store
//!    function as the callbacks ([`apply_call_status_from`]), as an event with source
//!    `reconcile` — a late or repeated answer never moves a call back.
//! 2. **Outbound Twilio WhatsApp messages** still queued/accepted/scheduled/sending/sent
//!    `RECONCILE_MESSAGES_AFTER` (1 h) after their last change → `GET Messages/{Sid}.json`,
//!    applied like a status callback ([`apply_status_callback`]: monotonic, ErrorCode kept).
//! 3. **Completed calls without a recording row** `RECONCILE_CALLS_AFTER` after they ended →
//!    `GET Calls/{Sid}/Recordings.json` (all pages), and a `recording.process` job for each
//!    completed recording under the intake's dedupe key `recording:{RecordingSid}`, so a late
//!    webhook or another run creates nothing new.
//!
//! **Bounded and paced.** At most `RECONCILE_BATCH` items of each kind per run; the rest wait for
//! the next run (checked items are held back — see below — so the batch pages through a
//! backlog). Twilio requests are at least `RECONCILE_PACE` apart.
//!
//! **Held back, not redone.** After each item the run records a check ([`mark_checked`]): the
//! item is not a candidate again for `after × 2^(checks−1)` (capped at a day). Items older than
//! `RECONCILE_MAX_AGE` are left alone.
//!
//! **Failures.** A Twilio 429 stops the run at once and returns `RetryAfter` (Twilio's
//! `Retry-After`, else [`RATE_LIMITED_WAIT`]): what was applied stays applied, and the retried job
//! finds those items either no longer stale or held back by their check, so nothing is done
//! twice. 5xx, timeouts and unreadable answers stop the run as transient; 401/403 stop it as
//! permanent (the credentials are wrong: every item would fail). Any other 4xx (404 for a sid
//! Twilio does not know) concerns that item only: it is recorded as its check's outcome and the
//! run goes on. Without Twilio credentials the task does nothing.
//!
//! Logs carry sids and statuses, never phone numbers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use moked_jobs::kinds::{ClockReconcile, RecordingProcess};
use moked_jobs::queue::{Enqueued, NewJob};
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::calls::{CallStatusChange, apply_call_status_from};
use moked_jobs::store::customers::Number;
use moked_jobs::store::reconcile::{
    CheckKind, Window, completed_calls_without_recording, mark_checked, stale_open_calls,
    stale_outbound_messages,
};
use moked_jobs::store::whatsapp::statuses::{
    StatusCallback, StatusChange, StatusOutcome, apply_status_callback,
};
use tracing::{info, warn};

use super::Ctx;
use crate::clients::twilio::{Recording, TwilioError};

/// The event source of statuses learned here.
pub const SOURCE: &str = "reconcile";

/// How long to wait after a 429 that came without `Retry-After`.
pub const RATE_LIMITED_WAIT: Duration = Duration::from_secs(60);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls asked about.
    pub calls_checked: u32,
    /// Calls whose status moved.
    pub calls_advanced: u32,
    /// Messages asked about.
    pub messages_checked: u32,
    /// Messages whose status moved.
    pub messages_advanced: u32,
    /// Completed calls whose recordings were listed.
    pub recording_calls_checked: u32,
    /// `recording.process` jobs created.
    pub recordings_enqueued: u32,
    /// Items Twilio answered with a 4xx for (recorded, skipped).
    pub skipped: u32,
}

/// Handles one reconcile tick.
#[tracing::instrument(skip_all, fields(tick = %job.0.tick))]
pub async fn run(ctx: &Ctx, job: ClockReconcile, _claim: &Claim) -> Result<(), JobError> {
    let twilio = &ctx.core.twilio;
    if twilio.account_sid.is_none() || twilio.auth_token.is_none() {
        info!("reconcile skipped: TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN is unset");
        return Ok(());
    }
    let mut run = Run {
        ctx,
        now: Utc::now(),
        pace: Pace::new(ctx.config.tasks.reconcile_pace),
        summary: Summary::default(),
    };
    let result = run.all().await;
    let s = &run.summary;
    let stopped = result.as_ref().err().map(ToString::to_string);
    info!(
        calls_checked = s.calls_checked,
        calls_advanced = s.calls_advanced,
        messages_checked = s.messages_checked,
        messages_advanced = s.messages_advanced,
        recording_calls_checked = s.recording_calls_checked,
        recordings_enqueued = s.recordings_enqueued,
        skipped = s.skipped,
        stopped_by = stopped.as_deref().unwrap_or("-"),
        "reconcile done"
    );
    result
}

/// Spaces Twilio requests at least `every` apart.
struct Pace {
    every: Duration,
    last: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(every: Duration) -> Self {
        Pace { every, last: None }
    }

    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.every).await;
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

/// What a failed Twilio request means for the run.
enum Failure {
    /// This item only (e.g. 404): record it and go on.
    Skip(String),
    /// Stop the run with this error.
    Stop(JobError),
}

fn failure(e: &TwilioError) -> Failure {
    match e {
        TwilioError::Status {
            status,
            code,
            retry_after,
            ..
        } if *status == 429 || *code == Some(20429) => Failure::Stop(JobError::RetryAfter {
            after: retry_after.unwrap_or(RATE_LIMITED_WAIT),
            reason: format!("reconcile paused by Twilio rate limiting: {e}"),
        }),
        TwilioError::Status { status, .. } if *status == 401 || *status == 403 => {
            Failure::Stop(JobError::Permanent(format!(
                "Twilio refused our credentials; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: {e}"
            )))
        }
        TwilioError::Status { status, code, .. } if *status < 500 => Failure::Skip(match code {
            Some(code) => format!("HTTP {status} (code {code})"),
            None => format!("HTTP {status}"),
        }),
        other => Failure::Stop(other.to_job_error()),
    }
}

/// One run's state.
struct Run<'a> {
    ctx: &'a Ctx,
    now: DateTime<Utc>,
    pace: Pace,
    summary: Summary,
}

impl Run<'_> {
    async fn all(&mut self) -> Result<(), JobError> {
        self.calls().await?;
        self.messages().await?;
        self.recordings().await
    }

    fn ago(&self, d: Duration) -> DateTime<Utc> {
        self.now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    }

    /// The candidates stale for `after`: changed before `after` ago and after the horizon
    /// (`RECONCILE_MAX_AGE` ago), at most `RECONCILE_BATCH`.
    fn window(&self, after: Duration) -> Window {
        let tasks = &self.ctx.config.tasks;
        Window {
            before: self.ago(after),
            horizon: self.ago(tasks.reconcile_max_age),
            now: self.now,
            limit: tasks.reconcile_batch,
        }
    }

    async fn check(
        &self,
        kind: CheckKind,
        sid: &str,
        outcome: &str,
        after: Duration,
    ) -> Result<(), JobError> {
        mark_checked(&self.ctx.db, kind, sid, outcome, after, self.now).await?;
        Ok(())
    }

    /// A Twilio failure about one item: skip it (recorded) or stop the run.
    async fn failed(
        &mut self,
        kind: CheckKind,
        sid: &str,
        after: Duration,
        e: &TwilioError,
    ) -> Result<(), JobError> {
        match failure(e) {
            Failure::Skip(why) => {
                let error = moked_jobs::phone::mask_in_text(&e.to_string());
                warn!(kind = kind.as_str(), sid, %error, "Twilio could not tell us about this item; skipped");
                self.summary.skipped += 1;
                self.check(kind, sid, &why, after).await
            }
            Failure::Stop(err) => Err(err),
        }
    }

    /// Asks Twilio about one item once the pace allows: its answer, or `None` when the failure
    /// concerns this item only (recorded as its check); any other failure stops the run.
    async fn ask<T, F>(
        &mut self,
        kind: CheckKind,
        sid: &str,
        after: Duration,
        request: impl FnOnce() -> F,
    ) -> Result<Option<T>, JobError>
    where
        F: Future<Output = Result<T, TwilioError>>,
    {
        self.pace.wait().await;
        match request().await {
            Ok(answer) => Ok(Some(answer)),
            Err(e) => self.failed(kind, sid, after, &e).await.map(|()| None),
        }
    }

    async fn calls(&mut self) -> Result<(), JobError> {
        let ctx = self.ctx;
        let after = ctx.config.tasks.reconcile_calls_after;
        for call in stale_open_calls(&ctx.db, &self.window(after)).await? {
            let sid = call.call_sid.as_str();
            let asked = self.ask(CheckKind::Call, sid, after, || ctx.twilio.fetch_call(sid));
            let Some(remote) = asked.await? else {
                continue;
            };
            self.summary.calls_checked += 1;
            let change = CallStatusChange {
                call_sid: call.call_sid.clone(),
                status: remote.status.clone(),
                sequence: None,
                duration_s: remote
                    .duration
                    .as_deref()
                    .and_then(|d| d.trim().parse().ok()),
                from: remote.from.as_deref().map(Number::parse),
                to: remote.to.as_deref().map(Number::parse),
                at: self.now,
            };
            let outcome = apply_call_status_from(&self.ctx.db, &change, SOURCE).await?;
            if outcome.advanced {
                self.summary.calls_advanced += 1;
                info!(call_sid = %call.call_sid, from = %call.status, to = %remote.status, "call status reconciled");
            }
            self.check(CheckKind::Call, &call.call_sid, &remote.status, after)
                .await?;
        }
        Ok(())
    }

    async fn messages(&mut self) -> Result<(), JobError> {
        let ctx = self.ctx;
        let after = ctx.config.tasks.reconcile_messages_after;
        for message in stale_outbound_messages(&ctx.db, &self.window(after)).await? {
            let sid = message.provider_sid.as_str();
            let asked = self.ask(CheckKind::Message, sid, after, || {
                ctx.twilio.fetch_message(sid)
            });
            let Some(remote) = asked.await? else {
                continue;
            };
            self.summary.messages_checked += 1;
            let callback = StatusCallback {
                message_sid: sid.to_owned(),
                change: StatusChange {
                    status: remote.status.clone(),
                    error_code: remote.error_code,
                    error_message: remote.error_message.clone(),
                    at: self.now,
                },
                our_id: Some(message.id.clone()),
            };
            if apply_status_callback(&self.ctx.db, &callback).await? == StatusOutcome::Applied {
                self.summary.messages_advanced += 1;
                info!(message_sid = sid, message_id = %message.id, from = %message.status, to = %remote.status, "message status reconciled");
            }
            self.check(CheckKind::Message, sid, &remote.status, after)
                .await?;
        }
        Ok(())
    }

    async fn recordings(&mut self) -> Result<(), JobError> {
        let ctx = self.ctx;
        let after = ctx.config.tasks.reconcile_calls_after;
        for call in completed_calls_without_recording(&ctx.db, &self.window(after)).await? {
            let sid = call.call_sid.as_str();
            let asked = self.ask(CheckKind::Recording, sid, after, || {
                ctx.twilio.list_call_recordings(sid)
            });
            let Some(listed) = asked.await? else {
                continue;
            };
            self.summary.recording_calls_checked += 1;
            let (mut created, mut known, mut unfinished) = (0u32, 0u32, 0u32);
            for recording in listed
                .iter()
                .filter(|r| r.call_sid.as_deref().is_none_or(|c| c == sid))
            {
                if !matches!(recording.status.as_deref(), None | Some("completed")) {
                    unfinished += 1;
                    continue;
                }
                match self.enqueue(sid, recording).await? {
                    Enqueued::Created(job_id) => {
                        created += 1;
                        info!(call_sid = sid, recording_sid = %recording.sid, %job_id, "missing recording enqueued");
                    }
                    Enqueued::Duplicate(_) => known += 1,
                }
            }
            self.summary.recordings_enqueued += created;
            let outcome = format!(
                "{} listed, {created} enqueued, {known} already queued, {unfinished} not completed",
                listed.len()
            );
            self.check(CheckKind::Recording, sid, &outcome, after)
                .await?;
        }
        Ok(())
    }

    /// The `recording.process` job of a listed recording, exactly as the intake would enqueue it.
    async fn enqueue(&self, call_sid: &str, recording: &Recording) -> Result<Enqueued, JobError> {
        let twilio = &self.ctx.core.twilio;
        let account = twilio.account_sid.as_deref().unwrap_or_default();
        let job = RecordingProcess {
            recording_sid: recording.sid.clone(),
            call_sid: call_sid.to_owned(),
            recording_url: format!(
                "{}/2010-04-01/Accounts/{account}/Recordings/{}",
                twilio.api_base, recording.sid
            ),
            duration_s: recording
                .duration
                .as_deref()
                .and_then(|d| d.trim().parse().ok()),
            received_at: self.now,
        };
        let new = NewJob::new(&job).dedupe(
            format!("recording:{}", recording.sid),
            self.ctx.core.dedupe_ttl,
        );
        self.ctx
            .queue
            .enqueue(new)
            .await
            .map_err(JobError::transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<i64>, retry: Option<u64>) -> TwilioError {
        crate::clients::twilio::status_error("GET", status, code, retry)
    }

    #[test]
    fn a_429_stops_the_run_with_retry_after_and_a_404_skips_only_the_item() {
        assert!(matches!(
            failure(&status(429, Some(20429), Some(7))),
            Failure::Stop(JobError::RetryAfter { after, .. }) if after == Duration::from_secs(7)
        ));
        assert!(matches!(
            failure(&status(429, None, None)),
            Failure::Stop(JobError::RetryAfter { after, .. }) if after == RATE_LIMITED_WAIT
        ));
        assert!(matches!(
            failure(&status(401, Some(20003), None)),
            Failure::Stop(JobError::Permanent(_))
        ));
        assert!(matches!(
            failure(&status(503, None, None)),
            Failure::Stop(JobError::Transient(_))
        ));
        assert!(
            matches!(failure(&status(404, Some(20404), None)), Failure::Skip(why) if why.contains("20404"))
        );
    }
}

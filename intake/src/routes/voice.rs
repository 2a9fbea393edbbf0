//! Twilio voice webhooks.
//!
//! | path | answer | enqueues | dedupe key (the payload's natural key) |
//! |---|---|---|---|
//! | `/webhook/incoming_call` | TwiML: greeting, pause, `<Record>` | `call.started` | `call.started:{CallSid}` |
//! | `/webhook/handle_recording` | TwiML: thanks, hang up | `recording.process` | always `recording:{RecordingSid}` |
//! | `/webhook/recording_status` | 204 | `recording.process` when `RecordingStatus=completed` | always `recording:{RecordingSid}` |
//! | `/webhook/call_status` | 204 | `call.status` | `call.status:{CallSid}:{CallStatus}:{SequenceNumber}` |
//!
//! `I-Twilio-Idempotency-Token` never changes a key (see [`super`]).
//!
//! Both recording webhooks share one key so the `<Record>` action and the status callback of
//! the same recording make exactly one job, whichever arrives first.
//!
//! Limits: incoming calls per caller (`From`, over it the call is rejected busy and nothing is
//! enqueued; callers with a withheld number share one budget), recording callbacks per CallSid
//! and call status callbacks per CallSid (429).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::StatusCode;
use moked_jobs::kinds::{CallStarted, CallStatus, RecordingProcess};
use moked_jobs::phone::mask_raw;

use super::enqueue::enqueue;
use super::note_sid;
use crate::error::IntakeError;
use crate::ratelimit::{Decision, Limit};
use crate::signature::TwilioForm;
use crate::{AppState, limit};

/// `POST /webhook/incoming_call`.
pub async fn incoming_call(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<Response, IntakeError> {
    let call = call_started(&hook)?;
    note_sid(&call.call_sid);
    if let Decision::Limited { .. } = state.limiter.hit(Limit::Calls, &call.from).await {
        tracing::info!(
            from = %mask_raw(&call.from),
            "caller over RATE_LIMIT_CALLS: rejected busy, nothing enqueued"
        );
        return Ok(state.answers.reject_busy.clone().into_response());
    }
    enqueue(&state, &call).await?;
    Ok(state.answers.incoming_call.clone().into_response())
}

/// `POST /webhook/handle_recording` (the `<Record action>`).
pub async fn handle_recording(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<Response, IntakeError> {
    enqueue_recording(&state, &hook, recording_from_action).await?;
    Ok(state.answers.after_recording.clone().into_response())
}

/// `POST /webhook/recording_status`.
pub async fn recording_status(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<StatusCode, IntakeError> {
    enqueue_recording(&state, &hook, recording_from_status).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The two recording webhooks: CallSid required, limited per CallSid, then the recording the
/// webhook names (`recording_of`), if any, enqueued.
async fn enqueue_recording(
    state: &AppState,
    hook: &TwilioForm,
    recording_of: fn(&TwilioForm) -> Result<Option<RecordingProcess>, IntakeError>,
) -> Result<(), IntakeError> {
    let call_sid = hook.form.require("CallSid")?;
    note_sid(call_sid);
    limit(state, Limit::Recordings, call_sid).await?;
    if let Some(recording) = recording_of(hook)? {
        enqueue(state, &recording).await?;
    }
    Ok(())
}

/// `POST /webhook/call_status`.
pub async fn call_status(
    State(state): State<AppState>,
    hook: TwilioForm,
) -> Result<StatusCode, IntakeError> {
    let status = call_status_of(&hook)?;
    note_sid(&status.call_sid);
    limit(&state, Limit::Status, &status.call_sid).await?;
    enqueue(&state, &status).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `call.started` payload of an incoming call. CallSid is required; a caller without a
/// number (withheld) is kept as the empty string.
pub fn call_started(hook: &TwilioForm) -> Result<CallStarted, IntakeError> {
    let f = &hook.form;
    Ok(CallStarted {
        call_sid: f.require("CallSid")?.to_owned(),
        from: f.get("From").unwrap_or_default().trim().to_owned(),
        to: f.get("To").unwrap_or_default().trim().to_owned(),
        status: f.get_non_empty("CallStatus").map(str::to_owned),
        received_at: Utc::now(),
    })
}

fn recording(hook: &TwilioForm, sid: &str, url: &str) -> Result<RecordingProcess, IntakeError> {
    let f = &hook.form;
    Ok(RecordingProcess {
        recording_sid: sid.to_owned(),
        call_sid: f.require("CallSid")?.to_owned(),
        recording_url: url.to_owned(),
        duration_s: f.get_i64("RecordingDuration"),
        received_at: Utc::now(),
    })
}

/// The recording of a `<Record action>` request, when Twilio made one (a caller who hangs up
/// before speaking may leave none; the caller is thanked either way).
pub fn recording_from_action(hook: &TwilioForm) -> Result<Option<RecordingProcess>, IntakeError> {
    let f = &hook.form;
    match (
        f.get_non_empty("RecordingSid"),
        f.get_non_empty("RecordingUrl"),
    ) {
        (Some(sid), Some(url)) => recording(hook, sid, url).map(Some),
        _ => Ok(None),
    }
}

/// The recording of a status callback: only `RecordingStatus=completed` makes a job, and then
/// RecordingSid and RecordingUrl are required.
pub fn recording_from_status(hook: &TwilioForm) -> Result<Option<RecordingProcess>, IntakeError> {
    let f = &hook.form;
    if f.get_non_empty("RecordingStatus") != Some("completed") {
        return Ok(None);
    }
    recording(hook, f.require("RecordingSid")?, f.require("RecordingUrl")?).map(Some)
}

/// The `call.status` payload. CallSid and CallStatus are required.
pub fn call_status_of(hook: &TwilioForm) -> Result<CallStatus, IntakeError> {
    let f = &hook.form;
    Ok(CallStatus {
        call_sid: f.require("CallSid")?.to_owned(),
        status: f.require("CallStatus")?.to_owned(),
        from: f.get_non_empty("From").map(str::to_owned),
        to: f.get_non_empty("To").map(str::to_owned),
        duration_s: f.get_i64("CallDuration"),
        sequence: f.get_i64("SequenceNumber"),
        received_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::hook;

    #[test]
    fn an_incoming_call_needs_only_its_call_sid() {
        let c = call_started(&hook(&[
            ("CallSid", "CA1"),
            ("From", "+972501234567"),
            ("To", "+97233334444"),
            ("CallStatus", "ringing"),
        ]))
        .expect("valid");
        assert_eq!(
            (c.call_sid.as_str(), c.from.as_str(), c.to.as_str()),
            ("CA1", "+972501234567", "+97233334444")
        );
        assert_eq!(c.status.as_deref(), Some("ringing"));
        assert_eq!(
            call_started(&hook(&[("CallSid", "CA1")]))
                .expect("valid")
                .from,
            ""
        );
        assert_eq!(
            call_started(&hook(&[("From", "+1")])).expect_err("no sid"),
            IntakeError::missing("CallSid")
        );
    }

    #[test]
    fn recordings_come_from_the_action_when_present_and_from_completed_status_only() {
        let full = [
            ("CallSid", "CA1"),
            ("RecordingSid", "RE1"),
            ("RecordingUrl", "https://api.twilio.com/r/RE1"),
            ("RecordingDuration", "7"),
        ];
        let r = recording_from_action(&hook(&full))
            .expect("valid")
            .expect("has one");
        assert_eq!((r.recording_sid.as_str(), r.duration_s), ("RE1", Some(7)));
        assert_eq!(
            recording_from_action(&hook(&full[..1])).expect("valid"),
            None
        );

        let mut status = full.to_vec();
        status.push(("RecordingStatus", "completed"));
        assert!(
            recording_from_status(&hook(&status))
                .expect("valid")
                .is_some()
        );
        status.pop();
        status.push(("RecordingStatus", "in-progress"));
        assert_eq!(recording_from_status(&hook(&status)).expect("valid"), None);
        assert_eq!(
            recording_from_status(&hook(&[
                ("CallSid", "CA1"),
                ("RecordingStatus", "completed")
            ]))
            .expect_err("no sid"),
            IntakeError::missing("RecordingSid")
        );
    }

    #[test]
    fn call_status_reads_sequence_and_duration_leniently() {
        let s = call_status_of(&hook(&[
            ("CallSid", "CA1"),
            ("CallStatus", "completed"),
            ("SequenceNumber", "3"),
            ("CallDuration", "n/a"),
        ]))
        .expect("valid");
        assert_eq!((s.sequence, s.duration_s), (Some(3), None));
        assert_eq!(
            call_status_of(&hook(&[("CallSid", "CA1")])).expect_err("no status"),
            IntakeError::missing("CallStatus")
        );
    }
}

//! Operator retry that does what it says: before a dead (or retrying) job is queued again, its
//! effect is checked and, where needed, prepared, so the retried job really re-attempts it.
//!
//! A handler that finds its work already final returns success (that is what makes redelivery
//! harmless). An operator retry of such a job would therefore end in `done` having done nothing
//! — and `done` reads as "sent". So every operator retry (the API's `POST /api/jobs/{id}/retry`
//! and bulk `POST /api/jobs/retry`, the CLI's `moked-worker jobs retry`, the page's Retry) goes
//! through [`retry`] / [`retry_all`], which decide per kind ([`decide`]):
//!
//! | kind | rule |
//! |---|---|
//! | `call.started`, `call.status`, `whatsapp.status` | queued again as is: the store writes are idempotent and monotonic, so a re-run applies what the failed run could not and changes nothing else |
//! | `whatsapp.inbound` | queued again as is: the message is recorded once and only the media not yet copied are fetched |
//! | `recording.process` | queued again as is: a `failed` download or transcription stage is claimed again (`store::recordings`), a failed Twilio delete or notification is re-run |
//! | `whatsapp.send`, message `queued` without a provider sid | queued again as is: the handler sends it (looking first when an earlier attempt was ambiguous) |
//! | `whatsapp.send`, message refused (`failed`/`undelivered`/`canceled`) without a provider sid | the message goes back to `queued` ([`crate::store::whatsapp::outbound::reopen_refused`]), then the job is queued: it is sent. The refusal stays in the job's attempt history |
//! | `whatsapp.send`, message with a provider sid | **refused**: the provider accepted it; sending again would send a second message |
//! | `whatsapp.send`, message missing or inbound | **refused**: there is nothing to send |
//! | `clock.reconcile`, `clock.cleanup` | queued again as is: both work on the state as it is now |
//! | `clock.health` | **refused**: a health check reports on its own tick (its queue lag is measured from it), and the clock runs a new one every minute; `moked-worker clock --once health` checks now |
//! | any kind, payload that does not decode, or a kind this build does not know | **refused**: it would die again at once; discard it |
//!
//! Each kind's rule is named on its line of the job kind table (`operator_retry …` in
//! [`crate::for_each_job_kind!`]): `requeue`, `refuse_past_health_check` or
//! `send_unless_accepted`, the functions below.
//!
//! A refusal is [`Outcome::Refused`] with a reason (API 409 `not_retryable`, CLI exit 1, the
//! page's banner); the job stays where it was. Bulk retry applies the same rule to each job and
//! reports the refused ones ([`Bulk`]).
//!
//! **Order and races.** A refused message is reopened *before* its job is queued (queued first,
//! a fast worker would see the old final status and finish with nothing sent). If the job then
//! does not move (another operator discarded it meanwhile), the message is put back to its
//! refusal unless the job is queued, running or done by then (someone else's retry is sending
//! it). Dead jobs move only by operator action, so the window is operator against operator.

use crate::kinds::{self, ClockHealth, JobKind, JobPayload, WhatsAppSend};
use crate::queue::{JobDetail, JobId, JobState, ListQuery, Queue, QueueError};
use crate::store::Db;
use crate::store::error::StoreError;
use crate::store::whatsapp::messages;
use crate::store::whatsapp::outbound::{self, Refusal};
use crate::store::whatsapp::statuses::{self, StatusChange, is_terminal_message_status};

/// What an operator retry must do before the job is queued again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue it again as it is; the handler re-attempts the effect.
    Requeue,
    /// Put outbound message `message_id` (refused before any provider sid existed) back to
    /// `queued`, then queue the job: it is sent.
    ReopenMessage {
        /// Our message id.
        message_id: String,
    },
    /// The effect cannot be re-attempted; the reason says why and what to do instead.
    Refuse(String),
}

/// Why a retry could not be carried out (the store or the queue failed).
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an operator retry of one job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Queued again (its effect prepared); the job as it is now.
    Retried(Box<JobDetail>),
    /// No job with this id.
    NotFound,
    /// The job is in a state operators cannot retry (only dead and retrying jobs can).
    WrongState(JobState),
    /// The job's effect cannot be re-attempted; it stays where it was.
    Refused {
        /// The job's kind as stored.
        kind: String,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// A job a bulk retry left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefusedJob {
    /// The job id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: JobId,
    /// Its kind as stored.
    pub kind: String,
    /// Why it was not queued again.
    pub reason: String,
}

/// At most this many refused jobs are listed in a bulk answer (all are counted).
pub const MAX_LISTED_REFUSALS: usize = 100;

/// What a bulk retry did (`POST /api/jobs/retry` answers it as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Retried))]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    /// How many jobs were queued again.
    pub retried: u64,
    /// How many were left alone because their effect cannot be re-attempted (e.g. a WhatsApp
    /// message the provider already accepted); all of them, counted.
    pub refused: u64,
    /// The first 100 of those (`MAX_LISTED_REFUSALS`), with the reason for each.
    pub refusals: Vec<RefusedJob>,
}

/// Decodes `payload` as `T`, or the refusal that says it never will.
fn decoded<T: JobPayload>(payload: &str) -> Result<T, Decision> {
    kinds::decode::<T>(payload).map_err(|e| {
        Decision::Refuse(format!(
            "its payload cannot be run by this build ({e}); it would die again at once, so discard it"
        ))
    })
}

/// Decides whether the effect of a job of `kind` with `payload` can be re-attempted and what
/// must be prepared first (see the module doc's table). Reads the store, changes nothing.
pub async fn decide(db: &Db, kind: &str, payload: &str) -> Result<Decision, StoreError> {
    let Ok(kind) = kind.parse::<JobKind>() else {
        return Ok(Decision::Refuse(format!(
            "kind `{kind}` is unknown to this build, so no worker can run it; discard it"
        )));
    };
    rule_of(db, kind, payload).await
}

/// Generates [`rule_of`] from the job kind table ([`crate::for_each_job_kind!`]): every kind's
/// line names its rule (`operator_retry …`, one of the functions below), so a new kind cannot
/// be added without choosing one.
macro_rules! rule_of_each_kind {
    ($(
        $(#[doc = $doc:literal])+
        $kind:ident = $name:literal, handler $handler:ident, operator_retry $rule:ident;
    )+) => {
        /// Decodes `payload` as the type of `kind` and applies the kind's rule.
        async fn rule_of(db: &Db, kind: JobKind, payload: &str) -> Result<Decision, StoreError> {
            match kind {
                $(JobKind::$kind => match decoded::<kinds::$kind>(payload) {
                    Ok(job) => $rule(db, job).await,
                    Err(refusal) => Ok(refusal),
                },)+
            }
        }
    };
}
crate::for_each_job_kind!(rule_of_each_kind);

/// The rule of most kinds: queued again as is, the handler re-attempts the effect (see the
/// module doc's table for why that is right for each).
async fn requeue<T: JobPayload>(_: &Db, _: T) -> Result<Decision, StoreError> {
    Ok(Decision::Requeue)
}

/// The rule for `clock.health` (see the module doc).
async fn refuse_past_health_check(_: &Db, _: ClockHealth) -> Result<Decision, StoreError> {
    Ok(Decision::Refuse(
        "a health check reports on its own tick (its queue lag is measured from it) and \
         the clock runs a new one every minute; run `moked-worker clock --once health` \
         to check now"
            .into(),
    ))
}

/// The rule for `whatsapp.send` (see the module doc).
async fn send_unless_accepted(db: &Db, job: WhatsAppSend) -> Result<Decision, StoreError> {
    let message_id = job.message_id;
    let Some(message) = messages::get_message(db, &message_id).await? else {
        return Ok(Decision::Refuse(format!(
            "WhatsApp message {message_id} does not exist; there is nothing to send"
        )));
    };
    if message.direction != "outbound" {
        return Ok(Decision::Refuse(format!(
            "WhatsApp message {message_id} is inbound; there is nothing to send"
        )));
    }
    if let Some(sid) = &message.provider_sid {
        return Ok(Decision::Refuse(format!(
            "WhatsApp message {message_id} was accepted by {} as {sid} (status {}); sending it \
             again would send a second message — send a new one instead",
            message.provider, message.status
        )));
    }
    if is_terminal_message_status(&message.status) {
        return Ok(Decision::ReopenMessage { message_id });
    }
    Ok(Decision::Requeue)
}

/// Retries job `id` the way an operator means it: decide ([`decide`]), prepare, queue.
pub async fn retry(queue: &dyn Queue, db: &Db, id: &str) -> Result<Outcome, RetryError> {
    let Some(job) = queue.get(id).await? else {
        return Ok(Outcome::NotFound);
    };
    let state = job.summary.state;
    if !matches!(state, JobState::Dead | JobState::Retrying) {
        return Ok(Outcome::WrongState(state));
    }
    let kind = job.summary.kind.clone();
    let reopened = match decide(db, &kind, &job.payload).await? {
        Decision::Refuse(reason) => return Ok(Outcome::Refused { kind, reason }),
        Decision::Requeue => None,
        Decision::ReopenMessage { message_id } => {
            let refusal = outbound::reopen_refused(db, &message_id).await?;
            if let Some(r) = &refusal {
                tracing::info!(job_id = %id, message_id = %message_id, status = %r.status, error_code = r.error_code, "operator retry: refused message queued again");
            }
            refusal.map(|r| (message_id, r))
        }
    };
    if !queue.retry(id).await? {
        if let Some((message_id, refusal)) = reopened {
            restore_refusal(queue, db, id, &message_id, refusal).await?;
        }
        return Ok(match queue.get(id).await? {
            None => Outcome::NotFound,
            Some(now) => Outcome::WrongState(now.summary.state),
        });
    }
    match queue.get(id).await? {
        Some(now) => Ok(Outcome::Retried(Box::new(now))),
        None => Ok(Outcome::NotFound),
    }
}

/// The job did not move after its message was reopened: put the refusal back, unless the job
/// is on its way anyway (queued, running or done: another operator's retry is sending it).
async fn restore_refusal(
    queue: &dyn Queue,
    db: &Db,
    id: &str,
    message_id: &str,
    refusal: Refusal,
) -> Result<(), RetryError> {
    let on_its_way = queue.get(id).await?.is_some_and(|j| {
        matches!(
            j.summary.state,
            JobState::Queued | JobState::Running | JobState::Done
        )
    });
    if on_its_way {
        return Ok(());
    }
    statuses::set_status_by_id(
        db,
        message_id,
        &StatusChange {
            status: refusal.status,
            error_code: refusal.error_code,
            error_message: refusal.error_message,
            at: chrono::Utc::now(),
        },
    )
    .await?;
    Ok(())
}

/// Retries every job in `state` (dead or retrying), optionally of one kind, each by [`retry`]'s
/// rule. The ids are listed first and acted on after (listing cursors may be offsets, which
/// moving jobs out of the state would shift); jobs that left the state meanwhile are skipped.
pub async fn retry_all(
    queue: &dyn Queue,
    db: &Db,
    state: JobState,
    kind: Option<JobKind>,
) -> Result<Bulk, RetryError> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = queue
            .list(&ListQuery {
                state: Some(state),
                kind,
                cursor,
                limit: 500,
            })
            .await?;
        ids.extend(page.jobs.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Oldest first (ids are UUIDv7), each once.
    ids.sort();
    ids.dedup();
    let mut bulk = Bulk::default();
    for id in ids {
        match retry(queue, db, &id).await? {
            Outcome::Retried(_) => bulk.retried += 1,
            Outcome::Refused { kind, reason } => {
                bulk.refused += 1;
                if bulk.refusals.len() < MAX_LISTED_REFUSALS {
                    bulk.refusals.push(RefusedJob { id, kind, reason });
                }
            }
            Outcome::NotFound | Outcome::WrongState(_) => {}
        }
    }
    Ok(bulk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_guide_has_a_retry_rule_for_every_kind() {
        let guide = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"),
        )
        .expect("docs/OPERATIONS.md");
        let (_, section) = guide
            .split_once("## What a retry re-attempts")
            .expect("the retry section");
        let table: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .collect();
        for kind in JobKind::ALL {
            assert!(
                table.iter().any(|row| row.contains(&format!("`{kind}`"))),
                "no retry rule for {kind} in docs/OPERATIONS.md"
            );
        }
    }
}

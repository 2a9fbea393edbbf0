//! `call.started`: a call reached the voice webhook.
//!
//! Translates the payload into a [`CallStart`] and records it: the business by the number
//! called, the customer by the caller, the call row by CallSid (see
//! [`moked_jobs::store::calls`] for why this is idempotent and order-free). A caller number that
//! does not parse (withheld, `anonymous`, garbage) is kept as text on the call and no customer is
//! linked — never a reason to fail the job. Phone numbers appear in logs only masked.

use moked_jobs::kinds::CallStarted;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::calls::{self, CallStart};
use moked_jobs::store::customers::Number;

use super::Ctx;

/// Handles one job.
#[tracing::instrument(skip_all, fields(call_sid = %job.call_sid))]
pub async fn run(ctx: &Ctx, job: CallStarted, _claim: &Claim) -> Result<(), JobError> {
    let start = CallStart {
        from: Number::parse(&job.from),
        to: Number::parse(&job.to),
        status: job.status,
        at: job.received_at,
        call_sid: job.call_sid,
    };
    if start.from.e164.is_none() {
        tracing::info!(from = %start.from.masked(), "caller number does not parse; no customer linked");
    }
    let call = calls::record_call_started(&ctx.db, &start).await?;
    tracing::info!(
        status = %call.status,
        from = %start.from.masked(),
        business_id = call.business_id,
        customer_id = call.customer_id,
        "call recorded"
    );
    Ok(())
}

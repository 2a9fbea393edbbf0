//! Fuzz target `payload`: decoding stored job payloads ([`moked_jobs::kinds::decode`], the
//! versioned `{"v":1,"data":…}` envelope) for every job kind a worker handles, plus the other
//! decoders a worker runs on a lease (`JobKind` from its stored name, `received_at`).
//!
//! Asserts, besides "always `Ok` or `Err`, never a panic":
//! * whatever decodes re-encodes ([`moked_jobs::kinds::encode`]) into a payload that decodes to
//!   the same value (so a job survives a retry's round trip through the queue unchanged);
//! * a kind name that parses is exactly that kind's stable name.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use moked_jobs::kinds::{
    CallStarted, CallStatus, ClockCleanup, ClockHealth, ClockReconcile, JobKind, JobPayload,
    RecordingProcess, WhatsAppInbound, WhatsAppSend, WhatsAppStatus, decode, encode, received_at,
};

/// Decodes `raw` as `T`; when it decodes, checks the round trip through `encode`.
fn check<T: JobPayload + PartialEq + Debug>(raw: &str) {
    match decode::<T>(raw) {
        Ok(payload) => {
            let encoded = encode(&payload);
            let again = decode::<T>(&encoded)
                .unwrap_or_else(|e| panic!("{} re-encoded as {encoded}: {e}", T::KIND));
            assert_eq!(again, payload, "{} changed through encode", T::KIND);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Payloads are stored as text (a TEXT column, a Redis string).
    let raw = String::from_utf8_lossy(data);
    check::<CallStarted>(&raw);
    check::<CallStatus>(&raw);
    check::<RecordingProcess>(&raw);
    check::<WhatsAppInbound>(&raw);
    check::<WhatsAppStatus>(&raw);
    check::<WhatsAppSend>(&raw);
    check::<ClockReconcile>(&raw);
    check::<ClockHealth>(&raw);
    check::<ClockCleanup>(&raw);
    if let Ok(kind) = raw.parse::<JobKind>() {
        assert_eq!(kind.as_str(), raw);
    }
    let _ = received_at(&raw);
});

//! Fuzz target `payload`: decoding stored job payloads ([`moked_jobs::kinds::decode`], the
//! versioned `{"v":1,"data":…}` envelope) for every job kind a worker handles, plus the other
//! decoders a worker runs on a lease (`JobKind` from its stored name, the payload time of
//! `received_at`, [`moked_jobs::kinds::timestamp`]).
//!
//! Asserts, besides "always `Ok` or `Err`, never a panic":
//! * whatever decodes re-encodes ([`moked_jobs::kinds::encode`]) into a payload that decodes to
//!   the same value (so a job survives a retry's round trip through the queue unchanged);
//! * a kind name that parses is exactly that kind's stable name;
//! * a time that parses is written back as text that parses to the same time.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use moked_jobs::kinds::{JobKind, JobPayload, decode, encode, timestamp};

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

/// Generates `check_every_payload` from the job kind table: every kind's payload type is
/// fuzzed, a new kind included.
macro_rules! check_each_kind {
    ($(
        $(#[doc = $doc:literal])+
        $kind:ident = $name:literal, handler $handler:ident, operator_retry $rule:ident;
    )+) => {
        fn check_every_payload(raw: &str) {
            $(check::<moked_jobs::kinds::$kind>(raw);)+
        }
    };
}
moked_jobs::for_each_job_kind!(check_each_kind);

fuzz_target!(|data: &[u8]| {
    // Payloads are stored as text (a TEXT column, a Redis string).
    let raw = String::from_utf8_lossy(data);
    check_every_payload(&raw);
    if let Ok(kind) = raw.parse::<JobKind>() {
        assert_eq!(kind.as_str(), raw);
    }
    if let Ok(at) = timestamp::parse(&raw) {
        let text = timestamp::format(&at);
        assert_eq!(
            timestamp::parse(&text),
            Ok(at),
            "{raw} written back as {text}"
        );
    }
});

//! The time a payload carries (`received_at`): a [`DateTime<Utc>`] in memory, RFC 3339 text in
//! the queue.
//!
//! Written as UTC with milliseconds (`2026-01-01T00:00:00.000Z`), the format every payload has
//! had in the queue since the first version, and the store's precision (times are stored in
//! milliseconds). Read from any RFC 3339 text (`Z` or an offset, any number of fractional
//! digits: jobs queued by earlier versions and by tests decode unchanged), converted to UTC and
//! cut to milliseconds, so what decodes encodes back to the same text. Text that is not RFC 3339,
//! or a year outside 0000–9999 once in UTC (which RFC 3339 cannot write back), does not decode:
//! the job is a poison job, dead with the reason ([`crate::kinds::decode`]), never run with a
//! made-up time.
//!
//! Used as `#[serde(with = "timestamp")]` on the payload fields of [`crate::kinds`].

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Why a text is not a payload time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not RFC 3339 (`2026-01-01T00:00:00Z`, `2026-01-01T02:00:00.5+02:00`).
    #[error("`{text}` is not an RFC 3339 time: {reason}")]
    Malformed {
        /// The text read (payloads hold no personal data in their times).
        text: String,
        /// chrono's reason.
        reason: String,
    },
    /// RFC 3339, but in UTC its year has no four-digit form.
    #[error("`{0}` is outside the years 0000–9999 in UTC")]
    OutOfRange(String),
}

/// The stored text of `at`: RFC 3339, UTC, milliseconds.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The instant `text` names, in UTC, to the millisecond.
pub fn parse(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|e| TimestampError::Malformed {
            text: text.to_owned(),
            reason: e.to_string(),
        })?
        .with_timezone(&Utc)
        .trunc_subsecs(3);
    if !(0..=9999).contains(&at.year()) {
        return Err(TimestampError::OutOfRange(text.to_owned()));
    }
    Ok(at)
}

/// serde: writes [`format()`].
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(at))
}

/// serde: reads with [`parse`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, millis * 1_000_000).expect("in range")
    }

    #[test]
    fn times_are_written_in_utc_with_milliseconds() {
        assert_eq!(format(&at(1_767_225_600, 0)), "2026-01-01T00:00:00.000Z");
        assert_eq!(format(&at(1_767_225_600, 120)), "2026-01-01T00:00:00.120Z");
        let nanos = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("in range");
        assert_eq!(format(&nanos), "2026-01-01T00:00:00.123Z");
    }

    #[test]
    fn every_rfc_3339_spelling_reads_as_its_utc_instant_to_the_millisecond() {
        for text in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T02:00:00.000+02:00",
            "2025-12-31T19:00:00.000999-05:00",
        ] {
            assert_eq!(parse(text), Ok(at(1_767_225_600, 0)), "{text}");
        }
        assert_eq!(
            parse("2026-01-01T00:00:00.123456789+00:00"),
            Ok(at(1_767_225_600, 123))
        );
    }

    #[test]
    fn what_is_read_writes_back_to_text_that_reads_the_same() {
        for text in [
            "2026-11-26T20:00:00.123456+02:00",
            "2016-12-31T23:59:60.5Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let read = parse(text).expect(text);
            assert_eq!(parse(&format(&read)), Ok(read), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_rfc_3339_or_leaves_four_digit_years_is_refused() {
        for text in [
            "",
            "x",
            "yesterday",
            "2026-01-01",
            "2026-01-01 00:00:00",
            "1767225600",
        ] {
            assert!(
                matches!(parse(text), Err(TimestampError::Malformed { .. })),
                "{text}"
            );
        }
        for text in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(
                parse(text),
                Err(TimestampError::OutOfRange(text.to_owned())),
                "{text}"
            );
        }
    }
}

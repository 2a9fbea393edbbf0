//! Phone numbers: E.164 normalisation (default region IL) and masking for logs.
//!
//! Twilio sends `+972…`, WhatsApp sends `whatsapp:+972…`, Baileys sends digits, operators type
//! `050-123-4567`. All become E.164 (`+972501234567`) through the `phonenumber` crate. Validity
//! per Google's metadata is *not* required (the metadata lags real allocations and common test
//! numbers are "invalid"); a number must parse and have 8–15 digits.

use std::fmt;

use phonenumber::country::Id;

/// An E.164 phone number (`+972501234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a string is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a phone number", mask_raw(.0))]
pub struct PhoneError(pub String);

impl E164 {
    /// Parses a number in any common form, defaulting to Israel.
    ///
    /// The result is stable: parsing it again gives it back (it is a key in the store). The
    /// `phonenumber` crate can keep a zero after the country code for odd inputs (`0001432` →
    /// `+97201432`, which then reads back differently or not at all); such a result is read once
    /// more and kept only if that reading is stable, else the input is refused.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let raw = input.trim();
        let bad = || PhoneError(raw.to_owned());
        let once = parse_once(raw).ok_or_else(bad)?;
        let twice = parse_once(&once).ok_or_else(bad)?;
        if twice == once || parse_once(&twice).is_some_and(|thrice| thrice == twice) {
            Ok(E164(twice))
        } else {
            Err(bad())
        }
    }

    /// The E.164 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits only (`972501234567`), as WhatsApp JIDs use.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// `whatsapp:+972…`, added exactly once.
    pub fn whatsapp(&self) -> String {
        format!("whatsapp:{}", self.0)
    }

    /// The masked form for logs.
    pub fn masked(&self) -> String {
        mask_raw(&self.0)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One reading of `raw` through `phonenumber`: its E.164 text, when it has 8–15 digits.
fn parse_once(raw: &str) -> Option<String> {
    let stripped = raw.strip_prefix("whatsapp:").unwrap_or(raw).trim();
    // Baileys JIDs: 972501234567@s.whatsapp.net
    let stripped = stripped.split('@').next().unwrap_or(stripped);
    let digits = stripped.chars().filter(char::is_ascii_digit).count();
    if !(7..=17).contains(&digits) || stripped.contains('*') {
        return None;
    }
    // A bare international number without its plus (972…, Baileys/WaId style).
    let candidate = if stripped.starts_with("972") && digits >= 11 {
        format!("+{stripped}")
    } else {
        stripped.to_owned()
    };
    let parsed = phonenumber::parse(Some(Id::IL), &candidate).ok()?;
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    let n = e164.len() - 1;
    (8..=15).contains(&n).then_some(e164)
}

/// Masks anything that looks like a phone number: keeps the first 5 and last 4 characters of the
/// digits (`+9725****4567`), hides the rest. Short strings are fully masked.
pub fn mask_raw(raw: &str) -> String {
    let (prefix, rest) = match raw.strip_prefix("whatsapp:") {
        Some(r) => ("whatsapp:", r),
        None => ("", raw),
    };
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() < 9 {
        return format!("{prefix}****");
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}{head}****{tail}")
}

/// Replaces every phone-number-like run (a `+` or digit run of 9+ digits) in free text by its
/// masked form. Used on payloads shown to operators and on log fields.
pub fn mask_numbers_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 9 {
            out.push_str(&mask_raw(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn israeli_forms_normalise_to_e164() {
        for input in [
            "050-123-4567",
            "0501234567",
            "+972-50-123-4567",
            "972501234567",
            "00972 50 123 4567",
            "whatsapp:+972501234567",
            "972501234567@s.whatsapp.net",
        ] {
            assert_eq!(
                E164::parse(input).unwrap().as_str(),
                "+972501234567",
                "{input}"
            );
        }
        assert_eq!(
            E164::parse("(03) 123-4567").unwrap().as_str(),
            "+97231234567"
        );
        assert_eq!(
            E164::parse("+14155550100").unwrap().as_str(),
            "+14155550100"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for input in ["", "hello", "*2345", "12", "+"] {
            assert!(E164::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn normalising_is_stable() {
        // Found by the `phone` fuzz target: these used to normalise to a number that does not
        // read back as itself (`0001432` → `+97201432`, which is then refused).
        for input in [
            "0001432",
            "00018433462",
            "0000128433462",
            "+972 050-123-4567",
            "00972 050 123 4567",
            "050-123-4567",
            "+14155550100",
        ] {
            if let Ok(n) = E164::parse(input) {
                assert_eq!(E164::parse(n.as_str()), Ok(n.clone()), "{input} → {n}");
            }
        }
        assert!(E164::parse("0001432").is_err());
    }

    #[test]
    fn whatsapp_prefix_is_added_once_and_masking_hides_the_middle() {
        let n = E164::parse("whatsapp:+972501234567").unwrap();
        assert_eq!(n.whatsapp(), "whatsapp:+972501234567");
        assert_eq!(n.digits(), "972501234567");
        assert_eq!(n.masked(), "+9725****4567");
        assert_eq!(mask_raw("whatsapp:+972501234567"), "whatsapp:+9725****4567");
        assert_eq!(
            mask_numbers_in(r#"{"from":"+972501234567","n":"42"}"#),
            r#"{"from":"+9725****4567","n":"42"}"#
        );
    }
}

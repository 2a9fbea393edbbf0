//! Phone numbers: E.164 normalisation (default region IL) and masking for logs.
//!
//! Masking: [`E164::masked`] / [`mask_raw`] for a field known to hold a number,
//! [`mask_numbers_in`] for stored payloads (E.164 digit runs), and [`mask_in_text`] for free
//! text written by someone else — provider error messages ("The 'To' number
//! whatsapp:+972… is not valid"), which end up in `last_error`, job histories, message error
//! columns and log lines.
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

/// Masks every phone number inside free text (error messages, log lines): E.164 with or without
/// `whatsapp:`, bare international digits, Israeli local forms with or without separators
/// (`050-123-4567`, `(03) 123-4567`, `+972 50 123 4567`), and any other run of 9 or more
/// digits. A number that parses is shown as [`E164::masked`] (`+9725****4567`); anything else
/// keeps its first 3 and last 2 digits. No run of 9 digits survives.
///
/// Separated digit groups count as one number only when they start like one (`+`, `0`, `(`),
/// so dates and times (`2026-12-07 12:17`) are left alone.
pub fn mask_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match number_at(&chars, i) {
            Some(end) => {
                let span: String = chars[i..end].iter().collect();
                out.push_str(&mask_span(&span));
                i = end;
            }
            None => {
                // Not a number: copy the whole digit run (or the one char), so that no tail of
                // a run (`026…` of `2026-12-…`) is read as a number of its own.
                let end = run_end(&chars, i).max(i + 1);
                out.extend(&chars[i..end]);
                i = end;
            }
        }
    }
    out
}

/// Separators allowed between the digit groups of one written number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '(' | ')')
}

/// The end of the `+`? digit run starting at `i` (`i` when there is none).
fn run_end(chars: &[char], i: usize) -> usize {
    let mut j = i;
    if chars.get(j) == Some(&'+') {
        j += 1;
    }
    let digits_from = j;
    while chars.get(j).is_some_and(char::is_ascii_digit) {
        j += 1;
    }
    if j == digits_from { i } else { j }
}

/// The end of the phone number starting at `i`, if one does.
fn number_at(chars: &[char], i: usize) -> Option<usize> {
    let first = *chars.get(i)?;
    let digit_at = |j: usize| chars.get(j).is_some_and(char::is_ascii_digit);
    let starts = match first {
        '+' | '(' => digit_at(i + 1),
        c => c.is_ascii_digit(),
    };
    if !starts {
        return None;
    }
    // The longest stretch of digit groups joined by at most two separators each.
    let (mut j, mut end, mut digits, mut separated) =
        (i + 1, i + 1, usize::from(first.is_ascii_digit()), false);
    while j < chars.len() {
        if chars[j].is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if is_separator(chars[j]) {
            let gap = chars[j..].iter().take_while(|c| is_separator(**c)).count();
            if gap > 2 || !digit_at(j + gap) {
                break;
            }
            separated = true;
            j += gap;
        } else {
            break;
        }
    }
    if separated && matches!(first, '+' | '0' | '(') && (8..=15).contains(&digits) {
        // Keep a closing bracket of `(03) …`-style numbers out of the text after it.
        return Some(end);
    }
    // Otherwise only a plain run can be a number.
    let run = run_end(chars, i);
    let run_digits = chars[i..run].iter().filter(|c| c.is_ascii_digit()).count();
    (run_digits >= 9).then_some(run)
}

/// The masked form of one number found in text.
fn mask_span(span: &str) -> String {
    let digits: String = span.chars().filter(char::is_ascii_digit).collect();
    let plus = span.starts_with('+');
    // Only forms that name their country or are Israeli local numbers are read as numbers; a
    // bare run of digits would otherwise become a made-up Israeli number.
    if plus || digits.starts_with('0') || digits.starts_with("972") {
        let candidate = if plus {
            format!("+{digits}")
        } else {
            digits.clone()
        };
        if let Ok(number) = E164::parse(&candidate) {
            return number.masked();
        }
    }
    let keep_head: String = digits.chars().take(3).collect();
    let keep_tail: String = digits
        .chars()
        .skip(digits.len().saturating_sub(2))
        .collect();
    format!("{}{keep_head}****{keep_tail}", if plus { "+" } else { "" })
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

    #[test]
    fn numbers_in_provider_errors_are_masked_in_every_form() {
        let cases = [
            (
                "The 'To' number whatsapp:+972521234567 is not valid.",
                "The 'To' number whatsapp:+9725****4567 is not valid.",
            ),
            ("to +972 52-123-4567 failed", "to +9725****4567 failed"),
            ("to +972-52-123-4567.", "to +9725****4567."),
            ("call 052-123-4567 now", "call +9725****4567 now"),
            ("call 0521234567", "call +9725****4567"),
            ("office (03) 123-4567", "office +9723****4567"),
            (
                "jid 972521234567@s.whatsapp.net",
                "jid +9725****4567@s.whatsapp.net",
            ),
            ("us +1 415 555 0100!", "us +1415****0100!"),
            ("ref 123456789012", "ref 123****12"),
        ];
        for (raw, masked) in cases {
            assert_eq!(mask_in_text(raw), masked, "{raw}");
        }
    }

    #[test]
    fn text_without_numbers_is_left_alone() {
        for text in [
            "Twilio 21211: the recipient is not a valid phone number",
            "retry at 2026-12-07 12:17:03 (attempt 3 of 6)",
            "HTTP 503 after 2.5 s; 12 345 bytes",
            "שלום 42",
            "(1) a - b",
        ] {
            assert_eq!(mask_in_text(text), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn no_run_of_nine_digits_survives(text in "[0-9 ()+a-z:-]{0,60}") {
            let masked = mask_in_text(&text);
            let mut run = 0;
            for c in masked.chars() {
                run = if c.is_ascii_digit() { run + 1 } else { 0 };
                proptest::prop_assert!(run < 9, "{text:?} → {masked:?}");
            }
        }
    }
}

//! Fuzz target `phone`: phone-number normalisation ([`moked_jobs::phone::E164::parse`]) and the
//! log maskers ([`moked_jobs::phone::mask_raw`], [`moked_jobs::phone::mask_numbers_in`]) on
//! arbitrary text (form fields `From`/`To`, Baileys JIDs, operator input).
//!
//! Asserts, besides "no panic":
//! * a normalised number is E.164: `+` then 8–15 ASCII digits;
//! * normalisation is stable: `parse(parse(x)) == parse(x)`, and the `whatsapp:` form and (for
//!   Israeli numbers) the bare digits of a WaId parse back to the same number;
//! * `mask_numbers_in` leaves no run of 9 or more consecutive digits (no whole number reaches a
//!   log), and changes nothing in a text that has no such run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moked_jobs::phone::{E164, mask_numbers_in, mask_raw};

/// The longest run of consecutive ASCII digits in `s`.
fn longest_digit_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let _ = mask_raw(&input);
    let masked = mask_numbers_in(&input);
    assert!(
        longest_digit_run(&masked) < 9,
        "a digit run survived masking: {masked:?}"
    );
    if longest_digit_run(&input) < 9 {
        assert_eq!(masked, input, "masking changed a text without numbers");
    }

    let Ok(number) = E164::parse(&input) else {
        return;
    };
    let text = number.as_str();
    let digits = text.strip_prefix('+').expect("E.164 starts with +");
    assert!(
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "not E.164: {text:?} from {input:?}"
    );
    assert_eq!(number.digits(), digits);
    assert_eq!(number.to_string(), text);
    let _ = number.masked();

    let again = E164::parse(text).unwrap_or_else(|e| panic!("{text:?} from {input:?}: {e}"));
    assert_eq!(again, number, "normalising twice changed {input:?}");
    let via_whatsapp = E164::parse(&number.whatsapp()).expect("the whatsapp: form parses");
    assert_eq!(via_whatsapp, number, "whatsapp: form of {input:?}");
    if digits.starts_with("972") && digits.len() >= 11 {
        let via_digits = E164::parse(digits).expect("an Israeli WaId parses");
        assert_eq!(via_digits, number, "bare digits of {input:?}");
    }
});

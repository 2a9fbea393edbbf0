//! Fuzz target `form`: the intake's strict `application/x-www-form-urlencoded` parser
//! ([`moked_intake::body::Form::parse`]) on arbitrary bytes, as every Twilio webhook body reaches it.
//!
//! Asserts, besides "no panic":
//! * a body that parses re-encodes (every name and value percent-encoded, joined by `&`) into a
//!   body that parses back to the very same pairs, in the same order;
//! * on a body it accepts, the strict parser agrees with the lenient WHATWG parser
//!   (`form_urlencoded::parse`): strictness only refuses, it never decodes differently;
//! * [`Form::get`] answers the first value of a name;
//! * a refusal is for a reason that is in the bytes (`%` for bad escapes);
//! * the lenient query parser ([`Form::parse_query`]) never panics on the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moked_intake::body::{Form, FormError};

fuzz_target!(|data: &[u8]| {
    let _ = Form::parse_query(&String::from_utf8_lossy(data));
    match Form::parse(data) {
        Ok(form) => {
            let pairs = form.pairs();
            let lenient: Vec<(String, String)> = form_urlencoded::parse(data)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(
                pairs,
                lenient.as_slice(),
                "strict and lenient parsers disagree"
            );

            let encoded = pairs
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{}={}",
                        form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>(),
                        form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            let again = Form::parse(encoded.as_bytes()).expect("a re-encoded form parses");
            assert_eq!(again.pairs(), pairs, "re-encoding changed the form");

            for (name, _) in pairs {
                let first = pairs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str());
                assert_eq!(form.get(name), first);
            }
        }
        Err(FormError::Percent) => assert!(data.contains(&b'%'), "Percent error without a %"),
        Err(FormError::Utf8) => {}
    }
});

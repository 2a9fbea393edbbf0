//! Request bodies: bounded reading, content types and strict form parsing.
//!
//! A webhook body is read whole (at most [`MAX_BODY`], else 413) because its signature covers
//! every field. Forms are parsed strictly, keeping repeated names and blank values (both are
//! signed): `+` is a space, `%XY` must be two hex digits, and every name and value must be
//! UTF-8 after decoding; anything else is malformed (400). The original system read only the
//! first value of a repeated key, which both broke signatures and dropped data.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::error::IntakeError;
pub use crate::error::MAX_BODY;

/// The form content type.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The JSON content type.
pub const JSON: &str = "application/json";

/// Whether the request's `Content-Type` is `expected` (parameters such as `charset` ignored).
pub fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes (by `Content-Length` up front,
/// and while reading for chunked bodies).
pub async fn read(headers: &HeaderMap, body: Body) -> Result<Bytes, IntakeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(IntakeError::PayloadTooLarge);
    }
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| IntakeError::BadRequest("request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                return Err(IntakeError::PayloadTooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Decoded form fields, in the order received, repeated names kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Why a form body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("malformed form body: bad percent-encoding")]
    Percent,
    /// A name or value that is not UTF-8 once decoded.
    #[error("malformed form body: not UTF-8")]
    Utf8,
}

impl From<FormError> for IntakeError {
    fn from(e: FormError) -> Self {
        IntakeError::BadRequest(e.to_string())
    }
}

impl Form {
    /// Parses `application/x-www-form-urlencoded` strictly (see the module doc).
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let mut pairs = Vec::new();
        for segment in body.split(|b| *b == b'&') {
            if segment.is_empty() {
                continue;
            }
            let (name, value) = match segment.iter().position(|b| *b == b'=') {
                Some(i) => (&segment[..i], &segment[i + 1..]),
                None => (segment, &[][..]),
            };
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Form { pairs })
    }

    /// Parses a query string leniently (it is signed as raw bytes, so its decoding only matters
    /// for reading our own parameters back).
    pub fn parse_query(query: &str) -> Form {
        Form {
            pairs: url::form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// A form from pairs (tests, other sources).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Form {
        Form {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }

    /// Every pair.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-blank value of `name`, trimmed.
    pub fn get_non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// The first non-blank value of `name`, or a 400 naming it.
    pub fn require(&self, name: &str) -> Result<&str, IntakeError> {
        self.get_non_empty(name)
            .ok_or_else(|| IntakeError::missing(name))
    }

    /// The first value of `name` as an integer, when it is one (Twilio sends numbers as text;
    /// an unexpected shape is ignored rather than refused).
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get_non_empty(name).and_then(|v| v.parse().ok())
    }
}

/// Decodes one form component: `+` → space, `%XY` → byte, then UTF-8.
fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|b| hex(*b));
                let lo = raw.get(i + 2).and_then(|b| hex(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::Percent),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Utf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn forms_keep_repeated_names_blank_values_and_decode_utf8() {
        let f = Form::parse(
            b"Digits=2&Digits=1&CallerName=&Body=%D7%A9%D7%9C%D7%95%D7%9D+1%2B1&flag&&=x",
        )
        .expect("valid form");
        assert_eq!(
            f.pairs(),
            Form::from_pairs([
                ("Digits", "2"),
                ("Digits", "1"),
                ("CallerName", ""),
                ("Body", "שלום 1+1"),
                ("flag", ""),
                ("", "x"),
            ])
            .pairs()
        );
        assert_eq!(f.get("Digits"), Some("2"));
        assert_eq!(f.get_non_empty("CallerName"), None);
        assert_eq!(f.require("Body"), Ok("שלום 1+1"));
        assert_eq!(f.require("Nope"), Err(IntakeError::missing("Nope")));
        assert_eq!(Form::parse(b"").expect("empty is fine").pairs(), &[]);
    }

    #[test]
    fn malformed_forms_are_refused() {
        assert_eq!(Form::parse(b"a=%"), Err(FormError::Percent));
        assert_eq!(Form::parse(b"a=%4"), Err(FormError::Percent));
        assert_eq!(Form::parse(b"a=%zz"), Err(FormError::Percent));
        assert_eq!(Form::parse(b"a=%FF"), Err(FormError::Utf8));
        assert_eq!(Form::parse(b"a=\xff"), Err(FormError::Utf8));
    }

    #[test]
    fn the_form_parser_never_panics_on_random_bytes_and_reads_what_it_accepts_as_the_standard_does()
    {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"%&=+aZ09\xff\xd7\x00 ";
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            // Where the strict parser accepts a body, it reads what the lenient standard one
            // (the url crate's) reads from it.
            if let Ok(form) = Form::parse(&body) {
                let lenient: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                assert_eq!(form.pairs(), lenient, "{body:?}");
                accepted += 1;
            }
        }
        assert!(
            accepted > 1_000,
            "only {accepted} random bodies were valid forms"
        );
    }

    #[test]
    fn content_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert!(!content_type_is(&h, FORM));
        h.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        );
        assert!(content_type_is(&h, FORM));
        assert!(!content_type_is(&h, JSON));
    }
}

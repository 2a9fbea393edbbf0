//! Twilio webhook signatures (`X-Twilio-Signature`): the pure algorithm.
//!
//! Used by the intake to verify every webhook and by `moked-worker sign` to sign test requests.
//! No HTTP types here: callers hand in the URL, the body and the two header values.
//!
//! ## The algorithm (Twilio's, as the official SDKs implement it)
//! 1. Start from the **full URL Twilio requested**: for moked that is `PUBLIC_HOST` followed by
//!    the raw path and query bytes of the request. Never the `Host` header, and never a
//!    re-serialised query (re-encoding `+` or `'` changes the signed bytes).
//! 2. Form POST: take the **decoded** fields, sort them by name (byte order, case-sensitive);
//!    the values of a repeated name are sorted too and **identical duplicates dropped**; append
//!    `name` + `value` for each, with no separators. Empty values still contribute their name.
//! 3. `base64(HMAC-SHA1(auth token, that string))`, standard alphabet with padding, compared in
//!    constant time.
//! 4. Twilio is inconsistent about ports, so a request is accepted when the signature matches
//!    the URL **with its port removed**, or **with the default port added** (`:443` for https,
//!    `:80` otherwise) when it has none. `userinfo@` stays in both.
//! 5. JSON mode: Twilio adds `bodySHA256=<hex sha256(raw body)>` to the query and signs the URL
//!    alone (no params). A raw (non-form) body is accepted only when it hashes to that value; a
//!    raw body without `bodySHA256` cannot be authenticated and is refused.
//! 6. SharedKey mode (public beta): the header `X-Twilio-Webhooks-Signature-Settings:
//!    key=<id>,algorithm=HMAC_SHA256` announces that the request was signed with a shared key
//!    (identified by `<id>`) instead of the Auth Token, with the named algorithm (`HMAC_SHA1`
//!    when absent). Only configured shared keys are tried then; an unknown key id or algorithm
//!    is refused.
//! 7. No key configured, or a missing or empty signature: refused (fail closed).
//!
//! Several Auth Tokens may be configured (primary and secondary, for rotation); each is tried.
//!
//! Deliberately *not* implemented: twilio-node's second attempt with the URL normalised by
//! `new URL()` (`'` → `%27`). The Python SDK does not do it either; keep such characters out of
//! public URLs (vector `quote_signed_escaped_received_raw` must be refused).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The header announcing SharedKey mode: `key=<id>,algorithm=<HMAC_SHA1|HMAC_SHA256>`.
pub const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
/// The query parameter carrying the hex SHA-256 of a raw (JSON) body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1, the Auth Token default.
    HmacSha1,
    /// HMAC-SHA256 (SharedKey mode).
    HmacSha256,
}

impl Algorithm {
    /// Twilio's name for it (`HMAC_SHA1`, `HMAC_SHA256`).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "HMAC_SHA1",
            Algorithm::HmacSha256 => "HMAC_SHA256",
        }
    }

    /// Parses Twilio's name, case-insensitively (as the Python SDK does).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("HMAC_SHA1") {
            Some(Algorithm::HmacSha1)
        } else if name.eq_ignore_ascii_case("HMAC_SHA256") {
            Some(Algorithm::HmacSha256)
        } else {
            None
        }
    }
}

/// The `X-Twilio-Signature` of a form request: HMAC-SHA1 keyed by `token` over `url` and the
/// sorted, de-duplicated `params` (decoded name/value pairs, repeated names allowed).
pub fn compute(token: &str, url: &str, params: &[(String, String)]) -> String {
    compute_with(Algorithm::HmacSha1, token, url, params)
}

/// As [`compute`], with HMAC-SHA256 (SharedKey mode).
pub fn compute_sha256(key: &str, url: &str, params: &[(String, String)]) -> String {
    compute_with(Algorithm::HmacSha256, key, url, params)
}

/// As [`compute`], with the given algorithm.
pub fn compute_with(
    algorithm: Algorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    sign_sorted(algorithm, key.as_bytes(), url, &sorted_params(params))
}

/// The hex SHA-256 of a raw body, as Twilio puts it in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The string that gets signed (URL + sorted params): for debugging and documentation only.
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut s = url.to_owned();
    for (name, value) in sorted_params(params) {
        s.push_str(name);
        s.push_str(value);
    }
    s
}

/// Names sorted byte-wise, each name's values sorted, identical pairs dropped. Sorting the
/// `(name, value)` tuples does exactly that (and not a sort of the `name+value` strings, which
/// would put `ReasonConferenceEndedtest` before `ReasonParticipant`).
fn sorted_params(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

fn sign_sorted(algorithm: Algorithm, key: &[u8], url: &str, sorted: &[(&str, &str)]) -> String {
    fn run<M: Mac + hmac::digest::KeyInit>(
        key: &[u8],
        url: &str,
        sorted: &[(&str, &str)],
    ) -> String {
        // HMAC accepts keys of any length; the error branch is unreachable but costs nothing.
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return String::new();
        };
        mac.update(url.as_bytes());
        for (name, value) in sorted {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        BASE64.encode(mac.finalize().into_bytes())
    }
    match algorithm {
        Algorithm::HmacSha1 => run::<Hmac<Sha1>>(key, url, sorted),
        Algorithm::HmacSha256 => run::<Hmac<Sha256>>(key, url, sorted),
    }
}

/// A SharedKey secret and the key id Twilio announces for it.
#[derive(Debug, Clone)]
pub struct SharedKey {
    /// The `key=` id it is announced under; `None` accepts any id.
    pub id: Option<String>,
    /// The secret.
    pub secret: SecretString,
}

/// The secrets webhooks may be signed with. Empty: every request is refused.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    auth_tokens: Vec<SecretString>,
    shared_keys: Vec<SharedKey>,
}

impl Keys {
    /// No keys (refuses everything).
    pub fn new() -> Self {
        Keys::default()
    }

    /// Adds an Auth Token (the primary first, then a secondary during rotation). Empty tokens
    /// are ignored, so an empty setting never turns into an empty HMAC key.
    pub fn with_auth_token(mut self, token: SecretString) -> Self {
        if !token.expose_secret().is_empty() {
            self.auth_tokens.push(token);
        }
        self
    }

    /// Adds a SharedKey secret. An empty secret is ignored.
    pub fn with_shared_key(mut self, key: SharedKey) -> Self {
        if !key.secret.expose_secret().is_empty() {
            self.shared_keys.push(key);
        }
        self
    }

    /// Whether no key at all is configured (everything will be refused).
    pub fn is_empty(&self) -> bool {
        self.auth_tokens.is_empty() && self.shared_keys.is_empty()
    }
}

/// What was signed besides the URL.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// A form body: its decoded fields, repeated names kept, in any order.
    Form(&'a [(String, String)]),
    /// Any other body (JSON), as raw bytes: authenticated only through `bodySHA256`.
    Raw(&'a [u8]),
}

/// A request to verify.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The URL Twilio requested: PUBLIC_HOST + raw path and query.
    pub url: &'a str,
    /// The body.
    pub body: Body<'a>,
    /// The `X-Twilio-Signature` value, if any.
    pub signature: Option<&'a str>,
    /// The `X-Twilio-Webhooks-Signature-Settings` value, if any.
    pub settings: Option<&'a str>,
}

/// Why a request was refused. For logs; the HTTP answer is the same (403) for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No Auth Token (or shared key) is configured: fail closed.
    #[error("no signing key configured")]
    NoKey,
    /// The signature header is absent or empty.
    #[error("signature missing")]
    Missing,
    /// The settings header names an algorithm this build does not know.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// SharedKey mode for a key id that is not configured.
    #[error("unknown shared key")]
    UnknownSharedKey,
    /// A raw body without `bodySHA256` in the URL.
    #[error("raw body not covered by bodySHA256")]
    BodyNotSigned,
    /// The raw body does not hash to `bodySHA256`.
    #[error("body does not match bodySHA256")]
    BodyHashMismatch,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// The parsed `X-Twilio-Webhooks-Signature-Settings` header (`key=<id>,algorithm=<name>`),
/// read leniently like the Python SDK: unknown parts are ignored, blanks are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings<'a> {
    /// The shared key id.
    pub key: Option<&'a str>,
    /// The algorithm name.
    pub algorithm: Option<&'a str>,
}

impl<'a> Settings<'a> {
    /// Parses the header value.
    pub fn parse(header: &'a str) -> Self {
        let mut settings = Settings::default();
        for part in header.split(',') {
            if let Some((name, value)) = part.split_once('=') {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                match name.trim() {
                    "key" => settings.key = Some(value),
                    "algorithm" => settings.algorithm = Some(value),
                    _ => {}
                }
            }
        }
        settings
    }
}

/// Verifies a request against every rule in the module doc.
pub fn verify(keys: &Keys, request: &Request<'_>) -> Result<(), Rejection> {
    if keys.is_empty() {
        return Err(Rejection::NoKey);
    }
    let signature = match request.signature.map(str::trim) {
        Some(s) if !s.is_empty() => s,
        _ => return Err(Rejection::Missing),
    };
    let settings = request.settings.map(Settings::parse).unwrap_or_default();
    let algorithm = match settings.algorithm {
        None => Algorithm::HmacSha1,
        Some(name) => Algorithm::parse(name).ok_or(Rejection::UnsupportedAlgorithm)?,
    };
    let secrets: Vec<&SecretString> = match settings.key {
        None => keys.auth_tokens.iter().collect(),
        Some(id) => keys
            .shared_keys
            .iter()
            .filter(|k| k.id.as_deref().is_none_or(|want| want == id))
            .map(|k| &k.secret)
            .collect(),
    };
    if secrets.is_empty() {
        return Err(match settings.key {
            Some(_) => Rejection::UnknownSharedKey,
            None => Rejection::NoKey,
        });
    }

    let sorted = match request.body {
        Body::Form(params) => sorted_params(params),
        Body::Raw(raw) => {
            let declared =
                query_param(request.url, BODY_SHA256_PARAM).ok_or(Rejection::BodyNotSigned)?;
            let actual = body_sha256(raw);
            let declared = declared.to_ascii_lowercase();
            if !bool::from(actual.as_bytes().ct_eq(declared.as_bytes())) {
                return Err(Rejection::BodyHashMismatch);
            }
            Vec::new()
        }
    };

    // The URL as it came first, then its other port form, which is only built when the first
    // did not match (it is a new string when the URL has no port). Each candidate is compared
    // in constant time; the search stops at the first match. That tells a caller only which
    // URL form and which of our keys its own request was signed for (the form is in its
    // request; a forger has no key that matches), and it spares a valid request the HMACs of
    // the forms it was not signed over.
    let signed_over = |url: &str| {
        secrets.iter().any(|secret| {
            let expected = sign_sorted(algorithm, secret.expose_secret().as_bytes(), url, &sorted);
            bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
        })
    };
    if signed_over(request.url) {
        return Ok(());
    }
    let (without_port, with_port) = port_variants(request.url);
    let other = if without_port == request.url {
        with_port
    } else {
        without_port
    };
    if other != request.url && signed_over(&other) {
        return Ok(());
    }
    Err(Rejection::Mismatch)
}

/// The first value of query parameter `name` in `url` (decoded), if present.
fn query_param<'a>(url: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// The URL with its port removed, and with the scheme's default port added when it has none
/// (Twilio's SDKs: `remove_port`, `add_port`). Works on the string so that nothing else in
/// the URL is re-encoded.
pub fn port_variants(url: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    let Some(scheme_end) = url.find("://") else {
        return (Cow::Borrowed(url), Cow::Borrowed(url));
    };
    let scheme = &url[..scheme_end];
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let host_start = authority_start + authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &url[host_start..authority_end];
    // Where the `:port` begins, if there is one (IPv6 hosts are bracketed).
    let colon = if host_port.starts_with('[') {
        host_port
            .find(']')
            .and_then(|close| host_port[close..].find(':').map(|c| close + c))
    } else {
        host_port.rfind(':')
    };
    match colon {
        Some(c)
            if host_port.len() > c + 1
                && host_port[c + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            let port_start = host_start + c;
            let without = format!("{}{}", &url[..port_start], &url[authority_end..]);
            (Cow::Owned(without), Cow::Borrowed(url))
        }
        _ => {
            let default = if scheme.eq_ignore_ascii_case("https") {
                ":443"
            } else {
                ":80"
            };
            let with = format!(
                "{}{}{}",
                &url[..authority_end],
                default,
                &url[authority_end..]
            );
            (Cow::Borrowed(url), Cow::Owned(with))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn keys(token: &str) -> Keys {
        Keys::new().with_auth_token(token.to_owned().into())
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        n: u32,
        name: String,
        token: String,
        url: String,
        params: std::collections::BTreeMap<String, Vec<String>>,
        body: Option<String>,
        algorithm: String,
        signature: String,
        valid: bool,
    }

    #[derive(serde::Deserialize)]
    struct VectorFile {
        vectors: Vec<Vector>,
    }

    /// The committed vectors: written by `tests/twilio/make_vectors.py` with the official Python
    /// SDK, which `scripts/test` re-runs (`--check`) so the file cannot drift from the SDK.
    fn vectors_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/signature-vectors.json")
    }

    #[test]
    fn every_signature_vector_gets_its_expected_verdict() {
        let path = vectors_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the Twilio signature vectors at {} ({e}); \
                 tests/twilio/make_vectors.py writes them",
                path.display()
            )
        });
        let file: VectorFile = serde_json::from_str(&text).expect("signature-vectors.json parses");
        assert!(
            file.vectors.len() >= 35,
            "expected the full vector set, got {}",
            file.vectors.len()
        );
        let mut failures = Vec::new();
        for v in &file.vectors {
            let params: Vec<(String, String)> = v
                .params
                .iter()
                .flat_map(|(n, vals)| vals.iter().map(move |val| (n.clone(), val.clone())))
                .collect();
            let shared = v.algorithm == "HMAC_SHA256";
            let keys = if shared {
                Keys::new().with_shared_key(SharedKey {
                    id: Some("webhooks_sharedkey_test".into()),
                    secret: v.token.clone().into(),
                })
            } else {
                keys(&v.token)
            };
            let settings = format!("key=webhooks_sharedkey_test,algorithm={}", v.algorithm);
            let body = match &v.body {
                Some(b) => Body::Raw(b.as_bytes()),
                None => Body::Form(&params),
            };
            let got = verify(
                &keys,
                &Request {
                    url: &v.url,
                    body,
                    signature: Some(&v.signature),
                    settings: shared.then_some(settings.as_str()),
                },
            );
            if got.is_ok() != v.valid {
                failures.push(format!(
                    "#{} {}: expected valid={}, got {:?}",
                    v.n, v.name, v.valid, got
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "vectors failed:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn compute_matches_the_python_sdk_on_the_documentation_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(compute("12345", url, &p), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        let p = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            compute_sha256("12345", url, &p),
            "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s="
        );
    }

    #[test]
    fn repeated_values_are_sorted_and_deduplicated_in_the_signed_string() {
        let p = pairs(&[
            ("Sid", "CA123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(signed_string("u", &p), "uDigits1234Digits5678SidCA123");
    }

    #[test]
    fn port_variants_remove_any_port_and_add_only_the_default_one() {
        let v = |u| {
            let (a, b) = port_variants(u);
            (a.into_owned(), b.into_owned())
        };
        assert_eq!(
            v("https://h.com:1234/p?q=1"),
            (
                "https://h.com/p?q=1".into(),
                "https://h.com:1234/p?q=1".into()
            )
        );
        assert_eq!(
            v("https://h.com/p"),
            ("https://h.com/p".into(), "https://h.com:443/p".into())
        );
        assert_eq!(
            v("http://u:p@h.com?x"),
            ("http://u:p@h.com?x".into(), "http://u:p@h.com:80?x".into())
        );
        assert_eq!(
            v("http://[::1]:8080/x"),
            ("http://[::1]/x".into(), "http://[::1]:8080/x".into())
        );
        assert_eq!(
            v("http://[::1]/x"),
            ("http://[::1]/x".into(), "http://[::1]:80/x".into())
        );
        assert_eq!(v("no scheme"), ("no scheme".into(), "no scheme".into()));
        assert_eq!(
            v("http://h.com"),
            ("http://h.com".into(), "http://h.com:80".into())
        );
    }

    #[test]
    fn no_key_and_missing_signature_are_refused() {
        let url = "http://localhost:8080/webhook/call_status";
        let p = pairs(&[("CallSid", "CA1")]);
        let sig = compute("t", url, &p);
        let req = |signature| Request {
            url,
            body: Body::Form(&p),
            signature,
            settings: None,
        };
        assert_eq!(
            verify(&Keys::new(), &req(Some(&sig))),
            Err(Rejection::NoKey)
        );
        assert_eq!(
            verify(
                &Keys::new().with_auth_token(String::new().into()),
                &req(Some(&sig))
            ),
            Err(Rejection::NoKey)
        );
        assert_eq!(verify(&keys("t"), &req(None)), Err(Rejection::Missing));
        assert_eq!(
            verify(&keys("t"), &req(Some("  "))),
            Err(Rejection::Missing)
        );
        assert_eq!(verify(&keys("t"), &req(Some(&sig))), Ok(()));
        assert_eq!(
            verify(&keys("other"), &req(Some(&sig))),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn a_secondary_token_is_accepted_during_rotation() {
        let url = "https://moked.example.com/webhook/call_status";
        let p = pairs(&[("CallSid", "CA1"), ("CallStatus", "ringing")]);
        let both = Keys::new()
            .with_auth_token("new".to_owned().into())
            .with_auth_token("old".to_owned().into());
        for token in ["new", "old"] {
            let sig = compute(token, url, &p);
            let req = Request {
                url,
                body: Body::Form(&p),
                signature: Some(&sig),
                settings: None,
            };
            assert_eq!(verify(&both, &req), Ok(()), "{token}");
        }
    }

    #[test]
    fn shared_key_mode_uses_only_the_announced_key_and_algorithm() {
        let url = "https://moked.example.com/webhook/call_status";
        let p = pairs(&[("CallSid", "CA1")]);
        let keys = Keys::new()
            .with_auth_token("token".to_owned().into())
            .with_shared_key(SharedKey {
                id: Some("k1".into()),
                secret: "shared".to_owned().into(),
            });
        let check = |sig: &str, settings: Option<&str>| {
            verify(
                &keys,
                &Request {
                    url,
                    body: Body::Form(&p),
                    signature: Some(sig),
                    settings,
                },
            )
        };
        let good = compute_sha256("shared", url, &p);
        assert_eq!(check(&good, Some("key=k1,algorithm=HMAC_SHA256")), Ok(()));
        assert_eq!(
            check(&good, Some(" key = k1 , algorithm = hmac_sha256 ")),
            Ok(())
        );
        assert_eq!(
            check(&good, Some("key=k2,algorithm=HMAC_SHA256")),
            Err(Rejection::UnknownSharedKey)
        );
        assert_eq!(
            check(&good, Some("key=k1,algorithm=HMAC_MD5")),
            Err(Rejection::UnsupportedAlgorithm)
        );
        assert_eq!(check(&good, None), Err(Rejection::Mismatch));
        // The Auth Token does not sign in SharedKey mode.
        let by_token = compute_sha256("token", url, &p);
        assert_eq!(
            check(&by_token, Some("key=k1,algorithm=HMAC_SHA256")),
            Err(Rejection::Mismatch)
        );
        // SHA-1 with the shared key when the algorithm is not announced.
        let sha1 = compute("shared", url, &p);
        assert_eq!(check(&sha1, Some("key=k1")), Ok(()));
    }

    #[test]
    fn raw_bodies_need_a_matching_body_sha256() {
        let body = br#"{"a":1}"#;
        let url = format!("https://h.com/hook?bodySHA256={}", body_sha256(body));
        let sig = compute("t", &url, &[]);
        let req = |url: &str, body: &[u8]| {
            verify(
                &keys("t"),
                &Request {
                    url,
                    body: Body::Raw(body),
                    signature: Some(&sig),
                    settings: None,
                },
            )
        };
        assert_eq!(req(&url, body), Ok(()));
        assert_eq!(
            req(&url.replace("h.com", "x.com"), body),
            Err(Rejection::Mismatch)
        );
        assert_eq!(req(&url, br#"{"a":2}"#), Err(Rejection::BodyHashMismatch));
        assert_eq!(
            req("https://h.com/hook", body),
            Err(Rejection::BodyNotSigned)
        );
    }

    #[test]
    fn verify_never_panics_on_odd_urls_and_headers() {
        let p = pairs(&[("a", "b")]);
        for url in [
            "",
            "://",
            "http://",
            "http://:",
            "http://[",
            "http://[::1",
            "http://h:x/",
            "http://@",
            "h?#",
        ] {
            for settings in [
                None,
                Some(""),
                Some(","),
                Some("="),
                Some("key="),
                Some("algorithm=,key=x"),
            ] {
                let _ = verify(
                    &keys("t"),
                    &Request {
                        url,
                        body: Body::Form(&p),
                        signature: Some("x"),
                        settings,
                    },
                );
            }
        }
    }
}

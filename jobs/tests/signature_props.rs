//! Property tests of the Twilio signature: for any URL and form, our `compute` equals an
//! independent implementation of Twilio's rules, `verify` accepts what `compute` signs (and
//! rejects a changed value), and on a random sample the official PyPI `twilio` SDK
//! (`RequestValidator.compute_signature`) agrees byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use moked_jobs::signature::{self, Body, Keys, Request};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sha1::Sha1;

/// Twilio's rule as the SDKs state it: names in byte order; each name's values in byte order,
/// repeated identical values once; `url + name + value + …`; HMAC-SHA1; base64.
fn reference(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (n, v) in params {
        by_name.entry(n).or_default().insert(v);
    }
    let mut data = url.to_owned();
    for (name, values) in by_name {
        for value in values {
            data.push_str(name);
            data.push_str(value);
        }
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Form names and values: Twilio-like words, Hebrew, numbers with `+`, spaces, punctuation.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9]{0,12}",
        "[+0-9]{0,15}",
        "[שלוםעולםתודה ]{0,12}",
        "[ -~]{0,16}",
    ]
}

fn form() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof!["[A-Z][A-Za-z]{0,8}", Just("Digits".to_owned())],
            text(),
        ),
        0..12,
    )
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        "[a-z]{1,10}\\.example\\.com",
        "(/[a-z_]{1,10}){0,3}",
        prop::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"),
    )
        .prop_map(|(scheme, host, path, query)| match query {
            Some(q) => format!("{scheme}://{host}{path}?{q}"),
            None => format!("{scheme}://{host}{path}"),
        })
}

proptest! {
    #[test]
    fn compute_matches_the_reference_rule_and_verify_accepts_it(
        token in "[a-f0-9]{32}", url in url(), params in form()
    ) {
        let ours = signature::compute(&token, &url, &params);
        prop_assert_eq!(&ours, &reference(&token, &url, &params));
        let keys = Keys::new().with_auth_token(token.clone().into());
        let ok = signature::verify(&keys, &Request {
            url: &url,
            body: Body::Form(&params),
            signature: Some(&ours),
            settings: None,
        });
        prop_assert!(ok.is_ok(), "{:?}", ok);
        if let Some((name, value)) = params.first() {
            let mut changed = params.clone();
            changed[0] = (name.clone(), format!("{value}x"));
            let bad = signature::verify(&keys, &Request {
                url: &url,
                body: Body::Form(&changed),
                signature: Some(&ours),
                settings: None,
            });
            prop_assert!(bad.is_err(), "a changed value must not verify");
        }
    }
}

/// One signing case: token, URL, form.
type Case = (String, String, Vec<(String, String)>);

/// Python with the official `twilio` package (scripts/test exports MOKED_TWILIO_PY).
fn twilio_python() -> Option<String> {
    let py = std::env::var("MOKED_TWILIO_PY").ok()?;
    let ok = Command::new(&py)
        .args(["-c", "import twilio"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

#[test]
fn the_official_python_signer_agrees_on_a_random_sample() {
    let Some(py) = twilio_python() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs MOKED_TWILIO_PY (a python with the `twilio` package)"
        );
        eprintln!("SKIPPED: set MOKED_TWILIO_PY to a python with the `twilio` package");
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = ("[a-f0-9]{32}", url(), form());
    let cases: Vec<Case> = (0..200)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect();
    let input = serde_json::to_string(&cases).expect("json");
    let script = r#"
import json, sys
from twilio.request_validator import RequestValidator
class Multi(dict):
    def getall(self, k): return self[k]
for token, url, params in json.load(sys.stdin):
    m = Multi()
    for n, v in params: m.setdefault(n, []).append(v)
    print(RequestValidator(token).compute_signature(url, m))
"#;
    let mut child = Command::new(&py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "the python signer failed");
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(theirs.len(), cases.len());
    for ((token, url, params), expected) in cases.iter().zip(&theirs) {
        assert_eq!(
            &signature::compute(token, url, params),
            expected,
            "url {url} params {params:?}"
        );
    }
}

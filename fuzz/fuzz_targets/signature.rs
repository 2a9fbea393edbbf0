//! Fuzz target `signature`: Twilio webhook signature verification
//! ([`moked_jobs::signature::verify`]) on arbitrary URLs, bodies and header values, the way the
//! intake's `TwilioForm` extractor calls it: the body goes through the strict form parser
//! ([`moked_intake::body::Form::parse`]) and its decoded pairs are verified; a body that is not a
//! form is verified as a raw (JSON-mode) body.
//!
//! Input, `\n`-separated (a seed is readable and easy to write by hand):
//! `token \n url \n X-Twilio-Signature \n X-Twilio-Webhooks-Signature-Settings \n body…`
//! (an empty header line means the header is absent; the body is everything after line 4).
//!
//! Asserts, besides "no panic" on every input:
//! * a signature computed by our signer ([`moked_jobs::signature::compute`]) for that URL and
//!   form always verifies, whatever the order of the fields, with blanks around the header;
//! * so does one computed over either port variant of the URL (port removed / default added);
//! * SharedKey mode: a HMAC-SHA256 signature with the announced key id verifies;
//! * JSON mode: a URL carrying `bodySHA256` of the body, signed alone, verifies for that body;
//! * and the negative side: a changed signature, another token, a changed raw body are refused.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use moked_intake::body::Form;
use moked_jobs::signature::{
    self, BODY_SHA256_PARAM, Body, Keys, Rejection, Request, Settings, SharedKey,
};
use secrecy::SecretString;

/// Splits the input into its five fields (missing fields are empty).
fn fields(data: &[u8]) -> [&[u8]; 5] {
    let mut out: [&[u8]; 5] = [&[]; 5];
    let mut rest = data;
    for slot in out.iter_mut().take(4) {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &[];
            }
        }
    }
    out[4] = rest;
    out
}

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn header(bytes: &[u8]) -> Option<Cow<'_, str>> {
    (!bytes.is_empty()).then(|| text(bytes))
}

fn auth_token(token: &str) -> Keys {
    Keys::new().with_auth_token(SecretString::from(token.to_owned()))
}

fuzz_target!(|data: &[u8]| {
    let [token, url, sig, settings, body] = fields(data);
    let (token, url) = (text(token), text(url));
    let (sig, settings) = (header(sig), header(settings));

    // Every key kind at once: the token as primary Auth Token, a secondary, and as a shared key.
    let keys = auth_token(&token)
        .with_auth_token(SecretString::from("secondary-token"))
        .with_shared_key(SharedKey {
            id: Some("KS1".into()),
            secret: SecretString::from(token.to_string()),
        });
    let form = Form::parse(body);
    let request_body = match &form {
        Ok(form) => Body::Form(form.pairs()),
        Err(_) => Body::Raw(body),
    };
    let request = Request {
        url: &url,
        body: request_body,
        signature: sig.as_deref(),
        settings: settings.as_deref(),
    };
    let _ = signature::verify(&keys, &request);
    let _ = signature::verify(&Keys::new(), &request);
    let _ = signature::verify(
        &keys,
        &Request {
            body: Body::Raw(body),
            ..request
        },
    );
    let _ = settings.as_deref().map(Settings::parse);
    let (without_port, with_port) = signature::port_variants(&url);

    // Properties of our own signer: they need a key (an empty token is never configured).
    if token.is_empty() {
        return;
    }
    let keys = auth_token(&token);
    let pairs: Vec<(String, String)> = match &form {
        Ok(form) => form.pairs().to_vec(),
        Err(_) => form_urlencoded::parse(body).into_owned().collect(),
    };
    let _ = signature::signed_string(&url, &pairs);
    let verify_form = |keys: &Keys, pairs: &[(String, String)], sig: &str, settings| {
        signature::verify(
            keys,
            &Request {
                url: &url,
                body: Body::Form(pairs),
                signature: Some(sig),
                settings,
            },
        )
    };

    let good = signature::compute(&token, &url, &pairs);
    assert_eq!(
        verify_form(&keys, &pairs, &good, None),
        Ok(()),
        "own signature refused"
    );
    let reversed: Vec<_> = pairs.iter().rev().cloned().collect();
    assert_eq!(
        verify_form(&keys, &reversed, &good, None),
        Ok(()),
        "field order mattered"
    );
    let padded = format!(" {good}\t");
    assert_eq!(
        verify_form(&keys, &pairs, &padded, None),
        Ok(()),
        "blanks around the header"
    );
    for variant in [&without_port, &with_port] {
        let sig = signature::compute(&token, variant, &pairs);
        assert_eq!(
            verify_form(&keys, &pairs, &sig, None),
            Ok(()),
            "port variant {variant}"
        );
    }

    let mut changed = good.clone().into_bytes();
    changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).expect("base64 is ASCII");
    assert_eq!(
        verify_form(&keys, &pairs, &changed, None),
        Err(Rejection::Mismatch)
    );
    let other = auth_token(&format!("{token}x"));
    assert_eq!(
        verify_form(&other, &pairs, &good, None),
        Err(Rejection::Mismatch)
    );

    let shared = Keys::new().with_shared_key(SharedKey {
        id: Some("KS1".into()),
        secret: SecretString::from(token.to_string()),
    });
    let sha256 = signature::compute_sha256(&token, &url, &pairs);
    assert_eq!(
        verify_form(
            &shared,
            &pairs,
            &sha256,
            Some("key=KS1,algorithm=HMAC_SHA256")
        ),
        Ok(()),
        "own SharedKey signature refused"
    );

    // JSON mode: the URL (without query or fragment of its own) carries the body's hash.
    let base: String = url.chars().filter(|c| *c != '?' && *c != '#').collect();
    let json_url = format!(
        "{base}?{BODY_SHA256_PARAM}={}",
        signature::body_sha256(body)
    );
    let json_sig = signature::compute(&token, &json_url, &[]);
    let raw = |body: &[u8]| {
        signature::verify(
            &keys,
            &Request {
                url: &json_url,
                body: Body::Raw(body),
                signature: Some(&json_sig),
                settings: None,
            },
        )
    };
    assert_eq!(raw(body), Ok(()), "own JSON-mode signature refused");
    let mut other_body = body.to_vec();
    other_body.push(b'!');
    assert_eq!(raw(&other_body), Err(Rejection::BodyHashMismatch));
});

//! Fuzz target `twiml`: the TwiML answers ([`moked_intake::twiml`]) built from arbitrary
//! strings in place of the settings they take (PUBLIC_HOST, SAY_VOICE, the welcome URL, a
//! `<Reject>` reason).
//!
//! Input, `\n`-separated: `public_host \n voice \n reason [\n welcome_url…]` (the welcome URL,
//! everything after line 3, is absent when there is no fourth line).
//!
//! Asserts, besides "no panic" and "never an error":
//! * every answer is well-formed XML: quick-xml reads it to the end with all its checks on, one
//!   `<Response>` root after the declaration, end tags matching;
//! * the structure is exactly the expected one (element names, attribute names and order);
//! * every text and attribute value reads back — with XML 1.0's end-of-line and attribute-value
//!   normalisation, as a conforming parser such as Twilio's does — equal to the string it came
//!   from (escaping loses and adds nothing);
//! * when the inputs hold only characters XML 1.0 allows, so does the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moked_intake::twiml::{self, Answers, GREETING, THANKS};
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// One child of `<Response>`: its name, attributes and text.
#[derive(Debug, PartialEq, Eq)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
}

fn element(name: &str, attributes: &[(&str, &str)], text: &str) -> Element {
    Element {
        name: name.to_owned(),
        attributes: attributes
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        text: text.to_owned(),
    }
}

fn start(e: &BytesStart<'_>) -> Element {
    let attributes = e
        .attributes()
        .with_checks(true)
        .map(|a| {
            let a = a.expect("well-formed attribute");
            let value = a
                .normalized_value(XmlVersion::Explicit1_0)
                .expect("attribute value unescapes");
            (a.key.as_ref().to_owned(), value.into_owned())
        })
        .collect();
    Element {
        name: e.name().as_ref().to_owned(),
        attributes,
        text: String::new(),
    }
}

/// Reads a whole TwiML document back: the children of `<Response>`, or panics if it is not
/// well-formed or not shaped like a TwiML answer (one level of elements holding text).
fn read(xml: &str) -> Vec<Element> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().enable_all_checks(true);
    let mut next = || reader.read_event().unwrap_or_else(|e| panic!("{e}: {xml}"));
    match next() {
        Event::Decl(d) => assert_eq!(d.version().expect("version").as_ref(), "1.0"),
        other => panic!("no declaration first: {other:?} in {xml}"),
    }
    let mut children = Vec::new();
    match next() {
        Event::Empty(e) if e.name().as_ref() == "Response" => {}
        Event::Start(e) if e.name().as_ref() == "Response" => loop {
            match next() {
                Event::Empty(e) => children.push(start(&e)),
                Event::Start(e) => {
                    let mut child = start(&e);
                    loop {
                        match next() {
                            Event::Text(t) => child.text.push_str(&t.xml10_content()),
                            Event::GeneralRef(r) => match r.resolve_char_ref() {
                                Ok(Some(c)) => child.text.push(c),
                                _ => child.text.push_str(
                                    resolve_predefined_entity(&r)
                                        .unwrap_or_else(|| panic!("entity &{}; in {xml}", &*r)),
                                ),
                            },
                            Event::End(end) if end.name() == e.name() => break,
                            other => panic!("unexpected {other:?} in {xml}"),
                        }
                    }
                    children.push(child);
                }
                Event::End(e) if e.name().as_ref() == "Response" => break,
                other => panic!("unexpected {other:?} in {xml}"),
            }
        },
        other => panic!("no <Response> root: {other:?} in {xml}"),
    }
    assert!(
        matches!(next(), Event::Eof),
        "content after </Response>: {xml}"
    );
    children
}

/// Whether every character is allowed by XML 1.0's `Char` production.
fn xml_chars_only(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    })
}

fn lines(data: &[u8]) -> (String, String, String, Option<String>) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let mut part = || parts.next().map(str::to_owned);
    let host = part().unwrap_or_default();
    let voice = part().unwrap_or_default();
    let reason = part().unwrap_or_default();
    (host, voice, reason, part())
}

fuzz_target!(|data: &[u8]| {
    let (host, voice, reason, welcome) = lines(data);
    let clean = [&host, &voice, &reason]
        .into_iter()
        .chain(&welcome)
        .all(|s| xml_chars_only(s));

    let answers = Answers::build(&host, &voice, welcome.as_deref()).expect("answers build");
    let incoming = twiml::incoming_call(&host, &voice, welcome.as_deref()).expect("writes");
    assert_eq!(answers.incoming_call.0, incoming.as_bytes());
    let after = twiml::after_recording(&voice).expect("writes");
    assert_eq!(answers.after_recording.0, after.as_bytes());
    let reject = twiml::reject(&reason).expect("writes");
    for xml in [&incoming, &after, &reject] {
        if clean {
            assert!(xml_chars_only(xml), "a character XML forbids: {xml:?}");
        }
    }

    let action = format!("{host}/webhook/handle_recording");
    let status = format!("{host}/webhook/recording_status");
    let first = match &welcome {
        Some(url) => element("Play", &[], url),
        None => element("Say", &[("language", "he-IL"), ("voice", &voice)], GREETING),
    };
    let record = element(
        "Record",
        &[
            ("action", &action),
            ("method", "POST"),
            ("maxLength", "30"),
            ("timeout", "5"),
            ("finishOnKey", "*"),
            ("playBeep", "true"),
            ("recordingStatusCallback", &status),
            ("recordingStatusCallbackEvent", "completed"),
        ],
        "",
    );
    assert_eq!(
        read(&incoming),
        [first, element("Pause", &[("length", "1")], ""), record]
    );
    assert_eq!(
        read(&after),
        [
            element("Say", &[("language", "he-IL"), ("voice", &voice)], THANKS),
            element("Hangup", &[], ""),
        ]
    );
    assert_eq!(
        read(&reject),
        [element("Reject", &[("reason", &reason)], "")]
    );
    assert!(read(&twiml::empty().expect("writes")).is_empty());
    assert!(read(std::str::from_utf8(&answers.reject_busy.0).expect("UTF-8")).len() == 1);
    assert!(read(std::str::from_utf8(&answers.empty.0).expect("UTF-8")).is_empty());
});

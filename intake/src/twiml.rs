//! TwiML answers, written with an XML writer so every attribute and text is escaped.
//!
//! The documents depend only on settings (PUBLIC_HOST, SAY_VOICE, whether `welcome.mp3`
//! exists), so they are built once at start-up ([`Answers::build`]) and served as shared bytes.
//! Text is escaped like Twilio's own SDKs (`&`, `<`, `>`), attributes fully; Hebrew stays
//! UTF-8 and the answer says so in its content type ([`CONTENT_TYPE`]).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use quick_xml::Writer;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesText, Event};

/// The content type of every TwiML answer.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// The spoken greeting when no `welcome.mp3` is installed.
pub const GREETING: &str = "שלום, ההקלטה מתחילה עכשיו. השאירו הודעה אחרי הצפצוף.";

/// The thanks after a recording.
pub const THANKS: &str = "תודה, קיבלנו את ההודעה שלך.";

/// A TwiML document, answered as 200 `text/xml; charset=utf-8`.
#[derive(Debug, Clone)]
pub struct Twiml(pub Bytes);

impl IntoResponse for Twiml {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            self.0,
        )
            .into_response()
    }
}

/// The fixed answers of the voice and messaging webhooks.
#[derive(Debug, Clone)]
pub struct Answers {
    /// `/webhook/incoming_call`: greeting, pause, record.
    pub incoming_call: Twiml,
    /// `/webhook/handle_recording`: thanks and hang up.
    pub after_recording: Twiml,
    /// An incoming call over its caller's limit: `<Reject reason="busy"/>`.
    pub reject_busy: Twiml,
    /// `/webhook/whatsapp/incoming`: the empty `<Response/>`.
    pub empty: Twiml,
}

impl Answers {
    /// Builds every answer. `welcome_url` is the public URL of `welcome.mp3` when that file
    /// exists (then it is played instead of the spoken greeting).
    pub fn build(
        public_host: &str,
        voice: &str,
        welcome_url: Option<&str>,
    ) -> std::io::Result<Answers> {
        Ok(Answers {
            incoming_call: Twiml(incoming_call(public_host, voice, welcome_url)?.into()),
            after_recording: Twiml(after_recording(voice)?.into()),
            reject_busy: Twiml(reject("busy")?.into()),
            empty: Twiml(empty()?.into()),
        })
    }
}

type Xml = Writer<Vec<u8>>;

/// Writes the children of `<Response>`.
type Body<'a> = &'a dyn Fn(&mut Xml) -> std::io::Result<()>;

/// Writes `<?xml …?><Response>…</Response>` with `body` inside (or `<Response/>` when `None`).
fn document(body: Option<Body<'_>>) -> std::io::Result<String> {
    let mut w = Writer::new(Vec::new());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    match body {
        Some(body) => {
            w.create_element("Response")
                .write_inner_content(|w| body(w))?;
        }
        None => {
            w.create_element("Response").write_empty()?;
        }
    }
    String::from_utf8(w.into_inner()).map_err(std::io::Error::other)
}

/// `<Say language="he-IL" voice="…">text</Say>`.
fn say(w: &mut Xml, voice: &str, text: &str) -> std::io::Result<()> {
    w.create_element("Say")
        .with_attributes([("language", "he-IL"), ("voice", voice)])
        .write_text_content(BytesText::from_escaped(partial_escape(text)))?;
    Ok(())
}

/// The answer to an incoming call.
pub fn incoming_call(
    public_host: &str,
    voice: &str,
    welcome_url: Option<&str>,
) -> std::io::Result<String> {
    let action = format!("{public_host}/webhook/handle_recording");
    let status = format!("{public_host}/webhook/recording_status");
    document(Some(&|w: &mut Xml| {
        match welcome_url {
            Some(url) => {
                w.create_element("Play")
                    .write_text_content(BytesText::from_escaped(partial_escape(url)))?;
            }
            None => say(w, voice, GREETING)?,
        }
        w.create_element("Pause")
            .with_attribute(("length", "1"))
            .write_empty()?;
        w.create_element("Record")
            .with_attributes([
                ("action", action.as_str()),
                ("method", "POST"),
                ("maxLength", "30"),
                ("timeout", "5"),
                ("finishOnKey", "*"),
                ("playBeep", "true"),
                ("recordingStatusCallback", status.as_str()),
                ("recordingStatusCallbackEvent", "completed"),
            ])
            .write_empty()?;
        Ok(())
    }))
}

/// The answer after a recording: thanks, then hang up.
pub fn after_recording(voice: &str) -> std::io::Result<String> {
    document(Some(&|w: &mut Xml| {
        say(w, voice, THANKS)?;
        w.create_element("Hangup").write_empty()?;
        Ok(())
    }))
}

/// `<Response><Reject reason="…"/></Response>`.
pub fn reject(reason: &str) -> std::io::Result<String> {
    document(Some(&|w: &mut Xml| {
        w.create_element("Reject")
            .with_attribute(("reason", reason))
            .write_empty()?;
        Ok(())
    }))
}

/// `<Response/>`.
pub fn empty() -> std::io::Result<String> {
    document(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn incoming_call_says_the_greeting_in_the_configured_voice_without_welcome_mp3() {
        let xml =
            incoming_call("https://m.example.com", "Google.he-IL-Wavenet-A", None).expect("writes");
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say language=\"he-IL\" voice=\"Google.he-IL-Wavenet-A\">{GREETING}</Say>\
                 <Pause length=\"1\"/><Record action=\"https://m.example.com/webhook/handle_recording\" \
                 method=\"POST\" maxLength=\"30\" timeout=\"5\" finishOnKey=\"*\" playBeep=\"true\" \
                 recordingStatusCallback=\"https://m.example.com/webhook/recording_status\" \
                 recordingStatusCallbackEvent=\"completed\"/></Response>"
            )
        );
    }

    #[test]
    fn incoming_call_plays_welcome_mp3_when_it_exists() {
        let url = "https://m.example.com/static/voice_responses/welcome.mp3";
        let xml = incoming_call("https://m.example.com", "Google.he-IL-Wavenet-A", Some(url))
            .expect("writes");
        assert!(
            xml.starts_with(&format!(
                "{DECL}<Response><Play>{url}</Play><Pause length=\"1\"/>"
            )),
            "{xml}"
        );
        assert!(!xml.contains("<Say"), "{xml}");
    }

    #[test]
    fn after_recording_thanks_and_hangs_up() {
        assert_eq!(
            after_recording("Google.he-IL-Standard-B").expect("writes"),
            format!(
                "{DECL}<Response><Say language=\"he-IL\" voice=\"Google.he-IL-Standard-B\">{THANKS}</Say>\
                 <Hangup/></Response>"
            )
        );
    }

    #[test]
    fn reject_and_empty_answers() {
        assert_eq!(
            reject("busy").expect("writes"),
            format!("{DECL}<Response><Reject reason=\"busy\"/></Response>")
        );
        assert_eq!(empty().expect("writes"), format!("{DECL}<Response/>"));
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let xml = incoming_call(
            "https://h.com/a?x=1&y=\"2\"",
            "v<\"&",
            Some("https://h.com/a&b<c>"),
        )
        .expect("writes");
        assert!(
            xml.contains("<Play>https://h.com/a&amp;b&lt;c&gt;</Play>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "action=\"https://h.com/a?x=1&amp;y=&quot;2&quot;/webhook/handle_recording\""
            ),
            "{xml}"
        );
        let xml = after_recording("v<\"&").expect("writes");
        assert!(xml.contains("voice=\"v&lt;&quot;&amp;\""), "{xml}");
    }

    #[test]
    fn a_carriage_return_in_text_survives_end_of_line_normalisation() {
        // A parser turns a raw CR LF into LF; written as &#13; the CR reads back as it was
        // (quick-xml escapes it from 0.42 on: found by the `twiml` fuzz target when the
        // writer was moved to 0.41).
        let xml =
            incoming_call("https://h.com", "v", Some("https://h.com/a\r\nb")).expect("writes");
        assert!(
            xml.contains("<Play>https://h.com/a&#13;\nb</Play>"),
            "{xml}"
        );
    }
}

//! The Twilio REST API (2010-04-01): the few endpoints moked needs, behind [`TwilioApi`].
//!
//! Twilio has no official Rust SDK and the community crates (`twilio`, `twilio-rs`, …) are
//! unmaintained or untyped, so this is a thin reqwest client with serde structs for the fields we
//! read. Every call uses HTTP Basic auth (Account SID, Auth Token) against `TWILIO_API_BASE`.
//!
//! Errors are classified for the retry policy ([`TwilioError::to_job_error`]):
//! * 429 / Twilio 20429 → retry, honouring `Retry-After` ("never processed, always safe");
//! * 5xx and timeouts → retry; on a `POST` they are **ambiguous** (the message may have been
//!   sent), which [`TwilioError::is_ambiguous`] tells the caller so it can look before resending;
//! * other 4xx → permanent, with Twilio's code and message.
//!
//! Every request carries credentials, so no request leaves for a URL that is not under
//! `TWILIO_API_BASE` (same scheme, host and port, under its path, no userinfo; [`under_base`]):
//! that covers an absolute `next_page_uri` in a list answer (Twilio sends relative ones; an
//! absolute one naming another host is refused with [`TwilioError::ForeignUrl`], never
//! followed) and media URLs, which [`TwilioApi::get_media`] also requires to name this account
//! (an SSRF / credential-leak guard, as in Chatwoot's media download service).
//!
//! Every request counts in `moked_twilio_requests_total{method,status}` (the HTTP status, or
//! `transport_error` when no answer came), visible on `/metrics` where a recorder is installed.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moked_jobs::config::CoreConfig;
use moked_jobs::retry::JobError;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How long one REST call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A Twilio message resource (the fields we read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Message {
    /// SM… / MM…
    pub sid: String,
    /// Status (`queued`, `sent`, `delivered`, …).
    pub status: String,
    /// `whatsapp:+…` or `+…`.
    #[serde(default)]
    pub to: Option<String>,
    /// Sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Body text.
    #[serde(default)]
    pub body: Option<String>,
    /// Twilio error code, if failed.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Twilio error message, if failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// RFC 2822 creation date.
    #[serde(default)]
    pub date_created: Option<String>,
}

/// A Twilio call resource (the fields we read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Call {
    /// CA…
    pub sid: String,
    /// Status (`queued`, `ringing`, `in-progress`, `completed`, …).
    pub status: String,
    /// Duration in seconds (a string in Twilio's JSON).
    #[serde(default)]
    pub duration: Option<String>,
    /// Caller.
    #[serde(default)]
    pub from: Option<String>,
    /// Called number.
    #[serde(default)]
    pub to: Option<String>,
}

/// A Twilio recording resource (the fields we read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Recording {
    /// RE…
    pub sid: String,
    /// CA… it belongs to.
    #[serde(default)]
    pub call_sid: Option<String>,
    /// `in-progress`, `completed`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Duration in seconds (a string in Twilio's JSON).
    #[serde(default)]
    pub duration: Option<String>,
}

/// A page of a Twilio list.
#[derive(Debug, Clone, Deserialize)]
struct Page<T> {
    #[serde(
        default = "Vec::new",
        alias = "messages",
        alias = "recordings",
        alias = "calls"
    )]
    items: Vec<T>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

/// The form of a new message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    /// `whatsapp:+E164`.
    pub to: String,
    /// `whatsapp:+E164`.
    pub from: String,
    /// Free text (not with a template).
    pub body: Option<String>,
    /// Template (Content API).
    pub content_sid: Option<String>,
    /// Template variables (a JSON object as text).
    pub content_variables: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
    /// Where Twilio posts status callbacks.
    pub status_callback: Option<String>,
}

/// Twilio's error body.
#[derive(Debug, Clone, Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// A failed Twilio call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error status.
    #[error("Twilio {method} {path} → HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Status {
        /// The method.
        method: &'static str,
        /// The path (no host, no credentials).
        path: String,
        /// HTTP status.
        status: u16,
        /// Twilio's error code.
        code: Option<i64>,
        /// Twilio's message.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// No answer in time, or the connection broke.
    #[error("Twilio {method} {path}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// What happened.
        reason: String,
        /// Whether the request may have reached Twilio (sent, then no answer).
        maybe_sent: bool,
    },
    /// An answer we cannot read.
    #[error("Twilio {path}: unreadable answer: {reason}")]
    Decode {
        /// The path.
        path: String,
        /// serde's reason.
        reason: String,
    },
    /// Not configured (no account SID or token).
    #[error("Twilio is not configured: {0}")]
    NotConfigured(&'static str),
    /// A URL we will not send credentials to.
    #[error("refusing to send Twilio credentials to {0}: it is not under TWILIO_API_BASE")]
    ForeignUrl(String),
}

impl TwilioError {
    /// The HTTP status, if Twilio answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            TwilioError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Twilio's error code, if any.
    pub fn code(&self) -> Option<i64> {
        match self {
            TwilioError::Status { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether a `POST` that failed this way may still have taken effect (5xx or a transport
    /// failure after the request was sent).
    pub fn is_ambiguous(&self) -> bool {
        match self {
            TwilioError::Status { status, .. } => *status >= 500,
            TwilioError::Transport { maybe_sent, .. } => *maybe_sent,
            _ => false,
        }
    }

    /// Classifies the failure for the retry policy.
    pub fn to_job_error(&self) -> JobError {
        match self {
            TwilioError::Status {
                status,
                code,
                retry_after,
                ..
            } if *status == 429 || *code == Some(20429) => match retry_after {
                Some(after) => JobError::RetryAfter {
                    after: *after,
                    reason: self.to_string(),
                },
                None => JobError::transient(self),
            },
            TwilioError::Status {
                status,
                retry_after,
                ..
            } if *status >= 500 => match retry_after {
                Some(after) => JobError::RetryAfter {
                    after: *after,
                    reason: self.to_string(),
                },
                None => JobError::transient(self),
            },
            TwilioError::Status { .. } => JobError::permanent(self),
            TwilioError::Transport { .. } | TwilioError::Decode { .. } => JobError::transient(self),
            TwilioError::NotConfigured(_) | TwilioError::ForeignUrl(_) => JobError::permanent(self),
        }
    }
}

/// The Twilio REST calls moked makes.
#[async_trait]
pub trait TwilioApi: Send + Sync + 'static {
    /// `POST Messages.json` → the created message (201).
    async fn create_message(&self, msg: &NewMessage) -> Result<Message, TwilioError>;
    /// `GET Messages.json?To=…&DateSent>=…` (all pages, newest first).
    async fn list_messages_to(
        &self,
        to: &str,
        sent_after: DateTime<Utc>,
    ) -> Result<Vec<Message>, TwilioError>;
    /// `GET Messages/{sid}.json`.
    async fn fetch_message(&self, sid: &str) -> Result<Message, TwilioError>;
    /// `GET Calls/{sid}.json`.
    async fn fetch_call(&self, sid: &str) -> Result<Call, TwilioError>;
    /// `GET Calls/{sid}/Recordings.json` (all pages).
    async fn list_call_recordings(&self, call_sid: &str) -> Result<Vec<Recording>, TwilioError>;
    /// `DELETE Recordings/{sid}.json`.
    async fn delete_recording(&self, sid: &str) -> Result<(), TwilioError>;
    /// `GET Accounts/{sid}.json` (reachability and credentials).
    async fn fetch_account(&self) -> Result<(), TwilioError>;
    /// `GET` a media URL under the API base with credentials; the response streams.
    async fn get_media(&self, url: &str) -> Result<reqwest::Response, TwilioError>;
}

/// The real client.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base: String,
    account_sid: Option<String>,
    token: Option<SecretString>,
}

/// Parses `Retry-After` seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A request that got no answer, as its error tells it: the reason (`timed out` or
/// `connection failed (…)`, without the URL) and whether the request may have reached the
/// other side — a timeout or a reset after connecting may follow a request it received.
pub fn transport_failure(e: reqwest::Error) -> (String, bool) {
    let maybe_sent = !e.is_connect();
    let reason = if e.is_timeout() {
        "timed out".into()
    } else {
        format!("connection failed ({})", e.without_url())
    };
    (reason, maybe_sent)
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "GET",
    }
}

impl TwilioClient {
    /// A client from the shared configuration.
    pub fn new(core: &CoreConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("moked/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TwilioClient {
            http,
            base: core.twilio.api_base.clone(),
            account_sid: core.twilio.account_sid.clone(),
            token: core.twilio.auth_token.clone(),
        })
    }

    fn creds(&self) -> Result<(&str, &SecretString), TwilioError> {
        let sid = self
            .account_sid
            .as_deref()
            .ok_or(TwilioError::NotConfigured("TWILIO_ACCOUNT_SID is unset"))?;
        let token = self
            .token
            .as_ref()
            .ok_or(TwilioError::NotConfigured("TWILIO_AUTH_TOKEN is unset"))?;
        Ok((sid, token))
    }

    fn account_path(&self, rest: &str) -> Result<String, TwilioError> {
        let (sid, _) = self.creds()?;
        Ok(format!("/2010-04-01/Accounts/{sid}{rest}"))
    }

    /// The URL of `path`: a path (`/2010-04-01/…`) is joined to `TWILIO_API_BASE`; anything
    /// else is taken as a URL and must be under it ([`under_base`]), since every request
    /// carries the credentials.
    fn url_of(&self, path: &str) -> Result<String, TwilioError> {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            path.to_owned()
        };
        if under_base(&self.base, &url) {
            Ok(url)
        } else {
            Err(TwilioError::ForeignUrl(
                url.split('?').next().unwrap_or(&url).to_owned(),
            ))
        }
    }

    /// Sends one request; maps statuses and transport failures to [`TwilioError`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<reqwest::Response, TwilioError> {
        let (sid, token) = self.creds()?;
        let url = self.url_of(path)?;
        let name = method_name(&method);
        let mut req = self
            .http
            .request(method, &url)
            .basic_auth(sid, Some(token.expose_secret()));
        if let Some(form) = form {
            req = req.form(form);
        }
        let shown = path.split('?').next().unwrap_or(path).to_owned();
        let sent = req.send().await;
        let status_label = match &sent {
            Ok(resp) => resp.status().as_u16().to_string(),
            Err(_) => "transport_error".to_owned(),
        };
        metrics::counter!("moked_twilio_requests_total", "method" => name, "status" => status_label)
            .increment(1);
        let resp = sent.map_err(|e| {
            let (reason, maybe_sent) = transport_failure(e);
            TwilioError::Transport {
                method: name,
                path: shown.clone(),
                reason,
                maybe_sent,
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry = retry_after(resp.headers());
        let body: ErrorBody = resp.json().await.unwrap_or_default();
        Err(TwilioError::Status {
            method: name,
            path: shown,
            status: status.as_u16(),
            code: body.code,
            message: body
                .message
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            retry_after: retry,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<T, TwilioError> {
        let resp = self.send(method, path, form).await?;
        let shown = path.split('?').next().unwrap_or(path).to_owned();
        resp.json::<T>().await.map_err(|e| TwilioError::Decode {
            path: shown,
            reason: e.without_url().to_string(),
        })
    }

    /// Follows `next_page_uri` up to `max_pages` (only under `TWILIO_API_BASE`: see `send`).
    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        first: String,
        max_pages: usize,
    ) -> Result<Vec<T>, TwilioError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        for _ in 0..max_pages {
            let Some(path) = next.take() else { break };
            let page: Page<T> = self.json(Method::GET, &path, None).await?;
            out.extend(page.items);
            next = page.next_page_uri;
        }
        Ok(out)
    }
}

#[async_trait]
impl TwilioApi for TwilioClient {
    async fn create_message(&self, msg: &NewMessage) -> Result<Message, TwilioError> {
        let mut form: Vec<(String, String)> = vec![
            ("To".into(), msg.to.clone()),
            ("From".into(), msg.from.clone()),
        ];
        if let Some(b) = &msg.body {
            form.push(("Body".into(), b.clone()));
        }
        if let Some(c) = &msg.content_sid {
            form.push(("ContentSid".into(), c.clone()));
        }
        if let Some(v) = &msg.content_variables {
            form.push(("ContentVariables".into(), v.clone()));
        }
        for m in &msg.media_urls {
            form.push(("MediaUrl".into(), m.clone()));
        }
        if let Some(cb) = &msg.status_callback {
            form.push(("StatusCallback".into(), cb.clone()));
        }
        let path = self.account_path("/Messages.json")?;
        self.json(Method::POST, &path, Some(&form)).await
    }

    async fn list_messages_to(
        &self,
        to: &str,
        sent_after: DateTime<Utc>,
    ) -> Result<Vec<Message>, TwilioError> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("To", to)
            .append_pair("DateSent>", &sent_after.format("%Y-%m-%d").to_string())
            .append_pair("PageSize", "50")
            .finish();
        let path = self.account_path(&format!("/Messages.json?{query}"))?;
        self.all_pages(path, 5).await
    }

    async fn fetch_message(&self, sid: &str) -> Result<Message, TwilioError> {
        let path = self.account_path(&format!("/Messages/{sid}.json"))?;
        self.json(Method::GET, &path, None).await
    }

    async fn fetch_call(&self, sid: &str) -> Result<Call, TwilioError> {
        let path = self.account_path(&format!("/Calls/{sid}.json"))?;
        self.json(Method::GET, &path, None).await
    }

    async fn list_call_recordings(&self, call_sid: &str) -> Result<Vec<Recording>, TwilioError> {
        let path = self.account_path(&format!("/Calls/{call_sid}/Recordings.json?PageSize=50"))?;
        self.all_pages(path, 5).await
    }

    async fn delete_recording(&self, sid: &str) -> Result<(), TwilioError> {
        let path = self.account_path(&format!("/Recordings/{sid}.json"))?;
        match self.send(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND.as_u16()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn fetch_account(&self) -> Result<(), TwilioError> {
        let path = self.account_path(".json")?;
        self.send(Method::GET, &path, None).await.map(|_| ())
    }

    async fn get_media(&self, url: &str) -> Result<reqwest::Response, TwilioError> {
        let (sid, _) = self.creds()?;
        let allowed = under_base(&self.base, url) && url.contains(sid);
        if !allowed {
            return Err(TwilioError::ForeignUrl(
                url.split('?').next().unwrap_or(url).to_owned(),
            ));
        }
        self.send(Method::GET, url, None).await
    }
}

/// Whether `url` is under `base` (`TWILIO_API_BASE`): the same scheme, host and port, a path
/// at or below the base's, and no userinfo (`https://api.twilio.com@evil.example/` names
/// another host). Compared parsed, never as string prefixes.
pub fn under_base(base: &str, url: &str) -> bool {
    let (Ok(base), Ok(url)) = (url::Url::parse(base), url::Url::parse(url)) else {
        return false;
    };
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    url.scheme() == base.scheme()
        && url.host_str().is_some()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && (path == base_path || path.starts_with(&format!("{base_path}/")))
}

/// A Twilio error answer to `method /x` (unit tests of the failure classifications).
#[cfg(test)]
pub(crate) fn status_error(
    method: &'static str,
    status: u16,
    code: Option<i64>,
    retry_secs: Option<u64>,
) -> TwilioError {
    TwilioError::Status {
        method,
        path: "/x".into(),
        status,
        code,
        message: "m".into(),
        retry_after: retry_secs.map(Duration::from_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<i64>, retry: Option<u64>) -> TwilioError {
        status_error("POST", status, code, retry)
    }

    #[test]
    fn errors_are_classified_for_the_retry_policy() {
        assert!(matches!(
            status(429, Some(20429), Some(7)).to_job_error(),
            JobError::RetryAfter { after, .. } if after == Duration::from_secs(7)
        ));
        assert!(matches!(
            status(429, None, None).to_job_error(),
            JobError::Transient(_)
        ));
        assert!(matches!(
            status(503, None, None).to_job_error(),
            JobError::Transient(_)
        ));
        assert!(matches!(
            status(400, Some(21211), None).to_job_error(),
            JobError::Permanent(_)
        ));
        assert!(matches!(
            status(401, Some(20003), None).to_job_error(),
            JobError::Permanent(_)
        ));
        assert!(status(502, None, None).is_ambiguous());
        assert!(!status(400, None, None).is_ambiguous());
        let msg = status(400, Some(63016), None).to_string();
        assert!(msg.contains("63016"), "{msg}");
    }

    #[test]
    fn under_base_compares_scheme_host_port_and_path_parsed() {
        let base = "https://api.twilio.com";
        assert!(under_base(
            base,
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json"
        ));
        assert!(under_base(base, "https://api.twilio.com:443/2010-04-01/x"));
        for foreign in [
            "https://evil.example/2010-04-01/Accounts/AC1/Calls.json",
            "https://api.twilio.com.evil.example/2010-04-01/x",
            "https://api.twilio.com@evil.example/2010-04-01/x",
            "http://api.twilio.com/2010-04-01/x",
            "https://api.twilio.com:8443/2010-04-01/x",
            "evil.example/2010-04-01/x",
            "",
        ] {
            assert!(!under_base(base, foreign), "{foreign}");
        }
        let nested = "http://127.0.0.1:9000/twilio";
        assert!(under_base(
            nested,
            "http://127.0.0.1:9000/twilio/2010-04-01/x"
        ));
        assert!(!under_base(nested, "http://127.0.0.1:9000/twilio-evil/x"));
        assert!(!under_base(nested, "http://127.0.0.1:9000/2010-04-01/x"));
    }

    /// A "Twilio" whose recording lists page on: the first page links the second by a relative
    /// `next_page_uri`, the second the third by an absolute one under the base, and the third
    /// (for call `CAevil`) a fourth on another server, which counts the requests it gets.
    #[tokio::test]
    async fn pagination_follows_relative_and_same_base_links_and_refuses_another_host() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::extract::{Path, Query};
        use axum::routing::get;

        async fn serve(app: axum::Router) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            url
        }

        let foreign_hits = Arc::new(AtomicUsize::new(0));
        let foreign = serve(axum::Router::new().fallback({
            let hits = foreign_hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({"recordings": [], "next_page_uri": null}))
            }
        }))
        .await;
        let base_cell = Arc::new(std::sync::OnceLock::<String>::new());
        let twilio = serve(axum::Router::new().route(
            "/2010-04-01/Accounts/{account}/Calls/{call}/Recordings.json",
            get({
                let base = base_cell.clone();
                let foreign = foreign.clone();
                move |Path((account, call)): Path<(String, String)>,
                      Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let path =
                        format!("/2010-04-01/Accounts/{account}/Calls/{call}/Recordings.json");
                    let page = q.get("Page").cloned().unwrap_or_default();
                    let next = match page.as_str() {
                        "" => Some(format!("{path}?Page=1")),
                        "1" => Some(format!("{}{path}?Page=2", base.get().unwrap())),
                        "2" if call == "CAevil" => Some(format!("{foreign}{path}?Page=3")),
                        _ => None,
                    };
                    axum::Json(serde_json::json!({
                        "recordings": [{"sid": format!("RE{page}")}],
                        "next_page_uri": next,
                    }))
                }
            }),
        ))
        .await;
        base_cell.set(twilio.clone()).unwrap();
        let mut core = CoreConfig::for_database("sqlite::memory:");
        core.twilio.api_base = twilio.clone();
        core.twilio.account_sid = Some("AC0123".into());
        core.twilio.auth_token = Some(SecretString::from("token"));
        let client = TwilioClient::new(&core).unwrap();

        let all = client.list_call_recordings("CAgood").await.unwrap();
        let sids: Vec<&str> = all.iter().map(|r| r.sid.as_str()).collect();
        assert_eq!(
            sids,
            ["RE", "RE1", "RE2"],
            "relative and same-base links followed"
        );

        let err = client.list_call_recordings("CAevil").await.unwrap_err();
        assert!(matches!(err, TwilioError::ForeignUrl(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&foreign) && text.contains("TWILIO_API_BASE") && !text.contains("Page=3"),
            "a clear error naming the host, without the query: {text}"
        );
        assert!(matches!(err.to_job_error(), JobError::Permanent(_)));
        assert_eq!(
            foreign_hits.load(Ordering::SeqCst),
            0,
            "no request, so no credentials, reached the other host"
        );
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
    }
}

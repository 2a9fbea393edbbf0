//! Intake settings: rate limits, CORS, the `<Say>` voice, the static folder, the extra
//! signing secrets and the connection limits ([`crate::serve`]).
//!
//! Like [`moked_jobs::config::CoreArgs`], every setting is an env var and a clap flag; the raw
//! [`IntakeArgs`] are flattened into each binary that serves the intake (`moked-intake`, and
//! the all-in-one `moked`) and parsed once into a typed [`IntakeConfig`]. A bad value is a
//! [`ConfigError`] naming the variable. Tests build [`IntakeConfig`] directly.
//!
//! Signing secrets beyond `TWILIO_AUTH_TOKEN` (which lives in the core settings because the
//! workers need it for the REST API):
//! * `TWILIO_AUTH_TOKEN_SECONDARY` — a second Auth Token accepted for webhook signatures while
//!   Twilio's token is being rotated (primary and secondary are both tried).
//! * `TWILIO_WEBHOOK_SHARED_KEY` (+ optional `TWILIO_WEBHOOK_SHARED_KEY_ID`) — the secret of
//!   Twilio's SharedKey webhook signing (public beta). Requests that announce it in
//!   `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256` are checked with
//!   this secret only; when the id is set, the announced `key=` must equal it.
//!
//! The operator API also reads settings the workers own (`WHATSAPP_PROVIDER`,
//! `TWILIO_WHATSAPP_NUMBER`, `WHATSAPP_ENFORCE_WINDOW`, `RECORDINGS_STORE`,
//! `WORKER_STALE_AFTER`): `POST /api/whatsapp/send` validates and stores a message exactly as
//! the worker will send it, recordings are served from the store the voice pipeline writes, and
//! the console's workers view uses the workers' stale window. They are declared once, in
//! [`moked_jobs::fleet::FleetArgs`], flattened beside [`IntakeArgs`] into every binary that
//! serves the intake, and handed to [`IntakeArgs::into_config`] parsed.
//!
//! Rate limits are [`Rate`]s in the one rate grammar of [`moked_jobs::pacing::parse_rate`]
//! (`60/min`, `20/s`, `1000/h`, `off`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use http::HeaderValue;
use moked_jobs::config::ConfigError;
use moked_jobs::fleet::{DEFAULT_WORKER_STALE_AFTER, FleetConfig};
use moked_jobs::pacing::{Rate, parse_rate};
use moked_jobs::signature::SharedKey;
use moked_jobs::whatsapp::WhatsAppSettings;
use secrecy::SecretString;

/// The `<Say>` voices Twilio lists for he-IL. A bare `<Say language="he-IL">` drew warning
/// 13512 in the original system, so every Hebrew `<Say>` names one of these.
pub const HE_IL_VOICES: [&str; 8] = [
    "Google.he-IL-Standard-A",
    "Google.he-IL-Standard-B",
    "Google.he-IL-Standard-C",
    "Google.he-IL-Standard-D",
    "Google.he-IL-Wavenet-A",
    "Google.he-IL-Wavenet-B",
    "Google.he-IL-Wavenet-C",
    "Google.he-IL-Wavenet-D",
];

/// How long an enqueue may take before the webhook is answered 503 (Twilio gives up after 15 s
/// in total, retries included, so this stays well under it).
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's headers, and how long a kept-alive connection
/// may sit idle waiting for its next request (hyper restarts the same timer when a connection
/// goes idle), before the connection is closed.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections served at once: half of the usual 1,024 open-file limit, leaving room for
/// the database, Redis, the recordings store and logs.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Raw intake settings, as clap reads them from flags and env vars.
#[derive(Debug, Clone, Args)]
pub struct IntakeArgs {
    /// Failed webhook signature checks allowed per client IP (N/sec, N/min, N/hour, or off).
    /// Over it, that IP's unsigned or forged requests get 429; correctly signed ones never do.
    #[arg(long, env = "RATE_LIMIT_UNVERIFIED", default_value = "60/min")]
    pub rate_limit_unverified: String,
    /// Signed incoming calls allowed per caller number (From); beyond it the call is rejected
    /// busy and nothing is enqueued. N/sec, N/min, N/hour, or off.
    #[arg(long, env = "RATE_LIMIT_CALLS", default_value = "30/min")]
    pub rate_limit_calls: String,
    /// Signed recording callbacks allowed per CallSid (429 beyond). N/sec, N/min, N/hour, or off.
    #[arg(long, env = "RATE_LIMIT_RECORDINGS", default_value = "30/min")]
    pub rate_limit_recordings: String,
    /// Signed status callbacks allowed per CallSid / MessageSid (429 beyond). N/sec, N/min,
    /// N/hour, or off.
    #[arg(long, env = "RATE_LIMIT_STATUS", default_value = "60/min")]
    pub rate_limit_status: String,
    /// Browser origins allowed to call /api/* (comma-separated, e.g. `https://crm.example.com`).
    /// Unset: no cross-origin access.
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Voice of every Hebrew `<Say>`: Google.he-IL-Standard-A..D or Google.he-IL-Wavenet-A..D.
    #[arg(long, env = "SAY_VOICE", default_value = "Google.he-IL-Wavenet-A")]
    pub say_voice: String,
    /// Folder served at /static/ (voice_responses/welcome.mp3 is played to callers when present).
    #[arg(long, env = "STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    /// A second Auth Token accepted on webhook signatures while rotating TWILIO_AUTH_TOKEN.
    #[arg(long, env = "TWILIO_AUTH_TOKEN_SECONDARY", hide_env_values = true)]
    pub twilio_auth_token_secondary: Option<String>,
    /// Secret of Twilio's SharedKey webhook signing (requests announcing
    /// X-Twilio-Webhooks-Signature-Settings are verified with it).
    #[arg(long, env = "TWILIO_WEBHOOK_SHARED_KEY", hide_env_values = true)]
    pub twilio_webhook_shared_key: Option<String>,
    /// The SharedKey id (`key=` in X-Twilio-Webhooks-Signature-Settings). Unset: any id.
    #[arg(long, env = "TWILIO_WEBHOOK_SHARED_KEY_ID")]
    pub twilio_webhook_shared_key_id: Option<String>,
    /// How long a client may take to send a request's headers, and a kept-alive connection may
    /// sit idle, before it is closed (e.g. 10s).
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: String,
    /// Connections served at once; at the cap the longest-idle connection is closed for a new
    /// one, and when every connection is busy new ones wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

/// The four limits; `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed signature checks per client IP.
    pub unverified: Option<Rate>,
    /// Signed incoming calls per caller number.
    pub calls: Option<Rate>,
    /// Signed recording callbacks per CallSid.
    pub recordings: Option<Rate>,
    /// Signed status callbacks per CallSid / MessageSid.
    pub status: Option<Rate>,
}

impl RateLimits {
    /// Every limit off (benchmarks, trusted networks, most tests).
    pub const OFF: RateLimits = RateLimits {
        unverified: None,
        calls: None,
        recordings: None,
        status: None,
    };
}

impl Default for RateLimits {
    /// The documented defaults: 60/min, 30/min, 30/min, 60/min.
    fn default() -> Self {
        RateLimits {
            unverified: Some(Rate::per_minute(60)),
            calls: Some(Rate::per_minute(30)),
            recordings: Some(Rate::per_minute(30)),
            status: Some(Rate::per_minute(60)),
        }
    }
}

/// Typed intake settings.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Rate limits.
    pub limits: RateLimits,
    /// Origins allowed to call /api/* (empty: no CORS headers at all).
    pub cors_origins: Vec<HeaderValue>,
    /// The voice of every Hebrew `<Say>` (one of [`HE_IL_VOICES`]).
    pub say_voice: String,
    /// The folder served at /static/.
    pub static_dir: PathBuf,
    /// A second Auth Token for webhook signatures (rotation).
    pub auth_token_secondary: Option<SecretString>,
    /// The SharedKey secret, if configured.
    pub shared_key: Option<SharedKey>,
    /// How long an enqueue may take before the webhook is answered 503.
    pub enqueue_timeout: Duration,
    /// How the operator API's WhatsApp send checks and stores messages (the workers' settings,
    /// [`FleetConfig::whatsapp`]).
    pub whatsapp: WhatsAppSettings,
    /// The recordings store the operator API serves audio from (`RECORDINGS_STORE`); `None`:
    /// recordings are listed without a `download_url`.
    pub recordings_store: Option<String>,
    /// Time allowed for a request's headers and for a kept-alive connection's idle wait.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The workers' stale window (`WORKER_STALE_AFTER`), for the console's workers view: a
    /// session silent longer is shown as stale.
    pub worker_stale_after: Duration,
}

impl Default for IntakeConfig {
    /// The documented defaults (what `moked-intake` with no settings uses).
    fn default() -> Self {
        IntakeConfig {
            limits: RateLimits::default(),
            cors_origins: Vec::new(),
            say_voice: HE_IL_VOICES[4].to_owned(),
            static_dir: PathBuf::from("static"),
            auth_token_secondary: None,
            shared_key: None,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            whatsapp: WhatsAppSettings::default(),
            recordings_store: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            worker_stale_after: DEFAULT_WORKER_STALE_AFTER,
        }
    }
}

impl IntakeConfig {
    /// Where the optional pre-rendered greeting lives.
    pub fn welcome_path(&self) -> PathBuf {
        welcome_path(&self.static_dir)
    }
}

/// `STATIC_DIR/voice_responses/welcome.mp3`.
pub fn welcome_path(static_dir: &Path) -> PathBuf {
    static_dir.join("voice_responses").join("welcome.mp3")
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn rate(var: &'static str, value: &str) -> Result<Option<Rate>, ConfigError> {
    parse_rate(value).map_err(|e| ConfigError::new(var, e.to_string()))
}

/// Checks that `voice` is one of the he-IL voices (exact spelling, as Twilio expects it).
pub fn parse_voice(voice: &str) -> Result<String, ConfigError> {
    let voice = voice.trim();
    HE_IL_VOICES
        .iter()
        .find(|v| **v == voice)
        .map(|v| (*v).to_owned())
        .ok_or_else(|| {
            ConfigError::new(
                "SAY_VOICE",
                format!(
                    "`{voice}` is not a he-IL voice (use Google.he-IL-Standard-A..D or \
                     Google.he-IL-Wavenet-A..D)"
                ),
            )
        })
}

/// Parses `CORS_ORIGINS`: comma-separated `scheme://host[:port]` origins.
pub fn parse_origins(value: &str) -> Result<Vec<HeaderValue>, ConfigError> {
    let mut origins = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| ConfigError::new("CORS_ORIGINS", format!("`{raw}` {why}"));
        let url =
            url::Url::parse(raw).map_err(|_| bad("is not an origin (scheme://host[:port])"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("is not an http(s) origin"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "has a path, query or fragment (an origin is scheme://host[:port])",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("carries credentials"));
        }
        // `Url` lower-cases the host and drops default ports: browsers send origins that way.
        let origin = url.origin().ascii_serialization();
        let header =
            HeaderValue::from_str(&origin).map_err(|_| bad("is not a valid header value"))?;
        if !origins.contains(&header) {
            origins.push(header);
        }
    }
    Ok(origins)
}

impl IntakeArgs {
    /// Parses and checks every intake setting; the workers' settings the operator API reads
    /// come from `fleet`.
    pub fn into_config(self, fleet: &FleetConfig) -> Result<IntakeConfig, ConfigError> {
        let limits = RateLimits {
            unverified: rate("RATE_LIMIT_UNVERIFIED", &self.rate_limit_unverified)?,
            calls: rate("RATE_LIMIT_CALLS", &self.rate_limit_calls)?,
            recordings: rate("RATE_LIMIT_RECORDINGS", &self.rate_limit_recordings)?,
            status: rate("RATE_LIMIT_STATUS", &self.rate_limit_status)?,
        };
        let cors_origins = match non_empty(self.cors_origins) {
            Some(v) => parse_origins(&v)?,
            None => Vec::new(),
        };
        let say_voice = parse_voice(&self.say_voice)?;
        if self.static_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("STATIC_DIR", "must not be empty"));
        }
        let key_id = non_empty(self.twilio_webhook_shared_key_id);
        let shared_key = match (non_empty(self.twilio_webhook_shared_key), key_id) {
            (Some(secret), id) => Some(SharedKey {
                id,
                secret: SecretString::from(secret),
            }),
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "TWILIO_WEBHOOK_SHARED_KEY_ID",
                    "is set but TWILIO_WEBHOOK_SHARED_KEY is not",
                ));
            }
            (None, None) => None,
        };
        let header_read_timeout = moked_jobs::retry::parse_duration(&self.header_read_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError::new(
                    "HEADER_READ_TIMEOUT",
                    format!(
                        "`{}` is not a positive duration (e.g. 10s)",
                        self.header_read_timeout
                    ),
                )
            })?;
        if self.max_connections == 0 {
            return Err(ConfigError::new("MAX_CONNECTIONS", "must be at least 1"));
        }
        Ok(IntakeConfig {
            limits,
            cors_origins,
            say_voice,
            static_dir: self.static_dir,
            auth_token_secondary: non_empty(self.twilio_auth_token_secondary)
                .map(SecretString::from),
            shared_key,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            whatsapp: fleet.whatsapp.clone(),
            recordings_store: Some(fleet.recordings_store.clone()),
            header_read_timeout,
            max_connections: self.max_connections,
            worker_stale_after: fleet.worker_stale_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        core: moked_jobs::config::CoreArgs,
        #[command(flatten)]
        intake: IntakeArgs,
    }

    fn parse(args: &[&str]) -> Result<IntakeConfig, ConfigError> {
        let mut all = vec!["moked-intake"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .expect("flags parse")
            .intake
            .into_config(&FleetConfig::default())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]).expect("defaults are valid");
        assert_eq!(c.limits, RateLimits::default());
        assert_eq!(c.limits.unverified, Some(Rate::per_minute(60)));
        assert_eq!(c.limits.calls, Some(Rate::per_minute(30)));
        assert_eq!(c.say_voice, "Google.he-IL-Wavenet-A");
        assert_eq!(c.static_dir, PathBuf::from("static"));
        assert!(c.cors_origins.is_empty());
        assert!(c.shared_key.is_none() && c.auth_token_secondary.is_none());
        assert_eq!(
            c.welcome_path(),
            PathBuf::from("static/voice_responses/welcome.mp3")
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let var = |args: &[&str]| parse(args).expect_err("must be refused").var;
        assert_eq!(
            var(&["--rate-limit-unverified", "lots"]),
            "RATE_LIMIT_UNVERIFIED"
        );
        assert_eq!(var(&["--rate-limit-calls", "1/day"]), "RATE_LIMIT_CALLS");
        assert_eq!(
            var(&["--rate-limit-recordings", "1/fortnight"]),
            "RATE_LIMIT_RECORDINGS"
        );
        assert_eq!(var(&["--rate-limit-status", "fast"]), "RATE_LIMIT_STATUS");
        assert_eq!(var(&["--say-voice", "alice"]), "SAY_VOICE");
        assert_eq!(var(&["--say-voice", "Polly.Joanna"]), "SAY_VOICE");
        assert_eq!(var(&["--cors-origins", "not a url"]), "CORS_ORIGINS");
        assert_eq!(
            var(&["--cors-origins", "https://a.com/path"]),
            "CORS_ORIGINS"
        );
        assert_eq!(var(&["--cors-origins", "ftp://a.com"]), "CORS_ORIGINS");
        assert_eq!(
            var(&["--twilio-webhook-shared-key-id", "k1"]),
            "TWILIO_WEBHOOK_SHARED_KEY_ID"
        );
        let e = parse(&["--say-voice", "alice"]).expect_err("alice has no he-IL");
        assert!(e.to_string().starts_with("invalid SAY_VOICE:"), "{e}");
    }

    #[test]
    fn every_listed_voice_is_accepted_and_limits_can_be_off() {
        for voice in HE_IL_VOICES {
            assert_eq!(
                parse(&["--say-voice", voice])
                    .expect("valid voice")
                    .say_voice,
                voice
            );
        }
        let c = parse(&[
            "--rate-limit-unverified",
            "off",
            "--rate-limit-calls",
            "off",
            "--rate-limit-recordings",
            "off",
            "--rate-limit-status",
            "off",
        ])
        .expect("off is valid");
        assert_eq!(c.limits, RateLimits::OFF);
    }

    #[test]
    fn origins_are_normalised_and_deduplicated() {
        let c = parse(&[
            "--cors-origins",
            "https://CRM.example.com, https://crm.example.com:443/ ,http://localhost:3000,",
        ])
        .expect("valid origins");
        let got: Vec<&str> = c
            .cors_origins
            .iter()
            .map(|h| h.to_str().unwrap_or_default())
            .collect();
        assert_eq!(got, ["https://crm.example.com", "http://localhost:3000"]);
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_zero() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        let c =
            parse(&["--header-read-timeout", "1500ms", "--max-connections", "8"]).expect("valid");
        assert_eq!(c.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(c.max_connections, 8);
        let e = parse(&["--header-read-timeout", "0s"]).expect_err("zero");
        assert!(
            e.to_string().starts_with("invalid HEADER_READ_TIMEOUT:"),
            "{e}"
        );
        let e = parse(&["--max-connections", "0"]).expect_err("zero");
        assert!(e.to_string().starts_with("invalid MAX_CONNECTIONS:"), "{e}");
    }

    #[test]
    fn shared_key_settings_are_read_together() {
        let c = parse(&[
            "--twilio-webhook-shared-key",
            "s3cret",
            "--twilio-webhook-shared-key-id",
            "webhooks_sharedkey_1",
            "--twilio-auth-token-secondary",
            "old-token",
        ])
        .expect("valid");
        let key = c.shared_key.expect("configured");
        assert_eq!(key.id.as_deref(), Some("webhooks_sharedkey_1"));
        assert!(c.auth_token_secondary.is_some());
    }
}

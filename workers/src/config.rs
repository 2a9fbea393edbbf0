//! Worker settings: concurrency, worker name, heartbeat, shutdown grace, the outside services
//! the handlers call (the Baileys bridge, WhatsApp pacing and timeout, transcription), the voice
//! pipeline ([`VoiceArgs`]) and the clock's tasks ([`TaskArgs`]).
//!
//! Like [`moked_jobs::config`], each setting is an env var and a clap flag, parsed once into a
//! typed [`WorkerConfig`]; a bad value names its variable. The settings the intake reads too
//! (`WHATSAPP_PROVIDER`, `TWILIO_WHATSAPP_NUMBER`, `WHATSAPP_ENFORCE_WINDOW`,
//! `RECORDINGS_STORE`, `WORKER_STALE_AFTER`) are declared in [`moked_jobs::fleet`] and handed to
//! [`WorkerArgs::into_config`] parsed.

use std::time::Duration;

use clap::Args;
use moked_jobs::config::ConfigError;
use moked_jobs::fleet::FleetConfig;
use moked_jobs::pacing::{Rate, parse_rate};
use moked_jobs::retry::parse_duration;
use moked_jobs::whatsapp::{Provider, WhatsAppSettings};
use secrecy::SecretString;

/// Transcription provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TranscribeProvider {
    /// Store the audio, mark it "not transcribed".
    None,
    /// An OpenAI-compatible `/audio/transcriptions` API.
    Openai,
    /// Local whisper-rs (cargo feature `whisper`).
    Whisper,
}

/// What to download of a recording: `{RecordingUrl}.wav` or `{RecordingUrl}.mp3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RecordingFormat {
    /// WAV (works for encrypted recordings too; the default).
    #[default]
    Wav,
    /// MP3 (smaller; Twilio refuses it for encrypted recordings, error 16109).
    Mp3,
}

impl RecordingFormat {
    /// The file extension, also used in the object-store key.
    pub const fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::Mp3 => "mp3",
        }
    }

    /// The Content-Type to assume when Twilio sends none.
    pub const fn content_type(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "audio/x-wav",
            RecordingFormat::Mp3 => "audio/mpeg",
        }
    }
}

/// Raw worker settings.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(
        long = "worker-concurrency",
        alias = "concurrency",
        env = "WORKER_CONCURRENCY",
        default_value_t = 32
    )]
    pub concurrency: usize,
    /// Stable worker name (jobs are owned by a session under it). Default: $DYNO, else the host name.
    #[arg(long, env = "WORKER_NAME")]
    pub worker_name: Option<String>,
    /// How often a worker session heartbeats.
    #[arg(
        long = "worker-heartbeat",
        alias = "heartbeat",
        env = "WORKER_HEARTBEAT",
        default_value = "5s"
    )]
    pub heartbeat: String,
    /// How long SIGTERM waits for running jobs before putting them back.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "25s")]
    pub shutdown_grace: String,
    /// Base URL of the Baileys bridge.
    #[arg(long, env = "BAILEYS_URL")]
    pub baileys_url: Option<String>,
    /// WHATSAPP_RATE, WHATSAPP_SEND_TIMEOUT.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Transcription provider: none, openai or whisper.
    #[arg(long, env = "TRANSCRIBE_PROVIDER", value_enum, default_value_t = TranscribeProvider::None)]
    pub transcribe_provider: TranscribeProvider,
    /// Base URL of the OpenAI-compatible transcription API.
    #[arg(
        long,
        env = "TRANSCRIBE_API_BASE",
        default_value = "https://api.openai.com/v1"
    )]
    pub transcribe_api_base: String,
    /// API key of the transcription API.
    #[arg(long, env = "TRANSCRIBE_API_KEY", hide_env_values = true)]
    pub transcribe_api_key: Option<String>,
    /// Transcription model.
    #[arg(long, env = "TRANSCRIBE_MODEL", default_value = "gpt-4o-transcribe")]
    pub transcribe_model: String,
    /// The voice pipeline's settings (boxed: keeps `moked-worker`'s command enum small).
    #[command(flatten)]
    pub voice: Box<VoiceArgs>,
    /// Settings of the clock's tasks: reconcile, health, cleanup (boxed, as above).
    #[command(flatten)]
    pub tasks: Box<TaskArgs>,
}

/// Raw settings of the WhatsApp sends themselves.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// WhatsApp sends per sender number, shared by all workers: 20, 20/s, 600/m, or off.
    #[arg(long, env = "WHATSAPP_RATE", default_value = "20/s")]
    pub whatsapp_rate: String,
    /// How long one send may take before it counts as ambiguous (looked up before resending).
    #[arg(long, env = "WHATSAPP_SEND_TIMEOUT", default_value = "15s")]
    pub whatsapp_send_timeout: String,
}

/// Typed settings of the WhatsApp sends.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Sends per sender (None: not paced; [`moked_jobs::pacing`]).
    pub rate: Option<Rate>,
    /// Longest send.
    pub send_timeout: Duration,
}

impl Default for DeliveryConfig {
    /// 20 a second, 15 s (the settings' defaults).
    fn default() -> Self {
        DeliveryConfig {
            rate: Rate::per_second(20.0),
            send_timeout: Duration::from_secs(15),
        }
    }
}

impl DeliveryArgs {
    /// Parses and checks the send settings.
    pub fn into_config(self) -> Result<DeliveryConfig, ConfigError> {
        let rate = parse_rate(&self.whatsapp_rate)
            .map_err(|e| ConfigError::new("WHATSAPP_RATE", e.to_string()))?;
        let send_timeout = parse_duration(&self.whatsapp_send_timeout)
            .map_err(|reason| ConfigError::new("WHATSAPP_SEND_TIMEOUT", reason))?;
        if send_timeout.is_zero() {
            return Err(ConfigError::new(
                "WHATSAPP_SEND_TIMEOUT",
                "must be positive",
            ));
        }
        Ok(DeliveryConfig { rate, send_timeout })
    }
}

/// Raw settings of the voice pipeline (`recording.process`).
#[derive(Debug, Clone, Args)]
pub struct VoiceArgs {
    /// Recording format to download: wav or mp3.
    #[arg(long, env = "RECORDING_FORMAT", value_enum, default_value_t = RecordingFormat::Wav)]
    pub recording_format: RecordingFormat,
    /// Delete Twilio's copy of a recording once ours is stored and verified (privacy).
    #[arg(
        long,
        env = "DELETE_TWILIO_RECORDING_AFTER_STORE",
        default_value = "false",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub delete_twilio_recording_after_store: bool,
    /// ggml Whisper model file (TRANSCRIBE_PROVIDER=whisper).
    #[arg(long, env = "WHISPER_MODEL_PATH")]
    pub whisper_model_path: Option<String>,
    /// Local Whisper transcriptions at once (each uses WHISPER_THREADS cores).
    #[arg(long, env = "WHISPER_CONCURRENCY", default_value_t = 1)]
    pub whisper_concurrency: usize,
    /// CPU threads of one local Whisper transcription.
    #[arg(long, env = "WHISPER_THREADS", default_value_t = 2)]
    pub whisper_threads: usize,
    /// Send a WhatsApp message with the caller and the transcript to this number after each
    /// recording (needs the whatsapp.send job).
    #[arg(long, env = "NOTIFY_WHATSAPP_TO")]
    pub notify_whatsapp_to: Option<String>,
}

/// Typed worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs at once.
    pub concurrency: usize,
    /// Worker name.
    pub worker_name: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Stale window (`WORKER_STALE_AFTER`, [`FleetConfig::worker_stale_after`]).
    pub stale_after: Duration,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// How WhatsApp is sent: provider, sender, window ([`FleetConfig::whatsapp`]).
    pub whatsapp: WhatsAppSettings,
    /// Baileys bridge base URL.
    pub baileys_url: Option<String>,
    /// WhatsApp pacing and timeout.
    pub delivery: DeliveryConfig,
    /// Transcription provider.
    pub transcribe_provider: TranscribeProvider,
    /// Transcription API base (no trailing slash).
    pub transcribe_api_base: String,
    /// Transcription API key.
    pub transcribe_api_key: Option<SecretString>,
    /// Transcription model.
    pub transcribe_model: String,
    /// Recordings store URL (`RECORDINGS_STORE`, [`FleetConfig::recordings_store`]).
    pub recordings_store: String,
    /// Recording format to download.
    pub recording_format: RecordingFormat,
    /// Delete Twilio's copy after a verified store.
    pub delete_twilio_recording_after_store: bool,
    /// ggml Whisper model file.
    pub whisper_model_path: Option<String>,
    /// Local Whisper transcriptions at once.
    pub whisper_concurrency: usize,
    /// CPU threads per local Whisper transcription.
    pub whisper_threads: usize,
    /// Where to send the after-recording WhatsApp note, if anywhere.
    pub notify_whatsapp_to: Option<String>,
    /// Settings of the clock's tasks.
    pub tasks: TaskConfig,
}

/// `$DYNO` (Heroku), else the host's name as the kernel knows it (`$HOSTNAME` is a shell
/// variable: systemd and most supervisors do not set it), else `worker`.
fn default_name() -> String {
    std::env::var("DYNO")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            (!host.is_empty()).then_some(host)
        })
        .unwrap_or_else(|| "worker".to_owned())
}

impl WorkerArgs {
    /// Parses and checks the worker settings; the ones the intake reads too come from `fleet`.
    pub fn into_config(self, fleet: &FleetConfig) -> Result<WorkerConfig, ConfigError> {
        let dur = |var: &'static str, v: &str| {
            parse_duration(v).map_err(|reason| ConfigError::new(var, reason))
        };
        if self.concurrency == 0 || self.concurrency > 4096 {
            return Err(ConfigError::new("WORKER_CONCURRENCY", "must be 1..=4096"));
        }
        let heartbeat = dur("WORKER_HEARTBEAT", &self.heartbeat)?;
        let stale_after = fleet.worker_stale_after;
        if stale_after < heartbeat * 2 {
            return Err(ConfigError::new(
                "WORKER_STALE_AFTER",
                "must be at least twice WORKER_HEARTBEAT",
            ));
        }
        let key = self
            .transcribe_api_key
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if self.transcribe_provider == TranscribeProvider::Openai && key.is_none() {
            return Err(ConfigError::new(
                "TRANSCRIBE_API_KEY",
                "TRANSCRIBE_PROVIDER=openai needs an API key",
            ));
        }
        let api_base = url::Url::parse(&self.transcribe_api_base).map_err(|e| {
            ConfigError::new(
                "TRANSCRIBE_API_BASE",
                format!("`{}` is not a URL ({e})", self.transcribe_api_base),
            )
        })?;
        let baileys_url = match self.baileys_url.filter(|s| !s.trim().is_empty()) {
            Some(u) => Some(
                url::Url::parse(&u)
                    .map_err(|e| {
                        ConfigError::new("BAILEYS_URL", format!("`{u}` is not a URL ({e})"))
                    })?
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned(),
            ),
            None => None,
        };
        if fleet.whatsapp.provider == Provider::Baileys && baileys_url.is_none() {
            return Err(ConfigError::new(
                "BAILEYS_URL",
                "WHATSAPP_PROVIDER=baileys needs the bridge URL",
            ));
        }
        let tasks = self.tasks.into_config()?;
        let voice = *self.voice;
        let whisper_model_path = voice.whisper_model_path.filter(|s| !s.trim().is_empty());
        if self.transcribe_provider == TranscribeProvider::Whisper && whisper_model_path.is_none() {
            return Err(ConfigError::new(
                "WHISPER_MODEL_PATH",
                "TRANSCRIBE_PROVIDER=whisper needs a ggml model file",
            ));
        }
        let notify_whatsapp_to = match voice.notify_whatsapp_to.filter(|s| !s.trim().is_empty()) {
            Some(raw) => Some(
                moked_jobs::phone::E164::parse(&raw)
                    .map_err(|e| ConfigError::new("NOTIFY_WHATSAPP_TO", e.to_string()))?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        if voice.whisper_concurrency == 0 || voice.whisper_concurrency > 64 {
            return Err(ConfigError::new("WHISPER_CONCURRENCY", "must be 1..=64"));
        }
        if voice.whisper_threads == 0 || voice.whisper_threads > 256 {
            return Err(ConfigError::new("WHISPER_THREADS", "must be 1..=256"));
        }
        Ok(WorkerConfig {
            concurrency: self.concurrency,
            worker_name: self
                .worker_name
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(default_name),
            heartbeat,
            stale_after,
            shutdown_grace: dur("SHUTDOWN_GRACE", &self.shutdown_grace)?,
            whatsapp: fleet.whatsapp.clone(),
            baileys_url,
            delivery: self.delivery.into_config()?,
            transcribe_provider: self.transcribe_provider,
            transcribe_api_base: api_base.as_str().trim_end_matches('/').to_owned(),
            transcribe_api_key: key.map(SecretString::from),
            transcribe_model: self.transcribe_model,
            recordings_store: fleet.recordings_store.clone(),
            recording_format: voice.recording_format,
            delete_twilio_recording_after_store: voice.delete_twilio_recording_after_store,
            whisper_model_path,
            whisper_concurrency: voice.whisper_concurrency,
            whisper_threads: voice.whisper_threads,
            notify_whatsapp_to,
            tasks,
        })
    }
}

/// Raw settings of the clock's tasks, read by the workers that run them (flattened into
/// [`WorkerArgs`]; the clock only enqueues the tasks).
#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// Reconcile a call not in a terminal status this long after its last change.
    #[arg(long, env = "RECONCILE_CALLS_AFTER", default_value = "10m")]
    pub reconcile_calls_after: String,
    /// Reconcile an outbound WhatsApp message still queued/sent this long after its last change.
    #[arg(long, env = "RECONCILE_MESSAGES_AFTER", default_value = "1h")]
    pub reconcile_messages_after: String,
    /// Leave calls and messages older than this alone (nothing will change them any more).
    #[arg(long, env = "RECONCILE_MAX_AGE", default_value = "7d")]
    pub reconcile_max_age: String,
    /// At most this many calls, messages and recording look-ups each per reconcile run.
    #[arg(long, env = "RECONCILE_BATCH", default_value_t = 50)]
    pub reconcile_batch: u32,
    /// Pause between two Twilio requests of a reconcile run.
    #[arg(long, env = "RECONCILE_PACE", default_value = "200ms")]
    pub reconcile_pace: String,
    /// Queue lag (oldest due queued job) over which /api/ready says "degraded".
    #[arg(long, env = "QUEUE_LAG_DEGRADED", default_value = "5m")]
    pub queue_lag_degraded: String,
    /// Delete stored recordings (file:// stores) this many days after they were stored; unset
    /// keeps them for ever.
    #[arg(long, env = "RECORDING_RETENTION_DAYS")]
    pub recording_retention_days: Option<String>,
}

/// Typed settings of the clock's tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// `RECONCILE_CALLS_AFTER`.
    pub reconcile_calls_after: Duration,
    /// `RECONCILE_MESSAGES_AFTER`.
    pub reconcile_messages_after: Duration,
    /// `RECONCILE_MAX_AGE`.
    pub reconcile_max_age: Duration,
    /// `RECONCILE_BATCH`.
    pub reconcile_batch: u32,
    /// `RECONCILE_PACE`.
    pub reconcile_pace: Duration,
    /// `QUEUE_LAG_DEGRADED`.
    pub queue_lag_degraded: Duration,
    /// `RECORDING_RETENTION_DAYS` (None: keep).
    pub recording_retention_days: Option<u32>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            reconcile_calls_after: Duration::from_secs(600),
            reconcile_messages_after: Duration::from_secs(3600),
            reconcile_max_age: Duration::from_secs(7 * 86_400),
            reconcile_batch: 50,
            reconcile_pace: Duration::from_millis(200),
            queue_lag_degraded: Duration::from_secs(300),
            recording_retention_days: None,
        }
    }
}

impl TaskArgs {
    /// Parses and checks the task settings; a bad value names its variable.
    pub fn into_config(self) -> Result<TaskConfig, ConfigError> {
        let positive = |var: &'static str, v: &str| {
            let d = parse_duration(v).map_err(|reason| ConfigError::new(var, reason))?;
            if d.is_zero() {
                return Err(ConfigError::new(var, "must be positive"));
            }
            Ok(d)
        };
        let calls_after = positive("RECONCILE_CALLS_AFTER", &self.reconcile_calls_after)?;
        let messages_after = positive("RECONCILE_MESSAGES_AFTER", &self.reconcile_messages_after)?;
        let max_age = positive("RECONCILE_MAX_AGE", &self.reconcile_max_age)?;
        if max_age <= calls_after.max(messages_after) {
            return Err(ConfigError::new(
                "RECONCILE_MAX_AGE",
                "must be longer than RECONCILE_CALLS_AFTER and RECONCILE_MESSAGES_AFTER",
            ));
        }
        if !(1..=1000).contains(&self.reconcile_batch) {
            return Err(ConfigError::new("RECONCILE_BATCH", "must be 1..=1000"));
        }
        let pace = parse_duration(&self.reconcile_pace)
            .map_err(|reason| ConfigError::new("RECONCILE_PACE", reason))?;
        if pace > Duration::from_secs(10) {
            return Err(ConfigError::new("RECONCILE_PACE", "must be at most 10s"));
        }
        let retention = match self
            .recording_retention_days
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(days) if days >= 1 => Some(days),
                _ => {
                    return Err(ConfigError::new(
                        "RECORDING_RETENTION_DAYS",
                        format!("`{v}` is not a whole number of days (1 or more)"),
                    ));
                }
            },
        };
        Ok(TaskConfig {
            reconcile_calls_after: calls_after,
            reconcile_messages_after: messages_after,
            reconcile_max_age: max_age,
            reconcile_batch: self.reconcile_batch,
            reconcile_pace: pace,
            queue_lag_degraded: positive("QUEUE_LAG_DEGRADED", &self.queue_lag_degraded)?,
            recording_retention_days: retention,
        })
    }
}

impl WorkerConfig {
    /// Defaults for tests: concurrency 8, fast heartbeats, no outside services.
    pub fn for_tests(name: &str) -> Self {
        WorkerConfig {
            concurrency: 8,
            worker_name: name.to_owned(),
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
            whatsapp: WhatsAppSettings::default(),
            baileys_url: None,
            delivery: DeliveryConfig::default(),
            transcribe_provider: TranscribeProvider::None,
            transcribe_api_base: "https://api.openai.com/v1".into(),
            transcribe_api_key: None,
            transcribe_model: "gpt-4o-transcribe".into(),
            recordings_store: "memory://".into(),
            recording_format: RecordingFormat::Wav,
            delete_twilio_recording_after_store: false,
            whisper_model_path: None,
            whisper_concurrency: 1,
            whisper_threads: 2,
            notify_whatsapp_to: None,
            tasks: TaskConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        delivery: DeliveryArgs,
    }

    fn delivery(args: &[&str]) -> Result<DeliveryConfig, ConfigError> {
        let mut all = vec!["moked"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().delivery.into_config()
    }

    #[test]
    fn sends_are_paced_twenty_a_second_by_default() {
        let c = delivery(&[]).unwrap();
        assert_eq!(c, DeliveryConfig::default());
        assert_eq!(c.rate.unwrap().interval(), Duration::from_millis(50));
    }

    #[test]
    fn send_settings_parse_and_bad_values_name_their_variable() {
        let c = delivery(&["--whatsapp-rate", "off", "--whatsapp-send-timeout", "300ms"]).unwrap();
        assert_eq!(c.rate, None);
        assert_eq!(c.send_timeout, Duration::from_millis(300));
        assert_eq!(
            delivery(&["--whatsapp-rate", "fast"]).unwrap_err().var,
            "WHATSAPP_RATE"
        );
        assert_eq!(
            delivery(&["--whatsapp-send-timeout", "0s"])
                .unwrap_err()
                .var,
            "WHATSAPP_SEND_TIMEOUT"
        );
    }

    fn task_args() -> TaskArgs {
        TaskArgs {
            reconcile_calls_after: "10m".into(),
            reconcile_messages_after: "1h".into(),
            reconcile_max_age: "7d".into(),
            reconcile_batch: 50,
            reconcile_pace: "200ms".into(),
            queue_lag_degraded: "5m".into(),
            recording_retention_days: None,
        }
    }

    #[test]
    fn task_settings_default_to_the_issue_and_bad_values_name_their_variable() {
        assert_eq!(task_args().into_config().unwrap(), TaskConfig::default());
        let retention = TaskArgs {
            recording_retention_days: Some(" 30 ".into()),
            ..task_args()
        };
        assert_eq!(
            retention.into_config().unwrap().recording_retention_days,
            Some(30)
        );
        let empty = TaskArgs {
            recording_retention_days: Some(String::new()),
            ..task_args()
        };
        assert_eq!(empty.into_config().unwrap().recording_retention_days, None);
        let bad = |args: TaskArgs| args.into_config().unwrap_err().var;
        assert_eq!(
            bad(TaskArgs {
                reconcile_calls_after: "0s".into(),
                ..task_args()
            }),
            "RECONCILE_CALLS_AFTER"
        );
        assert_eq!(
            bad(TaskArgs {
                reconcile_max_age: "30m".into(),
                ..task_args()
            }),
            "RECONCILE_MAX_AGE"
        );
        assert_eq!(
            bad(TaskArgs {
                reconcile_batch: 0,
                ..task_args()
            }),
            "RECONCILE_BATCH"
        );
        assert_eq!(
            bad(TaskArgs {
                queue_lag_degraded: "soon".into(),
                ..task_args()
            }),
            "QUEUE_LAG_DEGRADED"
        );
        assert_eq!(
            bad(TaskArgs {
                recording_retention_days: Some("0".into()),
                ..task_args()
            }),
            "RECORDING_RETENTION_DAYS"
        );
    }
}

//! Worker settings: concurrency, worker name, heartbeat and recovery windows, shutdown grace,
//! and the outside services the handlers call (WhatsApp provider, transcription, recordings
//! store).
//!
//! Like [`moked_jobs::config`], each setting is an env var and a clap flag, parsed once into a
//! typed [`WorkerConfig`]; a bad value names its variable.

use std::time::Duration;

use clap::Args;
use moked_jobs::config::ConfigError;
use moked_jobs::retry::parse_duration;
use secrecy::SecretString;

/// WhatsApp provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhatsAppProvider {
    /// Twilio's Messages API.
    Twilio,
    /// A Baileys bridge (BAILEYS_URL).
    Baileys,
}

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
    /// A session silent this long is dead; its running jobs are re-queued.
    #[arg(
        long = "worker-stale-after",
        alias = "stale-after",
        env = "WORKER_STALE_AFTER",
        default_value = "20s"
    )]
    pub stale_after: String,
    /// How long SIGTERM waits for running jobs before putting them back.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "25s")]
    pub shutdown_grace: String,
    /// WhatsApp provider: twilio or baileys.
    #[arg(long, env = "WHATSAPP_PROVIDER", value_enum, default_value_t = WhatsAppProvider::Twilio)]
    pub whatsapp_provider: WhatsAppProvider,
    /// Our WhatsApp sender number (with or without the whatsapp: prefix).
    #[arg(long, env = "TWILIO_WHATSAPP_NUMBER")]
    pub twilio_whatsapp_number: Option<String>,
    /// Base URL of the Baileys bridge.
    #[arg(long, env = "BAILEYS_URL")]
    pub baileys_url: Option<String>,
    /// WHATSAPP_RATE, WHATSAPP_ENFORCE_WINDOW, WHATSAPP_SEND_TIMEOUT.
    #[command(flatten)]
    pub whatsapp: crate::whatsapp::WhatsAppArgs,
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
    /// Where recordings are stored (file://, s3://, gs://).
    #[arg(
        long,
        env = "RECORDINGS_STORE",
        default_value = "file://data/recordings"
    )]
    pub recordings_store: String,
    /// The voice pipeline's settings (boxed: keeps `moked-worker`'s command enum small).
    #[command(flatten)]
    pub voice: Box<VoiceArgs>,
    /// Settings of the clock's tasks: reconcile, health, cleanup (boxed, as above).
    #[command(flatten)]
    pub tasks: Box<crate::clock::TaskArgs>,
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
    /// Stale window.
    pub stale_after: Duration,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// WhatsApp provider.
    pub whatsapp_provider: WhatsAppProvider,
    /// Sender number as configured.
    pub twilio_whatsapp_number: Option<String>,
    /// Baileys bridge base URL.
    pub baileys_url: Option<String>,
    /// WhatsApp pacing, window and timeout settings.
    pub whatsapp: crate::whatsapp::WhatsAppConfig,
    /// Transcription provider.
    pub transcribe_provider: TranscribeProvider,
    /// Transcription API base (no trailing slash).
    pub transcribe_api_base: String,
    /// Transcription API key.
    pub transcribe_api_key: Option<SecretString>,
    /// Transcription model.
    pub transcribe_model: String,
    /// Recordings store URL.
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
    pub tasks: crate::clock::TaskConfig,
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
    /// Parses and checks the worker settings.
    pub fn into_config(self) -> Result<WorkerConfig, ConfigError> {
        let dur = |var: &'static str, v: &str| {
            parse_duration(v).map_err(|reason| ConfigError::new(var, reason))
        };
        if self.concurrency == 0 || self.concurrency > 4096 {
            return Err(ConfigError::new("WORKER_CONCURRENCY", "must be 1..=4096"));
        }
        let heartbeat = dur("WORKER_HEARTBEAT", &self.heartbeat)?;
        let stale_after = dur("WORKER_STALE_AFTER", &self.stale_after)?;
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
        if self.whatsapp_provider == WhatsAppProvider::Baileys && baileys_url.is_none() {
            return Err(ConfigError::new(
                "BAILEYS_URL",
                "WHATSAPP_PROVIDER=baileys needs the bridge URL",
            ));
        }
        let store = self.recordings_store.trim().to_owned();
        if !["file://", "s3://", "gs://", "memory://"]
            .iter()
            .any(|p| store.starts_with(p))
        {
            return Err(ConfigError::new(
                "RECORDINGS_STORE",
                format!("`{store}` must start with file://, s3:// or gs://"),
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
            whatsapp_provider: self.whatsapp_provider,
            twilio_whatsapp_number: self.twilio_whatsapp_number.filter(|s| !s.trim().is_empty()),
            baileys_url,
            whatsapp: self.whatsapp.into_config()?,
            transcribe_provider: self.transcribe_provider,
            transcribe_api_base: api_base.as_str().trim_end_matches('/').to_owned(),
            transcribe_api_key: key.map(SecretString::from),
            transcribe_model: self.transcribe_model,
            recordings_store: store,
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

impl WorkerConfig {
    /// Defaults for tests: concurrency 8, fast heartbeats, no outside services.
    pub fn for_tests(name: &str) -> Self {
        WorkerConfig {
            concurrency: 8,
            worker_name: name.to_owned(),
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
            whatsapp_provider: WhatsAppProvider::Twilio,
            twilio_whatsapp_number: None,
            baileys_url: None,
            whatsapp: crate::whatsapp::WhatsAppConfig::default(),
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
            tasks: crate::clock::TaskConfig::default(),
        }
    }
}

//! Outside services, one client each behind a trait: the real implementation lives here, fakes
//! live in tests. Handlers see only the traits (through [`crate::handlers::Ctx`]).
//!
//! Each client module knows its own service; choosing among them from the settings happens here
//! ([`open_transcriber`]) or in the one module that owns the choice ([`whatsapp::from_config`]),
//! so a client never reaches its siblings' constructors.

use std::sync::Arc;

use crate::config::{TranscribeProvider, WorkerConfig};
use transcriber::{NoTranscriber, OpenAiTranscriber, SharedTranscriber};

pub mod audio;
pub use moked_jobs::audio_store;
pub mod transcriber;
pub mod twilio;
pub mod whatsapp;
#[cfg(feature = "whisper")]
pub mod whisper;

/// The transcriber `TRANSCRIBE_PROVIDER` asks for.
pub fn open_transcriber(config: &WorkerConfig) -> anyhow::Result<SharedTranscriber> {
    Ok(match config.transcribe_provider {
        TranscribeProvider::None => Arc::new(NoTranscriber),
        TranscribeProvider::Openai => {
            let key = config.transcribe_api_key.clone().ok_or_else(|| {
                anyhow::anyhow!("TRANSCRIBE_PROVIDER=openai needs TRANSCRIBE_API_KEY")
            })?;
            Arc::new(OpenAiTranscriber::new(
                &config.transcribe_api_base,
                key,
                &config.transcribe_model,
            )?)
        }
        TranscribeProvider::Whisper => open_whisper(config)?,
    })
}

#[cfg(feature = "whisper")]
fn open_whisper(config: &WorkerConfig) -> anyhow::Result<SharedTranscriber> {
    let path = config
        .whisper_model_path
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("TRANSCRIBE_PROVIDER=whisper needs WHISPER_MODEL_PATH"))?;
    Ok(Arc::new(whisper::WhisperTranscriber::load(
        path,
        config.whisper_concurrency,
        config.whisper_threads,
    )?))
}

#[cfg(not(feature = "whisper"))]
fn open_whisper(_: &WorkerConfig) -> anyhow::Result<SharedTranscriber> {
    anyhow::bail!(
        "TRANSCRIBE_PROVIDER=whisper needs a build with the `whisper` cargo feature \
         (cargo build -p moked-workers --features whisper)"
    )
}

//! `TRANSCRIBE_PROVIDER=whisper`: offline transcription with whisper-rs (whisper.cpp), behind
//! the cargo feature `whisper`.
//!
//! * **Model**: a ggml file at `WHISPER_MODEL_PATH`, loaded once at start-up (a missing or bad
//!   file stops the worker with the path in the message rather than failing every job). No
//!   model is ever downloaded at run time. CI builds one from PyPI wheels
//!   (`workers/tests/whisper/fetch_models.sh`).
//! * **Input**: the stored WAV read as 16 kHz mono `f32` ([`super::audio::read_pcm_16k_mono`]);
//!   MP3 is not decoded here (set `RECORDING_FORMAT=wav`, the default).
//! * **Decoding**: greedy, language `he` (the provider's language; tests of an English model set
//!   `en`), no timestamps. Whisper's temperature fallback re-decodes a window whose output looks
//!   like a loop; unbounded it took 167 s on a 7.8 s clip when we measured it, so it is capped: at most
//!   two fallbacks (0.0 → 0.4 → 0.8), a clip under 30 s may produce at most 16 + 20 tokens per
//!   second of audio (a loop runs to Whisper's 224-token window cap otherwise), and a deadline of
//!   [`deadline`] (30 s + 8 × the audio length) aborts a decode that still runs away — a
//!   permanent failure naming the limit.
//! * **Concurrency**: decoding runs on tokio's blocking pool, at most `WHISPER_CONCURRENCY`
//!   decodes at once (a semaphore), each with `WHISPER_THREADS` threads: one decode per two
//!   cores is the measured sweet spot.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::audio;
use super::transcriber::{Audio, LANGUAGE, TranscribeError, Transcriber, Transcription};

/// The local Whisper provider.
pub struct WhisperTranscriber {
    ctx: Arc<WhisperContext>,
    permits: Arc<Semaphore>,
    threads: i32,
    language: String,
    model: String,
}

/// How long one decode of `audio_s` seconds may run.
pub fn deadline(audio_s: f64) -> Duration {
    Duration::from_secs(30) + Duration::from_secs_f64(audio_s.max(0.0) * 8.0)
}

impl WhisperTranscriber {
    /// Loads the ggml model at `path`.
    pub fn load(path: &str, concurrency: usize, threads: usize) -> anyhow::Result<Self> {
        if !Path::new(path).is_file() {
            anyhow::bail!("WHISPER_MODEL_PATH `{path}` is not a file");
        }
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| anyhow::anyhow!("WHISPER_MODEL_PATH `{path}` does not load: {e}"))?;
        let model = Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().trim_start_matches("ggml-").to_owned())
            .unwrap_or_else(|| "whisper".into());
        Ok(WhisperTranscriber {
            ctx: Arc::new(ctx),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            threads: i32::try_from(threads.max(1)).unwrap_or(2),
            language: LANGUAGE.to_owned(),
            model,
        })
    }

    /// Transcribes in another language (tests with an English-only model).
    pub fn with_language(mut self, language: &str) -> Self {
        self.language = language.to_owned();
        self
    }

    /// The blocking part: decode `pcm` (16 kHz mono).
    fn decode(
        ctx: &WhisperContext,
        pcm: &[f32],
        language: &str,
        threads: i32,
    ) -> Result<String, TranscribeError> {
        let audio_s = pcm.len() as f64 / 16_000.0;
        let limit = deadline(audio_s);
        let mut state = ctx.create_state().map_err(|e| TranscribeError::Transient {
            retry_after: None,
            reason: format!("whisper state: {e}"),
        })?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(language));
        params.set_n_threads(threads);
        params.set_no_timestamps(true);
        params.set_temperature(0.0);
        params.set_temperature_inc(0.4);
        // Without timestamps a window is one segment, so this caps the tokens of a short clip's
        // only window: a loop stops near the length real speech could have (20 tokens/s).
        if audio_s < 30.0 {
            params.set_max_tokens((16.0 + 20.0 * audio_s).ceil() as i32);
        }
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        let started = Instant::now();
        // F must be `Box<dyn FnMut() -> bool>`: whisper-rs 0.16 boxes the closure as a trait
        // object but its trampoline casts the pointer back to `F`, which is only sound when `F`
        // is that trait object box itself (a few bytes leak per decode).
        let abort: Box<dyn FnMut() -> bool> = Box::new(move || started.elapsed() > limit);
        params.set_abort_callback_safe::<_, Box<dyn FnMut() -> bool>>(Some(abort));
        state.full(params, pcm).map_err(|e| {
            if started.elapsed() > limit {
                TranscribeError::Permanent(format!(
                    "whisper decode ran away: aborted after {} s on {audio_s:.1} s of audio",
                    limit.as_secs()
                ))
            } else {
                TranscribeError::Transient {
                    retry_after: None,
                    reason: format!("whisper decode failed: {e}"),
                }
            }
        })?;
        let mut text = String::new();
        for segment in state.as_iter() {
            let piece = segment
                .to_str_lossy()
                .map_err(|e| TranscribeError::Transient {
                    retry_after: None,
                    reason: format!("whisper segment: {e}"),
                })?;
            text.push_str(piece.as_ref());
        }
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

#[async_trait]
impl Transcriber for WhisperTranscriber {
    fn provider(&self) -> &'static str {
        "whisper"
    }

    async fn transcribe(&self, audio: &Audio) -> Result<Transcription, TranscribeError> {
        if !audio.is_wav() {
            return Err(TranscribeError::Permanent(format!(
                "the whisper provider reads WAV only, not {} (set RECORDING_FORMAT=wav)",
                audio.content_type
            )));
        }
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TranscribeError::Permanent("whisper provider closed".into()))?;
        let (ctx, path, language, threads) = (
            self.ctx.clone(),
            audio.path.clone(),
            self.language.clone(),
            self.threads,
        );
        let text = tokio::task::spawn_blocking(move || {
            let pcm = audio::read_pcm_16k_mono(&path).map_err(|e| match e {
                audio::AudioError::Io(io) => TranscribeError::Transient {
                    retry_after: None,
                    reason: format!("reading the stored audio: {io}"),
                },
                other => TranscribeError::Permanent(other.to_string()),
            })?;
            Self::decode(&ctx, &pcm, &language, threads)
        })
        .await
        .map_err(|e| TranscribeError::Transient {
            retry_after: None,
            reason: format!("whisper task stopped: {e}"),
        })??;
        Ok(Transcription {
            text,
            language: self.language.clone(),
            model: Some(self.model.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_stops_start_up_naming_the_setting_and_the_path() {
        let e = WhisperTranscriber::load("/nonexistent/ggml-base.bin", 1, 2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("WHISPER_MODEL_PATH") && e.contains("/nonexistent/ggml-base.bin"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ggml-junk.bin");
        std::fs::write(&junk, b"not a model").unwrap();
        let e = WhisperTranscriber::load(&junk.display().to_string(), 1, 2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("does not load"), "{e}");
    }

    #[test]
    fn the_deadline_grows_with_the_audio() {
        assert_eq!(deadline(0.0), Duration::from_secs(30));
        assert_eq!(deadline(10.0), Duration::from_secs(110));
    }
}

//! Outside services, one client each behind a trait: the real implementation lives here, fakes
//! live in tests. Handlers see only the traits (through [`crate::handlers::Ctx`]).

pub mod audio;
pub use moked_jobs::audio_store;
pub mod baileys;
pub mod transcriber;
pub mod twilio;
pub mod whatsapp;
#[cfg(feature = "whisper")]
pub mod whisper;

//! The shared contract of moked.
//!
//! Everything the intake, the workers and the clock agree on lives here, with no routes and no
//! HTTP client: job kinds and payloads ([`kinds`]), the durable queue and its backends
//! ([`queue`]), retry policy as data ([`retry`]), the store ([`store`]), configuration
//! ([`config`]; [`fleet`] for the workers' settings the intake reads too), the worker runtime
//! ([`runner`]), telemetry ([`telemetry`]), phone numbers ([`phone`]) and the start-up every
//! binary shares ([`startup`]: `.env`, logging, exit codes).
//! The Twilio webhook signature algorithm ([`signature`]) is shared by the intake and `sign`.
//! The WhatsApp settings and send API ([`whatsapp`]) are shared by the operator API, the CLI
//! and the voice pipeline; [`pacing`] paces sends per sender across every worker, at a
//! [`pacing::Rate`] (the one rate grammar, also the intake's rate limits'). [`retry_effect`]
//! decides, per kind, what an operator retry re-attempts (shared by the operator API and the
//! CLI). `serve` (the `http` feature) is the one accept loop of every port moked serves: its
//! header-read timeout and connection cap hold for the intake and the workers' status port
//! alike.

pub mod audio_store;
pub mod config;
pub mod fleet;
pub mod kinds;
pub mod pacing;
pub mod phone;
pub mod queue;
pub mod retry;
pub mod retry_effect;
pub mod runner;
#[cfg(feature = "http")]
pub mod serve;
pub mod shutdown;
pub mod signature;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod whatsapp;

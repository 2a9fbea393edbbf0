//! WhatsApp in the shared crate: the deployment's WhatsApp settings ([`Provider`],
//! [`WhatsAppSettings`], here) and the send API ([`send_api`]: validate, store and enqueue one
//! outbound message, for the operator API, the CLI and the voice pipeline's note alike).
//!
//! The other layers, one home each: the tables in [`crate::store::whatsapp`]; the Twilio
//! webhooks and the Baileys bridge's in the intake (`intake/src/routes/messaging.rs`,
//! `baileys.rs`) and `/api/whatsapp/…` in `intake/src/routes/operator/whatsapp.rs`; the
//! providers in the workers' `clients/whatsapp/`, the handlers in `handlers/whatsapp_*.rs`, the
//! CLI verb in `cli/whatsapp.rs`.

pub mod send_api;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::phone::E164;

/// The WhatsApp provider (`WHATSAPP_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Twilio's Messages API.
    Twilio,
    /// A Baileys bridge (BAILEYS_URL).
    Baileys,
}

impl Provider {
    /// The name stored on messages (`twilio`, `baileys`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Baileys => "baileys",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How this deployment sends WhatsApp (`WHATSAPP_PROVIDER`, `TWILIO_WHATSAPP_NUMBER`,
/// `WHATSAPP_ENFORCE_WINDOW`, declared in [`crate::fleet::FleetArgs`]): the workers send with it,
/// and the send API checks and stores each message exactly as they will send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppSettings {
    /// The provider that sends.
    pub provider: Provider,
    /// Our sender number, when configured: Twilio's `From`, and it selects the business of
    /// messages sent from the API.
    pub sender: Option<E164>,
    /// Refuse free text outside the 24-hour window (Twilio only).
    pub enforce_window: bool,
}

impl Default for WhatsAppSettings {
    /// Twilio, no sender number, window not enforced (the settings' defaults).
    fn default() -> Self {
        WhatsAppSettings {
            provider: Provider::Twilio,
            sender: None,
            enforce_window: false,
        }
    }
}

impl WhatsAppSettings {
    /// Checks the sender number (`TWILIO_WHATSAPP_NUMBER`: any common form, with or without
    /// the `whatsapp:` prefix; blank is none).
    pub fn new(
        provider: Provider,
        sender: Option<&str>,
        enforce_window: bool,
    ) -> Result<Self, ConfigError> {
        let sender = match sender.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => Some(
                E164::parse(raw)
                    .map_err(|e| ConfigError::new("TWILIO_WHATSAPP_NUMBER", e.to_string()))?,
            ),
            None => None,
        };
        Ok(WhatsAppSettings {
            provider,
            sender,
            enforce_window,
        })
    }
}

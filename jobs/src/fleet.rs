//! The workers' settings that the intake reads too, declared once: [`FleetArgs`], flattened
//! into every binary that needs them (`moked`, `moked-intake`, `moked-worker run` and
//! `moked-worker whatsapp`) and parsed once into a [`FleetConfig`] that each side is built from.
//!
//! * `WHATSAPP_PROVIDER`, `TWILIO_WHATSAPP_NUMBER`, `WHATSAPP_ENFORCE_WINDOW`
//!   ([`WhatsAppSettings`]): the workers send with them; the operator API's
//!   `POST /api/whatsapp/send` validates and stores a message exactly as the worker will send it.
//! * `RECORDINGS_STORE`: the workers write recordings and inbound media there; the operator API
//!   serves the audio from it.
//! * `WORKER_STALE_AFTER`: a worker session silent this long is dead (any live worker re-queues
//!   its jobs); the console's workers view shows it stale.
//!
//! Settings only one side reads stay with that side (`moked_intake::config`,
//! `moked_workers::config`); settings every binary reads are [`crate::config::CoreArgs`].

use std::time::Duration;

use clap::Args;

use crate::config::ConfigError;
use crate::retry::parse_duration;
use crate::whatsapp::{Provider, WhatsAppSettings};

/// `WORKER_STALE_AFTER`'s default.
pub const DEFAULT_WORKER_STALE_AFTER: Duration = Duration::from_secs(20);

/// `RECORDINGS_STORE`'s default.
pub const DEFAULT_RECORDINGS_STORE: &str = "file://data/recordings";

/// Raw fleet settings, as clap reads them from flags and env vars.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// WhatsApp provider the workers send with: twilio or baileys (POST /api/whatsapp/send
    /// validates for it).
    #[arg(long, env = "WHATSAPP_PROVIDER", value_enum, default_value_t = Provider::Twilio)]
    pub whatsapp_provider: Provider,
    /// Our WhatsApp sender number, with or without the whatsapp: prefix (also selects the
    /// business of messages sent from the API).
    #[arg(long, env = "TWILIO_WHATSAPP_NUMBER")]
    pub twilio_whatsapp_number: Option<String>,
    /// Refuse free-form text outside the 24-hour window (Twilio only; the API answers 422)
    /// instead of letting Twilio fail it with 63016.
    #[arg(
        long,
        env = "WHATSAPP_ENFORCE_WINDOW",
        default_value = "false",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub whatsapp_enforce_window: bool,
    /// Where recordings are stored (file://, s3://, gs://): the workers write them, the
    /// operator API serves the audio.
    #[arg(long, env = "RECORDINGS_STORE", default_value = DEFAULT_RECORDINGS_STORE)]
    pub recordings_store: String,
    /// A worker session silent this long is dead; its running jobs are re-queued (the console
    /// shows it stale).
    #[arg(
        long = "worker-stale-after",
        alias = "stale-after",
        env = "WORKER_STALE_AFTER",
        default_value = "20s"
    )]
    pub stale_after: String,
}

/// Typed fleet settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// How WhatsApp is sent.
    pub whatsapp: WhatsAppSettings,
    /// The recordings store's URL (checked: `file://`, `s3://`, `gs://` or `memory://`).
    pub recordings_store: String,
    /// The stale window of worker sessions.
    pub worker_stale_after: Duration,
}

impl Default for FleetConfig {
    /// The documented defaults.
    fn default() -> Self {
        FleetConfig {
            whatsapp: WhatsAppSettings::default(),
            recordings_store: DEFAULT_RECORDINGS_STORE.to_owned(),
            worker_stale_after: DEFAULT_WORKER_STALE_AFTER,
        }
    }
}

/// Checks a `RECORDINGS_STORE` URL (`file://`, `s3://`, `gs://`, `memory://`).
fn parse_recordings_store(url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let known = ["file://", "s3://", "gs://", "memory://"];
    if !known.iter().any(|p| url.starts_with(p)) {
        return Err(ConfigError::new(
            "RECORDINGS_STORE",
            format!("`{url}` must start with file://, s3:// or gs://"),
        ));
    }
    Ok(url.to_owned())
}

impl FleetArgs {
    /// Parses and checks the fleet settings; a bad value names its variable.
    pub fn into_config(self) -> Result<FleetConfig, ConfigError> {
        Ok(FleetConfig {
            whatsapp: WhatsAppSettings::new(
                self.whatsapp_provider,
                self.twilio_whatsapp_number.as_deref(),
                self.whatsapp_enforce_window,
            )?,
            recordings_store: parse_recordings_store(&self.recordings_store)?,
            worker_stale_after: parse_duration(&self.stale_after)
                .map_err(|reason| ConfigError::new("WORKER_STALE_AFTER", reason))?,
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
        fleet: FleetArgs,
    }

    fn parse(args: &[&str]) -> Result<FleetConfig, ConfigError> {
        let mut all = vec!["moked"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .expect("flags parse")
            .fleet
            .into_config()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        assert_eq!(parse(&[]), Ok(FleetConfig::default()));
    }

    #[test]
    fn the_sender_is_read_in_any_common_form_and_bad_values_name_their_variable() {
        for configured in [
            "whatsapp:+14155238886",
            "+14155238886",
            " whatsapp:+1 415 523 8886 ",
        ] {
            let c = parse(&["--twilio-whatsapp-number", configured]).expect("a number");
            let sender = c.whatsapp.sender.expect("configured");
            assert_eq!(sender.as_str(), "+14155238886", "{configured}");
        }
        let c = parse(&[
            "--whatsapp-provider",
            "baileys",
            "--whatsapp-enforce-window",
            "yes",
            "--recordings-store",
            "s3://bucket/prefix",
            "--stale-after",
            "1m",
        ])
        .expect("valid");
        assert_eq!(c.whatsapp.provider, Provider::Baileys);
        assert!(c.whatsapp.enforce_window);
        assert_eq!(c.recordings_store, "s3://bucket/prefix");
        assert_eq!(c.worker_stale_after, Duration::from_secs(60));
        let var = |args: &[&str]| parse(args).expect_err("must be refused").var;
        assert_eq!(
            var(&["--twilio-whatsapp-number", "hello"]),
            "TWILIO_WHATSAPP_NUMBER"
        );
        assert_eq!(var(&["--recordings-store", "ftp://x"]), "RECORDINGS_STORE");
        assert_eq!(var(&["--worker-stale-after", "soon"]), "WORKER_STALE_AFTER");
    }
}

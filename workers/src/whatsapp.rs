//! WhatsApp settings of the workers and `moked-worker whatsapp send`.
//!
//! * [`WhatsAppArgs`] / [`WhatsAppConfig`]: `WHATSAPP_RATE` (sends per second per sender, shared
//!   by every worker; default 20/s), `WHATSAPP_ENFORCE_WINDOW` (refuse free text outside the
//!   24-hour window, Twilio only; default false) and `WHATSAPP_SEND_TIMEOUT` (after which a send
//!   counts as ambiguous; default 15 s). Flattened into [`crate::config::WorkerArgs`], beside
//!   `WHATSAPP_PROVIDER`, `TWILIO_WHATSAPP_NUMBER` and `BAILEYS_URL`.
//! * [`send_settings`]: what [`moked_jobs::whatsapp::request_send`] needs from the configuration.
//! * [`WhatsAppCommand`]: the send API from the shell, until the operator API's
//!   `POST /api/whatsapp/send` exists — the same function, the same validation, the same job.

use std::time::Duration;

use clap::{Args, Subcommand};
use moked_jobs::config::{ConfigError, CoreConfig};
use moked_jobs::pacing::{Rate, parse_rate};
use moked_jobs::phone::E164;
use moked_jobs::retry::parse_duration;
use moked_jobs::store::Db;
use moked_jobs::whatsapp::{self, Provider, SendError, SendRequest, SendSettings};
use secrecy::ExposeSecret;

use crate::config::WorkerConfig;

/// Raw WhatsApp settings.
#[derive(Debug, Clone, Args)]
pub struct WhatsAppArgs {
    /// WhatsApp sends per sender number, shared by all workers: 20, 20/s, 600/m, or off.
    #[arg(long, env = "WHATSAPP_RATE", default_value = "20/s")]
    pub whatsapp_rate: String,
    /// Refuse free-form text outside the 24-hour window (Twilio only) instead of letting Twilio
    /// fail it with 63016.
    #[arg(
        long,
        env = "WHATSAPP_ENFORCE_WINDOW",
        default_value = "false",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub whatsapp_enforce_window: bool,
    /// How long one send may take before it counts as ambiguous (looked up before resending).
    #[arg(long, env = "WHATSAPP_SEND_TIMEOUT", default_value = "15s")]
    pub whatsapp_send_timeout: String,
}

/// Typed WhatsApp settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsAppConfig {
    /// Sends per sender (None: not paced).
    pub rate: Option<Rate>,
    /// Refuse free text outside the window.
    pub enforce_window: bool,
    /// Longest send.
    pub send_timeout: Duration,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        WhatsAppConfig {
            rate: Rate::per_second(20.0),
            enforce_window: false,
            send_timeout: Duration::from_secs(15),
        }
    }
}

impl WhatsAppArgs {
    /// Parses and checks the WhatsApp settings.
    pub fn into_config(self) -> Result<WhatsAppConfig, ConfigError> {
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
        Ok(WhatsAppConfig {
            rate,
            enforce_window: self.whatsapp_enforce_window,
            send_timeout,
        })
    }
}

/// The send API's settings from the configuration.
pub fn send_settings(
    core: &CoreConfig,
    worker: &WorkerConfig,
) -> Result<SendSettings, ConfigError> {
    let sender = match worker.twilio_whatsapp_number.as_deref() {
        Some(raw) => Some(
            E164::parse(raw)
                .map_err(|e| ConfigError::new("TWILIO_WHATSAPP_NUMBER", e.to_string()))?,
        ),
        None => None,
    };
    Ok(SendSettings {
        provider: Provider::from(worker.whatsapp_provider),
        sender,
        enforce_window: worker.whatsapp.enforce_window,
        dedupe_ttl: core.dedupe_ttl,
    })
}

/// `moked-worker whatsapp …`.
#[derive(Debug, Clone, Subcommand)]
pub enum WhatsAppCommand {
    /// Queue one WhatsApp message (validated like POST /api/whatsapp/send); prints its id.
    Send(SendArgs),
}

/// `moked-worker whatsapp send`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("content").required(true).args(["body", "content_sid"])))]
pub struct SendArgs {
    /// Recipient, any common form (050-123-4567, +972…, whatsapp:+972…).
    #[arg(long)]
    pub to: String,
    /// Free-form text (inside the 24-hour window).
    #[arg(long)]
    pub body: Option<String>,
    /// Approved template (Twilio Content API HX…).
    #[arg(long)]
    pub content_sid: Option<String>,
    /// Template variables, a JSON object such as '{"1":"Dana"}'.
    #[arg(long, requires = "content_sid")]
    pub content_variables: Option<String>,
    /// Public media URL (repeatable; free-form messages only).
    #[arg(long = "media-url")]
    pub media_urls: Vec<String>,
    /// The same key again returns the first message instead of queuing a second one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why `whatsapp send` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The request was refused (exit 1).
    #[error("{0}")]
    Refused(#[from] SendError),
    /// Configuration or connection trouble (exit 2).
    #[error("{0:#}")]
    Setup(#[from] anyhow::Error),
}

/// Runs one `whatsapp` verb and returns what to print.
pub async fn execute(
    core: &CoreConfig,
    worker: &WorkerConfig,
    command: WhatsAppCommand,
) -> Result<String, CliError> {
    let WhatsAppCommand::Send(args) = command;
    let settings = send_settings(core, worker).map_err(anyhow::Error::from)?;
    let db = Db::connect(core.database_url.expose_secret())
        .await
        .map_err(anyhow::Error::from)?;
    let queue = moked_jobs::queue::connect(core, &db)
        .await
        .map_err(anyhow::Error::from)?;
    let request = SendRequest {
        to: args.to,
        body: args.body,
        content_sid: args.content_sid,
        content_variables: args.content_variables.map(serde_json::Value::String),
        media_urls: args.media_urls,
        idempotency_key: args.idempotency_key,
        business_id: None,
    };
    let out = whatsapp::request_send(&db, queue.as_ref(), request, &settings).await;
    db.close().await;
    let out = out?;
    if args.json {
        return Ok(serde_json::json!({
            "id": out.message.id,
            "status": out.message.status,
            "provider": out.message.provider,
            "created": out.created,
            "job_id": out.job_id,
        })
        .to_string());
    }
    let to = out
        .message
        .to
        .as_deref()
        .map(moked_jobs::phone::mask_raw)
        .unwrap_or_default();
    Ok(format!(
        "{} WhatsApp message {} to {to} via {} (status {}, job {})",
        if out.created { "queued" } else { "existing" },
        out.message.id,
        out.message.provider,
        out.message.status,
        out.job_id.as_deref().unwrap_or("none needed"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        whatsapp: WhatsAppArgs,
    }

    fn parse(args: &[&str]) -> Result<WhatsAppConfig, ConfigError> {
        let mut all = vec!["moked"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().whatsapp.into_config()
    }

    #[test]
    fn defaults_pace_twenty_a_second_and_do_not_enforce_the_window() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, WhatsAppConfig::default());
        assert_eq!(c.rate.unwrap().interval(), Duration::from_millis(50));
        assert!(!c.enforce_window);
    }

    #[test]
    fn settings_parse_and_bad_values_name_their_variable() {
        let c = parse(&[
            "--whatsapp-rate",
            "off",
            "--whatsapp-enforce-window",
            "true",
            "--whatsapp-send-timeout",
            "300ms",
        ])
        .unwrap();
        assert_eq!(c.rate, None);
        assert!(c.enforce_window);
        assert_eq!(c.send_timeout, Duration::from_millis(300));
        assert_eq!(
            parse(&["--whatsapp-rate", "fast"]).unwrap_err().var,
            "WHATSAPP_RATE"
        );
        assert_eq!(
            parse(&["--whatsapp-send-timeout", "0s"]).unwrap_err().var,
            "WHATSAPP_SEND_TIMEOUT"
        );
    }
}

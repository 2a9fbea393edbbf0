//! `moked-worker whatsapp send`: the send API from the shell, beside the operator API's
//! `POST /api/whatsapp/send` — the same function ([`moked_jobs::whatsapp::send_api::request_send`]), the
//! same validation, the same job. Its settings are the workers' ([`crate::config`]), the
//! WhatsApp ones declared in [`moked_jobs::fleet`].

use clap::{Args, Subcommand};
use moked_jobs::config::CoreConfig;
use moked_jobs::store::Db;
use moked_jobs::whatsapp::send_api::{self, SendError, SendRequest, SendSettings};
use secrecy::ExposeSecret;

use crate::config::WorkerConfig;

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

/// Why `whatsapp send` failed (exit 1 either way; a bad setting stopped it before, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The request was refused.
    #[error("{0}")]
    Refused(#[from] SendError),
    /// The store or the queue could not be reached.
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
    let settings = SendSettings::new(&worker.whatsapp, core);
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
    let out = send_api::request_send(&db, queue.as_ref(), request, &settings).await;
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

//! moked workers: the process that runs jobs (`moked-worker run`), fires scheduled work
//! (`moked-worker clock`), migrates the store (`migrate`), lets operators act on the queue from
//! the shell (`jobs …`) and signs test webhooks (`sign`).
//!
//! * [`run`] — `moked-worker run`: the job loop ([`moked_jobs::runner`]) with every handler.
//! * [`jobs_cli`] — `moked-worker jobs …`: list, show, retry, discard, stats without a server.
//! * [`handlers`] — one file per job kind; [`handlers::dispatch`] is generated from the job kind
//!   table ([`moked_jobs::for_each_job_kind!`]).
//! * [`clock`] — `moked-worker clock`: scheduled tasks, exactly once per tick.
//! * [`sign`] — `moked-worker sign`: Twilio-style signatures for hand tests.
//! * [`status`] — `METRICS_PORT` (`/metrics`, `/health`, `/ready`) and `moked-worker health`.
//! * [`config`] — worker settings (those the intake reads too are [`moked_jobs::fleet`]'s),
//!   the clock's task settings among them.
//! * [`clients`] — the outside services (Twilio, WhatsApp providers, transcription, audio).
//! * [`inbound_media`] — copies inbound WhatsApp media into the recordings object store.
//! * [`whatsapp`] — `moked-worker whatsapp send` (the send API from the shell).

pub mod clients;
pub mod clock;
pub mod config;
pub mod handlers;
pub mod inbound_media;
pub mod jobs_cli;
pub mod run;
pub mod sign;
pub mod status;
pub mod whatsapp;

use moked_jobs::config::CoreConfig;
use moked_jobs::store::Db;
use secrecy::ExposeSecret;

/// `moked-worker migrate`: applies the store's migrations.
pub async fn migrate(core: &CoreConfig) -> anyhow::Result<()> {
    let db = Db::connect(core.database_url.expose_secret()).await?;
    db.migrate().await?;
    db.close().await;
    Ok(())
}

/// `moked-worker jobs …`: connects to the queue and runs one verb.
pub async fn jobs(core: &CoreConfig, command: jobs_cli::JobsCommand) -> anyhow::Result<String> {
    let db = Db::connect(core.database_url.expose_secret()).await?;
    let queue = moked_jobs::queue::connect(core, &db).await?;
    Ok(jobs_cli::execute(queue.as_ref(), &db, command).await?)
}

/// `moked-worker clock [--once TASK]`: runs the clock until SIGTERM (with `metrics_port`, also
/// the status endpoint), or enqueues one task now and returns a line saying so.
pub async fn clock_command(
    core: &CoreConfig,
    config: clock::ClockConfig,
    once: Option<clock::Task>,
    metrics_port: Option<u16>,
) -> anyhow::Result<Option<String>> {
    let db = Db::connect(core.database_url.expose_secret()).await?;
    let queue = moked_jobs::queue::connect(core, &db).await?;
    if let Some(task) = once {
        let job = clock::once(&queue, task).await?;
        return Ok(Some(format!("enqueued {} job {}", task.kind(), job.id())));
    }
    if let Some(port) = metrics_port {
        status::spawn(port, "clock", queue.clone()).await?;
    }
    let config = clock::ClockConfig {
        store: Some(db),
        ..config
    };
    clock::run(config, queue, moked_jobs::shutdown::signal()).await;
    Ok(None)
}

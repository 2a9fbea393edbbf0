//! The `moked-worker` command line: every verb, parsed and run here ([`Cli`], [`execute`]).
//!
//! | verb | what | where |
//! |---|---|---|
//! | `run` | run jobs until SIGTERM | [`crate::run`] |
//! | `clock [--once TASK]` | fire scheduled tasks, exactly once per tick | [`crate::clock`] |
//! | `migrate` | apply the store's migrations | here |
//! | `jobs …` | list, show, retry, discard, count jobs without a server | [`jobs`] |
//! | `health` | ask this container's moked process for `/health` | [`health`] |
//! | `sign` | a Twilio-style signature for hand tests | [`sign`] |
//! | `whatsapp send` | the WhatsApp send API from the shell | [`whatsapp`] |
//!
//! Start-up and exit codes are [`moked_jobs::startup`]'s: a bad `.env`, setting or argument
//! exits 2 before anything starts; a command that started and failed (or was refused, or found
//! the process unhealthy) exits 1.

pub mod health;
pub mod jobs;
pub mod sign;
pub mod whatsapp;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand};
use moked_jobs::config::{CoreArgs, CoreConfig};
use moked_jobs::fleet::FleetArgs;
use moked_jobs::startup::{self, Failure};
use moked_jobs::store::Db;
use secrecy::ExposeSecret;

use crate::clock::{self, ClockArgs, Task};
use crate::config::{WorkerArgs, WorkerConfig};
use crate::status::{self, StatusArgs};
use health::HealthArgs;
use jobs::JobsCommand;
use sign::SignArgs;
use whatsapp::{CliError, WhatsAppCommand};

/// `moked-worker`'s arguments.
#[derive(Parser)]
#[command(
    name = "moked-worker",
    version,
    about = "moked workers: run jobs, fire the clock, migrate, operate the queue, sign test webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs until SIGTERM (stop fetching, finish running jobs within SHUTDOWN_GRACE, exit 0).
    Run {
        #[command(flatten)]
        setup: WorkerSetup,
        #[command(flatten)]
        status: StatusArgs,
    },
    /// Fire scheduled tasks (reconcile, health, cleanup) as jobs, exactly once per tick across replicas.
    Clock {
        #[command(flatten)]
        core: CoreArgs,
        #[command(flatten)]
        clock: ClockArgs,
        #[command(flatten)]
        status: StatusArgs,
        /// Enqueue one run of TASK now and exit.
        #[arg(long, value_enum, value_name = "TASK")]
        once: Option<Task>,
    },
    /// Apply the store's migrations (the Procfile's release phase).
    Migrate {
        #[command(flatten)]
        core: CoreArgs,
    },
    /// List, show, retry, discard jobs and count them, straight from the queue.
    Jobs {
        #[command(flatten)]
        core: CoreArgs,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Ask the moked process in this container for its /health and exit 0 (healthy) or 1 (the
    /// HEALTHCHECK of the container images, which have no curl).
    Health(HealthArgs),
    /// Print the X-Twilio-Signature of a webhook (or a ready curl command with --curl).
    Sign(SignArgs),
    /// Queue WhatsApp messages from the shell (the send API without HTTP).
    Whatsapp {
        #[command(flatten)]
        setup: WorkerSetup,
        #[command(subcommand)]
        command: WhatsAppCommand,
    },
}

/// The settings of a command that works like a worker (`run`, `whatsapp`): shared, worker and
/// fleet.
#[derive(Args)]
struct WorkerSetup {
    #[command(flatten)]
    core: CoreArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    fleet: FleetArgs,
}

impl WorkerSetup {
    /// Parses the shared and the worker settings (the worker's read the fleet's).
    fn into_configs(self) -> Result<(CoreConfig, WorkerConfig), Failure> {
        let core = self.core.into_config()?;
        let worker = self.worker.into_config(&self.fleet.into_config()?)?;
        Ok((core, worker))
    }
}

/// Runs one command; what it prints on success goes to stdout.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run { setup, status } => {
            let (core, worker) = setup.into_configs()?;
            startup::logging(core.log_format);
            let shutdown = moked_jobs::shutdown::signal();
            crate::run::run(core, worker, status.metrics_port, shutdown).await?;
        }
        Command::Clock {
            core,
            clock,
            status,
            once,
        } => {
            let core = core.into_config()?;
            let clock = clock.into_config()?;
            startup::logging(core.log_format);
            let fired = clock_command(&core, clock, once, status.metrics_port).await?;
            if let Some(line) = fired {
                println!("{line}");
            }
        }
        Command::Health(args) => {
            let line = health::probe(&args)
                .await
                .map_err(|reason| anyhow!(reason))?;
            println!("{line}");
        }
        Command::Sign(args) => {
            let out = sign::execute(&args).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{out}");
        }
        Command::Migrate { core } => {
            let core = core.into_config()?;
            startup::logging(core.log_format);
            migrate(&core).await?;
            println!("migrations applied");
        }
        Command::Jobs { core, command } => {
            let core = core.into_config()?;
            println!("{}", jobs_command(&core, command).await?);
        }
        Command::Whatsapp { setup, command } => {
            let (core, worker) = setup.into_configs()?;
            let out = whatsapp::execute(&core, &worker, command)
                .await
                .map_err(|e| match e {
                    CliError::Refused(e) => anyhow!("refused: {e}"),
                    CliError::Setup(e) => e,
                })?;
            println!("{out}");
        }
    }
    Ok(())
}

/// `moked-worker migrate`: applies the store's migrations.
async fn migrate(core: &CoreConfig) -> anyhow::Result<()> {
    let db = Db::connect(core.database_url.expose_secret()).await?;
    db.migrate().await?;
    db.close().await;
    Ok(())
}

/// `moked-worker jobs …`: connects to the queue and runs one verb.
async fn jobs_command(core: &CoreConfig, command: JobsCommand) -> anyhow::Result<String> {
    let db = Db::connect(core.database_url.expose_secret()).await?;
    let queue = moked_jobs::queue::connect(core, &db).await?;
    Ok(jobs::execute(queue.as_ref(), &db, command).await?)
}

/// `moked-worker clock [--once TASK]`: runs the clock until SIGTERM (with `metrics_port`, also
/// the status endpoint), or enqueues one task now and returns a line saying so.
async fn clock_command(
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

//! `moked-worker`: run jobs, fire the clock, migrate, operate the queue, sign test webhooks.
//!
//! Start-up and exit codes are [`moked_jobs::startup`]'s: a bad `.env`, setting or argument
//! exits 2 before anything starts; a command that started and failed (or was refused, or found
//! the process unhealthy) exits 1.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use moked_jobs::config::CoreArgs;
use moked_jobs::fleet::FleetArgs;
use moked_jobs::startup::{self, Failure};
use moked_workers::clock::{ClockArgs, Task};
use moked_workers::config::WorkerArgs;
use moked_workers::jobs_cli::JobsCommand;
use moked_workers::sign::SignArgs;
use moked_workers::status::{HealthArgs, StatusArgs};
use moked_workers::whatsapp::{CliError, WhatsAppCommand};

/// mimalloc instead of glibc malloc, as in the other two binaries: a worker allocates a little
/// per job on every runtime thread (payloads, store rows, HTTP bodies), the pattern that made
/// glibc's arenas a seventh of the intake's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "moked-worker",
    version,
    about = "moked workers: run jobs, fire the clock, migrate, operate the queue, sign test webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs until SIGTERM (stop fetching, finish running jobs within SHUTDOWN_GRACE, exit 0).
    Run {
        #[command(flatten)]
        core: CoreArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        fleet: FleetArgs,
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
        core: CoreArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(subcommand)]
        command: WhatsAppCommand,
    },
}

fn main() -> ExitCode {
    startup::run("moked-worker", |cli: Cli| execute(cli.command))
}

/// Runs one command; what it prints on success goes to stdout.
async fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            core,
            worker,
            fleet,
            status,
        } => {
            let core = core.into_config()?;
            let worker = worker.into_config(&fleet.into_config()?)?;
            startup::logging(core.log_format);
            let shutdown = moked_jobs::shutdown::signal();
            moked_workers::run::run(core, worker, status.metrics_port, shutdown).await?;
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
            let fired =
                moked_workers::clock_command(&core, clock, once, status.metrics_port).await?;
            if let Some(line) = fired {
                println!("{line}");
            }
        }
        Command::Health(args) => {
            let line = moked_workers::status::probe(&args)
                .await
                .map_err(|reason| anyhow!(reason))?;
            println!("{line}");
        }
        Command::Sign(args) => {
            let out =
                moked_workers::sign::execute(&args).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{out}");
        }
        Command::Migrate { core } => {
            let core = core.into_config()?;
            startup::logging(core.log_format);
            moked_workers::migrate(&core).await?;
            println!("migrations applied");
        }
        Command::Jobs { core, command } => {
            let core = core.into_config()?;
            println!("{}", moked_workers::jobs(&core, command).await?);
        }
        Command::Whatsapp {
            core,
            worker,
            fleet,
            command,
        } => {
            let core = core.into_config()?;
            let worker = worker.into_config(&fleet.into_config()?)?;
            let out = moked_workers::whatsapp::execute(&core, &worker, command)
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

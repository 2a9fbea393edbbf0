//! `moked-worker`: run jobs, fire the clock, migrate, operate the queue, sign test webhooks.

use clap::{Parser, Subcommand};
use moked_jobs::config::CoreArgs;
use moked_workers::clock::{ClockArgs, Task};
use moked_workers::config::WorkerArgs;
use moked_workers::jobs_cli::JobsCommand;
use moked_workers::sign::SignArgs;
use moked_workers::status::{HealthArgs, StatusArgs};
use moked_workers::whatsapp::WhatsAppCommand;

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
        #[command(subcommand)]
        command: WhatsAppCommand,
    },
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("moked-worker: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    // A .env that exists but does not parse stops start-up, as in moked and moked-intake: a
    // half-read file would run with settings nobody chose.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        fail(format!("cannot read .env: {error}"));
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run {
            core,
            worker,
            status,
        } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            let worker = worker.into_config().unwrap_or_else(|e| fail(e));
            moked_jobs::telemetry::init(core.log_format);
            match moked_workers::run::run(
                core,
                worker,
                status.metrics_port,
                moked_jobs::shutdown::signal(),
            )
            .await
            {
                Ok(_) => 0,
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Command::Clock {
            core,
            clock,
            status,
            once,
        } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            let clock = clock.into_config().unwrap_or_else(|e| fail(e));
            moked_jobs::telemetry::init(core.log_format);
            match moked_workers::clock_command(&core, clock, once, status.metrics_port).await {
                Ok(Some(line)) => {
                    println!("{line}");
                    0
                }
                Ok(None) => 0,
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Command::Health(args) => match moked_workers::status::probe(&args).await {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(reason) => {
                eprintln!("moked-worker: {reason}");
                1
            }
        },
        Command::Sign(args) => match moked_workers::sign::execute(&args) {
            Ok(out) => {
                println!("{out}");
                0
            }
            Err(e) => fail(e),
        },
        Command::Migrate { core } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            moked_jobs::telemetry::init(core.log_format);
            match moked_workers::migrate(&core).await {
                Ok(()) => {
                    println!("migrations applied");
                    0
                }
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Command::Jobs { core, command } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            match moked_workers::jobs(&core, command).await {
                Ok(out) => {
                    println!("{out}");
                    0
                }
                Err(e) => {
                    eprintln!("moked-worker: {e:#}");
                    1
                }
            }
        }
        Command::Whatsapp {
            core,
            worker,
            command,
        } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            let worker = worker.into_config().unwrap_or_else(|e| fail(e));
            match moked_workers::whatsapp::execute(&core, &worker, command).await {
                Ok(out) => {
                    println!("{out}");
                    0
                }
                Err(moked_workers::whatsapp::CliError::Refused(e)) => {
                    eprintln!("moked-worker: refused: {e}");
                    1
                }
                Err(e) => fail(e),
            }
        }
    };
    std::process::exit(code);
}

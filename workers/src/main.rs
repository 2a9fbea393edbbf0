//! `moked-worker`: run jobs, fire the clock, migrate, operate the queue, sign test webhooks.

use clap::{Parser, Subcommand};
use moked_jobs::config::CoreArgs;
use moked_workers::config::WorkerArgs;
use moked_workers::jobs_cli::JobsCommand;

#[derive(Parser)]
#[command(name = "moked-worker", version, about = "moked workers: run jobs, fire the clock, migrate, operate the queue, sign test webhooks")]
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
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("moked-worker: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run { core, worker } => {
            let core = core.into_config().unwrap_or_else(|e| fail(e));
            let worker = worker.into_config().unwrap_or_else(|e| fail(e));
            moked_jobs::telemetry::init(core.log_format);
            match moked_workers::run::run(core, worker, moked_jobs::shutdown::signal()).await {
                Ok(_) => 0,
                Err(e) => fail(format!("{e:#}")),
            }
        }
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
    };
    std::process::exit(code);
}

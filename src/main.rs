//! `moked`: intake + worker + clock in one process. With no settings it runs on the embedded
//! SQLite file `data/moked.db` and needs no other service.

use std::process::ExitCode;

use clap::Parser;
use moked::Cli;

/// mimalloc instead of glibc malloc: the intake allocates a little per request on every
/// worker thread, and glibc's arenas made allocation about a seventh of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("moked: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    let settings = match Cli::parse().into_settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("moked: {error}");
            return ExitCode::from(2);
        }
    };
    moked_jobs::telemetry::init(settings.core.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("moked: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let public = settings.core.public_host.clone();
    let backend = match settings.core.queue {
        moked_jobs::config::QueueBackend::Redis(_) => "Redis",
        moked_jobs::config::QueueBackend::Database => "the database",
    };
    let announce = move |addr: std::net::SocketAddr| {
        println!("moked listening on http://{addr} (public URL {public}); queue in {backend}");
        println!("  Twilio voice webhook: {public}/webhook/incoming_call");
        println!("  health: {public}/api/health   stop: Ctrl-C");
    };
    match runtime.block_on(moked::run(
        settings,
        announce,
        moked_jobs::shutdown::signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("moked: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! `moked`: intake + worker + clock in one process. With no settings it runs on the embedded
//! SQLite file `data/moked.db` and needs no other service. Start-up and exit codes are
//! [`moked_jobs::startup`]'s (a bad `.env` or setting exits 2, a failure after start-up 1).

use std::process::ExitCode;

use moked::Cli;
use moked_jobs::startup;

/// mimalloc instead of glibc malloc: the intake allocates a little per request on every
/// worker thread, and glibc's arenas made allocation about a seventh of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    startup::run("moked", |cli: Cli| async move {
        let settings = cli.into_settings()?;
        startup::logging(settings.core.log_format);
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
        moked::run(settings, announce, moked_jobs::shutdown::signal()).await?;
        Ok(())
    })
}

//! `moked-intake`: serves the Twilio webhooks on `0.0.0.0:$PORT`.
//!
//! A shim over [`moked_jobs::startup::run`] (`.env`, exit codes): parses the settings once (a bad
//! value prints one line naming the variable and exits 2), starts logging, connects (database,
//! queue, limiter), listens, and serves until SIGTERM/SIGINT (graceful, at most 10 s); a failure
//! after start-up exits 1.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use moked_intake::{IntakeArgs, IntakeConfig};
use moked_jobs::config::{CoreArgs, CoreConfig};
use moked_jobs::fleet::FleetArgs;
use moked_jobs::startup;

/// mimalloc instead of glibc malloc: the intake allocates a little per request on every
/// worker thread, and glibc's arenas made allocation about a seventh of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// moked intake: verifies Twilio webhooks, answers at once and enqueues durable jobs.
#[derive(Debug, Parser)]
#[command(name = "moked-intake", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    core: CoreArgs,
    #[command(flatten)]
    intake: IntakeArgs,
    /// Worker settings the operator API reads (WhatsApp send, recordings store, stale window).
    #[command(flatten)]
    fleet: FleetArgs,
}

fn main() -> ExitCode {
    startup::run("moked-intake", |cli: Cli| async move {
        let core = cli.core.into_config()?;
        let intake = cli.intake.into_config(&cli.fleet.into_config()?)?;
        startup::logging(core.log_format);
        serve(core, intake).await?;
        Ok(())
    })
}

async fn serve(core: CoreConfig, intake: IntakeConfig) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, core.port));
    let state = moked_intake::build_state(core, intake).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (PORT)"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        public_host = %state.core.public_host,
        queue = state.queue.backend(),
        "moked-intake listening on http://{local}"
    );
    moked_intake::run(listener, state, moked_jobs::shutdown::signal()).await?;
    tracing::info!("moked-intake stopped");
    Ok(())
}

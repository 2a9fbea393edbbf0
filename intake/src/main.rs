//! `moked-intake`: serves the Twilio webhooks on `0.0.0.0:$PORT`.
//!
//! A shim: reads `.env` when present, parses the settings once (a bad value prints one line
//! naming the variable and exits 2), starts logging, connects (database, queue, limiter),
//! listens, and serves until SIGTERM/SIGINT (graceful, at most 10 s).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use moked_intake::config::OperatorArgs;
use moked_intake::{IntakeArgs, IntakeConfig};
use moked_jobs::config::{CoreArgs, CoreConfig};

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
    /// Worker settings the operator API reads (WhatsApp send, recordings store).
    #[command(flatten)]
    operator: OperatorArgs,
}

fn main() -> ExitCode {
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("moked-intake: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let operator = cli.operator;
    let settings = cli.core.into_config().and_then(|core| {
        let mut intake = cli.intake.into_config()?;
        operator.apply(&mut intake)?;
        Ok((core, intake))
    });
    let (core, intake) = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("moked-intake: {error}");
            return ExitCode::from(2);
        }
    };
    moked_jobs::telemetry::init(core.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("moked-intake: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(core, intake)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("moked-intake: {error:#}");
            ExitCode::FAILURE
        }
    }
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

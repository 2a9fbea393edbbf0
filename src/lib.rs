//! `moked`, all in one process: the intake, a worker and the clock on one store and one queue.
//!
//! This is the laptop mode: with no settings at all it opens (and migrates) the SQLite file
//! `data/moked.db`, keeps the queue in it, and serves on `0.0.0.0:8080`. Sharing one queue
//! handle between the intake and the worker also shares the database queue's in-process
//! wake-up, so a webhook's job starts within milliseconds. With `REDIS_URL` set the same
//! process works against Redis, and several `moked` processes can share it (the clock's
//! ticks are deduplicated across them).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use moked_intake::{AppState, IntakeArgs, IntakeConfig};
use moked_jobs::config::{CoreArgs, CoreConfig};
use moked_jobs::fleet::FleetArgs;
use moked_jobs::store::Db;
use moked_workers::clock::{ClockArgs, ClockConfig};
use moked_workers::config::{WorkerArgs, WorkerConfig};
use secrecy::ExposeSecret;
use tokio::sync::watch;

/// moked, all in one process: intake + worker + clock (SQLite by default, no other services).
#[derive(Debug, Parser)]
#[command(name = "moked", version, about, long_about = None)]
pub struct Cli {
    /// Shared settings.
    #[command(flatten)]
    pub core: CoreArgs,
    /// Intake settings.
    #[command(flatten)]
    pub intake: IntakeArgs,
    /// Worker settings.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Worker settings the intake reads too (WhatsApp send, recordings store, stale window).
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Clock settings.
    #[command(flatten)]
    pub clock: ClockArgs,
}

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shared.
    pub core: CoreConfig,
    /// Intake.
    pub intake: IntakeConfig,
    /// Worker.
    pub worker: WorkerConfig,
    /// Clock.
    pub clock: ClockConfig,
}

impl Cli {
    /// Parses every part once; the error names the variable. The fleet settings go to both
    /// the intake (its operator API) and the worker.
    pub fn into_settings(self) -> Result<Settings, moked_jobs::config::ConfigError> {
        let fleet = self.fleet.into_config()?;
        Ok(Settings {
            core: self.core.into_config()?,
            intake: self.intake.into_config(&fleet)?,
            worker: self.worker.into_config(&fleet)?,
            clock: self.clock.into_config()?,
        })
    }
}

/// Runs everything until `shutdown` resolves: migrates, binds `0.0.0.0:PORT`, calls `ready`
/// with the bound address, then serves, works and ticks; on shutdown the intake stops
/// accepting, the worker finishes or releases its jobs, and the clock stops.
pub async fn run(
    settings: Settings,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Settings {
        core,
        intake,
        worker,
        clock,
    } = settings;
    let db = Db::connect(core.database_url.expose_secret())
        .await
        .context("cannot open the database (DATABASE_URL)")?;
    db.migrate().await.context("cannot migrate the database")?;
    let (queue, limiter) = moked_intake::connect_on(&core, &intake, &db).await?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, core.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (PORT)"))?;
    let state = AppState::new(core.clone(), intake, db.clone(), queue.clone(), limiter)
        .context("cannot build the TwiML answers")?;
    ready(listener.local_addr()?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let web = tokio::spawn(moked_intake::run(listener, state, stopped()));
    let work = tokio::spawn({
        let (core, db, queue) = (core.clone(), db.clone(), queue.clone());
        let stop = stopped();
        async move { moked_workers::run::run_on(&core, &worker, db, queue, stop).await }
    });
    let clock = moked_workers::clock::ClockConfig {
        store: Some(db.clone()),
        ..clock
    };
    let tick = tokio::spawn(moked_workers::clock::run(clock, queue, stopped()));
    shutdown.await;
    let _ = stop_tx.send(true);
    let (web, work, tick) = tokio::join!(web, work, tick);
    web.context("intake task")?.context("intake")?;
    work.context("worker task")?.context("worker")?;
    tick.context("clock task")?;
    db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every env var any binary reads, from the CLI definitions themselves.
    fn env_vars() -> Vec<String> {
        let mut vars: Vec<String> = super::Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }

    #[test]
    fn the_readme_configuration_table_names_every_variable() {
        let readme = include_str!("../README.md");
        let missing: Vec<String> = env_vars()
            .into_iter()
            .filter(|v| {
                // Per-kind retry overrides are documented as one row listing their suffixes.
                let suffix = v.strip_prefix("RETRY_SCHEDULE_");
                let documented = match suffix {
                    Some(s) => readme.contains(&format!("`{s}`")),
                    None => readme.contains(&format!("| `{v}` |")),
                };
                !documented
            })
            .collect();
        assert!(
            missing.is_empty(),
            "README.md configuration table lacks: {missing:?}"
        );
    }
}

//! `moked-worker run`: connect the store and the queue, then run jobs until SIGTERM.

use std::future::Future;
use std::sync::Arc;

use moked_jobs::config::CoreConfig;
use moked_jobs::queue::{self, SharedQueue};
use moked_jobs::runner::{Handler, RunSummary, Runner, RunnerConfig, handler};
use moked_jobs::store::Db;

use crate::clients::audio_store;
use crate::clients::twilio::TwilioClient;
use crate::config::WorkerConfig;
use crate::handlers::{self, Ctx};

/// The runner settings this worker configuration asks for.
pub fn runner_config(core: &CoreConfig, worker: &WorkerConfig) -> RunnerConfig {
    RunnerConfig {
        concurrency: worker.concurrency,
        heartbeat: worker.heartbeat,
        stale_after: worker.stale_after,
        shutdown_grace: worker.shutdown_grace,
        policy: core.retry.clone(),
        ..RunnerConfig::default()
    }
}

/// The handler that dispatches every job kind.
pub fn dispatcher(ctx: Ctx) -> Handler {
    let ctx = Arc::new(ctx);
    handler(move |claim| {
        let ctx = ctx.clone();
        async move { handlers::dispatch(&ctx, &claim).await }
    })
}

/// Builds the handler context with the real outside-service clients.
pub fn context(
    core: &CoreConfig,
    worker: &WorkerConfig,
    db: Db,
    queue: SharedQueue,
) -> anyhow::Result<Ctx> {
    Ok(Ctx {
        db,
        queue,
        core: Arc::new(core.clone()),
        config: Arc::new(worker.clone()),
        twilio: Arc::new(TwilioClient::new(core)?),
        transcriber: crate::clients::open_transcriber(worker)?,
        recordings: audio_store::open(&worker.recordings_store)?,
        whatsapp: crate::clients::whatsapp::from_config(
            core,
            worker,
            Arc::new(TwilioClient::new(core)?),
        )?,
        pacer: moked_jobs::pacing::Pacer::for_queue(
            core,
            worker.delivery.rate,
            moked_jobs::pacing::DEFAULT_MAX_WAIT,
        )?,
    })
}

/// Runs jobs on an already connected store and queue until `shutdown` resolves.
pub async fn run_on(
    core: &CoreConfig,
    worker: &WorkerConfig,
    db: Db,
    queue: SharedQueue,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunSummary> {
    let ctx = context(core, worker, db, queue.clone())?;
    let runner = Runner::new(
        queue,
        &worker.worker_name,
        runner_config(core, worker),
        dispatcher(ctx),
    );
    Ok(runner.run(shutdown).await?)
}

/// `moked-worker run`; with `metrics_port`, also the status endpoint ([`crate::status`]).
pub async fn run(
    core: CoreConfig,
    worker: WorkerConfig,
    metrics_port: Option<u16>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunSummary> {
    use secrecy::ExposeSecret;
    let db = Db::connect(core.database_url.expose_secret()).await?;
    let queue = queue::connect(&core, &db).await?;
    if let Some(port) = metrics_port {
        crate::status::spawn(port, "worker", queue.clone()).await?;
    }
    run_on(&core, &worker, db, queue, shutdown).await
}

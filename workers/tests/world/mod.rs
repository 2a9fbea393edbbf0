//! The world of the workers' runner tests (`clock.rs`, `voice.rs`, `whatsapp.rs`): the test kit's
//! world ([`moked_testkit::World`]: the store, where the queue lives and the settings, reached
//! through `Deref`), a queue on it and the worker's settings, with the real handler context and
//! the real runner. Each test file adds the helpers of its own in an `impl World` of its own.
// Each test binary uses its part of this module.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use moked_jobs::queue::{JobDetail, SharedQueue};
use moked_jobs::retry::{RetryPolicy, RetrySchedule};
use moked_jobs::runner::{RunSummary, Runner, RunnerConfig};
use moked_jobs::store::calls::{self, CallDetail, CallStart};
use moked_jobs::store::customers::Number;
use moked_jobs::store::recordings::{Recording, get_recording};
use moked_testkit::Backend;
use moked_workers::config::WorkerConfig;
use moked_workers::handlers::Ctx;
use moked_workers::run;

/// The Twilio account of the tests.
pub const AC: &str = "AC0123456789abcdef0123456789abcdef";
/// Its Auth Token.
pub const TOKEN: &str = "test-auth-token";
/// The caller of the test calls.
pub const CALLER: &str = "+972521234567";
/// The business number they call.
pub const BUSINESS_NUMBER: &str = "+97233334444";

/// A test world, a queue on it and the worker's settings.
pub struct World {
    base: moked_testkit::World,
    /// The queue [`moked_testkit::World::core`] names.
    pub queue: SharedQueue,
    /// The worker's settings.
    pub worker: WorkerConfig,
}

moked_testkit::deref_to_world!(World, base);

impl World {
    /// `base` with a queue on it, and `worker`.
    pub async fn on(base: moked_testkit::World, worker: WorkerConfig) -> World {
        let queue = base.queue().await;
        World {
            base,
            queue,
            worker,
        }
    }

    /// A world of `backend` whose Twilio REST base is `api_base` (account [`AC`], token
    /// [`TOKEN`]) and whose jobs retry after `retry` (a `RETRY_SCHEDULE`); the worker settings of
    /// tests named `name`, with recordings in a `file://` folder of the test.
    pub async fn twilio(backend: Backend, api_base: &str, retry: &str, name: &str) -> World {
        let mut base = moked_testkit::World::new(backend).await;
        base.twilio(api_base, AC, TOKEN);
        base.core.retry = RetryPolicy::new(retry.parse::<RetrySchedule>().expect("schedule"));
        let mut worker = WorkerConfig::for_tests(name);
        worker.recordings_store = base.recordings_store();
        World::on(base, worker).await
    }

    /// The handler context with the real clients.
    pub fn context(&self) -> Ctx {
        run::context(
            &self.core,
            &self.worker,
            self.db.clone(),
            self.queue.clone(),
        )
        .expect("worker context")
    }

    /// The runner settings of this world (as `moked-worker run` reads them), fetching with a
    /// 50 ms wait.
    pub fn runner_config(&self) -> RunnerConfig {
        let mut config = run::runner_config(&self.core, &self.worker);
        config.fetch_wait = Duration::from_millis(50);
        config
    }

    /// Runs every job to done or dead with the real runner (named `name`, with `config` and
    /// `ctx`'s handlers); fails the test when that takes longer than `limit`.
    pub async fn drain_with(
        &self,
        name: &str,
        config: RunnerConfig,
        ctx: Ctx,
        limit: Duration,
    ) -> RunSummary {
        let runner = Runner::new(self.queue.clone(), name, config, run::dispatcher(ctx));
        tokio::time::timeout(limit, runner.drain(std::future::pending()))
            .await
            .unwrap_or_else(|_| panic!("the queue drains within {limit:?}"))
            .expect("runner")
    }

    /// The job `id`, which exists.
    pub async fn job(&self, id: &str) -> JobDetail {
        self.queue
            .get(id)
            .await
            .expect("get job")
            .expect("job exists")
    }

    /// The recording `sid`, which exists.
    pub async fn recording(&self, sid: &str) -> Recording {
        get_recording(&self.db, sid)
            .await
            .expect("read")
            .expect("recording row")
    }

    /// The call `call_sid` with its timeline, which exists.
    pub async fn timeline(&self, call_sid: &str) -> CallDetail {
        calls::get_call(&self.db, call_sid)
            .await
            .expect("read")
            .expect("call")
    }

    /// Records a call from [`CALLER`] to [`BUSINESS_NUMBER`] the way `call.started` does (links
    /// it to a business), ringing at `at`.
    pub async fn call_started(&self, call_sid: &str, at: DateTime<Utc>) {
        calls::record_call_started(
            &self.db,
            &CallStart {
                call_sid: call_sid.to_owned(),
                from: Number::parse(CALLER),
                to: Number::parse(BUSINESS_NUMBER),
                status: Some("ringing".into()),
                at,
            },
        )
        .await
        .expect("call recorded");
    }

    /// Closes the pool and drops a Postgres database.
    pub async fn close(self) {
        self.base.close().await;
    }
}

//! The queue conformance suite (`suite/`), run unchanged against Redis, SQLite and Postgres.
//!
//! Each test gets its own world: a fresh Redis key prefix, SQLite file or Postgres database.

mod suite;

use std::sync::Arc;

use moked_jobs::queue::SharedQueue;
use moked_jobs::queue::database::DbQueue;
use moked_jobs::queue::redis::RedisQueue;
use moked_testkit::Store;

/// A queue and what to clean up after it.
enum World {
    Redis(RedisQueue),
    Db(Store),
}

impl World {
    async fn redis() -> (World, SharedQueue) {
        let q = RedisQueue::connect(&moked_testkit::redis_url(), &moked_testkit::redis_prefix())
            .await
            .expect("connect to the test Redis");
        (World::Redis(q.clone()), Arc::new(q))
    }

    async fn sqlite() -> (World, SharedQueue) {
        let t = Store::sqlite().await;
        let q = DbQueue::new(t.db.clone()).await.expect("sqlite queue");
        (World::Db(t), Arc::new(q))
    }

    async fn postgres() -> (World, SharedQueue) {
        let t = Store::postgres().await;
        let q = DbQueue::new(t.db.clone()).await.expect("postgres queue");
        (World::Db(t), Arc::new(q))
    }

    async fn cleanup(self) {
        match self {
            World::Redis(q) => q.delete_all().await.expect("delete test keys"),
            World::Db(t) => t.close().await,
        }
    }
}

macro_rules! conformance {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (world, queue) = super::World::$backend().await;
                    super::suite::$case(queue).await;
                    world.cleanup().await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        conformance!(redis: $($case),*);
        conformance!(sqlite: $($case),*);
        conformance!(postgres: $($case),*);
    };
}

every_backend!(
    outcome_counters_add_up_across_workers_per_minute_hour_and_total,
    workers_flushing_the_same_counters_at_once_in_any_order_all_land,
    two_runners_add_what_they_finished_to_the_cluster_wide_counters,
    a_dedupe_key_inside_its_ttl_yields_one_job,
    an_expired_dedupe_key_allows_a_new_job,
    fetch_claims_due_jobs_oldest_first_and_marks_them_running,
    fetch_never_hands_out_more_than_asked,
    a_delayed_job_is_not_fetched_before_its_run_at,
    an_idle_fetch_wakes_up_on_enqueue,
    complete_moves_a_job_to_done,
    the_runner_retries_on_the_kinds_schedule_then_buries,
    a_retry_waits_for_the_scheduled_delay,
    a_permanent_error_is_dead_at_once,
    an_undecodable_payload_goes_to_dead_once_and_blocks_nothing,
    a_panicking_handler_is_retried_and_the_worker_survives,
    a_handler_gets_the_parsed_kind_and_whether_it_is_the_last_attempt,
    operators_retry_and_discard_dead_jobs,
    listing_pages_through_a_state_with_cheap_totals,
    jobs_of_a_worker_that_vanished_are_requeued_and_its_late_ack_is_ignored,
    a_runner_dropped_mid_job_is_recovered_by_another,
    the_runner_never_exceeds_its_concurrency,
    shutdown_lets_running_jobs_finish_and_fetches_nothing_new,
    shutdown_puts_back_jobs_that_outlive_the_grace_period,
    a_job_that_keeps_killing_its_workers_ends_dead,
    prune_deletes_old_done_jobs_and_keeps_dead_ones,
    prune_dead_keeps_the_newest_dead_jobs_up_to_the_cap_and_none_past_retention,
    two_runners_share_a_backlog_and_run_each_job_exactly_once,
    an_operator_retry_gives_a_dead_job_a_fresh_schedule,
    held_lists_the_jobs_a_session_runs_and_nothing_else,
    a_failed_ack_is_retried_until_it_lands,
    a_job_whose_ack_never_lands_goes_back_within_the_stale_window,
    shutdown_keeps_the_session_alive_through_the_grace_period,
);

//! The clean-up of test worlds, callable from a `Drop` (so it also runs while a failed test
//! unwinds): each runs on a thread with a tokio runtime of its own, because `Drop` cannot await
//! and the test's runtime may be the one dropping, or already shutting down.

use std::future::Future;
use std::time::Duration;

use moked_jobs::queue::redis::RedisQueue;
use sqlx::Connection;

use crate::services::admin_url;

/// Runs the future `make` builds to completion on a new thread with its own runtime, and waits
/// for it. Nothing is reported: a clean-up that cannot run leaves what it would have removed.
pub fn on_own_runtime<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(make());
        }
    })
    .join();
}

/// Deletes every key under `prefix:` at the Redis `url` (queue, dedupe, pacing and rate-limit
/// keys alike), blocking. A Redis that is gone (one a fault test stopped) leaves nothing to
/// delete: connecting gives up after 2 s.
pub fn delete_prefix(url: String, prefix: String) {
    on_own_runtime(move || async move {
        let connect = RedisQueue::connect(&url, &prefix);
        if let Ok(Ok(q)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            let _ = tokio::time::timeout(Duration::from_secs(10), q.delete_all()).await;
        }
    });
}

/// `DROP DATABASE name WITH (FORCE)` on the test Postgres (ending the connections still open on
/// it); failures are ignored.
pub async fn drop_database(name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await;
        admin.close().await.ok();
    }
}

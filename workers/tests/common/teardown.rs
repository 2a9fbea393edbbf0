//! Teardown of test worlds whose queue lives in Redis under a key prefix of their own.

use std::time::Duration;

use moked_jobs::queue::redis::RedisQueue;

/// Deletes every key under `prefix` at `url`, from a `Drop`: on a thread with its own runtime,
/// because `Drop` cannot await and the test's runtime may be shutting down. A Redis that is
/// gone (one a fault test stopped) leaves nothing to delete: connecting gives up after 2 s.
pub fn delete_prefix(url: String, prefix: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let connect = RedisQueue::connect(&url, &prefix);
            if let Ok(Ok(q)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                let _ = tokio::time::timeout(Duration::from_secs(10), q.delete_all()).await;
            }
        });
    })
    .join();
}

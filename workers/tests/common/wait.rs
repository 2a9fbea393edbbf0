//! Waiting on a condition with a deadline, for the tests that watch real processes (the
//! process and fault tests): the condition is re-checked on a short interval, and the test
//! fails with what it waited for when the deadline passes.

use std::time::{Duration, Instant};

/// Re-checks `cond` every 20 ms until it holds or `limit` passes; returns the time it took.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
    }
}

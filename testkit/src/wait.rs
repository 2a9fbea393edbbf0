//! Waiting on a condition with a deadline, for tests that watch work in other processes or
//! tasks (the real worker binary, a server being restarted, a browser): the condition is
//! re-checked on a short interval, and the test fails naming what it waited for when the
//! deadline passes. Work a test can await (a runner's drain) is awaited instead.

use std::future::Future;
use std::time::{Duration, Instant};

/// Re-checks `cond` every 20 ms until it holds or `limit` passes; returns the time it took.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    poll(Duration::from_millis(20), limit, what, || {
        let checked = cond();
        async move { checked.await.then_some(()) }
    })
    .await;
    start.elapsed()
}

/// Polls `f` every 50 ms until it yields a value, for at most `limit`; returns the value.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(Duration::from_millis(50), limit, what, f).await
}

async fn poll<T, F, Fut>(every: Duration, limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
    }
}

//! Pacing: at most one event per `interval` per key (e.g. 20 WhatsApp messages a second per
//! sender number), shared by every worker process on one Redis. The [`Rate`] type and its one
//! grammar ([`parse_rate`]: `20/s`, `60/min`, `1000/h`, `off`) live here too; the intake's rate
//! limits use the same.
//!
//! # Algorithm: GCRA with reservations
//!
//! The generic cell rate algorithm keeps one number per key, the *theoretical arrival time*
//! (`tat`): the earliest time the next event may happen. An event arriving at `now` is due at
//! `max(tat, now)`; it **reserves** that slot by moving `tat` one interval further, and waits
//! until its slot comes. So N concurrent callers get N distinct slots, one interval apart, in one
//! round trip each — no retry storms, no lost wake-ups — and the long-run rate is exactly one
//! event per interval whatever the number of workers. Events are evenly spaced (no burst): the
//! provider's own queue absorbs bursts, ours only guarantees the average.
//!
//! A caller whose slot is further away than `max_wait` reserves nothing and is told how long to
//! stay away ([`Paced::RetryAfter`]), so a large backlog is not held inside worker slots.
//!
//! # Backends
//!
//! * **Redis** (when the queue is Redis, so every worker shares one limit): one Lua script
//!   (`lua/pace.lua`) reads and moves `tat` atomically using the server's clock (`TIME`), so the
//!   workers' clocks never matter. Key: `{prefix}:pace:{key}` (the queue's prefix), a string of
//!   microseconds since the epoch that expires one second after its last slot (an idle key costs
//!   nothing).
//! * **In-process** (database queue): the same algorithm on a mutex-guarded map; every process
//!   paces on its own, so N worker processes may reach N times the rate.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;
use tokio::time::Instant;

mod rate;
pub use rate::{MAX_PER_SECOND, Rate, RateError, parse_rate};

/// How long a caller may be made to wait for its slot before it is told to come back later.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

static PACE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("pacing/pace.lua")));

/// Why a caller may not go now.
#[derive(Debug, thiserror::Error)]
pub enum Paced {
    /// The next free slot is further away than the caller may wait; nothing was reserved.
    #[error("over the rate: next slot in {}ms", .0.as_millis())]
    RetryAfter(Duration),
    /// The shared limiter is unreachable.
    #[error("pacing limiter unavailable: {0}")]
    Backend(#[from] redis::RedisError),
}

/// A pacer: [`Pacer::acquire`] returns when the caller's slot has come.
#[derive(Clone)]
pub struct Pacer {
    inner: Arc<Inner>,
}

struct Inner {
    rate: Option<Rate>,
    max_wait: Duration,
    backend: Backend,
}

enum Backend {
    Local(Mutex<HashMap<String, Instant>>),
    Redis(Box<RedisBackend>),
}

struct RedisBackend {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("rate", &self.inner.rate)
            .field("shared", &self.is_shared())
            .finish()
    }
}

impl Pacer {
    /// An in-process pacer (`rate` `None`: never waits).
    pub fn local(rate: Option<Rate>, max_wait: Duration) -> Pacer {
        Pacer {
            inner: Arc::new(Inner {
                rate,
                max_wait,
                backend: Backend::Local(Mutex::new(HashMap::new())),
            }),
        }
    }

    /// A pacer shared through the Redis at `url`, keys under `{prefix}:pace:`. Connects lazily
    /// (on the first [`Pacer::acquire`]), so building it never blocks.
    pub fn redis(
        url: &str,
        prefix: &str,
        rate: Option<Rate>,
        max_wait: Duration,
    ) -> Result<Pacer, redis::RedisError> {
        Ok(Pacer {
            inner: Arc::new(Inner {
                rate,
                max_wait,
                backend: Backend::Redis(Box::new(RedisBackend {
                    client: crate::queue::redis::client(url)?,
                    conn: OnceCell::new(),
                    prefix: prefix.to_owned(),
                })),
            }),
        })
    }

    /// The pacer that fits the queue: shared through Redis when the queue is Redis, else
    /// in-process.
    pub fn for_queue(
        core: &crate::config::CoreConfig,
        rate: Option<Rate>,
        max_wait: Duration,
    ) -> Result<Pacer, redis::RedisError> {
        use secrecy::ExposeSecret;
        match &core.queue {
            crate::config::QueueBackend::Redis(url) => {
                Pacer::redis(url.expose_secret(), &core.queue_prefix, rate, max_wait)
            }
            crate::config::QueueBackend::Database => Ok(Pacer::local(rate, max_wait)),
        }
    }

    /// The rate (`None`: not paced).
    pub fn rate(&self) -> Option<Rate> {
        self.inner.rate
    }

    /// Whether every process on the same Redis shares this limit.
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Redis(_))
    }

    /// Reserves the next slot for `key` and waits for it. Returns how long it waited.
    pub async fn acquire(&self, key: &str) -> Result<Duration, Paced> {
        let Some(rate) = self.inner.rate else {
            return Ok(Duration::ZERO);
        };
        let wait = match &self.inner.backend {
            Backend::Local(map) => reserve_local(map, key, rate, self.inner.max_wait)?,
            Backend::Redis(redis) => {
                let conn = redis
                    .conn
                    .get_or_try_init(|| ConnectionManager::new(redis.client.clone()))
                    .await?;
                reserve_redis(
                    &mut conn.clone(),
                    &format!("{}:pace:{key}", redis.prefix),
                    rate,
                    self.inner.max_wait,
                )
                .await?
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(wait)
    }
}

fn reserve_local(
    map: &Mutex<HashMap<String, Instant>>,
    key: &str,
    rate: Rate,
    max_wait: Duration,
) -> Result<Duration, Paced> {
    let now = Instant::now();
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Forget idle keys now and then so the map stays small.
    if map.len() > 1024 {
        map.retain(|_, tat| *tat > now);
    }
    let tat = map.get(key).copied().unwrap_or(now).max(now);
    let wait = tat - now;
    if wait > max_wait {
        return Err(Paced::RetryAfter(wait));
    }
    map.insert(key.to_owned(), tat + rate.interval());
    Ok(wait)
}

async fn reserve_redis(
    conn: &mut ConnectionManager,
    key: &str,
    rate: Rate,
    max_wait: Duration,
) -> Result<Duration, Paced> {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let (granted, wait_us): (i64, i64) = PACE
        .key(key)
        .arg(micros(rate.interval()))
        .arg(micros(max_wait))
        .invoke_async(conn)
        .await?;
    let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
    if granted == 1 {
        Ok(wait)
    } else {
        Err(Paced::RetryAfter(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn local_slots_are_one_interval_apart_and_far_slots_are_refused() {
        let pacer = Pacer::local(Rate::per_second(10.0), Duration::from_millis(250));
        let start = Instant::now();
        let Backend::Local(map) = &pacer.inner.backend else {
            unreachable!("a local pacer")
        };
        // Reserve without sleeping, as three concurrent callers would.
        let rate = Rate::per_second(10.0).unwrap();
        let waits: Vec<Duration> = (0..3)
            .map(|_| reserve_local(map, "k", rate, Duration::from_millis(250)).unwrap())
            .collect();
        assert_eq!(
            waits,
            [0, 100, 200].map(Duration::from_millis).to_vec(),
            "three callers, three slots"
        );
        // The fourth slot is 300 ms away: over the 250 ms limit, nothing reserved.
        match pacer.acquire("k").await {
            Err(Paced::RetryAfter(d)) => assert_eq!(d, Duration::from_millis(300)),
            other => panic!("expected RetryAfter, got {other:?}"),
        }
        // Another key is independent.
        assert_eq!(pacer.acquire("other").await.unwrap(), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(pacer.acquire("k").await.unwrap(), Duration::ZERO);
        assert!(Instant::now() - start >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn an_unpaced_pacer_never_waits() {
        let pacer = Pacer::local(None, DEFAULT_MAX_WAIT);
        for _ in 0..100 {
            assert_eq!(pacer.acquire("k").await.unwrap(), Duration::ZERO);
        }
    }
}

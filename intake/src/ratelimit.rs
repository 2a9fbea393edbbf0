//! Rate limits shaped for Twilio's traffic.
//!
//! Genuine webhooks all come from Twilio's few shared addresses, so a per-IP limit on *signed*
//! traffic would throttle a busy call centre (the original system answered 429 after 50
//! callbacks an hour). Instead four keyed limits, each `N/sec|min|hour` or off:
//!
//! | limit | key | counted | over it |
//! |---|---|---|---|
//! | [`Limit::Unverified`] | client IP (IPv6 per /64) | failed signature / secret checks | 429 + `Retry-After` for the failing requests; checked after verifying, so a correctly signed request is never refused by it ([`crate::signature`]) |
//! | [`Limit::Calls`] | caller number (`From`) | signed incoming calls | `<Reject reason="busy"/>`, nothing enqueued |
//! | [`Limit::Recordings`] | CallSid | signed recording callbacks | 429 |
//! | [`Limit::Status`] | CallSid / MessageSid | signed status callbacks | 429 |
//!
//! The client IP is the **right-most** `X-Forwarded-For` entry — the one the platform's router
//! appends — else the TCP peer. Entries a client adds itself sit to the left and are ignored, so
//! they cannot spread its failures over many keys. (Served without a proxy in front, the
//! header is entirely client-controlled; run the intake behind one.)
//!
//! ## Algorithm: GCRA
//! Each key keeps one timestamp, its *theoretical arrival time* `tat`. With emission interval
//! `T = window / N`, an event at `now` is allowed when `max(tat, now) + T <= now + window`, and
//! then stores that sum as the new `tat`; otherwise it is refused and `Retry-After` is the
//! excess. This allows bursts of `N` and a steady `N` per window, with O(1) state per key.
//!
//! ## Backends
//! * **Per process** (no Redis): a `HashMap` per limit behind a mutex, pruned of idle keys
//!   when it grows.
//! * **Redis** (the queue is in Redis): one Lua script ([`GCRA_SCRIPT`]) per event on
//!   `{QUEUE_PREFIX}:ratelimit:{limit}:{key}`, timed by the Redis server's clock, so all intake
//!   processes share the counters. To keep a Redis round trip off every refused request, the
//!   "is this IP already over?" check ([`Limiter::peek`]) reads a local cache that each counted
//!   failure refreshes from the script's answer. Another process learns of a blocked IP from
//!   its own first failure with it, which the script already answers over the limit (429).
//!
//! A limiter that cannot reach Redis lets the event through (the signature is still verified;
//! limits protect capacity, they are not authentication) and logs a warning.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use moked_jobs::pacing::Rate;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::config::RateLimits;

/// Keys longer than this are hashed (an attacker-chosen `X-Forwarded-For` could be huge).
const MAX_KEY_LEN: usize = 128;

/// A map is pruned of idle keys when it grows past this many entries (and then past twice
/// what survived the last pruning).
const PRUNE_AT: usize = 10_000;

/// How long a Redis limiter call may take before the event is let through.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared GCRA step, in microseconds of the Redis server's clock.
///
/// `KEYS[1]` the key; `ARGV[1]` the emission interval, `ARGV[2]` the window. Returns
/// `{allowed, wait, next}`: `allowed` 1 or 0; `wait` how long until this event would have been
/// allowed (0 when it was); `next` how long until another event would be allowed.
pub const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
if new_tat > now + window then
  local wait = new_tat - now - window
  return {0, wait, wait}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
local next_wait = new_tat + interval - now - window
if next_wait < 0 then next_wait = 0 end
return {1, 0, next_wait}
";

/// One of the four limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Failed signature checks per client IP.
    Unverified,
    /// Signed incoming calls per caller number.
    Calls,
    /// Signed recording callbacks per CallSid.
    Recordings,
    /// Signed status callbacks per CallSid / MessageSid.
    Status,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::Unverified,
        Limit::Calls,
        Limit::Recordings,
        Limit::Status,
    ];

    /// The name used in Redis keys and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Limit::Unverified => "unverified",
            Limit::Calls => "calls",
            Limit::Recordings => "recordings",
            Limit::Status => "status",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn rate(self, limits: &RateLimits) -> Option<Rate> {
        match self {
            Limit::Unverified => limits.unverified,
            Limit::Calls => limits.calls,
            Limit::Recordings => limits.recordings,
            Limit::Status => limits.status,
        }
    }
}

/// The verdict on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Over the limit; try again after this long.
    Limited {
        /// When the next event would be allowed.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the event may proceed.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// The outcome of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    decision: Decision,
    /// The new `tat` to store (only when allowed and counted).
    store: Option<Instant>,
    /// How long until another event would be allowed after this one.
    next: Duration,
}

/// One GCRA step at `now` for a key whose stored `tat` is `tat` (see the module doc).
fn gcra(tat: Option<Instant>, now: Instant, rate: Rate) -> Step {
    let interval = rate.interval();
    let tat = tat.map_or(now, |t| t.max(now));
    let new_tat = tat + interval;
    let limit = now + rate.per();
    if new_tat > limit {
        let wait = new_tat - limit;
        return Step {
            decision: Decision::Limited { retry_after: wait },
            store: None,
            next: wait,
        };
    }
    Step {
        decision: Decision::Allowed,
        store: Some(new_tat),
        next: (new_tat + interval).saturating_duration_since(limit),
    }
}

/// A map of keys to instants that forgets keys once their instant has passed, pruning when it
/// grows (so a stream of unique keys cannot exhaust memory).
#[derive(Debug)]
struct Instants {
    map: HashMap<String, Instant>,
    prune_at: usize,
}

impl Default for Instants {
    fn default() -> Self {
        Instants {
            map: HashMap::new(),
            prune_at: PRUNE_AT,
        }
    }
}

impl Instants {
    fn get(&self, key: &str) -> Option<Instant> {
        self.map.get(key).copied()
    }

    fn set(&mut self, key: &str, at: Instant, now: Instant) {
        match self.map.get_mut(key) {
            Some(slot) => *slot = at,
            None => {
                self.map.insert(key.to_owned(), at);
                if self.map.len() > self.prune_at {
                    self.map.retain(|_, t| *t > now);
                    self.prune_at = (self.map.len() * 2).max(PRUNE_AT);
                }
            }
        }
    }
}

/// The keyed limiter; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    limits: RateLimits,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<[Mutex<Instants>; 4]>),
    Redis(Arc<RedisLimiter>),
}

struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    /// Keys known to be over their limit, and until when (local clock).
    blocked: [Mutex<Instants>; 4],
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .field(
                "backend",
                &match self.backend {
                    Backend::Local(_) => "local",
                    Backend::Redis(_) => "redis",
                },
            )
            .finish()
    }
}

fn lock(m: &Mutex<Instants>) -> std::sync::MutexGuard<'_, Instants> {
    // A panic while holding the lock cannot leave the map inconsistent: keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Limiter {
    /// Per-process counters.
    pub fn local(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            backend: Backend::Local(Arc::new(Default::default())),
        }
    }

    /// Counters shared through Redis at `url`, under `{prefix}:ratelimit:`.
    pub async fn redis(
        url: &str,
        prefix: &str,
        limits: RateLimits,
    ) -> Result<Limiter, redis::RedisError> {
        let client = moked_jobs::queue::redis::client(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_connection_timeout(Some(REDIS_TIMEOUT));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Limiter {
            limits,
            backend: Backend::Redis(Arc::new(RedisLimiter {
                conn,
                prefix: prefix.to_owned(),
                script: redis::Script::new(GCRA_SCRIPT),
                blocked: Default::default(),
            })),
        })
    }

    /// The limiter the settings ask for: shared through Redis (under `QUEUE_PREFIX`) when the
    /// queue is in Redis, per process otherwise.
    pub async fn connect(
        core: &moked_jobs::config::CoreConfig,
        limits: RateLimits,
    ) -> Result<Limiter, redis::RedisError> {
        use secrecy::ExposeSecret;
        match &core.queue {
            moked_jobs::config::QueueBackend::Redis(url) => {
                Limiter::redis(url.expose_secret(), &core.queue_prefix, limits).await
            }
            moked_jobs::config::QueueBackend::Database => Ok(Limiter::local(limits)),
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Whether `key` is already over `limit`, without counting anything.
    pub fn peek(&self, limit: Limit, key: &str) -> Decision {
        let Some(rate) = limit.rate(&self.limits) else {
            return Decision::Allowed;
        };
        let key = bounded(key);
        let now = Instant::now();
        counted(
            limit,
            match &self.backend {
                Backend::Local(maps) => {
                    gcra(lock(&maps[limit.index()]).get(&key), now, rate).decision
                }
                Backend::Redis(r) => match lock(&r.blocked[limit.index()]).get(&key) {
                    Some(until) if until > now => Decision::Limited {
                        retry_after: until - now,
                    },
                    _ => Decision::Allowed,
                },
            },
        )
    }

    /// Counts one event for `key`; refused (and not counted) when over `limit`.
    pub async fn hit(&self, limit: Limit, key: &str) -> Decision {
        let Some(rate) = limit.rate(&self.limits) else {
            return Decision::Allowed;
        };
        let key = bounded(key);
        counted(
            limit,
            match &self.backend {
                Backend::Local(maps) => {
                    let now = Instant::now();
                    let mut map = lock(&maps[limit.index()]);
                    let step = gcra(map.get(&key), now, rate);
                    if let Some(tat) = step.store {
                        map.set(&key, tat, now);
                    }
                    step.decision
                }
                Backend::Redis(r) => r.hit(limit, &key, rate).await,
            },
        )
    }

    /// Forgets every local counter (tests; Redis counters expire on their own).
    pub fn reset_local(&self) {
        let maps: &[Mutex<Instants>; 4] = match &self.backend {
            Backend::Local(maps) => maps,
            Backend::Redis(r) => &r.blocked,
        };
        for limit in Limit::ALL {
            *lock(&maps[limit.index()]) = Instants::default();
        }
    }
}

impl RedisLimiter {
    async fn hit(&self, limit: Limit, key: &str, rate: Rate) -> Decision {
        let redis_key = format!("{}:ratelimit:{}:{key}", self.prefix, limit.name());
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let mut call = self.script.key(&redis_key);
        call.arg(micros(rate.interval())).arg(micros(rate.per()));
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT,
            call.invoke_async::<(i64, i64, i64)>(&mut conn),
        )
        .await;
        let (allowed, wait, next) = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(error)) => {
                tracing::warn!(limit = limit.name(), %error, "rate limiter unavailable; allowing");
                return Decision::Allowed;
            }
            Err(_) => {
                tracing::warn!(limit = limit.name(), "rate limiter timed out; allowing");
                return Decision::Allowed;
            }
        };
        let as_duration = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        let now = Instant::now();
        let next = as_duration(next);
        // Only the unverified limit is ever peeked at; the others always ask Redis.
        if limit == Limit::Unverified && !next.is_zero() {
            lock(&self.blocked[limit.index()]).set(key, now + next, now);
        }
        if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: as_duration(wait),
            }
        }
    }
}

/// Keeps keys short: long ones are replaced by a hash.
fn bounded(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_LEN {
        std::borrow::Cow::Borrowed(key)
    } else {
        use sha2::Digest;
        std::borrow::Cow::Owned(format!(
            "h:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        ))
    }
}

/// The client address used by [`Limit::Unverified`]: the right-most `X-Forwarded-For` entry,
/// else the TCP peer, else `unknown`. IPv6 addresses are keyed by their /64 (one subscriber
/// usually holds a whole /64); IPv4-mapped IPv6 is read as IPv4.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    match client_ip(headers, peer.map(|p| p.ip())) {
        Some(ip) => ip_key(ip),
        None => "unknown".to_owned(),
    }
}

/// The client's address: the right-most `X-Forwarded-For` entry (the one the platform's router
/// appended), else the TCP peer; IPv4-mapped IPv6 is read as IPv4. Shared by the rate limits
/// and the operators' audit log.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(parse_ip)
        .or(peer)
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
}

/// An IP, also in `ip:port` / `[ip]:port` form (some routers append the port).
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Counts a refusal in `moked_rate_limited_total{limit}` and passes the decision on.
fn counted(limit: Limit, decision: Decision) -> Decision {
    if let Decision::Limited { .. } = decision {
        metrics::counter!("moked_rate_limited_total", "limit" => limit.name()).increment(1);
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_right_most_forwarded_address_else_the_peer() {
        let peer: Option<IpAddr> = "10.0.0.9".parse().ok();
        let mut h = HeaderMap::new();
        assert_eq!(client_ip(&h, peer), peer);
        h.append("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        assert_eq!(client_ip(&h, peer), "1.2.3.4".parse().ok());
        h.append("x-forwarded-for", "[::ffff:5.6.7.8]:443".parse().unwrap());
        assert_eq!(client_ip(&h, peer), "5.6.7.8".parse().ok());
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(
                "x-forwarded-for",
                http::HeaderValue::from_str(v).expect("test header"),
            );
        }
        h
    }

    #[test]
    fn the_right_most_forwarded_entry_is_the_client() {
        let peer: Option<SocketAddr> = "10.1.1.1:5000".parse().ok();
        assert_eq!(client_key(&headers(&[]), peer), "10.1.1.1");
        assert_eq!(
            client_key(&headers(&["1.2.3.4, 10.0.0.9, 203.0.113.7"]), peer),
            "203.0.113.7"
        );
        assert_eq!(
            client_key(&headers(&["1.2.3.4", "203.0.113.8"]), peer),
            "203.0.113.8"
        );
        assert_eq!(client_key(&headers(&["garbage"]), peer), "10.1.1.1");
        assert_eq!(
            client_key(&headers(&["203.0.113.9:443"]), peer),
            "203.0.113.9"
        );
        assert_eq!(
            client_key(&headers(&["2001:db8:1:2:3:4:5:6"]), peer),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_key(&headers(&["::ffff:1.2.3.4"]), None), "1.2.3.4");
        assert_eq!(client_key(&headers(&[]), None), "unknown");
    }

    #[test]
    fn gcra_allows_a_burst_of_n_then_one_per_interval() {
        let rate = Rate::per_minute(3);
        let t0 = Instant::now();
        let mut tat = None;
        for _ in 0..3 {
            let step = gcra(tat, t0, rate);
            assert_eq!(step.decision, Decision::Allowed);
            tat = step.store;
        }
        // The third event used the last slot: another now would wait one interval.
        assert_eq!(
            gcra(tat, t0, rate).decision,
            Decision::Limited {
                retry_after: Duration::from_secs(20)
            }
        );
        let later = gcra(tat, t0 + Duration::from_secs(20), rate);
        assert_eq!(later.decision, Decision::Allowed);
        assert_eq!(later.next, Duration::from_secs(20));
    }

    #[tokio::test]
    async fn local_limits_count_per_key_and_off_never_limits() {
        let limits = RateLimits {
            calls: Some(Rate::per_minute(2)),
            ..RateLimits::OFF
        };
        let l = Limiter::local(limits);
        assert!(l.hit(Limit::Calls, "+972500000001").await.is_allowed());
        assert!(l.hit(Limit::Calls, "+972500000001").await.is_allowed());
        assert!(!l.peek(Limit::Calls, "+972500000001").is_allowed());
        assert!(!l.hit(Limit::Calls, "+972500000001").await.is_allowed());
        assert!(l.hit(Limit::Calls, "+972500000002").await.is_allowed());
        for _ in 0..100 {
            assert!(l.hit(Limit::Status, "CA1").await.is_allowed());
        }
        l.reset_local();
        assert!(l.hit(Limit::Calls, "+972500000001").await.is_allowed());
    }

    #[test]
    fn maps_forget_idle_keys_when_they_grow() {
        let mut m = Instants::default();
        let now = Instant::now();
        for i in 0..(PRUNE_AT + 1) {
            m.set(&format!("k{i}"), now, now);
        }
        assert!(m.map.len() <= PRUNE_AT, "{}", m.map.len());
        assert_eq!(bounded(&"x".repeat(500)).len(), 2 + 64);
    }
}

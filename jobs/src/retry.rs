//! Retry policy as data.
//!
//! A job kind has a [`RetrySchedule`]: the delays before the 2nd, 3rd, … attempt. The default is
//! 5 s, 30 s, 2 min, 10 min, 1 h, 6 h (7 attempts in all, spread over ~7 h 13 min), each with
//! *full jitter* (a uniform draw in `[0, delay]`, AWS's "full jitter") so that a burst of
//! failures does not come back as a burst. A kind's schedule can be overridden by env, e.g.
//! `RETRY_SCHEDULE_WHATSAPP_SEND=5s,30s,2m`.
//!
//! Handlers classify their failures as a [`JobError`]: `Transient` follows the schedule,
//! `RetryAfter` waits what the remote side asked for (bounded, still counting an attempt), and
//! `Permanent` sends the job to dead at once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use crate::kinds::JobKind;

/// The longest `Retry-After` honoured; a remote asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// How a job attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Try again later, per the kind's schedule.
    #[error("{0}")]
    Transient(String),
    /// Try again after this delay (e.g. an HTTP `Retry-After`).
    #[error("{reason} (retry after {}s)", after.as_secs_f64())]
    RetryAfter {
        /// How long the remote asked us to wait.
        after: Duration,
        /// What happened.
        reason: String,
    },
    /// Never retry: the job goes to dead.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A transient error from anything displayable.
    pub fn transient(e: impl fmt::Display) -> Self {
        JobError::Transient(e.to_string())
    }

    /// A permanent error from anything displayable.
    pub fn permanent(e: impl fmt::Display) -> Self {
        JobError::Permanent(e.to_string())
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run again after this delay.
    RetryIn(Duration),
    /// Give up: dead.
    Dead,
}

/// The delays between attempts of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            [5, 30, 120, 600, 3600, 6 * 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// A schedule from explicit delays.
    pub fn new(delays: Vec<Duration>) -> Self {
        RetrySchedule(delays)
    }

    /// The delays.
    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// Attempts in all (the first run plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// Whether attempt number `attempts` (1-based) is the last this schedule allows: its
    /// failure, whatever the error, is dead ([`RetrySchedule::next`]).
    pub fn is_last_attempt(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts()
    }

    /// Decides what follows the failure of attempt number `attempts` (1-based).
    pub fn next(&self, attempts: u32, error: &JobError, rng: &mut impl Rng) -> Next {
        if matches!(error, JobError::Permanent(_)) || self.is_last_attempt(attempts) {
            return Next::Dead;
        }
        match error {
            JobError::RetryAfter { after, .. } => Next::RetryIn((*after).min(MAX_RETRY_AFTER)),
            _ => {
                let base = self.0[(attempts as usize).saturating_sub(1).min(self.0.len() - 1)];
                Next::RetryIn(full_jitter(base, rng))
            }
        }
    }
}

/// A uniform draw in `[0, base]` (millisecond resolution).
fn full_jitter(base: Duration, rng: &mut impl Rng) -> Duration {
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=ms))
}

/// A schedule string that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{input}` is not a retry schedule (want durations like 5s,30s,2m,1h): {reason}")]
pub struct ScheduleError {
    input: String,
    reason: String,
}

impl FromStr for RetrySchedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ScheduleError {
            input: s.to_owned(),
            reason,
        };
        let delays = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| parse_duration(p).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err(err("no delays given".into()));
        }
        Ok(RetrySchedule(delays))
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| format_duration(*d)).collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` does not start with a whole number"))?;
    let secs = |k: u64| Duration::from_secs(n.saturating_mul(k));
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => secs(1),
        "m" | "min" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (use ms, s, m, h, d)"
            ));
        }
    })
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The retry schedule of every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    default: RetrySchedule,
    per_kind: BTreeMap<JobKind, RetrySchedule>,
}

impl RetryPolicy {
    /// Every kind on `default`.
    pub fn new(default: RetrySchedule) -> Self {
        RetryPolicy {
            default,
            per_kind: BTreeMap::new(),
        }
    }

    /// Overrides one kind.
    pub fn with(mut self, kind: JobKind, schedule: RetrySchedule) -> Self {
        self.per_kind.insert(kind, schedule);
        self
    }

    /// The schedule of `kind`.
    pub fn schedule(&self, kind: JobKind) -> &RetrySchedule {
        self.per_kind.get(&kind).unwrap_or(&self.default)
    }
}

/// What a caught panic said (its `&str` or `String` payload), for the error that replaces it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_schedule_allows_seven_attempts_then_dead() {
        let s = RetrySchedule::default();
        let mut rng = StdRng::seed_from_u64(7);
        let e = JobError::transient("boom");
        assert_eq!(s.max_attempts(), 7);
        for (attempt, cap) in (1..=6).zip([5u64, 30, 120, 600, 3600, 21_600]) {
            match s.next(attempt, &e, &mut rng) {
                Next::RetryIn(d) => assert!(d <= Duration::from_secs(cap), "{attempt}: {d:?}"),
                Next::Dead => panic!("attempt {attempt} must retry"),
            }
        }
        assert_eq!(s.next(7, &e, &mut rng), Next::Dead);
    }

    #[test]
    fn permanent_is_dead_at_once_and_retry_after_is_honoured_but_bounded() {
        let s = RetrySchedule::default();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            s.next(1, &JobError::permanent("21211"), &mut rng),
            Next::Dead
        );
        let ra = |secs| JobError::RetryAfter {
            after: Duration::from_secs(secs),
            reason: "429".into(),
        };
        assert_eq!(
            s.next(1, &ra(42), &mut rng),
            Next::RetryIn(Duration::from_secs(42))
        );
        assert_eq!(
            s.next(2, &ra(10 * 86_400), &mut rng),
            Next::RetryIn(MAX_RETRY_AFTER)
        );
        assert_eq!(s.next(7, &ra(1), &mut rng), Next::Dead);
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        let s: RetrySchedule = "10s".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let draws: Vec<Duration> = (0..200)
            .map(|_| match s.next(1, &JobError::transient("x"), &mut rng) {
                Next::RetryIn(d) => d,
                Next::Dead => unreachable!(),
            })
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_secs(2)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(8)));
    }

    #[test]
    fn schedules_parse_and_print() {
        let s: RetrySchedule = "5s, 30s,2m,1h,500ms".parse().unwrap();
        assert_eq!(s.to_string(), "5s,30s,2m,1h,500ms");
        assert!("".parse::<RetrySchedule>().is_err());
        assert!("5x".parse::<RetrySchedule>().is_err());
        assert!("s".parse::<RetrySchedule>().is_err());
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
    }
}

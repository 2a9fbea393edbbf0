//! [`Rate`]: how many events per second, minute or hour, written the same way in every rate
//! setting (`WHATSAPP_RATE`, the intake's `RATE_LIMIT_*`) and parsed by one function,
//! [`parse_rate`].
//!
//! # Grammar
//!
//! * `N/unit`: `N` a positive number (`20/s`, `0.5/s`, `60/min`, `1000/h`) and `unit` one of
//!   `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hour`; any case, spaces allowed around
//!   both parts.
//! * A bare `N` is per second (`20` is `20/s`).
//! * `off`, `none` and a zero `N` mean "no rate" (`None`: not paced, not limited).
//! * At most [`MAX_PER_SECOND`] events a second (one a microsecond, the pacers' resolution).
//!
//! Anything else is one [`RateError`], quoting the value. A whole `N` keeps its window: `60/min`
//! is a burst of 60 in any minute for a limit ([`Rate::count`] per [`Rate::per`]) and one event a
//! second for a pacer ([`Rate::interval`]); a fractional `N` is one event every `unit / N`
//! (`0.5/s`: one every 2 s).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The most events a second a rate may allow.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;

/// A rate: [`Rate::count`] events per [`Rate::per`], evenly one every [`Rate::interval`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    per: Duration,
}

/// A rate setting that does not parse (the one error of the grammar).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a rate (use N/s, N/min or N/hour, e.g. 20/s or 60/min, at most {max}/s; or off)",
    max = MAX_PER_SECOND
)]
pub struct RateError(pub String);

impl Rate {
    /// `count` per minute.
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `n` events a second (`None` unless `n` is positive, finite and at most
    /// [`MAX_PER_SECOND`]).
    pub fn per_second(n: f64) -> Option<Rate> {
        Rate::per_unit(n, Duration::from_secs(1))
    }

    /// `n` events per `unit`: a whole `n` keeps `unit` as its window, a fractional one becomes
    /// one event every `unit / n` (to the microsecond).
    fn per_unit(n: f64, unit: Duration) -> Option<Rate> {
        let per_second = n / unit.as_secs_f64();
        if !(n.is_finite() && n > 0.0 && per_second <= MAX_PER_SECOND) {
            return None;
        }
        if n.fract() == 0.0 && n <= f64::from(u32::MAX) {
            return Some(Rate {
                count: n as u32,
                per: unit,
            });
        }
        let micros = (unit.as_secs_f64() * 1e6 / n).round();
        (micros < u64::MAX as f64).then(|| Rate {
            count: 1,
            per: Duration::from_micros((micros as u64).max(1)),
        })
    }

    /// Events allowed per window (also the burst of a limit).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The window.
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The steady spacing of events (`per / count`), at least one microsecond.
    pub fn interval(&self) -> Duration {
        (self.per / self.count.max(1)).max(Duration::from_micros(1))
    }

    /// Events per second.
    pub fn events_per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            _ if self.per.subsec_nanos() != 0 => write!(f, "{}/sec", self.events_per_second()),
            1 => write!(f, "{}/sec", self.count),
            60 => write!(f, "{}/min", self.count),
            3600 => write!(f, "{}/hour", self.count),
            _ => write!(f, "{}/sec", self.events_per_second()),
        }
    }
}

/// Parses a rate setting (see the module doc); `Ok(None)` is "off".
pub fn parse_rate(value: &str) -> Result<Option<Rate>, RateError> {
    let bad = || RateError(value.trim().to_owned());
    let text = value.trim().to_ascii_lowercase();
    if text == "off" || text == "none" {
        return Ok(None);
    }
    let (n, unit) = match text.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (text.as_str(), "s"),
    };
    let seconds = match unit {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        _ => return Err(bad()),
    };
    let n: f64 = n.parse().map_err(|_| bad())?;
    if n == 0.0 {
        return Ok(None);
    }
    Rate::per_unit(n, Duration::from_secs(seconds))
        .map(Some)
        .ok_or_else(bad)
}

impl FromStr for Rate {
    type Err = RateError;

    /// A rate that is on (`off` is an error here).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rate(s)?.ok_or_else(|| RateError(s.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Option<(u32, Duration)> {
        parse_rate(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .map(|r| (r.count(), r.per()))
    }

    #[test]
    fn every_unit_spelling_parses_and_a_bare_number_is_per_second() {
        let (sec, min, hour) = (
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        for (text, expected) in [
            ("20", (20, sec)),
            ("20/s", (20, sec)),
            (" 5 / SEC ", (5, sec)),
            ("5/second", (5, sec)),
            ("60/min", (60, min)),
            ("60/m", (60, min)),
            ("600/Minute", (600, min)),
            ("1000/h", (1000, hour)),
            ("100/hour", (100, hour)),
        ] {
            assert_eq!(rate(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn intervals_spread_the_window_and_fractions_become_one_event_per_step() {
        let interval = |s: &str| parse_rate(s).unwrap().unwrap().interval();
        assert_eq!(interval("20/s"), Duration::from_millis(50));
        assert_eq!(interval("600/m"), Duration::from_millis(100));
        assert_eq!(interval("3600/h"), Duration::from_secs(1));
        assert_eq!(interval("100/hour"), Duration::from_secs(36));
        assert_eq!(rate("0.5/s"), Some((1, Duration::from_secs(2))));
        assert_eq!(rate("1.5/min"), Some((1, Duration::from_secs(40))));
        assert_eq!(interval("1000000/s"), Duration::from_micros(1));
        assert_eq!(Rate::per_second(20.0), parse_rate("20/s").unwrap());
    }

    #[test]
    fn off_none_and_zero_mean_no_rate() {
        for off in ["off", "OFF", " none ", "0", "0/min", "0.0/h"] {
            assert_eq!(rate(off), None, "{off}");
        }
        assert!("off".parse::<Rate>().is_err());
        assert_eq!("60/min".parse::<Rate>(), Ok(Rate::per_minute(60)));
    }

    #[test]
    fn anything_else_is_one_error_quoting_the_value() {
        for bad in [
            "",
            "fast",
            "lots",
            "-3",
            "-1/min",
            "NaN",
            "inf/s",
            "x/min",
            "20/d",
            "60/day",
            "1/fortnight",
            "2000000/sec",
            "20/",
            "/s",
        ] {
            let e = parse_rate(bad).expect_err(bad);
            assert_eq!(e, RateError(bad.trim().to_owned()));
            assert!(
                e.to_string()
                    .starts_with(&format!("`{}` is not a rate (use N/s", bad.trim())),
                "{e}"
            );
        }
    }

    #[test]
    fn rates_print_in_their_window() {
        assert_eq!(Rate::per_minute(60).to_string(), "60/min");
        assert_eq!(parse_rate("20/s").unwrap().unwrap().to_string(), "20/sec");
        assert_eq!(
            parse_rate("100/h").unwrap().unwrap().to_string(),
            "100/hour"
        );
        assert_eq!(parse_rate("0.5/s").unwrap().unwrap().to_string(), "0.5/sec");
    }
}

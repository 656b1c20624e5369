//! Durations (`15m`, `24h`) and rate limits (`60/15m`) as the terms file writes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration a terms file may write: 366 days.
pub const MAX_SPAN_SECONDS: u64 = 366 * 86_400;

/// A whole number of seconds, written `<n><unit>` with unit `s`, `m`, `h` or `d` (`30s`, `15m`, `2h`, `1d`);
/// a bare unit means one of it (`m` = `1m`). Zero and anything above [`MAX_SPAN_SECONDS`] are refused.
///
/// Serialized (JSON and TOML) in its canonical text form: the largest unit that divides it exactly (`900s` → `15m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    seconds: u64,
}

impl Span {
    /// A span of `seconds` (1 ..= [`MAX_SPAN_SECONDS`]).
    pub fn from_seconds(seconds: u64) -> Option<Span> {
        (1..=MAX_SPAN_SECONDS).contains(&seconds).then_some(Span { seconds })
    }

    /// The span in seconds.
    pub const fn seconds(self) -> u64 {
        self.seconds
    }

    /// The span in milliseconds.
    pub const fn millis(self) -> i64 {
        // At most 366 days: always fits.
        (self.seconds * 1000) as i64
    }

    /// Parses `<n><unit>`; the error says what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let hint = "write <number><unit> with unit s, m, h or d, such as 30s, 15m, 2h or 1d";
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let per_unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "" => return Err(format!("duration {text:?} has no unit: {hint}")),
            _ => return Err(format!("duration {text:?} has an unknown unit {unit:?}: {hint}")),
        };
        let count: u64 = if digits.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| format!("duration {text:?} is too long: at most 366d"))?
        };
        if count == 0 {
            return Err(format!("duration {text:?} is zero: use at least 1{unit}"));
        }
        count
            .checked_mul(per_unit)
            .and_then(Span::from_seconds)
            .ok_or_else(|| format!("duration {text:?} is too long: at most 366d"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3_600) {
            write!(f, "{}h", s / 3_600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Span::parse(text)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `limit` requests per fixed `window`, written `N/window` (`60/15m`, `10/s`, `1000/1d`).
///
/// `limit` must be at least 1: to forbid an endpoint, leave it out of `endpoints` instead (a 403 names the reason,
/// where a zero limit would only ever answer 429).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub limit: u64,
    /// The fixed window.
    pub window: Span,
}

/// The largest request count a rate limit may allow per window.
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;

impl RateLimit {
    /// `limit` requests per `window`.
    pub fn new(limit: u64, window: Span) -> RateLimit {
        RateLimit { limit, window }
    }

    /// Parses `N/window`; the error says what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let hint = "write <requests>/<window>, such as 60/15m";
        let Some((count, window)) = text.split_once('/') else {
            return Err(format!("rate limit {text:?} has no '/': {hint}"));
        };
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("rate limit {text:?}: {count:?} is not a whole number of requests; {hint}"));
        }
        let limit: u64 = count.parse().unwrap_or(u64::MAX);
        if limit == 0 {
            return Err(format!(
                "rate limit {text:?} allows no request: use at least 1, or leave the endpoint out of `endpoints` to forbid it"
            ));
        }
        if limit > MAX_RATE_LIMIT {
            return Err(format!("rate limit {text:?} is too large: at most {MAX_RATE_LIMIT} requests per window"));
        }
        let window = Span::parse(window).map_err(|e| format!("rate limit {text:?}: {e}"))?;
        Ok(RateLimit { limit, window })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.window)
    }
}

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RateLimit::parse(text)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RateLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        for (text, seconds) in [
            ("s", 1),
            ("m", 60),
            ("15m", 900),
            ("h", 3600),
            ("d", 86_400),
            ("30s", 30),
            ("2h", 7200),
            ("1d", 86_400),
            ("24h", 86_400),
            ("366d", MAX_SPAN_SECONDS),
        ] {
            assert_eq!(Span::parse(text).unwrap().seconds(), seconds, "{text}");
        }
        for bad in ["", "0m", "15", "15x", "1.5h", "-1m", "15M", "m15", "367d", "99999999999999999999999s"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Span::parse("900s").unwrap().to_string(), "15m");
        assert_eq!(Span::parse("24h").unwrap().to_string(), "1d");
        assert_eq!(Span::parse("90s").unwrap().to_string(), "90s");
    }

    #[test]
    fn rate_limits() {
        assert_eq!(RateLimit::parse("60/15m").unwrap(), RateLimit::new(60, Span::from_seconds(900).unwrap()));
        assert_eq!(RateLimit::parse("10/s").unwrap().window.seconds(), 1);
        assert_eq!(RateLimit::parse("60 / 15m").unwrap().limit, 60);
        for (bad, needle) in [
            ("60/0m", "zero"),
            ("x/15m", "whole number"),
            ("0/15m", "allows no request"),
            ("60", "no '/'"),
            ("60/15", "no unit"),
            ("-1/15m", "whole number"),
            ("60/15q", "unknown unit"),
            ("2000000000/1s", "too large"),
        ] {
            let error = RateLimit::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(limit in 1u64..=MAX_RATE_LIMIT, seconds in 1u64..=MAX_SPAN_SECONDS) {
            let rate = RateLimit::new(limit, Span::from_seconds(seconds).unwrap());
            proptest::prop_assert_eq!(RateLimit::parse(&rate.to_string()).unwrap(), rate);
        }
    }
}

//! Time as integer milliseconds since the Unix epoch (UTC), and the clock seam.
//!
//! Every component asks a [`Clock`] for "now" instead of the OS, so tests can move time across
//! month ends, grace periods and deadlines.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// An instant, in whole milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// The earliest instant datapact accepts (1970); the latest is year 9999, the end of RFC 3339.
const MAX_MILLIS: i64 = 253_402_300_799_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an RFC 3339 time such as 2024-01-01T00:00:00.000Z")]
pub struct TimeParseError {
    pub value: String,
}

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2024-01-01T00:00:00Z`, with or without fractional seconds or an offset).
    /// Times before 1970 or after 9999 are refused.
    pub fn parse_rfc3339(value: &str) -> Result<Self, TimeParseError> {
        let error = || TimeParseError { value: value.to_owned() };
        let parsed = DateTime::parse_from_rfc3339(value.trim()).map_err(|_| error())?;
        let ms = parsed.timestamp_millis();
        if !(0..=MAX_MILLIS).contains(&ms) {
            return Err(error());
        }
        Ok(Timestamp(ms))
    }

    /// The X API's format: always milliseconds and `Z` (`2024-01-01T00:00:00.000Z`);
    /// clients such as tweepy fail to parse anything else.
    pub fn to_x_string(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or_default()
    }

    pub fn from_datetime(value: DateTime<Utc>) -> Self {
        Timestamp(value.timestamp_millis())
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_x_string())
    }
}

impl serde::Serialize for Timestamp {
    /// Serialized in the X API's time format.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_x_string())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// Reads RFC 3339 text, as serialized.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// The source of "now" for the whole system.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock { now: Arc::new(AtomicI64::new(start.0)) }
    }

    pub fn set(&self, to: Timestamp) {
        self.now.store(to.0, Ordering::SeqCst);
    }

    pub fn advance_millis(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_format_always_has_milliseconds_and_z() {
        assert_eq!(Timestamp(0).to_x_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(1_704_067_200_123).to_x_string(), "2024-01-01T00:00:00.123Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let t = Timestamp::parse_rfc3339("2024-01-01T01:00:00+01:00").unwrap();
        assert_eq!(t, Timestamp(1_704_067_200_000));
        assert_eq!(Timestamp::parse_rfc3339("2024-01-01T00:00:00.5Z").unwrap().0, 1_704_067_200_500);
        assert!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("1960-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(10));
        let shared = clock.clone();
        clock.advance_millis(5);
        assert_eq!(shared.now(), Timestamp(15));
        shared.set(Timestamp(1));
        assert_eq!(clock.now(), Timestamp(1));
    }

    proptest::proptest! {
        #[test]
        fn x_format_round_trips(ms in 0i64..MAX_MILLIS) {
            let t = Timestamp(ms);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_x_string()).unwrap(), t);
        }
    }
}

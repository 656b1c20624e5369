//! UTC calendar keys: the month a cap counts in, the day daily dedup counts in, and the cap's reset instant.
//!
//! Caps count per calendar month (UTC) and dedup per calendar day (UTC). Both keys are derived from a
//! [`Timestamp`] only, never from the clock, so the store, the gateway and the tests agree on which month and day an
//! instant belongs to.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use datapact_core::Timestamp;

/// A calendar month in UTC, written `YYYY-MM`. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthKey {
    year: i32,
    /// 1..=12.
    month: u32,
}

impl MonthKey {
    /// The month `year`-`month`; `None` unless `month` is 1..=12 and the year is 1970..=9999.
    pub fn new(year: i32, month: u32) -> Option<MonthKey> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(MonthKey { year, month })
    }

    /// The month (UTC) that contains `at`.
    pub fn of(at: Timestamp) -> MonthKey {
        let date = at.to_datetime().date_naive();
        MonthKey { year: date.year(), month: date.month() }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The month after this one.
    pub fn next(self) -> MonthKey {
        if self.month == 12 {
            MonthKey { year: self.year + 1, month: 1 }
        } else {
            MonthKey { year: self.year, month: self.month + 1 }
        }
    }

    /// The first day of the month.
    pub fn first_day(self) -> DayKey {
        DayKey(NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a MonthKey is a valid month"))
    }

    /// The first instant of the month (UTC midnight of its first day).
    pub fn start(self) -> Timestamp {
        self.first_day().start()
    }

    /// Parses `YYYY-MM` (exactly four and two digits).
    pub fn parse(text: &str) -> Option<MonthKey> {
        let bytes = text.as_bytes();
        if bytes.len() != 7
            || bytes[4] != b'-'
            || !text[..4].bytes().chain(text[5..].bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        MonthKey::new(text[..4].parse().ok()?, text[5..].parse().ok()?)
    }
}

impl fmt::Display for MonthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A calendar day in UTC, written `YYYY-MM-DD`: the unit of daily dedup. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DayKey(NaiveDate);

impl DayKey {
    /// The day (UTC) that contains `at`.
    pub fn of(at: Timestamp) -> DayKey {
        DayKey(at.to_datetime().date_naive())
    }

    /// The day as a date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// The day of a date.
    pub fn from_date(date: NaiveDate) -> DayKey {
        DayKey(date)
    }

    /// The month the day belongs to.
    pub fn month(self) -> MonthKey {
        MonthKey { year: self.0.year(), month: self.0.month() }
    }

    /// UTC midnight at the start of the day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_datetime(self.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
    }

    /// The day `n` days earlier (saturating at the earliest date chrono knows, far before 1970).
    pub fn minus_days(self, n: u32) -> DayKey {
        DayKey(self.0.checked_sub_days(chrono::Days::new(u64::from(n))).unwrap_or(NaiveDate::MIN))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<DayKey> {
        if text.len() != 10 {
            return None;
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(DayKey)
    }
}

impl fmt::Display for DayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// When the monthly cap that applies at `at` resets: the first instant of the next calendar month (UTC). This is the
/// `x-rate-limit-reset` of a 429 `usage-capped` answer (in seconds: `cap_reset(at).millis() / 1000`).
pub fn cap_reset(at: Timestamp) -> Timestamp {
    MonthKey::of(at).next().start()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn month_and_day_keys_are_utc() {
        let at = t("2026-11-30T23:59:59.999Z");
        assert_eq!(MonthKey::of(at).to_string(), "2026-11");
        assert_eq!(DayKey::of(at).to_string(), "2026-11-30");
        assert_eq!(MonthKey::of(at.plus_millis(1)).to_string(), "2026-12");
        assert_eq!(DayKey::of(at.plus_millis(1)).to_string(), "2026-12-01");
        // An offset does not move the UTC day.
        assert_eq!(DayKey::of(t("2026-12-01T00:30:00+01:00")).to_string(), "2026-11-30");
    }

    #[test]
    fn cap_resets_at_the_first_instant_of_next_month() {
        assert_eq!(cap_reset(t("2026-11-28T16:52:00Z")), t("2026-12-01T00:00:00Z"));
        assert_eq!(cap_reset(t("2026-12-31T23:59:59.999Z")), t("2027-01-01T00:00:00Z"));
        assert_eq!(cap_reset(t("2024-02-01T00:00:00Z")), t("2024-03-01T00:00:00Z"));
        assert_eq!(cap_reset(Timestamp(0)), t("1970-02-01T00:00:00Z"));
    }

    #[test]
    fn keys_parse_exactly() {
        assert_eq!(MonthKey::parse("2026-02"), MonthKey::new(2026, 2));
        for bad in ["2026-13", "2026-00", "2026-2", "26-02", "2026/02", "+026-02", "2026-02 "] {
            assert_eq!(MonthKey::parse(bad), None, "{bad}");
        }
        assert_eq!(DayKey::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        assert_eq!(DayKey::parse("2023-02-29"), None);
        assert_eq!(DayKey::parse("2024-2-29"), None);
    }

    proptest::proptest! {
        #[test]
        fn an_instant_lies_in_its_month_and_day(ms in 0i64..253_402_300_799_999) {
            let at = Timestamp(ms);
            let month = MonthKey::of(at);
            let day = DayKey::of(at);
            proptest::prop_assert!(month.start() <= at && at < month.next().start());
            proptest::prop_assert!(day.start() <= at && at < day.start().plus_millis(86_400_000));
            proptest::prop_assert_eq!(day.month(), month);
            proptest::prop_assert_eq!(cap_reset(at), month.next().start());
            proptest::prop_assert_eq!(MonthKey::parse(&month.to_string()), Some(month));
            proptest::prop_assert_eq!(DayKey::parse(&day.to_string()), Some(day));
        }
    }
}

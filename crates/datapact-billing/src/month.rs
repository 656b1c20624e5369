//! The billing month and the agreement's term, as calendar days (UTC).

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar month (UTC), written `YYYY-MM`: the period an invoice covers. Ordered chronologically.
///
/// The same month as `datapact_ledger::MonthKey` (which sits above this crate in the dependency graph):
/// `Month::new(key.year(), key.month())`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month `year`-`month`; `None` unless `month` is 1..=12 and the year is 1970..=9999.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    /// The month that contains `day`; `None` outside 1970..=9999.
    pub fn of(day: NaiveDate) -> Option<Month> {
        Month::new(day.year(), day.month())
    }

    /// Parses `YYYY-MM` (exactly four and two digits).
    pub fn parse(text: &str) -> Option<Month> {
        let bytes = text.as_bytes();
        if bytes.len() != 7
            || bytes[4] != b'-'
            || !text[..4].bytes().chain(text[5..].bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Month::new(text[..4].parse().ok()?, text[5..].parse().ok()?)
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a Month is a valid month")
    }

    /// The first day of the next month (the end of this one, exclusive).
    pub fn end(self) -> NaiveDate {
        let (year, month) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        NaiveDate::from_ymd_opt(year, month, 1).expect("the next month exists")
    }

    /// The last day.
    pub fn last_day(self) -> NaiveDate {
        self.end().pred_opt().expect("a month has a last day")
    }

    /// The number of days: 28 to 31.
    pub fn days(self) -> u32 {
        self.last_day().day()
    }

    /// Whether `day` lies in this month.
    pub fn contains(self, day: NaiveDate) -> bool {
        self.first_day() <= day && day < self.end()
    }

    /// Every day of the month, in order.
    pub fn iter_days(self) -> impl Iterator<Item = NaiveDate> {
        self.first_day().iter_days().take(self.days() as usize)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Month::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a month YYYY-MM")))
    }
}

/// An agreement's term as days: `[starts, ends)`, each bound optional (the terms file's `starts` and `ends`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Term {
    /// First day of the term, inclusive; `None` = no lower bound.
    pub starts: Option<NaiveDate>,
    /// Day the term ends, exclusive; `None` = open-ended.
    pub ends: Option<NaiveDate>,
}

impl Term {
    /// Whether `day` is inside the term.
    pub fn contains(self, day: NaiveDate) -> bool {
        self.starts.is_none_or(|s| s <= day) && self.ends.is_none_or(|e| day < e)
    }

    /// How many days of `month` are inside the term.
    pub fn days_in(self, month: Month) -> u32 {
        month.iter_days().filter(|d| self.contains(*d)).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn months_know_their_days() {
        assert_eq!(Month::new(2024, 2).unwrap().days(), 29);
        assert_eq!(Month::new(2026, 2).unwrap().days(), 28);
        assert_eq!(Month::new(2026, 12).unwrap().days(), 31);
        assert_eq!(Month::new(2026, 12).unwrap().end(), day("2027-01-01"));
        assert_eq!(Month::parse("2026-11").unwrap().to_string(), "2026-11");
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "1969-12"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        assert_eq!(Month::new(2026, 4).unwrap().iter_days().count(), 30);
    }

    #[test]
    fn terms_count_days_inside_a_month() {
        let december = Month::new(2026, 12).unwrap();
        assert_eq!(Term::default().days_in(december), 31);
        assert_eq!(Term { starts: Some(day("2026-12-18")), ends: None }.days_in(december), 14);
        assert_eq!(Term { starts: None, ends: Some(day("2026-12-18")) }.days_in(december), 17);
        assert_eq!(Term { starts: Some(day("2027-01-01")), ends: None }.days_in(december), 0);
        assert_eq!(Term { starts: Some(day("2026-12-05")), ends: Some(day("2026-12-06")) }.days_in(december), 1);
    }
}

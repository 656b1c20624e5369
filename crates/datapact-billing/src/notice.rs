//! The notice period: prices change for everyone only with notice.

use chrono::NaiveDate;
use datapact_core::Timestamp;
use serde::Serialize;

use crate::price::PriceBook;

/// Days of notice a price book change needs unless forced.
pub const DEFAULT_NOTICE_DAYS: u32 = 30;

const DAY_MS: i64 = 86_400_000;

/// How a price book version differs from the stored ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionChange {
    /// A version with a new effective date.
    Added,
    /// A version whose effective date exists, with other prices.
    Changed,
    /// A stored version missing from the new set.
    Removed,
}

/// A price book version that would change prices sooner than the notice period allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoticeViolation {
    /// The version's effective date.
    pub effective: NaiveDate,
    /// What happens to it.
    pub change: VersionChange,
    /// The earliest effective date a change may have now.
    pub earliest_allowed: NaiveDate,
}

/// Price book changes refused for want of notice; the message lists each and says how to proceed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct NoticeError {
    /// Every version changed too soon, by effective date.
    pub violations: Vec<NoticeViolation>,
    /// The notice period, in days.
    pub notice_days: u32,
}

impl std::fmt::Display for NoticeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "price changes need {} days' notice:", self.notice_days)?;
        for v in &self.violations {
            let what = match v.change {
                VersionChange::Added => "adds",
                VersionChange::Changed => "changes",
                VersionChange::Removed => "removes",
            };
            write!(
                f,
                "\n  the file {what} the price book effective {}; the earliest date allowed now is {}",
                v.effective, v.earliest_allowed
            )?;
        }
        write!(f, "\nmove the effective date, or force the change")
    }
}

/// The earliest effective date a price book change may have at `now`: the first day whose UTC midnight is at least
/// `notice_days` × 24 h after `now`. At `2026-11-28T18:00Z` with 30 days that is 2026-12-29 (2026-12-28 begins
/// six hours short of the notice).
pub fn earliest_effective(now: Timestamp, notice_days: u32) -> NaiveDate {
    let threshold = now.millis().saturating_add(i64::from(notice_days) * DAY_MS);
    // Round up to the next UTC midnight (or stay on it).
    let day_index = threshold.div_euclid(DAY_MS) + i64::from(threshold.rem_euclid(DAY_MS) != 0);
    Timestamp::from_millis(day_index * DAY_MS).to_datetime().date_naive()
}

/// The price book versions whose change (addition, change of prices, removal) takes effect before
/// [`earliest_effective`]: these alter prices in force within the notice period (or in the past), so they are
/// refused unless forced. A version effective on or after that date is always accepted.
///
/// So when this returns nothing, every day before the earliest allowed date keeps its price (property-tested); a
/// version added or changed within the window is reported even if its prices happen to equal its predecessor's.
pub fn notice_violations(
    current: &[PriceBook],
    proposed: &[PriceBook],
    now: Timestamp,
    notice_days: u32,
) -> Vec<NoticeViolation> {
    let earliest_allowed = earliest_effective(now, notice_days);
    let mut violations = Vec::new();
    for book in proposed.iter().filter(|b| b.effective < earliest_allowed) {
        let change = match current.iter().find(|c| c.effective == book.effective) {
            None => VersionChange::Added,
            Some(old) if old != book => VersionChange::Changed,
            Some(_) => continue,
        };
        violations.push(NoticeViolation { effective: book.effective, change, earliest_allowed });
    }
    for book in current.iter().filter(|b| b.effective < earliest_allowed) {
        if !proposed.iter().any(|p| p.effective == book.effective) {
            violations.push(NoticeViolation {
                effective: book.effective,
                change: VersionChange::Removed,
                earliest_allowed,
            });
        }
    }
    violations.sort_by_key(|v| v.effective);
    violations
}

/// Refuses price book changes that need more notice, unless `force`; with `force`, returns the violations it let
/// through (for the audit log).
///
/// ```
/// use std::collections::BTreeMap;
/// use datapact_billing::{Currency, PriceBook, check_notice};
/// use datapact_core::Timestamp;
///
/// let book = |effective: &str| PriceBook {
///     effective: effective.parse().unwrap(),
///     currency: Currency::Usd,
///     plans: BTreeMap::new(),
/// };
/// let now = Timestamp::parse_rfc3339("2026-11-28T18:00:00Z").unwrap();
/// let current = [book("2026-01-01")];
/// assert!(check_notice(&current, &[book("2026-01-01"), book("2026-12-29")], now, 30, false).is_ok());
/// let err = check_notice(&current, &[book("2026-01-01"), book("2026-12-28")], now, 30, false).unwrap_err();
/// assert_eq!(err.violations[0].earliest_allowed.to_string(), "2026-12-29");
/// assert_eq!(check_notice(&current, &[book("2026-01-01"), book("2026-12-28")], now, 30, true).unwrap().len(), 1);
/// ```
pub fn check_notice(
    current: &[PriceBook],
    proposed: &[PriceBook],
    now: Timestamp,
    notice_days: u32,
    force: bool,
) -> Result<Vec<NoticeViolation>, NoticeError> {
    let violations = notice_violations(current, proposed, now, notice_days);
    if violations.is_empty() || force { Ok(violations) } else { Err(NoticeError { violations, notice_days }) }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::money::{Currency, Money};
    use crate::price::{PlanPrice, book_in_force};

    fn t(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn book(effective: NaiveDate, fee: i64) -> PriceBook {
        let price = PlanPrice::fee_only(Money::new(Currency::Usd, fee));
        PriceBook { effective, currency: Currency::Usd, plans: BTreeMap::from([("basic".to_owned(), price)]) }
    }

    #[test]
    fn the_earliest_date_is_the_first_midnight_after_the_notice() {
        assert_eq!(earliest_effective(t("2026-11-28T18:00:00Z"), 30).to_string(), "2026-12-29");
        assert_eq!(earliest_effective(t("2026-11-28T00:00:00Z"), 30).to_string(), "2026-12-28", "exactly on time");
        assert_eq!(earliest_effective(t("2026-11-28T00:00:00.001Z"), 30).to_string(), "2026-12-29");
        assert_eq!(earliest_effective(t("2026-11-28T18:00:00Z"), 0).to_string(), "2026-11-29");
    }

    #[test]
    fn changes_within_the_notice_are_refused() {
        let now = t("2026-11-28T18:00:00Z");
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let current = [book(day("2026-01-01"), 100), book(day("2027-06-01"), 300)];
        let kinds = |proposed: &[PriceBook]| {
            notice_violations(&current, proposed, now, 30).iter().map(|v| (v.effective, v.change)).collect::<Vec<_>>()
        };
        assert_eq!(kinds(&current), [], "unchanged");
        assert_eq!(kinds(&[current[0].clone()]), [], "a future version may be withdrawn");
        assert_eq!(kinds(&[current[0].clone(), book(day("2027-06-01"), 250)]), [], "or changed");
        assert_eq!(
            kinds(&[book(day("2026-01-01"), 90), current[1].clone()]),
            [(day("2026-01-01"), VersionChange::Changed)],
            "history cannot be rewritten"
        );
        assert_eq!(kinds(&[current[1].clone()]), [(day("2026-01-01"), VersionChange::Removed)]);
        assert_eq!(
            kinds(&[current[0].clone(), book(day("2026-12-01"), 200), current[1].clone()]),
            [(day("2026-12-01"), VersionChange::Added)]
        );
        let error = check_notice(&current, &[book(day("2026-12-01"), 200)], now, 30, false).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("30 days' notice") && message.contains("2026-12-29") && message.contains("force"));
    }

    fn books() -> impl Strategy<Value = Vec<PriceBook>> {
        prop::collection::btree_map(0u64..120, 0i64..3, 0..5).prop_map(|versions| {
            versions
                .into_iter()
                .map(|(offset, fee)| {
                    book(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Days::new(offset), fee)
                })
                .collect()
        })
    }

    proptest! {
        /// No violation if and only if every day before the earliest allowed date keeps its price.
        #[test]
        fn violations_are_exactly_the_changes_of_prices_within_the_notice(
            current in books(),
            proposed in books(),
            now_offset_h in 0i64..(24 * 60),
            notice in 0u32..40,
        ) {
            let now = Timestamp::from_millis(t("2026-11-01T00:00:00Z").millis() + now_offset_h * 3_600_000);
            let earliest = earliest_effective(now, notice);
            let start = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
            let same_prices = start.iter_days().take_while(|d| *d < earliest).all(|d| {
                book_in_force(&current, d).map(|b| &b.plans) == book_in_force(&proposed, d).map(|b| &b.plans)
            });
            let violations = notice_violations(&current, &proposed, now, notice);
            // A version identical in prices to its predecessor is still a change of the book (it is reported),
            // so "no violation" implies same prices; the converse holds when no version repeats its predecessor.
            if violations.is_empty() {
                prop_assert!(same_prices);
            }
            if !same_prices {
                prop_assert!(!violations.is_empty());
            }
            prop_assert!(violations.iter().all(|v| v.effective < earliest));
        }
    }
}

//! `GET /2/usage/tweets` in X's shape, from the ledger's daily counted totals.
//!
//! X's response (`data` of the body):
//!
//! ```json
//! { "cap_reset_day": 1, "project_cap": "10000", "project_id": "42", "project_usage": "1234",
//!   "daily_project_usage": { "project_id": "42",
//!     "usage": [ { "date": "2026-11-27T00:00:00.000Z", "usage": "600" }, ... ] } }
//! ```
//!
//! Counts are strings (as X sends them and its clients read them). A licensee is the "project"; its cap resets on the
//! first day of each calendar month (UTC), so `cap_reset_day` is always 1 and `project_usage` is the counted total
//! of the current month. X's OpenAPI names each day's count `usage` (not `tweets`) and gives `date` as a date-time,
//! so that is what is served. An unlimited agreement has no `project_cap`, so the field is left out.

use std::collections::BTreeMap;

use datapact_terms::MonthlyRecords;
use serde::Serialize;

use crate::calendar::DayKey;

/// The most days `days` may ask for.
pub const MAX_USAGE_DAYS: u32 = 90;
/// X's default for `days`.
pub const DEFAULT_USAGE_DAYS: u32 = 7;

/// Records counted for a licensee on one day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCount {
    /// The day.
    pub day: DayKey,
    /// Records counted that day.
    pub counted: u64,
    /// What they cost a prepaid credit, in micro-units (0 when billed in arrears).
    pub charged: u64,
}

/// `data` of `GET /2/usage/tweets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageView {
    /// The day of the month the cap resets: 1.
    pub cap_reset_day: u32,
    /// The monthly cap; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_cap: Option<String>,
    /// The licensee's id.
    pub project_id: String,
    /// Records counted this month.
    pub project_usage: String,
    /// Records counted per day, oldest first.
    pub daily_project_usage: DailyProjectUsage,
}

/// `daily_project_usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DailyProjectUsage {
    /// The licensee's id.
    pub project_id: String,
    /// One entry per day of the window, oldest first, days without usage included as `"0"`.
    pub usage: Vec<DayUsage>,
}

/// One day of `daily_project_usage.usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// UTC midnight of the day, in X's time format.
    pub date: String,
    /// Records counted that day.
    pub usage: String,
}

/// `days` outside 1..=90: X's 400 names the parameter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("The `days` query parameter value [{0}] is not between 1 and 90")]
pub struct DaysOutOfRange(pub u32);

/// Builds the view for `licensee_id` on `today`: `month_counted` is the month's counted total (what the cap is
/// checked against), `daily` the per-day counts the store has for the window (any order; days outside the window are
/// ignored, repeated days are added). The window is the `days` days ending with `today`, oldest first.
pub fn usage_view(
    licensee_id: i64,
    cap: MonthlyRecords,
    month_counted: u64,
    today: DayKey,
    days: u32,
    daily: &[DailyCount],
) -> Result<UsageView, DaysOutOfRange> {
    if !(1..=MAX_USAGE_DAYS).contains(&days) {
        return Err(DaysOutOfRange(days));
    }
    let first = today.minus_days(days - 1);
    let mut per_day: BTreeMap<DayKey, u64> = (0..days).map(|back| (today.minus_days(back), 0)).collect();
    for count in daily.iter().filter(|c| c.day >= first && c.day <= today) {
        let total = per_day.get_mut(&count.day).expect("every day of the window has an entry");
        *total = total.saturating_add(count.counted);
    }
    assert_eq!(per_day.len(), days as usize);
    let project_id = licensee_id.to_string();
    Ok(UsageView {
        cap_reset_day: 1,
        project_cap: cap.limit().map(|limit| limit.to_string()),
        project_id: project_id.clone(),
        project_usage: month_counted.to_string(),
        daily_project_usage: DailyProjectUsage {
            project_id,
            usage: per_day
                .into_iter()
                .map(|(day, counted)| DayUsage { date: day.start().to_x_string(), usage: counted.to_string() })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> DayKey {
        DayKey::parse(text).unwrap()
    }

    #[test]
    fn the_view_has_x_shape_with_string_counts() {
        let daily = [
            DailyCount { day: day("2026-11-28"), counted: 5, charged: 0 },
            DailyCount { day: day("2026-11-26"), counted: 7, charged: 0 },
            DailyCount { day: day("2026-11-26"), counted: 1, charged: 0 },
            DailyCount { day: day("2026-11-01"), counted: 100, charged: 0 }, // outside the window
        ];
        let view = usage_view(42, MonthlyRecords::Limit(1000), 113, day("2026-11-28"), 3, &daily).unwrap();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cap_reset_day": 1,
                "project_cap": "1000",
                "project_id": "42",
                "project_usage": "113",
                "daily_project_usage": {
                    "project_id": "42",
                    "usage": [
                        { "date": "2026-11-26T00:00:00.000Z", "usage": "8" },
                        { "date": "2026-11-27T00:00:00.000Z", "usage": "0" },
                        { "date": "2026-11-28T00:00:00.000Z", "usage": "5" },
                    ]
                }
            })
        );
    }

    #[test]
    fn days_are_bounded_and_cross_months() {
        assert_eq!(usage_view(1, MonthlyRecords::Unlimited, 0, day("2026-11-28"), 0, &[]), Err(DaysOutOfRange(0)));
        assert_eq!(usage_view(1, MonthlyRecords::Unlimited, 0, day("2026-11-28"), 91, &[]), Err(DaysOutOfRange(91)));
        let view = usage_view(1, MonthlyRecords::Unlimited, 0, day("2026-03-01"), 90, &[]).unwrap();
        let usage = &view.daily_project_usage.usage;
        assert_eq!(usage.len(), 90);
        assert_eq!(usage[0].date, "2025-12-02T00:00:00.000Z");
        assert_eq!(usage[89].date, "2026-03-01T00:00:00.000Z");
        assert!(!serde_json::to_value(&view).unwrap().as_object().unwrap().contains_key("project_cap"));
    }
}

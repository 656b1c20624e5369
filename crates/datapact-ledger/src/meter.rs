//! Cap and dedup arithmetic: for a candidate page, which prefix is delivered, which deliveries are counted, and
//! whether the request is refused.
//!
//! The rules, in integers:
//!
//! - A delivery is **free** when the agreement's dedup is [`Dedup::Daily`] and the same post was already counted for
//!   this licensee today (UTC) — by an earlier request (the caller's `counted_today` predicate) or earlier in the same
//!   page. Otherwise it **costs** one record. Under [`Dedup::None`] every delivery costs one.
//! - Under a **hard** cap of `limit`, with `used` records counted this month: if `used >= limit` the request is
//!   refused (429 `usage-capped`, reset at [`crate::calendar::cap_reset`]); otherwise the page is served up to (not
//!   including) the first record that would make the count exceed `limit` — the longest prefix whose cost fits.
//!   Free records before that point are served; nothing after it is.
//! - Under a **soft** cap the whole page is served; the records counted past `limit` are reported as overage.
//! - **Unlimited**: the whole page is served and counted by the dedup rule.
//! - A **prepaid credit** ([`meter_page_within_credit`]) bounds counted records like a hard cap does: the page is cut
//!   before the first record the credit cannot pay for, and a credit that pays for none refuses the request (402,
//!   see [`Prepaid`]). Records within the plan's `included_records` are not charged.
//!
//! [`meter_page`] is pure; exactness under concurrency comes from the caller applying it to the authoritative month
//! total, one decision at a time per licensee (the ledger's writer), and committing the result before serving.

use std::collections::HashSet;

use datapact_terms::{CapMode, Dedup, MonthlyRecords};

/// The problem type of the 429 sent at a hard cap (X's), with `x-rate-limit-reset` at [`crate::cap_reset`].
pub const USAGE_CAPPED: &str = "https://api.twitter.com/2/problems/usage-capped";

/// The monthly cap that applies to a licensee: its limit and what happens at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// The limit on counted records per calendar month (UTC).
    pub monthly_records: MonthlyRecords,
    /// Refuse (hard) or serve and record the overage (soft) past it.
    pub mode: CapMode,
}

impl Cap {
    /// No cap.
    pub const UNLIMITED: Cap = Cap { monthly_records: MonthlyRecords::Unlimited, mode: CapMode::Hard };

    /// A hard cap of `limit` records a month.
    pub fn hard(limit: u64) -> Cap {
        Cap { monthly_records: MonthlyRecords::Limit(limit), mode: CapMode::Hard }
    }

    /// A soft cap of `limit` records a month.
    pub fn soft(limit: u64) -> Cap {
        Cap { monthly_records: MonthlyRecords::Limit(limit), mode: CapMode::Soft }
    }

    /// Records still countable this month with `used` counted so far: `Some(0)` at or past a hard cap, `None` when
    /// nothing limits counting (unlimited, or a soft cap).
    pub fn remaining(self, used: u64) -> Option<u64> {
        match (self.monthly_records, self.mode) {
            (MonthlyRecords::Limit(limit), CapMode::Hard) => Some(limit.saturating_sub(used)),
            _ => None,
        }
    }
}

/// Why a request was refused before any record was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capped {
    /// The hard cap.
    pub limit: u64,
    /// Records counted this month (at least `limit`).
    pub used: u64,
}

/// What to deliver from a candidate page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allotment {
    /// How many records of the page to deliver: always a prefix, `0..=page.len()`.
    pub delivered: usize,
    /// For each delivered record, whether it counts (length `delivered`).
    pub counts: Vec<bool>,
    /// Records counted (the number of `true` in `counts`).
    pub counted: u32,
    /// Whether the page was cut short by a hard cap or the prepaid credit (`delivered < page.len()`).
    pub cut: bool,
    /// Of the counted records, how many lie past a soft cap (always 0 for hard caps and unlimited).
    pub overage: u32,
    /// The month's counted total after this page: `used + counted`.
    pub used_after: u64,
    /// What the counted records cost the prepaid credit, in micro-units (0 without one).
    pub charge: u64,
}

/// The meter's answer for one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metered {
    /// At or past a hard cap: answer 429 `usage-capped`, deliver nothing, record nothing.
    Refused(Capped),
    /// The prepaid credit pays for no record: answer 402, deliver nothing, record nothing.
    NoCredit(CreditExhausted),
    /// Deliver the allotted prefix and record it.
    Serve(Allotment),
}

/// A licensee charged per counted record from a prepaid balance, as of one request: the price per record in force
/// on its day, how many records a month its fee already covers, and what is left of the balance (credits added minus
/// charges committed and reserved). Amounts are micro-units of the credit's currency (as `datapact-billing`'s `Rate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepaid {
    /// The charge per counted record past `included_records` (0: records are not charged).
    pub per_record_micros: u64,
    /// Counted records per month covered by the plan's fee, never charged.
    pub included_records: u64,
    /// The balance, in micro-units; negative only if credits were withdrawn (nothing then is affordable).
    pub balance_micros: i64,
}

impl Prepaid {
    /// The most records this month's next page may count, with `used` counted so far: what is still included plus
    /// what the balance pays for. `None` when records are not charged.
    pub fn records_covered(self, used: u64) -> Option<u64> {
        if self.per_record_micros == 0 {
            return None;
        }
        let included = self.included_records.saturating_sub(used);
        let affordable = u64::try_from(self.balance_micros).unwrap_or(0) / self.per_record_micros;
        Some(included.saturating_add(affordable))
    }

    /// What counting `counted` more records costs with `used` counted so far this month: the records past
    /// `included_records`, each at `per_record_micros`.
    pub fn charge(self, used: u64, counted: u64) -> u64 {
        let included = self.included_records.saturating_sub(used).min(counted);
        (counted - included).saturating_mul(self.per_record_micros)
    }
}

/// Why a prepaid request was refused: the balance pays for no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditExhausted {
    /// The balance left, in micro-units (less than one record's price).
    pub balance_micros: i64,
    /// The price of one record, in micro-units.
    pub per_record_micros: u64,
}

/// Decides what to deliver from `page` (post ids in response order) for a licensee who has `used` counted records
/// this month. `counted_today(post_id)` says whether that post was already counted for this licensee today (UTC); it
/// is consulted only under [`Dedup::Daily`].
///
/// Invariants (asserted, and property-tested): under a hard cap `used_after <= limit` whenever `used <= limit`;
/// the request is refused only when no capacity remains; a post is counted at most once per page under daily dedup,
/// and never when `counted_today` says it already was.
pub fn meter_page(used: u64, cap: Cap, dedup: Dedup, page: &[i64], counted_today: impl FnMut(i64) -> bool) -> Metered {
    meter_page_within_credit(used, cap, None, dedup, page, counted_today)
}

/// [`meter_page`] for a licensee that may also be bound by a prepaid credit: counted records never exceed what the
/// credit covers ([`Prepaid::records_covered`]) nor the hard cap; a credit that covers no record refuses the request
/// ([`Metered::NoCredit`]; the cap is checked first). The allotment's `charge` is what its counted records cost.
pub fn meter_page_within_credit(
    used: u64,
    cap: Cap,
    prepaid: Option<Prepaid>,
    dedup: Dedup,
    page: &[i64],
    mut counted_today: impl FnMut(i64) -> bool,
) -> Metered {
    let cap_remaining = cap.remaining(used);
    if let (Some(0), MonthlyRecords::Limit(limit)) = (cap_remaining, cap.monthly_records) {
        return Metered::Refused(Capped { limit, used });
    }
    let covered = prepaid.and_then(|prepaid| prepaid.records_covered(used));
    if let (Some(0), Some(prepaid)) = (covered, prepaid) {
        let Prepaid { balance_micros, per_record_micros, .. } = prepaid;
        return Metered::NoCredit(CreditExhausted { balance_micros, per_record_micros });
    }
    let remaining = match (cap_remaining, covered) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut counts = Vec::with_capacity(page.len());
    let mut seen_in_page = HashSet::new();
    let mut counted: u64 = 0;
    for &post_id in page {
        let costs = match dedup {
            Dedup::None => true,
            // `insert` first so a post repeated within the page is free the second time, whatever the predicate.
            Dedup::Daily => seen_in_page.insert(post_id) && !counted_today(post_id),
        };
        if costs && remaining.is_some_and(|remaining| counted == remaining) {
            break;
        }
        counted += u64::from(costs);
        counts.push(costs);
    }
    let delivered = counts.len();
    let cut = delivered < page.len();
    let used_after = used.saturating_add(counted);
    let charge = prepaid.map_or(0, |prepaid| prepaid.charge(used, counted));
    let overage = match (cap.monthly_records, cap.mode) {
        (MonthlyRecords::Limit(limit), CapMode::Soft) => used_after.saturating_sub(limit.max(used)),
        _ => 0,
    };
    // Invariants: a prefix; counting never passes a hard cap; only hard caps cut; overage only under soft caps.
    assert!(delivered <= page.len() && counted <= delivered as u64);
    if let Some(remaining) = remaining {
        assert!(counted <= remaining, "a hard cap or the credit was crossed");
        assert!(!cut || counted == remaining, "a page was cut while capacity remained");
    } else {
        assert!(!cut, "only a hard cap or a credit cuts a page");
    }
    if let Some(prepaid) = prepaid {
        assert!(i128::from(charge) <= i128::from(prepaid.balance_micros).max(0), "a charge exceeded the balance");
    }
    assert!(overage <= counted);
    Metered::Serve(Allotment {
        delivered,
        counts,
        counted: u32::try_from(counted).expect("a page holds fewer than 2^32 records"),
        cut,
        overage: u32::try_from(overage).expect("overage is at most counted"),
        used_after,
        charge,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    fn serve(metered: Metered) -> Allotment {
        match metered {
            Metered::Serve(allotment) => allotment,
            refused => panic!("refused: {refused:?}"),
        }
    }

    fn prepaid(per_record_micros: u64, included_records: u64, balance_micros: i64) -> Option<Prepaid> {
        Some(Prepaid { per_record_micros, included_records, balance_micros })
    }

    #[test]
    fn a_prepaid_credit_cuts_a_page_to_what_it_pays_for_and_refuses_at_zero() {
        // 0.005 a record, 12,000 micro-units left: two records, the third is cut.
        let a = serve(meter_page_within_credit(
            0,
            Cap::UNLIMITED,
            prepaid(5_000, 0, 12_000),
            Dedup::None,
            &[1, 2, 3],
            |_| false,
        ));
        assert_eq!((a.delivered, a.counted, a.cut, a.charge), (2, 2, true, 10_000));
        // 8 of 10 included used: two included records are free, then one paid, then the balance is spent.
        let a = serve(meter_page_within_credit(
            8,
            Cap::UNLIMITED,
            prepaid(5_000, 10, 7_000),
            Dedup::None,
            &[1, 2, 3, 4],
            |_| false,
        ));
        assert_eq!((a.delivered, a.counted, a.cut, a.charge), (3, 3, true, 5_000));
        // Less than one record's price left and nothing included: 402, nothing delivered.
        assert_eq!(
            meter_page_within_credit(10, Cap::UNLIMITED, prepaid(5_000, 10, 4_999), Dedup::None, &[1], |_| false),
            Metered::NoCredit(CreditExhausted { balance_micros: 4_999, per_record_micros: 5_000 })
        );
        // A negative balance covers nothing; a hard cap is checked first.
        assert!(matches!(
            meter_page_within_credit(0, Cap::UNLIMITED, prepaid(1, 0, -3), Dedup::None, &[1], |_| false),
            Metered::NoCredit(_)
        ));
        assert!(matches!(
            meter_page_within_credit(5, Cap::hard(5), prepaid(1, 0, 0), Dedup::None, &[1], |_| false),
            Metered::Refused(_)
        ));
        // Records already counted today are free: they ride along and cost nothing.
        let a = serve(meter_page_within_credit(
            0,
            Cap::UNLIMITED,
            prepaid(5_000, 0, 5_000),
            Dedup::Daily,
            &[1, 2, 3],
            |p| p != 2,
        ));
        assert_eq!((a.delivered, a.counted, a.cut, a.charge), (3, 1, false, 5_000));
        // Without a per-record price nothing is charged and the credit bounds nothing.
        let a = serve(meter_page_within_credit(0, Cap::UNLIMITED, prepaid(0, 0, 0), Dedup::None, &[1, 2], |_| false));
        assert_eq!((a.delivered, a.charge), (2, 0));
    }

    #[test]
    fn a_page_that_would_cross_a_hard_cap_is_cut_to_what_is_left() {
        let a = serve(meter_page(8, Cap::hard(10), Dedup::None, &[1, 2, 3, 4], |_| false));
        assert_eq!((a.delivered, a.counted, a.cut, a.used_after), (2, 2, true, 10));
        assert_eq!(
            meter_page(10, Cap::hard(10), Dedup::None, &[1], |_| false),
            Metered::Refused(Capped { limit: 10, used: 10 })
        );
        // A cap lowered below what was already counted refuses too.
        assert_eq!(
            meter_page(12, Cap::hard(10), Dedup::None, &[], |_| false),
            Metered::Refused(Capped { limit: 10, used: 12 })
        );
        // A zero cap refuses everything.
        assert!(matches!(meter_page(0, Cap::hard(0), Dedup::Daily, &[1], |_| false), Metered::Refused(_)));
    }

    #[test]
    fn free_records_ride_along_until_the_first_that_does_not_fit() {
        // 9 of 10 used; posts 1 and 3 were counted today; 2 costs the last record; 4 does not fit; 5 (free) is after
        // the cut, so it is not served either: the page stays a prefix.
        let today = [1, 3, 5];
        let a = serve(meter_page(9, Cap::hard(10), Dedup::Daily, &[1, 2, 3, 4, 5], |p| today.contains(&p)));
        assert_eq!(a.delivered, 3);
        assert_eq!(a.counts, vec![false, true, false]);
        assert_eq!((a.counted, a.cut, a.used_after), (1, true, 10));
    }

    #[test]
    fn daily_dedup_counts_a_post_once_per_page_and_day() {
        let a = serve(meter_page(0, Cap::hard(10), Dedup::Daily, &[7, 7, 8, 7], |p| p == 8));
        assert_eq!(a.counts, vec![true, false, false, false]);
        let a = serve(meter_page(0, Cap::hard(10), Dedup::None, &[7, 7, 8, 7], |_| unreachable!()));
        assert_eq!(a.counts, vec![true; 4]);
    }

    #[test]
    fn a_soft_cap_serves_on_and_reports_the_overage() {
        let a = serve(meter_page(8, Cap::soft(10), Dedup::None, &[1, 2, 3, 4], |_| false));
        assert_eq!((a.delivered, a.counted, a.cut, a.overage, a.used_after), (4, 4, false, 2, 12));
        let a = serve(meter_page(12, Cap::soft(10), Dedup::None, &[1, 2], |_| false));
        assert_eq!((a.overage, a.used_after), (2, 14));
        let a = serve(meter_page(u64::MAX - 1, Cap::UNLIMITED, Dedup::None, &[1, 2], |_| false));
        assert_eq!((a.overage, a.used_after, a.cut), (0, u64::MAX, false));
    }

    #[derive(Debug, Clone)]
    struct Request {
        day: u8,
        page: Vec<i64>,
    }

    fn requests() -> impl Strategy<Value = Vec<Request>> {
        prop::collection::vec(
            (0u8..3, prop::collection::vec(1i64..30, 0..12)).prop_map(|(day, page)| Request { day, page }),
            0..40,
        )
        .prop_map(|mut requests| {
            // Days only move forward within a month.
            requests.sort_by_key(|r| r.day);
            requests
        })
    }

    fn cap_strategy() -> impl Strategy<Value = Cap> {
        prop_oneof![(0u64..60).prop_map(Cap::hard), (0u64..60).prop_map(Cap::soft), Just(Cap::UNLIMITED),]
    }

    fn dedup_strategy() -> impl Strategy<Value = Dedup> {
        prop_oneof![Just(Dedup::Daily), Just(Dedup::None)]
    }

    proptest! {
        #[test]
        fn caps_are_exact_and_dedup_counts_once(cap in cap_strategy(), dedup in dedup_strategy(), requests in requests()) {
            let mut used = 0u64;
            let mut counted_days: BTreeMap<u8, HashSet<i64>> = BTreeMap::new();
            let mut counted_events = Vec::new();
            let mut overage_total = 0u64;
            for request in &requests {
                let today = counted_days.entry(request.day).or_default().clone();
                match meter_page(used, cap, dedup, &request.page, |p| today.contains(&p)) {
                    Metered::NoCredit(_) => prop_assert!(false, "no credit without a prepaid licensee"),
                    Metered::Refused(capped) => {
                        // Refused only at a hard cap with nothing left.
                        prop_assert_eq!(cap.mode, CapMode::Hard);
                        prop_assert_eq!(Some(capped.limit), cap.monthly_records.limit());
                        prop_assert!(used >= capped.limit);
                    }
                    Metered::Serve(a) => {
                        prop_assert_eq!(a.counts.len(), a.delivered);
                        prop_assert_eq!(a.counts.iter().filter(|c| **c).count() as u32, a.counted);
                        prop_assert_eq!(a.used_after, used + u64::from(a.counted));
                        if a.cut {
                            // Cut only when the next record would cost one and nothing is left.
                            prop_assert_eq!(cap.remaining(a.used_after), Some(0));
                        } else {
                            prop_assert_eq!(a.delivered, request.page.len());
                        }
                        for (post, counts) in request.page.iter().zip(&a.counts) {
                            if *counts {
                                counted_events.push((request.day, *post));
                                counted_days.entry(request.day).or_default().insert(*post);
                            } else {
                                prop_assert_eq!(dedup, Dedup::Daily);
                            }
                        }
                        overage_total += u64::from(a.overage);
                        used = a.used_after;
                    }
                }
                if let (MonthlyRecords::Limit(limit), CapMode::Hard) = (cap.monthly_records, cap.mode) {
                    prop_assert!(used <= limit, "counted {} past a hard cap of {}", used, limit);
                }
            }
            prop_assert_eq!(used as usize, counted_events.len());
            if dedup == Dedup::Daily {
                let distinct: HashSet<_> = counted_events.iter().collect();
                prop_assert_eq!(distinct.len(), counted_events.len(), "a (post, day) was counted twice");
                // And every delivered post of a day was counted once that day, unless a hard cap intervened.
            }
            if let (MonthlyRecords::Limit(limit), CapMode::Soft) = (cap.monthly_records, cap.mode) {
                prop_assert_eq!(overage_total, used.saturating_sub(limit));
            }
        }

        /// Requests in any order against one prepaid balance: the sum of charges never exceeds the credit, each
        /// charge is exactly the counted records past `included_records` times the price, and a request is refused
        /// only when the balance pays for no record.
        #[test]
        fn prepaid_charges_never_exceed_the_credit(
            per_record in 1u64..5_000,
            included in 0u64..20,
            credit in 0i64..60_000,
            cap in cap_strategy(),
            dedup in dedup_strategy(),
            requests in requests(),
        ) {
            let (mut used, mut charged) = (0u64, 0i64);
            let mut counted_days: BTreeMap<u8, HashSet<i64>> = BTreeMap::new();
            for request in &requests {
                let today = counted_days.entry(request.day).or_default().clone();
                let balance = credit - charged;
                let credit_terms = prepaid(per_record, included, balance);
                match meter_page_within_credit(used, cap, credit_terms, dedup, &request.page, |p| today.contains(&p)) {
                    Metered::Refused(_) => prop_assert_eq!(cap.remaining(used), Some(0)),
                    Metered::NoCredit(exhausted) => {
                        prop_assert!(used >= included);
                        prop_assert!(exhausted.balance_micros < per_record as i64);
                    }
                    Metered::Serve(a) => {
                        let paid = u64::from(a.counted) - included.saturating_sub(used).min(u64::from(a.counted));
                        prop_assert_eq!(a.charge, paid * per_record);
                        if a.cut && cap.remaining(a.used_after) != Some(0) {
                            // Cut by the credit: the next record would have cost more than is left.
                            prop_assert!(a.used_after >= included);
                            prop_assert!(balance - (a.charge as i64) < per_record as i64);
                        }
                        for (post, counts) in request.page.iter().zip(&a.counts) {
                            if *counts {
                                counted_days.entry(request.day).or_default().insert(*post);
                            }
                        }
                        charged += a.charge as i64;
                        used = a.used_after;
                    }
                }
                prop_assert!(charged <= credit, "charged {} of a {} credit", charged, credit);
            }
        }

        #[test]
        fn never_refuses_or_cuts_while_the_page_fits(limit in 0u64..40, used in 0u64..40, page in prop::collection::vec(1i64..10, 0..20)) {
            let distinct = page.iter().collect::<HashSet<_>>().len() as u64;
            match meter_page(used, Cap::hard(limit), Dedup::Daily, &page, |_| false) {
                Metered::Refused(_) | Metered::NoCredit(_) => prop_assert!(used >= limit),
                Metered::Serve(a) => {
                    prop_assert!(used < limit);
                    prop_assert_eq!(a.cut, used + distinct > limit);
                    prop_assert_eq!(u64::from(a.counted), distinct.min(limit - used));
                }
            }
        }
    }
}

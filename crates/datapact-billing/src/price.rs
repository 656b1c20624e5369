//! Price books (versioned by effective date), per-licensee negotiated prices, licensee billing terms, and which
//! price is in force on a day.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, Rate};

/// Days between issue and due date when a licensee does not say (`payment_terms_days`).
pub const DEFAULT_PAYMENT_TERMS_DAYS: u32 = 30;

/// Days an invoice may be overdue before the licensee is suspended, when a licensee does not say (`grace_days`).
pub const DEFAULT_GRACE_DAYS: u32 = 15;

/// The most `payment_terms_days` and `grace_days` may be.
pub const MAX_TERMS_DAYS: u32 = 366;

/// The rate records past `included_records` are charged at, as chosen by [`PlanPrice::usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageRate {
    /// Soft-cap plans: `overage_per_1000`, per 1,000 counted records past `included_records`.
    OveragePer1000(Rate),
    /// Prepaid (pay-per-use) plans: `per_record`, per counted record past `included_records`.
    PerRecord(Rate),
}

impl UsageRate {
    /// The rate.
    pub fn rate(self) -> Rate {
        match self {
            UsageRate::OveragePer1000(rate) | UsageRate::PerRecord(rate) => rate,
        }
    }

    /// The number of records the rate is for: 1,000 or 1.
    pub fn per(self) -> u64 {
        match self {
            UsageRate::OveragePer1000(_) => 1_000,
            UsageRate::PerRecord(_) => 1,
        }
    }

    /// The terms file key: `overage_per_1000` or `per_record`.
    pub fn key(self) -> &'static str {
        match self {
            UsageRate::OveragePer1000(_) => "overage_per_1000",
            UsageRate::PerRecord(_) => "per_record",
        }
    }
}

/// One plan's price in a price book (`[price_book.plans.NAME]`), or a licensee's resolved price on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanPrice {
    /// The monthly fee, in the book's currency (prorated by days of the term; default 0).
    pub monthly_fee: Money,
    /// Counted records per month covered by the fee (default 0).
    pub included_records: u64,
    /// Per 1,000 counted records past `included_records`, for licensees billed in arrears (soft-cap plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_per_1000: Option<Rate>,
    /// Per counted record past `included_records`, for prepaid (pay-per-use) licensees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_record: Option<Rate>,
}

impl PlanPrice {
    /// A price of `monthly_fee` with nothing included and no usage rate.
    pub fn fee_only(monthly_fee: Money) -> PlanPrice {
        PlanPrice { monthly_fee, included_records: 0, overage_per_1000: None, per_record: None }
    }

    /// The price's currency (its fee's).
    pub fn currency(&self) -> Currency {
        self.monthly_fee.currency
    }

    /// The rate records past `included_records` are charged at: for a `prepaid` licensee `per_record`, else
    /// `overage_per_1000`; each falls back to the other when unset; `None` when neither is set (not charged).
    pub fn usage(&self, prepaid: bool) -> Option<UsageRate> {
        let overage = self.overage_per_1000.map(UsageRate::OveragePer1000);
        let per_record = self.per_record.map(UsageRate::PerRecord);
        if prepaid { per_record.or(overage) } else { overage.or(per_record) }
    }
}

/// One version of the price book (`[[price_book]]`): the price of every plan it lists, from `effective` (UTC
/// midnight) until the next version. A version is whole: it replaces the previous one for every plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBook {
    /// The first day the version is in force.
    pub effective: NaiveDate,
    /// Every amount of the version is in this currency.
    pub currency: Currency,
    /// Prices by plan name.
    pub plans: BTreeMap<String, PlanPrice>,
}

/// A licensee's negotiated price (`prices = [{ effective = …, … }]`), in force from `effective` until its next
/// entry. Each field set replaces the book's; fields not set fall back to the price book in force that day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceOverride {
    /// The first day the negotiated price is in force.
    pub effective: NaiveDate,
    /// The currency of its amounts (in the terms file: `currency`, or the price book's in force on `effective`).
    pub currency: Currency,
    /// Replaces the book's monthly fee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_fee: Option<Money>,
    /// Replaces the book's included records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_records: Option<u64>,
    /// Replaces the book's overage rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_per_1000: Option<Rate>,
    /// Replaces the book's per-record rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_record: Option<Rate>,
}

impl PriceOverride {
    /// Whether the entry sets no price field.
    pub fn is_empty(&self) -> bool {
        self.monthly_fee.is_none()
            && self.included_records.is_none()
            && self.overage_per_1000.is_none()
            && self.per_record.is_none()
    }
}

/// A licensee's billing terms: when invoices fall due, how long before an overdue invoice suspends it, and its
/// negotiated prices (sorted by `effective`, one entry per day at most).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BillingTerms {
    /// Days from an invoice's issue date to its due date.
    pub payment_terms_days: u32,
    /// Days an invoice may be overdue before the licensee is suspended.
    pub grace_days: u32,
    /// Negotiated prices, by effective date.
    pub prices: Vec<PriceOverride>,
}

impl Default for BillingTerms {
    fn default() -> BillingTerms {
        BillingTerms { payment_terms_days: DEFAULT_PAYMENT_TERMS_DAYS, grace_days: DEFAULT_GRACE_DAYS, prices: vec![] }
    }
}

impl BillingTerms {
    /// Whether every field has its default (no negotiated price, default days).
    pub fn is_default(&self) -> bool {
        *self == BillingTerms::default()
    }
}

/// A licensee's negotiated price and the book disagree on the currency of a day.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "on {day}, the negotiated price is in {negotiated} but the price book in force is in {book}: give the negotiated price the book's currency"
)]
pub struct CurrencyMismatch {
    /// The day.
    pub day: NaiveDate,
    /// The book's currency.
    pub book: Currency,
    /// The negotiated price's currency.
    pub negotiated: Currency,
}

/// The price book version in force on `day`: the one with the latest `effective` on or before it.
pub fn book_in_force(books: &[PriceBook], day: NaiveDate) -> Option<&PriceBook> {
    books.iter().filter(|b| b.effective <= day).max_by_key(|b| b.effective)
}

/// The negotiated price in force on `day`: the one with the latest `effective` on or before it.
pub fn override_in_force(prices: &[PriceOverride], day: NaiveDate) -> Option<&PriceOverride> {
    prices.iter().filter(|p| p.effective <= day).max_by_key(|p| p.effective)
}

/// The price of `plan` for a licensee on `day`, or `None` if nothing prices it that day (no book in force lists the
/// plan and no negotiated price is in force).
///
/// Resolution: take the plan's price in the book in force ([`book_in_force`]); if a negotiated price is in force
/// ([`override_in_force`]), each of its fields replaces the book's. Without a book price, the negotiated price's
/// missing fields are zero (fee), 0 (included records) and unset (rates). Fails if both exist in different
/// currencies.
///
/// ```
/// use std::collections::BTreeMap;
/// use datapact_billing::{Currency, Money, PlanPrice, PriceBook, PriceOverride, Rate, UsageRate, price_on};
///
/// let usd = |text| Money::parse(Currency::Usd, text).unwrap();
/// let basic = PlanPrice {
///     monthly_fee: usd("200.00"),
///     included_records: 10_000,
///     overage_per_1000: Some(Rate::parse("15.00").unwrap()),
///     per_record: Some(Rate::parse("0.005").unwrap()),
/// };
/// let books = [PriceBook {
///     effective: "2026-12-01".parse().unwrap(),
///     currency: Currency::Usd,
///     plans: BTreeMap::from([("basic".to_owned(), basic)]),
/// }];
/// let negotiated = [PriceOverride {
///     effective: "2026-12-15".parse().unwrap(),
///     currency: Currency::Usd,
///     monthly_fee: Some(usd("150.00")),
///     included_records: None,
///     overage_per_1000: None,
///     per_record: None,
/// }];
/// let on = |day: &str| price_on(&books, &negotiated, "basic", day.parse().unwrap()).unwrap();
/// assert_eq!(on("2026-11-30"), None);
/// assert_eq!(on("2026-12-14"), Some(basic));
/// assert_eq!(on("2026-12-15"), Some(PlanPrice { monthly_fee: usd("150.00"), ..basic }));
/// assert_eq!(basic.usage(false), Some(UsageRate::OveragePer1000(Rate::parse("15").unwrap())));
/// assert_eq!(basic.usage(true), Some(UsageRate::PerRecord(Rate::parse("0.005").unwrap())));
/// ```
pub fn price_on(
    books: &[PriceBook],
    prices: &[PriceOverride],
    plan: &str,
    day: NaiveDate,
) -> Result<Option<PlanPrice>, CurrencyMismatch> {
    let book = book_in_force(books, day).and_then(|b| b.plans.get(plan)).copied();
    let Some(negotiated) = override_in_force(prices, day) else { return Ok(book) };
    let base = match book {
        Some(book) if book.currency() == negotiated.currency => book,
        // Rates carry no currency: the book's are in the book's, so nothing of the two may be mixed.
        Some(book) => return Err(CurrencyMismatch { day, book: book.currency(), negotiated: negotiated.currency }),
        None => PlanPrice::fee_only(Money::zero(negotiated.currency)),
    };
    Ok(Some(PlanPrice {
        monthly_fee: negotiated.monthly_fee.unwrap_or(base.monthly_fee),
        included_records: negotiated.included_records.unwrap_or(base.included_records),
        overage_per_1000: negotiated.overage_per_1000.or(base.overage_per_1000),
        per_record: negotiated.per_record.or(base.per_record),
    }))
}

/// Checks a set of price book versions, returning `(index, message)` for each problem, `index` into `books`:
/// effective dates are unique; every fee is in its book's currency; and a later version prices every plan an earlier
/// one priced (a version replaces the whole book, so leaving a plan out would make it free by accident; write
/// `monthly_fee = "0"` to make it free on purpose).
pub fn check_price_books(books: &[PriceBook]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (index, book) in books.iter().enumerate() {
        if books[..index].iter().any(|b| b.effective == book.effective) {
            problems.push((
                index,
                format!(
                    "another [[price_book]] is effective on {} too: give each version its own date",
                    book.effective
                ),
            ));
        }
        for (plan, price) in &book.plans {
            if price.monthly_fee.is_negative() {
                problems.push((index, format!("plans.{plan}: the fee is negative: prices are zero or more")));
            }
            if price.currency() != book.currency {
                problems.push((
                    index,
                    format!(
                        "plans.{plan}: the fee is in {} but the book is in {}: use the book's currency",
                        price.currency(),
                        book.currency
                    ),
                ));
            }
        }
        for earlier in books.iter().filter(|b| b.effective < book.effective) {
            for plan in earlier.plans.keys().filter(|p| !book.plans.contains_key(*p)) {
                problems.push((
                    index,
                    format!(
                        "does not price plan {plan:?}, which the version effective {} prices: a version replaces the whole book, so price every plan again (monthly_fee = \"0\" makes it free)",
                        earlier.effective
                    ),
                ));
            }
        }
    }
    problems.sort_by_key(|(index, _)| *index);
    problems.dedup();
    problems
}

/// Checks a licensee's negotiated prices, returning `(index, message)` for each problem: effective dates are
/// unique and every fee is in the entry's currency.
pub fn check_overrides(prices: &[PriceOverride]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (index, price) in prices.iter().enumerate() {
        if prices[..index].iter().any(|p| p.effective == price.effective) {
            problems.push((
                index,
                format!("another negotiated price is effective on {} too: keep one per date", price.effective),
            ));
        }
        if price.monthly_fee.is_some_and(|fee| fee.is_negative()) {
            problems.push((index, "the fee is negative: prices are zero or more".to_owned()));
        }
        if let Some(fee) = price.monthly_fee.filter(|fee| fee.currency != price.currency) {
            problems.push((
                index,
                format!("the fee is in {} but the entry is in {}: use one currency", fee.currency, price.currency),
            ));
        }
    }
    problems
}

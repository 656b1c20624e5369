//! datapact's billing rules, as pure functions and data: no I/O, no clock (`now` is always a parameter), no floats.
//! The store keeps invoices and payments and the gateway answers 402; this crate decides what they hold.
//!
//! - [`money`]: [`Currency`] (with its minor-unit exponent), [`Money`] in integer minor units, [`Rate`] in
//!   micro-units, exact decimal parsing and formatting, and [`round_half_even`].
//! - [`price`]: [`PriceBook`] versions by effective date, a licensee's negotiated [`PriceOverride`]s and
//!   [`BillingTerms`], and [`price_on`], the price in force on a day. The terms file (`datapact-terms`) parses them.
//! - [`notice`]: [`check_notice`], which refuses a price book change sooner than the notice period unless forced.
//! - [`invoice`]: [`compute_invoice`], a licensee's month priced into [`InvoiceLine`]s and a total.
//! - [`dunning`]: an invoice's [`InvoiceStatus`] at an instant, and [`suspension`].
//!
//! # Money
//!
//! Amounts are integers of the currency's minor unit ([`Money`]: cents for USD, EUR, GBP; yen for JPY, which has
//! none). Unit rates ([`Rate`]: `per_record`, `overage_per_1000`) are integers of **micro-units** (millionths of the
//! unit, whatever the currency): `per_record = "0.005"` USD is 5,000 micro-dollars, half a cent. Amounts and rates
//! are written as decimal strings and parsed exactly: digits, an optional point and digits, nothing else (no `+`,
//! exponent, separator or space); at most the currency's decimals for an amount and 6 for a rate (trailing zeros
//! beyond that are fine: `"200.000"` is 200.00 USD); negative only where a caller allows it (never in prices).
//!
//! # Rounding
//!
//! Each invoice line is computed exactly, as a fraction of minor units, and **rounded once, half-even** (banker's
//! rounding: to the nearest minor unit, a tie to the even one). Nothing is rounded before that and the total is the
//! sum of the rounded lines, so each line is within half a minor unit of its exact amount and the lines always sum
//! to the total. Worked examples (USD unless noted):
//!
//! | line | exact | rounded |
//! |------|-------|---------|
//! | 14 of 31 days of a 200.00 fee: 20,000 × 14 / 31 | 9,032.258… ¢ | 90.32 |
//! | 15 of 30 days of a 100.01 fee: 10,001 × 15 / 30 | 5,000.5 ¢ (tie) | 50.00 (5,000 is even) |
//! | 15 of 30 days of a 100.03 fee: 10,003 × 15 / 30 | 5,001.5 ¢ (tie) | 50.02 (5,002 is even) |
//! | 1,001 records at 15.00 per 1,000 | 1,501.5 ¢ (tie) | 15.02 |
//! | 1,003 records at 15.00 per 1,000 | 1,504.5 ¢ (tie) | 15.04 |
//! | 1 record at 0.005 | 0.5 ¢ (tie) | 0.00 |
//! | 3 records at 0.005 | 1.5 ¢ (tie) | 0.02 |
//! | 3 records at 0.5 JPY | 1.5 yen (tie) | 2 JPY |
//!
//! # Prices
//!
//! A **price book** version (`[[price_book]]`) holds the price of every plan it lists, in one currency, from its
//! `effective` date (UTC midnight) until the next version: `monthly_fee`, `included_records` (counted records a
//! month covered by the fee), and the usage rates for the records past them: `overage_per_1000` (soft-cap plans,
//! billed in arrears) and `per_record` (prepaid plans). A licensee billed in arrears pays `overage_per_1000`, a
//! prepaid one `per_record`, each falling back to the other when unset ([`PlanPrice::usage`]). A version is whole:
//! it must price again every plan an earlier version priced ([`check_price_books`]). A licensee's **negotiated
//! prices** (`prices = [{ effective, … }]`) are in force from their own date until the licensee's next entry; each
//! field set replaces the book's. [`price_on`] resolves a day. Raising prices for everyone is a new version, which [`check_notice`] refuses unless it takes effect at
//! least the notice period (default [`DEFAULT_NOTICE_DAYS`]) after `now` — or the operator forces it.
//!
//! # Invoices
//!
//! [`compute_invoice`] prices one licensee's month from its plan, agreement term, the price books, its negotiated
//! prices, and the ledger's counted records as `(delivery day, count)` in delivery order:
//!
//! 1. **Base fee, prorated by days of the term.** For each run of consecutive days of the term inside the month with
//!    the same monthly fee in force, one line: `monthly_fee × days / days_in_month`, rounded once. A full month is
//!    exactly the fee; a price change mid-month gives two lines. Days nothing prices bill no fee; a zero fee gives
//!    no line.
//! 2. **Records, in delivery order.** Record *n* of the month (from 0) is *included* when *n* is below the
//!    `included_records` of the price in force on its delivery day; otherwise it is charged at that day's usage rate
//!    (or, without one, listed as not charged). Included records are not prorated. Each record is priced by the book
//!    in force on its own delivery day, so a price change affects only records delivered on or after its date.
//! 3. **Lines** group records priced the same way over a run of days with the same parameter: one line of included
//!    records per `included_records` run, one usage line per usage-rate run (a rate change mid-month gives two
//!    lines), zero-amount lines for records not charged, so every counted record appears on exactly one line.
//! 4. **Total** = the sum of the lines. An invoice has one currency: prices billed in a month must share it.
//!
//! Invariants, asserted on every invoice and property-tested: the lines sum to the total; every counted record is
//! priced exactly once; no line is negative; each line is within half a minor unit of its exact amount; a price
//! change only affects days on or after its effective date.
//!
//! Prepaid plans (`per_record`) are charged from the prepaid credit as records are delivered; their invoice lines
//! state what the credit paid for. A prepaid balance kept in micro-units ([`Rate::micro_charge`]) stays exact per
//! delivery.
//!
//! # Example: a price change mid-month
//!
//! ```
//! use std::collections::BTreeMap;
//! use datapact_billing::*;
//!
//! let day = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
//! let price = |fee: &str, overage: &str| PlanPrice {
//!     monthly_fee: Money::parse(Currency::Usd, fee).unwrap(),
//!     included_records: 10_000,
//!     overage_per_1000: Some(Rate::parse(overage).unwrap()),
//!     per_record: None,
//! };
//! let book = |effective: &str, p: PlanPrice| PriceBook {
//!     effective: day(effective),
//!     currency: Currency::Usd,
//!     plans: BTreeMap::from([("basic".to_owned(), p)]),
//! };
//! let books = [book("2026-01-01", price("200.00", "15.00")), book("2026-12-15", price("250.00", "20.00"))];
//! let deliveries = [(day("2026-12-05"), 6_000), (day("2026-12-10"), 5_001), (day("2026-12-20"), 2_345)];
//! let invoice = compute_invoice(&InvoiceInput {
//!     plan: "basic",
//!     term: Term { starts: Some(day("2026-12-04")), ends: None },
//!     month: Month::new(2026, 12).unwrap(),
//!     books: &books,
//!     prices: &[],
//!     prepaid: false,
//!     deliveries: &deliveries,
//! })
//! .unwrap()
//! .unwrap();
//! let lines: Vec<String> = invoice.lines.iter().map(|l| l.to_string()).collect();
//! assert_eq!(lines, [
//!     "2026-12-04..2026-12-14  base fee: 11 of 31 days at 200.00 USD a month  70.97 USD", // 7,096.77… ¢
//!     "2026-12-15..2026-12-31  base fee: 17 of 31 days at 250.00 USD a month  137.10 USD", // 13,709.67… ¢
//!     "2026-12-05..2026-12-10  included: 10000 records covered by the fee  0.00 USD",
//!     "2026-12-10..2026-12-10  overage: 1001 records at 15.00 USD per 1,000  15.02 USD", // 1,501.5 ¢, a tie
//!     "2026-12-20..2026-12-20  overage: 2345 records at 20.00 USD per 1,000  46.90 USD",
//! ]);
//! assert_eq!(invoice.total.to_string(), "269.99 USD");
//! assert_eq!(invoice.records, 13_346);
//! ```

#![warn(missing_docs)]

pub mod dunning;
pub mod invoice;
pub mod money;
pub mod month;
pub mod notice;
pub mod price;

pub use dunning::{
    InvoiceAccount, InvoiceStatus, OverdueInvoice, Payment, Suspension, due_date, overdue_from, suspended_from,
    suspension,
};
pub use invoice::{
    Charge, Invoice, InvoiceError, InvoiceInput, InvoiceLine, PricedRecords, RecordPricing, compute_invoice,
    price_deliveries,
};
pub use money::{
    AmountError, Currency, Exact, MICROS_PER_UNIT, Money, RATE_DECIMALS, Rate, format_micro, round_half_even,
};
pub use month::{Month, Term};
pub use notice::{
    DEFAULT_NOTICE_DAYS, NoticeError, NoticeViolation, VersionChange, check_notice, earliest_effective,
    notice_violations,
};
pub use price::{
    BillingTerms, CurrencyMismatch, DEFAULT_GRACE_DAYS, DEFAULT_PAYMENT_TERMS_DAYS, MAX_TERMS_DAYS, PlanPrice,
    PriceBook, PriceOverride, UsageRate, book_in_force, check_overrides, check_price_books, override_in_force,
    price_on,
};

//! Invoice computation: a licensee's month, priced. Pure: the ledger's counts, the term and the prices in, lines
//! and a total out. The rules are in the crate documentation.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Exact, Money, Rate};
use crate::month::{Month, Term};
use crate::price::{CurrencyMismatch, PlanPrice, PriceBook, PriceOverride, UsageRate, price_on};

/// Everything an invoice is computed from.
#[derive(Clone, Copy, Debug)]
pub struct InvoiceInput<'a> {
    /// The licensee's plan.
    pub plan: &'a str,
    /// The licensee's agreement term.
    pub term: Term,
    /// The month invoiced.
    pub month: Month,
    /// Every price book version.
    pub books: &'a [PriceBook],
    /// The licensee's negotiated prices.
    pub prices: &'a [PriceOverride],
    /// Whether the licensee pays in advance from a prepaid credit: records past `included_records` are then priced
    /// `per_record` and shown as paid from the credit ([`Charge::Prepaid`], amount zero), otherwise
    /// `overage_per_1000` (see [`PlanPrice::usage`]).
    pub prepaid: bool,
    /// The month's counted records as `(delivery day, count)`, in delivery order (days never go back; a day may
    /// appear more than once, e.g. one entry per usage event). Entries of zero records are ignored.
    pub deliveries: &'a [(NaiveDate, u64)],
}

/// How one group of counted records was priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "rate", rename_all = "snake_case")]
pub enum RecordPricing {
    /// Covered by the monthly fee (within `included_records`).
    Included,
    /// Charged at this rate.
    Charged(UsageRate),
    /// Past `included_records`, but the price has no usage rate: not charged.
    Uncharged,
    /// Delivered on a day nothing priced the plan for the licensee (before its first price): not charged.
    Unpriced,
}

/// Counted records of one delivery day priced one way (a delivery that crosses `included_records` is split in two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PricedRecords {
    /// The delivery day.
    pub day: NaiveDate,
    /// How many records.
    pub records: u64,
    /// How they were priced.
    pub pricing: RecordPricing,
}

/// What an invoice line charges for. Deserialize reads back what the store kept of an issued invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Charge {
    /// The monthly fee for `days` days of the term: `monthly_fee × days / days_in_month`.
    BaseFee {
        /// The full monthly fee in force on those days.
        monthly_fee: Money,
        /// Days of the term billed by this line.
        days: u32,
        /// Days of the month.
        days_in_month: u32,
    },
    /// Records covered by the fee (amount zero).
    Included {
        /// How many.
        records: u64,
    },
    /// Records past `included_records`, per 1,000.
    Overage {
        /// How many.
        records: u64,
        /// The price per 1,000 records.
        per_1000: Rate,
    },
    /// Records past `included_records`, each (prepaid plans).
    PerRecord {
        /// How many.
        records: u64,
        /// The price per record.
        per_record: Rate,
    },
    /// Records past `included_records` of a prepaid licensee, paid from its prepaid credit as they were delivered
    /// (amount zero: the ledger charged the credit in the same commit as each delivery).
    Prepaid {
        /// How many.
        records: u64,
        /// The price per record they were charged at.
        per_record: Rate,
    },
    /// Records past `included_records` of a price without a usage rate (amount zero).
    Uncharged {
        /// How many.
        records: u64,
    },
    /// Records delivered before anything priced the plan (amount zero).
    Unpriced {
        /// How many.
        records: u64,
    },
}

impl Charge {
    /// The counted records the line prices (0 for the base fee).
    pub fn records(&self) -> u64 {
        match *self {
            Charge::BaseFee { .. } => 0,
            Charge::Included { records }
            | Charge::Overage { records, .. }
            | Charge::PerRecord { records, .. }
            | Charge::Prepaid { records, .. }
            | Charge::Uncharged { records }
            | Charge::Unpriced { records } => records,
        }
    }

    /// The exact amount in minor units of `currency`, before rounding.
    pub fn exact(&self, currency: Currency) -> Exact {
        match *self {
            Charge::BaseFee { monthly_fee, days, days_in_month } => Exact {
                numerator: i128::from(monthly_fee.minor) * i128::from(days),
                denominator: i128::from(days_in_month.max(1)),
            },
            Charge::Overage { records, per_1000 } => per_1000.exact_charge(records, 1_000, currency),
            Charge::PerRecord { records, per_record } => per_record.exact_charge(records, 1, currency),
            Charge::Included { .. } | Charge::Prepaid { .. } | Charge::Uncharged { .. } | Charge::Unpriced { .. } => {
                Exact { numerator: 0, denominator: 1 }
            }
        }
    }
}

/// One line of an invoice: a charge over a span of days, and its amount rounded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The first day the line covers (fee: first day billed; records: first delivery day).
    pub first_day: NaiveDate,
    /// The last day the line covers, inclusive.
    pub last_day: NaiveDate,
    /// What is charged.
    pub charge: Charge,
    /// The amount: [`Charge::exact`] rounded half-even to the currency's minor unit.
    pub amount: Money,
}

impl InvoiceLine {
    /// The line's exact amount before rounding, in minor units.
    pub fn exact(&self) -> Exact {
        self.charge.exact(self.amount.currency)
    }
}

impl fmt::Display for InvoiceLine {
    /// `2026-12-01..2026-12-14  overage: 1234 records at 15.00 per 1,000  18.51 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}  ", self.first_day, self.last_day)?;
        let currency = self.amount.currency;
        match self.charge {
            Charge::BaseFee { monthly_fee, days, days_in_month } => {
                write!(f, "base fee: {days} of {days_in_month} days at {monthly_fee} a month")?
            }
            Charge::Included { records } => write!(f, "included: {records} records covered by the fee")?,
            Charge::Overage { records, per_1000 } => {
                write!(f, "overage: {records} records at {per_1000} {currency} per 1,000")?
            }
            Charge::PerRecord { records, per_record } => {
                write!(f, "usage: {records} records at {per_record} {currency} each")?
            }
            Charge::Prepaid { records, per_record } => {
                write!(f, "prepaid: {records} records at {per_record} {currency} each, paid from the credit")?
            }
            Charge::Uncharged { records } => write!(f, "not charged: {records} records past the included ones")?,
            Charge::Unpriced { records } => write!(f, "not charged: {records} records delivered before any price")?,
        }
        write!(f, "  {}", self.amount)
    }
}

/// A licensee's month, priced: lines in order (base fees by date, then record lines in delivery order), their
/// total and the records counted. The store adds the number, issue and due dates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice {
    /// The month.
    pub month: Month,
    /// The plan billed.
    pub plan: String,
    /// Every line's currency.
    pub currency: Currency,
    /// The lines.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines.
    pub total: Money,
    /// Counted records priced (the sum of the record lines; equal to the input's).
    pub records: u64,
}

/// Why an invoice cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    /// A delivery is dated outside the month invoiced.
    #[error("a delivery on {day} is outside the month invoiced ({month})")]
    DeliveryOutsideMonth {
        /// The delivery day.
        day: NaiveDate,
        /// The month.
        month: Month,
    },
    /// Deliveries are not in delivery order.
    #[error("deliveries are not in delivery order: {day} comes after {previous}")]
    OutOfOrder {
        /// The offending day.
        day: NaiveDate,
        /// The day before it in the input.
        previous: NaiveDate,
    },
    /// A negotiated price and the book disagree on a day's currency.
    #[error(transparent)]
    Currency(#[from] CurrencyMismatch),
    /// Prices in force during the month are in more than one currency.
    #[error("the prices billed this month are in {first} and, from {day}, in {other}: an invoice has one currency")]
    MixedCurrencies {
        /// The currency of the first day billed.
        first: Currency,
        /// Another currency.
        other: Currency,
        /// The first day in `other`.
        day: NaiveDate,
    },
    /// A fee in force is negative (prices are zero or more).
    #[error("the monthly fee in force on {day} is negative")]
    NegativeFee {
        /// The first such day.
        day: NaiveDate,
    },
    /// An amount (or the month's record count) does not fit 64 bits.
    #[error("an amount of the invoice overflows 64-bit minor units")]
    Overflow,
}

/// The price of the plan on each day of the month (index 0 is the 1st).
fn daily_prices(input: &InvoiceInput) -> Result<Vec<Option<PlanPrice>>, InvoiceError> {
    input
        .month
        .iter_days()
        .map(|day| match price_on(input.books, input.prices, input.plan, day)? {
            Some(price) if price.monthly_fee.is_negative() => Err(InvoiceError::NegativeFee { day }),
            price => Ok(price),
        })
        .collect()
}

fn day_index(month: Month, day: NaiveDate) -> usize {
    (day - month.first_day()).num_days() as usize
}

fn check_deliveries(input: &InvoiceInput) -> Result<(), InvoiceError> {
    let mut previous: Option<NaiveDate> = None;
    let mut counted: u64 = 0;
    for &(day, count) in input.deliveries {
        counted = counted.checked_add(count).ok_or(InvoiceError::Overflow)?;
        if !input.month.contains(day) {
            return Err(InvoiceError::DeliveryOutsideMonth { day, month: input.month });
        }
        if let Some(previous) = previous.filter(|p| *p > day) {
            return Err(InvoiceError::OutOfOrder { day, previous });
        }
        previous = Some(day);
    }
    Ok(())
}

fn classify(input: &InvoiceInput, prices: &[Option<PlanPrice>]) -> Vec<PricedRecords> {
    let mut out = Vec::new();
    let mut before: u64 = 0; // counted records earlier in the month
    for &(day, count) in input.deliveries.iter().filter(|(_, count)| *count > 0) {
        match prices[day_index(input.month, day)] {
            None => out.push(PricedRecords { day, records: count, pricing: RecordPricing::Unpriced }),
            Some(price) => {
                let covered = count.min(price.included_records.saturating_sub(before));
                if covered > 0 {
                    out.push(PricedRecords { day, records: covered, pricing: RecordPricing::Included });
                }
                if count > covered {
                    let pricing = price.usage(input.prepaid).map_or(RecordPricing::Uncharged, RecordPricing::Charged);
                    out.push(PricedRecords { day, records: count - covered, pricing });
                }
            }
        }
        before = before.saturating_add(count);
    }
    out
}

/// How each counted record of the month is priced, in delivery order: record *n* of the month (counting from 0 in
/// delivery order) is included when *n* < the `included_records` of the price in force on its delivery day,
/// otherwise charged at that price's usage rate ([`PlanPrice::usage`]; uncharged without one, unpriced if nothing
/// prices that day).
pub fn price_deliveries(input: &InvoiceInput) -> Result<Vec<PricedRecords>, InvoiceError> {
    check_deliveries(input)?;
    Ok(classify(input, &daily_prices(input)?))
}

/// Run numbers: equal neighbours share a run, a change starts the next one.
fn runs<T: PartialEq>(values: &[T]) -> Vec<u32> {
    let mut run = 0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i > 0 && values[i - 1] != *v {
                run += 1;
            }
            run
        })
        .collect()
}

fn rounded(charge: Charge, currency: Currency) -> Result<Money, InvoiceError> {
    let minor = charge.exact(currency).round().ok_or(InvoiceError::Overflow)?;
    Ok(Money::new(currency, minor))
}

/// Computes a licensee's invoice for a month; `Ok(None)` when there is nothing to bill: no day of the term in the
/// month and no counted record on a priced day (e.g. the month is before the plan's first price).
///
/// See the crate documentation for the rules (proration, included records, overage, rounding) and a worked example.
pub fn compute_invoice(input: &InvoiceInput) -> Result<Option<Invoice>, InvoiceError> {
    check_deliveries(input)?;
    let month = input.month;
    let prices = daily_prices(input)?;
    let days: Vec<NaiveDate> = month.iter_days().collect();
    let in_term: Vec<bool> = days.iter().map(|d| input.term.contains(*d)).collect();

    // One currency for every day billed (in the term, or with a delivery) that has a price.
    let mut billed = in_term.clone();
    for &(day, count) in input.deliveries {
        billed[day_index(month, day)] |= count > 0;
    }
    let mut currency: Option<(Currency, NaiveDate)> = None;
    for (i, price) in prices.iter().enumerate() {
        let Some(price) = price.filter(|_| billed[i]) else { continue };
        match currency {
            None => currency = Some((price.currency(), days[i])),
            Some((first, _)) if first != price.currency() => {
                return Err(InvoiceError::MixedCurrencies { first, other: price.currency(), day: days[i] });
            }
            Some(_) => {}
        }
    }
    let Some((currency, _)) = currency else { return Ok(None) };

    let mut lines = Vec::new();

    // Base fee: one line per run of term days with the same fee; days without a price bill no fee.
    let mut i = 0;
    while i < days.len() {
        let Some(fee) = prices[i].filter(|_| in_term[i]).map(|p| p.monthly_fee) else {
            i += 1;
            continue;
        };
        let start = i;
        while i < days.len() && in_term[i] && prices[i].map(|p| p.monthly_fee) == Some(fee) {
            i += 1;
        }
        if fee.minor != 0 {
            let charge = Charge::BaseFee { monthly_fee: fee, days: (i - start) as u32, days_in_month: month.days() };
            lines.push(InvoiceLine {
                first_day: days[start],
                last_day: days[i - 1],
                charge,
                amount: rounded(charge, currency)?,
            });
        }
    }

    // Records: one line per way of pricing and run of days with the same parameter (a price change mid-month
    // starts a new line).
    let included_runs = runs(&prices.iter().map(|p| p.map(|p| p.included_records)).collect::<Vec<_>>());
    let usage_runs = runs(&prices.iter().map(|p| p.map(|p| p.usage(input.prepaid))).collect::<Vec<_>>());
    let mut groups: Vec<(RecordPricing, NaiveDate, NaiveDate, u64)> = Vec::new();
    let mut by_key: BTreeMap<(u8, u32), usize> = BTreeMap::new();
    let priced = classify(input, &prices);
    for part in &priced {
        let index = day_index(month, part.day);
        let key = match part.pricing {
            RecordPricing::Included => (0, included_runs[index]),
            RecordPricing::Charged(_) => (1, usage_runs[index]),
            RecordPricing::Uncharged => (2, usage_runs[index]),
            RecordPricing::Unpriced => (3, usage_runs[index]),
        };
        match by_key.get(&key) {
            Some(&g) => {
                let group = &mut groups[g];
                group.2 = part.day;
                group.3 = group.3.checked_add(part.records).ok_or(InvoiceError::Overflow)?;
            }
            None => {
                by_key.insert(key, groups.len());
                groups.push((part.pricing, part.day, part.day, part.records));
            }
        }
    }
    for (pricing, first_day, last_day, records) in groups {
        let charge = match pricing {
            RecordPricing::Included => Charge::Included { records },
            RecordPricing::Charged(UsageRate::OveragePer1000(per_1000)) => Charge::Overage { records, per_1000 },
            RecordPricing::Charged(UsageRate::PerRecord(per_record)) if input.prepaid => {
                Charge::Prepaid { records, per_record }
            }
            RecordPricing::Charged(UsageRate::PerRecord(per_record)) => Charge::PerRecord { records, per_record },
            RecordPricing::Uncharged => Charge::Uncharged { records },
            RecordPricing::Unpriced => Charge::Unpriced { records },
        };
        lines.push(InvoiceLine { first_day, last_day, charge, amount: rounded(charge, currency)? });
    }

    let mut total = Money::zero(currency);
    for line in &lines {
        total = total.checked_add(line.amount).ok_or(InvoiceError::Overflow)?;
    }
    let records: u64 = lines.iter().map(|l| l.charge.records()).sum();
    let invoice = Invoice { month, plan: input.plan.to_owned(), currency, lines, total, records };
    assert_invariants(&invoice, input);
    Ok(Some(invoice))
}

/// The invariants every invoice keeps (also property-tested): the lines sum to the total; every counted record is
/// priced exactly once; no line is negative; each line is within half a minor unit of its exact amount.
fn assert_invariants(invoice: &Invoice, input: &InvoiceInput) {
    let counted: u64 = input.deliveries.iter().map(|(_, n)| n).sum(); // checked by `check_deliveries`
    assert_eq!(invoice.records, counted, "every counted record is priced exactly once");
    let sum: i128 = invoice.lines.iter().map(|l| i128::from(l.amount.minor)).sum();
    assert_eq!(sum, i128::from(invoice.total.minor), "the lines sum to the total");
    for line in &invoice.lines {
        assert_eq!(line.amount.currency, invoice.currency, "one currency");
        assert!(line.amount.minor >= 0, "no line is negative");
        let exact = line.exact();
        let error = i128::from(line.amount.minor) * exact.denominator - exact.numerator;
        assert!(2 * error.abs() <= exact.denominator, "a line is rounded once, to the nearest minor unit");
    }
}

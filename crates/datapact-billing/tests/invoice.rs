//! Invoice computation: worked cases and the invariants, property-tested against a record-by-record reference.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use datapact_billing::*;
use proptest::prelude::*;

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn usd(text: &str) -> Money {
    Money::parse(Currency::Usd, text).unwrap()
}

fn basic(fee: &str, included: u64, overage_per_1000: Option<Rate>) -> PlanPrice {
    PlanPrice { monthly_fee: usd(fee), included_records: included, overage_per_1000, per_record: None }
}

fn overage(text: &str) -> Option<Rate> {
    Some(Rate::parse(text).unwrap())
}

fn book(effective: &str, price: PlanPrice) -> PriceBook {
    PriceBook {
        effective: day(effective),
        currency: price.currency(),
        plans: BTreeMap::from([("basic".to_owned(), price)]),
    }
}

fn december() -> Month {
    Month::new(2026, 12).unwrap()
}

fn invoice(books: &[PriceBook], prices: &[PriceOverride], term: Term, deliveries: &[(NaiveDate, u64)]) -> Invoice {
    compute_invoice(&InvoiceInput { plan: "basic", term, month: december(), books, prices, prepaid: false, deliveries })
        .unwrap()
        .expect("something to bill")
}

#[test]
fn a_full_month_bills_exactly_the_fee_and_the_overage() {
    let books = [book("2026-01-01", basic("200.00", 10_000, overage("15.00")))];
    let inv = invoice(&books, &[], Term::default(), &[(day("2026-12-01"), 9_000), (day("2026-12-31"), 2_234)]);
    let charges: Vec<Charge> = inv.lines.iter().map(|l| l.charge).collect();
    assert_eq!(
        charges,
        [
            Charge::BaseFee { monthly_fee: usd("200.00"), days: 31, days_in_month: 31 },
            Charge::Included { records: 10_000 },
            Charge::Overage { records: 1_234, per_1000: Rate::parse("15").unwrap() },
        ]
    );
    assert_eq!(inv.lines[2].amount, usd("18.51"));
    assert_eq!(inv.total, usd("218.51"));
}

#[test]
fn the_fee_is_prorated_by_days_of_the_term() {
    let books = [book("2026-01-01", basic("200.00", 0, None))];
    let starts_18th = Term { starts: Some(day("2026-12-18")), ends: None };
    assert_eq!(invoice(&books, &[], starts_18th, &[]).total, usd("90.32")); // 20,000 × 14 / 31 = 9,032.26 ¢
    let ends_18th = Term { starts: None, ends: Some(day("2026-12-18")) };
    assert_eq!(invoice(&books, &[], ends_18th, &[]).total, usd("109.68")); // 20,000 × 17 / 31 = 10,967.74 ¢
    let one_day = Term { starts: Some(day("2026-12-05")), ends: Some(day("2026-12-06")) };
    assert_eq!(invoice(&books, &[], one_day, &[]).total, usd("6.45")); // 645.16 ¢
    // Outside the term with no records: nothing to bill.
    let later = Term { starts: Some(day("2027-01-01")), ends: None };
    let input = InvoiceInput {
        plan: "basic",
        term: later,
        month: december(),
        books: &books,
        prices: &[],
        prepaid: false,
        deliveries: &[],
    };
    assert_eq!(compute_invoice(&input).unwrap(), None);
}

fn books_of(price: PlanPrice) -> [PriceBook; 1] {
    [book("2026-01-01", price)]
}

#[test]
fn ties_round_to_even() {
    let november = Month::new(2026, 11).unwrap(); // 30 days
    let term = Term { starts: Some(day("2026-11-16")), ends: None }; // 15 days
    for (fee, expected) in [("100.01", "50.00"), ("100.03", "50.02")] {
        let books = [book("2026-01-01", basic(fee, 0, None))];
        let input = InvoiceInput {
            plan: "basic",
            term,
            month: november,
            books: &books,
            prices: &[],
            prepaid: false,
            deliveries: &[],
        };
        assert_eq!(compute_invoice(&input).unwrap().unwrap().total, usd(expected), "{fee}");
    }
    let per_record = |n| {
        let price = PlanPrice { per_record: Some(Rate::parse("0.005").unwrap()), ..basic("0", 0, None) };
        invoice(&books_of(price), &[], Term::default(), &[(day("2026-12-02"), n)]).total
    };
    assert_eq!([per_record(1), per_record(3), per_record(5)], [usd("0"), usd("0.02"), usd("0.02")]);
}

#[test]
fn yen_have_no_minor_unit() {
    let price = PlanPrice {
        per_record: Some(Rate::parse("0.5").unwrap()),
        ..PlanPrice::fee_only(Money::parse(Currency::Jpy, "30000").unwrap())
    };
    let books = [book("2026-01-01", price)];
    let inv = invoice(&books, &[], Term { starts: Some(day("2026-12-17")), ends: None }, &[(day("2026-12-20"), 3)]);
    assert_eq!(inv.currency, Currency::Jpy);
    // 30,000 × 15 / 31 = 14,516.13 yen; 3 × 0.5 = 1.5 yen, a tie, to 2.
    assert_eq!(inv.lines.iter().map(|l| l.amount.minor).collect::<Vec<_>>(), [14_516, 2]);
    assert_eq!(inv.total.to_string(), "14518 JPY");
}

#[test]
fn a_price_change_mid_month_gives_two_lines_each() {
    let books = [
        book("2026-01-01", basic("200.00", 1_000, overage("15.00"))),
        book("2026-12-15", basic("250.00", 1_000, overage("20.00"))),
    ];
    let inv = invoice(&books, &[], Term::default(), &[(day("2026-12-14"), 2_000), (day("2026-12-15"), 1_000)]);
    let amounts: Vec<String> = inv.lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        amounts,
        [
            "2026-12-01..2026-12-14  base fee: 14 of 31 days at 200.00 USD a month  90.32 USD",
            "2026-12-15..2026-12-31  base fee: 17 of 31 days at 250.00 USD a month  137.10 USD",
            "2026-12-14..2026-12-14  included: 1000 records covered by the fee  0.00 USD",
            "2026-12-14..2026-12-14  overage: 1000 records at 15.00 USD per 1,000  15.00 USD",
            "2026-12-15..2026-12-15  overage: 1000 records at 20.00 USD per 1,000  20.00 USD",
        ]
    );
    assert_eq!(inv.total, usd("262.42"));
}

#[test]
fn included_records_follow_the_price_of_each_delivery_day() {
    // The allowance rises from 5,000 to 10,000 on the 15th: 7,000 before (2,000 over), then 4,000 more, of which
    // records 7,000..9,999 are included and 1,000 are over.
    let books = [
        book("2026-01-01", basic("100", 5_000, overage("10"))),
        book("2026-12-15", basic("100", 10_000, overage("10"))),
    ];
    let inv = invoice(&books, &[], Term::default(), &[(day("2026-12-10"), 7_000), (day("2026-12-20"), 4_000)]);
    let charges: Vec<Charge> = inv.lines.iter().map(|l| l.charge).collect();
    let ten = Rate::parse("10").unwrap();
    assert_eq!(
        charges,
        [
            Charge::BaseFee { monthly_fee: usd("100"), days: 31, days_in_month: 31 },
            Charge::Included { records: 5_000 },
            Charge::Overage { records: 3_000, per_1000: ten },
            Charge::Included { records: 3_000 },
        ]
    );
}

#[test]
fn negotiated_prices_override_the_book_from_their_date() {
    let books = [book("2026-01-01", basic("200.00", 1_000, overage("15.00")))];
    let nimbus = [PriceOverride {
        effective: day("2026-12-16"),
        currency: Currency::Usd,
        monthly_fee: Some(usd("38000.00")),
        included_records: None,
        overage_per_1000: None,
        per_record: None,
    }];
    let inv = invoice(&books, &nimbus, Term::default(), &[(day("2026-12-20"), 1_500)]);
    assert_eq!(inv.lines[0].amount, usd("96.77")); // 200 × 15 / 31
    assert_eq!(inv.lines[1].amount, usd("19612.90")); // 38,000 × 16 / 31
    assert_eq!(inv.lines[3].charge, Charge::Overage { records: 500, per_1000: Rate::parse("15").unwrap() });
}

#[test]
fn prepaid_licensees_pay_per_record_and_others_overage() {
    // The example price sets both rates.
    let price =
        PlanPrice { per_record: Some(Rate::parse("0.005").unwrap()), ..basic("200.00", 10_000, overage("15.00")) };
    let books = books_of(price);
    let deliveries = [(day("2026-12-03"), 10_200)];
    let input = InvoiceInput {
        plan: "basic",
        term: Term::default(),
        month: december(),
        books: &books,
        prices: &[],
        prepaid: false,
        deliveries: &deliveries,
    };
    let arrears = compute_invoice(&input).unwrap().unwrap();
    assert_eq!(arrears.lines[2].charge, Charge::Overage { records: 200, per_1000: Rate::parse("15").unwrap() });
    assert_eq!(arrears.lines[2].amount, usd("3.00"));
    // A prepaid licensee's records were paid from its credit as they were delivered: the invoice shows them at
    // their price, for nothing (never billed twice), and bills only the fee.
    let prepaid = compute_invoice(&InvoiceInput { prepaid: true, ..input }).unwrap().unwrap();
    assert_eq!(prepaid.lines[2].charge, Charge::Prepaid { records: 200, per_record: Rate::parse("0.005").unwrap() });
    assert_eq!(prepaid.lines[2].amount, usd("0"));
    assert_eq!(prepaid.total, usd("200.00"));
    // A prepaid licensee whose price has no per-record rate is billed the overage in arrears.
    let books = books_of(basic("200.00", 10_000, overage("15.00")));
    let fallback = compute_invoice(&InvoiceInput { prepaid: true, books: &books, ..input }).unwrap().unwrap();
    assert_eq!(fallback.lines[2].amount, usd("3.00"));
}

#[test]
fn nothing_priced_before_the_first_price() {
    let books = [book("2026-12-20", basic("310.00", 0, overage("1")))];
    let inv = invoice(&books, &[], Term::default(), &[(day("2026-12-10"), 5), (day("2026-12-25"), 7)]);
    let charges: Vec<Charge> = inv.lines.iter().map(|l| l.charge).collect();
    assert_eq!(
        charges,
        [
            Charge::BaseFee { monthly_fee: usd("310.00"), days: 12, days_in_month: 31 },
            Charge::Unpriced { records: 5 },
            Charge::Overage { records: 7, per_1000: Rate::parse("1").unwrap() },
        ]
    );
    assert_eq!(inv.total, usd("120.01")); // 31,000 × 12 / 31 = 12,000 ¢; 7 × 0.1 ¢ = 0.7 ¢ → 1 ¢
    let november = InvoiceInput {
        plan: "basic",
        term: Term::default(),
        month: Month::new(2026, 11).unwrap(),
        books: &books,
        prices: &[],
        prepaid: false,
        deliveries: &[(day("2026-11-10"), 5)],
    };
    assert_eq!(compute_invoice(&november).unwrap(), None, "the whole month is before the first price");
}

#[test]
fn bad_inputs_are_errors() {
    let books = [book("2026-01-01", basic("1", 0, None))];
    let input = |deliveries: &'static [(NaiveDate, u64)]| InvoiceInput {
        plan: "basic",
        term: Term::default(),
        month: december(),
        books: &[],
        prices: &[],
        prepaid: false,
        deliveries,
    };
    let late: &'static [(NaiveDate, u64)] = Box::leak(Box::new([(day("2027-01-01"), 1)]));
    assert!(matches!(compute_invoice(&input(late)), Err(InvoiceError::DeliveryOutsideMonth { .. })));
    let backwards: &'static [(NaiveDate, u64)] = Box::leak(Box::new([(day("2026-12-02"), 1), (day("2026-12-01"), 1)]));
    assert!(matches!(compute_invoice(&input(backwards)), Err(InvoiceError::OutOfOrder { .. })));
    let huge: &'static [(NaiveDate, u64)] =
        Box::leak(Box::new([(day("2026-12-02"), u64::MAX), (day("2026-12-03"), 1)]));
    assert_eq!(compute_invoice(&input(huge)), Err(InvoiceError::Overflow));

    let mut euro = book("2026-12-10", basic("1", 0, None));
    euro.currency = Currency::Eur;
    euro.plans.get_mut("basic").unwrap().monthly_fee = Money::parse(Currency::Eur, "1").unwrap();
    let mixed = [books[0].clone(), euro];
    let input = InvoiceInput { books: &mixed, ..input(&[]) };
    assert!(matches!(
        compute_invoice(&input),
        Err(InvoiceError::MixedCurrencies { first: Currency::Usd, other: Currency::Eur, .. })
    ));
    let negotiated = [PriceOverride {
        effective: day("2026-12-01"),
        currency: Currency::Gbp,
        monthly_fee: None,
        included_records: Some(5),
        overage_per_1000: None,
        per_record: None,
    }];
    let input = InvoiceInput { books: &books, prices: &negotiated, ..input };
    assert!(matches!(compute_invoice(&input), Err(InvoiceError::Currency(_))));
}

// ---- Property tests ----

const START: &str = "2026-12-01";

fn offset(n: i64) -> NaiveDate {
    let start = day(START);
    if n >= 0 { start + Days::new(n as u64) } else { start - Days::new(n.unsigned_abs()) }
}

fn rate(max: i64) -> impl Strategy<Value = Option<Rate>> {
    prop::option::of((0..max).prop_map(|m| Rate::from_micro(m).unwrap()))
}

fn plan_price() -> impl Strategy<Value = PlanPrice> {
    (0i64..10_000_000, 0u64..60, rate(40_000_000), rate(40_000)).prop_map(
        |(fee, included_records, overage_per_1000, per_record)| PlanPrice {
            monthly_fee: Money::new(Currency::Usd, fee),
            included_records,
            overage_per_1000,
            per_record,
        },
    )
}

fn books() -> impl Strategy<Value = Vec<PriceBook>> {
    prop::collection::btree_map(-40i64..40, plan_price(), 0..4).prop_map(|versions| {
        versions
            .into_iter()
            .map(|(at, price)| PriceBook {
                effective: offset(at),
                currency: Currency::Usd,
                plans: BTreeMap::from([("basic".to_owned(), price)]),
            })
            .collect()
    })
}

fn overrides() -> impl Strategy<Value = Vec<PriceOverride>> {
    let entry = (prop::option::of(0i64..10_000_000), prop::option::of(0u64..60), rate(40_000_000), rate(40_000));
    prop::collection::btree_map(-40i64..40, entry, 0..3).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(at, (fee, included, overage_per_1000, per_record))| PriceOverride {
                effective: offset(at),
                currency: Currency::Usd,
                monthly_fee: fee.map(|m| Money::new(Currency::Usd, m)),
                included_records: included,
                overage_per_1000,
                per_record,
            })
            .collect()
    })
}

fn term() -> impl Strategy<Value = Term> {
    (prop::option::of(-40i64..40), prop::option::of(1i64..60)).prop_map(|(starts, length)| {
        let starts = starts.map(offset);
        let ends = length.map(|n| starts.unwrap_or(offset(-10)) + Days::new(n as u64));
        Term { starts, ends }
    })
}

fn deliveries() -> impl Strategy<Value = Vec<(NaiveDate, u64)>> {
    prop::collection::vec((0i64..31, 0u64..40), 0..12).prop_map(|mut entries| {
        entries.sort_by_key(|(d, _)| *d);
        entries.into_iter().map(|(d, n)| (offset(d), n)).collect()
    })
}

/// Prices every record one at a time, the obvious way: (pricing, day) → records.
fn reference(input: &InvoiceInput) -> HashMap<RecordPricing, u64> {
    let mut out = HashMap::new();
    let mut n = 0u64;
    for &(d, count) in input.deliveries {
        for _ in 0..count {
            let pricing = match price_on(input.books, input.prices, input.plan, d).unwrap() {
                None => RecordPricing::Unpriced,
                Some(p) if n < p.included_records => RecordPricing::Included,
                Some(p) => p.usage(input.prepaid).map_or(RecordPricing::Uncharged, RecordPricing::Charged),
            };
            *out.entry(pricing).or_default() += 1;
            n += 1;
        }
    }
    out
}

fn line_pricing(charge: Charge) -> Option<RecordPricing> {
    match charge {
        Charge::BaseFee { .. } => None,
        Charge::Included { .. } => Some(RecordPricing::Included),
        Charge::Overage { per_1000, .. } => Some(RecordPricing::Charged(UsageRate::OveragePer1000(per_1000))),
        Charge::PerRecord { per_record, .. } | Charge::Prepaid { per_record, .. } => {
            Some(RecordPricing::Charged(UsageRate::PerRecord(per_record)))
        }
        Charge::Uncharged { .. } => Some(RecordPricing::Uncharged),
        Charge::Unpriced { .. } => Some(RecordPricing::Unpriced),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invoices_keep_their_invariants(
        books in books(),
        prices in overrides(),
        term in term(),
        deliveries in deliveries(),
        prepaid in any::<bool>(),
    ) {
        let month = december();
        let input = InvoiceInput { plan: "basic", term, month, books: &books, prices: &prices, prepaid, deliveries: &deliveries };
        let Some(inv) = compute_invoice(&input).unwrap() else {
            // Nothing to bill: no priced day in the term, and no record on a priced day.
            for d in december().iter_days() {
                let billed = term.contains(d) || deliveries.iter().any(|(x, n)| *x == d && *n > 0);
                prop_assert!(!billed || price_on(&books, &prices, "basic", d).unwrap().is_none());
            }
            return Ok(());
        };

        // The lines sum to the total; no line is negative; each is within half a minor unit of its exact amount.
        prop_assert_eq!(inv.lines.iter().map(|l| l.amount.minor).sum::<i64>(), inv.total.minor);
        for line in &inv.lines {
            prop_assert!(line.amount.minor >= 0);
            let exact = line.exact();
            let error = i128::from(line.amount.minor) * exact.denominator - exact.numerator;
            prop_assert!(2 * error.abs() <= exact.denominator);
            prop_assert!(line.first_day <= line.last_day);
        }

        // Every counted record is priced exactly once, the way the record-by-record reference prices it.
        let counted: u64 = deliveries.iter().map(|(_, n)| n).sum();
        prop_assert_eq!(inv.records, counted);
        let mut by_pricing: HashMap<RecordPricing, u64> = HashMap::new();
        for line in &inv.lines {
            if let Some(pricing) = line_pricing(line.charge) {
                prop_assert!(line.charge.records() > 0, "no empty record line");
                *by_pricing.entry(pricing).or_default() += line.charge.records();
            }
        }
        prop_assert_eq!(by_pricing, reference(&input));

        // The fee: each day of the term with a price contributes fee / days_in_month, nothing else does.
        let mut fee_days: HashMap<i64, u32> = HashMap::new();
        for d in december().iter_days().filter(|d| term.contains(*d)) {
            if let Some(p) = price_on(&books, &prices, "basic", d).unwrap().filter(|p| p.monthly_fee.minor != 0) {
                *fee_days.entry(p.monthly_fee.minor).or_default() += 1;
            }
        }
        let mut line_days: HashMap<i64, u32> = HashMap::new();
        for line in &inv.lines {
            if let Charge::BaseFee { monthly_fee, days, days_in_month } = line.charge {
                prop_assert_eq!(days_in_month, 31);
                *line_days.entry(monthly_fee.minor).or_default() += days;
            }
        }
        prop_assert_eq!(line_days, fee_days);
    }

    /// A new price book version only changes how days on or after its date are priced.
    #[test]
    fn a_price_change_only_affects_days_from_its_date(
        books in books(),
        prices in overrides(),
        deliveries in deliveries(),
        at in 0i64..31,
        price in plan_price(),
        prepaid in any::<bool>(),
    ) {
        let effective = offset(at);
        prop_assume!(!books.iter().any(|b| b.effective == effective));
        let mut changed = books.clone();
        let version = |effective| PriceBook {
            effective,
            currency: Currency::Usd,
            plans: BTreeMap::from([("basic".to_owned(), price)]),
        };
        changed.push(version(effective));
        let input = InvoiceInput {
            plan: "basic",
            term: Term::default(),
            month: december(),
            books: &books,
            prices: &prices,
            prepaid,
            deliveries: &deliveries,
        };
        let before_date = |input: &InvoiceInput| -> Vec<PricedRecords> {
            price_deliveries(input).unwrap().into_iter().filter(|p| p.day < effective).collect()
        };
        prop_assert_eq!(before_date(&input), before_date(&InvoiceInput { books: &changed, ..input }));
        for d in december().iter_days().filter(|d| *d < effective) {
            let old = price_on(&books, &prices, "basic", d).unwrap();
            prop_assert_eq!(old, price_on(&changed, &prices, "basic", d).unwrap());
        }
        // And a version after the month changes nothing at all.
        prop_assume!(!books.iter().any(|b| b.effective == offset(31 + at)));
        let mut later = books.clone();
        later.push(version(offset(31 + at)));
        let unchanged = compute_invoice(&InvoiceInput { books: &later, ..input }).unwrap();
        prop_assert_eq!(compute_invoice(&input).unwrap(), unchanged);
    }
}

//! The billing part of the terms file: price books and licensee billing terms (issue 8).

use chrono::NaiveDate;
use datapact_billing::{
    BillingTerms, Currency, InvoiceInput, Money, Month, PlanPrice, Rate, Term, compute_invoice, price_on,
};
use datapact_terms::*;

mod common;
use common::{errors, refused};

const EXAMPLE: &str = include_str!("../examples/billing.toml");

/// A valid plan, to which tests append tables.
const PLAN: &str = r#"
[[plan]]
name = "basic"
rate_limits = { search = "60/15m" }
endpoints = ["search"]
purposes = ["search"]
"#;

const BOOK: &str = "\n[[price_book]]\neffective = \"2026-12-01\"\ncurrency = \"USD\"\n[price_book.plans.basic]\nmonthly_fee = \"200.00\"\n";

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[test]
fn the_issue_example_parses() {
    let file = parse_terms(EXAMPLE).unwrap();
    let usd = |text| Money::parse(Currency::Usd, text).unwrap();
    assert_eq!(file.price_books.len(), 1);
    let book = &file.price_books[0];
    assert_eq!((book.effective, book.currency), (day("2026-12-01"), Currency::Usd));
    assert_eq!(
        book.plans["basic"],
        PlanPrice {
            monthly_fee: usd("200.00"),
            included_records: 10_000,
            overage_per_1000: Some(Rate::from_micro(15_000_000).unwrap()),
            per_record: Some(Rate::from_micro(5_000).unwrap()),
        }
    );
    let nimbus = &file.licensees[0].terms;
    assert_eq!((nimbus.billing.payment_terms_days, nimbus.billing.grace_days), (30, 15));
    let negotiated = &nimbus.billing.prices[0];
    assert_eq!(negotiated.currency, Currency::Usd, "taken from the book in force on its date");
    assert_eq!(negotiated.monthly_fee, Some(usd("38000.00")));
    assert_eq!(negotiated.overage_per_1000, None);

    // The negotiated fee replaces the book's; the rest comes from the book.
    let price = price_on(&file.price_books, &nimbus.billing.prices, "basic", day("2026-12-01")).unwrap().unwrap();
    assert_eq!(price.monthly_fee, usd("38000.00"));
    assert_eq!(price.included_records, 10_000);

    // And the pieces fit: a December invoice for nimbus.
    let deliveries = [(day("2026-12-02"), 10_500)];
    let invoice = compute_invoice(&InvoiceInput {
        plan: &nimbus.plan,
        term: Term { starts: nimbus.starts, ends: nimbus.ends },
        month: Month::new(2026, 12).unwrap(),
        books: &file.price_books,
        prices: &nimbus.billing.prices,
        prepaid: false,
        deliveries: &deliveries,
    })
    .unwrap()
    .unwrap();
    assert_eq!(invoice.total, usd("38007.50")); // 38,000 + 500 × 15.00 / 1,000
}

#[test]
fn billing_terms_default_and_stay_out_of_stored_json() {
    let text = format!("{PLAN}[[licensee]]\nname = \"acme\"\nplan = \"basic\"\n");
    let file = parse_terms(&text).unwrap();
    assert_eq!(file.licensees[0].terms.billing, BillingTerms::default());
    assert_eq!((BillingTerms::default().payment_terms_days, BillingTerms::default().grace_days), (30, 15));
    let json = serde_json::to_value(&file.licensees[0].terms).unwrap();
    assert!(json.get("billing").is_none(), "{json}");
    // An agreement stored before billing reads back with the defaults.
    let back: LicenseeTerms = serde_json::from_value(json).unwrap();
    assert_eq!(back, file.licensees[0].terms);

    let file = parse_terms(EXAMPLE).unwrap();
    let json = serde_json::to_value(&file.licensees[0].terms).unwrap();
    assert_eq!(json["billing"]["prices"][0]["monthly_fee"], serde_json::json!({"currency": "USD", "minor": 3_800_000}));
    assert_eq!(serde_json::from_value::<LicenseeTerms>(json).unwrap(), file.licensees[0].terms);
}

#[test]
fn billing_changes_show_in_the_apply_diff() {
    let before = parse_terms(EXAMPLE).unwrap();
    let active = |l: &LicenseeSpec| LicenseeRecord {
        terms: l.terms.clone(),
        status: datapact_core::LicenseeStatus::Active,
        reason: String::new(),
    };
    let current = Terms { plans: before.plans.clone(), licensees: before.licensees.iter().map(active).collect() };
    let after = parse_terms(&EXAMPLE.replace("grace_days = 15", "grace_days = 5")).unwrap();
    let diff = diff_terms(&current, &after, false).unwrap();
    let Change::Update { fields, .. } = &diff.licensees[0] else { panic!("{diff:?}") };
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(
        (fields[0].field.as_str(), fields[0].before.as_str(), fields[0].after.as_str()),
        ("billing.grace_days", "15", "5")
    );
}

#[test]
fn canonical_toml_round_trips_with_billing() {
    let file = parse_terms(EXAMPLE).unwrap();
    assert_eq!(parse_terms(&file.to_toml()).unwrap(), file, "{}", file.to_toml());
    let text = format!(
        "{PLAN}{BOOK}included_records = 5\nper_record = \"0.000001\"\n\
         [[price_book]]\neffective = 2027-03-01\ncurrency = \"EUR\"\n[price_book.plans.basic]\nmonthly_fee = 150\n\
         [[licensee]]\nname = \"lab\"\nplan = \"basic\"\npayment_terms_days = 0\ngrace_days = 366\n\
         prices = [{{ effective = \"2027-04-01\", overage_per_1000 = \"0.5\" }}, {{ effective = \"2026-01-01\", currency = \"JPY\", monthly_fee = \"100\" }}]\n"
    );
    let file = parse_terms(&text).unwrap();
    let lab = &file.licensees[0].terms.billing;
    assert_eq!(
        lab.prices.iter().map(|p| p.effective).collect::<Vec<_>>(),
        [day("2026-01-01"), day("2027-04-01")],
        "sorted"
    );
    assert_eq!(lab.prices[1].currency, Currency::Eur);
    assert_eq!(file.price_books[1].plans["basic"].monthly_fee, Money::parse(Currency::Eur, "150.00").unwrap());
    assert_eq!(parse_terms(&file.to_toml()).unwrap(), file, "{}", file.to_toml());
}

#[test]
fn price_books_are_sorted_and_whole() {
    let text = format!(
        "{PLAN}[[plan]]\nname = \"gold\"\nrate_limits = {{ search = \"60/15m\" }}\nendpoints = [\"search\"]\npurposes = [\"search\"]\n\
         [[price_book]]\neffective = \"2027-01-01\"\ncurrency = \"USD\"\n[price_book.plans.basic]\n[price_book.plans.gold]\n{BOOK}[price_book.plans.gold]\n"
    );
    let file = parse_terms(&text).unwrap();
    assert_eq!(
        file.price_books.iter().map(|b| b.effective).collect::<Vec<_>>(),
        [day("2026-12-01"), day("2027-01-01")]
    );
    assert_eq!(file.price_books[1].plans["basic"], PlanPrice::fee_only(Money::zero(Currency::Usd)), "defaults: free");
    refused(
        &format!(
            "{PLAN}[[plan]]\nname = \"gold\"\nrate_limits = {{ search = \"60/15m\" }}\nendpoints = [\"search\"]\npurposes = [\"search\"]\n\
                  {BOOK}[price_book.plans.gold]\n[[price_book]]\neffective = \"2027-01-01\"\ncurrency = \"USD\"\n[price_book.plans.basic]\n"
        ),
        &["[[price_book]] #2 effective 2027-01-01", "does not price plan \"gold\"", "2026-12-01"],
    );
}

#[test]
fn price_book_errors_say_where() {
    let at = "[[price_book]] #1 effective 2026-12-01";
    let price = |extra: &str| format!("{PLAN}{BOOK}{extra}");
    refused(&price("monthly_fee_usd = \"1\"\n"), &[at, "plans.basic", "unknown field `monthly_fee_usd`", "remove"]);
    refused(&price("included_records = -1\n"), &[at, "plans.basic", "`included_records`", "whole number"]);
    refused(&price("included_records = \"10\"\n"), &["`included_records`"]);
    refused(&price("overage_per_1000 = \"0.0000001\"\n"), &[at, "`overage_per_1000`", "more than 6 decimal"]);
    refused(&price("per_record = 0.005\n"), &["`per_record`", "a float is not exact"]);
    refused(&price("per_record = \"-0.5\"\n"), &["`per_record`", "negative"]);
    let fee = |value: &str| format!("{PLAN}{}", BOOK.replace("\"200.00\"", value));
    refused(&fee("\"200.001\""), &[at, "plans.basic", "`monthly_fee`", "more than 2 decimal"]);
    refused(&fee("200.0"), &["`monthly_fee`", "a float is not exact"]);
    refused(&fee("\"-1.00\""), &["`monthly_fee`", "negative"]);
    refused(&fee("\"1,000.00\""), &["`monthly_fee`", "not a decimal amount"]);
    refused(&fee("-5"), &["`monthly_fee`", "zero or more"]);
    let yen = format!("{PLAN}{}", BOOK.replace("USD", "JPY").replace("\"200.00\"", "\"200.5\""));
    refused(&yen, &["`monthly_fee`", "more than 0 decimal"]);
    refused(
        &format!("{PLAN}{}", BOOK.replace("\"USD\"", "\"usd\"")),
        &["`currency`", "unknown currency \"usd\"", "USD, EUR"],
    );
    refused(
        &format!("{PLAN}{}", BOOK.replace("\"2026-12-01\"", "\"2026-13-01\"")),
        &["[[price_book]] #1 effective 2026-13-01", "`effective`", "YYYY-MM-DD"],
    );
    refused(&format!("{PLAN}[[price_book]]\neffective = \"2026-12-01\"\n"), &[at, "missing field `currency`"]);
    refused(
        &format!("{PLAN}[[price_book]]\ncurrency = \"USD\"\n"),
        &["[[price_book]] #1", "missing field `effective`"],
    );
    refused(&format!("{PLAN}{BOOK}[price_book.name]\n"), &[at, "unknown field `name`"]);
    refused(&format!("{PLAN}{BOOK}[price_book.plans.gold]\n"), &[at, "plans.gold", "plan \"gold\" is not defined"]);
    refused(
        &format!("{PLAN}{BOOK}{BOOK}"),
        &["[[price_book]] #2", "another [[price_book]] is effective on 2026-12-01"],
    );
    refused(&format!("price_book = 1\n{PLAN}"), &["top level", "`price_book` must be an array of tables"]);
    refused(&format!("{PLAN}[price_book]\neffective = 1\n"), &["top level", "[[price_book]]"]);
}

#[test]
fn licensee_billing_errors_say_where() {
    let lic = |extra: &str| format!("{PLAN}{BOOK}[[licensee]]\nname = \"acme\"\nplan = \"basic\"\n{extra}");
    let at = "[[licensee]] #1 \"acme\"";
    refused(&lic("payment_terms_days = -1\n"), &[at, "`payment_terms_days`", "from 0 to 366"]);
    refused(&lic("payment_terms_days = 400\n"), &[at, "`payment_terms_days`"]);
    refused(&lic("payment_terms_days = \"30\"\n"), &["`payment_terms_days`"]);
    refused(&lic("grace_days = 1.5\n"), &[at, "`grace_days`"]);
    refused(&lic("prices = \"cheap\"\n"), &[at, "`prices`"]);
    refused(
        &lic("prices = [{ effective = \"2026-12-01\", fee = \"1\" }]\n"),
        &[at, "prices #1", "unknown field `fee`"],
    );
    refused(&lic("prices = [{ monthly_fee = \"1\" }]\n"), &[at, "prices #1", "missing field `effective`"]);
    refused(&lic("prices = [{ effective = \"2026-12-1\", monthly_fee = \"1\" }]\n"), &["prices #1", "`effective`"]);
    refused(
        &lic("prices = [{ effective = \"2026-11-01\", monthly_fee = \"1\" }]\n"),
        &[at, "prices #1", "no [[price_book]] is in force on 2026-11-01", "add `currency`"],
    );
    refused(
        &lic("prices = [{ effective = \"2026-12-05\", currency = \"EUR\", monthly_fee = \"1\" }]\n"),
        &["prices #1", "`currency` is EUR but the price book in force on 2026-12-05 is in USD"],
    );
    refused(&lic("prices = [{ effective = \"2026-12-05\" }]\n"), &["prices #1", "sets no price"]);
    refused(
        &lic("prices = [{ effective = \"2026-12-05\", monthly_fee = \"1.234\" }]\n"),
        &["prices #1", "`monthly_fee`", "more than 2"],
    );
    refused(
        &lic(
            "prices = [{ effective = \"2026-12-05\", monthly_fee = \"1\" }, { effective = \"2026-12-05\", per_record = \"1\" }]\n",
        ),
        &["prices #2", "another negotiated price is effective on 2026-12-05"],
    );
    // Every problem at once.
    let many = lic("grace_days = -1\npayment_terms_days = 999\nprices = [{ effective = \"2026-12-05\" }]\n");
    assert_eq!(errors(&many).len(), 3, "{:#?}", errors(&many));
}

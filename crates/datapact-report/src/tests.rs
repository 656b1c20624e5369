use datapact_billing::{Currency, Money};
use datapact_core::Timestamp;
use proptest::prelude::*;

use super::*;

fn usd(minor: i64) -> Money {
    Money::new(Currency::Usd, minor)
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn sample(name: &str) -> Report {
    let days: Vec<DayUsage> = (1..=3)
        .map(|d| DayUsage {
            day: format!("2026-11-0{d}"),
            counted: 40 * d,
            month_to_date: 20 * d * (d + 1),
            cap: Some(100),
        })
        .collect();
    Report {
        title: format!("Evidence report: {name}"),
        from: "2026-11-01".into(),
        to: "2026-11-03".into(),
        as_of: ts("2027-01-20T00:00:00Z"),
        licensees: vec![LicenseeReport {
            licensee: name.into(),
            licensee_id: 1,
            status: "blocked".into(),
            status_reason: "network <violation>".into(),
            agreement: Some(AgreementSummary {
                plan: "research".into(),
                monthly_records: Some(100),
                cap: "soft".into(),
                dedup: "none".into(),
                deletion_deadline: Some("1d".into()),
                starts_at: None,
                ends_at: None,
                allowed_networks: vec!["10.0.0.0/8".into()],
                purposes: vec!["all".into()],
                payment_terms_days: Some(14),
                grace_days: Some(5),
            }),
            terms_versions: vec![],
            price_books: vec![PriceBookVersion {
                effective: "2026-01-01".into(),
                until: None,
                monthly_fee: usd(10_000),
                included_records: 50,
                overage_per_1000: Some("2.00".into()),
                per_record: None,
            }],
            negotiated_prices: vec![],
            usage: Usage {
                months: vec![MonthUsage {
                    month: "2026-11".into(),
                    counted: 240,
                    cap: Some(100),
                    cap_mode: "soft".into(),
                    over_cap: 140,
                    first_day_over: Some("2026-11-02".into()),
                    through: None,
                }],
                days,
            },
            billing: Billing {
                invoices: vec![],
                totals: vec![BillingTotals {
                    invoiced: usd(10_038),
                    paid: usd(0),
                    credited: usd(0),
                    outstanding: usd(10_038),
                    overdue: usd(10_038),
                }],
                suspension: None,
            },
            status_events: vec![],
            violations: vec![ViolationRow {
                kind: "network_not_allowed".into(),
                count: 3,
                first_at: Some(ts("2026-11-02T10:00:00Z")),
                last_at: Some(ts("2026-11-02T11:00:00Z")),
                sample_request_ids: vec!["req-1".into(), "req-<2>".into()],
                notes: vec![],
            }],
            trace_findings: vec![],
            canary_hits: vec![],
            deletion_violations: vec![],
        }],
        reproducibility: Reproducibility {
            ledger_ranges: vec![],
            checkpoint: None,
            checkpoint_statement: "no signed checkpoint covers these batches yet".into(),
            inputs: vec![],
            command: "datapact report acme --from 2026-11-01 --to 2026-11-03".into(),
        },
    }
}

#[test]
fn bounds_are_stated_as_a_power_of_ten_above_them() {
    assert_eq!(bound_words(-9.3), "below 1e-9");
    assert_eq!(bound_words(-12.0), "below 1e-12");
    assert_eq!(bound_words(-0.5), "below 1");
    assert_eq!(bound_words(0.2), "not below 1");
    assert_eq!(bound_words(f64::NAN), "not below 1");
    assert!(trace_statement(Some(-9.3), Some(-8.1), 3).starts_with(
        "the probability that an innocent licensee scores this high is below 1e-9; that any of the 3 licensees"
    ));
}

#[test]
fn percentages_round_half_up_to_a_tenth() {
    assert_eq!(percent(1, 3), "33.3%");
    assert_eq!(percent(2, 3), "66.7%");
    assert_eq!(percent(240, 100), "240.0%");
    assert_eq!(percent(5, 0), "n/a");
}

#[test]
fn every_renderer_states_the_numbers() {
    let report = sample("acme");
    let json: serde_json::Value = serde_json::from_str(&to_json(&report)).unwrap();
    assert_eq!(json["licensees"][0]["usage"]["months"][0]["over_cap"], 140);
    assert_eq!(json["licensees"][0]["billing"]["totals"][0]["outstanding"]["minor"], 10_038);
    let sentence = "In 2026-11, acme was counted 240 records against a soft cap of 100: 140 over the cap (240.0% of the \
                    cap), first over on 2026-11-02.";
    let html = to_html(&report);
    assert!(html.contains(sentence), "{html}");
    assert!(html.contains("acme was invoiced 100.38 USD, paid 0.00 USD, was credited 0.00 USD, and owes 100.38 USD"));
    let markdown = to_markdown(&report);
    assert!(markdown.contains(&escape_markdown(sentence)), "{markdown}");
    assert!(markdown.contains("network\\_not\\_allowed: 3 time(s)"), "{markdown}");
}

#[test]
fn html_is_self_contained_with_an_inline_chart() {
    let html = to_html(&sample("acme"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "the chart is inline");
    assert!(!html.contains("http://") && !html.contains("https://"), "no network reference");
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains(" src="), "no external source");
    assert!(html.contains("network &lt;violation&gt;"), "text is escaped");
    assert!(html.contains("req-&lt;2&gt;"));
}

#[test]
fn rendering_is_deterministic() {
    let report = sample("acme");
    assert_eq!(to_html(&report), to_html(&report));
    assert_eq!(to_markdown(&report), to_markdown(&report));
}

#[test]
fn the_chart_is_empty_without_days() {
    assert_eq!(usage_chart_svg(&[]), "");
}

proptest! {
    #[test]
    fn no_name_escapes_the_html(name in "\\PC{0,40}") {
        let html = to_html(&sample(&name));
        let escaped = escape_html(&name);
        let heading = format!("<h2>Licensee {escaped}</h2>");
        prop_assert!(html.contains(&heading));
        // Between the licensee heading and the next tag, no raw markup of the name survives.
        let body = html.split("<h2>Licensee ").nth(1).unwrap();
        let cut = body.find("</h2>").unwrap();
        prop_assert!(!body[..cut].contains('<'));
        prop_assert!(!body[..cut].contains('"'));
    }

    #[test]
    fn markdown_escaping_leaves_no_bare_markup(text in "\\PC{0,60}") {
        let escaped = escape_markdown(&text);
        let mut chars = escaped.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                prop_assert!(chars.next().is_some(), "a backslash always escapes something");
                continue;
            }
            prop_assert!(!matches!(c, '`' | '*' | '_' | '[' | ']' | '|' | '<' | '>' | '\n'));
        }
    }

    #[test]
    fn percent_matches_exact_arithmetic(n in 0u64..1_000_000, d in 1u64..1_000_000) {
        let text = percent(n, d);
        let tenths: u128 = text.trim_end_matches('%').replace('.', "").parse().unwrap();
        let exact = u128::from(n) * 1000;
        // |tenths * d - n * 1000| <= d / 2
        let diff = (tenths * u128::from(d)).abs_diff(exact);
        prop_assert!(diff * 2 <= u128::from(d));
    }
}

#[test]
fn counts_are_grouped_by_thousands() {
    let cases = [(0, "0"), (7, "7"), (999, "999"), (1_000, "1,000"), (12_345, "12,345"), (5_000_000, "5,000,000")];
    for (n, text) in cases {
        assert_eq!(count(n), text);
    }
    assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    assert_eq!(count_or_dash(None), "—");
}

proptest! {
    #[test]
    fn a_grouped_count_reads_back_as_the_same_number(n: u64) {
        let text = count(n);
        prop_assert_eq!(text.replace(',', "").parse::<u64>().unwrap(), n);
        // Every group after the first has three digits.
        prop_assert!(text.split(',').skip(1).all(|group| group.len() == 3));
    }
}

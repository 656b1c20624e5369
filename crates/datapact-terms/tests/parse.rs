//! The terms file: the issue's example, every parse error, canonical rendering.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use datapact_core::{Endpoint, LicenseeStatus};
use datapact_terms::*;

mod common;
use common::{errors, refused};

const EXAMPLE: &str = include_str!("../examples/terms.toml");

/// A valid plan, to which tests append lines.
const PLAN: &str = r#"
[[plan]]
name = "basic"
rate_limits = { search = "60/15m", lookup = "300/15m" }
endpoints = ["search", "lookup"]
purposes = ["search"]
"#;

#[test]
fn the_issue_example_parses() {
    let file = parse_terms(EXAMPLE).unwrap();
    assert_eq!(file.plans.len(), 1);
    let plan = &file.plans[0];
    assert_eq!(plan.name, "basic");
    assert_eq!(plan.monthly_records, Some(10_000));
    assert_eq!(plan.cap, CapMode::Hard);
    assert_eq!(plan.endpoints, Endpoint::ALL.into_iter().collect());
    assert_eq!(plan.purposes, [Purpose::Search, Purpose::AiInput].into_iter().collect());
    assert_eq!(plan.rate_limits[&Endpoint::Search].to_string(), "60/15m");
    assert_eq!(plan.rate_limits[&Endpoint::Timeline].limit, 900);
    assert_eq!(plan.dedup, Dedup::Daily);
    assert!(plan.fingerprint);
    assert!(!plan.prepaid, "billed in arrears unless a plan says prepaid");
    assert_eq!(plan.canary_ppm, 0);
    assert_eq!(plan.deletion_deadline, None);

    let acme = &file.licensees[0];
    assert_eq!(acme.status, Some(LicenseeStatus::Active));
    assert_eq!(acme.reason.as_deref(), Some(""));
    assert_eq!(acme.terms.starts, NaiveDate::from_ymd_opt(2026, 1, 1));
    assert_eq!(acme.terms.ends, NaiveDate::from_ymd_opt(2027, 1, 1));
    assert_eq!(acme.terms.overrides.monthly_records, Some(MonthlyRecords::Limit(500)));
    assert_eq!(acme.terms.allowed_networks.as_ref().unwrap()[0].to_string(), "203.0.113.0/24");

    let agreement = Agreement::resolve(plan, &acme.terms).unwrap();
    assert_eq!(agreement.monthly_records, Some(500));
    assert_eq!(agreement.starts_at.unwrap().to_x_string(), "2026-01-01T00:00:00.000Z");
    assert_eq!(agreement.ends_at.unwrap().to_x_string(), "2027-01-01T00:00:00.000Z");
    let json = serde_json::to_value(&agreement).unwrap();
    assert_eq!(json["rate_limits"]["search"], "60/15m");
    assert_eq!(json["endpoints"][0], "search");
    assert_eq!(json["purposes"], serde_json::json!(["ai-input", "search"]));
    assert_eq!(json["starts_at"], "2026-01-01T00:00:00.000Z");
    assert_eq!(json["allowed_networks"][0], "203.0.113.0/24");
    assert_eq!(json["cap"], "hard");
}

#[test]
fn forward_compatible_fields_and_defaults() {
    let text = format!(
        "{PLAN}cap = \"soft\"\ndedup = \"none\"\nfingerprint = false\ncanary_rate = \"0.001\"\ndeletion_deadline = \"24h\"\n\
         [[licensee]]\nname = \"lab-2\"\nplan = \"basic\"\ncanary_rate = 0.25\nrate_limits = {{ search = \"10/s\" }}\n\
         purposes = [\"all\"]\nmonthly_records = \"unlimited\"\nstarts = 2026-03-01\n"
    );
    let file = parse_terms(&text).unwrap();
    let plan = &file.plans[0];
    assert_eq!((plan.cap, plan.dedup, plan.fingerprint, plan.canary_ppm), (CapMode::Soft, Dedup::None, false, 1000));
    assert_eq!(plan.deletion_deadline.unwrap().seconds(), 86_400);
    assert_eq!(plan.monthly_records, None);
    let lab = &file.licensees[0];
    assert_eq!(lab.status, None);
    assert_eq!(lab.reason, None);
    assert_eq!(lab.terms.starts, NaiveDate::from_ymd_opt(2026, 3, 1), "a TOML local date works too");
    let agreement = Agreement::resolve(plan, &lab.terms).unwrap();
    assert_eq!(agreement.canary_ppm, 250_000);
    assert_eq!(agreement.rate_limit(Endpoint::Search).unwrap().to_string(), "10/1s");
    assert_eq!(agreement.rate_limit(Endpoint::Lookup).unwrap().to_string(), "300/15m", "merged per endpoint");
    assert_eq!(agreement.purposes, BTreeSet::from([Purpose::All]));
    assert_eq!(agreement.ends_at, None);
    assert_eq!(agreement.cap, CapMode::Soft);
}

#[test]
fn price_books_are_no_longer_ignored() {
    // `price_book` was reserved (accepted and ignored) before billing; it is now read and checked.
    refused(
        &format!("{PLAN}\n[[price_book]]\nname = \"std\"\nanything = 1\n"),
        &["[[price_book]] #1", "unknown field"],
    );
    assert_eq!(parse_terms("").unwrap(), TermsFile { plans: vec![], licensees: vec![], price_books: vec![] });
}

#[test]
fn unknown_keys_name_the_key_and_the_table() {
    refused(&format!("{PLAN}monthly_record = 5\n"), &["[[plan]] #1 \"basic\"", "monthly_record", "remove or rename"]);
    refused(
        &format!("{PLAN}[[licensee]]\nname = \"acme\"\nplan = \"basic\"\nallowed_network = []\n"),
        &["[[licensee]] #1 \"acme\"", "allowed_network"],
    );
    refused(&format!("{PLAN}[[licence]]\nname = \"acme\"\n"), &["top level", "`licence`"]);
    refused(&format!("version = 2\n{PLAN}"), &["top level", "`version`"]);
    refused("[plan]\nname = \"x\"\n", &["top level", "[[plan]]"]);
    refused(&format!("{PLAN}[[plan]]\n"), &["[[plan]] #2", "name"]);
}

#[test]
fn syntax_errors_say_where() {
    refused(&format!("{PLAN}cap = \n"), &["line 7", "not valid TOML"]);
}

#[test]
fn plan_errors() {
    let plan = |extra: &str| format!("[[plan]]\nname = \"basic\"\n{extra}");
    let full = "endpoints = [\"search\"]\npurposes = [\"search\"]\nrate_limits = { search = \"60/15m\" }\n";
    refused(&plan("purposes = []\n"), &["[[plan]] #1 \"basic\"", "`endpoints` is missing"]);
    refused(&plan("endpoints = []\n"), &["`purposes` is missing"]);
    refused(&plan("endpoints = [\"search\"]\npurposes = []\n"), &["search", "no rate limit", "rate_limits"]);
    refused(&plan(&format!("{full}cap = \"medium\"\n")), &["`cap`", "\"hard\" or \"soft\""]);
    refused(&plan(&format!("{full}dedup = \"weekly\"\n")), &["`dedup`", "\"daily\" or \"none\""]);
    refused(&plan(&format!("{full}monthly_records = -1\n")), &["`monthly_records`"]);
    refused(&plan(&format!("{full}monthly_records = \"lots\"\n")), &["`monthly_records`", "unlimited"]);
    refused(&plan(&format!("{full}fingerprint = \"yes\"\n")), &["[[plan]] #1", "bool"]);
    refused(&plan(&format!("{full}deletion_deadline = \"1 day\"\n")), &["`deletion_deadline`"]);
    for bad in ["\"1.5\"", "\"0.0000001\"", "\"abc\"", "-0.1", "2", "\"0.\"", "\".5\"", "1.5"] {
        refused(&plan(&format!("{full}canary_rate = {bad}\n")), &["`canary_rate`"]);
    }
    refused(
        &plan("endpoints = [\"search\", \"firehose\"]\npurposes = []\nrate_limits = { search = \"1/s\" }\n"),
        &["`endpoints`", "unknown endpoint \"firehose\"", "search, lookup"],
    );
    refused(
        &plan("endpoints = [\"search\", \"search\"]\npurposes = []\nrate_limits = { search = \"1/s\" }\n"),
        &["twice"],
    );
    refused(
        &plan("endpoints = []\npurposes = [\"ai-everything\"]\n"),
        &["unknown purpose \"ai-everything\"", "ai-train"],
    );
    refused(&plan("endpoints = []\npurposes = [\"search\", \"search\"]\n"), &["`purposes`", "twice"]);
    refused(
        &plan("endpoints = []\npurposes = []\nrate_limits = { feed = \"1/s\" }\n"),
        &["`rate_limits.feed`", "unknown endpoint"],
    );
    refused(&plan("endpoints = []\npurposes = []\nrate_limits = { search = 60 }\n"), &["[[plan]] #1", "string"]);
    for (bad, needle) in
        [("60/0m", "zero"), ("x/15m", "whole number"), ("0/15m", "allows no request"), ("60/15", "no unit")]
    {
        refused(
            &plan(&format!("endpoints = []\npurposes = []\nrate_limits = {{ search = \"{bad}\" }}\n")),
            &["`rate_limits.search`", needle],
        );
    }
    refused(&format!("{PLAN}{PLAN}"), &["[[plan]] #2 \"basic\"", "used twice"]);
    refused(&PLAN.replace("\"basic\"", "\"Basic\""), &["plan name \"Basic\" is invalid"]);
    refused(&PLAN.replace("\"basic\"", "\"\""), &["plan name \"\" is invalid"]);
}

#[test]
fn licensee_errors() {
    let lic = |extra: &str| format!("{PLAN}[[licensee]]\nname = \"acme\"\nplan = \"basic\"\n{extra}");
    refused(&format!("{PLAN}[[licensee]]\nname = \"acme\"\n"), &["[[licensee]] #1 \"acme\"", "plan"]);
    refused(
        &format!("{PLAN}[[licensee]]\nname = \"acme\"\nplan = \"gold\"\n"),
        &["plan \"gold\" is not defined", "[[plan]]"],
    );
    refused(
        &format!("{PLAN}[[licensee]]\nname = \"2acme\"\nplan = \"basic\"\n"),
        &["licensee name \"2acme\" is invalid"],
    );
    refused(
        &format!("{PLAN}[[licensee]]\nname = \"a\"\nplan = \"basic\"\n[[licensee]]\nname = \"a\"\nplan = \"basic\"\n"),
        &["[[licensee]] #2 \"a\"", "used twice"],
    );
    refused(&lic("status = \"paused\"\n"), &["`status`", "\"active\" or \"blocked\""]);
    refused(&lic("reason = \"late\"\n"), &["`reason` is set without `status`"]);
    refused(&lic("starts = \"2026-01-01\"\nends = \"2026-01-01\"\n"), &["`ends` (2026-01-01) is not after `starts`"]);
    refused(&lic("starts = \"2027-01-01\"\nends = \"2026-01-01\"\n"), &["not after"]);
    for bad in ["\"2026-1-1\"", "\"01/01/2026\"", "\"2026-02-30\"", "2026-01-01T00:00:00Z", "20260101"] {
        refused(&lic(&format!("starts = {bad}\n")), &["`starts`", "YYYY-MM-DD"]);
    }
    refused(&lic("allowed_networks = []\n"), &["`allowed_networks` is empty"]);
    refused(&lic("allowed_networks = [\"203.0.113.0/33\"]\n"), &["`allowed_networks`", "CIDR"]);
    refused(&lic("endpoints = [\"search\", \"stream\"]\n"), &["[[licensee]] #1 \"acme\"", "stream", "no rate limit"]);
    refused(&lic("purposes = [\"ai-trains\"]\n"), &["[[licensee]] #1 \"acme\"", "unknown purpose"]);
    refused(&lic("rate_limits = { search = \"0/15m\" }\n"), &["`rate_limits.search`", "allows no request"]);
    refused(&lic("cap = \"none\"\n"), &["`cap`"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!("{PLAN}cap = \"x\"\ndedup = \"y\"\n[[licensee]]\nname = \"A\"\nplan = \"nope\"\n");
    assert!(errors(&text).len() >= 4, "{:#?}", errors(&text));
    let message = parse_terms(&text).unwrap_err().to_string();
    assert!(message.starts_with("the terms are invalid ("), "{message}");
}

#[test]
fn networks_accept_addresses_and_are_normalized() {
    let text = format!(
        "{PLAN}[[licensee]]\nname = \"acme\"\nplan = \"basic\"\nallowed_networks = [\"203.0.113.9/24\", \"198.51.100.7\", \"2001:db8::/32\"]\n"
    );
    let file = parse_terms(&text).unwrap();
    let nets: Vec<String> =
        file.licensees[0].terms.allowed_networks.as_ref().unwrap().iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32"]);
}

#[test]
fn canonical_toml_round_trips() {
    let file = parse_terms(EXAMPLE).unwrap();
    assert_eq!(parse_terms(&file.to_toml()).unwrap(), file);
    let text = format!(
        "{PLAN}canary_rate = \"0.000001\"\ndeletion_deadline = \"90s\"\nmonthly_records = 7\nprepaid = true\n\
         [[licensee]]\nname = \"lab\"\nplan = \"basic\"\nmonthly_records = \"unlimited\"\nfingerprint = false\nendpoints = [\"search\"]\n\
         prepaid = false\n"
    );
    let file = parse_terms(&text).unwrap();
    assert_eq!(parse_terms(&file.to_toml()).unwrap(), file, "{}", file.to_toml());
    // A licensee's `prepaid` overrides its plan's.
    assert!(file.plans[0].prepaid);
    assert!(!Agreement::resolve(&file.plans[0], &file.licensees[0].terms).unwrap().prepaid);
    refused(&format!("{PLAN}prepaid = \"yes\"\n"), &["prepaid", "bool"]);
}

#[test]
fn stored_json_round_trips() {
    let file = parse_terms(EXAMPLE).unwrap();
    let plan_json = serde_json::to_string(&file.plans[0]).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&plan_json).unwrap(), file.plans[0]);
    let terms_json = serde_json::to_string(&file.licensees[0].terms).unwrap();
    assert_eq!(serde_json::from_str::<LicenseeTerms>(&terms_json).unwrap(), file.licensees[0].terms);
}

#[test]
fn stored_terms_rebuild_from_json() {
    let file = parse_terms(EXAMPLE).unwrap();
    let plans: Vec<(String, serde_json::Value)> =
        file.plans.iter().map(|p| (p.name.clone(), serde_json::to_value(p).unwrap())).collect();
    let licensees = file
        .licensees
        .iter()
        .map(|l| (LicenseeStatus::Blocked, "unpaid".to_owned(), serde_json::to_value(&l.terms).unwrap()));
    let terms = Terms::from_stored(&plans, licensees).unwrap();
    assert_eq!(terms.plans, file.plans);
    assert_eq!(terms.licensees[0].terms, file.licensees[0].terms);
    assert_eq!(terms.licensees[0].status, LicenseeStatus::Blocked);
    // A plan stored before `fingerprint` and friends existed still reads, with their defaults.
    let old = serde_json::json!({"name": "old", "rate_limits": {}, "endpoints": [], "purposes": ["search"]});
    let terms = Terms::from_stored(&[("old".into(), old)], []).unwrap();
    assert!(terms.plans[0].fingerprint);
    assert_eq!(terms.plans[0].cap, CapMode::Hard);
    let bad = serde_json::json!({"name": "x", "endpoints": ["firehose"]});
    let error = Terms::from_stored(&[("x".into(), bad)], []).unwrap_err();
    assert!(error.to_string().contains("stored plan \"x\""), "{error}");
}

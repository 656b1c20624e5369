//! The decision order: blocked → outside term → network → endpoint → purpose; and purposes at issue time.

use std::net::IpAddr;

use datapact_core::{Endpoint, LicenseeStatus, Timestamp};
use datapact_terms::*;

const FILE: &str = r#"
[[plan]]
name = "basic"
rate_limits = { search = "60/15m", lookup = "300/15m" }
endpoints = ["search", "lookup"]
purposes = ["search", "ai-input"]

[[licensee]]
name = "acme"
plan = "basic"
starts = "2026-01-01"
ends = "2027-01-01"
allowed_networks = ["203.0.113.0/24", "2001:db8::/32"]
"#;

fn agreement() -> Agreement {
    let file = parse_terms(FILE).unwrap();
    Agreement::resolve(&file.plans[0], &file.licensees[0].terms).unwrap()
}

/// 2026-06-01T00:00:00Z
const IN_TERM: Timestamp = Timestamp(1_780_272_000_000);

fn good<'a>() -> RequestFacts<'a> {
    RequestFacts {
        status: LicenseeStatus::Active,
        reason: "",
        purpose: Purpose::Search,
        endpoint: Endpoint::Search,
        client_ip: "203.0.113.7".parse().unwrap(),
        now: IN_TERM,
    }
}

fn kind(facts: &RequestFacts) -> Option<ViolationKind> {
    decide(&agreement(), facts).err().map(|r| r.kind)
}

#[test]
fn a_good_request_passes() {
    assert_eq!(decide(&agreement(), &good()), Ok(()));
    let mapped = RequestFacts { client_ip: "::ffff:203.0.113.9".parse().unwrap(), ..good() };
    assert_eq!(kind(&mapped), None, "IPv4-mapped IPv6 counts as IPv4");
    let v6 = RequestFacts { client_ip: "2001:db8::1".parse().unwrap(), ..good() };
    assert_eq!(kind(&v6), None);
}

#[test]
fn each_step_and_its_problem() {
    let blocked = RequestFacts { status: LicenseeStatus::Blocked, reason: "unpaid invoice", ..good() };
    let r = decide(&agreement(), &blocked).unwrap_err();
    assert_eq!(
        (r.kind, r.status, r.type_uri, r.title),
        (ViolationKind::Blocked, 403, CLIENT_FORBIDDEN, "Client Forbidden")
    );
    assert_eq!(r.detail, "Licensee acme is blocked: unpaid invoice");
    assert_eq!(r.reason, "blocked");
    let r = decide(&agreement(), &RequestFacts { status: LicenseeStatus::Blocked, ..good() }).unwrap_err();
    assert!(r.detail.contains("is blocked; contact"), "{}", r.detail);

    let early = RequestFacts { now: Timestamp(1_767_225_600_000 - 1), ..good() };
    let r = decide(&agreement(), &early).unwrap_err();
    assert_eq!(r.kind, ViolationKind::OutsideTerm);
    assert!(r.detail.contains("has not started"), "{}", r.detail);
    assert!(r.detail.contains("[2026-01-01T00:00:00.000Z, 2027-01-01T00:00:00.000Z)"), "{}", r.detail);
    assert_eq!(kind(&RequestFacts { now: Timestamp(1_767_225_600_000), ..good() }), None, "starts is inclusive");
    let ends = Timestamp(1_798_761_600_000);
    let r = decide(&agreement(), &RequestFacts { now: ends, ..good() }).unwrap_err();
    assert_eq!(r.kind, ViolationKind::OutsideTerm, "ends is exclusive");
    assert!(r.detail.contains("has ended"));
    assert_eq!(kind(&RequestFacts { now: ends.plus_millis(-1), ..good() }), None);

    let elsewhere = RequestFacts { client_ip: "198.51.100.1".parse().unwrap(), ..good() };
    let r = decide(&agreement(), &elsewhere).unwrap_err();
    assert_eq!((r.kind, r.status), (ViolationKind::NetworkNotAllowed, 403));
    assert!(r.detail.contains("198.51.100.1"));

    let r = decide(&agreement(), &RequestFacts { endpoint: Endpoint::Stream, ..good() }).unwrap_err();
    assert_eq!(r.kind, ViolationKind::EndpointNotAllowed);
    assert!(r.detail.contains("stream") && r.detail.contains("plan basic"), "{}", r.detail);

    let r = decide(&agreement(), &RequestFacts { purpose: Purpose::AiTrain, ..good() }).unwrap_err();
    assert_eq!(r.kind, ViolationKind::PurposeNotAllowed);
    assert!(r.detail.contains("ai-train") && r.detail.contains("allowed: ai-input, search"), "{}", r.detail);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["type"], CLIENT_FORBIDDEN);
    assert_eq!(json["kind"], "purpose_not_allowed");
}

#[test]
fn the_first_failing_step_wins() {
    let outside: IpAddr = "198.51.100.1".parse().unwrap();
    let everything_wrong = RequestFacts {
        status: LicenseeStatus::Blocked,
        reason: "r",
        purpose: Purpose::AiTrain,
        endpoint: Endpoint::Stream,
        client_ip: outside,
        now: Timestamp(0),
    };
    let mut facts = everything_wrong.clone();
    assert_eq!(kind(&facts), Some(ViolationKind::Blocked));
    facts.status = LicenseeStatus::Active;
    assert_eq!(kind(&facts), Some(ViolationKind::OutsideTerm));
    facts.now = IN_TERM;
    assert_eq!(kind(&facts), Some(ViolationKind::NetworkNotAllowed));
    facts.client_ip = "203.0.113.1".parse().unwrap();
    assert_eq!(kind(&facts), Some(ViolationKind::EndpointNotAllowed));
    facts.endpoint = Endpoint::Lookup;
    assert_eq!(kind(&facts), Some(ViolationKind::PurposeNotAllowed));
    facts.purpose = Purpose::AiInput;
    assert_eq!(kind(&facts), None);
}

#[test]
fn no_networks_and_no_term_mean_no_restriction() {
    let file = parse_terms(&FILE.replace(
        "starts = \"2026-01-01\"\nends = \"2027-01-01\"\nallowed_networks = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n",
        "",
    ))
    .unwrap();
    let open = Agreement::resolve(&file.plans[0], &file.licensees[0].terms).unwrap();
    let facts = RequestFacts { client_ip: "192.0.2.1".parse().unwrap(), now: Timestamp(0), ..good() };
    assert_eq!(decide(&open, &facts), Ok(()));
}

#[test]
fn purposes_at_issue_time() {
    let a = agreement();
    assert!(purpose_allowed(&a, Purpose::Search));
    assert!(purpose_allowed(&a, Purpose::AiInput));
    for refused in [Purpose::AiTrain, Purpose::AiIndex, Purpose::AiAll, Purpose::All] {
        assert!(!purpose_allowed(&a, refused), "{refused}");
    }
}

#[test]
fn rate_limited_and_no_agreement_problems() {
    let limiter = RateLimiter::<String>::new();
    let rate = agreement().rate_limit(Endpoint::Search).unwrap();
    let mut last = None;
    for _ in 0..61 {
        last = Some(limiter.check("acme", Endpoint::Search, rate, IN_TERM));
    }
    let decision = last.unwrap();
    assert!(!decision.allowed);
    let r = Refusal::rate_limited(Endpoint::Search, &decision);
    assert_eq!((r.kind, r.status, r.title), (ViolationKind::RateLimited, 429, "Too Many Requests"));
    assert!(r.detail.contains("60 requests per 900 s"), "{}", r.detail);
    let r = Refusal::no_agreement("acme");
    assert_eq!((r.kind, r.status), (ViolationKind::OutsideTerm, 403));
    for k in ViolationKind::ALL {
        assert_eq!(ViolationKind::parse(k.as_str()), Some(k));
    }
}

//! Reading (and writing) the terms file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use datapact_billing::{
    BillingTerms, Currency, MAX_TERMS_DAYS, Money, PlanPrice, PriceBook, PriceOverride, Rate, book_in_force,
    check_overrides, check_price_books,
};
use datapact_core::{Endpoint, LicenseeStatus, licensee::validate_licensee_name};
use ipnet::IpNet;
use serde::Deserialize;

use crate::agreement::Agreement;
use crate::limit::{RateLimit, Span};
use crate::model::{
    CapMode, Dedup, LicenseeRecord, LicenseeSpec, LicenseeTerms, MonthlyRecords, Plan, PlanOverrides, Terms, TermsFile,
};
use crate::purpose::Purpose;

/// One thing wrong with a terms file: where (`[[plan]] #1 "basic"`, `line 3, column 1`, `top level`) and what,
/// phrased so the operator knows what to change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TermsProblem {
    /// Where: `[[plan]] #1 "basic"`, `[[licensee]] #2 "acme"`, `line 3, column 7` or `top level`.
    pub at: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for TermsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a terms file (parsing goes on after the first, so one run lists them all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct TermsError {
    /// Every problem, in file order.
    pub problems: Vec<TermsProblem>,
}

impl TermsError {
    /// An error with one problem.
    pub fn single(at: impl Into<String>, message: impl Into<String>) -> TermsError {
        TermsError { problems: vec![TermsProblem { at: at.into(), message: message.into() }] }
    }
}

impl fmt::Display for TermsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "the terms are invalid ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: String,
    monthly_records: Option<toml::Value>,
    cap: Option<String>,
    rate_limits: Option<BTreeMap<String, String>>,
    endpoints: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
    dedup: Option<String>,
    fingerprint: Option<bool>,
    prepaid: Option<bool>,
    canary_rate: Option<toml::Value>,
    deletion_deadline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicensee {
    name: String,
    plan: String,
    status: Option<String>,
    reason: Option<String>,
    starts: Option<toml::Value>,
    ends: Option<toml::Value>,
    allowed_networks: Option<Vec<String>>,
    monthly_records: Option<toml::Value>,
    cap: Option<String>,
    rate_limits: Option<BTreeMap<String, String>>,
    endpoints: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
    dedup: Option<String>,
    fingerprint: Option<bool>,
    prepaid: Option<bool>,
    canary_rate: Option<toml::Value>,
    deletion_deadline: Option<String>,
    payment_terms_days: Option<toml::Value>,
    grace_days: Option<toml::Value>,
    prices: Option<Vec<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceBook {
    effective: toml::Value,
    currency: String,
    plans: Option<BTreeMap<String, toml::Table>>,
}

/// The price fields, in a `[price_book.plans.NAME]` table or a licensee's `prices` entry.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    monthly_fee: Option<toml::Value>,
    included_records: Option<toml::Value>,
    overage_per_1000: Option<toml::Value>,
    per_record: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceOverride {
    effective: toml::Value,
    currency: Option<String>,
    monthly_fee: Option<toml::Value>,
    included_records: Option<toml::Value>,
    overage_per_1000: Option<toml::Value>,
    per_record: Option<toml::Value>,
}

/// Collects problems for one table entry.
struct Sink<'a> {
    at: String,
    problems: &'a mut Vec<TermsProblem>,
}

impl Sink<'_> {
    fn push(&mut self, message: impl Into<String>) {
        self.problems.push(TermsProblem { at: self.at.clone(), message: message.into() });
    }

    fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(message)).ok()
    }
}

/// Parses and validates a terms file. On failure every problem found is returned, each saying where and what.
///
/// Rules beyond the TOML grammar: unknown keys are errors naming the key and its table; the only top-level keys are
/// `plan`, `licensee` and `price_book`; names are 1–64 of `[a-z0-9_-]` starting with a letter and unique per kind; a
/// plan must list `endpoints` and `purposes`, and every endpoint an agreement allows must have a rate limit; a
/// licensee must name a plan of the same file; `reason` needs `status`; `ends` must be after `starts`. Price books
/// and licensee billing terms: see the crate documentation.
pub fn parse_terms(text: &str) -> Result<TermsFile, TermsError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let mut problems = Vec::new();
    let mut plan_entries = Vec::new();
    let mut licensee_entries = Vec::new();
    let mut price_book_entries = Vec::new();
    for (key, value) in &table {
        match key.as_str() {
            "plan" => plan_entries = array_of_tables("plan", value, &mut problems),
            "licensee" => licensee_entries = array_of_tables("licensee", value, &mut problems),
            "price_book" => price_book_entries = array_of_tables("price_book", value, &mut problems),
            key => problems.push(TermsProblem {
                at: "top level".into(),
                message: format!(
                    "unknown key `{key}`: a terms file holds [[plan]], [[licensee]] and [[price_book]] tables"
                ),
            }),
        }
    }
    let plan_names: BTreeSet<&str> =
        plan_entries.iter().filter_map(|p| p.get("name").and_then(|n| n.as_str())).collect();

    let mut plans: Vec<Plan> = Vec::new();
    for (index, entry) in plan_entries.iter().enumerate() {
        let mut sink = Sink { at: entry_label("plan", index, entry), problems: &mut problems };
        let raw = match RawPlan::deserialize(toml::Value::Table(entry.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                sink.push(de_message::<RawPlan>(&e, entry, &["name"]));
                continue;
            }
        };
        if let Some(plan) = plan_from_raw(raw, &mut sink) {
            if plans.iter().any(|p| p.name == plan.name) {
                sink.push(format!("plan name {:?} is used twice: give each plan its own name", plan.name));
            } else {
                plans.push(plan);
            }
        }
    }

    let before_books = problems.len();
    let price_books = price_books(&price_book_entries, &plan_names, &mut problems);
    // With a refused version, "no price book in force" would be a misleading echo of its problem.
    let books_complete = problems.len() == before_books;

    let mut licensees: Vec<LicenseeSpec> = Vec::new();
    for (index, entry) in licensee_entries.iter().enumerate() {
        let mut sink = Sink { at: entry_label("licensee", index, entry), problems: &mut problems };
        let raw = match RawLicensee::deserialize(toml::Value::Table(entry.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                sink.push(de_message::<RawLicensee>(&e, entry, &["name", "plan"]));
                continue;
            }
        };
        let plan_known = plan_entries.iter().any(|p| p.get("name").and_then(|n| n.as_str()) == Some(raw.plan.as_str()));
        let Some(spec) = licensee_from_raw(raw, plan_known, (&price_books, books_complete), &mut sink) else {
            continue;
        };
        if licensees.iter().any(|l| l.terms.name == spec.terms.name) {
            sink.push(format!("licensee name {:?} is used twice: give each licensee one entry", spec.terms.name));
            continue;
        }
        // The plan may have been refused above; only check the merged agreement against a valid one.
        if let Some(plan) = plans.iter().find(|p| p.name == spec.terms.plan)
            && let Err(message) = Agreement::resolve(plan, &spec.terms)
        {
            sink.push(message);
        }
        licensees.push(spec);
    }

    if problems.is_empty() { Ok(TermsFile { plans, licensees, price_books }) } else { Err(TermsError { problems }) }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> TermsError {
    let at = match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}")
        }
        None => "terms file".into(),
    };
    TermsError::single(at, format!("not valid TOML: {}", error.message().trim()))
}

/// Words a serde error on one table entry, naming the key at fault: the toml value deserializer does not say which
/// key a type error is about, so each key is tried alone (with placeholders for the required ones).
fn de_message<T: serde::de::DeserializeOwned>(
    error: &toml::de::Error,
    entry: &toml::Table,
    required: &[&str],
) -> String {
    let message = error.message().trim().to_owned();
    if message.starts_with("unknown field") {
        return format!("{message}; remove or rename it");
    }
    if message.starts_with("missing field") {
        return format!("{message}; add it");
    }
    for (key, value) in entry {
        let mut alone: toml::Table =
            required.iter().map(|r| ((*r).to_owned(), toml::Value::String("x".into()))).collect();
        alone.insert(key.clone(), value.clone());
        if let Err(e) = T::deserialize(toml::Value::Table(alone)) {
            return format!("`{key}`: {}", e.message().trim());
        }
    }
    message
}

fn array_of_tables(kind: &str, value: &toml::Value, problems: &mut Vec<TermsProblem>) -> Vec<toml::Table> {
    let wrong = |problems: &mut Vec<TermsProblem>| {
        problems.push(TermsProblem {
            at: "top level".into(),
            message: format!("`{kind}` must be an array of tables: write each one under its own [[{kind}]] header"),
        })
    };
    let Some(items) = value.as_array() else {
        wrong(problems);
        return Vec::new();
    };
    let mut tables = Vec::new();
    for item in items {
        match item.as_table() {
            Some(table) => tables.push(table.clone()),
            None => {
                wrong(problems);
                return Vec::new();
            }
        }
    }
    tables
}

fn entry_label(kind: &str, index: usize, entry: &toml::Table) -> String {
    match entry.get("name").and_then(|n| n.as_str()) {
        Some(name) => format!("[[{kind}]] #{} {name:?}", index + 1),
        None => format!("[[{kind}]] #{}", index + 1),
    }
}

/// Plan names follow the licensee name rule (they appear in the same places).
pub fn validate_plan_name(name: &str) -> Result<(), String> {
    validate_licensee_name(name).map_err(|e| e.replacen("licensee name", "plan name", 1))
}

/// The plan fields a licensee can override, as read from either table.
struct RawFields {
    monthly_records: Option<toml::Value>,
    cap: Option<String>,
    rate_limits: Option<BTreeMap<String, String>>,
    endpoints: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
    dedup: Option<String>,
    fingerprint: Option<bool>,
    prepaid: Option<bool>,
    canary_rate: Option<toml::Value>,
    deletion_deadline: Option<String>,
}

fn fields(sink: &mut Sink, raw: RawFields) -> Option<PlanOverrides> {
    let before = sink.problems.len();
    let mut out = PlanOverrides {
        monthly_records: raw.monthly_records.and_then(|v| sink.take(monthly_records(&v))),
        cap: raw.cap.and_then(|c| {
            sink.take(CapMode::parse(&c).ok_or_else(|| format!("`cap` is {c:?}: use \"hard\" or \"soft\"")))
        }),
        dedup: raw.dedup.and_then(|d| {
            sink.take(Dedup::parse(&d).ok_or_else(|| format!("`dedup` is {d:?}: use \"daily\" or \"none\"")))
        }),
        fingerprint: raw.fingerprint,
        prepaid: raw.prepaid,
        canary_ppm: raw.canary_rate.and_then(|v| sink.take(canary_ppm(&v))),
        deletion_deadline: raw
            .deletion_deadline
            .and_then(|d| sink.take(Span::parse(&d).map_err(|e| format!("`deletion_deadline`: {e}")))),
        ..PlanOverrides::default()
    };
    for (name, text) in raw.rate_limits.unwrap_or_default() {
        let endpoint = sink.take(endpoint(&name).map_err(|e| format!("`rate_limits.{name}`: {e}")));
        let rate = sink.take(RateLimit::parse(&text).map_err(|e| format!("`rate_limits.{name}`: {e}")));
        if let (Some(endpoint), Some(rate)) = (endpoint, rate) {
            out.rate_limits.insert(endpoint, rate);
        }
    }
    if let Some(names) = raw.endpoints {
        let mut set = BTreeSet::new();
        for name in names {
            if let Some(e) = sink.take(endpoint(&name).map_err(|e| format!("`endpoints`: {e}")))
                && !set.insert(e)
            {
                sink.push(format!("`endpoints` lists {name:?} twice: list it once"));
            }
        }
        out.endpoints = Some(set);
    }
    if let Some(names) = raw.purposes {
        let mut set = BTreeSet::new();
        for name in names {
            match Purpose::parse(&name) {
                Some(p) if !set.insert(p) => sink.push(format!("`purposes` lists {name:?} twice: list it once")),
                Some(_) => {}
                None => sink.push(format!(
                    "`purposes`: unknown purpose {name:?}; purposes are {}",
                    Purpose::ALL.map(|p| p.as_str()).join(", ")
                )),
            }
        }
        out.purposes = Some(set);
    }
    (sink.problems.len() == before).then_some(out)
}

fn endpoint(name: &str) -> Result<Endpoint, String> {
    Endpoint::parse(name).ok_or_else(|| {
        format!("unknown endpoint {name:?}; endpoints are {}", Endpoint::ALL.map(|e| e.as_str()).join(", "))
    })
}

fn monthly_records(value: &toml::Value) -> Result<MonthlyRecords, String> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Ok(MonthlyRecords::Limit(*n as u64)),
        toml::Value::String(s) if s == "unlimited" => Ok(MonthlyRecords::Unlimited),
        other => {
            Err(format!("`monthly_records` is {other}: use a whole number of records (0 or more), or \"unlimited\""))
        }
    }
}

/// `canary_rate` as parts per million: a decimal string (`"0.001"`, exact, at most 6 decimals) or a TOML float
/// (rounded to the nearest ppm), between 0 and 1; the integers 0 and 1 are accepted too.
pub fn canary_ppm(value: &toml::Value) -> Result<u32, String> {
    let hint = "use a share between 0 and 1 with at most 6 decimals, such as \"0.001\"";
    let ppm = match value {
        toml::Value::String(s) => {
            let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
            let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty() || !digits_ok(whole) || !digits_ok(frac) || (s.contains('.') && frac.is_empty()) {
                return Err(format!("`canary_rate` is {s:?}: {hint}"));
            }
            let significant = frac.trim_end_matches('0');
            if significant.len() > 6 {
                return Err(format!("`canary_rate` {s:?} has more than 6 decimals: {hint}"));
            }
            let whole: u64 = whole.parse().unwrap_or(u64::MAX);
            let frac: u64 = format!("{significant:0<6}").parse().unwrap_or(0);
            whole.saturating_mul(1_000_000).saturating_add(frac)
        }
        toml::Value::Float(f) if f.is_finite() && (0.0..=1.0).contains(f) => (f * 1e6).round() as u64,
        toml::Value::Integer(n) if (0..=1).contains(n) => *n as u64 * 1_000_000,
        other => return Err(format!("`canary_rate` is {other}: {hint}")),
    };
    if ppm > 1_000_000 {
        return Err(format!("`canary_rate` is {value} (above 1): {hint}"));
    }
    Ok(ppm as u32)
}

fn plan_from_raw(raw: RawPlan, sink: &mut Sink) -> Option<Plan> {
    let name_ok = sink.take(validate_plan_name(&raw.name)).is_some();
    let missing_endpoints = raw.endpoints.is_none();
    let missing_purposes = raw.purposes.is_none();
    if missing_endpoints {
        sink.push(format!("`endpoints` is missing: list the endpoints the plan allows, from {}", endpoint_names()));
    }
    if missing_purposes {
        sink.push("`purposes` is missing: list the purposes the plan allows, from all, ai-all, ai-train, ai-input, ai-index, search");
    }
    let f = fields(
        sink,
        RawFields {
            monthly_records: raw.monthly_records,
            cap: raw.cap,
            rate_limits: raw.rate_limits,
            endpoints: raw.endpoints,
            purposes: raw.purposes,
            dedup: raw.dedup,
            fingerprint: raw.fingerprint,
            prepaid: raw.prepaid,
            canary_rate: raw.canary_rate,
            deletion_deadline: raw.deletion_deadline,
        },
    )?;
    if !name_ok || missing_endpoints || missing_purposes {
        return None;
    }
    let plan = Plan {
        name: raw.name,
        monthly_records: f.monthly_records.and_then(MonthlyRecords::limit),
        cap: f.cap.unwrap_or_default(),
        rate_limits: f.rate_limits,
        endpoints: f.endpoints.unwrap_or_default(),
        purposes: f.purposes.unwrap_or_default(),
        dedup: f.dedup.unwrap_or_default(),
        fingerprint: f.fingerprint.unwrap_or(true),
        prepaid: f.prepaid.unwrap_or(false),
        canary_ppm: f.canary_ppm.unwrap_or(0),
        deletion_deadline: f.deletion_deadline,
    };
    let unlimited: Vec<&str> =
        plan.endpoints.iter().filter(|e| !plan.rate_limits.contains_key(e)).map(|e| e.as_str()).collect();
    if !unlimited.is_empty() {
        sink.push(format!(
            "endpoint(s) {} are allowed but have no rate limit: add them to `rate_limits`, such as {} = \"60/15m\"",
            unlimited.join(", "),
            unlimited[0]
        ));
        return None;
    }
    Some(plan)
}

fn endpoint_names() -> String {
    Endpoint::ALL.map(|e| e.as_str()).join(", ")
}

fn date(key: &str, value: &toml::Value) -> Result<NaiveDate, String> {
    let hint = format!("`{key}` must be a date written YYYY-MM-DD, such as \"2026-01-01\" (UTC midnight)");
    match value {
        toml::Value::String(s) if s.len() == 10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| hint),
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)))
            .ok_or(hint),
        _ => Err(hint),
    }
}

fn network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map(|net| net.trunc()).map_err(
        |_| {
            format!(
                "`allowed_networks`: {text:?} is not a network: write CIDR such as \"203.0.113.0/24\" or an address"
            )
        },
    )
}

fn licensee_from_raw(
    raw: RawLicensee,
    plan_known: bool,
    books: (&[PriceBook], bool),
    sink: &mut Sink,
) -> Option<LicenseeSpec> {
    let before = sink.problems.len();
    sink.take(validate_licensee_name(&raw.name));
    if !plan_known {
        sink.push(format!(
            "plan {:?} is not defined in this file: add a [[plan]] named {:?} or name one that is",
            raw.plan, raw.plan
        ));
    }
    let status = raw.status.as_deref().and_then(|s| {
        sink.take(LicenseeStatus::parse(s).ok_or_else(|| format!("`status` is {s:?}: use \"active\" or \"blocked\"")))
    });
    if raw.reason.is_some() && raw.status.is_none() {
        sink.push("`reason` is set without `status`: set `status` too (\"active\" or \"blocked\"), or drop `reason`");
    }
    let starts = raw.starts.as_ref().and_then(|v| sink.take(date("starts", v)));
    let ends = raw.ends.as_ref().and_then(|v| sink.take(date("ends", v)));
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        sink.push(format!("`ends` ({e}) is not after `starts` ({s}): the term is [starts, ends), so end it later"));
    }
    let allowed_networks = raw.allowed_networks.map(|list| {
        if list.is_empty() {
            sink.push("`allowed_networks` is empty, which would refuse every address: remove the key to allow any");
        }
        list.iter().filter_map(|n| sink.take(network(n))).collect::<Vec<_>>()
    });
    let overrides = fields(
        sink,
        RawFields {
            monthly_records: raw.monthly_records,
            cap: raw.cap,
            rate_limits: raw.rate_limits,
            endpoints: raw.endpoints,
            purposes: raw.purposes,
            dedup: raw.dedup,
            fingerprint: raw.fingerprint,
            prepaid: raw.prepaid,
            canary_rate: raw.canary_rate,
            deletion_deadline: raw.deletion_deadline,
        },
    );
    let defaults = BillingTerms::default();
    let billing = BillingTerms {
        payment_terms_days: raw
            .payment_terms_days
            .and_then(|v| sink.take(days("payment_terms_days", &v)))
            .unwrap_or(defaults.payment_terms_days),
        grace_days: raw.grace_days.and_then(|v| sink.take(days("grace_days", &v))).unwrap_or(defaults.grace_days),
        prices: negotiated_prices(raw.prices.unwrap_or_default(), books, sink),
    };
    if sink.problems.len() != before {
        return None;
    }
    Some(LicenseeSpec {
        terms: LicenseeTerms {
            name: raw.name,
            plan: raw.plan,
            starts,
            ends,
            allowed_networks,
            overrides: overrides.unwrap_or_default(),
            billing,
        },
        status,
        reason: raw.reason,
    })
}

fn price_book_label(index: usize, entry: &toml::Table) -> String {
    match entry.get("effective") {
        Some(toml::Value::String(s)) => format!("[[price_book]] #{} effective {s}", index + 1),
        Some(toml::Value::Datetime(d)) => format!("[[price_book]] #{} effective {d}", index + 1),
        _ => format!("[[price_book]] #{}", index + 1),
    }
}

/// Reads and checks the `[[price_book]]` versions, sorted by effective date.
fn price_books(
    entries: &[toml::Table],
    plan_names: &BTreeSet<&str>,
    problems: &mut Vec<TermsProblem>,
) -> Vec<PriceBook> {
    let mut books = Vec::new();
    let mut labels = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let mut sink = Sink { at: price_book_label(index, entry), problems };
        let raw = match RawPriceBook::deserialize(toml::Value::Table(entry.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                sink.push(de_message::<RawPriceBook>(&e, entry, &["effective", "currency"]));
                continue;
            }
        };
        let before = sink.problems.len();
        let effective = sink.take(date("effective", &raw.effective));
        let currency = sink.take(raw.currency.parse::<Currency>().map_err(|e| format!("`currency`: {e}")));
        let mut plans = BTreeMap::new();
        for (name, table) in raw.plans.unwrap_or_default() {
            let at = format!("plans.{name}: ");
            if !plan_names.contains(name.as_str()) {
                sink.push(format!(
                    "{at}plan {name:?} is not defined in this file: price a plan of the file, or add a [[plan]] named {name:?}"
                ));
                continue;
            }
            let raw = match RawPrice::deserialize(toml::Value::Table(table.clone())) {
                Ok(raw) => raw,
                Err(e) => {
                    sink.push(format!("{at}{}", de_message::<RawPrice>(&e, &table, &[])));
                    continue;
                }
            };
            let Some(currency) = currency else { continue };
            if let Some(f) = price_fields(&at, raw, currency, &mut sink) {
                let price = PlanPrice {
                    monthly_fee: f.monthly_fee.unwrap_or(Money::zero(currency)),
                    included_records: f.included_records.unwrap_or(0),
                    overage_per_1000: f.overage_per_1000,
                    per_record: f.per_record,
                };
                plans.insert(name, price);
            }
        }
        if let (Some(effective), Some(currency), true) = (effective, currency, sink.problems.len() == before) {
            books.push(PriceBook { effective, currency, plans });
            labels.push(sink.at);
        }
    }
    for (index, message) in check_price_books(&books) {
        problems.push(TermsProblem { at: labels[index].clone(), message });
    }
    books.sort_by_key(|b| b.effective);
    books
}

/// The price fields as read, each optional.
struct PriceFields {
    monthly_fee: Option<Money>,
    included_records: Option<u64>,
    overage_per_1000: Option<Rate>,
    per_record: Option<Rate>,
}

/// Reads the price fields of a book's plan or a negotiated price; `at` prefixes each message (`plans.basic: `).
fn price_fields(at: &str, raw: RawPrice, currency: Currency, sink: &mut Sink) -> Option<PriceFields> {
    let before = sink.problems.len();
    let at_ = |m: String| format!("{at}{m}");
    let monthly_fee = raw.monthly_fee.and_then(|v| sink.take(money("monthly_fee", &v, currency).map_err(at_)));
    let included_records = raw.included_records.and_then(|v| sink.take(records("included_records", &v).map_err(at_)));
    let overage_per_1000 = raw.overage_per_1000.and_then(|v| sink.take(rate("overage_per_1000", &v).map_err(at_)));
    let per_record = raw.per_record.and_then(|v| sink.take(rate("per_record", &v).map_err(at_)));
    (sink.problems.len() == before).then_some(PriceFields {
        monthly_fee,
        included_records,
        overage_per_1000,
        per_record,
    })
}

/// A licensee's `prices` entries, sorted by effective date. An entry without `currency` takes the currency of the
/// price book in force on its effective date. `books` holds the valid versions and whether none was refused.
fn negotiated_prices(
    entries: Vec<toml::Table>,
    (books, books_complete): (&[PriceBook], bool),
    sink: &mut Sink,
) -> Vec<PriceOverride> {
    let mut prices = Vec::new();
    let mut labels = Vec::new();
    for (index, table) in entries.iter().enumerate() {
        let at = format!("prices #{}: ", index + 1);
        let raw = match RawPriceOverride::deserialize(toml::Value::Table(table.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                sink.push(format!("{at}{}", de_message::<RawPriceOverride>(&e, table, &["effective"])));
                continue;
            }
        };
        let Some(effective) = sink.take(date("effective", &raw.effective).map_err(|m| format!("{at}{m}"))) else {
            continue;
        };
        let book = book_in_force(books, effective).map(|b| b.currency);
        let currency = match (raw.currency, book) {
            (Some(code), book) => {
                let Some(currency) = sink.take(code.parse::<Currency>().map_err(|e| format!("{at}`currency`: {e}")))
                else {
                    continue;
                };
                if let Some(book) = book.filter(|b| *b != currency) {
                    sink.push(format!(
                        "{at}`currency` is {currency} but the price book in force on {effective} is in {book}: negotiate in the book's currency"
                    ));
                    continue;
                }
                currency
            }
            (None, Some(book)) => book,
            (None, None) if !books_complete => continue,
            (None, None) => {
                sink.push(format!(
                    "{at}no [[price_book]] is in force on {effective} to take the currency from: add `currency`, such as \"USD\""
                ));
                continue;
            }
        };
        let fields = RawPrice {
            monthly_fee: raw.monthly_fee,
            included_records: raw.included_records,
            overage_per_1000: raw.overage_per_1000,
            per_record: raw.per_record,
        };
        let Some(f) = price_fields(&at, fields, currency, sink) else { continue };
        let price = PriceOverride {
            effective,
            currency,
            monthly_fee: f.monthly_fee,
            included_records: f.included_records,
            overage_per_1000: f.overage_per_1000,
            per_record: f.per_record,
        };
        if price.is_empty() {
            sink.push(format!(
                "{at}sets no price: set `monthly_fee`, `included_records`, `overage_per_1000` or `per_record`"
            ));
            continue;
        }
        prices.push(price);
        labels.push(at);
    }
    for (index, message) in check_overrides(&prices) {
        sink.push(format!("{}{message}", labels[index]));
    }
    prices.sort_by_key(|p| p.effective);
    prices
}

/// An amount of money: a decimal string with at most the currency's decimals, or a whole number of units.
fn money(key: &str, value: &toml::Value, currency: Currency) -> Result<Money, String> {
    match value {
        toml::Value::String(s) => Money::parse(currency, s).map_err(|e| format!("`{key}`: {e}")),
        toml::Value::Integer(n) if *n >= 0 => Money::from_units(currency, *n).ok_or(format!("`{key}` is too large")),
        toml::Value::Float(_) => {
            Err(format!("`{key}` is {value}: write money as a string, such as \"200.00\" (a float is not exact)"))
        }
        other => Err(format!("`{key}` is {other}: write an amount of zero or more as a string, such as \"200.00\"")),
    }
}

/// A unit rate: a decimal string with at most 6 decimals (micro-units), or a whole number of units.
fn rate(key: &str, value: &toml::Value) -> Result<Rate, String> {
    match value {
        toml::Value::String(s) => Rate::parse(s).map_err(|e| format!("`{key}`: {e}")),
        toml::Value::Integer(n) if *n >= 0 => n
            .checked_mul(datapact_billing::MICROS_PER_UNIT)
            .and_then(Rate::from_micro)
            .ok_or(format!("`{key}` is too large")),
        toml::Value::Float(_) => {
            Err(format!("`{key}` is {value}: write the rate as a string, such as \"0.005\" (a float is not exact)"))
        }
        other => Err(format!("`{key}` is {other}: write a rate of zero or more as a string, such as \"0.005\"")),
    }
}

fn records(key: &str, value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        other => Err(format!("`{key}` is {other}: write a whole number of records, 0 or more")),
    }
}

fn days(key: &str, value: &toml::Value) -> Result<u32, String> {
    match value {
        toml::Value::Integer(n) if (0..=i64::from(MAX_TERMS_DAYS)).contains(n) => Ok(*n as u32),
        other => Err(format!("`{key}` is {other}: write a whole number of days from 0 to {MAX_TERMS_DAYS}")),
    }
}

/// A TOML value in inline form (strings escaped as TOML wants).
fn toml_str(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn toml_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(toml_str).collect::<Vec<_>>().join(", "))
}

fn plan_fields_to_toml(lines: &mut Vec<(&'static str, String)>, f: &PlanOverrides) {
    if let Some(m) = f.monthly_records {
        let value = match m {
            MonthlyRecords::Unlimited => toml_str("unlimited"),
            MonthlyRecords::Limit(n) => n.to_string(),
        };
        lines.push(("monthly_records", value));
    }
    if let Some(cap) = f.cap {
        lines.push(("cap", toml_str(cap.as_str())));
    }
    if !f.rate_limits.is_empty() {
        let limits: Vec<String> =
            f.rate_limits.iter().map(|(e, r)| format!("{} = {}", e.as_str(), toml_str(&r.to_string()))).collect();
        lines.push(("rate_limits", format!("{{ {} }}", limits.join(", "))));
    }
    if let Some(endpoints) = &f.endpoints {
        lines.push(("endpoints", toml_list(endpoints.iter().map(|e| e.as_str()))));
    }
    if let Some(purposes) = &f.purposes {
        lines.push(("purposes", toml_list(purposes.iter().map(|p| p.as_str()))));
    }
    if let Some(dedup) = f.dedup {
        lines.push(("dedup", toml_str(dedup.as_str())));
    }
    if let Some(fingerprint) = f.fingerprint {
        lines.push(("fingerprint", fingerprint.to_string()));
    }
    if let Some(prepaid) = f.prepaid {
        lines.push(("prepaid", prepaid.to_string()));
    }
    if let Some(ppm) = f.canary_ppm {
        lines.push(("canary_rate", toml_str(&ppm_to_decimal(ppm))));
    }
    if let Some(deadline) = f.deletion_deadline {
        lines.push(("deletion_deadline", toml_str(&deadline.to_string())));
    }
}

/// `1000` → `"0.001"`, `1_000_000` → `"1"`.
pub fn ppm_to_decimal(ppm: u32) -> String {
    let whole = ppm / 1_000_000;
    let frac = ppm % 1_000_000;
    if frac == 0 { whole.to_string() } else { format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0')) }
}

fn plan_as_overrides(plan: &Plan) -> PlanOverrides {
    PlanOverrides {
        monthly_records: plan.monthly_records.map(MonthlyRecords::Limit),
        cap: Some(plan.cap),
        rate_limits: plan.rate_limits.clone(),
        endpoints: Some(plan.endpoints.clone()),
        purposes: Some(plan.purposes.clone()),
        dedup: Some(plan.dedup),
        fingerprint: Some(plan.fingerprint),
        prepaid: Some(plan.prepaid),
        canary_ppm: Some(plan.canary_ppm),
        deletion_deadline: plan.deletion_deadline,
    }
}

fn licensee_lines(
    terms: &LicenseeTerms,
    status: Option<LicenseeStatus>,
    reason: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut lines = vec![("name", toml_str(&terms.name)), ("plan", toml_str(&terms.plan))];
    if let Some(status) = status {
        lines.push(("status", toml_str(status.as_str())));
    }
    if let Some(reason) = reason {
        lines.push(("reason", toml_str(reason)));
    }
    if let Some(starts) = terms.starts {
        lines.push(("starts", toml_str(&starts.format("%Y-%m-%d").to_string())));
    }
    if let Some(ends) = terms.ends {
        lines.push(("ends", toml_str(&ends.format("%Y-%m-%d").to_string())));
    }
    if let Some(networks) = &terms.allowed_networks {
        let nets: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
        lines.push(("allowed_networks", toml_list(nets.iter().map(String::as_str))));
    }
    plan_fields_to_toml(&mut lines, &terms.overrides);
    billing_to_toml(&mut lines, &terms.billing);
    lines
}

fn price_fields_to_toml(out: &mut Vec<String>, f: PriceFields) {
    if let Some(fee) = f.monthly_fee {
        out.push(format!("monthly_fee = {}", toml_str(&fee.amount())));
    }
    if let Some(included) = f.included_records {
        out.push(format!("included_records = {included}"));
    }
    if let Some(rate) = f.overage_per_1000 {
        out.push(format!("overage_per_1000 = {}", toml_str(&rate.to_string())));
    }
    if let Some(rate) = f.per_record {
        out.push(format!("per_record = {}", toml_str(&rate.to_string())));
    }
}

fn billing_to_toml(lines: &mut Vec<(&'static str, String)>, billing: &BillingTerms) {
    let defaults = BillingTerms::default();
    if billing.payment_terms_days != defaults.payment_terms_days {
        lines.push(("payment_terms_days", billing.payment_terms_days.to_string()));
    }
    if billing.grace_days != defaults.grace_days {
        lines.push(("grace_days", billing.grace_days.to_string()));
    }
    if !billing.prices.is_empty() {
        let entries: Vec<String> = billing
            .prices
            .iter()
            .map(|p| {
                let mut fields = vec![
                    format!("effective = {}", toml_str(&p.effective.format("%Y-%m-%d").to_string())),
                    format!("currency = {}", toml_str(p.currency.code())),
                ];
                let f = PriceFields {
                    monthly_fee: p.monthly_fee,
                    included_records: p.included_records,
                    overage_per_1000: p.overage_per_1000,
                    per_record: p.per_record,
                };
                price_fields_to_toml(&mut fields, f);
                format!("{{ {} }}", fields.join(", "))
            })
            .collect();
        lines.push(("prices", format!("[{}]", entries.join(", "))));
    }
}

fn render(plans: &[Plan], books: &[PriceBook], licensees: Vec<Vec<(&'static str, String)>>) -> String {
    let mut out = String::new();
    let mut table = |header: &str, lines: Vec<String>| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(header);
        out.push('\n');
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    };
    let key_values =
        |lines: Vec<(&'static str, String)>| lines.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
    for plan in plans {
        let mut lines = vec![("name", toml_str(&plan.name))];
        plan_fields_to_toml(&mut lines, &plan_as_overrides(plan));
        table("[[plan]]", key_values(lines));
    }
    for book in books {
        let lines = vec![
            ("effective", toml_str(&book.effective.format("%Y-%m-%d").to_string())),
            ("currency", toml_str(book.currency.code())),
        ];
        table("[[price_book]]", key_values(lines));
        for (name, price) in &book.plans {
            let mut fields = Vec::new();
            let f = PriceFields {
                monthly_fee: Some(price.monthly_fee),
                included_records: Some(price.included_records),
                overage_per_1000: price.overage_per_1000,
                per_record: price.per_record,
            };
            price_fields_to_toml(&mut fields, f);
            table(&format!("[price_book.plans.{name}]"), fields);
        }
    }
    for lines in licensees {
        table("[[licensee]]", key_values(lines));
    }
    out
}

impl Terms {
    /// The stored terms as a terms file (status and reason always written). Applying the output to the same
    /// terms changes nothing, so `terms show > terms.toml` is a starting point for edits.
    pub fn to_toml(&self) -> String {
        let licensees = self
            .licensees
            .iter()
            .map(|l: &LicenseeRecord| licensee_lines(&l.terms, Some(l.status), Some(&l.reason)))
            .collect();
        render(&self.plans, &[], licensees)
    }
}

impl TermsFile {
    /// The file in canonical form (parses back to an equal [`TermsFile`]).
    pub fn to_toml(&self) -> String {
        let licensees =
            self.licensees.iter().map(|l| licensee_lines(&l.terms, l.status, l.reason.as_deref())).collect();
        render(&self.plans, &self.price_books, licensees)
    }
}

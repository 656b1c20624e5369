//! The dashboard's pages (GET only; changes are in the parent module).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use datapact_core::{LicenseeStatus, Timestamp};
use datapact_ledger::{DayKey, MonthKey};
use datapact_store::admin_users::AdminRole;
use datapact_store::ledger::UsageBy;
use maud::{Markup, PreEscaped, html};
use serde_json::json;

use super::layout::{csrf, page};
use super::{chart, error_page, page_response, viewer};
use crate::AppState;
use crate::problem::Problem;
use crate::statements;

macro_rules! try_page {
    ($session:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(error) => return error_page(Some(&$session), &Problem::from(error)),
        }
    };
}

/// A name as one URL path segment (licensee names are `[a-z0-9_-]`; anything else is escaped).
pub fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn time(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d %H:%M UTC").to_string()
}

fn opt_time(at: Option<Timestamp>) -> String {
    at.map(time).unwrap_or_else(|| "—".into())
}

fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Records delivered this month and today (all licensees), by licensee for the month.
struct MonthUsage {
    today: u64,
    month: u64,
    by_licensee: Vec<(i64, u64, u64)>,
}

async fn month_usage(state: &AppState, now: Timestamp) -> Result<Option<MonthUsage>, Problem> {
    let Some(ledger) = &state.ledger else { return Ok(None) };
    let month = MonthKey::of(now);
    let today = DayKey::of(now).date().format("%Y-%m-%d").to_string();
    let by_day = ledger.usage(None, month, UsageBy::Day).await?;
    let today_total = by_day.iter().filter(|line| line.group == today).map(|line| line.delivered).sum();
    let mut by_licensee: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for line in &by_day {
        let entry = by_licensee.entry(line.licensee_id).or_default();
        entry.0 += line.delivered;
        entry.1 += line.counted;
    }
    let month_total = by_licensee.values().map(|v| v.0).sum();
    let mut by_licensee: Vec<(i64, u64, u64)> = by_licensee.into_iter().map(|(id, (d, c))| (id, d, c)).collect();
    by_licensee.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)));
    Ok(Some(MonthUsage { today: today_total, month: month_total, by_licensee }))
}

/// One licensee's violations of one kind this month.
struct MonthViolation {
    licensee: String,
    kind: String,
    count: u64,
    last_at: Timestamp,
}

/// This month's violations (from the per-day counts, not the all-time running totals), newest
/// first.
async fn month_violations(state: &AppState, now: Timestamp) -> Result<Vec<MonthViolation>, Problem> {
    let month_start = MonthKey::of(now).start();
    // One read for every licensee (the overview polls this every 2 s).
    let days = state.store.violation_days(None, month_start, Timestamp(i64::MAX)).await?;
    let names: HashMap<i64, String> = state.store.licensees().await?.into_iter().map(|l| (l.id, l.name)).collect();
    let mut kinds: BTreeMap<(i64, String), (u64, Timestamp)> = BTreeMap::new();
    for day in days {
        let entry = kinds.entry((day.licensee_id, day.kind)).or_insert((0, day.last_at));
        entry.0 += day.count;
        entry.1 = entry.1.max(day.last_at);
    }
    let mut found: Vec<MonthViolation> = kinds
        .into_iter()
        .map(|((licensee_id, kind), (count, last_at))| MonthViolation {
            licensee: names.get(&licensee_id).cloned().unwrap_or_else(|| licensee_id.to_string()),
            kind,
            count,
            last_at,
        })
        .collect();
    found.sort_by_key(|v| std::cmp::Reverse(v.last_at));
    Ok(found)
}

/// `GET /dashboard/live`: the numbers the overview refreshes (JSON, polled by `dashboard.js`).
pub async fn live(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(_) => return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "log in again" }))).into_response(),
    };
    let now = state.clock.now();
    let usage = try_page!(session, month_usage(&state, now).await);
    let violations = try_page!(session, month_violations(&state, now).await);
    let open: u64 = violations.iter().map(|v| v.count).sum();
    use std::sync::atomic::Ordering::Relaxed;
    let mut response = Json(json!({
        "at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        "requests_total": crate::metrics::LICENSEE_REQUESTS.load(Relaxed),
        "records_total": crate::metrics::RECORDS_DELIVERED.load(Relaxed),
        "records_today": usage.as_ref().map(|u| number(u.today)),
        "records_month": usage.as_ref().map(|u| number(u.month)),
        "violations_month": number(open),
    }))
    .into_response();
    super::security_headers(response.headers_mut());
    response
}

fn stat(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.stat {
            div.label #{(id) "-label"} { (label) }
            div.value #(id) data-live=(id) { (value) }
        }
    }
}

/// `GET /dashboard`: the overview.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let now = state.clock.now();
    let licensees = try_page!(session, state.store.licensees().await);
    let terms = try_page!(session, state.store.terms_state().await);
    let reasons: HashMap<&str, &str> = terms.licensees.iter().map(|l| (l.name.as_str(), l.reason.as_str())).collect();
    let agreements = crate::terms::agreements(state.store.as_ref()).await.unwrap_or_default();
    let caps: HashMap<&str, Option<u64>> =
        agreements.iter().map(|a| (a.licensee.as_str(), a.monthly_records)).collect();
    let usage = try_page!(session, month_usage(&state, now).await);
    let recent = try_page!(session, month_violations(&state, now).await);
    let open: u64 = recent.iter().map(|v| v.count).sum();
    let revenue = revenue_to_date(&state, now).await;
    let body = html! {
        section aria-labelledby="live-heading" {
            h2 #live-heading { "Now" }
            div.stats data-live-source="/dashboard/live" {
                (stat("requests-per-second", "Requests/s (licensee API)", "…"))
                (stat("records-per-second", "Records/s delivered", "…"))
                (stat("records_today", "Records today", &usage.as_ref().map_or("—".into(), |u| number(u.today))))
                (stat("records_month", "Records this month", &usage.as_ref().map_or("—".into(), |u| number(u.month))))
                (stat("violations_month", "Violations this month", &number(open)))
                div.stat {
                    div.label #revenue-label { "Revenue accrued this month" }
                    @if revenue.starts_with('—') { div.value.text { (revenue) } } @else { div.value { (revenue) } }
                }
            }
            p.note { "Rates are this gateway's, refreshed every 2 seconds. Revenue: this month's invoices priced from the ledger so far (base fees in full), nothing issued yet." }
        }
        section aria-labelledby="licensees-heading" {
            h2 #licensees-heading { "Licensees" }
            div.scroll {
                table {
                    caption.visually-hidden { "Licensees by records counted this month" }
                    thead { tr { th scope="col" { "Licensee" } th scope="col" { "Status" } th scope="col" class="num" { "Delivered this month" } th scope="col" class="num" { "Counted" } th scope="col" class="num" { "Monthly cap" } th scope="col" class="num" { "Of cap" } } }
                    tbody {
                        @for licensee in ordered(&licensees, usage.as_ref()) {
                            @let (delivered, counted) = usage.as_ref().and_then(|u| u.by_licensee.iter().find(|l| l.0 == licensee.id)).map_or((0, 0), |l| (l.1, l.2));
                            @let cap = caps.get(licensee.name.as_str()).copied().flatten();
                            tr {
                                th scope="row" { a href={"/dashboard/licensees/" (path_segment(&licensee.name))} { (licensee.name) } }
                                td { (status_badge(licensee.status, reasons.get(licensee.name.as_str()).copied().unwrap_or(""))) }
                                td.num { (number(delivered)) }
                                td.num { (number(counted)) }
                                td.num { (cap.map_or("unlimited".into(), number)) }
                                td.num { (cap.filter(|c| *c > 0).map_or("—".into(), |c| format!("{:.1} %", counted as f64 * 100.0 / c as f64))) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="violations-heading" {
            h2 #violations-heading { "Violations this month" }
            @if recent.is_empty() {
                p { "None." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Licensee" } th scope="col" { "Kind" } th scope="col" class="num" { "Count" } th scope="col" { "Last" } } }
                    tbody {
                        @for v in recent.iter().take(20) {
                            tr {
                                td { a href={"/dashboard/licensees/" (path_segment(&v.licensee))} { (v.licensee) } }
                                td { (v.kind) }
                                td.num { (number(v.count)) }
                                td { (time(v.last_at)) }
                            }
                        }
                    }
                } }
            }
        }
    };
    page_response(StatusCode::OK, page("Overview", Some(&session), "overview", body))
}

fn ordered<'a>(
    licensees: &'a [datapact_core::Licensee],
    usage: Option<&MonthUsage>,
) -> Vec<&'a datapact_core::Licensee> {
    let rank = |id: i64| usage.and_then(|u| u.by_licensee.iter().position(|l| l.0 == id)).unwrap_or(usize::MAX);
    let mut sorted: Vec<_> = licensees.iter().collect();
    sorted.sort_by(|a, b| rank(a.id).cmp(&rank(b.id)).then(a.name.cmp(&b.name)));
    sorted
}

fn status_badge(status: LicenseeStatus, reason: &str) -> Markup {
    html! {
        @if status == LicenseeStatus::Active {
            span.badge.ok { "active" }
        } @else {
            span.badge.bad { (status.as_str()) }
            @if !reason.is_empty() { " " span.reason { "(" (reason) ")" } }
        }
    }
}

async fn revenue_to_date(state: &AppState, now: Timestamp) -> String {
    let Some(ledger) = &state.ledger else { return "— (not metered)".into() };
    let today = now.to_datetime().date_naive();
    let Some(month) = datapact_billing::Month::of(today) else { return "—".into() };
    match crate::billing::price_month(state.store.as_ref(), ledger, month, today).await {
        Ok((invoices, _)) => {
            let mut totals: BTreeMap<String, datapact_billing::Money> = BTreeMap::new();
            for invoice in invoices {
                let key = invoice.total.currency.to_string();
                match totals.get_mut(&key) {
                    Some(sum) => sum.minor = sum.minor.saturating_add(invoice.total.minor),
                    None => {
                        totals.insert(key, invoice.total);
                    }
                }
            }
            if totals.is_empty() {
                "0".into()
            } else {
                totals.values().map(|m| m.to_string()).collect::<Vec<_>>().join(" + ")
            }
        }
        Err(problem) if problem.status == StatusCode::CONFLICT => "— (no price book applied)".into(),
        Err(problem) => format!("— ({})", problem.detail),
    }
}

/// `GET /dashboard/licensees/{name}`.
pub async fn licensee(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let now = state.clock.now();
    let Some(licensee) = try_page!(session, state.store.licensee(&name).await) else {
        return error_page(Some(&session), &Problem::not_found(format!("There is no licensee named {name:?}.")));
    };
    let terms = try_page!(session, state.store.terms_state().await);
    let reason = terms.licensees.iter().find(|l| l.name == name).map(|l| l.reason.clone()).unwrap_or_default();
    let agreement = crate::terms::agreements(state.store.as_ref())
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.licensee == name);
    let keys = try_page!(session, state.store.keys(Some(&name)).await);
    let invoices = try_page!(session, state.store.invoices(Some(&name), None).await);
    let invoices = try_page!(session, statements::views(state.store.as_ref(), &invoices, now).await);
    let violations = try_page!(session, state.store.violations(Some(&name)).await);
    let findings = try_page!(session, state.store.trace_findings(200).await);
    let findings: Vec<_> = findings.into_iter().filter(|f| f.finding.accused.contains(&licensee.id)).collect();
    let month = MonthKey::of(now);
    let first = month.first_day();
    let today = DayKey::of(now);
    let days_in_month = datapact_billing::Month::of(today.date()).map_or(31, |m| m.days());
    let mut daily = vec![0u64; (today.date() - first.date()).num_days() as usize + 1];
    if let Some(ledger) = &state.ledger {
        for count in try_page!(session, ledger.daily_counts(licensee.id, first, today).await) {
            let index = (count.day.date() - first.date()).num_days();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| daily.get_mut(i)) {
                *slot += count.counted;
            }
        }
    }
    let cap = agreement.as_ref().and_then(|a| a.monthly_records);
    let used: u64 = daily.iter().sum();
    let svg = chart::usage_against_cap(&daily, days_in_month, cap);
    let mut outstanding: BTreeMap<String, (i64, datapact_billing::Currency)> = BTreeMap::new();
    for invoice in &invoices {
        let entry = outstanding.entry(invoice.currency.to_string()).or_insert((0, invoice.currency));
        entry.0 += invoice.outstanding_minor;
    }
    let operator = session.role >= AdminRole::Operator;
    let blocked = licensee.status == LicenseeStatus::Blocked;
    let body = html! {
        p { "Status: " (status_badge(licensee.status, &reason)) }
        section aria-labelledby="act-heading" {
            h2 #act-heading { "Block or unblock" }
            @if !operator {
                p.note { "Your role (" (session.role.as_str()) ") can read this page; blocking and revoking keys need the operator role." }
            } @else if blocked {
                form method="post" action={"/dashboard/licensees/" (path_segment(&name)) "/unblock"} {
                    (csrf(&session))
                    button type="submit" { "Unblock " (name) }
                }
            } @else {
                form.inline method="post" action={"/dashboard/licensees/" (path_segment(&name)) "/block"} {
                    (csrf(&session))
                    label for="reason" { "Reason (shown to the licensee)" }
                    input #reason type="text" name="reason" required maxlength="500";
                    button.danger type="submit" { "Block " (name) }
                }
            }
        }
        section aria-labelledby="agreement-heading" {
            h2 #agreement-heading { "Agreement in force" }
            @match &agreement {
                None => p { "No agreement: this licensee is not served." },
                Some(a) => dl.facts {
                    dt { "Plan" } dd { (a.plan) }
                    dt { "Monthly records" } dd { (a.monthly_records.map_or("unlimited".into(), number)) " (" (a.cap.as_str()) " cap)" }
                    dt { "Purposes" } dd { (a.purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                    dt { "Endpoints" } dd { (a.endpoints.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
                    dt { "Term" } dd {
                        @match (a.starts_at, a.ends_at) {
                            (None, None) => { "open-ended (no start or end date)" }
                            (starts, ends) => { (opt_time(starts)) " to " (opt_time(ends)) }
                        }
                    }
                    dt { "Deletion deadline" } dd { (a.deletion_deadline.map_or("not set".into(), |d| d.to_string())) }
                    dt { "Fingerprinted" } dd { (if a.fingerprint { "yes" } else { "no" }) }
                }
            }
        }
        section aria-labelledby="usage-heading" {
            h2 #usage-heading { "Usage this month against the cap" }
            figure {
                div.chart role="img" aria-label=(format!("Records counted in {month}, cumulative by day: {} so far; cap {}", number(used), cap.map_or("none".into(), number))) {
                    (PreEscaped(svg))
                }
                figcaption { "Blue: records counted so far, cumulative (" (number(used)) "). Red: the monthly cap (" (cap.map_or("none".into(), number)) ")." }
            }
            details {
                summary { "Usage by day as a table" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Day" } th scope="col" class="num" { "Counted" } } }
                    tbody { @for (i, n) in daily.iter().enumerate() { tr { td { (first.date() + chrono::Days::new(i as u64)) } td.num { (number(*n)) } } } }
                } }
            }
        }
        section aria-labelledby="keys-heading" {
            h2 #keys-heading { "Keys" }
            div.scroll { table {
                thead { tr { th scope="col" { "Prefix" } th scope="col" { "Purpose" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "State" } } }
                tbody {
                    @for key in &keys {
                        tr {
                            td { code { (key.prefix.0) } }
                            td { (key.purpose) }
                            td { (time(key.created_at)) }
                            td { (opt_time(key.last_used_at)) }
                            td { (opt_time(key.expires_at)) }
                            td {
                                @if let Some(at) = key.revoked_at {
                                    "revoked " (time(at))
                                } @else if operator {
                                    form method="post" action={"/dashboard/keys/" (path_segment(&key.prefix.0)) "/revoke"} {
                                        (csrf(&session))
                                        button.danger type="submit" aria-label={"Revoke key " (key.prefix.0)} { "Revoke" }
                                    }
                                } @else { "active" }
                            }
                        }
                    }
                }
            } }
        }
        section aria-labelledby="invoices-heading" {
            h2 #invoices-heading { "Invoices and balance" }
            p { "Outstanding: "
                @if outstanding.is_empty() { "nothing" }
                @for (i, (_, (minor, currency))) in outstanding.iter().enumerate() {
                    @if i > 0 { ", " } (statements::amount(*currency, *minor)) " " (currency)
                }
            }
            @if !invoices.is_empty() {
                div.scroll { table {
                    thead { tr { th scope="col" { "Invoice" } th scope="col" { "Month" } th scope="col" class="num" { "Total" } th scope="col" class="num" { "Paid" } th scope="col" class="num" { "Outstanding" } th scope="col" { "Due" } th scope="col" { "Status" } } }
                    tbody { @for v in &invoices { tr {
                        td { (v.number) } td { (v.month) } td.num { (v.total) " " (v.currency) } td.num { (v.paid) } td.num { (v.outstanding) } td { (v.due) } td { (v.status) }
                    } } }
                } }
            }
        }
        section aria-labelledby="violations-heading" {
            h2 #violations-heading { "Violations (all time)" }
            @if violations.is_empty() { p { "None." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" class="num" { "Count" } th scope="col" { "First" } th scope="col" { "Last" } } }
                    tbody { @for v in &violations { tr { td { (v.kind) } td.num { (number(v.count)) } td { (time(v.first_at)) } td { (time(v.last_at)) } } } }
                } }
            }
        }
        section aria-labelledby="traces-heading" {
            h2 #traces-heading { "Traces accusing " (name) }
            @if findings.is_empty() { p { "None." } } @else {
                ul { @for f in &findings { li { (time(f.finding.at)) " by " (f.finding.actor) ": " (f.finding.outcome) " (" (f.finding.leak_files.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")) ")" } } }
            }
        }
    };
    page_response(StatusCode::OK, page(&format!("Licensee {name}"), Some(&session), "", body))
}

/// `GET /dashboard/price-books`.
pub async fn price_books(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let terms = try_page!(session, state.store.terms_state().await);
    let books = match crate::billing::price_books(&terms) {
        Ok(books) => books,
        Err(problem) => return error_page(Some(&session), &problem),
    };
    let today = state.clock.now().to_datetime().date_naive();
    let in_force = books.iter().filter(|b| b.effective <= today).map(|b| b.effective).max();
    let body = html! {
        @if books.is_empty() { p { "No price book is applied (add [[price_book]] to the terms file)." } }
        @for book in &books {
            section aria-labelledby={"book-" (book.effective)} {
                h2 #{"book-" (book.effective)} { "From " (book.effective) " (" (book.currency) ")"
                    @if Some(book.effective) == in_force { " " span.badge.ok { "in force" } }
                    @else if book.effective > today { " " span.badge { "scheduled" } } }
                div.scroll { table {
                    thead { tr { th scope="col" { "Plan" } th scope="col" class="num" { "Monthly fee" } th scope="col" class="num" { "Included records" } th scope="col" class="num" { "Per 1,000 over" } th scope="col" class="num" { "Per record (prepaid)" } } }
                    tbody { @for (plan, price) in &book.plans { tr {
                        th scope="row" { (plan) }
                        td.num { (price.monthly_fee.amount()) }
                        td.num { (number(price.included_records)) }
                        td.num { (price.overage_per_1000.map_or("—".into(), |r| r.to_string())) }
                        td.num { (price.per_record.map_or("—".into(), |r| r.to_string())) }
                    } } }
                } }
            }
        }
    };
    page_response(StatusCode::OK, page("Price books", Some(&session), "price-books", body))
}

/// `GET /dashboard/audit`: the newest 500 entries.
pub async fn audit(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let entries = try_page!(session, state.store.audit_log(500).await);
    let body = html! {
        div.scroll { table {
            caption.visually-hidden { "Audit log, newest first" }
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Details" } } }
            tbody { @for e in &entries { tr {
                td { (time(e.at)) } td { (e.actor) } td { code { (e.action) } } td { (e.subject) }
                td.details { (e.after.as_ref().or(e.before.as_ref()).map(|v| {
                    let text = v.to_string();
                    if text.len() > 160 { format!("{}…", text.chars().take(160).collect::<String>()) } else { text }
                }).unwrap_or_default()) }
            } } }
        } }
    };
    page_response(StatusCode::OK, page("Audit log", Some(&session), "audit", body))
}

/// `GET /dashboard/users`: admins only.
pub async fn users(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match viewer(&state, &headers).await {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    if session.role < AdminRole::Admin {
        return super::forbidden(Some(&session), "The list of dashboard users needs the admin role.");
    }
    let users = try_page!(session, state.store.admin_users().await);
    let body = html! {
        p.note { "Users are added and removed with " code { "datapact admin-user add|remove" } "." }
        div.scroll { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "Removed" } } }
            tbody { @for u in &users { tr { td { (u.name) } td { (u.role.as_str()) } td { (time(u.created_at)) } td { (opt_time(u.disabled_at)) } } } }
        } }
    };
    page_response(StatusCode::OK, page("Dashboard users", Some(&session), "users", body))
}

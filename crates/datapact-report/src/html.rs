//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no
//! external asset (it renders offline and prints to PDF as it is).

use std::fmt::Write;

use crate::*;

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:60em;\
color:#1d1d1f;line-height:1.45;padding:0 1em}h1{font-size:1.6em;border-bottom:2px solid #333}h2{margin-top:2em;\
border-bottom:1px solid #999}h3{margin-top:1.4em}table{border-collapse:collapse;margin:.6em 0;\
font-size:.92em}th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left}td.n{text-align:right;\
font-variant-numeric:tabular-nums}th{background:#eee}.finding{margin:.3em 0}.bad{color:#a40000}.muted{color:#666}\
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}pre{white-space:pre-wrap;\
word-break:break-all;background:#f4f4f4;padding:.6em}svg{max-width:100%;height:auto}\
@media print{body{margin:0;max-width:none}h2,h3{break-after:avoid}tr,p,figure{break-inside:avoid}}";

/// Escapes text for HTML element content and quoted attribute values.
pub use datapact_core::html::escape as escape_html;

fn e(text: impl AsRef<str>) -> String {
    escape_html(text.as_ref())
}

/// The report as a self-contained HTML page.
pub fn to_html(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")?;
    writeln!(out, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")?;
    writeln!(out, "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>", e(&r.title))?;
    writeln!(out, "<h1>{}</h1>", e(&r.title))?;
    writeln!(
        out,
        "<p>Period: {} to {} (UTC, inclusive). Records as of {}.</p>",
        e(&r.from),
        e(&r.to),
        e(r.as_of.to_string())
    )?;
    for l in &r.licensees {
        write_licensee(out, l)?;
    }
    write_reproducibility(out, &r.reproducibility)?;
    writeln!(out, "</body>\n</html>")
}

fn p(out: &mut String, class: &str, sentence: &str) -> std::fmt::Result {
    writeln!(out, "<p class=\"{class}\">{}</p>", e(sentence))
}

fn table(out: &mut String, headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> std::fmt::Result {
    out.push_str("<table><thead><tr>");
    for h in headers {
        write!(out, "<th>{}</th>", e(h))?;
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if numeric.get(i).copied().unwrap_or(false) { " class=\"n\"" } else { "" };
            write!(out, "<td{class}>{}</td>", e(cell))?;
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    Ok(())
}

fn dash<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "—".to_owned(), ToString::to_string)
}

fn write_licensee(out: &mut String, l: &LicenseeReport) -> std::fmt::Result {
    let name = &l.licensee;
    writeln!(out, "<h2>Licensee {}</h2>", e(name))?;
    let reason = if l.status_reason.is_empty() { String::new() } else { format!(" ({})", l.status_reason) };
    let status = format!("Status at the end of the period (or --as-of, if earlier): {}{reason}", l.status);
    p(out, "status", &status)?;

    writeln!(out, "<h3>Agreement and price books in force</h3>")?;
    match &l.agreement {
        None => p(out, "muted", "No agreement is stored for this licensee.")?,
        Some(a) => table(
            out,
            &["plan", "monthly records", "cap", "dedup", "deletion deadline", "term", "networks"],
            &[false, true],
            &[vec![
                a.plan.clone(),
                count_or_dash(a.monthly_records),
                a.cap.clone(),
                a.dedup.clone(),
                dash(&a.deletion_deadline),
                term(a),
                if a.allowed_networks.is_empty() { "any".to_owned() } else { a.allowed_networks.join(", ") },
            ]],
        )?,
    }
    if !l.terms_versions.is_empty() {
        let rows: Vec<Vec<String>> = l
            .terms_versions
            .iter()
            .map(|v| {
                vec![v.at.to_string(), v.action.clone(), v.subject.clone(), v.actor.clone(), v.audit_seq.to_string()]
            })
            .collect();
        table(
            out,
            &["in force from", "change", "subject", "by", "audit #"],
            &[false, false, false, false, true],
            &rows,
        )?;
    }
    if l.price_books.is_empty() {
        p(out, "muted", "No price book prices this licensee's plan.")?;
    } else {
        let rows: Vec<Vec<String>> = l
            .price_books
            .iter()
            .map(|b| {
                vec![
                    b.effective.clone(),
                    dash(&b.until),
                    b.monthly_fee.to_string(),
                    count(b.included_records),
                    dash(&b.overage_per_1000),
                    dash(&b.per_record),
                ]
            })
            .collect();
        table(
            out,
            &["effective", "until", "monthly fee", "included records", "overage per 1,000", "per record"],
            &[false, false, true, true, true, true],
            &rows,
        )?;
    }

    if !l.negotiated_prices.is_empty() {
        let rows: Vec<Vec<String>> = l
            .negotiated_prices
            .iter()
            .map(|n| {
                vec![
                    n.effective.clone(),
                    dash(&n.until),
                    dash(&n.monthly_fee),
                    count_or_dash(n.included_records),
                    dash(&n.overage_per_1000),
                    dash(&n.per_record),
                ]
            })
            .collect();
        p(out, "muted", "Negotiated prices (each field set replaces the price book's):")?;
        table(
            out,
            &["effective", "until", "monthly fee", "included records", "overage per 1,000", "per record"],
            &[false, false, true, true, true, true],
            &rows,
        )?;
    }
    if let Some(a) = &l.agreement
        && let (Some(terms), Some(grace)) = (a.payment_terms_days, a.grace_days)
    {
        p(
            out,
            "muted",
            &format!("Invoices are due {terms} days after issue; {grace} days of grace follow before a suspension."),
        )?;
    }

    writeln!(out, "<h3>Usage against the cap</h3>")?;
    for m in &l.usage.months {
        p(out, if m.over_cap > 0 { "finding bad" } else { "finding" }, &month_sentence(name, m))?;
    }
    let svg = usage_chart_svg(&l.usage.days);
    if !svg.is_empty() {
        writeln!(
            out,
            "<figure>{svg}<figcaption>Counted records per day, the month to date and the monthly cap.</figcaption></figure>"
        )?;
    }
    let rows: Vec<Vec<String>> = l
        .usage
        .days
        .iter()
        .map(|d| vec![d.day.clone(), count(d.counted), count(d.month_to_date), count_or_dash(d.cap)])
        .collect();
    table(out, &["day", "counted", "month to date", "cap"], &[false, true, true, true], &rows)?;

    writeln!(out, "<h3>Billing</h3>")?;
    if l.billing.invoices.is_empty() {
        p(out, "muted", "No invoice for the period's months.")?;
    } else {
        let rows: Vec<Vec<String>> = l
            .billing
            .invoices
            .iter()
            .map(|i| {
                vec![
                    i.number.clone(),
                    i.month.clone(),
                    i.issued_at.to_string(),
                    i.due.clone(),
                    count(i.records),
                    i.total.to_string(),
                    i.paid.to_string(),
                    i.credited.to_string(),
                    i.outstanding.to_string(),
                    i.status.clone(),
                ]
            })
            .collect();
        table(
            out,
            &["invoice", "month", "issued", "due", "records", "total", "paid", "credited", "outstanding", "status"],
            &[false, false, false, false, true, true, true, true, true, false],
            &rows,
        )?;
    }
    for t in &l.billing.totals {
        p(out, if t.outstanding.minor > 0 { "finding bad" } else { "finding" }, &billing_sentence(name, t))?;
    }
    if let Some(s) = &l.billing.suspension {
        p(out, "finding bad", &suspension_sentence(name, s))?;
    }

    writeln!(out, "<h3>Status changes</h3>")?;
    if l.status_events.is_empty() {
        p(out, "muted", "None in the period.")?;
    }
    for s in &l.status_events {
        p(out, "finding", &status_event_sentence(s))?;
    }

    writeln!(out, "<h3>Violations</h3>")?;
    if l.violations.is_empty() {
        p(out, "muted", "None recorded.")?;
    }
    for v in &l.violations {
        p(out, "finding bad", &violation_sentence(v))?;
    }

    writeln!(out, "<h3>Trace findings</h3>")?;
    if l.trace_findings.is_empty() {
        p(out, "muted", "No recorded trace finding names this licensee.")?;
    }
    for t in &l.trace_findings {
        for sentence in trace_sentences(name, t) {
            p(out, if t.accused { "finding bad" } else { "finding" }, &sentence)?;
        }
    }
    writeln!(out, "<h3>Canary hits</h3>")?;
    if l.canary_hits.is_empty() {
        p(out, "muted", "None.")?;
    }
    for c in &l.canary_hits {
        p(out, "finding bad", &canary_sentence(name, c))?;
    }
    writeln!(out, "<h3>Deletion compliance</h3>")?;
    if l.deletion_violations.is_empty() {
        p(out, "muted", "No deletion-compliance violation recorded.")?;
    }
    for d in &l.deletion_violations {
        p(out, "finding bad", &deletion_violation_sentence(name, d))?;
    }
    Ok(())
}

fn write_reproducibility(out: &mut String, r: &Reproducibility) -> std::fmt::Result {
    writeln!(out, "<h2>Reproducibility</h2>")?;
    if r.ledger_ranges.is_empty() {
        p(out, "muted", "No ledger batch holds usage of the period.")?;
    } else {
        let rows: Vec<Vec<String>> = r
            .ledger_ranges
            .iter()
            .map(|g| {
                vec![
                    g.licensee.clone(),
                    g.chain.clone(),
                    g.first_seq.to_string(),
                    g.last_seq.to_string(),
                    g.events.to_string(),
                ]
            })
            .collect();
        table(
            out,
            &["licensee", "chain", "first batch", "last batch", "usage events"],
            &[false, false, true, true, true],
            &rows,
        )?;
    }
    p(out, "finding", &r.checkpoint_statement)?;
    if let Some(c) = &r.checkpoint {
        writeln!(out, "<pre>{}</pre>", e(&c.json))?;
    }
    let rows: Vec<Vec<String>> =
        r.inputs.iter().map(|i| vec![i.kind.clone(), i.name.clone(), i.bytes.to_string(), i.sha256.clone()]).collect();
    table(out, &["input", "name", "bytes", "SHA-256"], &[false, false, true, false], &rows)?;
    writeln!(out, "<p>Regenerate with:</p>\n<pre>{}</pre>", e(&r.command))
}

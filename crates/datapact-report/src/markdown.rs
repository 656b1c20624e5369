//! The report as Markdown (CommonMark with GitHub tables).

use std::fmt::Write;

use crate::*;

/// Backslash-escapes what Markdown would read as markup (and `|`, which ends a table cell); line
/// breaks become spaces.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '<' | '>' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn e(text: impl AsRef<str>) -> String {
    escape_markdown(text.as_ref())
}

fn opt<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "—".to_owned(), |v| v.to_string())
}

/// The report as Markdown.
pub fn to_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "# {}\n", e(&r.title))?;
    writeln!(out, "Period: {} to {} (UTC, inclusive). Records as of {}.\n", r.from, r.to, r.as_of)?;
    for l in &r.licensees {
        write_licensee(out, l)?;
    }
    write_reproducibility(out, &r.reproducibility)
}

fn write_licensee(out: &mut String, l: &LicenseeReport) -> std::fmt::Result {
    let name = &l.licensee;
    writeln!(out, "## Licensee {}\n", e(name))?;
    writeln!(
        out,
        "Status at the end of the period (or --as-of, if earlier): {} {}\n",
        e(&l.status),
        if l.status_reason.is_empty() { String::new() } else { format!("({})", e(&l.status_reason)) }
    )?;

    writeln!(out, "### Agreement and price books in force\n")?;
    match &l.agreement {
        None => writeln!(out, "No agreement is stored for this licensee.\n")?,
        Some(a) => {
            writeln!(out, "| plan | monthly records | cap | dedup | deletion deadline | term | networks |")?;
            writeln!(out, "| --- | ---: | --- | --- | --- | --- | --- |")?;
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                e(&a.plan),
                count_or_dash(a.monthly_records),
                e(&a.cap),
                e(&a.dedup),
                e(opt(&a.deletion_deadline)),
                term(a),
                e(if a.allowed_networks.is_empty() { "any".to_owned() } else { a.allowed_networks.join(", ") })
            )?;
        }
    }
    if !l.terms_versions.is_empty() {
        writeln!(out, "Versions (audit log):\n")?;
        for v in &l.terms_versions {
            writeln!(
                out,
                "- {}: {} {} by {} (audit #{})",
                v.at,
                e(&v.action),
                e(&v.subject),
                e(&v.actor),
                v.audit_seq
            )?;
        }
        writeln!(out)?;
    }
    if l.price_books.is_empty() {
        writeln!(out, "No price book prices this licensee's plan.\n")?;
    } else {
        writeln!(out, "| effective | until | monthly fee | included records | overage per 1,000 | per record |")?;
        writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |")?;
        for p in &l.price_books {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                p.effective,
                opt(&p.until),
                p.monthly_fee,
                count(p.included_records),
                e(opt(&p.overage_per_1000)),
                e(opt(&p.per_record))
            )?;
        }
        writeln!(out)?;
    }

    if !l.negotiated_prices.is_empty() {
        writeln!(out, "Negotiated prices (each field set replaces the price book's):\n")?;
        writeln!(out, "| effective | until | monthly fee | included records | overage per 1,000 | per record |")?;
        writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |")?;
        for n in &l.negotiated_prices {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                n.effective,
                opt(&n.until),
                opt(&n.monthly_fee),
                count_or_dash(n.included_records),
                e(opt(&n.overage_per_1000)),
                e(opt(&n.per_record))
            )?;
        }
        writeln!(out)?;
    }
    if let Some(a) = &l.agreement
        && let (Some(terms), Some(grace)) = (a.payment_terms_days, a.grace_days)
    {
        writeln!(
            out,
            "Invoices are due {terms} days after issue; {grace} days of grace follow before a suspension.\n"
        )?;
    }

    writeln!(out, "### Usage against the cap\n")?;
    for m in &l.usage.months {
        writeln!(out, "- {}", e(month_sentence(name, m)))?;
    }
    writeln!(out)?;
    writeln!(out, "| day | counted | month to date | cap |")?;
    writeln!(out, "| --- | ---: | ---: | ---: |")?;
    for d in &l.usage.days {
        writeln!(out, "| {} | {} | {} | {} |", d.day, count(d.counted), count(d.month_to_date), count_or_dash(d.cap))?;
    }
    writeln!(out)?;

    writeln!(out, "### Billing\n")?;
    if l.billing.invoices.is_empty() {
        writeln!(out, "No invoice for the period's months.\n")?;
    } else {
        writeln!(out, "| invoice | month | issued | due | records | total | paid | credited | outstanding | status |")?;
        writeln!(out, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")?;
        for i in &l.billing.invoices {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                e(&i.number),
                i.month,
                i.issued_at,
                i.due,
                count(i.records),
                i.total,
                i.paid,
                i.credited,
                i.outstanding,
                i.status
            )?;
        }
        writeln!(out)?;
    }
    for t in &l.billing.totals {
        writeln!(out, "- {}", e(billing_sentence(name, t)))?;
    }
    if let Some(s) = &l.billing.suspension {
        writeln!(out, "- {}", e(suspension_sentence(name, s)))?;
    }
    writeln!(out)?;

    writeln!(out, "### Status changes\n")?;
    if l.status_events.is_empty() {
        writeln!(out, "None in the period.\n")?;
    } else {
        for s in &l.status_events {
            writeln!(out, "- {}", e(status_event_sentence(s)))?;
        }
        writeln!(out)?;
    }

    writeln!(out, "### Violations\n")?;
    if l.violations.is_empty() {
        writeln!(out, "None recorded.\n")?;
    } else {
        for v in &l.violations {
            writeln!(out, "- {}", e(violation_sentence(v)))?;
        }
        writeln!(out)?;
    }

    writeln!(out, "### Trace findings\n")?;
    if l.trace_findings.is_empty() {
        writeln!(out, "No recorded trace finding names this licensee.\n")?;
    } else {
        for t in &l.trace_findings {
            for sentence in trace_sentences(name, t) {
                writeln!(out, "- {}", e(sentence))?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "### Canary hits\n")?;
    if l.canary_hits.is_empty() {
        writeln!(out, "None.\n")?;
    } else {
        for c in &l.canary_hits {
            writeln!(out, "- {}", e(canary_sentence(name, c)))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "### Deletion compliance\n")?;
    if l.deletion_violations.is_empty() {
        writeln!(out, "No deletion-compliance violation recorded.\n")?;
    } else {
        for d in &l.deletion_violations {
            writeln!(out, "- {}", e(deletion_violation_sentence(name, d)))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn write_reproducibility(out: &mut String, r: &Reproducibility) -> std::fmt::Result {
    writeln!(out, "## Reproducibility\n")?;
    if r.ledger_ranges.is_empty() {
        writeln!(out, "No ledger batch holds usage of the period.\n")?;
    } else {
        writeln!(out, "| licensee | chain | first batch | last batch | usage events |")?;
        writeln!(out, "| --- | --- | ---: | ---: | ---: |")?;
        for g in &r.ledger_ranges {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                e(&g.licensee),
                e(&g.chain),
                g.first_seq,
                g.last_seq,
                g.events
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{}\n", e(&r.checkpoint_statement))?;
    if let Some(c) = &r.checkpoint {
        writeln!(out, "```json\n{}\n```\n", c.json.replace("```", "` ` `"))?;
    }
    writeln!(out, "Inputs (SHA-256):\n")?;
    for i in &r.inputs {
        writeln!(out, "- {} {}: `{}` ({} bytes)", e(&i.kind), e(&i.name), i.sha256, i.bytes)?;
    }
    writeln!(out, "\nRegenerate with:\n\n```sh\n{}\n```", r.command.replace("```", "` ` `"))
}

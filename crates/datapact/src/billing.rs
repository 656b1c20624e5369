//! The billing commands: `invoice run|list|show`, `payment record|list`, `balance`, `billing summary`,
//! `credit add|balance|list`, `webhook add|list|remove|deliveries`. The documents (invoice views, CSV,
//! HTML, the summary) are `datapact_gateway::statements`', shared with the admin API.
//!
//! Amounts are printed with exactly the currency's decimals and, in JSON and CSV, also as integer
//! minor units (`total_minor`), so a reader never has to parse a decimal to add amounts up.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use crate::commands::LedgerPlace;
use anyhow::{Context, bail};
use datapact_billing::{Currency, DEFAULT_GRACE_DAYS, InvoiceAccount, Money, Month, suspension};
use datapact_core::{Clock, Timestamp};
use datapact_store::{LicenseeAccount, NewPayment, Store, StoredInvoice};
use serde::Serialize;
use serde_json::json;

use datapact_gateway::statements::{self, CurrencyTotals, InvoiceView, Sums};

use crate::cli::{
    BillingCommand, CreditCommand, InvoiceCommand, ListFormat, PaymentCommand, ShowFormat, WebhookCommand,
};

async fn views(store: &dyn Store, invoices: &[StoredInvoice], now: Timestamp) -> anyhow::Result<Vec<InvoiceView>> {
    Ok(statements::views(store, invoices, now).await?)
}
use crate::commands::cli_change;

fn parse_month(text: &str) -> anyhow::Result<Month> {
    Month::parse(text).with_context(|| format!("--month {text:?} is not a month: use YYYY-MM, such as 2026-12"))
}

async fn require_licensee(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    if store.licensee(name).await?.is_none() {
        bail!("no licensee named {name:?} (see `datapact licensee list`)");
    }
    Ok(())
}

fn problem(error: datapact_gateway::problem::Problem) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

fn print_invoice_rows(out: &mut impl Write, views: &[InvoiceView]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<11} {:<16} {:<8} {:<8} {:>14} {:>14} {:>14} {:<4} {:<11} STATUS",
        "NUMBER", "LICENSEE", "MONTH", "PLAN", "TOTAL", "PAID", "OUTSTANDING", "", "DUE"
    )?;
    for v in views {
        writeln!(
            out,
            "{:<11} {:<16} {:<8} {:<8} {:>14} {:>14} {:>14} {:<4} {:<11} {}",
            v.number,
            v.licensee,
            v.month.to_string(),
            v.plan,
            v.total,
            v.paid,
            v.outstanding,
            v.currency.code(),
            v.due.to_string(),
            v.status
        )?;
    }
    Ok(())
}

fn print_invoice(out: &mut impl Write, v: &InvoiceView) -> std::io::Result<()> {
    writeln!(out, "invoice      {}", v.number)?;
    writeln!(out, "licensee     {}", v.licensee)?;
    writeln!(out, "month        {}  (plan {})", v.month, v.plan)?;
    writeln!(out, "issued       {}", v.issued_at)?;
    writeln!(out, "due          {} (payable until the end of that day, UTC)", v.due)?;
    writeln!(out, "status       {}", v.status)?;
    writeln!(out, "records      {}", v.records)?;
    writeln!(out)?;
    for line in &v.lines {
        writeln!(
            out,
            "  {}..{}  {:<64} {:>14} {}",
            line.first_day,
            line.last_day,
            line.description,
            line.amount,
            v.currency.code()
        )?;
    }
    writeln!(out, "  {:<86} {:>14} {}", "total", v.total, v.currency.code())?;
    writeln!(out, "  {:<86} {:>14} {}", "paid", v.paid, v.currency.code())?;
    if v.credited_minor != 0 {
        writeln!(out, "  {:<86} {:>14} {}", "credit notes", v.credited, v.currency.code())?;
    }
    writeln!(out, "  {:<86} {:>14} {}", "outstanding", v.outstanding, v.currency.code())?;
    Ok(())
}

pub async fn invoice(
    command: InvoiceCommand,
    ledger_place: &LedgerPlace<'_>,
    store: &dyn Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let now = clock.now();
    let mut out = std::io::stdout().lock();
    match command {
        InvoiceCommand::Run { month, json } => {
            let month = parse_month(&month)?;
            let ledger = ledger_place.open_for_reading(clock)?;
            let run = datapact_gateway::billing::run_invoices(store, &ledger, month, &cli_change(now))
                .await
                .map_err(problem)?;
            let issued = views(store, &run.issued, now).await?;
            let existing = views(store, &run.existing, now).await?;
            if json {
                let value = json!({
                    "month": run.month,
                    "issued": issued,
                    "existing": existing,
                    "not_billed": run.not_billed,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            for v in &issued {
                writeln!(
                    out,
                    "issued {} to {} for {}: {} {} ({} lines), due {}",
                    v.number,
                    v.licensee,
                    v.month,
                    v.total,
                    v.currency.code(),
                    v.lines.len(),
                    v.due
                )?;
            }
            for v in &existing {
                writeln!(
                    out,
                    "already issued: {} to {} for {}: {} {} (left as it is)",
                    v.number,
                    v.licensee,
                    v.month,
                    v.total,
                    v.currency.code()
                )?;
            }
            for skipped in &run.not_billed {
                writeln!(out, "not billed: {}: {}", skipped.licensee, skipped.reason)?;
            }
            writeln!(
                out,
                "{month}: {} invoice(s) issued, {} already issued, {} licensee(s) with nothing to bill",
                issued.len(),
                existing.len(),
                run.not_billed.len()
            )?;
        }
        InvoiceCommand::List { licensee, month, format } => {
            if let Some(name) = &licensee {
                require_licensee(store, name).await?;
            }
            let month = month.as_deref().map(parse_month).transpose()?;
            let invoices = store.invoices(licensee.as_deref(), month).await?;
            let views = views(store, &invoices, now).await?;
            match format {
                ListFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?,
                ListFormat::Csv => write!(out, "{}", statements::invoices_csv(&views))?,
                ListFormat::Text if views.is_empty() => writeln!(out, "no invoices")?,
                ListFormat::Text => print_invoice_rows(&mut out, &views)?,
            }
        }
        InvoiceCommand::Void { number, reason } => {
            let voided = store.void_invoice(&number, &reason, &cli_change(now)).await?;
            writeln!(
                out,
                "invoice {} of {} ({} {}) is void: {reason}",
                voided.number,
                voided.licensee,
                voided.total.amount(),
                voided.currency.code()
            )?;
        }
        InvoiceCommand::CreditNote { number, amount, reason, json } => {
            let change = cli_change(now);
            let (issued, view) =
                datapact_gateway::billing::issue_credit_note(store, &number, &amount, &reason, &change)
                    .await
                    .map_err(problem)?;
            if json {
                let value = json!({ "credit_note": issued, "invoice": view });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(
                    out,
                    "issued credit note {} of {} against invoice {number}: {}",
                    issued.number, issued.amount, issued.reason
                )?;
                writeln!(
                    out,
                    "invoice {number} now has {} {} outstanding ({})",
                    view.outstanding,
                    view.currency.code(),
                    view.status
                )?;
            }
        }
        InvoiceCommand::CreditNotes { licensee, json } => {
            if let Some(name) = &licensee {
                require_licensee(store, name).await?;
            }
            let notes = store.credit_notes(licensee.as_deref()).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&notes)?)?;
            } else if notes.is_empty() {
                writeln!(out, "no credit notes")?;
            } else {
                writeln!(
                    out,
                    "{:<11} {:<11} {:<16} {:>14} {:<4} {:<25} REASON",
                    "NUMBER", "INVOICE", "LICENSEE", "AMOUNT", "", "ISSUED"
                )?;
                for n in notes {
                    writeln!(
                        out,
                        "{:<11} {:<11} {:<16} {:>14} {:<4} {:<25} {}",
                        n.number,
                        n.invoice,
                        n.licensee,
                        n.amount.amount(),
                        n.amount.currency.code(),
                        n.issued_at.to_string(),
                        n.reason
                    )?;
                }
            }
        }
        InvoiceCommand::Show { number, format, out: file } => {
            let Some(invoice) = store.invoice(&number).await? else {
                bail!("no invoice numbered {number:?}; `datapact invoice list` shows them");
            };
            let view = views(store, std::slice::from_ref(&invoice), now).await?.pop().context("the invoice view")?;
            let text = match format {
                ShowFormat::Text => {
                    let mut text = Vec::new();
                    print_invoice(&mut text, &view)?;
                    String::from_utf8(text)?
                }
                ShowFormat::Json => serde_json::to_string_pretty(&view)? + "\n",
                ShowFormat::Csv => statements::invoice_lines_csv(&view),
                ShowFormat::Html => statements::invoice_html(&view, "datapact"),
            };
            match file {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                    writeln!(out, "wrote invoice {number} to {}", path.display())?;
                }
                None => write!(out, "{text}")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The grace days of each licensee's billing terms, by name (the default for a licensee without
/// an agreement).
async fn grace_days(store: &dyn Store) -> anyhow::Result<HashMap<String, u32>> {
    let terms = datapact_gateway::terms::current_terms(store).await.map_err(problem)?;
    Ok(terms.licensees.iter().map(|l| (l.terms.name.clone(), l.terms.billing.grace_days)).collect())
}

pub async fn payment(command: PaymentCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        PaymentCommand::Record { licensee, amount, invoice, reference, json } => {
            require_licensee(store, &licensee).await?;
            let Some(stored) = store.invoice(&invoice).await? else {
                bail!(
                    "no invoice numbered {invoice:?}; `datapact invoice list {licensee}` shows the licensee's invoices"
                );
            };
            let money = Money::parse(stored.currency, &amount)
                .map_err(|e| anyhow::anyhow!("AMOUNT {amount:?}: {e} (invoice {invoice} is in {})", stored.currency))?;
            let payment = NewPayment { licensee: licensee.clone(), invoice, amount: money, reference };
            let recorded = store.record_payment(payment, &cli_change(now)).await?;
            let accounts = store.invoice_accounts(Some(&licensee)).await?;
            let grace = grace_days(store).await?.get(&licensee).copied().unwrap_or(DEFAULT_GRACE_DAYS);
            let invoices: Vec<InvoiceAccount> = accounts.into_iter().map(|a| a.account).collect();
            let account = invoices.iter().find(|a| a.number == recorded.payment.invoice);
            let outstanding = account.map(|a| a.outstanding(now)).unwrap_or_else(|| Money::zero(stored.currency));
            let suspended = suspension(&invoices, grace, now);
            if json {
                let value = json!({
                    "payment": recorded.payment,
                    "new": recorded.new,
                    "outstanding": outstanding.amount(),
                    "outstanding_minor": outstanding.minor,
                    "suspended": suspended.is_some(),
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let p = &recorded.payment;
            if recorded.new {
                writeln!(
                    out,
                    "recorded payment {:?} of {} to invoice {} of {}",
                    p.reference, p.amount, p.invoice, p.licensee
                )?;
            } else {
                writeln!(
                    out,
                    "payment {:?} of {} to invoice {} was already recorded on {}; nothing changed",
                    p.reference, p.amount, p.invoice, p.received_at
                )?;
            }
            writeln!(out, "invoice {} now has {} outstanding", p.invoice, outstanding)?;
            match suspended {
                Some(s) => {
                    let numbers: Vec<&str> = s.invoices.iter().map(|i| i.number.as_str()).collect();
                    writeln!(out, "{licensee} is still suspended for non-payment of {}", numbers.join(", "))?
                }
                None => writeln!(out, "{licensee} is not suspended; running gateways serve it within a second")?,
            }
        }
        PaymentCommand::List { licensee, json } => {
            if let Some(name) = &licensee {
                require_licensee(store, name).await?;
            }
            let payments = store.payments(licensee.as_deref()).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&payments)?)?;
            } else if payments.is_empty() {
                writeln!(out, "no payments")?;
            } else {
                writeln!(
                    out,
                    "{:<25} {:<16} {:<11} {:>14} {:<4} REFERENCE",
                    "RECEIVED", "LICENSEE", "INVOICE", "AMOUNT", ""
                )?;
                for p in payments {
                    writeln!(
                        out,
                        "{:<25} {:<16} {:<11} {:>14} {:<4} {}",
                        p.received_at.to_string(),
                        p.licensee,
                        p.invoice,
                        p.amount.amount(),
                        p.amount.currency.code(),
                        p.reference
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn webhook(command: WebhookCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        WebhookCommand::Add { url, licensee, events, json } => {
            let change = cli_change(now);
            let added = datapact_gateway::webhooks::add_webhook(store, licensee.as_deref(), &url, &events, &change)
                .await
                .map_err(problem)?;
            if json {
                let mut value = serde_json::to_value(&added)?;
                value["secret"] = json!(added.secret);
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let whose = added.licensee.as_deref().map_or("every licensee's".to_owned(), |l| format!("{l}'s"));
            let kinds = if added.events.is_empty() {
                "all notifications".to_owned()
            } else {
                added.events.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            };
            writeln!(out, "webhook {} sends {whose} {kinds} to {}", added.id, added.url)?;
            writeln!(out, "signing secret (shown once; bodies are signed as Standard Webhooks specifies):")?;
            writeln!(out, "{}", added.secret)?;
        }
        WebhookCommand::List { json } => {
            let webhooks = store.webhooks().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&webhooks)?)?;
            } else if webhooks.is_empty() {
                writeln!(out, "no webhooks")?;
            } else {
                writeln!(out, "{:>4} {:<16} {:<10} {:<40} URL", "ID", "LICENSEE", "STATE", "EVENTS")?;
                for w in webhooks {
                    let events = if w.events.is_empty() {
                        "all".to_owned()
                    } else {
                        w.events.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
                    };
                    let state = if w.removed_at.is_some() { "removed" } else { "active" };
                    let licensee = w.licensee.as_deref().unwrap_or("(platform)");
                    writeln!(out, "{:>4} {:<16} {:<10} {:<40} {}", w.id, licensee, state, events, w.url)?;
                }
            }
        }
        WebhookCommand::Remove { id } => {
            let removed = store.remove_webhook(id, &cli_change(now)).await?;
            writeln!(out, "webhook {} ({}) removed; its delivery log stays", removed.id, removed.url)?;
        }
        WebhookCommand::Deliveries { limit, json } => {
            let log = store.webhook_deliveries(limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&log)?)?;
            } else if log.is_empty() {
                writeln!(out, "no deliveries")?;
            } else {
                writeln!(
                    out,
                    "{:>6} {:<20} {:<16} {:>4} {:<10} {:>8} {:<25} LAST ANSWER",
                    "ID", "KIND", "LICENSEE", "HOOK", "STATUS", "ATTEMPTS", "NEXT ATTEMPT"
                )?;
                for d in log {
                    let answer = match (d.last_status, &d.last_error) {
                        (_, Some(error)) => error.clone(),
                        (Some(status), None) => status.to_string(),
                        (None, None) => "-".to_owned(),
                    };
                    let next = d.next_attempt_at.map_or("-".to_owned(), |at| at.to_string());
                    writeln!(
                        out,
                        "{:>6} {:<20} {:<16} {:>4} {:<10} {:>8} {:<25} {answer}",
                        d.notification_id,
                        d.kind.as_str(),
                        d.licensee,
                        d.webhook_id,
                        d.status,
                        d.attempts,
                        next
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn credit(
    command: CreditCommand,
    ledger_place: &LedgerPlace<'_>,
    store: &dyn Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let balances = |licensee: Option<String>| {
        let clock = Arc::clone(&clock);
        async move {
            let ledger = ledger_place.open_for_reading(clock)?;
            datapact_gateway::billing::credit_balances(store, &ledger, licensee.as_deref()).await.map_err(problem)
        }
    };
    match command {
        CreditCommand::Add { licensee, amount, reference, json } => {
            let change = cli_change(clock.now());
            let added = datapact_gateway::billing::add_credit(store, &licensee, &amount, &reference, &change)
                .await
                .map_err(problem)?;
            let balance = balances(Some(licensee.clone())).await?.pop();
            if json {
                let value = json!({ "credit": added.credit, "new": added.new, "balance": balance });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let c = &added.credit;
            if added.new {
                writeln!(out, "added credit {:?} of {} to {}", c.reference, c.amount, c.licensee)?;
            } else {
                writeln!(
                    out,
                    "credit {:?} of {} was already recorded on {}; nothing changed",
                    c.reference, c.amount, c.added_at
                )?;
            }
            if let Some(b) = balance {
                writeln!(out, "{licensee}'s credit: {} added, {} charged, {} left", b.credited, b.charged, b.balance)?;
            }
        }
        CreditCommand::Balance { licensee, json } => {
            if let Some(name) = &licensee {
                require_licensee(store, name).await?;
            }
            let rows = balances(licensee).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else if rows.is_empty() {
                writeln!(out, "no credits")?;
            } else {
                writeln!(out, "{:<16} {:>7} {:>18} {:>18} {:>18}", "LICENSEE", "CREDITS", "ADDED", "CHARGED", "LEFT")?;
                for b in rows {
                    writeln!(
                        out,
                        "{:<16} {:>7} {:>18} {:>18} {:>18}",
                        b.licensee, b.credits, b.credited, b.charged, b.balance
                    )?;
                }
            }
        }
        CreditCommand::List { licensee, json } => {
            if let Some(name) = &licensee {
                require_licensee(store, name).await?;
            }
            let credits = store.credits(licensee.as_deref()).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&credits)?)?;
            } else if credits.is_empty() {
                writeln!(out, "no credits")?;
            } else {
                writeln!(out, "{:<25} {:<16} {:>14} {:<4} REFERENCE", "ADDED", "LICENSEE", "AMOUNT", "")?;
                for c in credits {
                    writeln!(
                        out,
                        "{:<25} {:<16} {:>14} {:<4} {}",
                        c.added_at.to_string(),
                        c.licensee,
                        c.amount.amount(),
                        c.amount.currency.code(),
                        c.reference
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A licensee's position in one currency at an instant.
#[derive(Serialize)]
struct BalanceRow {
    licensee: String,
    #[serde(flatten)]
    totals: CurrencyTotals,
    /// Suspended for non-payment now (an invoice overdue past the grace days).
    suspended: bool,
    /// The invoices that suspend it.
    suspended_by: Vec<String>,
}

pub async fn balance(
    licensee: Option<&str>,
    json: bool,
    store: &dyn Store,
    now: Timestamp,
) -> anyhow::Result<ExitCode> {
    if let Some(name) = licensee {
        require_licensee(store, name).await?;
    }
    let accounts = store.invoice_accounts(licensee).await?;
    let grace = grace_days(store).await?;
    let mut by_licensee: BTreeMap<String, Vec<InvoiceAccount>> = BTreeMap::new();
    for LicenseeAccount { licensee: name, account, .. } in accounts {
        by_licensee.entry(name).or_default().push(account);
    }
    let mut rows = Vec::new();
    for (name, invoices) in &by_licensee {
        let suspended = suspension(invoices, grace.get(name).copied().unwrap_or(DEFAULT_GRACE_DAYS), now);
        let mut sums: BTreeMap<Currency, Sums> = BTreeMap::new();
        for account in invoices {
            sums.entry(account.total.currency).or_default().add(account, now);
        }
        for (currency, s) in sums {
            rows.push(BalanceRow {
                licensee: name.clone(),
                totals: CurrencyTotals::of(currency, &s),
                suspended: suspended.is_some(),
                suspended_by: suspended.iter().flat_map(|s| s.invoices.iter().map(|i| i.number.clone())).collect(),
            });
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(out, "no invoices")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<16} {:<4} {:>8} {:>14} {:>14} {:>14} {:>14}  SUSPENDED",
        "LICENSEE", "", "INVOICES", "INVOICED", "PAID", "OUTSTANDING", "OVERDUE"
    )?;
    for r in &rows {
        let suspended = if r.suspended { format!("yes ({})", r.suspended_by.join(", ")) } else { "no".to_owned() };
        writeln!(
            out,
            "{:<16} {:<4} {:>8} {:>14} {:>14} {:>14} {:>14}  {suspended}",
            r.licensee,
            r.totals.currency.code(),
            r.totals.invoices,
            r.totals.invoiced,
            r.totals.paid,
            r.totals.outstanding,
            r.totals.overdue
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn billing(command: BillingCommand, store: &dyn Store, now: Timestamp) -> anyhow::Result<ExitCode> {
    let BillingCommand::Summary { month, json } = command;
    let month = parse_month(&month)?;
    let summary = statements::summary(store, month, now).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if summary.invoices.is_empty() {
        writeln!(out, "no invoices for {month}; `datapact invoice run --month {month}` issues them")?;
        return Ok(ExitCode::SUCCESS);
    }
    print_invoice_rows(&mut out, &summary.invoices)?;
    writeln!(out)?;
    for t in &summary.totals {
        writeln!(
            out,
            "{month} {}: {} invoice(s), invoiced {}, paid {}, outstanding {} (overdue {}); void invoices excluded",
            t.currency.code(),
            t.invoices,
            t.invoiced,
            t.paid,
            t.outstanding,
            t.overdue
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

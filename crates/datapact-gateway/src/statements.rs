//! Invoices as documents, for the CLI and the admin API alike: an invoice's view at an instant
//! (status, paid, outstanding), its lines as CSV, a printable self-contained HTML page, and a
//! month's billing summary (revenue, paid, outstanding, per licensee and per currency).
//!
//! Amounts are written with exactly the currency's decimals and, in JSON and CSV, also as integer
//! minor units (`total_minor`), so a reader never has to parse a decimal to add amounts up.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::NaiveDate;
use datapact_billing::{Charge, Currency, InvoiceAccount, InvoiceLine, InvoiceStatus, Money, Month};
use datapact_core::Timestamp;
use datapact_core::html::escape;
use datapact_store::{Store, StoreResult, StoredInvoice};
use serde::Serialize;

/// An amount in minor units of `currency`, with the currency's decimals: `468.00`.
pub fn amount(currency: Currency, minor: i64) -> String {
    Money::new(currency, minor).amount()
}

/// What was paid towards an invoice by `now`, in minor units (never above the total: overpayment
/// is refused when recorded).
pub fn paid_minor(account: &InvoiceAccount, now: Timestamp) -> i64 {
    i64::try_from(account.paid_by(now).max(0)).unwrap_or(i64::MAX)
}

/// One invoice line, written out.
#[derive(Clone, Debug, Serialize)]
pub struct LineView {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub kind: &'static str,
    pub records: u64,
    pub description: String,
    pub amount: String,
    pub amount_minor: i64,
}

impl LineView {
    pub fn of(line: &InvoiceLine) -> LineView {
        let kind = match line.charge {
            Charge::BaseFee { .. } => "base_fee",
            Charge::Included { .. } => "included",
            Charge::Overage { .. } => "overage",
            Charge::PerRecord { .. } => "per_record",
            Charge::Prepaid { .. } => "prepaid",
            Charge::Uncharged { .. } => "uncharged",
            Charge::Unpriced { .. } => "unpriced",
        };
        // The line's Display is "FIRST..LAST  DESCRIPTION  AMOUNT": the description is its middle.
        let text = line.to_string();
        let description = text
            .split_once("  ")
            .and_then(|(_, rest)| rest.rsplit_once("  "))
            .map_or_else(|| text.clone(), |(description, _)| description.to_owned());
        LineView {
            first_day: line.first_day,
            last_day: line.last_day,
            kind,
            records: line.charge.records(),
            description,
            amount: line.amount.amount(),
            amount_minor: line.amount.minor,
        }
    }
}

/// An invoice as it stands at an instant: the stored invoice with its status and payments.
#[derive(Clone, Debug, Serialize)]
pub struct InvoiceView {
    pub number: String,
    pub licensee: String,
    pub month: Month,
    pub plan: String,
    pub currency: Currency,
    pub issued_at: Timestamp,
    pub due: NaiveDate,
    pub status: &'static str,
    pub records: u64,
    pub total: String,
    pub total_minor: i64,
    pub paid: String,
    pub paid_minor: i64,
    /// What credit notes took off it.
    pub credited: String,
    pub credited_minor: i64,
    pub outstanding: String,
    pub outstanding_minor: i64,
    pub voided_at: Option<Timestamp>,
    pub lines: Vec<LineView>,
}

impl InvoiceView {
    pub fn of(invoice: &StoredInvoice, account: Option<&InvoiceAccount>, now: Timestamp) -> InvoiceView {
        // An invoice always has its account (the same rows); without one it is shown as unpaid.
        let fallback = InvoiceAccount {
            number: invoice.number.clone(),
            total: invoice.total,
            due: invoice.due,
            voided_at: invoice.voided_at,
            payments: Vec::new(),
            credit_notes: Vec::new(),
        };
        let account = account.unwrap_or(&fallback);
        let paid = paid_minor(account, now);
        let credited = i64::try_from(account.credited_by(now).max(0)).unwrap_or(i64::MAX);
        let outstanding = account.outstanding(now);
        InvoiceView {
            number: invoice.number.clone(),
            licensee: invoice.licensee.clone(),
            month: invoice.month,
            plan: invoice.plan.clone(),
            currency: invoice.currency,
            issued_at: invoice.issued_at,
            due: invoice.due,
            status: account.status(now).as_str(),
            records: invoice.records,
            total: invoice.total.amount(),
            total_minor: invoice.total.minor,
            paid: amount(invoice.currency, paid),
            paid_minor: paid,
            credited: amount(invoice.currency, credited),
            credited_minor: credited,
            outstanding: outstanding.amount(),
            outstanding_minor: outstanding.minor,
            voided_at: invoice.voided_at,
            lines: invoice.lines.iter().map(LineView::of).collect(),
        }
    }
}

/// The views of `invoices` at `now`.
pub async fn views(store: &dyn Store, invoices: &[StoredInvoice], now: Timestamp) -> StoreResult<Vec<InvoiceView>> {
    let accounts: HashMap<String, InvoiceAccount> =
        store.invoice_accounts(None).await?.into_iter().map(|a| (a.account.number.clone(), a.account)).collect();
    Ok(invoices.iter().map(|i| InvoiceView::of(i, accounts.get(&i.number), now)).collect())
}

/// Sums of invoices in one currency (void invoices left out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub invoices: usize,
    pub invoiced: i64,
    pub paid: i64,
    pub outstanding: i64,
    pub overdue: i64,
}

impl Sums {
    pub fn add(&mut self, account: &InvoiceAccount, now: Timestamp) {
        let status = account.status(now);
        if status == InvoiceStatus::Void {
            return;
        }
        let outstanding = account.outstanding(now).minor;
        self.invoices += 1;
        self.invoiced = self.invoiced.saturating_add(account.total.minor);
        self.paid = self.paid.saturating_add(paid_minor(account, now));
        self.outstanding = self.outstanding.saturating_add(outstanding);
        if status == InvoiceStatus::Overdue {
            self.overdue = self.overdue.saturating_add(outstanding);
        }
    }
}

/// One currency's totals of a billing summary.
#[derive(Clone, Debug, Serialize)]
pub struct CurrencyTotals {
    pub currency: Currency,
    pub invoices: usize,
    pub invoiced: String,
    pub paid: String,
    pub outstanding: String,
    pub overdue: String,
    pub invoiced_minor: i64,
    pub paid_minor: i64,
    pub outstanding_minor: i64,
    pub overdue_minor: i64,
}

impl CurrencyTotals {
    pub fn of(currency: Currency, s: &Sums) -> CurrencyTotals {
        CurrencyTotals {
            currency,
            invoices: s.invoices,
            invoiced: amount(currency, s.invoiced),
            paid: amount(currency, s.paid),
            outstanding: amount(currency, s.outstanding),
            overdue: amount(currency, s.overdue),
            invoiced_minor: s.invoiced,
            paid_minor: s.paid,
            outstanding_minor: s.outstanding,
            overdue_minor: s.overdue,
        }
    }
}

/// A month's revenue: each invoice of the month as it stands now, and the totals per currency.
#[derive(Clone, Debug, Serialize)]
pub struct BillingSummary {
    pub month: Month,
    pub invoices: Vec<InvoiceView>,
    pub totals: Vec<CurrencyTotals>,
}

/// The billing summary of `month` at `now`.
pub async fn summary(store: &dyn Store, month: Month, now: Timestamp) -> StoreResult<BillingSummary> {
    let invoices = store.invoices(None, Some(month)).await?;
    let accounts: HashMap<String, InvoiceAccount> =
        store.invoice_accounts(None).await?.into_iter().map(|a| (a.account.number.clone(), a.account)).collect();
    let mut totals: BTreeMap<Currency, Sums> = BTreeMap::new();
    for invoice in &invoices {
        if let Some(account) = accounts.get(&invoice.number) {
            totals.entry(invoice.currency).or_default().add(account, now);
        }
    }
    let views = invoices.iter().map(|i| InvoiceView::of(i, accounts.get(&i.number), now)).collect();
    let totals = totals.iter().map(|(currency, s)| CurrencyTotals::of(*currency, s)).collect();
    Ok(BillingSummary { month, invoices: views, totals })
}

/// Invoices as CSV rows, one per invoice (names are `[a-z0-9_-]`, amounts plain decimals: nothing
/// needs quoting).
pub fn invoices_csv(views: &[InvoiceView]) -> String {
    let mut out = String::from(
        "number,licensee,month,plan,currency,issued_at,due,status,records,total,paid,outstanding,total_minor,paid_minor,outstanding_minor\n",
    );
    for v in views {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            v.number,
            v.licensee,
            v.month,
            v.plan,
            v.currency.code(),
            v.issued_at,
            v.due,
            v.status,
            v.records,
            v.total,
            v.paid,
            v.outstanding,
            v.total_minor,
            v.paid_minor,
            v.outstanding_minor
        );
    }
    out
}

/// One invoice's lines as CSV (descriptions quoted), then its total, paid and outstanding.
pub fn invoice_lines_csv(v: &InvoiceView) -> String {
    let mut out = String::from("invoice,first_day,last_day,kind,records,description,amount,amount_minor,currency\n");
    for line in &v.lines {
        let _ = writeln!(
            out,
            "{},{},{},{},{},\"{}\",{},{},{}",
            v.number,
            line.first_day,
            line.last_day,
            line.kind,
            line.records,
            line.description.replace('"', "\"\""),
            line.amount,
            line.amount_minor,
            v.currency.code()
        );
    }
    for (kind, text, minor) in [
        ("total", &v.total, v.total_minor),
        ("paid", &v.paid, v.paid_minor),
        ("credited", &v.credited, v.credited_minor),
        ("outstanding", &v.outstanding, v.outstanding_minor),
    ] {
        let _ = writeln!(out, "{},,,{kind},,,{text},{minor},{}", v.number, v.currency.code());
    }
    out
}

/// A printable, self-contained HTML page of one invoice (inline styles, no script, no network):
/// what a finance colleague prints or attaches. `issuer` names the platform at the top.
pub fn invoice_html(v: &InvoiceView, issuer: &str) -> String {
    let code = v.currency.code();
    let mut rows = String::new();
    for line in &v.lines {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{} {code}</td></tr>",
            line.first_day,
            line.last_day,
            escape(&line.description),
            line.records,
            line.amount
        );
    }
    let void = v.voided_at.map_or(String::new(), |at| format!("<p class=void>VOID since {at}</p>"));
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Invoice {number}</title>
<style>
body {{ font: 11pt/1.4 system-ui, sans-serif; color: #111; margin: 2.5em auto; max-width: 52em; padding: 0 1em; }}
h1 {{ font-size: 1.6em; margin: 0 0 .2em; }}
.issuer {{ color: #444; margin-bottom: 2em; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: .2em 1.5em; margin: 0 0 2em; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
table {{ width: 100%; border-collapse: collapse; }}
th, td {{ text-align: left; padding: .35em .5em; border-bottom: 1px solid #ccc; vertical-align: top; }}
th {{ border-bottom: 2px solid #111; }}
.n {{ text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }}
tfoot td {{ border: 0; font-weight: 600; }}
.status {{ text-transform: uppercase; font-weight: 700; }}
.void {{ color: #a00; font-weight: 700; font-size: 1.3em; }}
@media print {{ body {{ margin: 0; max-width: none; }} }}
</style>
</head>
<body>
<h1>Invoice {number}</h1>
<div class="issuer">{issuer}</div>
{void}<dl>
<dt>Licensee</dt><dd>{licensee}</dd>
<dt>Period</dt><dd>{month} (plan {plan})</dd>
<dt>Issued</dt><dd>{issued}</dd>
<dt>Due</dt><dd>{due} (payable until the end of that day, UTC)</dd>
<dt>Status</dt><dd class="status">{status}</dd>
<dt>Records</dt><dd>{records} counted</dd>
</dl>
<table>
<thead><tr><th>From</th><th>To</th><th>Description</th><th class=n>Records</th><th class=n>Amount</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot>
<tr><td colspan=4>Total</td><td class=n>{total} {code}</td></tr>
<tr><td colspan=4>Paid</td><td class=n>{paid} {code}</td></tr>
{credited}
<tr><td colspan=4>Outstanding</td><td class=n>{outstanding} {code}</td></tr>
</tfoot>
</table>
<p>Amounts are exact: each line is rounded once, half to even, to the currency's minor unit, and the lines sum to
the total. Counted records come from the metering ledger; prepaid records were paid from the prepaid credit when
delivered.</p>
</body>
</html>
"#,
        number = escape(&v.number),
        issuer = escape(issuer),
        licensee = escape(&v.licensee),
        month = v.month,
        plan = escape(&v.plan),
        issued = v.issued_at,
        due = v.due,
        status = v.status,
        records = v.records,
        total = v.total,
        paid = v.paid,
        credited = if v.credited_minor == 0 {
            String::new()
        } else {
            format!("<tr><td colspan=4>Credit notes</td><td class=n>&minus;{} {code}</td></tr>\n", v.credited)
        },
        outstanding = v.outstanding,
    )
}

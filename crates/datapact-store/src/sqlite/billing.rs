//! Invoices and payments in SQLite: issue (numbered, idempotent per licensee and month),
//! payments (idempotent by reference, never above what is owed), and the dunning transitions
//! written to the audit log in the same transaction as the change that caused them.

use chrono::NaiveDate;
use datapact_billing::{
    BillingTerms, Currency, InvoiceAccount, InvoiceStatus, Money, Month, Payment, Suspension, suspension,
};
use datapact_core::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{append_audit, to_json, unavailable};
use crate::notify::{NewNotification, NotificationKind};
use crate::{
    Change, CreditAdded, InvoiceIssue, LicenseeAccount, NewCredit, NewCreditNote, NewInvoice, NewPayment,
    PaymentRecorded, StoreError, StoreResult, StoredCredit, StoredCreditNote, StoredInvoice, StoredPayment,
};

/// The printed number of the `seq`-th invoice of the platform.
pub(super) fn invoice_number(seq: i64) -> String {
    format!("DP-{seq:06}")
}

/// The longest payment reference accepted (bank references are far shorter).
const MAX_REFERENCE: usize = 200;

const INVOICE_COLUMNS: &str = "i.seq, i.number, i.licensee_id, l.name, i.month, i.plan, i.currency, i.issued_at, \
    i.due, i.lines, i.records, i.total_minor, i.voided_at";

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn month_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Month> {
    let text: String = row.get(index)?;
    Month::parse(&text).ok_or_else(|| conversion(index, format!("stored month {text:?} is not YYYY-MM")))
}

fn currency_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Currency> {
    let text: String = row.get(index)?;
    Currency::parse(&text).ok_or_else(|| conversion(index, format!("stored currency {text:?} is unknown")))
}

fn date_at(row: &Row<'_>, index: usize) -> rusqlite::Result<NaiveDate> {
    let text: String = row.get(index)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| conversion(index, format!("stored date {text:?} is not YYYY-MM-DD")))
}

fn invoice_from_row(row: &Row<'_>) -> rusqlite::Result<StoredInvoice> {
    let currency = currency_at(row, 6)?;
    let lines: String = row.get(9)?;
    let lines = serde_json::from_str(&lines).map_err(|e| conversion(9, format!("stored invoice lines: {e}")))?;
    Ok(StoredInvoice {
        number: row.get(1)?,
        licensee_id: row.get(2)?,
        licensee: row.get(3)?,
        month: month_at(row, 4)?,
        plan: row.get(5)?,
        currency,
        issued_at: Timestamp(row.get(7)?),
        due: date_at(row, 8)?,
        lines,
        records: row.get::<_, i64>(10)?.max(0) as u64,
        total: Money::new(currency, row.get(11)?),
        voided_at: row.get::<_, Option<i64>>(12)?.map(Timestamp),
    })
}

/// Invoices matching the filters, in number order.
pub(super) fn invoices(
    conn: &Connection,
    licensee: Option<&str>,
    month: Option<Month>,
    number: Option<&str>,
) -> StoreResult<Vec<StoredInvoice>> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN licensees l ON l.id = i.licensee_id
         WHERE (?1 IS NULL OR l.name = ?1) AND (?2 IS NULL OR i.month = ?2) AND (?3 IS NULL OR i.number = ?3)
         ORDER BY i.seq"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params![licensee, month.map(|m| m.to_string()), number], invoice_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn licensee_id(conn: &Connection, name: &str) -> StoreResult<i64> {
    conn.query_row("SELECT id FROM licensees WHERE name = ?1", [name], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no licensee named {name:?} (see `datapact licensee list`)")))
}

/// A licensee's billing terms as applied (the defaults when it has none, or no agreement).
fn billing_terms(conn: &Connection, licensee_id: i64) -> StoreResult<BillingTerms> {
    let terms: Option<String> = conn
        .query_row("SELECT terms FROM licensees WHERE id = ?1", [licensee_id], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten();
    let billing = terms
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|mut terms| terms.get_mut("billing").map(serde_json::Value::take));
    Ok(match billing {
        Some(billing) => serde_json::from_value(billing).map_err(|e| {
            unavailable(format!("the stored billing terms of licensee #{licensee_id} do not read: {e}"))
        })?,
        None => BillingTerms::default(),
    })
}

/// Every invoice of one licensee (or all), with its payments.
pub(super) fn accounts(conn: &Connection, licensee: Option<i64>) -> StoreResult<Vec<LicenseeAccount>> {
    let mut statement = conn.prepare_cached(
        "SELECT i.seq, i.number, i.licensee_id, l.name, i.month, i.currency, i.total_minor, i.due, i.voided_at
         FROM invoices i JOIN licensees l ON l.id = i.licensee_id
         WHERE ?1 IS NULL OR i.licensee_id = ?1 ORDER BY i.seq",
    )?;
    let mut accounts: Vec<(i64, LicenseeAccount)> = statement
        .query_map([licensee], |row| {
            let currency = currency_at(row, 5)?;
            Ok((
                row.get::<_, i64>(0)?,
                LicenseeAccount {
                    licensee_id: row.get(2)?,
                    licensee: row.get(3)?,
                    month: month_at(row, 4)?,
                    account: InvoiceAccount {
                        number: row.get(1)?,
                        total: Money::new(currency, row.get(6)?),
                        due: date_at(row, 7)?,
                        voided_at: row.get::<_, Option<i64>>(8)?.map(Timestamp),
                        payments: Vec::new(),
                        credit_notes: Vec::new(),
                    },
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut payments = conn.prepare_cached(
        "SELECT invoice_seq, amount_minor, currency, received_at FROM payments
         WHERE ?1 IS NULL OR licensee_id = ?1 ORDER BY id",
    )?;
    let rows = payments.query_map([licensee], |row| {
        Ok((row.get::<_, i64>(0)?, Money::new(currency_at(row, 2)?, row.get(1)?), Timestamp(row.get(3)?)))
    })?;
    for row in rows {
        let (seq, amount, at) = row?;
        // Invoices are sorted by seq, so a binary search finds the one paid.
        if let Ok(index) = accounts.binary_search_by_key(&seq, |(s, _)| *s) {
            accounts[index].1.account.payments.push(Payment { at, amount });
        }
    }
    let mut notes = conn.prepare_cached(
        "SELECT invoice_seq, amount_minor, currency, issued_at FROM credit_notes
         WHERE ?1 IS NULL OR licensee_id = ?1 ORDER BY seq",
    )?;
    let rows = notes.query_map([licensee], |row| {
        Ok((row.get::<_, i64>(0)?, Money::new(currency_at(row, 2)?, row.get(1)?), Timestamp(row.get(3)?)))
    })?;
    for row in rows {
        let (seq, amount, at) = row?;
        if let Ok(index) = accounts.binary_search_by_key(&seq, |(s, _)| *s) {
            accounts[index].1.account.credit_notes.push(Payment { at, amount });
        }
    }
    Ok(accounts.into_iter().map(|(_, account)| account).collect())
}

/// Whether the licensee is suspended at `at` under its grace days, and why.
fn suspension_at(conn: &Connection, licensee_id: i64, at: Timestamp) -> StoreResult<Option<Suspension>> {
    let grace = billing_terms(conn, licensee_id)?.grace_days;
    let invoices: Vec<InvoiceAccount> = accounts(conn, Some(licensee_id))?.into_iter().map(|a| a.account).collect();
    Ok(suspension(&invoices, grace, at))
}

/// Raises a billing notification in the change's transaction (once per `key`).
fn raise(
    conn: &Connection,
    change: &Change,
    kind: NotificationKind,
    licensee_id: i64,
    key: String,
    payload: serde_json::Value,
) -> StoreResult<bool> {
    let notification = NewNotification { kind, licensee_id, dedupe_key: key, payload, at: change.at };
    super::webhooks::notify(conn, &notification)
}

/// Writes the licensee's dunning transitions to the audit log, each with its notification:
/// `invoice.overdue` the first time an invoice is seen overdue (the notification's dedupe key makes
/// it once), `licensee.suspended` when it is (or, `before`, was just before this change) suspended
/// and the log does not say so yet, and `licensee.reinstated` when the log says suspended and it no
/// longer is. The log itself is the record of the last state written, so a transition is logged
/// once however many processes check. Returns whether it wrote an entry.
fn log_transitions(
    conn: &Connection,
    licensee_id: i64,
    name: &str,
    before: Option<&Suspension>,
    change: &Change,
    cause: &str,
) -> StoreResult<bool> {
    let after = suspension_at(conn, licensee_id, change.at)?;
    let mut wrote = false;
    // An invoice that fell overdue (time passing) is logged and notified once, when first noticed.
    for account in accounts(conn, Some(licensee_id))? {
        let invoice = account.account;
        if invoice.status(change.at) != InvoiceStatus::Overdue {
            continue;
        }
        let outstanding = invoice.outstanding(change.at);
        let payload = json!({
            "licensee": name,
            "invoice": invoice.number,
            "due": invoice.due,
            "outstanding": outstanding.amount(),
            "currency": outstanding.currency,
        });
        let key = format!("invoice.overdue:{}", invoice.number);
        if raise(conn, change, NotificationKind::InvoiceOverdue, licensee_id, key, payload.clone())? {
            let entry = json!({ "cause": format!("noticed at {cause}"), "overdue": payload });
            append_audit(conn, change, "invoice.overdue", &invoice.number, None, Some(entry))?;
            wrote = true;
        }
    }
    let last: Option<String> = conn
        .prepare_cached(
            "SELECT action FROM audit_log WHERE subject = ?1
             AND action IN ('licensee.suspended', 'licensee.reinstated') ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([name], |row| row.get(0))
        .optional()?;
    let mut logged_suspended = last.as_deref() == Some("licensee.suspended");
    // A suspension that began by time passing is first noticed here: logged now, with the instant it
    // began (`suspended_from` of each invoice) in the entry.
    for suspended in [before, after.as_ref()].into_iter().flatten() {
        if !logged_suspended {
            let entry = json!({ "cause": format!("noticed at {cause}"), "suspension": suspended });
            append_audit(conn, change, "licensee.suspended", name, None, Some(entry.clone()))?;
            let key = format!("licensee.suspended:{}", conn.last_insert_rowid());
            let payload = json!({ "licensee": name, "suspension": suspended });
            raise(conn, change, NotificationKind::LicenseeSuspended, licensee_id, key, payload)?;
            logged_suspended = true;
            wrote = true;
        }
    }
    if logged_suspended && after.is_none() {
        append_audit(conn, change, "licensee.reinstated", name, None, Some(json!({ "cause": cause })))?;
        let key = format!("licensee.reinstated:{}", conn.last_insert_rowid());
        let payload = json!({ "licensee": name, "cause": cause });
        raise(conn, change, NotificationKind::LicenseeReinstated, licensee_id, key, payload)?;
        wrote = true;
    }
    Ok(wrote)
}

/// [`log_transitions`] for every licensee that has an invoice; the names of those with an entry written.
pub(super) fn log_all_transitions(conn: &Connection, change: &Change) -> StoreResult<Vec<String>> {
    let licensees: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT DISTINCT l.id, l.name FROM licensees l JOIN invoices i ON i.licensee_id = l.id ORDER BY l.id",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut logged = Vec::new();
    for (id, name) in licensees {
        if log_transitions(conn, id, &name, None, change, "the scheduled dunning check")? {
            logged.push(name);
        }
    }
    Ok(logged)
}

fn check_new_invoice(invoice: &NewInvoice) -> StoreResult<()> {
    let currency = invoice.total.currency;
    let sum: i128 = invoice.lines.iter().map(|l| i128::from(l.amount.minor)).sum();
    if invoice.lines.iter().any(|l| l.amount.currency != currency || l.amount.minor < 0) {
        return Err(StoreError::Invalid(format!(
            "the invoice of {} for {} mixes currencies or has a negative line",
            invoice.licensee, invoice.month
        )));
    }
    if sum != i128::from(invoice.total.minor) || invoice.total.minor < 0 {
        return Err(StoreError::Invalid(format!(
            "the lines of the invoice of {} for {} sum to {sum} minor units, not its total {}",
            invoice.licensee, invoice.month, invoice.total
        )));
    }
    Ok(())
}

pub(super) fn issue(conn: &Connection, invoices: Vec<NewInvoice>, change: &Change) -> StoreResult<InvoiceIssue> {
    let mut outcome = InvoiceIssue::default();
    let mut touched: Vec<(i64, String)> = Vec::new();
    for new in invoices {
        check_new_invoice(&new)?;
        let id = licensee_id(conn, &new.licensee)?;
        if !touched.iter().any(|(t, _)| *t == id) {
            touched.push((id, new.licensee.clone()));
        }
        let month = new.month.to_string();
        let existing: Option<i64> = conn
            .query_row("SELECT seq FROM invoices WHERE licensee_id = ?1 AND month = ?2", params![id, month], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(seq) = existing {
            outcome.existing.extend(invoices_by_seq(conn, seq)?);
            continue;
        }
        // One writer at a time (the store's writer connection, in this transaction): the next
        // number is the last plus one, and the `invoices_gapless` trigger holds every writer to it.
        let seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM invoices", [], |row| row.get(0))?;
        let number = invoice_number(seq);
        let lines = serde_json::to_string(&new.lines).map_err(unavailable)?;
        conn.prepare_cached(
            "INSERT INTO invoices (seq, number, licensee_id, month, plan, currency, issued_at, due, lines, records,
                                   total_minor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            seq,
            number,
            id,
            month,
            new.plan,
            new.total.currency.code(),
            change.at.0,
            new.due.format("%Y-%m-%d").to_string(),
            lines,
            i64::try_from(new.records).map_err(|_| StoreError::Invalid("record count overflows".into()))?,
            new.total.minor
        ])?;
        let stored = invoices_by_seq(conn, seq)?
            .pop()
            .ok_or_else(|| unavailable(format!("invoice {number} vanished inside its own transaction")))?;
        let entry = json!({ "cause": format!("invoice run for {}", new.month), "invoice": to_json(&stored) });
        append_audit(conn, change, "invoice.issue", &number, None, Some(entry))?;
        let payload = json!({
            "licensee": stored.licensee,
            "invoice": stored.number,
            "month": stored.month,
            "total": stored.total.amount(),
            "currency": stored.currency,
            "due": stored.due,
        });
        raise(conn, change, NotificationKind::InvoiceIssued, id, format!("invoice.issued:{number}"), payload)?;
        outcome.issued.push(stored);
    }
    for (id, name) in touched {
        log_transitions(conn, id, &name, None, change, "the invoice run")?;
    }
    Ok(outcome)
}

fn invoices_by_seq(conn: &Connection, seq: i64) -> StoreResult<Vec<StoredInvoice>> {
    let sql =
        format!("SELECT {INVOICE_COLUMNS} FROM invoices i JOIN licensees l ON l.id = i.licensee_id WHERE i.seq = ?1");
    Ok(conn.prepare_cached(&sql)?.query_map([seq], invoice_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

const PAYMENT_COLUMNS: &str = "l.name, i.number, p.amount_minor, p.currency, p.reference, p.received_at FROM payments p \
     JOIN licensees l ON l.id = p.licensee_id JOIN invoices i ON i.seq = p.invoice_seq";

fn payment_from_row(row: &Row<'_>) -> rusqlite::Result<StoredPayment> {
    Ok(StoredPayment {
        licensee: row.get(0)?,
        invoice: row.get(1)?,
        amount: Money::new(currency_at(row, 3)?, row.get(2)?),
        reference: row.get(4)?,
        received_at: Timestamp(row.get(5)?),
    })
}

pub(super) fn payments(conn: &Connection, licensee: Option<&str>) -> StoreResult<Vec<StoredPayment>> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} WHERE ?1 IS NULL OR l.name = ?1 ORDER BY p.id");
    Ok(conn.prepare_cached(&sql)?.query_map([licensee], payment_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

/// The longest reason accepted for a void or a credit note.
const MAX_REASON: usize = 500;

fn reason(what: &str, reason: &str) -> StoreResult<String> {
    let trimmed = reason.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_REASON || trimmed.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} needs a reason of 1–{MAX_REASON} printable characters (it is printed on the document); got {reason:?}"
        )));
    }
    Ok(trimmed.to_owned())
}

fn invoice_by_number(conn: &Connection, number: &str) -> StoreResult<StoredInvoice> {
    invoices(conn, None, None, Some(number))?.pop().ok_or_else(|| {
        StoreError::NotFound(format!("no invoice numbered {number:?}; `datapact invoice list` shows them"))
    })
}

pub(super) fn void_invoice(conn: &Connection, number: &str, why: &str, change: &Change) -> StoreResult<StoredInvoice> {
    let why = reason("voiding an invoice", why)?;
    let invoice = invoice_by_number(conn, number)?;
    if invoice.voided_at.is_some() {
        return Err(StoreError::Conflict(format!("invoice {number} is already void")));
    }
    let settled: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM payments p JOIN invoices i ON i.seq = p.invoice_seq WHERE i.number = ?1)
              + (SELECT COUNT(*) FROM credit_notes c JOIN invoices i ON i.seq = c.invoice_seq WHERE i.number = ?1)",
        [number],
        |row| row.get(0),
    )?;
    if settled > 0 {
        return Err(StoreError::Conflict(format!(
            "invoice {number} has payments or credit notes: correct it with a credit note rather than voiding it"
        )));
    }
    let before = suspension_at(conn, invoice.licensee_id, change.at)?;
    conn.execute(
        "UPDATE invoices SET voided_at = ?2, void_reason = ?3 WHERE number = ?1",
        params![number, change.at.0, why],
    )?;
    let cause = format!("invoice {number} voided: {why}");
    append_audit(conn, change, "invoice.void", number, None, Some(json!({ "cause": cause })))?;
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause)?;
    invoice_by_number(conn, number)
}

const CREDIT_NOTE_COLUMNS: &str = "c.number, i.number, l.name, c.amount_minor, c.currency, c.reason, c.issued_at \
     FROM credit_notes c JOIN invoices i ON i.seq = c.invoice_seq JOIN licensees l ON l.id = c.licensee_id";

fn credit_note_from_row(row: &Row<'_>) -> rusqlite::Result<StoredCreditNote> {
    Ok(StoredCreditNote {
        number: row.get(0)?,
        invoice: row.get(1)?,
        licensee: row.get(2)?,
        amount: Money::new(currency_at(row, 4)?, row.get(3)?),
        reason: row.get(5)?,
        issued_at: Timestamp(row.get(6)?),
    })
}

pub(super) fn credit_notes(conn: &Connection, licensee: Option<&str>) -> StoreResult<Vec<StoredCreditNote>> {
    let sql = format!("SELECT {CREDIT_NOTE_COLUMNS} WHERE ?1 IS NULL OR l.name = ?1 ORDER BY c.seq");
    Ok(conn.prepare_cached(&sql)?.query_map([licensee], credit_note_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn issue_credit_note(
    conn: &Connection,
    note: NewCreditNote,
    change: &Change,
) -> StoreResult<StoredCreditNote> {
    let why = reason("a credit note", &note.reason)?;
    let invoice = invoice_by_number(conn, &note.invoice)?;
    if invoice.voided_at.is_some() {
        return Err(StoreError::Invalid(format!("invoice {} is void: nothing is owed on it", invoice.number)));
    }
    if note.amount.currency != invoice.currency {
        return Err(StoreError::Invalid(format!(
            "invoice {} is in {}, the credit note in {}: issue it in the invoice's currency",
            invoice.number, invoice.currency, note.amount.currency
        )));
    }
    if note.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a credit note is more than zero; got {}", note.amount)));
    }
    let account = accounts(conn, Some(invoice.licensee_id))?
        .into_iter()
        .find(|a| a.account.number == invoice.number)
        .ok_or_else(|| unavailable(format!("invoice {} has no account", invoice.number)))?;
    let outstanding = account.account.outstanding(change.at);
    if note.amount.minor > outstanding.minor {
        return Err(StoreError::Invalid(format!(
            "{} is more than the {} outstanding on invoice {}: a credit note takes off at most what is owed",
            note.amount, outstanding, invoice.number
        )));
    }
    let before = suspension_at(conn, invoice.licensee_id, change.at)?;
    let seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_notes", [], |row| row.get(0))?;
    let number = format!("CN-{seq:06}");
    conn.prepare_cached(
        "INSERT INTO credit_notes (seq, number, invoice_seq, licensee_id, amount_minor, currency, reason, issued_at)
         VALUES (?1, ?2, (SELECT seq FROM invoices WHERE number = ?3), ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        seq,
        number,
        invoice.number,
        invoice.licensee_id,
        note.amount.minor,
        note.amount.currency.code(),
        why,
        change.at.0
    ])?;
    let issued = StoredCreditNote {
        number: number.clone(),
        invoice: invoice.number.clone(),
        licensee: invoice.licensee.clone(),
        amount: note.amount,
        reason: why,
        issued_at: change.at,
    };
    let cause = format!("credit note {number} of {} against invoice {}", note.amount, invoice.number);
    append_audit(
        conn,
        change,
        "credit_note.issue",
        &number,
        None,
        Some(json!({ "cause": cause, "credit_note": to_json(&issued) })),
    )?;
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause)?;
    Ok(issued)
}

/// A payment's or credit's reference, trimmed, or why it is refused.
fn reference<'a>(what: &str, reference: &'a str) -> StoreResult<&'a str> {
    let trimmed = reference.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_REFERENCE || trimmed.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "a {what} reference is 1–{MAX_REFERENCE} printable characters (the bank's or processor's reference); \
             got {reference:?}"
        )));
    }
    Ok(trimmed)
}

const CREDIT_COLUMNS: &str = "c.licensee_id, l.name, c.amount_minor, c.currency, c.reference, c.added_at FROM credits c \
     JOIN licensees l ON l.id = c.licensee_id";

fn credit_from_row(row: &Row<'_>) -> rusqlite::Result<StoredCredit> {
    Ok(StoredCredit {
        licensee_id: row.get(0)?,
        licensee: row.get(1)?,
        amount: Money::new(currency_at(row, 3)?, row.get(2)?),
        reference: row.get(4)?,
        added_at: Timestamp(row.get(5)?),
    })
}

pub(super) fn credits(conn: &Connection, licensee: Option<&str>) -> StoreResult<Vec<StoredCredit>> {
    let sql = format!("SELECT {CREDIT_COLUMNS} WHERE ?1 IS NULL OR l.name = ?1 ORDER BY c.id");
    Ok(conn.prepare_cached(&sql)?.query_map([licensee], credit_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn add_credit(conn: &Connection, credit: NewCredit, change: &Change) -> StoreResult<CreditAdded> {
    let reference = reference("credit", &credit.reference)?;
    let id = licensee_id(conn, &credit.licensee)?;
    let sql = format!("SELECT {CREDIT_COLUMNS} WHERE c.licensee_id = ?1 AND c.reference = ?2");
    let earlier = conn.prepare_cached(&sql)?.query_row(params![id, reference], credit_from_row).optional()?;
    if let Some(earlier) = earlier {
        // The same credit recorded again (a retried command, a re-imported statement) counts once.
        if earlier.amount == credit.amount {
            return Ok(CreditAdded { credit: earlier, new: false });
        }
        return Err(StoreError::Conflict(format!(
            "reference {reference:?} of {} was already used for a credit of {} on {}; a different credit needs its \
             own reference",
            credit.licensee, earlier.amount, earlier.added_at
        )));
    }
    if credit.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a credit is more than zero; got {}", credit.amount)));
    }
    let other: Option<String> = conn
        .query_row(
            "SELECT currency FROM credits WHERE licensee_id = ?1 AND currency <> ?2 LIMIT 1",
            params![id, credit.amount.currency.code()],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(other) = other {
        return Err(StoreError::Invalid(format!(
            "{}'s credit is in {other}, not {}: add credit in {other}",
            credit.licensee, credit.amount.currency
        )));
    }
    conn.prepare_cached(
        "INSERT INTO credits (licensee_id, amount_minor, currency, reference, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, credit.amount.minor, credit.amount.currency.code(), reference, change.at.0])?;
    let added = StoredCredit {
        licensee_id: id,
        licensee: credit.licensee.clone(),
        amount: credit.amount,
        reference: reference.to_owned(),
        added_at: change.at,
    };
    let entry = json!({ "cause": format!("credit {reference:?} of {}", credit.amount), "credit": to_json(&added) });
    append_audit(conn, change, "credit.add", &credit.licensee, None, Some(entry))?;
    Ok(CreditAdded { credit: added, new: true })
}

pub(super) fn record_payment(conn: &Connection, payment: NewPayment, change: &Change) -> StoreResult<PaymentRecorded> {
    let reference = reference("payment", &payment.reference)?;
    let id = licensee_id(conn, &payment.licensee)?;
    let Some(invoice) = invoices(conn, None, None, Some(payment.invoice.as_str()))?.pop() else {
        return Err(StoreError::NotFound(format!(
            "no invoice numbered {:?}; `datapact invoice list {}` shows the licensee's invoices",
            payment.invoice, payment.licensee
        )));
    };
    if invoice.licensee_id != id {
        return Err(StoreError::Invalid(format!(
            "invoice {} is {}'s, not {}'s: check the invoice number",
            invoice.number, invoice.licensee, payment.licensee
        )));
    }
    let sql = format!("SELECT {PAYMENT_COLUMNS} WHERE p.licensee_id = ?1 AND p.reference = ?2");
    let earlier = conn.prepare_cached(&sql)?.query_row(params![id, reference], payment_from_row).optional()?;
    if let Some(earlier) = earlier {
        // The same payment recorded again (a retry, a re-imported statement) counts once.
        if earlier.invoice == invoice.number && earlier.amount == payment.amount {
            return Ok(PaymentRecorded { payment: earlier, new: false });
        }
        return Err(StoreError::Conflict(format!(
            "reference {reference:?} of {} was already used for a payment of {} to invoice {} on {}; \
             a different payment needs its own reference",
            payment.licensee, earlier.amount, earlier.invoice, earlier.received_at
        )));
    }
    if invoice.voided_at.is_some() {
        return Err(StoreError::Invalid(format!("invoice {} is void: nothing is owed on it", invoice.number)));
    }
    if payment.amount.currency != invoice.currency {
        return Err(StoreError::Invalid(format!(
            "invoice {} is in {}, the payment in {}: record it in the invoice's currency",
            invoice.number, invoice.currency, payment.amount.currency
        )));
    }
    if payment.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a payment is more than zero; got {}", payment.amount)));
    }
    let paid: i64 = conn.query_row(
        "SELECT COALESCE(SUM(amount_minor), 0) FROM payments WHERE invoice_seq = (SELECT seq FROM invoices WHERE number = ?1)",
        [&invoice.number],
        |row| row.get(0),
    )?;
    let outstanding = Money::new(invoice.currency, invoice.total.minor.saturating_sub(paid).max(0));
    if payment.amount.minor > outstanding.minor {
        return Err(StoreError::Invalid(if outstanding.minor == 0 {
            format!("invoice {} is already paid in full ({}); nothing was recorded", invoice.number, invoice.total)
        } else {
            format!(
                "{} is more than the {} outstanding on invoice {} (total {}); record at most {}",
                payment.amount, outstanding, invoice.number, invoice.total, outstanding
            )
        }));
    }
    let before = suspension_at(conn, id, change.at)?;
    conn.prepare_cached(
        "INSERT INTO payments (licensee_id, invoice_seq, amount_minor, currency, reference, received_at)
         VALUES (?1, (SELECT seq FROM invoices WHERE number = ?2), ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        invoice.number,
        payment.amount.minor,
        payment.amount.currency.code(),
        reference,
        change.at.0
    ])?;
    let recorded = StoredPayment {
        licensee: payment.licensee.clone(),
        invoice: invoice.number.clone(),
        amount: payment.amount,
        reference: reference.to_owned(),
        received_at: change.at,
    };
    let cause = format!("payment {reference:?} of {} to invoice {}", payment.amount, invoice.number);
    let remaining = Money::new(invoice.currency, outstanding.minor - payment.amount.minor);
    let entry = json!({ "cause": cause, "payment": to_json(&recorded), "outstanding": to_json(&remaining) });
    append_audit(conn, change, "payment.record", &invoice.number, None, Some(entry))?;
    if remaining.minor == 0 {
        append_audit(conn, change, "invoice.paid", &invoice.number, None, Some(json!({ "cause": cause })))?;
        let payload = json!({
            "licensee": payment.licensee,
            "invoice": invoice.number,
            "total": invoice.total.amount(),
            "currency": invoice.currency,
        });
        let key = format!("invoice.paid:{}", invoice.number);
        raise(conn, change, NotificationKind::InvoicePaid, id, key, payload)?;
    }
    log_transitions(conn, id, &payment.licensee, before.as_ref(), change, &cause)?;
    Ok(PaymentRecorded { payment: recorded, new: true })
}

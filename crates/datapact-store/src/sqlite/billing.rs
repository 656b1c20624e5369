//! Invoices and payments in SQLite: issue (numbered, idempotent per licensee and month),
//! payments (idempotent by reference, never above what is owed), and the dunning transitions
//! written to the audit log in the same transaction as the change that caused them.

use chrono::NaiveDate;
use datapact_billing::{
    BillingTerms, Currency, InvoiceAccount, InvoiceStatus, Money, Month, Payment, Suspension, suspension,
};
use datapact_core::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::append_draft;
use crate::shared::{
    AuditDraft, billing_terms_of, check_new_invoice, credit_entry, credit_note_entries, credit_note_number, creditable,
    creditable_amount, date_text, document_reason, dunning_entries, invoice_issued_entry, invoice_number,
    invoice_records, last_transition_sql, no_licensee_to_bill, notification_of, overdue_entry, parse_currency,
    parse_date, parse_lines, parse_month, payable, payment_invoice, payment_recorded, payment_reference, reference,
    repeated_credit, repeated_payment, sql, unavailable, voidable,
};
use crate::{
    Change, CreditAdded, InvoiceIssue, LicenseeAccount, NewCredit, NewCreditNote, NewInvoice, NewPayment,
    PaymentRecorded, StoreError, StoreResult, StoredCredit, StoredCreditNote, StoredInvoice, StoredPayment,
};

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

/// The text at `index` read by `parse`.
fn parsed<T>(row: &Row<'_>, index: usize, parse: fn(&str) -> Result<T, String>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).map_err(|e| conversion(index, e))
}

fn month_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Month> {
    parsed(row, index, parse_month)
}

fn currency_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Currency> {
    parsed(row, index, parse_currency)
}

fn date_at(row: &Row<'_>, index: usize) -> rusqlite::Result<NaiveDate> {
    parsed(row, index, parse_date)
}

fn invoice_from_row(row: &Row<'_>) -> rusqlite::Result<StoredInvoice> {
    let currency = currency_at(row, 6)?;
    let lines = parsed(row, 9, parse_lines)?;
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
    let mut statement = conn.prepare_cached(&sql::INVOICES_WHERE)?;
    let rows = statement
        .query_map(params![licensee, month.map(|m| m.to_string()), number], invoice_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn licensee_id(conn: &Connection, name: &str) -> StoreResult<i64> {
    conn.query_row("SELECT id FROM licensees WHERE name = ?1", [name], |row| row.get(0))
        .optional()?
        .ok_or_else(|| no_licensee_to_bill(name))
}

/// A licensee's billing terms as applied (the defaults when it has none, or no agreement).
fn billing_terms(conn: &Connection, licensee_id: i64) -> StoreResult<BillingTerms> {
    let terms: Option<String> = conn
        .query_row("SELECT terms FROM licensees WHERE id = ?1", [licensee_id], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten();
    billing_terms_of(licensee_id, terms)
}

/// Every invoice of one licensee (or all), with its payments.
pub(super) fn accounts(conn: &Connection, licensee: Option<i64>) -> StoreResult<Vec<LicenseeAccount>> {
    let mut statement = conn.prepare_cached(sql::ACCOUNT_INVOICES)?;
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
    let mut payments = conn.prepare_cached(sql::ACCOUNT_PAYMENTS)?;
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
    let mut notes = conn.prepare_cached(sql::ACCOUNT_CREDIT_NOTES)?;
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

/// Writes the licensee's dunning transitions to the audit log: `licensee.suspended` when it is
/// (or, `before`, was just before this change) suspended and the log does not say so yet, and
/// `licensee.reinstated` when the log says suspended and it no longer is. The log itself is the
/// record of the last state written, so a transition is logged once however many processes check.
/// Returns whether it wrote an entry.
fn log_transitions(
    conn: &Connection,
    licensee_id: i64,
    name: &str,
    before: Option<&Suspension>,
    change: &Change,
    cause: &str,
) -> StoreResult<bool> {
    let mut wrote = false;
    // An invoice seen overdue is logged (and notified) once: its notification's key decides.
    for account in accounts(conn, Some(licensee_id))? {
        if account.account.status(change.at) == InvoiceStatus::Overdue {
            let draft = overdue_entry(&account.account, change.at, cause);
            let notification = notification_of(&draft, licensee_id, 0, change.at).expect("overdue is notified");
            if super::webhooks::notify(conn, &notification)? {
                append_draft(conn, change, draft)?;
                wrote = true;
            }
        }
    }
    let after = suspension_at(conn, licensee_id, change.at)?;
    let last: Option<String> =
        conn.prepare_cached(&last_transition_sql("?1"))?.query_row([name], |row| row.get(0)).optional()?;
    let logged_suspended = last.as_deref() == Some("licensee.suspended");
    let entries = dunning_entries(name, logged_suspended, before, after.as_ref(), cause);
    wrote |= !entries.is_empty();
    for entry in entries {
        append_billing_draft(conn, change, licensee_id, entry)?;
    }
    Ok(wrote)
}

/// Appends a billing audit entry and raises the notification it stands for, if any, in the same
/// transaction.
fn append_billing_draft(conn: &Connection, change: &Change, licensee_id: i64, draft: AuditDraft) -> StoreResult<()> {
    append_draft(conn, change, draft.clone())?;
    if let Some(notification) = notification_of(&draft, licensee_id, conn.last_insert_rowid(), change.at) {
        super::webhooks::notify(conn, &notification)?;
    }
    Ok(())
}

/// [`log_transitions`] for every licensee that has an invoice; the names of those with an entry written.
pub(super) fn log_all_transitions(conn: &Connection, change: &Change) -> StoreResult<Vec<String>> {
    let licensees: Vec<(i64, String)> = conn
        .prepare_cached(sql::LICENSEES_WITH_INVOICES)?
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
        conn.prepare_cached(sql::INSERT_INVOICE)?.execute(params![
            seq,
            number,
            id,
            month,
            new.plan,
            new.total.currency.code(),
            change.at.0,
            date_text(new.due),
            lines,
            invoice_records(&new)?,
            new.total.minor
        ])?;
        let stored = invoices_by_seq(conn, seq)?
            .pop()
            .ok_or_else(|| unavailable(format!("invoice {number} vanished inside its own transaction")))?;
        append_billing_draft(conn, change, id, invoice_issued_entry(&new, &stored))?;
        outcome.issued.push(stored);
    }
    for (id, name) in touched {
        log_transitions(conn, id, &name, None, change, "the invoice run")?;
    }
    Ok(outcome)
}

fn invoices_by_seq(conn: &Connection, seq: i64) -> StoreResult<Vec<StoredInvoice>> {
    Ok(conn.prepare_cached(&sql::INVOICE_BY_SEQ)?.query_map([seq], invoice_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

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
    Ok(conn
        .prepare_cached(&sql::PAYMENTS_OF)?
        .query_map([licensee], payment_from_row)?
        .collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn record_payment(conn: &Connection, payment: NewPayment, change: &Change) -> StoreResult<PaymentRecorded> {
    let reference = payment_reference(&payment)?;
    let id = licensee_id(conn, &payment.licensee)?;
    let invoice = payment_invoice(&payment, id, invoices(conn, None, None, Some(payment.invoice.as_str()))?.pop())?;
    let earlier = conn
        .prepare_cached(&sql::PAYMENT_BY_REFERENCE)?
        .query_row(params![id, reference], payment_from_row)
        .optional()?;
    if let Some(repeat) = repeated_payment(&payment, reference, &invoice, earlier)? {
        return Ok(repeat);
    }
    let settled: i64 = conn.query_row(sql::SETTLED_TOWARDS, [&invoice.number], |row| row.get(0))?;
    let outstanding = payable(&payment, &invoice, settled)?;
    let before = suspension_at(conn, id, change.at)?;
    conn.prepare_cached(sql::INSERT_PAYMENT)?.execute(params![
        id,
        invoice.number,
        payment.amount.minor,
        payment.amount.currency.code(),
        reference,
        change.at.0
    ])?;
    let (recorded, entries, cause) = payment_recorded(&payment, reference, &invoice, outstanding, change.at);
    for entry in entries {
        append_billing_draft(conn, change, id, entry)?;
    }
    log_transitions(conn, id, &payment.licensee, before.as_ref(), change, &cause)?;
    Ok(PaymentRecorded { payment: recorded, new: true })
}

fn invoice_by_number(conn: &Connection, number: &str) -> StoreResult<StoredInvoice> {
    invoices(conn, None, None, Some(number))?.pop().ok_or_else(|| {
        StoreError::NotFound(format!("no invoice numbered {number:?}; `datapact invoice list` shows them"))
    })
}

pub(super) fn void_invoice(conn: &Connection, number: &str, why: &str, change: &Change) -> StoreResult<StoredInvoice> {
    let why = document_reason("voiding an invoice", why)?;
    let invoice = invoice_by_number(conn, number)?;
    let settlements: i64 = conn.query_row(sql::SETTLEMENTS_OF, [number], |row| row.get(0))?;
    voidable(&invoice, settlements)?;
    let before = suspension_at(conn, invoice.licensee_id, change.at)?;
    conn.execute(sql::VOID_INVOICE, params![number, change.at.0, why])?;
    let cause = format!("invoice {number} voided: {why}");
    append_draft(conn, change, AuditDraft::after("invoice.void", number, serde_json::json!({ "cause": cause })))?;
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause)?;
    invoice_by_number(conn, number)
}

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
    Ok(conn
        .prepare_cached(sql::CREDIT_NOTES_OF)?
        .query_map([licensee], credit_note_from_row)?
        .collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn issue_credit_note(
    conn: &Connection,
    note: NewCreditNote,
    change: &Change,
) -> StoreResult<StoredCreditNote> {
    let why = document_reason("a credit note", &note.reason)?;
    let invoice = invoice_by_number(conn, &note.invoice)?;
    let account = accounts(conn, Some(invoice.licensee_id))?
        .into_iter()
        .find(|a| a.account.number == invoice.number)
        .ok_or_else(|| unavailable(format!("invoice {} has no account", invoice.number)))?;
    let outstanding = account.account.outstanding(change.at);
    creditable(&note, &invoice, outstanding)?;
    let before = suspension_at(conn, invoice.licensee_id, change.at)?;
    // One writer at a time: the next number is the last plus one (the trigger holds it gapless).
    let seq: i64 = conn.query_row(sql::NEXT_CREDIT_NOTE, [], |row| row.get(0))?;
    let number = credit_note_number(seq);
    conn.prepare_cached(sql::INSERT_CREDIT_NOTE)?.execute(params![
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
        number,
        invoice: invoice.number.clone(),
        licensee: invoice.licensee.clone(),
        amount: note.amount,
        reason: why,
        issued_at: change.at,
    };
    let (entries, cause) = credit_note_entries(&issued, outstanding);
    for entry in entries {
        append_billing_draft(conn, change, invoice.licensee_id, entry)?;
    }
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause)?;
    Ok(issued)
}

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
    Ok(conn.prepare_cached(sql::CREDITS_OF)?.query_map([licensee], credit_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn add_credit(conn: &Connection, credit: NewCredit, change: &Change) -> StoreResult<CreditAdded> {
    let reference = reference("credit", &credit.reference)?;
    let id = licensee_id(conn, &credit.licensee)?;
    let earlier =
        conn.prepare_cached(sql::CREDIT_BY_REFERENCE)?.query_row(params![id, reference], credit_from_row).optional()?;
    if let Some(repeat) = repeated_credit(&credit, earlier)? {
        return Ok(repeat);
    }
    let other: Option<String> = conn
        .query_row(sql::CREDIT_OTHER_CURRENCY, params![id, credit.amount.currency.code()], |row| row.get(0))
        .optional()?;
    creditable_amount(&credit, other)?;
    conn.prepare_cached(sql::INSERT_CREDIT)?.execute(params![
        id,
        credit.amount.minor,
        credit.amount.currency.code(),
        reference,
        change.at.0
    ])?;
    let added = StoredCredit {
        licensee_id: id,
        licensee: credit.licensee.clone(),
        amount: credit.amount,
        reference: reference.to_owned(),
        added_at: change.at,
    };
    append_draft(conn, change, credit_entry(&added))?;
    Ok(CreditAdded { credit: added, new: true })
}

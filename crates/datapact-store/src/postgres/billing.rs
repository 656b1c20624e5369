//! Invoices, payments, credit notes and prepaid credits in PostgreSQL, as `sqlite/billing.rs`
//! does them: the decisions are `crate::shared`'s; every writer here runs in a transaction that
//! holds the writer lock, so the next invoice or credit note number, what is outstanding and the
//! dunning state read from the audit log cannot change before it commits. Billing's
//! notifications are raised in that same transaction.

use datapact_billing::{InvoiceAccount, InvoiceStatus, Money, Month, Payment, Suspension, suspension};
use datapact_core::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{append_audit, append_audit_seq, decode, pg, rows, webhooks};
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

/// The text at `index` read by `parse`.
fn parsed<T>(row: &PgRow, index: usize, parse: fn(&str) -> Result<T, String>) -> StoreResult<T> {
    let text: String = row.try_get(index)?;
    parse(&text).map_err(decode)
}

fn invoice_at(row: &PgRow) -> StoreResult<StoredInvoice> {
    let currency = parsed(row, 6, parse_currency)?;
    Ok(StoredInvoice {
        number: row.try_get(1)?,
        licensee_id: row.try_get(2)?,
        licensee: row.try_get(3)?,
        month: parsed(row, 4, parse_month)?,
        plan: row.try_get(5)?,
        currency,
        issued_at: Timestamp(row.try_get(7)?),
        due: parsed(row, 8, parse_date)?,
        lines: parsed(row, 9, parse_lines)?,
        records: row.try_get::<i64, _>(10)?.max(0) as u64,
        total: Money::new(currency, row.try_get(11)?),
        voided_at: row.try_get::<Option<i64>, _>(12)?.map(Timestamp),
    })
}

/// Invoices matching the filters, in number order.
pub(super) async fn invoices(
    conn: &mut PgConnection,
    licensee: Option<&str>,
    month: Option<Month>,
    number: Option<&str>,
) -> StoreResult<Vec<StoredInvoice>> {
    let found = sqlx::query(pg!(sql::INVOICES_WHERE))
        .bind(licensee)
        .bind(month.map(|m| m.to_string()))
        .bind(number)
        .fetch_all(conn)
        .await?;
    rows(found, invoice_at)
}

pub(super) async fn licensee_id(conn: &mut PgConnection, name: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT id FROM licensees WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| no_licensee_to_bill(name))
}

/// Every invoice of one licensee (or all), with its payments and credit notes.
pub(super) async fn accounts(conn: &mut PgConnection, licensee: Option<i64>) -> StoreResult<Vec<LicenseeAccount>> {
    let found = sqlx::query(pg!(sql::ACCOUNT_INVOICES)).bind(licensee).fetch_all(&mut *conn).await?;
    let mut accounts: Vec<(i64, LicenseeAccount)> = rows(found, |row| {
        let currency = parsed(row, 5, parse_currency)?;
        Ok((
            row.try_get::<i64, _>(0)?,
            LicenseeAccount {
                licensee_id: row.try_get(2)?,
                licensee: row.try_get(3)?,
                month: parsed(row, 4, parse_month)?,
                account: InvoiceAccount {
                    number: row.try_get(1)?,
                    total: Money::new(currency, row.try_get(6)?),
                    due: parsed(row, 7, parse_date)?,
                    voided_at: row.try_get::<Option<i64>, _>(8)?.map(Timestamp),
                    payments: Vec::new(),
                    credit_notes: Vec::new(),
                },
            },
        ))
    })?;
    let payments = sqlx::query(pg!(sql::ACCOUNT_PAYMENTS)).bind(licensee).fetch_all(&mut *conn).await?;
    for row in &payments {
        let seq: i64 = row.try_get(0)?;
        let amount = Money::new(parsed(row, 2, parse_currency)?, row.try_get(1)?);
        let at = Timestamp(row.try_get(3)?);
        // Invoices are sorted by seq, so a binary search finds the one paid.
        if let Ok(index) = accounts.binary_search_by_key(&seq, |(s, _)| *s) {
            accounts[index].1.account.payments.push(Payment { at, amount });
        }
    }
    let notes = sqlx::query(pg!(sql::ACCOUNT_CREDIT_NOTES)).bind(licensee).fetch_all(&mut *conn).await?;
    for row in &notes {
        let seq: i64 = row.try_get(0)?;
        let amount = Money::new(parsed(row, 2, parse_currency)?, row.try_get(1)?);
        let at = Timestamp(row.try_get(3)?);
        if let Ok(index) = accounts.binary_search_by_key(&seq, |(s, _)| *s) {
            accounts[index].1.account.credit_notes.push(Payment { at, amount });
        }
    }
    Ok(accounts.into_iter().map(|(_, account)| account).collect())
}

/// Whether the licensee is suspended at `at` under its grace days, and why.
async fn suspension_at(conn: &mut PgConnection, licensee_id: i64, at: Timestamp) -> StoreResult<Option<Suspension>> {
    let terms: Option<Option<String>> = sqlx::query_scalar("SELECT terms FROM licensees WHERE id = $1")
        .bind(licensee_id)
        .fetch_optional(&mut *conn)
        .await?;
    let grace = billing_terms_of(licensee_id, terms.flatten())?.grace_days;
    let invoices: Vec<InvoiceAccount> =
        accounts(conn, Some(licensee_id)).await?.into_iter().map(|a| a.account).collect();
    Ok(suspension(&invoices, grace, at))
}

/// Writes the licensee's dunning transitions not yet in the audit log (`shared::dunning_entries`),
/// and each of its invoices first seen overdue (once: its notification's key decides); returns
/// whether it wrote an entry.
async fn log_transitions(
    conn: &mut PgConnection,
    licensee_id: i64,
    name: &str,
    before: Option<&Suspension>,
    change: &Change,
    cause: &str,
) -> StoreResult<bool> {
    let mut wrote = false;
    for account in accounts(conn, Some(licensee_id)).await? {
        if account.account.status(change.at) == InvoiceStatus::Overdue {
            let draft = overdue_entry(&account.account, change.at, cause);
            let notification = notification_of(&draft, licensee_id, 0, change.at).expect("overdue is notified");
            if webhooks::notify(conn, &notification).await? {
                append_audit(conn, change, draft).await?;
                wrote = true;
            }
        }
    }
    let after = suspension_at(conn, licensee_id, change.at).await?;
    let last: Option<String> =
        sqlx::query_scalar(&last_transition_sql("$1")).bind(name).fetch_optional(&mut *conn).await?;
    let logged_suspended = last.as_deref() == Some("licensee.suspended");
    let entries = dunning_entries(name, logged_suspended, before, after.as_ref(), cause);
    wrote |= !entries.is_empty();
    for entry in entries {
        append_billing_draft(conn, change, licensee_id, entry).await?;
    }
    Ok(wrote)
}

/// Appends a billing audit entry and raises the notification it stands for, if any, in the same
/// transaction (suspended and reinstated keyed by the entry's `seq`).
async fn append_billing_draft(
    conn: &mut PgConnection,
    change: &Change,
    licensee_id: i64,
    draft: AuditDraft,
) -> StoreResult<()> {
    let seq = append_audit_seq(conn, change, draft.clone()).await?;
    if let Some(notification) = notification_of(&draft, licensee_id, seq, change.at) {
        webhooks::notify(conn, &notification).await?;
    }
    Ok(())
}

/// [`log_transitions`] for every licensee that has an invoice; the names of those with an entry written.
pub(super) async fn log_all_transitions(conn: &mut PgConnection, change: &Change) -> StoreResult<Vec<String>> {
    let found = sqlx::query(sql::LICENSEES_WITH_INVOICES).fetch_all(&mut *conn).await?;
    let licensees = rows(found, |row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?)))?;
    let mut logged = Vec::new();
    for (id, name) in licensees {
        if log_transitions(conn, id, &name, None, change, "the scheduled dunning check").await? {
            logged.push(name);
        }
    }
    Ok(logged)
}

async fn invoices_by_seq(conn: &mut PgConnection, seq: i64) -> StoreResult<Vec<StoredInvoice>> {
    rows(sqlx::query(pg!(sql::INVOICE_BY_SEQ)).bind(seq).fetch_all(conn).await?, invoice_at)
}

pub(super) async fn issue(
    conn: &mut PgConnection,
    invoices: Vec<NewInvoice>,
    change: &Change,
) -> StoreResult<InvoiceIssue> {
    let mut outcome = InvoiceIssue::default();
    let mut touched: Vec<(i64, String)> = Vec::new();
    for new in invoices {
        check_new_invoice(&new)?;
        let id = licensee_id(conn, &new.licensee).await?;
        if !touched.iter().any(|(t, _)| *t == id) {
            touched.push((id, new.licensee.clone()));
        }
        let month = new.month.to_string();
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM invoices WHERE licensee_id = $1 AND month = $2")
                .bind(id)
                .bind(&month)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(seq) = existing {
            outcome.existing.extend(invoices_by_seq(conn, seq).await?);
            continue;
        }
        // Under the writer lock: the next number is the last plus one, and the `invoices_gapless`
        // trigger holds every writer to it.
        let seq: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM invoices").fetch_one(&mut *conn).await?;
        let number = invoice_number(seq);
        let lines = serde_json::to_string(&new.lines).map_err(unavailable)?;
        sqlx::query(pg!(sql::INSERT_INVOICE))
            .bind(seq)
            .bind(&number)
            .bind(id)
            .bind(&month)
            .bind(&new.plan)
            .bind(new.total.currency.code())
            .bind(change.at.0)
            .bind(date_text(new.due))
            .bind(lines)
            .bind(invoice_records(&new)?)
            .bind(new.total.minor)
            .execute(&mut *conn)
            .await?;
        let stored = invoices_by_seq(conn, seq)
            .await?
            .pop()
            .ok_or_else(|| unavailable(format!("invoice {number} vanished inside its own transaction")))?;
        append_billing_draft(conn, change, id, invoice_issued_entry(&new, &stored)).await?;
        outcome.issued.push(stored);
    }
    for (id, name) in touched {
        log_transitions(conn, id, &name, None, change, "the invoice run").await?;
    }
    Ok(outcome)
}

fn payment_at(row: &PgRow) -> StoreResult<StoredPayment> {
    Ok(StoredPayment {
        licensee: row.try_get(0)?,
        invoice: row.try_get(1)?,
        amount: Money::new(parsed(row, 3, parse_currency)?, row.try_get(2)?),
        reference: row.try_get(4)?,
        received_at: Timestamp(row.try_get(5)?),
    })
}

pub(super) async fn payments(conn: &mut PgConnection, licensee: Option<&str>) -> StoreResult<Vec<StoredPayment>> {
    rows(sqlx::query(pg!(sql::PAYMENTS_OF)).bind(licensee).fetch_all(conn).await?, payment_at)
}

pub(super) async fn record_payment(
    conn: &mut PgConnection,
    payment: NewPayment,
    change: &Change,
) -> StoreResult<PaymentRecorded> {
    let reference = payment_reference(&payment)?;
    let id = licensee_id(conn, &payment.licensee).await?;
    let invoice = invoices(conn, None, None, Some(payment.invoice.as_str())).await?.pop();
    let invoice = payment_invoice(&payment, id, invoice)?;
    let earlier =
        sqlx::query(pg!(sql::PAYMENT_BY_REFERENCE)).bind(id).bind(reference).fetch_optional(&mut *conn).await?;
    let earlier = earlier.as_ref().map(payment_at).transpose()?;
    if let Some(repeat) = repeated_payment(&payment, reference, &invoice, earlier)? {
        return Ok(repeat);
    }
    let settled: i64 =
        sqlx::query_scalar(pg!(sql::SETTLED_TOWARDS)).bind(&invoice.number).fetch_one(&mut *conn).await?;
    let outstanding = payable(&payment, &invoice, settled)?;
    let before = suspension_at(conn, id, change.at).await?;
    sqlx::query(pg!(sql::INSERT_PAYMENT))
        .bind(id)
        .bind(&invoice.number)
        .bind(payment.amount.minor)
        .bind(payment.amount.currency.code())
        .bind(reference)
        .bind(change.at.0)
        .execute(&mut *conn)
        .await?;
    let (recorded, entries, cause) = payment_recorded(&payment, reference, &invoice, outstanding, change.at);
    for entry in entries {
        append_billing_draft(conn, change, id, entry).await?;
    }
    log_transitions(conn, id, &payment.licensee, before.as_ref(), change, &cause).await?;
    Ok(PaymentRecorded { payment: recorded, new: true })
}

async fn invoice_by_number(conn: &mut PgConnection, number: &str) -> StoreResult<StoredInvoice> {
    invoices(conn, None, None, Some(number)).await?.pop().ok_or_else(|| {
        StoreError::NotFound(format!("no invoice numbered {number:?}; `datapact invoice list` shows them"))
    })
}

pub(super) async fn void_invoice(
    conn: &mut PgConnection,
    number: &str,
    why: &str,
    change: &Change,
) -> StoreResult<StoredInvoice> {
    let why = document_reason("voiding an invoice", why)?;
    let invoice = invoice_by_number(conn, number).await?;
    let settlements: i64 = sqlx::query_scalar(pg!(sql::SETTLEMENTS_OF)).bind(number).fetch_one(&mut *conn).await?;
    voidable(&invoice, settlements)?;
    let before = suspension_at(conn, invoice.licensee_id, change.at).await?;
    sqlx::query(pg!(sql::VOID_INVOICE)).bind(number).bind(change.at.0).bind(&why).execute(&mut *conn).await?;
    let cause = format!("invoice {number} voided: {why}");
    let entry = AuditDraft::after("invoice.void", number, serde_json::json!({ "cause": cause }));
    append_audit(conn, change, entry).await?;
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause).await?;
    invoice_by_number(conn, number).await
}

fn credit_note_at(row: &PgRow) -> StoreResult<StoredCreditNote> {
    Ok(StoredCreditNote {
        number: row.try_get(0)?,
        invoice: row.try_get(1)?,
        licensee: row.try_get(2)?,
        amount: Money::new(parsed(row, 4, parse_currency)?, row.try_get(3)?),
        reason: row.try_get(5)?,
        issued_at: Timestamp(row.try_get(6)?),
    })
}

pub(super) async fn credit_notes(
    conn: &mut PgConnection,
    licensee: Option<&str>,
) -> StoreResult<Vec<StoredCreditNote>> {
    rows(sqlx::query(pg!(sql::CREDIT_NOTES_OF)).bind(licensee).fetch_all(conn).await?, credit_note_at)
}

pub(super) async fn issue_credit_note(
    conn: &mut PgConnection,
    note: NewCreditNote,
    change: &Change,
) -> StoreResult<StoredCreditNote> {
    let why = document_reason("a credit note", &note.reason)?;
    let invoice = invoice_by_number(conn, &note.invoice).await?;
    let account = accounts(conn, Some(invoice.licensee_id))
        .await?
        .into_iter()
        .find(|a| a.account.number == invoice.number)
        .ok_or_else(|| unavailable(format!("invoice {} has no account", invoice.number)))?;
    let outstanding = account.account.outstanding(change.at);
    creditable(&note, &invoice, outstanding)?;
    let before = suspension_at(conn, invoice.licensee_id, change.at).await?;
    // Under the writer lock: the next number is the last plus one (the trigger holds it gapless).
    let seq: i64 = sqlx::query_scalar(sql::NEXT_CREDIT_NOTE).fetch_one(&mut *conn).await?;
    let number = credit_note_number(seq);
    sqlx::query(pg!(sql::INSERT_CREDIT_NOTE))
        .bind(seq)
        .bind(&number)
        .bind(&invoice.number)
        .bind(invoice.licensee_id)
        .bind(note.amount.minor)
        .bind(note.amount.currency.code())
        .bind(&why)
        .bind(change.at.0)
        .execute(&mut *conn)
        .await?;
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
        append_billing_draft(conn, change, invoice.licensee_id, entry).await?;
    }
    log_transitions(conn, invoice.licensee_id, &invoice.licensee, before.as_ref(), change, &cause).await?;
    Ok(issued)
}

fn credit_at(row: &PgRow) -> StoreResult<StoredCredit> {
    Ok(StoredCredit {
        licensee_id: row.try_get(0)?,
        licensee: row.try_get(1)?,
        amount: Money::new(parsed(row, 3, parse_currency)?, row.try_get(2)?),
        reference: row.try_get(4)?,
        added_at: Timestamp(row.try_get(5)?),
    })
}

pub(super) async fn credits(conn: &mut PgConnection, licensee: Option<&str>) -> StoreResult<Vec<StoredCredit>> {
    rows(sqlx::query(pg!(sql::CREDITS_OF)).bind(licensee).fetch_all(conn).await?, credit_at)
}

pub(super) async fn add_credit(
    conn: &mut PgConnection,
    credit: NewCredit,
    change: &Change,
) -> StoreResult<CreditAdded> {
    let reference = reference("credit", &credit.reference)?;
    let id = licensee_id(conn, &credit.licensee).await?;
    let earlier =
        sqlx::query(pg!(sql::CREDIT_BY_REFERENCE)).bind(id).bind(reference).fetch_optional(&mut *conn).await?;
    let earlier = earlier.as_ref().map(credit_at).transpose()?;
    if let Some(repeat) = repeated_credit(&credit, earlier)? {
        return Ok(repeat);
    }
    let other: Option<String> = sqlx::query_scalar(pg!(sql::CREDIT_OTHER_CURRENCY))
        .bind(id)
        .bind(credit.amount.currency.code())
        .fetch_optional(&mut *conn)
        .await?;
    creditable_amount(&credit, other)?;
    sqlx::query(pg!(sql::INSERT_CREDIT))
        .bind(id)
        .bind(credit.amount.minor)
        .bind(credit.amount.currency.code())
        .bind(reference)
        .bind(change.at.0)
        .execute(&mut *conn)
        .await?;
    let added = StoredCredit {
        licensee_id: id,
        licensee: credit.licensee.clone(),
        amount: credit.amount,
        reference: reference.to_owned(),
        added_at: change.at,
    };
    append_audit(conn, change, credit_entry(&added)).await?;
    Ok(CreditAdded { credit: added, new: true })
}

//! Dunning: an invoice's status from its due date, payments and `now`; when a licensee is suspended.
//!
//! Rules (all instants UTC, `now` passed in):
//!
//! - An invoice is **due** on its due date, [`due_date`] = issue date + `payment_terms_days`, and may be paid until
//!   the end of that day; from the first instant of the next day ([`overdue_from`]) an unpaid invoice is overdue.
//! - Its **status** at `now`: `void` if voided at or before `now`; else `paid` if the payments received and the
//!   credit notes issued against it at or before `now` add up to its total or more (an invoice of zero is paid from
//!   the start); else `overdue` from [`overdue_from`]; else `open`. A credit note is a correction: it lowers what is
//!   owed without anything being paid, and the invoice itself is never edited.
//! - A licensee is **suspended** at `now` while any of its invoices is overdue at `now` and `now` is at or after
//!   [`suspended_from`] = the first instant after `grace_days` whole days of being overdue (due date + 1 +
//!   `grace_days`, at midnight). With `grace_days = 0` it is suspended as soon as an invoice is overdue. Paying the
//!   overdue invoices in full (or voiding them) lifts the suspension at once: nothing is remembered.

use chrono::{Days, NaiveDate};
use datapact_core::Timestamp;
use serde::Serialize;

use crate::money::Money;

/// A payment towards one invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// When it was received.
    pub at: Timestamp,
    /// How much (in the invoice's currency; a payment in another currency pays nothing towards it). Negative
    /// amounts are refunds.
    pub amount: Money,
}

/// An invoice's status at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Issued, not yet paid in full, not past its due date.
    Open,
    /// Paid in full.
    Paid,
    /// Not paid in full after its due date.
    Overdue,
    /// Voided (replaced by a credit note, or issued in error).
    Void,
}

impl InvoiceStatus {
    /// The name: `open`, `paid`, `overdue`, `void`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Overdue => "overdue",
            InvoiceStatus::Void => "void",
        }
    }
}

/// An issued invoice as dunning sees it: what is owed, by when, and what was paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceAccount {
    /// The invoice number.
    pub number: String,
    /// The invoice's total.
    pub total: Money,
    /// The due date (see [`due_date`]).
    pub due: NaiveDate,
    /// When it was voided, if it was.
    pub voided_at: Option<Timestamp>,
    /// Payments towards it, in any order.
    pub payments: Vec<Payment>,
    /// Credit notes issued against it (each lowers what is owed), in any order.
    #[serde(default)]
    pub credit_notes: Vec<Payment>,
}

/// The due date of an invoice issued on `issued` under `payment_terms_days` (saturating at the last date chrono
/// knows).
pub fn due_date(issued: NaiveDate, payment_terms_days: u32) -> NaiveDate {
    issued.checked_add_days(Days::new(u64::from(payment_terms_days))).unwrap_or(NaiveDate::MAX)
}

/// UTC midnight at the start of `day`.
fn start_of(day: NaiveDate) -> Timestamp {
    Timestamp::from_datetime(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

/// The first instant an unpaid invoice due on `due` is overdue: midnight after the due date.
pub fn overdue_from(due: NaiveDate) -> Timestamp {
    start_of(due.succ_opt().unwrap_or(NaiveDate::MAX))
}

/// The first instant an unpaid invoice due on `due` suspends its licensee: midnight after `grace_days` whole days
/// of being overdue.
pub fn suspended_from(due: NaiveDate, grace_days: u32) -> Timestamp {
    start_of(due.checked_add_days(Days::new(u64::from(grace_days) + 1)).unwrap_or(NaiveDate::MAX))
}

impl InvoiceAccount {
    /// What was paid towards the invoice by `now`, in minor units (payments in its currency received at or before
    /// `now`; an `i128` so no number of payments overflows).
    pub fn paid_by(&self, now: Timestamp) -> i128 {
        self.payments
            .iter()
            .filter(|p| p.at <= now && p.amount.currency == self.total.currency)
            .map(|p| i128::from(p.amount.minor))
            .sum()
    }

    /// What credit notes took off the invoice by `now`, in minor units.
    pub fn credited_by(&self, now: Timestamp) -> i128 {
        self.credit_notes
            .iter()
            .filter(|c| c.at <= now && c.amount.currency == self.total.currency)
            .map(|c| i128::from(c.amount.minor))
            .sum()
    }

    /// What is still owed at `now`: the total less payments and credit notes (zero or more; overpayment is not
    /// credited here).
    pub fn outstanding(&self, now: Timestamp) -> Money {
        let owed = (i128::from(self.total.minor) - self.paid_by(now) - self.credited_by(now)).max(0);
        Money::new(self.total.currency, i64::try_from(owed).unwrap_or(i64::MAX))
    }

    /// The status at `now` (see the module's rules).
    pub fn status(&self, now: Timestamp) -> InvoiceStatus {
        if self.voided_at.is_some_and(|v| v <= now) {
            InvoiceStatus::Void
        } else if self.paid_by(now) + self.credited_by(now) >= i128::from(self.total.minor) {
            InvoiceStatus::Paid
        } else if now >= overdue_from(self.due) {
            InvoiceStatus::Overdue
        } else {
            InvoiceStatus::Open
        }
    }
}

/// An overdue invoice past its grace period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverdueInvoice {
    /// The invoice number.
    pub number: String,
    /// Its due date.
    pub due: NaiveDate,
    /// What is still owed.
    pub outstanding: Money,
    /// When it began to suspend the licensee.
    pub suspended_from: Timestamp,
}

/// Why a licensee is suspended: every invoice overdue past its grace period, by due date then number (what the 402
/// `payment-required` problem names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suspension {
    /// The invoices, never empty.
    pub invoices: Vec<OverdueInvoice>,
}

/// Whether a licensee with these invoices and `grace_days` is suspended at `now`, and why.
///
/// ```
/// use datapact_billing::{Currency, InvoiceAccount, InvoiceStatus, Money, Payment, due_date, suspension};
/// use datapact_core::Timestamp;
///
/// let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
/// let mut invoice = InvoiceAccount {
///     number: "DP-2026-12-0001".into(),
///     total: Money::parse(Currency::Usd, "218.51").unwrap(),
///     due: due_date("2027-01-01".parse().unwrap(), 30), // 2027-01-31
///     voided_at: None,
///     payments: vec![],
///     credit_notes: vec![],
/// };
/// assert_eq!(invoice.status(t("2027-01-31T23:59:59Z")), InvoiceStatus::Open);
/// assert_eq!(invoice.status(t("2027-02-01T00:00:00Z")), InvoiceStatus::Overdue);
/// // 15 days of grace: overdue on Feb 1 … Feb 15, suspended from Feb 16.
/// assert!(suspension(&[invoice.clone()], 15, t("2027-02-15T23:59:59Z")).is_none());
/// let why = suspension(&[invoice.clone()], 15, t("2027-02-16T00:00:00Z")).unwrap();
/// assert_eq!(why.invoices[0].number, "DP-2026-12-0001");
/// // Paying in full lifts it.
/// invoice.payments.push(Payment { at: t("2027-02-20T10:00:00Z"), amount: invoice.total });
/// assert!(suspension(&[invoice.clone()], 15, t("2027-02-20T10:00:00Z")).is_none());
/// assert_eq!(invoice.status(t("2027-02-20T10:00:00Z")), InvoiceStatus::Paid);
/// ```
pub fn suspension(invoices: &[InvoiceAccount], grace_days: u32, now: Timestamp) -> Option<Suspension> {
    let mut overdue: Vec<OverdueInvoice> = invoices
        .iter()
        .filter(|i| i.status(now) == InvoiceStatus::Overdue && now >= suspended_from(i.due, grace_days))
        .map(|i| OverdueInvoice {
            number: i.number.clone(),
            due: i.due,
            outstanding: i.outstanding(now),
            suspended_from: suspended_from(i.due, grace_days),
        })
        .collect();
    overdue.sort_by(|a, b| (a.due, &a.number).cmp(&(b.due, &b.number)));
    (!overdue.is_empty()).then_some(Suspension { invoices: overdue })
}

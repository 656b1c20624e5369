//! Dunning: invoice status and suspension, by example and by property.

use chrono::{Days, NaiveDate};
use datapact_billing::*;
use datapact_core::Timestamp;
use proptest::prelude::*;

const DAY_MS: i64 = 86_400_000;

fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn usd(minor: i64) -> Money {
    Money::new(Currency::Usd, minor)
}

fn account(number: &str, total: i64, due: &str) -> InvoiceAccount {
    InvoiceAccount {
        number: number.into(),
        total: usd(total),
        due: due.parse().unwrap(),
        voided_at: None,
        payments: vec![],
        credit_notes: vec![],
    }
}

#[test]
fn status_follows_due_date_payments_and_void() {
    let mut inv = account("A-1", 10_000, "2027-01-31");
    assert_eq!(due_date("2027-01-01".parse().unwrap(), 30).to_string(), "2027-01-31");
    assert_eq!(inv.status(t("2027-01-05T00:00:00Z")), InvoiceStatus::Open);
    assert_eq!(inv.status(t("2027-01-31T23:59:59.999Z")), InvoiceStatus::Open, "payable all of the due date");
    assert_eq!(inv.status(t("2027-02-01T00:00:00Z")), InvoiceStatus::Overdue);
    inv.payments.push(Payment { at: t("2027-02-03T09:00:00Z"), amount: usd(4_000) });
    assert_eq!(inv.status(t("2027-02-04T00:00:00Z")), InvoiceStatus::Overdue, "a partial payment is not enough");
    assert_eq!(inv.outstanding(t("2027-02-04T00:00:00Z")), usd(6_000));
    inv.payments.push(Payment { at: t("2027-02-05T09:00:00Z"), amount: Money::new(Currency::Eur, 6_000) });
    assert_eq!(inv.status(t("2027-02-06T00:00:00Z")), InvoiceStatus::Overdue, "another currency pays nothing");
    inv.payments.push(Payment { at: t("2027-02-05T10:00:00Z"), amount: usd(6_000) });
    assert_eq!(inv.status(t("2027-02-05T09:59:59Z")), InvoiceStatus::Overdue);
    assert_eq!(inv.status(t("2027-02-05T10:00:00Z")), InvoiceStatus::Paid);
    assert_eq!(inv.outstanding(t("2027-02-05T10:00:00Z")), usd(0));
    inv.voided_at = Some(t("2027-03-01T00:00:00Z"));
    assert_eq!(inv.status(t("2027-03-01T00:00:00Z")), InvoiceStatus::Void);
    // A credit note lowers what is owed; with the payments it settles the invoice.
    let mut corrected = account("A-3", 10_000, "2027-01-31");
    corrected.payments.push(Payment { at: t("2027-02-03T09:00:00Z"), amount: usd(7_000) });
    corrected.credit_notes.push(Payment { at: t("2027-02-04T09:00:00Z"), amount: usd(3_000) });
    assert_eq!(corrected.outstanding(t("2027-02-04T08:00:00Z")), usd(3_000));
    assert_eq!(corrected.status(t("2027-02-04T08:00:00Z")), InvoiceStatus::Overdue);
    assert_eq!(corrected.status(t("2027-02-04T09:00:00Z")), InvoiceStatus::Paid);
    assert_eq!(account("Z", 0, "2027-01-01").status(t("2027-06-01T00:00:00Z")), InvoiceStatus::Paid, "nothing owed");
}

#[test]
fn grace_days_delay_suspension() {
    let invoices = [account("A-2", 500, "2027-01-31"), account("A-1", 500, "2027-01-10")];
    assert_eq!(suspended_from("2027-01-31".parse().unwrap(), 15), t("2027-02-16T00:00:00Z"));
    assert_eq!(overdue_from("2027-01-31".parse().unwrap()), t("2027-02-01T00:00:00Z"));
    assert!(suspension(&invoices, 15, t("2027-01-25T23:59:59Z")).is_none());
    let s = suspension(&invoices, 15, t("2027-01-26T00:00:00Z")).unwrap();
    assert_eq!(s.invoices.iter().map(|i| i.number.as_str()).collect::<Vec<_>>(), ["A-1"]);
    let s = suspension(&invoices, 15, t("2027-02-16T00:00:00Z")).unwrap();
    assert_eq!(s.invoices.iter().map(|i| i.number.as_str()).collect::<Vec<_>>(), ["A-1", "A-2"], "by due date");
    assert!(suspension(&invoices, 0, t("2027-01-11T00:00:00Z")).is_some(), "no grace: suspended once overdue");
    assert!(suspension(&invoices, 0, t("2027-01-10T23:59:59Z")).is_none());
}

fn due() -> impl Strategy<Value = NaiveDate> {
    (0u64..60).prop_map(|n| NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + Days::new(n))
}

fn base_ms() -> i64 {
    t("2027-01-01T00:00:00Z").millis()
}

fn instant() -> impl Strategy<Value = Timestamp> {
    (0i64..(120 * DAY_MS)).prop_map(|ms| Timestamp::from_millis(base_ms() + ms))
}

fn invoice() -> impl Strategy<Value = InvoiceAccount> {
    (
        0i64..20_000,
        due(),
        prop::option::weighted(0.1, instant()),
        prop::collection::vec((instant(), 0i64..12_000), 0..4),
        prop::collection::vec((instant(), 0i64..6_000), 0..2),
    )
        .prop_map(|(total, due, voided_at, payments, credit_notes)| InvoiceAccount {
            number: format!("N-{due}-{total}"),
            total: usd(total),
            due,
            voided_at,
            payments: payments.into_iter().map(|(at, minor)| Payment { at, amount: usd(minor) }).collect(),
            credit_notes: credit_notes.into_iter().map(|(at, minor)| Payment { at, amount: usd(minor) }).collect(),
        })
}

proptest! {
    #[test]
    fn status_is_exactly_the_rules(inv in invoice(), now in instant()) {
        // Payments and credit notes both settle what is owed.
        let paid: i64 = inv.payments.iter().chain(&inv.credit_notes).filter(|p| p.at <= now).map(|p| p.amount.minor).sum();
        let expected = if inv.voided_at.is_some_and(|v| v <= now) {
            InvoiceStatus::Void
        } else if paid >= inv.total.minor {
            InvoiceStatus::Paid
        } else if now.millis() >= overdue_from(inv.due).millis() {
            InvoiceStatus::Overdue
        } else {
            InvoiceStatus::Open
        };
        prop_assert_eq!(inv.status(now), expected);
        prop_assert!(inv.outstanding(now).minor >= 0);
        prop_assert_eq!(inv.outstanding(now).minor == 0, paid >= inv.total.minor);
    }

    /// Without new payments, time only makes things worse: overdue stays overdue and a suspension stays.
    #[test]
    fn overdue_and_suspension_persist_without_payment(
        mut invoices in prop::collection::vec(invoice(), 1..4),
        grace in 0u32..20,
        now in instant(),
        later in 0i64..(30 * DAY_MS),
    ) {
        for inv in &mut invoices {
            inv.voided_at = None;
            inv.payments.retain(|p| p.at <= now);
            inv.credit_notes.retain(|c| c.at <= now);
        }
        let then = now.plus_millis(later);
        for inv in &invoices {
            if inv.status(now) == InvoiceStatus::Overdue {
                prop_assert_eq!(inv.status(then), InvoiceStatus::Overdue);
            }
        }
        if let Some(s) = suspension(&invoices, grace, now) {
            let s_then = suspension(&invoices, grace, then).unwrap();
            for i in &s.invoices {
                prop_assert!(s_then.invoices.iter().any(|j| j.number == i.number));
            }
        }
    }

    /// Suspended exactly when an invoice is overdue past its grace days; never sooner; paying lifts it.
    #[test]
    fn suspension_is_overdue_past_grace_and_paying_lifts_it(
        mut invoices in prop::collection::vec(invoice(), 1..4),
        grace in 0u32..20,
        now in instant(),
    ) {
        let expected = invoices
            .iter()
            .any(|i| i.status(now) == InvoiceStatus::Overdue && now >= suspended_from(i.due, grace));
        let s = suspension(&invoices, grace, now);
        prop_assert_eq!(s.is_some(), expected);
        if let Some(s) = &s {
            for i in &s.invoices {
                prop_assert!(i.outstanding.minor > 0);
                prop_assert!(now.millis() - overdue_from(i.due).millis() >= i64::from(grace) * DAY_MS);
            }
        }
        if grace == 0 {
            let overdue = invoices.iter().any(|i| i.status(now) == InvoiceStatus::Overdue);
            prop_assert_eq!(s.is_some(), overdue);
        }
        // Pay every outstanding invoice in full at `now`: no longer suspended, at `now` or ever after.
        for inv in &mut invoices {
            let owed = inv.outstanding(now);
            if owed.minor > 0 {
                inv.payments.push(Payment { at: now, amount: owed });
            }
            inv.payments.retain(|p| p.at <= now);
        }
        prop_assert!(suspension(&invoices, grace, now).is_none());
        prop_assert!(suspension(&invoices, grace, now.plus_millis(365 * DAY_MS)).is_none());
    }
}

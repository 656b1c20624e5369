//! Invoices and payments in every store (SQLite and PostgreSQL, `stores::store_tests!`): idempotent runs, gapless numbers, payments
//! idempotent by reference, overpayment refused, issued invoices immutable, audit entries; credit notes (gapless, at
//! most what is outstanding, immutable, reinstating) and voiding; billing's notifications, each raised once in the
//! transaction of the change that causes it.

use chrono::NaiveDate;
use datapact_billing::InvoiceStatus;
use datapact_billing::{Charge, Currency, InvoiceLine, Money, Month};
use datapact_core::Timestamp;
use datapact_store::notify::{NewWebhook, NotificationKind};
use datapact_store::{Change, NewCreditNote, NewInvoice, NewPayment, Store, StoreError, TermsChange};
use stores::TestStore;

mod stores;

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn by(when: &str) -> Change {
    Change::new("test", at(when))
}

fn usd(text: &str) -> Money {
    Money::parse(Currency::Usd, text).unwrap()
}

const ISSUED: &str = "2027-01-02T09:00:00Z";

/// A December invoice of `total` for `licensee`: a full-month fee line and an overage line.
/// A January invoice of a full-month fee for `licensee`, due 2027-02-12.
fn january(licensee: &str, fee: &str) -> NewInvoice {
    let fee = usd(fee);
    NewInvoice {
        licensee: licensee.into(),
        month: Month::new(2027, 1).unwrap(),
        plan: "basic".into(),
        total: fee,
        lines: vec![InvoiceLine {
            first_day: day("2027-01-01"),
            last_day: day("2027-01-31"),
            charge: Charge::BaseFee { monthly_fee: fee, days: 31, days_in_month: 31 },
            amount: fee,
        }],
        records: 0,
        due: day("2027-02-12"),
    }
}

fn december(licensee: &str, fee: &str, overage: &str) -> NewInvoice {
    let month = Month::new(2026, 12).unwrap();
    let fee = usd(fee);
    let overage = usd(overage);
    let lines = vec![
        InvoiceLine {
            first_day: day("2026-12-01"),
            last_day: day("2026-12-31"),
            charge: Charge::BaseFee { monthly_fee: fee, days: 31, days_in_month: 31 },
            amount: fee,
        },
        InvoiceLine {
            first_day: day("2026-12-20"),
            last_day: day("2026-12-20"),
            charge: Charge::Overage { records: 7, per_1000: datapact_billing::Rate::parse("1000").unwrap() },
            amount: overage,
        },
    ];
    NewInvoice {
        licensee: licensee.into(),
        month,
        plan: "basic".into(),
        total: fee.checked_add(overage).unwrap(),
        lines,
        records: 7,
        due: day("2027-01-12"),
    }
}

async fn with_licensees(store: &dyn Store, names: &[&str]) {
    for name in names {
        store.create_licensee(name, &by("2026-11-01T00:00:00Z")).await.unwrap();
    }
}

async fn invoice_runs_are_idempotent_and_numbered_without_gaps(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    let counter = store.change_counter().await.unwrap();

    let first = store
        .issue_invoices(vec![december("acme", "100.00", "7.00"), december("globex", "50.00", "0.00")], &by(ISSUED))
        .await
        .unwrap();
    let numbers: Vec<&str> = first.issued.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["DP-000001", "DP-000002"]);
    assert!(first.existing.is_empty());
    assert_eq!(first.issued[0].total, usd("107.00"));
    assert_eq!(first.issued[0].issued_at, at(ISSUED));
    assert_eq!(first.issued[0].due, day("2027-01-12"));
    assert_eq!(first.issued[0].lines, december("acme", "100.00", "7.00").lines, "lines read back as issued");
    assert!(store.change_counter().await.unwrap() > counter, "invoices decide 402s: gateways must reload");

    // A second run for the same month (even with other amounts) issues nothing for those licensees;
    // a new month gets the next number.
    let mut november = december("acme", "1.00", "0.00");
    november.month = Month::new(2026, 11).unwrap();
    let second = store
        .issue_invoices(
            vec![december("acme", "999.00", "1.00"), december("globex", "50.00", "0.00"), november],
            &by("2027-01-03T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(second.issued.iter().map(|i| i.number.as_str()).collect::<Vec<_>>(), ["DP-000003"]);
    assert_eq!(second.existing.iter().map(|i| i.number.as_str()).collect::<Vec<_>>(), ["DP-000001", "DP-000002"]);
    assert_eq!(second.existing[0].total, usd("107.00"), "the existing invoice is left as it was");

    // A batch with one bad invoice issues nothing at all (one transaction), so no number is lost.
    let mut bad = december("acme", "10.00", "1.00");
    bad.month = Month::new(2027, 1).unwrap();
    bad.total = usd("12.00");
    let mut good = december("globex", "10.00", "0.00");
    good.month = Month::new(2027, 1).unwrap();
    let error = store.issue_invoices(vec![good.clone(), bad], &by(ISSUED)).await.unwrap_err();
    assert!(matches!(&error, StoreError::Invalid(m) if m.contains("sum to 1100")), "{error}");
    let mut unknown = good.clone();
    unknown.licensee = "nobody".into();
    assert!(matches!(store.issue_invoices(vec![unknown], &by(ISSUED)).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.invoices(None, None).await.unwrap().len(), 3);
    let third = store.issue_invoices(vec![good], &by(ISSUED)).await.unwrap();
    assert_eq!(third.issued[0].number, "DP-000004", "no gap after a refused batch");

    let acme: Vec<String> = store.invoices(Some("acme"), None).await.unwrap().into_iter().map(|i| i.number).collect();
    assert_eq!(acme, ["DP-000001", "DP-000003"]);
    let dec = store.invoices(None, Some(Month::new(2026, 12).unwrap())).await.unwrap();
    assert_eq!(dec.iter().map(|i| i.licensee.as_str()).collect::<Vec<_>>(), ["acme", "globex"]);
    assert_eq!(store.invoice("DP-000002").await.unwrap().unwrap().licensee, "globex");
    assert!(store.invoice("DP-000099").await.unwrap().is_none());
}

fn payment(licensee: &str, invoice: &str, amount: Money, reference: &str) -> NewPayment {
    NewPayment { licensee: licensee.into(), invoice: invoice.into(), amount, reference: reference.into() }
}

async fn payments_are_idempotent_by_reference_and_never_exceed_what_is_owed(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    store
        .issue_invoices(vec![december("acme", "100.00", "0.00"), december("globex", "5.00", "0.00")], &by(ISSUED))
        .await
        .unwrap();
    let paid_at = "2027-01-05T10:00:00Z";

    let first = store.record_payment(payment("acme", "DP-000001", usd("30.00"), "wire-1"), &by(paid_at)).await.unwrap();
    assert!(first.new);
    assert_eq!(first.payment.received_at, at(paid_at));
    // The same payment again (a retry, a statement imported twice): the first one, nothing new.
    let again = store
        .record_payment(payment("acme", "DP-000001", usd("30.00"), "wire-1"), &by("2027-01-06T00:00:00Z"))
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.payment, first.payment);
    assert_eq!(store.payments(Some("acme")).await.unwrap().len(), 1);

    // The same reference for another amount or invoice is a conflict, never a second payment.
    let conflict =
        store.record_payment(payment("acme", "DP-000001", usd("31.00"), "wire-1"), &by(paid_at)).await.unwrap_err();
    assert!(
        matches!(&conflict, StoreError::Conflict(m) if m.contains("wire-1") && m.contains("30.00 USD") && m.contains("DP-000001")),
        "{conflict}"
    );
    // Another licensee may use the same reference text for its own payment.
    store.record_payment(payment("globex", "DP-000002", usd("5.00"), "wire-1"), &by(paid_at)).await.unwrap();

    // More than is outstanding is refused, saying how much is.
    let over =
        store.record_payment(payment("acme", "DP-000001", usd("70.01"), "wire-2"), &by(paid_at)).await.unwrap_err();
    assert!(matches!(&over, StoreError::Invalid(m) if m.contains("70.00 USD outstanding")), "{over}");
    let partial =
        store.record_payment(payment("acme", "DP-000001", usd("70.00"), "wire-2"), &by(paid_at)).await.unwrap();
    assert!(partial.new);
    let full =
        store.record_payment(payment("acme", "DP-000001", usd("0.01"), "wire-3"), &by(paid_at)).await.unwrap_err();
    assert!(matches!(&full, StoreError::Invalid(m) if m.contains("already paid in full")), "{full}");

    // Wrong currency, wrong licensee, unknown invoice, empty reference, zero.
    let eur = Money::parse(Currency::Eur, "1.00").unwrap();
    let errors = [
        store.record_payment(payment("globex", "DP-000001", usd("1.00"), "x1"), &by(paid_at)).await.unwrap_err(),
        store.record_payment(payment("acme", "DP-000009", usd("1.00"), "x2"), &by(paid_at)).await.unwrap_err(),
        store.record_payment(payment("acme", "DP-000001", usd("1.00"), "  "), &by(paid_at)).await.unwrap_err(),
        store.record_payment(payment("acme", "DP-000001", usd("0.00"), "x3"), &by(paid_at)).await.unwrap_err(),
        store.record_payment(payment("nobody", "DP-000001", usd("1.00"), "x4"), &by(paid_at)).await.unwrap_err(),
    ];
    assert!(matches!(&errors[0], StoreError::Invalid(m) if m.contains("acme's, not globex's")), "{}", errors[0]);
    assert!(matches!(&errors[1], StoreError::NotFound(m) if m.contains("DP-000009")), "{}", errors[1]);
    assert!(matches!(&errors[2], StoreError::Invalid(m) if m.contains("reference")), "{}", errors[2]);
    assert!(matches!(&errors[3], StoreError::Invalid(_)), "{}", errors[3]);
    assert!(matches!(&errors[4], StoreError::NotFound(_)), "{}", errors[4]);
    let mut globex_invoice = december("globex", "5.00", "0.00");
    globex_invoice.month = Month::new(2027, 1).unwrap();
    store.issue_invoices(vec![globex_invoice], &by(ISSUED)).await.unwrap();
    let in_euros = store.record_payment(payment("globex", "DP-000003", eur, "x5"), &by(paid_at)).await.unwrap_err();
    assert!(matches!(&in_euros, StoreError::Invalid(m) if m.contains("in USD")), "{in_euros}");

    let payments = store.payments(None).await.unwrap();
    assert_eq!(payments.len(), 3);
    let accounts = store.invoice_accounts(Some("acme")).await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account.paid_by(at(paid_at)), 10_000);
    assert_eq!(accounts[0].account.status(at(paid_at)), datapact_billing::InvoiceStatus::Paid);
    assert!(matches!(store.invoice_accounts(Some("nobody")).await, Err(StoreError::NotFound(_))));
}

async fn issued_invoices_and_payments_are_immutable(store: &TestStore) {
    with_licensees(&**store, &["acme"]).await;
    store.issue_invoices(vec![december("acme", "100.00", "7.00")], &by(ISSUED)).await.unwrap();
    store.record_payment(payment("acme", "DP-000001", usd("1.00"), "r1"), &by(ISSUED)).await.unwrap();
    let refused = async |sql: &str| {
        let error = store.execute_raw(sql).await.expect_err(sql);
        assert!(
            ["never changed", "never deleted", "gapless"].iter().any(|m| error.contains(m)),
            "{sql}: unexpected error {error}"
        );
    };
    refused("UPDATE invoices SET total_minor = 1 WHERE seq = 1").await;
    refused("UPDATE invoices SET lines = '[]' WHERE seq = 1").await;
    refused("UPDATE invoices SET due = '2030-01-01' WHERE seq = 1").await;
    refused("UPDATE invoices SET records = 0, voided_at = 5 WHERE seq = 1").await; // voiding cannot hide an edit
    refused("DELETE FROM invoices").await;
    refused("UPDATE payments SET amount_minor = 1").await;
    refused("DELETE FROM payments").await;
    refused(
        "INSERT INTO invoices (seq, number, licensee_id, month, plan, currency, issued_at, due, lines, records, total_minor)
         VALUES (3, 'DP-000003', 1, '2027-01', 'basic', 'USD', 0, '2027-01-12', '[]', 0, 0)",
    )
    .await;
    if store.kind() == "postgres" {
        // Row triggers do not see TRUNCATE; statement triggers refuse it.
        refused("TRUNCATE invoices CASCADE").await;
        refused("TRUNCATE payments").await;
    }
    let stored = store.invoice("DP-000001").await.unwrap().unwrap();
    assert_eq!(stored.total, usd("107.00"), "nothing changed");

    // Voiding is the one change allowed, once.
    store
        .execute_raw("UPDATE invoices SET voided_at = 5, void_reason = 'issued in error' WHERE seq = 1")
        .await
        .unwrap();
    refused("UPDATE invoices SET voided_at = 6 WHERE seq = 1").await;
    assert_eq!(store.invoice("DP-000001").await.unwrap().unwrap().voided_at, Some(Timestamp(5)));
    let void = store.record_payment(payment("acme", "DP-000001", usd("1.00"), "r2"), &by(ISSUED)).await.unwrap_err();
    assert!(matches!(&void, StoreError::Invalid(m) if m.contains("void")), "{void}");
}

async fn issues_payments_and_dunning_transitions_are_audited(store: &TestStore) {
    with_licensees(&**store, &["acme"]).await;
    // Grace of 2 days: due 2027-01-12, overdue from the 13th, suspended from the 15th.
    store
        .apply_terms(
            vec![TermsChange::PutLicensee {
                name: "acme".into(),
                terms: serde_json::json!({"name": "acme", "plan": "basic", "billing": {"payment_terms_days": 10, "grace_days": 2}}),
                status: None,
            }],
            &by(ISSUED),
        )
        .await
        .unwrap();
    store.issue_invoices(vec![december("acme", "100.00", "7.00")], &by(ISSUED)).await.unwrap();
    // Part paid while suspended (it began by time passing, noticed at this payment); then in full.
    store.record_payment(payment("acme", "DP-000001", usd("7.00"), "r1"), &by("2027-01-16T00:00:00Z")).await.unwrap();
    // A second invoice run while still suspended logs nothing new.
    let mut january = december("acme", "1.00", "0.00");
    january.month = Month::new(2027, 1).unwrap();
    january.due = day("2027-02-28");
    store.issue_invoices(vec![january], &by("2027-02-01T00:00:00Z")).await.unwrap();
    store.record_payment(payment("acme", "DP-000001", usd("100.00"), "r2"), &by("2027-02-01T10:00:00Z")).await.unwrap();
    store.record_payment(payment("acme", "DP-000001", usd("100.00"), "r2"), &by("2027-02-01T11:00:00Z")).await.unwrap(); // the same payment again: no entry

    let log = store.audit_log(100).await.unwrap();
    let billing: Vec<(String, String, Timestamp)> = log
        .iter()
        .rev()
        .filter(|e| !e.action.starts_with("licensee.create") && e.action != "licensee.terms")
        .map(|e| (e.action.clone(), e.subject.clone(), e.at))
        .collect();
    let expected = [
        ("invoice.issue", "DP-000001", ISSUED),
        ("payment.record", "DP-000001", "2027-01-16T00:00:00Z"),
        // Overdue since the 13th, first noticed at this payment (part paid, still overdue).
        ("invoice.overdue", "DP-000001", "2027-01-16T00:00:00Z"),
        ("licensee.suspended", "acme", "2027-01-16T00:00:00Z"),
        ("invoice.issue", "DP-000002", "2027-02-01T00:00:00Z"),
        ("payment.record", "DP-000001", "2027-02-01T10:00:00Z"),
        ("invoice.paid", "DP-000001", "2027-02-01T10:00:00Z"),
        ("licensee.reinstated", "acme", "2027-02-01T10:00:00Z"),
    ];
    let expected: Vec<(String, String, Timestamp)> =
        expected.iter().map(|(a, s, t)| (a.to_string(), s.to_string(), at(t))).collect();
    assert_eq!(billing, expected);
    let suspended = log.iter().find(|e| e.action == "licensee.suspended").unwrap();
    let after = suspended.after.as_ref().unwrap();
    assert_eq!(after["suspension"]["invoices"][0]["number"], "DP-000001");
    assert_eq!(after["suspension"]["invoices"][0]["suspended_from"], "2027-01-15T00:00:00.000Z");
    assert!(after["cause"].as_str().unwrap().contains("r1"), "{after}");
    let reinstated = log.iter().find(|e| e.action == "licensee.reinstated").unwrap();
    assert!(reinstated.after.as_ref().unwrap()["cause"].as_str().unwrap().contains("r2"));
    let issue = log.iter().rev().find(|e| e.action == "invoice.issue").unwrap();
    assert_eq!(issue.after.as_ref().unwrap()["invoice"]["total"]["minor"], 10_700);
}

/// The gateways' scheduled check writes a suspension that began by time passing once, however
/// often it runs, and the reinstatement once it is paid.
async fn scheduled_dunning_check_logs_each_transition_once(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    store.issue_invoices(vec![december("acme", "10.00", "0.00")], &by(ISSUED)).await.unwrap();
    assert!(store.log_dunning_transitions(&by("2027-01-10T00:00:00Z")).await.unwrap().is_empty(), "not yet due");
    // Due 2027-01-12 and the default grace days: suspended well before March.
    let late = by("2027-03-01T00:00:00Z");
    assert_eq!(store.log_dunning_transitions(&late).await.unwrap(), ["acme"]);
    assert!(store.log_dunning_transitions(&late).await.unwrap().is_empty(), "logged once");
    store.record_payment(payment("acme", "DP-000001", usd("10.00"), "r1"), &by("2027-03-02T00:00:00Z")).await.unwrap();
    assert!(
        store.log_dunning_transitions(&by("2027-03-03T00:00:00Z")).await.unwrap().is_empty(),
        "reinstated by the payment"
    );
    let actions: Vec<String> = store.audit_log(100).await.unwrap().into_iter().rev().map(|e| e.action).collect();
    assert_eq!(
        actions.iter().filter(|a| a.starts_with("licensee.s") || a.starts_with("licensee.r")).collect::<Vec<_>>(),
        ["licensee.suspended", "licensee.reinstated"]
    );
    let accounts = store.invoice_accounts(None).await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account.payments.len(), 1);
}

fn credit_note(invoice: &str, amount: Money, reason: &str) -> NewCreditNote {
    NewCreditNote { invoice: invoice.into(), amount, reason: reason.into() }
}

/// Billing terms with `grace_days`: an invoice due on the 12th is overdue from the 13th and its
/// licensee suspended from the 13th + `grace_days`.
async fn with_grace_days(store: &dyn Store, licensee: &str, grace_days: u32) {
    let terms = serde_json::json!({"name": licensee, "plan": "basic",
        "billing": {"payment_terms_days": 10, "grace_days": grace_days}});
    let change = TermsChange::PutLicensee { name: licensee.into(), terms, status: None };
    store.apply_terms(vec![change], &by(ISSUED)).await.unwrap();
}

/// `(action, subject)` of the audit entries with one of these actions, oldest first.
async fn audited(store: &dyn Store, actions: &[&str]) -> Vec<(String, String)> {
    let log = store.audit_log(1_000).await.unwrap();
    log.into_iter().rev().filter(|e| actions.contains(&e.action.as_str())).map(|e| (e.action, e.subject)).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect()
}

async fn credit_notes_are_numbered_without_gaps_and_at_most_outstanding(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    store
        .issue_invoices(vec![december("acme", "100.00", "7.00"), december("globex", "50.00", "0.00")], &by(ISSUED))
        .await
        .unwrap();
    let counter = store.change_counter().await.unwrap();
    let t = "2027-01-05T10:00:00Z";
    let first = store.issue_credit_note(credit_note("DP-000001", usd("7.00"), " overage miscounted "), &by(t)).await;
    let first = first.unwrap();
    assert_eq!(first.number, "CN-000001");
    assert_eq!((first.invoice.as_str(), first.licensee.as_str()), ("DP-000001", "acme"));
    assert_eq!((first.amount, first.reason.as_str(), first.issued_at), (usd("7.00"), "overage miscounted", at(t)));
    assert!(store.change_counter().await.unwrap() > counter, "a credit note can lift a 402: gateways reload");

    // At most what is outstanding: 107 - 7 credited - 50 paid = 50.
    store.record_payment(payment("acme", "DP-000001", usd("50.00"), "wire-1"), &by(t)).await.unwrap();
    let over = store.issue_credit_note(credit_note("DP-000001", usd("50.01"), "too much"), &by(t)).await.unwrap_err();
    assert!(matches!(&over, StoreError::Invalid(m) if m.contains("50.00 USD outstanding")), "{over}");
    let eur = Money::parse(Currency::Eur, "1.00").unwrap();
    let refusals = [
        store.issue_credit_note(credit_note("DP-000001", eur, "euros"), &by(t)).await.unwrap_err(),
        store.issue_credit_note(credit_note("DP-000001", usd("0.00"), "zero"), &by(t)).await.unwrap_err(),
        store.issue_credit_note(credit_note("DP-000001", usd("1.00"), "  "), &by(t)).await.unwrap_err(),
        store.issue_credit_note(credit_note("DP-000001", usd("1.00"), "a\u{7}bell"), &by(t)).await.unwrap_err(),
    ];
    assert!(matches!(&refusals[0], StoreError::Invalid(m) if m.contains("in USD")), "{}", refusals[0]);
    for refused in &refusals[1..] {
        assert!(matches!(refused, StoreError::Invalid(_)), "{refused}");
    }
    let unknown = store.issue_credit_note(credit_note("DP-000099", usd("1.00"), "x"), &by(t)).await.unwrap_err();
    assert!(matches!(&unknown, StoreError::NotFound(m) if m.contains("DP-000099")), "{unknown}");

    // Refusals take no number: the next is CN-000002, across licensees.
    let second = store.issue_credit_note(credit_note("DP-000002", usd("5.00"), "goodwill"), &by(t)).await.unwrap();
    assert_eq!(second.number, "CN-000002");
    let third = store.issue_credit_note(credit_note("DP-000001", usd("50.00"), "settled"), &by(t)).await.unwrap();
    assert_eq!(third.number, "CN-000003");
    let nothing_left =
        store.issue_credit_note(credit_note("DP-000001", usd("0.01"), "more"), &by(t)).await.unwrap_err();
    assert!(matches!(&nothing_left, StoreError::Invalid(m) if m.contains("0.00 USD outstanding")), "{nothing_left}");

    let all: Vec<String> = store.credit_notes(None).await.unwrap().into_iter().map(|c| c.number).collect();
    assert_eq!(all, ["CN-000001", "CN-000002", "CN-000003"]);
    let acme = store.credit_notes(Some("acme")).await.unwrap();
    assert_eq!(acme.iter().map(|c| c.number.as_str()).collect::<Vec<_>>(), ["CN-000001", "CN-000003"]);
    assert_eq!(acme[0], first, "read back as issued");
    assert!(store.credit_notes(Some("nobody")).await.unwrap().is_empty());

    // What dunning reads: the credit notes lower what is owed; the invoice itself is unchanged.
    let accounts = store.invoice_accounts(Some("acme")).await.unwrap();
    let account = &accounts[0].account;
    assert_eq!(account.credit_notes.len(), 2);
    assert_eq!(account.credited_by(at(t)), 5_700);
    assert_eq!(account.outstanding(at(t)), usd("0.00"));
    assert_eq!(account.status(at(t)), InvoiceStatus::Paid);
    assert_eq!(account.status(at("2027-01-05T09:59:59Z")), InvoiceStatus::Open, "credited at their issue time");
    assert_eq!(store.invoice("DP-000001").await.unwrap().unwrap().total, usd("107.00"));
    let globex = store.invoice_accounts(Some("globex")).await.unwrap();
    assert_eq!(globex[0].account.outstanding(at(t)), usd("45.00"));

    // Issued credit notes are never changed or deleted, and their numbers have no gap.
    let refused = async |sql: &str| {
        let error = store.execute_raw(sql).await.expect_err(sql);
        assert!(
            ["never changed", "never deleted", "gapless"].iter().any(|m| error.contains(m)),
            "{sql}: unexpected error {error}"
        );
    };
    refused("UPDATE credit_notes SET amount_minor = 1 WHERE seq = 1").await;
    refused("DELETE FROM credit_notes").await;
    refused(
        "INSERT INTO credit_notes (seq, number, invoice_seq, licensee_id, amount_minor, currency, reason, issued_at)
         VALUES (5, 'CN-000005', 2, 2, 1, 'USD', 'skip', 0)",
    )
    .await;
    if store.kind() == "postgres" {
        refused("TRUNCATE credit_notes").await;
    }
    assert_eq!(store.credit_notes(None).await.unwrap().len(), 3, "nothing changed");

    let audit = audited(&**store, &["credit_note.issue"]).await;
    assert_eq!(
        audit,
        pairs(&[
            ("credit_note.issue", "CN-000001"),
            ("credit_note.issue", "CN-000002"),
            ("credit_note.issue", "CN-000003")
        ])
    );
    let entry = store.audit_log(100).await.unwrap().into_iter().find(|e| e.subject == "CN-000001").unwrap();
    let after = entry.after.unwrap();
    assert_eq!(after["credit_note"]["invoice"], "DP-000001");
    assert!(after["cause"].as_str().unwrap().contains("7.00 USD"), "{after}");
}

async fn voiding_is_refused_once_anything_is_settled_and_audited(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    let mut november = december("acme", "20.00", "0.00");
    november.month = Month::new(2026, 11).unwrap();
    store
        .issue_invoices(
            vec![december("acme", "100.00", "7.00"), december("globex", "50.00", "0.00"), november],
            &by(ISSUED),
        )
        .await
        .unwrap();
    let t = "2027-01-05T10:00:00Z";
    store.record_payment(payment("acme", "DP-000001", usd("1.00"), "wire-1"), &by(t)).await.unwrap();
    store.issue_credit_note(credit_note("DP-000002", usd("1.00"), "goodwill"), &by(t)).await.unwrap();
    for number in ["DP-000001", "DP-000002"] {
        let error = store.void_invoice(number, "issued in error", &by(t)).await.unwrap_err();
        assert!(matches!(&error, StoreError::Conflict(m) if m.contains("credit note")), "{number}: {error}");
    }
    let no_reason = store.void_invoice("DP-000003", " ", &by(t)).await.unwrap_err();
    assert!(matches!(&no_reason, StoreError::Invalid(m) if m.contains("reason")), "{no_reason}");
    let unknown = store.void_invoice("DP-000099", "x", &by(t)).await.unwrap_err();
    assert!(matches!(&unknown, StoreError::NotFound(_)), "{unknown}");

    let counter = store.change_counter().await.unwrap();
    let voided = store.void_invoice("DP-000003", " issued in error ", &by(t)).await.unwrap();
    assert_eq!((voided.number.as_str(), voided.voided_at), ("DP-000003", Some(at(t))));
    assert_eq!(voided.total, usd("20.00"), "a void invoice keeps what it said");
    assert!(store.change_counter().await.unwrap() > counter, "a void can lift a 402: gateways reload");
    let again = store.void_invoice("DP-000003", "twice", &by("2027-01-06T00:00:00Z")).await.unwrap_err();
    assert!(matches!(&again, StoreError::Conflict(m) if m.contains("already void")), "{again}");
    assert_eq!(store.invoice("DP-000003").await.unwrap().unwrap().voided_at, Some(at(t)));

    // Nothing is owed on a void invoice: no payment, no credit note.
    let paid = store.record_payment(payment("acme", "DP-000003", usd("1.00"), "wire-2"), &by(t)).await.unwrap_err();
    assert!(matches!(&paid, StoreError::Invalid(m) if m.contains("void")), "{paid}");
    let credited = store.issue_credit_note(credit_note("DP-000003", usd("1.00"), "x"), &by(t)).await.unwrap_err();
    assert!(matches!(&credited, StoreError::Invalid(m) if m.contains("void")), "{credited}");
    let accounts = store.invoice_accounts(Some("acme")).await.unwrap();
    let november = accounts.iter().find(|a| a.account.number == "DP-000003").unwrap();
    assert_eq!(november.account.status(at(t)), InvoiceStatus::Void);

    let audit = audited(&**store, &["invoice.void"]).await;
    assert_eq!(audit, pairs(&[("invoice.void", "DP-000003")]), "refused voids leave no entry");
    let entry = store.audit_log(100).await.unwrap().into_iter().find(|e| e.action == "invoice.void").unwrap();
    assert_eq!(entry.at, at(t));
    let cause = entry.after.unwrap()["cause"].as_str().unwrap().to_owned();
    assert_eq!(cause, "invoice DP-000003 voided: issued in error");
}

/// A credit note that clears what is overdue, or voiding the invoice, reinstates a suspended
/// licensee in the same transaction; a partial one does not.
async fn a_credit_note_or_a_void_reinstates_a_suspended_licensee(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    with_grace_days(&**store, "acme", 2).await;
    with_grace_days(&**store, "globex", 2).await;
    store
        .issue_invoices(vec![december("acme", "100.00", "7.00"), december("globex", "50.00", "0.00")], &by(ISSUED))
        .await
        .unwrap();
    // Due 2027-01-12, overdue from the 13th, suspended from the 15th.
    let logged = store.log_dunning_transitions(&by("2027-01-16T00:00:00Z")).await.unwrap();
    assert_eq!(logged, ["acme", "globex"]);
    store
        .issue_credit_note(credit_note("DP-000001", usd("7.00"), "overage"), &by("2027-01-17T00:00:00Z"))
        .await
        .unwrap();
    let suspended = audited(&**store, &["licensee.suspended", "licensee.reinstated"]).await;
    assert_eq!(suspended, pairs(&[("licensee.suspended", "acme"), ("licensee.suspended", "globex")]), "still owed");
    store
        .issue_credit_note(credit_note("DP-000001", usd("100.00"), "waived"), &by("2027-01-18T00:00:00Z"))
        .await
        .unwrap();
    store.void_invoice("DP-000002", "billed in error", &by("2027-01-19T00:00:00Z")).await.unwrap();
    let transitions = audited(&**store, &["licensee.suspended", "licensee.reinstated"]).await;
    assert_eq!(
        transitions,
        pairs(&[
            ("licensee.suspended", "acme"),
            ("licensee.suspended", "globex"),
            ("licensee.reinstated", "acme"),
            ("licensee.reinstated", "globex"),
        ])
    );
    let log = store.audit_log(100).await.unwrap();
    let reinstated = |name: &str| {
        let entry = log.iter().find(|e| e.action == "licensee.reinstated" && e.subject == name).unwrap();
        (entry.at, entry.after.as_ref().unwrap()["cause"].as_str().unwrap().to_owned())
    };
    let (when, cause) = reinstated("acme");
    assert_eq!(when, at("2027-01-18T00:00:00Z"));
    assert!(cause.contains("CN-000002"), "{cause}");
    let (when, cause) = reinstated("globex");
    assert_eq!(when, at("2027-01-19T00:00:00Z"));
    assert!(cause.contains("DP-000002 voided"), "{cause}");
    assert!(store.log_dunning_transitions(&by("2027-01-20T00:00:00Z")).await.unwrap().is_empty(), "nothing left");
}

/// Billing's notifications: each raised once, with its audit entry, in the transaction of the
/// change that causes it (a refused change raises nothing); `invoice.overdue` is noticed and
/// audited by the dunning check once; suspensions and reinstatements once per transition.
async fn billing_notifications_are_raised_once_with_their_changes(store: &TestStore) {
    with_licensees(&**store, &["acme", "globex"]).await;
    with_grace_days(&**store, "acme", 2).await;
    let webhook = NewWebhook {
        licensee: None,
        url: "https://platform.example/h".into(),
        events: vec![],
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    store.add_webhook(webhook, &by(ISSUED)).await.unwrap();
    let raised = async || -> Vec<(NotificationKind, String)> {
        let mut log = store.webhook_deliveries(1_000).await.unwrap();
        log.reverse();
        log.into_iter().map(|d| (d.kind, d.licensee)).collect()
    };
    let kinds = |list: &[(NotificationKind, String)]| list.iter().map(|(k, _)| *k).collect::<Vec<_>>();

    store.issue_invoices(vec![december("acme", "100.00", "7.00")], &by(ISSUED)).await.unwrap();
    store.issue_invoices(vec![december("acme", "100.00", "7.00")], &by(ISSUED)).await.unwrap(); // existing: nothing
    // A refused batch raises nothing for the invoice it would have issued.
    let mut bad = december("acme", "1.00", "0.00");
    bad.month = Month::new(2027, 1).unwrap();
    bad.total = usd("2.00");
    store.issue_invoices(vec![december("globex", "5.00", "0.00"), bad], &by(ISSUED)).await.unwrap_err();
    assert_eq!(raised().await, [(NotificationKind::InvoiceIssued, "acme".to_owned())]);

    assert!(store.log_dunning_transitions(&by("2027-01-12T23:59:59Z")).await.unwrap().is_empty(), "not yet overdue");
    // Overdue from the 13th: noticed, audited and notified once, however often the check runs.
    assert_eq!(store.log_dunning_transitions(&by("2027-01-13T00:00:00Z")).await.unwrap(), ["acme"]);
    assert!(store.log_dunning_transitions(&by("2027-01-14T00:00:00Z")).await.unwrap().is_empty(), "once");
    assert_eq!(audited(&**store, &["invoice.overdue"]).await, pairs(&[("invoice.overdue", "DP-000001")]));
    let overdue = store.audit_log(100).await.unwrap().into_iter().find(|e| e.action == "invoice.overdue").unwrap();
    assert_eq!(overdue.at, at("2027-01-13T00:00:00Z"));
    let after = overdue.after.unwrap();
    assert_eq!(after["cause"], "noticed at the scheduled dunning check");
    assert_eq!(after["due"], "2027-01-12");
    assert_eq!(kinds(&raised().await), [NotificationKind::InvoiceIssued, NotificationKind::InvoiceOverdue]);
    let due = store.claim_webhook_deliveries(at("2027-01-14T00:00:00Z"), 1, 10).await.unwrap();
    let overdue = due.iter().find(|d| d.kind == NotificationKind::InvoiceOverdue).unwrap();
    assert_eq!(overdue.payload["invoice"], "DP-000001");
    assert_eq!(overdue.payload["due"], "2027-01-12");
    assert_eq!(overdue.licensee, "acme");
    let issued = due.iter().find(|d| d.kind == NotificationKind::InvoiceIssued).unwrap();
    assert_eq!(issued.payload["invoice"]["number"], "DP-000001");

    // Suspended from the 15th: once.
    assert_eq!(store.log_dunning_transitions(&by("2027-01-15T00:00:00Z")).await.unwrap(), ["acme"]);
    assert!(store.log_dunning_transitions(&by("2027-01-16T00:00:00Z")).await.unwrap().is_empty());
    // Paid in full: paid and reinstated, once (the same payment again raises nothing).
    let pay = payment("acme", "DP-000001", usd("107.00"), "wire-1");
    store.record_payment(pay.clone(), &by("2027-01-20T00:00:00Z")).await.unwrap();
    store.record_payment(pay, &by("2027-01-21T00:00:00Z")).await.unwrap();
    assert!(store.log_dunning_transitions(&by("2027-01-22T00:00:00Z")).await.unwrap().is_empty());
    assert_eq!(
        kinds(&raised().await),
        [
            NotificationKind::InvoiceIssued,
            NotificationKind::InvoiceOverdue,
            NotificationKind::LicenseeSuspended,
            NotificationKind::InvoicePaid,
            NotificationKind::LicenseeReinstated,
        ]
    );

    // A second suspension is a new transition: notified again (keyed by its audit entry), while
    // the first invoice's issued, overdue and paid stay once.
    let mut january = december("acme", "1.00", "0.00");
    january.month = Month::new(2027, 1).unwrap();
    january.due = day("2027-02-28");
    store.issue_invoices(vec![january], &by("2027-02-01T00:00:00Z")).await.unwrap();
    assert_eq!(store.log_dunning_transitions(&by("2027-03-05T00:00:00Z")).await.unwrap(), ["acme"]);
    assert!(store.log_dunning_transitions(&by("2027-03-06T00:00:00Z")).await.unwrap().is_empty());
    let all = raised().await;
    let count = |kind| all.iter().filter(|(k, _)| *k == kind).count();
    assert_eq!(count(NotificationKind::InvoiceIssued), 2);
    assert_eq!(count(NotificationKind::InvoiceOverdue), 2);
    assert_eq!(count(NotificationKind::InvoicePaid), 1);
    assert_eq!(count(NotificationKind::LicenseeSuspended), 2);
    assert_eq!(count(NotificationKind::LicenseeReinstated), 1);
    assert!(all.iter().all(|(_, licensee)| licensee == "acme"));
    let overdue = audited(&**store, &["invoice.overdue"]).await;
    assert_eq!(overdue, pairs(&[("invoice.overdue", "DP-000001"), ("invoice.overdue", "DP-000002")]));
}

/// Payments and credit notes settle one balance: a payment is refused above what credit notes left
/// owed, and whichever settles the invoice (a payment or a credit note) marks it paid, once.
async fn payments_and_credit_notes_settle_one_balance(store: &TestStore) {
    with_licensees(&**store, &["acme"]).await;
    store.issue_invoices(vec![december("acme", "100.00", "7.00")], &by(ISSUED)).await.unwrap();
    store.issue_invoices(vec![january("acme", "30.00")], &by("2027-02-02T09:00:00Z")).await.unwrap();
    let t = "2027-01-05T10:00:00Z";
    store.issue_credit_note(credit_note("DP-000001", usd("7.00"), "overage miscounted"), &by(t)).await.unwrap();
    let over = store.record_payment(payment("acme", "DP-000001", usd("107.00"), "w-1"), &by(t)).await.unwrap_err();
    assert!(matches!(&over, StoreError::Invalid(m) if m.contains("100.00 USD outstanding")), "{over}");
    store.record_payment(payment("acme", "DP-000001", usd("100.00"), "w-1"), &by(t)).await.unwrap();
    // January's invoice is settled by a credit note alone.
    let t2 = "2027-02-03T10:00:00Z";
    store.record_payment(payment("acme", "DP-000002", usd("10.00"), "w-2"), &by(t2)).await.unwrap();
    store.issue_credit_note(credit_note("DP-000002", usd("20.00"), "waived"), &by(t2)).await.unwrap();
    let paid = audited(&**store, &["invoice.paid"]).await;
    assert_eq!(paid, pairs(&[("invoice.paid", "DP-000001"), ("invoice.paid", "DP-000002")]));
    let accounts = store.invoice_accounts(Some("acme")).await.unwrap();
    assert!(accounts.iter().all(|a| a.account.status(at(t2)) == InvoiceStatus::Paid));
}

store_tests!(
    payments_and_credit_notes_settle_one_balance,
    credit_notes_are_numbered_without_gaps_and_at_most_outstanding,
    voiding_is_refused_once_anything_is_settled_and_audited,
    a_credit_note_or_a_void_reinstates_a_suspended_licensee,
    billing_notifications_are_raised_once_with_their_changes,
    invoice_runs_are_idempotent_and_numbered_without_gaps,
    payments_are_idempotent_by_reference_and_never_exceed_what_is_owed,
    issued_invoices_and_payments_are_immutable,
    issues_payments_and_dunning_transitions_are_audited,
    scheduled_dunning_check_logs_each_transition_once,
);

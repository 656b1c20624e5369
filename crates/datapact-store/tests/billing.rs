//! Invoices and payments in every store (SQLite and PostgreSQL, `stores::store_tests!`): idempotent runs, gapless numbers, payments
//! idempotent by reference, overpayment refused, issued invoices immutable, audit entries.

use chrono::NaiveDate;
use datapact_billing::{Charge, Currency, InvoiceLine, Money, Month};
use datapact_core::Timestamp;
use datapact_store::{Change, NewInvoice, NewPayment, Store, StoreError, TermsChange};
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

store_tests!(
    invoice_runs_are_idempotent_and_numbered_without_gaps,
    payments_are_idempotent_by_reference_and_never_exceed_what_is_owed,
    issued_invoices_and_payments_are_immutable,
    issues_payments_and_dunning_transitions_are_audited,
    scheduled_dunning_check_logs_each_transition_once,
);

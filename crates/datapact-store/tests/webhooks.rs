//! Notifications and webhooks in every store (SQLite and PostgreSQL, `stores::store_tests!`):
//! raised once per dedupe key, fanned out only to the webhooks subscribed when raised (the
//! licensee's own and the platform's), claimed under a lease, retried, failed; and prepaid
//! credits, idempotent by reference, in one currency, immutable, moving the change counter.

use datapact_billing::{Currency, Money};
use datapact_core::Timestamp;
use datapact_store::notify::{AttemptOutcome, NewNotification, NewWebhook, NotificationKind, WebhookAttempt};
use datapact_store::{Change, NewCredit, StoreError};
use serde_json::json;
use stores::TestStore;

mod stores;

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

async fn with_licensees(store: &TestStore, licensees: &[&str]) {
    for name in licensees {
        store.create_licensee(name, &Change::new("test", at("2026-12-01T00:00:00Z"))).await.unwrap();
    }
}

fn hook(licensee: Option<&str>, url: &str, events: &[NotificationKind]) -> NewWebhook {
    NewWebhook {
        licensee: licensee.map(str::to_owned),
        url: url.into(),
        events: events.to_vec(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    }
}

fn notification(kind: NotificationKind, licensee_id: i64, key: &str, when: &str) -> NewNotification {
    NewNotification { kind, licensee_id, dedupe_key: key.into(), payload: json!({ "n": key }), at: at(when) }
}

async fn notifications_fan_out_once_to_subscribed_webhooks(store: &TestStore) {
    with_licensees(store, &["acme", "globex"]).await;
    let by = Change::new("test", at("2026-12-01T00:00:00Z"));
    let acme = store.licensee("acme").await.unwrap().unwrap().id;
    let globex = store.licensee("globex").await.unwrap().unwrap().id;
    let platform = store.add_webhook(hook(None, "https://platform.example/h", &[]), &by).await.unwrap();
    let acme_caps = store
        .add_webhook(hook(Some("acme"), "https://acme.example/h", &[NotificationKind::CapWarning]), &by)
        .await
        .unwrap();
    let removed = store.add_webhook(hook(Some("acme"), "https://old.example/h", &[]), &by).await.unwrap();
    store.remove_webhook(removed.id, &by).await.unwrap();

    // Refused: a bad URL, a weak secret, an unknown licensee, an unknown webhook.
    let refused = store.add_webhook(hook(None, "ftp://x", &[]), &by).await.unwrap_err();
    assert!(matches!(refused, StoreError::Invalid(_)), "{refused}");
    let weak = NewWebhook { secret: "whsec_x".into(), ..hook(None, "https://x.example", &[]) };
    assert!(matches!(store.add_webhook(weak, &by).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        store.add_webhook(hook(Some("nobody"), "https://x.example", &[]), &by).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(store.remove_webhook(999, &by).await, Err(StoreError::NotFound(_))));

    // Events are kept sorted and once; removing twice changes nothing more; both are audited.
    let twice = hook(None, "https://twice.example/h", &[NotificationKind::InvoicePaid, NotificationKind::CapReached]);
    let twice = NewWebhook { events: [twice.events.clone(), twice.events].concat(), ..twice };
    let sorted = store.add_webhook(twice, &by).await.unwrap();
    assert_eq!(sorted.events, [NotificationKind::CapReached, NotificationKind::InvoicePaid]);
    store.remove_webhook(sorted.id, &by).await.unwrap();
    let again = store.remove_webhook(removed.id, &Change::new("test", at("2026-12-02T00:00:00Z"))).await.unwrap();
    assert_eq!(again.removed_at, Some(at("2026-12-01T00:00:00Z")), "removed once, when first removed");
    let listed = store.webhooks().await.unwrap();
    assert_eq!(listed.iter().map(|w| w.id).collect::<Vec<_>>(), [platform.id, acme_caps.id, removed.id, sorted.id]);
    assert_eq!(listed[0].licensee, None);
    assert_eq!(listed[1].licensee.as_deref(), Some("acme"));
    assert_eq!(listed[1].events, [NotificationKind::CapWarning]);
    assert_eq!(listed[1].secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(listed[2].removed_at, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(listed[0].removed_at, None);
    let audit = store.audit_log(100).await.unwrap();
    let webhook_entries: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .filter(|e| e.action.starts_with("webhook."))
        .map(|e| (e.action.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        webhook_entries,
        [
            ("webhook.add", "platform"),
            ("webhook.add", "acme"),
            ("webhook.add", "acme"),
            ("webhook.remove", "acme"),
            ("webhook.add", "platform"),
            ("webhook.remove", "platform"),
        ]
    );
    let add = audit.iter().rev().find(|e| e.action == "webhook.add").unwrap();
    assert_eq!(add.after.as_ref().unwrap()["url"], "https://platform.example/h");

    // Webhooks and notifications decide nothing about who is served: the counter stays.
    let counter = store.change_counter().await.unwrap();
    let t = "2026-12-05T12:00:00Z";
    assert!(store.notify(notification(NotificationKind::CapWarning, acme, "cap.80:acme", t)).await.unwrap());
    assert!(!store.notify(notification(NotificationKind::CapWarning, acme, "cap.80:acme", t)).await.unwrap(), "once");
    assert!(store.notify(notification(NotificationKind::CapReached, acme, "cap.100:acme", t)).await.unwrap());
    assert!(store.notify(notification(NotificationKind::CapWarning, globex, "cap.80:globex", t)).await.unwrap());
    let log = store.webhook_deliveries(100).await.unwrap();
    assert!(log.windows(2).all(|w| w[0].notification_id >= w[1].notification_id), "newest first");
    assert!(log.iter().all(|d| d.status == "pending" && d.attempts == 0 && d.next_attempt_at == Some(at(t))));
    assert_eq!(store.webhook_deliveries(1).await.unwrap().len(), 1);
    let mut fanned: Vec<(NotificationKind, String, i64)> =
        log.iter().map(|d| (d.kind, d.licensee.clone(), d.webhook_id)).collect();
    fanned.sort();
    assert_eq!(
        fanned,
        [
            (NotificationKind::CapWarning, "acme".into(), platform.id),
            (NotificationKind::CapWarning, "acme".into(), acme_caps.id),
            (NotificationKind::CapWarning, "globex".into(), platform.id),
            (NotificationKind::CapReached, "acme".into(), platform.id),
        ],
        "the platform gets everything; acme's hook only acme's cap.80; the removed hook nothing"
    );

    // A claim leases what is due; a second sender gets nothing until the lease ends.
    let now = at(t);
    assert!(
        store.claim_webhook_deliveries(at("2026-12-05T11:59:59Z"), 60_000, 10).await.unwrap().is_empty(),
        "not due"
    );
    let first = store.claim_webhook_deliveries(now, 60_000, 1).await.unwrap();
    assert_eq!(first.len(), 1, "at most the limit");
    let rest = store.claim_webhook_deliveries(now, 60_000, 10).await.unwrap();
    assert_eq!(rest.len(), 3, "the rest, not the one leased");
    let claimed = [first, rest].concat();
    let cap80 = claimed.iter().find(|d| d.licensee == "acme" && d.kind == NotificationKind::CapWarning).unwrap();
    assert_eq!(cap80.payload, json!({ "n": "cap.80:acme" }));
    assert_eq!(cap80.raised_at, at(t));
    assert_eq!(cap80.attempts, 0);
    assert_eq!(cap80.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(["https://platform.example/h", "https://acme.example/h"].contains(&cap80.url.as_str()));
    assert!(store.claim_webhook_deliveries(now, 60_000, 10).await.unwrap().is_empty());
    assert_eq!(store.claim_webhook_deliveries(now.plus_millis(60_000), 60_000, 10).await.unwrap().len(), 4);

    // Outcomes: delivered, retried later, given up.
    let attempt = |n: usize, outcome| WebhookAttempt {
        notification_id: claimed[n].notification_id,
        webhook_id: claimed[n].webhook_id,
        at: now,
        status: Some(500),
        error: Some("answered 500".into()),
        outcome,
    };
    store
        .record_webhook_attempt(WebhookAttempt {
            status: Some(200),
            error: None,
            ..attempt(0, AttemptOutcome::Delivered)
        })
        .await
        .unwrap();
    store.record_webhook_attempt(attempt(1, AttemptOutcome::RetryAt(now.plus_millis(5_000)))).await.unwrap();
    store.record_webhook_attempt(attempt(2, AttemptOutcome::Failed)).await.unwrap();
    let again = store.record_webhook_attempt(attempt(0, AttemptOutcome::Delivered)).await;
    assert!(again.is_err(), "a delivered notification takes no more attempts");
    let due = store.claim_webhook_deliveries(now.plus_millis(125_000), 60_000, 10).await.unwrap();
    let due: Vec<(i64, i64, u32)> = due.iter().map(|d| (d.notification_id, d.webhook_id, d.attempts)).collect();
    assert!(due.contains(&(claimed[1].notification_id, claimed[1].webhook_id, 1)), "{due:?}");
    assert_eq!(due.len(), 2, "the delivered and the failed are done: {due:?}");
    let log = store.webhook_deliveries(100).await.unwrap();
    let statuses: Vec<&str> = log.iter().map(|d| d.status.as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "delivered").count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 1);
    let retried = log
        .iter()
        .find(|d| d.notification_id == claimed[1].notification_id && d.webhook_id == claimed[1].webhook_id)
        .unwrap();
    assert_eq!((retried.attempts, retried.last_status, retried.last_attempt_at), (1, Some(500), Some(now)));
    assert_eq!(retried.last_error.as_deref(), Some("answered 500"));
    let delivered = log.iter().find(|d| d.status == "delivered").unwrap();
    assert_eq!(
        (delivered.delivered_at, delivered.next_attempt_at, delivered.last_status),
        (Some(now), None, Some(200))
    );
    let failed = log.iter().find(|d| d.status == "failed").unwrap();
    assert_eq!((failed.delivered_at, failed.next_attempt_at, failed.attempts), (None, None, 1));
    assert_eq!(store.change_counter().await.unwrap(), counter, "notifications and deliveries are not rights");

    // Removing a webhook gives up what was still pending for it: nothing more is sent there.
    let pending_to = |log: &[datapact_store::notify::WebhookDeliveryRecord], id: i64| {
        log.iter().filter(|d| d.webhook_id == id && d.status == "pending").count()
    };
    let pending_hook = claimed[1].webhook_id;
    assert!(pending_to(&store.webhook_deliveries(100).await.unwrap(), pending_hook) > 0);
    store.remove_webhook(pending_hook, &by).await.unwrap();
    let log = store.webhook_deliveries(100).await.unwrap();
    assert_eq!(pending_to(&log, pending_hook), 0);
    assert!(
        log.iter().any(|d| d.webhook_id == pending_hook && d.last_error.as_deref() == Some("the webhook was removed"))
    );
    let due = store.claim_webhook_deliveries(now.plus_millis(10_000_000), 60_000, 10).await.unwrap();
    assert!(due.iter().all(|d| d.webhook_id != pending_hook), "{due:?}");
}

async fn credits_are_idempotent_by_reference_and_in_one_currency(store: &TestStore) {
    with_licensees(store, &["acme"]).await;
    let by = Change::new("test", at("2026-12-01T00:00:00Z"));
    let usd = |text: &str| Money::parse(Currency::Usd, text).unwrap();
    let credit =
        |amount: Money, reference: &str| NewCredit { licensee: "acme".into(), amount, reference: reference.into() };
    assert!(store.add_credit(credit(usd("50.00"), "w-1"), &by).await.unwrap().new);
    assert!(!store.add_credit(credit(usd("50.00"), " w-1 "), &by).await.unwrap().new, "the same credit again");
    let conflict = store.add_credit(credit(usd("60.00"), "w-1"), &by).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict}");
    let euro = Money::parse(Currency::Eur, "5.00").unwrap();
    let mixed = store.add_credit(credit(euro, "w-2"), &by).await.unwrap_err();
    assert!(matches!(mixed, StoreError::Invalid(ref m) if m.contains("USD")), "{mixed}");
    assert!(matches!(store.add_credit(credit(usd("0"), "w-3"), &by).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.add_credit(credit(usd("1.00"), ""), &by).await, Err(StoreError::Invalid(_))));
    let none = NewCredit { licensee: "nobody".into(), amount: usd("1.00"), reference: "x".into() };
    assert!(matches!(store.add_credit(none, &by).await, Err(StoreError::NotFound(_))));
    let credits = store.credits(Some("acme")).await.unwrap();
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].amount, usd("50.00"));
    let audit = store.audit_log(10).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "credit.add").count(), 1);
    let entry = audit.iter().find(|e| e.action == "credit.add").unwrap();
    assert_eq!(entry.subject, "acme");
    assert_eq!(entry.after.as_ref().unwrap()["credit"]["reference"], "w-1");
}

/// A credit lifts a 402 for credit: gateways reload; credits are never changed or deleted.
async fn credits_move_the_change_counter_and_are_append_only(store: &TestStore) {
    with_licensees(store, &["acme", "globex"]).await;
    let by = Change::new("test", at("2026-12-01T00:00:00Z"));
    let usd = |text: &str| Money::parse(Currency::Usd, text).unwrap();
    let counter = store.change_counter().await.unwrap();
    let credit = NewCredit { licensee: "acme".into(), amount: usd("10.00"), reference: "w-1".into() };
    store.add_credit(credit.clone(), &by).await.unwrap();
    let moved = store.change_counter().await.unwrap();
    assert!(moved > counter, "a credit added moves the counter");
    store.add_credit(credit, &by).await.unwrap();
    assert_eq!(store.change_counter().await.unwrap(), moved, "the same credit again changes nothing");
    let later = Change::new("test", at("2026-12-02T00:00:00Z"));
    let other = NewCredit { licensee: "globex".into(), amount: usd("3.00"), reference: "w-1".into() };
    assert!(store.add_credit(other, &later).await.unwrap().new, "references are per licensee");
    let all = store.credits(None).await.unwrap();
    assert_eq!(
        all.iter().map(|c| (c.licensee.as_str(), c.added_at)).collect::<Vec<_>>(),
        [("acme", at("2026-12-01T00:00:00Z")), ("globex", at("2026-12-02T00:00:00Z"))]
    );
    assert!(store.credits(Some("nobody")).await.unwrap().is_empty());
    for sql in ["UPDATE credits SET amount_minor = 1", "DELETE FROM credits"] {
        let error = store.execute_raw(sql).await.expect_err(sql);
        assert!(error.contains("never changed") || error.contains("never deleted"), "{sql}: {error}");
    }
    if store.kind() == "postgres" {
        let error = store.execute_raw("TRUNCATE credits").await.expect_err("truncate");
        assert!(error.contains("never deleted"), "{error}");
    }
    assert_eq!(store.credits(Some("acme")).await.unwrap()[0].amount, usd("10.00"));
}

store_tests!(
    notifications_fan_out_once_to_subscribed_webhooks,
    credits_are_idempotent_by_reference_and_in_one_currency,
    credits_move_the_change_counter_and_are_append_only,
);

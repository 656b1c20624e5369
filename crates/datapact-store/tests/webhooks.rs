//! Notifications and webhooks in the SQLite store: raised once per dedupe key, fanned out only to
//! the webhooks subscribed when raised (the licensee's own and the platform's), claimed under a
//! lease, retried, failed; and prepaid credits, idempotent by reference, in one currency.

use datapact_billing::{Currency, Money};
use datapact_core::Timestamp;
use datapact_store::notify::{AttemptOutcome, NewNotification, NewWebhook, NotificationKind, WebhookAttempt};
use datapact_store::{Change, NewCredit, SqliteStore, Store, StoreError};
use serde_json::json;

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

async fn store_with(licensees: &[&str]) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    for name in licensees {
        store.create_licensee(name, &Change::new("test", at("2026-12-01T00:00:00Z"))).await.unwrap();
    }
    (dir, store)
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

#[tokio::test]
async fn notifications_fan_out_once_to_subscribed_webhooks() {
    let (_dir, store) = store_with(&["acme", "globex"]).await;
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

    let t = "2026-12-05T12:00:00Z";
    assert!(store.notify(notification(NotificationKind::CapWarning, acme, "cap.80:acme", t)).await.unwrap());
    assert!(!store.notify(notification(NotificationKind::CapWarning, acme, "cap.80:acme", t)).await.unwrap(), "once");
    assert!(store.notify(notification(NotificationKind::CapReached, acme, "cap.100:acme", t)).await.unwrap());
    assert!(store.notify(notification(NotificationKind::CapWarning, globex, "cap.80:globex", t)).await.unwrap());
    let log = store.webhook_deliveries(100).await.unwrap();
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
    let claimed = store.claim_webhook_deliveries(now, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
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
}

#[tokio::test]
async fn credits_are_idempotent_by_reference_and_in_one_currency() {
    let (_dir, store) = store_with(&["acme"]).await;
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
}

//! What only the PostgreSQL store has to show: its feed is commit-ordered under concurrent
//! ingests, its schema is versioned and refused when newer, it lives in the schema it is given,
//! and what it cannot do (NUL characters, `backup_to`) is refused with a clear error.
//! The shared contract runs on it from `store.rs`, `billing.rs` and `webhooks.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datapact_core::Timestamp;
use datapact_core::ingest::{IngestRecord, parse_line};
use datapact_store::postgres::PgOptions;
use datapact_store::{IngestEffect, PgStore, Store, StoreError};
use stores::{drop_schema, fresh_schema, postgres_or_skip};

mod stores;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn post(id: i64, author: i64, text: &str) -> IngestRecord {
    let value = serde_json::json!({"id": id.to_string(), "text": text, "author_id": author.to_string(),
        "created_at": "2024-01-01T00:00:00Z", "author": {"id": author.to_string(), "username": format!("user{author}")}});
    parse_line(value.to_string().as_bytes()).unwrap()
}

/// A schema of one test, dropped when it ends (a panic included).
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn new() -> Option<Schema> {
        Some(Schema { url: postgres_or_skip().await?, name: fresh_schema() })
    }

    async fn connect(&self) -> Result<PgStore, StoreError> {
        PgStore::connect_with(&self.url, PgOptions { schema: Some(self.name.clone()), max_connections: 8 }).await
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        drop_schema(&self.url, &self.name);
    }
}

/// Writers commit in an order of their own; a follower reading the feed as it grows (as a
/// gateway does) must still see every row: no row may become visible with a `seq` below one the
/// follower already read. Without the writer lock, seqs taken from a sequence (or the largest
/// plus one read without a lock) break this as soon as two ingests overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingests_never_skip_a_seq_in_the_feed() {
    let Some(schema) = Schema::new().await else { return };
    let store = Arc::new(schema.connect().await.unwrap());
    store.ingest(vec![post(1, 1, "seed")], NOW).await.unwrap();

    let writers = 6;
    let batches = 15;
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut revisions, mut events) = (Vec::new(), Vec::new());
            let (mut after_revision, mut after_event) = (0, 0);
            loop {
                let finished = done.load(Ordering::SeqCst);
                // The watermark first: everything at or below it must then be readable.
                let (revision_head, event_head) = store.feed_watermark().await.unwrap().unwrap();
                loop {
                    let page = store.revisions_after(after_revision, 50).await.unwrap();
                    let Some(last) = page.last() else { break };
                    after_revision = last.seq;
                    revisions.extend(page.iter().map(|r| r.seq));
                }
                loop {
                    let page = store.events_after(after_event, 50).await.unwrap();
                    let Some(last) = page.last() else { break };
                    after_event = last.seq;
                    events.extend(page.iter().map(|e| e.seq));
                }
                assert!(after_revision >= revision_head, "revision watermark {revision_head} not readable");
                assert!(after_event >= event_head, "event watermark {event_head} not readable");
                if finished {
                    return (revisions, events);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for batch in 0..batches {
                let base = 1_000 + (writer * batches + batch) * 100;
                // Batches of different sizes so transactions overlap and finish out of order; each
                // corrects a post and deletes another, so post_events grows concurrently too.
                let size = 1 + (writer + batch) % 7;
                let mut records: Vec<IngestRecord> =
                    (0..size).map(|n| post(base + n, 100 + writer, &format!("w{writer} b{batch} n{n}"))).collect();
                records.push(post(base, 100 + writer, "corrected"));
                records
                    .push(IngestRecord::Delete { id: datapact_core::PostId::new(base + size - 1), deleted_at: None });
                let effects = store.ingest(records, NOW).await.unwrap();
                assert!(effects.iter().all(|e| !matches!(e, IngestEffect::Refused(_))), "{effects:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (seen_revisions, seen_events) = follower.await.unwrap();

    let all_revisions: Vec<i64> = store.revisions_after(0, 100_000).await.unwrap().iter().map(|r| r.seq).collect();
    let all_events: Vec<i64> = store.events_after(0, 100_000).await.unwrap().iter().map(|e| e.seq).collect();
    let expected_revisions: i64 =
        1 + (0..writers).flat_map(|w| (0..batches).map(move |b| 1 + (w + b) % 7 + 1)).sum::<i64>();
    assert_eq!(all_revisions.len() as i64, expected_revisions);
    assert_eq!(all_events.len() as i64, writers * batches * 2);
    // Gapless, as SQLite's rowids: 1, 2, 3, ...
    assert_eq!(all_revisions, (1..=expected_revisions).collect::<Vec<_>>());
    assert_eq!(all_events, (1..=writers * batches * 2).collect::<Vec<_>>());
    // The follower saw every row, each once, in order.
    assert_eq!(seen_revisions, all_revisions, "the follower missed or reordered revisions");
    assert_eq!(seen_events, all_events, "the follower missed or reordered events");
    assert_eq!(store.feed_watermark().await.unwrap(), Some((expected_revisions, writers * batches * 2)));
    store.close().await;
}

/// `sslmode=require` in the URL: the store talks to PostgreSQL over TLS (rustls). The test server
/// has TLS on (Debian's default); one without it refuses such a URL rather than talk in clear.
#[tokio::test]
async fn a_url_asking_for_tls_gets_tls() {
    let Some(schema) = Schema::new().await else { return };
    let separator = if schema.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}sslmode=require", schema.url);
    let mut conn = match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
        Ok(conn) => conn,
        Err(error) if error.to_string().contains("TLS") || error.to_string().contains("SSL") => {
            // A server without TLS: PostgreSQL itself refuses a required TLS session.
            let refused =
                PgStore::connect_with(&url, PgOptions { schema: Some(schema.name.clone()), max_connections: 1 });
            assert!(refused.await.is_err(), "a URL that requires TLS never falls back to clear text");
            return;
        }
        Err(error) => panic!("{error}"),
    };
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(tls, "the session is encrypted");
    let store = PgStore::connect_with(&url, PgOptions { schema: Some(schema.name.clone()), max_connections: 2 }).await;
    let store = store.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 12);
    store.close().await;
}

#[tokio::test]
async fn schema_is_versioned_and_a_newer_one_refused() {
    let Some(schema) = Schema::new().await else { return };
    let store = schema.connect().await.unwrap();
    // Every migration ran: the newest is the signed checkpoints' tables.
    assert_eq!(store.schema_version().await.unwrap(), 12);
    assert_eq!(store.fingerprint_ring().await.unwrap(), None);
    store.ingest(vec![post(1, 7, "kept")], NOW).await.unwrap();
    store.close().await;
    // Connecting again applies nothing and keeps the data.
    let store = schema.connect().await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 12);
    assert_eq!(store.stats().await.unwrap().posts, 1);
    store.close().await;

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url).await.unwrap();
    sqlx::raw_sql(&format!("UPDATE {}.datapact_schema SET version = 999", schema.name))
        .execute(&mut conn)
        .await
        .unwrap();
    let error = schema.connect().await.err().unwrap();
    assert!(error.to_string().contains("newer than this datapact knows"), "{error}");
}

#[tokio::test]
async fn the_url_search_path_chooses_the_schema() {
    let Some(schema) = Schema::new().await else { return };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA {}", schema.name)).execute(&mut conn).await.unwrap();
    let separator = if schema.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}options=-csearch_path%3D{}", schema.url, schema.name);
    let store = PgStore::connect(&url).await.unwrap();
    store.ingest(vec![post(1, 7, "here")], NOW).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'posts'",
    )
    .bind(&schema.name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 1, "the tables are in the URL's schema");
    store.close().await;
    let bad =
        PgStore::connect_with(&schema.url, PgOptions { schema: Some("No Such; Schema".into()), max_connections: 1 })
            .await
            .err()
            .unwrap();
    assert!(matches!(bad, StoreError::Invalid(_)), "{bad}");
    let not_a_url = PgStore::connect("mysql://nowhere").await.err().unwrap();
    assert!(matches!(not_a_url, StoreError::Invalid(_)), "{not_a_url}");
}

#[tokio::test]
async fn what_postgresql_cannot_do_is_refused_clearly() {
    let Some(schema) = Schema::new().await else { return };
    let store = schema.connect().await.unwrap();
    let effects = store.ingest(vec![post(1, 7, "ok"), post(2, 7, "nul \0 inside")], NOW).await.unwrap();
    assert_eq!(effects[0], IngestEffect::Inserted);
    assert!(matches!(&effects[1], IngestEffect::Refused(reason) if reason.contains("NUL")), "{effects:?}");
    assert!(store.licensee("a\0b").await.unwrap().is_none());
    assert!(store.user_by_username("user7\0").await.unwrap().is_none());
    let keys = store.keys(Some("a\0b")).await;
    assert!(matches!(keys, Err(StoreError::Invalid(_))), "{keys:?}");

    let out = tempfile::tempdir().unwrap();
    let backup = store.backup_to(&out.path().join(datapact_store::SQLITE_FILE)).await.unwrap_err();
    assert!(matches!(&backup, StoreError::Invalid(m) if m.contains("pg_dump")), "{backup}");
    store.close().await;
}

/// Invoice runs, payments and terms changes from several gateways at once: each waits for the
/// writer lock, so numbers stay gapless and nothing is paid twice over what is owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_invoices_gapless_and_payments_bounded() {
    use chrono::NaiveDate;
    use datapact_billing::{Charge, Currency, InvoiceLine, Money, Month};
    use datapact_store::{Change, NewInvoice, NewPayment};
    let Some(schema) = Schema::new().await else { return };
    let store = Arc::new(schema.connect().await.unwrap());
    let by = Change::new("test", NOW);
    let names: Vec<String> = (0..8).map(|n| format!("licensee-{n}")).collect();
    for name in &names {
        store.create_licensee(name, &by).await.unwrap();
    }
    let fee = Money::parse(Currency::Usd, "10.00").unwrap();
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let invoice = |licensee: &str| NewInvoice {
        licensee: licensee.into(),
        month: Month::new(2026, 12).unwrap(),
        plan: "basic".into(),
        lines: vec![InvoiceLine {
            first_day: day("2026-12-01"),
            last_day: day("2026-12-31"),
            charge: Charge::BaseFee { monthly_fee: fee, days: 31, days_in_month: 31 },
            amount: fee,
        }],
        total: fee,
        records: 0,
        due: day("2027-01-12"),
    };
    let runs = names.iter().map(|name| {
        let (store, invoice, by) = (Arc::clone(&store), invoice(name), by.clone());
        tokio::spawn(async move { store.issue_invoices(vec![invoice], &by).await })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.unwrap().unwrap();
    }
    let numbers: Vec<String> = store.invoices(None, None).await.unwrap().into_iter().map(|i| i.number).collect();
    assert_eq!(numbers, (1..=8).map(|n| format!("DP-{n:06}")).collect::<Vec<_>>());

    // Eight payments of 5.00 with different references to one 10.00 invoice: two are recorded.
    let number = store.invoices(Some("licensee-0"), None).await.unwrap().remove(0).number;
    let half = Money::parse(Currency::Usd, "5.00").unwrap();
    let payments = (0..8).map(|n| {
        let (store, by) = (Arc::clone(&store), by.clone());
        let payment = NewPayment {
            licensee: "licensee-0".into(),
            invoice: number.clone(),
            amount: half,
            reference: format!("wire-{n}"),
        };
        tokio::spawn(async move { store.record_payment(payment, &by).await })
    });
    let mut recorded = 0;
    for payment in payments.collect::<Vec<_>>() {
        match payment.await.unwrap() {
            Ok(_) => recorded += 1,
            Err(StoreError::Invalid(message)) => assert!(message.contains("paid in full"), "{message}"),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(recorded, 2);
    assert_eq!(store.payments(Some("licensee-0")).await.unwrap().len(), 2);
    store.close().await;
}

/// Credit notes and webhook claims from several gateways at once: credit notes stay gapless and
/// never take off more than is owed; no delivery is claimed by two senders under one lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_credit_notes_stay_gapless_and_claims_never_overlap() {
    use chrono::NaiveDate;
    use datapact_billing::{Charge, Currency, InvoiceLine, Money, Month};
    use datapact_store::notify::{NewNotification, NewWebhook};
    use datapact_store::{Change, NewCreditNote, NewInvoice};
    let Some(schema) = Schema::new().await else { return };
    let store = Arc::new(schema.connect().await.unwrap());
    let by = Change::new("test", NOW);
    let names: Vec<String> = (0..4).map(|n| format!("licensee-{n}")).collect();
    let fee = Money::parse(Currency::Usd, "10.00").unwrap();
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let mut invoices = Vec::new();
    for name in &names {
        store.create_licensee(name, &by).await.unwrap();
        invoices.push(NewInvoice {
            licensee: name.clone(),
            month: Month::new(2026, 12).unwrap(),
            plan: "basic".into(),
            lines: vec![InvoiceLine {
                first_day: day("2026-12-01"),
                last_day: day("2026-12-31"),
                charge: Charge::BaseFee { monthly_fee: fee, days: 31, days_in_month: 31 },
                amount: fee,
            }],
            total: fee,
            records: 0,
            due: day("2027-01-12"),
        });
    }
    let numbers: Vec<String> =
        store.issue_invoices(invoices, &by).await.unwrap().issued.into_iter().map(|i| i.number).collect();

    // Four credit notes of 4.00 against each 10.00 invoice at once: two each fit, numbered 1..=8.
    let four = Money::parse(Currency::Usd, "4.00").unwrap();
    let notes = numbers.iter().flat_map(|number| std::iter::repeat_n(number.clone(), 4)).map(|invoice| {
        let (store, by) = (Arc::clone(&store), by.clone());
        let note = NewCreditNote { invoice, amount: four, reason: "goodwill".into() };
        tokio::spawn(async move { store.issue_credit_note(note, &by).await })
    });
    let mut issued = 0;
    for note in notes.collect::<Vec<_>>() {
        match note.await.unwrap() {
            Ok(_) => issued += 1,
            Err(StoreError::Invalid(message)) => assert!(message.contains("outstanding"), "{message}"),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(issued, 8);
    let notes: Vec<String> = store.credit_notes(None).await.unwrap().into_iter().map(|c| c.number).collect();
    assert_eq!(notes, (1..=8).map(|n| format!("CN-{n:06}")).collect::<Vec<_>>());

    // Two webhooks, forty notifications: eighty deliveries, claimed by eight senders at once.
    for url in ["https://a.example/h", "https://b.example/h"] {
        let hook = NewWebhook {
            licensee: None,
            url: url.into(),
            events: vec![],
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        };
        store.add_webhook(hook, &by).await.unwrap();
    }
    let licensee_id = store.licensee("licensee-0").await.unwrap().unwrap().id;
    for n in 0..40 {
        let notification = NewNotification {
            kind: datapact_store::notify::NotificationKind::CapWarning,
            licensee_id,
            dedupe_key: format!("cap.80:{n}"),
            payload: serde_json::json!({ "n": n }),
            at: NOW,
        };
        assert!(store.notify(notification).await.unwrap());
    }
    let claims = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.claim_webhook_deliveries(NOW, 60_000, 15).await })
    });
    let mut claimed = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        claimed.extend(claim.await.unwrap().unwrap().into_iter().map(|d| (d.notification_id, d.webhook_id)));
    }
    let distinct: std::collections::HashSet<_> = claimed.iter().collect();
    assert_eq!(distinct.len(), claimed.len(), "a delivery claimed twice under one lease");
    assert_eq!(claimed.len(), 80, "every delivery claimed once");
    store.close().await;
}

//! Every store against the `Store` contract: each test runs on SQLite and on PostgreSQL
//! (`stores::store_tests!`); the tests of SQLite's own file and pragmas follow them.

use datapact_core::ingest::{IngestRecord, parse_line};
use datapact_core::{KeyHash, KeyPrefix, PostId, Timestamp, UserId};
use datapact_store::ops::{IngestBatcher, issue_key};
use datapact_store::{Change, IngestEffect, SqliteStore, Store, StoreError, TimelineQuery};
use stores::TestStore;

mod stores;

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

fn post(id: i64, author: i64, text: &str, with_author: bool) -> IngestRecord {
    let mut value = serde_json::json!({"id": id.to_string(), "text": text, "author_id": author.to_string(), "created_at": "2024-01-01T00:00:00Z"});
    if with_author {
        value["author"] = serde_json::json!({"id": author.to_string(), "username": format!("user{author}")});
    }
    parse_line(value.to_string().as_bytes()).unwrap()
}

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn by() -> Change {
    Change::new("test", NOW)
}

#[tokio::test]
async fn durability_is_full_and_checked() {
    let (_dir, store) = sqlite();
    assert_eq!(store.synchronous_level().await.unwrap(), 2, "synchronous=FULL");
}

async fn ingest_effects_and_revisions(store: &TestStore) {
    let effects = store
        .ingest(
            vec![
                post(1, 7, "first", true),
                post(1, 7, "first", false),
                post(1, 7, "first, corrected", false),
                post(2, 8, "unknown author", false),
                post(3, 7, "another", false),
                IngestRecord::Delete { id: PostId::new(3), deleted_at: None },
                IngestRecord::Delete { id: PostId::new(3), deleted_at: None },
                IngestRecord::Delete { id: PostId::new(99), deleted_at: None },
                post(1, 7, "first, corrected twice", false),
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(effects[0], IngestEffect::Inserted);
    assert_eq!(effects[1], IngestEffect::Unchanged);
    assert_eq!(effects[2], IngestEffect::Corrected { revision: 2 });
    assert!(matches!(&effects[3], IngestEffect::Refused(reason) if reason.contains("unknown author 8")));
    assert_eq!(effects[4], IngestEffect::Inserted);
    assert_eq!(effects[5], IngestEffect::Deleted);
    assert_eq!(effects[6], IngestEffect::AlreadyDeleted);
    assert!(matches!(&effects[7], IngestEffect::Refused(_)));
    assert_eq!(effects[8], IngestEffect::Corrected { revision: 3 });

    let posts = store.posts_by_ids(&[PostId::new(1), PostId::new(3)]).await.unwrap();
    let first = posts.iter().find(|p| p.id == PostId::new(1)).unwrap();
    assert_eq!((first.text.as_str(), first.revision), ("first, corrected twice", 3));
    let deleted = posts.iter().find(|p| p.id == PostId::new(3)).unwrap();
    assert_eq!(deleted.deleted_at, Some(NOW));
    let timeline = store.timeline(UserId::new(7), TimelineQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(timeline.iter().map(|p| p.id.get()).collect::<Vec<_>>(), vec![1], "deleted posts leave timelines");
    let users = store.users_by_ids(&[UserId::new(7)]).await.unwrap();
    assert_eq!(users[0].post_count, 1);
}

async fn a_username_belongs_to_one_author(store: &TestStore) {
    let clash = parse_line(
        br#"{"id":"2","text":"x","created_at":"2024-01-01T00:00:00Z","author":{"id":"8","username":"USER7"}}"#,
    )
    .unwrap();
    let effects = store.ingest(vec![post(1, 7, "a", true), clash], NOW).await.unwrap();
    assert!(matches!(&effects[1], IngestEffect::Refused(reason) if reason.contains("already belongs")), "{effects:?}");
    assert_eq!(store.user_by_username("User7").await.unwrap().unwrap().author.id, UserId::new(7));
}

async fn change_counter_moves_with_rights_not_bookkeeping(store: &TestStore) {
    let start = store.change_counter().await.unwrap();
    store.create_licensee("acme", &by()).await.unwrap();
    let after_licensee = store.change_counter().await.unwrap();
    assert!(after_licensee > start);
    let (key, record) = issue_key(&**store, "acme", "search", None, &by()).await.unwrap();
    let after_key = store.change_counter().await.unwrap();
    assert!(after_key > after_licensee);
    store.record_key_use(vec![(record.prefix.clone(), NOW.plus_millis(5))]).await.unwrap();
    assert_eq!(store.change_counter().await.unwrap(), after_key, "last_used_at is not a change of rights");
    assert_eq!(store.keys(Some("acme")).await.unwrap()[0].last_used_at, Some(NOW.plus_millis(5)));
    store.revoke_key(&key.prefix(), &by()).await.unwrap();
    assert!(store.change_counter().await.unwrap() > after_key);
    let grants = store.key_grants().await.unwrap();
    assert_eq!(grants[0].hash, key.hash());
    assert_eq!(grants[0].record.revoked_at, Some(NOW));
}

async fn key_and_licensee_errors(store: &TestStore) {
    assert!(matches!(store.create_licensee("Bad Name", &by()).await, Err(StoreError::Invalid(_))));
    store.create_licensee("acme", &by()).await.unwrap();
    assert!(matches!(store.create_licensee("acme", &by()).await, Err(StoreError::Conflict(_))));
    assert!(matches!(issue_key(&**store, "ghost", "search", None, &by()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(issue_key(&**store, "acme", "search", Some(NOW), &by()).await, Err(StoreError::Invalid(_))));
    let prefix = KeyPrefix("dpk_000000000000".into());
    store.insert_key("acme", &prefix, KeyHash([1; 32]), "search", None, &by()).await.unwrap();
    assert!(matches!(
        store.insert_key("acme", &prefix, KeyHash([2; 32]), "search", None, &by()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(store.revoke_key(&KeyPrefix("dpk_nope".into()), &by()).await, Err(StoreError::NotFound(_))));
    let blocked = store.set_licensee_status("acme", datapact_core::LicenseeStatus::Blocked, " ", &by()).await;
    assert!(matches!(blocked, Err(StoreError::Invalid(_))), "a block needs a reason");
    store.ingest(vec![post(1, 7, "a", true)], NOW).await.unwrap();
    let opt_out = store.set_opt_out(UserId::new(7), "training", true, &by()).await;
    assert!(matches!(opt_out, Err(StoreError::Invalid(_))), "opt-outs name purposes");
    assert!(store.opt_outs().await.unwrap().is_empty());
}

async fn batcher_reports_rejections_in_line_order_across_batches(store: &TestStore) {
    let mut batcher = IngestBatcher::new(&**store);
    let mut lines = vec![serde_json::json!({"id": "1", "text": "a", "created_at": "2024-01-01T00:00:00Z", "author": {"id": "1", "username": "a"}}).to_string()];
    for n in 2..=5_000 {
        lines.push(match n % 1_000 {
            0 => "garbage".to_owned(),
            999 => format!(r#"{{"id":"{n}","text":"t","author_id":"404","created_at":"2024-01-01T00:00:00Z"}}"#),
            _ => format!(r#"{{"id":"{n}","text":"t{n}","author_id":"1","created_at":"2024-01-01T00:00:00Z"}}"#),
        });
    }
    let mut rejected = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        batcher.push(index as u64 + 1, line.as_bytes(), NOW).await.unwrap();
        rejected.extend(batcher.take_rejections());
    }
    batcher.flush(NOW).await.unwrap();
    rejected.extend(batcher.take_rejections());
    let numbers: Vec<u64> = rejected.iter().map(|r| r.line).collect();
    assert_eq!(numbers, vec![999, 1000, 1999, 2000, 2999, 3000, 3999, 4000, 4999, 5000]);
    assert_eq!(batcher.counts().inserted, 4_990);
    assert_eq!(store.stats().await.unwrap().posts, 4_990);
}

#[tokio::test]
async fn reopening_keeps_data_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.ingest(vec![post(1, 7, "kept", true)], NOW).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.stats().await.unwrap().posts, 1);
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(datapact_store::SQLITE_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let error = SqliteStore::open(dir.path()).err().unwrap();
    assert!(error.to_string().contains("newer than this datapact knows"), "{error}");
}

async fn change_feeds_follow_ingest_order(store: &TestStore) {
    store.ingest(vec![post(5, 7, "five", true), post(3, 7, "three", false)], NOW).await.unwrap();
    store.ingest(vec![post(5, 7, "five, corrected", false)], NOW.plus_millis(60_000)).await.unwrap();
    store
        .ingest(vec![IngestRecord::Delete { id: PostId::new(3), deleted_at: None }], NOW.plus_millis(120_000))
        .await
        .unwrap();

    let revisions = store.revisions_after(0, 10).await.unwrap();
    let seen: Vec<(i64, u32, &str)> =
        revisions.iter().map(|r| (r.post.id.get(), r.post.revision, r.post.text.as_str())).collect();
    assert_eq!(seen, vec![(5, 1, "five"), (3, 1, "three"), (5, 2, "five, corrected")]);
    assert!(revisions.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(revisions[1].post.deleted_at, Some(NOW.plus_millis(120_000)), "entries carry the post's current state");
    let later = store.revisions_after(revisions[0].seq, 1).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].seq, revisions[1].seq);

    assert_eq!(store.first_revision_since(NOW).await.unwrap(), revisions[0].seq);
    assert_eq!(store.first_revision_since(NOW.plus_millis(1)).await.unwrap(), revisions[2].seq);
    assert_eq!(store.first_revision_since(NOW.plus_millis(60_001)).await.unwrap(), revisions[2].seq + 1);

    let events = store.events_after(0, 10).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.post_id.get(), e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (5, datapact_store::PostEventKind::Corrected { revision: 2 }),
            (3, datapact_store::PostEventKind::Deleted)
        ]
    );
    assert!(store.events_after(events[1].seq, 10).await.unwrap().is_empty());
}

async fn every_change_of_rights_is_audited_in_its_transaction(store: &TestStore) {
    use datapact_core::LicenseeStatus;
    use datapact_store::TermsChange;
    store.create_licensee("acme", &by()).await.unwrap();
    let (key, _) = issue_key(&**store, "acme", "ai-train", None, &by()).await.unwrap();
    store.revoke_key(&key.prefix(), &by()).await.unwrap();
    store.revoke_key(&key.prefix(), &by()).await.unwrap(); // no change, no entry
    store.set_licensee_status("acme", LicenseeStatus::Blocked, "unpaid", &by()).await.unwrap();
    let plan = serde_json::json!({"name": "basic", "monthly_records": 10});
    store
        .apply_terms(
            vec![
                TermsChange::PutPlan { name: "basic".into(), body: plan.clone() },
                TermsChange::PutLicensee {
                    name: "nimbus".into(),
                    terms: serde_json::json!({"plan": "basic"}),
                    status: None,
                },
            ],
            &by(),
        )
        .await
        .unwrap();
    store.apply_terms(vec![TermsChange::PutPlan { name: "basic".into(), body: plan }], &by()).await.unwrap(); // unchanged
    store.ingest(vec![post(1, 7, "a", true)], NOW).await.unwrap();
    store.set_opt_out(UserId::new(7), "ai-train", true, &by()).await.unwrap();
    assert!(store.set_opt_out(UserId::new(8), "ai-train", true, &by()).await.is_err());

    let log = store.audit_log(100).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|entry| entry.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "licensee.create",
            "key.issue",
            "key.revoke",
            "licensee.block",
            "plan.put",
            "licensee.create",
            "licensee.terms",
            "opt_out.add"
        ]
    );
    let block = log.iter().find(|e| e.action == "licensee.block").unwrap();
    assert_eq!(block.before.as_ref().unwrap()["status"], "active");
    assert_eq!(block.after.as_ref().unwrap()["status"], "blocked");
    assert_eq!(block.after.as_ref().unwrap()["reason"], "unpaid");
    assert!(log.iter().all(|e| e.actor == "test"));
    assert_eq!(store.keys(Some("acme")).await.unwrap()[0].purpose, "ai-train");
    assert_eq!(store.opt_outs().await.unwrap(), vec![(UserId::new(7), "ai-train".to_owned())]);

    // The log cannot be edited, even directly.
    let refused = store.execute_raw("UPDATE audit_log SET actor = 'someone else'").await.unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    assert!(store.execute_raw("DELETE FROM audit_log").await.unwrap_err().contains("append-only"));
    if store.kind() == "postgres" {
        assert!(store.execute_raw("TRUNCATE audit_log").await.unwrap_err().contains("append-only"));
    }
}

async fn violations_aggregate_with_recent_samples(store: &TestStore) {
    use datapact_store::ViolationEvent;
    let licensee = store.create_licensee("acme", &by()).await.unwrap();
    let events = (0..15)
        .map(|n| ViolationEvent {
            licensee_id: licensee.id,
            kind: "rate_limited".into(),
            at: NOW.plus_millis(n),
            request_id: format!("req-{n}"),
            client: "203.0.113.9".into(),
        })
        .collect();
    store.record_violations(events).await.unwrap();
    let violations = store.violations(Some("acme")).await.unwrap();
    assert_eq!(violations.len(), 1);
    let violation = &violations[0];
    assert_eq!((violation.count, violation.first_at, violation.last_at), (15, NOW, NOW.plus_millis(14)));
    assert_eq!(violation.samples.len(), datapact_store::VIOLATION_SAMPLES);
    assert_eq!(violation.samples.last().unwrap().request_id, "req-14");
    assert!(store.violations(Some("other")).await.unwrap().is_empty());
}

/// Beside the running total, each violation is counted on its UTC day, so a period can be read
/// exactly: days split at midnight, kinds apart, samples per day, the range half-open.
async fn violations_are_counted_per_day(store: &TestStore) {
    use datapact_store::{ViolationEvent, day_start};
    const DAY: i64 = 86_400_000;
    let acme = store.create_licensee("acme", &by()).await.unwrap();
    let other = store.create_licensee("other", &by()).await.unwrap();
    let midnight = day_start(NOW).plus_millis(DAY);
    let event = |licensee_id, kind: &str, at: Timestamp, n: i64| ViolationEvent {
        licensee_id,
        kind: kind.into(),
        at,
        request_id: format!("req-{n}"),
        client: "203.0.113.9".into(),
    };
    // Three in the last second before midnight, twelve after it, one of another kind, one by
    // another licensee; in two batches.
    let mut events: Vec<_> =
        (0..3).map(|n| event(acme.id, "rate_limited", midnight.plus_millis(-1_000 + n), n)).collect();
    events.push(event(other.id, "rate_limited", midnight, 99));
    store.record_violations(events).await.unwrap();
    let mut events: Vec<_> = (3..15).map(|n| event(acme.id, "rate_limited", midnight.plus_millis(n), n)).collect();
    events.push(event(acme.id, "blocked", midnight.plus_millis(DAY + 5), 50));
    store.record_violations(events).await.unwrap();

    let all = store.violation_days(Some(acme.id), Timestamp(i64::MIN), Timestamp(i64::MAX)).await.unwrap();
    let summary: Vec<_> = all.iter().map(|d| (d.kind.as_str(), d.day_start, d.count, d.first_at, d.last_at)).collect();
    assert_eq!(
        summary,
        vec![
            ("blocked", midnight.plus_millis(DAY), 1, midnight.plus_millis(DAY + 5), midnight.plus_millis(DAY + 5)),
            ("rate_limited", day_start(NOW), 3, midnight.plus_millis(-1_000), midnight.plus_millis(-998)),
            ("rate_limited", midnight, 12, midnight.plus_millis(3), midnight.plus_millis(14)),
        ]
    );
    // The day totals add up to the running total.
    let total = store.violations(Some("acme")).await.unwrap();
    let rate_limited = total.iter().find(|v| v.kind == "rate_limited").unwrap();
    assert_eq!(rate_limited.count, 15);
    // Samples are per day: the newest ten of the day.
    assert_eq!(all[2].samples.len(), datapact_store::VIOLATION_SAMPLES);
    assert_eq!(all[2].samples.last().unwrap().request_id, "req-14");
    assert_eq!(all[1].samples.iter().map(|s| s.request_id.as_str()).collect::<Vec<_>>(), ["req-0", "req-1", "req-2"]);
    // Every licensee's at once: acme's three rows, then the other's one.
    let everyone = store.violation_days(None, Timestamp(i64::MIN), Timestamp(i64::MAX)).await.unwrap();
    let owners: Vec<i64> = everyone.iter().map(|d| d.licensee_id).collect();
    assert_eq!(owners, [acme.id, acme.id, acme.id, other.id]);
    assert_eq!((everyone[3].count, everyone[3].day_start), (1, midnight));
    // [from, until): a range that starts at midnight leaves the day before out.
    let from_midnight = store.violation_days(Some(acme.id), midnight, midnight.plus_millis(DAY)).await.unwrap();
    assert_eq!(from_midnight.iter().map(|d| d.count).collect::<Vec<_>>(), vec![12]);
    assert!(
        store
            .violation_days(Some(acme.id), midnight.plus_millis(2 * DAY), Timestamp(i64::MAX))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn trace_findings_are_kept_newest_first(store: &TestStore) {
    use datapact_store::{LeakFile, NewTraceFinding};
    assert!(store.trace_findings(10).await.unwrap().is_empty());
    for (i, outcome) in ["InsufficientEvidence", "Accused"].into_iter().enumerate() {
        let finding = NewTraceFinding {
            at: Timestamp(NOW.0 + i as i64),
            actor: "cli@test".into(),
            leak_files: vec![LeakFile { name: format!("leak{i}.csv"), bytes: 10, sha256: "ab".repeat(32) }],
            outcome: outcome.into(),
            accused: if i == 1 { vec![7] } else { vec![] },
            report: serde_json::json!({"outcome": outcome}),
        };
        store.record_trace_finding(finding).await.unwrap();
    }
    let found = store.trace_findings(10).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].finding.outcome, "Accused");
    assert_eq!(found[0].finding.accused, vec![7]);
    assert_eq!(found[0].finding.leak_files[0].name, "leak1.csv");
    assert_eq!(found[0].finding.report["outcome"], "Accused");
    assert_eq!(found[1].finding.at, NOW);
    assert_eq!(store.trace_findings(1).await.unwrap().len(), 1);
}

/// The reads a gateway makes, on a small corpus: lookups, liveness, timelines, recency, users,
/// the feed's watermark, licensees and terms in byte order, and what moves the change counter.
async fn reads_agree_on_every_store(store: &TestStore) {
    use datapact_store::TermsChange;
    let records = (1..=6).map(|id| post(id, 7, &format!("post {id}"), id == 1)).collect();
    store.ingest(records, NOW).await.unwrap();
    store.ingest(vec![post(5, 7, "post 5, corrected", false)], NOW).await.unwrap();
    store.ingest(vec![IngestRecord::Delete { id: PostId::new(3), deleted_at: None }], NOW).await.unwrap();

    let mut found: Vec<i64> = store
        .posts_by_ids(&[PostId::new(1), PostId::new(1), PostId::new(3)])
        .await
        .unwrap()
        .iter()
        .map(|p| p.id.get())
        .collect();
    found.sort_unstable();
    assert_eq!(found, [1, 3], "duplicates once, deleted posts included");
    let mut live =
        store.live_post_revisions(&[PostId::new(5), PostId::new(3), PostId::new(1), PostId::new(99)]).await.unwrap();
    live.sort_unstable_by_key(|(id, _, _)| id.get());
    assert_eq!(live, vec![(PostId::new(1), 1, UserId::new(7)), (PostId::new(5), 2, UserId::new(7))]);
    let ids = |posts: Vec<datapact_core::Post>| posts.iter().map(|p| p.id.get()).collect::<Vec<_>>();
    assert_eq!(ids(store.recent_posts(2).await.unwrap()), [6, 5]);
    let between = TimelineQuery {
        before_id: Some(PostId::new(5)),
        after_id: Some(PostId::new(1)),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.timeline(UserId::new(7), between).await.unwrap()), [4, 2]);
    let created = Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let from = TimelineQuery { start_time: Some(created), limit: 2, ..Default::default() };
    assert_eq!(ids(store.timeline(UserId::new(7), from).await.unwrap()), [6, 5]);
    let until = TimelineQuery { end_time: Some(created), limit: 10, ..Default::default() };
    assert!(store.timeline(UserId::new(7), until).await.unwrap().is_empty());
    assert_eq!(store.users_by_ids(&[UserId::new(7), UserId::new(7), UserId::new(404)]).await.unwrap().len(), 1);
    assert!(store.user_by_username("nobody").await.unwrap().is_none());
    assert_eq!(
        store.feed_watermark().await.unwrap(),
        Some((7, 2)),
        "6 posts and a correction; a correction and a deletion"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.posts, stats.deleted_posts, stats.authors), (5, 1, 1));

    for name in ["beta", "alpha-2", "alpha"] {
        store.create_licensee(name, &by()).await.unwrap();
    }
    let names: Vec<String> = store.licensees().await.unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["alpha", "alpha-2", "beta"], "byte order, whatever the database's locale");
    assert_eq!(store.licensee("beta").await.unwrap().unwrap().name, "beta");
    assert!(store.licensee("gamma").await.unwrap().is_none());

    let counter = store.change_counter().await.unwrap();
    let plan = |name: &str| TermsChange::PutPlan { name: name.into(), body: serde_json::json!({"name": name}) };
    store.apply_terms(vec![plan("zeta"), plan("basic")], &by()).await.unwrap();
    let after_plans = store.change_counter().await.unwrap();
    assert!(after_plans > counter);
    let books = serde_json::json!([{"name": "standard"}]);
    store.apply_terms(vec![TermsChange::PutPriceBooks { body: books.clone() }], &by()).await.unwrap();
    let after_books = store.change_counter().await.unwrap();
    assert!(after_books > after_plans, "price books decide invoices");
    store.apply_terms(vec![TermsChange::PutPriceBooks { body: books.clone() }], &by()).await.unwrap();
    assert_eq!(store.change_counter().await.unwrap(), after_books, "the same price books again change nothing");
    store.set_opt_out(UserId::new(7), "ai-train", true, &by()).await.unwrap();
    assert!(store.change_counter().await.unwrap() > after_books);
    let terms = store.terms_state().await.unwrap();
    assert_eq!(terms.plans.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["basic", "zeta"]);
    assert_eq!(terms.price_books, Some(books));
    assert_eq!(terms.licensees.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["alpha", "alpha-2", "beta"]);
    let missing = store.set_opt_out(UserId::new(404), "ai-train", true, &by()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

/// A post whose `author` object carries more than a username (`author` is merged into it).
fn authored(id: i64, text: &str, author: serde_json::Value) -> IngestRecord {
    let value =
        serde_json::json!({"id": id.to_string(), "text": text, "created_at": "2024-01-01T00:00:00Z", "author": author});
    parse_line(value.to_string().as_bytes()).unwrap()
}

fn delete(id: i64) -> IngestRecord {
    IngestRecord::Delete { id: PostId::new(id), deleted_at: None }
}

/// Within one batch each record sees what the records before it did: the same id twice, an edit
/// after a create, an author introduced by an earlier record, a deletion of a post created
/// earlier, a username an earlier record gave up; a refused record changes nothing for the
/// others. Applied in any other order (or all at once against the state before the batch) the
/// effects, revisions and events below differ.
async fn in_batch_records_depend_on_earlier_ones(store: &TestStore) {
    use datapact_store::PostEventKind::{Corrected, Deleted};
    let counter = store.change_counter().await.unwrap();
    let effects = store
        .ingest(
            vec![
                // Author 7 is new; the second post is by the author just introduced.
                post(1, 7, "one", true),
                post(2, 7, "two", false),
                // The same id twice, then an edit after the create.
                post(1, 7, "one", false),
                post(1, 7, "one, edited", false),
                // Refused (7 holds the username), so author 8 is still unknown after it.
                authored(10, "clash", serde_json::json!({"id": "8", "username": "USER7"})),
                post(11, 8, "eleven", false),
                // A deletion of the post created above, twice; its text still corrects.
                delete(2),
                delete(2),
                post(2, 7, "two", false),
                post(2, 7, "two, after its deletion", false),
                delete(404),
                // 7 gives its username up, then 8 takes it.
                authored(12, "renamed", serde_json::json!({"id": "7", "username": "seven", "opt_out": ["ai-train"]})),
                authored(13, "freed", serde_json::json!({"id": "8", "username": "user7", "name": "Eight"})),
                authored(14, "again", serde_json::json!({"id": "7", "username": "seven", "opt_out": ["ai-train"]})),
                post(1, 7, "one, edited twice", false),
            ],
            NOW,
        )
        .await
        .unwrap();
    let refused = |effect: &IngestEffect, part: &str| matches!(effect, IngestEffect::Refused(r) if r.contains(part));
    assert_eq!(effects.len(), 15);
    assert_eq!(
        effects[..4],
        [
            IngestEffect::Inserted,
            IngestEffect::Inserted,
            IngestEffect::Unchanged,
            IngestEffect::Corrected { revision: 2 }
        ]
    );
    assert!(refused(&effects[4], "\"USER7\" already belongs to another author"), "{effects:?}");
    assert!(refused(&effects[5], "unknown author 8"), "{effects:?}");
    assert_eq!(
        effects[6..10],
        [
            IngestEffect::Deleted,
            IngestEffect::AlreadyDeleted,
            IngestEffect::Unchanged,
            IngestEffect::Corrected { revision: 2 }
        ]
    );
    assert_eq!(effects[10], IngestEffect::Refused("no post with id 404 to delete".into()));
    assert_eq!(
        effects[11..],
        [
            IngestEffect::Inserted,
            IngestEffect::Inserted,
            IngestEffect::Inserted,
            IngestEffect::Corrected { revision: 3 }
        ]
    );

    let revisions = store.revisions_after(0, 100).await.unwrap();
    let seen: Vec<(i64, i64, u32)> = revisions.iter().map(|r| (r.seq, r.post.id.get(), r.post.revision)).collect();
    assert_eq!(seen, [(1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 2, 2), (5, 12, 1), (6, 13, 1), (7, 14, 1), (8, 1, 3)]);
    let current =
        store.posts_by_ids(&[PostId::new(1), PostId::new(2), PostId::new(10), PostId::new(11)]).await.unwrap();
    assert_eq!(current.len(), 2, "refused records wrote no post");
    let one = current.iter().find(|p| p.id == PostId::new(1)).unwrap();
    assert_eq!((one.text.as_str(), one.revision, one.deleted_at), ("one, edited twice", 3, None));
    let two = current.iter().find(|p| p.id == PostId::new(2)).unwrap();
    assert_eq!((two.text.as_str(), two.revision, two.deleted_at), ("two, after its deletion", 2, Some(NOW)));

    let events: Vec<(i64, i64, datapact_store::PostEventKind)> =
        store.events_after(0, 100).await.unwrap().iter().map(|e| (e.seq, e.post_id.get(), e.kind)).collect();
    assert_eq!(
        events,
        [
            (1, 1, Corrected { revision: 2 }),
            (2, 2, Deleted),
            (3, 2, Corrected { revision: 2 }),
            (4, 1, Corrected { revision: 3 })
        ]
    );
    assert_eq!(store.feed_watermark().await.unwrap(), Some((8, 4)));

    let mut users: Vec<(i64, String, String)> = store
        .users_by_ids(&[UserId::new(7), UserId::new(8)])
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.author.id.get(), u.author.username, u.author.name))
        .collect();
    users.sort();
    assert_eq!(users, [(7, "seven".into(), "seven".into()), (8, "user7".into(), "Eight".into())]);
    assert_eq!(store.opt_outs().await.unwrap(), [(UserId::new(7), "ai-train".to_owned())]);
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(
        log.iter().map(|e| (e.action.as_str(), e.subject.as_str())).collect::<Vec<_>>(),
        [("opt_out.add", "author:7/ai-train")]
    );
    assert_eq!(store.change_counter().await.unwrap(), counter + 1, "one opt-out added, once");

    // Authors stored before the batch swap their usernames through a third one, then one is
    // renamed and another introduced after a refusal; the details of the last upsert stay.
    let effects = store
        .ingest(
            vec![
                authored(20, "a", serde_json::json!({"id": "7", "username": "tmp"})),
                authored(21, "b", serde_json::json!({"id": "8", "username": "Seven", "name": "Eight"})),
                authored(22, "c", serde_json::json!({"id": "9", "username": "TMP"})), // refused: 7 holds it
                authored(23, "d", serde_json::json!({"id": "7", "username": "user7", "location": "Bonn"})),
                authored(24, "e", serde_json::json!({"id": "9", "username": "tmp", "opt_out": ["ai-all", "ai-train"]})),
                post(25, 9, "f", false),
                authored(
                    26,
                    "g",
                    serde_json::json!({"id": "8", "username": "Seven", "name": "Eight", "verified": true}),
                ),
                delete(24),
                post(20, 7, "a, edited", false),
            ],
            NOW.plus_millis(1_000),
        )
        .await
        .unwrap();
    assert!(refused(&effects[2], "\"TMP\" already belongs"), "{effects:?}");
    let others: Vec<&IngestEffect> = effects.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, e)| e).collect();
    assert_eq!(
        others,
        [
            &IngestEffect::Inserted,
            &IngestEffect::Inserted,
            &IngestEffect::Inserted,
            &IngestEffect::Inserted,
            &IngestEffect::Inserted,
            &IngestEffect::Inserted,
            &IngestEffect::Deleted,
            &IngestEffect::Corrected { revision: 2 }
        ]
    );
    let mut users: Vec<(i64, String, String, Option<String>, bool)> = store
        .users_by_ids(&[UserId::new(7), UserId::new(8), UserId::new(9)])
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.author.id.get(), u.author.username, u.author.name, u.author.location, u.author.verified))
        .collect();
    users.sort();
    assert_eq!(
        users,
        [
            (7, "user7".into(), "user7".into(), Some("Bonn".into()), false),
            (8, "Seven".into(), "Eight".into(), None, true),
            (9, "tmp".into(), "tmp".into(), None, false)
        ]
    );
    assert_eq!(store.user_by_username("SEVEN").await.unwrap().unwrap().author.id, UserId::new(8));
    let mut opt_outs = store.opt_outs().await.unwrap();
    opt_outs.sort();
    assert_eq!(
        opt_outs,
        [
            (UserId::new(7), "ai-train".to_owned()),
            (UserId::new(9), "ai-all".to_owned()),
            (UserId::new(9), "ai-train".to_owned())
        ]
    );
    let log = store.audit_log(10).await.unwrap();
    let subjects: Vec<&str> = log.iter().rev().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["author:7/ai-train", "author:9/ai-all", "author:9/ai-train"], "in record order");
    assert_eq!(store.change_counter().await.unwrap(), counter + 3);
    let revisions = store.revisions_after(8, 100).await.unwrap();
    let seen: Vec<(i64, i64, u32)> = revisions.iter().map(|r| (r.seq, r.post.id.get(), r.post.revision)).collect();
    assert_eq!(seen, [(9, 20, 1), (10, 21, 1), (11, 23, 1), (12, 24, 1), (13, 25, 1), (14, 26, 1), (15, 20, 2)]);
    let events: Vec<(i64, i64, datapact_store::PostEventKind)> =
        store.events_after(4, 100).await.unwrap().iter().map(|e| (e.seq, e.post_id.get(), e.kind)).collect();
    assert_eq!(events, [(5, 24, Deleted), (6, 20, Corrected { revision: 2 })]);
    let twenty = &store.posts_by_ids(&[PostId::new(20)]).await.unwrap()[0];
    assert_eq!((twenty.text.as_str(), twenty.revision), ("a, edited", 2));
}

/// A small pseudo-random generator (xorshift64*), so the stores see the same "random" batches.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % sides
    }
}

/// Batches full of records that depend on each other (few ids, authors and usernames; edits,
/// repeats, deletions, renames, clashes, opt-outs), generated once.
fn tangled_batches() -> Vec<Vec<IngestRecord>> {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let usernames = ["ann", "Ann", "bob", "BOB", "cy", "dee", "eve", "fay", "gus", "hal"];
    let texts = ["hello", "hello, edited", "bye"];
    let purposes = ["ai-train", "ai-all", "ai-index"];
    (0..8)
        .map(|batch| {
            (0..60)
                .map(|n| {
                    let id = 1 + dice.roll(25) as i64;
                    let author = 1 + dice.roll(5);
                    match dice.roll(10) {
                        0 | 1 => delete(id),
                        2..=5 => {
                            let mut author_json = serde_json::json!({
                                "id": author.to_string(),
                                "username": usernames[dice.roll(usernames.len() as u64) as usize],
                                "created_at": format!("2024-01-0{}T00:00:00Z", 1 + dice.roll(9)),
                                "public_metrics": {"followers_count": dice.roll(3)},
                            });
                            if dice.roll(3) == 0 {
                                author_json["name"] = serde_json::json!(format!("Name {}", dice.roll(2)));
                            }
                            if dice.roll(4) == 0 {
                                author_json["opt_out"] = serde_json::json!([purposes[dice.roll(3) as usize]]);
                            }
                            let text = texts[dice.roll(texts.len() as u64) as usize];
                            let value = serde_json::json!({
                                "id": id.to_string(), "text": text, "author": author_json,
                                "created_at": format!("2024-02-0{}T00:00:00Z", 1 + batch % 9),
                                "public_metrics": {"like_count": n},
                            });
                            parse_line(value.to_string().as_bytes()).unwrap()
                        }
                        _ => post(id, author as i64, texts[dice.roll(texts.len() as u64) as usize], false),
                    }
                })
                .collect()
        })
        .collect()
}

/// Everything a batch can change, as each store reports it.
async fn everything(store: &TestStore) -> serde_json::Value {
    let ids: Vec<PostId> = (1..=25).map(PostId::new).collect();
    let mut posts = store.posts_by_ids(&ids).await.unwrap();
    posts.sort_by_key(|p| p.id);
    let users: Vec<UserId> = (1..=5).map(UserId::new).collect();
    let mut users = store.users_by_ids(&users).await.unwrap();
    users.sort_by_key(|u| u.author.id);
    let mut opt_outs = store.opt_outs().await.unwrap();
    opt_outs.sort();
    let revisions: Vec<_> = store
        .revisions_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.ingested_at, r.post.id, r.post.revision, r.post.text))
        .collect();
    let events: Vec<_> = store
        .events_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.post_id, format!("{:?}", e.kind), e.at))
        .collect();
    let audit: Vec<_> = store
        .audit_log(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.at, e.actor, e.action, e.subject, e.before, e.after))
        .collect();
    serde_json::json!({
        "posts": format!("{posts:?}"),
        "users": format!("{users:?}"),
        "opt_outs": format!("{opt_outs:?}"),
        "revisions": format!("{revisions:?}"),
        "events": format!("{events:?}"),
        "audit": format!("{audit:?}"),
        "feed": format!("{:?}", store.feed_watermark().await.unwrap()),
        "stats": format!("{:?}", store.stats().await.unwrap()),
        "change_counter": store.change_counter().await.unwrap(),
    })
}

/// The same tangled batches on SQLite and on PostgreSQL: the same effects, record by record,
/// and the same rows, feed and audit log after each batch.
#[tokio::test]
async fn both_stores_agree_on_batches_whose_records_depend_on_each_other() {
    let Some(postgres) = TestStore::postgres().await else { return };
    let sqlite = TestStore::sqlite();
    let mut refused = 0;
    for (n, batch) in tangled_batches().into_iter().enumerate() {
        let now = NOW.plus_millis(n as i64 * 1_000);
        let expected = sqlite.ingest(batch.clone(), now).await.unwrap();
        let effects = postgres.ingest(batch, now).await.unwrap();
        for (index, (sqlite_effect, postgres_effect)) in expected.iter().zip(&effects).enumerate() {
            assert_eq!(postgres_effect, sqlite_effect, "batch {n}, record {index}");
        }
        assert_eq!(effects.len(), expected.len());
        refused += effects.iter().filter(|e| matches!(e, IngestEffect::Refused(_))).count();
        assert_eq!(everything(&postgres).await, everything(&sqlite).await, "after batch {n}");
    }
    assert!(refused > 0, "the batches exercise refusals too");
}

/// Machines sharing a store share one fingerprint secret ring: the first creates it, the others
/// take it, a rotation on one reaches the others at their next sync, two different keys under
/// one version number are refused (nothing overwritten), and concurrent syncs agree.
async fn machines_sharing_a_store_share_one_fingerprint_ring(store: &TestStore) {
    use datapact_store::secrets::SecretRing;
    let now = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = (dirs[0].path(), dirs[1].path());
    assert_eq!(store.fingerprint_ring().await.unwrap(), None);
    let first = SecretRing::sync_with_store(a, &**store, now).await.unwrap();
    assert_eq!(first.versions().map(|s| s.version()).collect::<Vec<_>>(), [1]);
    assert!(store.fingerprint_ring().await.unwrap().is_some(), "kept in the store");
    let taken = SecretRing::sync_with_store(b, &**store, now).await.unwrap();
    assert_eq!(taken, first, "the second machine renders with the same key");
    assert_eq!(SecretRing::load(b).unwrap(), Some(first.clone()), "and keeps it in its data directory");

    // A rotation made on one machine reaches the others when they sync.
    SecretRing::rotate(a, now).unwrap();
    let pushed = SecretRing::sync_with_store(a, &**store, now).await.unwrap();
    let pulled = SecretRing::sync_with_store(b, &**store, now).await.unwrap();
    assert_eq!(pulled, pushed);
    assert_eq!(pulled.current().version(), 2);

    // Two machines that each made their own version 3: the second to sync is refused, and neither
    // its file nor the store changes.
    SecretRing::rotate(a, now).unwrap();
    SecretRing::rotate(b, now).unwrap();
    SecretRing::sync_with_store(a, &**store, now).await.unwrap();
    let kept = store.fingerprint_ring().await.unwrap();
    let b_before = SecretRing::load(b).unwrap();
    let refused = SecretRing::sync_with_store(b, &**store, now).await.unwrap_err();
    assert!(matches!(&refused, StoreError::Conflict(m) if m.contains("version 3")), "{refused}");
    assert_eq!(store.fingerprint_ring().await.unwrap(), kept);
    assert_eq!(SecretRing::load(b).unwrap(), b_before);

    // Compare and set: a write based on a stale ring is refused.
    assert!(!store.put_fingerprint_ring("{}".into(), Some("stale".into()), now).await.unwrap());
    assert!(!store.put_fingerprint_ring("{}".into(), None, now).await.unwrap(), "one already exists");
    assert_eq!(store.fingerprint_ring().await.unwrap(), kept);

    // Fresh machines syncing at once all end with the store's ring.
    let fresh: Vec<&std::path::Path> = dirs[2..].iter().map(|d| d.path()).collect();
    let synced =
        futures_util::future::join_all(fresh.iter().map(|dir| SecretRing::sync_with_store(dir, &**store, now))).await;
    let shared = SecretRing::sync_with_store(a, &**store, now).await.unwrap();
    for ring in synced {
        assert_eq!(ring.unwrap(), shared);
    }
}

store_tests!(
    machines_sharing_a_store_share_one_fingerprint_ring,
    ingest_effects_and_revisions,
    in_batch_records_depend_on_earlier_ones,
    a_username_belongs_to_one_author,
    change_counter_moves_with_rights_not_bookkeeping,
    key_and_licensee_errors,
    batcher_reports_rejections_in_line_order_across_batches,
    change_feeds_follow_ingest_order,
    every_change_of_rights_is_audited_in_its_transaction,
    violations_aggregate_with_recent_samples,
    violations_are_counted_per_day,
    trace_findings_are_kept_newest_first,
    reads_agree_on_every_store,
);

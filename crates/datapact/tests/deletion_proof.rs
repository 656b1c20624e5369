//! Proof from a leak that a deletion was not honoured (issue 10, item 4), through `datapact
//! trace` against a real data directory, on both stores: a leak holding a post deleted at D is a
//! violation only when it also holds a post or revision that became available after D + the
//! agreement's `deletion_deadline`; otherwise the finding says it may predate the deadline.

#[allow(dead_code)]
#[path = "../src/trace.rs"]
mod trace;

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use datapact_core::ingest::parse_line;
use datapact_core::{Clock, Endpoint, ManualClock, PostId, Timestamp};
use datapact_ledger::Cap;
use datapact_mark::PreparedPost;
use datapact_store::ledger::Ledger;
use datapact_store::secrets::SecretRing;
use datapact_store::{PgStore, SqliteStore, Store};
use datapact_trace::{DeletionVerdict, LeakFormat};

const T0: Timestamp = Timestamp(1_790_000_000_000);
const HOUR: i64 = 3_600_000;

struct Setup {
    store_arg: Vec<String>,
    dir: tempfile::TempDir,
    store: Box<dyn Store>,
    _schema: Option<common::PgSchema>,
    posts: Vec<(i64, String)>,
    beta: i64,
    ledger: Ledger,
}

/// 600 demo posts ingested at T0, all delivered to `beta` at T0; `beta`'s plan says
/// `deletion_deadline = "24h"`; the first post is deleted at T0 + 1 h (deadline T0 + 25 h).
async fn setup(postgres: bool) -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
    // The ledger lives where `datapact trace` reads it: the data directory, or the shared store.
    let (store, schema, store_arg, ledger): (Box<dyn Store>, _, Vec<String>, Ledger) = if postgres {
        let schema = common::pg_schema()?;
        let store = PgStore::connect(&schema.url).await.unwrap();
        let ledger = Ledger::open_postgres(&store, "test", clock.clone()).await.unwrap();
        let arg = vec!["--store".to_owned(), schema.url.clone()];
        (Box::new(store), Some(schema), arg, ledger)
    } else {
        let ledger = Ledger::open(dir.path(), clock.clone()).unwrap();
        (Box::new(SqliteStore::open(dir.path()).unwrap()), None, Vec::new(), ledger)
    };
    let spec = datapact_demo::CorpusSpec { posts: 600, authors: 20, ..Default::default() };
    let mut records = Vec::new();
    let mut posts = Vec::new();
    for value in datapact_demo::generate(&spec) {
        posts.push((value["id"].as_str().unwrap().parse().unwrap(), value["text"].as_str().unwrap().to_string()));
        records.push(parse_line(value.to_string().as_bytes()).unwrap());
    }
    store.ingest(records, T0).await.unwrap();
    let terms = format!(
        "{}\n[[licensee]]\nname = \"beta\"\nplan = \"open\"\n\n[[licensee]]\nname = \"gamma\"\nplan = \"open\"\n",
        common::open_plan("open", "deletion_deadline = \"24h\"")
    );
    let file = dir.path().join("terms.toml");
    std::fs::write(&file, terms).unwrap();
    let mut args: Vec<&str> = store_arg.iter().map(String::as_str).collect();
    args.extend(["apply", file.to_str().unwrap()]);
    common::datapact_ok(dir.path(), &args);
    let beta = store.licensee("beta").await.unwrap().unwrap().id;
    SecretRing::load_or_create(dir.path(), T0).unwrap();
    let ids: Vec<(i64, u32)> = posts.iter().map(|p| (p.0, 1)).collect();
    deliver(&ledger, beta, &ids, T0).await;
    let first = posts[0].0;
    store
        .ingest(vec![parse_line(format!("{{\"delete\":{{\"id\":\"{first}\"}}}}").as_bytes()).unwrap()], at(1))
        .await
        .unwrap();
    Some(Setup { store_arg, dir, store, _schema: schema, posts, beta, ledger })
}

fn at(hours: i64) -> Timestamp {
    Timestamp(T0.0 + hours * HOUR)
}

/// Searches by `licensee` at `when`, 100 posts a response, far from any cap.
async fn deliver(ledger: &Ledger, licensee: i64, posts: &[(i64, u32)], when: Timestamp) {
    let delivery = common::DirectDelivery {
        licensee,
        posts,
        at: when,
        cap: Cap::hard(1_000_000),
        page_size: 100,
        endpoint: Endpoint::Search,
        canaries: &[],
    };
    common::deliver_directly(ledger, delivery).await;
}

/// `beta`'s copies of `texts` as a JSON-lines leak with ids.
fn leak(s: &Setup, name: &str, texts: &[(i64, String)]) -> PathBuf {
    let ring = SecretRing::load(s.dir.path()).unwrap().unwrap();
    let mut out = String::new();
    for (id, text) in texts {
        let copy = PreparedPost::new(ring.current(), *id as u64, text).render(s.beta as u64);
        out.push_str(&serde_json::json!({"id": id.to_string(), "text": copy}).to_string());
        out.push('\n');
    }
    let path = s.dir.path().join(name);
    std::fs::write(&path, out).unwrap();
    path
}

fn args(leak: PathBuf) -> trace::TraceArgs {
    trace::TraceArgs {
        leaks: vec![leak],
        format: LeakFormat::Auto,
        epsilon: 1e-6,
        json: true,
        record: true,
        read_all: false,
    }
}

async fn run(s: &Setup, leak: PathBuf) -> trace::TraceResult {
    trace::trace_full(&args(leak), s.dir.path(), &s.ledger, s.store.as_ref(), Vec::new()).await.unwrap()
}

fn beta_check(s: &Setup, result: &trace::TraceResult) -> trace::DeletionCheck {
    let accused: Vec<i64> = result.report.accused.iter().map(|a| a.licensee as i64).collect();
    assert_eq!(accused, vec![s.beta], "{}", result.report.to_text());
    let check = result.deletions.iter().find(|c| c.licensee == s.beta).unwrap().clone();
    assert_eq!(check.deletion_deadline.as_deref(), Some("1d"), "24h in its canonical form");
    assert_eq!(check.deleted_posts, 1);
    check
}

async fn a_leak_with_nothing_newer_than_the_deadline_may_predate_it(s: Setup) {
    let result = run(&s, leak(&s, "old.jsonl", &s.posts)).await;
    let check = beta_check(&s, &result);
    assert_eq!(check.verdicts.len(), 1);
    match check.verdicts[0].verdict {
        DeletionVerdict::MayPredate { post_id, deleted_at, deadline_at, newest } => {
            assert_eq!(post_id as i64, s.posts[0].0);
            assert_eq!((deleted_at, deadline_at), (at(1).0, at(25).0));
            assert_eq!(newest.unwrap().available_at, T0.0);
        }
        other => panic!("expected may-predate, got {other:?}"),
    }
    assert!(trace::deletions_text(&result.deletions).contains("may predate"));
    assert!(s.store.deletion_violations(None).await.unwrap().is_empty(), "nothing is recorded");
    let findings = s.store.trace_findings(1).await.unwrap();
    assert_eq!(findings[0].finding.report["deletion_compliance"][0]["verdicts"][0]["verdict"], "may_predate");
}

async fn a_leak_holding_a_post_newer_than_the_deadline_proves_the_violation(s: Setup) {
    // beta was told of the deletion at T0 + 2 h (its feed read) ...
    let deleted = PostId::new(s.posts[0].0);
    s.store.record_deletion_notices(s.beta, vec![(deleted, at(1))], "feed", at(2)).await.unwrap();
    // ... and a post ingested at T0 + 30 h, past the deadline, was delivered to it then.
    let new_id = s.posts.iter().map(|p| p.0).max().unwrap() + 1;
    let text = "A brand new post, written well after the deadline, about harbour lights and rain";
    let line = serde_json::json!({"id": new_id.to_string(), "text": text, "author_id": "1", "created_at": at(30).to_string(),
        "author": {"id": "1", "username": "late_author", "name": "Late"}});
    s.store.ingest(vec![parse_line(line.to_string().as_bytes()).unwrap()], at(30)).await.unwrap();
    deliver(&s.ledger, s.beta, &[(new_id, 1)], at(30)).await;
    let mut texts = s.posts.clone();
    texts.push((new_id, text.to_owned()));
    let result = run(&s, leak(&s, "late.jsonl", &texts)).await;
    let check = beta_check(&s, &result);
    let finding = &check.verdicts[0];
    match finding.verdict {
        DeletionVerdict::Violation { post_id, deadline_at, witness, .. } => {
            assert_eq!(post_id as i64, s.posts[0].0);
            assert_eq!(deadline_at, at(25).0);
            assert_eq!((witness.post_id as i64, witness.revision, witness.available_at), (new_id, 1, at(30).0));
        }
        other => panic!("expected a violation, got {other:?}"),
    }
    assert_eq!(finding.notified_at, Some(at(2)));
    assert!(trace::deletions_text(&result.deletions).contains("VIOLATION by beta"));
    let violations = s.store.deletion_violations(Some(s.beta)).await.unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0].violation;
    assert_eq!((v.post_id, v.deleted_at, v.deadline_at, v.notified_at), (deleted, at(1), at(25), Some(at(2))));
    assert_eq!(v.finding_id, result.finding);
    assert_eq!(v.evidence["witness"]["post_id"], new_id as u64);
    assert_eq!(v.evidence["notified_via"], "feed");
    assert_eq!(v.evidence["leak_files"][0]["sha256"].as_str().unwrap().len(), 64);
    // `datapact compliance violations` lists it.
    let mut cli: Vec<&str> = s.store_arg.iter().map(String::as_str).collect();
    cli.extend(["compliance", "violations", "beta", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&common::datapact_ok(s.dir.path(), &cli)).unwrap();
    assert_eq!(listed[0]["licensee"], "beta");
    assert_eq!(listed[0]["post_id"], s.posts[0].0.to_string());
    assert_eq!(listed[0]["deadline_at"], at(25).to_string());
}

async fn only_a_revision_whose_text_the_leak_shows_dates_it(s: Setup) {
    // Post 2 is corrected at T0 + 30 h.
    let (id, _) = s.posts[1].clone();
    let corrected = "This post was corrected long after the deadline: the figures were wrong";
    let line = serde_json::json!({"id": id.to_string(), "text": corrected, "author_id": "1", "created_at": T0.to_string(),
        "author": {"id": "1", "username": "late_author", "name": "Late"}});
    s.store.ingest(vec![parse_line(line.to_string().as_bytes()).unwrap()], at(30)).await.unwrap();
    // A leak with the old text of post 2 proves nothing about time...
    let result = run(&s, leak(&s, "old-text.jsonl", &s.posts)).await;
    assert!(matches!(beta_check(&s, &result).verdicts[0].verdict, DeletionVerdict::MayPredate { .. }));
    // ... one with its corrected text (beta received it at T0 + 30 h) does.
    deliver(&s.ledger, s.beta, &[(id, 2)], at(30)).await;
    let mut texts = s.posts.clone();
    texts[1].1 = corrected.to_owned();
    let result = run(&s, leak(&s, "new-text.jsonl", &texts)).await;
    match beta_check(&s, &result).verdicts[0].verdict {
        DeletionVerdict::Violation { witness, .. } => {
            assert_eq!((witness.post_id as i64, witness.revision, witness.available_at), (id, 2, at(30).0));
        }
        other => panic!("expected a violation, got {other:?}"),
    }
    assert_eq!(s.store.deletion_violations(None).await.unwrap().len(), 1);
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::setup(false).await.unwrap()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(setup) = super::setup(true).await else { return };
                    super::$name(setup).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_leak_with_nothing_newer_than_the_deadline_may_predate_it,
    a_leak_holding_a_post_newer_than_the_deadline_proves_the_violation,
    only_a_revision_whose_text_the_leak_shows_dates_it,
);

//! `datapact trace` against a real data directory: the store's corpus and licensees, the
//! secret ring, the delivery ledger and `--record`. Includes the command's module by path
//! until the subcommand is wired into the CLI.

#[allow(dead_code)]
#[path = "../src/trace.rs"]
mod trace;

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datapact_core::ingest::parse_line;
use datapact_core::{Clock, Endpoint, ManualClock, Timestamp};
use datapact_ledger::Cap;
use datapact_mark::{Outcome, PreparedPost};
use datapact_store::ledger::Ledger;
use datapact_store::secrets::SecretRing;
use datapact_store::{Change, SqliteStore, Store};
use datapact_trace::LeakFormat;

const NOW: Timestamp = Timestamp(1_790_000_000_000);

struct Setup {
    dir: tempfile::TempDir,
    posts: Vec<(i64, String)>,
    alpha: i64,
    beta: i64,
}

async fn setup(with_secret: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let spec = datapact_demo::CorpusSpec { posts: 1500, authors: 40, ..Default::default() };
    let mut records = Vec::new();
    let mut posts = Vec::new();
    for value in datapact_demo::generate(&spec) {
        posts.push((value["id"].as_str().unwrap().parse().unwrap(), value["text"].as_str().unwrap().to_string()));
        records.push(parse_line(value.to_string().as_bytes()).unwrap());
    }
    store.ingest(records, NOW).await.unwrap();
    let change = Change::new("test", NOW);
    let alpha = store.create_licensee("alpha", &change).await.unwrap().id;
    let beta = store.create_licensee("beta", &change).await.unwrap().id;
    for i in 0..20 {
        store.create_licensee(&format!("other-{i}"), &change).await.unwrap();
    }
    if with_secret {
        SecretRing::load_or_create(dir.path(), NOW).unwrap();
    }
    // alpha received every post, beta the first half.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let ledger = Ledger::open(dir.path(), clock).unwrap();
    for (licensee, n) in [(alpha, posts.len()), (beta, posts.len() / 2)] {
        let copies: Vec<(i64, u32)> = posts[..n].iter().map(|p| (p.0, 1)).collect();
        let delivery = common::DirectDelivery {
            licensee,
            posts: &copies,
            at: NOW,
            cap: Cap::hard(1_000_000),
            page_size: 100,
            endpoint: Endpoint::Search,
            canaries: &[],
        };
        common::deliver_directly(&ledger, delivery).await;
    }
    Setup { dir, posts, alpha, beta }
}

/// `datapact trace` over `leak` in the setup's data directory, reading its ledger and store.
async fn run_trace(
    s: &Setup,
    leak: PathBuf,
    record: bool,
) -> anyhow::Result<(datapact_trace::TraceReport, Option<i64>)> {
    let ledger = Ledger::open_for_reading(s.dir.path(), Arc::new(ManualClock::new(NOW))).unwrap();
    let store = SqliteStore::open(s.dir.path()).unwrap();
    trace::trace(&args(leak, record), s.dir.path(), &ledger, &store, Vec::new()).await
}

fn args(leak: PathBuf, record: bool) -> trace::TraceArgs {
    trace::TraceArgs { leaks: vec![leak], format: LeakFormat::Auto, epsilon: 1e-6, json: true, record, read_all: false }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_leak_without_ids_names_its_licensee_with_its_ledger_share_and_is_recorded() {
    let s = setup(true).await;
    let ring = SecretRing::load(s.dir.path()).unwrap().unwrap();
    // beta leaks the 600 posts it received, as CSV without ids.
    let mut csv = String::from("text,retweets\n");
    for (id, text) in s.posts.iter().take(600) {
        let copy = PreparedPost::new(ring.current(), *id as u64, text).render(s.beta as u64);
        csv.push_str(&format!("\"{}\",0\n", copy.replace('"', "\"\"")));
    }
    let leak = write(s.dir.path(), "leak.csv", &csv);
    let (report, finding) = run_trace(&s, leak, true).await.unwrap();
    assert_eq!(report.records.read, 600);
    assert_eq!(report.records.matched_by_text, 600);
    assert_eq!(report.candidates, 22);
    let accused: Vec<u64> = report.accused.iter().map(|a| a.licensee).collect();
    assert_eq!(accused, vec![s.beta as u64], "{}", report.to_text());
    assert_eq!(report.accused[0].name.as_deref(), Some("beta"));
    assert_eq!(report.accused[0].delivered_posts, Some(600));
    // A few demo texts are shared by several posts: such a record matches each of them.
    assert!(report.posts_matched >= 600);
    let share = report.accused[0].delivered_share.unwrap();
    assert!(share > 0.99 && share <= 1.0, "{share}");

    let store = SqliteStore::open(s.dir.path()).unwrap();
    let findings = store.trace_findings(10).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(Some(findings[0].id), finding);
    assert_eq!(findings[0].finding.accused, vec![s.beta]);
    assert_eq!(findings[0].finding.leak_files[0].bytes, csv.len() as u64);
    assert_eq!(findings[0].finding.leak_files[0].sha256.len(), 64);
    assert_eq!(findings[0].finding.report["accused"][0]["licensee"], s.beta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_text_accuses_nobody_and_nothing_is_recorded_without_record() {
    let s = setup(true).await;
    let lines: String = s
        .posts
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id.to_string(), "text": text}).to_string() + "\n")
        .collect();
    let leak = write(s.dir.path(), "public.jsonl", &lines);
    let (report, finding) = run_trace(&s, leak, false).await.unwrap();
    assert!(report.accused.is_empty());
    assert_eq!(report.outcome, Outcome::MatchesPublicText);
    assert_eq!(report.records.matched_by_id, 1500);
    assert!(finding.is_none());
    let store = SqliteStore::open(s.dir.path()).unwrap();
    assert!(store.trace_findings(10).await.unwrap().is_empty());
    let _ = s.alpha;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_the_trace_says_so() {
    let s = setup(false).await;
    let leak = write(s.dir.path(), "leak.txt", "hello\n");
    let error = run_trace(&s, leak, false).await.unwrap_err();
    assert!(error.to_string().contains("no fingerprint secret exists"), "{error}");
}

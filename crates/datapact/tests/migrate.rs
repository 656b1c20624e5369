//! `datapact migrate --from sqlite://PATH --to postgres://…` (issue 9, item 5): a data directory
//! that served and billed moves to PostgreSQL, where a gateway serves the same keys, posts and
//! fingerprinted copies, the ledger verifies with the same head and usage reads the same; re-running
//! changes nothing; an interrupted run is finished; a served directory and a target holding other
//! data are refused. Skipped (with a `SKIPPED:` line) without a PostgreSQL server, except under
//! `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// acme and globex on plan `basic` (priced, so December's run issues two invoices) from December 1st.
fn terms() -> String {
    let plan = open_plan("basic", "");
    format!(
        r#"{plan}
[[price_book]]
effective = "2026-11-01"
currency = "USD"
[price_book.plans.basic]
monthly_fee = "310.00"
included_records = 4
overage_per_1000 = "1000.00"

[[licensee]]
name = "acme"
plan = "basic"
starts = "2026-12-01"
payment_terms_days = 10

[[licensee]]
name = "globex"
plan = "basic"
starts = "2026-12-01"
"#
    )
}

const LOOKUP_IDS: i64 = 6;

/// A data directory that ingested the corpus, applied priced terms, issued a key, added a webhook,
/// served lookups and a search through a gateway (so the ledger has batches), ran December's
/// invoices (a notification and its webhook delivery) and recorded a payment. Returns the
/// directory, acme's key and the texts the gateway served for the lookup.
/// `extra_posts` more posts by the prolific author make tables of several insert batches.
async fn served_data_dir(dir: &Path, extra_posts: i64) -> (PathBuf, String, Vec<String>) {
    let corpus = dir.join("corpus.jsonl");
    let mut lines = corpus_lines();
    for n in 1..=extra_posts {
        let id = PROLIFIC_BASE + 1_000_000 + n;
        lines.push(
            serde_json::json!({"id": id.to_string(), "text": format!("Extra post {n}"), "author_id": PROLIFIC_AUTHOR.to_string(), "created_at": time(EPOCH_MS + n)})
                .to_string(),
        );
    }
    write_lines(&corpus, &lines);
    let data = dir.join("data");
    datapact_ok(&data, &["ingest", "--quiet", corpus.to_str().unwrap()]);
    apply_terms(&data, &terms());
    let key = datapact_ok(&data, &["key", "issue", "acme"]).trim().to_owned();
    datapact_ok(&data, &["webhook", "add", "http://127.0.0.1:9/platform-hook"]);
    let gateway = Gateway::start(&data, &["--test-clock", "2026-12-05T12:00:00Z"]);
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, LOOKUP_IDS))).await;
    assert_eq!(status, 200, "{body}");
    let texts = body["data"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_owned()).collect();
    let (status, body, _) = gateway.get(&key, "/2/tweets/search/recent?query=the&max_results=10").await;
    assert_eq!(status, 200, "{body}");
    gateway.stop();
    datapact_ok(&data, &["--now", "2026-12-05T12:30:00Z", "ledger", "checkpoint", "make"]);
    let run = json_out(&data, &["invoice", "run", "--month", "2026-12", "--json", "--now", "2027-01-02T09:00:00Z"]);
    let issued = run["issued"].as_array().unwrap();
    assert_eq!(issued.len(), 2, "{run}");
    let acme = issued.iter().find(|i| i["licensee"] == "acme").unwrap()["number"].as_str().unwrap();
    datapact_ok(
        &data,
        &[
            "payment",
            "record",
            "acme",
            "10.00",
            "--invoice",
            acme,
            "--reference",
            "wire-1",
            "--now",
            "2027-01-03T00:00:00Z",
        ],
    );
    (data, key, texts)
}

fn migrate(data: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    let from = format!("sqlite://{}", data.display());
    let mut args = vec!["migrate", "--from", from.as_str(), "--to", url];
    args.extend_from_slice(extra);
    // --data-dir is not read by migrate: a directory that does not exist shows it.
    datapact(&data.with_extension("unused"), &args)
}

fn migrate_json(data: &Path, url: &str) -> Value {
    let output = migrate(data, url, &["--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "migrate failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `datapact --store URL ARGS` from `data_dir`.
fn on_store(data_dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--store", url];
    all.extend_from_slice(args);
    datapact_ok(data_dir, &all)
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql]).output().unwrap();
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Every table's counts agree, and the ledger's heads are equal and present.
fn assert_verified(report: &Value) {
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report:#}");
    for table in report["tables"].as_array().unwrap() {
        assert_eq!(table["source_rows"], table["target_rows"], "{table}");
    }
    assert!(report["sqlite_head"].is_string(), "the ledger has batches: {report:#}");
    assert_eq!(report["sqlite_head"], report["postgres_head"], "{report:#}");
}

fn rows(report: &Value, table: &str) -> u64 {
    let entry = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == table);
    entry.unwrap_or_else(|| panic!("no table {table} in {report:#}"))["source_rows"].as_u64().unwrap()
}

#[tokio::test]
async fn a_served_data_dir_moves_to_postgres_and_serves_the_same_there() {
    let Some(schema) = pg_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (data, key, texts) = served_data_dir(dir.path(), 0).await;
    let usage_before = json_out(&data, &["usage", "acme", "--month", "2026-12", "--json"]);
    let verify_before = json_out(&data, &["ledger", "verify", "--json"]);
    assert_eq!(verify_before["ok"], true, "{verify_before:#}");
    let head_before = verify_before["head"].as_str().unwrap().to_owned();

    let report = migrate_json(&data, &schema.url);
    assert_verified(&report);
    assert_eq!(report["already_migrated"], false);
    assert_eq!(report["sqlite_head"].as_str(), Some(head_before.as_str()), "{report:#}");
    assert_eq!(report["ring_versions"], 1, "{report:#}");
    for (table, at_least) in [
        ("posts", PROLIFIC_POSTS as u64),
        ("licensees", 1),
        ("api_keys", 1),
        ("invoices", 2),
        ("payments", 1),
        ("webhooks", 1),
        ("notifications", 1),
        ("webhook_deliveries", 1),
        ("audit_log", 3),
        ("ledger_batches", 1),
        ("usage_events", 2),
        ("deliveries", LOOKUP_IDS as u64),
        ("usage_daily", 1),
        ("signing_keys", 1),
        ("checkpoints", 1),
    ] {
        assert!(rows(&report, table) >= at_least, "{table}: {report:#}");
    }
    let moved: Vec<&str> = report["sequences_moved"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(moved.contains(&"licensees.id") && moved.contains(&"audit_log.seq"), "{moved:?}");
    assert_eq!(
        psql(&schema.url, "SELECT COUNT(*) FROM migration_progress"),
        report["tables"].as_array().unwrap().len().to_string()
    );

    // The ledger verifies on PostgreSQL with the same head; usage reads the same.
    let elsewhere = dir.path().join("elsewhere");
    let verify: Value =
        serde_json::from_str(&on_store(&elsewhere, &schema.url, &["ledger", "verify", "--json"])).unwrap();
    assert_eq!((verify["ok"].as_bool(), verify["chain"].as_str()), (Some(true), Some("sqlite")), "{verify:#}");
    assert_eq!(verify["head"].as_str(), Some(head_before.as_str()), "{verify:#}");
    let usage: Value =
        serde_json::from_str(&on_store(&elsewhere, &schema.url, &["usage", "acme", "--month", "2026-12", "--json"]))
            .unwrap();
    assert_eq!(usage, usage_before);
    let invoices = on_store(&elsewhere, &schema.url, &["invoice", "list"]);
    assert!(invoices.contains("DP-000001"), "{invoices}");
    // The signed checkpoints and their key came along: the same list, and the SQLite store's
    // checkpoints verify against the moved ledger with the keys PostgreSQL publishes.
    let checkpoints = datapact_ok(&data, &["ledger", "checkpoint", "list", "--json"]);
    assert_eq!(on_store(&elsewhere, &schema.url, &["ledger", "checkpoint", "list", "--json"]), checkpoints);
    let kept = dir.path().join("checkpoints.json");
    std::fs::write(&kept, &checkpoints).unwrap();
    let verify: Value = serde_json::from_str(&on_store(
        &elsewhere,
        &schema.url,
        &["ledger", "verify", "--json", "--checkpoints", kept.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(verify["ok"], true, "{verify:#}");
    assert_eq!(verify["checkpoints"]["checked"], serde_json::json!([1]), "{verify:#}");

    // Running it again changes nothing and says so.
    let counts = psql(&schema.url, "SELECT (SELECT COUNT(*) FROM audit_log) || '/' || (SELECT value FROM meta)");
    let again = migrate(&data, &schema.url, &[]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && stdout.contains("already migrated"), "{stdout}");
    assert!(stdout.contains(&head_before), "both heads are printed: {stdout}");
    assert_eq!(psql(&schema.url, "SELECT (SELECT COUNT(*) FROM audit_log) || '/' || (SELECT value FROM meta)"), counts);
    let again = migrate_json(&data, &schema.url);
    assert_verified(&again);
    assert_eq!(again["already_migrated"], true, "{again:#}");

    // A gateway on the PostgreSQL store, from a data directory that never served, serves acme's
    // key and posts — the same fingerprinted bytes, so the secret ring came along.
    let node = dir.path().join("node");
    let gateway = Gateway::start(&node, &["--store", schema.url.as_str(), "--test-clock", "2026-12-05T13:00:00Z"]);
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, LOOKUP_IDS))).await;
    assert_eq!(status, 200, "{body}");
    let served: Vec<String> =
        body["data"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(served, texts, "acme's copies are the same bytes on PostgreSQL");
    gateway.stop();
    let verify: Value =
        serde_json::from_str(&on_store(&elsewhere, &schema.url, &["ledger", "verify", "--json"])).unwrap();
    assert_eq!(verify["ok"], true, "the moved chain and the new node's chain verify: {verify:#}");

    // New rows get ids past the copied ones (the identity sequences moved; a collision would
    // fail these inserts on the primary key).
    on_store(&elsewhere, &schema.url, &["licensee", "create", "newco"]);
    on_store(&elsewhere, &schema.url, &["key", "issue", "acme"]);
    assert_eq!(psql(&schema.url, "SELECT MAX(id) FROM licensees"), "3", "acme, globex, then newco");
    assert_eq!(psql(&schema.url, "SELECT MAX(id) FROM api_keys"), "2");
}

#[tokio::test]
async fn a_served_data_dir_and_a_target_holding_other_data_are_refused() {
    let Some(schema) = pg_schema() else { return };
    let (dir, _key) = seeded_data_dir();
    let data = data(&dir);

    // A gateway serving the directory holds its lock: refused, nothing copied.
    let gateway = Gateway::start(&data, &[]);
    let refused = migrate(&data, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("serving from") && stderr.contains("stop it"), "{stderr}");
    gateway.stop();
    assert_eq!(psql(&schema.url, "SELECT COUNT(*) FROM licensees"), "0");

    // A table the PostgreSQL schema lacks is a bug to report, never skipped: refused, nothing copied.
    let db = rusqlite::Connection::open(data.join("datapact.db")).unwrap();
    db.execute_batch("CREATE TABLE extra_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)").unwrap();
    let refused = migrate(&data, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("schema mismatch") && stderr.contains("extra_notes"),
        "{stderr}"
    );
    db.execute_batch("DROP TABLE extra_notes").unwrap();
    drop(db);
    assert_eq!(psql(&schema.url, "SELECT COUNT(*) FROM licensees"), "0");

    // A store that already holds someone else's data is refused, nothing changed.
    let other = dir.path().join("other");
    on_store(&other, &schema.url, &["licensee", "create", "stranger"]);
    let refused = migrate(&data, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("already holds data"), "{stderr}");
    assert!(!stderr.contains("postgres://"), "the URL is never echoed: {stderr}");
    assert_eq!(psql(&schema.url, "SELECT string_agg(name, ',') FROM licensees"), "stranger");
    assert_eq!(psql(&schema.url, "SELECT COUNT(*) FROM migration_progress"), "0");

    // Bad URLs say what to write, without echoing them.
    let refused = migrate(&data, "mysql://user:hunter2@db/x", &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("postgres://USER") && !stderr.contains("hunter2"), "{stderr}");
    let refused = datapact(&data, &["migrate", "--from", "mysql://db/x", "--to", schema.url.as_str()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("sqlite://PATH"), "{stderr}");
    let missing = dir.path().join("nothing-here");
    let refused = migrate(&missing, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("datapact.db does not exist"), "{stderr}");
}

/// A run killed mid-copy leaves the tables it committed (each with its `migration_progress` row, in
/// the same transaction) and nothing of the table it was copying. That state is made here exactly:
/// a full copy, then the ledger's and the posts' tables removed with their progress rows, as if the
/// run had died before committing them. Running again copies just those, without duplicates.
#[tokio::test]
async fn an_interrupted_migration_is_finished_by_running_it_again() {
    let Some(schema) = pg_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Over 5,000 posts: the posts' tables are copied in several batches.
    let (data, _key, _texts) = served_data_dir(dir.path(), 11_000).await;
    let first = migrate_json(&data, &schema.url);
    assert!(rows(&first, "posts") > 2 * 5_000, "{first:#}");
    assert_verified(&first);
    let interrupted = ["posts", "post_revisions", "ledger_batches", "usage_events", "deliveries", "usage_daily"];
    for table in interrupted {
        psql(&schema.url, &format!("DELETE FROM {table}; DELETE FROM migration_progress WHERE table_name = '{table}'"));
    }

    let second = migrate_json(&data, &schema.url);
    assert_verified(&second);
    assert_eq!(second["already_migrated"], false);
    for table in second["tables"].as_array().unwrap() {
        let name = table["table"].as_str().unwrap();
        let expected = if interrupted.contains(&name) { "copied" } else { "already_copied" };
        assert_eq!(table["state"], expected, "{table}");
    }
    assert_eq!(second["sqlite_head"], first["sqlite_head"]);
    let third = migrate_json(&data, &schema.url);
    assert_eq!(third["already_migrated"], true, "{third:#}");

    // A partial copy of a table that no progress row owns is not ours to finish: refused.
    psql(&schema.url, "DELETE FROM migration_progress WHERE table_name = 'deliveries'");
    let refused = migrate(&data, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("deliveries"), "{stderr}");
}

/// A delivery row that follows no usage event of its batch (only an edit of `ledger.db` makes one)
/// has no request for PostgreSQL's row: the migration names it and copies nothing.
#[tokio::test]
async fn a_ledger_with_a_delivery_that_follows_no_event_is_refused() {
    let Some(schema) = pg_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (data, _key, _texts) = served_data_dir(dir.path(), 0).await;
    let ledger = rusqlite::Connection::open(data.join("ledger.db")).unwrap();
    // Row 0 of batch 1 is its usage event; a delivery slipped in under it follows none.
    ledger
        .execute_batch(
            "INSERT INTO deliveries (position, licensee_id, post_id, revision, at, counted, digest)
             VALUES (1 << 20, 1, 42, 1, 0, 1, zeroblob(32))",
        )
        .unwrap();
    drop(ledger);
    let refused = migrate(&data, &schema.url, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("batch 1, row 0 follows no usage event") && stderr.contains("nothing was copied"),
        "{stderr}"
    );
    for table in ["deliveries", "posts", "migration_progress"] {
        assert_eq!(psql(&schema.url, &format!("SELECT COUNT(*) FROM {table}")), "0", "{table}: nothing was copied");
    }
}

/// A real interruption: `migrate` killed with SIGKILL while it copies (as soon as a first table is
/// recorded), then run again. Wherever the kill landed, the second run finishes the copy, verified.
#[tokio::test]
async fn a_migration_killed_mid_copy_is_finished_by_running_it_again() {
    let Some(schema) = pg_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (data, _key, _texts) = served_data_dir(dir.path(), 20_000).await;
    let from = format!("sqlite://{}", data.display());
    let mut child = Command::new(BIN)
        .args(["--data-dir", dir.path().join("unused").to_str().unwrap()])
        .args(["migrate", "--quiet", "--from", from.as_str(), "--to", schema.url.as_str()])
        .env_remove("DATAPACT_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut recorded = 0;
    while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let count = Command::new("psql")
            .args([schema.url.as_str(), "-qtA", "-c", "SELECT COUNT(*) FROM migration_progress"])
            .output()
            .unwrap();
        recorded = String::from_utf8_lossy(&count.stdout).trim().parse().unwrap_or(0);
        if recorded > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    eprintln!("migrate killed ({status}) with {recorded} table(s) recorded");

    // PostgreSQL releases the killed client's session (its gateway slot, its open transaction)
    // once it notices the connection closed: a few tries while that message is the answer.
    let mut report = None;
    for _ in 0..50 {
        let output = migrate(&data, &schema.url, &["--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("a gateway is serving from the target") {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        report = Some(serde_json::from_str::<Value>(&stdout).unwrap());
        break;
    }
    let report = report.expect("the killed run's session was never released");
    assert_verified(&report);
    let tables = report["tables"].as_array().unwrap().len().to_string();
    assert_eq!(psql(&schema.url, "SELECT COUNT(*) FROM migration_progress"), tables);
    assert_eq!(migrate_json(&data, &schema.url)["already_migrated"], true);
}

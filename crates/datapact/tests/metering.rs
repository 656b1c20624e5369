//! Exact metering over real HTTP and the CLI: hard caps under concurrency, idempotent retries, daily dedup, the
//! stream's cap, fail-closed commits, a tamper-evident ledger, and kill -9 crash cycles under load.
//!
//! Every test tries to catch the ledger disagreeing with what clients actually received.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use common::*;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const USAGE_CAPPED: &str = "https://api.twitter.com/2/problems/usage-capped";
/// One plan, `metered`, with generous rate limits and `plan` (cap and dedup lines); `acme` on it, plus `licensees`.
fn terms(plan: &str, licensees: &str) -> String {
    let plan = open_plan("metered", plan);
    format!("{plan}\n[[licensee]]\nname = \"acme\"\nplan = \"metered\"\n{licensees}\n")
}

const GLOBEX: &str = "[[licensee]]\nname = \"globex\"\nplan = \"metered\"\n";

/// The seeded data dir under `terms`; returns (dir, data dir, acme's key).
fn metered_data_dir(terms: &str) -> (tempfile::TempDir, PathBuf, String) {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, terms);
    (dir, data_dir, key)
}

fn issue_key(data_dir: &Path, licensee: &str) -> String {
    datapact_ok(data_dir, &["key", "issue", licensee]).trim().to_owned()
}

/// A response, whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn records(&self) -> usize {
        records(&self.json)
    }
}

/// Post records in a body's `data`: an array's length, 1 for a single object.
fn records(body: &Value) -> usize {
    match body.get("data") {
        Some(Value::Array(posts)) => posts.len(),
        Some(Value::Object(_)) => 1,
        _ => 0,
    }
}

fn post_ids(body: &Value) -> Vec<i64> {
    let id = |post: &Value| post["id"].as_str().expect("a post id is a string").parse::<i64>().unwrap();
    match body.get("data") {
        Some(Value::Array(posts)) => posts.iter().map(id).collect(),
        Some(post @ Value::Object(_)) => vec![id(post)],
        _ => Vec::new(),
    }
}

async fn fetch(gateway: &Gateway, key: &str, path: &str, idempotency_key: Option<&str>) -> Reply {
    let mut request = gateway.http.get(format!("{}{path}", gateway.public)).bearer_auth(key);
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, bytes, json }
}

/// Waits until the search index answers (a query matching nothing costs no record).
async fn search_ready(gateway: &Gateway, key: &str) {
    let ready = eventually(Duration::from_secs(20), async || {
        fetch(gateway, key, "/2/tweets/search/recent?query=nothingmatchesthis", None).await.status == 200
    })
    .await;
    assert!(ready.is_some(), "the search index never became ready");
}

/// `datapact usage LICENSEE --json` (this month unless `extra` says), one line per group.
fn usage_lines(data_dir: &Path, licensee: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["usage", licensee, "--json"];
    args.extend_from_slice(extra);
    let out = datapact_ok(data_dir, &args);
    let lines: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("usage --json is not JSON ({e}): {out}"));
    lines.as_array().expect("usage --json is an array").clone()
}

/// The month's totals for a licensee from `datapact usage --json`: (delivered, counted, overage).
fn month_usage(data_dir: &Path, licensee: &str) -> (u64, u64, u64) {
    let lines = usage_lines(data_dir, licensee, &[]);
    assert!(lines.len() <= 1, "one line per licensee for a month: {lines:?}");
    lines.first().map_or((0, 0, 0), |line| {
        assert_eq!(line["licensee"], licensee, "{line}");
        (line["delivered"].as_u64().unwrap(), line["counted"].as_u64().unwrap(), line["overage"].as_u64().unwrap())
    })
}

/// `datapact deliveries LICENSEE --format jsonl` (this month), parsed.
fn deliveries(data_dir: &Path, licensee: &str) -> Vec<Value> {
    datapact_ok(data_dir, &["deliveries", licensee, "--format", "jsonl"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// `datapact ledger verify [extra]`: (exit code, stdout, stderr).
fn verify(data_dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["ledger", "verify"];
    args.extend_from_slice(extra);
    let output = datapact(data_dir, &args);
    (
        output.status.code().expect("verify exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_verifies(data_dir: &Path) -> String {
    let (code, stdout, stderr) = verify(data_dir, &[]);
    assert_eq!(code, 0, "the ledger must verify:\n{stdout}\n{stderr}");
    stdout
}

/// `GET /2/usage/tweets` for `key`.
async fn usage_tweets(gateway: &Gateway, key: &str, query: &str) -> Reply {
    fetch(gateway, key, &format!("/2/usage/tweets{query}"), None).await
}

async fn project_usage(gateway: &Gateway, key: &str) -> u64 {
    let reply = usage_tweets(gateway, key, "").await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json["data"]["project_usage"].as_str().expect("project_usage is a string").parse().unwrap()
}

async fn admin_post(
    gateway: &Gateway,
    data_dir: &Path,
    path: &str,
    body: String,
    content_type: &str,
) -> reqwest::Response {
    gateway
        .http
        .post(format!("{}{path}", gateway.admin))
        .bearer_auth(Gateway::admin_token(data_dir))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn ingest(gateway: &Gateway, data_dir: &Path, lines: &[String]) {
    let response = admin_post(gateway, data_dir, "/admin/posts", lines.join("\n"), "application/x-ndjson").await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The first instant of the month after `now`'s (UTC), in epoch seconds.
fn next_month_epoch(now: chrono::DateTime<Utc>) -> i64 {
    let (year, month) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap().timestamp()
}

fn epoch(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

/// A 429 at a hard cap, as X sends it, resetting at `reset` (epoch seconds).
fn assert_usage_capped(reply: &Reply, reset: i64) {
    assert_eq!(reply.status, 429, "{}", reply.json);
    assert_eq!(reply.json["type"], USAGE_CAPPED, "{}", reply.json);
    assert!(reply.json.get("data").is_none(), "a refusal carries no posts: {}", reply.json);
    assert_eq!(reply.header("x-rate-limit-reset"), Some(reset.to_string().as_str()), "{:?}", reply.headers);
    assert_eq!(reply.header("x-rate-limit-remaining"), Some("0"));
}

/// A user lookup sent with an `Idempotency-Key` holds its key until its commit is durable, even when
/// the request was abandoned meanwhile (here by the request timeout, as by a client going away): a
/// retry is told the request is in progress (409), never served and recorded a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_user_lookup_holds_its_key_until_committed() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("monthly_records = 100\ncap = \"hard\"", ""));
    let gateway = Gateway::start(&data_dir, &["--request-timeout-secs", "1"]);
    let path = format!("/2/users/{PROLIFIC_AUTHOR}");
    // The ledger's writer stalls behind a write lock taken from outside.
    let mut conn = ledger_db(&data_dir);
    let hold = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    let abandoned = fetch(&gateway, &key, &path, Some("u1")).await;
    assert_eq!(abandoned.status, 503, "the request timed out waiting for its commit: {}", abandoned.json);
    let retry = fetch(&gateway, &key, &path, Some("u1")).await;
    assert_eq!(retry.status, 409, "the key is still held by the first request's commit: {}", retry.json);
    hold.rollback().unwrap();
    let mut replayed = None;
    for _ in 0..100 {
        let reply = fetch(&gateway, &key, &path, Some("u1")).await;
        if reply.status == 200 {
            replayed = Some(reply);
            break;
        }
        assert_eq!(reply.status, 409, "{}", reply.json);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replayed = replayed.expect("the first request's commit completed");
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"), "{:?}", replayed.headers);
    let events: i64 = ledger_db(&data_dir)
        .query_row("SELECT COUNT(*) FROM usage_events WHERE idempotency_key = 'u1'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(events, 1, "one usage event for u1");
}

fn ledger_db(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data_dir.join("ledger.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

const PROLIFIC_SEARCH: &str = "/2/tweets/search/recent?query=prolific&max_results=100";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_cap_is_exact_under_concurrency_and_refuses_with_usage_capped() {
    let (_dir, data_dir, key) =
        metered_data_dir(&terms("monthly_records = 1000\ncap = \"hard\"\ndedup = \"none\"", ""));
    let gateway = Arc::new(Gateway::start(&data_dir, &[]));
    search_ready(&gateway, &key).await;

    // 32 clients, each mixing full search pages, 100-id and 37-id lookups, until each is refused.
    let clients: Vec<_> = (0..32i64)
        .map(|client| {
            let (gateway, key) = (gateway.clone(), key.clone());
            tokio::spawn(async move {
                let mut replies = Vec::new();
                for n in 0..40i64 {
                    let (path, asked, search) = match (client + n) % 3 {
                        0 => (PROLIFIC_SEARCH.to_owned(), 100, true),
                        1 => (format!("/2/tweets?ids={}", ids(client * 7 + n, 100)), 100, false),
                        _ => (format!("/2/tweets?ids={}", ids(client * 11 + n, 37)), 37, false),
                    };
                    let reply = fetch(&gateway, &key, &path, None).await;
                    let refused = reply.status == 429;
                    replies.push((reply, asked, search));
                    if refused {
                        return replies;
                    }
                }
                panic!("client {client} was never refused: the cap does not hold");
            })
        })
        .collect();
    let mut replies = Vec::new();
    for client in clients {
        replies.extend(client.await.unwrap());
    }
    let reset = next_month_epoch(Utc::now());
    let mut served = 0;
    let mut cut_pages = Vec::new();
    for (reply, asked, search) in &replies {
        match reply.status {
            200 => {
                served += reply.records();
                assert_eq!(
                    reply.json["meta"]["result_count"].as_u64().map(|n| n as usize),
                    search.then(|| reply.records())
                );
                if reply.records() < *asked {
                    cut_pages.push((reply.records(), *asked, *search));
                    if *search {
                        assert!(
                            reply.json["meta"].get("next_token").is_none(),
                            "a cut page is the last: {}",
                            reply.json
                        );
                    }
                } else if *search {
                    assert!(reply.json["meta"]["next_token"].is_string(), "a full first page of 250 has a next");
                }
            }
            429 => assert_usage_capped(reply, reset),
            other => panic!("unexpected {other}: {}", reply.json),
        }
        if reply.status == 200 && !*search {
            assert!(
                reply.json.get("errors").is_none(),
                "posts cut by the cap are not reported missing: {}",
                reply.json
            );
        }
    }
    assert_eq!(served, 1000, "exactly the cap is delivered, not one record more or less");
    assert!(cut_pages.len() <= 1, "only the page that crosses the cap is cut: {cut_pages:?}");

    // At the cap: posts are refused, the usage view and user lookups (not posts) still answer.
    assert_usage_capped(&fetch(&gateway, &key, &format!("/2/tweets/{QUIET_POST}"), None).await, reset);
    let usage = usage_tweets(&gateway, &key, "").await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    assert_eq!(usage.json["data"]["project_usage"], "1000");
    assert_eq!(usage.json["data"]["project_cap"], "1000");
    let user = fetch(&gateway, &key, &format!("/2/users/{PROLIFIC_AUTHOR}"), None).await;
    assert_eq!(user.status, 200, "user objects do not count against the post cap: {}", user.json);

    assert_eq!(month_usage(&data_dir, "acme"), (1000, 1000, 0));
    let line = &usage_lines(&data_dir, "acme", &[])[0];
    assert!(line["user_reads"].as_u64().unwrap() >= 1, "the user lookup is recorded as a user read: {line}");
    let rows = deliveries(&data_dir, "acme");
    assert_eq!(rows.len(), 1000, "one delivery row per post delivered");
    assert!(rows.iter().all(|row| row["counted"] == true));
    drop(gateway);
    assert_verifies(&data_dir);
}

#[tokio::test]
async fn a_page_crossing_a_hard_cap_is_cut_and_a_soft_cap_serves_on_with_overage() {
    let licensees = "[[licensee]]\nname = \"soft\"\nplan = \"metered\"\ncap = \"soft\"\n\n\
                     [[licensee]]\nname = \"reader\"\nplan = \"metered\"\nmonthly_records = 30\n";
    let (_dir, data_dir, key) =
        metered_data_dir(&terms("monthly_records = 150\ncap = \"hard\"\ndedup = \"none\"", licensees));
    let soft = issue_key(&data_dir, "soft");
    let reader = issue_key(&data_dir, "reader");
    let gateway = Gateway::start(&data_dir, &[]);
    search_ready(&gateway, &key).await;
    let search = "/2/tweets/search/recent?query=prolific&max_results=100&expansions=author_id";

    let first = fetch(&gateway, &key, search, Some("first-page")).await;
    assert_eq!((first.status, first.records()), (200, 100));
    let token = first.json["meta"]["next_token"].as_str().expect("a next page").to_owned();
    let second_path = format!("{search}&next_token={token}");
    let second = fetch(&gateway, &key, &second_path, Some("cut-page")).await;
    assert_eq!(second.status, 200, "capacity remains, so the page is served, cut: {}", second.json);
    assert_eq!(second.records(), 50, "cut to what is left of the cap");
    let meta = &second.json["meta"];
    assert_eq!(meta["result_count"], 50, "{meta}");
    assert!(meta.get("next_token").is_none(), "a cut page has no next_token: {meta}");
    let page = post_ids(&second.json);
    assert_eq!(meta["newest_id"], page[0].to_string(), "meta describes what was delivered");
    assert_eq!(meta["oldest_id"], page[49].to_string(), "meta describes what was delivered");
    assert_eq!(page, (101..=150).map(|rank| PROLIFIC_BASE + PROLIFIC_POSTS + 1 - rank).collect::<Vec<_>>());
    assert_eq!(second.json["includes"]["users"][0]["id"], PROLIFIC_AUTHOR.to_string());
    assert_usage_capped(
        &fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 2)), None).await,
        next_month_epoch(Utc::now()),
    );
    // Retries of requests already paid for are replayed at the cap, the cut page as it was cut.
    for (path, key_name, original) in [(search, "first-page", &first), (second_path.as_str(), "cut-page", &second)] {
        let replay = fetch(&gateway, &key, path, Some(key_name)).await;
        assert_eq!(replay.status, 200, "{key_name} at the cap: {}", replay.json);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes, original.bytes, "{key_name}");
    }

    // A timeline page is cut the same way.
    let timeline = format!("/2/users/{PROLIFIC_AUTHOR}/tweets?max_results=25");
    let first = fetch(&gateway, &reader, &timeline, None).await;
    assert_eq!(first.records(), 25);
    let token = first.json["meta"]["next_token"].as_str().expect("a next page").to_owned();
    let cut = fetch(&gateway, &reader, &format!("{timeline}&pagination_token={token}"), None).await;
    assert_eq!((cut.status, cut.records()), (200, 5), "{}", cut.json);
    assert_eq!(cut.json["meta"]["result_count"], 5);
    assert!(cut.json["meta"].get("next_token").is_none(), "a cut page has no next_token: {}", cut.json);
    assert_eq!(fetch(&gateway, &reader, &timeline, None).await.status, 429);

    // A soft cap of 150 serves every page and reports what lies past it.
    let mut token: Option<String> = None;
    let mut served = 0;
    for _ in 0..3 {
        let path = match &token {
            Some(token) => format!("{search}&next_token={token}"),
            None => search.to_owned(),
        };
        let page = fetch(&gateway, &soft, &path, None).await;
        assert_eq!(page.status, 200, "a soft cap never refuses: {}", page.json);
        served += page.records();
        token = page.json["meta"]["next_token"].as_str().map(str::to_owned);
    }
    assert_eq!(served, 250);
    assert_eq!(project_usage(&gateway, &soft).await, 250);
    assert_eq!(month_usage(&data_dir, "soft"), (250, 250, 100), "(delivered, counted, overage)");
    assert_eq!(month_usage(&data_dir, "acme"), (150, 150, 0));

    // Raising the cap takes effect live, from what was already counted.
    apply_terms(&data_dir, &terms("monthly_records = 160\ncap = \"hard\"\ndedup = \"none\"", licensees));
    let mut raised = None;
    let served = eventually(Duration::from_secs(5), async || {
        let reply = fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 20)), None).await;
        let ok = reply.status == 200;
        raised = Some(reply);
        ok
    })
    .await;
    assert!(served.is_some(), "a raised cap reaches the gateway");
    assert_eq!(raised.unwrap().records(), 10, "160 - 150 records left");
    assert_eq!(month_usage(&data_dir, "acme"), (160, 160, 0));
}

#[tokio::test]
async fn a_retried_idempotency_key_replays_the_same_bytes_and_counts_once() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("dedup = \"none\"", GLOBEX));
    let globex = issue_key(&data_dir, "globex");
    let gateway = Gateway::start(&data_dir, &[]);
    search_ready(&gateway, &key).await;
    let search = "/2/tweets/search/recent?query=prolific&max_results=10&expansions=author_id";

    let first = fetch(&gateway, &key, search, Some("k1")).await;
    assert_eq!((first.status, first.records()), (200, 10), "{}", first.json);
    assert!(first.header("idempotent-replayed").is_none());
    let first_request = first.header("x-request-id").expect("a request id").to_owned();
    let mut counted = 10;
    assert_eq!(project_usage(&gateway, &key).await, counted);

    // A newer matching post: running the search again would now give another page.
    let newcomer = PROLIFIC_BASE + PROLIFIC_POSTS + 1;
    let line = json!({"id": newcomer.to_string(), "text": "prolific newcomer", "author_id": PROLIFIC_AUTHOR.to_string(), "created_at": time(EPOCH_MS + 400 * 60_000)});
    ingest(&gateway, &data_dir, &[line.to_string()]).await;
    let indexed = eventually(Duration::from_secs(5), async || {
        let reply = fetch(&gateway, &key, "/2/tweets/search/recent?query=newcomer", None).await;
        counted += reply.records() as u64;
        reply.records() == 1
    })
    .await;
    assert!(indexed.is_some(), "the new post reached the index");
    assert_eq!(project_usage(&gateway, &key).await, counted);

    let replay = fetch(&gateway, &key, search, Some("k1")).await;
    assert_eq!(replay.status, 200, "{}", replay.json);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.bytes, first.bytes, "a replay is byte-identical to the response it repeats");
    assert_eq!(replay.header("x-datapact-replay-of"), Some(first_request.as_str()));
    assert_eq!(project_usage(&gateway, &key).await, counted, "a replay counts nothing");
    let reordered = "/2/tweets/search/recent?expansions=author_id&max_results=10&query=prolific";
    let replay_reordered = fetch(&gateway, &key, reordered, Some("k1")).await;
    assert_eq!(replay_reordered.header("idempotent-replayed"), Some("true"), "the same request, parameters reordered");
    assert_eq!(replay_reordered.bytes, first.bytes);
    let fresh = fetch(&gateway, &key, search, None).await;
    assert_eq!(post_ids(&fresh.json)[0], newcomer, "without the key the search runs again");
    counted += 10;

    // The same key with another request is refused, and counts nothing.
    for other in [
        "/2/tweets/search/recent?query=prolific&max_results=11&expansions=author_id".to_owned(),
        format!("/2/tweets?ids={}", ids(1, 3)),
    ] {
        let reused = fetch(&gateway, &key, &other, Some("k1")).await;
        assert_eq!(reused.status, 422, "{other}: {}", reused.json);
        assert!(reused.json.get("data").is_none());
    }
    let overlong = "k".repeat(256);
    let malformed = fetch(&gateway, &key, search, Some(&overlong)).await;
    assert_eq!(malformed.status, 400, "a key is 1 to 255 visible characters: {}", malformed.json);
    assert_eq!(project_usage(&gateway, &key).await, counted);

    // Keys are the licensee's own: another licensee's k1 is a new request.
    let theirs = fetch(&gateway, &globex, search, Some("k1")).await;
    assert_eq!(theirs.status, 200);
    assert!(theirs.header("idempotent-replayed").is_none());
    assert_eq!(post_ids(&theirs.json)[0], newcomer);
    assert_eq!(project_usage(&gateway, &globex).await, 10);

    // Eight copies of one request at once: served once (the others replay it or are told it is in progress).
    let gateway = Arc::new(gateway);
    let lookup = format!("/2/tweets?ids={}", ids(20, 5));
    let copies: Vec<_> = (0..8)
        .map(|_| {
            let (gateway, key, lookup) = (gateway.clone(), key.clone(), lookup.clone());
            tokio::spawn(async move { fetch(&gateway, &key, &lookup, Some("k2")).await })
        })
        .collect();
    let mut bodies = HashSet::new();
    for copy in copies {
        let reply = copy.await.unwrap();
        match reply.status {
            200 => {
                bodies.insert(reply.bytes);
            }
            409 => {}
            other => panic!("unexpected {other}: {}", reply.json),
        }
    }
    assert_eq!(bodies.len(), 1, "every 200 for k2 is the same response");
    counted += 5;
    assert_eq!(project_usage(&gateway, &key).await, counted, "k2's five posts count once");
    let settled = fetch(&gateway, &key, &lookup, Some("k2")).await;
    assert_eq!((settled.status, settled.header("idempotent-replayed")), (200, Some("true")));

    // The ledger holds k1's posts once, in the order sent, under the first request only.
    assert_eq!(month_usage(&data_dir, "acme").1, counted);
    let rows = deliveries(&data_dir, "acme");
    assert_eq!(rows.len() as u64, counted, "one row per post delivered and counted");
    let of_first: Vec<i64> = rows
        .iter()
        .filter(|row| row["request_id"] == first_request)
        .map(|row| row["post_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(of_first, post_ids(&first.json));
    let replay_request = replay.header("x-request-id").unwrap();
    assert!(rows.iter().all(|row| row["request_id"] != replay_request), "a replay writes no deliveries");
    let events_with_k1: i64 = ledger_db(&data_dir)
        .query_row("SELECT COUNT(*) FROM usage_events WHERE idempotency_key = 'k1'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(events_with_k1, 2, "one usage event for acme's k1, one for globex's");
}

#[tokio::test]
async fn daily_dedup_counts_a_post_once_per_utc_day_and_usage_shows_only_the_callers() {
    let initech = "[[licensee]]\nname = \"initech\"\nplan = \"metered\"\nmonthly_records = \"unlimited\"\n";
    let (_dir, data_dir, key) = metered_data_dir(&terms(
        "monthly_records = 4\ncap = \"hard\"\ndedup = \"daily\"",
        &format!("{GLOBEX}\n{initech}"),
    ));
    let globex = issue_key(&data_dir, "globex");
    let initech = issue_key(&data_dir, "initech");
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2027-03-15T23:58:00Z"]);
    let (a, b, c) = (PROLIFIC_BASE + 1, PROLIFIC_BASE + 2, PROLIFIC_BASE + 3);

    for path in [format!("/2/tweets/{a}"), format!("/2/tweets/{a}"), format!("/2/tweets?ids={a},{b}")] {
        let reply = fetch(&gateway, &key, &path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.json);
    }
    let usage = usage_tweets(&gateway, &key, "?days=3").await;
    assert_eq!(usage.status, 200, "{}", usage.json);
    let view = &usage.json["data"];
    assert_eq!(view["project_usage"], "2", "a and b, each once: {view}");
    assert_eq!(view["project_cap"], "4");
    assert_eq!(view["cap_reset_day"], 1);
    assert_eq!(
        view["daily_project_usage"]["usage"],
        json!([
            {"date": "2027-03-13T00:00:00.000Z", "usage": "0"},
            {"date": "2027-03-14T00:00:00.000Z", "usage": "0"},
            {"date": "2027-03-15T00:00:00.000Z", "usage": "2"},
        ]),
        "{view}"
    );
    for (days, status, entries) in [("0", 400, 0), ("91", 400, 0), ("90", 200, 90), ("1", 200, 1)] {
        let reply = usage_tweets(&gateway, &key, &format!("?days={days}")).await;
        assert_eq!(reply.status, status, "days={days}: {}", reply.json);
        if status == 200 {
            assert_eq!(reply.json["data"]["daily_project_usage"]["usage"].as_array().unwrap().len(), entries);
        }
    }
    assert_eq!(
        usage_tweets(&gateway, &key, "").await.json["data"]["daily_project_usage"]["usage"].as_array().unwrap().len(),
        7
    );

    // Another licensee's usage is its own, and never shows in acme's.
    let theirs = fetch(&gateway, &globex, &format!("/2/tweets?ids={a},{b},{c}"), None).await;
    assert_eq!(theirs.records(), 3);
    let globex_view = usage_tweets(&gateway, &globex, "?days=1").await.json["data"].clone();
    assert_eq!(globex_view["project_usage"], "3");
    assert_eq!(globex_view["daily_project_usage"]["usage"][0]["usage"], "3");
    let acme_view = usage_tweets(&gateway, &key, "?days=1").await.json["data"].clone();
    assert_eq!(acme_view["project_usage"], "2");
    assert_eq!(acme_view["daily_project_usage"]["usage"][0]["usage"], "2");
    assert_ne!(acme_view["project_id"], globex_view["project_id"]);

    // The same 20 posts asked for by 16 requests at once count 20, once each.
    let gateway = Arc::new(gateway);
    let lookup = format!("/2/tweets?ids={}", ids(101, 20));
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let (gateway, initech, lookup) = (gateway.clone(), initech.clone(), lookup.clone());
            tokio::spawn(async move { fetch(&gateway, &initech, &lookup, None).await.records() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 20);
    }
    assert_eq!(project_usage(&gateway, &initech).await, 20, "daily dedup holds under concurrency");
    let partly = fetch(&gateway, &initech, &format!("/2/tweets?ids={a},999999"), None).await;
    assert_eq!((partly.records(), partly.json["errors"].as_array().map(Vec::len)), (1, Some(1)));
    assert_eq!(project_usage(&gateway, &initech).await, 21, "a post not found is not a record");
    let window = format!("/2/tweets/{QUIET_POST}");
    let keyed = fetch(&gateway, &initech, &window, Some("window")).await;
    assert_eq!(keyed.records(), 1);
    assert_eq!(project_usage(&gateway, &initech).await, 22);

    // Past midnight UTC the same post counts again, once.
    set_clock(&gateway, &data_dir, "2027-03-16T00:00:05Z").await;
    for _ in 0..2 {
        assert_eq!(fetch(&gateway, &key, &format!("/2/tweets/{a}"), None).await.status, 200);
    }
    assert_eq!(project_usage(&gateway, &key).await, 3);
    // Within 24 hours a key replays, even on another day; the same key for another request is refused.
    let replay = fetch(&gateway, &initech, &window, Some("window")).await;
    assert_eq!((replay.header("idempotent-replayed"), &replay.bytes), (Some("true"), &keyed.bytes));
    assert_eq!(fetch(&gateway, &initech, &format!("/2/tweets/{a}"), Some("window")).await.status, 422);
    assert_eq!(project_usage(&gateway, &initech).await, 22, "a replay on the next day counts nothing");
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets/{b}"), None).await.status, 200);
    let usage = usage_tweets(&gateway, &key, "?days=2").await;
    assert_eq!(
        usage.json["data"]["daily_project_usage"]["usage"],
        json!([{"date": "2027-03-15T00:00:00.000Z", "usage": "2"}, {"date": "2027-03-16T00:00:00.000Z", "usage": "2"}])
    );

    // At the cap (4): refused until the first instant of April, then served again from zero.
    let april = epoch("2027-04-01T00:00:00Z");
    assert_usage_capped(&fetch(&gateway, &key, &format!("/2/tweets/{c}"), None).await, april);
    set_clock(&gateway, &data_dir, "2027-03-31T23:59:59.999Z").await;
    assert_usage_capped(&fetch(&gateway, &key, &format!("/2/tweets/{c}"), None).await, april);
    // Past 24 hours the key is free again: a new request, counted again.
    let again = fetch(&gateway, &initech, &window, Some("window")).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, None), "{}", again.json);
    assert_eq!(project_usage(&gateway, &initech).await, 23);
    set_clock(&gateway, &data_dir, "2027-04-01T00:00:00Z").await;
    let reply = fetch(&gateway, &key, &format!("/2/tweets/{c}"), None).await;
    assert_eq!(reply.status, 200, "the cap resets at the first instant of the month: {}", reply.json);
    let april_view = usage_tweets(&gateway, &key, "?days=18").await.json["data"].clone();
    assert_eq!(april_view["project_usage"], "1", "{april_view}");
    let days = april_view["daily_project_usage"]["usage"].as_array().unwrap();
    assert_eq!(days[0], json!({"date": "2027-03-15T00:00:00.000Z", "usage": "2"}));
    assert_eq!(days[17], json!({"date": "2027-04-01T00:00:00.000Z", "usage": "1"}));

    let by_day: BTreeMap<String, (u64, u64)> = usage_lines(&data_dir, "acme", &["--by", "day", "--month", "2027-03"])
        .iter()
        .map(|line| {
            (
                line["group"].as_str().unwrap().to_owned(),
                (line["delivered"].as_u64().unwrap(), line["counted"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        by_day,
        BTreeMap::from([("2027-03-15".to_owned(), (4, 2)), ("2027-03-16".to_owned(), (3, 2))]),
        "(delivered, counted) per day"
    );
    let april_lines = usage_lines(&data_dir, "acme", &["--month", "2027-04"]);
    assert_eq!(april_lines[0]["counted"], 1, "{april_lines:?}");
    drop(gateway);
    assert_verifies(&data_dir);
}

/// Reads a stream until it ends or `limit` passes: (post objects, other JSON lines, whether it ended).
async fn read_stream(mut response: reqwest::Response, limit: Duration) -> (Vec<Value>, Vec<Value>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let (mut posts, mut others, mut buffer) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return (posts, others, false),
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) | Ok(Err(_)) => return (posts, others, true),
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buffer.drain(..end + 2).collect();
            let line = &line[..end];
            if line.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_slice(line).expect("a stream line is JSON");
            if value.get("data").is_some() {
                posts.push(value);
            } else {
                others.push(value);
            }
        }
    }
}

#[tokio::test]
async fn the_stream_delivers_exactly_the_rest_of_a_hard_cap_then_disconnects() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("monthly_records = 5\ncap = \"hard\"\ndedup = \"none\"", ""));
    let gateway = Gateway::start(&data_dir, &[]);
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 2)), None).await.records(), 2);

    let response =
        gateway.http.get(format!("{}/2/tweets/sample/stream", gateway.public)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let fresh: Vec<String> = (1..=8)
        .map(|n| json!({"id": (900_000 + n).to_string(), "text": format!("streamed {n}"), "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS + n * 1000)}).to_string())
        .collect();
    ingest(&gateway, &data_dir, &fresh).await;
    let (posts, others, ended) = read_stream(response, Duration::from_secs(20)).await;
    let streamed: Vec<i64> = posts.iter().flat_map(post_ids).collect();
    assert_eq!(streamed, vec![900_001, 900_002, 900_003], "exactly the 3 records left of the cap, in order");
    assert!(ended, "the stream ends at the cap");
    assert_eq!(others.len(), 1, "one closing message: {others:?}");
    assert_eq!(others[0]["errors"][0]["title"], "operational-disconnect", "{others:?}");
    assert_eq!(others[0]["errors"][0]["type"], "https://api.twitter.com/2/problems/operational-disconnect");

    assert_eq!(project_usage(&gateway, &key).await, 5);
    assert_usage_capped(
        &fetch(&gateway, &key, &format!("/2/tweets/{QUIET_POST}"), None).await,
        next_month_epoch(Utc::now()),
    );
    // Reconnecting at the cap delivers nothing more.
    let again =
        gateway.http.get(format!("{}/2/tweets/sample/stream", gateway.public)).bearer_auth(&key).send().await.unwrap();
    if again.status() == 200 {
        let more = json!({"id": "900100", "text": "one too many", "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS)});
        ingest(&gateway, &data_dir, &[more.to_string()]).await;
        let (posts, _, _) = read_stream(again, Duration::from_secs(3)).await;
        assert!(posts.is_empty(), "a stream at the cap delivers nothing: {posts:?}");
    } else {
        assert_eq!(again.status(), 429);
    }

    assert_eq!(month_usage(&data_dir, "acme"), (5, 5, 0));
    let by_endpoint = usage_lines(&data_dir, "acme", &["--by", "endpoint"]);
    let stream_line = by_endpoint.iter().find(|line| line["group"] == "stream").expect("a stream line");
    assert_eq!(stream_line["counted"], 3, "{by_endpoint:?}");
    let delivered: Vec<i64> =
        deliveries(&data_dir, "acme").iter().map(|row| row["post_id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(&delivered[2..], &[900_001, 900_002, 900_003]);
    drop(gateway);
    assert_verifies(&data_dir);
}

/// A stream opened in one month and still open in the next meters each burst when it is sent: the
/// new month's hard cap holds it, and the old month keeps nothing of it.
#[tokio::test]
async fn a_stream_meters_each_burst_in_the_month_it_is_sent() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("monthly_records = 3\ncap = \"hard\"\ndedup = \"none\"", ""));
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2027-01-31T23:59:00Z"]);
    let response =
        gateway.http.get(format!("{}/2/tweets/sample/stream", gateway.public)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let stream_request = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    // Two days later, in February, new posts arrive on the stream opened in January.
    let moved = admin_post(
        &gateway,
        &data_dir,
        "/admin/test/clock",
        json!({"advance_ms": 2 * 86_400_000}).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(moved.status(), 200);
    let fresh: Vec<String> = (1..=8)
        .map(|n| json!({"id": (900_000 + n).to_string(), "text": format!("streamed {n}"), "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS + n * 1000)}).to_string())
        .collect();
    ingest(&gateway, &data_dir, &fresh).await;
    let (posts, _, ended) = read_stream(response, Duration::from_secs(20)).await;
    let streamed: Vec<i64> = posts.iter().flat_map(post_ids).collect();
    assert_eq!(streamed, vec![900_001, 900_002, 900_003], "February's cap of 3, not January's");
    assert!(ended, "the stream ends at February's cap");
    let rest = fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 3)), None).await;
    assert_eq!(rest.status, 429, "February is at its cap: {}", rest.json);
    let counted = |month: &str| -> u64 {
        usage_lines(&data_dir, "acme", &["--month", month]).iter().map(|line| line["counted"].as_u64().unwrap()).sum()
    };
    assert_eq!((counted("2027-01"), counted("2027-02")), (0, 3));
    // Each burst is metered as a request of its own, named after the stream's.
    let rows = datapact_ok(&data_dir, &["deliveries", "acme", "--month", "2027-02", "--format", "jsonl"]);
    let burst: Vec<String> = rows
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|row| row["post_id"].as_str().unwrap().starts_with("9000"))
        .map(|row| row["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(burst, vec![format!("{stream_request}.1"); 3]);
    drop(gateway);
    assert_verifies(&data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_streams_share_a_hard_cap_exactly() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("monthly_records = 10\ncap = \"hard\"\ndedup = \"none\"", ""));
    let gateway = Gateway::start(&data_dir, &[]);
    let mut streams = Vec::new();
    for _ in 0..4 {
        let url = format!("{}/2/tweets/sample/stream", gateway.public);
        let response = gateway.http.get(url).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(tokio::spawn(read_stream(response, Duration::from_secs(20))));
    }
    let post = |n: i64| {
        json!({"id": (900_000 + n).to_string(), "text": format!("shared {n}"), "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS + n * 1000)}).to_string()
    };
    ingest(&gateway, &data_dir, &(1..=8).map(post).collect::<Vec<_>>()).await;
    // More than the cap in all, so that even a stream that got every post reaches it.
    ingest(&gateway, &data_dir, &(9..=12).map(post).collect::<Vec<_>>()).await;
    let mut total = 0;
    for stream in streams {
        let (posts, others, ended) = stream.await.unwrap();
        let streamed: Vec<i64> = posts.iter().flat_map(post_ids).collect();
        assert_eq!(streamed, (900_001..).take(streamed.len()).collect::<Vec<_>>(), "each stream is in order");
        assert!(ended, "every stream ends at the cap: this one got {streamed:?} {others:?}");
        assert_eq!(others.len(), 1, "{others:?}");
        assert_eq!(others[0]["errors"][0]["title"], "operational-disconnect");
        total += streamed.len();
    }
    assert_eq!(total, 10, "the streams together deliver exactly the cap");
    assert_eq!(project_usage(&gateway, &key).await, 10);
    drop(gateway);
    assert_eq!(month_usage(&data_dir, "acme"), (10, 10, 0));
    assert_verifies(&data_dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether `text` names batch `seq` (and not, say, batch `seq`0).
fn names_batch(text: &str, seq: i64) -> bool {
    let needle = format!("batch {seq}");
    text.match_indices(&needle).any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[tokio::test]
async fn ledger_verify_names_the_batch_of_a_row_edited_deleted_or_swapped() {
    let (dir, data_dir, key) = metered_data_dir(&terms("dedup = \"none\"", ""));
    let gateway = Gateway::start(&data_dir, &[]);
    for n in 0..8 {
        let reply = fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(n * 10 + 1, 3 + n)), None).await;
        assert_eq!(reply.status, 200);
    }
    let token = Gateway::admin_token(&data_dir);
    let admin = gateway.http.post(format!("{}/admin/ledger/verify", gateway.admin)).bearer_auth(token).send().await;
    let admin: Value = admin.unwrap().json().await.unwrap();
    assert_eq!(admin["ok"], true, "{admin}");
    let stopped = gateway.stop();
    assert!(stopped.success(), "the gateway did not stop cleanly: {stopped}");
    let stdout = assert_verifies(&data_dir);
    let head = stdout
        .lines()
        .find_map(|line| line.strip_prefix("head "))
        .unwrap_or_else(|| panic!("verify prints the head: {stdout}"))
        .trim()
        .to_owned();
    let (head_seq, head_hash) = head.split_once(':').expect("SEQ:HASH");
    assert!(head_seq.parse::<u64>().is_ok() && head_hash.len() == 64, "{head}");
    assert_eq!(admin["head"], head, "the admin API and the CLI agree on the head");

    // A batch in the middle holding several deliveries with distinct posts.
    let batches: Vec<i64> = {
        let conn = ledger_db(&data_dir);
        let mut statement = conn
            .prepare(
                "SELECT position >> 20 AS seq FROM deliveries GROUP BY seq HAVING COUNT(DISTINCT post_id) >= 3
                 ORDER BY seq",
            )
            .unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert!(batches.len() >= 3, "several batches: {batches:?}");
    let target = batches[batches.len() / 2];
    // SQLite keys a delivery by its position, `seq << 20 | ordinal`.
    let edit = "UPDATE deliveries SET post_id = post_id + 1
                WHERE position = (SELECT MIN(position) FROM deliveries WHERE position >> 20 = ?1)";
    let delete =
        "DELETE FROM deliveries WHERE position = (SELECT MAX(position) FROM deliveries WHERE position >> 20 = ?1)";
    let count = "UPDATE usage_events SET counted = counted - 1 WHERE seq = ?1";
    let swap = |conn: &rusqlite::Connection| {
        let rows: Vec<(i64, i64)> = conn
            .prepare("SELECT position, post_id FROM deliveries WHERE position >> 20 = ?1 ORDER BY position")
            .unwrap()
            .query_map([target], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ((first, a), (last, b)) = (rows[0], rows[rows.len() - 1]);
        assert_ne!(a, b);
        let set = "UPDATE deliveries SET post_id = ?1 WHERE position = ?2";
        conn.execute(set, [b, first]).unwrap() + conn.execute(set, [a, last]).unwrap()
    };
    type Tamper<'a> = Box<dyn Fn(&rusqlite::Connection) -> usize + 'a>;
    let tampering: [(&str, Tamper); 4] = [
        ("edit a post id", Box::new(|conn| conn.execute(edit, [target]).unwrap())),
        ("delete a delivery", Box::new(|conn| conn.execute(delete, [target]).unwrap())),
        ("swap two deliveries' posts", Box::new(swap)),
        ("edit an event's count", Box::new(|conn| conn.execute(count, [target]).unwrap())),
    ];
    for (n, (what, tamper)) in tampering.iter().enumerate() {
        let copy = dir.path().join(format!("tampered-{n}"));
        copy_dir(&data_dir, &copy);
        let changed = tamper(&ledger_db(&copy));
        assert!(changed >= 1, "{what}: nothing changed");
        let (code, stdout, stderr) = verify(&copy, &[]);
        assert_eq!(code, 1, "{what} must not verify:\n{stdout}\n{stderr}");
        assert!(names_batch(&stderr, target), "{what}: batch {target} is named:\n{stderr}");
    }

    // The daily totals (what usage views read) are derived, and checked against the sealed events.
    let copy = dir.path().join("tampered-daily");
    copy_dir(&data_dir, &copy);
    assert_eq!(ledger_db(&copy).execute("UPDATE usage_daily SET counted = counted - 1", []).unwrap(), 1);
    let (code, stdout, stderr) = verify(&copy, &[]);
    assert_eq!(code, 1, "edited daily totals must not verify:\n{stdout}\n{stderr}");
    assert!(stderr.contains("daily totals"), "{stderr}");

    // The newest batch deleted whole, daily totals adjusted to match: only the recorded head catches it.
    let copy = dir.path().join("tampered-newest");
    copy_dir(&data_dir, &copy);
    {
        let conn = ledger_db(&copy);
        let newest: i64 = conn.query_row("SELECT MAX(seq) FROM ledger_batches", [], |row| row.get(0)).unwrap();
        conn.execute_batch(&format!(
            "UPDATE usage_daily SET
                 events = events - (SELECT COUNT(*) FROM usage_events WHERE seq = {newest}),
                 delivered = delivered - (SELECT SUM(delivered) FROM usage_events WHERE seq = {newest}),
                 counted = counted - (SELECT SUM(counted) FROM usage_events WHERE seq = {newest}),
                 user_reads = user_reads - (SELECT SUM(user_reads) FROM usage_events WHERE seq = {newest}),
                 bytes = bytes - (SELECT SUM(bytes) FROM usage_events WHERE seq = {newest})
             WHERE endpoint = 'lookup';
             DELETE FROM usage_events WHERE seq = {newest};
             DELETE FROM deliveries WHERE position >> 20 = {newest};
             DELETE FROM ledger_batches WHERE seq = {newest};"
        ))
        .unwrap();
    }
    let (code, stdout, stderr) = verify(&copy, &["--expect", &head]);
    assert_eq!(code, 1, "--expect catches the newest batch deleted:\n{stdout}\n{stderr}");
    let (code, stdout, stderr) = verify(&data_dir, &["--expect", &head]);
    assert_eq!(code, 0, "the untouched ledger passes through its head:\n{stdout}\n{stderr}");

    // The chain grows on from the recorded head.
    let gateway = Gateway::start(&data_dir, &[]);
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets/{QUIET_POST}"), None).await.status, 200);
    drop(gateway);
    let (code, stdout, stderr) = verify(&data_dir, &["--expect", &head]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains(&format!("head {head}")), "a new head: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_that_cannot_commit_fails_closed_with_503_and_no_data() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("dedup = \"none\"", ""));
    let gateway = Arc::new(Gateway::start(&data_dir, &[]));
    search_ready(&gateway, &key).await;
    let paths = [
        format!("/2/tweets?ids={}", ids(1, 4)),
        format!("/2/tweets/{QUIET_POST}"),
        "/2/tweets/search/recent?query=prolific&max_results=10".to_owned(),
        format!("/2/users/{PROLIFIC_AUTHOR}/tweets?max_results=5"),
    ];
    let mut received = 0;
    for path in &paths {
        let reply = fetch(&gateway, &key, path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.json);
        received += reply.records();
    }

    let stream_url = format!("{}/2/tweets/sample/stream", gateway.public);
    let stream = gateway.http.get(stream_url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(stream.status(), 200);

    ledger_db(&data_dir)
        .execute_batch(
            "CREATE TRIGGER fail BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    // A stream cannot record its posts either: it sends none, and disconnects.
    let line = json!({"id": "900001", "text": "unrecorded", "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS)});
    ingest(&gateway, &data_dir, &[line.to_string()]).await;
    let (posts, others, ended) = read_stream(stream, Duration::from_secs(20)).await;
    assert!(posts.is_empty(), "a stream sent posts it could not record: {posts:?}");
    assert!(ended, "the stream ends");
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["errors"][0]["title"], "operational-disconnect");
    let attempts: Vec<_> = (0..16)
        .map(|n| {
            let (gateway, key, path) = (gateway.clone(), key.clone(), paths[n % paths.len()].clone());
            tokio::spawn(async move { fetch(&gateway, &key, &path, None).await })
        })
        .collect();
    let mut refused = Vec::new();
    for attempt in attempts {
        refused.push(attempt.await.unwrap());
    }
    for path in &paths {
        refused.push(fetch(&gateway, &key, path, None).await);
    }
    let keyed = fetch(&gateway, &key, &paths[0], Some("during-the-fire")).await;
    refused.push(keyed);
    for reply in &refused {
        assert_eq!(reply.status, 503, "nothing is served that the ledger did not record: {}", reply.json);
        assert!(reply.json.get("data").is_none(), "{}", reply.json);
        assert!(reply.header("content-type").is_some_and(|t| t.contains("problem+json")), "{:?}", reply.headers);
        assert!(!String::from_utf8_lossy(&reply.bytes).contains("prolific author"), "no post text leaks");
    }

    ledger_db(&data_dir).execute_batch("DROP TRIGGER fail;").unwrap();
    let recovered = eventually(Duration::from_secs(5), async || {
        let reply = fetch(&gateway, &key, &paths[1], None).await;
        received += reply.records();
        reply.status == 200
    })
    .await;
    assert!(recovered.is_some(), "service resumes once the ledger commits again");
    let retried = fetch(&gateway, &key, &paths[0], Some("during-the-fire")).await;
    assert_eq!(retried.status, 200, "{}", retried.json);
    assert!(retried.header("idempotent-replayed").is_none(), "the failed attempt stored nothing to replay");
    received += retried.records();
    for path in &paths {
        let reply = fetch(&gateway, &key, path, None).await;
        assert_eq!(reply.status, 200);
        received += reply.records();
    }

    let (delivered, counted, _) = month_usage(&data_dir, "acme");
    assert_eq!((delivered, counted), (received as u64, received as u64), "only what got a 200 is in the ledger");
    assert_eq!(deliveries(&data_dir, "acme").len(), received);
    drop(gateway);
    assert_verifies(&data_dir);
}

/// A small deterministic generator (xorshift64*), seeded per run and printed, for the crash schedule.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("DATAPACT_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        println!("crash schedule seed: DATAPACT_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Target {
    base: RwLock<String>,
    stop: AtomicBool,
}

#[derive(Debug, Default)]
struct Tally {
    /// Post ids of every 200 received, in order.
    received: Vec<i64>,
    /// Requests that failed after connecting (the gateway died under them).
    broken: u64,
    /// Connections refused (the gateway was down).
    refused: u64,
    replays: u64,
    /// Refused at a hard cap (the client stops there).
    capped: bool,
    unexpected: Vec<String>,
}

/// The `n`th logical request of `client`: search pages, lookups and timelines of up to 100 posts.
fn crash_path(client: i64, n: i64) -> String {
    match n % 4 {
        0 => PROLIFIC_SEARCH.to_owned(),
        1 => format!("/2/tweets?ids={}", ids(client * 13 + n, 1 + (client * 7 + n * 31) % 100)),
        2 => format!("/2/users/{PROLIFIC_AUTHOR}/tweets?max_results={}", 5 + (client + n) % 96),
        _ => format!("/2/tweets/{}", PROLIFIC_BASE + 1 + (client + n) % PROLIFIC_POSTS),
    }
}

/// A client that keeps requesting until told to stop. With `idempotent`, each logical request carries its own key
/// and is retried with it after any failure until it gets a 200 (even after the stop); without, a failure is
/// simply given up, as a stock X client would.
async fn crash_client(target: Arc<Target>, key: String, client: i64, idempotent: bool) -> Tally {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut tally = Tally::default();
    let mut n = 0;
    while !target.stop.load(Ordering::SeqCst) {
        n += 1;
        let path = crash_path(client, n);
        let idempotency_key = format!("crash-{client}-{n}");
        for attempt in 0.. {
            if attempt == 3000 {
                tally.unexpected.push(format!("{path}: no 200 after {attempt} attempts"));
                break;
            }
            let base = target.base.read().unwrap().clone();
            let mut request = http.get(format!("{base}{path}")).bearer_auth(&key);
            if idempotent {
                request = request.header("idempotency-key", &idempotency_key);
            }
            let outcome = async {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let replayed = response.headers().contains_key("idempotent-replayed");
                Ok::<_, reqwest::Error>((status, replayed, response.bytes().await?))
            }
            .await;
            match outcome {
                Ok((200, replayed, bytes)) => {
                    let body: Value = serde_json::from_slice(&bytes).expect("a 200 is JSON");
                    tally.received.extend(post_ids(&body));
                    tally.replays += u64::from(replayed);
                    break;
                }
                Ok((429, _, bytes)) if String::from_utf8_lossy(&bytes).contains(USAGE_CAPPED) => {
                    tally.capped = true;
                    return tally;
                }
                // Starting up (index not built yet), or the same key still being served.
                Ok((409 | 503, _, _)) if idempotent => {}
                Ok((503, _, _)) => {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    break;
                }
                Ok((status, _, bytes)) => {
                    tally.unexpected.push(format!("{path}: {status} {}", String::from_utf8_lossy(&bytes)));
                    break;
                }
                Err(error) => {
                    // Refused: the gateway was down. Anything else: it died with the request in flight.
                    if error.is_connect() {
                        tally.refused += 1;
                    } else {
                        tally.broken += 1;
                    }
                    if !idempotent {
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    tally
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_never_loses_a_record_and_keyed_retries_count_exactly_once() {
    const CYCLES: u64 = 4;
    const CLIENTS: i64 = 8;
    const MAX_RECORDS: u64 = 100;
    // acme's clients send Idempotency-Key; globex's are stock X clients without it.
    let (_dir, data_dir, acme) = metered_data_dir(&terms("dedup = \"none\"", GLOBEX));
    let globex = issue_key(&data_dir, "globex");
    let start = |data_dir: PathBuf| tokio::task::spawn_blocking(move || Gateway::start(&data_dir, &[]));
    let mut gateway = start(data_dir.clone()).await.unwrap();
    let target = Arc::new(Target { base: RwLock::new(gateway.public.clone()), stop: AtomicBool::new(false) });
    let clients: Vec<_> = (0..CLIENTS)
        .flat_map(|client| [(acme.clone(), client, true), (globex.clone(), client, false)])
        .map(|(key, client, idempotent)| tokio::spawn(crash_client(target.clone(), key, client, idempotent)))
        .collect();

    let mut rng = Rng::new();
    for cycle in 0..CYCLES {
        tokio::time::sleep(Duration::from_millis(400 + rng.below(1200))).await;
        let status = gateway.kill9();
        assert!(!status.success(), "cycle {cycle}: killed, not exited: {status:?}");
        gateway = start(data_dir.clone()).await.unwrap();
        *target.base.write().unwrap() = gateway.public.clone();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    target.stop.store(true, Ordering::SeqCst);
    let (mut keyed, mut plain) = (Tally::default(), Tally::default());
    for (n, client) in clients.into_iter().enumerate() {
        let tally = client.await.unwrap();
        let sum = if n % 2 == 0 { &mut keyed } else { &mut plain };
        sum.received.extend(tally.received);
        sum.broken += tally.broken;
        sum.refused += tally.refused;
        sum.replays += tally.replays;
        sum.unexpected.extend(tally.unexpected);
        sum.capped |= tally.capped;
    }
    let stopped = gateway.stop();
    assert!(stopped.success(), "the gateway did not stop cleanly: {stopped}");
    println!(
        "keyed: {} received, {} broken in flight, {} refused, {} replays; plain: {} received, {} broken, {} refused",
        keyed.received.len(),
        keyed.broken,
        keyed.refused,
        keyed.replays,
        plain.received.len(),
        plain.broken,
        plain.refused
    );
    assert!(
        keyed.unexpected.is_empty() && plain.unexpected.is_empty(),
        "{:?} {:?}",
        keyed.unexpected,
        plain.unexpected
    );
    assert!(!keyed.capped && !plain.capped, "nothing caps an unlimited agreement");
    assert!(keyed.broken + plain.broken > 0, "the kills hit requests in flight (else this test proves nothing)");
    assert!(!keyed.received.is_empty() && !plain.received.is_empty());

    // With keys, retried until served: the ledger holds exactly what the clients received, post for post.
    let (delivered, counted, _) = month_usage(&data_dir, "acme");
    assert_eq!(counted, keyed.received.len() as u64, "keyed clients: the ledger equals what they received");
    assert_eq!(delivered, counted);
    let acme_rows: Vec<i64> =
        deliveries(&data_dir, "acme").iter().map(|row| row["post_id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(sorted(acme_rows), sorted(keyed.received.clone()), "the same posts, each as often as received");

    // Without keys: never below what was received; above by at most what was in flight at the kills.
    let (_, counted, _) = month_usage(&data_dir, "globex");
    let received = plain.received.len() as u64;
    println!("plain clients: ledger {counted}, received {received}, over by {}", counted.saturating_sub(received));
    assert!(counted >= received, "the ledger ({counted}) is below what clients received ({received})");
    let bound = CLIENTS as u64 * MAX_RECORDS * CYCLES;
    assert!(counted - received <= bound, "over by {} > {bound} (in flight at the kills)", counted - received);
    let mut ledger_rows: BTreeMap<i64, i64> = BTreeMap::new();
    for row in deliveries(&data_dir, "globex") {
        *ledger_rows.entry(row["post_id"].as_str().unwrap().parse().unwrap()).or_default() += 1;
    }
    for id in &plain.received {
        let left = ledger_rows.get_mut(id).expect("a received post is in the ledger");
        *left -= 1;
        assert!(*left >= 0, "post {id} was received more often than the ledger says");
    }

    assert_verifies(&data_dir);
    let integrity: String = ledger_db(&data_dir).query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_cap_holds_exactly_across_kill_9_restarts() {
    const CAP: u64 = 12_000;
    let (_dir, data_dir, key) =
        metered_data_dir(&terms(&format!("monthly_records = {CAP}\ncap = \"hard\"\ndedup = \"none\""), ""));
    let start = |data_dir: PathBuf| tokio::task::spawn_blocking(move || Gateway::start(&data_dir, &[]));
    let mut gateway = start(data_dir.clone()).await.unwrap();
    let target = Arc::new(Target { base: RwLock::new(gateway.public.clone()), stop: AtomicBool::new(false) });
    let clients: Vec<_> =
        (0..8).map(|client| tokio::spawn(crash_client(target.clone(), key.clone(), client, client % 2 == 0))).collect();
    let mut rng = Rng::new();
    for cycle in 0..2 {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(500))).await;
        let usage = usage_tweets(&gateway, &key, "").await.json["data"]["project_usage"].clone();
        println!("kill {cycle} at about {usage} of {CAP} counted");
        gateway.kill9();
        gateway = start(data_dir.clone()).await.unwrap();
        *target.base.write().unwrap() = gateway.public.clone();
    }
    // Every client runs until it is refused at the cap.
    let mut received = 0;
    for client in clients {
        let tally =
            tokio::time::timeout(Duration::from_secs(60), client).await.expect("every client reaches the cap").unwrap();
        assert!(tally.unexpected.is_empty(), "{:?}", tally.unexpected);
        assert!(tally.capped);
        received += tally.received.len() as u64;
    }
    println!("capped clients received {received} of {CAP}");
    let stopped = gateway.stop();
    assert!(stopped.success(), "the gateway did not stop cleanly: {stopped}");
    let (delivered, counted, _) = month_usage(&data_dir, "acme");
    assert_eq!(counted, CAP, "the cap is reached and never crossed, whatever the restarts");
    assert_eq!(delivered, CAP);
    assert!(received <= CAP, "clients received {received}, past the cap");
    assert_verifies(&data_dir);
}

#[tokio::test]
async fn counts_and_kept_responses_survive_a_kill_9_restart() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("dedup = \"daily\"", ""));
    let gateway = Gateway::start(&data_dir, &[]);
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 10)), None).await.records(), 10);
    assert_eq!(project_usage(&gateway, &key).await, 10);
    let keyed = fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(3, 4)), Some("before-the-crash")).await;
    assert_eq!(keyed.records(), 4);
    gateway.kill9();
    let gateway = Gateway::start(&data_dir, &[]);
    let replay = fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(3, 4)), Some("before-the-crash")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"), "a committed response survives the crash");
    assert_eq!(replay.bytes, keyed.bytes);
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 12)), None).await.records(), 12);
    assert_eq!(project_usage(&gateway, &key).await, 12, "posts counted before the crash are still counted today");
    drop(gateway);
    assert_eq!(month_usage(&data_dir, "acme"), (26, 12, 0), "(delivered, counted): the replay is not delivered again");
}

#[tokio::test]
async fn pruning_old_deliveries_keeps_the_chain_verifiable_and_the_totals() {
    let (_dir, data_dir, key) = metered_data_dir(&terms("dedup = \"none\"", ""));
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2026-01-15T12:00:00Z"]);
    for n in 0..3 {
        assert_eq!(fetch(&gateway, &key, &format!("/2/tweets?ids={}", ids(n * 10 + 1, 4)), None).await.records(), 4);
    }
    drop(gateway);
    let stdout = assert_verifies(&data_dir);
    let head = stdout.lines().find_map(|line| line.strip_prefix("head ")).expect("a head").trim().to_owned();

    // Today's deliveries decide what daily dedup counts again: they are never pruned.
    let refused = datapact(&data_dir, &["ledger", "prune", "--retention-days", "0"]);
    assert!(!refused.status.success(), "a retention of 0 days was accepted");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--retention-days"), "{refused:?}");
    let pruned = datapact_ok(&data_dir, &["ledger", "prune", "--retention-days", "30"]);
    assert!(pruned.contains("12 deliveries"), "{pruned}");
    let january = datapact_ok(&data_dir, &["deliveries", "acme", "--month", "2026-01", "--format", "jsonl"]);
    assert!(january.trim().is_empty(), "pruned deliveries are gone: {january}");
    let totals = usage_lines(&data_dir, "acme", &["--month", "2026-01"]);
    assert_eq!((totals[0]["delivered"].as_u64(), totals[0]["counted"].as_u64()), (Some(12), Some(12)), "totals stay");
    let (code, stdout, stderr) = verify(&data_dir, &["--expect", &head]);
    assert_eq!(code, 0, "a pruned chain still verifies through its head:\n{stdout}\n{stderr}");

    // It grows on after pruning, and a pruned batch's kept header is still checked.
    let gateway = Gateway::start(&data_dir, &[]);
    assert_eq!(fetch(&gateway, &key, &format!("/2/tweets/{QUIET_POST}"), None).await.status, 200);
    drop(gateway);
    assert_verifies(&data_dir);
    let first: i64 =
        ledger_db(&data_dir).query_row("SELECT MIN(seq) FROM ledger_batches", [], |row| row.get(0)).unwrap();
    ledger_db(&data_dir)
        .execute("UPDATE ledger_batches SET row_count = row_count + 1 WHERE seq = ?1", [first])
        .unwrap();
    let (code, _, stderr) = verify(&data_dir, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(names_batch(&stderr, first), "{stderr}");
}

/// Two gateway processes on one data dir (a rolling restart overlaps the old and the new): a hard cap must still
/// hold exactly, unless the second gateway refuses to start on a data dir in use, which is as good. Clients of
/// both race to the cap; the test clock then moves both to the next month (a fresh cap) and they race again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_data_dir_never_cross_a_hard_cap() {
    const CAP: usize = 300;
    const MONTHS: u32 = 10;
    let (_dir, data_dir, key) =
        metered_data_dir(&terms(&format!("monthly_records = {CAP}\ncap = \"hard\"\ndedup = \"none\""), ""));
    let clock = ["--test-clock", "2027-01-10T00:00:00Z"];
    let first = Arc::new(Gateway::start(&data_dir, &clock));
    let second = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || std::panic::catch_unwind(|| Gateway::start(&data_dir, &clock)))
            .await
            .unwrap()
    };
    let Ok(second) = second.map(Arc::new) else {
        println!("the second gateway refused to start on a data dir in use");
        return;
    };
    let mut served_by_month = Vec::new();
    for month in 1..=MONTHS {
        for gateway in [&first, &second] {
            set_clock(gateway, &data_dir, &format!("2027-{month:02}-10T00:00:00Z")).await;
        }
        let clients: Vec<_> = (0..16i64)
            .map(|client| {
                let gateway = if client % 2 == 0 { first.clone() } else { second.clone() };
                let key = key.clone();
                tokio::spawn(async move {
                    let mut served = 0;
                    for n in 0..1000 {
                        let path = format!("/2/tweets?ids={}", ids(client * 10 + n, 7));
                        let reply = fetch(&gateway, &key, &path, None).await;
                        served += reply.records();
                        match reply.status {
                            200 | 503 => {}
                            429 => return served,
                            other => panic!("unexpected {other}: {}", reply.json),
                        }
                    }
                    panic!("client {client} never reached the cap");
                })
            })
            .collect();
        let mut served = 0;
        for client in clients {
            served += client.await.unwrap();
        }
        served_by_month.push(served);
    }
    drop((first, second));
    println!("served per month under a cap of {CAP}: {served_by_month:?}");
    for (month, served) in (1..=MONTHS).zip(&served_by_month) {
        let lines = usage_lines(&data_dir, "acme", &["--month", &format!("2027-{month:02}")]);
        assert_eq!(lines[0]["delivered"].as_u64(), Some(*served as u64), "2027-{month:02}: served is what is recorded");
    }
    assert!(
        served_by_month.iter().all(|served| *served == CAP),
        "a hard cap of {CAP} was crossed: served per month {served_by_month:?}"
    );
    assert_verifies(&data_dir);
}

//! Deletion compliance over HTTP (issue 10), against a real gateway on each store (SQLite and,
//! when the test PostgreSQL answers, PostgreSQL): X-style batch jobs (create, one per type at a
//! time, upload, poll, download, expiry), the signed URLs under attack (tampered, expired,
//! another licensee's), bad input as X-shaped problems, and the event feed (only posts this
//! licensee received, cursor resume without duplicates or gaps), with the deletion notices each
//! records.

mod common;

use std::path::PathBuf;

use common::*;
use datapact_core::Timestamp;
use datapact_store::{PgStore, SqliteStore, Store};
use serde_json::{Value, json};

const START: &str = "2030-01-01T00:00:00Z";

/// PostgreSQL allows one gateway per database at a time (`PgStore::claim_gateway` takes a
/// database-wide advisory lock), so the PostgreSQL tests of this file take turns.
static ONE_PG_GATEWAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Dropped in this order: the gateway stops before its schema goes.
struct Env {
    gateway: Gateway,
    schema: Option<PgSchema>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
    _dir: tempfile::TempDir,
    data: PathBuf,
    acme: String,
    other: String,
}

fn post_id(n: i64) -> i64 {
    PROLIFIC_BASE + n
}

/// The standard corpus, `acme` and `other` on open terms, a gateway with a test clock; acme
/// received posts 1–10, other posts 5–15 (one lookup each, metered into the ledger).
async fn start(postgres: bool) -> Option<Env> {
    let turn = if postgres { Some(ONE_PG_GATEWAY.lock().await) } else { None };
    let schema = if postgres { Some(pg_schema()?) } else { None };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store: Vec<String> = schema.as_ref().map(|s| vec!["--store".to_owned(), s.url.clone()]).unwrap_or_default();
    let with_store = |args: &[&str]| -> Vec<String> {
        store.iter().cloned().chain(args.iter().map(|a| a.to_string())).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        datapact_ok(&data, &args)
    };
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    run(with_store(&["ingest", "--quiet", corpus.to_str().unwrap()]));
    let terms = dir.path().join("terms.toml");
    let text = format!(
        "{}\n[[licensee]]\nname = \"acme\"\nplan = \"open\"\n\n[[licensee]]\nname = \"other\"\nplan = \"open\"\n",
        open_plan("open", "deletion_deadline = \"24h\"")
    );
    std::fs::write(&terms, text).unwrap();
    run(with_store(&["apply", terms.to_str().unwrap()]));
    let acme = run(with_store(&["key", "issue", "acme"])).trim().to_owned();
    let other = run(with_store(&["key", "issue", "other"])).trim().to_owned();
    let mut extra = vec!["--test-clock", START];
    if let Some(schema) = &schema {
        extra.extend(["--store", schema.url.as_str()]);
    }
    let gateway = Gateway::start(&data, &extra);
    let env = Env { gateway, schema, _turn: turn, _dir: dir, data, acme, other };
    let (status, _, _) = env.gateway.get(&env.acme, &format!("/2/tweets?ids={}", ids(1, 10))).await;
    assert_eq!(status, 200);
    let (status, _, _) = env.gateway.get(&env.other, &format!("/2/tweets?ids={}", ids(5, 11))).await;
    assert_eq!(status, 200);
    Some(env)
}

impl Env {
    async fn store(&self) -> Box<dyn Store> {
        match &self.schema {
            Some(schema) => Box::new(PgStore::connect(&schema.url).await.unwrap()),
            None => Box::new(SqliteStore::open(&self.data).unwrap()),
        }
    }

    async fn licensee_id(&self, name: &str) -> i64 {
        self.store().await.licensee(name).await.unwrap().unwrap().id
    }

    /// `datapact ARGS` on this store, parsed as JSON.
    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = self.schema.as_ref().map(|s| vec!["--store", s.url.as_str()]).unwrap_or_default();
        all.extend(args);
        json_out(&self.data, &all)
    }

    async fn clock(&self, now: &str) {
        set_clock(&self.gateway, &self.data, now).await;
    }

    async fn delete(&self, posts: &[i64]) {
        let ids: Vec<String> = posts.iter().map(|&n| post_id(n).to_string()).collect();
        let response = self
            .gateway
            .http
            .post(format!("{}/admin/posts/delete", self.gateway.admin))
            .bearer_auth(Gateway::admin_token(&self.data))
            .json(&json!({ "ids": ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    async fn correct(&self, n: i64, text: &str) {
        let line = json!({"id": post_id(n).to_string(), "text": text, "author_id": PROLIFIC_AUTHOR.to_string(),
            "created_at": time(EPOCH_MS + n * 60_000)});
        let response = self
            .gateway
            .http
            .post(format!("{}/admin/posts", self.gateway.admin))
            .bearer_auth(Gateway::admin_token(&self.data))
            .header("content-type", "application/x-ndjson")
            .body(line.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    async fn post_json(&self, key: &str, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .gateway
            .http
            .post(format!("{}{path}", self.gateway.public))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create_job(&self, key: &str) -> (u16, Value) {
        self.post_json(key, "/2/compliance/jobs", r#"{"type": "tweets", "name": "nightly", "resumable": false}"#).await
    }

    /// PUT to a URL with no bearer key: (status, body as JSON or null).
    async fn put(&self, url: &str, body: &str) -> (u16, Value, String) {
        let response = self.gateway.http.put(url).body(body.to_owned()).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, response.json().await.unwrap_or(Value::Null), content_type)
    }

    /// GET with no bearer key: (status, body text, content type).
    async fn fetch(&self, url: &str) -> (u16, String, String) {
        let response = self.gateway.http.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, response.text().await.unwrap(), content_type)
    }

    /// The feed: (status, lines, the cursor header).
    async fn events(&self, key: &str, query: &str) -> (u16, Vec<Value>, Option<String>) {
        let response = self
            .gateway
            .http
            .get(format!("{}/2/compliance/events{query}", self.gateway.public))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let cursor = response.headers().get("x-compliance-cursor").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let lines = if status == 200 {
            assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
            text.split("\r\n").filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
        } else {
            vec![serde_json::from_str(&text).unwrap()]
        };
        (status, lines, cursor)
    }
}

fn assert_problem(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert!(body["title"].is_string() && body["type"].is_string(), "not a problem: {body}");
    assert_eq!(body["status"], expected);
    let text = body.to_string();
    assert!(text.contains(needle), "{needle:?} not in {text}");
}

fn with_query(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let parts: Vec<String> = query
        .split('&')
        .map(|part| if part.starts_with(&format!("{name}=")) { format!("{name}={value}") } else { part.to_owned() })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

async fn jobs_upload_poll_download_and_expire(env: Env) {
    let (status, body) = env.create_job(&env.acme).await;
    assert_eq!(status, 200, "{body}");
    let job = &body["data"];
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        (job["type"].as_str(), job["status"].as_str(), job["name"].as_str()),
        (Some("tweets"), Some("created"), Some("nightly"))
    );
    assert_eq!(job["resumable"], false);
    assert_eq!(job["created_at"], "2030-01-01T00:00:00.000Z");
    assert_eq!(job["upload_expires_at"], "2030-01-01T00:15:00.000Z");
    assert_eq!(job["download_expires_at"], "2030-01-08T00:00:00.000Z");
    let upload_url = job["upload_url"].as_str().unwrap().to_owned();
    let download_url = job["download_url"].as_str().unwrap().to_owned();
    assert!(upload_url.starts_with(&format!("{}/2/compliance/upload/{id}?", env.gateway.public)), "{upload_url}");

    // One job per type at a time.
    let (status, body) = env.create_job(&env.acme).await;
    assert_problem(status, &body, 409, &id);
    // Polling, one job and the list.
    let (status, polled, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs/{id}")).await;
    assert_eq!((status, polled["data"]["status"].as_str()), (200, Some("created")));
    assert_eq!(polled["data"]["upload_url"], upload_url.as_str(), "the same signed URL every time");
    let (status, listed, _) = env.gateway.get(&env.acme, "/2/compliance/jobs?type=tweets").await;
    assert_eq!((status, listed["meta"]["result_count"].as_u64()), (200, Some(1)));
    assert_eq!(listed["data"][0]["id"], id.as_str());
    // The download is not ready before the upload.
    let (status, text, _) = env.fetch(&download_url).await;
    assert_problem(status, &serde_json::from_str(&text).unwrap(), 409, "created");

    // Post 3 deleted, post 4 corrected (acme received both); post 20 deleted (never received).
    env.clock("2030-01-01T00:05:00Z").await;
    env.delete(&[3, 20]).await;
    env.correct(4, "Post number 4, corrected by its author").await;
    let upload: String = [3, 4, 5, 20, 3].iter().map(|&n| format!("{}\r\n", post_id(n))).collect();
    env.clock("2030-01-01T00:10:00Z").await;
    let (status, done, content_type) = env.put(&upload_url, &upload).await;
    assert_eq!(status, 200, "{done}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(done["data"]["status"], "complete");
    // An upload is taken once.
    let (status, again, _) = env.put(&upload_url, &upload).await;
    assert_problem(status, &again, 409, "complete");
    let (_, polled, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs/{id}")).await;
    assert_eq!(polled["data"]["status"], "complete");

    env.clock("2030-01-02T00:00:00Z").await;
    let (status, text, content_type) = env.fetch(&download_url).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/x-ndjson");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        lines.len(),
        2,
        "post 3 deleted and post 4 corrected, once each; 5 unchanged, 20 never received: {text}"
    );
    assert_eq!(lines[0]["id"], post_id(3).to_string());
    assert_eq!((lines[0]["action"].as_str(), lines[0]["reason"].as_str()), (Some("delete"), Some("deleted")));
    assert_eq!(lines[0]["redacted_at"], "2030-01-01T00:05:00.000Z");
    assert_eq!(lines[1]["id"], post_id(4).to_string());
    assert_eq!((lines[1]["action"].as_str(), lines[1]["revision"].as_u64()), (Some("edit"), Some(2)));
    // Downloading the result is notice of the deletion, recorded once, at the download.
    let acme = env.licensee_id("acme").await;
    let notices = env.store().await.deletion_notices(Some(acme)).await.unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].post_id.get(), post_id(3));
    assert_eq!(notices[0].via, format!("job:{id}"));
    assert_eq!(notices[0].notified_at, Timestamp::parse_rfc3339("2030-01-02T00:00:00Z").unwrap());

    // A complete job does not block a new one; a job never uploaded to expires with its URL.
    let (status, second) = env.create_job(&env.acme).await;
    assert_eq!(status, 200, "{second}");
    let second_id = second["data"]["id"].as_str().unwrap().to_owned();
    let second_upload = second["data"]["upload_url"].as_str().unwrap().to_owned();
    env.clock("2030-01-02T00:15:01Z").await;
    let (_, polled, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs/{second_id}")).await;
    assert_eq!(polled["data"]["status"], "expired");
    let (status, body, _) = env.put(&second_upload, &post_id(1).to_string()).await;
    assert_problem(status, &body, 403, "expired");
    let (status, listed, _) = env.gateway.get(&env.acme, "/2/compliance/jobs?type=tweets&status=expired").await;
    assert_eq!((status, listed["meta"]["result_count"].as_u64()), (200, Some(1)), "{listed}");
    // An expired job no longer blocks a new one.
    let (status, _) = env.create_job(&env.acme).await;
    assert_eq!(status, 200);
    // Past its download window, the result is gone.
    env.clock("2030-01-08T00:00:01Z").await;
    let (status, text, _) = env.fetch(&download_url).await;
    assert_problem(status, &serde_json::from_str(&text).unwrap(), 403, "expired");
    let (_, polled, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs/{id}")).await;
    assert_eq!(polled["data"]["status"], "expired");
}

async fn signed_urls_and_bad_input_are_refused_with_problems(env: Env) {
    let (_, body) = env.create_job(&env.acme).await;
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let upload_url = body["data"]["upload_url"].as_str().unwrap().to_owned();
    let download_url = body["data"]["download_url"].as_str().unwrap().to_owned();
    let acme = env.licensee_id("acme").await;
    let other = env.licensee_id("other").await;

    // Tampering with any part of a signed URL is refused, without a key or with one.
    let signature = upload_url.split("signature=").nth(1).unwrap().to_owned();
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for url in [
        with_query(&upload_url, "signature", &flipped),
        with_query(&upload_url, "licensee", &other.to_string()),
        with_query(&upload_url, "expires", "99999999999999"),
        upload_url.replace(&format!("/upload/{id}?"), &format!("/upload/{}?", id.parse::<u64>().unwrap() + 1)),
        download_url.replace("/download/", "/upload/"),
    ] {
        let (status, body, _) = env.put(&url, "1\n").await;
        assert_problem(status, &body, 403, "signature does not match");
    }
    let (status, body, _) = env.put(&with_query(&upload_url, "licensee", "abc"), "1\n").await;
    assert_problem(status, &body, 400, "licensee");
    let without: String = upload_url.split("&signature=").next().unwrap().to_owned();
    let (status, body, _) = env.put(&without, "1\n").await;
    assert_problem(status, &body, 400, "signature");
    let (status, text, _) = env.fetch(&with_query(&download_url, "signature", "x")).await;
    assert_problem(status, &serde_json::from_str(&text).unwrap(), 403, "signature does not match");
    let (status, body, _) = env.put(&upload_url.replace(&format!("/upload/{id}"), "/upload/12ab"), "1\n").await;
    assert_problem(status, &body, 400, "id");

    // Another licensee's job is not found, whatever it tries; every job route needs a key.
    let (status, body, _) = env.gateway.get(&env.other, &format!("/2/compliance/jobs/{id}")).await;
    assert_problem(status, &body, 404, &id);
    let (status, listed, _) = env.gateway.get(&env.other, "/2/compliance/jobs?type=tweets").await;
    assert_eq!((status, listed["meta"]["result_count"].as_u64()), (200, Some(0)));
    assert_eq!(listed["data"], json!([]), "twarc needs `data`, even empty");
    let response = env.gateway.http.get(format!("{}/2/compliance/jobs?type=tweets", env.gateway.public)).send().await;
    assert_eq!(response.unwrap().status(), 401);
    let response = env.gateway.http.get(format!("{}/2/compliance/events", env.gateway.public)).send().await;
    assert_eq!(response.unwrap().status(), 401);
    // other's own job is independent of acme's.
    let (status, _) = env.create_job(&env.other).await;
    assert_eq!(status, 200);

    // Bad requests, each an X-shaped 400 naming what is wrong.
    for (body, needle) in [
        ("not json", "JSON"),
        ("[1, 2]", "JSON object"),
        ("{}", "type"),
        (r#"{"type": "users"}"#, "users"),
        (r#"{"type": 5}"#, "type"),
        (r#"{"type": "tweets", "resumable": "yes"}"#, "resumable"),
        (r#"{"type": "tweets", "name": 7}"#, "name"),
    ] {
        let (status, problem) = env.post_json(&env.other, "/2/compliance/jobs", body).await;
        assert_problem(status, &problem, 400, needle);
    }
    let long = format!(r#"{{"type": "tweets", "name": "{}"}}"#, "n".repeat(300));
    let (status, problem) = env.post_json(&env.other, "/2/compliance/jobs", &long).await;
    assert_problem(status, &problem, 400, "name");
    for (query, needle) in [("", "type"), ("?type=users", "users"), ("?type=tweets&status=done", "status")] {
        let (status, problem, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs{query}")).await;
        assert_problem(status, &problem, 400, needle);
    }
    let (status, problem, _) = env.gateway.get(&env.acme, "/2/compliance/jobs/abc").await;
    assert_problem(status, &problem, 400, "id");
    let (status, problem, _) = env.gateway.get(&env.acme, "/2/compliance/jobs/123").await;
    assert_problem(status, &problem, 404, "123");
    for (query, needle) in
        [("?since=yesterday", "since"), ("?max_results=0", "max_results"), ("?since=99999999999999999999", "since")]
    {
        let (status, lines, _) = env.events(&env.acme, query).await;
        assert_problem(status, &lines[0], 400, needle);
    }

    // A malformed upload fails the job, as X's does, and says which line.
    let (status, body, _) = env.put(&upload_url, &format!("{}\nnot-an-id\n", post_id(1))).await;
    assert_problem(status, &body, 400, "line 2");
    let (_, polled, _) = env.gateway.get(&env.acme, &format!("/2/compliance/jobs/{id}")).await;
    assert_eq!(polled["data"]["status"], "failed");
    assert!(polled["data"]["error"].as_str().unwrap().contains("line 2"));
    let store = env.store().await;
    assert!(store.deletion_notices(Some(acme)).await.unwrap().is_empty());

    // An upload far above the licensee API's 64 KiB body limit is taken (its route has its own);
    // one above that is a 413 problem.
    let (status, body) = env.create_job(&env.acme).await;
    assert_eq!(status, 200, "a failed job does not block a new one: {body}");
    let url = body["data"]["upload_url"].as_str().unwrap().to_owned();
    let big: String = (1..=20_000).map(|n| format!("{}\r\n", PROLIFIC_BASE + n)).collect();
    assert!(big.len() > 400_000);
    let (status, done, _) = env.put(&url, &big).await;
    assert_eq!((status, done["data"]["status"].as_str()), (200, Some("complete")), "{done}");
    let huge = "1\n".repeat(12 * 1024 * 1024);
    let (status, body, _) = env.put(&url, &huge).await;
    assert_problem(status, &body, 413, "length limit");
}

async fn the_feed_shows_only_received_posts_and_resumes_without_gaps_or_duplicates(env: Env) {
    // acme received 1–10, other 5–15. Post 20 nobody received.
    env.clock("2030-01-01T01:00:00Z").await;
    env.delete(&[2, 7, 12, 20]).await;
    env.clock("2030-01-01T02:00:00Z").await;
    env.correct(3, "Post number 3, corrected").await;
    env.correct(14, "Post number 14, corrected").await;
    // acme receives post 30 only as corrected: that correction is nothing it must act on.
    env.correct(30, "Post number 30, corrected").await;
    let (status, _, _) = env.gateway.get(&env.acme, &format!("/2/tweets/{}", post_id(30))).await;
    assert_eq!(status, 200);

    let (status, acme_all, cursor) = env.events(&env.acme, "").await;
    assert_eq!(status, 200);
    let seen: Vec<(String, String)> = acme_all
        .iter()
        .map(|line| {
            let (kind, event) = line["data"].as_object().unwrap().iter().next().unwrap();
            (kind.clone(), event["tweet"]["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("delete".to_owned(), post_id(2).to_string()),
            ("delete".to_owned(), post_id(7).to_string()),
            ("tweet_edit".to_owned(), post_id(3).to_string()),
        ]
    );
    assert_eq!(acme_all[0]["data"]["delete"]["tweet"]["author_id"], PROLIFIC_AUTHOR.to_string());
    assert_eq!(acme_all[0]["data"]["delete"]["event_at"], "2030-01-01T01:00:00.000Z");
    assert_eq!(acme_all[2]["data"]["tweet_edit"]["revision"], 2);
    assert!(cursor.is_some());

    let (_, other_all, _) = env.events(&env.other, "").await;
    let other_ids: Vec<&str> = other_all
        .iter()
        .map(|l| l["data"].as_object().unwrap().values().next().unwrap()["tweet"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(other_ids, vec![post_id(7).to_string(), post_id(12).to_string(), post_id(14).to_string()]);

    // One event at a time, following the cursors: the same events, none twice, none missed.
    let mut walked = Vec::new();
    let mut since = String::new();
    loop {
        let (status, lines, header) = env.events(&env.acme, &format!("?max_results=1{since}")).await;
        assert_eq!(status, 200);
        let Some(line) = lines.first() else {
            // Caught up: the header still says where to resume.
            assert!(header.is_some());
            break;
        };
        assert_eq!(lines.len(), 1);
        walked.push(line.clone());
        since = format!("&since={}", line["cursor"].as_str().unwrap());
        assert!(walked.len() <= 10, "the walk does not end");
    }
    assert_eq!(walked, acme_all);
    // A deletion after the walk is the next event from the last cursor, and only it.
    env.clock("2030-01-01T03:00:00Z").await;
    env.delete(&[9, 11]).await;
    let last = acme_all.last().unwrap()["cursor"].as_str().unwrap().to_owned();
    let (_, next, header) = env.events(&env.acme, &format!("?since={last}")).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0]["data"]["delete"]["tweet"]["id"], post_id(9).to_string());
    let (_, after_header, _) = env.events(&env.acme, &format!("?since={}", header.unwrap())).await;
    assert!(after_header.is_empty());
    // A time instead of a cursor: the events at or after it.
    let (_, since_time, _) = env.events(&env.acme, "?since=2030-01-01T02:00:00Z").await;
    assert_eq!(since_time.len(), 2, "{since_time:?}");

    // Reading the feed is notice of the deletions it carried, the first read only.
    let acme = env.licensee_id("acme").await;
    let notices = env.store().await.deletion_notices(Some(acme)).await.unwrap();
    let mut noticed: Vec<i64> = notices.iter().map(|n| n.post_id.get()).collect();
    noticed.sort_unstable();
    assert_eq!(noticed, vec![post_id(2), post_id(7), post_id(9)]);
    assert!(notices.iter().all(|n| n.via == "feed"));
    let first = notices.iter().find(|n| n.post_id.get() == post_id(2)).unwrap();
    assert_eq!(first.notified_at, Timestamp::parse_rfc3339("2030-01-01T02:00:00Z").unwrap());
    // The operator sees the same from the command line.
    let listed = env.cli_json(&["compliance", "notices", "acme", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed[0]["via"], "feed");
    assert_eq!(listed[0]["notified_at"], "2030-01-01T02:00:00.000Z");
    assert!(env.cli_json(&["compliance", "violations", "--json"]).as_array().unwrap().is_empty());
    // And from the admin API.
    let admin = |path: String| {
        let request = env.gateway.http.get(format!("{}{path}", env.gateway.admin));
        request.bearer_auth(Gateway::admin_token(&env.data)).send()
    };
    let response = admin("/admin/compliance/notices?licensee=acme".into()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["notices"], listed);
    let response = admin("/admin/compliance/violations".into()).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["violations"], json!([]));
    let response = admin("/admin/compliance/notices?licensee=nobody".into()).await.unwrap();
    assert_eq!(response.status(), 404);
    let unknown = datapact(&env.data, &["compliance", "notices", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no licensee"));
}

async fn openapi_lists_the_compliance_routes(env: Env) {
    let spec: Value = env
        .gateway
        .http
        .get(format!("{}/openapi.json", env.gateway.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/2/compliance/jobs", "post"),
        ("/2/compliance/jobs", "get"),
        ("/2/compliance/jobs/{id}", "get"),
        ("/2/compliance/events", "get"),
        ("/2/compliance/upload/{id}", "put"),
        ("/2/compliance/download/{id}", "get"),
    ] {
        let operation = paths.get(path).and_then(|p| p.get(method));
        assert!(operation.is_some(), "{method} {path} missing");
    }
    // The signed routes need no bearer key.
    assert_eq!(paths["/2/compliance/upload/{id}"]["put"]["security"], json!([{}]));
    let admin: Value =
        env.gateway.http.get(format!("{}/openapi.json", env.gateway.admin)).send().await.unwrap().json().await.unwrap();
    for path in ["/admin/compliance/violations", "/admin/compliance/notices"] {
        assert!(admin["paths"][path]["get"].is_object(), "{path} missing");
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::start(false).await.unwrap()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = super::start(true).await else { return };
                    super::$name(env).await;
                }
            )*
        }
    };
}

on_both_stores!(
    jobs_upload_poll_download_and_expire,
    signed_urls_and_bad_input_are_refused_with_problems,
    the_feed_shows_only_received_posts_and_resumes_without_gaps_or_duplicates,
    openapi_lists_the_compliance_routes,
);

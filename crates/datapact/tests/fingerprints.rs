//! Fingerprints and canaries in served posts, over real HTTP (issue 7): every licensee gets its
//! own copy of each text, `fingerprint = false` gets the public text, canaries take a slot
//! without breaking pagination or being counted, and the ledger records who got which canary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::Value;

/// A plan `marked` (with `plan` lines) and licensees acme and beta on it, globex on it with
/// fingerprints off.
fn terms(plan: &str) -> String {
    let plan = open_plan("marked", plan);
    format!(
        r#"{plan}
[[licensee]]
name = "acme"
plan = "marked"

[[licensee]]
name = "beta"
plan = "marked"

[[licensee]]
name = "globex"
plan = "marked"
fingerprint = false
"#
    )
}

/// An author whose post ids are 1,000 apart, as real ids are sparse (a canary takes an id between
/// its neighbours'); the prolific author's are consecutive.
const SPARSE_AUTHOR: i64 = 3003;
const SPARSE_POSTS: i64 = 150;
const SPARSE_BASE: i64 = 1_810_000_000_000_000_000;

fn sparse_lines() -> Vec<String> {
    (1..=SPARSE_POSTS)
        .map(|n| {
            let mut post = serde_json::json!({
                "id": (SPARSE_BASE + n * 1_000).to_string(),
                "text": format!("Sparse note {n}: it's “fine”... really"),
                "author_id": SPARSE_AUTHOR.to_string(),
                "created_at": time(EPOCH_MS + n * 60_000),
                "lang": "en",
            });
            if n == 1 {
                post["author"] = serde_json::json!({"id": SPARSE_AUTHOR.to_string(), "username": "sparse_sam", "name": "Sam", "created_at": "2019-05-01T10:00:00.000Z"});
            }
            post.to_string()
        })
        .collect()
}

fn setup(plan: &str) -> (tempfile::TempDir, std::path::PathBuf, BTreeMap<&'static str, String>) {
    let (dir, acme) = seeded_data_dir();
    let data_dir = data(&dir);
    let sparse = dir.path().join("sparse.jsonl");
    write_lines(&sparse, &sparse_lines());
    datapact_ok(&data_dir, &["ingest", "--quiet", sparse.to_str().unwrap()]);
    apply_terms(&data_dir, &terms(plan));
    let mut keys = BTreeMap::from([("acme", acme)]);
    for name in ["beta", "globex"] {
        keys.insert(name, datapact_ok(&data_dir, &["key", "issue", name]).trim().to_owned());
    }
    (dir, data_dir, keys)
}

/// The public text of the prolific author's post `id`.
fn public_text(id: i64) -> String {
    let n = id - PROLIFIC_BASE;
    format!("Post number {n} by the prolific author, l’été “quoted” …")
}

/// A text with every typographic variant the corpus uses mapped to one form.
fn typography_folded(text: &str) -> String {
    text.replace(['’', '\''], "'").replace(['“', '”', '"'], "\"").replace('…', "...").replace("e\u{301}", "é")
}

/// `id -> text` of every post in a page's `data`.
fn texts(body: &Value) -> BTreeMap<i64, String> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|post| (post["id"].as_str().unwrap().parse().unwrap(), post["text"].as_str().unwrap().to_owned()))
        .collect()
}

const TIMELINE: &str = "/2/users/1001/tweets?max_results=100";

#[tokio::test]
async fn each_licensee_gets_its_own_copy_and_fingerprint_false_gets_the_public_text() {
    let (_dir, data_dir, keys) = setup("");
    let gateway = Gateway::start(&data_dir, &[]);
    let mut copies = BTreeMap::new();
    for (name, key) in &keys {
        let (status, body, _) = gateway.get(key, TIMELINE).await;
        assert_eq!(status, 200, "{body}");
        copies.insert(*name, texts(&body));
    }
    assert_eq!(copies["acme"].len(), 100);
    for (id, text) in &copies["globex"] {
        assert_eq!(text, &public_text(*id), "fingerprint = false serves the public text");
    }
    let mut differing = 0;
    for (id, acme) in &copies["acme"] {
        let beta = &copies["beta"][id];
        // Copies differ only in typography: the same words for every licensee.
        assert_eq!(typography_folded(acme), typography_folded(&public_text(*id)));
        assert_eq!(typography_folded(beta), typography_folded(&public_text(*id)));
        differing += usize::from(acme != beta);
    }
    assert!(differing >= 50, "acme's and beta's copies differ in {differing} of 100 posts");

    // Deterministic: the same licensee gets the same copy again, on another endpoint too.
    let (_, again, _) = gateway.get(&keys["acme"], TIMELINE).await;
    assert_eq!(texts(&again), copies["acme"]);
    let some_id = *copies["acme"].keys().next().unwrap();
    let (_, single, _) = gateway.get(&keys["acme"], &format!("/2/tweets/{some_id}")).await;
    assert_eq!(single["data"]["text"].as_str().unwrap(), copies["acme"][&some_id]);

    // Search pages repeated by licensees in turn (a repeated page is served from what the
    // gateway kept of it) still carry each licensee's own copy, every time.
    let mut searched: BTreeMap<&str, BTreeMap<i64, String>> = BTreeMap::new();
    for name in ["acme", "beta", "acme", "globex", "beta", "acme", "acme", "globex"] {
        let (status, search, _) = gateway.get(&keys[name], "/2/tweets/search/recent?query=sparse&max_results=50").await;
        assert_eq!(status, 200, "{search}");
        let found = texts(&search);
        assert_eq!(found.len(), 50, "{name}");
        assert_eq!(&found, searched.entry(name).or_insert_with(|| found.clone()), "{name}: the same copy every time");
    }
    let folded =
        |copy: &BTreeMap<i64, String>| -> Vec<String> { copy.values().map(|t| typography_folded(t)).collect() };
    assert_eq!(folded(&searched["acme"]), folded(&searched["globex"]), "the same posts, the same words");
    assert_eq!(folded(&searched["beta"]), folded(&searched["globex"]));
    assert_ne!(searched["acme"], searched["beta"], "but each licensee's own typography");
    assert_ne!(searched["acme"], searched["globex"]);

    // A restart renders with the same secret: the same copies.
    drop(gateway);
    let gateway = Gateway::start(&data_dir, &[]);
    let (_, after_restart, _) = gateway.get(&keys["acme"], TIMELINE).await;
    assert_eq!(texts(&after_restart), copies["acme"]);
}

/// Every page of the sparse author's timeline for `key`, following `next_token`.
async fn timeline_pages(gateway: &Gateway, key: &str, query: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    let timeline = format!("/2/users/{SPARSE_AUTHOR}/tweets?max_results=40");
    loop {
        let path = match &token {
            Some(token) => format!("{timeline}{query}&pagination_token={token}"),
            None => format!("{timeline}{query}"),
        };
        let (status, body, _) = gateway.get(key, &path).await;
        assert_eq!(status, 200, "{body}");
        token = body["meta"]["next_token"].as_str().map(str::to_owned);
        pages.push(body);
        if token.is_none() {
            return pages;
        }
    }
}

fn ledger_canaries(data_dir: &Path, licensee: &str) -> BTreeSet<i64> {
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let out = datapact_ok(data_dir, &["deliveries", licensee, "--month", &month, "--format", "jsonl"]);
    out.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|row| row["revision"] == 0)
        .map(|row| row["post_id"].as_str().map_or_else(|| row["post_id"].as_i64().unwrap(), |id| id.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn canaries_take_a_slot_keep_pagination_whole_are_recorded_and_never_counted() {
    // Every page of two or more posts gets one canary.
    let (_dir, data_dir, keys) = setup("canary_rate = 1.0");
    let gateway = Gateway::start(&data_dir, &[]);
    let pages = timeline_pages(&gateway, &keys["acme"], "&expansions=author_id&tweet.fields=author_id").await;
    let real: BTreeSet<i64> = (1..=SPARSE_POSTS).map(|n| SPARSE_BASE + n * 1_000).collect();
    let (mut seen_real, mut canaries) = (Vec::new(), BTreeMap::new());
    for page in &pages {
        let ids: Vec<i64> =
            page["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().parse().unwrap()).collect();
        assert_eq!(page["meta"]["result_count"].as_u64().unwrap() as usize, ids.len());
        assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "recency order holds with the canary in it");
        let (page_real, page_canaries): (Vec<i64>, Vec<i64>) = ids.iter().partition(|id| real.contains(id));
        assert_eq!(page_canaries.len(), usize::from(page_real.len() >= 2), "one canary per page of 2+ posts");
        assert_eq!(page["meta"]["newest_id"].as_str().unwrap().parse::<i64>().unwrap(), page_real[0]);
        assert_eq!(page["meta"]["oldest_id"].as_str().unwrap().parse::<i64>().unwrap(), *page_real.last().unwrap());
        for post in page["data"].as_array().unwrap() {
            let id: i64 = post["id"].as_str().unwrap().parse().unwrap();
            if page_canaries.contains(&id) {
                let author = post["author_id"].as_str().unwrap().to_owned();
                assert_ne!(author, SPARSE_AUTHOR.to_string(), "a canary is by a synthetic account");
                let users = page["includes"]["users"].as_array().unwrap();
                assert!(users.iter().any(|user| user["id"] == author.as_str()), "its author is in includes");
                canaries.insert(id, post["text"].as_str().unwrap().to_owned());
            }
        }
        seen_real.extend(page_real);
    }
    assert_eq!(seen_real.len(), real.len(), "no real post skipped or repeated");
    assert_eq!(seen_real.iter().copied().collect::<BTreeSet<_>>(), real);
    assert_eq!(canaries.len(), pages.len(), "pages: {}", pages.len());

    // Search pages get them too.
    let (status, search, _) = gateway.get(&keys["acme"], "/2/tweets/search/recent?query=sparse&max_results=50").await;
    assert_eq!(status, 200, "{search}");
    let found = texts(&search);
    assert_eq!(found.keys().filter(|id| !real.contains(id)).count(), 1, "one canary in a search page");
    assert_eq!(found.keys().filter(|id| real.contains(id)).count(), 49, "and 49 real posts: it took a slot");

    // Never counted: the usage is the real posts only.
    let (_, usage, _) = gateway.get(&keys["acme"], "/2/usage/tweets").await;
    // (The search's posts are among the timeline's: counted once a day.)
    assert_eq!(usage["data"]["project_usage"].as_str().unwrap(), SPARSE_POSTS.to_string(), "{usage}");
    // Recorded: the ledger says which canaries acme received.
    drop(gateway);
    let mut delivered_canaries: BTreeSet<i64> = canaries.keys().copied().collect();
    delivered_canaries.extend(found.keys().filter(|id| !real.contains(id)));
    assert_eq!(ledger_canaries(&data_dir, "acme"), delivered_canaries);
    // Canary rows are sealed in the chain like any delivery.
    let verified = datapact_ok(&data_dir, &["ledger", "verify"]);
    assert!(verified.starts_with("ledger verifies"), "{verified}");

    // Another licensee gets other canaries (other ids or other texts).
    let gateway = Gateway::start(&data_dir, &[]);
    let beta_pages = timeline_pages(&gateway, &keys["beta"], "").await;
    let beta_canaries: BTreeMap<i64, String> = beta_pages
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap().clone())
        .filter_map(|post| {
            let id: i64 = post["id"].as_str().unwrap().parse().unwrap();
            (!real.contains(&id)).then(|| (id, post["text"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert_eq!(beta_canaries.len(), beta_pages.len());
    for text in beta_canaries.values() {
        assert!(!canaries.values().any(|acme| acme == text), "a canary text is unique to its licensee");
    }
}

#[tokio::test]
async fn without_a_canary_rate_pages_hold_only_real_posts() {
    let (_dir, data_dir, keys) = setup("");
    let gateway = Gateway::start(&data_dir, &[]);
    let pages = timeline_pages(&gateway, &keys["acme"], "").await;
    let ids: Vec<i64> = pages.iter().flat_map(|page| texts(page).into_keys()).collect();
    assert_eq!(ids.len(), SPARSE_POSTS as usize);
    drop(gateway);
    assert!(ledger_canaries(&data_dir, "acme").is_empty());
}

// --- tracing leaks of served copies --------------------------------------------------------------

/// Every post of both authors' timelines, as `key` receives them: `id -> text`.
async fn everything(gateway: &Gateway, key: &str) -> BTreeMap<i64, String> {
    let mut all = BTreeMap::new();
    for author in [PROLIFIC_AUTHOR, SPARSE_AUTHOR] {
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/2/users/{author}/tweets?max_results=100");
            if let Some(token) = &token {
                path.push_str(&format!("&pagination_token={token}"));
            }
            let (status, body, _) = gateway.get(key, &path).await;
            assert_eq!(status, 200, "{body}");
            all.extend(texts(&body));
            token = body["meta"]["next_token"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    all
}

/// A CSV dump with a `text` column and no ids, as a scraper would keep it.
fn csv_leak(path: &Path, texts: &[&String]) {
    let mut out = String::from("lang,text\n");
    for text in texts {
        out.push_str(&format!("en,\"{}\"\n", text.replace('"', "\"\"")));
    }
    std::fs::write(path, out).unwrap();
}

/// `datapact trace` with `args` (JSON report).
fn trace(data_dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["trace", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&datapact_ok(data_dir, &all)).unwrap()
}

fn accused_names(report: &Value) -> Vec<String> {
    report["accused"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_csv_leak_without_ids_names_its_licensee_and_only_it_and_the_public_text_names_nobody() {
    let (dir, data_dir, keys) = setup("");
    let gateway = Gateway::start(&data_dir, &[]);
    let acme = everything(&gateway, &keys["acme"]).await;
    let beta = everything(&gateway, &keys["beta"]).await;
    let public = everything(&gateway, &keys["globex"]).await;
    drop(gateway);
    assert_eq!(acme.len(), 400);

    // A subset of acme's copy: every other post, without ids.
    let leak = dir.path().join("leak.csv");
    csv_leak(&leak, &acme.values().step_by(2).collect::<Vec<_>>());
    let report = trace(&data_dir, &[leak.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(accused_names(&report), ["acme"], "{report:#}");
    assert_eq!(report["records"]["matched_by_text"], 200, "{:#}", report["records"]);
    let accused = &report["accused"][0];
    assert_eq!(accused["delivered_posts"], 200, "the ledger says acme received every leaked post");

    // beta's copy names beta (format sniffed).
    let leak = dir.path().join("beta.csv");
    csv_leak(&leak, &beta.values().take(300).collect::<Vec<_>>());
    assert_eq!(accused_names(&trace(&data_dir, &[leak.to_str().unwrap()])), ["beta"]);

    // The public text (globex has fingerprints off) accuses nobody.
    let leak = dir.path().join("public.csv");
    csv_leak(&leak, &public.values().collect::<Vec<_>>());
    let report = trace(&data_dir, &[leak.to_str().unwrap(), "--format", "csv"]);
    assert!(accused_names(&report).is_empty(), "{report:#}");
    assert_eq!(report["records"]["matched_by_text"], 400);
}

#[tokio::test]
async fn a_canary_in_a_plain_text_dump_is_found_and_attributed() {
    let (dir, data_dir, keys) = setup("canary_rate = 1.0");
    let gateway = Gateway::start(&data_dir, &[]);
    let pages = timeline_pages(&gateway, &keys["beta"], "").await;
    drop(gateway);
    let real: BTreeSet<i64> = (1..=SPARSE_POSTS).map(|n| SPARSE_BASE + n * 1_000).collect();
    let canary = pages
        .iter()
        .flat_map(texts)
        .find(|(id, _)| !real.contains(id))
        .map(|(_, text)| text)
        .expect("beta received a canary");
    let dump = dir.path().join("dump.txt");
    std::fs::write(&dump, format!("an unrelated line\n{canary}\nanother line of someone else's text\n")).unwrap();
    let report = trace(&data_dir, &[dump.to_str().unwrap(), "--format", "text"]);
    let hits = report["canary_hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{report:#}");
    assert_eq!(hits[0]["name"], "beta");
    assert!(report["canaries_searched"].as_u64().unwrap() >= pages.len() as u64);
}

#[tokio::test]
async fn rotation_keeps_older_copies_traceable() {
    let (dir, data_dir, keys) = setup("");
    let gateway = Gateway::start(&data_dir, &[]);
    let acme_v1 = everything(&gateway, &keys["acme"]).await;
    drop(gateway);
    datapact_ok(&data_dir, &["secret", "rotate"]);
    let gateway = Gateway::start(&data_dir, &[]);
    let acme_v2 = everything(&gateway, &keys["acme"]).await;
    drop(gateway);
    assert_ne!(acme_v1, acme_v2, "a rotated secret marks new copies differently");

    for (name, copy, version) in [("v1", &acme_v1, 1), ("v2", &acme_v2, 2)] {
        let leak = dir.path().join(format!("{name}.csv"));
        csv_leak(&leak, &copy.values().collect::<Vec<_>>());
        let report = trace(&data_dir, &[leak.to_str().unwrap()]);
        assert_eq!(accused_names(&report), ["acme"], "{name}: {report:#}");
        assert_eq!(report["accused"][0]["version"], version);
    }
}

#[tokio::test]
async fn two_gateways_with_the_same_secret_render_identically() {
    let (_one, data_one, keys_one) = setup("");
    let (_two, data_two, keys_two) = setup("");
    // The second data dir imports the first's secret before its gateway ever starts.
    let export = data_one.with_extension("secret.age");
    let run = |data_dir: &Path, args: &[&str]| {
        let output = std::process::Command::new(BIN)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("DATAPACT_SECRET_PASSPHRASE", "a long enough test passphrase")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let one = Gateway::start(&data_one, &[]);
    run(&data_one, &["secret", "export", "--out", export.to_str().unwrap()]);
    run(&data_two, &["secret", "import", export.to_str().unwrap()]);
    let two = Gateway::start(&data_two, &[]);
    for name in ["acme", "beta"] {
        let (a, b) = (everything(&one, &keys_one[name]).await, everything(&two, &keys_two[name]).await);
        assert_eq!(a, b, "{name}'s copies differ between the gateways");
    }
}

#[tokio::test]
async fn the_stream_carries_canaries_between_ingested_posts_and_records_them() {
    let (_dir, data_dir, keys) = setup("canary_rate = 1.0");
    let gateway = Gateway::start(&data_dir, &[]);
    let mut response = gateway
        .http
        .get(format!("{}/2/tweets/sample/stream", gateway.public))
        .bearer_auth(&keys["acme"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // One burst of five new posts, ids 1,000 apart: a canary fits between two of them.
    let base = 1_820_000_000_000_000_000i64;
    let lines: Vec<String> = (1..=5)
        .map(|n| {
            serde_json::json!({"id": (base + n * 1_000).to_string(), "text": format!("Streamed {n}: it's “new”"),
                "author_id": QUIET_AUTHOR.to_string(), "created_at": time(EPOCH_MS + n)})
            .to_string()
        })
        .collect();
    let token = Gateway::admin_token(&data_dir);
    let ingested =
        gateway.http.post(format!("{}/admin/posts", gateway.admin)).bearer_auth(token).body(lines.join("\n")).send();
    assert_eq!(ingested.await.unwrap().status(), 200);
    let (mut buffer, mut ids) = (Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    while ids.len() < 6 && started.elapsed() < std::time::Duration::from_secs(20) {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(std::time::Duration::from_secs(20), response.chunk()).await
        else {
            break;
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buffer.drain(..end + 2).collect();
            if line.len() > 2 {
                let post: Value = serde_json::from_slice(&line[..line.len() - 2]).unwrap();
                ids.push(post["data"]["id"].as_str().unwrap().parse::<i64>().unwrap());
            }
        }
    }
    drop(response);
    let real: BTreeSet<i64> = (1..=5).map(|n| base + n * 1_000).collect();
    let canaries: BTreeSet<i64> = ids.iter().copied().filter(|id| !real.contains(id)).collect();
    assert_eq!(ids.iter().filter(|id| real.contains(id)).count(), 5, "every ingested post streamed: {ids:?}");
    assert_eq!(canaries.len(), 1, "one canary in the burst: {ids:?}");
    drop(gateway);
    assert_eq!(ledger_canaries(&data_dir, "acme"), canaries, "the ledger records the streamed canary");
}

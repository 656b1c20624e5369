//! Search, the sample stream, OpenAPI and metrics over real HTTP.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Extra posts with known words: ids 1..=40, author 2001 (`searcher`), half French, every third a reply.
fn search_corpus() -> Vec<String> {
    (1..=40i64)
        .map(|n| {
            let mut text = format!("alpha word{n}");
            if n % 2 == 0 {
                text.push_str(" beta");
            }
            if n % 5 == 0 {
                text.push_str(" gamma delta");
            }
            if n % 7 == 0 {
                text.push_str(" Été à Paris");
            }
            let mut post = json!({
                "id": (500_000 + n).to_string(), "text": text, "author_id": "2001",
                "created_at": time(EPOCH_MS + n * 1000), "lang": if n % 2 == 0 { "fr" } else { "en" },
                "author": {"id": "2001", "username": "searcher"}
            });
            if n % 3 == 0 {
                post["referenced_tweets"] = json!([{"type": "replied_to", "id": (500_000 + n - 1).to_string()}]);
            }
            post.to_string()
        })
        .collect()
}

async fn ingest_extra(gateway: &Gateway, data_dir: &std::path::Path, lines: &[String]) {
    let token = Gateway::admin_token(data_dir);
    let response = gateway
        .http
        .post(format!("{}/admin/posts", gateway.admin))
        .bearer_auth(token)
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Every page of a search, following next_token; ids in order.
async fn search_all(gateway: &Gateway, key: &str, query: &str, extra: &str, token_name: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut url = reqwest::Url::parse(&format!("{}/2/tweets/search/recent", gateway.public)).unwrap();
        url.query_pairs_mut().append_pair("query", query);
        for pair in extra.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            url.query_pairs_mut().append_pair(k, v);
        }
        if let Some(token) = &token {
            url.query_pairs_mut().append_pair(token_name, token);
        }
        let response = gateway.http.get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let page: Vec<i64> = body["data"]
            .as_array()
            .map(|d| d.iter().map(|p| p["id"].as_str().unwrap().parse().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(body["meta"]["result_count"], page.len());
        ids.extend(page);
        match body["meta"].get("next_token") {
            None => return ids,
            Some(Value::String(next)) => token = Some(next.clone()),
            Some(other) => panic!("next_token must be absent or a string: {other}"),
        }
    }
    panic!("search pagination did not end");
}

fn extra_ids(filter: impl Fn(i64) -> bool) -> Vec<i64> {
    (1..=40).rev().filter(|&n| filter(n)).map(|n| 500_000 + n).collect()
}

#[tokio::test]
async fn search_query_language_and_pagination() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    ingest_extra(&gateway, &data_dir, &search_corpus()).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // one feed poll

    // The prolific author's 250 posts, in pages of 10, 17 and 100, under both token names.
    let all: Vec<i64> = (1..=PROLIFIC_POSTS).rev().map(|n| PROLIFIC_BASE + n).collect();
    for (size, token_name) in [("10", "next_token"), ("17", "pagination_token"), ("100", "next_token")] {
        let found = search_all(&gateway, &key, "prolific", &format!("max_results={size}"), token_name).await;
        assert_eq!(found, all, "max_results={size}");
    }
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("alpha", extra_ids(|_| true)),
        ("ALPHA beta", extra_ids(|n| n % 2 == 0)),
        ("alpha -beta", extra_ids(|n| n % 2 == 1)),
        ("\"gamma delta\"", extra_ids(|n| n % 5 == 0)),
        ("\"delta gamma\"", vec![]),
        ("word3 OR word4", extra_ids(|n| n == 3 || n == 4)),
        ("(word3 OR word4) beta", extra_ids(|n| n == 4)),
        ("alpha lang:fr -(beta)", vec![]),
        ("alpha lang:en", extra_ids(|n| n % 2 == 1)),
        ("alpha is:reply", extra_ids(|n| n % 3 == 0)),
        ("alpha -is:reply gamma", extra_ids(|n| n % 3 != 0 && n % 5 == 0)),
        ("from:Searcher été", extra_ids(|n| n % 7 == 0)),
        ("from:nobody alpha", vec![]),
        ("ete", vec![]),
        ("l’été", all.clone()),
    ];
    for (query, expected) in cases {
        let found = search_all(&gateway, &key, query, "max_results=10", "next_token").await;
        assert_eq!(found, expected, "query {query:?}");
    }
    // Time and id bounds.
    let found =
        search_all(&gateway, &key, "alpha", &format!("since_id={}&until_id={}", 500_010, 500_021), "next_token").await;
    assert_eq!(found, extra_ids(|n| n > 10 && n < 21));
    let found = search_all(
        &gateway,
        &key,
        "alpha",
        &format!("start_time={}&end_time={}", time(EPOCH_MS + 5_000), time(EPOCH_MS + 9_000)),
        "next_token",
    )
    .await;
    assert_eq!(found, extra_ids(|n| (5..9).contains(&n)));

    // Relevancy: more matched terms first, then recency; pagination still exact.
    let found =
        search_all(&gateway, &key, "beta OR gamma OR word7", "sort_order=relevancy&max_results=10", "next_token").await;
    let score = |n: i64| (n % 2 == 0) as u32 + (n % 5 == 0) as u32 + (n == 7) as u32;
    let mut expected: Vec<i64> = (1..=40).filter(|&n| score(n) > 0).collect();
    expected.sort_by_key(|&n| (std::cmp::Reverse(score(n)), std::cmp::Reverse(n)));
    assert_eq!(found, expected.iter().map(|n| 500_000 + n).collect::<Vec<_>>());
    assert_eq!(found.iter().collect::<HashSet<_>>().len(), found.len());

    // A deleted post leaves search within a poll interval; a correction is searchable by its new text.
    datapact_ok(&data_dir, &["delete", "500040"]);
    let corrected = json!({"id": "500039", "text": "alpha zeta corrected", "author_id": "2001", "created_at": time(EPOCH_MS + 39_000)}).to_string();
    ingest_extra(&gateway, &data_dir, &[corrected]).await;
    let gone = eventually(Duration::from_secs(2), async || {
        search_all(&gateway, &key, "alpha", "max_results=10", "next_token").await.first() == Some(&500_039)
            && search_all(&gateway, &key, "zeta", "", "next_token").await == vec![500_039]
    })
    .await;
    assert!(gone.is_some(), "deletion and correction reached the index");
}

#[tokio::test]
async fn malformed_search_requests_are_400s_that_say_where() {
    let (dir, key) = seeded_data_dir();
    let gateway = Gateway::start(&data(&dir), &[]);
    let cases = [
        ("", "query"),
        ("(alpha", "("),
        ("alpha)", ")"),
        ("\"alpha", "quote"),
        ("-alpha", "negated"),
        ("alpha OR", "OR"),
        ("has:links alpha", "has:"),
    ];
    for (query, mention) in cases {
        let mut url = reqwest::Url::parse(&format!("{}/2/tweets/search/recent", gateway.public)).unwrap();
        url.query_pairs_mut().append_pair("query", query);
        let response = gateway.http.get(url).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body: Value = response.json().await.unwrap();
        let message = body["errors"][0]["message"].as_str().unwrap().to_owned();
        assert!(message.to_lowercase().contains(&mention.to_lowercase()), "{query:?}: {message}");
    }
    for bad in
        ["max_results=9", "max_results=101", "sort_order=newest", "next_token=zzz", "start_time=never", "since_id=abc"]
    {
        let (status, body, headers) = gateway.get(&key, &format!("/2/tweets/search/recent?query=alpha&{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets/search/recent?query={}", "a%20".repeat(2100))).await;
    assert_eq!(status, 400, "queries over 4,096 characters");
}

#[tokio::test]
async fn the_stream_delivers_posts_ingested_while_connected_and_keeps_alive() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    // Posts ingested just now are within a 1-minute backfill; the seeded ones were ingested earlier too.
    let response = gateway
        .http
        .get(format!("{}/2/tweets/sample/stream?tweet.fields=created_at&expansions=author_id", gateway.public))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let line = json!({"id": "777", "text": "fresh off the press", "author_id": QUIET_AUTHOR.to_string(), "created_at": "2024-06-01T00:00:00Z"}).to_string();
    ingest_extra(&gateway, &data_dir, &[line]).await;
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    let mut keep_alive_seen = false;
    let mut post_seen = None;
    while started.elapsed() < Duration::from_secs(25) && !(keep_alive_seen && post_seen.is_some()) {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(25), response.chunk()).await else { break };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buffer.drain(..end + 2).collect();
            let line = &line[..line.len() - 2];
            if line.is_empty() {
                keep_alive_seen = true;
            } else {
                post_seen = Some(serde_json::from_slice::<Value>(line).unwrap());
            }
        }
    }
    let post = post_seen.expect("the post ingested while connected was streamed");
    assert_eq!(post["data"]["id"], "777");
    assert_eq!(post["data"]["created_at"], "2024-06-01T00:00:00.000Z");
    assert_eq!(post["includes"]["users"][0]["username"], "quiet_quinn");
    assert!(keep_alive_seen, "a blank keep-alive line arrives when the stream is quiet");

    // backfill_minutes replays what was ingested in the last minutes.
    let mut response = gateway
        .http
        .get(format!("{}/2/tweets/sample/stream?backfill_minutes=5", gateway.public))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("\"777\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("backfill arrives")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(&format!("\"{}\"", PROLIFIC_BASE + 1)), "posts ingested minutes ago are backfilled");
    let (status, _, _) = gateway.get(&key, "/2/tweets/sample/stream?backfill_minutes=6").await;
    assert_eq!(status, 400);
    drop(response);

    // Shutdown ends open streams with X's operational-disconnect message.
    let mut response =
        gateway.http.get(format!("{}/2/tweets/sample/stream", gateway.public)).bearer_auth(&key).send().await.unwrap();
    let stopper = std::thread::spawn(move || gateway.stop());
    let mut tail = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await {
        tail.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(tail.contains("operational-disconnect"), "{tail:?}");
    assert!(stopper.join().unwrap().success());
}

#[tokio::test]
async fn openapi_describes_every_route_and_metrics_count_requests() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    let spec: Value =
        gateway.http.get(format!("{}/openapi.json", gateway.public)).send().await.unwrap().json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/2/tweets",
        "/2/tweets/{id}",
        "/2/tweets/search/recent",
        "/2/tweets/sample/stream",
        "/2/users/{id}/tweets",
        "/2/users",
        "/2/users/{id}",
        "/2/users/by/username/{username}",
    ] {
        let operation = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))["get"];
        assert!(
            operation["responses"]["400"].is_object() && operation["responses"]["401"].is_object(),
            "{path} lacks its problems"
        );
    }
    let search_params: Vec<&str> = paths["/2/tweets/search/recent"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "query",
        "max_results",
        "sort_order",
        "next_token",
        "pagination_token",
        "start_time",
        "tweet.fields",
        "expansions",
    ] {
        assert!(search_params.contains(&name), "{name} not described");
    }
    let admin: Value =
        gateway.http.get(format!("{}/openapi.json", gateway.admin)).send().await.unwrap().json().await.unwrap();
    for path in [
        "/admin/posts",
        "/admin/licensees",
        "/admin/licensees/{name}/keys",
        "/admin/keys/{prefix}/revoke",
        "/admin/backup",
        "/metrics",
    ] {
        assert!(admin["paths"].get(path).is_some(), "{path} missing from the admin document");
    }

    gateway.get(&key, &format!("/2/tweets?ids={},{}", PROLIFIC_BASE + 1, PROLIFIC_BASE + 2)).await;
    gateway.get("dpk_bad", "/2/tweets/1").await;
    let token = Gateway::admin_token(&data_dir);
    let response = gateway.http.get(format!("{}/metrics", gateway.admin)).send().await.unwrap();
    assert_eq!(response.status(), 401, "metrics sit behind the admin token");
    let metrics = gateway
        .http
        .get(format!("{}/metrics", gateway.admin))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"datapact_records_served_total{licensee="acme",endpoint="lookup"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"route="/2/tweets",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"route="/2/tweets/{id}",status="401"} 1"#), "{metrics}");
    assert!(metrics.contains("datapact_http_request_duration_seconds_bucket"), "{metrics}");
}

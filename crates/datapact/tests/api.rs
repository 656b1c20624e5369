//! The licensee API over real HTTP against a spawned gateway.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn assert_problem(status: u16, body: &Value, headers: &reqwest::header::HeaderMap, what: &str) {
    assert!((400..500).contains(&status), "{what}: expected a 4xx, got {status}: {body}");
    assert_eq!(headers["content-type"], "application/problem+json", "{what}");
    for field in ["title", "detail", "type"] {
        assert!(body[field].is_string(), "{what}: problem without {field}: {body}");
    }
    assert_eq!(body["status"], status, "{what}");
    assert!(body["errors"][0]["message"].is_string(), "{what}: X clients read errors[].message: {body}");
}

#[tokio::test]
async fn post_lookup_has_x_shapes() {
    let (dir, key) = seeded_data_dir();
    let gateway = Gateway::start(&data(&dir), &[]);
    let id = PROLIFIC_BASE + 2;

    let (status, body, headers) = gateway.get(&key, &format!("/2/tweets/{id}")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let post = &body["data"];
    assert_eq!(post["id"], id.to_string(), "ids are strings");
    assert_eq!(post["edit_history_tweet_ids"], serde_json::json!([id.to_string()]));
    assert!(post.get("created_at").is_none(), "fields only when asked: {post}");

    let (_, body, _) = gateway
        .get(&key, &format!("/2/tweets/{id}?tweet.fields=created_at,lang,author_id,conversation_id,public_metrics,geo,context_annotations&expansions=author_id,referenced_tweets.id&user.fields=created_at,public_metrics"))
        .await;
    let post = &body["data"];
    assert_eq!(post["created_at"], time(EPOCH_MS + 2 * 60_000));
    assert!(post["created_at"].as_str().unwrap().ends_with(".000Z"), "milliseconds, as tweepy needs");
    assert_eq!(post["lang"], "en");
    assert_eq!(post["author_id"], PROLIFIC_AUTHOR.to_string());
    assert_eq!(post["conversation_id"], id.to_string());
    assert_eq!(post["public_metrics"]["like_count"], 4);
    assert!(post.get("geo").is_none(), "fields we do not hold are ignored");
    let user = &body["includes"]["users"][0];
    assert_eq!(user["username"], "Prolific_Pat");
    assert_eq!(user["public_metrics"]["tweet_count"], PROLIFIC_POSTS);
    assert_eq!(user["created_at"], "2019-05-01T10:00:00.000Z");

    // post.fields is the newer name xdk sends.
    let (_, body, _) =
        gateway.get(&key, &format!("/2/tweets/{QUIET_POST}?post.fields=referenced_tweets,created_at")).await;
    assert_eq!(body["data"]["referenced_tweets"][0]["type"], "quoted");
    assert_eq!(body["data"]["created_at"], "2023-11-14T22:13:20.000Z");

    let (status, body, _) = gateway.get(&key, "/2/tweets/42").await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["resource_type"], "tweet");
    assert_eq!(body["errors"][0]["type"], "https://api.x.com/2/problems/resource-not-found");
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn multi_lookup_reports_unknown_and_deleted_ids() {
    let (dir, key) = seeded_data_dir();
    let deleted = (PROLIFIC_BASE + 5).to_string();
    datapact_ok(&data(&dir), &["delete", &deleted]);
    let gateway = Gateway::start(&data(&dir), &[]);
    let kept = (PROLIFIC_BASE + 4).to_string();
    let (status, body, _) =
        gateway.get(&key, &format!("/2/tweets?ids={kept},{deleted},77,{kept}&expansions=author_id")).await;
    assert_eq!(status, 200);
    let data: Vec<&str> = body["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(data, vec![kept.as_str()]);
    let missing: HashSet<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["resource_id"].as_str().unwrap()).collect();
    assert_eq!(missing, HashSet::from([deleted.as_str(), "77"]));
    assert!(body["errors"].as_array().unwrap().iter().all(|e| e["resource_type"] == "tweet"));
    assert_eq!(body["includes"]["users"].as_array().unwrap().len(), 1);

    // A deleted post is gone from single lookup and timelines, and counts drop.
    let (_, body, _) = gateway.get(&key, &format!("/2/tweets/{deleted}")).await;
    assert!(body.get("data").is_none());
    let (_, body, _) = gateway.get(&key, &format!("/2/users/{PROLIFIC_AUTHOR}?user.fields=public_metrics")).await;
    assert_eq!(body["data"]["public_metrics"]["tweet_count"], PROLIFIC_POSTS - 1);
}

/// Walks a timeline page by page: every post exactly once, newest first, and `next_token`
/// absent (never null) on the last page.
async fn walk(gateway: &Gateway, key: &str, query: &str, token_name: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..200 {
        let mut path = format!("/2/users/{PROLIFIC_AUTHOR}/tweets?{query}");
        if let Some(token) = &token {
            path.push_str(&format!("&{token_name}={token}"));
        }
        let (status, body, _) = gateway.get(key, &path).await;
        assert_eq!(status, 200, "{body}");
        let meta = &body["meta"];
        let page: Vec<i64> = body["data"]
            .as_array()
            .map(|posts| posts.iter().map(|p| p["id"].as_str().unwrap().parse().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(meta["result_count"], page.len());
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            assert_eq!(meta["newest_id"], first.to_string());
            assert_eq!(meta["oldest_id"], last.to_string());
        }
        seen.extend(page);
        match meta.get("next_token") {
            None => return seen,
            Some(Value::String(next)) => token = Some(next.clone()),
            Some(other) => panic!("next_token must be a string or absent, got {other}"),
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn timeline_pagination_has_no_duplicate_and_no_gap() {
    let (dir, key) = seeded_data_dir();
    let gateway = Gateway::start(&data(&dir), &[]);
    let all: Vec<i64> = (1..=PROLIFIC_POSTS).rev().map(|n| PROLIFIC_BASE + n).collect();
    for (size, token_name) in [(7, "pagination_token"), (100, "next_token"), (5, "pagination_token")] {
        let seen = walk(&gateway, &key, &format!("max_results={size}"), token_name).await;
        assert_eq!(seen, all, "max_results={size}");
    }
    // since_id / until_id are exclusive bounds.
    let seen = walk(
        &gateway,
        &key,
        &format!("max_results=10&since_id={}&until_id={}", PROLIFIC_BASE + 20, PROLIFIC_BASE + 51),
        "pagination_token",
    )
    .await;
    assert_eq!(seen, (21..=50).rev().map(|n| PROLIFIC_BASE + n).collect::<Vec<_>>());
    // start_time inclusive, end_time exclusive.
    let query = format!(
        "max_results=9&start_time={}&end_time={}",
        time(EPOCH_MS + 100 * 60_000),
        time(EPOCH_MS + 130 * 60_000)
    );
    let seen = walk(&gateway, &key, &query, "pagination_token").await;
    assert_eq!(seen, (100..130).rev().map(|n| PROLIFIC_BASE + n).collect::<Vec<_>>());
    // A page that ends exactly at the last post carries no next_token.
    let (_, body, _) = gateway.get(&key, &format!("/2/users/{QUIET_AUTHOR}/tweets?max_results=5")).await;
    assert_eq!(body["meta"]["result_count"], 1);
    assert!(body["meta"].get("next_token").is_none());
    // An unknown user: 200 with a resource error.
    let (status, body, _) = gateway.get(&key, "/2/users/999/tweets").await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["resource_type"], "user");
}

#[tokio::test]
async fn users_endpoints() {
    let (dir, key) = seeded_data_dir();
    let gateway = Gateway::start(&data(&dir), &[]);
    let (status, body, _) = gateway
        .get(
            &key,
            &format!(
                "/2/users?ids={PROLIFIC_AUTHOR},{QUIET_AUTHOR},5&user.fields=created_at,public_metrics,description"
            ),
        )
        .await;
    assert_eq!(status, 200);
    let users = body["data"].as_array().unwrap();
    assert_eq!(users[0]["id"], PROLIFIC_AUTHOR.to_string());
    assert_eq!(users[0]["description"], "writes a lot");
    assert_eq!(users[1]["public_metrics"]["tweet_count"], 1);
    assert_eq!(body["errors"][0]["resource_id"], "5");
    let (_, body, _) = gateway.get(&key, "/2/users/by/username/prolific_pat?user.fields=created_at").await;
    assert_eq!(body["data"]["id"], PROLIFIC_AUTHOR.to_string(), "usernames match case-insensitively");
    assert_eq!(body["data"]["created_at"], "2019-05-01T10:00:00.000Z");
    let (_, body, _) = gateway.get(&key, &format!("/2/users/{QUIET_AUTHOR}")).await;
    assert_eq!(body["data"]["username"], "quiet_quinn");
    assert!(body["data"].get("created_at").is_none());
    let (status, body, _) = gateway.get(&key, "/2/users/by/username/nobody_here").await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["resource_type"], "user");
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_problem_never_a_5xx() {
    let (dir, key) = seeded_data_dir();
    let gateway = Gateway::start(&data(&dir), &[]);
    let bad = [
        "/2/tweets/abc",
        "/2/tweets/0",
        "/2/tweets/-5",
        "/2/tweets/99999999999999999999",
        "/2/tweets",
        "/2/tweets?ids=",
        "/2/tweets?ids=1,,2",
        "/2/tweets?ids=1&ids=2",
        &format!("/2/tweets?ids={}", (1..=101).map(|n| n.to_string()).collect::<Vec<_>>().join(",")),
        "/2/tweets/1?tweet.fields=",
        "/2/tweets/1?tweet.fields=created_at,,lang",
        "/2/tweets/1?tweet.fields=Created%20At",
        "/2/tweets/1?expansions=author_id;drop",
        "/2/tweets/1?user.fields=%ZZ",
        "/2/users/1001/tweets?max_results=4",
        "/2/users/1001/tweets?max_results=101",
        "/2/users/1001/tweets?max_results=ten",
        "/2/users/1001/tweets?pagination_token=garbage",
        "/2/users/1001/tweets?next_token=p0",
        "/2/users/1001/tweets?since_id=x",
        "/2/users/1001/tweets?until_id=-1",
        "/2/users/1001/tweets?start_time=yesterday",
        "/2/users/1001/tweets?end_time=2024-13-01T00:00:00Z",
        "/2/users/1001/tweets?start_time=2024-02-01T00:00:00Z&end_time=2024-01-01T00:00:00Z",
        "/2/users/x/tweets",
        "/2/users?ids=",
        "/2/users?ids=a",
        "/2/users/abc",
        "/2/users/by/username/bad-name!",
        &format!("/2/users/by/username/{}", "a".repeat(51)),
        "/2/nothing/here",
    ];
    for path in bad {
        let (status, body, headers) = gateway.get(&key, path).await;
        assert_problem(status, &body, &headers, path);
    }
    // Methods the API does not take.
    let response = gateway.http.post(format!("{}/2/tweets/1", gateway.public)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 405);
    // A body too large for a GET-only API.
    let response = gateway
        .http
        .get(format!("{}/2/tweets/1", gateway.public))
        .bearer_auth(&key)
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error() || response.status() == 200, "{}", response.status());
    // Oversized headers are refused at the connection, not with a 5xx.
    let response = gateway
        .http
        .get(format!("{}/2/tweets/1", gateway.public))
        .bearer_auth(&key)
        .header("x-padding", "y".repeat(100 * 1024))
        .send()
        .await;
    if let Ok(response) = response {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
}

#[tokio::test]
async fn keys_authenticate_and_changes_reach_a_running_gateway_within_a_second() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    let path = format!("/2/tweets/{QUIET_POST}");

    let response = gateway.http.get(format!("{}{path}", gateway.public)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    for token in ["nonsense", "dpk_0000000000000000000000000000000000000000", "dpa_abc"] {
        let (status, body, headers) = gateway.get(token, &path).await;
        assert_eq!(status, 401, "{token}");
        assert_problem(status, &body, &headers, token);
    }
    let admin_token = Gateway::admin_token(&data_dir);
    let (status, _, _) = gateway.get(&admin_token, &path).await;
    assert_eq!(status, 401, "the admin token is not a licensee key");
    let (status, _, _) = gateway.get(&key, &path).await;
    assert_eq!(status, 200);

    // A key issued by the CLI in another process works within 1 s.
    let fresh = datapact_ok(&data_dir, &["key", "issue", "acme"]).trim().to_owned();
    let took = eventually(Duration::from_secs(1), async || gateway.get(&fresh, &path).await.0 == 200).await;
    assert!(took.is_some(), "a new key was not honoured within 1 s");

    // Revocation through the CLI takes effect within 1 s.
    let listed: Value = serde_json::from_str(&datapact_ok(&data_dir, &["key", "list", "acme", "--json"])).unwrap();
    let prefix = listed[0]["prefix"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&prefix));
    assert!(!listed.to_string().contains(&key), "key list never shows the secret");
    datapact_ok(&data_dir, &["key", "revoke", &prefix]);
    let took = eventually(Duration::from_secs(1), async || gateway.get(&key, &path).await.0 == 401).await;
    assert!(took.is_some(), "a revoked key still worked after 1 s");
    let (_, body, _) = gateway.get(&key, &path).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");

    // Key use is recorded (flushed on shutdown at the latest).
    assert!(gateway.stop().success(), "graceful shutdown exits 0");
    let listed: Value = serde_json::from_str(&datapact_ok(&data_dir, &["key", "list", "--json"])).unwrap();
    let fresh_record =
        listed.as_array().unwrap().iter().find(|k| fresh.starts_with(k["prefix"].as_str().unwrap())).unwrap();
    assert!(fresh_record["last_used_at"].is_string(), "{fresh_record}");
}

#[tokio::test]
async fn tls_when_given_a_certificate() {
    let (dir, key) = seeded_data_dir();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let private = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&private, certified.key_pair.serialize_pem()).unwrap();
    let gateway =
        Gateway::start(&data(&dir), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", private.to_str().unwrap()]);
    assert!(gateway.public.starts_with("https://"), "{}", gateway.public);
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets/{QUIET_POST}")).await;
    assert_eq!(status, 200, "{body}");
    let plain = gateway.public.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[tokio::test]
async fn keys_expire_when_the_gateway_clock_says_so() {
    let (dir, _) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2030-01-01T00:00:00Z"]);
    let expiring = datapact_ok(&data_dir, &["key", "issue", "acme", "--expires", "2030-01-02"]).trim().to_owned();
    let path = format!("/2/tweets/{QUIET_POST}");
    assert!(eventually(Duration::from_secs(1), async || gateway.get(&expiring, &path).await.0 == 200).await.is_some());
    let token = Gateway::admin_token(&data_dir);
    let move_clock = async |body: Value| {
        gateway
            .http
            .post(format!("{}/admin/test/clock", gateway.admin))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let response = move_clock(serde_json::json!({"advance_ms": 86_399_999})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.get(&expiring, &path).await.0, 200, "one millisecond before expiry");
    move_clock(serde_json::json!({"advance_ms": 1})).await;
    let (status, body, _) = gateway.get(&expiring, &path).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("expired at 2030-01-02T00:00:00.000Z"), "{body}");
    assert_eq!(move_clock(serde_json::json!({"advance_ms": -1})).await.status(), 400);
    drop(gateway);

    // Without --test-clock the clock cannot be moved.
    let gateway = Gateway::start(&data_dir, &[]);
    let response = gateway
        .http
        .post(format!("{}/admin/test/clock", gateway.admin))
        .bearer_auth(&token)
        .json(&serde_json::json!({"advance_ms": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

//! Terms enforced on every request, over real HTTP: the decision order with its statuses,
//! problems and headers; exact rate limits; opt-outs; violations; apply and the audit log.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// A plan per test scenario; `acme` and friends are attached below.
fn terms(lookup_rate: &str, extra_licensees: &str) -> String {
    format!(
        r#"
[[plan]]
name = "tight"
rate_limits = {{ search = "50/15m", lookup = "{lookup_rate}", timeline = "50/15m", users = "50/15m", stream = "5/15m", usage = "5/15m" }}
endpoints = ["search", "lookup", "timeline", "users", "stream", "usage"]
purposes = ["search", "ai-train"]

[[plan]]
name = "lookup-only"
rate_limits = {{ lookup = "50/15m" }}
endpoints = ["lookup"]
purposes = ["search"]

[[licensee]]
name = "acme"
plan = "tight"
{extra_licensees}
"#
    )
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap_or_else(|| panic!("missing {name}")).to_str().unwrap()
}

fn assert_rate_headers(headers: &reqwest::header::HeaderMap, limit: u64) {
    assert_eq!(header(headers, "x-rate-limit-limit"), limit.to_string());
    let reset: u64 = header(headers, "x-rate-limit-reset").parse().expect("integer epoch seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(reset > now && reset <= now + 15 * 60 + 1, "reset {reset} is the end of the 15-minute window");
    assert_eq!(reset % (15 * 60), 0, "windows are aligned to the epoch");
    header(headers, "x-rate-limit-remaining").parse::<u64>().unwrap();
    assert!(header(headers, "ratelimit-policy").contains(&format!("q={limit};w=900")));
    assert!(header(headers, "ratelimit").contains(";r="));
}

fn forbidden(status: u16, body: &Value, reason: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://api.twitter.com/2/problems/client-forbidden", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn rate_limits_are_exact_under_concurrency_and_say_when_they_reset() {
    let (dir, _) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &terms("10/15m", ""));
    let key = datapact_ok(&data_dir, &["key", "issue", "acme", "--purpose", "search"]).trim().to_owned();
    let gateway = std::sync::Arc::new(Gateway::start(&data_dir, &[]));
    let path = format!("/2/tweets/{QUIET_POST}");

    // A bad request is answered 400 with the headers, and does not use up the limit.
    let (status, _, headers) = gateway.get(&key, "/2/tweets/not-an-id").await;
    assert_eq!(status, 400);
    assert_eq!(header(&headers, "x-rate-limit-remaining"), "10");

    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (gateway, key, path) = (gateway.clone(), key.clone(), path.clone());
            tokio::spawn(async move { gateway.get(&key, &path).await })
        })
        .collect();
    let mut ok = 0;
    let mut remaining_seen = Vec::new();
    for task in tasks {
        let (status, body, headers) = task.await.unwrap();
        assert_rate_headers(&headers, 10);
        match status {
            200 => {
                ok += 1;
                remaining_seen.push(header(&headers, "x-rate-limit-remaining").parse::<u64>().unwrap());
            }
            429 => {
                assert_eq!(header(&headers, "x-rate-limit-remaining"), "0");
                assert!(headers.contains_key("retry-after"));
                assert_eq!(body["title"], "Too Many Requests");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 10, "exactly the limit is served, never more, never less");
    remaining_seen.sort_unstable();
    assert_eq!(remaining_seen, (0..10).collect::<Vec<u64>>(), "each admitted request saw its own count");

    // Other endpoints have their own windows.
    let (status, _, headers) = gateway.get(&key, &format!("/2/users/{QUIET_AUTHOR}")).await;
    assert_eq!(status, 200);
    assert_rate_headers(&headers, 50);

    // Raising the limit never resets the count.
    apply_terms(&data_dir, &terms("12/15m", ""));
    let reached = eventually(Duration::from_secs(2), async || {
        let (_, _, headers) = gateway.get(&key, "/2/tweets/not-an-id").await;
        header(&headers, "x-rate-limit-limit") == "12"
    })
    .await;
    assert!(reached.is_some(), "a terms change reaches the gateway within a second");
    let (status, _, headers) = gateway.get(&key, &path).await;
    assert_eq!((status, header(&headers, "x-rate-limit-remaining")), (200, "1"));

    // The refusals were recorded as violations, with samples.
    drop(gateway);
    let violations: Value = serde_json::from_str(&datapact_ok(&data_dir, &["violations", "acme", "--json"])).unwrap();
    let rate = violations.as_array().unwrap().iter().find(|v| v["kind"] == "rate_limited").expect("recorded");
    assert_eq!(rate["count"], 20);
    assert!(rate["samples"][0]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(rate["samples"][0]["client"], "127.0.0.1");
}

#[tokio::test]
async fn the_403_steps_in_order_each_with_its_problem() {
    let (dir, _) = seeded_data_dir();
    let data_dir = data(&dir);
    let extra = r#"
[[licensee]]
name = "future"
plan = "tight"
starts = "2099-01-01"

[[licensee]]
name = "fenced"
plan = "tight"
allowed_networks = ["203.0.113.0/24"]

[[licensee]]
name = "narrow"
plan = "lookup-only"
"#;
    apply_terms(&data_dir, &terms("50/15m", extra));
    let issue = |name: &str, purpose: &str| {
        datapact_ok(&data_dir, &["key", "issue", name, "--purpose", purpose]).trim().to_owned()
    };
    let acme_search = issue("acme", "search");
    let acme_train = issue("acme", "ai-train");
    let future = issue("future", "search");
    let fenced = issue("fenced", "search");
    let narrow = issue("narrow", "search");
    let output = datapact(&data_dir, &["key", "issue", "narrow", "--purpose", "ai-train"]);
    assert!(!output.status.success(), "a purpose the agreement does not grant is refused at issue time");
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not allow"));

    let gateway = Gateway::start(&data_dir, &["--trusted-proxies", "127.0.0.1/32"]);
    let lookup = format!("/2/tweets/{QUIET_POST}");

    let (status, body, headers) = gateway.get(&future, &lookup).await;
    forbidden(status, &body, "outside_term");
    assert_rate_headers(&headers, 50);
    let (status, body, _) = gateway.get(&fenced, &lookup).await;
    forbidden(status, &body, "network_not_allowed");
    // Through a trusted proxy, the forwarded client address decides.
    let response = gateway
        .http
        .get(format!("{}{lookup}", gateway.public))
        .bearer_auth(&fenced)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body, _) = gateway.get(&narrow, "/2/tweets/search/recent?query=prolific").await;
    forbidden(status, &body, "endpoint_not_allowed");
    assert_eq!(gateway.get(&narrow, &lookup).await.0, 200);

    // Withdrawing a purpose refuses keys issued for it.
    assert_eq!(gateway.get(&acme_train, &lookup).await.0, 200);
    apply_terms(
        &data_dir,
        &terms("50/15m", extra).replacen(r#"purposes = ["search", "ai-train"]"#, r#"purposes = ["search"]"#, 1),
    );
    let refused = eventually(Duration::from_secs(2), async || gateway.get(&acme_train, &lookup).await.0 == 403).await;
    assert!(refused.is_some());
    let (status, body, _) = gateway.get(&acme_train, &lookup).await;
    forbidden(status, &body, "purpose_not_allowed");

    // Blocking wins over everything else, and says why; unblocking restores service.
    datapact_ok(&data_dir, &["licensee", "block", "acme", "--reason", "invoice 2026-10 unpaid"]);
    let blocked = eventually(Duration::from_secs(1), async || gateway.get(&acme_search, &lookup).await.0 == 403).await;
    assert!(blocked.is_some(), "a block reaches the gateway within a second");
    let (status, body, _) = gateway.get(&acme_train, &lookup).await;
    forbidden(status, &body, "blocked");
    assert!(body["detail"].as_str().unwrap().contains("invoice 2026-10 unpaid"), "{body}");
    datapact_ok(&data_dir, &["licensee", "unblock", "acme"]);
    assert!(
        eventually(Duration::from_secs(1), async || gateway.get(&acme_search, &lookup).await.0 == 200).await.is_some()
    );

    // A licensee pruned from the terms has no agreement and is refused.
    datapact_ok(&data_dir, &["licensee", "create", "nobody"]);
    let output = datapact(&data_dir, &["key", "issue", "nobody"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no agreement"));

    drop(gateway);
    let violations: Value = serde_json::from_str(&datapact_ok(&data_dir, &["violations", "--json"])).unwrap();
    let kinds: std::collections::HashSet<&str> =
        violations.as_array().unwrap().iter().map(|v| v["kind"].as_str().unwrap()).collect();
    for kind in ["outside_term", "network_not_allowed", "endpoint_not_allowed", "purpose_not_allowed", "blocked"] {
        assert!(kinds.contains(kind), "{kind} not recorded: {violations}");
    }
}

#[tokio::test]
async fn opted_out_authors_are_withheld_from_that_purpose_only() {
    let (dir, _) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &terms("50/15m", ""));
    let search_key = datapact_ok(&data_dir, &["key", "issue", "acme", "--purpose", "search"]).trim().to_owned();
    let train_key = datapact_ok(&data_dir, &["key", "issue", "acme", "--purpose", "ai-train"]).trim().to_owned();
    datapact_ok(&data_dir, &["author", "opt-out", "prolific_pat", "--purpose", "ai-train"]);
    let gateway = Gateway::start(&data_dir, &[]);
    let post = PROLIFIC_BASE + 3;

    let (_, body, _) = gateway.get(&train_key, &format!("/2/tweets?ids={post},{QUIET_POST}")).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"][0]["id"], QUIET_POST.to_string());
    assert_eq!(body["errors"][0]["resource_id"], post.to_string(), "withheld posts look absent");
    let (_, body, _) = gateway.get(&train_key, &format!("/2/users/{PROLIFIC_AUTHOR}/tweets")).await;
    assert_eq!(body["meta"]["result_count"], 0);
    let (_, body, _) = gateway.get(&train_key, "/2/tweets/search/recent?query=post").await;
    let quiet = Value::String(QUIET_POST.to_string());
    assert!(
        body["data"].as_array().unwrap().iter().all(|p| p["id"] == quiet),
        "search leaves the author out and still fills the page: {body}"
    );
    let (_, body, _) = gateway.get(&search_key, &format!("/2/tweets/{post}")).await;
    assert_eq!(body["data"]["id"], post.to_string(), "other purposes still see the posts");

    datapact_ok(&data_dir, &["author", "opt-in", "prolific_pat", "--purpose", "ai-train"]);
    let back = eventually(Duration::from_secs(1), async || {
        gateway.get(&train_key, &format!("/2/tweets/{post}")).await.1.get("data").is_some()
    })
    .await;
    assert!(back.is_some());
}

#[test]
fn apply_dry_run_prune_show_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = dir.path().join("terms.toml");
    let extra = "[[licensee]]\nname = \"orchid\"\nplan = \"lookup-only\"\n";
    std::fs::write(&file, terms("50/15m", extra)).unwrap();
    let path = file.to_str().unwrap();

    let dry = datapact_ok(&data_dir, &["apply", "--dry-run", path]);
    assert!(dry.contains("orchid") && dry.contains("dry run"), "{dry}");
    assert_eq!(datapact_ok(&data_dir, &["terms", "show", "--json"]).trim(), "[]", "a dry run changes nothing");
    datapact_ok(&data_dir, &["apply", path]);
    let agreements: Value = serde_json::from_str(&datapact_ok(&data_dir, &["terms", "show", "--json"])).unwrap();
    assert_eq!(agreements.as_array().unwrap().len(), 2);

    // `terms show` prints a file that applies as no change.
    let shown = dir.path().join("shown.toml");
    std::fs::write(&shown, datapact_ok(&data_dir, &["terms", "show"])).unwrap();
    let again: Value =
        serde_json::from_str(&datapact_ok(&data_dir, &["apply", "--json", shown.to_str().unwrap()])).unwrap();
    assert!(
        again["plans"].as_array().unwrap().is_empty() && again["licensees"].as_array().unwrap().is_empty(),
        "{again}"
    );

    // Without --prune, a licensee left out keeps its agreement; with it, loses it.
    std::fs::write(&file, terms("50/15m", "")).unwrap();
    datapact_ok(&data_dir, &["apply", path]);
    assert!(datapact_ok(&data_dir, &["terms", "show", "--json"]).contains("orchid"));
    datapact_ok(&data_dir, &["apply", "--prune", path]);
    assert!(!datapact_ok(&data_dir, &["terms", "show", "--json"]).contains("orchid"));

    // Bad files say where.
    std::fs::write(&file, "[[plan]]\nname = \"x\"\nendpoints = [\"search\"]\npurposes = [\"search\"]\nrate_limits = { search = \"0/15m\" }\ncolour = 1\n").unwrap();
    let output = datapact(&data_dir, &["apply", path]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("colour") && stderr.contains("plan"), "{stderr}");

    datapact_ok(&data_dir, &["licensee", "block", "acme", "--reason", "audit me"]);
    let log: Value = serde_json::from_str(&datapact_ok(&data_dir, &["audit", "--json"])).unwrap();
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["plan.put", "licensee.create", "licensee.terms", "licensee.block"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert!(log[0]["actor"].as_str().unwrap().starts_with("cli@"), "{}", log[0]);
    assert_eq!(log[0]["after"]["reason"], "audit me");
}

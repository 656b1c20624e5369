//! Ingest, the admin API, backup and restore, through the real binary.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

#[test]
fn ingest_rejects_bad_lines_with_reasons_and_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let good =
        r#"{"id":"10","text":"hello","created_at":"2024-01-01T00:00:00.000Z","author":{"id":"1","username":"ann"}}"#;
    let long_text = "x".repeat(25_001);
    let bad_lines: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid JSON"),
        (r#"{"text":"a","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#.into(), "missing `id`"),
        (r#"{"id":"11","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#.into(), "missing `text`"),
        (format!(r#"{{"id":"12","text":"{long_text}","author_id":"1","created_at":"2024-01-01T00:00:00Z"}}"#), "25000"),
        (r#"{"id":"13","text":"a","author_id":"1","created_at":"last tuesday"}"#.into(), "RFC 3339"),
        (
            r#"{"id":"18446744073709551616","text":"a","author_id":"1","created_at":"2024-01-01T00:00:00Z"}"#.into(),
            "64-bit",
        ),
        (r#"{"id":"14","text":"a","author_id":"999","created_at":"2024-01-01T00:00:00Z"}"#.into(), "unknown author"),
    ];
    let mut content = Vec::new();
    writeln!(content, "{good}").unwrap();
    for (line, _) in &bad_lines {
        writeln!(content, "{line}").unwrap();
    }
    content.extend_from_slice(b"{\"id\":\"15\",\"text\":\"\xff\xfe\"}\n");
    writeln!(content).unwrap();
    writeln!(content, r#"{{"id":"16","text":"second good line","author_id":"1","created_at":"2024-01-02T00:00:00Z"}}"#)
        .unwrap();
    let input = dir.path().join("posts.jsonl");
    std::fs::write(&input, &content).unwrap();

    let output = datapact(&data_dir, &["ingest", "--quiet", input.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "exit 1 when any line is rejected");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 new"), "{stdout}");
    let rejects_path = dir.path().join("posts.jsonl.rejects.jsonl");
    let rejects: Vec<Value> =
        std::fs::read_to_string(&rejects_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejects.len(), bad_lines.len() + 1, "{rejects:?}");
    for (index, (_, reason)) in bad_lines.iter().enumerate() {
        let reject = &rejects[index];
        assert_eq!(reject["line"], index + 2, "line numbers are 1-based: {reject}");
        assert!(reject["reason"].as_str().unwrap().contains(reason), "{reject} should mention {reason}");
        assert!(stderr.contains(&format!("posts.jsonl:{}:", index + 2)), "{stderr}");
    }
    assert!(rejects.last().unwrap()["reason"].as_str().unwrap().contains("UTF-8"));

    // Ingest is idempotent: the same good lines again change nothing.
    let good_only = dir.path().join("good.jsonl");
    std::fs::write(&good_only, format!("{good}\n")).unwrap();
    let stdout = datapact_ok(&data_dir, &["ingest", "--quiet", good_only.to_str().unwrap()]);
    assert!(stdout.contains("0 new, 0 corrected, 1 unchanged"), "{stdout}");

    // Same id, new text: a correction, served from then on.
    let corrected = good.replace("hello", "hello, corrected");
    let stdout = datapact_ok(&data_dir, &["ingest", "--quiet", "-"]);
    assert!(stdout.contains("ingested 0 lines"), "empty standard input imports nothing: {stdout}");
    let mut child = std::process::Command::new(BIN)
        .args(["--data-dir", data_dir.to_str().unwrap(), "ingest", "--quiet", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{corrected}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 corrected"));
}

#[tokio::test]
async fn corrections_are_served_and_deleted_posts_never_again() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    let token = Gateway::admin_token(&data_dir);
    let id = PROLIFIC_BASE + 9;
    let line = json!({"id": id.to_string(), "text": "Corrected text", "author_id": PROLIFIC_AUTHOR.to_string(), "created_at": time(EPOCH_MS)}).to_string();
    let response = gateway
        .http
        .post(format!("{}/admin/posts", gateway.admin))
        .bearer_auth(&token)
        .body(format!("{line}\n{{bad\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["counts"]["corrected"], 1, "{report}");
    assert_eq!(report["rejected"][0]["line"], 2, "{report}");
    let (_, body, _) = gateway.get(&key, &format!("/2/tweets/{id}")).await;
    assert_eq!(body["data"]["text"], "Corrected text");

    let response =
        gateway.http.delete(format!("{}/admin/posts/{id}", gateway.admin)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, body, _) = gateway.get(&key, &format!("/2/tweets/{id}")).await;
    assert!(body.get("data").is_none(), "{body}");
    // Re-ingesting a deleted post does not bring it back.
    gateway.http.post(format!("{}/admin/posts", gateway.admin)).bearer_auth(&token).body(line).send().await.unwrap();
    let (_, body, _) = gateway.get(&key, &format!("/2/tweets/{id}")).await;
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn admin_api_needs_its_token_and_offers_what_the_cli_offers() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    let token = Gateway::admin_token(&data_dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("admin-token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let url = |path: &str| format!("{}{path}", gateway.admin);
    for bearer in [None, Some(key.as_str()), Some("dpa_wrong")] {
        let mut request = gateway.http.get(url("/admin/licensees"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{bearer:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(gateway.http.get(url("/healthz")).send().await.unwrap().status(), 200);

    let response = gateway
        .http
        .post(url("/admin/licensees"))
        .bearer_auth(&token)
        .json(&json!({"name": "orchid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = gateway
        .http
        .post(url("/admin/licensees"))
        .bearer_auth(&token)
        .json(&json!({"name": "orchid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    for bad in [json!({"name": "Not Valid"}), json!({"nom": "x"})] {
        let response = gateway.http.post(url("/admin/licensees")).bearer_auth(&token).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    let response = gateway
        .http
        .post(url("/admin/licensees"))
        .bearer_auth(&token)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    // No key without an agreement; the terms come through the admin API too.
    let response = gateway.http.post(url("/admin/licensees/orchid/keys")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 409);
    let terms = format!("{OPEN_TERMS}\n[[licensee]]\nname = \"orchid\"\nplan = \"open\"\n");
    let response = gateway
        .http
        .post(url("/admin/terms?dry_run=true"))
        .bearer_auth(&token)
        .body(terms.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let dry: Value = response.json().await.unwrap();
    assert!(dry["summary"].as_str().unwrap().contains("orchid"), "{dry}");
    let response = gateway.http.post(url("/admin/licensees/orchid/keys")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 409, "a dry run changes nothing");
    let response = gateway.http.post(url("/admin/terms")).bearer_auth(&token).body(terms).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = gateway.http.post(url("/admin/licensees/orchid/keys")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let issued: Value = response.json().await.unwrap();
    let orchid_key = issued["key"].as_str().unwrap().to_owned();
    assert!(
        eventually(std::time::Duration::from_secs(1), async || gateway
            .get(&orchid_key, &format!("/2/tweets/{QUIET_POST}"))
            .await
            .0
            == 200)
        .await
        .is_some()
    );
    let response = gateway.http.post(url("/admin/licensees/nobody/keys")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = gateway
        .http
        .post(url("/admin/licensees/orchid/keys"))
        .bearer_auth(&token)
        .json(&json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "an expiry in the past is refused");

    let shown: Value = gateway
        .http
        .get(url("/admin/licensees/orchid"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["keys"].as_array().unwrap().len(), 1);
    assert!(!shown.to_string().contains(&orchid_key));
    let prefix = shown["keys"][0]["prefix"].as_str().unwrap();
    let response =
        gateway.http.post(url(&format!("/admin/keys/{prefix}/revoke"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        eventually(std::time::Duration::from_secs(1), async || gateway
            .get(&orchid_key, &format!("/2/tweets/{QUIET_POST}"))
            .await
            .0
            == 401)
        .await
        .is_some()
    );
    let response = gateway.http.post(url("/admin/keys/dpk_nope/revoke")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);

    let stats: Value =
        gateway.http.get(url("/admin/stats")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["posts"], PROLIFIC_POSTS + 1);
    let response = gateway
        .http
        .post(url("/admin/posts/delete"))
        .bearer_auth(&token)
        .json(&json!({"ids": [QUIET_POST.to_string(), "5"]}))
        .send()
        .await
        .unwrap();
    let results: Value = response.json().await.unwrap();
    assert_eq!(results["results"][0]["result"], "deleted");
    assert_eq!(results["results"][1]["result"], "not_found");
}

#[tokio::test]
async fn backup_while_serving_then_restore_round_trips() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let gateway = Gateway::start(&data_dir, &[]);
    let path = format!("/2/users/{PROLIFIC_AUTHOR}/tweets?max_results=100&tweet.fields=created_at,public_metrics");
    let (_, before, _) = gateway.get(&key, &path).await;

    // Writes keep landing while the backup runs.
    let token = Gateway::admin_token(&data_dir);
    let writer = {
        let http = gateway.http.clone();
        let url = format!("{}/admin/posts", gateway.admin);
        let token = token.clone();
        tokio::spawn(async move {
            for n in 0..50 {
                let line = json!({"id": (1_600_000_000_000_000_000i64 + n).to_string(), "text": format!("during backup {n}"), "author_id": QUIET_AUTHOR.to_string(), "created_at": "2024-06-01T00:00:00Z"}).to_string();
                http.post(&url).bearer_auth(&token).body(line).send().await.unwrap();
            }
        })
    };
    let out = dir.path().join("backup-cli");
    datapact_ok(&data_dir, &["backup", out.to_str().unwrap()]);
    let api_out = dir.path().join("backup-api");
    let response = gateway
        .http
        .post(format!("{}/admin/backup", gateway.admin))
        .bearer_auth(&token)
        .json(&json!({"out": api_out}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    writer.await.unwrap();
    assert!(api_out.join("datapact.db").is_file());
    let output = datapact(&data_dir, &["backup", out.to_str().unwrap()]);
    assert!(!output.status.success(), "a backup never overwrites");
    drop(gateway);

    let restored = dir.path().join("restored");
    datapact_ok(&restored, &["restore", out.to_str().unwrap()]);
    assert_eq!(Gateway::admin_token(&restored), token, "the admin token travels with the backup");
    let output = datapact(&restored, &["restore", out.to_str().unwrap()]);
    assert!(!output.status.success(), "restore refuses to replace a store without --force");
    datapact_ok(&restored, &["restore", "--force", out.to_str().unwrap()]);
    let gateway = Gateway::start(&restored, &[]);
    let (status, after, _) = gateway.get(&key, &path).await;
    assert_eq!(status, 200);
    assert_eq!(before, after, "the restored store serves the same posts to the same keys");
}

#[test]
fn cli_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = datapact(&data_dir, &["key", "issue", "ghost"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no licensee named \"ghost\""));
    let output = datapact(&data_dir, &["licensee", "create", "Bad Name"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("lowercase"));
    let output = datapact(&data_dir, &["delete", "abc"]);
    assert!(!output.status.success());
    let output = datapact(&data_dir, &["ingest", "/does/not/exist.jsonl"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open"));
    datapact_ok(&data_dir, &["licensee", "create", "acme"]);
    let output = datapact(&data_dir, &["key", "issue", "acme", "--expires", "someday"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("2027-01-31"));
    let listed = datapact_ok(&data_dir, &["licensee", "list"]);
    assert!(listed.contains("acme"));
}

#[tokio::test]
async fn demo_fills_an_empty_store_once_and_issues_fresh_keys_each_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first_keys = demo_start(&data_dir).await;
    assert_eq!(first_keys.len(), 3);
    let stats = datapact_ok(&data_dir, &["licensee", "list", "--json"]);
    for name in ["nimbus", "orchid", "acme"] {
        assert!(stats.contains(name), "{stats}");
    }
    let second_keys = demo_start(&data_dir).await;
    assert_ne!(first_keys, second_keys, "each start issues fresh keys");
    let gateway = Gateway::start(&data_dir, &[]);
    let token = Gateway::admin_token(&data_dir);
    let stats: Value = gateway
        .http
        .get(format!("{}/admin/stats", gateway.admin))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["posts"], 20_000, "the corpus is generated once: {stats}");
    assert!(stats["authors"].as_u64().unwrap() >= 500);
    for key in first_keys.iter().chain(&second_keys) {
        let (status, body, _) = gateway.get(key, "/2/users/by/username/nobody").await;
        assert_eq!(status, 200, "old and new demo keys work: {body}");
    }
}

/// Starts `serve --demo`, collects the printed keys, checks the printed curl commands work, stops.
async fn demo_start(data_dir: &std::path::Path) -> Vec<String> {
    let mut child = std::process::Command::new(BIN)
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("DATAPACT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut keys = Vec::new();
    let mut curls = Vec::new();
    for line in std::io::BufRead::lines(stdout) {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 2 && words[1].starts_with("dpk_") {
            keys.push(words[1].to_owned());
        }
        if line.trim_start().starts_with("curl") && line.contains("/2/") {
            curls.push(line.trim().to_owned());
        }
        if line.starts_with("datapact listening") {
            break;
        }
    }
    assert_eq!(curls.len(), 3, "three ready-to-paste commands");
    for curl in &curls {
        let output = std::process::Command::new("sh").arg("-c").arg(curl).output().unwrap();
        let body: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        assert!(body.get("data").is_some(), "`{curl}` gave {body}");
    }
    let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success());
    keys
}

/// A SIGTERM sent the moment `datapact listening` is printed stops the gateway gracefully (exit
/// 0): its handlers are installed before the line, so the default action never kills it.
#[test]
fn a_sigterm_right_after_listening_is_a_graceful_stop() {
    let (dir, _key) = seeded_data_dir();
    let data = data(&dir);
    for round in 0..5 {
        let gateway = Gateway::start(&data, &[]);
        let status = gateway.stop();
        assert!(status.success(), "round {round}: {status}");
    }
}

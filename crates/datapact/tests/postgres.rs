//! The binary on the shared PostgreSQL store (`--store postgres://…`): the CLI and gateways of
//! different data directories share one store — posts, licensees, terms and keys — so a key issued
//! or a licensee blocked from anywhere takes effect on a running gateway within a second. Skipped
//! (with a `SKIPPED:` line) without a server, except under `CI=true`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn gateways_and_commands_of_any_data_dir_share_the_postgres_store() {
    let Some(schema) = pg_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    let (node_a, node_b) = (dir.path().join("node-a"), dir.path().join("node-b"));
    let store = ["--store", schema.url.as_str()];
    let with_store = |args: &[&str]| -> Vec<String> { store.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |data: &std::path::Path, args: &[&str]| {
        let args = with_store(args);
        datapact_ok(data, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run(&node_a, &["ingest", "--quiet", corpus.to_str().unwrap()]);
    let terms = dir.path().join("terms.toml");
    std::fs::write(&terms, OPEN_TERMS).unwrap();
    run(&node_a, &["apply", terms.to_str().unwrap()]);
    assert!(!node_a.join("datapact.db").exists(), "the store is PostgreSQL, not a file in the data directory");

    let gateway = Gateway::start(&node_a, &store);
    // A key issued from another data directory (another machine, say) works at once.
    let key = run(&node_b, &["key", "issue", "acme"]).trim().to_owned();
    let path = format!("/2/tweets?ids={}", ids(1, 3));
    let served = eventually(Duration::from_secs(2), async || gateway.get(&key, &path).await.0 == 200).await;
    assert!(served.is_some(), "a key issued elsewhere is honoured within a second");
    let (_, body, _) = gateway.get(&key, &path).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(3), "{body}");
    assert!(run(&node_b, &["licensee", "list"]).contains("acme"));

    // The fingerprint secret is kept in the shared store: a leak of acme's copies is traced from
    // another data directory, one that never served anything.
    let mut texts = Vec::new();
    for first in [1, 101] {
        let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(first, 100))).await;
        assert_eq!(status, 200, "{body}");
        texts.extend(body["data"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_owned()));
    }
    let mut csv = String::from("text\n");
    for text in &texts {
        csv.push_str(&format!("\"{}\"\n", text.replace('"', "\"\"")));
    }
    let leak = dir.path().join("leak.csv");
    std::fs::write(&leak, csv).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&run(&node_b, &["trace", "--json", "--format", "csv", leak.to_str().unwrap()])).unwrap();
    let accused: Vec<&str> =
        report["accused"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(accused, ["acme"], "{report:#}");

    // The ledger is in the shared store too: a data directory that never served sees the usage,
    // and the gateway's chain verifies from there.
    assert!(!node_a.join("ledger.db").exists(), "the ledger is in PostgreSQL, not in the data directory");
    let usage: serde_json::Value = serde_json::from_str(&run(&node_b, &["usage", "acme", "--json"])).unwrap();
    // 3 + 3 + 100 + 100 delivered; posts 1 to 200 counted once each (the terms' daily dedup).
    assert_eq!((usage[0]["delivered"].as_u64(), usage[0]["counted"].as_u64()), (Some(206), Some(200)), "{usage:#}");
    let verify: serde_json::Value = serde_json::from_str(&run(&node_b, &["ledger", "verify", "--json"])).unwrap();
    assert_eq!(
        (verify["ok"].as_bool(), verify["chains"].as_array().map(Vec::len)),
        (Some(true), Some(1)),
        "{verify:#}"
    );
    assert_eq!(verify["rows"], 4 + 206, "four usage events and their deliveries: {verify:#}");

    // A second gateway on the same store is refused while each gateway decides caps on its own.
    let (status, stderr) = refused_to_serve(&node_b, &["--store", &schema.url]);
    assert!(!status.success() && stderr.contains("another gateway is serving"), "{stderr}");

    // A block made from elsewhere reaches the running gateway within a second.
    run(&node_b, &["licensee", "block", "acme", "--reason", "redistribution"]);
    let blocked = eventually(Duration::from_secs(2), async || gateway.get(&key, &path).await.0 == 403).await;
    assert!(blocked.is_some_and(|after| after < Duration::from_secs(1)), "blocked after {blocked:?}");
    drop(gateway);

    // Another store URL is refused with what to write, and never echoed (it may hold a password).
    let refused = datapact(&node_b, &["--store", "mysql://secret@db/x", "licensee", "list"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("postgres://USER@HOST") && !stderr.contains("secret"));
}

/// PostgreSQL down: every request that needs the store gets 503 (a problem, never a hang or a 500)
/// and commands say the store is unavailable; when it comes back the same gateway serves again,
/// with no restart. The server is a private one on its own port: the machine's is never stopped.
#[tokio::test]
async fn the_gateway_answers_503_while_postgres_is_down_and_recovers_by_itself() {
    let Some(server) = PrivatePostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    let data = dir.path().join("node");
    let url = server.url();
    let run = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str()];
        all.extend_from_slice(args);
        datapact_ok(&data, &all)
    };
    run(&["ingest", "--quiet", corpus.to_str().unwrap()]);
    let terms = dir.path().join("terms.toml");
    std::fs::write(&terms, OPEN_TERMS).unwrap();
    run(&["apply", terms.to_str().unwrap()]);
    let key = run(&["key", "issue", "acme"]).trim().to_owned();
    let gateway = Gateway::start(&data, &["--store", url.as_str()]);
    // Ids never asked before, so no cache can answer: the store must be read.
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 5))).await;
    assert_eq!(status, 200);

    server.pg_ctl("stop");
    let started = std::time::Instant::now();
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(40, 5))).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "a problem that says why: {body}");
    assert!(started.elapsed() < Duration::from_secs(8), "answered in {:?}", started.elapsed());
    let (status, _, _) = gateway.get(&key, "/2/tweets/search/recent?query=prolific").await;
    assert!(status == 503 || status == 200, "search runs on the gateway's index; got {status}");
    let refused = datapact(&data, &["--store", url.as_str(), "licensee", "list"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PostgreSQL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    server.pg_ctl("start");
    // A fresh connection each time: one the gateway kept open while PostgreSQL was down may have
    // been closed meanwhile.
    let http = reqwest::Client::new();
    let back = eventually(Duration::from_secs(20), async || {
        let url = format!("{}/2/tweets?ids={}", gateway.public, ids(60, 5));
        let response = http.get(url).bearer_auth(&key).header("connection", "close").send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(back.is_some(), "served again once PostgreSQL is back, without a restart");

    // The restart dropped the one-gateway lock with its connection; the gateway takes it again within
    // its check interval (2 s), after which a second gateway on the store is still refused. (A second
    // gateway quicker than that would take it instead, and the first would stop: one serves either way.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    let other = dir.path().join("other");
    let refused = eventually(Duration::from_secs(1), async || {
        let started = std::process::Command::new(env!("CARGO_BIN_EXE_datapact"))
            .args(["--data-dir", other.to_str().unwrap(), "--store", url.as_str(), "serve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env_remove("DATAPACT_STORE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = started;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                    return Some((status, stderr));
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
        output.is_some_and(|(status, stderr)| !status.success() && stderr.contains("another gateway is serving"))
    })
    .await;
    assert!(refused.is_some(), "the claim was taken again after PostgreSQL came back");
    drop(gateway);
}

//! Signed ledger checkpoints end to end (issue 11): a gateway signs every chain's head each
//! interval on its test clock; a licensee reads them at `/2/usage/checkpoints` and in the
//! `x-datapact-checkpoint` header, the keys at the well-known URL; `ledger verify --checkpoints`
//! accepts the ledger they were taken from, keeps accepting it after a key rotation, and refuses
//! a ledger whose covered history was rewritten — even a rewrite so careful that the chain still
//! verifies on its own — naming the checkpoint it departs from. On both stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use datapact_ledger::Row;
use datapact_ledger::chain::{BatchHeader, Digest, row_digest};
use serde_json::Value;

const T0: &str = "2026-03-10T10:05:00Z";
const T1: &str = "2026-03-10T11:00:00Z";

/// Lookups of `count` posts, one request each: batches in the ledger.
async fn traffic(gateway: &Gateway, key: &str, count: i64) {
    for n in 1..=count {
        let (status, body, _) = gateway.get(key, &format!("/2/tweets?ids={}", ids(n, 3))).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Waits for the gateway to publish a checkpoint taken at `at` and returns the first page.
async fn wait_for_checkpoint(gateway: &Gateway, key: &str, at: &str) -> Value {
    let mut page = Value::Null;
    let found = eventually(Duration::from_secs(20), async || {
        let (status, body, _) = gateway.get(key, "/2/usage/checkpoints").await;
        assert_eq!(status, 200, "{body}");
        page = body;
        page["data"][0]["at"] == at
    })
    .await;
    assert!(found.is_some(), "no checkpoint at {at} within 20 s: {page}");
    page
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// `datapact ledger verify ARGS --json`: (exit code, report).
fn verify(data_dir: &Path, store: &[&str], args: &[&str]) -> (i32, Value) {
    let mut all = vec!["ledger", "verify", "--json"];
    all.extend_from_slice(args);
    all.extend_from_slice(store);
    let out = datapact(data_dir, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

async fn checkpoints_are_published_verified_and_catch_a_rewritten_history(store: &[&str]) {
    let (dir, key) = seeded_data_dir_on(store);
    let data = data(&dir);
    let mut extra = vec!["--test-clock", T0];
    extra.extend_from_slice(store);
    let gateway = Gateway::start(&data, &extra);

    // The keys are public, on both listeners, before any checkpoint.
    let keys_at = async |base: &str| -> Value {
        let url = format!("{base}/.well-known/datapact/checkpoint-keys.json");
        gateway.http.get(url).send().await.unwrap().json().await.unwrap()
    };
    let (keys, admin_keys) = (keys_at(&gateway.public).await, keys_at(&gateway.admin).await);
    assert_eq!(keys, admin_keys);
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!((keys["keys"][0]["kty"].as_str(), keys["keys"][0]["crv"].as_str()), (Some("OKP"), Some("Ed25519")));

    // Traffic (the 10:00 slot's checkpoint is made once the ledger has a batch: waited for, so it
    // signs the first batch only and the rewrite below departs from the 11:00 one alone), then the
    // clock crosses the hour: the 11:00 checkpoint signs the ledger's head.
    traffic(&gateway, &key, 1).await;
    let made = eventually(Duration::from_secs(20), async || {
        let (status, body, _) = gateway.get(&key, "/2/usage/checkpoints").await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().is_some_and(|data| !data.is_empty())
    });
    assert!(made.await.is_some(), "no checkpoint for the 10:00 slot within 20 s");
    traffic(&gateway, &key, 4).await;
    set_clock(&gateway, &data, T1).await;
    let page = wait_for_checkpoint(&gateway, &key, "2026-03-10T11:00:00.000Z").await;
    let first = page["data"][0].clone();
    let number = first["number"].as_u64().unwrap();
    assert!(page["data"].as_array().unwrap().iter().all(|c| c["at"].as_str() >= Some("2026-03-10T10:05:00.000Z")));
    assert_eq!(first["key_id"], keys["keys"][0]["kid"]);
    assert_eq!(page["meta"]["keys_url"], "/.well-known/datapact/checkpoint-keys.json");
    let head = &first["heads"][0];
    assert!(head["seq"].as_u64().unwrap() >= 5, "five responses, five batches at least: {first}");

    // Every authenticated response carries the newest checkpoint, the same one.
    let (_, _, headers) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(40, 2))).await;
    let header = headers.get("x-datapact-checkpoint").expect("checkpoint header").to_str().unwrap().to_owned();
    assert!(header.starts_with(&format!("number={number}, ")), "{header}");
    assert!(header.contains(head["hash"].as_str().unwrap()), "{header} vs {first}");
    // Not on an unauthenticated one.
    let (status, _, headers) = gateway.get("not-a-key", "/2/tweets?ids=1").await;
    assert_eq!(status, 401);
    assert!(headers.get("x-datapact-checkpoint").is_none());

    // More traffic: the ledger grows past what was signed; still one checkpoint per hour.
    traffic(&gateway, &key, 3).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, again, _) = gateway.get(&key, "/2/usage/checkpoints").await;
    assert_eq!(again["data"][0]["number"], number, "one checkpoint per interval: {again}");
    // The gateway serves the keys from memory, refreshed by its schedule: a rotation by another
    // process (here the CLI) shows at the well-known URL within a tick.
    let shows_two = eventually(Duration::from_secs(20), async || {
        keys_at(&gateway.public).await["keys"].as_array().map(Vec::len) == Some(2)
    });
    datapact_ok(&data, &[&["--now", "2026-03-10T11:20:00Z", "ledger", "checkpoint", "rotate-key"], store].concat());
    assert!(shows_two.await.is_some(), "the rotated key never reached the well-known URL");
    gateway.stop();

    // The licensee kept the page, the header and the keys.
    let kept = dir.path().join("checkpoints.json");
    let kept_header = dir.path().join("header.txt");
    let kept_keys = dir.path().join("keys.json");
    write_json(&kept, &page);
    std::fs::write(&kept_header, format!("x-datapact-checkpoint: {header}\n")).unwrap();
    write_json(&kept_keys, &keys);
    let (code, report) = verify(
        &data,
        store,
        &["--checkpoints", path(&kept), "--checkpoints", path(&kept_header), "--keys", path(&kept_keys)],
    );
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)), "{report}");
    // Each checkpoint once (the header repeats the newest), in number order.
    let mut checked: Vec<u64> =
        page["data"].as_array().unwrap().iter().map(|c| c["number"].as_u64().unwrap()).collect();
    checked.sort();
    assert_eq!(report["checkpoints"]["checked"], serde_json::json!(checked), "{report}");

    // A head of a chain this ledger does not have (a node's whole chain deleted): it fails, on
    // both stores, as a verification failure.
    let ghost = format!("ghost-node@1:{}", "ab".repeat(32));
    let (code, report) = verify(&data, store, &["--expect", &ghost]);
    assert_eq!((code, &report["ok"]), (1, &Value::Bool(false)), "{report}");

    // A forged checkpoint (another head, the same signature) does not check.
    let mut forged = page.clone();
    forged["data"][0]["heads"][0]["seq"] = Value::from(head["seq"].as_u64().unwrap() - 1);
    let forged_file = dir.path().join("forged.json");
    write_json(&forged_file, &forged);
    let out = datapact(
        &data,
        &[&["ledger", "verify", "--checkpoints", path(&forged_file), "--keys", path(&kept_keys)], store].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("checkpoint {number} does not check")) && stderr.contains("signature"),
        "{stderr}"
    );

    // After the rotation above, a new key signs; the old checkpoint still verifies with the keys
    // published afterwards (the retired key stays, with the time it was retired).
    let made: Value = serde_json::from_str(&datapact_ok(
        &data,
        &[&["--now", "2026-03-10T11:31:00Z", "ledger", "checkpoint", "make", "--json"], store].concat(),
    ))
    .unwrap();
    assert_eq!(made["number"], number + 1);
    assert_ne!(made["key_id"], first["key_id"]);
    let rotated_keys: Value =
        serde_json::from_str(&datapact_ok(&data, &[&["ledger", "checkpoint", "keys", "--json"], store].concat()))
            .unwrap();
    assert_eq!(rotated_keys["keys"].as_array().map(Vec::len), Some(2));
    assert_eq!(rotated_keys["keys"][0]["retired_at"], "2026-03-10T11:20:00.000Z");
    let all = dir.path().join("all.json");
    std::fs::write(&all, datapact_ok(&data, &[&["ledger", "checkpoint", "list", "--json"], store].concat())).unwrap();
    write_json(&kept_keys, &rotated_keys);
    let (code, report) = verify(&data, store, &["--checkpoints", path(&all), "--keys", path(&kept_keys)]);
    assert_eq!(code, 0, "{report}");
    let listed: Vec<u64> = (1..=number + 1).collect();
    assert_eq!(report["checkpoints"]["checked"], serde_json::json!(listed), "{report}");

    // The platform rewrites a delivery covered by checkpoint 1 and re-seals the chain from there:
    // the ledger verifies on its own, but not against what it signed.
    let seq = head["seq"].as_u64().unwrap() - 1;
    rewrite_last_delivery(&data, store, seq).await;
    let (code, report) = verify(&data, store, &[]);
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)), "the re-sealed chain verifies on its own: {report}");
    let (code, report) = verify(&data, store, &["--checkpoints", path(&kept), "--keys", path(&kept_keys)]);
    assert_eq!((code, &report["ok"]), (1, &Value::Bool(false)), "{report}");
    assert_eq!(report["checkpoints"]["departed_from"], serde_json::json!([number]), "{report}");
    let out = datapact(
        &data,
        &[&["ledger", "verify", "--checkpoints", path(&kept), "--keys", path(&kept_keys)], store].concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("departs from what signed checkpoint {number} states")), "{stderr}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// [`seeded_data_dir`], on PostgreSQL when `store` is `["--store", URL]`.
fn seeded_data_dir_on(store: &[&str]) -> (tempfile::TempDir, String) {
    if store.is_empty() {
        return seeded_data_dir();
    }
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    let data = dir.path().join("data");
    datapact_ok(&data, &[&["ingest", "--quiet", path(&corpus)], store].concat());
    let terms = dir.path().join("terms.toml");
    std::fs::write(&terms, OPEN_TERMS).unwrap();
    datapact_ok(&data, &[&["apply", path(&terms)], store].concat());
    let key = datapact_ok(&data, &[&["key", "issue", "acme"], store].concat()).trim().to_owned();
    (dir, key)
}

/// What a platform rewriting its own history would do: change the post id of batch `seq`'s last
/// row (a delivery), then recompute that row's digest, the batch's rows hash and hash, and every
/// later batch's `prev_hash` and hash, so the chain is consistent again.
async fn rewrite_last_delivery(data_dir: &Path, store: &[&str], seq: u64) {
    let statements = match store {
        [] => Sql::Sqlite(rusqlite::Connection::open(data_dir.join("ledger.db")).unwrap()),
        [_, url] => Sql::Postgres(url.to_string()),
        _ => unreachable!(),
    };
    // SQLite keys a delivery by its position (`seq << 20 | ordinal`) in its one chain, and reads
    // its request from the usage event it follows; PostgreSQL stores all three.
    let deliveries = match statements {
        Sql::Sqlite(_) => {
            "(SELECT 'sqlite' AS chain, position >> 20 AS seq, position & 1048575 AS ordinal, licensee_id,
                     (SELECT e.request_id FROM usage_events e WHERE e.seq = position >> 20
                        AND e.ordinal < (position & 1048575) ORDER BY e.ordinal DESC LIMIT 1) AS request_id,
                     post_id, revision, at, counted, digest FROM deliveries)"
        }
        Sql::Postgres(_) => "deliveries",
    };
    let rows = statements.query(&format!(
        "SELECT d.chain, d.ordinal, d.licensee_id, d.request_id, d.post_id, d.revision, d.at, d.counted
         FROM {deliveries} d WHERE d.seq = {seq} AND d.ordinal = (
             SELECT MAX(ordinal) FROM (SELECT ordinal FROM {deliveries} x WHERE seq = {seq} AND chain = d.chain
                                       UNION ALL SELECT ordinal FROM usage_events WHERE seq = {seq} AND chain = d.chain) o)"
    )).await;
    let [row] = rows.as_slice() else { panic!("batch {seq} does not end with a delivery: {rows:?}") };
    let (chain, ordinal) = (row[0].clone(), row[1].parse::<i64>().unwrap());
    let delivery = datapact_ledger::Delivery {
        licensee_id: row[2].parse().unwrap(),
        request_id: row[3].clone(),
        post_id: row[4].parse::<i64>().unwrap() + 1,
        revision: row[5].parse().unwrap(),
        at: datapact_core::Timestamp(row[6].parse().unwrap()),
        counted: row[7] == "1" || row[7] == "true",
    };
    // The digest of the row before it (all zeros for a batch's first row).
    let prev = statements.query(&format!(
        "SELECT digest FROM (SELECT ordinal, digest FROM {deliveries} x WHERE chain = '{chain}' AND seq = {seq}
                             UNION ALL SELECT ordinal, digest FROM usage_events WHERE chain = '{chain}' AND seq = {seq}) o
         WHERE ordinal = {} ", ordinal - 1
    )).await;
    let prev = prev.first().map(|r| digest_of(&r[0])).unwrap_or(Digest([0; 32]));
    let digest = row_digest(&prev, &Row::Delivery(delivery.clone()));
    let row_is = match statements {
        Sql::Sqlite(_) => format!("position = {}", (seq << 20) | ordinal as u64),
        Sql::Postgres(_) => format!("chain = '{chain}' AND seq = {seq} AND ordinal = {ordinal}"),
    };
    statements
        .execute(&format!(
            "UPDATE deliveries SET post_id = {}, digest = {} WHERE {row_is}",
            delivery.post_id,
            statements.bytes(&digest.0)
        ))
        .await;
    // Re-seal this batch and every later one.
    let batches = statements
        .query(&format!(
            "SELECT seq, prev_hash, rows_hash, row_count, committed_at FROM ledger_batches
         WHERE chain = '{chain}' AND seq >= {seq} ORDER BY seq"
        ))
        .await;
    let mut prev_hash: Option<Digest> = None;
    for batch in batches {
        let header = BatchHeader {
            chain: chain.clone(),
            seq: batch[0].parse().unwrap(),
            prev_hash: prev_hash.unwrap_or_else(|| digest_of(&batch[1])),
            rows_hash: if prev_hash.is_none() { digest } else { digest_of(&batch[2]) },
            row_count: batch[3].parse().unwrap(),
            committed_at: datapact_core::Timestamp(batch[4].parse().unwrap()),
        };
        let hash = header.hash();
        statements.execute(&format!(
            "UPDATE ledger_batches SET prev_hash = {}, rows_hash = {}, hash = {} WHERE chain = '{chain}' AND seq = {}",
            statements.bytes(&header.prev_hash.0), statements.bytes(&header.rows_hash.0), statements.bytes(&hash.0), header.seq
        )).await;
        prev_hash = Some(hash);
    }
}

fn digest_of(hex: &str) -> Digest {
    Digest::from_hex(hex).unwrap_or_else(|| panic!("{hex:?} is not a digest"))
}

/// Raw SQL on the ledger's database, every value read back as text (bytes as hex).
enum Sql {
    Sqlite(rusqlite::Connection),
    Postgres(String),
}

impl Sql {
    async fn query(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Sql::Sqlite(conn) => {
                let mut statement = conn.prepare(sql).unwrap();
                let columns = statement.column_count();
                statement
                    .query_map([], |row| {
                        (0..columns)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    rusqlite::types::ValueRef::Blob(bytes) => hex_of(bytes),
                                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                                    rusqlite::types::ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
                                    other => panic!("unexpected {other:?}"),
                                })
                            })
                            .collect()
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Sql::Postgres(url) => psql_rows(url, sql),
        }
    }

    async fn execute(&self, sql: &str) {
        match self {
            Sql::Sqlite(conn) => {
                conn.execute(sql, []).unwrap();
            }
            Sql::Postgres(url) => {
                psql_rows(url, sql);
            }
        }
    }

    fn bytes(&self, bytes: &[u8]) -> String {
        match self {
            Sql::Sqlite(_) => format!("X'{}'", hex_of(bytes)),
            Sql::Postgres(_) => format!("'\\x{}'::bytea", hex_of(bytes)),
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `sql` with psql on the schema `url` selects; rows as text, bytea as hex without `\x`.
fn psql_rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    let out = std::process::Command::new("psql")
        .args([url, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with("UPDATE "))
        .map(|line| line.split('\t').map(|v| v.strip_prefix("\\x").unwrap_or(v).to_owned()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite() {
    checkpoints_are_published_verified_and_catch_a_rewritten_history(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres() {
    let Some(schema) = pg_schema() else { return };
    checkpoints_are_published_verified_and_catch_a_rewritten_history(&["--store", schema.url.as_str()]).await;
}

/// A signer that contradicts itself — two checkpoints under one number, or a later number dated
/// earlier (what a leaked key backdating one would produce) — has given no evidence: verify
/// refuses the files before comparing any head with the ledger, and says why.
#[test]
fn contradicting_checkpoints_are_refused() {
    use datapact_core::Timestamp;
    use datapact_ledger::checkpoint::{ChainHead, Checkpoint, JwkSet, PublicKey, SigningKey};

    let (dir, _key) = seeded_data_dir();
    let data = data(&dir);
    let signer = SigningKey::from_seed([7; 32]);
    let created_at = Timestamp::parse_rfc3339("2026-03-10T09:00:00Z").unwrap();
    let public = PublicKey { key_id: signer.key_id(), public: signer.public(), created_at, retired_at: None };
    let keys = dir.path().join("keys.json");
    write_json(&keys, &serde_json::to_value(JwkSet { keys: vec![public.to_jwk()] }).unwrap());
    let signed = |number: u64, at: &str, hash_byte: u8| {
        let checkpoint = Checkpoint {
            number,
            at: Timestamp::parse_rfc3339(at).unwrap(),
            key_id: signer.key_id(),
            heads: vec![ChainHead { chain: "sqlite".into(), seq: 1, hash: Digest([hash_byte; 32]) }],
        };
        serde_json::to_value(checkpoint.sign(&signer).unwrap().to_json()).unwrap()
    };
    let refused = |name: &str, checkpoints: Vec<Value>, why: &str| {
        let file = dir.path().join(name);
        write_json(&file, &serde_json::json!({ "data": checkpoints }));
        let out = datapact(&data, &["ledger", "verify", "--checkpoints", path(&file), "--keys", path(&keys)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: expected {why:?} in {stderr}");
    };

    // Each checks on its own (a valid signature by a published key)...
    let (one, other) = (signed(1, "2026-03-10T10:00:00Z", 1), signed(1, "2026-03-10T10:00:00Z", 2));
    // ...but together they say two things of checkpoint 1.
    refused("equivocation.json", vec![one.clone(), other], "two different checkpoints are numbered 1");
    // Checkpoint 2 dated before checkpoint 1.
    refused("backdated.json", vec![one.clone(), signed(2, "2026-03-10T09:30:00Z", 1)], "the times go backwards");
    // The same checkpoint twice (a header and a page repeat the newest) is no contradiction: the
    // files get past this check and fail only on the ledger (whose head is not this made-up one).
    let file = dir.path().join("repeated.json");
    write_json(&file, &serde_json::json!({ "data": [one.clone(), one] }));
    let out = datapact(&data, &["ledger", "verify", "--checkpoints", path(&file), "--keys", path(&keys)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("contradicted") && !stderr.contains("backwards"), "{stderr}");
}

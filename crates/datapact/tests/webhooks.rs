//! Notifications end to end, over real HTTP with the test clock: a licensee's own webhook and a
//! platform-wide one receive cap 80 % and 100 %, invoice issued, overdue, suspended, paid and
//! reinstated, each signed as Standard Webhooks specifies (checked here with an independent HMAC);
//! a receiver that fails is retried with backoff, and the delivery log says what happened.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Clone, Debug)]
struct Received {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A receiver on a free port: `/acme` always answers 200; `/platform` answers 500 to its first
/// `failures` requests, then 200.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let record = {
        let seen = Arc::clone(&seen);
        move |path: &'static str, headers: HeaderMap, body: String| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let mut seen = seen.lock().unwrap();
            seen.push(Received {
                path: path.to_owned(),
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
                body,
            });
            seen.iter().filter(|r| r.path == path).count()
        }
    };
    let (acme, platform) = (record.clone(), record);
    let app = axum::Router::new()
        .route(
            "/acme",
            axum::routing::post(move |headers: HeaderMap, body: String| async move {
                acme("/acme", headers, body);
                StatusCode::OK
            }),
        )
        .route(
            "/platform",
            axum::routing::post(move |headers: HeaderMap, body: String| async move {
                let n = platform("/platform", headers, body);
                if n <= failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// The Standard Webhooks signature, computed here from the specification.
fn expected_signature(secret: &str, received: &Received) -> String {
    let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn terms() -> String {
    let plan = open_plan("basic", "monthly_records = 10\ndedup = \"none\"");
    format!(
        r#"{plan}
[[price_book]]
effective = "2026-11-01"
currency = "USD"
[price_book.plans.basic]
monthly_fee = "100.00"

[[licensee]]
name = "acme"
plan = "basic"
starts = "2026-12-01"
payment_terms_days = 10
grace_days = 5
"#
    )
}

/// The kinds received at `path`, in order, successful or not.
fn kinds(seen: &Mutex<Vec<Received>>, path: &str) -> Vec<String> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .filter(|r| r.path == path)
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn notifications_reach_webhooks_signed_and_are_retried_with_backoff() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &terms());
    let (base, seen) = receiver(2).await;
    let acme_hook = json_out(
        &data_dir,
        &["webhook", "add", &format!("{base}/acme"), "--licensee", "acme", "--events", "cap.80,cap.100", "--json"],
    );
    let platform_hook = json_out(&data_dir, &["webhook", "add", &format!("{base}/platform"), "--json"]);
    let secrets = [
        ("/acme", acme_hook["secret"].as_str().unwrap().to_owned()),
        ("/platform", platform_hook["secret"].as_str().unwrap().to_owned()),
    ];
    assert_ne!(secrets[0].1, secrets[1].1);
    let listed = datapact_ok(&data_dir, &["webhook", "list"]);
    assert!(!listed.contains(&secrets[0].1) && listed.contains("(platform)"), "secrets are never listed: {listed}");
    let bad = datapact(&data_dir, &["webhook", "add", "ftp://x", "--events", "cap.80"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("https://"));
    let bad = datapact(&data_dir, &["webhook", "add", "https://x.example", "--events", "cap.90"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cap.80"), "names the kinds");

    let gateway = Gateway::start(&data_dir, &["--test-clock", "2026-12-05T12:00:00Z"]);
    // 8 of 10 records: 80 %. Then a page cut at the hard cap: 100 %. More requests cross nothing.
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 8))).await;
    assert_eq!(status, 200);
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(9, 5))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(2)));
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 1))).await;
    assert_eq!(status, 429);
    let arrived = eventually(Duration::from_secs(10), async || kinds(&seen, "/acme").len() >= 2).await;
    assert!(arrived.is_some(), "the licensee's webhook got its notifications: {:?}", kinds(&seen, "/acme"));
    // A batch is sent at once: arrival order is not promised (receivers order by `timestamp`).
    let mut received = kinds(&seen, "/acme");
    received.sort();
    assert_eq!(received, ["cap.100", "cap.80"]);

    // The platform's receiver failed twice: retried after 5 s, then 30 s (of the gateway's clock).
    // (The log is read once both failures are recorded: the sender records an attempt after its answer.)
    let failed_and_recorded = eventually(Duration::from_secs(10), async || {
        let log = json_out(&data_dir, &["webhook", "deliveries", "--json"]);
        log.as_array().unwrap().iter().filter(|d| d["status"] == "pending" && d["attempts"] == 1).count() == 2
    })
    .await;
    assert!(failed_and_recorded.is_some(), "{:?}", kinds(&seen, "/platform"));
    let log = json_out(&data_dir, &["webhook", "deliveries", "--json"]);
    let pending: Vec<&Value> = log.as_array().unwrap().iter().filter(|d| d["status"] == "pending").collect();
    assert_eq!(pending.len(), 2, "{log:#}");
    assert!(pending.iter().all(|d| d["attempts"] == 1 && d["last_status"] == 500), "{log:#}");
    assert_eq!(pending[0]["next_attempt_at"], "2026-12-05T12:00:05.000Z", "5 s after the first attempt: {log:#}");
    set_clock(&gateway, &data_dir, "2026-12-05T12:00:06Z").await;
    let retried = eventually(Duration::from_secs(10), async || kinds(&seen, "/platform").len() >= 4).await;
    assert!(retried.is_some(), "retried once the backoff passed: {:?}", kinds(&seen, "/platform"));
    let log = json_out(&data_dir, &["webhook", "deliveries", "--json"]);
    let delivered = log.as_array().unwrap().iter().filter(|d| d["url"].as_str().unwrap().ends_with("/platform"));
    assert!(delivered.clone().all(|d| d["status"] == "delivered" && d["attempts"] == 2), "{log:#}");

    // December is invoiced; it falls overdue and suspends acme; a payment reinstates it. Each is
    // notified once to the platform (the licensee's hook asked only for caps).
    set_clock(&gateway, &data_dir, "2027-01-02T09:00:00Z").await;
    let issued =
        eventually(Duration::from_secs(10), async || kinds(&seen, "/platform").contains(&"invoice.issued".into()))
            .await;
    assert!(issued.is_some(), "{:?}", kinds(&seen, "/platform"));
    set_clock(&gateway, &data_dir, "2027-01-18T00:00:00Z").await;
    let suspended = eventually(Duration::from_secs(10), async || {
        let kinds = kinds(&seen, "/platform");
        kinds.contains(&"invoice.overdue".into()) && kinds.contains(&"licensee.suspended".into())
    })
    .await;
    assert!(suspended.is_some(), "{:?}", kinds(&seen, "/platform"));
    let invoice = json_out(&data_dir, &["invoice", "list", "acme", "--format", "json"]);
    let number = invoice[0]["number"].as_str().unwrap().to_owned();
    let total = invoice[0]["total"].as_str().unwrap().to_owned();
    datapact_ok(
        &data_dir,
        &[
            "--now",
            "2027-01-18T00:00:00Z",
            "payment",
            "record",
            "acme",
            &total,
            "--invoice",
            &number,
            "--reference",
            "w-1",
        ],
    );
    let reinstated = eventually(Duration::from_secs(10), async || {
        let kinds = kinds(&seen, "/platform");
        kinds.contains(&"invoice.paid".into()) && kinds.contains(&"licensee.reinstated".into())
    })
    .await;
    assert!(reinstated.is_some(), "{:?}", kinds(&seen, "/platform"));

    // Every attempt recorded (the sender records one after the receiver's answer) before the log is compared.
    let settled = eventually(Duration::from_secs(10), async || {
        let log = json_out(&data_dir, &["webhook", "deliveries", "--json"]);
        log.as_array().unwrap().iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(settled.is_some(), "{}", datapact_ok(&data_dir, &["webhook", "deliveries"]));

    // The admin API: the same log; webhooks added and removed by the same rules.
    let admin = |method: reqwest::Method, path: &str| {
        gateway.http.request(method, format!("{}{path}", gateway.admin)).bearer_auth(Gateway::admin_token(&data_dir))
    };
    let log: Value = admin(reqwest::Method::GET, "/admin/webhooks/deliveries?limit=1000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["deliveries"], json_out(&data_dir, &["webhook", "deliveries", "--limit", "1000", "--json"]));
    let bad = admin(reqwest::Method::POST, "/admin/webhooks")
        .json(&serde_json::json!({ "url": "https://x.example", "events": ["nope"] }));
    assert_eq!(bad.send().await.unwrap().status(), 400);
    let added =
        admin(reqwest::Method::POST, "/admin/webhooks").json(&serde_json::json!({ "url": "https://x.example/h" }));
    let added: Value = added.send().await.unwrap().json().await.unwrap();
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"), "{added}");
    let removed = admin(reqwest::Method::DELETE, &format!("/admin/webhooks/{}", added["id"])).send().await.unwrap();
    assert_eq!(removed.status(), 200);
    let listed: Value = admin(reqwest::Method::GET, "/admin/webhooks").send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains("whsec_"), "secrets are never listed: {listed}");
    drop(gateway);

    // Every request was signed with its webhook's secret over its id, timestamp and body; a retry
    // carries the same id; each notification was delivered once (a 2xx) per webhook.
    let seen = seen.lock().unwrap().clone();
    for received in &seen {
        let secret = &secrets.iter().find(|(path, _)| *path == received.path).unwrap().1;
        assert_eq!(received.signature, expected_signature(secret, received), "{received:?}");
        assert!(received.id.starts_with("ntf_"));
        let body: Value = serde_json::from_str(&received.body).unwrap();
        assert_eq!(body["licensee"], "acme");
    }
    let platform: Vec<&Received> = seen.iter().filter(|r| r.path == "/platform").collect();
    let mut ids: Vec<&str> = platform[2..].iter().map(|r| r.id.as_str()).collect();
    let retried: Vec<&str> = platform[..2].iter().map(|r| r.id.as_str()).collect();
    assert!(retried.iter().all(|id| ids.contains(id)), "a retry carries the notification's id");
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "each notification delivered once");
    let platform_kinds: Vec<String> = platform[2..]
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "cap.80",
        "cap.100",
        "invoice.issued",
        "invoice.overdue",
        "licensee.suspended",
        "invoice.paid",
        "licensee.reinstated",
    ] {
        assert_eq!(platform_kinds.iter().filter(|k| *k == kind).count(), 1, "{kind} once: {platform_kinds:?}");
    }
    let audit = json_out(&data_dir, &["audit", "--json"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "invoice.overdue"), "overdue is audited too");
}

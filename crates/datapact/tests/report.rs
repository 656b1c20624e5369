//! `datapact report` (issue 11, parts 2 and 3), on both stores, on the test clock: a licensee
//! over-uses its soft cap, leaves an invoice unpaid and is suspended, is blocked after requests from
//! outside its networks, and leaks part of its copy, including posts deleted after it received
//! them; the report states each finding with the right numbers, reruns byte for byte from the
//! command it prints, and its HTML needs no network.
//!
//! That a ledger edited after a checkpoint fails verification against it is tested in
//! `tests/checkpoints.rs` (`checkpoints_are_published_verified_and_catch_a_rewritten_history`, on both stores).

#[allow(dead_code)]
#[path = "../src/trace.rs"]
mod trace;

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datapact_core::ingest::parse_line;
use datapact_core::{Clock, Endpoint, ManualClock, Timestamp};
use datapact_ledger::Cap;
use datapact_mark::PreparedPost;
use datapact_store::ledger::Ledger;
use datapact_store::secrets::SecretRing;
use datapact_store::{PgStore, SqliteStore, Store, ViolationEvent};
use datapact_trace::LeakFormat;
use sha2::{Digest, Sha256};

fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

const TERMS: &str = r#"
[[plan]]
name = "metered"
monthly_records = 100
cap = "soft"
deletion_deadline = "24h"
rate_limits = { search = "100000/15m", lookup = "100000/15m", timeline = "100000/15m", users = "100000/15m", stream = "100000/15m", usage = "100000/15m" }
endpoints = ["search", "lookup", "timeline", "users", "stream", "usage"]
purposes = ["all"]

[[price_book]]
effective = "2026-01-01"
currency = "USD"
[price_book.plans.metered]
monthly_fee = "100.00"
included_records = 100
overage_per_1000 = "50.00"

[[licensee]]
name = "acme"
plan = "metered"
payment_terms_days = 14
grace_days = 5
prices = [{ effective = "2026-06-01", included_records = 100 }]

[[licensee]]
name = "gamma"
plan = "metered"
"#;

struct Scenario {
    store_arg: Vec<String>,
    dir: tempfile::TempDir,
    store: Box<dyn Store>,
    _schema: Option<common::PgSchema>,
    leak: PathBuf,
    deleted: Vec<i64>,
    canary: i64,
}

impl Scenario {
    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn cli<'a>(&'a self, now: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all: Vec<&str> = self.store_arg.iter().map(String::as_str).collect();
        all.extend(["--now", now]);
        all.extend(args);
        all
    }

    fn ok(&self, now: &str, args: &[&str]) -> String {
        common::datapact_ok(self.data(), &self.cli(now, args))
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = common::datapact(self.data(), &self.cli("2027-01-05T00:00:00Z", args));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "datapact report {args:?} should have failed");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

async fn deliver(ledger: &Ledger, clock: &ManualClock, licensee: i64, posts: &[(i64, u32)], when: Timestamp) {
    deliver_with_canaries(ledger, clock, licensee, posts, &[], when).await;
}

/// Lookups by `licensee` at `when` (the test clock set there), 50 posts a response, against a
/// soft cap of 100; `canaries` with the first.
async fn deliver_with_canaries(
    ledger: &Ledger,
    clock: &ManualClock,
    licensee: i64,
    posts: &[(i64, u32)],
    canaries: &[i64],
    when: Timestamp,
) {
    clock.set(when);
    let delivery = common::DirectDelivery {
        licensee,
        posts,
        at: when,
        cap: Cap::soft(100),
        page_size: 50,
        endpoint: Endpoint::Lookup,
        canaries,
    };
    common::deliver_directly(ledger, delivery).await;
}

/// The scripted scenario, through November and December 2026.
async fn scenario(postgres: bool) -> Option<Scenario> {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t("2026-11-02T09:00:00Z");
    let clock = Arc::new(ManualClock::new(t0));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (store, schema, store_arg, ledger): (Box<dyn Store>, _, Vec<String>, Ledger) = if postgres {
        let schema = common::pg_schema()?;
        let store = PgStore::connect(&schema.url).await.unwrap();
        let ledger = Ledger::open_postgres(&store, "node-a", dyn_clock).await.unwrap();
        let arg = vec!["--store".to_owned(), schema.url.clone()];
        (Box::new(store), Some(schema), arg, ledger)
    } else {
        let ledger = Ledger::open(dir.path(), dyn_clock).unwrap();
        (Box::new(SqliteStore::open(dir.path()).unwrap()), None, Vec::new(), ledger)
    };
    let spec = datapact_demo::CorpusSpec { posts: 300, authors: 20, ..Default::default() };
    let mut records = Vec::new();
    let mut posts: Vec<(i64, String)> = Vec::new();
    for value in datapact_demo::generate(&spec) {
        posts.push((value["id"].as_str().unwrap().parse().unwrap(), value["text"].as_str().unwrap().to_string()));
        records.push(parse_line(value.to_string().as_bytes()).unwrap());
    }
    store.ingest(records, t0).await.unwrap();
    let mut s =
        Scenario { store_arg, dir, store, _schema: schema, leak: PathBuf::new(), deleted: Vec::new(), canary: 0 };
    let terms = s.data().join("terms.toml");
    std::fs::write(&terms, TERMS).unwrap();
    s.ok("2026-11-01T00:00:00Z", &["apply", terms.to_str().unwrap()]);
    let acme = s.store.licensee("acme").await.unwrap().unwrap().id;
    SecretRing::load_or_create(s.data(), t0).unwrap();

    // 60 records on Nov 2 and 60 on Nov 3: past the soft cap of 100 on Nov 3.
    let ids: Vec<(i64, u32)> = posts.iter().map(|p| (p.0, 1)).collect();
    deliver(&ledger, &clock, acme, &ids[..60], t0).await;
    deliver(&ledger, &clock, acme, &ids[60..120], t("2026-11-03T09:00:00Z")).await;
    // Two posts it received are deleted on Nov 4 (deadline Nov 5).
    s.deleted = vec![posts[0].0, posts[1].0];
    for id in &s.deleted {
        let line = format!("{{\"delete\":{{\"id\":\"{id}\"}}}}");
        s.store.ingest(vec![parse_line(line.as_bytes()).unwrap()], t("2026-11-04T00:00:00Z")).await.unwrap();
    }
    // A post written on Nov 10, past the deadline, delivered then: the leak's witness.
    let new_id = posts.iter().map(|p| p.0).max().unwrap() + 1;
    let text = "A late post about harbour lights, written well after the deletions";
    let line = serde_json::json!({"id": new_id.to_string(), "text": text, "author_id": "1",
        "created_at": "2026-11-10T08:00:00.000Z", "author": {"id": "1", "username": "late_author", "name": "Late"}});
    s.store.ingest(vec![parse_line(line.to_string().as_bytes()).unwrap()], t("2026-11-10T08:00:00Z")).await.unwrap();
    // With it, a canary (a synthetic post made for acme alone).
    let canary_id = new_id + 7;
    deliver_with_canaries(&ledger, &clock, acme, &[(new_id, 1)], &[canary_id], t("2026-11-10T09:00:00Z")).await;

    // Nov 12: three requests from outside its networks, then a block.
    let violations = (1..=3)
        .map(|n| ViolationEvent {
            licensee_id: acme,
            kind: "network_not_allowed".into(),
            at: t(&format!("2026-11-12T1{n}:00:00Z")),
            request_id: format!("req-net-{n}"),
            client: "203.0.113.7".into(),
        })
        .collect();
    s.store.record_violations(violations).await.unwrap();
    // One the day before the period and one on the --as-of day but after it: left out (the
    // running total counts five; the report counts the period's three, from the per-day counts).
    let outside = [("2026-10-31T23:59:59.999Z", "req-net-oct"), ("2026-12-31T06:00:00Z", "req-net-dec")].map(
        |(at, request_id)| ViolationEvent {
            licensee_id: acme,
            kind: "network_not_allowed".into(),
            at: t(at),
            request_id: request_id.into(),
            client: "203.0.113.7".into(),
        },
    );
    s.store.record_violations(outside.to_vec()).await.unwrap();
    s.ok("2026-11-12T14:00:00Z", &["licensee", "block", "acme", "--reason", "requests from outside its networks"]);

    // Nov 20: a leak of 100 of its 121 posts (both deleted ones and the late one among them) is traced.
    let ring = SecretRing::load(s.data()).unwrap().unwrap();
    let mut leaked: Vec<(i64, String)> = posts[..99].to_vec();
    leaked.push((new_id, text.to_owned()));
    let canary = datapact_gateway::canary::canary_post(
        ring.current(),
        acme as u64,
        datapact_core::PostId::new(canary_id),
        Timestamp::from_millis(0),
    );
    leaked.push((canary_id, canary.post.text.clone()));
    let mut out = String::new();
    for (id, text) in &leaked {
        let copy = PreparedPost::new(ring.current(), *id as u64, text).render(acme as u64);
        out.push_str(&serde_json::json!({"id": id.to_string(), "text": copy}).to_string());
        out.push('\n');
    }
    s.leak = s.data().join("leak.jsonl");
    s.canary = canary_id;
    std::fs::write(&s.leak, out).unwrap();
    let args = trace::TraceArgs {
        leaks: vec![s.leak.clone()],
        format: LeakFormat::Auto,
        epsilon: 1e-6,
        json: true,
        record: true,
        read_all: false,
    };
    let canaries = vec![datapact_trace::Canary {
        licensee: acme as u64,
        canary_id: canary_id.to_string(),
        text: canary.post.text.clone(),
    }];
    let result = trace::trace_full_at(&args, s.data(), &ledger, s.store.as_ref(), canaries, t("2026-11-20T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(result.report.accused.len(), 1, "{}", result.report.to_text());

    // Nov 30: a signed checkpoint covers the ledger so far.
    s.ok("2026-11-30T00:00:00Z", &["ledger", "checkpoint", "make"]);
    // Dec 1: November is invoiced (due Dec 15); 40.00 is paid on Dec 5, 10.00 on Dec 22 — by then
    // the invoice is past its 5 days of grace (suspended from Dec 21), which the payment logs.
    s.ok("2026-12-01T01:00:00Z", &["invoice", "run", "--month", "2026-11"]);
    let pay = |now: &str, amount: &str, reference: &str| {
        s.ok(now, &["payment", "record", "acme", amount, "--invoice", "DP-000001", "--reference", reference]);
    };
    pay("2026-12-05T10:00:00Z", "40.00", "WIRE-1");
    pay("2026-12-22T10:00:00Z", "10.00", "WIRE-2");
    drop(ledger);
    Some(s)
}

const AS_OF: &str = "2026-12-31T00:00:00Z";

fn report_args(format: &str) -> Vec<&str> {
    vec!["report", "acme", "--from", "2026-11-01", "--to", "2026-12-31", "--as-of", AS_OF, "--format", format]
}

/// Runs the printed regeneration command (with `--store "$DATAPACT_STORE"` on PostgreSQL), on the
/// scenario's clock (its --as-of instants are in the real clock's future, which is refused).
fn rerun(s: &Scenario, command: &str) -> Vec<u8> {
    let command = command.strip_prefix("datapact ").expect("the command starts with datapact");
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("'{}' --now 2027-01-05T00:00:00Z {command}", common::BIN))
        .env_remove("DATAPACT_ADMIN_TOKEN");
    match s.store_arg.get(1) {
        Some(url) => sh.env("DATAPACT_STORE", url),
        None => sh.env_remove("DATAPACT_STORE"),
    };
    let output = sh.output().unwrap();
    assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

async fn the_report_states_every_finding(s: Scenario) {
    let json_text = s.ok("2027-01-05T00:00:00Z", &report_args("json"));
    let report: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let acme = &report["licensees"][0];
    assert_eq!(acme["licensee"], "acme");
    assert_eq!(acme["status"], "blocked");
    assert_eq!(acme["agreement"]["plan"], "metered");
    assert_eq!(acme["agreement"]["cap"], "soft");
    assert_eq!(acme["price_books"][0]["effective"], "2026-01-01");
    assert_eq!(acme["price_books"][0]["monthly_fee"]["minor"], 10_000);
    assert_eq!(acme["negotiated_prices"][0]["effective"], "2026-06-01");
    assert_eq!(acme["agreement"]["grace_days"], 5);

    // Usage: 60 + 60 + 1 in November against a soft cap of 100.
    let november = &acme["usage"]["months"][0];
    assert_eq!(november["month"], "2026-11");
    assert_eq!((november["counted"].as_u64(), november["over_cap"].as_u64()), (Some(121), Some(21)));
    assert_eq!(november["first_day_over"], "2026-11-03");
    // A period starting later in the month still names the month's first day over (and the
    // batches of the month to date).
    let args = ["report", "acme", "--from", "2026-11-20", "--to", "2026-11-30", "--as-of", AS_OF, "--format", "json"];
    let late: serde_json::Value = serde_json::from_str(&s.ok("2027-01-05T00:00:00Z", &args)).unwrap();
    assert_eq!(late["licensees"][0]["usage"]["months"][0]["first_day_over"], "2026-11-03", "{late}");
    assert_eq!(late["reproducibility"]["ledger_ranges"], report["reproducibility"]["ledger_ranges"], "{late}");
    assert_eq!(acme["usage"]["months"][1]["counted"], 0, "nothing in December");
    let days = acme["usage"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 61, "every day of the period");
    assert_eq!((days[1]["day"].as_str(), days[1]["counted"].as_u64()), (Some("2026-11-02"), Some(60)));
    assert_eq!((days[2]["counted"].as_u64(), days[2]["month_to_date"].as_u64()), (Some(60), Some(120)));
    assert_eq!(days[9]["counted"], 1);

    // Billing: 100.00 + 21 records at 50.00 per 1,000 (1.05) = 101.05; 50.00 paid; suspended from Dec 21.
    let invoice = &acme["billing"]["invoices"][0];
    assert_eq!(invoice["number"], "DP-000001");
    assert_eq!(invoice["records"], 121);
    assert_eq!(invoice["total"]["minor"], 10_105);
    assert_eq!(invoice["paid"]["minor"], 5_000);
    assert_eq!(invoice["outstanding"]["minor"], 5_105);
    assert_eq!(invoice["status"], "overdue");
    let totals = &acme["billing"]["totals"][0];
    assert_eq!(
        (totals["invoiced"]["minor"].as_i64(), totals["overdue"]["minor"].as_i64()),
        (Some(10_105), Some(5_105))
    );
    assert_eq!(acme["billing"]["suspension"]["since"], "2026-12-21T00:00:00.000Z");
    assert_eq!(acme["billing"]["suspension"]["invoices"][0], "DP-000001");
    let events: Vec<&str> =
        acme["status_events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(events, ["licensee.block", "licensee.suspended"], "{}", acme["status_events"]);
    assert_eq!(acme["status_events"][0]["reason"], "requests from outside its networks");

    // The network violation.
    let violation = &acme["violations"][0];
    assert_eq!(violation["kind"], "network_not_allowed");
    assert_eq!(violation["count"], 3);
    assert_eq!(violation["first_at"], "2026-11-12T11:00:00.000Z");
    assert_eq!(violation["last_at"], "2026-11-12T13:00:00.000Z");
    let mut samples: Vec<&str> =
        violation["sample_request_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    samples.sort();
    assert_eq!(samples, ["req-net-1", "req-net-2", "req-net-3"]);

    // The trace: accused, with its bound; 100 leaked posts, all received; two deleted ones proven kept.
    let finding = &acme["trace_findings"][0];
    assert_eq!(finding["accused"], true);
    assert_eq!(finding["posts_matched"], 100);
    assert_eq!(finding["delivered_posts"], 100);
    assert_eq!(finding["delivered_share"], 1.0);
    assert_eq!(finding["deleted_posts"], 2);
    assert_eq!((finding["deletion_violations"].as_u64(), finding["deletion_may_predate"].as_u64()), (Some(2), Some(0)));
    let deleted = acme["deletion_violations"].as_array().unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0]["deleted_at"], "2026-11-04T00:00:00.000Z");
    assert_eq!(deleted[0]["deadline_at"], "2026-11-05T00:00:00.000Z");
    let bound = finding["log10_bound"].as_f64().unwrap();
    assert!(bound < -6.0, "{bound}");
    let words = datapact_report::bound_words(bound);
    assert!(finding["statement"].as_str().unwrap().contains(&format!("scores this high is {words}")));

    // The canary.
    let hit = &acme["canary_hits"][0];
    assert_eq!(hit["canary_id"], s.canary.to_string());
    assert!(hit["exact_occurrences"].as_u64().unwrap() + hit["normalised_records"].as_u64().unwrap() >= 1, "{hit}");

    // Reproducibility: the ledger batches, the checkpoint covering them, the inputs' hashes.
    let repro = &report["reproducibility"];
    let ranges = repro["ledger_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0]["chain"], if s.store_arg.is_empty() { "sqlite" } else { "node-a" });
    assert_eq!(ranges[0]["events"], 4 + 1, "two pages on each of two days, one on Nov 10");
    assert_eq!(repro["checkpoint"]["number"], 1, "{}", repro["checkpoint_statement"]);
    // The checkpoint as the report gives it is what `ledger verify --checkpoints` takes.
    let kept = s.data().join("checkpoint.json");
    std::fs::write(&kept, repro["checkpoint"]["json"].as_str().unwrap()).unwrap();
    // (`ok` asserts it exits 0: the signature checks and the ledger passes through its heads.)
    s.ok("2027-01-05T00:00:00Z", &["ledger", "verify", "--checkpoints", kept.to_str().unwrap()]);
    let leak_sha = hex::encode(Sha256::digest(std::fs::read(&s.leak).unwrap()));
    let inputs = repro["inputs"].as_array().unwrap();
    assert_eq!((inputs[0]["kind"].as_str(), inputs[1]["kind"].as_str()), (Some("terms"), Some("price-books")));
    assert!(inputs.iter().any(|i| i["kind"] == "leak" && i["sha256"] == leak_sha.as_str()), "{inputs:?}");
    let command = repro["command"].as_str().unwrap();
    assert!(command.contains(&format!("--as-of {}", t(AS_OF))), "{command}");
    assert_eq!(rerun(&s, command), json_text.as_bytes(), "the printed command gives the same bytes");
    s.trace_was_recorded_with_its_violations().await;

    // The HTML states the findings in words, self-contained, and reruns to the same bytes.
    let out = s.data().join("acme.html");
    let mut html_args = report_args("html");
    html_args.extend(["--out", out.to_str().unwrap()]);
    s.ok("2027-01-05T00:00:00Z", &html_args);
    let html = std::fs::read_to_string(&out).unwrap();
    for sentence in [
        "In 2026-11, acme was counted 121 records against a soft cap of 100: 21 over the cap (121.0% of the cap), \
         first over on 2026-11-03.",
        "acme was invoiced 101.05 USD, paid 50.00 USD, was credited 0.00 USD, and owes 51.05 USD (51.05 USD overdue).",
        "acme is suspended for non-payment since 2026-12-21T00:00:00.000Z: DP-000001 (51.05 USD outstanding) unpaid",
        "network_not_allowed: 3 time(s) in the period, first at 2026-11-12T11:00:00.000Z, last at \
         2026-11-12T13:00:00.000Z",
        "licensee.block by cli@",
        "acme received 100 of the 100 leaked posts matched (100.0%).",
        "The leak holds 2 post(s) acme received that were deleted: 2 proven deletion-compliance violation(s), 0 that \
         may predate the deadline (1d).",
        &format!("scores this high is {words}"),
        "Deletion-compliance violation: post",
        "Invoices are due 14 days after issue; 5 days of grace follow before a suspension.",
        &format!("Canary {} (served only to acme) is in the leak of finding #1", s.canary),
        "Signed checkpoint 1 (made 2026-11-30T00:00:00.000Z",
    ] {
        assert!(html.contains(&datapact_report::escape_html(sentence)), "missing {sentence:?}");
    }
    assert!(html.contains("<svg"), "the usage chart is inline");
    assert!(!html.contains("http://") && !html.contains("https://"), "no network reference");
    let markdown = s.ok("2027-01-05T00:00:00Z", &report_args("md"));
    assert!(markdown.contains("121 records against a soft cap of 100: 21 over the cap"), "{markdown}");
    assert!(markdown.contains("owes 51.05 USD"));
    let html_command = html.rsplit("<pre>").next().unwrap().split("</pre>").next().unwrap();
    let html_command = html_command.replace("&#39;", "'").replace("&quot;", "\"").replace("&amp;", "&");
    assert!(!html_command.contains("--out"), "rerunning must not overwrite the original: {html_command}");
    assert_eq!(String::from_utf8(rerun(&s, &html_command)).unwrap(), html, "the HTML reruns to the same bytes");

    // --all --month: one section per licensee.
    let all: serde_json::Value = serde_json::from_str(
        &s.ok("2027-01-05T00:00:00Z", &["report", "--all", "--month", "2026-11", "--format", "json"]),
    )
    .unwrap();
    let names: Vec<&str> =
        all["licensees"].as_array().unwrap().iter().map(|l| l["licensee"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "gamma"]);
    assert_eq!(all["licensees"][1]["usage"]["months"][0]["counted"], 0);
    assert!(
        all["reproducibility"]["command"].as_str().unwrap().contains("report --all --from 2026-11-01 --to 2026-11-30")
    );

    // An earlier --as-of leaves out what came later: before the invoice run, nothing is invoiced.
    let early: serde_json::Value = serde_json::from_str(&s.ok(
        "2027-01-05T00:00:00Z",
        &["report", "acme", "--month", "2026-11", "--as-of", "2026-11-25T00:00:00Z", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(early["licensees"][0]["billing"]["invoices"], serde_json::json!([]));
    assert_eq!(early["reproducibility"]["checkpoint"], serde_json::Value::Null);
    assert_eq!(early["reproducibility"]["checkpoint_statement"], "No signed checkpoint covers these batches yet.");
    assert_eq!(early["licensees"][0]["usage"]["months"][0]["counted"], 121);
    // Usage is counted up to the --as-of instant, inside its day too (Nov 3's records were committed at 09:00).
    for (as_of, counted) in [("2026-11-03T08:59:59.999Z", 60), ("2026-11-03T09:00:00Z", 120)] {
        let args = ["report", "acme", "--month", "2026-11", "--as-of", as_of, "--format", "json"];
        let at: serde_json::Value = serde_json::from_str(&s.ok("2027-01-05T00:00:00Z", &args)).unwrap();
        let november = &at["licensees"][0]["usage"]["months"][0];
        assert_eq!(november["counted"], counted, "as of {as_of}");
        assert_eq!(at["licensees"][0]["usage"]["days"][2]["counted"], counted - 60, "as of {as_of}");
        let days = at["licensees"][0]["usage"]["days"].as_array().unwrap();
        assert_eq!(days.last().unwrap()["day"], "2026-11-03", "no day after {as_of} is shown");
        assert_eq!(at["reproducibility"]["ledger_ranges"][0]["events"], counted / 30, "as of {as_of}");
    }

    // Changes after --as-of leave the report as it was: new terms, an unblock, a payment.
    let terms = s.data().join("terms-2027.toml");
    std::fs::write(&terms, TERMS.replace("monthly_records = 100", "monthly_records = 500")).unwrap();
    s.ok("2027-01-02T00:00:00Z", &["apply", terms.to_str().unwrap()]);
    s.ok("2027-01-02T00:00:00Z", &["licensee", "unblock", "acme"]);
    s.ok(
        "2027-01-02T00:00:00Z",
        &["payment", "record", "acme", "51.05", "--invoice", "DP-000001", "--reference", "W3"],
    );
    // (A report on January, as of now, has them: terms are those in force at the end of the period.)
    let args = ["report", "acme", "--month", "2027-01", "--format", "json"];
    let january: serde_json::Value = serde_json::from_str(&s.ok("2027-01-05T00:00:00Z", &args)).unwrap();
    assert_eq!(january["licensees"][0]["agreement"]["monthly_records"], 500);
    // Over November to January, each month is held to the cap in force at its end: November to
    // 100 (over it), January to the 500 applied on Jan 2; January is counted through Jan 5 only.
    let args = ["report", "acme", "--from", "2026-11-01", "--to", "2027-01-31", "--format", "json"];
    let three: serde_json::Value = serde_json::from_str(&s.ok("2027-01-05T00:00:00Z", &args)).unwrap();
    let months = &three["licensees"][0]["usage"]["months"];
    assert_eq!((months[0]["cap"].as_u64(), months[0]["over_cap"].as_u64()), (Some(100), Some(21)), "{months}");
    assert_eq!((months[2]["cap"].as_u64(), months[2]["through"].as_str()), (Some(500), Some("2027-01-05")), "{months}");
    assert_eq!(months[0]["through"], serde_json::Value::Null);
    let markdown = s.ok("2027-01-05T00:00:00Z", &["report", "acme", "--month", "2027-01", "--format", "md"]);
    assert!(markdown.contains("In 2027-01 (through 2027-01-05), acme was counted"), "{markdown}");
    assert_eq!(january["licensees"][0]["status"], "active");
    assert_eq!(january["licensees"][0]["billing"]["suspension"], serde_json::Value::Null, "paid in full");
    assert_eq!(rerun(&s, command), json_text.as_bytes(), "as of 2026-12-31, the same bytes");

    s.errors_are_clear();
}

impl Scenario {
    async fn trace_was_recorded_with_its_violations(&self) {
        let acme = self.store.licensee("acme").await.unwrap().unwrap().id;
        let recorded = self.store.deletion_violations(Some(acme)).await.unwrap();
        let mut posts: Vec<i64> = recorded.iter().map(|v| v.violation.post_id.get()).collect();
        posts.sort();
        let mut deleted = self.deleted.clone();
        deleted.sort();
        assert_eq!(posts, deleted);
    }

    fn errors_are_clear(&self) {
        let stderr = self.fails(&["report", "acme", "--from", "2026-13-01", "--to", "2026-12-31"]);
        assert!(stderr.contains("--from \"2026-13-01\" is not a date: write YYYY-MM-DD"), "{stderr}");
        let out = self.data().join("nobody.html");
        let stderr = self.fails(&["report", "nobody", "--month", "2026-11", "--out", out.to_str().unwrap()]);
        assert!(stderr.contains("no licensee named \"nobody\""), "{stderr}");
        assert!(!out.exists(), "a failed report leaves no file");
        let stderr = self.fails(&["report", "acme", "--from", "2026-12-01", "--to", "2026-11-01"]);
        assert!(stderr.contains("--from 2026-12-01 is after --to 2026-11-01"), "{stderr}");
        let stderr = self.fails(&["report", "acme", "--month", "2026-11", "--out", "/nonexistent-dir/r.html"]);
        assert!(stderr.contains("cannot write --out /nonexistent-dir/r.html"), "{stderr}");
        let stderr = self.fails(&["report", "acme", "--month", "2026-11", "--as-of", "2027-06-01T00:00:00Z"]);
        assert!(stderr.contains("is in the future"), "{stderr}");
        let stderr = self.fails(&["report", "acme", "--month", "November"]);
        assert!(stderr.contains("--month \"November\" is not a month"), "{stderr}");
        let stderr = self.fails(&["report", "acme", "--month", "2026-11", "--as-of", "yesterday"]);
        assert!(stderr.contains("--as-of \"yesterday\""), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_report_states_every_finding() {
    the_report_states_every_finding(scenario(false).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_report_states_every_finding() {
    let Some(s) = scenario(true).await else { return };
    the_report_states_every_finding(s).await;
}

/// `--format pdf` prints the HTML with Debian's Chromium; skipped (visibly) where it is not
/// installed, except under CI=true.
#[test]
fn a_pdf_is_printed_with_chromium() {
    if !Path::new("/usr/bin/chromium").exists() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("Debian's chromium is required in CI (CI=true) for `datapact report --format pdf`: install it");
        }
        eprintln!("SKIPPED: /usr/bin/chromium is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let terms = dir.path().join("terms.toml");
    std::fs::write(&terms, TERMS).unwrap();
    common::datapact_ok(dir.path(), &["--now", "2026-11-01T00:00:00Z", "apply", terms.to_str().unwrap()]);
    let out = dir.path().join("acme.pdf");
    common::datapact_ok(
        dir.path(),
        &[
            "--now",
            "2027-01-05T00:00:00Z",
            "report",
            "acme",
            "--month",
            "2026-11",
            "--as-of",
            AS_OF,
            "--format",
            "pdf",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let pdf = std::fs::read(&out).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert!(pdf.len() > 2_000, "with content: {} bytes", pdf.len());
}

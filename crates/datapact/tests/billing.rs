//! Billing end to end, over real HTTP and the CLI with the test clock: usage → `invoice run` (a term
//! starting mid-month, a price change mid-month priced by delivery day) → time passes beyond the due
//! date and grace days → 402 naming the invoice → `payment record` → served again within a second.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PAYMENT_REQUIRED: &str = "https://api.twitter.com/2/problems/payment-required";

/// Plan `basic`; December is priced by two book versions (the second from the 15th); acme's term
/// starts on December 4th, with 10 days to pay and 5 days of grace; globex starts in January.
fn billing_terms() -> String {
    let plan = open_plan("basic", "");
    format!(
        r#"{plan}
[[price_book]]
effective = "2026-11-01"
currency = "USD"
[price_book.plans.basic]
monthly_fee = "310.00"
included_records = 4
overage_per_1000 = "1000.00"

[[price_book]]
effective = "2026-12-15"
currency = "USD"
[price_book.plans.basic]
monthly_fee = "620.00"
included_records = 4
overage_per_1000 = "2000.00"

[[licensee]]
name = "acme"
plan = "basic"
starts = "2026-12-04"
payment_terms_days = 10
grace_days = 5

[[licensee]]
name = "globex"
plan = "basic"
starts = "2027-01-01"
"#
    )
}

fn as_refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `datapact ARGS`, expected to fail: its standard error.
fn datapact_fails(data_dir: &Path, args: &[&str]) -> String {
    let output = datapact(data_dir, args);
    assert!(
        !output.status.success(),
        "datapact {args:?} should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn usage_is_invoiced_and_an_unpaid_invoice_suspends_until_paid() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    let applied = apply_terms(&data_dir, &billing_terms());
    assert!(applied.contains("price books"), "{applied}");
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2026-12-05T12:00:00Z"]);

    // December: 6 records on the 5th (4 included, 2 at the first book's overage), 8 on the 20th
    // (at the second book's overage).
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 6))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(6)), "{body}");
    set_clock(&gateway, &data_dir, "2026-12-20T12:00:00Z").await;
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(7, 8))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(8)), "{body}");

    // A month is invoiced once it is over.
    let early = datapact_fails(&data_dir, &["invoice", "run", "--month", "2026-12", "--now", "2026-12-31T23:00:00Z"]);
    assert!(early.contains("not over") && early.contains("2027-01-01"), "{early}");
    let bad_month = datapact_fails(&data_dir, &["invoice", "run", "--month", "2026-13"]);
    assert!(bad_month.contains("YYYY-MM"), "{bad_month}");

    let issued_at = "2027-01-02T09:00:00Z";
    let run = json_out(&data_dir, &["invoice", "run", "--month", "2026-12", "--json", "--now", issued_at]);
    let issued = run["issued"].as_array().unwrap();
    assert_eq!(issued.len(), 1, "{run}");
    let invoice = &issued[0];
    assert_eq!(invoice["number"], "DP-000001");
    assert_eq!(invoice["licensee"], "acme");
    assert_eq!(invoice["due"], "2027-01-12", "issued on the 2nd, 10 days to pay");
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["records"], 14);
    let lines = invoice["lines"].as_array().unwrap();
    let summary: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_owned();
            (s("first_day"), s("last_day"), s("kind"), s("amount"))
        })
        .collect();
    let expect = |a: &str, b: &str, k: &str, m: &str| (a.to_owned(), b.to_owned(), k.to_owned(), m.to_owned());
    assert_eq!(
        summary,
        [
            // 11 of 31 days at 310.00, then 17 of 31 days at 620.00: the term starts on the 4th.
            expect("2026-12-04", "2026-12-14", "base_fee", "110.00"),
            expect("2026-12-15", "2026-12-31", "base_fee", "340.00"),
            expect("2026-12-05", "2026-12-05", "included", "0.00"),
            // Priced by the book in force on each delivery day.
            expect("2026-12-05", "2026-12-05", "overage", "2.00"),
            expect("2026-12-20", "2026-12-20", "overage", "16.00"),
        ],
        "{invoice}"
    );
    let sum: i64 = lines.iter().map(|l| l["amount_minor"].as_i64().unwrap()).sum();
    assert_eq!(sum, invoice["total_minor"].as_i64().unwrap(), "lines sum to the total");
    assert_eq!(invoice["total"], "468.00");
    assert_eq!(lines[3]["records"], 2);
    assert_eq!(lines[4]["records"], 8);
    let not_billed = run["not_billed"].as_array().unwrap();
    assert_eq!(not_billed.len(), 1, "{run}");
    assert_eq!(not_billed[0]["licensee"], "globex");

    // The run is idempotent.
    let again =
        json_out(&data_dir, &["invoice", "run", "--month", "2026-12", "--json", "--now", "2027-01-03T00:00:00Z"]);
    assert_eq!(again["issued"], json!([]), "{again}");
    assert_eq!(again["existing"][0]["number"], "DP-000001");
    assert_eq!(again["existing"][0]["total"], "468.00");
    let text = datapact_ok(&data_dir, &["invoice", "run", "--month", "2026-12", "--now", "2027-01-03T00:00:00Z"]);
    assert!(text.contains("0 invoice(s) issued, 1 already issued"), "{text}");

    // The run's invoice reaches the gateway within a second (it polls the store's change counter);
    // once past the due date and the grace days, every request gets 402 naming the invoice.
    set_clock(&gateway, &data_dir, "2027-01-18T00:00:00Z").await;
    let owed = json_out(&data_dir, &["balance", "acme", "--json", "--now", "2027-01-18T00:00:00Z"]);
    assert_eq!(owed[0]["suspended_by"], json!(["DP-000001"]), "{owed}");
    assert_eq!(owed[0]["overdue"], "468.00", "{owed}");
    let suspended = eventually(Duration::from_secs(1), async || {
        gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 1)).await.0 == 402
    })
    .await;
    assert!(suspended.is_some(), "suspended within a second of the invoice run, once overdue past the grace days");
    // Served up to the last instant of the grace period; 402 from the next, before the rate limit
    // (the window is not consumed).
    set_clock(&gateway, &data_dir, "2027-01-17T23:59:59Z").await;
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 1)).await;
    assert_eq!(status, 200, "{body}");
    set_clock(&gateway, &data_dir, "2027-01-18T00:00:00Z").await;
    let (status, body, headers) = gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 1)).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["type"], PAYMENT_REQUIRED);
    assert_eq!(body["title"], "Payment Required");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("DP-000001") && detail.contains("468.00 USD"), "{detail}");
    assert_eq!(body["errors"][0]["invoice"], "DP-000001");
    assert_eq!(body["errors"][0]["outstanding"], "468.00");
    let remaining = headers.get("x-rate-limit-remaining").expect("rate headers on a 402").to_owned();
    let (status, _, headers) = gateway.get(&key, "/2/users/by/username/quiet_quinn").await;
    assert_eq!(status, 402);
    let (_, _, lookup_headers) = gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 2)).await;
    assert_eq!(lookup_headers.get("x-rate-limit-remaining"), Some(&remaining), "a 402 does not count");
    assert!(headers.get("x-rate-limit-limit").is_some());

    // A partial payment leaves it suspended, for what is left.
    let now = ["--now", "2027-01-18T00:00:00Z"];
    let pay = |amount: &str, reference: &str| {
        let mut args = vec!["payment", "record", "acme", amount, "--invoice", "DP-000001", "--reference", reference];
        args.extend_from_slice(&now);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let partial = datapact_ok(&data_dir, &as_refs(&pay("100.00", "wire-0")));
    assert!(partial.contains("368.00 USD outstanding") && partial.contains("still suspended"), "{partial}");
    let retry = datapact_ok(&data_dir, &as_refs(&pay("100.00", "wire-0")));
    assert!(retry.contains("already recorded"), "{retry}");
    let conflict = datapact_fails(&data_dir, &as_refs(&pay("50.00", "wire-0")));
    assert!(conflict.contains("wire-0") && conflict.contains("already used"), "{conflict}");
    let over = datapact_fails(&data_dir, &as_refs(&pay("400.00", "wire-9")));
    assert!(over.contains("368.00 USD outstanding"), "{over}");
    let malformed = datapact_fails(&data_dir, &as_refs(&pay("12.345", "wire-8")));
    assert!(malformed.contains("AMOUNT"), "{malformed}");
    let still = eventually(Duration::from_secs(2), async || {
        let (_, body, _) = gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 1)).await;
        body["detail"].as_str().is_some_and(|d| d.contains("368.00 USD"))
    })
    .await;
    assert!(still.is_some(), "the gateway sees the partial payment and still refuses");

    // Paying the rest lifts the suspension within a second.
    let paid = datapact_ok(&data_dir, &as_refs(&pay("368.00", "wire-1")));
    assert!(paid.contains("not suspended"), "{paid}");
    let served = eventually(Duration::from_secs(1), async || {
        gateway.get(&key, &format!("/2/tweets/{}", PROLIFIC_BASE + 1)).await.0 == 200
    })
    .await;
    assert!(served.is_some(), "served again within a second of the payment");

    // Outputs: show, list (JSON and CSV), balance, summary, payments, and the audit trail.
    let shown =
        json_out(&data_dir, &["invoice", "show", "DP-000001", "--format", "json", "--now", "2027-01-18T00:00:00Z"]);
    assert_eq!((shown["status"].as_str(), shown["paid"].as_str()), (Some("paid"), Some("468.00")));
    let listed = json_out(&data_dir, &["invoice", "list", "acme", "--month", "2026-12", "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let csv = datapact_ok(&data_dir, &["invoice", "list", "--format", "csv", "--now", "2027-01-18T00:00:00Z"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("number,licensee,month,plan,currency"), "{csv}");
    assert!(
        rows[1].starts_with("DP-000001,acme,2026-12,basic,USD,") && rows[1].contains(",paid,14,468.00,468.00,0.00,"),
        "{csv}"
    );
    let balance = json_out(&data_dir, &["balance", "acme", "--json", "--now", "2027-01-18T00:00:00Z"]);
    assert_eq!(balance[0]["invoiced"], "468.00", "{balance}");
    assert_eq!(balance[0]["paid"], "468.00");
    assert_eq!(balance[0]["outstanding"], "0.00");
    assert_eq!(balance[0]["suspended"], false);
    let before_payment = json_out(&data_dir, &["balance", "--json", "--now", "2027-01-17T12:00:00Z"]);
    assert_eq!(before_payment[0]["overdue"], "468.00", "payments received later are not counted earlier");
    let summary =
        json_out(&data_dir, &["billing", "summary", "--month", "2026-12", "--json", "--now", "2027-01-18T00:00:00Z"]);
    assert_eq!(summary["invoices"][0]["licensee"], "acme", "{summary}");
    assert_eq!(summary["totals"][0]["invoiced_minor"], 46_800);
    assert_eq!(summary["totals"][0]["paid_minor"], 46_800);
    assert_eq!(summary["totals"][0]["outstanding_minor"], 0);
    let payments = json_out(&data_dir, &["payment", "list", "acme", "--json"]);
    assert_eq!(payments.as_array().unwrap().len(), 2, "{payments}");
    let unknown = datapact_fails(&data_dir, &["invoice", "show", "DP-000042"]);
    assert!(unknown.contains("no invoice numbered"), "{unknown}");

    // (The gateway's own schedule also logs transitions as the test clock moves back and forth
    // around the suspension instant; `the_schedule_...` tests those. Here: what the commands logged.)
    let audit = json_out(&data_dir, &["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["actor"] != "gateway schedule")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let billing: Vec<&str> = actions
        .into_iter()
        .filter(|a| {
            a.starts_with("invoice.")
                || a.starts_with("payment.")
                || a.starts_with("licensee.s")
                || a.starts_with("licensee.r")
                || a.starts_with("price_book.")
        })
        .collect();
    assert_eq!(
        billing,
        [
            "price_book.put",
            "invoice.issue",
            "payment.record",
            // The partial payment's dunning check is the first to see the invoice overdue.
            "invoice.overdue",
            "licensee.suspended",
            "payment.record",
            "invoice.paid",
            "licensee.reinstated"
        ]
    );
    drop(gateway);
}

/// The licensees get 30 days' notice of a price change: a price book version dated sooner is
/// refused (and nothing is applied) unless forced; the first price books need no notice.
#[test]
fn a_price_change_needs_the_notice_period_unless_forced() {
    let (dir, _key) = seeded_data_dir();
    let data_dir = data(&dir);
    let books = |versions: &[(&str, &str)]| {
        let mut text = open_plan("basic", "");
        for (effective, fee) in versions {
            text.push_str(&format!(
                "\n[[price_book]]\neffective = \"{effective}\"\ncurrency = \"USD\"\n[price_book.plans.basic]\nmonthly_fee = \"{fee}\"\n"
            ));
        }
        text.push_str("\n[[licensee]]\nname = \"acme\"\nplan = \"basic\"\n");
        let file = dir.path().join(format!("terms-{}.toml", versions.last().map_or("none", |v| v.0)));
        std::fs::write(&file, text).unwrap();
        file
    };
    let now = ["--now", "2026-11-28T18:00:00Z"];
    let apply = |file: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<&str> = now.to_vec();
        args.extend(["apply", file.to_str().unwrap()]);
        args.extend(extra);
        datapact(&data_dir, &args)
    };
    // The first price books set prices where there were none: no notice needed.
    let first = books(&[("2026-12-01", "200.00")]);
    assert!(apply(&first, &[]).status.success());

    // A raise on 2026-12-28 is a day short of 30 days' notice (the earliest is 2026-12-29).
    let soon = books(&[("2026-12-01", "200.00"), ("2026-12-28", "260.00")]);
    let refused = apply(&soon, &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("30 days' notice") && stderr.contains("2026-12-29"), "{stderr}");
    assert!(stderr.contains("--force"), "the error says how to override: {stderr}");
    let shown = datapact_ok(&data_dir, &["terms", "show", "--json"]);
    assert!(!shown.contains("260.00"), "nothing was applied");

    // On time, or forced, it applies.
    let on_time = books(&[("2026-12-01", "200.00"), ("2026-12-29", "260.00")]);
    assert!(apply(&on_time, &[]).status.success(), "{}", String::from_utf8_lossy(&apply(&on_time, &[]).stderr));
    let forced = apply(&soon, &["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let said = String::from_utf8_lossy(&forced.stdout);
    assert!(said.contains("(forced)"), "{said}");
}

/// Nobody runs anything: the gateway's schedule issues last month's invoices once the month is
/// over, and logs the suspension when time passes the due date and grace days.
#[tokio::test]
async fn the_schedule_issues_last_months_invoices_and_logs_suspensions_by_itself() {
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &billing_terms());
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2026-12-05T12:00:00Z"]);
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 6))).await;
    assert_eq!(status, 200, "{body}");

    set_clock(&gateway, &data_dir, "2027-01-02T00:00:00Z").await;
    let issued = eventually(Duration::from_secs(10), async || {
        let list = json_out(&data_dir, &["invoice", "list", "--format", "json"]);
        list.as_array()
            .is_some_and(|invoices| invoices.iter().any(|i| i["licensee"] == "acme" && i["month"] == "2026-12"))
    })
    .await;
    assert!(issued.is_some(), "the schedule issued December's invoice once December was over");
    let audit = json_out(&data_dir, &["audit", "--json"]);
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["action"] == "invoice.issue" && e["actor"] == "gateway schedule"),
        "{audit:#}"
    );

    // Due on the 12th, 5 days of grace: suspended from the 18th, and logged without any command.
    set_clock(&gateway, &data_dir, "2027-01-18T00:00:00Z").await;
    let logged = eventually(Duration::from_secs(10), async || {
        let audit = json_out(&data_dir, &["audit", "--json"]);
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "licensee.suspended" && e["actor"] == "gateway schedule")
    })
    .await;
    assert!(logged.is_some(), "the schedule logged the suspension");
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 1))).await;
    assert_eq!(status, 402);

    // The admin API shows the same invoices, with their status now, and runs the same idempotent run.
    let admin = |method: reqwest::Method, path: &str| {
        gateway
            .http
            .request(method, format!("{}{path}", gateway.admin))
            .bearer_auth(Gateway::admin_token(&data_dir))
            .send()
    };
    let listed = admin(reqwest::Method::GET, "/admin/invoices?licensee=acme&month=2026-12").await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let invoices = listed["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{listed}");
    assert_eq!(invoices[0]["status"], "overdue");
    assert_eq!(invoices[0]["outstanding_minor"], invoices[0]["total_minor"], "{listed}");
    let number = invoices[0]["number"].as_str().unwrap().to_owned();
    // The same invoice as a printable page and as CSV lines; the month's summary; unknown formats refused.
    let page = admin(reqwest::Method::GET, &format!("/admin/invoices/{number}?format=html")).await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let page = page.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains(&number));
    assert!(page.contains(">overdue<") && !page.contains("<script") && !page.contains("http"), "self-contained");
    let csv = admin(reqwest::Method::GET, &format!("/admin/invoices/{number}?format=csv")).await.unwrap();
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("invoice,first_day,") && csv.contains(",base_fee,"), "{csv}");
    let bad = admin(reqwest::Method::GET, &format!("/admin/invoices/{number}?format=pdf")).await.unwrap();
    assert_eq!(bad.status(), 400);
    let summary: Value =
        admin(reqwest::Method::GET, "/admin/billing/summary?month=2026-12").await.unwrap().json().await.unwrap();
    assert_eq!(summary["totals"][0]["overdue_minor"], invoices[0]["outstanding_minor"], "{summary}");
    assert_eq!(
        summary,
        json_out(&data_dir, &["--now", "2027-01-18T00:00:00Z", "billing", "summary", "--month", "2026-12", "--json"])
    );
    let run = admin(reqwest::Method::POST, "/admin/invoices/run?month=2026-12").await.unwrap();
    assert_eq!(run.status(), 200);
    let run: Value = run.json().await.unwrap();
    assert_eq!((run["issued"].as_array().unwrap().len(), run["existing"].as_array().unwrap().len()), (0, 1), "{run}");
    let bad = admin(reqwest::Method::GET, "/admin/invoices?month=2026-13").await.unwrap();
    assert_eq!(bad.status(), 400);
    drop(gateway);
}

/// A pay-per-use plan: 5 records a month included, then 0.01 USD a record from a prepaid credit;
/// the fee is 10.00 a month. `globex` is on a plan billed in arrears.
fn prepaid_terms() -> String {
    let payg = open_plan("payg", "prepaid = true\ndedup = \"none\"");
    let basic = open_plan("basic", "");
    format!(
        r#"{payg}{basic}
[[price_book]]
effective = "2026-11-01"
currency = "USD"
[price_book.plans.payg]
monthly_fee = "10.00"
included_records = 5
per_record = "0.01"
[price_book.plans.basic]
monthly_fee = "100.00"

[[licensee]]
name = "acme"
plan = "payg"

[[licensee]]
name = "globex"
plan = "basic"
"#
    )
}

/// Requests until one is not refused with 402 (a credit reaches the gateway within a poll).
async fn served_again(gateway: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body, _) = gateway.get(key, path).await;
        if status != 402 || std::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_prepaid_credit_pays_for_exactly_what_it_covers_and_402s_when_spent() {
    const CREDITS_DEPLETED: &str = "https://api.twitter.com/2/problems/credits-depleted";
    let (dir, key) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &prepaid_terms());
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2026-12-05T12:00:00Z"]);

    // The included records need no credit; the sixth does.
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 3))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(3)), "{body}");
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 4))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(2)), "cut at the credit: {body}");
    let (status, body, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 1))).await;
    assert_eq!(
        (status, body["type"].as_str(), body["title"].as_str()),
        (402, Some(CREDITS_DEPLETED), Some("CreditsDepleted")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("0.00 USD left") && detail.contains("0.01 USD"), "{detail}");

    // Credit for 50 records, then 16 clients asking for 10 records each at once: exactly 50 are
    // delivered, never one more, and the credit ends at zero.
    let added = json_out(&data_dir, &["credit", "add", "acme", "0.50", "--reference", "wire-1", "--json"]);
    assert_eq!((added["new"].as_bool(), added["balance"]["balance_micro"].as_i64()), (Some(true), Some(500_000)));
    let (status, _) = served_again(&gateway, &key, &format!("/2/tweets?ids={}", ids(1, 2))).await;
    assert_eq!(status, 200);
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..16 {
        let (http, key) = (gateway.http.clone(), key.clone());
        let url = format!("{}/2/tweets?ids={}", gateway.public, ids(1 + 10 * n, 10));
        clients.spawn(async move {
            let response = http.get(url).bearer_auth(key).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        });
    }
    let answers = clients.join_all().await;
    let delivered: usize = answers.iter().map(|(_, body)| body["data"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(delivered, 48, "2 of the 50 paid records went to the request above");
    for (status, body) in &answers {
        assert!(*status == 200 || (*status == 402 && body["type"] == CREDITS_DEPLETED), "{status} {body}");
    }
    let balance = json_out(&data_dir, &["credit", "balance", "acme", "--json"]);
    assert_eq!(
        (
            balance[0]["credited_micro"].as_i64(),
            balance[0]["charged_micro"].as_i64(),
            balance[0]["balance_micro"].as_i64()
        ),
        (Some(500_000), Some(500_000), Some(0)),
        "{balance}"
    );
    let (status, _, _) = gateway.get(&key, &format!("/2/tweets?ids={}", ids(1, 1))).await;
    assert_eq!(status, 402);
    // Each 402 for a spent credit is a violation on the licensee's record, like every refusal.
    let recorded = eventually(Duration::from_secs(5), async || {
        let violations = json_out(&data_dir, &["violations", "acme", "--json"]);
        violations.as_array().is_some_and(|v| v.iter().any(|v| v["kind"] == "credits_depleted"))
    })
    .await;
    assert!(recorded.is_some(), "{}", datapact_ok(&data_dir, &["violations", "acme"]));

    // The same credit recorded twice counts once; the same reference for another amount is refused.
    let again = json_out(&data_dir, &["credit", "add", "acme", "0.50", "--reference", "wire-1", "--json"]);
    assert_eq!((again["new"].as_bool(), again["balance"]["credited_micro"].as_i64()), (Some(false), Some(500_000)));
    let conflict = datapact_fails(&data_dir, &["credit", "add", "acme", "0.70", "--reference", "wire-1"]);
    assert!(conflict.contains("wire-1") && conflict.contains("already used"), "{conflict}");
    let arrears = datapact_fails(&data_dir, &["credit", "add", "globex", "5.00", "--reference", "x"]);
    assert!(arrears.contains("billed in arrears"), "{arrears}");
    let too_fine = datapact_fails(&data_dir, &["credit", "add", "acme", "0.005", "--reference", "y"]);
    assert!(too_fine.contains("USD"), "{too_fine}");

    // More credit: served again within a second, cut at what it pays for (no next page promised).
    json_out(&data_dir, &["credit", "add", "acme", "0.05", "--reference", "wire-2", "--json"]);
    let (status, body) = served_again(&gateway, &key, &format!("/2/tweets?ids={}", ids(200, 10))).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(5)), "{body}");

    // The ledger holds every charge, sealed: it verifies.
    let verify = datapact_ok(&data_dir, &["ledger", "verify"]);
    assert!(verify.starts_with("ledger verifies"), "{verify}");

    // The admin API shows the same balances and adds credit by the same rules.
    let admin = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let request = gateway.http.request(method, format!("{}{path}", gateway.admin));
        let request = request.bearer_auth(Gateway::admin_token(&data_dir));
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    };
    let listed: Value = admin(reqwest::Method::GET, "/admin/credits", None).await.unwrap().json().await.unwrap();
    assert_eq!(listed["balances"], json_out(&data_dir, &["credit", "balance", "--json"]), "{listed}");
    let refused = admin(
        reqwest::Method::POST,
        "/admin/credits",
        Some(json!({ "licensee": "globex", "amount": "1.00", "reference": "r" })),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 409);
    let bad = json!({ "licensee": "acme", "amount": "1.005", "reference": "r" });
    assert_eq!(admin(reqwest::Method::POST, "/admin/credits", Some(bad)).await.unwrap().status(), 400);
    let good = json!({ "licensee": "acme", "amount": "0.01", "reference": "api-1" });
    let added = admin(reqwest::Method::POST, "/admin/credits", Some(good)).await.unwrap();
    assert_eq!(added.status(), 201);
    let (status, _) = served_again(&gateway, &key, &format!("/2/tweets?ids={}", ids(220, 1))).await;
    assert_eq!(status, 200, "the credit added through the API pays for one more record");
    drop(gateway);

    // The invoice bills the fee and shows the prepaid records at their price, for nothing: they
    // were paid from the credit when delivered.
    let run = json_out(&data_dir, &["invoice", "run", "--month", "2026-12", "--json", "--now", "2027-01-02T09:00:00Z"]);
    let acme = run["issued"].as_array().unwrap().iter().find(|i| i["licensee"] == "acme").expect("acme invoiced");
    let lines: Vec<(&str, u64, &str)> = acme["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["records"].as_u64().unwrap(), l["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("base_fee", 0, "10.00"), ("included", 5, "0.00"), ("prepaid", 56, "0.00")], "{acme}");
    assert_eq!(acme["total"], "10.00");
}

/// Corrections without editing an invoice: a credit note from the CLI and one through the admin
/// API settle December's invoice; an invoice issued in error is voided, and one with anything
/// settled on it is not.
#[tokio::test]
async fn invoices_are_corrected_by_credit_notes_and_voided_from_the_cli_and_the_admin_api() {
    let (dir, _key) = seeded_data_dir();
    let data_dir = data(&dir);
    apply_terms(&data_dir, &billing_terms());
    json_out(&data_dir, &["invoice", "run", "--month", "2026-12", "--json", "--now", "2027-01-02T09:00:00Z"]);
    let now = ["--now", "2027-01-03T09:00:00Z"];
    let with_now = |args: &[&str]| -> Vec<String> { now.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |args: &[&str]| json_out(&data_dir, &as_refs(&with_now(args)));
    // December: acme's fee for 28 days of its term, 450.00, nothing used.
    let noted = run(&["invoice", "credit-note", "DP-000001", "50.00", "--reason", "goodwill", "--json"]);
    assert_eq!(noted["credit_note"]["number"], "CN-000001");
    assert_eq!(
        (noted["invoice"]["credited"].as_str(), noted["invoice"]["outstanding"].as_str()),
        (Some("50.00"), Some("400.00"))
    );
    let refused = datapact_fails(&data_dir, &as_refs(&with_now(&["invoice", "void", "DP-000001", "--reason", "x"])));
    assert!(refused.contains("credit note"), "{refused}");
    let too_much = datapact_fails(
        &data_dir,
        &as_refs(&with_now(&["invoice", "credit-note", "DP-000001", "400.01", "--reason", "x"])),
    );
    assert!(too_much.contains("400.00 USD outstanding"), "{too_much}");

    let gateway = Gateway::start(&data_dir, &["--test-clock", "2027-01-03T10:00:00Z"]);
    let admin = |path: &str, body: Value| {
        gateway
            .http
            .post(format!("{}{path}", gateway.admin))
            .bearer_auth(Gateway::admin_token(&data_dir))
            .json(&body)
            .send()
    };
    let settled = admin("/admin/invoices/DP-000001/credit-notes", json!({ "amount": "400.00", "reason": "waived" }));
    let settled = settled.await.unwrap();
    assert_eq!(settled.status(), 201);
    let settled: Value = settled.json().await.unwrap();
    assert_eq!(
        (settled["credit_note"]["number"].as_str(), settled["invoice"]["status"].as_str()),
        (Some("CN-000002"), Some("paid"))
    );
    let bad =
        admin("/admin/invoices/DP-000001/credit-notes", json!({ "amount": "1.005", "reason": "x" })).await.unwrap();
    assert_eq!(bad.status(), 400);
    let missing = admin("/admin/invoices/DP-000404/void", json!({ "reason": "x" })).await.unwrap();
    assert_eq!(missing.status(), 404);
    drop(gateway);

    // January: globex's first invoice, issued in error, is voided; the audit log says so.
    json_out(&data_dir, &["invoice", "run", "--month", "2027-01", "--json", "--now", "2027-02-02T09:00:00Z"]);
    let list = json_out(&data_dir, &["invoice", "list", "globex", "--format", "json"]);
    let number = list[0]["number"].as_str().unwrap().to_owned();
    let gateway = Gateway::start(&data_dir, &["--test-clock", "2027-02-03T10:00:00Z"]);
    let voided = gateway
        .http
        .post(format!("{}/admin/invoices/{number}/void", gateway.admin))
        .bearer_auth(Gateway::admin_token(&data_dir))
        .json(&json!({ "reason": "issued in error" }))
        .send()
        .await
        .unwrap();
    assert_eq!(voided.status(), 200);
    assert_eq!(voided.json::<Value>().await.unwrap()["status"], "void");
    drop(gateway);
    let notes = json_out(&data_dir, &["invoice", "credit-notes", "acme", "--json"]);
    assert_eq!(notes.as_array().map(Vec::len), Some(2));
    let audit = json_out(&data_dir, &["audit", "--json"]);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"invoice.void") && actions.contains(&"credit_note.issue"), "{actions:?}");
}

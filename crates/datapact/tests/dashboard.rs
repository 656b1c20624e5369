//! The admin dashboard end to end (issue 12): a real `datapact serve --demo`, a viewer and an
//! operator made with `datapact admin-user add`, and `tests/e2e/dashboard.mjs` driving Debian's
//! headless Chromium through playwright-core: log in, see the demo licensees, block one and see
//! its next request refused, revoke a key, upload a leak and see the accused licensee, a viewer
//! refused, no console errors, axe-core finding no serious accessibility violation. Screenshots
//! and axe reports are kept in `target/tmp/e2e-artifacts/dashboard` (the path is printed).
//!
//! Needs `node`, `tests/e2e/node_modules` (`npm ci` there) and `/usr/bin/chromium`: without them
//! the test prints `skipped:` and passes, except under `CI=true`, where it fails (`.ci/run`
//! installs them).
//!
//! `changes_over_http_on_both_stores` needs no browser: on SQLite (behind TLS, so the cookie is
//! `Secure`) and on PostgreSQL, a block made in the dashboard is refused without the CSRF token
//! and to a viewer, made by an operator, refuses the licensee's next request and is audited under
//! the operator's name.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{BIN, Gateway, OPEN_TERMS, corpus_lines, datapact_ok, pg_schema, write_lines};

const PASSWORD: &str = "e2e-password-0123";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    if !e2e_dir().join("node_modules/playwright-core").is_dir() || !e2e_dir().join("node_modules/axe-core").is_dir() {
        return Some(format!("no node_modules in {} (run `npm ci` there)", e2e_dir().display()));
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    None
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn add_user(data_dir: &Path, name: &str, role: &str) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["admin-user", "add", name, "--role", role, "--password-stdin"])
        .env_remove("DATAPACT_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "admin-user add {name}: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_dashboard_in_headless_chromium() {
    if let Some(why) = missing() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("the dashboard's end-to-end test must run in CI (CI=true): {why}");
        }
        let line = format!("skipped: the dashboard end-to-end test: {why}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--drain-secs", "2"])
        .env_remove("DATAPACT_ADMIN_TOKEN")
        .env_remove("DATAPACT_STORE")
        .env("DATAPACT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn datapact serve --demo");
    let stdout = child.stdout.take().unwrap();
    let serving = Serving(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut keys = HashMap::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() == 2 && words[1].starts_with("dpk_") {
                keys.insert(words[0].to_owned(), words[1].to_owned());
            }
            if line.starts_with("datapact listening ") {
                let _ = sender.send((line.clone(), keys.clone()));
            }
        }
    });
    let (line, keys) = receiver.recv_timeout(Duration::from_secs(180)).expect("the demo gateway did not start");
    let field =
        |name: &str| line.split_whitespace().find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap().to_owned();
    add_user(&data_dir, "olga", "operator");
    add_user(&data_dir, "vic", "viewer");

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-artifacts/dashboard");
    let _ = std::fs::remove_dir_all(&artifacts);
    eprintln!("dashboard end-to-end artifacts (screenshots, axe reports): {}", artifacts.display());
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(e2e_dir())
        .env("DASH_URL", field("admin"))
        .env("API_URL", field("licensee"))
        .env("KEY_NIMBUS", &keys["nimbus"])
        .env("KEY_ORCHID", &keys["orchid"])
        .env("KEY_ACME", &keys["acme"])
        .env("OPERATOR", "olga")
        .env("VIEWER", "vic")
        .env("PASSWORD", PASSWORD)
        .env("ARTIFACTS", &artifacts)
        .output()
        .expect("run node");
    drop(serving);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(output.status.success(), "the dashboard's end-to-end run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(artifacts.join("trace-verdict.png").is_file(), "screenshots are kept");
}

/// Logs in through the form; returns the session cookie (`name=value`) and the whole `Set-Cookie`.
async fn login(http: &reqwest::Client, admin: &str, user: &str) -> (String, String) {
    // The login page first, as a browser: its cookie and the same nonce in its form.
    let page = http.get(format!("{admin}/dashboard/login")).send().await.unwrap();
    let login_cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let text = page.text().await.unwrap();
    let nonce = text.split("name=\"login_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let response = http
        .post(format!("{admin}/dashboard/login"))
        .header("cookie", login_cookie)
        .form(&[("user", user), ("password", PASSWORD), ("login_csrf", &nonce)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "login as {user}");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    (set_cookie.split(';').next().unwrap().to_owned(), set_cookie)
}

/// The session's CSRF token, from a page's form.
async fn csrf(http: &reqwest::Client, admin: &str, cookie: &str) -> String {
    let page =
        http.get(format!("{admin}/dashboard")).header("cookie", cookie).send().await.unwrap().text().await.unwrap();
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with the CSRF token")
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

async fn changes_over_http(postgres: bool) {
    let schema = if postgres {
        match pg_schema() {
            Some(schema) => Some(schema),
            None => return,
        }
    } else {
        None
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store: Vec<String> = schema.as_ref().map(|s| vec!["--store".to_owned(), s.url.clone()]).unwrap_or_default();
    let run = |args: &[&str]| {
        let all: Vec<&str> = store.iter().map(String::as_str).chain(args.iter().copied()).collect();
        datapact_ok(&data, &all)
    };
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    run(&["ingest", "--quiet", corpus.to_str().unwrap()]);
    let terms = dir.path().join("terms.toml");
    std::fs::write(&terms, OPEN_TERMS).unwrap();
    run(&["apply", terms.to_str().unwrap()]);
    let key = run(&["key", "issue", "acme"]).trim().to_owned();
    let mut extra: Vec<String> = store.clone();
    if !postgres {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (cert, private) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&private, certified.key_pair.serialize_pem()).unwrap();
        extra.extend([
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            private.display().to_string(),
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let gateway = Gateway::start(&data, &extra);
    let with_store = |mut args: Vec<String>| -> Vec<String> {
        let mut all = store.clone();
        all.append(&mut args);
        all
    };
    for (name, role) in [("olga", "operator"), ("vic", "viewer")] {
        let args = with_store(vec![
            "admin-user".into(),
            "add".into(),
            name.into(),
            "--role".into(),
            role.into(),
            "--password-stdin".into(),
        ]);
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .env_remove("DATAPACT_STORE")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let admin = gateway.admin.clone();
    let (olga, set_cookie) = login(&http, &admin, "olga").await;
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert_eq!(set_cookie.contains("; Secure"), !postgres, "Secure exactly behind TLS: {set_cookie}");
    let olga_csrf = csrf(&http, &admin, &olga).await;
    let (vic, _) = login(&http, &admin, "vic").await;
    let vic_csrf = csrf(&http, &admin, &vic).await;
    assert_eq!(gateway.get(&key, "/2/usage/tweets").await.0, 200);

    let block = |cookie: &str, form: Vec<(&'static str, String)>| {
        http.post(format!("{admin}/dashboard/licensees/acme/block"))
            .header("cookie", cookie.to_owned())
            .form(&form)
            .send()
    };
    let reason = ("reason", "leaked a dump".to_owned());
    // No CSRF token, another session's token, a viewer's own: each a 403 page, nothing changed.
    for (cookie, form) in [
        (&olga, vec![reason.clone()]),
        (&olga, vec![reason.clone(), ("csrf", vic_csrf.clone())]),
        (&vic, vec![reason.clone(), ("csrf", vic_csrf.clone())]),
    ] {
        let response = block(cookie, form).await.unwrap();
        assert_eq!(response.status(), 403);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    assert_eq!(gateway.get(&key, "/2/usage/tweets").await.0, 200, "still served");
    let response = block(&olga, vec![reason.clone(), ("csrf", olga_csrf.clone())]).await.unwrap();
    assert_eq!(response.status(), 303);
    let mut refused = false;
    for _ in 0..50 {
        if gateway.get(&key, "/2/usage/tweets").await.0 == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the block reaches the gateway within 5 s");
    let audit: serde_json::Value = serde_json::from_str(&run(&["audit", "--json"])).unwrap();
    let entries = audit.as_array().or_else(|| audit["entries"].as_array()).unwrap().clone();
    assert!(
        entries.iter().any(|e| e["action"] == "licensee.block" && e["actor"] == "olga" && e["subject"] == "acme"),
        "{audit}"
    );
    assert!(entries.iter().any(|e| e["action"] == "dashboard.login" && e["actor"] == "vic"), "{audit}");
}

#[tokio::test]
async fn changes_over_http_on_both_stores() {
    changes_over_http(false).await;
    changes_over_http(true).await;
}

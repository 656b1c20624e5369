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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_datapact");
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

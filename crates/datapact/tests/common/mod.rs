//! Test harness: a real `datapact` process on ephemeral ports, and a small known corpus.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_datapact");

/// The author with many posts, for pagination walks.
pub const PROLIFIC_AUTHOR: i64 = 1001;
pub const PROLIFIC_POSTS: i64 = 250;
pub const QUIET_AUTHOR: i64 = 1002;
/// Post ids are `base + n`; the prolific author's run from `PROLIFIC_BASE + 1`.
pub const PROLIFIC_BASE: i64 = 1_800_000_000_000_000_000;
pub const QUIET_POST: i64 = 1_700_000_000_000_000_001;
/// Time of the prolific author's post n: one minute apart from 2024-01-01.
pub const EPOCH_MS: i64 = 1_704_067_200_000;

pub fn datapact(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("DATAPACT_ADMIN_TOKEN")
        .env_remove("DATAPACT_STORE")
        .output()
        .expect("run datapact")
}

pub fn datapact_ok(data_dir: &Path, args: &[&str]) -> String {
    let output = datapact(data_dir, args);
    assert!(
        output.status.success(),
        "datapact {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The corpus every test starts from: a prolific author (250 posts), a quiet one (1 post).
pub fn corpus_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for n in 1..=PROLIFIC_POSTS {
        let mut post = serde_json::json!({
            "id": (PROLIFIC_BASE + n).to_string(),
            "text": format!("Post number {n} by the prolific author, l’été “quoted” …"),
            "author_id": PROLIFIC_AUTHOR.to_string(),
            "created_at": time(EPOCH_MS + n * 60_000),
            "lang": if n % 2 == 0 { "en" } else { "fr" },
            "public_metrics": {"retweet_count": n, "reply_count": 1, "like_count": 2 * n, "quote_count": 0, "bookmark_count": 0, "impression_count": 100 * n}
        });
        if n == 1 {
            post["author"] = serde_json::json!({"id": PROLIFIC_AUTHOR.to_string(), "username": "Prolific_Pat", "name": "Pat Prolific", "created_at": "2019-05-01T10:00:00.000Z", "description": "writes a lot"});
        }
        lines.push(post.to_string());
    }
    lines.push(
        serde_json::json!({
            "data": {"id": QUIET_POST.to_string(), "text": "The only post of a quiet author", "author_id": QUIET_AUTHOR.to_string(), "created_at": "2023-11-14T22:13:20.000Z", "lang": "en", "referenced_tweets": [{"type": "quoted", "id": (PROLIFIC_BASE + 1).to_string()}]},
            "includes": {"users": [{"id": QUIET_AUTHOR.to_string(), "username": "quiet_quinn", "name": "Quinn", "created_at": "2020-01-01T00:00:00.000Z"}]}
        })
        .to_string(),
    );
    lines
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut file = std::fs::File::create(path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// A `[[plan]]` named `name` allowing every endpoint and purpose with rate limits no test reaches,
/// plus `lines` (caps, dedup, fingerprint settings...).
pub fn open_plan(name: &str, lines: &str) -> String {
    format!(
        r#"
[[plan]]
name = "{name}"
rate_limits = {{ search = "100000/15m", lookup = "100000/15m", timeline = "100000/15m", users = "100000/15m", stream = "100000/15m", usage = "100000/15m" }}
endpoints = ["search", "lookup", "timeline", "users", "stream", "usage"]
purposes = ["all"]
{lines}
"#
    )
}

/// Terms that let `acme` do anything, with limits no test reaches unless it means to.
pub const OPEN_TERMS: &str = r#"
[[plan]]
name = "open"
rate_limits = { search = "100000/15m", lookup = "100000/15m", timeline = "100000/15m", users = "100000/15m", stream = "100000/15m", usage = "100000/15m" }
endpoints = ["search", "lookup", "timeline", "users", "stream", "usage"]
purposes = ["all"]

[[licensee]]
name = "acme"
plan = "open"
"#;

/// Applies `terms` (TOML text) to `data_dir` through the CLI.
pub fn apply_terms(data_dir: &Path, terms: &str) -> String {
    let file = data_dir.with_extension(format!("terms-{}.toml", std::process::id()));
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(&file, terms).unwrap();
    datapact_ok(data_dir, &["apply", file.to_str().unwrap()])
}

/// A data dir holding the standard corpus and one licensee `acme` under [`OPEN_TERMS`];
/// returns (dir, acme's key).
pub fn seeded_data_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_lines(&corpus, &corpus_lines());
    let data = dir.path().join("data");
    datapact_ok(&data, &["ingest", "--quiet", corpus.to_str().unwrap()]);
    apply_terms(&data, OPEN_TERMS);
    let key = datapact_ok(&data, &["key", "issue", "acme"]).trim().to_owned();
    (dir, key)
}

pub fn data(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

/// A running gateway; stopped with SIGTERM when dropped.
pub struct Gateway {
    pub child: Child,
    pub public: String,
    pub admin: String,
    pub http: reqwest::Client,
}

impl Gateway {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Gateway {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--drain-secs", "5"])
            .args(extra)
            .env_remove("DATAPACT_ADMIN_TOKEN")
            .env_remove("DATAPACT_STORE")
            .env("DATAPACT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn datapact serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("datapact listening ") {
                    let _ = sender.send(line.clone());
                }
            }
        });
        let line = receiver.recv_timeout(Duration::from_secs(60)).expect("gateway did not start");
        let field = |name: &str| {
            line.split_whitespace().find_map(|part| part.strip_prefix(&format!("{name}="))).unwrap().to_owned()
        };
        let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        Gateway { child, public: field("licensee"), admin: field("admin"), http }
    }

    pub async fn get(&self, key: &str, path_and_query: &str) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let response = self.http.get(format!("{}{path_and_query}", self.public)).bearer_auth(key).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body, headers)
    }

    pub fn admin_token(data_dir: &Path) -> String {
        std::fs::read_to_string(data_dir.join("admin-token")).unwrap().trim().to_owned()
    }

    /// SIGKILL (a crash: no drain, no cleanup), then the exit status.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        self.child.kill().expect("SIGKILL the gateway");
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = terminate(&mut self.child);
        std::mem::forget(self);
        status
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    unsafe_kill(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Starts `serve` and expects it to stop by itself (refused) within 20 s: its status and stderr.
pub fn refused_to_serve(data_dir: &std::path::Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("DATAPACT_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a gateway that should have been refused kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// Polls `check` until it is true or `limit` passes; returns how long it took.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Moves a gateway's test clock (`--test-clock`) to `now` (RFC 3339).
pub async fn set_clock(gateway: &Gateway, data_dir: &Path, now: &str) {
    let response = gateway
        .http
        .post(format!("{}/admin/test/clock", gateway.admin))
        .bearer_auth(Gateway::admin_token(data_dir))
        .json(&serde_json::json!({ "now": now }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `ids=` for `count` of the prolific author's posts from post `first` (1-based), wrapping.
pub fn ids(first: i64, count: i64) -> String {
    (0..count).map(|n| (PROLIFIC_BASE + 1 + (first - 1 + n) % PROLIFIC_POSTS).to_string()).collect::<Vec<_>>().join(",")
}

/// `datapact ARGS --json`'s output, parsed.
pub fn json_out(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = datapact_ok(data_dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("datapact {args:?} is not JSON ({e}): {out}"))
}

/// A PostgreSQL schema of a test's own in the test server (`DATAPACT_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`), dropped with everything in it when this is dropped.
/// `url` selects it (`search_path`).
pub struct PgSchema {
    pub url: String,
    server: String,
    name: String,
}

fn psql(server: &str, statement: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args([server, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()) }
}

/// A fresh schema, or `None` after a `SKIPPED:` line when no PostgreSQL answers — except under
/// `CI=true`, where that fails the test: CI must run every store.
pub fn pg_schema() -> Option<PgSchema> {
    let server =
        std::env::var("DATAPACT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("dp_e2e_{}_{n}_{nanos}", std::process::id());
    if let Err(why) = psql(&server, &format!("CREATE SCHEMA {name}")) {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("PostgreSQL is required in CI (CI=true) and is not usable at {server}: {why}");
        }
        let line = format!("SKIPPED: PostgreSQL not reachable at {server} (set DATAPACT_TEST_POSTGRES): {why}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        return None;
    }
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-csearch_path%3D{name}");
    Some(PgSchema { url, server, name })
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A PostgreSQL server of a test's own (initdb + pg_ctl from Debian's PostgreSQL, run as the
/// `postgres` user when the tests run as root, since initdb refuses root) on a free port, so a
/// test can stop and start it without touching the machine's shared server. Stopped when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    /// Starts one, or `None` after a `SKIPPED:` line when this machine cannot (no PostgreSQL
    /// binaries) — except under `CI=true`, where that fails the test.
    pub fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path().join("bin")).max())
            .filter(|bin| bin.join("initdb").exists());
        let Some(bin) = bin else {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("PostgreSQL's server binaries (initdb, pg_ctl) are required in CI: install postgresql");
            }
            let _ = std::io::stderr().write_all(b"SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql\n");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let server = PrivatePostgres { dir, bin, port };
        if as_root() {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(server.dir.path()).status();
        }
        server.run("initdb", &["-D", &server.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        server.pg_ctl("start");
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("cluster").to_str().unwrap().to_owned()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// `pg_ctl start` (waiting until it accepts connections) or `stop` (fast: connections cut).
    pub fn pg_ctl(&self, action: &str) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let data = self.data();
        match action {
            "start" => self.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &format!("{data}.log"), "-w", "start"]),
            _ => self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]),
        }
    }
}

fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut command = if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// Deliveries metered and committed straight through a ledger, without a gateway: how the
/// trace, deletion-proof and report tests give licensees copies at chosen instants.
pub struct DirectDelivery<'a> {
    pub licensee: i64,
    /// `(post id, revision)`.
    pub posts: &'a [(i64, u32)],
    pub at: datapact_core::Timestamp,
    pub cap: datapact_ledger::Cap,
    /// Posts per response (one usage event each).
    pub page_size: usize,
    pub endpoint: datapact_core::Endpoint,
    /// Canaries delivered with the first response.
    pub canaries: &'a [i64],
}

/// Commits `delivery`'s responses, as request ids `r-{licensee}-{at}-{page}`.
pub async fn deliver_directly(ledger: &datapact_store::ledger::Ledger, delivery: DirectDelivery<'_>) {
    use datapact_store::ledger::{EventFacts, MeterRequest, Reserved};
    let DirectDelivery { licensee, posts, at, cap, page_size, endpoint, canaries } = delivery;
    for (i, page) in posts.chunks(page_size).enumerate() {
        let request_id = format!("r-{licensee}-{}-{i}", at.0);
        let request = MeterRequest {
            licensee_id: licensee,
            request_id: &request_id,
            cap,
            dedup: datapact_ledger::Dedup::None,
            page,
            at,
            prepaid: None,
        };
        let Reserved::Serve(reservation) = ledger.reserve(request).await.unwrap() else { panic!("refused") };
        let facts = EventFacts {
            key_prefix: datapact_core::KeyPrefix("dp_0123456789ab".into()),
            endpoint,
            purpose: datapact_core::purpose::Purpose::AiInput,
            request_id: request_id.clone(),
            idempotency_key: None,
            user_reads: 0,
            bytes: 1,
        };
        let canaries = if i == 0 { canaries } else { &[] };
        reservation.commit_with_canaries(facts, canaries, None).await.unwrap();
    }
}

//! Ingest baseline for `bench/run.sh`: a plain SQLite bulk insert of the same rows
//! `datapact ingest` stores, with nothing datapact adds (no secondary indexes, no foreign keys,
//! no revision history, no per-row existence check).
//!
//! It reads the same JSON Lines file, parses each line with serde_json into a `Value`, and inserts
//! each post (id, author_id, text, created_at, lang, conversation_id, in_reply_to_user_id,
//! referenced posts JSON, edit history JSON, the six public_metrics counts) and each author
//! (once, the first time it appears) into tables with no index besides the rowid; WAL and
//! `synchronous=FULL` like the store; one transaction per 2,000 rows, the batch size datapact uses.
//!
//! ```text
//! cargo run --release -p datapact-store --example bulk_insert_baseline -- CORPUS.jsonl OUT.db
//! ```
//!
//! Prints one line: `baseline inserted N rows (A authors) in S s (R rows/s)`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::Instant;

use datapact_core::Timestamp;
use rusqlite::{Connection, params};
use serde_json::Value;

/// The batch size `datapact ingest` uses (`datapact_store::ops::INGEST_BATCH`).
const BATCH: usize = datapact_store::ops::INGEST_BATCH;

const SCHEMA: &str = "
CREATE TABLE authors (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    description TEXT NOT NULL,
    location    TEXT,
    verified    INTEGER NOT NULL,
    protected   INTEGER NOT NULL
) STRICT;
CREATE TABLE posts (
    id                  INTEGER PRIMARY KEY,
    author_id           INTEGER NOT NULL,
    text                TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    lang                TEXT,
    conversation_id     INTEGER NOT NULL,
    in_reply_to_user_id INTEGER,
    referenced_posts    TEXT,
    edit_history        TEXT NOT NULL,
    retweet_count       INTEGER NOT NULL,
    reply_count         INTEGER NOT NULL,
    like_count          INTEGER NOT NULL,
    quote_count         INTEGER NOT NULL,
    bookmark_count      INTEGER NOT NULL,
    impression_count    INTEGER NOT NULL
) STRICT;
";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn id(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn time(value: &Value) -> Result<i64> {
    let text = value.as_str().ok_or("created_at is not a string")?;
    Ok(Timestamp::parse_rfc3339(text)?.0)
}

fn count(metrics: Option<&Value>, name: &str) -> i64 {
    metrics.and_then(|m| m.get(name)).and_then(Value::as_u64).map_or(0, |n| n.min(i64::MAX as u64) as i64)
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(db)) = (args.next(), args.next()) else {
        eprintln!("usage: bulk_insert_baseline CORPUS.jsonl OUT.db (OUT.db must not exist)");
        std::process::exit(2);
    };
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.clone();
        path.push(suffix);
        let _ = std::fs::remove_file(&path);
    }

    let started = Instant::now();
    let mut conn = Connection::open(&db)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    assert_eq!(synchronous, 2, "synchronous=FULL");
    conn.execute_batch(SCHEMA)?;

    let mut reader = BufReader::with_capacity(1 << 20, File::open(&input)?);
    let mut line = String::new();
    let mut authors_seen: HashSet<i64> = HashSet::new();
    let (mut rows, mut authors, mut done) = (0u64, 0u64, false);
    while !done {
        let tx = conn.transaction()?;
        {
            let mut insert_author = tx.prepare_cached(
                "INSERT INTO authors (id, username, name, created_at, description, location, verified, protected)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut insert_post = tx.prepare_cached(
                "INSERT INTO posts (id, author_id, text, created_at, lang, conversation_id,
                   in_reply_to_user_id, referenced_posts, edit_history, retweet_count, reply_count,
                   like_count, quote_count, bookmark_count, impression_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            let mut in_batch = 0;
            while in_batch < BATCH {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    done = true;
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                let post: Value = serde_json::from_str(&line)?;
                let post_id = post.get("id").and_then(id).ok_or("post without id")?;
                let author_id = post.get("author_id").and_then(id).ok_or("no author_id")?;
                if let Some(author) = post.get("author")
                    && authors_seen.insert(author_id)
                {
                    let text = |name: &str| author.get(name).and_then(Value::as_str);
                    let flag = |name: &str| author.get(name).and_then(Value::as_bool);
                    insert_author.execute(params![
                        author_id,
                        text("username").ok_or("author without username")?,
                        text("name").ok_or("author without name")?,
                        time(&author["created_at"])?,
                        text("description").unwrap_or(""),
                        text("location"),
                        flag("verified").unwrap_or(false),
                        flag("protected").unwrap_or(false),
                    ])?;
                    authors += 1;
                }
                let metrics = post.get("public_metrics");
                let history = match post.get("edit_history_tweet_ids") {
                    Some(Value::Array(ids)) => {
                        let ids: Vec<i64> = ids.iter().filter_map(id).collect();
                        serde_json::to_string(&ids)?
                    }
                    _ => format!("[{post_id}]"),
                };
                let referenced = post
                    .get("referenced_tweets")
                    .filter(|refs| !refs.is_null())
                    .map(serde_json::to_string)
                    .transpose()?;
                insert_post.execute(params![
                    post_id,
                    author_id,
                    post.get("text").and_then(Value::as_str).ok_or("post without text")?,
                    time(&post["created_at"])?,
                    post.get("lang").and_then(Value::as_str),
                    post.get("conversation_id").and_then(id).unwrap_or(post_id),
                    post.get("in_reply_to_user_id").and_then(id),
                    referenced,
                    history,
                    count(metrics, "retweet_count"),
                    count(metrics, "reply_count"),
                    count(metrics, "like_count"),
                    count(metrics, "quote_count"),
                    count(metrics, "bookmark_count"),
                    count(metrics, "impression_count"),
                ])?;
                in_batch += 1;
                rows += 1;
            }
        }
        tx.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "baseline inserted {rows} rows ({authors} authors) in {seconds:.2}s ({:.0} rows/s)",
        rows as f64 / seconds.max(1e-9)
    );
    Ok(())
}

//! Issue 5's ledger benchmark: durable delivery rows per second through the ledger's group commit,
//! against SQLite's own limit measured the same way.
//!
//! - **Baseline**: the `deliveries` table of the ledger's schema (same columns, same key, its canary
//!   index; ledger migration 5), rows inserted by one connection in 10,000-row transactions, WAL with
//!   `synchronous=FULL`.
//! - **Narrowest row**: the same, into the least any ledger with a row per delivered post must write:
//!   a rowid table of integers (position, licensee, post, revision, time, counted), no digest, no
//!   text. Its µs per row, times the rows a response writes, is a floor on the ledger's CPU per
//!   response that no schema of that shape goes under (BENCHMARKS.md uses it to bound requests/s).
//! - **Ledger**: `Ledger::reserve` + `Reservation::commit` from many concurrent tasks, each
//!   response a page of 100 posts (101 rows: its usage event and 100 deliveries), every commit
//!   awaited before the next — what the gateway does per response. Counted: delivery rows.
//! - The group commit's batch sizes, from the committed headers.
//! - With `DATAPACT_BENCH_POSTGRES=postgres://…` (issue 9): the same workloads on the PostgreSQL
//!   store's ledger (a fresh schema, dropped after), pages of 100 (a search) and of 1 (a lookup)
//!   on both ledgers, as ratios: the per-request cost of the shared ledger against SQLite's.
//!
//! `cargo run --release -p datapact-store --example ledger_bench -- [ROWS] [TASKS] [DIR]`
//! (defaults 1,000,000 rows, 64 tasks, a temporary directory on the same disk as /tmp).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, SystemClock};
use datapact_ledger::{Cap, Dedup};
use datapact_store::PgStore;
use datapact_store::ledger::{EventFacts, Ledger, MeterRequest, Reserved};
use datapact_store::postgres::PgOptions;
use rusqlite::{Connection, params};
use sqlx::Connection as _;

const PAGE: usize = 100;
const BASELINE_TRANSACTION: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let tasks: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let root = match args.next() {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    println!("rows {rows}, tasks {tasks}, page {PAGE}, dir {}", root.path().display());

    let baseline = baseline_of(&root.path().join("baseline.db"), rows, Table::Ledger)?;
    println!("baseline: {rows} delivery rows in 10,000-row transactions: {baseline:.0} rows/s");
    let narrowest = baseline_of(&root.path().join("narrowest.db"), rows, Table::Narrowest)?;
    println!(
        "narrowest row (integers only, rowid table), same way: {narrowest:.0} rows/s = {:.2} µs per row \
         (the ledger's table: {:.2} µs)",
        1e6 / narrowest,
        1e6 / baseline
    );

    let (ledger_rate, batches) = ledger(Place::Sqlite(&root.path().join("ledger")), rows, tasks, PAGE)?;
    println!("ledger: {rows} delivery rows via group commit, {tasks} tasks: {ledger_rate:.0} rows/s");
    println!("RESULT ledger/baseline = {:.2}", ledger_rate / baseline);
    print_distribution(&batches);

    if let Ok(url) = std::env::var("DATAPACT_BENCH_POSTGRES") {
        // Lookups: one post a response, so the per-response cost dominates.
        let lookups = (rows / 10).max(1_000);
        let (sqlite_one, _) = ledger(Place::Sqlite(&root.path().join("ledger-1")), lookups, tasks, 1)?;
        let (pg_page, pg_batches) = ledger(Place::Postgres(&url), rows, tasks, PAGE)?;
        let (pg_one, _) = ledger(Place::Postgres(&url), lookups, tasks, 1)?;
        println!("postgres ledger: {rows} delivery rows in pages of {PAGE}: {pg_page:.0} rows/s");
        print_distribution(&pg_batches);
        println!("sqlite ledger, 1-post responses: {sqlite_one:.0} responses/s; postgres: {pg_one:.0} responses/s");
        println!("RESULT postgres/sqlite ledger, pages of {PAGE} = {:.2}", pg_page / ledger_rate);
        println!("RESULT postgres/sqlite ledger, 1-post responses = {:.2}", pg_one / sqlite_one);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Place<'a> {
    Sqlite(&'a std::path::Path),
    /// A database URL: the run gets a schema of its own, dropped after.
    Postgres(&'a str),
}

/// Which table a baseline inserts into.
#[derive(Clone, Copy)]
enum Table {
    /// The ledger's own `deliveries` table.
    Ledger,
    /// Integers only, keyed by rowid: the narrowest row a delivery can be.
    Narrowest,
}

impl Table {
    fn create(self) -> &'static str {
        match self {
            Table::Ledger => {
                "CREATE TABLE deliveries (
                     position INTEGER PRIMARY KEY, licensee_id INTEGER NOT NULL, post_id INTEGER NOT NULL,
                     revision INTEGER NOT NULL, at INTEGER NOT NULL, counted INTEGER NOT NULL, digest BLOB NOT NULL
                 ) STRICT;
                 CREATE INDEX deliveries_canaries ON deliveries (licensee_id, post_id) WHERE revision = 0;"
            }
            Table::Narrowest => {
                "CREATE TABLE deliveries (
                     position INTEGER PRIMARY KEY, licensee_id INTEGER NOT NULL, post_id INTEGER NOT NULL,
                     revision INTEGER NOT NULL, at INTEGER NOT NULL, counted INTEGER NOT NULL
                 ) STRICT;"
            }
        }
    }

    fn insert(self) -> &'static str {
        match self {
            Table::Ledger => {
                "INSERT INTO deliveries (position, licensee_id, post_id, revision, at, counted, digest)
                     VALUES (?1 << 20 | ?2, ?3, ?4, 1, ?5, 1, ?6)"
            }
            Table::Narrowest => {
                "INSERT INTO deliveries (position, licensee_id, post_id, revision, at, counted)
                     VALUES (?1 << 20 | ?2, ?3, ?4, 1, ?5, 1)"
            }
        }
    }
}

fn baseline_of(path: &std::path::Path, rows: u64, table: Table) -> Result<f64, Box<dyn std::error::Error>> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -32768;")?;
    conn.execute_batch(table.create())?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    assert_eq!(synchronous, 2, "the baseline must be durable too");
    let started = Instant::now();
    let mut written = 0u64;
    let mut seq = 0i64;
    let at = 1_764_300_000_000i64;
    while written < rows {
        seq += 1;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(table.insert())?;
            for ordinal in 0..BASELINE_TRANSACTION.min((rows - written) as usize) {
                let n = written + ordinal as u64;
                let licensee = (n % 8) as i64 + 1;
                let post = 1_800_000_000_000_000_000i64 + (n % 1_000_000) as i64;
                match table {
                    Table::Ledger => {
                        let digest = blake_like(n);
                        insert.execute(params![seq, ordinal as i64, licensee, post, at + n as i64, &digest[..]])?
                    }
                    Table::Narrowest => insert.execute(params![seq, ordinal as i64, licensee, post, at + n as i64])?,
                };
            }
        }
        tx.commit()?;
        written += BASELINE_TRANSACTION.min((rows - written) as usize) as u64;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// 32 bytes that differ per row, as a digest would (cheap; the baseline measures SQLite, not hashing).
fn blake_like(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// Delivery rows per second (for a page of 1: responses per second) and the batch sizes.
fn ledger(
    place: Place<'_>,
    rows: u64,
    tasks: usize,
    page_len: usize,
) -> Result<(f64, Vec<i64>), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let schema = format!("dp_bench_{}", std::process::id());
    let (ledger, store) = match place {
        Place::Sqlite(dir) => (Ledger::open(dir, Arc::new(SystemClock))?, None),
        Place::Postgres(url) => runtime.block_on(async {
            let options = PgOptions { schema: Some(schema.clone()), max_connections: 4 };
            let store = PgStore::connect_with(url, options).await?;
            let ledger = Ledger::open_postgres(&store, "bench", Arc::new(SystemClock)).await?;
            Ok::<_, datapact_store::StoreError>((ledger, Some(store)))
        })?,
    };
    let delivered = Arc::new(AtomicU64::new(0));
    let next_request = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    runtime.block_on(async {
        let mut handles = Vec::new();
        for task in 0..tasks {
            let (ledger, delivered, next_request) = (ledger.clone(), delivered.clone(), next_request.clone());
            handles.push(tokio::spawn(async move {
                let licensee_id = (task % 8) as i64 + 1;
                loop {
                    let request = next_request.fetch_add(1, Ordering::Relaxed);
                    if request * page_len as u64 >= rows {
                        return;
                    }
                    let base = 1_800_000_000_000_000_000i64 + ((request * page_len as u64) % 1_000_000) as i64;
                    let page: Vec<(i64, u32)> = (0..page_len as i64).map(|i| (base + i, 1)).collect();
                    let at = datapact_core::Clock::now(&SystemClock);
                    let request_id = format!("bench-{request}");
                    let meter = MeterRequest {
                        licensee_id,
                        request_id: &request_id,
                        cap: Cap::UNLIMITED,
                        dedup: Dedup::None,
                        page: &page,
                        at,
                        prepaid: None,
                    };
                    let Reserved::Serve(reservation) = ledger.reserve(meter).await.expect("reserve") else {
                        unreachable!("unlimited")
                    };
                    let facts = EventFacts {
                        key_prefix: KeyPrefix("dpk_0123456789ab".into()),
                        endpoint: Endpoint::Search,
                        purpose: Purpose::AiTrain,
                        request_id: format!("bench-{request}"),
                        idempotency_key: None,
                        user_reads: 0,
                        bytes: 46_000,
                    };
                    reservation.commit(facts, None).await.expect("commit");
                    delivered.fetch_add(page_len as u64, Ordering::Relaxed);
                }
            }));
        }
        for handle in handles {
            handle.await.expect("task");
        }
    });
    let rate = delivered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    drop(ledger);
    let batches = match (place, store) {
        (Place::Sqlite(dir), _) => {
            let conn = Connection::open(dir.join(datapact_store::ledger::LEDGER_FILE))?;
            let mut statement = conn.prepare("SELECT row_count FROM ledger_batches ORDER BY seq")?;
            statement.query_map([], |row| row.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?
        }
        (Place::Postgres(url), Some(store)) => runtime.block_on(async {
            store.close().await;
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let batches: Vec<i64> =
                sqlx::query_scalar(&format!("SELECT row_count FROM {schema}.ledger_batches ORDER BY seq"))
                    .fetch_all(&mut conn)
                    .await?;
            sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn).await?;
            Ok::<_, sqlx::Error>(batches)
        })?,
        (Place::Postgres(_), None) => unreachable!("a PostgreSQL run has its store"),
    };
    Ok((rate, batches))
}

fn print_distribution(batches: &[i64]) {
    if batches.is_empty() {
        return;
    }
    let mut sorted = batches.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let total: i64 = sorted.iter().sum();
    println!(
        "group commit: {} batches, rows per batch mean {:.0}, p10 {}, p50 {}, p90 {}, p99 {}, max {} (responses per batch ~ rows/{})",
        sorted.len(),
        total as f64 / sorted.len() as f64,
        at(0.10),
        at(0.50),
        at(0.90),
        at(0.99),
        sorted[sorted.len() - 1],
        PAGE + 1
    );
}

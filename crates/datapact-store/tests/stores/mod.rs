//! The stores the conformance tests run against: each test is written once, as an
//! `async fn(&TestStore)`, and [`store_tests!`] makes one `#[tokio::test]` per store of it.
//!
//! PostgreSQL: the server at `DATAPACT_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test gets a fresh schema of its own, dropped
//! when the test ends (even by a panic); nothing else in the database is touched. When the
//! server cannot be reached the test is skipped with a `SKIPPED:` line on stderr, except under
//! `CI=true`, where it fails: CI must run every store.

#![allow(dead_code)]

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datapact_store::postgres::PgOptions;
use datapact_store::{PgStore, SqliteStore, Store};
use sqlx::Connection;

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("DATAPACT_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

pub struct TestStore {
    store: Box<dyn Store>,
    backend: Backend,
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

/// A schema name no other test (or test process) uses.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("dp_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether the test PostgreSQL answers; `None` (after saying so) when a test should skip.
pub async fn postgres_or_skip() -> Option<String> {
    let url = postgres_url();
    let reached = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await;
    match reached {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(url)
        }
        Ok(Err(error)) => unreachable_postgres(&url, &error.to_string()),
        Err(_) => unreachable_postgres(&url, "no answer within 5 s"),
    }
}

fn unreachable_postgres(url: &str, why: &str) -> Option<String> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!(
            "PostgreSQL is required in CI (CI=true) and is not reachable at {url} ({why}): \
             start it, or point DATAPACT_TEST_POSTGRES at one"
        );
    }
    // Straight to the process's stderr: libtest would swallow `eprintln!` of a passing test.
    let line = format!("SKIPPED: PostgreSQL not reachable at {url} (set DATAPACT_TEST_POSTGRES): {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// Drops a test schema, from a thread of its own so it works from `Drop`, inside or outside a
/// runtime, and while a test unwinds.
pub fn drop_schema(url: &str, schema: &str) {
    let (url, sql) = (url.to_owned(), format!("SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await.map_err(|e| e.to_string())?;
            sqlx::raw_sql(&sql).execute(&mut conn).await.map_err(|e| e.to_string())?;
            conn.close().await.map_err(|e| e.to_string())
        })
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("could not drop test schema {schema}: {dropped:?}");
    }
}

impl TestStore {
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        TestStore { store: Box::new(store), backend: Backend::Sqlite(dir) }
    }

    /// A PostgreSQL store in a fresh schema, or `None` when the test is skipped.
    pub async fn postgres() -> Option<TestStore> {
        let url = postgres_or_skip().await?;
        let schema = fresh_schema();
        let options = PgOptions { schema: Some(schema.clone()), max_connections: 4 };
        let store = match PgStore::connect_with(&url, options).await {
            Ok(store) => store,
            Err(error) => {
                drop_schema(&url, &schema);
                panic!("PgStore::connect_with in schema {schema}: {error}");
            }
        };
        Some(TestStore { store: Box::new(store), backend: Backend::Postgres { url, schema } })
    }

    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Runs one statement on the database behind the store's back (as an operator with a SQL
    /// shell could), to check what its triggers refuse.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, String> {
        match &self.backend {
            Backend::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join(datapact_store::SQLITE_FILE))
                    .map_err(|e| e.to_string())?;
                conn.execute(sql, []).map(|n| n as u64).map_err(|e| e.to_string())
            }
            Backend::Postgres { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
                sqlx::raw_sql(&format!("SET search_path TO {schema}"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let done = sqlx::raw_sql(sql).execute(&mut conn).await.map(|r| r.rows_affected());
                let _ = conn.close().await;
                done.map_err(|e| e.to_string())
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Backend::Postgres { url, schema } = &self.backend {
            drop_schema(url, schema);
        }
    }
}

/// One `#[tokio::test]` per store for each `async fn name(store: &TestStore)` named:
/// `on_sqlite::name` and `on_postgres::name`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = $crate::stores::TestStore::sqlite();
                    super::$name(&store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = $crate::stores::TestStore::postgres().await else { return };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

//! What every limiter test shares: the Redis to test against, a namespace of its own, seeding from a model ledger.
#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datapact_core::Timestamp;
use datapact_limiter::{LimiterError, RedisLimiter, ReserveOutcome, ReserveRequest, Seed, SeedValue};

/// The shared test Redis, from `DATAPACT_TEST_REDIS`.
pub fn redis_url() -> String {
    std::env::var("DATAPACT_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace no other test (or earlier run) uses.
pub fn unique_namespace(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("test-{test}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A limiter on the shared Redis in a fresh namespace, or `None` (with a visible `SKIPPED:` line) when no Redis
/// answers outside CI. In CI (`CI=true`) a missing Redis fails the test. Once Redis did not answer, the rest of the
/// test binary skips at once rather than wait for it again.
pub async fn connect(test: &str) -> Option<TestLimiter> {
    static UNREACHABLE: OnceLock<String> = OnceLock::new();
    let url = redis_url();
    let why = match UNREACHABLE.get() {
        Some(why) => why.clone(),
        None => {
            let namespace = unique_namespace(test);
            match RedisLimiter::connect(&url, &namespace, Duration::from_secs(2)).await {
                Ok(limiter) => return Some(TestLimiter { limiter, namespace, url }),
                Err(error) => UNREACHABLE.get_or_init(|| error.to_string()).clone(),
            }
        }
    };
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test}: Redis is required in CI (CI=true) and is not reachable at {url} ({why})");
    }
    static SKIPPED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if SKIPPED.lock().unwrap_or_else(PoisonError::into_inner).insert(test.to_owned()) {
        // Straight to the process's stderr: libtest would swallow `eprintln!` of a passing test.
        let line = format!("SKIPPED: {test} (no Redis at {url}; set DATAPACT_TEST_REDIS): {why}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    None
}

/// A limiter in its own namespace, whose keys are deleted when it is dropped (also when the test fails).
pub struct TestLimiter {
    pub limiter: RedisLimiter,
    pub namespace: String,
    pub url: String,
}

impl TestLimiter {
    /// A plain connection, to look at (or break) the keys the crate docs describe.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// A key of this namespace, as the crate docs lay them out (`suffix` after `dp:<ns>:`).
    pub fn key(&self, suffix: &str) -> String {
        format!("dp:{}:{suffix}", self.namespace)
    }

    /// A hash field of a key of this namespace, if present.
    pub async fn field(&self, suffix: &str, field: &str) -> Option<String> {
        redis::cmd("HGET").arg(self.key(suffix)).arg(field).query_async(&mut self.raw().await).await.unwrap()
    }
}

impl Drop for TestLimiter {
    /// Deletes every key of the namespace, from a thread of its own so it works inside or outside a runtime and
    /// while a test unwinds.
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("dp:{}:*", self.namespace));
        let deleted = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut connection = redis::Client::open(url)?.get_connection()?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1_000)
                    .query(&mut connection)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(keys).query::<()>(&mut connection)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete the test keys of {}: {deleted:?}", self.namespace);
        }
    }
}

/// Reserves, seeding whatever Redis lacks from `committed` first (as the gateway does from the ledger).
pub async fn reserve_seeded(
    limiter: &RedisLimiter,
    request: ReserveRequest<'_>,
    mut committed: impl FnMut(Seed) -> SeedValue,
) -> Result<ReserveOutcome, LimiterError> {
    for _ in 0..3 {
        match limiter.reserve(request).await? {
            ReserveOutcome::Unseeded(missing) => {
                for seed in missing {
                    limiter.seed(&committed(seed), request.at).await?;
                }
            }
            outcome => return Ok(outcome),
        }
    }
    panic!("still unseeded after seeding three times");
}

/// Seeds every missing value as zero or empty: a licensee with nothing committed.
pub fn nothing_committed(seed: Seed) -> SeedValue {
    match seed {
        Seed::Month { licensee_id, month } => SeedValue::Month { licensee_id, month, total: 0 },
        Seed::Day { licensee_id, day } => SeedValue::Day { licensee_id, day, posts: Vec::new() },
        Seed::Charged { licensee_id } => SeedValue::Charged { licensee_id, micros: 0 },
    }
}

/// 2026-11-02T00:00:00Z plus `day` days and `ms` milliseconds.
pub fn november(day: u8, ms: i64) -> Timestamp {
    Timestamp(1_793_577_600_000 + i64::from(day) * 86_400_000 + ms)
}

//! The limiter several gateway nodes share (issue 9): rate limits, monthly caps, daily dedup and prepaid credits,
//! decided atomically in Redis by Lua scripts that apply exactly the rules of the in-process
//! [`datapact_terms::RateLimiter`] and of [`datapact_ledger::meter_page_within_credit`].
//!
//! The PostgreSQL ledger stays the source of truth: Redis holds only what every node must see at once to decide —
//! the month's counted total (committed + reserved), the posts counted today, the micro-units charged — and each
//! node's *reservations*, so a record is never lost nor counted twice when a node dies between reserving and
//! committing.
//!
//! # A metered response, end to end
//!
//! 1. [`RedisLimiter::reserve`] runs one script for the page: the hard cap, then the credit, then the longest prefix
//!    that fits (see [`datapact_ledger::meter`]). A [`ReserveOutcome::Serve`] has added its counts to the shared
//!    totals and stored a record of them under `(node, request id)`.
//! 2. The gateway renders the allotted prefix and commits it to the ledger.
//! 3. Committed: [`RedisLimiter::settle`] forgets the record and keeps the counts (now in the ledger too). Not
//!    committed: [`RedisLimiter::release`] gives the counts back. Both are idempotent: a second call, or a call for an
//!    unknown reservation, changes nothing.
//! 4. A node that restarts (or any node, for one that died) lists the node's unsettled reservations with
//!    [`RedisLimiter::outstanding`], checks which ones the ledger committed, and settles or releases each.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use datapact_core::Timestamp;
//! use datapact_ledger::{Cap, Dedup};
//! use datapact_limiter::{RedisLimiter, ReserveOutcome, ReserveRequest, Seed, SeedValue};
//!
//! # async fn committed(seed: Seed) -> SeedValue { unimplemented!() }
//! # async fn commit_to_ledger() -> bool { true }
//! # async fn example() -> Result<(), datapact_limiter::LimiterError> {
//! let limiter = RedisLimiter::connect("redis://127.0.0.1:6379", "prod", Duration::from_millis(250)).await?;
//! let request = ReserveRequest {
//!     node: "gw-1",
//!     request_id: "0193a4b2-7c1e",
//!     licensee_id: 42,
//!     at: Timestamp(1_796_000_000_000),
//!     cap: Cap::hard(1_000),
//!     dedup: Dedup::Daily,
//!     page: &[10, 11, 12],
//!     prepaid: None,
//! };
//! let outcome = loop {
//!     match limiter.reserve(request).await? {
//!         ReserveOutcome::Unseeded(missing) => {
//!             for seed in missing {
//!                 limiter.seed(&committed(seed).await, request.at).await?; // read from the ledger
//!             }
//!         }
//!         outcome => break outcome,
//!     }
//! };
//! if let ReserveOutcome::Serve { id, allotment, .. } = outcome {
//!     // ... render `allotment.delivered` posts, then commit them with `allotment.counts` ...
//!     if commit_to_ledger().await {
//!         limiter.settle(&id).await?;
//!     } else {
//!         limiter.release(&id).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Seeding: Redis forgets, the ledger does not
//!
//! Redis keeps nothing on disk here and may be flushed; its keys also expire. A script never guesses a missing value
//! as zero: [`RedisLimiter::reserve`] answers [`ReserveOutcome::Unseeded`] with each missing [`Seed`], the caller reads
//! the committed value from the ledger and calls [`RedisLimiter::seed`] (which sets it only if still missing, so nodes
//! seeding at once agree), then retries. Each seeding stamps the key with a new *generation*, which reservations
//! record: a release gives counts back only to the generation it took them from, never to a key seeded anew since
//! (whose committed value never included the uncommitted reservation).
//!
//! One window stays open: a reservation in flight while Redis loses its keys is in neither the ledger (not yet
//! committed) nor Redis, so a seed taken before it commits misses it, and the month can count that many records past
//! a hard cap (or charge past a credit). Fail closed until the node's in-flight commits are done, or seed from
//! committed + in-flight, to close it.
//!
//! # Key layout
//!
//! Every key is under `dp:<namespace>:`; a licensee's keys carry the hash tag `{lic:<id>}`, so on Redis Cluster they
//! live in one slot and each script sees all it needs atomically. Expiries are relative to the caller's instant (the
//! gateway's `Clock`), not Redis's clock.
//!
//! | key | type | holds | expires |
//! |-----|------|-------|---------|
//! | `dp:<ns>:{lic:<id>}:rate:<endpoint>` | hash `s`, `w`, `c` | the window's start and length (ms) and count | 60 s after the window ends |
//! | `dp:<ns>:{lic:<id>}:month:<YYYY-MM>` | hash `n`, `g` | records counted that month (committed + reserved), generation | 40 days after the month ends |
//! | `dp:<ns>:{lic:<id>}:day:<YYYY-MM-DD>` | hash `#g`, `<post id>`… | generation, one field per post counted that day (daily dedup only) | 2 days after the day ends |
//! | `dp:<ns>:{lic:<id>}:charged` | hash `n`, `g` | micro-units charged ever (committed + reserved), generation | 45 days after its last use |
//! | `dp:<ns>:{lic:<id>}:pending:<node>` | hash `<request id>` → record | the node's unsettled reservations for the licensee | 45 days after its last reservation |
//! | `dp:<ns>:{lic:<id>}:held:<key>` | `node|fingerprint|since` | an `Idempotency-Key` a request is being served under ([`RedisLimiter::hold_key`]) | the holder's TTL (the gateway: 120 s), or let go after its commit |
//! | `dp:<ns>:node:<node>` | set of licensee ids | whom a node may hold reservations for (read by `outstanding`) | 45 days after its last reservation |
//!
//! A record is `1|<at ms>|<month>|<month gen>|<day or empty>|<day gen>|<charged gen>|<counted>|<charge>|<post,post,…>`
//! (the posts it counted, under daily dedup only).
//!
//! # Exactness and its limits
//!
//! - **Numbers.** Lua's numbers are doubles: every count, amount and instant the scripts touch must stay an integer of
//!   magnitude at most [`MAX_EXACT`] (2^53 - 1). Inputs past it are refused ([`LimiterError::Invalid`]), stored values
//!   past it are reported ([`LimiterError::Corrupt`]), and a total that would pass it is refused before anything is
//!   written. Post ids are passed and stored as decimal strings and never become Lua numbers, so every `i64` works.
//! - **Rate windows.** [`RedisLimiter::check_rate`] is `RateLimiter::check` exactly (epoch-aligned windows, refused
//!   requests not counted, the later window kept when a clock steps back, the count carried over a window-length
//!   change when the windows overlap, a counter kept `ENDED_KEPT_MS`, 60 s, after its window ends and absent after).
//!   The in-process limiter's sweeps only free memory, with one exception: a window-length change whose new window
//!   overlaps an old window that ended about 60 s earlier, on a clock that stepped back across the instant the old
//!   counter expires, after the in-process limiter swept it. Then the in-process count is 0 and this one carries the
//!   old count over, so it refuses sooner.
//! - **Released posts.** Releasing a reservation removes its posts from the day set. A reservation taken meanwhile
//!   that delivered one of them as free ("already counted today") stays free, so a day can count up to that many
//!   records fewer than the ledger would have (never more, and never past a cap). The in-process ledger fails such
//!   requests closed instead; across nodes that would mean failing every node's requests.
//! - **Timeouts.** Every call returns within the limiter's timeout ([`LimiterError::Unavailable`] past it). A
//!   `reserve` that timed out may still have been applied: it then shows in `outstanding` and must be released.

mod error;
mod held;
mod keys;
mod rate;
mod reserve;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use error::LimiterError;
pub use reserve::{PrepaidTerms, ReservationId, ReservationRecord, ReserveOutcome, ReserveRequest, Seed, SeedValue};

use keys::Keys;

/// The largest magnitude of any count, amount or instant (ms) the limiter handles: 2^53 - 1, the largest integer
/// below which Lua's doubles are exact.
pub const MAX_EXACT: u64 = (1 << 53) - 1;

/// The most posts one reservation meters (ARCHITECTURE.md's limit).
pub const MAX_PAGE: usize = 1_000;

/// A handle on the shared limiter: cheap to clone (one multiplexed connection, shared), safe to use from any task.
///
/// The connection reconnects by itself: after Redis comes back from an outage, the same handle works again (Redis
/// may then answer [`ReserveOutcome::Unseeded`], since a restarted Redis is empty).
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    keys: Keys,
    timeout: Duration,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter").field("keys", &self.inner.keys).field("timeout", &self.inner.timeout).finish()
    }
}

impl RedisLimiter {
    /// Connects to the Redis at `url` (`redis://host:port/db`), keeping every key under `dp:<namespace>:`.
    ///
    /// `timeout` bounds every call, this one included: past it a call answers [`LimiterError::Unavailable`], so a
    /// request never hangs on Redis. A few hundred milliseconds suits a gateway. Fails with
    /// [`LimiterError::Invalid`] for a bad URL or namespace (1 to 64 of `A-Z a-z 0-9 _ . -`) and
    /// [`LimiterError::Unavailable`] if Redis does not answer.
    pub async fn connect(url: &str, namespace: &str, timeout: Duration) -> Result<RedisLimiter, LimiterError> {
        let keys = Keys::new(namespace)?;
        if timeout.is_zero() {
            return Err(LimiterError::Invalid("the limiter's timeout must not be zero".into()));
        }
        let client = redis::Client::open(url).map_err(|e| LimiterError::Invalid(format!("redis url: {e}")))?;
        // Reconnection is retried briefly, in the background: a call waiting on it is bounded by `timeout` anyway,
        // and the next call after a failed attempt starts a new one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = bounded(timeout, "connect", connect).await?;
        Ok(RedisLimiter { inner: Arc::new(Inner { connection, keys, timeout }) })
    }

    /// The timeout every call is bounded by.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn connection(&self) -> ConnectionManager {
        self.inner.connection.clone()
    }

    /// Runs one exchange with Redis within the timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LimiterError> {
        bounded(self.inner.timeout, what, call).await
    }
}

async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, LimiterError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(LimiterError::from_redis(what, &error)),
        Err(_) => Err(LimiterError::Unavailable(format!("{what}: no answer from redis within {timeout:?}"))),
    }
}

/// Checks that `value` is within the exact range of Lua's numbers.
fn exact(what: &str, value: u64) -> Result<u64, LimiterError> {
    if value > MAX_EXACT {
        return Err(LimiterError::Invalid(format!("{what} {value} is past the limiter's exact range (2^53 - 1)")));
    }
    Ok(value)
}

/// Checks that a signed `value` is within the exact range of Lua's numbers.
fn exact_signed(what: &str, value: i64) -> Result<i64, LimiterError> {
    exact(what, value.unsigned_abs())?;
    Ok(value)
}

/// Parses a decimal integer a script wrote; anything else is [`LimiterError::Corrupt`].
fn parse_int<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, LimiterError> {
    text.parse().map_err(|_| LimiterError::Corrupt(format!("{what}: expected an integer, got {text:?}")))
}

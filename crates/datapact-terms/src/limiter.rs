//! Exact fixed-window rate limiting per (licensee, endpoint), shared across tasks.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

use datapact_core::{Endpoint, Timestamp};

use crate::limit::RateLimit;

/// How many independently locked shards a [`RateLimiter`] has.
pub const SHARDS: usize = 32;

/// How often (at most) a shard drops counters whose window has ended.
pub const SWEEP_INTERVAL_MS: i64 = 60_000;

/// How long after its window ends a counter is kept. A request whose clock reading is behind the last one (two
/// tasks on either side of a window's end) must still find the ended window's count, or that window would reopen;
/// after this, a counter counts as absent whether or not a sweep has dropped it yet, so decisions never depend on
/// when a shard swept. The shared limiter (`datapact-limiter`) keeps its counters exactly as long.
pub const ENDED_KEPT_MS: i64 = 60_000;

/// Header names, lowercase as `http::HeaderName::from_static` wants them.
pub const X_RATE_LIMIT_LIMIT: &str = "x-rate-limit-limit";
/// X's header: requests left in the window.
pub const X_RATE_LIMIT_REMAINING: &str = "x-rate-limit-remaining";
/// X's header: the window's end in epoch seconds.
pub const X_RATE_LIMIT_RESET: &str = "x-rate-limit-reset";
/// IETF draft-11 `RateLimit-Policy`.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// IETF draft-11 `RateLimit`.
pub const RATELIMIT: &str = "ratelimit";

/// The outcome of one rate check, with what the response headers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RateDecision {
    /// Whether this request fits in the window (and was counted).
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in the window after this one (0 when refused).
    pub remaining: u64,
    /// The window's end, in epoch seconds, rounded up to a whole second.
    pub reset_epoch_s: i64,
    /// The window's length in seconds.
    pub window_s: u64,
    /// Whole seconds from now until the reset (rounded up; 0 only if the reset is already past).
    pub reset_after_s: u64,
}

impl RateDecision {
    /// `x-rate-limit-limit`, `x-rate-limit-remaining`, `x-rate-limit-reset` (X's headers; tweepy and twarc read them).
    pub fn x_headers(&self) -> [(&'static str, String); 3] {
        [
            (X_RATE_LIMIT_LIMIT, self.limit.to_string()),
            (X_RATE_LIMIT_REMAINING, self.remaining.to_string()),
            (X_RATE_LIMIT_RESET, self.reset_epoch_s.to_string()),
        ]
    }

    /// IETF draft-ietf-httpapi-ratelimit-headers-11, the policy named after the endpoint:
    /// `RateLimit-Policy: "search";q=60;w=900` and `RateLimit: "search";r=59;t=840`.
    pub fn ietf_headers(&self, endpoint: Endpoint) -> [(&'static str, String); 2] {
        let name = endpoint.as_str();
        [
            (RATELIMIT_POLICY, format!("\"{name}\";q={};w={}", self.limit, self.window_s)),
            (RATELIMIT, format!("\"{name}\";r={};t={}", self.remaining, self.reset_after_s)),
        ]
    }

    /// All five headers, for every authenticated `/2/` response.
    pub fn headers(&self, endpoint: Endpoint) -> Vec<(&'static str, String)> {
        let mut headers = self.x_headers().to_vec();
        headers.extend(self.ietf_headers(endpoint));
        headers
    }
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    start_ms: i64,
    window_ms: i64,
    count: u64,
}

impl Counter {
    fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.window_ms)
    }

    /// Whether the counter ended [`ENDED_KEPT_MS`] or more before `now_ms`: as if it were not there.
    fn expired(&self, now_ms: i64) -> bool {
        self.end_ms().saturating_add(ENDED_KEPT_MS) <= now_ms
    }

    /// Moves the counter to the window of `now` for a `window_ms` limit, keeping what must be kept:
    /// the same window keeps its count; a later window starts at 0; an earlier `now` (a clock stepped back) keeps
    /// the stored window; a changed window length carries the count over if the old window overlaps the new one.
    fn roll(&mut self, now_ms: i64, window_ms: i64) {
        let start = window_start(now_ms, window_ms);
        if self.window_ms == window_ms {
            if start > self.start_ms {
                *self = Counter { start_ms: start, window_ms, count: 0 };
            }
        } else {
            let overlaps = self.start_ms < start.saturating_add(window_ms) && start < self.end_ms();
            *self = Counter { start_ms: start, window_ms, count: if overlaps { self.count } else { 0 } };
        }
    }

    fn decision(&self, allowed: bool, limit: u64, now_ms: i64) -> RateDecision {
        let end = self.end_ms();
        RateDecision {
            allowed,
            limit,
            remaining: limit.saturating_sub(self.count),
            reset_epoch_s: ceil_div(end, 1000),
            window_s: (self.window_ms / 1000) as u64,
            reset_after_s: ceil_div(end.saturating_sub(now_ms), 1000).max(0) as u64,
        }
    }
}

/// Start of the epoch-aligned window holding `now_ms`: `floor(now / w) * w`.
pub fn window_start(now_ms: i64, window_ms: i64) -> i64 {
    now_ms.saturating_sub(now_ms.rem_euclid(window_ms))
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

struct Shard<K> {
    /// Per licensee, one counter per endpoint (indexed like `Endpoint::ALL`).
    counters: HashMap<K, [Option<Counter>; 6]>,
    next_sweep_ms: i64,
}

impl<K> Shard<K> {
    fn sweep(&mut self, now_ms: i64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        self.counters.retain(|_, slots| {
            for slot in slots.iter_mut() {
                if slot.is_some_and(|c| c.expired(now_ms)) {
                    *slot = None;
                }
            }
            slots.iter().any(Option::is_some)
        });
    }
}

fn endpoint_index(endpoint: Endpoint) -> usize {
    Endpoint::ALL.iter().position(|e| *e == endpoint).unwrap_or(0)
}

/// Exact fixed-window counters per (licensee, endpoint), in X's style (15-minute windows aligned to the epoch).
///
/// Share it behind an `Arc`: every method takes `&self`. A check-and-increment runs under the mutex of the
/// licensee's shard, so under any concurrency on one node exactly `min(requests, limit)` requests are allowed per
/// window, and none is refused while capacity remains. Refused requests are not counted. Counters survive limit
/// changes (a lower limit than the count so far refuses until the reset); a counter is dropped [`ENDED_KEPT_MS`] after
/// its window ended (swept at most every [`SWEEP_INTERVAL_MS`] per shard), so memory is bounded by the
/// (licensee, endpoint) pairs active in the last two minutes. `K` is the licensee key: its name (`String`, the
/// default) or store id.
///
/// Requests are judged in the order they take the lock. If `now` steps back (two tasks read the clock on either side
/// of a window boundary and reach the lock in the other order), the later window already counted is kept: the request
/// counts there, so the limit is never exceeded and a window is never reopened.
pub struct RateLimiter<K = String> {
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter::new()
    }
}

impl<K> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// An empty limiter.
    pub fn new() -> Self {
        let shards =
            (0..SHARDS).map(|_| Mutex::new(Shard { counters: HashMap::new(), next_sweep_ms: i64::MIN })).collect();
        RateLimiter { shards, hasher: RandomState::new() }
    }

    fn shard<Q: Hash + ?Sized>(&self, licensee: &Q) -> std::sync::MutexGuard<'_, Shard<K>> {
        let index = (self.hasher.hash_one(licensee) % SHARDS as u64) as usize;
        // A panic elsewhere while holding the lock leaves the counters consistent (each update is one assignment).
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request of `licensee` on `endpoint` at `now` against `rate`, atomically: allowed (and counted)
    /// exactly when fewer than `rate.limit` requests were allowed in the current window.
    pub fn check<Q>(&self, licensee: &Q, endpoint: Endpoint, rate: RateLimit, now: Timestamp) -> RateDecision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now_ms = now.millis();
        let window_ms = rate.window.millis();
        let mut shard = self.shard(licensee);
        shard.sweep(now_ms);
        let slots = match shard.counters.get_mut(licensee) {
            Some(slots) => slots,
            None => shard.counters.entry(licensee.to_owned()).or_insert([None; 6]),
        };
        let slot = &mut slots[endpoint_index(endpoint)];
        *slot = slot.filter(|c| !c.expired(now_ms));
        let counter = slot.get_or_insert(Counter { start_ms: window_start(now_ms, window_ms), window_ms, count: 0 });
        counter.roll(now_ms, window_ms);
        let allowed = counter.count < rate.limit;
        if allowed {
            counter.count += 1;
        }
        counter.decision(allowed, rate.limit, now_ms)
    }

    /// The state a request would see, without counting it: for the headers of responses refused before the rate
    /// step (401/403/400). `allowed` tells whether a request would fit now.
    pub fn peek<Q>(&self, licensee: &Q, endpoint: Endpoint, rate: RateLimit, now: Timestamp) -> RateDecision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now_ms = now.millis();
        let window_ms = rate.window.millis();
        let shard = self.shard(licensee);
        let mut counter = Counter { start_ms: window_start(now_ms, window_ms), window_ms, count: 0 };
        if let Some(stored) = shard.counters.get(licensee).and_then(|slots| slots[endpoint_index(endpoint)])
            && !stored.expired(now_ms)
        {
            counter = stored;
            counter.roll(now_ms, window_ms);
        }
        counter.decision(counter.count < rate.limit, rate.limit, now_ms)
    }

    /// Drops every counter of `licensee` (e.g. when the licensee is removed). Limit changes never need this.
    pub fn forget<Q>(&self, licensee: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(licensee).counters.remove(licensee);
    }

    /// Drops every counter whose window ended [`ENDED_KEPT_MS`] or more before `now` (also done automatically as
    /// requests come in).
    pub fn purge(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.next_sweep_ms = i64::MIN;
            shard.sweep(now.millis());
        }
    }

    /// How many (licensee, endpoint) counters are held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                shard.counters.values().map(|slots| slots.iter().flatten().count()).sum::<usize>()
            })
            .sum()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

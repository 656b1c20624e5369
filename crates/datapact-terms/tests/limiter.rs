//! The real limiter: exact counts under threads, window alignment, reset rounding, headers, limit changes, memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use datapact_core::{Endpoint, Timestamp};
use datapact_terms::limiter::{ENDED_KEPT_MS, SWEEP_INTERVAL_MS, window_start};
use datapact_terms::{RateLimit, RateLimiter, Span};
use proptest::prelude::*;

fn rate(limit: u64, seconds: u64) -> RateLimit {
    RateLimit::new(limit, Span::from_seconds(seconds).unwrap())
}

const MIN15: i64 = 900_000;
/// 2026-01-01T00:00:00Z, a multiple of 15 minutes.
const T0: i64 = 1_767_225_600_000;

#[test]
fn windows_align_to_the_epoch_and_reset_is_the_true_end() {
    let limiter = RateLimiter::<String>::new();
    let now = Timestamp(T0 + 7 * 60_000 + 123); // 00:07:00.123
    let d = limiter.check("acme", Endpoint::Search, rate(60, 900), now);
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining, d.window_s), (60, 59, 900));
    assert_eq!(d.reset_epoch_s, (T0 + MIN15) / 1000);
    assert_eq!(d.reset_after_s, 480, "8 minutes less 123 ms, rounded up");
    assert_eq!(window_start(T0 + MIN15 - 1, MIN15), T0);
    assert_eq!(window_start(T0 + MIN15, MIN15), T0 + MIN15);
    assert_eq!(window_start(-1, 1000), -1000);

    // Exactly at the boundary, a new window begins.
    let d = limiter.check("acme", Endpoint::Search, rate(60, 900), Timestamp(T0 + MIN15));
    assert_eq!((d.remaining, d.reset_epoch_s, d.reset_after_s), (59, (T0 + 2 * MIN15) / 1000, 900));
}

#[test]
fn refuses_exactly_at_the_limit_and_headers_follow() {
    let limiter = RateLimiter::<String>::new();
    let now = Timestamp(T0 + 1_500);
    for i in 0..3 {
        let d = limiter.check("acme", Endpoint::Lookup, rate(3, 60), now);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2 - i);
    }
    let refused = limiter.check("acme", Endpoint::Lookup, rate(3, 60), now);
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    let headers = refused.headers(Endpoint::Lookup);
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("x-rate-limit-limit"), "3");
    assert_eq!(get("x-rate-limit-remaining"), "0");
    assert_eq!(get("x-rate-limit-reset"), ((T0 + 60_000) / 1000).to_string());
    assert_eq!(get("ratelimit-policy"), "\"lookup\";q=3;w=60");
    assert_eq!(get("ratelimit"), "\"lookup\";r=0;t=59");
    // Other endpoints and licensees have their own counters.
    assert!(limiter.check("acme", Endpoint::Search, rate(3, 60), now).allowed);
    assert!(limiter.check("other", Endpoint::Lookup, rate(3, 60), now).allowed);
    // Peek does not count.
    let peek = limiter.peek("other", Endpoint::Lookup, rate(3, 60), now);
    assert_eq!((peek.allowed, peek.remaining), (true, 2));
    assert_eq!(limiter.peek("other", Endpoint::Lookup, rate(3, 60), now).remaining, 2);
    assert!(!limiter.peek("acme", Endpoint::Lookup, rate(3, 60), now).allowed);
    let fresh = limiter.peek("nobody", Endpoint::Usage, rate(5, 60), now);
    assert_eq!((fresh.allowed, fresh.remaining), (true, 5));
    // The next window opens again.
    assert!(limiter.check("acme", Endpoint::Lookup, rate(3, 60), Timestamp(T0 + 60_000)).allowed);
}

#[test]
fn limit_changes_never_reset_counters() {
    let limiter = RateLimiter::<String>::new();
    let now = Timestamp(T0);
    for _ in 0..5 {
        assert!(limiter.check("acme", Endpoint::Search, rate(5, 900), now).allowed);
    }
    // Raising the limit keeps the count: 5 used, 2 more allowed.
    let d = limiter.check("acme", Endpoint::Search, rate(7, 900), now);
    assert_eq!((d.allowed, d.remaining), (true, 1));
    assert!(limiter.check("acme", Endpoint::Search, rate(7, 900), now).allowed);
    assert!(!limiter.check("acme", Endpoint::Search, rate(7, 900), now).allowed);
    // Lowering it below the count refuses until the reset.
    assert!(!limiter.check("acme", Endpoint::Search, rate(3, 900), now).allowed);
    // A longer window overlapping the old one carries the count (7 used of 10).
    let d = limiter.check("acme", Endpoint::Search, rate(10, 3600), now);
    assert_eq!((d.allowed, d.remaining, d.window_s), (true, 2, 3600));
    // A shorter window inside it carries too.
    let d = limiter.check("acme", Endpoint::Search, rate(9, 60), now);
    assert_eq!((d.allowed, d.remaining), (true, 0));
    // A later, non-overlapping window starts afresh.
    let d = limiter.check("acme", Endpoint::Search, rate(9, 60), Timestamp(T0 + 60_000));
    assert_eq!((d.allowed, d.remaining), (true, 8));
}

#[test]
fn a_clock_stepping_back_does_not_reopen_a_window() {
    let limiter = RateLimiter::<String>::new();
    assert!(limiter.check("acme", Endpoint::Search, rate(1, 60), Timestamp(T0 + 60_000)).allowed);
    let d = limiter.check("acme", Endpoint::Search, rate(1, 60), Timestamp(T0 + 59_000));
    assert!(!d.allowed);
    assert_eq!(d.reset_epoch_s, (T0 + 120_000) / 1000);
}

/// A sweep just after a window ended (here set off by another endpoint of the same licensee, so by the same shard)
/// must not let a request whose clock reading is a little behind reopen that window.
#[test]
fn a_sweep_does_not_let_a_clock_stepping_back_reopen_a_window() {
    let limiter = RateLimiter::<String>::new();
    let one_per_second = rate(1, 1);
    // The shard's first call sweeps and sets its next sweep a minute later.
    limiter.check("acme", Endpoint::Lookup, rate(10, 60), Timestamp(T0));
    let end = T0 + SWEEP_INTERVAL_MS;
    assert!(limiter.check("acme", Endpoint::Search, one_per_second, Timestamp(end - 10)).allowed);
    // Past the window's end and the sweep's time: the shard sweeps.
    limiter.check("acme", Endpoint::Lookup, rate(10, 60), Timestamp(end + 5));
    let late = limiter.check("acme", Endpoint::Search, one_per_second, Timestamp(end - 5));
    assert!(!late.allowed, "the window ending at {end} allowed a second request: {late:?}");
    // A minute after its end the window's counter is gone, and a reading that far behind starts afresh.
    limiter.purge(Timestamp(end + ENDED_KEPT_MS));
    assert!(limiter.check("acme", Endpoint::Search, one_per_second, Timestamp(end - 5)).allowed);
}

#[test]
fn old_windows_are_forgotten() {
    let limiter = RateLimiter::<String>::new();
    for i in 0..200 {
        limiter.check(&format!("l{i}"), Endpoint::Search, rate(10, 60), Timestamp(T0));
        limiter.check(&format!("l{i}"), Endpoint::Usage, rate(10, 900), Timestamp(T0));
    }
    assert_eq!(limiter.len(), 400);
    limiter.purge(Timestamp(T0 + 60_000));
    assert_eq!(limiter.len(), 400, "the 1-minute windows just ended: kept for a clock that steps back");
    limiter.purge(Timestamp(T0 + 60_000 + ENDED_KEPT_MS));
    assert_eq!(limiter.len(), 200, "the 1-minute windows ended a minute ago");
    // Automatic sweeping as requests come in, without purge: 1,000 new keys, one per second, each with a 1 s window;
    // shards sweep at most once a minute and keep a minute past the end, so only the last two minutes' remain.
    for probe in 0..1000 {
        limiter.check(&format!("p{probe}"), Endpoint::Lookup, rate(1, 1), Timestamp(T0 + 10 * MIN15 + 1000 * probe));
    }
    assert!(limiter.len() <= 180, "{}", limiter.len());
    limiter.purge(Timestamp(T0 + 20 * MIN15));
    assert!(limiter.is_empty());
    limiter.check("late", Endpoint::Search, rate(10, 60), Timestamp(T0 + 20 * MIN15));
    assert_eq!(limiter.len(), 1);
    limiter.forget("late");
    assert!(limiter.is_empty());
}

#[test]
fn integer_keys_work_too() {
    let limiter = RateLimiter::<i64>::new();
    assert!(limiter.check(&7, Endpoint::Stream, rate(1, 1), Timestamp(0)).allowed);
    assert!(!limiter.check(&7, Endpoint::Stream, rate(1, 1), Timestamp(999)).allowed);
    assert!(limiter.check(&7, Endpoint::Stream, rate(1, 1), Timestamp(1000)).allowed);
}

/// Runs each thread's requests (licensee index, ms offset inside the window) in each of `windows` consecutive
/// 1-second windows, all threads released together per window, and returns every decision as
/// (licensee, window, allowed, remaining).
fn drive(limit: u64, windows: i64, threads: Vec<Vec<(usize, i64)>>) -> Vec<(usize, i64, bool, u64)> {
    let limiter = Arc::new(RateLimiter::<String>::new());
    let barrier = Arc::new(Barrier::new(threads.len()));
    let handles: Vec<_> = threads
        .into_iter()
        .map(|requests| {
            let limiter = Arc::clone(&limiter);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for window in 0..windows {
                    // Time only moves forward between windows: every thread finishes one before the next starts.
                    barrier.wait();
                    for &(licensee, offset) in &requests {
                        let now = Timestamp(T0 + window * 1000 + offset);
                        let d = limiter.check(&format!("l{licensee}"), Endpoint::Search, rate(limit, 1), now);
                        seen.push((licensee, window, d.allowed, d.remaining));
                        if offset % 3 == 0 {
                            std::thread::yield_now();
                        }
                    }
                }
                seen
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Many threads, random interleavings, several licensees and windows: exactly min(requests, limit) allowed per
    /// (licensee, window), and the `remaining` values handed out are exactly limit-1, limit-2, ..., 0 (so no request
    /// was refused while capacity remained and none was counted twice).
    #[test]
    fn exact_under_concurrency(
        limit in 1u64..40,
        windows in 1i64..4,
        threads in proptest::collection::vec(proptest::collection::vec((0usize..3, 0i64..1_000), 1..60), 2..8),
    ) {
        let records = drive(limit, windows, threads);
        let mut groups: std::collections::BTreeMap<(usize, i64), (u64, Vec<u64>)> = Default::default();
        for (licensee, window, allowed, remaining) in &records {
            let g = groups.entry((*licensee, *window)).or_default();
            g.0 += 1;
            if *allowed {
                g.1.push(*remaining);
            } else {
                prop_assert_eq!(*remaining, 0);
            }
        }
        for ((licensee, window), (requests, mut remaining)) in groups {
            let allowed = remaining.len() as u64;
            prop_assert_eq!(allowed, requests.min(limit), "licensee {} window {}", licensee, window);
            remaining.sort_unstable();
            let expected: Vec<u64> = (limit - allowed..limit).collect();
            prop_assert_eq!(remaining, expected);
        }
    }
}

#[test]
fn hammer_one_counter_from_many_threads() {
    // 8 threads × 5,000 requests in one window against a limit of 12,345: exactly 12,345 allowed.
    let limiter = Arc::new(RateLimiter::<String>::new());
    let allowed = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (limiter, allowed, barrier) = (Arc::clone(&limiter), Arc::clone(&allowed), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..5_000 {
                    if limiter.check("acme", Endpoint::Search, rate(12_345, 900), Timestamp(T0 + 5)).allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 12_345);
}

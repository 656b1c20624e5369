//! Fixed-window rate limits shared by every node: `datapact_terms::RateLimiter` in one Lua script.

use std::sync::LazyLock;

use datapact_core::{Endpoint, Timestamp};
use datapact_terms::limiter::{ENDED_KEPT_MS, window_start};
use datapact_terms::{RateDecision, RateLimit};

use crate::{LimiterError, MAX_EXACT, RedisLimiter, exact, exact_signed, parse_int};

static RATE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(concat!(include_str!("lua/prelude.lua"), include_str!("lua/rate.lua"))));

/// The largest `|now|` accepted: window arithmetic (`start + window + keep`) then stays below 2^53.
const MAX_INSTANT_MS: i64 = (MAX_EXACT / 2) as i64;

impl RedisLimiter {
    /// Counts one request of `licensee_id` on `endpoint` at `now` against `rate`, atomically across every node:
    /// allowed (and counted) exactly when fewer than `rate.limit` requests were allowed in the current window.
    ///
    /// The same decision, field for field, as [`datapact_terms::RateLimiter::check`] (see the crate docs).
    pub async fn check_rate(
        &self,
        licensee_id: i64,
        endpoint: Endpoint,
        rate: RateLimit,
        now: Timestamp,
    ) -> Result<RateDecision, LimiterError> {
        self.rate(licensee_id, endpoint, rate, now, Mode::Count).await
    }

    /// The state a request would see at `now`, without counting it: for the headers of responses refused before the
    /// rate step, as [`datapact_terms::RateLimiter::peek`].
    pub async fn peek_rate(
        &self,
        licensee_id: i64,
        endpoint: Endpoint,
        rate: RateLimit,
        now: Timestamp,
    ) -> Result<RateDecision, LimiterError> {
        self.rate(licensee_id, endpoint, rate, now, Mode::Peek).await
    }

    async fn rate(
        &self,
        licensee_id: i64,
        endpoint: Endpoint,
        rate: RateLimit,
        now: Timestamp,
        mode: Mode,
    ) -> Result<RateDecision, LimiterError> {
        let now_ms = now.millis();
        if now_ms.unsigned_abs() > MAX_INSTANT_MS.unsigned_abs() {
            return Err(LimiterError::Invalid(format!("instant {now_ms} ms is past the limiter's range")));
        }
        let limit = exact("rate limit", rate.limit)?;
        let window_ms = exact_signed("rate window", rate.window.millis())?;
        let start_ms = window_start(now_ms, window_ms);
        let key = self.keys().rate(licensee_id, endpoint);
        let mut invocation = RATE.prepare_invoke();
        invocation.key(key).arg(now_ms).arg(start_ms).arg(window_ms).arg(limit).arg(ENDED_KEPT_MS).arg(mode.as_arg());
        let mut connection = self.connection();
        let reply: Vec<String> = self.bounded("rate check", invocation.invoke_async(&mut connection)).await?;
        let counter = Counter::parse(&reply)?;
        Ok(counter.decision(limit, now_ms))
    }
}

/// Whether a check counts the request.
#[derive(Clone, Copy)]
enum Mode {
    Count,
    Peek,
}

impl Mode {
    fn as_arg(self) -> &'static str {
        match self {
            Mode::Count => "count",
            Mode::Peek => "peek",
        }
    }
}

/// The counter as the script left it, and whether the request fit.
#[derive(Debug)]
struct Counter {
    allowed: bool,
    start_ms: i64,
    window_ms: i64,
    count: u64,
}

impl Counter {
    fn parse(reply: &[String]) -> Result<Counter, LimiterError> {
        match reply {
            [status, allowed, start, window, count] if status == "ok" => {
                let allowed = match allowed.as_str() {
                    "1" => true,
                    "0" => false,
                    other => return Err(LimiterError::Corrupt(format!("rate check: allowed {other:?}"))),
                };
                let counter = Counter {
                    allowed,
                    start_ms: parse_int("rate window start", start)?,
                    window_ms: parse_int("rate window", window)?,
                    count: parse_int("rate count", count)?,
                };
                if counter.window_ms <= 0 {
                    return Err(LimiterError::Corrupt(format!("rate check: window {} ms", counter.window_ms)));
                }
                Ok(counter)
            }
            [status, why] if status == "corrupt" => Err(LimiterError::Corrupt(why.clone())),
            _ => Err(LimiterError::Corrupt(format!("rate check: unexpected reply {reply:?}"))),
        }
    }

    /// `RateLimiter`'s decision, with its roundings: the reset rounded up to a whole second, never negative.
    fn decision(&self, limit: u64, now_ms: i64) -> RateDecision {
        let end = self.start_ms.saturating_add(self.window_ms);
        RateDecision {
            allowed: self.allowed,
            limit,
            remaining: limit.saturating_sub(self.count),
            reset_epoch_s: ceil_div(end, 1000),
            window_s: u64::try_from(self.window_ms / 1000).unwrap_or(0),
            reset_after_s: u64::try_from(ceil_div(end.saturating_sub(now_ms), 1000).max(0)).unwrap_or(0),
        }
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replies_of_another_shape_are_errors_not_panics() {
        for bad in [
            reply(&[]),
            reply(&["ok"]),
            reply(&["ok", "2", "0", "1000", "1"]),
            reply(&["ok", "1", "x", "1000", "1"]),
            reply(&["ok", "1", "0", "0", "1"]),
            reply(&["ok", "1", "0", "1000", "-1"]),
            reply(&["corrupt", "why"]),
            reply(&["what"]),
        ] {
            assert!(matches!(Counter::parse(&bad), Err(LimiterError::Corrupt(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_decision_rounds_like_the_in_process_limiter() {
        let counter = Counter::parse(&reply(&["ok", "1", "900000", "900000", "3"])).unwrap();
        let decision = counter.decision(5, 1_000_001);
        assert_eq!(
            decision,
            RateDecision {
                allowed: true,
                limit: 5,
                remaining: 2,
                reset_epoch_s: 1_800,
                window_s: 900,
                reset_after_s: 800
            }
        );
    }
}

//! The rate script is `RateLimiter::check` (and `peek`): on random sequences of requests, Redis's decisions equal the
//! in-process limiter's, field for field.
//!
//! Both keep a counter 60 s after its window ends and treat it as absent after, whenever the in-process limiter sweeps
//! (see the crate docs for the one case where its sweeps can show). The sequences: a fixed rate per (licensee,
//! endpoint) over many minutes, with the clock stepping back by up to 59 s; window lengths changing within one
//! minute, the clock stepping back anywhere in it; and window lengths changing over many minutes on a clock that
//! never steps back.

mod common;

use datapact_core::{Endpoint, Timestamp};
use datapact_terms::{RateLimit, RateLimiter, Span};
use proptest::prelude::*;

const ENDPOINTS: [Endpoint; 2] = [Endpoint::Search, Endpoint::Lookup];

#[derive(Clone, Debug)]
struct Step {
    licensee: i64,
    endpoint: usize,
    /// Milliseconds to move the clock (may be negative: a clock stepped back).
    delta_ms: i64,
    /// Peek rather than count.
    peek: bool,
    /// The rate, in the minute-long sequences where it changes.
    rate: RateLimit,
}

fn rate() -> impl Strategy<Value = RateLimit> {
    (1u64..5, prop::sample::select(vec![1u64, 2, 3, 5, 10, 30]))
        .prop_map(|(limit, seconds)| RateLimit::new(limit, Span::from_seconds(seconds).unwrap()))
}

fn steps(delta: std::ops::Range<i64>) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (1i64..=3, 0usize..2, delta, prop::bool::weighted(0.2), rate())
            .prop_map(|(licensee, endpoint, delta_ms, peek, rate)| Step { licensee, endpoint, delta_ms, peek, rate }),
        0..60,
    )
}

/// Runs `steps` from `start` against both limiters; `rate_of` says which rate applies to a step.
fn compare(
    start: i64,
    steps: &[Step],
    rate_of: impl Fn(&Step) -> RateLimit,
    bounds: (i64, i64),
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let Some(test) = common::connect("rate-model").await else { return Ok(()) };
        let local = RateLimiter::<i64>::new();
        let mut now = start;
        for (i, step) in steps.iter().enumerate() {
            now = (now + step.delta_ms).clamp(bounds.0, bounds.1);
            let (endpoint, rate, at) = (ENDPOINTS[step.endpoint], rate_of(step), Timestamp(now));
            let (want, got) = if step.peek {
                (
                    local.peek(&step.licensee, endpoint, rate, at),
                    test.limiter.peek_rate(step.licensee, endpoint, rate, at).await,
                )
            } else {
                (
                    local.check(&step.licensee, endpoint, rate, at),
                    test.limiter.check_rate(step.licensee, endpoint, rate, at).await,
                )
            };
            prop_assert_eq!(want, got.unwrap(), "step {} at {} with {}", i, now, rate);
        }
        Ok(())
    })
}

/// A fixed rate per (licensee, endpoint), derived from the step's identity.
fn fixed_rate(step: &Step) -> RateLimit {
    let seconds = [1, 2, 5, 10, 3, 30][(step.licensee as usize * 2 + step.endpoint) % 6];
    RateLimit::new(1 + (step.licensee as u64 + step.endpoint as u64) % 4, Span::from_seconds(seconds).unwrap())
}

const T0: i64 = 1_793_577_600_123;

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Minutes of traffic, windows opening and ending, the clock sometimes stepping back (by less than the 60 s an
    /// ended window's counter is kept, so across sweeps too).
    #[test]
    fn fixed_rates_over_many_windows(steps in steps(-59_999..8_000)) {
        compare(T0, &steps, fixed_rate, (i64::MIN, i64::MAX))?;
    }

    /// Rates whose window changes from request to request, within one minute: counts carried over when the old
    /// window overlaps the new one, the clock stepping back anywhere in the minute.
    #[test]
    fn changing_windows_within_a_minute(steps in steps(-20_000..20_000)) {
        compare(T0, &steps, |step| step.rate, (T0, T0 + 59_999))?;
    }

    /// Rates whose window changes, over many minutes: windows that ended are swept in process at times of its own
    /// while Redis expires them, and a new window overlapping an ended one carries its count until it expires.
    #[test]
    fn changing_windows_over_many_minutes(steps in steps(0..90_000)) {
        compare(T0, &steps, |step| step.rate, (i64::MIN, i64::MAX))?;
    }
}

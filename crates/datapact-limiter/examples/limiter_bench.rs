//! Issue 9's limiter benchmark: the per-request cost of deciding through Redis against deciding
//! in the gateway's memory, measured in one run.
//!
//! - **Rate checks**: `RedisLimiter::check_rate` (one script call) against the in-process
//!   `RateLimiter::check`, each from `TASKS` concurrent tasks (what a gateway under load does).
//! - **Reservations**: `RedisLimiter::reserve` + `settle` of a 10-post page under a hard cap with
//!   daily dedup (two round trips: what a metered search costs on a shared limiter) against the
//!   in-process decision, `meter_page_within_credit` over a set in memory (which the single-node
//!   ledger takes under one lock).
//!
//! `cargo run --release -p datapact-limiter --example limiter_bench -- [REQUESTS] [TASKS] [REDIS_URL]`
//! (defaults 20,000 requests, 16 tasks, redis://127.0.0.1:6379; a namespace of its own, deleted after).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datapact_core::{Endpoint, Timestamp};
use datapact_ledger::{Cap, Dedup, Metered, meter_page_within_credit};
use datapact_limiter::{RedisLimiter, ReserveOutcome, ReserveRequest, Seed, SeedValue};
use datapact_terms::{RateLimit, RateLimiter};

const PAGE: i64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let tasks: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(requests, tasks, &url))
}

async fn run(requests: u64, tasks: u64, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let namespace = format!("bench{}", std::process::id());
    let limiter = RedisLimiter::connect(url, &namespace, Duration::from_secs(2)).await?;
    let now = Timestamp::parse_rfc3339("2026-11-29T12:00:00Z").map_err(|e| e.to_string())?;
    let rate = RateLimit::new(1_000_000_000, datapact_terms::limit::Span::from_seconds(60).expect("60 s"));
    println!("requests {requests}, tasks {tasks}, page {PAGE}");

    // Rate checks.
    let per_task = requests / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let limiter = limiter.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let decision = limiter.check_rate(task as i64, Endpoint::Search, rate, now).await.expect("rate check");
                assert!(decision.allowed);
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let redis_rate = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    let local = Arc::new(RateLimiter::<i64>::new());
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let local = Arc::clone(&local);
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                assert!(local.check(&(task as i64), Endpoint::Search, rate, now).allowed);
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let local_rate = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    println!(
        "rate checks: redis {redis_rate:.0}/s ({:.1} µs each), in-process {local_rate:.0}/s ({:.2} µs each)",
        1e6 / redis_rate,
        1e6 / local_rate
    );
    println!("RESULT redis/in-process rate checks per second = {:.4}", redis_rate / local_rate);

    // Reservations: every task's licensee seeded as the ledger would (nothing committed yet).
    let cap = Cap::hard(u64::MAX >> 12);
    for task in 0..tasks as i64 {
        let first = ReserveRequest {
            node: "bench",
            request_id: &format!("seed-{task}"),
            licensee_id: task,
            at: now,
            cap,
            dedup: Dedup::Daily,
            page: &[],
            prepaid: None,
        };
        if let ReserveOutcome::Unseeded(missing) = limiter.reserve(first).await? {
            for seed in missing {
                let value = match seed {
                    Seed::Month { licensee_id, month } => SeedValue::Month { licensee_id, month, total: 0 },
                    Seed::Day { licensee_id, day } => SeedValue::Day { licensee_id, day, posts: Vec::new() },
                    Seed::Charged { licensee_id } => SeedValue::Charged { licensee_id, micros: 0 },
                };
                limiter.seed(&value, now).await?;
            }
        }
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let limiter = limiter.clone();
        handles.push(tokio::spawn(async move {
            for request in 0..per_task {
                let first = (request as i64) * PAGE;
                let page: Vec<i64> = (first..first + PAGE).collect();
                let request_id = format!("r-{task}-{request}");
                let asked = ReserveRequest {
                    node: "bench",
                    request_id: &request_id,
                    licensee_id: task as i64,
                    at: now,
                    cap,
                    dedup: Dedup::Daily,
                    page: &page,
                    prepaid: None,
                };
                match limiter.reserve(asked).await.expect("reserve") {
                    ReserveOutcome::Serve { id, .. } => {
                        limiter.settle(&id).await.expect("settle");
                    }
                    other => panic!("not served: {other:?}"),
                }
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let redis_reserve = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    // In process: the same decision over a month total and a day set in memory, under one lock.
    let meter = Arc::new(std::sync::Mutex::new((0u64, HashSet::<i64>::new())));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let meter = Arc::clone(&meter);
        handles.push(tokio::spawn(async move {
            for request in 0..per_task {
                let first = (request as i64) * PAGE;
                let page: Vec<i64> = (first..first + PAGE).collect();
                let mut state = meter.lock().expect("meter");
                let (used, today) = &mut *state;
                let Metered::Serve(allotment) =
                    meter_page_within_credit(*used, cap, None, Dedup::Daily, &page, |id| today.contains(&id))
                else {
                    panic!("refused")
                };
                *used = allotment.used_after;
                today.extend(page.iter().zip(&allotment.counts).filter(|(_, c)| **c).map(|(id, _)| *id));
            }
        }));
    }
    for handle in handles {
        handle.await?;
    }
    let local_reserve = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    println!(
        "reservations (reserve + settle): redis {redis_reserve:.0}/s ({:.1} µs each), in-process {local_reserve:.0}/s ({:.2} µs each)",
        1e6 / redis_reserve,
        1e6 / local_reserve
    );
    println!("RESULT redis/in-process reservations per second = {:.4}", redis_reserve / local_reserve);
    // Leave nothing behind: the namespace's keys.
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("dp:{namespace}:*")).query_async(&mut conn).await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}

//! Redis going away: every call answers `Unavailable` within the timeout instead of hanging, and once a Redis is
//! back on the same address the same limiter works again (after seeding: the new server is empty).
//!
//! Runs its own `redis-server` on a free port and stops that one; the machine's shared Redis is never touched.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datapact_core::Endpoint;
use datapact_ledger::{Cap, Dedup};
use datapact_limiter::{LimiterError, RedisLimiter, ReserveOutcome, ReserveRequest};
use datapact_terms::{RateLimit, Span};

const TIMEOUT: Duration = Duration::from_millis(300);

/// A `redis-server` of this test's own, killed when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Option<Server> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Some(Server(child)),
            Err(error) => {
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!("redis-server cannot be started ({error}), and CI=true requires it");
                }
                eprintln!("SKIPPED: redis_outage (no redis-server binary: {error})");
                None
            }
        }
    }

    fn stop(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects once the server answers (it takes a few milliseconds to listen).
async fn connect_when_up(url: &str) -> RedisLimiter {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RedisLimiter::connect(url, "outage", TIMEOUT).await {
            Ok(limiter) => return limiter,
            Err(error) if Instant::now() > deadline => panic!("redis-server at {url} never answered: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn request(request_id: &str) -> ReserveRequest<'_> {
    ReserveRequest {
        node: "gw-1",
        request_id,
        licensee_id: 9,
        at: common::november(1, 0),
        cap: Cap::hard(10),
        dedup: Dedup::Daily,
        page: &[1, 2, 3],
        prepaid: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_redis_is_down_and_work_again_when_it_is_back() {
    let port = free_port();
    let Some(server) = Server::start(port) else { return };
    let url = format!("redis://127.0.0.1:{port}");
    let limiter = connect_when_up(&url).await;
    let rate = RateLimit::new(5, Span::from_seconds(60).unwrap());
    let now = common::november(1, 0);
    assert!(limiter.check_rate(9, Endpoint::Search, rate, now).await.unwrap().allowed);
    assert!(matches!(
        common::reserve_seeded(&limiter, request("before"), common::nothing_committed).await.unwrap(),
        ReserveOutcome::Serve { .. }
    ));

    server.stop();
    for attempt in 0..3 {
        let started = Instant::now();
        let rate_check = limiter.check_rate(9, Endpoint::Search, rate, now).await;
        let reserve = limiter.reserve(request(&format!("down-{attempt}"))).await;
        let outstanding = limiter.outstanding("gw-1").await;
        let elapsed = started.elapsed();
        assert!(matches!(rate_check, Err(LimiterError::Unavailable(_))), "{rate_check:?}");
        assert!(matches!(reserve, Err(LimiterError::Unavailable(_))), "{reserve:?}");
        assert!(matches!(outstanding, Err(LimiterError::Unavailable(_))), "{outstanding:?}");
        assert!(elapsed < 3 * TIMEOUT + Duration::from_millis(300), "three calls took {elapsed:?}");
    }

    // Back on the same port, empty: the same limiter answers again, asks for seeds, then serves.
    let Some(server) = Server::start(port) else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    let decision = loop {
        match limiter.check_rate(9, Endpoint::Search, rate, now).await {
            Ok(decision) => break decision,
            Err(error) if Instant::now() > deadline => panic!("the limiter never came back: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!((decision.allowed, decision.remaining), (true, 4), "the new server starts from zero");
    assert!(matches!(limiter.reserve(request("after")).await.unwrap(), ReserveOutcome::Unseeded(_)));
    assert!(matches!(
        common::reserve_seeded(&limiter, request("after"), common::nothing_committed).await.unwrap(),
        ReserveOutcome::Serve { .. }
    ));
    server.stop();
}

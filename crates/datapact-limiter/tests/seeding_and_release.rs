//! Seeding from the ledger, exact release, settlement, reconciliation and bad input, against real Redis.

mod common;

use datapact_core::Timestamp;
use datapact_ledger::{Cap, DayKey, Dedup, MonthKey};
use datapact_limiter::{
    LimiterError, MAX_PAGE, PrepaidTerms, ReservationId, ReserveOutcome, ReserveRequest, Seed, SeedValue,
};

const TERMS: PrepaidTerms = PrepaidTerms { per_record_micros: 1_000, included_records: 0, credited_micros: 50_000 };

fn request<'a>(request_id: &'a str, page: &'a [i64]) -> ReserveRequest<'a> {
    ReserveRequest {
        node: "gw-1",
        request_id,
        licensee_id: 42,
        at: common::november(5, 3_600_000),
        cap: Cap::hard(1_000),
        dedup: Dedup::Daily,
        page,
        prepaid: Some(TERMS),
    }
}

fn served(outcome: ReserveOutcome) -> (ReservationId, datapact_ledger::Allotment, Option<i64>) {
    match outcome {
        ReserveOutcome::Serve { id, allotment, balance_before } => (id, allotment, balance_before),
        other => panic!("not served: {other:?}"),
    }
}

const MONTH: &str = "{lic:42}:month:2026-11";
const DAY: &str = "{lic:42}:day:2026-11-07";
const CHARGED: &str = "{lic:42}:charged";

#[tokio::test]
async fn missing_values_are_reported_seeded_once_and_reported_again_when_lost() {
    let Some(test) = common::connect("seeding").await else { return };
    let limiter = &test.limiter;
    let at = request("r", &[]).at;
    let (month, day) = (MonthKey::of(at), DayKey::of(at));
    assert_eq!(day.to_string(), "2026-11-07");

    // A fresh namespace knows nothing, and says so rather than assume zero.
    assert_eq!(
        limiter.reserve(request("r1", &[1, 2, 3])).await.unwrap(),
        ReserveOutcome::Unseeded(vec![
            Seed::Month { licensee_id: 42, month },
            Seed::Day { licensee_id: 42, day },
            Seed::Charged { licensee_id: 42 },
        ])
    );
    assert!(limiter.outstanding("gw-1").await.unwrap().is_empty(), "an unseeded reserve recorded something");

    // The ledger's committed values: 995 of 1,000 counted, posts 1 and 2 counted today, 48,000 of 50,000 charged.
    assert!(limiter.seed(&SeedValue::Month { licensee_id: 42, month, total: 995 }, at).await.unwrap());
    assert!(limiter.seed(&SeedValue::Day { licensee_id: 42, day, posts: vec![1, 2] }, at).await.unwrap());
    assert!(limiter.seed(&SeedValue::Charged { licensee_id: 42, micros: 48_000 }, at).await.unwrap());
    // Seeding again changes nothing: another node's (or a stale) read never overwrites counts.
    assert!(!limiter.seed(&SeedValue::Month { licensee_id: 42, month, total: 0 }, at).await.unwrap());

    // Posts 1 and 2 ride free; 3 and 4 cost the two records the credit pays for; 5 is cut.
    let (_, allotment, balance) = served(limiter.reserve(request("r1", &[1, 2, 3, 4, 5])).await.unwrap());
    assert_eq!((allotment.delivered, allotment.counted, allotment.cut), (4, 2, true));
    assert_eq!((allotment.used_after, allotment.charge, balance), (997, 2_000, Some(2_000)));
    assert!(matches!(
        limiter.reserve(request("r2", &[6])).await.unwrap(),
        ReserveOutcome::NoCredit(e) if e.balance_micros == 0 && e.per_record_micros == 1_000
    ));

    // A key lost (flushed, expired) is reported again, never taken as zero.
    let _: u64 = redis::cmd("DEL").arg(test.key(MONTH)).query_async(&mut test.raw().await).await.unwrap();
    assert_eq!(
        limiter.reserve(request("r3", &[7])).await.unwrap(),
        ReserveOutcome::Unseeded(vec![Seed::Month { licensee_id: 42, month }])
    );
}

async fn state(test: &common::TestLimiter) -> (Option<String>, Vec<String>, Option<String>) {
    let mut day: Vec<String> = redis::cmd("HKEYS").arg(test.key(DAY)).query_async(&mut test.raw().await).await.unwrap();
    day.sort();
    (test.field(MONTH, "n").await, day, test.field(CHARGED, "n").await)
}

#[tokio::test]
async fn release_undoes_exactly_once_and_settle_keeps_the_counts() {
    let Some(test) = common::connect("release").await else { return };
    let limiter = &test.limiter;
    let at = request("r", &[]).at;
    let (_, _, _) =
        served(common::reserve_seeded(limiter, request("a", &[1, 2]), common::nothing_committed).await.unwrap());
    let before = state(&test).await;
    assert_eq!(before, (Some("2".into()), vec!["#g".into(), "1".into(), "2".into()], Some("2000".into())));

    // Post 2 is free (counted by "a"), 3 and 3 again cost one.
    let (b, allotment, _) = served(limiter.reserve(request("b", &[2, 3, 3])).await.unwrap());
    assert_eq!((allotment.counted, allotment.charge), (1, 1_000));
    let (c, _, _) = served(limiter.reserve(request("c", &[4])).await.unwrap());
    assert!(matches!(limiter.reserve(request("c", &[5])).await, Err(LimiterError::Invalid(_))), "a duplicate id");

    let listed: Vec<String> = limiter.outstanding("gw-1").await.unwrap().into_iter().map(|r| r.id.request_id).collect();
    assert_eq!(listed, ["a", "b", "c"]);
    let record = limiter.outstanding("gw-1").await.unwrap().remove(1);
    assert_eq!((record.id.clone(), record.counted, record.charge, record.posts), (b.clone(), 1, 1_000, vec![3]));

    // Settle c (committed): its counts stay. Release b: exactly its counts go back. Twice changes nothing.
    assert!(limiter.settle(&c).await.unwrap());
    assert!(!limiter.settle(&c).await.unwrap());
    assert!(!limiter.release(&c).await.unwrap(), "a settled reservation gave its counts back");
    assert!(limiter.release(&b).await.unwrap());
    assert!(!limiter.release(&b).await.unwrap());
    let after = state(&test).await;
    assert_eq!(after, (Some("3".into()), vec!["#g".into(), "1".into(), "2".into(), "4".into()], Some("3000".into())));
    let listed: Vec<String> = limiter.outstanding("gw-1").await.unwrap().into_iter().map(|r| r.id.request_id).collect();
    assert_eq!(listed, ["a"]);
    assert!(limiter.outstanding("gw-2").await.unwrap().is_empty());

    // A key seeded anew after the reservation holds committed values only: releasing gives nothing back to it.
    let _: u64 = redis::cmd("DEL").arg(test.key(MONTH)).query_async(&mut test.raw().await).await.unwrap();
    let month = MonthKey::of(at);
    assert!(limiter.seed(&SeedValue::Month { licensee_id: 42, month, total: 100 }, at).await.unwrap());
    let a = ReservationId { licensee_id: 42, node: "gw-1".into(), request_id: "a".into(), at };
    assert!(limiter.release(&a).await.unwrap());
    let after = state(&test).await;
    assert_eq!(after, (Some("100".into()), vec!["#g".into(), "4".into()], Some("1000".into())));
}

#[tokio::test]
async fn bad_input_and_bad_state_are_errors_not_panics() {
    let Some(test) = common::connect("bad-input").await else { return };
    let limiter = &test.limiter;
    let long = vec![1; MAX_PAGE + 1];
    for bad in [
        request("r", &long),
        ReserveRequest { node: "gw{1}", ..request("r", &[1]) },
        ReserveRequest { request_id: "a|b", ..request("r", &[1]) },
        ReserveRequest { cap: Cap::hard(1 << 53), ..request("r", &[1]) },
        ReserveRequest { at: Timestamp(-1), ..request("r", &[1]) },
        ReserveRequest { prepaid: Some(PrepaidTerms { credited_micros: i64::MIN, ..TERMS }), ..request("r", &[1]) },
    ] {
        assert!(matches!(limiter.reserve(bad).await, Err(LimiterError::Invalid(_))), "{bad:?}");
    }

    served(common::reserve_seeded(limiter, request("a", &[1]), common::nothing_committed).await.unwrap());
    let mut raw = test.raw().await;
    let _: u64 = redis::cmd("HSET").arg(test.key(MONTH)).arg("n").arg("1.5").query_async(&mut raw).await.unwrap();
    assert!(matches!(limiter.reserve(request("b", &[2])).await, Err(LimiterError::Corrupt(_))));
    let _: u64 =
        redis::cmd("HSET").arg(test.key(MONTH)).arg("n").arg("99999999999999999").query_async(&mut raw).await.unwrap();
    assert!(matches!(limiter.reserve(request("b", &[2])).await, Err(LimiterError::Corrupt(_))));
    let pending = test.key("{lic:42}:pending:gw-1");
    let _: u64 = redis::cmd("HSET").arg(&pending).arg("x").arg("1|oops").query_async(&mut raw).await.unwrap();
    assert!(matches!(limiter.outstanding("gw-1").await, Err(LimiterError::Corrupt(_))));
    let x = ReservationId { licensee_id: 42, node: "gw-1".into(), request_id: "x".into(), at: request("x", &[]).at };
    assert!(matches!(limiter.release(&x).await, Err(LimiterError::Corrupt(_))));
}

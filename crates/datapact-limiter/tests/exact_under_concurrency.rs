//! Caps and credits stay exact when many tasks on three "nodes" reserve at once: a hard cap of 1,000 counts exactly
//! 1,000, also after releasing some and reserving again, and charges never pass the credit.

mod common;

use std::sync::Arc;

use datapact_ledger::{Cap, Dedup};
use datapact_limiter::{PrepaidTerms, RedisLimiter, ReservationId, ReserveOutcome, ReserveRequest};
use rand::{Rng, SeedableRng, rngs::StdRng};

const TASKS: usize = 8;
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// One task's reservations: what it was served (id, counted, charge), and how many were refused.
struct Served {
    held: Vec<(ReservationId, u64, u64)>,
    refused: usize,
}

/// `TASKS` tasks reserve `per_task` random pages each (1 to 20 posts) for licensee 1.
async fn hammer(
    limiter: &RedisLimiter,
    round: &str,
    per_task: usize,
    cap: Cap,
    prepaid: Option<PrepaidTerms>,
) -> Vec<Served> {
    let limiter = Arc::new(limiter.clone());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let limiter = limiter.clone();
        let round = round.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(task as u64);
            let mut served = Served { held: Vec::new(), refused: 0 };
            for i in 0..per_task {
                let page: Vec<i64> = (0..rng.random_range(1..=20)).map(|_| rng.random_range(1..1_000_000)).collect();
                let request = ReserveRequest {
                    node: NODES[task % NODES.len()],
                    request_id: &format!("{round}-{task}-{i}"),
                    licensee_id: 1,
                    at: common::november(3, 1_000),
                    cap,
                    dedup: Dedup::None,
                    page: &page,
                    prepaid,
                };
                match common::reserve_seeded(&limiter, request, common::nothing_committed).await.unwrap() {
                    ReserveOutcome::Serve { id, allotment, .. } => {
                        assert!(allotment.delivered >= 1, "served nothing while capacity remained");
                        served.held.push((id, u64::from(allotment.counted), allotment.charge));
                    }
                    ReserveOutcome::Refused(_) | ReserveOutcome::NoCredit(_) => served.refused += 1,
                    ReserveOutcome::Unseeded(missing) => panic!("still unseeded: {missing:?}"),
                }
            }
            served
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_cap_of_1000_counts_exactly_1000_across_nodes() {
    let Some(test) = common::connect("cap-concurrency").await else { return };
    let limiter = &test.limiter;
    let cap = Cap::hard(1_000);

    let served = hammer(limiter, "first", 300, cap, None).await;
    let counted: u64 = served.iter().flat_map(|s| &s.held).map(|(_, counted, _)| counted).sum();
    assert_eq!(counted, 1_000, "the reservations counted {counted}");
    assert!(served.iter().map(|s| s.refused).sum::<usize>() > 0, "the cap was never reached");
    let month_total = test.field("{lic:1}:month:2026-11", "n").await;
    assert_eq!(month_total.as_deref(), Some("1000"));

    // Every reservation is outstanding on its node until settled or released.
    let mut listed = 0;
    for node in NODES {
        listed += limiter.outstanding(node).await.unwrap().len();
    }
    assert_eq!(listed, served.iter().map(|s| s.held.len()).sum::<usize>());

    // Release every third reservation, settle the others, and reserve again: back at exactly the cap.
    let mut released = 0;
    for (i, (id, counted, _)) in served.iter().flat_map(|s| &s.held).enumerate() {
        if i % 3 == 0 {
            assert!(limiter.release(id).await.unwrap());
            released += counted;
        } else {
            assert!(limiter.settle(id).await.unwrap());
        }
    }
    assert!(released > 0);
    let again = hammer(limiter, "second", 100, cap, None).await;
    let recounted: u64 = again.iter().flat_map(|s| &s.held).map(|(_, counted, _)| counted).sum();
    assert_eq!(recounted, released, "released {released}, reserved again {recounted}");
    assert_eq!(test.field("{lic:1}:month:2026-11", "n").await.as_deref(), Some("1000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_never_pass_a_prepaid_credit_across_nodes() {
    let Some(test) = common::connect("credit-concurrency").await else { return };
    let limiter = &test.limiter;
    // 100 included records, then 7,000 micro-units a record from a 3,000,000 credit: at most 528 records.
    let terms = PrepaidTerms { per_record_micros: 7_000, included_records: 100, credited_micros: 3_000_000 };
    let served = hammer(limiter, "credit", 200, Cap::UNLIMITED, Some(terms)).await;
    let charged: u64 = served.iter().flat_map(|s| &s.held).map(|(_, _, charge)| charge).sum();
    let counted: u64 = served.iter().flat_map(|s| &s.held).map(|(_, counted, _)| counted).sum();
    assert!(charged <= 3_000_000, "charged {charged} of a 3,000,000 credit");
    // The credit is used up to less than one record's price, and every counted record past 100 was charged.
    assert_eq!(counted, 100 + 3_000_000 / 7_000);
    assert_eq!(charged, (counted - 100) * 7_000);
    assert_eq!(test.field("{lic:1}:charged", "n").await, Some(charged.to_string()));
}

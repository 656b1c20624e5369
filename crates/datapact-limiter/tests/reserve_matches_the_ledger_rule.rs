//! The reserve script is `meter_page_within_credit`: on random sequences of reserve, settle and release over a few
//! licensees with random caps, dedup and prepaid terms, Redis's outcomes equal a model that applies the Rust rule to
//! in-memory counts, and its outstanding reservations are exactly the model's unsettled ones.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};

use datapact_ledger::{Cap, DayKey, Dedup, Metered, MonthKey, Prepaid, meter_page_within_credit};
use datapact_limiter::{PrepaidTerms, ReservationId, ReserveOutcome, ReserveRequest, Seed, SeedValue};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Licensee {
    cap: Cap,
    dedup: Dedup,
    prepaid: Option<PrepaidTerms>,
    /// What the ledger holds before the test: the month's total, posts counted on day 0, micro-units charged.
    committed_total: u64,
    committed_day0: Vec<i64>,
    committed_charged: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Reserve { licensee: usize, node: usize, day: u8, page: Vec<i64> },
    Settle(usize),
    Release(usize),
}

fn licensee() -> impl Strategy<Value = Licensee> {
    let cap = prop_oneof![(0u64..40).prop_map(Cap::hard), (0u64..40).prop_map(Cap::soft), Just(Cap::UNLIMITED)];
    let dedup = prop_oneof![Just(Dedup::Daily), Just(Dedup::None)];
    let prepaid = prop::option::of((0u64..3_000, 0u64..15, -2_000i64..40_000).prop_map(
        |(per_record_micros, included_records, credited_micros)| PrepaidTerms {
            per_record_micros,
            included_records,
            credited_micros,
        },
    ));
    (cap, dedup, prepaid, 0u64..20, prop::collection::vec(1i64..12, 0..4), 0u64..5_000).prop_map(
        |(cap, dedup, prepaid, committed_total, committed_day0, committed_charged)| Licensee {
            cap,
            dedup,
            prepaid,
            committed_total,
            committed_day0,
            committed_charged,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, 0usize..2, 0u8..3, prop::collection::vec(1i64..12, 0..8))
            .prop_map(|(licensee, node, day, page)| Op::Reserve { licensee, node, day, page }),
        2 => any::<usize>().prop_map(Op::Settle),
        2 => any::<usize>().prop_map(Op::Release),
    ]
}

/// An unsettled reservation in the model.
struct Held {
    id: ReservationId,
    licensee: usize,
    day: u8,
    counted: u64,
    charge: u64,
    posts: Vec<i64>,
}

/// The counts every node would see: committed plus reserved.
#[derive(Default)]
struct Model {
    used: HashMap<usize, u64>,
    days: HashMap<(usize, u8), HashSet<i64>>,
    charged: HashMap<usize, u64>,
    held: Vec<Held>,
}

const NODES: [&str; 2] = ["gw-a", "gw-b"];

fn run_case(licensees: Vec<Licensee>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let Some(test) = common::connect("reserve-model").await else { return Ok(()) };
        let limiter = test.limiter.clone();
        let mut model = Model::default();
        for (index, licensee) in licensees.iter().enumerate() {
            model.used.insert(index, licensee.committed_total);
            model.charged.insert(index, licensee.committed_charged);
            model.days.insert((index, 0), licensee.committed_day0.iter().copied().collect());
        }
        let day_of = |day: DayKey| (day.date() - common::november(0, 0).to_datetime().date_naive()).num_days() as u8;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Reserve { licensee: which, node, day, page } => {
                    let which = which % licensees.len();
                    let terms = &licensees[which];
                    let licensee_id = which as i64 + 1;
                    let at = common::november(day, step as i64 * 1_000);
                    let used = model.used[&which];
                    let charged = model.charged[&which];
                    let today = model.days.entry((which, day)).or_default().clone();
                    let balance = terms.prepaid.map(|t| t.credited_micros - charged as i64);
                    let prepaid = terms.prepaid.map(|t| Prepaid {
                        per_record_micros: t.per_record_micros,
                        included_records: t.included_records,
                        balance_micros: t.credited_micros - charged as i64,
                    });
                    let expected =
                        meter_page_within_credit(used, terms.cap, prepaid, terms.dedup, &page, |p| today.contains(&p));
                    let request = ReserveRequest {
                        node: NODES[node],
                        request_id: &format!("req-{step}"),
                        licensee_id,
                        at,
                        cap: terms.cap,
                        dedup: terms.dedup,
                        page: &page,
                        prepaid: terms.prepaid,
                    };
                    // Seeding from the ledger as it was before the test (nothing here commits).
                    let outcome = common::reserve_seeded(&limiter, request, |seed| match seed {
                        Seed::Month { licensee_id, month } => {
                            assert_eq!(month, MonthKey::of(at));
                            SeedValue::Month { licensee_id, month, total: terms.committed_total }
                        }
                        Seed::Day { licensee_id, day } => SeedValue::Day {
                            licensee_id,
                            day,
                            posts: if day_of(day) == 0 { terms.committed_day0.clone() } else { Vec::new() },
                        },
                        Seed::Charged { licensee_id } => {
                            SeedValue::Charged { licensee_id, micros: terms.committed_charged }
                        }
                    })
                    .await
                    .unwrap();
                    match (expected, outcome) {
                        (Metered::Refused(want), ReserveOutcome::Refused(got)) => prop_assert_eq!(want, got),
                        (Metered::NoCredit(want), ReserveOutcome::NoCredit(got)) => prop_assert_eq!(want, got),
                        (Metered::Serve(want), ReserveOutcome::Serve { id, allotment, balance_before }) => {
                            prop_assert_eq!(&want, &allotment);
                            prop_assert_eq!(balance, balance_before);
                            let posts: Vec<i64> = if terms.dedup == Dedup::Daily {
                                page.iter().zip(&allotment.counts).filter(|(_, c)| **c).map(|(p, _)| *p).collect()
                            } else {
                                Vec::new()
                            };
                            model.used.insert(which, allotment.used_after);
                            model.charged.insert(which, charged + allotment.charge);
                            model.days.entry((which, day)).or_default().extend(&posts);
                            model.held.push(Held {
                                id,
                                licensee: which,
                                day,
                                counted: u64::from(allotment.counted),
                                charge: allotment.charge,
                                posts,
                            });
                        }
                        (want, got) => prop_assert!(false, "step {}: the rule says {:?}, Redis {:?}", step, want, got),
                    }
                }
                Op::Settle(which) if !model.held.is_empty() => {
                    let held = model.held.remove(which % model.held.len());
                    prop_assert!(limiter.settle(&held.id).await.unwrap());
                    prop_assert!(!limiter.settle(&held.id).await.unwrap());
                    prop_assert!(!limiter.release(&held.id).await.unwrap(), "a settled reservation was released");
                }
                Op::Release(which) if !model.held.is_empty() => {
                    let held = model.held.remove(which % model.held.len());
                    prop_assert!(limiter.release(&held.id).await.unwrap());
                    prop_assert!(!limiter.release(&held.id).await.unwrap(), "released twice");
                    *model.used.get_mut(&held.licensee).unwrap() -= held.counted;
                    *model.charged.get_mut(&held.licensee).unwrap() -= held.charge;
                    let day = model.days.entry((held.licensee, held.day)).or_default();
                    for post in &held.posts {
                        day.remove(post);
                    }
                }
                Op::Settle(_) | Op::Release(_) => {}
            }
        }
        // Outstanding: exactly the model's unsettled reservations, per node.
        for node in NODES {
            let listed: BTreeSet<_> = limiter
                .outstanding(node)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.counted, r.charge, r.posts))
                .collect();
            let held: BTreeSet<_> = model
                .held
                .iter()
                .filter(|h| h.id.node == node)
                .map(|h| (h.id.clone(), h.counted, h.charge, h.posts.clone()))
                .collect();
            prop_assert_eq!(listed, held);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn redis_decides_as_meter_page_within_credit(
        licensees in prop::collection::vec(licensee(), 1..=3),
        ops in prop::collection::vec(op(), 0..30),
    ) {
        run_case(licensees, ops)?;
    }
}

//! Adversarial tests of the SQLite metering ledger (`datapact_store::ledger::Ledger`): exact caps under
//! concurrency, daily dedup, durability across restarts, failing closed, tamper detection, pruning,
//! idempotency claims and the read-back views.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datapact_core::purpose::Purpose;
use datapact_core::{Clock, Endpoint, KeyPrefix, ManualClock, Timestamp};
use datapact_ledger::{Anchor, Cap, ChainBreak, DayKey, Dedup, MonthKey, RequestFingerprint};
use datapact_store::ledger::{
    ChainAnchor, Claim, DeliveryRecord, EventFacts, IdempotentResponse, LEDGER_FILE, Ledger, MeterRequest,
    PrepaidTerms, Reservation, Reserved, UsageBy, VerifyFailure, VerifyReport, synchronous_level,
};
use rusqlite::Connection;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// 2026-03-02T00:00:00Z: a Monday in the middle of nothing special.
fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-02T00:00:00Z").unwrap()
}

fn open(dir: &Path, clock: &ManualClock) -> Ledger {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    Ledger::open(dir, clock).unwrap()
}

fn fresh() -> (tempfile::TempDir, ManualClock, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let ledger = open(dir.path(), &clock);
    (dir, clock, ledger)
}

fn facts(request_id: &str) -> EventFacts {
    facts_for(request_id, Endpoint::Search, Purpose::AiInput)
}

fn facts_for(request_id: &str, endpoint: Endpoint, purpose: Purpose) -> EventFacts {
    EventFacts {
        key_prefix: KeyPrefix("dp_0123456789ab".into()),
        endpoint,
        purpose,
        request_id: request_id.into(),
        idempotency_key: None,
        user_reads: 1,
        bytes: 100,
    }
}

fn page(ids: &[i64]) -> Vec<(i64, u32)> {
    ids.iter().map(|&id| (id, (id % 3) as u32 + 1)).collect()
}

fn anchor(anchor: Anchor) -> ChainAnchor {
    ChainAnchor { chain: None, anchor }
}

fn block<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

fn reserve(ledger: &Ledger, licensee_id: i64, cap: Cap, dedup: Dedup, page: &[(i64, u32)], at: Timestamp) -> Reserved {
    block(ledger.reserve(MeterRequest { licensee_id, request_id: "test", cap, dedup, page, at, prepaid: None }))
        .unwrap()
}

fn serve(ledger: &Ledger, licensee_id: i64, cap: Cap, dedup: Dedup, page: &[(i64, u32)], at: Timestamp) -> Reservation {
    match reserve(ledger, licensee_id, cap, dedup, page, at) {
        Reserved::Serve(reservation) => reservation,
        refused => panic!("refused while capacity should remain: {refused:?}"),
    }
}

/// Reserves and commits one response; returns the counts it took.
fn deliver(
    ledger: &Ledger,
    licensee_id: i64,
    cap: Cap,
    dedup: Dedup,
    ids: &[i64],
    at: Timestamp,
    id: &str,
) -> Vec<bool> {
    let reservation = serve(ledger, licensee_id, cap, dedup, &page(ids), at);
    let counts = reservation.allotment().counts.clone();
    block(reservation.commit(facts(id), None)).unwrap();
    counts
}

fn verified(ledger: &Ledger) -> VerifyReport {
    match block(ledger.verify(&[])).unwrap() {
        Ok(report) => report,
        Err(failure) => panic!("an untouched ledger failed verification: {failure}"),
    }
}

fn broken(ledger: &Ledger, expect: Option<Anchor>) -> VerifyFailure {
    match block(ledger.verify(&expect.map(anchor).into_iter().collect::<Vec<_>>())).unwrap() {
        Ok(report) => panic!("tampering went unnoticed: {report:?}"),
        Err(failure) => failure,
    }
}

fn chain_break(failure: VerifyFailure) -> ChainBreak {
    match failure {
        VerifyFailure::Chain(broken) => broken,
        other => panic!("expected a chain break, got {other:?}"),
    }
}

/// A delivery row's key in SQLite's ledger: its place in the chain, `seq << 20 | ordinal`.
fn position(seq: i64, ordinal: i64) -> i64 {
    (seq << 20) | ordinal
}

fn sql(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join(LEDGER_FILE)).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    conn
}

fn all_deliveries(ledger: &Ledger, licensee_id: i64, month: MonthKey) -> Vec<DeliveryRecord> {
    let mut out = Vec::new();
    let n = block(ledger.deliveries(licensee_id, month, |record| {
        out.push(record);
        Ok(())
    }))
    .unwrap();
    assert_eq!(n as usize, out.len());
    out
}

/// A small deterministic generator (xorshift64*), so the tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `len` distinct ids from `0..space`.
    fn distinct(&mut self, len: usize, space: u64) -> Vec<i64> {
        let mut seen = HashSet::new();
        let mut ids = Vec::with_capacity(len);
        while ids.len() < len {
            let id = self.below(space) as i64;
            if seen.insert(id) {
                ids.push(id);
            }
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Exact caps under concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hard_cap_is_exact_under_many_threads() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    // Two licensees hammered at once: one with a cap of 1,000, one of 333, so counts must not leak.
    let caps = [(1_i64, 1_000_u64), (2, 333)];
    let counted: Vec<AtomicU64> = caps.iter().map(|_| AtomicU64::new(0)).collect();
    let cuts = AtomicU64::new(0);
    let refusals = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..24_u64 {
            let (ledger, counted, cuts, refusals) = (&ledger, &counted, &cuts, &refusals);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(thread + 1);
                let (slot, (licensee, limit)) = if thread % 3 == 2 { (1, caps[1]) } else { (0, caps[0]) };
                let mut refused_in_a_row = 0;
                let mut request = 0;
                while refused_in_a_row < 3 {
                    let len = 1 + rng.below(100) as usize;
                    let ids = page(&rng.distinct(len, 1_000_000));
                    match reserve(ledger, licensee, Cap::hard(limit), Dedup::None, &ids, at) {
                        Reserved::Refused(capped) => {
                            assert_eq!((capped.limit, capped.used), (limit, limit), "refused before the cap");
                            refusals.fetch_add(1, Ordering::SeqCst);
                            refused_in_a_row += 1;
                        }
                        Reserved::NoCredit(_) => panic!("no credit without a prepaid licensee"),
                        Reserved::Serve(reservation) => {
                            refused_in_a_row = 0;
                            let posts = reservation.posts().to_vec();
                            assert!(!posts.is_empty(), "a served reservation delivers something");
                            assert_eq!(posts[..], ids[..posts.len()], "the reservation is a prefix of the page");
                            let allotment = reservation.allotment().clone();
                            assert_eq!(allotment.delivered, posts.len());
                            assert_eq!(allotment.counted as usize, posts.len(), "without dedup every post counts");
                            assert_eq!(reservation.cut(), posts.len() < ids.len());
                            if reservation.cut() {
                                cuts.fetch_add(1, Ordering::SeqCst);
                            }
                            request += 1;
                            let id = format!("t{thread}-r{request}");
                            runtime.block_on(reservation.commit(facts(&id), None)).unwrap();
                            counted[slot].fetch_add(allotment.counted as u64, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    for ((licensee, limit), counted) in caps.iter().zip(&counted) {
        assert_eq!(counted.load(Ordering::SeqCst), *limit, "licensee {licensee}: served exactly the cap");
        assert_eq!(block(ledger.month_counted(*licensee, month)).unwrap(), *limit);
        match reserve(&ledger, *licensee, Cap::hard(*limit), Dedup::None, &page(&[1]), at) {
            Reserved::Refused(capped) => assert_eq!((capped.limit, capped.used), (*limit, *limit)),
            Reserved::Serve(r) => panic!("served past the cap: {:?}", r.posts()),
            Reserved::NoCredit(_) => panic!("no credit without a prepaid licensee"),
        }
        let deliveries = all_deliveries(&ledger, *licensee, month);
        assert_eq!(deliveries.len() as u64, *limit);
        assert!(deliveries.iter().all(|d| d.counted));
    }
    // At most one page per licensee can be the one that crosses.
    assert!(cuts.load(Ordering::SeqCst) <= 2, "more than one crossing page per licensee");
    assert!(refusals.load(Ordering::SeqCst) >= 24 * 3);
    let report = verified(&ledger);
    let events: u64 = block(ledger.usage(None, month, UsageBy::Month)).unwrap().iter().map(|l| l.responses).sum();
    assert_eq!(report.chains[0].rows, 1_333 + events);
}

#[test]
fn a_crossing_page_is_cut_to_what_is_left() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0();
    let cap = Cap::hard(10);
    deliver(&ledger, 1, cap, Dedup::None, &[1, 2, 3, 4, 5, 6, 7], at, "a");
    let ids = page(&[10, 11, 12, 13, 14, 15]);
    let reservation = serve(&ledger, 1, cap, Dedup::None, &ids, at);
    assert_eq!(reservation.posts(), &ids[..3]);
    assert!(reservation.cut());
    // An uncommitted reservation already holds its counts: nothing is left for anyone else.
    match reserve(&ledger, 1, cap, Dedup::None, &page(&[99]), at) {
        Reserved::Refused(capped) => assert_eq!((capped.limit, capped.used), (10, 10)),
        Reserved::Serve(r) => panic!("served past a reserved cap: {:?}", r.posts()),
        Reserved::NoCredit(_) => panic!("no credit without a prepaid licensee"),
    }
    block(reservation.commit(facts("b"), None)).unwrap();
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 10);
    assert!(matches!(reserve(&ledger, 1, cap, Dedup::None, &page(&[99]), at), Reserved::Refused(_)));
    // The next month starts afresh.
    let next = MonthKey::of(at).next().start();
    let fresh = serve(&ledger, 1, cap, Dedup::None, &page(&[99]), next);
    assert_eq!(fresh.posts().len(), 1);
    block(fresh.commit(facts("c"), None)).unwrap();
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 10);
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(next))).unwrap(), 1);
}

#[test]
fn a_soft_cap_serves_on_and_reports_overage() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0();
    let month = MonthKey::of(at);
    let cap = Cap::soft(100);
    let mut overage = 0;
    for request in 0..4_i64 {
        let ids: Vec<i64> = (request * 60..request * 60 + 60).collect();
        let reservation = serve(&ledger, 1, cap, Dedup::None, &page(&ids), at);
        assert_eq!(reservation.posts().len(), 60, "a soft cap never cuts");
        assert!(!reservation.cut());
        overage += reservation.allotment().overage as u64;
        block(reservation.commit(facts(&format!("r{request}")), None)).unwrap();
    }
    // 240 counted against 100: 140 past the cap.
    assert_eq!(overage, 140);
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 240);
    let lines = block(ledger.usage(Some(1), month, UsageBy::Month)).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].counted, lines[0].overage, lines[0].delivered, lines[0].responses), (240, 140, 240, 4));
    verified(&ledger);
}

/// Requests near a month boundary reach the meter out of order: their `at`s are taken before the
/// meter's lock. Switching the licensee's meter to another month and back must not forget what
/// is reserved in flight, or the hard cap is crossed.
#[test]
fn interleaved_months_do_not_forget_reservations_in_flight() {
    let (_dir, _clock, ledger) = fresh();
    let march = MonthKey::of(t0()).next().start().plus_millis(-1); // 2026-03-31T23:59:59.999Z
    let april = march.plus_millis(1);
    let cap = Cap::hard(10);
    let first = serve(&ledger, 1, cap, Dedup::None, &page(&(0..10).collect::<Vec<_>>()), march);
    assert_eq!(first.posts().len(), 10);
    let other = serve(&ledger, 1, cap, Dedup::None, &page(&[100]), april);
    let late = reserve(&ledger, 1, cap, Dedup::None, &page(&(20..30).collect::<Vec<_>>()), march);
    let mut committed = 10;
    block(first.commit(facts("first"), None)).unwrap();
    block(other.commit(facts("other"), None)).unwrap();
    if let Reserved::Serve(late) = late {
        committed += late.posts().len() as u64;
        block(late.commit(facts("late"), None)).unwrap();
    }
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(march))).unwrap(), committed);
    assert_eq!(committed, 10, "March's cap of 10 was crossed");
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(april))).unwrap(), 1);
}

/// The same for days: a post reserved (not yet committed) on one day is still counted that day
/// after a request of the next day came in between.
#[test]
fn interleaved_days_do_not_forget_posts_counted_in_flight() {
    let (_dir, _clock, ledger) = fresh();
    let evening = DayKey::of(t0()).start().plus_millis(DAY - 1);
    let midnight = evening.plus_millis(1);
    let cap = Cap::hard(1_000);
    let first = serve(&ledger, 1, cap, Dedup::Daily, &page(&[5, 6]), evening);
    let other = serve(&ledger, 1, cap, Dedup::Daily, &page(&[5]), midnight);
    assert_eq!(other.allotment().counts, [true], "a new day counts again");
    let late = serve(&ledger, 1, cap, Dedup::Daily, &page(&[5, 7]), evening);
    assert_eq!(late.allotment().counts, [false, true], "post 5 was already counted that day");
    for (reservation, id) in [(first, "first"), (other, "other"), (late, "late")] {
        block(reservation.commit(facts(id), None)).unwrap();
    }
    let days = block(ledger.daily_counts(1, DayKey::of(evening), DayKey::of(midnight))).unwrap();
    let days: Vec<u64> = days.iter().map(|d| d.counted).collect();
    assert_eq!(days, [3, 1]);
    verified(&ledger);
}

#[test]
fn oversized_pages_and_zero_caps_are_refused() {
    let (_dir, _clock, ledger) = fresh();
    let ids: Vec<i64> = (0..1_001).collect();
    let request = MeterRequest {
        licensee_id: 1,
        request_id: "test",
        cap: Cap::hard(5_000),
        dedup: Dedup::None,
        page: &page(&ids),
        at: t0(),
        prepaid: None,
    };
    assert!(block(ledger.reserve(request)).is_err(), "a page past MAX_RESERVATION_POSTS was metered");
    match reserve(&ledger, 1, Cap::hard(0), Dedup::None, &page(&[1]), t0()) {
        Reserved::Refused(capped) => assert_eq!((capped.limit, capped.used), (0, 0)),
        Reserved::Serve(r) => panic!("served under a cap of 0: {:?}", r.posts()),
        Reserved::NoCredit(_) => panic!("no credit without a prepaid licensee"),
    }
    // An empty page is served (and counts nothing).
    let empty = serve(&ledger, 1, Cap::hard(1), Dedup::None, &[], t0());
    assert!(empty.posts().is_empty() && !empty.cut());
    block(empty.commit(facts("empty"), None)).unwrap();
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(t0()))).unwrap(), 0);
    verified(&ledger);
}

// ---------------------------------------------------------------------------------------------
// 2. Daily dedup
// ---------------------------------------------------------------------------------------------

#[test]
fn daily_dedup_counts_a_post_once_per_utc_day() {
    let (_dir, _clock, ledger) = fresh();
    let cap = Cap::hard(1_000);
    let morning = t0().plus_millis(HOUR);
    // Within a page: the repeat is delivered but free.
    assert_eq!(
        deliver(&ledger, 1, cap, Dedup::Daily, &[1, 2, 2, 3, 1], morning, "a"),
        [true, true, false, true, false]
    );
    // Across requests the same day, up to the last millisecond of it.
    let last = DayKey::of(morning).start().plus_millis(DAY - 1);
    assert_eq!(deliver(&ledger, 1, cap, Dedup::Daily, &[3, 4], last, "b"), [false, true]);
    // Another licensee counts its own.
    assert_eq!(deliver(&ledger, 2, cap, Dedup::Daily, &[1, 3], morning, "c"), [true, true]);
    // The next UTC day counts again.
    let next = last.plus_millis(1);
    assert_eq!(deliver(&ledger, 1, cap, Dedup::Daily, &[1, 2, 3, 4, 4], next, "d"), [true, true, true, true, false]);
    assert_eq!(deliver(&ledger, 1, cap, Dedup::Daily, &[1], next, "e"), [false]);
    // Without dedup the same post always counts.
    assert_eq!(deliver(&ledger, 3, cap, Dedup::None, &[1, 1], morning, "f"), [true, true]);
    let month = MonthKey::of(morning);
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 8);
    assert_eq!(block(ledger.month_counted(2, month)).unwrap(), 2);
    let daily = block(ledger.daily_counts(1, DayKey::of(morning), DayKey::of(next))).unwrap();
    let daily: Vec<(DayKey, u64)> = daily.iter().map(|d| (d.day, d.counted)).collect();
    assert_eq!(daily, [(DayKey::of(morning), 4), (DayKey::of(next), 4)]);
    verified(&ledger);
}

#[test]
fn daily_dedup_is_exact_under_concurrency() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(5 * HOUR);
    let cap = Cap::hard(1_000_000);
    let delivered: std::sync::Mutex<HashSet<i64>> = Default::default();
    let counted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..16_u64 {
            let (ledger, delivered, counted) = (&ledger, &delivered, &counted);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(1_000 + thread);
                for request in 0..25 {
                    // Overlapping pages from a small id space, repeats within a page included.
                    let len = 1 + rng.below(60) as usize;
                    let ids: Vec<i64> = (0..len).map(|_| rng.below(400) as i64).collect();
                    let reservation = serve(ledger, 1, cap, Dedup::Daily, &page(&ids), at.plus_millis(request));
                    assert_eq!(reservation.posts().len(), ids.len());
                    let n = reservation.allotment().counted as u64;
                    runtime.block_on(reservation.commit(facts(&format!("t{thread}-{request}")), None)).unwrap();
                    counted.fetch_add(n, Ordering::SeqCst);
                    delivered.lock().unwrap().extend(ids);
                }
            });
        }
    });
    let distinct = delivered.lock().unwrap().len() as u64;
    assert_eq!(counted.load(Ordering::SeqCst), distinct);
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), distinct);
    let mut counted_posts: HashMap<String, u32> = HashMap::new();
    for delivery in all_deliveries(&ledger, 1, MonthKey::of(at)) {
        *counted_posts.entry(delivery.post_id).or_default() += u32::from(delivery.counted);
    }
    assert_eq!(counted_posts.len() as u64, distinct);
    assert!(counted_posts.values().all(|&n| n == 1), "a post counted other than once: {counted_posts:?}");
    verified(&ledger);
}

// ---------------------------------------------------------------------------------------------
// 3. Durability and restart
// ---------------------------------------------------------------------------------------------

#[test]
fn a_reopened_ledger_continues_the_chain_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let at = t0().plus_millis(HOUR);
    let cap = Cap::hard(10);
    let head = {
        let ledger = open(dir.path(), &clock);
        deliver(&ledger, 1, cap, Dedup::Daily, &[1, 2, 3], at, "a");
        deliver(&ledger, 1, cap, Dedup::Daily, &[4, 5, 6], at, "b");
        deliver(&ledger, 2, Cap::hard(5), Dedup::None, &[1, 2, 3, 4, 5], at, "c");
        let report = verified(&ledger);
        assert_eq!((report.chains[0].batches, report.chains[0].rows), (3, 3 + 11));
        report.chains[0].head.unwrap()
    };
    assert_eq!(head.seq, 3);
    assert_eq!(synchronous_level(dir.path()).unwrap(), 2, "synchronous=FULL");
    let ledger = open(dir.path(), &clock);
    // Counts reload: licensee 2 is at its cap, licensee 1 has 4 left and post 1 is counted today.
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 6);
    assert!(matches!(reserve(&ledger, 2, Cap::hard(5), Dedup::None, &page(&[9]), at), Reserved::Refused(_)));
    assert_eq!(deliver(&ledger, 1, cap, Dedup::Daily, &[1, 7, 8], at, "d"), [false, true, true]);
    let reservation = serve(&ledger, 1, cap, Dedup::Daily, &page(&[2, 9, 10, 11]), at);
    assert_eq!(reservation.posts().len(), 3, "cut at the reloaded cap");
    block(reservation.commit(facts("e"), None)).unwrap();
    assert!(matches!(reserve(&ledger, 1, cap, Dedup::Daily, &page(&[12]), at), Reserved::Refused(_)));
    let report = match block(ledger.verify(&[anchor(head)])).unwrap() {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    };
    assert_eq!(report.chains[0].batches, 5, "the chain continues");
    assert_eq!(report.chains[0].head.unwrap().seq, 5);
    drop(ledger);
    // And again, with nothing committed in between.
    let ledger = open(dir.path(), &clock);
    assert_eq!(verified(&ledger).chains[0].head.unwrap().seq, 5);
    assert!(matches!(reserve(&ledger, 1, cap, Dedup::Daily, &page(&[12]), at), Reserved::Refused(_)));
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 10);
}

/// After a restart, every request in flight finds the licensee's counts missing at once: one of
/// them reads them and the others wait for that read (a day's dedup set on a busy ledger is
/// millions of rows), and every decision still rests on them.
#[test]
fn requests_after_a_restart_share_one_read_of_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let at = t0().plus_millis(HOUR);
    let cap = Cap::hard(1_000);
    {
        let ledger = open(dir.path(), &clock);
        deliver(&ledger, 1, cap, Dedup::Daily, &(1..=200).collect::<Vec<_>>(), at, "before");
    }
    let ledger = open(dir.path(), &clock);
    assert_eq!(ledger.count_loads(), 0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let counted: Vec<Vec<bool>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|n| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    // Post 1 was counted before the restart; post 1000 + n is new.
                    let page = page(&[1, 1_000 + n]);
                    let request = MeterRequest {
                        licensee_id: 1,
                        request_id: "r",
                        cap,
                        dedup: Dedup::Daily,
                        page: &page,
                        at,
                        prepaid: None,
                    };
                    match ledger.reserve(request).await.unwrap() {
                        Reserved::Serve(reservation) => {
                            let counts = reservation.allotment().counts.clone();
                            reservation.commit(facts(&format!("after-{n}")), None).await.unwrap();
                            counts
                        }
                        refused => panic!("{refused:?}"),
                    }
                })
            })
            .collect();
        let mut counted = Vec::new();
        for task in tasks {
            counted.push(task.await.unwrap());
        }
        counted
    });
    assert!(counted.iter().all(|counts| counts == &[false, true]), "{counted:?}");
    assert_eq!(ledger.count_loads(), 1, "one read of the month and the day, shared by 32 requests");
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 200 + 32);
}

// ---------------------------------------------------------------------------------------------
// 4. Failing closed
// ---------------------------------------------------------------------------------------------

const FIRE: &str = "CREATE TRIGGER fail BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;";

#[test]
fn a_failed_commit_fails_closed_and_counts_nothing() {
    let (dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    let cap = Cap::hard(10);
    deliver(&ledger, 1, cap, Dedup::Daily, &[1, 2, 3], at, "ok-1");
    let conn = sql(dir.path());
    conn.execute_batch(FIRE).unwrap();
    // Two responses reserved before the failure is noticed: the second took post 100 as "counted
    // today" on the strength of the first.
    let first = serve(&ledger, 1, cap, Dedup::Daily, &page(&[100, 101]), at);
    let second = serve(&ledger, 1, cap, Dedup::Daily, &page(&[100, 102]), at);
    assert_eq!(second.allotment().counts, [false, true]);
    assert!(block(first.commit(facts("fail-1"), None)).is_err(), "a commit that failed reported Ok");
    conn.execute_batch("DROP TRIGGER fail;").unwrap();
    // The disk is fine again, but the second rests on the first: it must fail too.
    assert!(block(second.commit(facts("fail-2"), None)).is_err(), "a response resting on a failed one was served");
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 3);
    // More failures, in a group with successes of nothing: each is an error.
    conn.execute_batch(FIRE).unwrap();
    for attempt in 0..3 {
        let reservation = serve(&ledger, 1, cap, Dedup::Daily, &page(&[200 + attempt]), at);
        assert!(block(reservation.commit(facts(&format!("fail-{attempt}")), None)).is_err());
    }
    conn.execute_batch("DROP TRIGGER fail;").unwrap();
    // Counts were reloaded: post 100 counts again, and 7 remain of 10.
    let reservation = serve(&ledger, 1, cap, Dedup::Daily, &page(&[100, 1, 4, 5, 6, 7, 8, 9, 10]), at);
    assert_eq!(reservation.allotment().counts, [true, false, true, true, true, true, true, true]);
    assert_eq!(reservation.posts().len(), 8, "cut after 7 counted");
    block(reservation.commit(facts("ok-2"), None)).unwrap();
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 10);
    assert!(matches!(reserve(&ledger, 1, cap, Dedup::Daily, &page(&[11]), at), Reserved::Refused(_)));
    let report = verified(&ledger);
    assert_eq!(report.chains[0].batches, 2, "failed commits left no batch");
    let ids: Vec<String> = all_deliveries(&ledger, 1, month).into_iter().map(|d| d.request_id).collect();
    assert!(ids.iter().all(|id| id.starts_with("ok-")), "a failed response left deliveries: {ids:?}");
    // The chain continues past the failures.
    deliver(&ledger, 2, cap, Dedup::None, &[1], at, "ok-3");
    assert_eq!(verified(&ledger).chains[0].head.unwrap().seq, 3);
}

/// The meter keeps two months and two days per licensee. A third forgets the oldest, and a request
/// for a period forgotten is refused rather than decided on that period read again, which would
/// miss its reservations still in flight: a hard cap crossed, a post counted twice in a day.
#[test]
fn a_request_for_a_period_the_meter_forgot_is_refused() {
    let (_dir, _clock, ledger) = fresh();
    let cap = Cap::hard(10);
    let late = |licensee_id: i64, cap: Cap, dedup: Dedup, ids: &[i64], at: Timestamp| {
        let page = page(ids);
        block(ledger.reserve(MeterRequest {
            licensee_id,
            request_id: "late",
            cap,
            dedup,
            page: &page,
            at,
            prepaid: None,
        }))
    };
    // Months: January's cap is full in flight when February and March are metered.
    let jan = Timestamp::parse_rfc3339("2026-01-31T23:00:00Z").unwrap();
    let first = serve(&ledger, 1, cap, Dedup::None, &page(&(0..10).collect::<Vec<_>>()), jan);
    deliver(&ledger, 1, cap, Dedup::None, &[500], Timestamp::parse_rfc3339("2026-02-15T00:00:00Z").unwrap(), "feb");
    deliver(&ledger, 1, cap, Dedup::None, &[600], Timestamp::parse_rfc3339("2026-03-01T00:00:01Z").unwrap(), "mar");
    assert!(late(1, cap, Dedup::None, &[20, 21], jan).is_err(), "a January request decided on January read again");
    block(first.commit(facts("first"), None)).unwrap();
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(jan))).unwrap(), 10, "January's hard cap of 10");
    // Days: post 7 is counted on day 1, in flight, when days 2 and 3 are metered.
    let d1 = t0().plus_millis(HOUR);
    let cap = Cap::hard(1_000);
    let first = serve(&ledger, 2, cap, Dedup::Daily, &page(&[7]), d1);
    deliver(&ledger, 2, cap, Dedup::Daily, &[8], d1.plus_millis(DAY), "d2");
    deliver(&ledger, 2, cap, Dedup::Daily, &[9], d1.plus_millis(2 * DAY), "d3");
    let again = late(2, cap, Dedup::Daily, &[7], d1);
    assert!(again.is_err(), "post 7 would be counted twice on day 1");
    block(first.commit(facts("first-7"), None)).unwrap();
    // Time moving forward is never refused, and the newest periods still decide.
    assert_eq!(deliver(&ledger, 2, cap, Dedup::Daily, &[9, 10], d1.plus_millis(2 * DAY), "d3-again"), [false, true]);
    verified(&ledger);
}

/// A response that found a post free because a reservation still in flight counted it rests on
/// that reservation: it is written only after it, and fails if it fails. Otherwise it could be
/// served first and the count it relied on given back afterwards, leaving a post delivered today
/// and counted nowhere (under a hard cap, one record too many).
#[test]
fn a_response_resting_on_a_count_in_flight_is_never_written_before_it() {
    let cap = Cap::hard(2);
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    // What happens to the first reservation: abandoned (its render failed), its commit failing,
    // or its commit succeeding.
    for fate in ["abandoned", "failed", "committed"] {
        let (dir, _clock, ledger) = fresh();
        let first = serve(&ledger, 1, cap, Dedup::Daily, &page(&[100]), at);
        let second = serve(&ledger, 1, cap, Dedup::Daily, &page(&[100, 101, 102]), at);
        assert_eq!(second.allotment().counts, [false, true], "{fate}: 100 is free on the first's count; 102 is cut");
        let mut second = Box::pin(second.commit(facts("second"), None));
        let waiting = block(async { tokio::time::timeout(Duration::from_millis(200), &mut second).await.is_err() });
        assert!(waiting, "{fate}: the second was written before the first it rests on");
        let conn = sql(dir.path());
        match fate {
            "abandoned" => first.abandon(),
            "failed" => {
                conn.execute_batch(FIRE).unwrap();
                assert!(block(first.commit(facts("first"), None)).is_err());
                conn.execute_batch("DROP TRIGGER fail;").unwrap();
            }
            _ => block(first.commit(facts("first"), None)).unwrap(),
        }
        let served = block(second).is_ok();
        assert_eq!(served, fate == "committed", "{fate}: the second was served: {served}");
        // Whatever happened, every post delivered today is counted exactly once, within the cap.
        for next in [200, 201, 202] {
            if let Reserved::Serve(more) = reserve(&ledger, 1, cap, Dedup::Daily, &page(&[next]), at) {
                block(more.commit(facts(&format!("more-{next}")), None)).unwrap();
            }
        }
        let delivered = all_deliveries(&ledger, 1, month);
        let posts: HashSet<&str> = delivered.iter().map(|d| d.post_id.as_str()).collect();
        let counted: Vec<&str> = delivered.iter().filter(|d| d.counted).map(|d| d.post_id.as_str()).collect();
        assert_eq!(counted.len(), posts.len(), "{fate}: a post delivered today is counted once: {delivered:?}");
        assert_eq!(counted.len(), 2, "{fate}: the hard cap of 2 is filled, not crossed: {delivered:?}");
        assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 2, "{fate}");
        verified(&ledger);
    }
}

/// A reservation dropped uncommitted (a handler that panicked, or a request future dropped when its
/// client went away) makes the counts reload. A batch the writer is writing at that moment is not
/// in the database yet: the reload must not forget it.
#[test]
fn an_abandoned_reservation_does_not_forget_a_commit_being_written() {
    let (dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let cap = Cap::hard(10);
    let mut conn = sql(dir.path());
    // Another connection holds the write lock, so the writer stalls inside its commit.
    let hold = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    let first = serve(&ledger, 1, cap, Dedup::Daily, &page(&(0..10).collect::<Vec<_>>()), at);
    let committing = first.commit(facts("first"), None);
    // Give the writer time to take the job (the outcome must not depend on whether it has).
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(serve(&ledger, 2, cap, Dedup::Daily, &page(&[1]), at));
    let late = reserve(&ledger, 1, cap, Dedup::Daily, &page(&(10..20).collect::<Vec<_>>()), at);
    hold.rollback().unwrap();
    block(committing).unwrap();
    let mut committed = 10;
    if let Reserved::Serve(late) = late {
        let n = late.allotment().counted as u64;
        if block(late.commit(facts("late"), None)).is_ok() {
            committed += n;
        }
    }
    assert_eq!(committed, 10, "a hard cap of 10 was crossed");
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(at))).unwrap(), 10);
    assert!(matches!(reserve(&ledger, 1, cap, Dedup::Daily, &page(&[30]), at), Reserved::Refused(_)));
    verified(&ledger);
}

/// Many threads, some of which abandon their reservations: every abandonment makes the others in
/// flight fail closed, and the cap stays exact.
#[test]
fn abandoned_reservations_under_load_never_over_count() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    let cap = Cap::hard(1_000);
    let committed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..16_u64 {
            let (ledger, committed) = (&ledger, &committed);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(500 + thread);
                let mut refused_in_a_row = 0;
                for request in 0..400 {
                    if refused_in_a_row == 3 {
                        break;
                    }
                    let len = 1 + rng.below(30) as usize;
                    let ids: Vec<i64> = (0..len).map(|_| rng.below(3_000) as i64).collect();
                    let Reserved::Serve(reservation) = reserve(ledger, 1, cap, Dedup::Daily, &page(&ids), at) else {
                        refused_in_a_row += 1;
                        continue;
                    };
                    refused_in_a_row = 0;
                    if rng.below(20) == 0 {
                        // Held a moment first, so others may rest on its counts meanwhile.
                        std::thread::sleep(Duration::from_millis(1));
                        drop(reservation);
                        continue;
                    }
                    let n = reservation.allotment().counted as u64;
                    if runtime.block_on(reservation.commit(facts(&format!("t{thread}-{request}")), None)).is_ok() {
                        committed.fetch_add(n, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let mut committed = committed.load(Ordering::SeqCst);
    assert!(committed <= 1_000, "{committed} counted against a hard cap of 1,000");
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), committed);
    // What is left can still be filled, exactly.
    let mut next = 1_000_000;
    while let Reserved::Serve(reservation) = reserve(&ledger, 1, cap, Dedup::Daily, &page(&[next, next + 1]), at) {
        committed += reservation.allotment().counted as u64;
        block(reservation.commit(facts(&format!("fill-{next}")), None)).unwrap();
        next += 2;
    }
    assert_eq!(committed, 1_000);
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), 1_000);
    let counted: Vec<String> =
        all_deliveries(&ledger, 1, month).into_iter().filter(|d| d.counted).map(|d| d.post_id).collect();
    assert_eq!(counted.len(), 1_000);
    assert_eq!(counted.iter().collect::<HashSet<_>>().len(), 1_000, "a post counted twice the same day");
    let all = all_deliveries(&ledger, 1, month);
    let counted_set: HashSet<&String> = counted.iter().collect();
    let uncounted: Vec<_> = all.iter().filter(|d| !counted_set.contains(&d.post_id)).collect();
    eprintln!("DEBUG uncounted {uncounted:?}");
    let delivered: HashSet<String> = all.into_iter().map(|d| d.post_id).collect();
    assert_eq!(delivered.len(), 1_000, "a post delivered today was counted nowhere (its count was given back)");
    verified(&ledger);
}

/// A reservation whose caller may be cancelled (`commit_if_dropped`: a request whose client went
/// away) commits itself when dropped: counted though never sent, which errs the way the ledger
/// may, and nothing else in flight fails closed because of it. The cap stays exact.
#[test]
fn cancelled_reservations_commit_themselves_and_fail_nothing_else() {
    let (_dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    let cap = Cap::hard(1_000);
    let counted = AtomicU64::new(0);
    let cancelled = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..8_u64 {
            let (ledger, counted, cancelled, failed) = (&ledger, &counted, &cancelled, &failed);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(900 + thread);
                for request in 0..300 {
                    let ids: Vec<i64> = (0..1 + rng.below(20)).map(|_| rng.below(3_000) as i64).collect();
                    let Reserved::Serve(mut reservation) = reserve(ledger, 1, cap, Dedup::Daily, &page(&ids), at)
                    else {
                        break;
                    };
                    let n = reservation.allotment().counted as u64;
                    let id = format!("t{thread}-{request}");
                    if rng.below(4) == 0 {
                        reservation.commit_if_dropped(facts(&id));
                        drop(reservation);
                        counted.fetch_add(n, Ordering::SeqCst);
                        cancelled.fetch_add(1, Ordering::SeqCst);
                    } else if runtime.block_on(reservation.commit(facts(&id), None)).is_ok() {
                        counted.fetch_add(n, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(failed.load(Ordering::SeqCst), 0, "a cancelled reservation made others fail closed");
    assert!(cancelled.load(Ordering::SeqCst) > 20, "the test cancelled too few to say anything");
    // The writer takes jobs in order: once a later commit returns, every cancelled one is written.
    // (`last` below commits nothing when the cap is already reached, so another licensee's
    // response is the marker.)
    block(ledger.record(2, at, facts("marker"), None)).unwrap();
    let mut total = counted.load(Ordering::SeqCst);
    if let Reserved::Serve(last) = reserve(&ledger, 1, cap, Dedup::Daily, &page(&[1_000_000]), at) {
        total += last.allotment().counted as u64;
        block(last.commit(facts("last"), None)).unwrap();
    }
    assert!(total <= 1_000, "{total} counted against a hard cap of 1,000");
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), total);
    let events = block(ledger.usage(Some(1), month, UsageBy::Month)).unwrap();
    let reserved = cancelled.load(Ordering::SeqCst);
    assert!(events[0].responses > reserved, "{events:?}");
    verified(&ledger);
}

#[test]
fn concurrent_commits_during_a_failure_never_over_count() {
    let (dir, _clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let month = MonthKey::of(at);
    let cap = Cap::hard(500);
    let conn = sql(dir.path());
    let committed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..16_u64 {
            let (ledger, committed) = (&ledger, &committed);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(77 + thread);
                for request in 0..60 {
                    let len = 1 + rng.below(20) as usize;
                    let ids = page(&rng.distinct(len, 10_000));
                    // While commits fail, a reservation may fail closed too (its counts were
                    // reloaded under it): never served, so nothing to count.
                    let asked = MeterRequest {
                        licensee_id: 1,
                        request_id: "test",
                        cap,
                        dedup: Dedup::Daily,
                        page: &ids,
                        at,
                        prepaid: None,
                    };
                    let Ok(Reserved::Serve(reservation)) = runtime.block_on(ledger.reserve(asked)) else {
                        continue;
                    };
                    let n = reservation.allotment().counted as u64;
                    if runtime.block_on(reservation.commit(facts(&format!("t{thread}-{request}")), None)).is_ok() {
                        committed.fetch_add(n, Ordering::SeqCst);
                    }
                }
            });
        }
        // Set the disk on fire and put it out a few times while they run.
        for _ in 0..4 {
            std::thread::sleep(std::time::Duration::from_millis(15));
            conn.execute_batch(FIRE).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(15));
            conn.execute_batch("DROP TRIGGER fail;").unwrap();
        }
    });
    let committed = committed.load(Ordering::SeqCst);
    assert!(committed <= 500);
    assert_eq!(block(ledger.month_counted(1, month)).unwrap(), committed, "only successful commits count");
    let counted_rows = all_deliveries(&ledger, 1, month).iter().filter(|d| d.counted).count() as u64;
    assert_eq!(counted_rows, committed);
    verified(&ledger);
}

// ---------------------------------------------------------------------------------------------
// 5. Tamper detection
// ---------------------------------------------------------------------------------------------

/// A ledger of four batches, each one response of an event (ordinal 0) and three deliveries
/// (ordinals 1..=3), committed an hour apart.
fn four_batches() -> (tempfile::TempDir, ManualClock, Ledger, Anchor) {
    let (dir, clock, ledger) = fresh();
    for batch in 0..4_i64 {
        clock.set(t0().plus_millis(batch * HOUR));
        let ids = [batch * 10 + 1, batch * 10 + 2, batch * 10 + 3];
        deliver(&ledger, 1 + batch % 2, Cap::hard(100), Dedup::None, &ids, clock.now(), &format!("req-{batch}"));
    }
    let report = verified(&ledger);
    assert_eq!((report.chains[0].batches, report.chains[0].rows, report.chains[0].pruned_batches), (4, 16, 0));
    assert_eq!(report.daily_checked, 2, "one day, two licensees");
    let head = report.chains[0].head.unwrap();
    assert_eq!(head.seq, 4);
    (dir, clock, ledger, head)
}

fn tamper(statements: &str) -> VerifyFailure {
    let (dir, _clock, ledger, _head) = four_batches();
    sql(dir.path()).execute_batch(statements).unwrap();
    broken(&ledger, None)
}

fn chain_tamper(statements: &str) -> ChainBreak {
    chain_break(tamper(statements))
}

#[test]
fn an_untouched_ledger_verifies_with_its_counts() {
    let (_dir, _clock, ledger, head) = four_batches();
    let report = block(ledger.verify(&[anchor(head)])).unwrap().unwrap();
    assert_eq!(report.chains[0].head, Some(head));
    assert_eq!(report.chains[0].first_seq, Some(1));
    let empty = block(fresh().2.verify(&[])).unwrap().unwrap();
    assert_eq!((empty.chains[0].batches, empty.chains[0].rows, empty.chains[0].head), (0, 0, None));
}

#[test]
fn an_edited_delivery_is_named() {
    for (set, index) in [
        ("post_id = 999", 2),
        ("counted = 0", 1),
        ("revision = revision + 1", 2),
        ("at = at + 1", 3),
        ("licensee_id = 7", 1),
    ] {
        let statement = format!("UPDATE deliveries SET {set} WHERE position = {}", position(2, index));
        assert_eq!(chain_tamper(&statement), ChainBreak::RowMismatch { seq: 2, index: index as u32 }, "{statement}");
    }
    // A value the row cannot even hold.
    let failure = tamper(&format!("UPDATE deliveries SET counted = 2 WHERE position = {}", position(3, 2)));
    assert!(matches!(failure, VerifyFailure::Unreadable { seq: 3, index: 2, .. }), "{failure:?}");
}

#[test]
fn an_edited_usage_event_is_named() {
    for statement in [
        "UPDATE usage_events SET bytes = bytes + 1 WHERE seq = 3",
        "UPDATE usage_events SET user_reads = 0 WHERE seq = 3",
        "UPDATE usage_events SET endpoint = 'lookup' WHERE seq = 3",
        "UPDATE usage_events SET key_prefix = 'dp_ffffffffffff' WHERE seq = 3",
        // The deliveries read their request back from it: the event breaks first.
        "UPDATE usage_events SET request_id = 'forged' WHERE seq = 3",
    ] {
        assert_eq!(chain_tamper(statement), ChainBreak::RowMismatch { seq: 3, index: 0 }, "{statement}");
    }
    // Lowering the counted total (and the daily total to match) is still a chain break.
    let statement = "UPDATE usage_events SET counted = 0 WHERE seq = 3;
         UPDATE usage_daily SET counted = counted - 3 WHERE licensee_id = 1";
    assert_eq!(chain_tamper(statement), ChainBreak::RowMismatch { seq: 3, index: 0 });
}

#[test]
fn deleted_inserted_and_swapped_rows_are_named() {
    let p = position;
    assert_eq!(
        chain_tamper(&format!("DELETE FROM deliveries WHERE position = {}", p(2, 2))),
        ChainBreak::RowMismatch { seq: 2, index: 2 }
    );
    assert_eq!(
        chain_tamper(&format!("DELETE FROM deliveries WHERE position = {}", p(2, 3))),
        ChainBreak::RowsMissing { seq: 2, expected: 4, found: 3 }
    );
    let copy = format!(
        "INSERT INTO deliveries SELECT position + 1, licensee_id, 4242, revision, at, counted, digest
         FROM deliveries WHERE position = {}",
        p(2, 3)
    );
    assert_eq!(chain_tamper(&copy), ChainBreak::RowInserted { seq: 2, index: 4, row_count: 4 });
    // At the ordinal of the batch's event (the tables' keys do not collide): it follows no event
    // of its batch, so it has no request to read back.
    let shadow = format!(
        "INSERT INTO deliveries SELECT {}, licensee_id, 4242, revision, at, counted, digest
         FROM deliveries WHERE position = {}",
        p(2, 0),
        p(2, 1)
    );
    let failure = tamper(&shadow);
    assert!(matches!(failure, VerifyFailure::Unreadable { seq: 2, index: 1, .. }), "{failure:?}");
    // Under a batch that does not exist, before or after the chain.
    for seq in [0, 9] {
        let stray = format!(
            "INSERT INTO deliveries SELECT {}, licensee_id, post_id, revision, at, counted, digest
             FROM deliveries WHERE position = {}",
            p(seq, 1),
            p(2, 1)
        );
        let failure = tamper(&stray);
        assert_eq!(failure, VerifyFailure::Stray { table: "deliveries", seq: seq as u64, ordinal: 1 }, "seq {seq}");
    }
    let (first, third) = (p(3, 1), p(3, 3));
    let swap = format!(
        "UPDATE deliveries SET post_id = CASE position WHEN {first} THEN (SELECT post_id FROM deliveries
             WHERE position = {third}) ELSE (SELECT post_id FROM deliveries WHERE position = {first}) END
         WHERE position IN ({first}, {third})"
    );
    assert_eq!(chain_tamper(&swap), ChainBreak::RowMismatch { seq: 3, index: 1 });
    // Two whole rows (digests too) swapped between positions.
    let (one, two) = (p(3, 1), p(3, 2));
    let swap_rows = format!(
        "UPDATE deliveries SET position = -position WHERE position IN ({one}, {two});
         UPDATE deliveries SET position = {two} WHERE position = -{one};
         UPDATE deliveries SET position = {one} WHERE position = -{two}"
    );
    assert_eq!(chain_tamper(&swap_rows), ChainBreak::RowMismatch { seq: 3, index: 1 });
    // A row moved to another batch.
    let moved = format!("UPDATE deliveries SET position = {} WHERE position = {}", p(3, 4), p(2, 3));
    assert_eq!(chain_tamper(&moved), ChainBreak::RowsMissing { seq: 2, expected: 4, found: 3 });
}

#[test]
fn an_edited_batch_header_is_named() {
    for statement in [
        "UPDATE ledger_batches SET row_count = row_count - 1 WHERE seq = 2",
        "UPDATE ledger_batches SET committed_at = committed_at + 1 WHERE seq = 2",
        "UPDATE ledger_batches SET prev_hash = (SELECT hash FROM ledger_batches WHERE seq = 3) WHERE seq = 2",
        "UPDATE ledger_batches SET rows_hash = (SELECT rows_hash FROM ledger_batches WHERE seq = 3) WHERE seq = 2",
    ] {
        assert_eq!(chain_tamper(statement), ChainBreak::HeaderEdited { seq: 2 }, "{statement}");
    }
    // A batch's hash replaced by another's: its own header no longer matches.
    let hash = "UPDATE ledger_batches SET hash = (SELECT hash FROM ledger_batches WHERE seq = 1) WHERE seq = 2";
    assert_eq!(chain_tamper(hash).seq(), 2);
}

#[test]
fn a_deleted_batch_is_named() {
    let middle = "DELETE FROM usage_events WHERE seq = 2; DELETE FROM deliveries WHERE position >> 20 = 2;
         DELETE FROM ledger_batches WHERE seq = 2;
         UPDATE usage_daily SET counted = counted - 3, delivered = delivered - 3, events = events - 1
         WHERE licensee_id = 2";
    let broken = chain_tamper(middle);
    assert_eq!(broken, ChainBreak::BatchMissing { expected: 2, found: 3 });
    assert_eq!(broken.seq(), 2);
    // Only the header gone: its rows are strays (or the chain breaks first; either names batch 2).
    let failure = tamper("DELETE FROM ledger_batches WHERE seq = 2");
    match failure {
        VerifyFailure::Stray { seq, .. } => assert_eq!(seq, 2),
        VerifyFailure::Chain(broken) => assert_eq!(broken.seq(), 2),
        other => panic!("{other:?}"),
    }
    // The first batch deleted.
    let first = "DELETE FROM usage_events WHERE seq = 1; DELETE FROM deliveries WHERE position >> 20 = 1;
         DELETE FROM ledger_batches WHERE seq = 1";
    assert_eq!(
        tamper(first).to_string(),
        VerifyFailure::Chain(ChainBreak::BatchMissing { expected: 1, found: 2 }).to_string()
    );
}

#[test]
fn the_newest_batch_deleted_is_caught_against_a_recorded_head() {
    let (dir, _clock, ledger, head) = four_batches();
    sql(dir.path())
        .execute_batch(
            "DELETE FROM usage_events WHERE seq = 4; DELETE FROM deliveries WHERE position >> 20 = 4;
             DELETE FROM ledger_batches WHERE seq = 4;
             DELETE FROM usage_daily WHERE licensee_id = 2;
             INSERT INTO usage_daily SELECT licensee_id, (at / 86400000) * 86400000, endpoint, purpose, COUNT(*),
                 SUM(delivered), SUM(counted), 0, SUM(user_reads), SUM(bytes), SUM(charged)
             FROM usage_events WHERE licensee_id = 2 GROUP BY 1, 2, 3, 4",
        )
        .unwrap();
    // Without the head, the shorter chain is consistent (the documented limit) ...
    assert_eq!(verified(&ledger).chains[0].batches, 3);
    // ... with it, the deletion is named.
    let gone = chain_break(broken(&ledger, Some(head)));
    assert!(matches!(gone, ChainBreak::AnchorMismatch { seq: 4, .. }), "{gone:?}");
    // And a head of a batch that was replaced is named too.
    let earlier = Anchor { seq: 2, hash: head.hash };
    let replaced = chain_break(broken(&ledger, Some(earlier)));
    assert!(matches!(replaced, ChainBreak::AnchorMismatch { seq: 2, .. }), "{replaced:?}");
}

#[test]
fn edited_daily_totals_are_named() {
    let failure = tamper("UPDATE usage_daily SET counted = counted - 1 WHERE licensee_id = 1");
    let day = DayKey::of(t0()).date().to_string();
    assert_eq!(failure, VerifyFailure::DailyTotals { licensee_id: 1, day: day.clone(), kept: 5, recomputed: 6 });
    let failure = tamper("DELETE FROM usage_daily WHERE licensee_id = 2");
    assert_eq!(failure, VerifyFailure::DailyTotals { licensee_id: 2, day: day.clone(), kept: 0, recomputed: 6 });
    let forged = "INSERT INTO usage_daily VALUES (3, (SELECT day FROM usage_daily LIMIT 1), 'search', 'ai-input', 1,
         0, 5, 0, 0, 0, 0)";
    let failure = tamper(forged);
    assert_eq!(failure, VerifyFailure::DailyTotals { licensee_id: 3, day, kept: 5, recomputed: 0 });
}

/// Every sealed column of the daily lines is checked, not only `counted`: the bytes and user reads
/// a usage report shows cannot be edited either.
#[test]
fn edited_daily_breakdowns_are_named() {
    for (column, statement) in [
        ("bytes", "UPDATE usage_daily SET bytes = bytes + 1 WHERE licensee_id = 1"),
        ("user_reads", "UPDATE usage_daily SET user_reads = user_reads + 1 WHERE licensee_id = 2"),
        ("events", "UPDATE usage_daily SET events = events + 1 WHERE licensee_id = 1"),
        ("delivered", "UPDATE usage_daily SET delivered = delivered + 1 WHERE licensee_id = 2"),
    ] {
        let failure = tamper(statement);
        assert!(
            matches!(failure, VerifyFailure::DailyBreakdown { column: found, .. } if found == column),
            "{column}: {failure:?}"
        );
    }
}

/// The SQLite store has one chain: a row filed under another chain's name is not history, and
/// must not hide from `verify` while the meter and the exports read it. (Delivery rows name no
/// chain there: their position is in the file's one.)
#[test]
fn rows_filed_under_another_chain_are_named() {
    let forged = "INSERT INTO usage_events SELECT 'elsewhere', seq, ordinal, licensee_id, key_prefix, endpoint,
         purpose, request_id, idempotency_key, at, delivered, 0, user_reads, bytes, digest, charged FROM usage_events
         WHERE seq = 2";
    let failure = tamper(forged);
    assert!(matches!(failure, VerifyFailure::Stray { table: "usage_events", .. }), "{failure:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Pruning
// ---------------------------------------------------------------------------------------------

/// 24 threads spend one prepaid credit of 1,000 records (plus 10 included) at once, through pages of
/// 1 to 100 records: exactly 1,010 are counted, the charges add up to the credit, never more; the
/// charges are sealed (an edited one is named by `verify`), survive a restart and pruning.
#[test]
fn a_prepaid_credit_is_exact_under_many_threads_and_its_charges_are_sealed() {
    let (dir, clock, ledger) = fresh();
    let at = t0().plus_millis(HOUR);
    let terms = PrepaidTerms { per_record_micros: 5_000, included_records: 10, credited_micros: 5_000_000 };
    let counted = AtomicU64::new(0);
    let charged = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..24_u64 {
            let (ledger, counted, charged) = (&ledger, &counted, &charged);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let mut rng = Rng::new(thread + 100);
                let mut request = 0;
                loop {
                    let len = 1 + rng.below(100) as usize;
                    let ids = page(&rng.distinct(len, 1_000_000));
                    let asked = MeterRequest {
                        licensee_id: 9,
                        request_id: "test",
                        cap: Cap::UNLIMITED,
                        dedup: Dedup::None,
                        page: &ids,
                        at,
                        prepaid: Some(terms),
                    };
                    match block(ledger.reserve(asked)).unwrap() {
                        Reserved::NoCredit(exhausted) => {
                            assert!(exhausted.balance_micros < 5_000, "refused with credit left: {exhausted:?}");
                            break;
                        }
                        Reserved::Refused(capped) => panic!("no cap here: {capped:?}"),
                        Reserved::Serve(reservation) => {
                            let allotment = reservation.allotment().clone();
                            request += 1;
                            let id = format!("p{thread}-{request}");
                            runtime.block_on(reservation.commit(facts(&id), None)).unwrap();
                            counted.fetch_add(u64::from(allotment.counted), Ordering::SeqCst);
                            charged.fetch_add(allotment.charge, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(counted.load(Ordering::SeqCst), 1_010, "the included records and exactly what the credit pays for");
    assert_eq!(charged.load(Ordering::SeqCst), 5_000_000);
    assert_eq!(block(ledger.charged(9)).unwrap(), 5_000_000);
    assert_eq!(block(ledger.month_counted(9, MonthKey::of(at))).unwrap(), 1_010);
    let days = block(ledger.daily_counts(9, DayKey::of(at), DayKey::of(at))).unwrap();
    assert_eq!((days[0].counted, days[0].charged), (1_010, 5_000_000));
    verified(&ledger);

    // More credit: served again; a restarted ledger remembers what it charged.
    drop(ledger);
    let ledger = open(dir.path(), &clock);
    let more = PrepaidTerms { credited_micros: 5_010_000, ..terms };
    let request = MeterRequest {
        licensee_id: 9,
        request_id: "test",
        cap: Cap::UNLIMITED,
        dedup: Dedup::None,
        page: &page(&[1, 2, 3]),
        at,
        prepaid: Some(more),
    };
    let Reserved::Serve(reservation) = block(ledger.reserve(request)).unwrap() else {
        panic!("the new credit was not seen")
    };
    assert_eq!((reservation.posts().len(), reservation.allotment().charge), (2, 10_000));
    block(reservation.commit(facts("after-restart"), None)).unwrap();
    assert!(matches!(block(ledger.reserve(request)).unwrap(), Reserved::NoCredit(_)));

    // A charge is sealed in its usage event: editing one is named, and so is its daily total.
    let conn = sql(dir.path());
    conn.execute_batch("UPDATE usage_events SET charged = charged - 5000 WHERE request_id = 'after-restart'").unwrap();
    assert!(matches!(chain_break(broken(&ledger, None)), ChainBreak::RowMismatch { .. }));
    conn.execute_batch("UPDATE usage_events SET charged = charged + 5000 WHERE request_id = 'after-restart'").unwrap();
    verified(&ledger);
    conn.execute_batch("UPDATE usage_daily SET charged = charged - 5000 WHERE licensee_id = 9").unwrap();
    assert!(matches!(broken(&ledger, None), VerifyFailure::DailyBreakdown { column: "charged", .. }));
    conn.execute_batch("UPDATE usage_daily SET charged = charged + 5000 WHERE licensee_id = 9").unwrap();

    // Pruning every batch gives no credit back.
    clock.set(at.plus_millis(DAY));
    block(ledger.prune(at.plus_millis(DAY))).unwrap();
    verified(&ledger);
    assert_eq!(block(ledger.charged(9)).unwrap(), 5_010_000);
    drop(ledger);
    let ledger = open(dir.path(), &clock);
    assert!(matches!(
        block(ledger.reserve(MeterRequest { at: clock.now(), ..request })).unwrap(),
        Reserved::NoCredit(_)
    ));
}

#[test]
fn pruning_removes_whole_old_batches_and_keeps_the_chain() {
    let (dir, clock, ledger, _head) = four_batches();
    let month = MonthKey::of(t0());
    let before_counts =
        (block(ledger.month_counted(1, month)).unwrap(), block(ledger.month_counted(2, month)).unwrap());
    // Batches were committed at t0, +1h, +2h, +3h; prune strictly before +2h.
    clock.set(t0().plus_millis(3 * HOUR + 1));
    let summary = block(ledger.prune(t0().plus_millis(2 * HOUR))).unwrap();
    assert_eq!((summary.batches, summary.events, summary.deliveries), (2, 2, 6));
    let report = verified(&ledger);
    assert_eq!((report.chains[0].batches, report.chains[0].pruned_batches, report.chains[0].rows), (4, 2, 8));
    let kept: Vec<String> = all_deliveries(&ledger, 1, month)
        .into_iter()
        .chain(all_deliveries(&ledger, 2, month))
        .map(|d| d.request_id)
        .collect();
    assert_eq!(kept, ["req-2", "req-2", "req-2", "req-3", "req-3", "req-3"]);
    // Pruning gives no capacity back.
    assert_eq!(
        (block(ledger.month_counted(1, month)).unwrap(), block(ledger.month_counted(2, month)).unwrap()),
        before_counts
    );
    // Pruning again at the same point, or earlier, removes nothing.
    assert_eq!(block(ledger.prune(t0().plus_millis(2 * HOUR))).unwrap().batches, 0);
    assert_eq!(block(ledger.prune(t0())).unwrap().batches, 0);
    // The chain continues after a prune.
    clock.set(t0().plus_millis(4 * HOUR));
    deliver(&ledger, 1, Cap::hard(100), Dedup::None, &[77], clock.now(), "req-4");
    let report = verified(&ledger);
    assert_eq!((report.chains[0].batches, report.chains[0].pruned_batches, report.chains[0].rows), (5, 2, 10));
    // Rows of a batch not pruned are still guarded.
    sql(dir.path()).execute_batch(&format!("DELETE FROM deliveries WHERE position = {}", position(3, 2))).unwrap();
    assert_eq!(chain_break(broken(&ledger, None)), ChainBreak::RowMismatch { seq: 3, index: 2 });
}

#[test]
fn pruning_everything_still_verifies_and_rows_under_pruned_batches_are_strays() {
    let (dir, clock, ledger, head) = four_batches();
    clock.set(t0().plus_millis(DAY));
    let summary = block(ledger.prune(t0().plus_millis(DAY))).unwrap();
    assert_eq!((summary.batches, summary.events, summary.deliveries), (4, 4, 12));
    let report = block(ledger.verify(&[anchor(head)])).unwrap().unwrap();
    assert_eq!((report.chains[0].batches, report.chains[0].pruned_batches, report.chains[0].rows), (4, 4, 0));
    // A row slipped back under a pruned batch belongs to nothing.
    sql(dir.path())
        .execute_batch(&format!("INSERT INTO deliveries VALUES ({}, 1, 1, 1, 0, 1, zeroblob(32))", position(2, 1)))
        .unwrap();
    assert_eq!(broken(&ledger, None), VerifyFailure::Stray { table: "deliveries", seq: 2, ordinal: 1 });
}

/// Pruning is whole batches, oldest first: a batch marked pruned after one that is not is a batch
/// whose rows were deleted to look pruned.
#[test]
fn a_middle_batch_disguised_as_pruned_is_named() {
    let (dir, _clock, ledger, _head) = four_batches();
    sql(dir.path())
        .execute_batch(
            "DELETE FROM usage_events WHERE seq = 3; DELETE FROM deliveries WHERE position >> 20 = 3;
             UPDATE ledger_batches SET pruned = 1 WHERE seq = 3",
        )
        .unwrap();
    let failure = broken(&ledger, None);
    match failure {
        VerifyFailure::Chain(broken) => assert_eq!(broken.seq(), 3),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Idempotency claims
// ---------------------------------------------------------------------------------------------

#[test]
fn idempotency_claims_replay_what_was_committed() {
    let (_dir, clock, ledger) = fresh();
    let fingerprint = RequestFingerprint::new("GET", "/2/tweets/search/recent", "query=cats&max_results=10");
    let other = RequestFingerprint::new("GET", "/2/tweets/search/recent", "query=dogs");
    let guard = match block(ledger.claim(1, "key-1", fingerprint)).unwrap() {
        Claim::Fresh(guard) => guard,
        other => panic!("{other:?}"),
    };
    assert!(matches!(block(ledger.claim(1, "key-1", fingerprint)).unwrap(), Claim::InProgress));
    let first_used_at = clock.now();
    match block(ledger.claim(1, "key-1", other)).unwrap() {
        Claim::Mismatch { first_used_at: at, reusable_at } => {
            assert_eq!(at, first_used_at);
            assert_eq!(reusable_at, first_used_at.plus_millis(DAY));
        }
        other => panic!("{other:?}"),
    }
    // Per licensee.
    let other_licensee = block(ledger.claim(2, "key-1", fingerprint)).unwrap();
    assert!(matches!(other_licensee, Claim::Fresh(_)));
    drop(other_licensee);
    let body = b"{\"data\":[{\"id\":\"1\"}]}\x00\xff".to_vec();
    let reservation = serve(&ledger, 1, Cap::hard(100), Dedup::None, &page(&[1, 2]), clock.now());
    let mut facts = facts("req-idem");
    facts.idempotency_key = Some("key-1".into());
    let response = IdempotentResponse { key: "key-1".into(), fingerprint, body: body.clone() };
    block(reservation.commit(facts, Some(response))).unwrap();
    drop(guard);
    clock.advance_millis(HOUR);
    match block(ledger.claim(1, "key-1", fingerprint)).unwrap() {
        Claim::Replay(stored) => {
            assert_eq!(stored.body, body);
            assert_eq!(stored.request_id, "req-idem");
            assert_eq!(stored.first_used_at, first_used_at);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(block(ledger.claim(1, "key-1", other)).unwrap(), Claim::Mismatch { .. }));
    // A replay counts nothing.
    assert_eq!(block(ledger.month_counted(1, MonthKey::of(first_used_at))).unwrap(), 2);
    // The window is 24 hours from the first use.
    clock.set(first_used_at.plus_millis(DAY - 1));
    assert!(matches!(block(ledger.claim(1, "key-1", fingerprint)).unwrap(), Claim::Replay(_)));
    clock.set(first_used_at.plus_millis(DAY));
    assert!(matches!(block(ledger.claim(1, "key-1", fingerprint)).unwrap(), Claim::Fresh(_)));
    assert!(matches!(block(ledger.claim(1, "key-1", other)).unwrap(), Claim::Fresh(_)));
    // And a record (no posts) keeps its response as well.
    let fingerprint2 = RequestFingerprint::new("GET", "/2/users/1", "");
    let guard = block(ledger.claim(1, "key-2", fingerprint2)).unwrap();
    let response = IdempotentResponse { key: "key-2".into(), fingerprint: fingerprint2, body: b"users".to_vec() };
    block(ledger.record(1, clock.now(), facts_for("req-users", Endpoint::Users, Purpose::AiInput), Some(response)))
        .unwrap();
    drop(guard);
    assert!(matches!(block(ledger.claim(1, "key-2", fingerprint2)).unwrap(), Claim::Replay(s) if s.body == b"users"));
}

#[test]
fn a_failed_commit_keeps_no_response_and_frees_the_key() {
    let (dir, clock, ledger) = fresh();
    let fingerprint = RequestFingerprint::new("GET", "/2/tweets", "ids=1,2");
    let Claim::Fresh(guard) = block(ledger.claim(1, "k", fingerprint)).unwrap() else { panic!("not fresh") };
    let conn = sql(dir.path());
    conn.execute_batch(FIRE).unwrap();
    let reservation = serve(&ledger, 1, Cap::hard(100), Dedup::None, &page(&[1, 2]), clock.now());
    let response = IdempotentResponse { key: "k".into(), fingerprint, body: b"never sent".to_vec() };
    assert!(block(reservation.commit(facts("r"), Some(response))).is_err());
    drop(guard);
    conn.execute_batch("DROP TRIGGER fail;").unwrap();
    assert!(matches!(block(ledger.claim(1, "k", fingerprint)).unwrap(), Claim::Fresh(_)));
}

// ---------------------------------------------------------------------------------------------
// 8. Read-back views
// ---------------------------------------------------------------------------------------------

#[test]
fn deliveries_and_usage_report_exactly_what_was_committed() {
    let (_dir, _clock, ledger) = fresh();
    let month = MonthKey::of(t0());
    let cap = Cap::hard(100_000);
    let endpoints = [Endpoint::Search, Endpoint::Lookup, Endpoint::Timeline];
    let purposes = [Purpose::AiInput, Purpose::Search, Purpose::AiTrain];
    let mut rng = Rng::new(5);
    let mut expected: Vec<(i64, DeliveryRecord)> = Vec::new();
    // (licensee, group) -> (responses, delivered, counted, user_reads, bytes)
    type Totals = BTreeMap<(i64, String), (u64, u64, u64, u64, u64)>;
    let (mut by_day, mut by_endpoint, mut by_purpose, mut by_month): (Totals, Totals, Totals, Totals) =
        Default::default();
    for request in 0..40_i64 {
        let licensee = 1 + request % 2;
        let at = t0().plus_millis(request * 7 * HOUR + 13);
        let (endpoint, purpose) = (endpoints[request as usize % 3], purposes[(request / 3) as usize % 3]);
        let ids: Vec<i64> = (0..1 + rng.below(8)).map(|_| rng.below(30) as i64).collect();
        let reservation = serve(&ledger, licensee, cap, Dedup::Daily, &page(&ids), at);
        let counts = reservation.allotment().counts.clone();
        let id = format!("req-{request}");
        let mut facts = facts_for(&id, endpoint, purpose);
        facts.user_reads = request as u32 % 4;
        facts.bytes = 1_000 + request as u64;
        block(reservation.commit(facts.clone(), None)).unwrap();
        for (&(post_id, revision), &counted) in page(&ids).iter().zip(&counts) {
            let record = DeliveryRecord { at, post_id: post_id.to_string(), revision, request_id: id.clone(), counted };
            expected.push((licensee, record));
        }
        let counted = counts.iter().filter(|c| **c).count() as u64;
        let add = |totals: &mut Totals, group: String| {
            let t = totals.entry((licensee, group)).or_default();
            *t = (t.0 + 1, t.1 + ids.len() as u64, t.2 + counted, t.3 + facts.user_reads as u64, t.4 + facts.bytes);
        };
        add(&mut by_day, DayKey::of(at).date().to_string());
        add(&mut by_endpoint, endpoint.as_str().to_owned());
        add(&mut by_purpose, purpose.as_str().to_owned());
        add(&mut by_month, month.to_string());
    }
    // Another month and a user lookup: not in March's deliveries, but the lookup is a response.
    deliver(&ledger, 1, cap, Dedup::Daily, &[1], month.next().start(), "april");
    block(ledger.record(2, t0(), facts_for("users", Endpoint::Users, Purpose::AiInput), None)).unwrap();
    for (group, totals) in [(&mut by_day, DayKey::of(t0()).date().to_string()), (&mut by_month, month.to_string())] {
        let t = group.entry((2, totals)).or_default();
        *t = (t.0 + 1, t.1, t.2, t.3 + 1, t.4 + 100);
    }
    let t = by_endpoint.entry((2, "users".into())).or_default();
    *t = (t.0 + 1, t.1, t.2, t.3 + 1, t.4 + 100);
    let t = by_purpose.entry((2, "ai-input".into())).or_default();
    *t = (t.0 + 1, t.1, t.2, t.3 + 1, t.4 + 100);

    for licensee in [1, 2] {
        let want: Vec<DeliveryRecord> =
            expected.iter().filter(|(l, _)| *l == licensee).map(|(_, r)| r.clone()).collect();
        assert_eq!(all_deliveries(&ledger, licensee, month), want, "licensee {licensee}");
    }
    assert_eq!(all_deliveries(&ledger, 1, month.next()).len(), 1);
    assert!(all_deliveries(&ledger, 3, month).is_empty());
    for (by, want) in [
        (UsageBy::Day, &by_day),
        (UsageBy::Endpoint, &by_endpoint),
        (UsageBy::Purpose, &by_purpose),
        (UsageBy::Month, &by_month),
    ] {
        let got: Totals = block(ledger.usage(None, month, by))
            .unwrap()
            .into_iter()
            .inspect(|line| assert_eq!(line.overage, 0))
            .map(|l| ((l.licensee_id, l.group), (l.responses, l.delivered, l.counted, l.user_reads, l.bytes)))
            .collect();
        assert_eq!(&got, want, "{by:?}");
        let one: Vec<_> = block(ledger.usage(Some(2), month, by)).unwrap();
        assert!(one.iter().all(|line| line.licensee_id == 2));
        assert_eq!(one.len(), want.keys().filter(|(l, _)| *l == 2).count());
    }
    for licensee in [1, 2] {
        let counted: u64 = by_month.get(&(licensee, month.to_string())).unwrap().2;
        assert_eq!(block(ledger.month_counted(licensee, month)).unwrap(), counted);
        let days =
            block(ledger.daily_counts(licensee, month.first_day(), month.next().first_day().minus_days(1))).unwrap();
        let want: Vec<(String, u64)> =
            by_day.iter().filter(|((l, _), _)| *l == licensee).map(|((_, day), t)| (day.clone(), t.2)).collect();
        let got: Vec<(String, u64)> = days.iter().map(|d| (d.day.date().to_string(), d.counted)).collect();
        assert_eq!(got, want, "licensee {licensee}");
    }
    verified(&ledger);
}

/// The writer inserts rows many to an `INSERT`: batches holding more usage events and more
/// deliveries than one statement takes (and remainders) are stored row for row, so they verify
/// and read back exactly.
#[test]
fn batches_larger_than_one_insert_are_stored_row_for_row() {
    let (dir, _clock, ledger) = fresh();
    let cap = Cap::hard(1_000_000);
    let month = MonthKey::of(t0());
    let mut expected = Vec::new();
    // A page of 100 posts: its deliveries fill several statements and leave a remainder.
    let big: Vec<i64> = (1..=100).collect();
    for (post, counted) in big.iter().zip(deliver(&ledger, 1, cap, Dedup::None, &big, t0(), "big")) {
        expected.push(("big".to_owned(), *post, counted));
    }
    // Bursts of 70 one-post responses sent to the writer at once, until one batch holds more
    // events than one statement takes.
    let mut widest = 0;
    for burst in 0..5 {
        let commits: Vec<_> = (0..70)
            .map(|n| {
                let id = format!("burst-{burst}-{n}");
                let post = 1_000 + burst * 100 + n;
                let reservation = serve(&ledger, 1, cap, Dedup::None, &page(&[post]), t0());
                expected.push((id.clone(), post, true));
                reservation
            })
            .collect::<Vec<_>>()
            .into_iter()
            .enumerate()
            .map(|(n, reservation)| reservation.commit(facts(&format!("burst-{burst}-{n}")), None))
            .collect();
        for commit in commits {
            block(commit).unwrap();
        }
        widest = sql(dir.path())
            .query_row("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM usage_events GROUP BY seq)", [], |row| row.get(0))
            .unwrap();
        if widest > 40 {
            break;
        }
    }
    assert!(widest > 40, "no batch held more than 40 responses ({widest})");
    let report = verified(&ledger);
    assert_eq!(report.chains[0].rows, expected.len() as u64 + 1 + expected.len() as u64 - 100);
    let mut got: Vec<(String, i64, bool)> = all_deliveries(&ledger, 1, month)
        .into_iter()
        .map(|record| (record.request_id, record.post_id.parse().unwrap(), record.counted))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn delivered_among_counts_each_leaked_post_a_licensee_received_once() {
    let (_dir, _clock, ledger) = fresh();
    let cap = Cap::hard(100_000);
    deliver(&ledger, 1, cap, Dedup::None, &[1, 2, 3], t0(), "a");
    deliver(&ledger, 1, cap, Dedup::None, &[3, 4], t0().plus_millis(DAY), "b");
    deliver(&ledger, 2, cap, Dedup::None, &[5], t0(), "c");
    let leaked: HashSet<i64> = [2, 3, 4, 5, 99].into_iter().collect();
    assert_eq!(block(ledger.delivered_among(1, &leaked)).unwrap(), 3, "post 3 was delivered twice, counted once");
    assert_eq!(block(ledger.delivered_among(2, &leaked)).unwrap(), 1);
    assert_eq!(block(ledger.delivered_among(3, &leaked)).unwrap(), 0);
    assert_eq!(block(ledger.delivered_among(1, &HashSet::new())).unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Ledger migration 5: delivery rows keyed by position
// ---------------------------------------------------------------------------------------------

/// `four_batches`' ledger rewritten as a ledger of schema version 4 (migrations 1 to 4 as they
/// shipped; deliveries keyed by `(chain, seq, ordinal)` and carrying their request), closed.
fn four_batches_at_version_4() -> (tempfile::TempDir, ManualClock, Anchor) {
    let (dir, clock, ledger, head) = four_batches();
    drop(ledger);
    let current = dir.path().join(LEDGER_FILE);
    let old = dir.path().join("v4.db");
    let conn = Connection::open(&old).unwrap();
    for migration in [
        include_str!("../src/ledger/0001_ledger.sql"),
        include_str!("../src/ledger/0002_canaries.sql"),
        include_str!("../src/ledger/0003_credits.sql"),
        include_str!("../src/ledger/0004_deliveries_through_events.sql"),
    ] {
        conn.execute_batch(migration).unwrap();
    }
    conn.execute("ATTACH DATABASE ?1 AS current", [current.to_str().unwrap()]).unwrap();
    conn.execute_batch(
        "INSERT INTO ledger_batches SELECT * FROM current.ledger_batches;
         INSERT INTO usage_events SELECT * FROM current.usage_events;
         INSERT INTO usage_daily SELECT * FROM current.usage_daily;
         INSERT INTO deliveries (chain, seq, ordinal, licensee_id, request_id, post_id, revision, at, counted, digest)
         SELECT 'sqlite', d.position >> 20, d.position & 1048575, d.licensee_id,
                (SELECT e.request_id FROM current.usage_events e WHERE e.seq = d.position >> 20
                   AND e.ordinal < (d.position & 1048575) ORDER BY e.ordinal DESC LIMIT 1),
                d.post_id, d.revision, d.at, d.counted, d.digest
         FROM current.deliveries d;
         DETACH DATABASE current;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", current.display()));
    }
    std::fs::rename(&old, &current).unwrap();
    (dir, clock, head)
}

#[test]
fn a_version_4_ledger_is_rekeyed_and_still_verifies_against_its_head() {
    let (dir, clock, head) = four_batches_at_version_4();
    let month = MonthKey::of(t0());
    let ledger = open(dir.path(), &clock);
    let version: i64 = sql(dir.path()).query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 5);
    // The same chain, row for row: the head recorded before the migration still matches.
    let report = block(ledger.verify(&[anchor(head)])).unwrap().unwrap();
    assert_eq!((report.chains[0].batches, report.chains[0].rows), (4, 16));
    let requests: Vec<String> = all_deliveries(&ledger, 1, month).into_iter().map(|d| d.request_id).collect();
    assert_eq!(requests, ["req-0", "req-0", "req-0", "req-2", "req-2", "req-2"]);
    let posts: Vec<String> = all_deliveries(&ledger, 2, month).into_iter().map(|d| d.post_id).collect();
    assert_eq!(posts, ["11", "12", "13", "31", "32", "33"]);
    // And it goes on: a new batch lands at the next position.
    clock.set(t0().plus_millis(5 * HOUR));
    deliver(&ledger, 1, Cap::hard(100), Dedup::None, &[77], clock.now(), "req-5");
    assert_eq!(verified(&ledger).chains[0].rows, 18);
    let newest: i64 = sql(dir.path()).query_row("SELECT MAX(position) FROM deliveries", [], |row| row.get(0)).unwrap();
    assert_eq!(newest, position(5, 1));
}

/// A delivery whose stored request is not its event's can only come from an edit; the new layout
/// would read the event's back and erase the evidence, so the migration refuses and changes nothing.
#[test]
fn an_edited_version_4_ledger_is_not_migrated() {
    for edit in [
        "UPDATE deliveries SET request_id = 'forged' WHERE seq = 2 AND ordinal = 2",
        "UPDATE deliveries SET chain = 'elsewhere' WHERE seq = 3 AND ordinal = 1",
        "UPDATE deliveries SET ordinal = 0 WHERE seq = 2 AND ordinal = 1",
        // A batch number whose position would overflow onto batch 2's (2^44 + 2).
        "UPDATE usage_events SET seq = 17592186044418 WHERE seq = 2;
         UPDATE deliveries SET seq = 17592186044418 WHERE seq = 2",
    ] {
        let (dir, clock, _head) = four_batches_at_version_4();
        sql(dir.path()).execute_batch(edit).unwrap();
        let error = Ledger::open(dir.path(), Arc::new(clock.clone())).err().expect("an edited ledger was migrated");
        assert!(error.to_string().contains("ledger.db was edited"), "{edit}: {error}");
        let conn = sql(dir.path());
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, 4, "{edit}");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM deliveries", [], |row| row.get(0)).unwrap();
        assert_eq!(rows, 12, "{edit}: the old rows are all still there");
    }
}

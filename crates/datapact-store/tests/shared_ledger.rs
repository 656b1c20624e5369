//! The metering ledger on both stores: the embedded `ledger.db` and the PostgreSQL store's
//! tables (one chain per gateway node). The same tests run on each; PostgreSQL's chains per node
//! get tests of their own. (`ledger.rs` tests the SQLite ledger's failure paths in depth.)

mod stores;

use std::collections::HashSet;
use std::sync::Arc;

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, ManualClock, Timestamp};
use datapact_ledger::{Cap, ChainBreak, Dedup, MonthKey, RequestFingerprint};
use datapact_store::ledger::{
    ChainAnchor, Claim, EventFacts, IdempotentResponse, Ledger, MeterRequest, Reservation, Reserved, UsageBy,
    VerifyFailure, VerifyReport,
};
use datapact_store::postgres::PgOptions;
use datapact_store::{PgStore, StoreError};
use sqlx::Connection;
use stores::{drop_schema, fresh_schema, postgres_or_skip};

const HOUR: i64 = 3_600_000;

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-10T08:00:00Z").unwrap()
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { store: PgStore, url: String, schema: String },
}

/// A ledger to meter into and the place it lives, dropped (PostgreSQL schema included) at the end.
struct TestLedger {
    ledger: Ledger,
    place: Place,
}

impl Drop for TestLedger {
    fn drop(&mut self) {
        if let Place::Postgres { url, schema, .. } = &self.place {
            drop_schema(url, schema);
        }
    }
}

impl TestLedger {
    fn sqlite() -> TestLedger {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), Arc::new(ManualClock::new(t0()))).unwrap();
        TestLedger { ledger, place: Place::Sqlite(dir) }
    }

    async fn postgres(node: &str) -> Option<TestLedger> {
        let url = postgres_or_skip().await?;
        let schema = fresh_schema();
        let options = PgOptions { schema: Some(schema.clone()), max_connections: 8 };
        let store = PgStore::connect_with(&url, options).await.unwrap();
        let ledger = Ledger::open_postgres(&store, node, Arc::new(ManualClock::new(t0()))).await.unwrap();
        Some(TestLedger { ledger, place: Place::Postgres { store, url, schema } })
    }

    /// The ledger opened afresh, with its counts read back from the database: the SQLite ledger
    /// after a restart, or on PostgreSQL a second node's.
    async fn reopened(&mut self) {
        let clock = Arc::new(ManualClock::new(t0()));
        match &self.place {
            Place::Sqlite(dir) => {
                // The file is locked while the old ledger lives: stand a scratch one in for it.
                let scratch = tempfile::tempdir().unwrap();
                drop(std::mem::replace(&mut self.ledger, Ledger::open(scratch.path(), clock.clone()).unwrap()));
                self.ledger = Ledger::open(dir.path(), clock).unwrap();
            }
            Place::Postgres { store, .. } => {
                self.ledger = Ledger::open_postgres(store, "node-b", clock).await.unwrap();
            }
        }
    }

    /// A number the SQL query counts, read behind the ledger's back.
    async fn count(&self, sql: &str) -> i64 {
        match &self.place {
            Place::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join(datapact_store::ledger::LEDGER_FILE)).unwrap();
                conn.query_row(sql, [], |row| row.get(0)).unwrap()
            }
            Place::Postgres { url, schema, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
        }
    }

    /// The condition on `deliveries` that picks batch `seq`'s rows: SQLite keys a delivery by its
    /// position in its one chain, `seq << 20 | ordinal`; PostgreSQL by `(chain, seq, ordinal)`.
    fn deliveries_of_batch(&self, seq: u64) -> String {
        match &self.place {
            Place::Sqlite(_) => format!("position >> 20 = {seq}"),
            Place::Postgres { .. } => format!("seq = {seq}"),
        }
    }

    /// Runs SQL behind the ledger's back, as someone with a database shell could.
    async fn tamper(&self, sql: &str) {
        match &self.place {
            Place::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join(datapact_store::ledger::LEDGER_FILE)).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Place::Postgres { url, schema, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(&format!("SET search_path TO {schema}; {sql}")).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

fn facts(request_id: &str) -> EventFacts {
    EventFacts {
        key_prefix: KeyPrefix("dp_0123456789ab".into()),
        endpoint: Endpoint::Search,
        purpose: Purpose::AiInput,
        request_id: request_id.into(),
        idempotency_key: None,
        user_reads: 0,
        bytes: 100,
    }
}

fn page(ids: impl IntoIterator<Item = i64>) -> Vec<(i64, u32)> {
    ids.into_iter().map(|id| (id, 1)).collect()
}

/// Meters and commits one page; `None` when refused.
async fn deliver(
    ledger: &Ledger,
    licensee_id: i64,
    cap: Cap,
    dedup: Dedup,
    posts: &[(i64, u32)],
    request_id: &str,
) -> Option<usize> {
    let request = MeterRequest { licensee_id, request_id, cap, dedup, page: posts, at: t0(), prepaid: None };
    match ledger.reserve(request).await.unwrap() {
        Reserved::Serve(reservation) => {
            let delivered = reservation.posts().len();
            reservation.commit(facts(request_id), None).await.unwrap();
            Some(delivered)
        }
        Reserved::Refused(_) | Reserved::NoCredit(_) => None,
    }
}

/// `tasks` clients per node, each sending up to `requests` pages of distinct posts (1 to 30) to
/// `licensee` until refused at `cap`: what they received in all.
async fn deliver_until_capped(nodes: &[(&str, Ledger)], tasks: i64, requests: i64, licensee: i64, cap: Cap) -> usize {
    let mut clients = Vec::new();
    for (node, ledger) in nodes {
        for task in 0..tasks {
            let (node, ledger) = (node.to_string(), ledger.clone());
            clients.push(tokio::spawn(async move {
                let mut delivered = 0;
                for request in 0..requests {
                    let first = (task * requests + request) * 37;
                    let posts = page(first..first + 1 + (request % 30));
                    let id = format!("{node}-{task}-{request}");
                    match deliver(&ledger, licensee, cap, Dedup::None, &posts, &id).await {
                        Some(n) => delivered += n,
                        None => break,
                    }
                }
                delivered
            }));
        }
    }
    let mut delivered = 0;
    for client in clients {
        delivered += client.await.unwrap();
    }
    delivered
}

async fn verified(ledger: &Ledger, expect: &[ChainAnchor]) -> VerifyReport {
    match ledger.verify(expect).await.unwrap() {
        Ok(report) => report,
        Err(failure) => panic!("the ledger does not verify: {failure}"),
    }
}

/// Every shared test, once per store.
macro_rules! ledger_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestLedger::sqlite()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(ledger) = super::TestLedger::postgres("node-a").await else { return };
                    super::$name(ledger).await;
                }
            )*
        }
    };
}

ledger_tests!(
    a_hard_cap_is_exact_under_concurrent_requests,
    committed_rows_read_back_and_verify,
    each_licensee_reads_back_its_own_deliveries_from_shared_batches,
    batch_ranges_name_a_licensees_batches,
    an_edited_delivery_is_named,
    a_retried_idempotency_key_replays_without_counting,
    pruning_keeps_the_chain_verifiable,
    a_response_resting_on_a_count_in_flight_waits_for_it_and_fails_with_it,
);

/// A response that found a post free because a reservation still in flight counted it is written
/// only after that reservation, and fails closed if it is given back: otherwise the post would be
/// delivered today and counted nowhere (`tests/ledger.rs` has the same with a failing commit).
async fn a_response_resting_on_a_count_in_flight_waits_for_it_and_fails_with_it(t: TestLedger) {
    let cap = Cap::hard(2);
    let reserve = |licensee_id: i64, request_id: &'static str, posts: Vec<(i64, u32)>| {
        let ledger = t.ledger.clone();
        async move {
            let request = MeterRequest {
                licensee_id,
                request_id,
                cap,
                dedup: Dedup::Daily,
                page: &posts,
                at: t0(),
                prepaid: None,
            };
            match ledger.reserve(request).await.unwrap() {
                Reserved::Serve(reservation) => reservation,
                refused => panic!("refused: {refused:?}"),
            }
        }
    };
    // Licensee 1's first reservation is given back; licensee 2's is committed.
    for (licensee_id, abandoned) in [(1, true), (2, false)] {
        let first = reserve(licensee_id, "first", page([100])).await;
        let second = reserve(licensee_id, "second", page([100, 101, 102])).await;
        assert_eq!(second.allotment().counts, [false, true], "100 rides on the first's count; 102 is cut");
        let second = tokio::spawn(second.commit(facts("second"), None));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second was written before the first it rests on");
        if abandoned {
            first.abandon();
        } else {
            first.commit(facts("first"), None).await.unwrap();
        }
        assert_eq!(second.await.unwrap().is_ok(), !abandoned, "licensee {licensee_id}");
        // The cap is filled exactly, and every post delivered today is counted once.
        for next in [200, 201] {
            deliver(&t.ledger, licensee_id, cap, Dedup::Daily, &page([next]), "more").await;
        }
        let month = MonthKey::of(t0());
        assert_eq!(t.ledger.month_counted(licensee_id, month).await.unwrap(), 2, "licensee {licensee_id}");
        let mut rows = Vec::new();
        t.ledger
            .deliveries(licensee_id, month, |row| {
                rows.push((row.post_id, row.counted));
                Ok(())
            })
            .await
            .unwrap();
        let posts: std::collections::HashSet<&String> = rows.iter().map(|(post, _)| post).collect();
        assert_eq!(rows.iter().filter(|(_, counted)| *counted).count(), posts.len(), "{rows:?}");
    }
    verified(&t.ledger, &[]).await;
}

async fn a_hard_cap_is_exact_under_concurrent_requests(t: TestLedger) {
    let cap = Cap::hard(1_000);
    let delivered = deliver_until_capped(&[("a", t.ledger.clone())], 12, 40, 1, cap).await;
    assert_eq!(delivered, 1_000, "clients received exactly the cap");
    assert_eq!(t.ledger.month_counted(1, MonthKey::of(t0())).await.unwrap(), 1_000, "the ledger says the cap");
    let report = verified(&t.ledger, &[]).await;
    assert!(report.chains.iter().map(|chain| chain.rows).sum::<u64>() > 1_000);
}

async fn committed_rows_read_back_and_verify(t: TestLedger) {
    let ledger = &t.ledger;
    deliver(ledger, 1, Cap::UNLIMITED, Dedup::Daily, &page([1, 2, 3]), "a").await.unwrap();
    deliver(ledger, 1, Cap::UNLIMITED, Dedup::Daily, &page([3, 4]), "b").await.unwrap();
    deliver(ledger, 2, Cap::UNLIMITED, Dedup::None, &page([3, 3]), "c").await.unwrap();
    let month = MonthKey::of(t0());
    assert_eq!(ledger.month_counted(1, month).await.unwrap(), 4, "daily dedup: post 3 counted once");
    assert_eq!(ledger.month_counted(2, month).await.unwrap(), 2);
    let lines = ledger.usage(None, month, UsageBy::Month).await.unwrap();
    let summary: Vec<_> = lines.iter().map(|l| (l.licensee_id, l.responses, l.delivered, l.counted)).collect();
    assert_eq!(summary, vec![(1, 2, 5, 4), (2, 1, 2, 2)]);
    let mut exported = Vec::new();
    ledger
        .deliveries(1, month, |record| {
            exported.push((record.post_id, record.request_id, record.counted));
            Ok(())
        })
        .await
        .unwrap();
    let expected: Vec<(String, String, bool)> =
        [(1, "a", true), (2, "a", true), (3, "a", true), (3, "b", false), (4, "b", true)]
            .into_iter()
            .map(|(post, request, counted)| (post.to_string(), request.to_owned(), counted))
            .collect();
    assert_eq!(exported, expected);
    let days =
        ledger.daily_counts(1, datapact_ledger::DayKey::of(t0()), datapact_ledger::DayKey::of(t0())).await.unwrap();
    assert_eq!(days.iter().map(|d| d.counted).sum::<u64>(), 4);
    let leaked: HashSet<i64> = [2, 3, 9].into();
    assert_eq!(ledger.delivered_among(1, &leaked).await.unwrap(), 2);
    assert!(ledger.committed("b").await.unwrap());
    assert!(!ledger.committed("never").await.unwrap());
    let report = verified(ledger, &[]).await;
    assert_eq!(report.chains.len(), 1);
    assert_eq!((report.chains[0].rows, report.daily_checked), (3 + 7, 2));
}

/// A reservation for `posts` under daily dedup and no cap.
async fn reserve_daily(ledger: &Ledger, licensee_id: i64, request_id: &str, posts: &[(i64, u32)]) -> Reservation {
    let request = MeterRequest {
        licensee_id,
        request_id,
        cap: Cap::UNLIMITED,
        dedup: Dedup::Daily,
        page: posts,
        at: t0(),
        prepaid: None,
    };
    match ledger.reserve(request).await.unwrap() {
        Reserved::Serve(reservation) => reservation,
        refused => panic!("refused: {refused:?}"),
    }
}

/// A licensee's deliveries are read through its usage events (no index of their own): when many
/// licensees' responses share batches, with canaries among them, every read still gives each
/// licensee exactly its own deliveries — the export, the posts received, the posts among a leak,
/// and (read back afresh) the posts already counted today, on which daily dedup decides.
async fn each_licensee_reads_back_its_own_deliveries_from_shared_batches(mut t: TestLedger) {
    const LICENSEES: i64 = 3;
    const POSTS: i64 = 80;
    // (licensee, request id, post id, revision, counted), as committed.
    type Committed = Vec<(i64, String, i64, u32, bool)>;
    let mut clients = Vec::new();
    for client in 0..12_i64 {
        let ledger = t.ledger.clone();
        clients.push(tokio::spawn(async move {
            let licensee = 1 + client % LICENSEES;
            let mut committed: Committed = Vec::new();
            for request in 0..12_i64 {
                let first = (client * 7 + request * 5) % POSTS;
                let size = 1 + (client + request) % 6;
                let posts: Vec<(i64, u32)> = (0..size).map(|k| ((first + k * 3) % POSTS, 1 + (k % 2) as u32)).collect();
                let id = format!("{client}-{request}");
                let reservation = reserve_daily(&ledger, licensee, &id, &posts).await;
                let counts = reservation.allotment().counts.clone();
                // Every third response carries a canary of its own (revision 0, never counted).
                let canaries: Vec<i64> = if request % 3 == 0 { vec![1_000 + client * 100 + request] } else { vec![] };
                reservation.commit_with_canaries(facts(&id), &canaries, None).await.unwrap();
                for (&(post, revision), &counted) in posts.iter().zip(&counts) {
                    committed.push((licensee, id.clone(), post, revision, counted));
                }
                for &canary in &canaries {
                    committed.push((licensee, id.clone(), canary, 0, false));
                }
            }
            committed
        }));
    }
    let mut committed: Committed = Vec::new();
    for client in clients {
        committed.extend(client.await.unwrap());
    }
    let shared = t
        .count(
            "SELECT COUNT(*) FROM (SELECT chain, seq FROM usage_events GROUP BY chain, seq
             HAVING COUNT(DISTINCT licensee_id) > 1) mixed",
        )
        .await;
    assert!(shared > 0, "the test needs batches holding several licensees' responses");

    let month = MonthKey::of(t0());
    for reopened in [false, true] {
        if reopened {
            t.reopened().await;
        }
        let ledger = &t.ledger;
        for licensee in 1..=LICENSEES {
            let mine: Vec<_> = committed.iter().filter(|c| c.0 == licensee).collect();
            let mut want: Vec<(String, String, u32, bool)> =
                mine.iter().map(|c| (c.1.clone(), c.2.to_string(), c.3, c.4)).collect();
            want.sort();
            let mut got = Vec::new();
            ledger
                .deliveries(licensee, month, |r| {
                    got.push((r.request_id, r.post_id, r.revision, r.counted));
                    Ok(())
                })
                .await
                .unwrap();
            got.sort();
            assert_eq!(got, want, "licensee {licensee}'s export");

            let received = ledger.received(licensee).await.unwrap();
            let mut want_received: std::collections::BTreeMap<i64, u32> = Default::default();
            for c in mine.iter().filter(|c| c.3 > 0) {
                let oldest = want_received.entry(c.2).or_insert(c.3);
                *oldest = (*oldest).min(c.3);
            }
            let got_received: std::collections::BTreeMap<i64, u32> =
                received.iter().map(|(post, r)| (*post, r.oldest_revision)).collect();
            assert_eq!(got_received, want_received, "licensee {licensee}'s posts received (canaries excluded)");

            let everything: HashSet<i64> = committed.iter().map(|c| c.2).collect();
            let delivered: HashSet<i64> = mine.iter().map(|c| c.2).collect();
            assert_eq!(ledger.delivered_among(licensee, &everything).await.unwrap(), delivered.len() as u64);
        }
    }
    // Read back afresh, today's counted posts decide dedup: a page of every post counts exactly
    // those no earlier response of the licensee counted.
    for licensee in 1..=LICENSEES {
        let counted: HashSet<i64> = committed.iter().filter(|c| c.0 == licensee && c.4).map(|c| c.2).collect();
        let every: Vec<(i64, u32)> = (0..POSTS).map(|post| (post, 1)).collect();
        let id = format!("all-{licensee}");
        let reservation = reserve_daily(&t.ledger, licensee, &id, &every).await;
        let want: Vec<bool> = (0..POSTS).map(|post| !counted.contains(&post)).collect();
        assert_eq!(reservation.allotment().counts, want, "licensee {licensee}'s dedup after reading back");
        assert!(!counted.is_empty() && counted.len() < POSTS as usize, "the check needs both kinds of post");
        reservation.commit(facts(&id), None).await.unwrap();
    }
    verified(&t.ledger, &[]).await;
}

async fn batch_ranges_name_a_licensees_batches(t: TestLedger) {
    let ledger = &t.ledger;
    for (licensee, request) in [(1, "a"), (2, "b"), (1, "c"), (1, "d")] {
        deliver(ledger, licensee, Cap::UNLIMITED, Dedup::None, &page([licensee * 10]), request).await.unwrap();
    }
    let heads = ledger.heads().await.unwrap();
    let head = heads.iter().find(|h| h.chain == ledger.chain()).unwrap().seq;
    let (from, to) = (Timestamp(t0().0 - HOUR), Timestamp(t0().0 + HOUR));
    let ones = ledger.batch_ranges(1, from, to).await.unwrap();
    assert_eq!(ones.len(), 1, "{ones:?}");
    assert_eq!((ones[0].chain.as_str(), ones[0].last_seq, ones[0].events), (ledger.chain(), head, 3));
    assert!(ones[0].first_seq + 3 <= head + 1 && ones[0].first_seq < head, "{ones:?}");
    let twos = ledger.batch_ranges(2, from, to).await.unwrap();
    assert_eq!(
        (twos[0].first_seq, twos[0].last_seq, twos[0].events),
        (ones[0].first_seq + 1, ones[0].first_seq + 1, 1)
    );
    assert!(ledger.batch_ranges(1, to, Timestamp(to.0 + HOUR)).await.unwrap().is_empty(), "nothing outside the range");
    assert!(ledger.batch_ranges(3, from, to).await.unwrap().is_empty(), "nothing for another licensee");
}

async fn an_edited_delivery_is_named(t: TestLedger) {
    deliver(&t.ledger, 1, Cap::UNLIMITED, Dedup::None, &page([1, 2, 3]), "a").await.unwrap();
    deliver(&t.ledger, 1, Cap::UNLIMITED, Dedup::None, &page([4]), "b").await.unwrap();
    let head = verified(&t.ledger, &[]).await.chains[0].head.unwrap();
    // The licensee "received" another post than the one it did.
    t.tamper("UPDATE deliveries SET post_id = 99 WHERE post_id = 2").await;
    match t.ledger.verify(&[]).await.unwrap() {
        Err(VerifyFailure::Chain(ChainBreak::RowMismatch { seq, index })) => assert_eq!((seq, index), (1, 2)),
        other => panic!("an edited delivery passed or was misnamed: {other:?}"),
    }
    t.tamper("UPDATE deliveries SET post_id = 2 WHERE post_id = 99").await;
    verified(&t.ledger, &[ChainAnchor { chain: None, anchor: head }]).await;
    // The newest batch dropped whole: only a recorded head can tell.
    let batch = t.deliveries_of_batch(2);
    t.tamper(&format!(
        "DELETE FROM deliveries WHERE {batch}; DELETE FROM usage_events WHERE seq = 2; DELETE FROM ledger_batches WHERE seq = 2"
    ))
    .await;
    let failure = t.ledger.verify(&[ChainAnchor { chain: None, anchor: head }]).await.unwrap().unwrap_err();
    assert!(
        matches!(failure, VerifyFailure::Chain(ChainBreak::AnchorMismatch { .. }) | VerifyFailure::DailyTotals { .. }),
        "{failure}"
    );
}

async fn a_retried_idempotency_key_replays_without_counting(t: TestLedger) {
    let ledger = &t.ledger;
    let fingerprint = RequestFingerprint::new("GET", "/2/tweets", "ids=1,2");
    let Claim::Fresh(guard) = ledger.claim(1, "key-1", fingerprint).await.unwrap() else { panic!("not fresh") };
    assert!(matches!(ledger.claim(1, "key-1", fingerprint).await.unwrap(), Claim::InProgress));
    let request = MeterRequest {
        licensee_id: 1,
        request_id: "test",
        cap: Cap::hard(10),
        dedup: Dedup::None,
        page: &page([1, 2]),
        at: t0(),
        prepaid: None,
    };
    let Reserved::Serve(reservation) = ledger.reserve(request).await.unwrap() else { panic!("refused") };
    let response = IdempotentResponse { key: "key-1".into(), fingerprint, body: b"body".to_vec() };
    reservation.commit(facts("first"), Some(response)).await.unwrap();
    drop(guard);
    match ledger.claim(1, "key-1", fingerprint).await.unwrap() {
        Claim::Replay(stored) => {
            assert_eq!((stored.request_id.as_str(), stored.body.as_slice()), ("first", &b"body"[..]))
        }
        other => panic!("a retry was not replayed: {other:?}"),
    }
    let other = RequestFingerprint::new("GET", "/2/tweets", "ids=3");
    assert!(matches!(ledger.claim(1, "key-1", other).await.unwrap(), Claim::Mismatch { .. }));
    assert!(matches!(ledger.claim(2, "key-1", fingerprint).await.unwrap(), Claim::Fresh(_)), "keys are per licensee");
    assert_eq!(ledger.month_counted(1, MonthKey::of(t0())).await.unwrap(), 2, "the replay counted nothing");
}

async fn pruning_keeps_the_chain_verifiable(t: TestLedger) {
    for request in 0..4 {
        deliver(&t.ledger, 1, Cap::UNLIMITED, Dedup::None, &page([request, request + 10]), &format!("r{request}"))
            .await
            .unwrap();
    }
    let head = verified(&t.ledger, &[]).await.chains[0].head.unwrap();
    // The test clock never moved: every batch was committed at t0.
    let summary = t.ledger.prune(t0().plus_millis(HOUR)).await.unwrap();
    assert_eq!((summary.batches, summary.events, summary.deliveries), (4, 4, 8));
    let report = verified(&t.ledger, &[ChainAnchor { chain: None, anchor: head }]).await;
    assert_eq!((report.chains[0].batches, report.chains[0].pruned_batches, report.chains[0].rows), (4, 4, 0));
    assert_eq!(t.ledger.month_counted(1, MonthKey::of(t0())).await.unwrap(), 8, "pruning keeps the counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_each_node_writes_its_own_chain_and_verify_walks_them_all() {
    let Some(a) = TestLedger::postgres("node-a").await else { return };
    let Place::Postgres { store, .. } = &a.place else { unreachable!() };
    let clock = Arc::new(ManualClock::new(t0()));
    let b = Ledger::open_postgres(store, "node-b", clock.clone()).await.unwrap();
    // A second writer of a chain would fork it: refused while the first runs.
    match Ledger::open_postgres(store, "node-a", clock.clone()).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("--node"), "{message}"),
        other => panic!("a second writer of chain node-a was not refused: {:?}", other.map(|_| ())),
    }
    let mut tasks = Vec::new();
    for (node, ledger) in [("a", a.ledger.clone()), ("b", b.clone())] {
        for task in 0..3 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                for request in 0..20_i64 {
                    let posts = page([request, request + 100]);
                    deliver(&ledger, 7, Cap::UNLIMITED, Dedup::None, &posts, &format!("{node}-{task}-{request}"))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let reader = Ledger::open_postgres_for_reading(store, clock.clone());
    let report = verified(&reader, &[]).await;
    let chains: Vec<(&str, u64)> = report.chains.iter().map(|c| (c.chain.as_str(), c.rows)).collect();
    assert_eq!(chains, vec![("node-a", 60 * 3), ("node-b", 60 * 3)]);
    assert_eq!(reader.month_counted(7, MonthKey::of(t0())).await.unwrap(), 240, "both nodes' rows are counted");
    let heads: Vec<ChainAnchor> =
        report.chains.iter().map(|c| ChainAnchor { chain: Some(c.chain.clone()), anchor: c.head.unwrap() }).collect();
    // A head without its chain's name is ambiguous once there are several.
    let unnamed = ChainAnchor { chain: None, anchor: heads[0].anchor };
    assert!(matches!(reader.verify(&[unnamed]).await, Err(StoreError::Invalid(_))));
    verified(&reader, &heads).await;
    // A whole chain deleted (and its daily totals adjusted to match): only its recorded head tells.
    a.tamper(
        "DELETE FROM deliveries WHERE chain = 'node-b'; DELETE FROM usage_events WHERE chain = 'node-b';
         DELETE FROM ledger_batches WHERE chain = 'node-b'; UPDATE usage_daily SET events = events / 2,
         delivered = delivered / 2, counted = counted / 2, bytes = bytes / 2",
    )
    .await;
    verified(&reader, &heads[..1]).await;
    match reader.verify(&heads).await.unwrap() {
        Err(VerifyFailure::Chain(ChainBreak::AnchorMismatch { .. })) => {}
        other => panic!("a deleted chain was not caught against its head: {other:?}"),
    }
    drop(b);
}

/// The test Redis (`DATAPACT_TEST_REDIS`, default redis://127.0.0.1:6379); `None` (said) to skip,
/// a failure under `CI=true`.
async fn redis_or_skip(namespace: &str) -> Option<datapact_limiter::RedisLimiter> {
    let url = std::env::var("DATAPACT_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match datapact_limiter::RedisLimiter::connect(&url, namespace, std::time::Duration::from_secs(2)).await {
        Ok(limiter) => Some(limiter),
        Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("Redis is required in CI (CI=true) and is not usable at {url}: {error}")
        }
        Err(error) => {
            let line = format!("SKIPPED: Redis not usable at {url} (set DATAPACT_TEST_REDIS): {error}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            None
        }
    }
}

/// Two gateway nodes, each its own chain, deciding through one shared limiter: concurrent
/// requests on both against a hard cap of 1,000 get exactly 1,000, and the ledger says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_nodes_sharing_a_limiter_never_cross_a_hard_cap() {
    let Some(t) = TestLedger::postgres("unused").await else { return };
    let Place::Postgres { store, schema, .. } = &t.place else { unreachable!() };
    let Some(limiter) = redis_or_skip(schema).await else { return };
    let clock = Arc::new(ManualClock::new(t0()));
    let a = Ledger::open_postgres_shared(store, "node-a", clock.clone(), limiter.clone()).await.unwrap();
    let b = Ledger::open_postgres_shared(store, "node-b", clock.clone(), limiter.clone()).await.unwrap();
    let cap = Cap::hard(1_000);
    let delivered = deliver_until_capped(&[("a", a.clone()), ("b", b.clone())], 6, 60, 3, cap).await;
    assert_eq!(delivered, 1_000, "clients of both nodes received exactly the cap");
    assert_eq!(a.month_counted(3, MonthKey::of(t0())).await.unwrap(), 1_000, "the ledger says the cap");
    let report = verified(&Ledger::open_postgres_for_reading(store, clock.clone()), &[]).await;
    assert_eq!(report.chains.len(), 2, "each node wrote its own chain");
    assert!(limiter.outstanding("node-a").await.unwrap().is_empty(), "every reservation was settled");

    // A reservation a node never committed (it died mid-request) holds its counts until the node
    // reconciles at its next start: then they are given back, and exactly that many can be served.
    let c = Ledger::open_postgres_shared(store, "node-c", clock.clone(), limiter.clone()).await.unwrap();
    let posts = page(5_000..5_010);
    let before = c.month_counted(4, MonthKey::of(t0())).await.unwrap();
    assert_eq!(before, 0);
    let request = MeterRequest {
        licensee_id: 4,
        request_id: "lost",
        cap: Cap::hard(15),
        dedup: Dedup::None,
        page: &posts,
        at: t0(),
        prepaid: None,
    };
    let Reserved::Serve(lost) = c.reserve(request).await.unwrap() else { panic!("refused") };
    std::mem::forget(lost); // as a kill -9 would: no commit, no release
    assert_eq!(
        deliver(&c, 4, Cap::hard(15), Dedup::None, &page(6_000..6_010), "next").await,
        Some(5),
        "the lost 10 are held"
    );
    let reconciled = c.reconcile().await.unwrap();
    assert_eq!((reconciled.settled, reconciled.released), (0, 1));
    assert_eq!(deliver(&c, 4, Cap::hard(15), Dedup::None, &page(7_000..7_020), "after").await, Some(10), "given back");
    assert_eq!(c.month_counted(4, MonthKey::of(t0())).await.unwrap(), 15, "the ledger holds exactly the cap");
}

/// Redis loses its counts (a restart without persistence, a flush) while a reservation is in
/// flight: the limiter is re-seeded from the committed ledger, which does not hold it yet, so
/// another node may reserve up to the cap. The in-flight commit must then be refused by the
/// ledger itself, or the month would count past its hard cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_commit_past_the_cap_is_refused_when_redis_lost_count() {
    let Some(t) = TestLedger::postgres("unused").await else { return };
    let Place::Postgres { store, schema, .. } = &t.place else { unreachable!() };
    let Some(limiter) = redis_or_skip(schema).await else { return };
    let clock = Arc::new(ManualClock::new(t0()));
    let a = Ledger::open_postgres_shared(store, "node-a", clock.clone(), limiter.clone()).await.unwrap();
    let b = Ledger::open_postgres_shared(store, "node-b", clock.clone(), limiter.clone()).await.unwrap();
    let cap = Cap::hard(10);
    let posts = page(1..=6);
    let request = MeterRequest {
        licensee_id: 5,
        request_id: "in-flight",
        cap,
        dedup: Dedup::None,
        page: &posts,
        at: t0(),
        prepaid: None,
    };
    let Reserved::Serve(in_flight) = a.reserve(request).await.unwrap() else { panic!("refused") };
    assert_eq!(in_flight.allotment().counted, 6);
    // Redis forgets everything of this deployment.
    let url = std::env::var("DATAPACT_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut redis = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("dp:{schema}:*")).query_async(&mut redis).await.unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
    // Node b is re-seeded from the ledger (nothing committed) and takes the whole cap.
    assert_eq!(deliver(&b, 5, cap, Dedup::None, &page(100..120), "b-1").await, Some(10));
    // Node a's page, reserved before the loss, would cross it: the ledger refuses its commit.
    let refused = in_flight.commit(facts("in-flight"), None).await;
    assert!(matches!(&refused, Err(StoreError::Conflict(message)) if message.contains("hard cap")), "{refused:?}");
    assert_eq!(a.month_counted(5, MonthKey::of(t0())).await.unwrap(), 10, "the month never counts past the cap");
    // The refusal made the limiter forget the counts it lost, so they are re-seeded from the
    // ledger: the next request is refused at the cap (429), not failed again at the commit.
    let next = page(200..205);
    let request = MeterRequest { request_id: "after", page: &next, ..request };
    assert!(matches!(a.reserve(request).await.unwrap(), Reserved::Refused(_)), "not refused at the cap");
    verified(&a, &[]).await;
    // Node a's chain continues after the refused batch.
    assert_eq!(deliver(&a, 6, Cap::UNLIMITED, Dedup::None, &page(1..=3), "a-2").await, Some(3));
    verified(&a, &[]).await;
}

/// An `Idempotency-Key` sent to two gateways at once is served once: while one node holds it the
/// other answers "in progress" (or "mismatch" for another request), and once the first committed
/// a retry on the other node replays its response, counting nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_idempotency_key_is_held_across_nodes() {
    let Some(t) = TestLedger::postgres("unused").await else { return };
    let Place::Postgres { store, schema, .. } = &t.place else { unreachable!() };
    let Some(limiter) = redis_or_skip(schema).await else { return };
    let clock = Arc::new(ManualClock::new(t0()));
    let a = Ledger::open_postgres_shared(store, "node-a", clock.clone(), limiter.clone()).await.unwrap();
    let b = Ledger::open_postgres_shared(store, "node-b", clock.clone(), limiter.clone()).await.unwrap();
    let fingerprint = RequestFingerprint::new("GET", "/2/tweets", "ids=1,2");
    let other = RequestFingerprint::new("GET", "/2/tweets", "ids=3");
    let Claim::Fresh(guard) = a.claim(1, "shared-key", fingerprint).await.unwrap() else { panic!("not fresh") };
    assert!(matches!(b.claim(1, "shared-key", fingerprint).await.unwrap(), Claim::InProgress));
    assert!(matches!(b.claim(1, "shared-key", other).await.unwrap(), Claim::Mismatch { .. }));
    let posts = page([1, 2]);
    let request = MeterRequest {
        licensee_id: 1,
        request_id: "first",
        cap: Cap::hard(10),
        dedup: Dedup::None,
        page: &posts,
        at: t0(),
        prepaid: None,
    };
    let Reserved::Serve(reservation) = a.reserve(request).await.unwrap() else { panic!("refused") };
    let response = IdempotentResponse { key: "shared-key".into(), fingerprint, body: b"body".to_vec() };
    reservation.commit(facts("first"), Some(response)).await.unwrap();
    drop(guard);
    // The key is let go just after the commit (in a task of its own): a retry meanwhile is "in progress".
    let mut replayed = false;
    for _ in 0..100 {
        match b.claim(1, "shared-key", fingerprint).await.unwrap() {
            Claim::Replay(stored) => {
                assert_eq!(stored.body, b"body");
                replayed = true;
                break;
            }
            Claim::InProgress => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            other => panic!("a retry after the commit got {other:?}"),
        }
    }
    assert!(replayed, "a retry on another node after the commit was not replayed");
    assert_eq!(a.month_counted(1, MonthKey::of(t0())).await.unwrap(), 2, "counted once");
}

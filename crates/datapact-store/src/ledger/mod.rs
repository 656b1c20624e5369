//! The durable metering ledger, on SQLite: every response's usage event and deliveries, committed
//! in hash-chained group commits before the response leaves, the month's counts that exact caps
//! are decided against, and idempotent responses for retries.
//!
//! The rules (what counts, caps, dedup, the chain) are `datapact-ledger`'s; this module keeps them
//! durable and exact under concurrency:
//!
//! - **Decisions** are taken by [`Ledger::reserve`] under one lock, against the month's committed
//!   total *plus everything already reserved by requests still in flight*, so no interleaving of
//!   requests can count past a hard cap. The reservation is what the caller delivers.
//! - **Commits** go to one writer thread, which takes every commit waiting and writes them as one
//!   batch — one transaction, one fsync (`synchronous=FULL`, asserted at open) — sealed onto the
//!   chain ([`datapact_ledger::ChainWriter`]). A caller sends its body only once its commit
//!   returned.
//! - **Failure closes**: when a batch fails, every request in it and every request reserved before
//!   the failure was noticed fails too (their reservations may rest on the failed one: a post
//!   "already counted today", say), and the counts are reloaded from what was committed.
//! - **Nothing is written before a count it rests on**: a response that found a post free today
//!   because a reservation still in flight counted it waits in the writer until that reservation's
//!   rows are taken into a batch (or its abandonment handled), so if they fail or are given back,
//!   it fails with them rather than leave the post delivered and counted nowhere ([`Job::after`]).
//!
//! On the embedded store the ledger lives in its own file, [`LEDGER_FILE`], beside the store's, so
//! a group commit never waits behind an ingest transaction. On the PostgreSQL store it lives in the
//! store's database (`pg`), one hash chain per gateway node, so nodes never contend for a chain.

#[cfg(feature = "ledger-floor")]
mod floor;
mod pg;
mod read;
mod shared_meter;
mod verify;
mod writer;

pub(crate) use read::DELIVERY_CHAIN_ROWS_SQL;

use std::collections::{BTreeMap, HashMap, HashSet, btree_map};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use datapact_core::purpose::Purpose;
use datapact_core::{Clock, Endpoint, KeyPrefix, Timestamp};
use datapact_ledger::{
    Allotment, Cap, Capped, ChainHead, CreditExhausted, DayKey, Dedup, IdempotencyDecision, MonthKey, Prepaid,
    PriorState, PriorUse, RequestFingerprint, UsageEvent, meter_page_within_credit, response_rows,
};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::oneshot;

pub use read::{
    BatchRange, ChainAnchor, DeliveryRecord, PruneSummary, Received, UsageBy, UsageLine, VerifyFailure, VerifyReport,
    month_range, parse_anchor, verify_json,
};
pub use shared_meter::Reconciled;
use shared_meter::{Settle, SharedMeter};

use crate::postgres::PgStore;
use crate::{StoreError, StoreResult};

/// The ledger's database file in the data directory.
pub const LEDGER_FILE: &str = "ledger.db";
/// The file whose exclusive lock marks the one process writing a data directory's ledger.
pub const LEDGER_LOCK: &str = "ledger.lock";

/// Takes the data directory's writer lock ([`LEDGER_LOCK`]), as a serving gateway does: held
/// while the returned file lives. `datapact migrate` holds it so no gateway serves (and meters
/// into) the directory it copies; it fails with a Conflict while one does.
pub fn lock_data_dir(data_dir: &Path) -> StoreResult<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
    let path = data_dir.join(LEDGER_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
            "another datapact process is serving from {} (it holds {LEDGER_LOCK}); stop it first, or give this one \
             its own --data-dir (several gateways share one store only through PostgreSQL)",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(unavailable(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// The embedded store's one chain (a multi-node store keeps one per node).
pub const SQLITE_CHAIN: &str = "sqlite";
/// A group commit takes waiting commits until it holds this many rows (a commit is never split).
pub const MAX_BATCH_ROWS: usize = 16_384;
/// How many times [`Ledger::reserve`] reads counts again when failures keep clearing them.
const RELOAD_ATTEMPTS: usize = 16;
/// The most posts one reservation may hold (a page, or a burst of the stream).
pub const MAX_RESERVATION_POSTS: usize = 1_000;
/// The low bits of a delivery's `position`, SQLite's key for it (`seq << ORDINAL_BITS | ordinal`),
/// that hold its ordinal. The SQL spells it out as `<< 20`, `>> 20` and `& 1048575`.
const ORDINAL_BITS: u32 = 20;
// SQL cannot name a Rust constant: `read.rs`, migration 5 and the tests spell these out, so a
// change here must change them too (and, the key being stored, come with a migration).
const _: () = assert!(ORDINAL_BITS == 20, "the SQL spells 20, 1048575 (2^20 - 1) and 1048576 (2^20)");
// A batch stops taking commits at MAX_BATCH_ROWS, so it holds fewer than that plus one response.
const _: () = assert!(MAX_BATCH_ROWS + 4 * MAX_RESERVATION_POSTS < 1 << ORDINAL_BITS);

/// A delivery row's `position` in SQLite's ledger, or `None` past what the key can hold (an
/// ordinal of 2^20 or more, or a `seq` of 2^43 or more: 27 years of 10,000 commits a second).
pub(crate) fn delivery_position(seq: u64, ordinal: usize) -> Option<i64> {
    let ordinal = u64::try_from(ordinal).ok().filter(|o| *o < 1 << ORDINAL_BITS)?;
    let seq = seq.checked_shl(ORDINAL_BITS).filter(|s| *s >> ORDINAL_BITS == seq && *s <= i64::MAX as u64)?;
    Some((seq | ordinal) as i64)
}

const MIGRATIONS: &[&str] = &[
    include_str!("0001_ledger.sql"),
    include_str!("0002_canaries.sql"),
    include_str!("0003_credits.sql"),
    include_str!("0004_deliveries_through_events.sql"),
    include_str!("0005_deliveries_by_position.sql"),
];
const READ_CONNECTIONS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a ledger's single writer on a thread of its own.
fn spawn_writer<S: writer::BatchSink>(writer: writer::Writer<S>, jobs: mpsc::Receiver<Message>) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || writer.run(jobs))
        .map(drop)
        .map_err(|e| unavailable(format!("cannot start the ledger writer: {e}")))
}

/// Starts the writer of the jobs `receiver` gets: the ledger's own thread writing `conn`, or a
/// benchmark floor if this build has them and one is asked for (a floor that runs as a task on the
/// runtime is woken through `_jobs`).
fn start_writer(
    _data_dir: &Path,
    conn: Connection,
    head: Option<datapact_ledger::Anchor>,
    (shared, clock): (Arc<Shared>, Arc<dyn Clock>),
    receiver: mpsc::Receiver<Message>,
    _jobs: &mut Jobs,
) -> StoreResult<()> {
    #[cfg(feature = "ledger-floor")]
    match floor::Floor::from_environment(_data_dir)? {
        Some(floor::Floor::Thread(sink)) => {
            return spawn_writer(writer::Writer::new(sink, SQLITE_CHAIN, None, shared, clock), receiver);
        }
        Some(floor::Floor::Task(task)) => {
            _jobs.wake = Some(task.spawn(receiver, (shared, clock))?);
            return Ok(());
        }
        None => {}
    }
    spawn_writer(writer::Writer::new(conn, SQLITE_CHAIN, head, shared, clock), receiver)
}

/// Where responses' commits are sent: the writer thread's queue (with the `ledger-floor` feature,
/// a floor's task may read it instead, woken through `wake`).
#[derive(Clone, Debug)]
struct Jobs {
    sender: mpsc::Sender<Message>,
    #[cfg(feature = "ledger-floor")]
    wake: Option<Arc<tokio::sync::Notify>>,
}

impl Jobs {
    fn new(sender: mpsc::Sender<Message>) -> Jobs {
        Jobs {
            sender,
            #[cfg(feature = "ledger-floor")]
            wake: None,
        }
    }

    /// Queues `message` for the writer; `false` if the writer has stopped.
    fn send(&self, message: Message) -> bool {
        let sent = self.sender.send(message).is_ok();
        #[cfg(feature = "ledger-floor")]
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
        sent
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// What one response would deliver, for [`Ledger::reserve`].
#[derive(Clone, Copy, Debug)]
pub struct MeterRequest<'a> {
    pub licensee_id: i64,
    /// The request's id (the gateway's own, unique per process, and one per reservation: a stream
    /// names each burst `<id>.<n>`): a shared limiter's reservation is named after it, and settled
    /// or released by finding it in the ledger, so two reservations under one id could be mistaken
    /// for each other.
    pub request_id: &'a str,
    pub cap: Cap,
    pub dedup: Dedup,
    /// The candidate posts as `(post id, revision)`, in response order.
    pub page: &'a [(i64, u32)],
    pub at: Timestamp,
    /// For a prepaid licensee: the price and what its credits add up to.
    pub prepaid: Option<PrepaidTerms>,
}

/// A prepaid licensee's terms as of one request, for [`Ledger::reserve`]: the ledger knows what it
/// charged, the caller what was credited (the store's credits) and the price in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepaidTerms {
    /// The price of a counted record past `included_records`, in micro-units (0: not charged).
    pub per_record_micros: u64,
    /// Counted records a month covered by the fee.
    pub included_records: u64,
    /// Every credit added to the licensee, in micro-units of the same currency.
    pub credited_micros: i64,
}

/// The ledger's answer to [`Ledger::reserve`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // nearly every answer is `Serve`, moved once to its caller
pub enum Reserved {
    /// At a hard cap: deliver nothing (429 `usage-capped`).
    Refused(Capped),
    /// The prepaid credit pays for no record: deliver nothing (402).
    NoCredit(CreditExhausted),
    /// Deliver [`Reservation::posts`], then [`Reservation::commit`] before sending.
    Serve(Reservation),
}

/// The response's facts the ledger does not decide: who asked, how, and what the body weighed.
#[derive(Clone, Debug)]
pub struct EventFacts {
    pub key_prefix: KeyPrefix,
    pub endpoint: Endpoint,
    pub purpose: Purpose,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub user_reads: u32,
    pub bytes: u64,
}

/// A response to keep for retries of its `Idempotency-Key` (committed with its ledger rows).
#[derive(Clone, Debug)]
pub struct IdempotentResponse {
    pub key: String,
    pub fingerprint: RequestFingerprint,
    pub body: Vec<u8>,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_id: String,
    pub first_used_at: Timestamp,
    pub body: Vec<u8>,
}

/// What to do with a request that carries an `Idempotency-Key` ([`Ledger::claim`]).
#[derive(Debug)]
pub enum Claim {
    /// Never used (or expired): serve it; the guard holds the key until the request ends.
    Fresh(ClaimGuard),
    /// Already served: send the stored body again, count nothing.
    Replay(StoredResponse),
    /// The same request is being served right now.
    InProgress,
    /// The key was used for another request within 24 hours.
    Mismatch { first_used_at: Timestamp, reusable_at: Timestamp },
}

/// Holds an `Idempotency-Key` as in flight; released when dropped (after the commit, or on failure).
#[derive(Debug)]
pub struct ClaimGuard {
    in_flight: Arc<Mutex<HashMap<(i64, String), InFlightKey>>>,
    slot: (i64, String),
    /// The key as held in the shared limiter, for every node (see `shared_meter`).
    held: Option<HeldKey>,
}

/// An `Idempotency-Key` held in the shared limiter by this request.
#[derive(Debug)]
struct HeldKey {
    limiter: datapact_limiter::RedisLimiter,
    holder: String,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.slot);
        if let Some(HeldKey { limiter, holder }) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Not let go (no runtime, Redis down): it expires by itself.
            let (licensee_id, key) = self.slot.clone();
            runtime.spawn(async move {
                if let Err(error) = limiter.let_go_key(licensee_id, &key, &holder).await {
                    tracing::warn!(%error, "a held Idempotency-Key is left to expire");
                }
            });
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlightKey {
    fingerprint: RequestFingerprint,
    since: Timestamp,
}

/// One licensee's counts for the months and days being served: committed plus reserved.
///
/// More than one of each is kept because requests reach the lock in any order: one timed
/// 23:59:59.999 may come after one timed midnight, and its month's (or day's) reservations still in
/// flight must not be forgotten by reloading that month from the database.
#[derive(Debug, Default)]
struct LicenseeMeter {
    /// Counted records per month, committed or reserved by a request in flight.
    months: BTreeMap<MonthKey, u64>,
    /// Posts counted per day (committed or reserved), for the days daily dedup asked about.
    days: BTreeMap<DayKey, HashSet<i64>>,
    /// Micro-units charged to the prepaid credit ever, committed or reserved (loaded when first needed).
    charged: Option<u64>,
    /// The newest month and day forgotten ([`KEPT_PERIODS`]): no request for them or earlier is
    /// decided again in this generation.
    forgot_month: Option<MonthKey>,
    forgot_day: Option<DayKey>,
    /// Posts in `days` counted by a reservation the writer has not taken yet, and which one. A
    /// response that finds such a post free must not be written before that reservation's rows
    /// (or its abandonment): see [`Job::after`].
    pending: HashMap<(DayKey, i64), ReservationId>,
}

/// A reservation that counted posts under daily dedup, for ordering the commits that rest on it.
type ReservationId = u64;

/// Which committed counts a decision needs that the meter does not hold yet.
#[derive(Clone, Copy, Debug)]
struct Needs {
    month: bool,
    day: bool,
    charged: bool,
}

/// Committed counts read for a decision ([`Needs`]).
struct Loaded {
    month: Option<u64>,
    day: Option<HashSet<i64>>,
    charged: Option<u64>,
}

impl Loaded {
    /// Keeps what the meter still lacks (a value already there includes reservations in flight),
    /// but never a period it has forgotten ([`KEPT_PERIODS`]).
    fn keep(self, meter: &mut LicenseeMeter, month: MonthKey, day: DayKey) {
        if let Some(total) = self.month
            && meter.forgot_month.is_none_or(|forgot| month > forgot)
            && let btree_map::Entry::Vacant(entry) = meter.months.entry(month)
        {
            entry.insert(total);
            meter.forgot_month = meter.forgot_month.max(trim(&mut meter.months));
        }
        if let Some(counted) = self.day
            && meter.forgot_day.is_none_or(|forgot| day > forgot)
            && let btree_map::Entry::Vacant(entry) = meter.days.entry(day)
        {
            entry.insert(counted);
            meter.forgot_day = meter.forgot_day.max(trim(&mut meter.days));
        }
        if let Some(charged) = self.charged
            && meter.charged.is_none()
        {
            meter.charged = Some(charged);
        }
    }
}

/// How many months (and days) a licensee's meter keeps: the newest two it was asked about. A third
/// forgets the oldest, and a request for a period forgotten is refused (503, retry), since reading
/// that period again would miss its reservations still in flight. None are, in practice: a
/// reservation lives for one response (the gateway's request timeout, 30 s by default, cancels
/// it, and a cancelled one commits itself), and a stream reserves each burst when it sends it.
const KEPT_PERIODS: usize = 2;

/// Forgets the oldest periods beyond [`KEPT_PERIODS`]; returns the newest one forgotten.
fn trim<K: Ord + Copy, V>(periods: &mut BTreeMap<K, V>) -> Option<K> {
    let mut forgot = None;
    while periods.len() > KEPT_PERIODS {
        forgot = periods.pop_first().map(|(period, _)| period);
    }
    forgot
}

#[derive(Debug, Default)]
struct MeterState {
    /// Bumped when a commit fails or a reservation is abandoned: reservations of an older
    /// generation are refused at commit, and every count is reloaded from the database.
    generation: u64,
    licensees: HashMap<i64, LicenseeMeter>,
    next_reservation: ReservationId,
    /// Reservations that counted `pending` posts and that the writer has not taken yet: their
    /// rows are not in a batch, or their abandonment not handled. Only the writer removes them
    /// (`writer::resolve`), and `invalidate` leaves them: they say where the writer's queue
    /// stands, not what is counted.
    unresolved: HashSet<ReservationId>,
}

impl MeterState {
    fn invalidate(&mut self) {
        self.generation += 1;
        self.licensees.clear();
    }
}

struct Shared {
    meter: Mutex<MeterState>,
}

/// What the writer thread is sent, in order.
#[allow(clippy::large_enum_variant)] // nearly every message is a commit
enum Message {
    Commit(Job),
    /// A reservation was dropped uncommitted: once everything sent before it is written, bump the
    /// generation and reload the counts (a reload while a batch is being written would miss it).
    /// Jobs waiting for it ([`Job::after`]) then go on, and are refused as decided before it.
    Abandoned(Option<ReservationId>),
}

/// A job for the writer thread: one response's rows and what goes with them.
struct Job {
    /// The meter generation the rows were decided in; `None`: they depend on no decision.
    generation: Option<u64>,
    /// What the commit must not cross, for rows decided by the shared limiter (see [`Bounds`]).
    bounds: Option<Bounds>,
    /// The reservation these rows come from, if later jobs may wait for it.
    reservation: Option<ReservationId>,
    /// Reservations this job's rows rest on (a post free today because one of them counted it):
    /// the writer holds the job until it has taken each, so the job is never written before a
    /// count it relies on, which may yet fail or be given back. With it in the same batch, or
    /// after it, the job fails closed with it (the batch fails, or the generation moved on).
    after: Vec<ReservationId>,
    rows: Vec<datapact_ledger::Row>,
    daily: DailyDelta,
    response: Option<(i64, String, IdempotentResponse)>,
    reply: oneshot::Sender<StoreResult<()>>,
}

/// The limits a shared reservation was decided against, checked again by the PostgreSQL ledger
/// in the commit's transaction (under a lock per licensee): the shared limiter decides, but if
/// Redis lost its counts while reservations were in flight (a crash, a flush), a re-seeded count
/// misses them; the commit is then refused (503, nothing served) rather than cross a hard cap or
/// a prepaid credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bounds {
    /// The month's hard cap on counted records.
    pub hard_cap: Option<u64>,
    /// Every credit added, for a prepaid licensee charged per record.
    pub credited_micros: Option<i64>,
}

/// What one response adds to `usage_daily`.
#[derive(Clone, Debug)]
struct DailyDelta {
    licensee_id: i64,
    /// The response's time (its day is the row's key).
    at: Timestamp,
    endpoint: Endpoint,
    purpose: Purpose,
    delivered: u32,
    counted: u32,
    overage: u32,
    user_reads: u32,
    bytes: u64,
    charged: u64,
}

/// The SQLite ledger. Cheap to clone (one reference count: the gateway clones its state, ledger
/// included, several times per request); the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Ledger(Arc<LedgerInner>);

pub struct LedgerInner {
    /// The writer's exclusive lock on the data directory's ledger (`None` for readers).
    _lock: Option<std::fs::File>,
    backend: Backend,
    chain: String,
    /// Decisions shared with other nodes through Redis (`None`: in this process's memory).
    meter: Option<SharedMeter>,
    jobs: Jobs,
    shared: Arc<Shared>,
    in_flight: Arc<Mutex<HashMap<(i64, String), InFlightKey>>>,
    /// One read of committed counts at a time per licensee ([`Ledger::reserve`]).
    loads: CountLoads,
    clock: Arc<dyn Clock>,
}

/// Reads of committed counts, one at a time per licensee: requests that find a licensee's counts
/// missing while another request reads them wait for that read instead of repeating it. After a
/// restart under load, every request in flight misses the same day's dedup set, which on a busy
/// ledger is a read of millions of rows; each doing its own read kept the gateway busy for
/// seconds with copies of one answer.
#[derive(Default)]
struct CountLoads {
    gates: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Reads made so far ([`Ledger::count_loads`]).
    made: std::sync::atomic::AtomicU64,
}

impl std::ops::Deref for Ledger {
    type Target = LedgerInner;

    fn deref(&self) -> &LedgerInner {
        &self.0
    }
}

/// Where the ledger's rows are read from (the writer thread owns its own connection).
enum Backend {
    Sqlite { path: PathBuf, readers: r2d2::Pool<SqliteConnectionManager> },
    Postgres { pool: sqlx::PgPool },
}

/// A read on either store: SQLite's on a pooled connection, PostgreSQL's on the store's pool.
macro_rules! read {
    ($ledger:expr, |$conn:ident| $sqlite:expr, |$pool:ident| $postgres:expr) => {
        match &$ledger.backend {
            Backend::Sqlite { readers, .. } => {
                let connection = readers.get().map_err(unavailable)?;
                let $conn = &*connection;
                $sqlite
            }
            Backend::Postgres { pool: $pool } => $postgres.await,
        }
    };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a meter lock leaves counts that may be mid-update; they are only ever
    // raised before a commit, so using them errs towards refusing, never towards over-serving.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `data_dir`, checks it is durable, and starts its writer.
    ///
    /// Only one process may write a data directory's ledger: its counts and chain head live in
    /// this process's memory, so a second writer could cross a hard cap or fork the chain. The
    /// writer holds an exclusive lock on [`LEDGER_LOCK`]; a second `open` fails while it runs.
    /// Readers ([`Ledger::open_for_reading`]: the CLI's usage, export and verify) need no lock.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> StoreResult<Ledger> {
        let lock = lock_data_dir(data_dir)?;
        Self::open_with(data_dir, clock, Some(lock))
    }

    /// Opens the ledger to read (usage, deliveries, verify, prune) beside a running gateway.
    /// It meters nothing: `reserve`d commits fail.
    pub fn open_for_reading(data_dir: &Path, clock: Arc<dyn Clock>) -> StoreResult<Ledger> {
        Self::open_with(data_dir, clock, None)
    }

    fn open_with(data_dir: &Path, clock: Arc<dyn Clock>, lock: Option<std::fs::File>) -> StoreResult<Ledger> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let path = data_dir.join(LEDGER_FILE);
        let mut conn = open_writer(&path)?;
        migrate(&mut conn)?;
        let head = writer::head(&conn, SQLITE_CHAIN)?;
        let manager = SqliteConnectionManager::file(&path).with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384;")
        });
        let readers =
            r2d2::Pool::builder().max_size(READ_CONNECTIONS).min_idle(Some(1)).build(manager).map_err(unavailable)?;
        let shared = Arc::new(Shared { meter: Mutex::new(MeterState::default()) });
        let (sender, receiver) = mpsc::channel();
        let mut jobs = Jobs::new(sender);
        if lock.is_some() {
            let writer_state = (Arc::clone(&shared), Arc::clone(&clock));
            start_writer(data_dir, conn, head, writer_state, receiver, &mut jobs)?;
        }
        Ok(Ledger(Arc::new(LedgerInner {
            _lock: lock,
            backend: Backend::Sqlite { path, readers },
            chain: SQLITE_CHAIN.into(),
            meter: None,
            jobs,
            shared,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            loads: CountLoads::default(),
            clock,
        })))
    }

    /// Opens the ledger in a PostgreSQL store for a gateway node that writes chain `node`, and
    /// starts its writer. Refused while another process writes that chain. Decisions are taken in
    /// this process's memory: one gateway per store ([`Ledger::open_postgres_shared`] for several).
    pub async fn open_postgres(store: &PgStore, node: &str, clock: Arc<dyn Clock>) -> StoreResult<Ledger> {
        Self::open_postgres_with(store, node, clock, None).await
    }

    /// [`Ledger::open_postgres`] for one of several gateway nodes: caps, dedup and credits are
    /// reserved in the shared `limiter` (see `shared_meter`). Call [`Ledger::reconcile`] before
    /// serving.
    pub async fn open_postgres_shared(
        store: &PgStore,
        node: &str,
        clock: Arc<dyn Clock>,
        limiter: datapact_limiter::RedisLimiter,
    ) -> StoreResult<Ledger> {
        Self::open_postgres_with(store, node, clock, Some(limiter)).await
    }

    async fn open_postgres_with(
        store: &PgStore,
        node: &str,
        clock: Arc<dyn Clock>,
        limiter: Option<datapact_limiter::RedisLimiter>,
    ) -> StoreResult<Ledger> {
        check_node_name(node)?;
        #[cfg(feature = "ledger-floor")]
        if std::env::var_os(floor::FLOOR_VARIABLE).is_some() {
            tracing::warn!("{} is ignored on the PostgreSQL store: this ledger meters", floor::FLOOR_VARIABLE);
        }
        let options = store.pool().connect_options().as_ref().clone();
        let chain = node.to_owned();
        let shared = Arc::new(Shared { meter: Mutex::new(MeterState::default()) });
        let (sender, receiver) = mpsc::channel();
        let jobs = Jobs::new(sender);
        let (started, ready) = oneshot::channel();
        let writer_shared = Arc::clone(&shared);
        let writer_clock = Arc::clone(&clock);
        let writer_chain = chain.clone();
        // The writer connects (and takes its chain's lock) on its own thread and runtime: it
        // blocks on PostgreSQL for every batch, which the gateway's runtime must never do.
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                let opened = pg::PgSink::open(options, &writer_chain).and_then(|mut sink| {
                    let head = writer::BatchSink::head(&mut sink, &writer_chain)?;
                    Ok(writer::Writer::new(sink, &writer_chain, head, writer_shared, writer_clock))
                });
                match opened {
                    Ok(writer) => {
                        let _ = started.send(Ok(()));
                        writer.run(receiver);
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                }
            })
            .map_err(|e| unavailable(format!("cannot start the ledger writer: {e}")))?;
        ready.await.map_err(|_| unavailable("the ledger writer stopped while starting"))??;
        Ok(Ledger(Arc::new(LedgerInner {
            _lock: None,
            backend: Backend::Postgres { pool: store.pool().clone() },
            meter: limiter.map(|limiter| SharedMeter { limiter, node: chain.clone() }),
            chain,
            jobs,
            shared,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            loads: CountLoads::default(),
            clock,
        })))
    }

    /// Opens a PostgreSQL store's ledger to read (every chain): usage, deliveries, verify, prune.
    pub fn open_postgres_for_reading(store: &PgStore, clock: Arc<dyn Clock>) -> Ledger {
        let jobs = Jobs::new(mpsc::channel().0);
        Ledger(Arc::new(LedgerInner {
            _lock: None,
            backend: Backend::Postgres { pool: store.pool().clone() },
            chain: String::new(),
            meter: None,
            jobs,
            shared: Arc::new(Shared { meter: Mutex::new(MeterState::default()) }),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            loads: CountLoads::default(),
            clock,
        }))
    }

    /// The SQLite ledger's file (`None` on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres { .. } => None,
        }
    }

    /// The chain this ledger writes.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Whether `request_id` committed on this ledger's chain.
    pub async fn committed(&self, request_id: &str) -> StoreResult<bool> {
        read!(self, |conn| read::committed(conn, &self.chain, request_id), |pool| pg::committed(
            pool,
            &self.chain,
            request_id
        ))
    }

    /// What the meter must load before deciding for `request`: `None` when it holds everything.
    /// Refused when the meter has forgotten the request's month (or, under daily dedup, its day).
    fn missing(&self, request: &MeterRequest<'_>, month: MonthKey, day: DayKey) -> StoreResult<Option<(u64, Needs)>> {
        let state = lock(&self.shared.meter);
        let meter = state.licensees.get(&request.licensee_id);
        if let Some(meter) = meter
            && (meter.forgot_month.is_some_and(|forgot| month <= forgot)
                || (request.dedup == Dedup::Daily && meter.forgot_day.is_some_and(|forgot| day <= forgot)))
        {
            return Err(unavailable(format!(
                "a response timed {} is older than the periods the ledger's meter holds for its licensee, which newer \
                 responses replaced; it was not served: retry",
                request.at
            )));
        }
        let needs = Needs {
            month: meter.is_none_or(|m| !m.months.contains_key(&month)),
            day: request.dedup == Dedup::Daily && meter.is_none_or(|m| !m.days.contains_key(&day)),
            charged: request.prepaid.is_some() && meter.is_none_or(|m| m.charged.is_none()),
        };
        Ok((needs.month || needs.day || needs.charged).then_some((state.generation, needs)))
    }

    /// Reads what [`Needs`] names from the committed ledger; SQLite's reads run on a blocking
    /// thread (a day's dedup set can be millions of rows, which must not stall the gateway).
    async fn load(&self, licensee_id: i64, month: MonthKey, day: DayKey, needs: Needs) -> StoreResult<Loaded> {
        self.loads.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.backend {
            Backend::Sqlite { readers, .. } => {
                let readers = readers.clone();
                blocking(move || {
                    let conn = readers.get().map_err(unavailable)?;
                    Ok(Loaded {
                        month: needs.month.then(|| read::month_counted(&conn, licensee_id, month)).transpose()?,
                        day: needs.day.then(|| read::counted_on(&conn, licensee_id, day)).transpose()?,
                        charged: needs.charged.then(|| read::charged(&conn, licensee_id)).transpose()?,
                    })
                })
                .await
            }
            Backend::Postgres { pool } => Ok(Loaded {
                month: if needs.month { Some(pg::month_counted(pool, licensee_id, month).await?) } else { None },
                day: if needs.day { Some(pg::counted_on(pool, licensee_id, day).await?) } else { None },
                charged: if needs.charged { Some(pg::charged(pool, licensee_id).await?) } else { None },
            }),
        }
    }

    /// How many times this process read a licensee's committed counts (month total, day's dedup
    /// set, credit charged) to decide a reservation: once per licensee and period after a start,
    /// and again after a failed commit.
    pub fn count_loads(&self) -> u64 {
        self.loads.made.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Decides what of `request.page` to deliver and reserves its counts: exact under any
    /// concurrency, because every decision for every licensee is taken under one lock against the
    /// committed total plus what requests in flight reserved.
    pub async fn reserve(&self, request: MeterRequest<'_>) -> StoreResult<Reserved> {
        if request.page.len() > MAX_RESERVATION_POSTS {
            return Err(StoreError::Invalid(format!(
                "a response may meter at most {MAX_RESERVATION_POSTS} posts, not {}",
                request.page.len()
            )));
        }
        if let Some(meter) = &self.meter {
            return self.reserve_shared(meter, request).await;
        }
        let month = MonthKey::of(request.at);
        let day = DayKey::of(request.at);
        // Counts not yet in memory are read outside the lock (a read may wait on the database),
        // then kept only where still missing: a request that loaded them first may already have
        // reserved on top of them. A failure meanwhile (a new generation, the meter cleared) means
        // reading again.
        let mut attempts = 0;
        let mut state = loop {
            while self.missing(&request, month, day)?.is_some() {
                let gate = Arc::clone(lock(&self.loads.gates).entry(request.licensee_id).or_default());
                let _loading = gate.lock().await;
                // Another request may have read them while this one waited.
                let Some((generation, needs)) = self.missing(&request, month, day)? else { break };
                let loaded = self.load(request.licensee_id, month, day, needs).await?;
                let mut state = lock(&self.shared.meter);
                if state.generation == generation {
                    loaded.keep(state.licensees.entry(request.licensee_id).or_default(), month, day);
                }
            }
            let state = lock(&self.shared.meter);
            let ready = state.licensees.get(&request.licensee_id).is_some_and(|meter| {
                meter.months.contains_key(&month)
                    && (request.dedup != Dedup::Daily || meter.days.contains_key(&day))
                    && (request.prepaid.is_none() || meter.charged.is_some())
            });
            if ready {
                break state;
            }
            drop(state);
            attempts += 1;
            if attempts == RELOAD_ATTEMPTS {
                return Err(unavailable("the ledger's counts keep being reloaded (commits are failing); retry"));
            }
        };
        let generation = state.generation;
        let MeterState { licensees, next_reservation, unresolved, .. } = &mut *state;
        let meter = licensees.get_mut(&request.licensee_id).expect("present: checked under this lock");
        let prepaid = request.prepaid.map(|terms| Prepaid {
            per_record_micros: terms.per_record_micros,
            included_records: terms.included_records,
            balance_micros: terms.credited_micros.saturating_sub(meter.charged.map_or(0, |c| c as i64)),
        });
        let used = meter.months[&month];
        let ids: Vec<i64> = request.page.iter().map(|&(id, _)| id).collect();
        let today = meter.days.get(&day);
        let decision = meter_page_within_credit(used, request.cap, prepaid, request.dedup, &ids, |id| {
            today.is_some_and(|t| t.contains(&id))
        });
        let allotment = match decision {
            datapact_ledger::Metered::Refused(capped) => return Ok(Reserved::Refused(capped)),
            datapact_ledger::Metered::NoCredit(exhausted) => return Ok(Reserved::NoCredit(exhausted)),
            datapact_ledger::Metered::Serve(allotment) => allotment,
        };
        if let Some(remaining) = request.cap.remaining(used) {
            assert!(u64::from(allotment.counted) <= remaining, "a reservation never crosses a hard cap");
        }
        if let Some(prepaid) = prepaid {
            assert!(allotment.charge as i128 <= i128::from(prepaid.balance_micros), "a charge never passes the credit");
            meter.charged = meter.charged.map(|charged| charged + allotment.charge);
        }
        meter.months.insert(month, allotment.used_after);
        if let Some(today) = meter.days.get_mut(&day) {
            today.extend(ids.iter().zip(&allotment.counts).filter(|(_, counts)| **counts).map(|(id, _)| *id));
        }
        // Under daily dedup a post is free when counted today, committed or not. Not yet
        // committed, the count may still fail or be given back, so this reservation's rows must
        // not be written before the one holding it (see `Job::after`); and the posts this one
        // counts are pending until the writer takes its own rows.
        let (mut reservation, mut after) = (None, Vec::new());
        if request.dedup == Dedup::Daily {
            let delivered = ids.iter().zip(&allotment.counts);
            for (post, _) in delivered.clone().filter(|(_, counts)| !**counts) {
                if let Some(&holder) = meter.pending.get(&(day, *post))
                    && !after.contains(&holder)
                {
                    after.push(holder);
                }
            }
            if allotment.counted > 0 {
                let id = *next_reservation;
                *next_reservation += 1;
                unresolved.insert(id);
                for (post, _) in delivered.filter(|(_, counts)| **counts) {
                    meter.pending.insert((day, *post), id);
                }
                reservation = Some(id);
            }
        }
        drop(state);
        Ok(Reserved::Serve(Reservation {
            reservation,
            after,
            jobs: self.jobs.clone(),
            shared: Arc::clone(&self.shared),
            licensee_id: request.licensee_id,
            at: request.at,
            generation: Some(generation),
            posts: request.page[..allotment.delivered].to_vec(),
            allotment,
            balance_before: prepaid.map(|prepaid| prepaid.balance_micros),
            settle: None,
            bounds: None,
            submitted: false,
            if_dropped: None,
        }))
    }

    /// Records a response that delivered no post records (user lookups): a usage event with its
    /// user reads, committed like any other.
    pub fn record(
        &self,
        licensee_id: i64,
        at: Timestamp,
        facts: EventFacts,
        response: Option<IdempotentResponse>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static + use<> {
        let nothing = Allotment {
            delivered: 0,
            counts: Vec::new(),
            counted: 0,
            cut: false,
            overage: 0,
            used_after: 0,
            charge: 0,
        };
        submit(&self.jobs, (None, Vec::new()), None, None, licensee_id, at, &[], &nothing, &[], facts, response)
    }

    /// Looks up an `Idempotency-Key` for `licensee_id` and, when it is free, holds it until the
    /// returned guard is dropped.
    pub async fn claim(&self, licensee_id: i64, key: &str, fingerprint: RequestFingerprint) -> StoreResult<Claim> {
        let now = self.clock.now();
        let slot = (licensee_id, key.to_owned());
        {
            let mut in_flight = lock(&self.in_flight);
            if let Some(held) = in_flight.get(&slot) {
                let prior =
                    PriorUse { first_used_at: held.since, fingerprint: held.fingerprint, state: PriorState::InFlight };
                match datapact_ledger::idempotency::decide(Some(&prior), &fingerprint, now) {
                    IdempotencyDecision::InProgress | IdempotencyDecision::Replay { .. } => {
                        return Ok(Claim::InProgress);
                    }
                    IdempotencyDecision::Mismatch { first_used_at, reusable_at } => {
                        return Ok(Claim::Mismatch { first_used_at, reusable_at });
                    }
                    IdempotencyDecision::Fresh => {}
                }
            }
            // Held before the committed response is read (the read may wait on the database), so
            // a retry arriving meanwhile is told "in progress" rather than served a second time.
            in_flight.insert(slot.clone(), InFlightKey { fingerprint, since: now });
        }
        let mut guard = ClaimGuard { in_flight: Arc::clone(&self.in_flight), slot, held: None };
        if let Some(meter) = &self.meter {
            // Held for every node before the committed response is read, as in this process.
            match self.hold_shared(meter, licensee_id, key, fingerprint, now).await? {
                Ok(held) => guard.held = Some(held),
                Err(claim) => return Ok(claim),
            }
        }
        let stored = read!(self, |conn| read::stored_response(conn, licensee_id, key), |pool| pg::stored_response(
            pool,
            licensee_id,
            key
        ))?;
        let prior = stored.as_ref().map(|(fingerprint, stored)| PriorUse {
            first_used_at: stored.first_used_at,
            fingerprint: *fingerprint,
            state: PriorState::Committed { request_id: stored.request_id.clone() },
        });
        Ok(match datapact_ledger::idempotency::decide(prior.as_ref(), &fingerprint, now) {
            IdempotencyDecision::Fresh => Claim::Fresh(guard),
            IdempotencyDecision::Replay { .. } => {
                Claim::Replay(stored.expect("a committed prior use has its stored response").1)
            }
            IdempotencyDecision::InProgress => Claim::InProgress,
            IdempotencyDecision::Mismatch { first_used_at, reusable_at } => {
                Claim::Mismatch { first_used_at, reusable_at }
            }
        })
    }

    /// The posts counted for a licensee on `day`, as committed.
    async fn counted_on(&self, licensee_id: i64, day: DayKey) -> StoreResult<HashSet<i64>> {
        read!(self, |conn| read::counted_on(conn, licensee_id, day), |pool| pg::counted_on(pool, licensee_id, day))
    }

    /// Every post delivered to a licensee (canaries excluded), with its first delivery and the
    /// oldest revision delivered: what deletion compliance tells it about. Pruned batches no longer count.
    pub async fn received(&self, licensee_id: i64) -> StoreResult<HashMap<i64, Received>> {
        read!(self, |conn| read::received(conn, licensee_id), |pool| pg::received(pool, licensee_id))
    }

    /// Micro-units ever charged to a licensee's prepaid credit, as committed.
    pub async fn charged(&self, licensee_id: i64) -> StoreResult<u64> {
        read!(self, |conn| read::charged(conn, licensee_id), |pool| pg::charged(pool, licensee_id))
    }

    /// The month's counted total for a licensee, as committed.
    pub async fn month_counted(&self, licensee_id: i64, month: MonthKey) -> StoreResult<u64> {
        read!(self, |conn| read::month_counted(conn, licensee_id, month), |pool| pg::month_counted(
            pool,
            licensee_id,
            month
        ))
    }

    /// Counted records per day for a licensee, for the days from `first` to `last` (inclusive) that have any.
    pub async fn daily_counts(
        &self,
        licensee_id: i64,
        first: DayKey,
        last: DayKey,
    ) -> StoreResult<Vec<datapact_ledger::DailyCount>> {
        read!(self, |conn| read::daily_counts(conn, licensee_id, first, last), |pool| pg::daily_counts(
            pool,
            licensee_id,
            first,
            last
        ))
    }

    /// Per chain, the batches holding a licensee's usage events at `[from, to)`: the ledger ranges
    /// an evidence report rests on (`datapact report`).
    pub async fn batch_ranges(&self, licensee_id: i64, from: Timestamp, to: Timestamp) -> StoreResult<Vec<BatchRange>> {
        read!(self, |conn| read::batch_ranges(conn, licensee_id, from, to), |pool| pg::batch_ranges(
            pool,
            licensee_id,
            from,
            to
        ))
    }

    /// Usage totals for a month, grouped by licensee and `by`.
    pub async fn usage(&self, licensee_id: Option<i64>, month: MonthKey, by: UsageBy) -> StoreResult<Vec<UsageLine>> {
        read!(self, |conn| read::usage(conn, licensee_id, month, by), |pool| pg::usage(pool, licensee_id, month, by))
    }

    /// Every delivery to a licensee in a month, in the order delivered, to `visit`.
    pub async fn deliveries(
        &self,
        licensee_id: i64,
        month: MonthKey,
        visit: impl FnMut(DeliveryRecord) -> std::io::Result<()>,
    ) -> StoreResult<u64> {
        read!(self, |conn| read::deliveries(conn, licensee_id, month, visit), |pool| pg::deliveries(
            pool,
            licensee_id,
            month,
            visit
        ))
    }

    /// Every canary delivered and still held (not pruned): `(licensee id, canary post id)`, each
    /// once, for `datapact trace` to regenerate their texts.
    pub async fn canaries(&self) -> StoreResult<Vec<(i64, i64)>> {
        read!(self, |conn| read::canaries(conn), |pool| pg::canaries(pool))
    }

    /// How many of `post_ids` were ever delivered to the licensee (`datapact trace`: the share
    /// of a leak an accused licensee received). Pruned batches no longer count.
    pub async fn delivered_among(&self, licensee_id: i64, post_ids: &HashSet<i64>) -> StoreResult<u64> {
        read!(self, |conn| read::delivered_among(conn, licensee_id, post_ids), |pool| pg::delivered_among(
            pool,
            licensee_id,
            post_ids
        ))
    }

    /// Every chain's newest batch, sorted by chain name: what a signed checkpoint states.
    pub async fn heads(&self) -> StoreResult<Vec<ChainHead>> {
        read!(self, |conn| read::heads(conn), |pool| pg::heads(pool))
    }

    /// Recomputes every chain from its genesis (and the daily totals from the events still held),
    /// naming the first break. `expect`: heads recorded earlier, which the chains must still contain.
    /// SQLite's walk runs on a blocking thread: it reads the whole ledger.
    pub async fn verify(&self, expect: &[ChainAnchor]) -> StoreResult<Result<VerifyReport, VerifyFailure>> {
        match &self.backend {
            Backend::Sqlite { readers, .. } => {
                let (readers, chain, expect) = (readers.clone(), self.chain.clone(), expect.to_vec());
                blocking(move || read::verify(&*readers.get().map_err(unavailable)?, &chain, &expect)).await
            }
            Backend::Postgres { pool } => pg::verify(pool, expect).await,
        }
    }

    /// Deletes the rows of whole batches committed before `before`, keeping their headers, so the
    /// chains still verify. Also forgets idempotent responses older than 24 hours.
    pub async fn prune(&self, before: Timestamp) -> StoreResult<PruneSummary> {
        let now = self.clock.now();
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let (path, chain) = (path.clone(), self.chain.clone());
                blocking(move || read::prune(&mut open_writer(&path)?, &chain, before, now)).await
            }
            Backend::Postgres { pool } => pg::prune(pool, before, now).await,
        }
    }
}

/// Runs a long SQLite job off the async runtime.
async fn blocking<T: Send + 'static>(job: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(job).await.map_err(|e| unavailable(format!("a ledger job failed: {e}")))?
}

/// A gateway node's name, which names its ledger chain: a short plain identifier.
pub fn check_node_name(node: &str) -> StoreResult<()> {
    if !datapact_ledger::checkpoint::plain_chain_name(node) || node == SQLITE_CHAIN {
        return Err(StoreError::Invalid(format!(
            "node name {node:?} is not usable: 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.' (and not {SQLITE_CHAIN:?})"
        )));
    }
    Ok(())
}

/// A reservation: the posts a response may deliver and the counts they took. Commit it before
/// sending them. Dropped uncommitted, it is committed anyway if [`Reservation::commit_if_dropped`]
/// asked for it (a request cancelled by its client: counted, not received, which errs the way the
/// ledger may); otherwise it gives the counts back, and to stay exact makes every other request in
/// flight fail closed ([`Reservation::abandon`], or a panic).
#[derive(Debug)]
pub struct Reservation {
    jobs: Jobs,
    shared: Arc<Shared>,
    licensee_id: i64,
    at: Timestamp,
    /// The in-process meter's generation it was decided in (`None`: decided by the shared limiter).
    generation: Option<u64>,
    posts: Vec<(i64, u32)>,
    allotment: Allotment,
    /// A prepaid licensee's balance when this was reserved (its charges in flight deducted).
    balance_before: Option<i64>,
    /// The shared limiter's reservation, settled after the commit or released without one.
    settle: Option<Settle>,
    /// What its commit must not cross (shared reservations only).
    bounds: Option<Bounds>,
    /// Its id, while other reservations may rest on posts it counted (in-process daily dedup).
    reservation: Option<ReservationId>,
    /// The reservations it rests on ([`Job::after`]).
    after: Vec<ReservationId>,
    submitted: bool,
    /// The facts to commit it with if it is dropped uncommitted ([`Reservation::commit_if_dropped`]).
    if_dropped: Option<EventFacts>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Reservation {
    /// The posts to deliver, `(post id, revision)`, in order: a prefix of the page asked about.
    pub fn posts(&self) -> &[(i64, u32)] {
        &self.posts
    }

    pub fn allotment(&self) -> &Allotment {
        &self.allotment
    }

    /// For a prepaid licensee: its balance before and after this reservation's charge, in micro-units.
    pub fn balance(&self) -> Option<(i64, i64)> {
        self.balance_before.map(|before| (before, before - self.allotment.charge as i64))
    }

    /// Whether the page was cut short by a hard cap or the prepaid credit.
    pub fn cut(&self) -> bool {
        self.allotment.cut
    }

    /// Makes dropping this reservation uncommitted commit it with `facts` (a response whose body
    /// was never finished: say so with zero bytes), instead of giving its counts back. For a caller
    /// that may be cancelled between reserving and committing, such as a request handler whose
    /// client disconnects: giving counts back would make every request in flight fail closed,
    /// while committing them only counts what the client may not have received.
    pub fn commit_if_dropped(&mut self, facts: EventFacts) {
        self.if_dropped = Some(facts);
    }

    /// Gives the counts back without committing (the response failed and sends no posts): every
    /// count is reloaded from the ledger, and requests reserved meanwhile fail closed, since their
    /// decisions may rest on these counts.
    pub fn abandon(mut self) {
        self.if_dropped = None;
    }

    /// Sends the response's rows to the writer now, and returns the commit to await before
    /// sending the body (an error: the body must not be sent). It may wait for reservations taken
    /// before this one whose counts this one rests on ([`Job::after`]): a caller must not hold
    /// one of those, uncommitted, while it awaits this.
    pub fn commit(
        self,
        facts: EventFacts,
        response: Option<IdempotentResponse>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        self.commit_with_canaries(facts, &[], response)
    }

    /// [`Reservation::commit`] for a response that also carries canaries (synthetic posts made
    /// for this licensee): each gets a delivery row with revision [`datapact_ledger::CANARY_REVISION`],
    /// never counted and outside the event's totals.
    pub fn commit_with_canaries(
        mut self,
        facts: EventFacts,
        canaries: &[i64],
        response: Option<IdempotentResponse>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        self.send(facts, canaries, response)
    }

    /// Sends the rows to the writer now (so it happens even if the returned commit is never
    /// awaited); the commit settles a shared reservation once the rows are written.
    fn send(
        &mut self,
        facts: EventFacts,
        canaries: &[i64],
        response: Option<IdempotentResponse>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static + use<> {
        self.submitted = true;
        let commit = submit(
            &self.jobs,
            (self.reservation, std::mem::take(&mut self.after)),
            self.generation,
            self.bounds,
            self.licensee_id,
            self.at,
            &self.posts,
            &self.allotment,
            canaries,
            facts,
            response,
        );
        let settle = self.settle.take();
        async move {
            let committed = commit.await;
            if let Some(settle) = settle {
                settle.after_commit(&committed).await;
            }
            committed
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.submitted
            && let Some(facts) = self.if_dropped.take()
        {
            let settles = self.settle.is_some();
            let commit = self.send(facts, &[], None);
            // The rows are on their way to the writer; nobody waits for the outcome, but a shared
            // reservation still settles after it (with no runtime, it is left to reconcile).
            if settles && let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(commit);
            }
            return;
        }
        if let Some(Settle { limiter, id, .. }) = self.settle.take() {
            // Never committed: give its counts back to every node (or leave it to reconcile).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = limiter.release(&id).await {
                        tracing::warn!(%error, request = id.request_id, "a shared reservation is left to reconcile");
                    }
                });
            }
            return;
        }
        // A reservation that counted nothing took nothing another decision could rest on.
        if !self.submitted && self.allotment.counted > 0 {
            tracing::warn!(licensee = self.licensee_id, "a ledger reservation was abandoned; counts are reloaded");
            // The counts stay held (erring towards refusing) until the writer has written
            // everything sent before this; with no writer, nothing is in flight.
            if !self.jobs.send(Message::Abandoned(self.reservation)) {
                lock(&self.shared.meter).invalidate();
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn submit(
    jobs: &Jobs,
    (reservation, after): (Option<ReservationId>, Vec<ReservationId>),
    generation: Option<u64>,
    bounds: Option<Bounds>,
    licensee_id: i64,
    at: Timestamp,
    posts: &[(i64, u32)],
    allotment: &Allotment,
    canaries: &[i64],
    facts: EventFacts,
    response: Option<IdempotentResponse>,
) -> impl Future<Output = StoreResult<()>> + Send + 'static + use<> {
    let counts = &allotment.counts;
    let counted = counts.iter().filter(|c| **c).count() as u32;
    let event = UsageEvent {
        licensee_id,
        key_prefix: facts.key_prefix,
        endpoint: facts.endpoint,
        purpose: facts.purpose,
        request_id: facts.request_id,
        idempotency_key: facts.idempotency_key,
        at,
        delivered: posts.len() as u32,
        counted,
        user_reads: facts.user_reads,
        bytes: facts.bytes,
        charged: allotment.charge,
    };
    let daily = DailyDelta {
        licensee_id,
        at,
        endpoint: event.endpoint,
        purpose: event.purpose,
        delivered: event.delivered,
        counted,
        overage: allotment.overage,
        user_reads: event.user_reads,
        bytes: event.bytes,
        charged: event.charged,
    };
    let response = response.map(|response| (licensee_id, event.request_id.clone(), response));
    let rows = response_rows(event, posts, counts, canaries);
    let (reply, done) = oneshot::channel();
    let sent = jobs.send(Message::Commit(Job { generation, bounds, reservation, after, rows, daily, response, reply }));
    async move {
        if !sent {
            return Err(unavailable("the ledger writer has stopped"));
        }
        done.await.map_err(|_| unavailable("the ledger writer stopped before committing"))?
    }
}

fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Checkpoints every 8,192 pages (32 MiB) rather than SQLite's 1,000: fewer database fsyncs
    // in the commit path under load.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = 8192;",
    )?;
    // The ledger promises that a committed row survives a crash: refuse to run without it.
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    if synchronous != 2 {
        return Err(unavailable(format!("SQLite refused synchronous=FULL for the ledger (got {synchronous})")));
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    crate::sqlite::run_migrations(conn, MIGRATIONS, "ledger")
}

/// The `synchronous` level the ledger's connections get (2 = FULL), for tests and start-up checks.
pub fn synchronous_level(data_dir: &Path) -> StoreResult<i64> {
    let conn = open_writer(&data_dir.join(LEDGER_FILE))?;
    Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?)
}

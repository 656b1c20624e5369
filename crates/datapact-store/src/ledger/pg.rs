//! The ledger in the PostgreSQL store (`postgres/0006_ledger.sql`): the same tables, rows, chain
//! and statements as SQLite's `ledger.db`, with one hash chain per gateway node.
//!
//! Each node's writer thread owns one connection, on which it holds a session advisory lock
//! named after its chain: two processes can never write one chain (they would fork it). The
//! batch is written with one `UNNEST` insert per table and committed with PostgreSQL's
//! `synchronous_commit` on (checked when the writer connects): the commit returns once the WAL is
//! flushed, the same promise as SQLite's `synchronous=FULL`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, btree_map};

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, Timestamp};
use datapact_ledger::{
    Anchor, ChainHead, DailyCount, DayKey, Delivery, Digest, MonthKey, RequestFingerprint, Row, SealedBatch, StoredRow,
    UsageEvent,
};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row as _};

use super::read::{
    BATCH_RANGES_SQL, BatchRange, CANARIES_SQL, CHARGED_SQL, DAILY_COUNTS_SQL, HEADS_SQL, MONTH_COUNTED_SQL,
    PRUNE_BATCHES_SQL, PRUNE_EVENTS_SQL, PRUNE_LAST_SQL, PRUNE_RESPONSES_SQL, Received, STORED_RESPONSE_SQL,
    anchors_for, chain_heads, licensee_delivery_statements, month_range, received_post, stored_header, usage_group,
    usage_lines, usage_sql,
};
use super::verify::{
    ChainWalk, DAILY_LINES_SQL, DAILY_TOTALS_SQL, DailyLine, PRUNE_HORIZON_SQL, Positioned, check_daily_line,
    check_day_totals, daily_check_from,
};
use super::writer::{BatchSink, WriteError, daily_lines};
use super::{
    ChainAnchor, DeliveryRecord, Job, PruneSummary, StoredResponse, UsageBy, UsageLine, VerifyFailure, VerifyReport,
    unavailable,
};
use crate::postgres::pg;
use crate::{StoreError, StoreResult};

licensee_delivery_statements!(
    "usage_events e JOIN deliveries d
       ON d.chain = e.chain AND d.seq = e.seq AND d.ordinal > e.ordinal
      AND d.ordinal < COALESCE((SELECT MIN(n.ordinal) FROM usage_events n
                                WHERE n.chain = e.chain AND n.seq = e.seq AND n.ordinal > e.ordinal),
                               9223372036854775807)
      AND d.licensee_id = e.licensee_id",
    "d.chain, d.seq, d.ordinal"
);
/// PostgreSQL's: its deliveries are keyed by `(chain, seq, ordinal)`.
const PRUNE_DELIVERIES_SQL: &str = "DELETE FROM deliveries WHERE chain = ?1 AND seq <= ?2";

/// Batches a verify walk reads at a time (their rows with them): bounded memory on any ledger.
const VERIFY_CHUNK_BATCHES: i64 = 512;

/// The advisory lock held by the one writer of `chain` (advisory locks are database-wide: the
/// schema is in the name, so deployments in two schemas of one database do not exclude each other).
const CHAIN_LOCK_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtext('datapact ledger chain ' || current_schema() || '.' || $1))";

/// A node's writer: its own runtime and connection (the gateway's runtime is not the writer
/// thread's), and the advisory lock on its chain.
pub(super) struct PgSink {
    runtime: tokio::runtime::Runtime,
    options: PgConnectOptions,
    chain: String,
    /// `None` after an error, until the next batch connects again (and takes the lock again).
    conn: Option<PgConnection>,
}

impl PgSink {
    /// Connects, takes the chain's lock and checks the commit is durable; refuses a chain that
    /// another process writes.
    pub(super) fn open(options: PgConnectOptions, chain: &str) -> StoreResult<PgSink> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the ledger writer's runtime: {e}")))?;
        let mut sink = PgSink { runtime, options, chain: chain.to_owned(), conn: None };
        sink.connection()?;
        Ok(sink)
    }

    fn connection(&mut self) -> StoreResult<&mut PgConnection> {
        if self.conn.is_none() {
            let conn = self.runtime.block_on(connect_writer(&self.options, &self.chain))?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }
}

async fn connect_writer(options: &PgConnectOptions, chain: &str) -> StoreResult<PgConnection> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| unavailable(format!("the ledger cannot connect to PostgreSQL: {e}")))?;
    let locked: bool = sqlx::query_scalar(CHAIN_LOCK_SQL).bind(chain).fetch_one(&mut conn).await?;
    if !locked {
        return Err(StoreError::Conflict(format!(
            "another gateway writes ledger chain {chain:?} in this PostgreSQL store: give each gateway its own \
             --node name"
        )));
    }
    // A batch never waits forever: a node paused mid-transaction (its locks held) is cut off after
    // a minute, and a writer waiting on it gives up (its responses fail closed, 503) rather than
    // freeze every node's commits.
    sqlx::raw_sql(
        "SET statement_timeout = '30s'; SET lock_timeout = '10s'; SET idle_in_transaction_session_timeout = '60s'",
    )
    .execute(&mut conn)
    .await?;
    // The ledger promises that a committed row survives a crash: refuse to run without it.
    let synchronous: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut conn).await?;
    if synchronous == "off" {
        return Err(unavailable(
            "PostgreSQL's synchronous_commit is off: the ledger would acknowledge commits a crash can lose",
        ));
    }
    Ok(conn)
}

impl BatchSink for PgSink {
    fn head(&mut self, chain: &str) -> StoreResult<Option<Anchor>> {
        let result = match self.connection() {
            Ok(_) => {
                let conn = self.conn.as_mut().expect("connected");
                self.runtime.block_on(head(conn, chain))
            }
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn write(&mut self, sealed: &SealedBatch, rows: &[Row], jobs: &[Job]) -> Result<(), WriteError> {
        let result = match self.connection() {
            Ok(_) => {
                let conn = self.conn.as_mut().expect("connected");
                self.runtime.block_on(write_batch(conn, sealed, rows, jobs))
            }
            Err(error) => Err(WriteError::Failed(error)),
        };
        if matches!(result, Err(WriteError::Failed(_))) {
            // A connection that failed mid-transaction is not reused: the next batch connects
            // again, takes the chain's lock again, and the writer re-reads the head.
            self.conn = None;
        }
        result
    }
}

async fn head(conn: &mut PgConnection, chain: &str) -> StoreResult<Option<Anchor>> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM ledger_batches WHERE chain = $1 ORDER BY seq DESC LIMIT 1")
            .bind(chain)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|(seq, hash)| {
        let hash: [u8; 32] = hash.try_into().map_err(|_| unavailable(format!("batch {seq} has a malformed hash")))?;
        Ok(Anchor { seq: seq as u64, hash: Digest(hash) })
    })
    .transpose()
}

async fn write_batch(
    conn: &mut PgConnection,
    sealed: &SealedBatch,
    rows: &[Row],
    jobs: &[Job],
) -> Result<(), WriteError> {
    let mut tx = conn.begin().await?;
    // Shared reservations' limits are checked again here, against every node's commits: each
    // licensee's lock (in id order, before any row lock, so batches never deadlock) makes the
    // check and this batch's rows one step for every node.
    let bounded: BTreeSet<i64> =
        jobs.iter().filter(|job| job.bounds.is_some()).map(|job| job.daily.licensee_id).collect();
    for licensee_id in &bounded {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('datapact ledger bounds ' || current_schema(), $1))",
        )
        .bind(licensee_id)
        .execute(&mut *tx)
        .await?;
    }
    let refused = refused_by_bounds(&mut tx, jobs).await?;
    if !refused.is_empty() {
        tx.rollback().await?;
        return Err(WriteError::Refused(refused));
    }
    let header = &sealed.header;
    let (chain, seq) = (header.chain.as_str(), header.seq as i64);
    sqlx::query(
        "INSERT INTO ledger_batches (chain, seq, prev_hash, rows_hash, row_count, committed_at, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(chain)
    .bind(seq)
    .bind(&header.prev_hash.0[..])
    .bind(&header.rows_hash.0[..])
    .bind(i64::from(header.row_count))
    .bind(header.committed_at.millis())
    .bind(&sealed.hash.0[..])
    .execute(&mut *tx)
    .await?;
    let mut events = EventColumns::default();
    let mut deliveries = DeliveryColumns::default();
    for (ordinal, (row, digest)) in rows.iter().zip(&sealed.row_digests).enumerate() {
        match row {
            Row::Usage(event) => events.push(ordinal as i64, event, digest),
            Row::Delivery(delivery) => deliveries.push(ordinal as i64, delivery, digest),
        }
    }
    if !events.ordinal.is_empty() {
        sqlx::query(
            "INSERT INTO usage_events (chain, seq, ordinal, licensee_id, key_prefix, endpoint, purpose, request_id,
                 idempotency_key, at, delivered, counted, user_reads, bytes, charged, digest)
             SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                 $9::TEXT[], $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[],
                 $16::BYTEA[])",
        )
        .bind(chain)
        .bind(seq)
        .bind(&events.ordinal)
        .bind(&events.licensee_id)
        .bind(&events.key_prefix)
        .bind(&events.endpoint)
        .bind(&events.purpose)
        .bind(&events.request_id)
        .bind(&events.idempotency_key)
        .bind(&events.at)
        .bind(&events.delivered)
        .bind(&events.counted)
        .bind(&events.user_reads)
        .bind(&events.bytes)
        .bind(&events.charged)
        .bind(&events.digest)
        .execute(&mut *tx)
        .await?;
    }
    if !deliveries.ordinal.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (chain, seq, ordinal, licensee_id, request_id, post_id, revision, at, counted, digest)
             SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::BIGINT[], $7::BIGINT[],
                 $8::BIGINT[], $9::SMALLINT[], $10::BYTEA[])",
        )
        .bind(chain)
        .bind(seq)
        .bind(&deliveries.ordinal)
        .bind(&deliveries.licensee_id)
        .bind(&deliveries.request_id)
        .bind(&deliveries.post_id)
        .bind(&deliveries.revision)
        .bind(&deliveries.at)
        .bind(&deliveries.counted)
        .bind(&deliveries.digest)
        .execute(&mut *tx)
        .await?;
    }
    // Every node adds to the same daily lines: upserted in key order (`daily_lines` is sorted), so
    // two nodes' batches lock the lines they share in one order and never deadlock.
    let lines = daily_lines(jobs);
    let mut columns: [Vec<i64>; 9] = Default::default();
    let (mut endpoints, mut purposes) = (Vec::new(), Vec::new());
    for ((licensee_id, day, endpoint, purpose), totals) in &lines {
        columns[0].push(*licensee_id);
        columns[1].push(*day);
        endpoints.push(endpoint.as_str());
        purposes.push(purpose.as_str());
        for (column, value) in columns[2..].iter_mut().zip(totals) {
            column.push(*value);
        }
    }
    if !lines.is_empty() {
        sqlx::query(
            "INSERT INTO usage_daily AS d (licensee_id, day, endpoint, purpose, events, delivered, counted, overage,
                 user_reads, bytes, charged)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[],
                 $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[])
             ON CONFLICT (licensee_id, day, endpoint, purpose) DO UPDATE SET
                 events = d.events + excluded.events, delivered = d.delivered + excluded.delivered,
                 counted = d.counted + excluded.counted, overage = d.overage + excluded.overage,
                 user_reads = d.user_reads + excluded.user_reads, bytes = d.bytes + excluded.bytes,
                 charged = d.charged + excluded.charged",
        )
        .bind(&columns[0])
        .bind(&columns[1])
        .bind(&endpoints)
        .bind(&purposes)
        .bind(&columns[2])
        .bind(&columns[3])
        .bind(&columns[4])
        .bind(&columns[5])
        .bind(&columns[6])
        .bind(&columns[7])
        .bind(&columns[8])
        .execute(&mut *tx)
        .await?;
    }
    for (index, job) in jobs.iter().enumerate() {
        if let Some((licensee_id, request_id, response)) = &job.response {
            // A key answered within 24 hours is never answered again: if another gateway committed
            // it meanwhile (its hold in Redis expired, or Redis forgot it), this response is refused.
            let expired_before = job.daily.at.plus_millis(-datapact_ledger::idempotency::IDEMPOTENCY_WINDOW_MS);
            let written = sqlx::query(
                "INSERT INTO idempotent_responses AS r (licensee_id, key, fingerprint, request_id, first_used_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (licensee_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                     request_id = excluded.request_id, first_used_at = excluded.first_used_at, body = excluded.body
                 WHERE r.first_used_at < $7",
            )
            .bind(licensee_id)
            .bind(&response.key)
            .bind(&response.fingerprint.0.0[..])
            .bind(request_id)
            .bind(job.daily.at.millis())
            .bind(&response.body)
            .bind(expired_before.millis())
            .execute(&mut *tx)
            .await?;
            if written.rows_affected() == 0 {
                tx.rollback().await?;
                let why = format!(
                    "Idempotency-Key {:?} was answered by another request meanwhile; this response was not served",
                    response.key
                );
                return Err(WriteError::Refused(vec![(index, why)]));
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The jobs of a batch that would take a licensee past the limits their shared reservations were
/// decided against — its month's hard cap, or its credits — counting every node's commits and the
/// batch's jobs in order. Only a shared limiter that lost count (Redis forgot reservations in
/// flight) can make one. Run under the licensees' locks, before the batch writes anything.
async fn refused_by_bounds(tx: &mut PgConnection, jobs: &[Job]) -> Result<Vec<(usize, String)>, WriteError> {
    let mut counted: BTreeMap<(i64, MonthKey), u64> = BTreeMap::new();
    let mut charges: BTreeMap<i64, u64> = BTreeMap::new();
    let mut refused = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        let (Some(bounds), daily) = (job.bounds, &job.daily) else { continue };
        let licensee_id = daily.licensee_id;
        let month = MonthKey::of(daily.at);
        if let Some(cap) = bounds.hard_cap.filter(|_| daily.counted > 0) {
            let total = match counted.entry((licensee_id, month)) {
                btree_map::Entry::Occupied(entry) => entry.into_mut(),
                btree_map::Entry::Vacant(entry) => entry.insert(month_counted(&mut *tx, licensee_id, month).await?),
            };
            if *total + u64::from(daily.counted) > cap {
                let why = format!(
                    "the ledger refused a response that would count licensee {licensee_id} past its hard cap of {cap} \
                     in {:04}-{:02} (the shared limiter lost count); it was not served",
                    month.year(),
                    month.month()
                );
                refused.push((index, why));
                continue;
            }
            *total += u64::from(daily.counted);
        }
        if let Some(credited) = bounds.credited_micros.filter(|_| daily.charged > 0) {
            let total = match charges.entry(licensee_id) {
                btree_map::Entry::Occupied(entry) => entry.into_mut(),
                btree_map::Entry::Vacant(entry) => entry.insert(charged(&mut *tx, licensee_id).await?),
            };
            if i128::from(*total + daily.charged) > i128::from(credited) {
                let why = format!(
                    "the ledger refused a response that would charge licensee {licensee_id} past its credits (the \
                     shared limiter lost count); it was not served"
                );
                refused.push((index, why));
                continue;
            }
            *total += daily.charged;
        }
    }
    Ok(refused)
}

#[derive(Default)]
struct EventColumns {
    ordinal: Vec<i64>,
    licensee_id: Vec<i64>,
    key_prefix: Vec<String>,
    endpoint: Vec<&'static str>,
    purpose: Vec<&'static str>,
    request_id: Vec<String>,
    idempotency_key: Vec<Option<String>>,
    at: Vec<i64>,
    delivered: Vec<i64>,
    counted: Vec<i64>,
    user_reads: Vec<i64>,
    bytes: Vec<i64>,
    charged: Vec<i64>,
    digest: Vec<Vec<u8>>,
}

impl EventColumns {
    fn push(&mut self, ordinal: i64, event: &UsageEvent, digest: &Digest) {
        self.ordinal.push(ordinal);
        self.licensee_id.push(event.licensee_id);
        self.key_prefix.push(event.key_prefix.0.clone());
        self.endpoint.push(event.endpoint.as_str());
        self.purpose.push(event.purpose.as_str());
        self.request_id.push(event.request_id.clone());
        self.idempotency_key.push(event.idempotency_key.clone());
        self.at.push(event.at.millis());
        self.delivered.push(i64::from(event.delivered));
        self.counted.push(i64::from(event.counted));
        self.user_reads.push(i64::from(event.user_reads));
        self.bytes.push(event.bytes as i64);
        self.charged.push(event.charged as i64);
        self.digest.push(digest.0.to_vec());
    }
}

#[derive(Default)]
struct DeliveryColumns {
    ordinal: Vec<i64>,
    licensee_id: Vec<i64>,
    request_id: Vec<String>,
    post_id: Vec<i64>,
    revision: Vec<i64>,
    at: Vec<i64>,
    counted: Vec<i16>,
    digest: Vec<Vec<u8>>,
}

impl DeliveryColumns {
    fn push(&mut self, ordinal: i64, delivery: &Delivery, digest: &Digest) {
        self.ordinal.push(ordinal);
        self.licensee_id.push(delivery.licensee_id);
        self.request_id.push(delivery.request_id.clone());
        self.post_id.push(delivery.post_id);
        self.revision.push(i64::from(delivery.revision));
        self.at.push(delivery.at.millis());
        self.counted.push(i16::from(delivery.counted));
        self.digest.push(digest.0.to_vec());
    }
}

// Reads: the same statements as SQLite's (`read.rs`), on the store's pool.

/// On the pool, or in a batch's transaction (its bounds check).
pub(super) async fn month_counted(
    executor: impl sqlx::PgExecutor<'_>,
    licensee_id: i64,
    month: MonthKey,
) -> StoreResult<u64> {
    let (from, to) = month_range(month);
    let total: i64 =
        sqlx::query_scalar(pg!(MONTH_COUNTED_SQL)).bind(licensee_id).bind(from).bind(to).fetch_one(executor).await?;
    Ok(total as u64)
}

/// On the pool, or in a batch's transaction (its bounds check).
pub(super) async fn charged(executor: impl sqlx::PgExecutor<'_>, licensee_id: i64) -> StoreResult<u64> {
    let total: i64 = sqlx::query_scalar(pg!(CHARGED_SQL)).bind(licensee_id).fetch_one(executor).await?;
    Ok(total as u64)
}

pub(super) async fn counted_on(pool: &PgPool, licensee_id: i64, day: DayKey) -> StoreResult<HashSet<i64>> {
    let from = day.start().millis();
    let ids: Vec<i64> = sqlx::query_scalar(pg!(COUNTED_ON_SQL))
        .bind(licensee_id)
        .bind(from)
        .bind(from + 86_400_000)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().collect())
}

pub(super) async fn stored_response(
    pool: &PgPool,
    licensee_id: i64,
    key: &str,
) -> StoreResult<Option<(RequestFingerprint, StoredResponse)>> {
    let row: Option<(Vec<u8>, String, i64, Vec<u8>)> =
        sqlx::query_as(pg!(STORED_RESPONSE_SQL)).bind(licensee_id).bind(key).fetch_optional(pool).await?;
    let Some((fingerprint, request_id, first_used_at, body)) = row else { return Ok(None) };
    let fingerprint: [u8; 32] =
        fingerprint.try_into().map_err(|_| unavailable("a kept response has a malformed fingerprint"))?;
    Ok(Some((
        RequestFingerprint(Digest(fingerprint)),
        StoredResponse { request_id, first_used_at: Timestamp(first_used_at), body },
    )))
}

pub(super) async fn daily_counts(
    pool: &PgPool,
    licensee_id: i64,
    first: DayKey,
    last: DayKey,
) -> StoreResult<Vec<DailyCount>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(pg!(DAILY_COUNTS_SQL))
        .bind(licensee_id)
        .bind(first.start().millis())
        .bind(last.start().millis())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(day, counted, charged)| DailyCount {
            day: DayKey::of(Timestamp(day)),
            counted: counted as u64,
            charged: charged as u64,
        })
        .collect())
}

pub(super) async fn batch_ranges(
    pool: &PgPool,
    licensee_id: i64,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<BatchRange>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(pg!(BATCH_RANGES_SQL))
        .bind(licensee_id)
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(chain, first, last, events)| BatchRange {
            chain,
            first_seq: first as u64,
            last_seq: last as u64,
            events: events as u64,
        })
        .collect())
}

pub(super) async fn usage(
    pool: &PgPool,
    licensee_id: Option<i64>,
    month: MonthKey,
    by: UsageBy,
) -> StoreResult<Vec<UsageLine>> {
    let (from, to) = month_range(month);
    let group = usage_group(by);
    let sql = usage_sql(group).replace('?', "$");
    let rows = sqlx::query(&sql).bind(from).bind(to).bind(licensee_id).fetch_all(pool).await?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let group = if group == "day" {
            DayKey::of(Timestamp(row.try_get::<i64, _>(1)?)).date().to_string()
        } else {
            row.try_get::<String, _>(1)?
        };
        let count = |index: usize| row.try_get::<i64, _>(index).map(|value| value as u64);
        lines.push(UsageLine {
            licensee_id: row.try_get(0)?,
            group,
            responses: count(2)?,
            delivered: count(3)?,
            counted: count(4)?,
            overage: count(5)?,
            user_reads: count(6)?,
            bytes: count(7)?,
        });
    }
    Ok(usage_lines(lines, month, by))
}

pub(super) async fn deliveries(
    pool: &PgPool,
    licensee_id: i64,
    month: MonthKey,
    mut visit: impl FnMut(DeliveryRecord) -> std::io::Result<()>,
) -> StoreResult<u64> {
    let (from, to) = month_range(month);
    let mut rows = sqlx::query(pg!(DELIVERIES_SQL)).bind(licensee_id).bind(from).bind(to).fetch(pool);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let record = DeliveryRecord {
            at: Timestamp(row.try_get(0)?),
            post_id: row.try_get::<i64, _>(1)?.to_string(),
            revision: u32::try_from(row.try_get::<i64, _>(2)?)
                .map_err(|_| unavailable("a revision is out of range"))?,
            request_id: row.try_get(3)?,
            counted: row.try_get::<i16, _>(4)? != 0,
        };
        visit(record).map_err(|e| unavailable(format!("cannot write the export: {e}")))?;
        count += 1;
    }
    Ok(count)
}

pub(super) async fn delivered_among(pool: &PgPool, licensee_id: i64, post_ids: &HashSet<i64>) -> StoreResult<u64> {
    if post_ids.is_empty() {
        return Ok(0);
    }
    let mut rows = sqlx::query_scalar::<_, i64>(pg!(DELIVERED_POSTS_SQL)).bind(licensee_id).fetch(pool);
    let mut count = 0;
    while let Some(post_id) = rows.try_next().await? {
        count += u64::from(post_ids.contains(&post_id));
    }
    Ok(count)
}

pub(super) async fn canaries(pool: &PgPool) -> StoreResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(pg!(CANARIES_SQL)).fetch_all(pool).await?)
}

pub(super) async fn heads(pool: &PgPool) -> StoreResult<Vec<ChainHead>> {
    chain_heads(sqlx::query_as(HEADS_SQL).fetch_all(pool).await?)
}

pub(super) async fn received(pool: &PgPool, licensee_id: i64) -> StoreResult<HashMap<i64, Received>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(pg!(RECEIVED_SQL)).bind(licensee_id).fetch_all(pool).await?;
    rows.into_iter().map(|(post_id, first_at, revision)| Ok((post_id, received_post(first_at, revision)?))).collect()
}

/// Whether `request_id` committed on `chain` (to settle a limiter reservation after a crash).
pub(super) async fn committed(pool: &PgPool, chain: &str, request_id: &str) -> StoreResult<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM usage_events WHERE chain = $1 AND request_id = $2)")
        .bind(chain)
        .bind(request_id)
        .fetch_one(pool)
        .await?)
}

/// Walks every chain (and every chain `expect` names, so a chain deleted whole is caught), then
/// the daily totals.
pub(super) async fn verify(pool: &PgPool, expect: &[ChainAnchor]) -> StoreResult<Result<VerifyReport, VerifyFailure>> {
    // One snapshot for the whole walk: batches committed (or pruned) by running gateways meanwhile
    // are not half-seen (they would look like strays or missing rows).
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let outcome = verify_in(&mut tx, expect).await;
    tx.rollback().await?;
    outcome
}

async fn verify_in(tx: &mut PgConnection, expect: &[ChainAnchor]) -> StoreResult<Result<VerifyReport, VerifyFailure>> {
    let mut chains: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT chain FROM ledger_batches ORDER BY chain").fetch_all(&mut *tx).await?;
    let named: Vec<&str> = expect.iter().filter_map(|anchor| anchor.chain.as_deref()).collect();
    if expect.iter().any(|anchor| anchor.chain.is_none()) && chains.len() > 1 {
        return Err(StoreError::Invalid(format!(
            "this ledger has {} chains (one per gateway node): name the chain of each head, CHAIN@SEQ:HASH",
            chains.len()
        )));
    }
    for name in named {
        if !chains.iter().any(|chain| chain == name) {
            chains.push(name.to_owned());
        }
    }
    // A head recorded without a chain's name, and no chain left at all: the whole ledger was
    // deleted. Walked as an empty chain, the head is not reached and verification fails.
    if chains.is_empty() && expect.iter().any(|anchor| anchor.chain.is_none()) {
        chains.push(String::new());
    }
    // A row filed under a chain that has no batch at all belongs to no history.
    for table in ["usage_events", "deliveries"] {
        let stray: Option<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT seq, ordinal FROM {table} t WHERE NOT EXISTS
                 (SELECT 1 FROM ledger_batches b WHERE b.chain = t.chain) LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((seq, ordinal)) = stray {
            return Ok(Err(VerifyFailure::Stray { table, seq: seq as u64, ordinal: ordinal as u32 }));
        }
    }
    let mut summaries = Vec::with_capacity(chains.len());
    for chain in &chains {
        let mut walk = ChainWalk::new(chain, &anchors_for(expect, chain));
        let mut after: i64 = i64::MIN;
        loop {
            let headers = sqlx::query(
                "SELECT seq, prev_hash, rows_hash, row_count, committed_at, hash, pruned FROM ledger_batches
                 WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(chain)
            .bind(after)
            .bind(VERIFY_CHUNK_BATCHES)
            .fetch_all(&mut *tx)
            .await?;
            // The rows of this chunk's range; after the last chunk, every row left (strays).
            let until = match headers.last() {
                Some(last) => last.try_get::<i64, _>(0)?,
                None => i64::MAX,
            };
            let events = chunk_rows(&mut *tx, EVENTS_CHUNK_SQL, chain, after, until, event_row).await?;
            let deliveries = chunk_rows(&mut *tx, DELIVERIES_CHUNK_SQL, chain, after, until, delivery_row).await?;
            let done = headers.is_empty();
            let headers = headers.iter().map(|row| {
                stored_header(
                    chain,
                    row.try_get::<i64, _>(0)? as u64,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    i64::from(row.try_get::<i16, _>(6)?),
                )
            });
            if let Err(failure) =
                walk.push_chunk(headers, events.into_iter().map(Ok), deliveries.into_iter().map(Ok))?
            {
                return Ok(Err(failure));
            }
            if done {
                break;
            }
            after = until;
        }
        match walk.finish() {
            Ok(summary) => summaries.push(summary),
            Err(failure) => return Ok(Err(failure)),
        }
    }
    let horizon: i64 = sqlx::query_scalar(PRUNE_HORIZON_SQL).fetch_one(&mut *tx).await?;
    let from = daily_check_from(horizon);
    let totals: Vec<(i64, i64, i64, i64)> =
        sqlx::query_as(pg!(DAILY_TOTALS_SQL)).bind(from).fetch_all(&mut *tx).await?;
    let daily_checked = match check_day_totals(totals) {
        Ok(checked) => checked,
        Err(failure) => return Ok(Err(failure)),
    };
    let mut lines = sqlx::query(pg!(DAILY_LINES_SQL)).bind(from).fetch(&mut *tx);
    while let Some(row) = lines.try_next().await? {
        let mut line = DailyLine {
            licensee_id: row.try_get(0)?,
            day: row.try_get(1)?,
            endpoint: row.try_get(2)?,
            purpose: row.try_get(3)?,
            kept: [0; 6],
            recomputed: [0; 6],
        };
        for index in 0..6 {
            line.kept[index] = row.try_get(4 + index)?;
            line.recomputed[index] = row.try_get(10 + index)?;
        }
        if let Err(failure) = check_daily_line(&line) {
            return Ok(Err(failure));
        }
    }
    Ok(Ok(VerifyReport { chains: summaries, daily_checked }))
}

const EVENTS_CHUNK_SQL: &str = "SELECT seq, ordinal, licensee_id, key_prefix, endpoint, purpose, request_id,
        idempotency_key, at, delivered, counted, user_reads, bytes, digest, charged
     FROM usage_events WHERE chain = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, ordinal";
const DELIVERIES_CHUNK_SQL: &str =
    "SELECT seq, ordinal, licensee_id, request_id, post_id, revision, at, counted, digest
     FROM deliveries WHERE chain = $1 AND seq > $2 AND seq <= $3 ORDER BY seq, ordinal";

async fn chunk_rows(
    tx: &mut PgConnection,
    sql: &'static str,
    chain: &str,
    after: i64,
    until: i64,
    decode: fn(&PgRow) -> StoreResult<Positioned>,
) -> StoreResult<Vec<Positioned>> {
    let rows = sqlx::query(sql).bind(chain).bind(after).bind(until).fetch_all(&mut *tx).await?;
    rows.iter().map(decode).collect()
}

/// A stored usage event: its position, and the event or why it does not read back (an edit).
fn event_row(row: &PgRow) -> StoreResult<Positioned> {
    let seq = row.try_get::<i64, _>(0)? as u64;
    let ordinal = row.try_get::<i64, _>(1)? as u32;
    let stored = (|| {
        let text = |index: usize| row.try_get::<String, _>(index).map_err(|e| e.to_string());
        let number = |index: usize| row.try_get::<i64, _>(index).map_err(|e| e.to_string());
        let count = |index: usize| -> Result<u32, String> {
            let value = number(index)?;
            u32::try_from(value).map_err(|_| format!("count {value} out of range"))
        };
        let endpoint = text(4)?;
        let purpose = text(5)?;
        let bytes = number(12)?;
        let charged = number(14)?;
        let event = UsageEvent {
            licensee_id: number(2)?,
            key_prefix: KeyPrefix(text(3)?),
            endpoint: Endpoint::parse(&endpoint).ok_or_else(|| format!("unknown endpoint {endpoint:?}"))?,
            purpose: Purpose::parse(&purpose).ok_or_else(|| format!("unknown purpose {purpose:?}"))?,
            request_id: text(6)?,
            idempotency_key: row.try_get(7).map_err(|e| e.to_string())?,
            at: Timestamp(number(8)?),
            delivered: count(9)?,
            counted: count(10)?,
            user_reads: count(11)?,
            bytes: u64::try_from(bytes).map_err(|_| format!("byte count {bytes} out of range"))?,
            charged: u64::try_from(charged).map_err(|_| format!("charge {charged} out of range"))?,
        };
        let digest = row_digest(row, 13)?;
        Ok(StoredRow { row: Row::Usage(event), digest })
    })();
    Ok((seq, ordinal, stored))
}

fn delivery_row(row: &PgRow) -> StoreResult<Positioned> {
    let seq = row.try_get::<i64, _>(0)? as u64;
    let ordinal = row.try_get::<i64, _>(1)? as u32;
    let stored = (|| {
        let number = |index: usize| row.try_get::<i64, _>(index).map_err(|e| e.to_string());
        let revision = number(5)?;
        let delivery = Delivery {
            licensee_id: number(2)?,
            request_id: row.try_get(3).map_err(|e| e.to_string())?,
            post_id: number(4)?,
            revision: u32::try_from(revision).map_err(|_| format!("revision {revision} out of range"))?,
            at: Timestamp(number(6)?),
            counted: match row.try_get::<i16, _>(7).map_err(|e| e.to_string())? {
                0 => false,
                1 => true,
                other => return Err(format!("counted is {other}, not 0 or 1")),
            },
        };
        Ok(StoredRow { row: Row::Delivery(delivery), digest: row_digest(row, 8)? })
    })();
    Ok((seq, ordinal, stored))
}

fn row_digest(row: &PgRow, index: usize) -> Result<Digest, String> {
    let bytes: Vec<u8> = row.try_get(index).map_err(|e| e.to_string())?;
    Ok(Digest(bytes.try_into().map_err(|_| "malformed digest".to_owned())?))
}

/// Prunes every chain's batches committed before `before` (whole batches, headers kept) and the
/// idempotent responses older than 24 hours, in one transaction.
pub(super) async fn prune(pool: &PgPool, before: Timestamp, now: Timestamp) -> StoreResult<PruneSummary> {
    let mut tx = pool.begin().await?;
    let chains: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT chain FROM ledger_batches ORDER BY chain").fetch_all(&mut *tx).await?;
    let mut summary = PruneSummary::default();
    for chain in &chains {
        let last: Option<i64> =
            sqlx::query_scalar(pg!(PRUNE_LAST_SQL)).bind(chain).bind(before.millis()).fetch_one(&mut *tx).await?;
        let Some(last) = last else { continue };
        summary.events +=
            sqlx::query(pg!(PRUNE_EVENTS_SQL)).bind(chain).bind(last).execute(&mut *tx).await?.rows_affected();
        summary.deliveries +=
            sqlx::query(pg!(PRUNE_DELIVERIES_SQL)).bind(chain).bind(last).execute(&mut *tx).await?.rows_affected();
        summary.batches +=
            sqlx::query(pg!(PRUNE_BATCHES_SQL)).bind(chain).bind(last).execute(&mut *tx).await?.rows_affected();
    }
    let expired = now.plus_millis(-datapact_ledger::idempotency::IDEMPOTENCY_WINDOW_MS);
    summary.responses =
        sqlx::query(pg!(PRUNE_RESPONSES_SQL)).bind(expired.millis()).execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(summary)
}

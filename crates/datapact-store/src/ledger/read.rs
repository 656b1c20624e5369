//! Reading the ledger back: counts for the meter, usage views, delivery exports, verification
//! and pruning.

use std::collections::{BTreeMap, HashSet};
use std::iter::Peekable;

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, Timestamp};
use datapact_ledger::{
    Anchor, BatchHeader, ChainBreak, DailyCount, DayKey, Delivery, Digest, MonthKey, RequestFingerprint, Row,
    StoredBatch, StoredRow, UsageEvent, Verifier, VerifySummary,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoredResponse, unavailable};
use crate::StoreResult;

/// The first and last instants (exclusive) of a month, in ms.
pub fn month_range(month: MonthKey) -> (i64, i64) {
    (month.start().millis(), month.next().start().millis())
}

pub(super) fn month_counted(conn: &Connection, licensee_id: i64, month: MonthKey) -> StoreResult<u64> {
    let (from, to) = month_range(month);
    let total: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(counted), 0) FROM usage_daily WHERE licensee_id = ?1 AND day >= ?2 AND day < ?3",
        )?
        .query_row(params![licensee_id, from, to], |row| row.get(0))?;
    Ok(total as u64)
}

/// Micro-units ever charged to a licensee's prepaid credit (kept through pruning: `usage_daily`).
pub(super) fn charged(conn: &Connection, licensee_id: i64) -> StoreResult<u64> {
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(charged), 0) FROM usage_daily WHERE licensee_id = ?1")?
        .query_row(params![licensee_id], |row| row.get(0))?;
    Ok(total as u64)
}

/// The posts counted for a licensee on `day` (for daily dedup).
pub(super) fn counted_on(conn: &Connection, licensee_id: i64, day: DayKey) -> StoreResult<HashSet<i64>> {
    let from = day.start().millis();
    let to = from + 86_400_000;
    let mut statement = conn.prepare_cached(
        "SELECT post_id FROM deliveries WHERE licensee_id = ?1 AND at >= ?2 AND at < ?3 AND counted = 1",
    )?;
    let ids = statement.query_map(params![licensee_id, from, to], |row| row.get::<_, i64>(0))?;
    Ok(ids.collect::<Result<HashSet<i64>, _>>()?)
}

/// A kept response and the fingerprint of the request it answered.
pub(super) fn stored_response(
    conn: &Connection,
    licensee_id: i64,
    key: &str,
) -> StoreResult<Option<(RequestFingerprint, StoredResponse)>> {
    let row = conn
        .prepare_cached(
            "SELECT fingerprint, request_id, first_used_at, body FROM idempotent_responses
             WHERE licensee_id = ?1 AND key = ?2",
        )?
        .query_row(params![licensee_id, key], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, Vec<u8>>(3)?))
        })
        .optional()?;
    let Some((fingerprint, request_id, first_used_at, body)) = row else { return Ok(None) };
    let fingerprint = digest(fingerprint).ok_or_else(|| unavailable("a kept response has a malformed fingerprint"))?;
    Ok(Some((
        RequestFingerprint(fingerprint),
        StoredResponse { request_id, first_used_at: Timestamp(first_used_at), body },
    )))
}

fn digest(bytes: Vec<u8>) -> Option<Digest> {
    Some(Digest(bytes.try_into().ok()?))
}

pub(super) fn daily_counts(
    conn: &Connection,
    licensee_id: i64,
    first: DayKey,
    last: DayKey,
) -> StoreResult<Vec<DailyCount>> {
    let mut statement = conn.prepare_cached(
        "SELECT day, SUM(counted), SUM(charged) FROM usage_daily WHERE licensee_id = ?1 AND day >= ?2 AND day <= ?3
         GROUP BY day ORDER BY day",
    )?;
    let rows = statement.query_map(params![licensee_id, first.start().millis(), last.start().millis()], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })?;
    let mut counts = Vec::new();
    for row in rows {
        let (day, counted, charged) = row?;
        counts.push(DailyCount { day: DayKey::of(Timestamp(day)), counted: counted as u64, charged: charged as u64 });
    }
    Ok(counts)
}

/// How `datapact usage` groups a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageBy {
    Month,
    Day,
    Endpoint,
    Purpose,
}

impl UsageBy {
    pub fn parse(value: &str) -> Option<UsageBy> {
        Some(match value {
            "month" => UsageBy::Month,
            "day" => UsageBy::Day,
            "endpoint" => UsageBy::Endpoint,
            "purpose" => UsageBy::Purpose,
            _ => return None,
        })
    }
}

/// One line of a usage report: a licensee's totals for a group (the month, a day, an endpoint or a purpose).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    pub licensee_id: i64,
    /// `YYYY-MM` for the month, `YYYY-MM-DD` for a day, else the endpoint or purpose name.
    pub group: String,
    /// Responses metered.
    pub responses: u64,
    /// Post records delivered.
    pub delivered: u64,
    /// Of those, records counted against the cap.
    pub counted: u64,
    /// Counted records past a soft cap.
    pub overage: u64,
    pub user_reads: u64,
    pub bytes: u64,
}

pub(super) fn usage(
    conn: &Connection,
    licensee_id: Option<i64>,
    month: MonthKey,
    by: UsageBy,
) -> StoreResult<Vec<UsageLine>> {
    let (from, to) = month_range(month);
    let group = match by {
        UsageBy::Month | UsageBy::Day => "day",
        UsageBy::Endpoint => "endpoint",
        UsageBy::Purpose => "purpose",
    };
    let sql = format!(
        "SELECT licensee_id, {group}, SUM(events), SUM(delivered), SUM(counted), SUM(overage), SUM(user_reads),
                SUM(bytes)
         FROM usage_daily WHERE day >= ?1 AND day < ?2 AND (?3 IS NULL OR licensee_id = ?3)
         GROUP BY licensee_id, {group} ORDER BY licensee_id, {group}"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![from, to, licensee_id], |row| {
        let group = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Integer(day) => DayKey::of(Timestamp(day)).date().to_string(),
            other => other.as_str().map(str::to_owned).unwrap_or_default(),
        };
        Ok(UsageLine {
            licensee_id: row.get(0)?,
            group,
            responses: row.get::<_, i64>(2)? as u64,
            delivered: row.get::<_, i64>(3)? as u64,
            counted: row.get::<_, i64>(4)? as u64,
            overage: row.get::<_, i64>(5)? as u64,
            user_reads: row.get::<_, i64>(6)? as u64,
            bytes: row.get::<_, i64>(7)? as u64,
        })
    })?;
    let lines = rows.collect::<Result<Vec<_>, _>>()?;
    if by != UsageBy::Month {
        return Ok(lines);
    }
    let mut months: BTreeMap<i64, UsageLine> = BTreeMap::new();
    for line in lines {
        let total = months.entry(line.licensee_id).or_insert_with(|| UsageLine {
            licensee_id: line.licensee_id,
            group: format!("{:04}-{:02}", month.year(), month.month()),
            responses: 0,
            delivered: 0,
            counted: 0,
            overage: 0,
            user_reads: 0,
            bytes: 0,
        });
        total.responses += line.responses;
        total.delivered += line.delivered;
        total.counted += line.counted;
        total.overage += line.overage;
        total.user_reads += line.user_reads;
        total.bytes += line.bytes;
    }
    Ok(months.into_values().collect())
}

/// One delivery, as `datapact deliveries` exports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    pub at: Timestamp,
    pub post_id: String,
    pub revision: u32,
    pub request_id: String,
    pub counted: bool,
}

pub(super) fn deliveries(
    conn: &Connection,
    licensee_id: i64,
    month: MonthKey,
    mut visit: impl FnMut(DeliveryRecord) -> std::io::Result<()>,
) -> StoreResult<u64> {
    let (from, to) = month_range(month);
    let mut statement = conn.prepare(
        "SELECT at, post_id, revision, request_id, counted FROM deliveries
         WHERE licensee_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, seq, ordinal",
    )?;
    let mut rows = statement.query(params![licensee_id, from, to])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        let record = DeliveryRecord {
            at: Timestamp(row.get(0)?),
            post_id: row.get::<_, i64>(1)?.to_string(),
            revision: row.get(2)?,
            request_id: row.get(3)?,
            counted: row.get(4)?,
        };
        visit(record).map_err(|e| unavailable(format!("cannot write the export: {e}")))?;
        count += 1;
    }
    Ok(count)
}

/// How many of `post_ids` the ledger says were ever delivered to a licensee (each post counted
/// once however often it was delivered). Streams the licensee's deliveries through its index
/// rather than binding the ids, so a leak of a million posts costs one pass, not a query each.
pub(super) fn delivered_among(conn: &Connection, licensee_id: i64, post_ids: &HashSet<i64>) -> StoreResult<u64> {
    if post_ids.is_empty() {
        return Ok(0);
    }
    let mut statement = conn.prepare_cached("SELECT DISTINCT post_id FROM deliveries WHERE licensee_id = ?1")?;
    let mut rows = statement.query(params![licensee_id])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        if post_ids.contains(&row.get::<_, i64>(0)?) {
            count += 1;
        }
    }
    Ok(count)
}

/// Every canary delivery held, `(licensee id, post id)`, each pair once (through the partial index).
pub(super) fn canaries(conn: &Connection) -> StoreResult<Vec<(i64, i64)>> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT licensee_id, post_id FROM deliveries WHERE revision = 0 ORDER BY licensee_id, post_id",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What `ledger verify` found when the chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub summary: VerifySummary,
    /// `(licensee, day)` daily totals checked against the sum of their events.
    pub daily_checked: u64,
}

/// Why `ledger verify` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Chain(ChainBreak),
    #[error("row {index} of batch {seq} cannot be read back ({reason}): it was edited directly in the database")]
    Unreadable { seq: u64, index: u32, reason: String },
    #[error(
        "a {table} row is stored at batch {seq}, position {ordinal}, where its batch has no such row: it was inserted or moved"
    )]
    Stray { table: &'static str, seq: u64, ordinal: u32 },
    #[error(
        "the daily totals of licensee {licensee_id} on {day} say {kept} counted records, but its events sum to \
         {recomputed}: the totals were edited"
    )]
    DailyTotals { licensee_id: i64, day: String, kept: u64, recomputed: u64 },
    #[error(
        "the daily {column} of licensee {licensee_id} on {day} for {endpoint}/{purpose} say {kept}, but its events sum \
         to {recomputed}: the totals were edited"
    )]
    DailyBreakdown {
        licensee_id: i64,
        day: String,
        endpoint: String,
        purpose: String,
        column: &'static str,
        kept: u64,
        recomputed: u64,
    },
}

type Positioned = (u64, u32, StoredResultRow);
type StoredResultRow = Result<StoredRow, String>;

pub(super) fn verify(
    conn: &Connection,
    chain: &str,
    expect: Option<Anchor>,
) -> StoreResult<Result<VerifyReport, VerifyFailure>> {
    let mut batches = conn.prepare(
        "SELECT seq, prev_hash, rows_hash, row_count, committed_at, hash, pruned FROM ledger_batches
         WHERE chain = ?1 ORDER BY seq",
    )?;
    let mut events = conn.prepare(
        "SELECT seq, ordinal, licensee_id, key_prefix, endpoint, purpose, request_id, idempotency_key, at, delivered,
                counted, user_reads, bytes, digest, charged
         FROM usage_events WHERE chain = ?1 ORDER BY seq, ordinal",
    )?;
    let mut deliveries = conn.prepare(
        "SELECT seq, ordinal, licensee_id, request_id, post_id, revision, at, counted, digest
         FROM deliveries WHERE chain = ?1 ORDER BY seq, ordinal",
    )?;
    let mut event_rows = events.query_map(params![chain], event_row)?.peekable();
    let mut delivery_rows = deliveries.query_map(params![chain], delivery_row)?.peekable();
    let mut verifier = Verifier::new(chain);
    if let Some(anchor) = expect {
        verifier = verifier.expect(anchor);
    }
    // The store writes one chain: a row filed under another name is no history of it, but the
    // meter's "counted today" and the delivery exports would read it.
    for table in ["usage_events", "deliveries"] {
        let foreign = conn
            .query_row(&format!("SELECT seq, ordinal FROM {table} WHERE chain <> ?1 LIMIT 1"), params![chain], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u32))
            })
            .optional()?;
        if let Some((seq, ordinal)) = foreign {
            return Ok(Err(VerifyFailure::Stray { table, seq, ordinal }));
        }
    }
    // Pruning removes whole batches oldest first, so the pruned batches are a prefix of the chain.
    let mut kept_seen = false;
    let mut headers = batches.query(params![chain])?;
    while let Some(row) = headers.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let malformed = || unavailable(format!("batch {seq} has a malformed hash column"));
        let header = BatchHeader {
            chain: chain.to_owned(),
            seq,
            prev_hash: digest(row.get(1)?).ok_or_else(malformed)?,
            rows_hash: digest(row.get(2)?).ok_or_else(malformed)?,
            row_count: row.get(3)?,
            committed_at: Timestamp(row.get(4)?),
        };
        let hash = digest(row.get(5)?).ok_or_else(malformed)?;
        let pruned: bool = row.get(6)?;
        // Rows stored under an earlier position than this batch belong to no batch.
        for (table, stream) in
            [("usage_events", &mut event_rows as &mut dyn PeekRows), ("deliveries", &mut delivery_rows)]
        {
            if let Some((stray_seq, ordinal)) = stream.stray_before(seq)? {
                return Ok(Err(VerifyFailure::Stray { table, seq: stray_seq, ordinal }));
            }
        }
        if pruned && kept_seen {
            let row_count = header.row_count;
            return Ok(Err(VerifyFailure::Chain(ChainBreak::RowsMissing { seq, expected: row_count, found: 0 })));
        }
        kept_seen |= !pruned;
        let rows = if pruned {
            None
        } else {
            let mut rows = Vec::new();
            loop {
                let next_event = event_rows.peek_position(seq)?;
                let next_delivery = delivery_rows.peek_position(seq)?;
                let take_event = match (next_event, next_delivery) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(a), Some(b)) => a <= b,
                };
                let (_, ordinal, stored) =
                    if take_event { event_rows.next_row()? } else { delivery_rows.next_row()? };
                // A gap or repeat in the ordinals needs no check of its own: the digests chain
                // the rows in order, so the first row out of place fails to match.
                let _ = ordinal;
                let index = rows.len() as u32;
                match stored {
                    Ok(stored) => rows.push(stored),
                    Err(reason) => return Ok(Err(VerifyFailure::Unreadable { seq, index, reason })),
                }
            }
            Some(rows)
        };
        let batch = StoredBatch { header, hash, rows };
        if let Err(broken) = verifier.push(&batch) {
            return Ok(Err(VerifyFailure::Chain(broken)));
        }
    }
    for (table, stream) in [("usage_events", &mut event_rows as &mut dyn PeekRows), ("deliveries", &mut delivery_rows)]
    {
        if let Some((seq, ordinal)) = stream.stray_before(u64::MAX)? {
            return Ok(Err(VerifyFailure::Stray { table, seq, ordinal }));
        }
    }
    let summary = match verifier.finish() {
        Ok(summary) => summary,
        Err(broken) => return Ok(Err(VerifyFailure::Chain(broken))),
    };
    match check_daily_totals(conn)? {
        Ok(daily_checked) => Ok(Ok(VerifyReport { summary, daily_checked })),
        Err(failure) => Ok(Err(failure)),
    }
}

/// The kept daily totals against the sum of the events still held, for every day after the
/// newest pruned event (earlier days may have lost events to pruning).
fn check_daily_totals(conn: &Connection) -> StoreResult<Result<u64, VerifyFailure>> {
    let horizon: i64 =
        conn.query_row("SELECT COALESCE(MAX(committed_at), 0) FROM ledger_batches WHERE pruned = 1", [], |row| {
            row.get(0)
        })?;
    let horizon_day = DayKey::of(Timestamp(horizon)).start().millis() + 86_400_000;
    let mut statement = conn.prepare(
        "WITH kept AS (
             SELECT licensee_id, day, SUM(counted) AS counted FROM usage_daily WHERE day >= ?1
             GROUP BY licensee_id, day),
         recomputed AS (
             SELECT licensee_id, (at / 86400000) * 86400000 AS day, SUM(counted) AS counted FROM usage_events
             WHERE at >= ?1 GROUP BY licensee_id, day)
         SELECT k.licensee_id, k.day, k.counted, COALESCE(r.counted, 0) FROM kept k
         LEFT JOIN recomputed r ON r.licensee_id = k.licensee_id AND r.day = k.day
         UNION ALL
         SELECT r.licensee_id, r.day, 0, r.counted FROM recomputed r
         WHERE NOT EXISTS (SELECT 1 FROM kept k WHERE k.licensee_id = r.licensee_id AND k.day = r.day)",
    )?;
    let mut rows = statement.query(params![horizon_day])?;
    let mut checked = 0;
    while let Some(row) = rows.next()? {
        let (licensee_id, day, kept, recomputed): (i64, i64, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        if kept != recomputed {
            return Ok(Err(VerifyFailure::DailyTotals {
                licensee_id,
                day: DayKey::of(Timestamp(day)).date().to_string(),
                kept: kept as u64,
                recomputed: recomputed as u64,
            }));
        }
        checked += 1;
    }
    drop(rows);
    // Then every sealed column of every (licensee, day, endpoint, purpose) line. `overage` is not
    // in the events (it depends on the cap when metered); billing recomputes it from `counted`.
    const COLUMNS: [&str; 6] = ["counted", "events", "delivered", "user_reads", "bytes", "charged"];
    let mut statement = conn.prepare(
        "WITH recomputed AS (
             SELECT licensee_id, (at / 86400000) * 86400000 AS day, endpoint, purpose, SUM(counted) AS counted,
                    COUNT(*) AS events, SUM(delivered) AS delivered, SUM(user_reads) AS user_reads, SUM(bytes) AS bytes,
                    SUM(charged) AS charged
             FROM usage_events WHERE at >= ?1 GROUP BY licensee_id, day, endpoint, purpose)
         SELECT k.licensee_id, k.day, k.endpoint, k.purpose, k.counted, k.events, k.delivered, k.user_reads, k.bytes,
                k.charged, COALESCE(r.counted, 0), COALESCE(r.events, 0), COALESCE(r.delivered, 0),
                COALESCE(r.user_reads, 0), COALESCE(r.bytes, 0), COALESCE(r.charged, 0)
         FROM usage_daily k LEFT JOIN recomputed r
             ON r.licensee_id = k.licensee_id AND r.day = k.day AND r.endpoint = k.endpoint AND r.purpose = k.purpose
         WHERE k.day >= ?1",
    )?;
    let mut rows = statement.query(params![horizon_day])?;
    while let Some(row) = rows.next()? {
        for (index, column) in COLUMNS.iter().enumerate() {
            let (kept, recomputed): (i64, i64) = (row.get(4 + index)?, row.get(4 + COLUMNS.len() + index)?);
            if kept != recomputed {
                return Ok(Err(VerifyFailure::DailyBreakdown {
                    licensee_id: row.get(0)?,
                    day: DayKey::of(Timestamp(row.get(1)?)).date().to_string(),
                    endpoint: row.get(2)?,
                    purpose: row.get(3)?,
                    column,
                    kept: kept as u64,
                    recomputed: recomputed as u64,
                }));
            }
        }
    }
    Ok(Ok(checked))
}

/// A row stream in chain order, with its position.
trait PeekRows {
    /// The position of the next row if it belongs to batch `seq`.
    fn peek_position(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>>;
    fn next_row(&mut self) -> StoreResult<Positioned>;
    /// The position of the next row if it lies before batch `seq` (so belongs to no batch seen).
    fn stray_before(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>>;
}

impl<I: Iterator<Item = rusqlite::Result<Positioned>>> PeekRows for Peekable<I> {
    fn peek_position(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>> {
        match self.peek() {
            Some(Ok((row_seq, ordinal, _))) if *row_seq == seq => Ok(Some((*row_seq, *ordinal))),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(_)) => Err(self.next().expect("peeked").expect_err("peeked an error").into()),
        }
    }

    fn next_row(&mut self) -> StoreResult<Positioned> {
        Ok(self.next().expect("a row was peeked")?)
    }

    fn stray_before(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>> {
        match self.peek() {
            Some(Ok((row_seq, ordinal, _))) if *row_seq < seq => Ok(Some((*row_seq, *ordinal))),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(_)) => Err(self.next().expect("peeked").expect_err("peeked an error").into()),
        }
    }
}

fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Positioned> {
    let seq = row.get::<_, i64>(0)? as u64;
    let ordinal = row.get::<_, i64>(1)? as u32;
    let endpoint: String = row.get(4)?;
    let purpose: String = row.get(5)?;
    let stored = (|| {
        let endpoint = Endpoint::parse(&endpoint).ok_or_else(|| format!("unknown endpoint {endpoint:?}"))?;
        let purpose = Purpose::parse(&purpose).ok_or_else(|| format!("unknown purpose {purpose:?}"))?;
        let count = |index: usize| -> Result<u32, String> {
            let value: i64 = row.get(index).map_err(|e| e.to_string())?;
            u32::try_from(value).map_err(|_| format!("count {value} out of range"))
        };
        let bytes: i64 = row.get(12).map_err(|e| e.to_string())?;
        let charged: i64 = row.get(14).map_err(|e| e.to_string())?;
        let event = UsageEvent {
            licensee_id: row.get(2).map_err(|e| e.to_string())?,
            key_prefix: KeyPrefix(row.get(3).map_err(|e| e.to_string())?),
            endpoint,
            purpose,
            request_id: row.get(6).map_err(|e| e.to_string())?,
            idempotency_key: row.get(7).map_err(|e| e.to_string())?,
            at: Timestamp(row.get(8).map_err(|e| e.to_string())?),
            delivered: count(9)?,
            counted: count(10)?,
            user_reads: count(11)?,
            bytes: u64::try_from(bytes).map_err(|_| format!("byte count {bytes} out of range"))?,
            charged: u64::try_from(charged).map_err(|_| format!("charge {charged} out of range"))?,
        };
        let digest = digest(row.get(13).map_err(|e| e.to_string())?).ok_or("malformed digest")?;
        Ok(StoredRow { row: Row::Usage(event), digest })
    })();
    Ok((seq, ordinal, stored))
}

fn delivery_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Positioned> {
    let seq = row.get::<_, i64>(0)? as u64;
    let ordinal = row.get::<_, i64>(1)? as u32;
    let stored = (|| {
        let revision: i64 = row.get(5).map_err(|e| e.to_string())?;
        let counted: i64 = row.get(7).map_err(|e| e.to_string())?;
        let delivery = Delivery {
            licensee_id: row.get(2).map_err(|e| e.to_string())?,
            request_id: row.get(3).map_err(|e| e.to_string())?,
            post_id: row.get(4).map_err(|e| e.to_string())?,
            revision: u32::try_from(revision).map_err(|_| format!("revision {revision} out of range"))?,
            at: Timestamp(row.get(6).map_err(|e| e.to_string())?),
            counted: match counted {
                0 => false,
                1 => true,
                other => return Err(format!("counted is {other}, not 0 or 1")),
            },
        };
        let digest = digest(row.get(8).map_err(|e| e.to_string())?).ok_or("malformed digest")?;
        Ok(StoredRow { row: Row::Delivery(delivery), digest })
    })();
    Ok((seq, ordinal, stored))
}

/// Reads a head recorded by an earlier `ledger verify`: `SEQ:HASH`.
pub fn parse_anchor(text: &str) -> Option<Anchor> {
    let (seq, hash) = text.trim().split_once(':')?;
    Some(Anchor { seq: seq.parse().ok()?, hash: Digest::from_hex(hash)? })
}

/// What [`super::Ledger::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneSummary {
    pub batches: u64,
    pub events: u64,
    pub deliveries: u64,
    pub responses: u64,
}

pub(super) fn prune(
    conn: &mut Connection,
    chain: &str,
    before: Timestamp,
    now: Timestamp,
) -> StoreResult<PruneSummary> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Whole batches only, oldest first: the newest batch committed before `before`.
    let last: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM ledger_batches WHERE chain = ?1 AND committed_at < ?2",
        params![chain, before.millis()],
        |row| row.get(0),
    )?;
    let mut summary = PruneSummary::default();
    if let Some(last) = last {
        summary.events =
            tx.execute("DELETE FROM usage_events WHERE chain = ?1 AND seq <= ?2", params![chain, last])? as u64;
        summary.deliveries =
            tx.execute("DELETE FROM deliveries WHERE chain = ?1 AND seq <= ?2", params![chain, last])? as u64;
        summary.batches = tx.execute(
            "UPDATE ledger_batches SET pruned = 1 WHERE chain = ?1 AND seq <= ?2 AND pruned = 0",
            params![chain, last],
        )? as u64;
    }
    let expired = now.plus_millis(-datapact_ledger::idempotency::IDEMPOTENCY_WINDOW_MS);
    summary.responses =
        tx.execute("DELETE FROM idempotent_responses WHERE first_used_at < ?1", params![expired.millis()])? as u64;
    tx.commit()?;
    Ok(summary)
}

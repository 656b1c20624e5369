//! Reading the ledger back: counts for the meter, usage views, delivery exports, verification
//! and pruning.

use std::collections::{BTreeMap, HashMap, HashSet};

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, Timestamp};
use datapact_ledger::{
    Anchor, BatchHeader, ChainBreak, ChainHead, DailyCount, DayKey, Delivery, Digest, MonthKey, RequestFingerprint,
    Row, StoredRow, UsageEvent, VerifySummary,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::verify::{
    ChainWalk, DAILY_LINES_SQL, DAILY_TOTALS_SQL, DailyLine, PRUNE_HORIZON_SQL, Positioned, StoredHeader,
    check_daily_line, check_day_totals, daily_check_from,
};
use super::{StoredResponse, unavailable};
use crate::{StoreError, StoreResult};

/// The first and last instants (exclusive) of a month, in ms.
pub fn month_range(month: MonthKey) -> (i64, i64) {
    (month.start().millis(), month.next().start().millis())
}

// The statements both stores run (PostgreSQL with `$N` for `?N`).
pub(super) const MONTH_COUNTED_SQL: &str = "SELECT CAST(COALESCE(SUM(counted), 0) AS BIGINT) FROM usage_daily WHERE licensee_id = ?1 AND day >= ?2 AND day < ?3";
pub(super) const CHARGED_SQL: &str =
    "SELECT CAST(COALESCE(SUM(charged), 0) AS BIGINT) FROM usage_daily WHERE licensee_id = ?1";
/// The statements that read a licensee's deliveries, given the store's join of its usage events
/// (`e`) to the deliveries each made (`d`), and the chain order of `d`. A response's delivery rows
/// follow its usage event in its batch, up to the batch's next event, so they are read through the
/// events' licensee index: a per-delivery index would cost the group commit a second B-tree insert
/// for every post delivered (ARCHITECTURE.md, "Invariants"). SQLite keys a delivery by its
/// position, `seq << 20 | ordinal` (ledger migration 5); PostgreSQL (`pg.rs`) by `(chain, seq,
/// ordinal)`.
macro_rules! licensee_delivery_statements {
    ($deliveries:literal, $chain_order:literal) => {
        /// Only responses that counted something are read: under daily dedup most repeat posts already
        /// counted, so a restart reads the day's counted posts, not every delivery of the day.
        const COUNTED_ON_SQL: &str = concat!(
            "SELECT d.post_id FROM ",
            $deliveries,
            " WHERE e.licensee_id = ?1 AND e.at >= ?2 AND e.at < ?3 AND e.counted > 0 AND d.counted = 1"
        );
        const DELIVERIES_SQL: &str = concat!(
            "SELECT d.at, d.post_id, d.revision, e.request_id, d.counted FROM ",
            $deliveries,
            " WHERE e.licensee_id = ?1 AND e.at >= ?2 AND e.at < ?3 ORDER BY d.at, ",
            $chain_order
        );
        const DELIVERED_POSTS_SQL: &str =
            concat!("SELECT DISTINCT d.post_id FROM ", $deliveries, " WHERE e.licensee_id = ?1");
        /// Every post delivered to a licensee (canaries, revision 0, excluded): first delivery, oldest revision.
        const RECEIVED_SQL: &str = concat!(
            "SELECT d.post_id, MIN(d.at), CAST(MIN(d.revision) AS BIGINT) FROM ",
            $deliveries,
            " WHERE e.licensee_id = ?1 AND d.revision > 0 GROUP BY d.post_id"
        );
    };
}
pub(super) use licensee_delivery_statements;

licensee_delivery_statements!(
    "usage_events e JOIN deliveries d
       ON d.position > (e.seq << 20) + e.ordinal
      AND d.position < (e.seq << 20) + COALESCE((SELECT MIN(n.ordinal) FROM usage_events n
                                                   WHERE n.chain = e.chain AND n.seq = e.seq
                                                     AND n.ordinal > e.ordinal),
                                                 1048576)
      AND d.licensee_id = e.licensee_id",
    "d.position"
);
pub(super) const STORED_RESPONSE_SQL: &str =
    "SELECT fingerprint, request_id, first_used_at, body FROM idempotent_responses WHERE licensee_id = ?1 AND key = ?2";
pub(super) const DAILY_COUNTS_SQL: &str =
    "SELECT day, CAST(SUM(counted) AS BIGINT), CAST(SUM(charged) AS BIGINT) FROM usage_daily
     WHERE licensee_id = ?1 AND day >= ?2 AND day <= ?3 GROUP BY day ORDER BY day";
/// Per chain, the first and last batch holding a licensee's usage events in `[from, to)`, and how many.
pub(super) const BATCH_RANGES_SQL: &str = "SELECT chain, MIN(seq), MAX(seq), COUNT(*) FROM usage_events
     WHERE licensee_id = ?1 AND at >= ?2 AND at < ?3 GROUP BY chain ORDER BY chain";
pub(super) const CANARIES_SQL: &str =
    "SELECT DISTINCT licensee_id, post_id FROM deliveries WHERE revision = 0 ORDER BY licensee_id, post_id";

/// A chain's delivery rows in chain order, as `(seq, ordinal, licensee_id, request_id, post_id,
/// revision, at, counted, digest)`: what `ledger verify` walks, and what `datapact migrate` copies
/// into PostgreSQL's `deliveries`. The request is the one of the usage event the row follows in its
/// batch (NULL when none does, which only an edit can make; the walk then names the row).
pub(crate) const DELIVERY_CHAIN_ROWS_SQL: &str = "SELECT d.position >> 20 AS seq, d.position & 1048575 AS ordinal,
        d.licensee_id, (SELECT e.request_id FROM usage_events e
                        WHERE e.chain = ?1 AND e.seq = d.position >> 20 AND e.ordinal < (d.position & 1048575)
                        ORDER BY e.ordinal DESC LIMIT 1) AS request_id,
        d.post_id, d.revision, d.at, d.counted, d.digest
     FROM deliveries d ORDER BY d.position";

/// `usage`'s statement for a grouping column (`day`, `endpoint` or `purpose`).
pub(super) fn usage_sql(group: &str) -> String {
    format!(
        "SELECT licensee_id, {group}, CAST(SUM(events) AS BIGINT), CAST(SUM(delivered) AS BIGINT),
                CAST(SUM(counted) AS BIGINT), CAST(SUM(overage) AS BIGINT), CAST(SUM(user_reads) AS BIGINT),
                CAST(SUM(bytes) AS BIGINT)
         FROM usage_daily WHERE day >= ?1 AND day < ?2 AND (CAST(?3 AS BIGINT) IS NULL OR licensee_id = ?3)
         GROUP BY licensee_id, {group} ORDER BY licensee_id, {group}"
    )
}

/// The grouping column of `by`.
pub(super) fn usage_group(by: UsageBy) -> &'static str {
    match by {
        UsageBy::Month | UsageBy::Day => "day",
        UsageBy::Endpoint => "endpoint",
        UsageBy::Purpose => "purpose",
    }
}

pub(super) fn received(conn: &Connection, licensee_id: i64) -> StoreResult<HashMap<i64, Received>> {
    let mut statement = conn.prepare_cached(RECEIVED_SQL)?;
    let rows = statement.query_map(params![licensee_id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })?;
    let mut received = HashMap::new();
    for row in rows {
        let (post_id, first_at, revision) = row?;
        received.insert(post_id, received_post(first_at, revision)?);
    }
    Ok(received)
}

/// What a licensee received of one post: when first, and the oldest revision it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub first_at: Timestamp,
    pub oldest_revision: u32,
}

pub(super) fn received_post(first_at: i64, revision: i64) -> StoreResult<Received> {
    let oldest_revision = u32::try_from(revision).map_err(|_| unavailable("a delivered revision is out of range"))?;
    Ok(Received { first_at: Timestamp(first_at), oldest_revision })
}

/// Whether `request_id` committed on `chain`.
pub(super) fn committed(conn: &Connection, chain: &str, request_id: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM usage_events WHERE chain = ?1 AND request_id = ?2)")?
        .query_row(params![chain, request_id], |row| row.get(0))?)
}

pub(super) fn month_counted(conn: &Connection, licensee_id: i64, month: MonthKey) -> StoreResult<u64> {
    let (from, to) = month_range(month);
    let total: i64 =
        conn.prepare_cached(MONTH_COUNTED_SQL)?.query_row(params![licensee_id, from, to], |row| row.get(0))?;
    Ok(total as u64)
}

/// Micro-units ever charged to a licensee's prepaid credit (kept through pruning: `usage_daily`).
pub(super) fn charged(conn: &Connection, licensee_id: i64) -> StoreResult<u64> {
    let total: i64 = conn.prepare_cached(CHARGED_SQL)?.query_row(params![licensee_id], |row| row.get(0))?;
    Ok(total as u64)
}

/// The posts counted for a licensee on `day` (for daily dedup).
pub(super) fn counted_on(conn: &Connection, licensee_id: i64, day: DayKey) -> StoreResult<HashSet<i64>> {
    let from = day.start().millis();
    let to = from + 86_400_000;
    let mut statement = conn.prepare_cached(COUNTED_ON_SQL)?;
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
        .prepare_cached(STORED_RESPONSE_SQL)?
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
    let mut statement = conn.prepare_cached(DAILY_COUNTS_SQL)?;
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

pub(super) fn batch_ranges(
    conn: &Connection,
    licensee_id: i64,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<BatchRange>> {
    let mut statement = conn.prepare_cached(BATCH_RANGES_SQL)?;
    let rows = statement.query_map(params![licensee_id, from.millis(), to.millis()], |row| {
        Ok(BatchRange {
            chain: row.get(0)?,
            first_seq: row.get::<_, i64>(1)? as u64,
            last_seq: row.get::<_, i64>(2)? as u64,
            events: row.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The batches of one chain that hold a licensee's usage events in a time range
/// ([`super::Ledger::batch_ranges`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchRange {
    pub chain: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Usage events (responses) of the licensee in these batches and the range.
    pub events: u64,
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
    let sql = usage_sql(usage_group(by));
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
    Ok(usage_lines(lines, month, by))
}

/// The lines of a month grouped by day, endpoint or purpose — or, for [`UsageBy::Month`], summed
/// per licensee from its days.
pub(super) fn usage_lines(lines: Vec<UsageLine>, month: MonthKey, by: UsageBy) -> Vec<UsageLine> {
    if by != UsageBy::Month {
        return lines;
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
    months.into_values().collect()
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
    let mut statement = conn.prepare(DELIVERIES_SQL)?;
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
/// once however often it was delivered). Streams the licensee's deliveries through its events
/// rather than binding the ids, so a leak of a million posts costs one pass, not a query each.
pub(super) fn delivered_among(conn: &Connection, licensee_id: i64, post_ids: &HashSet<i64>) -> StoreResult<u64> {
    if post_ids.is_empty() {
        return Ok(0);
    }
    let mut statement = conn.prepare_cached(DELIVERED_POSTS_SQL)?;
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
    let mut statement = conn.prepare_cached(CANARIES_SQL)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every chain's newest batch (a signed checkpoint's heads), in any order: the caller sorts by
/// name, since PostgreSQL's collation need not be byte order.
pub(super) const HEADS_SQL: &str = "SELECT b.chain, b.seq, b.hash FROM ledger_batches b
     JOIN (SELECT chain, MAX(seq) AS seq FROM ledger_batches GROUP BY chain) newest
       ON newest.chain = b.chain AND newest.seq = b.seq";

pub(super) fn heads(conn: &Connection) -> StoreResult<Vec<ChainHead>> {
    let mut statement = conn.prepare_cached(HEADS_SQL)?;
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?)))?;
    let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
    chain_heads(rows)
}

/// Heads as read (chain, seq, hash bytes), checked and sorted by chain name.
pub(super) fn chain_heads(rows: Vec<(String, i64, Vec<u8>)>) -> StoreResult<Vec<ChainHead>> {
    let mut heads = rows
        .into_iter()
        .map(|(chain, seq, hash)| {
            let hash =
                digest(hash).ok_or_else(|| StoreError::Invalid(format!("chain {chain:?}: a malformed batch hash")))?;
            let seq = u64::try_from(seq).map_err(|_| StoreError::Invalid(format!("chain {chain:?}: seq {seq}")))?;
            Ok(ChainHead { chain, seq, hash })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    heads.sort_by(|a, b| a.chain.cmp(&b.chain));
    Ok(heads)
}

/// What `ledger verify` found when the chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every chain walked, by name.
    pub chains: Vec<VerifySummary>,
    /// `(licensee, day)` daily totals checked against the sum of their events.
    pub daily_checked: u64,
}

/// `ledger verify`'s outcome as JSON, for the CLI's `--json` and the admin API alike:
/// `{ok, chains: [{chain, first_seq, batches, pruned_batches, rows, head}], batches, pruned_batches,
/// rows, daily_totals_checked}`, plus `chain` and `head` (`SEQ:HASH`) when there is one chain;
/// or `{ok: false, break}`.
pub fn verify_json(outcome: &Result<VerifyReport, VerifyFailure>) -> serde_json::Value {
    let report = match outcome {
        Ok(report) => report,
        Err(failure) => return serde_json::json!({ "ok": false, "break": failure.to_string() }),
    };
    let head = |summary: &VerifySummary| summary.head.map(|h| format!("{}:{}", h.seq, h.hash.to_hex()));
    let chains: Vec<serde_json::Value> = report
        .chains
        .iter()
        .map(|summary| {
            serde_json::json!({
                "chain": summary.chain, "first_seq": summary.first_seq, "batches": summary.batches,
                "pruned_batches": summary.pruned_batches, "rows": summary.rows, "head": head(summary),
            })
        })
        .collect();
    let sum = |field: fn(&VerifySummary) -> u64| report.chains.iter().map(field).sum::<u64>();
    let mut json = serde_json::json!({
        "ok": true, "chains": chains, "batches": sum(|s| s.batches), "pruned_batches": sum(|s| s.pruned_batches),
        "rows": sum(|s| s.rows), "daily_totals_checked": report.daily_checked,
    });
    if let [only] = report.chains.as_slice() {
        json["chain"] = serde_json::json!(only.chain);
        json["head"] = serde_json::json!(head(only));
    }
    json
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

pub(super) fn verify(
    conn: &Connection,
    chain: &str,
    expect: &[ChainAnchor],
) -> StoreResult<Result<VerifyReport, VerifyFailure>> {
    let anchors = anchors_for(expect, chain);
    // A head of another chain: this ledger does not pass through it (as on PostgreSQL, where the
    // named chain is walked, empty).
    if let Some(other) = expect.iter().find(|a| a.chain.as_deref().is_some_and(|name| name != chain)) {
        let name = other.chain.as_deref().unwrap_or_default();
        return Ok(Err(VerifyFailure::Chain(ChainBreak::AnchorMismatch {
            seq: other.anchor.seq,
            expected: other.anchor.hash,
            found: format!("nothing (this ledger has one chain, {chain:?}, and no chain {name:?})"),
        })));
    }
    // The store writes one chain: a row filed under another name is no history of it, but the
    // meter's "counted today" and the delivery exports would read it.
    // (Deliveries name no chain here: their position is in this file's one.)
    let foreign = conn
        .query_row("SELECT seq, ordinal FROM usage_events WHERE chain <> ?1 LIMIT 1", params![chain], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u32))
        })
        .optional()?;
    if let Some((seq, ordinal)) = foreign {
        return Ok(Err(VerifyFailure::Stray { table: "usage_events", seq, ordinal }));
    }
    let mut batches = conn.prepare(
        "SELECT seq, prev_hash, rows_hash, row_count, committed_at, hash, pruned FROM ledger_batches
         WHERE chain = ?1 ORDER BY seq",
    )?;
    let mut events = conn.prepare(
        "SELECT seq, ordinal, licensee_id, key_prefix, endpoint, purpose, request_id, idempotency_key, at, delivered,
                counted, user_reads, bytes, digest, charged
         FROM usage_events WHERE chain = ?1 ORDER BY seq, ordinal",
    )?;
    let mut deliveries = conn.prepare(DELIVERY_CHAIN_ROWS_SQL)?;
    let headers = batches.query_map(params![chain], |row| {
        let seq = row.get::<_, i64>(0)? as u64;
        Ok((seq, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
    })?;
    let headers = headers.map(|row| {
        let (seq, prev_hash, rows_hash, row_count, committed_at, hash, pruned) = row?;
        stored_header(chain, seq, prev_hash, rows_hash, row_count, committed_at, hash, pruned)
    });
    let event_rows = events.query_map(params![chain], event_row)?.map(|row| row.map_err(StoreError::from));
    let delivery_rows = deliveries.query_map(params![chain], delivery_row)?.map(|row| row.map_err(StoreError::from));
    let mut walk = ChainWalk::new(chain, &anchors);
    if let Err(failure) = walk.push_chunk(headers, event_rows, delivery_rows)? {
        return Ok(Err(failure));
    }
    let summary = match walk.finish() {
        Ok(summary) => summary,
        Err(failure) => return Ok(Err(failure)),
    };
    match check_daily_totals(conn)? {
        Ok(daily_checked) => Ok(Ok(VerifyReport { chains: vec![summary], daily_checked })),
        Err(failure) => Ok(Err(failure)),
    }
}

/// The anchors `expect` gives for `chain` (an anchor naming no chain is the store's only one).
pub(super) fn anchors_for(expect: &[ChainAnchor], chain: &str) -> Vec<Anchor> {
    expect.iter().filter(|a| a.chain.as_deref().is_none_or(|name| name == chain)).map(|a| a.anchor).collect()
}

/// A batch header as read back, its hash columns checked for shape.
#[allow(clippy::too_many_arguments)]
pub(super) fn stored_header(
    chain: &str,
    seq: u64,
    prev_hash: Vec<u8>,
    rows_hash: Vec<u8>,
    row_count: i64,
    committed_at: i64,
    hash: Vec<u8>,
    pruned: i64,
) -> StoreResult<StoredHeader> {
    let malformed = || unavailable(format!("batch {seq} of chain {chain:?} has a malformed hash column"));
    Ok(StoredHeader {
        header: BatchHeader {
            chain: chain.to_owned(),
            seq,
            prev_hash: digest(prev_hash).ok_or_else(malformed)?,
            rows_hash: digest(rows_hash).ok_or_else(malformed)?,
            row_count: u32::try_from(row_count).map_err(|_| malformed())?,
            committed_at: Timestamp(committed_at),
        },
        hash: digest(hash).ok_or_else(malformed)?,
        pruned: pruned != 0,
    })
}

/// The kept daily totals against the sum of the events still held, for every day after the
/// newest pruned event (earlier days may have lost events to pruning).
fn check_daily_totals(conn: &Connection) -> StoreResult<Result<u64, VerifyFailure>> {
    let horizon: i64 = conn.query_row(PRUNE_HORIZON_SQL, [], |row| row.get(0))?;
    let from = daily_check_from(horizon);
    let mut statement = conn.prepare(DAILY_TOTALS_SQL)?;
    let rows = statement
        .query_map(params![from], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let checked = match check_day_totals(rows) {
        Ok(checked) => checked,
        Err(failure) => return Ok(Err(failure)),
    };
    let mut statement = conn.prepare(DAILY_LINES_SQL)?;
    let mut rows = statement.query(params![from])?;
    while let Some(row) = rows.next()? {
        let mut line = DailyLine {
            licensee_id: row.get(0)?,
            day: row.get(1)?,
            endpoint: row.get(2)?,
            purpose: row.get(3)?,
            kept: [0; 6],
            recomputed: [0; 6],
        };
        for index in 0..6 {
            line.kept[index] = row.get(4 + index)?;
            line.recomputed[index] = row.get(10 + index)?;
        }
        if let Err(failure) = check_daily_line(&line) {
            return Ok(Err(failure));
        }
    }
    Ok(Ok(checked))
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
            request_id: row
                .get::<_, Option<String>>(3)
                .map_err(|e| e.to_string())?
                .ok_or("it follows no usage event in its batch")?,
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

/// Reads a head recorded by an earlier `ledger verify`: `SEQ:HASH`, or `CHAIN@SEQ:HASH` where
/// the ledger has several chains (one per gateway node on PostgreSQL).
pub fn parse_anchor(text: &str) -> Option<ChainAnchor> {
    let text = text.trim();
    let (chain, head) = match text.split_once('@') {
        Some((chain, head)) if !chain.is_empty() => (Some(chain.to_owned()), head),
        Some(_) => return None,
        None => (None, text),
    };
    let (seq, hash) = head.split_once(':')?;
    Some(ChainAnchor { chain, anchor: Anchor { seq: seq.parse().ok()?, hash: Digest::from_hex(hash)? } })
}

/// A head recorded earlier, `[CHAIN@]SEQ:HASH`: without a chain, the store's only chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainAnchor {
    pub chain: Option<String>,
    pub anchor: Anchor,
}

/// What [`super::Ledger::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneSummary {
    pub batches: u64,
    pub events: u64,
    pub deliveries: u64,
    pub responses: u64,
}

// Pruning, for both stores: whole batches of a chain, oldest first, keeping their headers.
pub(super) const PRUNE_LAST_SQL: &str = "SELECT MAX(seq) FROM ledger_batches WHERE chain = ?1 AND committed_at < ?2";
pub(super) const PRUNE_EVENTS_SQL: &str = "DELETE FROM usage_events WHERE chain = ?1 AND seq <= ?2";
/// SQLite's: its deliveries are keyed by position, `seq << 20 | ordinal`, in its one chain.
const PRUNE_DELIVERIES_SQL: &str = "DELETE FROM deliveries WHERE position < ((?1 + 1) << 20)";
pub(super) const PRUNE_BATCHES_SQL: &str =
    "UPDATE ledger_batches SET pruned = 1 WHERE chain = ?1 AND seq <= ?2 AND pruned = 0";
pub(super) const PRUNE_RESPONSES_SQL: &str = "DELETE FROM idempotent_responses WHERE first_used_at < ?1";

pub(super) fn prune(
    conn: &mut Connection,
    chain: &str,
    before: Timestamp,
    now: Timestamp,
) -> StoreResult<PruneSummary> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Whole batches only, oldest first: the newest batch committed before `before`.
    let last: Option<i64> = tx.query_row(PRUNE_LAST_SQL, params![chain, before.millis()], |row| row.get(0))?;
    let mut summary = PruneSummary::default();
    if let Some(last) = last {
        summary.events = tx.execute(PRUNE_EVENTS_SQL, params![chain, last])? as u64;
        summary.deliveries = tx.execute(PRUNE_DELIVERIES_SQL, params![last])? as u64;
        summary.batches = tx.execute(PRUNE_BATCHES_SQL, params![chain, last])? as u64;
    }
    let expired = now.plus_millis(-datapact_ledger::idempotency::IDEMPOTENCY_WINDOW_MS);
    summary.responses = tx.execute(PRUNE_RESPONSES_SQL, params![expired.millis()])? as u64;
    tx.commit()?;
    Ok(summary)
}

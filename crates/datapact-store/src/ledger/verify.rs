//! `ledger verify`'s walk, the same for both stores: a chain's batch headers with the rows stored
//! at their positions, in chain order, fed in chunks (SQLite's whole chain at once, PostgreSQL's a
//! bounded number of batches at a time), then the daily totals against the events they sum.

use std::iter::Peekable;

use datapact_core::Timestamp;
use datapact_ledger::{
    Anchor, BatchHeader, ChainBreak, DayKey, Digest, StoredBatch, StoredRow, Verifier, VerifySummary,
};

use super::VerifyFailure;
use crate::StoreResult;

/// A stored row with its position (`seq`, `ordinal`), or why it does not read back.
pub(super) type Positioned = (u64, u32, Result<StoredRow, String>);

/// A batch header as stored: the sealed header, its recorded hash, and whether its rows were pruned.
pub(super) struct StoredHeader {
    pub header: BatchHeader,
    pub hash: Digest,
    pub pruned: bool,
}

/// One chain's walk, fed chunk by chunk.
pub(super) struct ChainWalk {
    verifier: Verifier,
    /// Whether a batch with its rows was seen: pruned batches must all come before it.
    kept_seen: bool,
}

impl ChainWalk {
    pub fn new(chain: &str, expect: &[Anchor]) -> ChainWalk {
        let mut verifier = Verifier::new(chain);
        for anchor in expect {
            verifier = verifier.expect(*anchor);
        }
        ChainWalk { verifier, kept_seen: false }
    }

    /// Walks `headers` (in `seq` order) with `events` and `deliveries`: every row of the chain
    /// whose `seq` lies in this chunk's range, in `(seq, ordinal)` order. A row no header of the
    /// chunk claims belongs to no batch: it was inserted or moved.
    pub fn push_chunk(
        &mut self,
        headers: impl IntoIterator<Item = StoreResult<StoredHeader>>,
        events: impl Iterator<Item = StoreResult<Positioned>>,
        deliveries: impl Iterator<Item = StoreResult<Positioned>>,
    ) -> StoreResult<Result<(), VerifyFailure>> {
        let mut events = events.peekable();
        let mut deliveries = deliveries.peekable();
        for stored in headers {
            let StoredHeader { header, hash, pruned } = stored?;
            let seq = header.seq;
            // Rows stored under an earlier position than this batch belong to no batch.
            for (table, stream) in [("usage_events", &mut events as &mut dyn PeekRows), ("deliveries", &mut deliveries)]
            {
                if let Some((stray_seq, ordinal)) = stream.stray_before(seq)? {
                    return Ok(Err(VerifyFailure::Stray { table, seq: stray_seq, ordinal }));
                }
            }
            // Pruning removes whole batches oldest first, so the pruned batches are a prefix.
            if pruned && self.kept_seen {
                let row_count = header.row_count;
                return Ok(Err(VerifyFailure::Chain(ChainBreak::RowsMissing { seq, expected: row_count, found: 0 })));
            }
            self.kept_seen |= !pruned;
            let rows = if pruned {
                None
            } else {
                let mut rows = Vec::new();
                loop {
                    let take_event = match (events.peek_position(seq)?, deliveries.peek_position(seq)?) {
                        (None, None) => break,
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (Some(a), Some(b)) => a <= b,
                    };
                    // A gap or repeat in the ordinals needs no check of its own: the digests chain
                    // the rows in order, so the first row out of place fails to match.
                    let (_, _, stored) = if take_event { events.next_row()? } else { deliveries.next_row()? };
                    let index = rows.len() as u32;
                    match stored {
                        Ok(stored) => rows.push(stored),
                        Err(reason) => return Ok(Err(VerifyFailure::Unreadable { seq, index, reason })),
                    }
                }
                Some(rows)
            };
            if let Err(broken) = self.verifier.push(&StoredBatch { header, hash, rows }) {
                return Ok(Err(VerifyFailure::Chain(broken)));
            }
        }
        for (table, stream) in [("usage_events", &mut events as &mut dyn PeekRows), ("deliveries", &mut deliveries)] {
            if let Some((seq, ordinal)) = stream.stray_before(u64::MAX)? {
                return Ok(Err(VerifyFailure::Stray { table, seq, ordinal }));
            }
        }
        Ok(Ok(()))
    }

    pub fn finish(self) -> Result<VerifySummary, VerifyFailure> {
        self.verifier.finish().map_err(VerifyFailure::Chain)
    }
}

/// A row stream in chain order, with its position.
trait PeekRows {
    /// The position of the next row if it belongs to batch `seq`.
    fn peek_position(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>>;
    fn next_row(&mut self) -> StoreResult<Positioned>;
    /// The position of the next row if it lies before batch `seq` (so belongs to no batch seen).
    fn stray_before(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>>;
}

impl<I: Iterator<Item = StoreResult<Positioned>>> PeekRows for Peekable<I> {
    fn peek_position(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>> {
        match self.peek() {
            Some(Ok((row_seq, ordinal, _))) if *row_seq == seq => Ok(Some((*row_seq, *ordinal))),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(_)) => Err(self.next().expect("peeked").expect_err("peeked an error")),
        }
    }

    fn next_row(&mut self) -> StoreResult<Positioned> {
        self.next().expect("a row was peeked")
    }

    fn stray_before(&mut self, seq: u64) -> StoreResult<Option<(u64, u32)>> {
        match self.peek() {
            Some(Ok((row_seq, ordinal, _))) if *row_seq < seq => Ok(Some((*row_seq, *ordinal))),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(_)) => Err(self.next().expect("peeked").expect_err("peeked an error")),
        }
    }
}

/// The newest instant whose events may have been pruned: daily totals are checked from the day
/// after it (`?1` below). Both stores run these statements (PostgreSQL with `$N`).
pub(super) const PRUNE_HORIZON_SQL: &str = "SELECT COALESCE(MAX(committed_at), 0) FROM ledger_batches WHERE pruned = 1";

/// `(licensee, day, kept counted, recomputed counted)` for every day from `?1`.
pub(super) const DAILY_TOTALS_SQL: &str = "WITH kept AS (
         SELECT licensee_id, day, SUM(counted) AS counted FROM usage_daily WHERE day >= ?1
         GROUP BY licensee_id, day),
     recomputed AS (
         SELECT licensee_id, (at / 86400000) * 86400000 AS day, SUM(counted) AS counted FROM usage_events
         WHERE at >= ?1 GROUP BY licensee_id, (at / 86400000) * 86400000)
     SELECT k.licensee_id, k.day, CAST(k.counted AS BIGINT), CAST(COALESCE(r.counted, 0) AS BIGINT) FROM kept k
     LEFT JOIN recomputed r ON r.licensee_id = k.licensee_id AND r.day = k.day
     UNION ALL
     SELECT r.licensee_id, r.day, CAST(0 AS BIGINT), CAST(r.counted AS BIGINT) FROM recomputed r
     WHERE NOT EXISTS (SELECT 1 FROM kept k WHERE k.licensee_id = r.licensee_id AND k.day = r.day)";

/// The sealed columns of a daily line that `ledger verify` recomputes. `overage` is not in the
/// events (it depends on the cap when metered); billing recomputes it from `counted`.
pub(super) const DAILY_COLUMNS: [&str; 6] = ["counted", "events", "delivered", "user_reads", "bytes", "charged"];

/// Every daily line from `?1`: licensee, day, endpoint, purpose, then [`DAILY_COLUMNS`] kept, then recomputed.
pub(super) const DAILY_LINES_SQL: &str = "WITH recomputed AS (
         SELECT licensee_id, (at / 86400000) * 86400000 AS day, endpoint, purpose, SUM(counted) AS counted,
                COUNT(*) AS events, SUM(delivered) AS delivered, SUM(user_reads) AS user_reads, SUM(bytes) AS bytes,
                SUM(charged) AS charged
         FROM usage_events WHERE at >= ?1 GROUP BY licensee_id, (at / 86400000) * 86400000, endpoint, purpose)
     SELECT k.licensee_id, k.day, k.endpoint, k.purpose, k.counted, k.events, k.delivered, k.user_reads, k.bytes,
            k.charged, CAST(COALESCE(r.counted, 0) AS BIGINT), CAST(COALESCE(r.events, 0) AS BIGINT),
            CAST(COALESCE(r.delivered, 0) AS BIGINT), CAST(COALESCE(r.user_reads, 0) AS BIGINT),
            CAST(COALESCE(r.bytes, 0) AS BIGINT), CAST(COALESCE(r.charged, 0) AS BIGINT)
     FROM usage_daily k LEFT JOIN recomputed r
         ON r.licensee_id = k.licensee_id AND r.day = k.day AND r.endpoint = k.endpoint AND r.purpose = k.purpose
     WHERE k.day >= ?1";

/// The first day to check daily totals from, given [`PRUNE_HORIZON_SQL`]'s answer.
pub(super) fn daily_check_from(prune_horizon: i64) -> i64 {
    DayKey::of(Timestamp(prune_horizon)).start().millis() + 86_400_000
}

/// The first `(licensee, day, kept, recomputed)` of [`DAILY_TOTALS_SQL`] that disagree, or how many agreed.
pub(super) fn check_day_totals(rows: impl IntoIterator<Item = (i64, i64, i64, i64)>) -> Result<u64, VerifyFailure> {
    let mut checked = 0;
    for (licensee_id, day, kept, recomputed) in rows {
        if kept != recomputed {
            return Err(VerifyFailure::DailyTotals {
                licensee_id,
                day: DayKey::of(Timestamp(day)).date().to_string(),
                kept: kept as u64,
                recomputed: recomputed as u64,
            });
        }
        checked += 1;
    }
    Ok(checked)
}

/// One row of [`DAILY_LINES_SQL`].
pub(super) struct DailyLine {
    pub licensee_id: i64,
    pub day: i64,
    pub endpoint: String,
    pub purpose: String,
    pub kept: [i64; 6],
    pub recomputed: [i64; 6],
}

/// The first column of a daily line that disagrees with its events.
pub(super) fn check_daily_line(line: &DailyLine) -> Result<(), VerifyFailure> {
    for (index, column) in DAILY_COLUMNS.iter().enumerate() {
        let (kept, recomputed) = (line.kept[index], line.recomputed[index]);
        if kept != recomputed {
            return Err(VerifyFailure::DailyBreakdown {
                licensee_id: line.licensee_id,
                day: DayKey::of(Timestamp(line.day)).date().to_string(),
                endpoint: line.endpoint.clone(),
                purpose: line.purpose.clone(),
                column,
                kept: kept as u64,
                recomputed: recomputed as u64,
            });
        }
    }
    Ok(())
}

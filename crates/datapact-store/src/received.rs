//! What a licensee actually received, read from the delivery ledger for deletion compliance
//! (issue 10): the compliance feed and jobs tell a licensee only about posts it received.
//!
//! MERGE NOTE: this reads the SQLite ledger file (`ledger.db`, table `deliveries`) through a
//! read-only connection of its own, because the `ledger` module is being reworked on another
//! branch (the PostgreSQL ledger). Once that lands, this belongs in the ledger as a method
//! (`Ledger::received`) with one implementation per ledger store; the signature is meant to
//! carry over unchanged.

use std::collections::HashMap;
use std::time::Duration;

use datapact_core::Timestamp;
use rusqlite::{Connection, OpenFlags, params};

use crate::StoreResult;
use crate::ledger::Ledger;
use crate::shared::unavailable;

/// What a licensee received of one post: when first, and the oldest revision it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub first_at: Timestamp,
    pub oldest_revision: u32,
}

/// Every post the ledger says was delivered to `licensee_id` (canaries excluded: revision 0),
/// with its first delivery and the oldest revision delivered. Pruned batches no longer count.
pub fn received(ledger: &Ledger, licensee_id: i64) -> StoreResult<HashMap<i64, Received>> {
    let conn = Connection::open_with_flags(
        ledger.path(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| unavailable(format!("cannot read the delivery ledger: {e}")))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(unavailable)?;
    let mut statement = conn
        .prepare(
            "SELECT post_id, MIN(at), MIN(revision) FROM deliveries
             WHERE licensee_id = ?1 AND revision > 0 GROUP BY post_id",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![licensee_id], |row| {
            Ok((row.get::<_, i64>(0)?, Received { first_at: Timestamp(row.get(1)?), oldest_revision: row.get(2)? }))
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

//! Signing keys and signed checkpoints in SQLite (see [`crate::checkpoints`]).

use datapact_core::Timestamp;
use datapact_ledger::{ChainHead, SignedCheckpoint};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::append_draft;
use crate::checkpoints::{
    KeyChange, StoredSigningKey, heads_json, key_audit, no_key, rotation_instant, seal, sql, stored,
};
use crate::{Change, StoreResult};

/// A key's row; the outer error is SQLite's, the inner one a key that does not read.
fn key_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<StoredSigningKey>> {
    Ok(StoredSigningKey::from_stored(row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn key_in_use(conn: &Connection) -> StoreResult<Option<StoredSigningKey>> {
    conn.prepare_cached(sql::KEY_IN_USE)?.query_row([], key_from_row).optional()?.transpose()
}

pub(super) fn signing_keys(conn: &Connection) -> StoreResult<Vec<StoredSigningKey>> {
    let rows = conn.prepare_cached(sql::SIGNING_KEYS)?.query_map([], key_from_row)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().collect()
}

pub(super) fn add_signing_key(
    conn: &mut Connection,
    seed: [u8; 32],
    how: KeyChange,
    change: &Change,
) -> StoreResult<StoredSigningKey> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let (KeyChange::CreateIfNone, Some(in_use)) = (how, key_in_use(&tx)?) {
        return Ok(in_use);
    }
    let in_use = key_in_use(&tx)?;
    let last_signed: Option<i64> = match &in_use {
        Some(key) => tx.query_row(sql::LAST_SIGNED, [&key.public.key_id], |row| row.get(0))?,
        None => None,
    };
    let at = rotation_instant(change.at, in_use.as_ref(), last_signed);
    let key = StoredSigningKey::new(seed, at);
    tx.execute(sql::RETIRE_KEYS, params![at.0])?;
    tx.execute(sql::INSERT_KEY, params![key.public.key_id, key.public.public, key.seed().map(|s| s.as_slice()), at.0])?;
    append_draft(&tx, change, key_audit(&key, how))?;
    tx.commit()?;
    Ok(key)
}

pub(super) fn record_checkpoint(
    conn: &mut Connection,
    heads: Vec<ChainHead>,
    at: Timestamp,
    slot: Option<i64>,
) -> StoreResult<Option<SignedCheckpoint>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(slot) = slot
        && tx.query_row(sql::SLOT_TAKEN, [slot], |row| row.get::<_, bool>(0))?
    {
        return Ok(None);
    }
    let Some(key) = key_in_use(&tx)? else {
        return Err(no_key());
    };
    let number: i64 = tx.query_row(sql::NEXT_NUMBER, [], |row| row.get(0))?;
    let signed = seal(number as u64, at, heads, &key)?;
    let c = &signed.checkpoint;
    tx.execute(
        sql::INSERT_CHECKPOINT,
        params![number, c.at.0, slot, c.key_id, heads_json(c), signed.signature.as_slice()],
    )?;
    tx.commit()?;
    Ok(Some(signed))
}

pub(super) fn checkpoints(conn: &Connection, before: Option<u64>, limit: usize) -> StoreResult<Vec<SignedCheckpoint>> {
    let before = before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let rows = conn
        .prepare_cached(sql::CHECKPOINTS)?
        .query_map(params![before, limit.min(crate::checkpoints::MAX_CHECKPOINTS_PER_READ) as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get::<_, String>(3)?, row.get(4)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(number, at, key_id, heads, signature)| stored(number, at, key_id, &heads, signature))
        .collect()
}

//! Signing keys and signed checkpoints in PostgreSQL (see [`crate::checkpoints`]).

use datapact_core::Timestamp;
use datapact_ledger::{ChainHead, SignedCheckpoint};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{append_audit, limit};
use crate::checkpoints::{
    KeyChange, StoredSigningKey, heads_json, key_audit, no_key, rotation_instant, seal, sql, stored,
};
use crate::postgres::pg;
use crate::{Change, StoreResult};

fn key_from_row(row: &PgRow) -> StoreResult<StoredSigningKey> {
    StoredSigningKey::from_stored(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?)
}

async fn key_in_use(conn: &mut PgConnection) -> StoreResult<Option<StoredSigningKey>> {
    let row = sqlx::query(pg!(sql::KEY_IN_USE)).fetch_optional(conn).await?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn signing_keys(conn: &mut PgConnection) -> StoreResult<Vec<StoredSigningKey>> {
    sqlx::query(pg!(sql::SIGNING_KEYS)).fetch_all(conn).await?.iter().map(key_from_row).collect()
}

/// In the caller's write transaction (the writer lock held).
pub(super) async fn add_signing_key(
    tx: &mut PgConnection,
    seed: [u8; 32],
    how: KeyChange,
    change: &Change,
) -> StoreResult<StoredSigningKey> {
    if let (KeyChange::CreateIfNone, Some(in_use)) = (how, key_in_use(tx).await?) {
        return Ok(in_use);
    }
    let in_use = key_in_use(tx).await?;
    let last_signed: Option<i64> = match &in_use {
        Some(key) => sqlx::query_scalar(pg!(sql::LAST_SIGNED)).bind(&key.public.key_id).fetch_one(&mut *tx).await?,
        None => None,
    };
    let at = rotation_instant(change.at, in_use.as_ref(), last_signed);
    let key = StoredSigningKey::new(seed, at);
    sqlx::query(pg!(sql::RETIRE_KEYS)).bind(at.0).execute(&mut *tx).await?;
    sqlx::query(pg!(sql::INSERT_KEY))
        .bind(&key.public.key_id)
        .bind(key.public.public.as_slice())
        .bind(key.seed().map(|s| s.as_slice()))
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
    append_audit(tx, change, key_audit(&key, how)).await?;
    Ok(key)
}

/// In the caller's write transaction (the writer lock held, so numbers stay gapless).
pub(super) async fn record_checkpoint(
    tx: &mut PgConnection,
    heads: Vec<ChainHead>,
    at: Timestamp,
    slot: Option<i64>,
) -> StoreResult<Option<SignedCheckpoint>> {
    if let Some(slot) = slot
        && sqlx::query_scalar::<_, bool>(pg!(sql::SLOT_TAKEN)).bind(slot).fetch_one(&mut *tx).await?
    {
        return Ok(None);
    }
    let Some(key) = key_in_use(tx).await? else {
        return Err(no_key());
    };
    let number: i64 = sqlx::query_scalar(pg!(sql::NEXT_NUMBER)).fetch_one(&mut *tx).await?;
    let signed = seal(number as u64, at, heads, &key)?;
    let c = &signed.checkpoint;
    sqlx::query(pg!(sql::INSERT_CHECKPOINT))
        .bind(number)
        .bind(c.at.0)
        .bind(slot)
        .bind(&c.key_id)
        .bind(heads_json(c))
        .bind(signed.signature.as_slice())
        .execute(&mut *tx)
        .await?;
    Ok(Some(signed))
}

pub(super) async fn checkpoints(
    conn: &mut PgConnection,
    before: Option<u64>,
    count: usize,
) -> StoreResult<Vec<SignedCheckpoint>> {
    let before = before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let found = sqlx::query(pg!(sql::CHECKPOINTS))
        .bind(before)
        .bind(limit(count.min(crate::checkpoints::MAX_CHECKPOINTS_PER_READ)))
        .fetch_all(conn)
        .await?;
    found
        .iter()
        .map(|row| {
            let heads: String = row.try_get(3)?;
            stored(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, &heads, row.try_get(4)?)
        })
        .collect()
}

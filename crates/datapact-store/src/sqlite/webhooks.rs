//! Notifications and webhooks in SQLite: the outbox (raised once by dedupe key and fanned out to
//! the webhooks subscribed at that moment, in the transaction that raised it), claiming due
//! deliveries under a lease, and the delivery log.

use datapact_core::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{append_audit, unavailable};
use crate::notify::{
    AttemptOutcome, DueDelivery, NewNotification, NewWebhook, NotificationKind, StoredWebhook, WebhookAttempt,
    WebhookDeliveryRecord, check_webhook_url,
};
use crate::shared::sql;
use crate::{Change, StoreError, StoreResult};

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn kind_at(row: &Row<'_>, index: usize) -> rusqlite::Result<NotificationKind> {
    let text: String = row.get(index)?;
    NotificationKind::parse(&text).ok_or_else(|| conversion(index, format!("unknown notification kind {text:?}")))
}

fn events_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<NotificationKind>> {
    let text: String = row.get(index)?;
    let names: Vec<String> =
        serde_json::from_str(&text).map_err(|e| conversion(index, format!("stored webhook events: {e}")))?;
    names
        .iter()
        .map(|name| NotificationKind::parse(name).ok_or_else(|| conversion(index, format!("unknown event {name:?}"))))
        .collect()
}

fn timestamp_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp))
}

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<StoredWebhook> {
    Ok(StoredWebhook {
        id: row.get(0)?,
        licensee: row.get(1)?,
        url: row.get(2)?,
        secret: row.get(3)?,
        events: events_at(row, 4)?,
        created_at: Timestamp(row.get(5)?),
        removed_at: timestamp_at(row, 6)?,
    })
}

pub(super) fn webhooks(conn: &Connection) -> StoreResult<Vec<StoredWebhook>> {
    Ok(conn.prepare_cached(sql::WEBHOOKS)?.query_map([], webhook_from_row)?.collect::<Result<Vec<_>, _>>()?)
}

fn webhook(conn: &Connection, id: i64) -> StoreResult<StoredWebhook> {
    conn.prepare_cached(sql::WEBHOOK_BY_ID)?
        .query_row([id], webhook_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no webhook {id}; `datapact webhook list` shows them")))
}

pub(super) fn add_webhook(conn: &Connection, new: NewWebhook, change: &Change) -> StoreResult<StoredWebhook> {
    check_webhook_url(&new.url).map_err(StoreError::Invalid)?;
    if !new.secret.starts_with("whsec_") || new.secret.len() < 30 {
        return Err(StoreError::Invalid("a webhook secret is `whsec_` and at least 24 bytes of base64".into()));
    }
    let licensee_id = match &new.licensee {
        None => None,
        Some(name) => Some(super::billing::licensee_id(conn, name)?),
    };
    let mut events: Vec<&str> = new.events.iter().map(|kind| kind.as_str()).collect();
    events.sort_unstable();
    events.dedup();
    conn.prepare_cached(
        "INSERT INTO webhooks (licensee_id, url, secret, events, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![licensee_id, new.url, new.secret, json!(events).to_string(), change.at.0])?;
    let added = webhook(conn, conn.last_insert_rowid())?;
    let subject = new.licensee.as_deref().unwrap_or("platform");
    let entry = json!({ "id": added.id, "url": added.url, "events": added.events });
    append_audit(conn, change, "webhook.add", subject, None, Some(entry))?;
    Ok(added)
}

pub(super) fn remove_webhook(conn: &Connection, id: i64, change: &Change) -> StoreResult<StoredWebhook> {
    let existing = webhook(conn, id)?;
    if existing.removed_at.is_some() {
        return Ok(existing);
    }
    conn.execute(sql::REMOVE_WEBHOOK, params![id, change.at.0])?;
    conn.execute(sql::FAIL_REMOVED_DELIVERIES, params![id, change.at.0])?;
    let subject = existing.licensee.as_deref().unwrap_or("platform");
    let before = json!({ "id": existing.id, "url": existing.url, "events": existing.events });
    append_audit(conn, change, "webhook.remove", subject, Some(before), None)?;
    webhook(conn, id)
}

/// Raises a notification in the caller's transaction: once per dedupe key, with a pending delivery
/// to each webhook subscribed now (the licensee's own and the platform-wide ones). Returns whether
/// it was new.
pub(super) fn notify(conn: &Connection, notification: &NewNotification) -> StoreResult<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO notifications (dedupe_key, kind, licensee_id, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )?
        .execute(params![
            notification.dedupe_key,
            notification.kind.as_str(),
            notification.licensee_id,
            notification.payload.to_string(),
            notification.at.0
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO webhook_deliveries (notification_id, webhook_id, status, next_attempt_at)
         SELECT ?1, w.id, 'pending', ?2 FROM webhooks w
         WHERE w.removed_at IS NULL AND (w.licensee_id IS NULL OR w.licensee_id = ?3)
           AND (w.events = '[]' OR EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = ?4))",
    )?
    .execute(params![
        conn.last_insert_rowid(),
        notification.at.0,
        notification.licensee_id,
        notification.kind.as_str()
    ])?;
    Ok(true)
}

/// Claims up to `limit` pending deliveries due at `now`: each one's next attempt moves to
/// `now + lease_ms`, so another sender leaves it alone while this one tries.
pub(super) fn claim(conn: &Connection, now: Timestamp, lease_ms: i64, limit: usize) -> StoreResult<Vec<DueDelivery>> {
    let mut statement = conn.prepare_cached(sql::DUE_DELIVERIES)?;
    let due: Vec<DueDelivery> = statement
        .query_map(params![now.0, limit as i64], |row| {
            let payload: String = row.get(6)?;
            Ok(DueDelivery {
                notification_id: row.get(0)?,
                webhook_id: row.get(1)?,
                url: row.get(2)?,
                secret: row.get(3)?,
                kind: kind_at(row, 4)?,
                licensee: row.get(5)?,
                payload: serde_json::from_str(&payload)
                    .map_err(|e| conversion(6, format!("stored notification payload: {e}")))?,
                raised_at: Timestamp(row.get(7)?),
                attempts: row.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for delivery in &due {
        conn.prepare_cached(sql::LEASE_DELIVERY)?.execute(params![
            delivery.notification_id,
            delivery.webhook_id,
            now.0 + lease_ms
        ])?;
    }
    Ok(due)
}

pub(super) fn record_attempt(conn: &Connection, attempt: &WebhookAttempt) -> StoreResult<()> {
    let (status, next, delivered_at) = match attempt.outcome {
        AttemptOutcome::Delivered => ("delivered", attempt.at.0, Some(attempt.at.0)),
        AttemptOutcome::RetryAt(at) => ("pending", at.0, None),
        AttemptOutcome::Failed => ("failed", attempt.at.0, None),
    };
    let updated = conn.prepare_cached(sql::RECORD_ATTEMPT)?.execute(params![
        attempt.notification_id,
        attempt.webhook_id,
        status,
        next,
        attempt.at.0,
        attempt.status,
        attempt.error,
        delivered_at
    ])?;
    if updated == 0 {
        return Err(unavailable(format!(
            "no pending delivery of notification {} to webhook {}",
            attempt.notification_id, attempt.webhook_id
        )));
    }
    Ok(())
}

pub(super) fn deliveries(conn: &Connection, limit: usize) -> StoreResult<Vec<WebhookDeliveryRecord>> {
    let mut statement = conn.prepare_cached(sql::DELIVERY_LOG)?;
    let rows = statement
        .query_map([limit as i64], |row| {
            let status: String = row.get(5)?;
            let pending = status == "pending";
            Ok(WebhookDeliveryRecord {
                notification_id: row.get(0)?,
                kind: kind_at(row, 1)?,
                licensee: row.get(2)?,
                webhook_id: row.get(3)?,
                url: row.get(4)?,
                status,
                attempts: row.get(6)?,
                raised_at: Timestamp(row.get(7)?),
                last_attempt_at: timestamp_at(row, 8)?,
                last_status: row.get(9)?,
                last_error: row.get(10)?,
                next_attempt_at: if pending { timestamp_at(row, 11)? } else { None },
                delivered_at: timestamp_at(row, 12)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

//! Notifications and webhooks in PostgreSQL, as `sqlite/webhooks.rs` keeps them: the outbox
//! (raised once by dedupe key and fanned out to the webhooks subscribed at that moment, in the
//! transaction that raised it), claiming due deliveries under a lease, and the delivery log. Every
//! writer here runs in a transaction holding the writer lock, so a claim's read and its lease are
//! one step no other sender can come between.

use datapact_core::Timestamp;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{append_audit, decode, limit, rows};
use crate::notify::{
    AttemptOutcome, DueDelivery, NewNotification, NewWebhook, NotificationKind, StoredWebhook, WebhookAttempt,
    WebhookDeliveryRecord, check_webhook_url,
};
use crate::postgres::pg;
use crate::shared::{AuditDraft, sql, unavailable};
use crate::{Change, StoreError, StoreResult};

fn kind_at(row: &PgRow, index: usize) -> StoreResult<NotificationKind> {
    let text: String = row.try_get(index)?;
    NotificationKind::parse(&text).ok_or_else(|| decode(format!("unknown notification kind {text:?}")))
}

fn events_at(row: &PgRow, index: usize) -> StoreResult<Vec<NotificationKind>> {
    let text: String = row.try_get(index)?;
    let names: Vec<String> = serde_json::from_str(&text).map_err(|e| decode(format!("stored webhook events: {e}")))?;
    names
        .iter()
        .map(|name| NotificationKind::parse(name).ok_or_else(|| decode(format!("unknown event {name:?}"))))
        .collect()
}

fn time_at(row: &PgRow, index: usize) -> StoreResult<Option<Timestamp>> {
    Ok(row.try_get::<Option<i64>, _>(index)?.map(Timestamp))
}

fn attempts_at(row: &PgRow, index: usize) -> StoreResult<u32> {
    u32::try_from(row.try_get::<i64, _>(index)?).map_err(decode)
}

fn http_status_at(row: &PgRow, index: usize) -> StoreResult<Option<u16>> {
    row.try_get::<Option<i64>, _>(index)?.map(|status| u16::try_from(status).map_err(decode)).transpose()
}

fn webhook_at(row: &PgRow) -> StoreResult<StoredWebhook> {
    Ok(StoredWebhook {
        id: row.try_get(0)?,
        licensee: row.try_get(1)?,
        url: row.try_get(2)?,
        secret: row.try_get(3)?,
        events: events_at(row, 4)?,
        created_at: Timestamp(row.try_get(5)?),
        removed_at: time_at(row, 6)?,
    })
}

pub(super) async fn webhooks(conn: &mut PgConnection) -> StoreResult<Vec<StoredWebhook>> {
    rows(sqlx::query(pg!(sql::WEBHOOKS)).fetch_all(conn).await?, webhook_at)
}

async fn webhook(conn: &mut PgConnection, id: i64) -> StoreResult<StoredWebhook> {
    let row = sqlx::query(pg!(sql::WEBHOOK_BY_ID)).bind(id).fetch_optional(conn).await?;
    let row =
        row.ok_or_else(|| StoreError::NotFound(format!("no webhook {id}; `datapact webhook list` shows them")))?;
    webhook_at(&row)
}

pub(super) async fn add_webhook(
    conn: &mut PgConnection,
    new: NewWebhook,
    change: &Change,
) -> StoreResult<StoredWebhook> {
    check_webhook_url(&new.url).map_err(StoreError::Invalid)?;
    if !new.secret.starts_with("whsec_") || new.secret.len() < 30 {
        return Err(StoreError::Invalid("a webhook secret is `whsec_` and at least 24 bytes of base64".into()));
    }
    let licensee_id = match &new.licensee {
        None => None,
        Some(name) => Some(super::billing::licensee_id(conn, name).await?),
    };
    let mut events: Vec<&str> = new.events.iter().map(|kind| kind.as_str()).collect();
    events.sort_unstable();
    events.dedup();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (licensee_id, url, secret, events, created_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(licensee_id)
    .bind(&new.url)
    .bind(&new.secret)
    .bind(json!(events).to_string())
    .bind(change.at.0)
    .fetch_one(&mut *conn)
    .await?;
    let added = webhook(conn, id).await?;
    let subject = new.licensee.as_deref().unwrap_or("platform");
    let entry = json!({ "id": added.id, "url": added.url, "events": added.events });
    append_audit(conn, change, AuditDraft::after("webhook.add", subject, entry)).await?;
    Ok(added)
}

pub(super) async fn remove_webhook(conn: &mut PgConnection, id: i64, change: &Change) -> StoreResult<StoredWebhook> {
    let existing = webhook(conn, id).await?;
    if existing.removed_at.is_some() {
        return Ok(existing);
    }
    sqlx::query(pg!(sql::REMOVE_WEBHOOK)).bind(id).bind(change.at.0).execute(&mut *conn).await?;
    sqlx::query(pg!(sql::FAIL_REMOVED_DELIVERIES)).bind(id).bind(change.at.0).execute(&mut *conn).await?;
    let subject = existing.licensee.as_deref().unwrap_or("platform").to_owned();
    let before = json!({ "id": existing.id, "url": existing.url, "events": existing.events });
    let draft = AuditDraft { action: "webhook.remove", subject, before: Some(before), after: None };
    append_audit(conn, change, draft).await?;
    webhook(conn, id).await
}

/// Raises a notification in the caller's transaction: once per dedupe key, with a pending delivery
/// to each webhook subscribed now (the licensee's own and the platform-wide ones). Returns whether
/// it was new.
pub(super) async fn notify(conn: &mut PgConnection, notification: &NewNotification) -> StoreResult<bool> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO notifications (dedupe_key, kind, licensee_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(&notification.dedupe_key)
    .bind(notification.kind.as_str())
    .bind(notification.licensee_id)
    .bind(notification.payload.to_string())
    .bind(notification.at.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else { return Ok(false) };
    // `events` is the JSON array as written (TEXT, as in SQLite); jsonb reads it as SQLite's json_each does.
    sqlx::query(
        "INSERT INTO webhook_deliveries (notification_id, webhook_id, status, next_attempt_at)
         SELECT $1, w.id, 'pending', $2 FROM webhooks w
         WHERE w.removed_at IS NULL AND (w.licensee_id IS NULL OR w.licensee_id = $3)
           AND (w.events = '[]' OR w.events::jsonb @> jsonb_build_array($4::text))",
    )
    .bind(id)
    .bind(notification.at.0)
    .bind(notification.licensee_id)
    .bind(notification.kind.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Claims up to `limit` pending deliveries due at `now`: each one's next attempt moves to
/// `now + lease_ms`, so another sender leaves it alone while this one tries.
pub(super) async fn claim(
    conn: &mut PgConnection,
    now: Timestamp,
    lease_ms: i64,
    count: usize,
) -> StoreResult<Vec<DueDelivery>> {
    let found = sqlx::query(pg!(sql::DUE_DELIVERIES)).bind(now.0).bind(limit(count)).fetch_all(&mut *conn).await?;
    let due = rows(found, |row| {
        let payload: String = row.try_get(6)?;
        Ok(DueDelivery {
            notification_id: row.try_get(0)?,
            webhook_id: row.try_get(1)?,
            url: row.try_get(2)?,
            secret: row.try_get(3)?,
            kind: kind_at(row, 4)?,
            licensee: row.try_get(5)?,
            payload: serde_json::from_str(&payload).map_err(|e| decode(format!("stored notification payload: {e}")))?,
            raised_at: Timestamp(row.try_get(7)?),
            attempts: attempts_at(row, 8)?,
        })
    })?;
    for delivery in &due {
        sqlx::query(pg!(sql::LEASE_DELIVERY))
            .bind(delivery.notification_id)
            .bind(delivery.webhook_id)
            .bind(now.0.saturating_add(lease_ms))
            .execute(&mut *conn)
            .await?;
    }
    Ok(due)
}

pub(super) async fn record_attempt(conn: &mut PgConnection, attempt: &WebhookAttempt) -> StoreResult<()> {
    let (status, next, delivered_at) = match attempt.outcome {
        AttemptOutcome::Delivered => ("delivered", attempt.at.0, Some(attempt.at.0)),
        AttemptOutcome::RetryAt(at) => ("pending", at.0, None),
        AttemptOutcome::Failed => ("failed", attempt.at.0, None),
    };
    let updated = sqlx::query(pg!(sql::RECORD_ATTEMPT))
        .bind(attempt.notification_id)
        .bind(attempt.webhook_id)
        .bind(status)
        .bind(next)
        .bind(attempt.at.0)
        .bind(attempt.status.map(i64::from))
        .bind(&attempt.error)
        .bind(delivered_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(unavailable(format!(
            "no pending delivery of notification {} to webhook {}",
            attempt.notification_id, attempt.webhook_id
        )));
    }
    Ok(())
}

pub(super) async fn deliveries(conn: &mut PgConnection, count: usize) -> StoreResult<Vec<WebhookDeliveryRecord>> {
    let found = sqlx::query(pg!(sql::DELIVERY_LOG)).bind(limit(count)).fetch_all(conn).await?;
    rows(found, |row| {
        let status: String = row.try_get(5)?;
        let pending = status == "pending";
        Ok(WebhookDeliveryRecord {
            notification_id: row.try_get(0)?,
            kind: kind_at(row, 1)?,
            licensee: row.try_get(2)?,
            webhook_id: row.try_get(3)?,
            url: row.try_get(4)?,
            status,
            attempts: attempts_at(row, 6)?,
            raised_at: Timestamp(row.try_get(7)?),
            last_attempt_at: time_at(row, 8)?,
            last_status: http_status_at(row, 9)?,
            last_error: row.try_get(10)?,
            next_attempt_at: if pending { time_at(row, 11)? } else { None },
            delivered_at: time_at(row, 12)?,
        })
    })
}

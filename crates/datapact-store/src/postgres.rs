//! The PostgreSQL store (issue 9): the same [`Store`] contract as [`crate::SqliteStore`], on a
//! pool of `sqlx` connections.
//!
//! Semantics follow SQLite's exactly, and so does how they are kept:
//!
//! - **One writer at a time.** Every write transaction (except `record_key_use`, bookkeeping
//!   that only raises `last_used_at`) starts with `LOCK TABLE writer_lock IN EXCLUSIVE MODE` and
//!   holds it until it commits. That is SQLite's single writer: checks made before a write (a
//!   payment above what is outstanding, the next invoice number, the dunning state in the audit
//!   log) still hold when it commits. Readers never wait for it.
//! - **The feed is commit-ordered.** `post_revisions.seq` and `post_events.seq` are not taken
//!   from a sequence (a sequence hands out numbers in call order, and transactions commit in
//!   another): [`PgStore::ingest`] takes the writer lock first, then reads the largest `seq` of
//!   each table and numbers its rows from there. The next ingest waits for the lock, so it reads
//!   those rows committed and numbers above them; a row with `seq` N is therefore visible before
//!   any row with a higher `seq` commits, and [`Store::feed_watermark`] is exact, as in SQLite.
//! - **Triggers** keep the change counter, the append-only audit log, payments, credits and credit
//!   notes, and the gapless, never-edited invoices and credit notes (`postgres/0001_initial.sql`
//!   and the migrations after it), as SQLite's do.
//! - **Billing's notifications** (invoice issued, overdue and paid; licensee suspended and
//!   reinstated) are raised in the transaction of the billing change that causes them, as in
//!   SQLite; the outbox's dedupe key makes each once (`postgres/webhooks.rs`).
//! - **Schema versions** are recorded in `datapact_schema` and applied at connect, one
//!   transaction per version; a database newer than this binary is refused.
//!
//! Text is ordered `COLLATE "C"` (bytes, as SQLite's BINARY), never by the database's locale.
//!
//! Differences that cannot be helped: PostgreSQL's `text` cannot hold U+0000, so an ingest
//! record with a NUL character is refused (SQLite would keep it); and [`Store::backup_to`]
//! refuses, because a PostgreSQL database is backed up with `pg_dump`, not into a SQLite file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use datapact_core::ingest::{IngestRecord, NewPost};
use datapact_core::{
    Author, AuthorMetrics, KeyHash, KeyPrefix, KeyRecord, Licensee, LicenseeStatus, Post, PostId, Timestamp, UserId,
};
use datapact_ledger::{ChainHead, SignedCheckpoint};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

use crate::admin_users::{AdminSession, AdminUser, NewAdminSession, NewAdminUser};
use crate::checkpoints::{KeyChange, StoredSigningKey};
use crate::compliance::{ComplianceJob, DeletionNotice, DeletionViolation, NewComplianceJob, NewDeletionViolation};
use crate::notify::{DueDelivery, NewNotification, NewWebhook, StoredWebhook, WebhookAttempt, WebhookDeliveryRecord};
use crate::shared::{
    AuditDraft, KEY_COLUMNS, POST_COLUMNS, PostParts, USER_COLUMNS, check_block_reason, check_purpose, json_text,
    licensee_terms_after, no_licensee, opt_out_entry, parse_json, push_violation_sample, revision_number, sql, to_json,
    trace_finding, trace_finding_json, unavailable,
};
use crate::{
    AuditEntry, Change, CreditAdded, IngestEffect, InvoiceIssue, KeyGrant, LicenseeAccount, LicenseeTerms, NewCredit,
    NewCreditNote, NewInvoice, NewPayment, NewTraceFinding, PaymentRecorded, PostEvent, PostEventKind, RevisionEntry,
    Store, StoreError, StoreResult, StoreStats, StoredCredit, StoredCreditNote, StoredInvoice, StoredPayment,
    TermsChange, TermsState, TimelineQuery, TraceFinding, UserRecord, Violation, ViolationDay, ViolationEvent,
};

mod admin_users;
mod billing;
mod checkpoints;
mod compliance;
mod ingest;
mod webhooks;

/// A statement of `shared::sql` (SQLite's `?N` parameters) as PostgreSQL reads it (`$N`),
/// converted once per statement.
macro_rules! pg {
    ($sql:expr) => {{
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| $sql.replace('?', "$"));
        SQL.as_str()
    }};
}
pub(crate) use pg;

/// Schema versions, applied in order; `datapact_schema.version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_credits.sql"),
    include_str!("postgres/0003_webhooks.sql"),
    include_str!("postgres/0004_credit_notes.sql"),
    include_str!("postgres/0005_fingerprint_ring.sql"),
    include_str!("postgres/0006_ledger.sql"),
    include_str!("postgres/0007_compliance.sql"),
    include_str!("postgres/0008_migration_progress.sql"),
    include_str!("postgres/0009_checkpoints.sql"),
    include_str!("postgres/0010_admin_users.sql"),
    include_str!("postgres/0011_violation_days.sql"),
    include_str!("postgres/0012_deliveries_through_events.sql"),
];
/// Connections in the pool unless [`PgOptions::max_connections`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a caller waits for a connection before the store is unavailable (a 503): long enough
/// to ride out a busy pool, short enough that a server that is down is reported promptly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How to connect, beyond the URL.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The schema to keep datapact's tables in (created if missing), instead of the URL's
    /// `search_path` (`?options=-csearch_path%3Dname`) or the server's default (`public`).
    pub schema: Option<String>,
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { schema: None, max_connections: DEFAULT_MAX_CONNECTIONS }
    }
}

pub struct PgStore {
    pool: PgPool,
}

/// The advisory lock of the one-gateway slot. Advisory locks are database-wide: the schema is in
/// the name, so deployments in two schemas of one database do not exclude each other.
const GATEWAY_LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext('datapact gateway ' || current_schema()))";
/// The same lock, shared by the gateways that decide through one limiter.
const GATEWAY_LOCK_SHARED_SQL: &str =
    "SELECT pg_try_advisory_lock_shared(hashtext('datapact gateway ' || current_schema()))";

/// A gateway's hold on a PostgreSQL store ([`PgStore::claim_gateway`]); released when dropped (its
/// connection closes) — and when the connection is lost, which [`GatewayClaim::holds`] tells.
pub struct GatewayClaim {
    conn: sqlx::PgConnection,
    /// Held with other gateways that share a limiter (`--limiter`), rather than alone.
    shared: bool,
}

impl GatewayClaim {
    /// Whether it is held with other gateways sharing a limiter ([`PgStore::claim_gateway_shared`]).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether the claim still holds: its connection (the lock's session) still answers.
    pub async fn holds(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut self.conn).await.is_ok()
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // 22021 character_not_in_repertoire: a NUL character in a text parameter, which
        // PostgreSQL cannot hold (SQLite can): bad input, not an unavailable store.
        if let Some(database) = error.as_database_error()
            && database.code().as_deref() == Some("22021")
        {
            return StoreError::Invalid(format!("PostgreSQL cannot store this text: {}", database.message()));
        }
        unavailable(error)
    }
}

fn decode(error: impl std::fmt::Display) -> StoreError {
    unavailable(format!("a stored value does not read: {error}"))
}

/// A schema name we create and put in `search_path`: a plain lowercase identifier.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || schema.len() > 63
        || !schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::Invalid(format!(
            "schema {schema:?} is not a plain PostgreSQL name (a-z, 0-9 and _, not starting with a digit, ≤ 63)"
        )));
    }
    Ok(())
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, optionally
    /// `?options=-csearch_path%3Dschema`) and brings its schema up to date.
    /// Holds, while the returned guard lives, the store's one gateway slot: a session advisory
    /// lock on a connection of its own. Metering (the ledger, its month counts and chain head)
    /// still lives in each gateway's data directory, so two gateways on one store would each cap
    /// and bill on their own: a second one is refused until the ledger is shared (issue 9).
    pub async fn claim_gateway(&self) -> StoreResult<GatewayClaim> {
        let mut conn = self.pool.acquire().await?.detach();
        let claimed: bool = sqlx::query_scalar(GATEWAY_LOCK_SQL).fetch_one(&mut conn).await?;
        if !claimed {
            return Err(StoreError::Conflict(
                "another gateway is serving from this PostgreSQL store: without a shared limiter each gateway \
                 decides caps on its own, so one serves a store at a time (stop the other, or run every gateway \
                 with --limiter)"
                    .into(),
            ));
        }
        Ok(GatewayClaim { conn, shared: false })
    }

    /// The store's gateway slot, held *with* the other gateways that share a limiter: refused while
    /// a gateway without one serves the store (it decides caps in its own memory), and it keeps such
    /// a gateway from starting.
    pub async fn claim_gateway_shared(&self) -> StoreResult<GatewayClaim> {
        let mut conn = self.pool.acquire().await?.detach();
        let claimed: bool = sqlx::query_scalar(GATEWAY_LOCK_SHARED_SQL).fetch_one(&mut conn).await?;
        if !claimed {
            return Err(StoreError::Conflict(
                "another gateway is serving from this PostgreSQL store alone, without --limiter: it decides caps in \
                 its own memory, so no other may serve beside it (stop it, or restart it with --limiter)"
                    .into(),
            ));
        }
        Ok(GatewayClaim { conn, shared: true })
    }

    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PgOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: PgOptions) -> StoreResult<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // Not echoed: a URL may carry a password.
            return Err(StoreError::Invalid(
                "the store URL is not a PostgreSQL URL: postgres://user@host:port/db".into(),
            ));
        }
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("not a PostgreSQL URL ({e}): postgres://user@host:port/db")))?;
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(connect.clone())
                .await
                .map_err(|e| unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&pool).await?;
            pool.close().await;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect)
            .await
            .map_err(|e| unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        if let Err(error) = migrate(&pool).await {
            pool.close().await;
            return Err(error);
        }
        Ok(PgStore { pool })
    }

    /// The connection pool (the ledger reads through it and copies its connect options).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `database.schema`: what names this deployment among others on the same server (the shared
    /// limiter keeps its keys under it).
    pub async fn deployment_name(&self) -> StoreResult<String> {
        Ok(sqlx::query_scalar("SELECT current_database() || '.' || current_schema()").fetch_one(&self.pool).await?)
    }

    /// The schema version of the database (how many migrations ran).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT version FROM datapact_schema").fetch_one(&self.pool).await?)
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction: the writer lock is taken before anything else (see the module docs).
    async fn write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        // Waiting for the lock (or any row lock after it) gives up after 10 s, as SQLite's busy timeout.
        sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
        sqlx::query("LOCK TABLE writer_lock IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// Ends a transaction: commits when `result` is a success, else rolls back at once (a dropped
/// transaction would keep its locks, the writer lock among them, until its connection is next used).
async fn finish<T>(tx: Transaction<'static, Postgres>, result: StoreResult<T>) -> StoreResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(%rollback, "rolling back a failed PostgreSQL transaction failed");
            }
            Err(error)
        }
    }
}

/// Brings the database's current schema to the newest of [`MIGRATIONS`], one transaction per
/// version, each under a transaction-scoped advisory lock named after the schema (so processes
/// starting together apply each version once); refuses a newer database.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    loop {
        let mut tx = pool.begin().await?;
        let result = migrate_one(&mut tx).await;
        if finish(tx, result).await? {
            return Ok(());
        }
    }
}

/// Applies the next migration, if any; `true` when the schema is up to date.
async fn migrate_one(conn: &mut PgConnection) -> StoreResult<bool> {
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut *conn).await?;
    let Some(schema) = schema else {
        return Err(StoreError::Invalid(
            "the connection's search_path names no existing schema: create it, or name one to create".into(),
        ));
    };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('datapact schema ' || $1))")
        .bind(&schema)
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS datapact_schema (version BIGINT NOT NULL)").execute(&mut *conn).await?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM datapact_schema").fetch_one(&mut *conn).await?;
    let version = version.unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(unavailable(format!(
            "the store has schema version {version}, newer than this datapact knows ({known}); upgrade datapact"
        )));
    }
    if version == known {
        return Ok(true);
    }
    sqlx::raw_sql(MIGRATIONS[version as usize]).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM datapact_schema").execute(&mut *conn).await?;
    sqlx::query("INSERT INTO datapact_schema (version) VALUES ($1)").bind(version + 1).execute(&mut *conn).await?;
    tracing::info!(version = version + 1, schema, "applied PostgreSQL store migration");
    Ok(false)
}

fn post_at(row: &PgRow) -> StoreResult<Post> {
    let count = |index: usize| row.try_get::<i64, _>(index);
    let parts = PostParts {
        id: row.try_get(0)?,
        author_id: row.try_get(1)?,
        text: row.try_get(2)?,
        revision: row.try_get(3)?,
        created_at: row.try_get(4)?,
        lang: row.try_get(5)?,
        conversation_id: row.try_get(6)?,
        in_reply_to_user_id: row.try_get(7)?,
        referenced_posts: row.try_get(8)?,
        edit_history: row.try_get(9)?,
        counts: [count(10)?, count(11)?, count(12)?, count(13)?, count(14)?, count(15)?],
        deleted_at: row.try_get(16)?,
    };
    parts.into_post().map_err(decode)
}

fn user_at(row: &PgRow) -> StoreResult<UserRecord> {
    let count = |index: usize| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(index)?.max(0) as u64) };
    Ok(UserRecord {
        author: Author {
            id: UserId::new(row.try_get(0)?),
            username: row.try_get(1)?,
            name: row.try_get(2)?,
            created_at: Timestamp(row.try_get(3)?),
            description: row.try_get(4)?,
            location: row.try_get(5)?,
            verified: row.try_get(6)?,
            protected: row.try_get(7)?,
            metrics: AuthorMetrics { followers_count: count(8)?, following_count: count(9)?, listed_count: count(10)? },
        },
        post_count: count(11)?,
    })
}

fn licensee_at(row: &PgRow) -> StoreResult<Licensee> {
    let status: String = row.try_get(2)?;
    Ok(Licensee {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        status: LicenseeStatus::parse(&status).unwrap_or(LicenseeStatus::Blocked),
        created_at: Timestamp(row.try_get(3)?),
    })
}

fn key_at(row: &PgRow) -> StoreResult<KeyRecord> {
    let time =
        |index: usize| -> StoreResult<Option<Timestamp>> { Ok(row.try_get::<Option<i64>, _>(index)?.map(Timestamp)) };
    Ok(KeyRecord {
        prefix: KeyPrefix(row.try_get(0)?),
        licensee: row.try_get(1)?,
        purpose: row.try_get(8)?,
        created_at: Timestamp(row.try_get(2)?),
        expires_at: time(3)?,
        revoked_at: time(4)?,
        last_used_at: time(5)?,
    })
}

fn licensee_terms_at(row: &PgRow) -> StoreResult<LicenseeTerms> {
    let status: String = row.try_get(1)?;
    Ok(LicenseeTerms {
        id: row.try_get(4)?,
        name: row.try_get(0)?,
        status: LicenseeStatus::parse(&status).unwrap_or(LicenseeStatus::Blocked),
        reason: row.try_get(2)?,
        terms: parse_json(row.try_get(3)?),
    })
}

fn rows<T>(rows: Vec<PgRow>, read: impl Fn(&PgRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(read).collect()
}

fn limit(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

/// Appends one audit entry in the caller's transaction, so a change and its record commit together.
async fn append_audit(conn: &mut PgConnection, change: &Change, draft: AuditDraft) -> StoreResult<()> {
    append_audit_seq(conn, change, draft).await.map(drop)
}

/// [`append_audit`], returning the entry's `seq`.
async fn append_audit_seq(conn: &mut PgConnection, change: &Change, draft: AuditDraft) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(pg!(format!("{} RETURNING seq", sql::INSERT_AUDIT)))
        .bind(change.at.0)
        .bind(&change.actor)
        .bind(draft.action)
        .bind(&draft.subject)
        .bind(draft.before.as_ref().map(json_text))
        .bind(draft.after.as_ref().map(json_text))
        .fetch_one(conn)
        .await?)
}

/// PostgreSQL's `text` cannot hold U+0000.
fn nul_in_post(post: &NewPost) -> Option<&'static str> {
    let nul = |text: &str| text.contains('\0');
    if nul(&post.text) {
        return Some("text");
    }
    if post.lang.as_deref().is_some_and(nul) {
        return Some("lang");
    }
    let author = post.author.as_ref()?;
    if nul(&author.name) || nul(&author.description) || author.location.as_deref().is_some_and(nul) {
        return Some("author");
    }
    None
}

async fn insert_licensee(conn: &mut PgConnection, name: &str, change: &Change) -> StoreResult<Licensee> {
    let row = sqlx::query(
        "INSERT INTO licensees (name, status, created_at) VALUES ($1, 'active', $2) ON CONFLICT (name) DO NOTHING
         RETURNING id, name, status, created_at",
    )
    .bind(name)
    .bind(change.at.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::Conflict(format!("licensee {name:?} already exists")));
    };
    let licensee = licensee_at(&row)?;
    append_audit(conn, change, AuditDraft::after("licensee.create", name, to_json(&licensee))).await?;
    Ok(licensee)
}

async fn licensee_terms(conn: &mut PgConnection, name: &str) -> StoreResult<Option<LicenseeTerms>> {
    let row = sqlx::query("SELECT name, status, reason, terms, id FROM licensees WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(licensee_terms_at).transpose()
}

async fn text_column(conn: &mut PgConnection, sql: &str, key: &str) -> StoreResult<Option<serde_json::Value>> {
    let text: Option<String> = sqlx::query_scalar(sql).bind(key).fetch_optional(conn).await?;
    Ok(parse_json(text))
}

async fn apply_terms_change(conn: &mut PgConnection, item: TermsChange, change: &Change) -> StoreResult<()> {
    match item {
        TermsChange::PutPlan { name, body } => {
            let before = text_column(conn, "SELECT body FROM plans WHERE name = $1", &name).await?;
            if before.as_ref() == Some(&body) {
                return Ok(());
            }
            sqlx::query(pg!(sql::UPSERT_PLAN))
                .bind(&name)
                .bind(json_text(&body))
                .bind(change.at.0)
                .execute(&mut *conn)
                .await?;
            append_audit(conn, change, AuditDraft { action: "plan.put", subject: name, before, after: Some(body) })
                .await
        }
        TermsChange::DeletePlan { name } => {
            let before = text_column(conn, "SELECT body FROM plans WHERE name = $1", &name).await?;
            if before.is_none() {
                return Ok(());
            }
            sqlx::query("DELETE FROM plans WHERE name = $1").bind(&name).execute(&mut *conn).await?;
            append_audit(conn, change, AuditDraft { action: "plan.delete", subject: name, before, after: None }).await
        }
        TermsChange::PutLicensee { name, terms, status } => {
            datapact_core::licensee::validate_licensee_name(&name).map_err(StoreError::Invalid)?;
            if licensee_terms(conn, &name).await?.is_none() {
                insert_licensee(conn, &name, change).await?;
            }
            let before = licensee_terms(conn, &name).await?.ok_or_else(|| StoreError::NotFound(name.clone()))?;
            let after = licensee_terms_after(&before, terms, status);
            if after == before {
                return Ok(());
            }
            sqlx::query("UPDATE licensees SET terms = $2, status = $3, reason = $4 WHERE name = $1")
                .bind(&name)
                .bind(after.terms.as_ref().map(json_text))
                .bind(after.status.as_str())
                .bind(&after.reason)
                .execute(&mut *conn)
                .await?;
            let draft = AuditDraft {
                action: "licensee.terms",
                subject: name,
                before: Some(to_json(&before)),
                after: Some(to_json(&after)),
            };
            append_audit(conn, change, draft).await
        }
        TermsChange::PutPriceBooks { body } => {
            let before: Option<String> =
                sqlx::query_scalar("SELECT body FROM price_books WHERE id = 1").fetch_optional(&mut *conn).await?;
            let before = parse_json(before);
            if before.as_ref() == Some(&body) {
                return Ok(());
            }
            sqlx::query(pg!(sql::UPSERT_PRICE_BOOKS))
                .bind(json_text(&body))
                .bind(change.at.0)
                .execute(&mut *conn)
                .await?;
            let draft =
                AuditDraft { action: "price_book.put", subject: "price_books".into(), before, after: Some(body) };
            append_audit(conn, change, draft).await
        }
        TermsChange::ClearLicensee { name } => {
            let Some(before) = licensee_terms(conn, &name).await? else { return Ok(()) };
            if before.terms.is_none() {
                return Ok(());
            }
            sqlx::query("UPDATE licensees SET terms = NULL WHERE name = $1").bind(&name).execute(&mut *conn).await?;
            let after = LicenseeTerms { terms: None, ..before.clone() };
            let draft = AuditDraft {
                action: "licensee.terms",
                subject: name,
                before: Some(to_json(&before)),
                after: Some(to_json(&after)),
            };
            append_audit(conn, change, draft).await
        }
    }
}

async fn key_by_prefix(conn: &mut PgConnection, prefix: &KeyPrefix) -> StoreResult<Option<KeyRecord>> {
    let row = sqlx::query(pg!(sql::KEY_BY_PREFIX)).bind(&prefix.0).fetch_optional(conn).await?;
    row.as_ref().map(key_at).transpose()
}

fn event_at(row: &PgRow) -> StoreResult<PostEvent> {
    let kind: String = row.try_get(2)?;
    let kind = match kind.as_str() {
        "corrected" => {
            let revision: Option<i64> = row.try_get(3)?;
            PostEventKind::Corrected { revision: revision_number(revision.unwrap_or(0)).map_err(decode)? }
        }
        _ => PostEventKind::Deleted,
    };
    Ok(PostEvent { seq: row.try_get(0)?, post_id: PostId::new(row.try_get(1)?), kind, at: Timestamp(row.try_get(4)?) })
}

fn trace_finding_at(row: &PgRow) -> StoreResult<TraceFinding> {
    let json = [row.try_get(3)?, row.try_get(5)?, row.try_get(6)?];
    Ok(trace_finding(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, json, row.try_get(4)?))
}

#[async_trait]
impl Store for PgStore {
    async fn ingest(&self, records: Vec<IngestRecord>, now: Timestamp) -> StoreResult<Vec<IngestEffect>> {
        // The writer lock first, then the last seqs: see the module docs (the feed is commit-ordered).
        let mut tx = self.write().await?;
        let result = ingest::ingest(&mut tx, records, now).await;
        finish(tx, result).await
    }

    async fn posts_by_ids(&self, ids: &[PostId]) -> StoreResult<Vec<Post>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect::<HashSet<_>>().into_iter().collect();
        let sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE id = ANY($1)");
        rows(sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await?, post_at)
    }

    async fn live_post_revisions(&self, ids: &[PostId]) -> StoreResult<Vec<(PostId, u32, UserId)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> =
            ids.iter().map(|id| id.get()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let found = sqlx::query("SELECT id, revision, author_id FROM posts WHERE id = ANY($1) AND deleted_at IS NULL")
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows(found, |row| {
            let revision = revision_number(row.try_get(1)?).map_err(decode)?;
            Ok((PostId::new(row.try_get(0)?), revision, UserId::new(row.try_get(2)?)))
        })
    }

    async fn timeline(&self, author: UserId, query: TimelineQuery) -> StoreResult<Vec<Post>> {
        let mut sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE author_id = $1 AND deleted_at IS NULL");
        let mut values: Vec<i64> = vec![author.get()];
        let mut condition = |clause: &str, value: Option<i64>| {
            if let Some(value) = value {
                values.push(value);
                sql.push_str(&format!(" AND {clause} ${}", values.len()));
            }
        };
        condition("id <", query.before_id.map(PostId::get));
        condition("id >", query.after_id.map(PostId::get));
        condition("created_at >=", query.start_time.map(|t| t.0));
        condition("created_at <", query.end_time.map(|t| t.0));
        values.push(limit(query.limit));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
        let mut statement = sqlx::query(&sql);
        for value in values {
            statement = statement.bind(value);
        }
        rows(statement.fetch_all(&self.pool).await?, post_at)
    }

    async fn recent_posts(&self, count: usize) -> StoreResult<Vec<Post>> {
        let sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE deleted_at IS NULL ORDER BY id DESC LIMIT $1");
        rows(sqlx::query(&sql).bind(limit(count)).fetch_all(&self.pool).await?, post_at)
    }

    async fn revisions_after(&self, after: i64, count: usize) -> StoreResult<Vec<RevisionEntry>> {
        let found = sqlx::query(pg!(sql::REVISIONS_AFTER)).bind(after).bind(limit(count)).fetch_all(&self.pool).await?;
        rows(found, |row| {
            let mut post = post_at(row)?;
            post.text = row.try_get(19)?;
            post.revision = revision_number(row.try_get(20)?).map_err(decode)?;
            Ok(RevisionEntry { seq: row.try_get(17)?, ingested_at: Timestamp(row.try_get(18)?), post })
        })
    }

    async fn first_revision_since(&self, since: Timestamp) -> StoreResult<i64> {
        // As SQLite's walk back from the newest revision: the first revision after the newest one
        // ingested before `since` (or the next seq to come). The inner query walks the primary key
        // backwards and stops at that revision, a few pages for a stream's backfill.
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(
                (SELECT seq FROM post_revisions WHERE seq > COALESCE(
                    (SELECT seq FROM post_revisions WHERE ingested_at < $1 ORDER BY seq DESC LIMIT 1), 0)
                 ORDER BY seq LIMIT 1),
                (SELECT COALESCE(MAX(seq), 0) + 1 FROM post_revisions))",
        )
        .bind(since.0)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn events_after(&self, after: i64, count: usize) -> StoreResult<Vec<PostEvent>> {
        let found = sqlx::query(pg!(sql::EVENTS_AFTER)).bind(after).bind(limit(count)).fetch_all(&self.pool).await?;
        rows(found, event_at)
    }

    async fn feed_watermark(&self) -> StoreResult<Option<(i64, i64)>> {
        // One statement, one snapshot. Exact because the feed is commit-ordered (module docs):
        // every writer of post_revisions and post_events holds the writer lock from before it
        // numbers its rows until it commits.
        let heads = sqlx::query_as(sql::FEED_HEADS).fetch_one(&self.pool).await?;
        Ok(Some(heads))
    }

    async fn users_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect::<HashSet<_>>().into_iter().collect();
        let sql = format!("SELECT {USER_COLUMNS} FROM authors a WHERE a.id = ANY($1)");
        rows(sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await?, user_at)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        if !username.is_ascii() || username.contains('\0') {
            // Stored usernames are ASCII (datapact_core::ingest) and SQLite's NOCASE folds ASCII
            // only, so nothing else matches there; lower() would fold e.g. U+212A to `k`.
            return Ok(None);
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM authors a WHERE lower(a.username) = lower($1)");
        let row = sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_at).transpose()
    }

    async fn create_licensee(&self, name: &str, change: &Change) -> StoreResult<Licensee> {
        datapact_core::licensee::validate_licensee_name(name).map_err(StoreError::Invalid)?;
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let licensee = insert_licensee(&mut tx, name, change).await?;
            Ok(licensee)
        }
        .await;
        finish(tx, result).await
    }

    async fn licensees(&self) -> StoreResult<Vec<Licensee>> {
        let found = sqlx::query("SELECT id, name, status, created_at FROM licensees ORDER BY name COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        rows(found, licensee_at)
    }

    async fn licensee(&self, name: &str) -> StoreResult<Option<Licensee>> {
        if name.contains('\0') {
            return Ok(None); // no stored name holds one
        }
        let row = sqlx::query("SELECT id, name, status, created_at FROM licensees WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(licensee_at).transpose()
    }

    async fn insert_key(
        &self,
        licensee: &str,
        prefix: &KeyPrefix,
        hash: KeyHash,
        purpose: &str,
        expires_at: Option<Timestamp>,
        change: &Change,
    ) -> StoreResult<KeyRecord> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let licensee_id: i64 = sqlx::query_scalar("SELECT id FROM licensees WHERE name = $1")
                .bind(licensee)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| no_licensee(licensee))?;
            let inserted = sqlx::query(
                "INSERT INTO api_keys (licensee_id, prefix, hash, purpose, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(licensee_id)
            .bind(&prefix.0)
            .bind(hash.0.as_slice())
            .bind(purpose)
            .bind(change.at.0)
            .bind(expires_at.map(|t| t.0))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("key prefix {prefix} is taken")));
            }
            let record = KeyRecord {
                prefix: prefix.clone(),
                licensee: licensee.to_owned(),
                purpose: purpose.to_owned(),
                created_at: change.at,
                expires_at,
                revoked_at: None,
                last_used_at: None,
            };
            append_audit(&mut tx, change, AuditDraft::after("key.issue", record.prefix.0.clone(), to_json(&record)))
                .await?;
            Ok(record)
        }
        .await;
        finish(tx, result).await
    }

    async fn keys(&self, licensee: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        rows(sqlx::query(pg!(sql::KEYS_OF)).bind(licensee).fetch_all(&self.pool).await?, key_at)
    }

    async fn revoke_key(&self, prefix: &KeyPrefix, change: &Change) -> StoreResult<KeyRecord> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let before = key_by_prefix(&mut tx, prefix)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no key with prefix {prefix}")))?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE prefix = $1")
                .bind(&prefix.0)
                .bind(change.at.0)
                .execute(&mut *tx)
                .await?;
            let after = key_by_prefix(&mut tx, prefix).await?.ok_or_else(|| unavailable("the key vanished"))?;
            let draft = AuditDraft {
                action: "key.revoke",
                subject: prefix.0.clone(),
                before: Some(to_json(&before)),
                after: Some(to_json(&after)),
            };
            append_audit(&mut tx, change, draft).await?;
            Ok(after)
        }
        .await;
        finish(tx, result).await
    }

    async fn key_grants(&self) -> StoreResult<Vec<KeyGrant>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k JOIN licensees l ON l.id = k.licensee_id");
        rows(sqlx::query(&sql).fetch_all(&self.pool).await?, |row| {
            let hash: Vec<u8> = row.try_get(6)?;
            let hash: [u8; 32] = hash.try_into().map_err(|_| decode("key hash is not 32 bytes"))?;
            Ok(KeyGrant { hash: KeyHash(hash), record: key_at(row)?, licensee_id: row.try_get(7)? })
        })
    }

    async fn record_key_use(&self, uses: Vec<(KeyPrefix, Timestamp)>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // Bookkeeping: no writer lock (it decides nothing). One row update per key, in prefix
        // order so two batches never wait on each other's rows in opposite orders.
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        for (prefix, at) in uses {
            let entry = latest.entry(prefix.0).or_insert(at.0);
            *entry = (*entry).max(at.0);
        }
        let mut tx = self.pool.begin().await?;
        let result: StoreResult<_> = async {
            for (prefix, at) in latest {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $2) WHERE prefix = $1",
                )
                .bind(prefix)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn terms_state(&self) -> StoreResult<TermsState> {
        // One snapshot for the three reads, as SQLite's single read transaction gives.
        let mut tx = self.pool.begin().await?;
        let result: StoreResult<_> = async {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
            let plans =
                sqlx::query("SELECT name, body FROM plans ORDER BY name COLLATE \"C\"").fetch_all(&mut *tx).await?;
            let plans =
                rows(plans, |row| Ok((row.try_get::<String, _>(0)?, parse_json(row.try_get(1)?).unwrap_or_default())))?;
            let licensees =
                sqlx::query("SELECT name, status, reason, terms, id FROM licensees ORDER BY name COLLATE \"C\"")
                    .fetch_all(&mut *tx)
                    .await?;
            let licensees = rows(licensees, licensee_terms_at)?;
            let price_books: Option<String> =
                sqlx::query_scalar("SELECT body FROM price_books WHERE id = 1").fetch_optional(&mut *tx).await?;
            Ok(TermsState { plans, licensees, price_books: parse_json(price_books) })
        }
        .await;
        finish(tx, result).await
    }

    async fn apply_terms(&self, changes: Vec<TermsChange>, change: &Change) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            for item in changes {
                apply_terms_change(&mut tx, item, change).await?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn set_licensee_status(
        &self,
        name: &str,
        status: LicenseeStatus,
        reason: &str,
        change: &Change,
    ) -> StoreResult<Licensee> {
        check_block_reason(status, reason)?;
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let before = licensee_terms(&mut tx, name).await?.ok_or_else(|| no_licensee(name))?;
            sqlx::query("UPDATE licensees SET status = $2, reason = $3 WHERE name = $1")
                .bind(name)
                .bind(status.as_str())
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            let after = LicenseeTerms { status, reason: reason.to_owned(), ..before.clone() };
            if after != before {
                let action = if status == LicenseeStatus::Blocked { "licensee.block" } else { "licensee.unblock" };
                let draft = AuditDraft {
                    action,
                    subject: name.to_owned(),
                    before: Some(to_json(&before)),
                    after: Some(to_json(&after)),
                };
                append_audit(&mut tx, change, draft).await?;
            }
            let row = sqlx::query("SELECT id, name, status, created_at FROM licensees WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            let licensee = licensee_at(&row)?;
            Ok(licensee)
        }
        .await;
        finish(tx, result).await
    }

    async fn set_opt_out(&self, author: UserId, purpose: &str, opted_out: bool, change: &Change) -> StoreResult<()> {
        check_purpose(purpose)?;
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM authors WHERE id = $1")
                .bind(author.get())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("no author with id {author}")));
            }
            let statement = if opted_out {
                sqlx::query(pg!(sql::INSERT_OPT_OUT)).bind(author.get()).bind(purpose).bind(change.at.0)
            } else {
                sqlx::query("DELETE FROM author_opt_outs WHERE author_id = $1 AND purpose = $2")
                    .bind(author.get())
                    .bind(purpose)
            };
            if statement.execute(&mut *tx).await?.rows_affected() > 0 {
                append_audit(&mut tx, change, opt_out_entry(author, purpose, opted_out)).await?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn opt_outs(&self) -> StoreResult<Vec<(UserId, String)>> {
        let found = sqlx::query("SELECT author_id, purpose FROM author_opt_outs").fetch_all(&self.pool).await?;
        rows(found, |row| Ok((UserId::new(row.try_get(0)?), row.try_get(1)?)))
    }

    async fn record_violations(&self, events: Vec<ViolationEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // The writer lock keeps each row's read-modify-write of its samples whole.
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            for event in events {
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT samples FROM violations WHERE licensee_id = $1 AND kind = $2")
                        .bind(event.licensee_id)
                        .bind(&event.kind)
                        .fetch_optional(&mut *tx)
                        .await?;
                let samples = push_violation_sample(existing.as_deref(), &event)?;
                sqlx::query(pg!(sql::UPSERT_VIOLATION))
                    .bind(event.licensee_id)
                    .bind(&event.kind)
                    .bind(event.at.0)
                    .bind(samples)
                    .execute(&mut *tx)
                    .await?;
                let day = crate::day_start(event.at);
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT samples FROM violation_days WHERE licensee_id = $1 AND kind = $2 AND day_start = $3",
                )
                .bind(event.licensee_id)
                .bind(&event.kind)
                .bind(day.0)
                .fetch_optional(&mut *tx)
                .await?;
                let samples = push_violation_sample(existing.as_deref(), &event)?;
                sqlx::query(pg!(sql::UPSERT_VIOLATION_DAY))
                    .bind(event.licensee_id)
                    .bind(&event.kind)
                    .bind(day.0)
                    .bind(event.at.0)
                    .bind(samples)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn violations(&self, licensee: Option<&str>) -> StoreResult<Vec<Violation>> {
        let found = sqlx::query(
            "SELECT l.name, v.kind, v.count, v.first_at, v.last_at, v.samples FROM violations v
             JOIN licensees l ON l.id = v.licensee_id WHERE $1::text IS NULL OR l.name = $1 ORDER BY l.name COLLATE \"C\", v.kind COLLATE \"C\"",
        )
        .bind(licensee)
        .fetch_all(&self.pool)
        .await?;
        rows(found, |row| {
            let samples: String = row.try_get(5)?;
            Ok(Violation {
                licensee: row.try_get(0)?,
                kind: row.try_get(1)?,
                count: row.try_get::<i64, _>(2)?.max(0) as u64,
                first_at: Timestamp(row.try_get(3)?),
                last_at: Timestamp(row.try_get(4)?),
                samples: serde_json::from_str(&samples).unwrap_or_default(),
            })
        })
    }

    async fn violation_days(
        &self,
        licensee_id: Option<i64>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ViolationDay>> {
        let found = sqlx::query(pg!(sql::SELECT_VIOLATION_DAYS))
            .bind(licensee_id)
            .bind(from.0)
            .bind(until.0)
            .fetch_all(&self.pool)
            .await?;
        rows(found, |row| {
            let samples: String = row.try_get(6)?;
            Ok(ViolationDay {
                licensee_id: row.try_get(0)?,
                kind: row.try_get(1)?,
                day_start: Timestamp(row.try_get(2)?),
                count: row.try_get::<i64, _>(3)?.max(0) as u64,
                first_at: Timestamp(row.try_get(4)?),
                last_at: Timestamp(row.try_get(5)?),
                samples: serde_json::from_str(&samples).unwrap_or_default(),
            })
        })
    }

    async fn record_trace_finding(&self, finding: NewTraceFinding) -> StoreResult<i64> {
        let [leak_files, accused, report] = trace_finding_json(&finding)?;
        Ok(sqlx::query_scalar(pg!(format!("{} RETURNING id", sql::INSERT_TRACE_FINDING)))
            .bind(finding.at.0)
            .bind(&finding.actor)
            .bind(leak_files)
            .bind(&finding.outcome)
            .bind(accused)
            .bind(report)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn trace_findings(&self, count: usize) -> StoreResult<Vec<TraceFinding>> {
        let found = sqlx::query(pg!(sql::TRACE_FINDINGS)).bind(limit(count)).fetch_all(&self.pool).await?;
        rows(found, trace_finding_at)
    }

    async fn issue_invoices(&self, invoices: Vec<NewInvoice>, change: &Change) -> StoreResult<InvoiceIssue> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let outcome = billing::issue(&mut tx, invoices, change).await?;
            Ok(outcome)
        }
        .await;
        finish(tx, result).await
    }

    async fn invoices(
        &self,
        licensee: Option<&str>,
        month: Option<datapact_billing::Month>,
    ) -> StoreResult<Vec<StoredInvoice>> {
        let mut conn = self.pool.acquire().await?;
        billing::invoices(&mut conn, licensee, month, None).await
    }

    async fn invoice(&self, number: &str) -> StoreResult<Option<StoredInvoice>> {
        let mut conn = self.pool.acquire().await?;
        Ok(billing::invoices(&mut conn, None, None, Some(number)).await?.pop())
    }

    async fn record_payment(&self, payment: NewPayment, change: &Change) -> StoreResult<PaymentRecorded> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let recorded = billing::record_payment(&mut tx, payment, change).await?;
            Ok(recorded)
        }
        .await;
        finish(tx, result).await
    }

    async fn void_invoice(&self, number: &str, reason: &str, change: &Change) -> StoreResult<StoredInvoice> {
        let mut tx = self.write().await?;
        let result = billing::void_invoice(&mut tx, number, reason, change).await;
        finish(tx, result).await
    }

    async fn issue_credit_note(&self, note: NewCreditNote, change: &Change) -> StoreResult<StoredCreditNote> {
        let mut tx = self.write().await?;
        let result = billing::issue_credit_note(&mut tx, note, change).await;
        finish(tx, result).await
    }

    async fn credit_notes(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCreditNote>> {
        let mut conn = self.pool.acquire().await?;
        billing::credit_notes(&mut conn, licensee).await
    }

    async fn add_credit(&self, credit: NewCredit, change: &Change) -> StoreResult<CreditAdded> {
        let mut tx = self.write().await?;
        let result = billing::add_credit(&mut tx, credit, change).await;
        finish(tx, result).await
    }

    async fn credits(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCredit>> {
        let mut conn = self.pool.acquire().await?;
        billing::credits(&mut conn, licensee).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn fingerprint_ring(&self) -> StoreResult<Option<String>> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_scalar(pg!(sql::FINGERPRINT_RING)).fetch_optional(&mut *conn).await?)
    }

    async fn put_fingerprint_ring(&self, ring: String, expected: Option<String>, at: Timestamp) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let result = match &expected {
            None => sqlx::query(pg!(sql::INSERT_FINGERPRINT_RING)).bind(&ring).bind(at.0).execute(&mut *tx).await,
            Some(expected) => {
                sqlx::query(pg!(sql::REPLACE_FINGERPRINT_RING))
                    .bind(&ring)
                    .bind(at.0)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
            }
        };
        let result = result.map(|done| done.rows_affected() == 1).map_err(StoreError::from);
        finish(tx, result).await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        checkpoints::signing_keys(&mut *self.pool.acquire().await?).await
    }

    async fn add_signing_key(&self, seed: [u8; 32], how: KeyChange, change: &Change) -> StoreResult<StoredSigningKey> {
        let mut tx = self.write().await?;
        let result = checkpoints::add_signing_key(&mut tx, seed, how, change).await;
        finish(tx, result).await
    }

    async fn record_checkpoint(
        &self,
        heads: Vec<ChainHead>,
        at: Timestamp,
        slot: Option<i64>,
    ) -> StoreResult<Option<SignedCheckpoint>> {
        let mut tx = self.write().await?;
        let result = checkpoints::record_checkpoint(&mut tx, heads, at, slot).await;
        finish(tx, result).await
    }

    async fn checkpoints(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<SignedCheckpoint>> {
        checkpoints::checkpoints(&mut *self.pool.acquire().await?, before, limit).await
    }

    async fn add_webhook(&self, webhook: NewWebhook, change: &Change) -> StoreResult<StoredWebhook> {
        let mut tx = self.write().await?;
        let result = webhooks::add_webhook(&mut tx, webhook, change).await;
        finish(tx, result).await
    }

    async fn remove_webhook(&self, id: i64, change: &Change) -> StoreResult<StoredWebhook> {
        let mut tx = self.write().await?;
        let result = webhooks::remove_webhook(&mut tx, id, change).await;
        finish(tx, result).await
    }

    async fn create_compliance_job(&self, job: NewComplianceJob) -> StoreResult<ComplianceJob> {
        let mut tx = self.write().await?;
        let result = compliance::create_job(&mut tx, job).await;
        finish(tx, result).await
    }

    async fn compliance_jobs(&self, licensee_id: i64, job_type: Option<&str>) -> StoreResult<Vec<ComplianceJob>> {
        let mut conn = self.pool.acquire().await?;
        compliance::jobs(&mut conn, licensee_id, job_type).await
    }

    async fn compliance_job(&self, licensee_id: i64, id: &str) -> StoreResult<Option<ComplianceJob>> {
        let mut conn = self.pool.acquire().await?;
        compliance::job(&mut conn, licensee_id, id).await
    }

    async fn start_compliance_job(&self, licensee_id: i64, id: &str, at: Timestamp) -> StoreResult<ComplianceJob> {
        let mut tx = self.write().await?;
        let result = compliance::start_job(&mut tx, licensee_id, id, at).await;
        finish(tx, result).await
    }

    async fn finish_compliance_job(
        &self,
        licensee_id: i64,
        id: &str,
        outcome: Result<(String, u64), String>,
        at: Timestamp,
    ) -> StoreResult<ComplianceJob> {
        let mut tx = self.write().await?;
        let result = compliance::finish_job(&mut tx, licensee_id, id, outcome, at).await;
        finish(tx, result).await
    }

    async fn compliance_job_result(&self, licensee_id: i64, id: &str) -> StoreResult<Option<String>> {
        let mut conn = self.pool.acquire().await?;
        compliance::job_result(&mut conn, licensee_id, id).await
    }

    async fn record_deletion_notices(
        &self,
        licensee_id: i64,
        notices: Vec<(PostId, Timestamp)>,
        via: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let result = compliance::record_notices(&mut tx, licensee_id, &notices, via, at).await;
        finish(tx, result).await
    }

    async fn deletion_notices(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionNotice>> {
        let mut conn = self.pool.acquire().await?;
        compliance::notices(&mut conn, licensee_id).await
    }

    async fn record_deletion_violations(&self, violations: Vec<NewDeletionViolation>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let result = compliance::record_violations(&mut tx, &violations).await;
        finish(tx, result).await
    }

    async fn deletion_violations(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionViolation>> {
        let mut conn = self.pool.acquire().await?;
        compliance::violations(&mut conn, licensee_id).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<StoredWebhook>> {
        let mut conn = self.pool.acquire().await?;
        webhooks::webhooks(&mut conn).await
    }

    async fn notify(&self, notification: NewNotification) -> StoreResult<bool> {
        // Under the writer lock, as every write: the fan-out sees the webhooks as the last writer left them.
        let mut tx = self.write().await?;
        let result = webhooks::notify(&mut tx, &notification).await;
        finish(tx, result).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        count: usize,
    ) -> StoreResult<Vec<DueDelivery>> {
        // Every gateway asks every second: when nothing is due (nearly always), a read without the
        // writer lock answers, so senders never queue behind ingest for nothing.
        let mut conn = self.pool.acquire().await?;
        let due: bool = sqlx::query_scalar(pg!(sql::ANY_DELIVERY_DUE)).bind(now.0).fetch_one(&mut *conn).await?;
        drop(conn);
        if !due {
            return Ok(Vec::new());
        }
        // The writer lock makes the read and the lease one step: two senders never claim the same row.
        let mut tx = self.write().await?;
        let result = webhooks::claim(&mut tx, now, lease_ms, count).await;
        finish(tx, result).await
    }

    async fn record_webhook_attempt(&self, attempt: WebhookAttempt) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let result = webhooks::record_attempt(&mut tx, &attempt).await;
        finish(tx, result).await
    }

    async fn webhook_deliveries(&self, count: usize) -> StoreResult<Vec<WebhookDeliveryRecord>> {
        let mut conn = self.pool.acquire().await?;
        webhooks::deliveries(&mut conn, count).await
    }

    async fn payments(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredPayment>> {
        let mut conn = self.pool.acquire().await?;
        billing::payments(&mut conn, licensee).await
    }

    async fn invoice_accounts(&self, licensee: Option<&str>) -> StoreResult<Vec<LicenseeAccount>> {
        // One snapshot for invoices and their payments.
        let mut tx = self.pool.begin().await?;
        let result: StoreResult<_> = async {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
            let id = match licensee {
                None => None,
                Some(name) => Some(
                    sqlx::query_scalar::<_, i64>("SELECT id FROM licensees WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| no_licensee(name))?,
                ),
            };
            let accounts = billing::accounts(&mut tx, id).await?;
            Ok(accounts)
        }
        .await;
        finish(tx, result).await
    }

    async fn log_dunning_transitions(&self, change: &Change) -> StoreResult<Vec<String>> {
        let mut tx = self.write().await?;
        let result: StoreResult<_> = async {
            let logged = billing::log_all_transitions(&mut tx, change).await?;
            Ok(logged)
        }
        .await;
        finish(tx, result).await
    }

    async fn add_admin_user(&self, user: NewAdminUser, change: &Change) -> StoreResult<AdminUser> {
        let mut tx = self.write().await?;
        let result = admin_users::add_user(&mut tx, user, change).await;
        finish(tx, result).await
    }

    async fn admin_users(&self) -> StoreResult<Vec<AdminUser>> {
        admin_users::users(&mut *self.pool.acquire().await?).await
    }

    async fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>> {
        admin_users::user_named(&mut *self.pool.acquire().await?, name).await
    }

    async fn remove_admin_user(&self, name: &str, change: &Change) -> StoreResult<AdminUser> {
        let mut tx = self.write().await?;
        let result = admin_users::remove_user(&mut tx, name, change).await;
        finish(tx, result).await
    }

    async fn create_admin_session(&self, session: NewAdminSession, change: &Change) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let result = admin_users::create_session(&mut tx, session, change).await;
        finish(tx, result).await
    }

    async fn admin_session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<AdminSession>> {
        admin_users::session(&mut *self.pool.acquire().await?, token_hash, now).await
    }

    async fn record_audit(
        &self,
        change: &Change,
        action: &str,
        subject: &str,
        after: Option<serde_json::Value>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let result = sqlx::query(pg!(sql::INSERT_AUDIT))
            .bind(change.at.0)
            .bind(&change.actor)
            .bind(action)
            .bind(subject)
            .bind(None::<String>)
            .bind(after.as_ref().map(json_text))
            .execute(&mut *tx)
            .await
            .map(drop)
            .map_err(StoreError::from);
        finish(tx, result).await
    }

    async fn end_admin_session(&self, token_hash: &str) -> StoreResult<()> {
        admin_users::end_session(&mut *self.pool.acquire().await?, token_hash).await
    }

    async fn end_admin_sessions_of(&self, user: &str) -> StoreResult<u64> {
        admin_users::end_sessions_of(&mut *self.pool.acquire().await?, user).await
    }

    async fn audit_log(&self, count: usize) -> StoreResult<Vec<AuditEntry>> {
        let found = sqlx::query(pg!(sql::AUDIT_LOG)).bind(limit(count)).fetch_all(&self.pool).await?;
        rows(found, |row| {
            Ok(AuditEntry {
                seq: row.try_get(0)?,
                at: Timestamp(row.try_get(1)?),
                actor: row.try_get(2)?,
                action: row.try_get(3)?,
                subject: row.try_get(4)?,
                before: parse_json(row.try_get(5)?),
                after: parse_json(row.try_get(6)?),
            })
        })
    }

    async fn change_counter(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = 'change_counter'").fetch_one(&self.pool).await?)
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM posts WHERE deleted_at IS NULL), (SELECT COUNT(*) FROM posts WHERE deleted_at IS NOT NULL),
                    (SELECT COUNT(*) FROM authors), (SELECT COUNT(*) FROM licensees),
                    (SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = |index: usize| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(index)?.max(0) as u64) };
        Ok(StoreStats {
            posts: count(0)?,
            deleted_posts: count(1)?,
            authors: count(2)?,
            licensees: count(3)?,
            keys: count(4)?,
        })
    }

    /// Refuses: `backup_to` writes a SQLite database file that `ops::restore_data_dir` copies back
    /// into a data directory, and a PostgreSQL store has no such file. A logical dump written here
    /// could not be restored by datapact, and a copy made over this pool would miss what the
    /// server's own tools keep (roles, grants, sequences' state); `pg_dump` makes the consistent
    /// copy (one snapshot, while the store stays in use) and `pg_restore` restores it.
    async fn backup_to(&self, out: &Path) -> StoreResult<()> {
        Err(StoreError::Invalid(format!(
            "a PostgreSQL store is not copied into a file like {}: back it up with \
             `pg_dump --format=custom --schema=SCHEMA` (a consistent snapshot while datapact runs) and restore it \
             with `pg_restore`; `datapact backup` and `restore` copy only the embedded SQLite store",
            out.display()
        )))
    }
}

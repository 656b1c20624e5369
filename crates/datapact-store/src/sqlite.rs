//! The embedded store: one SQLite database in WAL mode with `synchronous=FULL`.
//!
//! One writer connection (SQLite allows one writer at a time anyway) behind a mutex, and a pool
//! of read-only connections. Blocking calls run on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datapact_core::ingest::{IngestRecord, NewPost};
use datapact_core::{
    Author, AuthorMetrics, KeyHash, KeyPrefix, KeyRecord, Licensee, LicenseeStatus, Post, PostId, Timestamp, UserId,
};
use datapact_ledger::{ChainHead, SignedCheckpoint};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params, params_from_iter};

use crate::admin_users::{AdminSession, AdminUser, NewAdminSession, NewAdminUser};
use crate::checkpoints::{KeyChange, StoredSigningKey};
use crate::compliance::{ComplianceJob, DeletionNotice, DeletionViolation, NewComplianceJob, NewDeletionViolation};
use crate::notify::{DueDelivery, NewNotification, NewWebhook, StoredWebhook, WebhookAttempt, WebhookDeliveryRecord};
use crate::{
    AuditEntry, Change, CreditAdded, IngestEffect, InvoiceIssue, KeyGrant, LicenseeAccount, LicenseeTerms, NewCredit,
    NewCreditNote, NewInvoice, NewPayment, NewTraceFinding, PaymentRecorded, PostEvent, PostEventKind, RevisionEntry,
    SQLITE_FILE, Store, StoreError, StoreResult, StoreStats, StoredCredit, StoredCreditNote, StoredInvoice,
    StoredPayment, TermsChange, TermsState, TimelineQuery, TraceFinding, UserRecord, Violation, ViolationDay,
    ViolationEvent,
};

mod admin_users;
mod billing;
mod change_stamp;
mod checkpoints;
mod compliance;
mod webhooks;

use crate::shared::{
    AuditDraft, KEY_COLUMNS, POST_COLUMNS, PostParts, USER_COLUMNS, author_settled, check_block_reason, check_purpose,
    clamp_count, json_text, licensee_terms_after, no_licensee, no_post_to_delete, opt_out_entry, parse_json,
    push_violation_sample, sql, to_json, trace_finding, trace_finding_json, unavailable, unknown_author,
    username_taken,
};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/0001_initial.sql"),
    include_str!("sqlite/0002_terms.sql"),
    include_str!("sqlite/0003_author_metrics.sql"),
    include_str!("sqlite/0004_trace_findings.sql"),
    include_str!("sqlite/0005_billing.sql"),
    include_str!("sqlite/0006_credits.sql"),
    include_str!("sqlite/0007_webhooks.sql"),
    include_str!("sqlite/0008_credit_notes.sql"),
    include_str!("sqlite/0009_fingerprint_ring.sql"),
    include_str!("sqlite/0010_compliance.sql"),
    include_str!("sqlite/0011_checkpoints.sql"),
    include_str!("sqlite/0012_admin_users.sql"),
    include_str!("sqlite/0013_violation_days.sql"),
];
const READ_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Moved by every change to posts, in every process (see [`change_stamp`]).
    changes: Arc<change_stamp::ChangeStamp>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        unavailable(error)
    }
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, and brings its schema up to date.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        Self::open_file(&data_dir.join(SQLITE_FILE))
    }

    pub fn open_file(path: &Path) -> StoreResult<Self> {
        let mut writer =
            Connection::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        // Every transaction of the writer writes: take the write lock at BEGIN, where a busy
        // database is waited for. A deferred one that reads first and then finds another process
        // has committed meanwhile fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT,
        // which no busy timeout covers): a CLI command racing a running gateway's write.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // A 64 MiB page cache holds a whole ingest batch; checkpointing every 8,192 pages (32 MiB)
        // rather than SQLite's default 1,000 stops hot index pages being copied after every commit.
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 8192;",
        )?;
        // Durability is a promise the ledger makes: refuse to run if SQLite did not take it.
        let synchronous: i64 = writer.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
        if synchronous != 2 {
            return Err(unavailable(format!("SQLite refused synchronous=FULL (got {synchronous})")));
        }
        migrate(&mut writer)?;
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            rusqlite::vtab::array::load_module(conn)?;
            conn.execute_batch(
                "PRAGMA query_only = ON; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 1073741824;
                 PRAGMA cache_size = -16384;",
            )
        });
        let readers =
            r2d2::Pool::builder().max_size(READ_CONNECTIONS).min_idle(Some(1)).build(manager).map_err(unavailable)?;
        let changes = Arc::new(change_stamp::ChangeStamp::open(path)?);
        Ok(SqliteStore { path: path.to_owned(), writer: Arc::new(Mutex::new(writer)), readers, changes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `synchronous` setting of the writer connection (2 = FULL).
    pub async fn synchronous_level(&self) -> StoreResult<i64> {
        self.write(|conn| Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?)).await
    }

    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| unavailable("writer connection poisoned"))?;
            work(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        // Reads are short indexed queries (tens of microseconds, a few hundred at most): on a
        // multi-threaded runtime they run inline on the worker, which costs less than any thread
        // hand-off (spawn_blocking or block_in_place measured 30+ µs of futex and context-switch
        // time per request). Other workers keep serving meanwhile.
        use tokio::runtime::{Handle, RuntimeFlavor};
        if Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread) {
            let conn = self.readers.get().map_err(unavailable)?;
            return work(&conn);
        }
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.get().map_err(unavailable)?;
            work(&conn)
        })
        .await
        .map_err(unavailable)?
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    run_migrations(conn, MIGRATIONS, "store")
}

/// Brings a SQLite database (`what`: "store" or "ledger") to the newest of `migrations`, one
/// transaction per version, tracked in `PRAGMA user_version`; refuses a newer database.
pub(crate) fn run_migrations(conn: &mut Connection, migrations: &[&str], what: &str) -> StoreResult<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    if version > migrations.len() {
        return Err(unavailable(format!(
            "the {what} has schema version {version}, newer than this datapact knows ({}); upgrade datapact",
            migrations.len()
        )));
    }
    for (index, migration) in migrations.iter().enumerate().skip(version) {
        // An upgrade says so before it starts, not only after: a migration that rewrites a table
        // runs for minutes on a large ledger (README, "Upgrading"), and nothing is served meanwhile.
        if version > 0 {
            tracing::info!(from = version, version = index + 1, "upgrading the {what}: applying a migration");
        }
        let started = std::time::Instant::now();
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = index + 1, seconds = started.elapsed().as_secs_f64(), "applied {what} migration");
    }
    Ok(())
}

fn post_from_row(row: &Row<'_>) -> rusqlite::Result<Post> {
    let count = |index: usize| row.get::<_, i64>(index);
    let parts = PostParts {
        id: row.get(0)?,
        author_id: row.get(1)?,
        text: row.get(2)?,
        revision: row.get(3)?,
        created_at: row.get(4)?,
        lang: row.get(5)?,
        conversation_id: row.get(6)?,
        in_reply_to_user_id: row.get(7)?,
        referenced_posts: row.get(8)?,
        edit_history: row.get(9)?,
        counts: [count(10)?, count(11)?, count(12)?, count(13)?, count(14)?, count(15)?],
        deleted_at: row.get(16)?,
    };
    parts.into_post().map_err(|e| rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, e.into()))
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        author: Author {
            id: UserId::new(row.get(0)?),
            username: row.get(1)?,
            name: row.get(2)?,
            created_at: Timestamp(row.get(3)?),
            description: row.get(4)?,
            location: row.get(5)?,
            verified: row.get(6)?,
            protected: row.get(7)?,
            metrics: AuthorMetrics {
                followers_count: row.get::<_, i64>(8)? as u64,
                following_count: row.get::<_, i64>(9)? as u64,
                listed_count: row.get::<_, i64>(10)? as u64,
            },
        },
        post_count: row.get::<_, i64>(11)? as u64,
    })
}

fn licensee_from_row(row: &Row<'_>) -> rusqlite::Result<Licensee> {
    let status: String = row.get(2)?;
    Ok(Licensee {
        id: row.get(0)?,
        name: row.get(1)?,
        status: LicenseeStatus::parse(&status).unwrap_or(LicenseeStatus::Blocked),
        created_at: Timestamp(row.get(3)?),
    })
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        prefix: KeyPrefix(row.get(0)?),
        licensee: row.get(1)?,
        purpose: row.get(8)?,
        created_at: Timestamp(row.get(2)?),
        expires_at: row.get::<_, Option<i64>>(3)?.map(Timestamp),
        revoked_at: row.get::<_, Option<i64>>(4)?.map(Timestamp),
        last_used_at: row.get::<_, Option<i64>>(5)?.map(Timestamp),
    })
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(",")
}

/// Applies one batch of ingest records in the caller's transaction.
struct Ingester<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    now: Timestamp,
    /// Authors written or confirmed in this batch, so each is touched once.
    authors_seen: HashMap<UserId, Option<Author>>,
}

impl Ingester<'_> {
    fn apply(&mut self, record: IngestRecord) -> StoreResult<IngestEffect> {
        match record {
            IngestRecord::Post(post) => self.post(*post),
            IngestRecord::Delete { id, deleted_at } => self.delete(id, deleted_at.unwrap_or(self.now)),
        }
    }

    fn author(&mut self, id: UserId, author: Option<Author>) -> StoreResult<Result<(), String>> {
        if author_settled(self.authors_seen.get(&id), author.as_ref()) {
            return Ok(Ok(()));
        }
        match &author {
            Some(a) => {
                let mut upsert = self.tx.prepare_cached(sql::UPSERT_AUTHOR)?;
                let result = upsert.execute(params![
                    a.id.get(),
                    a.username,
                    a.name,
                    a.created_at.0,
                    a.description,
                    a.location,
                    a.verified,
                    a.protected,
                    clamp_count(a.metrics.followers_count),
                    clamp_count(a.metrics.following_count),
                    clamp_count(a.metrics.listed_count),
                ]);
                match result {
                    Ok(_) => {}
                    Err(e) if is_constraint(&e) => {
                        return Ok(Err(username_taken(&a.username)));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let exists = self.tx.prepare_cached("SELECT 1 FROM authors WHERE id = ?1")?.exists([id.get()])?;
                if !exists {
                    return Ok(Err(unknown_author(id)));
                }
            }
        }
        self.authors_seen.insert(id, author);
        Ok(Ok(()))
    }

    fn post(&mut self, post: NewPost) -> StoreResult<IngestEffect> {
        if let Err(reason) = self.author(post.author_id, post.author.clone())? {
            return Ok(IngestEffect::Refused(reason));
        }
        for purpose in &post.author_opt_outs {
            let added = self.tx.prepare_cached(sql::INSERT_OPT_OUT)?.execute(params![
                post.author_id.get(),
                purpose,
                self.now.0
            ])?;
            if added > 0 {
                append_draft(self.tx, &Change::new("ingest", self.now), opt_out_entry(post.author_id, purpose, true))?;
            }
        }
        // Most lines are new posts: insert first, and read the stored post only on a conflict.
        let referenced = if post.referenced_posts.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&post.referenced_posts).map_err(unavailable)?)
        };
        let history = serde_json::to_string(&post.edit_history).map_err(unavailable)?;
        let metrics = post.public_metrics;
        let clamp = clamp_count;
        let inserted = self.tx.prepare_cached(&sql::INSERT_POST)?.execute(params![
            post.id.get(),
            post.author_id.get(),
            post.text,
            post.created_at.0,
            post.lang,
            post.conversation_id.get(),
            post.in_reply_to_user_id.map(UserId::get),
            referenced,
            history,
            clamp(metrics.retweet_count),
            clamp(metrics.reply_count),
            clamp(metrics.like_count),
            clamp(metrics.quote_count),
            clamp(metrics.bookmark_count),
            clamp(metrics.impression_count),
        ])?;
        if inserted == 1 {
            self.insert_revision(post.id, 1, &post.text)?;
            return Ok(IngestEffect::Inserted);
        }
        let (text, revision): (String, u32) = self
            .tx
            .prepare_cached("SELECT text, revision FROM posts WHERE id = ?1")?
            .query_row([post.id.get()], |row| Ok((row.get(0)?, row.get(1)?)))?;
        if text == post.text {
            return Ok(IngestEffect::Unchanged);
        }
        let revision = revision + 1;
        self.tx.prepare_cached("UPDATE posts SET text = ?2, revision = ?3 WHERE id = ?1")?.execute(params![
            post.id.get(),
            post.text,
            revision
        ])?;
        self.insert_revision(post.id, revision, &post.text)?;
        self.tx
            .prepare_cached("INSERT INTO post_events (post_id, kind, revision, at) VALUES (?1, 'corrected', ?2, ?3)")?
            .execute(params![post.id.get(), revision, self.now.0])?;
        Ok(IngestEffect::Corrected { revision })
    }

    fn insert_revision(&self, id: PostId, revision: u32, text: &str) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO post_revisions (post_id, revision, text, ingested_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id.get(), revision, text, self.now.0])?;
        Ok(())
    }

    fn delete(&mut self, id: PostId, at: Timestamp) -> StoreResult<IngestEffect> {
        let state: Option<Option<i64>> = self
            .tx
            .prepare_cached("SELECT deleted_at FROM posts WHERE id = ?1")?
            .query_row([id.get()], |row| row.get(0))
            .optional()?;
        match state {
            None => Ok(IngestEffect::Refused(no_post_to_delete(id))),
            Some(Some(_)) => Ok(IngestEffect::AlreadyDeleted),
            Some(None) => {
                self.tx
                    .prepare_cached("UPDATE posts SET deleted_at = ?2 WHERE id = ?1")?
                    .execute(params![id.get(), at.0])?;
                self.tx
                    .prepare_cached("INSERT INTO post_events (post_id, kind, at) VALUES (?1, 'deleted', ?2)")?
                    .execute(params![id.get(), at.0])?;
                Ok(IngestEffect::Deleted)
            }
        }
    }
}

/// Appends one audit entry in the caller's transaction, so a change and its record commit together.
fn append_audit(
    tx: &Connection,
    change: &Change,
    action: &str,
    subject: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> StoreResult<()> {
    tx.prepare_cached(sql::INSERT_AUDIT)?.execute(params![
        change.at.0,
        change.actor,
        action,
        subject,
        before.as_ref().map(json_text),
        after.as_ref().map(json_text)
    ])?;
    Ok(())
}

fn append_draft(tx: &Connection, change: &Change, draft: AuditDraft) -> StoreResult<()> {
    append_audit(tx, change, draft.action, &draft.subject, draft.before, draft.after)
}

fn insert_licensee(tx: &rusqlite::Transaction<'_>, name: &str, change: &Change) -> StoreResult<Licensee> {
    let result = tx.execute(
        "INSERT INTO licensees (name, status, created_at) VALUES (?1, 'active', ?2)",
        params![name, change.at.0],
    );
    match result {
        Err(e) if is_constraint(&e) => return Err(StoreError::Conflict(format!("licensee {name:?} already exists"))),
        other => other?,
    };
    let licensee = tx.query_row(
        "SELECT id, name, status, created_at FROM licensees WHERE id = last_insert_rowid()",
        [],
        licensee_from_row,
    )?;
    append_audit(tx, change, "licensee.create", name, None, Some(to_json(&licensee)))?;
    Ok(licensee)
}

fn licensee_terms(tx: &rusqlite::Transaction<'_>, name: &str) -> StoreResult<Option<LicenseeTerms>> {
    Ok(tx
        .query_row(
            "SELECT name, status, reason, terms, id FROM licensees WHERE name = ?1",
            [name],
            licensee_terms_from_row,
        )
        .optional()?)
}

fn licensee_terms_from_row(row: &Row<'_>) -> rusqlite::Result<LicenseeTerms> {
    let status: String = row.get(1)?;
    Ok(LicenseeTerms {
        id: row.get(4)?,
        name: row.get(0)?,
        status: LicenseeStatus::parse(&status).unwrap_or(LicenseeStatus::Blocked),
        reason: row.get(2)?,
        terms: parse_json(row.get(3)?),
    })
}

fn apply_terms_change(tx: &rusqlite::Transaction<'_>, item: TermsChange, change: &Change) -> StoreResult<()> {
    match item {
        TermsChange::PutPlan { name, body } => {
            let before: Option<String> =
                tx.query_row("SELECT body FROM plans WHERE name = ?1", [&name], |row| row.get(0)).optional()?;
            let before = parse_json(before);
            if before.as_ref() == Some(&body) {
                return Ok(());
            }
            tx.execute(sql::UPSERT_PLAN, params![name, json_text(&body), change.at.0])?;
            append_audit(tx, change, "plan.put", &name, before, Some(body))
        }
        TermsChange::DeletePlan { name } => {
            let before: Option<String> =
                tx.query_row("SELECT body FROM plans WHERE name = ?1", [&name], |row| row.get(0)).optional()?;
            if before.is_none() {
                return Ok(());
            }
            tx.execute("DELETE FROM plans WHERE name = ?1", [&name])?;
            append_audit(tx, change, "plan.delete", &name, parse_json(before), None)
        }
        TermsChange::PutLicensee { name, terms, status } => {
            datapact_core::licensee::validate_licensee_name(&name).map_err(StoreError::Invalid)?;
            if licensee_terms(tx, &name)?.is_none() {
                insert_licensee(tx, &name, change)?;
            }
            let before = licensee_terms(tx, &name)?.ok_or_else(|| StoreError::NotFound(name.clone()))?;
            let after = licensee_terms_after(&before, terms, status);
            if after == before {
                return Ok(());
            }
            tx.execute(
                "UPDATE licensees SET terms = ?2, status = ?3, reason = ?4 WHERE name = ?1",
                params![name, after.terms.as_ref().map(json_text), after.status.as_str(), after.reason],
            )?;
            append_audit(tx, change, "licensee.terms", &name, Some(to_json(&before)), Some(to_json(&after)))
        }
        TermsChange::PutPriceBooks { body } => {
            let before: Option<String> =
                tx.query_row("SELECT body FROM price_books WHERE id = 1", [], |row| row.get(0)).optional()?;
            let before = parse_json(before);
            if before.as_ref() == Some(&body) {
                return Ok(());
            }
            tx.execute(sql::UPSERT_PRICE_BOOKS, params![json_text(&body), change.at.0])?;
            append_audit(tx, change, "price_book.put", "price_books", before, Some(body))
        }
        TermsChange::ClearLicensee { name } => {
            let Some(before) = licensee_terms(tx, &name)? else { return Ok(()) };
            if before.terms.is_none() {
                return Ok(());
            }
            tx.execute("UPDATE licensees SET terms = NULL WHERE name = ?1", [&name])?;
            let after = LicenseeTerms { terms: None, ..before.clone() };
            append_audit(tx, change, "licensee.terms", &name, Some(to_json(&before)), Some(to_json(&after)))
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, records: Vec<IngestRecord>, now: Timestamp) -> StoreResult<Vec<IngestEffect>> {
        let changes = Arc::clone(&self.changes);
        self.write(move |conn| {
            // The only writer of posts, revisions and post events: the stamp brackets its commit.
            let _change = changes.begin()?;
            let tx = conn.transaction()?;
            let effects = {
                let mut ingester = Ingester { tx: &tx, now, authors_seen: HashMap::new() };
                records.into_iter().map(|record| ingester.apply(record)).collect::<StoreResult<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(effects)
        })
        .await
    }

    async fn posts_by_ids(&self, ids: &[PostId]) -> StoreResult<Vec<Post>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        static BY_IDS: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("SELECT {POST_COLUMNS} FROM posts WHERE id IN rarray(?1)"));
        let ids: Vec<rusqlite::types::Value> = ids
            .iter()
            .map(|id| id.get())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(rusqlite::types::Value::Integer)
            .collect();
        self.read(move |conn| {
            // One cached statement for any number of ids (SQLite's carray extension).
            let mut statement = conn.prepare_cached(&BY_IDS)?;
            let posts = statement.query_map([std::rc::Rc::new(ids)], post_from_row)?.collect::<Result<_, _>>()?;
            Ok(posts)
        })
        .await
    }

    async fn live_post_revisions(&self, ids: &[PostId]) -> StoreResult<Vec<(PostId, u32, UserId)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Ascending and distinct: consecutive lookups then mostly land on B-tree pages just visited.
        let ids: Vec<rusqlite::types::Value> = ids
            .iter()
            .map(|id| id.get())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(rusqlite::types::Value::Integer)
            .collect();
        self.read(move |conn| {
            // Only the record header and small columns of each row are read: the text is skipped.
            // `CROSS JOIN` keeps the id list as the outer loop (one primary-key seek per id),
            // where `id IN rarray(..)` would first copy the list into a temporary index.
            let mut statement = conn.prepare_cached(
                "SELECT p.id, p.revision, p.author_id FROM rarray(?1) AS wanted CROSS JOIN posts AS p
                 ON p.id = wanted.value WHERE p.deleted_at IS NULL",
            )?;
            let posts = statement
                .query_map([std::rc::Rc::new(ids)], |row| {
                    Ok((PostId::new(row.get(0)?), row.get(1)?, UserId::new(row.get(2)?)))
                })?
                .collect::<Result<_, _>>()?;
            Ok(posts)
        })
        .await
    }

    async fn timeline(&self, author: UserId, query: TimelineQuery) -> StoreResult<Vec<Post>> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE author_id = ? AND deleted_at IS NULL");
            let mut values: Vec<i64> = vec![author.get()];
            let mut condition = |clause: &str, value: Option<i64>| {
                if let Some(value) = value {
                    sql.push_str(clause);
                    values.push(value);
                }
            };
            condition(" AND id < ?", query.before_id.map(PostId::get));
            condition(" AND id > ?", query.after_id.map(PostId::get));
            condition(" AND created_at >= ?", query.start_time.map(|t| t.0));
            condition(" AND created_at < ?", query.end_time.map(|t| t.0));
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            values.push(query.limit as i64);
            let mut statement = conn.prepare_cached(&sql)?;
            let posts = statement.query_map(params_from_iter(values), post_from_row)?.collect::<Result<_, _>>()?;
            Ok(posts)
        })
        .await
    }

    async fn recent_posts(&self, limit: usize) -> StoreResult<Vec<Post>> {
        self.read(move |conn| {
            let sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE deleted_at IS NULL ORDER BY id DESC LIMIT ?1");
            let mut statement = conn.prepare_cached(&sql)?;
            let posts = statement.query_map([limit as i64], post_from_row)?.collect::<Result<_, _>>()?;
            Ok(posts)
        })
        .await
    }

    async fn revisions_after(&self, after: i64, limit: usize) -> StoreResult<Vec<RevisionEntry>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&sql::REVISIONS_AFTER)?;
            let entries = statement
                .query_map(params![after, limit as i64], |row| {
                    let mut post = post_from_row(row)?;
                    post.text = row.get(19)?;
                    post.revision = row.get(20)?;
                    Ok(RevisionEntry { seq: row.get(17)?, ingested_at: Timestamp(row.get(18)?), post })
                })?
                .collect::<Result<_, _>>()?;
            Ok(entries)
        })
        .await
    }

    async fn first_revision_since(&self, since: Timestamp) -> StoreResult<i64> {
        self.read(move |conn| {
            // Walk back from the newest revision: ingest times grow with seq, and a stream
            // backfill only ever looks minutes back, so this reads a few pages at most.
            let mut statement = conn.prepare_cached(
                "SELECT seq, ingested_at FROM post_revisions WHERE seq < ?1 ORDER BY seq DESC LIMIT 1000",
            )?;
            let mut before = i64::MAX;
            let mut first =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM post_revisions", [], |row| row.get(0))?;
            loop {
                let page: Vec<(i64, i64)> =
                    statement.query_map([before], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
                let Some(&(last_seq, _)) = page.last() else { return Ok(first) };
                for (seq, ingested_at) in &page {
                    if *ingested_at < since.0 {
                        return Ok(first);
                    }
                    first = *seq;
                }
                before = last_seq;
            }
        })
        .await
    }

    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<PostEvent>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::EVENTS_AFTER)?;
            let events = statement
                .query_map(params![after, limit as i64], |row| {
                    let kind: String = row.get(2)?;
                    let kind = match kind.as_str() {
                        "corrected" => PostEventKind::Corrected { revision: row.get(3)? },
                        _ => PostEventKind::Deleted,
                    };
                    Ok(PostEvent {
                        seq: row.get(0)?,
                        post_id: PostId::new(row.get(1)?),
                        kind,
                        at: Timestamp(row.get(4)?),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(events)
        })
        .await
    }

    fn post_change_stamp(&self) -> Option<u64> {
        self.changes.read()
    }

    fn repair_post_change_stamp(&self) {
        self.changes.repair();
    }

    async fn feed_watermark(&self) -> StoreResult<Option<(i64, i64)>> {
        // Both maxima are the last entry of a rowid B-tree: one descent each, in one snapshot.
        // Commit order is `seq` order here: SQLite runs one write transaction at a time (across
        // processes too), a `seq` is a rowid allocated inside the transaction that commits it, and
        // neither table ever loses rows, so no lower `seq` can appear after a higher one.
        self.read(|conn| {
            let heads = conn.prepare_cached(sql::FEED_HEADS)?.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(Some(heads))
        })
        .await
    }

    async fn users_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect::<HashSet<_>>().into_iter().collect();
        self.read(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM authors a WHERE a.id IN ({})", placeholders(ids.len()));
            let mut statement = conn.prepare_cached(&sql)?;
            let users = statement.query_map(params_from_iter(ids), user_from_row)?.collect::<Result<_, _>>()?;
            Ok(users)
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM authors a WHERE a.username = ?1 COLLATE NOCASE");
            Ok(conn.prepare_cached(&sql)?.query_row([username], user_from_row).optional()?)
        })
        .await
    }

    async fn create_licensee(&self, name: &str, change: &Change) -> StoreResult<Licensee> {
        datapact_core::licensee::validate_licensee_name(name).map_err(StoreError::Invalid)?;
        let (name, change) = (name.to_owned(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let licensee = insert_licensee(&tx, &name, &change)?;
            tx.commit()?;
            Ok(licensee)
        })
        .await
    }

    async fn licensees(&self) -> StoreResult<Vec<Licensee>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT id, name, status, created_at FROM licensees ORDER BY name")?;
            let licensees = statement.query_map([], licensee_from_row)?.collect::<Result<_, _>>()?;
            Ok(licensees)
        })
        .await
    }

    async fn licensee(&self, name: &str) -> StoreResult<Option<Licensee>> {
        let name = name.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT id, name, status, created_at FROM licensees WHERE name = ?1")?
                .query_row([name], licensee_from_row)
                .optional()?)
        })
        .await
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
        let (licensee, prefix, purpose, change) =
            (licensee.to_owned(), prefix.clone(), purpose.to_owned(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let licensee_id: i64 = tx
                .query_row("SELECT id FROM licensees WHERE name = ?1", [&licensee], |row| row.get(0))
                .optional()?
                .ok_or_else(|| no_licensee(&licensee))?;
            let result = tx.execute(
                "INSERT INTO api_keys (licensee_id, prefix, hash, purpose, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![licensee_id, prefix.0, hash.0.as_slice(), purpose, change.at.0, expires_at.map(|t| t.0)],
            );
            match result {
                Err(e) if is_constraint(&e) => {
                    return Err(StoreError::Conflict(format!("key prefix {prefix} is taken")));
                }
                other => other?,
            };
            let record = KeyRecord {
                prefix,
                licensee,
                purpose,
                created_at: change.at,
                expires_at,
                revoked_at: None,
                last_used_at: None,
            };
            append_audit(&tx, &change, "key.issue", &record.prefix.0, None, Some(to_json(&record)))?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn keys(&self, licensee: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&sql::KEYS_OF)?;
            let keys = statement.query_map([licensee], key_from_row)?.collect::<Result<_, _>>()?;
            Ok(keys)
        })
        .await
    }

    async fn revoke_key(&self, prefix: &KeyPrefix, change: &Change) -> StoreResult<KeyRecord> {
        let (prefix, change) = (prefix.clone(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let by_prefix = sql::KEY_BY_PREFIX.as_str();
            let before = tx
                .query_row(by_prefix, [&prefix.0], key_from_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no key with prefix {prefix}")))?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            tx.execute("UPDATE api_keys SET revoked_at = ?2 WHERE prefix = ?1", params![prefix.0, change.at.0])?;
            let after = tx.query_row(by_prefix, [&prefix.0], key_from_row)?;
            append_audit(&tx, &change, "key.revoke", &prefix.0, Some(to_json(&before)), Some(to_json(&after)))?;
            tx.commit()?;
            Ok(after)
        })
        .await
    }

    async fn key_grants(&self) -> StoreResult<Vec<KeyGrant>> {
        self.read(|conn| {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k JOIN licensees l ON l.id = k.licensee_id");
            let mut statement = conn.prepare_cached(&sql)?;
            let grants = statement
                .query_map([], |row| {
                    let hash: Vec<u8> = row.get(6)?;
                    let hash: [u8; 32] = hash.try_into().map_err(|_| {
                        rusqlite::Error::FromSqlConversionFailure(
                            6,
                            rusqlite::types::Type::Blob,
                            "key hash is not 32 bytes".into(),
                        )
                    })?;
                    Ok(KeyGrant { hash: KeyHash(hash), record: key_from_row(row)?, licensee_id: row.get(7)? })
                })?
                .collect::<Result<_, _>>()?;
            Ok(grants)
        })
        .await
    }

    async fn record_key_use(&self, uses: Vec<(KeyPrefix, Timestamp)>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE prefix = ?1",
                )?;
                for (prefix, at) in uses {
                    update.execute(params![prefix.0, at.0])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn terms_state(&self) -> StoreResult<TermsState> {
        self.read(|conn| {
            let mut plans = conn.prepare_cached("SELECT name, body FROM plans ORDER BY name")?;
            let plans = plans
                .query_map([], |row| Ok((row.get::<_, String>(0)?, parse_json(row.get(1)?).unwrap_or_default())))?
                .collect::<Result<_, _>>()?;
            let mut licensees =
                conn.prepare_cached("SELECT name, status, reason, terms, id FROM licensees ORDER BY name")?;
            let licensees = licensees.query_map([], licensee_terms_from_row)?.collect::<Result<_, _>>()?;
            let price_books: Option<String> = conn
                .prepare_cached("SELECT body FROM price_books WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()?;
            Ok(TermsState { plans, licensees, price_books: parse_json(price_books) })
        })
        .await
    }

    async fn apply_terms(&self, changes: Vec<TermsChange>, change: &Change) -> StoreResult<()> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            for item in changes {
                apply_terms_change(&tx, item, &change)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn set_licensee_status(
        &self,
        name: &str,
        status: LicenseeStatus,
        reason: &str,
        change: &Change,
    ) -> StoreResult<Licensee> {
        check_block_reason(status, reason)?;
        let (name, reason, change) = (name.to_owned(), reason.to_owned(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let before = licensee_terms(&tx, &name)?.ok_or_else(|| no_licensee(&name))?;
            tx.execute(
                "UPDATE licensees SET status = ?2, reason = ?3 WHERE name = ?1",
                params![name, status.as_str(), reason],
            )?;
            let after = LicenseeTerms { status, reason, ..before.clone() };
            if after != before {
                let action = if status == LicenseeStatus::Blocked { "licensee.block" } else { "licensee.unblock" };
                append_audit(&tx, &change, action, &name, Some(to_json(&before)), Some(to_json(&after)))?;
            }
            let licensee = tx.query_row(
                "SELECT id, name, status, created_at FROM licensees WHERE name = ?1",
                [&name],
                licensee_from_row,
            )?;
            tx.commit()?;
            Ok(licensee)
        })
        .await
    }

    async fn set_opt_out(&self, author: UserId, purpose: &str, opted_out: bool, change: &Change) -> StoreResult<()> {
        check_purpose(purpose)?;
        let (purpose, change) = (purpose.to_owned(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let exists = tx.prepare_cached("SELECT 1 FROM authors WHERE id = ?1")?.exists([author.get()])?;
            if !exists {
                return Err(StoreError::NotFound(format!("no author with id {author}")));
            }
            let changed = if opted_out {
                tx.execute(sql::INSERT_OPT_OUT, params![author.get(), purpose, change.at.0])?
            } else {
                tx.execute(
                    "DELETE FROM author_opt_outs WHERE author_id = ?1 AND purpose = ?2",
                    params![author.get(), purpose],
                )?
            };
            if changed > 0 {
                append_draft(&tx, &change, opt_out_entry(author, &purpose, opted_out))?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn opt_outs(&self) -> StoreResult<Vec<(UserId, String)>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT author_id, purpose FROM author_opt_outs")?;
            let rows = statement
                .query_map([], |row| Ok((UserId::new(row.get(0)?), row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn record_violations(&self, events: Vec<ViolationEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            for event in events {
                let existing: Option<(String,)> = tx
                    .prepare_cached("SELECT samples FROM violations WHERE licensee_id = ?1 AND kind = ?2")?
                    .query_row(params![event.licensee_id, event.kind], |row| Ok((row.get(0)?,)))
                    .optional()?;
                let samples = push_violation_sample(existing.as_ref().map(|(json,)| json.as_str()), &event)?;
                tx.prepare_cached(sql::UPSERT_VIOLATION)?.execute(params![
                    event.licensee_id,
                    event.kind,
                    event.at.0,
                    samples
                ])?;
                let day = crate::day_start(event.at);
                let existing: Option<(String,)> = tx
                    .prepare_cached(
                        "SELECT samples FROM violation_days WHERE licensee_id = ?1 AND kind = ?2 AND day_start = ?3",
                    )?
                    .query_row(params![event.licensee_id, event.kind, day.0], |row| Ok((row.get(0)?,)))
                    .optional()?;
                let samples = push_violation_sample(existing.as_ref().map(|(json,)| json.as_str()), &event)?;
                tx.prepare_cached(sql::UPSERT_VIOLATION_DAY)?.execute(params![
                    event.licensee_id,
                    event.kind,
                    day.0,
                    event.at.0,
                    samples
                ])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn violations(&self, licensee: Option<&str>) -> StoreResult<Vec<Violation>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT l.name, v.kind, v.count, v.first_at, v.last_at, v.samples FROM violations v
                 JOIN licensees l ON l.id = v.licensee_id WHERE ?1 IS NULL OR l.name = ?1 ORDER BY l.name, v.kind",
            )?;
            let rows = statement
                .query_map([licensee], |row| {
                    let samples: String = row.get(5)?;
                    Ok(Violation {
                        licensee: row.get(0)?,
                        kind: row.get(1)?,
                        count: row.get::<_, i64>(2)? as u64,
                        first_at: Timestamp(row.get(3)?),
                        last_at: Timestamp(row.get(4)?),
                        samples: serde_json::from_str(&samples).unwrap_or_default(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn violation_days(
        &self,
        licensee_id: Option<i64>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ViolationDay>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::SELECT_VIOLATION_DAYS)?;
            let rows = statement
                .query_map(params![licensee_id, from.0, until.0], |row| {
                    let samples: String = row.get(6)?;
                    Ok(ViolationDay {
                        licensee_id: row.get(0)?,
                        kind: row.get(1)?,
                        day_start: Timestamp(row.get(2)?),
                        count: row.get::<_, i64>(3)?.max(0) as u64,
                        first_at: Timestamp(row.get(4)?),
                        last_at: Timestamp(row.get(5)?),
                        samples: serde_json::from_str(&samples).unwrap_or_default(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn record_trace_finding(&self, finding: NewTraceFinding) -> StoreResult<i64> {
        let [leak_files, accused, report] = trace_finding_json(&finding)?;
        self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_TRACE_FINDING)?.execute(params![
                finding.at.0,
                finding.actor,
                leak_files,
                finding.outcome,
                accused,
                report
            ])?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn trace_findings(&self, limit: usize) -> StoreResult<Vec<TraceFinding>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::TRACE_FINDINGS)?;
            let rows = statement
                .query_map([limit.min(i64::MAX as usize) as i64], |row| {
                    let json = [row.get(3)?, row.get(5)?, row.get(6)?];
                    Ok(trace_finding(row.get(0)?, row.get(1)?, row.get(2)?, json, row.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn issue_invoices(&self, invoices: Vec<NewInvoice>, change: &Change) -> StoreResult<InvoiceIssue> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let outcome = billing::issue(&tx, invoices, &change)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn invoices(
        &self,
        licensee: Option<&str>,
        month: Option<datapact_billing::Month>,
    ) -> StoreResult<Vec<StoredInvoice>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| billing::invoices(conn, licensee.as_deref(), month, None)).await
    }

    async fn invoice(&self, number: &str) -> StoreResult<Option<StoredInvoice>> {
        let number = number.to_owned();
        self.read(move |conn| Ok(billing::invoices(conn, None, None, Some(number.as_str()))?.pop())).await
    }

    async fn record_payment(&self, payment: NewPayment, change: &Change) -> StoreResult<PaymentRecorded> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let recorded = billing::record_payment(&tx, payment, &change)?;
            tx.commit()?;
            Ok(recorded)
        })
        .await
    }

    async fn log_dunning_transitions(&self, change: &Change) -> StoreResult<Vec<String>> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let logged = billing::log_all_transitions(&tx, &change)?;
            tx.commit()?;
            Ok(logged)
        })
        .await
    }

    async fn void_invoice(&self, number: &str, reason: &str, change: &Change) -> StoreResult<StoredInvoice> {
        let (number, reason, change) = (number.to_owned(), reason.to_owned(), change.clone());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let voided = billing::void_invoice(&tx, &number, &reason, &change)?;
            tx.commit()?;
            Ok(voided)
        })
        .await
    }

    async fn issue_credit_note(&self, note: NewCreditNote, change: &Change) -> StoreResult<StoredCreditNote> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let issued = billing::issue_credit_note(&tx, note, &change)?;
            tx.commit()?;
            Ok(issued)
        })
        .await
    }

    async fn credit_notes(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCreditNote>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| billing::credit_notes(conn, licensee.as_deref())).await
    }

    async fn add_credit(&self, credit: NewCredit, change: &Change) -> StoreResult<CreditAdded> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let added = billing::add_credit(&tx, credit, &change)?;
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn credits(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCredit>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| billing::credits(conn, licensee.as_deref())).await
    }

    async fn fingerprint_ring(&self) -> StoreResult<Option<String>> {
        self.read(|conn| Ok(conn.query_row(sql::FINGERPRINT_RING, [], |row| row.get(0)).optional()?)).await
    }

    async fn put_fingerprint_ring(&self, ring: String, expected: Option<String>, at: Timestamp) -> StoreResult<bool> {
        self.write(move |conn| {
            let changed = match &expected {
                None => conn.execute(sql::INSERT_FINGERPRINT_RING, params![ring, at.0])?,
                Some(expected) => conn.execute(sql::REPLACE_FINGERPRINT_RING, params![ring, at.0, expected])?,
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.read(checkpoints::signing_keys).await
    }

    async fn add_signing_key(&self, seed: [u8; 32], how: KeyChange, change: &Change) -> StoreResult<StoredSigningKey> {
        let change = change.clone();
        self.write(move |conn| checkpoints::add_signing_key(conn, seed, how, &change)).await
    }

    async fn record_checkpoint(
        &self,
        heads: Vec<ChainHead>,
        at: Timestamp,
        slot: Option<i64>,
    ) -> StoreResult<Option<SignedCheckpoint>> {
        self.write(move |conn| checkpoints::record_checkpoint(conn, heads, at, slot)).await
    }

    async fn checkpoints(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<SignedCheckpoint>> {
        self.read(move |conn| checkpoints::checkpoints(conn, before, limit)).await
    }

    async fn add_webhook(&self, webhook: NewWebhook, change: &Change) -> StoreResult<StoredWebhook> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let added = webhooks::add_webhook(&tx, webhook, &change)?;
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn remove_webhook(&self, id: i64, change: &Change) -> StoreResult<StoredWebhook> {
        let change = change.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let removed = webhooks::remove_webhook(&tx, id, &change)?;
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn create_compliance_job(&self, job: NewComplianceJob) -> StoreResult<ComplianceJob> {
        self.write(move |conn| compliance::create_job(conn, job)).await
    }

    async fn compliance_jobs(&self, licensee_id: i64, job_type: Option<&str>) -> StoreResult<Vec<ComplianceJob>> {
        let job_type = job_type.map(str::to_owned);
        self.read(move |conn| compliance::jobs(conn, licensee_id, job_type.as_deref())).await
    }

    async fn compliance_job(&self, licensee_id: i64, id: &str) -> StoreResult<Option<ComplianceJob>> {
        let id = id.to_owned();
        self.read(move |conn| compliance::job(conn, licensee_id, &id)).await
    }

    async fn start_compliance_job(&self, licensee_id: i64, id: &str, at: Timestamp) -> StoreResult<ComplianceJob> {
        let id = id.to_owned();
        self.write(move |conn| compliance::start_job(conn, licensee_id, &id, at)).await
    }

    async fn finish_compliance_job(
        &self,
        licensee_id: i64,
        id: &str,
        outcome: Result<(String, u64), String>,
        at: Timestamp,
    ) -> StoreResult<ComplianceJob> {
        let id = id.to_owned();
        self.write(move |conn| compliance::finish_job(conn, licensee_id, &id, outcome, at)).await
    }

    async fn compliance_job_result(&self, licensee_id: i64, id: &str) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.read(move |conn| compliance::job_result(conn, licensee_id, &id)).await
    }

    async fn record_deletion_notices(
        &self,
        licensee_id: i64,
        notices: Vec<(PostId, Timestamp)>,
        via: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let via = via.to_owned();
        self.write(move |conn| compliance::record_notices(conn, licensee_id, &notices, &via, at)).await
    }

    async fn deletion_notices(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionNotice>> {
        self.read(move |conn| compliance::notices(conn, licensee_id)).await
    }

    async fn record_deletion_violations(&self, violations: Vec<NewDeletionViolation>) -> StoreResult<()> {
        self.write(move |conn| compliance::record_violations(conn, &violations)).await
    }

    async fn deletion_violations(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionViolation>> {
        self.read(move |conn| compliance::violations(conn, licensee_id)).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<StoredWebhook>> {
        self.read(webhooks::webhooks).await
    }

    async fn notify(&self, notification: NewNotification) -> StoreResult<bool> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let new = webhooks::notify(&tx, &notification)?;
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueDelivery>> {
        // Asked every second: when nothing is due (nearly always), a read answers without the writer.
        let due: bool =
            self.read(move |conn| Ok(conn.query_row(sql::ANY_DELIVERY_DUE, [now.0], |row| row.get(0))?)).await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let due = webhooks::claim(&tx, now, lease_ms, limit)?;
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    async fn record_webhook_attempt(&self, attempt: WebhookAttempt) -> StoreResult<()> {
        self.write(move |conn| webhooks::record_attempt(conn, &attempt)).await
    }

    async fn webhook_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDeliveryRecord>> {
        self.read(move |conn| webhooks::deliveries(conn, limit)).await
    }

    async fn payments(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredPayment>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| billing::payments(conn, licensee.as_deref())).await
    }

    async fn invoice_accounts(&self, licensee: Option<&str>) -> StoreResult<Vec<LicenseeAccount>> {
        let licensee = licensee.map(str::to_owned);
        self.read(move |conn| {
            let id = match &licensee {
                None => None,
                Some(name) => match conn
                    .query_row("SELECT id FROM licensees WHERE name = ?1", [name], |row| row.get::<_, i64>(0))
                    .optional()?
                {
                    Some(id) => Some(id),
                    None => return Err(no_licensee(name)),
                },
            };
            billing::accounts(conn, id)
        })
        .await
    }

    async fn add_admin_user(&self, user: NewAdminUser, change: &Change) -> StoreResult<AdminUser> {
        let change = change.clone();
        self.write(move |conn| admin_users::add_user(conn, user, &change)).await
    }

    async fn admin_users(&self) -> StoreResult<Vec<AdminUser>> {
        self.read(admin_users::users).await
    }

    async fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>> {
        let name = name.to_owned();
        self.read(move |conn| admin_users::user_named(conn, &name)).await
    }

    async fn remove_admin_user(&self, name: &str, change: &Change) -> StoreResult<AdminUser> {
        let (name, change) = (name.to_owned(), change.clone());
        self.write(move |conn| admin_users::remove_user(conn, &name, &change)).await
    }

    async fn create_admin_session(&self, session: NewAdminSession, change: &Change) -> StoreResult<()> {
        let change = change.clone();
        self.write(move |conn| admin_users::create_session(conn, session, &change)).await
    }

    async fn admin_session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<AdminSession>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| admin_users::session(conn, &token_hash, now)).await
    }

    async fn record_audit(
        &self,
        change: &Change,
        action: &str,
        subject: &str,
        after: Option<serde_json::Value>,
    ) -> StoreResult<()> {
        let (change, action, subject) = (change.clone(), action.to_owned(), subject.to_owned());
        self.write(move |conn| append_audit(conn, &change, &action, &subject, None, after)).await
    }

    async fn end_admin_session(&self, token_hash: &str) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.write(move |conn| admin_users::end_session(conn, &token_hash)).await
    }

    async fn end_admin_sessions_of(&self, user: &str) -> StoreResult<u64> {
        let user = user.to_owned();
        self.write(move |conn| admin_users::end_sessions_of(conn, &user)).await
    }

    async fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::AUDIT_LOG)?;
            let rows = statement
                .query_map([limit as i64], |row| {
                    Ok(AuditEntry {
                        seq: row.get(0)?,
                        at: Timestamp(row.get(1)?),
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        subject: row.get(4)?,
                        before: parse_json(row.get(5)?),
                        after: parse_json(row.get(6)?),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn change_counter(&self) -> StoreResult<i64> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM meta WHERE key = 'change_counter'")?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(|conn| {
            let count =
                |sql: &str| -> StoreResult<u64> { Ok(conn.query_row(sql, [], |row| row.get::<_, i64>(0))? as u64) };
            Ok(StoreStats {
                posts: count("SELECT COUNT(*) FROM posts WHERE deleted_at IS NULL")?,
                deleted_posts: count("SELECT COUNT(*) FROM posts WHERE deleted_at IS NOT NULL")?,
                authors: count("SELECT COUNT(*) FROM authors")?,
                licensees: count("SELECT COUNT(*) FROM licensees")?,
                keys: count("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")?,
            })
        })
        .await
    }

    async fn backup_to(&self, out: &Path) -> StoreResult<()> {
        let out = out.to_owned();
        self.read(move |conn| {
            if out.exists() {
                return Err(StoreError::Conflict(format!("{} already exists; choose a new path", out.display())));
            }
            let mut target =
                Connection::open(&out).map_err(|e| unavailable(format!("cannot create {}: {e}", out.display())))?;
            // The online backup API copies a consistent snapshot while writers carry on.
            let backup = rusqlite::backup::Backup::new(conn, &mut target)?;
            backup.run_to_completion(1024, Duration::ZERO, None)?;
            drop(backup);
            target.execute_batch("PRAGMA journal_mode = WAL;")?;
            Ok(())
        })
        .await
    }
}

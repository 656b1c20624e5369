//! Storage for datapact: the [`Store`] trait, its embedded SQLite implementation and
//! [`PgStore`] on PostgreSQL.
//!
//! The store is the single source of truth. The CLI writes it directly; a running gateway reads
//! it and polls [`Store::change_counter`] to notice changes to licensees and keys made elsewhere.
//! Every method is async and takes plain domain values, so a PostgreSQL implementation can sit
//! behind the same trait.

pub mod admin_users;
pub mod checkpoints;
pub mod compliance;
pub mod ledger;
pub mod migrate;
pub mod notify;
pub mod ops;
pub mod postgres;
pub mod secrets;
mod shared;
mod sqlite;

use std::path::Path;

use admin_users::{AdminSession, AdminUser, NewAdminSession, NewAdminUser};
use async_trait::async_trait;
use checkpoints::{KeyChange, StoredSigningKey};
use chrono::NaiveDate;
use compliance::{ComplianceJob, DeletionNotice, DeletionViolation, NewComplianceJob, NewDeletionViolation};
use datapact_billing::{Currency, InvoiceAccount, InvoiceLine, Money, Month};
use datapact_core::ingest::IngestRecord;
use datapact_core::{Author, KeyHash, KeyPrefix, KeyRecord, Licensee, Post, PostId, Timestamp, UserId};
use datapact_ledger::{ChainHead, SignedCheckpoint};
use notify::{DueDelivery, NewNotification, NewWebhook, StoredWebhook, WebhookAttempt, WebhookDeliveryRecord};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The file name of the SQLite database inside a data directory.
pub const SQLITE_FILE: &str = "datapact.db";
/// The most ids one lookup may name.
pub const MAX_LOOKUP_IDS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The store could not do its job (I/O, corruption, a lock held too long).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who makes a change and when: every change to terms, keys, licensees and opt-outs is written
/// to the audit log under this actor, in the same transaction as the change itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `cli@HOST`, `admin-api`, or a dashboard user's name.
    pub actor: String,
    pub at: Timestamp,
}

impl Change {
    pub fn new(actor: impl Into<String>, at: Timestamp) -> Self {
        Change { actor: actor.into(), at }
    }
}

/// One line of the admin audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    /// e.g. `licensee.create`, `key.issue`, `key.revoke`, `licensee.block`, `plan.put`, `opt_out.add`.
    pub action: String,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A licensee's stored terms: its status and its entry of the terms file (JSON), if any.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LicenseeTerms {
    pub id: i64,
    pub name: String,
    pub status: datapact_core::LicenseeStatus,
    pub reason: String,
    pub terms: Option<serde_json::Value>,
}

/// Everything that decides what a licensee may do, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TermsState {
    /// Plans by name, as JSON.
    pub plans: Vec<(String, serde_json::Value)>,
    pub licensees: Vec<LicenseeTerms>,
    /// The price book versions last applied (JSON array of `datapact_billing::PriceBook`); `None`
    /// until a terms file with `[[price_book]]` is applied.
    pub price_books: Option<serde_json::Value>,
}

/// One change of `datapact apply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TermsChange {
    PutPlan {
        name: String,
        body: serde_json::Value,
    },
    DeletePlan {
        name: String,
    },
    /// Creates the licensee if needed; sets its status only when `status` is given.
    PutLicensee {
        name: String,
        terms: serde_json::Value,
        status: Option<(datapact_core::LicenseeStatus, String)>,
    },
    /// Removes a licensee's agreement (its history and keys stay; it is no longer served).
    ClearLicensee {
        name: String,
    },
    /// Replaces the price book versions whole (JSON array of `datapact_billing::PriceBook`).
    PutPriceBooks {
        body: serde_json::Value,
    },
}

/// A breach of terms, as the gateway saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViolationEvent {
    pub licensee_id: i64,
    /// e.g. `rate_limited`, `blocked`, `outside_term`, `network_not_allowed`, `endpoint_not_allowed`.
    pub kind: String,
    pub at: Timestamp,
    pub request_id: String,
    pub client: String,
}

/// Violations of one kind by one licensee, aggregated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub licensee: String,
    pub kind: String,
    pub count: u64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    /// The most recent few occurrences.
    pub samples: Vec<ViolationSample>,
}

/// Violations of one kind by one licensee on one UTC day (counted beside [`Violation`]'s
/// running total, from store version 13 on SQLite and 11 on PostgreSQL).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ViolationDay {
    pub licensee_id: i64,
    pub kind: String,
    /// The day's first instant (UTC midnight).
    pub day_start: Timestamp,
    pub count: u64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    /// The day's most recent few occurrences.
    pub samples: Vec<ViolationSample>,
}

/// The first instant of the UTC day holding `at`.
pub fn day_start(at: Timestamp) -> Timestamp {
    const DAY_MS: i64 = 86_400_000;
    Timestamp(at.0 - at.0.rem_euclid(DAY_MS))
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ViolationSample {
    pub at: Timestamp,
    pub request_id: String,
    pub client: String,
}

/// Samples kept per violation row.
pub const VIOLATION_SAMPLES: usize = 10;

/// What happened to one ingest record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestEffect {
    /// A post the store had not seen.
    Inserted,
    /// A known id with new text: kept as a new revision.
    Corrected {
        revision: u32,
    },
    /// The same id and text again: nothing changed.
    Unchanged,
    Deleted,
    /// A deletion of a post already deleted.
    AlreadyDeleted,
    /// Valid on its own but refused by the store (e.g. an unknown author, an unknown id to delete).
    Refused(String),
}

/// Counts over one ingest batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounts {
    pub inserted: u64,
    pub corrected: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub refused: u64,
}

impl IngestCounts {
    pub fn add(&mut self, effect: &IngestEffect) {
        match effect {
            IngestEffect::Inserted => self.inserted += 1,
            IngestEffect::Corrected { .. } => self.corrected += 1,
            IngestEffect::Unchanged => self.unchanged += 1,
            IngestEffect::Deleted | IngestEffect::AlreadyDeleted => self.deleted += 1,
            IngestEffect::Refused(_) => self.refused += 1,
        }
    }
}

/// Which posts of one author to list, newest first.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimelineQuery {
    /// Only ids strictly below this (the pagination cursor, or `until_id`).
    pub before_id: Option<PostId>,
    /// Only ids strictly above this (`since_id`).
    pub after_id: Option<PostId>,
    /// Only posts created at or after this.
    pub start_time: Option<Timestamp>,
    /// Only posts created strictly before this.
    pub end_time: Option<Timestamp>,
    pub limit: usize,
}

/// An author with the counts the users endpoints report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub author: Author,
    /// Posts by this author that are not deleted.
    pub post_count: u64,
}

/// What the gateway needs to authenticate one key, kept in its in-memory cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    pub hash: KeyHash,
    pub record: KeyRecord,
    pub licensee_id: i64,
}

/// One text a post had, in the order posts and corrections were ingested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionEntry {
    /// Position in the store's ingest order; grows with every new post or correction.
    pub seq: i64,
    pub ingested_at: Timestamp,
    /// The post as it is now, but with the text and revision number of this entry.
    pub post: Post,
}

/// A correction or deletion, in the order they happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostEvent {
    pub seq: i64,
    pub post_id: PostId,
    pub kind: PostEventKind,
    pub at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostEventKind {
    Corrected { revision: u32 },
    Deleted,
}

/// A leak file a trace finding was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeakFile {
    /// As given on the command line (`-` for standard input).
    pub name: String,
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// A finding of `datapact trace --record`, to store.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NewTraceFinding {
    pub at: Timestamp,
    /// Who ran the trace (`cli@HOST`).
    pub actor: String,
    pub leak_files: Vec<LeakFile>,
    /// The trace's outcome (`Accused`, `InsufficientEvidence`, ...).
    pub outcome: String,
    pub accused: Vec<i64>,
    /// The full trace report.
    pub report: serde_json::Value,
}

/// A stored trace finding.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TraceFinding {
    pub id: i64,
    #[serde(flatten)]
    pub finding: NewTraceFinding,
}

/// One licensee's month, priced, to issue as an invoice (see [`Store::issue_invoices`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvoice {
    pub licensee: String,
    pub month: Month,
    pub plan: String,
    /// The lines, each rounded once; they must sum to `total`.
    pub lines: Vec<InvoiceLine>,
    pub total: Money,
    /// Counted records priced.
    pub records: u64,
    /// Payable until the end of this day (UTC).
    pub due: NaiveDate,
}

/// An issued invoice, as stored. Never edited after issue, except to be voided.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredInvoice {
    /// `DP-000001`: gapless per platform, in issue order.
    pub number: String,
    pub licensee: String,
    pub licensee_id: i64,
    pub month: Month,
    pub plan: String,
    pub currency: Currency,
    pub issued_at: Timestamp,
    pub due: NaiveDate,
    pub lines: Vec<InvoiceLine>,
    pub total: Money,
    pub records: u64,
    pub voided_at: Option<Timestamp>,
}

/// A credit note to issue against an invoice ([`Store::issue_credit_note`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCreditNote {
    /// The invoice number it corrects.
    pub invoice: String,
    /// More than zero, in the invoice's currency, at most what is outstanding on it.
    pub amount: Money,
    /// Why (printed on the note; required).
    pub reason: String,
}

/// An issued credit note.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredCreditNote {
    /// `CN-000001`: gapless per platform, in issue order.
    pub number: String,
    pub invoice: String,
    pub licensee: String,
    pub amount: Money,
    pub reason: String,
    pub issued_at: Timestamp,
}

/// What an invoice run did: invoices it issued, and those that already existed for the same
/// licensee and month (left as they were).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InvoiceIssue {
    pub issued: Vec<StoredInvoice>,
    pub existing: Vec<StoredInvoice>,
}

/// A payment to record (see [`Store::record_payment`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPayment {
    pub licensee: String,
    /// The invoice number it pays towards.
    pub invoice: String,
    /// More than zero, in the invoice's currency, at most what is outstanding.
    pub amount: Money,
    /// The bank's or processor's reference: unique per licensee, so a payment recorded twice
    /// counts once.
    pub reference: String,
}

/// A recorded payment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredPayment {
    pub licensee: String,
    pub invoice: String,
    pub amount: Money,
    pub reference: String,
    pub received_at: Timestamp,
}

/// The outcome of [`Store::record_payment`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PaymentRecorded {
    pub payment: StoredPayment,
    /// `false` when the same payment (same reference, invoice and amount) was recorded before:
    /// nothing changed.
    pub new: bool,
}

/// A prepaid credit to add ([`Store::add_credit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredit {
    pub licensee: String,
    /// More than zero; every credit of a licensee is in one currency.
    pub amount: Money,
    /// The bank's or processor's reference: unique per licensee, so a credit recorded twice counts once.
    pub reference: String,
}

/// A recorded prepaid credit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredCredit {
    pub licensee_id: i64,
    pub licensee: String,
    pub amount: Money,
    pub reference: String,
    pub added_at: Timestamp,
}

/// The outcome of [`Store::add_credit`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CreditAdded {
    pub credit: StoredCredit,
    /// `false` when the same credit (same reference and amount) was recorded before: nothing changed.
    pub new: bool,
}

/// An invoice as dunning sees it, with its licensee: what the gateway's 402 and `balance` read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LicenseeAccount {
    pub licensee_id: i64,
    pub licensee: String,
    pub month: Month,
    pub account: InvoiceAccount,
}

/// Totals for health and demo output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub posts: u64,
    pub deleted_posts: u64,
    pub authors: u64,
    pub licensees: u64,
    pub keys: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies records in order inside one durable transaction; one effect per record.
    async fn ingest(&self, records: Vec<IngestRecord>, now: Timestamp) -> StoreResult<Vec<IngestEffect>>;

    /// Posts with these ids, in no particular order; deleted posts are included (with `deleted_at`)
    /// so callers can report them; unknown ids are simply absent.
    async fn posts_by_ids(&self, ids: &[PostId]) -> StoreResult<Vec<Post>>;

    /// `(id, revision, author)` of the posts with these ids that are not deleted, in no particular
    /// order; unknown and deleted ids are absent. No text is read or decoded: this is the cheap
    /// per-request check a gateway makes before serving a post rendered earlier (same id and
    /// revision means the same JSON).
    async fn live_post_revisions(&self, ids: &[PostId]) -> StoreResult<Vec<(PostId, u32, UserId)>>;

    /// An author's posts that are not deleted, newest (highest id) first.
    async fn timeline(&self, author: UserId, query: TimelineQuery) -> StoreResult<Vec<Post>>;

    /// The newest posts that are not deleted, highest id first.
    async fn recent_posts(&self, limit: usize) -> StoreResult<Vec<Post>>;

    /// Revisions with `seq` above `after`, oldest first: the feed search indexes and streams follow.
    async fn revisions_after(&self, after: i64, limit: usize) -> StoreResult<Vec<RevisionEntry>>;

    /// The `seq` of the first revision ingested at or after `since` (or the next `seq` to come).
    async fn first_revision_since(&self, since: Timestamp) -> StoreResult<i64>;

    /// Corrections and deletions with `seq` above `after`, oldest first.
    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<PostEvent>>;

    /// `(revision seq, event seq)`: the `seq` of the newest revision and of the newest post event
    /// committed (0 for none), read together in one snapshot; `None` if this store cannot give one.
    ///
    /// A gateway that has applied [`Store::revisions_after`] and [`Store::events_after`] up to
    /// both has seen every change to posts committed before this call, and can answer
    /// [`Store::live_post_revisions`] from memory. That holds only if a `seq` is visible after every
    /// lower one: no transaction may commit a lower `seq` after a higher one can be read. SQLite
    /// gives this (one writer at a time; a row's `seq` is its table's largest plus one, taken in
    /// the transaction that commits it, and rows are never deleted). A PostgreSQL sequence does
    /// not (a transaction can take a `seq`, commit after one that took a higher `seq`, and so
    /// appear behind a reader that already saw the higher one); `PgStore` numbers rows under its
    /// writer lock instead, which restores the property. A store that cannot must return `None`,
    /// which keeps the per-id check.
    async fn feed_watermark(&self) -> StoreResult<Option<(i64, i64)>> {
        Ok(None)
    }

    /// A stamp of the changes to posts, read from memory with no query: `Some(n)` when no change
    /// to posts is being written, where `n` moves with every change that finishes; `None` while
    /// one is in progress, or if this store keeps no stamp. A gateway that read `Some(n)` before
    /// it applied [`Store::revisions_after`] and [`Store::events_after`] to the end has seen every
    /// change to posts up to `n`; while the stamp still reads `Some(n)`, nothing has changed since,
    /// and [`Store::feed_watermark`] need not be asked. The embedded store keeps one (a file
    /// mapped by every process that opens it); the PostgreSQL store does not.
    fn post_change_stamp(&self) -> Option<u64> {
        None
    }

    /// Makes [`Store::post_change_stamp`] readable again after a writer died mid-change, if no
    /// writer is mid-change now; does nothing otherwise.
    fn repair_post_change_stamp(&self) {}

    async fn users_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>>;

    /// Case-insensitive, as X's usernames are.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;

    async fn create_licensee(&self, name: &str, change: &Change) -> StoreResult<Licensee>;
    async fn licensees(&self) -> StoreResult<Vec<Licensee>>;
    async fn licensee(&self, name: &str) -> StoreResult<Option<Licensee>>;

    /// Records a new key for a licensee; the secret itself is never stored.
    async fn insert_key(
        &self,
        licensee: &str,
        prefix: &KeyPrefix,
        hash: KeyHash,
        purpose: &str,
        expires_at: Option<Timestamp>,
        change: &Change,
    ) -> StoreResult<KeyRecord>;
    /// Keys of one licensee, or of all when `None`, oldest first.
    async fn keys(&self, licensee: Option<&str>) -> StoreResult<Vec<KeyRecord>>;
    async fn revoke_key(&self, prefix: &KeyPrefix, change: &Change) -> StoreResult<KeyRecord>;
    /// Every key, revoked ones included (so a refusal can say why), for the gateway's cache.
    async fn key_grants(&self) -> StoreResult<Vec<KeyGrant>>;
    /// Records when keys were last used; the gateway batches these.
    async fn record_key_use(&self, uses: Vec<(KeyPrefix, Timestamp)>) -> StoreResult<()>;

    async fn terms_state(&self) -> StoreResult<TermsState>;
    /// Applies `datapact apply`'s changes in one transaction, each with its audit entry.
    async fn apply_terms(&self, changes: Vec<TermsChange>, change: &Change) -> StoreResult<()>;
    /// Blocks or unblocks a licensee, with the reason shown to its requests.
    async fn set_licensee_status(
        &self,
        name: &str,
        status: datapact_core::LicenseeStatus,
        reason: &str,
        change: &Change,
    ) -> StoreResult<Licensee>;

    /// Marks (or, with `opted_out = false`, unmarks) an author as opting out of a purpose.
    async fn set_opt_out(&self, author: UserId, purpose: &str, opted_out: bool, change: &Change) -> StoreResult<()>;
    /// Every (author, purpose) opt-out.
    async fn opt_outs(&self) -> StoreResult<Vec<(UserId, String)>>;

    async fn record_violations(&self, events: Vec<ViolationEvent>) -> StoreResult<()>;
    async fn violations(&self, licensee: Option<&str>) -> StoreResult<Vec<Violation>>;
    /// Violations per licensee, kind and day (one licensee's, or every licensee's with `None`),
    /// for the days starting in `[from, until)`, ordered by licensee, kind, then day.
    async fn violation_days(
        &self,
        licensee_id: Option<i64>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ViolationDay>>;

    /// Stores a trace finding; returns its id.
    async fn record_trace_finding(&self, finding: NewTraceFinding) -> StoreResult<i64>;
    /// The newest `limit` trace findings, newest first.
    async fn trace_findings(&self, limit: usize) -> StoreResult<Vec<TraceFinding>>;

    /// Issues invoices in one transaction, each numbered next (gapless) and audited
    /// (`invoice.issue`). Idempotent per (licensee, month): one that already has an invoice gets
    /// nothing new, and the existing invoice is reported instead. Licensees suspended at
    /// `change.at` (an older invoice unpaid past its due date and grace days) and not yet logged
    /// so get a `licensee.suspended` audit entry.
    async fn issue_invoices(&self, invoices: Vec<NewInvoice>, change: &Change) -> StoreResult<InvoiceIssue>;
    /// Invoices of one licensee (or all) and one month (or all), in number order.
    async fn invoices(&self, licensee: Option<&str>, month: Option<Month>) -> StoreResult<Vec<StoredInvoice>>;
    /// The invoice with this number.
    async fn invoice(&self, number: &str) -> StoreResult<Option<StoredInvoice>>;
    /// Records a payment received at `change.at`, audited (`payment.record`; `invoice.paid` when it
    /// settles the invoice; `licensee.reinstated` when it lifts a suspension). Idempotent by
    /// reference: the same reference, invoice and amount again returns the first payment
    /// (`new: false`); the same reference with another invoice or amount is a `Conflict`. An
    /// amount above what is outstanding, or towards a void invoice, is `Invalid`.
    async fn record_payment(&self, payment: NewPayment, change: &Change) -> StoreResult<PaymentRecorded>;
    /// Voids an invoice with nothing paid on it (audited; a paid one is corrected by a credit note).
    async fn void_invoice(&self, number: &str, reason: &str, change: &Change) -> StoreResult<StoredInvoice>;
    /// Issues a credit note against an invoice, at most what is outstanding (audited, with the
    /// licensee's dunning transitions: a credit note can reinstate it).
    async fn issue_credit_note(&self, note: NewCreditNote, change: &Change) -> StoreResult<StoredCreditNote>;
    /// Credit notes of one licensee (or all), in number order.
    async fn credit_notes(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCreditNote>>;
    /// Adds a prepaid credit, audited in the same transaction; idempotent by reference (the same
    /// reference with another amount is a conflict).
    async fn add_credit(&self, credit: NewCredit, change: &Change) -> StoreResult<CreditAdded>;
    /// Credits of one licensee (or all), oldest first.
    async fn credits(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredCredit>>;
    /// Whether several machines may share this store (PostgreSQL). The fingerprint secret ring is
    /// then kept in it too ([`secrets::SecretRing::sync_with_store`]), so every gateway renders
    /// and every trace reads with the same versions; the embedded store keeps it in the data
    /// directory's file only.
    fn is_shared(&self) -> bool {
        false
    }
    /// The fingerprint secret ring kept in the store (the ring file's JSON), if any.
    async fn fingerprint_ring(&self) -> StoreResult<Option<String>>;
    /// Keeps `ring` if the kept ring is still `expected` (none: there is none yet): compare and
    /// set, so two machines writing at once never lose a version. Whether it was kept.
    async fn put_fingerprint_ring(&self, ring: String, expected: Option<String>, at: Timestamp) -> StoreResult<bool>;
    /// The ledger checkpoints' signing keys, oldest first (seeds included: never print them).
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// Adds a signing key made from `seed` (audited): with [`KeyChange::Rotate`] the key in use is
    /// retired at the same instant; with [`KeyChange::CreateIfNone`] nothing changes if a key is in
    /// use. Returns the key in use afterwards.
    async fn add_signing_key(&self, seed: [u8; 32], how: KeyChange, change: &Change) -> StoreResult<StoredSigningKey>;
    /// Signs `heads` (read from the ledger at `at`) with the key in use and records them as the
    /// next checkpoint. `slot`: the schedule's interval it is made for; `None` is returned if a
    /// checkpoint for that slot exists already (another gateway made it).
    async fn record_checkpoint(
        &self,
        heads: Vec<ChainHead>,
        at: Timestamp,
        slot: Option<i64>,
    ) -> StoreResult<Option<SignedCheckpoint>>;
    /// Checkpoints numbered below `before` (all when `None`), newest first, at most `limit`
    /// (capped at [`checkpoints::MAX_CHECKPOINTS_PER_READ`]).
    async fn checkpoints(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<SignedCheckpoint>>;
    /// Adds a webhook (audited); its secret is the caller's.
    async fn add_webhook(&self, webhook: NewWebhook, change: &Change) -> StoreResult<StoredWebhook>;
    /// Stops a webhook receiving new notifications (audited); its delivery log stays.
    async fn remove_webhook(&self, id: i64, change: &Change) -> StoreResult<StoredWebhook>;
    /// Every webhook, removed ones included, oldest first.
    async fn webhooks(&self) -> StoreResult<Vec<StoredWebhook>>;
    /// Raises a notification once per dedupe key, with a pending delivery to each webhook subscribed
    /// now; returns whether it was new. (Billing's own notifications are raised in the transaction
    /// of the change that causes them.)
    async fn notify(&self, notification: NewNotification) -> StoreResult<bool>;
    /// Claims up to `limit` deliveries due at `now` for `lease_ms` (no other sender takes them meanwhile).
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records one attempt's outcome.
    async fn record_webhook_attempt(&self, attempt: WebhookAttempt) -> StoreResult<()>;
    /// The delivery log, newest notification first.
    async fn webhook_deliveries(&self, limit: usize) -> StoreResult<Vec<WebhookDeliveryRecord>>;
    /// Payments of one licensee (or all), oldest first.
    async fn payments(&self, licensee: Option<&str>) -> StoreResult<Vec<StoredPayment>>;
    /// Every invoice of one licensee (or all) with its payments, for dunning and balances.
    async fn invoice_accounts(&self, licensee: Option<&str>) -> StoreResult<Vec<LicenseeAccount>>;
    /// Writes every licensee's dunning transition not yet in the audit log (`licensee.suspended`
    /// when a suspension began by time passing, `licensee.reinstated`), as of `change.at`; returns
    /// the licensees logged. Gateways call it on a schedule, so the log follows suspensions that
    /// no invoice run or payment caused.
    async fn log_dunning_transitions(&self, change: &Change) -> StoreResult<Vec<String>>;

    /// Creates a compliance job (issue 10). Refused (`Conflict`) while the licensee has another
    /// job of the same type still created or in progress and not expired: one job per type at a
    /// time, decided under the writer so two requests at once cannot both get one.
    async fn create_compliance_job(&self, job: NewComplianceJob) -> StoreResult<ComplianceJob>;
    /// A licensee's jobs (of one type, or all), newest first.
    async fn compliance_jobs(&self, licensee_id: i64, job_type: Option<&str>) -> StoreResult<Vec<ComplianceJob>>;
    /// One of a licensee's jobs; another licensee's job is `None`, as an unknown one.
    async fn compliance_job(&self, licensee_id: i64, id: &str) -> StoreResult<Option<ComplianceJob>>;
    /// Takes a job's upload: `created` inside its upload window becomes `in_progress` (once: a
    /// second upload is a `Conflict`; an unknown job `NotFound`).
    async fn start_compliance_job(&self, licensee_id: i64, id: &str, at: Timestamp) -> StoreResult<ComplianceJob>;
    /// Ends a job `in_progress`: complete with its result (JSON lines, and how many) or failed with why.
    async fn finish_compliance_job(
        &self,
        licensee_id: i64,
        id: &str,
        outcome: Result<(String, u64), String>,
        at: Timestamp,
    ) -> StoreResult<ComplianceJob>;
    /// A complete job's result file, if the job is the licensee's and complete.
    async fn compliance_job_result(&self, licensee_id: i64, id: &str) -> StoreResult<Option<String>>;
    /// Records that a licensee was told at `at` (`via`: `feed` or `job:<id>`) of these deletions
    /// `(post, deleted at)`; the first notice of a post is kept, later ones change nothing.
    /// Returns how many were new.
    async fn record_deletion_notices(
        &self,
        licensee_id: i64,
        notices: Vec<(PostId, Timestamp)>,
        via: &str,
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// Deletion notices of one licensee (or all), by licensee, then time.
    async fn deletion_notices(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionNotice>>;
    /// Records deletion-compliance violations proved from a leak, in one transaction.
    async fn record_deletion_violations(&self, violations: Vec<NewDeletionViolation>) -> StoreResult<()>;
    /// Deletion-compliance violations of one licensee (or all), oldest first.
    async fn deletion_violations(&self, licensee_id: Option<i64>) -> StoreResult<Vec<DeletionViolation>>;

    /// Adds a dashboard user (audited `admin_user.add`), or gives a removed one back; an active
    /// user of that name is a `Conflict`.
    async fn add_admin_user(&self, user: NewAdminUser, change: &Change) -> StoreResult<AdminUser>;
    /// Every dashboard user, removed ones included, by name.
    async fn admin_users(&self) -> StoreResult<Vec<AdminUser>>;
    /// One dashboard user (removed or not), with its password hash.
    async fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>>;
    /// Removes (disables) a dashboard user and ends its sessions (audited `admin_user.remove`).
    async fn remove_admin_user(&self, name: &str, change: &Change) -> StoreResult<AdminUser>;
    /// Records a session at login (audited `dashboard.login` under the user's name); sessions
    /// expired at `change.at` are deleted.
    async fn create_admin_session(&self, session: NewAdminSession, change: &Change) -> StoreResult<()>;
    /// The live session with this token hash at `now`: unexpired, its user still enabled.
    async fn admin_session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<AdminSession>>;
    /// Ends a session (logout).
    async fn end_admin_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Ends every session of `user` (a gateway ends the admin token's when it starts, since the
    /// token may have changed); returns how many.
    async fn end_admin_sessions_of(&self, user: &str) -> StoreResult<u64>;
    /// Writes one audit entry on its own, for actions that change nothing else in the store (a
    /// dashboard trace run, a logout).
    async fn record_audit(
        &self,
        change: &Change,
        action: &str,
        subject: &str,
        after: Option<serde_json::Value>,
    ) -> StoreResult<()>;

    /// The newest `limit` audit entries, newest first.
    async fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>>;

    /// A number that grows whenever licensees, keys, plans or opt-outs change, from any process.
    async fn change_counter(&self) -> StoreResult<i64>;

    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Writes a consistent copy of the database to `out` while the store stays in use.
    async fn backup_to(&self, out: &Path) -> StoreResult<()>;
}

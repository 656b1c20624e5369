//! Pure rules both stores share (SQLite and PostgreSQL): JSON columns, the checks made before a
//! write, building domain values from the primitive values a row holds, and the billing
//! decisions (which payment is a repeat, a conflict or too much; which dunning transitions to
//! log). The stores only move values in and out of their databases.

use chrono::NaiveDate;
use datapact_billing::{BillingTerms, Currency, InvoiceAccount, InvoiceLine, Money, Month, Suspension};
use datapact_core::{Author, LicenseeStatus, Post, PostId, PublicMetrics, ReferencedPost, Timestamp, UserId};
use serde_json::json;

use crate::notify::{NewNotification, NotificationKind};
use crate::{
    CreditAdded, LicenseeTerms, NewCredit, NewCreditNote, NewInvoice, NewPayment, NewTraceFinding, PaymentRecorded,
    StoreError, StoreResult, StoredCredit, StoredCreditNote, StoredInvoice, StoredPayment, TraceFinding,
    VIOLATION_SAMPLES, ViolationEvent, ViolationSample,
};

/// Columns both stores select, in the order their row readers expect.
pub(crate) const POST_COLUMNS: &str = "id, author_id, text, revision, created_at, lang, conversation_id, \
    in_reply_to_user_id, referenced_posts, edit_history, retweet_count, reply_count, like_count, \
    quote_count, bookmark_count, impression_count, deleted_at";

pub(crate) const USER_COLUMNS: &str = "a.id, a.username, a.name, a.created_at, a.description, a.location, \
    a.verified, a.protected, a.followers_count, a.following_count, a.listed_count, \
    (SELECT COUNT(*) FROM posts p WHERE p.author_id = a.id AND p.deleted_at IS NULL)";

pub(crate) const KEY_COLUMNS: &str =
    "k.prefix, l.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.hash, l.id, k.purpose";

pub(crate) const INVOICE_COLUMNS: &str = "i.seq, i.number, i.licensee_id, l.name, i.month, i.plan, i.currency, i.issued_at, \
    i.due, i.lines, i.records, i.total_minor, i.voided_at";

pub(crate) const PAYMENT_COLUMNS: &str = "l.name, i.number, p.amount_minor, p.currency, p.reference, p.received_at FROM payments p \
     JOIN licensees l ON l.id = p.licensee_id JOIN invoices i ON i.seq = p.invoice_seq";

/// Statements both stores run, written with SQLite's `?N` parameters (the PostgreSQL store reads
/// each as `$N`); SQL both databases parse the same way.
pub(crate) mod sql {
    pub(crate) const INSERT_AUDIT: &str =
        "INSERT INTO audit_log (at, actor, action, subject, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

    /// An author, or its new details; a row already as given is not written (no change counted).
    pub(crate) const UPSERT_AUTHOR: &str = "INSERT INTO authors (id, username, name, created_at, description,
           location, verified, protected, followers_count, following_count, listed_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET username = excluded.username, name = excluded.name,
           description = excluded.description, location = excluded.location,
           verified = excluded.verified, protected = excluded.protected,
           followers_count = excluded.followers_count, following_count = excluded.following_count,
           listed_count = excluded.listed_count
         WHERE (authors.username, authors.name, authors.description, authors.location, authors.verified,
                authors.protected, authors.followers_count, authors.following_count, authors.listed_count)
           IS DISTINCT FROM (excluded.username, excluded.name, excluded.description, excluded.location,
                excluded.verified, excluded.protected, excluded.followers_count, excluded.following_count,
                excluded.listed_count)";

    pub(crate) const INSERT_OPT_OUT: &str =
        "INSERT INTO author_opt_outs (author_id, purpose, at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";

    /// A post not seen before, at revision 1 (nothing when the id is known).
    pub(crate) static INSERT_POST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO posts ({}) VALUES
             (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, NULL)
             ON CONFLICT (id) DO NOTHING",
            super::POST_COLUMNS
        )
    });

    pub(crate) const UPSERT_PLAN: &str = "INSERT INTO plans (name, body, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at";

    pub(crate) const UPSERT_PRICE_BOOKS: &str = "INSERT INTO price_books (id, body, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at";

    /// One more violation of a kind: counted, first and last time widened, samples replaced.
    pub(crate) const UPSERT_VIOLATION: &str =
        "INSERT INTO violations (licensee_id, kind, count, first_at, last_at, samples) VALUES (?1, ?2, 1, ?3, ?3, ?4)
         ON CONFLICT (licensee_id, kind) DO UPDATE SET count = violations.count + 1,
           first_at = CASE WHEN excluded.first_at < violations.first_at THEN excluded.first_at ELSE violations.first_at END,
           last_at = CASE WHEN excluded.last_at > violations.last_at THEN excluded.last_at ELSE violations.last_at END,
           samples = excluded.samples";

    /// The same, counted on the violation's UTC day (`?3`: the day's first instant, `?4`: when).
    pub(crate) const UPSERT_VIOLATION_DAY: &str =
        "INSERT INTO violation_days (licensee_id, kind, day_start, count, first_at, last_at, samples)
         VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5)
         ON CONFLICT (licensee_id, kind, day_start) DO UPDATE SET count = violation_days.count + 1,
           first_at = CASE WHEN excluded.first_at < violation_days.first_at THEN excluded.first_at ELSE violation_days.first_at END,
           last_at = CASE WHEN excluded.last_at > violation_days.last_at THEN excluded.last_at ELSE violation_days.last_at END,
           samples = excluded.samples";

    pub(crate) const SELECT_VIOLATION_DAYS: &str =
        "SELECT licensee_id, kind, day_start, count, first_at, last_at, samples FROM violation_days
         WHERE (CAST(?1 AS BIGINT) IS NULL OR licensee_id = ?1) AND day_start >= ?2 AND day_start < ?3
         ORDER BY licensee_id, kind, day_start";

    pub(crate) const INSERT_INVOICE: &str = "INSERT INTO invoices (seq, number, licensee_id, month, plan, currency,
           issued_at, due, lines, records, total_minor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

    pub(crate) const INSERT_PAYMENT: &str =
        "INSERT INTO payments (licensee_id, invoice_seq, amount_minor, currency, reference, received_at)
         VALUES (?1, (SELECT seq FROM invoices WHERE number = ?2), ?3, ?4, ?5, ?6)";

    /// What has been paid towards an invoice (`?1`: its number), in minor units.
    /// What payments and credit notes settled of an invoice (`?1`: its number), in minor units.
    pub(crate) const SETTLED_TOWARDS: &str = "SELECT CAST(
             COALESCE((SELECT SUM(amount_minor) FROM payments
                       WHERE invoice_seq = (SELECT seq FROM invoices WHERE number = ?1)), 0)
           + COALESCE((SELECT SUM(amount_minor) FROM credit_notes
                       WHERE invoice_seq = (SELECT seq FROM invoices WHERE number = ?1)), 0) AS BIGINT)";
    /// Deliveries still pending to a removed webhook (`?1`) are given up (at `?2`).
    pub(crate) const FAIL_REMOVED_DELIVERIES: &str = "UPDATE webhook_deliveries
         SET status = 'failed', last_error = 'the webhook was removed', next_attempt_at = ?2
         WHERE webhook_id = ?1 AND status = 'pending'";

    /// Revisions after a `seq` (`?1`), oldest first, at most `?2`, each with its post as it is now:
    /// the post's columns (as [`super::POST_COLUMNS`]), then seq, ingested_at, text, revision.
    pub(crate) static REVISIONS_AFTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let columns = super::POST_COLUMNS.split(", ").map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT {columns}, r.seq, r.ingested_at, r.text, r.revision FROM post_revisions r
             JOIN posts p ON p.id = r.post_id WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2"
        )
    });

    pub(crate) const EVENTS_AFTER: &str =
        "SELECT seq, post_id, kind, revision, at FROM post_events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

    /// The newest revision and event `seq` (0 for none), in one statement so in one snapshot.
    pub(crate) const FEED_HEADS: &str = "SELECT COALESCE((SELECT MAX(seq) FROM post_revisions), 0),
                COALESCE((SELECT MAX(seq) FROM post_events), 0)";

    pub(crate) const AUDIT_LOG: &str =
        "SELECT seq, at, actor, action, subject, before, after FROM audit_log ORDER BY seq DESC LIMIT ?1";

    pub(crate) const INSERT_TRACE_FINDING: &str = "INSERT INTO trace_findings (at, actor, leak_files, outcome, accused,
           report) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

    pub(crate) const TRACE_FINDINGS: &str =
        "SELECT id, at, actor, leak_files, outcome, accused, report FROM trace_findings ORDER BY id DESC LIMIT ?1";

    /// Keys of one licensee (`?1`) or all (NULL), oldest first.
    pub(crate) static KEYS_OF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM api_keys k JOIN licensees l ON l.id = k.licensee_id
             WHERE CAST(?1 AS TEXT) IS NULL OR l.name = ?1 ORDER BY k.created_at, k.id",
            super::KEY_COLUMNS
        )
    });

    pub(crate) static KEY_BY_PREFIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM api_keys k JOIN licensees l ON l.id = k.licensee_id WHERE k.prefix = ?1",
            super::KEY_COLUMNS
        )
    });

    /// Invoices of a licensee (`?1`), month (`?2`) and number (`?3`), each NULL for any, in number order.
    pub(crate) static INVOICES_WHERE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM invoices i JOIN licensees l ON l.id = i.licensee_id
             WHERE (CAST(?1 AS TEXT) IS NULL OR l.name = ?1) AND (CAST(?2 AS TEXT) IS NULL OR i.month = ?2)
               AND (CAST(?3 AS TEXT) IS NULL OR i.number = ?3)
             ORDER BY i.seq",
            super::INVOICE_COLUMNS
        )
    });

    pub(crate) static INVOICE_BY_SEQ: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM invoices i JOIN licensees l ON l.id = i.licensee_id WHERE i.seq = ?1",
            super::INVOICE_COLUMNS
        )
    });

    /// The invoices dunning reads, of one licensee id (`?1`) or all (NULL), in number order.
    pub(crate) const ACCOUNT_INVOICES: &str =
        "SELECT i.seq, i.number, i.licensee_id, l.name, i.month, i.currency, i.total_minor, i.due, i.voided_at
         FROM invoices i JOIN licensees l ON l.id = i.licensee_id
         WHERE CAST(?1 AS BIGINT) IS NULL OR i.licensee_id = ?1 ORDER BY i.seq";

    /// Their payments, oldest first.
    pub(crate) const ACCOUNT_PAYMENTS: &str = "SELECT invoice_seq, amount_minor, currency, received_at FROM payments
         WHERE CAST(?1 AS BIGINT) IS NULL OR licensee_id = ?1 ORDER BY id";

    pub(crate) const CREDITS_OF: &str = "SELECT c.licensee_id, l.name, c.amount_minor, c.currency, c.reference,
         c.added_at FROM credits c JOIN licensees l ON l.id = c.licensee_id
         WHERE CAST(?1 AS TEXT) IS NULL OR l.name = ?1 ORDER BY c.id";
    pub(crate) const CREDIT_BY_REFERENCE: &str = "SELECT c.licensee_id, l.name, c.amount_minor, c.currency,
         c.reference, c.added_at FROM credits c JOIN licensees l ON l.id = c.licensee_id
         WHERE c.licensee_id = ?1 AND c.reference = ?2";
    pub(crate) const CREDIT_OTHER_CURRENCY: &str =
        "SELECT currency FROM credits WHERE licensee_id = ?1 AND currency <> ?2 LIMIT 1";
    pub(crate) const INSERT_CREDIT: &str =
        "INSERT INTO credits (licensee_id, amount_minor, currency, reference, added_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    pub(crate) const CREDIT_NOTES_OF: &str = "SELECT c.number, i.number, l.name, c.amount_minor, c.currency,
         c.reason, c.issued_at FROM credit_notes c JOIN invoices i ON i.seq = c.invoice_seq
         JOIN licensees l ON l.id = c.licensee_id WHERE CAST(?1 AS TEXT) IS NULL OR l.name = ?1 ORDER BY c.seq";
    pub(crate) const ACCOUNT_CREDIT_NOTES: &str = "SELECT invoice_seq, amount_minor, currency, issued_at
         FROM credit_notes WHERE CAST(?1 AS BIGINT) IS NULL OR licensee_id = ?1 ORDER BY seq";
    pub(crate) const NEXT_CREDIT_NOTE: &str = "SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_notes";
    pub(crate) const INSERT_CREDIT_NOTE: &str = "INSERT INTO credit_notes (seq, number, invoice_seq, licensee_id,
         amount_minor, currency, reason, issued_at)
         VALUES (?1, ?2, (SELECT seq FROM invoices WHERE number = ?3), ?4, ?5, ?6, ?7, ?8)";
    pub(crate) const SETTLEMENTS_OF: &str = "SELECT
         (SELECT COUNT(*) FROM payments p JOIN invoices i ON i.seq = p.invoice_seq WHERE i.number = ?1)
         + (SELECT COUNT(*) FROM credit_notes c JOIN invoices i ON i.seq = c.invoice_seq WHERE i.number = ?1)";
    pub(crate) const VOID_INVOICE: &str = "UPDATE invoices SET voided_at = ?2, void_reason = ?3 WHERE number = ?1";
    /// Webhooks, as `webhook_from_row` / `webhook_at` read them: id, licensee, url, secret, events,
    /// created_at, removed_at.
    pub(crate) const WEBHOOKS: &str = "SELECT w.id, l.name, w.url, w.secret, w.events, w.created_at, w.removed_at
         FROM webhooks w LEFT JOIN licensees l ON l.id = w.licensee_id ORDER BY w.id";
    pub(crate) const WEBHOOK_BY_ID: &str = "SELECT w.id, l.name, w.url, w.secret, w.events, w.created_at,
         w.removed_at FROM webhooks w LEFT JOIN licensees l ON l.id = w.licensee_id WHERE w.id = ?1";
    pub(crate) const REMOVE_WEBHOOK: &str = "UPDATE webhooks SET removed_at = ?2 WHERE id = ?1";
    /// Pending deliveries due at `?1`, at most `?2`, oldest first, with what sending needs.
    pub(crate) const DUE_DELIVERIES: &str =
        "SELECT d.notification_id, d.webhook_id, w.url, w.secret, n.kind, l.name, n.payload, n.created_at, d.attempts
         FROM webhook_deliveries d
         JOIN webhooks w ON w.id = d.webhook_id
         JOIN notifications n ON n.id = d.notification_id
         JOIN licensees l ON l.id = n.licensee_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
         ORDER BY d.next_attempt_at, d.notification_id, d.webhook_id LIMIT ?2";
    pub(crate) const LEASE_DELIVERY: &str =
        "UPDATE webhook_deliveries SET next_attempt_at = ?3 WHERE notification_id = ?1 AND webhook_id = ?2";
    pub(crate) const RECORD_ATTEMPT: &str =
        "UPDATE webhook_deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4,
             last_attempt_at = ?5, last_status = ?6, last_error = ?7, delivered_at = ?8
         WHERE notification_id = ?1 AND webhook_id = ?2 AND status = 'pending'";
    /// The delivery log, newest notification first, at most `?1`.
    pub(crate) const DELIVERY_LOG: &str =
        "SELECT d.notification_id, n.kind, l.name, d.webhook_id, w.url, d.status, d.attempts, n.created_at,
                d.last_attempt_at, d.last_status, d.last_error, d.next_attempt_at, d.delivered_at
         FROM webhook_deliveries d
         JOIN webhooks w ON w.id = d.webhook_id
         JOIN notifications n ON n.id = d.notification_id
         JOIN licensees l ON l.id = n.licensee_id
         ORDER BY d.notification_id DESC, d.webhook_id LIMIT ?1";
    pub(crate) const ANY_DELIVERY_DUE: &str =
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1)";
    pub(crate) const FINGERPRINT_RING: &str = "SELECT body FROM fingerprint_ring WHERE id = 1";
    pub(crate) const INSERT_FINGERPRINT_RING: &str =
        "INSERT INTO fingerprint_ring (id, body, updated_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING";
    pub(crate) const REPLACE_FINGERPRINT_RING: &str =
        "UPDATE fingerprint_ring SET body = ?1, updated_at = ?2 WHERE id = 1 AND body = ?3";
    pub(crate) const LICENSEES_WITH_INVOICES: &str =
        "SELECT DISTINCT l.id, l.name FROM licensees l JOIN invoices i ON i.licensee_id = l.id ORDER BY l.id";

    /// Payments of one licensee (`?1`) or all (NULL), oldest first.
    pub(crate) static PAYMENTS_OF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {} WHERE CAST(?1 AS TEXT) IS NULL OR l.name = ?1 ORDER BY p.id", super::PAYMENT_COLUMNS)
    });

    /// The licensee's (`?1`, an id) payment under a reference (`?2`).
    pub(crate) static PAYMENT_BY_REFERENCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {} WHERE p.licensee_id = ?1 AND p.reference = ?2", super::PAYMENT_COLUMNS)
    });
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(crate) fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

/// Counts are `u64` in the domain and signed 64-bit integers in both databases.
pub(crate) fn clamp_count(count: u64) -> i64 {
    count.min(i64::MAX as u64) as i64
}

/// An audit entry to append in the transaction of the change it records.
#[derive(Clone, Debug)]
pub(crate) struct AuditDraft {
    pub action: &'static str,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditDraft {
    pub(crate) fn after(action: &'static str, subject: impl Into<String>, after: serde_json::Value) -> Self {
        AuditDraft { action, subject: subject.into(), before: None, after: Some(after) }
    }
}

pub(crate) fn unknown_author(id: UserId) -> String {
    format!("unknown author {id}: include an `author` object or `includes.users` the first time an author appears")
}

pub(crate) fn username_taken(username: &str) -> String {
    format!("username {username:?} already belongs to another author")
}

/// Why the deletion of an id the store does not hold is refused.
pub(crate) fn no_post_to_delete(id: PostId) -> String {
    format!("no post with id {id} to delete")
}

/// Whether an ingest batch leaves an author alone: it wrote or confirmed this author (`seen`)
/// earlier in the batch, and the record carries no details or the same ones.
pub(crate) fn author_settled(seen: Option<&Option<Author>>, author: Option<&Author>) -> bool {
    seen.is_some_and(|seen| author.is_none() || seen.as_ref() == author)
}

pub(crate) fn no_licensee(name: &str) -> StoreError {
    StoreError::NotFound(format!("no licensee named {name:?}"))
}

pub(crate) fn check_block_reason(status: LicenseeStatus, reason: &str) -> StoreResult<()> {
    if status == LicenseeStatus::Blocked && reason.trim().is_empty() {
        return Err(StoreError::Invalid("a block needs a reason: say why; the licensee sees it".into()));
    }
    Ok(())
}

pub(crate) fn check_purpose(purpose: &str) -> StoreResult<()> {
    if datapact_core::purpose::Purpose::parse(purpose).is_none() {
        return Err(StoreError::Invalid(format!(
            "purpose {purpose:?} is not one of {}",
            datapact_core::purpose::Purpose::names()
        )));
    }
    Ok(())
}

/// The audit entry of an opt-out added (`opted_out`) or removed.
pub(crate) fn opt_out_entry(author: UserId, purpose: &str, opted_out: bool) -> AuditDraft {
    let subject = format!("author:{author}/{purpose}");
    let value = json!({ "author": author, "purpose": purpose });
    if opted_out {
        AuditDraft { action: "opt_out.add", subject, before: None, after: Some(value) }
    } else {
        AuditDraft { action: "opt_out.remove", subject, before: Some(value), after: None }
    }
}

/// The licensee's terms after a `PutLicensee` change.
pub(crate) fn licensee_terms_after(
    before: &LicenseeTerms,
    terms: serde_json::Value,
    status: Option<(LicenseeStatus, String)>,
) -> LicenseeTerms {
    let mut after = before.clone();
    after.terms = Some(terms);
    if let Some((status, reason)) = status {
        after.status = status;
        after.reason = reason;
    }
    after
}

/// A violation row's samples (JSON) with one more event, keeping the newest [`VIOLATION_SAMPLES`].
pub(crate) fn push_violation_sample(existing: Option<&str>, event: &ViolationEvent) -> StoreResult<String> {
    let mut samples: Vec<ViolationSample> =
        existing.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default();
    samples.push(ViolationSample { at: event.at, request_id: event.request_id.clone(), client: event.client.clone() });
    if samples.len() > VIOLATION_SAMPLES {
        samples.drain(..samples.len() - VIOLATION_SAMPLES);
    }
    serde_json::to_string(&samples).map_err(unavailable)
}

/// The columns of a stored post, as primitive values.
pub(crate) struct PostParts {
    pub id: i64,
    pub author_id: i64,
    pub text: String,
    pub revision: i64,
    pub created_at: i64,
    pub lang: Option<String>,
    pub conversation_id: i64,
    pub in_reply_to_user_id: Option<i64>,
    /// JSON array, `None` when empty.
    pub referenced_posts: Option<String>,
    /// JSON array.
    pub edit_history: String,
    /// retweet, reply, like, quote, bookmark, impression.
    pub counts: [i64; 6],
    pub deleted_at: Option<i64>,
}

pub(crate) fn revision_number(revision: i64) -> Result<u32, String> {
    u32::try_from(revision).map_err(|_| format!("stored revision {revision} is out of range"))
}

impl PostParts {
    pub(crate) fn into_post(self) -> Result<Post, String> {
        let referenced_posts: Vec<ReferencedPost> = match self.referenced_posts {
            Some(json) => serde_json::from_str(&json).map_err(|e| format!("stored referenced posts: {e}"))?,
            None => Vec::new(),
        };
        let edit_history = serde_json::from_str(&self.edit_history).map_err(|e| format!("stored edit history: {e}"))?;
        let [retweet, reply, like, quote, bookmark, impression] = self.counts.map(|count| count.max(0) as u64);
        Ok(Post {
            id: PostId::new(self.id),
            author_id: UserId::new(self.author_id),
            text: self.text,
            revision: revision_number(self.revision)?,
            created_at: Timestamp(self.created_at),
            lang: self.lang,
            conversation_id: PostId::new(self.conversation_id),
            in_reply_to_user_id: self.in_reply_to_user_id.map(UserId::new),
            referenced_posts,
            edit_history,
            public_metrics: PublicMetrics {
                retweet_count: retweet,
                reply_count: reply,
                like_count: like,
                quote_count: quote,
                bookmark_count: bookmark,
                impression_count: impression,
            },
            deleted_at: self.deleted_at.map(Timestamp),
        })
    }
}

/// The JSON columns of a trace finding: leak files, accused, report.
pub(crate) fn trace_finding_json(finding: &NewTraceFinding) -> StoreResult<[String; 3]> {
    Ok([
        serde_json::to_string(&finding.leak_files).map_err(unavailable)?,
        serde_json::to_string(&finding.accused).map_err(unavailable)?,
        serde_json::to_string(&finding.report).map_err(unavailable)?,
    ])
}

/// A stored trace finding from its columns (as [`sql::TRACE_FINDINGS`] selects them).
pub(crate) fn trace_finding(
    id: i64,
    at: i64,
    actor: String,
    [leak_files, accused, report]: [String; 3],
    outcome: String,
) -> TraceFinding {
    TraceFinding {
        id,
        finding: NewTraceFinding {
            at: Timestamp(at),
            actor,
            leak_files: serde_json::from_str(&leak_files).unwrap_or_default(),
            outcome,
            accused: serde_json::from_str(&accused).unwrap_or_default(),
            report: serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
        },
    }
}

/// The printed number of the `seq`-th invoice of the platform.
pub(crate) fn invoice_number(seq: i64) -> String {
    format!("DP-{seq:06}")
}

pub(crate) fn parse_month(text: &str) -> Result<Month, String> {
    Month::parse(text).ok_or_else(|| format!("stored month {text:?} is not YYYY-MM"))
}

pub(crate) fn parse_currency(text: &str) -> Result<Currency, String> {
    Currency::parse(text).ok_or_else(|| format!("stored currency {text:?} is unknown"))
}

pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("stored date {text:?} is not YYYY-MM-DD"))
}

pub(crate) fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_lines(text: &str) -> Result<Vec<InvoiceLine>, String> {
    serde_json::from_str(text).map_err(|e| format!("stored invoice lines: {e}"))
}

/// A licensee's billing terms from its stored terms (JSON): the defaults when it has none.
pub(crate) fn billing_terms_of(licensee_id: i64, terms: Option<String>) -> StoreResult<BillingTerms> {
    let billing = terms
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|mut terms| terms.get_mut("billing").map(serde_json::Value::take));
    Ok(match billing {
        Some(billing) => serde_json::from_value(billing).map_err(|e| {
            unavailable(format!("the stored billing terms of licensee #{licensee_id} do not read: {e}"))
        })?,
        None => BillingTerms::default(),
    })
}

pub(crate) fn no_licensee_to_bill(name: &str) -> StoreError {
    StoreError::NotFound(format!("no licensee named {name:?} (see `datapact licensee list`)"))
}

/// The checks an invoice passes before it is issued: one currency, no negative line, and lines
/// that sum to the total.
pub(crate) fn check_new_invoice(invoice: &NewInvoice) -> StoreResult<()> {
    let currency = invoice.total.currency;
    let sum: i128 = invoice.lines.iter().map(|l| i128::from(l.amount.minor)).sum();
    if invoice.lines.iter().any(|l| l.amount.currency != currency || l.amount.minor < 0) {
        return Err(StoreError::Invalid(format!(
            "the invoice of {} for {} mixes currencies or has a negative line",
            invoice.licensee, invoice.month
        )));
    }
    if sum != i128::from(invoice.total.minor) || invoice.total.minor < 0 {
        return Err(StoreError::Invalid(format!(
            "the lines of the invoice of {} for {} sum to {sum} minor units, not its total {}",
            invoice.licensee, invoice.month, invoice.total
        )));
    }
    Ok(())
}

pub(crate) fn invoice_records(invoice: &NewInvoice) -> StoreResult<i64> {
    i64::try_from(invoice.records).map_err(|_| StoreError::Invalid("record count overflows".into()))
}

/// The audit entry of an invoice issued.
pub(crate) fn invoice_issued_entry(invoice: &NewInvoice, stored: &StoredInvoice) -> AuditDraft {
    let entry = json!({ "cause": format!("invoice run for {}", invoice.month), "invoice": to_json(stored) });
    AuditDraft::after("invoice.issue", stored.number.clone(), entry)
}

/// The longest payment or credit reference accepted (bank references are far shorter).
const MAX_REFERENCE: usize = 200;

/// A payment's or credit's (`what`) reference, trimmed, if it is one.
pub(crate) fn reference<'a>(what: &str, reference: &'a str) -> StoreResult<&'a str> {
    let trimmed = reference.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_REFERENCE || trimmed.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "a {what} reference is 1–{MAX_REFERENCE} printable characters (the bank's or processor's reference); \
             got {reference:?}"
        )));
    }
    Ok(trimmed)
}

/// The payment's reference, trimmed, if it is one.
pub(crate) fn payment_reference(payment: &NewPayment) -> StoreResult<&str> {
    reference("payment", &payment.reference)
}

/// The longest reason accepted for a void or a credit note.
const MAX_REASON: usize = 500;

/// The reason given for `what` (printed on the document), trimmed, if it is one.
pub(crate) fn document_reason(what: &str, reason: &str) -> StoreResult<String> {
    let trimmed = reason.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_REASON || trimmed.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} needs a reason of 1–{MAX_REASON} printable characters (it is printed on the document); got {reason:?}"
        )));
    }
    Ok(trimmed.to_owned())
}

/// The printed number of the `seq`-th credit note of the platform.
pub(crate) fn credit_note_number(seq: i64) -> String {
    format!("CN-{seq:06}")
}

/// Whether a credit note may be issued against `invoice` with `outstanding` owed on it: not void,
/// same currency, more than zero, at most what is outstanding.
pub(crate) fn creditable(note: &NewCreditNote, invoice: &StoredInvoice, outstanding: Money) -> StoreResult<()> {
    if invoice.voided_at.is_some() {
        return Err(StoreError::Invalid(format!("invoice {} is void: nothing is owed on it", invoice.number)));
    }
    if note.amount.currency != invoice.currency {
        return Err(StoreError::Invalid(format!(
            "invoice {} is in {}, the credit note in {}: issue it in the invoice's currency",
            invoice.number, invoice.currency, note.amount.currency
        )));
    }
    if note.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a credit note is more than zero; got {}", note.amount)));
    }
    if note.amount.minor > outstanding.minor {
        return Err(StoreError::Invalid(format!(
            "{} is more than the {} outstanding on invoice {}: a credit note takes off at most what is owed",
            note.amount, outstanding, invoice.number
        )));
    }
    Ok(())
}

/// The audit entries of a credit note issued against an invoice that had `outstanding` owed
/// (`credit_note.issue`, and `invoice.paid` when it settles the invoice), and the cause later
/// dunning entries name.
pub(crate) fn credit_note_entries(issued: &StoredCreditNote, outstanding: Money) -> (Vec<AuditDraft>, String) {
    let cause = format!("credit note {} of {} against invoice {}", issued.number, issued.amount, issued.invoice);
    let entry = json!({ "cause": cause, "credit_note": to_json(issued) });
    let mut entries = vec![AuditDraft::after("credit_note.issue", issued.number.clone(), entry)];
    if outstanding.minor == issued.amount.minor {
        entries.push(AuditDraft::after("invoice.paid", issued.invoice.clone(), json!({ "cause": cause })));
    }
    (entries, cause)
}

/// Why an invoice cannot be voided, if it cannot: already void, or something paid or credited on it.
pub(crate) fn voidable(invoice: &StoredInvoice, settlements: i64) -> StoreResult<()> {
    if invoice.voided_at.is_some() {
        return Err(StoreError::Conflict(format!("invoice {} is already void", invoice.number)));
    }
    if settlements > 0 {
        return Err(StoreError::Conflict(format!(
            "invoice {} has payments or credit notes: correct it with a credit note rather than voiding it",
            invoice.number
        )));
    }
    Ok(())
}

/// A credit recorded earlier under the same reference: the same credit again counts once; another
/// amount under it is a conflict.
pub(crate) fn repeated_credit(credit: &NewCredit, earlier: Option<StoredCredit>) -> StoreResult<Option<CreditAdded>> {
    let Some(earlier) = earlier else { return Ok(None) };
    if earlier.amount == credit.amount {
        return Ok(Some(CreditAdded { credit: earlier, new: false }));
    }
    Err(StoreError::Conflict(format!(
        "reference {:?} of {} was already used for a credit of {} on {}; a different credit needs its own reference",
        earlier.reference, credit.licensee, earlier.amount, earlier.added_at
    )))
}

/// Whether a credit may be added: more than zero, in the currency of the licensee's earlier credits.
pub(crate) fn creditable_amount(credit: &NewCredit, other_currency: Option<String>) -> StoreResult<()> {
    if credit.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a credit is more than zero; got {}", credit.amount)));
    }
    if let Some(other) = other_currency {
        return Err(StoreError::Invalid(format!(
            "{}'s credit is in {other}, not {}: add credit in {other}",
            credit.licensee, credit.amount.currency
        )));
    }
    Ok(())
}

/// The audit entry of a credit added.
pub(crate) fn credit_entry(added: &StoredCredit) -> AuditDraft {
    let entry =
        json!({ "cause": format!("credit {:?} of {}", added.reference, added.amount), "credit": to_json(added) });
    AuditDraft::after("credit.add", added.licensee.clone(), entry)
}

/// The audit entry of an invoice first seen overdue (its notification makes it once).
pub(crate) fn overdue_entry(invoice: &InvoiceAccount, at: Timestamp, cause: &str) -> AuditDraft {
    let outstanding = invoice.outstanding(at);
    let entry = json!({
        "cause": format!("noticed at {cause}"),
        "due": invoice.due,
        "outstanding": outstanding.amount(),
        "currency": outstanding.currency,
    });
    AuditDraft::after("invoice.overdue", invoice.number.clone(), entry)
}

/// The notification a billing audit entry raises, if any: invoice issued, overdue and paid (once
/// per invoice), suspended and reinstated (once per entry: `audit_seq`). Its data is the entry's,
/// with the invoice number.
pub(crate) fn notification_of(
    draft: &AuditDraft,
    licensee_id: i64,
    audit_seq: i64,
    at: Timestamp,
) -> Option<NewNotification> {
    let (kind, key) = match draft.action {
        "invoice.issue" => (NotificationKind::InvoiceIssued, format!("invoice.issued:{}", draft.subject)),
        "invoice.overdue" => (NotificationKind::InvoiceOverdue, format!("invoice.overdue:{}", draft.subject)),
        "invoice.paid" => (NotificationKind::InvoicePaid, format!("invoice.paid:{}", draft.subject)),
        "licensee.suspended" => (NotificationKind::LicenseeSuspended, format!("licensee.suspended:{audit_seq}")),
        "licensee.reinstated" => (NotificationKind::LicenseeReinstated, format!("licensee.reinstated:{audit_seq}")),
        _ => return None,
    };
    let mut payload = draft.after.clone().unwrap_or_else(|| json!({}));
    if draft.action.starts_with("invoice.") && payload.get("invoice").is_none() {
        payload["invoice"] = json!(draft.subject);
    }
    Some(NewNotification { kind, licensee_id, dedupe_key: key, payload, at })
}

/// The invoice a payment names, if it exists and is the paying licensee's.
pub(crate) fn payment_invoice(
    payment: &NewPayment,
    licensee_id: i64,
    invoice: Option<StoredInvoice>,
) -> StoreResult<StoredInvoice> {
    let Some(invoice) = invoice else {
        return Err(StoreError::NotFound(format!(
            "no invoice numbered {:?}; `datapact invoice list {}` shows the licensee's invoices",
            payment.invoice, payment.licensee
        )));
    };
    if invoice.licensee_id != licensee_id {
        return Err(StoreError::Invalid(format!(
            "invoice {} is {}'s, not {}'s: check the invoice number",
            invoice.number, invoice.licensee, payment.licensee
        )));
    }
    Ok(invoice)
}

/// A payment recorded earlier under the same reference: the same payment again (a retry, a
/// re-imported statement) counts once; another payment under it is a conflict.
pub(crate) fn repeated_payment(
    payment: &NewPayment,
    reference: &str,
    invoice: &StoredInvoice,
    earlier: Option<StoredPayment>,
) -> StoreResult<Option<PaymentRecorded>> {
    let Some(earlier) = earlier else { return Ok(None) };
    if earlier.invoice == invoice.number && earlier.amount == payment.amount {
        return Ok(Some(PaymentRecorded { payment: earlier, new: false }));
    }
    Err(StoreError::Conflict(format!(
        "reference {reference:?} of {} was already used for a payment of {} to invoice {} on {}; \
         a different payment needs its own reference",
        payment.licensee, earlier.amount, earlier.invoice, earlier.received_at
    )))
}

/// What is outstanding on the invoice (`paid` so far in minor units), if the payment may be
/// recorded against it: not void, same currency, more than zero, at most what is outstanding.
pub(crate) fn payable(payment: &NewPayment, invoice: &StoredInvoice, paid: i64) -> StoreResult<Money> {
    if invoice.voided_at.is_some() {
        return Err(StoreError::Invalid(format!("invoice {} is void: nothing is owed on it", invoice.number)));
    }
    if payment.amount.currency != invoice.currency {
        return Err(StoreError::Invalid(format!(
            "invoice {} is in {}, the payment in {}: record it in the invoice's currency",
            invoice.number, invoice.currency, payment.amount.currency
        )));
    }
    if payment.amount.minor <= 0 {
        return Err(StoreError::Invalid(format!("a payment is more than zero; got {}", payment.amount)));
    }
    let outstanding = Money::new(invoice.currency, invoice.total.minor.saturating_sub(paid).max(0));
    if payment.amount.minor > outstanding.minor {
        return Err(StoreError::Invalid(if outstanding.minor == 0 {
            format!("invoice {} is already paid in full ({}); nothing was recorded", invoice.number, invoice.total)
        } else {
            format!(
                "{} is more than the {} outstanding on invoice {} (total {}); record at most {}",
                payment.amount, outstanding, invoice.number, invoice.total, outstanding
            )
        }));
    }
    Ok(outstanding)
}

/// The payment as recorded at `at`, its audit entries (`payment.record`, and `invoice.paid` when
/// it settles the invoice) and the cause later dunning entries name.
pub(crate) fn payment_recorded(
    payment: &NewPayment,
    reference: &str,
    invoice: &StoredInvoice,
    outstanding: Money,
    at: Timestamp,
) -> (StoredPayment, Vec<AuditDraft>, String) {
    let recorded = StoredPayment {
        licensee: payment.licensee.clone(),
        invoice: invoice.number.clone(),
        amount: payment.amount,
        reference: reference.to_owned(),
        received_at: at,
    };
    let cause = format!("payment {reference:?} of {} to invoice {}", payment.amount, invoice.number);
    let remaining = Money::new(invoice.currency, outstanding.minor - payment.amount.minor);
    let entry = json!({ "cause": cause, "payment": to_json(&recorded), "outstanding": to_json(&remaining) });
    let mut entries = vec![AuditDraft::after("payment.record", invoice.number.clone(), entry)];
    if remaining.minor == 0 {
        entries.push(AuditDraft::after("invoice.paid", invoice.number.clone(), json!({ "cause": cause })));
    }
    (recorded, entries, cause)
}

/// The dunning transitions to log for licensee `name`: `licensee.suspended` when it is (`after`)
/// or, `before`, was just before this change suspended and the log (`logged_suspended`: its
/// last transition entry says suspended) does not say so yet, and `licensee.reinstated` when
/// the log says suspended and it no longer is. The log itself is the record of the last state
/// written, so a transition is logged once however many processes check.
pub(crate) fn dunning_entries(
    name: &str,
    mut logged_suspended: bool,
    before: Option<&Suspension>,
    after: Option<&Suspension>,
    cause: &str,
) -> Vec<AuditDraft> {
    let mut entries = Vec::new();
    // A suspension that began by time passing is first noticed here: logged now, with the instant
    // it began (`suspended_from` of each invoice) in the entry.
    for suspended in [before, after].into_iter().flatten() {
        if !logged_suspended {
            let entry = json!({ "cause": format!("noticed at {cause}"), "suspension": suspended });
            entries.push(AuditDraft::after("licensee.suspended", name, entry));
            logged_suspended = true;
        }
    }
    if logged_suspended && after.is_none() {
        entries.push(AuditDraft::after("licensee.reinstated", name, json!({ "cause": cause })));
    }
    entries
}

/// The query of the last dunning transition logged for a licensee (`$1`/`?1`: its name), in
/// SQL both databases read.
pub(crate) fn last_transition_sql(placeholder: &str) -> String {
    format!(
        "SELECT action FROM audit_log WHERE subject = {placeholder}
         AND action IN ('licensee.suspended', 'licensee.reinstated') ORDER BY seq DESC LIMIT 1"
    )
}

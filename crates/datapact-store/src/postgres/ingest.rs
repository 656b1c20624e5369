//! [`PgStore::ingest`](super::PgStore): a batch in a handful of round trips, whatever its size.
//!
//! SQLite applies a batch record by record, a few statements each, in process. Over a network
//! that is 3–4 round trips per record, so here a batch is applied in three steps, all in the
//! caller's transaction, which holds the writer lock:
//!
//! 1. **Read** what the batch touches, as it stands: the feed heads, the posts of its ids, its
//!    authors (by id, and every author holding one of its usernames) and, when a record carries
//!    opt-outs, its authors' opt-outs. Three or four statements.
//! 2. **Decide** every record's effect in Rust, in record order, against a model of those rows
//!    that each decision updates, so a record sees what the records before it did (the same id
//!    twice, an edit after a create, an author first seen earlier in the batch, a deletion of a
//!    post created earlier, a username another author gave up earlier). The decisions are
//!    SQLite's, rule for rule ([`Batch::apply`]); revision and event `seq`s are numbered from
//!    the heads, in record order.
//! 3. **Write** the outcome with one multi-row statement per table (`UNNEST` of arrays): the
//!    authors' final rows, the new posts, the changed posts, the revisions, the events, the new
//!    opt-outs and their audit entries (in record order). The rows are those the record-by-record
//!    statements would have left, and the change counter moves as often (one per opt-out row, as
//!    its row trigger counts).
//!
//! Usernames stay unique at every step: the authors' final rows are written in one statement
//! unless one takes a username another written author holds until its own row is written (a
//! rename chain or swap within the batch); then each upsert is replayed in record order, one
//! statement each, as the per-record store did.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use datapact_core::ingest::{IngestRecord, NewPost};
use datapact_core::{Author, PostId, Timestamp, UserId};
use sqlx::{PgConnection, Row};

use super::{decode, nul_in_post};
use crate::shared::{
    POST_COLUMNS, author_settled, clamp_count, json_text, no_post_to_delete, opt_out_entry, revision_number, sql,
    unavailable, unknown_author, username_taken,
};
use crate::{IngestEffect, StoreResult};

/// Applies `records` in the caller's transaction, which holds the writer lock (module docs).
pub(super) async fn ingest(
    conn: &mut PgConnection,
    records: Vec<IngestRecord>,
    now: Timestamp,
) -> StoreResult<Vec<IngestEffect>> {
    // The writer lock first, then the last seqs: see the parent module's docs (the feed is commit-ordered).
    let (revision_seq, event_seq): (i64, i64) = sqlx::query_as(sql::FEED_HEADS).fetch_one(&mut *conn).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut batch = read(conn, &records, now, revision_seq, event_seq).await?;
    let effects = records.into_iter().map(|record| batch.apply(record)).collect::<StoreResult<Vec<_>>>()?;
    batch.write(conn).await?;
    Ok(effects)
}

/// An author's row, as written by `sql::UPSERT_AUTHOR`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AuthorRow {
    id: i64,
    username: String,
    name: String,
    created_at: i64,
    description: String,
    location: Option<String>,
    verified: bool,
    protected: bool,
    /// followers, following, listed.
    counts: [i64; 3],
}

impl AuthorRow {
    fn of(author: &Author) -> Self {
        AuthorRow {
            id: author.id.get(),
            username: author.username.clone(),
            name: author.name.clone(),
            created_at: author.created_at.0,
            description: author.description.clone(),
            location: author.location.clone(),
            verified: author.verified,
            protected: author.protected,
            counts: [
                clamp_count(author.metrics.followers_count),
                clamp_count(author.metrics.following_count),
                clamp_count(author.metrics.listed_count),
            ],
        }
    }

    /// This row after `sql::UPSERT_AUTHOR` of `given` on it: everything but the id and the
    /// creation time is replaced.
    fn upserted(&self, given: &AuthorRow) -> AuthorRow {
        AuthorRow { id: self.id, created_at: self.created_at, ..given.clone() }
    }
}

/// A username as the unique index `authors_username` (`lower(username)`) compares it; usernames
/// are ASCII (`datapact_core::ingest`).
fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// A post the batch touches: as stored (`first` is `None`) or first ingested in this batch.
struct PostState {
    text: String,
    revision: i64,
    deleted_at: Option<i64>,
    /// The record that created it in this batch: its other columns are inserted as given.
    first: Option<Box<NewPost>>,
    /// A stored post whose text, revision or deletion this batch changed.
    changed: bool,
}

/// The rows a batch touches, as each record leaves them, and the writes that follow.
struct Batch {
    now: Timestamp,
    revision_seq: i64,
    event_seq: i64,
    posts: HashMap<i64, PostState>,
    /// Ids of the posts this batch creates, in the order it creates them.
    created: Vec<i64>,
    /// Authors as stored when the batch began, and as they are now.
    stored_authors: HashMap<i64, AuthorRow>,
    authors: HashMap<i64, AuthorRow>,
    /// The author holding each username (by [`username_key`]) among `authors`.
    usernames: HashMap<String, i64>,
    /// Authors written or confirmed in this batch, as SQLite's `Ingester::authors_seen`.
    seen: HashMap<UserId, Option<Author>>,
    /// Every author upsert, in record order (replayed one by one when a single statement would
    /// trip the username index: see the module docs).
    upserts: Vec<AuthorRow>,
    opt_outs: HashSet<(i64, String)>,
    added_opt_outs: Vec<(i64, String)>,
    /// seq, post id, revision, text.
    revisions: Vec<(i64, i64, i64, String)>,
    /// seq, post id, kind, revision, at.
    events: Vec<(i64, i64, &'static str, Option<i64>, i64)>,
}

/// Reads, under the writer lock, every row the decisions about `records` depend on.
async fn read(
    conn: &mut PgConnection,
    records: &[IngestRecord],
    now: Timestamp,
    revision_seq: i64,
    event_seq: i64,
) -> StoreResult<Batch> {
    let mut post_ids = HashSet::new();
    let mut author_ids = HashSet::new();
    let mut username_keys = HashSet::new();
    let mut opting_out = HashSet::new();
    for record in records {
        match record {
            IngestRecord::Post(post) => {
                post_ids.insert(post.id.get());
                author_ids.insert(post.author_id.get());
                if let Some(author) = &post.author {
                    author_ids.insert(author.id.get());
                    username_keys.insert(username_key(&author.username));
                }
                if !post.author_opt_outs.is_empty() {
                    opting_out.insert(post.author_id.get());
                }
            }
            IngestRecord::Delete { id, .. } => {
                post_ids.insert(id.get());
            }
        }
    }

    let found = sqlx::query("SELECT id, text, revision, deleted_at FROM posts WHERE id = ANY($1)")
        .bind(post_ids.into_iter().collect::<Vec<i64>>())
        .fetch_all(&mut *conn)
        .await?;
    let mut posts = HashMap::with_capacity(found.len());
    for row in found {
        let state = PostState {
            text: row.try_get(1)?,
            revision: row.try_get(2)?,
            deleted_at: row.try_get(3)?,
            first: None,
            changed: false,
        };
        posts.insert(row.try_get::<i64, _>(0)?, state);
    }

    let found = sqlx::query(
        "SELECT id, username, name, created_at, description, location, verified, protected, followers_count,
                following_count, listed_count
         FROM authors WHERE id = ANY($1) OR lower(username) = ANY($2)",
    )
    .bind(author_ids.into_iter().collect::<Vec<i64>>())
    .bind(username_keys.into_iter().collect::<Vec<String>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut authors = HashMap::with_capacity(found.len());
    let mut usernames = HashMap::with_capacity(found.len());
    for row in found {
        let author = AuthorRow {
            id: row.try_get(0)?,
            username: row.try_get(1)?,
            name: row.try_get(2)?,
            created_at: row.try_get(3)?,
            description: row.try_get(4)?,
            location: row.try_get(5)?,
            verified: row.try_get(6)?,
            protected: row.try_get(7)?,
            counts: [row.try_get(8)?, row.try_get(9)?, row.try_get(10)?],
        };
        usernames.insert(username_key(&author.username), author.id);
        authors.insert(author.id, author);
    }

    let mut opt_outs = HashSet::new();
    if !opting_out.is_empty() {
        let found = sqlx::query("SELECT author_id, purpose FROM author_opt_outs WHERE author_id = ANY($1)")
            .bind(opting_out.into_iter().collect::<Vec<i64>>())
            .fetch_all(&mut *conn)
            .await?;
        for row in found {
            opt_outs.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }

    Ok(Batch {
        now,
        revision_seq,
        event_seq,
        posts,
        created: Vec::new(),
        stored_authors: authors.clone(),
        authors,
        usernames,
        seen: HashMap::new(),
        upserts: Vec::new(),
        opt_outs,
        added_opt_outs: Vec::new(),
        revisions: Vec::new(),
        events: Vec::new(),
    })
}

impl Batch {
    /// One record's effect, decided as SQLite's `Ingester` decides it, on the rows as the
    /// records before it left them.
    fn apply(&mut self, record: IngestRecord) -> StoreResult<IngestEffect> {
        match record {
            IngestRecord::Post(post) => self.post(post),
            IngestRecord::Delete { id, deleted_at } => Ok(self.delete(id, deleted_at.unwrap_or(self.now))),
        }
    }

    fn author(&mut self, id: UserId, author: Option<Author>) -> Result<(), String> {
        if author_settled(self.seen.get(&id), author.as_ref()) {
            return Ok(());
        }
        match &author {
            Some(given) => {
                let given = AuthorRow::of(given);
                let key = username_key(&given.username);
                if self.usernames.get(&key).is_some_and(|holder| *holder != given.id) {
                    return Err(username_taken(&given.username));
                }
                let after = match self.authors.get(&given.id) {
                    Some(current) => {
                        let old = username_key(&current.username);
                        if self.usernames.get(&old) == Some(&given.id) {
                            self.usernames.remove(&old);
                        }
                        current.upserted(&given)
                    }
                    None => given.clone(),
                };
                self.usernames.insert(key, given.id);
                self.authors.insert(given.id, after);
                self.upserts.push(given);
            }
            None => {
                if !self.authors.contains_key(&id.get()) {
                    return Err(unknown_author(id));
                }
            }
        }
        self.seen.insert(id, author);
        Ok(())
    }

    fn post(&mut self, post: Box<NewPost>) -> StoreResult<IngestEffect> {
        if let Some(field) = nul_in_post(&post) {
            return Ok(IngestEffect::Refused(format!(
                "the post's {field} holds a NUL character (U+0000), which PostgreSQL cannot store"
            )));
        }
        if let Err(reason) = self.author(post.author_id, post.author.clone()) {
            return Ok(IngestEffect::Refused(reason));
        }
        for purpose in &post.author_opt_outs {
            let key = (post.author_id.get(), purpose.clone());
            if self.opt_outs.insert(key.clone()) {
                self.added_opt_outs.push(key);
            }
        }
        let id = post.id.get();
        let Some(state) = self.posts.get_mut(&id) else {
            self.revision_seq += 1;
            self.revisions.push((self.revision_seq, id, 1, post.text.clone()));
            let state =
                PostState { text: post.text.clone(), revision: 1, deleted_at: None, first: Some(post), changed: false };
            self.posts.insert(id, state);
            self.created.push(id);
            return Ok(IngestEffect::Inserted);
        };
        if state.text == post.text {
            return Ok(IngestEffect::Unchanged);
        }
        let revision = revision_number(state.revision).map_err(decode)? + 1;
        state.text.clone_from(&post.text);
        state.revision = i64::from(revision);
        state.changed = true;
        self.revision_seq += 1;
        self.revisions.push((self.revision_seq, id, i64::from(revision), post.text.clone()));
        self.event_seq += 1;
        self.events.push((self.event_seq, id, "corrected", Some(i64::from(revision)), self.now.0));
        Ok(IngestEffect::Corrected { revision })
    }

    fn delete(&mut self, id: PostId, at: Timestamp) -> IngestEffect {
        match self.posts.get_mut(&id.get()) {
            None => IngestEffect::Refused(no_post_to_delete(id)),
            Some(state) if state.deleted_at.is_some() => IngestEffect::AlreadyDeleted,
            Some(state) => {
                state.deleted_at = Some(at.0);
                state.changed = true;
                self.event_seq += 1;
                self.events.push((self.event_seq, id.get(), "deleted", None, at.0));
                IngestEffect::Deleted
            }
        }
    }

    /// Writes what the batch decided: one statement per table (module docs).
    async fn write(self, conn: &mut PgConnection) -> StoreResult<()> {
        // Authors first: posts reference them.
        self.write_authors(conn).await?;
        self.write_posts(conn).await?;
        let now = self.now.0;
        if !self.revisions.is_empty() {
            let (mut seqs, mut ids, mut revisions, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (seq, id, revision, text) in self.revisions {
                seqs.push(seq);
                ids.push(id);
                revisions.push(revision);
                texts.push(text);
            }
            sqlx::query(
                "INSERT INTO post_revisions (seq, post_id, revision, text, ingested_at)
                 SELECT u.seq, u.post_id, u.revision, u.text, $5
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS u (seq, post_id, revision, text)",
            )
            .bind(seqs)
            .bind(ids)
            .bind(revisions)
            .bind(texts)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        if !self.events.is_empty() {
            let (mut seqs, mut ids, mut kinds, mut revisions, mut ats) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (seq, id, kind, revision, at) in self.events {
                seqs.push(seq);
                ids.push(id);
                kinds.push(kind);
                revisions.push(revision);
                ats.push(at);
            }
            sqlx::query(
                "INSERT INTO post_events (seq, post_id, kind, revision, at)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[])",
            )
            .bind(seqs)
            .bind(ids)
            .bind(kinds)
            .bind(revisions)
            .bind(ats)
            .execute(&mut *conn)
            .await?;
        }
        if !self.added_opt_outs.is_empty() {
            let change = crate::Change::new("ingest", self.now);
            let (mut authors, mut purposes) = (Vec::new(), Vec::new());
            let (mut actions, mut subjects, mut befores, mut afters) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (author, purpose) in self.added_opt_outs {
                let draft = opt_out_entry(UserId::new(author), &purpose, true);
                actions.push(draft.action);
                subjects.push(draft.subject);
                befores.push(draft.before.as_ref().map(json_text));
                afters.push(draft.after.as_ref().map(json_text));
                authors.push(author);
                purposes.push(purpose);
            }
            // One row each, so the change counter's row trigger counts each, as before.
            sqlx::query(
                "INSERT INTO author_opt_outs (author_id, purpose, at)
                 SELECT u.author_id, u.purpose, $3 FROM UNNEST($1::bigint[], $2::text[]) AS u (author_id, purpose)",
            )
            .bind(authors)
            .bind(purposes)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            // In record order: the log's seq is an identity, taken row by row in this order.
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, before, after)
                 SELECT $1, $2, u.action, u.subject, u.before, u.after
                 FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
                   AS u (action, subject, before, after, n)
                 ORDER BY u.n",
            )
            .bind(change.at.0)
            .bind(&change.actor)
            .bind(actions)
            .bind(subjects)
            .bind(befores)
            .bind(afters)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The authors whose rows the batch changed, at their final state, in one upsert; or, when
    /// that could trip the username index mid-statement, every upsert in record order.
    async fn write_authors(&self, conn: &mut PgConnection) -> StoreResult<()> {
        let mut order = Vec::new();
        let mut listed = HashSet::new();
        for upsert in &self.upserts {
            if listed.insert(upsert.id) {
                order.push(upsert.id);
            }
        }
        // Changed or new rows; an upsert that left a row as stored writes nothing (the
        // statement's WHERE would skip it anyway).
        let written: Vec<&AuthorRow> = order
            .iter()
            .filter_map(|id| {
                let now = &self.authors[id];
                let unchanged = self.stored_authors.get(id) == Some(now);
                (!unchanged).then_some(now)
            })
            .collect();
        if written.is_empty() {
            return Ok(());
        }
        let held: HashMap<String, i64> = written
            .iter()
            .filter_map(|row| self.stored_authors.get(&row.id))
            .map(|stored| (username_key(&stored.username), stored.id))
            .collect();
        let trips_the_index =
            written.iter().any(|row| held.get(&username_key(&row.username)).is_some_and(|holder| *holder != row.id));
        if trips_the_index {
            for row in &self.upserts {
                bind_author(sqlx::query(super::pg!(sql::UPSERT_AUTHOR)), row).execute(&mut *conn).await?;
            }
            return Ok(());
        }
        let mut columns = AuthorColumns::default();
        for row in written {
            columns.push(row);
        }
        columns.bind(sqlx::query(UPSERT_AUTHORS.as_str())).execute(&mut *conn).await?;
        Ok(())
    }

    /// The new posts in one statement, the stored posts the batch changed in another.
    async fn write_posts(&self, conn: &mut PgConnection) -> StoreResult<()> {
        if !self.created.is_empty() {
            let mut columns = PostColumns::default();
            for id in &self.created {
                let state = &self.posts[id];
                let first = state.first.as_deref().ok_or_else(|| unavailable("a created post lost its record"))?;
                columns.push(first, state)?;
            }
            columns.bind(sqlx::query(INSERT_POSTS.as_str())).execute(&mut *conn).await?;
        }
        let (mut ids, mut texts, mut revisions, mut deleted) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, state) in &self.posts {
            if state.first.is_none() && state.changed {
                ids.push(*id);
                texts.push(state.text.as_str());
                revisions.push(state.revision);
                deleted.push(state.deleted_at);
            }
        }
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE posts AS p SET text = u.text, revision = u.revision, deleted_at = u.deleted_at
                 FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS u (id, text, revision, deleted_at)
                 WHERE p.id = u.id",
            )
            .bind(ids)
            .bind(texts)
            .bind(revisions)
            .bind(deleted)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_author<'q>(query: Query<'q>, row: &'q AuthorRow) -> Query<'q> {
    query
        .bind(row.id)
        .bind(&row.username)
        .bind(&row.name)
        .bind(row.created_at)
        .bind(&row.description)
        .bind(&row.location)
        .bind(row.verified)
        .bind(row.protected)
        .bind(row.counts[0])
        .bind(row.counts[1])
        .bind(row.counts[2])
}

/// `sql::UPSERT_AUTHOR` (the same conflict rule) for many rows: its VALUES row becomes arrays.
static UPSERT_AUTHORS: LazyLock<String> = LazyLock::new(|| {
    let values = "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    let (head, tail) = sql::UPSERT_AUTHOR.split_once(values).expect("sql::UPSERT_AUTHOR has one VALUES row");
    format!(
        "{head}SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
           $7::boolean[], $8::boolean[], $9::bigint[], $10::bigint[], $11::bigint[]){tail}"
    )
});

#[derive(Default)]
struct AuthorColumns<'a> {
    ids: Vec<i64>,
    usernames: Vec<&'a str>,
    names: Vec<&'a str>,
    created_at: Vec<i64>,
    descriptions: Vec<&'a str>,
    locations: Vec<Option<&'a str>>,
    verified: Vec<bool>,
    protected: Vec<bool>,
    counts: [Vec<i64>; 3],
}

impl<'a> AuthorColumns<'a> {
    fn push(&mut self, row: &'a AuthorRow) {
        self.ids.push(row.id);
        self.usernames.push(&row.username);
        self.names.push(&row.name);
        self.created_at.push(row.created_at);
        self.descriptions.push(&row.description);
        self.locations.push(row.location.as_deref());
        self.verified.push(row.verified);
        self.protected.push(row.protected);
        for (column, count) in self.counts.iter_mut().zip(row.counts) {
            column.push(count);
        }
    }

    fn bind<'q>(self, query: Query<'q>) -> Query<'q>
    where
        'a: 'q,
    {
        let [followers, following, listed] = self.counts;
        query
            .bind(self.ids)
            .bind(self.usernames)
            .bind(self.names)
            .bind(self.created_at)
            .bind(self.descriptions)
            .bind(self.locations)
            .bind(self.verified)
            .bind(self.protected)
            .bind(followers)
            .bind(following)
            .bind(listed)
    }
}

/// New posts, every column ([`POST_COLUMNS`]) from arrays.
static INSERT_POSTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO posts ({POST_COLUMNS}) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[],
           $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
           $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[])"
    )
});

/// The columns of new posts as the per-record `sql::INSERT_POST` wrote them, with the text,
/// revision and deletion the rest of the batch left.
#[derive(Default)]
struct PostColumns<'a> {
    ids: Vec<i64>,
    authors: Vec<i64>,
    texts: Vec<&'a str>,
    revisions: Vec<i64>,
    created_at: Vec<i64>,
    langs: Vec<Option<&'a str>>,
    conversations: Vec<i64>,
    in_reply_to: Vec<Option<i64>>,
    referenced: Vec<Option<String>>,
    histories: Vec<String>,
    /// retweet, reply, like, quote, bookmark, impression.
    counts: [Vec<i64>; 6],
    deleted_at: Vec<Option<i64>>,
}

impl<'a> PostColumns<'a> {
    fn push(&mut self, first: &'a NewPost, state: &'a PostState) -> StoreResult<()> {
        let referenced = if first.referenced_posts.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&first.referenced_posts).map_err(unavailable)?)
        };
        let metrics = first.public_metrics;
        let counts = [
            metrics.retweet_count,
            metrics.reply_count,
            metrics.like_count,
            metrics.quote_count,
            metrics.bookmark_count,
            metrics.impression_count,
        ];
        self.ids.push(first.id.get());
        self.authors.push(first.author_id.get());
        self.texts.push(&state.text);
        self.revisions.push(state.revision);
        self.created_at.push(first.created_at.0);
        self.langs.push(first.lang.as_deref());
        self.conversations.push(first.conversation_id.get());
        self.in_reply_to.push(first.in_reply_to_user_id.map(UserId::get));
        self.referenced.push(referenced);
        self.histories.push(serde_json::to_string(&first.edit_history).map_err(unavailable)?);
        for (column, count) in self.counts.iter_mut().zip(counts) {
            column.push(clamp_count(count));
        }
        self.deleted_at.push(state.deleted_at);
        Ok(())
    }

    fn bind<'q>(self, query: Query<'q>) -> Query<'q>
    where
        'a: 'q,
    {
        let [retweets, replies, likes, quotes, bookmarks, impressions] = self.counts;
        query
            .bind(self.ids)
            .bind(self.authors)
            .bind(self.texts)
            .bind(self.revisions)
            .bind(self.created_at)
            .bind(self.langs)
            .bind(self.conversations)
            .bind(self.in_reply_to)
            .bind(self.referenced)
            .bind(self.histories)
            .bind(retweets)
            .bind(replies)
            .bind(likes)
            .bind(quotes)
            .bind(bookmarks)
            .bind(impressions)
            .bind(self.deleted_at)
    }
}

//! X-style recent search, as a pure library: the query language, the
//! tokenizer, an in-memory inverted index and cursor pagination. It does no
//! I/O, so a search gives the same results whatever store holds the posts.
//!
//! ```
//! use datapact_search::{Doc, Filters, SearchIndex, SortOrder, parse};
//!
//! let mut ix = SearchIndex::new();
//! ix.upsert(Doc { id: 1, author_id: 7, created_at_ms: 0, lang: Some("fr".into()),
//!                 is_reply: false, is_retweet: false, is_quote: false,
//!                 text: "L’été de #Rust".into() });
//! ix.upsert(Doc { id: 2, author_id: 8, created_at_ms: 0, lang: Some("en".into()),
//!                 is_reply: true, is_retweet: false, is_quote: false,
//!                 text: "rust in summer".into() });
//! let q = parse("rust -summer OR from:bob").unwrap()
//!     .resolve(|u| (u == "bob").then_some(8));
//! let page = ix.search(&q, &Filters::default(), SortOrder::Recency, 10, None);
//! assert_eq!(page.ids, [2, 1]);
//! assert!(page.next.is_none());
//! ```
//!
//! # Query language (the product's contract)
//!
//! - **Keywords** separated by whitespace are ANDed: `rust tokio`.
//! - **Exact phrases** in double quotes, straight `"…"` or curly `“…”`:
//!   consecutive tokens, after tokenization (punctuation between the words
//!   of the post does not matter: `"don't panic"` matches `Don’t… panic!`).
//! - **`OR`** (uppercase only; `or` is a keyword) between clauses. AND binds
//!   tighter than OR, as on X: `a b OR c` is `(a b) OR c`.
//! - **Parentheses** group: `(a OR b) c`.
//! - **`-` negation** directly before a keyword, phrase, group or operator:
//!   `rust -java`, `-"bad phrase"`, `-(a OR b)`, `-is:reply`.
//! - **Operators**: `from:USERNAME` (case-insensitive, optional `@`; the
//!   caller resolves usernames with [`Query::resolve`]; an unknown username
//!   matches nothing), `lang:xx` (the post's language tag, compared
//!   case-insensitively, no subtag fallback: `lang:en` does not match
//!   `en-gb`), `is:reply`.
//! - `is:retweet` and `is:quote` (usually negated: `-is:retweet`).
//! - Other X operators (`has:`, `is:verified`,
//!   `url:`, `to:`, `retweets_of:`, `conversation_id:`, `place:`, `bio:`, the
//!   `*_count:` operators, …) are rejected as not supported by this server.
//!   A word with a colon that is not an operator name (`10:30`,
//!   `https://x.com`) is an ordinary keyword. `@user`, `#tag` and `$CASH`
//!   are keywords (see below).
//! - Like X: every AND-group — the whole query, each `OR` branch and each
//!   parenthesised group — needs at least one clause that is not negated and
//!   is a keyword, phrase, `from:` or group; `lang:` and `is:reply` cannot
//!   stand alone (`lang:en` alone and `-rust` alone are errors).
//! - Errors ([`QueryError`], meant for an HTTP 400) give the character offset
//!   and the reason: empty query, longer than 4,096 characters, unbalanced
//!   parentheses, empty group, unterminated quote, empty phrase, dangling
//!   `OR`, `-` followed by a space or nothing, a keyword with no searchable
//!   character (`!!!`, an emoji alone), unsupported operator.
//!
//! # Matching
//!
//! Case-insensitive whole-token match, no stemming (`run` does not match
//! `running`). See [`tokenize`]: text is NFC-normalised then lowercased, so
//! precomposed and decomposed accents are the same; accents otherwise matter
//! (`été` does not match `ete`, as on X). A token is a maximal run of Unicode
//! alphanumerics, combining marks and `_`; everything else separates tokens,
//! including both apostrophes, dashes, NBSP, quotes and emoji (`l’été` is
//! `l` `été`). A token right after `#`, `@` or `$` is indexed both bare and
//! with that prefix: keyword `rust` matches `#rust`, keyword `#rust` matches
//! only the hashtag. A keyword that tokenizes into several tokens (`don't`,
//! `e-mail`, `l’été`) is the phrase of those tokens.
//!
//! # Ordering, filters and pagination
//!
//! [`SortOrder::Recency`] is descending post id. [`SortOrder::Relevancy`] is
//! more matched distinct positive keywords/phrases first (see
//! [`relevance`]), then descending id. [`Filters`]: `since_id`/`until_id`
//! are exclusive id bounds, `start_ms` inclusive and `end_ms` exclusive
//! bounds on `created_at`. A page's [`Cursor`] continues exactly after its
//! last result, so walking pages yields the whole result set once, with no
//! duplicate and no gap, for any page size (given an unchanged index).

mod cursor;
mod index;
mod query;
mod tokenize;

pub use cursor::Cursor;
pub use index::SearchIndex;
pub use query::{MAX_QUERY_CHARS, Query, QueryError, ResolvedQuery, matches, parse, relevance};
pub use tokenize::tokenize;

/// A post as the search sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    /// Post id; recency order is descending id.
    pub id: i64,
    /// Author id, matched by `from:`.
    pub author_id: i64,
    /// Creation time in Unix milliseconds, for [`Filters`].
    pub created_at_ms: i64,
    /// Language tag matched by `lang:` (case-insensitively).
    pub lang: Option<String>,
    /// Whether the post is a reply, for `is:reply`.
    pub is_reply: bool,
    /// Whether the post is a retweet (repost), for `is:retweet`.
    pub is_retweet: bool,
    /// Whether the post quotes another, for `is:quote`.
    pub is_quote: bool,
    /// Text to index.
    pub text: String,
}

/// Result order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Newest first (descending id).
    #[default]
    Recency,
    /// Most matched distinct keywords/phrases first, then newest first.
    Relevancy,
}

/// Bounds applied on top of the query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only ids strictly greater than this.
    pub since_id: Option<i64>,
    /// Only ids strictly less than this.
    pub until_id: Option<i64>,
    /// Only posts created at or after this (Unix ms).
    pub start_ms: Option<i64>,
    /// Only posts created strictly before this (Unix ms).
    pub end_ms: Option<i64>,
}

impl Filters {
    /// Whether `doc` passes the bounds.
    pub fn accepts(&self, doc: &Doc) -> bool {
        self.since_id.is_none_or(|s| doc.id > s)
            && self.until_id.is_none_or(|u| doc.id < u)
            && self.start_ms.is_none_or(|s| doc.created_at_ms >= s)
            && self.end_ms.is_none_or(|e| doc.created_at_ms < e)
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPage {
    /// Matching post ids, in the requested order.
    pub ids: Vec<i64>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<Cursor>,
}

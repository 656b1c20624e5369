//! The gateway's search index: datapact-search's in-memory index, fed from the store.
//!
//! The index lives in every gateway process, built from the store's revision feed at start and
//! kept current by [`crate::feed`]. Search semantics are therefore datapact's own, identical
//! whichever store holds the posts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datapact_search::{Cursor, Doc, Filters, SearchIndex, SearchPage, SortOrder};
use datapact_store::{PostEvent, PostEventKind, RevisionEntry};

use crate::api::PostHandle;
use crate::fingerprint::{Marking, PostJson};
use crate::freshness::PostsState;
use crate::render::PostFields;

/// Result pages kept for repeated searches (each at most 100 ids).
const CACHED_PAGES: usize = 16_384;

#[derive(Clone)]
pub struct SharedIndex {
    index: Arc<RwLock<SearchIndex>>,
    /// Bumped after every change to the index: a cached page is valid only for its generation.
    generation: Arc<AtomicU64>,
    pages: Arc<quick_cache::sync::Cache<PageKey, Arc<CachedPage>>>,
    /// How many requests found a page's resolution kept for them.
    resolutions_found: Arc<AtomicU64>,
}

/// A page of results, for the index generation it was computed at.
pub struct CachedPage {
    pub generation: u64,
    pub page: SearchPage,
    /// Its live posts and their renderings, as a request last resolved them.
    resolved: Mutex<Option<Arc<ResolvedPage>>>,
}

/// A search page's posts that were live, at their revisions, with their renderings in one field
/// set, before any licensee's opt-outs were applied; valid while posts are in `state`.
#[derive(Debug)]
pub struct ResolvedPage {
    pub state: PostsState,
    pub fields: PostFields,
    pub posts: Vec<(PostHandle, Arc<PostJson>)>,
    /// The `data` array of all `posts`, as last written, for one marking (one licensee's copy).
    written: Mutex<Option<(Marking, Arc<[u8]>)>>,
}

impl ResolvedPage {
    pub fn new(state: PostsState, fields: PostFields, posts: Vec<(PostHandle, Arc<PostJson>)>) -> Self {
        ResolvedPage { state, fields, posts, written: Mutex::new(None) }
    }

    /// The `data` array of all the page's posts in `marking`'s copy: written once per marking
    /// in a row, then shared (a page repeated by one licensee is one copy of bytes, not a
    /// splice per post per request).
    pub fn written(&self, marking: Marking) -> Arc<[u8]> {
        if let Ok(written) = self.written.lock()
            && let Some((kept, bytes)) = written.as_ref()
            && *kept == marking
        {
            return Arc::clone(bytes);
        }
        let mut out = Vec::with_capacity(self.posts.iter().map(|(_, json)| json.len() + 1).sum::<usize>() + 1);
        crate::render::write_posts(&mut out, self.posts.iter().map(|(_, json)| &**json), marking);
        let bytes: Arc<[u8]> = out.into();
        if let Ok(mut written) = self.written.lock() {
            *written = Some((marking, Arc::clone(&bytes)));
        }
        bytes
    }
}

impl CachedPage {
    /// The resolution kept for posts in `state` and renderings in `fields`, if there is one.
    fn resolved(&self, state: PostsState, fields: PostFields) -> Option<Arc<ResolvedPage>> {
        let kept = self.resolved.lock().ok()?;
        kept.as_ref().filter(|kept| kept.state == state && kept.fields == fields).cloned()
    }

    /// Keeps a resolution (replacing any older one).
    pub fn keep(&self, resolved: ResolvedPage) {
        if let Ok(mut kept) = self.resolved.lock() {
            *kept = Some(Arc::new(resolved));
        }
    }
}

impl Default for SharedIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// What a search page depends on besides the index: the query as asked and the author ids its
/// `from:` names resolved to (so a newly ingested author is not missed), order, bounds, size
/// and position. Opt-outs and deletions are applied per request after the index answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub query: String,
    pub authors: Vec<(String, Option<i64>)>,
    pub sort: SortOrder,
    pub bounds: [Option<i64>; 4],
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl PageKey {
    pub fn bounds(filters: &Filters) -> [Option<i64>; 4] {
        [filters.since_id, filters.until_id, filters.start_ms, filters.end_ms]
    }
}

impl SharedIndex {
    pub fn new() -> Self {
        SharedIndex {
            index: Arc::new(RwLock::new(SearchIndex::new())),
            generation: Arc::new(AtomicU64::new(0)),
            pages: Arc::new(quick_cache::sync::Cache::new(CACHED_PAGES)),
            resolutions_found: Default::default(),
        }
    }

    /// The resolution of `page` kept for posts in `state` and renderings in `fields`, if any.
    pub fn resolution(&self, page: &CachedPage, state: PostsState, fields: PostFields) -> Option<Arc<ResolvedPage>> {
        let found = page.resolved(state, fields)?;
        self.resolutions_found.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    /// How many requests found a page's resolution kept for them.
    pub fn resolutions_found(&self) -> u64 {
        self.resolutions_found.load(Ordering::Relaxed)
    }

    /// A page of results: from the cache when the index has not changed since it was computed,
    /// else computed by `run` (and kept). `None` if the index is unavailable.
    pub fn search(&self, key: PageKey, run: impl FnOnce(&SearchIndex) -> SearchPage) -> Option<Arc<CachedPage>> {
        // Read before the index: a change landing meanwhile tags the page as older, never newer.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(page) = self.pages.get(&key).filter(|page| page.generation == generation) {
            return Some(page);
        }
        let page = Arc::new(CachedPage { generation, page: self.read(run)?, resolved: Mutex::new(None) });
        self.pages.insert(key, Arc::clone(&page));
        Some(page)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Applies revisions in feed order: the latest text of a post wins; deleted posts leave.
    pub fn apply_revisions(&self, entries: &[RevisionEntry]) {
        if entries.is_empty() {
            return;
        }
        self.apply_revisions_locked(entries);
        self.changed();
    }

    fn apply_revisions_locked(&self, entries: &[RevisionEntry]) {
        let Ok(mut index) = self.index.write() else { return };
        for entry in entries {
            let post = &entry.post;
            if post.deleted_at.is_some() {
                index.remove(post.id.get());
                continue;
            }
            index.upsert(Doc {
                id: post.id.get(),
                author_id: post.author_id.get(),
                created_at_ms: post.created_at.millis(),
                lang: post.lang.clone(),
                is_reply: post.referenced_posts.iter().any(|reference| reference.kind == "replied_to"),
                is_retweet: post.referenced_posts.iter().any(|reference| reference.kind == "retweeted"),
                is_quote: post.referenced_posts.iter().any(|reference| reference.kind == "quoted"),
                text: post.text.clone(),
            });
        }
    }

    pub fn apply_events(&self, events: &[PostEvent]) {
        if events.is_empty() {
            return;
        }
        if let Ok(mut index) = self.index.write() {
            for event in events {
                if event.kind == PostEventKind::Deleted {
                    index.remove(event.post_id.get());
                }
            }
        }
        self.changed();
    }

    /// Runs `f` with read access to the index.
    pub fn read<T>(&self, f: impl FnOnce(&SearchIndex) -> T) -> Option<T> {
        self.index.read().ok().map(|index| f(&index))
    }
}

#[cfg(test)]
mod tests {
    use datapact_core::{Post, PostId, PublicMetrics, Timestamp, UserId};
    use datapact_search::Filters;

    use super::*;

    fn revision(seq: i64, id: i64, text: &str) -> RevisionEntry {
        RevisionEntry {
            seq,
            ingested_at: Timestamp(0),
            post: Post {
                id: PostId::new(id),
                author_id: UserId::new(7),
                text: text.into(),
                revision: 1,
                created_at: Timestamp(1_700_000_000_000),
                lang: Some("en".into()),
                conversation_id: PostId::new(id),
                in_reply_to_user_id: None,
                referenced_posts: Vec::new(),
                edit_history: vec![PostId::new(id)],
                public_metrics: PublicMetrics::default(),
                deleted_at: None,
            },
        }
    }

    fn search(index: &SharedIndex, query: &str) -> (u64, Vec<i64>) {
        let resolved = datapact_search::parse(query).unwrap().resolve(|_| None);
        let filters = Filters::default();
        let key = PageKey {
            query: query.into(),
            authors: Vec::new(),
            sort: SortOrder::Recency,
            bounds: PageKey::bounds(&filters),
            limit: 10,
            after: None,
        };
        let page = index.search(key, |i| i.search(&resolved, &filters, SortOrder::Recency, 10, None)).unwrap();
        (page.generation, page.page.ids.clone())
    }

    /// A cached page never outlives a change to the index: new posts, deletions and corrections
    /// each make the next identical search compute afresh.
    #[test]
    fn cached_pages_are_dropped_when_the_index_changes() {
        let index = SharedIndex::new();
        index.apply_revisions(&[revision(1, 10, "hello world"), revision(2, 11, "hello there")]);
        let (first, ids) = search(&index, "hello");
        assert_eq!(ids, vec![11, 10]);
        assert_eq!(search(&index, "hello"), (first, vec![11, 10]), "an unchanged index answers from the cache");
        index.apply_revisions(&[revision(3, 12, "hello again")]);
        let (second, ids) = search(&index, "hello");
        assert!(second > first);
        assert_eq!(ids, vec![12, 11, 10]);
        index.apply_events(&[PostEvent {
            seq: 1,
            post_id: PostId::new(11),
            kind: PostEventKind::Deleted,
            at: Timestamp(0),
        }]);
        assert_eq!(search(&index, "hello").1, vec![12, 10]);
        index.apply_revisions(&[revision(4, 12, "goodbye")]);
        assert_eq!(search(&index, "hello").1, vec![10]);
        assert_eq!(search(&index, "goodbye").1, vec![12]);
    }
}

//! The gateway's search index: datapact-search's in-memory index, fed from the store.
//!
//! The index lives in every gateway process, built from the store's revision feed at start and
//! kept current by [`crate::feed`]. Search semantics are therefore datapact's own, identical
//! whichever store holds the posts.

use std::sync::{Arc, RwLock};

use datapact_search::{Doc, SearchIndex};
use datapact_store::{PostEvent, PostEventKind, RevisionEntry};

#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<SearchIndex>>);

impl SharedIndex {
    pub fn new() -> Self {
        SharedIndex(Arc::new(RwLock::new(SearchIndex::new())))
    }

    /// Applies revisions in feed order: the latest text of a post wins; deleted posts leave.
    pub fn apply_revisions(&self, entries: &[RevisionEntry]) {
        let Ok(mut index) = self.0.write() else { return };
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
        let Ok(mut index) = self.0.write() else { return };
        for event in events {
            if event.kind == PostEventKind::Deleted {
                index.remove(event.post_id.get());
            }
        }
    }

    /// Runs `f` with read access to the index.
    pub fn read<T>(&self, f: impl FnOnce(&SearchIndex) -> T) -> Option<T> {
        self.0.read().ok().map(|index| f(&index))
    }
}

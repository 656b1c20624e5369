//! Following the store's ingest feed: what is new since this gateway last looked.
//!
//! One task per gateway polls the store for new revisions and events, keeps the search index
//! and the live state of every post ([`LivePosts`]: revision, author, deleted) up to date, evicts
//! corrected and deleted posts from the post cache, and publishes the newest revision `seq` on a
//! watch channel that streams wait on.
//! Whatever process ingested a post (CLI, admin API, another node), every gateway sees it within
//! one poll interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datapact_store::{Store, StoreResult};
use tokio::sync::watch;

use crate::freshness::LivePosts;
use crate::post_cache::PostCache;

/// Revisions read per store call while catching up.
const PAGE: usize = 5_000;

pub struct PostFeed {
    latest_seq: watch::Sender<i64>,
    event_seq: std::sync::atomic::AtomicI64,
    caught_up: AtomicBool,
    /// Every post's current revision, author and deletion, as far as the feed has applied the
    /// store's changes, with how far that is: what [`crate::freshness::live_revisions`] answers
    /// from when the feed is not behind the store.
    live: LivePosts,
    /// Rendered posts. Serving never relies on it being current (each request looks up only the
    /// live revision, from [`crate::freshness::live_revisions`]); the feed evicts every post it
    /// sees corrected or deleted so that stale renderings do not take up room.
    post_cache: PostCache,
}

impl Default for PostFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl PostFeed {
    /// A feed with a post cache of the default size.
    pub fn new() -> Self {
        Self::with_post_cache(PostCache::default())
    }

    pub fn with_post_cache(post_cache: PostCache) -> Self {
        PostFeed {
            latest_seq: watch::channel(0).0,
            event_seq: std::sync::atomic::AtomicI64::new(0),
            caught_up: AtomicBool::new(false),
            live: LivePosts::new(),
            post_cache,
        }
    }

    /// Rendered post objects, by (id, fields), each with the revision it shows.
    pub fn post_cache(&self) -> &PostCache {
        &self.post_cache
    }

    /// Each post's live state, and how far the feed has applied the store's revisions and events.
    pub fn live_posts(&self) -> &LivePosts {
        &self.live
    }

    /// The newest revision `seq` this gateway has seen; changes wake subscribers.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest_seq.subscribe()
    }

    pub fn latest_seq(&self) -> i64 {
        *self.latest_seq.borrow()
    }

    /// Whether the first full pass over the store has finished (the search index is complete).
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Reads everything new in the store; returns how many revisions and events were applied.
    pub async fn poll(&self, store: &dyn Store, index: &crate::search::SharedIndex) -> StoreResult<usize> {
        // Read before the store is: everything up to this stamp is in what the poll reads.
        let stamp = store.post_change_stamp().or_else(|| {
            store.repair_post_change_stamp();
            store.post_change_stamp()
        });
        let mut applied = 0;
        loop {
            let after = self.latest_seq();
            let page = store.revisions_after(after, PAGE).await?;
            let Some(last) = page.last().map(|entry| entry.seq) else { break };
            applied += page.len();
            index.apply_revisions(&page);
            // Before `latest_seq` moves: the next poll starts after it, so everything up to it
            // must be in `live` (which publishes its own `seq` once it has applied the page).
            self.live.apply_revisions(&page);
            // A first revision is a new post, which nothing can have rendered yet (the index
            // build at start-up reads every post once, so this skips almost all of them).
            for entry in page.iter().filter(|entry| entry.post.revision > 1 || entry.post.deleted_at.is_some()) {
                self.post_cache.evict(entry.post.id);
            }
            self.latest_seq.send_replace(last);
            if page.len() < PAGE {
                break;
            }
        }
        loop {
            let after = self.event_seq.load(Ordering::Acquire);
            let page = store.events_after(after, PAGE).await?;
            let Some(last) = page.last().map(|event| event.seq) else { break };
            applied += page.len();
            index.apply_events(&page);
            self.live.apply_events(&page);
            for event in &page {
                self.post_cache.evict(event.post_id);
            }
            self.event_seq.store(last, Ordering::Release);
            if page.len() < PAGE {
                break;
            }
        }
        if let Some(stamp) = stamp {
            self.live.apply_stamp(stamp);
        }
        self.caught_up.store(true, Ordering::Release);
        Ok(applied)
    }
}

/// The background loop: poll, then wait.
pub async fn follow(feed: Arc<PostFeed>, store: Arc<dyn Store>, index: crate::search::SharedIndex, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = feed.poll(store.as_ref(), &index).await {
            tracing::warn!(%error, "could not read the store's ingest feed");
        }
    }
}

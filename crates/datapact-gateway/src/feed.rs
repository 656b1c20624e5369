//! Following the store's ingest feed: what is new since this gateway last looked.
//!
//! One task per gateway polls the store for new revisions and events, keeps the search index
//! up to date, and publishes the newest revision `seq` on a watch channel that streams wait on.
//! Whatever process ingested a post (CLI, admin API, another node), every gateway sees it within
//! one poll interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datapact_store::{Store, StoreResult};
use tokio::sync::watch;

/// Revisions read per store call while catching up.
const PAGE: usize = 5_000;

pub struct PostFeed {
    latest_seq: watch::Sender<i64>,
    event_seq: std::sync::atomic::AtomicI64,
    caught_up: AtomicBool,
}

impl Default for PostFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl PostFeed {
    pub fn new() -> Self {
        PostFeed {
            latest_seq: watch::channel(0).0,
            event_seq: std::sync::atomic::AtomicI64::new(0),
            caught_up: AtomicBool::new(false),
        }
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
        let mut applied = 0;
        loop {
            let after = self.latest_seq();
            let page = store.revisions_after(after, PAGE).await?;
            let Some(last) = page.last().map(|entry| entry.seq) else { break };
            applied += page.len();
            index.apply_revisions(&page);
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
            self.event_seq.store(last, Ordering::Release);
            if page.len() < PAGE {
                break;
            }
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

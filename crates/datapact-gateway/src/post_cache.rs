//! Rendered post objects, kept between requests.
//!
//! Rendering a post (escaping its text, formatting its time and counters) is most of what a
//! search or lookup costs once the store has been asked which posts to serve. A post's JSON
//! depends only on its id, its revision and the requested fields: everything but the text and
//! revision is fixed at ingest, and a correction is a new revision. So a fragment rendered once
//! can be served to every later request that asks for the same (id, revision, fields).
//!
//! The cache never decides *whether* a post is served: every request first learns which of its
//! posts are live, and at which revision ([`crate::freshness::live_revisions`]: from the feed's
//! memory when it has applied everything the store had committed when the request began, else
//! from the store), and looks up only that revision here. Eviction (by the feed follower, on
//! every correction and deletion) and the byte bound only keep memory in check; an entry left
//! behind by a race is never served, because its revision no longer matches the live one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datapact_core::{Post, PostId};
use datapact_mark::Secret;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::fingerprint::PostJson;
use crate::render::PostFields;

/// The default bound on the bytes the cache holds.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 * 1024 * 1024;

/// What an entry costs besides its JSON: key, value and the cache's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 96;
/// A typical entry's weight, to size the cache's tables up front.
const TYPICAL_ENTRY: u64 = 600;

type Key = (PostId, PostFields);
/// The revision the JSON was rendered from, and the JSON.
type Entry = (u32, Arc<PostJson>);

#[derive(Clone, Copy)]
struct EntryWeight;

impl Weighter<Key, Entry> for EntryWeight {
    fn weight(&self, _: &Key, (_, json): &Entry) -> u64 {
        json.weight() as u64 + ENTRY_OVERHEAD
    }
}

/// Post objects rendered earlier, by (post id, fields), each with the revision it shows.
pub struct PostCache {
    /// `None` when the cache is configured to hold nothing.
    entries: Option<Cache<Key, Entry, EntryWeight>>,
    /// What every rendering here prepares its fingerprint sites with (`None`: served unmarked).
    /// It belongs to the cache because the cached renderings depend on it.
    fingerprint_secret: Option<Secret>,
    /// Which field sets have ever been cached, as bits indexed by [`PostFields::bits`]: eviction
    /// removes a post under each of them (clients use one or two sets, so this is a few removals).
    field_sets: [AtomicU64; PostFields::COUNT / 64],
}

impl Default for PostCache {
    fn default() -> Self {
        PostCache::new(DEFAULT_CAPACITY_BYTES)
    }
}

impl PostCache {
    /// A cache holding at most about `capacity_bytes` of JSON and bookkeeping; 0 disables it.
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = (capacity_bytes > 0).then(|| {
            let estimated_items = (capacity_bytes / TYPICAL_ENTRY).clamp(1, 1 << 22) as usize;
            Cache::with_weighter(estimated_items, capacity_bytes, EntryWeight)
        });
        PostCache { entries, fingerprint_secret: None, field_sets: Default::default() }
    }

    /// Prepares every rendering's fingerprint sites with `secret` (the current version of the
    /// data dir's or shared store's secret ring), so licensees get marked copies.
    pub fn with_fingerprint_secret(mut self, secret: Secret) -> Self {
        self.fingerprint_secret = Some(secret);
        self
    }

    /// The secret copies are marked with, if any.
    pub fn fingerprint_secret(&self) -> Option<&Secret> {
        self.fingerprint_secret.as_ref()
    }

    /// The rendering of `post` (read from the store just now) with `fields`: the cached one if it
    /// shows this revision, else a new one, kept for later requests.
    pub fn render(&self, post: &Post, fields: PostFields) -> Arc<PostJson> {
        self.get(post.id, post.revision, fields).unwrap_or_else(|| {
            let json = Arc::new(PostJson::render(post, fields, self.fingerprint_secret.as_ref()));
            self.insert(post.id, post.revision, fields, json.clone());
            json
        })
    }

    /// The JSON of post `id` at `revision` with `fields`, if it was rendered before.
    pub fn get(&self, id: PostId, revision: u32, fields: PostFields) -> Option<Arc<PostJson>> {
        let (cached_revision, json) = self.entries.as_ref()?.get(&(id, fields))?;
        (cached_revision == revision).then_some(json)
    }

    /// Keeps the JSON of post `id` at `revision` with `fields`, replacing what was kept for them.
    pub fn insert(&self, id: PostId, revision: u32, fields: PostFields, json: Arc<PostJson>) {
        let Some(entries) = &self.entries else { return };
        let (word, bit) = (usize::from(fields.bits()) / 64, 1u64 << (fields.bits() % 64));
        // Read first: after the first insert of a field set the bit is set, and a plain load keeps
        // the cache line shared between workers.
        if self.field_sets[word].load(Ordering::Relaxed) & bit == 0 {
            self.field_sets[word].fetch_or(bit, Ordering::Relaxed);
        }
        entries.insert((id, fields), (revision, json));
    }

    /// Forgets every rendering of post `id`, whatever its revision and fields.
    pub fn evict(&self, id: PostId) {
        let Some(entries) = &self.entries else { return };
        for (word, seen) in self.field_sets.iter().enumerate() {
            let mut bits = seen.load(Ordering::Relaxed);
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                entries.remove(&(id, PostFields::from_bits((word * 64) as u8 + bit as u8)));
            }
        }
    }

    /// How many renderings are kept.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight held: JSON bytes plus per-entry bookkeeping.
    pub fn weight(&self) -> u64 {
        self.entries.as_ref().map_or(0, Cache::weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::QueryParams;

    fn fields(list: &str) -> PostFields {
        let params = QueryParams::parse(Some(&format!("tweet.fields={list}"))).unwrap();
        PostFields::from_names(&params.names(&["tweet.fields"]).unwrap())
    }

    #[test]
    fn serves_only_the_revision_it_holds() {
        let cache = PostCache::new(1 << 20);
        let id = PostId::new(7);
        let lang = fields("lang");
        cache.insert(id, 1, lang, Arc::new(PostJson::from_static(b"{\"id\":\"7\"}")));
        assert_eq!(cache.get(id, 1, lang).map(|json| json.public().clone()).as_deref(), Some(&b"{\"id\":\"7\"}"[..]));
        assert!(cache.get(id, 2, lang).is_none(), "a newer revision is a miss");
        assert!(cache.get(id, 1, fields("author_id")).is_none(), "other fields are a miss");
    }

    #[test]
    fn eviction_removes_every_field_set() {
        let cache = PostCache::new(1 << 20);
        let (id, other) = (PostId::new(7), PostId::new(8));
        let sets = [PostFields::default(), fields("lang"), fields("public_metrics,author_id,created_at")];
        for set in sets {
            cache.insert(id, 3, set, Arc::new(PostJson::from_static(b"{}")));
            cache.insert(other, 1, set, Arc::new(PostJson::from_static(b"{}")));
        }
        cache.evict(id);
        assert!(sets.iter().all(|&set| cache.get(id, 3, set).is_none()));
        assert!(sets.iter().all(|&set| cache.get(other, 1, set).is_some()), "other posts stay");
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn bounded_by_bytes_and_can_be_disabled() {
        let cache = PostCache::new(64 * 1024);
        for id in 1..=1_000 {
            cache.insert(PostId::new(id), 1, PostFields::default(), Arc::new(PostJson::from_static(&[b'x'; 400])));
        }
        assert!(cache.weight() <= 64 * 1024, "weight {}", cache.weight());
        assert!(!cache.is_empty());

        let off = PostCache::new(0);
        off.insert(PostId::new(1), 1, PostFields::default(), Arc::new(PostJson::from_static(b"{}")));
        assert!(off.get(PostId::new(1), 1, PostFields::default()).is_none());
        off.evict(PostId::new(1));
        assert!(off.is_empty());
    }
}

//! Which of a request's posts are live, and at which revision: the check that keeps a post
//! deleted or corrected before a request starts from ever being served to it as it was.
//!
//! The store can answer that per id ([`Store::live_post_revisions`]: one primary-key lookup per
//! post, a third of a search's CPU at 100 posts a page). This module answers it from memory
//! instead whenever that is provably as good: the feed follower ([`crate::feed`]) keeps, for
//! every post it has seen, its current revision, its author and whether it is deleted
//! ([`LivePosts`]), and publishes how far it has applied the store's revision and event feeds.
//! Each request reads the store's watermark ([`Store::feed_watermark`]: the newest revision and
//! event `seq` committed, two B-tree descents). Every change to a post writes a revision or an
//! event, so if the feed has applied both feeds at least that far, memory reflects every change
//! committed before the request began, and is the answer. Otherwise (a commit the feed has not
//! polled yet, a store without a commit-ordered watermark) the store is asked per id, as before.
//!
//! Before even the watermark, the store's post change stamp ([`Store::post_change_stamp`]: two
//! atomic loads from a file every process maps) is compared with the one the feed read before
//! its last complete poll: equal means no change to posts has begun since, so memory is the
//! answer without any query. The watermark query was a tenth of a search's CPU.
//!
//! [`Store::live_post_revisions`]: datapact_store::Store::live_post_revisions
//! [`Store::feed_watermark`]: datapact_store::Store::feed_watermark
//! [`Store::post_change_stamp`]: datapact_store::Store::post_change_stamp

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use datapact_core::{PostId, UserId};
use datapact_store::{PostEvent, PostEventKind, RevisionEntry};

use crate::AppState;
use crate::problem::Problem;

/// `(id, revision, author)` of the posts among `ids` that are live (known and not deleted), in
/// the order of `ids`, each once; deleted and unknown ids are left out. Exactly what
/// [`Store::live_post_revisions`] says at some instant after this call starts (so never a state
/// older than the request), but answered from the feed's memory when the feed has applied every
/// change the store had committed when this call started.
///
/// [`Store::live_post_revisions`]: datapact_store::Store::live_post_revisions
pub async fn live_revisions(state: &AppState, ids: &[PostId]) -> Result<Vec<(PostId, u32, UserId)>, Problem> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let live = state.feed.live_posts();
    // The stamp (two atomic loads) first: unchanged since the feed's last poll means nothing to
    // ask the store. It is read before the table, so the table is never older than the request.
    if posts_state(state).is_some()
        && let Some(found) = live.lookup(ids)
    {
        live.stamped.fetch_add(1, Ordering::Relaxed);
        return Ok(found);
    }
    // The watermark is read first: anything committed before this request is at or below it.
    if let Some(watermark) = state.store.feed_watermark().await?
        && let Some(found) = live.lookup_if_applied(watermark, ids)
    {
        return Ok(found);
    }
    live.fallbacks.fetch_add(1, Ordering::Relaxed);
    let found = state.store.live_post_revisions(ids).await?;
    Ok(in_given_order(ids, found))
}

/// The state of every post, named: the store's post change stamp with the feed having applied
/// everything up to it, and the version of the feed's table. While two reads give the same
/// `PostsState`, no post has been ingested, corrected or deleted in between, so anything derived
/// from posts' live state (which posts of a search page are live, at which revision) still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostsState {
    stamp: u64,
    version: u64,
}

/// The state of posts now, if the feed has applied every change up to the store's stamp; `None`
/// when it has not (or the store keeps no stamp), when nothing can be named.
pub fn posts_state(state: &AppState) -> Option<PostsState> {
    let stamp = state.store.post_change_stamp()?;
    let live = state.feed.live_posts();
    // The version first: an apply landing in between makes it older than the table, so a state
    // named with it is only ever matched conservatively (a miss), never wrongly.
    let version = live.version.load(Ordering::Acquire);
    (stamp != NO_STAMP && live.stamp_applied.load(Ordering::Acquire) == stamp).then_some(PostsState { stamp, version })
}

/// The store's answer (ascending, or in any order) in the order of `ids`, each id once.
fn in_given_order(ids: &[PostId], found: Vec<(PostId, u32, UserId)>) -> Vec<(PostId, u32, UserId)> {
    let mut found: HashMap<PostId, (u32, UserId)> =
        found.into_iter().map(|(id, revision, author)| (id, (revision, author))).collect();
    // Removing each id as it is placed also drops repeats.
    ids.iter().filter_map(|&id| found.remove(&id).map(|(revision, author)| (id, revision, author))).collect()
}

/// Every post the feed has seen: current revision, author and whether it is deleted, plus how
/// far the feed has applied the store's revisions and events. Written only by the feed follower,
/// read by every request.
pub struct LivePosts {
    table: RwLock<PostTable>,
    /// The highest revision `seq` whose revision, and every one before it, is in `table`.
    revisions_applied: AtomicI64,
    /// The highest event `seq` whose event, and every one before it, is in `table`.
    events_applied: AtomicI64,
    /// The store's post change stamp read before the last poll that applied everything
    /// ([`Store::post_change_stamp`]); [`NO_STAMP`] until one has.
    ///
    /// [`Store::post_change_stamp`]: datapact_store::Store::post_change_stamp
    stamp_applied: AtomicU64,
    /// Bumped by every apply, whatever it changed: with the stamp, names the table's state
    /// (see [`PostsState`]).
    version: AtomicU64,
    /// How many checks the stamp answered (no query at all).
    stamped: AtomicU64,
    /// How many checks had to ask the store (the feed was behind the store's watermark).
    fallbacks: AtomicU64,
}

/// No stamp applied yet (a store's stamp never reaches it: it counts changes).
const NO_STAMP: u64 = u64::MAX;

impl Default for LivePosts {
    fn default() -> Self {
        Self::new()
    }
}

impl LivePosts {
    pub fn new() -> Self {
        LivePosts {
            table: RwLock::new(PostTable::default()),
            revisions_applied: AtomicI64::new(0),
            events_applied: AtomicI64::new(0),
            stamp_applied: AtomicU64::new(NO_STAMP),
            version: AtomicU64::new(0),
            stamped: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Applies revisions in feed order (each carries its post's current author and deletion),
    /// then publishes the last `seq` as applied.
    pub fn apply_revisions(&self, entries: &[RevisionEntry]) {
        let Some(last) = entries.last().map(|entry| entry.seq) else { return };
        {
            let Ok(mut table) = self.table.write() else { return };
            for entry in entries {
                let post = &entry.post;
                table.apply_revision(post.id, post.revision, post.author_id, post.deleted_at.is_some());
            }
            self.version.fetch_add(1, Ordering::Release);
        }
        // Release: whoever reads this `seq` (Acquire) sees the table as updated above.
        self.revisions_applied.fetch_max(last, Ordering::Release);
    }

    /// Applies corrections and deletions in feed order, then publishes the last `seq` as applied.
    pub fn apply_events(&self, events: &[PostEvent]) {
        let Some(last) = events.last().map(|event| event.seq) else { return };
        {
            let Ok(mut table) = self.table.write() else { return };
            for event in events {
                match event.kind {
                    PostEventKind::Corrected { revision } => table.apply_correction(event.post_id, revision),
                    PostEventKind::Deleted => table.apply_deletion(event.post_id),
                }
            }
            self.version.fetch_add(1, Ordering::Release);
        }
        self.events_applied.fetch_max(last, Ordering::Release);
    }

    /// Publishes that every change to posts up to the store's post change stamp `stamp` (read
    /// before the revisions and events just applied were) is in the table.
    pub fn apply_stamp(&self, stamp: u64) {
        self.stamp_applied.store(stamp, Ordering::Release);
    }

    /// How many checks the store's post change stamp answered without a query.
    pub fn stamped(&self) -> u64 {
        self.stamped.load(Ordering::Relaxed)
    }

    /// `(revision seq, event seq)` applied so far.
    pub fn applied(&self) -> (i64, i64) {
        (self.revisions_applied.load(Ordering::Acquire), self.events_applied.load(Ordering::Acquire))
    }

    /// The live posts among `ids` (as [`live_revisions`] returns them) if everything up to
    /// `watermark` (`(revision seq, event seq)`) has been applied; `None` if not.
    pub fn lookup_if_applied(&self, watermark: (i64, i64), ids: &[PostId]) -> Option<Vec<(PostId, u32, UserId)>> {
        let (revisions, events) = self.applied();
        if revisions < watermark.0 || events < watermark.1 {
            return None;
        }
        self.lookup(ids)
    }

    fn lookup(&self, ids: &[PostId]) -> Option<Vec<(PostId, u32, UserId)>> {
        // A poisoned lock means an update panicked halfway: the store answers from then on.
        let table = self.table.read().ok()?;
        let mut found = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some((revision, author)) = table.live(id) {
                found.push((id, revision, author));
            }
        }
        drop(table);
        if has_repeats(ids) {
            let mut seen = std::collections::HashSet::with_capacity(found.len());
            found.retain(|(id, _, _)| seen.insert(*id));
        }
        Some(found)
    }

    /// How many checks asked the store because the feed had not applied its latest commits.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// How many posts are known (deleted ones included).
    pub fn len(&self) -> usize {
        self.table.read().map_or(0, |table| table.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held: the slots and the author table.
    pub fn heap_bytes(&self) -> usize {
        self.table.read().map_or(0, |table| table.heap_bytes())
    }
}

/// Whether any id appears twice (a search page never repeats one; a lookup may).
fn has_repeats(ids: &[PostId]) -> bool {
    match ids.len() {
        0 | 1 => false,
        2..=16 => ids.iter().enumerate().any(|(i, id)| ids[i + 1..].contains(id)),
        _ => {
            let mut sorted: Vec<i64> = ids.iter().map(|id| id.get()).collect();
            sorted.sort_unstable();
            sorted.windows(2).any(|pair| pair[0] == pair[1])
        }
    }
}

/// Post id → packed state, in open addressing with linear probing: 16 bytes a slot, with the
/// number of slots any integer (not a power of two), kept between `len / MAX_LOAD` and
/// `len / MAX_LOAD * GROWTH`, so about 20–25 bytes a post. Posts are never removed (a deleted
/// post keeps a slot marked deleted), so probing needs no tombstones.
#[derive(Default)]
struct PostTable {
    slots: Vec<Slot>,
    len: usize,
    /// Author ids by index, and back: a slot holds a 31-bit index, not the 64-bit id.
    authors: Vec<UserId>,
    author_index: HashMap<UserId, u32>,
}

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    /// Revision in the high 32 bits, then the deleted flag, then 31 bits of author index.
    state: u64,
}

/// No post id is 0 ([`PostId::new`] refuses it), so a zeroed slot is empty.
const EMPTY: u64 = 0;
const DELETED: u64 = 1 << 31;
const AUTHOR_MASK: u64 = DELETED - 1;
/// Grow when more than 4 slots in 5 are full...
const MAX_LOAD: (usize, usize) = (4, 5);
/// ...to 5/4 of the slots.
const GROWTH: (usize, usize) = (5, 4);
const MIN_SLOTS: usize = 1024;

fn pack(revision: u32, deleted: bool, author: u32) -> u64 {
    (u64::from(revision) << 32) | if deleted { DELETED } else { 0 } | u64::from(author)
}

fn revision_of(state: u64) -> u32 {
    (state >> 32) as u32
}

impl PostTable {
    /// The home slot of `key`: a 64-bit mix (MurmurHash3's finalizer; post ids are snowflakes,
    /// whose low bits vary little), mapped onto `0..slots` by multiplication.
    fn home(&self, key: u64) -> usize {
        let mut h = key;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: u64) -> usize {
        let mut at = self.home(key);
        loop {
            let slot = self.slots[at];
            if slot.key == key || slot.key == EMPTY {
                return at;
            }
            at += 1;
            if at == self.slots.len() {
                at = 0;
            }
        }
    }

    fn get(&self, id: PostId) -> Option<u64> {
        let key = id.get() as u64;
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.slots[self.find(key)];
        (slot.key == key).then_some(slot.state)
    }

    /// Revision and author of `id` if it is known and not deleted.
    fn live(&self, id: PostId) -> Option<(u32, UserId)> {
        let state = self.get(id)?;
        if state & DELETED != 0 {
            return None;
        }
        Some((revision_of(state), self.authors[(state & AUTHOR_MASK) as usize]))
    }

    /// Sets the state of `id` to `update(current)`, inserting it if it is new.
    fn update(&mut self, id: PostId, update: impl FnOnce(Option<u64>) -> u64) {
        let key = id.get() as u64;
        if self.slots.is_empty() {
            self.grow();
        }
        let mut at = self.find(key);
        if self.slots[at].key == key {
            self.slots[at].state = update(Some(self.slots[at].state));
            return;
        }
        if (self.len + 1) * MAX_LOAD.1 > self.slots.len() * MAX_LOAD.0 {
            self.grow();
            at = self.find(key);
        }
        self.slots[at] = Slot { key, state: update(None) };
        self.len += 1;
    }

    fn grow(&mut self) {
        let slots = (self.slots.len() * GROWTH.0 / GROWTH.1).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot { key: EMPTY, state: 0 }; slots]);
        for slot in old.into_iter().filter(|slot| slot.key != EMPTY) {
            let at = self.find(slot.key);
            self.slots[at] = slot;
        }
    }

    fn author(&mut self, author: UserId) -> u32 {
        if let Some(&index) = self.author_index.get(&author) {
            return index;
        }
        let index = u32::try_from(self.authors.len())
            .ok()
            .filter(|&index| u64::from(index) <= AUTHOR_MASK)
            .expect("fewer than 2^31 authors");
        self.authors.push(author);
        self.author_index.insert(author, index);
        index
    }

    /// A revision from the feed: its post's current author and deletion come with it. The
    /// revision only ever grows and a deletion is final, so applying anything twice, or an older
    /// revision after a newer one, changes nothing.
    fn apply_revision(&mut self, id: PostId, revision: u32, author: UserId, deleted: bool) {
        let author = self.author(author);
        self.update(id, |current| {
            let (revision, deleted) = match current {
                Some(state) => (revision.max(revision_of(state)), deleted || state & DELETED != 0),
                None => (revision, deleted),
            };
            pack(revision, deleted, author)
        });
    }

    /// A correction of a post not seen yet (its revision is still to be read) is left to the
    /// revision: without it the author is unknown, and the post cannot be served before it comes.
    fn apply_correction(&mut self, id: PostId, revision: u32) {
        let Some(state) = self.get(id) else { return };
        if revision > revision_of(state) {
            self.update(id, |_| pack(revision, state & DELETED != 0, (state & AUTHOR_MASK) as u32));
        }
    }

    /// A deletion is recorded even for a post not seen yet, so it can never come back.
    fn apply_deletion(&mut self, id: PostId) {
        self.update(id, |current| current.map_or(pack(0, true, 0), |state| state | DELETED));
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self.authors.capacity() * size_of::<UserId>()
            + self.author_index.capacity() * (size_of::<(UserId, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datapact_core::Timestamp;
    use datapact_core::ingest::{IngestRecord, parse_line};
    use datapact_store::{SqliteStore, Store};
    use proptest::prelude::*;

    use super::*;
    use crate::feed;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn post(id: i64, author: i64, text: &str) -> IngestRecord {
        let line = serde_json::json!({
            "id": id.to_string(), "text": text, "author_id": author.to_string(),
            "created_at": "2024-01-01T00:00:00Z", "lang": "en",
            "author": {"id": author.to_string(), "username": format!("writer{author}")},
        });
        parse_line(line.to_string().as_bytes()).unwrap()
    }

    fn delete(id: i64) -> IngestRecord {
        IngestRecord::Delete { id: PostId::new(id), deleted_at: None }
    }

    fn ids(ids: &[i64]) -> Vec<PostId> {
        ids.iter().copied().map(PostId::new).collect()
    }

    struct Gateway {
        _dir: tempfile::TempDir,
        state: AppState,
    }

    impl Gateway {
        async fn start(posts: Vec<IngestRecord>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            if !posts.is_empty() {
                store.ingest(posts, NOW).await.unwrap();
            }
            let state = crate::test_state(store, dir.path()).await;
            let gateway = Gateway { _dir: dir, state };
            gateway.poll().await;
            gateway
        }

        async fn poll(&self) {
            self.state.feed.poll(self.state.store.as_ref(), &self.state.index).await.unwrap();
        }

        /// Writes to the store without letting the feed see it.
        async fn ingest(&self, records: Vec<IngestRecord>) {
            self.state.store.ingest(records, NOW).await.unwrap();
        }

        /// The store's own answer, in the order asked.
        async fn stores_answer(&self, asked: &[PostId]) -> Vec<(PostId, u32, UserId)> {
            in_given_order(asked, self.state.store.live_post_revisions(asked).await.unwrap())
        }

        fn fallbacks(&self) -> u64 {
            self.state.feed.live_posts().fallbacks()
        }

        fn stamped(&self) -> u64 {
            self.state.feed.live_posts().stamped()
        }
    }

    /// Another process writing the same store (the CLI's `ingest`, here a second handle on the
    /// data directory) moves the stamp this gateway reads: its change is seen before the feed
    /// polls, and the stamp answers again once it has.
    #[tokio::test]
    async fn a_change_by_another_process_is_seen_before_the_feed_polls() {
        let gateway = Gateway::start((1..=3).map(|id| post(id, 7, "first")).collect()).await;
        let asked = ids(&[3, 2, 1]);
        let stamped = gateway.stamped();
        live_revisions(&gateway.state, &asked).await.unwrap();
        assert_eq!(gateway.stamped(), stamped + 1, "unchanged since the poll: the stamp answers");

        let other = SqliteStore::open(gateway._dir.path()).unwrap();
        other.ingest(vec![delete(2), post(1, 7, "corrected")], NOW).await.unwrap();
        let fallbacks = gateway.fallbacks();
        let live = live_revisions(&gateway.state, &asked).await.unwrap();
        let author = UserId::new(7);
        assert_eq!(live, [(PostId::new(3), 1, author), (PostId::new(1), 2, author)]);
        assert_eq!(gateway.stamped(), stamped + 1, "the stamp moved: not answered by it");
        assert_eq!(gateway.fallbacks(), fallbacks + 1, "answered by the store");

        gateway.poll().await;
        assert_eq!(live_revisions(&gateway.state, &asked).await.unwrap(), live);
        assert_eq!(gateway.stamped(), stamped + 2);
    }

    #[tokio::test]
    async fn changes_the_feed_has_not_applied_are_answered_by_the_store() {
        let gateway = Gateway::start((1..=5).map(|id| post(id, 7, "first")).collect()).await;
        gateway.ingest(vec![post(1, 7, "corrected")]).await;
        gateway.ingest(vec![delete(2)]).await;
        let asked = ids(&[3, 2, 1, 99]);
        let fallbacks = gateway.fallbacks();
        let live = live_revisions(&gateway.state, &asked).await.unwrap();
        let author = UserId::new(7);
        assert_eq!(live, [(PostId::new(3), 1, author), (PostId::new(1), 2, author)]);
        assert_eq!(gateway.fallbacks(), fallbacks + 1, "answered by the store");
        // Memory alone still holds the old state, and knows it is behind.
        let watermark = gateway.state.store.feed_watermark().await.unwrap().unwrap();
        assert!(gateway.state.feed.live_posts().lookup_if_applied(watermark, &asked).is_none());

        // A deletion alone (an event, no revision) is enough to send the check to the store.
        gateway.poll().await;
        gateway.ingest(vec![delete(3)]).await;
        let live = live_revisions(&gateway.state, &asked).await.unwrap();
        assert_eq!(live, [(PostId::new(1), 2, author)]);
        assert_eq!(gateway.fallbacks(), fallbacks + 2);
        // So is a new post.
        gateway.poll().await;
        gateway.ingest(vec![post(6, 8, "new")]).await;
        let live = live_revisions(&gateway.state, &ids(&[6, 5])).await.unwrap();
        assert_eq!(live, [(PostId::new(6), 1, UserId::new(8)), (PostId::new(5), 1, author)]);
        assert_eq!(gateway.fallbacks(), fallbacks + 3);
    }

    #[tokio::test]
    async fn after_a_poll_the_answer_comes_from_memory() {
        let gateway = Gateway::start((1..=5).map(|id| post(id, 7, "first")).collect()).await;
        gateway
            .ingest(vec![post(1, 7, "corrected"), post(1, 7, "corrected again"), delete(2), post(6, 8, "new")])
            .await;
        gateway.ingest(vec![post(2, 7, "corrected after deletion"), delete(4), delete(4)]).await;
        gateway.poll().await;
        let asked = ids(&[6, 5, 4, 3, 2, 1, 99, 5, 1]);
        let fallbacks = gateway.fallbacks();
        let stamped = gateway.stamped();
        let live = live_revisions(&gateway.state, &asked).await.unwrap();
        assert_eq!(gateway.fallbacks(), fallbacks, "answered from memory");
        assert_eq!(gateway.stamped(), stamped + 1, "without a query");
        assert_eq!(live, gateway.stores_answer(&asked).await);
        let author = UserId::new(7);
        assert_eq!(
            live,
            [
                (PostId::new(6), 1, UserId::new(8)),
                (PostId::new(5), 1, author),
                (PostId::new(3), 1, author),
                (PostId::new(1), 3, author)
            ]
        );
        assert!(live_revisions(&gateway.state, &[]).await.unwrap().is_empty());
        assert_eq!(gateway.state.feed.live_posts().len(), 6);
    }

    #[tokio::test]
    async fn an_empty_store_answers_from_memory() {
        let gateway = Gateway::start(Vec::new()).await;
        assert!(live_revisions(&gateway.state, &ids(&[1, 2])).await.unwrap().is_empty());
        assert_eq!(gateway.fallbacks(), 0);
    }

    /// Requests racing the feed follower: whatever the follower has applied, a change committed
    /// before a check starts is always seen by it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_racing_the_feed_never_see_an_older_state() {
        let gateway = Gateway::start((1..=40).map(|id| post(id, 7, "rev 1")).collect()).await;
        let follower = tokio::spawn(feed::follow(
            gateway.state.feed.clone(),
            gateway.state.store.clone(),
            gateway.state.index.clone(),
            std::time::Duration::from_millis(1),
        ));
        let asked = ids(&(1..=41).collect::<Vec<_>>());
        for id in 1..=40 {
            gateway.ingest(vec![post(id, 7, "rev 2")]).await;
            let live = live_revisions(&gateway.state, &asked).await.unwrap();
            assert!(live.iter().any(|&(post, revision, _)| post.get() == id && revision == 2), "{id}: {live:?}");
            gateway.ingest(vec![delete(id)]).await;
            let live = live_revisions(&gateway.state, &asked).await.unwrap();
            assert!(live.iter().all(|&(post, _, _)| post.get() > id), "{id}: {live:?}");
            assert_eq!(live.len(), 40 - id as usize);
        }
        follower.abort();
        gateway.poll().await;
        assert!(live_revisions(&gateway.state, &asked).await.unwrap().is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Ingest of a post (new, or a correction when known and the text differs).
        Post {
            id: i64,
            author: i64,
            text: u8,
        },
        Delete {
            id: i64,
        },
        Poll,
        /// Compare both answers for these ids.
        Check {
            ids: Vec<i64>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..24i64, 1..4i64, 0..3u8).prop_map(|(id, author, text)| Op::Post { id, author, text }),
            2 => (1..24i64).prop_map(|id| Op::Delete { id }),
            2 => Just(Op::Poll),
            3 => prop::collection::vec(1..26i64, 0..12).prop_map(|ids| Op::Check { ids }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random ingests, corrections and deletions (several per transaction), polls at random
        /// points: `live_revisions` always equals the store's own answer, and comes from memory
        /// whenever the feed has polled since the last write.
        #[test]
        fn live_revisions_always_equal_the_stores(batches in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..14)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let gateway = Gateway::start(Vec::new()).await;
                let mut polled_since_write = true;
                for batch in batches {
                    let mut records = Vec::new();
                    for op in batch {
                        match op {
                            Op::Post { id, author, text } => records.push(post(id, author, &format!("text {text}"))),
                            Op::Delete { id } => records.push(delete(id)),
                            Op::Poll | Op::Check { .. } => {
                                if !records.is_empty() {
                                    gateway.ingest(std::mem::take(&mut records)).await;
                                    polled_since_write = false;
                                }
                                if let Op::Check { ids: asked } = op {
                                    let asked = ids(&asked);
                                    let fallbacks = gateway.fallbacks();
                                    let live = live_revisions(&gateway.state, &asked).await.unwrap();
                                    prop_assert_eq!(&live, &gateway.stores_answer(&asked).await);
                                    if polled_since_write && !asked.is_empty() {
                                        prop_assert_eq!(gateway.fallbacks(), fallbacks, "not from memory");
                                    }
                                } else {
                                    gateway.poll().await;
                                    polled_since_write = true;
                                }
                            }
                        }
                    }
                    if !records.is_empty() {
                        gateway.ingest(records).await;
                        polled_since_write = false;
                    }
                }
                Ok(())
            })?;
        }

        /// The table against a plain map, across growth, repeats, out-of-order and early events.
        #[test]
        fn the_table_follows_a_map(ops in prop::collection::vec((0..5u8, 1..3000i64, 1..6u32, 1..40i64), 0..3000)) {
            let mut table = PostTable::default();
            let mut model: HashMap<i64, (u32, Option<i64>, bool)> = HashMap::new();
            for (kind, id, revision, author) in ops {
                let post = PostId::new(id);
                match kind {
                    0 | 1 => {
                        let deleted = kind == 1 && revision == 1;
                        table.apply_revision(post, revision, UserId::new(author), deleted);
                        let entry = model.entry(id).or_insert((0, None, false));
                        *entry = (entry.0.max(revision), Some(author), entry.2 || deleted);
                    }
                    2 | 3 => {
                        table.apply_correction(post, revision);
                        if let Some(entry) = model.get_mut(&id) {
                            entry.0 = entry.0.max(revision);
                        }
                    }
                    _ => {
                        table.apply_deletion(post);
                        model.entry(id).or_insert((0, None, false)).2 = true;
                    }
                }
            }
            prop_assert_eq!(table.len, model.len());
            for id in 1..3000 {
                let expected = model.get(&id).filter(|entry| !entry.2).map(|&(revision, author, _)| {
                    (revision, UserId::new(author.expect("a live post came with its revision")))
                });
                prop_assert_eq!(table.live(PostId::new(id)), expected, "id {}", id);
            }
            prop_assert!(table.slots.is_empty() || table.len * 5 < table.slots.len() * 4 + 5);
        }
    }

    #[test]
    fn has_repeats_finds_them_in_short_and_long_lists() {
        assert!(!has_repeats(&ids(&[])) && !has_repeats(&ids(&[1])) && !has_repeats(&ids(&[1, 2, 3])));
        assert!(has_repeats(&ids(&[1, 2, 1])));
        let long: Vec<i64> = (1..=100).collect();
        assert!(!has_repeats(&ids(&long)));
        assert!(has_repeats(&ids(&[long.as_slice(), &[42]].concat())));
    }

    #[test]
    fn a_million_posts_take_about_twenty_two_bytes_each() {
        let mut table = PostTable::default();
        for id in 1..=1_000_000i64 {
            // Snowflake-like ids: a millisecond time in the high bits.
            table.apply_revision(
                PostId::new((1_700_000_000_000 + id * 7) << 22 | (id & 0xfff)),
                1,
                UserId::new(id % 50_000 + 1),
                false,
            );
        }
        let per_post = table.heap_bytes() as f64 / 1e6;
        // 16-byte slots at 64-80 % load, plus the authors.
        assert!(per_post < 27.0, "{per_post} bytes a post");
    }
}

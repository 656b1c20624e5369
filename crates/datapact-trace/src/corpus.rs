//! The corpus a leak is matched against: every revision of every post (deleted ones
//! included: a post deleted after it was delivered can still leak).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use datapact_mark::{PreparedPost, Secret, fold};
use rayon::prelude::*;

/// Collects the corpus revision by revision (in any order), then [`CorpusBuilder::build`].
#[derive(Debug, Default)]
pub struct CorpusBuilder {
    revisions: Vec<(u64, u32, Box<str>)>,
}

impl CorpusBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the text `text` of revision `revision` (1 for the first text) of post `post_id`.
    pub fn add_revision(&mut self, post_id: u64, revision: u32, text: &str) {
        self.revisions.push((post_id, revision, text.into()));
    }

    /// Revisions added so far.
    pub fn len(&self) -> usize {
        self.revisions.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    /// Indexes the posts by id. The index by folded text is built on first use, so a leak
    /// that keeps its ids never pays for folding the whole corpus.
    pub fn build(mut self) -> Corpus {
        // Sorting groups each post's revisions together in revision order; a repeated
        // (post, revision) keeps its first text.
        self.revisions.sort_by_key(|r| (r.0, r.1));
        self.revisions.dedup_by_key(|r| (r.0, r.1));
        let mut posts = Vec::new();
        let mut by_id = HashMap::with_hasher(IdHash);
        let mut rev_number = Vec::with_capacity(self.revisions.len());
        let mut rev_post = Vec::with_capacity(self.revisions.len());
        let mut texts = Vec::with_capacity(self.revisions.len());
        for (post_id, revision, text) in self.revisions {
            if posts.last().is_none_or(|p: &PostSlot| p.id != post_id) {
                by_id.insert(post_id, posts.len() as u32);
                let at = texts.len() as u32;
                posts.push(PostSlot { id: post_id, first: at, end: at });
            }
            let post = posts.len() as u32 - 1;
            if let Some(slot) = posts.last_mut() {
                slot.end += 1;
            }
            rev_number.push(revision);
            rev_post.push(post);
            texts.push(text);
        }
        Corpus { posts, by_id, rev_number, rev_post, texts, by_text: OnceLock::new() }
    }
}

#[derive(Clone, Copy, Debug)]
struct PostSlot {
    id: u64,
    /// Its revisions are `first..end` in the flat revision arrays, in revision order.
    first: u32,
    end: u32,
}

/// Hashes post ids with one multiplication (Fibonacci hashing) instead of SipHash: every
/// leaked record costs an id lookup, and the table holds only the platform's own ids, so
/// there is no flooding to defend against.
#[derive(Clone, Copy, Debug, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Clone, Copy, Debug)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Snowflake ids differ mostly in their high bits (time); the multiply spreads every
        // bit, and hashbrown takes its bucket from the top bits and its tag from the top 7.
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 ^= self.0 >> 29;
    }
}

/// Every revision of every post, indexed by post id and (lazily) by folded text.
#[derive(Debug)]
pub struct Corpus {
    posts: Vec<PostSlot>,
    by_id: HashMap<u64, u32, IdHash>,
    rev_number: Vec<u32>,
    rev_post: Vec<u32>,
    texts: Vec<Box<str>>,
    /// `(match_key(text), revision index)`, sorted. Eight bytes are plenty to find
    /// candidates; a false match (probability ~2^-64 per pair) would only add symbols
    /// independent of every licensee's codeword, which cannot accuse anyone.
    by_text: OnceLock<Vec<(u64, u32)>>,
}

/// A revision of a corpus post: an index into the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionRef(pub(crate) u32);

impl Corpus {
    /// Number of posts.
    pub fn posts(&self) -> usize {
        self.posts.len()
    }

    /// Number of revisions (texts).
    pub fn revisions(&self) -> usize {
        self.texts.len()
    }

    /// The post id of a revision.
    pub fn post_id(&self, r: RevisionRef) -> u64 {
        self.posts[self.rev_post[r.0 as usize] as usize].id
    }

    /// The id of the post with dense index `i` (0..posts).
    pub(crate) fn post_id_at(&self, i: usize) -> u64 {
        self.posts[i].id
    }

    /// The dense index (0..posts) of the post a revision belongs to.
    pub(crate) fn post_index(&self, r: RevisionRef) -> u32 {
        self.rev_post[r.0 as usize]
    }

    /// The revision number.
    pub fn revision_number(&self, r: RevisionRef) -> u32 {
        self.rev_number[r.0 as usize]
    }

    /// The public text of a revision.
    pub fn text(&self, r: RevisionRef) -> &str {
        &self.texts[r.0 as usize]
    }

    /// Prepares a revision under every secret (one [`PreparedPost`] per secret, same order).
    pub(crate) fn prepare(&self, r: RevisionRef, secrets: &[Secret]) -> Box<[PreparedPost]> {
        secrets.iter().map(|s| PreparedPost::new(s, self.post_id(r), self.text(r))).collect()
    }

    /// The revision of post `post_id` a leaked text is a copy of: the latest revision whose
    /// [`match_key`] equals the leaked text's, else the latest revision (the post id is the
    /// stronger key: a text edited by the leaker still carries the sites it kept). `None`
    /// if the post is unknown.
    pub fn match_id(&self, post_id: u64, leaked_text: &str) -> Option<RevisionRef> {
        self.match_id_exact(post_id, leaked_text).map(|(r, _)| r)
    }

    /// As [`Corpus::match_id`], and whether the leaked text is that revision's (a post with one
    /// revision: always, the post itself is what the record shows, whatever its text).
    pub fn match_id_exact(&self, post_id: u64, leaked_text: &str) -> Option<(RevisionRef, bool)> {
        let slot = self.posts[*self.by_id.get(&post_id)? as usize];
        let latest = RevisionRef(slot.end - 1);
        if slot.end - slot.first == 1 {
            // One revision: it is the answer either way, no need to fold.
            return Some((latest, true));
        }
        let leaked = match_key(leaked_text);
        let found = (slot.first..slot.end).rev().find(|&i| match_key(&self.texts[i as usize]) == leaked);
        Some(found.map_or((latest, false), |i| (RevisionRef(i), true)))
    }

    /// The revisions (at most one per post, the latest) whose [`match_key`] equals the
    /// leaked text's. Builds the text index on first call.
    pub fn match_text(&self, leaked_text: &str) -> Vec<RevisionRef> {
        self.match_by_key(match_key(leaked_text))
    }

    /// As [`Corpus::match_text`], from a precomputed [`match_key`].
    pub fn match_by_key(&self, key: u64) -> Vec<RevisionRef> {
        if key == 0 {
            return Vec::new();
        }
        let index = self.text_index();
        let start = index.partition_point(|e| e.0 < key);
        let mut out: Vec<RevisionRef> = Vec::new();
        for &(k, r) in &index[start..] {
            if k != key {
                break;
            }
            let r = RevisionRef(r);
            // Entries are sorted by revision index within a key, so a later revision of the
            // same post replaces the earlier one.
            match out.last_mut() {
                Some(last) if self.post_index(*last) == self.post_index(r) => *last = r,
                _ => out.push(r),
            }
        }
        out
    }

    fn text_index(&self) -> &[(u64, u32)] {
        self.by_text.get_or_init(|| {
            let mut index: Vec<(u64, u32)> =
                self.texts.par_iter().enumerate().map(|(i, t)| (match_key(t), i as u32)).collect();
            index.par_sort_unstable();
            index
        })
    }
}

/// The key a leaked text is matched to its post by: [`fold`] (which undoes every
/// fingerprint and Unicode normalisation), then lowercase, then without whitespace and
/// punctuation, hashed (first 8 bytes of BLAKE3). So a leak that changed case, spacing or
/// punctuation still finds its post; two posts that differ only in those share a key, and
/// both are then read (a wrong one only adds symbols independent of every licensee's
/// codeword). Emoji and other symbols are kept so emoji-only posts still have a key; a
/// text with nothing left has key 0 and matches nothing.
pub fn match_key(text: &str) -> u64 {
    // ASCII text is its own fold as far as the key goes (NFKC leaves ASCII alone and every
    // other step of `fold` concerns non-ASCII characters or whitespace, which the key drops),
    // so most English posts skip the normalisation.
    let folded: Cow<'_, str> = if text.is_ascii() { Cow::Borrowed(text) } else { Cow::Owned(fold(text)) };
    key_of_folded(&folded)
}

fn key_of_folded(folded: &str) -> u64 {
    let mut kept = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_whitespace() || c.is_ascii_punctuation() || is_other_punctuation(c) {
            continue;
        }
        if c.is_ascii() {
            kept.push(c.to_ascii_lowercase());
        } else {
            kept.extend(c.to_lowercase());
        }
    }
    if kept.is_empty() {
        return 0;
    }
    let digest = blake3::hash(kept.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_bytes()[..8]);
    // 0 is reserved for "nothing to match on".
    u64::from_le_bytes(b).max(1)
}

/// Non-ASCII punctuation a re-typed or re-encoded leak may add or drop ([`fold`] already
/// maps curly quotes, guillemets and dashes to ASCII and `…` to `...`).
fn is_other_punctuation(c: char) -> bool {
    matches!(
        c,
        '¡' | '¿' | '·' | '•' | '‹' | '›' | '、' | '。' | '，' | '！' | '？' | '：' | '；' | '\u{2032}' | '\u{2033}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Corpus {
        let mut b = CorpusBuilder::new();
        b.add_revision(7, 2, "It's fine... really");
        b.add_revision(7, 1, "It's fine");
        b.add_revision(9, 1, "Another post - with a dash");
        b.add_revision(11, 1, "It's fine");
        b.build()
    }

    #[test]
    fn by_id_picks_the_revision_with_the_same_folded_text_else_the_latest() {
        let c = corpus();
        let r = c.match_id(7, "something else").unwrap();
        assert_eq!(c.revision_number(r), 2, "no revision has this text: the latest");
        let r = c.match_id(7, "its   FINE!").unwrap();
        assert_eq!(c.revision_number(r), 1);
        assert_eq!(c.post_id(c.match_id(9, "anything").unwrap()), 9);
        assert!(c.match_id(8, "It's fine").is_none());
    }

    proptest::proptest! {
        /// The ASCII shortcut gives the key the full fold would.
        #[test]
        fn the_ascii_shortcut_is_the_fold(text in "[ -~\t\n]{0,40}|\\PC{0,20}") {
            proptest::prop_assert_eq!(match_key(&text), key_of_folded(&fold(&text)));
        }
    }

    #[test]
    fn by_text_finds_every_post_with_that_folded_text() {
        let c = corpus();
        let mut ids: Vec<u64> = c.match_text(" IT’S\u{a0}fine!! ").iter().map(|&r| c.post_id(r)).collect();
        ids.sort();
        assert_eq!(ids, vec![7, 11]);
        assert!(c.match_text("not in the corpus").is_empty());
    }
}

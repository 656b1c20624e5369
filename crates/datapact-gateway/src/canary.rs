//! Canary records (issue 7): synthetic posts, unique to one licensee, slipped into its result
//! pages so that a leak holding one names its source without any statistics.
//!
//! A canary is written by the demo corpus generator (plausible text by a plausible account) from
//! a seed only the fingerprint secret can produce ([`datapact_mark::Secret::canary_seed`] of the
//! licensee and the canary's post id). Nothing about it is stored but the delivery row the
//! ledger keeps for it (revision [`CANARY_REVISION`], never counted): `datapact trace`
//! regenerates every canary's text from those rows and the secret ring.
//!
//! A canary takes a result slot between two real posts, with an id strictly between theirs, so
//! the page's order, `meta.newest_id`/`oldest_id` and `next_token` are those of its real posts
//! and pagination neither skips nor repeats one. Its author is a synthetic account (never a
//! real user): it appears in `includes.users` when authors are expanded, but a lookup of the
//! canary or its author by id finds nothing (a known limit: a licensee that re-fetches every
//! post by id can tell canaries apart, and then it has only dropped a few posts).

use datapact_core::ingest::{IngestRecord, parse_line};
use datapact_core::{Author, AuthorMetrics, Post, PostId, PublicMetrics, Timestamp, UserId};
use datapact_demo::{CorpusSpec, SNOWFLAKE_EPOCH_MS, generate};
use datapact_mark::Secret;
use datapact_store::UserRecord;

pub use datapact_ledger::CANARY_REVISION;

/// A canary post and its synthetic author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryPost {
    pub post: Post,
    pub author: UserRecord,
}

/// The canary with post id `id` made for `licensee` under `secret`, dated `created_at`. Its text
/// and author depend only on (secret, licensee, id): what `datapact trace` relies on.
pub fn canary_post(secret: &Secret, licensee: u64, id: PostId, created_at: Timestamp) -> CanaryPost {
    let seed = secret.canary_seed(licensee, id.get() as u64);
    // One post by one author; the corpus's own dates are replaced below, so they are fixed here
    // and the text depends on the seed alone.
    let spec = CorpusSpec { seed, posts: 1, authors: 1, days: 1, ..CorpusSpec::default() };
    let generated = generate(&spec).next().map(|line| line.to_string()).unwrap_or_default();
    let (text, lang, author) = match parse_line(generated.as_bytes()) {
        Ok(IngestRecord::Post(post)) => (post.text, post.lang, post.author),
        // The generator's lines always parse (its own tests ingest them); a canary that could not
        // be written is still a distinct post, just a plainer one.
        _ => (format!("note {seed:016x}"), None, None),
    };
    // A synthetic account: an id no real user has (the high bit below i64's sign is set, as for
    // no id X has issued), derived from the seed so the same canary always has the same author.
    let author_id = UserId::new(((seed >> 3) | (1 << 60)) as i64);
    let author = match author {
        Some(author) => Author { id: author_id, ..author },
        None => Author {
            id: author_id,
            username: format!("user{:x}", seed & 0xffff_ffff),
            name: "User".into(),
            created_at: Timestamp::from_millis(SNOWFLAKE_EPOCH_MS),
            description: String::new(),
            location: None,
            verified: false,
            protected: false,
            metrics: AuthorMetrics::default(),
        },
    };
    let post = Post {
        id,
        author_id,
        text,
        revision: CANARY_REVISION,
        created_at,
        lang,
        conversation_id: id,
        in_reply_to_user_id: None,
        referenced_posts: Vec::new(),
        edit_history: vec![id],
        public_metrics: PublicMetrics::default(),
        deleted_at: None,
    };
    CanaryPost { post, author: UserRecord { author, post_count: 1 } }
}

/// Where a page of `len` slots gets a canary, if it gets one: with probability `ppm` per
/// million per slot (at most one per page), between two real posts (position `1..len - 1`, as a
/// preference: the caller moves it to where the neighbours' ids leave room). `draw` is uniform in
/// `0..1_000_000` and `position` any random number (the caller's randomness, so tests can pin
/// them).
pub fn slot(ppm: u32, len: usize, draw: u64, position: usize) -> Option<usize> {
    if ppm == 0 || len < 2 {
        return None;
    }
    let chance = u64::from(ppm).saturating_mul(len as u64).min(1_000_000);
    (draw < chance).then_some(1 + position % (len - 1))
}

/// The canary's id between its neighbours' ids (`a`, `b` in either order), or `None` when they
/// leave no room. `pick` is uniform randomness.
pub fn id_between(a: PostId, b: PostId, pick: u64) -> Option<PostId> {
    let (low, high) = (a.get().min(b.get()), a.get().max(b.get()));
    let room = high - low - 1;
    (room > 0).then(|| PostId::new(low + 1 + (pick % room as u64) as i64))
}

/// The time a Snowflake id encodes, when it is a plausible one (after 2010-11-04 and not after
/// `now`); canaries take it so their `created_at` agrees with their id as a real post's would.
pub fn snowflake_time(id: PostId, now: Timestamp) -> Option<Timestamp> {
    let ms = (id.get() >> 22) + SNOWFLAKE_EPOCH_MS;
    (ms > SNOWFLAKE_EPOCH_MS && ms <= now.millis()).then(|| Timestamp::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_canary_and_licensees_get_different_ones() {
        let secret = Secret::new(1, [9; 32]);
        let (id, at) = (PostId::new(1_800_000_000_000_000_123), Timestamp::from_millis(1_760_000_000_000));
        let a = canary_post(&secret, 5, id, at);
        assert_eq!(a, canary_post(&secret, 5, id, at), "deterministic");
        assert!(!a.post.text.is_empty() && !a.author.author.username.is_empty());
        assert_eq!(a.post.revision, CANARY_REVISION);
        let texts: std::collections::HashSet<String> =
            (1..50u64).map(|licensee| canary_post(&secret, licensee, id, at).post.text).collect();
        assert!(texts.len() >= 45, "canaries of different licensees differ ({} distinct of 49)", texts.len());
        let other_secret = canary_post(&Secret::new(2, [9; 32]), 5, id, at);
        assert_ne!(a.post.text, other_secret.post.text, "a rotated secret makes other canaries");
    }

    #[test]
    fn slots_are_interior_and_follow_the_rate() {
        assert_eq!(slot(0, 100, 0, 0), None);
        assert_eq!(slot(1_000_000, 1, 0, 0), None, "a single post has no interior slot");
        for position in 0..500 {
            let at = slot(1_000_000, 10, 999_999, position).unwrap();
            assert!((1..10).contains(&at));
        }
        // 100 slots at 100 ppm: a 1 % chance per page.
        assert!(slot(100, 100, 9_999, 0).is_some());
        assert!(slot(100, 100, 10_000, 0).is_none());
    }

    #[test]
    fn ids_fall_strictly_between_neighbours() {
        let (a, b) = (PostId::new(100), PostId::new(105));
        for pick in 0..50 {
            let id = id_between(b, a, pick).unwrap().get();
            assert!((101..105).contains(&id));
        }
        assert_eq!(id_between(PostId::new(7), PostId::new(8), 3), None);
        assert_eq!(id_between(PostId::new(7), PostId::new(7), 3), None);
    }
}

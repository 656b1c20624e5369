//! Per-licensee fingerprints in served posts (issue 7).
//!
//! Every licensee receives its own copy of a post's text: the public text with some
//! typographic sites switched to their alternate form, as `datapact_mark` decides from the
//! fingerprint secret, the post and the licensee id. Rendering a post object is the costly part
//! of a response, and it is shared by every licensee (the post cache keeps it), so a post is
//! rendered once, with the text in its public form, together with a list of *splices*: where
//! each site's public form sits in the rendered JSON and its alternate form already escaped.
//! Writing a licensee's copy is then one SipHash per site and a copy with a few substitutions,
//! no escaping and no allocation ([`PostJson::write`]).
//!
//! The result is byte-for-byte the post rendered with `PreparedPost::render(licensee)` as its
//! text (tested below against exactly that), so `datapact trace` reads it like any other copy.

use bytes::Bytes;
use datapact_core::Post;
use datapact_mark::{PreparedPost, Secret, SiteCode};

use crate::render::{PostFields, write_post, write_str_contents};

/// Whose copy a response carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Marking {
    /// The public text (fingerprints off for this licensee, or no secret).
    #[default]
    Public,
    /// The copy of the licensee with this id.
    Licensee(u64),
}

/// A post object rendered once, from which any licensee's copy is written.
#[derive(Clone, Debug)]
pub struct PostJson {
    /// The object with the public text.
    json: Bytes,
    /// In order of `start`, not overlapping.
    splices: Box<[Splice]>,
}

/// One span of one site: what replaces `json[start..end]` (the public form, escaped) in the
/// copy of a licensee whose symbol at the site differs from the public text's.
#[derive(Clone, Debug)]
struct Splice {
    start: u32,
    end: u32,
    code: SiteCode,
    /// The alternate form, escaped as in a JSON string.
    alternate: Box<[u8]>,
}

impl PostJson {
    /// Renders `post` with `fields`; with a secret, also prepares its fingerprint sites.
    pub fn render(post: &Post, fields: PostFields, secret: Option<&Secret>) -> Self {
        let mut json = Vec::with_capacity(post.text.len() + 256);
        write_post(&mut json, post, fields);
        let splices = match secret {
            Some(secret) => splices(&json, post, secret),
            None => Box::default(),
        };
        PostJson { json: Bytes::from(json), splices }
    }

    /// An object rendered elsewhere, with no fingerprint sites (tests of the body writer).
    #[cfg(test)]
    pub(crate) fn from_static(json: &'static [u8]) -> Self {
        PostJson { json: Bytes::from_static(json), splices: Box::default() }
    }

    /// The object with the public text.
    pub fn public(&self) -> &Bytes {
        &self.json
    }

    /// Bytes held, for the post cache's bound.
    pub fn weight(&self) -> usize {
        self.json.len()
            + self.splices.iter().map(|splice| std::mem::size_of::<Splice>() + splice.alternate.len()).sum::<usize>()
    }

    /// Appends the copy `marking` asks for.
    pub fn write(&self, out: &mut Vec<u8>, marking: Marking) {
        let Marking::Licensee(licensee) = marking else {
            out.extend_from_slice(&self.json);
            return;
        };
        let mut at = 0;
        for splice in self.splices.iter() {
            if splice.code.symbol(licensee) != splice.code.public_symbol() {
                out.extend_from_slice(&self.json[at..splice.start as usize]);
                out.extend_from_slice(&splice.alternate);
                at = splice.end as usize;
            }
        }
        out.extend_from_slice(&self.json[at..]);
    }

    /// Length of the public object (copies differ by a few bytes: a size hint).
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// The splices of `post`'s text inside `json`, the object [`write_post`] wrote for it.
fn splices(json: &[u8], post: &Post, secret: &Secret) -> Box<[Splice]> {
    let prepared = PreparedPost::new(secret, post.id.get() as u64, &post.text);
    if prepared.sites().is_empty() {
        return Box::default();
    }
    let mut escaped_text = Vec::with_capacity(post.text.len() + 8);
    write_str_contents(&mut escaped_text, &post.text);
    // `text` is the object's last key (keys are sorted): the object ends `"<text>"}`.
    let text_start = json.len() - 2 - escaped_text.len();
    debug_assert_eq!(&json[text_start..json.len() - 2], &escaped_text[..]);

    let mut edits: Vec<(std::ops::Range<usize>, &str, SiteCode)> = prepared
        .sites()
        .iter()
        .flat_map(|site| site.edits().map(move |(span, alternate)| (span, alternate, site.code)))
        .collect();
    edits.sort_by_key(|(span, ..)| span.start);
    // Escaped offsets: escaping is per character, so the escaped prefix before a span is the
    // escape of the raw prefix.
    let mut scratch = Vec::new();
    let mut escaped_len = |raw: &str| {
        scratch.clear();
        write_str_contents(&mut scratch, raw);
        scratch.len()
    };
    let mut list = Vec::with_capacity(edits.len());
    let (mut raw_at, mut escaped_at) = (0, text_start);
    for (span, alternate, code) in edits {
        if span.start < raw_at {
            // Overlapping spans would make the splice order ambiguous; `detect_sites` never
            // produces them, and a post that did would simply carry fewer marks.
            continue;
        }
        escaped_at += escaped_len(&post.text[raw_at..span.start]);
        let start = escaped_at;
        escaped_at += escaped_len(&post.text[span.clone()]);
        raw_at = span.end;
        let mut escaped_alternate = Vec::with_capacity(alternate.len());
        write_str_contents(&mut escaped_alternate, alternate);
        list.push(Splice {
            start: start as u32,
            end: escaped_at as u32,
            code,
            alternate: escaped_alternate.into_boxed_slice(),
        });
    }
    list.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use datapact_core::{PostId, UserId};
    use proptest::prelude::*;

    use super::*;

    fn post(text: &str) -> Post {
        Post {
            id: PostId::new(1_234_567),
            author_id: UserId::new(9),
            text: text.to_owned(),
            revision: 1,
            created_at: datapact_core::Timestamp::from_millis(1_700_000_000_000),
            lang: Some("en".into()),
            conversation_id: PostId::new(1_234_567),
            in_reply_to_user_id: None,
            referenced_posts: Vec::new(),
            edit_history: vec![PostId::new(1_234_567)],
            public_metrics: Default::default(),
            deleted_at: None,
        }
    }

    /// What a licensee's copy must be: the post rendered with the mark crate's own copy of the text.
    fn oracle(post: &Post, secret: &Secret, licensee: u64, fields: PostFields) -> Vec<u8> {
        let mut copy = post.clone();
        copy.text = PreparedPost::new(secret, post.id.get() as u64, &post.text).render(licensee);
        let mut out = Vec::new();
        write_post(&mut out, &copy, fields);
        out
    }

    fn write(json: &PostJson, marking: Marking) -> Vec<u8> {
        let mut out = Vec::new();
        json.write(&mut out, marking);
        out
    }

    const SAMPLES: &[&str] = &[
        "It's \"fine\"... really - isn't it? « Oui » dit l'élève.",
        "Line one\nline \"two\" with a tab\tand a backslash \\ -- it's done...",
        "No sites here at all",
        "« Bonjour » : l'été ; c'est ça ! « Encore » ?",
        "\"quoted\" 'single' \"again\" ... - \u{1} control",
    ];

    #[test]
    fn copies_equal_the_mark_crates_rendering() {
        let secret = Secret::new(3, [42; 32]);
        let fields = PostFields::default();
        let mut differing = 0;
        for text in SAMPLES {
            let post = post(text);
            let json = PostJson::render(&post, fields, Some(&secret));
            let mut public = Vec::new();
            write_post(&mut public, &post, fields);
            assert_eq!(write(&json, Marking::Public), public, "the public copy is the post as it is");
            for licensee in 1..200u64 {
                let copy = write(&json, Marking::Licensee(licensee));
                assert_eq!(copy, oracle(&post, &secret, licensee, fields), "{text:?} for licensee {licensee}");
                differing += usize::from(copy != json.public().as_ref());
            }
        }
        assert!(differing > 100, "most copies of posts with sites differ from the public text ({differing})");
    }

    #[test]
    fn without_a_secret_every_copy_is_public() {
        let post = post(SAMPLES[0]);
        let json = PostJson::render(&post, PostFields::default(), None);
        assert_eq!(write(&json, Marking::Licensee(7)), json.public().as_ref());
    }

    proptest! {
        #[test]
        fn any_text_any_licensee(
            text in "([a-zA-Zé' \"«»:;!?.\\-\u{2019}\u{201c}\u{201d}\u{2026}\u{a0}\n\\\\]|\\.\\.\\.){0,80}",
            licensee in any::<u64>(),
            key in any::<[u8; 32]>(),
        ) {
            let secret = Secret::new(1, key);
            let post = post(&text);
            let fields = PostFields::default();
            let json = PostJson::render(&post, fields, Some(&secret));
            prop_assert_eq!(write(&json, Marking::Licensee(licensee)), oracle(&post, &secret, licensee, fields));
            let mut public = Vec::new();
            write_post(&mut public, &post, fields);
            prop_assert_eq!(write(&json, Marking::Public), public);
        }
    }
}

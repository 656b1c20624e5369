//! Folding: the canonical form that every rendering of a post maps to.

use unicode_normalization::UnicodeNormalization;

/// Folds a text to a canonical form in which every licensee's copy of a post, and the
/// public text itself, are equal: `fold(render(secret, l, id, t)) == fold(t)`.
///
/// Steps: NFKC; `‘ ’ ‚ ‛ → '`; `“ ” „ ‟ « » → "`; `‐ ‑ ‒ – — ― − → -` (so that ASCII
/// folding of punctuation does not break the match); zero-width characters removed;
/// Cyrillic look-alikes `а с е о р х у` → Latin; every run of whitespace (including
/// no-break spaces) → one space; trimmed. NFKC already maps `…` to `...`, U+00A0 and
/// U+202F to a space, and composes decomposed accents.
///
/// Use it to match a leaked text to its post when the post id is lost (see
/// [`post_fingerprint`]); it is an equivalence key, not a way to restore the exact public
/// text (for that, render with [`crate::PreparedPost::public_text`]).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.nfkc() {
        let mapped = match ch {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}' => '"',
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' | '\u{2212}' => '-',
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => continue,
            '\u{0430}' => 'a',
            '\u{0441}' => 'c',
            '\u{0435}' => 'e',
            '\u{043E}' => 'o',
            '\u{0440}' => 'p',
            '\u{0445}' => 'x',
            '\u{0443}' => 'y',
            c => c,
        };
        if mapped.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(mapped);
    }
    out
}

/// A 32-byte digest of [`fold`]`(text)`: index the public posts by it to find the post
/// id of a leaked text whose id was stripped.
pub fn post_fingerprint(text: &str) -> [u8; 32] {
    *blake3::hash(fold(text).as_bytes()).as_bytes()
}

/// An index of public posts by [`post_fingerprint`], to find which post a leaked text is
/// a copy of when its id was stripped. Several posts may share one folded text; each
/// candidate can be tried (a wrong match only loses evidence: the symbols it yields are
/// independent of every licensee's codeword for that post).
#[derive(Clone, Debug, Default)]
pub struct PostIndex {
    by_digest: std::collections::HashMap<[u8; 32], Vec<u64>>,
}

impl PostIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public post.
    pub fn insert(&mut self, post_id: u64, public_text: &str) {
        let ids = self.by_digest.entry(post_fingerprint(public_text)).or_default();
        if !ids.contains(&post_id) {
            ids.push(post_id);
        }
    }

    /// The ids of the public posts whose folded text equals the leaked text's.
    pub fn lookup(&self, leaked_text: &str) -> &[u64] {
        self.by_digest.get(&post_fingerprint(leaked_text)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of distinct folded texts.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

//! Text normalisation and tokenization (see the crate docs for the rules).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Prefix code of a token: 0 none, 1 `#`, 2 `@`, 3 `$`.
pub(crate) fn prefix_code(c: Option<char>) -> u8 {
    match c {
        Some('#') => 1,
        Some('@') => 2,
        Some('$') => 3,
        _ => 0,
    }
}

/// The prefix character of a prefix code (0 gives `None`).
pub(crate) fn prefix_char(code: u8) -> Option<char> {
    match code {
        1 => Some('#'),
        2 => Some('@'),
        3 => Some('$'),
        _ => None,
    }
}

/// NFC, then lowercase, then NFC again (lowercasing can change composition).
pub(crate) fn normalize(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let nfc: String = text.nfc().collect();
    nfc.to_lowercase().nfc().collect()
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
}

/// Calls `f(bare_token, prefix_code)` for every token of `text`, in order.
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str, u8)) {
    let norm = normalize(text);
    let mut start: Option<usize> = None;
    let mut prefix = 0u8;
    let mut prev: Option<char> = None;
    for (i, c) in norm.char_indices() {
        if is_token_char(c) {
            if start.is_none() {
                start = Some(i);
                prefix = prefix_code(prev);
            }
        } else if let Some(s) = start.take() {
            f(&norm[s..i], prefix);
        }
        prev = Some(c);
    }
    if let Some(s) = start {
        f(&norm[s..], prefix);
    }
}

/// A token: its bare text and prefix code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Tok {
    pub bare: String,
    pub prefix: u8,
}

impl Tok {
    /// The token as written in [`tokenize`]'s output (`#rust`, `rust`).
    pub(crate) fn display(&self) -> String {
        match prefix_char(self.prefix) {
            Some(p) => format!("{p}{}", self.bare),
            None => self.bare.clone(),
        }
    }

    /// Whether this query token matches a document token: same bare text,
    /// and same prefix unless the query token has none.
    pub(crate) fn matches(&self, doc: &Tok) -> bool {
        self.bare == doc.bare && (self.prefix == 0 || self.prefix == doc.prefix)
    }
}

pub(crate) fn toks(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    for_each_token(text, |t, p| out.push(Tok { bare: t.to_owned(), prefix: p }));
    out
}

/// Splits `text` into its searchable tokens, in order.
///
/// The text is NFC-normalised and lowercased; a token is a maximal run of
/// Unicode alphanumerics, combining marks and `_`. A token immediately
/// preceded by `#`, `@` or `$` is returned with that prefix (`"#rust"`); the
/// index stores such a token under both `#rust` and `rust`.
///
/// ```
/// assert_eq!(datapact_search::tokenize("L’Été de #Rust!"), ["l", "été", "de", "#rust"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    toks(text).iter().map(Tok::display).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        assert_eq!(tokenize("Hello, World"), ["hello", "world"]);
        assert_eq!(tokenize("l’été l'ete"), ["l", "été", "l", "ete"]);
        assert_eq!(tokenize("e-mail don't"), ["e", "mail", "don", "t"]);
        assert_eq!(tokenize("a\u{a0}b\u{202f}c—d"), ["a", "b", "c", "d"]);
        assert_eq!(tokenize("snake_case x2 🦀rust"), ["snake_case", "x2", "rust"]);
        assert_eq!(tokenize("#Rust @Bob $TSLA ##x #"), ["#rust", "@bob", "$tsla", "#x"]);
        assert_eq!(tokenize("c# (#go)"), ["c", "#go"]);
        assert!(tokenize("  ... 🎉 ").is_empty());
    }

    #[test]
    fn accents_nfc_and_case() {
        let pre = tokenize("ÉTÉ été");
        let dec = tokenize("E\u{301}TE\u{301} e\u{301}te\u{301}");
        assert_eq!(pre, ["été", "été"]);
        assert_eq!(pre, dec);
        assert_ne!(tokenize("été"), tokenize("ete"));
        assert_eq!(tokenize("Straße İstanbul"), tokenize("straße i\u{307}stanbul"));
    }
}

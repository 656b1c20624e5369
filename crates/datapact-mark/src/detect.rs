//! Site detection and protected spans.
//!
//! Detection is *form-invariant*: the rules for where a site is look only at character
//! classes that no channel's rendering changes (letters, whitespace, digits, the set of
//! quote characters, protected spans), so every licensee's copy of a post, and the copy
//! after NFC, NFKC or ASCII quote folding, has the same sites in the same order, with the
//! same ordinal within each channel. Only the form shown at each site differs.

use std::ops::Range;

use unicode_normalization::char::{compose, decompose_canonical, is_combining_mark};

use crate::channel::{Channel, Form};

/// One site found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedSite {
    /// The kind of site.
    pub channel: Channel,
    /// Position among the sites of the same channel in this text (0-based).
    pub ordinal: u32,
    /// The form the text shows at this site.
    pub form: Form,
    /// Byte ranges in the text that the site covers (one, or two for a quote pair; a
    /// zero-width site absent from the text has an empty range where it would go).
    pub spans: SiteSpans,
}

/// The byte ranges a site covers: one range, or two for a quote pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteSpans {
    /// A single range.
    One(Range<usize>),
    /// Opening and closing quote.
    Two(Range<usize>, Range<usize>),
}

impl SiteSpans {
    /// The ranges in text order.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        match self {
            SiteSpans::One(a) => vec![a.clone()],
            SiteSpans::Two(a, b) => vec![a.clone(), b.clone()],
        }
    }
}

const NBSP: char = '\u{00A0}';
const NNBSP: char = '\u{202F}';
const ZWSP: char = '\u{200B}';
const LATIN_HOMO: [char; 7] = ['a', 'c', 'e', 'o', 'p', 'x', 'y'];
const CYRILLIC_HOMO: [char; 7] = ['\u{0430}', '\u{0441}', '\u{0435}', '\u{043E}', '\u{0440}', '\u{0445}', '\u{0443}'];

fn letter_like(c: char) -> bool {
    c.is_alphabetic() || is_combining_mark(c)
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
}

/// Byte ranges of the spans that marking never touches: URLs (`http://`, `https://`,
/// `www.` up to the next whitespace), `@mentions`, `#hashtags`, `$cashtags`, numbers
/// (digits with inner `. , : /`), and code (`` `…` `` and ```` ```…``` ````).
///
/// The ranges are sorted and do not overlap.
pub fn protected_spans(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mask = protected_mask(&chars);
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if mask[i] {
            let start = chars[i].0;
            while i < chars.len() && mask[i] {
                i += 1;
            }
            let end = if i < chars.len() { chars[i].0 } else { text.len() };
            out.push(start..end);
        } else {
            i += 1;
        }
    }
    out
}

fn starts_with_ci(chars: &[(usize, char)], i: usize, pat: &str) -> bool {
    let mut k = i;
    for p in pat.chars() {
        match chars.get(k) {
            Some(&(_, c)) if c.to_ascii_lowercase() == p => k += 1,
            _ => return false,
        }
    }
    true
}

fn protected_mask(chars: &[(usize, char)]) -> Vec<bool> {
    let n = chars.len();
    let mut m = vec![false; n];
    let c = |i: usize| chars[i].1;
    // Code: fenced blocks first, then inline backtick spans.
    let mut i = 0;
    while i < n {
        if c(i) == '`' {
            let fence = i + 2 < n && c(i + 1) == '`' && c(i + 2) == '`';
            if fence {
                let mut j = i + 3;
                let mut found = None;
                while j + 2 < n {
                    if c(j) == '`' && c(j + 1) == '`' && c(j + 2) == '`' {
                        found = Some(j + 3);
                        break;
                    }
                    j += 1;
                }
                if let Some(end) = found {
                    m[i..end].iter_mut().for_each(|x| *x = true);
                    i = end;
                    continue;
                }
                i += 3;
                continue;
            }
            if let Some(off) = (i + 1..n).find(|&j| c(j) == '`') {
                m[i..=off].iter_mut().for_each(|x| *x = true);
                i = off + 1;
                continue;
            }
        }
        i += 1;
    }
    let mut i = 0;
    while i < n {
        if m[i] {
            i += 1;
            continue;
        }
        let prev_word = i > 0 && word_char(c(i - 1));
        // URLs.
        if !prev_word
            && (starts_with_ci(chars, i, "http://")
                || starts_with_ci(chars, i, "https://")
                || starts_with_ci(chars, i, "www."))
        {
            let mut j = i;
            while j < n && !c(j).is_whitespace() {
                m[j] = true;
                j += 1;
            }
            i = j;
            continue;
        }
        // Mentions, hashtags, cashtags.
        let ch = c(i);
        if (ch == '@' || ch == '#' || ch == '$') && i + 1 < n {
            let ok = match ch {
                '$' => c(i + 1).is_alphabetic(),
                _ => word_char(c(i + 1)),
            };
            if ok {
                let mut j = i + 1;
                while j < n && word_char(c(j)) {
                    j += 1;
                }
                m[i..j].iter_mut().for_each(|x| *x = true);
                i = j;
                continue;
            }
        }
        // Numbers.
        if ch.is_numeric() {
            let mut j = i;
            while j < n {
                let cj = c(j);
                let inner_separator = matches!(cj, '.' | ',' | ':' | '/') && j + 1 < n && c(j + 1).is_numeric();
                if cj.is_numeric() || inner_separator {
                    j += 1;
                } else {
                    break;
                }
            }
            m[i..j].iter_mut().for_each(|x| *x = true);
            i = j;
            continue;
        }
        i += 1;
    }
    m
}

/// All sites of every channel in `text`, in text order of their first span.
///
/// Sites never overlap a protected span (see [`protected_spans`]).
pub fn detect_sites(text: &str) -> Vec<DetectedSite> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let prot = protected_mask(&chars);
    let c = |i: usize| chars[i].1;
    let byte = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut ordinals = [0u32; Channel::COUNT];
    let mut sites: Vec<DetectedSite> = Vec::new();
    let mut push = |sites: &mut Vec<DetectedSite>, channel: Channel, form: Form, spans: SiteSpans| {
        let ord = &mut ordinals[channel.index()];
        sites.push(DetectedSite { channel, ordinal: *ord, form, spans });
        *ord += 1;
    };

    // Double quotes are paired over the whole text first.
    let quote_idx: Vec<usize> = (0..n).filter(|&i| !prot[i] && matches!(c(i), '"' | '\u{201C}' | '\u{201D}')).collect();
    let mut pair_of_open = vec![usize::MAX; n];
    for pair in quote_idx.chunks_exact(2) {
        pair_of_open[pair[0]] = pair[1];
    }

    let mut i = 0;
    while i < n {
        let ch = c(i);
        if prot[i] {
            i += 1;
            continue;
        }
        let prev = if i > 0 { Some(c(i - 1)) } else { None };
        let next = if i + 1 < n { Some(c(i + 1)) } else { None };
        // Apostrophe.
        if (ch == '\'' || ch == '\u{2019}') && prev.is_some_and(letter_like) && next.is_some_and(|x| x.is_alphabetic())
        {
            let form = if ch == '\'' { Form::StraightApostrophe } else { Form::CurlyApostrophe };
            push(&mut sites, Channel::Apostrophe, form, SiteSpans::One(byte(i)..byte(i + 1)));
            i += 1;
            continue;
        }
        // Double quote pair (registered at the opening quote).
        if pair_of_open[i] != usize::MAX {
            let j = pair_of_open[i];
            let form = match (ch, c(j)) {
                ('"', '"') => Form::StraightQuotes,
                ('\u{201C}', '\u{201D}') => Form::CurlyQuotes,
                _ => Form::MixedQuotes,
            };
            push(&mut sites, Channel::DoubleQuotes, form, SiteSpans::Two(byte(i)..byte(i + 1), byte(j)..byte(j + 1)));
            i += 1;
            continue;
        }
        // Ellipsis.
        if ch == '.' || ch == '\u{2026}' {
            let mut j = i;
            while j < n && matches!(c(j), '.' | '\u{2026}') {
                j += 1;
            }
            let run: String = (i..j).map(c).collect();
            let any_prot = (i..j).any(|k| prot[k]);
            let next_digit = j < n && c(j).is_numeric();
            if !any_prot && !next_digit && (run == "..." || run == "\u{2026}") {
                let form = if run == "..." { Form::ThreeDots } else { Form::EllipsisChar };
                push(&mut sites, Channel::Ellipsis, form, SiteSpans::One(byte(i)..byte(j)));
            }
            i = j;
            continue;
        }
        // Spaced dash.
        if (ch == '-' || ch == '\u{2013}')
            && i >= 2
            && i + 2 < n
            && c(i - 1).is_whitespace()
            && !c(i - 2).is_whitespace()
            && c(i + 1).is_whitespace()
            && !(c(i - 2).is_numeric() && c(i + 2).is_numeric())
        {
            let form = if ch == '-' { Form::Hyphen } else { Form::EnDash };
            push(&mut sites, Channel::SpacedDash, form, SiteSpans::One(byte(i)..byte(i + 1)));
            i += 1;
            continue;
        }
        // French spacing.
        if matches!(ch, ' ' | NBSP | NNBSP)
            && let (Some(p), Some(nx)) = (prev, next)
        {
            let before_punct = matches!(nx, ';' | ':' | '!' | '?' | '\u{00BB}') && !p.is_whitespace() && !prot[i + 1];
            let after_guillemet = p == '\u{00AB}' && !nx.is_whitespace();
            if before_punct || after_guillemet {
                let form = match ch {
                    ' ' => Form::Space,
                    NBSP => Form::NoBreakSpace,
                    _ => Form::NarrowNoBreakSpace,
                };
                push(&mut sites, Channel::FrenchSpacing, form, SiteSpans::One(byte(i)..byte(i + 1)));
                i += 1;
                continue;
            }
        }
        // Zero width: a plain space between two letters, optionally followed by U+200B.
        if ch == ' ' && prev.is_some_and(letter_like) {
            if next == Some(ZWSP) && i + 2 < n && c(i + 2).is_alphabetic() && !prot[i + 2] {
                push(&mut sites, Channel::ZeroWidth, Form::ZeroWidthSpace, SiteSpans::One(byte(i + 1)..byte(i + 2)));
                i += 2;
                continue;
            }
            if next.is_some_and(|x| x.is_alphabetic()) && !prot[i + 1] {
                let at = byte(i + 1);
                push(&mut sites, Channel::ZeroWidth, Form::NoZeroWidth, SiteSpans::One(at..at));
                i += 1;
                continue;
            }
        }
        // Accents.
        if !is_combining_mark(ch) {
            let next_is_mark = next.is_some_and(is_combining_mark);
            let mut parts: Vec<char> = Vec::with_capacity(4);
            decompose_canonical(ch, |d| parts.push(d));
            if parts.len() == 2
                && !next_is_mark
                && is_combining_mark(parts[1])
                && compose(parts[0], parts[1]) == Some(ch)
            {
                push(&mut sites, Channel::Accent, Form::Precomposed, SiteSpans::One(byte(i)..byte(i + 1)));
                i += 1;
                continue;
            }
            if parts.len() == 1 && next_is_mark && !prot[i + 1] {
                let mark = c(i + 1);
                let third_is_mark = i + 2 < n && is_combining_mark(c(i + 2));
                if !third_is_mark && let Some(pc) = compose(ch, mark) {
                    let mut back: Vec<char> = Vec::with_capacity(4);
                    decompose_canonical(pc, |d| back.push(d));
                    if back == [ch, mark] {
                        push(&mut sites, Channel::Accent, Form::Decomposed, SiteSpans::One(byte(i)..byte(i + 2)));
                        i += 2;
                        continue;
                    }
                }
            }
        }
        // Homoglyphs.
        if prev.is_some_and(letter_like) && next.is_some_and(|x| x.is_alphabetic() && !is_combining_mark(x)) {
            if LATIN_HOMO.contains(&ch) {
                push(&mut sites, Channel::Homoglyph, Form::Latin, SiteSpans::One(byte(i)..byte(i + 1)));
            } else if CYRILLIC_HOMO.contains(&ch) {
                push(&mut sites, Channel::Homoglyph, Form::Cyrillic, SiteSpans::One(byte(i)..byte(i + 1)));
            }
        }
        i += 1;
    }
    sites.sort_by_key(|s| match &s.spans {
        SiteSpans::One(a) => a.start,
        SiteSpans::Two(a, _) => a.start,
    });
    sites
}

/// The replacement text, per span, that renders `site` in `form`, given the text it was
/// detected in. `None` if the site cannot show `form`.
pub(crate) fn replacement(text: &str, site: &DetectedSite, form: Form) -> Option<Vec<String>> {
    use Form::*;
    let one = |s: &str| Some(vec![s.to_string()]);
    match (site.channel, form) {
        (Channel::Apostrophe, StraightApostrophe) => one("'"),
        (Channel::Apostrophe, CurlyApostrophe) => one("\u{2019}"),
        (Channel::DoubleQuotes, StraightQuotes) => Some(vec!["\"".into(), "\"".into()]),
        (Channel::DoubleQuotes, CurlyQuotes) => Some(vec!["\u{201C}".into(), "\u{201D}".into()]),
        (Channel::Ellipsis, ThreeDots) => one("..."),
        (Channel::Ellipsis, EllipsisChar) => one("\u{2026}"),
        (Channel::SpacedDash, Hyphen) => one("-"),
        (Channel::SpacedDash, EnDash) => one("\u{2013}"),
        (Channel::FrenchSpacing, Space) => one(" "),
        (Channel::FrenchSpacing, NoBreakSpace) => one("\u{00A0}"),
        (Channel::FrenchSpacing, NarrowNoBreakSpace) => one("\u{202F}"),
        (Channel::ZeroWidth, NoZeroWidth) => one(""),
        (Channel::ZeroWidth, ZeroWidthSpace) => one("\u{200B}"),
        (Channel::Accent, Precomposed) | (Channel::Accent, Decomposed) => {
            let SiteSpans::One(r) = &site.spans else {
                return None;
            };
            let cur = &text[r.clone()];
            let mut cs = cur.chars();
            let a = cs.next()?;
            match (site.form, form) {
                (Decomposed, Precomposed) => {
                    let b = cs.next()?;
                    compose(a, b).map(|pc| vec![pc.to_string()])
                }
                (Precomposed, Decomposed) => {
                    let mut s = String::new();
                    decompose_canonical(a, |d| s.push(d));
                    Some(vec![s])
                }
                _ => Some(vec![cur.to_string()]),
            }
        }
        (Channel::Homoglyph, Latin) | (Channel::Homoglyph, Cyrillic) => {
            let SiteSpans::One(r) = &site.spans else {
                return None;
            };
            let ch = text[r.clone()].chars().next()?;
            let k = LATIN_HOMO.iter().position(|&x| x == ch).or_else(|| CYRILLIC_HOMO.iter().position(|&x| x == ch))?;
            let out = if form == Latin { LATIN_HOMO[k] } else { CYRILLIC_HOMO[k] };
            one(&out.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &str) -> Vec<(Channel, Form)> {
        detect_sites(t).into_iter().map(|s| (s.channel, s.form)).collect()
    }

    #[test]
    fn finds_typographic_sites() {
        let k = kinds("Don't say \"hi\"... it's fine - really : « oui » café");
        assert!(k.contains(&(Channel::Apostrophe, Form::StraightApostrophe)));
        assert!(k.contains(&(Channel::DoubleQuotes, Form::StraightQuotes)));
        assert!(k.contains(&(Channel::Ellipsis, Form::ThreeDots)));
        assert!(k.contains(&(Channel::SpacedDash, Form::Hyphen)));
        assert!(k.contains(&(Channel::FrenchSpacing, Form::Space)));
        assert!(k.contains(&(Channel::Accent, Form::Precomposed)));
        assert_eq!(k.iter().filter(|x| x.0 == Channel::FrenchSpacing).count(), 3);
    }

    #[test]
    fn protected_spans_have_no_sites() {
        let t = "see https://x.com/don't... @o'neil #café $ABC 3.14... `it's` 12 - 3";
        let prot = protected_spans(t);
        for s in detect_sites(t) {
            for r in s.spans.ranges() {
                assert!(!prot.iter().any(|p| p.start < r.end.max(r.start + 1) && r.start < p.end), "{s:?} in {prot:?}");
            }
        }
        assert!(!kinds(t).iter().any(|k| k.0 == Channel::SpacedDash));
    }
}

//! Per-author typography: apostrophes, quotes, ellipses, dashes, French
//! spacing before `! ? : ;`, and occasional NFD-decomposed accents.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(crate) const NBSP: char = '\u{00A0}';
pub(crate) const NNBSP: char = '\u{202F}';

/// How one author types. Chosen once per author, lightly perturbed per post.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    /// 0 = straight `'`, 1 = curly `’`, 2 = mixed (random per apostrophe).
    pub apos: u8,
    /// English quotes: 0 = `"…"`, 1 = `“…”`.
    pub quote_en: u8,
    /// French quotes: 0 = `« … »` with NBSP, 1 = with NNBSP, 2 = with plain
    /// spaces, 3 = `“…”`, 4 = `"…"`.
    pub quote_fr: u8,
    /// French space before `! ? : ;` (and in `12,50 €`): 0 = NNBSP,
    /// 1 = NBSP, 2 = plain space, 3 = none.
    pub fr_space: u8,
    /// 0 = `...`, 1 = `…`.
    pub ellipsis: u8,
    /// 0 = ` - `, 1 = ` – `, 2 = `—`, 3 = ` — `.
    pub dash: u8,
    /// Writes accents decomposed (NFD).
    pub nfd: bool,
    /// Probability of adding emoji to a post.
    pub emoji: f64,
    /// Probability of adding hashtags to a post.
    pub tags: f64,
}

fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> u8 {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i as u8;
        }
        x -= w;
    }
    (weights.len() - 1) as u8
}

impl Style {
    pub(crate) fn random(rng: &mut ChaCha8Rng) -> Style {
        Style {
            apos: weighted(rng, &[50, 35, 15]),
            quote_en: weighted(rng, &[55, 45]),
            quote_fr: weighted(rng, &[35, 20, 20, 15, 10]),
            fr_space: weighted(rng, &[25, 25, 35, 15]),
            ellipsis: weighted(rng, &[60, 40]),
            dash: weighted(rng, &[45, 30, 15, 10]),
            nfd: rng.random_bool(0.05),
            emoji: [0.0, 0.0, 0.15, 0.3, 0.6][rng.random_range(0..5usize)],
            tags: [0.0, 0.0, 0.1, 0.25, 0.5][rng.random_range(0..5usize)],
        }
    }

    /// The same author is not perfectly consistent from post to post.
    pub(crate) fn for_post(&self, rng: &mut ChaCha8Rng) -> Style {
        let mut s = *self;
        if rng.random_bool(0.08) {
            s.ellipsis ^= 1;
        }
        if rng.random_bool(0.08) {
            s.dash = rng.random_range(0..4);
        }
        if rng.random_bool(0.05) {
            s.apos = 2;
        }
        s
    }

    /// The French thin-space flavour of this author, if any.
    pub(crate) fn fr_space_char(&self) -> Option<char> {
        match self.fr_space {
            0 => Some(NNBSP),
            1 => Some(NBSP),
            2 => Some(' '),
            _ => None,
        }
    }
}

/// Rewrites canonical typography (`'`, `"` pairs, `...`, ` - `, glued
/// French punctuation) into this author's habits.
pub(crate) fn stylize(s: &str, fr: bool, st: &Style, rng: &mut ChaCha8Rng) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut open = false;
    let mut i = 0;
    let fr_sp = st.fr_space_char();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                let curly = match st.apos {
                    0 => false,
                    1 => true,
                    _ => rng.random_bool(0.5),
                };
                out.push(if curly { '’' } else { '\'' });
            }
            '"' => {
                if fr {
                    match st.quote_fr {
                        0..=2 => {
                            let sp = [NBSP, NNBSP, ' '][st.quote_fr as usize];
                            if open {
                                out.push(sp);
                                out.push('»');
                            } else {
                                out.push('«');
                                out.push(sp);
                            }
                        }
                        3 => out.push(if open { '”' } else { '“' }),
                        _ => out.push('"'),
                    }
                } else if st.quote_en == 1 {
                    out.push(if open { '”' } else { '“' });
                } else {
                    out.push('"');
                }
                open = !open;
            }
            '.' if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') => {
                out.push_str(if st.ellipsis == 1 { "…" } else { "..." });
                i += 3;
                continue;
            }
            ' ' if chars.get(i + 1) == Some(&'-') && chars.get(i + 2) == Some(&' ') => {
                out.push_str([" - ", " – ", "—", " — "][st.dash as usize]);
                i += 3;
                continue;
            }
            '!' | '?' | ':' | ';' if fr => {
                let next = chars.get(i + 1);
                let applies = match c {
                    ':' | ';' => next.is_none_or(|n| n.is_whitespace()),
                    _ => true,
                };
                let prev = out.chars().next_back();
                let glued = prev.is_some_and(|p| !p.is_whitespace() && !matches!(p, '!' | '?' | '('));
                if let (true, true, Some(sp)) = (applies, glued, fr_sp) {
                    out.push(sp);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Canonical decomposition of the accented letters this corpus uses.
pub(crate) fn to_nfd(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        let (base, mark) = match c {
            'é' => ('e', '\u{301}'),
            'è' => ('e', '\u{300}'),
            'ê' => ('e', '\u{302}'),
            'ë' => ('e', '\u{308}'),
            'à' => ('a', '\u{300}'),
            'â' => ('a', '\u{302}'),
            'ä' => ('a', '\u{308}'),
            'ç' => ('c', '\u{327}'),
            'ô' => ('o', '\u{302}'),
            'ö' => ('o', '\u{308}'),
            'î' => ('i', '\u{302}'),
            'ï' => ('i', '\u{308}'),
            'í' => ('i', '\u{301}'),
            'û' => ('u', '\u{302}'),
            'ù' => ('u', '\u{300}'),
            'ü' => ('u', '\u{308}'),
            'ñ' => ('n', '\u{303}'),
            'É' => ('E', '\u{301}'),
            'È' => ('E', '\u{300}'),
            'À' => ('A', '\u{300}'),
            'Ç' => ('C', '\u{327}'),
            'Ê' => ('E', '\u{302}'),
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(base);
        out.push(mark);
    }
    out
}

/// Lowercase ASCII fold used for usernames and URL slugs.
pub(crate) fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in to_nfd(s).chars() {
        let c = match c {
            'œ' | 'Œ' => {
                out.push_str("oe");
                continue;
            }
            'æ' => {
                out.push_str("ae");
                continue;
            }
            'ø' | 'Ø' => 'o',
            _ => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

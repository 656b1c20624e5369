//! Canary records: synthetic posts unique to one licensee. Finding one in a leak is direct
//! evidence of where the leak came from, independent of the statistical verdict.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::Serialize;

use crate::corpus::match_key;

/// Total pattern bytes up to which the canaries are compiled to a full DFA (about 20,000
/// canaries of 100 bytes; the DFA then takes some tens of MB).
const DFA_MAX_PATTERN_BYTES: usize = 2 << 20;

/// A canary as the tracer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canary {
    /// The licensee it was delivered to (and only to).
    pub licensee: u64,
    /// Its identifier (as recorded in the ledger).
    pub canary_id: String,
    /// Its exact text.
    pub text: String,
}

/// Canaries found in a leak, one entry per canary seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CanaryHit {
    /// The licensee the canary belongs to.
    pub licensee: u64,
    /// Its identifier.
    pub canary_id: String,
    /// Occurrences of its exact text (or of its JSON-escaped form) where the leak holds post
    /// texts: a text dump's or a CSV's bytes, a JSON line's decoded text fields.
    pub exact_occurrences: u64,
    /// Leaked records whose text matches it after normalisation (case, whitespace,
    /// punctuation, typographic forms), whether or not the exact text was also found.
    pub normalised_records: u64,
    /// Where it was first seen: the leak input's index and the byte offset in it.
    pub first_input: usize,
    /// Byte offset of the first occurrence (exact), or of the start of the chunk holding the
    /// first matching record (normalised).
    pub first_offset: u64,
}

/// The compiled canary set.
#[derive(Debug)]
pub(crate) struct Canaries {
    list: Vec<Canary>,
    /// Patterns (each canary's exact text, plus its JSON-escaped form when different).
    ac: Option<AhoCorasick>,
    pattern_canary: Vec<u32>,
    /// Longest pattern, in bytes (for scanning with overlap across buffers).
    max_len: usize,
    by_key: HashMap<u64, Vec<u32>>,
}

impl Canaries {
    pub fn new(list: Vec<Canary>) -> Result<Self, String> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_canary = Vec::new();
        let mut by_key: HashMap<u64, Vec<u32>> = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            if c.text.is_empty() {
                return Err(format!("canary {} of licensee {} has an empty text", c.canary_id, c.licensee));
            }
            patterns.push(c.text.as_bytes().to_vec());
            pattern_canary.push(i as u32);
            // In JSON a canary's quotes, backslashes and control characters are escaped, and
            // some writers escape every non-ASCII character: look for those forms too.
            let json = serde_json::to_string(&c.text).unwrap_or_default();
            let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default();
            if !json.is_empty() && json != c.text {
                patterns.push(json.as_bytes().to_vec());
                pattern_canary.push(i as u32);
            }
            let ascii = ascii_json_escape(&c.text);
            if ascii != c.text && ascii != json {
                patterns.push(ascii.into_bytes());
                pattern_canary.push(i as u32);
            }
            let key = match_key(&c.text);
            if key != 0 {
                by_key.entry(key).or_default().push(i as u32);
            }
        }
        let max_len = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let ac = if patterns.is_empty() {
            None
        } else {
            // Standard non-overlapping search keeps aho-corasick's literal prefilter,
            // which skips most of a leak at memchr speed (overlapping search cannot use it and
            // ran 50x slower on the benchmark). It misses only a canary that starts inside
            // another's occurrence, which unique synthetic posts do not.
            // A full DFA scans fastest (a third faster than the default on the benchmark) but
            // its memory grows with the patterns' total length: use it up to a bound.
            let bytes: usize = patterns.iter().map(Vec::len).sum();
            let kind = (bytes <= DFA_MAX_PATTERN_BYTES).then_some(AhoCorasickKind::DFA);
            Some(
                AhoCorasickBuilder::new()
                    .kind(kind)
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .map_err(|e| format!("cannot compile the canaries: {e}"))?,
            )
        };
        Ok(Canaries { list, ac, pattern_canary, max_len, by_key })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, i: u32) -> &Canary {
        &self.list[i as usize]
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Every exact occurrence in `bytes`: `(canary, offset of its end)`; of occurrences that
    /// overlap, the one that ends first.
    pub fn scan(&self, bytes: &[u8], mut hit: impl FnMut(u32, usize)) {
        if let Some(ac) = &self.ac {
            for m in ac.find_iter(bytes) {
                hit(self.pattern_canary[m.pattern().as_usize()], m.end());
            }
        }
    }

    /// The canaries a record's text equals after normalisation ([`match_key`]).
    pub fn by_key(&self, key: u64) -> &[u32] {
        self.by_key.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn ascii_json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Scans a stream of buffers for canaries, carrying the last `max_len - 1` bytes over so an
/// occurrence split across two buffers is found exactly once.
pub(crate) struct StreamScanner {
    tail: Vec<u8>,
    /// Input offset of `tail[0]`.
    tail_offset: u64,
}

impl StreamScanner {
    pub fn new() -> Self {
        StreamScanner { tail: Vec::new(), tail_offset: 0 }
    }

    pub fn feed(&mut self, canaries: &Canaries, bytes: &[u8], mut hit: impl FnMut(u32, u64)) {
        if canaries.is_empty() || bytes.is_empty() {
            self.tail_offset += bytes.len() as u64;
            return;
        }
        let mut buf = std::mem::take(&mut self.tail);
        let old = buf.len();
        buf.extend_from_slice(bytes);
        let base = self.tail_offset;
        canaries.scan(&buf, |c, end| {
            // Matches lying wholly in the carried tail were reported last time.
            if end > old {
                hit(c, base + end as u64);
            }
        });
        let keep = canaries.max_len().saturating_sub(1).min(buf.len());
        self.tail_offset = base + (buf.len() - keep) as u64;
        self.tail = buf.split_off(buf.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Canaries {
        Canaries::new(vec![
            Canary { licensee: 5, canary_id: "c1".into(), text: "Le café “Moka” ouvre à 7h".into() },
            Canary { licensee: 6, canary_id: "c2".into(), text: "birdwatching at dawn again".into() },
        ])
        .unwrap()
    }

    #[test]
    fn finds_exact_and_json_escaped_forms() {
        let c = set();
        let mut hits = Vec::new();
        let text = "x\nLe café “Moka” ouvre à 7h\n{\"text\":\"Le caf\\u00e9 \\u201cMoka\\u201d ouvre \\u00e0 7h\"}\n";
        c.scan(text.as_bytes(), |i, _| hits.push(i));
        assert_eq!(hits, vec![0, 0]);
    }

    #[test]
    fn stream_scanner_finds_split_occurrences_once() {
        let c = set();
        let text = b"aaa birdwatching at dawn again bbb birdwatching at dawn again";
        for split in 0..text.len() {
            let mut s = StreamScanner::new();
            let mut hits = Vec::new();
            s.feed(&c, &text[..split], |i, end| hits.push((i, end)));
            s.feed(&c, &text[split..], |i, end| hits.push((i, end)));
            assert_eq!(hits, vec![(1, 30), (1, 61)], "split at {split}");
        }
    }

    #[test]
    fn normalised_key_matches_retyped_canaries() {
        let c = set();
        assert_eq!(c.by_key(match_key("le CAFE \"moka\" ouvre a 7h")), &[] as &[u32], "accents are kept");
        assert_eq!(c.by_key(match_key("le café \"MOKA\"   ouvre à 7h!")), &[0]);
    }
}

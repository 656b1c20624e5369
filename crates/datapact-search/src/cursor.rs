//! Opaque pagination tokens.

use crate::SortOrder;

/// Position just after the last result of a page, for the next call of
/// [`SearchIndex::search`](crate::SearchIndex::search).
///
/// A cursor records the sort order it was made for, the last id returned
/// and, for relevancy, that post's relevance. [`Cursor::encode`] gives an
/// opaque, URL-safe token (lowercase hex, with a version and a checksum);
/// [`Cursor::decode`] accepts only tokens minted by `encode` for the same
/// sort order. The checksum detects edits and garbage, it is not a secret:
/// a forged cursor can only move the position within the same query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) sort: SortOrder,
    pub(crate) score: u32,
    pub(crate) id: i64,
}

const VERSION: u8 = 1;

fn checksum(bytes: &[u8]) -> u32 {
    // FNV-1a 32 over a domain tag and the payload.
    let mut h: u32 = 0x811c_9dc5;
    for &b in b"datapact-search cursor".iter().chain(bytes) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Cursor {
    /// The sort order this cursor belongs to.
    pub fn sort_order(&self) -> SortOrder {
        self.sort
    }

    /// Id of the last post of the page this cursor follows.
    pub fn last_id(&self) -> i64 {
        self.id
    }

    /// Encodes the cursor as an opaque URL-safe token.
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(18);
        b.push(VERSION);
        b.push(match self.sort {
            SortOrder::Recency => b'r',
            SortOrder::Relevancy => b'v',
        });
        b.extend_from_slice(&self.score.to_be_bytes());
        b.extend_from_slice(&self.id.to_be_bytes());
        let c = checksum(&b);
        b.extend_from_slice(&c.to_be_bytes());
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Decodes a token made by [`Cursor::encode`] for a search in `sort`
    /// order; anything else (garbage, an edited token, a token of the other
    /// sort order) gives `None`.
    pub fn decode(token: &str, sort: SortOrder) -> Option<Cursor> {
        if token.len() != 36 || !token.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let b: Vec<u8> =
            (0..18).map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16).ok()).collect::<Option<_>>()?;
        let (payload, sum) = b.split_at(14);
        if checksum(payload).to_be_bytes() != sum || payload[0] != VERSION {
            return None;
        }
        let found = match payload[1] {
            b'r' => SortOrder::Recency,
            b'v' => SortOrder::Relevancy,
            _ => return None,
        };
        let score = u32::from_be_bytes(payload[2..6].try_into().ok()?);
        let id = i64::from_be_bytes(payload[6..14].try_into().ok()?);
        if found != sort || (sort == SortOrder::Recency && score != 0) {
            return None;
        }
        Some(Cursor { sort, score, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejection() {
        for c in [
            Cursor { sort: SortOrder::Recency, score: 0, id: 1_234_567_890_123 },
            Cursor { sort: SortOrder::Relevancy, score: 3, id: -5 },
            Cursor { sort: SortOrder::Relevancy, score: u32::MAX, id: i64::MAX },
        ] {
            let t = c.encode();
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(Cursor::decode(&t, c.sort), Some(c));
            let other = match c.sort {
                SortOrder::Recency => SortOrder::Relevancy,
                SortOrder::Relevancy => SortOrder::Recency,
            };
            assert_eq!(Cursor::decode(&t, other), None);
            // Any single-character edit is rejected.
            for i in 0..t.len() {
                let mut b = t.clone().into_bytes();
                b[i] = if b[i] == b'0' { b'1' } else { b'0' };
                assert_eq!(Cursor::decode(std::str::from_utf8(&b).unwrap(), c.sort), None, "{i}");
            }
            assert_eq!(Cursor::decode(&t.to_uppercase(), c.sort), None);
            assert_eq!(Cursor::decode(&t[1..], c.sort), None);
        }
        for junk in ["", "abc", "1234567890", "ééé", &"0".repeat(36), &"f".repeat(36)] {
            assert_eq!(Cursor::decode(junk, SortOrder::Recency), None);
            assert_eq!(Cursor::decode(junk, SortOrder::Relevancy), None);
        }
    }
}

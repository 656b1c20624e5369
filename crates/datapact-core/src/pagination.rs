//! Opaque pagination tokens.
//!
//! A token names the last post id of the previous page; the next page starts strictly below it
//! (results run newest first). Tokens are base-36 so they look opaque, as X's do, and are
//! validated: a token that was not minted here is a 400, not an empty page.

use crate::post::PostId;

const MARKER: char = 'p';

/// The token for "the page after the one ending at `last`".
pub fn next_token(last: PostId) -> String {
    let mut value = last.get() as u64;
    let mut digits = Vec::new();
    while value > 0 {
        digits.push(std::char::from_digit((value % 36) as u32, 36).unwrap_or('0'));
        value /= 36;
    }
    digits.push(MARKER);
    digits.iter().rev().collect()
}

/// Reads a token minted by [`next_token`].
pub fn parse_token(token: &str) -> Option<PostId> {
    let digits = token.strip_prefix(MARKER)?;
    if digits.is_empty() || digits.len() > 13 || digits.starts_with('0') {
        return None;
    }
    let value = u64::from_str_radix(digits, 36).ok()?;
    (value > 0 && value <= i64::MAX as u64).then(|| PostId::new(value as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_foreign_tokens() {
        for token in ["", "p", "p0", "x12", "p!!", "pzzzzzzzzzzzzzz", "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"] {
            assert_eq!(parse_token(token), None, "{token}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trips(id in 1i64..=i64::MAX) {
            proptest::prop_assert_eq!(parse_token(&next_token(PostId::new(id))), Some(PostId::new(id)));
        }
    }
}

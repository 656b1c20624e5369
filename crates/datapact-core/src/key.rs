//! Licensee API keys: format, display prefix and the hash the store keeps.
//!
//! A key is `dpk_` followed by 40 lowercase hex digits (160 bits from the OS random source,
//! supplied by the caller so this crate stays free of I/O). The store keeps only its SHA-256;
//! a high-entropy key needs no slow password hash. The first 12 hex digits, with the `dpk_`
//! marker, form the public prefix by which operators list and revoke keys.

use std::fmt;

use sha2::{Digest, Sha256};

/// The recognisable marker every key starts with (so secret scanners can find leaked keys).
pub const KEY_MARKER: &str = "dpk_";
/// Random bytes in a key.
pub const KEY_RANDOM_BYTES: usize = 20;
const PREFIX_HEX_DIGITS: usize = 12;

/// A full key, as shown to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// The public part of a key: safe to show, log and store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct KeyPrefix(pub String);

/// SHA-256 of a full key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl ApiKey {
    pub fn from_random_bytes(bytes: [u8; KEY_RANDOM_BYTES]) -> Self {
        ApiKey(format!("{KEY_MARKER}{}", hex::encode(bytes)))
    }

    /// Accepts a presented bearer token if it has a key's shape; anything else is not a key.
    pub fn parse(token: &str) -> Option<Self> {
        let digits = token.strip_prefix(KEY_MARKER)?;
        (digits.len() == KEY_RANDOM_BYTES * 2
            && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| ApiKey(token.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> KeyPrefix {
        KeyPrefix(self.0[..KEY_MARKER.len() + PREFIX_HEX_DIGITS].to_owned())
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// Never print the secret by accident.
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix().0)
    }
}

impl KeyHash {
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_prefix_and_hash() {
        let key = ApiKey::from_random_bytes([0xab; KEY_RANDOM_BYTES]);
        assert_eq!(key.as_str().len(), 44);
        assert_eq!(key.prefix().0, "dpk_abababababab");
        assert_eq!(ApiKey::parse(key.as_str()), Some(key.clone()));
        assert!(!format!("{key:?}").contains(&key.as_str()[20..]));
        assert_ne!(key.hash(), ApiKey::from_random_bytes([0xac; KEY_RANDOM_BYTES]).hash());
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        for token in ["", "dpk_", "abc", "dpk_ABABABABABABABABABABABABABABABABABABABAB", "dpk_zz"] {
            assert_eq!(ApiKey::parse(token), None, "{token}");
        }
    }
}

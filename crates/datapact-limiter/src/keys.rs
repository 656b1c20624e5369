//! The key layout (see the crate docs): every key under `dp:<namespace>:`, a licensee's keys behind its hash tag.

use datapact_core::Endpoint;
use datapact_ledger::{DayKey, MonthKey};

use crate::LimiterError;

/// The longest namespace or node name.
const MAX_NAME: usize = 64;
/// The longest request id.
const MAX_REQUEST_ID: usize = 255;

/// Builds the keys of one namespace.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// `dp:<namespace>:`
    prefix: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Result<Keys, LimiterError> {
        check_name("namespace", namespace)?;
        Ok(Keys { prefix: format!("dp:{namespace}:") })
    }

    /// `dp:<ns>:{lic:<id>}`: the hash tag keeps a licensee's keys in one Redis Cluster slot, so every script sees them
    /// all atomically.
    fn licensee(&self, licensee_id: i64) -> String {
        format!("{}{{lic:{licensee_id}}}", self.prefix)
    }

    pub(crate) fn rate(&self, licensee_id: i64, endpoint: Endpoint) -> String {
        format!("{}:rate:{}", self.licensee(licensee_id), endpoint.as_str())
    }

    pub(crate) fn month(&self, licensee_id: i64, month: MonthKey) -> String {
        format!("{}:month:{month}", self.licensee(licensee_id))
    }

    pub(crate) fn day(&self, licensee_id: i64, day: DayKey) -> String {
        format!("{}:day:{day}", self.licensee(licensee_id))
    }

    pub(crate) fn charged(&self, licensee_id: i64) -> String {
        format!("{}:charged", self.licensee(licensee_id))
    }

    pub(crate) fn pending(&self, licensee_id: i64, node: &str) -> String {
        format!("{}:pending:{node}", self.licensee(licensee_id))
    }

    /// An `Idempotency-Key` held in flight ([`crate::RedisLimiter::hold_key`]).
    pub(crate) fn held(&self, licensee_id: i64, key: &str) -> String {
        format!("{}:held:{key}", self.licensee(licensee_id))
    }

    /// `dp:<ns>:node:<node>`: the licensees a node may hold reservations for (outside any licensee's slot).
    pub(crate) fn node_index(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }
}

/// A namespace or node name: 1 to 64 of `A-Z a-z 0-9 _ . -`, so it can never open a hash tag or split a key.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), LimiterError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(allowed) {
        return Err(LimiterError::Invalid(format!(
            "{what} {name:?}: use 1 to {MAX_NAME} characters of A-Z, a-z, 0-9, '_', '.' and '-'"
        )));
    }
    Ok(())
}

/// A request id: 1 to 255 visible ASCII characters other than `|` (it is a hash field, and records use `|`).
pub(crate) fn check_request_id(request_id: &str) -> Result<(), LimiterError> {
    let allowed = |b: u8| b.is_ascii_graphic() && b != b'|';
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID || !request_id.bytes().all(allowed) {
        return Err(LimiterError::Invalid(format!(
            "request id {request_id:?}: use 1 to {MAX_REQUEST_ID} visible ASCII characters other than '|'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_licensee_s_keys_share_one_hash_tag() {
        let keys = Keys::new("prod").unwrap();
        let month = MonthKey::new(2026, 11).unwrap();
        let day = DayKey::parse("2026-11-29").unwrap();
        assert_eq!(keys.rate(42, Endpoint::Search), "dp:prod:{lic:42}:rate:search");
        assert_eq!(keys.month(42, month), "dp:prod:{lic:42}:month:2026-11");
        assert_eq!(keys.day(42, day), "dp:prod:{lic:42}:day:2026-11-29");
        assert_eq!(keys.charged(-7), "dp:prod:{lic:-7}:charged");
        assert_eq!(keys.pending(42, "gw-1"), "dp:prod:{lic:42}:pending:gw-1");
        assert_eq!(keys.node_index("gw-1"), "dp:prod:node:gw-1");
    }

    #[test]
    fn names_cannot_open_a_hash_tag_or_split_a_key() {
        for bad in ["", "a{b", "a}b", "a:b", "a b", "é", &"x".repeat(65)] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
            assert!(check_name("node", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("node", "gw-1.eu_west").is_ok());
        for bad in ["", "a|b", "a b", "\n", &"x".repeat(256)] {
            assert!(check_request_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_request_id("0193a4b2-7c1e-7d2a-9e55-3f0c8f1b2a11").is_ok());
    }
}

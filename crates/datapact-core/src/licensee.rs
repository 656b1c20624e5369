//! Licensees (the companies that buy access) and their API keys, as the store records them.

use serde::Serialize;

use crate::key::KeyPrefix;
use crate::time::Timestamp;

/// The longest licensee name accepted.
pub const MAX_LICENSEE_NAME_CHARS: usize = 64;

/// Whether a licensee may be served at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LicenseeStatus {
    Active,
    Blocked,
}

impl LicenseeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseeStatus::Active => "active",
            LicenseeStatus::Blocked => "blocked",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(LicenseeStatus::Active),
            "blocked" => Some(LicenseeStatus::Blocked),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Licensee {
    pub id: i64,
    pub name: String,
    pub status: LicenseeStatus,
    pub created_at: Timestamp,
}

/// A key as operators see it: never the secret, only its prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    pub prefix: KeyPrefix,
    pub licensee: String,
    /// What the key's requests are for (RSL vocabulary: `search`, `ai-train`, ...).
    pub purpose: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl KeyRecord {
    /// Whether the key opens the API at `now`.
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// Checks a licensee name: 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter.
/// Names appear in URLs, terms files and reports, so they stay plain.
pub fn validate_licensee_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= MAX_LICENSEE_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "licensee name {name:?} is invalid: use 1 to {MAX_LICENSEE_NAME_CHARS} lowercase letters, digits, '-' or '_', starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_licensee_name("acme").is_ok());
        assert!(validate_licensee_name("acme-labs_2").is_ok());
        for bad in ["", "Acme", "2acme", "ac me", "acmé", &"a".repeat(65)] {
            assert!(validate_licensee_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_usability() {
        let key = KeyRecord {
            prefix: KeyPrefix("dpk_0".into()),
            licensee: "acme".into(),
            purpose: "search".into(),
            created_at: Timestamp(0),
            expires_at: Some(Timestamp(100)),
            revoked_at: None,
            last_used_at: None,
        };
        assert!(key.is_usable_at(Timestamp(99)));
        assert!(!key.is_usable_at(Timestamp(100)));
        assert!(!KeyRecord { revoked_at: Some(Timestamp(1)), ..key }.is_usable_at(Timestamp(0)));
    }
}

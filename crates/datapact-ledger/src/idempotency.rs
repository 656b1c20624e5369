//! Idempotent retries: when a request with an `Idempotency-Key` is a replay, a fresh request, or a misuse.
//!
//! A key is scoped to a licensee — `(licensee_id, key)` — and lives [`IDEMPOTENCY_WINDOW_MS`] (24 h) from its first
//! use. The store records the key **in the same commit** as the response's usage event and deliveries, never before
//! (so a commit that fails leaves no key behind and the retry is metered once, not zero times), together with the
//! request's [`RequestFingerprint`]. On a later request with the same key, [`decide`] says what to do:
//!
//! | prior use of the key                     | decision                                                     |
//! |------------------------------------------|--------------------------------------------------------------|
//! | none, or first used 24 h ago or more     | [`IdempotencyDecision::Fresh`]: meter and record as new       |
//! | same fingerprint, committed              | [`IdempotencyDecision::Replay`]: send the recorded deliveries |
//! | same fingerprint, still being served     | [`IdempotencyDecision::InProgress`]: 409, retry later         |
//! | different fingerprint                    | [`IdempotencyDecision::Mismatch`]: 422, key reused            |
//!
//! A replay re-sends the same posts (same ids, revisions and order, from the recorded [`crate::Delivery`] rows of the
//! original request) and counts nothing, so it is served even when the licensee is now at its cap: those records
//! were counted when they were first delivered. The replay is itself recorded like any response — a usage event with
//! `counted: 0` and one delivery per post with `counted: false` — so every transmission is in the ledger and the
//! counted total still equals what the client was charged once.

use datapact_core::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::chain::Digest;

/// How long a key is remembered from its first use: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters. The IETF draft's quoted form (`"abc"`) and the
/// bare form (`abc`, what most clients send) name the same key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header was refused (a 400 naming the header).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters (optionally in double quotes)")]
pub struct KeyError;

impl IdempotencyKey {
    /// Reads the header's value.
    pub fn parse(header: &str) -> Result<IdempotencyKey, KeyError> {
        let key = match header.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
            Some(inner) => inner,
            None => header,
        };
        let visible = key.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"');
        if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
            return Err(KeyError);
        }
        Ok(IdempotencyKey(key.to_owned()))
    }

    /// The key as text (without quotes).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request" for a key: SHA-256 over the method, the path and the query's `&`-separated
/// parameters in sorted order (so a client that orders parameters differently on retry is still the same request;
/// the body is not part of it because licensee requests have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(pub Digest);

impl RequestFingerprint {
    /// The fingerprint of `method path?query` (`query` without the `?`; empty when there is none).
    pub fn new(method: &str, path: &str, query: &str) -> RequestFingerprint {
        let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        params.sort_unstable();
        let mut hasher = Sha256::new();
        hasher.update(b"datapact-ledger/request/v1\0");
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(method.as_bytes());
        field(path.as_bytes());
        field(&(params.len() as u64).to_be_bytes());
        for param in params {
            field(param.as_bytes());
        }
        RequestFingerprint(Digest(hasher.finalize().into()))
    }
}

/// Where the first request with the key stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriorState {
    /// Admitted but not yet committed (the store holds a claim on the key while the request is served).
    InFlight,
    /// Committed: its deliveries are recorded under `request_id`.
    Committed {
        /// The original request's id.
        request_id: String,
    },
}

/// The store's record of a key's first use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorUse {
    /// When the key was first used (the window runs from here).
    pub first_used_at: Timestamp,
    /// The first request's fingerprint.
    pub fingerprint: RequestFingerprint,
    /// Whether it has been committed.
    pub state: PriorState,
}

/// What the gateway does with a request that carries a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyDecision {
    /// Meter and serve it as a new request, recording the key with its fingerprint in the same commit.
    Fresh,
    /// Send again exactly the deliveries recorded under `request_id`, in order, without counting them.
    Replay {
        /// The original request's id.
        request_id: String,
    },
    /// The first request with this key is still being served: 409 Conflict; the client retries later.
    InProgress,
    /// The key was used within 24 h for a different request: 422 Unprocessable Content.
    Mismatch {
        /// When the key was first used.
        first_used_at: Timestamp,
        /// When it can be used for another request.
        reusable_at: Timestamp,
    },
}

/// The first instant at which a key first used at `first_used_at` is forgotten.
pub fn expires_at(first_used_at: Timestamp) -> Timestamp {
    first_used_at.plus_millis(IDEMPOTENCY_WINDOW_MS)
}

/// Decides what a request with fingerprint `fingerprint`, arriving at `now`, is, given the key's prior use (if the
/// store has one for this licensee and key).
pub fn decide(prior: Option<&PriorUse>, fingerprint: &RequestFingerprint, now: Timestamp) -> IdempotencyDecision {
    let Some(prior) = prior else { return IdempotencyDecision::Fresh };
    let reusable_at = expires_at(prior.first_used_at);
    if now >= reusable_at {
        return IdempotencyDecision::Fresh;
    }
    if prior.fingerprint != *fingerprint {
        return IdempotencyDecision::Mismatch { first_used_at: prior.first_used_at, reusable_at };
    }
    match &prior.state {
        PriorState::InFlight => IdempotencyDecision::InProgress,
        PriorState::Committed { request_id } => IdempotencyDecision::Replay { request_id: request_id.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(at: i64, fingerprint: RequestFingerprint, state: PriorState) -> PriorUse {
        PriorUse { first_used_at: Timestamp(at), fingerprint, state }
    }

    #[test]
    fn keys_are_visible_ascii_quoted_or_not() {
        assert_eq!(IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap().as_str().len(), 36);
        assert_eq!(IdempotencyKey::parse("\"abc\"").unwrap(), IdempotencyKey::parse("abc").unwrap());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "\"\"", "a b", "é", "a\"b", "\"abc", &"k".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad), Err(KeyError), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_ignore_parameter_order_only() {
        let a = RequestFingerprint::new("GET", "/2/tweets/search/recent", "query=cats&max_results=10");
        assert_eq!(a, RequestFingerprint::new("GET", "/2/tweets/search/recent", "max_results=10&query=cats"));
        assert_ne!(a, RequestFingerprint::new("GET", "/2/tweets/search/recent", "query=cats&max_results=11"));
        assert_ne!(a, RequestFingerprint::new("HEAD", "/2/tweets/search/recent", "query=cats&max_results=10"));
        assert_ne!(a, RequestFingerprint::new("GET", "/2/tweets/search/recent/", "query=cats&max_results=10"));
        // Field boundaries are unambiguous.
        assert_ne!(RequestFingerprint::new("GET", "/a", "b=1"), RequestFingerprint::new("GET", "/ab", "=1"));
    }

    #[test]
    fn the_decision_table() {
        let f = RequestFingerprint::new("GET", "/2/tweets/1", "");
        let g = RequestFingerprint::new("GET", "/2/tweets/2", "");
        let committed = PriorState::Committed { request_id: "req-1".into() };
        let day = IDEMPOTENCY_WINDOW_MS;
        assert_eq!(decide(None, &f, Timestamp(5)), IdempotencyDecision::Fresh);
        assert_eq!(
            decide(Some(&prior(0, f, committed.clone())), &f, Timestamp(day - 1)),
            IdempotencyDecision::Replay { request_id: "req-1".into() }
        );
        assert_eq!(decide(Some(&prior(0, f, committed.clone())), &f, Timestamp(day)), IdempotencyDecision::Fresh);
        assert_eq!(decide(Some(&prior(0, f, PriorState::InFlight)), &f, Timestamp(1)), IdempotencyDecision::InProgress);
        assert_eq!(
            decide(Some(&prior(0, f, committed.clone())), &g, Timestamp(1)),
            IdempotencyDecision::Mismatch { first_used_at: Timestamp(0), reusable_at: Timestamp(day) }
        );
        assert_eq!(decide(Some(&prior(0, f, PriorState::InFlight)), &g, Timestamp(day)), IdempotencyDecision::Fresh);
        // A clock that stepped back keeps the key alive rather than forgetting it.
        assert!(matches!(
            decide(Some(&prior(1_000, f, committed)), &f, Timestamp(0)),
            IdempotencyDecision::Replay { .. }
        ));
    }
}

//! Signed ledger checkpoints in the store (issue 11): the platform's Ed25519 signing keys and
//! the checkpoints they signed, on both stores.
//!
//! The keys live in the store, not in a data directory file, so every gateway node sharing a
//! PostgreSQL store can sign; a copy of the store is therefore as sensitive as the signing key.
//! Only the key in use signs; rotation adds a key and retires the one in use at the same instant,
//! and a retired key's public half stays published, so what it signed still verifies. Checkpoints
//! are append-only (triggers refuse updates and deletes) and numbered without gaps under the
//! store's writer lock; one made for a schedule slot (the gateways' hourly loop) is made once,
//! whichever node gets there first.

use datapact_core::Timestamp;
use datapact_ledger::{ChainHead, Checkpoint, CheckpointError, PublicKey, SignedCheckpoint, SigningKey};

use crate::{StoreError, StoreResult};

/// The most checkpoints one read returns.
pub const MAX_CHECKPOINTS_PER_READ: usize = 1_000;

/// A signing key as stored: its public half and the span it signs in, and, while it is in use,
/// its seed (never printed: `Debug` redacts it). Retiring a key erases its seed, so a copy of the
/// store taken after a rotation holds no key that signed earlier checkpoints.
#[derive(Clone)]
pub struct StoredSigningKey {
    pub public: PublicKey,
    seed: Option<[u8; 32]>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey").field("public", &self.public).field("seed", &"<redacted>").finish()
    }
}

impl StoredSigningKey {
    /// A key as read back: the key in use must have its seed, and the seed must make the stored
    /// public key and id.
    pub(crate) fn from_stored(
        key_id: String,
        public: Vec<u8>,
        seed: Option<Vec<u8>>,
        created_at: i64,
        retired_at: Option<i64>,
    ) -> StoreResult<StoredSigningKey> {
        let corrupt = |why: &str| StoreError::Invalid(format!("signing key {key_id:?} is corrupt in the store: {why}"));
        let public: [u8; 32] = public.try_into().map_err(|_| corrupt("the public key is not 32 bytes"))?;
        let seed = match seed {
            None if retired_at.is_none() => return Err(corrupt("the key in use has no seed")),
            None => None,
            Some(seed) => {
                let seed: [u8; 32] = seed.try_into().map_err(|_| corrupt("the seed is not 32 bytes"))?;
                let key = SigningKey::from_seed(seed);
                if key.public() != public || key.key_id() != key_id {
                    return Err(corrupt("the seed does not make the stored public key"));
                }
                Some(seed)
            }
        };
        if datapact_ledger::checkpoint::key_id(&public) != key_id {
            return Err(corrupt("the key id is not the public key's"));
        }
        let public =
            PublicKey { key_id, public, created_at: Timestamp(created_at), retired_at: retired_at.map(Timestamp) };
        Ok(StoredSigningKey { public, seed })
    }

    /// A new key from 32 random bytes, created at `at`.
    pub(crate) fn new(seed: [u8; 32], at: Timestamp) -> StoredSigningKey {
        let key = SigningKey::from_seed(seed);
        let public = PublicKey { key_id: key.key_id(), public: key.public(), created_at: at, retired_at: None };
        StoredSigningKey { public, seed: Some(seed) }
    }

    pub(crate) fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_ref()
    }

    /// The key to sign with; `None` for a retired key (its seed was erased).
    pub fn signing_key(&self) -> Option<SigningKey> {
        self.seed.map(SigningKey::from_seed)
    }
}

/// When a rotation at `requested` takes effect: never before the retiring key's own creation nor
/// at or before the last checkpoint it signed (whose time the signer chose before this
/// transaction), so no checkpoint already published stops verifying.
pub(crate) fn rotation_instant(
    requested: Timestamp,
    in_use: Option<&StoredSigningKey>,
    last_signed: Option<i64>,
) -> Timestamp {
    let after_signed = last_signed.map_or(requested, |at| Timestamp(at.saturating_add(1)));
    let created = in_use.map_or(requested, |key| key.public.created_at);
    requested.max(after_signed).max(created)
}

/// What `add_signing_key` does when a key is already in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Keep the key in use; add one only if there is none (a gateway's first start).
    CreateIfNone,
    /// Retire the key in use and sign with the new one from now on.
    Rotate,
}

/// The checkpoint numbered `number`, signed by `key` (the key in use, read in the same
/// transaction). A checkpoint dated before the key existed could never verify: it is refused,
/// and the caller reads the heads again.
pub(crate) fn seal(
    number: u64,
    at: Timestamp,
    heads: Vec<ChainHead>,
    key: &StoredSigningKey,
) -> StoreResult<SignedCheckpoint> {
    if at < key.public.created_at {
        return Err(StoreError::Conflict(format!(
            "the signing key was rotated at {} after these heads were read at {at}: read them again",
            key.public.created_at
        )));
    }
    let signing = key.signing_key().ok_or_else(no_key)?;
    let checkpoint = Checkpoint { number, at, key_id: key.public.key_id.clone(), heads };
    checkpoint.sign(&signing).map_err(invalid)
}

/// A stored checkpoint read back (its signature is checked by whoever verifies it, not here).
pub(crate) fn stored(
    number: i64,
    at: i64,
    key_id: String,
    heads: &str,
    signature: Vec<u8>,
) -> StoreResult<SignedCheckpoint> {
    let corrupt = |why: String| StoreError::Invalid(format!("checkpoint {number} is corrupt in the store: {why}"));
    let heads: Vec<ChainHead> = serde_json::from_str(heads).map_err(|e| corrupt(format!("heads: {e}")))?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| corrupt("the signature is not 64 bytes".into()))?;
    let number = u64::try_from(number).map_err(|_| corrupt("a negative number".into()))?;
    Ok(SignedCheckpoint { checkpoint: Checkpoint { number, at: Timestamp(at), key_id, heads }, signature })
}

pub(crate) fn heads_json(checkpoint: &Checkpoint) -> String {
    serde_json::to_string(&checkpoint.heads).unwrap_or_default()
}

fn invalid(error: CheckpointError) -> StoreError {
    StoreError::Invalid(error.to_string())
}

/// SQL both stores run (`?N` placeholders; PostgreSQL's are rewritten by `pg!`).
pub(crate) mod sql {
    pub(crate) const SIGNING_KEYS: &str =
        "SELECT key_id, public_key, seed, created_at, retired_at FROM signing_keys ORDER BY created_at, key_id";
    pub(crate) const KEY_IN_USE: &str =
        "SELECT key_id, public_key, seed, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL";
    /// Retiring erases the seed: nothing signs with a retired key again.
    pub(crate) const RETIRE_KEYS: &str =
        "UPDATE signing_keys SET retired_at = ?1, seed = NULL WHERE retired_at IS NULL";
    /// The newest checkpoint time signed by key `?1`.
    pub(crate) const LAST_SIGNED: &str = "SELECT MAX(at) FROM checkpoints WHERE key_id = ?1";
    pub(crate) const INSERT_KEY: &str =
        "INSERT INTO signing_keys (key_id, public_key, seed, created_at) VALUES (?1, ?2, ?3, ?4)";
    pub(crate) const SLOT_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE slot = ?1)";
    pub(crate) const NEXT_NUMBER: &str = "SELECT COALESCE(MAX(number), 0) + 1 FROM checkpoints";
    pub(crate) const INSERT_CHECKPOINT: &str =
        "INSERT INTO checkpoints (number, at, slot, key_id, heads, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    /// Checkpoints numbered below `?1`, newest first, at most `?2`.
    pub(crate) const CHECKPOINTS: &str = "SELECT number, at, key_id, heads, signature FROM checkpoints
         WHERE number < ?1 ORDER BY number DESC LIMIT ?2";
}

/// The audit entry of a key change: ids and times, never the seed.
pub(crate) fn key_audit(key: &StoredSigningKey, how: KeyChange) -> crate::shared::AuditDraft {
    let action = match how {
        KeyChange::CreateIfNone => "signing_key.created",
        KeyChange::Rotate => "signing_key.rotated",
    };
    crate::shared::AuditDraft::after(
        action,
        key.public.key_id.clone(),
        serde_json::json!({"key_id": key.public.key_id, "created_at": key.public.created_at}),
    )
}

/// Signing before any key exists: what to do about it.
pub(crate) fn no_key() -> StoreError {
    StoreError::Invalid(
        "there is no checkpoint signing key yet: `datapact serve` creates one on its first start, or run \
         `datapact ledger checkpoint rotate-key`"
            .into(),
    )
}

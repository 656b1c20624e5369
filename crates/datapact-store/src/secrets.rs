//! The fingerprint secret's lifecycle: every version of [`Secret`] the gateway ever rendered
//! with, kept in the data directory (`fingerprint-secrets.json`, mode 0600).
//!
//! - Created once, on the gateway's first start, from the OS random source. Creation, rotation
//!   and import write a temporary file (0600) and rename it over the old one, under an exclusive
//!   lock, so a crash never leaves a half-written ring and two processes never lose a version.
//! - Rotation adds a version; older versions are kept byte for byte, because a leaked copy can
//!   only be traced with the version that rendered it. Nothing here ever deletes a version.
//! - A file that is not mode 0600, unreadable or corrupt is refused with an error that says what
//!   to do, never silently regenerated: a new key would make every earlier copy untraceable.
//! - Export is a standard age file encrypted to a passphrase (scrypt recipient), so `age -d` or
//!   `rage -d` also decrypt it; its plaintext is the ring file itself. Import merges such an export
//!   into the local ring and refuses a version whose key differs from the local one.
//!
//! The file format (`format: 1`), a JSON object:
//!
//! ```json
//! {"kind": "datapact-fingerprint-secrets", "format": 1, "versions": [
//!   {"version": 1, "key": "<64 hex digits>", "max_coalition": 8, "cutoff_ppm": 417,
//!    "channels": ["apostrophe", "double-quotes", "ellipsis", "spaced-dash", "french-spacing", "accent"],
//!    "created_at": "2026-11-28T20:00:00.000Z"}]}
//! ```
//!
//! Keys are never printed or logged: [`Secret`]'s `Debug` redacts them, and every error here
//! names files and versions, never key material.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use datapact_core::Timestamp;
use datapact_mark::{Channel, ChannelSet, Secret};

use crate::{Store, StoreError, StoreResult};

/// The ring's file in the data directory (mode 0600).
pub const SECRETS_FILE: &str = "fingerprint-secrets.json";
/// The file whose exclusive lock serialises creation, rotation and import (its name starts with
/// [`SECRETS_FILE`] so backups and restores treat it with the ring, and skip it).
const SECRETS_LOCK: &str = "fingerprint-secrets.json.lock";
/// The on-disk format this code writes and reads.
pub const SECRETS_FORMAT: u32 = 1;
/// What the `kind` field says, so importing some other age file fails with a clear message.
const SECRETS_KIND: &str = "datapact-fingerprint-secrets";
/// The shortest passphrase an export accepts, in characters: the export holds every key ever
/// used, and scrypt only slows guessing down, it cannot make a short passphrase strong.
pub const MIN_EXPORT_PASSPHRASE_CHARS: usize = 12;
/// The largest ring file or export read: a version takes ~250 bytes, so this is far beyond any
/// real ring, and keeps a wrong file (a dump, a database) from being read whole into memory.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// The largest scrypt work factor (`N = 2^22`, 4 GiB) an import accepts. age's default cap is
/// this machine's calibrated factor + 4, which refuses an export made by a faster machine or a
/// release build when a slower one imports it; the file comes from the operator, so the
/// denial-of-service concern behind that cap does not apply.
const MAX_IMPORT_WORK_FACTOR: u8 = 22;
/// The scrypt work factor of an export (`N = 2^18`, 256 MiB, about a second): the age reference
/// implementation's fixed default. age's Rust crate would calibrate to this machine instead, which
/// makes a debug build or a slow machine write a far weaker export.
const EXPORT_WORK_FACTOR: u8 = 18;

/// Code parameters for a new version; `None` keeps the current version's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretParams {
    /// The maximum coalition size `c` (at least 1). Changing it resets the cutoff to its default
    /// for `c` unless `cutoff_ppm` is given too.
    pub max_coalition: Option<u32>,
    /// The bias cutoff in parts per million, `1..=499_999`.
    pub cutoff_ppm: Option<u32>,
    /// The enabled channels (at least one).
    pub channels: Option<ChannelSet>,
}

/// One version of the secret and when it came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    secret: Secret,
    created_at: Timestamp,
    /// When `import` added this version to this data directory (None if made here).
    imported_at: Option<Timestamp>,
}

/// Every version of the fingerprint secret, ascending; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRing {
    entries: Vec<Entry>,
}

impl SecretRing {
    /// Loads the ring from `data_dir`, creating version 1 (32 bytes from the OS random source) if
    /// the file does not exist. An existing file that is not mode 0600, unreadable or corrupt is
    /// an error, never replaced.
    pub fn load_or_create(data_dir: &Path, now: Timestamp) -> StoreResult<SecretRing> {
        // The common case (the file exists) needs no lock: the file is only ever replaced by rename.
        if let Some(ring) = Self::load(data_dir)? {
            return Ok(ring);
        }
        let _lock = lock(data_dir)?;
        // Another process may have created it while this one waited for the lock.
        if let Some(ring) = Self::load(data_dir)? {
            return Ok(ring);
        }
        let ring = SecretRing {
            entries: vec![Entry { secret: Secret::new(1, random_key()?), created_at: now, imported_at: None }],
        };
        ring.save(data_dir)?;
        Ok(ring)
    }

    /// Loads the ring without creating it (for read-only commands): `Ok(None)` if there is no file.
    pub fn load(data_dir: &Path) -> StoreResult<Option<SecretRing>> {
        Ok(read_ring_file(&Self::path(data_dir))?.map(|(_, ring)| ring))
    }

    /// Where the ring lives in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(SECRETS_FILE)
    }

    /// The newest version: the one to render new copies with.
    pub fn current(&self) -> &Secret {
        // The ring is never empty: `parse` refuses an empty one and nothing removes versions.
        &self.entries[self.entries.len() - 1].secret
    }

    /// The secret with this version number, if the ring holds it.
    pub fn get(&self, version: u32) -> Option<&Secret> {
        self.entry(version).map(|entry| &entry.secret)
    }

    /// Every version, ascending.
    pub fn versions(&self) -> impl Iterator<Item = &Secret> {
        self.entries.iter().map(|entry| &entry.secret)
    }

    /// When this version was created.
    pub fn created_at(&self, version: u32) -> Option<Timestamp> {
        self.entry(version).map(|entry| entry.created_at)
    }

    /// When `import` added this version to this data directory (None if it was made here, or the
    /// version is unknown).
    pub fn imported_at(&self, version: u32) -> Option<Timestamp> {
        self.entry(version).and_then(|entry| entry.imported_at)
    }

    /// Adds version current+1 with a fresh key and the current version's code parameters, and
    /// saves atomically. There must already be a ring (the gateway creates it on first start).
    pub fn rotate(data_dir: &Path, now: Timestamp) -> StoreResult<SecretRing> {
        Self::rotate_with(data_dir, now, SecretParams::default())
    }

    /// [`SecretRing::rotate`] with some code parameters changed for the new version.
    pub fn rotate_with(data_dir: &Path, now: Timestamp, params: SecretParams) -> StoreResult<SecretRing> {
        let _lock = lock(data_dir)?;
        let Some(mut ring) = Self::load(data_dir)? else {
            return Err(StoreError::NotFound(format!(
                "there is no fingerprint secret in {} yet (wrong --data-dir?); `datapact serve` creates it on first \
                 start, or `datapact secret import` brings one from an export",
                data_dir.display()
            )));
        };
        let current = ring.current();
        let version = current.version().checked_add(1).ok_or_else(|| {
            StoreError::Invalid("the fingerprint secret is at the highest version number; it cannot rotate".into())
        })?;
        let mut secret = Secret::new(version, random_key()?);
        secret = match params.max_coalition {
            Some(0) => {
                return Err(StoreError::Invalid("the maximum coalition size must be at least 1".into()));
            }
            Some(c) => secret.with_max_coalition(c),
            // Keep the current cutoff too: it is only reset when the coalition size changes.
            None => secret.with_max_coalition(current.max_coalition()).with_cutoff_ppm(current.cutoff_ppm()),
        };
        if let Some(ppm) = params.cutoff_ppm {
            check_cutoff(ppm)?;
            secret = secret.with_cutoff_ppm(ppm);
        }
        let channels = params.channels.unwrap_or(current.channels());
        if channels == ChannelSet::EMPTY {
            return Err(StoreError::Invalid("a fingerprint secret needs at least one channel".into()));
        }
        secret = secret.with_channels(channels);
        ring.entries.push(Entry { secret, created_at: now, imported_at: None });
        ring.save(data_dir)?;
        Ok(ring)
    }

    /// The whole ring, encrypted to `passphrase` as a standard age file (scrypt recipient, work
    /// factor 2^18). `age -d` or `rage -d` decrypt it to
    /// the ring file itself. The passphrase must have at least [`MIN_EXPORT_PASSPHRASE_CHARS`]
    /// characters.
    pub fn export(&self, passphrase: &str) -> StoreResult<Vec<u8>> {
        check_passphrase(passphrase)?;
        if passphrase.chars().count() < MIN_EXPORT_PASSPHRASE_CHARS {
            return Err(StoreError::Invalid(format!(
                "the passphrase is too short: an export holds every fingerprint key, so use at least \
                 {MIN_EXPORT_PASSPHRASE_CHARS} characters (a few random words)"
            )));
        }
        let mut recipient = age::scrypt::Recipient::new(SecretString::from(passphrase.to_owned()));
        recipient.set_work_factor(EXPORT_WORK_FACTOR);
        age::encrypt(&recipient, &self.to_json()?)
            .map_err(|e| StoreError::Unavailable(format!("cannot encrypt the fingerprint secret: {e}")))
    }

    /// Decrypts an export and merges it into `data_dir`'s ring (creating the ring if there is none):
    /// versions absent locally are added (marked imported at `now`); a version present on both
    /// sides must be identical (key and code parameters), otherwise nothing changes and the
    /// answer is a Conflict. Identical versions keep their local record.
    pub fn import(data_dir: &Path, encrypted: &[u8], passphrase: &str, now: Timestamp) -> StoreResult<SecretRing> {
        let incoming = Self::decrypt_export(encrypted, passphrase)?;
        let _lock = lock(data_dir)?;
        let local = Self::load(data_dir)?;
        if let Some(local) = &local {
            local.check_mergeable(&incoming, data_dir, "the export")?;
        }
        let mut ring = local.unwrap_or(SecretRing { entries: Vec::new() });
        if ring.merge(incoming, Some(now)) {
            ring.save(data_dir)?;
        }
        Ok(ring)
    }

    /// Refuses `incoming` if a version it shares with this ring differs in key or code parameters.
    fn check_mergeable(&self, incoming: &SecretRing, data_dir: &Path, what: &str) -> StoreResult<()> {
        for entry in &incoming.entries {
            let version = entry.secret.version();
            if let Some(local) = self.entry(version)
                && local.secret != entry.secret
            {
                return Err(StoreError::Conflict(format!(
                    "version {version} of the fingerprint secret in {what} differs from version {version} in {}; \
                     nothing was changed. Both may have rendered copies, so neither is overwritten: use another data \
                     directory, or move {} away (and keep it) first",
                    data_dir.display(),
                    Self::path(data_dir).display()
                )));
            }
        }
        Ok(())
    }

    /// Adds the versions of `incoming` this ring lacks (the caller checked they are mergeable),
    /// marking them imported at `imported_at` if given. Whether anything was added.
    fn merge(&mut self, incoming: SecretRing, imported_at: Option<Timestamp>) -> bool {
        let before = self.entries.len();
        for entry in incoming.entries {
            if self.entry(entry.secret.version()).is_none() {
                let imported_at = imported_at.or(entry.imported_at);
                self.entries.push(Entry { imported_at, ..entry });
                // Kept sorted after each push: `entry` looks versions up by binary search.
                self.entries.sort_by_key(|entry| entry.secret.version());
            }
        }
        self.entries.len() != before
    }

    /// Decrypts and parses an export without touching any data directory.
    pub fn decrypt_export(encrypted: &[u8], passphrase: &str) -> StoreResult<SecretRing> {
        check_passphrase(passphrase)?;
        let not_export = |what: &str| {
            StoreError::Invalid(format!(
                "this is not a fingerprint secret export ({what}); give a file written by `datapact secret export`"
            ))
        };
        let decryptor = age::Decryptor::new_buffered(encrypted).map_err(|e| match e {
            age::DecryptError::Io(_) | age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                not_export("not an age file")
            }
            other => not_export(&other.to_string()),
        })?;
        if !decryptor.is_scrypt() {
            return Err(not_export("it is encrypted to a public key, not to a passphrase"));
        }
        let mut identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
        identity.set_max_work_factor(MAX_IMPORT_WORK_FACTOR);
        let mut reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::NoMatchingKeys => StoreError::Invalid(
                "wrong passphrase: the export cannot be decrypted with it; give the passphrase it was exported with"
                    .into(),
            ),
            age::DecryptError::ExcessiveWork { required, .. } => StoreError::Invalid(format!(
                "the export's scrypt work factor 2^{required} is above the 2^{MAX_IMPORT_WORK_FACTOR} this command \
                 accepts; re-encrypt it with a lower one (`age -d` then `datapact secret export`)"
            )),
            other => not_export(&other.to_string()),
        })?;
        let mut plaintext = Vec::new();
        // The payload is authenticated chunk by chunk: a tampered or truncated file fails here.
        (&mut reader)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut plaintext)
            .map_err(|e| not_export(&format!("its contents do not decrypt: {e}")))?;
        if plaintext.len() as u64 > MAX_FILE_BYTES {
            return Err(not_export("it is larger than any ring"));
        }
        parse(&plaintext).map_err(|reason| not_export(&reason))
    }

    /// For a store several machines share (PostgreSQL): makes this data directory's ring and the
    /// store's ring hold the same versions, creating version 1 if neither has one, and returns it.
    /// Versions only one side has are added to the other; a version both have must be identical,
    /// otherwise nothing changes (Conflict: two machines made different keys under one number). The
    /// store's ring is replaced by compare-and-set, so machines syncing at once never lose a version.
    pub async fn sync_with_store(data_dir: &Path, store: &dyn Store, now: Timestamp) -> StoreResult<SecretRing> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let kept = store.fingerprint_ring().await?;
            let shared = match &kept {
                None => None,
                Some(text) => Some(parse(text.as_bytes()).map_err(|reason| {
                    StoreError::Unavailable(format!("the fingerprint secret kept in the store does not read: {reason}"))
                })?),
            };
            let _lock = lock(data_dir)?;
            let local = Self::load(data_dir)?;
            let mut ring = local.clone().unwrap_or(SecretRing { entries: Vec::new() });
            if let Some(shared) = shared {
                for entry in &shared.entries {
                    let version = entry.secret.version();
                    if ring.entry(version).is_some_and(|mine| mine.secret != entry.secret) {
                        return Err(StoreError::Conflict(format!(
                            "version {version} of the fingerprint secret in {} differs from version {version} kept \
                             in the shared store; nothing was changed. Both may have rendered copies, so neither is \
                             overwritten: export both (`datapact secret export`) and keep them, then move {} away",
                            data_dir.display(),
                            Self::path(data_dir).display()
                        )));
                    }
                }
                // The shared ring is this deployment's own: its versions are not imports.
                ring.merge(shared, None);
            }
            if ring.entries.is_empty() {
                ring.entries.push(Entry { secret: Secret::new(1, random_key()?), created_at: now, imported_at: None });
            }
            let text = String::from_utf8(ring.to_json()?)
                .map_err(|e| StoreError::Unavailable(format!("the fingerprint secret is not UTF-8: {e}")))?;
            if kept.as_deref() != Some(text.as_str()) && !store.put_fingerprint_ring(text, kept, now).await? {
                continue; // another machine changed the shared ring meanwhile: merge again
            }
            if local.as_ref() != Some(&ring) {
                ring.save(data_dir)?;
            }
            return Ok(ring);
        }
        Err(StoreError::Unavailable(
            "the shared fingerprint secret kept changing while this machine synced it; try again".into(),
        ))
    }

    fn entry(&self, version: u32) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&version, |entry| entry.secret.version())
            .ok()
            .map(|index| &self.entries[index])
    }

    fn to_json(&self) -> StoreResult<Vec<u8>> {
        let versions: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|entry| {
                let secret = &entry.secret;
                let mut value = serde_json::json!({
                    "version": secret.version(),
                    "key": hex::encode(secret.key()),
                    "max_coalition": secret.max_coalition(),
                    "cutoff_ppm": secret.cutoff_ppm(),
                    "channels": secret.channels().iter().map(Channel::name).collect::<Vec<_>>(),
                    "created_at": entry.created_at,
                });
                if let Some(at) = entry.imported_at {
                    value["imported_at"] = serde_json::json!(at);
                }
                value
            })
            .collect();
        let document = serde_json::json!({ "kind": SECRETS_KIND, "format": SECRETS_FORMAT, "versions": versions });
        // Never write (or encrypt) an empty document in place of the ring if serialisation failed.
        let mut bytes = serde_json::to_vec_pretty(&document)
            .map_err(|e| StoreError::Unavailable(format!("cannot serialise the fingerprint secret: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the ring to `data_dir` atomically (temporary file, mode 0600, fsync, rename, fsync
    /// of the directory). The caller holds the lock.
    fn save(&self, data_dir: &Path) -> StoreResult<()> {
        write_atomic_0600(&Self::path(data_dir), &self.to_json()?)
    }
}

/// Reads and checks a ring file: `Ok(None)` if it does not exist; its bytes and the ring otherwise.
/// Used by [`SecretRing::load`] and by backup and restore, which copy the bytes as they are.
pub(crate) fn read_ring_file(path: &Path) -> StoreResult<Option<(Vec<u8>, SecretRing)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "cannot read the fingerprint secret {}: {e}; fix its ownership or permissions (it must be readable \
                 by the user running datapact, mode 0600)",
                path.display()
            )));
        }
    };
    // Checked on the open file, not the path, so the answer is about the file actually read.
    let metadata =
        file.metadata().map_err(|e| StoreError::Unavailable(format!("cannot stat {}: {e}", path.display())))?;
    if !metadata.is_file() {
        return Err(StoreError::Invalid(format!("{} is not a regular file; move it away", path.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode != 0o600 {
            return Err(StoreError::Invalid(format!(
                "the fingerprint secret {} has mode {mode:04o}, not 0600: others may have read it. Check who could \
                 have, then `chmod 600 {}` (and rotate with `datapact secret rotate` if it leaked)",
                path.display(),
                path.display()
            )));
        }
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(corrupt(path, "it is larger than any ring"));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("cannot read the fingerprint secret {}: {e}", path.display())))?;
    let ring = parse(&bytes).map_err(|reason| corrupt(path, &reason))?;
    Ok(Some((bytes, ring)))
}

fn corrupt(path: &Path, reason: &str) -> StoreError {
    StoreError::Invalid(format!(
        "the fingerprint secret {} is corrupt ({reason}); it was not replaced, because a new key would make earlier \
         copies untraceable. Restore it from a backup or `datapact secret import` an export into an empty data \
         directory and copy it over",
        path.display()
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDocument {
    kind: String,
    /// Checked before this struct is read (see `parse`), so a newer format gets its own message.
    #[serde(rename = "format")]
    _format: u32,
    versions: Vec<FileEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    version: u32,
    key: String,
    max_coalition: u32,
    cutoff_ppm: u32,
    channels: Vec<String>,
    created_at: Timestamp,
    #[serde(default)]
    imported_at: Option<Timestamp>,
}

/// Parses and checks a ring document; the error says what is wrong (never quoting a key).
fn parse(bytes: &[u8]) -> Result<SecretRing, String> {
    // Read `format` first so a file from a newer datapact gets that answer, not a field error.
    let probe: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    match probe.get("format").and_then(serde_json::Value::as_u64) {
        Some(format) if format == u64::from(SECRETS_FORMAT) => {}
        Some(format) => {
            return Err(format!(
                "format {format} is not the format {SECRETS_FORMAT} this datapact reads; use the datapact that wrote it"
            ));
        }
        None => return Err("no `format` number".into()),
    }
    let document: FileDocument = serde_json::from_slice(bytes).map_err(|e| {
        // Messages about fields name only the field; any other message may quote the offending
        // value (which could be a key in the wrong place), so only its position is given.
        let message = e.to_string();
        if ["missing field", "unknown field", "duplicate field"].iter().any(|prefix| message.starts_with(prefix)) {
            message
        } else {
            format!("a value has the wrong type or form at line {} column {}", e.line(), e.column())
        }
    })?;
    if document.kind != SECRETS_KIND {
        return Err(format!("its kind is {:?}, not {SECRETS_KIND:?}", document.kind));
    }
    if document.versions.is_empty() {
        return Err("it holds no version".into());
    }
    let mut entries = Vec::with_capacity(document.versions.len());
    for entry in document.versions {
        let version = entry.version;
        if version == 0 {
            return Err("version 0 is not a version (they start at 1)".into());
        }
        if let Some(previous) = entries.last().map(|e: &Entry| e.secret.version())
            && version <= previous
        {
            return Err(format!("versions are not strictly ascending ({version} after {previous})"));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(entry.key.as_bytes(), &mut key)
            .map_err(|_| format!("version {version}'s key is not 64 hexadecimal digits"))?;
        if entry.max_coalition == 0 {
            return Err(format!("version {version}'s max_coalition is 0 (at least 1)"));
        }
        check_cutoff(entry.cutoff_ppm).map_err(|_| format!("version {version}'s cutoff_ppm is outside 1..=499999"))?;
        let mut channels = ChannelSet::EMPTY;
        for name in &entry.channels {
            let channel = Channel::ALL
                .into_iter()
                .find(|channel| channel.name() == name)
                .ok_or_else(|| format!("version {version} names an unknown channel {name:?}"))?;
            channels = channels.with(channel);
        }
        if channels == ChannelSet::EMPTY {
            return Err(format!("version {version} has no channel"));
        }
        // The order matters: `with_max_coalition` resets the cutoff, which is then set as recorded.
        let secret = Secret::new(version, key)
            .with_max_coalition(entry.max_coalition)
            .with_cutoff_ppm(entry.cutoff_ppm)
            .with_channels(channels);
        entries.push(Entry { secret, created_at: entry.created_at, imported_at: entry.imported_at });
    }
    Ok(SecretRing { entries })
}

fn check_cutoff(ppm: u32) -> StoreResult<()> {
    if (1..=499_999).contains(&ppm) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("the cutoff must be 1..=499999 parts per million, not {ppm}")))
    }
}

fn check_passphrase(passphrase: &str) -> StoreResult<()> {
    if passphrase.is_empty() {
        return Err(StoreError::Invalid("the passphrase is empty; give the one the export was made with".into()));
    }
    Ok(())
}

fn random_key() -> StoreResult<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| StoreError::Unavailable(format!("the OS random source failed: {e}")))?;
    Ok(key)
}

/// Takes the data directory's secrets lock (blocking: it is held for milliseconds).
fn lock(data_dir: &Path) -> StoreResult<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::Unavailable(format!("cannot create data directory {}: {e}", data_dir.display())))?;
    let path = data_dir.join(SECRETS_LOCK);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file =
        options.open(&path).map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    file.lock().map_err(|e| StoreError::Unavailable(format!("cannot lock {}: {e}", path.display())))?;
    Ok(file)
}

/// Writes `bytes` to `path` so that `path` is always either the old file or the whole new one,
/// with mode 0600 from the start (the key is never readable by others, even briefly).
pub(crate) fn write_atomic_0600(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| StoreError::Unavailable(format!("the OS random source failed: {e}")))?;
    // Named after the target so backups skip it, random so a stale one never blocks a later write.
    let temp = dir.join(format!("{name}.tmp-{}", hex::encode(suffix)));
    let unavailable = |action: &str, p: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot {action} {}: {e}", p.display()))
    };
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).map_err(|e| unavailable("create", &temp, e))?;
        // The umask only removes bits; set 0600 explicitly in case the file system ignored the mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| unavailable("set the mode of", &temp, e))?;
        }
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| unavailable("write", &temp, e))?;
        std::fs::rename(&temp, path).map_err(|e| unavailable("rename", &temp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        return result;
    }
    // The rename is durable only once the directory entry is on disk.
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| unavailable("sync", dir, e))?;
    Ok(())
}

/// Checks, before a restore touches anything, that the backup's ring (if any) is readable and
/// agrees with the ring already in `data_dir` (if any) on every version both hold.
pub(crate) fn check_restore(backup: &Path, data_dir: &Path) -> StoreResult<()> {
    if let (Some((_, incoming)), Some(local)) =
        (read_ring_file(&SecretRing::path(backup))?, SecretRing::load(data_dir)?)
    {
        local.check_mergeable(&incoming, data_dir, "the backup")?;
    }
    Ok(())
}

/// Brings the backup's ring into `data_dir`: copied byte for byte (mode 0600) when `data_dir` has
/// none, otherwise merged, so a restore never drops a version made after the backup (copies
/// rendered with it still need it to be traced).
pub(crate) fn restore_ring(backup: &Path, data_dir: &Path) -> StoreResult<()> {
    let Some((bytes, incoming)) = read_ring_file(&SecretRing::path(backup))? else {
        return Ok(());
    };
    let _lock = lock(data_dir)?;
    match SecretRing::load(data_dir)? {
        None => write_atomic_0600(&SecretRing::path(data_dir), &bytes),
        Some(mut local) => {
            local.check_mergeable(&incoming, data_dir, "the backup")?;
            if local.merge(incoming, None) {
                local.save(data_dir)?;
            }
            Ok(())
        }
    }
}

/// Copies the ring of `data_dir` into a backup directory byte for byte (mode 0600), after
/// checking it: a backup should not silently carry a corrupt ring.
pub(crate) fn backup_ring(data_dir: &Path, out: &Path) -> StoreResult<()> {
    match read_ring_file(&SecretRing::path(data_dir))? {
        Some((bytes, _)) => write_atomic_0600(&SecretRing::path(out), &bytes),
        None => Ok(()),
    }
}

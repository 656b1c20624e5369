//! The fingerprint secret's lifecycle: created once, refused when unsafe or corrupt, rotated
//! without touching older versions, exported and imported with a passphrase, carried by backups.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use datapact_core::Timestamp;
use datapact_mark::{Channel, ChannelSet};
use datapact_store::ops::{backup_data_dir, restore_data_dir};
use datapact_store::secrets::{SECRETS_FILE, SecretParams, SecretRing};
use datapact_store::{SqliteStore, Store, StoreError};

const PASSPHRASE: &str = "correct horse battery staple";
const T1: Timestamp = Timestamp::from_millis(1_764_000_000_000);
const T2: Timestamp = Timestamp::from_millis(1_764_100_000_000);
const T3: Timestamp = Timestamp::from_millis(1_764_200_000_000);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn file(dir: &Path) -> std::path::PathBuf {
    dir.join(SECRETS_FILE)
}

/// Every file in `dir` (names), to check nothing temporary is left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn created_once_with_mode_0600_and_reloaded_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(SecretRing::load(&data).unwrap().is_none(), "load never creates");
    assert!(!data.exists(), "load never creates the data directory either");

    let first = SecretRing::load_or_create(&data, T1).unwrap();
    assert_eq!(mode(&file(&data)), 0o600);
    assert_eq!(first.current().version(), 1);
    assert_eq!(first.versions().count(), 1);
    assert_eq!(first.created_at(1), Some(T1));
    assert_ne!(first.current().key(), &[0u8; 32], "the key comes from the OS random source");

    // A later start (even at another time) gets the same key, and writes nothing new.
    let bytes = std::fs::read(file(&data)).unwrap();
    let second = SecretRing::load_or_create(&data, T2).unwrap();
    assert_eq!(second, first);
    assert_eq!(second.current().key(), first.current().key());
    assert_eq!(second.created_at(1), Some(T1));
    assert_eq!(std::fs::read(file(&data)).unwrap(), bytes);
    assert_eq!(SecretRing::load(&data).unwrap(), Some(first.clone()));

    // Two data directories get different keys.
    let other = SecretRing::load_or_create(&dir.path().join("other"), T1).unwrap();
    assert_ne!(other.current().key(), first.current().key());

    // No temporary file is left; the key never appears in Debug output.
    assert!(names(&data).iter().all(|name| !name.contains(".tmp")), "{:?}", names(&data));
    let debug = format!("{first:?}");
    assert!(!debug.contains(&hex(first.current().key())), "{debug}");
}

#[test]
fn concurrent_first_starts_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..8).map(|_| scope.spawn(|| *SecretRing::load_or_create(&data, T1).unwrap().current().key())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "every process must render with the same key");
    assert_eq!(SecretRing::load(&data).unwrap().unwrap().current().key(), &keys[0]);
}

#[test]
fn a_file_readable_by_others_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ring = SecretRing::load_or_create(dir.path(), T1).unwrap();
    let bytes = std::fs::read(file(dir.path())).unwrap();
    for bad in [0o644, 0o640, 0o604, 0o400] {
        std::fs::set_permissions(file(dir.path()), std::fs::Permissions::from_mode(bad)).unwrap();
        for result in [SecretRing::load(dir.path()).map(|_| ()), SecretRing::load_or_create(dir.path(), T2).map(|_| ())]
        {
            match result {
                Err(StoreError::Invalid(message)) => {
                    assert!(message.contains(&format!("{bad:04o}")) && message.contains("chmod 600"), "{message}")
                }
                other => panic!("mode {bad:o} must be refused, got {other:?}"),
            }
        }
        assert!(SecretRing::rotate(dir.path(), T2).is_err(), "rotate refuses it too");
    }
    assert_eq!(std::fs::read(file(dir.path())).unwrap(), bytes, "the file was never rewritten");
    std::fs::set_permissions(file(dir.path()), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(SecretRing::load(dir.path()).unwrap(), Some(ring));
}

#[test]
fn a_corrupt_file_is_refused_not_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let ring = SecretRing::load_or_create(dir.path(), T1).unwrap();
    let good = String::from_utf8(std::fs::read(file(dir.path())).unwrap()).unwrap();
    let key_hex = hex(ring.current().key());
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not JSON"),
        (good[..good.len() / 2].to_owned(), "not JSON"),
        (good.replace("\"format\": 1", "\"format\": 2"), "format 2"),
        (good.replace(&key_hex, &key_hex[..62]), "64 hexadecimal digits"),
        (good.replace(&key_hex, &format!("{}zz", &key_hex[..62])), "64 hexadecimal digits"),
        (good.replace("\"accent\"", "\"smoke-signals\""), "unknown channel"),
        (good.replace("\"max_coalition\": 8", "\"max_coalition\": 0"), "max_coalition"),
        (good.replace("\"cutoff_ppm\"", "\"cut_ppm\""), "field"),
        (good.replace("\"version\": 1", "\"version\": 0"), "version 0"),
        (good.replace("datapact-fingerprint-secrets", "something-else"), "kind"),
        // A key in a field of the wrong type must not be echoed in the error.
        (good.replace("\"version\": 1", &format!("\"version\": \"{key_hex}\"")), "wrong type"),
        (r#"{"kind": "datapact-fingerprint-secrets", "format": 1, "versions": []}"#.to_owned(), "no version"),
    ];
    for (content, expected) in cases {
        write_0600(&file(dir.path()), content.as_bytes());
        for result in [SecretRing::load(dir.path()).map(|_| ()), SecretRing::load_or_create(dir.path(), T2).map(|_| ())]
        {
            match result {
                Err(StoreError::Invalid(message)) => {
                    assert!(message.contains("corrupt") && message.contains(expected), "{expected}: {message}");
                    assert!(!message.contains(&key_hex), "an error never quotes a key: {message}");
                }
                other => panic!("{expected}: a corrupt ring must be refused, got {other:?}"),
            }
        }
        assert_eq!(std::fs::read_to_string(file(dir.path())).unwrap(), content, "never regenerated");
    }
}

#[test]
fn versions_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    SecretRing::load_or_create(dir.path(), T1).unwrap();
    SecretRing::rotate(dir.path(), T2).unwrap();
    let text = std::fs::read_to_string(file(dir.path())).unwrap();
    let swapped = text.replacen("\"version\": 1", "\"version\": 9", 1);
    write_0600(&file(dir.path()), swapped.as_bytes());
    let error = SecretRing::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("ascending"), "{error}");
}

#[test]
fn rotate_adds_a_version_and_keeps_older_ones_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        matches!(SecretRing::rotate(dir.path(), T1), Err(StoreError::NotFound(_))),
        "rotating a ring that does not exist is an error (a wrong --data-dir), not two new versions"
    );
    let v1 = SecretRing::load_or_create(dir.path(), T1).unwrap();
    let v1_entry = version_json(dir.path(), 1);

    let rotated = SecretRing::rotate(dir.path(), T2).unwrap();
    assert_eq!(mode(&file(dir.path())), 0o600);
    assert_eq!(rotated.current().version(), 2);
    assert_eq!(rotated.versions().map(|s| s.version()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(rotated.get(1), Some(v1.current()), "version 1 is unchanged");
    assert_ne!(rotated.current().key(), v1.current().key());
    assert_eq!(rotated.created_at(1), Some(T1));
    assert_eq!(rotated.created_at(2), Some(T2));
    assert_eq!(rotated.get(3), None);
    assert_eq!(rotated.created_at(3), None);
    // Same code parameters as the current version unless given.
    assert_eq!(rotated.current().max_coalition(), v1.current().max_coalition());
    assert_eq!(rotated.current().cutoff_ppm(), v1.current().cutoff_ppm());
    assert_eq!(rotated.current().channels(), v1.current().channels());
    assert_eq!(version_json(dir.path(), 1), v1_entry, "version 1's record is byte for byte the same");

    let params = SecretParams {
        max_coalition: Some(4),
        cutoff_ppm: None,
        channels: Some(ChannelSet::DEFAULT.with(Channel::ZeroWidth)),
    };
    let third = SecretRing::rotate_with(dir.path(), T3, params).unwrap();
    assert_eq!(third.current().version(), 3);
    assert_eq!(third.current().max_coalition(), 4);
    assert_eq!(third.current().cutoff_ppm(), datapact_mark::default_cutoff_ppm(4));
    assert!(third.current().channels().contains(Channel::ZeroWidth));
    assert_eq!(third.get(2), rotated.get(2));
    assert_eq!(version_json(dir.path(), 1), v1_entry);
    assert_eq!(SecretRing::load(dir.path()).unwrap(), Some(third.clone()));

    // A parameter kept from a version that changed it carries on.
    let fourth = SecretRing::rotate(dir.path(), T3).unwrap();
    assert_eq!(fourth.current().max_coalition(), 4);
    assert_eq!(fourth.current().channels(), third.current().channels());

    for bad in [
        SecretParams { max_coalition: Some(0), ..Default::default() },
        SecretParams { cutoff_ppm: Some(500_000), ..Default::default() },
        SecretParams { channels: Some(ChannelSet::EMPTY), ..Default::default() },
    ] {
        assert!(matches!(SecretRing::rotate_with(dir.path(), T3, bad), Err(StoreError::Invalid(_))), "{bad:?}");
    }
    assert_eq!(SecretRing::load(dir.path()).unwrap(), Some(fourth), "a refused rotation changes nothing");
}

#[test]
fn export_then_import_into_an_empty_directory_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    SecretRing::load_or_create(&source, T1).unwrap();
    let ring = SecretRing::rotate(&source, T2).unwrap();
    let exported = ring.export(PASSPHRASE).unwrap();
    assert!(exported.starts_with(b"age-encryption.org/v1\n"), "a standard age file");
    assert!(!contains(&exported, hex(ring.current().key()).as_bytes()), "the export is encrypted");
    assert!(!contains(&exported, ring.current().key()), "the export is encrypted");

    let target = dir.path().join("target");
    let imported = SecretRing::import(&target, &exported, PASSPHRASE, T3).unwrap();
    assert_eq!(mode(&file(&target)), 0o600);
    assert_eq!(imported.versions().collect::<Vec<_>>(), ring.versions().collect::<Vec<_>>());
    assert_eq!(imported.current().key(), ring.current().key());
    assert_eq!(imported.created_at(1), Some(T1), "created_at travels with the version");
    assert_eq!(imported.created_at(2), Some(T2));
    assert_eq!(imported.imported_at(2), Some(T3));
    assert_eq!(ring.imported_at(2), None);
    assert_eq!(SecretRing::load(&target).unwrap(), Some(imported.clone()));

    // Importing the same export again changes nothing; the decrypted export is the ring itself.
    assert_eq!(SecretRing::import(&target, &exported, PASSPHRASE, T3).unwrap(), imported);
    assert_eq!(SecretRing::decrypt_export(&exported, PASSPHRASE).unwrap(), ring);

    // A node with version 1 only gets version 2 from a later export, and keeps its own record of 1.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let v1_only = ring_with_versions(&source, &[1]);
    write_0600(&file(&partial), &v1_only);
    let merged = SecretRing::import(&partial, &exported, PASSPHRASE, T3).unwrap();
    assert_eq!(merged.current().version(), 2);
    assert_eq!(merged.imported_at(1), None);
    assert_eq!(merged.imported_at(2), Some(T3));
}

#[test]
fn a_wrong_passphrase_or_a_wrong_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ring = SecretRing::load_or_create(&dir.path().join("source"), T1).unwrap();
    let exported = ring.export(PASSPHRASE).unwrap();
    let target = dir.path().join("target");

    match SecretRing::import(&target, &exported, "not the passphrase at all", T2) {
        Err(StoreError::Invalid(message)) => assert!(message.contains("wrong passphrase"), "{message}"),
        other => panic!("a wrong passphrase must be refused, got {other:?}"),
    }
    assert!(!file(&target).exists(), "a refused import writes nothing");
    assert!(matches!(SecretRing::import(&target, &exported, "", T2), Err(StoreError::Invalid(_))));

    let mut tampered = exported.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(SecretRing::import(&target, &tampered, PASSPHRASE, T2), Err(StoreError::Invalid(_))));
    match SecretRing::import(&target, b"{\"format\": 1}", PASSPHRASE, T2) {
        Err(StoreError::Invalid(message)) => assert!(message.contains("not an age file"), "{message}"),
        other => panic!("a file that is not an export must be refused, got {other:?}"),
    }
    // Another age file encrypted to the right passphrase, but not a ring.
    let other =
        age::encrypt(&age::scrypt::Recipient::new(age::secrecy::SecretString::from(PASSPHRASE.to_owned())), b"hello")
            .unwrap();
    match SecretRing::import(&target, &other, PASSPHRASE, T2) {
        Err(StoreError::Invalid(message)) => assert!(message.contains("not a fingerprint secret export"), "{message}"),
        other => panic!("an age file that is not a ring must be refused, got {other:?}"),
    }
    assert!(!file(&target).exists());

    for short in ["", "eleven char"] {
        assert!(matches!(ring.export(short), Err(StoreError::Invalid(_))), "{short:?} is too short for an export");
    }
    assert!(ring.export("twelve chars").is_ok());
}

#[test]
fn importing_a_different_key_for_a_known_version_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = SecretRing::load_or_create(&dir.path().join("theirs"), T1).unwrap();
    let ours_dir = dir.path().join("ours");
    let ours = SecretRing::load_or_create(&ours_dir, T1).unwrap();
    let bytes = std::fs::read(file(&ours_dir)).unwrap();
    match SecretRing::import(&ours_dir, &theirs.export(PASSPHRASE).unwrap(), PASSPHRASE, T2) {
        Err(StoreError::Conflict(message)) => assert!(message.contains("version 1"), "{message}"),
        other => panic!("a different key for version 1 must be a conflict, got {other:?}"),
    }
    assert_eq!(std::fs::read(file(&ours_dir)).unwrap(), bytes, "the local key is never overwritten");
    assert_eq!(SecretRing::load(&ours_dir).unwrap(), Some(ours));
}

#[tokio::test]
async fn backup_and_restore_carry_the_ring_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).unwrap();
    SecretRing::load_or_create(&data, T1).unwrap();
    let ring = SecretRing::rotate(&data, T2).unwrap();
    let bytes = std::fs::read(file(&data)).unwrap();

    let out = dir.path().join("backup");
    backup_data_dir(&store, &data, &out).await.unwrap();
    assert_eq!(std::fs::read(file(&out)).unwrap(), bytes, "copied byte for byte");
    assert_eq!(mode(&file(&out)), 0o600);
    assert!(names(&out).iter().all(|name| !name.ends_with(".lock") && !name.contains(".tmp")), "{:?}", names(&out));

    let restored = dir.path().join("restored");
    restore_data_dir(&out, &restored, false).unwrap();
    assert_eq!(std::fs::read(file(&restored)).unwrap(), bytes);
    assert_eq!(mode(&file(&restored)), 0o600);
    assert_eq!(SecretRing::load(&restored).unwrap(), Some(ring.clone()));

    // Restoring an older backup over a ring rotated since keeps the newer version.
    let newer = SecretRing::rotate(&restored, T3).unwrap();
    restore_data_dir(&out, &restored, true).unwrap();
    assert_eq!(SecretRing::load(&restored).unwrap(), Some(newer));

    // A backup whose version 1 differs from the local one is refused before anything is replaced.
    let elsewhere = dir.path().join("elsewhere");
    // Its store holds a licensee the backup does not: still there afterwards means not replaced.
    // (Compared by content, not bytes: SQLite may checkpoint its WAL into the file at any close.)
    let store_elsewhere = SqliteStore::open(&elsewhere).unwrap();
    store_elsewhere.create_licensee("only-elsewhere", &datapact_store::Change::new("test", T1)).await.unwrap();
    drop(store_elsewhere);
    let foreign = SecretRing::load_or_create(&elsewhere, T1).unwrap();
    match restore_data_dir(&out, &elsewhere, true) {
        Err(StoreError::Conflict(message)) => assert!(message.contains("version 1"), "{message}"),
        other => panic!("a restore must never replace a fingerprint key, got {other:?}"),
    }
    assert_eq!(SecretRing::load(&elsewhere).unwrap(), Some(foreign));
    let kept = SqliteStore::open(&elsewhere).unwrap();
    assert!(kept.licensee("only-elsewhere").await.unwrap().is_some(), "nothing replaced");
    drop(kept);

    // A corrupt ring makes the backup fail rather than carry it silently.
    write_0600(&file(&data), b"{");
    let error = backup_data_dir(&store, &data, &dir.path().join("backup2")).await.unwrap_err();
    assert!(error.to_string().contains("corrupt"), "{error}");
}

#[tokio::test]
async fn backup_without_a_ring_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).unwrap();
    let out = dir.path().join("backup");
    backup_data_dir(&store, &data, &out).await.unwrap();
    assert!(!file(&out).exists());
    let restored = dir.path().join("restored");
    restore_data_dir(&out, &restored, false).unwrap();
    assert!(SecretRing::load(&restored).unwrap().is_none());
}

fn write_0600(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The JSON text of one version's record in `dir`'s ring file.
fn version_json(dir: &Path, version: u64) -> String {
    let document: serde_json::Value = serde_json::from_slice(&std::fs::read(file(dir)).unwrap()).unwrap();
    let entry = document["versions"].as_array().unwrap().iter().find(|v| v["version"] == version).unwrap();
    entry.to_string()
}

/// `dir`'s ring file with only the given versions.
fn ring_with_versions(dir: &Path, versions: &[u64]) -> Vec<u8> {
    let mut document: serde_json::Value = serde_json::from_slice(&std::fs::read(file(dir)).unwrap()).unwrap();
    document["versions"].as_array_mut().unwrap().retain(|v| versions.contains(&v["version"].as_u64().unwrap()));
    serde_json::to_vec(&document).unwrap()
}

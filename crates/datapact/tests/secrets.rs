//! `datapact secret` and the fingerprint secret's place in `serve`, `backup` and `restore`,
//! through the real binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, Gateway};

const SECRETS_FILE: &str = "fingerprint-secrets.json";
const PASSPHRASE: &str = "a passphrase long enough for exports";

/// Runs `datapact --data-dir DIR ARGS` with `env` set and the passphrase variable otherwise unset
/// (standard input is not a terminal, so nothing prompts).
fn run(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("--data-dir").arg(data_dir).args(args).env_remove("DATAPACT_SECRET_PASSPHRASE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run datapact")
}

fn ok(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run(data_dir, args, env);
    assert!(
        output.status.success(),
        "datapact {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap() + &String::from_utf8_lossy(&output.stderr)
}

/// The stderr of a command that must fail with status 1.
fn fails(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run(data_dir, args, env);
    assert_eq!(
        output.status.code(),
        Some(1),
        "datapact {args:?} must fail:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr).unwrap()
}

fn with_passphrase(passphrase: &str) -> [(&str, &str); 1] {
    [("DATAPACT_SECRET_PASSPHRASE", passphrase)]
}

fn ring_file(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRETS_FILE)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// (version, key hex) of every version in the ring file.
fn keys(data_dir: &Path) -> Vec<(u64, String)> {
    let document: serde_json::Value = serde_json::from_slice(&std::fs::read(ring_file(data_dir)).unwrap()).unwrap();
    document["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["key"].as_str().unwrap().to_owned()))
        .collect()
}

fn list_json(data_dir: &Path) -> Vec<serde_json::Value> {
    let text = ok(data_dir, &["secret", "list", "--json"], &[]);
    let start = text.find('[').unwrap();
    let end = text.rfind(']').unwrap();
    serde_json::from_str::<Vec<serde_json::Value>>(&text[start..=end]).unwrap()
}

/// A data directory whose ring was created by the gateway's first start.
fn served_data_dir(dir: &tempfile::TempDir) -> PathBuf {
    let data = dir.path().join("data");
    Gateway::start(&data, &[]).stop();
    data
}

#[test]
fn serve_creates_the_secret_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fails(&data, &["secret", "list"], &[]).contains("no fingerprint secret"));

    let gateway = Gateway::start(&data, &[]);
    // The ring exists while the gateway runs (it is made before the gateway listens).
    assert_eq!(mode(&ring_file(&data)), 0o600);
    let first = std::fs::read(ring_file(&data)).unwrap();
    gateway.stop();
    assert_eq!(keys(&data).len(), 1);

    // A second start reuses it.
    Gateway::start(&data, &[]).stop();
    assert_eq!(std::fs::read(ring_file(&data)).unwrap(), first);

    // A ring others can read stops the gateway from starting, rather than being replaced.
    std::fs::set_permissions(ring_file(&data), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("DATAPACT_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0644") && stderr.contains("chmod 600"), "{stderr}");
    assert_eq!(std::fs::read(ring_file(&data)).unwrap(), first);
}

#[test]
fn rotate_and_list_never_show_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = served_data_dir(&dir);
    let before = keys(&data);

    let rotated = ok(&data, &["secret", "rotate"], &[]);
    assert!(rotated.contains("version 2"), "{rotated}");
    let after = keys(&data);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], before[0], "version 1 keeps its key");
    assert_ne!(after[1].1, after[0].1);
    assert_eq!(mode(&ring_file(&data)), 0o600);

    let changed = ok(&data, &["secret", "rotate", "--max-coalition", "4", "--channels", "apostrophe,accent"], &[]);
    assert!(changed.contains("version 3"), "{changed}");

    let listed = list_json(&data);
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().map(|v| v["version"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(listed.iter().map(|v| v["current"].as_bool().unwrap()).collect::<Vec<_>>(), [false, false, true]);
    assert_eq!(listed[0]["max_coalition"], 8);
    assert_eq!(listed[2]["max_coalition"], 4);
    assert_eq!(listed[2]["channels"], serde_json::json!(["apostrophe", "accent"]));
    assert!(listed[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let text = ok(&data, &["secret", "list"], &[]);
    assert!(text.contains("VERSION") && text.contains("(current)"), "{text}");
    for (_, key) in keys(&data) {
        assert!(!text.contains(&key) && !serde_json::to_string(&listed).unwrap().contains(&key), "a key was printed");
        assert!(!rotated.contains(&key) && !changed.contains(&key), "a key was printed");
    }

    assert!(fails(&data, &["secret", "rotate", "--channels", "smoke"], &[]).contains("unknown channel"));
    assert!(fails(&data, &["secret", "rotate", "--max-coalition", "0"], &[]).contains("at least 1"));
    assert_eq!(keys(&data).len(), 3, "refused rotations add nothing");
    let empty = dir.path().join("empty");
    assert!(fails(&empty, &["secret", "rotate"], &[]).contains("no fingerprint secret"));
}

#[test]
fn export_and_import_round_trip_with_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let data = served_data_dir(&dir);
    ok(&data, &["secret", "rotate"], &[]);
    let export = dir.path().join("secrets.age");
    let exported = ok(&data, &["secret", "export", "--out", export.to_str().unwrap()], &with_passphrase(PASSPHRASE));
    assert!(exported.contains("2 versions"), "{exported}");
    assert_eq!(mode(&export), 0o600);
    let bytes = std::fs::read(&export).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> scrypt "), "a standard age file with a passphrase");
    for (_, key) in keys(&data) {
        assert!(!String::from_utf8_lossy(&bytes).contains(&key), "the export is encrypted");
    }

    // An export never overwrites a file.
    let again = fails(&data, &["secret", "export", "--out", export.to_str().unwrap()], &with_passphrase(PASSPHRASE));
    assert!(again.contains("exists"), "{again}");
    assert_eq!(std::fs::read(&export).unwrap(), bytes);

    let fresh = dir.path().join("fresh");
    let imported = ok(&fresh, &["secret", "import", export.to_str().unwrap()], &with_passphrase(PASSPHRASE));
    assert!(imported.contains("1, 2") && imported.contains("current version is now 2"), "{imported}");
    assert_eq!(keys(&fresh), keys(&data));
    assert_eq!(mode(&ring_file(&fresh)), 0o600);
    let listed = list_json(&fresh);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["created_at"], list_json(&data)[1]["created_at"], "created_at travels with the version");
    assert!(listed[1]["imported_at"].is_string());

    let twice = ok(&fresh, &["secret", "import", export.to_str().unwrap()], &with_passphrase(PASSPHRASE));
    assert!(twice.contains("nothing to import"), "{twice}");

    // Another variable, by name.
    let other = dir.path().join("other");
    ok(
        &other,
        &["secret", "import", export.to_str().unwrap(), "--passphrase-env", "MY_PASS"],
        &[("MY_PASS", PASSPHRASE)],
    );
    assert_eq!(keys(&other), keys(&data));
}

#[test]
fn bad_passphrases_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = served_data_dir(&dir);
    let export = dir.path().join("secrets.age");
    let out = export.to_str().unwrap();

    let short = fails(&data, &["secret", "export", "--out", out], &with_passphrase("only11chars"));
    assert!(short.contains("too short") && short.contains("12"), "{short}");
    let empty = fails(&data, &["secret", "export", "--out", out], &with_passphrase(""));
    assert!(empty.contains("empty"), "{empty}");
    let missing = fails(&data, &["secret", "export", "--out", out], &[]);
    assert!(missing.contains("DATAPACT_SECRET_PASSPHRASE"), "{missing}");
    let missing_named = fails(&data, &["secret", "export", "--out", out, "--passphrase-env", "NOPE_VAR"], &[]);
    assert!(missing_named.contains("NOPE_VAR"), "{missing_named}");
    assert!(!export.exists(), "a refused export writes nothing");

    ok(&data, &["secret", "export", "--out", out], &with_passphrase(PASSPHRASE));
    let fresh = dir.path().join("fresh");
    let wrong = fails(&fresh, &["secret", "import", out], &with_passphrase("not the right passphrase"));
    assert!(wrong.contains("wrong passphrase"), "{wrong}");
    assert!(fails(&fresh, &["secret", "import", out], &with_passphrase("")).contains("empty"));
    assert!(!ring_file(&fresh).exists(), "a refused import writes nothing");

    let not_export = dir.path().join("not-an-export.txt");
    std::fs::write(&not_export, "hello").unwrap();
    let refused = fails(&fresh, &["secret", "import", not_export.to_str().unwrap()], &with_passphrase(PASSPHRASE));
    assert!(refused.contains("not a fingerprint secret export"), "{refused}");

    // Another data directory made its own version 1: importing ours there is a conflict.
    let elsewhere_dir = tempfile::tempdir_in(dir.path()).unwrap();
    let elsewhere = served_data_dir(&elsewhere_dir);
    let theirs = keys(&elsewhere);
    let conflict = fails(&elsewhere, &["secret", "import", out], &with_passphrase(PASSPHRASE));
    assert!(conflict.contains("version 1") && conflict.contains("differs"), "{conflict}");
    assert_eq!(keys(&elsewhere), theirs, "the local key is never overwritten");
}

#[test]
fn backup_and_restore_carry_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = served_data_dir(&dir);
    ok(&data, &["secret", "rotate"], &[]);
    let bytes = std::fs::read(ring_file(&data)).unwrap();

    let backup = dir.path().join("backup");
    ok(&data, &["backup", backup.to_str().unwrap()], &[]);
    assert_eq!(std::fs::read(ring_file(&backup)).unwrap(), bytes);
    assert_eq!(mode(&ring_file(&backup)), 0o600);

    let restored = dir.path().join("restored");
    ok(&restored, &["restore", backup.to_str().unwrap()], &[]);
    assert_eq!(std::fs::read(ring_file(&restored)).unwrap(), bytes);
    assert_eq!(mode(&ring_file(&restored)), 0o600);
    assert_eq!(list_json(&restored).len(), 2);
    // The restored gateway renders with the same current version.
    Gateway::start(&restored, &[]).stop();
    assert_eq!(std::fs::read(ring_file(&restored)).unwrap(), bytes);
}

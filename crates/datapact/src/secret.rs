//! `datapact secret`: the fingerprint secret's versions, rotation, and encrypted export/import.
//!
//! Keys are never printed: `list` shows versions and code parameters, `export` writes only the
//! encrypted file.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use datapact_core::Timestamp;
use datapact_mark::{Channel, ChannelSet};
use datapact_store::secrets::{MIN_EXPORT_PASSPHRASE_CHARS, SecretParams, SecretRing};

use crate::cli::{PassphraseArgs, SecretCommand};

/// The largest file `import` reads: an export of even thousands of versions is far smaller.
const MAX_EXPORT_BYTES: u64 = 64 << 20;

pub fn run(command: SecretCommand, data_dir: &Path, now: Timestamp) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::List { json } => list(data_dir, json),
        SecretCommand::Rotate { max_coalition, channels } => rotate(data_dir, now, max_coalition, channels),
        SecretCommand::Export { out, passphrase } => export(data_dir, &out, &passphrase),
        SecretCommand::Import { file, passphrase } => import(data_dir, &file, &passphrase, now),
    }
}

/// The ring, or an error that says where it was looked for and how it comes to exist.
fn existing_ring(data_dir: &Path) -> anyhow::Result<SecretRing> {
    match SecretRing::load(data_dir)? {
        Some(ring) => Ok(ring),
        None => bail!(
            "there is no fingerprint secret in {} (wrong --data-dir?); `datapact serve` creates it on first start, \
             and `datapact secret import FILE` brings one from an export",
            data_dir.display()
        ),
    }
}

fn list(data_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let ring = existing_ring(data_dir)?;
    let current = ring.current().version();
    if json {
        let versions: Vec<serde_json::Value> = ring
            .versions()
            .map(|secret| {
                serde_json::json!({
                    "version": secret.version(),
                    "current": secret.version() == current,
                    "created_at": ring.created_at(secret.version()),
                    "imported_at": ring.imported_at(secret.version()),
                    "max_coalition": secret.max_coalition(),
                    "cutoff_ppm": secret.cutoff_ppm(),
                    "channels": channel_names(secret.channels()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>7}  {:<25} {:>13} {:>10}  CHANNELS", "VERSION", "CREATED", "MAX_COALITION", "CUTOFF_PPM");
    for secret in ring.versions() {
        let created = ring.created_at(secret.version()).map(|t| t.to_string()).unwrap_or_default();
        let marker = if secret.version() == current { "  (current)" } else { "" };
        println!(
            "{:>7}  {created:<25} {:>13} {:>10}  {}{marker}",
            secret.version(),
            secret.max_coalition(),
            secret.cutoff_ppm(),
            channel_names(secret.channels()).join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate(
    data_dir: &Path,
    now: Timestamp,
    max_coalition: Option<u32>,
    channels: Option<Vec<String>>,
) -> anyhow::Result<ExitCode> {
    if max_coalition == Some(0) {
        bail!("--max-coalition must be at least 1");
    }
    let channels = channels.map(|names| parse_channels(&names)).transpose()?;
    let params = SecretParams { max_coalition, cutoff_ppm: None, channels };
    let ring = SecretRing::rotate_with(data_dir, now, params)?;
    let current = ring.current();
    println!(
        "rotated the fingerprint secret to version {} (max coalition {}, channels {}); all {} versions are kept to \
         trace older copies. Restart running gateways to render new copies with it, and export it again for backup",
        current.version(),
        current.max_coalition(),
        channel_names(current.channels()).join(","),
        ring.versions().count()
    );
    Ok(ExitCode::SUCCESS)
}

fn export(data_dir: &Path, out: &Path, args: &PassphraseArgs) -> anyhow::Result<ExitCode> {
    let ring = existing_ring(data_dir)?;
    // Checked before asking for a passphrase, so nobody types one twice for nothing.
    if out.exists() {
        bail!("{} exists; an export never overwrites a file: choose a new path", out.display());
    }
    let passphrase = passphrase(args, true)?;
    let encrypted = ring.export(&passphrase)?;
    write_new_0600(out, &encrypted)?;
    eprintln!(
        "exported {} versions of the fingerprint secret to {} (an age file: `datapact secret import` or `age -d` \
         reads it with the passphrase). Keep the passphrase apart from the file",
        ring.versions().count(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn import(data_dir: &Path, file: &Path, args: &PassphraseArgs, now: Timestamp) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    if size > MAX_EXPORT_BYTES {
        bail!(
            "{} is {size} bytes, far larger than any export; give a file written by `datapact secret export`",
            file.display()
        );
    }
    let encrypted = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let before: Vec<u32> =
        SecretRing::load(data_dir)?.map(|ring| ring.versions().map(|s| s.version()).collect()).unwrap_or_default();
    let passphrase = passphrase(args, false)?;
    let ring = SecretRing::import(data_dir, &encrypted, &passphrase, now).with_context(|| {
        format!("cannot import {} (the passphrase came from {} or the prompt)", file.display(), args.passphrase_env)
    })?;
    let added: Vec<String> =
        ring.versions().map(|s| s.version()).filter(|v| !before.contains(v)).map(|v| v.to_string()).collect();
    if added.is_empty() {
        println!("nothing to import: every version in {} is already in {}", file.display(), data_dir.display());
    } else {
        println!(
            "imported version(s) {} from {}; the current version is now {} (restart running gateways to render with \
             it)",
            added.join(", "),
            file.display(),
            ring.current().version()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The passphrase from the named environment variable, or from a no-echo prompt when the variable
/// is unset and standard input is a terminal (asked twice when `confirm`, for exports).
fn passphrase(args: &PassphraseArgs, confirm: bool) -> anyhow::Result<String> {
    let var = &args.passphrase_env;
    let passphrase = match std::env::var(var) {
        Ok(value) => value,
        Err(std::env::VarError::NotUnicode(_)) => bail!("{var} is not valid UTF-8; set it to the passphrase as text"),
        Err(std::env::VarError::NotPresent) => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "no passphrase: set {var} (or name another variable with --passphrase-env), or run the command \
                     in a terminal to be asked for it"
                );
            }
            let first = rpassword::prompt_password("Passphrase for the fingerprint secret export: ")
                .context("cannot read the passphrase from the terminal")?;
            if confirm && !first.is_empty() {
                let second = rpassword::prompt_password("Repeat it: ")
                    .context("cannot read the passphrase from the terminal")?;
                if first != second {
                    bail!("the two passphrases differ; run the command again");
                }
            }
            first
        }
    };
    if passphrase.is_empty() {
        bail!("the passphrase is empty; set {var} to a passphrase (or type one at the prompt)");
    }
    if confirm && passphrase.chars().count() < MIN_EXPORT_PASSPHRASE_CHARS {
        bail!(
            "the passphrase is too short: an export holds every fingerprint key, so use at least \
             {MIN_EXPORT_PASSPHRASE_CHARS} characters (a few random words)"
        );
    }
    Ok(passphrase)
}

fn parse_channels(names: &[String]) -> anyhow::Result<ChannelSet> {
    let mut set = ChannelSet::EMPTY;
    for name in names {
        let name = name.trim();
        let Some(channel) = Channel::ALL.into_iter().find(|channel| channel.name() == name) else {
            let known: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
            bail!("--channels: unknown channel {name:?}; the channels are {}", known.join(", "));
        };
        set = set.with(channel);
    }
    if set == ChannelSet::EMPTY {
        bail!("--channels: name at least one channel");
    }
    Ok(set)
}

fn channel_names(channels: ChannelSet) -> Vec<&'static str> {
    channels.iter().map(Channel::name).collect()
}

/// Writes a new file with mode 0600 from the start; a failed write leaves no partial file.
fn write_new_0600(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    if let Err(error) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = std::fs::remove_file(path);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

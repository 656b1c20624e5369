//! Operations built on the [`Store`] trait that the CLI and the admin API share.

use datapact_core::ingest::{self, IngestRecord};
use datapact_core::key::KEY_RANDOM_BYTES;
use datapact_core::{ApiKey, KeyRecord, Timestamp};

use std::path::Path;

use crate::ledger::LEDGER_FILE;
use crate::{Change, IngestCounts, IngestEffect, SQLITE_FILE, Store, StoreError, StoreResult};

/// Records per store transaction while ingesting: large enough to amortise the commit and the
/// rewrite of index pages it touches, small enough that a rejected line's report is never far behind.
pub const INGEST_BATCH: usize = 10_000;

/// Issues a new key for `licensee` from the OS random source. The secret is returned once and
/// only its hash is stored.
pub async fn issue_key(
    store: &dyn Store,
    licensee: &str,
    purpose: &str,
    expires_at: Option<Timestamp>,
    change: &Change,
) -> StoreResult<(ApiKey, KeyRecord)> {
    if let Some(expiry) = expires_at.filter(|expiry| *expiry <= change.at) {
        return Err(StoreError::Invalid(format!("the expiry {expiry} is in the past")));
    }
    // A prefix collision (48 random bits) is astronomically rare; retry rather than fail.
    for _ in 0..3 {
        let mut bytes = [0u8; KEY_RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Unavailable(format!("OS random source failed: {e}")))?;
        let key = ApiKey::from_random_bytes(bytes);
        match store.insert_key(licensee, &key.prefix(), key.hash(), purpose, expires_at, change).await {
            Ok(record) => return Ok((key, record)),
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Unavailable("could not mint a unique key".into()))
}

/// A line that was not imported, with why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineRejection {
    /// 1-based line number in its input.
    pub line: u64,
    pub reason: String,
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// One input line and what parsing made of it (`None`: a blank line, skipped).
pub struct ParsedLine {
    pub number: u64,
    pub raw: Vec<u8>,
    pub parsed: Option<Result<IngestRecord, String>>,
}

impl ParsedLine {
    pub fn parse(number: u64, line: &[u8]) -> Self {
        let parsed = (!ingest::is_blank(line)).then(|| ingest::parse_line(line).map_err(|rejection| rejection.0));
        ParsedLine { number, raw: line.to_vec(), parsed }
    }
}

/// Feeds ingest lines to a store in batches, collecting counts and rejections.
pub struct IngestBatcher<'a> {
    store: &'a dyn Store,
    pending: Vec<IngestRecord>,
    /// Line number and raw bytes of each pending record, to report a refusal.
    pending_lines: Vec<(u64, Vec<u8>)>,
    counts: IngestCounts,
    /// Lines of the current batch that failed to parse; reported with the batch, in line order.
    pending_rejections: Vec<LineRejection>,
    rejected: Vec<LineRejection>,
    lines: u64,
}

impl<'a> IngestBatcher<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        IngestBatcher {
            store,
            pending: Vec::with_capacity(INGEST_BATCH),
            pending_lines: Vec::with_capacity(INGEST_BATCH),
            counts: IngestCounts::default(),
            pending_rejections: Vec::new(),
            rejected: Vec::new(),
            lines: 0,
        }
    }

    /// Takes one line (without its terminator); writes to the store once a batch is full.
    pub async fn push(&mut self, line_number: u64, line: &[u8], now: Timestamp) -> StoreResult<()> {
        self.push_parsed(ParsedLine::parse(line_number, line), now).await
    }

    /// Takes a line parsed elsewhere (e.g. on a reader thread, so parsing overlaps writing).
    pub async fn push_parsed(&mut self, line: ParsedLine, now: Timestamp) -> StoreResult<()> {
        self.lines += 1;
        match line.parsed {
            None => return Ok(()),
            Some(Ok(record)) => {
                self.pending.push(record);
                self.pending_lines.push((line.number, line.raw));
            }
            Some(Err(reason)) => {
                self.counts.refused += 1;
                self.pending_rejections.push(LineRejection { line: line.number, reason, raw: line.raw });
            }
        }
        if self.pending.len() >= INGEST_BATCH {
            self.flush(now).await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self, now: Timestamp) -> StoreResult<()> {
        let first_new = self.rejected.len();
        self.rejected.append(&mut self.pending_rejections);
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let lines = std::mem::take(&mut self.pending_lines);
        let effects = self.store.ingest(records, now).await?;
        assert_eq!(effects.len(), lines.len(), "the store answers every record");
        for ((line, raw), effect) in lines.into_iter().zip(effects) {
            self.counts.add(&effect);
            if let IngestEffect::Refused(reason) = effect {
                self.rejected.push(LineRejection { line, reason, raw });
            }
        }
        self.rejected[first_new..].sort_by_key(|rejection| rejection.line);
        Ok(())
    }

    /// Rejections of flushed batches since the last call, in line order (so a caller can stream
    /// them to a file).
    pub fn take_rejections(&mut self) -> Vec<LineRejection> {
        std::mem::take(&mut self.rejected)
    }

    pub fn counts(&self) -> IngestCounts {
        self.counts
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }
}

/// Copies a whole data directory to `out` (a new directory) while the store stays in use: the
/// database and the ledger through SQLite's online backup API, every other file (admin token,
/// secrets) as is.
pub async fn backup_data_dir(store: &dyn Store, data_dir: &Path, out: &Path) -> StoreResult<()> {
    if out.exists() && std::fs::read_dir(out).map(|mut entries| entries.next().is_some()).unwrap_or(true) {
        return Err(StoreError::Conflict(format!("{} exists and is not empty; choose a new directory", out.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| io_error("create", out, e))?;
    store.backup_to(&out.join(SQLITE_FILE)).await?;
    let ledger = data_dir.join(LEDGER_FILE);
    if ledger.is_file() {
        let target = out.join(LEDGER_FILE);
        tokio::task::spawn_blocking(move || backup_sqlite_file(&ledger, &target))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the ledger backup failed: {e}")))??;
    }
    copy_side_files(data_dir, out)?;
    crate::secrets::backup_ring(data_dir, out)
}

/// A consistent copy of a live SQLite database (WAL included) through the online backup API.
fn backup_sqlite_file(source: &Path, target: &Path) -> StoreResult<()> {
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable(format!("cannot back up {}: {e}", source.display()));
    let from = rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(unavailable)?;
    let mut to = rusqlite::Connection::open(target).map_err(unavailable)?;
    rusqlite::backup::Backup::new(&from, &mut to)
        .and_then(|backup| backup.run_to_completion(1024, std::time::Duration::ZERO, None))
        .map_err(unavailable)?;
    to.execute_batch("PRAGMA journal_mode = WAL;").map_err(unavailable)?;
    Ok(())
}

/// Restores a backup made by [`backup_data_dir`] into `data_dir`, which must not hold a store
/// unless `force` is set. The gateway must not be running on `data_dir`.
pub fn restore_data_dir(backup: &Path, data_dir: &Path, force: bool) -> StoreResult<()> {
    let source_db = backup.join(SQLITE_FILE);
    if !source_db.is_file() {
        return Err(StoreError::NotFound(format!("{} is not a datapact backup (no {SQLITE_FILE})", backup.display())));
    }
    let target_db = data_dir.join(SQLITE_FILE);
    if target_db.exists() && !force {
        return Err(StoreError::Conflict(format!(
            "{} already holds a store; pass --force to replace it (stop the gateway first)",
            data_dir.display()
        )));
    }
    // Before anything is replaced: a restore that would change a fingerprint key is refused whole.
    crate::secrets::check_restore(backup, data_dir)?;
    std::fs::create_dir_all(data_dir).map_err(|e| io_error("create", data_dir, e))?;
    for file in [SQLITE_FILE, LEDGER_FILE] {
        let source = backup.join(file);
        // A backup from before the ledger existed restores without one (the gateway creates it).
        if file == LEDGER_FILE && !source.is_file() {
            continue;
        }
        for suffix in ["-wal", "-shm"] {
            let stale = data_dir.join(format!("{file}{suffix}"));
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| io_error("remove", &stale, e))?;
            }
        }
        let staging = data_dir.join(format!("{file}.restoring"));
        std::fs::copy(&source, &staging).map_err(|e| io_error("copy", &source, e))?;
        std::fs::rename(&staging, data_dir.join(file)).map_err(|e| io_error("rename", &staging, e))?;
    }
    copy_side_files(backup, data_dir)?;
    crate::secrets::restore_ring(backup, data_dir)
}

fn copy_side_files(from: &Path, to: &Path) -> StoreResult<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("read", from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error("read", from, e))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        let ledger = name_text.starts_with(LEDGER_FILE) || name_text == crate::ledger::LEDGER_LOCK;
        // The fingerprint secret (with its lock and temporary files) is copied by `secrets`,
        // checked, atomically and with mode 0600.
        let secrets = name_text.starts_with(crate::secrets::SECRETS_FILE);
        if name_text.starts_with(SQLITE_FILE) || ledger || secrets || !entry.path().is_file() {
            continue;
        }
        let target = to.join(&name);
        std::fs::copy(entry.path(), &target).map_err(|e| io_error("copy", &entry.path(), e))?;
    }
    Ok(())
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot {action} {}: {error}", path.display()))
}

/// Marks (or unmarks) the author with `username` as opting out of `purpose`; the CLI and the admin
/// API both go through here.
pub async fn set_opt_out_by_username(
    store: &dyn Store,
    username: &str,
    purpose: &str,
    opted_out: bool,
    change: &Change,
) -> StoreResult<crate::UserRecord> {
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no author with username {username:?}")))?;
    store.set_opt_out(user.author.id, purpose, opted_out, change).await?;
    Ok(user)
}

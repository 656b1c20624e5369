//! Whether any change to posts has been committed since a given moment, answered without a query.
//!
//! Every process that opens the embedded store maps the same 16-byte file beside it
//! (`datapact.db-changes`): two counters, `started` and `finished`. A writer of posts (the only
//! path is [`crate::Store::ingest`]) holds a shared `flock` on the file while it adds one to
//! `started`, commits its transaction, and adds one to `finished`. So when a reader sees the
//! two equal, no change to posts is being written, and every change begun so far has committed
//! (or rolled back): the value names the store's posts as they are. A gateway's feed reads the
//! stamp before it polls the store, and afterwards knows its memory reflects every post change
//! up to that stamp; a request that then reads the same stamp knows nothing has changed since
//! (see `datapact_gateway::freshness`). Reading it is two atomic loads, where the alternative,
//! [`crate::Store::feed_watermark`], is a read transaction with file locks.
//!
//! A writer that dies between its two steps leaves `started` ahead, and every reader falls back
//! to the query. [`ChangeStamp::repair`] closes the gap, but only while it holds the lock
//! exclusively, that is, while no live process is between its two steps.
//!
//! Writes that bypass datapact (a `sqlite3` shell editing posts) do not move the stamp; such
//! edits reach gateways at their next feed poll, as they did before this stamp existed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

use crate::shared::unavailable;
use crate::{StoreError, StoreResult};

/// The file's size: two little-endian `u64` counters.
const LEN: u64 = 16;

pub(crate) struct ChangeStamp {
    path: PathBuf,
    /// Held open for the writer's shared lock.
    file: File,
    map: MmapMut,
}

impl ChangeStamp {
    /// Opens (creating it if needed) the stamp file of the database at `db_path`.
    pub(crate) fn open(db_path: &Path) -> StoreResult<Self> {
        let mut name = db_path.as_os_str().to_owned();
        name.push("-changes");
        let path = PathBuf::from(name);
        let file = open(&path)?;
        // Zero-filled when created; extending a file another process already extended is a no-op.
        if file.metadata().map_err(|e| cannot(&path, e))?.len() < LEN {
            file.set_len(LEN).map_err(|e| cannot(&path, e))?;
        }
        // SAFETY: the mapping is only ever accessed through the two aligned `AtomicU64`s below
        // (page-aligned, 16 bytes long, never truncated by datapact), so concurrent writers in
        // other processes are atomic accesses to the same memory, not a data race.
        let map =
            unsafe { memmap2::MmapOptions::new().len(LEN as usize).map_mut(&file) }.map_err(|e| cannot(&path, e))?;
        Ok(ChangeStamp { path, file, map })
    }

    fn counter(&self, index: usize) -> &AtomicU64 {
        let bytes = &self.map[index * 8..index * 8 + 8];
        // SAFETY: in bounds (checked by the slice), 8-byte aligned (the map is page-aligned), and
        // every access to these bytes, in any process, goes through this atomic view.
        unsafe { &*(bytes.as_ptr() as *const AtomicU64) }
    }

    fn started(&self) -> &AtomicU64 {
        self.counter(0)
    }

    fn finished(&self) -> &AtomicU64 {
        self.counter(1)
    }

    /// `Some(changes finished)` when no change to posts is in progress in any process, `None`
    /// when one is (or a writer died in one and [`ChangeStamp::repair`] has not run yet).
    pub(crate) fn read(&self) -> Option<u64> {
        // `finished` first: equal to a later `started` means it did not move in between either.
        let finished = self.finished().load(Ordering::SeqCst);
        let started = self.started().load(Ordering::SeqCst);
        (started == finished).then_some(finished)
    }

    /// Marks a change to posts as begun; dropping the guard marks it finished (whether its
    /// transaction committed or not). Callers must not hold two at once in one process (the
    /// store's writer lock sees to it): one open file holds one `flock`.
    pub(crate) fn begin(&self) -> StoreResult<ChangeGuard<'_>> {
        self.file.lock_shared().map_err(|e| cannot(&self.path, e))?;
        self.started().fetch_add(1, Ordering::SeqCst);
        Ok(ChangeGuard { stamp: self })
    }

    /// Closes the gap a writer that died mid-change left, if no process is mid-change now.
    /// Returns whether the stamp is readable afterwards.
    pub(crate) fn repair(&self) -> bool {
        if self.read().is_some() {
            return true;
        }
        // A file of its own: an exclusive lock through `self.file` would convert this process's
        // own shared lock, if it held one, instead of waiting for it.
        let Ok(own) = open(&self.path) else { return false };
        if own.try_lock().is_err() {
            return false;
        }
        if self.read().is_some() {
            // The writer seen mid-change has just finished.
            return true;
        }
        let started = self.started().load(Ordering::SeqCst);
        self.finished().store(started, Ordering::SeqCst);
        tracing::warn!(path = %self.path.display(), "a writer of posts stopped mid-change; its change stamp was repaired");
        // Dropping `own` releases the lock.
        true
    }
}

/// A change to posts in progress; see [`ChangeStamp::begin`].
pub(crate) struct ChangeGuard<'a> {
    stamp: &'a ChangeStamp,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.stamp.finished().fetch_add(1, Ordering::SeqCst);
        // Unlocking cannot fail on an open file; if it did, the lock goes with the process.
        let _ = self.stamp.file.unlock();
    }
}

fn open(path: &Path) -> StoreResult<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(|e| cannot(path, e))
}

fn cannot(path: &Path, error: std::io::Error) -> StoreError {
    unavailable(format!("cannot use the change stamp {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_in_progress_hides_the_stamp_and_a_finished_one_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("datapact.db");
        let stamp = ChangeStamp::open(&db).unwrap();
        let other = ChangeStamp::open(&db).unwrap();
        assert_eq!(stamp.read(), Some(0));
        let guard = other.begin().unwrap();
        assert_eq!(stamp.read(), None, "another handle's change in progress is seen");
        assert!(!stamp.repair(), "no repair while a writer holds its lock");
        drop(guard);
        assert_eq!(stamp.read(), Some(1));
        assert_eq!(ChangeStamp::open(&db).unwrap().read(), Some(1), "the file keeps the counters");
    }

    /// A writer that dies mid-change (here: its guard forgotten, its file then closed, as the
    /// kernel does for a dead process) leaves the stamp unreadable until a repair, which waits
    /// for no live writer to be mid-change.
    #[test]
    fn a_writer_that_died_mid_change_is_repaired_only_once_its_lock_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("datapact.db");
        let stamp = ChangeStamp::open(&db).unwrap();
        let dying = ChangeStamp::open(&db).unwrap();
        std::mem::forget(dying.begin().unwrap());
        assert_eq!(stamp.read(), None);
        assert!(!stamp.repair(), "the writer's lock is still held");
        assert_eq!(stamp.read(), None);
        drop(dying);
        assert!(stamp.repair());
        assert_eq!(stamp.read(), Some(1));
        // This process's own change in progress is not repaired away either.
        let guard = stamp.begin().unwrap();
        assert!(!stamp.repair());
        drop(guard);
        assert_eq!(stamp.read(), Some(2));
    }
}

//! Floors for the metering benchmark (`bench/metering_floor.sh`): batch sinks that keep less than
//! the ledger does, to measure how much of metering's cost is the writer's storage and how much
//! is inherent to committing before answering. Compiled only with the `ledger-floor` feature and
//! chosen by `DATAPACT_LEDGER_FLOOR`; **a gateway running one does not meter**: the `null` floors
//! keep nothing, the `log` floors keep only a throwaway file that nothing reads back.
//!
//! On the writer thread, as the ledger runs:
//! - `null`: seals each batch onto the chain and answers at once. What is left of metering's cost
//!   is the request side (reservation, rendering the checkpoint header), the hand-off to the writer
//!   thread and back, and the seal.
//! - `log`: `null`, plus each batch's header and encoded rows written with one `pwrite` into a
//!   preallocated file and made durable with one `fdatasync`: the least a durable ledger with one
//!   flush per batch can cost on this disk (no pages, no B-trees, no WAL index).
//!
//! As a task on the gateway's runtime instead, so no batch is handed to another thread:
//! - `null-task`: `null` without the hand-off. The task is woken by a `Notify`, a wake within
//!   the runtime rather than a thread's futex.
//! - `log-uring`: `log` without the hand-off. The task writes the batch with `pwrite` (into the
//!   page cache) and asks io_uring for the `fdatasync`; the runtime's reactor sees its completion
//!   through an eventfd, so no thread of the gateway blocks on the flush. The kernel runs the flush
//!   on an io_uring worker of its own (`iou-wrk`, counted in the gateway's CPU). One flush is in
//!   flight at a time: jobs that arrive meanwhile form the next batch.
//! - `log-uring-2`: `log-uring` with up to two flushes in flight: the next batch is written and
//!   its flush submitted while the last one's runs, so responses need not all wait on one flush.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use datapact_core::Clock;
use datapact_ledger::encoding::{encode_header, encode_row};
use datapact_ledger::{Anchor, ChainWriter, Row, SealedBatch};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::writer::{BatchSink, WriteError};
use super::{Job, MAX_BATCH_ROWS, Message, SQLITE_CHAIN, Shared, lock, unavailable};
use crate::StoreResult;

/// The environment variable that picks a floor: `null`, `log`, `null-task`, `log-uring` or `log-uring-2`.
pub const FLOOR_VARIABLE: &str = "DATAPACT_LEDGER_FLOOR";
/// The `log` floors' file: preallocated, then written round and round.
const LOG_BYTES: u64 = 64 << 20;
/// Flushes `log-uring-2` keeps in flight (io_uring's queues hold 8).
const MAX_FLUSHES: usize = 2;

/// A floor, on the writer thread or as a task on the runtime.
pub(super) enum Floor {
    Thread(FloorSink),
    Task(TaskFloor),
}

impl Floor {
    /// The floor `DATAPACT_LEDGER_FLOOR` names, if set; a `log` file goes in `data_dir`.
    pub(super) fn from_environment(data_dir: &Path) -> StoreResult<Option<Floor>> {
        let Some(value) = std::env::var_os(FLOOR_VARIABLE) else { return Ok(None) };
        let name = value.to_string_lossy();
        let floor = match &*name {
            "null" => Floor::Thread(FloorSink::Null),
            "log" => Floor::Thread(FloorSink::Log { log: Log::prepare(data_dir)?, buffer: Vec::new() }),
            "null-task" => Floor::Task(TaskFloor::Null),
            "log-uring" => Floor::Task(TaskFloor::Uring(Log::prepare(data_dir)?, 1)),
            "log-uring-2" => Floor::Task(TaskFloor::Uring(Log::prepare(data_dir)?, MAX_FLUSHES)),
            other => {
                return Err(unavailable(format!(
                    "{FLOOR_VARIABLE}={other}: the floors are `null`, `log`, `null-task`, `log-uring` and `log-uring-2`"
                )));
            }
        };
        tracing::warn!(floor = %name, "LEDGER FLOOR: responses are NOT metered (benchmark build)");
        Ok(Some(floor))
    }
}

/// A preallocated file that batches are appended to, round and round.
pub(super) struct Log {
    file: File,
    offset: u64,
}

impl Log {
    fn prepare(data_dir: &Path) -> StoreResult<Log> {
        let path = data_dir.join("ledger-floor.log");
        let prepared =
            File::options().create(true).truncate(true).read(true).write(true).open(&path).and_then(|file| {
                file.write_all_at(&vec![0; LOG_BYTES as usize], 0)?;
                file.sync_all()?;
                Ok(file)
            });
        let file = prepared.map_err(|e| unavailable(format!("cannot prepare {}: {e}", path.display())))?;
        Ok(Log { file, offset: 0 })
    }

    /// Writes the batch into the page cache (not yet durable), encoded into `buffer`.
    fn append(&mut self, buffer: &mut Vec<u8>, sealed: &SealedBatch, rows: &[Row]) -> std::io::Result<()> {
        buffer.clear();
        buffer.extend_from_slice(&encode_header(&sealed.header));
        for row in rows {
            buffer.extend_from_slice(&encode_row(row));
        }
        if self.offset + buffer.len() as u64 > LOG_BYTES {
            self.offset = 0;
        }
        self.file.write_all_at(buffer, self.offset)?;
        self.offset += buffer.len() as u64;
        Ok(())
    }
}

/// The floors that stand in for the ledger on its writer thread.
pub(super) enum FloorSink {
    Null,
    Log { log: Log, buffer: Vec<u8> },
}

impl BatchSink for FloorSink {
    fn head(&mut self, _chain: &str) -> StoreResult<Option<Anchor>> {
        Ok(None)
    }

    fn write(&mut self, sealed: &SealedBatch, rows: &[Row], _jobs: &[Job]) -> Result<(), WriteError> {
        let FloorSink::Log { log, buffer } = self else { return Ok(()) };
        let written = log.append(buffer, sealed, rows).and_then(|()| log.file.sync_data());
        written.map_err(|e| WriteError::Failed(unavailable(format!("the floor's log failed: {e}"))))
    }
}

/// The floors that run as a task on the gateway's runtime, with no writer thread.
pub(super) enum TaskFloor {
    Null,
    /// The log, and how many flushes may be in flight at once.
    Uring(Log, usize),
}

/// A batch written to the log, waiting for its flush: the flush's number and the jobs to answer.
type Flushing = (u64, Vec<Job>);

impl TaskFloor {
    /// Spawns the floor's task on the current runtime, reading `jobs` whenever the returned
    /// `Notify` is notified (after each send); it ends when every sender is gone.
    pub(super) fn spawn(
        self,
        jobs: Receiver<Message>,
        (shared, clock): (Arc<Shared>, Arc<dyn Clock>),
    ) -> StoreResult<Arc<Notify>> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| unavailable("the task floors run on the gateway's runtime; there is none here"))?;
        let (mut flush, depth) = match self {
            TaskFloor::Null => (None, 1),
            TaskFloor::Uring(log, depth) => {
                (Some(UringLog::new(log).map_err(|e| unavailable(format!("io_uring: {e}")))?), depth)
            }
        };
        let wake = Arc::new(Notify::new());
        let woken = Arc::clone(&wake);
        runtime.spawn(async move {
            let mut chain = ChainWriter::genesis(SQLITE_CHAIN);
            let mut buffer = Vec::new();
            let mut flushing = std::collections::VecDeque::<Flushing>::new();
            let (mut numbered, mut open) = (0u64, true);
            loop {
                let room = open && flushing.len() < depth;
                if room {
                    match waiting(&jobs, &shared) {
                        None => open = false,
                        Some((batch, rows)) if !batch.is_empty() => {
                            let sealed = chain.seal(&rows, clock.now());
                            metrics::histogram!(super::writer::BATCH_ROWS).record(rows.len() as f64);
                            match &mut flush {
                                None => answer(batch, &Ok(())),
                                Some(log) => match log.submit(&mut buffer, &sealed, &rows, numbered) {
                                    Ok(()) => flushing.push_back((numbered, batch)),
                                    Err(error) => answer(batch, &Err(error)),
                                },
                            }
                            numbered += 1;
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                match &mut flush {
                    Some(log) if !flushing.is_empty() => {
                        // A flush completing, or (with room for another) new jobs to write meanwhile.
                        tokio::select! {
                            done = log.completion() => {
                                let (number, result) = match done {
                                    Ok(done) => done,
                                    Err(error) => (flushing.back().map_or(0, |f| f.0), Err(error)),
                                };
                                // An fdatasync makes durable everything written before it was
                                // submitted, so flush `number` covers every batch up to it.
                                while flushing.front().is_some_and(|f| f.0 <= number) {
                                    let (_, batch) = flushing.pop_front().expect("checked above");
                                    answer(batch, &result);
                                }
                            }
                            () = woken.notified(), if room => {}
                        }
                    }
                    _ if !open => return,
                    // A send after the read above left a permit: this returns at once.
                    _ => woken.notified().await,
                }
            }
        });
        Ok(wake)
    }
}

fn answer(batch: Vec<Job>, result: &std::io::Result<()>) {
    for job in batch {
        let reply = result.as_ref().map_err(|e| unavailable(format!("the floor's log failed: {e}")));
        let _ = job.reply.send(reply.copied());
    }
}

/// The commits waiting now and their rows, up to [`MAX_BATCH_ROWS`] rows as the writer takes them
/// (the rest stay queued for the next batch), or `None` once no sender is left. Each is taken as
/// the writer takes it (`writer::resolve`), so the meter's bookkeeping of commits in flight stays
/// as small as with the ledger; a floor makes no job wait for another (it meters nothing).
fn waiting(jobs: &Receiver<Message>, shared: &Shared) -> Option<(Vec<Job>, Vec<Row>)> {
    let (mut batch, mut rows) = (Vec::new(), Vec::new());
    loop {
        match jobs.try_recv() {
            Ok(Message::Commit(mut job)) => {
                if job.reservation.is_some() {
                    super::writer::resolve(&mut lock(&shared.meter), &job);
                }
                rows.append(&mut job.rows);
                batch.push(job);
                if rows.len() >= MAX_BATCH_ROWS {
                    return Some((batch, rows));
                }
            }
            // Floors do not meter: there are no counts to reload.
            Ok(Message::Abandoned(reservation)) => {
                if let Some(id) = reservation {
                    lock(&shared.meter).unresolved.remove(&id);
                }
            }
            Err(TryRecvError::Empty) => return Some((batch, rows)),
            Err(TryRecvError::Disconnected) => return (!batch.is_empty()).then_some((batch, rows)),
        }
    }
}

/// The `log-uring` floor's log, flushed through io_uring.
struct UringLog {
    log: Log,
    ring: io_uring::IoUring,
    /// The eventfd io_uring signals each completion on, registered with the runtime's reactor.
    completed: AsyncFd<File>,
}

impl UringLog {
    fn new(log: Log) -> std::io::Result<UringLog> {
        let ring = io_uring::IoUring::new(8)?;
        // SAFETY: eventfd takes no pointers; its result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let eventfd = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        // SAFETY: the AsyncFd owns the eventfd, so it stays open while registered.
        let completed = unsafe { AsyncFd::register(eventfd)? };
        Ok(UringLog { log, ring, completed })
    }

    /// Appends the batch and submits its flush (`number`) to io_uring.
    fn submit(&mut self, buffer: &mut Vec<u8>, sealed: &SealedBatch, rows: &[Row], number: u64) -> std::io::Result<()> {
        self.log.append(buffer, sealed, rows)?;
        // ASYNC: an fsync always blocks, so go straight to io_uring's worker rather than trying
        // it inline first.
        let flush = io_uring::opcode::Fsync::new(io_uring::types::Fd(self.log.file.as_raw_fd()))
            .flags(io_uring::types::FsyncFlags::DATASYNC)
            .build()
            .flags(io_uring::squeue::Flags::ASYNC)
            .user_data(number);
        // SAFETY: the operation refers to no memory, only to the log's file, which the kernel holds
        // a reference to until it completes.
        unsafe { self.ring.submission().push(&flush) }
            .map_err(|_| std::io::Error::other("io_uring's submission queue is full"))?;
        self.ring.submit()?;
        Ok(())
    }

    /// The next flush to complete: its number and outcome. Waits without blocking the thread, and
    /// loses nothing if dropped before it returns.
    async fn completion(&mut self) -> std::io::Result<(u64, std::io::Result<()>)> {
        loop {
            if let Some(done) = self.ring.completion().next() {
                let result = match done.result() {
                    result if result < 0 => Err(std::io::Error::from_raw_os_error(-result)),
                    _ => Ok(()),
                };
                return Ok((done.user_data(), result));
            }
            let mut ready = self.completed.readable().await?;
            // Reading the eventfd resets it; when it would block, the readiness is cleared.
            let _ = ready.try_io(|eventfd| eventfd.get_ref().read(&mut [0; 8]));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, mpsc};

    use datapact_core::purpose::Purpose;
    use datapact_core::{Endpoint, KeyPrefix, ManualClock, Timestamp};
    use datapact_ledger::Allotment;
    use datapact_ledger::encoding::{decode_header, decode_row};

    use super::*;
    use crate::ledger::{EventFacts, Jobs, MeterState, Shared, spawn_writer, submit, writer};

    const REQUESTS: usize = 200;

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2026-03-02T00:00:00Z").unwrap()
    }

    /// The posts request `n` delivers: `n % 4` of them.
    fn posts_of(n: usize) -> Vec<(i64, u32)> {
        (0..n % 4).map(|i| ((n * 10 + i) as i64, 1)).collect()
    }

    /// What request `n` commits besides its posts.
    fn facts(n: usize) -> EventFacts {
        EventFacts {
            key_prefix: KeyPrefix("dp_0123456789ab".into()),
            endpoint: Endpoint::Search,
            purpose: Purpose::AiInput,
            request_id: format!("request-{n}"),
            idempotency_key: None,
            user_reads: 0,
            bytes: 100,
        }
    }

    /// Sends request `n`'s commit, its usage event and a delivery row per post, and returns its answer.
    fn commit(jobs: &Jobs, n: usize, posts: &[(i64, u32)]) -> impl Future<Output = StoreResult<()>> + use<> {
        let allotment = Allotment {
            delivered: posts.len(),
            counts: vec![true; posts.len()],
            counted: posts.len() as u32,
            cut: false,
            overage: 0,
            used_after: 0,
            charge: 0,
        };
        submit(jobs, (None, Vec::new()), None, None, 7, at(), posts, &allotment, &[], facts(n), None)
    }

    /// Commits every request from 8 tasks at once: each must be answered `Ok`.
    async fn commit_all(jobs: &Jobs) {
        let mut tasks = Vec::new();
        for task in 0..8 {
            let jobs = jobs.clone();
            tasks.push(tokio::spawn(async move {
                for n in (0..REQUESTS).filter(|n| n % 8 == task) {
                    commit(&jobs, n, &posts_of(n))
                        .await
                        .unwrap_or_else(|e| panic!("request {n} was not committed: {e}"));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// The length of the encoded value `bytes` starts with (see `datapact_ledger::encoding`).
    fn encoded_len(bytes: &[u8]) -> usize {
        let fields = u16::from_be_bytes([bytes[2], bytes[3]]);
        (0..fields).fold(4, |at, _| at + 4 + u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize)
    }

    /// Reads the batches back from a floor's log: they must form one chain from its genesis and
    /// hold every request's event followed by its deliveries, each request once.
    fn check_log(dir: &Path) {
        let log = std::fs::read(dir.join("ledger-floor.log")).unwrap();
        let (mut at, mut chain) = (0, ChainWriter::genesis(SQLITE_CHAIN));
        let mut delivered: BTreeMap<String, Vec<(i64, u32)>> = BTreeMap::new();
        // The file was preallocated with zeros, and every encoding starts with its version, 1.
        while log[at] != 0 {
            let len = encoded_len(&log[at..]);
            let header = decode_header(&log[at..at + len]).unwrap();
            at += len;
            let rows: Vec<Row> = (0..header.row_count)
                .map(|_| {
                    let len = encoded_len(&log[at..]);
                    at += len;
                    decode_row(&log[at - len..at]).unwrap()
                })
                .collect();
            assert_eq!(chain.seal(&rows, header.committed_at).header, header, "batch {} breaks the chain", header.seq);
            let mut request = None;
            for row in rows {
                match row {
                    Row::Usage(event) => {
                        assert!(delivered.insert(event.request_id.clone(), Vec::new()).is_none(), "written twice");
                        request = Some(event.request_id);
                    }
                    Row::Delivery(d) => {
                        assert_eq!(request.as_ref(), Some(&d.request_id), "a delivery follows its request's event");
                        delivered.get_mut(&d.request_id).unwrap().push((d.post_id, d.revision));
                    }
                }
            }
        }
        let expected: BTreeMap<String, Vec<(i64, u32)>> =
            (0..REQUESTS).map(|n| (format!("request-{n}"), posts_of(n))).collect();
        assert_eq!(delivered, expected);
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared { meter: Mutex::new(MeterState::default()) })
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(at()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_thread_floors_answer_every_commit_and_the_log_holds_them() {
        for durable in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let sink = if durable {
                FloorSink::Log { log: Log::prepare(dir.path()).unwrap(), buffer: Vec::new() }
            } else {
                FloorSink::Null
            };
            let (sender, receiver) = mpsc::channel();
            spawn_writer(writer::Writer::new(sink, SQLITE_CHAIN, None, shared(), clock()), receiver).unwrap();
            commit_all(&Jobs::new(sender)).await;
            if durable {
                check_log(dir.path());
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_floors_answer_every_commit_and_the_log_holds_them() {
        for depth in [0, 1, MAX_FLUSHES] {
            let dir = tempfile::tempdir().unwrap();
            let floor =
                if depth == 0 { TaskFloor::Null } else { TaskFloor::Uring(Log::prepare(dir.path()).unwrap(), depth) };
            let (sender, receiver) = mpsc::channel();
            let mut jobs = Jobs::new(sender);
            jobs.wake = Some(floor.spawn(receiver, (shared(), clock())).unwrap());
            commit_all(&jobs).await;
            if depth > 0 {
                check_log(dir.path());
            }
        }
    }

    #[test]
    fn a_task_floor_takes_what_the_writer_would_into_one_batch() {
        let shared = shared();
        let (sender, receiver) = mpsc::channel();
        let jobs = Jobs::new(sender);
        // 17 commits of 1,001 rows cross MAX_BATCH_ROWS (16,384) at the 17th; a commit is never split.
        let big: Vec<(i64, u32)> = (0..1_000).map(|id| (id, 1)).collect();
        for n in 0..20 {
            drop(commit(&jobs, n, &big));
        }
        let (first, rows) = waiting(&receiver, &shared).unwrap();
        assert_eq!((first.len(), rows.len()), (17, 17 * 1_001));
        let (second, rows) = waiting(&receiver, &shared).unwrap();
        assert_eq!((second.len(), rows.len()), (3, 3 * 1_001));
        let (none, _) = waiting(&receiver, &shared).unwrap();
        assert!(none.is_empty(), "nothing is left");
        drop(jobs);
        assert!(waiting(&receiver, &shared).is_none(), "no sender is left");
    }
}

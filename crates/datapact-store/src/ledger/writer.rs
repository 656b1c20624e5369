//! The ledger's single writer: group commit onto the hash chain.
//!
//! It blocks for the first waiting commit, then takes every other commit already waiting (up to
//! [`MAX_BATCH_ROWS`] rows), seals them as one batch and writes it in one transaction. While that
//! transaction's fsync runs, new commits queue up and form the next batch, so the batch size grows
//! with the load and durability never serialises the gateway.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use datapact_core::purpose::Purpose;
use datapact_core::{Clock, Endpoint};
use datapact_ledger::{Anchor, ChainWriter, DayKey, Digest, Row, SealedBatch};
use rusqlite::{Connection, OptionalExtension, Statement, ToSql, TransactionBehavior, params};

use super::{Job, MAX_BATCH_ROWS, Message, MeterState, Shared, lock, unavailable};
use crate::{StoreError, StoreResult};

pub(super) const BATCH_ROWS: &str = "datapact_ledger_batch_rows";
const BATCH_SECONDS: &str = "datapact_ledger_commit_seconds";
const ROWS_TOTAL: &str = "datapact_ledger_rows_total";

/// Where a writer's batches go: SQLite's `ledger.db`, or the PostgreSQL store's ledger tables.
pub(super) trait BatchSink: Send + 'static {
    /// The newest batch of `chain`, if any.
    fn head(&mut self, chain: &str) -> StoreResult<Option<Anchor>>;
    /// Writes a sealed batch, its rows and what goes with them in one durable transaction — or
    /// writes nothing and says which jobs it refuses (the writer then writes the others).
    fn write(&mut self, sealed: &SealedBatch, rows: &[Row], jobs: &[Job]) -> Result<(), WriteError>;
}

/// Why a batch was not written.
#[derive(Debug)]
pub(super) enum WriteError {
    /// The database failed: every job of the batch fails closed.
    Failed(StoreError),
    /// These jobs (by position in the batch) may not be committed, each with why; nothing was
    /// written, and the others may be.
    Refused(Vec<(usize, String)>),
}

impl<E: Into<StoreError>> From<E> for WriteError {
    fn from(error: E) -> Self {
        WriteError::Failed(error.into())
    }
}

impl BatchSink for Connection {
    fn head(&mut self, chain: &str) -> StoreResult<Option<Anchor>> {
        head(self, chain)
    }

    fn write(&mut self, sealed: &SealedBatch, rows: &[Row], jobs: &[Job]) -> Result<(), WriteError> {
        Ok(write_batch(self, sealed, rows, jobs)?)
    }
}

pub(super) struct Writer<S> {
    sink: S,
    /// `None` after a failed commit until the head is read back from the database.
    chain: Option<ChainWriter>,
    name: String,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
}

/// The newest batch of `chain`, if any.
pub(super) fn head(conn: &Connection, chain: &str) -> StoreResult<Option<Anchor>> {
    let row = conn
        .query_row(
            "SELECT seq, hash FROM ledger_batches WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
            params![chain],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    row.map(|(seq, hash)| {
        let hash: [u8; 32] = hash.try_into().map_err(|_| unavailable(format!("batch {seq} has a malformed hash")))?;
        Ok(Anchor { seq: seq as u64, hash: Digest(hash) })
    })
    .transpose()
}

impl<S: BatchSink> Writer<S> {
    pub(super) fn new(
        sink: S,
        name: &str,
        head: Option<Anchor>,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
    ) -> Writer<S> {
        let chain = Some(resume(name, head));
        Writer { sink, chain, name: name.to_owned(), shared, clock }
    }

    pub(super) fn run(mut self, jobs: Receiver<Message>) {
        // Jobs held until the reservations they rest on are taken (`Job::after`), and the jobs
        // set free when they are, written next: after them, never before.
        let (mut held, mut ready) = (Vec::new(), VecDeque::new());
        loop {
            let first = match ready.pop_front() {
                Some(job) => Message::Commit(job),
                None => match jobs.recv() {
                    Ok(message) => message,
                    // Jobs still held are dropped with their replies: their callers fail closed.
                    Err(_) => return,
                },
            };
            let mut batch = Vec::new();
            let mut rows = 0;
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Commit(mut job) => {
                        if !job.after.is_empty() && !taken_all(&self.shared, &batch, &mut job.after) {
                            held.push(job);
                        } else {
                            rows += job.rows.len();
                            let reservation = job.reservation;
                            // Told to the meter when the batch is committed (`commit`).
                            batch.push(job);
                            release(&mut held, &mut ready, reservation);
                        }
                    }
                    Message::Abandoned(reservation) => {
                        // Write what was sent before it first, so the counts reloaded include it.
                        self.commit(std::mem::take(&mut batch));
                        rows = 0;
                        let mut meter = lock(&self.shared.meter);
                        meter.invalidate();
                        if let Some(id) = reservation {
                            meter.unresolved.remove(&id);
                        }
                        drop(meter);
                        // Decided before the reload, the jobs that waited for it are refused.
                        release(&mut held, &mut ready, reservation);
                    }
                }
                // Never wait for company: commits that arrive while this batch is written form
                // the next one. Waiting (300 us, until 1,024 rows) made batches twice as large but
                // cost the writer as much per response, added the wait to every response, and
                // woke the writer for each arrival: 15-25 % fewer metered requests/s at 64
                // connections (BENCHMARKS.md, "Metering").
                next = if rows >= MAX_BATCH_ROWS {
                    None
                } else {
                    ready.pop_front().map(Message::Commit).or_else(|| jobs.try_recv().ok())
                };
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Job>) {
        // Decisions taken before a failure was noticed may rest on the failed commit: refuse them.
        // Under the same lock, the meter learns which reservations this batch took (one lock per
        // batch, not per job: the request side takes this lock for every decision).
        let generation = {
            let mut meter = lock(&self.shared.meter);
            for job in &batch {
                resolve(&mut meter, job);
            }
            meter.generation
        };
        let (mut live, stale): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| job.generation.is_none_or(|g| g == generation));
        for job in stale {
            let _ = job.reply.send(Err(unavailable("an earlier ledger commit failed; this response was not served")));
        }
        if live.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut rows = Vec::with_capacity(live.iter().map(|job| job.rows.len()).sum());
        let lens: Vec<usize> = live.iter().map(|job| job.rows.len()).collect();
        for job in &mut live {
            rows.append(&mut job.rows);
        }
        if self.chain.is_none() {
            match self.sink.head(&self.name) {
                Ok(head) => self.chain = Some(resume(&self.name, head)),
                Err(error) => {
                    tracing::error!(%error, "cannot read the ledger's head; responses fail closed");
                    for job in live {
                        let _ = job.reply.send(Err(unavailable(format!("the ledger cannot read its head: {error}"))));
                    }
                    return;
                }
            }
        }
        let chain = self.chain.as_mut().expect("set above");
        let sealed = chain.seal(&rows, self.clock.now());
        match self.sink.write(&sealed, &rows, &live) {
            Ok(()) => {
                metrics::histogram!(BATCH_ROWS).record(rows.len() as f64);
                metrics::histogram!(BATCH_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::counter!(ROWS_TOTAL).increment(rows.len() as u64);
                for job in live {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(WriteError::Refused(refused)) => {
                // Nothing was written: the chain continues from what was, and the jobs not refused
                // are written again as a batch of their own, their rows given back.
                self.chain = None;
                let mut rows = rows.into_iter();
                for (job, len) in live.iter_mut().zip(lens) {
                    job.rows = rows.by_ref().take(len).collect();
                }
                let mut kept = Vec::with_capacity(live.len());
                for (index, job) in live.into_iter().enumerate() {
                    match refused.iter().find(|(refused, _)| *refused == index) {
                        Some((_, why)) => {
                            tracing::warn!(why, "the ledger refused a response's commit; it fails closed");
                            // `Conflict`: the caller tells the shared limiter its counts fell behind.
                            let _ = job.reply.send(Err(StoreError::Conflict(why.clone())));
                        }
                        None => kept.push(job),
                    }
                }
                // Each refusal removes a job, so this ends.
                if !kept.is_empty() {
                    self.commit(kept);
                }
            }
            Err(WriteError::Failed(error)) => {
                tracing::error!(%error, rows = rows.len(), "ledger commit failed; its responses fail closed");
                lock(&self.shared.meter).invalidate();
                // The sealed batch was not stored: the chain continues from what was.
                self.chain = None;
                for job in live {
                    let _ = job.reply.send(Err(unavailable(format!("the ledger could not commit: {error}"))));
                }
            }
        }
    }
}

fn write_batch(conn: &mut Connection, sealed: &SealedBatch, rows: &[Row], jobs: &[Job]) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let header = &sealed.header;
    let (chain, seq) = (header.chain.as_str(), header.seq as i64);
    tx.prepare_cached(
        "INSERT INTO ledger_batches (chain, seq, prev_hash, rows_hash, row_count, committed_at, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        chain,
        seq,
        &header.prev_hash.0[..],
        &header.rows_hash.0[..],
        header.row_count,
        header.committed_at.millis(),
        &sealed.hash.0[..],
    ])?;
    {
        let (mut events, mut deliveries) = (Vec::new(), Vec::with_capacity(rows.len()));
        let mut request: Option<&str> = None;
        for (ordinal, (row, digest)) in rows.iter().zip(&sealed.row_digests).enumerate() {
            match row {
                Row::Usage(event) => {
                    request = Some(&event.request_id);
                    events.push((ordinal as i64, event, digest));
                }
                Row::Delivery(delivery) => {
                    // A delivery row stores no request: it is read back from the event it follows,
                    // so one that follows another request's event would be sealed with a request
                    // the ledger cannot give back. `response_rows` never makes one. The whole batch
                    // fails, not only the job: the others' reservations may rest on its counts (a
                    // post "already counted today"), so they fail closed with it (module docs).
                    if request != Some(delivery.request_id.as_str()) {
                        return Err(unavailable(format!(
                            "batch {seq}, row {ordinal}: a delivery of request {:?} follows no usage event of it",
                            delivery.request_id
                        )));
                    }
                    let position = super::delivery_position(header.seq, ordinal).ok_or_else(|| {
                        unavailable(format!("batch {seq}, row {ordinal}: past the positions the ledger can key"))
                    })?;
                    deliveries.push((position, delivery, digest));
                }
            }
        }
        insert_rows(&tx, &EVENTS_INSERT, &events, |statement, first, (ordinal, event, digest)| {
            let values: [&dyn ToSql; EVENT_COLUMNS] = [
                &chain,
                &seq,
                ordinal,
                &event.licensee_id,
                &event.key_prefix.0,
                &event.endpoint.as_str(),
                &event.purpose.as_str(),
                &event.request_id,
                &event.idempotency_key,
                &event.at.millis(),
                &event.delivered,
                &event.counted,
                &event.user_reads,
                &(event.bytes as i64),
                &(event.charged as i64),
                &&digest.0[..],
            ];
            bind(statement, first, &values)
        })?;
        insert_rows(&tx, &DELIVERIES_INSERT, &deliveries, |statement, first, (position, delivery, digest)| {
            let values: [&dyn ToSql; DELIVERY_COLUMNS] = [
                position,
                &delivery.licensee_id,
                &delivery.post_id,
                &delivery.revision,
                &delivery.at.millis(),
                &delivery.counted,
                &&digest.0[..],
            ];
            bind(statement, first, &values)
        })?;
        let mut daily = tx.prepare_cached(
            "INSERT INTO usage_daily (licensee_id, day, endpoint, purpose, events, delivered, counted, overage,
                 user_reads, bytes, charged)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (licensee_id, day, endpoint, purpose) DO UPDATE SET
                 events = events + excluded.events, delivered = delivered + excluded.delivered,
                 counted = counted + excluded.counted, overage = overage + excluded.overage,
                 user_reads = user_reads + excluded.user_reads, bytes = bytes + excluded.bytes,
                 charged = charged + excluded.charged",
        )?;
        let mut responses = tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotent_responses (licensee_id, key, fingerprint, request_id, first_used_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let lines = daily_lines(jobs);
        for (
            (licensee_id, day, endpoint, purpose),
            [events, delivered, counted, overage, user_reads, bytes, charged],
        ) in lines
        {
            daily.execute(params![
                licensee_id,
                day,
                endpoint.as_str(),
                purpose.as_str(),
                events,
                delivered,
                counted,
                overage,
                user_reads,
                bytes,
                charged
            ])?;
        }
        for job in jobs {
            let d = &job.daily;
            if let Some((licensee_id, request_id, response)) = &job.response {
                responses.execute(params![
                    licensee_id,
                    response.key,
                    &response.fingerprint.0.0[..],
                    request_id,
                    d.at.millis(),
                    response.body,
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Rows go into a table this many to an `INSERT`: a statement's fixed work (step, reset, its
/// transaction and schema checks) is then paid once for all of them, not once per row.
const ROWS_PER_INSERT: usize = 32;
const EVENT_COLUMNS: usize = 16;
const DELIVERY_COLUMNS: usize = 7;

/// An `INSERT` of one row and of [`ROWS_PER_INSERT`] rows into a ledger table.
struct Insert {
    one: String,
    many: String,
}

impl Insert {
    fn new(table: &str, columns: &[&str]) -> Insert {
        let row = format!("({})", vec!["?"; columns.len()].join(", "));
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        Insert { one: format!("{head}{row}"), many: format!("{head}{}", vec![row; ROWS_PER_INSERT].join(", ")) }
    }
}

static EVENTS_INSERT: std::sync::LazyLock<Insert> = std::sync::LazyLock::new(|| {
    let columns = [
        "chain",
        "seq",
        "ordinal",
        "licensee_id",
        "key_prefix",
        "endpoint",
        "purpose",
        "request_id",
        "idempotency_key",
        "at",
        "delivered",
        "counted",
        "user_reads",
        "bytes",
        "charged",
        "digest",
    ];
    assert_eq!(columns.len(), EVENT_COLUMNS);
    Insert::new("usage_events", &columns)
});

static DELIVERIES_INSERT: std::sync::LazyLock<Insert> = std::sync::LazyLock::new(|| {
    let columns = ["position", "licensee_id", "post_id", "revision", "at", "counted", "digest"];
    assert_eq!(columns.len(), DELIVERY_COLUMNS);
    Insert::new("deliveries", &columns)
});

/// Inserts `items` in order, [`ROWS_PER_INSERT`] to a statement and the rest one by one;
/// `bind_item` binds one item's values from parameter `first` (1-based) on.
fn insert_rows<T>(
    tx: &rusqlite::Transaction<'_>,
    insert: &Insert,
    items: &[T],
    bind_item: impl Fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<usize>,
) -> rusqlite::Result<()> {
    let mut chunks = items.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut many = tx.prepare_cached(&insert.many)?;
        for chunk in chunks.by_ref() {
            let mut next = 1;
            for item in chunk {
                next = bind_item(&mut many, next, item)?;
            }
            many.raw_execute()?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut one = tx.prepare_cached(&insert.one)?;
        for item in chunks.remainder() {
            bind_item(&mut one, 1, item)?;
            one.raw_execute()?;
        }
    }
    Ok(())
}

/// Binds `values` from parameter `first` on; returns the parameter after them.
fn bind(statement: &mut Statement<'_>, first: usize, values: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    for (offset, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(first + offset, value)?;
    }
    Ok(first + values.len())
}

/// Drops from a job's `after` the reservations already taken: into `batch`, the one being formed
/// (the meter learns of those when it is committed), or into an earlier one. `true` if none is left
/// to wait for. Only the writer takes reservations, so one not taken now is still to come (behind
/// the job in the queue, or held like it) and will [`release`] it.
fn taken_all(shared: &Shared, batch: &[Job], after: &mut Vec<super::ReservationId>) -> bool {
    after.retain(|id| !batch.iter().any(|job| job.reservation == Some(*id)));
    if !after.is_empty() {
        let meter = lock(&shared.meter);
        after.retain(|id| meter.unresolved.contains(id));
    }
    after.is_empty()
}

/// Tells the meter that `job` was taken into a batch: the posts its reservation counted are no
/// longer pending, and jobs resting on it need not wait for it (in its batch or a later one, they
/// fail with it).
pub(super) fn resolve(meter: &mut MeterState, job: &Job) {
    let Some(id) = job.reservation else { return };
    meter.unresolved.remove(&id);
    let day = DayKey::of(job.daily.at);
    if let Some(licensee) = meter.licensees.get_mut(&job.daily.licensee_id) {
        for row in &job.rows {
            if let Row::Delivery(delivery) = row
                && delivery.counted
                && licensee.pending.get(&(day, delivery.post_id)) == Some(&id)
            {
                licensee.pending.remove(&(day, delivery.post_id));
            }
        }
    }
}

/// `reservation` is taken (its job into a batch, or its abandonment handled): the held jobs
/// waiting for nothing else are ready, in the order they came.
fn release(held: &mut Vec<Job>, ready: &mut VecDeque<Job>, reservation: Option<super::ReservationId>) {
    let Some(reservation) = reservation else { return };
    for job in held.iter_mut() {
        job.after.retain(|id| *id != reservation);
    }
    let (free, waiting): (Vec<Job>, Vec<Job>) = std::mem::take(held).into_iter().partition(|job| job.after.is_empty());
    *held = waiting;
    ready.extend(free);
}

fn resume(name: &str, head: Option<Anchor>) -> ChainWriter {
    match head {
        Some(head) => ChainWriter::resume(name, head),
        None => ChainWriter::genesis(name),
    }
}

/// What a batch adds to `usage_daily`: one line per (licensee, day, endpoint, purpose) it touches,
/// in key order (so concurrent writers of the same lines lock them in one order), holding events,
/// delivered, counted, overage, user reads, bytes and charged. One upsert per line, not per
/// response: under load a batch holds dozens of responses of the same line.
pub(super) fn daily_lines(jobs: &[Job]) -> BTreeMap<(i64, i64, Endpoint, Purpose), [i64; 7]> {
    let mut lines: BTreeMap<(i64, i64, Endpoint, Purpose), [i64; 7]> = BTreeMap::new();
    for job in jobs {
        let d = &job.daily;
        let key = (d.licensee_id, DayKey::of(d.at).start().millis(), d.endpoint, d.purpose);
        let line = lines.entry(key).or_default();
        for (total, value) in line.iter_mut().zip([
            1,
            i64::from(d.delivered),
            i64::from(d.counted),
            i64::from(d.overage),
            i64::from(d.user_reads),
            d.bytes as i64,
            d.charged as i64,
        ]) {
            *total += value;
        }
    }
    lines
}

//! `datapact migrate`: moves a data directory's embedded store (`datapact.db`) and metering ledger
//! (`ledger.db`) into a PostgreSQL store (issue 9, item 5).
//!
//! - **The source is still.** The data directory's writer lock ([`ledger::LEDGER_LOCK`], the one a
//!   serving gateway holds) is held for the whole run, so no gateway meters into the ledger while it
//!   is copied; both files are read inside one read transaction each, so the copy is one consistent
//!   snapshot even if a CLI command writes `datapact.db` meanwhile. The target's one gateway slot
//!   ([`PgStore::claim_gateway`]) is held too: no gateway serves the target while it fills.
//! - **Table by table, in foreign-key order** (parents first, from the target's constraints), in
//!   batches of [`BATCH_ROWS`] rows (one `INSERT … SELECT * FROM UNNEST(…)` per batch), each value
//!   converted to its PostgreSQL column's type (read from `information_schema`). A table is copied
//!   in one transaction that also records it in `migration_progress` (store migration 7), so a
//!   table is either copied whole and recorded, or not at all.
//! - **Safe to re-run.** Before copying anything every table is checked: recorded tables must hold
//!   exactly the rows recorded, which must be the source's count (else the source changed since,
//!   or it is another one); tables not recorded must be empty (else the target holds someone
//!   else's data, and nothing is done). A run after an interruption copies what is missing; a run
//!   after success copies nothing and says so.
//! - **Verified.** Row counts per table on both sides, and the ledger: both chains walked, and the
//!   `sqlite` chain's head in PostgreSQL must be the embedded ledger's head.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use datapact_core::Clock;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::ledger::{self, LEDGER_FILE, Ledger, SQLITE_CHAIN};
use crate::secrets::SecretRing;
use crate::{PgStore, SQLITE_FILE, SqliteStore, StoreError, StoreResult};

/// Rows per `INSERT` statement.
pub const BATCH_ROWS: usize = 5_000;

/// Where a table stands, as reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    /// Rows are being copied (`copied` of `total` so far, not yet committed).
    Copying,
    /// Copied and committed by this run.
    Copied,
    /// Copied by an earlier run (recorded in `migration_progress`): left alone.
    AlreadyCopied,
}

/// One progress report: a table's rows copied so far.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub table: &'a str,
    pub copied: u64,
    pub total: u64,
    pub state: TableState,
}

/// One table of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TableReport {
    pub table: String,
    /// `datapact.db` or `ledger.db`.
    pub source_file: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Rows this run copied (0 when an earlier run had).
    pub copied: u64,
    pub state: TableState,
}

/// What a migration did and found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MigrationReport {
    /// Nothing was copied: every table already held the source's rows.
    pub already_migrated: bool,
    pub tables: Vec<TableReport>,
    /// Sequences moved past the copied ids, as `table.column`.
    pub sequences_moved: Vec<String>,
    /// Versions of the fingerprint secret ring now in the store.
    pub ring_versions: usize,
    /// The embedded ledger's head (`SEQ:HASH`), `None` when it has no batch.
    pub sqlite_head: Option<String>,
    /// The `sqlite` chain's head in PostgreSQL after the copy.
    pub postgres_head: Option<String>,
    /// Every disagreement found by the final check; empty when the copy is verified.
    pub mismatches: Vec<String>,
}

impl MigrationReport {
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The embedded store's tables that are not copied row for row, and why:
/// - `meta` holds the change counter, which the target's migrations already created and its
///   triggers bump on every insert of the copy; it is merged (each key the greater of both).
/// - `fingerprint_ring` is empty in an embedded store (its ring is the data directory's file);
///   the ring is moved by [`SecretRing::sync_with_store`], as `serve` does on a shared store.
const MERGED_META: &str = "meta";
const RING_TABLE: &str = "fingerprint_ring";

/// A table to copy: where it comes from and its columns (SQLite's names, in SQLite's order).
struct Table {
    name: String,
    source_file: &'static str,
    columns: Vec<String>,
    order_by: Vec<String>,
    /// The statement reading the source's rows, in `columns`' order, with [`SQLITE_CHAIN`] as its
    /// parameter, for a table not laid out as PostgreSQL's (see [`ledger_deliveries`]).
    select: Option<String>,
}

/// The ledger's deliveries: SQLite keys each by its position in its one chain and reads its
/// request from its usage event (ledger migration 5); PostgreSQL stores all three per row.
fn ledger_deliveries() -> Table {
    let columns =
        ["chain", "seq", "ordinal", "licensee_id", "request_id", "post_id", "revision", "at", "counted", "digest"];
    Table {
        name: "deliveries".into(),
        source_file: LEDGER_FILE,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        order_by: Vec::new(),
        select: Some(format!("SELECT ?1 AS chain, * FROM ({})", ledger::DELIVERY_CHAIN_ROWS_SQL)),
    }
}

/// A PostgreSQL column type the copy converts to.
#[derive(Clone, Copy, Debug)]
enum PgType {
    Int8,
    Int4,
    Int2,
    Bool,
    Text,
    Bytea,
}

impl PgType {
    fn parse(data_type: &str) -> Option<PgType> {
        Some(match data_type {
            "bigint" => PgType::Int8,
            "integer" => PgType::Int4,
            "smallint" => PgType::Int2,
            "boolean" => PgType::Bool,
            "text" => PgType::Text,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }

    fn array(self) -> &'static str {
        match self {
            PgType::Int8 => "bigint[]",
            PgType::Int4 => "integer[]",
            PgType::Int2 => "smallint[]",
            PgType::Bool => "boolean[]",
            PgType::Text => "text[]",
            PgType::Bytea => "bytea[]",
        }
    }

    fn column(self) -> Column {
        match self {
            PgType::Int8 => Column::Int8(Vec::new()),
            PgType::Int4 => Column::Int4(Vec::new()),
            PgType::Int2 => Column::Int2(Vec::new()),
            PgType::Bool => Column::Bool(Vec::new()),
            PgType::Text => Column::Text(Vec::new()),
            PgType::Bytea => Column::Bytea(Vec::new()),
        }
    }
}

/// One column of a batch, as the array bound to its `UNNEST` argument.
enum Column {
    Int8(Vec<Option<i64>>),
    Int4(Vec<Option<i32>>),
    Int2(Vec<Option<i16>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Bytea(Vec<Option<Vec<u8>>>),
}

impl Column {
    /// Appends one SQLite value converted to this column's type; `Err` names what does not fit.
    fn push(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        let integer = |value: ValueRef<'_>| match value {
            ValueRef::Integer(n) => Ok(Some(n)),
            ValueRef::Null => Ok(None),
            other => Err(format!("a {:?} where PostgreSQL wants an integer", other.data_type())),
        };
        match self {
            Column::Int8(values) => values.push(integer(value)?),
            Column::Int4(values) => values.push(
                integer(value)?
                    .map(|n| i32::try_from(n).map_err(|_| format!("{n} does not fit an INTEGER column")))
                    .transpose()?,
            ),
            Column::Int2(values) => values.push(
                integer(value)?
                    .map(|n| i16::try_from(n).map_err(|_| format!("{n} does not fit a SMALLINT column")))
                    .transpose()?,
            ),
            Column::Bool(values) => values.push(match integer(value)? {
                None => None,
                Some(0) => Some(false),
                Some(1) => Some(true),
                Some(n) => return Err(format!("{n} is not a boolean (0 or 1)")),
            }),
            Column::Text(values) => values.push(match value {
                ValueRef::Text(text) => {
                    Some(String::from_utf8(text.to_vec()).map_err(|_| "text that is not UTF-8".to_owned())?)
                }
                ValueRef::Null => None,
                other => return Err(format!("a {:?} where PostgreSQL wants text", other.data_type())),
            }),
            Column::Bytea(values) => values.push(match value {
                ValueRef::Blob(bytes) => Some(bytes.to_vec()),
                ValueRef::Null => None,
                other => return Err(format!("a {:?} where PostgreSQL wants bytes", other.data_type())),
            }),
        }
        Ok(())
    }

    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        match self {
            Column::Int8(values) => query.bind(values),
            Column::Int4(values) => query.bind(values),
            Column::Int2(values) => query.bind(values),
            Column::Bool(values) => query.bind(values),
            Column::Text(values) => query.bind(values),
            Column::Bytea(values) => query.bind(values),
        }
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn mismatch(message: String) -> StoreError {
    StoreError::Invalid(format!(
        "schema mismatch between the SQLite data directory and the PostgreSQL store: {message}. Both are brought \
         to this datapact's newest schema first, so this is a bug in datapact: nothing was copied; report it"
    ))
}

/// Opens a SQLite file read-only and starts the read transaction every read of the run shares.
fn open_snapshot(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("BEGIN")?;
    // The snapshot is taken by the first read: take it now, for both files before any copy.
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get::<_, i64>(0))?;
    Ok(conn)
}

fn source_tables(conn: &Connection, source_file: &'static str) -> StoreResult<Vec<Table>> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for name in names {
        if source_file == LEDGER_FILE && name == "deliveries" {
            tables.push(ledger_deliveries());
            continue;
        }
        let mut columns = Vec::new();
        let mut key: Vec<(i64, String)> = Vec::new();
        let mut statement = conn.prepare(&format!("PRAGMA table_info({})", quote(&name)))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(1)?;
            let pk: i64 = row.get(5)?;
            if pk > 0 {
                key.push((pk, column.clone()));
            }
            columns.push(column);
        }
        key.sort();
        let order_by =
            if key.is_empty() { vec!["rowid".to_owned()] } else { key.into_iter().map(|(_, c)| c).collect() };
        tables.push(Table { name, source_file, columns, order_by, select: None });
    }
    Ok(tables)
}

/// A delivery row that follows no usage event of its batch has no request to copy into PostgreSQL
/// (where every delivery names it). Only an edit of `ledger.db` makes one: nothing is copied.
fn refuse_orphan_deliveries(ledger_db: &Connection) -> StoreResult<()> {
    let sql =
        format!("SELECT seq, ordinal FROM ({}) WHERE request_id IS NULL LIMIT 1", ledger::DELIVERY_CHAIN_ROWS_SQL);
    let orphan = ledger_db
        .query_row(&sql, [SQLITE_CHAIN], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
        .optional()?;
    match orphan {
        Some((seq, ordinal)) => Err(StoreError::Invalid(format!(
            "{LEDGER_FILE} does not verify: the delivery row at batch {seq}, row {ordinal} follows no usage event of \
             its batch, so it has no request to copy. Run `datapact ledger verify` to see what was edited; nothing \
             was copied"
        ))),
        None => Ok(()),
    }
}

fn source_count(conn: &Connection, table: &str) -> StoreResult<u64> {
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {}", quote(table)), [], |row| row.get::<_, i64>(0))? as u64)
}

async fn target_count(conn: &mut PgConnection, table: &str) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(table))).fetch_one(conn).await?;
    Ok(count as u64)
}

/// The target's column types by table and column.
async fn target_columns(conn: &mut PgConnection) -> StoreResult<HashMap<String, HashMap<String, String>>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema()",
    )
    .fetch_all(conn)
    .await?;
    let mut tables: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (table, column, data_type) in rows {
        tables.entry(table).or_default().insert(column, data_type);
    }
    Ok(tables)
}

/// Orders `tables` so each comes after the tables its foreign keys name (from the target's
/// constraints); ties by name, so every run copies in the same order.
async fn foreign_key_order(conn: &mut PgConnection, tables: Vec<Table>) -> StoreResult<Vec<Table>> {
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint c
         JOIN pg_class child ON child.oid = c.conrelid
         JOIN pg_class parent ON parent.oid = c.confrelid
         JOIN pg_namespace n ON n.oid = child.relnamespace
         WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(conn)
    .await?;
    let mut by_name: BTreeMap<String, Table> = tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut parents: BTreeMap<String, BTreeSet<String>> =
        by_name.keys().map(|n| (n.clone(), BTreeSet::new())).collect();
    for (child, parent) in edges {
        if child != parent
            && by_name.contains_key(&parent)
            && let Some(set) = parents.get_mut(&child)
        {
            set.insert(parent);
        }
    }
    let mut ordered = Vec::new();
    while !by_name.is_empty() {
        let ready = by_name
            .keys()
            .find(|name| parents[*name].iter().all(|p| !by_name.contains_key(p)))
            .cloned()
            .ok_or_else(|| mismatch("the foreign keys of the target's tables form a cycle".into()))?;
        ordered.push(by_name.remove(&ready).expect("a key just found"));
    }
    Ok(ordered)
}

/// A write transaction on the target, under the store's writer lock (see [`PgStore`]), so no
/// other writer of the target interleaves with the copy.
async fn begin(pg: &PgStore) -> StoreResult<Transaction<'static, Postgres>> {
    let mut tx = pg.pool().begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
    sqlx::query("LOCK TABLE writer_lock IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    Ok(tx)
}

/// Copies one table in one transaction, recording it in `migration_progress` in the same one.
async fn copy_table(
    source: &Connection,
    pg: &PgStore,
    table: &Table,
    types: &[PgType],
    total: u64,
    now: i64,
    progress: &dyn Fn(Progress<'_>),
) -> StoreResult<u64> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
    let arguments: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::{}", i + 1, t.array())).collect();
    // Explicit ids go into identity columns as they are: they are `GENERATED BY DEFAULT`, which
    // takes a given value (no OVERRIDING clause needed); their sequences are moved past the copied
    // ids afterwards. The target's triggers all allow inserts: the change counter's are bumped
    // (harmless: `meta` is merged after the copy) and the gapless numbering of invoices and credit
    // notes (`seq` = the largest plus one) holds because rows are read in key order and `UNNEST`
    // feeds them to the insert in that order, each row's trigger seeing the rows before it.
    let insert = format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        quote(&table.name),
        columns.join(", "),
        arguments.join(", ")
    );
    let select = table.select.clone().unwrap_or_else(|| {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            quote(&table.name),
            table.order_by.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
        )
    });
    let mut tx = begin(pg).await?;
    let result = async {
        let mut statement = source.prepare(&select)?;
        let mut rows = match table.select {
            Some(_) => statement.query([SQLITE_CHAIN])?,
            None => statement.query([])?,
        };
        let mut copied = 0u64;
        loop {
            let mut batch: Vec<Column> = types.iter().map(|t| t.column()).collect();
            let mut in_batch = 0usize;
            while in_batch < BATCH_ROWS {
                let Some(row) = rows.next()? else { break };
                for (index, column) in batch.iter_mut().enumerate() {
                    column.push(row.get_ref(index)?).map_err(|why| {
                        StoreError::Invalid(format!(
                            "{}.{} in {} holds {why}: cannot copy it",
                            table.name, table.columns[index], table.source_file
                        ))
                    })?;
                }
                in_batch += 1;
            }
            if in_batch == 0 {
                break;
            }
            let mut query = sqlx::query(&insert);
            for column in batch {
                query = column.bind(query);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Unavailable(format!("copying {} into PostgreSQL failed: {e}", table.name)))?;
            copied += in_batch as u64;
            progress(Progress { table: &table.name, copied, total, state: TableState::Copying });
        }
        sqlx::query("INSERT INTO migration_progress (table_name, source_rows, copied_at) VALUES ($1, $2, $3)")
            .bind(&table.name)
            .bind(copied as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Ok::<u64, StoreError>(copied)
    }
    .await;
    match result {
        Ok(copied) => {
            tx.commit().await?;
            Ok(copied)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Merges the embedded store's `meta` rows into the target's: each key takes the greater value,
/// so the change counter never moves backwards for a gateway that polls it.
async fn merge_meta(source: &Connection, pg: &PgStore) -> StoreResult<bool> {
    let rows: Vec<(String, i64)> = source
        .prepare("SELECT key, value FROM meta ORDER BY key")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut tx = begin(pg).await?;
    let mut changed = false;
    for (key, value) in rows {
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE meta.value < EXCLUDED.value",
        )
        .bind(&key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        changed |= done.rows_affected() > 0;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Moves every identity sequence of `tables` past the largest id they hold (only ever forward),
/// so the next insert on PostgreSQL does not collide with a copied id.
async fn move_sequences(pg: &PgStore, tables: &[String]) -> StoreResult<Vec<String>> {
    let mut conn = pg.pool().acquire().await?;
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name, column_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut moved = Vec::new();
    for (table, column) in identities {
        if !tables.contains(&table) {
            continue;
        }
        let sequence: String = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
            .bind(quote(&table))
            .bind(&column)
            .fetch_one(&mut *conn)
            .await?;
        let largest: Option<i64> =
            sqlx::query_scalar(&format!("SELECT MAX({}) FROM {}", quote(&column), quote(&table)))
                .fetch_one(&mut *conn)
                .await?;
        let (last, called): (i64, bool) =
            sqlx::query_as(&format!("SELECT last_value, is_called FROM {sequence}")).fetch_one(&mut *conn).await?;
        let next = if called { last + 1 } else { last };
        let wanted = largest.unwrap_or(0) + 1;
        if next < wanted {
            sqlx::query("SELECT setval($1::regclass, $2, false)")
                .bind(&sequence)
                .bind(wanted)
                .execute(&mut *conn)
                .await?;
            moved.push(format!("{table}.{column}"));
        }
    }
    Ok(moved)
}

fn chain_head(report: &ledger::VerifyReport) -> Option<String> {
    report
        .chains
        .iter()
        .find(|summary| summary.chain == SQLITE_CHAIN)
        .and_then(|summary| summary.head)
        .map(|head| format!("{}:{}", head.seq, head.hash.to_hex()))
}

/// Copies the data directory's embedded store and ledger into `pg`, then verifies the copy
/// (see the module docs). `progress` is called as rows are copied. Errors before the copy change
/// nothing; a [`MigrationReport`] with mismatches means the copy finished but does not verify.
pub async fn migrate(
    data_dir: &Path,
    pg: &PgStore,
    clock: Arc<dyn Clock>,
    progress: &dyn Fn(Progress<'_>),
) -> StoreResult<MigrationReport> {
    let store_file = data_dir.join(SQLITE_FILE);
    if !store_file.is_file() {
        return Err(StoreError::NotFound(format!(
            "{} does not exist: --from names a data directory of the embedded store (the one `--data-dir` names)",
            store_file.display()
        )));
    }
    // Held to the end: no gateway may serve (and meter into) the directory while it is copied.
    let _lock = ledger::lock_data_dir(data_dir).map_err(|error| match error {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "a gateway (or another migrate) is serving from {}: stop it first, so nothing is metered into the \
             embedded ledger after it is copied; nothing was copied",
            data_dir.display()
        )),
        other => other,
    })?;
    // Held to the end: no gateway may serve the target while it fills.
    let _claim = pg.claim_gateway().await.map_err(|error| match error {
        StoreError::Conflict(_) => StoreError::Conflict(
            "a gateway is serving from the target PostgreSQL store: stop it first; nothing was copied".into(),
        ),
        other => other,
    })?;
    // Both files at this datapact's newest schema, as the target is (`PgStore::connect`).
    drop(SqliteStore::open(data_dir)?);
    let sqlite_ledger = Ledger::open_for_reading(data_dir, Arc::clone(&clock))?;
    let store_db = open_snapshot(&store_file)?;
    let ledger_db = open_snapshot(&data_dir.join(LEDGER_FILE))?;

    refuse_orphan_deliveries(&ledger_db)?;

    let mut tables = source_tables(&store_db, SQLITE_FILE)?;
    tables.extend(source_tables(&ledger_db, LEDGER_FILE)?);
    let mut conn = pg.pool().acquire().await?;
    let target = target_columns(&mut conn).await?;
    let mut plan = Vec::new();
    for table in tables {
        if table.name == MERGED_META || table.name == RING_TABLE {
            continue;
        }
        let Some(columns) = target.get(&table.name) else {
            return Err(mismatch(format!(
                "{} has table {}, which the PostgreSQL store lacks",
                table.source_file, table.name
            )));
        };
        let mut types = Vec::new();
        for column in &table.columns {
            let data_type = columns
                .get(column)
                .ok_or_else(|| mismatch(format!("{}.{} has no column in the PostgreSQL store", table.name, column)))?;
            types.push(PgType::parse(data_type).ok_or_else(|| {
                mismatch(format!("{}.{} is {data_type} in PostgreSQL, which the copy cannot fill", table.name, column))
            })?);
        }
        plan.push((table, types));
    }
    let types: HashMap<String, Vec<PgType>> = plan.iter().map(|(t, types)| (t.name.clone(), types.clone())).collect();
    let ordered = foreign_key_order(&mut conn, plan.into_iter().map(|(t, _)| t).collect()).await?;

    // Check every table before copying any.
    let recorded: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT table_name, source_rows FROM migration_progress")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let mut counts = Vec::new();
    for table in &ordered {
        let source = source_count(if table.source_file == SQLITE_FILE { &store_db } else { &ledger_db }, &table.name)?;
        let held = target_count(&mut conn, &table.name).await?;
        match recorded.get(&table.name) {
            Some(&rows) if rows as u64 != source => {
                return Err(StoreError::Conflict(format!(
                    "the PostgreSQL store holds an earlier migration's copy of {} ({rows} rows), but {} now has \
                     {source}: the data directory changed since that run, or it is another one. Migrate into an \
                     empty database or schema (e.g. ?options=-csearch_path%3Dnew_schema); nothing was copied",
                    table.name, table.source_file
                )));
            }
            Some(&rows) if rows as u64 != held => {
                return Err(StoreError::Conflict(format!(
                    "{} in the PostgreSQL store has {held} rows but {rows} were copied into it: it has been written \
                     since the migration, which is therefore finished; nothing was copied",
                    table.name
                )));
            }
            None if held > 0 => {
                return Err(StoreError::Conflict(format!(
                    "the PostgreSQL store already holds data that no migration copied ({}: {held} rows): migrate \
                     into an empty database or schema (e.g. ?options=-csearch_path%3Dnew_schema); nothing was copied",
                    table.name
                )));
            }
            _ => {}
        }
        counts.push((source, recorded.contains_key(&table.name)));
    }
    drop(conn);

    let now = clock.now().millis();
    let mut reports = Vec::new();
    let mut copied_any = false;
    for (table, (source, done)) in ordered.iter().zip(counts) {
        let db = if table.source_file == SQLITE_FILE { &store_db } else { &ledger_db };
        let (copied, state) = if done {
            progress(Progress { table: &table.name, copied: source, total: source, state: TableState::AlreadyCopied });
            (0, TableState::AlreadyCopied)
        } else {
            let copied = copy_table(db, pg, table, &types[&table.name], source, now, progress).await?;
            progress(Progress { table: &table.name, copied, total: source, state: TableState::Copied });
            copied_any = true;
            (copied, TableState::Copied)
        };
        reports.push(TableReport {
            table: table.name.clone(),
            source_file: table.source_file,
            source_rows: source,
            target_rows: 0,
            copied,
            state,
        });
    }
    copied_any |= merge_meta(&store_db, pg).await?;
    let names: Vec<String> = ordered.iter().map(|t| t.name.clone()).collect();
    let sequences_moved = move_sequences(pg, &names).await?;
    let ring = SecretRing::sync_with_store(data_dir, pg, clock.now()).await?;

    // Verify: counts, then the ledger on both sides.
    let mut mismatches = Vec::new();
    let mut conn = pg.pool().acquire().await?;
    for report in &mut reports {
        report.target_rows = target_count(&mut conn, &report.table).await?;
        if report.target_rows != report.source_rows {
            mismatches.push(format!(
                "{}: {} rows in {}, {} in PostgreSQL",
                report.table, report.source_rows, report.source_file, report.target_rows
            ));
        }
    }
    let meta_source = source_count(&store_db, MERGED_META)?;
    let meta_target = target_count(&mut conn, MERGED_META).await?;
    if meta_source != meta_target {
        mismatches.push(format!("meta: {meta_source} rows in {SQLITE_FILE}, {meta_target} in PostgreSQL"));
    }
    drop(conn);
    let sqlite_head = match sqlite_ledger.verify(&[]).await? {
        Ok(report) => chain_head(&report),
        Err(failure) => {
            mismatches.push(format!("the embedded ledger does not verify: {failure}"));
            None
        }
    };
    let postgres_head = match Ledger::open_postgres_for_reading(pg, clock).verify(&[]).await? {
        Ok(report) => chain_head(&report),
        Err(failure) => {
            mismatches.push(format!("the ledger in PostgreSQL does not verify: {failure}"));
            None
        }
    };
    if sqlite_head != postgres_head {
        mismatches.push(format!(
            "the ledger's heads differ: {} in {LEDGER_FILE}, {} in PostgreSQL",
            sqlite_head.as_deref().unwrap_or("none"),
            postgres_head.as_deref().unwrap_or("none")
        ));
    }
    Ok(MigrationReport {
        already_migrated: !copied_any && sequences_moved.is_empty(),
        tables: reports,
        sequences_moved,
        ring_versions: ring.versions().count(),
        sqlite_head,
        postgres_head,
        mismatches,
    })
}

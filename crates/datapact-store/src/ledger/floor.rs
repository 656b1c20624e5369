//! Floors for the metering benchmark (`bench/metering_floor.sh`): batch sinks that keep less than
//! the ledger does, to measure how much of metering's cost is the writer's storage and how much
//! is inherent to committing before answering. Compiled only with the `ledger-floor` feature and
//! chosen by `DATAPACT_LEDGER_FLOOR`; **a gateway running one does not meter**: `null` keeps
//! nothing, `log` keeps only a throwaway file that nothing reads back.
//!
//! - `null`: seals each batch onto the chain and answers at once. What is left of metering's cost
//!   is the request side (reservation, rendering the checkpoint header), the hand-off to the writer
//!   thread and back, and the seal.
//! - `log`: `null`, plus each batch's header and encoded rows written with one `pwrite` into a
//!   preallocated file and made durable with one `fdatasync`: the least a durable ledger with one
//!   flush per batch can cost on this disk (no pages, no B-trees, no WAL index).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use datapact_ledger::encoding::{encode_header, encode_row};
use datapact_ledger::{Anchor, Row, SealedBatch};

use super::writer::{BatchSink, WriteError};
use super::{Job, unavailable};
use crate::StoreResult;

/// The environment variable that picks a floor: `null` or `log`.
pub const FLOOR_VARIABLE: &str = "DATAPACT_LEDGER_FLOOR";
/// The `log` floor's file: preallocated, then written round and round.
const LOG_BYTES: u64 = 64 << 20;

pub(super) enum FloorSink {
    Null,
    Log { file: File, offset: u64, buffer: Vec<u8> },
}

impl FloorSink {
    /// The floor `DATAPACT_LEDGER_FLOOR` names, if set; its `log` file goes in `data_dir`.
    pub(super) fn from_environment(data_dir: &Path) -> StoreResult<Option<FloorSink>> {
        let Some(value) = std::env::var_os(FLOOR_VARIABLE) else { return Ok(None) };
        let name = value.to_string_lossy();
        let sink = match &*name {
            "null" => FloorSink::Null,
            "log" => {
                let path = data_dir.join("ledger-floor.log");
                let prepared =
                    File::options().create(true).truncate(true).read(true).write(true).open(&path).and_then(|file| {
                        file.write_all_at(&vec![0; LOG_BYTES as usize], 0)?;
                        file.sync_all()?;
                        Ok(file)
                    });
                let file = prepared.map_err(|e| unavailable(format!("cannot prepare {}: {e}", path.display())))?;
                FloorSink::Log { file, offset: 0, buffer: Vec::new() }
            }
            other => {
                return Err(unavailable(format!("{FLOOR_VARIABLE}={other}: the floors are `null` and `log`")));
            }
        };
        tracing::warn!(floor = %name, "LEDGER FLOOR: responses are NOT metered (benchmark build)");
        Ok(Some(sink))
    }
}

impl BatchSink for FloorSink {
    fn head(&mut self, _chain: &str) -> StoreResult<Option<Anchor>> {
        Ok(None)
    }

    fn write(&mut self, sealed: &SealedBatch, rows: &[Row], _jobs: &[Job]) -> Result<(), WriteError> {
        let FloorSink::Log { file, offset, buffer } = self else { return Ok(()) };
        buffer.clear();
        buffer.extend_from_slice(&encode_header(&sealed.header));
        for row in rows {
            buffer.extend_from_slice(&encode_row(row));
        }
        if *offset + buffer.len() as u64 > LOG_BYTES {
            *offset = 0;
        }
        let written = file.write_all_at(buffer, *offset).and_then(|()| file.sync_data());
        written.map_err(|e| WriteError::Failed(unavailable(format!("the floor's log failed: {e}"))))?;
        *offset += buffer.len() as u64;
        Ok(())
    }
}

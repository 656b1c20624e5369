//! Purposes live in `datapact-core` (ingest and keys need them too); re-exported here because
//! agreements grant them.

pub use datapact_core::purpose::{Purpose, purposes_cover};

//! # datapact-trace
//!
//! Tracing a leaked dump back to the licensees whose fingerprinted copies it holds.
//!
//! A [`Tracer`] streams each leak ([`LeakFormat`]: JSON Lines of X-shaped posts or
//! response pages, CSV with a `text` column, or plain text; never the whole file in
//! memory) in chunks processed in parallel, and for every record:
//!
//! * matches it to a [`Corpus`] post by id when the leak kept one (picking the revision
//!   whose normalised text equals the leaked text's, else the latest), else by normalised
//!   text ([`match_key`]: robust to whitespace, case, punctuation and every typographic
//!   fingerprint);
//! * reads the fingerprint sites of the first copy of each post under every secret version
//!   ([`datapact_mark::PreparedPost::read`]);
//! * scans where the leak holds post texts (a text dump's or a CSV's bytes, a JSON line's
//!   decoded text fields) for canary texts (Aho–Corasick), and matches normalised records
//!   against them.
//!
//! Evidence is added in leak order and judged in stages fixed in advance by site counts
//! (stage `k` at ε·2^-k, split over the secret versions), so the whole trace accuses an
//! innocent licensee with probability below ε while a huge leak is decided on its first
//! few thousand sites. The result is a [`TraceReport`] (serde) with a text rendering.
//! The crate does no I/O of its own beyond the readers it is given.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod canary;
mod corpus;
mod deletion;
mod engine;
mod input;
mod judge;
mod report;

pub use canary::{Canary, CanaryHit};
pub use corpus::{Corpus, CorpusBuilder, RevisionRef, match_key};
pub use deletion::{DeletedInLeak, DeletionVerdict, Witness, judge_deletions};
pub use engine::{Candidate, TraceError, TraceOutcome, TraceSettings, Tracer};
pub use input::{LeakFormat, sniff};
pub use judge::BOUNDED_TOP;
pub use report::{
    AccusedLicensee, CanaryHitReport, InputSummary, LicenseeScore, MalformedLine, MoreEvidenceEstimate, RecordCounts,
    StageSummary, TraceReport, VersionSummary,
};

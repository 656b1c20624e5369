//! The pure core of datapact's metering ledger: what is recorded, how it is counted, how its history is sealed, and
//! how it is read back. No I/O, no clock, no SQL: the store writes what this crate computes, and the gateway acts on
//! its decisions.
//!
//! # What the ledger guarantees, and where
//!
//! | guarantee | protected by |
//! |-----------|--------------|
//! | every response is one [`UsageEvent`] and one [`Delivery`] per post, committed before the body leaves | the store (this crate defines the rows) |
//! | counted records never exceed a hard cap, not by one; a crossing page is cut to what is left; at the cap, 429 | [`meter::meter_page`] (asserted and property-tested), applied by the store's single writer to the authoritative month total |
//! | the request is never refused while capacity remains | [`meter::meter_page`] (property-tested) |
//! | daily dedup: the same post to the same licensee counts once per UTC day | [`meter::meter_page`] with the store's "counted today" set, [`calendar::DayKey`] |
//! | a soft cap serves on and reports every record past it as overage | [`meter::Allotment::overage`] |
//! | the cap resets at the first instant of the next UTC month | [`calendar::cap_reset`], [`calendar::MonthKey`] |
//! | history cannot be edited, deleted, inserted or reordered unnoticed; `ledger verify` names the first break | [`encoding`] (canonical bytes), [`chain::ChainWriter`] (sealing), [`chain::Verifier`] (checking) |
//! | a retried `Idempotency-Key` replays the same records and counts them once; a reused key with another request is refused | [`idempotency::decide`] |
//! | `GET /2/usage/tweets` reports exactly what was counted, in X's shape | [`usage::usage_view`] |
//! | a signed checkpoint names every chain's head; a ledger that no longer passes through it is caught | [`checkpoint::SignedCheckpoint::verify`] (signature), [`chain::Verifier::expect`] (the heads as anchors) |
//!
//! # Counting
//!
//! A *record* is a post object in a response's `data`. User objects are reported as `user_reads` but never counted
//! against the post cap. Each delivered post is a [`Delivery`] with `counted` saying whether it cost a record; the
//! response's [`UsageEvent`] carries the totals. See [`meter`] for the exact rules. [`meter::meter_page`] is pure, so
//! it is exact under concurrency only if each licensee's decisions are taken one at a time against the committed
//! month total plus what is already allotted to in-flight requests — the store's writer does that, and commits the
//! decision before the response is sent.
//!
//! If a group commit fails, every request metered into it, *and every request metered after it*, fails closed (503,
//! no data), and the writer reloads its totals from what was committed: a later request may have been allotted a
//! post as free ("already counted today") on the strength of the failed one, so it must not be served either.
//!
//! # The flow, end to end
//!
//! ```
//! use datapact_core::{Endpoint, KeyPrefix, Timestamp, purpose::Purpose};
//! use datapact_ledger::{
//!     Cap, ChainWriter, Dedup, Metered, StoredBatch, StoredRow, UsageEvent, meter_page, response_rows, verify,
//! };
//!
//! // 998 of 1,000 counted this month; post 11 was already counted today.
//! let page = [(10, 1), (11, 1), (12, 2), (13, 1)];
//! let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
//! let Metered::Serve(allotment) = meter_page(998, Cap::hard(1_000), Dedup::Daily, &ids, |id| id == 11) else {
//!     unreachable!("capacity remains")
//! };
//! assert_eq!((allotment.delivered, allotment.counted, allotment.cut), (3, 2, true));
//!
//! // Render the allotted prefix, then record it before sending.
//! let event = UsageEvent {
//!     licensee_id: 7,
//!     key_prefix: KeyPrefix("dp_0123456789ab".into()),
//!     endpoint: Endpoint::Search,
//!     purpose: Purpose::AiInput,
//!     request_id: "req-1".into(),
//!     idempotency_key: None,
//!     at: Timestamp(1_764_348_720_000),
//!     delivered: 3,
//!     counted: allotment.counted,
//!     user_reads: 2,
//!     bytes: 1_234,
//!     charged: 0,
//! };
//! let rows = response_rows(event, &page[..allotment.delivered], &allotment.counts, &[]);
//!
//! // The store's writer seals each group commit onto the chain and writes it in one transaction.
//! let mut writer = ChainWriter::genesis("sqlite");
//! let sealed = writer.seal(&rows, Timestamp(1_764_348_720_003));
//! let stored = StoredBatch {
//!     header: sealed.header,
//!     hash: sealed.hash,
//!     rows: Some(rows.into_iter().zip(sealed.row_digests).map(|(row, digest)| StoredRow { row, digest }).collect()),
//! };
//! let summary = verify("sqlite", [&stored]).unwrap();
//! assert_eq!((summary.batches, summary.rows), (1, 4));
//! ```
//!
//! # The hash chain
//!
//! Rows are written in commit batches (group commit). Each batch gets a [`chain::BatchHeader`] holding its chain's
//! name, a gapless `seq`, the previous batch's hash (zeros for the first), the hash of its rows and their count; each
//! row is stored with its digest, which chains the rows of its batch. [`chain`] explains the hashes; [`encoding`]
//! gives the canonical, versioned, length-prefixed bytes they are computed over.
//!
//! ## One chain per writer (multi-node stores)
//!
//! A chain has exactly one writer, so `seq` and `prev_hash` never race. The embedded SQLite store has one chain,
//! named `"sqlite"`. A multi-node store keeps one chain per node (or per partition): each node seals its own batches
//! with its own [`chain::ChainWriter`] under its own name, stores them keyed by `(chain, seq)`, and `ledger verify`
//! checks every chain separately. No cross-node coordination is needed to append, and a node's history can be
//! verified without any other node's. Counting across nodes is a separate matter (a licensee's cap must be enforced
//! by one owner at a time — e.g. the partition owning that licensee), and is not the chain's job.
//!
//! ## Pruning old deliveries
//!
//! Deliveries are kept for a configured time (default 3 years). Pruning deletes whole batches' rows, oldest first,
//! and **keeps their headers and hashes** (about a hundred bytes per batch). A pruned batch is then a
//! [`chain::StoredBatch`] with `rows: None`: verification still walks every header from the genesis and checks each
//! link, and checks rows only where they are kept. If the old headers must go too, keep the hash of the last dropped
//! batch as an [`chain::Anchor`] and start with [`chain::Verifier::after`]: the first retained batch's `prev_hash`
//! must equal it. Pruning never edits a retained batch, so nothing retained needs re-hashing.
//!
//! ## The newest batch
//!
//! From inside the database, only the newest batch can be rewritten whole (rows, digests, header and hash) without a
//! trace, or deleted. [`chain::VerifySummary::head`] is therefore meant to be recorded outside the database (in the
//! operator's log or anywhere append-only) and checked next time with [`chain::Verifier::expect`].

pub mod calendar;
pub mod chain;
pub mod checkpoint;
pub mod encoding;
pub mod idempotency;
pub mod meter;
pub mod record;
pub mod usage;

pub use calendar::{DayKey, MonthKey, cap_reset};
pub use checkpoint::{
    ChainHead, Checkpoint, CheckpointError, CheckpointJson, JwkSet, PublicKey, SignedCheckpoint, SigningKey,
};
/// The agreement's cap and dedup rules, from `datapact-terms` (re-exported so callers need not name that crate).
pub use datapact_terms::{CapMode, Dedup, MonthlyRecords};

pub use chain::{
    Anchor, BatchHeader, ChainBreak, ChainWriter, Digest, GENESIS, SealedBatch, StoredBatch, StoredRow, Verifier,
    VerifySummary, verify,
};
pub use idempotency::{IdempotencyDecision, IdempotencyKey, PriorState, PriorUse, RequestFingerprint};
pub use meter::{
    Allotment, Cap, Capped, CreditExhausted, Metered, Prepaid, USAGE_CAPPED, meter_page, meter_page_within_credit,
};
pub use record::{CANARY_REVISION, Delivery, Row, UsageEvent, response_rows};
pub use usage::{DailyCount, UsageView, usage_view};

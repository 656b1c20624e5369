//! The hash chain: commit batches linked by hashes, and the verifier that names the first break.
//!
//! A commit batch is the rows one group commit wrote, in order, plus a [`BatchHeader`]:
//!
//! - each row has a **digest** that chains the rows of its batch:
//!   `digest[i] = SHA-256("datapact-ledger/row/v1\0" · digest[i-1] · encode_row(row[i]))`, with `digest[-1]` all
//!   zeros. The store keeps each row's digest beside it, which is what lets [`Verifier`] name the *row* that broke,
//!   not only the batch;
//! - the header's `rows_hash` is the digest of the last row (all zeros for an empty batch) and `row_count` the
//!   number of rows, so a row appended or dropped at the end is caught too;
//! - the batch hash is `SHA-256("datapact-ledger/batch/v1\0" · encode_header(header))`, and each header's
//!   `prev_hash` is the previous batch's hash ([`GENESIS`], all zeros, for `seq` 1).
//!
//! Editing, inserting, deleting or moving a row changes its digest; rewriting the digests too changes `rows_hash`;
//! rewriting the header changes the batch hash; rewriting the stored hash breaks the next batch's `prev_hash`. Only
//! the newest batch can be rewritten whole without a trace inside the database, which is why [`VerifySummary::head`]
//! is meant to be recorded outside it (logged, published, or sent to the operator) and compared on the next run
//! with [`Verifier::expect`].

use std::fmt;

use datapact_core::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::encoding::{encode_header, encode_row};
use crate::record::Row;

const ROW_DOMAIN: &[u8] = b"datapact-ledger/row/v1\0";
const BATCH_DOMAIN: &[u8] = b"datapact-ledger/batch/v1\0";

/// A SHA-256 value. Displayed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

/// The `prev_hash` of the first batch of every chain: all zeros.
pub const GENESIS: Digest = Digest([0; 32]);

impl Digest {
    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// The header of a commit batch. Its hash (see [`BatchHeader::hash`]) is the next batch's `prev_hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Which chain the batch belongs to: one per writer (`"sqlite"` for the embedded store; a node or partition id in
    /// a multi-node store). Chains never interleave; each has its own `seq` and genesis.
    pub chain: String,
    /// Position in the chain: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// The previous batch's hash; [`GENESIS`] for `seq` 1.
    pub prev_hash: Digest,
    /// The digest of the batch's last row ([`GENESIS`] when it has none).
    pub rows_hash: Digest,
    /// How many rows the batch holds.
    pub row_count: u32,
    /// When the batch was committed.
    pub committed_at: Timestamp,
}

impl BatchHeader {
    /// The batch hash: SHA-256 over the domain tag and the header's canonical encoding.
    pub fn hash(&self) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(BATCH_DOMAIN);
        hasher.update(encode_header(self));
        Digest(hasher.finalize().into())
    }
}

/// One step of a batch's row chain: the digest of `row` after a row whose digest is `prev`.
pub fn row_digest(prev: &Digest, row: &Row) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(ROW_DOMAIN);
    hasher.update(prev.0);
    hasher.update(encode_row(row));
    Digest(hasher.finalize().into())
}

/// The digests of a batch's rows, in order (what the store keeps beside each row).
pub fn row_digests<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<Digest> {
    let mut prev = GENESIS;
    rows.into_iter()
        .map(|row| {
            prev = row_digest(&prev, row);
            prev
        })
        .collect()
}

/// A position in a chain: a batch's `seq` and hash. The newest one is the chain's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The batch's `seq`.
    pub seq: u64,
    /// The batch's hash.
    pub hash: Digest,
}

/// A batch ready to be written: its header, hash and row digests, in the rows' order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBatch {
    /// The header.
    pub header: BatchHeader,
    /// The header's hash.
    pub hash: Digest,
    /// One digest per row, in order.
    pub row_digests: Vec<Digest>,
}

/// The writer's end of one chain: seals each commit batch onto the previous one. One per chain; the store keeps it
/// (or rebuilds it with [`ChainWriter::resume`] from the newest stored header) and seals batches one at a time.
#[derive(Clone, Debug)]
pub struct ChainWriter {
    chain: String,
    head: Option<Anchor>,
}

impl ChainWriter {
    /// A new, empty chain.
    pub fn genesis(chain: impl Into<String>) -> ChainWriter {
        ChainWriter { chain: chain.into(), head: None }
    }

    /// A chain whose newest batch is `head`.
    pub fn resume(chain: impl Into<String>, head: Anchor) -> ChainWriter {
        ChainWriter { chain: chain.into(), head: Some(head) }
    }

    /// The newest batch, if any.
    pub fn head(&self) -> Option<Anchor> {
        self.head
    }

    /// Seals `rows` as the next batch, committed at `committed_at`, and advances the head. The caller writes the
    /// result in one transaction; if that fails it must not use this writer again but resume from what was stored.
    pub fn seal(&mut self, rows: &[Row], committed_at: Timestamp) -> SealedBatch {
        let digests = row_digests(rows);
        let (seq, prev_hash) = match self.head {
            None => (1, GENESIS),
            Some(head) => (head.seq.checked_add(1).expect("fewer than 2^64 batches"), head.hash),
        };
        let header = BatchHeader {
            chain: self.chain.clone(),
            seq,
            prev_hash,
            rows_hash: digests.last().copied().unwrap_or(GENESIS),
            row_count: u32::try_from(rows.len()).expect("a batch holds fewer than 2^32 rows"),
            committed_at,
        };
        let hash = header.hash();
        self.head = Some(Anchor { seq, hash });
        SealedBatch { header, hash, row_digests: digests }
    }
}

/// A row as stored: its value and the digest recorded when it was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRow {
    /// The row.
    pub row: Row,
    /// Its recorded digest.
    pub digest: Digest,
}

/// A batch as stored, for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// The header.
    pub header: BatchHeader,
    /// The hash recorded for it.
    pub hash: Digest,
    /// Its rows in order, or `None` when they were pruned (the header and hash are kept).
    pub rows: Option<Vec<StoredRow>>,
}

/// The first problem [`Verifier`] found. Batches are named by `seq`, rows by their index (from 0) in their batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// A batch of another chain was found among this chain's batches.
    #[error("batch {seq} belongs to chain {found:?}, not {expected:?}")]
    WrongChain { seq: u64, found: String, expected: String },
    /// Sequence numbers jump: the batches in between are missing.
    #[error("batch {expected} is missing: the next batch found is {found}")]
    BatchMissing { expected: u64, found: u64 },
    /// A sequence number repeats or goes back: a batch is duplicated or out of order.
    #[error("batch {found} is out of order or repeated: expected batch {expected}")]
    BatchOutOfOrder { expected: u64, found: u64 },
    /// The header no longer hashes to the hash recorded for it.
    #[error("the header of batch {seq} was edited: it no longer matches its recorded hash")]
    HeaderEdited { seq: u64 },
    /// The header's `prev_hash` is not the previous batch's hash.
    #[error(
        "batch {seq} does not follow batch {previous}: its prev_hash is not that batch's hash \
         (one of the two headers was rewritten, or a batch was replaced)",
        previous = seq.saturating_sub(1)
    )]
    PrevHashMismatch { seq: u64 },
    /// A row does not match its recorded digest (it, or a row before it in the batch, was edited, inserted,
    /// deleted or moved; this is the first row where the batch stops matching).
    #[error(
        "row {index} of batch {seq} does not match its batch's hashes: edited, or rows inserted, deleted or moved here"
    )]
    RowMismatch { seq: u64, index: u32 },
    /// More rows than the header says.
    #[error("batch {seq} has a row {index} that it never committed: the header says {row_count} rows")]
    RowInserted { seq: u64, index: u32, row_count: u32 },
    /// Fewer rows than the header says.
    #[error("batch {seq} is missing rows: the header says {expected}, found {found}")]
    RowsMissing { seq: u64, expected: u32, found: u32 },
    /// The rows match their digests but not the header: the digests were rewritten along with the rows.
    #[error("the rows of batch {seq} do not match its header's rows_hash: rows and their digests were rewritten")]
    RowsHashMismatch { seq: u64 },
    /// The chain does not reach, or does not pass through, an expected anchor.
    #[error("batch {seq} was expected to have hash {expected}, found {found}")]
    AnchorMismatch { seq: u64, expected: Digest, found: String },
}

impl ChainBreak {
    /// The batch where the break was found.
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::WrongChain { seq, .. }
            | ChainBreak::HeaderEdited { seq }
            | ChainBreak::PrevHashMismatch { seq }
            | ChainBreak::RowMismatch { seq, .. }
            | ChainBreak::RowInserted { seq, .. }
            | ChainBreak::RowsMissing { seq, .. }
            | ChainBreak::RowsHashMismatch { seq }
            | ChainBreak::AnchorMismatch { seq, .. } => *seq,
            ChainBreak::BatchMissing { expected, .. } | ChainBreak::BatchOutOfOrder { expected, .. } => *expected,
        }
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// The chain.
    pub chain: String,
    /// The first batch checked (`None` when there were none).
    pub first_seq: Option<u64>,
    /// Batches checked.
    pub batches: u64,
    /// Of those, batches whose rows were pruned (only their headers were checked).
    pub pruned_batches: u64,
    /// Rows checked.
    pub rows: u64,
    /// The newest batch: record it outside the database and pass it to [`Verifier::expect`] next time.
    pub head: Option<Anchor>,
}

/// Checks one chain's batches in `seq` order and stops at the first break. Feed it batches one at a time (so a store
/// can stream them) and call [`Verifier::finish`].
#[derive(Clone, Debug)]
pub struct Verifier {
    chain: String,
    /// The next expected `seq` and the hash its `prev_hash` must equal.
    next: Anchor,
    expected: Vec<Anchor>,
    summary: VerifySummary,
}

impl Verifier {
    /// Verifies a chain from its genesis: the first batch must be `seq` 1 with `prev_hash` [`GENESIS`].
    pub fn new(chain: impl Into<String>) -> Verifier {
        Verifier::after(chain, Anchor { seq: 0, hash: GENESIS })
    }

    /// Verifies a chain from the batch after `anchor`, a batch that is trusted (kept from an earlier verification,
    /// or the last header kept when old headers were deleted).
    pub fn after(chain: impl Into<String>, anchor: Anchor) -> Verifier {
        let chain = chain.into();
        Verifier {
            summary: VerifySummary {
                chain: chain.clone(),
                first_seq: None,
                batches: 0,
                pruned_batches: 0,
                rows: 0,
                head: None,
            },
            chain,
            next: Anchor { seq: anchor.seq.saturating_add(1), hash: anchor.hash },
            expected: Vec::new(),
        }
    }

    /// Also requires the chain to contain `anchor` (a head recorded outside the database): the batch with its
    /// `seq` must have its hash, and [`Verifier::finish`] fails if the chain ends before it.
    pub fn expect(mut self, anchor: Anchor) -> Verifier {
        self.expected.push(anchor);
        self
    }

    /// Checks the next batch.
    pub fn push(&mut self, batch: &StoredBatch) -> Result<(), ChainBreak> {
        let header = &batch.header;
        let seq = header.seq;
        if header.chain != self.chain {
            return Err(ChainBreak::WrongChain { seq, found: header.chain.clone(), expected: self.chain.clone() });
        }
        if seq > self.next.seq {
            return Err(ChainBreak::BatchMissing { expected: self.next.seq, found: seq });
        }
        if seq < self.next.seq {
            return Err(ChainBreak::BatchOutOfOrder { expected: self.next.seq, found: seq });
        }
        let hash = header.hash();
        if hash != batch.hash {
            return Err(ChainBreak::HeaderEdited { seq });
        }
        if header.prev_hash != self.next.hash {
            return Err(ChainBreak::PrevHashMismatch { seq });
        }
        if let Some(anchor) = self.expected.iter().find(|a| a.seq == seq && a.hash != hash) {
            return Err(ChainBreak::AnchorMismatch { seq, expected: anchor.hash, found: hash.to_hex() });
        }
        match &batch.rows {
            None => self.summary.pruned_batches += 1,
            Some(rows) => {
                let mut prev = GENESIS;
                for (index, stored) in rows.iter().enumerate() {
                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                    if index >= header.row_count {
                        return Err(ChainBreak::RowInserted { seq, index, row_count: header.row_count });
                    }
                    prev = row_digest(&prev, &stored.row);
                    if prev != stored.digest {
                        return Err(ChainBreak::RowMismatch { seq, index });
                    }
                }
                let found = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                if found < header.row_count {
                    return Err(ChainBreak::RowsMissing { seq, expected: header.row_count, found });
                }
                if prev != header.rows_hash {
                    return Err(ChainBreak::RowsHashMismatch { seq });
                }
                self.summary.rows += u64::from(found);
            }
        }
        self.summary.first_seq.get_or_insert(seq);
        self.summary.batches += 1;
        self.summary.head = Some(Anchor { seq, hash });
        self.next = Anchor { seq: seq.saturating_add(1), hash };
        Ok(())
    }

    /// Ends verification: fails if an expected anchor lies beyond the last batch (the chain was cut short).
    pub fn finish(self) -> Result<VerifySummary, ChainBreak> {
        if let Some(anchor) = self.expected.iter().find(|a| a.seq >= self.next.seq) {
            return Err(ChainBreak::AnchorMismatch {
                seq: anchor.seq,
                expected: anchor.hash,
                found: "nothing (the chain ends before it)".into(),
            });
        }
        Ok(self.summary)
    }
}

/// Verifies a whole chain from its genesis and names the first break.
pub fn verify<'a>(
    chain: &str,
    batches: impl IntoIterator<Item = &'a StoredBatch>,
) -> Result<VerifySummary, ChainBreak> {
    let mut verifier = Verifier::new(chain);
    for batch in batches {
        verifier.push(batch)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::encoding::tests::row_strategy;

    fn unique(mut row: Row, tag: String) -> Row {
        match &mut row {
            Row::Usage(event) => event.request_id = tag,
            Row::Delivery(delivery) => delivery.request_id = tag,
        }
        row
    }

    /// Batches of distinct rows (1 to 5 batches of 1 to 5 rows), sealed as a store would write them.
    fn build(batches: Vec<Vec<Row>>) -> Vec<StoredBatch> {
        let mut writer = ChainWriter::genesis("sqlite");
        batches
            .into_iter()
            .enumerate()
            .map(|(b, rows)| {
                let rows: Vec<Row> =
                    rows.into_iter().enumerate().map(|(i, row)| unique(row, format!("r{b}-{i}"))).collect();
                let sealed = writer.seal(&rows, Timestamp(1_000 * b as i64));
                StoredBatch {
                    header: sealed.header,
                    hash: sealed.hash,
                    rows: Some(
                        rows.into_iter()
                            .zip(sealed.row_digests)
                            .map(|(row, digest)| StoredRow { row, digest })
                            .collect(),
                    ),
                }
            })
            .collect()
    }

    fn chain_strategy() -> impl Strategy<Value = Vec<StoredBatch>> {
        chains(1)
    }

    /// Chains of `min_batches` to 5 batches.
    fn chains(min_batches: usize) -> impl Strategy<Value = Vec<StoredBatch>> {
        prop::collection::vec(prop::collection::vec(row_strategy(), 1..6), min_batches..6).prop_map(build)
    }

    fn rows_mut(batch: &mut StoredBatch) -> &mut Vec<StoredRow> {
        batch.rows.as_mut().expect("unpruned")
    }

    fn edited(row: &Row) -> Row {
        let mut row = row.clone();
        match &mut row {
            Row::Usage(event) => event.counted = event.counted.wrapping_add(1),
            Row::Delivery(delivery) => delivery.counted = !delivery.counted,
        }
        row
    }

    #[test]
    fn an_empty_chain_verifies() {
        let summary = verify("sqlite", &[]).unwrap();
        assert_eq!((summary.batches, summary.rows, summary.head), (0, 0, None));
    }

    #[test]
    fn breaks_are_named_in_words() {
        let message = ChainBreak::RowMismatch { seq: 7, index: 3 }.to_string();
        assert_eq!(
            message,
            "row 3 of batch 7 does not match its batch's hashes: edited, or rows inserted, deleted or moved here"
        );
        let message = ChainBreak::PrevHashMismatch { seq: 7 }.to_string();
        assert!(message.starts_with("batch 7 does not follow batch 6"), "{message}");
    }

    #[test]
    fn a_genesis_batch_links_to_zeros_and_batches_link_in_order() {
        let mut writer = ChainWriter::genesis("node-a");
        let first = writer.seal(&[], Timestamp(1));
        assert_eq!((first.header.seq, first.header.prev_hash, first.header.rows_hash), (1, GENESIS, GENESIS));
        let second = writer.seal(&[], Timestamp(2));
        assert_eq!((second.header.seq, second.header.prev_hash), (2, first.hash));
        let mut resumed = ChainWriter::resume("node-a", Anchor { seq: 1, hash: first.hash });
        assert_eq!(resumed.seal(&[], Timestamp(2)), second);
        assert_eq!(Digest::from_hex(&first.hash.to_hex()), Some(first.hash));
    }

    proptest! {
        #[test]
        fn an_untouched_chain_verifies(batches in chain_strategy()) {
            let summary = verify("sqlite", &batches).unwrap();
            prop_assert_eq!(summary.batches, batches.len() as u64);
            prop_assert_eq!(summary.rows, batches.iter().map(|b| b.rows.as_ref().unwrap().len() as u64).sum::<u64>());
            let last = batches.last().unwrap();
            prop_assert_eq!(summary.head, Some(Anchor { seq: last.header.seq, hash: last.hash }));
            // And against its own head, recorded outside.
            let mut verifier = Verifier::new("sqlite").expect(summary.head.unwrap());
            for batch in &batches {
                verifier.push(batch).unwrap();
            }
            prop_assert!(verifier.finish().is_ok());
            // Another chain's name does not verify.
            let wrong = verify("node-b", &batches).unwrap_err();
            prop_assert!(matches!(wrong, ChainBreak::WrongChain { seq: 1, .. }), "{:?}", wrong);
        }

        #[test]
        fn an_edited_row_is_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>()) {
            let b = b.index(batches.len());
            let rows = rows_mut(&mut batches[b]);
            let i = i.index(rows.len());
            rows[i].row = edited(&rows[i].row);
            prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::RowMismatch { seq: b as u64 + 1, index: i as u32 }));
        }

        #[test]
        fn a_row_replaced_by_any_other_is_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>(), other in row_strategy()) {
            let b = b.index(batches.len());
            let rows = rows_mut(&mut batches[b]);
            let i = i.index(rows.len());
            prop_assume!(rows[i].row != other);
            rows[i].row = other;
            prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::RowMismatch { seq: b as u64 + 1, index: i as u32 }));
        }

        #[test]
        fn rows_rewritten_with_their_digests_are_caught_by_the_header(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>()) {
            let b = b.index(batches.len());
            let rows = rows_mut(&mut batches[b]);
            let i = i.index(rows.len());
            rows[i].row = edited(&rows[i].row);
            let digests = row_digests(rows.iter().map(|r| &r.row));
            for (row, digest) in rows.iter_mut().zip(digests) {
                row.digest = digest;
            }
            prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::RowsHashMismatch { seq: b as u64 + 1 }));
        }

        #[test]
        fn a_deleted_row_is_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>()) {
            let b = b.index(batches.len());
            let seq = b as u64 + 1;
            let rows = rows_mut(&mut batches[b]);
            let n = rows.len();
            let i = i.index(n);
            rows.remove(i);
            let expected = if i + 1 == n {
                ChainBreak::RowsMissing { seq, expected: n as u32, found: n as u32 - 1 }
            } else {
                ChainBreak::RowMismatch { seq, index: i as u32 }
            };
            prop_assert_eq!(verify("sqlite", &batches), Err(expected));
        }

        #[test]
        fn an_inserted_row_is_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>(), new in row_strategy(), forged in any::<bool>()) {
            let b = b.index(batches.len());
            let seq = b as u64 + 1;
            let rows = rows_mut(&mut batches[b]);
            let n = rows.len();
            let i = i.index(n + 1);
            prop_assume!(rows.iter().all(|stored| stored.row != new));
            let prev = if i == 0 { GENESIS } else { rows[i - 1].digest };
            // A careless insertion copies a neighbour's digest; a careful one computes the right one for its place.
            let digest = if forged { row_digest(&prev, &new) } else { rows[i.min(n - 1)].digest };
            rows.insert(i, StoredRow { row: new, digest });
            let expected = if i == n {
                ChainBreak::RowInserted { seq, index: n as u32, row_count: n as u32 }
            } else if !forged {
                ChainBreak::RowMismatch { seq, index: i as u32 }
            } else if i + 1 == n {
                // The forged row matches; the displaced last row is past the header's count.
                ChainBreak::RowInserted { seq, index: n as u32, row_count: n as u32 }
            } else {
                // The forged row matches; the row it displaced is the first that does not.
                ChainBreak::RowMismatch { seq, index: i as u32 + 1 }
            };
            prop_assert_eq!(verify("sqlite", &batches), Err(expected));
        }

        #[test]
        fn swapped_rows_are_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>(), with_digests in any::<bool>()) {
            let b = b.index(batches.len());
            let rows = rows_mut(&mut batches[b]);
            let n = rows.len();
            if n < 2 {
                return Ok(());
            }
            // Two distinct positions i < j.
            let i = i.index(n - 1);
            let j = i + 1 + j.index(n - 1 - i);
            if with_digests {
                rows.swap(i, j);
            } else {
                let (a, c) = (rows[i].row.clone(), rows[j].row.clone());
                rows[i].row = c;
                rows[j].row = a;
            }
            prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::RowMismatch { seq: b as u64 + 1, index: i as u32 }));
        }

        #[test]
        fn an_edited_header_is_named(mut batches in chain_strategy(), b in any::<prop::sample::Index>(), field in 0..4u8, rehash in any::<bool>()) {
            let b = b.index(batches.len());
            let seq = b as u64 + 1;
            let last = b + 1 == batches.len();
            let head = verify("sqlite", &batches).unwrap().head.unwrap();
            let n = batches[b].header.row_count;
            let header = &mut batches[b].header;
            match field {
                0 => header.committed_at = header.committed_at.plus_millis(1),
                1 => header.row_count += 1,
                2 => header.rows_hash.0[0] ^= 1,
                _ => header.prev_hash.0[31] ^= 1,
            }
            if rehash {
                // The careful forger recomputes the stored hash too.
                batches[b].hash = batches[b].header.hash();
            }
            let expected = match (rehash, field) {
                (false, _) => Some(ChainBreak::HeaderEdited { seq }),
                (true, 1) => Some(ChainBreak::RowsMissing { seq, expected: n + 1, found: n }),
                (true, 2) => Some(ChainBreak::RowsHashMismatch { seq }),
                (true, 3) => Some(ChainBreak::PrevHashMismatch { seq }),
                (true, _) if !last => Some(ChainBreak::PrevHashMismatch { seq: seq + 1 }),
                // The newest batch's time rewritten with its hash is invisible from inside the database...
                (true, _) => None,
            };
            match expected {
                Some(expected) => prop_assert_eq!(verify("sqlite", &batches), Err(expected)),
                None => {
                    prop_assert!(verify("sqlite", &batches).is_ok());
                    // ...but not against its head recorded outside it.
                    let mut verifier = Verifier::new("sqlite").expect(head);
                    let err = batches.iter().try_for_each(|batch| verifier.push(batch)).unwrap_err();
                    prop_assert!(matches!(err, ChainBreak::AnchorMismatch { seq: s, .. } if s == seq), "{:?}", err);
                }
            }
        }

        #[test]
        fn a_missing_or_moved_batch_is_named(mut batches in chains(2), b in any::<prop::sample::Index>(), kind in 0..3u8) {
            let b = b.index(batches.len() - 1); // not the last, so a successor exists
            let seq = b as u64 + 1;
            match kind {
                0 => {
                    batches.remove(b);
                    prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::BatchMissing { expected: seq, found: seq + 1 }));
                }
                1 => {
                    batches.swap(b, b + 1);
                    prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::BatchMissing { expected: seq, found: seq + 1 }));
                }
                _ => {
                    let copy = batches[b].clone();
                    batches.insert(b + 1, copy);
                    prop_assert_eq!(verify("sqlite", &batches), Err(ChainBreak::BatchOutOfOrder { expected: seq + 1, found: seq }));
                }
            }
        }

        #[test]
        fn the_newest_batch_deleted_is_caught_against_a_recorded_head(mut batches in chain_strategy()) {
            let head = verify("sqlite", &batches).unwrap().head.unwrap();
            batches.pop();
            let mut verifier = Verifier::new("sqlite").expect(head);
            for batch in &batches {
                verifier.push(batch).unwrap();
            }
            let err = verifier.finish().unwrap_err();
            prop_assert!(matches!(err, ChainBreak::AnchorMismatch { seq, .. } if seq == head.seq), "{:?}", err);
        }

        #[test]
        fn pruned_batches_keep_the_chain_verifiable(mut batches in chain_strategy(), keep_from in any::<prop::sample::Index>()) {
            let keep_from = keep_from.index(batches.len());
            // Prune the rows of every batch before `keep_from`, keeping headers and hashes.
            for batch in &mut batches[..keep_from] {
                batch.rows = None;
            }
            let summary = verify("sqlite", &batches).unwrap();
            prop_assert_eq!(summary.pruned_batches, keep_from as u64);
            // Dropping the pruned headers too: verification starts after the last dropped one.
            if keep_from > 0 {
                let anchor = Anchor { seq: batches[keep_from - 1].header.seq, hash: batches[keep_from - 1].hash };
                let mut verifier = Verifier::after("sqlite", anchor);
                for batch in &batches[keep_from..] {
                    verifier.push(batch).unwrap();
                }
                let summary = verifier.finish().unwrap();
                prop_assert_eq!(summary.first_seq, Some(keep_from as u64 + 1));
                // An edit after the anchor is still caught, at its place.
                let mut tampered = batches[keep_from..].to_vec();
                let last = tampered.len() - 1;
                let row = &mut rows_mut(&mut tampered[last])[0];
                row.row = edited(&row.row);
                let mut verifier = Verifier::after("sqlite", anchor);
                let err = tampered.iter().try_for_each(|batch| verifier.push(batch)).unwrap_err();
                prop_assert_eq!(err, ChainBreak::RowMismatch { seq: tampered[last].header.seq, index: 0 });
            }
        }
    }
}

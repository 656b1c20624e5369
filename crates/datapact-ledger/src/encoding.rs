//! The canonical byte encoding of ledger rows and batch headers: what the hash chain hashes.
//!
//! Version 1, for every value:
//!
//! ```text
//! value  = version:u8 (= 1) · kind:u8 · field_count:u16 · field*
//! field  = length:u32 · bytes            (big-endian lengths and integers)
//! ```
//!
//! Kinds: `U` usage event (11 fields), `D` delivery (6), `H` batch header (6). Integers are fixed-width big-endian
//! inside their field (`i64`, `u64`: 8 bytes; `u32`: 4; `bool`: 1 byte, 0 or 1); text is UTF-8; an endpoint or a
//! purpose is its stable name (`search`, `ai-train`), never an enum discriminant; an optional text is one byte `0`
//! (absent) or `1` followed by the text, so `None` and `Some("")` differ. Every field is length-prefixed and the
//! field count is explicit, so two different values never encode to the same bytes (there is no JSON-style
//! ambiguity of key order, number format or escaping); [`decode_row`] inverts [`encode_row`] exactly, which the
//! property tests check. A later version gets a new version byte and leaves version 1 readable.

use datapact_core::purpose::Purpose;
use datapact_core::{Endpoint, KeyPrefix, Timestamp};

use crate::chain::{BatchHeader, Digest};
use crate::record::{Delivery, Row, UsageEvent};

/// The encoding version written by this crate.
pub const ENCODING_VERSION: u8 = 1;

const KIND_USAGE: u8 = b'U';
const KIND_DELIVERY: u8 = b'D';
const KIND_HEADER: u8 = b'H';

/// Why bytes are not a version-1 encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown encoding version {0}")]
    Version(u8),
    #[error("unknown record kind {0:#04x}")]
    Kind(u8),
    #[error("the encoding ends early")]
    Truncated,
    #[error("{0} trailing bytes after the last field")]
    Trailing(usize),
    #[error("field {index} is malformed: {what}")]
    Field { index: usize, what: &'static str },
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
}

struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    fn new(kind: u8, fields: u16) -> Encoder {
        let mut buf = Vec::with_capacity(128);
        buf.push(ENCODING_VERSION);
        buf.push(kind);
        buf.extend_from_slice(&fields.to_be_bytes());
        Encoder { buf }
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Encoder {
        let len = u32::try_from(bytes.len()).expect("a ledger field is shorter than 4 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn text(&mut self, text: &str) -> &mut Encoder {
        self.bytes(text.as_bytes())
    }

    fn optional_text(&mut self, text: Option<&str>) -> &mut Encoder {
        match text {
            None => self.bytes(&[0]),
            Some(text) => self.bytes(&[&[1], text.as_bytes()].concat()),
        }
    }

    fn i64(&mut self, value: i64) -> &mut Encoder {
        self.bytes(&value.to_be_bytes())
    }

    fn u64(&mut self, value: u64) -> &mut Encoder {
        self.bytes(&value.to_be_bytes())
    }

    fn u32(&mut self, value: u32) -> &mut Encoder {
        self.bytes(&value.to_be_bytes())
    }

    fn bool(&mut self, value: bool) -> &mut Encoder {
        self.bytes(&[u8::from(value)])
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// The canonical encoding of a row.
pub fn encode_row(row: &Row) -> Vec<u8> {
    match row {
        Row::Usage(e) => {
            // A charge is a twelfth field, present only when non-zero, so every event without one (all
            // those written before prepaid credits) keeps the bytes it was sealed with.
            let mut encoder = Encoder::new(KIND_USAGE, if e.charged == 0 { 11 } else { 12 });
            encoder
                .i64(e.licensee_id)
                .text(&e.key_prefix.0)
                .text(e.endpoint.as_str())
                .text(e.purpose.as_str())
                .text(&e.request_id)
                .optional_text(e.idempotency_key.as_deref())
                .i64(e.at.millis())
                .u32(e.delivered)
                .u32(e.counted)
                .u32(e.user_reads)
                .u64(e.bytes);
            if e.charged != 0 {
                encoder.u64(e.charged);
            }
            encoder.finish()
        }
        Row::Delivery(d) => Encoder::new(KIND_DELIVERY, 6)
            .i64(d.licensee_id)
            .text(&d.request_id)
            .i64(d.post_id)
            .u32(d.revision)
            .i64(d.at.millis())
            .bool(d.counted)
            .finish(),
    }
}

/// The canonical encoding of a batch header (what [`BatchHeader::hash`] hashes).
pub fn encode_header(header: &BatchHeader) -> Vec<u8> {
    Encoder::new(KIND_HEADER, 6)
        .text(&header.chain)
        .u64(header.seq)
        .bytes(&header.prev_hash.0)
        .bytes(&header.rows_hash.0)
        .u32(header.row_count)
        .i64(header.committed_at.millis())
        .finish()
}

struct Decoder<'a> {
    rest: &'a [u8],
    fields: Vec<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Result<(u8, Decoder<'a>), DecodeError> {
        let [version, kind, c0, c1, rest @ ..] = bytes else { return Err(DecodeError::Truncated) };
        if *version != ENCODING_VERSION {
            return Err(DecodeError::Version(*version));
        }
        let count = usize::from(u16::from_be_bytes([*c0, *c1]));
        let mut decoder = Decoder { rest, fields: Vec::with_capacity(count) };
        for _ in 0..count {
            let [l0, l1, l2, l3, tail @ ..] = decoder.rest else { return Err(DecodeError::Truncated) };
            let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
            if tail.len() < len {
                return Err(DecodeError::Truncated);
            }
            let (field, tail) = tail.split_at(len);
            decoder.fields.push(field);
            decoder.rest = tail;
        }
        if !decoder.rest.is_empty() {
            return Err(DecodeError::Trailing(decoder.rest.len()));
        }
        Ok((*kind, decoder))
    }

    fn expect_fields(&self, expected: usize) -> Result<(), DecodeError> {
        if self.fields.len() == expected {
            Ok(())
        } else {
            Err(DecodeError::FieldCount { expected, found: self.fields.len() })
        }
    }

    fn fixed<const N: usize>(&self, index: usize) -> Result<[u8; N], DecodeError> {
        <[u8; N]>::try_from(self.fields[index]).map_err(|_| DecodeError::Field { index, what: "wrong width" })
    }

    fn i64(&self, index: usize) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.fixed(index)?))
    }

    fn u64(&self, index: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.fixed(index)?))
    }

    fn u32(&self, index: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.fixed(index)?))
    }

    fn bool(&self, index: usize) -> Result<bool, DecodeError> {
        match self.fixed::<1>(index)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(DecodeError::Field { index, what: "not a boolean" }),
        }
    }

    fn text(&self, index: usize) -> Result<String, DecodeError> {
        String::from_utf8(self.fields[index].to_vec()).map_err(|_| DecodeError::Field { index, what: "not UTF-8" })
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, DecodeError> {
        match self.fields[index] {
            [0] => Ok(None),
            [1, text @ ..] => {
                String::from_utf8(text.to_vec()).map(Some).map_err(|_| DecodeError::Field { index, what: "not UTF-8" })
            }
            _ => Err(DecodeError::Field { index, what: "not an optional text" }),
        }
    }
}

/// Reads a row back from its canonical encoding; the exact inverse of [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<Row, DecodeError> {
    let (kind, d) = Decoder::new(bytes)?;
    match kind {
        KIND_USAGE => {
            let charged = match d.fields.len() {
                11 => 0,
                12 => match d.u64(11)? {
                    0 => return Err(DecodeError::Field { index: 11, what: "a zero charge is encoded by its absence" }),
                    charged => charged,
                },
                found => return Err(DecodeError::FieldCount { expected: 11, found }),
            };
            let endpoint =
                Endpoint::parse(&d.text(2)?).ok_or(DecodeError::Field { index: 2, what: "unknown endpoint" })?;
            let purpose =
                Purpose::parse(&d.text(3)?).ok_or(DecodeError::Field { index: 3, what: "unknown purpose" })?;
            Ok(Row::Usage(UsageEvent {
                licensee_id: d.i64(0)?,
                key_prefix: KeyPrefix(d.text(1)?),
                endpoint,
                purpose,
                request_id: d.text(4)?,
                idempotency_key: d.optional_text(5)?,
                at: Timestamp(d.i64(6)?),
                delivered: d.u32(7)?,
                counted: d.u32(8)?,
                user_reads: d.u32(9)?,
                bytes: d.u64(10)?,
                charged,
            }))
        }
        KIND_DELIVERY => {
            d.expect_fields(6)?;
            Ok(Row::Delivery(Delivery {
                licensee_id: d.i64(0)?,
                request_id: d.text(1)?,
                post_id: d.i64(2)?,
                revision: d.u32(3)?,
                at: Timestamp(d.i64(4)?),
                counted: d.bool(5)?,
            }))
        }
        other => Err(DecodeError::Kind(other)),
    }
}

/// Reads a batch header back from its canonical encoding; the exact inverse of [`encode_header`].
pub fn decode_header(bytes: &[u8]) -> Result<BatchHeader, DecodeError> {
    let (kind, d) = Decoder::new(bytes)?;
    if kind != KIND_HEADER {
        return Err(DecodeError::Kind(kind));
    }
    d.expect_fields(6)?;
    Ok(BatchHeader {
        chain: d.text(0)?,
        seq: d.u64(1)?,
        prev_hash: Digest(d.fixed(2)?),
        rows_hash: Digest(d.fixed(3)?),
        row_count: d.u32(4)?,
        committed_at: Timestamp(d.i64(5)?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub fn row_strategy() -> impl Strategy<Value = Row> {
        let text = "[a-z0-9_\\-é]{0,12}";
        let usage = (
            any::<i64>(),
            text,
            prop::sample::select(Endpoint::ALL.to_vec()),
            prop::sample::select(Purpose::ALL.to_vec()),
            text,
            prop::option::of(text),
            any::<i64>(),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>(), prop_oneof![Just(0u64), any::<u64>()]),
        )
            .prop_map(|(licensee_id, prefix, endpoint, purpose, request_id, idempotency_key, at, counts)| {
                Row::Usage(UsageEvent {
                    licensee_id,
                    key_prefix: KeyPrefix(prefix),
                    endpoint,
                    purpose,
                    request_id,
                    idempotency_key,
                    at: Timestamp(at),
                    delivered: counts.0,
                    counted: counts.1,
                    user_reads: counts.2,
                    bytes: counts.3,
                    charged: counts.4,
                })
            });
        let delivery = (any::<i64>(), text, any::<i64>(), any::<u32>(), any::<i64>(), any::<bool>()).prop_map(
            |(licensee_id, request_id, post_id, revision, at, counted)| {
                Row::Delivery(Delivery { licensee_id, request_id, post_id, revision, at: Timestamp(at), counted })
            },
        );
        prop_oneof![usage, delivery]
    }

    #[test]
    fn none_and_empty_differ() {
        let event = |key: Option<&str>| {
            Row::Usage(UsageEvent {
                licensee_id: 1,
                key_prefix: KeyPrefix("dp_abc".into()),
                endpoint: Endpoint::Search,
                purpose: Purpose::AiTrain,
                request_id: "r".into(),
                idempotency_key: key.map(str::to_owned),
                at: Timestamp(0),
                delivered: 0,
                counted: 0,
                user_reads: 0,
                bytes: 0,
                charged: 0,
            })
        };
        assert_ne!(encode_row(&event(None)), encode_row(&event(Some(""))));
    }

    #[test]
    fn a_known_delivery_encodes_to_known_bytes() {
        // Pinned: changing the encoding changes every hash, so it needs a new version byte.
        let row = Row::Delivery(Delivery {
            licensee_id: 1,
            request_id: "r".into(),
            post_id: 2,
            revision: 3,
            at: Timestamp(4),
            counted: true,
        });
        #[rustfmt::skip]
        let expected = concat!(
            "01", "44", "0006",
            "00000008", "0000000000000001",
            "00000001", "72",
            "00000008", "0000000000000002",
            "00000004", "00000003",
            "00000008", "0000000000000004",
            "00000001", "01",
        );
        assert_eq!(hex::encode(encode_row(&row)), expected);
        assert_eq!(decode_row(&encode_row(&row)).unwrap(), row);
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let row = Row::Delivery(Delivery {
            licensee_id: 1,
            request_id: "r".into(),
            post_id: 2,
            revision: 3,
            at: Timestamp(4),
            counted: true,
        });
        let bytes = encode_row(&row);
        assert_eq!(decode_row(&bytes[..bytes.len() - 1]), Err(DecodeError::Truncated));
        assert_eq!(decode_row(&[bytes.as_slice(), &[0]].concat()), Err(DecodeError::Trailing(1)));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert_eq!(decode_row(&wrong_version), Err(DecodeError::Version(2)));
        let mut wrong_bool = bytes.clone();
        *wrong_bool.last_mut().unwrap() = 2;
        assert!(matches!(decode_row(&wrong_bool), Err(DecodeError::Field { index: 5, .. })));
    }

    proptest! {
        #[test]
        fn rows_round_trip(row in row_strategy()) {
            prop_assert_eq!(decode_row(&encode_row(&row)).unwrap(), row);
        }

        #[test]
        fn different_rows_encode_differently(a in row_strategy(), b in row_strategy()) {
            prop_assert_eq!(a == b, encode_row(&a) == encode_row(&b));
        }

        #[test]
        fn headers_round_trip(chain in "[a-z0-9-]{0,10}", seq: u64, prev: [u8; 32], rows: [u8; 32], count: u32, at: i64) {
            let header = BatchHeader {
                chain, seq, prev_hash: Digest(prev), rows_hash: Digest(rows), row_count: count, committed_at: Timestamp(at),
            };
            prop_assert_eq!(decode_header(&encode_header(&header)).unwrap(), header);
        }
    }
}

//! Record batch v2 header: parse, validate and patch, without decoding records.
//!
//! Layout (Kafka protocol guide, "Record Batch"; KIP-98): a 61-byte header followed by the
//! records section, which is compressed as a whole when the codec bits are non-zero.
//!
//! ```text
//! 0  base_offset i64        8  batch_length i32     12 partition_leader_epoch i32
//! 16 magic i8 (=2)          17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16         23 last_offset_delta i32 27 base_timestamp i64
//! 35 max_timestamp i64      43 producer_id i64      51 producer_epoch i16
//! 53 base_sequence i32      57 record_count i32     61 records...
//! ```
//!
//! `base_offset` and `partition_leader_epoch` lie outside the CRC, so the broker overwrites
//! them in place without recomputing it. This module does no I/O and never panics on input.

use std::fmt;

/// Bytes before `batch_length`'s coverage starts: `base_offset` (8) + `batch_length` (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header in bytes, up to the first record.
pub const RECORD_BATCH_HEADER_BYTES: usize = 61;
/// The only message format this broker stores (KIP-724 removed v0/v1 in Kafka 4.0).
pub const MAGIC_V2: i8 = 2;
/// Byte offset of the magic byte, the same in message formats v0, v1 and v2.
pub const MAGIC_BYTE_OFFSET: usize = 16;
/// Offset of the first byte covered by the CRC.
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The codec in attribute bits 0-2 (Kafka's `CompressionType` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Records stored as they are.
    None = 0,
    /// gzip (RFC 1952).
    Gzip = 1,
    /// snappy, xerial-framed as the Java client writes it.
    Snappy = 2,
    /// LZ4 frame (KIP-57).
    Lz4 = 3,
    /// zstd frame (KIP-110).
    Zstd = 4,
}

impl Compression {
    /// Maps attribute bits 0-2 to a codec; 5-7 are invalid (Kafka: `CompressionType.forId`).
    pub fn from_id(id: i16) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Kafka's `compression.type` name for the codec.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Why a batch was rejected. Each maps to a Kafka error code in `request_handler::produce`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a header or than `batch_length` promises (CORRUPT_MESSAGE).
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header or `batch_length` requires.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// `batch_length` is negative or smaller than the header (CORRUPT_MESSAGE).
    #[error("invalid batch_length {batch_length}")]
    InvalidLength {
        /// The field as stored.
        batch_length: i32,
    },
    /// Magic other than 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT / INVALID_RECORD).
    #[error("unsupported magic {magic}, only v2 record batches are accepted")]
    UnsupportedMagic {
        /// The magic byte as stored.
        magic: i8,
    },
    /// Stored CRC-32C does not match the bytes (CORRUPT_MESSAGE).
    #[error("CRC-32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch {
        /// The CRC stored in the header.
        expected: u32,
        /// The CRC of the bytes.
        actual: u32,
    },
    /// Codec bits 5-7 (UNSUPPORTED_COMPRESSION_TYPE).
    #[error("unknown compression codec id {codec}")]
    UnknownCompression {
        /// Attribute bits 0-2.
        codec: i16,
    },
    /// `record_count` disagrees with `last_offset_delta` (INVALID_RECORD).
    #[error("record_count {record_count} does not match last_offset_delta {last_offset_delta}")]
    RecordCountMismatch {
        /// The header's `record_count`.
        record_count: i32,
        /// The header's `last_offset_delta`.
        last_offset_delta: i32,
    },
    /// Larger than `message.max.bytes` (MESSAGE_TOO_LARGE).
    #[error("batch of {size} bytes exceeds message.max.bytes {max}")]
    TooLarge {
        /// The batch's size in bytes.
        size: usize,
        /// `message.max.bytes`.
        max: usize,
    },
}

/// The fixed 61-byte header of a v2 record batch, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordBatchHeader {
    /// Offset of the first record (assigned by the broker; 0 as a producer sends it).
    pub base_offset: i64,
    /// Bytes after the `batch_length` field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// Leader epoch when the batch was appended (KIP-101), -1 from a producer.
    pub partition_leader_epoch: i32,
    /// Message format version; 2 for every batch this broker accepts.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Milliseconds since the Unix epoch.
    pub base_timestamp: i64,
    /// Milliseconds since the Unix epoch.
    pub max_timestamp: i64,
    /// -1 when the producer is not idempotent.
    pub producer_id: i64,
    /// The producer's epoch, -1 when the producer is not idempotent.
    pub producer_epoch: i16,
    /// -1 when the producer is not idempotent.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
}

impl RecordBatchHeader {
    /// Parses the header at the start of `bytes` without checking the CRC or the body length.
    ///
    /// Errors: [`BatchError::Truncated`] when fewer than 61 bytes are given,
    /// [`BatchError::InvalidLength`] when `batch_length` cannot hold a header.
    pub fn parse(bytes: &[u8]) -> Result<RecordBatchHeader, BatchError> {
        if bytes.len() < RECORD_BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: RECORD_BATCH_HEADER_BYTES,
                available: bytes.len(),
            });
        }
        let header = RecordBatchHeader {
            base_offset: i64_at(bytes, 0),
            batch_length: i32_at(bytes, 8),
            partition_leader_epoch: i32_at(bytes, 12),
            magic: bytes[16] as i8,
            crc: u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")),
            attributes: i16_at(bytes, 21),
            last_offset_delta: i32_at(bytes, 23),
            base_timestamp: i64_at(bytes, 27),
            max_timestamp: i64_at(bytes, 35),
            producer_id: i64_at(bytes, 43),
            producer_epoch: i16_at(bytes, 51),
            base_sequence: i32_at(bytes, 53),
            record_count: i32_at(bytes, 57),
        };
        if (header.batch_length as i64) < (RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD) as i64 {
            return Err(BatchError::InvalidLength {
                batch_length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Whole batch size in bytes, including `base_offset` and `batch_length`.
    pub fn size_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record: `base_offset + last_offset_delta`, saturating at
    /// `i64::MAX`. A batch read from a corrupt or hostile file can carry a base offset near
    /// `i64::MAX`; the sum must neither panic nor wrap to a negative offset (found by the
    /// `log_recovery` fuzz target).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after this batch: the log end offset once it is appended (saturating, as
    /// [`Self::last_offset`]).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The codec, or `None` for the invalid ids 5-7.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)
    }

    /// True when bit 3 says LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }

    /// True for batches of a transactional producer (KIP-98).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True when the batch carries a producer id (idempotent or transactional producer).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record, wrapping at `i32::MAX` as Kafka's `DefaultRecordBatch` does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Validates one complete batch as a producer sent it and returns its header.
///
/// Checks, in Kafka's order (`LogValidator`): size against `max_batch_bytes`
/// (`message.max.bytes`), header shape, magic 2, `batch_length` matching `bytes.len()`, codec id,
/// `record_count == last_offset_delta + 1`, and the CRC-32C over bytes 21..end. Records are not
/// decoded.
pub fn validate_batch(
    bytes: &[u8],
    max_batch_bytes: usize,
) -> Result<RecordBatchHeader, BatchError> {
    if bytes.len() > max_batch_bytes {
        return Err(BatchError::TooLarge {
            size: bytes.len(),
            max: max_batch_bytes,
        });
    }
    // The magic byte sits at offset 16 in every message format (v0/v1 message sets and v2
    // batches), so a legacy message set shorter than a v2 header is named as such, not truncated.
    if let Some(&magic) = bytes.get(MAGIC_BYTE_OFFSET) {
        if magic as i8 != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic: magic as i8 });
        }
    }
    let header = RecordBatchHeader::parse(bytes)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    if header.size_bytes() != bytes.len() {
        return Err(BatchError::Truncated {
            needed: header.size_bytes(),
            available: bytes.len(),
        });
    }
    if header.compression().is_none() {
        return Err(BatchError::UnknownCompression {
            codec: header.attributes & ATTR_COMPRESSION_MASK,
        });
    }
    if header.record_count < 0 || header.record_count as i64 != header.last_offset_delta as i64 + 1
    {
        return Err(BatchError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    check_crc(bytes, &header)?;
    Ok(header)
}

/// Checks the stored CRC-32C of a complete batch (`bytes` must be exactly the batch).
pub fn check_crc(bytes: &[u8], header: &RecordBatchHeader) -> Result<(), BatchError> {
    let actual = crc32c::crc32c(&bytes[CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(())
}

/// Overwrites `base_offset` in place; the CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites `partition_leader_epoch` in place; the CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], leader_epoch: i32) {
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Splits a buffer of consecutive batches, yielding `(position, header)` for each complete one.
///
/// Stops at the first incomplete or unparseable batch; [`BatchIter::valid_bytes`] then gives the
/// length of the well-formed prefix. Used by recovery (to find a torn tail) and by fetch (to
/// return whole batches only). CRCs are checked only when built with [`BatchIter::with_crc`].
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    check_crc: bool,
    error: Option<BatchError>,
}

impl<'a> BatchIter<'a> {
    /// Iterates over `bytes` without CRC checks.
    pub fn new(bytes: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            bytes,
            position: 0,
            check_crc: false,
            error: None,
        }
    }

    /// Iterates over `bytes`, stopping at the first batch whose CRC or magic is wrong.
    pub fn with_crc(bytes: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            check_crc: true,
            ..BatchIter::new(bytes)
        }
    }

    /// Bytes covered by the complete batches yielded so far.
    pub fn valid_bytes(&self) -> usize {
        self.position
    }

    /// Why iteration stopped early, if it did for a reason other than a clean end.
    pub fn error(&self) -> Option<&BatchError> {
        self.error.as_ref()
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (usize, RecordBatchHeader);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.position..];
        if rest.is_empty() {
            return None;
        }
        let header = match RecordBatchHeader::parse(rest) {
            Ok(header) => header,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        let size = header.size_bytes();
        if size > rest.len() {
            self.error = Some(BatchError::Truncated {
                needed: size,
                available: rest.len(),
            });
            return None;
        }
        if self.check_crc {
            if header.magic != MAGIC_V2 {
                self.error = Some(BatchError::UnsupportedMagic {
                    magic: header.magic,
                });
                return None;
            }
            if let Err(e) = check_crc(&rest[..size], &header) {
                self.error = Some(e);
                return None;
            }
        }
        let position = self.position;
        self.position += size;
        Some((position, header))
    }
}

impl fmt::Display for RecordBatchHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch[{}..={}, {} bytes, {} records]",
            self.base_offset,
            self.last_offset(),
            self.size_bytes(),
            self.record_count
        )
    }
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{encode_batch, BatchSpec};
    use bytes::BytesMut;
    use kafka_protocol::records::Compression as WireCompression;

    /// Encodes `count` records with kafka-protocol's encoder, as a producer would.
    fn batch(count: usize, compression: WireCompression) -> BytesMut {
        encode_batch(&BatchSpec {
            count,
            keyed: true,
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 10,
            compression,
            ..BatchSpec::default()
        })
    }

    /// A stored batch whose base offset is near `i64::MAX` (a corrupt segment; the
    /// `log_recovery` fuzz target's crash input `fuzz/regressions/log_recovery/`) saturates:
    /// no overflow panic with debug assertions, no negative offset without them.
    #[test]
    fn offsets_saturate_near_i64_max() {
        let mut bytes = batch(5, WireCompression::None);
        bytes[..8].copy_from_slice(&(i64::MAX - 2).to_be_bytes());
        let header =
            validate_batch(&bytes, 1 << 20).expect("the CRC does not cover the base offset");
        assert_eq!(header.last_offset(), i64::MAX);
        assert_eq!(header.next_offset(), i64::MAX);
    }

    #[test]
    fn validates_each_codec() {
        for (wire, ours) in [
            (WireCompression::None, Compression::None),
            (WireCompression::Gzip, Compression::Gzip),
            (WireCompression::Snappy, Compression::Snappy),
            (WireCompression::Lz4, Compression::Lz4),
            (WireCompression::Zstd, Compression::Zstd),
        ] {
            let bytes = batch(5, wire);
            let header = validate_batch(&bytes, 1 << 20).expect("valid");
            assert_eq!(header.compression(), Some(ours));
            assert_eq!(header.record_count, 5);
            assert_eq!(header.last_offset_delta, 4);
            assert_eq!(header.base_sequence, 10);
            assert_eq!(header.last_sequence(), 14);
            assert_eq!(header.size_bytes(), bytes.len());
        }
    }

    #[test]
    fn rejects_bad_input() {
        let good = batch(3, WireCompression::None);
        let check = |bytes: &[u8], max: usize, expected: fn(&BatchError) -> bool| {
            let err = validate_batch(bytes, max).expect_err("must be rejected");
            assert!(expected(&err), "unexpected error {err:?}");
        };
        check(&good[..30], 1 << 20, |e| {
            matches!(e, BatchError::Truncated { .. })
        });
        check(&good[..good.len() - 1], 1 << 20, |e| {
            matches!(e, BatchError::Truncated { .. })
        });
        check(&good, 10, |e| matches!(e, BatchError::TooLarge { .. }));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        check(&flipped, 1 << 20, |e| {
            matches!(e, BatchError::CrcMismatch { .. })
        });
        let mut magic = good.clone();
        magic[16] = 1;
        check(&magic, 1 << 20, |e| {
            matches!(e, BatchError::UnsupportedMagic { magic: 1 })
        });
        let mut negative = good.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        check(&negative, 1 << 20, |e| {
            matches!(e, BatchError::InvalidLength { .. })
        });
    }

    #[test]
    fn base_offset_patch_keeps_crc_valid() {
        let mut bytes = batch(4, WireCompression::Lz4);
        set_base_offset(&mut bytes, 1234);
        set_partition_leader_epoch(&mut bytes, 3);
        let header = validate_batch(&bytes, 1 << 20).expect("still valid");
        assert_eq!(header.base_offset, 1234);
        assert_eq!(header.last_offset(), 1237);
        assert_eq!(header.partition_leader_epoch, 3);
    }

    #[test]
    fn iterator_stops_at_torn_tail() {
        let mut log = BytesMut::new();
        log.extend_from_slice(&batch(2, WireCompression::None));
        let first = log.len();
        log.extend_from_slice(&batch(3, WireCompression::Zstd));
        let both = log.len();
        log.extend_from_slice(&batch(1, WireCompression::None)[..20]);
        let mut iter = BatchIter::with_crc(&log);
        assert_eq!(iter.next().map(|(p, _)| p), Some(0));
        assert_eq!(iter.next().map(|(p, _)| p), Some(first));
        assert!(iter.next().is_none());
        assert_eq!(iter.valid_bytes(), both);
        assert!(matches!(iter.error(), Some(BatchError::Truncated { .. })));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut bytes = batch(3, WireCompression::None);
        bytes[53..57].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let header = RecordBatchHeader::parse(&bytes).expect("parse");
        assert_eq!(header.last_sequence(), 0);
    }
}

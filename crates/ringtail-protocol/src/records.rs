//! Record batch v2 writing (producer side) and record walking (consumer side).
//!
//! Layout: Kafka protocol guide, "Record Batch" and "Record" (KIP-98). Record fields are zigzag
//! varints ([`crate::varint`]). The CRC-32C covers bytes 21..end of the batch.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{self, CodecError};
use crate::record_batch::{Compression, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES};
use crate::varint::{get_varlong, put_varlong};

/// Most bytes one record's framing adds besides key and value: length (5), attributes (1),
/// timestamp delta (10), offset delta (5), key and value lengths (5 + 5), header count (1).
pub const RECORD_OVERHEAD_MAX_BYTES: usize = 32;

/// An open batch for one partition: records appended uncompressed, compressed at `finish`.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    records: Vec<u8>,
    record_count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl RecordBatchBuilder {
    /// An empty batch with room for `capacity_bytes` of uncompressed records.
    pub fn new(capacity_bytes: usize) -> RecordBatchBuilder {
        RecordBatchBuilder {
            records: Vec::with_capacity(capacity_bytes),
            record_count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// Uncompressed size of the batch so far in bytes (header plus records).
    pub fn uncompressed_bytes(&self) -> usize {
        RECORD_BATCH_HEADER_BYTES + self.records.len()
    }

    /// Appends one record with CreateTime `timestamp_ms` (ms since the Unix epoch), no headers.
    pub fn append(&mut self, key: Option<&[u8]>, value: &[u8], timestamp_ms: i64) {
        if self.record_count == 0 {
            self.base_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let mut body = [0u8; RECORD_OVERHEAD_MAX_BYTES];
        let mut at = 1; // attributes: 0
        at += put_varlong(&mut body[at..], timestamp_ms - self.base_timestamp_ms);
        at += put_varlong(&mut body[at..], self.record_count as i64);
        at += put_varlong(&mut body[at..], key.map_or(-1, |k| k.len() as i64));
        let prefix = at;
        let mut suffix = [0u8; 10];
        let suffix_len = put_varlong(&mut suffix, value.len() as i64);
        let length = prefix + key.map_or(0, |k| k.len()) + suffix_len + value.len() + 1;
        let mut length_bytes = [0u8; 10];
        let length_len = put_varlong(&mut length_bytes, length as i64);
        self.records.extend_from_slice(&length_bytes[..length_len]);
        self.records.extend_from_slice(&body[..prefix]);
        if let Some(key) = key {
            self.records.extend_from_slice(key);
        }
        self.records.extend_from_slice(&suffix[..suffix_len]);
        self.records.extend_from_slice(value);
        self.records.push(0); // header count: 0
        self.record_count += 1;
    }

    /// Writes the complete batch: header, compressed records, CRC-32C. `producer_id` -1 and
    /// `base_sequence` -1 mean not idempotent. Returns the batch bytes (base offset 0, leader
    /// epoch -1: the broker assigns both).
    ///
    /// Errors: [`CodecError`] when the codec fails. Panics when no record was appended (an empty
    /// batch is not a valid v2 batch; callers never send one).
    pub fn finish(
        &self,
        compression: Compression,
        level: Option<i32>,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Result<Bytes, CodecError> {
        assert!(self.record_count > 0, "an empty batch is never sent");
        let mut out = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + self.records.len() / 2 + 64);
        out.resize(RECORD_BATCH_HEADER_BYTES, 0);
        codec::compress(compression, level, &self.records, &mut out)?;
        let batch_length = (out.len() - 12) as i32;
        let mut header = BytesMut::with_capacity(RECORD_BATCH_HEADER_BYTES);
        header.put_i64(0); // base_offset: the broker assigns it
        header.put_i32(batch_length);
        header.put_i32(-1); // partition_leader_epoch
        header.put_i8(2); // magic
        header.put_u32(0); // crc, below
        header.put_i16(compression as i16); // attributes: codec, CreateTime
        header.put_i32(self.record_count - 1); // last_offset_delta
        header.put_i64(self.base_timestamp_ms);
        header.put_i64(self.max_timestamp_ms);
        header.put_i64(producer_id);
        header.put_i16(producer_epoch);
        header.put_i32(base_sequence);
        header.put_i32(self.record_count);
        out[..RECORD_BATCH_HEADER_BYTES].copy_from_slice(&header);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(out))
    }
}

/// One record as the consumer sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Absolute offset: batch base offset + offset delta.
    pub offset: i64,
    /// CreateTime timestamp in ms: batch base timestamp + timestamp delta (a LogAppendTime
    /// batch's records all carry the batch's `max_timestamp` instead, KIP-32).
    pub timestamp: i64,
    /// Key bytes, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value bytes, `None` for a null value.
    pub value: Option<&'a [u8]>,
}

/// A batch in a Fetch response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The records section is shorter than its framing says.
    #[error("malformed record at byte {at} of a batch at offset {base_offset}")]
    Malformed {
        /// The batch's base offset.
        base_offset: i64,
        /// Byte position in the (decompressed) records section.
        at: usize,
    },
    /// Decompression failed.
    #[error("batch at offset {base_offset}: {source}")]
    Codec {
        /// The batch's base offset.
        base_offset: i64,
        /// The codec's failure.
        #[source]
        source: CodecError,
    },
    /// Codec bits 5-7.
    #[error("batch at offset {base_offset} has unknown codec bits")]
    UnknownCodec {
        /// The batch's base offset.
        base_offset: i64,
    },
    /// The decompressed records section would exceed the caller's bound (a decompression bomb
    /// or a batch too large to hold in memory).
    #[error("batch at offset {base_offset}: decompressed records exceed {max_bytes} bytes")]
    TooLarge {
        /// The batch's base offset.
        base_offset: i64,
        /// The bound in bytes.
        max_bytes: usize,
    },
}

/// Calls `f` for each record of one complete batch (`batch` holds exactly the batch, `header`
/// is its parsed header). `scratch` is reused for decompression.
///
/// Errors: [`WalkError`] when the codec bits are invalid, decompression fails or a record's
/// framing overruns the section; records before the bad one have been passed to `f`.
pub fn walk_records<'s>(
    header: &RecordBatchHeader,
    batch: &'s [u8],
    scratch: &'s mut Vec<u8>,
    f: impl FnMut(RecordView<'_>),
) -> Result<(), WalkError> {
    let records = records_section(header, batch, scratch, usize::MAX)?;
    walk_section(header, records, f)
}

/// The uncompressed records section of one complete batch: the bytes after the 61-byte header
/// as they are, or decompressed into `scratch` (cleared first) when the batch is compressed.
///
/// Errors: [`WalkError::UnknownCodec`] for codec bits 5-7, [`WalkError::Codec`] when the codec
/// fails, [`WalkError::TooLarge`] as soon as the decompressed section would pass `max_bytes`
/// (decompression stops there, so a decompression bomb costs at most `max_bytes` of memory).
pub fn records_section<'s>(
    header: &RecordBatchHeader,
    batch: &'s [u8],
    scratch: &'s mut Vec<u8>,
    max_bytes: usize,
) -> Result<&'s [u8], WalkError> {
    let base_offset = header.base_offset;
    let compression = header
        .compression()
        .ok_or(WalkError::UnknownCodec { base_offset })?;
    let section = &batch[RECORD_BATCH_HEADER_BYTES.min(batch.len())..];
    if compression == Compression::None {
        if section.len() > max_bytes {
            return Err(WalkError::TooLarge {
                base_offset,
                max_bytes,
            });
        }
        return Ok(section);
    }
    scratch.clear();
    match codec::decompress_bounded(compression, section, scratch, max_bytes) {
        Ok(()) => Ok(scratch),
        Err(CodecError::TooLarge { .. }) => Err(WalkError::TooLarge {
            base_offset,
            max_bytes,
        }),
        Err(source) => Err(WalkError::Codec {
            base_offset,
            source,
        }),
    }
}

/// Calls `f` for each record of an uncompressed records section (from [`records_section`])
/// of the batch `header` describes, at most `record_count` records.
///
/// Errors: [`WalkError::Malformed`] when a record's framing overruns the section or there are
/// fewer records than `record_count`; records before the bad one have been passed to `f`.
pub fn walk_section(
    header: &RecordBatchHeader,
    records: &[u8],
    mut f: impl FnMut(RecordView<'_>),
) -> Result<(), WalkError> {
    let base_offset = header.base_offset;
    let malformed = |at| WalkError::Malformed { base_offset, at };
    let mut at = 0;
    for _ in 0..header.record_count.max(0) {
        let length = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let end = at
            .checked_add(usize::try_from(length).map_err(|_| malformed(at))?)
            .ok_or(malformed(at))?;
        if end > records.len() {
            return Err(malformed(at));
        }
        at += 1; // attributes
        let timestamp_delta = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let offset_delta = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let key = read_bytes(records, &mut at, end).ok_or(malformed(at))?;
        let value = read_bytes(records, &mut at, end).ok_or(malformed(at))?;
        f(RecordView {
            offset: base_offset.wrapping_add(offset_delta),
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
        });
        at = end;
    }
    Ok(())
}

/// The batch `batch` with its records section `records` (uncompressed, from
/// [`records_section`]) compressed with `target` at `level`: attributes' codec bits,
/// `batch_length` and the CRC-32C rewritten; every other header field (base offset, leader
/// epoch, timestamps, timestamp type, producer id, epoch, base sequence, record count) and every
/// record byte kept, so offsets and timestamps are unchanged (the record deltas are relative to
/// the unchanged header). This is Kafka's recompression on append for a topic
/// `compression.type` that differs from the producer's codec (`LogValidator`), without
/// re-encoding the records.
///
/// Errors: [`CodecError`] when the codec fails.
pub fn recompress_batch(
    batch: &[u8],
    records: &[u8],
    target: Compression,
    level: Option<i32>,
) -> Result<Vec<u8>, CodecError> {
    assert!(
        batch.len() >= RECORD_BATCH_HEADER_BYTES,
        "invariant: a validated batch holds a whole header"
    );
    let mut out = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + records.len() / 2 + 64);
    out.extend_from_slice(&batch[..RECORD_BATCH_HEADER_BYTES]);
    codec::compress(target, level, records, &mut out)?;
    let batch_length = i32::try_from(out.len() - 12).map_err(|_| CodecError::TooLarge {
        max_bytes: i32::MAX as usize,
    })?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]);
    let attributes = (attributes & !ATTR_COMPRESSION_BITS) | target as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Attribute bits 0-2: the codec.
const ATTR_COMPRESSION_BITS: i16 = 0x07;

/// Reads a varlong-length-prefixed byte string ending at or before `end`; length -1 is null.
fn read_bytes<'a>(input: &'a [u8], at: &mut usize, end: usize) -> Option<Option<&'a [u8]>> {
    let length = get_varlong(input, at)?;
    if length < 0 {
        return Some(None);
    }
    let stop = at.checked_add(length as usize)?;
    if stop > end {
        return None;
    }
    let bytes = &input[*at..stop];
    *at = stop;
    Some(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::validate_batch;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// (offset, timestamp, key, value) of a record.
    type Seen = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn records_of(bytes: &[u8]) -> Vec<Seen> {
        let header = validate_batch(bytes, 1 << 20).expect("valid batch");
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        walk_records(&header, bytes, &mut scratch, |r| {
            seen.push((
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ))
        })
        .expect("walk");
        seen
    }

    #[test]
    fn recompression_keeps_header_fields_and_records() {
        for source in CODECS {
            let mut builder = RecordBatchBuilder::new(4096);
            builder.append(Some(b"k1"), &[b'a'; 500], 1_000);
            builder.append(None, b"second", 999_999_999_999);
            builder.append(Some(b""), b"third", 900);
            let mut bytes = builder.finish(source, None, 42, 3, 17).unwrap().to_vec();
            bytes[0..8].copy_from_slice(&5i64.to_be_bytes()); // a producer's base offset
            let original = validate_batch(&bytes, 1 << 20).unwrap();
            let expected = records_of(&bytes);
            for target in CODECS {
                let mut scratch = Vec::new();
                let section = records_section(&original, &bytes, &mut scratch, 1 << 20).unwrap();
                let rebuilt = recompress_batch(&bytes, section, target, Some(1)).unwrap();
                let header = validate_batch(&rebuilt, 1 << 20).expect("CRC recomputed");
                assert_eq!(
                    header.compression(),
                    Some(target),
                    "{source:?} -> {target:?}"
                );
                let same = RecordBatchHeader {
                    crc: header.crc,
                    attributes: header.attributes,
                    batch_length: header.batch_length,
                    ..original
                };
                assert_eq!(header, same, "{source:?} -> {target:?}: other fields kept");
                assert_eq!(header.attributes & !0x07, original.attributes & !0x07);
                assert_eq!(records_of(&rebuilt), expected, "{source:?} -> {target:?}");
            }
        }
    }

    #[test]
    fn records_section_is_bounded() {
        let mut builder = RecordBatchBuilder::new(1 << 20);
        for i in 0..1000 {
            builder.append(None, &[0u8; 1000], i);
        }
        for codec in CODECS {
            let bytes = builder.finish(codec, None, -1, -1, -1).unwrap();
            let header = validate_batch(&bytes, usize::MAX).unwrap();
            let mut scratch = Vec::new();
            let error = records_section(&header, &bytes, &mut scratch, 100_000).unwrap_err();
            assert!(
                matches!(
                    error,
                    WalkError::TooLarge {
                        max_bytes: 100_000,
                        ..
                    }
                ),
                "{codec:?}: {error}"
            );
            let section = records_section(&header, &bytes, &mut scratch, 2 << 20).unwrap();
            assert!(section.len() > 1_000_000);
        }
    }

    #[test]
    fn built_batches_validate_and_walk_back() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = RecordBatchBuilder::new(1024);
            builder.append(None, b"first", 1_000);
            builder.append(Some(b"key"), b"second", 1_005);
            builder.append(Some(b""), &[7u8; 300], 1_002);
            let bytes = builder.finish(compression, None, 42, 0, 7).unwrap();
            let header = validate_batch(&bytes, 1 << 20).unwrap();
            assert_eq!(header.record_count, 3);
            assert_eq!(header.max_timestamp, 1_005);
            assert_eq!(header.base_sequence, 7);
            assert_eq!(header.compression(), Some(compression));
            let mut scratch = Vec::new();
            let mut seen = Vec::new();
            walk_records(&header, &bytes, &mut scratch, |r| {
                seen.push((
                    r.offset,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::len),
                ))
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![
                    (0, None, Some(5)),
                    (1, Some(b"key".to_vec()), Some(6)),
                    (2, Some(vec![]), Some(300))
                ]
            );
        }
    }
}

//! Log compaction, the sans-io part (Kafka's `Cleaner` record filter, `SkimpyOffsetMap`,
//! `LogCleanerManager` cleanable-ratio rules and `MemoryRecords.filterTo`): which records of a
//! batch survive, how a batch that lost records is rebuilt, and when a log is worth cleaning.
//! The I/O (reading segments, writing `.cleaned` files, the swap) is in `log_cleaner.rs`.
//!
//! Rules, as Kafka 4.1 applies them:
//! - A record survives when its offset is at or past the end of the key map (not yet mapped),
//!   or when it is the latest offset of its key (a key absent from the map is latest), and it
//!   is not a tombstone past its batch's delete horizon. Records without a key are dropped.
//! - Tombstones (null value) get a delete horizon when first cleaned: the batch is rewritten
//!   with the `delete horizon` attribute bit (0x40) and `base_timestamp` = now +
//!   `delete.retention.ms` (KIP-534); a later pass after the horizon drops them.
//! - A batch keeping all its records and needing no horizon is copied as bytes. Otherwise it is
//!   rebuilt with the same base offset, `last_offset_delta` (so the producer's last sequence
//!   stays, `MemoryRecords.buildRetainedRecordsInto`), producer id / epoch / base sequence,
//!   leader epoch and codec, recompressed with the codec's default level.
//! - A batch losing every record is dropped, except the last batch of a producer, which stays
//!   as an empty batch header (`BatchRetention.RETAIN_EMPTY`, `DefaultRecordBatch.writeEmptyHeader`)
//!   so the producer's sequence survives a restart.
//! - Transactional and control batches are kept whole and their keys are not mapped: without a
//!   transaction index the cleaner cannot tell aborted data from committed (Kafka's
//!   aborted-transaction handling is the place to add that).

use std::collections::HashMap;

use crate::protocol::codec::{self, CodecError};
use crate::protocol::record_batch::{Compression, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES};
use crate::protocol::varint::{get_varlong, put_varlong, VARLONG_MAX_BYTES};

/// Attribute bit of a batch whose `base_timestamp` holds the delete horizon (KIP-534,
/// Kafka's `DefaultRecordBatch.DELETE_HORIZON_FLAG_MASK`).
pub const DELETE_HORIZON_FLAG: i16 = 0x40;
/// Bytes one key -> offset entry is charged in the [`OffsetMap`] besides the key itself (the
/// offset, the hash-table slot and the `Vec` header).
pub const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Kafka's `log.cleaner.io.buffer.load.factor` default: the map is full at 90 % of its bytes.
pub const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;
const _: () = assert!(OFFSET_MAP_ENTRY_OVERHEAD_BYTES >= 8);

/// The compaction settings of one partition, read from its topic config on each pass.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanerConfig {
    /// `delete.retention.ms`: tombstone delete horizon = first cleaning time + this, ms.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when dirty / total bytes exceeds this, in [0, 1].
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments with records younger than this stay dirty, ms.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: clean whatever the ratio once a dirty segment's first batch is
    /// older than this, ms.
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: bytes of the key map of one pass.
    pub dedupe_buffer_bytes: usize,
}

/// The key -> latest offset map of one cleaning pass (Kafka's `SkimpyOffsetMap`), bounded in
/// bytes. Kafka stores 16-byte MD5 digests; this stores the keys themselves, charging each
/// entry its key length plus [`OFFSET_MAP_ENTRY_OVERHEAD_BYTES`], so two keys never collide.
#[derive(Debug)]
pub struct OffsetMap {
    offsets: HashMap<Vec<u8>, i64>,
    used_bytes: usize,
    capacity_bytes: usize,
}

impl OffsetMap {
    /// An empty map holding at most `buffer_bytes` * [`OFFSET_MAP_LOAD_FACTOR`] bytes.
    pub fn new(buffer_bytes: usize) -> OffsetMap {
        OffsetMap {
            offsets: HashMap::new(),
            used_bytes: 0,
            capacity_bytes: (buffer_bytes as f64 * OFFSET_MAP_LOAD_FACTOR) as usize,
        }
    }

    /// Bytes `keys` would add (keys already present cost nothing).
    pub fn bytes_needed<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> usize {
        keys.into_iter()
            .filter(|k| !self.offsets.contains_key(*k))
            .map(|k| k.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES)
            .sum()
    }

    /// True when `bytes` more fit; an empty map takes anything (one batch always fits, as
    /// Kafka requires at least one segment to fit).
    pub fn has_room(&self, bytes: usize) -> bool {
        self.is_empty() || self.used_bytes + bytes <= self.capacity_bytes
    }

    /// Records `offset` as the latest of `key`; offsets of one key only grow.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        match self.offsets.get_mut(key) {
            Some(latest) => {
                assert!(
                    offset > *latest,
                    "invariant: the key map is built in offset order"
                );
                *latest = offset;
            }
            None => {
                self.used_bytes += key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
                self.offsets.insert(key.to_vec(), offset);
            }
        }
    }

    /// The latest offset of `key`, if mapped.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when no key is mapped.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// One record of a decompressed records section, as the cleaner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The whole record, length prefix included.
    pub bytes: &'a [u8],
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp delta from the batch's `base_timestamp`.
    pub timestamp_delta: i64,
    /// Key bytes, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// True for a null value (a tombstone).
    pub is_tombstone: bool,
    /// Position of the timestamp delta varint in `bytes`, and the position after it.
    timestamp_span: (usize, usize),
}

/// Why a stored batch could not be cleaned (the disk's bytes are input: never a panic).
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The records section does not frame `record_count` records.
    #[error("malformed record at byte {at} of batch {base_offset}")]
    Malformed { base_offset: i64, at: usize },
    /// The codec bits are not a known codec.
    #[error("batch {base_offset} has unknown codec bits")]
    UnknownCodec { base_offset: i64 },
    /// Decompression or recompression failed.
    #[error("batch {base_offset}: {source}")]
    Codec {
        base_offset: i64,
        #[source]
        source: CodecError,
    },
}

/// The decompressed records section of `batch` (exactly one batch), in `scratch` when
/// compressed.
pub fn records_section<'s>(
    header: &RecordBatchHeader,
    batch: &'s [u8],
    scratch: &'s mut Vec<u8>,
) -> Result<&'s [u8], CleanError> {
    let base_offset = header.base_offset;
    let compression = header
        .compression()
        .ok_or(CleanError::UnknownCodec { base_offset })?;
    let section = &batch[RECORD_BATCH_HEADER_BYTES.min(batch.len())..];
    if compression == Compression::None {
        return Ok(section);
    }
    scratch.clear();
    codec::decompress(compression, section, scratch).map_err(|source| CleanError::Codec {
        base_offset,
        source,
    })?;
    Ok(scratch)
}

/// Splits a decompressed records section into its `header.record_count` records.
pub fn split_records<'a>(
    header: &RecordBatchHeader,
    records: &'a [u8],
) -> Result<Vec<RawRecord<'a>>, CleanError> {
    let base_offset = header.base_offset;
    let malformed = |at| CleanError::Malformed { base_offset, at };
    // Each record takes at least one byte: a forged count cannot make this allocate much.
    let mut out = Vec::with_capacity((header.record_count.max(0) as usize).min(records.len()));
    let mut at = 0usize;
    for _ in 0..header.record_count.max(0) {
        let start = at;
        let length = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let length = usize::try_from(length).map_err(|_| malformed(at))?;
        let end = at.checked_add(length).ok_or(malformed(at))?;
        if end > records.len() || length == 0 {
            return Err(malformed(at));
        }
        at += 1; // attributes
        let timestamp_start = at - start;
        let timestamp_delta = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let timestamp_end = at - start;
        let offset_delta = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let key_length = get_varlong(records, &mut at).ok_or(malformed(at))?;
        let key = if key_length < 0 {
            None
        } else {
            let key_end = at
                .checked_add(key_length as usize)
                .filter(|&e| e <= end)
                .ok_or(malformed(at))?;
            let key = &records[at..key_end];
            at = key_end;
            Some(key)
        };
        let value_length = get_varlong(records, &mut at).ok_or(malformed(at))?;
        if at > end {
            return Err(malformed(at));
        }
        out.push(RawRecord {
            bytes: &records[start..end],
            offset: base_offset.saturating_add(offset_delta),
            timestamp_delta,
            key,
            is_tombstone: value_length < 0,
            timestamp_span: (timestamp_start, timestamp_end),
        });
        at = end;
    }
    Ok(out)
}

/// What the cleaner does with one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Copy the stored bytes unchanged.
    KeepWhole,
    /// Write these bytes instead (a rebuilt batch, or an empty batch header).
    Rewrite(Vec<u8>),
    /// Write nothing.
    Drop,
}

/// What [`filter_batch`] needs to know besides the batch.
#[derive(Clone, Copy, Debug)]
pub struct FilterContext<'a> {
    /// The key map of this pass.
    pub map: &'a OffsetMap,
    /// First offset the map does not cover: records at or past it are kept.
    pub map_end_offset: i64,
    /// Wall-clock time of the pass, ms.
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// True when this batch is the last one of its producer (kept as an empty batch when all
    /// its records go).
    pub last_batch_of_producer: bool,
}

/// Decides the fate of one stored batch (`batch` is exactly the batch, `header` its header);
/// `scratch` is reused for decompression. Kafka's `MemoryRecords.filterTo` with the cleaner's
/// `shouldRetainRecord`.
pub fn filter_batch(
    header: &RecordBatchHeader,
    batch: &[u8],
    context: &FilterContext<'_>,
    scratch: &mut Vec<u8>,
) -> Result<BatchOutcome, CleanError> {
    if header.is_control() || header.is_transactional() {
        return Ok(BatchOutcome::KeepWhole);
    }
    if header.base_offset >= context.map_end_offset {
        return Ok(BatchOutcome::KeepWhole);
    }
    let horizon = delete_horizon(header);
    let records = records_section(header, batch, scratch)?;
    let records = split_records(header, records)?;
    let retained: Vec<RawRecord<'_>> = records
        .iter()
        .copied()
        .filter(|r| retain_record(r, horizon, context))
        .collect();
    let has_tombstone = retained.iter().any(|r| r.is_tombstone);
    let set_horizon = has_tombstone && horizon.is_none();
    if retained.len() == records.len() && !set_horizon {
        return Ok(BatchOutcome::KeepWhole);
    }
    if retained.is_empty() {
        if context.last_batch_of_producer && header.has_producer_id() {
            return Ok(BatchOutcome::Rewrite(empty_batch(header)));
        }
        return Ok(BatchOutcome::Drop);
    }
    let new_horizon = if set_horizon {
        Some(context.now_ms.saturating_add(context.delete_retention_ms))
    } else {
        horizon
    };
    rebuild_batch(header, &retained, new_horizon).map(BatchOutcome::Rewrite)
}

/// The batch's delete horizon, ms, when its attribute bit is set.
pub fn delete_horizon(header: &RecordBatchHeader) -> Option<i64> {
    (header.attributes & DELETE_HORIZON_FLAG != 0).then_some(header.base_timestamp)
}

/// Kafka's `Cleaner.shouldRetainRecord` for a record of a non-transactional batch.
fn retain_record(
    record: &RawRecord<'_>,
    horizon: Option<i64>,
    context: &FilterContext<'_>,
) -> bool {
    if record.offset >= context.map_end_offset {
        return true;
    }
    let Some(key) = record.key else {
        return false;
    };
    let latest = context.map.get(key).is_none_or(|o| record.offset >= o);
    let retain_delete = horizon.is_none_or(|h| context.now_ms < h);
    latest && (!record.is_tombstone || retain_delete)
}

/// Rebuilds `header`'s batch with only `retained` (in offset order), the codec, producer
/// fields, base offset and `last_offset_delta` unchanged. With `horizon`, `base_timestamp`
/// becomes the horizon and the attribute bit is set; record timestamp deltas are rewritten
/// relative to it when the horizon is new.
pub fn rebuild_batch(
    header: &RecordBatchHeader,
    retained: &[RawRecord<'_>],
    horizon: Option<i64>,
) -> Result<Vec<u8>, CleanError> {
    assert!(
        !retained.is_empty(),
        "invariant: a rebuilt batch keeps at least one record"
    );
    let base_offset = header.base_offset;
    let compression = header
        .compression()
        .ok_or(CleanError::UnknownCodec { base_offset })?;
    let base_timestamp = horizon.unwrap_or(header.base_timestamp);
    let rewrite_deltas = base_timestamp != header.base_timestamp;
    let mut records = Vec::with_capacity(retained.iter().map(|r| r.bytes.len() + 10).sum());
    let mut max_timestamp = i64::MIN;
    for record in retained {
        assert!(
            record.offset >= header.base_offset && record.offset <= header.last_offset(),
            "invariant: a retained record lies inside its batch"
        );
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if rewrite_deltas {
            append_with_timestamp_delta(&mut records, record, timestamp - base_timestamp);
        } else {
            records.extend_from_slice(record.bytes);
        }
    }
    if header.is_log_append_time() {
        max_timestamp = header.max_timestamp;
    }
    let mut out = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + records.len());
    out.resize(RECORD_BATCH_HEADER_BYTES, 0);
    codec::compress(compression, None, &records, &mut out).map_err(|source| CleanError::Codec {
        base_offset,
        source,
    })?;
    let attributes = if horizon.is_some() {
        header.attributes | DELETE_HORIZON_FLAG
    } else {
        header.attributes
    };
    write_header(
        &mut out,
        header,
        attributes,
        base_timestamp,
        max_timestamp,
        retained.len() as i32,
    );
    Ok(out)
}

/// An empty batch standing for `header`'s batch (Kafka's `DefaultRecordBatch.writeEmptyHeader`):
/// no records, no codec, both timestamps the batch's max timestamp.
pub fn empty_batch(header: &RecordBatchHeader) -> Vec<u8> {
    let mut out = vec![0u8; RECORD_BATCH_HEADER_BYTES];
    let attributes = header.attributes & !0x07 & !DELETE_HORIZON_FLAG;
    write_header(
        &mut out,
        header,
        attributes,
        header.max_timestamp,
        header.max_timestamp,
        0,
    );
    out
}

/// Fills the 61 header bytes of `out` (the records follow) and the CRC-32C over 21..end.
fn write_header(
    out: &mut [u8],
    header: &RecordBatchHeader,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
) {
    let batch_length = (out.len() - 12) as i32;
    out[0..8].copy_from_slice(&header.base_offset.to_be_bytes());
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[12..16].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out[16] = header.magic as u8;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[23..27].copy_from_slice(&header.last_offset_delta.to_be_bytes());
    out[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[43..51].copy_from_slice(&header.producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&header.producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&header.base_sequence.to_be_bytes());
    out[57..61].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Appends `record` with its timestamp delta replaced by `delta` (and its length fixed).
fn append_with_timestamp_delta(out: &mut Vec<u8>, record: &RawRecord<'_>, delta: i64) {
    let (ts_start, ts_end) = record.timestamp_span;
    let mut length_at = 0usize;
    let old_length = get_varlong(record.bytes, &mut length_at).unwrap_or(0);
    let mut delta_bytes = [0u8; VARLONG_MAX_BYTES];
    let delta_len = put_varlong(&mut delta_bytes, delta);
    let new_length = old_length - (ts_end - ts_start) as i64 + delta_len as i64;
    let mut length_bytes = [0u8; VARLONG_MAX_BYTES];
    let length_len = put_varlong(&mut length_bytes, new_length);
    out.extend_from_slice(&length_bytes[..length_len]);
    out.extend_from_slice(&record.bytes[length_at..ts_start]);
    out.extend_from_slice(&delta_bytes[..delta_len]);
    out.extend_from_slice(&record.bytes[ts_end..]);
}

/// Dirty and clean byte counts of a log, for [`is_cleanable`] (Kafka's `LogToClean`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyStats {
    /// Bytes of segments wholly below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of segments from the first dirty offset up to the first uncleanable offset.
    pub cleanable_bytes: u64,
    /// First batch timestamp of the first dirty segment, ms (-1 when unknown).
    pub first_dirty_timestamp_ms: i64,
}

impl DirtyStats {
    /// cleanable / (clean + cleanable); 0 for an empty log.
    pub fn cleanable_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }
}

/// Kafka's `LogCleanerManager.grabFilthiestCompactedLog` test: the ratio exceeds
/// `min.cleanable.dirty.ratio`, or a dirty segment waited past `max.compaction.lag.ms`
/// (`maxCompactionDelay > 0`) and there is something to clean.
pub fn is_cleanable(stats: &DirtyStats, config: &CleanerConfig, now_ms: i64) -> bool {
    let clean_until = now_ms.saturating_sub(config.max_compaction_lag_ms);
    let overdue =
        stats.first_dirty_timestamp_ms > 0 && stats.first_dirty_timestamp_ms < clean_until;
    (overdue && stats.cleanable_bytes > 0)
        || stats.cleanable_ratio() > config.min_cleanable_dirty_ratio
}

/// Splits consecutive segments `(base_offset, next_offset, size_bytes)` into groups cleaned
/// into one segment each (Kafka's `Cleaner.groupSegmentsBySize`): a group's total size stays
/// within `max_segment_bytes` and its offsets within `i32::MAX` of its base. Returns the group
/// lengths, in order.
pub fn group_segments_by_size(segments: &[(i64, i64, u64)], max_segment_bytes: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let (base, _, first_size) = segments[i];
        let mut size = first_size;
        let mut length = 1;
        while i + length < segments.len() {
            let (_, next, next_size) = segments[i + length];
            if size + next_size > max_segment_bytes || next - 1 - base > i32::MAX as i64 {
                break;
            }
            size += next_size;
            length += 1;
        }
        groups.push(length);
        i += length;
    }
    groups
}

#[cfg(test)]
mod tests;

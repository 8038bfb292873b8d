//! Reading the records of stored batches (the internal topics at coordinator load) without
//! trusting the counts inside them.
//!
//! kafka-protocol's `RecordBatchDecoder` reserves `record_count` records and `num_headers`
//! headers from the stored counts before reading them, and inflates compressed batches without
//! a bound, so a corrupt (or crafted) batch can make it ask for gigabytes. This walks the same
//! batches with [`BatchIter::with_crc`], [`records::records_section`] (decompression bounded by
//! [`STORED_BATCH_DECOMPRESSED_MAX_BYTES`]) and [`records::walk_section`] (each record must fit
//! in the bytes that are there), as Kafka's `DefaultRecordBatch` iterator does record by record.

use crate::record_batch::{BatchIter, RecordBatchHeader};
use crate::records;

/// Largest decompressed records section of one stored batch, bytes (Kafka's
/// `offsets.load.buffer.size` default is 5 MiB of compressed bytes; 16 MiB of records is
/// beyond any batch a coordinator writes).
pub const STORED_BATCH_DECOMPRESSED_MAX_BYTES: usize = 16 << 20;

/// One record of a stored batch, copied out of the (possibly decompressed) records section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Absolute offset: base offset + offset delta.
    pub offset: i64,
    /// Key bytes, `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes, `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
}

/// Calls `on_batch(header, records)` for every batch of `bytes` (whole v2 batches as read from
/// the log, CRC-checked), in order, with the batch's records.
///
/// Errors: `batch_error(reason)` at the first batch that is torn, has a bad CRC or magic, an
/// unknown codec, inflates past the bound, or whose records do not decode; or what `on_batch`
/// returns. (The caller picks the error type, so this module depends on no schema module.)
pub fn for_each_batch<E>(
    bytes: &[u8],
    mut on_batch: impl FnMut(&RecordBatchHeader, &[StoredRecord]) -> Result<(), E>,
    batch_error: impl Fn(String) -> E,
) -> Result<(), E> {
    let batch_error = |e: &dyn std::fmt::Display| batch_error(e.to_string());
    let mut iter = BatchIter::with_crc(bytes);
    let mut scratch = Vec::new();
    for (position, header) in iter.by_ref() {
        let batch = &bytes[position..position + header.size_bytes()];
        let section = records::records_section(
            &header,
            batch,
            &mut scratch,
            STORED_BATCH_DECOMPRESSED_MAX_BYTES,
        )
        .map_err(|e| batch_error(&e))?;
        let mut views = Vec::new();
        records::walk_section(&header, section, |record| {
            views.push(StoredRecord {
                offset: record.offset,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
            })
        })
        .map_err(|e| batch_error(&e))?;
        on_batch(&header, &views)?;
    }
    match iter.error() {
        Some(e) => Err(batch_error(e)),
        None => Ok(()),
    }
}

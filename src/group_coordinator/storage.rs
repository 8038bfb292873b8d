//! One `__consumer_offsets-<p>` partition log as the coordinator uses it: replay everything,
//! append record batches with contiguous offsets, flush. The files are `crate::log::Log`
//! segments in Kafka's layout, owned by the coordinator of this shard (the replica manager
//! never opens `__consumer_offsets`).
//!
//! Compaction (Kafka compacts `__consumer_offsets` by key, `cleanup.policy=compact`) is the
//! shard's log cleaner pass [`crate::log::Log::clean`], run on these logs by the coordinator's
//! cleaner task ([`PartitionLog::clean`]): it keeps the last record of each key (offsets
//! kept, so gaps appear) and drops tombstones after `delete.retention.ms`; replay reads across
//! the gaps. This module touches no file itself: every file operation is `crate::log`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::{
    CleanSummary, CleanerConfig, Log, LogConfig, LogError, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use crate::protocol::record_batch::{
    set_base_offset, BatchError, BatchIter, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES,
};

use bytes::BytesMut;
use ringtail_protocol::consumer_offsets_txn::{
    decode_log_batches, encode_marker_batch, encode_txn_batch, BatchContent, LogBatch,
};

use super::records::{encode_batch, CoordinatorRecord, RecordError};
use super::OFFSETS_TOPIC_NAME;

/// Kafka's `offsets.topic.segment.bytes` default: 100 MiB segments for `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;
const _: () = assert!(REPLAY_READ_BYTES >= RECORD_BATCH_HEADER_BYTES);
const _: () = assert!(OFFSETS_TOPIC_SEGMENT_BYTES >= SEGMENT_BYTES_MIN);
const _: () = assert!(OFFSETS_TOPIC_SEGMENT_BYTES <= SEGMENT_BYTES_MAX);

/// Why a `__consumer_offsets` read or write failed. Cloned to every waiter of a group commit,
/// so the sources are shared (`Arc`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The partition log failed.
    #[error("__consumer_offsets-{partition}: {source}")]
    Log {
        partition: i32,
        #[source]
        source: Arc<LogError>,
    },
    /// A stored record does not decode, or one could not be encoded.
    #[error("__consumer_offsets-{partition}: {source}")]
    Record {
        partition: i32,
        #[source]
        source: Arc<RecordError>,
    },
    /// A batch this module encoded has a header that does not parse.
    #[error("__consumer_offsets-{partition}: encoded batch: {source}")]
    Batch {
        partition: i32,
        #[source]
        source: BatchError,
    },
    /// This shard does not own the partition.
    #[error("__consumer_offsets-{partition} is not owned by this shard")]
    NotOwned { partition: i32 },
    /// The coordinator is shutting down.
    #[error("group coordinator stopped")]
    Stopped,
}

/// An open `__consumer_offsets` partition.
pub struct PartitionLog {
    partition: i32,
    log: Log,
}

impl PartitionLog {
    /// Opens (creating if needed) the partition's log under `log_dir` with `segment_bytes`
    /// (`offsets.topic.segment.bytes`, clamped to what `crate::log` accepts), recovering its
    /// tail and finishing or discarding an interrupted cleaning swap.
    pub async fn open(
        log_dir: &Path,
        partition: i32,
        segment_bytes: u64,
    ) -> Result<PartitionLog, StoreError> {
        let log = Log::open(
            partition_dir(log_dir, partition),
            log_config(segment_bytes),
            true,
        )
        .await
        .map_err(|e| log_error(partition, e))?;
        Ok(PartitionLog { partition, log })
    }

    /// One log-cleaner pass ([`Log::clean`]) from `first_dirty_offset` (the checkpointed dirty
    /// start). May run while [`Self::append`] and [`Self::flush`] run; never concurrently with
    /// another clean of this log nor with [`Self::close`] (the caller's cleaner task runs one
    /// pass at a time and ends before the writer closes the logs).
    pub async fn clean(
        &self,
        config: &CleanerConfig,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<CleanSummary>, StoreError> {
        self.log
            .clean(config, first_dirty_offset, now_ms)
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Reads and decodes every record from the log start to the log end (markers skipped).
    #[cfg(test)]
    pub async fn read_all(&self) -> Result<Vec<CoordinatorRecord>, StoreError> {
        let mut records = Vec::new();
        for batch in self.read_all_batches().await? {
            match batch.content {
                BatchContent::Plain(r) | BatchContent::Transactional { records: r, .. } => {
                    records.extend(r)
                }
                BatchContent::Marker { .. } => {}
            }
        }
        Ok(records)
    }

    /// Reads and decodes every batch from the log start to the log end, with its base
    /// offset, producer and kind (plain, transactional, marker) for transactional replay.
    pub async fn read_all_batches(&self) -> Result<Vec<LogBatch>, StoreError> {
        let end = self.log.log_end_offset();
        let mut offset = self.log.log_start_offset();
        let mut batches = Vec::new();
        // Records of data batches vs. records decoded: the difference are keys of record
        // types this broker does not keep (share and streams groups, KIP-848's retired
        // ConsumerGroupPartitionMetadata), skipped with a warning as Kafka's loader skips an
        // unknown record type (`UnknownRecordTypeException`).
        let mut stored_records = 0u64;
        let mut decoded_records = 0u64;
        while offset < end {
            let bytes = self
                .log
                .read(offset, REPLAY_READ_BYTES, end)
                .await
                .map_err(|e| log_error(self.partition, e))?;
            let mut iter = BatchIter::new(&bytes);
            let mut next = offset;
            for (_, header) in iter.by_ref() {
                next = header.next_offset();
                if !header.is_control() {
                    stored_records += header.record_count.max(0) as u64;
                }
            }
            let valid = iter.valid_bytes();
            if next <= offset {
                break;
            }
            let decoded =
                decode_log_batches(bytes.slice(..valid)).map_err(|e| self.record_error(e))?;
            decoded_records += decoded
                .iter()
                .map(|batch| match &batch.content {
                    BatchContent::Plain(records) | BatchContent::Transactional { records, .. } => {
                        records.len() as u64
                    }
                    BatchContent::Marker { .. } => 0,
                })
                .sum::<u64>();
            batches.extend(decoded);
            offset = next;
        }
        if stored_records > decoded_records {
            tracing::warn!(
                "{OFFSETS_TOPIC_NAME}-{}: skipped {} records of record types this broker does \
                 not keep (share or streams groups, ConsumerGroupPartitionMetadata)",
                self.partition,
                stored_records - decoded_records
            );
        }
        Ok(batches)
    }

    /// Appends `records` as one batch at the log end offset (written, not yet synced);
    /// returns the batch's base offset (`None` when `records` is empty).
    pub async fn append(
        &self,
        records: &[CoordinatorRecord],
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        if records.is_empty() {
            return Ok(None);
        }
        let batch = encode_batch(records, now_ms).map_err(|e| self.record_error(e))?;
        self.append_batch(batch, records.len()).await.map(Some)
    }

    /// Appends `records` as one transactional batch of `producer_id`/`producer_epoch`
    /// (TxnOffsetCommit); returns its base offset.
    pub async fn append_transactional(
        &self,
        records: &[CoordinatorRecord],
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let batch = encode_txn_batch(records, producer_id, producer_epoch, now_ms)
            .map_err(|e| self.record_error(e))?;
        self.append_batch(batch, records.len()).await
    }

    /// Appends a commit or abort control batch; returns its offset.
    pub async fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let batch = encode_marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            now_ms,
        )
        .map_err(|e| self.record_error(e))?;
        self.append_batch(batch, 1).await
    }

    /// Appends one encoded batch of `record_count` records at the log end offset.
    async fn append_batch(
        &self,
        mut batch: BytesMut,
        record_count: usize,
    ) -> Result<i64, StoreError> {
        let base_offset = self.log.log_end_offset();
        set_base_offset(&mut batch, base_offset);
        let header = RecordBatchHeader::parse(&batch).map_err(|source| StoreError::Batch {
            partition: self.partition,
            source,
        })?;
        assert_eq!(
            header.base_offset, base_offset,
            "invariant: a batch starts at the log end"
        );
        assert_eq!(
            header.record_count as usize, record_count,
            "invariant: one record per entry"
        );
        self.log
            .append(&batch, &[header])
            .await
            .map_err(|e| log_error(self.partition, e))?;
        Ok(base_offset)
    }

    /// Makes every append so far durable (fdatasync).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.log
            .flush()
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Clean close: flush, seal the active segment, write the indexes.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.log
            .close()
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    fn record_error(&self, error: RecordError) -> StoreError {
        StoreError::Record {
            partition: self.partition,
            source: Arc::new(error),
        }
    }
}

fn log_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes: segment_bytes.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
        ..LogConfig::default()
    }
}

/// `<log_dir>/__consumer_offsets-<p>`.
fn partition_dir(log_dir: &Path, partition: i32) -> PathBuf {
    log_dir.join(format!("{OFFSETS_TOPIC_NAME}-{partition}"))
}

fn log_error(partition: i32, error: LogError) -> StoreError {
    StoreError::Log {
        partition,
        source: Arc::new(error),
    }
}

#[cfg(test)]
mod consumer_group_tests;
#[cfg(test)]
mod tests;

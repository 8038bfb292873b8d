//! One `__consumer_offsets-<p>` partition log as the coordinator uses it: replay everything,
//! append record batches with contiguous offsets, flush. The files are `crate::log::Log`
//! segments in Kafka's layout, owned by the coordinator of this shard (the replica manager
//! never opens `__consumer_offsets`).
//!
//! Compaction (Kafka compacts `__consumer_offsets` by key) is done by rewriting, at load time
//! and by the writer task when idle (`group_coordinator::compact_idle_partitions`): the live
//! state is written to `__consumer_offsets-<p>.compacting` and closed, then
//! [`crate::log::DirSwap`] swaps it in for the live directory (via `.old`). A crash at any step
//! is finished or undone by [`PartitionLog::open`] ([`crate::log::DirSwap::recover`]). This
//! module touches no file itself: every file and directory operation is `crate::log`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::{DirSwap, Log, LogConfig, LogError, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use crate::protocol::record_batch::{
    set_base_offset, BatchError, BatchIter, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES,
};

use super::records::{decode_batches, encode_batch, CoordinatorRecord, RecordError};
use super::OFFSETS_TOPIC_NAME;

/// Kafka's `offsets.topic.segment.bytes` default: 100 MiB segments for `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Records per batch when a partition is rewritten by compaction.
const COMPACTION_BATCH_RECORDS: usize = 1000;
const _: () = assert!(COMPACTION_BATCH_RECORDS > 0);
const _: () = assert!(COMPACTION_BATCH_RECORDS <= i32::MAX as usize);
const _: () = assert!(REPLAY_READ_BYTES >= RECORD_BATCH_HEADER_BYTES);
const _: () = assert!(OFFSETS_TOPIC_SEGMENT_BYTES >= SEGMENT_BYTES_MIN);
const _: () = assert!(OFFSETS_TOPIC_SEGMENT_BYTES <= SEGMENT_BYTES_MAX);

/// Why a `__consumer_offsets` read or write failed. Cloned to every waiter of a group commit,
/// so the sources are shared (`Arc`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The partition log (or a directory swap of compaction) failed.
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
    /// Opens (creating if needed) the partition's log under `log_dir`, recovering its tail and
    /// finishing an interrupted compaction.
    pub async fn open(log_dir: &Path, partition: i32) -> Result<PartitionLog, StoreError> {
        dir_swap(log_dir, partition)
            .recover()
            .map_err(|e| log_error(partition, e))?;
        let log = Log::open(partition_dir(log_dir, partition, ""), log_config(), true)
            .await
            .map_err(|e| log_error(partition, e))?;
        Ok(PartitionLog { partition, log })
    }

    /// Replaces the log with one holding only `records` (the live state), and reopens it.
    pub async fn rewrite(
        self,
        log_dir: &Path,
        records: &[CoordinatorRecord],
        now_ms: i64,
    ) -> Result<PartitionLog, StoreError> {
        let partition = self.partition;
        let swap = dir_swap(log_dir, partition);
        swap.clear_replacement()
            .map_err(|e| log_error(partition, e))?;
        let mut fresh = PartitionLog {
            partition,
            log: Log::open(swap.replacement.clone(), log_config(), false)
                .await
                .map_err(|e| log_error(partition, e))?,
        };
        for chunk in records.chunks(COMPACTION_BATCH_RECORDS) {
            fresh.append(chunk, now_ms).await?;
        }
        fresh.close().await?;
        let mut current = self;
        current.close().await?;
        swap.commit().map_err(|e| log_error(partition, e))?;
        PartitionLog::open(log_dir, partition).await
    }

    /// Reads and decodes every record from the log start to the log end.
    pub async fn read_all(&mut self) -> Result<Vec<CoordinatorRecord>, StoreError> {
        let end = self.log.log_end_offset();
        let mut offset = self.log.log_start_offset();
        let mut records = Vec::new();
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
            }
            let valid = iter.valid_bytes();
            if next <= offset {
                break;
            }
            records.extend(decode_batches(bytes.slice(..valid)).map_err(|e| self.record_error(e))?);
            offset = next;
        }
        Ok(records)
    }

    /// Appends `records` as one batch at the log end offset (written, not yet synced).
    pub async fn append(
        &mut self,
        records: &[CoordinatorRecord],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = encode_batch(records, now_ms).map_err(|e| self.record_error(e))?;
        set_base_offset(&mut batch, self.log.log_end_offset());
        let header = RecordBatchHeader::parse(&batch).map_err(|source| StoreError::Batch {
            partition: self.partition,
            source,
        })?;
        assert_eq!(
            header.base_offset,
            self.log.log_end_offset(),
            "batch starts at the log end"
        );
        assert_eq!(
            header.record_count as usize,
            records.len(),
            "one record per entry"
        );
        self.log
            .append(&batch, &[header])
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Makes every append so far durable (fdatasync).
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        self.log
            .flush()
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Clean close: flush, seal the active segment, write the indexes.
    pub async fn close(&mut self) -> Result<(), StoreError> {
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

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES,
        ..LogConfig::default()
    }
}

/// `<log_dir>/__consumer_offsets-<p><suffix>`.
fn partition_dir(log_dir: &Path, partition: i32, suffix: &str) -> PathBuf {
    log_dir.join(format!("{OFFSETS_TOPIC_NAME}-{partition}{suffix}"))
}

/// The swap of the live directory with its `.compacting` rewrite, via `.old`.
fn dir_swap(log_dir: &Path, partition: i32) -> DirSwap {
    DirSwap::new(
        partition_dir(log_dir, partition, ""),
        partition_dir(log_dir, partition, ".compacting"),
        partition_dir(log_dir, partition, ".old"),
    )
}

fn log_error(partition: i32, error: LogError) -> StoreError {
    StoreError::Log {
        partition,
        source: Arc::new(error),
    }
}

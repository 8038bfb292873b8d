//! One `__consumer_offsets-<p>` partition log as the coordinator uses it: replay everything,
//! append record batches with contiguous offsets, flush. The files are `crate::log::Log`
//! segments in Kafka's layout, owned by the coordinator of this shard (the replica manager
//! never opens `__consumer_offsets`).

use std::path::{Path, PathBuf};

use crate::log::{Log, LogConfig, LogError};
use crate::protocol::record_batch::{set_base_offset, BatchIter, RecordBatchHeader};

use super::records::{decode_batches, encode_batch, CoordinatorRecord, RecordError};
use super::OFFSETS_TOPIC_NAME;

/// Kafka's `offsets.topic.segment.bytes` default: 100 MiB segments for `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Why a `__consumer_offsets` read or write failed. Cloned to every waiter of a group commit.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The partition log failed.
    #[error("__consumer_offsets-{partition}: {message}")]
    Log { partition: i32, message: String },
    /// A stored record does not decode, or one could not be encoded.
    #[error("__consumer_offsets-{partition}: {message}")]
    Record { partition: i32, message: String },
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
    /// Opens (creating if needed) the partition's log under `log_dir`, recovering its tail.
    pub async fn open(log_dir: &Path, partition: i32) -> Result<PartitionLog, StoreError> {
        let dir: PathBuf = log_dir.join(format!("{OFFSETS_TOPIC_NAME}-{partition}"));
        let config = LogConfig {
            segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config, true)
            .await
            .map_err(|e| log_error(partition, e))?;
        Ok(PartitionLog { partition, log })
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
    pub async fn append(&mut self, records: &[CoordinatorRecord], now_ms: i64) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = encode_batch(records, now_ms).map_err(|e| self.record_error(e))?;
        set_base_offset(&mut batch, self.log.log_end_offset());
        let header = RecordBatchHeader::parse(&batch).map_err(|e| StoreError::Record {
            partition: self.partition,
            message: e.to_string(),
        })?;
        assert_eq!(header.base_offset, self.log.log_end_offset(), "batch starts at the log end");
        assert_eq!(header.record_count as usize, records.len(), "one record per entry");
        self.log
            .append(&batch, &[header])
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Makes every append so far durable (fdatasync).
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        self.log.flush().await.map_err(|e| log_error(self.partition, e))
    }

    /// Clean close: flush, seal the active segment, write the indexes.
    pub async fn close(&mut self) -> Result<(), StoreError> {
        self.log.close().await.map_err(|e| log_error(self.partition, e))
    }

    fn record_error(&self, error: RecordError) -> StoreError {
        StoreError::Record {
            partition: self.partition,
            message: error.to_string(),
        }
    }
}

fn log_error(partition: i32, error: LogError) -> StoreError {
    StoreError::Log {
        partition,
        message: error.to_string(),
    }
}

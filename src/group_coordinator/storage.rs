//! One `__consumer_offsets-<p>` partition log as the coordinator uses it: replay everything,
//! append record batches with contiguous offsets, flush. The files are `crate::log::Log`
//! segments in Kafka's layout, owned by the coordinator of this shard (the replica manager
//! never opens `__consumer_offsets`).
//!
//! Compaction (Kafka compacts `__consumer_offsets` by key) is done by rewriting, at load time
//! and by the writer task when idle (`group_coordinator::compact_idle_partitions`): the live
//! state is written to `__consumer_offsets-<p>.compacting` and closed, the old
//! directory is renamed to `.old`, the new one to the live name, then `.old` is removed. A crash
//! at any step is finished or undone by [`PartitionLog::open`]: a live directory wins and
//! leftovers go; without one, a `.compacting` that exists next to `.old` was complete before
//! the first rename, so it becomes the live directory.

use std::path::{Path, PathBuf};

use crate::log::{Log, LogConfig, LogError};
use crate::protocol::record_batch::{set_base_offset, BatchIter, RecordBatchHeader};

use super::records::{decode_batches, encode_batch, CoordinatorRecord, RecordError};
use super::OFFSETS_TOPIC_NAME;

/// Kafka's `offsets.topic.segment.bytes` default: 100 MiB segments for `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Records per batch when a partition is rewritten by compaction.
const COMPACTION_BATCH_RECORDS: usize = 1000;

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
    /// Opens (creating if needed) the partition's log under `log_dir`, recovering its tail and
    /// finishing an interrupted compaction.
    pub async fn open(log_dir: &Path, partition: i32) -> Result<PartitionLog, StoreError> {
        finish_compaction(log_dir, partition)?;
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
        let live = partition_dir(log_dir, partition, "");
        let compacting = partition_dir(log_dir, partition, ".compacting");
        let old = partition_dir(log_dir, partition, ".old");
        remove_dir_if_exists(&compacting, partition)?;
        let mut fresh = PartitionLog {
            partition,
            log: Log::open(compacting.clone(), log_config(), false)
                .await
                .map_err(|e| log_error(partition, e))?,
        };
        for chunk in records.chunks(COMPACTION_BATCH_RECORDS) {
            fresh.append(chunk, now_ms).await?;
        }
        fresh.close().await?;
        let mut current = self;
        current.close().await?;
        rename(&live, &old, partition)?;
        rename(&compacting, &live, partition)?;
        sync_dir(log_dir, partition)?;
        remove_dir_if_exists(&old, partition)?;
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
        let header = RecordBatchHeader::parse(&batch).map_err(|e| StoreError::Record {
            partition: self.partition,
            message: e.to_string(),
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
            message: error.to_string(),
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

/// Completes or undoes a compaction a crash interrupted (see the module docs).
fn finish_compaction(log_dir: &Path, partition: i32) -> Result<(), StoreError> {
    let live = partition_dir(log_dir, partition, "");
    let compacting = partition_dir(log_dir, partition, ".compacting");
    let old = partition_dir(log_dir, partition, ".old");
    if !live.exists() && old.exists() {
        let source = if compacting.exists() {
            &compacting
        } else {
            &old
        };
        tracing::warn!(partition, from = %source.display(), "finishing an interrupted __consumer_offsets compaction");
        rename(source, &live, partition)?;
        sync_dir(log_dir, partition)?;
    }
    remove_dir_if_exists(&compacting, partition)?;
    remove_dir_if_exists(&old, partition)
}

fn rename(from: &Path, to: &Path, partition: i32) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|e| StoreError::Log {
        partition,
        message: format!("rename {} -> {}: {e}", from.display(), to.display()),
    })
}

fn remove_dir_if_exists(dir: &Path, partition: i32) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Log {
            partition,
            message: format!("remove {}: {e}", dir.display()),
        }),
    }
}

fn sync_dir(dir: &Path, partition: i32) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Log {
            partition,
            message: format!("fsync {}: {e}", dir.display()),
        })
}

fn log_error(partition: i32, error: LogError) -> StoreError {
    StoreError::Log {
        partition,
        message: error.to_string(),
    }
}

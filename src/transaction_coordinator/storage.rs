//! One `__transaction_state-<p>` partition log as the transaction coordinator uses it: replay
//! everything at load, append one batch of records and make it durable. The files are
//! `crate::log::Log` segments in Kafka's layout, owned by this shard's coordinator (the replica
//! manager never opens `__transaction_state`). Compaction is the shard's log cleaner pass
//! [`crate::log::Log::clean`] ([`TransactionLog::clean`]), as for `__consumer_offsets`: the last
//! record of each transactional id stays, so replaying a cleaned log gives the same state.
//! Appends are serialised by a lock, so a batch's base offset is the log end when it is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::{
    CleanSummary, CleanerConfig, Log, LogConfig, LogError, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use crate::protocol::record_batch::{
    set_base_offset, BatchError, BatchIter, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES,
};
use crate::protocol::transaction_state::{
    decode_batches, encode_batch, RecordError, TransactionLogRecord,
};

use super::TRANSACTION_STATE_TOPIC_NAME;

/// Kafka's `transaction.state.log.segment.bytes` default: 100 MiB.
pub const TRANSACTION_STATE_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
const _: () = assert!(TRANSACTION_STATE_SEGMENT_BYTES >= SEGMENT_BYTES_MIN);
const _: () = assert!(TRANSACTION_STATE_SEGMENT_BYTES <= SEGMENT_BYTES_MAX);

/// Why a `__transaction_state` read or write failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TxnStoreError {
    /// The partition log failed.
    #[error("__transaction_state-{partition}: {source}")]
    Log {
        partition: i32,
        #[source]
        source: Arc<LogError>,
    },
    /// A stored record does not decode, or one could not be encoded.
    #[error("__transaction_state-{partition}: {source}")]
    Record {
        partition: i32,
        #[source]
        source: Arc<RecordError>,
    },
    /// A batch this module encoded has a header that does not parse.
    #[error("__transaction_state-{partition}: encoded batch: {source}")]
    Batch {
        partition: i32,
        #[source]
        source: BatchError,
    },
    /// This shard does not own the partition.
    #[error("__transaction_state-{partition} is not owned by this shard")]
    NotOwned { partition: i32 },
}

/// An open `__transaction_state` partition.
pub struct TransactionLog {
    partition: i32,
    log: Log,
    /// Held from reading the log end offset to the end of the append.
    append_lock: futures::lock::Mutex<()>,
}

impl TransactionLog {
    /// Opens (creating if needed) the partition's log under `log_dir`, recovering its tail.
    pub async fn open(
        log_dir: &Path,
        partition: i32,
        segment_bytes: u64,
    ) -> Result<TransactionLog, TxnStoreError> {
        let config = LogConfig {
            segment_bytes: segment_bytes.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
            ..LogConfig::default()
        };
        let log = Log::open(partition_dir(log_dir, partition), config, true)
            .await
            .map_err(|e| log_error(partition, e))?;
        Ok(TransactionLog {
            partition,
            log,
            append_lock: futures::lock::Mutex::new(()),
        })
    }

    /// Reads and decodes every record from the log start to the log end, `load_buffer_bytes`
    /// (`transaction.state.log.load.buffer.size`) per read; a bigger batch is read whole.
    pub async fn read_all(
        &self,
        load_buffer_bytes: usize,
    ) -> Result<Vec<TransactionLogRecord>, TxnStoreError> {
        let step = load_buffer_bytes.max(RECORD_BATCH_HEADER_BYTES);
        let end = self.log.log_end_offset();
        let mut offset = self.log.log_start_offset();
        let mut records = Vec::new();
        while offset < end {
            let bytes = self
                .log
                .read(offset, step, end)
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

    /// Appends `records` as one batch at the log end and makes it durable (fdatasync), as
    /// Kafka's `appendTransactionToLog` with acks=-1.
    pub async fn append_durable(
        &self,
        records: &[TransactionLogRecord],
        now_ms: i64,
    ) -> Result<(), TxnStoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = encode_batch(records, now_ms).map_err(|e| self.record_error(e))?;
        {
            let _guard = self.append_lock.lock().await;
            set_base_offset(&mut batch, self.log.log_end_offset());
            let header =
                RecordBatchHeader::parse(&batch).map_err(|source| TxnStoreError::Batch {
                    partition: self.partition,
                    source,
                })?;
            assert_eq!(
                header.base_offset,
                self.log.log_end_offset(),
                "invariant: a __transaction_state batch starts at the log end"
            );
            assert_eq!(
                header.record_count as usize,
                records.len(),
                "invariant: one record per transactional id change"
            );
            self.log
                .append(&batch, &[header])
                .await
                .map_err(|e| log_error(self.partition, e))?;
        }
        self.log
            .flush()
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// One log-cleaner pass from `first_dirty_offset`; never concurrently with another clean of
    /// this log nor with [`Self::close`].
    pub async fn clean(
        &self,
        config: &CleanerConfig,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<CleanSummary>, TxnStoreError> {
        self.log
            .clean(config, first_dirty_offset, now_ms)
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    /// Clean close: flush, seal the active segment, write the indexes.
    pub async fn close(&self) -> Result<(), TxnStoreError> {
        let _guard = self.append_lock.lock().await;
        self.log
            .close()
            .await
            .map_err(|e| log_error(self.partition, e))
    }

    fn record_error(&self, error: RecordError) -> TxnStoreError {
        TxnStoreError::Record {
            partition: self.partition,
            source: Arc::new(error),
        }
    }
}

/// `<log_dir>/__transaction_state-<p>`.
fn partition_dir(log_dir: &Path, partition: i32) -> PathBuf {
    log_dir.join(format!("{TRANSACTION_STATE_TOPIC_NAME}-{partition}"))
}

fn log_error(partition: i32, error: LogError) -> TxnStoreError {
    TxnStoreError::Log {
        partition,
        source: Arc::new(error),
    }
}
